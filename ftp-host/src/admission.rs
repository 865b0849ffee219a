//! Taking control connections in: one accept step and one admission step,
//! the same for both runtimes.
//!
//! * [`Acceptor::accept`] takes the next connection off a non-blocking
//!   listener. Errors that concern one connection only ([`is_transient`])
//!   are skipped; when the process is out of descriptors, one spare
//!   descriptor (an open `/dev/null`) is given up so that one waiting
//!   client can be accepted and told `421` instead of waiting unanswered
//!   in the backlog, and then reopened; other errors ask the runtime to
//!   pause accepting for [`ACCEPT_PAUSE`].
//! * [`Server::admit`] decides whether an accepted connection is served:
//!   the connection limits, with the `421` reply to write when it is not
//!   (in the spirit of quinn-proto's `Endpoint::accept` / `refuse` /
//!   `ignore`). Anything later admission needs (a ban list) belongs here,
//!   once, before the limits.
//! * A connection from a `--proxy-from` source must first send a PROXY
//!   header ([`crate::proxy`]): [`Server::admit`] says
//!   [`Admission::AwaitHeader`], and the runtime calls
//!   [`Server::admit_proxied`] each time the socket may have more, and at
//!   the header's deadline, until it decides. The header's address is then
//!   the client's, for the limits and everything after.
//!
//! Replies are formatted with the engine's [`write_line`].

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ftp_proto::reply::write_line;
use rustix::io::Errno;

use crate::limits::{ConnectionSlot, HeaderSlot, LimitExceeded, OUT_OF_DESCRIPTORS};
use crate::metrics::RefusedReason;
use crate::proxy::{HeaderRead, HeaderReader, ProxyHeader, read_header};
use crate::server::{Server, canonical};

/// How long a runtime pauses accepting after an accept error it cannot
/// work around (out of descriptors with no spare left, out of memory).
pub const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// What one [`Acceptor::accept`] got.
#[derive(Debug)]
pub enum Accepted<S> {
    /// A new connection and its peer's address: [`Server::admit`] it.
    Stream(S, SocketAddr),
    /// Nothing is waiting (wait for the listener to be readable).
    Empty,
    /// A client was turned away for lack of descriptors; accept again.
    Refused,
    /// Accepting fails for now: pause for [`ACCEPT_PAUSE`].
    Pause,
}

/// Accepts control connections for one listener (or one event loop),
/// holding the spare descriptor.
#[derive(Debug)]
pub struct Acceptor {
    spare: Option<File>,
}

impl Default for Acceptor {
    fn default() -> Self {
        Acceptor::new()
    }
}

impl Acceptor {
    /// An acceptor with its spare descriptor open (if it can be).
    pub fn new() -> Acceptor {
        Acceptor {
            spare: open_spare(),
        }
    }

    /// Reopens the spare descriptor if it is missing (after a pause).
    pub fn replenish(&mut self) {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
    }

    /// Accepts one connection with `accept` (a non-blocking listener's
    /// `accept`), applying the error rules of the module documentation.
    pub fn accept<S: AsFd>(
        &mut self,
        mut accept: impl FnMut() -> io::Result<(S, SocketAddr)>,
    ) -> Accepted<S> {
        loop {
            match accept() {
                Ok((stream, peer)) => return Accepted::Stream(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Empty,
                Err(e) if is_transient(&e) => {}
                Err(e) if out_of_descriptors(&e) => return self.shed(accept),
                Err(e) => {
                    log::warn!("accept: {e}");
                    return Accepted::Pause;
                }
            }
        }
    }

    /// Uses the spare descriptor to turn one waiting client away politely.
    fn shed<S: AsFd>(
        &mut self,
        mut accept: impl FnMut() -> io::Result<(S, SocketAddr)>,
    ) -> Accepted<S> {
        let Some(spare) = self.spare.take() else {
            log::warn!("accept: out of file descriptors");
            return Accepted::Pause;
        };
        drop(spare);
        let got = match accept() {
            Ok((stream, peer)) => {
                log::warn!("{peer}: refused: out of file descriptors");
                refuse(&stream, &reply_421(OUT_OF_DESCRIPTORS));
                Accepted::Refused
            }
            // `accept` fails with EMFILE before it looks at the queue:
            // nobody may have been waiting.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Accepted::Empty,
            Err(_) => Accepted::Pause,
        };
        self.spare = open_spare();
        if self.spare.is_none() {
            return Accepted::Pause;
        }
        got
    }
}

/// Accept errors that concern one connection only, not the listener: a
/// connection reset or aborted before it was taken, or a signal.
pub fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
}

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

