//! The TOML configuration file (`--config FILE`) and the error type shared
//! by everything that reads the server's configuration.
//!
//! The file holds the same settings as the command line, under the long
//! flag names with `-` written as `_`:
//!
//! ```toml
//! root = "/srv/ftp"                 # DIR
//! listen = ["0.0.0.0:21", "[::]:21"]
//! write = false                     # -w
//! no_login = false                  # -A
//! anonymous_user = "ftp"            # -a USER
//! idle_timeout = 120                # -t SEC, 0 = off
//! session_timeout = 3600            # -T SEC, 0 = off
//! login_timeout = 60                # --login-timeout SEC, 0 = off
//! users = "/etc/ftpd/users.toml"
//! system_users = false              # --system-users
//! ftpusers = "/etc/ftpusers"        # --ftpusers FILE
//! pam = "ftp"                       # --pam SERVICE (feature `pam`)
//! run_as = "ftp:ftp"                # --run-as USER[:GROUP]
//! pasv_ports = "50000-50100"
//! pasv_address = "203.0.113.7"     # or a host name, resolved every minute
//! proxy_from = ["10.0.0.10", "10.1.0.0/16"]   # connections from these
//!                                   # begin with a PROXY header
//! max_clients = 2000                # 0 = no limit; default 2000, fewer
//!                                   # with a low descriptor limit
//! max_per_ip = 50                   # 0 = no limit; IPv6 counts per /64
//! max_per_ip_message = "Too many connections from your address."
//! ban_after = 5                     # failed logins that ban an address; 0 = off
//! ban_window = 600                  # seconds those failures fall in
//! ban_time = 900                    # first ban; doubles per repeat, up to a day
//! ban_exempt = ["10.0.0.0/8"]       # never banned
//! threads = 1                       # 0 = one per CPU
//! password_checks = 0               # at once; 0 = one per CPU
//! xferlog = "/var/log/xferlog"
//! verbose = 1                       # like -v (2 = -vv)
//! syslog = false                    # -S
//! allow_foreign_port = false
//! active_port_20 = false            # active data from port 20 (--active-port-20)
//! login_fail_delay = 1000           # milliseconds
//! max_login_attempts = 3
//! hash_max_size = 4294967296         # HASH/XCRC/... at most this many bytes
//! no_hash = false                   # true: HASH and XCRC/... answer 502
//! shutdown_grace = 10               # seconds
//! download_rate = 0                 # bytes/s per download, 0 = unlimited
//! upload_rate = 0                   # bytes/s per upload, 0 = unlimited
//! hook_timeout = 30                 # seconds a hook may run
//! auth_program = "/usr/local/libexec/ftp-auth"   # --auth-program
//! auth_timeout = 10                 # seconds it may run
//!
//! [hooks]                           # --hook EVENT=PROGRAM
//! upload = "/usr/local/libexec/ftp-scan --quiet"
//! pre-delete = "/usr/local/libexec/ftp-may-delete"
//!
//! [tls]                             # FTPS: see ftp_host::tls::TlsFile
//! cert = "/etc/ftpd/cert.pem"
//! key = "/etc/ftpd/key.pem"
//! ```
//!
//! Unknown keys are errors, so a typo does not silently fall back to a
//! default. Relative paths (`root`, `users`, `ftpusers`, `xferlog`) are taken relative
//! to the folder that holds the configuration file, not to the current
//! directory, so a daemon started by an init system finds them.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::pasv_address::PasvAddress;
use crate::proxy::ProxySources;

