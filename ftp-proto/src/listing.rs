//! Listing formats: `ls -l` lines for LIST, bare names for NLST, RFC 3659
//! facts for MLSD/MLST, and the `MDTM` timestamp.
//!
//! Every printed name, link target, owner and group is sanitised: CR, LF
//! and NUL become `?`, so no file name can end a line early or inject a
//! reply. In MLSD/MLST fact values, `;` and space become `?` as well.
//!
//! The writers append to the caller's buffer and allocate nothing else, so
//! formatting a large directory costs little more than the output itself.

use alloc::string::String;
use alloc::vec::Vec;
use core::ops::{BitOr, BitOrAssign};

use crate::meta::{DirEntry, FileKind, Metadata};
use crate::time::UnixTime;

/// How a listing prints each entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFormat {
    /// The line format.
    pub style: ListStyle,
    /// Include names starting with `.` (`-a`).
    pub show_hidden: bool,
    /// Whether the session may write (MLSD `perm` facts).
    pub writable: bool,
    /// Only names matching this pattern (`NLST *.txt`); boxed, as it is
    /// rare and listings travel in every transfer intent.
    pub glob: Option<alloc::boxed::Box<crate::glob::Glob>>,
}

/// The line format of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStyle {
    /// `ls -l` style (LIST).
    Long,
    /// Names only (NLST).
    Names,
    /// RFC 3659 facts (MLSD) with the selected facts.
    Machine(Facts),
}

/// A set of MLST facts (RFC 3659 section 7), one bit per fact.
///
/// Facts are always printed in the order of the constants below,
/// whatever order the client named them in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts(pub u8);

/// Every fact with its name as printed, in output order.
const FACT_NAMES: [(Facts, &str); 8] = [
    (Facts::TYPE, "type"),
    (Facts::SIZE, "size"),
    (Facts::MODIFY, "modify"),
    (Facts::PERM, "perm"),
    (Facts::UNIQUE, "unique"),
    (Facts::UNIX_MODE, "unix.mode"),
    (Facts::UNIX_OWNER, "unix.owner"),
    (Facts::UNIX_GROUP, "unix.group"),
];

impl Facts {
    /// No facts.
    pub const NONE: Facts = Facts(0);
    /// `type`: `file`, `dir`, `OS.unix=symlink` or `OS.unix=other`.
    pub const TYPE: Facts = Facts(1 << 0);
    /// `size`: size in bytes (regular files only).
    pub const SIZE: Facts = Facts(1 << 1);
    /// `modify`: modification time as `YYYYMMDDHHMMSS` UTC (when known).
    pub const MODIFY: Facts = Facts(1 << 2);
    /// `perm`: what the session may do with the object (RFC 3659 7.5.5).
    pub const PERM: Facts = Facts(1 << 3);
    /// `unique`: a stable identity, device and inode in hex (when known).
    pub const UNIQUE: Facts = Facts(1 << 4);
    /// `unix.mode`: permission bits in octal, for example `0644`.
    pub const UNIX_MODE: Facts = Facts(1 << 5);
    /// `unix.owner`: the owner exactly as [`Metadata::owner`] gives it
    /// (a name or a number).
    pub const UNIX_OWNER: Facts = Facts(1 << 6);
    /// `unix.group`: the group exactly as [`Metadata::group`] gives it.
    pub const UNIX_GROUP: Facts = Facts(1 << 7);
    /// Every supported fact (what FEAT advertises).
    pub const ALL: Facts = Facts(0xff);
    /// The facts enabled until the client sends `OPTS MLST`: type, size,
    /// modify, perm, unique and unix.mode (not unix.owner/unix.group).
    pub const DEFAULT: Facts = Facts(0x3f);

    /// Whether every fact in `other` is in `self`.
    pub const fn contains(self, other: Facts) -> bool {
        self.0 & other.0 == other.0
    }

