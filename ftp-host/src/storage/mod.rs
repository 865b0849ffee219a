//! The storage interface every file operation goes through, and the
//! handles it gives out; one file per implementation beside this one
//! ([`local`]: [`LocalFs`], the local disk).
//!
//! # Design
//!
//! [`Storage`] is object-safe and path-based: every method takes a
//! [`VirtualPath`] (absolute, normalised, never above `/`) and answers with
//! an [`FsError`], so a daemon holds an `Arc<dyn Storage>` per session and
//! never sees a host path. A future object store implements the same trait.
//!
//! The handles that outlive one call are concrete types with a pluggable
//! inside:
//!
//! * [`ReadFile`] (a download) is either a local [`File`] (which the data
//!   path can hand to `sendfile(2)` through [`ReadFile::sendfile_to`] or
//!   [`ReadFile::as_file`]) or any [`ReadObject`] (a byte stream).
//! * [`Upload`] wraps a `Box<dyn` [`WriteObject`]`>`: write, then commit or
//!   abort; dropping it uncommitted aborts.
//! * [`DirReader`] streams a directory in batches, so a listing of a huge
//!   directory never has to be held in memory whole.
//!
//! # Blocking
//!
//! Every call on a [`Storage`] blocks, and runtimes make them off their
//! event loop (as jobs). The handles are used on the data path, call by
//! call, so each one says how long its calls may wait ([`Blocking`]):
//! [`ReadFile::blocking`], [`Upload::blocking`], [`DirReader::blocking`].
//! Local files answer [`Blocking::Bounded`] (a `pread` from the page cache,
//! a `write` to a local file), which an event loop may do inline; anything
//! that may wait for a network round trip answers [`Blocking::MayStall`]
//! (the default of the traits an implementation provides), and runtimes
//! keep those calls off their loop.
//!
//! # Implementations
//!
//! * [`local`]: [`LocalFs`], a directory of the local file system,
//!   confined beneath it with `openat2(2)` (its module documentation says
//!   how, and how `errno`s map to [`FsError`]s).

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Duration;

use ftp_proto::{DirEntry, FsError, Metadata, StoreMode, UnixTime, VirtualPath};
use rustix::fs as rfs;
use rustix::io::Errno;

pub mod local;
#[cfg(feature = "s3")]
pub mod s3;

pub use local::{DEFAULT_UMASK, LocalFs, OpenRootError};
#[cfg(feature = "s3")]
pub use s3::{S3Error, S3Storage, SweepError, SweepReport};

/// A `--storage s3://BUCKET[/PREFIX]` location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// The key prefix served as `/`, without leading or trailing `/`
    /// (empty for the whole bucket).
    pub prefix: String,
}

/// Where and how to reach the bucket.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// Bucket name.
    pub bucket: String,
    /// Key prefix served as `/` (no leading or trailing `/`; empty for the
    /// whole bucket).
    pub prefix: String,
    /// Endpoint of an S3-compatible server (path-style addressing); `None`
    /// for AWS.
    pub endpoint: Option<String>,
    /// Region name (`us-east-1` by default).
    pub region: String,
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Session token of temporary credentials.
    pub session_token: Option<String>,
    /// Multipart uploads under the prefix begun at least this long ago are
    /// aborted at start (left behind by a killed daemon); `None`: none are
    /// (`--s3-abort-uploads-after`).
    pub abort_uploads_after: Option<Duration>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key_id", &self.access_key_id)
            .field("abort_uploads_after", &self.abort_uploads_after)
            .finish_non_exhaustive()
    }
}

/// Why a `--storage` value is not usable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageUrlError {
    /// Not an `s3://` URL.
    Scheme,
    /// No bucket name, or one S3 does not allow.
    Bucket,
    /// The prefix has an empty, `.` or `..` component.
    Prefix,
}

impl StorageUrlError {
    /// What is wrong, in words.
    pub fn reason(&self) -> &'static str {
        match self {
            StorageUrlError::Scheme => "storage must be s3://BUCKET[/PREFIX]",
            StorageUrlError::Bucket => "the bucket name in s3://BUCKET is missing or invalid",
            StorageUrlError::Prefix => {
                "the prefix in s3://BUCKET/PREFIX has an empty, '.' or '..' part"
            }
        }
    }
}

impl fmt::Display for StorageUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for StorageUrlError {}

impl S3Location {
    /// Parses `s3://BUCKET[/PREFIX]` (a trailing `/` is allowed).
    pub fn parse(url: &str) -> Result<S3Location, StorageUrlError> {
        let rest = url.strip_prefix("s3://").ok_or(StorageUrlError::Scheme)?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !bucket_ok {
            return Err(StorageUrlError::Bucket);
        }
        let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(StorageUrlError::Prefix);
        }
        Ok(S3Location {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
        })
    }
}

