//! Auto-ban (`--ban-after N`): an address that fails to log in N times
//! within `--ban-window` is turned away at admission, before the greeting,
//! for `--ban-time`, twice as long for each repeat offence (up to a day).
//!
//! Addresses are counted as the connection limits count them
//! ([`address_key`]: an IPv6 client by its /64). The table is bounded
//! ([`MAX_TRACKED`] addresses); when it is full, expired entries go first,
//! then the address whose last failure is oldest, so a flood of addresses
//! cannot grow it and an address under ban is the last to be forgotten.
//! It lives as long as the server, so a reload (SIGHUP) keeps every ban.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::address_key;
use crate::proxy::Network;

/// Most addresses remembered at once.
pub const MAX_TRACKED: usize = 65_536;

/// The longest ban, however often an address offends again.
pub const MAX_BAN: Duration = Duration::from_secs(24 * 60 * 60);

/// Most failures `--ban-after` may ask for.
pub const MAX_BAN_AFTER: u32 = 1000;

/// How the defender is configured (`--ban-after`, `--ban-window`,
/// `--ban-time`, `--ban-exempt`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanPolicy {
    /// Failed logins that ban an address (at least 1).
    pub after: u32,
    /// How recent those failures must all be.
    pub window: Duration,
    /// The first ban's length; it doubles for each repeat offence.
    pub time: Duration,
    /// Networks never banned.
    pub exempt: Vec<Network>,
}

/// What one address has done lately.
#[derive(Debug)]
struct Record {
    /// The latest failures, at most `after` of them, oldest first.
    failures: VecDeque<Instant>,
    /// Banned until then.
    banned_until: Option<Instant>,
    /// Bans so far (the next one lasts `time * 2^offences`).
    offences: u32,
    /// When the record last changed, for eviction.
    last: Instant,
}

/// The failed-login counter and ban list of a server.
#[derive(Debug)]
pub struct Defender {
    policy: BanPolicy,
    records: Mutex<HashMap<IpAddr, Record>>,
    limit: usize,
}

/// What [`Defender::failed_login`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Counted; no ban.
    Counted,
    /// The address is exempt: not counted.
    Exempt,
    /// The address is now banned for this long.
    Banned(Duration),
}

impl Defender {
    /// A defender with no record.
    pub fn new(policy: BanPolicy) -> Defender {
        Defender::with_limit(policy, MAX_TRACKED)
    }

    fn with_limit(policy: BanPolicy, limit: usize) -> Defender {
        Defender {
            policy,
            records: Mutex::new(HashMap::new()),
            limit: limit.max(1),
        }
    }

    /// Whether a connection from `ip` must be turned away now, and for
    /// how much longer.
    pub fn banned(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        let until = records.get(&address_key(ip))?.banned_until?;
        until.checked_duration_since(now).filter(|d| !d.is_zero())
    }

