//! What the server counts, for `/metrics` (`--metrics`): sessions, logins,
//! commands, replies, transfers, refusals at admission, storage errors,
//! TLS handshakes, and the process's own figures.
//!
//! The counters are fed where the events are decided, once for both
//! runtimes: the session host's event sink (`SessionHost::log_events`),
//! the admission step, the password checks, the TLS switch. Every counter
//! a hot path touches is made at start and kept (an atomic add, no label
//! lookup); only the encoding for a scrape walks the registry. The
//! encoding is `prometheus-client`'s (Prometheus text format 0.0.4).

use std::fmt;
use std::time::{Duration, SystemTime};

use ftp_proto::FsError;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The verbs counted by name; any other is counted as `other`.
pub const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "CCC", "CDUP", "CWD", "DELE", "EPRT", "EPSV", "FEAT",
    "HELP", "HOST", "LANG", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE", "NLST", "NOOP",
    "OPTS", "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "REIN", "REST", "RETR", "RMD",
    "RNFR", "RNTO", "SITE", "SIZE", "SMNT", "STAT", "STOR", "STOU", "STRU", "SYST", "TYPE", "USER",
    "XCUP", "XCWD", "XMKD", "XPWD", "XRMD",
];

/// How a login attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoginResult {
    /// Logged in.
    Ok,
    /// A known account, a wrong password.
    BadPassword,
    /// No such account.
    UnknownUser,
    /// The account may not log in (ftpusers, locked, expired, anonymous
    /// logins off), or the account database could not be read.
    Refused,
}

impl LoginResult {
    const ALL: [LoginResult; 4] = [
        LoginResult::Ok,
        LoginResult::BadPassword,
        LoginResult::UnknownUser,
        LoginResult::Refused,
    ];

    fn label(self) -> &'static str {
        match self {
            LoginResult::Ok => "ok",
            LoginResult::BadPassword => "bad_password",
            LoginResult::UnknownUser => "unknown_user",
            LoginResult::Refused => "refused",
        }
    }
}

/// Why admission turned a connection away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefusedReason {
    /// `--max-clients`.
    GlobalCap,
    /// `--max-per-ip`.
    PerAddressCap,
    /// A missing, malformed or late PROXY header.
    ProxyHeader,
    /// A banned address.
    Banned,
}

impl RefusedReason {
    const ALL: [RefusedReason; 4] = [
        RefusedReason::GlobalCap,
        RefusedReason::PerAddressCap,
        RefusedReason::ProxyHeader,
        RefusedReason::Banned,
    ];

    fn label(self) -> &'static str {
        match self {
            RefusedReason::GlobalCap => "global_cap",
            RefusedReason::PerAddressCap => "per_address_cap",
            RefusedReason::ProxyHeader => "proxy_header",
            RefusedReason::Banned => "banned",
        }
    }
}

/// The storage error kinds, as labels.
const FS_ERRORS: [(FsError, &str); 11] = [
    (FsError::NotFound, "not_found"),
    (FsError::PermissionDenied, "permission_denied"),
    (FsError::AlreadyExists, "already_exists"),
    (FsError::NotADirectory, "not_a_directory"),
    (FsError::IsADirectory, "is_a_directory"),
    (FsError::NotEmpty, "not_empty"),
    (FsError::NoSpace, "no_space"),
    (FsError::QuotaExceeded, "quota_exceeded"),
    (FsError::InvalidName, "invalid_name"),
    (FsError::TooManyMatches, "too_many_matches"),
    (FsError::Other, "other"),
];

/// One label, for families whose label is one fixed word.
type Label = [(&'static str, &'static str); 1];

/// Two labels.
type Labels2 = [(&'static str, &'static str); 2];

