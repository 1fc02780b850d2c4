//! Who Attic is on the broker: the default client id, and noticing that
//! someone else uses the same one.
//!
//! A broker allows one connection per client id and closes the older one
//! when a newer one arrives (a session takeover). Two Attic instances on
//! one host with configs that differ only in `data-folder` (a copied
//! config, `attic@.service`) would otherwise get the same default id and
//! take each other's session over forever. So the default id carries a
//! short hash of the absolute data folder: unique per instance, stable
//! across restarts (a persistent session finds its queue again).
//!
//! When ids still collide (two hosts with one name, an explicit id copied
//! into two configs), the symptom is a broker that closes the connection
//! right after accepting it, again and again; [`TakeoverWatch`] recognises
//! that pattern so the session can say so.
//!
//! Owns: [`default_client_id`], [`instance_tag`], [`TakeoverWatch`]. Pure:
//! no clock (time is an argument), no I/O, no logging.

use std::path::Path;
use std::time::{Duration, Instant};

/// `attic-<host>-<name>-<tag>`: the default client id of a stream (`name`
/// = its folder) or of the report publisher (`name` = `performance`), where
/// `tag` is the [`instance_tag`] of the absolute data folder.
pub fn default_client_id(host: &str, name: &str, tag: &str) -> String {
    format!("attic-{host}-{name}-{tag}")
}

/// A short, stable hash (6 hex digits) of the absolute data folder: the
/// part of the default client id that tells two instances on one host
/// apart. A relative folder is made absolute against the working directory
/// (without touching the file system: the folder may not exist yet).
pub fn instance_tag(data_folder: &Path) -> String {
    let absolute = std::path::absolute(data_folder).unwrap_or_else(|_| data_folder.to_owned());
    let hash = fnv1a(absolute.as_os_str().as_encoded_bytes());
    format!("{:06x}", (hash ^ (hash >> 32)) & 0xff_ffff)
}

/// FNV-1a, 64-bit: stable across Rust versions and platforms (unlike
/// `std`'s `DefaultHasher`), which a client id must be.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A connection closed within this long after its CONNACK counts as a
/// short-lived one.
pub const SHORT_LIVED: Duration = Duration::from_secs(5);

/// This many short-lived connections in a row mean a probable takeover.
pub const IN_A_ROW: u32 = 3;

/// What to tell the user when [`TakeoverWatch::on_close`] says so.
pub fn takeover_warning(client_id: &str) -> String {
    format!(
        "the broker closed the connection right after accepting it {IN_A_ROW} times in a row: \
         another client probably uses the same client id {client_id:?}"
    )
}

/// Watches how long accepted connections last. After [`IN_A_ROW`]
/// connections in a row that the broker closed within [`SHORT_LIVED`] of
/// accepting them, [`on_close`](Self::on_close) answers true, once, until
/// a connection lasts again.
#[derive(Debug, Clone, Default)]
pub struct TakeoverWatch {
    /// When the current connection was accepted, if it is up.
    accepted_at: Option<Instant>,
    /// Short-lived connections in a row.
    short: u32,
    /// The warning was given for the current run of short connections.
    warned: bool,
}

impl TakeoverWatch {
    /// A watch with no history.
    pub fn new() -> Self {
        Self::default()
    }

    /// The broker accepted a connection (CONNACK 0) at `now`.
    pub fn on_accepted(&mut self, now: Instant) {
        self.accepted_at = Some(now);
    }

    /// An accepted connection ended at `now`. `by_broker` is false when
    /// Attic closed it itself (a protocol error, a stop, a storage
    /// rollback): those say nothing about another client. True when the
    /// warning "another client probably uses the same client id" is due.
    pub fn on_close(&mut self, now: Instant, by_broker: bool) -> bool {
        let Some(accepted) = self.accepted_at.take() else {
            return false; // never accepted: a refused or failed connect
        };
        if !by_broker || now.saturating_duration_since(accepted) >= SHORT_LIVED {
            self.short = 0;
            self.warned = false;
            return false;
        }
        self.short = self.short.saturating_add(1);
        if self.short >= IN_A_ROW && !self.warned {
            self.warned = true;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_id_names_host_folder_and_instance() {
        assert_eq!(
            default_client_id("pi", "sensors", "a1b2c3"),
            "attic-pi-sensors-a1b2c3"
        );
    }

    #[test]
    fn two_data_folders_give_two_tags_and_one_folder_always_the_same() {
        let a = instance_tag(Path::new("/var/lib/attic/a"));
        let b = instance_tag(Path::new("/var/lib/attic/b"));
        assert_ne!(a, b);
        assert_eq!(a, instance_tag(Path::new("/var/lib/attic/a")));
        assert_eq!(a.len(), 6);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn the_tag_is_stable_across_builds_and_platforms() {
        // Fixed value: a change here changes every default client id, and
        // persistent sessions would lose their queue at the upgrade.
        assert_eq!(instance_tag(Path::new("/var/lib/attic")), "8682f2");
    }

    #[test]
    fn a_relative_folder_is_hashed_as_its_absolute_path() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            instance_tag(Path::new("data")),
            instance_tag(&cwd.join("data"))
        );
    }

    #[test]
    fn three_connections_closed_by_the_broker_right_after_connack_warn_once() {
        let t0 = Instant::now();
        let mut w = TakeoverWatch::new();
        let mut warnings = 0;
        for i in 0..6u64 {
            let at = t0 + Duration::from_secs(10 * i);
            w.on_accepted(at);
            if w.on_close(at + Duration::from_millis(200), true) {
                warnings += 1;
                assert_eq!(i, 2, "warned at the third short connection");
            }
        }
        assert_eq!(warnings, 1);
    }

    #[test]
    fn a_connection_that_lasts_resets_the_count_and_the_warning() {
        let t0 = Instant::now();
        let mut w = TakeoverWatch::new();
        let short = |w: &mut TakeoverWatch, at: Instant| {
            w.on_accepted(at);
            w.on_close(at + Duration::from_secs(1), true)
        };
        assert!(!short(&mut w, t0));
        assert!(!short(&mut w, t0 + Duration::from_secs(10)));
        w.on_accepted(t0 + Duration::from_secs(20));
        assert!(!w.on_close(t0 + Duration::from_secs(60), true));
        assert!(!short(&mut w, t0 + Duration::from_secs(70)));
        assert!(!short(&mut w, t0 + Duration::from_secs(80)));
        assert!(short(&mut w, t0 + Duration::from_secs(90)));
    }

    #[test]
    fn closes_by_attic_itself_and_refused_connects_never_count() {
        let t0 = Instant::now();
        let mut w = TakeoverWatch::new();
        for i in 0..5u64 {
            let at = t0 + Duration::from_secs(i);
            w.on_accepted(at);
            assert!(!w.on_close(at, false));
            // a connect that never got a CONNACK
            assert!(!w.on_close(at, true));
        }
    }
}
