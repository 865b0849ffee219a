//! The TYPE A converter, streaming: LF to CRLF on the way out, CRLF to LF
//! on the way in. Runtimes call it on the data path.

use alloc::vec::Vec;

/// Converts file bytes to network ASCII (bare LF becomes CRLF).
#[derive(Debug, Default)]
pub struct AsciiEncoder {
    last_was_cr: bool,
}

impl AsciiEncoder {
    /// Appends the converted form of `input` to `out`.
    pub fn encode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let _ = (input, out, self.last_was_cr);
        todo!()
    }
}

/// Converts network ASCII to file bytes (CRLF becomes LF).
#[derive(Debug, Default)]
pub struct AsciiDecoder {
    pending_cr: bool,
}

impl AsciiDecoder {
    /// Appends the converted form of `input` to `out`; a CR at the end is
    /// held until the next call shows whether LF follows.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let _ = (input, out, self.pending_cr);
        todo!()
    }

    /// Flushes a held CR at the end of the stream.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }
}
