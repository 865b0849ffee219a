//! Per-user policy over real sockets: address filters, auto-ban, quotas
//! and AVBL, on both daemons.

use std::io::Write;
use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::{Client, TestServer, daemon_tests};

daemon_tests! {
    logins_are_filtered_by_address,
    failed_logins_ban_an_address_until_the_ban_ends,
    exempt_networks_are_not_banned,
    quota_bytes_refuse_uploads_and_keep_the_previous_file,
    quota_files_and_max_file_size,
    usage_follows_deletes_and_renames,
}

const FROM_2: [u8; 4] = [127, 0, 0, 2];
const FROM_3: [u8; 4] = [127, 0, 0, 3];

/// A session from `from` to `srv`, greeted with 220.
fn client_from(srv: &TestServer, from: [u8; 4]) -> Client {
    let c = Client::try_connect_from(IpAddr::from(from), srv.addr()).expect("connect");
    assert_eq!(c.greeting.code, 220, "greeting: {}", c.greeting);
    c
}

/// `USER` + `PASS`, returning the reply to `PASS`.
fn try_login(c: &mut Client, user: &str, password: &str) -> u16 {
    c.expect(&format!("USER {user}"), 331);
    c.cmd(&format!("PASS {password}")).code
}

fn logins_are_filtered_by_address<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "0"])
        .user_with(
            "alice",
            "secret",
            None,
            false,
            "allow_from = [\"127.0.0.0/29\", \"::1\"]\ndeny_from = [\"127.0.0.3\"]",
        )
        .user_with(
            "bob",
            "secret",
            None,
            false,
            "allow_from = [\"127.0.0.3/32\"]",
        )
        .start::<R>();
    let mut from2 = client_from(&srv, FROM_2);
    assert_eq!(try_login(&mut from2, "alice", "secret"), 230);
    from2.quit();
    // Denied: a 530 just like a wrong password's.
    let mut from3 = client_from(&srv, FROM_3);
    let denied = from3.cmd("USER alice");
    assert_eq!(denied.code, 331);
    let denied = from3.cmd("PASS secret");
    assert_eq!(denied.code, 530, "{denied}");
    from3.expect("USER alice", 331);
    let wrong = from3.cmd("PASS wrong");
    assert_eq!((wrong.code, wrong.text()), (denied.code, denied.text()));
    assert_eq!(try_login(&mut from3, "bob", "secret"), 230);
    from3.quit();
    let mut from2 = client_from(&srv, FROM_2);
    assert_eq!(try_login(&mut from2, "bob", "secret"), 530);
    from2.quit();
}

fn failed_logins_ban_an_address_until_the_ban_ends<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&[
            "--login-fail-delay",
            "0",
            "--ban-after",
            "3",
            "--ban-time",
            "2",
            "--metrics",
            "127.0.0.1:0",
        ])
        .user("alice", "secret", None, false)
        .start::<R>();
    // Two bad passwords and an unknown user, over two sessions.
    let mut c = client_from(&srv, FROM_2);
    assert_eq!(try_login(&mut c, "alice", "wrong"), 530);
    assert_eq!(try_login(&mut c, "mallory", "x"), 530);
    c.quit();
    let mut c = client_from(&srv, FROM_2);
    assert_eq!(try_login(&mut c, "alice", "wrong again"), 530);
    let banned_at = Instant::now();
    c.quit();
    let refused = Client::try_connect_from(IpAddr::from(FROM_2), srv.addr()).expect("connect");
    assert_eq!(refused.greeting.code, 421, "{}", refused.greeting);
    // Another address is not concerned.
    let mut other = client_from(&srv, FROM_3);
    assert_eq!(try_login(&mut other, "alice", "secret"), 230);
    other.quit();
    let metrics = srv.metrics_addr().expect("metrics");
    let text = ftp_tests::http::get(metrics, "/metrics").body;
    assert!(
        text.contains("ftp_connections_refused_total{reason=\"banned\"} 1"),
        "{text}"
    );
    // The ban ends.
    let over = banned_at + Duration::from_millis(2100);
    sleep(over.saturating_duration_since(Instant::now()));
    let mut back = client_from(&srv, FROM_2);
    assert_eq!(try_login(&mut back, "alice", "secret"), 230);
    back.quit();
}

fn exempt_networks_are_not_banned<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&[
            "--login-fail-delay",
            "0",
            "--ban-after",
            "1",
            "--ban-exempt",
            "127.0.0.2",
        ])
        .user("alice", "secret", None, false)
        .start::<R>();
    for _ in 0..3 {
        let mut c = client_from(&srv, FROM_2);
        assert_eq!(try_login(&mut c, "alice", "wrong"), 530);
        c.quit();
    }
    let mut c = client_from(&srv, FROM_3);
    assert_eq!(try_login(&mut c, "alice", "wrong"), 530);
    c.quit();
    let refused = Client::try_connect_from(IpAddr::from(FROM_3), srv.addr()).expect("connect");
    assert_eq!(refused.greeting.code, 421, "{}", refused.greeting);
}

