//! Argon2 verification whose working memory goes back to the system as
//! soon as the check ends.
//!
//! An argon2 check needs the hash's whole memory cost at once (19 MiB for
//! the library's defaults). Allocated with the global allocator, that
//! block stays in the process after the check: glibc raises its mmap
//! threshold after the first such block is freed, so later ones come from
//! its heaps and are kept there, one per thread that ever hashed. A daemon
//! that served a burst of logins then holds hundreds of megabytes forever.
//!
//! Here the block is an anonymous mapping of its own, unmapped when the
//! check ends, whatever the C library and its allocator (glibc or the
//! static musl build). A worker thread of the pool ([`crate::workers`])
//! may keep its block for the next check while more checks wait, so a
//! burst does not map and fault in 19 MiB per login; it unmaps the block
//! as soon as it turns to anything else or has nothing to do. How many
//! checks run at once, and so how much memory they take together, is
//! bounded by the pool.
//!
//! This module, [`crate::crypt`] and two start-up steps of
//! [`crate::systemd`] are the only ones with `unsafe` code; here it is
//! mapping, viewing and unmapping that block.
#![allow(unsafe_code)]

use std::cell::Cell;
use std::fmt;
use std::io;
use std::ptr::{self, NonNull};

use argon2::password_hash::{Output, PasswordHash};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rustix::mm::{MapFlags, ProtFlags, mmap_anonymous, munmap};

/// Why a password could not be checked against a hash.
#[derive(Debug)]
pub enum VerifyError {
    /// The password does not match.
    Mismatch,
    /// The hash string cannot be verified (unknown algorithm, bad
    /// parameters, no salt or output).
    Hash(argon2::password_hash::Error),
    /// The working memory could not be mapped.
    Memory(io::Error),
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Mismatch => f.write_str("the password does not match"),
            VerifyError::Hash(e) => write!(f, "unusable argon2 hash: {e}"),
            VerifyError::Memory(e) => write!(f, "no memory for an argon2 check: {e}"),
        }
    }
}

impl std::error::Error for VerifyError {}

impl From<argon2::password_hash::Error> for VerifyError {
    fn from(e: argon2::password_hash::Error) -> Self {
        VerifyError::Hash(e)
    }
}

impl From<argon2::Error> for VerifyError {
    fn from(e: argon2::Error) -> Self {
        VerifyError::Hash(e.into())
    }
}

