//! Password hashes as `/etc/shadow` holds them, checked with the system's
//! own `crypt` (libxcrypt, linked as `-lcrypt`; in a static musl build,
//! musl's own `crypt_r`).
//!
//! libxcrypt is what `passwd`, `chpasswd` and PAM use to write these
//! hashes, so every scheme the system writes is one it verifies: yescrypt
//! (`$y$`), gost-yescrypt (`$gy$`), scrypt (`$7$`), bcrypt (`$2b$`,
//! `$2y$`, `$2a$`), sha512-crypt (`$6$`), sha256-crypt (`$5$`),
//! md5-crypt (`$1$`), traditional and BSDi DES, and whatever else the
//! installed library enables. No hash algorithm is implemented here.
//!
//! musl (the libc of static builds for embedded boxes) knows fewer
//! schemes: bcrypt, sha512-crypt, sha256-crypt, md5-crypt and DES, which
//! is what BusyBox's `passwd` writes. A yescrypt hash is then refused, as
//! an unknown scheme is.
//!
//! This module, [`crate::argon`] and two start-up steps of
//! [`crate::systemd`] are the only ones with `unsafe` code in the project;
//! here it is one call
//! to `crypt_rn`, the re-entrant form that works in caller-provided memory
//! of a stated size (so concurrent logins on worker threads are safe,
//! unlike `crypt`, and a library whose work area is larger than expected
//! fails cleanly instead of overrunning it).
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::fmt;
use std::io;

use subtle::ConstantTimeEq;

/// Size of libxcrypt's `struct crypt_data` (its `crypt.h` fixes it at
/// 32 KiB: output, setting, input, reserved and the internal work area).
const CRYPT_DATA_SIZE: usize = 32768;

/// The same size as `crypt_rn` takes it.
const CRYPT_DATA_SIZE_C: c_int = 32768;
const _: () = assert!(CRYPT_DATA_SIZE_C as usize == CRYPT_DATA_SIZE);

#[cfg(not(target_env = "musl"))]
#[link(name = "crypt")]
unsafe extern "C" {
    /// `char *crypt_rn(const char *phrase, const char *setting, void *data,
    /// int size)`: hashes `phrase` as `setting` says, using `size` bytes at
    /// `data` as its work area; returns a pointer to the NUL-terminated
    /// hash inside `data`, or NULL (with `errno`) on failure.
    fn crypt_rn(
        phrase: *const c_char,
        setting: *const c_char,
        data: *mut c_void,
        size: c_int,
    ) -> *mut c_char;
}

#[cfg(target_env = "musl")]
unsafe extern "C" {
    /// musl's `char *crypt_r(const char *key, const char *setting, struct
    /// crypt_data *data)`: the same contract as `crypt_rn` with a work area
    /// of musl's `struct crypt_data` (260 bytes), which ours exceeds.
    fn crypt_r(phrase: *const c_char, setting: *const c_char, data: *mut c_void) -> *mut c_char;
}

/// `crypt_rn` where libxcrypt is the library.
#[cfg(not(target_env = "musl"))]
unsafe fn crypt_into(
    phrase: *const c_char,
    setting: *const c_char,
    area: &mut WorkArea,
) -> *mut c_char {
    // SAFETY: as the caller promises; the size is the area's own.
    unsafe {
        crypt_rn(
            phrase,
            setting,
            area.0.as_mut_ptr().cast::<c_void>(),
            CRYPT_DATA_SIZE_C,
        )
    }
}

/// musl's `crypt_r`: its `struct crypt_data` is far smaller than the area.
#[cfg(target_env = "musl")]
unsafe fn crypt_into(
    phrase: *const c_char,
    setting: *const c_char,
    area: &mut WorkArea,
) -> *mut c_char {
    // SAFETY: as the caller promises; the area is larger than musl's
    // `struct crypt_data`.
    unsafe { crypt_r(phrase, setting, area.0.as_mut_ptr().cast::<c_void>()) }
}

/// The work area `crypt_rn` writes into, aligned generously.
#[repr(C, align(16))]
struct WorkArea([u8; CRYPT_DATA_SIZE]);

impl Drop for WorkArea {
    /// Clears what the hash computation left behind (the password among
    /// it), with writes the compiler may not leave out.
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: `byte` is a valid, aligned, exclusive reference.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Why a password could not be hashed.
#[derive(Debug)]
pub enum CryptError {
    /// The password contains a NUL byte, which `crypt` cannot take (it
    /// would hash only what comes before it).
    NulInPassword,
    /// The stored hash contains a NUL byte.
    NulInHash,
    /// The library refused: an unknown or disabled scheme, a damaged hash,
    /// or a password over its length limit. Holds what `errno` said.
    Refused(io::Error),
}

impl fmt::Display for CryptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CryptError::NulInPassword => f.write_str("the password contains a NUL byte"),
            CryptError::NulInHash => f.write_str("the stored hash contains a NUL byte"),
            CryptError::Refused(e) => write!(f, "crypt refused the hash: {e}"),
        }
    }
}

impl std::error::Error for CryptError {}