    /// Counts a failed login from `ip` (a bad password and an unknown
    /// user alike) and bans the address when it has failed often enough.
    pub fn failed_login(&self, ip: IpAddr, now: Instant) -> Verdict {
        if self.policy.exempt.iter().any(|n| n.contains(ip)) {
            return Verdict::Exempt;
        }
        let key = address_key(ip);
        let mut records = self.records.lock().unwrap_or_else(PoisonError::into_inner);
        if !records.contains_key(&key) && records.len() >= self.limit {
            evict(&mut records, self.policy.window, now);
        }
        let record = records.entry(key).or_insert_with(|| Record {
            failures: VecDeque::new(),
            banned_until: None,
            offences: 0,
            last: now,
        });
        record.last = now;
        if record.banned_until.is_some_and(|until| until > now) {
            // Still banned (a session admitted before the ban): the ban
            // stands as it is.
            return Verdict::Counted;
        }
        let window = self.policy.window;
        while record
            .failures
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            record.failures.pop_front();
        }
        record.failures.push_back(now);
        if record.failures.len() < self.policy.after as usize {
            return Verdict::Counted;
        }
        record.failures.clear();
        let factor = 1u32.checked_shl(record.offences).unwrap_or(u32::MAX);
        let length = self
            .policy
            .time
            .checked_mul(factor)
            .unwrap_or(MAX_BAN)
            .min(MAX_BAN);
        record.offences = record.offences.saturating_add(1);
        record.banned_until = Some(now + length);
        Verdict::Banned(length)
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Makes room for one more record: drops every record with nothing left
/// to act on (no ban running, no failure in the window; its count of
/// past offences goes with it), or else the one not banned that changed
/// longest ago, or else the oldest of all.
fn evict(records: &mut HashMap<IpAddr, Record>, window: Duration, now: Instant) {
    let before = records.len();
    records.retain(|_, r| {
        r.banned_until.is_some_and(|until| until > now)
            || r.failures
                .back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
    });
    if records.len() < before {
        return;
    }
    let oldest = records
        .iter()
        .min_by_key(|(_, r)| (r.banned_until.is_some(), r.last))
        .map(|(k, _)| *k);
    if let Some(key) = oldest {
        records.remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(after: u32) -> BanPolicy {
        BanPolicy {
            after,
            window: Duration::from_secs(600),
            time: Duration::from_secs(900),
            exempt: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn n_failures_in_the_window_ban_for_the_ban_time() {
        let d = Defender::new(policy(3));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(d.failed_login(a, t0), Verdict::Counted);
        assert_eq!(
            d.failed_login(a, t0 + Duration::from_secs(1)),
            Verdict::Counted
        );
        assert_eq!(d.banned(a, t0), None);
        let t = t0 + Duration::from_secs(2);
        assert_eq!(
            d.failed_login(a, t),
            Verdict::Banned(Duration::from_secs(900))
        );
        assert_eq!(d.banned(a, t), Some(Duration::from_secs(900)));
        assert_eq!(d.banned(ip("192.0.2.2"), t), None);
        assert_eq!(d.banned(a, t + Duration::from_secs(900)), None);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let d = Defender::new(policy(2));
        let t0 = Instant::now();
        let a = ip("192.0.2.1");
        assert_eq!(d.failed_login(a, t0), Verdict::Counted);
        let late = t0 + Duration::from_secs(600);
        assert_eq!(d.failed_login(a, late), Verdict::Counted);
        assert!(matches!(
            d.failed_login(a, late + Duration::from_secs(1)),
            Verdict::Banned(_)
        ));
    }

    #[test]
    fn repeat_offences_double_up_to_a_day() {
        let d = Defender::new(policy(1));
        let mut t = Instant::now();
        let a = ip("2001:db8::1");
        let mut lengths = Vec::new();
        for _ in 0..10 {
            match d.failed_login(a, t) {
                Verdict::Banned(len) => {
                    lengths.push(len.as_secs());
                    t += len;
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(&lengths[..4], [900, 1800, 3600, 7200]);
        assert_eq!(*lengths.last().unwrap(), MAX_BAN.as_secs());
        // The same /64 is the same client.
        t -= Duration::from_secs(1);
        assert!(d.banned(ip("2001:db8::2"), t).is_some());
    }

    #[test]
    fn exempt_networks_are_never_banned() {
        let d = Defender::new(policy(1));
        let t = Instant::now();
        assert_eq!(d.failed_login(ip("10.1.2.3"), t), Verdict::Exempt);
        assert_eq!(d.banned(ip("10.1.2.3"), t), None);
        assert!(d.is_empty());
    }

    #[test]
    fn the_table_is_bounded_and_keeps_bans_longest() {
        let d = Defender::with_limit(policy(2), 4);
        let t = Instant::now();
        let banned = ip("192.0.2.200");
        d.failed_login(banned, t);
        assert!(matches!(d.failed_login(banned, t), Verdict::Banned(_)));
        for i in 0..100u8 {
            d.failed_login(IpAddr::from([198, 51, 100, i]), t + Duration::from_secs(1));
            assert!(d.len() <= 4);
        }
        assert!(d.banned(banned, t + Duration::from_secs(2)).is_some());
    }
}
