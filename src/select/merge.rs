//! The k-way merge: rows of many sources in ascending `reception_timestamp`.
//!
//! Sources are files, each already in reception order, each with a lower
//! bound on its timestamps (its creation time). A source is opened only
//! when the merge reaches its lower bound, so at any moment only the files
//! whose periods overlap the current position are open (about one per
//! stream), and memory holds one head row per open source: bounded,
//! whatever the number of rows or files. Equal timestamps come in source
//! order (stream order, then file order). Generic over the source so that
//! the rule is unit-tested without files; it does no I/O itself.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// A stream of rows in reception order.
pub trait Source {
    /// The row type.
    type Row: Timestamped;
    /// The error type of reading.
    type Error;
    /// The next row, or `None` when the source is exhausted.
    fn next_row(&mut self) -> Result<Option<Self::Row>, Self::Error>;
}

/// A row with a reception time.
pub trait Timestamped {
    /// Unix microseconds.
    fn timestamp_us(&self) -> i64;
}

/// A source not yet opened.
pub trait Pending {
    /// What opening gives.
    type Source: Source;
    /// No row of the source is older than this.
    fn lower_bound_us(&self) -> i64;
    /// Opens the source; `Ok(None)` = nothing to read (skipped).
    fn open(self) -> Result<Option<Self::Source>, <Self::Source as Source>::Error>;
}

type RowOf<P> = <<P as Pending>::Source as Source>::Row;
type ErrOf<P> = <<P as Pending>::Source as Source>::Error;

/// Merges pending sources (given in source order) into one ordered stream.
pub struct Merge<P: Pending> {
    /// Not yet opened, sorted by lower bound (ties in source order).
    pending: VecDeque<(usize, P)>,
    /// Open sources with their head row; `None` = finished slot.
    open: Vec<Option<(P::Source, RowOf<P>)>>,
    /// Heap of (head timestamp, source order, slot).
    heap: BinaryHeap<Reverse<(i64, usize, usize)>>,
    /// Free slots in `open`.
    free: Vec<usize>,
}

impl<P: Pending> Merge<P> {
    /// A merge over `sources`, whose index is their tie-break order.
    pub fn new(sources: Vec<P>) -> Merge<P> {
        let mut pending: Vec<(usize, P)> = sources.into_iter().enumerate().collect();
        pending.sort_by_key(|(i, p)| (p.lower_bound_us(), *i));
        Merge {
            pending: pending.into(),
            open: Vec::new(),
            heap: BinaryHeap::new(),
            free: Vec::new(),
        }
    }

    /// Sources open right now (for tests and memory reasoning).
    pub fn open_sources(&self) -> usize {
        self.heap.len()
    }

    /// The next row in timestamp order, or `None` when all are exhausted.
    pub fn next_row(&mut self) -> Result<Option<RowOf<P>>, ErrOf<P>> {
        // Open every source that could hold a row older than the current
        // smallest head.
        while let Some((_, p)) = self.pending.front() {
            let reached = self
                .heap
                .peek()
                .is_none_or(|Reverse((t, _, _))| p.lower_bound_us() <= *t);
            if !reached {
                break;
            }
            let Some((order, p)) = self.pending.pop_front() else {
                break;
            };
            if let Some(mut source) = p.open()? {
                if let Some(head) = source.next_row()? {
                    self.push(order, source, head);
                }
            }
        }
        let Some(Reverse((_, order, slot))) = self.heap.pop() else {
            return Ok(None);
        };
        let Some((mut source, head)) = self.open.get_mut(slot).and_then(Option::take) else {
            return Ok(None);
        };
        self.free.push(slot);
        if let Some(next) = source.next_row()? {
            self.push(order, source, next);
        }
        Ok(Some(head))
    }

