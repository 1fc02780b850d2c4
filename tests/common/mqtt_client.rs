//! `TestClient`: a tiny blocking MQTT 3.1.1 client on mqttbytes' v4 codecs,
//! used to publish exact (binary) payloads and to subscribe. It answers the
//! broker's QoS 1/2 flows itself and keeps incoming publishes in a queue.

use bytes::BytesMut;
use mqttbytes::QoS;
use mqttbytes::v4::ConnectReturnCode;
use mqttbytes::v4::{
    self, ConnAck, Connect, Disconnect, Packet, PingReq, PubAck, PubComp, PubRec, PubRel, Publish,
    SubAck, Subscribe, SubscribeReasonCode,
};
use std::collections::{HashSet, VecDeque};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Default wait for an acknowledgement from the broker.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest packet the client accepts.
const MAX_PACKET: usize = 256 * 1024 * 1024;
/// Bytes of pipelined QoS 0 publishes written in one `write_all`.
const WRITE_CHUNK: usize = 64 * 1024;
/// QoS 1 publishes kept unacknowledged by `publish_many_qos1`.
pub const QOS1_WINDOW: usize = 16;

/// Maps 0/1/2 to `QoS`; panics otherwise.
pub fn qos(n: u8) -> QoS {
    mqttbytes::qos(n).unwrap_or_else(|_| panic!("QoS must be 0, 1 or 2, not {n}"))
}

/// A connected MQTT client over a blocking `TcpStream`.
#[derive(Debug)]
pub struct TestClient {
    /// The connection to the broker.
    stream: TcpStream,
    /// Bytes read but not yet framed into a packet.
    rx: BytesMut,
    /// Incoming publishes not yet taken by `recv_timeout`.
    inbox: VecDeque<Publish>,
    /// Next packet id to use (1..=65535).
    next_pkid: u16,
    /// Client id, for messages.
    client_id: String,
    /// `session_present` from the CONNACK.
    session_present: bool,
}

impl TestClient {
    /// Connects with a clean session; panics unless the CONNACK accepts.
    pub fn connect(port: u16, client_id: &str) -> TestClient {
        TestClient::connect_with(port, client_id, true)
    }

    /// Connects with the given `clean_session` flag (keep-alive 60 s).
    pub fn connect_with(port: u16, client_id: &str, clean_session: bool) -> TestClient {
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 60;
        connect.clean_session = clean_session;
        TestClient::connect_packet(port, connect)
    }

