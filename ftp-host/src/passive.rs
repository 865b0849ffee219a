//! Passive-mode data listeners: ports from the configured range, or from
//! the kernel's ephemeral range when none is configured, shared by all
//! sessions and threads.
//!
//! Listeners are bound with `SO_REUSEADDR` (the standard library sets it on
//! Unix). On Linux that never lets two sockets listen on one port, but it
//! does let a port be bound again while earlier connections on it linger in
//! `TIME_WAIT` — which is the normal state after the server closes a data
//! connection, and would otherwise make a small range run dry for a minute
//! after every burst of transfers.
//!
//! # Why the default is not port 0
//!
//! Without a configured range the ports are still chosen here, at random
//! in the kernel's ephemeral range (`net.ipv4.ip_local_port_range`, less
//! `ip_local_reserved_ports`), and bound explicitly; only when
//! [`DEFAULT_TRIES`] random ports are all in use is the kernel asked for
//! port 0. Binding port 0 is what collapses under load: for a socket with
//! `SO_REUSEADDR` the kernel's search (`inet_csk_find_open_port`) takes
//! only ports that no socket at all is bound to — a port with a
//! `TIME_WAIT` socket counts as taken, on purpose — and it starts in the
//! lower half of the range. Every data connection the server closed leaves
//! a `TIME_WAIT` socket for a minute on exactly such a port, so after a few
//! thousand transfers every port-0 bind walks and locks thousands of
//! occupied bind buckets before it finds a free one (0.012 ms for `EPSV`
//! on a quiet machine, 0.8 to 4 ms after five seconds of small downloads).
//! An explicit bind of a port whose only other sockets are in `TIME_WAIT`
//! succeeds at once, so a random port is nearly always free on the first
//! try. vsftpd and pure-ftpd do the same by default (a random port in
//! 1024-65535); the ephemeral range keeps the listeners off the ports that
//! other services listen on.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use ftp_proto::ResourceError;

use crate::proxy::{HeaderRead, HeaderReader, ProxyHeader, ProxySources, read_header};

/// How many random ports of the ephemeral range a bind tries, when no
/// range is configured, before it asks the kernel for port 0.
///
/// Only sockets bound without `SO_REUSEADDR` (outgoing connections) and
/// listening sockets make a port unusable here, so a try nearly always
/// succeeds; the bound keeps a nearly full range from costing thousands of
/// failed binds, and the kernel's search finds the last free ports.
pub const DEFAULT_TRIES: u32 = 16;

/// Linux's default `net.ipv4.ip_local_port_range`, used when it cannot be
/// read.
pub const LINUX_EPHEMERAL: RangeInclusive<u16> = 32768..=60999;

const PORT_RANGE_FILE: &str = "/proc/sys/net/ipv4/ip_local_port_range";
const RESERVED_FILE: &str = "/proc/sys/net/ipv4/ip_local_reserved_ports";

/// Why no passive listener could be bound, carried inside the
/// [`io::Error`] that [`PassivePorts::bind`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PassiveError {
    /// Every port of the range is in use (or the range is empty).
    Exhausted,
}

impl fmt::Display for PassiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassiveError::Exhausted => f.write_str("no free port in the passive port range"),
        }
    }
}

impl std::error::Error for PassiveError {}

/// Where passive ports come from.
#[derive(Debug)]
enum Source {
    /// The configured range: first port and number of ports, searched in
    /// turn from a rotating start.
    Range { first: u16, count: u32 },
    /// No configured range: random ports of the ephemeral range (first
    /// port, number of ports) that are not reserved, then port 0.
    Ephemeral {
        first: u16,
        count: u32,
        reserved: Vec<RangeInclusive<u16>>,
    },
}

/// The passive port range, and where the next search in it starts.
#[derive(Debug)]
pub struct PassivePorts {
    source: Source,
    next: AtomicU32,
    /// Counter hashed with `keys` into the random ports of the default.
    draws: AtomicU64,
    /// Random keys (from the operating system) that make the default's
    /// ports unpredictable.
    keys: RandomState,
    /// Listeners kept for their session's next passive command
    /// ([`PassivePorts::keep`]), server-wide.
    kept: Arc<AtomicUsize>,
    /// Most listeners kept at once: an eighth of the ports, at most
    /// [`KEPT_MAX`].
    keep_max: usize,
}

/// Most passive listeners kept for reuse at once, server-wide.
pub const KEPT_MAX: usize = 4096;

