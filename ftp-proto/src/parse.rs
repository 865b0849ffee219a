//! The `nom` grammar: one control line (without its line end) to a
//! [`Command`].
//!
//! # Rules
//!
//! * Trailing CR bytes are ignored, and so are spaces before the verb.
//! * The verb is 3 or 4 ASCII letters, case-insensitive, followed by the end
//!   of the line or one space. `XCWD`, `XCUP`, `XPWD`, `XMKD` and `XRMD` are
//!   aliases of `CWD`, `CDUP`, `PWD`, `MKD` and `RMD`.
//! * Path-like arguments (file names, `USER`, `PASS`, `ACCT`, `HOST`,
//!   `CLNT`, `SMNT`) are everything after the single separator space,
//!   verbatim: inner, leading and trailing spaces are part of the name.
//!   A required path that is empty or only spaces is a
//!   [`ParseError::BadArgument`].
//! * Other arguments (numbers, type codes, addresses, `AUTH`/`PBSZ`/`PROT`
//!   tokens, `HELP` topics) may be surrounded by any number of spaces.
//! * Verbs without arguments accept trailing spaces; anything else after
//!   them is a [`ParseError::BadArgument`].
//! * An argument that is not UTF-8 is a [`ParseError::NotUtf8`].
//!
//! [`encode_command`] is the inverse: for every line `l` with
//! `parse_command(l) == Ok(c)`, `parse_command` of the bytes of `encode_command(&c)` ([`crate::name::encode`]) is
//! `Ok(c)` again.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::{self, Write as _};
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};

use nom::bytes::complete::{tag, take_while, take_while_m_n, take_while1};
use nom::character::complete::{char, digit1, u8 as dec_u8, u16 as dec_u16, u64 as dec_u64};
use nom::combinator::{all_consuming, opt};
use nom::sequence::preceded;
use nom::{IResult, Parser};

use crate::HashAlgorithm;
use crate::command::{Command, EpsvArg, ListArgs, Opts, Site, TransferType};
use crate::secret::Secret;
use crate::time::{DateTime, UnixTime};

/// Why a line is not a command the session can act on.
///
/// [`ParseError::reply_code`] gives the reply code each variant is meant to
/// map to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line is empty (or only spaces) (`500`).
    Empty,
    /// The verb is not an FTP command (`500`).
    UnknownVerb,
    /// The verb is known but this server does not implement it (`502`).
    /// The parser itself never returns it; it is for the session.
    NotImplemented(&'static str),
    /// A required argument is missing or malformed (`501`).
    BadArgument(&'static str),
    /// The argument is not UTF-8 (`501`).
    NotUtf8,
    /// The argument is well-formed but names an option this server does not
    /// support (`504`, "command not implemented for that parameter"):
    /// `TYPE E`, `TYPE A T`, `TYPE A C`, `TYPE L n` with n other than 8,
    /// `MODE B`/`C`, `STRU R`/`P`.
    UnsupportedParameter(&'static str),
    /// `EPRT` or `EPSV` names a network protocol other than 1 (IPv4) or
    /// 2 (IPv6) (`522`; RFC 2428 asks for the text
    /// "Network protocol not supported, use (1,2)").
    UnsupportedProtocol,
}

impl ParseError {
    /// The reply code the session answers with.
    pub fn reply_code(&self) -> u16 {
        match self {
            ParseError::Empty | ParseError::UnknownVerb => 500,
            ParseError::NotImplemented(_) => 502,
            ParseError::BadArgument(_) | ParseError::NotUtf8 => 501,
            ParseError::UnsupportedParameter(_) => 504,
            ParseError::UnsupportedProtocol => 522,
        }
    }

    /// The reply text the session answers with (the customary texts,
    /// which clients may match on; [`Display`](fmt::Display) says more,
    /// for logs).
    pub fn reply_text(&self) -> &'static str {
        match self {
            ParseError::Empty | ParseError::UnknownVerb => "Unknown command.",
            ParseError::NotImplemented(_) => "Command not implemented.",
            ParseError::BadArgument(_) => "Syntax error in parameters or arguments.",
            ParseError::NotUtf8 => "Argument is not valid UTF-8.",
            ParseError::UnsupportedParameter(_) => "Command not implemented for that parameter.",
            ParseError::UnsupportedProtocol => "Network protocol not supported, use (1,2).",
        }
    }
}

impl fmt::Display for ParseError {
    /// What went wrong, naming the verb where known (for logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("Empty command line."),
            ParseError::UnknownVerb => f.write_str("Command not understood."),
            ParseError::NotImplemented(verb) => write!(f, "{verb} not implemented."),
            ParseError::BadArgument(verb) => write!(f, "Syntax error in {verb} arguments."),
            ParseError::NotUtf8 => f.write_str("Argument is not UTF-8."),
            ParseError::UnsupportedParameter(verb) => {
                write!(f, "{verb} not implemented for that parameter.")
            }
            ParseError::UnsupportedProtocol => {
                f.write_str("Network protocol not supported, use (1,2).")
            }
        }
    }
}

/// nom results over bytes, with no error details (they are never shown).
type Res<'a, O> = IResult<&'a [u8], O, ()>;

/// Parses one command line; `line` excludes the CRLF / LF and has Telnet
/// sequences already removed by [`crate::line::LineBuffer`].
///
/// Never panics; allocates at most the strings stored in the command.
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let line = trim_end_cr(line);
    let line = skip_spaces(line);
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (after, verb) = verb_token(line).map_err(|_| ParseError::UnknownVerb)?;
    let arg = match after {
        [] => Arg(&[]),
        [b' ', rest @ ..] => Arg(rest),
        _ => return Err(ParseError::UnknownVerb),
    };
    let mut upper = [0u8; 7];
    for (dst, src) in upper.iter_mut().zip(verb) {
        *dst = src.to_ascii_uppercase();
    }
    let verb = upper.get(..verb.len()).unwrap_or(&[]);
    Ok(match verb {
        b"USER" => Command::User(arg.required("USER")?),
        b"PASS" => Command::Pass(Secret::new(arg.verbatim()?)),
        b"ACCT" => Command::Acct(arg.required("ACCT")?),
        b"REIN" => arg.none(Command::Rein)?,
        b"QUIT" => arg.none(Command::Quit)?,
        b"CWD" | b"XCWD" => Command::Cwd(arg.required("CWD")?),
        b"CDUP" | b"XCUP" => arg.none(Command::Cdup)?,
        b"PWD" | b"XPWD" => arg.none(Command::Pwd)?,
        b"MKD" | b"XMKD" => Command::Mkd(arg.required("MKD")?),
        b"RMD" | b"XRMD" => Command::Rmd(arg.required("RMD")?),
        b"DELE" => Command::Dele(arg.required("DELE")?),
        b"RNFR" => Command::Rnfr(arg.required("RNFR")?),
        b"RNTO" => Command::Rnto(arg.required("RNTO")?),
        b"SIZE" => Command::Size(arg.required("SIZE")?),
        b"MDTM" => Command::Mdtm(arg.required("MDTM")?),
        b"MFMT" => parse_mfmt(arg.text()?)?,
        b"TYPE" => Command::Type(parse_type(arg.text()?)?),
        b"MODE" => Command::Mode(parse_letter(arg.text()?, "MODE", 'S', &['B', 'C'])?),
        b"STRU" => Command::Stru(parse_letter(arg.text()?, "STRU", 'F', &['R', 'P'])?),
        b"PORT" => Command::Port(parse_port(arg.text()?)?),
        b"PASV" => arg.none(Command::Pasv)?,
        b"EPRT" => Command::Eprt(parse_eprt(arg.text()?)?),
        b"EPSV" => Command::Epsv(parse_epsv(arg.text()?)?),
        b"RETR" => Command::Retr(arg.required("RETR")?),
        b"STOR" => Command::Stor(arg.required("STOR")?),
        b"STOU" => Command::Stou(arg.optional()?),
        b"APPE" => Command::Appe(arg.required("APPE")?),
        b"ALLO" => Command::Allo(
            arg.text()
                .ok()
                .and_then(|t| t.split(' ').find(|w| !w.is_empty()))
                .and_then(decimal_u64),
        ),
        b"AVBL" => Command::Avbl(arg.optional()?),
        b"HASH" => Command::Hash(arg.required("HASH")?),
        b"RANG" => {
            let text = arg.text()?;
            let mut words = text.split(' ').filter(|w| !w.is_empty());
            match (
                words.next().and_then(decimal_u64),
                words.next().and_then(decimal_u64),
                words.next(),
            ) {
                (Some(start), Some(end), None) => Command::Rang(start, end),
                _ => return Err(bad("RANG")),
            }
        }
        b"XCRC" => parse_xhash(HashAlgorithm::Crc32, "XCRC", arg)?,
        b"XMD5" => parse_xhash(HashAlgorithm::Md5, "XMD5", arg)?,
        b"XSHA1" => parse_xhash(HashAlgorithm::Sha1, "XSHA1", arg)?,
        b"XSHA256" => parse_xhash(HashAlgorithm::Sha256, "XSHA256", arg)?,
        b"XSHA512" => parse_xhash(HashAlgorithm::Sha512, "XSHA512", arg)?,
        b"REST" => Command::Rest(decimal_u64(trim_spaces(arg.text()?)).ok_or(bad("REST"))?),
        b"ABOR" => arg.none(Command::Abor)?,
        b"LIST" => Command::List(parse_list_args(&arg.verbatim()?)),
        b"NLST" => Command::Nlst(parse_list_args(&arg.verbatim()?)),
        b"MLST" => Command::Mlst(arg.optional()?),
        b"MLSD" => Command::Mlsd(arg.optional()?),
        b"STAT" => Command::Stat(if arg.is_blank() {
            None
        } else {
            Some(parse_list_args(&arg.verbatim()?))
        }),
        b"SYST" => arg.none(Command::Syst)?,
        b"HELP" => Command::Help(match trim_spaces(arg.text()?) {
            "" => None,
            topic => Some(topic.into()),
        }),
        b"NOOP" => arg.none(Command::Noop)?,
        b"FEAT" => arg.none(Command::Feat)?,
        b"OPTS" => Command::Opts(parse_opts(arg.text()?)?),
        b"SITE" => Command::Site(parse_site(arg.text()?)?),
        b"HOST" => Command::Host(arg.required("HOST")?),
        b"CLNT" => Command::Clnt(arg.verbatim()?),
        b"AUTH" => Command::Auth(arg.token("AUTH")?),
        b"PBSZ" => Command::Pbsz(arg.token("PBSZ")?),
        b"PROT" => Command::Prot(arg.token("PROT")?),
        b"CCC" => arg.none(Command::Ccc)?,
        b"SMNT" => Command::Smnt(arg.required("SMNT")?),
        _ => return Err(ParseError::UnknownVerb),
    })
}