/// Hashes `password` with the scheme, parameters and salt given by
/// `setting` (a full stored hash works as its own setting) and returns the
/// hash string.
pub fn crypt(password: &[u8], setting: &str) -> Result<String, CryptError> {
    let phrase = CString::new(password).map_err(|_| CryptError::NulInPassword)?;
    let setting = CString::new(setting).map_err(|_| CryptError::NulInHash)?;
    let mut area = Box::new(WorkArea([0; CRYPT_DATA_SIZE]));
    // SAFETY: `phrase` and `setting` are NUL-terminated strings that
    // outlive the call; `area` is CRYPT_DATA_SIZE writable bytes, zeroed as
    // libxcrypt wants for a first use, and exclusively ours. The library
    // touches nothing else and keeps no pointer after it returns.
    let out = unsafe { crypt_into(phrase.as_ptr(), setting.as_ptr(), &mut area) };
    if out.is_null() {
        return Err(CryptError::Refused(io::Error::last_os_error()));
    }
    // SAFETY: on success `out` points at a NUL-terminated string inside
    // `area`, which is alive (and unchanged) until the end of this function.
    let hash = unsafe { CStr::from_ptr(out) }
        .to_string_lossy()
        .into_owned();
    drop(area);
    // Some builds of the library signal failure with a "*0" / "*1" token
    // instead of NULL; no valid hash starts with '*'.
    if hash.starts_with('*') {
        return Err(CryptError::Refused(io::Error::from(
            io::ErrorKind::InvalidInput,
        )));
    }
    Ok(hash)
}

/// Whether `password` matches the stored `hash`. The hash computed from
/// the password is compared with the stored one in constant time.
pub fn verify(password: &[u8], hash: &str) -> Result<bool, CryptError> {
    let computed = crypt(password, hash)?;
    Ok(bool::from(computed.as_bytes().ct_eq(hash.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vectors in `tests/data/crypt-vectors.txt`: scheme, password,
    /// hash.
    fn vectors() -> Vec<(String, String, String)> {
        let text = include_str!("../tests/data/crypt-vectors.txt");
        text.lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                let mut f = l.split('\t');
                let (Some(s), Some(p), Some(h), None) = (f.next(), f.next(), f.next(), f.next())
                else {
                    panic!("bad vector line {l:?}");
                };
                (s.to_string(), p.to_string(), h.to_string())
            })
            .collect()
    }

    #[test]
    fn every_scheme_verifies_its_vectors() {
        let vectors = vectors();
        for scheme in ["yescrypt", "sha512", "sha256", "md5", "bcrypt", "des"] {
            assert!(
                vectors.iter().any(|(s, _, _)| s == scheme),
                "no {scheme} vector"
            );
        }
        for prefix in ["$y$", "$6$", "$5$", "$1$", "$2b$", "$2y$", "$6$rounds="] {
            assert!(vectors.iter().any(|(_, _, h)| h.starts_with(prefix)));
        }
        for (scheme, password, hash) in &vectors {
            assert_eq!(
                verify(password.as_bytes(), hash).ok(),
                Some(true),
                "{scheme} {password:?} {hash}"
            );
            let mut wrong = password.clone().into_bytes();
            wrong[0] ^= 1;
            assert_eq!(
                verify(&wrong, hash).ok(),
                Some(false),
                "{scheme}: a changed first byte must not verify"
            );
            assert_eq!(verify(b"", hash).ok(), Some(false), "{scheme}: empty");
            // The same hash recomputed is exactly the stored string.
            assert_eq!(crypt(password.as_bytes(), hash).unwrap(), *hash);
        }
    }

    #[test]
    fn des_counts_eight_bytes_and_others_all() {
        let des = vectors()
            .into_iter()
            .find(|(s, p, _)| s == "des" && p.len() == 8)
            .unwrap();
        let longer = format!("{}tail", des.1);
        assert_eq!(verify(longer.as_bytes(), &des.2).ok(), Some(true));
        let sha = vectors()
            .into_iter()
            .find(|(s, _, _)| s == "sha512")
            .unwrap();
        let longer = format!("{}x", sha.1);
        assert_eq!(verify(longer.as_bytes(), &sha.2).ok(), Some(false));
    }

    #[test]
    fn bad_input_is_an_error_not_a_match() {
        assert!(matches!(
            verify(b"a\0b", "$1$abcdefgh$"),
            Err(CryptError::NulInPassword)
        ));
        assert!(matches!(
            verify(b"a", "$1$ab\0cd$"),
            Err(CryptError::NulInHash)
        ));
        for bad in ["", "!", "*", "!!", "$9$nope$", "$y$", "x"] {
            assert!(
                !matches!(verify(b"x", bad), Ok(true)),
                "{bad:?} must never match"
            );
        }
        // A locked hash ("!" in front) never matches its password.
        let (_, password, hash) = vectors().into_iter().next().unwrap();
        assert!(!matches!(
            verify(password.as_bytes(), &format!("!{hash}")),
            Ok(true)
        ));
        let huge = vec![b'a'; 100_000];
        assert!(!matches!(verify(&huge, "$6$saltsalt$"), Ok(true)));
    }

    #[test]
    fn concurrent_checks_do_not_disturb_each_other() {
        let vectors = vectors();
        std::thread::scope(|s| {
            for (_, password, hash) in vectors.iter().filter(|(s, _, _)| s != "bcrypt") {
                s.spawn(move || {
                    for _ in 0..3 {
                        assert_eq!(verify(password.as_bytes(), hash).ok(), Some(true));
                    }
                });
            }
        });
    }
}
