//! Command-line options that change what clients see: passive port range
//! and address, transfer log, session time limit.

use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::client::parse_227;
use ftp_tests::data::pattern;
use ftp_tests::{Data, DataMode, TIMEOUT, TestServer, daemon_tests, wait_for};

daemon_tests! {
    pasv_port_range,
    passive_listener_is_kept_for_the_next_transfer,
    pasv_ports_exhausted,
    pasv_address_is_announced,
    xferlog_records_transfers,
    session_time_limit,
}

/// Tests that use fixed port ranges run one at a time (both daemons' tests
/// are in this binary).
static PORT_RANGES: Mutex<()> = Mutex::new(());

/// `n` consecutive ports on 127.0.0.1 that are free right now.
fn free_ports(n: u16) -> (u16, u16) {
    for base in (47_000u16..60_000).step_by(101) {
        let held: Vec<TcpListener> = (base..base + n)
            .map_while(|p| TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(n) {
            return (base, base + n - 1);
        }
    }
    panic!("no {n} free consecutive ports");
}

fn pasv_port_range<R: Runtime>() {
    let _one_at_a_time = PORT_RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let (lo, hi) = free_ports(40);
    let range = format!("{lo}-{hi}");
    let srv = TestServer::builder()
        .args(&["--pasv-ports", &range])
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
                (lo..=hi).contains(&addr.port()),
                "{mode:?} port {} outside --pasv-ports",
                addr.port()
            );
        }
        c.mode = mode;
        ftp_tests::assert_bytes(&c.retr("f.bin"), &pattern(60, 10_000), "RETR");
    }
    c.quit();
}

/// A passive listener whose transfer took its connection is kept for the
/// session's next `EPSV` (the same port, no new bind); a connection made
/// to it in between is nobody's transfer and is closed, and the next
/// transfer gets the client's own connection and the right bytes.
fn passive_listener_is_kept_for_the_next_transfer<R: Runtime>() {
    let srv = TestServer::builder()
        .file("a.bin", pattern(61, 4096))
        .file("b.bin", pattern(62, 4096))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let first = c.epsv();
    let mut t = c.start("RETR a.bin", Data::Passive(first)).expect("RETR");
    let mut bytes = Vec::new();
    t.stream.read_to_end(&mut bytes).unwrap();
    drop(t.stream);
    c.expect_reply(226);
    ftp_tests::assert_bytes(&bytes, &pattern(61, 4096), "first RETR");
    // Someone connects to the old port between the transfers.
    let mut stray = std::net::TcpStream::connect_timeout(&first, TIMEOUT).expect("stray");
    let second = c.epsv();
    assert_eq!(second, first, "the listener is kept");
    stray.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut byte = [0u8; 1];
    // Closed: the end of stream (or a reset), not a timeout.
    match stray.read(&mut byte) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("a connection made between transfers is closed, not served: {other:?}"),
    }
    let mut t = c.start("RETR b.bin", Data::Passive(second)).expect("RETR");
    let mut bytes = Vec::new();
    t.stream.read_to_end(&mut bytes).unwrap();
    drop(t.stream);
    c.expect_reply(226);
    ftp_tests::assert_bytes(&bytes, &pattern(62, 4096), "second RETR");
    c.quit();
}

/// With every passive port in use, PASV and EPSV answer 425; a port
/// frees up when its transfer is done.
fn pasv_ports_exhausted<R: Runtime>() {
    let _one_at_a_time = PORT_RANGES.lock().unwrap_or_else(|e| e.into_inner());
    let (lo, hi) = free_ports(2);
    let range = format!("{lo}-{hi}");
    let srv = TestServer::builder()
        .args(&["--pasv-ports", &range])
        .file("f.txt", "data")
        .start::<R>();
    let mut a = srv.login();
    let mut b = srv.login();
    let mut c = srv.login();
    let held_a = a.pasv();
    let held_b = b.epsv();
    assert_ne!(held_a.port(), held_b.port());
    c.check("PASV", "425 No passive port available, try again later.");
    c.check("EPSV", "425 No passive port available, try again later.");
    let t = a
        .start("RETR f.txt", Data::Passive(held_a))
        .expect("RETR on the held channel");
    let mut got = Vec::new();
    { t.stream }.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"data");
    assert_eq!(a.read_reply().lines, ["226 Transfer complete."]);
    let again = wait_for("a passive port to free up", TIMEOUT, || {
        let r = c.cmd("PASV");
        match r.code {
            227 => Some(parse_227(&r).expect("227")),
            425 => None,
            _ => panic!("PASV: {r}"),
        }
    });
    assert_eq!(again.port(), held_a.port());
    let t = c.start("RETR f.txt", Data::Passive(again)).expect("RETR");
    let mut got = Vec::new();
    { t.stream }.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"data");
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    for client in [a, b, c] {
        client.quit();
    }
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
    // Fields are split by runs of spaces: the date pads a one-digit day
    // (`Wed Dec  2`), as ctime does.
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
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
