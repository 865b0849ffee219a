//! The command line both daemons share, merged with the configuration
//! file into a [`ServerConfig`].
//!
//! ```text
//! PROG [OPTIONS] [DIR]
//! PROG hash-password
//! ```
//!
//! The short options mean what they mean to BusyBox `ftpd` (`-w`, `-A`,
//! `-a USER`, `-t SEC`, `-T SEC`, `-v`, `-S`), so switching is a matter of
//! changing the program name. Values from `--config FILE` come first;
//! flags on the command line replace them.
//!
//! Who may log in:
//! - `-A`: nobody logs in; every session starts logged in (anonymous
//!   rights, writable with `-w`). Cannot be combined with a users file.
//! - `--inetd` without a users file, or `--system-users`: the system's
//!   accounts (`/etc/passwd`, `/etc/shadow`, minus `/etc/ftpusers`), as
//!   BusyBox `ftpd` does; writable with `-w`; anonymous login only with
//!   `-a USER`. See [`crate::system`].
//! - otherwise without a users file: anonymous login (`anonymous` /
//!   `ftp`, any password), read-only unless `-w`.
//! - a users file: its accounts, plus anonymous login only with `-a USER`.
//! - `--pam [SERVICE]` (cargo feature `pam`): the system's accounts as the
//!   PAM stack decides (see `crate::pam`), minus the ftpusers file's
//!   names; writable with `-w`; anonymous login only with `-a USER`. In
//!   place of `--system-users` and the users file, not beside them.
//!
//! A folder literally named `hash-password` is served with
//! `PROG ./hash-password`.

use std::ffi::OsString;
use std::io::{self, BufRead, IsTerminal, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{ArgAction, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::ban::{BanPolicy, MAX_BAN_AFTER};
pub use crate::config::ConfigError;
use crate::config::{FileConfig, StorageFile, parse_listen, parse_port_range};
use crate::hooks::{HookConfig, HookEvent};
use crate::identity::RunAs;
use crate::limits::{self, DEFAULT_MAX_PER_IP, TOO_MANY_FROM_ADDRESS};
use crate::pasv_address::PasvAddress;
use crate::program::{Program, ProgramError};
use crate::proxy::{Network, ProxySources};
use crate::storage::{S3Config, S3Location};
use crate::system::{self, Account, SystemFiles, SystemUsers};
use crate::users::UserDb;

/// Address listened on when none is configured.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 2121));
/// Default `-t`: idle timeout in seconds.
pub const DEFAULT_IDLE_TIMEOUT: u64 = 120;
/// Default `-T`: absolute session timeout in seconds.
pub const DEFAULT_SESSION_TIMEOUT: u64 = 3600;
/// Default `--login-timeout`: seconds from the greeting to a successful
/// login.
pub const DEFAULT_LOGIN_TIMEOUT: u64 = 60;
/// Default `--shutdown-grace`, in seconds.
pub const DEFAULT_SHUTDOWN_GRACE: u64 = 10;
/// Text of the `220` greeting.
pub const GREETING: &str = "Service ready.";

/// What the command line asks for.
// Made once per process: the size of the configuration does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Invocation {
    /// Run the server.
    Serve(ServerConfig),
    /// `PROG hash-password`: read a password from standard input and print
    /// its hash (see [`hash_password_from_stdin`]).
    HashPassword,
}

/// Everything a daemon needs to run, checked and with defaults filled in.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The served folder (`DIR`, default the current directory),
    /// canonicalised: absolute, without symlinks. Known to be a readable
    /// directory at parse time. Not used when a bucket is served.
    pub root: PathBuf,
    /// The bucket served as `/` instead of `root` (`--storage s3://...`).
    pub s3: Option<S3Config>,
    /// Addresses to listen on (`-l`/`--listen`, repeatable), without
    /// duplicates; `127.0.0.1:2121` when none is given. Ignored with
    /// `--inetd`.
    pub listen: Vec<SocketAddr>,
    /// `--inetd`: serve one session on standard input/output and exit.
    pub inetd: bool,
    /// Worker threads (`--threads`, default 1; 0 on the command line means
    /// one per CPU, already resolved here). Always at least 1.
    pub threads: usize,
    /// Most password checks running at once (`--password-checks`; 0 or
    /// unset means one per CPU, already resolved here). Always at least 1;
    /// the worker pool caps it at its number of workers less one. Each argon2 check
    /// holds its hash's memory cost (19 MiB by default) while it runs.
    pub password_checks: usize,
    /// Accounts from `--users FILE`, if given. Every account's home was
    /// checked to be a directory under `root` at parse time.
    pub users: Option<Arc<UserDb>>,
    /// Ports for passive listeners (`--pasv-ports LO-HI`); `None` for
    /// random ports of the kernel's ephemeral range (see
    /// [`crate::passive`]).
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// Most simultaneous sessions (`--max-clients`; 0 = no limit). The
    /// default is [`limits::DEFAULT_MAX_CLIENTS`], fewer when the
    /// descriptor limit would not allow that many
    /// ([`limits::default_max_clients`]). Over it, a client gets
    /// `421 Too many users, try again later.`
    pub max_clients: usize,
    /// Most simultaneous sessions from one address (an IPv6 client: from
    /// one /64) and the text of the `421` reply beyond it
    /// (`--max-per-ip N[:MSG]`, default [`DEFAULT_MAX_PER_IP`]); `None` =
    /// no limit (`0`).
    pub max_per_ip: Option<(usize, String)>,
    /// Auto-ban (`--ban-after N`, `--ban-window`, `--ban-time`,
    /// `--ban-exempt`); `None` when off.
    pub ban: Option<BanPolicy>,
    /// Networks whose connections must begin with a PROXY header
    /// (`--proxy-from CIDR[,CIDR...]`); its address is then the client's.
    pub proxy_from: Option<Arc<ProxySources>>,
    /// `--pasv-address` when it names a host: resolved into
    /// `engine.pasv_address` at parse time, and again every minute while
    /// the server runs (see [`crate::pasv_address`]).
    pub pasv_host: Option<String>,
    /// Number of `-v` flags: 0 logs warnings and errors, 1 adds session
    /// events, 2 adds debugging detail. Pass to [`crate::log::init`].
    pub verbosity: u8,
    /// `-S`: log to syslog instead of standard error.
    pub syslog: bool,
    /// `--log-format`: how standard error lines look.
    pub log_format: crate::log::LogFormat,
    /// `--xferlog FILE`: wu-ftpd style transfer log, made absolute. Open it
    /// with [`crate::xferlog::XferLog::open`].
    pub xferlog: Option<PathBuf>,
    /// `--metrics ADDR:PORT`: where the operator's HTTP endpoint listens
    /// (see [`crate::http`]).
    pub metrics: Option<SocketAddr>,
    /// How long running sessions may go on after a shutdown signal
    /// (`--shutdown-grace SEC`, default 10 s).
    pub shutdown_grace: Duration,
    /// Bytes per second each download may go at (`--download-rate`; 0 =
    /// unlimited, the default), for every session whose account sets no
    /// `download_rate` (see [`crate::rate`]).
    pub download_rate: u64,
    /// Bytes per second each upload may go at (`--upload-rate`; 0 =
    /// unlimited, the default), for every session whose account sets no
    /// `upload_rate`.
    pub upload_rate: u64,
    /// `-a USER`: the system account anonymous sessions are mapped to. Its
    /// presence also enables anonymous login when a users file or the
    /// system's accounts are used.
    pub anonymous_user: Option<String>,
    /// The system's accounts, when they are who logs in: in `--inetd` mode
    /// without `--users` and `-A` (as BusyBox `ftpd`), or with
    /// `--system-users`. Read at parse time; a standalone daemon rereads
    /// them when they change, an `--inetd` session never does.
    pub system_users: Option<Arc<SystemUsers>>,
    /// `--pam [SERVICE]`: logins checked by the system's PAM stack
    /// (cargo feature `pam`; without it `--pam` is refused at parse time).
    pub pam: Option<Arc<PamSettings>>,
    /// Whether the `--inetd` chroot waits for the login that changes the
    /// process's identity, instead of coming before the first command:
    /// set by the daemon for a session started as root with `--pam`, whose
    /// modules need the real `/etc` and `/lib` to check the password.
    /// Nothing is served before a login either way.
    pub chroot_at_login: bool,
    /// The account `-a USER` names, looked up in the system's files when it
    /// can matter: with system accounts, or in `--inetd` mode (where a
    /// session started as root takes its identity for anonymous logins).
    /// `-a` naming no account is an error then.
    pub anonymous_account: Option<Account>,
    /// `--run-as USER[:GROUP]`, resolved: the identity a standalone daemon
    /// takes once its sockets are bound.
    pub run_as: Option<RunAs>,
    /// `--active-port-20`: active data connections leave from port 20 of
    /// the control connection's local address (and `--run-as` keeps
    /// `CAP_NET_BIND_SERVICE` for it).
    pub active_port_20: bool,
    /// Whether a login changes the process's identity: to the system
    /// account's, or `-a USER`'s for anonymous logins (users-file accounts
    /// and `-A` sessions keep the process's). Off from [`parse_args`]; the
    /// daemon turns it on with [`ServerConfig::enable_login_identity`] for
    /// an `--inetd` session started as root.
    pub login_identity: bool,
    /// The command line this configuration was parsed from, parsed again
    /// (with the files it names read again) by a reload.
    pub command_line: Vec<OsString>,
    /// FTPS (`--tls-cert`, `--tls-key` and the other TLS flags): the
    /// loaded certificate, implicit-TLS listeners and policy; `None`
    /// without a certificate.
    pub tls: Option<crate::tls::TlsSettings>,
    /// Programs run on session events (`--hook EVENT=PROGRAM`, the
    /// `[hooks]` table) and their time limit (`--hook-timeout`).
    pub hooks: crate::hooks::HookConfig,
    /// The program asked about logins the users file cannot answer
    /// (`--auth-program`).
    pub auth_program: Option<crate::program::Program>,
    /// How long the authentication program may run (`--auth-timeout`).
    pub auth_timeout: Duration,
    /// The engine's policy, built from the flags: `no_login` (`-A`),
    /// `anonymous`, `anonymous_write` (`-w`), `idle_timeout` (`-t`),
    /// `session_timeout` (`-T`), `login_timeout` (`--login-timeout`),
    /// `pasv_address`, `allow_foreign_active`
    /// (`--allow-foreign-port`), `login_fail_delay`, `max_login_attempts`,
    /// `log_events` (on with `-v` or `--xferlog`) and the greeting.
    pub engine: Arc<ftp_proto::Config>,
}

