//! The `nom` grammar: one control line (without its line end) to a
//! [`Command`].

use crate::command::Command;

/// Why a line is not a command the session can act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The line is empty (or only spaces).
    Empty,
    /// The verb is not an FTP command (`500`).
    UnknownVerb,
    /// The verb is known but this server does not implement it (`502`).
    NotImplemented(&'static str),
    /// A required argument is missing or malformed (`501`).
    BadArgument(&'static str),
    /// The argument is not UTF-8 (`501`).
    NotUtf8,
}

/// Parses one command line; `line` excludes the CRLF / LF and has Telnet
/// sequences already removed by [`crate::line::LineBuffer`].
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let _ = line;
    todo!()
}
