//! The S3 figures' table, targets and JSON.

use std::fmt::Write;

use super::figures::Burst;
use super::run::{Column, LIST_OBJECTS, Results};
use crate::json::Json;
use crate::scenarios::{AFTER_BURST, Transfer, percentile};
use crate::servers::Kind;

/// The part size of ftp-host's S3 uploads (`PART_SIZE` in its s3.rs), MiB:
/// an upload holds at most two parts in memory.
pub const PART_MIB: u64 = 8;

/// What an upload holds beside its two parts (the session's socket and
/// transfer buffers, the HTTP client's), MiB: the README's bound.
const BUFFERS_MIB: u64 = 2;

/// Slack of the memory bound for the process as a whole, MiB.
const SLACK_MIB: u64 = 4;

/// Throughput ratio over rclone the issue asks for.
const TARGET: f64 = 1.5;

use crate::report::median;

/// The figures of one column, reduced over its runs.
#[derive(Clone, Copy, Debug, Default)]
struct Sum {
    retr: Option<f64>,
    retr_cpu: Option<f64>,
    retr_store: Option<f64>,
    stor: Option<f64>,
    stor_cpu: Option<f64>,
    stor_store: Option<f64>,
    /// Median listing, ms.
    list_ms: Option<f64>,
    list_first_ms: Option<f64>,
    list_cpu_ms: Option<f64>,
    list_store_ms: Option<f64>,
    small: Option<f64>,
    small_p99: Option<f64>,
    small_errors: Option<u64>,
    small_cpu_us: Option<f64>,
    small_store_us: Option<f64>,
}

fn per_gib(t: &[Transfer], cpu: fn(&Transfer) -> f64) -> Option<f64> {
    let bytes: u64 = t.iter().map(|t| t.bytes).sum();
    (bytes > 0).then(|| t.iter().map(cpu).sum::<f64>() / (bytes as f64 / (1u64 << 30) as f64))
}

fn summarize(c: &Column) -> Sum {
    let gib = |t: &[Transfer]| t.iter().map(|t| t.bytes).sum::<u64>() as f64 / (1u64 << 30) as f64;
    let ops: u64 = c.small.iter().map(|s| s.ops).sum();
    let mut lat: Vec<u32> = c.small.iter().flat_map(|s| s.lat_us.clone()).collect();
    lat.sort_unstable();
    let n_list = c.list.len() as f64;
    Sum {
        retr: median(c.retr.iter().map(Transfer::mb_per_sec).collect()),
        retr_cpu: per_gib(&c.retr, |t| t.server_cpu),
        retr_store: (!c.retr.is_empty()).then(|| c.store_cpu.retr / gib(&c.retr)),
        stor: median(c.stor.iter().map(Transfer::mb_per_sec).collect()),
        stor_cpu: per_gib(&c.stor, |t| t.server_cpu),
        stor_store: (!c.stor.is_empty()).then(|| c.store_cpu.stor / gib(&c.stor)),
        list_ms: median(c.list.iter().map(|l| l.secs * 1e3).collect()),
        list_first_ms: c.list.first().map(|l| l.secs * 1e3),
        list_cpu_ms: (n_list > 0.0)
            .then(|| c.list.iter().map(|l| l.server_cpu).sum::<f64>() * 1e3 / n_list),
        list_store_ms: (n_list > 0.0).then(|| c.store_cpu.list * 1e3 / n_list),
        small: median(c.small.iter().map(|s| s.rate()).collect()),
        small_p99: (!lat.is_empty()).then(|| percentile(&lat, 0.99)),
        small_errors: (!c.small.is_empty()).then(|| c.small.iter().map(|s| s.errors).sum()),
        small_cpu_us: (ops > 0)
            .then(|| c.small.iter().map(|s| s.server_cpu).sum::<f64>() * 1e6 / ops as f64),
        small_store_us: (ops > 0).then(|| c.store_cpu.small * 1e6 / ops as f64),
    }
}

fn f(v: Option<f64>, digits: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.digits$}"),
        _ => "-".into(),
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Most peak RSS the README's claim allows: idle + uploads x (two parts +
/// [`BUFFERS_MIB`]) + [`SLACK_MIB`].
pub fn peak_bound_kib(b: &Burst) -> u64 {
    b.idle_kib + (b.uploads as u64 * (2 * PART_MIB + BUFFERS_MIB) + SLACK_MIB) * 1024
}