impl ServerConfig {
    /// Makes logins change the process's identity (see
    /// [`ServerConfig::login_identity`]); anonymous logins then wait for
    /// the host (`authenticate_anonymous`) so the change happens before
    /// the session touches a file.
    pub fn enable_login_identity(&mut self) {
        self.login_identity = true;
        if self.anonymous_account.is_some() && self.engine.anonymous {
            let mut engine = (*self.engine).clone();
            engine.authenticate_anonymous = true;
            self.engine = Arc::new(engine);
        }
    }

    /// Settings that are allowed but risky, as one-line messages for the
    /// daemon to log (at warning level) once logging is set up.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(system) = &self.system_users {
            out.extend(system.warnings());
        }
        if let Some(pam) = &self.pam {
            let known = ["/etc/pam.d", "/usr/lib/pam.d", "/lib/pam.d"]
                .iter()
                .any(|dir| Path::new(dir).join(&pam.service).is_file());
            if !known && !Path::new("/etc/pam.conf").is_file() {
                out.push(format!(
                    "--pam: no file for PAM service '{}' in /etc/pam.d: PAM uses its \"other\" service",
                    pam.service
                ));
            }
            if self.run_as.is_some() {
                out.push(
                    "--pam with --run-as: PAM modules run as that user, and pam_unix cannot read \
                     /etc/shadow to check other users' passwords"
                        .into(),
                );
            }
        }
        if let Some(ports) = &self.pasv_ports {
            if *ports.start() < 1024 {
                out.push(format!(
                    "passive ports {}-{} include ports below 1024, which may clash with system services",
                    ports.start(),
                    ports.end()
                ));
            }
        }
        if self.engine.allow_foreign_active {
            out.push(
                "--allow-foreign-port: clients may make the server send data to other hosts (FXP)"
                    .into(),
            );
        }
        out
    }
}

/// `--pam [SERVICE]`, checked: who logs in is the PAM stack's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PamSettings {
    /// The PAM service (`/etc/pam.d/SERVICE`), [`DEFAULT_PAM_SERVICE`]
    /// when `--pam` names none.
    pub service: String,
    /// Names refused before PAM is asked: the ftpusers file's
    /// (`--ftpusers FILE`, else `/etc/ftpusers` if it exists), as for
    /// system accounts. Read at parse time and by a reload.
    pub refused: std::collections::HashSet<String>,
}

/// The PAM service `--pam` uses when it names none (vsftpd's).
pub const DEFAULT_PAM_SERVICE: &str = "ftp";

/// `--max-per-ip N[:MSG]` as given.
#[derive(Clone, Debug)]
struct PerIp {
    limit: usize,
    message: Option<String>,
}

/// The command line as clap sees it.
#[derive(Parser, Debug)]
#[command(
    name = "ftpd",
    version,
    about = "FTP server: serves DIR (default: the current directory) as /.",
    args_conflicts_with_subcommands = true,
    disable_help_subcommand = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    /// Folder served as / (default: the current directory)
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Serve an S3 bucket (under PREFIX) as / instead of DIR; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) or the [storage] table
    #[arg(long, value_name = "s3://BUCKET[/PREFIX]")]
    storage: Option<String>,

    /// Endpoint of an S3-compatible server (path-style addressing) [default: AWS]
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,

    /// S3 region [default: us-east-1]
    #[arg(long, value_name = "NAME")]
    s3_region: Option<String>,

    /// At start, abort the multipart uploads under the served prefix begun this long ago or more (left behind by a killed daemon; 0: all of them) [default: 86400]
    #[arg(long, value_name = "SEC")]
    s3_abort_uploads_after: Option<u64>,

    /// Allow uploads and changes for anonymous and no-login sessions
    #[arg(short = 'w')]
    write: bool,

    /// No login required: every session starts logged in
    #[arg(short = 'A')]
    no_login: bool,

    /// Allow anonymous login (anonymous/ftp, any password) as system user USER
    #[arg(short = 'a', value_name = "USER")]
    anonymous_user: Option<String>,

    /// Log in with the system's accounts (/etc/passwd, /etc/shadow); the default with --inetd
    #[arg(long)]
    system_users: bool,

    /// Check logins with the system's PAM stack, service SERVICE (/etc/pam.d/SERVICE) [default: ftp]; needs the `pam` build feature
    #[arg(long, value_name = "SERVICE", num_args = 0..=1, default_missing_value = DEFAULT_PAM_SERVICE)]
    pam: Option<String>,

    /// System accounts listed in FILE may not log in [default: /etc/ftpusers, if it exists]
    #[arg(long, value_name = "FILE")]
    ftpusers: Option<PathBuf>,

    /// After binding, drop root and run as USER[:GROUP] (standalone mode)
    #[arg(long, value_name = "USER[:GROUP]")]
    run_as: Option<String>,

    /// Read accounts from FILE instead of /etc/passwd (for tests)
    #[arg(long, value_name = "FILE", hide = true)]
    passwd_file: Option<PathBuf>,

    /// Read password hashes from FILE instead of /etc/shadow (for tests)
    #[arg(long, value_name = "FILE", hide = true)]
    shadow_file: Option<PathBuf>,

    /// Read groups from FILE instead of /etc/group (for tests)
    #[arg(long, value_name = "FILE", hide = true)]
    group_file: Option<PathBuf>,

    /// Idle timeout in seconds, 0 = none [default: 120]
    #[arg(short = 't', value_name = "SEC")]
    idle_timeout: Option<u64>,

    /// Absolute session timeout in seconds, 0 = none [default: 3600]
    #[arg(short = 'T', value_name = "SEC")]
    session_timeout: Option<u64>,

    /// Seconds from connecting to a successful login, 0 = none [default: 60]
    #[arg(long, value_name = "SEC")]
    login_timeout: Option<u64>,

    /// Log to stderr: -v session events, -vv debugging detail
    #[arg(short = 'v', action = ArgAction::Count)]
    verbose: u8,

    /// Log to syslog instead of stderr
    #[arg(short = 'S')]
    syslog: bool,

    /// How log lines on standard error look: text (PROG[PID]: message) or json (one object a line) [default: text]
    #[arg(long, value_name = "FORMAT", value_parser = ["text", "json"])]
    log_format: Option<String>,

    /// Serve one session on stdin/stdout (started by inetd)
    #[arg(long)]
    inetd: bool,

    /// Listen on ADDR:PORT, IPv4 or [IPv6]; repeatable [default: 127.0.0.1:2121]
    #[arg(short = 'l', long, value_name = "ADDR:PORT", value_parser = cli_listen)]
    listen: Vec<SocketAddr>,

    /// Users file (TOML: [[user]] name, password hash, home, write)
    #[arg(long, value_name = "FILE")]
    users: Option<PathBuf>,

    /// Ports for passive data connections, for example 50000-50100 (default: random free ports of the kernel's ephemeral range)
    #[arg(long, value_name = "LO-HI", value_parser = cli_port_range)]
    pasv_ports: Option<RangeInclusive<u16>>,

    /// IPv4 address or host name (resolved now and every minute) announced in passive (227) replies, behind NAT or a load balancer
    #[arg(long, value_name = "IP|HOST", value_parser = cli_pasv_address)]
    pasv_address: Option<PasvAddress>,

    /// Connections from these networks must begin with a PROXY header (v1 or v2), whose address is then the client's
    #[arg(long, value_name = "CIDR[,CIDR...]", value_parser = cli_proxy_from)]
    proxy_from: Option<ProxySources>,

    /// Most simultaneous sessions, 0 = no limit [default: 2000, fewer with a low descriptor limit]
    #[arg(long, value_name = "N")]
    max_clients: Option<usize>,

    /// Most sessions from one address (IPv6: one /64), 0 = no limit; others get "421 MSG" [default: 50]
    #[arg(long, value_name = "N[:MSG]", value_parser = cli_per_ip)]
    max_per_ip: Option<PerIp>,

    /// Ban an address (IPv6: a /64) after N failed logins within --ban-window, 0 = off [default: 0]
    #[arg(long, value_name = "N")]
    ban_after: Option<u32>,

    /// Seconds in which --ban-after failures must fall [default: 600]
    #[arg(long, value_name = "SEC")]
    ban_window: Option<u64>,

    /// Seconds a first ban lasts; each repeat offence doubles it, up to a day [default: 900]
    #[arg(long, value_name = "SEC")]
    ban_time: Option<u64>,

    /// Networks never banned (trusted)
    #[arg(long, value_name = "CIDR[,CIDR...]", value_parser = cli_networks)]
    ban_exempt: Option<NetworkList>,

    /// Worker threads, 0 = one per CPU [default: 1]
    #[arg(long, value_name = "N")]
    threads: Option<usize>,

    /// Most password checks at once (each argon2 check holds its memory
    /// cost, 19 MiB by default), 0 = one per CPU [default: 0]
    #[arg(long, value_name = "N")]
    password_checks: Option<usize>,

    /// Write a wu-ftpd style transfer log to FILE
    #[arg(long, value_name = "FILE")]
    xferlog: Option<PathBuf>,

    /// Serve /metrics (Prometheus), /healthz and /readyz over HTTP on ADDR:PORT (a private address) [default: off]
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<SocketAddr>,

    /// Read settings from a TOML file; command-line flags override it
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Allow PORT/EPRT to other hosts than the client (FXP; unsafe)
    #[arg(long)]
    allow_foreign_port: bool,

    /// Active data connections leave from port 20 (needs root or CAP_NET_BIND_SERVICE, kept across --run-as)
    #[arg(long)]
    active_port_20: bool,

    /// Delay before answering a failed login, in ms [default: 1000]
    #[arg(long, value_name = "MS")]
    login_fail_delay: Option<u64>,

    /// Failed logins before the session is closed [default: 3]
    #[arg(long, value_name = "N")]
    max_login_attempts: Option<u32>,

    /// Most bytes HASH and XCRC/XMD5/XSHA* digest at once; bigger gets 552 [default: 4294967296]
    #[arg(long, value_name = "BYTES")]
    hash_max_size: Option<u64>,

    /// Turn HASH and XCRC/XMD5/XSHA* off (502)
    #[arg(long)]
    no_hash: bool,

    /// Seconds running sessions get to finish at shutdown [default: 10]
    #[arg(long, value_name = "SEC")]
    shutdown_grace: Option<u64>,

    /// Run PROGRAM (an absolute path, then arguments split on whitespace; no shell) on EVENT: login, logout, upload, download, delete, rename, mkdir, rmdir, pre-upload, pre-delete; repeatable
    #[arg(long = "hook", value_name = "EVENT=PROGRAM")]
    hooks: Vec<String>,

    /// Seconds a hook may run before it is killed [default: 30]
    #[arg(long, value_name = "SEC")]
    hook_timeout: Option<u64>,

    /// Ask PROGRAM (password on stdin, a JSON answer on stdout) about logins the users file does not hold
    #[arg(long, value_name = "PROGRAM")]
    auth_program: Option<String>,

    /// Seconds the --auth-program may run before the login is refused [default: 10]
    #[arg(long, value_name = "SEC")]
    auth_timeout: Option<u64>,

    /// Bytes per second each download may go at, 0 = unlimited; a users-file account's download_rate overrides it [default: 0]
    #[arg(long, value_name = "BYTES")]
    download_rate: Option<u64>,

    /// Bytes per second each upload may go at, 0 = unlimited; a users-file account's upload_rate overrides it [default: 0]
    #[arg(long, value_name = "BYTES")]
    upload_rate: Option<u64>,

    #[command(flatten)]
    tls: crate::tls::TlsArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read a password (one line) from stdin and print its argon2id hash for the users file
    HashPassword,
}

