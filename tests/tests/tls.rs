//! FTPS (RFC 4217) against both daemons over loopback: explicit (`AUTH
//! TLS`) and implicit mode with curl, lftp and Python's ftplib, the
//! policies that require TLS, session reuse on data connections, `CCC`,
//! and the certificate errors of the command line.
//!
//! Certificates are made at test time with `rcgen`; no private key is
//! committed.

use std::fs;
use std::path::{Path, PathBuf};

use ftp_host::cli::{Invocation, parse_args};
use ftp_host::daemon::Runtime;
use ftp_tests::certs::Certs;
use ftp_tests::clients::{CLIENT_TIMEOUT, Output, command, require, run};
use ftp_tests::data::pattern;
use ftp_tests::{TestServer, daemon_tests, tree};

daemon_tests! {
    feat_and_clear_logins,
    auth_tls_switches_after_the_234_and_drops_what_followed,
    curl_explicit_tls,
    curl_implicit_tls,
    lftp_mirror_over_tls,
    python_ftplib_tls,
    python_ccc,
}

/// A builder for a server with the certificate and `extra` flags.
fn builder(certs: &Certs, extra: &[&str]) -> ftp_tests::Builder {
    let args = certs.args();
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(extra);
    TestServer::builder().args(&all)
}

/// A scratch folder for a client: its working directory and `HOME`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("ftp-tests-client-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        Scratch { dir }
    }
    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }
    fn work(&self) -> PathBuf {
        self.dir.path().join("work")
    }
    fn cmd(&self, program: &Path) -> std::process::Command {
        command(program, &self.work(), &self.home())
    }
}

/// The runtime switches the control connection to TLS exactly after the
/// `234`: a command the client sent in clear right behind `AUTH TLS` is
/// neither answered in clear nor read as a command (the engine drops it),
/// the handshake that follows works, and the session goes on in TLS.
fn auth_tls_switches_after_the_234_and_drops_what_followed<R: Runtime>() {
    use std::io::{BufRead, BufReader, Read, Write};
    let certs = Certs::new();
    let srv = builder(&certs, &[]).start::<R>();
    let mut tcp = srv.raw_connect();
    let mut greeting = String::new();
    BufReader::new(&mut tcp).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    tcp.write_all(b"AUTH TLS\r\nNOOP\r\n").unwrap();
    // Read the 234 byte by byte: nothing after it may be read as clear text.
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut b = [0u8];
        tcp.read_exact(&mut b).expect("the 234 reply");
        line.push(b[0]);
    }
    let line = String::from_utf8_lossy(&line).into_owned();
    assert!(line.starts_with("234 "), "{line:?}");
    let mut tls = rustls::StreamOwned::new(certs.client(), tcp);
    tls.write_all(b"USER anonymous\r\nPASS x@\r\nNOOP\r\nQUIT\r\n")
        .expect("TLS handshake after the 234");
    let mut text = String::new();
    let _ = tls.read_to_string(&mut text);
    let codes: Vec<&str> = text.lines().map(|l| &l[..l.len().min(4)]).collect();
    assert_eq!(
        codes,
        ["331 ", "230 ", "200 ", "221 "],
        "the clear NOOP is not answered; the TLS session is: {text:?}"
    );
}

fn feat_and_clear_logins<R: Runtime>() {
    let certs = Certs::new();
    let srv = builder(&certs, &["--tls-required", "-a", "nobody"])
        .user("alice", "secret", None, true)
        .start::<R>();
    let mut c = srv.client();
    let feat = c.cmd("FEAT");
    for line in [" AUTH TLS", " PBSZ", " PROT"] {
        assert!(feat.lines.iter().any(|l| l == line), "FEAT: {feat}");
    }
    c.check(
        "PBSZ 0",
        "503 Security data exchange not completed (no AUTH).",
    );
    c.check("AUTH GSSAPI", "504 Unknown AUTH mechanism; use AUTH TLS.");
    // A password must not travel in clear.
    c.check(
        "USER alice",
        "530 Non-anonymous sessions must use encryption.",
    );
    c.check("PASS secret", "503 Login with USER first.");
    // Anonymous sessions have nothing to protect.
    c.login_anonymous();
    c.check("QUIT", "221 Goodbye.");

    // Without a certificate nothing is offered.
    let plain = TestServer::start::<R>(&[]);
    let mut c = plain.client();
    let feat = c.cmd("FEAT");
    assert!(!feat.lines.iter().any(|l| l.contains("AUTH")), "{feat}");
    c.check("AUTH TLS", "502 TLS is not available on this server.");
}

