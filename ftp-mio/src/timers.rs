//! Deadlines of one event loop: an ordered set of (instant, connection).
//!
//! Each connection has at most one armed deadline (the engine's
//! [`poll_timeout`](ftp_proto::Session::poll_timeout), or the end of its
//! closing phase); re-arming replaces it.

use std::collections::BTreeSet;
use std::time::Instant;

/// Identifies one connection of a loop for its whole life: the slab index
/// (reused later) and a serial number (never reused).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnKey {
    /// Index in the loop's connection slab.
    pub(crate) index: usize,
    /// Unique within the loop.
    pub(crate) serial: u64,
}

/// The armed deadlines.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    set: BTreeSet<(Instant, ConnKey)>,
}

impl Timers {
    /// Replaces the deadline of `key` (`armed` is where the connection keeps
    /// its current one) with `at`.
    pub(crate) fn arm(&mut self, key: ConnKey, armed: &mut Option<Instant>, at: Option<Instant>) {
        if *armed == at {
            return;
        }
        if let Some(old) = armed.take() {
            self.set.remove(&(old, key));
        }
        if let Some(at) = at {
            self.set.insert((at, key));
        }
        *armed = at;
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.set.first().map(|(at, _)| *at)
    }

    /// Removes and returns the connections whose deadline is at or before
    /// `now`. Their `armed` slots must be cleared by the caller.
    pub(crate) fn expired(&mut self, now: Instant) -> Vec<ConnKey> {
        let mut out = Vec::new();
        while let Some(&(at, key)) = self.set.first() {
            if at > now {
                break;
            }
            self.set.pop_first();
            out.push(key);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn arm_replace_expire() {
        let t0 = Instant::now();
        let a = ConnKey {
            index: 0,
            serial: 1,
        };
        let b = ConnKey {
            index: 1,
            serial: 2,
        };
        let mut timers = Timers::default();
        let (mut ta, mut tb) = (None, None);
        timers.arm(a, &mut ta, Some(t0 + Duration::from_secs(5)));
        timers.arm(b, &mut tb, Some(t0 + Duration::from_secs(3)));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(3)));
        timers.arm(b, &mut tb, Some(t0 + Duration::from_secs(9)));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(5)));
        assert!(timers.expired(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(timers.expired(t0 + Duration::from_secs(5)), vec![a]);
        timers.arm(b, &mut tb, None);
        assert_eq!(timers.next(), None);
    }
}