fn cli_listen(s: &str) -> Result<SocketAddr, String> {
    parse_listen(s).map_err(str::to_owned)
}

fn cli_port_range(s: &str) -> Result<RangeInclusive<u16>, String> {
    parse_port_range(s).map_err(str::to_owned)
}

fn cli_pasv_address(s: &str) -> Result<PasvAddress, String> {
    PasvAddress::parse(s).map_err(|e| e.to_string())
}

fn cli_proxy_from(s: &str) -> Result<ProxySources, String> {
    ProxySources::parse(s).map_err(|e| e.to_string())
}

/// The auto-ban settings, or `None` when `--ban-after` is 0 or unset.
fn ban_policy(
    after: Option<u32>,
    window: Option<u64>,
    time: Option<u64>,
    exempt_flag: Option<Vec<Network>>,
    exempt_file: Option<Vec<String>>,
) -> Result<Option<BanPolicy>, ConfigError> {
    let after = after.unwrap_or(0);
    if after == 0 {
        return Ok(None);
    }
    if after > MAX_BAN_AFTER {
        return Err(ConfigError::Invalid {
            setting: "ban_after",
            value: after.to_string(),
            reason: "at most 1000",
        });
    }
    let exempt = match (exempt_flag, exempt_file) {
        (Some(list), _) => list,
        (None, Some(list)) => list
            .iter()
            .map(|e| e.parse())
            .collect::<Result<Vec<Network>, _>>()
            .map_err(|e| ConfigError::Invalid {
                setting: "ban_exempt",
                value: e.to_string(),
                reason: "not a network (ADDR or ADDR/LEN)",
            })?,
        (None, None) => Vec::new(),
    };
    let window = window.unwrap_or(600);
    let time = time.unwrap_or(900);
    if window == 0 || time == 0 {
        return Err(ConfigError::Invalid {
            setting: if window == 0 {
                "ban_window"
            } else {
                "ban_time"
            },
            value: "0".into(),
            reason: "must be at least 1 second",
        });
    }
    Ok(Some(BanPolicy {
        after,
        window: Duration::from_secs(window),
        time: Duration::from_secs(time),
        exempt,
    }))
}

/// A comma-separated list of networks on the command line (clap would
/// take a bare `Vec` for a repeated flag).
#[derive(Clone, Debug)]
struct NetworkList(Vec<Network>);

fn cli_networks(s: &str) -> Result<NetworkList, String> {
    s.split(',')
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.parse()
                .map_err(|e: crate::proxy::SourcesError| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()
        .map(NetworkList)
}

fn cli_per_ip(s: &str) -> Result<PerIp, String> {
    let (n, message) = match s.split_once(':') {
        Some((n, m)) => (n, Some(m.to_string())),
        None => (s, None),
    };
    let limit = n
        .trim()
        .parse()
        .map_err(|_| "expected N or N:MSG, for example 3:Too many connections.".to_string())?;
    Ok(PerIp { limit, message })
}

/// The program's name as it was invoked (the file name of `argv[0]`), or
/// `ftpd`. Use it as the log tag and error prefix.
pub fn prog_name() -> String {
    prog_name_of(std::env::args_os().next().as_deref())
}

fn prog_name_of(argv0: Option<&std::ffi::OsStr>) -> String {
    argv0
        .map(Path::new)
        .and_then(Path::file_name)
        .and_then(|n| n.to_str())
        .filter(|n| !n.is_empty())
        .unwrap_or("ftpd")
        .to_string()
}

/// Parses the command line (`args` includes the program name first, as
/// from [`std::env::args_os`]), reads `--config` and `--users` files and
/// checks the served folder.
///
/// `--help`, `--version` and usage errors come back as
/// [`ConfigError::Cli`]: the daemon should call [`ConfigError::exit`]
/// (or `err.exit()` on the clap error) for those, which prints them the way
/// clap does and exits with clap's status (0 for help/version, 2 for usage
/// errors). Every other error is one line for `PROG: {err}` and status 1;
/// [`ConfigError::exit`] does both kinds.
pub fn parse_args<I, T>(args: I) -> Result<Invocation, ConfigError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString>,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let prog = prog_name_of(args.first().map(OsString::as_os_str));
    let command_line = args.clone();
    let matches = Args::command()
        .display_name(prog)
        .try_get_matches_from(args)
        .map_err(ConfigError::Cli)?;
    let args = Args::from_arg_matches(&matches).map_err(ConfigError::Cli)?;
    if let Some(Command::HashPassword) = args.command {
        return Ok(Invocation::HashPassword);
    }
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    build(args, file).map(|mut config| {
        config.command_line = command_line;
        Invocation::Serve(config)
    })
}

/// Resolves `path` to a canonical, readable directory.
fn check_root(path: &Path) -> Result<PathBuf, ConfigError> {
    let fail = |source| ConfigError::Root {
        path: path.to_path_buf(),
        source,
    };
    let root = std::fs::canonicalize(path).map_err(fail)?;
    let meta = std::fs::metadata(&root).map_err(fail)?;
    if !meta.is_dir() {
        return Err(fail(io::Error::from(io::ErrorKind::NotADirectory)));
    }
    std::fs::read_dir(&root).map_err(fail)?;
    Ok(root)
}

/// Checks that a text sent to clients is one line of printable characters.
fn check_message(setting: &'static str, text: &str) -> Result<(), ConfigError> {
    if text.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            setting,
            value: text.to_string(),
            reason: "must not contain control characters",
        });
    }
    Ok(())
}

