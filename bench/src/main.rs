//! `ftp-bench`: runs ftp-mio and ftp-smol side by side with vsftpd,
//! pure-ftpd and pyftpdlib on loopback and prints a table (and JSON).
//!
//! See BENCHMARKS.md at the workspace root for what each figure means.

mod blocking;
mod ceiling;
mod checksum;
mod client;
mod footprint;
mod json;
mod page_reporting;
mod procfs;
mod proxy_header;
mod report;
mod s3;
mod scenarios;
mod servers;
mod threaded;
mod tls;

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use smol::LocalExecutor;

use checksum::{BLOCK, Pattern, random_bytes};
use scenarios::Files;
use servers::{Kind, Pasv, Programs, Server, Setup, Spec};

/// Runs a future on a fresh single-threaded executor (named `$ex` inside,
/// for spawning) on this thread: the whole load generator is one thread.
macro_rules! run {
    ($ex:ident => $e:expr) => {{
        let $ex = LocalExecutor::new();
        smol::block_on($ex.run($e))
    }};
}

/// Side-by-side FTP server benchmark on loopback.
#[derive(Parser, Debug)]
#[command(name = "ftp-bench", version)]
pub struct Args {
    /// Servers to compare: ftp-mio, ftp-smol (each with 1 thread and one
    /// per core; or ftp-mio/N for N threads; a `+metrics` suffix starts it
    /// with --metrics, a `+rate` suffix with --download-rate and
    /// --upload-rate at 100 GB/s, configured but never reached), vsftpd,
    /// pure-ftpd, pyftpdlib.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ftp-mio,ftp-smol,vsftpd,pure-ftpd,pyftpdlib"
    )]
    servers: Vec<String>,
    /// Figures to measure: retr, retr-tls, stor, small, persistent, scale,
    /// argon2, footprint; and (not by default) the S3 figures s3-retr,
    /// s3-stor, s3-list, s3-small, s3-burst, or all of them as `s3`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "retr,retr-tls,stor,small,persistent,scale,argon2,footprint"
    )]
    figures: Vec<String>,
    /// Passive-port configurations of each server in the loop figures
    /// (sessions/s, transfers/s): `range` (10000-31999, configured) and
    /// `default` (none configured: the server's own default, shown as
    /// NAME:default). The other figures use the range.
    #[arg(long, value_delimiter = ',', default_value = "range,default")]
    pasv: Vec<String>,
    /// How the clients of the RETR, STOR and loop figures run: `async`
    /// (one thread, one executor, every client a task) or `threads` (every
    /// client an OS thread of its own with blocking sockets, as independent
    /// clients behave). The idle-session and login-burst figures always
    /// use `async`.
    #[arg(long, value_enum, default_value_t = Generator::Async)]
    generator: Generator,
    /// Small sizes for a fast check: 64 MiB, 2 s loops, 500 idle sessions, 3 runs.
    #[arg(long)]
    quick: bool,
    /// Also write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Interleaved runs of RETR and STOR per server (median reported) [default: 5, quick 3].
    #[arg(long)]
    runs: Option<usize>,
    /// Size of the big file in MiB [default: 1024, quick 64].
    #[arg(long)]
    size_mib: Option<u64>,
    /// Interleaved rounds of each loop per server (median reported) [default: 3, quick 1].
    #[arg(long)]
    rounds: Option<usize>,
    /// Measured seconds of each loop round (after 1 s of warm-up) [default: 5, quick 2].
    #[arg(long)]
    duration: Option<f64>,
    /// Parallel clients in the loops and the login burst.
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Idle logged-in sessions held at once [default: 10000, quick 500].
    #[arg(long)]
    sessions: Option<usize>,
    /// Folder with the ftp-mio and ftp-smol binaries [default: this program's folder].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Do not run `cargo build` for ftp-mio and ftp-smol (release and
    /// embedded profiles) before measuring; use the binaries already built.
    #[arg(long)]
    no_build: bool,
    /// Folder under which the served files are created [default: /dev/shm, else the temp folder].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    vsftpd: Option<PathBuf>,
    #[arg(long, value_name = "PATH")]
    pure_ftpd: Option<PathBuf>,
    /// Python interpreter with pyftpdlib.
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Record `perf record -g` of each server process during each RETR,
    /// STOR and loop round into DIR (SERVER-FIGURE-RUN.data).
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// With --perf: run this command instead of perf record ({pid} and
    /// {out} are replaced), for example 'strace -c -f -p {pid} -o {out}'.
    #[arg(long, value_name = "CMD", requires = "perf")]
    attach: Option<String>,
    /// Begin every control and passive data connection with a PROXY v2
    /// header (as haproxy's send-proxy-v2), and start ftp-mio and ftp-smol
    /// with --proxy-from 127.0.0.0/8: what reading the header costs. Only
    /// for ftp-mio and ftp-smol, and not with the retr-tls figure.
    #[arg(long)]
    proxy_header: bool,
    /// Internal: be the loopback-ceiling server for FILE.
    #[arg(long, value_name = "FILE", hide = true)]
    serve_sendfile: Option<PathBuf>,
}

