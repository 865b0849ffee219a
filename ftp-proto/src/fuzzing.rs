//! The checking bodies of the fuzz targets in `fuzz/` and of the corpus
//! replay test (`tests/fuzz_corpus.rs`).
//!
//! Every public function takes arbitrary bytes, drives one part of the
//! engine with them and panics when an invariant does not hold; that is how
//! libFuzzer and the replay test see a bug. Nothing here does I/O or needs
//! `std`, and the same input always takes the same path.
//!
//! Inputs are read with a small cursor that yields zeros past the end, so
//! every byte string is a valid input and a mutation of one byte changes one
//! decision.

use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use core::time::Duration;

use crate::ascii::{AsciiDecoder, AsciiEncoder};
use crate::config::{Config, TlsPolicy};
use crate::event::Event;
use crate::intent::{
    AuthError, Completion, DataEndpoint, FsError, Grant, Intent, IntentId, Output, ResourceError,
    StoreMode, TlsSwitchError, TransferError, TransferEvent, TransferOp,
};
use crate::line::{Line, LineBuffer};
use crate::listing::{Facts, ListFormat, ListStyle, write_mdtm, write_mlst_entry};
use crate::meta::{DirEntry, FileKind, Metadata};
use crate::parse::{ParseError, encode_command, parse_command};
use crate::path::VirtualPath;
use crate::reply::{Reply, is_well_formed};
use crate::session::Session;
use crate::time::{Instant, UnixTime};

// ---------------------------------------------------------------------------
// Input cursor
// ---------------------------------------------------------------------------

/// Reads decisions from fuzz input; past the end every read gives zero.
#[derive(Debug)]
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        for x in &mut b {
            *x = self.u8();
        }
        u64::from_le_bytes(b)
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    /// A number below `n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let v = if n <= 256 {
            usize::from(self.u8())
        } else {
            usize::from(self.u16())
        };
        v % n
    }

    fn pick<T: Copy>(&mut self, table: &[T]) -> T {
        table[self.below(table.len())]
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    /// A length byte (below `max + 1`), then that many bytes.
    fn bytes(&mut self, max: usize) -> &'a [u8] {
        let n = self.below(max + 1);
        self.take(n)
    }

    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }

    /// A `u64`, often a boundary value.
    fn any_u64(&mut self) -> u64 {
        let sel = self.u8();
        match sel % 4 {
            0 => u64::from(sel >> 2),
            1 => [
                0,
                1,
                0x7f,
                0xff,
                4096,
                u64::from(u32::MAX),
                i64::MAX as u64,
                u64::MAX,
            ][usize::from(sel >> 2) % 8],
            _ => self.u64(),
        }
    }

    /// An `i64` time, often a boundary value or a date near now.
    fn any_time(&mut self) -> i64 {
        let sel = self.u8();
        match sel % 4 {
            0 => 1_790_000_000 + i64::from(sel >> 2) * 86_400 * 30 - 86_400 * 30 * 32,
            1 => [
                0,
                -1,
                i64::MIN,
                i64::MAX,
                253_402_300_799,
                253_402_300_800,
                -62_167_219_201,
                1_790_000_000,
            ][usize::from(sel >> 2) % 8],
            _ => self.u64() as i64,
        }
    }

    /// A string: one of a few troublesome ones, or bytes from the input.
    fn text(&mut self, max: usize) -> String {
        const SPECIAL: &[&str] = &[
            "",
            ".",
            "..",
            "a b",
            "evil\r\n230 Login successful.",
            "x\0y",
            "\r",
            "\n",
            "ünïçødé",
            "semi;colon",
            "-rw-r--r--",
            "211 End",
        ];
        let sel = self.u8();
        if sel < 48 {
            String::from(SPECIAL[usize::from(sel) % SPECIAL.len()])
        } else {
            String::from_utf8_lossy(self.bytes(max)).into_owned()
        }
    }
}

/// Sorted cut positions in `0..=len`, from raw values.
fn cut_points(raw: &[u16], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = raw.iter().map(|&c| usize::from(c) % (len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

/// `data` cut at `cuts` (sorted, within bounds).
fn pieces<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(cuts.len() + 1);
    let mut prev = 0;
    for &cut in cuts {
        out.push(&data[prev..cut]);
        prev = cut;
    }
    out.push(&data[prev..]);
    out
}

/// Checks the invariants of a [`VirtualPath`]: absolute, no empty, `.` or
/// `..` component, no trailing slash but for the root, no NUL, and a fixed
/// point of resolution.
pub fn check_path(p: &VirtualPath) {
    let s = p.as_str();
    assert!(s.starts_with('/'), "path {s:?} is not absolute");
    assert!(!s.contains('\0'), "path {s:?} holds NUL");
    if s != "/" {
        for part in s[1..].split('/') {
            assert!(
                !part.is_empty() && part != "." && part != "..",
                "path {s:?} is not normalised"
            );
        }
    }
    assert_eq!(p.is_root(), s == "/");
    assert_eq!(
        VirtualPath::root().resolve(s).as_ref(),
        Some(p),
        "path {s:?} is not a fixed point"
    );
}

// ---------------------------------------------------------------------------
// parse
// ---------------------------------------------------------------------------

/// `parse_command` never panics; whatever it parses encodes to a line that
/// parses to the same command, also after crossing the line framing.
pub fn parse(data: &[u8]) {
    check_parse(data);
    if data.contains(&b'\n') {
        for line in data.split(|&b| b == b'\n') {
            check_parse(line);
        }
    }
}

fn check_parse(line: &[u8]) {
    let cmd = match parse_command(line) {
        Ok(cmd) => cmd,
        Err(e) => {
            assert!(
                !matches!(e, ParseError::NotImplemented(_)),
                "the parser never says NotImplemented"
            );
            assert!(matches!(e.reply_code(), 500 | 501 | 504 | 522));
            return;
        }
    };
    let encoded = encode_command(&cmd);
    assert!(encoded.starts_with(cmd.verb()), "{encoded:?} for {cmd:?}");
    assert_eq!(
        parse_command(&crate::name::encode(&encoded)),
        Ok(cmd.clone()),
        "round trip of {line:?} through {encoded:?}"
    );
    // What a client writes crosses the line framing first.
    if !encoded.contains('\n') {
        let mut framing = LineBuffer::new(usize::MAX);
        // A client doubles 0xFF, Telnet's IAC, in what it sends.
        let mut wire = Vec::new();
        for b in crate::name::encode(&encoded) {
            wire.push(b);
            if b == 0xFF {
                wire.push(0xFF);
            }
        }
        framing.push(&wire);
        framing.push(b"\r\n");
        match framing.next_line() {
            Some(Line::Complete(l)) => {
                assert_eq!(parse_command(l), Ok(cmd), "{encoded:?} changed on the wire")
            }
            other => panic!("{encoded:?} framed as {other:?}"),
        }
        assert_eq!(framing.next_line(), None);
    }
}

// ---------------------------------------------------------------------------
// line_framing
// ---------------------------------------------------------------------------

/// Owned form of [`Line`].
#[derive(Debug, PartialEq, Eq)]
enum Framed {
    Complete(Vec<u8>),
    TooLong,
}

/// The same bytes pushed whole, in pieces (draining at some of the cuts) and
/// one at a time frame into the same lines; `buffered()` only holds complete
/// lines and at most `max_line + 1` bytes of the current one.
pub fn line_framing(data: &[u8]) {
    let mut r = Reader::new(data);
    let max = r.pick(&[0usize, 1, 2, 3, 4, 7, 8, 16, 64, 255, 4096]);
    let ncuts = r.below(9);
    let drain_mask = r.u8();
    let raw: Vec<u16> = (0..ncuts).map(|_| r.u16()).collect();
    let input = r.rest();
    let cuts = cut_points(&raw, input.len());

    let whole = frame(max, &[input], 0xff);
    let chunked = frame(max, &pieces(input, &cuts), drain_mask);
    assert_eq!(chunked, whole, "cuts {cuts:?} changed the lines");
    if input.len() <= 2048 {
        let bytewise: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(frame(max, &bytewise, drain_mask), whole, "byte-wise");
    }
}

fn frame(max: usize, parts: &[&[u8]], drain_mask: u8) -> Vec<Framed> {
    let mut lb = LineBuffer::new(max);
    assert_eq!(lb.max_line(), max);
    let mut out = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        lb.push(part);
        if drain_mask >> (i % 8) & 1 == 1 {
            drain_lines(&mut lb, max, &mut out);
        }
    }
    drain_lines(&mut lb, max, &mut out);
    out
}

fn drain_lines(lb: &mut LineBuffer, max: usize, out: &mut Vec<Framed>) {
    let before = lb.buffered();
    let mut content = 0;
    loop {
        let has = lb.has_line();
        match lb.next_line() {
            None => {
                assert!(!has, "has_line() but no line");
                break;
            }
            Some(Line::Complete(l)) => {
                assert!(has, "a line without has_line()");
                assert!(l.len() <= max, "line of {} bytes, limit {max}", l.len());
                assert!(!l.contains(&b'\n'), "LF inside a line");
                content += l.len();
                out.push(Framed::Complete(l.to_vec()));
            }
            Some(Line::TooLong) => {
                assert!(has, "a line without has_line()");
                out.push(Framed::TooLong);
            }
        }
    }
    let after = lb.buffered();
    assert!(
        after <= max + 1,
        "{after} bytes buffered without a line end, limit {max}"
    );
    assert_eq!(before, content + after, "buffered() miscounts");
}

// ---------------------------------------------------------------------------
// path
// ---------------------------------------------------------------------------

/// `VirtualPath::resolve` agrees with a component-stack model: results are
/// absolute and normalised, never above `/`, and resolving them again (from
/// any directory) changes nothing.
pub fn path(data: &[u8]) {
    let mut r = Reader::new(data);
    let cwd_len = usize::from(r.u8());
    let cwd_text = String::from_utf8_lossy(r.take(cwd_len)).into_owned();
    let args = r.rest();
    let mut cwd = match VirtualPath::root().resolve(&cwd_text) {
        Some(p) => p,
        None => {
            assert!(cwd_text.contains('\0'));
            VirtualPath::root()
        }
    };
    check_path(&cwd);
    // 64 arguments are plenty; more only slow the target down.
    for (i, arg) in args.split(|&b| b == b'\n').take(64).enumerate() {
        let arg = String::from_utf8_lossy(arg);
        let got = cwd.resolve(&arg);
        let want = model_resolve(&cwd, &arg);
        assert_eq!(
            got.as_ref().map(VirtualPath::as_str),
            want.as_deref(),
            "{arg:?} from {cwd:?}"
        );
        let Some(p) = got else {
            continue;
        };
        check_path(&p);
        assert_eq!(cwd.resolve(p.as_str()).as_ref(), Some(&p));
        assert_eq!(p.resolve(p.as_str()).as_ref(), Some(&p));
        assert_eq!(p.resolve("").as_ref(), Some(&p));
        assert_eq!(p.resolve(".").as_ref(), Some(&p));
        assert_eq!(p.resolve("..").as_ref(), Some(&p.parent()));
        check_path(&p.parent());
        match p.file_name() {
            None => assert!(p.is_root()),
            Some(name) => {
                assert!(!name.is_empty() && !name.contains('/'));
                assert_eq!(p.parent().resolve(name).as_ref(), Some(&p));
            }
        }
        let parts: Vec<&str> = p.components().collect();
        assert_eq!(parts.join("/"), p.relative());
        assert_eq!(format!("/{}", p.relative()), p.as_str());
        // Every other argument is a CWD: the next one starts from here.
        if i % 2 == 0 {
            cwd = p;
        }
    }
}

/// Resolution by a stack of components: the reference that
/// [`VirtualPath::resolve`] is checked against (here and by the property
/// tests). `None` for an argument with NUL.
pub fn model_resolve(cwd: &VirtualPath, arg: &str) -> Option<String> {
    if arg.contains('\0') {
        return None;
    }
    let mut stack: Vec<&str> = if arg.starts_with('/') {
        Vec::new()
    } else {
        cwd.components().collect()
    };
    for part in arg.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                stack.pop();
            }
            name => stack.push(name),
        }
    }
    Some(format!("/{}", stack.join("/")))
}

