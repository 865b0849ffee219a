//! The results table, the targets of issue 7 with pass/fail, and JSON.

use std::fmt::Write;

use crate::footprint::Footprint;
use crate::json::Json;
use crate::scenarios::{LoopStats, PROBES, percentile};
use crate::servers::Kind;
use crate::{Params, Result1};

pub struct Machine {
    pub nproc: usize,
    /// Load averages sampled at the start and after each phase.
    pub loads: Vec<[f64; 3]>,
    pub kernel: String,
    pub cpu: String,
    pub data_dir: String,
    /// What the bench found and did about free page reporting.
    pub page_reporting: String,
    /// How the generator's clients ran (`--generator`).
    pub generator: crate::Generator,
}

/// The median of the finite values of `v` (`None` if there is none).
pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// The figures of one server, reduced from its runs.
#[derive(Default, Clone)]
pub struct Summary {
    pub retr_mbps: Option<f64>,
    pub retr_cpu_per_gib: Option<f64>,
    pub retr_gen_cpu: Option<f64>,
    pub retr_tls_mbps: Option<f64>,
    pub retr_tls_cpu_per_gib: Option<f64>,
    pub retr_tls_gen_cpu: Option<f64>,
    pub stor_mbps: Option<f64>,
    pub stor_cpu_per_gib: Option<f64>,
    pub sessions: Option<f64>,
    pub sess_p50: Option<f64>,
    pub sess_p99: Option<f64>,
    pub sess_errors: Option<u64>,
    pub sess_gen_cpu: Option<f64>,
    pub sess_server_cpu: Option<f64>,
    /// Server CPU per session, µs (all rounds' CPU over all their sessions).
    pub sess_cpu_us: Option<f64>,
    pub transfers: Option<f64>,
    pub tr_p99: Option<f64>,
    pub tr_errors: Option<u64>,
    pub tr_gen_cpu: Option<f64>,
    pub tr_server_cpu: Option<f64>,
    /// Server CPU per transfer, µs.
    pub tr_cpu_us: Option<f64>,
    pub idle_ok: Option<(usize, usize, usize)>,
    pub idle_kib: Option<f64>,
    pub idle_greet_p50: Option<f64>,
    pub idle_greet_p99: Option<f64>,
    pub idle_greet_errors: Option<usize>,
    pub idle_retr_p50: Option<f64>,
    pub idle_retr_p99: Option<f64>,
    pub idle_retr_errors: Option<usize>,
    pub login_ms: Option<f64>,
    pub noop_p99_idle: Option<f64>,
    pub noop_p99_burst: Option<f64>,
    pub logins_per_s: Option<f64>,
    pub login_p99: Option<f64>,
    pub login_errors: Option<u64>,
    pub burst_memory: Option<crate::scenarios::BurstMemory>,
}

/// The figures of a loop scenario, reduced over its rounds.
#[derive(Default)]
struct LoopSummary {
    rate: Option<f64>,
    p50: Option<f64>,
    p99: Option<f64>,
    errors: Option<u64>,
    generator_cpu: Option<f64>,
    server_cpu: Option<f64>,
    cpu_us_per_op: Option<f64>,
}

fn loops(runs: &[LoopStats]) -> LoopSummary {
    if runs.is_empty() {
        return LoopSummary::default();
    }
    let mut lat: Vec<u32> = runs.iter().flat_map(|r| r.lat_us.iter().copied()).collect();
    lat.sort_unstable();
    LoopSummary {
        rate: median(runs.iter().map(LoopStats::rate).collect()),
        p50: Some(percentile(&lat, 0.5)),
        p99: Some(percentile(&lat, 0.99)),
        errors: Some(runs.iter().map(|r| r.errors).sum()),
        generator_cpu: runs
            .iter()
            .map(|r| 100.0 * r.client_cpu / r.secs)
            .reduce(f64::max),
        server_cpu: median(runs.iter().map(|r| 100.0 * r.server_cpu / r.secs).collect()),
        cpu_us_per_op: cpu_per_op(runs),
    }
}

/// Server CPU per operation over all rounds, µs.
fn cpu_per_op(runs: &[LoopStats]) -> Option<f64> {
    let ops: u64 = runs.iter().map(|r| r.ops).sum();
    (ops > 0).then(|| 1e6 * runs.iter().map(|r| r.server_cpu).sum::<f64>() / ops as f64)
}

