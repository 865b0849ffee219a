//! The TYPE A converter, streaming: LF to CRLF on the way out, CRLF to LF
//! on the way in. Runtimes call it on the data path.
//!
//! Both directions keep one bit of state between calls, so the output does
//! not depend on how the stream is cut into chunks. Bytes between line ends
//! are copied in runs, so the cost is close to a `memcpy`.

use alloc::vec::Vec;

/// Converts file bytes to network ASCII (bare LF becomes CRLF).
///
/// An LF that already follows a CR (also when the CR ended the previous
/// chunk) is left alone, so a file that already uses CRLF line ends is sent
/// unchanged instead of gaining a second CR. Every other byte, including a
/// lone CR, passes through as is.
#[derive(Debug, Default)]
pub struct AsciiEncoder {
    last_was_cr: bool,
}

impl AsciiEncoder {
    /// A fresh encoder, at the start of a stream.
    pub const fn new() -> Self {
        AsciiEncoder { last_was_cr: false }
    }

    /// Appends the converted form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let Some(&last) = input.last() else {
            return;
        };
        out.reserve(input.len() + input.len() / 32);
        // Whether the byte before `rest` was a CR.
        let mut prev_cr = self.last_was_cr;
        let mut rest = input;
        while let Some(i) = find_byte(b'\n', rest) {
            let (run, tail) = rest.split_at(i);
            let cr_before = match run.last() {
                Some(&b) => b == b'\r',
                None => prev_cr,
            };
            out.extend_from_slice(run);
            if cr_before {
                out.push(b'\n');
            } else {
                out.extend_from_slice(b"\r\n");
            }
            prev_cr = false;
            rest = tail.get(1..).unwrap_or_default();
        }
        out.extend_from_slice(rest);
        self.last_was_cr = last == b'\r';
    }
}

/// Converts network ASCII to file bytes (CRLF becomes LF).
///
/// A CR that is not followed by LF is kept. A CR at the end of a chunk is
/// held until the next chunk (or [`AsciiDecoder::finish`]) shows what
/// follows it.
#[derive(Debug, Default)]
pub struct AsciiDecoder {
    pending_cr: bool,
}

impl AsciiDecoder {
    /// A fresh decoder, at the start of a stream.
    pub const fn new() -> Self {
        AsciiDecoder { pending_cr: false }
    }

    /// Whether a CR from the end of the last chunk is being held back.
    pub const fn has_pending_cr(&self) -> bool {
        self.pending_cr
    }

    /// Appends the converted form of `input` to `out`; a CR at the end is
    /// held until the next call shows whether LF follows.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut rest = input;
        if self.pending_cr {
            match rest.first() {
                None => return,
                Some(b'\n') => {
                    out.push(b'\n');
                    rest = rest.get(1..).unwrap_or_default();
                }
                // Keep the CR; the byte after it is scanned below as usual.
                Some(_) => out.push(b'\r'),
            }
            self.pending_cr = false;
        }
        out.reserve(rest.len());
        while let Some(i) = find_byte(b'\r', rest) {
            let (run, tail) = rest.split_at(i);
            out.extend_from_slice(run);
            match tail.get(1) {
                None => {
                    self.pending_cr = true;
                    return;
                }
                Some(b'\n') => {
                    out.push(b'\n');
                    rest = tail.get(2..).unwrap_or_default();
                }
                Some(_) => {
                    out.push(b'\r');
                    rest = tail.get(1..).unwrap_or_default();
                }
            }
        }
        out.extend_from_slice(rest);
    }

    /// Flushes a held CR at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.push(b'\r');
            self.pending_cr = false;
        }
    }
}

