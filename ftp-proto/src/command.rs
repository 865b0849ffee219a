//! The typed FTP command set a client can send.
//!
//! [`crate::parse::parse_command`] turns one control line into a
//! [`Command`]; every argument is validated there, so the session only sees
//! well-formed values.

use alloc::string::String;
use core::net::{SocketAddr, SocketAddrV4};

use crate::secret::Secret;
use crate::time::UnixTime;

/// One parsed control-connection command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// `USER name`
    User(String),
    /// `PASS secret` (may be empty)
    Pass(Secret),
    /// `ACCT info`
    Acct(String),
    /// `REIN`: reset the session to just after the greeting.
    Rein,
    /// `QUIT`
    Quit,
    /// `CWD path` / `XCWD path`
    Cwd(String),
    /// `CDUP` / `XCUP`
    Cdup,
    /// `PWD` / `XPWD`
    Pwd,
    /// `MKD path` / `XMKD path`
    Mkd(String),
    /// `RMD path` / `XRMD path`
    Rmd(String),
    /// `DELE path`
    Dele(String),
    /// `RNFR path`
    Rnfr(String),
    /// `RNTO path`
    Rnto(String),
    /// `SIZE path` (RFC 3659)
    Size(String),
    /// `MDTM path` (RFC 3659)
    Mdtm(String),
    /// `MFMT YYYYMMDDHHMMSS path`: set the modification time.
    Mfmt {
        /// The new modification time.
        time: UnixTime,
        /// The file to change.
        path: String,
    },
    /// `TYPE A`, `TYPE A N`, `TYPE I`, `TYPE L 8`
    Type(TransferType),
    /// `MODE x`; only `S` (stream) is supported.
    Mode(char),
    /// `STRU x`; only `F` (file) is supported.
    Stru(char),
    /// `PORT h1,h2,h3,h4,p1,p2`
    Port(SocketAddrV4),
    /// `PASV`
    Pasv,
    /// `EPRT |proto|addr|port|` (RFC 2428)
    Eprt(SocketAddr),
    /// `EPSV`, `EPSV 1`, `EPSV 2`, `EPSV ALL` (RFC 2428)
    Epsv(EpsvArg),
    /// `RETR path`
    Retr(String),
    /// `STOR path`
    Stor(String),
    /// `STOU [path]`: store under a unique name.
    Stou(Option<String>),
    /// `APPE path`
    Appe(String),
    /// `ALLO n [R m]`: the size of the next upload, when `n` is a number
    /// (used to refuse an upload over a quota before it starts).
    Allo(Option<u64>),
    /// `HASH path` (draft-bryan-ftpext-hash): the digest of a file with
    /// the session's algorithm (`OPTS HASH`), over the `RANG` range.
    Hash(String),
    /// `RANG start end`: the byte range (`end` inclusive) of the next
    /// `HASH`; `RANG 1 0` resets it.
    Rang(u64, u64),
    /// `XCRC`, `XMD5`, `XSHA1`, `XSHA256`, `XSHA512 path [start end]`:
    /// the older digest commands (ProFTPD's mod_digest), `end` exclusive.
    XHash {
        /// Which digest the verb names.
        algorithm: crate::HashAlgorithm,
        /// The file.
        path: String,
        /// Bytes `start..end` only.
        range: Option<(u64, u64)>,
    },
    /// `AVBL [path]`: the space available to uploads (draft-peterson
    /// streamlined FTP command extensions).
    Avbl(Option<String>),
    /// `REST offset` (RFC 3659 stream mode)
    Rest(u64),
    /// `ABOR`
    Abor,
    /// `LIST [flags] [path]`
    List(ListArgs),
    /// `NLST [flags] [path]`
    Nlst(ListArgs),
    /// `MLST [path]` (RFC 3659)
    Mlst(Option<String>),
    /// `MLSD [path]` (RFC 3659)
    Mlsd(Option<String>),
    /// `STAT [path]`: server status, or a listing over the control connection.
    Stat(Option<ListArgs>),
    /// `SYST`
    Syst,
    /// `HELP [topic]`
    Help(Option<String>),
    /// `NOOP`
    Noop,
    /// `FEAT` (RFC 2389)
    Feat,
    /// `OPTS ...` (RFC 2389)
    Opts(Opts),
    /// `SITE ...`
    Site(Site),
    /// `HOST name` (RFC 7151)
    Host(String),
    /// `CLNT client-name`
    Clnt(String),
    /// `AUTH mechanism` (RFC 4217)
    Auth(String),
    /// `PBSZ n` (RFC 4217)
    Pbsz(String),
    /// `PROT level` (RFC 4217)
    Prot(String),
    /// `CCC` (RFC 4217)
    Ccc,
    /// `SMNT path`
    Smnt(String),
}

