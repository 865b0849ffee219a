//! Names that are not UTF-8, carried without loss.
//!
//! FTP names are bytes; most are UTF-8, but a server that replaces vsftpd
//! must serve the ISO-8859-1 (or Shift-JIS, ...) names older clients made.
//! The engine keeps paths as `String`s, so a byte that is not part of
//! valid UTF-8 is carried as one character of a private range,
//! U+10FF80 to U+10FFFF for bytes 0x80 to 0xFF, and turned back into that
//! byte wherever a name leaves the engine: in replies and listings (here)
//! and at the storage (the host encodes a path before each system call).
//! The few real characters of that range are escaped too (each of their
//! four bytes), so [`encode`] always gives back the bytes [`decode`] was
//! given.

use alloc::string::String;
use alloc::vec::Vec;

/// The first character of the escape range: byte `b` (0x80 to 0xFF) is
/// `ESCAPE_BASE + b`.
const ESCAPE_BASE: u32 = 0x10_FF00;

/// The character that stands for byte `b` (at least 0x80).
fn escape(b: u8) -> char {
    char::from_u32(ESCAPE_BASE + u32::from(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
}

/// The byte a character of the escape range stands for.
pub fn escaped_byte(c: char) -> Option<u8> {
    let v = u32::from(c);
    (ESCAPE_BASE + 0x80..=ESCAPE_BASE + 0xFF)
        .contains(&v)
        .then(|| (v - ESCAPE_BASE) as u8)
}

/// The bytes of a name or path as the engine's text: UTF-8 as it is,
/// every other byte escaped.
pub fn decode(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match core::str::from_utf8(bytes) {
            Ok(valid) => {
                push_valid(&mut out, valid);
                return out;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // Checked valid just above.
                push_valid(&mut out, core::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len()).max(1);
                for &b in &rest[..bad] {
                    out.push(escape(b));
                }
                bytes = &rest[bad..];
            }
        }
    }
}

/// Appends valid text, escaping the escape range's own characters.
fn push_valid(out: &mut String, valid: &str) {
    for c in valid.chars() {
        if escaped_byte(c).is_some() {
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                out.push(escape(b));
            }
        } else {
            out.push(c);
        }
    }
}

/// Whether `text` holds escaped bytes (and so is not the name's bytes as
/// they are).
pub fn has_escapes(text: &str) -> bool {
    text.chars().any(|c| escaped_byte(c).is_some())
}

/// Appends the bytes `text` stands for.
pub fn encode_into(text: &str, out: &mut Vec<u8>) {
    if !has_escapes(text) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    let mut buf = [0u8; 4];
    for c in text.chars() {
        match escaped_byte(c) {
            Some(b) => out.push(b),
            None => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
}

/// The bytes `text` stands for.
pub fn encode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    encode_into(text, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin1_names_survive_the_round_trip() {
        let latin1 = b"caf\xe9 \xfcber.txt";
        let text = decode(latin1);
        assert!(has_escapes(&text));
        assert_eq!(text.chars().count(), latin1.len());
        assert_eq!(encode(&text), latin1);
        let utf8 = "café über.txt";
        assert_eq!(decode(utf8.as_bytes()), utf8);
        assert_eq!(encode(utf8), utf8.as_bytes());
    }

    #[test]
    fn any_bytes_round_trip() {
        let samples: [&[u8]; 6] = [
            b"\xff\xfe\x80",
            b"ok\xc3",
            b"\xc3\x28",
            b"\xf4\x8f\xbf\xbf",     // U+10FFFF itself, escaped byte by byte
            b"\xf4\x8f\xbe\x80 and", // U+10FF80
            b"\xed\xa0\x80",         // a surrogate: invalid UTF-8
        ];
        for s in samples {
            assert_eq!(encode(&decode(s)), s, "{s:?}");
        }
        for i in 0..=255u8 {
            for j in 0..=255u8 {
                let s = [b'a', i, j];
                assert_eq!(encode(&decode(&s)), s);
            }
        }
    }
}
