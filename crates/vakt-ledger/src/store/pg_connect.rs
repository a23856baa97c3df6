//! How vakt reaches the shared PostgreSQL store.
//!
//! **The password** may be left out of the URL, which the data directory
//! keeps (`ledger.db`, readable by its owner only), and given in
//! `PGPASSWORD` instead, as libpq takes it.
//!
//! **TLS**, chosen by the URL as libpq does:
//! `sslmode=verify-full&sslrootcert=/path/ca.pem` checks the server's
//! certificate chain against that CA and its name against the host;
//! `sslmode=require` encrypts without checking who answers (libpq's
//! meaning, which a machine in the path can intercept: use it only where
//! the network itself is trusted); no `sslmode`, `disable` or `prefer`
//! connect in the clear, as before. `verify-ca` (the chain without the
//! name) is refused with a message: vakt checks both or neither.
//!
//! The TLS stack is rustls (already vakt's for HTTPS), through
//! `tokio-postgres-rustls`, so no OpenSSL is needed to build vakt.

use crate::{LedgerError, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;

/// How to reach the store: the connection settings (without the
/// parameters vakt reads itself) and the TLS to use, if any.
pub(crate) struct Target {
    pub config: postgres::Config,
    pub tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
}

/// Parses `url`, taking `sslmode` and `sslrootcert` out of its query.
pub(crate) fn target(url: &str) -> Result<Target> {
    let shown = super::postgres::redacted(url);
    let invalid = |what: String| LedgerError::Invalid(format!("{shown}: {what}"));
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut mode = None;
    let mut root = None;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = Some(v.to_owned()),
            Some(("sslrootcert", v)) => {
                let path = percent_encoding::percent_decode_str(v)
                    .decode_utf8()
                    .map_err(|_| {
                        invalid("sslrootcert is not UTF-8 once its %-escapes are decoded".into())
                    })?;
                root = Some(path.into_owned());
            }
            _ => rest.push(pair),
        }
    }
    let plain = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config: postgres::Config = plain
        .parse()
        .map_err(|e| invalid(format!("not a PostgreSQL URL: {e}")))?;
    let tls = match mode.as_deref() {
        None | Some("disable") | Some("prefer") | Some("allow") => None,
        Some("require") => Some(unchecked().map_err(invalid)?),
        Some("verify-full") => {
            let Some(root) = root else {
                return Err(invalid(
                    "sslmode=verify-full needs the CA that signed the server's certificate: add &sslrootcert=/path/to/ca.pem".into(),
                ));
            };
            Some(verified(&root).map_err(invalid)?)
        }
        Some("verify-ca") => {
            return Err(invalid(
                "sslmode=verify-ca checks the certificate but not the server's name; use sslmode=verify-full (with sslrootcert), or require".into(),
            ))
        }
        Some(other) => {
            return Err(invalid(format!(
                "sslmode={other} is not one of disable, prefer, require, verify-full"
            )))
        }
    };
    if tls.is_some() {
        config.ssl_mode(postgres::config::SslMode::Require);
    }
    if config.get_password().is_none() {
        if let Some(pw) = std::env::var_os("PGPASSWORD") {
            config.password(pw.as_encoded_bytes());
        }
    }
    Ok(Target {
        config,
        tls: tls.map(tokio_postgres_rustls::MakeRustlsConnect::new),
    })
}

/// A client that trusts the CA certificates in the PEM file `path`.
fn verified(path: &str) -> std::result::Result<ClientConfig, String> {
    let pem = std::fs::read(path).map_err(|e| format!("sslrootcert {path}: {e}"))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut found = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("sslrootcert {path}: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {path}: {e}"))?;
        found += 1;
    }
    if found == 0 {
        return Err(format!(
            "sslrootcert {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A client that encrypts to any server (`sslmode=require`).
fn unchecked() -> std::result::Result<ClientConfig, String> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer::new()))
        .with_no_client_auth())
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// `sslmode=require`: any certificate, but the handshake's signatures
/// are still checked, so the session is encrypted to whoever answered.
#[derive(Debug)]
struct AnyServer {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AnyServer {
    fn new() -> AnyServer {
        AnyServer {
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_chooses_the_tls() {
        let plain = target("postgres://u:secret@127.0.0.1:5432/vakt").unwrap();
        assert!(plain.tls.is_none());
        let prefer = target("postgres://u@h/vakt?sslmode=prefer&connect_timeout=5").unwrap();
        assert!(prefer.tls.is_none());
        assert_eq!(
            prefer.config.get_connect_timeout(),
            Some(&std::time::Duration::from_secs(5))
        );
        let require = target("postgres://u@h/vakt?sslmode=require").unwrap();
        assert!(require.tls.is_some());
        for (url, says) in [
            (
                "postgres://u:secret@h/vakt?sslmode=verify-full",
                "sslrootcert",
            ),
            (
                "postgres://u:secret@h/vakt?sslmode=verify-ca",
                "verify-full",
            ),
            ("postgres://u:secret@h/vakt?sslmode=always", "not one of"),
            (
                "postgres://u:secret@h/vakt?sslmode=verify-full&sslrootcert=%2Fnone%2Fca.pem",
                "/none/ca.pem",
            ),
        ] {
            let err = target(url).err().unwrap().to_string();
            assert!(
                err.contains(says) && !err.contains("secret"),
                "{url}: {err}"
            );
        }
    }
}
