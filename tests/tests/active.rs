//! Active mode (`PORT`, `EPRT`): where the server's data connections come
//! from. By default from the control connection's local address (a
//! multi-homed host answers from the address the client talked to); with
//! `--active-port-20` from port 20 of it, as root (the test process's
//! privilege: the servers run in it). `--run-as` keeping the right to bind
//! port 20 is a test of the built binaries (`ftp_tests::binary`).

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use ftp_host::daemon::Runtime;
use ftp_tests::{DataMode, TestServer, daemon_tests, skip};

daemon_tests! {
    active_from_the_control_connections_address,
    active_from_port_20_as_root,
}

const CONTENTS: &[u8] = b"active mode\r\n";

/// Downloads `f.txt` in `mode` over a control connection to `addr`:
/// returns where the data connection came from (after checking the bytes
/// and the 226).
fn download_from(srv: &TestServer, addr: SocketAddr, mode: DataMode) -> SocketAddr {
    let mut c = srv.client_at(addr);
    c.login_anonymous();
    c.mode = mode;
    let data = c.data();
    let mut t = c
        .start("RETR f.txt", data)
        .unwrap_or_else(|r| panic!("RETR in {mode:?}: {r}"));
    let from = t.stream.peer_addr().expect("data connection's peer");
    let mut bytes = Vec::new();
    t.stream.read_to_end(&mut bytes).expect("read the file");
    drop(t.stream);
    c.expect_reply(226);
    assert_eq!(bytes, CONTENTS, "{mode:?}");
    c.quit();
    from
}

/// The daemon listens on 127.0.0.5, which the client reaches from
/// 127.0.0.1 (the loopback route's source address): its listener for
/// `PORT`/`EPRT` is on 127.0.0.1, and the data connection must come from
/// 127.0.0.5 (not from 127.0.0.1, the routing table's choice for that
/// destination), from a port that is not 20.
fn active_from_the_control_connections_address<R: Runtime>() {
    let listen = Ipv4Addr::new(127, 0, 0, 5);
    let srv = TestServer::builder()
        .listen(&format!("{listen}:0"))
        .file("f.txt", CONTENTS)
        .start::<R>();
    let addr = srv.extra_addr(0).expect("the 127.0.0.5 listener");
    assert_eq!(addr.ip(), IpAddr::V4(listen));
    let probe = srv.client_at(addr);
    assert_eq!(
        probe.local_addr().ip(),
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        "the test needs a client address other than the server's"
    );
    probe.quit();
    for mode in [DataMode::Port, DataMode::Eprt] {
        let from = download_from(&srv, addr, mode);
        assert_eq!(from.ip(), IpAddr::V4(listen), "{mode:?} from {from}");
        assert_ne!(from.port(), 20, "{mode:?}: port 20 is not the default");
    }
}

/// `--active-port-20` as root: both commands' data connections come from
/// port 20 of the address the client connected to; SKIP without root.
fn active_from_port_20_as_root<R: Runtime>() {
    if !ftp_host::identity::is_root() {
        return skip("active_from_port_20_as_root", "needs root");
    }
    let listen = Ipv4Addr::new(127, 0, 0, 7);
    let srv = TestServer::builder()
        .args(&["--active-port-20"])
        .listen(&format!("{listen}:0"))
        .file("f.txt", CONTENTS)
        .start::<R>();
    let addr = srv.extra_addr(0).expect("the 127.0.0.7 listener");
    for mode in [DataMode::Port, DataMode::Eprt, DataMode::Port] {
        let from = download_from(&srv, addr, mode);
        assert_eq!(from, SocketAddr::new(IpAddr::V4(listen), 20), "{mode:?}");
    }
    // The default listener on 127.0.0.1: port 20 of that address.
    let from = download_from(&srv, srv.addr(), DataMode::Eprt);
    assert_eq!(from, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20));
}
