//! `FakeBroker`: a scripted broker for the faults a real one will not
//! produce (garbage, truncated or oversize frames, refusals, silence). Each
//! accepted connection runs the script in its own thread; the number of
//! connections is counted so tests can assert "reconnected" or "did not
//! reconnect in a loop". Raw fault frames are plain functions below.

use bytes::BytesMut;
use mqttbytes::QoS;
use mqttbytes::v4::ConnectReturnCode;
use mqttbytes::v4::{
    self, ConnAck, Connect, Packet, PingResp, Publish, SubAck, Subscribe, SubscribeReasonCode,
};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Default wait for a packet the script expects.
const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest frame the fake broker decodes.
const MAX_PACKET: usize = 256 * 1024 * 1024;

/// A script run once per accepted connection.
type Script = dyn Fn(&mut FakeConn) + Send + Sync + 'static;

/// State shared by the accept thread and the test.
#[derive(Default)]
struct Shared {
    /// Connections accepted so far.
    connections: AtomicUsize,
    /// Set on drop to end the accept loop.
    stop: AtomicBool,
    /// Panic messages of scripts (a failed `expect_*`), reported to the test.
    failures: Mutex<Vec<String>>,
}

/// The fake broker; dropping it stops accepting and closes nothing else
/// (script threads end when their peer closes or their script returns).
pub struct FakeBroker {
    /// 127.0.0.1 port it listens on.
    port: u16,
    /// Counters and failures shared with the accept thread.
    shared: Arc<Shared>,
    /// The accept thread, joined on drop.
    acceptor: Option<JoinHandle<()>>,
}

