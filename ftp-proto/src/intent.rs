//! What the engine asks the runtime to do, and what the runtime reports back.
//!
//! Every [`Intent`] arrives with an [`IntentId`]; the runtime answers with a
//! [`Completion`] carrying the same id through
//! [`crate::Session::handle_completion`]. Intents that need no answer say so
//! in their documentation.

use alloc::string::String;
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use crate::listing::ListFormat;
use crate::meta::{DirEntry, Metadata};
use crate::path::VirtualPath;
use crate::secret::Secret;
use crate::time::UnixTime;

/// Identifies one intent and the completions that answer it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IntentId(pub u64);

/// Something the runtime must do for the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Check a user's password (slow: do it off the event loop).
    /// Answer: [`Completion::Auth`]. Never sent for an anonymous name.
    Authenticate {
        /// The name from `USER`.
        user: String,
        /// The secret from `PASS`.
        password: Secret,
    },
    /// With [`crate::Config::authenticate_anonymous`]: an allowed anonymous
    /// login (`USER anonymous` or `ftp`) waits for the runtime to confirm
    /// it (after taking the identity anonymous sessions act with, say) or
    /// refuse it. What the session may write is the engine's policy.
    /// Answer: [`Completion::Anonymous`].
    ConfirmAnonymous {
        /// The password as given (by custom an e-mail address).
        password: Secret,
    },
    /// Bind a passive data listener on the control connection's local
    /// address (in the configured port range) that accepts one connection,
    /// from `peer` only. Answer: [`Completion::PassiveReady`].
    OpenPassive {
        /// The only address a data connection may come from.
        peer: IpAddr,
    },
    /// Close a passive listener opened earlier (and any connection it
    /// accepted but that no transfer used). Sent too when a transfer that
    /// used the listener has ended; one the transfer already consumed is
    /// simply gone. No answer.
    ClosePassive {
        /// The id of the [`Intent::OpenPassive`].
        listener: IntentId,
    },
    /// Report metadata of a path (following symlinks that stay under the
    /// root). Answer: [`Completion::Stat`].
    Stat {
        /// The path to look up.
        path: VirtualPath,
    },
    /// Read up to `limit` entries of a directory, or the single entry of a
    /// file. Answer: [`Completion::Entries`].
    ReadDir {
        /// The directory (or file) to list.
        path: VirtualPath,
        /// Most entries to return.
        limit: usize,
    },
    /// Create a directory. Answer: [`Completion::Done`].
    MakeDir {
        /// The directory to create.
        path: VirtualPath,
        /// The session's umask (`SITE UMASK`): the mode is
        /// `0o777 & !umask` where the storage has modes.
        umask: u32,
    },
    /// Remove an empty directory. Answer: [`Completion::Done`].
    RemoveDir {
        /// The directory to remove.
        path: VirtualPath,
    },
    /// Remove a file (or symlink). Answer: [`Completion::Done`].
    RemoveFile {
        /// The file to remove.
        path: VirtualPath,
    },
    /// Rename a file or directory. Answer: [`Completion::Done`].
    Rename {
        /// The existing path.
        from: VirtualPath,
        /// The new path.
        to: VirtualPath,
    },
    /// Report the bytes an upload to `path` may still take: what is left
    /// of the user's quota, or else the free space of the storage.
    /// Answer: [`Completion::Available`].
    Available {
        /// The directory asked about (`AVBL path`; the working directory
        /// without one).
        path: VirtualPath,
    },
    /// Compute the digest of bytes `start..end` of the file `path` (the
    /// engine checked it is a file of at least `end` bytes, within its
    /// size limit): slow, so off the event loop, reading through the
    /// storage. Answer: [`Completion::Hash`], unless
    /// [`Intent::CancelHash`] came first (then no answer is needed).
    Hash {
        /// The file.
        path: VirtualPath,
        /// Which digest.
        algorithm: crate::HashAlgorithm,
        /// First byte.
        start: u64,
        /// One past the last byte.
        end: u64,
    },
    /// Stop computing the digest asked for by this [`Intent::Hash`] (ABOR,
    /// or the session closing). No answer.
    CancelHash {
        /// The id of the [`Intent::Hash`].
        hash: IntentId,
    },
    /// Change permission bits. Answer: [`Completion::Done`].
    SetPermissions {
        /// The file to change.
        path: VirtualPath,
        /// The new bits (at most `0o7777`).
        mode: u32,
    },
    /// Change the modification time. Answer: [`Completion::Done`].
    SetModified {
        /// The file to change.
        path: VirtualPath,
        /// The new time.
        time: UnixTime,
    },
    /// Run a data transfer. Answers: [`Completion::Transfer`] events, ending
    /// with [`TransferEvent::Finished`] or [`TransferEvent::Failed`].
    ///
    /// A passive listener is taken (accepted on, then closed) only once
    /// the file is open ([`TransferEvent::Ready`]): when the file cannot be
    /// opened, the listener stays open under its id, because the engine
    /// keeps the data channel prepared for the next transfer. The engine
    /// closes it otherwise ([`Intent::ClosePassive`]).
    Transfer(Transfer),
    /// Stop the running transfer: close its data connection, keep the
    /// partial upload under its temporary name or discard it, and answer the
    /// transfer's id with [`TransferError::Aborted`] (or its normal end, if
    /// it had already finished). No answer of its own.
    AbortTransfer {
        /// The id of the [`Intent::Transfer`].
        transfer: IntentId,
    },
    /// After the reply bytes queued so far are written (the `234` last),
    /// start a TLS handshake on the control connection (the `AUTH TLS`
    /// hook; input read after the `234` belongs to the handshake, not to
    /// the session). Answer: [`Completion::Tls`] with `Ok` once the
    /// connection has switched to TLS (the handshake may still be under
    /// way: the runtime simply reads and writes through TLS from then on);
    /// `Err` closes the session.
    UpgradeTls,
    /// After the reply bytes queued so far are written (the `200` to `CCC`
    /// last), end TLS on the control connection: send `close_notify`, read
    /// until the client's, and go on in clear. Answer: [`Completion::Tls`]
    /// like [`Intent::UpgradeTls`].
    ClearTls,
}

