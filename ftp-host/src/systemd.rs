//! Running under systemd: socket activation, state notifications
//! (`sd_notify`) and the watchdog, without the service manager's library.
//!
//! * `environment`: the variables the service manager sets (`LISTEN_*`,
//!   `NOTIFY_SOCKET`, `WATCHDOG_*`), read once when the daemon starts and
//!   removed from the environment.
//! * `activation`: the sockets it passes (from fd 3 on), adopted, checked
//!   and told apart by name: [`IMPLICIT_TLS_NAMES`] are implicit FTPS,
//!   any other name plain FTP.
//! * `notify`: state messages to `NOTIFY_SOCKET` ([`notify`],
//!   [`notify_reloading`]).
//! * `watchdog`: the thread that sends `WATCHDOG=1`.
//!
//! Nothing here needs systemd to be present: without its variables every
//! function does nothing, and the daemon binds its `--listen` addresses.

mod activation;
mod environment;
mod notify;
mod watchdog;

pub use activation::{ActivationError, IMPLICIT_TLS_NAMES};
pub(crate) use activation::{Passed, passed_connection, passed_listeners, stdin_connection};
pub(crate) use environment::Environment;
pub use notify::{NotifyError, READY, STOPPING, monotonic_usec, notify, notify_reloading};
pub(crate) use watchdog::start_watchdog;