// ---------------------------------------------------------------------------
// listing
// ---------------------------------------------------------------------------

/// Every listing line, in every style, is exactly one CRLF-terminated line
/// that ends in the (sanitised) name; MLSD/MLST fact lists hold no space.
pub fn listing(data: &[u8]) {
    let mut r = Reader::new(data);
    let now = UnixTime(r.any_time());
    let facts = Facts(r.u8());
    let show_hidden = r.bool();
    let display = r.text(48);
    let mut entries = Vec::new();
    while !r.is_empty() && entries.len() < 16 {
        entries.push(dir_entry(&mut r));
    }
    let mut stat_lines = Vec::new();
    for entry in &entries {
        for writable in [false, true] {
            for style in [ListStyle::Long, ListStyle::Names, ListStyle::Machine(facts)] {
                let format = ListFormat {
                    style,
                    show_hidden,
                    writable,
                    glob: None,
                };
                let mut out = Vec::new();
                format.write_entry(entry, now, &mut out);
                let body = one_line(&out);
                let name = clean(&entry.name);
                match style {
                    ListStyle::Names => assert_eq!(body, name),
                    ListStyle::Long => {
                        let mut tail = name;
                        if let (FileKind::Symlink, Some(target)) =
                            (entry.meta.kind, &entry.link_target)
                        {
                            tail = format!("{tail} -> {}", clean(target));
                        }
                        assert!(body.ends_with(&tail), "{body:?} lacks {tail:?}");
                        assert!(body.len() >= 10 && body.is_char_boundary(10));
                        if style == ListStyle::Long && !writable {
                            stat_lines.push(body.clone());
                        }
                    }
                    ListStyle::Machine(facts) => {
                        let (list, shown) = body.split_once(' ').expect("facts, space, name");
                        check_facts(list, facts);
                        assert_eq!(shown, name);
                    }
                }
            }
            let mut line = String::new();
            write_mlst_entry(facts, writable, entry, &display, &mut line);
            let body = one_line(&crate::name::encode(&line));
            let rest = body
                .strip_prefix(' ')
                .expect("MLST lines start with a space");
            let (list, shown) = rest.split_once(' ').expect("facts, space, name");
            check_facts(list, facts);
            assert_eq!(shown, clean(&display));
        }
        let format = ListFormat {
            style: ListStyle::Long,
            show_hidden,
            writable: false,
            glob: None,
        };
        let included = format.includes(&entry.name);
        let expected = !matches!(entry.name.as_str(), "" | "." | "..")
            && (show_hidden || !entry.name.starts_with('.'));
        assert_eq!(included, expected, "includes({:?})", entry.name);
    }
    // A STAT reply made of those lines keeps its framing.
    let mut wire = Vec::new();
    Reply::multi(213, display.as_str(), stat_lines, "End of status.").encode(&mut wire);
    assert!(is_well_formed(&wire), "{wire:?}");
    let mut mdtm = String::new();
    write_mdtm(now, &mut mdtm);
    assert!(mdtm.len() == 14 && mdtm.bytes().all(|b| b.is_ascii_digit()));
}

fn dir_entry(r: &mut Reader<'_>) -> DirEntry {
    let kind = r.pick(&[
        FileKind::File,
        FileKind::Dir,
        FileKind::Symlink,
        FileKind::Other,
    ]);
    let name = r.text(40);
    let meta = metadata(r, kind);
    let link_target = if r.bool() { Some(r.text(40)) } else { None };
    DirEntry {
        name,
        meta,
        link_target,
    }
}

fn metadata(r: &mut Reader<'_>, kind: FileKind) -> Metadata {
    let size = r.any_u64();
    let modified = if r.u8() % 4 != 0 {
        Some(UnixTime(r.any_time()))
    } else {
        None
    };
    let mode = u32::from(r.u16()) | (u32::from(r.u8()) << 16);
    let nlink = r.any_u64();
    let owner = r.text(16);
    let group = r.text(16);
    let unique = if r.bool() {
        Some((r.any_u64(), r.any_u64()))
    } else {
        None
    };
    Metadata {
        kind,
        size,
        modified,
        mode,
        nlink,
        owner,
        group,
        unique,
    }
}

