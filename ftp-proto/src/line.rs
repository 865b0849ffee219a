//! Control-connection framing: bytes in, command lines out.
//!
//! Handles CRLF and bare LF line ends, Telnet IAC sequences (IAC IP and
//! IAC DM are dropped, doubled IAC is a literal 0xFF, option negotiation is
//! dropped) and a bound on line length.
//!
//! # Design
//!
//! [`LineBuffer::push`] does all the work in one pass over the received
//! bytes: it strips Telnet sequences, finds line ends and stores only the
//! *content* of each line (no CR / LF) in one growable buffer, recording the
//! length of every completed line in a small queue. [`LineBuffer::next_line`]
//! then only pops a length and hands out a slice, so pipelined lines are never
//! rescanned. Runs of ordinary bytes are located with a word-at-a-time scan
//! for LF and IAC and copied with one `extend_from_slice` each.
//!
//! A line whose content grows beyond `max_line` bytes is cut off at once: its
//! bytes are dropped from the buffer, [`Line::TooLong`] is queued (in order,
//! after the lines completed before it), and every further byte up to and
//! including its line end is dropped as it arrives.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

/// The Telnet "interpret as command" byte.
const IAC: u8 = 0xFF;
/// Telnet SE: end of subnegotiation.
const SE: u8 = 240;
/// Telnet SB: start of subnegotiation.
const SB: u8 = 250;
/// Telnet WILL (first of WILL, WONT, DO, DONT, which take an option byte).
const WILL: u8 = 251;
/// Telnet DONT (last of the option negotiation commands).
const DONT: u8 = 254;

/// Queue marker for a too-long line (a real length never reaches it,
/// because `max_line` is capped below it).
const TOO_LONG: u32 = u32::MAX;

/// Capacity kept after the buffer empties; more is released.
const KEEP_CAPACITY: usize = 16 * 1024;

/// One framed line or a framing problem.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// A complete line without its line end.
    Complete(&'a [u8]),
    /// A line exceeded the limit; its bytes were discarded up to and
    /// including the next line end.
    TooLong,
}

/// Where the Telnet decoder is between two bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Telnet {
    /// Ordinary data.
    Data,
    /// After IAC.
    Iac,
    /// After IAC WILL / WONT / DO / DONT: the option byte follows.
    Option,
    /// Inside IAC SB ... (dropped).
    Sub,
    /// Inside a subnegotiation, after IAC.
    SubIac,
}

/// Buffers control bytes and yields lines.
///
/// Memory use is bounded: the line being received is at most `max_line + 1`
/// bytes (the `+ 1` is a CR that may turn out to precede LF), plus the
/// contents of completed lines not yet taken with [`LineBuffer::next_line`]
/// (and four bytes of bookkeeping per such line).
#[derive(Debug)]
pub struct LineBuffer {
    /// Line contents: `buf[start..partial]` are complete lines not yet
    /// taken, `buf[partial..]` is the line being received.
    buf: Vec<u8>,
    /// Offset of the first complete line not yet taken.
    start: usize,
    /// Offset where the line being received begins.
    partial: usize,
    /// Lengths of the complete lines not yet taken, or [`TOO_LONG`].
    lines: VecDeque<u32>,
    /// The line length limit.
    max_line: usize,
    /// Telnet decoder state.
    telnet: Telnet,
    /// Dropping the rest of a too-long line until its line end.
    discarding: bool,
    /// Bytes of Telnet subnegotiation seen in the current line (they count
    /// against the limit so an unterminated `IAC SB` cannot stall framing).
    sub_len: usize,
}

impl LineBuffer {
    /// A buffer for lines of at most `max_line` bytes (without the line
    /// end). Values above `u32::MAX - 1` are capped.
    pub fn new(max_line: usize) -> Self {
        LineBuffer {
            buf: Vec::new(),
            start: 0,
            partial: 0,
            lines: VecDeque::new(),
            max_line: max_line.min(TOO_LONG as usize - 1),
            telnet: Telnet::Data,
            discarding: false,
            sub_len: 0,
        }
    }

