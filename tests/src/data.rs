//! Reproducible pseudo-random test data, made and checked as a stream so
//! that large transfers never sit in memory whole.

use std::io::{self, Read};

/// A deterministic byte stream (xorshift64*), the same for the same seed.
#[derive(Clone, Debug)]
pub struct Pattern {
    state: u64,
    /// Bytes of the current word not handed out yet.
    word: [u8; 8],
    used: usize,
}

impl Pattern {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Pattern {
        Pattern {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
            word: [0; 8],
            used: 8,
        }
    }

    fn next_word(&mut self) -> [u8; 8] {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        while i < buf.len() && self.used < 8 {
            buf[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        let mut chunks = buf[i..].chunks_exact_mut(8);
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.next_word());
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            self.word = self.next_word();
            let n = tail.len();
            tail.copy_from_slice(&self.word[..n]);
            self.used = n;
        }
    }
}

/// `len` bytes of the stream for `seed`.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    Pattern::new(seed).fill(&mut v);
    v
}

/// A reader of the first `len` bytes of the stream for `seed`.
#[derive(Debug)]
pub struct PatternReader {
    pattern: Pattern,
    remaining: u64,
}

impl PatternReader {
    /// The first `len` bytes of the stream for `seed`.
    pub fn new(seed: u64, len: u64) -> PatternReader {
        PatternReader {
            pattern: Pattern::new(seed),
            remaining: len,
        }
    }
}

impl Read for PatternReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf
            .len()
            .min(self.remaining.try_into().unwrap_or(usize::MAX));
        self.pattern.fill(&mut buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// Reads `r` to its end and checks that it is exactly the first `len`
/// bytes of the stream for `seed`; the error says where it differs.
pub fn verify_stream(r: &mut impl Read, seed: u64, len: u64) -> Result<(), String> {
    const CHUNK: usize = 1 << 20;
    let mut expected = Pattern::new(seed);
    let mut got = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = match r.read(&mut got) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("read error at offset {offset}: {e}")),
        };
        if offset + n as u64 > len {
            return Err(format!("more than the expected {len} bytes"));
        }
        expected.fill(&mut want[..n]);
        if got[..n] != want[..n] {
            let i = got[..n]
                .iter()
                .zip(&want[..n])
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            return Err(format!("bytes differ at offset {}", offset + i as u64));
        }
        offset += n as u64;
    }
    if offset != len {
        return Err(format!("got {offset} bytes, expected {len}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_is_consistent_across_chunkings() {
        let whole = pattern(7, 1000);
        let mut p = Pattern::new(7);
        let mut pieces = Vec::new();
        for n in [1usize, 3, 8, 13, 0, 500, 475] {
            let mut buf = vec![0; n];
            p.fill(&mut buf);
            pieces.extend_from_slice(&buf);
        }
        assert_eq!(pieces, whole);
        assert_ne!(pattern(8, 1000), whole);
        let mut r = PatternReader::new(7, 1000);
        assert_eq!(verify_stream(&mut r, 7, 1000), Ok(()));
        let mut short = &whole[..999];
        assert!(verify_stream(&mut short, 7, 1000).is_err());
    }
}
