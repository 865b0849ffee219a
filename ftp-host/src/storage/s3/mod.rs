//! [`S3Storage`]: a bucket (or a prefix of it) of an S3-compatible object
//! store, through Apache OpenDAL.
//!
//! # Threads
//!
//! OpenDAL is asynchronous. The storage owns a small tokio runtime (two
//! worker threads named `ftp-s3`) and every call blocks the calling thread
//! until the runtime has done the request. The callers are the daemons'
//! worker threads and the threads that run [`Blocking::MayStall`] handles,
//! never an event loop: every handle of this store says `MayStall`.
//!
//! The storage has its own HTTP client too, so that the connections it
//! keeps open to the store run on its runtime only. (OpenDAL's default is
//! one client for the whole process: a connection made on another
//! storage's runtime fails the request that reuses it once that runtime
//! shuts down.)
//!
//! # Mapping
//!
//! A path `/a/b.txt` is the key `PREFIX/a/b.txt`. A folder is a common
//! prefix `PREFIX/a/` (listed with the delimiter `/`), made by `MKD` as a
//! zero-byte marker object `a/`. Listings page through `ListObjectsV2` and
//! are streamed batch by batch. An upload is written in parts of
//! [`PART_SIZE`] (a multipart upload once it exceeds one part); it becomes
//! visible only on commit, and an abort (or drop) aborts the multipart
//! upload, leaving any previous object of that name as it was. A download
//! is one ranged GET from the restart offset. Renaming a file is a
//! server-side copy followed by a delete; a non-empty folder cannot be
//! renamed. Append, resume, permissions and times cannot be done on an
//! object store ([`ftp_proto::StorageCaps::OBJECT_STORE`]).

mod stale;

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

pub use stale::{SweepError, SweepReport};

use super::S3Config;
use ftp_proto::{DirEntry, FileKind, FsError, Metadata, StoreMode, UnixTime, VirtualPath};
use opendal::raw::HttpClient;
use opendal::{ErrorKind, Operator, blocking};

use super::{DirReader, ReadFile, ReadObject, Storage, Upload, WriteObject};

/// Size of one part of a multipart upload (S3's minimum is 5 MiB); an
/// upload holds at most about two parts in memory.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Longest wait for one request that moves no data (stat, list page,
/// delete, copy, completing an upload).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest wait for the next bytes of a download or for a part of an
/// upload to be taken: a store that stops answering mid-transfer fails
/// the transfer instead of holding it (and its session) forever.
pub const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Entries asked for per `ListObjectsV2` page.
const LIST_PAGE: usize = 1000;

/// Why the S3 storage could not be set up.
#[derive(Debug)]
pub enum S3Error {
    /// The tokio runtime's threads could not be started.
    Runtime(io::Error),
    /// The client could not be configured.
    Client(opendal::Error),
    /// The bucket could not be listed (unreachable, unknown, or refused).
    Unreachable(opendal::Error),
    /// The HTTP client could not be set up.
    Http(reqwest::Error),
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Error::Runtime(e) => write!(f, "cannot start the S3 client's threads: {e}"),
            S3Error::Client(e) => write!(f, "cannot configure the S3 client: {e}"),
            S3Error::Unreachable(e) => write!(f, "cannot list the bucket: {e}"),
            S3Error::Http(e) => write!(f, "cannot set up the HTTP client: {e}"),
        }
    }
}

impl std::error::Error for S3Error {}