/// The load generator's mode (`--generator`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Generator {
    /// One thread, one smol executor, every client a task.
    Async,
    /// Every client an OS thread with blocking sockets.
    Threads,
}

impl Generator {
    /// The name used in the table, the JSON and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Generator::Async => "async",
            Generator::Threads => "threads",
        }
    }
}

/// A `perf record` (or the `--attach` command) of one server during one
/// measurement.
struct Perf(Option<std::process::Child>);

impl Perf {
    fn start(args: &Args, server: &Server, what: &str) -> Perf {
        let (Some(dir), Some(pid)) = (args.perf.as_deref(), server.pid) else {
            return Perf(None);
        };
        let _ = fs::create_dir_all(dir);
        let out = dir.join(format!("{}-{what}.data", server.name.replace('/', "-")));
        let (pid, out) = (pid.to_string(), out.display().to_string());
        let command = args
            .attach
            .as_deref()
            .unwrap_or("perf record -F 999 -g -q -p {pid} -o {out}");
        let mut words = command
            .split_whitespace()
            .map(|w| w.replace("{pid}", &pid).replace("{out}", &out));
        let child = std::process::Command::new(words.next().unwrap_or_default())
            .args(words)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok();
        // perf needs a moment to attach.
        std::thread::sleep(Duration::from_millis(300));
        Perf(child)
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Some(pid) = rustix::process::Pid::from_raw(child.id() as i32) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            }
            let _ = child.wait();
        }
    }
}

/// Settings after applying --quick.
#[derive(Clone, Debug)]
pub struct Params {
    pub runs: usize,
    pub size: u64,
    pub rounds: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub clients: usize,
    pub sessions: usize,
    /// Idle sessions asked for: more than `sessions` when the descriptor
    /// limit capped them.
    pub sessions_asked: usize,
    pub nproc: usize,
}

/// Everything measured for one server configuration.
#[derive(Debug, Default)]
pub struct Result1 {
    pub name: String,
    pub kind: Option<Kind>,
    pub threads: usize,
    pub config: String,
    pub skipped: Option<String>,
    pub retr: Vec<scenarios::Transfer>,
    /// RETR of the big file over explicit FTPS.
    pub retr_tls: Vec<scenarios::Transfer>,
    /// Protocol and cipher suite of the TLS data connection.
    pub tls_suite: Option<String>,
    pub stor: Vec<scenarios::Transfer>,
    pub small: Vec<scenarios::LoopStats>,
    pub persistent: Vec<scenarios::LoopStats>,
    pub scale: Option<scenarios::ScaleStats>,
    pub burst: Option<scenarios::LoginBurst>,
    /// Failures of whole measurements (a big transfer that failed, a
    /// server that would not start).
    pub failures: Vec<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(file) = args.serve_sendfile {
        if let Err(e) = ceiling::serve_forever(&file) {
            eprintln!("ftp-bench --serve-sendfile: {e}");
        }
        return ExitCode::FAILURE;
    }
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut p = Params {
        runs: args.runs.unwrap_or(if args.quick { 3 } else { 5 }),
        size: args.size_mib.unwrap_or(if args.quick { 64 } else { 1024 }) << 20,
        rounds: args.rounds.unwrap_or(if args.quick { 1 } else { 3 }),
        warmup: Duration::from_secs(1),
        measure: Duration::from_secs_f64(args.duration.unwrap_or(if args.quick {
            2.0
        } else {
            5.0
        })),
        clients: args.clients,
        sessions: args
            .sessions
            .unwrap_or(if args.quick { 500 } else { 10_000 }),
        sessions_asked: 0,
        nproc,
    };
    if p.size % BLOCK as u64 != 0 || p.size == 0 {
        eprintln!("ftp-bench: --size-mib must be a positive multiple of 8");
        return ExitCode::FAILURE;
    }
    let fig = |f: &str| args.figures.iter().any(|x| x == f);
    if args.proxy_header {
        let ours = |s: &String| s.starts_with("ftp-mio") || s.starts_with("ftp-smol");
        if !args.servers.iter().all(ours) || fig("retr-tls") {
            eprintln!(
                "ftp-bench: --proxy-header measures ftp-mio and ftp-smol only, without retr-tls"
            );
            return ExitCode::FAILURE;
        }
        proxy_header::enable();
    }
    let load_start = procfs::loadavg();
    eprintln!(
        "ftp-bench: {nproc} cores, load average {:.2} {:.2} {:.2}",
        load_start[0], load_start[1], load_start[2]
    );
    if load_start[0] > 0.5 * nproc as f64 {
        eprintln!("ftp-bench: WARNING: the machine is loaded; timings are unreliable");
    }
    p.sessions_asked = p.sessions;
    if fig("scale") {
        let nofile = raise_nofile(p.sessions);
        let fit = sessions_within(p.sessions, nofile);
        if fit < p.sessions {
            eprintln!(
                "ftp-bench: WARNING: the open-file limit ({nofile}; a hard limit can be raised only by root with CAP_SYS_RESOURCE, and to at most fs.nr_open) holds only {fit} of the {} idle sessions asked for (one descriptor each in the generator and in the server, plus {NOFILE_RESERVE}); the scale figure is CAPPED at {fit} sessions. Raise `ulimit -Hn` (or run with CAP_SYS_RESOURCE) to measure all of them.",
                p.sessions
            );
            p.sessions = fit;
        }
    } else {
        raise_nofile(0);
    }
    let reporting = page_reporting::PageReporting::pause();
    eprintln!("ftp-bench: {}", reporting.describe());
    if let page_reporting::PageReporting::Paused { order } = &reporting {
        eprintln!(
            "ftp-bench: (if this run is interrupted: echo {order} > {})",
            page_reporting::ORDER
        );
    }

