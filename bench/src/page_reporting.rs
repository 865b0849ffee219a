//! Free page reporting, paused while the bench runs.
//!
//! On a virtual machine with a `virtio_balloon` that reports free pages,
//! the guest kernel hands blocks of free memory (2 MiB and up) back to the
//! host, which discards them; the next time the guest uses such a page the
//! host must back it again, and that shows up inside the guest as a copy
//! several times slower than usual. A 1 GiB upload fills 1 GiB of fresh
//! page cache, so whether a STOR run landed on reported memory decided
//! whether it took 0.3 s or 0.9 s of the server's CPU (ftp-mio/1: 1,000 to
//! 1,500 MB/s against 3,100, whatever the server, at random). Raising the
//! reporting order above the largest block the allocator has stops the
//! reporting; the old order is written back when the guard drops.

use std::fs;
use std::path::Path;

/// The kernel parameter: blocks of at least 2^order pages are reported.
pub const ORDER: &str = "/sys/module/page_reporting/parameters/page_reporting_order";
/// Above `MAX_PAGE_ORDER` (10 on x86_64 and arm64): no block is that big.
const NEVER: &str = "11";

/// What the bench found and did.
pub enum PageReporting {
    /// The kernel has no free page reporting (not a VM, or no balloon).
    Absent,
    /// Reporting was on at this order and is paused until the guard drops.
    Paused { order: String },
    /// Reporting is on and could not be paused (not root, or the kernel
    /// refused the order).
    Active { order: String, why: String },
    /// Reporting was already off.
    Off,
}

impl PageReporting {
    /// Pauses free page reporting if the kernel has it.
    pub fn pause() -> PageReporting {
        let Ok(order) = fs::read_to_string(ORDER) else {
            return PageReporting::Absent;
        };
        let order = order.trim().to_owned();
        if order.parse::<u32>().is_ok_and(|o| o > 10) {
            return PageReporting::Off;
        }
        match fs::write(ORDER, NEVER) {
            Ok(()) if Self::current().as_deref() == Some(NEVER) => PageReporting::Paused { order },
            Ok(()) => PageReporting::Active {
                order,
                why: "the kernel kept its order".to_owned(),
            },
            Err(e) => PageReporting::Active {
                order,
                why: e.to_string(),
            },
        }
    }

    fn current() -> Option<String> {
        fs::read_to_string(ORDER).ok().map(|s| s.trim().to_owned())
    }

    /// One line for the report.
    pub fn describe(&self) -> String {
        match self {
            PageReporting::Absent => "no free page reporting".to_owned(),
            PageReporting::Paused { order } => {
                format!("free page reporting paused during the run (order {order}, restored after)")
            }
            PageReporting::Active { order, why } => format!(
                "free page reporting ON (order {order}; could not pause it: {why}); uploads are noisy"
            ),
            PageReporting::Off => "free page reporting off".to_owned(),
        }
    }
}

impl Drop for PageReporting {
    fn drop(&mut self) {
        if let PageReporting::Paused { order } = self {
            if let Err(e) = fs::write(Path::new(ORDER), order.as_bytes()) {
                eprintln!("ftp-bench: could not restore {ORDER} to {order}: {e}");
            }
        }
    }
}
