//! A daemon running in-process on a served temporary folder, or on a
//! prefix of a bucket ([`crate::backend`]).

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use ftp_host::cli::{Invocation, parse_args};
use ftp_host::daemon::{Listener, Runtime, Shutdown};
use ftp_host::server::Server;
use ftp_host::storage::Storage;

use crate::backend::{self, Backend};
use crate::client::Client;
use crate::served::Served;
use crate::tree::Entry;

/// How long a daemon may take to return from `serve` after its shutdown
/// was triggered (the builder sets a shutdown grace of 1 s).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// An account for the users file.
#[derive(Clone, Debug)]
struct User {
    name: String,
    password: String,
    home: Option<String>,
    write: bool,
    /// More TOML lines for its `[[user]]` table.
    keys: String,
}

/// How to start a [`TestServer`].
#[derive(Debug, Default)]
pub struct Builder {
    args: Vec<String>,
    root: Option<PathBuf>,
    ipv6: bool,
    extra: Vec<String>,
    users: Vec<User>,
    files: Vec<(String, Vec<u8>)>,
    dirs: Vec<String>,
    implicit_tls: bool,
    storage: Option<WrapStorage>,
}

/// A function from the served folder's storage to the one to serve.
type StorageFn = dyn FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage> + Send;

/// What [`Builder::storage`] does to the served folder's storage.
struct WrapStorage(Box<StorageFn>);

impl std::fmt::Debug for WrapStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrapStorage")
    }
}