/// `s` as listings print it: CR, LF and NUL become `?`.
/// `s` as a listing shows it: CR, LF and NUL replaced, and as read back
/// from the wire (escaped bytes of names are written as the bytes they
/// stand for, [`crate::name`]).
fn clean(s: &str) -> String {
    let replaced = s.replace(['\r', '\n', '\0'], "?");
    crate::name::decode(&crate::name::encode(&replaced))
}

/// Checks that `out` is one line ending in CRLF with no other CR, LF or
/// NUL, and returns it without the CRLF, as text (bytes that are not
/// UTF-8, names' own bytes, read back as [`crate::name`] escapes).
fn one_line(out: &[u8]) -> String {
    let text = crate::name::decode(out);
    let body = text
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("{text:?} does not end in CRLF"));
    assert!(
        !body.contains(['\r', '\n', '\0']),
        "{text:?} is more than one line"
    );
    String::from(body)
}

/// An MLSD fact list: `name=value;` items of selected facts, no spaces.
fn check_facts(list: &str, facts: Facts) {
    assert!(!list.contains(' '), "space in facts {list:?}");
    assert!(list.is_empty() || list.ends_with(';'), "{list:?}");
    for item in list.split(';').filter(|i| !i.is_empty()) {
        let (name, _) = item.split_once('=').expect("fact=value");
        let fact = Facts::from_name(name).unwrap_or_else(|| panic!("unknown fact {name:?}"));
        assert!(facts.contains(fact), "{name} printed but not selected");
    }
}

// ---------------------------------------------------------------------------
// ascii
// ---------------------------------------------------------------------------

/// TYPE A conversion: both directions match a byte-at-a-time reference in
/// any chunking, the encoder leaves no bare LF, and decoding undoes encoding
/// for data without CR.
pub fn ascii(data: &[u8]) {
    let mut r = Reader::new(data);
    let ncuts = r.below(9);
    let raw: Vec<u16> = (0..ncuts).map(|_| r.u16()).collect();
    let input = r.rest();
    let cuts = cut_points(&raw, input.len());

    let encoded = encode_parts(&[input]);
    assert_eq!(encoded, encode_reference(input));
    assert_eq!(encode_parts(&pieces(input, &cuts)), encoded);
    for (i, &b) in encoded.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && encoded[i - 1] == b'\r', "bare LF at {i}");
        }
    }

    let decoded = decode_parts(&[input]);
    assert_eq!(decoded, decode_reference(input));
    assert_eq!(decode_parts(&pieces(input, &cuts)), decoded);

    let no_cr: Vec<u8> = input.iter().copied().filter(|&b| b != b'\r').collect();
    let cuts = cut_points(&raw, no_cr.len());
    let there = encode_parts(&pieces(&no_cr, &cuts));
    let cuts = cut_points(&raw, there.len());
    assert_eq!(decode_parts(&pieces(&there, &cuts)), no_cr, "round trip");
}

fn encode_parts(parts: &[&[u8]]) -> Vec<u8> {
    let mut enc = AsciiEncoder::new();
    let mut out = Vec::new();
    for part in parts {
        enc.encode(part, &mut out);
    }
    out
}

fn decode_parts(parts: &[&[u8]]) -> Vec<u8> {
    let mut dec = AsciiDecoder::new();
    let mut out = Vec::new();
    let mut last = None;
    for part in parts {
        dec.decode(part, &mut out);
        if let Some(&b) = part.last() {
            last = Some(b);
        }
        assert_eq!(dec.has_pending_cr(), last == Some(b'\r'));
    }
    dec.finish(&mut out);
    assert!(!dec.has_pending_cr());
    out
}

fn encode_reference(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut prev = 0u8;
    for &b in input {
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        prev = b;
    }
    out
}

