//! Bandwidth limits of transfers (`--download-rate`, `--upload-rate`, and
//! the users file's `download_rate`, `upload_rate`): a token bucket per
//! transfer, which the runtimes ask before each step of a throttled
//! transfer's data path.
//!
//! The bucket fills continuously at the rate and holds at most a tenth of
//! a second's worth ([`RateLimit::burst`]; at least [`MIN_BURST`] bytes or
//! one second's worth, whichever is less), so a transfer that waited does
//! not then burst. It hands out bytes in portions of at least a quarter of
//! that ([`RateLimit::allowance`]), so a throttled transfer wakes up some
//! 40 times a second at most and never sends tiny segments; what it moved
//! beyond its allowance (a chunk that could not be split) is a debt paid
//! back before the next portion. An unlimited transfer has no bucket
//! (`Option<RateLimit>` is `None`) and pays nothing.
//!
//! The clock is the caller's: every method takes `now`, so the tests run
//! on a made-up clock.

use std::time::{Duration, Instant};

/// The smallest burst, in bytes (unless a second's worth is less): below
/// it a tenth of a second's worth would mean writes of a few bytes.
pub const MIN_BURST: u64 = 4096;

/// Credit is counted in nanobytes (bytes × 10⁹), so that the refill of
/// any interval at any rate is exact.
const NANO: i128 = 1_000_000_000;

/// One transfer's token bucket.
#[derive(Clone, Debug)]
pub struct RateLimit {
    /// Bytes per second; never 0.
    rate: u64,
    /// Most bytes the bucket holds, in nanobytes.
    burst: i128,
    /// The least credit handed out at once, in nanobytes.
    quantum: i128,
    /// What the bucket holds, in nanobytes; negative is a debt.
    credit: i128,
    /// When `credit` was last brought up to date.
    at: Instant,
}

impl RateLimit {
    /// A full bucket for `bytes_per_sec`, or `None` for 0 (unlimited).
    pub fn new(bytes_per_sec: u64, now: Instant) -> Option<RateLimit> {
        if bytes_per_sec == 0 {
            return None;
        }
        let burst = (bytes_per_sec / 10).max(bytes_per_sec.min(MIN_BURST));
        let quantum = (burst / 4).max(1);
        Some(RateLimit {
            rate: bytes_per_sec,
            burst: i128::from(burst) * NANO,
            quantum: i128::from(quantum) * NANO,
            credit: i128::from(burst) * NANO,
            at: now,
        })
    }

    /// The rate, in bytes per second.
    pub fn per_second(&self) -> u64 {
        self.rate
    }

    /// Most bytes that may go at once, after a pause.
    pub fn burst(&self) -> u64 {
        to_bytes(self.burst)
    }

    /// How many bytes may go now: what the bucket holds, or 0 while it
    /// holds less than a portion (wait for [`ready_at`](Self::ready_at)).
    /// Report what moved with [`consume`](Self::consume).
    pub fn allowance(&mut self, now: Instant) -> usize {
        self.refill(now);
        if self.credit < self.quantum {
            return 0;
        }
        usize::try_from(to_bytes(self.credit)).unwrap_or(usize::MAX)
    }

    /// Takes `n` moved bytes out of the bucket (more than the allowance
    /// leaves a debt).
    pub fn consume(&mut self, n: usize) {
        let n = i128::try_from(n).unwrap_or(i128::MAX / 2);
        self.credit = self.credit.saturating_sub(n.saturating_mul(NANO));
    }

    /// When the next portion may go: `None` if it may go now (the
    /// allowance is not 0), else the instant to wake up at.
    pub fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        let missing = self.quantum - self.credit;
        if missing <= 0 {
            return None;
        }
        // Rounded up, so the portion is there when the caller wakes.
        let rate = i128::from(self.rate);
        let nanos = (missing + rate - 1) / rate;
        let wait = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Some(
            now.checked_add(wait)
                .unwrap_or(now + Duration::from_secs(3600)),
        )
    }

    /// Adds what the rate gave since the last update, up to the burst.
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_nanos();
        if elapsed == 0 {
            return;
        }
        self.at = now;
        let added = i128::try_from(elapsed)
            .unwrap_or(i128::MAX)
            .saturating_mul(i128::from(self.rate));
        self.credit = self.credit.saturating_add(added).min(self.burst);
    }
}

