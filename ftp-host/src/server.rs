//! What a daemon holds for the whole server ([`Server`]) and for each
//! session ([`SessionHost`]): the glue between the engine's intents and the
//! host's storage, users and logs, written once for both runtimes.
//!
//! Runtimes own sockets and timers. For every intent that touches files or
//! users they ask [`SessionHost::job`] for a [`Job`], run it wherever
//! blocking work belongs in their model (a worker thread, `blocking::unblock`),
//! and hand the [`JobDone`] back to [`SessionHost::finish`], which yields the
//! completion for the engine.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Instant as StdInstant, SystemTime};

use ftp_proto::{
    AuthError, Completion, DataEndpoint, Event, FsError, Grant, Intent, IntentId, Secret, Session,
    TlsSwitchError, TransferEvent, TransferOp, VirtualPath,
};

use crate::active::ActiveFrom;
use crate::auth_program;
use crate::ban::{Defender, Verdict};
use crate::cli::{PamSettings, ServerConfig};
use crate::clock::Clock;
use crate::config::ConfigError;
use crate::exec;
use crate::hooks::{Facts, HookEvent, Hooks, Status};
use crate::identity::Identity;
use crate::limits::ConnectionLimiter;
use crate::metrics::{LoginResult, Metrics};
use crate::passive::PassivePorts;
use crate::pasv_address::{EngineConfig, RESOLVE_EVERY, spawn_resolver};
use crate::policy::UserPolicy;
use crate::quota::{Quota, Usage, Usages};
use crate::rate::RateLimit;
use crate::storage::{LocalFs, OpenRootError, Storage};
use crate::system::{Account, Refusal, SystemUsers};
use crate::tls::TlsContext;
use crate::tls::{ControlStream, SessionTls, TlsConn, TlsError};
use crate::transfer::{Sink, Source, open_sink_with_quota, open_source, open_source_cached};
use crate::users::UserDb;
use crate::xferlog::{XferLog, XferRecord};

/// Everything the sessions of one server share.
#[derive(Debug)]
pub struct Server {
    /// The checked configuration.
    pub config: ServerConfig,
    /// The served folder.
    pub storage: Arc<dyn Storage>,
    /// The passive port pool.
    pub passive: PassivePorts,
    /// Connection limits.
    pub limiter: Arc<ConnectionLimiter>,
    /// The transfer log, when `--xferlog` is set.
    pub xferlog: Option<XferLog>,
    /// The monotonic clock every session uses.
    pub clock: Clock,
    /// What `/metrics` reports.
    pub metrics: Arc<Metrics>,
    /// What a reload replaces: accounts and certificate.
    accounts: RwLock<Arc<Accounts>>,
    /// The number of the next session, for the logs.
    next_session: std::sync::atomic::AtomicU64,
    /// The engine configuration new sessions start with: the configured
    /// one, with the `--pasv-address` host name's latest address.
    pub engine: Arc<EngineConfig>,
    /// The identity a login changed the process to, with
    /// [`ServerConfig::login_identity`]: it cannot be changed again.
    assumed: Mutex<Option<Identity>>,
    /// What the homes of users with a quota hold, counted on this node.
    pub usages: Usages,
    /// Failed logins by address and the bans they earned (`--ban-after`);
    /// kept across reloads.
    pub defender: Option<Defender>,
    /// The limits of sessions whose account sets none: anonymous and
    /// system accounts (`--download-rate`, `--upload-rate`).
    pub default_policy: Arc<UserPolicy>,
    /// The event hooks' runner, when any hook is configured.
    pub hooks: Option<Arc<Hooks>>,
}

