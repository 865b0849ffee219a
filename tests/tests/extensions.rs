//! Protocol extensions over real sockets, on both daemons: HASH and the
//! older digest commands, RANG, OPTS HASH, ABOR during a digest.

use std::process::Command;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::clients::{CLIENT_TIMEOUT, command, require, run};
use ftp_tests::{TestServer, daemon_tests};
use md5::Digest as _;

daemon_tests! {
    hash_of_a_large_file_matches_sha256sum,
    ranges_algorithms_and_legacy_commands,
    abor_during_a_hash_answers_at_once,
    hash_limits_and_off,
    patterns_filter_listings,
    too_many_matches_are_refused,
    nlst_patterns_with_curl_and_lftp,
    site_umask_sets_the_mode_of_new_files,
    latin1_names_with_python_ftplib,
}

/// 100 MiB that are not all alike.
fn large() -> Vec<u8> {
    (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_of_a_large_file_matches_sha256sum<R: Runtime>() {
    let srv = TestServer::builder().file("big.bin", large()).start::<R>();
    let expected = match Command::new("sha256sum").arg(srv.path("big.bin")).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => hex(&sha2::Sha256::digest(large())),
    };
    let mut c = srv.client();
    c.login_anonymous();
    let feat = c.cmd("FEAT");
    assert!(
        feat.inner()
            .iter()
            .any(|l| l.trim() == "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32"),
        "{feat}"
    );
    let r = c.cmd("HASH big.bin");
    assert_eq!(r.code, 213, "{r}");
    assert_eq!(
        r.text(),
        format!("SHA-256 0-{} {expected} big.bin", (100u64 << 20) - 1)
    );
    c.quit();
}

fn ranges_algorithms_and_legacy_commands<R: Runtime>() {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let srv = TestServer::builder()
        .file("dir/f.bin", data.clone())
        .start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    c.expect("RANG 100 199", 350);
    let r = c.expect("HASH dir/f.bin", 213);
    assert_eq!(
        r.text(),
        format!(
            "SHA-256 100-199 {} dir/f.bin",
            hex(&sha2::Sha256::digest(&data[100..200]))
        )
    );
    c.check("OPTS HASH md5", "200 MD5");
    let r = c.expect("HASH dir/f.bin", 213);
    assert_eq!(
        r.text(),
        format!("MD5 0-9999 {} dir/f.bin", hex(&md5::Md5::digest(&data)))
    );
    c.check(
        "XCRC dir/f.bin",
        &format!("250 {:08x}", crc32fast::hash(&data)),
    );
    c.check(
        "XSHA512 dir/f.bin 10 20",
        &format!("250 {}", hex(&sha2::Sha512::digest(&data[10..20]))),
    );
    c.check(
        "XMD5 dir/f.bin",
        &format!("250 {}", hex(&md5::Md5::digest(&data))),
    );
    assert_eq!(c.cmd("HASH dir").code, 550);
    assert_eq!(c.cmd("HASH nothing").code, 550);
    assert_eq!(c.cmd("XSHA1 dir/f.bin 20000 30000").code, 501);
    c.quit();
}

fn abor_during_a_hash_answers_at_once<R: Runtime>() {
    let srv = TestServer::builder().file("big.bin", large()).start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    c.check("OPTS HASH SHA-512", "200 SHA-512");
    c.send("HASH big.bin");
    std::thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    c.send("ABOR");
    let first = c.read_reply();
    if first.code == 213 {
        // The machine digested 100 MiB in 50 ms: nothing to abort.
        println!("SKIP abor_during_a_hash: the digest finished first");
        return;
    }
    assert_eq!(first.code, 426, "{first}");
    assert_eq!(c.read_reply().code, 226);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "ABOR took {:?}",
        asked.elapsed()
    );
    // The session goes on.
    c.expect("NOOP", 200);
    c.check("RANG 0 9", "350 Restarting at 0. Ending byte 9.");
    let r = c.expect("HASH big.bin", 213);
    assert!(r.text().starts_with("SHA-512 0-9 "), "{r}");
    c.quit();
}