    /// The line length limit.
    pub fn max_line(&self) -> usize {
        self.max_line
    }

    /// Appends bytes received from the client.
    ///
    /// Telnet sequences may be split across calls; so may CR LF.
    pub fn push(&mut self, bytes: &[u8]) {
        self.compact();
        let mut rest = bytes;
        while let Some((&first, tail)) = rest.split_first() {
            match self.telnet {
                Telnet::Data => {
                    let n = find_lf_or_iac(rest).unwrap_or(rest.len());
                    let (run, after) = rest.split_at(n);
                    self.append(run);
                    match after.split_first() {
                        Some((&b'\n', tail)) => {
                            self.end_line();
                            rest = tail;
                        }
                        Some((_, tail)) => {
                            // IAC
                            self.telnet = Telnet::Iac;
                            rest = tail;
                        }
                        None => rest = after,
                    }
                }
                Telnet::Iac => {
                    match first {
                        IAC => {
                            self.telnet = Telnet::Data;
                            self.append(&[IAC]);
                        }
                        SB => {
                            self.telnet = Telnet::Sub;
                            self.add_sub(2);
                        }
                        WILL..=DONT => self.telnet = Telnet::Option,
                        // SE outside a subnegotiation, NOP, DM, BRK, IP, AO,
                        // AYT, EC, EL, GA: dropped.
                        SE..=249 => self.telnet = Telnet::Data,
                        _ => {
                            // Not a Telnet command: drop the IAC and treat the
                            // byte as data (it is processed by the Data arm).
                            self.telnet = Telnet::Data;
                            continue;
                        }
                    }
                    rest = tail;
                }
                Telnet::Option => {
                    self.telnet = Telnet::Data;
                    rest = tail;
                }
                Telnet::Sub => {
                    let n = rest.iter().position(|&b| b == IAC);
                    let used = n.map_or(rest.len(), |n| n + 1);
                    let room = self.sub_room();
                    if used > room {
                        // Over the limit at byte `room`: give up on the
                        // subnegotiation and scan the bytes from there on as
                        // (discarded) data to find the line end.
                        self.sub_overflow();
                        rest = rest.get(room..).unwrap_or(&[]);
                        continue;
                    }
                    self.sub_len += used;
                    if n.is_some() {
                        self.telnet = Telnet::SubIac;
                    }
                    rest = rest.get(used..).unwrap_or(&[]);
                }
                Telnet::SubIac => {
                    if first == SE {
                        self.telnet = Telnet::Data;
                    } else {
                        // IAC IAC (an escaped 0xFF) or a stray command: the
                        // subnegotiation goes on.
                        self.telnet = Telnet::Sub;
                        self.add_sub(1);
                    }
                    rest = tail;
                }
            }
        }
    }

