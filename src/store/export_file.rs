//! The SQLite file of `attic export --format sqlite`: the Attic `data`
//! table plus a `stream` column, the MQTT 5 `properties` column (NULL for
//! 3.1.1 rows), caller-given extra columns (decoded values), the `topics`
//! index, the application id, and caller-given `attic_meta` pairs.
//!
//! The file is a scratch file until complete: written as
//! `<output>.incomplete` with no journal and no fsync, indexed once at the
//! end (faster than keeping the index up to date), then renamed. Memory is
//! bounded by the page cache whatever the row count. It must not touch the
//! data folder.

use std::io;
use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::StoreError;
use super::writer::{APPLICATION_ID, FORMAT_VERSION};
use crate::message::Message;

/// Rows per transaction.
const BATCH: u64 = 100_000;

const SCHEMA: &str = "\
CREATE TABLE data (reception_timestamp INTEGER NOT NULL, topic TEXT NOT NULL, \
payload BLOB NOT NULL, qos INTEGER NOT NULL, retain INTEGER NOT NULL, stream TEXT NOT NULL, \
properties TEXT";

const INSERT: &str = "INSERT INTO data (reception_timestamp, topic, payload, qos, retain, \
stream, properties";

/// An extra column's SQLite type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// INTEGER (also booleans, as 0/1).
    Integer,
    /// REAL.
    Real,
    /// TEXT.
    Text,
}

/// A value of an extra column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'a> {
    /// NULL.
    Null,
    /// INTEGER.
    Int(i64),
    /// REAL.
    Real(f64),
    /// TEXT.
    Text(&'a str),
}

impl rusqlite::ToSql for Cell<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match *self {
            Cell::Null => ValueRef::Null,
            Cell::Int(i) => ValueRef::Integer(i),
            Cell::Real(f) => ValueRef::Real(f),
            Cell::Text(t) => ValueRef::Text(t.as_bytes()),
        }))
    }
}

/// `name` as an SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

const META: &str = "INSERT OR REPLACE INTO attic_meta (key, value) VALUES (?1, ?2)";

/// Where an export to `path` is written until it is complete.
pub fn incomplete_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".incomplete");
    path.with_file_name(name)
}

/// An export file being written.
#[derive(Debug)]
pub struct ExportFile {
    conn: Connection,
    /// `<output>.incomplete`.
    tmp: PathBuf,
    /// The final name.
    path: PathBuf,
    /// Rows since the last commit.
    batch: u64,
    /// Rows in total.
    rows: u64,
    /// The INSERT with its extra columns.
    insert: String,
}

impl ExportFile {
    /// Creates `<path>.incomplete` (replacing a leftover one) with the
    /// schema and `extra` columns, `format_version`, `attic_version` and
    /// the `meta` pairs.
    pub fn create(
        path: PathBuf,
        meta: &[(&str, &str)],
        extra: &[(&str, ColumnType)],
    ) -> Result<ExportFile, StoreError> {
        let tmp = incomplete_path(&path);
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(StoreError::Io {
                    action: "replace",
                    path: tmp,
                    source: e,
                });
            }
            _ => {}
        }
        let err = |source| StoreError::Sqlite {
            action: "create",
            path: tmp.clone(),
            source,
        };
        let mut schema = SCHEMA.to_owned();
        let mut insert = INSERT.to_owned();
        for (name, ty) in extra {
            let ty = match ty {
                ColumnType::Integer => "INTEGER",
                ColumnType::Real => "REAL",
                ColumnType::Text => "TEXT",
            };
            schema.push_str(&format!(", {} {ty}", quoted(name)));
            insert.push_str(&format!(", {}", quoted(name)));
        }
        schema.push_str(");\nCREATE TABLE attic_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);");
        insert.push_str(") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7");
        for i in 0..extra.len() {
            insert.push_str(&format!(", ?{}", i + 8));
        }
        insert.push(')');
        let conn = Connection::open(&tmp).map_err(err)?;
        // 8 KiB pages: fewer page splits and writes than 4 KiB for the same
        // 2 MiB cache (measured: less system time, CPU within noise lower).
        conn.execute_batch(&format!(
            "PRAGMA page_size = 8192;
             PRAGMA application_id = {APPLICATION_ID};
             PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             PRAGMA locking_mode = EXCLUSIVE;
             PRAGMA cache_size = -2048;
             {schema}"
        ))
        .map_err(err)?;
        let version = env!("CARGO_PKG_VERSION");
        let fixed = [
            ("format_version", FORMAT_VERSION),
            ("attic_version", version),
        ];
        for (k, v) in fixed.iter().chain(meta) {
            conn.execute(META, [k, v]).map_err(err)?;
        }
        conn.execute_batch("BEGIN").map_err(err)?;
        Ok(ExportFile {
            conn,
            tmp,
            path,
            batch: 0,
            rows: 0,
            insert,
        })
    }

    /// Adds one row: the stored columns of `message`, its `stream`, the
    /// properties and one cell per extra column.
    pub fn insert(
        &mut self,
        message: &Message,
        stream: &str,
        extra: &[Cell<'_>],
    ) -> Result<(), StoreError> {
        let r = self.conn.prepare_cached(&self.insert).and_then(|mut stmt| {
            let fixed: [&dyn rusqlite::ToSql; 7] = [
                &message.timestamp_us,
                &message.topic,
                &message.payload.as_ref(),
                &message.qos,
                &message.retain,
                &stream,
                &message.properties,
            ];
            let params = fixed
                .into_iter()
                .chain(extra.iter().map(|c| c as &dyn rusqlite::ToSql));
            stmt.execute(rusqlite::params_from_iter(params))
        });
        r.map_err(|e| self.err("insert", e))?;
        self.rows += 1;
        self.batch += 1;
        if self.batch >= BATCH {
            self.batch = 0;
            self.conn
                .execute_batch("COMMIT; BEGIN")
                .map_err(|e| self.err("commit", e))?;
        }
        Ok(())
    }

    /// Commits, builds the index, records `row_count`, closes and renames
    /// the file to its final name.
    pub fn finish(self) -> Result<PathBuf, StoreError> {
        let rows = self.rows.to_string();
        let done = self.conn.execute_batch("COMMIT").and_then(|()| {
            self.conn
                .execute_batch("CREATE INDEX topics ON data (topic)")?;
            self.conn.execute(META, ["row_count", rows.as_str()])?;
            Ok(())
        });
        done.map_err(|e| self.err("finish", e))?;
        let ExportFile {
            conn, tmp, path, ..
        } = self;
        conn.close().map_err(|(_, source)| StoreError::Sqlite {
            action: "close",
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, &path).map_err(|source| StoreError::Io {
            action: "rename",
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    fn err(&self, action: &'static str, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            action,
            path: self.tmp.clone(),
            source,
        }
    }
}
