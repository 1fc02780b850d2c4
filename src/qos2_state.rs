//! The QoS 2 packet ids of a persistent session that Attic answered with
//! PUBREC and for which no PUBREL came yet, kept in a small file in the
//! stream's folder, so that a restart resumes the broker's session without
//! storing a message the broker resends with such an id a second time
//! (MQTT 3.1.1 / MQTT 5 section 4.3.3).
//!
//! ```text
//! <data-folder>/<stream>/qos2-awaiting-pubrel
//!     # Attic: QoS 2 packet ids answered with PUBREC, awaiting PUBREL
//!     client-id attic-node-everything-1a2b3c
//!     broker 127.0.0.1:1883
//!     ids 3 7 9
//! ```
//!
//! Owns: that file (written atomically: `.tmp` then rename; removed when no
//! id waits), the rule that it belongs to one client id on one broker, and
//! handing its ids to the session; the stream hands it the changed ids
//! (`Action::SaveQos2Ids`) before the bytes that follow are written.
//! Must not: decide which ids wait (that is `mqtt::session`), or fsync (a
//! power cut may cost a duplicate row, never a lost one: a stale file is
//! dropped when the broker reports no session).

use crate::mqtt::session::Session;
use std::io;
use std::path::{Path, PathBuf};

/// The file's name in the stream folder.
pub const FILE_NAME: &str = "qos2-awaiting-pubrel";

const HEADER: &str = "# Attic: QoS 2 packet ids answered with PUBREC, awaiting PUBREL";

/// The state file of one stream.
#[derive(Debug)]
pub struct Qos2State {
    /// `<stream folder>/qos2-awaiting-pubrel`.
    path: PathBuf,
    /// The session it belongs to: client id and broker.
    client_id: String,
    broker: String,
    /// The last write failed with this error (logged once).
    last_error: Option<String>,
}

impl Qos2State {
    /// The state of the session of `client_id` at `broker`, in `stream_dir`.
    pub fn new(stream_dir: &Path, client_id: &str, broker: &str) -> Self {
        Qos2State {
            path: stream_dir.join(FILE_NAME),
            client_id: client_id.to_owned(),
            broker: broker.to_owned(),
            last_error: None,
        }
    }

    /// For a session that keeps its QoS 2 ids (persistent, QoS 2): its
    /// state, with the ids of an earlier run handed to it. For any other
    /// session `None`, and a leftover file is removed (a clean session
    /// resumes nothing).
    pub fn attach(
        session: &mut Session,
        stream_dir: &Path,
        client_id: &str,
        broker: &str,
    ) -> Option<Self> {
        let mut state = Qos2State::new(stream_dir, client_id, broker);
        if session.keeps_qos2_ids() {
            session.restore_qos2_ids(&state.load());
            Some(state)
        } else {
            state.save(&[]);
            None
        }
    }

    /// The ids saved by an earlier run of this session; none when there is
    /// no file, or it belongs to another client id or broker (logged).
    pub fn load(&self) -> Vec<u16> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(e) => {
                log::warn!("cannot read {}: {e}", self.path.display());
                return Vec::new();
            }
        };
        match parse(&text) {
            Some((id, broker, ids)) if id == self.client_id && broker == self.broker => ids,
            Some((id, broker, _)) => {
                log::info!(
                    "{} belongs to client id {id:?} at {broker}, not to this stream's session: ignored",
                    self.path.display()
                );
                Vec::new()
            }
            None => {
                log::warn!(
                    "{} is not readable as Attic's QoS 2 state: ignored",
                    self.path.display()
                );
                Vec::new()
            }
        }
    }

    /// Replaces the file with `ids` (removes it when there is none). A
    /// failure is logged once per distinct error; never fatal.
    pub fn save(&mut self, ids: &[u16]) {
        let result = if ids.is_empty() {
            match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        } else {
            self.write(ids)
        };
        match result {
            Ok(()) => self.last_error = None,
            Err(e) => {
                let e = format!("cannot save the QoS 2 state {}: {e}", self.path.display());
                if self.last_error.as_deref() != Some(&e) {
                    log::warn!("{e}");
                    self.last_error = Some(e);
                }
            }
        }
    }

    fn write(&self, ids: &[u16]) -> io::Result<()> {
        let list: Vec<String> = ids.iter().map(u16::to_string).collect();
        let text = format!(
            "{HEADER}\nclient-id {}\nbroker {}\nids {}\n",
            self.client_id,
            self.broker,
            list.join(" ")
        );
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::atomic::write_atomically(&self.path, text.as_bytes())
    }
}

/// `(client id, broker, ids)` of a state file's text.
fn parse(text: &str) -> Option<(String, String, Vec<u16>)> {
    let mut lines = text.lines();
    if lines.next()? != HEADER {
        return None;
    }
    let client_id = lines.next()?.strip_prefix("client-id ")?.to_owned();
    let broker = lines.next()?.strip_prefix("broker ")?.to_owned();
    let ids = lines.next()?.strip_prefix("ids")?;
    let ids = ids
        .split_whitespace()
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<u16>>>()?;
    Some((client_id, broker, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attic-qos2-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn saved_ids_are_loaded_by_the_same_session_only() {
        let d = dir("same");
        let mut s = Qos2State::new(&d, "attic-a", "h:1883");
        s.save(&[3, 7, 65_535]);
        assert_eq!(s.load(), vec![3, 7, 65_535]);
        assert!(Qos2State::new(&d, "attic-b", "h:1883").load().is_empty());
        assert!(
            Qos2State::new(&d, "attic-a", "other:1883")
                .load()
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn saving_no_ids_removes_the_file() {
        let d = dir("empty");
        let mut s = Qos2State::new(&d, "attic-a", "h:1883");
        s.save(&[1]);
        assert!(d.join(FILE_NAME).exists());
        s.save(&[]);
        assert!(!d.join(FILE_NAME).exists());
        assert!(s.load().is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_damaged_file_is_ignored() {
        let d = dir("damaged");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join(FILE_NAME),
            format!("{HEADER}\nclient-id a\nbroker h\nids 1 x\n"),
        )
        .unwrap();
        assert!(Qos2State::new(&d, "a", "h").load().is_empty());
        std::fs::write(d.join(FILE_NAME), "hello").unwrap();
        assert!(Qos2State::new(&d, "a", "h").load().is_empty());
        let _ = std::fs::remove_dir_all(&d);
    }
}
