//! TLS failures in words: one line that says what went wrong (unknown
//! issuer, name mismatch, expired, client certificate required, not a TLS
//! port) and which `tls:` key fixes it.
//!
//! Owns: the wording. Must not: decide what happens next (the connection's
//! session backs off and retries).

use super::TlsSettings;
use rustls::{AlertDescription, CertificateError};

/// One line, in words, for a TLS failure with `peer` under settings `s`.
pub fn describe(e: &rustls::Error, s: &TlsSettings, peer: &str) -> String {
    use rustls::Error as E;
    let name = &s.server_name;
    let (ca_key, name_fix, cert_fix) = (
        s.origin.ca_file(),
        s.origin.server_name(),
        s.origin.client_cert(),
    );
    let roots = match &s.ca_file {
        Some(p) => format!("the CA in {ca_key} `{}`", p.display()),
        None => format!("any of the system's root certificates (no {ca_key})"),
    };
    let has_client_cert = s.cert_file.is_some();
    let date = |t: &rustls::pki_types::UnixTime| {
        i64::try_from(t.as_secs())
            .ok()
            .and_then(crate::time::utc_date)
            .unwrap_or_else(|| "?".to_owned())
    };
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "TLS: certificate of {peer} has an unknown issuer: it is not signed by {roots}; \
                 set {ca_key} to the CA that signed it"
            ),
            CertificateError::NotValidForName => format!(
                "TLS: name mismatch: the certificate of {peer} is not valid for `{name}`; \
                 {name_fix} a name it carries"
            ),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "TLS: name mismatch: the certificate of {peer} is not valid for `{name}` (it \
                 names {}); {name_fix} one of those",
                if presented.is_empty() {
                    "nothing".to_owned()
                } else {
                    presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::Expired => {
                format!("TLS: the certificate of {peer} has expired")
            }
            CertificateError::ExpiredContext { time, not_after } => format!(
                "TLS: the certificate of {peer} has expired (valid until {}, today is {}; is this \
                 machine's clock right?)",
                date(not_after),
                date(time)
            ),
            CertificateError::NotValidYet => format!(
                "TLS: the certificate of {peer} is not valid yet; is this machine's clock right?"
            ),
            CertificateError::NotValidYetContext { time, not_before } => format!(
                "TLS: the certificate of {peer} is not valid yet (valid from {}, today is {}); is \
                 this machine's clock right?",
                date(not_before),
                date(time)
            ),
            CertificateError::Revoked => {
                format!("TLS: the certificate of {peer} has been revoked")
            }
            other => format!("TLS: the certificate of {peer} was rejected: {other:?}"),
        },
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            format!("TLS: client certificate required: {peer} wants one; {cert_fix}")
        }
        E::AlertReceived(AlertDescription::HandshakeFailure) if !has_client_cert => format!(
            "TLS: {peer} refused the handshake; if it requires a client certificate, \
             {cert_fix}"
        ),
        E::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::DecryptError
            | AlertDescription::HandshakeFailure),
        ) if has_client_cert => format!(
            "TLS: {peer} rejected our client certificate ({a:?}); is tls.cert-file signed by a \
             CA the broker trusts, and still valid?"
        ),
        E::AlertReceived(a) => format!("TLS: {peer} ended the connection with the alert {a:?}"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } => format!(
            "TLS: {peer} does not answer in TLS ({e}); is that port a TLS listener? (plain MQTT \
             is usually 1883, TLS 8883)"
        ),
        other => format!("TLS with {peer} failed: {other}"),
    }
}

/// `localhost` from rustls's `DnsName("localhost")`, `127.0.0.1` from
/// `IpAddress(127.0.0.1)`; anything else as it is.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(origin: super::super::Origin) -> TlsSettings {
        TlsSettings {
            ca_file: Some("ca.pem".into()),
            cert_file: None,
            key_file: None,
            server_name: "broker".into(),
            origin,
        }
    }

    #[test]
    fn a_failure_names_the_setting_of_where_the_settings_came_from() {
        use super::super::Origin;
        let e = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let config = describe(&e, &settings(Origin::Config), "b:8883");
        assert!(config.contains("set tls.ca-file to the CA"), "{config}");
        let replay = describe(&e, &settings(Origin::ReplayFlags), "b:8883");
        assert!(replay.contains("set --tls-ca-file to the CA"), "{replay}");
        assert!(!replay.contains("tls.ca-file"), "{replay}");
        let e = rustls::Error::InvalidCertificate(CertificateError::NotValidForName);
        let replay = describe(&e, &settings(Origin::ReplayFlags), "b:8883");
        assert!(
            replay.contains("give --broker as a name it carries"),
            "{replay}"
        );
    }

    #[test]
    fn presented_names_lose_rustls_debug_wrapping() {
        assert_eq!(bare_name("DnsName(\"localhost\")"), "localhost");
        assert_eq!(bare_name("IpAddress(127.0.0.1)"), "127.0.0.1");
        assert_eq!(bare_name("plain"), "plain");
    }
}