impl Builder {
    /// A server with default options on a new temporary folder.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Adds command-line arguments (before the served folder).
    pub fn args(mut self, args: &[&str]) -> Builder {
        self.args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// Serves `dir` instead of a new temporary folder (on the local disk
    /// only: panics when the server would serve a bucket).
    pub fn root(mut self, dir: &Path) -> Builder {
        self.root = Some(dir.to_path_buf());
        self
    }

    /// Also listens on `127.0.0.1:0` for implicit FTPS (TLS from the first
    /// byte; see [`TestServer::implicit_addr`]). Needs `--tls-cert` and
    /// `--tls-key` among the arguments.
    pub fn implicit_tls(mut self) -> Builder {
        self.implicit_tls = true;
        self
    }

    /// Also listens on `[::1]:0` (see [`TestServer::addr6`]).
    pub fn ipv6(mut self) -> Builder {
        self.ipv6 = true;
        self
    }

    /// Also listens on `addr` (for example `[::ffff:127.0.0.1]:0`, an
    /// IPv6 socket for IPv4-mapped addresses); see
    /// [`TestServer::extra_addr`].
    pub fn listen(mut self, addr: &str) -> Builder {
        self.extra.push(addr.into());
        self
    }

    /// Adds an account to a users file passed with `--users` (the hash is
    /// made with [`ftp_host::users::hash_password`]). `home` is created
    /// under the served folder (or prefix).
    pub fn user(mut self, name: &str, password: &str, home: Option<&str>, write: bool) -> Builder {
        self.users.push(User {
            name: name.into(),
            password: password.into(),
            home: home.map(Into::into),
            write,
            keys: String::new(),
        });
        self
    }

    /// Adds an account as [`Builder::user`] does, with more keys of its
    /// `[[user]]` table (TOML lines such as `quota_files = 3`).
    pub fn user_with(
        mut self,
        name: &str,
        password: &str,
        home: Option<&str>,
        write: bool,
        keys: &str,
    ) -> Builder {
        self = self.user(name, password, home, write);
        if let Some(user) = self.users.last_mut() {
            user.keys = keys.to_string();
        }
        self
    }

    /// Creates a file (and its parent folders) in the served folder (or
    /// prefix) before the server starts.
    pub fn file(mut self, path: &str, contents: impl AsRef<[u8]>) -> Builder {
        self.files.push((path.into(), contents.as_ref().to_vec()));
        self
    }

    /// Serves what `wrap` makes of the served storage (a
    /// [`ftp_host::storage::LocalFs`], or the bucket's) instead of it: a
    /// test double of another back-end, say one whose reads stall.
    pub fn storage(
        mut self,
        wrap: impl FnOnce(Arc<dyn Storage>) -> Arc<dyn Storage> + Send + 'static,
    ) -> Builder {
        self.storage = Some(WrapStorage(Box::new(wrap)));
        self
    }

    /// Creates a folder (and its parents) in the served folder (or
    /// prefix; as marker objects `name/`, which `MKD` makes).
    pub fn dir(mut self, path: &str) -> Builder {
        self.dirs.push(path.into());
        self
    }

    /// Parses the arguments as the daemons do, binds the listeners and runs
    /// `R::serve` on a thread. Serves a new prefix of the shared bucket
    /// instead of a folder when [`crate::backend`] says so (the folder
    /// is then passed, but stays empty).
    pub fn start<R: Runtime>(mut self) -> TestServer {
        let backend = backend::for_new_server();
        // A last argument that is an absolute path to an existing folder is
        // the folder to serve (as on the daemons' command line).
        if self.root.is_none() {
            if let Some(last) = self.args.last() {
                let p = Path::new(last);
                if p.is_absolute() && p.is_dir() {
                    self.root = Some(p.to_path_buf());
                    self.args.pop();
                }
            }
        }
        let (tempdir, root) = match &self.root {
            Some(root) => (None, root.clone()),
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("ftp-tests-root-")
                    .tempdir()
                    .expect("temporary folder");
                let root = dir.path().to_path_buf();
                (Some(dir), root)
            }
        };
        let root = fs::canonicalize(&root).expect("served folder");
        let served = match backend {
            Backend::Local => Served::Folder(root.clone()),
            Backend::S3 => {
                assert!(
                    self.root.is_none(),
                    "this test serves a folder of its own, which {}=s3 cannot do",
                    backend::STORAGE_VAR
                );
                Served::Bucket(backend::new_prefix())
            }
        };
        for dir in &self.dirs {
            served.make_dir(dir);
        }
        for (path, contents) in &self.files {
            served.write_file(path, contents);
        }

        let mut args: Vec<String> = vec!["ftpd".into()];
        if !self.args.iter().any(|a| a.starts_with("--shutdown-grace")) {
            args.push("--shutdown-grace=1".into());
        }
        args.extend(self.args.iter().cloned());
        let etc = if self.users.is_empty() && backend == Backend::Local {
            None
        } else {
            Some(
                tempfile::Builder::new()
                    .prefix("ftp-tests-etc-")
                    .tempdir()
                    .expect("temporary folder"),
            )
        };
        if let (Served::Bucket(objects), Some(etc)) = (&served, &etc) {
            assert!(
                !self.args.iter().any(|a| a.starts_with("--config")),
                "this test passes --config, which {}=s3 cannot add its [storage] to",
                backend::STORAGE_VAR
            );
            let path = etc.path().join("storage.toml");
            fs::write(&path, backend::storage_table(objects)).expect("write configuration file");
            args.push("--config".into());
            args.push(path.to_str().expect("UTF-8 temp path").into());
        }
        if let (false, Some(etc)) = (self.users.is_empty(), &etc) {
            let mut text = String::new();
            for user in &self.users {
                let hash = ftp_host::users::hash_password(&user.password).expect("hash");
                text.push_str(&format!(
                    "[[user]]\nname = \"{}\"\npassword = \"{hash}\"\nwrite = {}\n",
                    user.name, user.write
                ));
                if let Some(home) = &user.home {
                    served.make_dir(home);
                    text.push_str(&format!("home = \"{home}\"\n"));
                }
                text.push_str(&user.keys);
                text.push('\n');
            }
            let path = etc.path().join("users.toml");
            fs::write(&path, text).expect("write users file");
            args.push("--users".into());
            args.push(path.to_str().expect("UTF-8 temp path").into());
        }
        args.push(root.to_str().expect("UTF-8 temp path").into());

        let config = match parse_args(&args) {
            Ok(Invocation::Serve(config)) => config,
            Ok(other) => panic!("{args:?}: not a serve invocation: {other:?}"),
            Err(e) => panic!("{args:?}: {e}"),
        };

        let mut listeners = Vec::new();
        let v4 = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = v4.local_addr().expect("local address");
        listeners.push(v4);
        let mut addr6 = None;
        if self.ipv6 {
            match TcpListener::bind("[::1]:0") {
                Ok(l) => {
                    addr6 = Some(l.local_addr().expect("local address"));
                    listeners.push(l);
                }
                Err(e) => eprintln!("[::1] unavailable: {e}"),
            }
        }
        let mut extra = Vec::new();
        for addr in &self.extra {
            match TcpListener::bind(addr.as_str()) {
                Ok(l) => {
                    extra.push(Some(l.local_addr().expect("local address")));
                    listeners.push(l);
                }
                Err(e) => {
                    eprintln!("{addr} unavailable: {e}");
                    extra.push(None);
                }
            }
        }
        for l in &listeners {
            l.set_nonblocking(true).expect("non-blocking listener");
        }
        let mut listeners: Vec<Listener> = listeners.into_iter().map(Listener::from).collect();
        let mut implicit = None;
        if self.implicit_tls {
            let socket = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
            socket.set_nonblocking(true).expect("non-blocking listener");
            implicit = Some(socket.local_addr().expect("local address"));
            listeners.push(Listener {
                socket,
                implicit_tls: true,
            });
        }

        let mut server = Server::new(config).expect("Server::new");
        if let Some(WrapStorage(wrap)) = self.storage.take() {
            let fresh = Arc::get_mut(&mut server).expect("a new server has one owner");
            fresh.storage = wrap(fresh.storage.clone());
        }
        let shutdown = Shutdown::new();
        let metrics = server.config.metrics.map(|addr| {
            let listener = ftp_host::http::bind(addr).expect("bind the metrics address");
            ftp_host::http::spawn(listener, server.clone(), shutdown.clone())
                .expect("start the metrics endpoint")
        });
        let (tx, rx) = mpsc::channel();
        let thread = {
            let server = server.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name(format!("serve-{}", std::any::type_name::<R>()))
                .spawn(move || {
                    let result = R::serve(server, listeners, shutdown);
                    let _ = tx.send(result);
                })
                .expect("spawn server thread")
        };
        TestServer {
            addr,
            addr6,
            implicit,
            extra,
            root,
            served,
            server,
            shutdown,
            done: Mutex::new(Done::Running(rx)),
            thread: Some(thread),
            metrics,
            _tempdir: tempdir,
            _etc: etc,
        }
    }
}

