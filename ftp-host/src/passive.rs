//! Passive-mode data listeners: ports from the configured range, shared by
//! all sessions and threads.
//!
//! Listeners are bound with `SO_REUSEADDR` (the standard library sets it on
//! Unix). On Linux that never lets two sockets listen on one port, but it
//! does let a port be bound again while earlier connections on it linger in
//! `TIME_WAIT` — which is the normal state after the server closes a data
//! connection, and would otherwise make a small range run dry for a minute
//! after every burst of transfers.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU32, Ordering};

use ftp_proto::ResourceError;

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

/// The passive port range, and where the next search in it starts.
#[derive(Debug)]
pub struct PassivePorts {
    /// First port and number of ports; `None` for any port (port 0).
    range: Option<(u16, u32)>,
    next: AtomicU32,
}

impl PassivePorts {
    /// Ports from `range` (port 0 in it is skipped; an empty range makes
    /// every bind fail with [`PassiveError::Exhausted`]), or any port the
    /// kernel picks when `None`.
    pub fn new(range: Option<RangeInclusive<u16>>) -> PassivePorts {
        let range = range.map(|r| {
            let first = (*r.start()).max(1);
            let last = *r.end();
            let count = if first > last {
                0
            } else {
                u32::from(last - first) + 1
            };
            (first, count)
        });
        PassivePorts {
            range,
            next: AtomicU32::new(0),
        }
    }

    /// Binds a non-blocking listener on `ip` (IPv4-mapped IPv6 addresses
    /// are bound as IPv4) with a port from the range.
    ///
    /// Successive calls start at successive ports, and a port in use is
    /// skipped; when every port is in use the error has kind
    /// [`io::ErrorKind::AddrInUse`] and carries [`PassiveError::Exhausted`]
    /// (see [`resource_error`]). Other errors (an address that is not
    /// local, no descriptors left) are returned as they come.
    pub fn bind(&self, ip: IpAddr) -> io::Result<TcpListener> {
        let ip = ip.to_canonical();
        let Some((first, count)) = self.range else {
            return listen(SocketAddr::new(ip, 0));
        };
        if count == 0 {
            return Err(exhausted());
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % count;
        for i in 0..count {
            let offset = (start + i) % count;
            // `first + offset` is at most the range's end, a u16.
            let port = u16::try_from(u32::from(first) + offset).unwrap_or(u16::MAX);
            match listen(SocketAddr::new(ip, port)) {
                Ok(listener) => return Ok(listener),
                // In use, or reserved for privileged processes: next one.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Err(exhausted())
    }
}

fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

fn exhausted() -> io::Error {
    io::Error::new(io::ErrorKind::AddrInUse, PassiveError::Exhausted)
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

/// Whether a data connection from `actual` may be accepted for a session
/// whose client is `allowed`: the addresses are equal once IPv4-mapped IPv6
/// addresses are taken as IPv4.
pub fn peer_allowed(actual: IpAddr, allowed: IpAddr) -> bool {
    actual.to_canonical() == allowed.to_canonical()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpStream};

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// A run of `n` consecutive ports that are free right now.
    fn free_ports(n: u16) -> RangeInclusive<u16> {
        for base in (20_000u16..32_000).step_by(97) {
            let held: Vec<_> = (base..base + n)
                .map_while(|p| TcpListener::bind((LOCAL, p)).ok())
                .collect();
            if held.len() == usize::from(n) {
                return base..=base + n - 1;
            }
        }
        panic!("no free ports");
    }

    #[test]
    fn any_port_without_range() {
        let ports = PassivePorts::new(None);
        let l = ports.bind(LOCAL).unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(addr.ip(), LOCAL);
        assert_eq!(l.accept().unwrap_err().kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn range_rotates_and_exhausts() {
        let range = free_ports(3);
        let ports = PassivePorts::new(Some(range.clone()));
        let a = ports.bind(LOCAL).unwrap();
        let b = ports.bind(LOCAL).unwrap();
        let c = ports.bind(LOCAL).unwrap();
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
        assert_eq!(
            ports.bind(LOCAL).unwrap().local_addr().unwrap().port(),
            freed
        );
        // Successive binds start at different ports.
        drop((a, c));
        let first = ports.bind(LOCAL).unwrap().local_addr().unwrap().port();
        let second = ports.bind(LOCAL).unwrap().local_addr().unwrap().port();
        assert_ne!(first, second);
    }

    #[test]
    fn port_is_reusable_after_time_wait() {
        let range = free_ports(1);
        let ports = PassivePorts::new(Some(range));
        for _ in 0..2 {
            let listener = ports.bind(LOCAL).unwrap();
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            listener.set_nonblocking(false).unwrap();
            let (mut server, _) = listener.accept().unwrap();
            server.write_all(b"data").unwrap();
            // The server closes first, so its side lingers in TIME_WAIT.
            drop(server);
            let mut got = Vec::new();
            client.read_to_end(&mut got).unwrap();
            assert_eq!(got, b"data");
            drop(listener);
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
        let l = PassivePorts::new(None).bind(mapped).unwrap();
        assert_eq!(l.local_addr().unwrap().ip(), LOCAL);
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