/// How long a call on a storage handle may wait: whether a runtime may
/// make it on its event loop's thread.
///
/// The handles that a transfer uses call by call say it ([`ReadFile`],
/// [`Upload`], [`DirReader`], and through them
/// [`crate::transfer::Source`] and [`crate::transfer::Sink`]); the calls
/// it is about are reading (`read`, `sendfile_to`, `next_batch`), writing
/// (`write_all`, splicing into [`Upload::local_file`]), committing and
/// aborting. Opening a handle is a [`Storage`] call and always runs off
/// the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Blocking {
    /// Each call is bounded local work: a `pread` from the page cache (or
    /// at worst one read of the local disk), a `write` into the page cache,
    /// a `rename`. An event loop may make it inline, as nginx does with
    /// local files.
    Bounded,
    /// A call may wait for something off the machine (a network round trip
    /// to an object store, a remote file system) for as long as that takes.
    /// A runtime must make it off its event loop, so that one slow store
    /// never stalls the other sessions of that loop. The default of every
    /// trait a store implements, so a store that does not say is kept off
    /// the loop.
    MayStall,
}

impl Blocking {
    /// Whether calls may stall: `true` for [`Blocking::MayStall`].
    pub fn may_stall(self) -> bool {
        self == Blocking::MayStall
    }
}

/// Everything the daemons do to files, beneath one root.
///
/// Object-safe and path-based, so a session can hold an `Arc<dyn Storage>`
/// whatever the backing store is. All methods block; runtimes call them off
/// their event loop.
pub trait Storage: Send + Sync + fmt::Debug {
    /// Metadata of `path`, following symlinks only while they resolve
    /// beneath the root.
    fn stat(&self, path: &VirtualPath) -> Result<Metadata, FsError>;

    /// A streaming reader over the entries of the directory `path` (symlinks
    /// to directories beneath the root are followed); if `path` is not a
    /// directory, the reader yields the single entry of that file.
    fn read_dir(&self, path: &VirtualPath) -> Result<Box<dyn DirReader>, FsError>;

    /// Opens the regular file `path` for reading from byte `offset` on
    /// (an offset beyond the end reads nothing). A directory is
    /// [`FsError::IsADirectory`].
    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadFile, FsError>;

    /// [`open_read`](Self::open_read), but only if that cannot block:
    /// `None` when it would need I/O (or the storage cannot tell), and the
    /// caller then opens the file off the event loop. A local file whose
    /// path the kernel has cached opens here, on the loop, saving the
    /// round trip through the worker pool.
    fn open_read_cached(
        &self,
        _path: &VirtualPath,
        _offset: u64,
    ) -> Option<Result<ReadFile, FsError>> {
        None
    }

    /// Opens an upload to `path` (for [`StoreMode::Unique`], `path` is the
    /// directory to create a new file in). A new file gets the mode
    /// `0o666 & !umask` where the storage has modes (`None`: the
    /// storage's default umask).
    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
        umask: Option<u32>,
    ) -> Result<Upload, FsError>;

    /// Creates the directory `path`, with the mode `0o777 & !umask` where
    /// the storage has modes (`None`: the storage's default umask).
    fn make_dir(&self, path: &VirtualPath, umask: Option<u32>) -> Result<(), FsError>;

    /// Removes the empty directory `path`.
    fn remove_dir(&self, path: &VirtualPath) -> Result<(), FsError>;

    /// Removes the file (or symlink itself) `path`.
    fn remove_file(&self, path: &VirtualPath) -> Result<(), FsError>;

    /// Renames `from` to `to` (replacing a file at `to`). A symlink is
    /// renamed itself, never followed.
    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError>;

    /// Sets the permission bits of `path` (see the implementation for which
    /// bits are honoured).
    fn set_permissions(&self, path: &VirtualPath, mode: u32) -> Result<(), FsError>;

    /// Sets the modification time of `path`.
    fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<(), FsError>;

    /// The bytes an upload into the directory `path` could take (`AVBL`):
    /// the file system's space available to unprivileged users. A store
    /// with no such figure answers [`FsError::Other`].
    fn available(&self, path: &VirtualPath) -> Result<u64, FsError> {
        let _ = path;
        Err(FsError::Other)
    }

    /// A storage rooted at the directory `path` (for per-user homes): its
    /// `/` is `path`, and nothing above it can be reached through it.
    fn subtree(&self, path: &VirtualPath) -> Result<Arc<dyn Storage>, FsError>;
}

