//! Sessions and safety: users file, connection limits, data connections
//! from the wrong host, symlinks out of the root, inetd mode, interrupted
//! uploads and shutdown.

use std::fs;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::client::{connect_from, reset};
use ftp_tests::data::pattern;
use ftp_tests::{Client, DataMode, TIMEOUT, TestServer, daemon_tests, tree, wait_for};

daemon_tests! {
    users_file_login,
    users_file_home_is_the_root,
    users_file_refuses_anonymous_unless_a,
    max_clients_limit,
    max_per_ip_limit,
    passive_connection_from_wrong_source,
    symlinks_out_of_the_root,
    serve_one_inetd,
    interrupted_upload_keeps_previous_version,
    upload_aborted_when_control_connection_closes,
    shutdown_ends_idle_sessions,
    shutdown_lets_a_running_transfer_finish,
    shutdown_aborts_a_stalled_upload_with_replies,
    half_close_answers_every_command,
    half_close_during_a_download_lets_it_finish,
    serves_the_folder_the_arguments_name,
}

fn users_file_login<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "300"])
        .user("alice", "s3cret pass", None, true)
        .user("bob", "hunter2", None, false)
        .file("pub/readme.txt", "hello\n")
        .start::<R>();
    let mut c = srv.client();
    c.check("USER alice", "331 Please specify the password.");
    c.check("PASS s3cret pass", "230 Login successful.");
    let stat = c.expect("STAT", 211);
    assert!(
        stat.inner().iter().any(|l| l == " Logged in as alice"),
        "{stat}"
    );
    c.expect("TYPE I", 200);
    c.stor("pub/alice.txt", b"from alice");
    assert_eq!(fs::read(srv.path("pub/alice.txt")).unwrap(), b"from alice");
    c.check("MKD made-by-alice", "257 \"/made-by-alice\" created");
    c.quit();

    // bob may read but not write.
    let mut c = srv.client();
    c.login("bob", "hunter2");
    assert_eq!(c.retr("pub/alice.txt"), b"from alice");
    c.check("MKD x", "550 Permission denied.");
    c.check("DELE pub/alice.txt", "550 Permission denied.");
    assert!(srv.path("pub/alice.txt").exists() && !srv.path("x").exists());
    c.quit();

    // A wrong password is answered after the delay; an unknown name too.
    for (user, pass) in [
        ("alice", "wrong"),
        ("mallory", "whatever"),
        ("alice", "S3cret pass"),
    ] {
        let mut c = srv.client();
        c.expect(&format!("USER {user}"), 331);
        let start = Instant::now();
        c.check(&format!("PASS {pass}"), "530 Login incorrect.");
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(250),
            "{user}: 530 after only {waited:?}"
        );
        c.check("PWD", "530 Please login with USER and PASS.");
        // The session may try again.
        c.login("alice", "s3cret pass");
        c.check("PWD", "257 \"/\" is the current directory");
    }
}

fn users_file_home_is_the_root<R: Runtime>() {
    let srv = TestServer::builder()
        .user("carol", "pw", Some("sub"), true)
        .file("sub/inside.txt", "inside")
        .file("top-secret.txt", "outside the home")
        .start::<R>();
    let mut c = srv.client();
    c.login("carol", "pw");
    c.check("PWD", "257 \"/\" is the current directory");
    let names = c.nlst("");
    assert_eq!(names, "inside.txt\r\n", "only the home is visible");
    assert_eq!(c.retr("inside.txt"), b"inside");
    assert_eq!(c.retr("/inside.txt"), b"inside");
    let data = c.data();
    let r = c.start("RETR ../top-secret.txt", data).expect_err("escape");
    assert_eq!(r.code, 550, "{r}");
    c.check("CWD ..", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CWD /sub", "550 Failed to change directory.");
    c.check("SIZE top-secret.txt", "550 Could not get file size.");
    c.expect("TYPE I", 200);
    c.stor("new.txt", b"carol's");
    assert_eq!(fs::read(srv.path("sub/new.txt")).unwrap(), b"carol's");
    assert!(!srv.path("new.txt").exists());
    c.check("MKD d", "257 \"/d\" created");
    assert!(srv.path("sub/d").is_dir());
    c.quit();
}

fn users_file_refuses_anonymous_unless_a<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "100"])
        .user("alice", "pw", None, true)
        .file("f.txt", "x")
        .start::<R>();
    for name in ["anonymous", "ftp"] {
        let mut c = srv.client();
        c.expect(&format!("USER {name}"), 331);
        c.check("PASS guest@", "530 Login incorrect.");
        c.check("SIZE f.txt", "530 Please login with USER and PASS.");
    }
    let srv = TestServer::builder()
        .args(&["-a", "ftp"])
        .user("alice", "pw", None, true)
        .file("f.txt", "x")
        .start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    c.check("SIZE f.txt", "213 1");
    c.check("MKD d", "550 Permission denied.");
    c.quit();
    let mut c = srv.client();
    c.login("alice", "pw");
    c.check("MKD d", "257 \"/d\" created");
}

