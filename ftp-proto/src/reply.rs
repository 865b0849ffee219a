//! Replies and their wire form (RFC 959 section 4.2).
//!
//! A [`Reply`] is a code and one or more lines of text. The encoder never
//! lets text break the framing: CR, LF and NUL inside a line become `?`, and
//! the inner lines of a multi-line reply are indented with a space so none
//! of them can look like the final `xyz ` line.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

/// One reply: a three-digit code and its text lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply<'a> {
    /// The reply code, 100 to 599.
    pub code: u16,
    /// The text: one line, or the first line of a multi-line reply.
    pub text: Cow<'a, str>,
    /// Inner lines of a multi-line reply (written with a leading space).
    pub lines: Vec<String>,
    /// The text of the last line of a multi-line reply.
    pub last: Option<Cow<'a, str>>,
}

impl<'a> Reply<'a> {
    /// A single-line reply.
    pub fn new(code: u16, text: impl Into<Cow<'a, str>>) -> Self {
        Reply {
            code,
            text: text.into(),
            lines: Vec::new(),
            last: None,
        }
    }

    /// A multi-line reply: `code-first`, the inner `lines`, then `code last`.
    pub fn multi(
        code: u16,
        first: impl Into<Cow<'a, str>>,
        lines: Vec<String>,
        last: impl Into<Cow<'a, str>>,
    ) -> Self {
        Reply {
            code,
            text: first.into(),
            lines,
            last: Some(last.into()),
        }
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match &self.last {
            None => write_line(out, self.code, b' ', &self.text),
            Some(last) => {
                write_line(out, self.code, b'-', &self.text);
                for line in &self.lines {
                    out.push(b' ');
                    push_clean(out, line.strip_prefix(' ').unwrap_or(line));
                    out.extend_from_slice(b"\r\n");
                }
                write_line(out, self.code, b' ', last);
            }
        }
    }
}

/// Appends a single reply line `code<sep>text\r\n` to `out`.
pub fn write_line(out: &mut Vec<u8>, code: u16, sep: u8, text: &str) {
    let code = code.clamp(100, 599);
    out.extend_from_slice(&[
        b'0' + (code / 100) as u8,
        b'0' + (code / 10 % 10) as u8,
        b'0' + (code % 10) as u8,
        sep,
    ]);
    push_clean(out, text);
    out.extend_from_slice(b"\r\n");
}

/// Appends `text` with CR, LF and NUL replaced by `?`, and escaped bytes
/// of names ([`crate::name`]) as the bytes they stand for.
fn push_clean(out: &mut Vec<u8>, text: &str) {
    if crate::name::has_escapes(text) {
        let start = out.len();
        crate::name::encode_into(text, out);
        for b in &mut out[start..] {
            if matches!(*b, b'\r' | b'\n' | 0) {
                *b = b'?';
            }
        }
        return;
    }
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0)) {
        out.extend_from_slice(bytes);
        return;
    }
    out.extend(bytes.iter().map(|&b| {
        if matches!(b, b'\r' | b'\n' | 0) {
            b'?'
        } else {
            b
        }
    }));
}

/// `path` in the quoted form of a `257` reply: wrapped in `"` with every
/// embedded `"` doubled (RFC 959 appendix II).
pub fn quote_path(path: &str) -> String {
    let mut s = String::with_capacity(path.len() + 2);
    s.push('"');
    for c in path.chars() {
        if c == '"' {
            s.push('"');
        }
        s.push(c);
    }
    s.push('"');
    s
}

/// Whether `bytes` is a sequence of well-formed replies: every line ends in
/// CRLF; single lines are `ddd text`; a `ddd-` line opens a multi-line
/// reply that ends at the next line starting with the same `ddd `. Used by
/// tests and fuzz targets.
pub fn is_well_formed(bytes: &[u8]) -> bool {
    let mut open: Option<&[u8]> = None;
    let mut rest = bytes;
    while !rest.is_empty() {
        let Some(end) = rest.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line = &rest[..end];
        rest = &rest[end + 2..];
        if line.contains(&b'\r') || line.contains(&b'\n') {
            return false;
        }
        let coded = line.len() >= 4 && line[..3].iter().all(u8::is_ascii_digit);
        match open {
            None => {
                if !coded || !(b'1'..=b'5').contains(&line[0]) {
                    return false;
                }
                match line[3] {
                    b' ' => {}
                    b'-' => open = Some(&line[..3]),
                    _ => return false,
                }
            }
            Some(code) => {
                if coded && &line[..3] == code && line[3] == b' ' {
                    open = None;
                }
            }
        }
    }
    open.is_none()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn single_line() {
        let mut out = Vec::new();
        Reply::new(200, "NOOP ok.").encode(&mut out);
        assert_eq!(out, b"200 NOOP ok.\r\n");
    }

    #[test]
    fn multi_line_is_indented() {
        let mut out = Vec::new();
        Reply::multi(
            211,
            "Features:",
            vec!["EPSV".into(), "211 fake".into()],
            "End",
        )
        .encode(&mut out);
        assert_eq!(out, b"211-Features:\r\n EPSV\r\n 211 fake\r\n211 End\r\n");
        assert!(is_well_formed(&out));
    }

    #[test]
    fn text_cannot_inject_lines() {
        let mut out = Vec::new();
        Reply::new(550, "a\r\n230 evil").encode(&mut out);
        assert_eq!(out, b"550 a??230 evil\r\n");
        assert!(is_well_formed(&out));
    }

    #[test]
    fn quotes_are_doubled() {
        assert_eq!(quote_path("/a\"b"), "\"/a\"\"b\"");
    }

    #[test]
    fn well_formedness() {
        assert!(is_well_formed(b"220 hi\r\n"));
        assert!(!is_well_formed(b"220 hi\n"));
        assert!(!is_well_formed(b"2x0 hi\r\n"));
        assert!(!is_well_formed(b"211-open\r\n x\r\n"));
        assert!(is_well_formed(b"211-open\r\n x\r\n211 done\r\n"));
    }
}