/// A directory being read, batch by batch.
pub trait DirReader: Send + fmt::Debug {
    /// Up to `max` more entries (`max` 0 counts as 1), in no particular
    /// order and without `.` and `..`; an empty vector means the end.
    fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>, FsError>;

    /// How long [`next_batch`](Self::next_batch) may wait (see
    /// [`Blocking`]); [`Blocking::MayStall`] unless the store says
    /// otherwise.
    fn blocking(&self) -> Blocking {
        Blocking::MayStall
    }
}

/// A readable object of a store that has no local file (the object-store
/// side of [`ReadFile`]).
pub trait ReadObject: Send + fmt::Debug {
    /// The object's total size in bytes, as known when it was opened.
    fn size(&self) -> u64;

    /// Reads the next bytes (from the offset the object was opened at on);
    /// `Ok(0)` at the end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// How long [`read`](Self::read) may wait (see [`Blocking`]);
    /// [`Blocking::MayStall`] unless the store says otherwise.
    fn blocking(&self) -> Blocking {
        Blocking::MayStall
    }
}

/// A file opened for a download.
///
/// Local files keep their [`File`] (so the data path can use `sendfile(2)`)
/// and are read with positional reads from their own offset; other stores
/// provide a [`ReadObject`].
#[derive(Debug)]
pub struct ReadFile {
    inner: ReadInner,
}

#[derive(Debug)]
enum ReadInner {
    Local {
        file: File,
        position: u64,
        size: u64,
        sendfile_works: bool,
    },
    Object(Box<dyn ReadObject>),
}

impl ReadFile {
    /// Wraps a local file, to be read from `offset` on; its size is taken
    /// now.
    pub fn from_file(file: File, offset: u64) -> io::Result<ReadFile> {
        let size = file.metadata()?.len();
        Ok(ReadFile::local(file, offset, size))
    }

    /// Wraps a local file of `size` bytes, to be read from `offset` on.
    pub(crate) fn local(file: File, offset: u64, size: u64) -> ReadFile {
        ReadFile {
            inner: ReadInner::Local {
                file,
                position: offset,
                size,
                sendfile_works: true,
            },
        }
    }

    /// Wraps an object of another store.
    pub fn from_object(object: Box<dyn ReadObject>) -> ReadFile {
        ReadFile {
            inner: ReadInner::Object(object),
        }
    }

    /// The file's total size when it was opened (not what is left after the
    /// offset).
    pub fn size(&self) -> u64 {
        match &self.inner {
            ReadInner::Local { size, .. } => *size,
            ReadInner::Object(object) => object.size(),
        }
    }

    /// How long a read may wait (see [`Blocking`]): [`Blocking::Bounded`]
    /// for a local file, what the object says otherwise.
    pub fn blocking(&self) -> Blocking {
        match &self.inner {
            ReadInner::Local { .. } => Blocking::Bounded,
            ReadInner::Object(object) => object.blocking(),
        }
    }

    /// The local file, when there is one.
    pub fn as_file(&self) -> Option<&File> {
        match &self.inner {
            ReadInner::Local { file, .. } => Some(file),
            ReadInner::Object(_) => None,
        }
    }

    /// The offset of the next byte for a local file (`None` for objects).
    pub fn position(&self) -> Option<u64> {
        match &self.inner {
            ReadInner::Local { position, .. } => Some(*position),
            ReadInner::Object(_) => None,
        }
    }

