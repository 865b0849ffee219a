//! Accepting control connections, including when the process is out of
//! file descriptors.
//!
//! A loop keeps one spare descriptor (an open `/dev/null`). When `accept`
//! fails with `EMFILE`/`ENFILE`, the spare is closed, one connection is
//! accepted and told `421 Too many open files, try again later.`, then
//! closed, and the spare is reopened. Without a spare, accepting pauses
//! for a moment instead of spinning; sessions already running go on.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use ftp_host::limits::OUT_OF_DESCRIPTORS;
use mio::net::{TcpListener, TcpStream};
use rustix::io::Errno;

/// How long accepting pauses after an error it cannot work around.
pub(crate) const ACCEPT_PAUSE: Duration = Duration::from_millis(200);

/// What one [`Acceptor::accept`] got.
#[derive(Debug)]
pub(crate) enum Accepted {
    /// A new control connection and its peer.
    Stream(TcpStream, SocketAddr),
    /// Nothing is waiting.
    Empty,
    /// A connection was refused for lack of descriptors; try again.
    Refused,
    /// Accepting fails for now: pause for [`ACCEPT_PAUSE`].
    Pause,
}

/// Accepts, holding the spare descriptor.
#[derive(Debug)]
pub(crate) struct Acceptor {
    spare: Option<File>,
}

impl Acceptor {
    /// An acceptor with its spare descriptor open (if it can be).
    pub(crate) fn new() -> Acceptor {
        Acceptor {
            spare: open_spare(),
        }
    }

    /// Reopens the spare descriptor if it is missing.
    pub(crate) fn replenish(&mut self) {
        if self.spare.is_none() {
            self.spare = open_spare();
        }
    }

    /// Accepts one connection from `listener`.
    pub(crate) fn accept(&mut self, listener: &TcpListener) -> Accepted {
        loop {
            match listener.accept() {
                Ok((stream, peer)) => return Accepted::Stream(stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Accepted::Empty,
                // A connection reset before we got to it, or a signal.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if out_of_descriptors(&e) => return self.shed(listener),
                Err(e) => {
                    log::warn!("accept: {e}");
                    return Accepted::Pause;
                }
            }
        }
    }

    /// Uses the spare descriptor to turn one waiting client away politely.
    fn shed(&mut self, listener: &TcpListener) -> Accepted {
        let Some(spare) = self.spare.take() else {
            log::warn!("accept: out of file descriptors");
            return Accepted::Pause;
        };
        drop(spare);
        let got = match listener.accept() {
            Ok((stream, peer)) => {
                log::warn!("{peer}: refused: out of file descriptors");
                let mut reply = Vec::new();
                ftp_proto::reply::write_line(&mut reply, 421, b' ', OUT_OF_DESCRIPTORS);
                // Best effort: a fresh socket's buffer takes one line.
                let _ = (&stream).write(&reply);
                Accepted::Refused
            }
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

fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(Errno::from_io_error(e), Some(Errno::MFILE | Errno::NFILE))
}
