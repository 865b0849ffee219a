//! The system's own accounts, as BusyBox `ftpd` uses them: users from
//! `/etc/passwd`, their passwords from `/etc/shadow` (or from `passwd`
//! itself where its field is not `x`), supplementary groups from
//! `/etc/group`, and the names `/etc/ftpusers` refuses.
//!
//! The files are read when the server starts (before an `--inetd` session
//! chroots away from them, and while a standalone daemon may still read
//! `/etc/shadow`). A standalone daemon reloads them when one changes, if
//! it can still read them; an `--inetd` session serves one connection and
//! never reloads (after its chroot, `/etc` would be the served folder's).
//!
//! Who cannot log in:
//! - names listed in the ftpusers file (one a line, `#` comments), as in
//!   vsftpd, ProFTPD and pure-ftpd;
//! - locked accounts: a hash starting with `!` or `*` (`passwd -l`,
//!   `usermod -L`, system accounts' `*`, `!!`, `!*`);
//! - accounts with an empty password field;
//! - accounts whose `/etc/shadow` expiry date has passed;
//! - accounts whose `passwd` field is `x` with no `shadow` entry.
//!
//! Every refusal takes about as long as checking a real password (the
//! password is hashed against a real account's hash and the result thrown
//! away), so the answer's timing does not tell which names exist.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use ftp_proto::AuthError;

use crate::config::ConfigError;
use crate::crypt;

/// Where the account files are. [`SystemFiles::default`] is the real
/// system's; tests point elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemFiles {
    /// Accounts: `name:password:uid:gid:gecos:home:shell`.
    pub passwd: PathBuf,
    /// Password hashes: `name:hash:lastchg:min:max:warn:inactive:expire:`.
    /// A missing file means there are none (systems without shadow
    /// passwords keep the hashes in `passwd`).
    pub shadow: PathBuf,
    /// Groups: `name:password:gid:member,member`. May be missing.
    pub group: PathBuf,
    /// Names refused a login, one a line.
    pub ftpusers: PathBuf,
    /// Whether `ftpusers` was named by the operator (`--ftpusers`): then it
    /// must exist. The default `/etc/ftpusers` is used only when it does.
    pub ftpusers_required: bool,
}

impl Default for SystemFiles {
    fn default() -> Self {
        SystemFiles {
            passwd: PathBuf::from("/etc/passwd"),
            shadow: PathBuf::from("/etc/shadow"),
            group: PathBuf::from("/etc/group"),
            ftpusers: PathBuf::from("/etc/ftpusers"),
            ftpusers_required: false,
        }
    }
}

impl SystemFiles {
    /// The given `passwd` and `shadow` files, with `/etc/group` and the
    /// optional `/etc/ftpusers`.
    pub fn new(passwd: impl Into<PathBuf>, shadow: impl Into<PathBuf>) -> Self {
        SystemFiles {
            passwd: passwd.into(),
            shadow: shadow.into(),
            ..SystemFiles::default()
        }
    }
}

/// One system account: who a session acts as after logging in with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The login name.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Every group the account is in: the primary group first, then the
    /// groups of `/etc/group` that list the name (what `initgroups` sets).
    pub groups: Vec<u32>,
    /// The home folder (not used for serving: every user sees the served
    /// folder as `/`, as with BusyBox).
    pub home: PathBuf,
}

/// What the stored password of an account allows.
#[derive(Clone, PartialEq, Eq)]
enum Password {
    /// A crypt hash to check against.
    Hash(String),
    /// `!…` or `*…`: the account is locked.
    Locked,
    /// An empty field: no password, no login.
    Empty,
    /// `x` in `passwd` but no `shadow` entry.
    Missing,
    /// `x` in `passwd` and `shadow` could not be read.
    Unreadable,
}

impl Password {
    fn from_field(field: &str) -> Password {
        if field.is_empty() {
            Password::Empty
        } else if field.starts_with('!') || field.starts_with('*') {
            Password::Locked
        } else {
            Password::Hash(field.to_string())
        }
    }
}

/// An account with its password and expiry.
#[derive(Clone)]
struct Entry {
    account: Account,
    password: Password,
    /// `shadow`'s expiry: days since 1970-01-01 from which the account can
    /// no longer be used.
    expires: Option<u64>,
}

/// Identity of a file's current version, to notice changes.
type Stamp = Option<(u64, u64, i64, i64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.mtime(), m.mtime_nsec(), m.len()))
}

