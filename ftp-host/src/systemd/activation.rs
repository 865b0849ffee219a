//! Socket activation: the sockets the service manager passes from fd 3
//! on (`LISTEN_FDS`), meant for this process only (`LISTEN_PID`), with
//! their names (`LISTEN_FDNAMES`: `FileDescriptorName=` of the socket
//! unit, `--fdname` of `systemd-socket-activate`).
//!
//! A standalone daemon serves the listening sockets instead of binding
//! `--listen`; an `--inetd` daemon serves the one connected socket of an
//! `Accept=yes` unit instead of standard input.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::FileType;
use rustix::io::FdFlags;
use rustix::net::{AddressFamily, SocketType, ipproto, sockopt};

use crate::daemon::Listener;

/// The first passed descriptor (`SD_LISTEN_FDS_START`).
const FIRST_FD: RawFd = 3;

/// Most descriptors taken from `LISTEN_FDS`; a larger count is an error,
/// not a reason to adopt thousands of descriptors.
const MOST_FDS: u32 = 1024;

/// Names (`FileDescriptorName=`, `--fdname`) of passed sockets that serve
/// implicit FTPS (TLS from the first byte, as `--implicit-tls`); a socket
/// with any other name, or none, serves plain FTP.
pub const IMPLICIT_TLS_NAMES: [&str; 2] = ["ftps", "implicit-tls"];

/// Set once the passed descriptors have been adopted, so that no
/// descriptor gets two owners.
static ADOPTED: AtomicBool = AtomicBool::new(false);

/// Why the sockets passed by the service manager cannot be served.
#[derive(Debug)]
pub enum ActivationError {
    /// `LISTEN_PID` or `LISTEN_FDS` is not a number.
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
    /// `LISTEN_FDS` is larger than any service is passed.
    TooMany(u32),
    /// `LISTEN_FDNAMES` has another number of names than `LISTEN_FDS`.
    NameCount {
        /// `LISTEN_FDS`.
        fds: u32,
        /// The names in `LISTEN_FDNAMES`.
        names: usize,
    },
    /// A passed descriptor is not open, or could not be examined.
    Unusable {
        /// The descriptor.
        fd: RawFd,
        /// Its name.
        name: String,
        /// What the operating system said.
        source: io::Error,
    },
    /// A passed descriptor is not a TCP socket.
    NotTcp {
        /// The descriptor.
        fd: RawFd,
        /// Its name.
        name: String,
        /// What it is instead.
        what: &'static str,
    },
    /// A standalone daemon was passed a socket that is not listening (a
    /// connection of an `Accept=yes` unit, which `--inetd` serves).
    NotListening {
        /// The descriptor.
        fd: RawFd,
        /// Its name.
        name: String,
    },
    /// An `--inetd` daemon was passed something else than one connected
    /// socket.
    NotOneConnection {
        /// How many sockets were passed.
        count: usize,
        /// How many of them are listening.
        listening: usize,
    },
    /// `--inetd` without passed sockets: standard input is not a TCP
    /// connection.
    Stdin {
        /// What it is instead.
        what: &'static str,
    },
    /// A socket named for implicit FTPS, but no certificate is configured.
    NoTls {
        /// The descriptor.
        fd: RawFd,
        /// Its name.
        name: String,
    },
    /// The passed descriptors were adopted already.
    AlreadyAdopted,
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let ActivationError::Stdin { what } = self {
            return write!(
                f,
                "--inetd needs a TCP connection on standard input, which is {what}"
            );
        }
        f.write_str("socket activation: ")?;
        match self {
            ActivationError::BadVariable { name, value } => {
                write!(f, "{name}={} is not a number", value.escape_debug())
            }
            ActivationError::TooMany(n) => {
                write!(f, "LISTEN_FDS={n}: more than {MOST_FDS} sockets")
            }
            ActivationError::NameCount { fds, names } => write!(
                f,
                "LISTEN_FDNAMES has {names} name(s) for LISTEN_FDS={fds} socket(s)"
            ),
            ActivationError::Unusable { fd, name, source } => {
                write!(f, "fd {fd} ({}): {source}", name.escape_debug())
            }
            ActivationError::NotTcp { fd, name, what } => write!(
                f,
                "fd {fd} ({}) is not a listening TCP socket: it is {what}",
                name.escape_debug()
            ),
            ActivationError::NotListening { fd, name } => write!(
                f,
                "fd {fd} ({}) is a connection, not a listening socket \
                 (a unit with Accept=yes needs --inetd)",
                name.escape_debug()
            ),
            ActivationError::NotOneConnection { count, listening } => write!(
                f,
                "--inetd serves one connection, but {count} socket(s) were passed, \
                 {listening} of them listening (use Accept=yes, or leave --inetd out)"
            ),
            ActivationError::NoTls { fd, name } => write!(
                f,
                "fd {fd} ({}) is named for implicit FTPS, but no certificate \
                 is configured (--tls-cert, --tls-key)",
                name.escape_debug()
            ),
            ActivationError::AlreadyAdopted => f.write_str("the sockets were taken already"),
            ActivationError::Stdin { .. } => Ok(()),
        }
    }
}