/// A PAM service name: a file name of `/etc/pam.d`, and PAM compiled in.
fn check_pam_service(service: &str) -> Result<(), ConfigError> {
    let invalid = |reason| ConfigError::Invalid {
        setting: "--pam",
        value: service.to_string(),
        reason,
    };
    if !cfg!(feature = "pam") {
        return Err(invalid(
            "PAM is not compiled into this build; build with --features pam",
        ));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || "._-+@".contains(c);
    if service.is_empty() || service.starts_with('.') || !service.chars().all(ok) {
        return Err(invalid(
            "must be a PAM service name (a file name in /etc/pam.d); to serve a folder, put it \
             before --pam or write --pam=SERVICE",
        ));
    }
    Ok(())
}

fn seconds(secs: u64) -> Option<Duration> {
    (secs != 0).then(|| Duration::from_secs(secs))
}

/// The bucket to serve: `--storage` (or the `[storage]` table's `url`),
/// endpoint and region from the command line over the table, credentials
/// from the table, else from the `AWS_*` environment variables.
fn s3_config(url: &str, args: &Args, file: StorageFile) -> Result<S3Config, ConfigError> {
    let invalid = |setting: &'static str, value: &str, reason: &'static str| ConfigError::Invalid {
        setting,
        value: value.to_string(),
        reason,
    };
    if !cfg!(feature = "s3") {
        return Err(invalid(
            "--storage",
            url,
            "S3 storage is not compiled into this build (cargo feature `s3`)",
        ));
    }
    let location = S3Location::parse(url).map_err(|e| invalid("--storage", url, e.reason()))?;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let access_key_id = file.access_key_id.or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret_access_key = file
        .secret_access_key
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    let (Some(access_key_id), Some(secret_access_key)) = (access_key_id, secret_access_key) else {
        return Err(invalid(
            "--storage",
            url,
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or access_key_id and secret_access_key in the [storage] table",
        ));
    };
    Ok(S3Config {
        bucket: location.bucket,
        prefix: location.prefix,
        endpoint: args.s3_endpoint.clone().or(file.s3_endpoint),
        region: args
            .s3_region
            .clone()
            .or(file.s3_region)
            .unwrap_or_else(|| DEFAULT_S3_REGION.to_string()),
        access_key_id,
        secret_access_key,
        session_token: file.session_token.or_else(|| env("AWS_SESSION_TOKEN")),
        abort_uploads_after: Some(Duration::from_secs(
            args.s3_abort_uploads_after
                .or(file.abort_uploads_after)
                .unwrap_or(DEFAULT_ABORT_UPLOADS_AFTER),
        )),
    })
}

/// The region used when none is given.
pub const DEFAULT_S3_REGION: &str = "us-east-1";

/// Seconds after which a multipart upload found at start counts as left
/// behind (a day: another node serving the same bucket may be receiving a
/// younger one).
pub const DEFAULT_ABORT_UPLOADS_AFTER: u64 = 86_400;

/// Merges command line over file over defaults and checks the result.
fn build(args: Args, file: FileConfig) -> Result<ServerConfig, ConfigError> {
    let storage_file = file.storage.clone().unwrap_or_default();
    let s3 = match args.storage.clone().or(storage_file.url.clone()) {
        None => None,
        Some(url) => Some(s3_config(&url, &args, storage_file)?),
    };
    let dir = args
        .dir
        .clone()
        .or(file.root.clone())
        .unwrap_or_else(|| PathBuf::from("."));
    // With a bucket, DIR is not used (and may be left out).
    let root = if s3.is_some() { dir } else { check_root(&dir)? };

    let inetd = args.inetd;
    if inetd && !args.listen.is_empty() {
        return Err(ConfigError::Conflict(
            "--inetd serves standard input/output and cannot be combined with --listen",
        ));
    }
    let listen_given = if args.listen.is_empty() {
        file.listen
    } else {
        Some(args.listen)
    };
    let mut listen = Vec::new();
    for addr in listen_given.unwrap_or_else(|| vec![DEFAULT_LISTEN]) {
        if !listen.contains(&addr) {
            listen.push(addr);
        }
    }
    if listen.is_empty() && !inetd {
        return Err(ConfigError::Invalid {
            setting: "listen",
            value: "[]".into(),
            reason: "needs at least one address",
        });
    }

    let write = args.write || file.write.unwrap_or(false);
    let no_login = args.no_login || file.no_login.unwrap_or(false);
    let anonymous_user = args.anonymous_user.or(file.anonymous_user);
    if let Some(user) = &anonymous_user {
        if user.is_empty() || user.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(ConfigError::Invalid {
                setting: "-a",
                value: user.clone(),
                reason: "must be a user name",
            });
        }
    }

    let users_path = args.users.or(file.users);
    if no_login && users_path.is_some() {
        return Err(ConfigError::Conflict(
            "-A (no login required) cannot be combined with --users: nobody would log in",
        ));
    }
    let system_flag = args.system_users || file.system_users.unwrap_or(false);
    if system_flag && users_path.is_some() {
        return Err(ConfigError::Conflict(
            "--system-users cannot be combined with --users: accounts come from one place",
        ));
    }
    if system_flag && no_login {
        return Err(ConfigError::Conflict(
            "-A (no login required) cannot be combined with --system-users: nobody would log in",
        ));
    }
    let pam_service = args.pam.clone().or(file.pam.clone());
    if let Some(service) = &pam_service {
        check_pam_service(service)?;
        if users_path.is_some() || system_flag {
            return Err(ConfigError::Conflict(
                "--pam cannot be combined with --users or --system-users: accounts come from one place",
            ));
        }
        if no_login {
            return Err(ConfigError::Conflict(
                "-A (no login required) cannot be combined with --pam: nobody would log in",
            ));
        }
    }
    let hooks = hook_config(
        &args.hooks,
        file.hooks.as_ref(),
        args.hook_timeout.or(file.hook_timeout),
    )?;
    let auth_program = match args
        .auth_program
        .as_deref()
        .or(file.auth_program.as_deref())
    {
        Some(text) => Some(text.parse::<Program>().map_err(|e| ConfigError::Invalid {
            setting: "--auth-program",
            value: text.to_string(),
            reason: e.reason(),
        })?),
        None => None,
    };
    if auth_program.is_some() && system_flag {
        return Err(ConfigError::Conflict(
            "--auth-program cannot be combined with --system-users: accounts come from one place",
        ));
    }
    if auth_program.is_some() && no_login {
        return Err(ConfigError::Conflict(
            "-A (no login required) cannot be combined with --auth-program: nobody would log in",
        ));
    }
    let auth_timeout = match args.auth_timeout.or(file.auth_timeout) {
        None => crate::auth_program::DEFAULT_TIMEOUT,
        Some(0) => {
            return Err(ConfigError::Invalid {
                setting: "--auth-timeout",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Some(secs) => Duration::from_secs(secs),
    };
    if pam_service.is_some() && auth_program.is_some() {
        return Err(ConfigError::Conflict(
            "--pam cannot be combined with --auth-program: accounts come from one place",
        ));
    }
    let run_as = args.run_as.or(file.run_as);
    if inetd && run_as.is_some() {
        return Err(ConfigError::Conflict(
            "--run-as is for standalone mode; under tcpsvd use its -u option, or let --inetd \
             take each user's identity at login",
        ));
    }
    let run_as = match run_as {
        Some(spec) => Some(RunAs::resolve(&spec).map_err(ConfigError::Identity)?),
        None => None,
    };
    // As BusyBox ftpd: an inetd session without a users file (and without
    // -A) logs in with the system's accounts.
    // With --pam, PAM checks them instead.
    let system_logins = pam_service.is_none()
        && (system_flag || (inetd && users_path.is_none() && auth_program.is_none() && !no_login));
    let ftpusers = args.ftpusers.or(file.ftpusers);
    if ftpusers.is_some() && !system_logins && pam_service.is_none() {
        return Err(ConfigError::Conflict(
            "--ftpusers applies to system accounts: use it with --system-users, --pam or \
             --inetd (without --users)",
        ));
    }
    let defaults = SystemFiles::default();
    let system_files = SystemFiles {
        passwd: args.passwd_file.unwrap_or(defaults.passwd),
        shadow: args.shadow_file.unwrap_or(defaults.shadow),
        group: args.group_file.unwrap_or(defaults.group),
        ftpusers_required: ftpusers.is_some(),
        ftpusers: ftpusers.unwrap_or(defaults.ftpusers),
    };
    let system_users = if system_logins {
        Some(Arc::new(SystemUsers::load(system_files.clone(), !inetd)?))
    } else {
        None
    };
    let pam = match pam_service {
        Some(service) => Some(Arc::new(PamSettings {
            service,
            refused: system::read_ftpusers(&system_files)?,
        })),
        None => None,
    };
    let anonymous_account = match &anonymous_user {
        Some(name) if (system_logins || pam.is_some() || inetd) && !no_login => {
            let found = match &system_users {
                Some(db) => db.account(name),
                None => system::lookup(&system_files, name)?,
            };
            match found {
                Some(account) => Some(account),
                None => {
                    return Err(ConfigError::Invalid {
                        setting: "-a",
                        value: name.clone(),
                        reason: "no such system account",
                    });
                }
            }
        }
        _ => None,
    };

    let users = match users_path {
        Some(path) => {
            let db = UserDb::load(&path)?;
            for name in db.names() {
                // Homes in a bucket are checked once it answers
                // (`Server::new`).
                if let Some(home) = db.home(name).filter(|_| s3.is_none()) {
                    let full = root.join(home);
                    let fail = |source| ConfigError::Home {
                        name: name.to_string(),
                        path: full.clone(),
                        source,
                    };
                    let meta = std::fs::metadata(&full).map_err(fail)?;
                    if !meta.is_dir() {
                        return Err(fail(io::Error::from(io::ErrorKind::NotADirectory)));
                    }
                }
            }
            Some(Arc::new(db))
        }
        None => None,
    };
    // Embedded default: without a users file or system accounts (and
    // without -A) anyone may log in anonymously; with them, only if -a
    // names the account to use.
    let anonymous = anonymous_user.is_some()
        || (users.is_none()
            && auth_program.is_none()
            && !system_logins
            && pam.is_none()
            && !no_login);

    let per_cpu = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = match args.threads.or(file.threads).unwrap_or(1) {
        0 => per_cpu(),
        n => n,
    };
    let password_checks = match args.password_checks.or(file.password_checks).unwrap_or(0) {
        0 => per_cpu(),
        n => n,
    };

    let max_clients = args
        .max_clients
        .or(file.max_clients)
        .unwrap_or_else(limits::default_max_clients);
    let (per_ip_limit, per_ip_message) = match args.max_per_ip {
        Some(PerIp { limit, message }) => (Some(limit), message.or(file.max_per_ip_message)),
        None => (file.max_per_ip, file.max_per_ip_message),
    };
    let per_ip_limit = per_ip_limit.unwrap_or(DEFAULT_MAX_PER_IP);
    let per_ip_message = per_ip_message
        .filter(|m| !m.trim().is_empty())
        .unwrap_or_else(|| TOO_MANY_FROM_ADDRESS.to_string());
    check_message("--max-per-ip message", &per_ip_message)?;
    let max_per_ip = (per_ip_limit != 0).then_some((per_ip_limit, per_ip_message));

    let max_login_attempts = args.max_login_attempts.or(file.max_login_attempts);
    if max_login_attempts == Some(0) {
        return Err(ConfigError::Invalid {
            setting: "--max-login-attempts",
            value: "0".into(),
            reason: "must be at least 1",
        });
    }

    let verbosity = if args.verbose > 0 {
        args.verbose
    } else {
        file.verbose.unwrap_or(0)
    };
    let syslog = args.syslog || file.syslog.unwrap_or(false);
    let xferlog = match args.xferlog.or(file.xferlog) {
        Some(p) => Some(
            std::path::absolute(&p).map_err(|source| ConfigError::Xferlog { path: p, source })?,
        ),
        None => None,
    };

    let metrics = args.metrics.or(file.metrics);
    if metrics.is_some() && inetd {
        return Err(ConfigError::Conflict(
            "--metrics cannot be combined with --inetd: each session is a process of its own",
        ));
    }

    let ban = ban_policy(
        args.ban_after.or(file.ban_after),
        args.ban_window.or(file.ban_window),
        args.ban_time.or(file.ban_time),
        args.ban_exempt.map(|l| l.0),
        file.ban_exempt,
    )?;
    if inetd && ban.is_some() {
        return Err(ConfigError::Conflict(
            "--ban-after needs the daemon's memory of failed logins: it cannot be combined with --inetd",
        ));
    }
    let tls = crate::tls::build(args.tls, file.tls, inetd)?;

    let proxy_from = args.proxy_from.or(file.proxy_from).map(Arc::new);
    if inetd && proxy_from.is_some() {
        return Err(ConfigError::Conflict(
            "--proxy-from applies to the daemon's own listeners, not to --inetd",
        ));
    }
    let pasv = args.pasv_address.or(file.pasv_address);
    let pasv_address = match &pasv {
        None => None,
        Some(pasv) => Some(pasv.resolve().map_err(|e| ConfigError::Resolve {
            setting: "--pasv-address",
            host: pasv.to_string(),
            source: e,
        })?),
    };
    let pasv_host = match pasv {
        Some(PasvAddress::Host(host)) => Some(host),
        _ => None,
    };

    let defaults = ftp_proto::Config::default();
    let engine = ftp_proto::Config {
        greeting: GREETING.to_string(),
        no_login,
        anonymous,
        anonymous_write: write,
        login_fail_delay: args
            .login_fail_delay
            .or(file.login_fail_delay)
            .map_or(defaults.login_fail_delay, Duration::from_millis),
        max_login_attempts: max_login_attempts.unwrap_or(defaults.max_login_attempts),
        hash_max_size: if args.no_hash || file.no_hash.unwrap_or(false) {
            None
        } else {
            args.hash_max_size
                .or(file.hash_max_size)
                .or(defaults.hash_max_size)
        },
        idle_timeout: seconds(
            args.idle_timeout
                .or(file.idle_timeout)
                .unwrap_or(DEFAULT_IDLE_TIMEOUT),
        ),
        session_timeout: seconds(
            args.session_timeout
                .or(file.session_timeout)
                .unwrap_or(DEFAULT_SESSION_TIMEOUT),
        ),
        login_timeout: seconds(
            args.login_timeout
                .or(file.login_timeout)
                .unwrap_or(DEFAULT_LOGIN_TIMEOUT),
        ),
        allow_foreign_active: args.allow_foreign_port || file.allow_foreign_port.unwrap_or(false),
        pasv_address,
        log_events: verbosity > 0
            || xferlog.is_some()
            || metrics.is_some()
            || ban.is_some()
            || !hooks.is_empty(),
        tls: tls.as_ref().map(|t| t.policy.clone()).unwrap_or_default(),
        storage: if s3.is_some() {
            ftp_proto::StorageCaps::OBJECT_STORE
        } else {
            ftp_proto::StorageCaps::ALL
        },
        ..defaults
    };

    Ok(ServerConfig {
        root,
        s3,
        listen,
        inetd,
        threads,
        password_checks,
        users,
        pasv_ports: args.pasv_ports.or(file.pasv_ports),
        max_clients,
        max_per_ip,
        ban,
        proxy_from,
        pasv_host,
        verbosity,
        syslog,
        log_format: match args.log_format.or(file.log_format).as_deref() {
            Some("json") => crate::log::LogFormat::Json,
            Some("text") | None => crate::log::LogFormat::Text,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    setting: "log_format",
                    value: other.to_string(),
                    reason: "must be \"text\" or \"json\"",
                });
            }
        },
        xferlog,
        metrics,
        shutdown_grace: Duration::from_secs(
            args.shutdown_grace
                .or(file.shutdown_grace)
                .unwrap_or(DEFAULT_SHUTDOWN_GRACE),
        ),
        download_rate: args.download_rate.or(file.download_rate).unwrap_or(0),
        upload_rate: args.upload_rate.or(file.upload_rate).unwrap_or(0),
        anonymous_user,
        system_users,
        pam,
        chroot_at_login: false,
        anonymous_account,
        run_as,
        active_port_20: args.active_port_20 || file.active_port_20.unwrap_or(false),
        login_identity: false,
        tls,
        engine: Arc::new(engine),
        command_line: Vec::new(),
        hooks,
        auth_program,
        auth_timeout,
    })
}