/// The accounts as read at one time.
struct Snapshot {
    entries: HashMap<String, Entry>,
    refused: HashSet<String>,
    /// A real hash to check refused and unknown names against, so they
    /// cost the same time as a real login.
    dummy: Option<String>,
    /// Whether `shadow` exists but could not be read.
    shadow_unreadable: bool,
}

/// Reads a file, `Ok(None)` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, io::Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn read_error(path: &Path) -> impl FnOnce(io::Error) -> ConfigError + '_ {
    move |source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// Lines of an account file that hold entries: not empty, not comments,
/// not NIS `+`/`-` lines.
fn entry_lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('+'))
        .filter(|l| !l.starts_with('-'))
}

/// `passwd` lines: name, password field, uid, gid, home. The first entry
/// of a name wins, as with `getpwnam`.
fn parse_passwd(text: &str) -> Vec<(String, String, u32, u32, PathBuf)> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in entry_lines(text) {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 7 || f[0].is_empty() {
            continue;
        }
        let (Ok(uid), Ok(gid)) = (f[2].parse::<u32>(), f[3].parse::<u32>()) else {
            continue;
        };
        if seen.insert(f[0]) {
            out.push((
                f[0].to_string(),
                f[1].to_string(),
                uid,
                gid,
                PathBuf::from(f[5]),
            ));
        }
    }
    out
}

/// `shadow` lines: name → (hash field, expiry day).
fn parse_shadow(text: &str) -> HashMap<String, (String, Option<u64>)> {
    let mut out = HashMap::new();
    for line in entry_lines(text) {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 2 || f[0].is_empty() {
            continue;
        }
        let expires = f
            .get(7)
            .and_then(|d| d.parse::<u64>().ok())
            .filter(|&d| d > 0);
        out.entry(f[0].to_string())
            .or_insert_with(|| (f[1].to_string(), expires));
    }
    out
}

/// `group` lines: member name → the gids of the groups that list it.
fn parse_group(text: &str) -> HashMap<String, Vec<u32>> {
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    for line in entry_lines(text) {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let Ok(gid) = f[2].parse::<u32>() else {
            continue;
        };
        for member in f[3].split(',').map(str::trim).filter(|m| !m.is_empty()) {
            out.entry(member.to_string()).or_default().push(gid);
        }
    }
    out
}

/// ftpusers: one name a line, `#` starts a comment.
fn parse_ftpusers(text: &str) -> HashSet<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// The names the ftpusers file refuses: none if the file is missing and
/// was not named by the operator ([`SystemFiles::ftpusers_required`]).
pub fn read_ftpusers(files: &SystemFiles) -> Result<HashSet<String>, ConfigError> {
    match read_optional(&files.ftpusers) {
        Ok(Some(text)) => Ok(parse_ftpusers(&text)),
        Ok(None) if !files.ftpusers_required => Ok(HashSet::new()),
        Ok(None) => Err(read_error(&files.ftpusers)(io::Error::from(
            io::ErrorKind::NotFound,
        ))),
        // Refusing nobody because the list cannot be read would let root
        // in: fail instead.
        Err(e) => Err(read_error(&files.ftpusers)(e)),
    }
}

/// The accounts of `passwd` with their groups from `group`.
fn accounts(passwd: &str, group: &str) -> Vec<(Account, String)> {
    let groups = parse_group(group);
    parse_passwd(passwd)
        .into_iter()
        .map(|(name, field, uid, gid, home)| {
            let mut all = vec![gid];
            for &g in groups.get(&name).into_iter().flatten() {
                if !all.contains(&g) {
                    all.push(g);
                }
            }
            let account = Account {
                name,
                uid,
                gid,
                groups: all,
                home,
            };
            (account, field)
        })
        .collect()
}

fn read_group(files: &SystemFiles) -> Result<String, ConfigError> {
    Ok(read_optional(&files.group)
        .map_err(read_error(&files.group))?
        .unwrap_or_default())
}

/// Looks one account up in `passwd` and `group` (no passwords read): for
/// the account `-a USER` names when the users come from elsewhere.
pub fn lookup(files: &SystemFiles, name: &str) -> Result<Option<Account>, ConfigError> {
    let passwd = std::fs::read(&files.passwd).map_err(read_error(&files.passwd))?;
    let group = read_group(files)?;
    Ok(accounts(&String::from_utf8_lossy(&passwd), &group)
        .into_iter()
        .map(|(a, _)| a)
        .find(|a| a.name == name))
}