fn curl_url(port: u16, path: &str) -> String {
    format!("ftp://alice:secret@127.0.0.1:{port}/{path}")
}

fn curl_explicit_tls<R: Runtime>() {
    let Some(curl) = require("curl_explicit_tls", "curl") else {
        return;
    };
    let certs = Certs::new();
    let content = pattern(60, 1_500_000);
    let srv = builder(&certs, &["--tls-required"])
        .user("alice", "secret", None, true)
        .file("dir/file.bin", &content)
        .file("dir/hello.txt", "hello\n")
        .dir("up")
        .start::<R>();
    let port = srv.addr().port();
    let s = Scratch::new();
    let tls = ["-sS", "--max-time", "30", "--ssl-reqd", "-k"];

    let out = run(
        s.cmd(&curl).args(tls).arg(curl_url(port, "dir/")),
        CLIENT_TIMEOUT,
    )
    .success("curl --ssl-reqd list");
    for name in ["file.bin", "hello.txt"] {
        assert!(
            out.stdout.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{name} missing:\n{out}"
        );
    }
    // Passive only: curl 7.88 accepts an active data connection but never
    // starts TLS on it (a client bug); ftplib and lftp cover active mode.
    for (name, flags) in [("epsv", &[][..]), ("pasv", &["--disable-epsv"][..])] {
        let local = s.work().join(format!("{name}.bin"));
        run(
            s.cmd(&curl)
                .args(tls)
                .args(flags)
                .arg("-o")
                .arg(&local)
                .arg(curl_url(port, "dir/file.bin")),
            CLIENT_TIMEOUT,
        )
        .success(&format!("curl --ssl-reqd download ({name})"));
        ftp_tests::assert_bytes(&fs::read(&local).unwrap(), &content, name);
    }
    let out = run(
        s.cmd(&curl)
            .args(tls)
            .args(["--use-ascii"])
            .arg(curl_url(port, "dir/hello.txt")),
        CLIENT_TIMEOUT,
    )
    .success("curl --ssl-reqd ASCII download");
    assert_eq!(out.stdout, "hello\n");

    let up = pattern(61, 777_777);
    let local = s.work().join("up.bin");
    fs::write(&local, &up).unwrap();
    run(
        s.cmd(&curl)
            .args(tls)
            .arg("-T")
            .arg(&local)
            .arg(curl_url(port, "up/up.bin")),
        CLIENT_TIMEOUT,
    )
    .success("curl --ssl-reqd upload");
    ftp_tests::assert_bytes(&fs::read(srv.path("up/up.bin")).unwrap(), &up, "upload");

    // The same login without TLS is refused.
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30"])
            .arg(curl_url(port, "dir/hello.txt")),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "clear login accepted: {out}");
}

fn curl_implicit_tls<R: Runtime>() {
    let Some(curl) = require("curl_implicit_tls", "curl") else {
        return;
    };
    let certs = Certs::new();
    let content = pattern(62, 600_000);
    let srv = builder(&certs, &["--tls-required", "-w"])
        .implicit_tls()
        .file("file.bin", &content)
        .start::<R>();
    let port = srv.implicit_addr().unwrap().port();
    let s = Scratch::new();
    let url = |path: &str| format!("ftps://127.0.0.1:{port}/{path}");
    let base = ["-sS", "--max-time", "30", "-k"];
    let out =
        run(s.cmd(&curl).args(base).arg(url("")), CLIENT_TIMEOUT).success("curl ftps:// list");
    assert!(out.stdout.contains(" file.bin"), "{out}");
    let local = s.work().join("file.bin");
    run(
        s.cmd(&curl)
            .args(base)
            .arg("-o")
            .arg(&local)
            .arg(url("file.bin")),
        CLIENT_TIMEOUT,
    )
    .success("curl ftps:// download");
    ftp_tests::assert_bytes(&fs::read(&local).unwrap(), &content, "ftps download");
    run(
        s.cmd(&curl)
            .args(base)
            .arg("-T")
            .arg(&local)
            .arg(url("copy.bin")),
        CLIENT_TIMEOUT,
    )
    .success("curl ftps:// upload");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("copy.bin")).unwrap(),
        &content,
        "ftps upload",
    );
    // The explicit listener still speaks clear FTP first.
    let mut c = srv.client();
    c.check("NOOP", "200 NOOP ok.");
}

