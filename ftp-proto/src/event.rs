//! Things worth logging that happened in a session (only produced when
//! [`crate::Config::log_events`] is on).

use alloc::string::String;

use crate::path::VirtualPath;

/// One loggable happening in a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A command line was received (`PASS` arguments are masked).
    Command(String),
    /// A reply was queued: its code and first line of text.
    Reply(u16, String),
    /// A user logged in.
    Login {
        /// The user name (`anonymous` for anonymous logins).
        user: String,
        /// Whether it was an anonymous (or no-login) session.
        anonymous: bool,
    },
    /// A login attempt failed.
    LoginFailed {
        /// The name that was tried.
        user: String,
    },
    /// The runtime answered an intent with the wrong kind of
    /// [`crate::Completion`] (a bug in the runtime); the session took it
    /// as a failure. Reported even without `log_events`.
    WrongAnswer {
        /// The kind the intent wanted ([`crate::Intent::answered_by`]).
        expected: &'static str,
        /// The kind it got ([`crate::Completion::kind`]).
        got: &'static str,
    },
    /// A file transfer was refused before anything moved: its file could
    /// not be opened (not for the transfer log).
    TransferRefused {
        /// The file.
        path: VirtualPath,
        /// `true` for uploads.
        incoming: bool,
        /// Why, as the reply says it (for example `No such file or
        /// directory.`).
        reason: &'static str,
    },
    /// A file transfer ended (for the transfer log).
    TransferEnded {
        /// The file.
        path: VirtualPath,
        /// `true` for uploads.
        incoming: bool,
        /// Bytes moved.
        bytes: u64,
        /// ASCII mode.
        ascii: bool,
        /// Whether the transfer completed.
        complete: bool,
    },
}