impl Snapshot {
    fn read(files: &SystemFiles) -> Result<Snapshot, ConfigError> {
        let passwd = std::fs::read(&files.passwd).map_err(read_error(&files.passwd))?;
        let passwd = String::from_utf8_lossy(&passwd);
        let group = read_group(files)?;
        let (shadow, shadow_unreadable) = match read_optional(&files.shadow) {
            Ok(text) => (parse_shadow(&text.unwrap_or_default()), false),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => (HashMap::new(), true),
            Err(e) => return Err(read_error(&files.shadow)(e)),
        };
        let refused = read_ftpusers(files)?;
        let mut entries = HashMap::new();
        for (account, field) in accounts(&passwd, &group) {
            let (password, expires) = if field == "x" {
                match shadow.get(&account.name) {
                    Some((hash, expires)) => (Password::from_field(hash), *expires),
                    None if shadow_unreadable => (Password::Unreadable, None),
                    None => (Password::Missing, None),
                }
            } else {
                (Password::from_field(&field), None)
            };
            entries.insert(
                account.name.clone(),
                Entry {
                    account,
                    password,
                    expires,
                },
            );
        }
        // Prefer root's hash (there on every system), else any usable one.
        let usable = |e: &Entry| match &e.password {
            Password::Hash(h) => Some(h.clone()),
            _ => None,
        };
        let dummy = entries
            .get("root")
            .and_then(usable)
            .or_else(|| entries.values().find_map(usable));
        Ok(Snapshot {
            entries,
            refused,
            dummy,
            shadow_unreadable,
        })
    }

    /// Hashes `password` against the dummy and throws the result away.
    fn waste_time(&self, password: &str) {
        if let Some(dummy) = &self.dummy {
            let _ = crypt::verify(password.as_bytes(), dummy);
        }
    }
}

/// The current snapshot and the file versions it was last compared with.
struct Current {
    snapshot: Arc<Snapshot>,
    stamps: Vec<Stamp>,
}

/// The system's accounts, for logging in with them.
pub struct SystemUsers {
    files: SystemFiles,
    reload: bool,
    current: Mutex<Current>,
}

impl fmt::Debug for SystemUsers {
    // Never print hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("SystemUsers")
            .field("files", &self.files)
            .field("reload", &self.reload)
            .field("accounts", &current.snapshot.entries.len())
            .field("refused", &current.snapshot.refused)
            .finish()
    }
}

/// Why a system account may not log in (for the log; the client only
/// ever hears `530`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No such account.
    Unknown,
    /// Listed in the ftpusers file.
    Listed,
    /// The account is locked.
    Locked,
    /// The account has no password.
    NoPassword,
    /// The account's expiry date has passed.
    Expired,
    /// The stored hash is of a scheme the system's crypt does not take.
    UnusableHash,
    /// The password is wrong.
    WrongPassword,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Unknown => "no such account",
            Refusal::Listed => "listed in the ftpusers file",
            Refusal::Locked => "account locked",
            Refusal::NoPassword => "account has no password",
            Refusal::Expired => "account expired",
            Refusal::UnusableHash => "password hash not supported by the system's crypt",
            Refusal::WrongPassword => "wrong password",
        })
    }
}

impl SystemUsers {
    /// Reads the account files. With `reload`, [`SystemUsers::verify`]
    /// rereads them when one of them changed (keeping what it had if that
    /// fails); without, they are read only now.
    ///
    /// `passwd` must be readable; `shadow` and `group` may be missing,
    /// and `shadow` may be unreadable (then accounts whose password is
    /// there cannot log in: see [`SystemUsers::warnings`]). The ftpusers
    /// file may be missing unless [`SystemFiles::ftpusers_required`].
    pub fn load(files: SystemFiles, reload: bool) -> Result<SystemUsers, ConfigError> {
        let snapshot = Snapshot::read(&files)?;
        let stamps = Self::stamps(&files);
        Ok(SystemUsers {
            files,
            reload,
            current: Mutex::new(Current {
                snapshot: Arc::new(snapshot),
                stamps,
            }),
        })
    }

    /// `passwd` and `shadow` given, `/etc/group` and `/etc/ftpusers` (if
    /// it exists), read once.
    pub fn from_files(
        passwd: impl Into<PathBuf>,
        shadow: impl Into<PathBuf>,
    ) -> Result<SystemUsers, ConfigError> {
        Self::load(SystemFiles::new(passwd, shadow), false)
    }