/// The table of the S3 figures, with the targets.
pub fn table(r: &Results, runs: usize, rounds: usize) -> String {
    let mut out = String::new();
    if let Some(why) = &r.skipped {
        let _ = writeln!(out, "\nObject storage (S3): skipped: {why}");
        return out;
    }
    let _ = writeln!(
        out,
        "\nObject storage (S3): SeaweedFS, one `weed server`, data in {}",
        r.store_dir
    );
    let sums: Vec<Sum> = r.columns.iter().map(summarize).collect();
    let rc = r
        .columns
        .iter()
        .zip(&sums)
        .find(|(c, _)| c.kind == Some(Kind::Rclone))
        .map(|(_, s)| *s)
        .unwrap_or_default();
    let size = if r.big_len >= 1 << 30 {
        format!("{} GiB", r.big_len >> 30)
    } else {
        format!("{} MiB", r.big_len >> 20)
    };
    let ratio = |a: Option<f64>, b: Option<f64>| f(a.zip(b).map(|(a, b)| a / b), 2);
    type Row<'a> = (String, Box<dyn Fn(&Column, &Sum) -> String + 'a>);
    let rows: Vec<Row> = vec![
        (
            format!("RETR {size} MB/s (median of {runs})"),
            Box::new(|_, s| f(s.retr, 0)),
        ),
        ("  x rclone".into(), Box::new(|_, s| ratio(s.retr, rc.retr))),
        (
            "  server CPU s/GiB".into(),
            Box::new(|_, s| f(s.retr_cpu, 2)),
        ),
        (
            "  store CPU s/GiB".into(),
            Box::new(|_, s| f(s.retr_store, 2)),
        ),
        (
            format!("STOR {size} MB/s (median of {runs})"),
            Box::new(|_, s| f(s.stor, 0)),
        ),
        ("  x rclone".into(), Box::new(|_, s| ratio(s.stor, rc.stor))),
        (
            "  server CPU s/GiB".into(),
            Box::new(|_, s| f(s.stor_cpu, 2)),
        ),
        (
            "  store CPU s/GiB".into(),
            Box::new(|_, s| f(s.stor_store, 2)),
        ),
        (
            format!("LIST {LIST_OBJECTS} objects ms (median of {runs})"),
            Box::new(|_, s| f(s.list_ms, 1)),
        ),
        (
            "  x rclone (its time / ours)".into(),
            Box::new(|_, s| ratio(rc.list_ms, s.list_ms)),
        ),
        (
            "  first listing ms".into(),
            Box::new(|_, s| f(s.list_first_ms, 1)),
        ),
        (
            "  x rclone, first listing".into(),
            Box::new(|_, s| ratio(rc.list_first_ms, s.list_first_ms)),
        ),
        (
            "  server CPU ms/listing".into(),
            Box::new(|_, s| f(s.list_cpu_ms, 1)),
        ),
        (
            "  store CPU ms/listing".into(),
            Box::new(|_, s| f(s.list_store_ms, 1)),
        ),
        (
            format!("4 KiB transfers/s, 50 sessions (median of {rounds})"),
            Box::new(|_, s| f(s.small, 0)),
        ),
        (
            "  x rclone".into(),
            Box::new(|_, s| ratio(s.small, rc.small)),
        ),
        (
            "  transfer p99 ms".into(),
            Box::new(|_, s| f(s.small_p99, 2)),
        ),
        (
            "  errors".into(),
            Box::new(|_, s| s.small_errors.map_or("-".into(), |e| e.to_string())),
        ),
        (
            "  server CPU us/transfer".into(),
            Box::new(|_, s| f(s.small_cpu_us, 0)),
        ),
        (
            "  store CPU us/transfer".into(),
            Box::new(|_, s| f(s.small_store_us, 0)),
        ),
        (
            format!(
                "burst {}x{} MiB STOR: stored",
                super::run::BURST_UPLOADS,
                r.burst_each >> 20
            ),
            Box::new(|c, _| {
                c.burst
                    .as_ref()
                    .map_or("-".into(), |b| format!("{}/{}", b.ok, b.uploads))
            }),
        ),
        (
            "  MB/s, all uploads".into(),
            Box::new(|c, _| {
                f(
                    c.burst
                        .as_ref()
                        .map(|b| (b.uploads as u64 * b.each) as f64 / b.secs / 1e6),
                    0,
                )
            }),
        ),
        (
            "  server / store CPU s/GiB".into(),
            Box::new(|c, _| {
                c.burst.as_ref().map_or("-".into(), |b| {
                    let gib = (b.uploads as u64 * b.each) as f64 / (1u64 << 30) as f64;
                    format!("{:.2}/{:.1}", b.server_cpu / gib, b.store_cpu / gib)
                })
            }),
        ),
        (
            "  RSS idle MiB".into(),
            Box::new(|c, _| f(c.burst.as_ref().map(|b| mib(b.idle_kib)), 1)),
        ),
        (
            "  RSS peak MiB (sampled)".into(),
            Box::new(|c, _| f(c.burst.as_ref().map(|b| mib(b.peak_kib)), 1)),
        ),
        (
            format!("  RSS {} s after MiB", AFTER_BURST.as_secs()),
            Box::new(|c, _| f(c.burst.as_ref().map(|b| mib(b.after_kib)), 1)),
        ),
        (
            "  (peak - idle) / upload MiB".into(),
            Box::new(|c, _| {
                f(
                    c.burst
                        .as_ref()
                        .map(|b| mib(b.peak_kib.saturating_sub(b.idle_kib)) / b.uploads as f64),
                    1,
                )
            }),
        ),
    ];
    let _ = write!(out, "{:<40}", "");
    for c in &r.columns {
        let _ = write!(out, "{:>10}", c.name.replace("ftp-", ""));
    }
    out.push('\n');
    for (label, cell) in &rows {
        let _ = write!(out, "{label:<40}");
        for (c, s) in r.columns.iter().zip(&sums) {
            let v = if c.skipped.is_some() {
                "skipped".into()
            } else {
                cell(c, s)
            };
            let _ = write!(out, "{v:>10}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "\nS3 targets (issue 18):");
    for line in targets(r, &sums, &rc) {
        let _ = writeln!(out, "  {line}");
    }
    for c in &r.columns {
        for e in &c.failures {
            let _ = writeln!(out, "  {}: {e}", c.name);
        }
    }
    out
}

/// One line per target and server of ours: PASS, FAIL or not measured.
fn targets(r: &Results, sums: &[Sum], rc: &Sum) -> Vec<String> {
    let mut lines = Vec::new();
    let verdict = |ok: bool| if ok { "PASS" } else { "FAIL" };
    for (c, s) in r.columns.iter().zip(sums) {
        if !c.kind.is_some_and(Kind::ours) || c.skipped.is_some() {
            continue;
        }
        let figures = [
            ("RETR MB/s", s.retr, rc.retr),
            ("STOR MB/s", s.stor, rc.stor),
            (
                "LIST listings/s",
                s.list_ms.map(|m| 1e3 / m),
                rc.list_ms.map(|m| 1e3 / m),
            ),
            ("4 KiB transfers/s", s.small, rc.small),
        ];
        for (what, ours, theirs) in figures {
            match ours.zip(theirs) {
                Some((a, b)) => lines.push(format!(
                    "{}: {what} >= {TARGET}x rclone: {:.2}x -> {}",
                    c.name,
                    a / b,
                    verdict(a / b >= TARGET)
                )),
                None => lines.push(format!("{}: {what}: not measured", c.name)),
            }
        }
        if let Some(b) = &c.burst {
            let bound = peak_bound_kib(b);
            lines.push(format!(
                "{}: burst peak RSS <= idle + {} uploads x (2 x {PART_MIB} + {BUFFERS_MIB}) MiB + {SLACK_MIB} MiB = {:.1} MiB: {:.1} MiB -> {}",
                c.name,
                b.uploads,
                mib(bound),
                mib(b.peak_kib),
                verdict(b.peak_kib <= bound && b.ok == b.uploads)
            ));
        }
    }
    lines
}

/// The S3 figures as JSON.
pub fn json(r: &Results) -> Json {
    let mut root = Json::obj();
    root.set("skipped", r.skipped.clone())
        .set("store_command", r.store_command.clone())
        .set("store_dir", r.store_dir.clone())
        .set("big_bytes", r.big_len)
        .set("list_objects", LIST_OBJECTS)
        .set("burst_each_bytes", r.burst_each)
        .set("part_mib", PART_MIB);
    let sums: Vec<Sum> = r.columns.iter().map(summarize).collect();
    let rc = r
        .columns
        .iter()
        .zip(&sums)
        .find(|(c, _)| c.kind == Some(Kind::Rclone))
        .map(|(_, s)| *s)
        .unwrap_or_default();
    let transfers = |t: &[Transfer]| {
        Json::Arr(
            t.iter()
                .map(|t| {
                    let mut o = Json::obj();
                    o.set("mb_per_s", t.mb_per_sec())
                        .set("secs", t.secs)
                        .set("bytes", t.bytes)
                        .set("server_cpu_s", t.server_cpu);
                    o
                })
                .collect(),
        )
    };
    let mut cols = Vec::new();
    for (c, s) in r.columns.iter().zip(&sums) {
        let mut j = Json::obj();
        j.set("name", c.name.clone())
            .set("config", c.config.clone())
            .set("skipped", c.skipped.clone())
            .set("failures", c.failures.clone())
            .set("retr_runs", transfers(&c.retr))
            .set("retr_mb_per_s_median", s.retr)
            .set("retr_x_rclone", s.retr.zip(rc.retr).map(|(a, b)| a / b))
            .set("retr_server_cpu_s_per_gib", s.retr_cpu)
            .set("retr_store_cpu_s_per_gib", s.retr_store)
            .set("stor_runs", transfers(&c.stor))
            .set("stor_mb_per_s_median", s.stor)
            .set("stor_x_rclone", s.stor.zip(rc.stor).map(|(a, b)| a / b))
            .set("stor_server_cpu_s_per_gib", s.stor_cpu)
            .set("stor_store_cpu_s_per_gib", s.stor_store)
            .set(
                "list_ms_runs",
                c.list.iter().map(|l| l.secs * 1e3).collect::<Vec<f64>>(),
            )
            .set(
                "list_server_cpu_ms_runs",
                c.list
                    .iter()
                    .map(|l| l.server_cpu * 1e3)
                    .collect::<Vec<f64>>(),
            )
            .set("list_ms_median", s.list_ms)
            .set(
                "list_x_rclone",
                rc.list_ms.zip(s.list_ms).map(|(a, b)| a / b),
            )
            .set("list_store_cpu_ms_per_listing", s.list_store_ms)
            .set(
                "small_rates_per_s",
                c.small.iter().map(|l| l.rate()).collect::<Vec<f64>>(),
            )
            .set("small_per_s_median", s.small)
            .set("small_x_rclone", s.small.zip(rc.small).map(|(a, b)| a / b))
            .set("small_p99_ms", s.small_p99)
            .set("small_errors", s.small_errors)
            .set("small_server_cpu_us_per_transfer", s.small_cpu_us)
            .set("small_store_cpu_us_per_transfer", s.small_store_us);
        if let Some(b) = &c.burst {
            let mut o = Json::obj();
            o.set("uploads", b.uploads)
                .set("each_bytes", b.each)
                .set("stored_ok", b.ok)
                .set("first_error", b.first_error.clone())
                .set("secs", b.secs)
                .set("server_cpu_s", b.server_cpu)
                .set("store_cpu_s", b.store_cpu)
                .set("rss_idle_kib", b.idle_kib)
                .set("rss_peak_sampled_kib", b.peak_kib)
                .set("rss_samples", b.samples)
                .set("vmhwm_kib", b.hwm_kib)
                .set("rss_after_kib", b.after_kib)
                .set("rss_after_secs", AFTER_BURST.as_secs())
                .set("rss_peak_bound_kib", peak_bound_kib(b));
            j.set("burst", o);
        }
        cols.push(j);
    }
    root.set("servers", Json::Arr(cols));
    root.set("targets", targets(r, &sums, &rc));
    root
}