    /// The facts in either set.
    pub const fn union(self, other: Facts) -> Facts {
        Facts(self.0 | other.0)
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The fact called `name` (case-insensitive, surrounding whitespace
    /// ignored), or `None` for a fact this crate does not know.
    pub fn from_name(name: &str) -> Option<Facts> {
        let name = name.trim();
        FACT_NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
            .map(|&(fact, _)| fact)
    }

    /// The set of the named facts, as `OPTS MLST type;size;` selects them.
    /// Unknown names are ignored and names are case-insensitive; no names
    /// give [`Facts::NONE`].
    pub fn from_names<I>(names: I) -> Facts
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        names
            .into_iter()
            .filter_map(|n| Facts::from_name(n.as_ref()))
            .fold(Facts::NONE, Facts::union)
    }

    /// Appends the FEAT line body for MLST, every supported fact with `*`
    /// after the enabled ones (RFC 3659 7.8), for example
    /// `MLST type*;size*;modify*;perm*;unique*;unix.mode*;unix.owner;unix.group;`.
    /// No leading space and no CRLF: the FEAT reply adds those.
    pub fn write_feat_line(&self, out: &mut String) {
        out.push_str("MLST ");
        for &(fact, name) in &FACT_NAMES {
            out.push_str(name);
            if self.contains(fact) {
                out.push('*');
            }
            out.push(';');
        }
    }

    /// Appends the enabled facts as `type;size;` (possibly nothing), the
    /// list the `200 MLST OPTS` reply to `OPTS MLST` carries (RFC 3659 7.9).
    pub fn write_names(&self, out: &mut String) {
        for &(fact, name) in &FACT_NAMES {
            if self.contains(fact) {
                out.push_str(name);
                out.push(';');
            }
        }
    }
}

impl Default for Facts {
    /// [`Facts::DEFAULT`].
    fn default() -> Facts {
        Facts::DEFAULT
    }
}

impl BitOr for Facts {
    type Output = Facts;
    fn bitor(self, rhs: Facts) -> Facts {
        self.union(rhs)
    }
}

impl BitOrAssign for Facts {
    fn bitor_assign(&mut self, rhs: Facts) {
        *self = self.union(rhs);
    }
}

impl ListFormat {
    /// Whether an entry with this name belongs in the listing: never `.`,
    /// `..` or an empty name; names starting with `.` only with
    /// `show_hidden`.
    pub fn includes(&self, name: &str) -> bool {
        match name {
            "" | "." | ".." => false,
            _ => {
                (self.show_hidden || !name.starts_with('.'))
                    && self.glob.as_ref().is_none_or(|g| g.matches(name))
            }
        }
    }