    /// The files the accounts come from.
    pub fn files(&self) -> &SystemFiles {
        &self.files
    }

    fn stamps(files: &SystemFiles) -> Vec<Stamp> {
        [&files.passwd, &files.shadow, &files.group, &files.ftpusers]
            .into_iter()
            .map(|p| stamp(p))
            .collect()
    }

    /// The snapshot to use now, reloaded first if allowed and a file
    /// changed since the last look.
    fn snapshot(&self) -> Arc<Snapshot> {
        let mut current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        if self.reload {
            let stamps = Self::stamps(&self.files);
            if stamps != current.stamps {
                current.stamps = stamps;
                match Snapshot::read(&self.files) {
                    // A daemon that dropped root can still see that shadow
                    // changed but no longer read it: keep the hashes it has.
                    Ok(fresh) if fresh.shadow_unreadable && !current.snapshot.shadow_unreadable => {
                        log::warn!(
                            "{} changed but cannot be reread (permission denied); \
                             using the accounts read before",
                            self.files.shadow.display()
                        );
                    }
                    Ok(fresh) => {
                        log::info!("system accounts reloaded");
                        current.snapshot = Arc::new(fresh);
                    }
                    Err(e) => log::warn!(
                        "system accounts changed but cannot be reread ({e}); \
                         using the accounts read before"
                    ),
                }
            }
        }
        current.snapshot.clone()
    }

    /// Problems worth a warning when the server starts.
    pub fn warnings(&self) -> Vec<String> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        if snapshot.shadow_unreadable {
            out.push(format!(
                "cannot read {} (permission denied): accounts whose password is kept there cannot log in",
                self.files.shadow.display()
            ));
        }
        out
    }

    /// The account named `name`, whatever its password (for `-a USER`).
    pub fn account(&self, name: &str) -> Option<Account> {
        self.snapshot().entries.get(name).map(|e| e.account.clone())
    }

    /// Checks a login. Slow by design (the stored hash's own cost): call it
    /// off the event loop. Refusals are [`AuthError::Denied`], except when
    /// the password could not be read at all ([`AuthError::Unavailable`]);
    /// the reason is logged at info level.
    pub fn verify(&self, user: &str, password: &str) -> Result<Account, AuthError> {
        self.check(user, password).map_err(|refusal| match refusal {
            Ok(refusal) => {
                log::info!("system login as {user:?} refused: {refusal}");
                AuthError::Denied
            }
            Err(e) => e,
        })
    }

    /// [`SystemUsers::verify`] with the reason for a refusal.
    pub(crate) fn check(
        &self,
        user: &str,
        password: &str,
    ) -> Result<Account, Result<Refusal, AuthError>> {
        let snapshot = self.snapshot();
        let Some(entry) = snapshot.entries.get(user) else {
            snapshot.waste_time(password);
            return Err(Ok(Refusal::Unknown));
        };
        let refuse = |why| {
            snapshot.waste_time(password);
            Err(Ok(why))
        };
        if snapshot.refused.contains(user) {
            return refuse(Refusal::Listed);
        }
        if let Some(day) = entry.expires {
            if today() >= day {
                return refuse(Refusal::Expired);
            }
        }
        let hash = match &entry.password {
            Password::Hash(hash) => hash,
            Password::Locked => return refuse(Refusal::Locked),
            Password::Empty => return refuse(Refusal::NoPassword),
            Password::Missing => return refuse(Refusal::Locked),
            Password::Unreadable => {
                log::error!(
                    "system login as {user:?}: cannot read {}",
                    self.files.shadow.display()
                );
                return Err(Err(AuthError::Unavailable));
            }
        };
        match crypt::verify(password.as_bytes(), hash) {
            Ok(true) => Ok(entry.account.clone()),
            Ok(false) | Err(crypt::CryptError::NulInPassword) => Err(Ok(Refusal::WrongPassword)),
            Err(e) => {
                log::warn!("system login as {user:?}: {e}");
                Err(Ok(Refusal::UnusableHash))
            }
        }
    }
}