fn hash_limits_and_off<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--hash-max-size", "1000"])
        .file("f", vec![7u8; 2000])
        .start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    assert_eq!(c.cmd("HASH f").code, 552);
    c.expect("RANG 0 999", 350);
    c.expect("HASH f", 213);
    c.quit();
    let off = TestServer::builder()
        .args(&["--no-hash"])
        .file("f", vec![7u8; 10])
        .start::<R>();
    let mut c = off.client();
    c.login_anonymous();
    assert_eq!(c.cmd("HASH f").code, 502);
    assert_eq!(c.cmd("XCRC f").code, 502);
    assert!(!c.cmd("FEAT").inner().iter().any(|l| l.contains("HASH")));
    c.quit();
}

fn glob_server<R: Runtime>() -> TestServer {
    TestServer::builder()
        .file("a.txt", "a")
        .file("b.txt", "b")
        .file("c.csv", "c")
        .file(".hidden.txt", "h")
        .file("dir/d.txt", "d")
        .file("dir/e1.log", "e")
        .file("dir/e2.log", "e")
        .file("dir/f.log", "f")
        .start::<R>()
}

/// The lines of a listing.
fn lines(listing: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(listing)
        .lines()
        .map(str::to_string)
        .collect()
}

fn patterns_filter_listings<R: Runtime>() {
    let srv = glob_server::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    let nlst =
        |c: &mut ftp_tests::Client, arg: &str| lines(&c.download(&format!("NLST {arg}")).unwrap());
    assert_eq!(nlst(&mut c, "*.txt"), ["a.txt", "b.txt"]);
    assert_eq!(nlst(&mut c, "-a *.txt"), [".hidden.txt", "a.txt", "b.txt"]);
    assert_eq!(nlst(&mut c, "dir/e?.log"), ["dir/e1.log", "dir/e2.log"]);
    assert_eq!(nlst(&mut c, "dir/[!e]*"), ["dir/d.txt", "dir/f.log"]);
    assert_eq!(nlst(&mut c, "*.none"), Vec::<String>::new());
    let list = lines(&c.download("LIST *.csv").unwrap());
    assert_eq!(list.len(), 1, "{list:?}");
    assert!(list[0].ends_with(" c.csv"), "{list:?}");
    let mlsd = lines(&c.download("MLSD dir/*.log").unwrap());
    assert_eq!(mlsd.len(), 3, "{mlsd:?}");
    assert!(mlsd.iter().all(|l| l.ends_with(".log")), "{mlsd:?}");
    // Never across a slash: a pattern in a folder's name is a name.
    let r = c.download("NLST */d.txt").expect_err("no folder named *");
    assert_eq!(r.code, 550, "{r}");
    // The names NLST returns can be fetched as they are (mget).
    for name in nlst(&mut c, "dir/*.log") {
        assert_eq!(c.retr(&name).len(), 1);
    }
    c.quit();
}

fn too_many_matches_are_refused<R: Runtime>() {
    let mut b = TestServer::builder();
    for i in 0..10_001 {
        b = b.file(&format!("many/f{i:05}"), "");
    }
    let srv = b.start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    let r = c.download("NLST many/f*").expect_err("over the bound");
    assert_eq!(r.code, 550, "{r}");
    assert!(r.text().contains("Too many names match"), "{r}");
    assert_eq!(lines(&c.download("NLST many/f0000?").unwrap()).len(), 10);
    c.quit();
}

fn nlst_patterns_with_curl_and_lftp<R: Runtime>() {
    let srv = glob_server::<R>();
    let work = tempfile::tempdir().expect("temp dir");
    if let Some(curl) = require("nlst_patterns_with_curl", "curl") {
        let url = format!("ftp://127.0.0.1:{}/dir/", srv.addr().port());
        let out = run(
            command(&curl, work.path(), work.path()).args(["-sS", "-X", "NLST *.log", &url]),
            CLIENT_TIMEOUT,
        )
        .success("curl NLST *.log");
        let mut names: Vec<&str> = out.stdout.lines().collect();
        names.sort_unstable();
        assert_eq!(names, ["e1.log", "e2.log", "f.log"], "{out}");
    }
    if let Some(lftp) = require("nlst_patterns_with_lftp", "lftp") {
        let script = "set cmd:fail-exit yes; set net:max-retries 1; set ftp:ssl-allow no; \
                      nlist dir/e*.log; bye";
        let url = format!("ftp://127.0.0.1:{}", srv.addr().port());
        let out = run(
            command(&lftp, work.path(), work.path()).args([
                "-u",
                "anonymous,x",
                "-e",
                script,
                &url,
            ]),
            CLIENT_TIMEOUT,
        )
        .success("lftp nlist");
        let names: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(names, ["dir/e1.log", "dir/e2.log"], "{out}");
    }
}

