//! Three nodes (two ftp-mio, one ftp-smol, real processes) serving one
//! SeaweedFS bucket behind the real haproxy, with the README's
//! configuration ([`ftp_tests::balancer`]): the PROXY protocol gives each
//! node the client's address, passive ranges reach the node that opened
//! them, and a killed node loses nothing. Without haproxy, weed or the
//! built daemons the tests print `SKIP:` and pass, unless
//! `FTP_TEST_REQUIRE_CLIENTS=1`.

use std::io::{Read, Write};
use std::net::{IpAddr, TcpStream};
use std::time::Duration;

use ftp_tests::balancer::{Balancer, config_for, readme_config};
use ftp_tests::client::{Data, connect_from};
use ftp_tests::data::pattern;
use ftp_tests::seaweed::SeaweedFs;
use ftp_tests::{Client, TIMEOUT, assert_bytes};

/// A loopback client address.
fn ip(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

/// A session through the balancer from `from`, logged in anonymously.
fn session(lb: &Balancer, from: IpAddr) -> Client {
    let mut c = Client::try_connect_from(from, lb.addr()).expect("connect to the balancer");
    assert_eq!(c.greeting.code, 220, "from {from}: {}", c.greeting);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    c
}

/// `PASV` (whose address is the balancer's, from `--pasv-address
/// localhost`): the data channel and the node that opened it.
fn pasv(lb: &Balancer, c: &mut Client) -> (Data, usize) {
    let addr = c.pasv();
    assert_eq!(addr.ip(), ip(1), "227 announces the balancer");
    (Data::Passive(addr), lb.node_of_port(addr.port()))
}

/// Downloads `path` on `data`.
fn retr_on(c: &mut Client, data: Data, path: &str) -> Vec<u8> {
    let mut t = c
        .start(&format!("RETR {path}"), data)
        .unwrap_or_else(|r| panic!("RETR {path}: {r}"));
    let mut got = Vec::new();
    t.stream.read_to_end(&mut got).expect("read the data");
    c.expect_reply(226);
    got
}

/// A cluster, or `None` (skipped) without weed, haproxy or the binaries.
fn cluster(test: &str, bucket: &str) -> Option<(SeaweedFs, Balancer)> {
    let store = SeaweedFs::start(test)?;
    store.bucket(bucket);
    let lb = Balancer::start(test, &store, bucket, &["--max-per-ip", "1"])?;
    Some((store, lb))
}

#[test]
fn the_readme_configuration_is_the_tested_one() {
    let text = readme_config().expect("the README's haproxy block");
    assert!(text.contains("send-proxy-v2") && text.contains("balance roundrobin"));
    let config = config_for(2100, &[50000..=50015, 50016..=50031, 50032..=50047]).unwrap();
    assert!(config.contains("bind 127.0.0.1:2100\n"), "{config}");
    assert!(
        config.contains("server n2 127.0.0.12:2100 send-proxy-v2"),
        "{config}"
    );
    assert!(config.contains("bind 127.0.0.1:50016-50031"), "{config}");
    assert!(
        config.contains("server n3 127.0.0.13 send-proxy-v2"),
        "{config}"
    );
}

#[test]
fn nodes_behind_haproxy_share_a_bucket_and_see_the_client() {
    let test = "nodes_behind_haproxy_share_a_bucket_and_see_the_client";
    let Some((store, lb)) = cluster(test, "lb-share") else {
        return;
    };

    // A file uploaded in one session is listed and downloaded, byte for
    // byte, in sessions that land on the other nodes.
    let body = pattern(7, 3 << 20);
    let mut c = session(&lb, ip(2));
    let (data, uploaded_on) = pasv(&lb, &mut c);
    let mut t = c.start("STOR shared.bin", data).expect("STOR");
    t.stream.write_all(&body).expect("send");
    drop(t);
    c.expect_reply(226);
    c.quit();
    assert_bytes(
        &store.get_object("lb-share", "served/shared.bin"),
        &body,
        "the object",
    );
    let mut seen = vec![uploaded_on];
    for last in 3..12 {
        if seen.len() == lb.nodes.len() {
            break;
        }
        let mut c = session(&lb, ip(last));
        let (data, node) = pasv(&lb, &mut c);
        let mut t = c.start("LIST", data).expect("LIST");
        let mut list = String::new();
        t.stream.read_to_string(&mut list).expect("listing");
        c.expect_reply(226);
        assert!(list.contains("shared.bin"), "n{}: {list}", node + 1);
        let (data, again) = pasv(&lb, &mut c);
        assert_eq!(again, node, "one session stays on its node");
        assert_bytes(&retr_on(&mut c, data, "shared.bin"), &body, "RETR");
        c.quit();
        if !seen.contains(&node) {
            seen.push(node);
        }
    }
    assert_eq!(seen.len(), 3, "sessions landed on every node: {seen:?}");

    // --max-per-ip 1 counts the client behind the balancer, not haproxy:
    // round-robin puts one session from 127.0.0.20 on each node, the
    // fourth is refused, and 127.0.0.21 is served.
    let mut held = Vec::new();
    for _ in 0..3 {
        let c = Client::try_connect_from(ip(20), lb.addr()).expect("connect");
        assert_eq!(c.greeting.code, 220, "{}", c.greeting);
        held.push(c);
    }
    let refused = Client::try_connect_from(ip(20), lb.addr()).expect("connect");
    assert_eq!(refused.greeting.code, 421, "{}", refused.greeting);
    let other = Client::try_connect_from(ip(21), lb.addr()).expect("connect");
    assert_eq!(other.greeting.code, 220, "{}", other.greeting);
    other.quit();
    for c in held {
        c.quit();
    }

    // A passive data connection from another address than the client's
    // (through the balancer: the PROXY header says so) is refused; the
    // client's own is served.
    let mut c = session(&lb, ip(30));
    let addr = c.pasv();
    let mut thief = connect_from(ip(31), addr).expect("connect as another client");
    std::thread::sleep(Duration::from_millis(200));
    assert_bytes(
        &retr_on(&mut c, Data::Passive(addr), "shared.bin"),
        &body,
        "RETR",
    );
    let mut stolen = Vec::new();
    let _ = thief.read_to_end(&mut stolen);
    assert!(
        stolen.is_empty(),
        "the other address got {} bytes",
        stolen.len()
    );
    c.quit();

    // Straight to a node: from a --proxy-from source without a header,
    // closed without a reply; from another source, served as usual.
    let mut bare = TcpStream::connect(lb.nodes[0].addr()).expect("connect to n1");
    bare.set_read_timeout(Some(TIMEOUT)).unwrap();
    bare.write_all(b"USER anonymous\r\n").expect("send");
    let mut got = Vec::new();
    let _ = bare.read_to_end(&mut got);
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    let mut direct = Client::try_connect_from(ip(40), lb.nodes[1].addr()).expect("connect");
    assert_eq!(direct.greeting.code, 220, "{}", direct.greeting);
    direct.login_anonymous();
    direct.expect("TYPE I", 200);
    let data = direct.epsv();
    assert_eq!(data.ip(), lb.nodes[1].addr().ip(), "EPSV: the node itself");
    assert_bytes(
        &retr_on(&mut direct, Data::Passive(data), "shared.bin"),
        &body,
        "RETR",
    );
    direct.quit();
    let log = lb.nodes[0].log();
    assert!(
        log.contains("PROXY header"),
        "n1 logged the bare connection:\n{log}"
    );
}

#[test]
fn a_killed_node_loses_nothing() {
    let test = "a_killed_node_loses_nothing";
    let Some((store, mut lb)) = cluster(test, "lb-kill") else {
        return;
    };
    let big = pattern(11, 48 << 20);
    let mut c = session(&lb, ip(2));
    c.stor("big.bin", &big);
    c.quit();

    // The node serving a download is killed: the client reconnects through
    // the balancer, lands on another node and finishes with REST.
    let mut c = session(&lb, ip(50));
    let (data, serving) = pasv(&lb, &mut c);
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut got = vec![0u8; 1 << 20];
    t.stream.read_exact(&mut got).expect("the first MiB");
    lb.nodes[serving].kill();
    let mut rest = Vec::new();
    let _ = t.stream.read_to_end(&mut rest);
    got.extend_from_slice(&rest);
    assert!(got.len() < big.len(), "the whole file came before the kill");
    assert_bytes(&got, &big[..got.len()], "the part before the kill");
    drop(c);
    let mut c = session(&lb, ip(50));
    let (data, node) = pasv(&lb, &mut c);
    assert_ne!(node, serving, "landed on the killed node");
    c.check(
        &format!("REST {}", got.len()),
        &format!("350 Restart position accepted ({}).", got.len()),
    );
    got.extend_from_slice(&retr_on(&mut c, data, "big.bin"));
    assert_bytes(&got, &big, "the download resumed on another node");
    c.quit();

    // A node killed during an upload leaves no object under the target
    // name, and the other nodes keep serving.
    let mut c = session(&lb, ip(60));
    let (data, uploading) = pasv(&lb, &mut c);
    assert_ne!(uploading, serving);
    let mut t = c.start("STOR cut.bin", data).expect("STOR");
    t.stream.write_all(&big[..20 << 20]).expect("send 20 MiB");
    std::thread::sleep(Duration::from_millis(500));
    lb.nodes[uploading].kill();
    drop(t);
    drop(c);
    let gone = store
        .request("GET", "/lb-kill/served/cut.bin", &[])
        .expect("ask the store");
    assert_eq!(gone.status, 404, "an object was left under the name");
    let mut c = session(&lb, ip(61));
    let (data, node) = pasv(&lb, &mut c);
    assert!(node != serving && node != uploading, "n{}", node + 1);
    let mut t = c.start("NLST", data).expect("NLST");
    let mut names = String::new();
    t.stream.read_to_string(&mut names).expect("names");
    c.expect_reply(226);
    assert!(
        names.contains("big.bin") && !names.contains("cut.bin"),
        "{names}"
    );
    c.expect("SIZE cut.bin", 550);
    let (data, _) = pasv(&lb, &mut c);
    assert_bytes(
        &retr_on(&mut c, data, "big.bin"),
        &big,
        "RETR after the kills",
    );
    c.quit();
}
