//! Session policy: everything the engine decides that an operator may tune.

use alloc::string::String;
use core::net::Ipv4Addr;
use core::time::Duration;

/// Policy for one session. Runtimes build it once from the command line and
/// configuration file and share it between sessions.
#[derive(Clone, Debug)]
pub struct Config {
    /// Text of the `220` greeting.
    pub greeting: String,
    /// `-A`: no login needed; the session starts logged in.
    pub no_login: bool,
    /// Allow `anonymous` / `ftp` with any password.
    pub anonymous: bool,
    /// Let the runtime confirm anonymous logins: with this set, an allowed
    /// anonymous `PASS` sends [`crate::Intent::Authenticate`] with the user
    /// `anonymous` (whatever anonymous name the client gave) instead of
    /// logging in at once, so the host can take the identity anonymous
    /// sessions act with before any file is touched. A granted answer logs
    /// in anonymously (writing only if `anonymous_write`); a refusal is an
    /// ordinary failed login. Off by default.
    pub authenticate_anonymous: bool,
    /// Whether anonymous and no-login sessions may write (`-w`).
    pub anonymous_write: bool,
    /// Delay before answering a failed login; doubles with every further failure.
    pub login_fail_delay: Duration,
    /// Failed logins after which the session is closed with `421`.
    pub max_login_attempts: u32,
    /// Time allowed from the greeting to a successful login; the session
    /// then gets `421 Login timeout` and is closed. The deadline is
    /// absolute: input (even complete commands) does not put it off. A
    /// `REIN` after a login starts a new one. Not applied with `no_login`.
    pub login_timeout: Option<Duration>,
    /// Idle time after which the session gets `421 Timeout.` and is closed.
    pub idle_timeout: Option<Duration>,
    /// Absolute session lifetime.
    pub session_timeout: Option<Duration>,
    /// Time allowed for the data connection to be established.
    pub data_connect_timeout: Duration,
    /// Time a running transfer may go without progress before it is
    /// aborted with `426`.
    pub data_timeout: Option<Duration>,
    /// Accept `PORT`/`EPRT` at all.
    pub allow_active: bool,
    /// Accept `PORT`/`EPRT` to an address other than the client's (FXP). Unsafe.
    pub allow_foreign_active: bool,
    /// Lowest port `PORT`/`EPRT` may name.
    pub min_active_port: u16,
    /// Address announced in `227` replies instead of the control connection's own.
    pub pasv_address: Option<Ipv4Addr>,
    /// Longest accepted command line, in bytes, without the line end.
    pub max_line: usize,
    /// Most entries `STAT path` prints over the control connection.
    pub max_stat_entries: usize,
    /// Most names a pattern (`NLST *.txt`) may match; more gets `550`.
    pub max_glob_matches: usize,
    /// Largest `SITE IDLE` value a client may set, in seconds.
    pub max_idle: Duration,
    /// Largest range `HASH` and the `X…` digest commands work on (bigger
    /// gets `552`); `None` turns them off (`502`, and `FEAT` leaves them
    /// out).
    pub hash_max_size: Option<u64>,
    /// Default umask for new files and directories (reported by `SITE UMASK`).
    pub umask: u32,
    /// Produce [`crate::Event`]s for logging.
    pub log_events: bool,
    /// FTPS (RFC 4217): whether TLS is offered and what must use it.
    pub tls: TlsPolicy,
    /// What the storage behind the session can do; commands it cannot
    /// carry out are refused by the engine and left out of `FEAT`.
    pub storage: StorageCaps,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            greeting: String::from("Service ready."),
            no_login: false,
            anonymous: false,
            authenticate_anonymous: false,
            anonymous_write: false,
            login_fail_delay: Duration::from_secs(1),
            max_login_attempts: 3,
            login_timeout: Some(Duration::from_secs(60)),
            idle_timeout: Some(Duration::from_secs(300)),
            session_timeout: None,
            data_connect_timeout: Duration::from_secs(30),
            data_timeout: Some(Duration::from_secs(300)),
            allow_active: true,
            allow_foreign_active: false,
            min_active_port: 1024,
            pasv_address: None,
            max_line: 4096,
            max_stat_entries: 10_000,
            max_glob_matches: 10_000,
            max_idle: Duration::from_secs(7200),
            hash_max_size: Some(4 << 30),
            umask: 0o022,
            log_events: false,
            tls: TlsPolicy::default(),
            storage: StorageCaps::default(),
        }
    }
}

/// FTPS policy (RFC 4217). The engine decides when TLS starts and what
/// must be protected; the runtime only performs the handshakes it is asked
/// for ([`crate::Intent::UpgradeTls`], [`crate::Transfer::tls`]).
///
/// The requirements apply to non-anonymous logins, as vsftpd's
/// `force_local_logins_ssl` and `force_local_data_ssl` do: anonymous
/// sessions have no secret to protect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsPolicy {
    /// The runtime can do TLS: `AUTH TLS` is accepted and FEAT lists
    /// `AUTH TLS`, `PBSZ` and `PROT`. Off: `AUTH` is answered `502`.
    pub available: bool,
    /// `USER` with a non-anonymous name is refused (`530`) until the
    /// control connection is protected.
    pub control_required: bool,
    /// Transfers of non-anonymous sessions are refused (`521`) unless the
    /// data connection is protected (`PROT P`).
    pub data_required: bool,
    /// Accept `CCC` (back to a clear control connection after login);
    /// refused with `534` otherwise.
    pub allow_ccc: bool,
}

/// What the storage behind a session can do, as the host reports it.
///
/// The engine refuses a command the storage cannot carry out (`502` for
/// `APPE`, `MFMT` and `SITE CHMOD`, `504` for `STOR` after a non-zero
/// `REST`), saying that the storage cannot do it, and `FEAT` does not
/// announce it. The default is everything (a local file system); an
/// object store, which can neither change an object in place nor set its
/// time or permissions, is [`StorageCaps::OBJECT_STORE`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StorageCaps {
    /// `APPE`: add to the end of an existing file.
    pub append: bool,
    /// `REST` before `STOR`: write into an existing file from an offset
    /// (`REST STREAM` in `FEAT`). Restarted downloads do not need it.
    pub resume_upload: bool,
    /// `MFMT`: set a file's modification time.
    pub set_modified: bool,
    /// `SITE CHMOD`: set a file's permission bits.
    pub set_permissions: bool,
}

impl StorageCaps {
    /// Everything: what a local file system can do (the default).
    pub const ALL: StorageCaps = StorageCaps {
        append: true,
        resume_upload: true,
        set_modified: true,
        set_permissions: true,
    };

    /// An object store (S3 and the like): whole objects are written at
    /// once, and their time and permissions are the store's.
    pub const OBJECT_STORE: StorageCaps = StorageCaps {
        append: false,
        resume_upload: false,
        set_modified: false,
        set_permissions: false,
    };
}

impl Default for StorageCaps {
    fn default() -> Self {
        StorageCaps::ALL
    }
}