/// The wire form of a command (used by tests and fuzzing), without the
/// line end.
///
/// For every command `parse_command` produces, parsing the encoding gives
/// the same command back. Commands `parse_command` can never produce (a
/// path that is only spaces, `Mode('B')`, a port of 0, an `MFMT` year
/// outside 0..=9999, a name containing a space where a single token is
/// expected, ...) are encoded the obvious way but do not round-trip.
pub fn encode_command(cmd: &Command) -> String {
    let mut out = String::with_capacity(16);
    out.push_str(cmd.verb());
    // Writing to a String cannot fail; the results below are ignored.
    let with_arg = |out: &mut String, arg: &str| {
        out.push(' ');
        out.push_str(arg);
    };
    match cmd {
        Command::Rein
        | Command::Quit
        | Command::Cdup
        | Command::Pwd
        | Command::Pasv
        | Command::Allo(None)
        | Command::Abor
        | Command::Syst
        | Command::Noop
        | Command::Feat
        | Command::Ccc => {}
        Command::User(s)
        | Command::Acct(s)
        | Command::Cwd(s)
        | Command::Mkd(s)
        | Command::Rmd(s)
        | Command::Dele(s)
        | Command::Rnfr(s)
        | Command::Rnto(s)
        | Command::Size(s)
        | Command::Mdtm(s)
        | Command::Retr(s)
        | Command::Stor(s)
        | Command::Appe(s)
        | Command::Host(s)
        | Command::Auth(s)
        | Command::Pbsz(s)
        | Command::Prot(s)
        | Command::Smnt(s) => with_arg(&mut out, s),
        Command::Pass(s) => {
            if !s.is_empty() {
                with_arg(&mut out, s.expose());
            }
        }
        Command::Clnt(s) => {
            if !s.is_empty() {
                with_arg(&mut out, s);
            }
        }
        Command::Allo(Some(n)) => {
            let _ = write!(out, " {n}");
        }
        Command::Stou(p)
        | Command::Mlst(p)
        | Command::Mlsd(p)
        | Command::Help(p)
        | Command::Avbl(p) => {
            if let Some(p) = p {
                with_arg(&mut out, p);
            }
        }
        Command::Mfmt { time, path } => {
            let dt = time.to_datetime();
            let _ = write!(
                out,
                " {:04}{:02}{:02}{:02}{:02}{:02} {}",
                dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, path
            );
        }
        Command::Type(TransferType::Ascii) => out.push_str(" A"),
        Command::Type(TransferType::Image) => out.push_str(" I"),
        Command::Mode(c) | Command::Stru(c) => {
            out.push(' ');
            out.push(*c);
        }
        Command::Port(addr) => {
            let [a, b, c, d] = addr.ip().octets();
            let [p1, p2] = addr.port().to_be_bytes();
            let _ = write!(out, " {a},{b},{c},{d},{p1},{p2}");
        }
        Command::Eprt(addr) => {
            let proto = if addr.is_ipv4() { 1 } else { 2 };
            let _ = write!(out, " |{proto}|{}|{}|", addr.ip(), addr.port());
        }
        Command::Epsv(EpsvArg::Any) => {}
        Command::Epsv(EpsvArg::All) => out.push_str(" ALL"),
        Command::Epsv(EpsvArg::Protocol(n)) => {
            let _ = write!(out, " {n}");
        }
        Command::Rest(n) => {
            let _ = write!(out, " {n}");
        }
        Command::List(args) | Command::Nlst(args) => encode_list_args(&mut out, args, false),
        Command::Stat(None) => {}
        Command::Stat(Some(args)) => encode_list_args(&mut out, args, true),
        Command::Opts(Opts::Utf8(on)) => {
            out.push_str(if *on { " UTF8 ON" } else { " UTF8 OFF" });
        }
        Command::Opts(Opts::Mlst(facts)) => {
            out.push_str(" MLST");
            if !facts.is_empty() {
                out.push(' ');
                for fact in facts {
                    out.push_str(fact);
                    out.push(';');
                }
            }
        }
        Command::Opts(Opts::Other(name)) => with_arg(&mut out, name),
        Command::Opts(Opts::Hash(name)) => {
            out.push_str(" HASH");
            if let Some(name) = name {
                with_arg(&mut out, name);
            }
        }
        Command::Hash(path) => with_arg(&mut out, path),
        Command::Rang(start, end) => {
            let _ = write!(out, " {start} {end}");
        }
        Command::XHash { path, range, .. } => {
            with_arg(&mut out, path);
            if let Some((start, end)) = range {
                let _ = write!(out, " {start} {end}");
            }
        }
        Command::Site(Site::Help) => out.push_str(" HELP"),
        Command::Site(Site::Chmod { mode, path }) => {
            let _ = write!(out, " CHMOD {mode:o} {path}");
        }
        Command::Site(Site::Umask(mask)) => {
            out.push_str(" UMASK");
            if let Some(mask) = mask {
                let _ = write!(out, " {mask:o}");
            }
        }
        Command::Site(Site::Idle(secs)) => {
            out.push_str(" IDLE");
            if let Some(secs) = secs {
                let _ = write!(out, " {secs}");
            }
        }
        Command::Site(Site::Other(name)) => with_arg(&mut out, name),
    }
    out
}