fn max_clients_limit<R: Runtime>() {
    let srv = TestServer::start::<R>(&["--max-clients", "2"]);
    let mut a = srv.client();
    let b = srv.client();
    let mut c = Client::try_connect(srv.addr()).expect("connect");
    assert_eq!(c.greeting.lines, ["421 Too many users, try again later."]);
    c.expect_closed();
    // The admitted sessions work.
    a.login_anonymous();
    a.check("NOOP", "200 NOOP ok.");
    // A place frees up when a session ends.
    b.quit();
    let mut d = wait_for("a free place after QUIT", TIMEOUT, || {
        let c = Client::try_connect(srv.addr()).expect("connect");
        (c.greeting.code == 220).then_some(c)
    });
    d.login_anonymous();
    let mut e = Client::try_connect(srv.addr()).expect("connect");
    assert_eq!(e.greeting.code, 421, "{}", e.greeting);
    e.expect_closed();
    a.quit();
    d.quit();
}

fn max_per_ip_limit<R: Runtime>() {
    let srv = TestServer::start::<R>(&["--max-per-ip", "1:busy"]);
    let a = srv.client();
    let mut b = Client::try_connect(srv.addr()).expect("connect");
    assert_eq!(b.greeting.lines, ["421 busy"]);
    b.expect_closed();
    // Another source address is another count.
    let s = connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)), srv.addr()).expect("connect");
    let mut other = Client::from_stream(s).expect("greeting");
    assert_eq!(other.greeting.code, 220, "{}", other.greeting);
    other.login_anonymous();
    other.quit();
    a.quit();
    let mut again = wait_for("a free place after QUIT", TIMEOUT, || {
        let c = Client::try_connect(srv.addr()).expect("connect");
        (c.greeting.code == 220).then_some(c)
    });
    again.login_anonymous();
}

/// A connection to the passive port from another address than the
/// client's is refused; the client still gets its data.
fn passive_connection_from_wrong_source<R: Runtime>() {
    let content = pattern(20, 200_000);
    let srv = TestServer::builder().file("f.bin", &content).start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for epsv in [false, true] {
        let addr = if epsv { c.epsv() } else { c.pasv() };
        let mut thief =
            connect_from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), addr).expect("connect");
        c.send("RETR f.bin");
        let mut data = std::net::TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
        data.set_read_timeout(Some(TIMEOUT)).unwrap();
        let r = c.read_reply();
        assert_eq!(r.code, 150, "{r}");
        let mut got = Vec::new();
        data.read_to_end(&mut got).expect("data");
        assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
        ftp_tests::assert_bytes(
            &got,
            &content,
            &format!("the right client got {} bytes", got.len()),
        );
        let mut stolen = Vec::new();
        match thief.read_to_end(&mut stolen) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the foreign data connection was left open: {e}"),
        }
        assert!(
            stolen.is_empty(),
            "a foreign host got {} bytes",
            stolen.len()
        );
    }
    c.quit();
}