fn lftp_mirror_over_tls<R: Runtime>() {
    let Some(lftp) = require("lftp_mirror_over_tls", "lftp") else {
        return;
    };
    let certs = Certs::new();
    let srv = builder(&certs, &["--tls-required"])
        .user("alice", "secret", None, true)
        .file("tree/top.txt", "top level\n")
        .file("tree/with space.txt", "spaces in the name\n")
        .file("tree/bin/data.bin", pattern(63, 300_000))
        .file("tree/a/b/deep.txt", "deep\n")
        .dir("tree/a/emptydir")
        .start::<R>();
    let s = Scratch::new();
    let settings = "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 10; \
         set net:reconnect-interval-base 1; set ftp:ssl-force true; \
         set ftp:ssl-protect-data true; set ssl:verify-certificate false; \
         set xfer:clobber on;";
    let url = format!("ftp://127.0.0.1:{}", srv.addr().port());
    let script = format!("{settings} mirror tree local; bye");
    run(
        s.cmd(&lftp)
            .args(["-u", "alice,secret", "-e", &script])
            .arg(&url),
        CLIENT_TIMEOUT,
    )
    .success("lftp mirror over TLS");
    tree::assert_same_tree(&srv.path("tree"), &s.work().join("local"));

    tree::write_files(
        &s.work().join("upload"),
        &[
            ("one.txt", b"one\n"),
            ("sub dir/two.bin", &pattern(64, 222_222)),
        ],
    );
    let script = format!("{settings} mirror -R upload uploaded; bye");
    run(
        s.cmd(&lftp)
            .args(["-u", "alice,secret", "-e", &script])
            .arg(&url),
        CLIENT_TIMEOUT,
    )
    .success("lftp mirror -R over TLS");
    tree::assert_same_tree(&s.work().join("upload"), &srv.path("uploaded"));
}

/// Python's ftplib over TLS. `Reuse` is the usual subclass that resumes
/// the control connection's TLS session on data connections (stock
/// `FTP_TLS` does not, so it fails where reuse is required, as it does
/// against vsftpd).
const FTPLIB_TLS: &str = r#"
import ftplib, ssl, sys
port, work, version = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
if version == "1.2":
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2

class Reuse(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.sock.session)
        return conn, size

ftp = Reuse(context=ctx)
ftp.connect("127.0.0.1", port, timeout=10)
print("AUTH", ftp.auth())
print("LOGIN", ftp.login("alice", "secret"))
print("PROT", ftp.prot_p())
print("NLST", "|".join(sorted(ftp.nlst())))
with open(work + "/down.bin", "wb") as f:
    print("RETR", ftp.retrbinary("RETR data.bin", f.write))
with open(work + "/up.bin", "rb") as f:
    print("STOR", ftp.storbinary("STOR up.bin", f))
ftp.set_pasv(False)
with open(work + "/down-active.bin", "wb") as f:
    print("RETR-ACTIVE", ftp.retrbinary("RETR data.bin", f.write))
with open(work + "/up.bin", "rb") as f:
    print("STOR-ACTIVE", ftp.storbinary("STOR up-active.bin", f))
ftp.set_pasv(True)
print("PROTC", ftp.prot_c())
try:
    ftp.nlst()
    print("CLEAR", "accepted")
except ftplib.error_perm as e:
    print("CLEAR", e)
ftp.prot_p()
print("QUIT", ftp.quit())

# Stock FTP_TLS: a data connection that does not resume the session.
ftp = ftplib.FTP_TLS(context=ctx)
ftp.connect("127.0.0.1", port, timeout=10)
ftp.auth()
ftp.login("alice", "secret")
ftp.prot_p()
try:
    ftp.nlst()
    print("STOCK", "accepted")
except (ssl.SSLError, OSError, ftplib.Error) as e:
    print("STOCK", "refused")
    try:
        resp = ftp.getresp()
    except ftplib.Error as e:
        resp = str(e)
    print("STOCK-REPLY", resp)
print("STOCK-NOOP", ftp.voidcmd("NOOP"))
"#;

fn ftplib(python: &Path, s: &Scratch, port: u16, version: &str) -> Output {
    run(
        s.cmd(python)
            .arg("-c")
            .arg(FTPLIB_TLS)
            .arg(port.to_string())
            .arg(s.work())
            .arg(version),
        CLIENT_TIMEOUT,
    )
    .success("python ftplib over TLS")
}

