//! Test harness for the FTP daemons: a server started in-process on any
//! [`Runtime`](ftp_host::daemon::Runtime) ([`server`]), a strict FTP client
//! over real sockets ([`client`]), a certificate made at test time
//! ([`certs`]), real FTP programs run with a time limit ([`clients`]),
//! file trees on disk ([`tree`]) and reproducible test data ([`data`]), a
//! real S3 object store, a SeaweedFS cluster on loopback ([`seaweed`]),
//! PROXY protocol headers made by hand ([`proxy_header`]), several daemon
//! processes behind a real haproxy ([`balancer`]), and the daemons'
//! binaries under systemd's socket activation and notifications
//! ([`systemd`]).
//!
//! Every test is written once as a generic `fn name<R: Runtime>()` and
//! instantiated for both daemons with [`daemon_tests!`]. The tests of the
//! files that declare them `any_storage` also run against a bucket with
//! `FTP_TEST_STORAGE=s3` ([`backend`]); the test server's methods that
//! read and write what it serves ([`TestServer::read_file`] ...) work on
//! both.
//!
//! Every wait has a deadline: sockets get [`TIMEOUT`] as read and write
//! timeout, servers must stop within [`server::STOP_TIMEOUT`] of their
//! shutdown, and external programs are killed after their time limit.

use std::io::Write;
use std::time::{Duration, Instant};

pub mod backend;
pub mod balancer;
pub mod binary;
pub mod certs;
pub mod client;
pub mod clients;
pub mod data;
pub mod http;
pub mod objects;
pub mod proxy_header;
pub mod seaweed;
mod served;
pub mod server;
pub mod systemd;
pub mod tree;

pub use client::{Client, Data, DataMode, Reply};
pub use server::{Builder, TestServer};

/// Read and write timeout of every socket the suite opens.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Says on the terminal that a test did not run, and why.
///
/// The line goes straight to the process's standard error, past libtest's
/// output capture, so `cargo test` shows it without `--nocapture`.
pub fn skip(test: &str, why: &str) {
    let line = format!("SKIP: {test}: {why}\n");
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(line.as_bytes());
    let _ = err.flush();
}

/// Whether the opt-in 1 GiB test should run (`FTP_TEST_LARGE=1`).
pub fn large_tests_enabled() -> bool {
    std::env::var("FTP_TEST_LARGE").is_ok_and(|v| v == "1")
}

/// Polls `check` until it returns `Some`, or panics with `what` after
/// `timeout`. The only way the suite waits for something that has no
/// socket to block on (a file to disappear, a slot to free up).
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The text of the refusals of what the served storage cannot do (`APPE`,
/// `REST` before `STOR`, `MFMT` and `SITE CHMOD` on an object store).
pub const NOT_SUPPORTED_BY_STORAGE: &str = "not supported by this storage";

/// Panics unless `reply` is a `5xx` saying that the storage cannot do what
/// `what` asked.
#[track_caller]
pub fn assert_storage_refusal(reply: &Reply, what: &str) {
    assert!(
        reply.code / 100 == 5 && reply.text().contains(NOT_SUPPORTED_BY_STORAGE),
        "{what}: expected a refusal saying it is {NOT_SUPPORTED_BY_STORAGE}, got {reply}"
    );
}

/// Instantiates generic tests `fn name<R: Runtime>()` for both daemons:
/// `mio::name` runs `name::<ftp_mio::Mio>()` and `smol::name` runs
/// `name::<ftp_smol::Smol>()`.
///
/// ```ignore
/// daemon_tests! { list_in_passive_mode, retr_resume }
/// ```
///
/// Declared `any_storage;`, the tests serve what `FTP_TEST_STORAGE`
/// chooses ([`backend`]): a folder, or a prefix of a bucket of a shared
/// SeaweedFS cluster (without `weed` the tests say `SKIP:` and pass,
/// unless `FTP_TEST_REQUIRE_CLIENTS=1`). A test file invokes the macro
/// once.
///
/// ```ignore
/// daemon_tests! { any_storage; list_in_passive_mode, retr_resume }
/// ```
#[macro_export]
macro_rules! daemon_tests {
    (any_storage; $($name:ident),* $(,)?) => {
        mod mio {
            $(
                #[test]
                fn $name() {
                    if $crate::backend::enter(stringify!($name)) {
                        super::$name::<::ftp_mio::Mio>()
                    }
                }
            )*
        }
        mod smol {
            $(
                #[test]
                fn $name() {
                    if $crate::backend::enter(stringify!($name)) {
                        super::$name::<::ftp_smol::Smol>()
                    }
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod mio {
            $(
                #[test]
                fn $name() {
                    super::$name::<::ftp_mio::Mio>()
                }
            )*
        }
        mod smol {
            $(
                #[test]
                fn $name() {
                    super::$name::<::ftp_smol::Smol>()
                }
            )*
        }
    };
}

/// Panics unless `got == want`, saying how they differ (lengths, first
/// differing offset) rather than printing both.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8], what: &str) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    match first {
        Some(i) => panic!(
            "{what}: bytes differ at offset {i} (got {} bytes, expected {})",
            got.len(),
            want.len()
        ),
        None => panic!(
            "{what}: got {} bytes, expected {} (one is a prefix of the other)",
            got.len(),
            want.len()
        ),
    }
}