pub fn summarize(r: &Result1) -> Summary {
    let mut s = Summary::default();
    let gib = |t: &[crate::scenarios::Transfer]| {
        t.iter().map(|t| t.bytes as f64).sum::<f64>() / (1u64 << 30) as f64
    };
    if !r.retr.is_empty() {
        s.retr_mbps = median(r.retr.iter().map(|t| t.mb_per_sec()).collect());
        s.retr_cpu_per_gib = Some(r.retr.iter().map(|t| t.server_cpu).sum::<f64>() / gib(&r.retr));
        s.retr_gen_cpu = median(
            r.retr
                .iter()
                .map(|t| 100.0 * t.client_cpu / t.secs)
                .collect(),
        );
    }
    if !r.retr_tls.is_empty() {
        s.retr_tls_mbps = median(r.retr_tls.iter().map(|t| t.mb_per_sec()).collect());
        s.retr_tls_cpu_per_gib =
            Some(r.retr_tls.iter().map(|t| t.server_cpu).sum::<f64>() / gib(&r.retr_tls));
        s.retr_tls_gen_cpu = median(
            r.retr_tls
                .iter()
                .map(|t| 100.0 * t.client_cpu / t.secs)
                .collect(),
        );
    }
    if !r.stor.is_empty() {
        s.stor_mbps = median(r.stor.iter().map(|t| t.mb_per_sec()).collect());
        s.stor_cpu_per_gib = Some(r.stor.iter().map(|t| t.server_cpu).sum::<f64>() / gib(&r.stor));
    }
    let small = loops(&r.small);
    (s.sessions, s.sess_p50, s.sess_p99, s.sess_errors) =
        (small.rate, small.p50, small.p99, small.errors);
    (s.sess_gen_cpu, s.sess_server_cpu) = (small.generator_cpu, small.server_cpu);
    s.sess_cpu_us = small.cpu_us_per_op;
    let persistent = loops(&r.persistent);
    (s.transfers, s.tr_p99, s.tr_errors) = (persistent.rate, persistent.p99, persistent.errors);
    (s.tr_gen_cpu, s.tr_server_cpu) = (persistent.generator_cpu, persistent.server_cpu);
    s.tr_cpu_us = persistent.cpu_us_per_op;
    if let Some(sc) = &r.scale {
        s.idle_ok = Some((sc.logged_in, sc.target, sc.noop_ok));
        s.idle_kib = Some(sc.kib_per_session());
        s.idle_greet_p50 = Some(percentile(&sc.greet_us, 0.5));
        s.idle_greet_p99 = Some(percentile(&sc.greet_us, 0.99));
        s.idle_greet_errors = Some(sc.greet_errors);
        s.idle_retr_p50 = Some(percentile(&sc.retr_us, 0.5));
        s.idle_retr_p99 = Some(percentile(&sc.retr_us, 0.99));
        s.idle_retr_errors = Some(sc.retr_errors);
    }
    if let Some(b) = &r.burst {
        s.login_ms = Some(b.single_login_ms);
        s.noop_p99_idle = Some(percentile(&b.baseline_us, 0.99));
        s.noop_p99_burst = Some(percentile(&b.burst_us, 0.99));
        s.logins_per_s = Some(b.logins as f64 / b.secs);
        s.login_p99 = Some(percentile(&b.login_us, 0.99));
        s.login_errors = Some(b.login_errors);
        s.burst_memory = b.memory;
    }
    s
}

fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".into(),
    }
}

/// Two figures as `A/B`, two decimals each.
fn pair(a: Option<f64>, b: Option<f64>) -> String {
    if a.is_none() && b.is_none() {
        return "-".into();
    }
    format!("{}/{}", f(a, 2), f(b, 2))
}

fn short(name: &str) -> String {
    name.replace("ftp-", "")
}