/// What every view of one bucket shares: the runtime and the operators.
struct Shared {
    runtime: tokio::runtime::Runtime,
    op: Operator,
    blocking: blocking::Operator,
    sweeper: stale::Sweeper,
    unique: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

/// A bucket (beneath a prefix) served as a [`Storage`].
#[derive(Debug, Clone)]
pub struct S3Storage {
    shared: Arc<Shared>,
    /// Key prefix of `/`: empty or ending in `/`.
    root: String,
}

impl S3Storage {
    /// Connects to the bucket and checks that it can be listed.
    pub fn connect(config: &S3Config) -> Result<S3Storage, S3Error> {
        // reqwest is built without a crypto provider of its own: use ring,
        // as the rest of the workspace does. Another caller may have
        // installed one already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ftp-s3")
            .enable_all()
            .build()
            .map_err(S3Error::Runtime)?;
        // The client's connections run on the runtime that makes them:
        // this storage's, as every request is made on it.
        let http = HttpClient::with(reqwest::Client::builder().build().map_err(S3Error::Http)?);
        let mut builder = opendal::services::S3::default()
            .bucket(&config.bucket)
            .root("/")
            .region(&config.region)
            .access_key_id(&config.access_key_id)
            .secret_access_key(&config.secret_access_key)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(endpoint) = &config.endpoint {
            builder = builder.endpoint(endpoint);
        }
        if let Some(token) = &config.session_token {
            builder = builder.session_token(token);
        }
        let op = Operator::new(builder)
            .map_err(S3Error::Client)?
            .layer(opendal::layers::HttpClientLayer::new(http.clone()))
            .layer(
                opendal::layers::TimeoutLayer::new()
                    .with_timeout(REQUEST_TIMEOUT)
                    .with_io_timeout(IO_TIMEOUT),
            )
            .finish();
        let (blocking, sweeper) = {
            let _guard = runtime.enter();
            (
                blocking::Operator::new(op.clone()).map_err(S3Error::Client)?,
                stale::Sweeper::new(config, http),
            )
        };
        let prefix = config.prefix.trim_matches('/');
        let storage = S3Storage {
            shared: Arc::new(Shared {
                runtime,
                op,
                blocking,
                sweeper,
                unique: AtomicU64::new(1),
            }),
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
        };
        let probe = storage.list_path(&storage.root);
        let mut lister = storage
            .shared
            .blocking
            .lister_options(&probe, list_options(1))
            .map_err(S3Error::Unreachable)?;
        if let Some(Err(e)) = lister.next() {
            return Err(S3Error::Unreachable(e));
        }
        Ok(storage)
    }

    /// Aborts the multipart uploads under the served prefix begun at least
    /// `older_than` ago (left behind by a daemon that was killed during an
    /// upload), and says what it found. Blocks until done.
    pub fn abort_stale_uploads(&self, older_than: Duration) -> Result<SweepReport, SweepError> {
        self.shared.runtime.block_on(self.shared.sweeper.sweep(
            &self.root,
            older_than,
            SystemTime::now(),
        ))
    }

    /// [`S3Storage::abort_stale_uploads`] on the storage's own runtime, in
    /// the background, with the outcome logged: what a daemon does at
    /// start, without delaying its first session.
    pub fn abort_stale_uploads_in_background(&self, older_than: Duration) {
        let storage = self.clone();
        self.shared.runtime.spawn(async move {
            let where_ = format!("/{}", storage.root);
            match storage
                .shared
                .sweeper
                .sweep(&storage.root, older_than, SystemTime::now())
                .await
            {
                Ok(r) if r.found == 0 => {}
                Ok(r) => log::info!(
                    "multipart uploads under {where_}: {} found, {} aborted as left behind \
                     (begun {} s ago or more), {} could not be aborted",
                    r.found,
                    r.aborted,
                    older_than.as_secs(),
                    r.failed
                ),
                Err(e) => log::warn!("cannot list the multipart uploads under {where_}: {e}"),
            }
        });
    }

    /// The key of `path` (no trailing `/`; empty for `/` of the whole
    /// bucket).
    fn key(&self, path: &VirtualPath) -> String {
        let mut key = self.root.clone();
        key.push_str(path.relative());
        if path.is_root() {
            key.pop();
        }
        key
    }

    /// The folder prefix of `path`: its key and a `/` (empty for the
    /// bucket's root).
    fn dir_key(&self, path: &VirtualPath) -> String {
        if path.is_root() {
            return self.root.clone();
        }
        let mut key = self.key(path);
        key.push('/');
        key
    }

    /// OpenDAL's name of a folder prefix (`/` for the bucket's root).
    fn list_path(&self, dir_key: &str) -> String {
        if dir_key.is_empty() {
            String::from("/")
        } else {
            dir_key.to_owned()
        }
    }

    /// Whether anything has the folder prefix `dir_key`; the count of
    /// entries seen (at most `limit`) besides the folder's own marker.
    fn dir_probe(&self, dir_key: &str, limit: usize) -> Result<Option<usize>, FsError> {
        let list = self.list_path(dir_key);
        let lister = self
            .shared
            .blocking
            .lister_options(&list, list_options(limit + 1))
            .map_err(map_err)?;
        let mut seen = false;
        let mut others = 0;
        for entry in lister.take(limit + 1) {
            let entry = entry.map_err(map_err)?;
            seen = true;
            if entry.path() != list && entry.path() != dir_key {
                others += 1;
                if others >= limit {
                    break;
                }
            }
        }
        Ok(if seen || dir_key.is_empty() {
            Some(others)
        } else {
            None
        })
    }

