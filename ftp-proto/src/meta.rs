//! File metadata as the runtime reports it: the input of every listing,
//! `SIZE`, `MDTM` and `MLST`.

use alloc::string::String;

use crate::time::UnixTime;

/// What kind of object a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (listed as such; following it is the runtime's call).
    Symlink,
    /// Anything else (device, socket, fifo).
    Other,
}

/// Metadata of one file, directory or link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metadata {
    /// The kind of object.
    pub kind: FileKind,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time, if known.
    pub modified: Option<UnixTime>,
    /// Unix permission bits (`0o7777` part of `st_mode`).
    pub mode: u32,
    /// Number of hard links.
    pub nlink: u64,
    /// Owner name or number as it should be printed.
    pub owner: String,
    /// Group name or number as it should be printed.
    pub group: String,
    /// A stable identity (for MLSD `unique`), for example device and inode.
    pub unique: Option<(u64, u64)>,
}

impl Metadata {
    /// Whether this is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind == FileKind::Dir
    }

    /// Whether this is a regular file.
    pub fn is_file(&self) -> bool {
        self.kind == FileKind::File
    }
}

/// One directory entry: a name and its metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// The entry's name, a single path component.
    pub name: String,
    /// Its metadata (of the link itself for symlinks).
    pub meta: Metadata,
    /// For symlinks, where the link points, when known.
    pub link_target: Option<String>,
}
