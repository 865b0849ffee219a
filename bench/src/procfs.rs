//! What /proc says about a server's process tree and about the generator.

use std::collections::HashMap;
use std::fs;

/// Linux reports utime/stime in USER_HZ, which is 100 on every
/// architecture the kernel supports today.
const TICKS_PER_SEC: f64 = 100.0;

/// Parses `/proc/PID/stat`: the fields after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let close = text.rfind(')')?;
    Some(
        text[close + 1..]
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // Field 4 of stat (index 1 after the name) is the parent.
            if let Some(ppid) = stat_fields(p).and_then(|f| f.get(1)?.parse::<u32>().ok()) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend_from_slice(c);
        }
        i += 1;
    }
    out
}

/// CPU seconds used by the process tree of `pid`: user + system time of
/// every live process (all its threads, live or ended) plus the time of
/// children they have reaped.
pub fn tree_cpu_secs(pid: u32) -> f64 {
    let mut ticks = 0u64;
    for p in tree(pid) {
        if let Some(f) = stat_fields(p) {
            // utime, stime, cutime, cstime are fields 14..=17 of stat,
            // indices 11..=14 after the name.
            for i in 11..=14 {
                ticks += f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
    }
    ticks as f64 / TICKS_PER_SEC
}

/// Sum of the `Pss:` of every process of the tree of `pid`, in KiB.
pub fn tree_pss_kib(pid: u32) -> u64 {
    tree(pid).into_iter().map(pss_kib).sum()
}

fn pss_kib(pid: u32) -> u64 {
    let Ok(text) = fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) else {
        return 0;
    };
    kib_field(&text, "Pss:").unwrap_or(0)
}

fn kib_field(text: &str, name: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `VmRSS` of one process, in KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, "VmRSS:")
}

/// `VmHWM` (the most RSS it ever had) of one process, in KiB.
pub fn hwm_kib(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    kib_field(&text, "VmHWM:")
}

/// Number of processes in the tree of `pid`.
pub fn tree_len(pid: u32) -> usize {
    tree(pid).len()
}

/// Nanoseconds of CPU used by this process: all its threads, those that
/// have ended included (the thread-per-client generator's threads end as
/// the window closes).
pub fn self_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// The 1-, 5- and 15-minute load averages.
pub fn loadavg() -> [f64; 3] {
    let text = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

/// KiB in a page of `/proc/net/sockstat`'s `mem` (4 KiB on x86_64 and on
/// aarch64's default kernels).
pub const PAGE_KIB: u64 = 4;

/// The kernel's slab memory and TCP buffer pages now.
pub fn kernel_memory() -> crate::scenarios::KernelMemory {
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let sockstat = fs::read_to_string("/proc/net/sockstat").unwrap_or_default();
    // "TCP: inuse 1 orphan 0 tw 0 alloc 1 mem 27"
    let tcp_pages = sockstat
        .lines()
        .find_map(|l| l.strip_prefix("TCP:"))
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let at = words.iter().position(|&w| w == "mem")?;
            words.get(at + 1)?.parse().ok()
        })
        .unwrap_or(0);
    crate::scenarios::KernelMemory {
        slab_kib: kib_field(&meminfo, "Slab:").unwrap_or(0),
        tcp_pages,
    }
}

/// Ports of the kernel's ephemeral range (`ip_local_port_range`) that no
/// TCP socket holds, and the size of the range: `(free, total)`.
///
/// A port held by a socket bound with `bind` (a passive listener chosen by
/// port 0 or at random in this range, and the `TIME_WAIT` sockets of the
/// connections it accepted, for a minute) cannot be taken by a client's
/// `connect`, whatever its source address; a server that binds its passive
/// ports there can leave the next server's clients without any port
/// (`EADDRNOTAVAIL`). Every socket in `/proc/net/tcp` and `tcp6` counts,
/// whatever its state, so the figure errs on the side of too few.
pub fn ephemeral_ports_free() -> Option<(usize, usize)> {
    let range = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|v| v.parse::<u16>().ok());
    let (low, high) = (bounds.next()??, bounds.next()??);
    let mut held = vec![false; usize::from(u16::MAX) + 1];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // "  sl  local_address rem_address   st ...": ADDR:PORT in hex.
            let port = line
                .split_whitespace()
                .nth(1)
                .and_then(|local| local.rsplit(':').next())
                .and_then(|hex| u16::from_str_radix(hex, 16).ok());
            if let Some(port) = port {
                held[usize::from(port)] = true;
            }
        }
    }
    let total = usize::from(high.saturating_sub(low)) + 1;
    let busy = held[usize::from(low)..=usize::from(high)]
        .iter()
        .filter(|h| **h)
        .count();
    Some((total - busy, total))
}