fn decode_reference(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'\r' && input.get(i + 1) == Some(&b'\n') {
            out.push(b'\n');
            i += 2;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// session
// ---------------------------------------------------------------------------

/// Upper bound of [`Session::transmit`] with the configurations used here
/// (64 KiB high-water mark plus the largest replies that can follow it).
const TRANSMIT_BOUND: usize = 128 * 1024;

/// The reply text of REIN, which logs the session out.
const REIN_TEXT: &str = "Service ready for new user.";

/// How many steps the closing phase may take before the session counts as
/// stuck.
const FINISH_STEPS: usize = 100_000;

/// Operation codes of [`session`] inputs (the low four bits of a byte).
mod op {
    pub const LINE_FIRST: u8 = 0;
    pub const LINE_LAST: u8 = 4;
    pub const LOGIN: u8 = 5;
    pub const RAW: u8 = 6;
    pub const COMPLETE: u8 = 7;
    pub const COMPLETE_TOO: u8 = 8;
    pub const COMPLETE_GOOD: u8 = 9;
    pub const STALE: u8 = 10;
    pub const ADVANCE: u8 = 11;
    pub const TO_DEADLINE: u8 = 12;
    pub const CONSUME_SOME: u8 = 13;
    pub const CONSUME_ALL: u8 = 14;
    /// Followed by a byte: below 8, the server shuts down; else as
    /// `CONSUME_ALL`.
    pub const SHUTDOWN_OR_CONSUME: u8 = 15;
}

const VERBS: &[&str] = &[
    "USER", "PASS", "ACCT", "REIN", "QUIT", "CWD", "XCWD", "CDUP", "XCUP", "PWD", "XPWD", "MKD",
    "XMKD", "RMD", "XRMD", "DELE", "RNFR", "RNTO", "SIZE", "MDTM", "MFMT", "TYPE", "MODE", "STRU",
    "PORT", "PASV", "EPRT", "EPSV", "RETR", "STOR", "STOU", "APPE", "ALLO", "REST", "ABOR", "LIST",
    "NLST", "MLST", "MLSD", "STAT", "SYST", "HELP", "NOOP", "FEAT", "OPTS", "SITE", "HOST", "CLNT",
    "AUTH", "PBSZ", "PROT", "CCC", "SMNT", "LPRT", "XYZ", "",
];

const ARGS: &[&str] = &[
    "",
    "/",
    ".",
    "..",
    "../..",
    "/../..",
    "a",
    "dir",
    "dir/sub",
    "/dir/file.txt",
    "file.txt",
    "my file",
    ".hidden",
    "-la",
    "-a",
    "-l dir",
    "-R /",
    "I",
    "A",
    "A N",
    "L 8",
    "E",
    "S",
    "F",
    "B",
    "127,0,0,1,7,208",
    "127,0,0,1,0,21",
    "10,0,0,2,4,1",
    "|1|127.0.0.1|2000|",
    "|2|::1|2000|",
    "|1|10.0.0.2|2000|",
    "|3|x|1|",
    "1",
    "2",
    "ALL",
    "0",
    "100",
    "18446744073709551615",
    "99999999999999999999",
    "UTF8 ON",
    "UTF8 OFF",
    "MLST type;size;unix.owner;",
    "MLST",
    "CHMOD 755 file.txt",
    "CHMOD 7777 dir",
    "UMASK",
    "UMASK 022",
    "IDLE",
    "IDLE 60",
    "IDLE 1",
    "HELP",
    "20260101000000 file.txt",
    "19700101000000 a",
    "TLS",
    "anonymous",
    "ftp",
    "alice",
    "bob",
    "secret",
    "guest@",
    "a\"b",
    "日本語",
    "a\0b",
    "a\rb",
];

const DURATIONS_MS: &[u64] = &[
    0, 1, 10, 100, 499, 500, 999, 1000, 2000, 5000, 29_000, 30_000, 31_000, 59_000, 60_000, 61_000,
    299_000, 300_000, 301_000, 3_600_000, 7_200_000, 86_400_000,
];

/// Drives a whole [`Session`] with operations read from `data` (see
/// [`SessionScript`] for the encoding) and checks after every step:
///
/// * every byte queued for the client is a complete, well-formed reply
///   (valid UTF-8, no NUL), in the order the log events name them, and the
///   bytes the runtime consumes are the ones queued;
/// * intents name only normalised paths, come one at a time (an intent
///   needing an answer is never issued while another waits), respect the
///   active-mode policy and only use passive listeners that are open;
/// * no intent needing a login before a login this harness granted (or an
///   anonymous one the configuration allows), no write intent without
///   write permission, and the session's view of the login matches;
/// * `PASS` arguments never reach the log;
/// * transmit and input stay bounded; after `handle_timeout(now)` the next
///   deadline lies after `now`;
/// * nothing happens after `Output::Close`, and at the end the session
///   closes after a `QUIT` once its intents are answered (it never hangs).
pub fn session(data: &[u8]) {
    session_replies(data);
}

/// Runs [`session`] and returns every reply byte the session produced, to
/// see what an input does.
pub fn session_replies(data: &[u8]) -> Vec<u8> {
    let mut r = Reader::new(data);
    let mut driver = Driver::new(&mut r);
    let mut ops = 0;
    while !r.is_empty() && ops < 1024 && !driver.closed {
        ops += 1;
        driver.op(&mut r);
    }
    driver.finish();
    driver.produced
}

/// What the harness knows of the login.
#[derive(Clone, Copy, Debug)]
struct Model {
    logged_in: bool,
    write: bool,
    anonymous: bool,
}

/// The intent the session waits for.
#[derive(Debug)]
struct Awaited {
    id: IntentId,
    intent: Intent,
    ready: bool,
    aborted: bool,
}

/// A passive listener's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Listener {
    Open,
    Used,
    Closed,
}

/// What a step did, for the checks after it.
#[derive(Debug, Default)]
struct Step {
    /// A granted `Authenticate`: user and write permission.
    auth_ok: Option<(String, bool)>,
    /// Bytes pushed and the input capacity before.
    input: Option<(usize, usize)>,
    /// `handle_timeout` was called.
    timeout: bool,
    /// Nothing may happen (a completion for an id nobody waits for).
    quiet: bool,
    /// Whether the control connection was protected before the step.
    protected: bool,
}

#[derive(Debug)]
struct Driver {
    config: Arc<Config>,
    peer: SocketAddr,
    session: Session,
    now: Instant,
    /// Bytes the client has sent that the session has not taken yet.
    outbox: Vec<u8>,
    /// Every byte the session queued for the client.
    produced: Vec<u8>,
    /// How much of `produced` was consumed.
    consumed: usize,
    /// Bytes at the front of `transmit()` already in `produced`.
    seen: usize,
    model: Model,
    awaited: Option<Awaited>,
    listeners: Vec<(IntentId, Listener)>,
    /// Ids nobody waits for any more (recent ones).
    stale: Vec<IntentId>,
    last_id: u64,
    closed: bool,
    /// The session may close without a last reply (a failed TLS switch).
    silent_close: bool,
    /// The client closed its side ([`Session::handle_eof`]): the session
    /// answers what it had and closes with no reply of its own.
    input_ended: bool,
    /// Whether TLS can ever protect anything in this session.
    tls_possible: bool,
    /// The input capacity of a fresh session.
    input_limit: usize,
}

impl Driver {
    // The configuration is built field by field so that fields added later
    // keep their defaults here.
    #[allow(clippy::field_reassign_with_default)]
    fn new(r: &mut Reader<'_>) -> Self {
        let a = r.u8();
        let b = r.u8();
        let c = r.u8();
        let d = r.u8();
        let ms = Duration::from_millis;
        let secs = Duration::from_secs;
        let mut config = Config::default();
        config.greeting = String::from(if d & 0x10 != 0 {
            "Hi\r\n230 fake"
        } else {
            "Service ready."
        });
        config.authenticate_anonymous = d & 0x20 != 0;
        config.tls = match d >> 6 {
            0 => TlsPolicy::default(),
            1 => TlsPolicy {
                available: true,
                ..TlsPolicy::default()
            },
            2 => TlsPolicy {
                available: true,
                control_required: true,
                data_required: true,
                allow_ccc: false,
            },
            _ => TlsPolicy {
                available: true,
                allow_ccc: true,
                ..TlsPolicy::default()
            },
        };
        config.no_login = a & 3 == 3;
        config.anonymous = a & 4 != 0;
        config.anonymous_write = a & 8 != 0;
        config.login_fail_delay = [ms(0), ms(1), ms(100), secs(1)][usize::from(a >> 4) & 3];
        config.max_login_attempts = u32::from(a >> 6);
        config.login_timeout = [None, Some(secs(1)), Some(secs(60)), None][usize::from(b) & 3];
        config.idle_timeout =
            [None, Some(secs(1)), Some(secs(300)), Some(secs(30))][usize::from(b >> 2) & 3];
        config.session_timeout =
            [None, None, Some(secs(10)), Some(secs(3600))][usize::from(b >> 4) & 3];
        config.data_connect_timeout = [ms(1), secs(1), secs(30), secs(30)][usize::from(b >> 6)];
        config.data_timeout =
            [Some(secs(300)), Some(secs(1)), None, Some(secs(30))][usize::from(d >> 2) & 3];
        config.allow_active = c & 1 == 0;
        config.allow_foreign_active = c & 2 != 0;
        config.min_active_port = if c & 4 != 0 { 0 } else { 1024 };
        config.pasv_address = (c & 8 != 0).then_some(Ipv4Addr::new(203, 0, 113, 5));
        config.max_line = [16, 64, 512, 4096][usize::from(c >> 4) & 3];
        config.max_stat_entries = [0, 1, 3, 6][usize::from(c >> 6)];
        config.max_idle = secs(7200);
        config.log_events = true;
        let (local, peer) = match d & 3 {
            0 | 1 => (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 21),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000),
            ),
            2 => (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 21),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 40000),
            ),
            _ => (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 21),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 40000),
            ),
        };
        let now = Instant::from_duration(secs(1000));
        let config = Arc::new(config);
        let mut session = Session::new(config.clone(), local, peer, now);
        let implicit_tls = d & 3 == 1;
        if implicit_tls {
            session.mark_protected();
        }
        let input_limit = session.input_capacity();
        let no_login = config.no_login;
        let tls_possible = implicit_tls || config.tls.available;
        let mut driver = Driver {
            model: Model {
                logged_in: no_login,
                write: no_login && config.anonymous_write,
                anonymous: no_login,
            },
            config,
            peer,
            session,
            now,
            outbox: Vec::new(),
            produced: Vec::new(),
            consumed: 0,
            seen: 0,
            awaited: None,
            listeners: Vec::new(),
            stale: Vec::new(),
            last_id: 0,
            closed: false,
            silent_close: false,
            input_ended: false,
            tls_possible,
            input_limit,
        };
        assert!(input_limit > driver.config.max_line);
        driver.settle(Step::default());
        assert!(driver.produced.starts_with(b"220 "), "no greeting");
        driver
    }

    /// Reads and performs one operation.
    fn op(&mut self, r: &mut Reader<'_>) {
        let code = r.u8();
        let mut chunk = usize::MAX;
        match code & 15 {
            op::LINE_FIRST..=op::LINE_LAST => chunk = self.line(r, code >> 4),
            op::LOGIN => {
                let user = r.pick(&["anonymous", "ftp", "alice", "bob", "FTP"]);
                let pass = r.pick(&["secret", "guest@", "", "wrong"]);
                let text = format!("USER {user}\r\nPASS {pass}\r\n");
                self.outbox.extend_from_slice(text.as_bytes());
            }
            op::RAW => {
                chunk = 1 + usize::from(r.u8());
                let n = usize::from(r.u16());
                let bytes = r.take(n);
                self.outbox.extend_from_slice(bytes);
            }
            op::COMPLETE | op::COMPLETE_TOO => match self.awaited.is_some() {
                true => self.complete(r),
                false => self.complete_stale(r),
            },
            op::COMPLETE_GOOD => {
                let write = r.bool();
                self.complete_good(write);
            }
            op::STALE => self.complete_stale(r),
            op::ADVANCE => {
                let by = if code & 0x80 != 0 {
                    u64::from(r.u16())
                } else {
                    r.pick(DURATIONS_MS)
                };
                self.now = self.now + Duration::from_millis(by);
                self.timeout();
            }
            op::TO_DEADLINE => {
                if let Some(deadline) = self.session.poll_timeout() {
                    self.now = self.now.max(deadline);
                    self.timeout();
                }
            }
            op::CONSUME_SOME => {
                let n = r.below(self.session.transmit().len() + 1);
                self.consume(n);
            }
            op::SHUTDOWN_OR_CONSUME => match r.u8() {
                0..8 => {
                    let grace = Duration::from_millis(r.pick(DURATIONS_MS));
                    self.session.shutdown(self.now, grace);
                    self.settle(Step::default());
                }
                8..16 => {
                    self.input_ended = true;
                    self.session.handle_eof(self.now);
                    self.settle(Step::default());
                }
                _ => self.consume(self.session.transmit().len()),
            },
            _ => self.consume(self.session.transmit().len()),
        }
        self.flush(chunk);
    }

    /// Queues a command line built from the dictionaries; returns the
    /// chunk size to send it in.
    fn line(&mut self, r: &mut Reader<'_>, style: u8) -> usize {
        let verb = r.pick(VERBS);
        let shape = r.u8();
        let mut line = Vec::new();
        if shape & 0x80 != 0 {
            line.push(b' ');
        }
        if style & 1 != 0 {
            line.extend(verb.bytes().map(|b| b.to_ascii_lowercase()));
        } else {
            line.extend_from_slice(verb.as_bytes());
        }
        match shape & 3 {
            0 => {}
            1 => {
                line.push(b' ');
                line.extend_from_slice(r.pick(ARGS).as_bytes());
            }
            2 => {
                line.push(b' ');
                line.extend_from_slice(r.bytes(24));
            }
            _ => {
                line.push(b' ');
                line.extend_from_slice(r.pick(ARGS).as_bytes());
                line.extend_from_slice(r.bytes(12));
            }
        }
        line.extend_from_slice(match (shape >> 2) & 7 {
            0..=4 => b"\r\n",
            5 => b"\n",
            6 => b"\r",
            _ => b"",
        });
        self.outbox.extend_from_slice(&line);
        if shape & 0x40 != 0 {
            1 + usize::from(style >> 1)
        } else {
            usize::MAX
        }
    }

    /// Hands queued client bytes to the session as far as it takes them.
    /// While the control connection switches to or from TLS, bytes belong to
    /// the handshake, not to the session: they wait.
    fn flush(&mut self, chunk: usize) {
        if self.switching_tls() {
            return;
        }
        while !self.outbox.is_empty() && !self.closed {
            let capacity = self.session.input_capacity();
            if capacity == 0 {
                break;
            }
            let n = capacity.min(chunk).min(self.outbox.len());
            self.session.handle_input(self.now, &self.outbox[..n]);
            self.outbox.drain(..n);
            self.settle(Step {
                input: Some((n, capacity)),
                ..Step::default()
            });
        }
    }

    fn timeout(&mut self) {
        self.session.handle_timeout(self.now);
        self.settle(Step {
            timeout: true,
            ..Step::default()
        });
    }

    /// Writes `n` bytes of transmit to the "socket".
    fn consume(&mut self, n: usize) {
        let transmit = self.session.transmit();
        assert!(n <= transmit.len());
        assert_eq!(
            transmit[..n],
            self.produced[self.consumed..self.consumed + n],
            "transmit() changed under the runtime"
        );
        self.consumed += n;
        self.seen -= n;
        self.session.consume_transmit(n);
        self.settle(Step::default());
    }

    /// Answers the awaited intent with a completion chosen by the input,
    /// of the right kind or not.
    fn complete(&mut self, r: &mut Reader<'_>) {
        let Some(awaited) = &self.awaited else {
            return;
        };
        let completion = self.completion(r, &awaited.intent);
        self.deliver(completion);
    }

    /// Answers the awaited intent the way a healthy runtime would.
    fn complete_good(&mut self, write: bool) {
        let Some(awaited) = &self.awaited else {
            return;
        };
        let completion = match &awaited.intent {
            Intent::Authenticate { .. } => Completion::Auth(Ok(Grant { write })),
            Intent::ConfirmAnonymous { .. } => Completion::Anonymous(Ok(())),
            Intent::UpgradeTls | Intent::ClearTls => Completion::Tls(Ok(())),
            Intent::OpenPassive { .. } => Completion::PassiveReady(Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                50_000,
            ))),
            Intent::Stat { path } => Completion::Stat(Ok(Metadata {
                kind: if path.as_str().contains('.') {
                    FileKind::File
                } else {
                    FileKind::Dir
                },
                size: 1234,
                modified: Some(UnixTime(1_790_000_000)),
                mode: 0o644,
                nlink: 1,
                owner: String::from("ftp"),
                group: String::from("ftp"),
                unique: Some((1, 2)),
            })),
            Intent::Available { .. } => Completion::Available(Ok(1 << 30)),
            Intent::Hash { .. } => Completion::Hash(Ok(String::from("0123abcd"))),
            Intent::ReadDir { limit, .. } => {
                let entries = (0..(*limit).min(3))
                    .map(|i| DirEntry {
                        name: format!("file{i}.txt"),
                        meta: Metadata {
                            kind: FileKind::File,
                            size: i as u64,
                            modified: Some(UnixTime(1_780_000_000)),
                            mode: 0o644,
                            nlink: 1,
                            owner: String::from("ftp"),
                            group: String::from("ftp"),
                            unique: None,
                        },
                        link_target: None,
                    })
                    .collect();
                Completion::Entries(Ok(entries), UnixTime(1_790_000_000))
            }
            Intent::Transfer(t) => Completion::Transfer(if awaited.aborted {
                TransferEvent::Failed(TransferError::Aborted)
            } else if !awaited.ready {
                let name = match t.op {
                    TransferOp::Store {
                        mode: StoreMode::Unique,
                        ..
                    } => Some(String::from("unique.1")),
                    _ => None,
                };
                TransferEvent::Ready {
                    size: Some(1234),
                    name,
                }
            } else {
                TransferEvent::Finished { bytes: 1234 }
            }),
            _ => Completion::Done(Ok(())),
        };
        self.deliver(completion);
    }

    /// Hands `completion` to the session for the awaited intent.
    fn deliver(&mut self, completion: Completion) {
        let Some(mut awaited) = self.awaited.take() else {
            return;
        };
        let id = awaited.id;
        let mut step = Step {
            protected: self.session.is_protected(),
            ..Step::default()
        };
        let mut keep = false;
        // The passive listener an ending transfer borrowed, and whether
        // the engine keeps it for the next one (refused before it started)
        // or must close it.
        let mut returned = None;
        match (&awaited.intent, &completion) {
            (Intent::UpgradeTls | Intent::ClearTls, Completion::Tls(Ok(()))) => {}
            // The connection is in an unknown state: closed without a word.
            (Intent::UpgradeTls | Intent::ClearTls, _) => self.silent_close = true,
            (Intent::Authenticate { user, .. }, Completion::Auth(Ok(grant))) => {
                step.auth_ok = Some((user.clone(), grant.write));
            }
            (Intent::ConfirmAnonymous { .. }, Completion::Anonymous(Ok(()))) => {
                step.auth_ok = Some((String::from("anonymous"), false));
            }
            (Intent::OpenPassive { .. }, Completion::PassiveReady(Ok(_))) => {
                self.listeners.push((id, Listener::Open));
            }
            (Intent::Transfer(t), Completion::Transfer(event)) => {
                awaited.ready |= matches!(event, TransferEvent::Ready { .. });
                // Only the last event ends a transfer.
                keep = !matches!(
                    event,
                    TransferEvent::Finished { .. } | TransferEvent::Failed(_)
                );
                let refused = !awaited.ready
                    && !awaited.aborted
                    && matches!(event, TransferEvent::Failed(TransferError::Fs(_)));
                if let (false, DataEndpoint::Passive { listener }) = (keep, t.data) {
                    returned = Some((listener, refused));
                }
            }
            // Any other answer fails the transfer as a local error.
            (Intent::Transfer(t), _) => {
                if let DataEndpoint::Passive { listener } = t.data {
                    returned = Some((listener, !awaited.ready && !awaited.aborted));
                }
            }
            _ => {}
        }
        if let Some((listener, true)) = returned {
            self.listener(listener, Listener::Used, Listener::Open);
        }
        if keep {
            self.awaited = Some(awaited);
        } else {
            self.retire(id);
        }
        self.session.handle_completion(self.now, id, completion);
        self.settle(step);
        if let Some((listener, false)) = returned {
            let state = self.listeners.iter().find(|(l, _)| *l == listener);
            assert!(
                self.closed || matches!(state, Some((_, Listener::Closed))),
                "listener {listener:?} of an ended transfer is {state:?}, not closed"
            );
        }
    }

    /// Delivers a completion for an id the session does not wait for.
    fn complete_stale(&mut self, r: &mut Reader<'_>) {
        let id = match r.u8() % 4 {
            0 => IntentId(0),
            1 => IntentId(self.last_id + 1 + u64::from(r.u8())),
            _ => match self.stale.len() {
                0 => IntentId(u64::MAX),
                n => self.stale[r.below(n)],
            },
        };
        let intent = Intent::UpgradeTls;
        let completion = self.completion(r, &intent);
        self.session.handle_completion(self.now, id, completion);
        self.settle(Step {
            quiet: true,
            ..Step::default()
        });
    }

    fn retire(&mut self, id: IntentId) {
        if self.stale.len() >= 16 {
            self.stale.remove(0);
        }
        self.stale.push(id);
    }

    /// A completion for `intent`: mostly of the right kind, success or any
    /// error; sometimes of another kind.
    fn completion(&self, r: &mut Reader<'_>, intent: &Intent) -> Completion {
        let sel = r.u8();
        let natural = match intent {
            Intent::Authenticate { .. } => 0,
            Intent::OpenPassive { .. } => 1,
            Intent::Stat { .. } => 2,
            Intent::ReadDir { .. } => 3,
            Intent::Transfer(_) => 5,
            Intent::ConfirmAnonymous { .. } => 6,
            Intent::UpgradeTls | Intent::ClearTls => 7,
            Intent::Available { .. } => 8,
            Intent::Hash { .. } => 9,
            _ => 4,
        };
        let kind = if sel & 7 != 0 {
            natural
        } else {
            (sel >> 3) % 10
        };
        let limit = match intent {
            Intent::ReadDir { limit, .. } => (*limit).min(6),
            _ => 2,
        };
        let fs_error = |r: &mut Reader<'_>| {
            r.pick(&[
                FsError::NotFound,
                FsError::PermissionDenied,
                FsError::AlreadyExists,
                FsError::NotADirectory,
                FsError::IsADirectory,
                FsError::NotEmpty,
                FsError::NoSpace,
                FsError::QuotaExceeded,
                FsError::InvalidName,
                FsError::TooManyMatches,
                FsError::Other,
            ])
        };
        let v = r.u8();
        match kind {
            0 => Completion::Auth(match v % 4 {
                0 | 1 => Ok(Grant { write: v & 4 != 0 }),
                2 => Err(AuthError::Denied),
                _ => Err(AuthError::Unavailable),
            }),
            6 => Completion::Anonymous(match v % 4 {
                0 | 1 => Ok(()),
                2 => Err(AuthError::Denied),
                _ => Err(AuthError::Unavailable),
            }),
            7 => Completion::Tls(match v % 4 {
                0..=2 => Ok(()),
                _ => Err(TlsSwitchError::Failed),
            }),
            1 => Completion::PassiveReady(match v % 4 {
                0 => Err(ResourceError::Exhausted),
                1 => Err(ResourceError::Failed),
                2 => Ok(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                    r.u16().max(1),
                )),
                _ => Ok(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)),
                    r.u16(),
                )),
            }),
            2 => Completion::Stat(if v % 4 == 0 {
                Err(fs_error(r))
            } else {
                let kind = r.pick(&[
                    FileKind::File,
                    FileKind::Dir,
                    FileKind::Symlink,
                    FileKind::Other,
                ]);
                Ok(metadata(r, kind))
            }),
            3 => {
                let result = if v % 4 == 0 {
                    Err(fs_error(r))
                } else {
                    let n = r.below(limit + 1);
                    Ok((0..n).map(|_| dir_entry(r)).collect())
                };
                Completion::Entries(result, UnixTime(r.any_time()))
            }
            4 => Completion::Done(if v % 2 == 0 { Ok(()) } else { Err(fs_error(r)) }),
            9 => Completion::Hash(if v % 2 == 0 {
                Ok(r.text(16))
            } else {
                Err(fs_error(r))
            }),
            8 => Completion::Available(if v % 2 == 0 {
                Ok(r.any_u64())
            } else {
                Err(fs_error(r))
            }),
            _ => Completion::Transfer(match v % 7 {
                6 => TransferEvent::Progress { bytes: r.any_u64() },
                0 | 1 => TransferEvent::Ready {
                    size: if r.bool() { Some(r.any_u64()) } else { None },
                    name: if r.bool() { Some(r.text(24)) } else { None },
                },
                2 => TransferEvent::Connected,
                3 => TransferEvent::Finished { bytes: r.any_u64() },
                4 => TransferEvent::Failed(r.pick(&[
                    TransferError::NoConnection,
                    TransferError::ConnectionLost,
                    TransferError::Aborted,
                ])),
                _ => TransferEvent::Failed(TransferError::Fs(fs_error(r))),
            }),
        }
    }

    /// The closing phase: send `QUIT`, answer intents as a healthy runtime
    /// would, drain replies and let timers fire; the session must close.
    fn finish(&mut self) {
        // IAC SE twice ends any Telnet subnegotiation in progress.
        const QUIT: &[u8] = b"\xff\xf0\xff\xf0\r\nQUIT\r\n";
        let mut quits = 0;
        let mut steps = 0;
        while !self.closed && steps < FINISH_STEPS {
            steps += 1;
            if !self.session.transmit().is_empty() {
                self.consume(self.session.transmit().len());
            } else if !self.outbox.is_empty()
                && self.session.input_capacity() > 0
                && !self.switching_tls()
            {
                self.flush(usize::MAX);
            } else if self.awaited.is_some() {
                self.complete_good(false);
            } else if let (true, Some(deadline)) = (
                self.session.input_capacity() < self.input_limit,
                self.session.poll_timeout(),
            ) {
                // Lines wait (after a failed login): let them go first.
                self.now = self.now.max(deadline);
                self.timeout();
            } else if self.outbox.is_empty() && quits < 3 {
                // Again if need be: AUTH and CCC drop what follows them.
                quits += 1;
                self.outbox.extend_from_slice(QUIT);
            } else if let Some(deadline) = self.session.poll_timeout() {
                self.now = self.now.max(deadline);
                self.timeout();
            } else {
                break;
            }
        }
        assert!(
            self.closed,
            "the session hangs: not closed after QUIT (awaiting {:?}, {} bytes unsent, \
             capacity {}); it said:\n{}",
            self.awaited,
            self.outbox.len(),
            self.session.input_capacity(),
            String::from_utf8_lossy(&self.produced[self.produced.len().saturating_sub(600)..])
        );
        // The last reply closes the connection.
        let last = self
            .produced
            .rsplit(|&b| b == b'\n')
            .nth(1)
            .unwrap_or_default();
        assert!(
            self.silent_close
                || self.input_ended
                || last.starts_with(b"221 ")
                || last.starts_with(b"421 "),
            "closed after {:?}",
            String::from_utf8_lossy(last)
        );
        // A closed session is inert.
        assert_eq!(self.session.input_capacity(), 0);
        assert_eq!(self.session.poll_timeout(), None);
        self.session.handle_input(self.now, b"NOOP\r\n");
        self.session
            .handle_timeout(self.now + Duration::from_secs(100_000));
        self.session
            .handle_completion(self.now, IntentId(self.last_id), Completion::Done(Ok(())));
        let n = self.session.transmit().len();
        self.consume(n);
        assert!(is_well_formed(&self.produced));
    }

    /// The checks after every step.
    fn settle(&mut self, step: Step) {
        let config = self.config.clone();
        let was_closed = self.closed;
        let running = self.running_transfer();

        // Intents and Close.
        let mut intents = Vec::new();
        while let Some(output) = self.session.poll_output() {
            assert!(!self.closed, "{output:?} after Output::Close");
            match output {
                Output::Close => self.closed = true,
                Output::Intent(id, intent) => intents.push((id, intent)),
            }
        }
        assert_eq!(self.session.is_closing(), self.closed);

        // Log events, folded into the login model.
        let mut model = self.model;
        let mut login_changed = false;
        let mut any_login = false;
        let mut any_write_login = false;
        let mut auth_ok = step.auth_ok;
        let mut reply_codes = Vec::new();
        while let Some(event) = self.session.poll_event() {
            match event {
                Event::Command(text) => {
                    let t = text.trim_start_matches(' ').as_bytes();
                    if t.len() >= 5 && t[..5].eq_ignore_ascii_case(b"PASS ") {
                        assert_eq!(text, "PASS ****", "a password reached the log");
                    }
                }
                Event::Reply(code, text) => {
                    reply_codes.push(code);
                    if code == 220 && text == REIN_TEXT {
                        login_changed = true;
                        model = Model {
                            logged_in: config.no_login,
                            write: config.no_login && config.anonymous_write,
                            anonymous: config.no_login,
                        };
                    }
                }
                Event::Login { user, anonymous } => {
                    login_changed = true;
                    any_login = true;
                    let write = if anonymous {
                        assert!(config.anonymous, "anonymous login while disabled");
                        assert_eq!(user, "anonymous");
                        if config.authenticate_anonymous {
                            let (granted, _) = auth_ok
                                .take()
                                .expect("anonymous login without the runtime's grant");
                            assert_eq!(granted, "anonymous");
                        }
                        config.anonymous_write
                    } else {
                        assert!(
                            step.protected || !config.tls.control_required,
                            "{user:?} logged in over a clear control connection"
                        );
                        let (granted, write) = auth_ok
                            .take()
                            .unwrap_or_else(|| panic!("{user:?} logged in without a grant"));
                        assert_eq!(user, granted);
                        write
                    };
                    any_write_login |= write;
                    model = Model {
                        logged_in: true,
                        write,
                        anonymous,
                    };
                }
                Event::LoginFailed { .. } => {}
                // The harness answers with wrong kinds on purpose.
                Event::WrongAnswer { .. } => {}
                Event::TransferEnded { path, .. } | Event::TransferRefused { path, .. } => {
                    check_path(&path)
                }
            }
        }
        assert!(
            auth_ok.is_none() || was_closed,
            "a granted Authenticate did not log in"
        );
        if self.silent_close && !was_closed {
            assert!(self.closed, "a failed TLS switch did not close the session");
        }

        // Intents against the model and the runtime contract.
        if step.quiet {
            assert!(
                intents.is_empty(),
                "a stale completion produced {intents:?}"
            );
        }
        let may_login = self.model.logged_in || any_login;
        let may_write = self.model.write || any_write_login;
        for (id, intent) in intents {
            assert!(id.0 > self.last_id, "intent id {id:?} not increasing");
            self.last_id = id.0;
            if needs_login(&intent) {
                assert!(may_login, "{intent:?} before login");
                assert!(
                    login_changed || self.model.logged_in,
                    "{intent:?} before login"
                );
            }
            if is_write(&intent) {
                assert!(may_write, "{intent:?} without write permission");
                assert!(login_changed || self.model.write, "{intent:?} read-only");
            }
            self.check_intent(id, intent, login_changed, may_write);
        }
        self.model = model;
        assert_eq!(
            self.session.user().is_some(),
            model.logged_in,
            "login state differs from the harness's model"
        );
        if model.logged_in {
            assert_eq!(self.session.is_anonymous(), model.anonymous);
        }

        // Reply bytes.
        let transmit = self.session.transmit();
        assert!(transmit.len() >= self.seen, "unsent replies vanished");
        assert!(
            transmit.len() <= TRANSMIT_BOUND,
            "{} bytes waiting to be sent",
            transmit.len()
        );
        let new = &transmit[self.seen..];
        assert!(
            is_well_formed(new),
            "malformed replies {:?}",
            String::from_utf8_lossy(new)
        );
        // Replies are UTF-8 but for the bytes of names that are not
        // (`crate::name`), which the framing check above covers.
        assert!(!new.contains(&0), "NUL in replies");
        assert_eq!(
            reply_codes_of(new),
            reply_codes,
            "log events and replies differ"
        );
        if running.is_some() && running == self.running_transfer() {
            // Lines sent during a transfer are answered after it, but for
            // STAT; the transfer itself says 150 once it is ready.
            for code in &reply_codes {
                assert!(
                    matches!(code, 150 | 211 | 421),
                    "{code} reply while a transfer runs: {:?}",
                    String::from_utf8_lossy(new)
                );
            }
        }
        if step.quiet {
            assert!(new.is_empty(), "a stale completion produced replies");
            assert!(!login_changed && self.closed == was_closed);
        }
        self.produced.extend_from_slice(new);
        self.seen = transmit.len();

        // Input bound.
        let capacity = self.session.input_capacity();
        if self.closed || self.input_ended {
            assert_eq!(capacity, 0, "input taken after its end or the close");
        }
        if self.closed {
            assert_eq!(self.session.poll_timeout(), None);
        } else {
            assert!(capacity <= self.input_limit);
            if let Some((pushed, before)) = step.input {
                assert!(
                    capacity + pushed >= before,
                    "{pushed} bytes took more than {pushed} bytes of input capacity"
                );
            }
            if step.timeout {
                if let Some(deadline) = self.session.poll_timeout() {
                    assert!(deadline > self.now, "deadline {deadline:?} not after now");
                }
            }
        }
    }

    fn check_intent(&mut self, id: IntentId, intent: Intent, login_changed: bool, may_write: bool) {
        let config = self.config.clone();
        for path in intent_paths(&intent) {
            check_path(path);
        }
        let answered = match &intent {
            Intent::Authenticate { user, .. } => {
                assert!(
                    !user.eq_ignore_ascii_case("anonymous") && !user.eq_ignore_ascii_case("ftp"),
                    "anonymous login sent to the user database"
                );
                assert!(!config.no_login);
                true
            }
            Intent::ConfirmAnonymous { .. } => {
                assert!(
                    config.anonymous && config.authenticate_anonymous,
                    "anonymous login confirmed though not asked for"
                );
                assert!(!config.no_login);
                true
            }
            Intent::UpgradeTls => {
                assert!(config.tls.available, "TLS started while not available");
                true
            }
            Intent::ClearTls => {
                assert!(config.tls.allow_ccc, "CCC while not allowed");
                true
            }
            Intent::OpenPassive { peer } => {
                assert_eq!(*peer, self.peer.ip().to_canonical());
                true
            }
            Intent::ClosePassive { listener } => {
                // Open, or borrowed by a transfer that has ended.
                let state = self.listeners.iter().find(|(l, _)| l == listener);
                let from = match state {
                    Some((_, Listener::Used)) => Listener::Used,
                    _ => Listener::Open,
                };
                self.listener(*listener, from, Listener::Closed);
                false
            }
            Intent::ReadDir { limit, .. } => {
                assert_eq!(*limit, config.max_stat_entries);
                true
            }
            Intent::SetPermissions { mode, .. } => {
                assert!(*mode <= 0o7777);
                true
            }
            Intent::Hash { start, end, .. } => {
                let limit = config.hash_max_size.expect("HASH while it is off");
                assert!(start <= end && end - start <= limit, "{start}..{end}");
                true
            }
            Intent::CancelHash { hash } => {
                let awaited = self
                    .awaited
                    .take()
                    .unwrap_or_else(|| panic!("CancelHash of {hash:?}, none running"));
                assert!(
                    awaited.id == *hash && matches!(awaited.intent, Intent::Hash { .. }),
                    "CancelHash of {hash:?} while awaiting {awaited:?}"
                );
                self.retire(awaited.id);
                false
            }
            Intent::Transfer(t) => {
                match t.data {
                    DataEndpoint::Passive { listener } => {
                        self.listener(listener, Listener::Open, Listener::Used)
                    }
                    DataEndpoint::Active { addr } => {
                        assert!(config.allow_active, "active mode is disabled");
                        assert!(addr.port() >= config.min_active_port);
                        assert!(addr.port() != 0);
                        if !config.allow_foreign_active {
                            assert_eq!(addr.ip(), self.peer.ip().to_canonical(), "FXP");
                        }
                    }
                }
                if let TransferOp::List { format, .. } = &t.op {
                    if login_changed {
                        assert!(!format.writable || may_write);
                    } else {
                        assert_eq!(format.writable, self.model.write);
                    }
                }
                if let TransferOp::Store { path, mode, .. } = &t.op {
                    assert!(!path.is_root() || *mode == StoreMode::Unique);
                }
                assert!(
                    self.tls_possible || !t.tls,
                    "TLS data connection without TLS"
                );
                if config.tls.data_required && !login_changed && !self.model.anonymous {
                    assert!(t.tls, "clear data connection while TLS is required");
                }
                true
            }
            Intent::AbortTransfer { transfer } => {
                let awaited = self
                    .awaited
                    .as_mut()
                    .unwrap_or_else(|| panic!("AbortTransfer of {transfer:?}, none running"));
                assert!(
                    awaited.id == *transfer && matches!(awaited.intent, Intent::Transfer(_)),
                    "AbortTransfer of {transfer:?} while awaiting {awaited:?}"
                );
                assert!(!awaited.aborted, "transfer {transfer:?} aborted twice");
                awaited.aborted = true;
                false
            }
            Intent::Stat { .. }
            | Intent::Available { .. }
            | Intent::MakeDir { .. }
            | Intent::RemoveDir { .. }
            | Intent::RemoveFile { .. }
            | Intent::Rename { .. }
            | Intent::SetModified { .. } => true,
        };
        if answered {
            assert!(
                self.awaited.is_none(),
                "{intent:?} while {:?} still waits for its answer",
                self.awaited
            );
            self.awaited = Some(Awaited {
                id,
                intent,
                ready: false,
                aborted: false,
            });
        } else {
            self.retire(id);
        }
    }

    /// Whether the session waits for the control connection to switch
    /// to or from TLS.
    fn switching_tls(&self) -> bool {
        self.awaited
            .as_ref()
            .is_some_and(|a| matches!(a.intent, Intent::UpgradeTls | Intent::ClearTls))
    }

    /// The id of the transfer the session waits for, if any.
    fn running_transfer(&self) -> Option<IntentId> {
        self.awaited
            .as_ref()
            .filter(|a| matches!(a.intent, Intent::Transfer(_)))
            .map(|a| a.id)
    }

    /// Moves listener `id` from `from` to `to`.
    fn listener(&mut self, id: IntentId, from: Listener, to: Listener) {
        let state = self
            .listeners
            .iter_mut()
            .find(|(l, _)| *l == id)
            .map(|(_, state)| state);
        match state {
            Some(state) if *state == from => *state = to,
            other => panic!("listener {id:?} is {other:?}, wanted {from:?}"),
        }
    }
}

