//! The S3 storage back-end ([`ftp_host::storage::S3Storage`]) against a
//! real SeaweedFS cluster on loopback ([`ftp_tests::seaweed`]): every
//! `Storage` call an FTP command makes. Without `weed` the test says
//! `SKIP:` and passes, unless `FTP_TEST_REQUIRE_CLIENTS=1`.

use std::io::Read;

use ftp_host::storage::s3::PART_SIZE;
use ftp_host::storage::{Blocking, S3Config, S3Storage, Storage};
use ftp_proto::{FsError, StoreMode, VirtualPath};
use ftp_tests::seaweed::SeaweedFs;

fn p(s: &str) -> VirtualPath {
    VirtualPath::root().resolve(s).unwrap()
}

fn put(fs: &dyn Storage, path: &str, data: &[u8]) {
    let mut up = fs.open_write(&p(path), StoreMode::Replace, None).unwrap();
    assert_eq!(up.blocking(), Blocking::MayStall);
    up.write_all(data).unwrap();
    up.commit().unwrap();
}

fn get(fs: &dyn Storage, path: &str, offset: u64) -> Result<Vec<u8>, FsError> {
    let mut r = fs.open_read(&p(path), offset)?;
    assert_eq!(r.blocking(), Blocking::MayStall);
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    Ok(out)
}

fn names(fs: &dyn Storage, path: &str) -> Vec<(String, bool)> {
    let mut reader = fs.read_dir(&p(path)).unwrap();
    assert_eq!(reader.blocking(), Blocking::MayStall);
    let mut all = Vec::new();
    loop {
        let batch = reader.next_batch(100).unwrap();
        if batch.is_empty() {
            break;
        }
        assert!(batch.len() <= 100);
        all.extend(batch.into_iter().map(|e| (e.name, e.meta.is_dir())));
    }
    all.sort();
    all
}

/// An upload of more than one part, never committed nor aborted: what a
/// daemon killed mid-upload leaves (the handle is leaked, so that its drop
/// does not abort it).
fn leave_upload(fs: &dyn Storage, path: &str) {
    let mut up = fs.open_write(&p(path), StoreMode::Replace, None).unwrap();
    // The first part is kept until a second one is needed.
    for _ in 0..2 {
        up.write_all(&vec![1u8; PART_SIZE + 4096]).unwrap();
    }
    std::mem::forget(up);
}

