//! Both daemons serving an S3 bucket (`--storage s3://...`) of a real
//! SeaweedFS cluster on loopback ([`ftp_tests::seaweed`]), driven over real
//! sockets: uploads become objects under the served prefix, downloads and
//! listings come from the bucket, and what an object store cannot do is
//! refused with a reply that says so. Without `weed` the tests say `SKIP:`
//! and pass, unless `FTP_TEST_REQUIRE_CLIENTS=1`.

use std::io::{Read, Write};
use std::time::Instant;

use ftp_host::daemon::Runtime;
use ftp_tests::data::pattern;
use ftp_tests::seaweed::SeaweedFs;
use ftp_tests::{TestServer, assert_bytes, daemon_tests};

daemon_tests! {
    serves_a_bucket,
    refuses_what_an_object_store_cannot_do,
    interrupted_upload_leaves_the_object_as_it_was,
    a_users_home_is_a_prefix_of_the_bucket,
    losing_the_store_during_a_download,
    readyz_follows_the_store,
}

/// A bucket on a fresh cluster, and a daemon (`-w`) serving its prefix
/// `served/`, with the credentials in a configuration file's `[storage]`
/// table (the environment is the other way, process-wide in a test).
fn bucket_server<R: Runtime>(test: &str, bucket: &str) -> Option<(SeaweedFs, TestServer, Conf)> {
    let store = SeaweedFs::start(test)?;
    store.bucket(bucket);
    let conf = Conf::new(&format!(
        "[storage]\nurl = \"s3://{bucket}/served\"\ns3_endpoint = \"{}\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        store.endpoint()
    ));
    let srv = TestServer::builder()
        .args(&["-w", "--config", conf.path()])
        .start::<R>();
    Some((store, srv, conf))
}

/// A configuration file in a folder of its own, removed on drop.
struct Conf {
    _dir: tempfile::TempDir,
    path: String,
}

impl Conf {
    fn new(text: &str) -> Conf {
        let dir = tempfile::tempdir().expect("folder");
        let path = dir.path().join("ftpd.toml");
        std::fs::write(&path, text).expect("config file");
        let path = path.to_str().expect("UTF-8 path").to_string();
        Conf { _dir: dir, path }
    }

    fn path(&self) -> &str {
        &self.path
    }
}

fn serves_a_bucket<R: Runtime>() {
    let Some((store, srv, _conf)) = bucket_server::<R>("serves_a_bucket", "ftp-serve") else {
        return;
    };
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    // More than two 8 MiB parts: a multipart upload.
    let big = pattern(40, 20 << 20);
    c.upload("STOR big.bin", &big).expect("STOR");
    assert_bytes(
        &store.get_object("ftp-serve", "served/big.bin"),
        &big,
        "the object in the bucket",
    );
    c.check("SIZE big.bin", &format!("213 {}", big.len()));
    c.expect("MDTM big.bin", 213);
    assert_bytes(&c.retr("big.bin"), &big, "RETR");
    let tail = c
        .download_from("RETR big.bin", Some(12_345_678))
        .expect("REST + RETR");
    assert_bytes(&tail, &big[12_345_678..], "RETR from a REST offset");
    // Folders are prefixes.
    c.expect("MKD docs", 257);
    c.upload("STOR docs/a.txt", b"a\n")
        .expect("STOR into a folder");
    let list = String::from_utf8(c.download("LIST").expect("LIST")).expect("UTF-8");
    assert!(list.contains("big.bin") && list.contains("docs"), "{list}");
    let names = String::from_utf8(c.download("NLST docs").expect("NLST")).expect("UTF-8");
    assert!(names.contains("a.txt"), "{names}");
    c.expect("RMD docs", 550);
    // Rename: a server-side copy, then a delete.
    c.expect("RNFR docs/a.txt", 350);
    c.expect("RNTO b.txt", 250);
    assert_eq!(c.retr("b.txt"), b"a\n");
    let gone = c.download("RETR docs/a.txt").expect_err("renamed away");
    assert_eq!(gone.code, 550, "{gone}");
    c.expect("DELE b.txt", 250);
    c.expect("SIZE b.txt", 550);
    c.expect("RMD docs", 250);
    c.quit();
}

