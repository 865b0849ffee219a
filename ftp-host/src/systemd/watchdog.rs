//! The service manager's watchdog (`WatchdogSec=`): `WATCHDOG=1` every
//! half of `WATCHDOG_USEC`, from a thread of its own.

use std::ffi::OsStr;
use std::time::Duration;

use super::notify::{NotifyError, notify};

/// Half of `WATCHDOG_USEC` (`usec`), when it is set and not 0, and
/// `WATCHDOG_PID` (`pid`) is `own` or unset.
pub(super) fn interval(
    usec: Option<&OsStr>,
    pid: Option<&OsStr>,
    own: u32,
) -> Result<Option<Duration>, NotifyError> {
    let Some(usec) = usec else { return Ok(None) };
    if let Some(pid) = pid {
        if number("WATCHDOG_PID", pid)? != u64::from(own) {
            return Ok(None);
        }
    }
    match number("WATCHDOG_USEC", usec)? {
        0 => Ok(None),
        usec => Ok(Some(Duration::from_micros(usec) / 2)),
    }
}

fn number(name: &'static str, value: &OsStr) -> Result<u64, NotifyError> {
    value
        .to_str()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| NotifyError::BadVariable {
            name,
            value: value.to_string_lossy().into_owned(),
        })
}

/// Starts the thread that sends `WATCHDOG=1` every `every` for as long as
/// the process lives. It proves the process is alive and scheduled, not
/// that each event loop answers; a failed send is logged once.
pub(crate) fn start_watchdog(every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            let mut failing = false;
            loop {
                std::thread::sleep(every);
                match notify("WATCHDOG=1") {
                    Ok(()) => failing = false,
                    Err(e) if !failing => {
                        log::warn!("watchdog: {e}");
                        failing = true;
                    }
                    Err(_) => {}
                }
            }
        });
    if let Err(e) = spawned {
        log::warn!("no watchdog thread: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn half_of_the_timeout_for_this_process() {
        let half = Some(Duration::from_millis(100));
        assert_eq!(interval(os("200000"), None, 7).unwrap(), half);
        assert_eq!(interval(os("200000"), os("7"), 7).unwrap(), half);
        assert_eq!(interval(os("200000"), os("8"), 7).unwrap(), None);
        assert_eq!(interval(os("0"), None, 7).unwrap(), None);
        assert_eq!(interval(None, os("7"), 7).unwrap(), None);
        assert!(interval(os("soon"), None, 7).is_err());
    }
}