/// How the serving thread ended, once it did.
#[derive(Debug)]
enum Done {
    Running(mpsc::Receiver<io::Result<()>>),
    Ended(Result<(), String>),
}

/// A daemon serving a folder on loopback until dropped. Dropping it
/// triggers the shutdown and fails the test if `serve` does not return
/// `Ok(())` within [`STOP_TIMEOUT`].
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    addr6: Option<SocketAddr>,
    implicit: Option<SocketAddr>,
    extra: Vec<Option<SocketAddr>>,
    root: PathBuf,
    served: Served,
    server: Arc<Server>,
    shutdown: Shutdown,
    done: Mutex<Done>,
    thread: Option<JoinHandle<()>>,
    /// The `--metrics` endpoint, stopped after the daemon.
    metrics: Option<ftp_host::http::HttpEndpoint>,
    _tempdir: Option<tempfile::TempDir>,
    _etc: Option<tempfile::TempDir>,
}

impl TestServer {
    /// A server with `args` on a new temporary folder, or on the folder
    /// the last argument names (an absolute path to an existing folder).
    pub fn start<R: Runtime>(args: &[&str]) -> TestServer {
        Builder::new().args(args).start::<R>()
    }

    /// A builder for more options.
    pub fn builder() -> Builder {
        Builder::new()
    }