/// One data transfer: where the data connection comes from, what flows
/// over it and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    /// How to get the data connection.
    pub data: DataEndpoint,
    /// What to send or receive.
    pub op: TransferOp,
    /// ASCII mode: convert line ends with [`crate::ascii`] on the data path.
    pub ascii: bool,
    /// `PROT P`: the data connection is TLS (the server side of the
    /// handshake, resuming the control connection's session), set up before
    /// [`TransferEvent::Connected`] is reported.
    pub tls: bool,
}

/// Where the data connection of a transfer comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEndpoint {
    /// Use the connection accepted (or still to be accepted) on this
    /// passive listener.
    Passive {
        /// The id of the [`Intent::OpenPassive`].
        listener: IntentId,
    },
    /// Connect out to this address (`PORT`/`EPRT`), already checked by the
    /// engine's policy.
    Active {
        /// The client's data address.
        addr: SocketAddr,
    },
}

/// What a transfer moves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferOp {
    /// Send a file, starting at `offset`.
    Retrieve {
        /// The file to send.
        path: VirtualPath,
        /// Bytes of the file to skip (`REST`).
        offset: u64,
    },
    /// Receive a file.
    Store {
        /// The file to write; for [`StoreMode::Unique`], the directory.
        path: VirtualPath,
        /// How to write it.
        mode: StoreMode,
        /// The size the client announced with `ALLO`, if it did: an
        /// upload that cannot fit may be refused before data flows
        /// ([`FsError::QuotaExceeded`] gives `552`).
        size: Option<u64>,
        /// The session's umask (`SITE UMASK`): a new file's mode is
        /// `0o666 & !umask` where the storage has modes.
        umask: u32,
    },
    /// Send a directory listing, formatted entry by entry with `format`.
    List {
        /// The directory (or single file) to list.
        path: VirtualPath,
        /// How each entry is printed.
        format: ListFormat,
    },
}

/// How an upload writes its file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    /// Write to a temporary name beside the file and rename it into place
    /// when the transfer completes (`STOR`).
    Replace,
    /// Append to the file, creating it if needed (`APPE`).
    Append,
    /// Write into the existing file from this offset on (`REST` + `STOR`).
    Resume(u64),
    /// Create a new file with a unique name in the directory (`STOU`); report
    /// the name in [`TransferEvent::Ready`].
    Unique,
}

/// The runtime's answer to an intent. Each intent has exactly one kind of
/// answer ([`Intent::answered_by`]); a session handed the wrong kind treats
/// it as a failure and reports [`crate::Event::WrongAnswer`], so a
/// runtime's mistake is logged rather than silent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Completion {
    /// Answer to [`Intent::Authenticate`].
    Auth(Result<Grant, AuthError>),
    /// Answer to [`Intent::ConfirmAnonymous`].
    Anonymous(Result<(), AuthError>),
    /// Answer to [`Intent::UpgradeTls`] and [`Intent::ClearTls`].
    Tls(Result<(), TlsSwitchError>),
    /// Answer to [`Intent::OpenPassive`]: the address the listener is bound to.
    PassiveReady(Result<SocketAddr, ResourceError>),
    /// Answer to [`Intent::Stat`].
    Stat(Result<Metadata, FsError>),
    /// Answer to [`Intent::ReadDir`], sorted as the runtime likes (by name is
    /// friendliest), with the current wall-clock time (listings print recent
    /// and old dates differently).
    Entries(Result<Vec<DirEntry>, FsError>, UnixTime),
    /// Answer to file operations that only succeed or fail.
    Done(Result<(), FsError>),
    /// Answer to [`Intent::Available`]: bytes available.
    Available(Result<u64, FsError>),
    /// Answer to [`Intent::Hash`]: the digest in lower-case hex.
    Hash(Result<String, FsError>),
    /// Progress of an [`Intent::Transfer`].
    Transfer(TransferEvent),
}