    /// Appends the entry's line, CRLF-terminated. `now` decides between the
    /// recent (`Mon DD HH:MM`) and old (`Mon DD  YYYY`) date forms.
    ///
    /// - [`ListStyle::Long`]: like `drwxr-xr-x    2 owner    group        4096 Nov 26 12:15 name`
    ///   as vsftpd prints it; symlinks with a known target end in
    ///   `name -> target`; an unknown time prints as the epoch. The recent
    ///   form is used for times within the six months before `now` and at
    ///   most an hour after it. [`FileKind::Other`] prints as `-`, which
    ///   every client parser accepts.
    /// - [`ListStyle::Names`]: just `name`.
    /// - [`ListStyle::Machine`]: like `fact=value;... name`, only the selected
    ///   facts, in the fixed order of the [`Facts`] constants; facts with
    ///   no value for this entry (size of a directory, unknown time or
    ///   identity) are left out.
    ///
    /// Whatever the entry holds, exactly one CRLF is written, at the end.
    pub fn write_entry(&self, entry: &DirEntry, now: UnixTime, out: &mut Vec<u8>) {
        match self.style {
            ListStyle::Long => write_long(entry, now, out),
            ListStyle::Names => {
                if let Some(glob) = &self.glob {
                    put_clean(out, &glob.prefix);
                }
                put_clean(out, &entry.name);
                out.put("\r\n");
            }
            ListStyle::Machine(facts) => {
                put_facts(out, facts, self.writable, &entry.meta);
                out.put_byte(b' ');
                put_clean(out, &entry.name);
                out.put("\r\n");
            }
        }
    }
}

/// Appends `time` as `YYYYMMDDHHMMSS` in UTC, the `MDTM` reply and MLST
/// `modify` form. Times before year 0 print as `00000101000000` and times
/// after year 9999 as `99991231235959`, so the result is always 14 digits.
pub fn write_mdtm(time: UnixTime, out: &mut String) {
    put_timestamp(out, time);
}

/// Appends the MLST reply's entry line (RFC 3659 7.2): a single leading
/// space, the selected facts of `entry` as [`ListFormat::write_entry`]
/// prints them for MLSD, a space, `display_name` (usually the path the
/// client asked about, used instead of `entry.name`) and CRLF. The name is
/// sanitised like every listed name.
pub fn write_mlst_entry(
    facts: Facts,
    writable: bool,
    entry: &DirEntry,
    display_name: &str,
    out: &mut String,
) {
    out.push(' ');
    put_facts(out, facts, writable, &entry.meta);
    out.push(' ');
    put_clean(out, display_name);
    out.push_str("\r\n");
}

/// A buffer the writers append ASCII and sanitised UTF-8 to.
trait Sink {
    fn put(&mut self, s: &str);
    /// Appends one byte; callers only pass ASCII.
    fn put_byte(&mut self, b: u8);
    /// Appends a byte a name's escape stands for ([`crate::name`]): raw
    /// on the wire; text sinks keep the escape.
    fn put_raw(&mut self, c: char, b: u8);
}

impl Sink for Vec<u8> {
    fn put(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    fn put_byte(&mut self, b: u8) {
        self.push(b);
    }
    fn put_raw(&mut self, _: char, b: u8) {
        self.push(b);
    }
}

impl Sink for String {
    fn put(&mut self, s: &str) {
        self.push_str(s);
    }
    fn put_byte(&mut self, b: u8) {
        self.push(char::from(b));
    }
    fn put_raw(&mut self, c: char, _: u8) {
        // A reply line: written out by the reply writer, which turns the
        // escape into its byte.
        self.push(c);
    }
}

/// Appends `s` with every byte for which `bad` holds (all ASCII) replaced
/// by `?`.
fn put_replacing<S: Sink>(out: &mut S, s: &str, bad: impl Fn(u8) -> bool) {
    if crate::name::has_escapes(s) {
        let mut buf = [0u8; 4];
        for c in s.chars() {
            match crate::name::escaped_byte(c) {
                Some(b) => out.put_raw(c, b),
                None if c.is_ascii() && bad(c as u8) => out.put_byte(b'?'),
                None => out.put(c.encode_utf8(&mut buf)),
            }
        }
        return;
    }
    let mut rest = s;
    while let Some(i) = rest.bytes().position(&bad) {
        // `bad` bytes are ASCII, hence char boundaries on both sides.
        let (run, tail) = rest.split_at(i);
        out.put(run);
        out.put_byte(b'?');
        rest = tail.get(1..).unwrap_or_default();
    }
    out.put(rest);
}

/// Appends a name, owner, group or link target with CR, LF and NUL
/// replaced by `?`.
fn put_clean<S: Sink>(out: &mut S, s: &str) {
    put_replacing(out, s, |b| matches!(b, b'\r' | b'\n' | 0));
}

/// Appends a fact value: as [`put_clean`], and `;` and space (which would
/// end the fact or the fact list) become `?` too.
fn put_fact_value<S: Sink>(out: &mut S, s: &str) {
    put_replacing(out, s, |b| matches!(b, b'\r' | b'\n' | 0 | b';' | b' '));
}

/// Appends `n` in `radix` (at most 16), padded on the left with `pad` to
/// at least `width` bytes.
fn put_uint<S: Sink>(out: &mut S, n: u64, radix: u64, width: usize, pad: u8) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let radix = radix.clamp(2, 16);
    let mut buf = [0u8; 64];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % radix) as usize];
        n /= radix;
        if n == 0 {
            break;
        }
    }
    for _ in (buf.len() - i)..width {
        out.put_byte(pad);
    }
    if let Ok(digits) = core::str::from_utf8(&buf[i..]) {
        out.put(digits);
    }
}

/// Appends `n` in decimal, right-aligned in `width` with spaces.
fn put_int_right<S: Sink>(out: &mut S, n: i64, width: usize) {
    let mut buf = [b' '; 24];
    let mut i = buf.len();
    let mut m = n.unsigned_abs();
    loop {
        i -= 1;
        buf[i] = b'0' + (m % 10) as u8;
        m /= 10;
        if m == 0 {
            break;
        }
    }
    if n < 0 {
        i -= 1;
        buf[i] = b'-';
    }
    for _ in (buf.len() - i)..width {
        out.put_byte(b' ');
    }
    if let Ok(digits) = core::str::from_utf8(&buf[i..]) {
        out.put(digits);
    }
}

/// Appends `n` as two decimal digits.
fn put_2digits<S: Sink>(out: &mut S, n: u32) {
    put_uint(out, u64::from(n), 10, 2, b'0');
}

/// Appends a string left-aligned in `width` characters.
fn put_clean_left<S: Sink>(out: &mut S, s: &str, width: usize) {
    put_clean(out, s);
    for _ in s.chars().count()..width {
        out.put_byte(b' ');
    }
}