/// Checks `password` against an argon2 PHC `hash` (algorithm, version,
/// parameters and salt from the string), as
/// `Argon2::default().verify_password` does, but with the working memory
/// in a mapping that is unmapped before this returns. The outputs are
/// compared in constant time.
pub fn verify(password: &[u8], hash: &PasswordHash<'_>) -> Result<(), VerifyError> {
    let algorithm = Algorithm::try_from(hash.algorithm)?;
    let version = match hash.version {
        Some(v) => Version::try_from(v)?,
        None => Version::default(),
    };
    let params = Params::try_from(hash)?;
    let (Some(salt), Some(expected)) = (&hash.salt, &hash.hash) else {
        return Err(VerifyError::Hash(
            argon2::password_hash::Error::PhcStringField,
        ));
    };
    let mut salt_buf = [0u8; 64];
    let salt = salt.decode_b64(&mut salt_buf)?;
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out
        .get_mut(..expected.len())
        .ok_or(argon2::password_hash::Error::OutputSize {
            provided: std::cmp::Ordering::Greater,
            expected: Output::MAX_LENGTH,
        })?;
    let mut memory = memory_for(params.block_count()).map_err(VerifyError::Memory)?;
    let hashed = Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        memory.blocks(),
    );
    if KEEP.get() {
        SPARE.set(Some(memory));
    } else {
        drop(memory);
    }
    hashed?;
    if Output::new(out)? == *expected {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

thread_local! {
    /// Whether this thread keeps its block between checks ([`keep_memory`]).
    static KEEP: Cell<bool> = const { Cell::new(false) };
    /// The block of this thread's last check, when it keeps it.
    static SPARE: Cell<Option<BlockMemory>> = const { Cell::new(None) };
}

/// Makes the calling thread keep the block of its last check for the next
/// one, until [`release_memory`]: for the worker pool, which releases it
/// whenever the thread turns to other work or waits.
pub(crate) fn keep_memory() {
    KEEP.set(true);
}

/// Whether the calling thread holds a block from its last check.
pub(crate) fn holds_memory() -> bool {
    let spare = SPARE.take();
    let holds = spare.is_some();
    SPARE.set(spare);
    holds
}

/// Unmaps the block the calling thread kept, if any.
pub(crate) fn release_memory() {
    drop(SPARE.take());
}

/// Blocks for a check: the thread's kept block when it has the same size
/// (argon2 writes every block before reading it, so what the last check
/// left there does not matter), else a new mapping.
fn memory_for(len: usize) -> io::Result<BlockMemory> {
    match SPARE.take() {
        Some(spare) if spare.len == len => Ok(spare),
        other => {
            drop(other);
            BlockMemory::map(len)
        }
    }
}

/// Argon2 blocks in an anonymous private mapping of their own, unmapped
/// when dropped.
struct BlockMemory {
    /// Start of the mapping (page aligned), or dangling when `len` is 0.
    start: NonNull<Block>,
    /// Number of blocks.
    len: usize,
}

impl BlockMemory {
    /// Maps `len` zeroed blocks.
    fn map(len: usize) -> io::Result<BlockMemory> {
        let bytes = Self::bytes(len)?;
        if bytes == 0 {
            return Ok(BlockMemory {
                start: NonNull::dangling(),
                len: 0,
            });
        }
        // SAFETY: a new private anonymous mapping at an address the kernel
        // chooses: no memory the program uses is affected.
        let start = unsafe {
            mmap_anonymous(
                ptr::null_mut(),
                bytes,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE,
            )
        }?;
        let start = NonNull::new(start.cast::<Block>()).ok_or(io::ErrorKind::OutOfMemory)?;
        Ok(BlockMemory { start, len })
    }

    /// The size in bytes of `len` blocks.
    fn bytes(len: usize) -> io::Result<usize> {
        len.checked_mul(size_of::<Block>())
            .ok_or_else(|| io::ErrorKind::OutOfMemory.into())
    }

    /// The blocks, to fill.
    fn blocks(&mut self) -> &mut [Block] {
        // SAFETY: `start` is either dangling with `len` 0, or the start of
        // a readable and writable mapping of `len` blocks that lives until
        // `self` is dropped. The kernel maps pages aligned to at least
        // 4 KiB, more than a block's 64-byte alignment, and fills them
        // with zeros, a valid `Block` (an array of integers). The borrow
        // of `self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.start.as_ptr(), self.len) }
    }
}

impl Drop for BlockMemory {
    fn drop(&mut self) {
        if self.len == 0 {
            return;
        }
        // The size was computed without overflow when the block was mapped.
        let bytes = self.len * size_of::<Block>();
        // SAFETY: the mapping was made by `map` with this size, and no
        // reference into it outlives `self` (see `blocks`).
        if let Err(e) = unsafe { munmap(self.start.as_ptr().cast(), bytes) } {
            log::error!("unmapping {bytes} bytes of argon2 memory: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::rand_core::OsRng;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier, SaltString};

    fn hash(password: &str, params: Params, algorithm: Algorithm, version: Version) -> String {
        Argon2::new(algorithm, version, params)
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string()
    }

    #[test]
    fn agrees_with_the_library() {
        for (algorithm, version, params) in [
            (
                Algorithm::Argon2id,
                Version::V0x13,
                Params::new(8, 1, 1, None),
            ),
            (
                Algorithm::Argon2i,
                Version::V0x10,
                Params::new(64, 2, 2, Some(16)),
            ),
            (
                Algorithm::Argon2d,
                Version::V0x13,
                Params::new(32, 3, 4, Some(64)),
            ),
        ] {
            let h = hash("pass word", params.unwrap(), algorithm, version);
            let parsed = PasswordHash::new(&h).unwrap();
            assert!(verify(b"pass word", &parsed).is_ok(), "{h}");
            assert!(
                Argon2::default()
                    .verify_password(b"pass word", &parsed)
                    .is_ok()
            );
            for wrong in [&b"pass words"[..], b"", b"Pass word"] {
                assert!(
                    matches!(verify(wrong, &parsed), Err(VerifyError::Mismatch)),
                    "{h}"
                );
            }
        }
        // The all-zero output of a dummy hash matches nothing.
        let dummy = "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let parsed = PasswordHash::new(dummy).unwrap();
        assert!(matches!(verify(b"", &parsed), Err(VerifyError::Mismatch)));
        // Not argon2, or without an output: refused as a bad hash.
        let other = PasswordHash::new(
            "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .unwrap();
        assert!(matches!(verify(b"x", &other), Err(VerifyError::Hash(_))));
        let bare = PasswordHash::new("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        assert!(matches!(verify(b"x", &bare), Err(VerifyError::Hash(_))));
    }

    #[test]
    fn a_keeping_thread_reuses_its_block_until_released() {
        let h = hash(
            "pw",
            Params::new(1024, 1, 1, None).unwrap(),
            Algorithm::Argon2id,
            Version::V0x13,
        );
        std::thread::spawn(move || {
            let parsed = PasswordHash::new(&h).unwrap();
            let kept = || {
                let spare = SPARE.take();
                let kept = spare.as_ref().map(|m| (m.start, m.len));
                SPARE.set(spare);
                kept
            };
            // By default nothing is kept.
            assert!(verify(b"pw", &parsed).is_ok());
            assert!(!holds_memory());
            keep_memory();
            assert!(verify(b"pw", &parsed).is_ok());
            let first = kept().expect("a kept block");
            // The kept block, dirty from the last check, serves the next
            // ones with the same results.
            assert!(matches!(
                verify(b"pw!", &parsed),
                Err(VerifyError::Mismatch)
            ));
            assert!(verify(b"pw", &parsed).is_ok());
            assert_eq!(kept(), Some(first));
            // A hash of another size gets a block of its own.
            let small = hash(
                "pw",
                Params::new(8, 1, 1, None).unwrap(),
                Algorithm::Argon2id,
                Version::V0x13,
            );
            assert!(verify(b"pw", &PasswordHash::new(&small).unwrap()).is_ok());
            assert_eq!(kept().map(|(_, len)| len), Some(8));
            release_memory();
            assert!(!holds_memory());
        })
        .join()
        .unwrap();
    }

    /// The lines of `/proc/self/maps` as address ranges.
    fn mappings() -> Vec<(usize, usize)> {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter_map(|l| {
                let (lo, hi) = l.split_whitespace().next()?.split_once('-')?;
                Some((
                    usize::from_str_radix(lo, 16).ok()?,
                    usize::from_str_radix(hi, 16).ok()?,
                ))
            })
            .collect()
    }

    #[test]
    fn the_memory_is_unmapped_when_dropped() {
        let len = 4096; // 4 MiB
        let mut memory = BlockMemory::map(len).unwrap();
        let blocks = memory.blocks();
        assert_eq!(blocks.len(), len);
        blocks[len - 1] = Block::new();
        let start = memory.start.as_ptr() as usize;
        let end = start + len * size_of::<Block>();
        let covered =
            |maps: &[(usize, usize)]| maps.iter().any(|&(lo, hi)| lo <= start && end <= hi);
        assert!(covered(&mappings()));
        drop(memory);
        assert!(!covered(&mappings()), "still mapped after the drop");
        assert!(BlockMemory::map(0).unwrap().blocks().is_empty());
        assert!(BlockMemory::map(usize::MAX).is_err());
    }
}