/// A `421` reply line, formatted by the engine.
fn reply_421(text: &str) -> Vec<u8> {
    let mut reply = Vec::new();
    write_line(&mut reply, 421, b' ', text);
    reply
}

/// Writes a refusal on a freshly accepted socket: best effort, without
/// blocking (an empty socket buffer takes one line). The caller closes it.
pub fn refuse(stream: &impl AsFd, reply: &[u8]) {
    let _ = rustix::net::send(stream, reply, rustix::net::SendFlags::DONTWAIT);
}

/// What [`Server::admit`] decided for an accepted connection.
#[derive(Debug)]
pub enum Admission {
    /// Serve it: start a session with these addresses, holding `slot`.
    Admitted(Admitted),
    /// Turn it away: write `reply` with [`refuse`], then close it.
    Refused {
        /// The `421` line.
        reply: Vec<u8>,
    },
    /// Close it without a word (it is already gone, or it came from a
    /// proxy and had no acceptable PROXY header).
    Ignored,
    /// It comes from a proxy: its PROXY header decides. Wait until the
    /// socket is readable (see [`crate::proxy::HeaderRead::Pending`] for
    /// what that means with a level-triggered runtime) or
    /// [`AwaitingHeader::deadline`], and call [`Server::admit_proxied`].
    AwaitHeader(AwaitingHeader),
}

/// A connection from a proxy source whose PROXY header has not been read.
#[derive(Debug)]
pub struct AwaitingHeader {
    /// Our address on it (canonical).
    local: SocketAddr,
    /// The proxy's address.
    proxy: SocketAddr,
    reader: HeaderReader,
    /// Counts the connection against `--max-clients` meanwhile; given up
    /// when the header is complete, before the client's place is taken.
    slot: Option<HeaderSlot>,
}

impl AwaitingHeader {
    /// When the header must be complete: call [`Server::admit_proxied`]
    /// then at the latest.
    pub fn deadline(&self) -> Instant {
        self.reader.deadline()
    }

    /// The proxy's address, for logs.
    pub fn proxy(&self) -> SocketAddr {
        self.proxy
    }
}

/// What [`Server::admit_proxied`] decided.
#[derive(Debug)]
pub enum HeaderStep {
    /// The header is not complete: wait as [`Admission::AwaitHeader`] says;
    /// `partial` as in [`crate::proxy::HeaderRead::Pending`].
    Wait {
        /// Part of the header is unread in the socket.
        partial: bool,
    },
    /// Decided: [`Admission::Admitted`] (with the header's client),
    /// [`Admission::Refused`] or [`Admission::Ignored`], never
    /// [`Admission::AwaitHeader`].
    Done(Admission),
}

/// An admitted connection.
#[derive(Debug)]
pub struct Admitted {
    /// Our address on it (canonical: IPv4-mapped IPv6 as IPv4).
    pub local: SocketAddr,
    /// The client's address (canonical).
    pub peer: SocketAddr,
    /// Counts the session against the connection limits until dropped.
    pub slot: ConnectionSlot,
}

impl Server {
    /// Decides whether an accepted connection from `peer` to our `local`
    /// address is served (`local` is `Err` when the connection is gone
    /// before we looked): the connection limits, and the refusal to write
    /// when it is over them.
    ///
    /// A connection from a `--proxy-from` source is not judged yet:
    /// [`Admission::AwaitHeader`] (it holds a place among
    /// `--max-clients` meanwhile).
    pub fn admit(self: &Arc<Self>, local: io::Result<SocketAddr>, peer: SocketAddr) -> Admission {
        let peer = canonical(peer);
        let Ok(local) = local else {
            return Admission::Ignored;
        };
        let local = canonical(local);
        let from_proxy = self
            .config
            .proxy_from
            .as_ref()
            .is_some_and(|sources| sources.contains(peer.ip()));
        if from_proxy {
            return match self.limiter.try_hold() {
                Ok(slot) => Admission::AwaitHeader(AwaitingHeader {
                    local,
                    proxy: peer,
                    reader: HeaderReader::new(Instant::now()),
                    slot: Some(slot),
                }),
                Err(limit) => self.refuse_over(peer, limit),
            };
        }
        self.admit_client(local, peer)
    }

