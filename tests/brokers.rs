//! Broker compatibility: Attic against a broker other than mosquitto
//! (aedes 1.2, a Node.js broker that installs in seconds with npm), storing
//! QoS 0/1/2, retained, 200 KB, binary and UTF-8 messages exactly.
//!
//! Tolerates the documented broker differences (README, "Known broker
//! differences"): the `qos` column holds the QoS the broker chose to deliver
//! with, so it is not compared; `$share/...` filters are not used (aedes
//! grants them and delivers nothing).
//!
//! aedes is looked for in `$ATTIC_AEDES_DIR` or `target/brokers/node_modules/aedes`
//! (`.ci/run` installs it there: `npm install --prefix target/brokers aedes@1.2.0`).
//! A stream with `mqtt-version: 5` gets a clear refusal from it (aedes
//! speaks 3.1.1 only).
//!
//! Without it, or without `node` 20 or later, the test prints one line
//! saying so and passes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(30);

/// The aedes package folder, if installed.
fn aedes_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("ATTIC_AEDES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/brokers/node_modules/aedes")
        });
    dir.join("aedes.js").is_file().then_some(dir)
}

/// The major version of `node` on PATH, if any.
fn node_major() -> Option<u32> {
    let out = Command::new("node").arg("--version").output().ok()?;
    let v = String::from_utf8_lossy(&out.stdout);
    v.trim().strip_prefix('v')?.split('.').next()?.parse().ok()
}

/// A running aedes on 127.0.0.1 and a port the OS chose; killed on drop.
struct Aedes {
    child: Child,
    port: u16,
}