/// Whole bytes of a credit in nanobytes (0 for a debt).
fn to_bytes(credit: i128) -> u64 {
    u64::try_from(credit.max(0) / NANO).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A transfer that moves everything it is allowed (at most `chunk` a
    /// step) and sleeps until `ready_at` (plus `late`) when it may not;
    /// returns the bytes moved in `span` and the largest step.
    fn run(rate: u64, chunk: usize, late: Duration, span: Duration) -> (u64, usize, usize) {
        let start = Instant::now();
        let mut now = start;
        let mut bucket = RateLimit::new(rate, now).unwrap();
        let (mut moved, mut largest, mut wakeups) = (0u64, 0usize, 0usize);
        while now < start + span {
            let n = bucket.allowance(now).min(chunk);
            if n > 0 {
                bucket.consume(n);
                moved += n as u64;
                largest = largest.max(n);
                continue;
            }
            let at = bucket
                .ready_at(now)
                .expect("a wait when nothing is allowed");
            assert!(at > now, "a wake-up in the past");
            now = at + late;
            wakeups += 1;
        }
        (moved, largest, wakeups)
    }

    #[test]
    fn zero_is_unlimited() {
        assert!(RateLimit::new(0, Instant::now()).is_none());
    }

    #[test]
    fn ten_seconds_at_one_mib_are_ten_mib_within_two_percent() {
        let rate = 1 << 20;
        let (moved, largest, wakeups) = run(rate, 128 * 1024, Duration::ZERO, 10 * 1000 * MS);
        let want = 10 * rate;
        assert!(moved.abs_diff(want) * 50 <= want, "{moved} bytes in 10 s");
        // Smooth: no step beyond a tenth of a second's worth, and some 40
        // wake-ups a second rather than one burst a second.
        assert!(largest as u64 <= rate / 10, "a step of {largest} bytes");
        assert!((300..=500).contains(&wakeups), "{wakeups} wake-ups in 10 s");
    }

    #[test]
    fn late_wakeups_lose_little() {
        // Woken 20 ms late each time (a busy loop): still within 5 %.
        let rate = 1 << 20;
        let (moved, _, _) = run(rate, usize::MAX, 20 * MS, 10 * 1000 * MS);
        let want = 10 * rate;
        assert!(moved.abs_diff(want) * 20 <= want, "{moved} bytes in 10 s");
    }

    #[test]
    fn low_and_high_rates() {
        // 100 B/s: portions of 25 bytes, four a second.
        let (moved, largest, _) = run(100, usize::MAX, Duration::ZERO, 10 * 1000 * MS);
        assert!(moved.abs_diff(1000) <= 110, "{moved} bytes");
        assert!(largest <= 100);
        // 100 GB/s: configured, never reached by 128 KiB steps in 1 ms.
        let start = Instant::now();
        let mut bucket = RateLimit::new(100_000_000_000, start).unwrap();
        assert_eq!(bucket.burst(), 10_000_000_000);
        for _ in 0..1000 {
            assert!(bucket.allowance(start + MS) >= 128 * 1024);
            bucket.consume(128 * 1024);
        }
    }

    #[test]
    fn a_debt_is_paid_before_more_goes() {
        let t0 = Instant::now();
        let mut bucket = RateLimit::new(10_000, t0).unwrap();
        assert_eq!(bucket.burst(), 4096);
        assert_eq!(bucket.allowance(t0), 4096);
        // A 10 KB chunk that could not be split: 5904 bytes owed.
        bucket.consume(10_000);
        assert_eq!(bucket.allowance(t0), 0);
        let at = bucket.ready_at(t0).unwrap();
        // The debt plus one portion (1024 bytes) at 10 kB/s.
        assert_eq!(at - t0, Duration::from_nanos(692_800_000));
        assert_eq!(bucket.allowance(at - MS), 0);
        assert_eq!(bucket.allowance(at), 1024);
        assert_eq!(bucket.ready_at(at), None);
    }

    #[test]
    fn a_pause_does_not_save_up_more_than_the_burst() {
        let t0 = Instant::now();
        let mut bucket = RateLimit::new(1_000_000, t0).unwrap();
        let all = bucket.allowance(t0);
        bucket.consume(all);
        let later = t0 + Duration::from_secs(60);
        assert_eq!(bucket.allowance(later), 100_000);
    }
}