fn site_umask_sets_the_mode_of_new_files<R: Runtime>() {
    use std::os::unix::fs::PermissionsExt;
    if std::env::var("FTP_TEST_STORAGE").is_ok_and(|v| v == "s3") {
        return;
    }
    let srv = TestServer::builder()
        .user("alice", "secret", None, true)
        .start::<R>();
    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    c.upload("STOR before", b"x").expect("STOR");
    c.check("SITE UMASK 077", "200 UMASK set to 077");
    c.upload("STOR after", b"x").expect("STOR");
    c.expect("MKD dir", 257);
    c.upload("APPE dir/appended", b"x").expect("APPE");
    c.quit();
    let mode = |rel: &str| {
        std::fs::metadata(srv.path(rel))
            .expect("created")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("before"), 0o644);
    assert_eq!(mode("after"), 0o600);
    assert_eq!(mode("dir"), 0o700);
    assert_eq!(mode("dir/appended"), 0o600);
}

fn latin1_names_with_python_ftplib<R: Runtime>() {
    use std::os::unix::ffi::OsStrExt;
    if std::env::var("FTP_TEST_STORAGE").is_ok_and(|v| v == "s3") {
        return;
    }
    let Some(python) = require("latin1_names_with_python_ftplib", "python3") else {
        return;
    };
    let srv = TestServer::builder()
        .user("alice", "secret", None, true)
        .start::<R>();
    let on_disk = |name: &[u8]| srv.root().join(std::ffi::OsStr::from_bytes(name));
    std::fs::write(on_disk(b"caf\xe9.txt"), b"latin-1 content").expect("write");
    std::fs::create_dir(on_disk(b"d\xe9j\xe0")).expect("mkdir");
    let script = format!(
        r#"
import ftplib
f = ftplib.FTP(encoding='latin-1', timeout=20)
f.connect('127.0.0.1', {port})
f.login('alice', 'secret')
names = f.nlst()
assert 'caf\xe9.txt' in names and 'd\xe9j\xe0' in names, names
f.sendcmd('OPTS UTF8 ON')
assert 'caf\xe9.txt' in f.nlst()
data = []
f.retrbinary('RETR caf\xe9.txt', data.append)
assert b''.join(data) == b'latin-1 content', data
assert f.size('caf\xe9.txt') == 15
assert f.sendcmd('MDTM caf\xe9.txt').startswith('213 ')
f.cwd('d\xe9j\xe0')
assert f.pwd() == '/d\xe9j\xe0', f.pwd()
f.cwd('/')
f.rename('caf\xe9.txt', 'd\xe9j\xe0/\xfcber.txt')
lines = []
f.retrlines('LIST d\xe9j\xe0', lines.append)
assert any(l.endswith(' \xfcber.txt') for l in lines), lines
facts = []
f.retrlines('MLSD d\xe9j\xe0', facts.append)
assert any(l.endswith(' \xfcber.txt') for l in facts), facts
f.delete('d\xe9j\xe0/\xfcber.txt')
f.rmd('d\xe9j\xe0')
assert f.nlst() == [], f.nlst()
f.quit()
"#,
        port = srv.addr().port()
    );
    let work = tempfile::tempdir().expect("temp dir");
    run(
        command(&python, work.path(), work.path()).args(["-c", &script]),
        CLIENT_TIMEOUT,
    )
    .success("ftplib with latin-1 names");
    assert!(
        std::fs::read_dir(srv.root())
            .expect("root")
            .next()
            .is_none()
    );
}
