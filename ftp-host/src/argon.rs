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
//! Here the block is an anonymous mapping of its own, made for the check
//! and unmapped right after it, whatever the C library and its allocator
//! (glibc or the static musl build). How many checks run at once, and so
//! how much memory they take together, is bounded by the worker pool
//! ([`crate::workers`]).
//!
//! This module and [`crate::crypt`] are the only ones with `unsafe` code:
//! mapping, viewing and unmapping that block.
#![allow(unsafe_code)]

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
    let mut memory = BlockMemory::map(params.block_count()).map_err(VerifyError::Memory)?;
    Argon2::new(algorithm, version, params).hash_password_into_with_memory(
        password,
        salt,
        out,
        memory.blocks(),
    )?;
    drop(memory);
    if Output::new(out)? == *expected {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
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
