//! `--proxy-header`: every control and passive data connection of the
//! generator begins with a PROXY protocol v2 header naming its own
//! addresses, as haproxy's `send-proxy-v2` would, and our daemons run with
//! `--proxy-from 127.0.0.1`. Measures what reading the header costs.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns headers on for the whole run.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether connections begin with a header.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// The v2 `PROXY` header of a TCP connection from `source` to
/// `destination`.
pub fn v2(source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(0x21);
    let mut addresses = Vec::with_capacity(36);
    match (source.ip().to_canonical(), destination.ip().to_canonical()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            out.push(0x11);
            addresses.extend_from_slice(&s.octets());
            addresses.extend_from_slice(&d.octets());
        }
        (s, d) => {
            out.push(0x21);
            let six = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            };
            addresses.extend_from_slice(&six(s).octets());
            addresses.extend_from_slice(&six(d).octets());
        }
    }
    addresses.extend_from_slice(&source.port().to_be_bytes());
    addresses.extend_from_slice(&destination.port().to_be_bytes());
    out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
    out.extend_from_slice(&addresses);
    out
}

/// The header for the connection `stream` (its own addresses).
pub fn for_stream(stream: &TcpStream) -> io::Result<Vec<u8>> {
    Ok(v2(stream.local_addr()?, stream.peer_addr()?))
}