/// A passive listener whose transfer took its connection, kept by its
/// session for the next `PASV`/`EPSV`: that command then costs no socket,
/// bind, listen and close (five system calls, and the bind's search
/// through the port's other sockets), which is most of what a small
/// download costs beyond the bytes. The port stays the session's while it
/// is kept; [`PassivePorts`] caps how many are kept so that a range is
/// never used up by idle sessions.
#[derive(Debug)]
pub struct KeptListener {
    listener: TcpListener,
    addr: SocketAddr,
    _slot: KeptSlot,
}

/// One of the [`PassivePorts`]'s kept listeners, counted until dropped.
#[derive(Debug)]
struct KeptSlot(Arc<AtomicUsize>);

impl Drop for KeptSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl KeptListener {
    /// The listener again, for a passive command on `ip`, with every
    /// connection that came while it was kept closed (nobody was told its
    /// port since, so none of them is the next transfer's). `None` when it
    /// listens on another address, or it failed: bind a new one.
    pub fn reuse(self, ip: IpAddr) -> Option<(TcpListener, SocketAddr)> {
        if self.addr.ip() != ip.to_canonical() {
            return None;
        }
        // The backlog is bounded; so is this.
        for _ in 0..=LISTEN_BACKLOG * 2 {
            match rustix::net::accept(&self.listener) {
                Ok(stale) => drop(stale),
                Err(rustix::io::Errno::AGAIN) => return Some((self.listener, self.addr)),
                Err(rustix::io::Errno::INTR | rustix::io::Errno::CONNABORTED) => {}
                Err(_) => return None,
            }
        }
        None
    }
}

impl PassivePorts {
    /// Ports from `range` (port 0 in it is skipped; an empty range makes
    /// every bind fail with [`PassiveError::Exhausted`]), or, when `None`,
    /// random ports of the kernel's ephemeral range (read from
    /// `/proc/sys/net/ipv4/ip_local_port_range` now, [`LINUX_EPHEMERAL`]
    /// if that fails) that are not in `ip_local_reserved_ports`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> PassivePorts {
        match range {
            Some(r) => {
                let (first, count) = first_and_count(&r);
                PassivePorts::with_source(Source::Range { first, count })
            }
            None => {
                let ephemeral = std::fs::read_to_string(PORT_RANGE_FILE)
                    .ok()
                    .and_then(|text| parse_port_range(&text))
                    .unwrap_or(LINUX_EPHEMERAL);
                let reserved = std::fs::read_to_string(RESERVED_FILE)
                    .map(|text| parse_reserved(&text))
                    .unwrap_or_default();
                PassivePorts::ephemeral(ephemeral, reserved)
            }
        }
    }

    /// The default without a configured range, with the ephemeral range
    /// and reserved ports given.
    fn ephemeral(range: RangeInclusive<u16>, reserved: Vec<RangeInclusive<u16>>) -> PassivePorts {
        let (first, count) = first_and_count(&range);
        PassivePorts::with_source(Source::Ephemeral {
            first,
            count,
            reserved,
        })
    }

    fn with_source(source: Source) -> PassivePorts {
        let ports = match &source {
            Source::Range { count, .. } | Source::Ephemeral { count, .. } => *count as usize,
        };
        PassivePorts {
            source,
            next: AtomicU32::new(0),
            draws: AtomicU64::new(0),
            keys: RandomState::new(),
            kept: Arc::new(AtomicUsize::new(0)),
            keep_max: (ports / 8).min(KEPT_MAX),
        }
    }

    /// Keeps `listener` (on `addr`) for its session's next passive
    /// command, unless as many as the cap are kept already: then `None`,
    /// and it closes.
    pub fn keep(&self, listener: TcpListener, addr: SocketAddr) -> Option<KeptListener> {
        self.kept
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.keep_max).then_some(n + 1)
            })
            .ok()?;
        Some(KeptListener {
            listener,
            addr,
            _slot: KeptSlot(self.kept.clone()),
        })
    }

    /// Binds a non-blocking listener on `ip` (IPv4-mapped IPv6 addresses
    /// are bound as IPv4) with a port from the range.
    ///
    /// With a configured range, successive calls start at successive
    /// ports, and a port in use is skipped; when every port is in use the
    /// error has kind [`io::ErrorKind::AddrInUse`] and carries
    /// [`PassiveError::Exhausted`] (see [`resource_error`]). Without one,
    /// up to [`DEFAULT_TRIES`] random ports of the ephemeral range are
    /// tried, then port 0. Other errors (an address that is not local, no
    /// descriptors left) are returned as they come.
    ///
    /// The listener is non-blocking; its address comes with it (the port
    /// chosen here is known, so no `getsockname` is needed for it).
    pub fn bind(&self, ip: IpAddr) -> io::Result<(TcpListener, SocketAddr)> {
        let ip = ip.to_canonical();
        match &self.source {
            Source::Range { first, count } => self.bind_range(ip, *first, *count),
            Source::Ephemeral {
                first,
                count,
                reserved,
            } => self.bind_ephemeral(ip, *first, *count, reserved),
        }
    }

    fn bind_range(
        &self,
        ip: IpAddr,
        first: u16,
        count: u32,
    ) -> io::Result<(TcpListener, SocketAddr)> {
        if count == 0 {
            return Err(exhausted());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            let offset = (start + i) % count;
            if let Some(listener) = try_listen(ip, port_at(first, offset))? {
                return Ok(listener);
            }
        }
        Err(exhausted())
    }

    fn bind_ephemeral(
        &self,
        ip: IpAddr,
        first: u16,
        count: u32,
        reserved: &[RangeInclusive<u16>],
    ) -> io::Result<(TcpListener, SocketAddr)> {
        if count > 0 {
            for _ in 0..DEFAULT_TRIES {
                let draw = self.draws.fetch_add(1, Ordering::Relaxed);
                // A keyed hash of a counter: uniform, and unpredictable to
                // clients. The modulo's bias is below 2^-48.
                let offset = (self.keys.hash_one(draw) % u64::from(count)) as u32;
                let port = port_at(first, offset);
                if reserved.iter().any(|r| r.contains(&port)) {
                    continue;
                }
                if let Some(listener) = try_listen(ip, port)? {
                    return Ok(listener);
                }
            }
        }
        listen(SocketAddr::new(ip, 0))
    }
}