/// Every figure the server keeps, registered once.
pub struct Metrics {
    registry: Registry,
    sessions_active: Gauge,
    sessions: Counter,
    logins: [Counter; 4],
    commands: Vec<Counter>,
    replies: [Counter; 5],
    /// `[download, upload]` × `[ok, failed]`.
    transfers: [[Counter; 2]; 2],
    /// `[download, upload]`.
    bytes: [Counter; 2],
    transfer_seconds: Histogram,
    refused: [Counter; 4],
    storage_errors: [Counter; 11],
    /// `[ok, failed]`.
    tls_handshakes: [Counter; 2],
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("sessions_active", &self.sessions_active.get())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Every counter at zero, registered under the `ftp_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ftp");
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Control connections being served",
            sessions_active.clone(),
        );
        let sessions = Counter::default();
        registry.register(
            "sessions",
            "Control connections served since start",
            sessions.clone(),
        );
        let logins = Family::<Label, Counter>::default();
        registry.register("logins", "Login attempts by result", logins.clone());
        let commands = Family::<Label, Counter>::default();
        registry.register("commands", "Commands received by verb", commands.clone());
        let replies = Family::<Label, Counter>::default();
        registry.register("replies", "Replies sent by class", replies.clone());
        let transfers = Family::<Labels2, Counter>::default();
        registry.register(
            "transfers",
            "File transfers by direction and result",
            transfers.clone(),
        );
        let bytes = Family::<Label, Counter>::default();
        registry.register_with_unit(
            "transfer",
            "Bytes moved by file transfers, by direction",
            Unit::Bytes,
            bytes.clone(),
        );
        let transfer_seconds = Histogram::new(exponential_buckets(0.001, 4.0, 10));
        registry.register_with_unit(
            "transfer_duration",
            "How long file transfers took",
            Unit::Seconds,
            transfer_seconds.clone(),
        );
        let refused = Family::<Label, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections turned away at admission, by reason",
            refused.clone(),
        );
        let storage_errors = Family::<Label, Counter>::default();
        registry.register(
            "storage_errors",
            "Failed storage operations, by kind",
            storage_errors.clone(),
        );
        let tls = Family::<Label, Counter>::default();
        registry.register("tls_handshakes", "TLS handshakes by result", tls.clone());
        registry.register_collector(Box::new(ProcessCollector {
            start: SystemTime::now(),
        }));

        let one = |family: &Family<Label, Counter>, key: &'static str, value: &'static str| {
            family.get_or_create(&[(key, value)]).clone()
        };
        let directions = ["download", "upload"];
        Metrics {
            logins: LoginResult::ALL.map(|r| one(&logins, "result", r.label())),
            commands: VERBS
                .iter()
                .chain(["other"].iter())
                .map(|v| one(&commands, "verb", v))
                .collect(),
            replies: ["1xx", "2xx", "3xx", "4xx", "5xx"].map(|c| one(&replies, "class", c)),
            transfers: directions.map(|d| {
                ["ok", "failed"].map(|r| {
                    transfers
                        .get_or_create(&[("direction", d), ("result", r)])
                        .clone()
                })
            }),
            bytes: directions.map(|d| one(&bytes, "direction", d)),
            refused: RefusedReason::ALL.map(|r| one(&refused, "reason", r.label())),
            storage_errors: FS_ERRORS.map(|(_, label)| one(&storage_errors, "kind", label)),
            tls_handshakes: ["ok", "failed"].map(|r| one(&tls, "result", r)),
            registry,
            sessions_active,
            sessions,
            transfer_seconds,
        }
    }

    /// A session began.
    pub fn session_started(&self) {
        self.sessions.inc();
        self.sessions_active.inc();
    }

    /// A session ended.
    pub fn session_ended(&self) {
        self.sessions_active.dec();
    }

    /// A login attempt ended.
    pub fn login(&self, result: LoginResult) {
        let i = LoginResult::ALL
            .iter()
            .position(|r| *r == result)
            .unwrap_or(3);
        self.logins[i].inc();
    }

    /// A command line was received (counted by its verb).
    pub fn command(&self, line: &str) {
        let verb = line.split(' ').next().unwrap_or("");
        let i = VERBS
            .binary_search_by(|v| cmp_ignore_case(v, verb))
            .unwrap_or(VERBS.len());
        self.commands[i].inc();
    }

    /// A reply was sent.
    pub fn reply(&self, code: u16) {
        if let Some(counter) = self.replies.get(usize::from(code / 100).wrapping_sub(1)) {
            counter.inc();
        }
    }

    /// A file transfer ended.
    pub fn transfer(&self, upload: bool, complete: bool, bytes: u64, took: Duration) {
        let d = usize::from(upload);
        self.transfers[d][usize::from(!complete)].inc();
        self.bytes[d].inc_by(bytes);
        self.transfer_seconds.observe(took.as_secs_f64());
    }

    /// Admission turned a connection away.
    pub fn refused(&self, reason: RefusedReason) {
        let i = RefusedReason::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or(0);
        self.refused[i].inc();
    }

    /// A storage operation failed.
    pub fn storage_error(&self, e: FsError) {
        let i = FS_ERRORS.iter().position(|(k, _)| *k == e).unwrap_or(9);
        self.storage_errors[i].inc();
    }

    /// A TLS handshake ended.
    pub fn tls_handshake(&self, ok: bool) {
        self.tls_handshakes[usize::from(!ok)].inc();
    }

    /// Every figure in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// The `Content-Type` of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Compares an upper-case verb with a word of any case, as `str::cmp`
/// would compare the word upper-cased.
fn cmp_ignore_case(verb: &str, word: &str) -> std::cmp::Ordering {
    verb.bytes()
        .cmp(word.bytes().map(|b| b.to_ascii_uppercase()))
}

/// The process's figures, read from `/proc` at each scrape.
#[derive(Debug)]
struct ProcessCollector {
    start: SystemTime,
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let mut gauge = |name: &str, help: &str, unit: Option<&Unit>, value: f64| {
            let metric = ConstGauge::new(value);
            let e = encoder.encode_descriptor(name, help, unit, metric.metric_type())?;
            metric.encode(e)
        };
        let page = rustix::param::page_size() as f64;
        if let Some(pages) = proc_field("/proc/self/statm", 1) {
            gauge(
                "process_resident_memory",
                "Resident memory",
                Some(&Unit::Bytes),
                pages * page,
            )?;
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                "process_open_fds",
                "Open file descriptors",
                None,
                dir.count() as f64,
            )?;
        }
        if let Some(threads) = proc_status("Threads:") {
            gauge("process_threads", "Threads", None, threads)?;
        }
        let start = self
            .start
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        gauge(
            "process_start_time",
            "Start time since the Unix epoch",
            Some(&Unit::Seconds),
            start,
        )
    }
}

/// The `index`-th space-separated number of a `/proc` file.
fn proc_field(path: &str, index: usize) -> Option<f64> {
    std::fs::read_to_string(path)
        .ok()?
        .split_whitespace()
        .nth(index)?
        .parse()
        .ok()
}

/// A number from `/proc/self/status` (`Threads:`).
fn proc_status(field: &str) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample `line_start` (name and labels) in `text`.
    fn sample(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' '))?
            .parse()
            .ok()
    }

    #[test]
    fn verbs_are_sorted_for_the_lookup() {
        assert!(VERBS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn counts_and_encodes() {
        let m = Metrics::new();
        m.session_started();
        m.session_started();
        m.session_ended();
        m.command("RETR a.txt");
        m.command("retr b");
        m.command("XYZZY");
        m.command("");
        m.reply(226);
        m.reply(530);
        m.reply(0);
        m.reply(999);
        m.login(LoginResult::BadPassword);
        m.transfer(true, false, 100, Duration::from_millis(5));
        m.transfer(false, true, 4096, Duration::from_millis(2));
        m.refused(RefusedReason::PerAddressCap);
        m.storage_error(FsError::NoSpace);
        m.tls_handshake(false);
        let text = m.encode();
        let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} in\n{text}"));
        assert_eq!(get("ftp_sessions_active"), 1.0);
        assert_eq!(get("ftp_sessions_total"), 2.0);
        assert_eq!(get("ftp_commands_total{verb=\"RETR\"}"), 2.0);
        assert_eq!(get("ftp_commands_total{verb=\"other\"}"), 2.0);
        assert_eq!(get("ftp_replies_total{class=\"2xx\"}"), 1.0);
        assert_eq!(get("ftp_replies_total{class=\"5xx\"}"), 1.0);
        assert_eq!(get("ftp_logins_total{result=\"bad_password\"}"), 1.0);
        assert_eq!(get("ftp_logins_total{result=\"ok\"}"), 0.0);
        assert_eq!(
            get("ftp_transfers_total{direction=\"upload\",result=\"failed\"}"),
            1.0
        );
        assert_eq!(
            get("ftp_transfers_total{direction=\"download\",result=\"ok\"}"),
            1.0
        );
        assert_eq!(
            get("ftp_transfer_bytes_total{direction=\"download\"}"),
            4096.0
        );
        assert_eq!(get("ftp_transfer_duration_seconds_count"), 2.0);
        assert_eq!(
            get("ftp_connections_refused_total{reason=\"per_address_cap\"}"),
            1.0
        );
        assert_eq!(get("ftp_storage_errors_total{kind=\"no_space\"}"), 1.0);
        assert_eq!(get("ftp_tls_handshakes_total{result=\"failed\"}"), 1.0);
        assert!(get("ftp_process_resident_memory_bytes") > 0.0);
        assert!(get("ftp_process_open_fds") > 0.0);
        assert!(get("ftp_process_threads") >= 1.0);
        assert!(get("ftp_process_start_time_seconds") > 1.0e9);
    }
}
