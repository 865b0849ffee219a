//! Bandwidth limits: a users-file account's `download_rate` and
//! `upload_rate`, and `--download-rate` as the default for anonymous
//! sessions, hold within 5 % while another session's unlimited transfer
//! of the same size, at the same time, is not slowed down.
//!
//! Each transfer starts with a full bucket, a tenth of a second's worth,
//! so it may end that much sooner than size / rate.

use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::data::pattern;
use ftp_tests::{Client, DataMode, TestServer, assert_bytes, daemon_tests};

daemon_tests! {
    a_users_download_rate_holds_while_others_go_at_full_speed,
    a_users_upload_rate_holds_while_others_go_at_full_speed,
    the_download_rate_flag_limits_anonymous_sessions,
}

const MIB: usize = 1 << 20;

/// Longest an unlimited transfer of a few MiB over loopback may take
/// next to a throttled one (it takes some milliseconds).
const UNLIMITED: Duration = Duration::from_millis(1000);

/// Panics unless moving `bytes` at `rate` bytes/s took `took`: size /
/// rate within 5 %, less at most the first burst (a tenth of a second).
#[track_caller]
fn assert_rate(what: &str, took: Duration, bytes: usize, rate: usize) {
    let want = bytes as f64 / rate as f64;
    let got = took.as_secs_f64();
    eprintln!("{what}: {bytes} bytes at {rate} B/s in {got:.3} s");
    assert!(
        got >= want * 0.95 - 0.1 && got <= want * 1.05,
        "{what}: {bytes} bytes at {rate} B/s took {got:.2} s, expected {want:.2} s within 5 %"
    );
}

/// A client logged in as `user`, binary mode, EPSV.
fn login(srv: &TestServer, user: &str) -> Client {
    let mut c = srv.client();
    c.login(user, "pw");
    c.expect("TYPE I", 200);
    c.mode = DataMode::Epsv;
    c
}

/// Runs `f` and says how long it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let out = f();
    (out, start.elapsed())
}

fn a_users_download_rate_holds_while_others_go_at_full_speed<R: Runtime>() {
    let len = 10 * MIB;
    let data = pattern(21, len);
    let srv = TestServer::builder()
        .user_with("slow", "pw", None, false, "download_rate = 1048576\n")
        .user("fast", "pw", None, false)
        .file("big.bin", &data)
        .start::<R>();
    let mut slow = login(&srv, "slow");
    let mut fast = login(&srv, "fast");
    std::thread::scope(|s| {
        let throttled = s.spawn(|| timed(|| slow.retr("big.bin")));
        // Well into the throttled download, the same file at full speed.
        std::thread::sleep(Duration::from_secs(2));
        let (got, took) = timed(|| fast.retr("big.bin"));
        assert_bytes(&got, &data, "unlimited download");
        eprintln!("unlimited download next to a throttled one: {took:?}");
        assert!(
            took < UNLIMITED,
            "the unlimited download took {took:?} next to a throttled one"
        );
        assert!(!throttled.is_finished(), "the throttled download is over");
        let (got, took) = throttled.join().expect("throttled download");
        assert_bytes(&got, &data, "throttled download");
        assert_rate("download_rate", took, len, MIB);
    });
    // The limit is per transfer: the next one has a bucket of its own,
    // and a listing goes through it too.
    let (_, took) = timed(|| slow.list(""));
    assert!(took < UNLIMITED, "a small listing took {took:?}");
    slow.quit();
    fast.quit();
}

fn a_users_upload_rate_holds_while_others_go_at_full_speed<R: Runtime>() {
    let len = 4 * MIB;
    let data = pattern(22, len);
    let srv = TestServer::builder()
        .user_with("slow", "pw", None, true, "upload_rate = 1048576\n")
        .user_with("fast", "pw", None, true, "download_rate = 1\n")
        .start::<R>();
    let mut slow = login(&srv, "slow");
    let mut fast = login(&srv, "fast");
    std::thread::scope(|s| {
        let throttled = s.spawn(|| timed(|| slow.stor("slow.bin", &data)));
        std::thread::sleep(Duration::from_secs(1));
        // Another account's download rate does not limit its uploads.
        let (_, took) = timed(|| fast.stor("fast.bin", &data));
        eprintln!("unlimited upload next to a throttled one: {took:?}");
        assert!(
            took < UNLIMITED,
            "the unlimited upload took {took:?} next to a throttled one"
        );
        assert!(!throttled.is_finished(), "the throttled upload is over");
        let (_, took) = throttled.join().expect("throttled upload");
        assert_rate("upload_rate", took, len, MIB);
    });
    for name in ["slow.bin", "fast.bin"] {
        let stored = srv.read_file(name).expect("stored");
        assert_bytes(&stored, &data, name);
    }
    slow.quit();
    fast.quit();
}

fn the_download_rate_flag_limits_anonymous_sessions<R: Runtime>() {
    let len = 3 * MIB;
    let rate = MIB;
    let data = pattern(23, len);
    // 16,384 lines of 64 bytes: 1 MiB, and 16 KiB more as CRLF.
    let line = format!("{}\n", "x".repeat(63));
    let text = line.repeat(16 * 1024);
    let srv = TestServer::builder()
        .args(&["--download-rate", &rate.to_string(), "-a", "ftp"])
        // An account's own rate wins over the flag: 0 is unlimited.
        .user_with("free", "pw", None, false, "download_rate = 0\n")
        .file("big.bin", &data)
        .file("text.txt", &text)
        .start::<R>();
    let mut anonymous = srv.client();
    anonymous.login_anonymous();
    anonymous.expect("TYPE I", 200);
    anonymous.mode = DataMode::Epsv;
    let mut free = login(&srv, "free");
    std::thread::scope(|s| {
        let throttled = s.spawn(|| timed(|| anonymous.retr("big.bin")));
        std::thread::sleep(Duration::from_secs(1));
        let (got, took) = timed(|| free.retr("big.bin"));
        assert_bytes(&got, &data, "unlimited download");
        assert!(took < UNLIMITED, "the unlimited download took {took:?}");
        let (got, took) = throttled.join().expect("throttled download");
        assert_bytes(&got, &data, "anonymous download");
        assert_rate("--download-rate", took, len, rate);
    });
    // ASCII mode goes through a buffer, not sendfile: limited all the
    // same, counting the bytes on the wire.
    anonymous.expect("TYPE A", 200);
    let (got, took) = timed(|| anonymous.retr("text.txt"));
    assert_eq!(got, text.replace('\n', "\r\n").as_bytes(), "ASCII download");
    assert_rate("--download-rate, TYPE A", took, got.len(), rate);
    anonymous.quit();
    free.quit();
}
