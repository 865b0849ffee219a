//! Active-mode data connections (`PORT`/`EPRT`): the socket that
//! connects out to the client, made here once for both runtimes.
//!
//! The socket is bound before it connects, to the control connection's
//! local address, so a multi-homed host sends the data from the address
//! the client talked to (not whichever one the routing table picks). The
//! port is the kernel's choice, made at `connect` time
//! (`IP_BIND_ADDRESS_NO_PORT`), so one local port serves many clients and
//! busy servers do not walk the `TIME_WAIT` ports a port-0 `bind` would.
//!
//! With `--active-port-20` (vsftpd's `connect_from_port_20`) the port is
//! 20, `ftp-data`, for firewalls that only let FTP data in from there. That
//! needs root or `CAP_NET_BIND_SERVICE` (which `--run-as` keeps for it,
//! see [`crate::identity::Identity::assume_keeping_port_binding`]). When
//! the bind fails, the connection leaves from a kernel-chosen port of the
//! same address instead and a warning is logged once: the transfer goes on
//! (vsftpd fails it), since a client behind a port-20-only firewall fails
//! the same way either way and every other client still works.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::net::{AddressFamily, SocketFlags, SocketType, ipproto};

/// The `ftp-data` port active connections leave from with
/// `--active-port-20`.
pub const FTP_DATA_PORT: u16 = 20;

/// Whether the failure to bind port 20 was logged already.
static PORT_20_WARNED: AtomicBool = AtomicBool::new(false);

/// Where a session's active data connections come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActiveFrom {
    /// The control connection's local address.
    pub ip: IpAddr,
    /// Whether to leave from port [`FTP_DATA_PORT`] (`--active-port-20`).
    pub port_20: bool,
}

/// Starts a non-blocking connection to `to` from `from` (see the module
/// documentation). The connection is usually still in progress: the
/// caller waits for the socket to become writable and then checks
/// `SO_ERROR` (`TcpStream::take_error`), as for any non-blocking connect.
/// An error here is one the connect reported at once.
pub fn connect(from: ActiveFrom, to: SocketAddr) -> io::Result<TcpStream> {
    // An EPRT of the other family (only with --allow-foreign-port) cannot
    // leave from the control connection's address.
    let same_family = from.ip.is_ipv4() == to.is_ipv4();
    if from.port_20 && same_family {
        match attempt(Some(SocketAddr::new(from.ip, FTP_DATA_PORT)), to) {
            Ok(stream) => return Ok(stream),
            Err(Failed::Connect(e)) => return Err(e),
            Err(Failed::Bind(e)) => {
                if !PORT_20_WARNED.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "--active-port-20: cannot bind {}: {e}; active data connections \
                         leave from other ports",
                        SocketAddr::new(from.ip, FTP_DATA_PORT)
                    );
                }
            }
        }
    }
    let local = same_family.then(|| SocketAddr::new(from.ip, 0));
    match attempt(local, to) {
        Ok(stream) => Ok(stream),
        Err(Failed::Connect(e)) => Err(e),
        // An address that cannot be bound (an IPv6 link-local one, whose
        // scope the control connection's address lost): let the routing
        // table choose, as without a bind.
        Err(Failed::Bind(e)) => {
            log::debug!("active connection from {}: {e}", from.ip);
            attempt(None, to).map_err(Failed::into_io)
        }
    }
}

/// Which step of [`attempt`] failed.
#[derive(Debug)]
enum Failed {
    /// Making or binding the socket.
    Bind(io::Error),
    /// The connect itself.
    Connect(io::Error),
}

impl Failed {
    fn into_io(self) -> io::Error {
        match self {
            Failed::Bind(e) | Failed::Connect(e) => e,
        }
    }
}

/// One socket: bound to `local` (if any), connecting to `to`.
fn attempt(local: Option<SocketAddr>, to: SocketAddr) -> Result<TcpStream, Failed> {
    let family = if to.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let bind = |e: rustix::io::Errno| Failed::Bind(e.into());
    let socket: OwnedFd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        Some(ipproto::TCP),
    )
    .map_err(bind)?;
    if let Some(local) = local {
        if local.port() == 0 {
            nix::sys::socket::setsockopt(
                &socket,
                nix::sys::socket::sockopt::IpBindAddressNoPort,
                &true,
            )
            .map_err(|e| Failed::Bind(e.into()))?;
        } else {
            // The same local port for every client: allowed while earlier
            // connections from it linger in TIME_WAIT.
            rustix::net::sockopt::set_socket_reuseaddr(&socket, true).map_err(bind)?;
        }
        rustix::net::bind(&socket, &local).map_err(bind)?;
    }
    match rustix::net::connect(&socket, &to) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => Ok(TcpStream::from(socket)),
        Err(e) => Err(Failed::Connect(e.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::{Duration, Instant};

    /// The address the listener's next connection comes from (waits at
    /// most five seconds).
    fn accepted_from(listener: &TcpListener) -> SocketAddr {
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match listener.accept() {
                Ok((_, peer)) => return peer,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("no connection: {e}"),
            }
        }
    }

    #[test]
    fn leaves_from_the_control_connections_address() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let from = ActiveFrom {
            ip: "127.0.0.5".parse().unwrap(),
            port_20: false,
        };
        let _stream = connect(from, listener.local_addr().unwrap()).unwrap();
        let peer = accepted_from(&listener);
        assert_eq!(peer.ip(), from.ip);
        assert_ne!(peer.port(), FTP_DATA_PORT);
    }

    #[test]
    fn port_20_with_privilege_or_another_port_without() {
        let from = ActiveFrom {
            ip: "127.0.0.6".parse().unwrap(),
            port_20: true,
        };
        let may_bind = rustix::thread::capabilities(None).is_ok_and(|c| {
            c.effective
                .contains(rustix::thread::CapabilitySet::NET_BIND_SERVICE)
        });
        // Two clients at once: the second bind of port 20 meets the first
        // connection's socket.
        let listeners = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").unwrap());
        let _streams = listeners
            .each_ref()
            .map(|l| connect(from, l.local_addr().unwrap()).unwrap());
        for listener in &listeners {
            let peer = accepted_from(listener);
            assert_eq!(peer.ip(), from.ip);
            assert_eq!(peer.port() == FTP_DATA_PORT, may_bind, "{peer}");
        }
    }

    #[test]
    fn another_family_connects_unbound() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let from = ActiveFrom {
            ip: "::1".parse().unwrap(),
            port_20: true,
        };
        let _stream = connect(from, listener.local_addr().unwrap()).unwrap();
        assert_eq!(accepted_from(&listener).ip(), IpAddr::from([127, 0, 0, 1]));
    }

    #[test]
    fn a_refused_connection_is_reported() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let from = ActiveFrom {
            ip: "127.0.0.1".parse().unwrap(),
            port_20: false,
        };
        let stream = match connect(from, port) {
            Ok(stream) => stream,
            Err(e) => return assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
        };
        // Over loopback the refusal comes at once; SO_ERROR holds it.
        let deadline = Instant::now() + Duration::from_secs(5);
        let error = loop {
            if let Some(e) = stream.take_error().unwrap() {
                break e;
            }
            assert!(Instant::now() < deadline, "no refusal");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert_eq!(error.kind(), io::ErrorKind::ConnectionRefused);
    }
}
