//! Process and connection limits: the descriptor limit, and how many
//! sessions may run at once in total and from one address (like
//! `tcpsvd -c N -C N:MSG`).
//!
//! The defaults keep a server reachable when one source floods it: at most
//! [`DEFAULT_MAX_PER_IP`] sessions from one address, so that one address
//! (or one IPv6 /64, see [`address_key`]) cannot take every place, and at
//! most [`DEFAULT_MAX_CLIENTS`] in total, fewer when the descriptor limit
//! would not allow that many ([`max_clients_for`]). Connections that do not
//! log in are closed by the engine's login deadline
//! (`ftp_proto::Config::login_timeout`), so they give their places back.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rustix::process::{Resource, getrlimit, setrlimit};

/// Allocations of this size or more are mapped on their own and given back
/// to the system when freed (see [`keep_large_allocations_unpooled`]).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Makes glibc's allocator give large blocks (an S3 upload's 8 MiB parts,
/// the HTTP client's buffers) back to the system when they are freed.
///
/// glibc raises its mmap threshold each time such a block is freed, up to
/// 32 MiB, after which blocks of several MiB come from per-thread heaps
/// that keep them: after a burst of 20 parallel uploads to a bucket the
/// daemon kept about 300 MiB it no longer used. Fixing the threshold at
/// its initial 128 KiB stops that. musl always maps large blocks, and
/// other C libraries are left alone.
#[allow(unsafe_code)]
pub fn keep_large_allocations_unpooled() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's tuning; it is
        // called at start, before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int);
        }
    }
}

/// Raises the soft limit on open descriptors to the hard limit and returns
/// the soft limit now in force (`u64::MAX` for "unlimited").
///
/// When the hard limit is unlimited the soft limit is left alone (Linux
/// refuses an unlimited `RLIMIT_NOFILE`).
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    let Some(maximum) = limit.maximum else {
        return Ok(current);
    };
    if current >= maximum {
        return Ok(current);
    }
    limit.current = Some(maximum);
    setrlimit(Resource::Nofile, limit)?;
    Ok(maximum)
}

/// Default most sessions in total (`--max-clients`), when the descriptor
/// limit allows it (see [`max_clients_for`]). As vsftpd's `max_clients`.
pub const DEFAULT_MAX_CLIENTS: usize = 2000;

/// Default most sessions from one address (`--max-per-ip`), as vsftpd's
/// `max_per_ip`: one source can take no more than this many places.
pub const DEFAULT_MAX_PER_IP: usize = 50;

/// Descriptors counted per session when the default `--max-clients` is
/// derived from the descriptor limit: the control connection, a passive
/// listener or data connection, and a file (an upload through `splice`
/// also holds a pipe for a while).
pub const DESCRIPTORS_PER_SESSION: u64 = 4;

/// Descriptors kept out of the sessions' share: listeners, event loops and
/// their wakers, worker threads, log files, the spare descriptor for
/// refusing clients, standard streams.
pub const RESERVED_DESCRIPTORS: u64 = 64;

/// Prefix length that IPv6 clients are counted by for `--max-per-ip`: one
/// subscriber usually gets a whole /64 and can pick any address in it.
pub const IPV6_PREFIX_LEN: u8 = 64;

/// The default `--max-clients` for a process that may open `nofile`
/// descriptors: [`DEFAULT_MAX_CLIENTS`], or fewer, so that every session
/// can have [`DESCRIPTORS_PER_SESSION`] after [`RESERVED_DESCRIPTORS`];
/// always at least 1 (0 would mean "no limit").
pub fn max_clients_for(nofile: u64) -> usize {
    let sessions = nofile.saturating_sub(RESERVED_DESCRIPTORS) / DESCRIPTORS_PER_SESSION;
    usize::try_from(sessions)
        .unwrap_or(usize::MAX)
        .clamp(1, DEFAULT_MAX_CLIENTS)
}

/// The descriptor limit the process can run with: the hard limit, to
/// which [`raise_nofile_limit`] raises the soft one, or the soft limit when
/// the hard one is unlimited (`u64::MAX` when both are).
pub fn available_nofile_limit() -> u64 {
    let limit = getrlimit(Resource::Nofile);
    let current = limit.current.unwrap_or(u64::MAX);
    limit.maximum.map_or(current, |max| max.max(current))
}

/// The default `--max-clients` of this process: [`max_clients_for`] its
/// [`available_nofile_limit`].
pub fn default_max_clients() -> usize {
    max_clients_for(available_nofile_limit())
}