impl FakeBroker {
    /// Listens on a free port and runs `script` for every connection.
    pub fn start(script: impl Fn(&mut FakeConn) + Send + Sync + 'static) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").expect("FakeBroker: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("FakeBroker: local_addr")
            .port();
        let shared = Arc::new(Shared::default());
        let script: Arc<Script> = Arc::new(script);
        let acceptor = {
            let shared = Arc::clone(&shared);
            std::thread::spawn(move || accept_loop(listener, shared, script))
        };
        FakeBroker {
            port,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// A fake broker that accepts CONNECT and every SUBSCRIBE, then answers
    /// pings until the client leaves: a well-behaved baseline.
    pub fn well_behaved() -> FakeBroker {
        FakeBroker::start(|c| {
            c.handshake();
            c.serve_until_closed(|_, _| {});
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections have been accepted.
    pub fn wait_for_connections(&self, n: usize, timeout: Duration) {
        super::wait_until(
            timeout,
            format_args!("{n} connections to the fake broker on port {}", self.port),
            || self.connections() >= n,
        );
    }

    /// Panic messages of scripts that failed so far.
    pub fn script_failures(&self) -> Vec<String> {
        self.shared.failures.lock().expect("failures lock").clone()
    }

    /// Panics if any script failed (e.g. an `expect_*` got something else).
    pub fn assert_scripts_ok(&self) {
        let f = self.script_failures();
        assert!(f.is_empty(), "fake broker script failed: {f:#?}");
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept().
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, script: Arc<Script>) {
    for (index, stream) in listener.incoming().enumerate() {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = Arc::clone(&shared);
        let script = Arc::clone(&script);
        std::thread::spawn(move || {
            let _ = stream.set_nodelay(true);
            let mut conn = FakeConn {
                stream,
                rx: BytesMut::new(),
                index,
                closed: false,
            };
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| script(&mut conn)));
            if let Err(e) = result {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_string()))
                    .unwrap_or_else(|| "non-string panic".to_string());
                shared
                    .failures
                    .lock()
                    .expect("failures lock")
                    .push(format!("connection {index}: {msg}"));
            }
        });
    }
}

/// One accepted connection, as seen by the script.
pub struct FakeConn {
    /// The socket to the client under test.
    stream: TcpStream,
    /// Bytes read but not yet framed.
    rx: BytesMut,
    /// 0 for the first connection accepted, 1 for the next, ...
    index: usize,
    /// The peer closed (read returned 0 or failed).
    closed: bool,
}

impl FakeConn {
    /// 0-based number of this connection (scripts can misbehave only on the first).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the client has closed the connection (as far as seen so far).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The next packet from the client; `None` on timeout or when the client
    /// closed. Panics on a malformed frame.
    pub fn read_packet(&mut self, timeout: Duration) -> Option<Packet> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match v4::read(&mut self.rx, MAX_PACKET) {
                Ok(p) => return Some(p),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!("malformed packet from the client: {e:?}"),
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next frame from the client as `(first byte, body)`, whatever its
    /// protocol version (MQTT 5 scripts read these); `None` on timeout or
    /// when the client closed.
    pub fn read_frame(&mut self, timeout: Duration) -> Option<(u8, Vec<u8>)> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some((header, len)) = frame_header(&self.rx) {
                if self.rx.len() >= header + len {
                    let frame = self.rx.split_to(header + len);
                    return Some((frame[0], frame[header..].to_vec()));
                }
            }
            if self.closed {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => self.closed = true,
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => self.closed = true,
            }
        }
    }

    /// The next frame, which must arrive within 10 s and start with
    /// `byte1`; returns its body.
    pub fn expect_frame(&mut self, byte1: u8, what: &str) -> Vec<u8> {
        loop {
            match self.read_frame(EXPECT_TIMEOUT) {
                Some((0xC0, _)) => self.send_raw(&[0xD0, 0x00]), // PINGREQ
                Some((b, body)) if b == byte1 => return body,
                Some((b, _)) => panic!("expected {what}, got a frame starting 0x{b:02x}"),
                None => panic!("expected {what}, got nothing (closed: {})", self.closed),
            }
        }
    }

    /// MQTT 5: CONNECT (protocol level 5 checked), then a successful
    /// CONNACK with no properties; returns the CONNECT's body.
    pub fn handshake5(&mut self, session_present: bool) -> Vec<u8> {
        let connect = self.expect_frame(0x10, "an MQTT 5 CONNECT");
        assert_eq!(connect.get(6), Some(&5), "protocol level 5");
        self.send_raw(&[0x20, 0x03, u8::from(session_present), 0x00, 0x00]);
        connect
    }

    /// MQTT 5: SUBSCRIBE of one filter, granted at `qos`.
    pub fn accept_subscription5(&mut self, qos: u8) {
        let sub = self.expect_frame(0x82, "an MQTT 5 SUBSCRIBE");
        self.send_raw(&[0x90, 0x04, sub[0], sub[1], 0x00, qos]);
    }

    /// The next packet, which must arrive within 10 s; `what` names it in the panic.
    pub fn expect_packet(&mut self, what: &str) -> Packet {
        match self.read_packet(EXPECT_TIMEOUT) {
            Some(p) => p,
            None if self.closed => panic!("expected {what}, but the client closed the connection"),
            None => panic!("expected {what} within {EXPECT_TIMEOUT:?}, got nothing"),
        }
    }

    /// The client's CONNECT.
    pub fn expect_connect(&mut self) -> Connect {
        match self.expect_packet("CONNECT") {
            Packet::Connect(c) => c,
            other => panic!("expected CONNECT, got {other:?}"),
        }
    }

    /// Sends CONNACK.
    pub fn send_connack(&mut self, session_present: bool, code: ConnectReturnCode) {
        self.send(|b| ConnAck::new(code, session_present).write(b));
    }

    /// CONNECT then a successful CONNACK without a session; returns the CONNECT.
    pub fn handshake(&mut self) -> Connect {
        let c = self.expect_connect();
        self.send_connack(false, ConnectReturnCode::Success);
        c
    }

    /// The client's SUBSCRIBE (PINGREQs before it are answered).
    pub fn expect_subscribe(&mut self) -> Subscribe {
        loop {
            match self.expect_packet("SUBSCRIBE") {
                Packet::Subscribe(s) => return s,
                Packet::PingReq => self.send(|b| PingResp.write(b)),
                other => panic!("expected SUBSCRIBE, got {other:?}"),
            }
        }
    }

    /// Sends SUBACK with the given return codes.
    pub fn send_suback(&mut self, pkid: u16, codes: Vec<SubscribeReasonCode>) {
        self.send(|b| SubAck::new(pkid, codes).write(b));
    }

    /// Expects SUBSCRIBE and grants every filter its requested QoS.
    pub fn accept_subscription(&mut self) -> Subscribe {
        let s = self.expect_subscribe();
        let codes = s
            .filters
            .iter()
            .map(|f| SubscribeReasonCode::Success(f.qos))
            .collect();
        self.send_suback(s.pkid, codes);
        s
    }

    /// Sends a PUBLISH (`pkid` is ignored for QoS 0).
    pub fn send_publish(&mut self, topic: &str, payload: &[u8], qos: u8, retain: bool, pkid: u16) {
        self.send_raw(&publish_frame(topic, payload, qos, retain, pkid));
    }

    /// Writes bytes as they are; a failed write (client gone) is ignored so
    /// scripts can keep going.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        if self.stream.write_all(bytes).is_err() {
            self.closed = true;
        }
    }

    /// Sends nothing for `dur`, reading (and returning) what the client sends
    /// meanwhile, without answering; returns early if the client closes.
    pub fn silence(&mut self, dur: Duration) -> Vec<Packet> {
        let deadline = Instant::now() + dur;
        let mut got = Vec::new();
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            if let Some(p) = self.read_packet(left) {
                got.push(p);
            }
        }
        got
    }

    /// Answers PINGREQ and SUBSCRIBE, hands every other packet to `on_packet`,
    /// until the client closes (or sends DISCONNECT).
    pub fn serve_until_closed(&mut self, mut on_packet: impl FnMut(&mut FakeConn, Packet)) {
        while !self.closed {
            match self.read_packet(Duration::from_secs(3600)) {
                Some(Packet::PingReq) => self.send(|b| PingResp.write(b)),
                Some(Packet::Subscribe(s)) => {
                    let codes = s
                        .filters
                        .iter()
                        .map(|f| SubscribeReasonCode::Success(f.qos))
                        .collect();
                    self.send_suback(s.pkid, codes);
                }
                Some(Packet::Disconnect) => return,
                Some(p) => on_packet(self, p),
                None => {}
            }
        }
    }

    /// True if the client closes the connection within `timeout` (packets
    /// it sends meanwhile are discarded).
    pub fn wait_closed(&mut self, timeout: Duration) -> bool {
        self.silence(timeout);
        self.closed
    }

    /// Closes the connection (both directions).
    pub fn close(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.closed = true;
    }

    fn send(&mut self, encode: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) {
        let mut buf = BytesMut::new();
        encode(&mut buf).unwrap_or_else(|e| panic!("cannot encode packet: {e:?}"));
        self.send_raw(&buf);
    }
}

