//! The wu-ftpd transfer log (`--xferlog FILE`), as written by wu-ftpd,
//! ProFTPD and vsftpd and read by tools such as `xferstats`.
//!
//! One line per transfer:
//!
//! ```text
//! current-time transfer-time remote-host file-size filename transfer-type special-action-flag direction access-mode username service-name authentication-method authenticated-user-id completion-status
//! Thu Nov 26 12:15:03 2026 1 127.0.0.1 1024 /pub/file b _ o a anonymous ftp 0 * c
//! ```
//!
//! The time is written in UTC (the crate carries no time-zone database),
//! in `ctime` form: day of the month padded with a space. The transfer
//! time is in whole seconds, rounded, at least 1. Whitespace and control
//! characters in the file name and user name become `_`, as wu-ftpd does
//! for spaces, so that every line keeps its 18 fields.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ftp_proto::UnixTime;

/// One finished (or broken-off) transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XferRecord {
    /// When the transfer ended.
    pub now: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// The client's address.
    pub remote: IpAddr,
    /// Bytes that crossed the data connection.
    pub bytes: u64,
    /// The file, as the client sees it (from the served root).
    pub path: String,
    /// ASCII mode (`a`) rather than binary (`b`).
    pub ascii: bool,
    /// Upload (`i`) rather than download (`o`).
    pub incoming: bool,
    /// Anonymous session (`a`) rather than a real user (`r`).
    pub anonymous: bool,
    /// The login name (for anonymous sessions, `anonymous` or `ftp`).
    pub user: String,
    /// Completed (`c`) rather than incomplete (`i`).
    pub complete: bool,
}

const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Appends `s` with whitespace and control characters replaced by `_`.
fn push_field(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push('_');
        return;
    }
    out.extend(s.chars().map(|c| {
        if c.is_whitespace() || c.is_control() {
            '_'
        } else {
            c
        }
    }));
}

impl XferRecord {
    /// The log line for this record, ending in `\n`.
    pub fn to_line(&self) -> String {
        let secs = match self.now.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
        };
        let dt = UnixTime(secs).to_datetime();
        // 1970-01-01 was a Thursday.
        let weekday = (secs.div_euclid(86_400) + 4).rem_euclid(7) as usize;
        let month = MONTHS[(dt.month as usize).saturating_sub(1) % 12];
        // Whole seconds, rounded, at least 1 (as vsftpd writes it).
        let rounded = self.duration.as_secs() + u64::from(self.duration.subsec_millis() >= 500);
        let xfer_secs = rounded.max(1);

        let mut line = String::with_capacity(96 + self.path.len() + self.user.len());
        // Writing to a String cannot fail.
        let _ = write!(
            line,
            "{} {} {:>2} {:02}:{:02}:{:02} {} {} {} {} ",
            WEEKDAYS[weekday],
            month,
            dt.day,
            dt.hour,
            dt.minute,
            dt.second,
            dt.year,
            xfer_secs,
            self.remote.to_canonical(),
            self.bytes,
        );
        push_field(&mut line, &self.path);
        let _ = write!(
            line,
            " {} _ {} {} ",
            if self.ascii { 'a' } else { 'b' },
            if self.incoming { 'i' } else { 'o' },
            if self.anonymous { 'a' } else { 'r' },
        );
        push_field(&mut line, &self.user);
        let _ = writeln!(line, " ftp 0 * {}", if self.complete { 'c' } else { 'i' });
        line
    }
}

/// An open transfer log. Share it between threads (`&XferLog` is enough):
/// every record is one `write` to a file opened for appending, so lines
/// from different sessions never interleave.
#[derive(Debug)]
pub struct XferLog {
    file: File,
}

impl XferLog {
    /// Opens (creating it with mode `0640` if needed) the log for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)?;
        Ok(XferLog { file })
    }

    /// Appends one line for `r`. A failure (disk full) is returned for the
    /// caller to log; the transfer itself is not affected.
    pub fn record(&self, r: &XferRecord) -> io::Result<()> {
        (&self.file).write_all(r.to_line().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn record() -> XferRecord {
        XferRecord {
            // 2026-11-26T12:15:03Z, a Thursday.
            now: UNIX_EPOCH + Duration::from_secs(1_795_695_303),
            duration: Duration::from_millis(300),
            remote: IpAddr::V4(Ipv4Addr::LOCALHOST),
            bytes: 1024,
            path: "/pub/file".into(),
            ascii: false,
            incoming: false,
            anonymous: true,
            user: "anonymous".into(),
            complete: true,
        }
    }

    #[test]
    fn exact_line() {
        assert_eq!(
            record().to_line(),
            "Thu Nov 26 12:15:03 2026 1 127.0.0.1 1024 /pub/file b _ o a anonymous ftp 0 * c\n"
        );
    }

    #[test]
    fn fields_change_with_the_record() {
        let r = XferRecord {
            // 2000-03-05T01:02:03Z, a Sunday.
            now: UNIX_EPOCH + Duration::from_secs(952_218_123),
            duration: Duration::from_millis(2_500),
            remote: IpAddr::V6(Ipv6Addr::LOCALHOST),
            bytes: 0,
            path: "/up/my file\tname\n.txt".into(),
            ascii: true,
            incoming: true,
            anonymous: false,
            user: "bob".into(),
            complete: false,
        };
        assert_eq!(
            r.to_line(),
            "Sun Mar  5 01:02:03 2000 3 ::1 0 /up/my_file_name_.txt a _ i r bob ftp 0 * i\n"
        );
    }

    #[test]
    fn mapped_addresses_and_odd_times() {
        let r = XferRecord {
            now: UNIX_EPOCH,
            duration: Duration::from_secs(61),
            remote: IpAddr::V6(Ipv4Addr::new(10, 1, 2, 3).to_ipv6_mapped()),
            user: String::new(),
            ..record()
        };
        assert_eq!(
            r.to_line(),
            "Thu Jan  1 00:00:00 1970 61 10.1.2.3 1024 /pub/file b _ o a _ ftp 0 * c\n"
        );
        // Before 1970: 1969-12-31T23:59:59Z, a Wednesday.
        let r = XferRecord {
            now: UNIX_EPOCH - Duration::from_secs(1),
            ..record()
        };
        assert!(
            r.to_line().starts_with("Wed Dec 31 23:59:59 1969 "),
            "{}",
            r.to_line()
        );
    }

    #[test]
    fn appends_to_the_file() {
        let path = std::env::temp_dir().join(format!("ftp-host-xferlog-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        {
            let log = XferLog::open(&path).unwrap();
            log.record(&record()).unwrap();
        }
        let log = XferLog::open(&path).unwrap();
        log.record(&XferRecord {
            complete: false,
            ..record()
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" c") && lines[1].ends_with(" i"));
        assert!(
            lines
                .iter()
                .all(|l| l.split(' ').filter(|f| !f.is_empty()).count() == 18)
        );
    }
}