/// Uploads `bytes` with `line` (ignoring a data connection the server
/// cuts) and returns the code that ends it: the refusal, or the reply
/// after the data.
fn store(c: &mut Client, line: &str, bytes: &[u8]) -> u16 {
    let data = c.data();
    let mut t = match c.start(line, data) {
        Ok(t) => t,
        Err(refusal) => return refusal.code,
    };
    let _ = t.stream.write_all(bytes);
    let _ = t.stream.shutdown(std::net::Shutdown::Write);
    drop(t.stream);
    c.read_reply().code
}

/// `AVBL`'s figure.
fn available(c: &mut Client) -> u64 {
    let r = c.expect("AVBL", 213);
    r.text()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("AVBL: {r}"))
}

fn quota_server<R: Runtime>(keys: &str) -> TestServer {
    TestServer::builder()
        .user_with("alice", "secret", Some("alice"), true, keys)
        .file("alice/old.txt", vec![b'o'; 1000])
        .start::<R>()
}

fn quota_bytes_refuse_uploads_and_keep_the_previous_file<R: Runtime>() {
    let srv = quota_server::<R>("quota_bytes = 100000");
    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    assert_eq!(available(&mut c), 99_000);
    assert_eq!(store(&mut c, "STOR a.bin", &[1u8; 60_000]), 226);
    assert_eq!(available(&mut c), 39_000);
    // Over the quota in mid-transfer: refused, nothing left behind.
    assert_eq!(store(&mut c, "STOR b.bin", &[2u8; 60_000]), 552);
    assert_eq!(c.cmd("SIZE b.bin").code, 550);
    // Replacing a file may use the space it frees.
    assert_eq!(store(&mut c, "STOR a.bin", &[3u8; 90_000]), 226);
    assert_eq!(available(&mut c), 9_000);
    // Too big even so: the previous version stays whole.
    assert_eq!(store(&mut c, "STOR a.bin", &vec![4u8; 300_000]), 552);
    assert_eq!(c.retr("a.bin"), vec![3u8; 90_000]);
    // ALLO announces a size that cannot fit: refused before any data.
    c.expect("ALLO 50000", 200);
    let data = c.data();
    let refused = c.start("STOR c.bin", data).expect_err("over the quota");
    assert_eq!(refused.code, 552, "{refused}");
    c.expect("ALLO 5000", 200);
    assert_eq!(store(&mut c, "STOR c.bin", &[5u8; 5000]), 226);
    assert_eq!(available(&mut c), 4_000);
    c.quit();
    let disk = |name: &str| srv.read_file(&format!("alice/{name}")).map(|b| b.len());
    assert_eq!(disk("a.bin"), Some(90_000));
    assert_eq!(disk("b.bin"), None);
    assert_eq!(disk("c.bin"), Some(5_000));
}

fn quota_files_and_max_file_size<R: Runtime>() {
    let srv = quota_server::<R>("quota_files = 3\nmax_file_size = 2000");
    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    assert_eq!(store(&mut c, "STOR one", b"1"), 226);
    assert_eq!(store(&mut c, "STOR two", b"2"), 226);
    // old.txt, one, two: a fourth file is refused at once...
    let data = c.data();
    let refused = c.start("STOR three", data).expect_err("a fourth file");
    assert_eq!(refused.code, 552, "{refused}");
    // ...but replacing one is fine, within the size limit only.
    assert_eq!(store(&mut c, "STOR one", &[1u8; 2000]), 226);
    assert_eq!(store(&mut c, "STOR one", &[1u8; 2001]), 552);
    assert_eq!(c.retr("one"), vec![1u8; 2000]);
    assert_eq!(store(&mut c, "APPE one", b"x"), 552);
    c.expect("DELE two", 250);
    assert_eq!(store(&mut c, "STOR three", b"3"), 226);
    c.quit();
}

fn usage_follows_deletes_and_renames<R: Runtime>() {
    let srv = quota_server::<R>("quota_bytes = 10000\nquota_files = 10");
    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    assert_eq!(available(&mut c), 9_000);
    assert_eq!(store(&mut c, "STOR x", &[0u8; 3000]), 226);
    assert_eq!(store(&mut c, "STOR y", &[0u8; 2000]), 226);
    assert_eq!(available(&mut c), 4_000);
    // RNTO over y frees y's bytes.
    c.expect("RNFR x", 350);
    c.expect("RNTO y", 250);
    assert_eq!(available(&mut c), 6_000);
    c.expect("MKD sub", 257);
    c.expect("RNFR y", 350);
    c.expect("RNTO sub/y", 250);
    assert_eq!(available(&mut c), 6_000);
    c.expect("DELE sub/y", 250);
    c.expect("RMD sub", 250);
    c.expect("DELE old.txt", 250);
    assert_eq!(available(&mut c), 10_000);
    // A second session of the same user shares the count.
    let mut d = srv.client();
    d.login("alice", "secret");
    d.expect("TYPE I", 200);
    assert_eq!(store(&mut d, "STOR z", &[0u8; 7000]), 226);
    assert_eq!(available(&mut c), 3_000);
    d.quit();
    c.quit();
}