    /// The IPv4 address (127.0.0.1) the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The IPv6 address, when [`Builder::ipv6`] was asked for and `::1` is
    /// available.
    pub fn addr6(&self) -> Option<SocketAddr> {
        self.addr6
    }

    /// The implicit-FTPS address, when [`Builder::implicit_tls`] was asked
    /// for.
    pub fn implicit_addr(&self) -> Option<SocketAddr> {
        self.implicit
    }

    /// The address of the `i`-th [`Builder::listen`] listener, if it
    /// could be bound.
    pub fn extra_addr(&self, i: usize) -> Option<SocketAddr> {
        self.extra.get(i).copied().flatten()
    }

    /// The address of the `--metrics` endpoint, when one was asked for.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().and_then(|m| m.addr())
    }

    /// The users file written for [`Builder::user`] accounts, for tests
    /// that change it and reload.
    pub fn users_file(&self) -> Option<PathBuf> {
        self._etc.as_ref().map(|etc| etc.path().join("users.toml"))
    }

    /// Begins the shutdown (as SIGTERM does) without waiting for it.
    pub fn begin_shutdown(&self) {
        self.shutdown.trigger();
    }

    /// The served folder (canonical); panics if the server serves a
    /// bucket (use [`TestServer::read_file`] and the like, which work on
    /// both).
    pub fn root(&self) -> &Path {
        self.local_only("root");
        &self.root
    }

    /// A path in the served folder; panics if the server serves a bucket,
    /// as [`TestServer::root`].
    pub fn path(&self, rel: &str) -> PathBuf {
        self.local_only("path");
        self.root.join(rel)
    }

    /// Panics if the server serves a bucket.
    fn local_only(&self, what: &str) {
        assert!(
            !self.serves_a_bucket(),
            "TestServer::{what}: this server serves a bucket, not a folder"
        );
    }

    /// Whether the server serves a prefix of a bucket (`--storage s3://`)
    /// rather than a folder.
    pub fn serves_a_bucket(&self) -> bool {
        matches!(self.served, Served::Bucket(_))
    }

    /// The content of the file `rel` (relative to the served folder or
    /// prefix), `None` if there is no such file.
    pub fn read_file(&self, rel: &str) -> Option<Vec<u8>> {
        self.served.read_file(rel)
    }

    /// Writes the file `rel`, making the folders above it (as marker
    /// objects in a bucket).
    pub fn write_file(&self, rel: &str, data: impl AsRef<[u8]>) {
        self.served.write_file(rel, data.as_ref());
    }

    /// Writes many files at once (on several threads for a bucket, one
    /// request each).
    pub fn write_files(&self, files: &[(String, Vec<u8>)]) {
        const THREADS: usize = 8;
        let chunk = files.len().div_ceil(THREADS).max(1);
        std::thread::scope(|s| {
            for part in files.chunks(chunk) {
                s.spawn(move || {
                    for (rel, data) in part {
                        self.served.write_file(rel, data);
                    }
                });
            }
        });
    }

    /// Makes the folder `rel` and its parents.
    pub fn make_dir(&self, rel: &str) {
        self.served.make_dir(rel);
    }

    /// Removes the file or empty folder `rel`, if it is there.
    pub fn remove(&self, rel: &str) {
        self.served.remove(rel);
    }

    /// Whether `rel` is a file, a folder (in a bucket: a marker or a
    /// common prefix), or on disk anything else.
    pub fn exists(&self, rel: &str) -> bool {
        self.served.exists(rel)
    }

    /// Whether `rel` is a file.
    pub fn is_file(&self, rel: &str) -> bool {
        self.served.is_file(rel)
    }

    /// Whether `rel` is a folder.
    pub fn is_dir(&self, rel: &str) -> bool {
        self.served.is_dir(rel)
    }

    /// The names in the folder `rel` (`""` for the served one), sorted.
    pub fn names(&self, rel: &str) -> Vec<String> {
        self.served.names(rel)
    }

    /// Every folder and file served, with its contents, by relative path.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, Entry> {
        self.served.snapshot()
    }

    /// The modification time of the file `rel` in seconds since the Unix
    /// epoch (in a bucket: the object's `Last-Modified`).
    pub fn modified(&self, rel: &str) -> i64 {
        self.served.modified(rel)
    }

    /// Uploads begun and not finished or cleaned up: hidden temporary
    /// files (`.NAME.part-*`) in a folder, multipart uploads in a bucket.
    pub fn partial_uploads(&self) -> Vec<String> {
        self.served.partial_uploads()
    }

    /// The shared server context (for `serve_one` tests).
    pub fn server(&self) -> Arc<Server> {
        self.server.clone()
    }

    /// A client connected to the IPv4 address, greeting read (`220`).
    pub fn client(&self) -> Client {
        self.client_at(self.addr)
    }

    /// A client connected to `addr`, greeting read (`220`).
    pub fn client_at(&self, addr: SocketAddr) -> Client {
        match Client::try_connect(addr) {
            Ok(c) => {
                assert_eq!(
                    c.greeting.code,
                    220,
                    "greeting: {}; {}",
                    c.greeting,
                    self.status()
                );
                c
            }
            Err(e) => panic!("connecting to {addr}: {e}; {}", self.status()),
        }
    }

    /// A client logged in anonymously.
    pub fn login(&self) -> Client {
        let mut c = self.client();
        c.login_anonymous();
        c
    }

    /// Opens a raw connection, for tests of what happens before the
    /// greeting (limits).
    pub fn raw_connect(&self) -> TcpStream {
        let s = TcpStream::connect_timeout(&self.addr, crate::TIMEOUT)
            .unwrap_or_else(|e| panic!("connect {}: {e}; {}", self.addr, self.status()));
        s.set_read_timeout(Some(crate::TIMEOUT)).unwrap();
        s.set_write_timeout(Some(crate::TIMEOUT)).unwrap();
        s
    }

    /// Whether the serving thread is still running, for failure messages.
    /// Waits up to a second for a thread that is about to end.
    pub fn status(&self) -> String {
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        if let Done::Running(rx) = &*done {
            match rx.recv_timeout(Duration::from_secs(1)) {
                Ok(r) => *done = Done::Ended(r.map_err(|e| e.to_string())),
                Err(RecvTimeoutError::Disconnected) => {
                    *done = Done::Ended(Err("serve panicked".into()))
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        match &*done {
            Done::Running(_) => "the daemon is still serving".into(),
            Done::Ended(Ok(())) => "the daemon's serve returned Ok(()) early".into(),
            Done::Ended(Err(e)) => format!("the daemon's serve ended: {e}"),
        }
    }

    /// Triggers the shutdown and waits for `serve` to return.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        self.shutdown.trigger();
        let mut done = self.done.lock().unwrap_or_else(|e| e.into_inner());
        let result = match &*done {
            Done::Running(rx) => match rx.recv_timeout(STOP_TIMEOUT) {
                Ok(r) => r.map_err(|e| format!("serve returned an error: {e}")),
                Err(RecvTimeoutError::Disconnected) => Err("serve panicked".into()),
                Err(RecvTimeoutError::Timeout) => Err(format!(
                    "serve did not return within {STOP_TIMEOUT:?} of the shutdown"
                )),
            },
            Done::Ended(r) => r
                .clone()
                .map_err(|e| format!("serve returned an error: {e}")),
        };
        *done = Done::Ended(Ok(()));
        drop(done);
        if result.is_ok() {
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
        result
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            if std::thread::panicking() {
                eprintln!("also: {e}");
            } else {
                panic!("{e}");
            }
        }
    }
}
