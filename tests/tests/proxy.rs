//! The PROXY protocol on both daemons over real sockets, with headers made
//! by hand (the test plays the balancer; `tests/balancer.rs` runs the real
//! haproxy): with `--proxy-from 127.0.0.1`, a connection from 127.0.0.1
//! must begin with a header, whose address is then the client's for the
//! connection limits, the PORT/EPRT check and the passive data connection
//! check; a `LOCAL` header, a missing, malformed or late one closes the
//! connection without a reply; other sources are served directly.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_host::proxy::HEADER_TIMEOUT;
use ftp_tests::client::connect_from;
use ftp_tests::proxy_header::{v1, v2, v2_local};
use ftp_tests::{Client, TIMEOUT, TestServer, daemon_tests};

daemon_tests! {
    the_header_names_the_client_for_the_limits,
    the_header_names_the_client_for_port_and_eprt,
    passive_data_connections_carry_the_clients_header,
    local_missing_and_malformed_headers_close_without_a_reply,
    a_late_header_closes_the_connection,
    other_sources_are_served_directly,
}

/// A client address as a header carries it.
fn client(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

fn proxied_server<R: Runtime>(extra: &[&str]) -> TestServer {
    let mut args = vec!["--proxy-from", "127.0.0.1", "-w"];
    args.extend_from_slice(extra);
    TestServer::start::<R>(&args)
}

/// Reads until the server closes; returns what came (nothing, or an error
/// for a reset, is what a closing without a reply looks like).
fn rest_of(mut s: TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    got
}

fn the_header_names_the_client_for_the_limits<R: Runtime>() {
    let srv = proxied_server::<R>(&["--max-per-ip", "1"]);
    let to = srv.addr();
    let first = Client::try_connect_with(to, &v1(client("192.0.2.7"), to)).unwrap();
    assert_eq!(first.greeting.code, 220, "{}", first.greeting);
    // The same client again, through the same proxy: over its limit.
    let second = Client::try_connect_with(to, &v2(client("192.0.2.7"), to)).unwrap();
    assert_eq!(second.greeting.code, 421, "{}", second.greeting);
    // Another client through the same proxy: served (the proxy's own
    // address is not what is counted).
    let third = Client::try_connect_with(to, &v2(client("192.0.2.8"), to)).unwrap();
    assert_eq!(third.greeting.code, 220, "{}", third.greeting);
    first.quit();
    third.quit();
}

fn the_header_names_the_client_for_port_and_eprt<R: Runtime>() {
    let srv = proxied_server::<R>(&[]);
    let to = srv.addr();
    let mut c = Client::try_connect_with(to, &v2(client("192.0.2.7"), to)).unwrap();
    c.login_anonymous();
    // The connection's real source, 127.0.0.1, is not the client.
    let r = c.cmd("EPRT |1|127.0.0.1|40001|");
    assert_eq!(r.code / 100, 5, "EPRT to the proxy's address: {r}");
    let r = c.cmd("PORT 127,0,0,1,156,65");
    assert_eq!(r.code / 100, 5, "PORT to the proxy's address: {r}");
    c.expect("EPRT |1|192.0.2.7|40001|", 200);
    c.quit();
}

fn passive_data_connections_carry_the_clients_header<R: Runtime>() {
    let logs = tempfile::tempdir().unwrap();
    let xferlog = logs.path().join("xferlog");
    let srv = proxied_server::<R>(&["--xferlog", xferlog.to_str().unwrap()]);
    let to = srv.addr();
    let me = client("192.0.2.7");
    let mut c = Client::try_connect_with(to, &v1(me, to)).unwrap();
    c.login_anonymous();
    c.expect("TYPE I", 200);
    let body = b"through the balancer\n".repeat(1000);
    // Upload: the data connection's header comes with the data.
    let data = c.epsv();
    let mut s = TcpStream::connect(data).unwrap();
    s.write_all(&v2(me, data)).unwrap();
    c.expect("STOR f.bin", 150);
    s.write_all(&body).unwrap();
    drop(s);
    c.expect_reply(226);
    // Download: a data connection through the proxy for another client, one
    // without a header and one straight from an address that is not the
    // client's come first; only the client's is used.
    let data = c.epsv();
    let mut other = TcpStream::connect(data).unwrap();
    other.write_all(&v2(client("192.0.2.9"), data)).unwrap();
    let bare = TcpStream::connect(data).unwrap();
    let stranger = connect_from("127.0.0.2".parse().unwrap(), data).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let mut mine = TcpStream::connect(data).unwrap();
    // In two pieces: the rest comes after the server has seen the start.
    let header = v1(me, data);
    mine.write_all(&header[..9]).unwrap();
    c.send("RETR f.bin");
    let opening = c.read_reply();
    assert_eq!(opening.code, 150, "{opening}");
    std::thread::sleep(Duration::from_millis(100));
    mine.write_all(&header[9..]).unwrap();
    let got = rest_of(mine);
    c.expect_reply(226);
    ftp_tests::assert_bytes(&got, &body, "RETR through the proxy");
    assert!(rest_of(other).is_empty(), "another client's connection");
    assert!(rest_of(stranger).is_empty(), "a stranger's connection");
    drop(bare);
    c.quit();
    // The transfer log names the client, not the proxy.
    let log = ftp_tests::wait_for("two xferlog lines", TIMEOUT, || {
        let text = std::fs::read_to_string(&xferlog).unwrap_or_default();
        (text.lines().count() >= 2).then_some(text)
    });
    for line in log.lines() {
        assert!(line.contains(" 192.0.2.7 "), "{line}");
        assert!(!line.contains("127.0.0.1"), "{line}");
    }
}

fn local_missing_and_malformed_headers_close_without_a_reply<R: Runtime>() {
    let srv = proxied_server::<R>(&[]);
    let to = srv.addr();
    for (what, bytes) in [
        ("LOCAL", v2_local()),
        ("no header", b"USER anonymous\r\n".to_vec()),
        (
            "malformed v1",
            b"PROXY TCP4 999.0.0.1 127.0.0.1 1 2\r\n".to_vec(),
        ),
        (
            "malformed v2",
            [&v2(client("192.0.2.7"), to)[..13], &[0x7f, 0, 0]].concat(),
        ),
    ] {
        let mut s = TcpStream::connect(to).unwrap();
        s.write_all(&bytes).unwrap();
        assert_eq!(rest_of(s), b"", "{what}: closed without a reply");
    }
    // The server is fine afterwards.
    let c = Client::try_connect_with(to, &v2(client("192.0.2.7"), to)).unwrap();
    assert_eq!(c.greeting.code, 220);
    c.quit();
}

fn a_late_header_closes_the_connection<R: Runtime>() {
    let srv = proxied_server::<R>(&[]);
    let to = srv.addr();
    let start = Instant::now();
    let silent = TcpStream::connect(to).unwrap();
    let mut partial = TcpStream::connect(to).unwrap();
    partial.write_all(b"PROXY TCP4 192.0.2.7").unwrap();
    assert_eq!(rest_of(silent), b"", "closed without a reply");
    assert_eq!(rest_of(partial), b"", "closed without a reply");
    let took = start.elapsed();
    assert!(
        took >= HEADER_TIMEOUT - Duration::from_millis(100) && took < HEADER_TIMEOUT + TIMEOUT,
        "closed after {took:?}"
    );
}

fn other_sources_are_served_directly<R: Runtime>() {
    let srv = proxied_server::<R>(&[]);
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    let mut c = Client::try_connect_from(other, srv.addr()).unwrap();
    assert_eq!(c.greeting.code, 220, "{}", c.greeting);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    c.stor("direct.txt", b"no balancer\n");
    assert_eq!(c.retr("direct.txt"), b"no balancer\n");
    // A PROXY header from a source that is not a proxy is not trusted:
    // it is an unknown command.
    let mut c = Client::try_connect_from(other, srv.addr()).unwrap();
    let r = c.cmd("PROXY TCP4 192.0.2.7 127.0.0.1 1 2");
    assert_eq!(r.code / 100, 5, "{r}");
    c.quit();
}