/// First port (at least 1) and number of ports of `range`.
fn first_and_count(range: &RangeInclusive<u16>) -> (u16, u32) {
    let first = (*range.start()).max(1);
    let last = *range.end();
    let count = if first > last {
        0
    } else {
        u32::from(last - first) + 1
    };
    (first, count)
}

/// `first + offset`, for an offset below the range's count (so at most the
/// range's end, a u16).
fn port_at(first: u16, offset: u32) -> u16 {
    u16::try_from(u32::from(first) + offset).unwrap_or(u16::MAX)
}

/// A listener on `ip` and `port`, or `None` when the port is in use (or
/// reserved for privileged processes).
fn try_listen(ip: IpAddr, port: u16) -> io::Result<Option<(TcpListener, SocketAddr)>> {
    match listen(SocketAddr::new(ip, port)) {
        Ok(listener) => Ok(Some(listener)),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A non-blocking listener on `addr` (`SO_REUSEADDR`, as std's), and its
/// address: `addr` itself unless its port was 0.
fn listen(addr: SocketAddr) -> io::Result<(TcpListener, SocketAddr)> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &addr)?;
    rustix::net::listen(&fd, LISTEN_BACKLOG)?;
    let listener = TcpListener::from(fd);
    let addr = if addr.port() == 0 {
        listener.local_addr()?
    } else {
        addr
    };
    Ok((listener, addr))
}

/// Connections a passive listener queues: it waits for one, and the
/// host closes the others it finds (see [`take_allowed`]).
const LISTEN_BACKLOG: i32 = 128;

fn exhausted() -> io::Error {
    io::Error::new(io::ErrorKind::AddrInUse, PassiveError::Exhausted)
}

/// The range in `ip_local_port_range` ("32768\t60999"), if it is two ports
/// in order, the first not 0.
fn parse_port_range(text: &str) -> Option<RangeInclusive<u16>> {
    let mut words = text.split_whitespace();
    let lo: u16 = words.next()?.parse().ok()?;
    let hi: u16 = words.next()?.parse().ok()?;
    (lo != 0 && lo <= hi && words.next().is_none()).then_some(lo..=hi)
}

/// The ports in `ip_local_reserved_ports` ("8080,9000-9100", or empty);
/// parts that do not parse are left out.
fn parse_reserved(text: &str) -> Vec<RangeInclusive<u16>> {
    text.trim()
        .split(',')
        .filter_map(|part| {
            let part = part.trim();
            let (lo, hi) = part.split_once('-').unwrap_or((part, part));
            Some(lo.trim().parse().ok()?..=hi.trim().parse().ok()?)
        })
        .collect()
}

/// What to tell the engine about a failed [`PassivePorts::bind`]:
/// [`ResourceError::Exhausted`] for an exhausted range or a lack of
/// descriptors or memory, [`ResourceError::Failed`] otherwise.
pub fn resource_error(err: &io::Error) -> ResourceError {
    const EMFILE: i32 = 24;
    const ENFILE: i32 = 23;
    const ENOBUFS: i32 = 105;
    const ENOMEM: i32 = 12;
    let exhausted = err.kind() == io::ErrorKind::AddrInUse
        || err.kind() == io::ErrorKind::OutOfMemory
        || matches!(err.raw_os_error(), Some(EMFILE | ENFILE | ENOBUFS | ENOMEM));
    if exhausted {
        ResourceError::Exhausted
    } else {
        ResourceError::Failed
    }
}

/// What [`take_allowed`] found on a passive listener.
#[derive(Debug)]
pub enum Taken<S> {
    /// A connection from the client (through a proxy: its PROXY header
    /// already read).
    Connection(S),
    /// Nothing waits (the listener would block), or only connections from
    /// a proxy whose headers are not complete (see [`HeaderWaits`]).
    Empty,
    /// Only connections from elsewhere came (closed), `tries` of them, and
    /// more may wait: call again later, so one flood cannot hold a thread.
    Busy,
}

/// Most data connections from proxies that one passive listener keeps
/// while their PROXY headers arrive; more are closed.
pub const MAX_HEADER_WAITS: usize = 4;

/// The data connections from `--proxy-from` sources that a passive
/// listener accepted and whose PROXY headers have not fully arrived
/// (a header normally comes with the connection; these are the rare ones
/// accepted between the handshake and the header).
///
/// A runtime watches [`HeaderWaits::waiting`] for readability and calls
/// [`take_allowed`] again when one is readable, and at
/// [`HeaderWaits::deadline`]; a level-triggered runtime, whose sockets
/// with unread bytes stay readable, may instead call again every
/// [`crate::proxy::PARTIAL_RETRY`] while [`HeaderWaits::is_empty`] is
/// false.
#[derive(Debug)]
pub struct HeaderWaits<S> {
    sources: Option<Arc<ProxySources>>,
    waiting: Vec<Waiting<S>>,
    /// The last connection [`take_allowed`] returned had waited here.
    took_waiting: bool,
}

/// One data connection waiting for its PROXY header.
#[derive(Debug)]
struct Waiting<S> {
    stream: S,
    proxy: SocketAddr,
    reader: HeaderReader,
}

impl<S> HeaderWaits<S> {
    /// For a server whose `--proxy-from` sources are `sources` (`None`:
    /// no data connection ever waits).
    pub fn new(sources: Option<Arc<ProxySources>>) -> HeaderWaits<S> {
        HeaderWaits {
            sources,
            waiting: Vec::new(),
            took_waiting: false,
        }
    }

    /// Whether the connection [`take_allowed`] returned last had waited
    /// for its header here (a runtime that watched it stops watching).
    pub fn took_waiting(&self) -> bool {
        self.took_waiting
    }

    /// Whether no connection waits for its header.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The connections waiting for their headers, to be watched.
    pub fn waiting(&mut self) -> impl Iterator<Item = &mut S> {
        self.waiting.iter_mut().map(|w| &mut w.stream)
    }

    /// The earliest deadline of a waiting header.
    pub fn deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.reader.deadline()).min()
    }

    fn is_proxy(&self, ip: IpAddr) -> bool {
        self.sources.as_ref().is_some_and(|s| s.contains(ip))
    }
}