    /// Connects with a CONNECT packet built by the caller (login, will, ...).
    pub fn connect_packet(port: u16, connect: Connect) -> TestClient {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("TestClient cannot connect to 127.0.0.1:{port}: {e}"));
        stream.set_nodelay(true).expect("set_nodelay");
        let mut c = TestClient {
            stream,
            rx: BytesMut::with_capacity(64 * 1024),
            inbox: VecDeque::new(),
            next_pkid: 1,
            client_id: connect.client_id.clone(),
            session_present: false,
        };
        // mqttbytes 0.6 patches CONNECT flags at an absolute index: encode
        // into an empty buffer only.
        let mut buf = BytesMut::new();
        connect.write(&mut buf).expect("encode CONNECT");
        c.write(&buf);
        match c.next_control_packet(ACK_TIMEOUT, "CONNACK") {
            Packet::ConnAck(ConnAck {
                code: ConnectReturnCode::Success,
                session_present,
            }) => c.session_present = session_present,
            other => panic!(
                "client {}: expected a successful CONNACK from port {port}, got {other:?}",
                c.client_id
            ),
        }
        c
    }

    /// `session_present` from the broker's CONNACK.
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// Publishes one message; for QoS 1 waits for PUBACK, for QoS 2 runs
    /// PUBREC -> PUBREL -> PUBCOMP.
    pub fn publish(&mut self, topic: &str, payload: &[u8], qos_level: u8, retain: bool) {
        let q = qos(qos_level);
        let pkid = if q == QoS::AtMostOnce { 0 } else { self.pkid() };
        let mut p = Publish::new(topic, q, payload);
        p.retain = retain;
        p.pkid = pkid;
        self.send(|b| p.write(b));
        match q {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => match self.next_control_packet(ACK_TIMEOUT, "PUBACK") {
                Packet::PubAck(a) if a.pkid == pkid => {}
                other => panic!("expected PUBACK {pkid} for {topic}, got {other:?}"),
            },
            QoS::ExactlyOnce => {
                match self.next_control_packet(ACK_TIMEOUT, "PUBREC") {
                    Packet::PubRec(a) if a.pkid == pkid => {}
                    other => panic!("expected PUBREC {pkid} for {topic}, got {other:?}"),
                }
                self.send(|b| PubRel::new(pkid).write(b));
                match self.next_control_packet(ACK_TIMEOUT, "PUBCOMP") {
                    Packet::PubComp(a) if a.pkid == pkid => {}
                    other => panic!("expected PUBCOMP {pkid} for {topic}, got {other:?}"),
                }
            }
        }
    }

    /// Publishes `count` QoS 0 messages as fast as the socket takes them;
    /// `make(i)` gives topic and payload of message `i`. Call `flush()`
    /// afterwards to know the broker has read them all.
    pub fn publish_many(&mut self, count: usize, mut make: impl FnMut(usize) -> (String, Vec<u8>)) {
        let mut buf = BytesMut::with_capacity(WRITE_CHUNK * 2);
        for i in 0..count {
            let (topic, payload) = make(i);
            Publish::new(topic, QoS::AtMostOnce, payload)
                .write(&mut buf)
                .expect("encode PUBLISH");
            if buf.len() >= WRITE_CHUNK {
                self.write(&buf);
                buf.clear();
            }
        }
        self.write(&buf);
    }

    /// Publishes `count` QoS 1 messages keeping up to [`QOS1_WINDOW`]
    /// unacknowledged; returns when every one is acknowledged.
    pub fn publish_many_qos1(
        &mut self,
        count: usize,
        mut make: impl FnMut(usize) -> (String, Vec<u8>),
    ) {
        let mut in_flight: HashSet<u16> = HashSet::new();
        let mut sent = 0;
        while sent < count || !in_flight.is_empty() {
            while sent < count && in_flight.len() < QOS1_WINDOW {
                let (topic, payload) = make(sent);
                let pkid = self.pkid();
                let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
                p.pkid = pkid;
                self.send(|b| p.write(b));
                in_flight.insert(pkid);
                sent += 1;
            }
            match self.next_control_packet(ACK_TIMEOUT, "PUBACK") {
                Packet::PubAck(a) if in_flight.remove(&a.pkid) => {}
                other => panic!(
                    "expected a PUBACK for one of {in_flight:?} ({sent}/{count} sent), got {other:?}"
                ),
            }
        }
    }

    /// Subscribes and returns the granted QoS; panics if refused.
    pub fn subscribe(&mut self, filter: &str, qos_level: u8) -> u8 {
        let pkid = self.pkid();
        let mut s = Subscribe::new(filter, qos(qos_level));
        s.pkid = pkid;
        self.send(|b| s.write(b));
        match self.next_control_packet(ACK_TIMEOUT, "SUBACK") {
            Packet::SubAck(SubAck {
                pkid: id,
                return_codes,
            }) if id == pkid => match return_codes.as_slice() {
                [SubscribeReasonCode::Success(q)] => *q as u8,
                other => panic!("subscription to {filter:?} refused: {other:?}"),
            },
            other => panic!("expected SUBACK {pkid} for {filter:?}, got {other:?}"),
        }
    }

    /// The next incoming publish, or `None` after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Publish> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(p) = self.inbox.pop_front() {
                return Some(p);
            }
            let packet = self.read_packet(deadline)?;
            if let Some(other) = self.handle(packet) {
                panic!(
                    "client {}: unexpected {other:?} while waiting for a PUBLISH",
                    self.client_id
                );
            }
        }
    }

    /// Receives exactly `n` publishes, panicking if they do not all arrive
    /// within `timeout`.
    pub fn recv_n(&mut self, n: usize, timeout: Duration) -> Vec<Publish> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            match self.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Some(p) => got.push(p),
                None => panic!(
                    "client {}: received {} of {n} expected messages within {timeout:?}",
                    self.client_id,
                    got.len()
                ),
            }
        }
        got
    }

    /// PINGREQ and wait for PINGRESP: the broker has read everything sent before.
    pub fn flush(&mut self) {
        self.send(|b| PingReq.write(b));
        match self.next_control_packet(ACK_TIMEOUT, "PINGRESP") {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// Sends DISCONNECT and waits until the broker closes the connection
    /// (so it has handled everything sent before).
    pub fn disconnect(mut self) {
        self.send(|b| Disconnect.write(b));
        let _ = self.stream.shutdown(Shutdown::Write);
        let deadline = Instant::now() + ACK_TIMEOUT;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "client {}: broker did not close the connection after DISCONNECT",
                self.client_id
            );
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // A reset after DISCONNECT is a close too.
                Err(_) => return,
            }
        }
    }

    /// Writes raw bytes (for protocol-violation tests).
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.write(bytes);
    }

    fn pkid(&mut self) -> u16 {
        let id = self.next_pkid;
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        id
    }

    fn send(&mut self, encode: impl FnOnce(&mut BytesMut) -> Result<usize, mqttbytes::Error>) {
        let mut buf = BytesMut::new();
        encode(&mut buf).unwrap_or_else(|e| panic!("cannot encode packet: {e:?}"));
        self.write(&buf);
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("client {}: write to broker failed: {e}", self.client_id));
    }

    /// Answers QoS flows and queues publishes; returns any other packet.
    fn handle(&mut self, packet: Packet) -> Option<Packet> {
        match packet {
            Packet::Publish(p) => {
                match p.qos {
                    QoS::AtMostOnce => {}
                    QoS::AtLeastOnce => self.send(|b| PubAck::new(p.pkid).write(b)),
                    QoS::ExactlyOnce => self.send(|b| PubRec::new(p.pkid).write(b)),
                }
                self.inbox.push_back(p);
                None
            }
            Packet::PubRel(r) => {
                self.send(|b| PubComp::new(r.pkid).write(b));
                None
            }
            other => Some(other),
        }
    }

    /// The next packet that is not an incoming PUBLISH flow; panics on timeout.
    fn next_control_packet(&mut self, timeout: Duration, what: &str) -> Packet {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(packet) = self.read_packet(deadline) else {
                panic!(
                    "client {}: no {what} from the broker within {timeout:?}",
                    self.client_id
                );
            };
            if let Some(p) = self.handle(packet) {
                return p;
            }
        }
    }

    /// Frames one packet, reading more bytes as needed; `None` at the deadline.
    fn read_packet(&mut self, deadline: Instant) -> Option<Packet> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match v4::read(&mut self.rx, MAX_PACKET) {
                Ok(p) => return Some(p),
                Err(mqttbytes::Error::InsufficientBytes(_)) => {}
                Err(e) => panic!(
                    "client {}: malformed packet from broker: {e:?}",
                    self.client_id
                ),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left))
                .expect("set_read_timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => panic!("client {}: broker closed the connection", self.client_id),
                Ok(n) => self.rx.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("client {}: read from broker failed: {e}", self.client_id),
            }
        }
    }
}