/// `YYYYMMDDHHMMSS`, clamped to years 0 to 9999.
fn put_timestamp<S: Sink>(out: &mut S, time: UnixTime) {
    let dt = time.to_datetime();
    if dt.year < 0 {
        out.put("00000101000000");
    } else if dt.year > 9999 {
        out.put("99991231235959");
    } else {
        put_uint(out, dt.year.unsigned_abs(), 10, 4, b'0');
        put_2digits(out, dt.month);
        put_2digits(out, dt.day);
        put_2digits(out, dt.hour);
        put_2digits(out, dt.minute);
        put_2digits(out, dt.second);
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Half of an average Gregorian year, the "recent" window of `ls -l`.
const SIX_MONTHS: i64 = 15_778_476;

/// How far in the future a time may be and still print as recent.
const FUTURE_SLACK: i64 = 3600;

/// `Mon DD HH:MM` for recent times, `Mon DD  YYYY` otherwise.
fn put_ls_date<S: Sink>(out: &mut S, time: UnixTime, now: UnixTime) {
    let dt = time.to_datetime();
    let month = MONTHS
        .get((dt.month as usize).wrapping_sub(1))
        .copied()
        .unwrap_or("???");
    out.put(month);
    out.put_byte(b' ');
    put_uint(out, u64::from(dt.day), 10, 2, b' ');
    out.put_byte(b' ');
    let recent =
        time.0 > now.0.saturating_sub(SIX_MONTHS) && time.0 <= now.0.saturating_add(FUTURE_SLACK);
    if recent {
        put_2digits(out, dt.hour);
        out.put_byte(b':');
        put_2digits(out, dt.minute);
    } else {
        // Width 5 keeps the column as wide as `HH:MM`.
        put_int_right(out, dt.year, 5);
    }
}

/// The ten-character `ls -l` mode column.
fn put_mode<S: Sink>(out: &mut S, kind: FileKind, mode: u32) {
    let mut s = *b"----------";
    s[0] = match kind {
        FileKind::Dir => b'd',
        FileKind::Symlink => b'l',
        FileKind::File | FileKind::Other => b'-',
    };
    const BITS: [(u32, u8); 9] = [
        (0o400, b'r'),
        (0o200, b'w'),
        (0o100, b'x'),
        (0o040, b'r'),
        (0o020, b'w'),
        (0o010, b'x'),
        (0o004, b'r'),
        (0o002, b'w'),
        (0o001, b'x'),
    ];
    for (slot, &(bit, c)) in s[1..].iter_mut().zip(BITS.iter()) {
        if mode & bit != 0 {
            *slot = c;
        }
    }
    // setuid, setgid, sticky: lower case over x, upper case without x.
    for (bit, idx, c) in [(0o4000, 3, b's'), (0o2000, 6, b's'), (0o1000, 9, b't')] {
        if mode & bit != 0 {
            s[idx] = if s[idx] == b'x' {
                c
            } else {
                c.to_ascii_uppercase()
            };
        }
    }
    if let Ok(s) = core::str::from_utf8(&s) {
        out.put(s);
    }
}

fn write_long<S: Sink>(entry: &DirEntry, now: UnixTime, out: &mut S) {
    let meta = &entry.meta;
    put_mode(out, meta.kind, meta.mode);
    out.put_byte(b' ');
    put_uint(out, meta.nlink, 10, 4, b' ');
    out.put_byte(b' ');
    put_clean_left(out, &meta.owner, 8);
    out.put_byte(b' ');
    put_clean_left(out, &meta.group, 8);
    out.put_byte(b' ');
    put_uint(out, meta.size, 10, 8, b' ');
    out.put_byte(b' ');
    put_ls_date(out, meta.modified.unwrap_or(UnixTime(0)), now);
    out.put_byte(b' ');
    put_clean(out, &entry.name);
    if meta.kind == FileKind::Symlink {
        if let Some(target) = &entry.link_target {
            out.put(" -> ");
            put_clean(out, target);
        }
    }
    out.put("\r\n");
}

/// The `perm` fact's value (RFC 3659 7.5.5).
fn perm_value(kind: FileKind, writable: bool) -> &'static str {
    match (kind, writable) {
        (FileKind::File, false) => "r",
        (FileKind::File, true) => "adfrw",
        (FileKind::Dir, false) => "el",
        (FileKind::Dir, true) => "cdeflmp",
        // A link may lead to a file or a directory; what can surely be done
        // to the link itself is delete and rename it.
        (FileKind::Symlink, false) => "elr",
        (FileKind::Symlink, true) => "deflr",
        (FileKind::Other, false) => "",
        (FileKind::Other, true) => "df",
    }
}

/// `fact=value;` for each selected fact that has a value, in fixed order.
fn put_facts<S: Sink>(out: &mut S, facts: Facts, writable: bool, meta: &Metadata) {
    if facts.contains(Facts::TYPE) {
        out.put("type=");
        out.put(match meta.kind {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "OS.unix=symlink",
            FileKind::Other => "OS.unix=other",
        });
        out.put_byte(b';');
    }
    if facts.contains(Facts::SIZE) && meta.kind == FileKind::File {
        out.put("size=");
        put_uint(out, meta.size, 10, 0, b'0');
        out.put_byte(b';');
    }
    if facts.contains(Facts::MODIFY) {
        if let Some(time) = meta.modified {
            out.put("modify=");
            put_timestamp(out, time);
            out.put_byte(b';');
        }
    }
    if facts.contains(Facts::PERM) {
        out.put("perm=");
        out.put(perm_value(meta.kind, writable));
        out.put_byte(b';');
    }
    if facts.contains(Facts::UNIQUE) {
        if let Some((dev, ino)) = meta.unique {
            out.put("unique=");
            put_uint(out, dev, 16, 0, b'0');
            out.put_byte(b'g');
            put_uint(out, ino, 16, 0, b'0');
            out.put_byte(b';');
        }
    }
    if facts.contains(Facts::UNIX_MODE) {
        out.put("unix.mode=");
        put_uint(out, u64::from(meta.mode & 0o7777), 8, 4, b'0');
        out.put_byte(b';');
    }
    if facts.contains(Facts::UNIX_OWNER) {
        out.put("unix.owner=");
        put_fact_value(out, &meta.owner);
        out.put_byte(b';');
    }
    if facts.contains(Facts::UNIX_GROUP) {
        out.put("unix.group=");
        put_fact_value(out, &meta.group);
        out.put_byte(b';');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::DateTime;
    use alloc::string::ToString;
    use alloc::vec;
    use proptest::prelude::*;

    fn at(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> UnixTime {
        UnixTime::from_datetime(DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
        .expect("valid test date")
    }

    fn now() -> UnixTime {
        at(2026, 11, 26, 12, 15, 0)
    }

    fn entry(name: &str, kind: FileKind, mode: u32, size: u64) -> DirEntry {
        DirEntry {
            name: name.to_string(),
            meta: Metadata {
                kind,
                size,
                modified: Some(now()),
                mode,
                nlink: 1,
                owner: "alice".to_string(),
                group: "staff".to_string(),
                unique: Some((0x803, 0x2a)),
            },
            link_target: None,
        }
    }

    fn format(style: ListStyle) -> ListFormat {
        ListFormat {
            style,
            show_hidden: false,
            writable: false,
            glob: None,
        }
    }

    fn line(format: &ListFormat, e: &DirEntry) -> String {
        let mut out = Vec::new();
        format.write_entry(e, now(), &mut out);
        String::from_utf8(out).expect("listing output is UTF-8")
    }

    fn long(e: &DirEntry) -> String {
        line(&format(ListStyle::Long), e)
    }

    #[test]
    fn long_recent() {
        let mut e = entry("notes.txt", FileKind::File, 0o644, 123);
        e.meta.modified = Some(at(2026, 11, 26, 12, 15, 30));
        assert_eq!(
            long(&e),
            "-rw-r--r--    1 alice    staff         123 Nov 26 12:15 notes.txt\r\n"
        );
        let mut d = entry("src", FileKind::Dir, 0o755, 4096);
        d.meta.nlink = 2;
        d.meta.modified = Some(at(2026, 6, 5, 8, 3, 0));
        assert_eq!(
            long(&d),
            "drwxr-xr-x    2 alice    staff        4096 Jun  5 08:03 src\r\n"
        );
    }

    #[test]
    fn long_old_and_future() {
        let mut e = entry("old", FileKind::File, 0o600, 0);
        e.meta.modified = Some(at(2020, 3, 5, 1, 2, 3));
        assert_eq!(
            long(&e),
            "-rw-------    1 alice    staff           0 Mar  5  2020 old\r\n"
        );
        // Just over six months ago.
        e.meta.modified = Some(at(2026, 5, 26, 12, 0, 0));
        assert!(long(&e).contains(" May 26  2026 old"));
        // Slightly in the future is still recent, hours ahead is not.
        e.meta.modified = Some(at(2026, 11, 26, 12, 45, 0));
        assert!(long(&e).contains(" Nov 26 12:45 old"));
        e.meta.modified = Some(at(2026, 11, 26, 14, 15, 0));
        assert!(long(&e).contains(" Nov 26  2026 old"));
        e.meta.modified = Some(at(2031, 1, 2, 0, 0, 0));
        assert!(long(&e).contains(" Jan  2  2031 old"));
    }

    #[test]
    fn long_unknown_and_extreme_times() {
        let mut e = entry("x", FileKind::File, 0o644, 1);
        e.meta.modified = None;
        assert!(long(&e).contains(" Jan  1  1970 x\r\n"));
        e.meta.modified = Some(UnixTime(i64::MAX));
        assert!(long(&e).ends_with(" x\r\n"));
        e.meta.modified = Some(UnixTime(i64::MIN));
        assert!(long(&e).ends_with(" x\r\n"));
        let mut out = Vec::new();
        format(ListStyle::Long).write_entry(&e, UnixTime(i64::MIN), &mut out);
        format(ListStyle::Long).write_entry(&e, UnixTime(i64::MAX), &mut out);
    }

    #[test]
    fn long_special_bits() {
        let cases = [
            (FileKind::File, 0o4755, "-rwsr-xr-x"),
            (FileKind::File, 0o4644, "-rwSr--r--"),
            (FileKind::File, 0o2755, "-rwxr-sr-x"),
            (FileKind::File, 0o2745, "-rwxr-Sr-x"),
            (FileKind::Dir, 0o1777, "drwxrwxrwt"),
            (FileKind::Dir, 0o1776, "drwxrwxrwT"),
            (FileKind::File, 0o7000, "---S--S--T"),
            (FileKind::File, 0o7777, "-rwsrwsrwt"),
            (FileKind::Other, 0o666, "-rw-rw-rw-"),
            (FileKind::File, 0o170_777, "-rwxrwxrwx"),
        ];
        for (kind, mode, want) in cases {
            let text = long(&entry("f", kind, mode, 0));
            assert_eq!(&text[..10], want, "mode {mode:o}");
        }
    }

    #[test]
    fn long_symlink() {
        let mut e = entry("link", FileKind::Symlink, 0o777, 11);
        e.meta.owner = "root".to_string();
        e.meta.group = "root".to_string();
        e.link_target = Some("target.txt".to_string());
        assert_eq!(
            long(&e),
            "lrwxrwxrwx    1 root     root           11 Nov 26 12:15 link -> target.txt\r\n"
        );
        e.link_target = None;
        assert!(long(&e).ends_with(" 12:15 link\r\n"));
        // A target on a non-link is not printed.
        let mut f = entry("file", FileKind::File, 0o644, 1);
        f.link_target = Some("t".to_string());
        assert!(long(&f).ends_with(" 12:15 file\r\n"));
    }

    #[test]
    fn long_wide_fields() {
        let mut e = entry("big.iso", FileKind::File, 0o644, 12_345_678_901);
        e.meta.nlink = 123_456;
        e.meta.owner = "averylongowner".to_string();
        e.meta.group = "g".to_string();
        assert_eq!(
            long(&e),
            "-rw-r--r-- 123456 averylongowner g        12345678901 Nov 26 12:15 big.iso\r\n"
        );
        e.meta.size = u64::MAX;
        assert!(long(&e).contains(" 18446744073709551615 "));
    }

    #[test]
    fn names_style() {
        let e = entry("a b.txt", FileKind::File, 0o644, 1);
        assert_eq!(line(&format(ListStyle::Names), &e), "a b.txt\r\n");
    }

    #[test]
    fn hidden_filtering() {
        let mut f = format(ListStyle::Long);
        assert!(f.includes("file"));
        assert!(f.includes("a.b"));
        assert!(!f.includes(".profile"));
        assert!(!f.includes("."));
        assert!(!f.includes(".."));
        assert!(!f.includes(""));
        f.show_hidden = true;
        assert!(f.includes(".profile"));
        assert!(f.includes("..."));
        assert!(!f.includes("."));
        assert!(!f.includes(".."));
    }

    #[test]
    fn control_characters_are_replaced() {
        let mut e = entry("evil\r\n226 done\0.txt", FileKind::Symlink, 0o777, 1);
        e.link_target = Some("t\n".to_string());
        e.meta.owner = "o\rw".to_string();
        e.meta.group = "g\ng".to_string();
        assert_eq!(
            long(&e),
            "lrwxrwxrwx    1 o?w      g?g             1 Nov 26 12:15 evil??226 done?.txt -> t?\r\n"
        );
        assert_eq!(
            line(&format(ListStyle::Names), &e),
            "evil??226 done?.txt\r\n"
        );
        assert_eq!(
            line(
                &format(ListStyle::Machine(Facts::UNIX_OWNER | Facts::UNIX_GROUP)),
                &e
            ),
            "unix.owner=o?w;unix.group=g?g; evil??226 done?.txt\r\n"
        );
        let mut s = String::new();
        write_mlst_entry(Facts::TYPE, false, &e, "/a\r\nb", &mut s);
        assert_eq!(s, " type=OS.unix=symlink; /a??b\r\n");
    }

    #[test]
    fn machine_file() {
        let e = entry("notes.txt", FileKind::File, 0o644, 123);
        let mut f = format(ListStyle::Machine(Facts::DEFAULT));
        assert_eq!(
            line(&f, &e),
            "type=file;size=123;modify=20261126121500;perm=r;unique=803g2a;unix.mode=0644; notes.txt\r\n"
        );
        f.writable = true;
        assert_eq!(
            line(&f, &e),
            "type=file;size=123;modify=20261126121500;perm=adfrw;unique=803g2a;unix.mode=0644; notes.txt\r\n"
        );
        f.style = ListStyle::Machine(Facts::ALL);
        assert_eq!(
            line(&f, &e),
            "type=file;size=123;modify=20261126121500;perm=adfrw;unique=803g2a;unix.mode=0644;\
             unix.owner=alice;unix.group=staff; notes.txt\r\n"
        );
    }

    #[test]
    fn machine_kinds_and_missing_values() {
        let mut d = entry("dir name", FileKind::Dir, 0o2755, 4096);
        d.meta.modified = None;
        d.meta.unique = None;
        let mut f = format(ListStyle::Machine(Facts::DEFAULT));
        assert_eq!(
            line(&f, &d),
            "type=dir;perm=el;unix.mode=2755; dir name\r\n"
        );
        f.writable = true;
        assert_eq!(
            line(&f, &d),
            "type=dir;perm=cdeflmp;unix.mode=2755; dir name\r\n"
        );
        let o = entry("fifo", FileKind::Other, 0o600, 0);
        f.style = ListStyle::Machine(Facts::TYPE | Facts::SIZE | Facts::PERM);
        assert_eq!(line(&f, &o), "type=OS.unix=other;perm=df; fifo\r\n");
        f.writable = false;
        assert_eq!(line(&f, &o), "type=OS.unix=other;perm=; fifo\r\n");
        let l = entry("l", FileKind::Symlink, 0o777, 3);
        assert_eq!(line(&f, &l), "type=OS.unix=symlink;perm=elr; l\r\n");
        f.style = ListStyle::Machine(Facts::NONE);
        assert_eq!(line(&f, &l), " l\r\n");
    }

    #[test]
    fn machine_fact_selection() {
        let e = entry("f", FileKind::File, 0o100644, 5);
        let facts = Facts::from_names(["SIZE", "unix.MODE", "bogus", "", " modify "]);
        assert_eq!(facts, Facts::SIZE | Facts::MODIFY | Facts::UNIX_MODE);
        assert_eq!(
            line(&format(ListStyle::Machine(facts)), &e),
            "size=5;modify=20261126121500;unix.mode=0644; f\r\n"
        );
        let names = vec!["type".to_string(), "unique".to_string()];
        assert_eq!(Facts::from_names(&names), Facts::TYPE | Facts::UNIQUE);
        assert_eq!(Facts::from_names(Vec::<&str>::new()), Facts::NONE);
        assert_eq!(Facts::from_name("Unix.Owner"), Some(Facts::UNIX_OWNER));
        assert_eq!(Facts::from_name("charset"), None);
        assert!(Facts::ALL.contains(Facts::DEFAULT));
        assert!(!Facts::DEFAULT.contains(Facts::UNIX_GROUP));
        assert_eq!(Facts::default(), Facts::DEFAULT);
        let mut f = Facts::NONE;
        assert!(f.is_empty());
        f |= Facts::PERM;
        assert!(f.contains(Facts::PERM) && !f.is_empty());
    }

    #[test]
    fn unique_and_owner_values() {
        let mut e = entry("f", FileKind::File, 0o644, 5);
        e.meta.unique = Some((0, u64::MAX));
        e.meta.owner = "john doe;x".to_string();
        let f = format(ListStyle::Machine(Facts::UNIQUE | Facts::UNIX_OWNER));
        assert_eq!(
            line(&f, &e),
            "unique=0gffffffffffffffff;unix.owner=john?doe?x; f\r\n"
        );
    }

    #[test]
    fn feat_and_opts_lines() {
        let mut s = String::new();
        Facts::DEFAULT.write_feat_line(&mut s);
        assert_eq!(
            s,
            "MLST type*;size*;modify*;perm*;unique*;unix.mode*;unix.owner;unix.group;"
        );
        s.clear();
        (Facts::TYPE | Facts::UNIX_GROUP).write_feat_line(&mut s);
        assert_eq!(
            s,
            "MLST type*;size;modify;perm;unique;unix.mode;unix.owner;unix.group*;"
        );
        s.clear();
        (Facts::SIZE | Facts::TYPE).write_names(&mut s);
        assert_eq!(s, "type;size;");
        s.clear();
        Facts::NONE.write_names(&mut s);
        assert_eq!(s, "");
    }

    #[test]
    fn mdtm() {
        let mut s = String::new();
        write_mdtm(at(2026, 11, 26, 12, 15, 0), &mut s);
        assert_eq!(s, "20261126121500");
        let cases = [
            (UnixTime(0), "19700101000000"),
            (at(999, 1, 2, 3, 4, 5), "09990102030405"),
            (at(9999, 12, 31, 23, 59, 59), "99991231235959"),
            (at(10000, 1, 1, 0, 0, 0), "99991231235959"),
            (at(0, 1, 1, 0, 0, 0), "00000101000000"),
            (at(-1, 12, 31, 23, 59, 59), "00000101000000"),
            (UnixTime(i64::MAX), "99991231235959"),
            (UnixTime(i64::MIN), "00000101000000"),
        ];
        for (t, want) in cases {
            s.clear();
            write_mdtm(t, &mut s);
            assert_eq!(s, want, "{t:?}");
        }
    }

    #[test]
    fn mlst_entry() {
        let e = entry("ignored", FileKind::File, 0o644, 123);
        let mut s = String::new();
        write_mlst_entry(Facts::DEFAULT, true, &e, "/pub/notes.txt", &mut s);
        assert_eq!(
            s,
            " type=file;size=123;modify=20261126121500;perm=adfrw;unique=803g2a;unix.mode=0644; /pub/notes.txt\r\n"
        );
        s.clear();
        write_mlst_entry(Facts::TYPE | Facts::PERM, false, &e, "/", &mut s);
        assert_eq!(s, " type=file;perm=r; /\r\n");
    }

    fn kind_strategy() -> impl Strategy<Value = FileKind> {
        prop_oneof![
            Just(FileKind::File),
            Just(FileKind::Dir),
            Just(FileKind::Symlink),
            Just(FileKind::Other),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a-z\r\n\0; .]{0,12}"]
    }

    proptest! {
        #[test]
        fn one_line_per_entry(
            name in text(),
            owner in text(),
            group in text(),
            target in proptest::option::of(text()),
            kind in kind_strategy(),
            mode in any::<u32>(),
            size in any::<u64>(),
            nlink in any::<u64>(),
            modified in proptest::option::of(any::<i64>()),
            now in any::<i64>(),
            unique in proptest::option::of(any::<(u64, u64)>()),
            facts in any::<u8>(),
            writable in any::<bool>(),
        ) {
            let e = DirEntry {
                name,
                meta: Metadata {
                    kind,
                    size,
                    modified: modified.map(UnixTime),
                    mode,
                    nlink,
                    owner,
                    group,
                    unique,
                },
                link_target: target,
            };
            for style in [ListStyle::Long, ListStyle::Names, ListStyle::Machine(Facts(facts))] {
                let f = ListFormat {
                    style,
                    show_hidden: true,
                    writable,
                    glob: None,
                };
                let mut out = Vec::new();
                f.write_entry(&e, UnixTime(now), &mut out);
                prop_assert!(out.ends_with(b"\r\n"));
                let body = &out[..out.len() - 2];
                prop_assert!(!body.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
                prop_assert!(core::str::from_utf8(&out).is_ok());
            }
            let mut s = String::new();
            write_mlst_entry(Facts(facts), writable, &e, &e.name, &mut s);
            prop_assert!(s.starts_with(' ') && s.ends_with("\r\n"));
            prop_assert!(!s[..s.len() - 2].contains(['\r', '\n', '\0']));
        }

        #[test]
        fn mdtm_is_14_digits(t in any::<i64>()) {
            let mut s = String::new();
            write_mdtm(UnixTime(t), &mut s);
            prop_assert_eq!(s.len(), 14);
            prop_assert!(s.bytes().all(|b| b.is_ascii_digit()));
        }
    }
}
