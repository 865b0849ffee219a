//! The sans-IO PROXY header reader: bytes received so far and the time
//! in, "more", a header and its length, or an error out. Parsing is the
//! `ppp` crate's; this module decides what a header means for the server.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ppp::HeaderResult;
use ppp::PartialResult;

/// How long a connection from a proxy source may take to send its whole
/// header; after that it is closed.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// The longest header accepted, in bytes: a v1 header is at most 107
/// bytes; a v2 header is 16 bytes plus its addresses (36 for IPv6) and
/// TLVs (a balancer's unique id, TLS details, a cloud endpoint id), far
/// below this. A longer one is refused ([`HeaderError::TooLong`]).
pub const MAX_HEADER: usize = 1024;

/// The client's connection as the proxy saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProxiedAddresses {
    /// The client's address: the one the server uses for everything.
    pub source: SocketAddr,
    /// The address the client connected to (the balancer's).
    pub destination: SocketAddr,
}

/// What a complete header says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// A proxied TCP connection.
    Proxied(ProxiedAddresses),
    /// The proxy's own connection (a v2 `LOCAL` header, a health check),
    /// or one whose addresses it does not know (v1 `UNKNOWN`, v2
    /// `UNSPEC`): closed quietly.
    Local,
}

/// Why a connection from a proxy source is closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The bytes are not a PROXY header (what the parser said).
    Malformed(String),
    /// A v2 header for something other than TCP over IPv4 or IPv6 (a
    /// UNIX socket, UDP).
    Unsupported(&'static str),
    /// The header is longer than [`MAX_HEADER`].
    TooLong,
    /// The connection ended before the header was complete.
    Closed,
    /// Reading the connection failed (what the system said).
    Socket(String),
    /// The header was not complete within [`HEADER_TIMEOUT`].
    Late,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::Malformed(why) => write!(f, "malformed PROXY header: {why}"),
            HeaderError::Unsupported(what) => write!(f, "PROXY header for {what}"),
            HeaderError::TooLong => write!(f, "PROXY header longer than {MAX_HEADER} bytes"),
            HeaderError::Closed => f.write_str("closed before a complete PROXY header"),
            HeaderError::Socket(e) => write!(f, "reading the PROXY header: {e}"),
            HeaderError::Late => write!(
                f,
                "no complete PROXY header within {} s",
                HEADER_TIMEOUT.as_secs()
            ),
        }
    }
}

impl std::error::Error for HeaderError {}

/// What [`HeaderReader::feed`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The bytes so far are the start of a header: wait for more, until
    /// [`HeaderReader::deadline`].
    NeedMore,
    /// A complete header, the first `len` bytes; what follows belongs to
    /// the session.
    Header {
        /// What it says.
        header: ProxyHeader,
        /// Its length in bytes.
        len: usize,
    },
    /// The connection must be closed.
    Failed(HeaderError),
}

/// Reads the PROXY header at the start of one connection.
///
/// It keeps no copy of the bytes: [`feed`](Self::feed) is given every
/// byte received so far, from the first (the socket step peeks at them
/// without taking them), and at most [`MAX_HEADER`] of them are looked
/// at.
#[derive(Clone, Copy, Debug)]
pub struct HeaderReader {
    deadline: Instant,
}

impl HeaderReader {
    /// A reader for a connection accepted at `now`.
    pub fn new(now: Instant) -> HeaderReader {
        HeaderReader {
            deadline: now + HEADER_TIMEOUT,
        }
    }

    /// When the header must be complete.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Looks at `received`, every byte the connection sent so far (or its
    /// first [`MAX_HEADER`] bytes), at `now`.
    pub fn feed(&self, received: &[u8], now: Instant) -> Parsed {
        let seen = &received[..received.len().min(MAX_HEADER)];
        let result = HeaderResult::parse(seen);
        if result.is_incomplete() || v1_line_unfinished(seen) {
            return if received.len() >= MAX_HEADER {
                Parsed::Failed(HeaderError::TooLong)
            } else if now >= self.deadline {
                Parsed::Failed(HeaderError::Late)
            } else {
                Parsed::NeedMore
            };
        }
        match meaning(result) {
            Ok((header, len)) => Parsed::Header { header, len },
            Err(e) => Parsed::Failed(e),
        }
    }

    /// The connection ended (a read returned no bytes) with `received`
    /// still in it.
    pub fn closed(&self, received: &[u8], now: Instant) -> Parsed {
        match self.feed(received, now) {
            Parsed::NeedMore => Parsed::Failed(HeaderError::Closed),
            other => other,
        }
    }