// ---- raw frames -----------------------------------------------------------
//
//   byte 0      packet type (high nibble) | flags (low nibble)
//   bytes 1..4  remaining length, 7 bits per byte, high bit = "more"
//   then        variable header + payload (remaining length bytes)

/// `(header length, remaining length)` of the frame at the front of `buf`,
/// once its fixed header is complete.
fn frame_header(buf: &[u8]) -> Option<(usize, usize)> {
    let mut len = 0usize;
    for i in 0..4 {
        let b = *buf.get(1 + i)?;
        len |= usize::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((2 + i, len));
        }
    }
    panic!("malformed remaining length from the client")
}

/// An MQTT 5 PUBLISH frame with an optional Topic Alias property (`pkid`
/// ignored for QoS 0; an empty `topic` uses the alias).
pub fn publish5_frame(
    topic: &str,
    payload: &[u8],
    qos: u8,
    pkid: u16,
    alias: Option<u16>,
) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        &u16::try_from(topic.len())
            .expect("topic length")
            .to_be_bytes(),
    );
    body.extend_from_slice(topic.as_bytes());
    if qos > 0 {
        body.extend_from_slice(&pkid.to_be_bytes());
    }
    match alias {
        Some(a) => {
            body.extend_from_slice(&[3, 0x23]);
            body.extend_from_slice(&a.to_be_bytes());
        }
        None => body.push(0),
    }
    body.extend_from_slice(payload);
    let mut frame = vec![0x30 | (qos << 1)];
    frame.extend(remaining_length(body.len()));
    frame.extend(body);
    frame
}