    /// The next complete line (or too-long marker), if any.
    pub fn next_line(&mut self) -> Option<Line<'_>> {
        let Some(len) = self.lines.pop_front() else {
            self.compact();
            return None;
        };
        if len == TOO_LONG {
            return Some(Line::TooLong);
        }
        let from = self.start;
        let to = from + len as usize;
        debug_assert!(to <= self.partial);
        self.start = to;
        Some(Line::Complete(self.buf.get(from..to).unwrap_or(&[])))
    }

    /// Bytes held: the contents of complete lines not yet taken plus the
    /// part of the current line received so far (at most `max_line + 1`).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether a complete line (or too-long marker) is waiting.
    pub fn has_line(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Forgets everything buffered and resets the Telnet decoder, for
    /// example when the connection switches to TLS after `AUTH TLS` (bytes
    /// pipelined behind that command must not be executed).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
        self.partial = 0;
        self.lines.clear();
        self.telnet = Telnet::Data;
        self.discarding = false;
        self.sub_len = 0;
        self.release_capacity();
    }

    /// Drops taken lines from the front of the buffer when that is cheap
    /// relative to the work already done (amortised O(1) per byte).
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            self.partial = 0;
            self.release_capacity();
        } else if self.lines.is_empty() || self.start >= self.buf.len() - self.start {
            self.buf.drain(..self.start);
            self.partial -= self.start;
            self.start = 0;
        }
    }

    /// Gives back memory after a burst of pipelined lines.
    fn release_capacity(&mut self) {
        let keep = KEEP_CAPACITY.max(self.max_line.saturating_add(1));
        if self.buf.capacity() > keep {
            self.buf.shrink_to(keep);
        }
        if self.lines.capacity() > 1024 && self.lines.is_empty() {
            self.lines.shrink_to(64);
        }
    }

    /// Adds decoded bytes to the current line, enforcing the limit.
    fn append(&mut self, run: &[u8]) {
        if self.discarding || run.is_empty() {
            return;
        }
        let len = (self.buf.len() - self.partial)
            .saturating_add(run.len())
            .saturating_add(self.sub_len);
        // One byte over is allowed while it is a CR that may precede LF.
        let fits = len <= self.max_line || (len == self.max_line + 1 && run.last() == Some(&b'\r'));
        if fits {
            self.buf.extend_from_slice(run);
        } else {
            self.overflow();
        }
    }

    /// How many more subnegotiation bytes the current line has room for.
    fn sub_room(&self) -> usize {
        let len = self.buf.len() - self.partial;
        self.max_line
            .saturating_sub(len.saturating_add(self.sub_len))
    }

    /// Counts `n` subnegotiation bytes against the line limit; `false` (and
    /// back to plain data, discarding the line) when over it.
    fn add_sub(&mut self, n: usize) -> bool {
        if n > self.sub_room() {
            self.sub_overflow();
            return false;
        }
        self.sub_len += n;
        true
    }

    /// A subnegotiation ran over the limit: resynchronise at the next LF.
    fn sub_overflow(&mut self) {
        self.telnet = Telnet::Data;
        self.sub_len = 0;
        if !self.discarding {
            self.overflow();
        }
    }

    /// The current line is too long: drop it and report it once.
    fn overflow(&mut self) {
        self.buf.truncate(self.partial);
        self.discarding = true;
        self.lines.push_back(TOO_LONG);
    }

    /// LF seen in data: completes the current line.
    fn end_line(&mut self) {
        self.sub_len = 0;
        if self.discarding {
            self.discarding = false;
            return;
        }
        if self.buf.len() > self.partial && self.buf.last() == Some(&b'\r') {
            self.buf.pop();
        }
        let len = self.buf.len() - self.partial;
        // `append` keeps len <= max_line once a trailing CR is removed.
        self.lines.push_back(len as u32);
        self.partial = self.buf.len();
    }
}

