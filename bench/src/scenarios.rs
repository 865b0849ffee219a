//! The measurements. Each runs on the generator's single-threaded executor.

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;
use smol::io::AsyncWriteExt;

use crate::checksum::{BLOCK, Checksum, Pattern};
use crate::client::{self, Control, fail, timeout};
use crate::procfs;
use crate::servers::{Kind, Server};

/// The served files.
pub struct Files {
    /// Served folder on disk.
    pub root: PathBuf,
    pub big_name: &'static str,
    pub big_len: u64,
    pub big_sum: u64,
    pub pattern: Pattern,
    /// Contents of `small/N.bin`.
    pub small: Vec<Vec<u8>>,
}

/// The generator's CPU seconds so far (all its threads).
pub fn generator_cpu() -> f64 {
    procfs::self_cpu_ns() as f64 / 1e9
}

/// One big transfer.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub secs: f64,
    pub bytes: u64,
    pub server_cpu: f64,
    pub client_cpu: f64,
}

impl Transfer {
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes as f64 / self.secs / 1e6
    }
}

pub(crate) const BIG_TIMEOUT: Duration = Duration::from_secs(300);
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// RETR of the big file by one client (or, for the ceiling, a plain read
/// of the connection), checksummed, data closed at EOF before the 226.
pub async fn retr_big(server: &Server, files: &Files) -> io::Result<Transfer> {
    timeout(BIG_TIMEOUT, async {
        let mut buf = vec![0u8; 256 << 10];
        let mut sum = Checksum::new();
        let (secs, bytes, server_cpu, client_cpu);
        if server.kind == Kind::Ceiling {
            let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
            let data = client::connect(server.addr, None).await?;
            let data = client::DataConn::registered(data);
            bytes = client::drain_checksum(data, &mut buf, &mut sum).await?;
            secs = t0.elapsed().as_secs_f64();
            server_cpu = server.cpu_secs() - s0;
            client_cpu = generator_cpu() - c0;
        } else {
            let mut ctl = Control::connect(server.addr, None).await?;
            ctl.anonymous().await?;
            let data = ctl.epsv().await?;
            let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
            ctl.start_transfer(&format!("RETR {}", files.big_name))
                .await?;
            bytes = client::drain_checksum(data, &mut buf, &mut sum).await?;
            ctl.end_transfer().await?;
            secs = t0.elapsed().as_secs_f64();
            // Before QUIT: a forking server's session process still lives.
            server_cpu = server.cpu_secs() - s0;
            client_cpu = generator_cpu() - c0;
            ctl.quit().await?;
        }
        if bytes != files.big_len || sum.finish() != files.big_sum {
            return Err(fail(format!(
                "RETR carried wrong bytes: {bytes} of {} bytes, checksum {}",
                files.big_len,
                if sum.finish() == files.big_sum {
                    "ok"
                } else {
                    "differs"
                }
            )));
        }
        Ok(Transfer {
            secs,
            bytes,
            server_cpu,
            client_cpu,
        })
    })
    .await
}

