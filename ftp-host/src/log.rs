//! A small backend for the `log` facade: stderr lines in BusyBox style
//! (`PROG[PID]: message`) or RFC 3164 datagrams to the local syslog
//! socket `/dev/log`.
//!
//! Levels: no `-v` logs warnings and errors, `-v` adds information (one
//! line per session event), `-vv` adds debugging detail.
//!
//! Control characters in messages (which may quote what a client sent) are
//! written as `\xNN`, so one record is always one line.
//!
//! When standard error is the same socket as standard input (an `inetd`
//! or systemd `Accept=yes` session, where it would reach the client),
//! nothing is written to it.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;

use std::time::SystemTime;

use log::kv::{Key, Value, VisitSource};
use log::{Level, LevelFilter, Log, Metadata, Record};

/// Where syslog datagrams go.
const SYSLOG_SOCKET: &str = "/dev/log";

/// The `daemon` facility (3), shifted as the `PRI` field wants it.
const FACILITY_DAEMON: u8 = 3 << 3;

/// Longest syslog datagram sent; longer messages are cut.
const MAX_DATAGRAM: usize = 2048;

/// How records are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `PROG[PID]: message`, as BusyBox daemons write.
    #[default]
    Text,
    /// One JSON object a line, for log shippers: `time` (RFC 3339, UTC,
    /// milliseconds), `level`, `prog`, `pid`, `msg`, and the record's
    /// fields (`session`, `peer`, `user`, `command`, `code`, `bytes`,
    /// `duration_ms`, ... where they apply).
    Json,
}

/// Installs the logger for the whole process.
///
/// `verbosity` is the number of `-v` flags: 0 logs warnings and errors,
/// 1 adds info, 2 or more adds debug. With `syslog` (`-S`) records go to
/// `/dev/log` (facility `daemon`) instead of standard error; if that
/// socket cannot be reached they go to standard error after all. `prog`
/// is the program name used as the tag.
///
/// Only the first call has an effect; later calls do nothing. The process
/// id in the tag is read here, so a daemon that forks into the background
/// should call this after forking.
pub fn init(verbosity: u8, syslog: bool, prog: &str) {
    init_with(verbosity, syslog, prog, LogFormat::Text);
}

/// [`init`] with a format for standard error.
pub fn init_with(verbosity: u8, syslog: bool, prog: &str, format: LogFormat) {
    let level = level_for(verbosity);
    let tag = format!("{prog}[{}]", std::process::id());
    let syslog = if syslog { Syslog::connect() } else { None };
    let logger = Logger {
        level,
        tag,
        prog: prog.to_string(),
        format,
        syslog,
        stderr: !stderr_is_client_socket(),
    };
    if log::set_logger(Box::leak(Box::new(logger))).is_ok() {
        log::set_max_level(level);
    }
}

/// The level filter for a number of `-v` flags.
pub fn level_for(verbosity: u8) -> LevelFilter {
    match verbosity {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        _ => LevelFilter::Debug,
    }
}

/// Whether fd 2 is the very socket that fd 0 is (inetd-style sessions).
fn stderr_is_client_socket() -> bool {
    let (Ok(err), Ok(inp)) = (
        rustix::fs::fstat(io::stderr().as_fd()),
        rustix::fs::fstat(io::stdin().as_fd()),
    ) else {
        return false;
    };
    rustix::fs::FileType::from_raw_mode(err.st_mode) == rustix::fs::FileType::Socket
        && err.st_dev == inp.st_dev
        && err.st_ino == inp.st_ino
}

/// A connected datagram socket to the syslog daemon.
#[derive(Debug)]
struct Syslog {
    socket: UnixDatagram,
}

impl Syslog {
    fn connect() -> Option<Self> {
        let socket = UnixDatagram::unbound().ok()?;
        socket.connect(SYSLOG_SOCKET).ok()?;
        Some(Syslog { socket })
    }

