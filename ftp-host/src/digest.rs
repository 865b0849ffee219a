//! Computing the digests `HASH` and `XCRC`/`XMD5`/`XSHA*` ask for
//! ([`ftp_proto::Intent::Hash`]): a file's bytes read through the storage
//! interface (so object stores work too), off the event loops, in
//! bounded chunks, stopping as soon as the session cancels.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};

use ftp_proto::{FsError, HashAlgorithm, VirtualPath};
use sha1::Digest as _;

use crate::storage::{Storage, fs_error_from_io};

/// Bytes read at a time.
const CHUNK: usize = 256 * 1024;

/// A digest being computed.
enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
    Crc32(crc32fast::Hasher),
}

impl Hasher {
    fn new(algorithm: HashAlgorithm) -> Hasher {
        match algorithm {
            HashAlgorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            HashAlgorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
            HashAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            HashAlgorithm::Md5 => Hasher::Md5(md5::Md5::new()),
            HashAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(bytes),
            Hasher::Sha512(h) => h.update(bytes),
            Hasher::Sha1(h) => h.update(bytes),
            Hasher::Md5(h) => h.update(bytes),
            Hasher::Crc32(h) => h.update(bytes),
        }
    }

    /// The digest in lower-case hex.
    fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => hex(&h.finalize()),
            Hasher::Sha512(h) => hex(&h.finalize()),
            Hasher::Sha1(h) => hex(&h.finalize()),
            Hasher::Md5(h) => hex(&h.finalize()),
            Hasher::Crc32(h) => format!("{:08x}", h.finalize()),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The digest of bytes `start..end` of `path`, in lower-case hex.
/// Blocking: call it off the event loops. Returns
/// [`FsError::Other`] as soon as `cancel` is set, and when the file ends
/// before `end` (it shrank since the engine looked).
pub fn digest(
    storage: &dyn Storage,
    path: &VirtualPath,
    algorithm: HashAlgorithm,
    start: u64,
    end: u64,
    cancel: &AtomicBool,
) -> Result<String, FsError> {
    let mut file = storage.open_read(path, start)?;
    let mut hasher = Hasher::new(algorithm);
    let mut left = end.saturating_sub(start);
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(left).unwrap_or(CHUNK)).max(1)];
    while left > 0 {
        if cancel.load(Ordering::Relaxed) {
            return Err(FsError::Other);
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[..want]) {
            Ok(0) => return Err(FsError::Other),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(fs_error_from_io(&e)),
        };
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    #[test]
    fn known_digests_of_a_file_and_a_range() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc"), b"xxabcxx").unwrap();
        let fs: Arc<dyn Storage> = Arc::new(crate::storage::LocalFs::open(dir.path()).unwrap());
        let never = AtomicBool::new(false);
        let d = |a| digest(fs.as_ref(), &vp("/abc"), a, 2, 5, &never).unwrap();
        // The well-known digests of "abc".
        assert_eq!(
            d(HashAlgorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            d(HashAlgorithm::Sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(d(HashAlgorithm::Md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(d(HashAlgorithm::Crc32), "352441c2");
        assert!(d(HashAlgorithm::Sha512).starts_with("ddaf35a193617aba"));
        assert_eq!(
            digest(fs.as_ref(), &vp("/abc"), HashAlgorithm::Md5, 0, 0, &never).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        // The file is shorter than the range: an error, not a short digest.
        assert_eq!(
            digest(fs.as_ref(), &vp("/abc"), HashAlgorithm::Md5, 0, 8, &never),
            Err(FsError::Other)
        );
        let cancelled = AtomicBool::new(true);
        assert_eq!(
            digest(
                fs.as_ref(),
                &vp("/abc"),
                HashAlgorithm::Md5,
                0,
                7,
                &cancelled
            ),
            Err(FsError::Other)
        );
    }
}
