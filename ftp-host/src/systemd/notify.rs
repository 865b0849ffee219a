//! State messages to the service manager (`sd_notify`): one datagram of
//! `KEY=VALUE` lines to the socket `NOTIFY_SOCKET` names.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

/// `READY=1`: start-up is done, the daemon serves.
pub const READY: &str = "READY=1";

/// `STOPPING=1`: the daemon is shutting down.
pub const STOPPING: &str = "STOPPING=1";

/// How long a message may wait for room in the manager's queue.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// The socket connected to `NOTIFY_SOCKET`, once the daemon has connected.
static SOCKET: OnceLock<UnixDatagram> = OnceLock::new();

/// Why a message could not be sent.
#[derive(Debug)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    Address(OsString),
    /// The socket could not be reached.
    Connect {
        /// `NOTIFY_SOCKET`.
        socket: OsString,
        /// What the operating system said.
        source: io::Error,
    },
    /// The message could not be sent.
    Send(io::Error),
    /// `WATCHDOG_USEC` or `WATCHDOG_PID` is not a number.
    BadVariable {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
    },
}

impl fmt::Display for NotifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyError::Address(socket) => write!(
                f,
                "NOTIFY_SOCKET={} is neither an absolute path nor @name",
                socket.to_string_lossy().escape_debug()
            ),
            NotifyError::Connect { socket, source } => write!(
                f,
                "cannot reach NOTIFY_SOCKET={}: {source}",
                socket.to_string_lossy().escape_debug()
            ),
            NotifyError::Send(e) => write!(f, "cannot notify the service manager: {e}"),
            NotifyError::BadVariable { name, value } => {
                write!(f, "{name}={} is not a number", value.escape_debug())
            }
        }
    }
}

impl std::error::Error for NotifyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NotifyError::Connect { source, .. } | NotifyError::Send(source) => Some(source),
            _ => None,
        }
    }
}

/// The address `NOTIFY_SOCKET` names: a path, or an abstract socket
/// (`@name`).
fn address(socket: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bad = || NotifyError::Address(socket.to_owned());
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'/') => SocketAddr::from_pathname(socket).map_err(|_| bad()),
        Some(b'@') if bytes.len() > 1 => {
            SocketAddr::from_abstract_name(&bytes[1..]).map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Connects to `socket` (the value of `NOTIFY_SOCKET`) for [`notify`].
/// Only the first connection counts.
pub(super) fn connect(socket: &OsStr) -> Result<(), NotifyError> {
    let addr = address(socket)?;
    let failed = |source| NotifyError::Connect {
        socket: socket.to_owned(),
        source,
    };
    let datagram = UnixDatagram::unbound().map_err(failed)?;
    datagram.connect_addr(&addr).map_err(failed)?;
    datagram
        .set_write_timeout(Some(SEND_TIMEOUT))
        .map_err(failed)?;
    let _ = SOCKET.set(datagram);
    Ok(())
}

/// Tells the service manager about the daemon's state: `state` is one or
/// more `KEY=VALUE` lines (`READY=1`, `STOPPING=1`, `RELOADING=1`,
/// `STATUS=text`, `WATCHDOG=1`, ...; see `sd_notify(3)`).
///
/// Does nothing (and succeeds) when the daemon was not started with
/// `NOTIFY_SOCKET`. The message is one datagram on a socket connected when
/// the daemon started, so it works after a chroot or a change of identity;
/// it may block up to a second when the manager's queue is full, so call
/// it from a thread of its own or the daemon's start-up and shutdown
/// paths, never from an event loop. A failure is worth a log line, not
/// more: the daemon serves on either way.
pub fn notify(state: &str) -> Result<(), NotifyError> {
    let Some(socket) = SOCKET.get() else {
        return Ok(());
    };
    socket
        .send(state.as_bytes())
        .map(|_| ())
        .map_err(NotifyError::Send)
}

/// Says that a reload has begun: `RELOADING=1` with `MONOTONIC_USEC=` the
/// current [`monotonic_usec`], as `Type=notify-reload` units require.
/// Send [`READY`] once the new configuration is in use.
pub fn notify_reloading() -> Result<(), NotifyError> {
    notify(&format!("RELOADING=1\nMONOTONIC_USEC={}", monotonic_usec()))
}

/// `CLOCK_MONOTONIC` in microseconds, the clock `MONOTONIC_USEC=` is read
/// on.
pub fn monotonic_usec() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let micros = u64::try_from(now.tv_nsec).unwrap_or(0) / 1000;
    secs.saturating_mul(1_000_000).saturating_add(micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_abstract_names() {
        let path = address(OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
        let abstract_ = address(OsStr::new("@ftp/notify")).unwrap();
        assert_eq!(abstract_.as_abstract_name(), Some(&b"ftp/notify"[..]));
        for bad in ["", "@", "relative", "vsock:2:1"] {
            assert!(
                matches!(address(OsStr::new(bad)), Err(NotifyError::Address(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn monotonic_usec_moves_forward() {
        let a = monotonic_usec();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_usec() >= a + 2000);
    }
}