/// A well-formed PUBLISH frame (`pkid` ignored for QoS 0).
pub fn publish_frame(topic: &str, payload: &[u8], qos: u8, retain: bool, pkid: u16) -> Vec<u8> {
    let q = mqttbytes::qos(qos).unwrap_or_else(|_| panic!("QoS must be 0, 1 or 2, not {qos}"));
    let mut p = Publish::new(topic, q, payload);
    p.retain = retain;
    p.pkid = if q == QoS::AtMostOnce { 0 } else { pkid };
    let mut buf = BytesMut::new();
    p.write(&mut buf).expect("encode PUBLISH");
    buf.to_vec()
}

/// Bytes that are no MQTT packet: type 0 is reserved.
pub fn garbage() -> Vec<u8> {
    vec![0x00, 0x04, 0xDE, 0xAD, 0xBE, 0xEF]
}

/// A remaining length with the "more" bit set in all four bytes.
pub fn malformed_remaining_length() -> Vec<u8> {
    vec![0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]
}

/// The remaining-length bytes for `len` (MQTT variable byte integer).
pub fn remaining_length(mut len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let mut byte = u8::try_from(len % 128).expect("< 128");
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.push(byte);
        if len == 0 {
            return out;
        }
    }
}

/// Size claimed by [`huge_remaining_length_header`]: about 200 MB.
pub const HUGE_LEN: usize = 200_000_000;

/// A PUBLISH fixed header claiming ~200 MB, and nothing after it.
pub fn huge_remaining_length_header() -> Vec<u8> {
    let mut v = vec![0x30];
    v.extend(remaining_length(HUGE_LEN));
    v
}

/// A PUBLISH whose topic length (16) runs past the end of the packet.
pub fn topic_len_beyond_packet() -> Vec<u8> {
    vec![0x30, 0x05, 0x00, 0x10, b'a', b'b', b'c']
}

/// A QoS 0 PUBLISH whose topic is not UTF-8 (0xC3 0x28), payload "x".
pub fn invalid_utf8_topic_publish() -> Vec<u8> {
    vec![0x30, 0x05, 0x00, 0x02, 0xC3, 0x28, b'x']
}

/// A CONNECT, which a broker never sends to a client.
pub fn unexpected_packet() -> Vec<u8> {
    let mut buf = BytesMut::new(); // CONNECT: empty buffer only (mqttbytes 0.6)
    Connect::new("fake-broker")
        .write(&mut buf)
        .expect("encode CONNECT");
    buf.to_vec()
}

/// PUBACK for packet id 0xBEEF, which the client never used.
pub fn puback_for_unknown_id() -> Vec<u8> {
    vec![0x40, 0x02, 0xBE, 0xEF]
}

/// The first half of a valid PUBLISH: a frame cut short.
pub fn truncated_publish() -> Vec<u8> {
    let mut f = publish_frame("attic/test/truncated", &[0xAB; 32], 0, false, 0);
    f.truncate(f.len() / 2);
    f
}