/// The representation type chosen by `TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferType {
    /// `A` or `A N`: ASCII, line ends converted.
    Ascii,
    /// `I` or `L 8`: bytes as they are.
    Image,
}

/// The argument of `EPSV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EpsvArg {
    /// No argument: the control connection's address family.
    Any,
    /// `EPSV 1` (IPv4) or `EPSV 2` (IPv6).
    Protocol(u16),
    /// `EPSV ALL`: from now on, refuse PORT, PASV and EPRT.
    All,
}

/// Flags and path of `LIST`, `NLST` and `STAT path`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListArgs {
    /// `-a`: include names starting with a dot.
    pub all: bool,
    /// `-l`: long format (meaningful for NLST).
    pub long: bool,
    /// `-R`: recursive (accepted; listings are not recursive).
    pub recursive: bool,
    /// The path, if one was given.
    pub path: Option<String>,
}

/// The options `OPTS` can set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Opts {
    /// `OPTS UTF8 ON` / `OFF`.
    Utf8(bool),
    /// `OPTS MLST fact;fact;`: the facts MLST/MLSD print (lower-cased names).
    Mlst(alloc::vec::Vec<String>),
    /// `OPTS HASH [name]`: show or choose the algorithm of `HASH`.
    Hash(Option<String>),
    /// Any other option, by name (upper-cased).
    Other(String),
}

/// The `SITE` subcommands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Site {
    /// `SITE HELP`
    Help,
    /// `SITE CHMOD mode path` (octal mode)
    Chmod {
        /// Permission bits, at most `0o7777`.
        mode: u32,
        /// The file to change.
        path: String,
    },
    /// `SITE UMASK [mask]` (octal)
    Umask(Option<u32>),
    /// `SITE IDLE [seconds]`
    Idle(Option<u64>),
    /// Any other subcommand, by name (upper-cased).
    Other(String),
}

impl Command {
    /// The verb as the client should see it in replies (upper case).
    pub fn verb(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Acct(_) => "ACCT",
            Command::Rein => "REIN",
            Command::Quit => "QUIT",
            Command::Cwd(_) => "CWD",
            Command::Cdup => "CDUP",
            Command::Pwd => "PWD",
            Command::Mkd(_) => "MKD",
            Command::Rmd(_) => "RMD",
            Command::Dele(_) => "DELE",
            Command::Rnfr(_) => "RNFR",
            Command::Rnto(_) => "RNTO",
            Command::Size(_) => "SIZE",
            Command::Mdtm(_) => "MDTM",
            Command::Mfmt { .. } => "MFMT",
            Command::Type(_) => "TYPE",
            Command::Mode(_) => "MODE",
            Command::Stru(_) => "STRU",
            Command::Port(_) => "PORT",
            Command::Pasv => "PASV",
            Command::Eprt(_) => "EPRT",
            Command::Epsv(_) => "EPSV",
            Command::Retr(_) => "RETR",
            Command::Stor(_) => "STOR",
            Command::Stou(_) => "STOU",
            Command::Appe(_) => "APPE",
            Command::Allo(_) => "ALLO",
            Command::Avbl(_) => "AVBL",
            Command::Hash(_) => "HASH",
            Command::Rang(..) => "RANG",
            Command::XHash { algorithm, .. } => match algorithm {
                crate::HashAlgorithm::Crc32 => "XCRC",
                crate::HashAlgorithm::Md5 => "XMD5",
                crate::HashAlgorithm::Sha1 => "XSHA1",
                crate::HashAlgorithm::Sha256 => "XSHA256",
                crate::HashAlgorithm::Sha512 => "XSHA512",
            },
            Command::Rest(_) => "REST",
            Command::Abor => "ABOR",
            Command::List(_) => "LIST",
            Command::Nlst(_) => "NLST",
            Command::Mlst(_) => "MLST",
            Command::Mlsd(_) => "MLSD",
            Command::Stat(_) => "STAT",
            Command::Syst => "SYST",
            Command::Help(_) => "HELP",
            Command::Noop => "NOOP",
            Command::Feat => "FEAT",
            Command::Opts(_) => "OPTS",
            Command::Site(_) => "SITE",
            Command::Host(_) => "HOST",
            Command::Clnt(_) => "CLNT",
            Command::Auth(_) => "AUTH",
            Command::Pbsz(_) => "PBSZ",
            Command::Prot(_) => "PROT",
            Command::Ccc => "CCC",
            Command::Smnt(_) => "SMNT",
        }
    }
}