/// Index of the first LF or IAC byte in `bytes`.
///
/// Scans eight bytes at a time (SWAR) and finishes byte by byte.
#[inline]
fn find_lf_or_iac(bytes: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const LF: u64 = LO * b'\n' as u64;
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let lf = x ^ LF;
        // A byte is 0xFF exactly when its complement is zero.
        let iac = !x;
        let hit = (lf.wrapping_sub(LO) & !lf) | (iac.wrapping_sub(LO) & !iac);
        if hit & HI != 0 {
            return chunk
                .iter()
                .position(|&b| b == b'\n' || b == IAC)
                .map(|i| offset + i);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'\n' || b == IAC)
        .map(|i| offset + i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    /// Owned form of [`Line`] for comparisons.
    #[derive(Debug, PartialEq, Eq, Clone)]
    enum L {
        C(Vec<u8>),
        Long,
    }

    fn c(s: &[u8]) -> L {
        L::C(s.to_vec())
    }

    fn drain(lb: &mut LineBuffer, out: &mut Vec<L>) {
        while let Some(line) = lb.next_line() {
            out.push(match line {
                Line::Complete(b) => L::C(b.to_vec()),
                Line::TooLong => L::Long,
            });
        }
    }

    fn frame(max: usize, input: &[u8]) -> Vec<L> {
        let mut lb = LineBuffer::new(max);
        lb.push(input);
        let mut out = Vec::new();
        drain(&mut lb, &mut out);
        out
    }

    /// Frames `input` fed one byte at a time, draining after each byte.
    fn frame_bytewise(max: usize, input: &[u8]) -> Vec<L> {
        let mut lb = LineBuffer::new(max);
        let mut out = Vec::new();
        for b in input {
            lb.push(core::slice::from_ref(b));
            drain(&mut lb, &mut out);
        }
        out
    }

    #[test]
    fn crlf_and_lf() {
        assert_eq!(
            frame(100, b"USER a\r\nPASS b\nNOOP\r\n"),
            vec![c(b"USER a"), c(b"PASS b"), c(b"NOOP")]
        );
        assert_eq!(frame(100, b"\r\n\n"), vec![c(b""), c(b"")]);
    }

    #[test]
    fn partial_line_waits() {
        let mut lb = LineBuffer::new(100);
        lb.push(b"NO");
        assert_eq!(lb.next_line(), None);
        lb.push(b"OP\r");
        assert_eq!(lb.next_line(), None);
        assert_eq!(lb.buffered(), 5);
        lb.push(b"\n");
        assert!(lb.has_line());
        assert_eq!(lb.next_line(), Some(Line::Complete(b"NOOP")));
        assert_eq!(lb.next_line(), None);
        assert_eq!(lb.buffered(), 0);
    }

    #[test]
    fn lone_cr_stays() {
        assert_eq!(frame(100, b"a\rb\r\n"), vec![c(b"a\rb")]);
        assert_eq!(frame(100, b"a\r\r\n"), vec![c(b"a\r")]);
        assert_eq!(frame(100, b"\r\r\n"), vec![c(b"\r")]);
    }

    #[test]
    fn telnet_sequences() {
        // Doubled IAC is a literal 0xFF.
        assert_eq!(frame(100, b"RETR a\xff\xffb\r\n"), vec![c(b"RETR a\xffb")]);
        // Interrupt, data mark, and friends vanish.
        assert_eq!(frame(100, b"\xff\xf4\xff\xf2ABOR\r\n"), vec![c(b"ABOR")]);
        for cmd in 240u8..=249 {
            assert_eq!(frame(100, &[b'N', IAC, cmd, b'O', b'\n']), vec![c(b"NO")]);
        }
        // Option negotiation is three bytes, even when the option is LF.
        for cmd in WILL..=DONT {
            assert_eq!(
                frame(100, &[b'a', IAC, cmd, b'\n', b'b', b'\n']),
                vec![c(b"ab")]
            );
        }
        // Subnegotiation, with an escaped IAC and an LF inside.
        assert_eq!(
            frame(100, b"a\xff\xfa\x18\x00x\n\xff\xffy\xff\xf0b\r\n"),
            vec![c(b"ab")]
        );
        // IAC before a non-command byte: IAC dropped, byte kept.
        assert_eq!(frame(100, b"a\xffb\n"), vec![c(b"ab")]);
        assert_eq!(frame(100, b"a\xff\nb\n"), vec![c(b"a"), c(b"b")]);
    }

    #[test]
    fn abor_with_urgent_sequence_split() {
        let input = b"\xff\xf4\xff\xf2ABOR\r\n";
        for cut in 0..=input.len() {
            let mut lb = LineBuffer::new(100);
            lb.push(&input[..cut]);
            lb.push(&input[cut..]);
            let mut out = Vec::new();
            drain(&mut lb, &mut out);
            assert_eq!(out, vec![c(b"ABOR")], "cut at {cut}");
        }
    }

    const MULTI: &[u8] = b"USER anonymous\r\nPASS x\xff\xffy\r\n\xff\xfb\x01SYST\n\
        \xff\xfa\x18\x01\xff\xf0TYPE I\r\n\r\n\xff\xf4\xff\xf2ABOR\r\nLIST a\rb\r\n\
        XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\nQUIT\r\n";

    #[test]
    fn split_anywhere_gives_same_lines() {
        let whole = frame(32, MULTI);
        assert_eq!(
            whole,
            vec![
                c(b"USER anonymous"),
                c(b"PASS x\xffy"),
                c(b"SYST"),
                c(b"TYPE I"),
                c(b""),
                c(b"ABOR"),
                c(b"LIST a\rb"),
                L::Long,
                c(b"QUIT"),
            ]
        );
        for cut in 0..=MULTI.len() {
            let mut lb = LineBuffer::new(32);
            lb.push(&MULTI[..cut]);
            let mut out = Vec::new();
            drain(&mut lb, &mut out);
            lb.push(&MULTI[cut..]);
            drain(&mut lb, &mut out);
            assert_eq!(out, whole, "cut at {cut}");
            // Two cuts, without draining in between.
            for cut2 in cut..=MULTI.len() {
                let mut lb = LineBuffer::new(32);
                lb.push(&MULTI[..cut]);
                lb.push(&MULTI[cut..cut2]);
                lb.push(&MULTI[cut2..]);
                let mut out = Vec::new();
                drain(&mut lb, &mut out);
                assert_eq!(out, whole, "cuts at {cut}, {cut2}");
            }
        }
        assert_eq!(frame_bytewise(32, MULTI), whole);
    }

    #[test]
    fn too_long_then_normal() {
        let mut input = vec![b'A'; 50];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(frame(10, &input), vec![L::Long, c(b"NOOP")]);
        assert_eq!(frame_bytewise(10, &input), vec![L::Long, c(b"NOOP")]);
        // Ordering with the lines around it.
        assert_eq!(
            frame(4, b"ab\r\nabcdefgh\r\ncd\nxxxxx\nyyyyy"),
            vec![c(b"ab"), L::Long, c(b"cd"), L::Long, L::Long]
        );
    }

    #[test]
    fn limit_is_exact() {
        assert_eq!(frame(4, b"abcd\r\n"), vec![c(b"abcd")]);
        assert_eq!(frame_bytewise(4, b"abcd\r\n"), vec![c(b"abcd")]);
        assert_eq!(frame(4, b"abcd\n"), vec![c(b"abcd")]);
        assert_eq!(frame(4, b"abcde\n"), vec![L::Long]);
        assert_eq!(frame_bytewise(4, b"abc\r\r\n"), vec![c(b"abc\r")]);
        assert_eq!(frame_bytewise(4, b"abcd\r\r\n"), vec![L::Long]);
        assert_eq!(frame(4, b"abcd\r\r\n"), vec![L::Long]);
        assert_eq!(frame(4, b"abcd\rx\n"), vec![L::Long]);
        assert_eq!(frame(0, b"\r\n\nx\n"), vec![c(b""), c(b""), L::Long]);
    }

    #[test]
    fn too_long_reported_before_its_line_end() {
        let mut lb = LineBuffer::new(8);
        lb.push(b"0123456789");
        assert_eq!(lb.next_line(), Some(Line::TooLong));
        assert_eq!(lb.next_line(), None);
        lb.push(b"more junk");
        assert_eq!(lb.next_line(), None);
        lb.push(b"\r\nPWD\r\n");
        assert_eq!(lb.next_line(), Some(Line::Complete(b"PWD")));
        assert_eq!(lb.next_line(), None);
    }

    #[test]
    fn memory_is_bounded() {
        let mut lb = LineBuffer::new(512);
        let chunk = [b'x'; 1000];
        for _ in 0..1000 {
            lb.push(&chunk);
            assert!(lb.buffered() <= 513);
            assert!(lb.buf.capacity() <= 4 * 1024 * 1024);
        }
        assert_eq!(lb.buffered(), 0);
        assert_eq!(lb.next_line(), Some(Line::TooLong));
        assert_eq!(lb.next_line(), None);
        // A line growing slowly is cut at the limit, too.
        let mut lb = LineBuffer::new(512);
        for _ in 0..10_000 {
            lb.push(b"y");
            assert!(lb.buffered() <= 513);
        }
        // An unterminated subnegotiation counts against the limit.
        let mut lb = LineBuffer::new(64);
        lb.push(b"\xff\xfa");
        for _ in 0..100 {
            lb.push(&chunk);
        }
        lb.push(b"\nNOOP\n");
        let mut out = Vec::new();
        drain(&mut lb, &mut out);
        assert_eq!(out, vec![L::Long, c(b"NOOP")]);
        // Taken lines are released as reading goes on.
        let mut lb = LineBuffer::new(64);
        for _ in 0..10_000 {
            lb.push(b"NOOP\r\nPWD\r\nSY");
            while lb.next_line().is_some() {}
            lb.push(b"ST\r\n");
            assert!(lb.buf.len() <= 64);
        }
    }

    #[test]
    fn pipelined_lines() {
        let mut input = Vec::new();
        for i in 0..10_000u32 {
            input.extend_from_slice(b"SIZE file");
            input.extend_from_slice(&i.to_le_bytes().map(|b| b'0' + b % 10));
            input.extend_from_slice(b"\r\n");
        }
        let mut lb = LineBuffer::new(100);
        lb.push(&input);
        let mut n = 0;
        while let Some(line) = lb.next_line() {
            assert!(matches!(line, Line::Complete(l) if l.len() == 13));
            n += 1;
        }
        assert_eq!(n, 10_000);
        assert_eq!(lb.buffered(), 0);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut lb = LineBuffer::new(100);
        lb.push(b"AUTH TLS\r\nUSER evil\r\nPA\xff");
        assert_eq!(lb.next_line(), Some(Line::Complete(b"AUTH TLS")));
        lb.clear();
        assert_eq!(lb.buffered(), 0);
        assert_eq!(lb.next_line(), None);
        lb.push(b"NOOP\r\n");
        assert_eq!(lb.next_line(), Some(Line::Complete(b"NOOP")));
    }

    #[test]
    fn swar_scan_matches_naive() {
        let mut data = vec![b'a'; 40];
        assert_eq!(find_lf_or_iac(&data), None);
        for i in 0..40 {
            for special in [b'\n', IAC] {
                data[i] = special;
                assert_eq!(find_lf_or_iac(&data), Some(i));
                assert_eq!(find_lf_or_iac(&data[..i]), None);
                data[i] = b'a';
            }
        }
        // Bytes near the special values must not match.
        let near: Vec<u8> = (0..=255u8).filter(|&b| b != b'\n' && b != IAC).collect();
        assert_eq!(find_lf_or_iac(&near), None);
        let mut near2 = near.clone();
        near2.push(b'\n');
        assert_eq!(find_lf_or_iac(&near2), Some(near.len()));
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any split of any input frames the same as the whole input.
            #[test]
            fn splits_do_not_matter(
                input in proptest::collection::vec(
                    prop_oneof![
                        Just(b'\n'), Just(b'\r'), Just(IAC), Just(SB), Just(SE),
                        Just(WILL), Just(244u8), any::<u8>(), Just(b'a')
                    ],
                    0..200,
                ),
                cuts in proptest::collection::vec(0usize..200, 0..6),
                max in 0usize..20,
            ) {
                let whole = frame(max, &input);
                let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
                cuts.sort_unstable();
                let mut lb = LineBuffer::new(max);
                let mut out = Vec::new();
                let mut prev = 0;
                for (i, cut) in cuts.into_iter().chain([input.len()]).enumerate() {
                    lb.push(&input[prev..cut]);
                    prev = cut;
                    if i % 2 == 0 {
                        drain(&mut lb, &mut out);
                    }
                    prop_assert!(lb.buffered() <= lb.lines.len() * (max + 1) + max + 1);
                }
                drain(&mut lb, &mut out);
                prop_assert_eq!(&out, &whole);
                for line in &whole {
                    if let L::C(l) = line {
                        prop_assert!(l.len() <= max);
                    }
                }
            }
        }
    }
}
