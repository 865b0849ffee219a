//! [`LocalFs`]: a [`Storage`] on the local file system, beneath one
//! directory.
//!
//! # How [`LocalFs`] stays beneath its root
//!
//! `LocalFs` opens its root directory once and resolves every path relative
//! to that descriptor with `openat2(2)` and
//! `RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS`: the kernel itself refuses any
//! `..`, absolute symlink or relative symlink that would leave the root
//! (including symlinks planted inside the root that point outside, and
//! absolute symlinks even when they would land inside). Operations on a final
//! component (create, mkdir, unlink, rmdir, rename) resolve the *parent*
//! directory that way and then use the `*at` system call with the last name,
//! which never follows a symlink in that name. So a symlink inside the root
//! is followed only where it resolves beneath the root, for reading and for
//! writing alike.
//!
//! * Kernels without `openat2` (before Linux 5.6, or sandboxes that filter
//!   it): [`LocalFs::open`] fails closed with [`OpenRootError::Unsupported`];
//!   there is no user-space fallback walk.
//! * Errors: `ENOENT` → [`FsError::NotFound`]; `EACCES`, `EPERM`, `EXDEV`
//!   (the root boundary), `EROFS`, `EBUSY`, `ETXTBSY` and `ELOOP` (too many
//!   links, a magic link, or a symlink where none may be) →
//!   [`FsError::PermissionDenied`]; `EEXIST` → [`FsError::AlreadyExists`];
//!   `ENOTDIR` → [`FsError::NotADirectory`]; `EISDIR` →
//!   [`FsError::IsADirectory`]; `ENOTEMPTY` → [`FsError::NotEmpty`];
//!   `ENOSPC` and `EFBIG` → [`FsError::NoSpace`]; `EDQUOT` →
//!   [`FsError::QuotaExceeded`]; `ENAMETOOLONG`, `EINVAL`, `EILSEQ` →
//!   [`FsError::InvalidName`]; anything else → [`FsError::Other`].
//! * Names that are not UTF-8 are listed lossily (with U+FFFD); such files
//!   cannot be addressed by a client, since a [`VirtualPath`] is UTF-8.
//! * Uploads with [`StoreMode::Replace`] go to a hidden temporary file
//!   beside the target (`.NAME.part-<random hex>`, created
//!   `O_EXCL|O_NOFOLLOW`) that [`Upload::commit`] renames over the target,
//!   so an interrupted upload never damages the previous file and concurrent
//!   uploads to one name end with one complete version. Like `rsync`, this
//!   replaces the directory entry: a symlink at the target is replaced by
//!   the new file (it is never written through; a link that does not
//!   resolve beneath the root is refused with
//!   [`FsError::PermissionDenied`]), and the new file gets the
//!   permission bits of the file it replaces (new files: `0o666 & !umask`).
//!   No `fsync` is done. [`StoreMode::Append`], [`StoreMode::Resume`] and
//!   [`StoreMode::Unique`] write in place (Unique names are
//!   `ftp-upload-<n>`, created `O_EXCL|O_NOFOLLOW`); aborting them keeps
//!   what was written. Append and Resume follow a final symlink only when it
//!   resolves beneath the root, and create a missing file beside the parent
//!   (never through a dangling symlink).
//! * `set_permissions` honours `mode & 0o1777`: like vsftpd, setuid and
//!   setgid are never set over FTP. It and `set_modified` act on a
//!   descriptor of the file resolved beneath the root (falling back to that
//!   descriptor's `/proc/self/fd` link when the file is unreadable), never
//!   on a path that could be swapped for an escaping symlink.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::{CStr, OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ftp_proto::{DirEntry, FileKind, FsError, Metadata, StoreMode, UnixTime, VirtualPath};
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{
    Blocking, DirReader, ReadFile, Storage, Upload, WriteObject, fs_error_from_io, map_errno,
};

/// Why [`LocalFs::open`] failed.
#[derive(Debug)]
pub enum OpenRootError {
    /// The root directory could not be opened.
    Io(io::Error),
    /// The kernel does not offer `openat2(2)` (Linux before 5.6, or a
    /// sandbox filters it), so paths cannot be confined safely.
    Unsupported,
}

impl fmt::Display for OpenRootError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenRootError::Io(e) => write!(f, "cannot open the root directory: {e}"),
            OpenRootError::Unsupported => f.write_str(
                "the kernel does not support openat2 (Linux 5.6 or later is required \
                 to confine file access beneath the root)",
            ),
        }
    }
}

impl std::error::Error for OpenRootError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenRootError::Io(e) => Some(e),
            OpenRootError::Unsupported => None,
        }
    }
}

/// The default umask for new files and directories.
pub const DEFAULT_UMASK: u32 = 0o022;

/// A [`Storage`] on the local file system, confined beneath one directory
/// with `openat2(2)` (see the [module documentation](self)).
pub struct LocalFs {
    root: OwnedFd,
    names: Arc<IdNames>,
    umask: u32,
}

impl fmt::Debug for LocalFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalFs")
            .field("root_fd", &self.root.as_raw_fd())
            .field("umask", &format_args!("{:03o}", self.umask))
            .finish()
    }
}

impl LocalFs {
    /// Opens `root` (following symlinks in it: it is the administrator's
    /// path) and checks that the kernel supports `openat2`. User and group
    /// names are read from `/etc/passwd` and `/etc/group` now, once.
    pub fn open(root: impl AsRef<Path>) -> Result<LocalFs, OpenRootError> {
        let fd = rfs::open(
            root.as_ref(),
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| OpenRootError::Io(e.into()))?;
        match rfs::openat2(
            &fd,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            resolve(),
        ) {
            Ok(_) => {}
            Err(Errno::NOSYS) => return Err(OpenRootError::Unsupported),
            Err(e) => return Err(OpenRootError::Io(e.into())),
        }
        Ok(LocalFs {
            root: fd,
            names: Arc::new(IdNames::load()),
            umask: DEFAULT_UMASK,
        })
    }

    /// Sets the umask for new files (`0o666 & !umask`) and directories
    /// (`0o777 & !umask`); the default is [`DEFAULT_UMASK`]. The modes are
    /// set exactly, whatever the process umask is.
    pub fn with_umask(mut self, umask: u32) -> LocalFs {
        self.umask = umask & 0o777;
        self
    }

    /// The umask for new files and directories.
    pub fn umask(&self) -> u32 {
        self.umask
    }

