//! The socket step of reading a PROXY header, the same for both runtimes
//! and for control and data connections: peek, let the
//! [`HeaderReader`] judge, take exactly the header's bytes.

use std::os::fd::AsFd;
use std::time::Instant;

use rustix::io::Errno;
use rustix::net::RecvFlags;

use super::header::{HeaderError, HeaderReader, MAX_HEADER, Parsed, ProxyHeader};

/// How long a level-triggered runtime waits before looking again at a
/// header that has partly arrived (see [`HeaderRead::Pending`]).
pub const PARTIAL_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// What one [`read_header`] got.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderRead {
    /// Not complete yet: call again when more may have come, and at
    /// [`HeaderReader::deadline`] at the latest (it then fails as late).
    Pending {
        /// Part of the header is in the socket, unread (only peeked at),
        /// so the socket stays readable: a runtime whose readiness is
        /// level-triggered waits a moment ([`PARTIAL_RETRY`]) rather than
        /// for readability, which would be reported at once, again and
        /// again. An edge-triggered one (epoll with `EPOLLET`, as mio
        /// registers) is told when more bytes come.
        partial: bool,
    },
    /// The header, taken off the socket; the session's bytes follow.
    Header(ProxyHeader),
    /// Close the connection.
    Failed(HeaderError),
}

/// Reads the PROXY header at the start of the non-blocking `socket`, as far
/// as it has arrived, at `now`.
///
/// The received bytes are peeked at (`MSG_PEEK`), at most
/// [`MAX_HEADER`] of them, so nothing is taken until the header is
/// complete; then exactly its bytes are read. Errors of the socket close
/// the connection like a malformed header would.
pub fn read_header(socket: &impl AsFd, reader: &HeaderReader, now: Instant) -> HeaderRead {
    let mut buf = [0u8; MAX_HEADER];
    let mut received = 0;
    let parsed = loop {
        match rustix::net::recv(socket, &mut buf, RecvFlags::PEEK | RecvFlags::DONTWAIT) {
            Ok((0, _)) => break reader.closed(&[], now),
            Ok((n, _)) => {
                received = n.min(buf.len());
                break reader.feed(&buf[..received], now);
            }
            Err(Errno::AGAIN) => break reader.feed(&[], now),
            Err(Errno::INTR) => continue,
            Err(e) => break Parsed::Failed(HeaderError::Socket(e.to_string())),
        }
    };
    match parsed {
        Parsed::NeedMore => HeaderRead::Pending {
            partial: received > 0,
        },
        Parsed::Failed(e) => HeaderRead::Failed(e),
        Parsed::Header { header, len } => match consume(socket, &mut buf[..len]) {
            Ok(()) => HeaderRead::Header(header),
            Err(e) => HeaderRead::Failed(e),
        },
    }
}

/// Takes `buf.len()` bytes that a peek has shown are there.
fn consume(socket: &impl AsFd, buf: &mut [u8]) -> Result<(), HeaderError> {
    let mut taken = 0;
    while taken < buf.len() {
        match rustix::net::recv(socket, &mut buf[taken..], RecvFlags::DONTWAIT) {
            Ok((0, _)) => return Err(HeaderError::Closed),
            Ok((n, _)) => taken += n,
            Err(Errno::INTR) => {}
            // Peeked bytes cannot vanish; if they do, give up.
            Err(e) => return Err(HeaderError::Socket(e.to_string())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    fn pair() -> (TcpStream, TcpStream) {
        let (client, server) = crate::testing::loopback_pair();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    /// Polls `read_header` until it is not pending (bounded).
    fn settle(server: &TcpStream, reader: &HeaderReader) -> HeaderRead {
        for _ in 0..200 {
            match read_header(server, reader, Instant::now()) {
                HeaderRead::Pending { .. } => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                done => return done,
            }
        }
        HeaderRead::Pending { partial: false }
    }

    /// Polls until the first bytes have arrived (bounded).
    fn settle_partial(server: &TcpStream, reader: &HeaderReader) -> HeaderRead {
        for _ in 0..200 {
            match read_header(server, reader, Instant::now()) {
                HeaderRead::Pending { partial: false } => {
                    std::thread::sleep(std::time::Duration::from_millis(5))
                }
                done => return done,
            }
        }
        HeaderRead::Pending { partial: false }
    }

    #[test]
    fn takes_the_header_and_leaves_the_rest() {
        let (mut client, mut server) = pair();
        let reader = HeaderReader::new(Instant::now());
        assert_eq!(
            read_header(&server, &reader, Instant::now()),
            HeaderRead::Pending { partial: false }
        );
        client.write_all(b"PROXY TCP4 192.0.2.7 198.51").unwrap();
        let partial = settle_partial(&server, &reader);
        assert_eq!(partial, HeaderRead::Pending { partial: true });
        client
            .write_all(b".100.1 40000 21\r\nUSER ftp\r\n")
            .unwrap();
        match settle(&server, &reader) {
            HeaderRead::Header(ProxyHeader::Proxied(a)) => {
                assert_eq!(a.source, "192.0.2.7:40000".parse().unwrap())
            }
            other => panic!("{other:?}"),
        }
        let mut rest = [0u8; 64];
        server.set_nonblocking(false).unwrap();
        let n = server.read(&mut rest).unwrap();
        assert_eq!(&rest[..n], b"USER ftp\r\n");
    }

    #[test]
    fn end_of_stream_and_garbage_fail() {
        let (client, server) = pair();
        let reader = HeaderReader::new(Instant::now());
        drop(client);
        assert_eq!(
            settle(&server, &reader),
            HeaderRead::Failed(HeaderError::Closed)
        );
        let (mut client, server) = pair();
        client.write_all(b"USER ftp\r\n").unwrap();
        assert!(matches!(
            settle(&server, &reader),
            HeaderRead::Failed(HeaderError::Malformed(_))
        ));
        let (_client, server) = pair();
        let late = Instant::now() + super::super::HEADER_TIMEOUT;
        assert_eq!(
            read_header(&server, &reader, late),
            HeaderRead::Failed(HeaderError::Late)
        );
    }
}
