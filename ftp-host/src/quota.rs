//! Storage quotas (`quota_bytes`, `quota_files`, `max_file_size`): what a
//! user's home holds, counted on this node, and the checks an upload
//! passes before and while it writes.
//!
//! A user's usage is counted once, at the first login with a quota, by a
//! background walk of the home through the storage interface (bounded to
//! [`MAX_SCAN_ENTRIES`] entries), and then kept up to date by this node's
//! own uploads, deletions and renames. Another node serving the same
//! storage keeps its own count, so uploads made through it are seen here
//! only after a restart.
//!
//! An upload counts while it is written ("in flight"): the bytes of every
//! running upload of the user are added to the usage, so two parallel
//! uploads cannot both take the last free megabyte. Replacing a file may
//! use the space the old file frees.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use ftp_proto::{Completion, FileKind, FsError, Intent, StoreMode, VirtualPath};

use crate::policy::UserPolicy;
use crate::storage::Storage;

/// Most entries the first count of a home visits; past it the count is
/// what was seen, and a warning says so.
pub const MAX_SCAN_ENTRIES: u64 = 1_000_000;

/// Deepest folder nesting the count follows.
const MAX_SCAN_DEPTH: usize = 64;

/// How long an upload waits for the first count of its user's home.
const SCAN_WAIT: Duration = Duration::from_secs(30);

/// What a user's home holds, and what uploads are adding to it.
#[derive(Debug, Default)]
struct Counts {
    /// Whether the first count is over.
    counted: bool,
    /// Bytes of the files.
    bytes: u64,
    /// Number of files.
    files: u64,
    /// Bytes written by uploads that are still running.
    in_flight: u64,
    /// Running uploads that will make a new file.
    new_in_flight: u64,
}

/// One user's usage on this node, shared by all their sessions.
#[derive(Debug, Default)]
pub struct Usage {
    counts: Mutex<Counts>,
    counted: Condvar,
}

impl Usage {
    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counts once the first count is over (waiting for it at most
    /// [`SCAN_WAIT`]); `Err` if it is still running then.
    fn counted(&self) -> Result<MutexGuard<'_, Counts>, FsError> {
        let guard = self.lock();
        let (guard, _) = self
            .counted
            .wait_timeout_while(guard, SCAN_WAIT, |c| !c.counted)
            .unwrap_or_else(PoisonError::into_inner);
        if guard.counted {
            Ok(guard)
        } else {
            Err(FsError::Other)
        }
    }

    /// Bytes and files of the home, with running uploads, as counted now
    /// (after the first count).
    pub fn totals(&self) -> Result<(u64, u64), FsError> {
        let c = self.counted()?;
        Ok((
            c.bytes.saturating_add(c.in_flight),
            c.files.saturating_add(c.new_in_flight),
        ))
    }