/// The index of the first `needle` in `hay`, scanning a word at a time.
fn find_byte(needle: u8, hay: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let pattern = LO.wrapping_mul(u64::from(needle));
    let mut chunks = hay.chunks_exact(8);
    let mut base = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Bytes equal to `needle` become zero; the expression below is
        // non-zero exactly when some byte of `x` is zero.
        let x = u64::from_le_bytes(word) ^ pattern;
        if x.wrapping_sub(LO) & !x & HI != 0 {
            return chunk.iter().position(|&b| b == needle).map(|i| base + i);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == needle)
        .map(|i| base + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use proptest::prelude::*;

    fn encode_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut enc = AsciiEncoder::new();
        let mut out = Vec::new();
        for c in chunks {
            enc.encode(c, &mut out);
        }
        out
    }

    fn decode_all(chunks: &[&[u8]]) -> Vec<u8> {
        let mut dec = AsciiDecoder::new();
        let mut out = Vec::new();
        for c in chunks {
            dec.decode(c, &mut out);
        }
        dec.finish(&mut out);
        out
    }

    /// Byte-at-a-time reference encoder.
    fn encode_ref(input: &[u8]) -> Vec<u8> {
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

    /// Byte-at-a-time reference decoder.
    fn decode_ref(input: &[u8]) -> Vec<u8> {
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

    /// Cuts `data` at the given points (taken modulo its length, sorted).
    fn split<'a>(data: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
        points.sort_unstable();
        let mut parts = Vec::new();
        let mut start = 0;
        for p in points {
            parts.push(&data[start..p]);
            start = p;
        }
        parts.push(&data[start..]);
        parts
    }

    #[test]
    fn encodes_bare_lf() {
        assert_eq!(encode_all(&[b"a\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(encode_all(&[b"\n\n"]), b"\r\n\r\n");
        assert_eq!(encode_all(&[b""]), b"");
        assert_eq!(encode_all(&[b"no newline"]), b"no newline");
    }

    #[test]
    fn encode_keeps_existing_crlf() {
        assert_eq!(encode_all(&[b"a\r\nb\n"]), b"a\r\nb\r\n");
        assert_eq!(encode_all(&[b"a\r", b"\nb"]), b"a\r\nb");
        assert_eq!(encode_all(&[b"a\r", b"", b"\nb"]), b"a\r\nb");
        assert_eq!(encode_all(&[b"\r\r\n"]), b"\r\r\n");
        assert_eq!(encode_all(&[b"lone\rcr"]), b"lone\rcr");
        // A CR before a previous LF does not carry over.
        assert_eq!(encode_all(&[b"\r\n", b"\n"]), b"\r\n\r\n");
    }

    #[test]
    fn decodes_crlf() {
        assert_eq!(decode_all(&[b"a\r\nb\r\n"]), b"a\nb\n");
        assert_eq!(decode_all(&[b"a\rb"]), b"a\rb");
        assert_eq!(decode_all(&[b"a\r\r\nb"]), b"a\r\nb");
        assert_eq!(decode_all(&[b"bare\nlf"]), b"bare\nlf");
    }

    #[test]
    fn decoder_holds_trailing_cr() {
        let mut dec = AsciiDecoder::new();
        let mut out = Vec::new();
        dec.decode(b"abc\r", &mut out);
        assert_eq!(out, b"abc");
        assert!(dec.has_pending_cr());
        dec.decode(b"", &mut out);
        assert_eq!(out, b"abc");
        dec.decode(b"\ndef\r", &mut out);
        assert_eq!(out, b"abc\ndef");
        dec.decode(b"\r", &mut out);
        assert_eq!(out, b"abc\ndef\r");
        dec.finish(&mut out);
        assert_eq!(out, b"abc\ndef\r\r");
        assert!(!dec.has_pending_cr());
        dec.finish(&mut out);
        assert_eq!(out, b"abc\ndef\r\r");
    }

    #[test]
    fn find_byte_edges() {
        assert_eq!(find_byte(b'\n', b""), None);
        assert_eq!(find_byte(b'\n', b"\n"), Some(0));
        let mut long = vec![b'x'; 100];
        assert_eq!(find_byte(b'\n', &long), None);
        for i in 0..100 {
            long[i] = b'\n';
            assert_eq!(find_byte(b'\n', &long), Some(i));
            long[i] = 0x80 | b'\n';
            assert_eq!(find_byte(b'\n', &long), None);
            long[i] = b'x';
        }
    }

    proptest! {
        #[test]
        fn find_byte_matches_position(hay in proptest::collection::vec(any::<u8>(), 0..64), needle in any::<u8>()) {
            prop_assert_eq!(find_byte(needle, &hay), hay.iter().position(|&b| b == needle));
        }

        #[test]
        fn round_trip_without_cr(data in proptest::collection::vec(any::<u8>().prop_filter("no CR", |b| *b != b'\r'), 0..512)) {
            let encoded = encode_all(&[&data]);
            prop_assert_eq!(decode_all(&[&encoded]), data);
        }

        #[test]
        fn round_trip_text(s in "[a-z\n]{0,200}") {
            let encoded = encode_all(&[s.as_bytes()]);
            prop_assert_eq!(decode_all(&[&encoded]), s.as_bytes());
        }

        #[test]
        fn encode_chunking_does_not_matter(
            data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..256),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = encode_all(&[&data]);
            prop_assert_eq!(&whole, &encode_ref(&data));
            prop_assert_eq!(encode_all(&split(&data, &cuts)), whole);
        }

        #[test]
        fn decode_chunking_does_not_matter(
            data in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..256),
            cuts in proptest::collection::vec(any::<usize>(), 0..8),
        ) {
            let whole = decode_all(&[&data]);
            prop_assert_eq!(&whole, &decode_ref(&data));
            prop_assert_eq!(decode_all(&split(&data, &cuts)), whole);
        }
    }
}