fn line(out: &Output, key: &str) -> String {
    out.stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} ")))
        .unwrap_or_else(|| panic!("no {key} line\n{out}"))
        .to_string()
}

fn python_ftplib_tls<R: Runtime>() {
    let Some(python) = require("python_ftplib_tls", "python3") else {
        return;
    };
    let certs = Certs::new();
    let data = pattern(65, 400_000);
    let srv = builder(&certs, &["--tls-required"])
        .user("alice", "secret", None, true)
        .file("data.bin", &data)
        .start::<R>();
    for version in ["1.3", "1.2"] {
        let s = Scratch::new();
        let up = pattern(66, 123_456);
        fs::write(s.work().join("up.bin"), &up).unwrap();
        let out = ftplib(&python, &s, srv.addr().port(), version);
        assert_eq!(line(&out, "AUTH"), "234 Proceed with negotiation.");
        assert_eq!(line(&out, "LOGIN"), "230 Login successful.");
        assert_eq!(line(&out, "PROT"), "200 PROT now Private.");
        assert!(line(&out, "NLST").contains("data.bin"), "{out}");
        assert_eq!(line(&out, "RETR"), "226 Transfer complete.");
        ftp_tests::assert_bytes(&fs::read(s.work().join("down.bin")).unwrap(), &data, "RETR");
        assert_eq!(line(&out, "STOR"), "226 Transfer complete.");
        ftp_tests::assert_bytes(&fs::read(srv.path("up.bin")).unwrap(), &up, "STOR");
        assert_eq!(line(&out, "RETR-ACTIVE"), "226 Transfer complete.");
        let active = fs::read(s.work().join("down-active.bin")).unwrap();
        ftp_tests::assert_bytes(&active, &data, "RETR in active mode");
        assert_eq!(line(&out, "STOR-ACTIVE"), "226 Transfer complete.");
        let active = fs::read(srv.path("up-active.bin")).unwrap();
        ftp_tests::assert_bytes(&active, &up, "STOR in active mode");
        assert_eq!(
            line(&out, "CLEAR"),
            "521 Data connections must be encrypted.",
            "TLS {version}"
        );
        // Without session reuse the data connection is refused, and the
        // session goes on.
        assert_eq!(line(&out, "STOCK"), "refused", "TLS {version}\n{out}");
        assert_eq!(
            line(&out, "STOCK-REPLY"),
            "425 Failed to establish connection."
        );
        assert_eq!(line(&out, "STOCK-NOOP"), "200 NOOP ok.");
        fs::remove_file(srv.path("up.bin")).unwrap();
        fs::remove_file(srv.path("up-active.bin")).unwrap();
    }

    // With reuse made optional, stock FTP_TLS works.
    let lax = builder(&certs, &["--tls-reuse-optional"])
        .user("alice", "secret", None, true)
        .file("data.bin", &data)
        .start::<R>();
    let s = Scratch::new();
    fs::write(s.work().join("up.bin"), b"x").unwrap();
    let out = ftplib(&python, &s, lax.addr().port(), "1.3");
    assert_eq!(line(&out, "CLEAR"), "accepted");
    assert_eq!(line(&out, "STOCK"), "accepted", "{out}");
}

/// `CCC` after login: the control connection goes back to clear, data
/// connections stay protected.
const FTPLIB_CCC: &str = r#"
import ftplib, ssl, sys
port = int(sys.argv[1])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE

class Reuse(ftplib.FTP_TLS):
    def ntransfercmd(self, cmd, rest=None):
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)
        if self._prot_p:
            conn = self.context.wrap_socket(
                conn, server_hostname=self.host, session=self.session)
        return conn, size

ftp = Reuse(context=ctx)
ftp.connect("127.0.0.1", port, timeout=10)
ftp.auth()
ftp.login("alice", "secret")
ftp.prot_p()
ftp.session = ftp.sock.session
print("NLST", "|".join(ftp.nlst()))
print("CCC", ftp.ccc())
print("CLEAR", ftp.sock._sslobj is None)
print("NOOP", ftp.voidcmd("NOOP"))
print("NLST2", "|".join(ftp.nlst()))
print("QUIT", ftp.quit())
"#;

