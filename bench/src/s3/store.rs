//! The object store of the S3 figures: one `weed server` process (SeaweedFS
//! master, volume server, filer and S3 gateway in one) on loopback ports,
//! its data in a folder of its own under the bench's data folder
//! (`/dev/shm` by default), killed and removed at the end.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::S3Error;
use super::http::Http;
use crate::checksum::{BLOCK, Checksum, Pattern};

/// How long the store may take to answer S3 requests.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Volumes of at most this size: deleted uploads are reclaimed by
/// [`Store::vacuum`] volume by volume, so they must not be huge.
const VOLUME_MB: u32 = 1024;

/// A running `weed server`.
pub struct Store {
    child: Option<Child>,
    /// The S3 gateway.
    pub s3: SocketAddr,
    /// The master (for vacuum).
    master: SocketAddr,
    /// The folder with the data and the log, removed when dropped.
    dir: tempfile::TempDir,
    /// The exact command, for the report.
    pub command: String,
}

impl Store {
    /// Starts `weed` with its data under `parent` and waits until its S3
    /// gateway creates `bucket`.
    pub fn start(weed: &Path, parent: &Path, bucket: &str) -> Result<Store, S3Error> {
        let dir = tempfile::Builder::new()
            .prefix("ftp-bench-seaweed-")
            .tempdir_in(parent)?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        // Every port chosen while all are held, so none is chosen twice;
        // released just before the one process binds them all. The gRPC
        // port of the gateway is given too: its default (HTTP port + 10000)
        // passes 65535 for high ports.
        let held: Vec<TcpListener> = (0..8)
            .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .collect::<io::Result<_>>()?;
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().map(|a| a.port()))
            .collect::<io::Result<_>>()?;
        let args: Vec<String> = vec![
            "server".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-master.port={}", ports[0]),
            format!("-master.port.grpc={}", ports[1]),
            format!("-master.volumeSizeLimitMB={VOLUME_MB}"),
            format!("-volume.port={}", ports[2]),
            format!("-volume.port.grpc={}", ports[3]),
            // As many volumes as the free space allows.
            "-volume.max=0".into(),
            "-volume.preStopSeconds=0".into(),
            format!("-filer.port={}", ports[4]),
            format!("-filer.port.grpc={}", ports[5]),
            "-s3".into(),
            format!("-s3.port={}", ports[6]),
            format!("-s3.port.grpc={}", ports[7]),
            // On by default, on fixed ports.
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
        ];
        let log = std::fs::File::create(dir.path().join("weed.log"))?;
        drop(held);
        let child = Command::new(weed)
            .args(&args)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let command = format!("weed {}", args.join(" "));
        let mut store = Store {
            child: Some(child),
            s3: SocketAddr::from((Ipv4Addr::LOCALHOST, ports[6])),
            master: SocketAddr::from((Ipv4Addr::LOCALHOST, ports[0])),
            dir,
            command,
        };
        store.wait_bucket(bucket)?;
        Ok(store)
    }

    /// Polls until `PUT /bucket` answers 200 (made) or 409 (there).
    fn wait_bucket(&mut self, bucket: &str) -> Result<(), S3Error> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                return Err(S3Error::StoreExited(format!(
                    "{status}; {}",
                    self.log_tail()
                )));
            }
            match Http::connect(self.s3)
                .map_err(S3Error::from)
                .and_then(|mut h| h.simple("PUT", &format!("/{bucket}")))
            {
                Ok((200 | 409, _)) => return Ok(()),
                Ok((status, body)) => {
                    last = format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(S3Error::StoreExited(format!(
            "not ready after {START_TIMEOUT:?} ({last}); {}",
            self.log_tail()
        )))
    }

    /// The S3 endpoint, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.s3)
    }

    /// The folder of the store's data.
    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }

    /// The last lines of the store's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    /// A new connection to the gateway.
    pub fn http(&self) -> Result<Http, S3Error> {
        Ok(Http::connect(self.s3)?)
    }

    /// Compacts the volumes, giving back the space of deleted objects.
    pub fn vacuum(&self) -> Result<(), S3Error> {
        let (status, body) =
            Http::connect(self.master)?.simple("GET", "/vol/vacuum?garbageThreshold=0.01")?;
        expect(status, 200, "vacuum", &body)
    }

    /// The process's CPU seconds so far (for the report: the store's share).
    pub fn cpu_secs(&self) -> f64 {
        self.pid().map_or(0.0, crate::procfs::tree_cpu_secs)
    }

    /// The process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Fails unless `status` is `want`.
pub fn expect(status: u16, want: u16, what: &str, body: &[u8]) -> Result<(), S3Error> {
    if status == want {
        return Ok(());
    }
    Err(S3Error::Status {
        what: what.to_owned(),
        status,
        body: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
    })
}

/// Stores `data` as `key` of `bucket`.
pub fn put_bytes(http: &mut Http, bucket: &str, key: &str, data: &[u8]) -> Result<(), S3Error> {
    let mut body = Vec::new();
    let status = http.request(
        "PUT",
        &format!("/{bucket}/{key}"),
        data.len() as u64,
        &mut |w| w.write_all(data),
        &mut |b| body.extend_from_slice(b),
    )?;
    expect(status, 200, &format!("PUT {key}"), &body)
}

/// Stores the first `len` bytes of the big file's blocks as `key`.
pub fn put_pattern(
    http: &mut Http,
    bucket: &str,
    key: &str,
    pattern: &Pattern,
    len: u64,
) -> Result<(), S3Error> {
    let mut body = Vec::new();
    let status = http.request(
        "PUT",
        &format!("/{bucket}/{key}"),
        len,
        &mut |w| {
            let mut block = Vec::new();
            for i in 0..len / BLOCK as u64 {
                pattern.block_into(i, &mut block);
                w.write_all(&block)?;
            }
            Ok(())
        },
        &mut |b| body.extend_from_slice(b),
    )?;
    expect(status, 200, &format!("PUT {key}"), &body)
}

/// Size and checksum of object `key`, read straight from the store.
pub fn checksum(http: &mut Http, bucket: &str, key: &str) -> Result<(u64, u64), S3Error> {
    let mut sum = Checksum::new();
    let status = http.request(
        "GET",
        &format!("/{bucket}/{key}"),
        0,
        &mut |_| Ok(()),
        &mut |b| sum.update(b),
    )?;
    expect(status, 200, &format!("GET {key}"), &[])?;
    Ok((sum.len(), sum.finish()))
}

/// Deletes object `key`.
pub fn delete(http: &mut Http, bucket: &str, key: &str) -> Result<(), S3Error> {
    let (status, body) = http.simple("DELETE", &format!("/{bucket}/{key}"))?;
    expect(status, 204, &format!("DELETE {key}"), &body)
}