    /// The object `key`'s metadata, `None` if there is no such object.
    fn head(&self, key: &str) -> Result<Option<opendal::Metadata>, FsError> {
        if key.is_empty() {
            return Ok(None);
        }
        match self.shared.blocking.stat(key) {
            Ok(meta) => Ok(Some(meta)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(map_err(e)),
        }
    }

    /// Whether `path` is a folder.
    fn is_dir(&self, path: &VirtualPath) -> Result<bool, FsError> {
        Ok(path.is_root() || self.dir_probe(&self.dir_key(path), 1)?.is_some())
    }

    /// Refuses unless the parent of `path` is a folder.
    fn parent_is_dir(&self, path: &VirtualPath) -> Result<(), FsError> {
        let parent = path.parent();
        if self.is_dir(&parent)? {
            Ok(())
        } else if self.head(&self.key(&parent))?.is_some() {
            Err(FsError::NotADirectory)
        } else {
            Err(FsError::NotFound)
        }
    }

    /// Opens an upload of the key `key` named `name`.
    fn writer(&self, key: &str, name: &str) -> Result<Upload, FsError> {
        let op = self.shared.op.clone();
        let key = key.to_owned();
        let writer = self
            .shared
            .runtime
            .block_on(async move { op.writer_with(&key).chunk(PART_SIZE).concurrent(1).await })
            .map_err(map_err)?;
        Ok(Upload::new(Box::new(S3Upload {
            shared: self.shared.clone(),
            writer: Some(writer),
            name: name.to_owned(),
        })))
    }
}

/// Listing options: one level (delimiter `/`), `limit` keys per page.
fn list_options(limit: usize) -> opendal::options::ListOptions {
    opendal::options::ListOptions {
        limit: Some(limit),
        ..Default::default()
    }
}

/// Metadata of a file as the store reports it.
fn file_meta(meta: &opendal::Metadata) -> Metadata {
    Metadata {
        kind: FileKind::File,
        size: meta.content_length(),
        modified: meta
            .last_modified()
            .map(|t| UnixTime(t.into_inner().as_second())),
        mode: 0o644,
        nlink: 1,
        owner: String::from("ftp"),
        group: String::from("ftp"),
        unique: None,
    }
}

/// Metadata of a folder (a common prefix has none of its own).
fn dir_meta() -> Metadata {
    Metadata {
        kind: FileKind::Dir,
        size: 0,
        modified: None,
        mode: 0o755,
        nlink: 2,
        owner: String::from("ftp"),
        group: String::from("ftp"),
        unique: None,
    }
}

/// What an OpenDAL error means to the client.
fn map_err(e: opendal::Error) -> FsError {
    match e.kind() {
        ErrorKind::NotFound => FsError::NotFound,
        ErrorKind::PermissionDenied => FsError::PermissionDenied,
        ErrorKind::AlreadyExists => FsError::AlreadyExists,
        ErrorKind::IsADirectory => FsError::IsADirectory,
        ErrorKind::NotADirectory => FsError::NotADirectory,
        _ => {
            log::warn!("s3: {e}");
            FsError::Other
        }
    }
}

impl Storage for S3Storage {
    fn stat(&self, path: &VirtualPath) -> Result<Metadata, FsError> {
        if path.is_root() {
            return Ok(dir_meta());
        }
        if let Some(meta) = self.head(&self.key(path))? {
            return Ok(file_meta(&meta));
        }
        if self.is_dir(path)? {
            return Ok(dir_meta());
        }
        Err(FsError::NotFound)
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Box<dyn DirReader>, FsError> {
        if !path.is_root()
            && let Some(meta) = self.head(&self.key(path))?
        {
            let name = path.file_name().unwrap_or_default().to_owned();
            return Ok(Box::new(S3DirReader {
                lister: None,
                single: Some(DirEntry {
                    name,
                    meta: file_meta(&meta),
                    link_target: None,
                }),
                prefix: String::new(),
            }));
        }
        let dir_key = self.dir_key(path);
        if !path.is_root() && self.dir_probe(&dir_key, 1)?.is_none() {
            return Err(FsError::NotFound);
        }
        let list = self.list_path(&dir_key);
        let lister = self
            .shared
            .blocking
            .lister_options(&list, list_options(LIST_PAGE))
            .map_err(map_err)?;
        Ok(Box::new(S3DirReader {
            lister: Some(lister),
            single: None,
            prefix: dir_key,
        }))
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadFile, FsError> {
        let key = self.key(path);
        let Some(meta) = self.head(&key)? else {
            return Err(if self.is_dir(path)? {
                FsError::IsADirectory
            } else {
                FsError::NotFound
            });
        };
        let size = meta.content_length();
        let reader = if offset < size {
            let reader = self.shared.blocking.reader(&key).map_err(map_err)?;
            Some(reader.into_std_read(offset..size).map_err(map_err)?)
        } else {
            None
        };
        Ok(ReadFile::from_object(Box::new(S3Read { size, reader })))
    }

    /// Objects have no modes: `umask` does not apply.
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
        _umask: Option<u32>,
    ) -> Result<Upload, FsError> {
        match mode {
            StoreMode::Replace => {
                if path.is_root() || self.is_dir(path)? {
                    return Err(FsError::IsADirectory);
                }
                self.parent_is_dir(path)?;
                let name = path.file_name().unwrap_or_default();
                self.writer(&self.key(path), name)
            }
            StoreMode::Unique => {
                if !self.is_dir(path)? {
                    return Err(FsError::NotFound);
                }
                for _ in 0..100 {
                    let n = self.shared.unique.fetch_add(1, Ordering::Relaxed);
                    let name = format!("ftp-upload-{n}");
                    let key = format!("{}{name}", self.dir_key(path));
                    if self.head(&key)?.is_none() {
                        return self.writer(&key, &name);
                    }
                }
                Err(FsError::AlreadyExists)
            }
            // Objects cannot be changed in place; the engine refuses these
            // with StorageCaps::OBJECT_STORE before they get here.
            StoreMode::Append | StoreMode::Resume(_) => Err(FsError::PermissionDenied),
        }
    }

    fn make_dir(&self, path: &VirtualPath, _umask: Option<u32>) -> Result<(), FsError> {
        if path.is_root() || self.head(&self.key(path))?.is_some() || self.is_dir(path)? {
            return Err(FsError::AlreadyExists);
        }
        self.parent_is_dir(path)?;
        self.shared
            .blocking
            .create_dir(&self.dir_key(path))
            .map_err(map_err)
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), FsError> {
        if path.is_root() {
            return Err(FsError::PermissionDenied);
        }
        let dir_key = self.dir_key(path);
        match self.dir_probe(&dir_key, 1)? {
            None if self.head(&self.key(path))?.is_some() => Err(FsError::NotADirectory),
            None => Err(FsError::NotFound),
            Some(0) => self.shared.blocking.delete(&dir_key).map_err(map_err),
            Some(_) => Err(FsError::NotEmpty),
        }
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<(), FsError> {
        let key = self.key(path);
        if self.head(&key)?.is_none() {
            return Err(if self.is_dir(path)? {
                FsError::IsADirectory
            } else {
                FsError::NotFound
            });
        }
        self.shared.blocking.delete(&key).map_err(map_err)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        if from.is_root() || to.is_root() {
            return Err(FsError::PermissionDenied);
        }
        if from == to {
            return self.stat(from).map(|_| ());
        }
        let from_key = self.key(from);
        if self.head(&from_key)?.is_some() {
            if self.is_dir(to)? {
                return Err(FsError::IsADirectory);
            }
            self.parent_is_dir(to)?;
            let to_key = self.key(to);
            self.shared
                .blocking
                .copy(&from_key, &to_key)
                .map_err(map_err)?;
            return self.shared.blocking.delete(&from_key).map_err(map_err);
        }
        // A folder: only an empty one (its marker alone) can be moved.
        let from_dir = self.dir_key(from);
        match self.dir_probe(&from_dir, 1)? {
            None => Err(FsError::NotFound),
            Some(0) => {
                self.make_dir(to, None)?;
                self.shared.blocking.delete(&from_dir).map_err(map_err)
            }
            Some(_) => Err(FsError::NotEmpty),
        }
    }

    fn set_permissions(&self, _path: &VirtualPath, _mode: u32) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }

    fn set_modified(&self, _path: &VirtualPath, _time: UnixTime) -> Result<(), FsError> {
        Err(FsError::PermissionDenied)
    }

    fn subtree(&self, path: &VirtualPath) -> Result<Arc<dyn Storage>, FsError> {
        if !self.is_dir(path)? {
            return Err(if self.head(&self.key(path))?.is_some() {
                FsError::NotADirectory
            } else {
                FsError::NotFound
            });
        }
        Ok(Arc::new(S3Storage {
            shared: self.shared.clone(),
            root: self.dir_key(path),
        }))
    }
}

/// A listing being paged through.
struct S3DirReader {
    lister: Option<blocking::Lister>,
    /// The one entry of a file listed by name.
    single: Option<DirEntry>,
    /// The folder's key prefix, cut off the entries' keys.
    prefix: String,
}

impl fmt::Debug for S3DirReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3DirReader")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl DirReader for S3DirReader {
    fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>, FsError> {
        if let Some(entry) = self.single.take() {
            return Ok(vec![entry]);
        }
        let Some(lister) = self.lister.as_mut() else {
            return Ok(Vec::new());
        };
        let max = max.max(1);
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(entry) = lister.next() else {
                self.lister = None;
                break;
            };
            let entry = entry.map_err(map_err)?;
            let Some(rest) = entry.path().strip_prefix(self.prefix.as_str()) else {
                continue;
            };
            let (name, dir) = match rest.strip_suffix('/') {
                Some(name) => (name, true),
                None => (rest, false),
            };
            // The folder's own marker, and keys no FTP name can stand for.
            if name.is_empty() || name.contains('/') || name == "." || name == ".." {
                continue;
            }
            let meta = if dir {
                dir_meta()
            } else {
                file_meta(entry.metadata())
            };
            batch.push(DirEntry {
                name: name.to_owned(),
                meta,
                link_target: None,
            });
        }
        Ok(batch)
    }
}

/// A download: one ranged GET, streamed.
struct S3Read {
    size: u64,
    reader: Option<blocking::StdReader>,
}

impl fmt::Debug for S3Read {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Read")
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl ReadObject for S3Read {
    fn size(&self) -> u64 {
        self.size
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.reader.as_mut() {
            Some(reader) => io::Read::read(reader, buf).map_err(store_read_error),
            None => Ok(0),
        }
    }
}

/// A failed read of the store as an error that ends the transfer.
/// OpenDAL's `std::io::Read` adapter reports every failure of the store
/// (a timeout, a connection cut, a 5xx) as `Interrupted`, which a reader
/// is expected to retry at once: a transfer would spin on a store that
/// went away. The kind is mapped from OpenDAL's own instead.
fn store_read_error(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::Interrupted {
        return e;
    }
    let kind = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<opendal::Error>())
        .map(opendal::Error::kind)
    {
        Some(ErrorKind::NotFound) => io::ErrorKind::NotFound,
        Some(ErrorKind::PermissionDenied) => io::ErrorKind::PermissionDenied,
        Some(_) => io::ErrorKind::Other,
        // A real interruption (a signal), not the store's.
        None => return e,
    };
    io::Error::new(
        kind,
        e.into_inner().unwrap_or_else(|| "store read failed".into()),
    )
}

/// An upload: a multipart upload once it exceeds one part.
struct S3Upload {
    shared: Arc<Shared>,
    writer: Option<opendal::Writer>,
    name: String,
}

impl fmt::Debug for S3Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Upload")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl S3Upload {
    /// Aborts the multipart upload, if it is still open.
    fn abort_now(&mut self) {
        if let Some(mut writer) = self.writer.take()
            && let Err(e) = self.shared.runtime.block_on(writer.abort())
        {
            log::warn!("s3: aborting the upload of {}: {e}", self.name);
        }
    }
}