impl std::error::Error for ActivationError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ActivationError::Unusable { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// What `LISTEN_*` say about this process.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// No sockets (no `LISTEN_FDS` or `LISTEN_PID`, or `LISTEN_FDS=0`).
    Nothing,
    /// `LISTEN_PID` is another process: the sockets are not ours.
    NotOurs {
        /// `LISTEN_PID`.
        pid: u32,
    },
    /// Sockets from fd 3 on, one name each (`unknown` without names).
    Sockets(Vec<String>),
}

/// The passed sockets, adopted.
#[derive(Debug)]
pub(crate) enum Passed {
    /// No sockets were passed to this process.
    Nothing,
    /// `LISTEN_PID` names another process; its descriptors are left alone.
    NotOurs {
        /// `LISTEN_PID`.
        pid: u32,
    },
    /// The sockets, in descriptor order.
    Sockets(Vec<Socket>),
}

/// One passed TCP socket.
#[derive(Debug)]
pub(crate) struct Socket {
    fd: RawFd,
    name: String,
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Listening(TcpListener),
    Connected(TcpStream),
}

/// Reads `LISTEN_PID`, `LISTEN_FDS` and `LISTEN_FDNAMES` for the process
/// `own`, as `sd_listen_fds_with_names` does.
pub(crate) fn parse(
    pid: Option<&OsStr>,
    fds: Option<&OsStr>,
    names: Option<&OsStr>,
    own: u32,
) -> Result<Found, ActivationError> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(Found::Nothing);
    };
    let pid = number("LISTEN_PID", pid)?;
    if pid != own {
        return Ok(Found::NotOurs { pid });
    }
    let count = number("LISTEN_FDS", fds)?;
    if count > MOST_FDS {
        return Err(ActivationError::TooMany(count));
    }
    if count == 0 {
        return Ok(Found::Nothing);
    }
    let names: Vec<String> = match names {
        Some(names) => names
            .to_string_lossy()
            .split(':')
            .map(str::to_owned)
            .collect(),
        None => vec!["unknown".to_owned(); count as usize],
    };
    if names.len() != count as usize {
        return Err(ActivationError::NameCount {
            fds: count,
            names: names.len(),
        });
    }
    Ok(Found::Sockets(names))
}

fn number(name: &'static str, value: &OsStr) -> Result<u32, ActivationError> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ActivationError::BadVariable {
            name,
            value: value.to_string_lossy().into_owned(),
        })
}