fn python_ccc<R: Runtime>() {
    let Some(python) = require("python_ccc", "python3") else {
        return;
    };
    let certs = Certs::new();
    let run_ccc = |srv: &TestServer| {
        let s = Scratch::new();
        run(
            s.cmd(&python)
                .arg("-c")
                .arg(FTPLIB_CCC)
                .arg(srv.addr().port().to_string()),
            CLIENT_TIMEOUT,
        )
    };
    let srv = builder(&certs, &["--allow-ccc"])
        .user("alice", "secret", None, true)
        .file("a.txt", "a\n")
        .start::<R>();
    let out = run_ccc(&srv).success("python CCC");
    assert_eq!(line(&out, "NLST"), "a.txt");
    assert_eq!(
        line(&out, "CCC"),
        "200 Control connection cleared; going on in clear."
    );
    assert_eq!(line(&out, "CLEAR"), "True");
    assert_eq!(line(&out, "NOOP"), "200 NOOP ok.");
    assert_eq!(line(&out, "NLST2"), "a.txt");
    assert_eq!(line(&out, "QUIT"), "221 Goodbye.");

    // Refused unless allowed.
    let strict = builder(&certs, &[])
        .user("alice", "secret", None, true)
        .file("a.txt", "a\n")
        .start::<R>();
    let out = run_ccc(&strict);
    assert!(!out.status.success(), "{out}");
    assert!(
        out.stderr
            .contains("534 CCC is not allowed on this server."),
        "{out}"
    );
}

/// What `parse_args` says about `args` (with a served folder added).
fn config_error(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut all = vec!["ftpd"];
    all.extend_from_slice(args);
    all.push(dir.path().to_str().unwrap());
    match parse_args(all) {
        Ok(Invocation::Serve(_)) => String::from("accepted"),
        Ok(other) => panic!("{other:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn certificate_errors() {
    let certs = Certs::new();
    let other = Certs::new();
    let cert = certs.cert();
    let key = certs.key();
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    assert_eq!(
        config_error(&["--tls-cert", cert, "--tls-key", key]),
        "accepted"
    );
    let missing = certs.dir().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let err = config_error(&["--tls-cert", missing, "--tls-key", key]);
    assert!(
        err.starts_with(&format!("TLS: {missing}: cannot read:")),
        "{err}"
    );
    let err = config_error(&["--tls-cert", cert, "--tls-key", missing]);
    assert!(
        err.starts_with(&format!("TLS: {missing}: cannot read:")),
        "{err}"
    );
    // A key that belongs to another certificate.
    let err = config_error(&[
        "--tls-cert",
        cert,
        "--tls-key",
        other.key().to_str().unwrap(),
    ]);
    assert!(
        err.starts_with("TLS: certificate and key refused:"),
        "{err}"
    );
    // The files swapped.
    let err = config_error(&["--tls-cert", key, "--tls-key", cert]);
    assert_eq!(err, format!("TLS: {key}: no PEM certificate in the file"));
    let err = config_error(&["--tls-cert", cert, "--tls-key", cert]);
    assert_eq!(err, format!("TLS: {cert}: no PEM private key in the file"));
    // Half a pair, or policy without a certificate.
    assert_eq!(
        config_error(&["--tls-cert", cert]),
        "--tls-cert needs --tls-key"
    );
    assert_eq!(
        config_error(&["--tls-required"]),
        "TLS settings need a certificate: give --tls-cert and --tls-key"
    );
    assert_eq!(
        config_error(&["--implicit-tls", "127.0.0.1:990"]),
        "TLS settings need a certificate: give --tls-cert and --tls-key"
    );
}

#[test]
fn tls_table_in_the_configuration_file() {
    let certs = Certs::new();
    let etc = tempfile::tempdir().unwrap();
    fs::copy(certs.cert(), etc.path().join("cert.pem")).unwrap();
    fs::copy(certs.key(), etc.path().join("key.pem")).unwrap();
    let config = etc.path().join("ftpd.toml");
    fs::write(
        &config,
        "[tls]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nrequired_login = true\n\
         implicit = [\"127.0.0.1:9990\"]\n",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "ftpd",
        "--config",
        config.to_str().unwrap(),
        dir.path().to_str().unwrap(),
    ];
    let Ok(Invocation::Serve(c)) = parse_args(args) else {
        panic!("not accepted");
    };
    let tls = c.tls.expect("TLS configured");
    assert_eq!(tls.implicit, ["127.0.0.1:9990".parse().unwrap()]);
    assert!(tls.policy.available && tls.policy.control_required);
    assert!(!tls.policy.data_required && !tls.policy.allow_ccc);
    assert_eq!(c.engine.tls, tls.policy);
}