/// Why the configuration could not be used.
///
/// [`Display`](fmt::Display) gives one line that names the problem (and the
/// file and line where there is one), ready to be printed after the
/// program's name. [`ConfigError::Cli`] is special: it also stands for
/// `--help` and `--version`, and the daemon should hand it to
/// [`ConfigError::exit`] (or call `err.exit()` on the inner clap error),
/// which prints it the way clap does and exits with clap's exit code.
#[derive(Debug)]
pub enum ConfigError {
    /// The command line could not be parsed, or `--help` / `--version` was
    /// asked for. Handle with [`clap::Error::exit`].
    Cli(clap::Error),
    /// The folder to serve cannot be used.
    Root {
        /// The folder as given.
        path: PathBuf,
        /// What the operating system said (`NotADirectory` if it is a file).
        source: io::Error,
    },
    /// A configuration or users file could not be read.
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A configuration or users file is not valid TOML, has an unknown key
    /// or a value of the wrong kind.
    Parse {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The line (from 1), when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// An entry of the users file is not acceptable.
    User {
        /// The users file, when the text came from one.
        path: Option<PathBuf>,
        /// The line (from 1) of the offending value, when known.
        line: Option<usize>,
        /// The user's name as written.
        name: String,
        /// What is wrong with the entry.
        problem: UserProblem,
    },
    /// A user's `home` is not a folder under the served root.
    Home {
        /// The user.
        name: String,
        /// The full path that was checked.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A setting has a value that cannot be used.
    Invalid {
        /// The setting, as its command-line flag or file key.
        setting: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Two settings contradict each other.
    Conflict(&'static str),
    /// A host name given in a setting does not resolve.
    Resolve {
        /// The setting, as its command-line flag.
        setting: &'static str,
        /// The name.
        host: String,
        /// What the resolver said.
        source: io::Error,
    },
    /// The storage back-end could not be opened (the bucket does not
    /// answer, say).
    Storage(String),
    /// `hash-password` could not read the password from standard input.
    Stdin(io::Error),
    /// The `--metrics` endpoint's thread could not be started.
    Metrics(io::Error),
    /// `hash-password` read an empty password.
    EmptyPassword,
    /// `hash-password` on a terminal: the two entries differ.
    PasswordMismatch,
    /// Hashing a password failed.
    Hash(argon2::password_hash::Error),
    /// A listening socket could not be bound (produced by the daemons).
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said (often "Address in use").
        source: io::Error,
    },
    /// The transfer log could not be opened (produced by the daemons).
    Xferlog {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The TLS certificate or key cannot be used (or TLS is not compiled in).
    Tls(crate::tls::TlsError),
    /// The process could not chroot or change its identity, or `--run-as`
    /// names no user or group.
    Identity(crate::identity::IdentityError),
    /// The sockets passed by the service manager (systemd socket
    /// activation) cannot be served.
    Activation(crate::systemd::ActivationError),
}

/// What is wrong with an entry of the users file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserProblem {
    /// The name is empty or holds control characters.
    BadName,
    /// The same name appears twice.
    Duplicate,
    /// `password` is not a PHC hash string (plain text, or damaged).
    NotPhc(argon2::password_hash::Error),
    /// `password` is a PHC string of another algorithm than argon2.
    NotArgon2(String),
    /// `password` is an argon2 PHC string with parameters argon2 refuses.
    BadParams(argon2::password_hash::Error),
    /// `home` is an absolute path.
    HomeAbsolute,
    /// `home` has a `..` component.
    HomeParent,
    /// An entry of `allow_from` or `deny_from` is not a network.
    BadNetwork(crate::proxy::SourcesError),
}

impl fmt::Display for UserProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserProblem::BadNetwork(e) => write!(f, "allow_from/deny_from: {e}"),
            UserProblem::BadName => {
                f.write_str("name must be non-empty and without control characters")
            }
            UserProblem::Duplicate => f.write_str("listed more than once"),
            UserProblem::NotPhc(e) => write!(
                f,
                "password is not an argon2 PHC hash string ({e}); make one with `hash-password`"
            ),
            UserProblem::NotArgon2(alg) => write!(
                f,
                "password hash uses algorithm '{alg}', only argon2id/argon2i/argon2d are supported"
            ),
            UserProblem::BadParams(e) => {
                write!(f, "password hash has unusable argon2 parameters ({e})")
            }
            UserProblem::HomeAbsolute => f.write_str(
                "home must be a folder relative to the served root, not an absolute path",
            ),
            UserProblem::HomeParent => f.write_str("home must not contain '..'"),
        }
    }
}

