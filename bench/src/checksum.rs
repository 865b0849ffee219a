//! The bytes of the big test file and a fast checksum to verify them.
//!
//! The big file is a sequence of [`BLOCK`]-sized blocks of pseudo-random
//! bytes; block `i` is the base block with its first eight bytes XORed
//! with `i`, so a transfer that repeats, drops or reorders blocks fails the
//! check. The checksum runs four independent multiply-xor lanes over
//! 64-bit words (several GB/s, far faster than loopback), is
//! order-sensitive and does not depend on how the stream is chunked.

/// Size of one block of the big file.
pub const BLOCK: usize = 8 << 20;

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// Pseudo-random bytes (xorshift64*), the same for every run.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The blocks of the big file, generated from one base block.
pub struct Pattern {
    base: Vec<u8>,
}

impl Pattern {
    pub fn new() -> Pattern {
        Pattern {
            base: random_bytes(BLOCK, 0x5eed),
        }
    }

    /// Writes block `index` into `buf` (which holds a block from an earlier
    /// call or the base block), changing only its first eight bytes.
    pub fn block_into(&self, index: u64, buf: &mut Vec<u8>) {
        if buf.len() != BLOCK {
            buf.clear();
            buf.extend_from_slice(&self.base);
        }
        let head = u64::from_le_bytes(self.base[..8].try_into().unwrap()) ^ index;
        buf[..8].copy_from_slice(&head.to_le_bytes());
    }

    /// Size and checksum of a big file of `len` bytes (a multiple of
    /// [`BLOCK`]).
    pub fn expected(&self, len: u64) -> (u64, u64) {
        let mut sum = Checksum::new();
        let mut buf = Vec::new();
        for i in 0..len / BLOCK as u64 {
            self.block_into(i, &mut buf);
            sum.update(&buf);
        }
        (sum.len(), sum.finish())
    }
}

/// Streaming checksum; see the module documentation.
#[derive(Clone, Debug)]
pub struct Checksum {
    lanes: [u64; 4],
    len: u64,
    pending: [u8; 32],
    npending: usize,
}

impl Default for Checksum {
    fn default() -> Self {
        Self::new()
    }
}

impl Checksum {
    pub fn new() -> Checksum {
        Checksum {
            lanes: [1, 2, 3, 4],
            len: 0,
            pending: [0; 32],
            npending: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    fn mix(&mut self, group: &[u8]) {
        for (lane, word) in self.lanes.iter_mut().zip(group.chunks_exact(8)) {
            let w = u64::from_le_bytes(word.try_into().unwrap());
            *lane = (*lane ^ w).wrapping_mul(K).rotate_left(29);
        }
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if self.npending > 0 {
            let take = (32 - self.npending).min(data.len());
            self.pending[self.npending..self.npending + take].copy_from_slice(&data[..take]);
            self.npending += take;
            data = &data[take..];
            if self.npending < 32 {
                return;
            }
            let group = self.pending;
            self.mix(&group);
            self.npending = 0;
        }
        let mut groups = data.chunks_exact(32);
        for group in &mut groups {
            self.mix(group);
        }
        let rest = groups.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.npending = rest.len();
    }

    pub fn finish(&self) -> u64 {
        let mut tail = [0u8; 32];
        tail[..self.npending].copy_from_slice(&self.pending[..self.npending]);
        let mut copy = self.clone();
        copy.mix(&tail);
        let mut h = copy.len.wrapping_mul(K);
        for lane in copy.lanes {
            h = (h ^ lane).wrapping_mul(K).rotate_left(31);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunking_does_not_matter_and_order_does() {
        let data = random_bytes(10_000, 7);
        let mut whole = Checksum::new();
        whole.update(&data);
        for step in [1, 3, 31, 32, 33, 1000] {
            let mut parts = Checksum::new();
            for chunk in data.chunks(step) {
                parts.update(chunk);
            }
            assert_eq!(parts.finish(), whole.finish(), "step {step}");
        }
        let mut swapped = data.clone();
        swapped.swap(100, 5000);
        let mut other = Checksum::new();
        other.update(&swapped);
        assert_ne!(other.finish(), whole.finish());
    }
}