    /// Nothing more came by the deadline (`now` is at or after it).
    pub fn expired(&self, received: &[u8], now: Instant) -> Parsed {
        match self.feed(received, now.max(self.deadline)) {
            Parsed::NeedMore => Parsed::Failed(HeaderError::Late),
            other => other,
        }
    }
}

/// The longest v1 header, line end included.
const V1_MAX: usize = 107;

/// Whether `seen` is the start of a v1 header whose line has not ended: it
/// is judged once the line is whole (a line cut just before its last
/// field would otherwise look like a bad port).
fn v1_line_unfinished(seen: &[u8]) -> bool {
    const PREFIX: &[u8] = b"PROXY ";
    let v1 = if seen.len() < PREFIX.len() {
        PREFIX.starts_with(seen)
    } else {
        seen.starts_with(PREFIX)
    };
    v1 && seen.len() < V1_MAX && !seen.contains(&b'\n')
}

/// What a complete parse result means, and its length.
fn meaning(result: HeaderResult<'_>) -> Result<(ProxyHeader, usize), HeaderError> {
    use ppp::{v1, v2};
    match result {
        HeaderResult::V1(Ok(header)) => {
            let len = header.header.len();
            let header = match header.addresses {
                v1::Addresses::Tcp4(a) => proxied(
                    SocketAddr::from((a.source_address, a.source_port)),
                    SocketAddr::from((a.destination_address, a.destination_port)),
                ),
                v1::Addresses::Tcp6(a) => proxied(
                    SocketAddr::from((a.source_address, a.source_port)),
                    SocketAddr::from((a.destination_address, a.destination_port)),
                ),
                v1::Addresses::Unknown => ProxyHeader::Local,
            };
            Ok((header, len))
        }
        HeaderResult::V2(Ok(header)) => {
            let len = header.len();
            if header.command == v2::Command::Local {
                return Ok((ProxyHeader::Local, len));
            }
            if header.protocol == v2::Protocol::Datagram {
                return Err(HeaderError::Unsupported("UDP"));
            }
            let header = match header.addresses {
                v2::Addresses::IPv4(a) => proxied(
                    SocketAddr::from((a.source_address, a.source_port)),
                    SocketAddr::from((a.destination_address, a.destination_port)),
                ),
                v2::Addresses::IPv6(a) => proxied(
                    SocketAddr::from((a.source_address, a.source_port)),
                    SocketAddr::from((a.destination_address, a.destination_port)),
                ),
                v2::Addresses::Unspecified => ProxyHeader::Local,
                v2::Addresses::Unix(_) => return Err(HeaderError::Unsupported("a UNIX socket")),
            };
            Ok((header, len))
        }
        HeaderResult::V1(Err(e)) => Err(HeaderError::Malformed(e.to_string())),
        HeaderResult::V2(Err(e)) => Err(HeaderError::Malformed(e.to_string())),
    }
}