/// Writes and removes a scratch file as big as an upload, untimed, before
/// each STOR run. An upload takes that much fresh memory (page cache of the
/// stored file); on a virtual machine whose host backs guest memory lazily
/// and takes freed memory back, whichever run first touches memory that the
/// host must back again is several times slower. Touching it just before
/// every run gives every server the same start.
pub fn warm_memory(files: &Files) -> io::Result<()> {
    use std::io::Write;
    let path = files.root.join("upload").join(".warm-up");
    let block = vec![0x5au8; BLOCK];
    let result = (|| {
        let mut f = std::fs::File::create(&path)?;
        for _ in 0..files.big_len / BLOCK as u64 {
            f.write_all(&block)?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// STOR of a big upload into `upload/NAME`; the stored file is checked
/// (size and checksum) and removed afterwards.
pub async fn stor_big(server: &Server, files: &Files, name: &str) -> io::Result<Transfer> {
    let stored = files.root.join("upload").join(name);
    let result = upload(
        server,
        &files.pattern,
        files.big_len,
        &format!("upload/{name}"),
    )
    .await;
    let check = result.and_then(|t| {
        let (len, sum) = checksum_file(&stored)?;
        if len != files.big_len || sum != files.big_sum {
            return Err(fail(format!(
                "stored file is wrong: {len} of {} bytes, checksum {}",
                files.big_len,
                if sum == files.big_sum {
                    "ok"
                } else {
                    "differs"
                }
            )));
        }
        Ok(t)
    });
    let _ = std::fs::remove_file(&stored);
    check
}

/// One session uploads the first `len` bytes of the big file's blocks (a
/// multiple of [`BLOCK`]) from memory as `path`: login, `EPSV`, then timed
/// from `STOR` to `226`. The caller checks what was stored.
pub async fn upload(
    server: &Server,
    pattern: &Pattern,
    len: u64,
    path: &str,
) -> io::Result<Transfer> {
    timeout(BIG_TIMEOUT, async {
        let mut ctl = Control::connect(server.addr, None).await?;
        ctl.anonymous().await?;
        let mut data = ctl.epsv().await?;
        let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
        ctl.start_transfer(&format!("STOR {path}")).await?;
        let mut block = Vec::new();
        for i in 0..len / BLOCK as u64 {
            pattern.block_into(i, &mut block);
            data.stream()?.write_all(&block).await?;
        }
        drop(data);
        ctl.end_transfer().await?;
        let secs = t0.elapsed().as_secs_f64();
        let server_cpu = server.cpu_secs() - s0;
        let client_cpu = generator_cpu() - c0;
        ctl.quit().await?;
        Ok(Transfer {
            secs,
            bytes: len,
            server_cpu,
            client_cpu,
        })
    })
    .await
}

pub(crate) fn checksum_file(path: &std::path::Path) -> io::Result<(u64, u64)> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut sum = Checksum::new();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok((sum.len(), sum.finish()));
        }
        sum.update(&buf[..n]);
    }
}

/// Percentiles of latencies in microseconds.
pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// What a loop of many clients gave in its measured window.
#[derive(Clone, Debug, Default)]
pub struct LoopStats {
    /// Operations completed within the window.
    pub ops: u64,
    /// Failed operations over the whole run (warm-up included).
    pub errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    /// Latency of each operation in the window, microseconds, sorted.
    pub lat_us: Vec<u32>,
    pub client_cpu: f64,
    pub server_cpu: f64,
}

impl LoopStats {
    pub fn rate(&self) -> f64 {
        self.ops as f64 / self.secs
    }
}

#[derive(Default)]
pub(crate) struct Acc {
    ops: u64,
    errors: u64,
    first_error: Option<String>,
    lat_us: Vec<u32>,
}

impl Acc {
    /// Adds another client's counts to these.
    pub(crate) fn merge(&mut self, other: Acc) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.lat_us.extend(other.lat_us);
    }

    /// The figures of a finished loop.
    pub(crate) fn into_stats(
        mut self,
        window: Window,
        client_cpu: f64,
        server_cpu: f64,
    ) -> LoopStats {
        self.lat_us.sort_unstable();
        LoopStats {
            ops: self.ops,
            errors: self.errors,
            first_error: self.first_error,
            secs: (window.end - window.start).as_secs_f64(),
            lat_us: self.lat_us,
            client_cpu,
            server_cpu,
        }
    }

    pub(crate) fn error(&mut self, e: &io::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e.to_string());
        }
    }
}

/// Times of a loop: operations count if they start after `start` and end
/// before `end`.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
}

