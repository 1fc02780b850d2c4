//! `attic export --sessions`: the connections to the broker recorded in the
//! selected files' `sessions` tables, one JSON object per line:
//!
//! ```text
//! {"stream":"home","connected_us":1764237600000000,"connected_time":"2025-11-27T10:00:00.000000Z",
//!  "disconnected_us":null,"disconnected_time":null,"session_present":false,"granted_qos":"1","ended":null}
//! ```
//!
//! A connection that spans several files is printed once (its rows agree
//! on `connected_us`; the one that saw it end wins). Only connections that
//! overlap the window are printed, per stream in order of `connected_us`.
//!
//! Owns: the line's shape. Must not: write into the data folder.

use std::collections::BTreeMap;
use std::io::Write;

use serde::Serialize;

use super::{ExportError, ExportOptions};
use crate::config::Config;
use crate::select::{Plan, SelectError};
use crate::store::reader::read_sessions;
use crate::store::writer::BrokerSession;
use crate::time::rfc3339_us;

/// One line of the output.
#[derive(Debug, Serialize)]
struct Line<'a> {
    stream: &'a str,
    connected_us: i64,
    connected_time: Option<String>,
    disconnected_us: Option<i64>,
    disconnected_time: Option<String>,
    session_present: bool,
    granted_qos: &'a str,
    ended: Option<&'a str>,
}

/// Prints the sessions of the selection; returns how many lines.
pub fn export_sessions(config: &Config, opts: &ExportOptions) -> Result<u64, ExportError> {
    let plan = Plan::new(config, &opts.selection)?;
    let (from, to) = opts.selection.window();
    // (stream, connected_us) -> the row, merged across files.
    let mut seen: BTreeMap<(usize, i64), BrokerSession> = BTreeMap::new();
    for f in &plan.files {
        let rows = read_sessions(&f.file.path).map_err(SelectError::Store)?;
        for row in rows {
            let overlaps = row.connected_us < to && row.disconnected_us.is_none_or(|d| d > from);
            if !overlaps {
                continue;
            }
            let key = (f.stream, row.connected_us);
            match seen.get(&key) {
                Some(kept) if kept.disconnected_us.is_some() => {}
                _ => {
                    seen.insert(key, row);
                }
            }
        }
    }
    let mut out = super::sink::text_output(opts.output.as_deref())?;
    let mut count = 0;
    for ((stream, _), s) in &seen {
        let line = Line {
            stream: &plan.streams[*stream],
            connected_us: s.connected_us,
            connected_time: rfc3339_us(s.connected_us),
            disconnected_us: s.disconnected_us,
            disconnected_time: s.disconnected_us.and_then(rfc3339_us),
            session_present: s.session_present,
            granted_qos: &s.granted_qos,
            ended: s.ended.as_deref(),
        };
        let mut text = serde_json::to_string(&line).map_err(|e| out.err(e.into()))?;
        text.push('\n');
        out.write_all(text.as_bytes()).map_err(|e| out.err(e))?;
        count += 1;
    }
    out.flush().map_err(|e| out.err(e))?;
    Ok(count)
}
