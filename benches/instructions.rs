//! Instructions per stored message (`cargo bench --bench instructions`): a
//! deterministic figure of the per-message path, counted by valgrind's
//! callgrind instead of timed, so that it does not move with the load of
//! the machine.
//!
//! The bench runs itself under `valgrind --tool=callgrind` (twice per
//! scenario, to show that the count repeats) and counts only what happens
//! inside [`measured`]: `INSTR_N` [20000] fixed MQTT 3.1.1 PUBLISH packets
//! (64-byte payloads over 4 topics, as `benches/ingest.rs` publishes them)
//! fed to a connected `mqtt::session::Session` in reads of at most 64 KiB
//! (the loop's read buffer; at QoS 1 at most 100 packets, the broker's
//! in-flight window of the ingest benchmark), each delivery turned into a
//! `Message`, run through an empty filter chain and accepted by the
//! `store::gate::Gate` over a real `store::writer::Writer` in a temporary
//! folder, committed as the loop commits (the gate's commit deadline on a
//! simulated clock and its memory bound; at QoS 1 after every read, then
//! the acks released), and finally the loop's half of the rotation
//! (`Writer::close`). Finishing the file (checkpoint, index, fsync) runs on
//! the helper thread in the service and is left out.
//!
//! Output: one JSON line per scenario (`qos0`, `qos1`; `INSTR_ONLY` picks
//! one), with both totals, their relative difference and the instructions
//! per message. Needs `valgrind` on the `PATH`; the binary is the bench
//! itself (`--child SCENARIO N` runs the load once without valgrind).

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(clippy::cast_possible_truncation)]

use attic::config::Durability;
use attic::counters::Counters;
use attic::filter::{Chain, Verdict};
use attic::message::Message;
use attic::mqtt::session::{Event, Session, SessionConfig};
use attic::store::gate::Gate;
use attic::store::writer::{FileMeta, Writer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The loop's read buffer (`app::READ_BUF`).
const READ_BUF: usize = 64 * 1024;
/// Messages per read at QoS 1: mosquitto's `max_inflight_messages` in the
/// ingest benchmark.
const QOS1_WINDOW: usize = 100;
/// Simulated time between two messages (50,000 msg/s).
const MSG_GAP: Duration = Duration::from_micros(20);
/// `commit-interval-ms` default.
const COMMIT_INTERVAL: Duration = Duration::from_millis(1000);
/// 2023-11-14T22:13:20Z: every row of the run belongs to one file.
const T0_US: i64 = 1_700_000_000_000_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let qos: u8 = match args[i + 1].as_str() {
            "qos0" => 0,
            "qos1" => 1,
            other => panic!("unknown scenario {other}"),
        };
        let n: usize = args[i + 2].parse().unwrap();
        child(qos, n);
        return;
    }
    let n: usize = std::env::var("INSTR_N").map_or(20_000, |v| v.trim().parse().unwrap());
    let only = std::env::var("INSTR_ONLY").ok();
    let me = std::env::current_exe().unwrap();
    for scenario in ["qos0", "qos1"] {
        if only
            .as_deref()
            .is_some_and(|o| !o.split(',').any(|s| s == scenario))
        {
            continue;
        }
        let a = callgrind(&me, scenario, n);
        let b = callgrind(&me, scenario, n);
        let spread = (a as f64 - b as f64).abs() / (a.min(b).max(1) as f64);
        println!(
            "{{\"bench\":\"instructions\",\"scenario\":\"{scenario}\",\"messages\":{n},\
             \"instructions\":[{a},{b}],\"spread\":{spread:.6},\
             \"instructions_per_msg\":{:.1}}}",
            (a + b) as f64 / 2.0 / n as f64
        );
    }
}