/// Whose data connection a complete (or failed) header makes a stream.
enum Verdict {
    Allowed,
    Closed,
    Waiting,
}

/// Reads what has come of the header of `stream` (from `proxy`) and says
/// whether it is the client's connection; refusals are logged.
fn judge<S: AsFd>(
    stream: &S,
    proxy: SocketAddr,
    reader: &HeaderReader,
    allowed: IpAddr,
    now: Instant,
) -> Verdict {
    match read_header(stream, reader, now) {
        HeaderRead::Pending { .. } => Verdict::Waiting,
        HeaderRead::Header(ProxyHeader::Proxied(a)) if peer_allowed(a.source.ip(), allowed) => {
            Verdict::Allowed
        }
        HeaderRead::Header(ProxyHeader::Proxied(a)) => {
            log::warn!(
                "{}: refused data connection from {} (through {proxy})",
                allowed.to_canonical(),
                a.source
            );
            Verdict::Closed
        }
        HeaderRead::Header(ProxyHeader::Local) => {
            log::debug!("{proxy}: PROXY LOCAL on a data connection: closed");
            Verdict::Closed
        }
        HeaderRead::Failed(e) => {
            log::warn!(
                "{}: data connection from {proxy} closed: {e}",
                allowed.to_canonical()
            );
            Verdict::Closed
        }
    }
}

