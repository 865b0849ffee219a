//! The PROXY protocol (versions 1 and 2, as haproxy, cloud load balancers
//! and other proxies send it): who must send a header, reading it, and
//! what it says.
//!
//! A connection from one of the `--proxy-from` networks ([`ProxySources`])
//! must begin with a PROXY header; the address it carries is the client's
//! address for everything after (connection limits, the passive data
//! connection check, PORT/EPRT checks, logs, xferlog). The header is read
//! before the engine sees a byte:
//!
//! * [`HeaderReader`] is the sans-IO part: it is given what the connection
//!   has received so far and says "more", "this header, N bytes long" or
//!   why not ([`HeaderError`]), with a deadline ([`HEADER_TIMEOUT`]).
//! * [`read_header`] is the one socket step both runtimes use: it peeks at
//!   the received bytes without taking them, hands them to the reader,
//!   and once a header is complete takes exactly its bytes off the socket,
//!   so whatever follows (FTP commands, a TLS handshake, uploaded data)
//!   stays in the socket for the session, and no runtime handles leftover
//!   bytes.
//!
//! Control connections go through [`crate::admission`]; passive data
//! connections through [`crate::passive::take_allowed`]. The runtimes only
//! wait for the socket to be readable or for the deadline.
//!
//! A v2 `LOCAL` header (a balancer's health check) and a header without
//! addresses (v1 `UNKNOWN`, v2 `UNSPEC`) are answered by closing the
//! connection quietly; a header that is missing, malformed or late closes
//! it without a reply, and is logged.

mod header;
mod socket;
mod sources;

pub use header::{
    HEADER_TIMEOUT, HeaderError, HeaderReader, MAX_HEADER, Parsed, ProxiedAddresses, ProxyHeader,
};
pub use socket::{HeaderRead, PARTIAL_RETRY, read_header};
pub use sources::{Network, ProxySources, SourcesError};