/// The hooks of the `[hooks]` table with the `--hook EVENT=PROGRAM` flags
/// over them, and their time limit.
fn hook_config(
    flags: &[String],
    table: Option<&std::collections::BTreeMap<String, String>>,
    timeout: Option<u64>,
) -> Result<HookConfig, ConfigError> {
    let timeout = match timeout {
        None => crate::hooks::DEFAULT_TIMEOUT,
        Some(0) => {
            return Err(ConfigError::Invalid {
                setting: "--hook-timeout",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        Some(secs) => Duration::from_secs(secs),
    };
    let mut config = HookConfig::new(timeout);
    let mut add = |setting: &'static str, event: &str, program: &str| {
        let invalid = |reason| ConfigError::Invalid {
            setting,
            value: format!("{event}={program}"),
            reason,
        };
        let event: HookEvent = event.trim().parse().map_err(|_| {
            invalid(
                "unknown event (login, logout, upload, download, delete, rename, mkdir, rmdir, \
                 pre-upload, pre-delete)",
            )
        })?;
        let program: Program = program
            .parse()
            .map_err(|e: ProgramError| invalid(e.reason()))?;
        config.set(event, program);
        Ok(())
    };
    for (event, program) in table.into_iter().flatten() {
        add("hooks", event, program)?;
    }
    let mut given = Vec::new();
    for flag in flags {
        let Some((event, program)) = flag.split_once('=') else {
            return Err(ConfigError::Invalid {
                setting: "--hook",
                value: flag.clone(),
                reason: "expected EVENT=PROGRAM",
            });
        };
        if given.contains(&event.trim()) {
            return Err(ConfigError::Invalid {
                setting: "--hook",
                value: flag.clone(),
                reason: "this event already has a --hook",
            });
        }
        given.push(event.trim());
        add("--hook", event, program)?;
    }
    Ok(config)
}

/// Reads one line from `r` and removes its line end.
fn read_password_line(r: &mut impl BufRead) -> Result<String, ConfigError> {
    let mut line = String::new();
    r.read_line(&mut line).map_err(ConfigError::Stdin)?;
    if line.ends_with('\n') {
        line.pop();
        if line.ends_with('\r') {
            line.pop();
        }
    }
    Ok(line)
}

/// Turns terminal echo off on standard input until dropped.
struct NoEcho {
    saved: Option<rustix::termios::Termios>,
}

impl NoEcho {
    fn new() -> Self {
        let stdin = io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok();
        if let Some(saved) = &saved {
            let mut quiet = saved.clone();
            quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
            let _ =
                rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &quiet);
        }
        NoEcho { saved }
    }
}

impl Drop for NoEcho {
    fn drop(&mut self) {
        if let Some(saved) = &self.saved {
            let _ = rustix::termios::tcsetattr(
                io::stdin(),
                rustix::termios::OptionalActions::Now,
                saved,
            );
        }
    }
}

/// Prompts on standard error and reads a line from the terminal without
/// echo.
fn prompt_hidden(prompt: &str) -> Result<String, ConfigError> {
    let mut err = io::stderr();
    let _ = write!(err, "{prompt}");
    let _ = err.flush();
    let line = {
        let _quiet = NoEcho::new();
        read_password_line(&mut io::stdin().lock())
    };
    let _ = writeln!(err);
    line
}

/// `PROG hash-password`: reads a password and returns its argon2id PHC
/// hash for the `password` key of the users file.
///
/// From a pipe, the password is the first line of standard input (its line
/// end removed, nothing else). From a terminal, it is asked for twice on
/// standard error with echo off, and both must match. An empty password is
/// refused.
pub fn hash_password_from_stdin() -> Result<String, ConfigError> {
    let password = if io::stdin().is_terminal() {
        let first = prompt_hidden("Password: ")?;
        let again = prompt_hidden("Again: ")?;
        if first != again {
            return Err(ConfigError::PasswordMismatch);
        }
        first
    } else {
        read_password_line(&mut io::stdin().lock())?
    };
    if password.is_empty() {
        return Err(ConfigError::EmptyPassword);
    }
    crate::users::hash_password(&password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ftp_proto::AuthError;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A fresh folder under the system's temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let p = std::env::temp_dir().join(format!(
                "ftp-host-cli-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&p).unwrap();
            TempDir(std::fs::canonicalize(&p).unwrap())
        }
        fn path(&self) -> &Path {
            &self.0
        }
        fn s(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn serve(args: &[&str]) -> Result<ServerConfig, ConfigError> {
        match parse_args(std::iter::once("ftpd").chain(args.iter().copied()))? {
            Invocation::Serve(c) => Ok(c),
            Invocation::HashPassword => panic!("unexpected hash-password"),
        }
    }

    /// A valid, cheap argon2id hash (of "pw").
    fn cheap_hash() -> String {
        use argon2::password_hash::{PasswordHasher, SaltString};
        let params = argon2::Params::new(8, 1, 1, None).unwrap();
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password(
                b"pw",
                &SaltString::from_b64("c29tZXNhbHRzb21lc2FsdA").unwrap(),
            )
            .unwrap()
            .to_string()
    }

    #[test]
    fn hooks_come_from_the_table_and_the_flags() {
        let dir = TempDir::new();
        let conf = dir.path().join("ftpd.toml");
        std::fs::write(
            &conf,
            "hook_timeout = 5\nauth_program = \"/bin/auth -x\"\n[hooks]\nupload = \"/bin/up a\"\npre-delete = \"/bin/pre\"\n",
        )
        .unwrap();
        let c = serve(&[
            "--config",
            conf.to_str().unwrap(),
            "--hook",
            "upload=/bin/up2",
            "--hook=login=/bin/in  x  y",
            dir.s(),
        ])
        .unwrap();
        use crate::hooks::HookEvent;
        let prog = |e| c.hooks.get(e).map(|p: &Program| p.to_string());
        assert_eq!(prog(HookEvent::Upload).as_deref(), Some("/bin/up2"));
        assert_eq!(prog(HookEvent::PreDelete).as_deref(), Some("/bin/pre"));
        assert_eq!(prog(HookEvent::Login).as_deref(), Some("/bin/in x y"));
        assert_eq!(prog(HookEvent::Logout), None);
        assert_eq!(c.hooks.timeout, Duration::from_secs(5));
        assert!(c.engine.log_events, "hooks need the engine's events");
        assert_eq!(
            c.auth_program.as_ref().map(ToString::to_string).as_deref(),
            Some("/bin/auth -x")
        );
        assert_eq!(c.auth_timeout, crate::auth_program::DEFAULT_TIMEOUT);
        // With an auth program and no -a, nobody logs in anonymously.
        assert!(!c.engine.anonymous);
        // Under inetd, the program answers instead of the system's accounts.
        let c = serve(&["--inetd", "--auth-program", "/bin/auth", dir.s()]).unwrap();
        assert!(c.system_users.is_none() && c.auth_program.is_some());
        let c = serve(&[dir.s()]).unwrap();
        assert!(c.hooks.is_empty() && c.auth_program.is_none());
        assert_eq!(c.hooks.timeout, crate::hooks::DEFAULT_TIMEOUT);
        for bad in [
            &["--hook", "upload"][..],
            &["--hook", "uploaded=/bin/x"],
            &["--hook", "upload=bin/x"],
            &["--hook", "upload="],
            &["--hook", "upload=/bin/x", "--hook", "upload=/bin/y"],
            &["--hook-timeout", "0"],
            &["--auth-program", "auth"],
            &["--auth-timeout", "0"],
            &["--auth-program", "/bin/auth", "-A"],
            &["--auth-program", "/bin/auth", "--system-users"],
        ] {
            let mut args = bad.to_vec();
            args.push(dir.s());
            assert!(serve(&args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn defaults() {
        let dir = TempDir::new();
        let c = serve(&[dir.s()]).unwrap();
        assert_eq!(c.root, dir.path());
        assert_eq!(c.listen, vec![DEFAULT_LISTEN]);
        assert!(!c.inetd);
        assert_eq!(c.threads, 1);
        assert!(c.users.is_none());
        assert_eq!(c.pasv_ports, None);
        assert_eq!(c.max_clients, limits::default_max_clients());
        assert!((1..=limits::DEFAULT_MAX_CLIENTS).contains(&c.max_clients));
        assert_eq!(
            c.max_per_ip,
            Some((DEFAULT_MAX_PER_IP, TOO_MANY_FROM_ADDRESS.to_string()))
        );
        assert_eq!((c.verbosity, c.syslog), (0, false));
        assert_eq!(c.xferlog, None);
        assert_eq!(c.shutdown_grace, Duration::from_secs(10));
        assert_eq!((c.download_rate, c.upload_rate), (0, 0), "unlimited");
        assert_eq!(c.anonymous_user, None);
        assert!(!c.active_port_20);
        let e = &c.engine;
        assert!(e.anonymous && !e.no_login && !e.anonymous_write);
        assert_eq!(e.idle_timeout, Some(Duration::from_secs(120)));
        assert_eq!(e.session_timeout, Some(Duration::from_secs(3600)));
        assert_eq!(e.login_timeout, Some(Duration::from_secs(60)));
        assert_eq!(e.greeting, "Service ready.");
        assert!(!e.log_events && !e.allow_foreign_active);
        assert_eq!(e.pasv_address, None);
    }

    #[test]
    fn busybox_flags() {
        let dir = TempDir::new();
        let c = serve(&["-wA", "-vv", "-S", "-t", "0", "-T", "60", dir.s()]).unwrap();
        let e = &c.engine;
        assert!(e.no_login && e.anonymous_write && !e.anonymous);
        assert_eq!(e.idle_timeout, None);
        assert_eq!(e.session_timeout, Some(Duration::from_secs(60)));
        assert_eq!((c.verbosity, c.syslog), (2, true));
        assert!(e.log_events);
        let c = serve(&["-a", "nobody", dir.s()]).unwrap();
        assert_eq!(c.anonymous_user.as_deref(), Some("nobody"));
        assert!(c.engine.anonymous);
    }

    #[test]
    fn long_options() {
        let dir = TempDir::new();
        let c = serve(&[
            "-l",
            "0.0.0.0:21",
            "--listen=[::1]:2121",
            "-l",
            "0.0.0.0:21",
            "--pasv-ports",
            "50000-50010",
            "--pasv-address",
            "203.0.113.7",
            "--max-clients",
            "5",
            "--max-per-ip",
            "2:Slow down: please.",
            "--threads",
            "3",
            "--password-checks",
            "2",
            "--xferlog",
            "xfer.log",
            "--allow-foreign-port",
            "--active-port-20",
            "--login-fail-delay",
            "250",
            "--max-login-attempts",
            "7",
            "--shutdown-grace",
            "0",
            "--login-timeout",
            "7",
            "--download-rate",
            "1000",
            "--upload-rate",
            "2000",
            dir.s(),
        ])
        .unwrap();
        assert_eq!(c.engine.login_timeout, Some(Duration::from_secs(7)));
        assert_eq!(
            c.listen,
            vec!["0.0.0.0:21".parse().unwrap(), "[::1]:2121".parse().unwrap()]
        );
        assert_eq!(c.pasv_ports, Some(50000..=50010));
        assert_eq!(c.engine.pasv_address, Some(Ipv4Addr::new(203, 0, 113, 7)));
        assert_eq!(c.max_clients, 5);
        assert_eq!(c.max_per_ip, Some((2, "Slow down: please.".to_string())));
        assert_eq!((c.threads, c.password_checks), (3, 2));
        let xferlog = c.xferlog.clone().unwrap();
        assert!(xferlog.is_absolute() && xferlog.ends_with("xfer.log"));
        assert!(c.engine.log_events, "xferlog needs events");
        assert!(c.engine.allow_foreign_active);
        assert!(c.active_port_20);
        assert_eq!(c.engine.login_fail_delay, Duration::from_millis(250));
        assert_eq!(c.engine.max_login_attempts, 7);
        assert_eq!(c.shutdown_grace, Duration::ZERO);
        assert_eq!((c.download_rate, c.upload_rate), (1000, 2000));
        assert_eq!(c.warnings().len(), 1, "{:?}", c.warnings());
        let c = serve(&["--pasv-ports", "1000-1010", dir.s()]).unwrap();
        assert_eq!(
            c.warnings(),
            [
                "passive ports 1000-1010 include ports below 1024, which may clash with system services"
            ]
        );
        let c = serve(&["--max-per-ip", "4", "--threads", "0", dir.s()]).unwrap();
        assert!(c.warnings().is_empty());
        assert_eq!(c.max_per_ip, Some((4, TOO_MANY_FROM_ADDRESS.to_string())));
        assert!(c.threads >= 1);
        // Unset and 0 both mean one check per CPU.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(c.password_checks, cpus);
        let c = serve(&["--password-checks", "0", dir.s()]).unwrap();
        assert_eq!(c.password_checks, cpus);
        assert_eq!(
            serve(&["--max-per-ip", "0", dir.s()]).unwrap().max_per_ip,
            None
        );
        let c = serve(&["--max-per-ip", "0", "--max-clients", "0", dir.s()]).unwrap();
        assert_eq!((c.max_per_ip, c.max_clients), (None, 0), "0 = no limit");
        let c = serve(&["--login-timeout", "0", dir.s()]).unwrap();
        assert_eq!(c.engine.login_timeout, None);
    }

    #[test]
    fn bad_root_names_path_and_os_error() {
        let dir = TempDir::new();
        let missing = dir.path().join("nope");
        let err = serve(&[missing.to_str().unwrap()]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Root { source, .. } if source.kind() == io::ErrorKind::NotFound)
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with(&format!("cannot serve {}: ", missing.display())),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let err = serve(&[file.to_str().unwrap()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot serve {}: not a directory", file.display())
        );
    }

    #[test]
    fn proxy_sources_and_a_pasv_host_name() {
        let dir = TempDir::new();
        let c = serve(&[
            "--proxy-from",
            "127.0.0.1,10.0.0.0/8",
            "--pasv-address",
            "localhost",
            dir.s(),
        ])
        .unwrap();
        let proxies = c.proxy_from.clone().expect("proxy sources");
        assert!(proxies.contains("10.1.2.3".parse().unwrap()));
        assert!(!proxies.contains("127.0.0.2".parse().unwrap()));
        assert_eq!(c.pasv_host.as_deref(), Some("localhost"));
        assert!(c.engine.pasv_address.is_some_and(|ip| ip.is_loopback()));
        let c = serve(&["--pasv-address", "192.0.2.1", dir.s()]).unwrap();
        assert_eq!(c.pasv_host, None);
        assert_eq!(c.proxy_from, None);
        let err = serve(&["--pasv-address", "no-such-host.invalid", dir.s()]).unwrap_err();
        assert!(
            matches!(err, ConfigError::Resolve { .. }),
            "a name that does not resolve at start: {err:?}"
        );
        assert!(err.to_string().contains("no-such-host.invalid"), "{err}");
        let err = serve(&["--inetd", "-A", "--proxy-from", "127.0.0.1", dir.s()]).unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)), "{err:?}");
    }

    #[test]
    fn usage_errors_are_clap_errors() {
        let dir = TempDir::new();
        for args in [
            &["-l", "localhost", dir.s()][..],
            &["--pasv-ports", "2000-1000"],
            &["--pasv-ports", "0-10"],
            &["--pasv-address", "::1"],
            &["--pasv-address", "not a host"],
            &["--proxy-from", "10.0.0.1/8"],
            &["--proxy-from", "haproxy"],
            &["--max-per-ip", "x:msg"],
            &["-t", "-1"],
            &["--bogus"],
        ] {
            match serve(args) {
                Err(ConfigError::Cli(e)) => assert_eq!(e.exit_code(), 2, "{args:?}"),
                other => panic!("{args:?}: {other:?}"),
            }
        }
        let err = serve(&["--pasv-ports", "2000-1000"]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("2000-1000") && msg.contains("low port is above"),
            "{msg}"
        );
        assert!(!msg.contains('\n') && !msg.starts_with("error:"));
        match serve(&["--help"]) {
            Err(ConfigError::Cli(e)) => {
                assert_eq!(e.exit_code(), 0);
                let help = e.render().to_string();
                assert!(help.contains("--max-per-ip <N[:MSG]>"), "{help}");
                assert!(help.contains("hash-password"), "{help}");
            }
            other => panic!("{other:?}"),
        }
        match parse_args(["/usr/sbin/ftp-mio", "--version"]) {
            Err(ConfigError::Cli(e)) => {
                assert_eq!(e.exit_code(), 0);
                assert!(e.render().to_string().starts_with("ftp-mio "));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn hash_password_subcommand() {
        assert!(matches!(
            parse_args(["ftpd", "hash-password"]),
            Ok(Invocation::HashPassword)
        ));
        // After an option, the word is the folder to serve.
        assert!(matches!(
            parse_args(["ftpd", "-w", "hash-password"]),
            Err(ConfigError::Root { path, .. }) if path == Path::new("hash-password")
        ));
    }

    #[test]
    fn conflicts() {
        let dir = TempDir::new();
        let err = serve(&["--inetd", "-l", "127.0.0.1:21", dir.s()]).unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)));
        let c = serve(&["--inetd", dir.s()]).unwrap();
        assert!(c.inetd);
        let users = dir.path().join("users.toml");
        std::fs::write(&users, "").unwrap();
        let err = serve(&["-A", "--users", users.to_str().unwrap(), dir.s()]).unwrap_err();
        assert!(matches!(err, ConfigError::Conflict(_)));
        let err = serve(&["--max-login-attempts", "0", dir.s()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid --max-login-attempts '0': must be at least 1"
        );
        let err = serve(&["--max-per-ip", "1:a\rb", dir.s()]).unwrap_err();
        assert!(matches!(err, ConfigError::Invalid { .. }), "{err:?}");
    }

    #[test]
    fn users_file_turns_anonymous_off_unless_a() {
        let dir = TempDir::new();
        std::fs::create_dir(dir.path().join("bob")).unwrap();
        let users = dir.path().join("users.toml");
        std::fs::write(
            &users,
            format!(
                "[[user]]\nname = \"bob\"\npassword = \"{}\"\nhome = \"bob\"\n",
                cheap_hash()
            ),
        )
        .unwrap();
        let u = users.to_str().unwrap();
        let c = serve(&["--users", u, dir.s()]).unwrap();
        assert!(!c.engine.anonymous);
        assert_eq!(
            c.users.as_ref().unwrap().names().collect::<Vec<_>>(),
            ["bob"]
        );
        let c = serve(&["--users", u, "-a", "ftp", dir.s()]).unwrap();
        assert!(c.engine.anonymous);
        // A home that does not exist under the root is an error.
        std::fs::remove_dir(dir.path().join("bob")).unwrap();
        let err = serve(&["--users", u, dir.s()]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Home { name, .. } if name == "bob"),
            "{err:?}"
        );
        assert!(
            err.to_string().starts_with("home folder of user 'bob'"),
            "{err}"
        );
    }

    /// Fake account files in `dir` and the hidden flags that name them.
    fn system_files(dir: &TempDir) -> Vec<String> {
        let p = |n: &str| dir.path().join(n);
        std::fs::write(
            p("passwd"),
            "alice:x:1000:1000::/home/alice:/bin/sh\nftp:x:50:50::/srv:/bin/false\n",
        )
        .unwrap();
        // md5-crypt of "hunter2", from tests/data/crypt-vectors.txt.
        std::fs::write(
            p("shadow"),
            "alice:$1$c5eB66kt$nr9i3dra9jmv7nxu0EEBG.:1::::::\n",
        )
        .unwrap();
        std::fs::write(p("group"), "staff:x:20:alice,ftp\n").unwrap();
        [
            "--passwd-file",
            "passwd",
            "--shadow-file",
            "shadow",
            "--group-file",
            "group",
        ]
        .iter()
        .map(|a| match *a {
            "passwd" | "shadow" | "group" => p(a).to_str().unwrap().to_string(),
            flag => flag.to_string(),
        })
        .collect()
    }

    fn serve_with(extra: &[String], args: &[&str]) -> Result<ServerConfig, ConfigError> {
        let mut all: Vec<&str> = extra.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        serve(&all)
    }

    #[test]
    fn system_accounts_where_busybox_uses_them() {
        let dir = TempDir::new();
        let sys = system_files(&dir);
        // --inetd without a users file: the system's accounts, no anonymous.
        let c = serve_with(&sys, &["--inetd", "-w", dir.s()]).unwrap();
        let users = c.system_users.clone().expect("system accounts");
        assert!(!c.engine.anonymous && c.anonymous_account.is_none());
        let alice = users.verify("alice", "hunter2").unwrap();
        assert_eq!(
            (alice.uid, alice.gid, alice.groups),
            (1000, 1000, vec![1000, 20])
        );
        assert!(!c.login_identity && !c.engine.authenticate_anonymous);
        // -a USER: anonymous allowed, as that account.
        let mut c = serve_with(&sys, &["--inetd", "-a", "ftp", dir.s()]).unwrap();
        assert!(c.engine.anonymous);
        assert_eq!(c.anonymous_account.as_ref().map(|a| a.uid), Some(50));
        c.enable_login_identity();
        assert!(c.login_identity && c.engine.authenticate_anonymous);
        // Standalone: only with --system-users.
        let c = serve_with(&sys, &[dir.s()]).unwrap();
        assert!(c.system_users.is_none() && c.engine.anonymous);
        let c = serve_with(&sys, &["--system-users", dir.s()]).unwrap();
        assert!(c.system_users.is_some() && !c.engine.anonymous);
        // -A and a users file keep their meaning under --inetd.
        let c = serve_with(&sys, &["--inetd", "-A", dir.s()]).unwrap();
        assert!(c.system_users.is_none() && c.engine.no_login);
        let c = serve_with(&sys, &["--inetd", "-A", "-a", "nobody-here", dir.s()]).unwrap();
        assert!(c.anonymous_account.is_none(), "-a does not matter with -A");
        let users_file = dir.path().join("users.toml");
        std::fs::write(&users_file, "").unwrap();
        let u = users_file.to_str().unwrap();
        let c = serve_with(&sys, &["--inetd", "--users", u, "-a", "ftp", dir.s()]).unwrap();
        assert!(c.system_users.is_none() && c.users.is_some());
        assert_eq!(c.anonymous_account.as_ref().map(|a| a.gid), Some(50));
        // An -a that names nobody is an error where it matters...
        let err = serve_with(&sys, &["--inetd", "-a", "nobody-here", dir.s()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid -a 'nobody-here': no such system account"
        );
        // ...and only enables anonymous login where it does not.
        let c = serve_with(&sys, &["--users", u, "-a", "nobody-here", dir.s()]).unwrap();
        assert!(c.engine.anonymous && c.anonymous_account.is_none());
    }

    #[test]
    fn system_account_options_and_conflicts() {
        let dir = TempDir::new();
        let sys = system_files(&dir);
        let listed = dir.path().join("ftpusers");
        std::fs::write(&listed, "alice\n").unwrap();
        let l = listed.to_str().unwrap();
        let c = serve_with(&sys, &["--inetd", "--ftpusers", l, dir.s()]).unwrap();
        let users = c.system_users.unwrap();
        assert_eq!(users.verify("alice", "hunter2"), Err(AuthError::Denied));
        let missing = dir.path().join("no-ftpusers");
        let err = serve_with(
            &sys,
            &["--inetd", "--ftpusers", missing.to_str().unwrap(), dir.s()],
        )
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
        let users_file = dir.path().join("users.toml");
        std::fs::write(&users_file, "").unwrap();
        let u = users_file.to_str().unwrap();
        for args in [
            &["--system-users", "--users", u][..],
            &["--system-users", "-A"],
            &["--ftpusers", l],
            &["--inetd", "--users", u, "--ftpusers", l],
            &["--inetd", "--run-as", "root"],
        ] {
            let mut all = args.to_vec();
            all.push(dir.s());
            assert!(
                matches!(serve_with(&sys, &all), Err(ConfigError::Conflict(_))),
                "{args:?}"
            );
        }
        let c = serve(&["--run-as", "root:0", dir.s()]).unwrap();
        assert_eq!(c.run_as.map(|r| r.identity.uid), Some(0));
        let err = serve(&["--run-as", "no-such-user-here", dir.s()]).unwrap_err();
        assert_eq!(err.to_string(), "no such user 'no-such-user-here'");
        // The hidden test flags stay out of --help.
        match serve(&["--help"]) {
            Err(ConfigError::Cli(e)) => {
                let help = e.render().to_string();
                assert!(help.contains("--system-users") && help.contains("--run-as"));
                assert!(!help.contains("--passwd-file"), "{help}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pam_replaces_system_accounts_or_is_not_compiled_in() {
        let dir = TempDir::new();
        let sys = system_files(&dir);
        let listed = dir.path().join("ftpusers");
        std::fs::write(&listed, "root\n").unwrap();
        let l = listed.to_str().unwrap();
        let result = serve_with(&sys, &["--inetd", "--ftpusers", l, "--pam", "--", dir.s()]);
        if !cfg!(feature = "pam") {
            let err = result.unwrap_err().to_string();
            assert!(
                err.contains("PAM is not compiled into this build; build with --features pam"),
                "{err}"
            );
            return;
        }
        let c = result.unwrap();
        let pam = c.pam.clone().expect("PAM logins");
        assert_eq!(pam.service, DEFAULT_PAM_SERVICE);
        assert!(pam.refused.contains("root") && pam.refused.len() == 1);
        // PAM, not the built-in check, in --inetd mode; no anonymous login.
        assert!(c.system_users.is_none() && !c.engine.anonymous && !c.chroot_at_login);
        let c = serve_with(&sys, &["--pam", "vsftpd", "-a", "ftp", dir.s()]).unwrap();
        assert_eq!(c.pam.unwrap().service, "vsftpd");
        assert_eq!(c.anonymous_account.map(|a| a.uid), Some(50));
        assert!(c.engine.anonymous);
        let c = serve(&["--pam=ftp-x.1", dir.s()]).unwrap();
        assert_eq!(c.pam.unwrap().service, "ftp-x.1");
        // The configuration file's key.
        let cf = dir.path().join("c.toml");
        std::fs::write(&cf, "pam = \"login\"\n").unwrap();
        let c = serve(&["--config", cf.to_str().unwrap(), dir.s()]).unwrap();
        assert_eq!(c.pam.unwrap().service, "login");
        // A folder where the service goes is not taken for a service.
        let err = serve(&["--pam", dir.s()]).unwrap_err().to_string();
        assert!(err.contains("--pam=SERVICE"), "{err}");
        let users_file = dir.path().join("users.toml");
        std::fs::write(&users_file, "").unwrap();
        let u = users_file.to_str().unwrap();
        for args in [
            &["--pam", "ftp", "--users", u][..],
            &["--pam", "ftp", "--system-users"],
            &["--pam", "ftp", "-A"],
        ] {
            let mut all = args.to_vec();
            all.push(dir.s());
            assert!(
                matches!(serve_with(&sys, &all), Err(ConfigError::Conflict(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn storage_table_and_flags_serve_a_bucket() {
        let dir = TempDir::new();
        let conf = dir.path().join("ftpd.toml");
        std::fs::write(
            &conf,
            "[storage]\nurl = \"s3://files/ftp/\"\ns3_region = \"eu-west-1\"\n\
             access_key_id = \"AK\"\nsecret_access_key = \"SK\"\n",
        )
        .unwrap();
        let cf = conf.to_str().unwrap();
        let result = serve(&["--config", cf, "--s3-endpoint", "http://127.0.0.1:9"]);
        if !cfg!(feature = "s3") {
            let err = result.unwrap_err().to_string();
            assert!(err.contains("not compiled"), "{err}");
            return;
        }
        let c = result.unwrap();
        let s3 = c.s3.expect("a bucket");
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("files", "ftp"));
        assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9"));
        assert_eq!(s3.region, "eu-west-1");
        assert_eq!(s3.access_key_id, "AK");
        assert!(
            !format!("{s3:?}").contains("SK"),
            "the secret is never printed"
        );
        // What an object store cannot do is refused by the engine.
        assert_eq!(c.engine.storage, ftp_proto::StorageCaps::OBJECT_STORE);
        // A bad URL names the problem.
        let err = serve(&["--config", cf, "--storage", "s3://"]).unwrap_err();
        assert!(err.to_string().contains("bucket"), "{err}");
        let err = serve(&["--config", cf, "--storage", "http://x"]).unwrap_err();
        assert!(err.to_string().contains("s3://BUCKET"), "{err}");
        // Without a bucket, the local folder as before.
        let c = serve(&[dir.s()]).unwrap();
        assert!(c.s3.is_none());
        assert_eq!(c.engine.storage, ftp_proto::StorageCaps::ALL);
    }

    #[test]
    fn config_file_then_flags() {
        let dir = TempDir::new();
        std::fs::create_dir(dir.path().join("pub")).unwrap();
        let conf = dir.path().join("ftpd.toml");
        std::fs::write(
            &conf,
            "root = \"pub\"\nlisten = [\"127.0.0.1:2100\"]\nwrite = true\nidle_timeout = 30\n\
             max_per_ip = 3\nmax_per_ip_message = \"Busy.\"\nverbose = 1\nthreads = 2\n\
             download_rate = 5000\nupload_rate = 6000\n",
        )
        .unwrap();
        let cf = conf.to_str().unwrap();
        let c = serve(&["--config", cf]).unwrap();
        assert_eq!(c.root, dir.path().join("pub"));
        assert_eq!(c.listen, vec!["127.0.0.1:2100".parse().unwrap()]);
        assert!(c.engine.anonymous_write);
        assert_eq!(c.engine.idle_timeout, Some(Duration::from_secs(30)));
        assert_eq!(c.max_per_ip, Some((3, "Busy.".into())));
        assert_eq!((c.verbosity, c.threads), (1, 2));
        assert_eq!((c.download_rate, c.upload_rate), (5000, 6000));
        let c = serve(&[
            "--config",
            cf,
            "--download-rate",
            "0",
            "-t",
            "0",
            "-l",
            "[::1]:21",
            "--max-per-ip",
            "9",
            "-vv",
            dir.s(),
        ])
        .unwrap();
        assert_eq!(c.root, dir.path());
        assert_eq!(c.listen, vec!["[::1]:21".parse().unwrap()]);
        assert_eq!(c.engine.idle_timeout, None);
        assert_eq!(c.max_per_ip, Some((9, "Busy.".into())), "file message kept");
        assert_eq!(c.verbosity, 2);
        assert_eq!((c.download_rate, c.upload_rate), (0, 6000), "0 = unlimited");
        // A message without a limit applies to the default limit; the
        // login deadline comes from the file unless a flag replaces it.
        std::fs::write(&conf, "max_per_ip_message = \"Busy.\"\nlogin_timeout = 5\n").unwrap();
        let c = serve(&["--config", cf, dir.s()]).unwrap();
        assert_eq!(c.max_per_ip, Some((DEFAULT_MAX_PER_IP, "Busy.".into())));
        assert_eq!(c.engine.login_timeout, Some(Duration::from_secs(5)));
        let c = serve(&["--config", cf, "--login-timeout", "0", dir.s()]).unwrap();
        assert_eq!(c.engine.login_timeout, None);
        std::fs::write(&conf, "writ = true\n").unwrap();
        let err = serve(&["--config", cf]).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{cf}:1: unknown field `writ`")),
            "{err}"
        );
    }

    #[test]
    fn password_lines() {
        let mut r = io::Cursor::new(b"s3cret word\r\nnext\n".to_vec());
        assert_eq!(read_password_line(&mut r).unwrap(), "s3cret word");
        let mut r = io::Cursor::new(b"last".to_vec());
        assert_eq!(read_password_line(&mut r).unwrap(), "last");
        let mut r = io::Cursor::new(b"\xff\n".to_vec());
        assert!(matches!(
            read_password_line(&mut r),
            Err(ConfigError::Stdin(_))
        ));
    }

    #[test]
    fn prog_names() {
        assert_eq!(prog_name_of(Some("/usr/bin/ftp-smol".as_ref())), "ftp-smol");
        assert_eq!(prog_name_of(None), "ftpd");
        assert_eq!(prog_name_of(Some("".as_ref())), "ftpd");
    }
}