    /// Sends up to `max` bytes of a local file from the current position to
    /// `out` with `sendfile(2)` and advances the position.
    ///
    /// `Ok(Some(0))` means the end of the file: a local file is read up to
    /// the size it had when it was opened. `Ok(None)` means zero-copy
    /// does not apply (not a local file, or the kernel refused sendfile for
    /// this pair, after which it is not tried again) and the caller should
    /// [`read`](Self::read) instead. A non-blocking `out` that is full gives
    /// an error of kind [`io::ErrorKind::WouldBlock`].
    pub fn sendfile_to(&mut self, out: BorrowedFd<'_>, max: usize) -> io::Result<Option<usize>> {
        let ReadInner::Local {
            file,
            position,
            size,
            sendfile_works,
        } = &mut self.inner
        else {
            return Ok(None);
        };
        if !*sendfile_works {
            return Ok(None);
        }
        if *position >= *size {
            // The size it had when it was opened is sent (as vsftpd does):
            // no call only to be told the end, one per download.
            return Ok(Some(0));
        }
        // The kernel caps one call at 0x7fff_f000 bytes anyway.
        let count = max.clamp(1, 0x7fff_f000);
        loop {
            match rfs::sendfile(out, &*file, Some(position), count) {
                Ok(n) => return Ok(Some(n)),
                Err(Errno::INTR) => continue,
                Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {
                    *sendfile_works = false;
                    return Ok(None);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Read for ReadFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.inner {
            ReadInner::Local {
                file,
                position,
                size,
                ..
            } => loop {
                if *position >= *size {
                    return Ok(0);
                }
                let want = buf
                    .len()
                    .min(usize::try_from(*size - *position).unwrap_or(usize::MAX));
                match file.read_at(&mut buf[..want], *position) {
                    Ok(n) => {
                        *position = position.saturating_add(n as u64);
                        return Ok(n);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            },
            ReadInner::Object(object) => object.read(buf),
        }
    }
}

/// The store-specific side of an [`Upload`].
///
/// Implementations must abort (discard whatever is not committed) when
/// dropped without [`commit`](Self::commit).
pub trait WriteObject: Send + fmt::Debug {
    /// The name of the file being written (the chosen one for
    /// [`StoreMode::Unique`]).
    fn name(&self) -> &str;

    /// Writes all of `data`.
    fn write_all(&mut self, data: &[u8]) -> Result<(), FsError>;

    /// The local file the data goes to (at its current position), so the
    /// data path can move bytes into it with `splice(2)`; `None` (the
    /// default) for stores without one.
    fn local_file(&self) -> Option<&File> {
        None
    }

    /// How long [`write_all`](Self::write_all), [`commit`](Self::commit)
    /// and [`abort`](Self::abort) (or the drop) may wait (see
    /// [`Blocking`]); [`Blocking::MayStall`] unless the store says
    /// otherwise.
    fn blocking(&self) -> Blocking {
        Blocking::MayStall
    }

    /// Makes the upload visible under its name.
    fn commit(self: Box<Self>) -> Result<(), FsError>;

    /// Discards the upload as far as the mode allows: a
    /// [`StoreMode::Replace`] upload is dropped whole; data already written
    /// in place (append, resume, unique) stays, as with vsftpd.
    fn abort(self: Box<Self>);
}

/// A file being uploaded: [`write_all`](Self::write_all), then
/// [`commit`](Self::commit) or [`abort`](Self::abort). Dropping it without
/// committing aborts.
#[derive(Debug)]
pub struct Upload {
    inner: Box<dyn WriteObject>,
}

impl Upload {
    /// Wraps a store's upload.
    pub fn new(inner: Box<dyn WriteObject>) -> Upload {
        Upload { inner }
    }

    /// The name of the file (for [`StoreMode::Unique`], the name chosen).
    pub fn name(&self) -> &str {
        self.inner.name()
    }

    /// Writes all of `data`.
    pub fn write_all(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.inner.write_all(data)
    }

    /// The local file being written, if the store has one (see
    /// [`WriteObject::local_file`]).
    pub fn local_file(&self) -> Option<&File> {
        self.inner.local_file()
    }

    /// How long writing, committing and aborting may wait (see
    /// [`WriteObject::blocking`]).
    pub fn blocking(&self) -> Blocking {
        self.inner.blocking()
    }

    /// Completes the upload: for [`StoreMode::Replace`], renames the
    /// temporary file over the target.
    pub fn commit(self) -> Result<(), FsError> {
        self.inner.commit()
    }

    /// Gives the upload up: for [`StoreMode::Replace`], removes the
    /// temporary file (the previous file stays untouched); data written in
    /// place ([`StoreMode::Append`], [`StoreMode::Resume`],
    /// [`StoreMode::Unique`]) stays.
    pub fn abort(self) {
        self.inner.abort()
    }
}

/// Maps an `errno` to what the client is told (see the [`local`] module
/// documentation for the table).
pub fn map_errno(err: Errno) -> FsError {
    match err {
        Errno::NOENT => FsError::NotFound,
        Errno::ACCESS
        | Errno::PERM
        | Errno::XDEV
        | Errno::LOOP
        | Errno::ROFS
        | Errno::BUSY
        | Errno::TXTBSY => FsError::PermissionDenied,
        Errno::EXIST => FsError::AlreadyExists,
        Errno::NOTDIR => FsError::NotADirectory,
        Errno::ISDIR => FsError::IsADirectory,
        Errno::NOTEMPTY => FsError::NotEmpty,
        Errno::NOSPC | Errno::FBIG => FsError::NoSpace,
        Errno::DQUOT => FsError::QuotaExceeded,
        Errno::NAMETOOLONG | Errno::INVAL | Errno::ILSEQ => FsError::InvalidName,
        _ => FsError::Other,
    }
}

/// An [`FsError`] carried inside an [`io::Error`] (see
/// [`io_error_from_fs`]).
#[derive(Debug)]
struct FsErrorInIo(FsError);

impl fmt::Display for FsErrorInIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "file error: {:?}", self.0)
    }
}

impl std::error::Error for FsErrorInIo {}

/// Wraps an [`FsError`] in an [`io::Error`] (for APIs that speak
/// `io::Result`); [`fs_error_from_io`] gets it back exactly.
pub fn io_error_from_fs(err: FsError) -> io::Error {
    let kind = match err {
        FsError::NotFound => io::ErrorKind::NotFound,
        FsError::PermissionDenied => io::ErrorKind::PermissionDenied,
        FsError::AlreadyExists => io::ErrorKind::AlreadyExists,
        FsError::NotADirectory => io::ErrorKind::NotADirectory,
        FsError::IsADirectory => io::ErrorKind::IsADirectory,
        FsError::NotEmpty => io::ErrorKind::DirectoryNotEmpty,
        FsError::NoSpace | FsError::QuotaExceeded => io::ErrorKind::StorageFull,
        FsError::InvalidName => io::ErrorKind::InvalidInput,
        FsError::TooManyMatches | FsError::Other => io::ErrorKind::Other,
    };
    io::Error::new(kind, FsErrorInIo(err))
}

/// What an [`io::Error`] from a file means to the client: the wrapped
/// [`FsError`] of [`io_error_from_fs`], else the `errno` mapping, else
/// [`FsError::Other`].
pub fn fs_error_from_io(err: &io::Error) -> FsError {
    if let Some(inner) = err.get_ref().and_then(|e| e.downcast_ref::<FsErrorInIo>()) {
        return inner.0;
    }
    match Errno::from_io_error(err) {
        Some(errno) => map_errno(errno),
        None => match err.kind() {
            io::ErrorKind::NotFound => FsError::NotFound,
            io::ErrorKind::PermissionDenied => FsError::PermissionDenied,
            io::ErrorKind::AlreadyExists => FsError::AlreadyExists,
            io::ErrorKind::StorageFull => FsError::NoSpace,
            _ => FsError::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An upload of a store that says nothing about blocking.
    #[derive(Debug)]
    struct Remote;

    impl WriteObject for Remote {
        fn name(&self) -> &str {
            "remote"
        }

        fn write_all(&mut self, _data: &[u8]) -> Result<(), FsError> {
            Ok(())
        }

        fn commit(self: Box<Self>) -> Result<(), FsError> {
            Ok(())
        }

        fn abort(self: Box<Self>) {}
    }

    #[test]
    fn stores_that_do_not_say_may_stall() {
        let upload = Upload::new(Box::new(Remote));
        assert_eq!(upload.blocking(), Blocking::MayStall);
        assert!(upload.local_file().is_none());
        upload.abort();
        assert!(!Blocking::Bounded.may_stall());
    }

    #[test]
    fn s3_locations() {
        assert_eq!(
            S3Location::parse("s3://my-bucket/a/b/"),
            Ok(S3Location {
                bucket: "my-bucket".into(),
                prefix: "a/b".into()
            })
        );
        assert_eq!(
            S3Location::parse("s3://bkt").map(|l| l.prefix),
            Ok(String::new())
        );
        assert_eq!(S3Location::parse("/srv"), Err(StorageUrlError::Scheme));
        assert_eq!(S3Location::parse("s3://"), Err(StorageUrlError::Bucket));
        assert_eq!(
            S3Location::parse("s3://Bad_Bucket"),
            Err(StorageUrlError::Bucket)
        );
        assert_eq!(
            S3Location::parse("s3://bkt/a/../b"),
            Err(StorageUrlError::Prefix)
        );
        assert_eq!(
            S3Location::parse("s3://bkt//a"),
            Err(StorageUrlError::Prefix)
        );
    }

    #[test]
    fn io_errors_round_trip() {
        for e in [
            FsError::NotFound,
            FsError::QuotaExceeded,
            FsError::Other,
            FsError::InvalidName,
        ] {
            assert_eq!(fs_error_from_io(&io_error_from_fs(e)), e);
        }
        assert_eq!(
            fs_error_from_io(&io::Error::from_raw_os_error(28)),
            FsError::NoSpace
        );
        assert_eq!(map_errno(Errno::XDEV), FsError::PermissionDenied);
        assert_eq!(map_errno(Errno::DQUOT), FsError::QuotaExceeded);
    }
}