impl Window {
    pub(crate) fn new(warmup: Duration, measure: Duration) -> Window {
        let start = Instant::now() + warmup;
        Window {
            start,
            end: start + measure,
        }
    }
    fn record(&self, acc: &RefCell<Acc>, t0: Instant, t1: Instant) {
        self.record_in(&mut acc.borrow_mut(), t0, t1);
    }
    /// Counts an operation from `t0` to `t1` if it lies in the window.
    pub(crate) fn record_in(&self, a: &mut Acc, t0: Instant, t1: Instant) {
        if t0 >= self.start && t1 <= self.end {
            a.ops += 1;
            a.lat_us
                .push((t1 - t0).as_micros().min(u32::MAX as u128) as u32);
        }
    }
}

/// Samples server and generator CPU at the window's edges.
async fn cpu_over(window: Window, server: &Server) -> (f64, f64) {
    smol::Timer::at(window.start).await;
    let (s0, c0) = (server.cpu_secs(), generator_cpu());
    smol::Timer::at(window.end).await;
    (server.cpu_secs() - s0, generator_cpu() - c0)
}

/// Runs `clients` tasks of `body` and the CPU sampler, returning the stats.
async fn run_loop<'a, F, Fut>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    clients: usize,
    window: Window,
    body: F,
) -> LoopStats
where
    F: Fn(usize, Rc<RefCell<Acc>>) -> Fut,
    Fut: std::future::Future<Output = ()> + 'a,
{
    let acc = Rc::new(RefCell::new(Acc::default()));
    let tasks: Vec<_> = (0..clients)
        .map(|i| ex.spawn(body(i, acc.clone())))
        .collect();
    let (server_cpu, client_cpu) = cpu_over(window, server).await;
    for t in tasks {
        t.await;
    }
    let mut a = acc.borrow_mut();
    a.lat_us.sort_unstable();
    LoopStats {
        ops: a.ops,
        errors: a.errors,
        first_error: a.first_error.take(),
        secs: (window.end - window.start).as_secs_f64(),
        lat_us: std::mem::take(&mut a.lat_us),
        client_cpu,
        server_cpu,
    }
}

/// One short session: connect, login, TYPE I, EPSV, RETR a 4 KiB file
/// (checked), QUIT.
async fn small_session(
    server: &Server,
    name: &str,
    expected: &[u8],
    buf: &mut [u8],
) -> io::Result<()> {
    let mut ctl = Control::connect(server.addr, None).await?;
    ctl.anonymous().await?;
    let data = ctl.epsv().await?;
    ctl.start_transfer(&format!("RETR {name}")).await?;
    client::drain_expect(data, buf, expected).await?;
    ctl.end_transfer().await?;
    ctl.quit().await
}

/// `clients` clients, each running short sessions back to back.
pub async fn small_sessions<'a>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    files: &'a Files,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> LoopStats {
    let window = Window::new(warmup, measure);
    run_loop(ex, server, clients, window, move |i, acc| async move {
        let mut buf = vec![0u8; 16 << 10];
        let mut k = i;
        loop {
            let t0 = Instant::now();
            if t0 >= window.end {
                break;
            }
            k = (k + 1) % files.small.len();
            let name = format!("small/{k}.bin");
            let r = timeout(
                STEP_TIMEOUT,
                small_session(server, &name, &files.small[k], &mut buf),
            )
            .await;
            match r {
                Ok(()) => window.record(&acc, t0, Instant::now()),
                Err(e) => {
                    acc.borrow_mut().error(&e);
                    smol::Timer::after(Duration::from_millis(10)).await;
                }
            }
        }
    })
    .await
}