pub fn table(results: &[Result1], foot: &[Footprint], p: &Params, m: &Machine) -> String {
    let sums: Vec<Summary> = results.iter().map(summarize).collect();
    let ceiling = results
        .iter()
        .zip(&sums)
        .find(|(r, _)| r.kind == Some(Kind::Ceiling))
        .and_then(|(_, s)| s.retr_mbps);
    let size = if p.size >= 1 << 30 {
        format!("{} GiB", p.size >> 30)
    } else {
        format!("{} MiB", p.size >> 20)
    };
    type Row = (String, Box<dyn Fn(&Result1, &Summary) -> String>);
    let rows: Vec<Row> = vec![
        (
            format!("RETR {size} MB/s (median of {})", p.runs),
            Box::new(|_, s| f(s.retr_mbps, 0)),
        ),
        (
            "RETR % of loopback ceiling".into(),
            Box::new(move |_, s| f(s.retr_mbps.zip(ceiling).map(|(a, c)| 100.0 * a / c), 0)),
        ),
        (
            "RETR server CPU s/GiB".into(),
            Box::new(|_, s| f(s.retr_cpu_per_gib, 2)),
        ),
        (
            "RETR generator CPU %".into(),
            Box::new(|_, s| f(s.retr_gen_cpu, 0)),
        ),
        (
            format!("RETR {size} over TLS MB/s (median of {})", p.runs),
            Box::new(|_, s| f(s.retr_tls_mbps, 0)),
        ),
        (
            "  server CPU s/GiB".into(),
            Box::new(|_, s| f(s.retr_tls_cpu_per_gib, 2)),
        ),
        (
            "  generator CPU %".into(),
            Box::new(|_, s| f(s.retr_tls_gen_cpu, 0)),
        ),
        (
            format!("STOR {size} MB/s (median of {})", p.runs),
            Box::new(|_, s| f(s.stor_mbps, 0)),
        ),
        (
            "STOR server CPU s/GiB".into(),
            Box::new(|_, s| f(s.stor_cpu_per_gib, 2)),
        ),
        (
            format!("sessions/s ({} clients)", p.clients),
            Box::new(|_, s| f(s.sessions, 0)),
        ),
        (
            "  server CPU us per session".into(),
            Box::new(|_, s| f(s.sess_cpu_us, 0)),
        ),
        ("  session p50 ms".into(), Box::new(|_, s| f(s.sess_p50, 2))),
        ("  session p99 ms".into(), Box::new(|_, s| f(s.sess_p99, 2))),
        (
            "  errors".into(),
            Box::new(|_, s| s.sess_errors.map_or("-".into(), |e| e.to_string())),
        ),
        (
            "  server CPU % (of 1 core)".into(),
            Box::new(|_, s| f(s.sess_server_cpu, 0)),
        ),
        (
            "  generator CPU % (max)".into(),
            Box::new(|_, s| f(s.sess_gen_cpu, 0)),
        ),
        (
            format!("transfers/s ({} sessions)", p.clients),
            Box::new(|_, s| f(s.transfers, 0)),
        ),
        (
            "  server CPU us per transfer".into(),
            Box::new(|_, s| f(s.tr_cpu_us, 1)),
        ),
        ("  transfer p99 ms".into(), Box::new(|_, s| f(s.tr_p99, 2))),
        (
            "  errors".into(),
            Box::new(|_, s| s.tr_errors.map_or("-".into(), |e| e.to_string())),
        ),
        (
            "  server CPU % (of 1 core)".into(),
            Box::new(|_, s| f(s.tr_server_cpu, 0)),
        ),
        (
            "  generator CPU % (max)".into(),
            Box::new(|_, s| f(s.tr_gen_cpu, 0)),
        ),
        (
            if p.sessions < p.sessions_asked {
                format!("idle sessions logged in (of {}*)", p.sessions)
            } else {
                format!("idle sessions logged in (of {})", p.sessions)
            },
            Box::new(|_, s| s.idle_ok.map_or("-".into(), |(ok, _, _)| ok.to_string())),
        ),
        (
            "  still answering NOOP".into(),
            Box::new(|_, s| s.idle_ok.map_or("-".into(), |(_, _, n)| n.to_string())),
        ),
        (
            "  PSS KiB per idle session".into(),
            Box::new(|_, s| f(s.idle_kib, 1)),
        ),
        (
            "  new session's 220 ms p50/p99".into(),
            Box::new(|_, s| pair(s.idle_greet_p50, s.idle_greet_p99)),
        ),
        (
            "  4 KiB RETR ms p50/p99".into(),
            Box::new(|_, s| pair(s.idle_retr_p50, s.idle_retr_p99)),
        ),
        (
            "argon2 login ms (one, idle)".into(),
            Box::new(|_, s| f(s.login_ms, 1)),
        ),
        (
            "  NOOP p99 ms, idle".into(),
            Box::new(|_, s| f(s.noop_p99_idle, 2)),
        ),
        (
            format!("  NOOP p99 ms, {} logging in", p.clients),
            Box::new(|_, s| f(s.noop_p99_burst, 2)),
        ),
        (
            "  login p99 ms in the burst".into(),
            Box::new(|_, s| f(s.login_p99, 0)),
        ),
        (
            "  RSS MiB idle/peak/2 s after".into(),
            Box::new(|_, s| match s.burst_memory {
                Some(m) => {
                    let mib = |kib: u64| kib as f64 / 1024.0;
                    format!(
                        "{:.1}/{:.0}/{:.1}",
                        mib(m.idle_kib),
                        mib(m.peak_kib),
                        mib(m.after_kib)
                    )
                }
                None => "-".into(),
            }),
        ),
        (
            "  logins/s (errors)".into(),
            Box::new(|_, s| match (s.logins_per_s, s.login_errors) {
                (Some(l), Some(e)) => format!("{l:.0} ({e})"),
                _ => "-".into(),
            }),
        ),
    ];
    let width = 34;
    let col = results
        .iter()
        .map(|r| short(&r.name).len().max(9))
        .collect::<Vec<_>>();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ngenerator: {} (RETR, STOR and the loops; idle sessions and the login burst: async)",
        m.generator.name()
    );
    let _ = write!(out, "{:<width$}", "");
    for (r, w) in results.iter().zip(&col) {
        let _ = write!(out, " {:>w$}", short(&r.name));
    }
    let _ = writeln!(out);
    for (label, cell) in &rows {
        let cells: Vec<String> = results
            .iter()
            .zip(&sums)
            .map(|(r, s)| {
                if r.skipped.is_some() {
                    "skipped".into()
                } else {
                    cell(r, s)
                }
            })
            .collect();
        if cells.iter().all(|c| c == "-" || c == "skipped") {
            continue;
        }
        let _ = write!(out, "{label:<width$}");
        for (c, w) in cells.iter().zip(&col) {
            let _ = write!(out, " {c:>w$}");
        }
        let _ = writeln!(out);
    }
    if p.sessions < p.sessions_asked {
        let _ = writeln!(
            out,
            "* capped: {} idle sessions asked for, {} fit in the open-file limit",
            p.sessions_asked, p.sessions
        );
    }
    for r in results {
        if let Some(why) = &r.skipped {
            let _ = writeln!(out, "skipped {}: {why}", r.name);
        }
        for fail in &r.failures {
            let _ = writeln!(out, "FAILED {}: {fail}", r.name);
        }
    }
    if !foot.is_empty() {
        let _ = writeln!(
            out,
            "\nfootprint                                                 bytes   idle VmRSS KiB"
        );
        for fp in foot {
            if fp.bytes == 0 {
                let _ = writeln!(
                    out,
                    "  {:<8} {:<21} {:<22} {}",
                    fp.program,
                    fp.profile,
                    fp.features,
                    first_line(&fp.note)
                );
                continue;
            }
            let _ = writeln!(
                out,
                "  {:<8} {:<21} {:<22} {:>10}   {:>6}{}",
                fp.program,
                fp.profile,
                fp.features,
                fp.bytes,
                fp.idle_rss_kib.map_or("-".into(), |v| v.to_string()),
                if fp.note.is_empty() {
                    String::new()
                } else {
                    format!("   ({})", first_line(&fp.note))
                }
            );
        }
    }
    let _ = writeln!(out, "\ntargets (ours / best anchor in this run):");
    for line in targets(results, &sums, foot, ceiling, m.generator, p.sessions_asked) {
        let _ = writeln!(out, "  {line}");
    }
    let loads: Vec<String> = m.loads.iter().map(|l| format!("{:.2}", l[0])).collect();
    let _ = writeln!(
        out,
        "\nmachine: {} cores ({}), Linux {}, data in {}, {}; 1-min load average at start and after each phase: {}",
        m.nproc,
        m.cpu,
        m.kernel,
        m.data_dir,
        m.page_reporting,
        loads.join(" ")
    );
    out
}