/// Writes `path:line: ` (or `what: ` when there is no path).
fn write_location(
    f: &mut fmt::Formatter<'_>,
    path: &Option<PathBuf>,
    line: &Option<usize>,
    what: &str,
) -> fmt::Result {
    match path {
        Some(p) => write!(f, "{}", p.display())?,
        None => f.write_str(what)?,
    }
    if let Some(line) = line {
        write!(f, ":{line}")?;
    }
    f.write_str(": ")
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Cli(e) => {
                // clap renders several lines (usage, hints); keep the first
                // meaningful one, without clap's own "error: " prefix.
                let text = e.render().to_string();
                let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                f.write_str(first.strip_prefix("error: ").unwrap_or(first))
            }
            ConfigError::Root { path, source } => {
                write!(f, "cannot serve {}: {source}", path.display())
            }
            ConfigError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            ConfigError::Parse {
                path,
                line,
                message,
            } => {
                write_location(f, path, line, "configuration")?;
                write_one_line(f, message)
            }
            ConfigError::User {
                path,
                line,
                name,
                problem,
            } => {
                write_location(f, path, line, "users file")?;
                write!(f, "user '{}': {problem}", name.escape_debug())
            }
            ConfigError::Home { name, path, source } => write!(
                f,
                "home folder of user '{}' ({}) is unusable: {source}",
                name.escape_debug(),
                path.display()
            ),
            ConfigError::Invalid {
                setting,
                value,
                reason,
            } => {
                write!(f, "invalid {setting} '{}': {reason}", value.escape_debug())
            }
            ConfigError::Conflict(what) => f.write_str(what),
            ConfigError::Resolve {
                setting,
                host,
                source,
            } => write!(f, "{setting} {host}: cannot resolve it: {source}"),
            ConfigError::Storage(what) => write!(f, "storage: {what}"),
            ConfigError::Stdin(e) => write!(f, "cannot read the password from standard input: {e}"),
            ConfigError::Metrics(e) => write!(f, "cannot start the metrics endpoint: {e}"),
            ConfigError::EmptyPassword => f.write_str("refusing to hash an empty password"),
            ConfigError::PasswordMismatch => f.write_str("the two passwords differ"),
            ConfigError::Hash(e) => write!(f, "cannot hash the password: {e}"),
            ConfigError::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            ConfigError::Xferlog { path, source } => {
                write!(f, "cannot open transfer log {}: {source}", path.display())
            }
            ConfigError::Tls(e) => write!(f, "TLS: {e}"),
            ConfigError::Identity(e) => write!(f, "{e}"),
            ConfigError::Activation(e) => write!(f, "{e}"),
        }
    }
}

/// Writes `text` with line breaks folded into spaces.
fn write_one_line(f: &mut fmt::Formatter<'_>, text: &str) -> fmt::Result {
    let mut first = true;
    for part in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !first {
            f.write_str(" ")?;
        }
        f.write_str(part)?;
        first = false;
    }
    Ok(())
}

impl std::error::Error for ConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfigError::Cli(e) => Some(e),
            ConfigError::Tls(e) => Some(e),
            ConfigError::Root { source, .. }
            | ConfigError::Read { source, .. }
            | ConfigError::Home { source, .. }
            | ConfigError::Bind { source, .. }
            | ConfigError::Xferlog { source, .. }
            | ConfigError::Resolve { source, .. }
            | ConfigError::Stdin(source) => Some(source),
            ConfigError::Identity(e) => Some(e),
            ConfigError::Activation(e) => Some(e),
            _ => None,
        }
    }
}

