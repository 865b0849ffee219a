//! A 1 GiB round trip (STOR, then RETR) checked byte for byte without
//! holding the data in memory. Opt-in: `FTP_TEST_LARGE=1` (CI sets it).

use std::fs::File;
use std::io::{BufReader, Write};
use std::time::Instant;

use ftp_host::daemon::Runtime;
use ftp_tests::data::{Pattern, verify_stream};
use ftp_tests::{DataMode, TestServer, daemon_tests, large_tests_enabled, skip};

daemon_tests! {
    one_gib_round_trip,
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
    let up = start.elapsed();
    c.check("SIZE big.bin", &format!("213 {LEN}"));
    let mut file = BufReader::with_capacity(1 << 20, File::open(srv.path("big.bin")).unwrap());
    verify_stream(&mut file, SEED, LEN).unwrap_or_else(|e| panic!("file on disk: {e}"));

    let start = Instant::now();
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    verify_stream(&mut t.stream, SEED, LEN).unwrap_or_else(|e| panic!("RETR: {e}"));
    drop(t);
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    let down = start.elapsed();
    eprintln!("1 GiB: STOR {up:?}, RETR {down:?}");
    c.quit();
}
