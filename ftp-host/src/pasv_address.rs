//! `--pasv-address`: the IPv4 address announced in `227` replies, given
//! as an address or as a host name. Behind a load balancer every node
//! announces the balancer's address; naming it lets it change: the name
//! is resolved when the daemon starts (it must resolve then) and again
//! every [`RESOLVE_EVERY`] on a thread of its own, never on an event loop,
//! and a new address is swapped into the engine configuration that new
//! sessions start with ([`EngineConfig`]). A failed later resolution keeps
//! the address there is, and is logged.

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

/// How often a host name given to `--pasv-address` is resolved again.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(60);

/// `--pasv-address` as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PasvAddress {
    /// An IPv4 address, used as it is.
    Ip(Ipv4Addr),
    /// A host name, resolved to its first IPv4 address.
    Host(String),
}

/// Why a `--pasv-address` value was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasvAddressError {
    /// An IPv6 address: `227` replies carry IPv4 only.
    Ipv6,
    /// Neither an IPv4 address nor a host name.
    NotAHost,
}

impl fmt::Display for PasvAddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PasvAddressError::Ipv6 => {
                "must be an IPv4 address or a host name (227 replies carry IPv4 only; EPSV needs none)"
            }
            PasvAddressError::NotAHost => {
                "expected an IPv4 address such as 203.0.113.7 or a host name such as ftp.example.com"
            }
        })
    }
}

impl std::error::Error for PasvAddressError {}

impl PasvAddress {
    /// Parses an IPv4 address or a host name (letters, digits, `-` and
    /// `.`, at most 253 characters).
    pub fn parse(s: &str) -> Result<PasvAddress, PasvAddressError> {
        let s = s.trim();
        match s.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => return Ok(PasvAddress::Ip(ip)),
            Ok(IpAddr::V6(_)) => return Err(PasvAddressError::Ipv6),
            Err(_) => {}
        }
        let labels_ok = s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let all_digits = s.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if s.is_empty() || s.len() > 253 || !labels_ok || all_digits {
            return Err(PasvAddressError::NotAHost);
        }
        Ok(PasvAddress::Host(s.to_string()))
    }

    /// The address now: the IPv4 address, or the host name's first IPv4
    /// address (a blocking look-up).
    pub fn resolve(&self) -> io::Result<Ipv4Addr> {
        match self {
            PasvAddress::Ip(ip) => Ok(*ip),
            PasvAddress::Host(host) => resolve_host(host),
        }
    }
}

impl fmt::Display for PasvAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PasvAddress::Ip(ip) => write!(f, "{ip}"),
            PasvAddress::Host(host) => f.write_str(host),
        }
    }
}

/// The first IPv4 address of `host` (the system's resolver).
fn resolve_host(host: &str) -> io::Result<Ipv4Addr> {
    (host, 0)
        .to_socket_addrs()?
        .find_map(|a| match a.ip().to_canonical() {
            IpAddr::V4(ip) => Some(ip),
            IpAddr::V6(_) => None,
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no IPv4 address"))
}

/// The engine configuration new sessions start with, which the resolver
/// thread may replace (with a new `pasv_address`) while sessions run.
#[derive(Debug)]
pub struct EngineConfig {
    current: RwLock<Arc<ftp_proto::Config>>,
}

impl EngineConfig {
    /// Holds `config`.
    pub fn new(config: Arc<ftp_proto::Config>) -> EngineConfig {
        EngineConfig {
            current: RwLock::new(config),
        }
    }

    /// The configuration for a session starting now.
    pub fn get(&self) -> Arc<ftp_proto::Config> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Announces `ip` in the `227` replies of sessions started from now
    /// on; `true` if that changed anything.
    pub fn set_pasv_address(&self, ip: Ipv4Addr) -> bool {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        if current.pasv_address == Some(ip) {
            return false;
        }
        let mut config = (**current).clone();
        config.pasv_address = Some(ip);
        *current = Arc::new(config);
        true
    }
}

/// Resolves `host` with `resolve` and puts a new address into `engine`
/// (one round of the resolver thread).
pub fn refresh(
    engine: &EngineConfig,
    host: &str,
    resolve: impl FnOnce(&str) -> io::Result<Ipv4Addr>,
) {
    match resolve(host) {
        Ok(ip) => {
            if engine.set_pasv_address(ip) {
                log::info!("--pasv-address {host} is now {ip}");
            }
        }
        Err(e) => log::warn!("--pasv-address {host}: {e}; still announcing the last address"),
    }
}

/// Starts the thread that resolves `host` every `every` for `engine`;
/// it ends once `engine` is gone (the server stopped).
pub fn spawn_resolver(engine: Weak<EngineConfig>, host: String, every: Duration) -> io::Result<()> {
    std::thread::Builder::new()
        .name("ftp-pasv-dns".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                // Resolved before the configuration is taken, so a slow
                // resolver keeps nothing alive.
                let resolved = resolve_host(&host);
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                refresh(&engine, &host, |_| resolved);
            }
        })
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            PasvAddress::parse(" 203.0.113.7 "),
            Ok(PasvAddress::Ip(Ipv4Addr::new(203, 0, 113, 7)))
        );
        assert_eq!(
            PasvAddress::parse("ftp.example.com"),
            Ok(PasvAddress::Host("ftp.example.com".into()))
        );
        assert_eq!(
            PasvAddress::parse("localhost"),
            Ok(PasvAddress::Host("localhost".into()))
        );
        assert_eq!(PasvAddress::parse("::1"), Err(PasvAddressError::Ipv6));
        for bad in ["", "1.2.3", "a..b", "-a.b", "a_b.c", "a b", "300.1.1.1"] {
            assert_eq!(
                PasvAddress::parse(bad),
                Err(PasvAddressError::NotAHost),
                "{bad:?}"
            );
        }
        let ip = PasvAddress::parse("localhost").unwrap().resolve().unwrap();
        assert!(ip.is_loopback(), "{ip}");
    }

    #[test]
    fn refresh_swaps_the_address_for_new_sessions() {
        let engine = EngineConfig::new(Arc::new(ftp_proto::Config {
            pasv_address: Some(Ipv4Addr::new(192, 0, 2, 1)),
            ..ftp_proto::Config::default()
        }));
        let before = engine.get();
        refresh(&engine, "lb", |_| Ok(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(engine.get().pasv_address, Some(Ipv4Addr::new(192, 0, 2, 2)));
        assert_eq!(before.pasv_address, Some(Ipv4Addr::new(192, 0, 2, 1)));
        // A failure keeps the address.
        refresh(&engine, "lb", |_| Err(io::ErrorKind::NotFound.into()));
        assert_eq!(engine.get().pasv_address, Some(Ipv4Addr::new(192, 0, 2, 2)));
        // The same address is not a change.
        assert!(!engine.set_pasv_address(Ipv4Addr::new(192, 0, 2, 2)));
    }

    #[test]
    fn the_resolver_thread_ends_with_the_server() {
        let engine = Arc::new(EngineConfig::new(Arc::new(ftp_proto::Config::default())));
        spawn_resolver(
            Arc::downgrade(&engine),
            "localhost".into(),
            Duration::from_millis(20),
        )
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !engine.get().pasv_address.is_some_and(|ip| ip.is_loopback()) {
            assert!(std::time::Instant::now() < deadline, "never resolved");
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(engine);
    }
}