/// Takes ownership of the descriptors `found` names (close-on-exec from
/// then on) and checks that each is a TCP socket, listening or connected.
pub(crate) fn adopt(found: Found) -> Result<Passed, ActivationError> {
    let names = match found {
        Found::Nothing => return Ok(Passed::Nothing),
        Found::NotOurs { pid } => return Ok(Passed::NotOurs { pid }),
        Found::Sockets(names) => names,
    };
    if ADOPTED.swap(true, Ordering::SeqCst) {
        return Err(ActivationError::AlreadyAdopted);
    }
    let mut sockets = Vec::with_capacity(names.len());
    for (fd, name) in (FIRST_FD..).zip(names) {
        match own(fd).and_then(classify) {
            Ok(Ok(kind)) => sockets.push(Socket { fd, name, kind }),
            Ok(Err(what)) => return Err(ActivationError::NotTcp { fd, name, what }),
            Err(source) => return Err(ActivationError::Unusable { fd, name, source }),
        }
    }
    Ok(Passed::Sockets(sockets))
}

/// Takes ownership of an inherited descriptor and marks it close-on-exec.
#[allow(unsafe_code)]
fn own(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: the descriptor is only borrowed for this one call, which
    // fails with EBADF if it is not open.
    let flags = rustix::io::fcntl_getfd(unsafe { BorrowedFd::borrow_raw(fd) })?;
    // SAFETY: the descriptor is open, and LISTEN_PID says the service
    // manager passed it to this process. Nothing in the process uses the
    // descriptors from 3 on before this (they are inherited, not opened
    // here), and `ADOPTED` makes sure each is adopted once.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    rustix::io::fcntl_setfd(&owned, flags | FdFlags::CLOEXEC)?;
    Ok(owned)
}

/// A TCP socket as listening or connected, or `Ok(Err(what it is))` for
/// anything else.
fn classify(fd: OwnedFd) -> io::Result<Result<Kind, &'static str>> {
    if let Err(what) = examine(&fd)? {
        return Ok(Err(what));
    }
    Ok(Ok(if sockopt::socket_acceptconn(&fd)? {
        Kind::Listening(TcpListener::from(fd))
    } else {
        Kind::Connected(TcpStream::from(fd))
    }))
}

/// `Ok(Ok(()))` for a TCP socket, `Ok(Err(what it is))` for anything else.
fn examine(fd: &OwnedFd) -> io::Result<Result<(), &'static str>> {
    let stat = rustix::fs::fstat(fd)?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::Socket {
        return Ok(Err("not a socket"));
    }
    let domain = sockopt::socket_domain(fd)?;
    if domain == AddressFamily::UNIX {
        return Ok(Err("a UNIX socket"));
    }
    if domain != AddressFamily::INET && domain != AddressFamily::INET6 {
        return Ok(Err("not an IPv4 or IPv6 socket"));
    }
    let kind = sockopt::socket_type(fd)?;
    if kind == SocketType::DGRAM {
        return Ok(Err("a datagram (UDP) socket"));
    }
    if kind != SocketType::STREAM {
        return Ok(Err("not a stream socket"));
    }
    if sockopt::socket_protocol(fd)? != Some(ipproto::TCP) {
        return Ok(Err("a stream socket of another protocol than TCP"));
    }
    Ok(Ok(()))
}

/// The listeners of a standalone daemon: every passed socket must be
/// listening; those named in [`IMPLICIT_TLS_NAMES`] serve implicit FTPS,
/// which needs `tls` (a configured certificate).
pub(crate) fn passed_listeners(
    sockets: Vec<Socket>,
    tls: bool,
) -> Result<Vec<Listener>, ActivationError> {
    let mut listeners = Vec::with_capacity(sockets.len());
    for Socket { fd, name, kind } in sockets {
        let socket = match kind {
            Kind::Listening(socket) => socket,
            Kind::Connected(_) => return Err(ActivationError::NotListening { fd, name }),
        };
        let implicit_tls = IMPLICIT_TLS_NAMES.contains(&name.as_str());
        if implicit_tls && !tls {
            return Err(ActivationError::NoTls { fd, name });
        }
        socket
            .set_nonblocking(true)
            .map_err(|source| ActivationError::Unusable {
                fd,
                name: name.clone(),
                source,
            })?;
        log::info!(
            "socket activation: fd {fd} ({}) {} serves {}",
            name.escape_debug(),
            socket
                .local_addr()
                .map_or_else(|_| "?".to_owned(), |a| a.to_string()),
            if implicit_tls { "implicit FTPS" } else { "FTP" }
        );
        listeners.push(Listener {
            socket,
            implicit_tls,
        });
    }
    Ok(listeners)
}