    /// Reads what has come of the PROXY header of `socket` (accepted as
    /// `waiting`) and decides when it is complete, malformed, or late
    /// (`now` at or past the deadline). A header that cannot be used closes
    /// the connection without a reply, and is logged; a `LOCAL` header (a
    /// health check) closes it quietly.
    pub fn admit_proxied(
        self: &Arc<Self>,
        waiting: &mut AwaitingHeader,
        socket: &impl AsFd,
        now: Instant,
    ) -> HeaderStep {
        let proxy = waiting.proxy;
        match read_header(socket, &waiting.reader, now) {
            HeaderRead::Pending { partial } => HeaderStep::Wait { partial },
            HeaderRead::Header(ProxyHeader::Proxied(addresses)) => {
                log::debug!("{}: proxied by {proxy}", addresses.source);
                drop(waiting.slot.take());
                HeaderStep::Done(self.admit_client(waiting.local, addresses.source))
            }
            HeaderRead::Header(ProxyHeader::Local) => {
                log::debug!("{proxy}: PROXY LOCAL (health check): closed");
                HeaderStep::Done(Admission::Ignored)
            }
            HeaderRead::Failed(e) => {
                log::warn!("{proxy}: closed: {e}");
                self.metrics.refused(RefusedReason::ProxyHeader);
                HeaderStep::Done(Admission::Ignored)
            }
        }
    }

    /// The limits, for a client whose address is known.
    fn admit_client(self: &Arc<Self>, local: SocketAddr, peer: SocketAddr) -> Admission {
        let peer = canonical(peer);
        if let Some(left) = self
            .defender
            .as_ref()
            .and_then(|d| d.banned(peer.ip(), Instant::now()))
        {
            log::info!("{peer}: refused: banned for {} s more", left.as_secs());
            self.metrics.refused(RefusedReason::Banned);
            return Admission::Refused {
                reply: reply_421("Too many failed logins from your address; try again later."),
            };
        }
        match self.limiter.try_acquire(peer.ip()) {
            Ok(slot) => Admission::Admitted(Admitted { local, peer, slot }),
            Err(limit) => self.refuse_over(peer, limit),
        }
    }

    /// The refusal of a connection over a limit, logged.
    fn refuse_over(&self, peer: SocketAddr, limit: LimitExceeded) -> Admission {
        log::info!("{peer}: refused: {limit}");
        self.metrics.refused(match limit {
            LimitExceeded::TooManyClients => RefusedReason::GlobalCap,
            LimitExceeded::TooManyFromAddress { .. } => RefusedReason::PerAddressCap,
        });
        Admission::Refused {
            reply: reply_421(limit.message()),
        }
    }
}

