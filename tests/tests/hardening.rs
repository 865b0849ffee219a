//! Hardening: the attacks and resource exhaustion a public FTP server
//! meets, each tried over real loopback sockets on both daemons. Every
//! test here is referenced from `SECURITY.md`, next to the defence it
//! proves.
//!
//! Defences tested elsewhere (and not repeated here): symlinks out of the
//! root, passive connections from the wrong source, `--max-clients` and
//! `--max-per-ip`, interrupted uploads (`tests/sessions.rs`); concurrent
//! uploads to one name (`tests/transfers.rs`); PORT/EPRT reply policy
//! (`tests/conformance.rs`).
//!
//! Most tests run the daemon in-process, like the rest of the suite. The
//! ones that measure the daemon's memory or lower its descriptor limit run
//! it in a child process instead ([`ChildDaemon`]: this test binary again,
//! running the ignored `child_daemon` helper), so that the other tests of
//! this binary, running in parallel, neither disturb the measure nor
//! share the limit.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_host::limits::{DEFAULT_MAX_PER_IP, TOO_MANY_FROM_ADDRESS};
use ftp_tests::client::connect_from;
use ftp_tests::clients::clients_required;
use ftp_tests::data::pattern;
use ftp_tests::{Client, Reply, TIMEOUT, TestServer, daemon_tests, skip, tree, wait_for};

daemon_tests! {
    path_traversal_reads_stay_in_the_root,
    path_traversal_writes_stay_in_the_root,
    nul_in_a_path_is_refused,
    port_to_another_host_never_connects,
    port_to_a_privileged_port_never_connects,
    long_line_without_newline,
    flood_of_one_byte_packets,
    thousand_connections_beyond_max_clients,
    one_address_cannot_lock_out_the_others,
    login_deadline_closes_connections_that_do_not_log_in,
    client_that_never_reads_its_replies,
    recursive_listings_are_one_level,
    stat_listing_is_capped,
    deep_trees_and_symlink_loops,
    descriptor_exhaustion,
    brute_force_logins,
    full_disk_leaves_no_partial_file,
    control_characters_in_names,
    log_masks_passwords_and_escapes_control_characters,
}

/// `mio` or `smol`: which daemon `R` is (for the child process).
fn runtime_name<R: Runtime>() -> &'static str {
    if std::any::type_name::<R>().contains("Mio") {
        "mio"
    } else {
        "smol"
    }
}