/// Appends ` -flags path` for LIST, NLST and STAT.
fn encode_list_args(out: &mut String, args: &ListArgs, force_flags: bool) {
    if args.all || args.long || args.recursive || (force_flags && args.path.is_none()) {
        out.push_str(" -");
        for (on, letter) in [(args.all, 'a'), (args.long, 'l'), (args.recursive, 'R')] {
            if on {
                out.push(letter);
            }
        }
    }
    if let Some(path) = &args.path {
        out.push(' ');
        out.push_str(path);
    }
}

/// The argument bytes after the separator space.
#[derive(Clone, Copy)]
struct Arg<'a>(&'a [u8]);

impl<'a> Arg<'a> {
    /// Empty or only spaces.
    fn is_blank(self) -> bool {
        self.0.iter().all(|&b| b == b' ')
    }

    /// The argument as text.
    fn text(self) -> Result<&'a str, ParseError> {
        core::str::from_utf8(self.0).map_err(|_| ParseError::NotUtf8)
    }

    /// For verbs without an argument: only spaces may follow.
    fn none(self, cmd: Command) -> Result<Command, ParseError> {
        if self.is_blank() {
            Ok(cmd)
        } else {
            Err(ParseError::BadArgument(cmd.verb()))
        }
    }

    /// The whole argument verbatim (may be empty): a name or free text,
    /// its bytes that are not UTF-8 escaped without loss ([`crate::name`]).
    fn verbatim(self) -> Result<String, ParseError> {
        Ok(crate::name::decode(self.0))
    }

    /// A required verbatim argument that is not blank.
    fn required(self, verb: &'static str) -> Result<String, ParseError> {
        if self.is_blank() {
            return Err(bad(verb));
        }
        self.verbatim()
    }

    /// An optional verbatim argument; blank means none.
    fn optional(self) -> Result<Option<String>, ParseError> {
        if self.is_blank() {
            return Ok(None);
        }
        self.verbatim().map(Some)
    }

    /// A required argument with surrounding spaces removed.
    fn token(self, verb: &'static str) -> Result<String, ParseError> {
        match trim_spaces(self.text()?) {
            "" => Err(bad(verb)),
            token => Ok(token.into()),
        }
    }
}

/// Shorthand for [`ParseError::BadArgument`].
fn bad(verb: &'static str) -> ParseError {
    ParseError::BadArgument(verb)
}

/// `line` without trailing CR bytes.
fn trim_end_cr(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b'\r'] = line {
        line = rest;
    }
    line
}

/// `line` without leading spaces.
fn skip_spaces(line: &[u8]) -> &[u8] {
    let n = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    line.get(n..).unwrap_or(&[])
}

/// `s` without leading and trailing spaces (and stray CRs, which could not
/// survive at the end of a re-encoded line); tabs are kept.
fn trim_spaces(s: &str) -> &str {
    s.trim_matches([' ', '\r'])
}

/// The verb: three or four ASCII letters.
fn verb_token(input: &[u8]) -> Res<'_, &[u8]> {
    // Letters and digits: XSHA256 and XSHA512 are the longest verbs.
    take_while_m_n(3, 7, |b: u8| b.is_ascii_alphanumeric()).parse(input)
}

/// Runs `parser` over all of `s`.
fn whole<'a, O>(parser: impl Parser<&'a [u8], Output = O, Error = ()>, s: &'a str) -> Option<O> {
    all_consuming(parser)
        .parse(s.as_bytes())
        .ok()
        .map(|(_, o)| o)
}

/// A decimal `u64` (digits only, no sign, no overflow).
fn decimal_u64(s: &str) -> Option<u64> {
    whole(dec_u64, s)
}

/// An octal number (digits only) no larger than `max`.
fn octal(s: &str, max: u32) -> Option<u32> {
    let digits = whole(take_while1(|b: u8| (b'0'..=b'7').contains(&b)), s)?;
    let mut value: u32 = 0;
    for d in digits {
        value = value.checked_mul(8)?.checked_add(u32::from(d - b'0'))?;
    }
    (value <= max).then_some(value)
}

/// `TYPE A [N]`, `TYPE I`, `TYPE L 8`.
fn parse_type(arg: &str) -> Result<TransferType, ParseError> {
    let unsupported = Err(ParseError::UnsupportedParameter("TYPE"));
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let (Some(code), second, None) = (words.next(), words.next(), words.next()) else {
        return Err(bad("TYPE"));
    };
    let is = |w: &str, s: &str| w.eq_ignore_ascii_case(s);
    match (code, second) {
        (c, None) if is(c, "A") => Ok(TransferType::Ascii),
        (c, Some(f)) if is(c, "A") && is(f, "N") => Ok(TransferType::Ascii),
        (c, Some(f)) if is(c, "A") && (is(f, "T") || is(f, "C")) => unsupported,
        (c, None) if is(c, "E") => unsupported,
        (c, Some(f)) if is(c, "E") && (is(f, "N") || is(f, "T") || is(f, "C")) => unsupported,
        (c, None) if is(c, "I") => Ok(TransferType::Image),
        (c, Some(size)) if is(c, "L") => match whole(dec_u8, size) {
            Some(8) => Ok(TransferType::Image),
            Some(1..) => unsupported,
            _ => Err(bad("TYPE")),
        },
        _ => Err(bad("TYPE")),
    }
}

/// `MODE` / `STRU`: one letter, `supported` or one of `known`.
fn parse_letter(
    arg: &str,
    verb: &'static str,
    supported: char,
    known: &[char],
) -> Result<char, ParseError> {
    let mut chars = trim_spaces(arg).chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return Err(bad(verb));
    };
    let c = c.to_ascii_uppercase();
    if c == supported {
        Ok(c)
    } else if known.contains(&c) {
        Err(ParseError::UnsupportedParameter(verb))
    } else {
        Err(bad(verb))
    }
}

/// `PORT h1,h2,h3,h4,p1,p2`.
fn parse_port(arg: &str) -> Result<SocketAddrV4, ParseError> {
    let comma = || char(',');
    let fields = (
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
        comma(),
        dec_u8,
    );
    let (a, _, b, _, c, _, d, _, p1, _, p2) = whole(fields, trim_spaces(arg)).ok_or(bad("PORT"))?;
    let port = u16::from_be_bytes([p1, p2]);
    if port == 0 {
        return Err(bad("PORT"));
    }
    Ok(SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), port))
}

/// `EPRT <d>proto<d>address<d>port<d>` (RFC 2428).
fn parse_eprt(arg: &str) -> Result<SocketAddr, ParseError> {
    let arg = trim_spaces(arg);
    let delim = match arg.as_bytes().first() {
        Some(&d @ 33..=126) => d,
        _ => return Err(bad("EPRT")),
    };
    let field = || take_while(move |b: u8| b != delim);
    let delim_bytes = [delim];
    let sep = || tag(&delim_bytes[..]);
    let fields = (sep(), field(), sep(), field(), sep(), field(), sep());
    let (_, proto, _, addr, _, port, _) = whole(fields, arg).ok_or(bad("EPRT"))?;
    let family = protocol(proto).ok_or(bad("EPRT"))?;
    let addr = core::str::from_utf8(addr).map_err(|_| ParseError::NotUtf8)?;
    let ip = match family {
        1 => addr.parse::<Ipv4Addr>().map(IpAddr::V4),
        2 => addr.parse::<Ipv6Addr>().map(IpAddr::V6),
        _ => return Err(ParseError::UnsupportedProtocol),
    }
    .map_err(|_| bad("EPRT"))?;
    let port = all_consuming(dec_u16::<_, ()>)
        .parse(port)
        .ok()
        .map(|(_, p)| p)
        .filter(|&p| p != 0)
        .ok_or(bad("EPRT"))?;
    Ok(SocketAddr::new(ip, port))
}

/// A network protocol number (digits only). Numbers too large for `u32`
/// come back as `u32::MAX` (unsupported, but a number).
fn protocol(digits: &[u8]) -> Option<u32> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .try_fold(0u32, |n, &d| {
                n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
            })
            .unwrap_or(u32::MAX),
    )
}