/// Accepts from a non-blocking passive listener (`accept` is its
/// `accept`) until a connection from `allowed` comes; connections from any
/// other address are closed and logged, and errors that concern one
/// connection only are skipped ([`crate::admission::is_transient`]). At
/// most `tries` connections are taken. Errors of the listener itself (out
/// of descriptors, say) are returned.
///
/// A connection from a `--proxy-from` source counts as from the address
/// its PROXY header carries: it is taken when that is `allowed`, closed
/// (and logged) when it is another, or when the header is malformed or
/// late; one whose header has not fully arrived waits in `proxied` (at
/// most [`MAX_HEADER_WAITS`]), and is looked at again first on the next
/// call at `now`.
pub fn take_allowed<S: AsFd>(
    mut accept: impl FnMut() -> io::Result<(S, SocketAddr)>,
    allowed: IpAddr,
    proxied: &mut HeaderWaits<S>,
    tries: usize,
    now: Instant,
) -> io::Result<Taken<S>> {
    proxied.took_waiting = false;
    let mut i = 0;
    while i < proxied.waiting.len() {
        let w = &proxied.waiting[i];
        match judge(&w.stream, w.proxy, &w.reader, allowed, now) {
            Verdict::Waiting => i += 1,
            Verdict::Allowed => {
                proxied.took_waiting = true;
                return Ok(Taken::Connection(proxied.waiting.remove(i).stream));
            }
            Verdict::Closed => drop(proxied.waiting.remove(i)),
        }
    }
    for _ in 0..tries {
        match accept() {
            Ok((stream, from)) if proxied.is_proxy(from.ip()) => {
                let reader = HeaderReader::new(now);
                match judge(&stream, from, &reader, allowed, now) {
                    Verdict::Allowed => return Ok(Taken::Connection(stream)),
                    Verdict::Closed => {}
                    Verdict::Waiting if proxied.waiting.len() < MAX_HEADER_WAITS => {
                        proxied.waiting.push(Waiting {
                            stream,
                            proxy: from,
                            reader,
                        });
                    }
                    Verdict::Waiting => log::warn!(
                        "{}: data connection from {from} closed: too many waiting for their PROXY headers",
                        allowed.to_canonical()
                    ),
                }
            }
            Ok((stream, from)) if peer_allowed(from.ip(), allowed) => {
                return Ok(Taken::Connection(stream));
            }
            Ok((_, from)) => log::warn!(
                "{}: refused data connection from {from}",
                allowed.to_canonical()
            ),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Taken::Empty),
            Err(e) if crate::admission::is_transient(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Taken::Busy)
}

/// Whether a data connection from `actual` may be accepted for a session
/// whose client is `allowed`: the addresses are equal once IPv4-mapped IPv6
/// addresses are taken as IPv4.
pub fn peer_allowed(actual: IpAddr, allowed: IpAddr) -> bool {
    actual.to_canonical() == allowed.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_allowed_closes_foreign_connections_and_is_bounded() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let from = |ip: &str| connect_from(ip, addr);
        // Two connections from another loopback address, then the client's.
        let _a = from("127.0.0.2");
        let _b = from("127.0.0.2");
        let _c = from("127.0.0.1");
        std::thread::sleep(std::time::Duration::from_millis(50));
        let allowed = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut none = HeaderWaits::new(None);
        let now = Instant::now();
        // One try: only the first foreign connection is taken (and closed).
        let got = take_allowed(|| listener.accept(), allowed, &mut none, 1, now).unwrap();
        assert!(matches!(got, Taken::Busy), "{got:?}");
        let got = take_allowed(|| listener.accept(), allowed, &mut none, 8, now).unwrap();
        match got {
            Taken::Connection(stream) => {
                assert_eq!(stream.peer_addr().unwrap().ip(), allowed)
            }
            other => panic!("{other:?}"),
        }
        let got = take_allowed(|| listener.accept(), allowed, &mut none, 8, now).unwrap();
        assert!(matches!(got, Taken::Empty), "{got:?}");
    }

    #[test]
    fn data_connections_from_a_proxy_count_as_their_headers_client() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let client: IpAddr = "192.0.2.7".parse().unwrap();
        let sources = Arc::new(ProxySources::parse("127.0.0.1").unwrap());
        let mut proxied = HeaderWaits::new(Some(sources));
        let header = |from: &str| format!("PROXY TCP4 {from} 198.51.100.1 40000 50000\r\n");
        let take = |proxied: &mut HeaderWaits<TcpStream>| {
            std::thread::sleep(std::time::Duration::from_millis(50));
            take_allowed(|| listener.accept(), client, proxied, 8, Instant::now()).unwrap()
        };
        // Through the proxy for another client, without a header, and
        // straight from an address that is not the client's: all closed.
        let mut other = connect_from("127.0.0.1", addr);
        other.write_all(header("192.0.2.8").as_bytes()).unwrap();
        let mut bare = connect_from("127.0.0.1", addr);
        bare.write_all(b"hello").unwrap();
        let _stranger = connect_from("127.0.0.2", addr);
        assert!(matches!(take(&mut proxied), Taken::Empty));
        assert!(proxied.is_empty());
        let mut buf = [0u8; 8];
        assert!(matches!(other.read(&mut buf), Ok(0) | Err(_)), "closed");
        assert!(matches!(bare.read(&mut buf), Ok(0) | Err(_)), "closed");
        // The client's, in two pieces: it waits, then is taken, and what
        // follows the header stays for the transfer.
        let mut mine = connect_from("127.0.0.1", addr);
        let text = header("192.0.2.7");
        mine.write_all(&text.as_bytes()[..20]).unwrap();
        assert!(matches!(take(&mut proxied), Taken::Empty));
        assert_eq!(proxied.waiting().count(), 1);
        assert!(proxied.deadline().is_some());
        mine.write_all(&text.as_bytes()[20..]).unwrap();
        mine.write_all(b"data").unwrap();
        let Taken::Connection(mut got) = take(&mut proxied) else {
            panic!("the client's connection was not taken");
        };
        assert!(proxied.is_empty());
        assert!(proxied.took_waiting());
        got.set_nonblocking(false).unwrap();
        got.read_exact(&mut buf[..4]).unwrap();
        assert_eq!(&buf[..4], b"data");
        // One that never completes its header is closed at its deadline.
        let mut slow = connect_from("127.0.0.1", addr);
        slow.write_all(b"PROXY TCP4 ").unwrap();
        assert!(matches!(take(&mut proxied), Taken::Empty));
        let late = proxied.deadline().unwrap();
        let got = take_allowed(|| listener.accept(), client, &mut proxied, 8, late).unwrap();
        assert!(matches!(got, Taken::Empty));
        assert!(proxied.is_empty());
        assert!(matches!(slow.read(&mut buf), Ok(0) | Err(_)), "closed");
    }

    /// A connection to `to` from the loopback address `ip`.
    fn connect_from(ip: &str, to: std::net::SocketAddr) -> TcpStream {
        let socket = rustix::net::socket(
            rustix::net::AddressFamily::INET,
            rustix::net::SocketType::STREAM,
            None,
        )
        .unwrap();
        let local: std::net::SocketAddr = format!("{ip}:0").parse().unwrap();
        rustix::net::bind(&socket, &local).unwrap();
        rustix::net::connect(&socket, &to).unwrap();
        TcpStream::from(socket)
    }

    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn kept_listeners_are_reused_without_stale_connections_and_capped() {
        // 16 ports: at most 2 kept at once.
        let ports = PassivePorts::new(Some(free_ports(16)));
        let (listener, addr) = ports.bind(LOCAL).unwrap();
        let kept = ports.keep(listener, addr).expect("kept");
        // A connection that came while it was kept is nobody's transfer.
        let mut stale = TcpStream::connect(addr).unwrap();
        let (again, again_addr) = kept.reuse(LOCAL).expect("reused");
        assert_eq!(again_addr, addr);
        assert_eq!(again.local_addr().unwrap(), addr);
        let mut buf = [0u8; 1];
        stale
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        // Closed: the end of stream (or a reset), not a timeout.
        match stale.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("the stale connection should be closed: {other:?}"),
        }
        again.set_nonblocking(true).unwrap();
        assert_eq!(
            again.accept().unwrap_err().kind(),
            std::io::ErrorKind::WouldBlock,
            "nothing stale left"
        );
        // Another address: not reused.
        let kept = ports.keep(again, addr).expect("kept");
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(kept.reuse(v6).is_none());
        // The cap, and a slot given back when one is dropped.
        let bind = || ports.bind(LOCAL).unwrap();
        let (a, b, c) = (bind(), bind(), bind());
        let first = ports.keep(a.0, a.1).expect("first");
        let _second = ports.keep(b.0, b.1).expect("second");
        assert!(ports.keep(c.0, c.1).is_none(), "over the cap");
        drop(first);
        let d = bind();
        assert!(ports.keep(d.0, d.1).is_some(), "a slot came back");
    }

    /// A run of `n` consecutive ports that are free right now.
    fn free_ports(n: u16) -> RangeInclusive<u16> {
        // Each call starts from a base of its own: tests run in parallel,
        // and two that found the same free ports would take them from
        // each other.
        static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
        let first = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 120;
        for base in (20_000u16..32_000).step_by(97).skip(usize::from(first)) {
            let held: Vec<_> = (base..base + n)
                .map_while(|p| TcpListener::bind((LOCAL, p)).ok())
                .collect();
            if held.len() == usize::from(n) {
                drop(held);
                for p in base..base + n {
                    released(p);
                }
                return base..=base + n - 1;
            }
        }
        panic!("no free ports");
    }

    /// Waits until nothing holds `port` any more. Other tests of this
    /// binary start programs (hooks), and a child between its fork and
    /// its exec still holds a copy of every socket the process had, for
    /// a moment after the test closed it.
    fn released(port: u16) {
        for _ in 0..200 {
            if TcpListener::bind((LOCAL, port)).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("port {port} is still held after 2 s");
    }

    /// The kernel's ephemeral range, read the way a test on any version of
    /// this module can.
    fn kernel_ephemeral_range() -> Option<(u16, u16)> {
        let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
        let mut it = text.split_whitespace().map(|w| w.parse::<u16>().ok());
        Some((it.next()??, it.next()??))
    }

    #[test]
    fn default_ports_cover_the_whole_ephemeral_range() {
        // Without a range, ports come from the kernel's ephemeral range,
        // chosen by us: all over it. A port-0 bind of a socket with
        // SO_REUSEADDR gets a port from the lower half of the range only
        // (until that half is full), so 64 binds that all land there mean
        // the kernel is still choosing (the chance of that with uniform
        // choices is 2^-64).
        let Some((lo, hi)) = kernel_ephemeral_range() else {
            return;
        };
        if hi < lo + 4 {
            return;
        }
        // The first port of the kernel's upper half (inet_csk_find_open_port).
        let half = u32::from(lo) + (((u32::from(hi) + 1 - u32::from(lo)) >> 2) << 1);
        let ports = PassivePorts::new(None);
        let mut upper = 0;
        for _ in 0..64 {
            let port = ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port();
            assert!((lo..=hi).contains(&port), "{port} outside {lo}-{hi}");
            if u32::from(port) >= half {
                upper += 1;
            }
        }
        assert!(
            upper > 0,
            "64 default passive ports, all below {half}: chosen by the kernel"
        );
    }

    /// Leaves a server-side TIME_WAIT socket on the port of `listener`.
    fn time_wait_on(listener: TcpListener) {
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        server.write_all(b"data").unwrap();
        drop(server);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"data");
    }

    #[test]
    fn default_reuses_ports_in_time_wait() {
        // The reason the default is fast under load: a port whose only
        // other socket is in TIME_WAIT is taken on the first try (a port-0
        // bind would skip it).
        let range = free_ports(1);
        let port = *range.start();
        let ports = PassivePorts::ephemeral(range, Vec::new());
        for _ in 0..3 {
            let listener = ports.bind(LOCAL).unwrap().0;
            assert_eq!(listener.local_addr().unwrap().port(), port);
            time_wait_on(listener);
        }
    }

    #[test]
    fn default_falls_back_to_the_kernel_and_skips_reserved_ports() {
        let range = free_ports(2);
        let (a, b) = (*range.start(), *range.end());
        // `a` reserved: every bind gets `b`.
        let ports = PassivePorts::ephemeral(range.clone(), vec![a..=a]);
        for _ in 0..20 {
            assert_eq!(ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port(), b);
            released(b);
        }
        // Both in use: the kernel picks another port.
        let _held = (
            TcpListener::bind((LOCAL, a)).unwrap(),
            TcpListener::bind((LOCAL, b)).unwrap(),
        );
        let ports = PassivePorts::ephemeral(range.clone(), Vec::new());
        let other = ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port();
        assert!(!range.contains(&other));
        // An empty range goes straight to the kernel.
        #[allow(clippy::reversed_empty_ranges)]
        let none = PassivePorts::ephemeral(10..=5, Vec::new());
        assert_ne!(none.bind(LOCAL).unwrap().0.local_addr().unwrap().port(), 0);
    }

    #[test]
    fn proc_files() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some(32768..=60999));
        assert_eq!(parse_port_range("1024 1024"), Some(1024..=1024));
        assert_eq!(parse_port_range("0 100"), None);
        assert_eq!(parse_port_range("60999 32768"), None);
        assert_eq!(parse_port_range("32768"), None);
        assert_eq!(parse_port_range("a b"), None);
        assert_eq!(parse_reserved("\n"), Vec::<RangeInclusive<u16>>::new());
        assert_eq!(
            parse_reserved("8080,9000-9100,x,70000\n"),
            vec![8080..=8080, 9000..=9100]
        );
    }

    #[test]
    fn any_port_without_range() {
        let ports = PassivePorts::new(None);
        let l = ports.bind(LOCAL).unwrap().0;
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(addr.ip(), LOCAL);
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn range_rotates_and_exhausts() {
        let range = free_ports(3);
        let ports = PassivePorts::new(Some(range.clone()));
        let a = ports.bind(LOCAL).unwrap().0;
        let b = ports.bind(LOCAL).unwrap().0;
        let c = ports.bind(LOCAL).unwrap().0;
        let mut got: Vec<u16> = [&a, &b, &c]
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        assert!(got.iter().all(|p| range.contains(p)));
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 3);
        let err = ports.bind(LOCAL).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert_eq!(resource_error(&err), ResourceError::Exhausted);
        let freed = b.local_addr().unwrap().port();
        drop(b);
        released(freed);
        assert_eq!(
            ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port(),
            freed
        );
        // Successive binds start at different ports.
        let (pa, pc) = (
            a.local_addr().unwrap().port(),
            c.local_addr().unwrap().port(),
        );
        drop((a, c));
        released(pa);
        released(pc);
        let first = ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port();
        let second = ports.bind(LOCAL).unwrap().0.local_addr().unwrap().port();
        assert_ne!(first, second);
    }

    #[test]
    fn port_is_reusable_after_time_wait() {
        let range = free_ports(1);
        let ports = PassivePorts::new(Some(range));
        for _ in 0..2 {
            // The server closes first, so its side lingers in TIME_WAIT.
            time_wait_on(ports.bind(LOCAL).unwrap().0);
        }
    }

    #[test]
    fn empty_range_and_mapped_addresses() {
        #[allow(clippy::reversed_empty_ranges)]
        let ports = PassivePorts::new(Some(10..=5));
        let err = ports.bind(LOCAL).unwrap_err();
        assert_eq!(resource_error(&err), ResourceError::Exhausted);
        let zero = PassivePorts::new(Some(0..=0));
        assert!(zero.bind(LOCAL).is_err());
        let mapped = IpAddr::V6(Ipv4Addr::LOCALHOST.to_ipv6_mapped());
        let (l, addr) = PassivePorts::new(None).bind(mapped).unwrap();
        assert_eq!(l.local_addr().unwrap().ip(), LOCAL);
        assert_eq!(addr, l.local_addr().unwrap());
        let not_local: IpAddr = "192.0.2.1".parse().unwrap();
        let err = PassivePorts::new(None).bind(not_local).unwrap_err();
        assert_eq!(resource_error(&err), ResourceError::Failed);
    }

    #[test]
    fn peers() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert!(peer_allowed(v4, v4));
        assert!(peer_allowed(mapped, v4));
        assert!(peer_allowed(v4, mapped));
        assert!(!peer_allowed(other, v4));
        assert!(peer_allowed(v6, v6));
        assert!(!peer_allowed(v6, IpAddr::V6(Ipv6Addr::LOCALHOST)));
    }
}