/// Accepts one connection from a non-blocking `listener`, already
/// non-blocking (`accept4` with `SOCK_NONBLOCK`: no `ioctl` after it, one
/// system call less per connection than std's `accept` and a
/// `set_nonblocking`), with the client's address.
pub fn accept_nonblocking(
    listener: &std::net::TcpListener,
) -> io::Result<(std::net::TcpStream, SocketAddr)> {
    use rustix::net::SocketFlags;
    let (fd, peer) =
        rustix::net::acceptfrom_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC)?;
    let stream = std::net::TcpStream::from(fd);
    let peer = match peer.map(SocketAddr::try_from) {
        Some(Ok(peer)) => peer,
        _ => stream.peer_addr()?,
    };
    Ok((stream, peer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A server with `--proxy-from 127.0.0.1 --max-per-ip 1 --max-clients 3`.
    fn proxied_server() -> (Arc<Server>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let args = [
            "ftpd",
            "--proxy-from",
            "127.0.0.1",
            "--max-per-ip",
            "1",
            "--max-clients",
            "3",
            dir.path().to_str().unwrap(),
        ];
        let Ok(crate::cli::Invocation::Serve(config)) = crate::cli::parse_args(args) else {
            panic!("bad arguments");
        };
        (Server::new(config).unwrap(), dir)
    }

    /// A connected pair on loopback: (client, server side, non-blocking).
    fn pair() -> (TcpStream, TcpStream) {
        let (client, server) = crate::testing::loopback_pair();
        server.set_nonblocking(true).unwrap();
        (client, server)
    }

    /// Calls `admit_proxied` until it decides (bounded).
    fn decide(server: &Arc<Server>, waiting: &mut AwaitingHeader, socket: &TcpStream) -> Admission {
        for _ in 0..200 {
            match server.admit_proxied(waiting, socket, Instant::now()) {
                HeaderStep::Done(admission) => return admission,
                HeaderStep::Wait { .. } => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        panic!("no decision");
    }

    #[test]
    fn a_proxy_sources_connection_is_judged_by_its_header() {
        let (server, _dir) = proxied_server();
        // Not from a proxy source: the limits decide at once.
        let direct = server.admit(
            Ok("127.0.0.1:21".parse().unwrap()),
            "127.0.0.2:5000".parse().unwrap(),
        );
        assert!(matches!(direct, Admission::Admitted(_)), "{direct:?}");
        // From the proxy: the header decides, and its client is counted.
        let header = |client: &str| format!("PROXY TCP4 {client} 198.51.100.1 4000 21\r\n");
        let mut admitted = Vec::new();
        for (client, wanted) in [
            ("192.0.2.7", true),
            ("192.0.2.7", false),
            ("192.0.2.8", true),
        ] {
            let (mut c, s) = pair();
            let Admission::AwaitHeader(mut waiting) =
                server.admit(s.local_addr(), s.peer_addr().unwrap())
            else {
                panic!("a proxy's connection waits for its header");
            };
            assert!(matches!(
                server.admit_proxied(&mut waiting, &s, Instant::now()),
                HeaderStep::Wait { partial: false }
            ));
            io::Write::write_all(&mut c, header(client).as_bytes()).unwrap();
            match decide(&server, &mut waiting, &s) {
                Admission::Admitted(a) if wanted => {
                    assert_eq!(a.peer, format!("{client}:4000").parse().unwrap());
                    admitted.push(a);
                }
                Admission::Refused { reply } if !wanted => {
                    assert_eq!(reply, b"421 Too many connections from your address.\r\n");
                }
                other => panic!("{client}: {other:?}"),
            }
        }
        assert_eq!(
            server.limiter.active(),
            3,
            "two sessions and the direct one"
        );
        drop(admitted);
        // LOCAL, garbage and a late header: closed without a word.
        let local_header = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00";
        for bytes in [&local_header[..], b"USER ftp\r\n"] {
            let (mut c, s) = pair();
            let Admission::AwaitHeader(mut waiting) =
                server.admit(s.local_addr(), s.peer_addr().unwrap())
            else {
                panic!("a proxy's connection waits for its header");
            };
            io::Write::write_all(&mut c, bytes).unwrap();
            assert!(matches!(
                decide(&server, &mut waiting, &s),
                Admission::Ignored
            ));
        }
        {
            let (_c, s) = pair();
            let Admission::AwaitHeader(mut waiting) =
                server.admit(s.local_addr(), s.peer_addr().unwrap())
            else {
                panic!("a proxy's connection waits for its header");
            };
            let late = waiting.deadline();
            assert!(matches!(
                server.admit_proxied(&mut waiting, &s, late),
                HeaderStep::Done(Admission::Ignored)
            ));
        }
        // Connections waiting for headers hold places among --max-clients.
        let held: Vec<_> = (0..2)
            .map(|_| {
                let (c, s) = pair();
                let got = server.admit(s.local_addr(), s.peer_addr().unwrap());
                assert!(matches!(got, Admission::AwaitHeader(_)), "{got:?}");
                (c, s, got)
            })
            .collect();
        let (_c, s) = pair();
        let full = server.admit(s.local_addr(), s.peer_addr().unwrap());
        assert!(matches!(full, Admission::Refused { .. }), "{full:?}");
        drop(held);
        drop(direct);
    }

    #[test]
    fn transient_errors_are_about_one_connection() {
        for kind in [
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::Interrupted,
        ] {
            assert!(is_transient(&kind.into()), "{kind:?}");
        }
        assert!(!is_transient(&io::Error::from_raw_os_error(
            Errno::MFILE.raw_os_error()
        )));
        assert!(!is_transient(&io::ErrorKind::WouldBlock.into()));
    }

    #[test]
    fn out_of_descriptors_turns_one_client_away_with_421() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let mut acceptor = Acceptor::new();
        assert!(acceptor.spare.is_some());
        // The first accept fails as if the process had no descriptors left;
        // the one after the spare is freed works.
        let mut calls = 0;
        let got = acceptor.accept(|| {
            calls += 1;
            if calls == 1 {
                Err(io::Error::from_raw_os_error(Errno::MFILE.raw_os_error()))
            } else {
                listener.accept()
            }
        });
        assert!(matches!(got, Accepted::Refused), "{got:?}");
        assert!(acceptor.spare.is_some(), "the spare is reopened");
        let mut text = String::new();
        io::Read::read_to_string(&mut client, &mut text).unwrap();
        assert_eq!(text, "421 Too many open files, try again later.\r\n");
        // Without a spare, the runtime is asked to pause.
        acceptor.spare = None;
        let got: Accepted<TcpStream> =
            acceptor.accept(|| Err(io::Error::from_raw_os_error(Errno::MFILE.raw_os_error())));
        assert!(matches!(got, Accepted::Pause));
        let got: Accepted<TcpStream> = acceptor.accept(|| Err(io::ErrorKind::WouldBlock.into()));
        assert!(matches!(got, Accepted::Empty));
    }
}