/// Whether this intent changes the file tree.
fn is_write(intent: &Intent) -> bool {
    match intent {
        Intent::MakeDir { .. }
        | Intent::RemoveDir { .. }
        | Intent::RemoveFile { .. }
        | Intent::Rename { .. }
        | Intent::SetPermissions { .. }
        | Intent::SetModified { .. } => true,
        Intent::Transfer(t) => matches!(t.op, TransferOp::Store { .. }),
        _ => false,
    }
}

/// Whether this intent reads or writes the file tree or a data
/// connection (and so needs a logged-in session).
fn needs_login(intent: &Intent) -> bool {
    !matches!(
        intent,
        Intent::Authenticate { .. }
            | Intent::ConfirmAnonymous { .. }
            | Intent::UpgradeTls
            | Intent::ClearTls
    )
}

/// The paths an intent names.
fn intent_paths(intent: &Intent) -> Vec<&VirtualPath> {
    match intent {
        Intent::Stat { path }
        | Intent::Available { path }
        | Intent::Hash { path, .. }
        | Intent::ReadDir { path, .. }
        | Intent::MakeDir { path, .. }
        | Intent::RemoveDir { path }
        | Intent::RemoveFile { path }
        | Intent::SetPermissions { path, .. }
        | Intent::SetModified { path, .. } => vec![path],
        Intent::Rename { from, to } => vec![from, to],
        Intent::Transfer(t) => match &t.op {
            TransferOp::Retrieve { path, .. }
            | TransferOp::Store { path, .. }
            | TransferOp::List { path, .. } => vec![path],
        },
        _ => Vec::new(),
    }
}

