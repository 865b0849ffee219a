//! Back-ends whose reads and writes may stall
//! ([`Blocking::MayStall`](ftp_host::storage::Blocking::MayStall), as an
//! object store's network round trips do): a test double wraps the served
//! folder and makes the first read (or write) of a transfer wait until the
//! test lets it go. While it waits, another session must get its reply
//! from the daemon's only loop thread (`--threads` is 1): the stalled call
//! was made off the loop. The release comes only after that reply (or
//! after the client gave up waiting for it), so nothing depends on timing.
//!
//! With `FTP_TEST_STORAGE=s3` the double wraps the daemon's S3 storage of
//! a bucket instead of the folder's.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::time::Duration;

use ftp_host::daemon::Runtime;
use ftp_host::storage::{DirReader, ReadFile, ReadObject, Storage, Upload, WriteObject};
use ftp_proto::{FsError, Metadata, StoreMode, UnixTime, VirtualPath};
use ftp_tests::data::pattern;
use ftp_tests::{Data, TIMEOUT, TestServer, assert_bytes, daemon_tests};

daemon_tests! {
    any_storage;
    stalled_read_leaves_the_loop_free,
    stalled_write_leaves_the_loop_free,
    abort_while_a_read_stalls,
}

/// Where the first call of the double waits until the test opens it.
#[derive(Debug)]
struct Gate {
    /// Told once, when the first call arrives.
    entered: Mutex<Option<mpsc::Sender<()>>>,
    open: Mutex<bool>,
    opened: Condvar,
}

/// How long a call waits at a gate the test never opened (a failed test
/// still ends).
const GATE_LIMIT: Duration = Duration::from_secs(60);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gate {
    /// A closed gate, and what says that a call arrived.
    fn new() -> (Arc<Gate>, mpsc::Receiver<()>) {
        let (tx, rx) = mpsc::channel();
        let gate = Gate {
            entered: Mutex::new(Some(tx)),
            open: Mutex::new(false),
            opened: Condvar::new(),
        };
        (Arc::new(gate), rx)
    }

    /// A call of the double: says it arrived (the first time), then waits
    /// until the gate is open.
    fn pass(&self) {
        if let Some(tx) = lock(&self.entered).take() {
            let _ = tx.send(());
        }
        let open = lock(&self.open);
        let _ = self
            .opened
            .wait_timeout_while(open, GATE_LIMIT, |open| !*open);
    }

    fn open(&self) {
        *lock(&self.open) = true;
        self.opened.notify_all();
    }
}

/// The served storage as a slow object store would serve it: the same
/// files, but reads and writes go through objects that do not say their
/// calls are bounded (so they may stall), and that wait at the gate.
#[derive(Debug)]
struct Remote {
    inner: Arc<dyn Storage>,
    gate: Arc<Gate>,
}