    fn open_beneath(
        &self,
        path: &VirtualPath,
        flags: OFlags,
        mode: Mode,
    ) -> Result<OwnedFd, Errno> {
        let rel = match path.relative() {
            "" => ".",
            rel => rel,
        };
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.root,
                &*os(rel),
                flags | OFlags::CLOEXEC,
                mode,
                resolve(),
            ) {
                // EAGAIN: a concurrent rename made the kernel unsure a `..`
                // in a symlink stayed beneath; retrying is the documented
                // answer.
                Err(Errno::AGAIN | Errno::INTR) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// The parent directory of `path` (opened `O_PATH` beneath the root)
    /// and the last name; `None` for the root itself.
    fn open_parent<'p>(
        &self,
        path: &'p VirtualPath,
    ) -> Result<Option<(OwnedFd, &'p str)>, FsError> {
        let Some(name) = path.file_name() else {
            return Ok(None);
        };
        if name.is_empty() || name == "." || name == ".." {
            return Err(FsError::InvalidName);
        }
        let dir = self
            .open_beneath(
                &path.parent(),
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )
            .map_err(map_errno)?;
        Ok(Some((dir, name)))
    }

    fn metadata(&self, st: &rfs::Stat) -> Metadata {
        let raw = RawStat::from(st);
        Metadata {
            kind: kind_of(raw.mode),
            size: raw.size,
            modified: Some(UnixTime(raw.mtime)),
            mode: raw.mode & 0o7777,
            nlink: raw.nlink,
            owner: self.names.user(raw.uid),
            group: self.names.group(raw.gid),
            unique: Some((raw.dev, raw.ino)),
        }
    }

    fn file_mode(&self, umask: Option<u32>) -> u32 {
        0o666 & !(umask.unwrap_or(self.umask) & 0o777)
    }

    /// Opens `path` for writing in place (following symlinks beneath the
    /// root), creating it (without following a final symlink) if missing.
    fn open_in_place(
        &self,
        path: &VirtualPath,
        append: bool,
        file_mode: u32,
    ) -> Result<(File, String), FsError> {
        let Some(name) = path.file_name() else {
            return Err(FsError::IsADirectory);
        };
        let mut flags = OFlags::WRONLY | OFlags::NOCTTY | OFlags::NONBLOCK;
        if append {
            flags |= OFlags::APPEND;
        }
        for _ in 0..4 {
            match self.open_beneath(path, flags, Mode::empty()) {
                Ok(fd) => {
                    let st = rfs::fstat(&fd).map_err(map_errno)?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                        return Err(FsError::PermissionDenied);
                    }
                    return Ok((File::from(fd), name.to_owned()));
                }
                Err(Errno::NOENT) => {
                    let Some((dir, name)) = self.open_parent(path)? else {
                        return Err(FsError::IsADirectory);
                    };
                    match create_new(&dir, name, file_mode, flags) {
                        Ok(fd) => return Ok((File::from(fd), name.to_owned())),
                        // Appeared meanwhile, or a dangling symlink that
                        // `O_EXCL` refuses to create through: try again.
                        Err(Errno::EXIST) => continue,
                        Err(e) => return Err(map_errno(e)),
                    }
                }
                Err(e) => return Err(map_errno(e)),
            }
        }
        Err(FsError::PermissionDenied)
    }

    fn open_replace(&self, path: &VirtualPath, file_mode: u32) -> Result<LocalUpload, FsError> {
        let Some((dir, name)) = self.open_parent(path)? else {
            return Err(FsError::IsADirectory);
        };
        let mut mode = file_mode;
        match rfs::statat(&dir, &*os(name), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => return Err(FsError::IsADirectory),
                FileType::RegularFile => mode = st.st_mode & 0o777,
                FileType::Symlink => {
                    // The link itself is replaced, never written through;
                    // still, only accept links that resolve beneath the
                    // root (to a non-directory).
                    let fd = self
                        .open_beneath(path, OFlags::PATH, Mode::empty())
                        .map_err(|_| FsError::PermissionDenied)?;
                    let st = rfs::fstat(&fd).map_err(map_errno)?;
                    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
                        return Err(FsError::IsADirectory);
                    }
                }
                _ => {}
            },
            Err(Errno::NOENT) => {}
            Err(e) => return Err(map_errno(e)),
        }
        let stem = truncate_at_char(name, 200);
        for _ in 0..16 {
            let temp = format!(".{stem}.part-{:016x}", token());
            match create_new(&dir, &temp, mode, OFlags::WRONLY) {
                Ok(fd) => {
                    return Ok(LocalUpload {
                        file: File::from(fd),
                        name: name.to_owned(),
                        temp: Some((dir, temp)),
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(map_errno(e)),
            }
        }
        Err(FsError::AlreadyExists)
    }

    fn open_unique(&self, path: &VirtualPath, file_mode: u32) -> Result<LocalUpload, FsError> {
        let dir = self
            .open_beneath(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(map_errno)?;
        for _ in 0..64 {
            let name = format!("ftp-upload-{}", token() % 1_000_000_000);
            match create_new(&dir, &name, file_mode, OFlags::WRONLY) {
                Ok(fd) => {
                    return Ok(LocalUpload {
                        file: File::from(fd),
                        name,
                        temp: None,
                    });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(map_errno(e)),
            }
        }
        Err(FsError::AlreadyExists)
    }

    /// Changes an attribute of `path` (followed beneath the root) through
    /// a descriptor, never through a path that could be swapped for a
    /// symlink leading out.
    fn change_attr(&self, path: &VirtualPath, change: AttrChange) -> Result<(), FsError> {
        let handle = self
            .open_beneath(path, OFlags::PATH, Mode::empty())
            .map_err(map_errno)?;
        let st = rfs::fstat(&handle).map_err(map_errno)?;
        if matches!(
            FileType::from_raw_mode(st.st_mode),
            FileType::RegularFile | FileType::Directory
        ) {
            // An ordinary descriptor allows fchmod/futimens. Opening a file
            // or directory for reading has no side effects.
            match self.open_beneath(
                path,
                OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    let again = rfs::fstat(&fd).map_err(map_errno)?;
                    if (again.st_dev, again.st_ino) == (st.st_dev, st.st_ino) {
                        return change.apply_fd(fd.as_fd()).map_err(map_errno);
                    }
                }
                Err(Errno::ACCESS | Errno::PERM) => {}
                Err(e) => return Err(map_errno(e)),
            }
        }
        // Without read access (or for other kinds of file), go through the
        // `O_PATH` descriptor's procfs link, which names exactly the inode
        // resolved beneath the root.
        let link = format!("/proc/self/fd/{}", handle.as_raw_fd());
        match change.apply_path(&link) {
            Ok(()) => Ok(()),
            Err(Errno::NOENT) => Err(FsError::PermissionDenied),
            Err(e) => Err(map_errno(e)),
        }
    }
}

/// How downloads are opened: O_NONBLOCK so that a FIFO cannot hang the
/// open (it is refused by [`read_file`]).
const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::NOCTTY).union(OFlags::NONBLOCK);

/// The [`ReadFile`] of a file opened for a download, from `offset` on:
/// regular files only.
fn read_file(fd: OwnedFd, offset: u64) -> Result<ReadFile, FsError> {
    let st = rfs::fstat(&fd).map_err(map_errno)?;
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => return Err(FsError::IsADirectory),
        _ => return Err(FsError::PermissionDenied),
    }
    let size = RawStat::from(&st).size;
    Ok(ReadFile::local(File::from(fd), offset, size))
}

