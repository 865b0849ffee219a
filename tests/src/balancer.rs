//! Several daemon processes behind a real haproxy, on loopback: the
//! layout of the README's "Running several nodes", with that section's
//! haproxy configuration ([`readme_config`]) and loopback addresses and
//! free ports put in ([`config_for`]).
//!
//! Three nodes (two `ftp-mio`, one `ftp-smol`: the binaries cargo built,
//! so a test can kill one with SIGKILL) serve one bucket of a SeaweedFS
//! cluster ([`crate::seaweed`]), each on its own loopback address
//! (127.0.0.11, .12, .13) so that it can bind the same ports as the
//! balancer (127.0.0.1): the control port, which haproxy shares out
//! round-robin with `send-proxy-v2`, and a passive range of its own,
//! which haproxy forwards to it. The nodes run with `--proxy-from
//! 127.0.0.1` (haproxy's address towards them) and `--pasv-address
//! localhost` (a host name, resolved to the balancer's 127.0.0.1).
//!
//! Ports are chosen at run time below the kernel's ephemeral range (where
//! other tests' passive listeners and SeaweedFS take theirs), held while
//! they are checked, and released just before the processes that bind
//! them start; clusters of one test binary start one at a time. Every
//! wait is bounded, and every process is killed when the [`Balancer`] is
//! dropped (with the logs printed if the test is failing).

use std::collections::hash_map::RandomState;
use std::fs::File;
use std::hash::BuildHasher;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::seaweed::SeaweedFs;

/// The daemons of the three nodes, in order.
pub const NODE_DAEMONS: [&str; 3] = ["ftp-mio", "ftp-mio", "ftp-smol"];

/// Ports in each node's passive range.
pub const PASSIVE_PORTS: u16 = 16;

/// How long the nodes and haproxy may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The balancer's address, as the nodes see it and as clients reach it.
pub const BALANCER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// The marker line in README.md right before the configuration block.
const README_MARKER: &str = "<!-- balancer-config: tests/src/balancer.rs reads this block -->";

/// Clusters of one test binary choose their ports and start one at a
/// time, so two never pick the same ports.
static STARTING: Mutex<()> = Mutex::new(());

/// The haproxy configuration of README.md's "Running several nodes".
pub fn readme_config() -> Result<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let after = text
        .split_once(README_MARKER)
        .ok_or("README.md: no balancer-config marker")?
        .1;
    let body = after
        .trim_start()
        .strip_prefix("```haproxy\n")
        .ok_or("README.md: no ```haproxy block after the marker")?;
    let end = body
        .find("\n```")
        .ok_or("README.md: the haproxy block does not end")?;
    Ok(format!("{}\n", &body[..end]))
}

/// The README's configuration for this machine: the balancer at
/// [`BALANCER_IP`], the nodes at 127.0.0.11 to .13, the control port
/// `control` and the nodes' passive ranges `ranges`. Fails if a part of
/// the README that is replaced is not there (the README and this function
/// must change together).
pub fn config_for(control: u16, ranges: &[RangeInclusive<u16>; 3]) -> Result<String, String> {
    let mut text = readme_config()?;
    let range = |r: &RangeInclusive<u16>| format!("{}-{}", r.start(), r.end());
    let mut swaps = vec![
        (
            "192.0.2.10:21\n".to_string(),
            format!("{BALANCER_IP}:{control}\n"),
        ),
        (
            ":21 send-proxy-v2".to_string(),
            format!(":{control} send-proxy-v2"),
        ),
        ("50000-50099".to_string(), range(&ranges[0])),
        ("50100-50199".to_string(), range(&ranges[1])),
        ("50200-50299".to_string(), range(&ranges[2])),
        ("192.0.2.10:".to_string(), format!("{BALANCER_IP}:")),
    ];
    for n in 1..=3 {
        swaps.push((format!("10.0.0.1{n}"), format!("127.0.0.1{n}")));
    }
    for (from, to) in swaps {
        if !text.contains(&from) {
            return Err(format!("README haproxy block: no {from:?} to replace"));
        }
        text = text.replace(&from, &to);
    }
    if text.contains("192.0.2.") || text.contains("10.0.0.") {
        return Err(format!("README haproxy block: an address is left:\n{text}"));
    }
    Ok(text)
}

