//! The variables the service manager sets, read once and removed.

use std::ffi::OsString;
use std::time::Duration;

use super::activation::{self, ActivationError, Passed};
use super::notify::{self, NotifyError};
use super::watchdog;

/// The variables read and removed by [`Environment::take`].
const NAMES: [&str; 6] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// What the service manager told this process, as found at start.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Environment {
    /// `LISTEN_PID`: the process the passed sockets are meant for.
    pub(crate) listen_pid: Option<OsString>,
    /// `LISTEN_FDS`: how many sockets were passed, from fd 3 on.
    pub(crate) listen_fds: Option<OsString>,
    /// `LISTEN_FDNAMES`: their names, separated by `:`.
    pub(crate) listen_fdnames: Option<OsString>,
    /// `NOTIFY_SOCKET`: where state messages go (a path, or `@name` for
    /// an abstract socket).
    pub(crate) notify_socket: Option<OsString>,
    /// `WATCHDOG_USEC`: the watchdog's timeout in microseconds.
    pub(crate) watchdog_usec: Option<OsString>,
    /// `WATCHDOG_PID`: the process the watchdog is meant for.
    pub(crate) watchdog_pid: Option<OsString>,
}

impl Environment {
    /// Reads the variables and removes them from the environment, so that
    /// nothing the process starts later inherits sockets or a watchdog
    /// meant for it (as `sd_listen_fds(1)` does).
    ///
    /// Changing the environment is only sound while no other thread can
    /// read it: [`crate::daemon::main`] calls this first, before it starts
    /// any thread, and nothing else in the crate calls it.
    pub(crate) fn take() -> Environment {
        let [
            listen_pid,
            listen_fds,
            listen_fdnames,
            notify_socket,
            watchdog_usec,
            watchdog_pid,
        ] = NAMES.map(|name| {
            let value = std::env::var_os(name);
            if value.is_some() {
                remove(name);
            }
            value
        });
        Environment {
            listen_pid,
            listen_fds,
            listen_fdnames,
            notify_socket,
            watchdog_usec,
            watchdog_pid,
        }
    }

    /// The sockets passed with `LISTEN_FDS`, adopted and checked to be TCP
    /// sockets (listening or connected). Call it once: the descriptors
    /// become the returned sockets' and are closed with them.
    pub(crate) fn passed_sockets(&self) -> Result<Passed, ActivationError> {
        let found = activation::parse(
            self.listen_pid.as_deref(),
            self.listen_fds.as_deref(),
            self.listen_fdnames.as_deref(),
            std::process::id(),
        )?;
        activation::adopt(found)
    }

    /// Connects to `NOTIFY_SOCKET`, if it is set, for [`notify`] to use
    /// from then on (the socket is connected before a chroot or a change
    /// of identity, so both leave it working). `Ok(false)` without it.
    ///
    /// [`notify`]: super::notify()
    pub(crate) fn connect_notify(&self) -> Result<bool, NotifyError> {
        match &self.notify_socket {
            Some(value) => notify::connect(value).map(|()| true),
            None => Ok(false),
        }
    }

    /// How often to send `WATCHDOG=1`: half of `WATCHDOG_USEC`, when it is
    /// set (and not 0) and `WATCHDOG_PID` is this process or unset.
    pub(crate) fn watchdog_interval(&self) -> Result<Option<Duration>, NotifyError> {
        watchdog::interval(
            self.watchdog_usec.as_deref(),
            self.watchdog_pid.as_deref(),
            std::process::id(),
        )
    }
}

/// Removes one variable from the environment.
#[allow(unsafe_code)]
fn remove(name: &str) {
    // SAFETY: only called from `Environment::take`, which the daemon's
    // `main` runs before it starts any thread, so no other thread reads or
    // writes the environment meanwhile.
    unsafe { std::env::remove_var(name) }
}