impl ConfigError {
    /// The process exit status for this error: clap's own for
    /// [`ConfigError::Cli`] (0 for `--help`/`--version`, 2 for usage
    /// errors), 1 for everything else.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConfigError::Cli(e) => e.exit_code(),
            _ => 1,
        }
    }

    /// Reports the error and ends the process: [`ConfigError::Cli`] is
    /// printed by clap (help and version on stdout, usage errors on stderr)
    /// and exits with clap's code; anything else is printed to stderr as
    /// `PROG: message` and exits with status 1.
    pub fn exit(&self, prog: &str) -> ! {
        if let ConfigError::Cli(e) = self {
            e.exit();
        }
        eprintln!("{prog}: {self}");
        std::process::exit(1)
    }

    /// A [`ConfigError::Parse`] built from a TOML error, with the line
    /// worked out from the error's byte span.
    pub(crate) fn from_toml(path: Option<&Path>, text: &str, err: &toml::de::Error) -> Self {
        ConfigError::Parse {
            path: path.map(Path::to_path_buf),
            line: err.span().map(|s| line_of(text, s.start)),
            message: err.message().to_string(),
        }
    }
}

/// The line number (from 1) of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// The contents of a configuration file. Every key is optional; a value
/// given on the command line replaces the file's.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Folder served as `/` (the `DIR` argument).
    pub root: Option<PathBuf>,
    /// Addresses to listen on (`--listen`).
    #[serde(default, deserialize_with = "de_listen")]
    pub listen: Option<Vec<SocketAddr>>,
    /// Allow anonymous and no-login sessions to write (`-w`).
    pub write: Option<bool>,
    /// No login required (`-A`).
    pub no_login: Option<bool>,
    /// Allow anonymous login, as this system account (`-a USER`).
    pub anonymous_user: Option<String>,
    /// Idle timeout in seconds, 0 = off (`-t`).
    pub idle_timeout: Option<u64>,
    /// Absolute session timeout in seconds, 0 = off (`-T`).
    pub session_timeout: Option<u64>,
    /// Seconds from connecting to a successful login, 0 = off
    /// (`--login-timeout`).
    pub login_timeout: Option<u64>,
    /// Users file (`--users`).
    pub users: Option<PathBuf>,
    /// Log in with the system's accounts in standalone mode
    /// (`--system-users`).
    pub system_users: Option<bool>,
    /// Names refused a login with a system account (`--ftpusers`).
    pub ftpusers: Option<PathBuf>,
    /// Check logins with the system's PAM stack, this service (`--pam`).
    pub pam: Option<String>,
    /// `USER[:GROUP]` a standalone daemon becomes after binding
    /// (`--run-as`).
    pub run_as: Option<String>,
    /// Passive port range, `"LO-HI"` (`--pasv-ports`).
    #[serde(default, deserialize_with = "de_pasv_ports")]
    pub pasv_ports: Option<RangeInclusive<u16>>,
    /// IPv4 address or host name announced in `227` replies
    /// (`--pasv-address`).
    #[serde(default, deserialize_with = "de_pasv_address")]
    pub pasv_address: Option<PasvAddress>,
    /// Networks whose connections begin with a PROXY header
    /// (`--proxy-from`).
    #[serde(default, deserialize_with = "de_proxy_from")]
    pub proxy_from: Option<ProxySources>,
    /// Most simultaneous sessions, 0 = no limit (`--max-clients`).
    pub max_clients: Option<usize>,
    /// Most simultaneous sessions from one address, 0 = no limit
    /// (`--max-per-ip N`).
    pub max_per_ip: Option<usize>,
    /// Text of the `421` reply beyond `max_per_ip` (`--max-per-ip N:MSG`).
    pub max_per_ip_message: Option<String>,
    /// Failed logins that ban an address, 0 = off (`--ban-after`).
    pub ban_after: Option<u32>,
    /// Seconds in which those failures fall (`--ban-window`).
    pub ban_window: Option<u64>,
    /// Seconds of a first ban (`--ban-time`).
    pub ban_time: Option<u64>,
    /// Networks never banned (`--ban-exempt`).
    pub ban_exempt: Option<Vec<String>>,
    /// Worker threads, 0 = one per CPU (`--threads`).
    pub threads: Option<usize>,
    /// Most password checks at once, 0 = one per CPU
    /// (`--password-checks`).
    pub password_checks: Option<usize>,
    /// wu-ftpd style transfer log (`--xferlog`).
    pub xferlog: Option<PathBuf>,
    /// The operator's HTTP endpoint (`--metrics`).
    pub metrics: Option<SocketAddr>,
    /// Log verbosity: 1 is `-v`, 2 is `-vv`.
    pub verbose: Option<u8>,
    /// Log to syslog (`-S`).
    pub syslog: Option<bool>,
    /// `text` or `json` (`--log-format`).
    pub log_format: Option<String>,
    /// Allow `PORT`/`EPRT` to other hosts than the client (FXP)
    /// (`--allow-foreign-port`).
    pub allow_foreign_port: Option<bool>,
    /// Active data connections from port 20 (`--active-port-20`).
    pub active_port_20: Option<bool>,
    /// Delay before answering a failed login, in milliseconds
    /// (`--login-fail-delay`).
    pub login_fail_delay: Option<u64>,
    /// Failed logins before the session is closed (`--max-login-attempts`).
    pub max_login_attempts: Option<u32>,
    /// Most bytes a digest covers (`--hash-max-size`).
    pub hash_max_size: Option<u64>,
    /// Digest commands off (`--no-hash`).
    pub no_hash: Option<bool>,
    /// Seconds running sessions get to finish at shutdown
    /// (`--shutdown-grace`).
    pub shutdown_grace: Option<u64>,
    /// Bytes per second of each download, 0 = unlimited
    /// (`--download-rate`).
    pub download_rate: Option<u64>,
    /// Bytes per second of each upload, 0 = unlimited (`--upload-rate`).
    pub upload_rate: Option<u64>,
    /// FTPS settings, the `[tls]` table (see [`crate::tls::TlsFile`]).
    pub tls: Option<crate::tls::TlsFile>,
    /// Event hooks, the `[hooks]` table: event name to `PROGRAM [ARG...]`
    /// (`--hook EVENT=PROGRAM`).
    pub hooks: Option<std::collections::BTreeMap<String, String>>,
    /// Seconds a hook may run (`--hook-timeout`).
    pub hook_timeout: Option<u64>,
    /// The external authentication program (`--auth-program`).
    pub auth_program: Option<String>,
    /// Seconds the authentication program may run (`--auth-timeout`).
    pub auth_timeout: Option<u64>,
    /// Where the files are, the `[storage]` table.
    pub storage: Option<StorageFile>,
}