/// One node: a daemon process.
#[derive(Debug)]
pub struct Node {
    /// `ftp-mio` or `ftp-smol`.
    pub daemon: &'static str,
    /// Its own loopback address.
    pub ip: Ipv4Addr,
    /// Its passive range (forwarded by the balancer).
    pub ports: RangeInclusive<u16>,
    control: u16,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// Its control address (reached directly, not through the balancer).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.control))
    }

    /// What it logged (`-v`).
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    /// Kills it with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether its process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }
}

/// Three nodes behind haproxy; everything is killed on drop.
#[derive(Debug)]
pub struct Balancer {
    /// The nodes, n1 to n3.
    pub nodes: Vec<Node>,
    haproxy: Option<Child>,
    haproxy_log: PathBuf,
    control: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    /// Starts three nodes serving `s3://bucket/served` of `store`, with
    /// `extra` arguments each, and haproxy in front. `None` after printing
    /// `SKIP:` when haproxy or the daemon binaries are missing (a failure
    /// with `FTP_TEST_REQUIRE_CLIENTS=1`).
    pub fn start(test: &str, store: &SeaweedFs, bucket: &str, extra: &[&str]) -> Option<Balancer> {
        let haproxy = crate::clients::require(test, "haproxy")?;
        let mut binaries = Vec::new();
        for daemon in NODE_DAEMONS {
            match crate::binary::built_daemon(daemon) {
                Ok(path) => binaries.push(path),
                Err(why) => {
                    if crate::clients::clients_required() {
                        panic!("{test}: {why}, and FTP_TEST_REQUIRE_CLIENTS=1");
                    }
                    crate::skip(test, &why);
                    return None;
                }
            }
        }
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        let dir = tempfile::tempdir().expect("folder");
        let conf = dir.path().join("ftpd.toml");
        std::fs::write(
            &conf,
            format!(
                "[storage]\nurl = \"s3://{bucket}/served\"\ns3_endpoint = \"{}\"\n\
                 access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
                store.endpoint()
            ),
        )
        .expect("node configuration");
        let (control, ranges, held) = choose_ports();
        let (held_balancer, held_nodes) = held;
        drop(held_nodes);
        let mut nodes = Vec::new();
        for (i, (daemon, binary)) in NODE_DAEMONS.iter().zip(&binaries).enumerate() {
            let ip = node_ip(i);
            let log = dir.path().join(format!("n{}.log", i + 1));
            let out = File::create(&log).expect("log file");
            let ports = ranges[i].clone();
            let child = Command::new(binary)
                .arg("-l")
                .arg(format!("{ip}:{control}"))
                .args(["--proxy-from", "127.0.0.1", "--pasv-address", "localhost"])
                .arg("--pasv-ports")
                .arg(format!("{}-{}", ports.start(), ports.end()))
                .args(["-w", "-v", "--config"])
                .arg(&conf)
                .args(extra)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
            nodes.push(Node {
                daemon,
                ip,
                ports,
                control,
                child: Some(child),
                log,
            });
        }
        let mut balancer = Balancer {
            nodes,
            haproxy: None,
            haproxy_log: dir.path().join("haproxy.log"),
            control,
            _dir: dir,
        };
        for i in 0..balancer.nodes.len() {
            balancer.wait_until("a node to listen", |b| {
                let node = &mut b.nodes[i];
                if !node.running() {
                    return Err(format!("n{} exited", i + 1));
                }
                Ok(node.log().contains("serving "))
            });
        }
        let config = config_for(control, &ranges).unwrap_or_else(|e| panic!("{e}"));
        let cfg = balancer._dir.path().join("haproxy.cfg");
        std::fs::write(&cfg, config).expect("haproxy.cfg");
        let out = File::create(&balancer.haproxy_log).expect("log file");
        drop(held_balancer);
        let child = Command::new(&haproxy)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", haproxy.display()));
        balancer.haproxy = Some(child);
        // Listening once its ports cannot be bound any more.
        let last = *ranges[2].end();
        balancer.wait_until("haproxy to listen", |b| {
            if let Some(Ok(Some(status))) = b.haproxy.as_mut().map(Child::try_wait) {
                return Err(format!("haproxy exited: {status}"));
            }
            Ok([control, last]
                .iter()
                .all(|&p| TcpListener::bind((BALANCER_IP, p)).is_err()))
        });
        Some(balancer)
    }

