//! The S3 figures' own measurements: a listing of the big folder, an
//! upload checked in the store, and the burst of parallel uploads with the
//! server's RSS sampled from /proc.

use std::cell::Cell;
use std::collections::HashSet;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

use smol::LocalExecutor;

use super::store::{self, Store};
use super::{BUCKET, PREFIX, S3Error};
use crate::checksum::Pattern;
use crate::client::{Control, DataConn, fail, timeout};
use crate::procfs;
use crate::scenarios::{self, Transfer, generator_cpu};
use crate::servers::Server;

/// The folder listed by the LIST figure.
pub const LIST_DIR: &str = "list";

/// Name of object `i` of [`LIST_DIR`].
pub fn list_name(i: usize) -> String {
    format!("f{i:05}.bin")
}

/// Content of object `i` of [`LIST_DIR`] (small; only names are checked).
pub fn list_body(i: usize) -> Vec<u8> {
    format!("object {i} of the listing\n").into_bytes()
}

/// One timed listing.
#[derive(Clone, Debug)]
pub struct Listing {
    /// From `LIST` to `226`.
    pub secs: f64,
    /// Server CPU over the same time.
    pub server_cpu: f64,
    /// Names in the listing.
    pub entries: usize,
}

/// `LIST list` on one session: timed from the command to `226`, every
/// expected name present once and nothing else.
pub async fn list(server: &Server, objects: usize) -> io::Result<Listing> {
    timeout(Duration::from_secs(300), async {
        let mut ctl = Control::connect(server.addr, None).await?;
        ctl.anonymous().await?;
        let data = ctl.epsv().await?;
        let (s0, t0) = (server.cpu_secs(), Instant::now());
        ctl.start_transfer(&format!("LIST {LIST_DIR}")).await?;
        let text = drain(data).await?;
        ctl.end_transfer().await?;
        let secs = t0.elapsed().as_secs_f64();
        let server_cpu = server.cpu_secs() - s0;
        ctl.quit().await?;
        let entries = check_listing(&text, objects)?;
        Ok(Listing {
            secs,
            server_cpu,
            entries,
        })
    })
    .await
}

/// Reads a data connection to EOF.
async fn drain(mut data: DataConn) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = data.read(&mut buf).await?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// Checks that a `LIST` output (one `ls -l` style line per entry, the name
/// last) names exactly the `objects` expected files.
fn check_listing(text: &[u8], objects: usize) -> io::Result<usize> {
    let text = String::from_utf8_lossy(text);
    let mut seen = HashSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().last().unwrap_or_default();
        if !seen.insert(name.to_owned()) {
            return Err(fail(format!("listing names {name} twice")));
        }
    }
    let missing = (0..objects)
        .filter(|&i| !seen.contains(&list_name(i)))
        .count();
    if missing > 0 || seen.len() != objects {
        return Err(fail(format!(
            "listing has {} names, {missing} of the {objects} objects missing",
            seen.len()
        )));
    }
    Ok(seen.len())
}

/// The key of `path` (relative to the served prefix).
pub fn key(path: &str) -> String {
    format!("{PREFIX}/{path}")
}

/// Reads `path` back from the store and checks its size and checksum
/// against the first `len` bytes of the big file's blocks, then deletes it.
pub fn check_and_delete(store: &Store, path: &str, expected: (u64, u64)) -> Result<(), S3Error> {
    let mut http = store.http()?;
    let got = store::checksum(&mut http, BUCKET, &key(path));
    // Deleted whatever the check says: the store must not fill up.
    let deleted = store::delete(&mut http, BUCKET, &key(path));
    let (len, sum) = got?;
    if (len, sum) != expected {
        return Err(S3Error::Wrong(format!(
            "{path}: {len} of {} bytes, checksum {}",
            expected.0,
            if sum == expected.1 { "ok" } else { "differs" }
        )));
    }
    deleted
}

/// STOR of the big upload as `upload/NAME`, checked in the store; with
/// the store's CPU seconds during the upload (the check not included).
pub async fn stor(
    server: &Server,
    store: &Store,
    pattern: &Pattern,
    expected: (u64, u64),
    name: &str,
) -> io::Result<(Transfer, f64)> {
    let path = format!("upload/{name}");
    let w0 = store.cpu_secs();
    let t = scenarios::upload(server, pattern, expected.0, &path).await;
    let store_cpu = store.cpu_secs() - w0;
    let checked = check_and_delete(store, &path, expected).map_err(|e| fail(e.to_string()));
    let t = t?;
    checked?;
    Ok((t, store_cpu))
}