/// The `[storage]` table: a bucket to serve instead of a local folder.
/// Credentials may be given here (never on the command line); without
/// them the `AWS_*` environment variables are used.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageFile {
    /// `s3://BUCKET[/PREFIX]` (`--storage`).
    pub url: Option<String>,
    /// Endpoint of an S3-compatible server (`--s3-endpoint`).
    pub s3_endpoint: Option<String>,
    /// Region (`--s3-region`).
    pub s3_region: Option<String>,
    /// Access key id (else `AWS_ACCESS_KEY_ID`).
    pub access_key_id: Option<String>,
    /// Secret access key (else `AWS_SECRET_ACCESS_KEY`).
    pub secret_access_key: Option<String>,
    /// Session token of temporary credentials (else `AWS_SESSION_TOKEN`).
    pub session_token: Option<String>,
    /// Seconds after which a multipart upload found at start is aborted
    /// (`--s3-abort-uploads-after`).
    pub abort_uploads_after: Option<u64>,
}

impl fmt::Debug for StorageFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a secret.
        f.debug_struct("StorageFile")
            .field("url", &self.url)
            .field("s3_endpoint", &self.s3_endpoint)
            .field("s3_region", &self.s3_region)
            .field("access_key_id", &self.access_key_id)
            .field("abort_uploads_after", &self.abort_uploads_after)
            .finish_non_exhaustive()
    }
}

