//! The `sessions` table of a file: one row per connection to the broker
//! while the file was open, so that a gap in the data can be told from a
//! quiet sensor.
//!
//! ```text
//!   sessions (connected_us INTEGER NOT NULL,   -- unix µs the subscription was in place
//!             disconnected_us INTEGER,         -- NULL: still connected when the file closed
//!             session_present INTEGER NOT NULL,
//!             granted_qos TEXT NOT NULL,       -- per filter, in order: "1", "1,0", "refused"
//!             ended TEXT)                      -- why it ended, in words (NULL while connected)
//! ```
//!
//! A connection that spans a rotation has a row in each file it was open
//! for, with the same `connected_us`.
//!
//! Owns: the table's schema and its rows' SQL. Must not: fail a write of
//! data (a row that cannot be written is logged and skipped).

use rusqlite::{Connection, params};

/// The table, created with the schema of every new file.
pub(super) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS sessions (\
connected_us INTEGER NOT NULL, disconnected_us INTEGER, session_present INTEGER NOT NULL, \
granted_qos TEXT NOT NULL, ended TEXT);";

/// One connection to the broker, as a row of `sessions`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSession {
    /// Unix µs the connection was up (its subscriptions in place).
    pub connected_us: i64,
    /// Unix µs it ended; `None` while it lasts.
    pub disconnected_us: Option<i64>,
    /// The broker resumed a stored session.
    pub session_present: bool,
    /// The QoS granted per filter, in filter order (`refused` for a
    /// refused one); after a resumed session, the last one granted.
    pub granted_qos: String,
    /// Why it ended, in words; `None` while it lasts.
    pub ended: Option<String>,
}

/// Inserts `s`; the new row's id.
pub(super) fn insert(conn: &Connection, s: &BrokerSession) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "INSERT INTO sessions (connected_us, disconnected_us, session_present, granted_qos, ended) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        s.connected_us,
        s.disconnected_us,
        s.session_present,
        s.granted_qos,
        s.ended
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Records the end of the connection of row `id`; if the row is gone (a
/// transaction rolled back with it), inserts `s` whole.
pub(super) fn end(conn: &Connection, id: Option<i64>, s: &BrokerSession) -> rusqlite::Result<()> {
    let changed = match id {
        Some(id) => conn
            .prepare_cached(
                "UPDATE sessions SET disconnected_us = ?1, ended = ?2 WHERE rowid = ?3",
            )?
            .execute(params![s.disconnected_us, s.ended, id])?,
        None => 0,
    };
    if changed == 0 {
        insert(conn, s)?;
    }
    Ok(())
}

/// The rows of `conn`'s `sessions` table in order; none if the file has
/// no such table (made by an older Attic).
pub fn read(conn: &Connection) -> rusqlite::Result<Vec<BrokerSession>> {
    let exists: bool = conn.query_row(
        "SELECT count(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'sessions'",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(Vec::new());
    }
    let mut stmt = conn.prepare(
        "SELECT connected_us, disconnected_us, session_present, granted_qos, ended \
         FROM sessions ORDER BY rowid",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(BrokerSession {
            connected_us: r.get(0)?,
            disconnected_us: r.get(1)?,
            session_present: r.get(2)?,
            granted_qos: r.get(3)?,
            ended: r.get(4)?,
        })
    })?;
    rows.collect()
}