fn proxied(source: SocketAddr, destination: SocketAddr) -> ProxyHeader {
    ProxyHeader::Proxied(ProxiedAddresses {
        source: crate::server::canonical(source),
        destination: crate::server::canonical(destination),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ppp::v2::{Builder, Command, Protocol, Version};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn v2(command: Command, from: &str, to: &str) -> Vec<u8> {
        Builder::with_addresses(Version::Two | command, Protocol::Stream, (sa(from), sa(to)))
            .build()
            .unwrap()
    }

    fn reader() -> (HeaderReader, Instant) {
        let now = Instant::now();
        (HeaderReader::new(now), now)
    }

    #[test]
    fn v1_tcp4_and_tcp6_with_what_follows() {
        let (r, now) = reader();
        let text = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\nUSER ftp\r\n";
        let want = ProxyHeader::Proxied(ProxiedAddresses {
            source: sa("192.0.2.7:40000"),
            destination: sa("198.51.100.1:21"),
        });
        assert_eq!(
            r.feed(text, now),
            Parsed::Header {
                header: want,
                len: 44
            }
        );
        let text = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 21\r\n";
        match r.feed(text, now) {
            Parsed::Header {
                header: ProxyHeader::Proxied(a),
                len,
            } => {
                assert_eq!(a.source, sa("[2001:db8::7]:40000"));
                assert_eq!(len, text.len());
            }
            other => panic!("{other:?}"),
        }
        // IPv4-mapped source addresses count as IPv4.
        let text = b"PROXY TCP6 ::ffff:192.0.2.7 ::1 1 2\r\n";
        match r.feed(text, now) {
            Parsed::Header {
                header: ProxyHeader::Proxied(a),
                ..
            } => assert_eq!(a.source, sa("192.0.2.7:1")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            r.feed(b"PROXY UNKNOWN\r\n", now),
            Parsed::Header {
                header: ProxyHeader::Local,
                len: 15
            }
        );
    }

    #[test]
    fn v2_proxy_and_local() {
        let (r, now) = reader();
        let mut bytes = v2(Command::Proxy, "192.0.2.7:40000", "198.51.100.1:21");
        let len = bytes.len();
        assert_eq!(len, 28);
        bytes.extend_from_slice(b"USER ftp\r\n");
        match r.feed(&bytes, now) {
            Parsed::Header {
                header: ProxyHeader::Proxied(a),
                len: got,
            } => {
                assert_eq!(a.source, sa("192.0.2.7:40000"));
                assert_eq!(a.destination, sa("198.51.100.1:21"));
                assert_eq!(got, len);
            }
            other => panic!("{other:?}"),
        }
        let bytes = v2(Command::Proxy, "[2001:db8::7]:1", "[2001:db8::1]:21");
        assert!(matches!(
            r.feed(&bytes, now),
            Parsed::Header {
                header: ProxyHeader::Proxied(_),
                len: 52
            }
        ));
        // The balancer's health check.
        let local = v2(Command::Local, "127.0.0.1:1", "127.0.0.1:2");
        assert!(matches!(
            r.feed(&local, now),
            Parsed::Header {
                header: ProxyHeader::Local,
                ..
            }
        ));
        let udp = Builder::with_addresses(
            Version::Two | Command::Proxy,
            Protocol::Datagram,
            (sa("192.0.2.7:1"), sa("192.0.2.8:2")),
        )
        .build()
        .unwrap();
        assert_eq!(
            r.feed(&udp, now),
            Parsed::Failed(HeaderError::Unsupported("UDP"))
        );
    }

    #[test]
    fn partial_headers_wait_until_the_deadline() {
        let (r, now) = reader();
        let v1 = b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 21\r\n";
        let v2 = v2(Command::Proxy, "192.0.2.7:40000", "198.51.100.1:21");
        for whole in [&v1[..], &v2[..]] {
            for cut in 0..whole.len() {
                assert_eq!(r.feed(&whole[..cut], now), Parsed::NeedMore, "cut at {cut}");
                let late = now + HEADER_TIMEOUT;
                assert_eq!(
                    r.feed(&whole[..cut], late),
                    Parsed::Failed(HeaderError::Late)
                );
                assert_eq!(
                    r.expired(&whole[..cut], now),
                    Parsed::Failed(HeaderError::Late)
                );
                assert_eq!(
                    r.closed(&whole[..cut], now),
                    Parsed::Failed(HeaderError::Closed)
                );
            }
            // Complete at the deadline still counts.
            assert!(matches!(r.expired(whole, now), Parsed::Header { .. }));
        }
        assert_eq!(r.deadline(), now + HEADER_TIMEOUT);
    }

    #[test]
    fn malformed_and_too_long() {
        let (r, now) = reader();
        for bad in [
            &b"USER ftp\r\n"[..],
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000\r\n",
            b"PROXY TCP4 not-an-ip 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.7 198.51.100.1 99999 21\r\n",
            b"PROXY TCP5 192.0.2.7 198.51.100.1 1 2\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c",
        ] {
            assert!(
                matches!(r.feed(bad, now), Parsed::Failed(HeaderError::Malformed(_))),
                "{bad:?}: {:?}",
                r.feed(bad, now)
            );
        }
        // A v1 line that never ends, and a v2 header announcing more than
        // the bound.
        let endless = [b"PROXY TCP4 ".as_slice(), &[b'1'; 200]].concat();
        assert!(matches!(r.feed(&endless, now), Parsed::Failed(_)));
        let mut huge = v2(Command::Proxy, "192.0.2.7:1", "192.0.2.8:2");
        huge[14..16].copy_from_slice(&2000u16.to_be_bytes());
        huge.resize(MAX_HEADER + 10, 0);
        assert_eq!(r.feed(&huge, now), Parsed::Failed(HeaderError::TooLong));
    }

    proptest::proptest! {
        /// No input makes the reader panic, and a header it accepts is
        /// never longer than what it was given.
        #[test]
        fn any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let (r, now) = reader();
            if let Parsed::Header { len, .. } = r.feed(&bytes, now) {
                proptest::prop_assert!(len <= bytes.len());
            }
            let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
            v2.extend_from_slice(&bytes);
            if let Parsed::Header { len, .. } = r.feed(&v2, now) {
                proptest::prop_assert!(len <= v2.len());
            }
        }
    }
}