impl FileConfig {
    /// Reads and parses a configuration file; relative paths in it are made
    /// relative to the file's folder.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let mut config = Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { line, message, .. } => ConfigError::Parse {
                path: Some(path.to_path_buf()),
                line,
                message,
            },
            other => other,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        config.resolve_paths(base);
        Ok(config)
    }

    /// Parses configuration text; relative paths are left as they are.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::from_toml(None, text, &e))
    }

    /// Puts `base` in front of every relative path.
    fn resolve_paths(&mut self, base: &Path) {
        if let Some(tls) = &mut self.tls {
            tls.resolve_paths(base);
        }
        for p in [
            &mut self.root,
            &mut self.users,
            &mut self.ftpusers,
            &mut self.xferlog,
        ]
        .into_iter()
        .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// Parses `ADDR:PORT` (IPv6 in brackets). The error is the reason alone.
pub(crate) fn parse_listen(s: &str) -> Result<SocketAddr, &'static str> {
    s.trim()
        .parse()
        .map_err(|_| "expected ADDR:PORT, for example 0.0.0.0:21 or [::]:21")
}

/// Parses `LO-HI` with `0 < LO <= HI`. The error is the reason alone.
pub(crate) fn parse_port_range(s: &str) -> Result<RangeInclusive<u16>, &'static str> {
    const FORM: &str = "expected LO-HI, two ports from 1 to 65535, for example 50000-50100";
    let (lo, hi) = s.split_once('-').ok_or(FORM)?;
    let lo: u16 = lo.trim().parse().map_err(|_| FORM)?;
    let hi: u16 = hi.trim().parse().map_err(|_| FORM)?;
    if lo == 0 {
        return Err("port 0 cannot be used");
    }
    if lo > hi {
        return Err("the low port is above the high port");
    }
    Ok(lo..=hi)
}