/// `EPSV`, `EPSV 1`, `EPSV 2`, `EPSV ALL`.
fn parse_epsv(arg: &str) -> Result<EpsvArg, ParseError> {
    let arg = trim_spaces(arg);
    if arg.is_empty() {
        return Ok(EpsvArg::Any);
    }
    if arg.eq_ignore_ascii_case("ALL") {
        return Ok(EpsvArg::All);
    }
    match protocol(arg.as_bytes()) {
        Some(1) => Ok(EpsvArg::Protocol(1)),
        Some(2) => Ok(EpsvArg::Protocol(2)),
        Some(_) => Err(ParseError::UnsupportedProtocol),
        None => Err(bad("EPSV")),
    }
}

/// `MFMT YYYYMMDDHHMMSS[.fff] path`.
fn parse_mfmt(arg: &str) -> Result<Command, ParseError> {
    let arg = arg.trim_start_matches(' ');
    let mut stamp = (
        take_while_m_n(14, 14, |b: u8| b.is_ascii_digit()),
        opt(preceded(char('.'), digit1)),
        char(' '),
    );
    let (path, (digits, _, _)) = stamp
        .parse(arg.as_bytes())
        .map_err(|_: nom::Err<()>| bad("MFMT"))?;
    let num = |from: usize, to: usize| {
        digits
            .get(from..to)
            .unwrap_or(&[])
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
    };
    let time = UnixTime::from_datetime(DateTime {
        year: i64::from(num(0, 4)),
        month: num(4, 6),
        day: num(6, 8),
        hour: num(8, 10),
        minute: num(10, 12),
        second: num(12, 14),
    })
    .ok_or(bad("MFMT"))?;
    let path = Arg(path).required("MFMT")?;
    Ok(Command::Mfmt { time, path })
}

/// Option words (`-la`, `-R`, ...) then an optional path, for LIST, NLST
/// and STAT. Every leading word starting with `-` is options, as vsftpd
/// does; the path is the rest after the spaces that follow them.
fn parse_list_args(arg: &str) -> ListArgs {
    let mut args = ListArgs::default();
    let mut rest = arg.trim_start_matches(' ');
    while let Some(word) = rest.strip_prefix('-') {
        let end = word.find(' ').unwrap_or(word.len());
        let (flags, tail) = word.split_at(end);
        for flag in flags.bytes() {
            match flag {
                b'a' => args.all = true,
                b'l' => args.long = true,
                b'R' => args.recursive = true,
                _ => {}
            }
        }
        rest = tail.trim_start_matches(' ');
    }
    if !rest.is_empty() {
        args.path = Some(rest.into());
    }
    args
}

/// Splits `NAME rest` at the first space (after leading spaces); `rest`
/// starts after that one space.
fn split_word(arg: &str) -> (&str, &str) {
    let arg = arg.trim_start_matches(' ');
    match arg.split_once(' ') {
        Some((word, rest)) => (trim_spaces(word), rest),
        None => (trim_spaces(arg), ""),
    }
}

/// `OPTS UTF8 ON|OFF`, `OPTS MLST facts`, `OPTS other ...`.
/// `XCRC path [start end]` and its siblings: two trailing numbers (after
/// a path) are a byte range, `end` exclusive; anything else is the path.
fn parse_xhash(
    algorithm: HashAlgorithm,
    verb: &'static str,
    arg: Arg<'_>,
) -> Result<Command, ParseError> {
    let whole = arg.required(verb)?;
    let mut split = whole.rsplitn(3, ' ');
    let range = match (split.next(), split.next(), split.next()) {
        (Some(end), Some(start), Some(path)) if !path.trim_matches(' ').is_empty() => {
            match (decimal_u64(start), decimal_u64(end)) {
                (Some(start), Some(end)) => Some((String::from(path), start, end)),
                _ => None,
            }
        }
        _ => None,
    };
    Ok(match range {
        Some((path, start, end)) => Command::XHash {
            algorithm,
            path,
            range: Some((start, end)),
        },
        None => Command::XHash {
            algorithm,
            path: whole,
            range: None,
        },
    })
}

fn parse_opts(arg: &str) -> Result<Opts, ParseError> {
    let (name, rest) = split_word(arg);
    if name.is_empty() {
        return Err(bad("OPTS"));
    }
    let value = trim_spaces(rest);
    if name.eq_ignore_ascii_case("UTF8") || name.eq_ignore_ascii_case("UTF-8") {
        if value.eq_ignore_ascii_case("ON") {
            Ok(Opts::Utf8(true))
        } else if value.eq_ignore_ascii_case("OFF") {
            Ok(Opts::Utf8(false))
        } else {
            Err(bad("OPTS"))
        }
    } else if name.eq_ignore_ascii_case("HASH") {
        if value.contains(' ') {
            return Err(bad("OPTS"));
        }
        Ok(Opts::Hash((!value.is_empty()).then(|| String::from(value))))
    } else if name.eq_ignore_ascii_case("MLST") {
        if value.contains(' ') {
            return Err(bad("OPTS"));
        }
        // Each fact is trimmed like the whole value, so that the parsed
        // form is what its encoding parses back to.
        Ok(Opts::Mlst(
            value
                .split(';')
                .map(trim_spaces)
                .filter(|fact| !fact.is_empty())
                .map(str::to_ascii_lowercase)
                .collect::<Vec<_>>(),
        ))
    } else {
        Ok(Opts::Other(name.to_ascii_uppercase()))
    }
}