/// Runs one child under callgrind, collecting only inside [`measured`];
/// returns the instructions counted.
fn callgrind(me: &Path, scenario: &str, n: usize) -> u64 {
    let out = std::env::temp_dir().join(format!(
        "attic-instructions-{}-{scenario}.callgrind",
        std::process::id()
    ));
    let status = Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--quiet")
        .arg(format!("--callgrind-out-file={}", out.display()))
        .arg("--toggle-collect=*instructions::measured*")
        .arg(me)
        .args(["--child", scenario, &n.to_string()])
        .status()
        .unwrap_or_else(|e| panic!("cannot start valgrind (apt-get install valgrind): {e}"));
    assert!(status.success(), "the callgrind run failed: {status}");
    let text = std::fs::read_to_string(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    let total = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("totals:")
                .or_else(|| l.strip_prefix("summary:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("no totals line in the callgrind output");
    assert!(total > 0, "nothing was collected: is `measured` inlined?");
    total
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One PUBLISH packet of MQTT 3.1.1.
fn publish(topic: &str, payload: &[u8], qos: u8, pkid: u16, out: &mut Vec<u8>) {
    out.push(0x30 | (qos << 1));
    let mut len = 2 + topic.len() + payload.len() + if qos > 0 { 2 } else { 0 };
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        out.push(b);
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        out.extend_from_slice(&pkid.to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// The wire bytes of `n` messages, cut into the reads the loop would make.
fn reads(qos: u8, n: usize) -> Vec<Vec<u8>> {
    let mut reads = Vec::new();
    let mut cur = Vec::with_capacity(READ_BUF);
    let mut in_cur = 0;
    for i in 0..n {
        let k = i % 4;
        let mut payload = format!("{{\"id\":{k},\"seq\":{:09},\"v\":21.5,\"p\":\"", i / 4);
        while payload.len() < 62 {
            payload.push('x');
        }
        payload.push_str("\"}");
        let mut pkt = Vec::new();
        let pkid = (i % 65_535 + 1) as u16;
        publish(
            &format!("bench/sensor/{k}"),
            payload.as_bytes(),
            qos,
            pkid,
            &mut pkt,
        );
        let full = if qos == 0 {
            cur.len() + pkt.len() > READ_BUF
        } else {
            in_cur == QOS1_WINDOW
        };
        if full {
            reads.push(std::mem::replace(&mut cur, Vec::with_capacity(READ_BUF)));
            in_cur = 0;
        }
        cur.extend_from_slice(&pkt);
        in_cur += 1;
    }
    if !cur.is_empty() {
        reads.push(cur);
    }
    reads
}

/// The load once: set up outside [`measured`], then measured.
fn child(qos: u8, n: usize) {
    let dir = TempDir(
        std::env::temp_dir().join(format!("attic-instructions-{}-{qos}", std::process::id())),
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let reads = reads(qos, n);
    let t0 = Instant::now();
    let mut session = Session::new(
        SessionConfig {
            name: "bench".into(),
            client_id: "attic-instructions".into(),
            user: None,
            password: None,
            keep_alive: Duration::from_secs(3600),
            clean_session: true,
            filters: vec!["bench/#".into()],
            qos,
            max_payload: 16 << 20,
            mqtt5: None,
        },
        1,
        t0,
    );
    let mut events = Vec::new();
    session.on_timer(t0, &mut events);
    session.on_transport_up(t0, &mut events);
    session.on_bytes(&[0x20, 2, 0, 0], t0, &mut events);
    session.on_bytes(&[0x90, 3, 0, 1, qos], t0, &mut events);
    assert!(events.contains(&Event::Connected), "{events:?}");
    events.clear();
    session.outbox().clear();
    let mut writer = Writer::new(
        dir.0.clone(),
        Duration::from_secs(3600),
        Durability::Normal,
        FileMeta {
            stream_folder: "bench".into(),
            topics: vec!["bench/#".into()],
            broker: "127.0.0.1:1883".into(),
            host: "bench".into(),
            mqtt5: false,
        },
    );
    writer.defer_finalising();
    let mut path = Loop {
        session,
        chain: Chain::new(),
        gate: Gate::new("bench", COMMIT_INTERVAL),
        writer,
        counters: Counters::default(),
        events,
    };
    let stored = measured(&mut path, &reads, t0);
    assert_eq!(stored, n as u64, "every message stored");
    let part = path.writer.take_closed();
    assert_eq!(part.len(), 1);
}

/// What the loop holds for one stream.
struct Loop {
    session: Session,
    chain: Chain,
    gate: Gate,
    writer: Writer,
    counters: Counters,
    events: Vec<Event>,
}

/// The counted part: every read through session, filter chain, gate and
/// writer, the commits, and the close. Returns the messages committed.
#[inline(never)]
fn measured(p: &mut Loop, reads: &[Vec<u8>], t0: Instant) -> u64 {
    let mut now = t0;
    let mut ts = T0_US;
    for read in reads {
        p.session.on_bytes(read, now, &mut p.events);
        for ev in p.events.drain(..) {
            let Event::Message(d) = ev else { continue };
            let mut msg = Message {
                timestamp_us: ts,
                topic: d.topic,
                payload: d.payload,
                qos: d.qos,
                retain: d.retain,
                properties: d.properties,
            };
            if p.chain.check(&mut msg) == Verdict::Drop {
                continue;
            }
            let a = p.gate.accept(&mut p.writer, msg, now, &mut p.counters);
            if a.release_acks {
                p.session.release_acks(now);
            }
            now += MSG_GAP;
        }
        ts += 1000;
        if p.session.pending_acks() > 0 {
            let a = p.gate.commit(&mut p.writer, now, &mut p.counters);
            if a.release_acks {
                p.session.release_acks(now);
            }
        }
        let a = p.gate.on_timer(&mut p.writer, now, &mut p.counters);
        if a.release_acks {
            p.session.release_acks(now);
        }
        // The loop writes the acks to the socket.
        p.session.outbox().clear();
    }
    let a = p.gate.rotate(&mut p.writer, now, &mut p.counters);
    if a.release_acks {
        p.session.release_acks(now);
    }
    p.session.outbox().clear();
    p.counters.stored
}
