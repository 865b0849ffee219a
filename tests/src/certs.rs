//! A self-signed certificate made at test time (no private key is
//! committed), and a TLS client that trusts it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A self-signed certificate for `localhost` / `127.0.0.1` and its key,
/// in PEM files of a temporary folder.
#[derive(Debug)]
pub struct Certs {
    dir: tempfile::TempDir,
    /// The certificate, for a client that trusts it.
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Certs {
    /// Makes the certificate and writes `cert.pem` and `key.pem`.
    pub fn new() -> Certs {
        let dir = tempfile::Builder::new()
            .prefix("ftp-tests-tls-")
            .tempdir()
            .expect("temp dir");
        let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
        let made = rcgen::generate_simple_self_signed(names).expect("a certificate");
        std::fs::write(dir.path().join("cert.pem"), made.cert.pem()).expect("write");
        std::fs::write(dir.path().join("key.pem"), made.key_pair.serialize_pem()).expect("write");
        let der = made.cert.der().clone();
        Certs { dir, der }
    }

    /// A rustls client connection to `localhost` that trusts this
    /// certificate.
    pub fn client(&self) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("a root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
        rustls::ClientConnection::new(Arc::new(config), name).expect("a TLS client")
    }

    /// The folder that holds the files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The certificate's PEM file.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// The key's PEM file.
    pub fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// `--tls-cert FILE --tls-key FILE`.
    pub fn args(&self) -> Vec<String> {
        let path = |p: PathBuf| p.to_str().expect("a UTF-8 path").to_owned();
        vec![
            "--tls-cert".into(),
            path(self.cert()),
            "--tls-key".into(),
            path(self.key()),
        ]
    }
}

impl Default for Certs {
    fn default() -> Self {
        Certs::new()
    }
}
