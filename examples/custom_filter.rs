//! The example filter from README.md ("Writing your own filter"), compiled
//! and run so that the README cannot drift from the code: `trim` removes
//! leading and trailing ASCII whitespace from payloads (a rewrite).
//!
//! In the tree, the part between the `---` lines is `src/filter/trim.rs`
//! (with `crate::` for `attic::`), registered by one line in the
//! `builtins!` list of `src/filter/mod.rs`: `"trim" => trim,`. Here it is
//! registered at run time with `Registry::with`, which does the same.
//!
//! Run: `cargo run --example custom_filter`.

// --- src/filter/trim.rs -------------------------------------------------
use attic::filter::{Filter, Options, Verdict};
use attic::message::Message;

/// Removes leading and trailing ASCII whitespace from payloads.
pub struct Trim {
    /// Also drop messages whose payload is empty after trimming.
    drop_empty: bool,
}

impl Filter for Trim {
    fn check(&mut self, msg: &mut Message) -> Verdict {
        let p = &msg.payload;
        let start = p.iter().position(|b| !b.is_ascii_whitespace());
        let end = p.iter().rposition(|b| !b.is_ascii_whitespace());
        match (start, end) {
            // `Bytes::slice` shares the buffer: no copy.
            (Some(s), Some(e)) => msg.payload = msg.payload.slice(s..=e),
            _ if self.drop_empty => return Verdict::Drop,
            _ => msg.payload.clear(),
        }
        Verdict::Keep
    }
}

/// Options: `drop-empty` (default false). Unknown keys are refused
/// automatically; problems are reported with their key path and line.
pub fn build(options: &mut Options) -> Option<Box<dyn Filter>> {
    let drop_empty = options.boolean("drop-empty").unwrap_or(false);
    Some(Box::new(Trim { drop_empty }))
}
// --- end of src/filter/trim.rs ------------------------------------------

use attic::filter::{Chain, Registry, Spec, Value};

fn message(topic: &str, payload: &str) -> Message {
    Message {
        timestamp_us: 0,
        topic: topic.to_owned(),
        payload: bytes::Bytes::copy_from_slice(payload.as_bytes()),
        qos: 0,
        retain: false,
        properties: None,
    }
}

fn main() {
    let registry = Registry::builtin().with("trim", build);
    // The same as `filters: [ { trim: { drop-empty: true } }, { changes-only: } ]`.
    let specs = [
        Spec::new(
            "trim",
            Value::Map(vec![("drop-empty".to_owned(), Value::Bool(true))]),
        ),
        Spec::new("changes-only", Value::Null),
    ];
    let mut chain = match Chain::build(&specs, &registry) {
        Ok(chain) => chain,
        Err(problems) => {
            eprintln!("bad options: {problems:?}");
            std::process::exit(1);
        }
    };
    for payload in ["  21.5\n", "21.5", "   ", "21.6 "] {
        let mut m = message("sensors/t", payload);
        let verdict = chain.check(&mut m);
        println!("{payload:?} -> {verdict:?} {:?}", m.payload);
    }
    for (name, n) in chain.dropped() {
        println!("dropped by {name}: {n}");
    }
    let dropped: Vec<_> = chain.dropped().collect();
    assert_eq!(dropped, [("trim", 1), ("changes-only", 1)]);
}
