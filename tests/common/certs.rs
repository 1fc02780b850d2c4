//! `TestPki`: a CA, a broker certificate for `localhost` and 127.0.0.1, a
//! client certificate, and a second CA that signed nothing of these, as PEM
//! files in a folder, made with rcgen for each test.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use std::path::{Path, PathBuf};

/// The PEM files of one test's certificates.
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA that signed the broker's and the client's certificates.
    pub ca: PathBuf,
    /// A CA that signed neither (for "unknown issuer").
    pub other_ca: PathBuf,
    /// The broker's certificate: `localhost` and `127.0.0.1`.
    pub server_cert: PathBuf,
    /// Its key.
    pub server_key: PathBuf,
    /// A client certificate signed by `ca`.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
}

fn ca(name: &str) -> (Certificate, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().expect("CA key");
    (p.self_signed(&key).expect("self-signed CA"), key)
}

fn issue(
    names: &[&str],
    purpose: ExtendedKeyUsagePurpose,
    by: &(Certificate, KeyPair),
) -> (String, String) {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).expect("certificate params");
    p.extended_key_usages = vec![purpose];
    p.distinguished_name.push(DnType::CommonName, "attic test");
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, &by.0, &by.1).expect("sign certificate");
    (cert.pem(), key.serialize_pem())
}

impl TestPki {
    /// Writes a fresh set of certificates into `dir`.
    pub fn new(dir: &Path) -> TestPki {
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
            p
        };
        let root = ca("attic test CA");
        let other = ca("some other CA");
        let (server_cert, server_key) = issue(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &root,
        );
        let (client_cert, client_key) =
            issue(&["attic"], ExtendedKeyUsagePurpose::ClientAuth, &root);
        TestPki {
            ca: write("ca.pem", &root.0.pem()),
            other_ca: write("other-ca.pem", &other.0.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
        }
    }
}
