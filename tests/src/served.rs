//! What a [`crate::TestServer`] serves, a folder or a prefix of a
//! bucket, and the questions the tests ask of it, answered the same way
//! for both: without the daemon (files on disk through `std::fs`, objects
//! through plain HTTP).

use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use crate::objects::Objects;
use crate::tree::{self, Entry};

/// A folder on disk, or a prefix of a bucket.
#[derive(Clone, Debug)]
pub(crate) enum Served {
    /// The served folder (canonical).
    Folder(PathBuf),
    /// The served prefix.
    Bucket(Objects),
}

impl Served {
    /// The file `rel` in the folder.
    fn path(root: &Path, rel: &str) -> PathBuf {
        root.join(rel.trim_start_matches('/'))
    }

    /// The content of the file `rel`, `None` if there is no such file.
    pub(crate) fn read_file(&self, rel: &str) -> Option<Vec<u8>> {
        match self {
            Served::Folder(root) => {
                let path = Self::path(root, rel);
                match fs::read(&path) {
                    Ok(data) => Some(data),
                    Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::IsADirectory) => {
                        None
                    }
                    Err(e) => panic!("read {}: {e}", path.display()),
                }
            }
            Served::Bucket(objects) => objects.get(rel),
        }
    }

    /// Writes the file `rel`, making the folders above it.
    pub(crate) fn write_file(&self, rel: &str, data: &[u8]) {
        match self {
            Served::Folder(root) => {
                let path = Self::path(root, rel);
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)
                        .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
                }
                fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            }
            Served::Bucket(objects) => objects.put(rel, data),
        }
    }

    /// Makes the folder `rel` and its parents.
    pub(crate) fn make_dir(&self, rel: &str) {
        match self {
            Served::Folder(root) => {
                let path = Self::path(root, rel);
                fs::create_dir_all(&path)
                    .unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            }
            Served::Bucket(objects) => objects.make_dir(rel),
        }
    }

    /// Removes the file or empty folder `rel`, if it is there.
    pub(crate) fn remove(&self, rel: &str) {
        match self {
            Served::Folder(root) => {
                let path = Self::path(root, rel);
                let done = if path.is_dir() {
                    fs::remove_dir(&path)
                } else {
                    fs::remove_file(&path)
                };
                match done {
                    Err(e) if e.kind() != ErrorKind::NotFound => {
                        panic!("remove {}: {e}", path.display())
                    }
                    _ => {}
                }
            }
            Served::Bucket(objects) => objects.delete(rel),
        }
    }

    /// Whether `rel` is a file.
    pub(crate) fn is_file(&self, rel: &str) -> bool {
        match self {
            Served::Folder(root) => Self::path(root, rel).is_file(),
            Served::Bucket(objects) => objects.is_file(rel),
        }
    }

    /// Whether `rel` is a folder.
    pub(crate) fn is_dir(&self, rel: &str) -> bool {
        match self {
            Served::Folder(root) => Self::path(root, rel).is_dir(),
            Served::Bucket(objects) => objects.is_dir(rel),
        }
    }

    /// Whether `rel` is there at all (for a folder: also a symlink,
    /// dangling or not).
    pub(crate) fn exists(&self, rel: &str) -> bool {
        match self {
            Served::Folder(root) => Self::path(root, rel).symlink_metadata().is_ok(),
            Served::Bucket(objects) => objects.is_file(rel) || objects.is_dir(rel),
        }
    }

    /// The names in the folder `rel`, sorted.
    pub(crate) fn names(&self, rel: &str) -> Vec<String> {
        match self {
            Served::Folder(root) => tree::names(&Self::path(root, rel)),
            Served::Bucket(objects) => objects.names(rel),
        }
    }

    /// Every folder and file with its contents, by relative path.
    pub(crate) fn snapshot(&self) -> BTreeMap<PathBuf, Entry> {
        match self {
            Served::Folder(root) => tree::snapshot(root),
            Served::Bucket(objects) => objects.snapshot(),
        }
    }

    /// The modification time of the file `rel`, in seconds since the Unix
    /// epoch.
    pub(crate) fn modified(&self, rel: &str) -> i64 {
        match self {
            Served::Folder(root) => tree::mtime(&Self::path(root, rel)),
            Served::Bucket(objects) => objects.modified(rel),
        }
    }

    /// Uploads begun and not yet finished or cleaned up: a folder's hidden
    /// temporary files (`.NAME.part-*`), a bucket's multipart uploads.
    pub(crate) fn partial_uploads(&self) -> Vec<String> {
        match self {
            Served::Folder(root) => tree::snapshot(root)
                .into_keys()
                .map(|p| p.to_string_lossy().into_owned())
                .filter(|p| p.contains(".part-"))
                .collect(),
            Served::Bucket(objects) => objects.uploads(),
        }
    }
}