/// The best anchor's value of a figure.
fn best_anchor(
    results: &[Result1],
    sums: &[Summary],
    get: impl Fn(&Summary) -> Option<f64>,
    lower_is_better: bool,
) -> Option<(String, f64)> {
    results
        .iter()
        .zip(sums)
        .filter(|(r, _)| r.kind.is_some_and(Kind::anchor))
        .filter_map(|(r, s)| {
            get(s)
                .filter(|v| v.is_finite())
                .map(|v| (r.name.clone(), v))
        })
        .reduce(|a, b| {
            let better = if lower_is_better {
                b.1 < a.1
            } else {
                b.1 > a.1
            };
            if better { b } else { a }
        })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

/// Most PSS per idle session (KiB) of the scale figure's target.
pub const IDLE_KIB_TARGET: f64 = 1.5;
/// Most p99 (ms) of a new session's `220` while the idle sessions are held.
pub const GREET_P99_TARGET_MS: f64 = 5.0;
/// Most p99 (ms) of a 4 KiB download while the idle sessions are held.
pub const RETR_P99_TARGET_MS: f64 = 10.0;

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One line per (target, our server configuration).
pub fn targets(
    results: &[Result1],
    sums: &[Summary],
    foot: &[Footprint],
    ceiling: Option<f64>,
    generator: crate::Generator,
    sessions_asked: usize,
) -> Vec<String> {
    let tag = generator.name();
    let mut lines = Vec::new();
    let ours: Vec<(&Result1, &Summary)> = results
        .iter()
        .zip(sums)
        .filter(|(r, _)| r.kind.is_some_and(Kind::ours) && r.skipped.is_none())
        .collect();
    type Figure = fn(&Summary) -> Option<f64>;
    // Each rate with the server CPU per operation beside it: ours must
    // reach `want` times the fastest anchor's rate at no more than
    // `cpu_want` times that anchor's CPU per operation.
    let ratio_targets: [(&str, Figure, f64, Figure, f64); 4] = [
        (
            "RETR MB/s",
            |s| s.retr_mbps,
            1.0,
            |s| s.retr_cpu_per_gib,
            1.0,
        ),
        (
            "STOR MB/s",
            |s| s.stor_mbps,
            1.0,
            |s| s.stor_cpu_per_gib,
            1.0,
        ),
        ("sessions/s", |s| s.sessions, 3.0, |_| None, 0.0),
        ("transfers/s", |s| s.transfers, 1.5, |s| s.tr_cpu_us, 0.67),
    ];
    for (label, get, want, cpu, cpu_want) in ratio_targets {
        let Some((anchor, best)) = best_anchor(results, sums, get, false) else {
            continue;
        };
        let anchor_cpu = results
            .iter()
            .zip(sums)
            .find(|(r, _)| r.name == anchor)
            .and_then(|(_, s)| cpu(s));
        for (r, s) in &ours {
            let Some(v) = get(s) else { continue };
            let errors = match label {
                "sessions/s" => s.sess_errors.unwrap_or(0),
                "transfers/s" => s.tr_errors.unwrap_or(0),
                _ => 0,
            };
            let ok = v / best >= want && errors == 0;
            lines.push(format!(
                "{label:<22} {:<11} {v:>8.0} / {best:.0} ({anchor}) = {:.2}x, target >= {want}x{} [{tag}]: {}",
                r.name,
                v / best,
                if errors > 0 { format!(", {errors} errors") } else { String::new() },
                verdict(ok)
            ));
            if let (Some(ours), Some(theirs)) = (cpu(s), anchor_cpu) {
                let unit = if label.ends_with("MB/s") {
                    "s/GiB"
                } else {
                    "us/op"
                };
                lines.push(format!(
                    "{:<22} {:<11} {ours:>8.2} / {theirs:.2} {unit} ({anchor}) = {:.2}x, target <= {cpu_want}x [{tag}]: {}",
                    format!("  server CPU"),
                    r.name,
                    ours / theirs,
                    verdict(ours / theirs <= cpu_want)
                ));
            }
        }
    }
    if let Some(c) = ceiling {
        for (r, s) in &ours {
            if let Some(v) = s.retr_mbps {
                lines.push(format!(
                    "{:<22} {:<11} {v:>8.0} / {c:.0} = {:.0}%, target >= 80%: {}",
                    "RETR of ceiling",
                    r.name,
                    100.0 * v / c,
                    verdict(v / c >= 0.8)
                ));
            }
        }
    }
    let anchor_kib = best_anchor(results, sums, |s| s.idle_kib, true);
    for (r, s) in &ours {
        if let (Some(kib), Some((ok, n, noop))) = (s.idle_kib, s.idle_ok) {
            lines.push(format!(
                "{:<22} {:<11} {kib:>8.2} KiB PSS per session of {ok}{}, target <= {IDLE_KIB_TARGET} KiB: {}",
                "idle session memory",
                r.name,
                anchor_kib
                    .as_ref()
                    .map(|(a, v)| format!(" (best anchor {a}: {v:.1} KiB)"))
                    .unwrap_or_default(),
                verdict(kib <= IDLE_KIB_TARGET)
            ));
            // Fewer asked of the server than of the bench: the open-file
            // limit capped the figure, so the number asked for was not shown.
            let capped = n < sessions_asked;
            lines.push(format!(
                "{:<22} {:<11} {ok} of {n} logged in, {noop} answered NOOP{}: {}",
                "idle sessions held",
                r.name,
                if capped {
                    format!(" ({sessions_asked} asked for, capped by the open-file limit)")
                } else {
                    String::new()
                },
                verdict(ok == n && noop == n && !capped)
            ));
        }
        if let (Some(p99), Some(errors), Some((ok, _, _))) =
            (s.idle_greet_p99, s.idle_greet_errors, s.idle_ok)
        {
            lines.push(format!(
                "{:<22} {:<11} {p99:>8.2} ms p99 (p50 {}) of {PROBES} new connections while {ok} held{}, target <= {GREET_P99_TARGET_MS} ms: {}",
                "new session's 220",
                r.name,
                f(s.idle_greet_p50, 2),
                if errors > 0 { format!(", {errors} errors") } else { String::new() },
                verdict(p99 <= GREET_P99_TARGET_MS && errors == 0)
            ));
        }
        if let (Some(p99), Some(errors), Some((ok, _, _))) =
            (s.idle_retr_p99, s.idle_retr_errors, s.idle_ok)
        {
            lines.push(format!(
                "{:<22} {:<11} {p99:>8.2} ms p99 (p50 {}) of {PROBES} on one session while {ok} held{}, target <= {RETR_P99_TARGET_MS} ms: {}",
                "4 KiB RETR while held",
                r.name,
                f(s.idle_retr_p50, 2),
                if errors > 0 { format!(", {errors} errors") } else { String::new() },
                verdict(p99 <= RETR_P99_TARGET_MS && errors == 0)
            ));
        }
    }
    for (r, s) in &ours {
        if let (Some(burst), Some(login), Some(idle)) =
            (s.noop_p99_burst, s.login_ms, s.noop_p99_idle)
        {
            lines.push(format!(
                "{:<22} {:<11} NOOP p99 {burst:.2} ms during the burst ({idle:.2} ms idle), one argon2 login {login:.1} ms; target: p99 below one hash: {}",
                "argon2 off the loop",
                r.name,
                verdict(burst < login && s.login_errors == Some(0))
            ));
        }
        if let Some(m) = s.burst_memory {
            lines.push(format!(
                "{:<22} {:<11} RSS peak {} KiB (idle {} + {} checks x {} KiB + 4 MiB = {}), {} KiB {} s after (idle + 1 MiB = {}): {}",
                "argon2 burst memory",
                r.name,
                m.peak_kib,
                m.idle_kib,
                m.checks,
                m.argon_kib,
                m.peak_bound_kib(),
                m.after_kib,
                crate::scenarios::AFTER_BURST.as_secs(),
                m.after_bound_kib(),
                verdict(m.met())
            ));
        }
    }
    for fp in foot
        .iter()
        .filter(|fp| fp.profile.starts_with("embedded") && fp.bytes > 0)
    {
        let optional = if foot.iter().any(|x| x.features == "--no-default-features") {
            fp.features == "--no-default-features"
        } else {
            true
        };
        let size_ok = fp.bytes <= 1_500_000;
        let rss_ok = fp.idle_rss_kib.is_some_and(|k| k * 1024 <= 2_000_000);
        // The RSS of a dynamically linked build counts the pages of the
        // shared libraries it maps (about 1.6 MB of glibc, ld.so, libgcc_s
        // and libcrypt, shared with every process): the idle-RSS target is
        // for the static build an embedded box runs, when it was measured.
        let static_measured = foot
            .iter()
            .any(|x| x.profile.contains("static") && x.idle_rss_kib.is_some());
        let rss_applies = !static_measured || fp.profile.contains("static");
        if fp.program == "ftp-mio" {
            lines.push(format!(
                "{:<22} {:<11} {:.2} MB stripped ({}, {}), target <= 1.5 MB{}: {}",
                "embedded size",
                fp.program,
                fp.bytes as f64 / 1e6,
                fp.profile,
                fp.features,
                if optional {
                    ""
                } else {
                    " (applies without optional features)"
                },
                if optional { verdict(size_ok) } else { "info" }
            ));
            lines.push(format!(
                "{:<22} {:<11} {} KiB idle VmRSS ({}, {}), target <= 2 MB{}: {}",
                "idle RSS",
                fp.program,
                fp.idle_rss_kib.map_or("-".into(), |k| k.to_string()),
                fp.profile,
                fp.features,
                if rss_applies {
                    ""
                } else {
                    " (applies to the static build; this one maps shared libraries)"
                },
                if rss_applies { verdict(rss_ok) } else { "info" }
            ));
        } else {
            lines.push(format!(
                "{:<22} {:<11} {:.2} MB stripped, {} KiB idle VmRSS ({}, {}; reported, no target)",
                "embedded footprint",
                fp.program,
                fp.bytes as f64 / 1e6,
                fp.idle_rss_kib.map_or("-".into(), |k| k.to_string()),
                fp.profile,
                fp.features,
            ));
        }
    }
    lines
}

fn loop_json(l: &LoopStats) -> Json {
    let mut j = Json::obj();
    j.set("ops", l.ops)
        .set("rate_per_s", l.rate())
        .set("errors", l.errors)
        .set("first_error", l.first_error.clone())
        .set("secs", l.secs)
        .set("p50_ms", percentile(&l.lat_us, 0.5))
        .set("p99_ms", percentile(&l.lat_us, 0.99))
        .set("max_ms", percentile(&l.lat_us, 1.0))
        .set("generator_cpu_s", l.client_cpu)
        .set("server_cpu_s", l.server_cpu);
    j
}

pub fn json(
    results: &[Result1],
    foot: &[Footprint],
    p: &Params,
    m: &Machine,
    command: &str,
) -> Json {
    let sums: Vec<Summary> = results.iter().map(summarize).collect();
    let ceiling = results
        .iter()
        .zip(&sums)
        .find(|(r, _)| r.kind == Some(Kind::Ceiling))
        .and_then(|(_, s)| s.retr_mbps);
    let mut root = Json::obj();
    root.set("command", command);
    root.set("generator", m.generator.name());
    let mut machine = Json::obj();
    machine
        .set("nproc", m.nproc)
        .set("cpu", m.cpu.clone())
        .set("kernel", m.kernel.clone())
        .set("data_dir", m.data_dir.clone())
        .set("page_reporting", m.page_reporting.clone())
        .set(
            "loadavg_1min_per_phase",
            m.loads.iter().map(|l| l[0]).collect::<Vec<f64>>(),
        );
    root.set("machine", machine);
    let mut params = Json::obj();
    params
        .set("runs", p.runs)
        .set("big_file_bytes", p.size)
        .set("loop_rounds", p.rounds)
        .set("loop_warmup_s", p.warmup.as_secs_f64())
        .set("loop_measure_s", p.measure.as_secs_f64())
        .set("clients", p.clients)
        .set("idle_sessions", p.sessions)
        .set("idle_sessions_asked", p.sessions_asked);
    root.set("params", params);
    let mut servers = Vec::new();
    for (r, s) in results.iter().zip(&sums) {
        let mut j = Json::obj();
        j.set("name", r.name.clone())
            .set("config", r.config.clone())
            .set("skipped", r.skipped.clone())
            .set("failures", r.failures.clone());
        let transfers = |t: &[crate::scenarios::Transfer]| {
            Json::Arr(
                t.iter()
                    .map(|t| {
                        let mut o = Json::obj();
                        o.set("mb_per_s", t.mb_per_sec())
                            .set("secs", t.secs)
                            .set("bytes", t.bytes)
                            .set("server_cpu_s", t.server_cpu)
                            .set("generator_cpu_s", t.client_cpu);
                        o
                    })
                    .collect(),
            )
        };
        j.set("retr_runs", transfers(&r.retr))
            .set("retr_mb_per_s_median", s.retr_mbps)
            .set(
                "retr_fraction_of_ceiling",
                s.retr_mbps.zip(ceiling).map(|(a, c)| a / c),
            )
            .set("retr_server_cpu_s_per_gib", s.retr_cpu_per_gib)
            .set("retr_tls_runs", transfers(&r.retr_tls))
            .set("retr_tls_mb_per_s_median", s.retr_tls_mbps)
            .set("retr_tls_server_cpu_s_per_gib", s.retr_tls_cpu_per_gib)
            .set("retr_tls_suite", r.tls_suite.clone())
            .set("stor_runs", transfers(&r.stor))
            .set("stor_mb_per_s_median", s.stor_mbps)
            .set("stor_server_cpu_s_per_gib", s.stor_cpu_per_gib)
            .set(
                "sessions_rounds",
                Json::Arr(r.small.iter().map(loop_json).collect()),
            )
            .set("sessions_per_s_median", s.sessions)
            .set("session_p50_ms", s.sess_p50)
            .set("session_p99_ms", s.sess_p99)
            .set("session_errors", s.sess_errors)
            .set("session_server_cpu_us", s.sess_cpu_us)
            .set(
                "transfers_rounds",
                Json::Arr(r.persistent.iter().map(loop_json).collect()),
            )
            .set("transfers_per_s_median", s.transfers)
            .set("transfer_errors", s.tr_errors)
            .set("transfer_server_cpu_us", s.tr_cpu_us);
        if let Some(sc) = &r.scale {
            let mut o = Json::obj();
            o.set("target", sc.target)
                .set("logged_in", sc.logged_in)
                .set("failed", sc.failed)
                .set("first_error", sc.first_error.clone())
                .set("open_secs", sc.open_secs)
                .set("pss_before_kib", sc.pss_before_kib)
                .set("pss_after_kib", sc.pss_after_kib)
                .set("pss_kib_per_session", sc.kib_per_session())
                .set("processes", sc.processes)
                .set("kernel_slab_kib_before", sc.kernel_before.slab_kib)
                .set("kernel_slab_kib_after", sc.kernel_after.slab_kib)
                .set("kernel_tcp_pages_before", sc.kernel_before.tcp_pages)
                .set("kernel_tcp_pages_after", sc.kernel_after.tcp_pages)
                .set(
                    "kernel_slab_kib_per_session_both_ends",
                    sc.kernel_slab_kib_per_session(),
                )
                .set(
                    "kernel_tcp_kib_per_session_both_ends",
                    sc.kernel_tcp_kib_per_session(),
                )
                .set("generator_rss_kib", sc.generator_rss_kib)
                .set("probes", PROBES)
                .set(
                    "probe_gap_ms",
                    crate::scenarios::PROBE_GAP.as_secs_f64() * 1000.0,
                )
                .set("new_session_220_p50_ms", percentile(&sc.greet_us, 0.5))
                .set("new_session_220_p99_ms", percentile(&sc.greet_us, 0.99))
                .set("new_session_220_max_ms", percentile(&sc.greet_us, 1.0))
                .set("new_session_220_errors", sc.greet_errors)
                .set("retr_4k_p50_ms", percentile(&sc.retr_us, 0.5))
                .set("retr_4k_p99_ms", percentile(&sc.retr_us, 0.99))
                .set("retr_4k_max_ms", percentile(&sc.retr_us, 1.0))
                .set("retr_4k_errors", sc.retr_errors)
                .set("noop_ok", sc.noop_ok);
            j.set("idle_sessions", o);
        }
        if let Some(b) = &r.burst {
            let mut o = Json::obj();
            o.set("single_login_ms", b.single_login_ms)
                .set("noop_idle_p50_ms", percentile(&b.baseline_us, 0.5))
                .set("noop_idle_p99_ms", percentile(&b.baseline_us, 0.99))
                .set("noop_burst_p50_ms", percentile(&b.burst_us, 0.5))
                .set("noop_burst_p99_ms", percentile(&b.burst_us, 0.99))
                .set("noop_burst_max_ms", percentile(&b.burst_us, 1.0))
                .set("noops_during_burst", b.burst_us.len())
                .set("logins", b.logins)
                .set("logins_per_s", b.logins as f64 / b.secs)
                .set("login_p50_ms", percentile(&b.login_us, 0.5))
                .set("login_p99_ms", percentile(&b.login_us, 0.99))
                .set("login_errors", b.login_errors)
                .set("first_error", b.first_error.clone());
            if let Some(m) = &b.memory {
                o.set("rss_idle_kib", m.idle_kib)
                    .set("rss_peak_kib", m.peak_kib)
                    .set("rss_after_kib", m.after_kib)
                    .set("rss_after_secs", crate::scenarios::AFTER_BURST.as_secs())
                    .set("password_checks", m.checks)
                    .set("argon2_kib", m.argon_kib)
                    .set("rss_peak_bound_kib", m.peak_bound_kib())
                    .set("rss_after_bound_kib", m.after_bound_kib())
                    .set("rss_bounds_met", m.met());
            }
            j.set("argon2_burst", o);
        }
        servers.push(j);
    }
    root.set("servers", Json::Arr(servers));
    root.set(
        "footprint",
        Json::Arr(
            foot.iter()
                .map(|fp| {
                    let mut o = Json::obj();
                    o.set("program", fp.program.clone())
                        .set("profile", fp.profile.clone())
                        .set("features", fp.features.clone())
                        .set("bytes", fp.bytes)
                        .set("idle_vmrss_kib", fp.idle_rss_kib)
                        .set("note", fp.note.clone());
                    o
                })
                .collect(),
        ),
    );
    root.set(
        "targets",
        targets(results, &sums, foot, ceiling, m.generator, p.sessions_asked),
    );
    root
}