    /// Sends one datagram, reconnecting once if the daemon was restarted.
    fn send(&self, datagram: &[u8]) -> io::Result<()> {
        match self.socket.send(datagram) {
            Ok(_) => Ok(()),
            Err(_) => {
                self.socket.connect(SYSLOG_SOCKET)?;
                self.socket.send(datagram).map(drop)
            }
        }
    }
}

/// The installed logger.
#[derive(Debug)]
struct Logger {
    level: LevelFilter,
    /// `PROG[PID]`.
    tag: String,
    /// `PROG`.
    prog: String,
    /// How standard error lines look.
    format: LogFormat,
    syslog: Option<Syslog>,
    /// Whether standard error may be written.
    stderr: bool,
}

/// RFC 5424 / 3164 severity of a level.
fn severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// A `fmt::Write` that escapes control characters as `\xNN`.
struct Escaping<'a>(&'a mut String);

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            if c.is_control() {
                write!(self.0, "\\x{:02x}", u32::from(c))?;
            } else {
                self.0.push(c);
            }
        }
        Ok(())
    }
}

/// Cuts `s` to at most `max` bytes at a character boundary.
fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

impl Logger {
    /// `<PRI>TAG: message` (no timestamp or host name: the local syslog
    /// daemon adds its own, in its own time zone).
    fn syslog_datagram(&self, record: &Record<'_>) -> String {
        let mut out = String::with_capacity(128);
        let _ = write!(
            out,
            "<{}>{}: ",
            FACILITY_DAEMON | severity(record.level()),
            self.tag
        );
        let _ = write!(Escaping(&mut out), "{}", record.args());
        truncate_at_char(&mut out, MAX_DATAGRAM);
        out
    }

    /// `TAG: message\n`, or a JSON object and `\n`.
    fn stderr_line(&self, record: &Record<'_>) -> String {
        if self.format == LogFormat::Json {
            return json_line(record, &self.prog, SystemTime::now());
        }
        let mut out = String::with_capacity(128);
        out.push_str(&self.tag);
        out.push_str(": ");
        let _ = write!(Escaping(&mut out), "{}", record.args());
        out.push('\n');
        out
    }
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        if let Some(syslog) = &self.syslog {
            if syslog.send(self.syslog_datagram(record).as_bytes()).is_ok() || !self.stderr {
                return;
            }
        }
        if self.stderr {
            // One write per line; nothing useful can be done if it fails.
            let _ = io::stderr()
                .lock()
                .write_all(self.stderr_line(record).as_bytes());
        }
    }

    fn flush(&self) {}
}

/// One record as a JSON object on one line.
fn json_line(record: &Record<'_>, prog: &str, now: SystemTime) -> String {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let t = ftp_proto::UnixTime(since.as_secs() as i64).to_datetime();
    let mut out = String::with_capacity(256);
    let _ = write!(
        out,
        "{{\"time\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\",\"level\":\"{}\",\
         \"prog\":{},\"pid\":{},\"msg\":{}",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        since.subsec_millis(),
        record.level().as_str().to_ascii_lowercase(),
        json_string(prog),
        std::process::id(),
        json_string(&record.args().to_string()),
    );
    let mut fields = JsonFields(&mut out);
    let _ = record.key_values().visit(&mut fields);
    out.push_str("}\n");
    out
}

/// Appends a record's key-value pairs as JSON members.
struct JsonFields<'a>(&'a mut String);

