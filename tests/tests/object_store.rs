//! The S3 object store the S3 back-end is tested against: a real SeaweedFS
//! cluster on loopback ([`ftp_tests::seaweed`]). These tests check the
//! harness itself: objects round-trip byte-exact, and a cluster with a
//! dead volume server still stops cleanly.

use std::net::TcpStream;
use std::time::Duration;

use ftp_tests::assert_bytes;
use ftp_tests::data::pattern;
use ftp_tests::seaweed::SeaweedFs;

/// A few MiB, more than one chunk of the gateway's uploads.
const OBJECT_SIZE: usize = 5 * 1024 * 1024 + 123;

#[test]
fn object_round_trip() {
    let Some(s3) = SeaweedFs::start("object_round_trip") else {
        return;
    };
    eprintln!("seaweedfs started in {:?}", s3.start_time());
    assert!(s3.endpoint().starts_with("http://127.0.0.1:"));
    s3.bucket("round-trip");
    let data = pattern(7, OBJECT_SIZE);
    s3.put_object("round-trip", "dir/object.bin", &data);
    let back = s3.get_object("round-trip", "dir/object.bin");
    assert_bytes(&back, &data, "GET after PUT");
    let missing = s3
        .request("GET", "/round-trip/no-such-object", &[])
        .expect("GET of a missing object");
    assert_eq!(missing.status, 404, "GET of a missing object");
}

#[test]
fn killed_volume_server_stops_cleanly() {
    let Some(mut s3) = SeaweedFs::start("killed_volume_server_stops_cleanly") else {
        return;
    };
    s3.bucket("kill-volume");
    s3.put_object("kill-volume", "small", b"still here?");
    let port = s3.volume_port(0);
    assert!(s3.kill_volume(0).is_some(), "volume1 was running");
    assert!(s3.kill_volume(0).is_none(), "volume1 is gone");
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "volume1's port still answers"
    );
    assert!(!s3.running().contains(&"volume1".to_string()));
    assert!(s3.stop_volume(1).is_some(), "volume2 was running");
    // The gateway and the metadata still answer.
    s3.bucket("after-kill");
    let dir = s3.dir().to_path_buf();
    let endpoint = s3.addr();
    s3.kill();
    assert_eq!(s3.running(), Vec::<String>::new(), "all processes reaped");
    assert!(
        TcpStream::connect_timeout(&endpoint, Duration::from_secs(1)).is_err(),
        "the gateway still answers after kill"
    );
    drop(s3);
    assert!(!dir.exists(), "{} not removed", dir.display());
}

#[test]
fn failed_start_panics_with_log_tails() {
    // `sh master ...` exits at once, complaining about its "script".
    let Some(sh) = ftp_tests::clients::find_program("sh") else {
        ftp_tests::skip("failed_start_panics_with_log_tails", "sh not installed");
        return;
    };
    let started = std::panic::catch_unwind(|| SeaweedFs::start_with(&sh));
    let Err(panic) = started else {
        panic!("a cluster of `sh` processes started");
    };
    let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(message.contains("master exited"), "{message}");
    assert!(message.contains("--- master ("), "{message}");
    assert!(message.contains("master"), "{message}");
}