impl Server {
    /// Opens the served folder and the transfer log.
    pub fn new(config: ServerConfig) -> Result<Arc<Server>, ConfigError> {
        let storage = match &config.s3 {
            Some(s3) => open_bucket(s3)?,
            None => open_folder(&config.root)?,
        };
        if config.s3.is_some() {
            check_homes(storage.as_ref(), config.users.as_deref())?;
        }
        let xferlog = match &config.xferlog {
            Some(path) => Some(XferLog::open(path).map_err(|source| ConfigError::Xferlog {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        let engine = Arc::new(EngineConfig::new(config.engine.clone()));
        if let Some(host) = &config.pasv_host {
            if let Err(e) = spawn_resolver(Arc::downgrade(&engine), host.clone(), RESOLVE_EVERY) {
                log::warn!("--pasv-address {host} will not be resolved again: {e}");
            }
        }
        Ok(Arc::new(Server {
            engine,
            passive: PassivePorts::new(config.pasv_ports.clone()),
            limiter: Arc::new(ConnectionLimiter::from_config(&config)),
            storage,
            xferlog,
            clock: Clock::new(),
            metrics: Arc::new(Metrics::new()),
            accounts: RwLock::new(Arc::new(Accounts::of(&config))),
            next_session: std::sync::atomic::AtomicU64::new(1),
            assumed: Mutex::new(None),
            default_policy: Arc::new(UserPolicy {
                download_rate: Some(config.download_rate),
                upload_rate: Some(config.upload_rate),
                ..UserPolicy::default()
            }),
            hooks: (!config.hooks.is_empty()).then(|| Arc::new(Hooks::new(config.hooks.clone()))),
            defender: config.ban.clone().map(Defender::new),
            usages: Usages::default(),
            config,
        }))
    }

    /// A new session on an accepted control connection: the engine's state
    /// machine and the host's side of it.
    pub fn session(
        self: &Arc<Self>,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> (Session, SessionHost) {
        let local = canonical(local);
        let peer = canonical(peer);
        let session = Session::new(self.engine.get(), local, peer, self.clock.now());
        let accounts = self.accounts();
        let tls = match accounts.tls.as_ref().map(|t| t.session()) {
            Some(Ok(tls)) => Some(tls.with_metrics(self.metrics.clone())),
            Some(Err(e)) => {
                log::warn!("{peer}: no TLS for this session: {e}");
                None
            }
            None => None,
        };
        self.metrics.session_started();
        let id = self
            .next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let host = SessionHost {
            id,
            server: self.clone(),
            storage: self.storage.clone(),
            peer,
            local,
            transfer: None,
            tls,
            login_failure: None,
            policy: self.default_policy.clone(),
            user: session.user().map(str::to_owned),
            logged_in: false,
            quota: None,
            hashing: None,
        };
        log::debug!("{peer}: connected");
        (session, host)
    }
}

/// What a reload (SIGHUP) replaces while sessions go on: the accounts
/// and the certificate. A session keeps what it began with.
#[derive(Debug)]
pub struct Accounts {
    /// The users file's accounts (`--users`).
    pub users: Option<Arc<UserDb>>,
    /// System accounts (`--system-users`, `--ftpusers`).
    pub system_users: Option<Arc<SystemUsers>>,
    /// PAM logins (`--pam`, with the `--ftpusers` names).
    pub pam: Option<Arc<PamSettings>>,
    /// The certificate and key (`--tls-cert`, `--tls-key`).
    pub tls: Option<Arc<TlsContext>>,
}

impl Accounts {
    fn of(config: &ServerConfig) -> Accounts {
        Accounts {
            users: config.users.clone(),
            system_users: config.system_users.clone(),
            pam: config.pam.clone(),
            tls: config.tls.as_ref().map(|t| t.context.clone()),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    /// Accounts in the users file now (0 without one).
    pub users: usize,
    /// Whether a certificate was loaded.
    pub certificate: bool,
}

impl Server {
    /// The accounts and certificate new sessions and logins use.
    pub fn accounts(&self) -> Arc<Accounts> {
        self.accounts
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the command line's files again (the configuration file, the
    /// users file, the ftpusers file, the certificate and key) and, if
    /// they are all good, makes new logins and new sessions use the new
    /// accounts and certificate. Sessions under way keep theirs. On an
    /// error nothing changes. Other settings take effect at a restart.
    pub fn reload(&self) -> Result<Reloaded, ConfigError> {
        let fresh = match crate::cli::parse_args(self.config.command_line.clone())? {
            crate::cli::Invocation::Serve(config) => config,
            crate::cli::Invocation::HashPassword => {
                return Err(ConfigError::Conflict("the command line no longer serves"));
            }
        };
        if fresh.s3.is_some() {
            check_homes(self.storage.as_ref(), fresh.users.as_deref())?;
        }
        if fresh.users.is_some() != self.config.users.is_some()
            || fresh.system_users.is_some() != self.config.system_users.is_some()
            || fresh.pam.as_ref().map(|p| &p.service)
                != self.config.pam.as_ref().map(|p| &p.service)
        {
            return Err(ConfigError::Conflict(
                "a reload cannot change where accounts come from (--users, --system-users, --pam): restart",
            ));
        }
        if fresh.tls.is_some() != self.config.tls.is_some() {
            return Err(ConfigError::Conflict(
                "a reload cannot turn TLS on or off: restart",
            ));
        }
        let accounts = Accounts::of(&fresh);
        let done = Reloaded {
            users: accounts.users.as_ref().map_or(0, |u| u.len()),
            certificate: accounts.tls.is_some(),
        };
        *self
            .accounts
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(accounts);
        Ok(done)
    }
}

/// The served folder on local disk.
fn open_folder(root: &std::path::Path) -> Result<Arc<dyn Storage>, ConfigError> {
    let storage = LocalFs::open(root).map_err(|e| ConfigError::Root {
        path: root.to_path_buf(),
        source: match e {
            OpenRootError::Io(e) => e,
            OpenRootError::Unsupported => std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the kernel lacks openat2 (Linux 5.6 or later is needed)",
            ),
        },
    })?;
    Ok(Arc::new(storage))
}

/// Every user's home must be a folder of the served bucket, as on disk
/// (where `--users` checks them when it reads the file).
fn check_homes(storage: &dyn Storage, users: Option<&UserDb>) -> Result<(), ConfigError> {
    let Some(users) = users else {
        return Ok(());
    };
    for name in users.names() {
        let Some(home) = users.home(name) else {
            continue;
        };
        let found = VirtualPath::root()
            .resolve(&home.to_string_lossy())
            .map(|h| storage.subtree(&h));
        if !matches!(found, Some(Ok(_))) {
            return Err(ConfigError::Storage(format!(
                "user '{name}': home '{}' is not a folder of the bucket (make it with MKD)",
                home.display()
            )));
        }
    }
    Ok(())
}

/// The served bucket, checked to answer; the multipart uploads left
/// behind under its prefix are aborted in the background.
#[cfg(feature = "s3")]
fn open_bucket(s3: &crate::storage::S3Config) -> Result<Arc<dyn Storage>, ConfigError> {
    match crate::storage::S3Storage::connect(s3) {
        Ok(storage) => {
            if let Some(age) = s3.abort_uploads_after {
                storage.abort_stale_uploads_in_background(age);
            }
            Ok(Arc::new(storage))
        }
        Err(e) => Err(ConfigError::Storage(format!(
            "s3://{}/{}: {e}",
            s3.bucket, s3.prefix
        ))),
    }
}

/// Without the `s3` feature the command line already refused a bucket.
#[cfg(not(feature = "s3"))]
fn open_bucket(s3: &crate::storage::S3Config) -> Result<Arc<dyn Storage>, ConfigError> {
    Err(ConfigError::Storage(format!(
        "s3://{}: S3 storage is not compiled into this build",
        s3.bucket
    )))
}

/// The address with an IPv4-mapped IPv6 address turned into IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The host's side of one session: the storage it sees (the root, or the
/// user's home after login) and what the logs need.
#[derive(Debug)]
pub struct SessionHost {
    /// The session's number in the logs.
    id: u64,
    server: Arc<Server>,
    storage: Arc<dyn Storage>,
    peer: SocketAddr,
    /// The control connection's local address (active connections leave
    /// from it).
    local: SocketAddr,
    transfer: Option<StdInstant>,
    /// This session's TLS configuration, when the server has a certificate.
    tls: Option<SessionTls>,
    /// Why the last password check failed, for the metrics of the
    /// engine's `LoginFailed` event that follows it.
    login_failure: Option<LoginResult>,
    /// The logged-in account's limits (the server's defaults before a
    /// login, and for anonymous and system accounts).
    policy: Arc<UserPolicy>,
    /// The logged-in name, for the hooks.
    user: Option<String>,
    /// Whether a login was reported (and its logout is still due).
    logged_in: bool,
    /// The logged-in account's quota and usage, when it has one.
    quota: Option<Arc<Quota>>,
    /// The digest being computed (`HASH`) and the flag that stops it.
    hashing: Option<(IntentId, Arc<AtomicBool>)>,
}

impl Drop for SessionHost {
    fn drop(&mut self) {
        if let Some((_, cancel)) = self.hashing.take() {
            cancel.store(true, Ordering::Relaxed);
        }
        self.server.metrics.session_ended();
        self.fire_logout();
    }
}

/// Blocking work for one intent; `Send`, so it can run on any thread.
#[derive(Debug)]
pub struct Job {
    id: IntentId,
    kind: JobKind,
    /// A `pre-` hook to ask before the work.
    pre: Option<Box<PreHook>>,
    /// The facts of the hook to fire once the work is done.
    post: Option<Box<Facts>>,
}

/// A `pre-upload` or `pre-delete` hook to run before a job's work.
#[derive(Debug)]
struct PreHook {
    hooks: Arc<Hooks>,
    facts: Facts,
}

/// Which lane of the worker pool a job waits in ([`crate::workers`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// File operations: any worker.
    Plain,
    /// Password checks (and `--auth-program`): a bounded number at once.
    Check,
    /// Work that may take long: behind a `pre-` hook (up to
    /// `--hook-timeout`), or a digest (`HASH`): never every worker.
    Slow,
}

#[derive(Debug)]
enum JobKind {
    Authenticate {
        server: Arc<Server>,
        user: String,
        password: Secret,
        peer: IpAddr,
    },
    ConfirmAnonymous {
        server: Arc<Server>,
    },
    File {
        storage: Arc<dyn Storage>,
        // Boxed: an intent is the largest thing a job would hold otherwise.
        intent: Box<Intent>,
        quota: Option<Arc<Quota>>,
    },
    Hash {
        storage: Arc<dyn Storage>,
        path: VirtualPath,
        algorithm: ftp_proto::HashAlgorithm,
        start: u64,
        end: u64,
        cancel: Arc<AtomicBool>,
    },
    OpenTransfer {
        storage: Arc<dyn Storage>,
        quota: Option<Arc<Quota>>,
        // Boxed, as `File`'s intent is.
        op: Box<TransferOp>,
        ascii: bool,
        now: ftp_proto::UnixTime,
    },
}

/// The result of a [`Job`], to give back to [`SessionHost::finish`].
#[derive(Debug)]
pub struct JobDone {
    id: IntentId,
    result: JobResult,
    /// How a password check ended.
    login: Option<LoginResult>,
    /// The facts of the hook to fire, with the status still to fill in.
    post: Option<Box<Facts>>,
}

#[derive(Debug)]
enum JobResult {
    Completion(Completion),
    LoggedIn {
        grant: Grant,
        home: Option<Arc<dyn Storage>>,
        policy: Arc<UserPolicy>,
        quota: Option<Arc<Quota>>,
    },
    Opened(Result<(TransferEnd, Option<u64>, Option<String>), FsError>),
}

/// The file side of a transfer, opened and ready for data.
#[derive(Debug)]
pub enum TransferEnd {
    /// Data to send (RETR, LIST, NLST, MLSD).
    Send(Source),
    /// Data to receive (STOR, APPE, STOU).
    Receive(Sink),
}

/// What a runtime does for one intent ([`SessionHost::route`]). Match it
/// exhaustively: a new kind of work is then a compile error in every
/// runtime, not a log line.
#[derive(Debug)]
pub enum Action {
    /// Blocking work: try [`Job::try_now`], else run it on the worker
    /// pool; hand the [`JobDone`] to [`SessionHost::finish`].
    Job(Job),
    /// A transfer: `job` opens its file (as for [`Action::Job`]), and the
    /// data connection comes from `data`, with TLS on it if `tls`.
    Transfer {
        /// Opens the file side.
        job: Job,
        /// Where the data connection comes from.
        data: DataEndpoint,
        /// `PROT P`: TLS on the data connection ([`SessionHost::data_tls`]).
        tls: bool,
        /// The transfer's bandwidth limit ([`SessionHost::transfer_rate`]):
        /// move at most its allowance, then wait for its `ready_at`.
        /// `None`: unlimited.
        rate: Option<RateLimit>,
    },
    /// Bind a passive listener that takes connections from `peer` only;
    /// answer with [`Completion::PassiveReady`].
    OpenPassive {
        /// The only address a data connection may come from.
        peer: IpAddr,
    },
    /// Close this passive listener if it is still open. No answer.
    ClosePassive {
        /// The id of its `OpenPassive`.
        listener: IntentId,
    },
    /// Stop this transfer if it still runs; it answers with its last
    /// event. No answer of its own.
    AbortTransfer {
        /// The id of the transfer.
        transfer: IntentId,
    },
    /// Nothing for the runtime to do (the host did it: a cancelled
    /// digest stops by itself).
    Nothing,
    /// Once every reply before it is written (and the socket not read
    /// meanwhile), switch the control connection with
    /// [`SessionHost::switch_tls`] and hand the engine its answer.
    SwitchTls(TlsSwitch),
}

/// Which way [`Action::SwitchTls`] switches the control connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsSwitch {
    /// To TLS (`AUTH TLS`).
    Protect,
    /// Back to clear (`CCC`).
    Clear,
}

/// What [`SessionHost::finish`] yields.
#[derive(Debug)]
pub enum JobAnswer {
    /// Hand this completion to the engine.
    Completion(IntentId, Completion),
    /// The file side of a transfer is open: report `ready` to the engine,
    /// then get the data connection and move the data.
    TransferOpened {
        /// The transfer's intent id.
        id: IntentId,
        /// The `Ready` completion for the engine.
        ready: Completion,
        /// The source or sink.
        end: TransferEnd,
    },
}

impl Job {
    /// The intent this job answers.
    pub fn id(&self) -> IntentId {
        self.id
    }

    /// Whether this job checks a password (a login with the users file or
    /// a system account): slow and memory-hungry on purpose, so the worker
    /// pool runs only a bounded number at once. Anonymous logins check
    /// none.
    pub fn is_password_check(&self) -> bool {
        match &self.kind {
            JobKind::Authenticate { .. } => true,
            JobKind::ConfirmAnonymous { .. }
            | JobKind::Hash { .. }
            | JobKind::File { .. }
            | JobKind::OpenTransfer { .. } => false,
        }
    }

    /// The worker pool's lane for this job: password checks, and work
    /// behind a `pre-` hook or a digest, have bounded lanes of their own.
    pub fn lane(&self) -> Lane {
        if self.is_password_check() {
            Lane::Check
        } else if self.pre.is_some() || matches!(self.kind, JobKind::Hash { .. }) {
            Lane::Slow
        } else {
            Lane::Plain
        }
    }

    /// Does the work now if it cannot block (a download whose file the
    /// kernel can open from its caches); otherwise gives the job back, for
    /// the worker pool.
    pub fn try_now(self) -> Result<JobDone, Job> {
        let JobKind::OpenTransfer {
            storage, op, ascii, ..
        } = &self.kind
        else {
            return Err(self);
        };
        if self.pre.is_some() {
            return Err(self);
        }
        match open_source_cached(storage.as_ref(), op, *ascii) {
            Some(opened) => Ok(JobDone {
                id: self.id,
                result: JobResult::Opened(
                    opened.map(|(source, size)| (TransferEnd::Send(source), size, None)),
                ),
                login: None,
                post: None,
            }),
            None => Err(self),
        }
    }

    /// Does the blocking work (after asking its `pre-` hook, if any).
    pub fn run(self) -> JobDone {
        if let Some(pre) = &self.pre {
            if !pre.hooks.allows(&pre.facts) {
                // Refused: nothing is done; 550.
                let refused = FsError::PermissionDenied;
                let result = match self.kind {
                    JobKind::OpenTransfer { .. } => JobResult::Opened(Err(refused)),
                    _ => JobResult::Completion(Completion::Done(Err(refused))),
                };
                return JobDone {
                    id: self.id,
                    result,
                    login: None,
                    post: self.post,
                };
            }
        }
        let mut login = None;
        let result = match self.kind {
            JobKind::Authenticate {
                server,
                user,
                password,
                peer,
            } => {
                let (result, how) = authenticate(&server, &user, password.expose(), peer);
                login = Some(how);
                result
            }
            JobKind::ConfirmAnonymous { server } => confirm_anonymous(&server),
            JobKind::Hash {
                storage,
                path,
                algorithm,
                start,
                end,
                cancel,
            } => JobResult::Completion(Completion::Hash(crate::digest::digest(
                storage.as_ref(),
                &path,
                algorithm,
                start,
                end,
                &cancel,
            ))),
            JobKind::File {
                storage,
                intent,
                quota,
            } => JobResult::Completion(
                match &quota {
                    Some(quota) => crate::quota::execute(storage.as_ref(), &intent, quota),
                    None => exec::execute(storage.as_ref(), &intent),
                }
                .unwrap_or(Completion::Done(Err(FsError::Other))),
            ),
            JobKind::OpenTransfer {
                storage,
                quota,
                op,
                ascii,
                now,
            } => JobResult::Opened(match op.as_ref() {
                TransferOp::Store {
                    path,
                    mode,
                    size,
                    umask,
                } => open_sink_with_quota(
                    storage.as_ref(),
                    path,
                    *mode,
                    ascii,
                    Some(*umask),
                    quota.as_deref(),
                    *size,
                )
                .map(|(sink, name)| (TransferEnd::Receive(sink), None, name)),
                _ => open_source(storage.as_ref(), &op, ascii, now)
                    .map(|(source, size)| (TransferEnd::Send(source), size, None)),
            }),
        };
        JobDone {
            id: self.id,
            result,
            login,
            post: self.post,
        }
    }
}

/// Confirms an anonymous login by taking the identity anonymous sessions
/// act with (see `ServerConfig::enable_login_identity`).
fn confirm_anonymous(server: &Server) -> JobResult {
    let refused = |e| JobResult::Completion(Completion::Anonymous(Err(e)));
    let Some(account) = &server.config.anonymous_account else {
        return refused(AuthError::Denied);
    };
    match server.take_identity(&Identity::of(account), "anonymous") {
        Ok(()) => JobResult::Completion(Completion::Anonymous(Ok(()))),
        Err(e) => refused(e),
    }
}

/// Checks a login: what the engine gets, and how it ended for the
/// metrics (which the engine, by design, is not told).
fn authenticate(
    server: &Server,
    user: &str,
    password: &str,
    peer: IpAddr,
) -> (JobResult, LoginResult) {
    let denied = |e, how| (JobResult::Completion(Completion::Auth(Err(e))), how);
    let accounts = server.accounts();
    if let Some(pam) = &accounts.pam {
        return pam_login(server, pam, user, password, peer);
    }
    if let Some(system) = &accounts.system_users {
        return match system.check(user, password) {
            Ok(account) => system_login(server, &account, user),
            Err(Ok(refusal)) => {
                log::info!("system login as {user:?} refused: {refusal}");
                let how = match refusal {
                    Refusal::Unknown => LoginResult::UnknownUser,
                    Refusal::WrongPassword => LoginResult::BadPassword,
                    _ => LoginResult::Refused,
                };
                denied(AuthError::Denied, how)
            }
            Err(Err(e)) => denied(e, LoginResult::Refused),
        };
    }
    let users = accounts.users.as_ref().filter(|u| u.contains(user));
    let users = match (users, &server.config.auth_program) {
        (Some(users), _) => users,
        (None, Some(program)) => return ask_program(server, program, user, password, peer),
        (None, None) => match &accounts.users {
            // An unknown name: checked against a dummy hash all the same.
            Some(users) => users,
            None => return denied(AuthError::Denied, LoginResult::Refused),
        },
    };
    match users.verify(user, password) {
        Ok(grant) => {
            let home = match &grant.home {
                None => None,
                Some(home) => {
                    let virtual_home = VirtualPath::root().resolve(&home.to_string_lossy());
                    match virtual_home.map(|h| server.storage.subtree(&h)) {
                        Some(Ok(storage)) => Some(storage),
                        _ => return denied(AuthError::Unavailable, LoginResult::Refused),
                    }
                }
            };
            if !grant.policy.admits(peer) {
                log::info!("login as {user:?} refused: not allowed from {peer}");
                return denied(AuthError::Denied, LoginResult::Refused);
            }
            let policy = grant.policy.clone();
            let quota = server.quota_for(user, &policy, home.as_ref());
            let grant = grant.to_grant();
            (
                JobResult::LoggedIn {
                    grant,
                    home,
                    policy,
                    quota,
                },
                LoginResult::Ok,
            )
        }
        Err(AuthError::Denied) if users.contains(user) => {
            denied(AuthError::Denied, LoginResult::BadPassword)
        }
        Err(AuthError::Denied) => denied(AuthError::Denied, LoginResult::UnknownUser),
        Err(e) => denied(e, LoginResult::Refused),
    }
}

/// A system account's login (`--system-users`, `--pam`), its password
/// checked: the session acts as the account where logins change the
/// process's identity.
fn system_login(server: &Server, account: &Account, user: &str) -> (JobResult, LoginResult) {
    if server.config.login_identity {
        if let Err(e) = server.take_identity(&Identity::of(account), user) {
            return (
                JobResult::Completion(Completion::Auth(Err(e))),
                LoginResult::Refused,
            );
        }
    }
    // As BusyBox: -w lets every user write, the kernel decides where; the
    // served folder is everyone's /.
    let grant = Grant {
        write: server.config.engine.anonymous_write,
    };
    let policy = server.default_policy.clone();
    (
        JobResult::LoggedIn {
            grant,
            home: None,
            policy,
            quota: None,
        },
        LoginResult::Ok,
    )
}

/// Asks the `--auth-program` about a login; a program that fails in any
/// way refuses it (and the log says why).
fn ask_program(
    server: &Server,
    program: &crate::program::Program,
    user: &str,
    password: &str,
    peer: IpAddr,
) -> (JobResult, LoginResult) {
    let denied = |how| {
        (
            JobResult::Completion(Completion::Auth(Err(AuthError::Denied))),
            how,
        )
    };
    let timeout = server.config.auth_timeout;
    let allowed = match auth_program::ask(program, timeout, user, password, peer) {
        Ok(auth_program::Verdict::Allowed(allowed)) => allowed,
        Ok(auth_program::Verdict::Refused) => {
            log::info!("login as {user:?} refused by the auth program");
            return denied(LoginResult::BadPassword);
        }
        Err(e) => {
            log::warn!("login as {user:?} refused: auth program ({program}): {e}");
            return denied(LoginResult::Refused);
        }
    };
    let home = match &allowed.home {
        None => None,
        Some(home) => {
            let virtual_home = VirtualPath::root().resolve(&home.to_string_lossy());
            match virtual_home.map(|h| server.storage.subtree(&h)) {
                Some(Ok(storage)) => Some(storage),
                _ => {
                    log::warn!(
                        "login as {user:?} refused: the auth program's home {} is not a folder of the served root",
                        home.display()
                    );
                    return denied(LoginResult::Refused);
                }
            }
        }
    };
    if !allowed.policy.admits(peer) {
        log::info!("login as {user:?} refused: not allowed from {peer}");
        return denied(LoginResult::Refused);
    }
    let policy = Arc::new(allowed.policy);
    let quota = server.quota_for(user, &policy, home.as_ref());
    (
        JobResult::LoggedIn {
            grant: Grant {
                write: allowed.write,
            },
            home,
            policy,
            quota,
        },
        LoginResult::Ok,
    )
}

/// A login checked by PAM (`--pam`): the ftpusers file's names first, then
/// the PAM stack; the account then logs in as a system account does.
#[cfg(feature = "pam")]
fn pam_login(
    server: &Server,
    pam: &PamSettings,
    user: &str,
    password: &str,
    peer: IpAddr,
) -> (JobResult, LoginResult) {
    let denied = |e, how| (JobResult::Completion(Completion::Auth(Err(e))), how);
    if server.config.chroot_at_login && server.has_assumed_identity() {
        // After the chroot, PAM would read its configuration and modules
        // from the served folder: never.
        log::warn!("login as {user:?} after a login: PAM cannot run after the chroot; reconnect");
        return denied(AuthError::Unavailable, LoginResult::Refused);
    }
    if pam.refused.contains(user) {
        log::info!("PAM login as {user:?} refused: listed in the ftpusers file");
        return denied(AuthError::Denied, LoginResult::Refused);
    }
    match crate::pam::check(&pam.service, user, password, peer) {
        Ok(account) => {
            if account.name != user && pam.refused.contains(&account.name) {
                log::info!(
                    "PAM login as {user:?} refused: PAM mapped it to {:?}, listed in the ftpusers file",
                    account.name
                );
                return denied(AuthError::Denied, LoginResult::Refused);
            }
            system_login(server, &account, user)
        }
        Err(e) if e.is_failure() => {
            log::error!("PAM login as {user:?}: {e}");
            denied(AuthError::Unavailable, LoginResult::Refused)
        }
        Err(e) => {
            log::info!("PAM login as {user:?} refused: {e}");
            let how = if e.is_unknown_user() {
                LoginResult::UnknownUser
            } else if e.is_wrong_password() {
                LoginResult::BadPassword
            } else {
                LoginResult::Refused
            };
            denied(AuthError::Denied, how)
        }
    }
}

/// Without the `pam` feature the command line already refused `--pam`.
#[cfg(not(feature = "pam"))]
fn pam_login(
    _server: &Server,
    pam: &PamSettings,
    user: &str,
    _password: &str,
    _peer: IpAddr,
) -> (JobResult, LoginResult) {
    log::error!(
        "login as {user:?}: PAM service {:?} asked for, but PAM is not compiled into this build",
        pam.service
    );
    (
        JobResult::Completion(Completion::Auth(Err(AuthError::Unavailable))),
        LoginResult::Refused,
    )
}

impl Server {
    /// The quota of `user` logging in with `policy` (home: `home`, or the
    /// root): its usage is counted from the first login on (see
    /// [`crate::quota`]); `None` without any storage limit. Blocking the
    /// first time if no thread can be started: call it off the loops.
    fn quota_for(
        &self,
        user: &str,
        policy: &Arc<UserPolicy>,
        home: Option<&Arc<dyn Storage>>,
    ) -> Option<Arc<Quota>> {
        let usage = if policy.has_quota() {
            self.usages.of(user, home.unwrap_or(&self.storage))
        } else if policy.max_file_size.is_some() {
            Arc::new(Usage::untracked())
        } else {
            return None;
        };
        Some(Arc::new(Quota {
            policy: policy.clone(),
            usage,
        }))
    }

    /// Changes the whole process to `identity` after a login (see
    /// [`ServerConfig::login_identity`]). Once changed, the process stays
    /// that identity: a later login (after `REIN`) as the same identity is
    /// fine, any other is refused as unavailable, which closes the session.
    fn take_identity(&self, identity: &Identity, user: &str) -> Result<(), AuthError> {
        let mut assumed = self.assumed.lock().unwrap_or_else(PoisonError::into_inner);
        match &*assumed {
            Some(current) if current == identity => Ok(()),
            Some(current) => {
                log::warn!(
                    "login as {user}: this session already acts as uid {}; a different user needs a new connection",
                    current.uid
                );
                Err(AuthError::Unavailable)
            }
            None => match self.chroot_at_login().and_then(|()| identity.assume()) {
                Ok(()) => {
                    log::debug!(
                        "acting as uid {} gid {} groups {:?} for {user}",
                        identity.uid,
                        identity.gid,
                        identity.groups
                    );
                    *assumed = Some(identity.clone());
                    Ok(())
                }
                Err(e) => {
                    log::error!("login as {user}: {e}");
                    Err(AuthError::Unavailable)
                }
            },
        }
    }
}

impl Server {
    /// Whether a login changed the process's identity already.
    #[cfg_attr(not(feature = "pam"), allow(dead_code))]
    fn has_assumed_identity(&self) -> bool {
        self.assumed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The `--inetd` chroot that waited for the first login
    /// ([`ServerConfig::chroot_at_login`]), done now, while still root.
    fn chroot_at_login(&self) -> Result<(), crate::identity::IdentityError> {
        if !self.config.chroot_at_login {
            return Ok(());
        }
        crate::identity::chroot(&self.config.root)?;
        log::debug!("chrooted to {}", self.config.root.display());
        Ok(())
    }
}

impl SessionHost {
    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Where this session's active data connections leave from, for
    /// [`crate::active::connect`].
    pub fn active_from(&self) -> ActiveFrom {
        ActiveFrom {
            ip: self.local.ip(),
            port_20: self.server.config.active_port_20,
        }
    }

    /// The server this session belongs to.
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// The logged-in account's limits and filters (the server's defaults
    /// before a login).
    pub fn policy(&self) -> &Arc<UserPolicy> {
        &self.policy
    }

    /// The bandwidth limit of a transfer that starts `now` (`incoming`: an
    /// upload; downloads and listings are outgoing): the account's
    /// `download_rate` or `upload_rate`, else the server's default
    /// (`--download-rate`, `--upload-rate`); `None` when unlimited. Each
    /// transfer has a bucket of its own. The one place a transfer's rate
    /// is decided, for both runtimes.
    pub fn transfer_rate(&self, incoming: bool, now: StdInstant) -> Option<RateLimit> {
        let config = &self.server.config;
        let rate = if incoming {
            self.policy.upload_rate_or(config.upload_rate)
        } else {
            self.policy.download_rate_or(config.download_rate)
        };
        RateLimit::new(rate, now)
    }

    /// A TLS connection for the control connection, after `AUTH TLS`.
    pub fn control_tls(&self) -> Result<TlsConn, TlsError> {
        self.tls.as_ref().ok_or(TlsError::NotConfigured)?.control()
    }

    /// Implicit FTPS: the control stream, TLS from its first byte, and the
    /// engine told the connection is protected. Call before writing the
    /// greeting.
    pub fn implicit_tls(&self, session: &mut Session) -> Result<ControlStream, TlsError> {
        let conn = self.control_tls()?;
        session.mark_protected();
        Ok(ControlStream::tls(conn))
    }

    /// A TLS connection for a data connection (`PROT P`): it must resume
    /// this session's TLS session unless reuse was made optional.
    pub fn data_tls(&self) -> Result<TlsConn, TlsError> {
        self.tls.as_ref().ok_or(TlsError::NotConfigured)?.data()
    }

    /// What the runtime does for `intent`: the one place intents are
    /// routed, for both runtimes. Blocking work (authentication, file
    /// operations, opening a transfer's file) becomes a [`Job`]; the rest
    /// is the runtime's own socket work.
    pub fn route(&mut self, id: IntentId, intent: Intent) -> Action {
        let kind = match intent {
            Intent::Authenticate { user, password } => JobKind::Authenticate {
                server: self.server.clone(),
                user,
                password,
                peer: self.peer.ip(),
            },
            Intent::ConfirmAnonymous { .. } => JobKind::ConfirmAnonymous {
                server: self.server.clone(),
            },
            Intent::Transfer(t) => {
                let now = StdInstant::now();
                self.transfer = Some(now);
                let incoming = matches!(t.op, TransferOp::Store { .. });
                let rate = self.transfer_rate(incoming, now);
                let pre = match &t.op {
                    TransferOp::Store { path, .. } => self.pre_hook(HookEvent::PreUpload, path),
                    _ => None,
                };
                let job = Job {
                    id,
                    kind: JobKind::OpenTransfer {
                        storage: self.storage.clone(),
                        quota: self.quota.clone(),
                        op: Box::new(t.op),
                        ascii: t.ascii,
                        now: self.server.clock.wall(),
                    },
                    pre,
                    post: None,
                };
                return Action::Transfer {
                    job,
                    data: t.data,
                    tls: t.tls,
                    rate,
                };
            }
            intent @ (Intent::Stat { .. }
            | Intent::ReadDir { .. }
            | Intent::MakeDir { .. }
            | Intent::RemoveDir { .. }
            | Intent::RemoveFile { .. }
            | Intent::Rename { .. }
            | Intent::SetPermissions { .. }
            | Intent::SetModified { .. }
            | Intent::Available { .. }) => {
                let (pre, post) = self.file_hooks(&intent);
                let kind = JobKind::File {
                    storage: self.storage.clone(),
                    intent: Box::new(intent),
                    quota: self.quota.clone(),
                };
                return Action::Job(Job {
                    id,
                    kind,
                    pre,
                    post,
                });
            }
            Intent::Hash {
                path,
                algorithm,
                start,
                end,
            } => {
                let cancel = Arc::new(AtomicBool::new(false));
                if let Some((_, previous)) = self.hashing.replace((id, cancel.clone())) {
                    previous.store(true, Ordering::Relaxed);
                }
                JobKind::Hash {
                    storage: self.storage.clone(),
                    path,
                    algorithm,
                    start,
                    end,
                    cancel,
                }
            }
            Intent::CancelHash { hash } => {
                if let Some((id, cancel)) = self.hashing.take_if(|(id, _)| *id == hash) {
                    log::debug!("{}: digest {id:?} cancelled", self.peer);
                    cancel.store(true, Ordering::Relaxed);
                }
                return Action::Nothing;
            }
            Intent::OpenPassive { peer } => return Action::OpenPassive { peer },
            Intent::ClosePassive { listener } => return Action::ClosePassive { listener },
            Intent::AbortTransfer { transfer } => return Action::AbortTransfer { transfer },
            Intent::UpgradeTls => return Action::SwitchTls(TlsSwitch::Protect),
            Intent::ClearTls => return Action::SwitchTls(TlsSwitch::Clear),
        };
        Action::Job(Job {
            id,
            kind,
            pre: None,
            post: None,
        })
    }

    /// The facts of a hook on `event` in this session, if it has one.
    fn facts(&self, event: HookEvent) -> Option<Facts> {
        let hooks = self.server.hooks.as_ref()?;
        hooks.has(event).then(|| {
            Facts::new(
                event,
                self.id,
                self.user.as_deref().unwrap_or(""),
                self.peer.ip(),
            )
        })
    }

    /// The `pre-` hook on `event` for `path`, if there is one.
    fn pre_hook(&self, event: HookEvent, path: &VirtualPath) -> Option<Box<PreHook>> {
        let mut facts = self.facts(event)?;
        facts.path = Some(path.to_string());
        Some(Box::new(PreHook {
            hooks: self.server.hooks.clone()?,
            facts,
        }))
    }

    /// The hooks of a file operation: the one asked before it, the one
    /// fired after it.
    fn file_hooks(&self, intent: &Intent) -> (Option<Box<PreHook>>, Option<Box<Facts>>) {
        let (event, path, target) = match intent {
            Intent::RemoveFile { path } => (HookEvent::Delete, path, None),
            Intent::RemoveDir { path } => (HookEvent::Rmdir, path, None),
            Intent::MakeDir { path, .. } => (HookEvent::Mkdir, path, None),
            Intent::Rename { from, to } => (HookEvent::Rename, from, Some(to)),
            _ => return (None, None),
        };
        let pre = match intent {
            Intent::RemoveFile { path } => self.pre_hook(HookEvent::PreDelete, path),
            _ => None,
        };
        let post = self.facts(event).map(|mut f| {
            f.path = Some(path.to_string());
            f.target = target.map(VirtualPath::to_string);
            Box::new(f)
        });
        (pre, post)
    }

    /// Fires the hook of an after-the-fact event, if it has one.
    fn fire(&self, facts: Option<Facts>) {
        if let (Some(hooks), Some(facts)) = (&self.server.hooks, facts) {
            hooks.fire(facts);
        }
    }

    /// Fires the `logout` hook for the login reported last, once.
    fn fire_logout(&mut self) {
        if std::mem::take(&mut self.logged_in) {
            self.fire(self.facts(HookEvent::Logout));
        }
    }

    /// Switches the control connection's `stream` to TLS or back to clear
    /// (call once every reply before the switch is written), and returns
    /// the engine's answer to the intent that asked for it.
    pub fn switch_tls(&self, stream: &mut ControlStream, to: TlsSwitch) -> Completion {
        let done = match to {
            TlsSwitch::Clear => {
                stream.start_clear();
                Ok(())
            }
            TlsSwitch::Protect => match self.control_tls() {
                Ok(conn) => {
                    stream.start_tls(conn);
                    Ok(())
                }
                Err(e) => {
                    log::warn!("{}: AUTH TLS: {e}", self.peer);
                    Err(TlsSwitchError::Unavailable)
                }
            },
        };
        Completion::Tls(done)
    }

    /// Takes a finished job back: switches to the user's home after a
    /// login and turns the result into what the engine needs.
    pub fn finish(&mut self, done: JobDone) -> JobAnswer {
        let id = done.id;
        if self.hashing.as_ref().is_some_and(|(h, _)| *h == id) {
            self.hashing = None;
        }
        if let Some(how) = done.login.filter(|l| *l != LoginResult::Ok) {
            self.login_failure = Some(how);
        }
        let metrics = &self.server.metrics;
        match &done.result {
            JobResult::Opened(Err(e))
            | JobResult::Completion(
                Completion::Done(Err(e))
                | Completion::Stat(Err(e))
                | Completion::Entries(Err(e), _),
            ) => metrics.storage_error(*e),
            _ => {}
        }
        if let Some(mut facts) = done.post {
            let ok = matches!(done.result, JobResult::Completion(Completion::Done(Ok(()))));
            facts.status = Some(Status::of(ok));
            self.fire(Some(*facts));
        }
        match done.result {
            JobResult::Completion(c) => JobAnswer::Completion(id, c),
            JobResult::LoggedIn {
                grant,
                home,
                policy,
                quota,
            } => {
                if let Some(home) = home {
                    self.storage = home;
                }
                self.policy = policy;
                self.quota = quota;
                JobAnswer::Completion(id, Completion::Auth(Ok(grant)))
            }
            JobResult::Opened(Err(e)) => JobAnswer::Completion(
                id,
                Completion::Transfer(TransferEvent::Failed(ftp_proto::TransferError::Fs(e))),
            ),
            JobResult::Opened(Ok((end, size, name))) => JobAnswer::TransferOpened {
                id,
                ready: Completion::Transfer(TransferEvent::Ready { size, name }),
                end,
            },
        }
    }

    /// Drains the engine's events into the log and the transfer log.
    pub fn log_events(&mut self, session: &mut Session) {
        let id = self.id;
        while let Some(event) = session.poll_event() {
            let peer = self.peer.ip();
            let user = session.user().unwrap_or("-");
            match event {
                Event::Command(line) => {
                    self.server.metrics.command(&line);
                    log::info!(
                        session = id, peer:% = peer, user = user, command = line.as_str();
                        "{peer} {user}: {line}"
                    );
                }
                Event::Reply(code, text) => {
                    self.server.metrics.reply(code);
                    log::debug!(
                        session = id, peer:% = peer, user = user, code = code;
                        "{peer} {user}: {code} {text}"
                    );
                }
                Event::Login { user, anonymous } => {
                    self.server.metrics.login(LoginResult::Ok);
                    self.login_failure = None;
                    // A new login after REIN ends the one before.
                    self.fire_logout();
                    self.user = Some(user.clone());
                    self.logged_in = true;
                    if let Some(mut facts) = self.facts(HookEvent::Login) {
                        facts.status = Some(Status::Ok);
                        self.fire(Some(facts));
                    }
                    let kind = if anonymous { "anonymous" } else { "user" };
                    log::info!(
                        session = id, peer:% = peer, user = user.as_str(), event = "login";
                        "{peer}: {kind} login as {user}"
                    );
                }
                Event::LoginFailed { user } => {
                    let how = self.login_failure.take().unwrap_or(LoginResult::Refused);
                    self.server.metrics.login(how);
                    log::warn!(
                        session = id, peer:% = peer, user = user.as_str(), event = "login_failed";
                        "{peer}: failed login as {user}"
                    );
                    let verdict = self
                        .server
                        .defender
                        .as_ref()
                        .map(|d| d.failed_login(peer, StdInstant::now()));
                    if let Some(Verdict::Banned(length)) = verdict {
                        log::warn!(
                            session = id, peer:% = peer, event = "banned", seconds = length.as_secs();
                            "{peer}: banned for {} s after repeated failed logins",
                            length.as_secs()
                        );
                    }
                }
                Event::WrongAnswer { expected, got } => {
                    log::error!(
                        session = id, peer:% = peer;
                        "{peer}: a {got} answer to an intent that wants {expected}"
                    );
                }
                Event::TransferRefused {
                    path,
                    incoming,
                    reason,
                } => {
                    self.transfer = None;
                    let dir = if incoming { "store" } else { "send" };
                    log::info!(
                        session = id, peer:% = peer, user = user, path:% = path,
                        event = "transfer_refused";
                        "{peer} {user}: refused to {dir} {path}: {reason}"
                    );
                }
                Event::TransferEnded {
                    path,
                    incoming,
                    bytes,
                    ascii,
                    complete,
                } => {
                    let started = self.transfer.take();
                    let took = started.map(|s| s.elapsed()).unwrap_or_default();
                    self.server
                        .metrics
                        .transfer(incoming, complete, bytes, took);
                    let event = if incoming {
                        HookEvent::Upload
                    } else {
                        HookEvent::Download
                    };
                    if let Some(mut facts) = self.facts(event) {
                        facts.path = Some(path.to_string());
                        facts.bytes = Some(bytes);
                        facts.status = Some(Status::of(complete));
                        self.fire(Some(facts));
                    }
                    let dir = if incoming { "stored" } else { "sent" };
                    let how = if complete { "" } else { " (incomplete)" };
                    log::info!(
                        session = id, peer:% = peer, user = user, path:% = path,
                        direction = if incoming { "upload" } else { "download" },
                        bytes = bytes, duration_ms = took.as_millis() as u64,
                        complete = complete;
                        "{peer} {user}: {dir} {path}, {bytes} bytes{how}"
                    );
                    if let Some(xferlog) = &self.server.xferlog {
                        let record = XferRecord {
                            now: SystemTime::now(),
                            duration: took,
                            remote: peer,
                            bytes,
                            path: path.to_string(),
                            ascii,
                            incoming,
                            anonymous: session.is_anonymous(),
                            user: user.to_string(),
                            complete,
                        };
                        if let Err(e) = xferlog.record(&record) {
                            log::warn!("xferlog: {e}");
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Invocation, parse_args};

    /// A server for `args` (the served folder is added), and its folder.
    fn server(args: &[&str]) -> (Arc<Server>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let mut all = vec!["ftpd"];
        all.extend_from_slice(args);
        all.push(dir.path().to_str().unwrap());
        let Ok(Invocation::Serve(config)) = parse_args(all) else {
            panic!("bad arguments {args:?}");
        };
        (Server::new(config).unwrap(), dir)
    }

    #[test]
    fn a_transfer_gets_the_accounts_rate_else_the_servers() {
        let (server, _dir) = server(&["--download-rate", "1000", "--upload-rate", "2000"]);
        let me = SocketAddr::from(([127, 0, 0, 1], 21));
        let (_session, mut host) = server.session(me, me);
        let now = StdInstant::now();
        let rate = |host: &SessionHost, incoming| {
            host.transfer_rate(incoming, now).map(|r| r.per_second())
        };
        // Before a login, anonymous and system accounts: the defaults.
        assert_eq!(
            (rate(&host, false), rate(&host, true)),
            (Some(1000), Some(2000))
        );
        // An account's own rate wins; 0 is unlimited; unset is the default.
        host.policy = Arc::new(UserPolicy {
            download_rate: Some(0),
            upload_rate: None,
            ..UserPolicy::default()
        });
        assert_eq!((rate(&host, false), rate(&host, true)), (None, Some(2000)));
        host.policy = Arc::new(UserPolicy {
            download_rate: Some(5),
            ..UserPolicy::default()
        });
        assert_eq!(rate(&host, false), Some(5));
        // Without the flags, nothing is limited.
        let (server, _dir) = super::tests::server(&[]);
        let (_session, host) = server.session(me, me);
        assert_eq!((rate(&host, false), rate(&host, true)), (None, None));
    }

    #[test]
    fn a_process_keeps_the_first_identity_a_login_gave_it() {
        let (server, _dir) = server(&[]);
        let me = Identity::current().unwrap();
        // Becoming who the process is changes nothing and needs no
        // privilege; after that only the same identity may log in again.
        assert_eq!(server.take_identity(&me, "a"), Ok(()));
        assert_eq!(server.take_identity(&me, "a"), Ok(()));
        let other = Identity {
            uid: me.uid.wrapping_add(1),
            ..me.clone()
        };
        assert_eq!(
            server.take_identity(&other, "b"),
            Err(AuthError::Unavailable)
        );
        assert_eq!(Identity::current().unwrap(), me);
    }

    #[test]
    fn the_auth_program_answers_for_names_the_users_file_lacks() {
        let etc = tempfile::tempdir().unwrap();
        let users = etc.path().join("users.toml");
        let hash = crate::users::hash_password("pw").unwrap();
        std::fs::write(
            &users,
            format!("[[user]]\nname = \"alice\"\npassword = \"{hash}\"\n"),
        )
        .unwrap();
        // Allows anyone whose password is "pw", with write.
        let auth = etc.path().join("auth");
        std::fs::write(
            &auth,
            "read p\n[ \"$p\" = pw ] && echo '{\"ok\": true, \"write\": true}' || echo '{\"ok\": false}'\n",
        )
        .unwrap();
        let program = format!("/bin/sh {}", auth.to_str().unwrap());
        let (server, _dir) = server(&[
            "--users",
            users.to_str().unwrap(),
            "--auth-program",
            &program,
        ]);
        let me = IpAddr::from([127, 0, 0, 1]);
        let grant = |user, pw| match authenticate(&server, user, pw, me) {
            (JobResult::LoggedIn { grant, .. }, LoginResult::Ok) => Some(grant.write),
            (JobResult::Completion(Completion::Auth(Err(AuthError::Denied))), _) => None,
            other => panic!("{other:?}"),
        };
        // The users file's own accounts never reach the program.
        assert_eq!(grant("alice", "pw"), Some(false));
        assert_eq!(grant("alice", "nope"), None);
        assert_eq!(grant("bob", "pw"), Some(true));
        assert_eq!(grant("bob", "nope"), None);
    }

    #[test]
    fn system_accounts_log_in_with_write_from_w() {
        let etc = tempfile::tempdir().unwrap();
        let p = |n: &str| etc.path().join(n).to_str().unwrap().to_string();
        // md5-crypt of "hunter2", from tests/data/crypt-vectors.txt.
        std::fs::write(p("passwd"), "alice:x:4242:4242::/:/bin/sh\n").unwrap();
        std::fs::write(
            p("shadow"),
            "alice:$1$c5eB66kt$nr9i3dra9jmv7nxu0EEBG.:1::::::\n",
        )
        .unwrap();
        let files = [
            "--passwd-file",
            &p("passwd"),
            "--shadow-file",
            &p("shadow"),
            "--group-file",
            &p("group"),
        ];
        for write in [false, true] {
            let mut args = vec!["--system-users"];
            args.extend_from_slice(&files);
            if write {
                args.push("-w");
            }
            let (server, _dir) = server(&args);
            let me = IpAddr::from([127, 0, 0, 1]);
            match authenticate(&server, "alice", "hunter2", me) {
                (
                    JobResult::LoggedIn {
                        grant, home: None, ..
                    },
                    LoginResult::Ok,
                ) => {
                    assert_eq!(grant.write, write)
                }
                other => panic!("{other:?}"),
            }
            assert!(matches!(
                authenticate(&server, "alice", "hunter3", me),
                (
                    JobResult::Completion(Completion::Auth(Err(AuthError::Denied))),
                    LoginResult::BadPassword
                )
            ));
            // Without the engine's hook, "anonymous" is just a name.
            assert!(matches!(
                authenticate(&server, "anonymous", "x", me),
                (
                    JobResult::Completion(Completion::Auth(Err(AuthError::Denied))),
                    LoginResult::UnknownUser
                )
            ));
        }
    }
}
