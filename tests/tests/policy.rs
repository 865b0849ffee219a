//! Per-user policy over real sockets: address filters, auto-ban, quotas
//! and AVBL, on both daemons.

use std::net::IpAddr;
use std::thread::sleep;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::{Client, TestServer, daemon_tests};

daemon_tests! {
    logins_are_filtered_by_address,
    failed_logins_ban_an_address_until_the_ban_ends,
    exempt_networks_are_not_banned,
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
