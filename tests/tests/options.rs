//! Command-line options that change what clients see: passive port range
//! and address, transfer log, session time limit.

use std::fs;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::client::parse_227;
use ftp_tests::data::pattern;
use ftp_tests::{DataMode, TIMEOUT, TestServer, daemon_tests, wait_for};

daemon_tests! {
    pasv_port_range,
    pasv_address_is_announced,
    xferlog_records_transfers,
    session_time_limit,
}

fn pasv_port_range<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--pasv-ports", "47100-47139"])
        .file("f.bin", pattern(60, 10_000))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for mode in [DataMode::Pasv, DataMode::Epsv] {
        for _ in 0..5 {
            let addr = match mode {
                DataMode::Pasv => c.pasv(),
                _ => c.epsv(),
            };
            assert!(
                (47100..=47139).contains(&addr.port()),
                "{mode:?} port {} outside --pasv-ports",
                addr.port()
            );
        }
        c.mode = mode;
        ftp_tests::assert_bytes(&c.retr("f.bin"), &pattern(60, 10_000), "RETR");
    }
    c.quit();
}

/// `--pasv-address` goes into 227 replies (nothing connects to it here:
/// the address is not on this machine). EPSV is unaffected.
fn pasv_address_is_announced<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--pasv-address", "203.0.113.7"])
        .file("f.txt", "x")
        .start::<R>();
    let mut c = srv.login();
    let r = c.expect("PASV", 227);
    let addr = parse_227(&r).unwrap_or_else(|| panic!("{r}"));
    assert_eq!(addr.ip().to_string(), "203.0.113.7", "{r}");
    c.mode = DataMode::Epsv;
    assert_eq!(c.retr("f.txt"), b"x");
    c.quit();
}

fn xferlog_records_transfers<R: Runtime>() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("xferlog");
    let srv = TestServer::builder()
        .args(&["-w", "--xferlog", log.to_str().unwrap()])
        .file("f.bin", pattern(61, 1000))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    assert_eq!(c.retr("f.bin").len(), 1000);
    c.stor("up load.bin", b"abc");
    c.quit();
    let text = wait_for("two xferlog lines", TIMEOUT, || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split(' ').collect()).collect();
    assert_eq!(lines.len(), 2, "{text}");
    for fields in &lines {
        assert_eq!(fields.len(), 18, "{text}");
        assert_eq!(fields[6], "127.0.0.1", "{text}");
        assert_eq!(&fields[9..11], ["b", "_"], "{text}");
        assert_eq!(
            &fields[12..18],
            ["a", "anonymous", "ftp", "0", "*", "c"],
            "{text}"
        );
    }
    assert_eq!(&lines[0][7..9], ["1000", "/f.bin"], "{text}");
    assert_eq!(lines[0][11], "o", "{text}");
    assert_eq!(&lines[1][7..9], ["3", "/up_load.bin"], "{text}");
    assert_eq!(lines[1][11], "i", "{text}");
}

fn session_time_limit<R: Runtime>() {
    let srv = TestServer::start::<R>(&["-T", "1"]);
    let mut c = srv.login();
    let start = Instant::now();
    c.check("NOOP", "200 NOOP ok.");
    assert_eq!(
        c.read_reply().lines,
        ["421 Session time limit reached, closing control connection."]
    );
    assert!(start.elapsed() < Duration::from_secs(5));
    c.expect_closed();
}