fn resolve() -> ResolveFlags {
    ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS
}

/// A name or path of the engine as the system calls want it: its bytes,
/// with the escapes of names that are not UTF-8 turned back into their
/// bytes ([`ftp_proto::name`]); borrowed when there are none.
fn os(name: &str) -> Cow<'_, OsStr> {
    if ftp_proto::name::has_escapes(name) {
        Cow::Owned(OsString::from_vec(ftp_proto::name::encode(name)))
    } else {
        Cow::Borrowed(OsStr::new(name))
    }
}

/// Creates a new file `name` in `dir` (never through a symlink) and sets
/// its permission bits to exactly `mode`.
fn create_new(dir: &OwnedFd, name: &str, mode: u32, access: OFlags) -> Result<OwnedFd, Errno> {
    let flags = access
        | OFlags::CREATE
        | OFlags::EXCL
        | OFlags::NOFOLLOW
        | OFlags::NOCTTY
        | OFlags::CLOEXEC;
    let fd = rfs::openat(dir, &*os(name), flags, Mode::from_raw_mode(mode))?;
    // The process umask also applied; make the configured mode exact. A
    // file system without permission bits may refuse; that is fine.
    let _ = rfs::fchmod(&fd, Mode::from_raw_mode(mode));
    Ok(fd)
}

fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A number for temporary and unique names: distinct within the process,
/// hard to predict across processes. Collisions are handled by `O_EXCL`.
fn token() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u64;
    splitmix64(n ^ nanos.rotate_left(21) ^ (pid << 40))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[derive(Clone, Copy, Debug)]
enum AttrChange {
    Mode(u32),
    Modified(UnixTime),
}

impl AttrChange {
    fn timestamps(time: UnixTime) -> rfs::Timestamps {
        rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: rfs::Timespec {
                tv_sec: time.0,
                tv_nsec: 0,
            },
        }
    }

    fn apply_fd(self, fd: BorrowedFd<'_>) -> Result<(), Errno> {
        match self {
            AttrChange::Mode(mode) => rfs::fchmod(fd, Mode::from_raw_mode(mode)),
            AttrChange::Modified(time) => rfs::futimens(fd, &Self::timestamps(time)),
        }
    }

    fn apply_path(self, path: &str) -> Result<(), Errno> {
        match self {
            AttrChange::Mode(mode) => rfs::chmodat(
                rfs::CWD,
                &*os(path),
                Mode::from_raw_mode(mode),
                AtFlags::empty(),
            ),
            AttrChange::Modified(time) => rfs::utimensat(
                rfs::CWD,
                &*os(path),
                &Self::timestamps(time),
                AtFlags::empty(),
            ),
        }
    }
}

impl Storage for LocalFs {
    fn stat(&self, path: &VirtualPath) -> Result<Metadata, FsError> {
        let fd = self
            .open_beneath(path, OFlags::PATH, Mode::empty())
            .map_err(map_errno)?;
        let st = rfs::fstat(&fd).map_err(map_errno)?;
        Ok(self.metadata(&st))
    }