/// Waits (within a deadline) until `bucket` has `n` multipart uploads in
/// progress: the first part is sent in the background.
fn wait_uploads(store: &SeaweedFs, bucket: &str, n: usize) -> Vec<String> {
    let deadline = std::time::Instant::now() + ftp_tests::TIMEOUT;
    loop {
        let uploads = store.multipart_uploads(bucket);
        if uploads.len() == n || std::time::Instant::now() > deadline {
            return uploads;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn uploads_left_behind_are_aborted() {
    let Some(weed) = SeaweedFs::start("uploads_left_behind_are_aborted") else {
        return;
    };
    weed.bucket("ftp-stale");
    let served = connect(&weed, "ftp-stale", "served");
    let other = connect(&weed, "ftp-stale", "servedx");
    leave_upload(&served, "/a.bin");
    served.make_dir(&p("/d"), None).unwrap();
    leave_upload(&served, "/d/b c.bin");
    leave_upload(&other, "/x.bin");
    let mut uploads = wait_uploads(&weed, "ftp-stale", 3);
    uploads.sort();
    assert_eq!(
        uploads,
        ["served/a.bin", "served/d/b c.bin", "servedx/x.bin"]
    );

    // Younger than the age: found, kept.
    let hour = std::time::Duration::from_secs(3600);
    let report = served.abort_stale_uploads(hour).unwrap();
    assert_eq!((report.found, report.aborted, report.failed), (2, 0, 0));
    assert_eq!(weed.multipart_uploads("ftp-stale").len(), 3);

    // Old enough: aborted, under the served prefix only (`servedx/` is
    // another prefix, not a folder of `served/`).
    let report = served
        .abort_stale_uploads(std::time::Duration::ZERO)
        .unwrap();
    assert_eq!((report.found, report.aborted, report.failed), (2, 2, 0));
    assert_eq!(weed.multipart_uploads("ftp-stale"), ["servedx/x.bin"]);
    assert_eq!(served.stat(&p("/a.bin")), Err(FsError::NotFound));
    let report = other
        .abort_stale_uploads(std::time::Duration::ZERO)
        .unwrap();
    assert_eq!(report.aborted, 1);
    assert!(weed.multipart_uploads("ftp-stale").is_empty());
}

fn connect(store: &SeaweedFs, bucket: &str, prefix: &str) -> S3Storage {
    S3Storage::connect(&S3Config {
        bucket: bucket.into(),
        prefix: prefix.into(),
        endpoint: Some(store.endpoint()),
        region: "us-east-1".into(),
        access_key_id: "any".into(),
        secret_access_key: "any".into(),
        session_token: None,
        abort_uploads_after: None,
    })
    .unwrap()
}

#[test]
fn s3_storage_against_seaweedfs() {
    let Some(weed) = SeaweedFs::start("s3_storage_against_seaweedfs") else {
        return;
    };
    weed.bucket("ftp-storage");
    let s3 = connect(&weed, "ftp-storage", "served");
    let fs: &dyn Storage = &s3;

    // Folders and files, stat, SIZE/MDTM metadata.
    assert_eq!(names(fs, "/"), vec![]);
    fs.make_dir(&p("/a"), None).unwrap();
    assert_eq!(fs.make_dir(&p("/a"), None), Err(FsError::AlreadyExists));
    assert_eq!(fs.make_dir(&p("/x/y"), None), Err(FsError::NotFound));
    put(fs, "/a/f.txt", b"hello world");
    let meta = fs.stat(&p("/a/f.txt")).unwrap();
    assert!(meta.is_file() && meta.size == 11 && meta.modified.is_some());
    assert!(fs.stat(&p("/a")).unwrap().is_dir());
    assert_eq!(fs.stat(&p("/nope")), Err(FsError::NotFound));
    assert_eq!(names(fs, "/"), vec![("a".into(), true)]);
    assert_eq!(names(fs, "/a"), vec![("f.txt".into(), false)]);
    assert_eq!(names(fs, "/a/f.txt"), vec![("f.txt".into(), false)]);

    // Ranged reads.
    assert_eq!(get(fs, "/a/f.txt", 0).unwrap(), b"hello world");
    assert_eq!(get(fs, "/a/f.txt", 6).unwrap(), b"world");
    assert_eq!(get(fs, "/a/f.txt", 99).unwrap(), b"");
    assert_eq!(get(fs, "/a", 0), Err(FsError::IsADirectory));
    assert_eq!(get(fs, "/nope", 0), Err(FsError::NotFound));

    // An aborted or dropped upload leaves the previous object whole and
    // no object under a new name.
    let mut up = fs
        .open_write(&p("/a/f.txt"), StoreMode::Replace, None)
        .unwrap();
    up.write_all(b"replacement").unwrap();
    up.abort();
    let mut up = fs
        .open_write(&p("/a/new.txt"), StoreMode::Replace, None)
        .unwrap();
    up.write_all(&vec![7u8; PART_SIZE + 1000]).unwrap();
    drop(up);
    assert_eq!(get(fs, "/a/f.txt", 0).unwrap(), b"hello world");
    assert_eq!(fs.stat(&p("/a/new.txt")), Err(FsError::NotFound));
    assert_eq!(
        fs.open_write(&p("/a/f.txt"), StoreMode::Append, None).err(),
        Some(FsError::PermissionDenied)
    );

    // A multipart upload (more than one part) round-trips.
    let big: Vec<u8> = (0..PART_SIZE * 2 + 12345)
        .map(|i| (i % 251) as u8)
        .collect();
    let mut up = fs
        .open_write(&p("/a/big.bin"), StoreMode::Replace, None)
        .unwrap();
    for chunk in big.chunks(64 * 1024) {
        up.write_all(chunk).unwrap();
    }
    up.commit().unwrap();
    assert_eq!(fs.stat(&p("/a/big.bin")).unwrap().size, big.len() as u64);
    assert_eq!(get(fs, "/a/big.bin", 1_000_000).unwrap(), &big[1_000_000..]);
    fs.remove_file(&p("/a/big.bin")).unwrap();

    // Unique names.
    let up = fs.open_write(&p("/a"), StoreMode::Unique, None).unwrap();
    let name = up.name().to_owned();
    up.commit().unwrap();
    fs.remove_file(&p(&format!("/a/{name}"))).unwrap();

    // RMD refuses a non-empty folder; renames copy then delete; a
    // non-empty folder is not renamed, an empty one is.
    assert_eq!(fs.remove_dir(&p("/a")), Err(FsError::NotEmpty));
    fs.rename(&p("/a/f.txt"), &p("/a/g.txt")).unwrap();
    assert_eq!(fs.stat(&p("/a/f.txt")), Err(FsError::NotFound));
    assert_eq!(get(fs, "/a/g.txt", 0).unwrap(), b"hello world");
    assert_eq!(fs.rename(&p("/a"), &p("/b")), Err(FsError::NotEmpty));
    fs.make_dir(&p("/e"), None).unwrap();
    fs.rename(&p("/e"), &p("/e2")).unwrap();
    assert!(fs.stat(&p("/e2")).unwrap().is_dir());
    assert_eq!(fs.stat(&p("/e")), Err(FsError::NotFound));
    fs.remove_dir(&p("/e2")).unwrap();
    assert_eq!(fs.remove_dir(&p("/e2")), Err(FsError::NotFound));
    assert_eq!(
        fs.set_modified(&p("/a/g.txt"), ftp_proto::UnixTime(0)),
        Err(FsError::PermissionDenied)
    );

    // A subtree (a user's home) is confined to its prefix.
    let home = fs.subtree(&p("/a")).unwrap();
    assert_eq!(names(home.as_ref(), "/"), vec![("g.txt".into(), false)]);
    assert_eq!(get(home.as_ref(), "/../a/g.txt", 0), Err(FsError::NotFound));
    assert_eq!(get(home.as_ref(), "/../g.txt", 0).unwrap(), b"hello world");
    put(home.as_ref(), "/h.txt", b"home");
    assert_eq!(get(fs, "/a/h.txt", 0).unwrap(), b"home");
    assert_eq!(home.stat(&p("/a")), Err(FsError::NotFound));
    assert_eq!(
        fs.subtree(&p("/a/g.txt")).err(),
        Some(FsError::NotADirectory)
    );
    assert_eq!(fs.subtree(&p("/zz")).err(), Some(FsError::NotFound));

    // The served prefix confines too: another prefix of the bucket is not
    // seen, and the whole bucket shows the prefix as a folder.
    let whole = connect(&weed, "ftp-storage", "");
    assert_eq!(names(&whole, "/"), vec![("served".into(), true)]);
    assert_eq!(get(&whole, "/served/a/h.txt", 0).unwrap(), b"home");
    whole.make_dir(&p("/other"), None).unwrap();
    assert_eq!(names(fs, "/"), vec![("a".into(), true)]);

    // Listings page: more keys than one ListObjectsV2 page (1000).
    fs.make_dir(&p("/many"), None).unwrap();
    std::thread::scope(|scope| {
        for t in 0..4 {
            scope.spawn(move || {
                for i in (t..1010).step_by(4) {
                    put(fs, &format!("/many/k{i:04}"), b"");
                }
            });
        }
    });
    let listed = names(fs, "/many");
    assert_eq!(listed.len(), 1010);
    assert_eq!(listed[0].0, "k0000");
    assert_eq!(listed[1009].0, "k1009");
}

/// Storages come and go in one process (servers started and stopped,
/// as in the tests) while another one works: it must not notice. Each
/// has its own runtime, so the connections it keeps to the store must be
/// its own too; one made on a runtime that is shutting down fails the
/// request that reuses it ("runtime dropped the dispatch task").
#[test]
fn storages_that_come_and_go_leave_the_others_working() {
    let Some(weed) = SeaweedFs::start("storages_that_come_and_go_leave_the_others_working") else {
        return;
    };
    weed.bucket("ftp-two");
    let steady = connect(&weed, "ftp-two", "steady");
    put(&steady, "/g.txt", b"steady");
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            for round in 0..30 {
                let passing = connect(&weed, "ftp-two", &format!("passing{round}"));
                put(&passing, "/f.txt", b"passing");
                assert_eq!(get(&passing, "/f.txt", 0).unwrap(), b"passing");
            }
            done.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut round = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            assert_eq!(
                get(&steady, "/g.txt", 0),
                Ok(b"steady".to_vec()),
                "request {round} while other storages come and go"
            );
            assert!(steady.stat(&p("/g.txt")).is_ok(), "stat {round}");
            round += 1;
        }
    });
    steady
        .abort_stale_uploads(std::time::Duration::ZERO)
        .expect("a sweep after the other storages went away");
}