impl WriteObject for S3Upload {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), FsError> {
        let writer = self.writer.as_mut().ok_or(FsError::Other)?;
        let data = data.to_vec();
        self.shared
            .runtime
            .block_on(writer.write(data))
            .map_err(map_err)
    }

    fn commit(mut self: Box<Self>) -> Result<(), FsError> {
        let mut writer = self.writer.take().ok_or(FsError::Other)?;
        match self.shared.runtime.block_on(writer.close()) {
            Ok(_) => Ok(()),
            Err(e) => {
                if let Err(e) = self.shared.runtime.block_on(writer.abort()) {
                    log::warn!("s3: aborting the upload of {}: {e}", self.name);
                }
                Err(map_err(e))
            }
        }
    }

    fn abort(mut self: Box<Self>) {
        self.abort_now();
    }
}

impl Drop for S3Upload {
    fn drop(&mut self) {
        self.abort_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_store_read_is_not_an_interruption() {
        let failed = |kind| {
            let e = io::Error::new(
                io::ErrorKind::Interrupted,
                opendal::Error::new(kind, "io operation timeout reached"),
            );
            store_read_error(e)
        };
        let e = failed(ErrorKind::Unexpected);
        assert_eq!(e.kind(), io::ErrorKind::Other);
        assert!(e.to_string().contains("timeout"), "{e}");
        assert_eq!(failed(ErrorKind::NotFound).kind(), io::ErrorKind::NotFound);
        let signal = io::Error::from(io::ErrorKind::Interrupted);
        assert_eq!(store_read_error(signal).kind(), io::ErrorKind::Interrupted);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            store_read_error(reset).kind(),
            io::ErrorKind::ConnectionReset
        );
    }
}
