//! The TLS driver against an in-memory rustls server: no socket, no
//! network. Certificates are made with rcgen (`tls::test_pki`).

use super::*;
use crate::tls::test_pki::{Ca, Dir, Issued};
use rcgen::ExtendedKeyUsagePurpose;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ServerConnection, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use std::collections::VecDeque;
use std::path::PathBuf;

/// Both directions of an in-memory connection, as the client sees it.
#[derive(Default)]
struct Pipe {
    /// Bytes from the server, not yet read by the client.
    to_client: VecDeque<u8>,
    /// Bytes from the client, not yet read by the server.
    to_server: Vec<u8>,
    /// The server closed its side (TCP FIN).
    closed: bool,
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.to_client.is_empty() {
            return if self.closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(self.to_client.len());
        for (b, v) in buf.iter_mut().zip(self.to_client.drain(..n)) {
            *b = v;
        }
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.to_server.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(server: &Issued, client_ca: Option<&Ca>) -> Arc<ServerConfig> {
    let chain = vec![CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(server.key_pem.as_bytes()).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.cert.der().clone()).unwrap();
            let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    Arc::new(builder.with_single_cert(chain, key).unwrap())
}

/// What came of driving client and server against each other.
#[derive(Debug)]
struct Outcome {
    /// Plaintext the server received.
    server_got: Vec<u8>,
    /// Plaintext the client read.
    client_got: Vec<u8>,
    /// The client's error, if any.
    client_error: Option<String>,
}

/// Runs a client (`settings`) against `server`: the client sends `send`
/// (from before the handshake), the server answers `reply` once it has
/// read it.
fn exchange(
    settings: TlsSettings,
    server: Arc<ServerConfig>,
    send: &[u8],
    reply: &[u8],
) -> Outcome {
    let mut tls = Tls::new(settings, "broker:8883".into());
    tls.start().unwrap();
    let mut srv = ServerConnection::new(server).unwrap();
    let mut pipe = Pipe::default();
    let mut out = BytesMut::from(send);
    let mut outcome = Outcome {
        server_got: Vec::new(),
        client_got: Vec::new(),
        client_error: None,
    };
    let mut replied = false;
    let mut buf = [0u8; 1024];
    for _ in 0..20 {
        assert!(tls.write(&mut pipe, &mut out).unwrap());
        // Server turn.
        let mut incoming = &pipe.to_server[..];
        while !incoming.is_empty() {
            srv.read_tls(&mut incoming).unwrap();
            if srv.process_new_packets().is_err() {
                break;
            }
        }
        pipe.to_server.clear();
        let mut got = Vec::new();
        let _ = srv.reader().read_to_end(&mut got);
        outcome.server_got.extend_from_slice(&got);
        if !replied && outcome.server_got == send && !srv.is_handshaking() {
            srv.writer().write_all(reply).unwrap();
            replied = true;
        }
        let mut to_client = Vec::new();
        while srv.wants_write() {
            srv.write_tls(&mut to_client).unwrap();
        }
        pipe.to_client.extend(to_client);
        // Client turn.
        loop {
            match tls.read(&mut pipe, &mut buf) {
                Ok(ReadOutcome::Data(n)) => outcome.client_got.extend_from_slice(&buf[..n]),
                Ok(_) => break,
                Err(e) => {
                    outcome.client_error = Some(e.to_string());
                    return outcome;
                }
            }
        }
        if outcome.client_got == reply && replied {
            return outcome;
        }
    }
    outcome
}

fn settings(ca: Option<PathBuf>, server_name: &str) -> TlsSettings {
    TlsSettings {
        ca_file: ca,
        cert_file: None,
        key_file: None,
        server_name: server_name.to_owned(),
        origin: crate::tls::Origin::Config,
    }
}

#[test]
fn a_handshake_with_a_trusted_ca_carries_plaintext_both_ways() {
    let dir = Dir::new("ok");
    let ca = Ca::new("test ca");
    let server = ca.issue(
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    for name in ["localhost", "127.0.0.1"] {
        let o = exchange(
            settings(Some(ca_file.clone()), name),
            server_config(&server, None),
            b"CONNECT bytes written before the handshake finished",
            b"CONNACK",
        );
        assert_eq!(o.client_error, None, "{name}");
        assert_eq!(
            o.server_got,
            b"CONNECT bytes written before the handshake finished"
        );
        assert_eq!(o.client_got, b"CONNACK");
    }
}

#[test]
fn an_unknown_issuer_is_one_line_that_names_the_ca_file() {
    let dir = Dir::new("issuer");
    let ca = Ca::new("real ca");
    let other = Ca::new("other ca");
    let server = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let ca_file = dir.write("other.pem", &other.cert.pem());
    let o = exchange(
        settings(Some(ca_file.clone()), "localhost"),
        server_config(&server, None),
        b"x",
        b"y",
    );
    let e = o.client_error.expect("an unknown issuer must fail");
    assert!(e.contains("unknown issuer"), "{e}");
    assert!(e.contains(&ca_file.display().to_string()), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(
        o.server_got.is_empty(),
        "no plaintext may reach an untrusted peer"
    );
}

#[test]
fn a_name_mismatch_names_the_expected_and_presented_names() {
    let dir = Dir::new("name");
    let ca = Ca::new("test ca");
    let server = ca.issue(&["broker.example"], ExtendedKeyUsagePurpose::ServerAuth);
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let o = exchange(
        settings(Some(ca_file), "localhost"),
        server_config(&server, None),
        b"x",
        b"y",
    );
    let e = o.client_error.expect("a wrong name must fail");
    assert!(e.contains("name mismatch"), "{e}");
    assert!(e.contains("`localhost`"), "{e}");
    assert!(e.contains("(it names broker.example)"), "{e}");
    assert!(e.contains("tls.server-name"), "{e}");
}

#[test]
fn an_expired_certificate_says_expired_with_its_date() {
    let dir = Dir::new("expired");
    let ca = Ca::new("test ca");
    let server = ca.issue_with(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth, |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 3, 4);
    });
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let o = exchange(
        settings(Some(ca_file), "localhost"),
        server_config(&server, None),
        b"x",
        b"y",
    );
    let e = o.client_error.expect("an expired certificate must fail");
    assert!(e.contains("has expired"), "{e}");
    assert!(e.contains("2002-03-04"), "{e}");
}

#[test]
fn a_broker_that_requires_a_client_certificate_says_so_when_none_is_set() {
    let dir = Dir::new("required");
    let ca = Ca::new("test ca");
    let server = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let ca_file = dir.write("ca.pem", &ca.cert.pem());
    let o = exchange(
        settings(Some(ca_file), "localhost"),
        server_config(&server, Some(&ca)),
        b"x",
        b"y",
    );
    let e = o
        .client_error
        .expect("a missing client certificate must fail");
    assert!(e.contains("client certificate"), "{e}");
    assert!(e.contains("tls.cert-file"), "{e}");
}

#[test]
fn a_client_certificate_is_presented_and_accepted() {
    let dir = Dir::new("client");
    let ca = Ca::new("test ca");
    let server = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let client = ca.issue(&["attic"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut s = settings(Some(dir.write("ca.pem", &ca.cert.pem())), "localhost");
    s.cert_file = Some(dir.write("client.pem", &client.cert_pem));
    s.key_file = Some(dir.write("client.key", &client.key_pem));
    let o = exchange(s, server_config(&server, Some(&ca)), b"hello", b"world");
    assert_eq!(o.client_error, None);
    assert_eq!(o.client_got, b"world");
}

#[test]
fn a_client_certificate_from_another_ca_is_reported_as_rejected() {
    let dir = Dir::new("client-other");
    let ca = Ca::new("test ca");
    let stranger = Ca::new("stranger");
    let server = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let client = stranger.issue(&["attic"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut s = settings(Some(dir.write("ca.pem", &ca.cert.pem())), "localhost");
    s.cert_file = Some(dir.write("client.pem", &client.cert_pem));
    s.key_file = Some(dir.write("client.key", &client.key_pem));
    let o = exchange(s, server_config(&server, Some(&ca)), b"hello", b"world");
    let e = o
        .client_error
        .expect("an untrusted client certificate must fail");
    assert!(e.contains("rejected our client certificate"), "{e}");
}

#[test]
fn a_peer_that_closes_during_the_handshake_is_asked_about_a_tls_port() {
    let mut tls = Tls::new(settings(None, "localhost"), "broker:1883".into());
    // Build with an explicit CA so the test does not depend on the OS store.
    let dir = Dir::new("plain");
    let ca = Ca::new("test ca");
    tls.settings.ca_file = Some(dir.write("ca.pem", &ca.cert.pem()));
    tls.start().unwrap();
    let mut pipe = Pipe::default();
    assert!(tls.write(&mut pipe, &mut BytesMut::new()).unwrap());
    assert!(
        !pipe.to_server.is_empty(),
        "the ClientHello goes out at once"
    );
    pipe.closed = true;
    let e = tls.read(&mut pipe, &mut [0u8; 64]).unwrap_err().to_string();
    assert!(e.contains("during the TLS handshake"), "{e}");
    assert!(e.contains("broker:1883"), "{e}");
}

#[test]
fn a_short_read_means_everything_received_has_been_read() {
    let dir = Dir::new("short");
    let ca = Ca::new("test ca");
    let server = ca.issue(&["localhost"], ExtendedKeyUsagePurpose::ServerAuth);
    let s = settings(Some(dir.write("ca.pem", &ca.cert.pem())), "localhost");
    // 100 KB arrive in several TLS records; 4 KiB reads are all full but
    // the last.
    let reply: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let mut tls = Tls::new(s, "broker:8883".into());
    tls.start().unwrap();
    let mut srv = ServerConnection::new(server_config(&server, None)).unwrap();
    srv.set_buffer_limit(None);
    let mut pipe = Pipe::default();
    for _ in 0..10 {
        tls.write(&mut pipe, &mut BytesMut::new()).unwrap();
        let mut incoming = &pipe.to_server[..];
        while !incoming.is_empty() {
            srv.read_tls(&mut incoming).unwrap();
            srv.process_new_packets().unwrap();
        }
        pipe.to_server.clear();
        let mut to_client = Vec::new();
        while srv.wants_write() {
            srv.write_tls(&mut to_client).unwrap();
        }
        pipe.to_client.extend(to_client);
        let _ = tls.read(&mut pipe, &mut [0u8; 16]);
        if !srv.is_handshaking() {
            break;
        }
    }
    srv.writer().write_all(&reply).unwrap();
    let mut to_client = Vec::new();
    while srv.wants_write() {
        srv.write_tls(&mut to_client).unwrap();
    }
    pipe.to_client.extend(to_client);
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tls.read(&mut pipe, &mut buf).unwrap() {
            ReadOutcome::Data(n) => {
                got.extend_from_slice(&buf[..n]);
                if n < buf.len() {
                    break;
                }
            }
            other => panic!("expected data, got {other:?}"),
        }
    }
    assert_eq!(got.len(), reply.len(), "a short read came before the end");
    assert_eq!(got, reply);
    assert!(pipe.to_client.is_empty());
}

#[test]
fn a_tls_failure_is_logged_as_its_own_sentence_and_other_errors_as_read_errors() {
    let tls = Failure::io("TLS: name mismatch: ...".to_owned());
    assert_eq!(crate::net::read_failure(&tls), "TLS: name mismatch: ...");
    let plain = io::Error::from(io::ErrorKind::ConnectionReset);
    assert!(crate::net::read_failure(&plain).starts_with("read error: "));
}
