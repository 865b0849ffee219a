//! Protocol extensions over real sockets, on both daemons: HASH and the
//! older digest commands, RANG, OPTS HASH, ABOR during a digest.

use std::process::Command;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::{TestServer, daemon_tests};
use md5::Digest as _;

daemon_tests! {
    hash_of_a_large_file_matches_sha256sum,
    ranges_algorithms_and_legacy_commands,
    abor_during_a_hash_answers_at_once,
    hash_limits_and_off,
}

/// 100 MiB that are not all alike.
fn large() -> Vec<u8> {
    (0..100u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash_of_a_large_file_matches_sha256sum<R: Runtime>() {
    let srv = TestServer::builder().file("big.bin", large()).start::<R>();
    let expected = match Command::new("sha256sum").arg(srv.path("big.bin")).output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string(),
        _ => hex(&sha2::Sha256::digest(large())),
    };
    let mut c = srv.client();
    c.login_anonymous();
    let feat = c.cmd("FEAT");
    assert!(
        feat.inner()
            .iter()
            .any(|l| l.trim() == "HASH SHA-256*;SHA-512;SHA-1;MD5;CRC32"),
        "{feat}"
    );
    let r = c.cmd("HASH big.bin");
    assert_eq!(r.code, 213, "{r}");
    assert_eq!(
        r.text(),
        format!("SHA-256 0-{} {expected} big.bin", (100u64 << 20) - 1)
    );
    c.quit();
}

fn ranges_algorithms_and_legacy_commands<R: Runtime>() {
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    let srv = TestServer::builder()
        .file("dir/f.bin", data.clone())
        .start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    c.expect("RANG 100 199", 350);
    let r = c.expect("HASH dir/f.bin", 213);
    assert_eq!(
        r.text(),
        format!(
            "SHA-256 100-199 {} dir/f.bin",
            hex(&sha2::Sha256::digest(&data[100..200]))
        )
    );
    c.check("OPTS HASH md5", "200 MD5");
    let r = c.expect("HASH dir/f.bin", 213);
    assert_eq!(
        r.text(),
        format!("MD5 0-9999 {} dir/f.bin", hex(&md5::Md5::digest(&data)))
    );
    c.check(
        "XCRC dir/f.bin",
        &format!("250 {:08x}", crc32fast::hash(&data)),
    );
    c.check(
        "XSHA512 dir/f.bin 10 20",
        &format!("250 {}", hex(&sha2::Sha512::digest(&data[10..20]))),
    );
    c.check(
        "XMD5 dir/f.bin",
        &format!("250 {}", hex(&md5::Md5::digest(&data))),
    );
    assert_eq!(c.cmd("HASH dir").code, 550);
    assert_eq!(c.cmd("HASH nothing").code, 550);
    assert_eq!(c.cmd("XSHA1 dir/f.bin 20000 30000").code, 501);
    c.quit();
}

fn abor_during_a_hash_answers_at_once<R: Runtime>() {
    let srv = TestServer::builder().file("big.bin", large()).start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    c.check("OPTS HASH SHA-512", "200 SHA-512");
    c.send("HASH big.bin");
    std::thread::sleep(Duration::from_millis(50));
    let asked = Instant::now();
    c.send("ABOR");
    let first = c.read_reply();
    if first.code == 213 {
        // The machine digested 100 MiB in 50 ms: nothing to abort.
        println!("SKIP abor_during_a_hash: the digest finished first");
        return;
    }
    assert_eq!(first.code, 426, "{first}");
    assert_eq!(c.read_reply().code, 226);
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "ABOR took {:?}",
        asked.elapsed()
    );
    // The session goes on.
    c.expect("NOOP", 200);
    c.check("RANG 0 9", "350 Restarting at 0. Ending byte 9.");
    let r = c.expect("HASH big.bin", 213);
    assert!(r.text().starts_with("SHA-512 0-9 "), "{r}");
    c.quit();
}

fn hash_limits_and_off<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--hash-max-size", "1000"])
        .file("f", vec![7u8; 2000])
        .start::<R>();
    let mut c = srv.client();
    c.login_anonymous();
    assert_eq!(c.cmd("HASH f").code, 552);
    c.expect("RANG 0 999", 350);
    c.expect("HASH f", 213);
    c.quit();
    let off = TestServer::builder()
        .args(&["--no-hash"])
        .file("f", vec![7u8; 10])
        .start::<R>();
    let mut c = off.client();
    c.login_anonymous();
    assert_eq!(c.cmd("HASH f").code, 502);
    assert_eq!(c.cmd("XCRC f").code, 502);
    assert!(!c.cmd("FEAT").inner().iter().any(|l| l.contains("HASH")));
    c.quit();
}