    // Programs.
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("."));
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| exe_dir.clone());
    let target_dir = exe_dir.parent().map_or(exe_dir.clone(), Path::to_path_buf);
    let ours_missing = !bin_dir.join("ftp-mio").is_file() || !bin_dir.join("ftp-smol").is_file();
    if args.bin_dir.is_none() && (!args.no_build || ours_missing) {
        if let Err(e) = footprint::cargo_build(&target_dir, "release", &[]) {
            eprintln!("ftp-bench: {e}");
        }
    }
    let found = |name: &str| Some(bin_dir.join(name)).filter(|p| p.is_file());
    let programs = Programs {
        mio: found("ftp-mio"),
        smol: found("ftp-smol"),
        vsftpd: args
            .vsftpd
            .clone()
            .or_else(|| servers::find_program("vsftpd")),
        pure_ftpd: args
            .pure_ftpd
            .clone()
            .or_else(|| servers::find_program("pure-ftpd")),
        python: args.python.clone().or_else(servers::find_python),
    };

    // Passive configurations: the default only where a loop figure (one
    // EPSV per small transfer) can show it.
    let mut pasvs = Vec::new();
    for p in &args.pasv {
        match p.as_str() {
            "range" => pasvs.push(Pasv::Range),
            "default" if fig("small") || fig("persistent") => pasvs.push(Pasv::Default),
            "default" => {}
            other => {
                eprintln!("ftp-bench: unknown --pasv {other:?} (range, default)");
                return ExitCode::FAILURE;
            }
        }
    }

    // Server list.
    let mut specs = Vec::new();
    for name in &args.servers {
        // Suffixes, in any order: +metrics, +rate.
        let (mut name, mut metrics, mut rate) = (name.as_str(), false, false);
        loop {
            if let Some(base) = name.strip_suffix("+metrics") {
                (name, metrics) = (base, true);
            } else if let Some(base) = name.strip_suffix("+rate") {
                (name, rate) = (base, true);
            } else {
                break;
            }
        }
        let plus = format!(
            "{}{}",
            if metrics { "+metrics" } else { "" },
            if rate { "+rate" } else { "" }
        );
        let (base, threads) = match name.split_once('/') {
            Some((b, t)) => (b, t.parse().ok()),
            None => (name, None),
        };
        let kind = match base {
            "ftp-mio" => Kind::Mio,
            "ftp-smol" => Kind::Smol,
            "vsftpd" => Kind::Vsftpd,
            "pure-ftpd" => Kind::PureFtpd,
            "pyftpdlib" => Kind::Pyftpdlib,
            other => {
                eprintln!("ftp-bench: unknown server {other:?}");
                return ExitCode::FAILURE;
            }
        };
        if kind.ours() {
            let list = match threads {
                Some(t) => vec![t],
                None if nproc > 1 => vec![1, nproc],
                None => vec![1],
            };
            for t in list {
                for &pasv in &pasvs {
                    specs.push(Spec {
                        name: format!("{base}/{t}{plus}{}", pasv.suffix()),
                        kind,
                        threads: t,
                        pasv,
                        metrics,
                        rate,
                    });
                }
            }
        } else {
            for &pasv in &pasvs {
                specs.push(Spec {
                    name: format!("{base}{}", pasv.suffix()),
                    kind,
                    threads: 0,
                    pasv,
                    metrics: false,
                    rate: false,
                });
            }
        }
    }
    let mut results: Vec<Result1> = Vec::new();
    let mut runnable = Vec::new();
    for spec in specs {
        let mut r = Result1 {
            name: spec.name.clone(),
            kind: Some(spec.kind),
            threads: spec.threads,
            ..Default::default()
        };
        if let Some(why) = programs.missing(spec.kind) {
            eprintln!("ftp-bench: skipping {}: {why}", spec.name);
            r.skipped = Some(why.into());
        } else {
            runnable.push((spec, results.len()));
        }
        results.push(r);
    }
    if fig("retr") {
        let spec = Spec {
            name: "ceiling".into(),
            kind: Kind::Ceiling,
            threads: 1,
            pasv: Pasv::Range,
            metrics: false,
            rate: false,
        };
        runnable.push((spec, results.len()));
        results.push(Result1 {
            name: "ceiling".into(),
            kind: Some(Kind::Ceiling),
            threads: 1,
            ..Default::default()
        });
    }

    // Served files.
    let data_parent = args.data_dir.clone().unwrap_or_else(|| {
        let shm = PathBuf::from("/dev/shm");
        if shm.is_dir() {
            shm
        } else {
            std::env::temp_dir()
        }
    });
    let data_tmp = match tempfile::Builder::new()
        .prefix("ftp-bench-data-")
        .tempdir_in(&data_parent)
    {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "ftp-bench: cannot create the data folder in {}: {e}",
                data_parent.display()
            );
            return ExitCode::FAILURE;
        }
    };
    let work_tmp = tempfile::Builder::new()
        .prefix("ftp-bench-")
        .tempdir()
        .expect("temp dir");
    let big = fig("retr") || fig("retr-tls") || fig("stor");
    let files = match make_files(data_tmp.path(), p.size, big) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("ftp-bench: cannot write the served files: {e}");
            return ExitCode::FAILURE;
        }
    };
    let big_path = files.root.join(files.big_name);
    let certs = if fig("retr-tls") {
        match tls::Certs::new(work_tmp.path()) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("ftp-bench: cannot make the TLS certificate: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let setup = |slot: u16| Setup {
        programs: &programs,
        data: data_tmp.path(),
        big: &big_path,
        work: work_tmp.path(),
        users: None,
        slot,
        certs: None,
    };
    let mut loads = vec![load_start];

    // Phase 1: every server runs at once; runs are interleaved A B C A B C.
    let interleaved = ["retr", "retr-tls", "stor", "small", "persistent"]
        .iter()
        .any(|f| fig(f));
    if interleaved {
        let mut running: Vec<(Server, usize)> = Vec::new();
        for (slot, (spec, idx)) in runnable.iter().enumerate() {
            // TLS is offered (never required) where the figure wants it.
            let phase1 = Setup {
                certs: certs.as_ref().filter(|_| spec.kind.tls()),
                ..setup(slot as u16)
            };
            match Server::start(spec, &phase1) {
                Ok(server) => {
                    results[*idx].config = server.config.clone();
                    running.push((server, *idx));
                }
                Err(e) => {
                    eprintln!("ftp-bench: {e}");
                    results[*idx].failures.push(e.to_string());
                }
            }
        }
        if fig("retr") {
            for run in 0..p.runs {
                for (server, idx) in running.iter().filter(|(s, _)| s.pasv == Pasv::Range) {
                    let _perf = Perf::start(&args, server, &format!("retr-{run}"));
                    let r = match args.generator {
                        Generator::Async => run!(ex => scenarios::retr_big(server, &files)),
                        Generator::Threads => threaded::retr_big(server, &files),
                    };
                    report_transfer("RETR", run, server, r, &mut results[*idx], |r| &mut r.retr);
                }
            }
            loads.push(procfs::loadavg());
        }
        if let Some(certs) = certs.as_ref().filter(|_| fig("retr-tls")) {
            for run in 0..p.runs {
                for (server, idx) in running.iter().filter(|(s, _)| s.pasv == Pasv::Range) {
                    if !server.kind.tls() {
                        continue;
                    }
                    let _perf = Perf::start(&args, server, &format!("retr-tls-{run}"));
                    let r = tls::retr_big(server, &files, certs).map(|t| {
                        results[*idx].tls_suite = Some(t.suite);
                        t.transfer
                    });
                    report_transfer("RETR/TLS", run, server, r, &mut results[*idx], |r| {
                        &mut r.retr_tls
                    });
                }
            }
            loads.push(procfs::loadavg());
        }
        if fig("stor") {
            for run in 0..p.runs {
                for (server, idx) in running.iter().filter(|(s, _)| s.pasv == Pasv::Range) {
                    if server.kind == Kind::Ceiling {
                        continue;
                    }
                    let name = format!("{}-{run}.bin", server.name.replace('/', "-"));
                    if let Err(e) = scenarios::warm_memory(&files) {
                        eprintln!("ftp-bench: memory warm-up before STOR: {e}");
                    }
                    let _perf = Perf::start(&args, server, &format!("stor-{run}"));
                    let r = match args.generator {
                        Generator::Async => run!(ex => scenarios::stor_big(server, &files, &name)),
                        Generator::Threads => threaded::stor_big(server, &files, &name),
                    };
                    report_transfer("STOR", run, server, r, &mut results[*idx], |r| &mut r.stor);
                }
            }
            loads.push(procfs::loadavg());
        }
        for round in 0..p.rounds {
            for (server, idx) in &running {
                if server.kind == Kind::Ceiling {
                    continue;
                }
                if fig("small") {
                    await_ephemeral_ports();
                    let perf = Perf::start(&args, server, &format!("sessions-{round}"));
                    let s = match args.generator {
                        Generator::Async => run!(ex => scenarios::small_sessions(
                            &ex, server, &files, p.clients, p.warmup, p.measure,
                        )),
                        Generator::Threads => {
                            threaded::small_sessions(server, &files, p.clients, p.warmup, p.measure)
                        }
                    };
                    drop(perf);
                    report_loop("sessions", round, server, &s);
                    results[*idx].small.push(s);
                }
                if fig("persistent") {
                    await_ephemeral_ports();
                    let perf = Perf::start(&args, server, &format!("transfers-{round}"));
                    let s = match args.generator {
                        Generator::Async => run!(ex => scenarios::persistent_transfers(
                            &ex, server, &files, p.clients, p.warmup, p.measure,
                        )),
                        Generator::Threads => threaded::persistent_transfers(
                            server, &files, p.clients, p.warmup, p.measure,
                        ),
                    };
                    drop(perf);
                    report_loop("transfers", round, server, &s);
                    results[*idx].persistent.push(s);
                }
            }
            loads.push(procfs::loadavg());
        }
        for (mut server, idx) in running {
            if !server.alive() {
                results[idx]
                    .failures
                    .push(format!("server died: {}", server.stderr_tail()));
            }
            server.stop();
        }
    }

    // The passive default was measured in the loops; the phases below use
    // the range.
    let runnable: Vec<(Spec, usize)> = runnable
        .into_iter()
        .filter(|(spec, _)| spec.pasv == Pasv::Range)
        .collect();

    // Phase 2: scale, one fresh server at a time.
    if fig("scale") {
        // Fewer per address when the port range is narrower than the default.
        let per_source = local_ports().map_or(SESSIONS_PER_SOURCE, |ports| {
            SESSIONS_PER_SOURCE.min(ports * 9 / 10).max(1)
        });
        let nsrc = p.sessions.div_ceil(per_source).clamp(1, 250);
        for (k, (spec, idx)) in runnable.iter().enumerate() {
            if spec.kind == Kind::Ceiling {
                continue;
            }
            // Each server gets source addresses of its own (127.R.K.2, …):
            // the previous server's sessions, closed by the generator,
            // leave their ports in TIME_WAIT for a minute, and a port in
            // TIME_WAIT is not given to a bind to port 0. R differs from
            // one run of the bench to the next (from the process id), so
            // a run right after another does not walk the ports the other
            // left in TIME_WAIT either (that took 21 s instead of 1 for
            // 19,488 sessions).
            let run_octet = 1 + (std::process::id() % 250) as u8;
            let sources: Vec<IpAddr> = (0..nsrc)
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, run_octet, 1 + k as u8, 2 + i as u8)))
                .collect();
            let server = match Server::start(spec, &setup(100)) {
                Ok(s) => s,
                Err(e) => {
                    results[*idx].failures.push(e.to_string());
                    continue;
                }
            };
            if results[*idx].config.is_empty() {
                results[*idx].config = server.config.clone();
            }
            std::thread::sleep(Duration::from_millis(500));
            let s = run!(ex => scenarios::idle_sessions(&ex, &server, &files, p.sessions, &sources, 32));
            let ms = |v: &[u32], q| scenarios::percentile(v, q);
            eprintln!(
                "  idle        {:<12} {}/{} logged in in {:.1} s from {} addresses, {:.2} KiB PSS each ({} processes); \
                 kernel per session (both ends) slab {:.2} KiB, TCP buffers {:.2} KiB; generator RSS {} MiB",
                server.name,
                s.logged_in,
                s.target,
                s.open_secs,
                sources.len(),
                s.kib_per_session(),
                s.processes,
                s.kernel_slab_kib_per_session(),
                s.kernel_tcp_kib_per_session(),
                s.generator_rss_kib / 1024,
            );
            eprintln!(
                "  idle        {:<12} while held: new 220 p50 {:.2} p99 {:.2} max {:.2} ms ({} errors); 4 KiB RETR p50 {:.2} p99 {:.2} max {:.2} ms ({} errors); {} answered NOOP{}",
                server.name,
                ms(&s.greet_us, 0.5),
                ms(&s.greet_us, 0.99),
                ms(&s.greet_us, 1.0),
                s.greet_errors,
                ms(&s.retr_us, 0.5),
                ms(&s.retr_us, 0.99),
                ms(&s.retr_us, 1.0),
                s.retr_errors,
                s.noop_ok,
                s.first_error
                    .as_deref()
                    .map(|e| format!(" (first error: {e})"))
                    .unwrap_or_default(),
            );
            results[*idx].scale = Some(s);
            drop(server);
            loads.push(procfs::loadavg());
        }
    }

    // Phase 3: argon2 login burst, ours only.
    if fig("argon2") {
        let users = work_tmp.path().join("users.toml");
        let pass = "bench-password";
        for (spec, idx) in &runnable {
            if !spec.kind.ours() {
                continue;
            }
            let prog = if spec.kind == Kind::Mio {
                &programs.mio
            } else {
                &programs.smol
            };
            if !users.exists() {
                if let Err(e) = write_users(prog.as_deref().unwrap(), &users, pass) {
                    eprintln!("ftp-bench: cannot write the users file: {e}");
                    break;
                }
            }
            let with_users = Setup {
                users: Some(&users),
                ..setup(200)
            };
            let server = match Server::start(spec, &with_users) {
                Ok(s) => s,
                Err(e) => {
                    results[*idx].failures.push(e.to_string());
                    continue;
                }
            };
            let r = run!(ex => scenarios::login_burst(
                &ex, &server, "bench", pass, p.clients, p.measure,
            ));
            match r {
                Ok(mut b) => {
                    eprintln!(
                        "  argon2      {:<12} one login {:.1} ms; NOOP p99 {:.2} ms idle, {:.2} ms during {} logins ({:.0}/s, {} errors)",
                        server.name,
                        b.single_login_ms,
                        scenarios::percentile(&b.baseline_us, 0.99),
                        scenarios::percentile(&b.burst_us, 0.99),
                        b.logins,
                        b.logins as f64 / b.secs,
                        b.login_errors,
                    );
                    if let Some(m) = &mut b.memory {
                        // The daemons' default: one check per CPU, at most
                        // their worker threads (2 per loop, 4 to 64) less one.
                        m.checks = nproc.min((spec.threads * 2).clamp(4, 64) - 1) as u64;
                        m.argon_kib = argon_kib(&users).unwrap_or(0);
                        eprintln!(
                            "  argon2 RSS  {:<12} idle {} KiB, peak {} KiB (bound {} = idle + {} checks x {} KiB + 4 MiB), {} s after {} KiB (bound {})",
                            server.name,
                            m.idle_kib,
                            m.peak_kib,
                            m.peak_bound_kib(),
                            m.checks,
                            m.argon_kib,
                            scenarios::AFTER_BURST.as_secs(),
                            m.after_kib,
                            m.after_bound_kib(),
                        );
                    }
                    results[*idx].burst = Some(b);
                }
                Err(e) => results[*idx].failures.push(format!("argon2 burst: {e}")),
            }
        }
        loads.push(procfs::loadavg());
    }

    // Phase 4: footprint.
    let foot = if fig("footprint") {
        footprint::measure(&target_dir, &bin_dir, data_tmp.path(), !args.no_build)
    } else {
        Vec::new()
    };

    // Phase 5: S3, ours against rclone on one SeaweedFS store.
    let s3 = s3::any_wanted(&args.figures).then(|| {
        s3::run(&s3::run::Inputs {
            figures: &args.figures,
            p: &p,
            programs: &programs,
            ours: runnable
                .iter()
                .filter(|(spec, _)| spec.kind.ours())
                .map(|(spec, _)| spec.clone())
                .collect(),
            data_parent: &data_parent,
            work: work_tmp.path(),
            small: &files.small,
        })
    });
    if s3.is_some() {
        loads.push(procfs::loadavg());
    }

    let machine = report::Machine {
        nproc,
        loads,
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned(),
        cpu: fs::read_to_string("/proc/cpuinfo")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_default(),
        data_dir: data_parent.display().to_string(),
        page_reporting: reporting.describe(),
        generator: args.generator,
    };
    let command: Vec<String> = std::env::args().collect();
    let local = args.figures.iter().any(|f| !f.starts_with("s3"));
    let mut text = if local {
        report::table(&results, &foot, &p, &machine)
    } else {
        String::new()
    };
    if let Some(s3) = &s3 {
        text.push_str(&s3::report::table(s3, p.runs, p.rounds));
        if !local {
            let loads: Vec<String> = machine
                .loads
                .iter()
                .map(|l| format!("{:.2}", l[0]))
                .collect();
            text.push_str(&format!(
                "\nmachine: {} cores ({}), Linux {}, {}; 1-min load average at start and after the S3 figures: {}\n",
                machine.nproc,
                machine.cpu,
                machine.kernel,
                machine.page_reporting,
                loads.join(" ")
            ));
        }
    }
    print!("{text}");
    let _ = std::io::stdout().flush();
    if let Some(path) = &args.json {
        let mut j = report::json(&results, &foot, &p, &machine, &command.join(" "));
        if let Some(s3) = &s3 {
            j.set("s3", s3::report::json(s3));
        }
        if let Err(e) = fs::write(path, j.render()) {
            eprintln!("ftp-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}

fn report_transfer(
    what: &str,
    run: usize,
    server: &Server,
    r: std::io::Result<scenarios::Transfer>,
    result: &mut Result1,
    list: fn(&mut Result1) -> &mut Vec<scenarios::Transfer>,
) {
    match r {
        Ok(t) => {
            eprintln!(
                "  {what:<11} {:<12} run {run}: {:>7.0} MB/s  server CPU {:.2} s  generator CPU {:.2} s",
                server.name,
                t.mb_per_sec(),
                t.server_cpu,
                t.client_cpu
            );
            list(result).push(t);
        }
        Err(e) => {
            eprintln!("  {what:<11} {:<12} run {run}: FAILED: {e}", server.name);
            result.failures.push(format!("{what} run {run}: {e}"));
        }
    }
}

/// Fewest free ephemeral ports a loop round starts with: far more than
/// its clients' connections need at once (a port taken by `connect` is
/// shared by connections to different destinations).
const EPHEMERAL_PORTS_FREE_MIN: usize = 1024;

/// Waits (at most 65 s, a `TIME_WAIT`'s minute and some) until the
/// kernel's ephemeral range has [`EPHEMERAL_PORTS_FREE_MIN`] ports that no
/// socket holds. A server that binds its passive listeners in that range
/// (pyftpdlib by default asks for port 0 on every `PASV`) leaves the ports
/// it used in `TIME_WAIT` for a minute, and a client's `connect` cannot
/// use a port held by a bound socket: the next server measured would see
/// its clients fail with `EADDRNOTAVAIL`, a fault of the machine the
/// servers share, not its own (clients on other machines have their own
/// ports).
fn await_ephemeral_ports() {
    let start = Instant::now();
    let mut said = false;
    while let Some((free, total)) = procfs::ephemeral_ports_free() {
        if free >= EPHEMERAL_PORTS_FREE_MIN || start.elapsed() > Duration::from_secs(65) {
            if said {
                eprintln!(
                    "ftp-bench: {free} of {total} ephemeral ports free after {:.0} s",
                    start.elapsed().as_secs_f64()
                );
            }
            return;
        }
        if !said {
            eprintln!(
                "ftp-bench: only {free} of {total} ephemeral ports free (the last server's TIME_WAIT sockets): waiting for them to expire"
            );
            said = true;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Prints one round of a loop figure.
fn report_loop(what: &str, round: usize, server: &Server, s: &scenarios::LoopStats) {
    eprintln!(
        "  {what:<11} {:<12} round {round}: {:>8.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}{}  (generator CPU {:.0}%, server CPU {:.0}%)",
        server.name,
        s.rate(),
        scenarios::percentile(&s.lat_us, 0.5),
        scenarios::percentile(&s.lat_us, 0.99),
        s.errors,
        s.first_error
            .as_deref()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default(),
        100.0 * s.client_cpu / s.secs,
        100.0 * s.server_cpu / s.secs,
    );
}

/// Idle sessions per loopback source address in the scale figure. The
/// generator binds each to its source with port 0, and the kernel gives
/// such binds a port of `ip_local_port_range` (32768-60999 by default:
/// 28,232 ports) that no other socket on that address holds; 16,000 keeps
/// well below that (100,000 sessions come from 7 addresses, 14,286 each).
const SESSIONS_PER_SOURCE: usize = 16_000;

/// Ports of `net.ipv4.ip_local_port_range`, which the kernel picks a
/// bound socket's port from.
fn local_ports() -> Option<usize> {
    let text = fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<usize>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.checked_sub(lo)? + 1)
}

/// Descriptors the generator keeps besides one per idle session: the
/// probes' connections, the served files, pipes to the servers, stdio.
const NOFILE_SLACK: u64 = 10_000;

/// Raises the descriptor limits (soft and, as root, hard) so that the
/// generator and the servers it starts (which inherit them) can hold
/// `sessions` idle sessions: each of them holds one descriptor per
/// session, plus [`NOFILE_SLACK`]; at most `fs.nr_open`. Returns the soft
/// limit in force afterwards (`u64::MAX` for unlimited).
fn raise_nofile(sessions: usize) -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let want = (sessions as u64 + NOFILE_SLACK).max(65_536);
    let nr_open = fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1 << 20);
    let want = want.min(nr_open);
    let now = getrlimit(Resource::Nofile);
    let hard = now.maximum.unwrap_or(u64::MAX);
    let target = if hard >= want {
        Rlimit {
            current: Some(want.max(now.current.unwrap_or(0).min(hard))),
            maximum: now.maximum,
        }
    } else {
        // Raising the hard limit needs CAP_SYS_RESOURCE (root).
        Rlimit {
            current: Some(want),
            maximum: Some(want),
        }
    };
    if setrlimit(Resource::Nofile, target).is_err() {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: now.maximum,
                maximum: now.maximum,
            },
        );
    }
    let after = getrlimit(Resource::Nofile);
    eprintln!(
        "ftp-bench: open-file limit {} (hard {}; wanted {want} for {sessions} idle sessions, fs.nr_open {nr_open})",
        after.current.map_or("unlimited".into(), |v| v.to_string()),
        after.maximum.map_or("unlimited".into(), |v| v.to_string())
    );
    after.current.unwrap_or(u64::MAX)
}

/// Descriptors a process needs besides one per idle session when the
/// limit is tight: a server's listeners, event loops, wakers, worker
/// threads, logs and passive listeners (ftp-mio and ftp-smol reserve 64);
/// the generator's probe connections and pipes.
const NOFILE_RESERVE: u64 = 512;

/// The idle sessions that fit in a descriptor limit of `nofile` (in the
/// generator and in each server): all of `sessions`, or fewer.
fn sessions_within(sessions: usize, nofile: u64) -> usize {
    let fit = nofile.saturating_sub(NOFILE_RESERVE);
    sessions.min(usize::try_from(fit).unwrap_or(usize::MAX))
}

/// Writes the served tree: `big.bin`, `small/0..99.bin` (4 KiB each) and a
/// world-writable `upload/` (owned by `ftp` when that user exists).
fn make_files(root: &Path, size: u64, big: bool) -> std::io::Result<Files> {
    servers::make_readable(root)?;
    let pattern = Pattern::new();
    let big_name = "big.bin";
    let (mut len, mut sum) = (0, 0);
    if big {
        let mut f =
            std::io::BufWriter::with_capacity(1 << 20, fs::File::create(root.join(big_name))?);
        let mut block = Vec::new();
        for i in 0..size / BLOCK as u64 {
            pattern.block_into(i, &mut block);
            f.write_all(&block)?;
        }
        f.flush()?;
        (len, sum) = pattern.expected(size);
    }
    let small_dir = root.join("small");
    fs::create_dir_all(&small_dir)?;
    servers::make_readable(&small_dir)?;
    let mut small = Vec::new();
    for i in 0..100 {
        let bytes = random_bytes(4096, 1000 + i);
        fs::write(small_dir.join(format!("{i}.bin")), &bytes)?;
        small.push(bytes);
    }
    let upload = root.join("upload");
    fs::create_dir_all(&upload)?;
    fs::set_permissions(&upload, fs::Permissions::from_mode(0o777))?;
    if let Some((uid, gid)) = servers::ftp_ids() {
        let _ = std::os::unix::fs::chown(&upload, Some(uid), Some(gid));
    }
    Ok(Files {
        root: root.to_path_buf(),
        big_name,
        big_len: len,
        big_sum: sum,
        pattern,
        small,
    })
}

/// A users file with one account `bench` (argon2 hash from the daemon's
/// own `hash-password`).
/// The memory cost (`m=`, KiB) of the first hash in a users file.
fn argon_kib(users: &Path) -> Option<u64> {
    let text = fs::read_to_string(users).ok()?;
    let params = text.split("m=").nth(1)?;
    params.split(',').next()?.parse().ok()
}

fn write_users(prog: &Path, path: &Path, pass: &str) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let mut child = Command::new(prog)
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{pass}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !hash.starts_with("$argon2") {
        return Err(std::io::Error::other(format!(
            "hash-password printed {hash:?}"
        )));
    }
    fs::write(
        path,
        format!("[[user]]\nname = \"bench\"\npassword = \"{hash}\"\n"),
    )
}