/// What `--max-per-ip` counts a client address as: IPv4 addresses (also
/// written IPv4-mapped, `::ffff:a.b.c.d`) as themselves, IPv6 addresses by
/// their /64 prefix (the host bits zeroed), since a client with one
/// address usually controls the whole /64.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - u32::from(IPV6_PREFIX_LEN));
            IpAddr::V6(Ipv6Addr::from(v6.to_bits() & mask))
        }
    }
}

/// Writes an address key: IPv4 as it is, IPv6 as `prefix/64`.
fn write_key(f: &mut fmt::Formatter<'_>, key: IpAddr) -> fmt::Result {
    match key {
        IpAddr::V4(v4) => write!(f, "{v4}"),
        IpAddr::V6(v6) => write!(f, "{v6}/{IPV6_PREFIX_LEN}"),
    }
}

/// The `421` text for a server that is full.
pub const TOO_MANY_USERS: &str = "Too many users, try again later.";

/// The default `421` text for an address over its limit.
pub const TOO_MANY_FROM_ADDRESS: &str = "Too many connections from your address.";

/// The `421` text for a client turned away because the process is out of
/// file descriptors (the daemons keep one spare descriptor to say it).
pub const OUT_OF_DESCRIPTORS: &str = "Too many open files, try again later.";

/// Counts running sessions and refuses new ones over the limits. Shared
/// between threads behind an [`Arc`]; each admitted connection holds a
/// [`ConnectionSlot`] until it ends.
pub struct ConnectionLimiter {
    /// Most sessions in total; 0 = no limit.
    max_clients: usize,
    /// Most sessions per address; 0 = no limit.
    max_per_ip: u32,
    /// `421` text for an address over its limit.
    per_ip_message: Arc<str>,
    /// Sessions now running (also counted under `per_ip`'s lock).
    total: AtomicUsize,
    /// Sessions now running per address key ([`address_key`]).
    per_ip: Mutex<HashMap<IpAddr, u32>>,
}

impl fmt::Debug for ConnectionLimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimiter")
            .field("max_clients", &self.max_clients)
            .field("max_per_ip", &self.max_per_ip)
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

/// Why a connection was refused. Send [`LimitExceeded::reply`] and close.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LimitExceeded {
    /// The server runs its maximum number of sessions.
    TooManyClients,
    /// The client's address runs its maximum number of sessions.
    TooManyFromAddress {
        /// What was counted ([`address_key`]): the client's IPv4 address
        /// (IPv4-mapped IPv6 as IPv4), or its IPv6 /64 prefix.
        ip: IpAddr,
        /// The configured `421` text.
        message: Arc<str>,
    },
}

impl LimitExceeded {
    /// The text of the `421` reply.
    pub fn message(&self) -> &str {
        match self {
            LimitExceeded::TooManyClients => TOO_MANY_USERS,
            LimitExceeded::TooManyFromAddress { message, .. } => message,
        }
    }
}

impl fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitExceeded::TooManyClients => f.write_str("too many clients"),
            LimitExceeded::TooManyFromAddress { ip, .. } => {
                f.write_str("too many connections from ")?;
                write_key(f, *ip)
            }
        }
    }
}

impl std::error::Error for LimitExceeded {}

/// One admitted connection. Dropping it frees the place.
pub struct ConnectionSlot {
    limiter: Arc<ConnectionLimiter>,
    ip: IpAddr,
}

impl fmt::Debug for ConnectionSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSlot")
            .field("ip", &self.ip)
            .finish()
    }
}

impl ConnectionSlot {
    /// What this slot counts against ([`address_key`]): an IPv4 address
    /// or an IPv6 /64 prefix.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut map = self.limiter.lock();
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
        self.limiter.total.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection from a proxy that has not sent its PROXY header yet: it
/// counts against `--max-clients` (not against any address) until dropped,
/// so connections waiting for headers cannot outnumber the sessions.
pub struct HeaderSlot {
    limiter: Arc<ConnectionLimiter>,
}

impl fmt::Debug for HeaderSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HeaderSlot")
    }
}