impl Completion {
    /// The name of this kind of answer, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Completion::Auth(_) => "Auth",
            Completion::Anonymous(_) => "Anonymous",
            Completion::Tls(_) => "Tls",
            Completion::PassiveReady(_) => "PassiveReady",
            Completion::Stat(_) => "Stat",
            Completion::Entries(..) => "Entries",
            Completion::Done(_) => "Done",
            Completion::Available(_) => "Available",
            Completion::Hash(_) => "Hash",
            Completion::Transfer(_) => "Transfer",
        }
    }
}

impl Intent {
    /// The kind of [`Completion`] that answers this intent
    /// ([`Completion::kind`]), or `None` for intents that get no answer.
    pub fn answered_by(&self) -> Option<&'static str> {
        Some(match self {
            Intent::Authenticate { .. } => "Auth",
            Intent::ConfirmAnonymous { .. } => "Anonymous",
            Intent::UpgradeTls | Intent::ClearTls => "Tls",
            Intent::OpenPassive { .. } => "PassiveReady",
            Intent::Stat { .. } => "Stat",
            Intent::ReadDir { .. } => "Entries",
            Intent::Available { .. } => "Available",
            Intent::Hash { .. } => "Hash",
            Intent::MakeDir { .. }
            | Intent::RemoveDir { .. }
            | Intent::RemoveFile { .. }
            | Intent::Rename { .. }
            | Intent::SetPermissions { .. }
            | Intent::SetModified { .. } => "Done",
            Intent::Transfer(_) => "Transfer",
            Intent::ClosePassive { .. }
            | Intent::AbortTransfer { .. }
            | Intent::CancelHash { .. } => return None,
        })
    }
}

/// Why the control connection could not switch to or from TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSwitchError {
    /// TLS is not available for this session (no certificate, or its
    /// configuration failed).
    Unavailable,
    /// The switch itself failed.
    Failed,
}

/// What a successful login may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Whether the user may change the file tree.
    pub write: bool,
}

/// Why a login failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// Unknown user or wrong password (never say which).
    Denied,
    /// The user database could not be consulted.
    Unavailable,
}

/// A resource the runtime could not provide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceError {
    /// No free port in the passive range, or no descriptors left.
    Exhausted,
    /// Any other failure.
    Failed,
}

/// Why a file operation failed, as far as the client needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FsError {
    /// No such file or directory.
    NotFound,
    /// The operating system (or the root boundary) refused.
    PermissionDenied,
    /// The target already exists.
    AlreadyExists,
    /// A directory was needed.
    NotADirectory,
    /// A file was needed.
    IsADirectory,
    /// The directory is not empty.
    NotEmpty,
    /// No space left on the device.
    NoSpace,
    /// The user's quota is exhausted.
    QuotaExceeded,
    /// The name is not acceptable to the file system.
    InvalidName,
    /// More names match a listing's pattern than it may return.
    TooManyMatches,
    /// Anything else (an I/O error).
    Other,
}

/// Progress of a transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferEvent {
    /// The file or directory is open; data will flow once the data
    /// connection is up. `size` is the number of bytes to send, when known;
    /// `name` is the name chosen for `STOU`.
    Ready {
        /// Bytes that will be sent, for RETR.
        size: Option<u64>,
        /// The unique name picked for `STOU`.
        name: Option<String>,
    },
    /// The data connection is established.
    Connected,
    /// Data is flowing: `bytes` crossed the data connection so far. Report
    /// it now and then (about once a second is plenty) while a transfer
    /// runs; a transfer without progress for [`crate::Config::data_timeout`]
    /// is aborted.
    Progress {
        /// Bytes moved so far.
        bytes: u64,
    },
    /// All data moved and the data connection is closed.
    Finished {
        /// Bytes that crossed the data connection.
        bytes: u64,
    },
    /// The transfer ended without completing.
    Failed(TransferError),
}

/// Why a transfer did not complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferError {
    /// Opening, reading or writing the file failed.
    Fs(FsError),
    /// The data connection could not be established.
    NoConnection,
    /// The data connection broke during the transfer.
    ConnectionLost,
    /// Stopped by [`Intent::AbortTransfer`].
    Aborted,
}

/// What the runtime must do next, from [`crate::Session::poll_output`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Perform this intent and answer with its id.
    Intent(IntentId, Intent),
    /// Write out what [`crate::Session::transmit`] still holds, then close
    /// the control connection and drop every resource of the session.
    Close,
}