/// The server's RSS around a burst of parallel uploads (KiB).
#[derive(Clone, Debug, Default)]
pub struct Burst {
    /// Uploads at once.
    pub uploads: usize,
    /// Bytes of each upload.
    pub each: u64,
    /// Uploads that completed and were stored correctly.
    pub ok: usize,
    /// What went wrong first, if anything.
    pub first_error: Option<String>,
    /// Wall time of the burst.
    pub secs: f64,
    /// The server's CPU seconds over the burst.
    pub server_cpu: f64,
    /// The generator's CPU seconds over the burst.
    pub generator_cpu: f64,
    /// The store's CPU seconds over the burst.
    pub store_cpu: f64,
    /// `VmRSS` before the first upload.
    pub idle_kib: u64,
    /// Largest `VmRSS` sampled during the burst.
    pub peak_kib: u64,
    /// Samples taken.
    pub samples: usize,
    /// `VmHWM` after the burst.
    pub hwm_kib: u64,
    /// `VmRSS` [`scenarios::AFTER_BURST`] after the last upload ended.
    pub after_kib: u64,
}

/// How often the RSS is sampled during a burst.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// `uploads` sessions each STOR `each` bytes at once into `upload/`,
/// while the server's `VmRSS` is sampled; then every object is checked in
/// the store and deleted.
pub async fn burst<'a>(
    ex: &LocalExecutor<'a>,
    server: &'a Server,
    store: &Store,
    pattern: &'a Pattern,
    uploads: usize,
    each: u64,
) -> io::Result<Burst> {
    let pid = server
        .pid
        .ok_or_else(|| fail("the server's process is not known"))?;
    let mut out = Burst {
        uploads,
        each,
        idle_kib: procfs::rss_kib(pid).unwrap_or(0),
        ..Burst::default()
    };
    let tag = server.name.replace(['/', ':'], "-");
    let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
    let w0 = store.cpu_secs();
    let running = Rc::new(Cell::new(true));
    let sampler = {
        let running = running.clone();
        ex.spawn(async move {
            let (mut peak, mut samples) = (0, 0);
            while running.get() {
                if let Some(kib) = procfs::rss_kib(pid) {
                    peak = peak.max(kib);
                    samples += 1;
                }
                smol::Timer::after(SAMPLE_EVERY).await;
            }
            (peak, samples)
        })
    };
    let tasks: Vec<_> = (0..uploads)
        .map(|i| {
            let path = format!("upload/burst-{tag}-{i}.bin");
            ex.spawn(async move { scenarios::upload(server, pattern, each, &path).await })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await);
    }
    out.secs = t0.elapsed().as_secs_f64();
    out.server_cpu = server.cpu_secs() - s0;
    out.generator_cpu = generator_cpu() - c0;
    out.store_cpu = store.cpu_secs() - w0;
    running.set(false);
    (out.peak_kib, out.samples) = sampler.await;
    out.hwm_kib = procfs::hwm_kib(pid).unwrap_or(0);
    smol::Timer::after(scenarios::AFTER_BURST).await;
    out.after_kib = procfs::rss_kib(pid).unwrap_or(0);
    let expected = pattern.expected(each);
    for (i, r) in results.into_iter().enumerate() {
        let path = format!("upload/burst-{tag}-{i}.bin");
        let checked = check_and_delete(store, &path, expected);
        match (r, checked) {
            (Ok(_), Ok(())) => out.ok += 1,
            (Err(e), _) => {
                out.first_error.get_or_insert(format!("upload {i}: {e}"));
            }
            (Ok(_), Err(e)) => {
                out.first_error.get_or_insert(format!("upload {i}: {e}"));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_are_checked_by_name() {
        let good: String = (0..3)
            .map(|i| format!("-rw-r--r-- 1 ftp ftp 25 Dec  5 19:29 {}\r\n", list_name(i)))
            .collect();
        assert_eq!(check_listing(good.as_bytes(), 3).ok(), Some(3));
        assert!(check_listing(good.as_bytes(), 4).is_err());
        let twice = format!("{good}-rw-r--r-- 1 ftp ftp 25 Dec  5 19:29 f00000.bin\r\n");
        assert!(check_listing(twice.as_bytes(), 3).is_err());
    }
}
