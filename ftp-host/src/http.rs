//! The operator's HTTP endpoint (`--metrics ADDR:PORT`): `/metrics` (the
//! Prometheus text format), `/healthz` and `/readyz`.
//!
//! Small and bounded on purpose, on threads of its own (never an event
//! loop's): one thread accepts, each connection is answered on a short
//! thread of its own, at most [`MAX_CONNECTIONS`] at once (more are closed
//! at once); a request head may be at most [`MAX_REQUEST`] bytes and must
//! arrive within [`REQUEST_TIMEOUT`]; one request per connection, answered
//! with `Connection: close`. It serves no files and takes no input beyond
//! the request line, but what it tells (user names do not appear; counts
//! and process figures do) belongs on a private address.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ftp_proto::VirtualPath;

use crate::daemon::Shutdown;
use crate::server::Server;

/// Connections answered at once; more are closed without an answer.
pub const MAX_CONNECTIONS: usize = 16;

/// Longest request head read (request line and headers).
pub const MAX_REQUEST: usize = 8 * 1024;

/// How long a client may take to send its request head, and each write of
/// the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a storage probe's answer counts for `/readyz`.
const PROBE_TTL: Duration = Duration::from_secs(5);

/// What the endpoint needs to answer.
struct Endpoint {
    server: Arc<Server>,
    shutdown: Shutdown,
    active: AtomicUsize,
    /// The last storage probe: when, and whether the storage answered.
    probe: std::sync::Mutex<Option<(Instant, bool)>>,
}

/// A running endpoint; dropping it stops accepting (within
/// [`POLL_INTERVAL`]).
#[derive(Debug)]
pub struct HttpEndpoint {
    stop: Arc<AtomicBool>,
    addr: Option<SocketAddr>,
}

impl HttpEndpoint {
    /// The address it listens on.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }
}

impl Drop for HttpEndpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

/// How often the accepting thread looks whether it should stop.
pub const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Serves the endpoint on `listener` on threads of its own, until the
/// returned handle is dropped.
pub fn spawn(
    listener: TcpListener,
    server: Arc<Server>,
    shutdown: Shutdown,
) -> io::Result<HttpEndpoint> {
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr().ok();
    let endpoint = Arc::new(Endpoint {
        server,
        shutdown,
        active: AtomicUsize::new(0),
        probe: std::sync::Mutex::new(None),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::Builder::new()
        .name("ftp-http".into())
        .spawn(move || accept_loop(&listener, &endpoint, &stopped))?;
    Ok(HttpEndpoint { stop, addr })
}

fn accept_loop(listener: &TcpListener, endpoint: &Arc<Endpoint>, stop: &AtomicBool) {
    while !stop.load(Ordering::Acquire) {
        let stream = match listener.accept() {
            Ok((stream, _)) if stream.set_nonblocking(false).is_ok() => stream,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let mut fds = [rustix::event::PollFd::new(
                    listener,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: POLL_INTERVAL.as_nanos() as _,
                };
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
                continue;
            }
            Err(e) if crate::admission::is_transient(&e) => continue,
            Err(e) => {
                log::warn!("metrics endpoint: accept: {e}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        if endpoint.active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            endpoint.active.fetch_sub(1, Ordering::AcqRel);
            continue;
        }
        let endpoint2 = endpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("ftp-http-conn".into())
            .spawn(move || {
                let _ = answer(stream, &endpoint2);
                endpoint2.active.fetch_sub(1, Ordering::AcqRel);
            });
        if spawned.is_err() {
            endpoint.active.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, endpoint: &Endpoint) -> io::Result<()> {
    stream.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let head = match read_head(&mut stream, Instant::now() + REQUEST_TIMEOUT) {
        Ok(head) => head,
        Err(HeadError::TooLarge) => {
            return respond(&mut stream, 431, "text/plain", "request too large\n");
        }
        Err(HeadError::Gone) => return Ok(()),
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let line = String::from_utf8_lossy(line);
    let mut words = line.split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return respond(&mut stream, 405, "text/plain", "only GET\n");
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => {
            let body = endpoint.server.metrics.encode();
            respond(&mut stream, 200, crate::metrics::CONTENT_TYPE, &body)
        }
        "/healthz" => respond(&mut stream, 200, "text/plain", "ok\n"),
        "/readyz" => match endpoint.readiness() {
            Ok(()) => respond(&mut stream, 200, "text/plain", "ready\n"),
            Err(why) => respond(&mut stream, 503, "text/plain", &format!("{why}\n")),
        },
        _ => respond(&mut stream, 404, "text/plain", "not found\n"),
    }
}

impl Endpoint {
    /// Whether new sessions should be sent here: not while shutting down,
    /// and not while the storage does not answer.
    fn readiness(&self) -> Result<(), &'static str> {
        if self.shutdown.is_triggered() {
            return Err("shutting down");
        }
        let mut probe = self
            .probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let fresh = probe.filter(|(at, _)| at.elapsed() < PROBE_TTL);
        let ok = match fresh {
            Some((_, ok)) => ok,
            None => {
                // A listing of one entry asks the store (a stat of `/`
                // may be answered without it).
                let ok = self
                    .server
                    .storage
                    .read_dir(&VirtualPath::root())
                    .and_then(|mut entries| entries.next_batch(1))
                    .is_ok();
                *probe = Some((Instant::now(), ok));
                ok
            }
        };
        if ok {
            Ok(())
        } else {
            Err("the storage does not answer")
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug)]
enum HeadError {
    /// Longer than [`MAX_REQUEST`].
    TooLarge,
    /// The peer left, or the deadline passed.
    Gone,
}

/// Reads up to the blank line that ends a request head, by `deadline`.
fn read_head(stream: &mut TcpStream, deadline: Instant) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HeadError::Gone);
        }
        stream
            .set_read_timeout(Some(left))
            .map_err(|_| HeadError::Gone)?;
        let n = stream.read(&mut buf).map_err(|_| HeadError::Gone)?;
        if n == 0 {
            return Err(HeadError::Gone);
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(head);
        }
        if head.len() > MAX_REQUEST {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Writes a whole answer.
fn respond(stream: &mut TcpStream, status: u16, kind: &str, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Binds the endpoint's address (`--metrics`).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}