/// `SITE HELP`, `SITE CHMOD mode path`, `SITE UMASK [mask]`,
/// `SITE IDLE [secs]`, `SITE other ...`.
fn parse_site(arg: &str) -> Result<Site, ParseError> {
    let (name, rest) = split_word(arg);
    let is = |s: &str| name.eq_ignore_ascii_case(s);
    if name.is_empty() {
        Err(bad("SITE"))
    } else if is("HELP") {
        Ok(Site::Help)
    } else if is("CHMOD") {
        let (mode, path) = split_word(rest);
        let mode = octal(mode, 0o7777).ok_or(bad("SITE"))?;
        let path = Arg(path.as_bytes()).required("SITE")?;
        Ok(Site::Chmod { mode, path })
    } else if is("UMASK") {
        match trim_spaces(rest) {
            "" => Ok(Site::Umask(None)),
            mask => octal(mask, 0o777)
                .map(|m| Site::Umask(Some(m)))
                .ok_or(bad("SITE")),
        }
    } else if is("IDLE") {
        match trim_spaces(rest) {
            "" => Ok(Site::Idle(None)),
            secs => decimal_u64(secs)
                .map(|s| Site::Idle(Some(s)))
                .ok_or(bad("SITE")),
        }
    } else {
        Ok(Site::Other(name.to_ascii_uppercase()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use core::net::SocketAddrV6;

    use ParseError::*;

    fn s(x: &str) -> String {
        x.to_string()
    }

    fn list(all: bool, long: bool, recursive: bool, path: Option<&str>) -> ListArgs {
        ListArgs {
            all,
            long,
            recursive,
            path: path.map(s),
        }
    }

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(a), port))
    }

    /// Every verb, each success form and each error path.
    #[test]
    fn table() {
        let mfmt_time = UnixTime::from_datetime(DateTime {
            year: 2020,
            month: 2,
            day: 29,
            hour: 23,
            minute: 59,
            second: 1,
        })
        .unwrap();
        let cases: Vec<(&[u8], Result<Command, ParseError>)> = vec![
            // Framing of the verb.
            (b"", Err(Empty)),
            (b"   ", Err(Empty)),
            (b"\r", Err(Empty)),
            (b"XYZZY", Err(UnknownVerb)),
            (b"FOO", Err(UnknownVerb)),
            (b"FOO bar", Err(UnknownVerb)),
            (b"NO", Err(UnknownVerb)),
            (b"NOOPX", Err(UnknownVerb)),
            (b"NOOP\tx", Err(UnknownVerb)),
            (b"N00P", Err(UnknownVerb)),
            (b"\xff\xfe", Err(UnknownVerb)),
            (b"noop", Ok(Command::Noop)),
            (b"NoOp", Ok(Command::Noop)),
            (b"  NOOP", Ok(Command::Noop)),
            (b"NOOP   ", Ok(Command::Noop)),
            (b"NOOP\r", Ok(Command::Noop)),
            (b"NOOP x", Err(BadArgument("NOOP"))),
            (b"NOOP \xff", Err(BadArgument("NOOP"))),
            // Login.
            (b"USER anonymous", Ok(Command::User(s("anonymous")))),
            (b"user Bob Smith", Ok(Command::User(s("Bob Smith")))),
            (b"USER", Err(BadArgument("USER"))),
            (b"USER ", Err(BadArgument("USER"))),
            (b"USER   ", Err(BadArgument("USER"))),
            (
                b"USER \xc3\x28",
                Ok(Command::User(crate::name::decode(b"\xc3\x28"))),
            ),
            (b"PASS", Ok(Command::Pass("".into()))),
            (b"PASS ", Ok(Command::Pass("".into()))),
            (b"PASS  sec ret ", Ok(Command::Pass(" sec ret ".into()))),
            (b"ACCT x", Ok(Command::Acct(s("x")))),
            (b"ACCT", Err(BadArgument("ACCT"))),
            (b"REIN", Ok(Command::Rein)),
            (b"REIN x", Err(BadArgument("REIN"))),
            (b"QUIT", Ok(Command::Quit)),
            (b"quit ", Ok(Command::Quit)),
            // Directories and files.
            (b"CWD /pub", Ok(Command::Cwd(s("/pub")))),
            (b"XCWD /pub", Ok(Command::Cwd(s("/pub")))),
            (b"CWD", Err(BadArgument("CWD"))),
            (b"XCWD ", Err(BadArgument("CWD"))),
            (b"CDUP", Ok(Command::Cdup)),
            (b"XCUP", Ok(Command::Cdup)),
            (b"CDUP /", Err(BadArgument("CDUP"))),
            (b"PWD", Ok(Command::Pwd)),
            (b"XPWD", Ok(Command::Pwd)),
            (b"MKD new dir", Ok(Command::Mkd(s("new dir")))),
            (b"XMKD d", Ok(Command::Mkd(s("d")))),
            (b"MKD", Err(BadArgument("MKD"))),
            (b"RMD d", Ok(Command::Rmd(s("d")))),
            (b"XRMD d", Ok(Command::Rmd(s("d")))),
            (b"XRMD", Err(BadArgument("RMD"))),
            (b"DELE f", Ok(Command::Dele(s("f")))),
            (b"DELE", Err(BadArgument("DELE"))),
            (b"RNFR a", Ok(Command::Rnfr(s("a")))),
            (b"RNFR", Err(BadArgument("RNFR"))),
            (b"RNTO b", Ok(Command::Rnto(s("b")))),
            (b"RNTO", Err(BadArgument("RNTO"))),
            (b"SIZE f", Ok(Command::Size(s("f")))),
            (b"SIZE", Err(BadArgument("SIZE"))),
            (b"MDTM f", Ok(Command::Mdtm(s("f")))),
            (
                b"MDTM 20200101000000 f",
                Ok(Command::Mdtm(s("20200101000000 f"))),
            ),
            (b"MDTM", Err(BadArgument("MDTM"))),
            (
                b"MFMT 20200229235901 my file",
                Ok(Command::Mfmt {
                    time: mfmt_time,
                    path: s("my file"),
                }),
            ),
            (
                b"MFMT   20200229235901.123 my file",
                Ok(Command::Mfmt {
                    time: mfmt_time,
                    path: s("my file"),
                }),
            ),
            (
                b"MFMT 19700101000000 a",
                Ok(Command::Mfmt {
                    time: UnixTime(0),
                    path: s("a"),
                }),
            ),
            (b"MFMT 20210229000000 f", Err(BadArgument("MFMT"))),
            (b"MFMT 20201301000000 f", Err(BadArgument("MFMT"))),
            (b"MFMT 20200101240000 f", Err(BadArgument("MFMT"))),
            (b"MFMT 2020010100000 f", Err(BadArgument("MFMT"))),
            (b"MFMT 202001010000000 f", Err(BadArgument("MFMT"))),
            (b"MFMT 20200101000000", Err(BadArgument("MFMT"))),
            (b"MFMT 20200101000000 ", Err(BadArgument("MFMT"))),
            (b"MFMT f", Err(BadArgument("MFMT"))),
            (b"MFMT", Err(BadArgument("MFMT"))),
            (b"MFMT 20200101000000 \xff", Err(NotUtf8)),
            // Transfer parameters.
            (b"TYPE A", Ok(Command::Type(TransferType::Ascii))),
            (b"type a", Ok(Command::Type(TransferType::Ascii))),
            (b"TYPE A N", Ok(Command::Type(TransferType::Ascii))),
            (b"TYPE  a  n ", Ok(Command::Type(TransferType::Ascii))),
            (b"TYPE I", Ok(Command::Type(TransferType::Image))),
            (b"TYPE i", Ok(Command::Type(TransferType::Image))),
            (b"TYPE L 8", Ok(Command::Type(TransferType::Image))),
            (b"TYPE l 8", Ok(Command::Type(TransferType::Image))),
            (b"TYPE A T", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE A C", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE E", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE E N", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE L 7", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE L 36", Err(UnsupportedParameter("TYPE"))),
            (b"TYPE L 0", Err(BadArgument("TYPE"))),
            (b"TYPE L 256", Err(BadArgument("TYPE"))),
            (b"TYPE L", Err(BadArgument("TYPE"))),
            (b"TYPE L x", Err(BadArgument("TYPE"))),
            (b"TYPE A X", Err(BadArgument("TYPE"))),
            (b"TYPE I N", Err(BadArgument("TYPE"))),
            (b"TYPE A N N", Err(BadArgument("TYPE"))),
            (b"TYPE X", Err(BadArgument("TYPE"))),
            (b"TYPE AI", Err(BadArgument("TYPE"))),
            (b"TYPE", Err(BadArgument("TYPE"))),
            (b"TYPE \xff", Err(NotUtf8)),
            (b"MODE S", Ok(Command::Mode('S'))),
            (b"mode s", Ok(Command::Mode('S'))),
            (b"MODE B", Err(UnsupportedParameter("MODE"))),
            (b"MODE C", Err(UnsupportedParameter("MODE"))),
            (b"MODE X", Err(BadArgument("MODE"))),
            (b"MODE SS", Err(BadArgument("MODE"))),
            (b"MODE", Err(BadArgument("MODE"))),
            (b"STRU F", Ok(Command::Stru('F'))),
            (b"stru f ", Ok(Command::Stru('F'))),
            (b"STRU R", Err(UnsupportedParameter("STRU"))),
            (b"STRU P", Err(UnsupportedParameter("STRU"))),
            (b"STRU Z", Err(BadArgument("STRU"))),
            (b"STRU", Err(BadArgument("STRU"))),
            // Data connections.
            (
                b"PORT 192,168,1,2,7,138",
                Ok(Command::Port(SocketAddrV4::new(
                    Ipv4Addr::new(192, 168, 1, 2),
                    1930,
                ))),
            ),
            (
                b"PORT  10,0,0,1,0,21 ",
                Ok(Command::Port(SocketAddrV4::new(
                    Ipv4Addr::new(10, 0, 0, 1),
                    21,
                ))),
            ),
            (b"PORT 256,0,0,1,0,21", Err(BadArgument("PORT"))),
            (b"PORT 1,2,3,4,5", Err(BadArgument("PORT"))),
            (b"PORT 1,2,3,4,5,6,7", Err(BadArgument("PORT"))),
            (b"PORT 1,2,3,4,0,0", Err(BadArgument("PORT"))),
            (b"PORT 1, 2,3,4,5,6", Err(BadArgument("PORT"))),
            (b"PORT 1,2,3,4,5,-6", Err(BadArgument("PORT"))),
            (b"PORT", Err(BadArgument("PORT"))),
            (b"PASV", Ok(Command::Pasv)),
            (b"PASV 1", Err(BadArgument("PASV"))),
            (
                b"EPRT |1|132.235.1.2|6275|",
                Ok(Command::Eprt(v4([132, 235, 1, 2], 6275))),
            ),
            (
                b"EPRT  !1!132.235.1.2!6275! ",
                Ok(Command::Eprt(v4([132, 235, 1, 2], 6275))),
            ),
            (
                b"EPRT |2|::1|6275|",
                Ok(Command::Eprt(SocketAddr::V6(SocketAddrV6::new(
                    Ipv6Addr::LOCALHOST,
                    6275,
                    0,
                    0,
                )))),
            ),
            (
                b"EPRT |2|1080::8:800:200C:417A|5282|",
                Ok(Command::Eprt(SocketAddr::new(
                    IpAddr::V6(Ipv6Addr::new(0x1080, 0, 0, 0, 8, 0x800, 0x200c, 0x417a)),
                    5282,
                ))),
            ),
            (b"EPRT |3|1.2.3.4|80|", Err(UnsupportedProtocol)),
            (b"EPRT |99999999999|1.2.3.4|80|", Err(UnsupportedProtocol)),
            (b"EPRT |1|::1|80|", Err(BadArgument("EPRT"))),
            (b"EPRT |2|1.2.3.4|80|", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3.4|0|", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3.4|65536|", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3.4|80", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3.4|80|x", Err(BadArgument("EPRT"))),
            (b"EPRT ||1.2.3.4|80|", Err(BadArgument("EPRT"))),
            (b"EPRT |x|1.2.3.4|80|", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3|80|", Err(BadArgument("EPRT"))),
            (b"EPRT |1|1.2.3.4|+80|", Err(BadArgument("EPRT"))),
            (b"EPRT \x7f1\x7f1.2.3.4\x7f80\x7f", Err(BadArgument("EPRT"))),
            (b"EPRT", Err(BadArgument("EPRT"))),
            (b"EPSV", Ok(Command::Epsv(EpsvArg::Any))),
            (b"EPSV ", Ok(Command::Epsv(EpsvArg::Any))),
            (b"EPSV ALL", Ok(Command::Epsv(EpsvArg::All))),
            (b"epsv all", Ok(Command::Epsv(EpsvArg::All))),
            (b"EPSV 1", Ok(Command::Epsv(EpsvArg::Protocol(1)))),
            (b"EPSV 2", Ok(Command::Epsv(EpsvArg::Protocol(2)))),
            (b"EPSV 3", Err(UnsupportedProtocol)),
            (b"EPSV 0", Err(UnsupportedProtocol)),
            (b"EPSV foo", Err(BadArgument("EPSV"))),
            (b"EPSV -1", Err(BadArgument("EPSV"))),
            // Transfers.
            (b"RETR my file.txt", Ok(Command::Retr(s("my file.txt")))),
            (
                b"RETR  lead and trail ",
                Ok(Command::Retr(s(" lead and trail "))),
            ),
            (b"RETR f\r\r", Ok(Command::Retr(s("f")))),
            (b"RETR f\rg", Ok(Command::Retr(s("f\rg")))),
            (
                "RETR données/日本.txt".as_bytes(),
                Ok(Command::Retr(s("données/日本.txt"))),
            ),
            (
                b"RETR \xff.txt",
                Ok(Command::Retr(crate::name::decode(b"\xff.txt"))),
            ),
            (b"RETR", Err(BadArgument("RETR"))),
            (b"STOR f", Ok(Command::Stor(s("f")))),
            (b"STOR", Err(BadArgument("STOR"))),
            (b"STOU", Ok(Command::Stou(None))),
            (b"STOU  ", Ok(Command::Stou(None))),
            (b"STOU f", Ok(Command::Stou(Some(s("f"))))),
            (b"APPE f", Ok(Command::Appe(s("f")))),
            (b"APPE", Err(BadArgument("APPE"))),
            (b"ALLO", Ok(Command::Allo(None))),
            (b"ALLO 1000 R 10", Ok(Command::Allo(Some(1000)))),
            (b"ALLO  77", Ok(Command::Allo(Some(77)))),
            (b"ALLO \xff", Ok(Command::Allo(None))),
            (b"ALLO x", Ok(Command::Allo(None))),
            (b"AVBL", Ok(Command::Avbl(None))),
            (b"HASH a b", Ok(Command::Hash(s("a b")))),
            (b"HASH", Err(BadArgument("HASH"))),
            (b"RANG 1 0", Ok(Command::Rang(1, 0))),
            (b"RANG 10  20 ", Ok(Command::Rang(10, 20))),
            (b"RANG 10", Err(BadArgument("RANG"))),
            (b"RANG 1 2 3", Err(BadArgument("RANG"))),
            (
                b"XCRC my file.bin",
                Ok(Command::XHash {
                    algorithm: HashAlgorithm::Crc32,
                    path: s("my file.bin"),
                    range: None,
                }),
            ),
            (
                b"xsha256 f 10 20",
                Ok(Command::XHash {
                    algorithm: HashAlgorithm::Sha256,
                    path: s("f"),
                    range: Some((10, 20)),
                }),
            ),
            (
                b"XSHA512 10 20",
                Ok(Command::XHash {
                    algorithm: HashAlgorithm::Sha512,
                    path: s("10 20"),
                    range: None,
                }),
            ),
            (b"XSHA1", Err(BadArgument("XSHA1"))),
            (b"XSHA2 f", Err(ParseError::UnknownVerb)),
            (b"OPTS HASH", Ok(Command::Opts(Opts::Hash(None)))),
            (
                b"OPTS hash md5",
                Ok(Command::Opts(Opts::Hash(Some(s("md5"))))),
            ),
            (b"AVBL dir/sub", Ok(Command::Avbl(Some(s("dir/sub"))))),
            (b"REST 0", Ok(Command::Rest(0))),
            (b"REST  123456789012 ", Ok(Command::Rest(123_456_789_012))),
            (b"REST 18446744073709551615", Ok(Command::Rest(u64::MAX))),
            (b"REST 18446744073709551616", Err(BadArgument("REST"))),
            (b"REST -1", Err(BadArgument("REST"))),
            (b"REST +1", Err(BadArgument("REST"))),
            (b"REST 1x", Err(BadArgument("REST"))),
            (b"REST", Err(BadArgument("REST"))),
            (b"ABOR", Ok(Command::Abor)),
            (b"ABOR now", Err(BadArgument("ABOR"))),
            // Listings.
            (b"LIST", Ok(Command::List(ListArgs::default()))),
            (b"LIST ", Ok(Command::List(ListArgs::default()))),
            (
                b"LIST -la",
                Ok(Command::List(list(true, true, false, None))),
            ),
            (
                b"LIST -al /pub",
                Ok(Command::List(list(true, true, false, Some("/pub")))),
            ),
            (
                b"LIST -a  -l  my dir ",
                Ok(Command::List(list(true, true, false, Some("my dir ")))),
            ),
            (
                b"LIST -R",
                Ok(Command::List(list(false, false, true, None))),
            ),
            (
                b"LIST -aL",
                Ok(Command::List(list(true, false, false, None))),
            ),
            (
                b"LIST -x dir",
                Ok(Command::List(list(false, false, false, Some("dir")))),
            ),
            (
                b"LIST dir -l",
                Ok(Command::List(list(false, false, false, Some("dir -l")))),
            ),
            (b"NLST", Ok(Command::Nlst(ListArgs::default()))),
            (
                b"NLST -l *.txt",
                Ok(Command::Nlst(list(false, true, false, Some("*.txt")))),
            ),
            (b"MLST", Ok(Command::Mlst(None))),
            (b"MLST a b", Ok(Command::Mlst(Some(s("a b"))))),
            (b"MLSD", Ok(Command::Mlsd(None))),
            (b"MLSD /pub", Ok(Command::Mlsd(Some(s("/pub"))))),
            (b"STAT", Ok(Command::Stat(None))),
            (b"STAT  ", Ok(Command::Stat(None))),
            (
                b"STAT /pub",
                Ok(Command::Stat(Some(list(false, false, false, Some("/pub"))))),
            ),
            (
                b"STAT -la",
                Ok(Command::Stat(Some(list(true, true, false, None)))),
            ),
            (b"STAT -", Ok(Command::Stat(Some(ListArgs::default())))),
            // Information.
            (b"SYST", Ok(Command::Syst)),
            (b"HELP", Ok(Command::Help(None))),
            (b"HELP  retr ", Ok(Command::Help(Some(s("retr"))))),
            (b"NOOP", Ok(Command::Noop)),
            (b"FEAT", Ok(Command::Feat)),
            (b"FEAT x", Err(BadArgument("FEAT"))),
            // OPTS.
            (b"OPTS UTF8 ON", Ok(Command::Opts(Opts::Utf8(true)))),
            (b"opts utf8 on", Ok(Command::Opts(Opts::Utf8(true)))),
            (b"OPTS UTF-8 OFF", Ok(Command::Opts(Opts::Utf8(false)))),
            (b"OPTS UTF8", Err(BadArgument("OPTS"))),
            (b"OPTS UTF8 MAYBE", Err(BadArgument("OPTS"))),
            (
                b"OPTS MLST type;Size;modify;",
                Ok(Command::Opts(Opts::Mlst(vec![
                    s("type"),
                    s("size"),
                    s("modify"),
                ]))),
            ),
            (
                b"OPTS MLST type",
                Ok(Command::Opts(Opts::Mlst(vec![s("type")]))),
            ),
            (b"OPTS MLST", Ok(Command::Opts(Opts::Mlst(vec![])))),
            (b"OPTS MLST ;;", Ok(Command::Opts(Opts::Mlst(vec![])))),
            (b"OPTS MLST type; size;", Err(BadArgument("OPTS"))),
            (b"OPTS mode z", Ok(Command::Opts(Opts::Other(s("MODE"))))),
            (b"OPTS", Err(BadArgument("OPTS"))),
            (b"OPTS  ", Err(BadArgument("OPTS"))),
            // SITE.
            (b"SITE HELP", Ok(Command::Site(Site::Help))),
            (b"site help chmod", Ok(Command::Site(Site::Help))),
            (
                b"SITE CHMOD 755 my file",
                Ok(Command::Site(Site::Chmod {
                    mode: 0o755,
                    path: s("my file"),
                })),
            ),
            (
                b"SITE chmod  07777 f",
                Ok(Command::Site(Site::Chmod {
                    mode: 0o7777,
                    path: s("f"),
                })),
            ),
            (b"SITE CHMOD 10000 f", Err(BadArgument("SITE"))),
            (b"SITE CHMOD 789 f", Err(BadArgument("SITE"))),
            (b"SITE CHMOD 755", Err(BadArgument("SITE"))),
            (b"SITE CHMOD 755 ", Err(BadArgument("SITE"))),
            (b"SITE CHMOD", Err(BadArgument("SITE"))),
            (b"SITE UMASK", Ok(Command::Site(Site::Umask(None)))),
            (
                b"SITE UMASK 022",
                Ok(Command::Site(Site::Umask(Some(0o22)))),
            ),
            (b"SITE UMASK 1000", Err(BadArgument("SITE"))),
            (b"SITE UMASK 9", Err(BadArgument("SITE"))),
            (b"SITE IDLE", Ok(Command::Site(Site::Idle(None)))),
            (b"SITE IDLE 600", Ok(Command::Site(Site::Idle(Some(600))))),
            (b"SITE IDLE x", Err(BadArgument("SITE"))),
            (b"SITE whoami", Ok(Command::Site(Site::Other(s("WHOAMI"))))),
            (b"SITE", Err(BadArgument("SITE"))),
            (b"SITE ", Err(BadArgument("SITE"))),
            (b"SITE \xff", Err(NotUtf8)),
            // Others.
            (
                b"HOST ftp.example.com",
                Ok(Command::Host(s("ftp.example.com"))),
            ),
            (b"HOST", Err(BadArgument("HOST"))),
            (b"CLNT", Ok(Command::Clnt(s("")))),
            (b"CLNT FileZilla 3", Ok(Command::Clnt(s("FileZilla 3")))),
            (b"AUTH TLS", Ok(Command::Auth(s("TLS")))),
            (b"AUTH  tls ", Ok(Command::Auth(s("tls")))),
            (b"AUTH", Err(BadArgument("AUTH"))),
            (b"PBSZ 0", Ok(Command::Pbsz(s("0")))),
            (b"PBSZ", Err(BadArgument("PBSZ"))),
            (b"PROT P", Ok(Command::Prot(s("P")))),
            (b"PROT", Err(BadArgument("PROT"))),
            (b"CCC", Ok(Command::Ccc)),
            (b"CCC x", Err(BadArgument("CCC"))),
            (b"SMNT /x", Ok(Command::Smnt(s("/x")))),
            (b"SMNT", Err(BadArgument("SMNT"))),
        ];
        for (line, expected) in cases {
            let got = parse_command(line);
            assert_eq!(got, expected, "line {:?}", String::from_utf8_lossy(line));
            if let Ok(cmd) = got {
                let again = parse_command(&crate::name::encode(&encode_command(&cmd)));
                assert_eq!(
                    again,
                    Ok(cmd),
                    "round trip of {:?}",
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    #[test]
    fn every_command_variant_is_covered() {
        // A parse of each verb's canonical form proves the verb table and
        // `Command::verb` agree.
        for verb in [
            "USER x",
            "PASS",
            "ACCT x",
            "REIN",
            "QUIT",
            "CWD x",
            "CDUP",
            "PWD",
            "MKD x",
            "RMD x",
            "DELE x",
            "RNFR x",
            "RNTO x",
            "SIZE x",
            "MDTM x",
            "MFMT 20000101000000 x",
            "TYPE I",
            "MODE S",
            "STRU F",
            "PORT 1,2,3,4,5,6",
            "PASV",
            "EPRT |1|1.2.3.4|5|",
            "EPSV",
            "RETR x",
            "STOR x",
            "STOU",
            "APPE x",
            "ALLO",
            "REST 1",
            "ABOR",
            "LIST",
            "NLST",
            "MLST",
            "MLSD",
            "STAT",
            "SYST",
            "HELP",
            "NOOP",
            "FEAT",
            "OPTS X",
            "SITE X",
            "HOST x",
            "CLNT",
            "AUTH x",
            "PBSZ x",
            "PROT x",
            "CCC",
            "SMNT x",
        ] {
            let cmd = parse_command(verb.as_bytes()).unwrap();
            assert!(verb.starts_with(cmd.verb()), "{verb}");
            let lower = verb.to_ascii_lowercase();
            assert_eq!(
                parse_command(lower.as_bytes()).map(|c| c.verb()),
                Ok(cmd.verb())
            );
        }
    }

    #[test]
    fn error_codes() {
        assert_eq!(Empty.reply_code(), 500);
        assert_eq!(UnknownVerb.reply_code(), 500);
        assert_eq!(NotImplemented("SMNT").reply_code(), 502);
        assert_eq!(BadArgument("PORT").reply_code(), 501);
        assert_eq!(NotUtf8.reply_code(), 501);
        assert_eq!(UnsupportedParameter("TYPE").reply_code(), 504);
        assert_eq!(UnsupportedProtocol.reply_code(), 522);
        assert_eq!(
            UnsupportedProtocol.to_string(),
            "Network protocol not supported, use (1,2)."
        );
        assert_eq!(
            BadArgument("PORT").to_string(),
            "Syntax error in PORT arguments."
        );
    }

    #[test]
    fn encodings() {
        let enc = |line: &str| encode_command(&parse_command(line.as_bytes()).unwrap());
        assert_eq!(enc("port 1,2,3,4,5,6"), "PORT 1,2,3,4,5,6");
        assert_eq!(enc("eprt |2|::1|21|"), "EPRT |2|::1|21|");
        assert_eq!(enc("mfmt 20200229235901.5 f"), "MFMT 20200229235901 f");
        assert_eq!(enc("list -l -a x"), "LIST -al x");
        assert_eq!(enc("opts mlst Type;size"), "OPTS MLST type;size;");
        assert_eq!(enc("site chmod 0755 f"), "SITE CHMOD 755 f");
        assert_eq!(enc("type l 8"), "TYPE I");
        assert_eq!(enc("xmkd d"), "MKD d");
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// A name that may contain spaces and non-ASCII, not blank, without
        /// CR / LF.
        fn path() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9 ._/é日*-]{1,24}".prop_filter("blank", |p| !p.trim_matches(' ').is_empty())
        }

        /// A path as LIST keeps it: not starting with a space or `-`.
        fn list_path() -> impl Strategy<Value = String> {
            path().prop_filter("option-like", |p| !p.starts_with([' ', '-']))
        }

        /// A single token without spaces.
        fn token() -> impl Strategy<Value = String> {
            "[A-Za-z0-9_.é-]{1,12}"
        }

        fn list_args() -> impl Strategy<Value = ListArgs> {
            (
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
                proptest::option::of(list_path()),
            )
                .prop_map(|(all, long, recursive, path)| ListArgs {
                    all,
                    long,
                    recursive,
                    path,
                })
        }

        fn mfmt_time() -> impl Strategy<Value = UnixTime> {
            // Years 0000 to 9999.
            (-62_167_219_200i64..253_402_300_800).prop_map(UnixTime)
        }

        fn site() -> impl Strategy<Value = Site> {
            prop_oneof![
                Just(Site::Help),
                (0u32..=0o7777, path()).prop_map(|(mode, path)| Site::Chmod { mode, path }),
                proptest::option::of(0u32..=0o777).prop_map(Site::Umask),
                proptest::option::of(any::<u64>()).prop_map(Site::Idle),
                token()
                    .prop_map(|t| t.to_ascii_uppercase())
                    .prop_filter("known", |t| !["HELP", "CHMOD", "UMASK", "IDLE"]
                        .contains(&t.as_str()))
                    .prop_map(Site::Other),
            ]
        }

        fn opts() -> impl Strategy<Value = Opts> {
            prop_oneof![
                any::<bool>().prop_map(Opts::Utf8),
                proptest::collection::vec("[a-z.]{1,8}", 0..4).prop_map(Opts::Mlst),
                token()
                    .prop_map(|t| t.to_ascii_uppercase())
                    .prop_filter("known", |t| !["UTF8", "UTF-8", "MLST", "HASH"]
                        .contains(&t.as_str()))
                    .prop_map(Opts::Other),
                proptest::option::of("[A-Za-z0-9-]{1,8}").prop_map(Opts::Hash),
            ]
        }

        fn socket_v4() -> impl Strategy<Value = SocketAddrV4> {
            (any::<[u8; 4]>(), 1u16..).prop_map(|(ip, port)| SocketAddrV4::new(ip.into(), port))
        }

        fn socket() -> impl Strategy<Value = SocketAddr> {
            prop_oneof![
                socket_v4().prop_map(SocketAddr::V4),
                (any::<[u8; 16]>(), 1u16..)
                    .prop_map(|(ip, port)| SocketAddr::new(Ipv6Addr::from(ip).into(), port)),
            ]
        }

        fn command() -> impl Strategy<Value = Command> {
            let simple = prop_oneof![
                Just(Command::Rein),
                Just(Command::Quit),
                Just(Command::Cdup),
                Just(Command::Pwd),
                Just(Command::Pasv),
                Just(Command::Allo(None)),
                any::<u64>().prop_map(|n| Command::Allo(Some(n))),
                proptest::option::of(path()).prop_map(Command::Avbl),
                path().prop_map(Command::Hash),
                (any::<u64>(), any::<u64>()).prop_map(|(a, b)| Command::Rang(a, b)),
                (
                    proptest::sample::select(&crate::HashAlgorithm::ALL[..]),
                    "[a-z._-]{1,12}",
                    proptest::option::of((any::<u64>(), any::<u64>())),
                )
                    .prop_map(|(algorithm, path, range)| Command::XHash {
                        algorithm,
                        path,
                        range,
                    }),
                Just(Command::Abor),
                Just(Command::Syst),
                Just(Command::Noop),
                Just(Command::Feat),
                Just(Command::Ccc),
                Just(Command::Type(TransferType::Ascii)),
                Just(Command::Type(TransferType::Image)),
                Just(Command::Mode('S')),
                Just(Command::Stru('F')),
                Just(Command::Epsv(EpsvArg::Any)),
                Just(Command::Epsv(EpsvArg::All)),
                Just(Command::Epsv(EpsvArg::Protocol(1))),
                Just(Command::Epsv(EpsvArg::Protocol(2))),
            ];
            let with_path = prop_oneof![
                path().prop_map(Command::User),
                "[ -~é]{0,16}".prop_map(|s| Command::Pass(s.into())),
                path().prop_map(Command::Acct),
                path().prop_map(Command::Cwd),
                path().prop_map(Command::Mkd),
                path().prop_map(Command::Rmd),
                path().prop_map(Command::Dele),
                path().prop_map(Command::Rnfr),
                path().prop_map(Command::Rnto),
                path().prop_map(Command::Size),
                path().prop_map(Command::Mdtm),
                path().prop_map(Command::Retr),
                path().prop_map(Command::Stor),
                path().prop_map(Command::Appe),
                path().prop_map(Command::Host),
                path().prop_map(Command::Smnt),
                "[ -~é]{0,16}".prop_map(Command::Clnt),
                token().prop_map(Command::Auth),
                token().prop_map(Command::Pbsz),
                token().prop_map(Command::Prot),
                proptest::option::of(path()).prop_map(Command::Stou),
                proptest::option::of(path()).prop_map(Command::Mlst),
                proptest::option::of(path()).prop_map(Command::Mlsd),
                proptest::option::of("[a-zA-Z]{1,4}( [a-z]{1,4})?").prop_map(Command::Help),
            ];
            let structured = prop_oneof![
                (mfmt_time(), path()).prop_map(|(time, path)| Command::Mfmt { time, path }),
                socket_v4().prop_map(Command::Port),
                socket().prop_map(Command::Eprt),
                any::<u64>().prop_map(Command::Rest),
                list_args().prop_map(Command::List),
                list_args().prop_map(Command::Nlst),
                proptest::option::of(list_args()).prop_map(Command::Stat),
                opts().prop_map(Command::Opts),
                site().prop_map(Command::Site),
            ];
            prop_oneof![simple, with_path, structured]
        }

        /// Lines that start with a real verb, to reach argument parsers.
        fn verb_line() -> impl Strategy<Value = Vec<u8>> {
            const VERBS: &[&str] = &[
                "USER", "PASS", "CWD", "XMKD", "MFMT", "TYPE", "MODE", "STRU", "PORT", "EPRT",
                "EPSV", "RETR", "STOU", "REST", "LIST", "STAT", "OPTS", "SITE", "HELP", "AUTH",
                "NOOP", "SIZE",
            ];
            (
                proptest::sample::select(VERBS),
                any::<bool>(),
                proptest::collection::vec(
                    prop_oneof![
                        Just(b' '),
                        Just(b'|'),
                        Just(b','),
                        Just(b'-'),
                        Just(b';'),
                        Just(b'.'),
                        Just(b':'),
                        Just(b'\r'),
                        b'0'..=b'9',
                        b'a'..=b'z',
                        b'A'..=b'Z',
                        any::<u8>()
                    ],
                    0..40,
                ),
            )
                .prop_map(|(verb, lower, arg)| {
                    let mut line = if lower {
                        verb.to_ascii_lowercase()
                    } else {
                        verb.to_string()
                    }
                    .into_bytes();
                    line.push(b' ');
                    line.extend(arg);
                    line
                })
        }

        /// Parse, and check that the canonical encoding parses the same.
        fn check_stable(line: &[u8]) -> Result<(), TestCaseError> {
            if let Ok(cmd) = parse_command(line) {
                let encoded = encode_command(&cmd);
                prop_assert_eq!(parse_command(&crate::name::encode(&encoded)), Ok(cmd));
            }
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(line in proptest::collection::vec(any::<u8>(), 0..64)) {
                check_stable(&line)?;
            }

            #[test]
            fn verb_lines_are_stable(line in verb_line()) {
                check_stable(&line)?;
            }

            #[test]
            fn valid_commands_round_trip(cmd in command()) {
                let encoded = encode_command(&cmd);
                prop_assert_eq!(parse_command(&crate::name::encode(&encoded)), Ok(cmd));
            }
        }
    }
}
