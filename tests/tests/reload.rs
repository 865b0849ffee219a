//! Reloading while sessions run (`Server::reload`, what SIGHUP does): new
//! accounts and a renewed certificate reach new logins and new sessions,
//! sessions under way go on, and a broken file changes nothing.

use std::fs;
use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftp_host::daemon::Runtime;
use ftp_tests::data::pattern;
use ftp_tests::{TestServer, assert_bytes, daemon_tests};

daemon_tests! {
    a_new_account_logs_in_while_a_transfer_goes_on,
    a_renewed_certificate_reaches_new_sessions,
}

/// One users-file entry.
fn entry(name: &str, password: &str) -> String {
    let hash = ftp_host::users::hash_password(password).expect("hash");
    format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\nwrite = true\n")
}

fn a_new_account_logs_in_while_a_transfer_goes_on<R: Runtime>() {
    let big = pattern(51, 8 << 20);
    let srv = TestServer::builder()
        .user("alice", "a-pw", None, true)
        .file("big.bin", &big)
        .start::<R>();
    let users = srv.users_file().expect("a users file");
    let mut alice = srv.client();
    alice.login("alice", "a-pw");
    alice.expect("TYPE I", 200);
    let data = alice.data();
    let mut t = alice.start("RETR big.bin", data).expect("RETR");
    let mut head = vec![0u8; 1 << 20];
    t.stream.read_exact(&mut head).expect("the first MiB");

    // Bob is added; the reload takes him in.
    let text = fs::read_to_string(&users).expect("users file") + &entry("bob", "b-pw");
    fs::write(&users, text).expect("write the users file");
    let done = srv.server().reload().expect("reload");
    assert_eq!(done.users, 2);
    let mut bob = srv.client();
    bob.login("bob", "b-pw");
    bob.check("NOOP", "200 NOOP ok.");

    // Alice's download, begun before the reload, finishes whole.
    let mut rest = Vec::new();
    t.stream.read_to_end(&mut rest).expect("the rest");
    drop(t);
    assert_eq!(alice.read_reply().code, 226);
    head.extend_from_slice(&rest);
    assert_bytes(&head, &big, "the download across the reload");

    // A broken file is refused and changes nothing.
    fs::write(&users, "[[user]\nname = ").expect("write the users file");
    let err = srv.server().reload().expect_err("a malformed file");
    assert!(err.to_string().contains("users.toml"), "{err}");
    for (name, password) in [("alice", "a-pw"), ("bob", "b-pw")] {
        let mut c = srv.client();
        c.login(name, password);
        c.quit();
    }
    alice.quit();
    bob.quit();
}

/// A self-signed certificate and key written to `dir` as `NAME.pem` and
/// `NAME.key`; the certificate, for a client that trusts only it.
fn make_cert(dir: &Path, name: &str) -> rustls::pki_types::CertificateDer<'static> {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("rcgen");
    fs::write(dir.join(format!("{name}.pem")), made.cert.pem()).expect("write");
    fs::write(
        dir.join(format!("{name}.key")),
        made.key_pair.serialize_pem(),
    )
    .expect("write");
    made.cert.der().clone()
}

/// Whether a TLS handshake after `AUTH TLS` succeeds for a client that
/// trusts only `cert`.
fn handshake_trusting(srv: &TestServer, cert: &rustls::pki_types::CertificateDer<'static>) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.clone()).expect("a root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name).expect("a client");
    let mut c = srv.client();
    c.expect("AUTH TLS", 234);
    let mut sock: TcpStream = c.socket().try_clone().expect("clone");
    while conn.is_handshaking() {
        if conn.complete_io(&mut sock).is_err() {
            return false;
        }
    }
    true
}

fn a_renewed_certificate_reaches_new_sessions<R: Runtime>() {
    let dir = tempfile::tempdir().expect("folder");
    let old = make_cert(dir.path(), "old");
    let (cert, key): (PathBuf, PathBuf) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    fs::copy(dir.path().join("old.pem"), &cert).expect("copy");
    fs::copy(dir.path().join("old.key"), &key).expect("copy");
    let srv = TestServer::builder()
        .args(&[
            "--tls-cert",
            cert.to_str().expect("UTF-8"),
            "--tls-key",
            key.to_str().expect("UTF-8"),
        ])
        .start::<R>();
    assert!(handshake_trusting(&srv, &old), "the first certificate");
    let new = make_cert(dir.path(), "new");
    fs::copy(dir.path().join("new.pem"), &cert).expect("copy");
    fs::copy(dir.path().join("new.key"), &key).expect("copy");
    assert!(handshake_trusting(&srv, &old), "before the reload");
    let done = srv.server().reload().expect("reload");
    assert!(done.certificate);
    assert!(handshake_trusting(&srv, &new), "the renewed certificate");
    assert!(!handshake_trusting(&srv, &old), "the old one is gone");
    // A key that does not match is refused; the renewed pair stays.
    fs::copy(dir.path().join("old.key"), &key).expect("copy");
    assert!(srv.server().reload().is_err(), "a mismatched key");
    assert!(handshake_trusting(&srv, &new), "after a refused reload");
}