impl Aedes {
    fn start(aedes: &Path, dir: &TempDir) -> Aedes {
        let script = dir.join("aedes-broker.mjs");
        std::fs::write(
            &script,
            format!(
                "import {{ createServer }} from 'node:net'\n\
                 import {{ Aedes }} from '{}'\n\
                 const broker = await Aedes.createBroker()\n\
                 const server = createServer(broker.handle)\n\
                 server.listen(0, '127.0.0.1', () => console.log('port ' + server.address().port))\n",
                aedes.join("aedes.js").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("node")
            .arg(&script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("aedes did not report its port: {line:?}"));
        Aedes { child, port }
    }
}

impl Drop for Aedes {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(data: &Path, port: u16, qos: u8, version: &str) -> String {
    format!(
        "console-feedback-period-seconds: 60\n\
         data-folder: \"{}\"\n\
         streams:\n\
         \x20 - mqtt-broker-address: \"127.0.0.1\"\n\
         \x20   mqtt-broker-port: {port}\n\
         \x20   topic: \"compat/#\"\n\
         \x20   prefix: \"compat\"\n\
         \x20   suffix: \"\"\n\
         \x20   file-rotation-time-seconds: 3600\n\
         \x20   commit-interval-ms: 100\n\
         \x20   qos: {qos}\n\
         \x20   mqtt-version: {version}\n\
         log-performance: false\n",
        data.display()
    )
}

/// The messages every broker must deliver exactly: `(topic, payload, qos)`.
fn workload() -> Vec<(String, Vec<u8>, u8)> {
    let mut v = Vec::new();
    for qos in 0..=2u8 {
        for i in 0..20u8 {
            v.push((format!("compat/q{qos}/{i}"), vec![qos, i, 0, 255], qos));
        }
    }
    let big: Vec<u8> = (0..200 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    v.push(("compat/big".into(), big, 1));
    v.push(("compat/binary".into(), (0..=255u8).collect(), 1));
    v.push((
        "compat/utf8/ünïcødé/日本".into(),
        "grüße, 世界 🌍".as_bytes().to_vec(),
        2,
    ));
    v.push(("compat/empty".into(), Vec::new(), 1));
    v
}

/// The aedes package folder when aedes can run here; otherwise prints the
/// line that says why the test is skipped.
fn usable_aedes() -> Option<PathBuf> {
    let Some(aedes) = aedes_dir() else {
        eprintln!(
            "skipping broker compatibility with aedes: not installed \
             (npm install --prefix target/brokers aedes@1.2.0, or set ATTIC_AEDES_DIR)"
        );
        return None;
    };
    match node_major() {
        Some(v) if v >= 20 => Some(aedes),
        Some(v) => {
            eprintln!("skipping broker compatibility with aedes: it needs node >= 20, found {v}");
            None
        }
        None => {
            eprintln!("skipping broker compatibility with aedes: no `node` on PATH");
            None
        }
    }
}

#[test]
fn aedes_delivers_everything_and_attic_stores_it_exactly() {
    let Some(aedes) = usable_aedes() else {
        return;
    };
    let dir = TempDir::new("aedes");
    let broker = Aedes::start(&aedes, &dir);
    let data = dir.join("data");

    // Retained before Attic subscribes: must arrive with retain = 1.
    let mut publisher = TestClient::connect(broker.port, "compat-publisher");
    publisher.publish("compat/retained", b"kept", 1, true);

    let mut attic = Attic::start(&config(&data, broker.port, 2, "3.1.1"), &dir);
    attic.wait_log_contains("subscribed; storing", T);

    let load = workload();
    for (topic, payload, qos) in &load {
        publisher.publish(topic, payload, *qos, false);
    }
    publisher.flush();
    let expected = load.len() + 1;
    wait_for_rows(&data, expected, T);
    attic.stop_clean();

    let rows = all_rows(&data);
    let mut stored: BTreeMap<(String, Vec<u8>), usize> = BTreeMap::new();
    for r in &rows {
        *stored
            .entry((r.topic.clone(), r.payload.clone()))
            .or_default() += 1;
    }
    for (topic, payload, qos) in &load {
        let n = stored
            .get(&(topic.clone(), payload.clone()))
            .copied()
            .unwrap_or(0);
        // QoS 0 on loopback and QoS 2 exactly once; QoS 1 at least once.
        match qos {
            1 => assert!(n >= 1, "{topic}: stored {n} times"),
            _ => assert_eq!(n, 1, "{topic} (QoS {qos}): stored {n} times"),
        }
    }
    let retained: Vec<_> = rows
        .iter()
        .filter(|r| r.topic == "compat/retained")
        .collect();
    assert_eq!(retained.len(), 1, "the retained message once");
    assert!(
        retained[0].retain,
        "a message retained before the subscription has retain = 1"
    );
    assert_eq!(retained[0].payload, b"kept");
    let unexpected: Vec<_> = rows
        .iter()
        .filter(|r| {
            r.topic != "compat/retained"
                && !load
                    .iter()
                    .any(|(t, p, _)| *t == r.topic && *p == r.payload)
        })
        .map(|r| r.topic.clone())
        .collect();
    assert!(
        unexpected.is_empty(),
        "rows nobody published: {unexpected:?}"
    );
}

/// aedes speaks MQTT 3.1.1 only: it answers an MQTT 5 CONNECT with a 3.1.1
/// CONNACK "unacceptable protocol version", which Attic must report as such
/// (mqttbytes alone would call it a malformed packet) and keep retrying.
#[test]
fn mqtt_5_against_aedes_says_the_broker_does_not_speak_it() {
    let Some(aedes) = usable_aedes() else {
        return;
    };
    let dir = TempDir::new("aedes-v5");
    let broker = Aedes::start(&aedes, &dir);
    let mut attic = Attic::start(&config(&dir.join("data"), broker.port, 0, "5"), &dir);
    attic.wait_log_contains(
        "broker refused the connection: unsupported protocol version (0x84) \
         (it answered in MQTT 3.1.1: it does not speak MQTT 5; set `mqtt-version: 3.1.1`)",
        T,
    );
    assert!(attic.is_running(), "a refusal is retried, not fatal");
    attic.stop_clean();
}