    fn read_dir(&self, path: &VirtualPath) -> Result<Box<dyn DirReader>, FsError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NONBLOCK;
        match self.open_beneath(path, flags, Mode::empty()) {
            Ok(fd) => {
                let dir = rfs::Dir::new(fd).map_err(map_errno)?;
                Ok(Box::new(LocalDirReader {
                    dir,
                    names: Arc::clone(&self.names),
                    done: false,
                }))
            }
            Err(Errno::NOTDIR) => {
                // Not a directory: list the entry itself (lstat semantics,
                // like the entries of a directory).
                let Some((dir, name)) = self.open_parent(path)? else {
                    return Err(FsError::NotADirectory);
                };
                let st =
                    rfs::statat(&dir, &*os(name), AtFlags::SYMLINK_NOFOLLOW).map_err(map_errno)?;
                let link_target = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    rfs::readlinkat(&dir, &*os(name), Vec::new())
                        .ok()
                        .map(|t| ftp_proto::name::decode(t.as_bytes()))
                } else {
                    None
                };
                Ok(Box::new(SingleEntry(Some(DirEntry {
                    name: name.to_owned(),
                    meta: self.metadata(&st),
                    link_target,
                }))))
            }
            Err(e) => Err(map_errno(e)),
        }
    }

    fn open_read(&self, path: &VirtualPath, offset: u64) -> Result<ReadFile, FsError> {
        let fd = self
            .open_beneath(path, READ_FLAGS, Mode::empty())
            .map_err(map_errno)?;
        read_file(fd, offset)
    }

    fn open_read_cached(
        &self,
        path: &VirtualPath,
        offset: u64,
    ) -> Option<Result<ReadFile, FsError>> {
        let rel = match path.relative() {
            "" => ".",
            rel => rel,
        };
        // RESOLVE_CACHED (Linux 5.12): the kernel answers from its caches
        // or fails with EAGAIN; an older kernel says EINVAL. Either way the
        // worker pool does the ordinary open.
        let resolve = resolve() | ResolveFlags::CACHED;
        match rfs::openat2(
            &self.root,
            &*os(rel),
            READ_FLAGS | OFlags::CLOEXEC,
            Mode::empty(),
            resolve,
        ) {
            Err(Errno::AGAIN | Errno::INVAL | Errno::INTR) => None,
            Err(e) => Some(Err(map_errno(e))),
            // fstat of an open local file reads the in-memory inode.
            Ok(fd) => Some(read_file(fd, offset)),
        }
    }

    fn open_write(
        &self,
        path: &VirtualPath,
        mode: StoreMode,
        umask: Option<u32>,
    ) -> Result<Upload, FsError> {
        let file_mode = self.file_mode(umask);
        let upload = match mode {
            StoreMode::Replace => self.open_replace(path, file_mode)?,
            StoreMode::Unique => self.open_unique(path, file_mode)?,
            StoreMode::Append => {
                let (file, name) = self.open_in_place(path, true, file_mode)?;
                LocalUpload {
                    file,
                    name,
                    temp: None,
                }
            }
            StoreMode::Resume(offset) => {
                let (mut file, name) = self.open_in_place(path, false, file_mode)?;
                file.set_len(offset).map_err(|e| fs_error_from_io(&e))?;
                file.seek(SeekFrom::Start(offset))
                    .map_err(|e| fs_error_from_io(&e))?;
                LocalUpload {
                    file,
                    name,
                    temp: None,
                }
            }
        };
        Ok(Upload::new(Box::new(upload)))
    }

    fn make_dir(&self, path: &VirtualPath, umask: Option<u32>) -> Result<(), FsError> {
        let Some((dir, name)) = self.open_parent(path)? else {
            return Err(FsError::AlreadyExists);
        };
        let mode = 0o777 & !(umask.unwrap_or(self.umask) & 0o777);
        rfs::mkdirat(&dir, &*os(name), Mode::from_raw_mode(mode)).map_err(map_errno)?;
        // Make the configured umask exact (the process umask also applied),
        // keeping a setgid bit inherited from the parent.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fixed = rfs::openat(&dir, &*os(name), flags, Mode::empty()).and_then(|fd| {
            let st = rfs::fstat(&fd)?;
            if st.st_mode & 0o777 == mode {
                Ok(())
            } else {
                rfs::fchmod(&fd, Mode::from_raw_mode((st.st_mode & 0o7000) | mode))
            }
        });
        // The directory exists either way; a mode that could not be fixed
        // is not worth failing MKD for.
        let _ = fixed;
        Ok(())
    }

    fn remove_dir(&self, path: &VirtualPath) -> Result<(), FsError> {
        let Some((dir, name)) = self.open_parent(path)? else {
            return Err(FsError::PermissionDenied);
        };
        rfs::unlinkat(&dir, &*os(name), AtFlags::REMOVEDIR).map_err(map_errno)
    }

    fn remove_file(&self, path: &VirtualPath) -> Result<(), FsError> {
        let Some((dir, name)) = self.open_parent(path)? else {
            return Err(FsError::IsADirectory);
        };
        rfs::unlinkat(&dir, &*os(name), AtFlags::empty()).map_err(map_errno)
    }

    fn rename(&self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        let (Some((from_dir, from_name)), Some((to_dir, to_name))) =
            (self.open_parent(from)?, self.open_parent(to)?)
        else {
            return Err(FsError::PermissionDenied);
        };
        rfs::renameat(&from_dir, &*os(from_name), &to_dir, &*os(to_name)).map_err(map_errno)
    }

    /// Sets the permission bits `mode & 0o1777`: like vsftpd, the setuid
    /// and setgid bits are never set from FTP.
    fn set_permissions(&self, path: &VirtualPath, mode: u32) -> Result<(), FsError> {
        self.change_attr(path, AttrChange::Mode(mode & 0o1777))
    }

    fn set_modified(&self, path: &VirtualPath, time: UnixTime) -> Result<(), FsError> {
        self.change_attr(path, AttrChange::Modified(time))
    }

    fn available(&self, path: &VirtualPath) -> Result<u64, FsError> {
        let fd = self
            .open_beneath(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(map_errno)?;
        let vfs = rfs::fstatvfs(&fd).map_err(map_errno)?;
        Ok(vfs.f_bavail.saturating_mul(vfs.f_frsize))
    }

    fn subtree(&self, path: &VirtualPath) -> Result<Arc<dyn Storage>, FsError> {
        let root = self
            .open_beneath(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
            .map_err(map_errno)?;
        Ok(Arc::new(LocalFs {
            root,
            names: Arc::clone(&self.names),
            umask: self.umask,
        }))
    }
}

/// The fields of `struct stat` we use, in one set of types on every
/// architecture.
struct RawStat {
    mode: u32,
    size: u64,
    mtime: i64,
    nlink: u64,
    uid: u32,
    gid: u32,
    dev: u64,
    ino: u64,
}

impl From<&rfs::Stat> for RawStat {
    // The field types of `struct stat` differ between architectures, so a
    // conversion that is a no-op here is not one everywhere.
    #[allow(clippy::useless_conversion)]
    fn from(st: &rfs::Stat) -> RawStat {
        RawStat {
            mode: st.st_mode,
            size: u64::try_from(st.st_size).unwrap_or(0),
            mtime: i64::from(st.st_mtime),
            nlink: u64::from(st.st_nlink),
            uid: st.st_uid,
            gid: st.st_gid,
            dev: u64::from(st.st_dev),
            ino: u64::from(st.st_ino),
        }
    }
}

fn kind_of(mode: u32) -> FileKind {
    match FileType::from_raw_mode(mode) {
        FileType::RegularFile => FileKind::File,
        FileType::Directory => FileKind::Dir,
        FileType::Symlink => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// A local directory being listed.
#[derive(Debug)]
struct LocalDirReader {
    dir: rfs::Dir,
    names: Arc<IdNames>,
    done: bool,
}

impl LocalDirReader {
    fn entry(&self, name: &CStr, d_type: FileType) -> Option<DirEntry> {
        let fd = self.dir.fd().ok()?;
        let display = ftp_proto::name::decode(name.to_bytes());
        match rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let raw = RawStat::from(&st);
                let kind = kind_of(raw.mode);
                let link_target = if kind == FileKind::Symlink {
                    rfs::readlinkat(fd, name, Vec::new())
                        .ok()
                        .map(|t| ftp_proto::name::decode(t.as_bytes()))
                } else {
                    None
                };
                Some(DirEntry {
                    name: display,
                    meta: Metadata {
                        kind,
                        size: raw.size,
                        modified: Some(UnixTime(raw.mtime)),
                        mode: raw.mode & 0o7777,
                        nlink: raw.nlink,
                        owner: self.names.user(raw.uid),
                        group: self.names.group(raw.gid),
                        unique: Some((raw.dev, raw.ino)),
                    },
                    link_target,
                })
            }
            // Removed since the directory was read.
            Err(Errno::NOENT) => None,
            // Cannot be examined (no search permission, say): list it with
            // what the directory itself tells.
            Err(_) => Some(DirEntry {
                name: display,
                meta: Metadata {
                    kind: match d_type {
                        FileType::RegularFile => FileKind::File,
                        FileType::Directory => FileKind::Dir,
                        FileType::Symlink => FileKind::Symlink,
                        _ => FileKind::Other,
                    },
                    size: 0,
                    modified: None,
                    mode: 0,
                    nlink: 1,
                    owner: String::from("?"),
                    group: String::from("?"),
                    unique: None,
                },
                link_target: None,
            }),
        }
    }
}

impl DirReader for LocalDirReader {
    /// `getdents` and `fstatat` on a local directory.
    fn blocking(&self) -> Blocking {
        Blocking::Bounded
    }

    fn next_batch(&mut self, max: usize) -> Result<Vec<DirEntry>, FsError> {
        let max = max.max(1);
        let mut out = Vec::with_capacity(max.min(256));
        while out.len() < max && !self.done {
            match self.dir.read() {
                None => self.done = true,
                Some(Err(e)) => {
                    self.done = true;
                    return Err(map_errno(e));
                }
                Some(Ok(entry)) => {
                    let name = entry.file_name();
                    if name.to_bytes() == b"." || name.to_bytes() == b".." {
                        continue;
                    }
                    if let Some(e) = self.entry(name, entry.file_type()) {
                        out.push(e);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The listing of a path that is not a directory: its one entry.
#[derive(Debug)]
struct SingleEntry(Option<DirEntry>);

impl DirReader for SingleEntry {
    fn next_batch(&mut self, _max: usize) -> Result<Vec<DirEntry>, FsError> {
        Ok(self.0.take().into_iter().collect())
    }

    /// The entry is in memory already.
    fn blocking(&self) -> Blocking {
        Blocking::Bounded
    }
}

/// A local upload: a file and, for [`StoreMode::Replace`], the directory
/// and temporary name to rename from.
#[derive(Debug)]
struct LocalUpload {
    file: File,
    name: String,
    /// For replace uploads: the directory and the temporary name. `None`
    /// once committed (or for in-place modes).
    temp: Option<(OwnedFd, String)>,
}

impl WriteObject for LocalUpload {
    fn name(&self) -> &str {
        &self.name
    }

    fn write_all(&mut self, data: &[u8]) -> Result<(), FsError> {
        self.file.write_all(data).map_err(|e| fs_error_from_io(&e))
    }

    fn local_file(&self) -> Option<&File> {
        Some(&self.file)
    }

    /// `write` to a local file, `renameat` and `unlinkat` in its directory.
    fn blocking(&self) -> Blocking {
        Blocking::Bounded
    }

    fn commit(mut self: Box<Self>) -> Result<(), FsError> {
        let Some((dir, temp)) = self.temp.take() else {
            return Ok(());
        };
        rfs::renameat(&dir, &*os(&temp), &dir, &*os(&self.name)).map_err(|e| {
            let _ = rfs::unlinkat(&dir, &*os(&temp), AtFlags::empty());
            map_errno(e)
        })
    }

    fn abort(self: Box<Self>) {
        // Drop removes the temporary file.
    }
}

impl Drop for LocalUpload {
    fn drop(&mut self) {
        if let Some((dir, temp)) = self.temp.take() {
            let _ = rfs::unlinkat(&dir, &*os(&temp), AtFlags::empty());
        }
    }
}

/// User and group names by id, read once.
#[derive(Default)]
struct IdNames {
    users: HashMap<u32, String>,
    groups: HashMap<u32, String>,
}

impl fmt::Debug for IdNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdNames")
            .field("users", &self.users.len())
            .field("groups", &self.groups.len())
            .finish()
    }
}

impl IdNames {
    fn load() -> IdNames {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        IdNames {
            users: parse_id_file(&read("/etc/passwd")),
            groups: parse_id_file(&read("/etc/group")),
        }
    }

    fn user(&self, uid: u32) -> String {
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn group(&self, gid: u32) -> String {
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| gid.to_string())
    }
}

/// Parses `name:password:id:...` lines (`/etc/passwd`, `/etc/group`); the
/// first name for an id wins.
fn parse_id_file(text: &str) -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        if let Ok(id) = id.trim().parse::<u32>() {
            map.entry(id).or_insert_with(|| name.to_owned());
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    /// `<tmp>/root` is served; `<tmp>/outside` holds secrets.
    struct Fixture {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        outside: PathBuf,
        fs: LocalFs,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("secret.txt"), b"secret").unwrap();
        std::fs::write(outside.join("dir/inner.txt"), b"inner secret").unwrap();
        std::fs::write(root.join("sub/a.txt"), b"hello").unwrap();
        std::fs::write(root.join("file.txt"), b"0123456789").unwrap();
        symlink("../outside/secret.txt", root.join("esc_file")).unwrap();
        symlink("../outside/dir", root.join("esc_dir")).unwrap();
        symlink(outside.join("secret.txt"), root.join("abs_file")).unwrap();
        symlink(outside.join("dir"), root.join("abs_dir")).unwrap();
        symlink(root.join("file.txt"), root.join("abs_inside")).unwrap();
        symlink("sub/a.txt", root.join("in_file")).unwrap();
        symlink("sub", root.join("in_dir")).unwrap();
        symlink("../file.txt", root.join("sub/up_file")).unwrap();
        symlink("/proc/self/root/etc/passwd", root.join("magic")).unwrap();
        let fs = LocalFs::open(&root).unwrap();
        Fixture {
            _tmp: tmp,
            root,
            outside,
            fs,
        }
    }

    fn all_entries(reader: &mut dyn DirReader) -> Vec<DirEntry> {
        let mut out = Vec::new();
        loop {
            let batch = reader.next_batch(7).unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(batch);
        }
    }

    fn names(fs: &dyn Storage, path: &str) -> Vec<String> {
        let mut names: Vec<String> = all_entries(&mut *fs.read_dir(&vp(path)).unwrap())
            .into_iter()
            .map(|e| e.name)
            .collect();
        names.sort();
        names
    }

    fn read_all(fs: &dyn Storage, path: &str) -> Result<Vec<u8>, FsError> {
        let mut file = fs.open_read(&vp(path), 0)?;
        let mut out = Vec::new();
        file.read_to_end(&mut out).unwrap();
        Ok(out)
    }

    fn upload(
        fs: &dyn Storage,
        path: &str,
        mode: StoreMode,
        data: &[u8],
    ) -> Result<String, FsError> {
        let mut up = fs.open_write(&vp(path), mode, None)?;
        up.write_all(data)?;
        let name = up.name().to_owned();
        up.commit()?;
        Ok(name)
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".part-"))
            .collect()
    }

    const ESCAPES: [&str; 5] = ["/esc_file", "/esc_dir", "/abs_file", "/abs_dir", "/magic"];

    #[test]
    fn stat_follows_only_inside_links() {
        let f = fixture();
        let m = f.fs.stat(&vp("/file.txt")).unwrap();
        assert_eq!(m.kind, FileKind::File);
        assert_eq!(m.size, 10);
        assert!(m.modified.is_some());
        assert!(m.unique.is_some());
        assert_eq!(f.fs.stat(&vp("/in_file")).unwrap().size, 5);
        assert!(f.fs.stat(&vp("/in_dir")).unwrap().is_dir());
        assert!(f.fs.stat(&vp("/")).unwrap().is_dir());
        assert_eq!(f.fs.stat(&vp("/sub/up_file")).unwrap().size, 10);
        for p in ESCAPES {
            assert_eq!(f.fs.stat(&vp(p)), Err(FsError::PermissionDenied), "{p}");
        }
        // An absolute symlink is refused even when it points inside.
        assert_eq!(
            f.fs.stat(&vp("/abs_inside")),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(
            f.fs.stat(&vp("/esc_dir/inner.txt")),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(f.fs.stat(&vp("/missing")), Err(FsError::NotFound));
        assert_eq!(f.fs.stat(&vp("/file.txt/x")), Err(FsError::NotADirectory));
    }

    #[test]
    fn listing_shows_links_as_links() {
        let f = fixture();
        let entries = all_entries(&mut *f.fs.read_dir(&vp("/")).unwrap());
        let esc = entries.iter().find(|e| e.name == "esc_file").unwrap();
        assert_eq!(esc.meta.kind, FileKind::Symlink);
        assert_eq!(esc.link_target.as_deref(), Some("../outside/secret.txt"));
        let sub = entries.iter().find(|e| e.name == "sub").unwrap();
        assert_eq!(sub.meta.kind, FileKind::Dir);
        let file = entries.iter().find(|e| e.name == "file.txt").unwrap();
        assert_eq!(file.meta.size, 10);
        assert!(entries.iter().all(|e| e.name != "." && e.name != ".."));
        assert_eq!(names(&f.fs, "/in_dir"), ["a.txt", "deeper", "up_file"]);
        for p in ESCAPES {
            assert!(f.fs.read_dir(&vp(p)).is_err(), "{p}");
        }
        assert_eq!(
            f.fs.read_dir(&vp("/esc_dir/")).unwrap_err(),
            FsError::PermissionDenied
        );
        assert_eq!(f.fs.read_dir(&vp("/nope")).unwrap_err(), FsError::NotFound);
    }

    #[test]
    fn listing_a_file_gives_its_entry() {
        let f = fixture();
        let entries = all_entries(&mut *f.fs.read_dir(&vp("/sub/a.txt")).unwrap());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].name, "a.txt");
        assert_eq!(entries[0].meta.size, 5);
        let entries = all_entries(&mut *f.fs.read_dir(&vp("/in_file")).unwrap());
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].meta.kind, FileKind::Symlink);
        assert_eq!(entries[0].link_target.as_deref(), Some("sub/a.txt"));
    }

    #[test]
    fn large_directory_in_batches() {
        let f = fixture();
        for i in 0..1000 {
            std::fs::write(f.root.join(format!("sub/deeper/f{i:04}")), b"x").unwrap();
        }
        let mut reader = f.fs.read_dir(&vp("/sub/deeper")).unwrap();
        let mut total = 0;
        let mut batches = 0;
        loop {
            let batch = reader.next_batch(100).unwrap();
            if batch.is_empty() {
                break;
            }
            assert!(batch.len() <= 100);
            total += batch.len();
            batches += 1;
        }
        assert_eq!(total, 1000);
        assert_eq!(batches, 10);
        assert!(reader.next_batch(100).unwrap().is_empty());
    }

    #[test]
    fn non_utf8_names_keep_their_bytes() {
        let f = fixture();
        let raw = b"bad\xffname";
        let name = std::ffi::OsStr::from_bytes(raw);
        std::fs::write(f.root.join("sub").join(name), b"bytes").unwrap();
        let listed = ftp_proto::name::decode(raw);
        assert!(names(&f.fs, "/sub").contains(&listed));
        let path = vp("/sub").resolve(&listed).unwrap();
        assert_eq!(f.fs.stat(&path).unwrap().size, 5);
        let renamed = vp("/sub")
            .resolve(&ftp_proto::name::decode(b"\xe9t\xe9"))
            .unwrap();
        f.fs.rename(&path, &renamed).unwrap();
        assert_eq!(
            std::fs::read(
                f.root
                    .join("sub")
                    .join(std::ffi::OsStr::from_bytes(b"\xe9t\xe9"))
            )
            .unwrap(),
            b"bytes"
        );
        f.fs.remove_file(&renamed).unwrap();
    }

    #[test]
    fn reads_with_offset_and_refuses_escapes() {
        let f = fixture();
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789");
        assert_eq!(read_all(&f.fs, "/in_file").unwrap(), b"hello");
        let mut r = f.fs.open_read(&vp("/file.txt"), 7).unwrap();
        assert_eq!(r.size(), 10);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"789");
        let mut r = f.fs.open_read(&vp("/file.txt"), 70).unwrap();
        assert_eq!(r.read(&mut [0; 8]).unwrap(), 0);
        assert_eq!(
            f.fs.open_read(&vp("/sub"), 0).unwrap_err(),
            FsError::IsADirectory
        );
        for p in ESCAPES {
            assert!(f.fs.open_read(&vp(p), 0).is_err(), "{p}");
        }
        assert!(f.fs.open_read(&vp("/esc_dir/inner.txt"), 0).is_err());
        assert!(f.fs.open_read(&vp("/abs_dir/inner.txt"), 0).is_err());
    }

    #[test]
    fn cached_opens_answer_as_open_read_does_or_defer() {
        let f = fixture();
        // Warm the kernel's caches the way a client's earlier commands do.
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789");
        // A path the kernel has cached opens here, at the offset asked.
        match f.fs.open_read_cached(&vp("/file.txt"), 7) {
            Some(Ok(mut r)) => {
                assert_eq!(r.size(), 10);
                let mut out = Vec::new();
                r.read_to_end(&mut out).unwrap();
                assert_eq!(out, b"789");
            }
            // Kernels before 5.12 have no RESOLVE_CACHED: always deferred.
            None => return,
            Some(Err(e)) => panic!("cached open failed: {e:?}"),
        }
        // The same refusals as open_read, or a deferral to it; never a
        // file outside the root.
        let _ = f.fs.stat(&vp("/sub"));
        assert!(matches!(
            f.fs.open_read_cached(&vp("/sub"), 0),
            Some(Err(FsError::IsADirectory)) | None
        ));
        for p in ESCAPES.iter().copied().chain([
            "/esc_dir/inner.txt",
            "/abs_dir/inner.txt",
            "/esc_file",
            "/magic",
        ]) {
            let _ = f.fs.open_read(&vp(p), 0);
            assert!(
                matches!(f.fs.open_read_cached(&vp(p), 0), Some(Err(_)) | None),
                "{p}"
            );
        }
    }

    #[test]
    fn writes_never_go_through_escaping_links() {
        let f = fixture();
        for mode in [StoreMode::Append, StoreMode::Resume(0), StoreMode::Replace] {
            for p in ["/esc_file", "/abs_file", "/magic"] {
                assert!(upload(&f.fs, p, mode, b"pwned").is_err(), "{p} {mode:?}");
            }
            for p in [
                "/esc_dir/new.txt",
                "/abs_dir/inner.txt",
                "/esc_dir/inner.txt",
            ] {
                assert!(upload(&f.fs, p, mode, b"pwned").is_err(), "{p} {mode:?}");
            }
        }
        assert!(upload(&f.fs, "/esc_dir", StoreMode::Unique, b"pwned").is_err());
        assert!(f.fs.make_dir(&vp("/esc_dir/new"), None).is_err());
        assert!(f.fs.remove_file(&vp("/esc_dir/inner.txt")).is_err());
        assert!(
            f.fs.rename(&vp("/esc_dir/inner.txt"), &vp("/stolen"))
                .is_err()
        );
        assert!(
            f.fs.rename(&vp("/file.txt"), &vp("/esc_dir/planted"))
                .is_err()
        );
        assert!(f.fs.set_permissions(&vp("/esc_file"), 0o777).is_err());
        assert!(f.fs.set_modified(&vp("/abs_file"), UnixTime(0)).is_err());
        assert!(f.fs.subtree(&vp("/esc_dir")).is_err());
        // Nothing outside changed.
        assert_eq!(
            std::fs::read(f.outside.join("secret.txt")).unwrap(),
            b"secret"
        );
        assert_eq!(
            std::fs::read(f.outside.join("dir/inner.txt")).unwrap(),
            b"inner secret"
        );
        let mut outside: Vec<_> = std::fs::read_dir(f.outside.join("dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        outside.sort();
        assert_eq!(outside, ["inner.txt"]);
        let mode = std::fs::metadata(f.outside.join("secret.txt"))
            .unwrap()
            .permissions()
            .mode();
        assert_ne!(mode & 0o777, 0o777);
        assert!(leftovers(&f.root).is_empty());
        // The link itself can be removed; its target stays.
        f.fs.remove_file(&vp("/esc_file")).unwrap();
        assert!(f.outside.join("secret.txt").exists());
    }

    #[test]
    fn writes_through_inside_links() {
        let f = fixture();
        upload(&f.fs, "/in_file", StoreMode::Append, b" world").unwrap();
        assert_eq!(
            std::fs::read(f.root.join("sub/a.txt")).unwrap(),
            b"hello world"
        );
        upload(&f.fs, "/in_dir/new.txt", StoreMode::Replace, b"new").unwrap();
        assert_eq!(std::fs::read(f.root.join("sub/new.txt")).unwrap(), b"new");
        // Replace swaps the link itself for the file, like rsync.
        upload(&f.fs, "/in_file", StoreMode::Replace, b"replaced").unwrap();
        assert!(
            !std::fs::symlink_metadata(f.root.join("in_file"))
                .unwrap()
                .is_symlink()
        );
        assert_eq!(
            std::fs::read(f.root.join("sub/a.txt")).unwrap(),
            b"hello world"
        );
        assert_eq!(
            upload(&f.fs, "/in_dir", StoreMode::Replace, b"x"),
            Err(FsError::IsADirectory)
        );
    }

    #[test]
    fn directory_operations() {
        let f = fixture();
        f.fs.make_dir(&vp("/newdir"), None).unwrap();
        assert!(f.fs.stat(&vp("/newdir")).unwrap().is_dir());
        assert_eq!(
            f.fs.make_dir(&vp("/newdir"), None),
            Err(FsError::AlreadyExists)
        );
        assert_eq!(f.fs.make_dir(&vp("/"), None), Err(FsError::AlreadyExists));
        assert_eq!(f.fs.make_dir(&vp("/no/such"), None), Err(FsError::NotFound));
        assert_eq!(f.fs.remove_dir(&vp("/sub")), Err(FsError::NotEmpty));
        assert_eq!(
            f.fs.remove_dir(&vp("/file.txt")),
            Err(FsError::NotADirectory)
        );
        assert_eq!(f.fs.remove_dir(&vp("/")), Err(FsError::PermissionDenied));
        f.fs.remove_dir(&vp("/newdir")).unwrap();
        assert_eq!(f.fs.stat(&vp("/newdir")), Err(FsError::NotFound));
        assert_eq!(f.fs.remove_file(&vp("/sub")), Err(FsError::IsADirectory));
        assert_eq!(f.fs.remove_file(&vp("/nope")), Err(FsError::NotFound));
        f.fs.remove_file(&vp("/sub/a.txt")).unwrap();
        assert!(!f.root.join("sub/a.txt").exists());
        // Removing a link to a directory removes the link only.
        f.fs.remove_file(&vp("/in_dir")).unwrap();
        assert!(f.root.join("sub").is_dir());
    }

    #[test]
    fn umask_applies_exactly() {
        let f = fixture();
        let fs = LocalFs::open(&f.root).unwrap().with_umask(0o027);
        fs.make_dir(&vp("/m"), None).unwrap();
        assert_eq!(fs.stat(&vp("/m")).unwrap().mode, 0o750);
        upload(&fs, "/m/f", StoreMode::Replace, b"x").unwrap();
        assert_eq!(fs.stat(&vp("/m/f")).unwrap().mode, 0o640);
        upload(&fs, "/m/g", StoreMode::Append, b"x").unwrap();
        assert_eq!(fs.stat(&vp("/m/g")).unwrap().mode, 0o640);
        let fs = fs.with_umask(0);
        fs.make_dir(&vp("/open"), None).unwrap();
        assert_eq!(fs.stat(&vp("/open")).unwrap().mode, 0o777);
        // Replacing keeps the old file's permission bits.
        fs.set_permissions(&vp("/m/f"), 0o604).unwrap();
        upload(&fs, "/m/f", StoreMode::Replace, b"y").unwrap();
        assert_eq!(fs.stat(&vp("/m/f")).unwrap().mode, 0o604);
    }

    #[test]
    fn rename_moves_and_never_follows() {
        let f = fixture();
        f.fs.rename(&vp("/file.txt"), &vp("/sub/moved.txt"))
            .unwrap();
        assert_eq!(read_all(&f.fs, "/sub/moved.txt").unwrap(), b"0123456789");
        assert_eq!(f.fs.rename(&vp("/gone"), &vp("/x")), Err(FsError::NotFound));
        assert_eq!(
            f.fs.rename(&vp("/"), &vp("/x")),
            Err(FsError::PermissionDenied)
        );
        assert_eq!(
            f.fs.rename(&vp("/sub"), &vp("/sub/deeper/sub")),
            Err(FsError::InvalidName)
        );
        // Renaming an escaping link moves the link, not its target.
        f.fs.rename(&vp("/abs_file"), &vp("/sub/link")).unwrap();
        assert!(
            std::fs::symlink_metadata(f.root.join("sub/link"))
                .unwrap()
                .is_symlink()
        );
        assert!(f.outside.join("secret.txt").exists());
        assert_eq!(f.fs.stat(&vp("/sub/link")), Err(FsError::PermissionDenied));
    }

    #[test]
    fn permissions_and_times() {
        let f = fixture();
        f.fs.set_permissions(&vp("/file.txt"), 0o600).unwrap();
        assert_eq!(f.fs.stat(&vp("/file.txt")).unwrap().mode, 0o600);
        f.fs.set_permissions(&vp("/file.txt"), 0o6755).unwrap();
        assert_eq!(f.fs.stat(&vp("/file.txt")).unwrap().mode, 0o755);
        f.fs.set_permissions(&vp("/in_dir"), 0o700).unwrap();
        assert_eq!(f.fs.stat(&vp("/sub")).unwrap().mode, 0o700);
        // Without read permission the change still works (via procfs).
        f.fs.set_permissions(&vp("/file.txt"), 0o000).unwrap();
        f.fs.set_permissions(&vp("/file.txt"), 0o644).unwrap();
        assert_eq!(f.fs.stat(&vp("/file.txt")).unwrap().mode, 0o644);
        f.fs.set_modified(&vp("/in_file"), UnixTime(1_000_000_000))
            .unwrap();
        assert_eq!(
            f.fs.stat(&vp("/sub/a.txt")).unwrap().modified,
            Some(UnixTime(1_000_000_000))
        );
        assert_eq!(
            f.fs.set_modified(&vp("/nope"), UnixTime(0)),
            Err(FsError::NotFound)
        );
        assert_eq!(
            f.fs.set_permissions(&vp("/nope"), 0o644),
            Err(FsError::NotFound)
        );
    }

    #[test]
    fn attributes_of_special_files_go_through_procfs() {
        let f = fixture();
        rfs::mkfifoat(rfs::CWD, f.root.join("fifo"), Mode::from_raw_mode(0o600)).unwrap();
        f.fs.set_permissions(&vp("/fifo"), 0o640).unwrap();
        assert_eq!(f.fs.stat(&vp("/fifo")).unwrap().mode, 0o640);
        assert_eq!(f.fs.stat(&vp("/fifo")).unwrap().kind, FileKind::Other);
        f.fs.set_modified(&vp("/fifo"), UnixTime(12_345)).unwrap();
        assert_eq!(
            f.fs.stat(&vp("/fifo")).unwrap().modified,
            Some(UnixTime(12_345))
        );
        // Neither readable nor writable as a file.
        assert_eq!(
            f.fs.open_read(&vp("/fifo"), 0).unwrap_err(),
            FsError::PermissionDenied
        );
        assert!(
            f.fs.open_write(&vp("/fifo"), StoreMode::Append, None)
                .is_err()
        );
    }

    #[test]
    fn subtree_is_confined() {
        let f = fixture();
        let sub = f.fs.subtree(&vp("/sub")).unwrap();
        assert_eq!(names(&*sub, "/"), ["a.txt", "deeper", "up_file"]);
        assert_eq!(read_all(&*sub, "/a.txt").unwrap(), b"hello");
        // `../file.txt` was inside the old root, but not inside this one.
        assert_eq!(sub.stat(&vp("/up_file")), Err(FsError::PermissionDenied));
        assert!(sub.open_read(&vp("/up_file"), 0).is_err());
        let via_link = f.fs.subtree(&vp("/in_dir")).unwrap();
        assert!(via_link.stat(&vp("/deeper")).unwrap().is_dir());
        assert_eq!(
            f.fs.subtree(&vp("/file.txt")).unwrap_err(),
            FsError::NotADirectory
        );
    }

    #[test]
    fn replace_interrupted_keeps_the_old_file() {
        let f = fixture();
        let mut up =
            f.fs.open_write(&vp("/file.txt"), StoreMode::Replace, None)
                .unwrap();
        up.write_all(b"partial").unwrap();
        assert_eq!(leftovers(&f.root).len(), 1);
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789");
        drop(up);
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789");
        assert!(leftovers(&f.root).is_empty());
        let mut up =
            f.fs.open_write(&vp("/file.txt"), StoreMode::Replace, None)
                .unwrap();
        up.write_all(b"partial").unwrap();
        up.abort();
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789");
        assert!(leftovers(&f.root).is_empty());
        upload(&f.fs, "/file.txt", StoreMode::Replace, b"whole").unwrap();
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"whole");
        assert!(leftovers(&f.root).is_empty());
        assert_eq!(
            upload(&f.fs, "/", StoreMode::Replace, b"x"),
            Err(FsError::IsADirectory)
        );
        assert_eq!(
            upload(&f.fs, "/sub", StoreMode::Replace, b"x"),
            Err(FsError::IsADirectory)
        );
        assert_eq!(
            upload(&f.fs, "/no/x", StoreMode::Replace, b"x"),
            Err(FsError::NotFound)
        );
    }

    #[test]
    fn concurrent_replace_leaves_one_complete_version() {
        let f = fixture();
        let fs = Arc::new(f.fs);
        let threads: Vec<_> = (0u8..8)
            .map(|i| {
                let fs = Arc::clone(&fs);
                std::thread::spawn(move || {
                    let mut up = fs
                        .open_write(&vp("/race.bin"), StoreMode::Replace, None)
                        .unwrap();
                    for _ in 0..64 {
                        up.write_all(&[i; 1024]).unwrap();
                    }
                    up.commit().unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let data = std::fs::read(f.root.join("race.bin")).unwrap();
        assert_eq!(data.len(), 64 * 1024);
        assert!(data.iter().all(|&b| b == data[0]));
        assert!(leftovers(&f.root).is_empty());
    }

    #[test]
    fn append_resume_unique() {
        let f = fixture();
        upload(&f.fs, "/file.txt", StoreMode::Append, b"AB").unwrap();
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123456789AB");
        upload(&f.fs, "/new.txt", StoreMode::Append, b"first").unwrap();
        assert_eq!(read_all(&f.fs, "/new.txt").unwrap(), b"first");
        upload(&f.fs, "/file.txt", StoreMode::Resume(4), b"xy").unwrap();
        assert_eq!(read_all(&f.fs, "/file.txt").unwrap(), b"0123xy");
        upload(&f.fs, "/fresh.txt", StoreMode::Resume(0), b"abc").unwrap();
        assert_eq!(read_all(&f.fs, "/fresh.txt").unwrap(), b"abc");
        assert_eq!(
            upload(&f.fs, "/sub", StoreMode::Append, b"x"),
            Err(FsError::IsADirectory)
        );
        let a = upload(&f.fs, "/sub", StoreMode::Unique, b"one").unwrap();
        let b = upload(&f.fs, "/sub", StoreMode::Unique, b"two").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("ftp-upload-"));
        assert_eq!(read_all(&f.fs, &format!("/sub/{a}")).unwrap(), b"one");
        assert_eq!(read_all(&f.fs, &format!("/sub/{b}")).unwrap(), b"two");
        let mut up =
            f.fs.open_write(&vp("/sub"), StoreMode::Unique, None)
                .unwrap();
        let name = up.name().to_owned();
        up.write_all(b"x").unwrap();
        drop(up);
        // An unique upload is in place: what was written stays.
        assert!(f.root.join("sub").join(name).exists());
        assert_eq!(
            upload(&f.fs, "/file.txt", StoreMode::Unique, b"x"),
            Err(FsError::NotADirectory)
        );
    }

    #[test]
    fn long_names_get_a_valid_temporary() {
        let f = fixture();
        let name = "é".repeat(127); // 254 bytes
        upload(&f.fs, &format!("/{name}"), StoreMode::Replace, b"long").unwrap();
        assert_eq!(read_all(&f.fs, &format!("/{name}")).unwrap(), b"long");
        let too_long = "x".repeat(300);
        assert_eq!(
            upload(&f.fs, &format!("/{too_long}"), StoreMode::Replace, b"x"),
            Err(FsError::InvalidName)
        );
    }

    #[test]
    fn id_files_parse() {
        let map = parse_id_file("root:x:0:0::/root:/bin/sh\n# c\nbad\nftp:x:21:\nroot2:x:0:\n");
        assert_eq!(map.get(&0).map(String::as_str), Some("root"));
        assert_eq!(map.get(&21).map(String::as_str), Some("ftp"));
        assert_eq!(map.len(), 2);
        let names = IdNames {
            users: map,
            groups: HashMap::new(),
        };
        assert_eq!(names.user(21), "ftp");
        assert_eq!(names.user(4242), "4242");
        assert_eq!(names.group(7), "7");
    }

    #[test]
    fn open_missing_root_fails() {
        assert!(matches!(
            LocalFs::open("/definitely/not/here"),
            Err(OpenRootError::Io(_))
        ));
    }
}