impl<'kvs> VisitSource<'kvs> for JsonFields<'_> {
    fn visit_pair(&mut self, key: Key<'kvs>, value: Value<'kvs>) -> Result<(), log::kv::Error> {
        let _ = write!(self.0, ",{}:", json_string(key.as_str()));
        if let Some(n) = value.to_u64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(n) = value.to_i64() {
            let _ = write!(self.0, "{n}");
        } else if let Some(b) = value.to_bool() {
            let _ = write!(self.0, "{b}");
        } else {
            self.0.push_str(&json_string(&value.to_string()));
        }
        Ok(())
    }
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logger(level: LevelFilter) -> Logger {
        Logger {
            level,
            tag: "ftpd[42]".into(),
            prog: "ftpd".into(),
            format: LogFormat::Text,
            syslog: None,
            stderr: true,
        }
    }

    #[test]
    fn json_lines_carry_the_fields() {
        let kvs: [(&str, log::kv::Value<'_>); 4] = [
            ("session", 7u64.into()),
            ("user", "al\"ice".into()),
            ("complete", true.into()),
            ("path", "/a\nb".into()),
        ];
        let record = Record::builder()
            .level(Level::Info)
            .args(format_args!("line\u{7}one"))
            .key_values(&kvs)
            .build();
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_764_950_400_123);
        let line = json_line(&record, "ftp-mio", at);
        assert!(line.ends_with("}\n") && line.lines().count() == 1, "{line}");
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["time"], "2025-12-05T16:00:00.123Z");
        assert_eq!(v["level"], "info");
        assert_eq!(v["prog"], "ftp-mio");
        assert_eq!(v["msg"], "line\u{7}one");
        assert_eq!(v["session"], 7);
        assert_eq!(v["user"], "al\"ice");
        assert_eq!(v["complete"], true);
        assert_eq!(v["path"], "/a\nb");
    }

    fn with_record<R>(level: Level, msg: &str, f: impl FnOnce(&Record<'_>) -> R) -> R {
        f(&Record::builder()
            .level(level)
            .args(format_args!("{msg}"))
            .build())
    }

    #[test]
    fn levels() {
        assert_eq!(level_for(0), LevelFilter::Warn);
        assert_eq!(level_for(1), LevelFilter::Info);
        assert_eq!(level_for(2), LevelFilter::Debug);
        assert_eq!(level_for(9), LevelFilter::Debug);
        let l = logger(level_for(0));
        assert!(l.enabled(&Metadata::builder().level(Level::Error).build()));
        assert!(l.enabled(&Metadata::builder().level(Level::Warn).build()));
        assert!(!l.enabled(&Metadata::builder().level(Level::Info).build()));
    }

    #[test]
    fn stderr_line_format_escapes_control_characters() {
        let l = logger(LevelFilter::Info);
        let line = with_record(Level::Info, "login bob\r\nfrom 1.2.3.4", |r| {
            l.stderr_line(r)
        });
        assert_eq!(line, "ftpd[42]: login bob\\x0d\\x0afrom 1.2.3.4\n");
    }

    #[test]
    fn syslog_datagram_format() {
        let l = logger(LevelFilter::Info);
        let d = with_record(Level::Warn, "disk full", |r| l.syslog_datagram(r));
        assert_eq!(d, "<28>ftpd[42]: disk full");
        let d = with_record(Level::Info, "x", |r| l.syslog_datagram(r));
        assert_eq!(d, "<30>ftpd[42]: x");
        let long = "é".repeat(MAX_DATAGRAM);
        let d = with_record(Level::Error, &long, |r| l.syslog_datagram(r));
        assert!(d.len() <= MAX_DATAGRAM && d.starts_with("<27>ftpd[42]: é"));
    }

    #[test]
    fn syslog_datagrams_reach_the_socket() {
        let dir = std::env::temp_dir().join(format!("ftp-host-log-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("log.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let client = UnixDatagram::unbound().unwrap();
        client.connect(&path).unwrap();
        let l = Logger {
            syslog: Some(Syslog { socket: client }),
            ..logger(LevelFilter::Info)
        };
        with_record(Level::Info, "hello", |r| l.log(r));
        with_record(Level::Debug, "filtered out", |r| l.log(r));
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"<30>ftpd[42]: hello");
        server.set_nonblocking(true).unwrap();
        assert!(
            server.recv(&mut buf).is_err(),
            "debug record must not be sent"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