impl Drop for HeaderSlot {
    fn drop(&mut self) {
        self.limiter.total.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ConnectionLimiter {
    /// Holds a place for a connection whose client is not known yet (it
    /// waits for its PROXY header), or says the server is full.
    pub fn try_hold(self: &Arc<Self>) -> Result<HeaderSlot, LimitExceeded> {
        let map = self.lock();
        if self.max_clients != 0 && self.total.load(Ordering::Relaxed) >= self.max_clients {
            return Err(LimitExceeded::TooManyClients);
        }
        self.total.fetch_add(1, Ordering::Relaxed);
        drop(map);
        Ok(HeaderSlot {
            limiter: Arc::clone(self),
        })
    }

    /// A limiter admitting at most `max_clients` sessions (0 = no limit)
    /// and, with `max_per_ip = Some((n, message))`, at most `n` from one
    /// address (0 = no limit), refused with `421 message`.
    pub fn new(max_clients: usize, max_per_ip: Option<(usize, String)>) -> Self {
        let (per_ip, message) = match max_per_ip {
            Some((n, m)) => (u32::try_from(n).unwrap_or(u32::MAX), m),
            None => (0, TOO_MANY_FROM_ADDRESS.to_string()),
        };
        ConnectionLimiter {
            max_clients,
            max_per_ip: per_ip,
            per_ip_message: Arc::from(message),
            total: AtomicUsize::new(0),
            per_ip: Mutex::new(HashMap::new()),
        }
    }

    /// A limiter built from the server's settings.
    pub fn from_config(config: &crate::cli::ServerConfig) -> Self {
        Self::new(config.max_clients, config.max_per_ip.clone())
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // A panic elsewhere cannot leave the counts half-updated (each
        // update is a single step), so a poisoned lock is still usable.
        self.per_ip.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Admits a connection from `ip`, or says which limit it is over.
    /// Addresses are counted by [`address_key`]: IPv4-mapped IPv6
    /// addresses (`::ffff:a.b.c.d`) as IPv4, IPv6 by /64 prefix.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, LimitExceeded> {
        let ip = address_key(ip);
        let mut map = self.lock();
        if self.max_clients != 0 && self.total.load(Ordering::Relaxed) >= self.max_clients {
            return Err(LimitExceeded::TooManyClients);
        }
        let count = map.entry(ip).or_insert(0);
        if self.max_per_ip != 0 && *count >= self.max_per_ip {
            return Err(LimitExceeded::TooManyFromAddress {
                ip,
                message: Arc::clone(&self.per_ip_message),
            });
        }
        *count += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        drop(map);
        Ok(ConnectionSlot {
            limiter: Arc::clone(self),
            ip,
        })
    }

    /// Sessions now running.
    pub fn active(&self) -> usize {
        self.total.load(Ordering::Relaxed)
    }

    /// Sessions now running from `ip` (counted like
    /// [`ConnectionLimiter::try_acquire`]).
    pub fn active_from(&self, ip: IpAddr) -> usize {
        self.lock().get(&address_key(ip)).copied().unwrap_or(0) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn total_limit() {
        let l = Arc::new(ConnectionLimiter::new(2, None));
        let s1 = l.try_acquire(A).unwrap();
        let s2 = l.try_acquire(A).unwrap();
        let err = l.try_acquire(B).unwrap_err();
        assert_eq!(err, LimitExceeded::TooManyClients);
        assert_eq!(err.message(), "Too many users, try again later.");
        assert_eq!(l.active(), 2);
        drop(s1);
        assert_eq!(l.active(), 1);
        let s3 = l.try_acquire(B).unwrap();
        assert_eq!((l.active_from(A), l.active_from(B)), (1, 1));
        drop((s2, s3));
        assert_eq!(l.active(), 0);
        assert!(l.lock().is_empty(), "empty entries are removed");
    }

    #[test]
    fn connections_waiting_for_a_header_count_in_the_total_only() {
        let l = Arc::new(ConnectionLimiter::new(2, Some((1, "Go away.".into()))));
        let held = l.try_hold().unwrap();
        let a = l.try_acquire(A).unwrap();
        assert_eq!(l.try_hold().unwrap_err(), LimitExceeded::TooManyClients);
        assert_eq!(l.try_acquire(B).unwrap_err(), LimitExceeded::TooManyClients);
        drop(held);
        let b = l.try_acquire(B).unwrap();
        assert_eq!(l.active(), 2);
        drop((a, b));
        assert_eq!(l.active(), 0);
    }

    #[test]
    fn per_ip_limit_with_message() {
        let l = Arc::new(ConnectionLimiter::new(0, Some((1, "Go away.".into()))));
        let _a = l.try_acquire(A).unwrap();
        let err = l.try_acquire(A).unwrap_err();
        assert_eq!(err.message(), "Go away.");
        assert!(matches!(err, LimitExceeded::TooManyFromAddress { ip, .. } if ip == A));
        let _b = l.try_acquire(B).unwrap();
        assert_eq!(l.active(), 2);
    }

    #[test]
    fn ipv4_mapped_counts_as_ipv4() {
        let l = Arc::new(ConnectionLimiter::new(
            10,
            Some((1, TOO_MANY_FROM_ADDRESS.into())),
        ));
        let mapped = IpAddr::V6(Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped());
        let slot = l.try_acquire(mapped).unwrap();
        assert_eq!(slot.ip(), A);
        let err = l.try_acquire(A).unwrap_err();
        assert_eq!(err.message(), TOO_MANY_FROM_ADDRESS);
        assert_eq!(l.active_from(mapped), 1);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(l.try_acquire(v6).is_ok());
    }

    #[test]
    fn ipv6_counts_by_64_prefix() {
        let l = Arc::new(ConnectionLimiter::new(
            10,
            Some((2, TOO_MANY_FROM_ADDRESS.into())),
        ));
        let host = |s: &str| IpAddr::V6(s.parse().unwrap());
        let _a = l.try_acquire(host("2001:db8:1:2::1")).unwrap();
        let b = l
            .try_acquire(host("2001:db8:1:2:ffff:ffff:ffff:ffff"))
            .unwrap();
        assert_eq!(b.ip(), host("2001:db8:1:2::"));
        let err = l.try_acquire(host("2001:db8:1:2:abcd::9")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "too many connections from 2001:db8:1:2::/64"
        );
        assert_eq!(l.active_from(host("2001:db8:1:2::77")), 2);
        // The next /64 is another count.
        assert!(l.try_acquire(host("2001:db8:1:3::1")).is_ok());
        assert_eq!(
            LimitExceeded::TooManyFromAddress {
                ip: A,
                message: Arc::from("x")
            }
            .to_string(),
            "too many connections from 192.0.2.1"
        );
    }

    #[test]
    fn address_keys() {
        let mapped = IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped());
        assert_eq!(address_key(mapped), IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)));
        assert_eq!(address_key(A), A);
        assert_eq!(
            address_key(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        );
    }

    #[test]
    fn default_max_clients_follows_the_descriptor_limit() {
        assert_eq!(max_clients_for(u64::MAX), DEFAULT_MAX_CLIENTS);
        assert_eq!(max_clients_for(1 << 20), DEFAULT_MAX_CLIENTS);
        let enough = RESERVED_DESCRIPTORS + DESCRIPTORS_PER_SESSION * DEFAULT_MAX_CLIENTS as u64;
        assert_eq!(max_clients_for(enough), DEFAULT_MAX_CLIENTS);
        assert_eq!(max_clients_for(enough - 1), DEFAULT_MAX_CLIENTS - 1);
        // The usual soft limit of 1024.
        assert_eq!(max_clients_for(1024), 240);
        // Never 0, which would mean "no limit".
        assert_eq!(max_clients_for(0), 1);
        assert_eq!(max_clients_for(RESERVED_DESCRIPTORS), 1);
        let available = available_nofile_limit();
        assert!(available >= getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX));
        assert_eq!(default_max_clients(), max_clients_for(available));
    }

    #[test]
    fn zero_means_unlimited() {
        let l = Arc::new(ConnectionLimiter::new(0, Some((0, String::new()))));
        let slots: Vec<_> = (0..100).map(|_| l.try_acquire(A).unwrap()).collect();
        assert_eq!(l.active_from(A), 100);
        drop(slots);
        assert_eq!(l.active(), 0);
    }

    #[test]
    fn concurrent_use_balances() {
        let l = Arc::new(ConnectionLimiter::new(8, Some((8, "x".into()))));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = Arc::clone(&l);
                std::thread::spawn(move || {
                    let mut admitted = 0;
                    for _ in 0..1000 {
                        if let Ok(slot) = l.try_acquire(A) {
                            assert!(l.active() <= 8);
                            admitted += 1;
                            drop(slot);
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(admitted, 4000, "never more than 4 at once, so none refused");
        assert_eq!(l.active(), 0);
    }

    #[test]
    fn nofile_limit_is_raised_to_the_hard_limit() {
        let soft = raise_nofile_limit().unwrap();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(now.current.unwrap_or(u64::MAX), soft);
        if let Some(max) = now.maximum {
            assert_eq!(soft, max);
        }
    }
}