/// `clients` logged-in sessions, each running EPSV + RETR of a 4 KiB file
/// back to back (a failed session is replaced by a new one).
pub async fn persistent_transfers<'a>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    files: &'a Files,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> LoopStats {
    let window = Window::new(warmup, measure);
    run_loop(ex, server, clients, window, move |i, acc| async move {
        let mut buf = vec![0u8; 16 << 10];
        let mut k = i;
        let mut session: Option<Control> = None;
        loop {
            if Instant::now() >= window.end {
                break;
            }
            let ctl = match session.take() {
                Some(c) => c,
                None => {
                    let c = timeout(STEP_TIMEOUT, async {
                        let mut c = Control::connect(server.addr, None).await?;
                        c.anonymous().await?;
                        Ok(c)
                    })
                    .await;
                    match c {
                        Ok(c) => c,
                        Err(e) => {
                            acc.borrow_mut().error(&e);
                            smol::Timer::after(Duration::from_millis(10)).await;
                            continue;
                        }
                    }
                }
            };
            k = (k + 1) % files.small.len();
            let expected = &files.small[k];
            let t0 = Instant::now();
            let mut ctl = ctl;
            let r = timeout(STEP_TIMEOUT, async {
                let data = ctl.epsv().await?;
                ctl.start_transfer(&format!("RETR small/{k}.bin")).await?;
                client::drain_expect(data, &mut buf, expected).await?;
                ctl.end_transfer().await
            })
            .await;
            match r {
                Ok(()) => {
                    window.record(&acc, t0, Instant::now());
                    session = Some(ctl);
                }
                Err(e) => {
                    acc.borrow_mut().error(&e);
                    smol::Timer::after(Duration::from_millis(10)).await;
                }
            }
        }
        if let Some(ctl) = session {
            let _ = timeout(STEP_TIMEOUT, ctl.quit()).await;
        }
    })
    .await
}

/// New connections and small downloads timed while the idle sessions are
/// held: how many of each, and the pause between two.
pub const PROBES: usize = 200;
/// Pause between two probes, so that each meets the server idle (this
/// measures latency, not a burst).
pub const PROBE_GAP: Duration = Duration::from_millis(5);

/// Memory the kernel holds, from `/proc/meminfo` and `/proc/net/sockstat`.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelMemory {
    /// `Slab:` of `/proc/meminfo` (struct sock, inodes, files, epoll
    /// entries of every socket are slab objects), KiB.
    pub slab_kib: u64,
    /// `mem` of the `TCP:` line of `/proc/net/sockstat`: pages charged to
    /// TCP socket buffers.
    pub tcp_pages: u64,
}

/// Many idle logged-in sessions held at once.
#[derive(Clone, Debug, Default)]
pub struct ScaleStats {
    /// Sessions asked for.
    pub target: usize,
    /// Sessions that got their `230`.
    pub logged_in: usize,
    /// Sessions that failed to connect or log in.
    pub failed: usize,
    /// The first failure of any step, for the report.
    pub first_error: Option<String>,
    /// Seconds from the first connect to the last `230`.
    pub open_secs: f64,
    /// PSS of the server's process tree before the first session, KiB.
    pub pss_before_kib: u64,
    /// PSS of the server's process tree with every session held, KiB.
    pub pss_after_kib: u64,
    /// Processes in the server's tree with every session held.
    pub processes: usize,
    /// The kernel's memory before the first session and with every
    /// session held (both ends of every connection: generator and server
    /// are on one machine).
    pub kernel_before: KernelMemory,
    /// See [`ScaleStats::kernel_before`].
    pub kernel_after: KernelMemory,
    /// The generator's own `VmRSS` with every session held, KiB.
    pub generator_rss_kib: u64,
    /// Microseconds from connect to `220` of each new connection made
    /// while the others were held, sorted.
    pub greet_us: Vec<u32>,
    /// New connections that failed while the others were held.
    pub greet_errors: usize,
    /// Microseconds of each 4 KiB download (`EPSV`, connect, `RETR`,
    /// checked, `226`) on one more logged-in session while the others
    /// were held, sorted.
    pub retr_us: Vec<u32>,
    /// Downloads that failed while the others were held.
    pub retr_errors: usize,
    /// Held sessions that answered a NOOP after the measurement.
    pub noop_ok: usize,
}