impl Storage for Remote {
    fn stat(&self, path: &VirtualPath) -> Result<Metadata, FsError> {
        self.inner.stat(path)
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Box<dyn DirReader>, FsError> {
        self.inner.read_dir(path)
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadFile, FsError> {
        let file = self.inner.open_read(path, offset)?;
        let gate = self.gate.clone();
        Ok(ReadFile::from_object(Box::new(RemoteRead { file, gate })))
    }

    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
        umask: Option<u32>,
    ) -> Result<Upload, FsError> {
        let upload = self.inner.open_write(path, mode, umask)?;
        let gate = self.gate.clone();
        Ok(Upload::new(Box::new(RemoteWrite { upload, gate })))
    }

    fn make_dir(&self, path: &VirtualPath, umask: Option<u32>) -> Result<(), FsError> {
        self.inner.make_dir(path, umask)
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.inner.remove_dir(path)
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<(), FsError> {
        self.inner.remove_file(path)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        self.inner.rename(from, to)
    }

    fn set_permissions(&self, path: &VirtualPath, mode: u32) -> Result<(), FsError> {
        self.inner.set_permissions(path, mode)
    }

    fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<(), FsError> {
        self.inner.set_modified(path, time)
    }

    fn subtree(&self, path: &VirtualPath) -> Result<Arc<dyn Storage>, FsError> {
        Ok(Arc::new(Remote {
            inner: self.inner.subtree(path)?,
            gate: self.gate.clone(),
        }))
    }
}

/// A download from [`Remote`]: the default of [`ReadObject::blocking`].
#[derive(Debug)]
struct RemoteRead {
    file: ReadFile,
    gate: Arc<Gate>,
}

impl ReadObject for RemoteRead {
    fn size(&self) -> u64 {
        self.file.size()
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.gate.pass();
        self.file.read(buf)
    }
}

/// An upload to [`Remote`]: the default of [`WriteObject::blocking`];
/// dropping it drops (and so aborts) the local upload inside.
#[derive(Debug)]
struct RemoteWrite {
    upload: Upload,
    gate: Arc<Gate>,
}

impl WriteObject for RemoteWrite {
    fn name(&self) -> &str {
        self.upload.name()
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.gate.pass();
        self.upload.write_all(data)
    }

    fn commit(self: Box<Self>) -> Result<(), FsError> {
        self.upload.commit()
    }

    fn abort(self: Box<Self>) {
        self.upload.abort()
    }
}

/// A server on [`Remote`] (one loop thread: the default `--threads 1`),
/// with `remote.bin` holding `data`, and its gate.
fn remote_server<R: Runtime>(
    args: &[&str],
    data: &[u8],
) -> (TestServer, Arc<Gate>, mpsc::Receiver<()>) {
    let (gate, entered) = Gate::new();
    let wrapped = gate.clone();
    let srv = TestServer::builder()
        .args(args)
        .file("remote.bin", data)
        .storage(move |inner| {
            Arc::new(Remote {
                inner,
                gate: wrapped,
            })
        })
        .start::<R>();
    (srv, gate, entered)
}

/// With a call stalled at `gate`, `other` sends NOOP; the gate opens once
/// the reply came (or the client gave up on it), and the reply must be
/// `200`.
fn noop_while_stalled(other: &mut ftp_tests::Client, gate: &Gate) {
    other.send("NOOP");
    let reply = other.try_read_reply();
    gate.open();
    let reply = reply.unwrap_or_else(|e| {
        panic!("no reply to NOOP while a store call stalled (was it made on the loop?): {e}")
    });
    assert_eq!(reply.code, 200, "{reply}");
}

fn stalled_read_leaves_the_loop_free<R: Runtime>() {
    let data = pattern(51, 1_000_000);
    let (srv, gate, entered) = remote_server::<R>(&[], &data);
    let mut other = srv.login();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let t = c
        .start("RETR remote.bin", Data::Passive(addr))
        .expect("RETR");
    entered
        .recv_timeout(TIMEOUT)
        .expect("the download's first read");
    noop_while_stalled(&mut other, &gate);
    let mut got = Vec::new();
    { t.stream }.read_to_end(&mut got).expect("download");
    assert_bytes(&got, &data, "download through a store that may stall");
    assert_eq!(c.read_reply().code, 226);
    other.quit();
    c.quit();
}

fn stalled_write_leaves_the_loop_free<R: Runtime>() {
    let data = pattern(52, 1_500_000);
    let (srv, gate, entered) = remote_server::<R>(&["-w"], b"");
    let mut other = srv.login();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let t = c.start("STOR up.bin", Data::Passive(addr)).expect("STOR");
    // The daemon stops reading while chunks wait for the store: send from
    // a thread of our own.
    let sent = data.clone();
    let sender = std::thread::spawn(move || {
        let mut stream = t.stream;
        stream.write_all(&sent)?;
        stream.shutdown(Shutdown::Write)?;
        // Wait for the daemon's close before dropping the connection.
        stream.read_to_end(&mut Vec::new()).map(drop)
    });
    entered
        .recv_timeout(TIMEOUT)
        .expect("the upload's first write");
    noop_while_stalled(&mut other, &gate);
    sender
        .join()
        .expect("sender thread")
        .expect("sending the upload");
    assert_eq!(c.read_reply().code, 226);
    let stored = srv.read_file("up.bin").expect("the stored file");
    assert_bytes(&stored, &data, "upload through a store that may stall");
    other.quit();
    c.quit();
}

fn abort_while_a_read_stalls<R: Runtime>() {
    let data = pattern(53, 300_000);
    let (srv, gate, entered) = remote_server::<R>(&[], &data);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let addr = c.pasv();
    let t = c
        .start("RETR remote.bin", Data::Passive(addr))
        .expect("RETR");
    entered
        .recv_timeout(TIMEOUT)
        .expect("the download's first read");
    // ABOR is answered while the read still waits, and the session goes
    // on; the stalled read ends on its own thread once let go.
    c.send("ABOR");
    let first = c.try_read_reply();
    let second = c.try_read_reply();
    gate.open();
    let first = first.expect("a reply to ABOR while the read stalls");
    let second = second.expect("a second reply to ABOR");
    assert_eq!((first.code, second.code), (426, 226), "{first} / {second}");
    drop(t);
    c.expect("NOOP", 200);
    // The same file downloads in full afterwards.
    assert_bytes(&c.retr("remote.bin"), &data, "download after the abort");
    c.quit();
}