fn refuses_what_an_object_store_cannot_do<R: Runtime>() {
    let Some((_store, srv, _conf)) =
        bucket_server::<R>("refuses_what_an_object_store_cannot_do", "ftp-refuse")
    else {
        return;
    };
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.upload("STOR f.txt", b"one\n").expect("STOR");
    let feat = c.expect("FEAT", 211);
    assert!(
        !feat.inner().iter().any(|l| l.trim() == "MFMT"),
        "FEAT offers MFMT: {feat}"
    );
    for line in [
        "APPE f.txt",
        "MFMT 20200101000000 f.txt",
        "SITE CHMOD 644 f.txt",
    ] {
        let r = c.cmd(line);
        assert!(
            r.code / 100 == 5 && r.text().contains("not supported by this storage"),
            "{line}: {r}"
        );
    }
    c.check("REST 2", "350 Restart position accepted (2).");
    let r = c.cmd("STOR f.txt");
    assert!(
        r.code / 100 == 5 && r.text().contains("not supported by this storage"),
        "REST + STOR: {r}"
    );
    assert_eq!(c.retr("f.txt"), b"one\n");
    c.quit();
}

fn interrupted_upload_leaves_the_object_as_it_was<R: Runtime>() {
    let Some((store, srv, _conf)) = bucket_server::<R>(
        "interrupted_upload_leaves_the_object_as_it_was",
        "ftp-abort",
    ) else {
        return;
    };
    let v1 = pattern(41, 100_000);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.upload("STOR doc.bin", &v1).expect("STOR v1");
    for name in ["doc.bin", "new.bin"] {
        let data = c.data();
        let mut t = c.start(&format!("STOR {name}"), data).expect("STOR");
        // More than one part, so a multipart upload is under way.
        t.stream.write_all(&pattern(42, 9 << 20)).expect("data");
        c.send("ABOR");
        let r = c.read_reply();
        assert_eq!(r.code, 426, "{r}");
        assert_eq!(c.read_reply().code, 226);
        drop(t);
    }
    assert_bytes(
        &store.get_object("ftp-abort", "served/doc.bin"),
        &v1,
        "the previous object",
    );
    c.expect("SIZE new.bin", 550);
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

fn a_users_home_is_a_prefix_of_the_bucket<R: Runtime>() {
    let Some(store) = SeaweedFs::start("a_users_home_is_a_prefix_of_the_bucket") else {
        return;
    };
    store.bucket("ftp-homes");
    // The home folder exists (as its marker); another file sits beside it.
    store.put_object("ftp-homes", "served/alice/", b"");
    store.put_object("ftp-homes", "served/secret.txt", b"not alice's");
    let conf = Conf::new(&format!(
        "[storage]\nurl = \"s3://ftp-homes/served\"\ns3_endpoint = \"{}\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        store.endpoint()
    ));
    let srv = TestServer::builder()
        .args(&["--config", conf.path()])
        .user("alice", "pw", Some("alice"), true)
        .start::<R>();
    let mut c = srv.client();
    c.login("alice", "pw");
    c.expect("TYPE I", 200);
    c.upload("STOR mine.txt", b"alice's\n")
        .expect("STOR in the home");
    assert_eq!(
        store.get_object("ftp-homes", "served/alice/mine.txt"),
        b"alice's\n"
    );
    let list = String::from_utf8(c.download("NLST").expect("NLST")).expect("UTF-8");
    assert!(
        list.contains("mine.txt") && !list.contains("secret"),
        "{list}"
    );
    for path in ["../secret.txt", "/../secret.txt"] {
        let r = c
            .download(&format!("RETR {path}"))
            .expect_err("outside the home");
        assert_eq!(r.code, 550, "{path}: {r}");
    }
    c.quit();
}

/// The store's volume servers die (SIGKILL) while a download streams from
/// them: the transfer ends with a 4xx/5xx reply in bounded time, not a
/// hang and not a `226` for a short file, and the session goes on.
fn losing_the_store_during_a_download<R: Runtime>() {
    let Some((mut store, srv, _conf)) =
        bucket_server::<R>("losing_the_store_during_a_download", "ftp-lost")
    else {
        return;
    };
    let big = pattern(43, 96 << 20);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.upload("STOR big.bin", &big).expect("STOR");
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut head = vec![0u8; 1 << 20];
    t.stream.read_exact(&mut head).expect("the first MiB");
    for volume in 0..ftp_tests::seaweed::VOLUME_SERVERS {
        store.kill_volume(volume);
    }
    let began = Instant::now();
    let mut rest = Vec::new();
    let _ = t.stream.read_to_end(&mut rest);
    drop(t);
    // The daemon gives up on a silent store after its I/O timeout.
    c.socket()
        .set_read_timeout(Some(ftp_host::storage::s3::IO_TIMEOUT * 2))
        .expect("timeout");
    let r = c.read_reply();
    let got = head.len() + rest.len();
    if r.code == 226 {
        // The gateway had read the whole object before its volumes died:
        // then it must be the whole object, and the next download, which
        // needs them, must fail.
        head.extend_from_slice(&rest);
        assert_bytes(&head, &big, "a download completed before the store died");
        let data = c.data();
        let mut t = c.start("RETR big.bin", data).map(Some).unwrap_or_else(|r| {
            assert!(r.code == 451 || r.code == 550, "RETR refused: {r}");
            None
        });
        if let Some(t) = t.as_mut() {
            let mut all = Vec::new();
            let _ = t.stream.read_to_end(&mut all);
            assert!(all.len() < big.len(), "the whole object without a store");
        }
        if t.take().is_some() {
            let r = c.read_reply();
            assert!(r.code == 426 || r.code == 451, "{r}");
        }
    } else {
        assert!(
            r.code == 426 || r.code == 451 || r.code == 550,
            "after {got} of {} bytes: {r}",
            big.len()
        );
        assert!(got < big.len(), "the whole file arrived: {r}");
    }
    assert!(
        began.elapsed() < ftp_host::storage::s3::IO_TIMEOUT * 4,
        "the failure took {:?}",
        began.elapsed()
    );
    c.check("NOOP", "200 NOOP ok.");
    c.expect("PWD", 257);
    let list = String::from_utf8(c.download("NLST").expect("NLST")).expect("UTF-8");
    assert!(list.contains("big.bin"), "{list}");
    c.quit();
}

/// `/readyz` says whether the bucket answers: 200 while it does, 503 once
/// the store is gone (within the probe's 5 s cache), while `/healthz`
/// stays 200.
fn readyz_follows_the_store<R: Runtime>() {
    let Some(mut store) = SeaweedFs::start("readyz_follows_the_store") else {
        return;
    };
    store.bucket("ftp-ready");
    let conf = Conf::new(&format!(
        "[storage]\nurl = \"s3://ftp-ready/served\"\ns3_endpoint = \"{}\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        store.endpoint()
    ));
    let srv = TestServer::builder()
        .args(&["--config", conf.path(), "--metrics", "127.0.0.1:0"])
        .start::<R>();
    let addr = srv.metrics_addr().expect("the endpoint's address");
    let status = |path: &str| -> u16 {
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(ftp_tests::TIMEOUT * 8))
            .expect("timeout");
        write!(s, "GET {path} HTTP/1.1\r\n\r\n").expect("send");
        let mut text = String::new();
        s.read_to_string(&mut text).expect("answer");
        text.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0)
    };
    assert_eq!(status("/readyz"), 200);
    store.kill();
    let deadline = Instant::now() + ftp_tests::TIMEOUT * 8;
    while status("/readyz") != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz still 200 without the store"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert_eq!(status("/healthz"), 200);
}