fn symlinks_out_of_the_root<R: Runtime>() {
    let elsewhere = tempfile::tempdir().unwrap();
    fs::write(elsewhere.path().join("private.txt"), "private").unwrap();
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("sub/inner.txt", "inner")
        .start::<R>();
    std::os::unix::fs::symlink("/etc", srv.path("outside")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), srv.path("elsewhere")).unwrap();
    std::os::unix::fs::symlink(
        elsewhere.path().join("private.txt"),
        srv.path("private.txt"),
    )
    .unwrap();
    std::os::unix::fs::symlink("sub", srv.path("inside")).unwrap();
    std::os::unix::fs::symlink("../sub/inner.txt", srv.path("sub/link.txt")).unwrap();
    let before_elsewhere = tree::snapshot(elsewhere.path());

    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.check("CWD outside", "550 Failed to change directory.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CWD elsewhere", "550 Failed to change directory.");
    for line in [
        "RETR outside/passwd",
        "RETR elsewhere/private.txt",
        "RETR private.txt",
    ] {
        let data = c.data();
        let r = c.start(line, data).expect_err(line);
        assert_eq!(r.code, 550, "{line}: {r}");
    }
    for line in ["LIST outside", "NLST outside/", "MLSD elsewhere"] {
        let data = c.data();
        match c.start(line, data) {
            Err(r) => assert!(r.code == 550 || r.code == 450, "{line}: {r}"),
            Ok(mut t) => {
                let mut leaked = String::new();
                let _ = t.stream.read_to_string(&mut leaked);
                panic!("{line}: listed outside the root: {leaked:?}");
            }
        }
    }
    c.check("SIZE outside/passwd", "550 Could not get file size.");
    c.check(
        "MDTM private.txt",
        "550 Could not get file modification time.",
    );
    let r = c.expect("STAT outside", 550);
    assert!(!r.text().contains("passwd"), "{r}");
    // Writing through an escaping link is refused and changes nothing there.
    for line in [
        "STOR elsewhere/new.txt",
        "APPE elsewhere/private.txt",
        "APPE private.txt",
    ] {
        let data = c.data();
        match c.start(line, data) {
            Err(r) => assert!(r.code == 553 || r.code == 550, "{line}: {r}"),
            Ok(mut t) => {
                let _ = t.stream.write_all(b"escaped");
                drop(t);
                let end = c.read_reply();
                panic!("{line}: accepted an upload outside the root ({end})");
            }
        }
    }
    c.check(
        "MKD elsewhere/newdir",
        "550 Create directory operation failed.",
    );
    c.check("DELE elsewhere/private.txt", "550 Delete operation failed.");
    c.expect("RNFR sub/inner.txt", 350);
    c.check("RNTO elsewhere/moved.txt", "550 Rename failed.");
    assert_eq!(tree::snapshot(elsewhere.path()), before_elsewhere);
    assert!(srv.path("sub/inner.txt").is_file());

    // Links that stay inside work.
    c.check("CWD inside", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/inside\" is the current directory");
    assert_eq!(c.retr("inner.txt"), b"inner");
    assert_eq!(c.retr("link.txt"), b"inner");
    c.check("CWD ../../..", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    assert_eq!(c.retr("inside/inner.txt"), b"inner");
    let names = c.nlst("inside");
    assert!(names.contains("inner.txt\r\n"), "{names:?}");
    c.quit();
}

/// `serve_one`, as inetd runs it: one session on an accepted socket.
fn serve_one_inetd<R: Runtime>() {
    let content = pattern(21, 70_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("f.bin", &content)
        .start::<R>();
    let server = srv.server();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let acceptor = std::thread::spawn(move || {
        let (stream, _) = listener.accept().expect("accept");
        let _ = tx.send(R::serve_one(server, stream).map_err(|e| e.to_string()));
    });
    let mut c = Client::connect(addr);
    assert_eq!(c.greeting.lines, ["220 Service ready."]);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    c.mode = DataMode::Epsv;
    ftp_tests::assert_bytes(&c.retr("f.bin"), &content, "RETR f.bin");
    c.mode = DataMode::Port;
    c.stor("up.bin", b"via inetd");
    assert_eq!(fs::read(srv.path("up.bin")).unwrap(), b"via inetd");
    c.quit();
    match rx.recv_timeout(TIMEOUT) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("serve_one returned an error: {e}"),
        Err(_) => panic!("serve_one did not return within {TIMEOUT:?} of QUIT"),
    }
    acceptor.join().unwrap();
}