    fn push(&mut self, order: usize, source: P::Source, head: RowOf<P>) {
        let t = head.timestamp_us();
        let slot = match self.free.pop() {
            Some(s) => {
                self.open[s] = Some((source, head));
                s
            }
            None => {
                self.open.push(Some((source, head)));
                self.open.len() - 1
            }
        };
        self.heap.push(Reverse((t, order, slot)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[derive(Debug, Clone, PartialEq)]
    struct R(i64, &'static str);
    impl Timestamped for R {
        fn timestamp_us(&self) -> i64 {
            self.0
        }
    }
    struct V(std::vec::IntoIter<R>, Rc<Cell<usize>>);
    impl Source for V {
        type Row = R;
        type Error = String;
        fn next_row(&mut self) -> Result<Option<R>, String> {
            Ok(self.0.next())
        }
    }
    impl Drop for V {
        fn drop(&mut self) {
            self.1.set(self.1.get() - 1);
        }
    }
    /// A file: lower bound, rows, and a shared count of open files.
    struct F(i64, Vec<R>, Rc<Cell<usize>>, Rc<Cell<usize>>);
    impl Pending for F {
        type Source = V;
        fn lower_bound_us(&self) -> i64 {
            self.0
        }
        fn open(self) -> Result<Option<V>, String> {
            self.2.set(self.2.get() + 1);
            self.3.set(self.3.get().max(self.2.get()));
            Ok(Some(V(self.1.into_iter(), self.2)))
        }
    }

    fn drain(m: &mut Merge<F>) -> Vec<R> {
        let mut out = Vec::new();
        while let Some(r) = m.next_row().unwrap() {
            out.push(r);
        }
        out
    }

    #[test]
    fn rows_of_interleaved_streams_come_out_in_timestamp_order() {
        let (n, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let f = |lb, rows: Vec<R>| F(lb, rows, n.clone(), peak.clone());
        let mut m = Merge::new(vec![
            f(0, vec![R(0, "a"), R(3, "a"), R(5, "a")]),
            f(10, vec![R(10, "a"), R(12, "a")]),
            f(1, vec![R(1, "b"), R(3, "b"), R(9, "b")]),
            f(11, vec![R(11, "b")]),
        ]);
        let got: Vec<(i64, &str)> = drain(&mut m).iter().map(|r| (r.0, r.1)).collect();
        assert_eq!(
            got,
            [
                (0, "a"),
                (1, "b"),
                (3, "a"),
                (3, "b"),
                (5, "a"),
                (9, "b"),
                (10, "a"),
                (11, "b"),
                (12, "a")
            ]
        );
    }

    #[test]
    fn equal_timestamps_keep_source_order() {
        let (n, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let f = |lb, rows: Vec<R>| F(lb, rows, n.clone(), peak.clone());
        let mut m = Merge::new(vec![
            f(5, vec![R(5, "first"), R(5, "first2")]),
            f(5, vec![R(5, "second")]),
        ]);
        let got: Vec<&str> = drain(&mut m).iter().map(|r| r.1).collect();
        assert_eq!(got, ["first", "first2", "second"]);
    }

    #[test]
    fn files_are_opened_only_when_the_merge_reaches_them_and_closed_when_done() {
        let (n, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        // 3 streams x 100 consecutive files of 10 rows each.
        let mut files = Vec::new();
        for s in 0..3_i64 {
            for k in 0..100_i64 {
                let lb = k * 1_000 + s;
                let rows = (0..10).map(|i| R(lb + i * 90, "x")).collect();
                files.push(F(lb, rows, n.clone(), peak.clone()));
            }
        }
        let mut m = Merge::new(files);
        let rows = drain(&mut m);
        assert_eq!(rows.len(), 3_000);
        assert!(rows.windows(2).all(|w| w[0].0 <= w[1].0));
        assert!(
            peak.get() <= 4,
            "at most about one open file per stream, saw {}",
            peak.get()
        );
        assert_eq!(n.get(), 0, "every file is closed at the end");
    }

    #[test]
    fn empty_and_no_sources_end_at_once() {
        let (n, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let mut m = Merge::new(vec![F(0, vec![], n.clone(), peak.clone())]);
        assert_eq!(m.next_row().unwrap(), None);
        let mut none: Merge<F> = Merge::new(vec![]);
        assert_eq!(none.next_row().unwrap(), None);
    }
}