/// The code of each reply in well-formed reply bytes.
fn reply_codes_of(bytes: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    let mut open: Option<&[u8]> = None;
    for line in bytes.split(|&b| b == b'\n') {
        let Some(line) = line.strip_suffix(b"\r") else {
            continue; // the empty piece after the last LF
        };
        match open {
            None => {
                let code = line[..3]
                    .iter()
                    .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
                codes.push(code);
                if line[3] == b'-' {
                    open = Some(&line[..3]);
                }
            }
            Some(code) => {
                if line.len() >= 4 && &line[..3] == code && line[3] == b' ' {
                    open = None;
                }
            }
        }
    }
    codes
}

// ---------------------------------------------------------------------------
// Writing session inputs
// ---------------------------------------------------------------------------

/// Builds inputs for [`session`] in readable form: seed corpora and
/// regression cases.
///
/// The input starts with four configuration bytes (see [`SessionScript::new`]);
/// then each operation is a code byte and its arguments.
#[derive(Clone, Debug)]
pub struct SessionScript {
    bytes: Vec<u8>,
}

impl SessionScript {
    /// A script for a configuration; the bits of `config` choose:
    ///
    /// * byte 0: bits 0-1 both set = no login; bit 2 anonymous; bit 3
    ///   anonymous may write; bits 4-5 failed-login delay (0, 1 ms, 100 ms,
    ///   1 s); bits 6-7 login attempts;
    /// * byte 1: bits 0-1 login timeout (none, 1 s, 60 s, none); 2-3 idle
    ///   timeout (none, 1 s, 300 s, 30 s); 4-5 session timeout (none, none,
    ///   10 s, 1 h); 6-7 data connection timeout (1 ms, 1 s, 30 s, 30 s);
    /// * byte 2: bit 0 active mode off; bit 1 FXP allowed; bit 2 any active
    ///   port; bit 3 PASV address set; bits 4-5 line limit (16, 64, 512,
    ///   4096); bits 6-7 STAT entries (0, 1, 3, 6);
    /// * byte 3: bits 0-1 addresses (0: IPv4 loopback, 1: the same with
    ///   implicit TLS, 2: IPv6 loopback, 3: 10.0.0.1 from 10.0.0.2); bits 2-3
    ///   data timeout (300 s, 1 s, none, 30 s); bit 4 a greeting holding
    ///   CRLF; bit 5 the runtime confirms anonymous logins; bits 6-7 TLS
    ///   (off, available, required for logins and data, available with
    ///   CCC).
    pub fn new(config: [u8; 4]) -> Self {
        SessionScript {
            bytes: config.to_vec(),
        }
    }