fn de_listen<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    let raw = Vec::<String>::deserialize(d)?;
    raw.iter()
        .map(|s| {
            parse_listen(s).map_err(|reason| {
                serde::de::Error::custom(format!(
                    "invalid listen address '{}': {reason}",
                    s.escape_debug()
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

fn de_pasv_ports<'de, D: Deserializer<'de>>(d: D) -> Result<Option<RangeInclusive<u16>>, D::Error> {
    let s = String::deserialize(d)?;
    parse_port_range(&s).map(Some).map_err(|reason| {
        serde::de::Error::custom(format!(
            "invalid pasv_ports '{}': {reason}",
            s.escape_debug()
        ))
    })
}

fn de_pasv_address<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PasvAddress>, D::Error> {
    let s = String::deserialize(d)?;
    PasvAddress::parse(&s).map(Some).map_err(|reason| {
        serde::de::Error::custom(format!(
            "invalid pasv_address '{}': {reason}",
            s.escape_debug()
        ))
    })
}

fn de_proxy_from<'de, D: Deserializer<'de>>(d: D) -> Result<Option<ProxySources>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    ProxySources::from_entries(list.iter().map(String::as_str))
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("invalid proxy_from: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key() {
        let text = r#"
root = "srv"
listen = ["127.0.0.1:21", "[::1]:2121"]
write = true
no_login = false
anonymous_user = "ftp"
idle_timeout = 60
session_timeout = 0
login_timeout = 30
users = "/etc/users.toml"
system_users = true
ftpusers = "/etc/ftpusers"
run_as = "ftp:nogroup"
pasv_ports = "50000-50010"
pasv_address = "192.0.2.1"
proxy_from = ["10.0.0.10", "fd00::/8"]
max_clients = 10
max_per_ip = 2
max_per_ip_message = "Slow down."
threads = 4
password_checks = 2
xferlog = "xfer.log"
verbose = 2
syslog = true
allow_foreign_port = true
active_port_20 = true
login_fail_delay = 250
max_login_attempts = 5
shutdown_grace = 3
download_rate = 1048576
upload_rate = 0
"#;
        let c = FileConfig::parse(text).expect("valid config");
        assert_eq!(c.root, Some(PathBuf::from("srv")));
        assert_eq!(
            c.listen,
            Some(vec![
                "127.0.0.1:21".parse().unwrap(),
                "[::1]:2121".parse().unwrap()
            ])
        );
        assert_eq!(c.write, Some(true));
        assert_eq!(c.anonymous_user.as_deref(), Some("ftp"));
        assert_eq!(c.idle_timeout, Some(60));
        assert_eq!(c.session_timeout, Some(0));
        assert_eq!(c.login_timeout, Some(30));
        assert_eq!(c.system_users, Some(true));
        assert_eq!(c.ftpusers, Some(PathBuf::from("/etc/ftpusers")));
        assert_eq!(c.run_as.as_deref(), Some("ftp:nogroup"));
        assert_eq!(c.active_port_20, Some(true));
        assert_eq!(c.pasv_ports, Some(50000..=50010));
        assert_eq!(
            c.pasv_address,
            Some(PasvAddress::Ip(std::net::Ipv4Addr::new(192, 0, 2, 1)))
        );
        let proxies = c.proxy_from.expect("proxy_from");
        assert!(proxies.contains("10.0.0.10".parse().unwrap()));
        assert!(proxies.contains("fd00::7".parse().unwrap()));
        assert_eq!(c.max_per_ip, Some(2));
        assert_eq!(c.max_per_ip_message.as_deref(), Some("Slow down."));
        assert_eq!(c.threads, Some(4));
        assert_eq!(c.password_checks, Some(2));
        assert_eq!(c.verbose, Some(2));
        assert_eq!(c.login_fail_delay, Some(250));
        assert_eq!(c.max_login_attempts, Some(5));
        assert_eq!(c.shutdown_grace, Some(3));
        assert_eq!((c.download_rate, c.upload_rate), (Some(1 << 20), Some(0)));
    }

    #[test]
    fn empty_file_is_all_defaults() {
        assert_eq!(FileConfig::parse("").unwrap(), FileConfig::default());
    }

    #[test]
    fn unknown_key_is_an_error_with_line() {
        let err = FileConfig::parse("write = true\npasv_port = \"1-2\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(2), .. }),
            "{err:?}"
        );
        assert!(
            msg.starts_with("configuration:2: unknown field `pasv_port`"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }

    #[test]
    fn bad_values_name_the_line_and_value() {
        let err = FileConfig::parse("\n\npasv_ports = \"9-3\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "configuration:3: invalid pasv_ports '9-3': the low port is above the high port"
        );
        let err = FileConfig::parse("listen = [\"localhost\"]").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid listen address 'localhost'"),
            "{err}"
        );
        let err = FileConfig::parse("pasv_address = \"::1\"").unwrap_err();
        assert!(err.to_string().contains("must be an IPv4 address"), "{err}");
        let err = FileConfig::parse("proxy_from = [\"10.0.0.1/8\"]").unwrap_err();
        assert!(err.to_string().contains("invalid proxy_from"), "{err}");
        let err = FileConfig::parse("proxy_from = []").unwrap_err();
        assert!(err.to_string().contains("no network given"), "{err}");
        let err = FileConfig::parse("threads = -1").unwrap_err();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(1), .. }),
            "{err:?}"
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("1024-1024"), Ok(1024..=1024));
        assert_eq!(parse_port_range(" 1 - 65535 "), Ok(1..=65535));
        assert!(parse_port_range("0-10").is_err());
        assert!(parse_port_range("10").is_err());
        assert!(parse_port_range("10-70000").is_err());
        assert!(parse_port_range("a-b").is_err());
    }

    #[test]
    fn load_resolves_relative_paths_against_the_file() {
        let dir = std::env::temp_dir().join(format!("ftp-host-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("ftpd.toml");
        std::fs::write(&file, "root = \"pub\"\nusers = \"/abs/users.toml\"\n").unwrap();
        let c = FileConfig::load(&file).unwrap();
        assert_eq!(c.root, Some(dir.join("pub")));
        assert_eq!(c.users, Some(PathBuf::from("/abs/users.toml")));
        std::fs::write(&file, "root = 1\n").unwrap();
        let err = FileConfig::load(&file).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:1: ", file.display())),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        let err = FileConfig::load(&file).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }));
    }
}