/// Days since 1970-01-01, as `shadow` counts.
fn today() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes from `tests/data/crypt-vectors.txt` (password `hunter2`).
    const YESCRYPT: &str =
        "$y$j9T$Rnb18z.fEyeOJR9x.FXEN0$RC5GthjFKN8Gg4Bh8W/gq4nFwyesswcalNT824u0bn1";
    const SHA512: &str = "$6$icCfp6/PbmMIeTIT$5a9xe1Q9yLzKRCWZBau.HV2cV9KxsHlgVpViIgTGRi6Gzji3C5Voh0qMrUbGT3MZ0NG3444ssCASyz3CX1KZ1.";
    const MD5: &str = "$1$c5eB66kt$nr9i3dra9jmv7nxu0EEBG.";
    const DES: &str = "b1omyKjiXhfXY";

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(passwd: &str, shadow: Option<&str>, group: &str, ftpusers: Option<&str>) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("passwd"), passwd).unwrap();
            if let Some(s) = shadow {
                std::fs::write(dir.path().join("shadow"), s).unwrap();
            }
            std::fs::write(dir.path().join("group"), group).unwrap();
            if let Some(f) = ftpusers {
                std::fs::write(dir.path().join("ftpusers"), f).unwrap();
            }
            Files { dir }
        }

        fn files(&self) -> SystemFiles {
            let p = |n: &str| self.dir.path().join(n);
            SystemFiles {
                passwd: p("passwd"),
                shadow: p("shadow"),
                group: p("group"),
                ftpusers: p("ftpusers"),
                ftpusers_required: false,
            }
        }
    }

    fn standard() -> Files {
        let passwd = "\
# comment
root:x:0:0:root:/root:/bin/bash
alice:x:1000:1000:Alice:/home/alice:/bin/bash
bob:x:1001:1001::/home/bob:/bin/sh
locked:x:1002:1002::/home/locked:/bin/sh
starred:x:1003:1003::/:/usr/sbin/nologin
empty:x:1004:1004::/:/bin/sh
expired:x:1005:1005::/:/bin/sh
old:OLDHASH:1006:1006::/:/bin/sh
noshadow:x:1007:1007::/:/bin/sh
weird:x:1008:1008::/:/bin/sh
+nis
bad:x:notanumber:1:::
alice:x:2000:2000:second alice:/:/bin/sh
"
        .replace("OLDHASH", DES);
        let shadow = format!(
            "root:{MD5}:19000:0:99999:7:::\n\
             alice:{YESCRYPT}:19000:0:99999:7:::\n\
             bob:{SHA512}:19000:0:99999:7::99999999:\n\
             locked:!{SHA512}:19000:0:99999:7:::\n\
             starred:*:19000:0:99999:7:::\n\
             empty::19000:0:99999:7:::\n\
             expired:{SHA512}:19000:0:99999:7::1:\n\
             weird:$99$nonsense:19000::::::\n"
        );
        let group = "root:x:0:\nalice:x:1000:\nwheel:x:10:alice, bob\nftp:x:50:alice\nalice2:x:1000:alice\n";
        Files::new(
            &passwd,
            Some(&shadow),
            group,
            Some("# refused\nroot\n  bob  # comment\n"),
        )
    }

    #[test]
    fn verifies_each_scheme_and_builds_the_account() {
        let f = standard();
        let users = SystemUsers::load(f.files(), false).unwrap();
        let alice = users.verify("alice", "hunter2").unwrap();
        assert_eq!(
            alice,
            Account {
                name: "alice".into(),
                uid: 1000,
                gid: 1000,
                groups: vec![1000, 10, 50],
                home: PathBuf::from("/home/alice"),
            }
        );
        assert_eq!(users.verify("alice", "hunter3"), Err(AuthError::Denied));
        assert_eq!(users.verify("alice", ""), Err(AuthError::Denied));
        assert_eq!(users.verify("Alice", "hunter2"), Err(AuthError::Denied));
        assert_eq!(users.verify("alice", "hunter2\0"), Err(AuthError::Denied));
        // Hash kept in passwd (no shadow entry needed).
        assert_eq!(users.verify("old", "hunter2").unwrap().uid, 1006);
        assert!(!format!("{users:?}").contains('$'), "{users:?}");
    }

    #[test]
    fn refusals() {
        let f = standard();
        let users = SystemUsers::load(f.files(), false).unwrap();
        let why = |u: &str, p: &str| users.check(u, p).unwrap_err().unwrap();
        // root and bob are in ftpusers, even with the right password.
        assert_eq!(why("root", "hunter2"), Refusal::Listed);
        assert_eq!(why("bob", "hunter2"), Refusal::Listed);
        assert_eq!(why("locked", "hunter2"), Refusal::Locked);
        assert_eq!(why("starred", ""), Refusal::Locked);
        assert_eq!(why("empty", ""), Refusal::NoPassword);
        assert_eq!(why("expired", "hunter2"), Refusal::Expired);
        assert_eq!(why("noshadow", "x"), Refusal::Locked);
        assert_eq!(why("weird", "x"), Refusal::UnusableHash);
        assert_eq!(why("nobody", "hunter2"), Refusal::Unknown);
        assert_eq!(why("+nis", "x"), Refusal::Unknown);
        assert_eq!(why("bad", "x"), Refusal::Unknown);
        for u in ["root", "locked", "empty", "nobody"] {
            assert_eq!(users.verify(u, "hunter2"), Err(AuthError::Denied));
        }
        // Without the ftpusers file, root and bob may log in.
        let mut files = f.files();
        files.ftpusers = f.dir.path().join("none");
        let users = SystemUsers::load(files.clone(), false).unwrap();
        assert_eq!(users.verify("root", "hunter2").unwrap().uid, 0);
        assert_eq!(users.verify("bob", "hunter2").unwrap().groups, [1001, 10]);
        // ...unless the operator named one that is not there.
        files.ftpusers_required = true;
        assert!(matches!(
            SystemUsers::load(files, false),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn lookups_for_anonymous() {
        let f = standard();
        let users = SystemUsers::load(f.files(), false).unwrap();
        assert_eq!(users.account("starred").unwrap().uid, 1003);
        assert_eq!(users.account("nobody"), None);
        let ftp = lookup(&f.files(), "alice").unwrap().unwrap();
        assert_eq!(ftp.groups, [1000, 10, 50]);
        assert_eq!(lookup(&f.files(), "nobody").unwrap(), None);
    }

    #[test]
    fn missing_files() {
        // passwd must be there; shadow and group need not.
        let f = Files::new(
            &format!("solo:{MD5}:5:6::/:/bin/sh\nx:x:7:7::/:/bin/sh\n"),
            None,
            "",
            None,
        );
        let mut files = f.files();
        files.group = f.dir.path().join("no-group");
        let users = SystemUsers::load(files.clone(), false).unwrap();
        assert_eq!(users.verify("solo", "hunter2").unwrap().groups, [6]);
        assert_eq!(users.verify("x", "x"), Err(AuthError::Denied));
        assert!(users.warnings().is_empty());
        files.passwd = f.dir.path().join("no-passwd");
        assert!(matches!(
            SystemUsers::load(files, false),
            Err(ConfigError::Read { .. })
        ));
    }

    #[test]
    fn reloads_only_when_allowed() {
        let f = standard();
        let frozen = SystemUsers::load(f.files(), false).unwrap();
        let live = SystemUsers::load(f.files(), true).unwrap();
        assert!(frozen.verify("alice", "hunter2").is_ok());
        // Lock alice (a longer file, so the change shows even within one
        // timestamp tick).
        let shadow = std::fs::read_to_string(f.files().shadow).unwrap();
        std::fs::write(
            f.files().shadow,
            shadow.replace("alice:$y$", "alice:!$y$") + "\n",
        )
        .unwrap();
        assert!(frozen.verify("alice", "hunter2").is_ok());
        assert_eq!(live.verify("alice", "hunter2"), Err(AuthError::Denied));
        // A file that cannot be reread keeps the last accounts.
        std::fs::remove_file(f.files().passwd).unwrap();
        assert_eq!(live.verify("alice", "hunter2"), Err(AuthError::Denied));
        assert_eq!(live.account("bob").unwrap().uid, 1001);
    }

    #[test]
    fn parsers_tolerate_odd_lines() {
        assert_eq!(parse_passwd("a:x:1\n:x:1:1:::\n").len(), 0);
        let s = parse_shadow("a:h:1:2:3:4:5:0:\nb:h\n");
        assert_eq!(s["a"], ("h".to_string(), None));
        assert_eq!(s["b"], ("h".to_string(), None));
        assert_eq!(parse_group("g:x:nan:a\ng:x:5:,a,,\n")["a"], [5]);
        let f = parse_ftpusers("root\r\n\n#x\n daemon \n");
        assert!(f.contains("root") && f.contains("daemon") && f.len() == 2);
    }
}