    /// The client sends `bytes` (at most 65535) in pieces of `chunk` (1 to
    /// 256) bytes.
    pub fn send_in(mut self, bytes: &[u8], chunk: usize) -> Self {
        let n = bytes.len().min(usize::from(u16::MAX));
        self.bytes.push(op::RAW);
        self.bytes.push(chunk.clamp(1, 256).wrapping_sub(1) as u8);
        self.bytes.extend_from_slice(&(n as u16).to_le_bytes());
        self.bytes.extend_from_slice(&bytes[..n]);
        self
    }

    /// The client sends `bytes` in pieces of up to 256 bytes.
    pub fn send(self, bytes: &[u8]) -> Self {
        self.send_in(bytes, 256)
    }

    /// The client sends one command line (CRLF added).
    pub fn line(self, line: &str) -> Self {
        let mut bytes = Vec::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes)
    }

    /// The runtime answers the awaited intent successfully (a login with
    /// `write` permission; a transfer is first Ready, then Finished).
    pub fn ok(mut self, write: bool) -> Self {
        self.bytes.push(op::COMPLETE_GOOD);
        self.bytes.push(u8::from(write));
        self
    }

    /// The runtime answers the awaited intent with the completion that the
    /// raw selector bytes `sel` choose (see the `completion` helper).
    pub fn answer(mut self, sel: &[u8]) -> Self {
        self.bytes.push(op::COMPLETE);
        self.bytes.extend_from_slice(sel);
        self
    }

    /// Time passes (at most 65535 ms) and timers fire.
    pub fn advance_ms(mut self, ms: u16) -> Self {
        self.bytes.push(op::ADVANCE | 0x80);
        self.bytes.extend_from_slice(&ms.to_le_bytes());
        self
    }

    /// The server shuts down (`Session::shutdown`).
    pub fn shutdown(mut self) -> Self {
        self.bytes.push(op::SHUTDOWN_OR_CONSUME);
        self.bytes.push(0);
        self
    }

    /// Time passes to the session's next deadline.
    pub fn to_deadline(mut self) -> Self {
        self.bytes.push(op::TO_DEADLINE);
        self
    }

    /// The runtime writes out every queued reply byte.
    pub fn drain(mut self) -> Self {
        self.bytes.push(op::CONSUME_ALL);
        self
    }

    /// The script as fuzz input.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}