impl ScaleStats {
    /// PSS of the server per logged-in session, KiB.
    pub fn kib_per_session(&self) -> f64 {
        (self.pss_after_kib as f64 - self.pss_before_kib as f64) / self.logged_in.max(1) as f64
    }

    /// Growth of the kernel's slab per held connection (both ends), KiB.
    pub fn kernel_slab_kib_per_session(&self) -> f64 {
        (self.kernel_after.slab_kib as f64 - self.kernel_before.slab_kib as f64)
            / self.logged_in.max(1) as f64
    }

    /// Growth of TCP buffer memory per held connection (both ends), KiB.
    pub fn kernel_tcp_kib_per_session(&self) -> f64 {
        (self.kernel_after.tcp_pages as f64 - self.kernel_before.tcp_pages as f64)
            * procfs::PAGE_KIB as f64
            / self.logged_in.max(1) as f64
    }

    fn error(&mut self, what: &str, e: &io::Error) {
        if self.first_error.is_none() {
            self.first_error = Some(format!("{what}: {e}"));
        }
    }
}

/// `n` sessions connect (from `sources` in turn, `in_flight` at a time)
/// and log in, and stay idle. With all of them held: the server's memory,
/// [`PROBES`] new connections' time to `220`, and [`PROBES`] 4 KiB
/// downloads on one more session. Finally every held session must answer
/// `NOOP`.
pub async fn idle_sessions<'a>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    files: &'a Files,
    n: usize,
    sources: &'a [IpAddr],
    in_flight: usize,
) -> ScaleStats {
    let stats = Rc::new(RefCell::new(ScaleStats {
        target: n,
        ..Default::default()
    }));
    stats.borrow_mut().pss_before_kib = server.pss_kib();
    stats.borrow_mut().kernel_before = procfs::kernel_memory();
    // A few workers take the next session each: one task per session,
    // spawned up front, would hold 100,000 futures at once.
    let held: Rc<RefCell<Vec<Control>>> = Rc::new(RefCell::new(Vec::with_capacity(n)));
    let next = Rc::new(std::cell::Cell::new(0usize));
    let t0 = Instant::now();
    let workers: Vec<_> = (0..in_flight.clamp(1, n.max(1)))
        .map(|_| {
            let (held, next, stats) = (held.clone(), next.clone(), stats.clone());
            ex.spawn(async move {
                loop {
                    let i = next.get();
                    if i >= n {
                        break;
                    }
                    next.set(i + 1);
                    let src = sources[i % sources.len()];
                    let r = timeout(Duration::from_secs(60), async {
                        let mut c = Control::connect(server.addr, Some(src)).await?;
                        c.login("anonymous", "bench@example.org").await?;
                        Ok(c)
                    })
                    .await;
                    match r {
                        Ok(c) => held.borrow_mut().push(c),
                        Err(e) => {
                            let mut s = stats.borrow_mut();
                            s.failed += 1;
                            s.error(&format!("session from {src}"), &e);
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await;
    }
    let mut s = std::mem::take(&mut *stats.borrow_mut());
    s.open_secs = t0.elapsed().as_secs_f64();
    s.logged_in = held.borrow().len();
    // Let forked session processes and allocators settle.
    smol::Timer::after(Duration::from_secs(1)).await;
    s.pss_after_kib = server.pss_kib();
    s.kernel_after = procfs::kernel_memory();
    s.generator_rss_kib = procfs::rss_kib(std::process::id()).unwrap_or(0);
    s.processes = server.pid.map(procfs::tree_len).unwrap_or(0);

    // New sessions' 220.
    for _ in 0..PROBES {
        let t = Instant::now();
        let r = timeout(STEP_TIMEOUT, async {
            let c = Control::connect(server.addr, None).await?;
            let us = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
            drop(c);
            Ok(us)
        })
        .await;
        match r {
            Ok(us) => s.greet_us.push(us),
            Err(e) => {
                s.greet_errors += 1;
                s.error("new session while held", &e);
            }
        }
        smol::Timer::after(PROBE_GAP).await;
    }
    s.greet_us.sort_unstable();

    // 4 KiB downloads on one more session (a new one when one fails).
    let mut buf = vec![0u8; 16 << 10];
    let mut extra: Option<Control> = None;
    for k in 0..PROBES {
        let ctl = match extra.take() {
            Some(c) => Ok(c),
            None => {
                timeout(STEP_TIMEOUT, async {
                    let mut c = Control::connect(server.addr, None).await?;
                    c.anonymous().await?;
                    Ok(c)
                })
                .await
            }
        };
        let mut ctl = match ctl {
            Ok(c) => c,
            Err(e) => {
                s.retr_errors += 1;
                s.error("download session while held", &e);
                smol::Timer::after(PROBE_GAP).await;
                continue;
            }
        };
        let k = k % files.small.len();
        let expected = &files.small[k];
        let t = Instant::now();
        let r = timeout(STEP_TIMEOUT, async {
            let data = ctl.epsv().await?;
            ctl.start_transfer(&format!("RETR small/{k}.bin")).await?;
            client::drain_expect(data, &mut buf, expected).await?;
            ctl.end_transfer().await
        })
        .await;
        match r {
            Ok(()) => {
                s.retr_us
                    .push(t.elapsed().as_micros().min(u32::MAX as u128) as u32);
                extra = Some(ctl);
            }
            Err(e) => {
                s.retr_errors += 1;
                s.error("4 KiB RETR while held", &e);
            }
        }
        smol::Timer::after(PROBE_GAP).await;
    }
    s.retr_us.sort_unstable();
    if let Some(ctl) = extra {
        let _ = timeout(STEP_TIMEOUT, ctl.quit()).await;
    }

    // Every held session answers NOOP, then closes.
    let ok = Rc::new(std::cell::Cell::new(0usize));
    let checkers: Vec<_> = (0..in_flight.max(1))
        .map(|_| {
            let (held, ok) = (held.clone(), ok.clone());
            ex.spawn(async move {
                loop {
                    let Some(mut c) = held.borrow_mut().pop() else {
                        break;
                    };
                    if timeout(Duration::from_secs(30), c.cmd_expect("NOOP", 200))
                        .await
                        .is_ok()
                    {
                        ok.set(ok.get() + 1);
                    }
                }
            })
        })
        .collect();
    for c in checkers {
        c.await;
    }
    s.noop_ok = ok.get();
    s
}

/// NOOP latencies of one session, while 50 clients log in with argon2
/// passwords (and before, as a baseline).
#[derive(Clone, Debug, Default)]
pub struct LoginBurst {
    /// One login's PASS→230 time on an idle server, ms.
    pub single_login_ms: f64,
    pub baseline_us: Vec<u32>,
    pub burst_us: Vec<u32>,
    /// Logins (connect, USER, PASS, 230, QUIT) completed from the start of
    /// the burst to the end of the window, and their times (µs, unsorted).
    pub logins: u64,
    pub login_us: Vec<u32>,
    pub login_errors: u64,
    pub first_error: Option<String>,
    pub secs: f64,
    /// The server's memory, when its process is known: see [`BurstMemory`].
    pub memory: Option<BurstMemory>,
}

/// The server's RSS around a login burst (KiB, from `/proc/PID/status`).
#[derive(Clone, Copy, Debug, Default)]
pub struct BurstMemory {
    /// `VmRSS` before the first login (no hash computed yet).
    pub idle_kib: u64,
    /// `VmHWM` once the burst has ended: the most RSS the server had.
    pub peak_kib: u64,
    /// `VmRSS` 2 s after the burst, every session closed.
    pub after_kib: u64,
    /// Password checks the server runs at once (its default, one per CPU
    /// and at most its worker threads), filled in by the caller.
    pub checks: u64,
    /// Memory of one argon2 check (the hash's `m`), KiB, filled in by the
    /// caller.
    pub argon_kib: u64,
}

impl BurstMemory {
    /// Most peak RSS allowed: idle + checks at once x argon2 memory + 4 MiB.
    pub fn peak_bound_kib(&self) -> u64 {
        self.idle_kib + self.checks * self.argon_kib + 4 * 1024
    }

    /// Most RSS allowed 2 s after the burst: idle + 1 MiB.
    pub fn after_bound_kib(&self) -> u64 {
        self.idle_kib + 1024
    }

    /// Whether both bounds hold.
    pub fn met(&self) -> bool {
        self.peak_kib <= self.peak_bound_kib() && self.after_kib <= self.after_bound_kib()
    }
}

/// How long after a burst the server's RSS is read again.
pub const AFTER_BURST: Duration = Duration::from_secs(2);

async fn noop_loop(ctl: &mut Control, until: Instant) -> io::Result<Vec<u32>> {
    let mut lat = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        timeout(STEP_TIMEOUT, ctl.cmd_expect("NOOP", 200)).await?;
        lat.push(t.elapsed().as_micros() as u32);
    }
    lat.sort_unstable();
    Ok(lat)
}

pub async fn login_burst<'a>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    user: &'a str,
    pass: &'a str,
    clients: usize,
    measure: Duration,
) -> io::Result<LoginBurst> {
    let mut out = LoginBurst::default();
    let idle_kib = server.pid.and_then(procfs::rss_kib);
    let mut ctl = Control::connect(server.addr, None).await?;
    ctl.cmd_expect(&format!("USER {user}"), 331).await?;
    let t = Instant::now();
    ctl.cmd_expect(&format!("PASS {pass}"), 230).await?;
    out.single_login_ms = t.elapsed().as_secs_f64() * 1000.0;
    out.baseline_us = noop_loop(&mut ctl, Instant::now() + Duration::from_secs(1)).await?;
    let burst_start = Instant::now();
    let window = Window::new(Duration::from_millis(200), measure);
    let acc = Rc::new(RefCell::new(Acc::default()));
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let acc = acc.clone();
            ex.spawn(async move {
                while Instant::now() < window.end {
                    let t0 = Instant::now();
                    let r = timeout(Duration::from_secs(30), async {
                        let mut c = Control::connect(server.addr, None).await?;
                        c.login(user, pass).await?;
                        c.quit().await
                    })
                    .await;
                    // Every login that ends in the window counts (a burst
                    // starts them all at once, before the window opens).
                    let t1 = Instant::now();
                    match r {
                        Ok(()) if t1 <= window.end => {
                            let mut a = acc.borrow_mut();
                            a.ops += 1;
                            a.lat_us.push((t1 - t0).as_micros() as u32);
                        }
                        Ok(()) => {}
                        Err(e) => acc.borrow_mut().error(&e),
                    }
                }
            })
        })
        .collect();
    smol::Timer::at(window.start).await;
    out.burst_us = noop_loop(&mut ctl, window.end).await?;
    for t in tasks {
        t.await;
    }
    let _ = ctl.quit().await;
    {
        let a = acc.borrow();
        out.logins = a.ops;
        out.login_us = a.lat_us.clone();
        out.login_us.sort_unstable();
        out.login_errors = a.errors;
        out.first_error = a.first_error.clone();
    }
    out.secs = (window.end - burst_start).as_secs_f64();
    if let (Some(pid), Some(idle_kib)) = (server.pid, idle_kib) {
        let peak_kib = procfs::hwm_kib(pid).unwrap_or(0);
        smol::Timer::after(AFTER_BURST).await;
        out.memory = Some(BurstMemory {
            idle_kib,
            peak_kib,
            after_kib: procfs::rss_kib(pid).unwrap_or(0),
            ..BurstMemory::default()
        });
    }
    Ok(out)
}