    /// Counts the files under `home` (blocking: run it off the event
    /// loops) and marks the usage counted.
    pub fn count(&self, home: &dyn Storage, user: &str) {
        let mut bytes = 0u64;
        let mut files = 0u64;
        let mut seen = 0u64;
        let mut stack = vec![(VirtualPath::root(), 0usize)];
        'walk: while let Some((dir, depth)) = stack.pop() {
            let Ok(mut reader) = home.read_dir(&dir) else {
                continue;
            };
            loop {
                let batch = match reader.next_batch(256) {
                    Ok(b) if b.is_empty() => break,
                    Ok(b) => b,
                    Err(e) => {
                        log::warn!("quota of {user}: reading {dir}: {e:?}");
                        break;
                    }
                };
                for entry in batch {
                    seen += 1;
                    if seen > MAX_SCAN_ENTRIES {
                        log::warn!(
                            "quota of {user}: counted the first {MAX_SCAN_ENTRIES} entries of the home only"
                        );
                        break 'walk;
                    }
                    match entry.meta.kind {
                        FileKind::File => {
                            bytes = bytes.saturating_add(entry.meta.size);
                            files += 1;
                        }
                        FileKind::Dir if depth < MAX_SCAN_DEPTH => {
                            if let Some(sub) = dir.resolve(&entry.name) {
                                stack.push((sub, depth + 1));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut c = self.lock();
        c.bytes = c.bytes.saturating_add(bytes);
        c.files = c.files.saturating_add(files);
        c.counted = true;
        drop(c);
        self.counted.notify_all();
        log::debug!("quota of {user}: {files} files, {bytes} bytes");
    }

    /// A usage that is never counted, for a user with only
    /// `max_file_size`: nothing but the size of each upload is checked.
    pub fn untracked() -> Usage {
        let usage = Usage::default();
        usage.lock().counted = true;
        usage
    }

    /// A file of `size` bytes is gone (DELE, or replaced by RNTO).
    pub fn removed(&self, size: u64) {
        let mut c = self.lock();
        c.bytes = c.bytes.saturating_sub(size);
        c.files = c.files.saturating_sub(1);
    }
}

/// The usages of every user with a quota who logged in on this node.
#[derive(Debug, Default)]
pub struct Usages {
    users: Mutex<HashMap<String, Arc<Usage>>>,
}

impl Usages {
    /// `user`'s usage; the first call for a user starts counting `home`
    /// on a thread of its own (or, if no thread can be started, counts it
    /// now: call this off the event loops).
    pub fn of(&self, user: &str, home: &Arc<dyn Storage>) -> Arc<Usage> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(usage) = users.get(user) {
            return usage.clone();
        }
        let usage = Arc::new(Usage::default());
        users.insert(user.to_string(), usage.clone());
        drop(users);
        let (counting, storage, name) = (usage.clone(), home.clone(), user.to_string());
        let spawned = std::thread::Builder::new()
            .name("quota-count".into())
            .spawn(move || counting.count(storage.as_ref(), &name));
        if let Err(e) = spawned {
            log::warn!("quota of {user}: no thread to count the home in ({e}): counting now");
            usage.count(home.as_ref(), user);
        }
        usage
    }
}

/// A session's quota: its user's limits and usage.
#[derive(Clone, Debug)]
pub struct Quota {
    /// The limits.
    pub policy: Arc<UserPolicy>,
    /// The usage on this node.
    pub usage: Arc<Usage>,
}

/// An upload's place in its user's usage: what it has written (counted
/// in flight) and what it may still write. Dropped without
/// [`UploadCharge::settle`], it settles as an interrupted upload.
#[derive(Debug)]
pub struct UploadCharge {
    usage: Arc<Usage>,
    policy: Arc<UserPolicy>,
    /// Bytes of the file before this upload's first byte (APPE, REST).
    base: u64,
    /// Bytes written (and counted in flight).
    written: u64,
    /// Bytes of the existing file this upload overwrites or replaces:
    /// space it may use, since they are freed when it completes.
    replaced: u64,
    /// Whether it makes a new file.
    new_file: bool,
    /// Whether an interrupted upload keeps what it wrote (APPE, REST +
    /// STOR write in place).
    in_place: bool,
    settled: bool,
}

impl Quota {
    /// Checks an upload about to open a file in `mode` (`existing`: the
    /// size of the file there now, if any; `announced`: the size `ALLO`
    /// gave) and counts it as running: `Err(FsError::QuotaExceeded)` if
    /// it cannot fit.
    pub fn begin_upload(
        &self,
        mode: StoreMode,
        existing: Option<u64>,
        announced: Option<u64>,
    ) -> Result<UploadCharge, FsError> {
        let old = existing.unwrap_or(0);
        let (base, replaced) = match mode {
            StoreMode::Replace => (0, old),
            StoreMode::Unique => (0, 0),
            StoreMode::Append => (old, 0),
            StoreMode::Resume(offset) => (offset.min(old), old.saturating_sub(offset)),
        };
        let new_file = existing.is_none() || matches!(mode, StoreMode::Unique);
        let mut c = self.usage.counted()?;
        if new_file
            && self
                .policy
                .quota_files
                .is_some_and(|max| c.files.saturating_add(c.new_in_flight) >= max)
        {
            return Err(FsError::QuotaExceeded);
        }
        let mut charge = UploadCharge {
            usage: self.usage.clone(),
            policy: self.policy.clone(),
            base,
            written: 0,
            replaced,
            new_file,
            in_place: matches!(mode, StoreMode::Append | StoreMode::Resume(_)),
            settled: false,
        };
        if announced.is_some_and(|size| size > charge.room_in(&c)) {
            // Dropping the charge would lock the usage again.
            charge.settled = true;
            return Err(FsError::QuotaExceeded);
        }
        if new_file {
            c.new_in_flight += 1;
        }
        Ok(charge)
    }

    /// The bytes an upload could still take under the quota (`AVBL`):
    /// `None` without `quota_bytes`.
    pub fn available(&self) -> Result<Option<u64>, FsError> {
        let Some(max) = self.policy.quota_bytes else {
            return Ok(None);
        };
        let (bytes, _) = self.usage.totals()?;
        Ok(Some(max.saturating_sub(bytes)))
    }
}

impl UploadCharge {
    /// Bytes that may still be written, given every running upload of the
    /// user.
    pub fn room(&self) -> u64 {
        self.room_in(&self.usage.lock())
    }

    fn room_in(&self, c: &Counts) -> u64 {
        let by_size = self.policy.max_file_size.map_or(u64::MAX, |max| {
            max.saturating_sub(self.base.saturating_add(self.written))
        });
        let by_quota = self.policy.quota_bytes.map_or(u64::MAX, |max| {
            max.saturating_add(self.replaced)
                .saturating_sub(c.bytes.saturating_add(c.in_flight))
        });
        by_size.min(by_quota)
    }

    /// Counts `n` bytes that are already written (a `splice(2)` that moved
    /// at most [`UploadCharge::room`] while another upload may have taken
    /// some of it): the next [`UploadCharge::charge`] then refuses.
    pub fn charge_written(&mut self, n: u64) {
        let mut c = self.usage.lock();
        c.in_flight = c.in_flight.saturating_add(n);
        drop(c);
        self.written += n;
    }

    /// Counts `n` more bytes about to be written, or refuses them with
    /// [`FsError::QuotaExceeded`] (nothing is counted then).
    pub fn charge(&mut self, n: u64) -> Result<(), FsError> {
        let mut c = self.usage.lock();
        if n > self.room_in(&c) {
            return Err(FsError::QuotaExceeded);
        }
        c.in_flight = c.in_flight.saturating_add(n);
        drop(c);
        self.written += n;
        Ok(())
    }

    /// The upload is over: it completed (`true`: its bytes now belong to
    /// the home, the old file's are freed), or was interrupted (`false`:
    /// a replacing upload leaves nothing; one written in place keeps what
    /// it wrote).
    pub fn settle(mut self, completed: bool) {
        self.apply(completed);
    }

    fn apply(&mut self, completed: bool) {
        self.settled = true;
        let mut c = self.usage.lock();
        c.in_flight = c.in_flight.saturating_sub(self.written);
        if self.new_file {
            c.new_in_flight = c.new_in_flight.saturating_sub(1);
        }
        if completed || self.in_place {
            // A completed upload replaced the old file; one written in
            // place cut the old file at its offset when it began.
            c.bytes = c
                .bytes
                .saturating_add(self.written)
                .saturating_sub(self.replaced);
            if self.new_file && (completed || self.written > 0) {
                c.files += 1;
            }
        }
    }
}

impl Drop for UploadCharge {
    fn drop(&mut self) {
        if !self.settled {
            self.apply(false);
        }
    }
}

/// Carries out a file intent as [`crate::exec::execute`] does, keeping
/// the usage up to date: a deleted file, or one a rename replaced, frees
/// its bytes; `AVBL` reports what is left of `quota_bytes`.
pub fn execute(storage: &dyn Storage, intent: &Intent, quota: &Quota) -> Option<Completion> {
    let file_size = |path: &VirtualPath| {
        storage
            .stat(path)
            .ok()
            .filter(|m| m.kind == FileKind::File)
            .map(|m| m.size)
    };
    match intent {
        Intent::RemoveFile { path } => {
            let size = file_size(path);
            let done = storage.remove_file(path);
            if let (Ok(()), Some(size)) = (&done, size) {
                quota.usage.removed(size);
            }
            Some(Completion::Done(done))
        }
        Intent::Rename { from, to } if from != to => {
            let replaced = file_size(to);
            let done = storage.rename(from, to);
            if let (Ok(()), Some(size)) = (&done, replaced) {
                quota.usage.removed(size);
            }
            Some(Completion::Done(done))
        }
        Intent::Available { path } => Some(Completion::Available(match quota.available() {
            Ok(Some(left)) => Ok(left),
            Ok(None) => storage.available(path),
            Err(e) => Err(e),
        })),
        other => crate::exec::execute(storage, other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(keys: &str, bytes: u64, files: u64) -> Quota {
        let usage = Usage::untracked();
        {
            let mut c = usage.lock();
            c.bytes = bytes;
            c.files = files;
        }
        Quota {
            policy: Arc::new(toml::from_str(keys).unwrap()),
            usage: Arc::new(usage),
        }
    }

    #[test]
    fn parallel_uploads_share_the_room_left() {
        let q = quota("quota_bytes = 1000", 400, 1);
        let mut a = q.begin_upload(StoreMode::Replace, None, None).unwrap();
        let mut b = q.begin_upload(StoreMode::Replace, None, None).unwrap();
        assert_eq!(a.room(), 600);
        a.charge(500).unwrap();
        assert_eq!(b.room(), 100);
        assert_eq!(b.charge(101), Err(FsError::QuotaExceeded));
        b.charge(100).unwrap();
        assert_eq!(q.usage.totals().unwrap(), (1000, 3));
        // An interrupted replacing upload leaves nothing.
        b.settle(false);
        assert_eq!(q.usage.totals().unwrap(), (900, 2));
        a.settle(true);
        assert_eq!(q.usage.totals().unwrap(), (900, 2));
        assert_eq!(q.available().unwrap(), Some(100));
    }

    #[test]
    fn replacing_uses_the_old_files_space_and_in_place_keeps_what_it_wrote() {
        let q = quota("quota_bytes = 1000", 900, 1);
        let mut r = q.begin_upload(StoreMode::Replace, Some(900), None).unwrap();
        assert_eq!(r.room(), 1000);
        r.charge(700).unwrap();
        r.settle(true);
        assert_eq!(q.usage.totals().unwrap(), (700, 1));
        let mut a = q
            .begin_upload(StoreMode::Append, Some(700), Some(300))
            .unwrap();
        a.charge(200).unwrap();
        drop(a);
        assert_eq!(q.usage.totals().unwrap(), (900, 1));
        assert_eq!(
            q.begin_upload(StoreMode::Append, Some(900), Some(101))
                .map(|_| ()),
            Err(FsError::QuotaExceeded)
        );
        // REST 100 + STOR cuts the file to 100 bytes first.
        let mut resume = q
            .begin_upload(StoreMode::Resume(100), Some(900), None)
            .unwrap();
        resume.charge(50).unwrap();
        resume.settle(false);
        assert_eq!(q.usage.totals().unwrap(), (150, 1));
    }

    #[test]
    fn file_count_and_size_limits() {
        let q = quota("quota_files = 2\nmax_file_size = 10", 0, 1);
        let one = q.begin_upload(StoreMode::Unique, None, None).unwrap();
        assert_eq!(
            q.begin_upload(StoreMode::Replace, None, None).map(|_| ()),
            Err(FsError::QuotaExceeded)
        );
        let mut same = q.begin_upload(StoreMode::Replace, Some(5), None).unwrap();
        assert_eq!(same.charge(11), Err(FsError::QuotaExceeded));
        same.charge(10).unwrap();
        drop(one);
        q.begin_upload(StoreMode::Replace, None, Some(10)).unwrap();
        assert_eq!(
            q.begin_upload(StoreMode::Replace, None, Some(11))
                .map(|_| ()),
            Err(FsError::QuotaExceeded)
        );
    }

    #[test]
    fn the_first_count_walks_the_home() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("one"), [0u8; 10]).unwrap();
        std::fs::write(dir.path().join("a/two"), [0u8; 20]).unwrap();
        std::fs::write(dir.path().join("a/b/three"), [0u8; 30]).unwrap();
        let home: Arc<dyn Storage> = Arc::new(crate::storage::LocalFs::open(dir.path()).unwrap());
        let usages = Usages::default();
        let usage = usages.of("alice", &home);
        assert_eq!(usage.totals().unwrap(), (60, 3));
        assert!(Arc::ptr_eq(&usage, &usages.of("alice", &home)));
    }
}
