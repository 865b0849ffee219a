//! What operators watch: the `--metrics` endpoint (`/metrics`, `/healthz`,
//! `/readyz`) over real HTTP, next to real FTP sessions.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::http::get;
use ftp_tests::{TIMEOUT, TestServer, daemon_tests};

daemon_tests! {
    metrics_count_a_scripted_session,
    readyz_turns_unavailable_at_shutdown,
    bad_http_requests_are_cut_off,
    refusals_at_admission_are_counted,
    tls_handshakes_are_counted,
}

/// The value of the sample whose name and labels are `series`.
fn value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

fn metrics_server<R: Runtime>() -> TestServer {
    TestServer::builder()
        .args(&["-w", "--metrics", "127.0.0.1:0", "--login-fail-delay", "0"])
        .user("alice", "secret", None, true)
        .file("hello.txt", "hello\n")
        .start::<R>()
}

fn metrics_count_a_scripted_session<R: Runtime>() {
    let srv = metrics_server::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    let before = get(addr, "/metrics");
    assert_eq!(before.status, 200);
    assert_eq!(value(&before.body, "ftp_sessions_total"), 0.0);

    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    let list = c.download("LIST").expect("LIST");
    assert!(!list.is_empty());
    assert_eq!(c.retr("hello.txt"), b"hello\n");
    c.upload("STOR up.bin", &[7u8; 100]).expect("STOR");
    let missing = c.download("RETR missing.txt").expect_err("no such file");
    assert_eq!(missing.code, 550, "{missing}");
    let mut bad = srv.client();
    bad.send("USER alice");
    assert_eq!(bad.read_reply().code, 331);
    bad.send("PASS wrong");
    assert_eq!(bad.read_reply().code, 530);
    bad.send("USER bob");
    assert_eq!(bad.read_reply().code, 331);
    bad.send("PASS whatever");
    assert_eq!(bad.read_reply().code, 530);

    let m = get(addr, "/metrics");
    assert_eq!(m.status, 200);
    let text = &m.body;
    let v = |series: &str| value(text, series);
    assert_eq!(v("ftp_sessions_total"), 2.0);
    assert_eq!(v("ftp_sessions_active"), 2.0);
    assert_eq!(v("ftp_logins_total{result=\"ok\"}"), 1.0);
    assert_eq!(v("ftp_logins_total{result=\"bad_password\"}"), 1.0);
    assert_eq!(v("ftp_logins_total{result=\"unknown_user\"}"), 1.0);
    assert_eq!(v("ftp_logins_total{result=\"refused\"}"), 0.0);
    assert_eq!(v("ftp_commands_total{verb=\"USER\"}"), 3.0);
    assert_eq!(v("ftp_commands_total{verb=\"PASS\"}"), 3.0);
    assert_eq!(v("ftp_commands_total{verb=\"LIST\"}"), 1.0);
    assert_eq!(v("ftp_commands_total{verb=\"RETR\"}"), 2.0);
    assert_eq!(v("ftp_commands_total{verb=\"STOR\"}"), 1.0);
    assert_eq!(
        v("ftp_transfers_total{direction=\"download\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(
        v("ftp_transfers_total{direction=\"upload\",result=\"ok\"}"),
        1.0
    );
    assert_eq!(v("ftp_transfer_bytes_total{direction=\"download\"}"), 6.0);
    assert_eq!(v("ftp_transfer_bytes_total{direction=\"upload\"}"), 100.0);
    assert_eq!(v("ftp_transfer_duration_seconds_count"), 2.0);
    assert_eq!(v("ftp_storage_errors_total{kind=\"not_found\"}"), 1.0);
    // 530 twice and the 550.
    assert_eq!(v("ftp_replies_total{class=\"5xx\"}"), 3.0);
    assert!(v("ftp_process_resident_memory_bytes") > 0.0);
    assert!(v("ftp_process_open_fds") > 0.0);

    c.quit();
    bad.quit();
    let deadline = Instant::now() + TIMEOUT;
    while value(&get(addr, "/metrics").body, "ftp_sessions_active") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "sessions still counted as active"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(get(addr, "/nope").status, 404);
}

fn readyz_turns_unavailable_at_shutdown<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--metrics", "127.0.0.1:0", "--shutdown-grace=3"])
        .start::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    assert_eq!(get(addr, "/readyz").status, 200);
    // A session keeps the shutdown's grace period running.
    let _busy = srv.login();
    srv.begin_shutdown();
    let r = get(addr, "/readyz");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("shutting down"), "{}", r.body);
    assert_eq!(get(addr, "/healthz").status, 200);
}

fn bad_http_requests_are_cut_off<R: Runtime>() {
    let srv = metrics_server::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    // Silent connections hold every slot of the endpoint...
    let silent: Vec<TcpStream> = (0..ftp_host::http::MAX_CONNECTIONS)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...one more is closed without an answer, and FTP is not affected.
    let mut extra = TcpStream::connect(addr).expect("connect");
    extra.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut buf = Vec::new();
    let _ = extra.read_to_end(&mut buf);
    assert!(buf.is_empty(), "answered beyond the limit");
    let mut c = srv.client();
    c.login("alice", "secret");
    c.check("NOOP", "200 NOOP ok.");
    // The silent ones are cut off after the request timeout.
    let began = Instant::now();
    for mut s in silent {
        s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty());
    }
    assert!(began.elapsed() < ftp_host::http::REQUEST_TIMEOUT + Duration::from_secs(2));
    // An oversized head is refused.
    let mut big = TcpStream::connect(addr).expect("connect");
    big.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut head = b"GET /metrics HTTP/1.1\r\n".to_vec();
    head.extend(std::iter::repeat_n(b'x', ftp_host::http::MAX_REQUEST + 10));
    let _ = big.write_all(&head);
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    // The endpoint serves again.
    assert_eq!(get(addr, "/healthz").status, 200);
    c.check("NOOP", "200 NOOP ok.");
}

fn refusals_at_admission_are_counted<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--metrics", "127.0.0.1:0", "--max-per-ip", "1"])
        .start::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    let _first = srv.login();
    let mut second = srv.raw_connect();
    let mut reply = String::new();
    let _ = second.read_to_string(&mut reply);
    assert!(reply.starts_with("421"), "{reply:?}");
    let text = get(addr, "/metrics").body;
    assert_eq!(
        value(
            &text,
            "ftp_connections_refused_total{reason=\"per_address_cap\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "ftp_connections_refused_total{reason=\"global_cap\"}"
        ),
        0.0
    );
    assert_eq!(value(&text, "ftp_sessions_total"), 1.0);
}

fn tls_handshakes_are_counted<R: Runtime>() {
    let certs = ftp_tests::certs::Certs::new();
    let mut args = certs.args();
    args.extend(["--metrics".into(), "127.0.0.1:0".into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = TestServer::builder().args(&args).start::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    // One handshake that completes.
    let mut c = srv.client();
    c.expect("AUTH TLS", 234);
    let mut conn = certs.client();
    let mut sock = c.socket().try_clone().expect("clone");
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).expect("handshake");
    }
    // One that fails: garbage instead of a ClientHello.
    let mut bad = srv.client();
    bad.expect("AUTH TLS", 234);
    bad.send_raw(b"this is not TLS\r\n");
    let mut rest = Vec::new();
    let _ = bad.socket().read_to_end(&mut rest);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = get(addr, "/metrics").body;
        let ok = value(&text, "ftp_tls_handshakes_total{result=\"ok\"}");
        let failed = value(&text, "ftp_tls_handshakes_total{result=\"failed\"}");
        if (ok, failed) == (1.0, 1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "ok {ok}, failed {failed}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