/// The connection of an `--inetd` daemon started by an `Accept=yes` unit:
/// exactly one connected socket.
pub(crate) fn passed_connection(sockets: Vec<Socket>) -> Result<TcpStream, ActivationError> {
    let count = sockets.len();
    let listening = sockets
        .iter()
        .filter(|s| matches!(s.kind, Kind::Listening(_)))
        .count();
    let mut sockets = sockets.into_iter();
    match (sockets.next(), sockets.next()) {
        (
            Some(Socket {
                kind: Kind::Connected(stream),
                ..
            }),
            None,
        ) => Ok(stream),
        _ => Err(ActivationError::NotOneConnection { count, listening }),
    }
}

/// The connection an `--inetd` daemon serves when no socket was passed:
/// standard input, as inetd, tcpsvd and `systemd-socket-activate --inetd
/// --accept` give it.
pub(crate) fn stdin_connection() -> Result<TcpStream, ActivationError> {
    let stdin = io::stdin().as_fd().try_clone_to_owned();
    match stdin.and_then(classify) {
        Ok(Ok(Kind::Connected(stream))) => Ok(stream),
        Ok(Ok(Kind::Listening(_))) => Err(ActivationError::Stdin {
            what: "a listening socket (inetd's \"wait\" mode, or \
                   systemd-socket-activate --inetd without --accept)",
        }),
        Ok(Err(what)) => Err(ActivationError::Stdin { what }),
        Err(source) => Err(ActivationError::Unusable {
            fd: 0,
            name: "standard input".to_owned(),
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn nothing_without_pid_or_count() {
        assert_eq!(parse(None, os("1"), None, 7).unwrap(), Found::Nothing);
        assert_eq!(parse(os("7"), None, None, 7).unwrap(), Found::Nothing);
        assert_eq!(parse(os("7"), os("0"), None, 7).unwrap(), Found::Nothing);
    }

    #[test]
    fn another_process_is_not_ours() {
        assert_eq!(
            parse(os("8"), os("2"), os("a:b"), 7).unwrap(),
            Found::NotOurs { pid: 8 }
        );
    }

    #[test]
    fn names_one_per_socket() {
        assert_eq!(
            parse(os("7"), os("2"), os("ftp:ftps"), 7).unwrap(),
            Found::Sockets(vec!["ftp".into(), "ftps".into()])
        );
        assert_eq!(
            parse(os("7"), os("2"), None, 7).unwrap(),
            Found::Sockets(vec!["unknown".into(), "unknown".into()])
        );
        assert!(matches!(
            parse(os("7"), os("2"), os("ftp"), 7),
            Err(ActivationError::NameCount { fds: 2, names: 1 })
        ));
    }

    #[test]
    fn bad_numbers_are_errors() {
        let e = parse(os("x"), os("1"), None, 7).unwrap_err();
        assert_eq!(
            e.to_string(),
            "socket activation: LISTEN_PID=x is not a number"
        );
        assert!(matches!(
            parse(os("7"), os("-1"), None, 7),
            Err(ActivationError::BadVariable {
                name: "LISTEN_FDS",
                ..
            })
        ));
        assert!(matches!(
            parse(os("7"), os("5000"), None, 7),
            Err(ActivationError::TooMany(5000))
        ));
    }
}
