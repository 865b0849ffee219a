//! Time as values: the engine never reads a clock.
//!
//! [`Instant`] is monotonic time the runtime supplies on every call (for
//! timeouts); [`UnixTime`] is wall-clock time that arrives with file
//! metadata and with listing requests (for MDTM, LIST and MLSD).

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point on the runtime's monotonic clock, measured from an epoch the
/// runtime chooses (usually the moment it started).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(Duration);

impl Instant {
    /// The instant `since_epoch` after the runtime's epoch.
    pub const fn from_duration(since_epoch: Duration) -> Self {
        Instant(since_epoch)
    }

    /// Time since the runtime's epoch.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// Time elapsed from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_add(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// Wall-clock time in whole seconds since 1970-01-01T00:00:00Z (may be negative).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixTime(pub i64);

/// A calendar date and time of day in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime {
    /// Full year, for example 2026.
    pub year: i64,
    /// Month, 1 to 12.
    pub month: u32,
    /// Day of the month, 1 to 31.
    pub day: u32,
    /// Hour, 0 to 23.
    pub hour: u32,
    /// Minute, 0 to 59.
    pub minute: u32,
    /// Second, 0 to 59.
    pub second: u32,
}

impl UnixTime {
    /// Splits the time into a UTC calendar date and time of day.
    pub fn to_datetime(self) -> DateTime {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        DateTime {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
        }
    }

    /// The time at a UTC calendar date and time of day; `None` if a field is out of range.
    pub fn from_datetime(dt: DateTime) -> Option<UnixTime> {
        let leap = (dt.year % 4 == 0 && dt.year % 100 != 0) || dt.year % 400 == 0;
        let month_days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if !(1..=12).contains(&dt.month)
            || dt.day == 0
            || dt.day > month_days[dt.month as usize - 1]
            || dt.hour > 23
            || dt.minute > 59
            || dt.second > 60
            || !(-100_000..=100_000).contains(&dt.year)
        {
            return None;
        }
        let days = days_from_civil(dt.year, dt.month, dt.day);
        Some(UnixTime(
            days * 86_400 + i64::from(dt.hour * 3600 + dt.minute * 60 + dt.second.min(59)),
        ))
    }
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// (year, month, day) to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        let dt = UnixTime(0).to_datetime();
        assert_eq!((dt.year, dt.month, dt.day, dt.hour), (1970, 1, 1, 0));
        let dt = UnixTime(1_798_761_599).to_datetime(); // 2026-12-31T23:59:59Z
        assert_eq!(
            (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second),
            (2026, 12, 31, 23, 59, 59)
        );
        let dt = UnixTime(951_782_400).to_datetime(); // 2000-02-29
        assert_eq!((dt.year, dt.month, dt.day), (2000, 2, 29));
    }

    #[test]
    fn round_trip() {
        for t in [
            -86_401i64,
            -1,
            0,
            1,
            951_782_400,
            1_798_761_599,
            4_102_444_800,
        ] {
            assert_eq!(
                UnixTime::from_datetime(UnixTime(t).to_datetime()),
                Some(UnixTime(t))
            );
        }
    }

    #[test]
    fn rejects_bad_fields() {
        let mut dt = UnixTime(0).to_datetime();
        dt.month = 2;
        dt.day = 30;
        assert_eq!(UnixTime::from_datetime(dt), None);
    }
}
