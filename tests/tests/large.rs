//! A 1 GiB round trip (STOR, then RETR) checked byte for byte without
//! holding the data in memory, to a folder and to an S3 bucket of a real
//! SeaweedFS cluster. Opt-in: `FTP_TEST_LARGE=1` (CI sets it).

use std::fs::File;
use std::io::{BufReader, Write};
use std::time::Instant;

use ftp_host::daemon::Runtime;
use ftp_tests::client::Client;
use ftp_tests::data::{Pattern, verify_stream};
use ftp_tests::seaweed::SeaweedFs;
use ftp_tests::{DataMode, TestServer, daemon_tests, large_tests_enabled, skip};

daemon_tests! {
    one_gib_round_trip,
    one_gib_round_trip_through_a_bucket,
}

const LEN: u64 = 1 << 30;
const SEED: u64 = 0x1_6B_1E;

fn one_gib_round_trip<R: Runtime>() {
    if !large_tests_enabled() {
        skip(
            "one_gib_round_trip",
            "set FTP_TEST_LARGE=1 to run the 1 GiB round trip",
        );
        return;
    }
    let srv = TestServer::start::<R>(&["-w"]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.mode = DataMode::Epsv;

    let up = stor(&mut c);
    c.check("SIZE big.bin", &format!("213 {LEN}"));
    let mut file = BufReader::with_capacity(1 << 20, File::open(srv.path("big.bin")).unwrap());
    verify_stream(&mut file, SEED, LEN).unwrap_or_else(|e| panic!("file on disk: {e}"));

    let down = retr(&mut c);
    eprintln!("1 GiB: STOR {up:?}, RETR {down:?}");
    c.quit();
}

/// The same through `--storage s3://...`: a multipart upload of 128
/// parts, then one streamed ranged GET.
fn one_gib_round_trip_through_a_bucket<R: Runtime>() {
    if !large_tests_enabled() {
        skip(
            "one_gib_round_trip_through_a_bucket",
            "set FTP_TEST_LARGE=1 to run the 1 GiB round trip",
        );
        return;
    }
    let Some(store) = SeaweedFs::start("one_gib_round_trip_through_a_bucket") else {
        return;
    };
    store.bucket("ftp-large");
    let dir = tempfile::tempdir().expect("folder");
    let conf = dir.path().join("ftpd.toml");
    std::fs::write(
        &conf,
        format!(
            "[storage]\nurl = \"s3://ftp-large/served\"\ns3_endpoint = \"{}\"\n\
             access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
            store.endpoint()
        ),
    )
    .expect("config file");
    let conf = conf.to_str().expect("UTF-8 path");
    let srv = TestServer::start::<R>(&["-w", "--config", conf]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.mode = DataMode::Epsv;
    let up = stor(&mut c);
    c.check("SIZE big.bin", &format!("213 {LEN}"));
    let listed = store
        .request("GET", "/ftp-large?list-type=2&prefix=served/big.bin", &[])
        .expect("ListObjectsV2");
    let listed = String::from_utf8_lossy(&listed.body);
    assert!(
        listed.contains(&format!("<Size>{LEN}</Size>")),
        "the object in the bucket: {listed}"
    );
    let down = retr(&mut c);
    eprintln!("1 GiB through S3: STOR {up:?}, RETR {down:?}");
    c.quit();
}

/// `STOR big.bin` of [`LEN`] bytes of the pattern; how long it took.
fn stor(c: &mut Client) -> std::time::Duration {
    let start = Instant::now();
    let data = c.data();
    let mut t = c.start("STOR big.bin", data).expect("STOR");
    let mut pattern = Pattern::new(SEED);
    let mut buf = vec![0u8; 1 << 20];
    let mut sent = 0u64;
    while sent < LEN {
        let n = buf.len().min((LEN - sent) as usize);
        pattern.fill(&mut buf[..n]);
        t.stream
            .write_all(&buf[..n])
            .unwrap_or_else(|e| panic!("STOR: write at offset {sent}: {e}"));
        sent += n as u64;
    }
    let _ = t.stream.shutdown(std::net::Shutdown::Write);
    drop(t);
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    start.elapsed()
}

/// `RETR big.bin`, checked against the pattern; how long it took.
fn retr(c: &mut Client) -> std::time::Duration {
    let start = Instant::now();
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    verify_stream(&mut t.stream, SEED, LEN).unwrap_or_else(|e| panic!("RETR: {e}"));
    drop(t);
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    start.elapsed()
}
