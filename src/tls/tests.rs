//! The loaders and the client configuration on PEM files made here.

use super::*;
use crate::tls::test_pki::{Ca, Dir};
use rcgen::ExtendedKeyUsagePurpose;

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
fn load_certs_rejects_a_file_without_certificates() {
    let dir = Dir::new("nocert");
    let p = dir.write("empty.pem", "just text\n");
    let e = load_certs(&p).unwrap_err();
    assert!(e.contains("holds no certificate"), "{e}");
    let missing = dir.0.join("missing.pem");
    let e = load_certs(&missing).unwrap_err();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn load_key_says_when_a_file_holds_no_key() {
    let dir = Dir::new("nokey");
    let ca = Ca::new("test ca");
    let p = dir.write("cert-only.pem", &ca.cert.pem());
    let e = load_key(&p).unwrap_err();
    assert!(e.contains("holds no private key"), "{e}");
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_reported_on_key_file() {
    let dir = Dir::new("mismatch");
    let ca = Ca::new("test ca");
    let a = ca.issue(&["a"], ExtendedKeyUsagePurpose::ClientAuth);
    let b = ca.issue(&["b"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut s = settings(Some(dir.write("ca.pem", &ca.cert.pem())), "localhost");
    s.cert_file = Some(dir.write("a.pem", &a.cert_pem));
    s.key_file = Some(dir.write("b.key", &b.key_pem));
    let e = client_config(&s).unwrap_err();
    assert_eq!(e.key(), "key-file");
    assert!(e.message().contains("is not the key of"), "{e}");
}

#[test]
fn a_cert_file_without_a_key_file_is_reported_on_key_file() {
    let dir = Dir::new("half");
    let ca = Ca::new("test ca");
    let a = ca.issue(&["a"], ExtendedKeyUsagePurpose::ClientAuth);
    let mut s = settings(Some(dir.write("ca.pem", &ca.cert.pem())), "localhost");
    s.cert_file = Some(dir.write("a.pem", &a.cert_pem));
    let e = client_config(&s).unwrap_err();
    assert_eq!(e.to_string(), "tls.key-file: is required with `cert-file`");
}

#[test]
fn a_server_name_must_be_a_dns_name_or_an_ip_address() {
    assert!(server_name("broker.example").is_ok());
    assert!(server_name("10.0.0.1").is_ok());
    let e = server_name("not a name!").unwrap_err();
    assert_eq!(e.key(), "server-name");
}