/// An upload that breaks off (data connection reset, control closed)
/// leaves the previous version whole, and no temporary file behind.
fn interrupted_upload_keeps_previous_version<R: Runtime>() {
    let v1 = pattern(30, 1 << 20);
    let srv = TestServer::start::<R>(&["-w"]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.stor("doc.bin", &v1);
    c.quit();

    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("STOR doc.bin", data).expect("STOR");
    let v2 = pattern(31, 8 << 20);
    t.stream.write_all(&v2[..2 << 20]).expect("first part");
    // Meanwhile, others still see the first version.
    let mut reader = srv.login();
    reader.expect("TYPE I", 200);
    ftp_tests::assert_bytes(
        &reader.retr("doc.bin"),
        &v1,
        "the old version while uploading",
    );
    reset(t.stream);
    drop(c);
    wait_for_no_part_files(&srv);
    let now = fs::read(srv.path("doc.bin")).unwrap();
    assert!(
        now == v1 || now == v2,
        "after an interrupted upload the file has {} bytes, neither version",
        now.len()
    );
    ftp_tests::assert_bytes(&now, &v1, "a broken upload replaced the file");
    let list = reader.list("-a");
    assert!(!list.contains(".part"), "{list:?}");
    ftp_tests::assert_bytes(&reader.retr("doc.bin"), &v1, "RETR doc.bin");
    reader.quit();
}

/// Closing the control connection during an upload ends the session and
/// its transfer: the partial upload is discarded, and not committed when
/// the data connection is closed afterwards (with an orderly end of
/// stream, which on its own would mean "end of file").
fn upload_aborted_when_control_connection_closes<R: Runtime>() {
    let v1 = pattern(32, 300_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("doc.bin", &v1)
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("STOR doc.bin", data).expect("STOR");
    t.stream.write_all(&pattern(33, 100_000)).expect("data");
    drop(c);
    // Give the daemon time to see the control connection close (it is
    // expected to remove the temporary file then).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut aborted = false;
    while Instant::now() < deadline {
        if part_files(&srv).is_empty() {
            aborted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(t);
    wait_for_no_part_files(&srv);
    let now = fs::read(srv.path("doc.bin")).unwrap();
    assert!(
        now == v1,
        "the control connection closed mid-upload, then the data connection closed: \
         the file now has {} bytes instead of the previous {} (upload aborted on control \
         close: {aborted})",
        now.len(),
        v1.len()
    );
}

/// Shutdown with sessions still open: `serve` returns within the grace
/// period and the sessions are closed.
fn shutdown_ends_idle_sessions<R: Runtime>() {
    let srv = TestServer::start::<R>(&["--shutdown-grace", "1"]);
    let mut c = srv.login();
    c.check("NOOP", "200 NOOP ok.");
    let start = Instant::now();
    srv.stop().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    // The session is told (421) or simply closed.
    match c.try_read_reply() {
        Ok(r) => {
            assert_eq!(r.code, 421, "{r}");
            c.expect_closed();
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
}

fn part_files(srv: &TestServer) -> Vec<String> {
    tree::names(srv.root())
        .into_iter()
        .filter(|n| n.contains(".part-"))
        .collect()
}

fn wait_for_no_part_files(srv: &TestServer) {
    wait_for("the upload's temporary file to be removed", TIMEOUT, || {
        part_files(srv).is_empty().then_some(())
    });
}

/// Shutdown during a download: no new sessions, but the running transfer
/// completes within the grace period, then the session is closed and
/// `serve` returns without waiting out the whole grace period.
fn shutdown_lets_a_running_transfer_finish<R: Runtime>() {
    let size = 16 << 20;
    let srv = TestServer::builder()
        .args(&["--shutdown-grace", "20"])
        .file("big.bin", pattern(34, size))
        .start::<R>();
    let addr = srv.addr();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut got = vec![0u8; 64 * 1024];
    t.stream.read_exact(&mut got).expect("first bytes");
    let start = Instant::now();
    let stopper = std::thread::spawn(move || srv.stop());
    wait_for("new connections to be turned away", TIMEOUT, || {
        match std::net::TcpStream::connect_timeout(&addr, TIMEOUT) {
            Err(_) => Some(()),
            Ok(s) => match Client::from_stream(s) {
                Ok(c) if c.greeting.code == 220 => None,
                _ => Some(()),
            },
        }
    });
    t.stream.read_to_end(&mut got).expect("rest of the data");
    drop(t);
    ftp_tests::assert_bytes(&got, &pattern(34, size), "RETR during shutdown");
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    match c.try_read_reply() {
        Ok(r) => {
            assert_eq!(r.code, 421, "{r}");
            c.expect_closed();
        }
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ),
            "{e}"
        ),
    }
    let result = stopper.join().expect("stop");
    result.unwrap_or_else(|e| panic!("{e}"));
    assert!(
        start.elapsed() < Duration::from_secs(15),
        "serve waited {:?} although no session was left",
        start.elapsed()
    );
}

/// Shutdown while an upload is stalled: when the grace period ends the
/// client is told (`426` for the transfer, `421` for the session) before
/// the connection closes, and the upload leaves nothing behind.
fn shutdown_aborts_a_stalled_upload_with_replies<R: Runtime>() {
    let dir = tempfile::tempdir().expect("folder");
    let srv = TestServer::builder()
        .args(&["-w", "--shutdown-grace", "1"])
        .root(dir.path())
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("STOR stalled.bin", data).expect("STOR");
    t.stream.write_all(&pattern(35, 100_000)).expect("data");
    // The client now sends nothing more and keeps the data connection.
    let stopper = std::thread::spawn(move || srv.stop());
    assert_eq!(
        c.read_reply().lines,
        ["426 Server shutting down; transfer aborted."]
    );
    assert_eq!(
        c.read_reply().lines,
        ["421 Server shutting down, closing control connection."]
    );
    c.expect_closed();
    stopper
        .join()
        .expect("stop")
        .unwrap_or_else(|e| panic!("{e}"));
    drop(t);
    assert_eq!(tree::names(dir.path()), Vec::<String>::new(), "left behind");
}

/// A script that sends every command and then half-closes (as `printf ...
/// | nc host 21` does) gets every reply, in order, before the server
/// closes; with no QUIT the server closes after the last reply.
fn half_close_answers_every_command<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "200"])
        .user("alice", "secret", None, false)
        .file("a.txt", "hello\n")
        .start::<R>();
    for quit in [true, false] {
        let mut s = srv.raw_connect();
        // A failed login (answered after a delay) and a password check on
        // the worker pool: the half-close arrives while replies are owed.
        let mut script = String::from(
            "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\n\
             SYST\r\nSIZE a.txt\r\nPWD\r\nNOOP\r\n",
        );
        if quit {
            script.push_str("QUIT\r\n");
        }
        s.write_all(script.as_bytes()).expect("script");
        s.shutdown(std::net::Shutdown::Write).expect("half-close");
        let mut text = String::new();
        s.read_to_string(&mut text)
            .expect("replies until the server closes");
        let codes: Vec<&str> = text.lines().map(|l| &l[..l.len().min(4)]).collect();
        let mut want = vec![
            "220 ", "331 ", "530 ", "331 ", "230 ", "215 ", "213 ", "257 ", "200 ",
        ];
        if quit {
            want.push("221 ");
        }
        assert_eq!(codes, want, "quit={quit}: {text:?}");
        assert!(text.contains("213 6\r\n"), "{text:?}");
    }
}

/// Half-closing the control connection during a download lets the
/// download finish; the command sent behind it is still answered.
fn half_close_during_a_download_lets_it_finish<R: Runtime>() {
    let size = 8 << 20;
    let srv = TestServer::builder()
        .file("big.bin", pattern(36, size))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut got = vec![0u8; 64 * 1024];
    t.stream.read_exact(&mut got).expect("first bytes");
    c.send("NOOP");
    c.socket()
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    t.stream.read_to_end(&mut got).expect("rest of the data");
    drop(t);
    ftp_tests::assert_bytes(&got, &pattern(36, size), "RETR after the half-close");
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    c.expect_closed();
}

/// `TestServer::start(&[.., DIR])` serves DIR itself, as the daemons do.
fn serves_the_folder_the_arguments_name<R: Runtime>() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("mine.txt"), "mine").unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let srv = TestServer::start::<R>(&["-w", root.to_str().unwrap()]);
    assert_eq!(srv.root(), root);
    let mut c = srv.login();
    assert_eq!(c.retr("mine.txt"), b"mine");
    c.check("MKD made", "257 \"/made\" created");
    assert!(root.join("made").is_dir());
    c.quit();
}