/// Fails if anything connects to `listener` within `window` (polled).
fn assert_nothing_connects(listener: &TcpListener, window: Duration, what: &str) {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + window;
    loop {
        match listener.accept() {
            Ok((_, from)) => panic!("{what}: the server connected to our trap (from {from})"),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => panic!("{what}: accept on the trap: {e}"),
        }
        if Instant::now() >= deadline {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes all of `bytes`, panicking with a short message (not the bytes)
/// if the server stops taking them.
fn write_all_or_panic(s: &mut impl Write, bytes: &[u8], what: &str) {
    if let Err(e) = s.write_all(bytes) {
        panic!("{what}: writing {} bytes: {e}", bytes.len());
    }
}

// ---------------------------------------------------------------------
// Path traversal
// ---------------------------------------------------------------------

/// `..`, absolute paths, URL-encoded dots and backslashes never reach
/// above the served folder: `/etc/passwd` is the root's own `etc/passwd`.
fn path_traversal_reads_stay_in_the_root<R: Runtime>() {
    let srv = TestServer::builder()
        .file("etc/passwd", "the root's own etc/passwd\n")
        .file("pub/a.txt", "a")
        .file("%2e%2e%2fliteral", "a literal name")
        .file("..\\bs.txt", "a backslash name")
        .start::<R>();
    let inside = b"the root's own etc/passwd\n".to_vec();
    let mut c = srv.login();
    c.expect("TYPE I", 200);

    c.check("CWD ../../..", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CWD pub", "250 Directory successfully changed.");
    c.check("CWD ../../../..", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CWD /pub", "250 Directory successfully changed.");
    for path in [
        "../../etc/passwd",
        "../../../../../../../../etc/passwd",
        "/etc/passwd",
        "/../../etc/passwd",
        "//etc//passwd",
        "./../etc/./passwd",
    ] {
        assert_eq!(c.retr(path), inside, "RETR {path} from /pub");
        c.check(&format!("SIZE {path}"), &format!("213 {}", inside.len()));
    }
    // A listing of "above the root" is the root.
    let mut above: Vec<String> = c.nlst("../../..").lines().map(String::from).collect();
    above.sort();
    c.check("CWD /", "250 Directory successfully changed.");
    let mut root: Vec<String> = c.nlst("").lines().map(String::from).collect();
    root.sort();
    assert_eq!(above, root);
    let stat = c.expect("STAT ../../../etc", 213);
    assert_eq!(stat.inner().len(), 1, "only the root's etc/passwd: {stat}");

    // `%2e%2e%2f` is a name, never decoded: as a path it names nothing,
    // and the file of that literal name is served.
    for path in ["%2e%2e%2fetc%2fpasswd", "%2e%2e/etc/passwd", "%2E%2E%2F"] {
        let r = c.download(&format!("RETR {path}")).expect_err(path);
        assert_eq!(r.code, 550, "RETR {path}: {r}");
    }
    assert_eq!(c.retr("%2e%2e%2fliteral"), b"a literal name");
    // A backslash is part of a name, not a separator.
    for path in ["..\\..\\etc\\passwd", "..\\etc\\passwd", "pub\\..\\..\\x"] {
        let r = c.download(&format!("RETR {path}")).expect_err(path);
        assert_eq!(r.code, 550, "RETR {path}: {r}");
    }
    c.check("CWD ..\\..", "550 Failed to change directory.");
    c.check("PWD", "257 \"/\" is the current directory");
    assert_eq!(c.retr("..\\bs.txt"), b"a backslash name");
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// Uploads and file changes with `..`-laden names land inside the root;
/// the folder around the root does not change.
fn path_traversal_writes_stay_in_the_root<R: Runtime>() {
    let outer = tempfile::tempdir().unwrap();
    let srv_dir = outer.path().join("srv");
    fs::create_dir(&srv_dir).unwrap();
    fs::create_dir(srv_dir.join("tmp")).unwrap();
    fs::write(outer.path().join("secret.txt"), "outside the root").unwrap();
    fs::create_dir(outer.path().join("x")).unwrap();
    let outside = || {
        let mut s = tree::snapshot(outer.path());
        s.retain(|p, _| !p.starts_with("srv"));
        s
    };
    let before = outside();
    let marker = format!("hardening-{}-{}", std::process::id(), runtime_name::<R>());

    let srv = TestServer::builder()
        .args(&["-w"])
        .root(&srv_dir)
        .file("pub/a.txt", "a")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.check("MKD ../x", "257 \"/x\" created");
    assert!(srv.path("x").is_dir());
    c.check("MKD ../../../pub/../y", "257 \"/y\" created");
    assert!(srv.path("y").is_dir());
    c.stor("../../tmp/x", marker.as_bytes());
    assert_eq!(fs::read(srv.path("tmp/x")).unwrap(), marker.as_bytes());
    let real = fs::read(Path::new("/tmp/x")).unwrap_or_default();
    assert_ne!(
        real,
        marker.as_bytes(),
        "STOR ../../tmp/x wrote the real /tmp/x"
    );
    c.stor("/../secret.txt", b"inside");
    assert_eq!(fs::read(srv.path("secret.txt")).unwrap(), b"inside");
    c.check("CWD pub", "250 Directory successfully changed.");
    c.stor("../../../secret.txt", b"inside again");
    assert_eq!(fs::read(srv.path("secret.txt")).unwrap(), b"inside again");
    c.stor("..\\..\\bs.txt", b"backslashes");
    assert_eq!(
        fs::read(srv.path("pub/..\\..\\bs.txt")).unwrap(),
        b"backslashes"
    );
    c.stor("%2e%2e%2fpct.txt", b"percent");
    assert_eq!(
        fs::read(srv.path("pub/%2e%2e%2fpct.txt")).unwrap(),
        b"percent"
    );
    c.upload("APPE ../../secret.txt", b"+")
        .unwrap_or_else(|r| panic!("APPE: {r}"));
    assert_eq!(fs::read(srv.path("secret.txt")).unwrap(), b"inside again+");
    c.expect("RNFR a.txt", 350);
    c.check("RNTO ../../moved.txt", "250 Rename successful.");
    assert!(srv.path("moved.txt").is_file());
    c.check(
        "DELE ../../../secret.txt",
        "250 Delete operation successful.",
    );
    assert!(!srv.path("secret.txt").exists());
    c.check("RMD ../../x", "250 Remove directory operation successful.");
    assert!(!srv.path("x").exists());
    c.check(
        "SITE CHMOD 600 ../../moved.txt",
        "200 SITE CHMOD command ok.",
    );
    c.quit();
    drop(srv);
    assert_eq!(outside(), before, "the folder around the root changed");
}

/// A NUL byte in a path is refused; it never cuts the name short
/// (`RETR a\0b` must not serve `a`).
fn nul_in_a_path_is_refused<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("a", "the file a")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let _ = c.pasv();
    for line in [
        &b"RETR a\0b"[..],
        b"RETR a\0",
        b"STOR a\0b",
        b"APPE a\0/../x",
        b"SIZE a\0b",
        b"MKD d\0e",
        b"CWD /\0/etc",
        b"DELE a\0b",
        b"RNFR a\0b",
        b"LIST a\0b",
        b"STAT a\0b",
        b"MLST a\0b",
    ] {
        let mut raw = line.to_vec();
        raw.extend_from_slice(b"\r\n");
        c.send_raw(&raw);
        let r = c.read_reply();
        let shown = String::from_utf8_lossy(line).replace('\0', "\\0");
        assert!(
            r.code / 100 == 5,
            "{shown:?} got {r}, expected a 5xx refusal"
        );
    }
    c.check("PWD", "257 \"/\" is the current directory");
    assert_eq!(fs::read(srv.path("a")).unwrap(), b"the file a");
    assert_eq!(tree::names(srv.root()), ["a"]);
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

// ---------------------------------------------------------------------
// Bounce and hijack
// ---------------------------------------------------------------------

/// PORT/EPRT naming another host (127.0.0.2 while the client is
/// 127.0.0.1) is refused, and the server never connects there, not even
/// when a transfer is asked for next. With `--allow-foreign-port` the
/// same trap does see the connection, which shows the trap works.
fn port_to_another_host_never_connects<R: Runtime>() {
    let trap = TcpListener::bind("127.0.0.2:0").expect("bind 127.0.0.2");
    let port = trap.local_addr().unwrap().port();
    let (p1, p2) = (port >> 8, port & 0xff);
    let srv = TestServer::builder().file("f.txt", "data").start::<R>();
    let mut c = srv.login();
    c.check(
        &format!("PORT 127,0,0,2,{p1},{p2}"),
        "500 Illegal PORT command.",
    );
    c.check("RETR f.txt", "425 Use PORT or PASV first.");
    c.check(
        &format!("EPRT |1|127.0.0.2|{port}|"),
        "500 Illegal EPRT command.",
    );
    c.check("LIST", "425 Use PORT or PASV first.");
    c.check(
        &format!("EPRT |2|::ffff:127.0.0.2|{port}|"),
        "500 Illegal EPRT command.",
    );
    c.check("NLST", "425 Use PORT or PASV first.");
    assert_nothing_connects(&trap, Duration::from_millis(500), "PORT 127.0.0.2");
    c.check("NOOP", "200 NOOP ok.");
    c.quit();

    // The positive control: when foreign ports are allowed, the server
    // does connect to the trap.
    let srv = TestServer::builder()
        .args(&["--allow-foreign-port"])
        .file("f.txt", "data")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.check(
        &format!("PORT 127,0,0,2,{p1},{p2}"),
        "200 PORT command successful. Consider using PASV.",
    );
    c.send("RETR f.txt");
    let r = c.read_reply();
    assert_eq!(r.code, 150, "{r}");
    let mut s = ftp_tests::client::accept_timeout(&trap, TIMEOUT)
        .expect("with --allow-foreign-port the server connects to 127.0.0.2");
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"data");
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    c.quit();
}

/// PORT/EPRT to a port below 1024 is refused (even with
/// `--allow-foreign-port`), and nothing connects to it. The trap on a
/// privileged port needs root; without it only the replies are checked.
fn port_to_a_privileged_port_never_connects<R: Runtime>() {
    let trap = (600u16..1024)
        .rev()
        .find_map(|p| TcpListener::bind(("127.0.0.1", p)).ok());
    let port = trap.as_ref().map_or(21, |t| t.local_addr().unwrap().port());
    for args in [&[][..], &["--allow-foreign-port"][..]] {
        let srv = TestServer::builder()
            .args(args)
            .file("f.txt", "data")
            .start::<R>();
        let mut c = srv.login();
        c.check(
            &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
            "500 Illegal PORT command.",
        );
        c.check("RETR f.txt", "425 Use PORT or PASV first.");
        c.check(
            &format!("EPRT |1|127.0.0.1|{port}|"),
            "500 Illegal EPRT command.",
        );
        c.check("LIST", "425 Use PORT or PASV first.");
        c.check("PORT 127,0,0,1,3,255", "500 Illegal PORT command.");
        let r = c.cmd("PORT 127,0,0,1,0,0");
        assert!(r.code == 500 || r.code == 501, "PORT to port 0: {r}");
        c.check(
            "PORT 127,0,0,1,4,0",
            "200 PORT command successful. Consider using PASV.",
        );
        if let Some(trap) = &trap {
            assert_nothing_connects(trap, Duration::from_millis(300), "PORT to a low port");
        }
        c.quit();
    }
    if trap.is_none() {
        skip(
            "port_to_a_privileged_port_never_connects",
            "cannot listen on a port below 1024 (not root): replies checked, no trap",
        );
    }
}

// ---------------------------------------------------------------------
// Resource exhaustion
// ---------------------------------------------------------------------

/// Most a daemon (in a child process) may grow while a test pushes tens
/// of megabytes at it.
const RSS_BOUND_KIB: u64 = 24 * 1024;

/// A 100 KB line without a line end is refused as soon as it passes the
/// limit (without waiting for the end); the rest of the line is dropped
/// as it arrives, however long it gets (64 MiB here: the daemon, in a
/// child process, must not grow by that much), and the session goes on.
fn long_line_without_newline<R: Runtime>() {
    const MORE: usize = 64 << 20;
    let daemon = ChildDaemon::start::<R>(&[], None);
    let mut c = Client::connect(daemon.addr);
    c.login_anonymous();
    let rss_before = daemon.rss_kib();
    let mut w = c.socket().try_clone().unwrap();
    write_all_or_panic(&mut w, &vec![b'A'; 100 * 1024], "a 100 KB line");
    assert_eq!(c.read_reply().lines, ["500 Command line too long."]);
    // Much more of the same line: the server must keep reading (writes
    // would block otherwise) and must not keep what it reads.
    let chunk = vec![b'B'; 256 * 1024];
    for _ in 0..MORE / chunk.len() {
        write_all_or_panic(&mut w, &chunk, "the rest of the long line");
    }
    let grew = daemon.rss_kib().saturating_sub(rss_before);
    assert!(
        grew < RSS_BOUND_KIB,
        "the daemon grew by {grew} KiB while a {} MiB line was sent",
        MORE >> 20
    );
    assert_no_reply_within(&c, Duration::from_millis(100), "the rest of a refused line");
    write_all_or_panic(&mut w, b"\r\nNOOP\r\n", "the line end");
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    c.check("PWD", "257 \"/\" is the current directory");
    // A line under the limit is not answered before its end.
    c.send_raw(&[b'C'; 4000]);
    assert_no_reply_within(&c, Duration::from_millis(200), "an unfinished line");
    c.send_raw(b"\r\n");
    assert_eq!(c.read_reply().lines, ["500 Unknown command."]);
    c.quit();
    daemon.stop();
}

/// Fails if a reply arrives on `c` within `window` (polled).
fn assert_no_reply_within(c: &Client, window: Duration, what: &str) {
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        assert!(!has_pending_reply(c), "{what}: got a reply");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Commands sent one byte per packet (TCP_NODELAY), from two sessions at
/// once, are answered correctly and in order.
fn flood_of_one_byte_packets<R: Runtime>() {
    let srv = TestServer::builder().file("f.txt", "12345").start::<R>();
    let addr = srv.addr();
    std::thread::scope(|s| {
        let sessions: Vec<_> = (0..2)
            .map(|n| {
                s.spawn(move || {
                    let mut c = Client::connect(addr);
                    let mut script = String::from("USER anonymous\r\nPASS x\r\n");
                    let mut expected: Vec<String> = vec![
                        "331 Please specify the password.".into(),
                        "230 Login successful.".into(),
                    ];
                    for i in 0..150 {
                        let (cmd, reply) = match i % 5 {
                            0 => ("NOOP", "200 NOOP ok."),
                            1 => ("PWD", "257 \"/\" is the current directory"),
                            2 => ("TYPE I", "200 Switching to Binary mode."),
                            3 => ("SIZE f.txt", "213 5"),
                            _ => ("CWD /", "250 Directory successfully changed."),
                        };
                        script.push_str(cmd);
                        script.push_str("\r\n");
                        expected.push(reply.into());
                    }
                    let mut w = c.socket().try_clone().unwrap();
                    for b in script.bytes() {
                        write_all_or_panic(&mut w, &[b], "one byte");
                    }
                    for (i, want) in expected.iter().enumerate() {
                        let r = c.read_reply();
                        assert_eq!(r.lines, [want.as_str()], "session {n}, reply {i}");
                    }
                    c.quit();
                })
            })
            .collect();
        for h in sessions {
            h.join().expect("session");
        }
    });
}

/// 1000 connections over `--max-clients` each get `421` and are closed;
/// the admitted sessions keep working throughout.
fn thousand_connections_beyond_max_clients<R: Runtime>() {
    const TOTAL: usize = 1000;
    // Each connection costs this process two descriptors (both ends are
    // in-process) until it is closed; they come in waves, so at most
    // `2 * wave` are open at once.
    let limit = ftp_host::limits::raise_nofile_limit().unwrap_or(1024);
    let spare = usize::try_from(limit)
        .unwrap_or(usize::MAX)
        .saturating_sub(256);
    let wave = (spare / 4).clamp(1, 50);
    if wave < 50 {
        skip(
            "thousand_connections_beyond_max_clients",
            &format!("descriptor limit {limit}: connecting {wave} at a time, not 50"),
        );
    }
    let content = pattern(40, 300_000);
    let srv = TestServer::builder()
        .args(&["--max-clients", "2"])
        .file("f.bin", &content)
        .start::<R>();
    let mut a = srv.login();
    let mut b = srv.login();
    a.expect("TYPE I", 200);
    let mut refused = 0;
    for round in 0..TOTAL.div_ceil(wave) {
        let n = wave.min(TOTAL - refused);
        let streams: Vec<TcpStream> = (0..n).map(|_| srv.raw_connect()).collect();
        for s in streams {
            let mut c = Client::from_stream(s)
                .unwrap_or_else(|e| panic!("connection {refused}: no reply: {e}"));
            assert_eq!(
                c.greeting.lines,
                ["421 Too many users, try again later."],
                "connection {refused}"
            );
            c.expect_closed();
            refused += 1;
        }
        a.check("NOOP", "200 NOOP ok.");
        if round % 5 == 0 {
            b.check("PWD", "257 \"/\" is the current directory");
        }
    }
    assert_eq!(refused, TOTAL);
    ftp_tests::assert_bytes(&a.retr("f.bin"), &content, "RETR after the flood");
    b.quit();
    a.quit();
    let mut c = wait_for("a free place after QUIT", TIMEOUT, || {
        let c = Client::try_connect(srv.addr()).expect("connect");
        (c.greeting.code == 220).then_some(c)
    });
    c.login_anonymous();
    c.quit();
}

/// Writes `line` to each of `sockets` one byte at a time, a byte to each
/// every `pause`, on a thread, until `stop` is set; a socket the server
/// has closed is left alone. Returns the thread.
fn trickle(
    sockets: Vec<TcpStream>,
    line: &'static [u8],
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut open: Vec<(TcpStream, usize)> = sockets.into_iter().map(|s| (s, 0)).collect();
        while !stop.load(Ordering::Relaxed) && !open.is_empty() {
            open.retain_mut(|(s, at)| {
                let byte = line[*at % line.len()];
                *at += 1;
                s.write_all(&[byte]).is_ok()
            });
            std::thread::sleep(pause);
        }
    })
}

/// A `USER` line without its end, for [`trickle`].
const ENDLESS_USER: &[u8] =
    b"USER xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

/// With the default settings, 300 connections from one address (127.0.0.2;
/// half idle, half trickling a `USER` line one byte at a time without its
/// line end) do not lock anyone else out: that address gets
/// `DEFAULT_MAX_PER_IP` places and the rest of its connections `421`, and
/// a client from 127.0.0.1 meanwhile is greeted, logs in and transfers.
fn one_address_cannot_lock_out_the_others<R: Runtime>() {
    const FLOOD: usize = 300;
    // Both ends of every admitted connection are in this process.
    let limit = ftp_host::limits::raise_nofile_limit().unwrap_or(1024);
    if limit < 4 * FLOOD as u64 + 256 {
        skip(
            "one_address_cannot_lock_out_the_others",
            &format!("descriptor limit {limit}, too low for {FLOOD} connections"),
        );
        return;
    }
    let content = pattern(43, 200_000);
    let srv = TestServer::builder().file("f.bin", &content).start::<R>();
    let flooder = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let start = Instant::now();
    let mut admitted = Vec::new();
    let mut refused = Vec::new();
    for i in 0..FLOOD {
        let s = connect_from(flooder, srv.addr())
            .unwrap_or_else(|e| panic!("flood connection {i}: {e}; {}", srv.status()));
        let c = Client::from_stream(s)
            .unwrap_or_else(|e| panic!("flood connection {i}: no greeting: {e}"));
        if c.greeting.code == 220 {
            admitted.push(c);
        } else {
            refused.push((i, c));
        }
    }
    let flood_took = start.elapsed();
    let stop = Arc::new(AtomicBool::new(false));
    let tricklers: Vec<TcpStream> = admitted
        .iter()
        .step_by(2)
        .map(|c| c.socket().try_clone().expect("clone"))
        .collect();
    let trickler = trickle(
        tricklers,
        ENDLESS_USER,
        Duration::from_millis(100),
        Arc::clone(&stop),
    );

    // Everyone else is still served.
    let mut c = srv.client();
    c.login_anonymous();
    c.expect("TYPE I", 200);
    ftp_tests::assert_bytes(&c.retr("f.bin"), &content, "RETR during the flood");
    assert!(c.list("").contains("f.bin"));
    c.quit();

    // The flooding address got no more than its share.
    let active = srv.server().limiter.active_from(flooder);
    assert!(
        active <= DEFAULT_MAX_PER_IP,
        "{active} sessions from {flooder}"
    );
    assert!(admitted.len() >= DEFAULT_MAX_PER_IP, "{}", admitted.len());
    // Unless the flood outlasted the login deadline (60 s), which would
    // have closed the first sessions and freed their places.
    if flood_took < Duration::from_secs(50) {
        assert_eq!(admitted.len(), DEFAULT_MAX_PER_IP);
    }
    for (i, c) in &mut refused {
        assert_eq!(
            c.greeting.lines,
            [format!("421 {TOO_MANY_FROM_ADDRESS}")],
            "flood connection {i}"
        );
        c.expect_closed();
    }
    stop.store(true, Ordering::Relaxed);
    trickler.join().expect("trickler");
}

/// `--login-timeout`: a connection that has not logged in is closed with
/// `421` once the deadline passes, counted from the greeting whatever it
/// sends meanwhile: idle, a `USER` line trickled one byte at a time, or
/// complete commands (`USER` without `PASS`, then `NOOP`s). A session that
/// logged in goes on.
fn login_deadline_closes_connections_that_do_not_log_in<R: Runtime>() {
    const DEADLINE: Duration = Duration::from_secs(2);
    // Generous: the machine may be busy.
    const MARGIN: Duration = Duration::from_secs(8);
    const CLOSED: &str = "421 Login timeout, closing control connection.";
    let srv = TestServer::start::<R>(&["--login-timeout", "2"]);
    let start = Instant::now();
    let mut idle = srv.client();
    let mut trickling = srv.client();
    let mut chatty = srv.client();
    let mut member = srv.client();
    member.login_anonymous();
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = trickle(
        vec![trickling.socket().try_clone().expect("clone")],
        ENDLESS_USER,
        Duration::from_millis(50),
        Arc::clone(&stop),
    );
    chatty.expect("USER anonymous", 331);
    let mut noops = 0;
    let chatty_closed = loop {
        // The server may close between the command and its reply.
        let _ = chatty.socket().write_all(b"NOOP\r\n");
        match chatty.try_read_reply() {
            Ok(r) if r.lines == ["200 NOOP ok."] => noops += 1,
            Ok(r) => {
                assert_eq!(r.lines, [CLOSED], "after {noops} NOOPs");
                break start.elapsed();
            }
            Err(e) => panic!("after {noops} NOOPs: {e}"),
        }
        assert!(
            start.elapsed() < DEADLINE + MARGIN,
            "still open after {noops} NOOPs"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    chatty.expect_closed();
    assert!(noops > 0);
    for (what, c) in [("idle", &mut idle), ("trickling", &mut trickling)] {
        let r = c.try_read_reply().unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(r.lines, [CLOSED], "{what}");
        c.expect_closed();
    }
    let all_closed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    trickler.join().expect("trickler");
    // Not before the deadline (counted from after `start`), and not
    // long after it.
    assert!(chatty_closed >= DEADLINE, "closed after {chatty_closed:?}");
    assert!(
        all_closed < DEADLINE + MARGIN,
        "closed after {all_closed:?}"
    );
    // The logged-in session has no login deadline.
    member.check("NOOP", "200 NOOP ok.");
    assert_eq!(member.list("").lines().count(), 0);
    member.quit();
}

/// A client that pipelines commands with large replies (`STAT /`, `HELP`,
/// `STAT`, `LIST`) and never reads: the server stops reading from it once
/// its replies back up, so the client can push only a bounded amount
/// (socket buffers) before its writes block; the daemon (in a child
/// process) does not grow; other sessions are served meanwhile; and the
/// stuck session's place is freed when it goes.
fn client_that_never_reads_its_replies<R: Runtime>() {
    let root = tempfile::tempdir().unwrap();
    for i in 0..400 {
        let name = format!("a-rather-long-file-name-number-{i:04}.txt");
        fs::write(root.path().join(name), "x").unwrap();
    }
    let root_arg = root.path().to_str().unwrap();
    let daemon = ChildDaemon::start::<R>(&["--max-clients", "2", root_arg], None);
    let mut slow = Client::connect(daemon.addr);
    slow.login_anonymous();
    let rss_before = daemon.rss_kib();
    let mut w = slow.socket().try_clone().unwrap();
    w.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    let burst = "STAT /\r\nHELP\r\nSTAT\r\nLIST\r\n".repeat(2000);
    // Far more than loopback socket buffers can hold.
    let cap: usize = 256 << 20;
    let mut sent = 0usize;
    let blocked = loop {
        let at = sent % burst.len();
        match w.write(&burst.as_bytes()[at..]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                break true;
            }
            Err(e) => panic!("writing commands: {e}"),
        }
        if sent >= cap {
            break false;
        }
    };
    assert!(
        blocked,
        "the server kept reading {} MiB of commands whose replies nobody read",
        sent >> 20
    );
    // Meanwhile another session works normally.
    let mut other = Client::connect(daemon.addr);
    other.login_anonymous();
    let stat = other.expect("STAT /", 213);
    assert_eq!(stat.inner().len(), 400);
    assert_eq!(other.nlst("").lines().count(), 400);
    other.check("NOOP", "200 NOOP ok.");
    let grew = daemon.rss_kib().saturating_sub(rss_before);
    assert!(
        grew < RSS_BOUND_KIB,
        "the daemon grew by {grew} KiB ({} MiB of commands sent)",
        sent >> 20
    );
    // What the stuck client gets, when it does read, is in order.
    for i in 0..12 {
        let r = slow.read_reply();
        let want = [213, 214, 211, 425][i % 4];
        assert_eq!(r.code, want, "reply {i}: {}", r.lines[0]);
    }
    // It goes away without reading the rest: its place is freed.
    ftp_tests::client::reset(slow.socket().try_clone().unwrap());
    drop(slow);
    drop(w);
    let mut again = wait_for("the stuck session's place", TIMEOUT, || {
        let c = Client::try_connect(daemon.addr).ok()?;
        (c.greeting.code == 220).then_some(c)
    });
    again.login_anonymous();
    again.quit();
    other.quit();
    daemon.stop();
}

/// `LIST -R`, `NLST -R` and `STAT -R` are not recursive: they list one
/// level, even with a symlink loop in the tree (Pure-FTPd's
/// CVE-2019-20176 was a stack overflow in recursive listings).
fn recursive_listings_are_one_level<R: Runtime>() {
    let srv = TestServer::builder()
        .file("a.txt", "a")
        .file("sub/b.txt", "b")
        .file("sub/inner/c.txt", "c")
        .start::<R>();
    std::os::unix::fs::symlink(".", srv.path("loop")).unwrap();
    std::os::unix::fs::symlink("..", srv.path("sub/up")).unwrap();
    let mut c = srv.login();
    let root = ["a.txt", "loop", "sub"];
    for args in ["-R", "-lR", "-aR", "-R /", "-R loop", "-R loop/loop/loop"] {
        let nlst = c.nlst(args);
        assert_eq!(nlst.lines().count(), 3, "NLST {args}: {nlst:?}");
        if !args.contains('l') {
            let mut names: Vec<&str> = nlst.lines().collect();
            names.sort();
            assert_eq!(names, root, "NLST {args}");
        }
        let list = c.list(args);
        let lines: Vec<&str> = list.lines().collect();
        assert_eq!(lines.len(), 3, "LIST {args}: {list:?}");
        assert!(
            lines
                .iter()
                .all(|l| !l.ends_with(':') && !l.contains("b.txt")),
            "LIST {args}: {list:?}"
        );
        let stat = c.expect(&format!("STAT {args}"), 213);
        assert_eq!(stat.inner().len(), 3, "STAT {args}: {stat}");
    }
    let mut names: Vec<String> = c.nlst("-R sub/up/sub").lines().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["b.txt", "inner", "up"]);
    let stat = c.expect("STAT -laR sub", 213);
    assert_eq!(stat.inner().len(), 3, "{stat}");
    assert!(!stat.inner().iter().any(|l| l.ends_with("c.txt")), "{stat}");
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// `STAT path` (a listing over the control connection, held in memory
/// as one reply) stops at 10,000 entries; a listing over a data
/// connection is streamed in batches and has them all.
fn stat_listing_is_capped<R: Runtime>() {
    const FILES: usize = 10_050;
    let srv = TestServer::builder().file("f00000", "").start::<R>();
    // Hard links: many names, one inode (quick to make on any disk).
    for i in 1..FILES {
        fs::hard_link(srv.path("f00000"), srv.path(&format!("f{i:05}"))).unwrap();
    }
    let mut c = srv.login();
    let stat = c.expect("STAT /", 213);
    assert_eq!(stat.inner().len(), 10_000, "{}", stat.lines[0]);
    assert_eq!(stat.last_text(), "End of status.");
    assert_eq!(c.nlst("").lines().count(), FILES);
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// Deep trees: 200 nested folders can be walked and listed; a tree
/// deeper than `PATH_MAX` and a symlink loop are cut off by the kernel's
/// limits (a 550, never a crash), and the session goes on.
fn deep_trees_and_symlink_loops<R: Runtime>() {
    const DEPTH: usize = 200;
    let srv = TestServer::start::<R>(&[]);
    let deep: PathBuf = std::iter::repeat_n("d", DEPTH).collect();
    fs::create_dir_all(srv.root().join(&deep)).unwrap();
    fs::write(srv.root().join(&deep).join("bottom.txt"), "bottom").unwrap();
    std::os::unix::fs::symlink(".", srv.path("loop")).unwrap();
    std::os::unix::fs::symlink(".", srv.root().join(&deep).join("loop")).unwrap();
    // Folders whose path is longer than PATH_MAX (made relative to each
    // other, as no single path may name them).
    let long_name = "n".repeat(250);
    make_long_chain(srv.root(), &long_name, 20);

    let mut c = srv.login();
    let deep_str = deep.to_str().unwrap();
    c.check(
        &format!("CWD {deep_str}"),
        "250 Directory successfully changed.",
    );
    let pwd = c.expect("PWD", 257);
    assert_eq!(
        pwd.text().len(),
        "\"\" is the current directory".len() + 2 * DEPTH
    );
    assert_eq!(c.retr("bottom.txt"), b"bottom");
    let mut names: Vec<String> = c.nlst("-R").lines().map(String::from).collect();
    names.sort();
    assert_eq!(names, ["bottom.txt", "loop"]);
    assert_eq!(c.expect("STAT -R .", 213).inner().len(), 2);
    for _ in 0..DEPTH {
        c.check("CDUP", "250 Directory successfully changed.");
    }
    c.check("PWD", "257 \"/\" is the current directory");
    for _ in 0..DEPTH {
        c.check("CWD d", "250 Directory successfully changed.");
    }
    assert_eq!(c.retr("bottom.txt"), b"bottom");

    // A symlink loop: each CWD through it adds a link to resolve, and the
    // kernel's limit on links in one lookup ends it.
    c.check("CWD /", "250 Directory successfully changed.");
    let mut entered = 0;
    for _ in 0..100 {
        let r = c.cmd("CWD loop");
        match r.code {
            250 => entered += 1,
            550 => break,
            _ => panic!("CWD loop: {r}"),
        }
    }
    // Linux follows at most 40 links in one lookup.
    assert!(
        (1..=40).contains(&entered),
        "CWD loop succeeded {entered} times in a row"
    );
    let listing = c.nlst("/loop/loop/loop");
    assert!(listing.lines().any(|l| l == "loop"), "{listing:?}");
    c.check("CWD /", "250 Directory successfully changed.");

    // Beyond PATH_MAX: entered level by level until the path is too long.
    let mut levels = 0;
    for _ in 0..20 {
        let r = c.cmd(&format!("CWD {long_name}"));
        match r.code {
            250 => levels += 1,
            550 => break,
            _ => panic!("CWD (long name): {r}"),
        }
    }
    assert!(
        (10..20).contains(&levels),
        "entered {levels} levels of 250-byte names"
    );
    assert_eq!(c.nlst("").lines().count(), 1);
    c.check("CWD /", "250 Directory successfully changed.");
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// Makes `depth` nested folders named `name` under `root`, each created
/// relative to its parent's descriptor.
fn make_long_chain(root: &Path, name: &str, depth: usize) {
    use rustix::fs::{Mode, OFlags, mkdirat, openat};
    let mut dir = openat(
        rustix::fs::CWD,
        root,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .expect("open root");
    for _ in 0..depth {
        mkdirat(&dir, name, Mode::from_raw_mode(0o755)).expect("mkdirat");
        dir = openat(
            &dir,
            name,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("openat");
    }
}

// ---------------------------------------------------------------------
// A daemon in a child process
// ---------------------------------------------------------------------

/// Environment of [`child_daemon`]: the runtime (`mio` or `smol`).
const CHILD_RUNTIME: &str = "FTP_HARDENING_CHILD";
/// Environment of [`child_daemon`]: the daemon's arguments, one a line.
const CHILD_ARGS: &str = "FTP_HARDENING_CHILD_ARGS";
/// Environment of [`child_daemon`]: how many descriptors the daemon may
/// open beyond those it has once serving (no limit when unset).
const CHILD_FD_HEADROOM: &str = "FTP_HARDENING_CHILD_FD_HEADROOM";
/// Environment of [`child_daemon`]: install the daemons' logger (to
/// standard error) with this many `-v`.
const CHILD_LOG: &str = "FTP_HARDENING_CHILD_LOG";

/// Run by [`ChildDaemon::start`] in a child process, alone: a daemon whose
/// memory can be measured on its own, and whose descriptor limit (per
/// process) can be lowered without touching the other tests. Serves on a
/// loopback port, prints `READY <addr>`, and stops when its standard
/// input ends. Does nothing when run by hand.
#[test]
#[ignore = "a helper that other tests run in a child process"]
fn child_daemon() {
    match std::env::var(CHILD_RUNTIME).as_deref() {
        Ok("mio") => serve_in_child::<ftp_mio::Mio>(),
        Ok("smol") => serve_in_child::<ftp_smol::Smol>(),
        Ok(other) => panic!("{CHILD_RUNTIME}={other}"),
        Err(_) => {}
    }
}

fn open_descriptors() -> u64 {
    // The directory stream's own descriptor is counted too.
    fs::read_dir("/proc/self/fd").unwrap().count() as u64 - 1
}

fn serve_in_child<R: Runtime>() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let args = std::env::var(CHILD_ARGS).unwrap_or_default();
    let args: Vec<&str> = args.lines().collect();
    if let Ok(verbosity) = std::env::var(CHILD_LOG) {
        ftp_host::log::init(verbosity.parse().expect("verbosity"), false, "ftpd");
    }
    let srv = TestServer::start::<R>(&args);
    // One session through, so that the daemon has opened everything it
    // keeps open; then wait for it to be gone.
    srv.login().quit();
    let server = srv.server();
    wait_for("the first session to end", TIMEOUT, || {
        (server.limiter.active() == 0).then_some(())
    });
    if let Ok(headroom) = std::env::var(CHILD_FD_HEADROOM) {
        let headroom: u64 = headroom.parse().expect("headroom");
        let mut limit = getrlimit(Resource::Nofile);
        limit.current = Some(open_descriptors() + headroom);
        setrlimit(Resource::Nofile, limit).expect("setrlimit");
    }
    let mut out = io::stdout().lock();
    writeln!(out, "READY {}", srv.addr()).unwrap();
    out.flush().unwrap();
    drop(out);
    // Serve until the parent closes our standard input.
    let mut sink = Vec::new();
    let _ = io::stdin().read_to_end(&mut sink);
    srv.stop().unwrap_or_else(|e| panic!("{e}"));
}

/// A daemon serving in a child process (this test binary, running
/// [`child_daemon`]). Dropping it kills the child (by its id) if
/// [`ChildDaemon::stop`] was not called.
struct ChildDaemon {
    child: std::process::Child,
    addr: SocketAddr,
    /// The child's standard error, when its log is captured.
    log: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl ChildDaemon {
    /// Starts `R` with `args` (the last may be the folder to serve) and,
    /// if given, only `fd_headroom` descriptors to spare.
    fn start<R: Runtime>(args: &[&str], fd_headroom: Option<u64>) -> ChildDaemon {
        ChildDaemon::spawn::<R>(args, fd_headroom, None)
    }

    /// Starts `R` with `args` and its log (`verbosity` as the number of
    /// `-v`) captured; [`ChildDaemon::stop`] returns it.
    fn start_logging<R: Runtime>(args: &[&str], verbosity: u8) -> ChildDaemon {
        ChildDaemon::spawn::<R>(args, None, Some(verbosity))
    }

    fn spawn<R: Runtime>(
        args: &[&str],
        fd_headroom: Option<u64>,
        verbosity: Option<u8>,
    ) -> ChildDaemon {
        let exe = std::env::current_exe().expect("test binary");
        let mut cmd = Command::new(exe);
        cmd.args(["--exact", "child_daemon", "--ignored", "--test-threads=1"])
            .env(CHILD_RUNTIME, runtime_name::<R>())
            .env(CHILD_ARGS, args.join("\n"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(n) = fd_headroom {
            cmd.env(CHILD_FD_HEADROOM, n.to_string());
        }
        if let Some(v) = verbosity {
            cmd.env(CHILD_LOG, v.to_string()).stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn the test binary");
        let log = child.stderr.take().map(|mut stderr| {
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                let _ = stderr.read_to_end(&mut bytes);
                bytes
            })
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(at) = line.find("READY ") {
                    let _ = tx.send(line[at + 6..].trim().to_string());
                }
            }
        });
        let mut daemon = ChildDaemon {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            log,
        };
        daemon.addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the child daemon did not start")
            .parse()
            .expect("address");
        daemon
    }

    /// The child's resident set size in KiB.
    fn rss_kib(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Closes the child's standard input, checks that it stops cleanly
    /// and returns its log (empty unless captured).
    fn stop(mut self) -> Vec<u8> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the child daemon did not stop");
            std::thread::sleep(Duration::from_millis(20));
        };
        let log = match self.log.take() {
            Some(reader) => reader.join().expect("log reader"),
            None => Vec::new(),
        };
        assert!(
            status.success(),
            "the child daemon failed: {status}; its log: {}",
            String::from_utf8_lossy(&log)
        );
        log
    }
}

impl Drop for ChildDaemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Descriptors the daemon of [`descriptor_exhaustion`] may open beyond
/// those it has once serving.
const FD_HEADROOM: u64 = 8;

/// Out of file descriptors: a daemon (in a child process with a low
/// limit) turns further clients away with `421` instead of leaving them
/// hanging, sessions already running go on, and it recovers when
/// descriptors free up.
fn descriptor_exhaustion<R: Runtime>() {
    let daemon = ChildDaemon::start::<R>(&[], Some(FD_HEADROOM));
    let addr = daemon.addr;
    let mut a = Client::connect(addr);
    a.login_anonymous();
    a.check("NOOP", "200 NOOP ok.");
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 0..3 * FD_HEADROOM {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        let mut c = Client::from_stream(s)
            .unwrap_or_else(|e| panic!("connection {i} got no greeting: {e}"));
        if c.greeting.code == 220 {
            assert_eq!(refused, 0, "connection {i} admitted after a refusal");
            admitted.push(c);
        } else {
            assert_eq!(
                c.greeting.lines,
                [format!("421 {}", ftp_host::limits::OUT_OF_DESCRIPTORS)],
                "connection {i}"
            );
            c.expect_closed();
            refused += 1;
        }
    }
    assert!(refused > 0, "all {} connections admitted", 3 * FD_HEADROOM);
    assert!(
        !admitted.is_empty(),
        "no session admitted with {FD_HEADROOM} descriptors to spare"
    );
    // The running session goes on; a data connection may not be possible
    // now, and it says so.
    a.check("NOOP", "200 NOOP ok.");
    let r = a.cmd("PASV");
    assert!(
        r.code == 227 || r.code == 425,
        "PASV out of descriptors: {r}"
    );
    a.check("PWD", "257 \"/\" is the current directory");
    for c in &mut admitted {
        c.check("NOOP", "200 NOOP ok.");
    }
    // Descriptors free up: everything works again.
    for c in admitted.drain(..) {
        c.quit();
    }
    let mut b = wait_for("a session admitted again", TIMEOUT, || {
        let c = Client::try_connect(addr).ok()?;
        (c.greeting.code == 220).then_some(c)
    });
    b.login_anonymous();
    assert_eq!(a.list("").lines().count(), 0);
    b.quit();
    a.quit();
    daemon.stop();
}

/// Password guessing: each failure is answered later than the one before
/// (200, 400, 800 ms with `--login-fail-delay 200`), the session is closed
/// after `--max-login-attempts`, and another session is answered while
/// the failed one waits.
fn brute_force_logins<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "200", "--max-login-attempts", "3"])
        .user("alice", "right", None, false)
        .file("f.txt", "data")
        .start::<R>();
    let mut bystander = srv.client();
    bystander.login("alice", "right");
    let mut attacker = srv.client();
    let mut waits = Vec::new();
    let mut latencies = Vec::new();
    for attempt in 0..3u32 {
        let delay = Duration::from_millis(200 << attempt);
        attacker.expect("USER alice", 331);
        let start = Instant::now();
        attacker.send(&format!("PASS guess{attempt}"));
        // The bystander's NOOP is answered while the 530 is still held
        // back: the delay blocks nothing but the guessing session. (A
        // daemon that slept through the delay would answer the NOOP only
        // after it, with the 530 already sent.)
        let noop = Instant::now();
        bystander.check("NOOP", "200 NOOP ok.");
        let latency = noop.elapsed();
        if latency < delay / 2 {
            assert!(
                !has_pending_reply(&attacker),
                "attempt {attempt}: the 530 came before another session's NOOP"
            );
        }
        latencies.push(latency);
        let r = attacker.read_reply();
        let waited = start.elapsed();
        assert_eq!(r.lines, ["530 Login incorrect."], "attempt {attempt}");
        assert!(
            waited >= delay,
            "attempt {attempt}: 530 after {waited:?}, the delay is {delay:?}"
        );
        waits.push(waited);
    }
    assert_eq!(
        attacker.read_reply().lines,
        ["421 Too many failed login attempts, closing control connection."]
    );
    attacker.expect_closed();
    assert!(waits[2] > waits[0], "{waits:?}");
    assert!(
        latencies
            .iter()
            .zip([100, 200, 400])
            .any(|(l, half)| *l < Duration::from_millis(half)),
        "another session's NOOP was never answered within half a login delay: {latencies:?}"
    );
    // The bystander is unaffected, and alice can still log in elsewhere.
    assert_eq!(bystander.retr("f.txt"), b"data");
    let mut again = srv.client();
    again.login("alice", "right");
    again.quit();
    bystander.quit();
}

/// Whether reply bytes are waiting on `c`'s control connection (in the
/// socket: call it only when the client has read every reply so far, so
/// that nothing sits in its own buffer).
fn has_pending_reply(c: &Client) -> bool {
    let s = c.socket();
    s.set_nonblocking(true).unwrap();
    let mut b = [0u8; 1];
    let r = s.peek(&mut b);
    s.set_nonblocking(false).unwrap();
    match r {
        Ok(n) => n > 0,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => false,
        Err(e) => panic!("peek: {e}"),
    }
}

// ---------------------------------------------------------------------
// Data safety
// ---------------------------------------------------------------------

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Sends `total` bytes for `line` whatever happens to the data connection
/// and returns the final reply.
fn upload_until_refused(c: &mut Client, line: &str, total: usize) -> Reply {
    let data = c.data();
    let mut t = c
        .start(line, data)
        .unwrap_or_else(|r| panic!("{line}: {r}"));
    let chunk = pattern(41, 64 * 1024);
    let mut sent = 0;
    while sent < total {
        if t.stream.write_all(&chunk).is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = t.stream.shutdown(std::net::Shutdown::Write);
    let mut rest = Vec::new();
    let _ = t.stream.read_to_end(&mut rest);
    drop(t.stream);
    c.read_reply()
}

/// A full disk (a 1 MiB tmpfs, when running as root): a 2 MiB upload
/// ends with 452 or 552, leaves no file under the final name (a new name)
/// or the previous version intact (an existing name), and no temporary
/// file; the session goes on.
fn full_disk_leaves_no_partial_file<R: Runtime>() {
    const TEST: &str = "full_disk_leaves_no_partial_file";
    if !rustix::process::geteuid().is_root() {
        skip(TEST, "needs root to mount a small tmpfs");
        return;
    }
    let mnt = tempfile::tempdir().unwrap();
    let fs_guard = match Tmpfs::mount(mnt.path(), "1m") {
        Ok(g) => g,
        Err(e) if clients_required() => {
            panic!("{TEST}: running as root with FTP_TEST_REQUIRE_CLIENTS=1, but {e}")
        }
        Err(e) => {
            skip(TEST, &e);
            return;
        }
    };
    let old = pattern(42, 100_000);
    fs::write(mnt.path().join("keep.bin"), &old).unwrap();
    let srv = TestServer::builder()
        .args(&["-w"])
        .root(mnt.path())
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for (line, name) in [("STOR big.bin", "big.bin"), ("STOR keep.bin", "keep.bin")] {
        let r = upload_until_refused(&mut c, line, 2 << 20);
        assert!(r.code == 452 || r.code == 552, "{line} on a full disk: {r}");
        wait_for("no temporary file left", TIMEOUT, || {
            let names = tree::names(srv.root());
            (!names.iter().any(|n| n.contains(".part-"))).then_some(())
        });
        if name == "keep.bin" {
            ftp_tests::assert_bytes(
                &fs::read(srv.path(name)).unwrap(),
                &old,
                "keep.bin after a failed replacement",
            );
        } else {
            assert!(!srv.path(name).exists(), "a truncated {name} was left");
        }
    }
    assert_eq!(tree::names(srv.root()), ["keep.bin"]);
    // The space is back, and the session is fine.
    c.stor("small.txt", b"fits");
    assert_eq!(fs::read(srv.path("small.txt")).unwrap(), b"fits");
    c.quit();
    drop(srv);
    drop(fs_guard);
}

// ---------------------------------------------------------------------
// Injection
// ---------------------------------------------------------------------

/// File names with CR, LF and other control characters (made by a local
/// user) cannot inject reply lines or listing lines; names a client sends
/// with control characters cannot break the transfer log's fields.
fn control_characters_in_names<R: Runtime>() {
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("xferlog");
    let evil = [
        "a\r\n226 Transfer complete.",
        "b\n213 End of status.",
        "c\r550 x",
    ];
    let mut builder = TestServer::builder().args(&["-w", "--xferlog", log.to_str().unwrap()]);
    for name in evil {
        builder = builder.file(name, "x");
    }
    let srv = builder.start::<R>();
    let mut c = srv.login();
    // The strict client fails on a CR inside a reply line and would stop
    // at an injected `213 ` line.
    let stat = c.expect("STAT /", 213);
    assert_eq!(stat.inner().len(), evil.len(), "{stat}");
    assert_eq!(stat.last_text(), "End of status.");
    c.check("NOOP", "200 NOOP ok.");
    for verb in ["LIST", "NLST", "MLSD"] {
        let bytes = c.download(verb).unwrap_or_else(|r| panic!("{verb}: {r}"));
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.split_terminator("\r\n").collect();
        assert_eq!(lines.len(), evil.len(), "{verb}: {text:?}");
        assert!(
            lines.iter().all(|l| !l.contains(['\r', '\n', '\0'])),
            "{verb}: {text:?}"
        );
    }
    // A quote in a created folder's name is doubled in the 257 reply.
    c.check("MKD say\"hi", "257 \"/say\"\"hi\" created");
    // Tabs and escapes in an uploaded name stay inside one xferlog field.
    c.expect("TYPE I", 200);
    c.stor("tab\there \x1b[2Jname.txt", b"abc");
    c.quit();
    let text = wait_for("the xferlog line", TIMEOUT, || {
        let text = fs::read_to_string(&log).unwrap_or_default();
        (!text.is_empty()).then_some(text)
    });
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text:?}");
    // Fields are split by runs of spaces: the date pads a one-digit day
    // (`Wed Dec  2`), as ctime does.
    let fields: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(fields.len(), 18, "{text:?}");
    assert_eq!(fields[8], "/tab_here__[2Jname.txt", "{text:?}");
}

/// The log (`-vv`, here to standard error) never shows a password, and
/// control characters from clients (in commands and user names) are
/// escaped, so a client cannot forge or hide log lines.
fn log_masks_passwords_and_escapes_control_characters<R: Runtime>() {
    let daemon = ChildDaemon::start_logging::<R>(&["-vv", "--login-fail-delay", "10"], 2);
    let mut c = Client::connect(daemon.addr);
    c.expect("USER anonymous", 331);
    c.check("PASS secret-anon-password", "230 Login successful.");
    c.check("REIN", "220 Service ready for new user.");
    c.expect("USER mal\x1b[1mlory\x07", 331);
    c.check("PASS wr0ng-guess", "530 Login incorrect.");
    c.expect("USER anonymous", 331);
    c.send_raw(b"PASS \xffnot-utf8-secret\r\n");
    assert_eq!(c.read_reply().code, 230);
    c.check("CWD evil\x1b[2J\x08name", "550 Failed to change directory.");
    c.quit();
    let log = daemon.stop();
    let text = String::from_utf8_lossy(&log);
    for secret in ["secret-anon-password", "wr0ng-guess", "not-utf8-secret"] {
        assert!(!text.contains(secret), "a password is in the log: {text}");
    }
    assert!(text.contains("PASS ****"), "{text}");
    assert!(
        !log.iter().any(|&b| b != b'\n' && b.is_ascii_control()),
        "raw control characters in the log: {text:?}"
    );
    assert!(text.contains("CWD evil\\x1b[2J\\x08name"), "{text}");
    assert!(text.contains("mal\\x1b[1mlory\\x07"), "{text}");
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        assert!(line.starts_with("ftpd["), "not a log record: {line:?}");
    }
}
