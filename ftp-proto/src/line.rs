//! Control-connection framing: bytes in, command lines out.
//!
//! Handles CRLF and bare LF line ends, Telnet IAC sequences (IAC IP and
//! IAC DM are dropped, doubled IAC is a literal 0xFF, option negotiation is
//! dropped) and a bound on line length.

use alloc::vec::Vec;

/// One framed line or a framing problem.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its line end.
    Complete(&'a [u8]),
    /// A line exceeded the limit; its bytes were discarded up to and
    /// including the next line end.
    TooLong,
}

/// Buffers control bytes and yields lines.
#[derive(Debug)]
pub struct LineBuffer {
    buf: Vec<u8>,
    max_line: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes.
    pub fn new(max_line: usize) -> Self {
        LineBuffer { buf: Vec::new(), max_line }
    }

    /// Appends bytes received from the client.
    pub fn push(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!()
    }

    /// The next complete line, if any.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        todo!()
    }

    /// Bytes held (bounded: at most about `max_line` plus one read's worth
    /// per pending line).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}
