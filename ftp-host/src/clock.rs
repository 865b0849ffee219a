//! The runtimes' clocks, converted to the engine's time values.

use std::time::{Instant as StdInstant, SystemTime, UNIX_EPOCH};

use ftp_proto::{Instant, UnixTime};

/// A monotonic clock with a fixed epoch, shared by a server's sessions.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: StdInstant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Clock {
            epoch: StdInstant::now(),
        }
    }

    /// The current engine instant.
    pub fn now(&self) -> Instant {
        Instant::from_duration(self.epoch.elapsed())
    }

    /// The standard-library instant of an engine instant, for timers.
    pub fn to_std(&self, at: Instant) -> StdInstant {
        self.epoch + at.as_duration()
    }

    /// The current wall-clock time, for listings.
    pub fn wall(&self) -> UnixTime {
        wall_now()
    }
}

/// The current wall-clock time in whole seconds.
pub fn wall_now() -> UnixTime {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => UnixTime(i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        Err(e) => UnixTime(-i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX)),
    }
}