    /// The balancer's control address, where clients connect.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((BALANCER_IP, self.control))
    }

    /// The node whose passive range holds `port`.
    pub fn node_of_port(&self, port: u16) -> usize {
        self.nodes
            .iter()
            .position(|n| n.ports.contains(&port))
            .unwrap_or_else(|| panic!("port {port} is in no node's passive range"))
    }

    /// Every node's and haproxy's log.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            out += &format!("--- n{} ({}) ---\n{}\n", i + 1, node.daemon, node.log());
        }
        let haproxy = std::fs::read(&self.haproxy_log).unwrap_or_default();
        out += &format!("--- haproxy ---\n{}\n", String::from_utf8_lossy(&haproxy));
        out
    }

    /// Polls `check` until it says `true` within [`START_TIMEOUT`];
    /// panics with the logs on an error or at the deadline.
    fn wait_until(&mut self, what: &str, mut check: impl FnMut(&mut Self) -> Result<bool, String>) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match check(self) {
                Ok(true) => return,
                Ok(false) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(false) => panic!("timed out waiting for {what}\n{}", self.logs()),
                Err(e) => panic!("waiting for {what}: {e}\n{}", self.logs()),
            }
        }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        if let Some(mut child) = self.haproxy.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        for node in &mut self.nodes {
            node.kill();
        }
        if std::thread::panicking() {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{}", self.logs());
        }
    }
}

/// Node `i`'s loopback address: 127.0.0.11, .12, .13.
fn node_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 11 + i as u8)
}

/// Listeners that keep ports taken until dropped.
type Held = Vec<TcpListener>;

/// A control port and three passive ranges of [`PASSIVE_PORTS`] ports,
/// consecutive, free on the balancer's address and (the control port and
/// each node's range) on the nodes' addresses, below the kernel's
/// ephemeral range; returned with the listeners holding them (balancer's,
/// nodes').
fn choose_ports() -> (u16, [RangeInclusive<u16>; 3], (Held, Held)) {
    let low = 10_000u32;
    let high = ephemeral_start().saturating_sub(1);
    let span = 1 + 3 * u32::from(PASSIVE_PORTS);
    let keys = RandomState::new();
    for attempt in 0u64..500 {
        let room = high.saturating_sub(low + span).max(1);
        let base = low + (keys.hash_one(attempt) % u64::from(room)) as u32;
        let Ok(control) = u16::try_from(base) else {
            continue;
        };
        let ranges: [RangeInclusive<u16>; 3] = std::array::from_fn(|i| {
            let first = control + 1 + i as u16 * PASSIVE_PORTS;
            first..=first + PASSIVE_PORTS - 1
        });
        let Some(balancer) = hold(BALANCER_IP, (control..=*ranges[2].end()).collect()) else {
            continue;
        };
        let mut nodes = Vec::new();
        let mut free = true;
        for (i, range) in ranges.iter().enumerate() {
            let ports = std::iter::once(control).chain(range.clone()).collect();
            match hold(node_ip(i), ports) {
                Some(held) => nodes.extend(held),
                None => {
                    free = false;
                    break;
                }
            }
        }
        if free {
            return (control, ranges, (balancer, nodes));
        }
    }
    panic!("no free ports for a balancer below the ephemeral range");
}

/// Binds every port of `ports` on `ip`, or `None` if one is taken.
fn hold(ip: Ipv4Addr, ports: Vec<u16>) -> Option<Held> {
    ports
        .into_iter()
        .map(|p| TcpListener::bind((IpAddr::V4(ip), p)).ok())
        .collect()
}

/// The first port of the kernel's ephemeral range (32768 if unknown).
fn ephemeral_start() -> u32 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}
