//! `--proxy-from CIDR[,CIDR...]`: the networks whose connections must
//! begin with a PROXY header.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Why a `--proxy-from` entry was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourcesError {
    /// Not an IP address (before the `/`).
    Address(String),
    /// The prefix length is not a number, or too long for the family.
    Prefix(String),
    /// The address has bits set beyond the prefix (`10.0.0.1/8`).
    HostBits(String),
    /// The list is empty.
    Empty,
}

impl fmt::Display for SourcesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourcesError::Address(s) => write!(f, "'{}' is not an IP address", s.escape_debug()),
            SourcesError::Prefix(s) => write!(
                f,
                "'{}' has a bad prefix length (0-32 for IPv4, 0-128 for IPv6)",
                s.escape_debug()
            ),
            SourcesError::HostBits(s) => write!(
                f,
                "'{}' has bits set after the prefix: write the network's first address",
                s.escape_debug()
            ),
            SourcesError::Empty => f.write_str("no network given"),
        }
    }
}

impl std::error::Error for SourcesError {}

/// One network: an address and a prefix length. IPv4-mapped IPv6
/// addresses are taken as IPv4, on both sides of a match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                mask32(self.prefix) & ip.to_bits() == net.to_bits()
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                mask128(self.prefix) & ip.to_bits() == net.to_bits()
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Network {
    type Err = SourcesError;

    /// `ADDR` (one host) or `ADDR/LEN`.
    fn from_str(s: &str) -> Result<Network, SourcesError> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| SourcesError::Address(s.to_string()))?;
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| SourcesError::Prefix(s.to_string()))?,
        };
        let network = Network { addr, prefix };
        if !network.contains(addr) {
            return Err(SourcesError::HostBits(s.to_string()));
        }
        Ok(network)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The networks whose connections must begin with a PROXY header.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySources {
    networks: Vec<Network>,
}

impl ProxySources {
    /// Parses `CIDR[,CIDR...]`; each entry is an address (one host) or a
    /// network `ADDR/LEN` written with its first address.
    pub fn parse(list: &str) -> Result<ProxySources, SourcesError> {
        Self::from_entries(list.split(','))
    }

    /// Parses each entry as [`ProxySources::parse`] does one (for the
    /// configuration file's list).
    pub fn from_entries<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<ProxySources, SourcesError> {
        let networks = entries
            .into_iter()
            .filter(|e| !e.trim().is_empty())
            .map(str::parse)
            .collect::<Result<Vec<Network>, _>>()?;
        if networks.is_empty() {
            return Err(SourcesError::Empty);
        }
        Ok(ProxySources { networks })
    }

    /// Whether a connection from `ip` must begin with a PROXY header.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(ip))
    }

    /// The networks, for logs.
    pub fn networks(&self) -> &[Network] {
        &self.networks
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn hosts_and_networks() {
        let s = ProxySources::parse("127.0.0.1, 10.0.0.0/8,fd00::/8").unwrap();
        assert!(s.contains(ip("127.0.0.1")));
        assert!(
            s.contains(ip("::ffff:127.0.0.1")),
            "IPv4-mapped counts as IPv4"
        );
        assert!(!s.contains(ip("127.0.0.2")));
        assert!(s.contains(ip("10.200.3.4")));
        assert!(!s.contains(ip("11.0.0.1")));
        assert!(s.contains(ip("fd12::1")));
        assert!(!s.contains(ip("fe80::1")));
        assert!(!s.contains(ip("::1")));
        let all = ProxySources::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!(!all.contains(ip("2001:db8::1")));
        let mapped = ProxySources::parse("::ffff:192.0.2.0/120").unwrap_err();
        assert!(matches!(mapped, SourcesError::Prefix(_)), "{mapped}");
        assert_eq!(
            ProxySources::parse("::ffff:192.0.2.1").unwrap().networks()[0].to_string(),
            "192.0.2.1/32"
        );
    }

    #[test]
    fn refusals() {
        for (text, want) in [
            ("", SourcesError::Empty),
            (" , ", SourcesError::Empty),
            ("localhost", SourcesError::Address("localhost".into())),
            ("10.0.0.0/33", SourcesError::Prefix("10.0.0.0/33".into())),
            ("10.0.0.0/x", SourcesError::Prefix("10.0.0.0/x".into())),
            ("::/129", SourcesError::Prefix("::/129".into())),
            ("10.0.0.1/8", SourcesError::HostBits("10.0.0.1/8".into())),
        ] {
            assert_eq!(ProxySources::parse(text), Err(want), "{text:?}");
        }
    }
}
