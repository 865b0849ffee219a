//! Who the process acts as: the chroot of an `--inetd` session started as
//! root, the change to a logged-in user's uid, gid and groups, and
//! `--run-as` for a standalone daemon.
//!
//! The daemons run worker threads, and Linux keeps credentials per
//! thread. The changes here go through the C library's `setgroups`,
//! `setresgid` and `setresuid` (via `nix`), which glibc applies to every
//! thread of the process (it signals each one to make the same system
//! call), so no thread is left behind with root's rights. Threads started
//! later inherit the new identity.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::system::Account;

/// A uid, a gid and the supplementary groups that go with them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The user id (real, effective and saved).
    pub uid: u32,
    /// The group id (real, effective and saved).
    pub gid: u32,
    /// The supplementary groups, as `setgroups` takes them.
    pub groups: Vec<u32>,
}

/// Why the process could not change who it acts as.
#[derive(Debug)]
pub enum IdentityError {
    /// `chroot` (or the `chdir("/")` after it) failed.
    Chroot {
        /// The folder.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// `setgroups` failed.
    SetGroups(io::Error),
    /// `setresgid` failed.
    SetGid {
        /// The group id asked for.
        gid: u32,
        /// What the operating system said.
        source: io::Error,
    },
    /// `setresuid` failed.
    SetUid {
        /// The user id asked for.
        uid: u32,
        /// What the operating system said.
        source: io::Error,
    },
    /// The ids read back after the change are not the ones set.
    NotApplied,
    /// No such user (`--run-as`).
    UnknownUser(String),
    /// No such group (`--run-as USER:GROUP`).
    UnknownGroup(String),
    /// Looking a user or group up failed.
    Lookup(io::Error),
    /// Keeping `CAP_NET_BIND_SERVICE` across the change failed.
    Capabilities(io::Error),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Chroot { path, source } => {
                write!(f, "cannot chroot to {}: {source}", path.display())
            }
            IdentityError::SetGroups(e) => write!(f, "cannot set supplementary groups: {e}"),
            IdentityError::SetGid { gid, source } => {
                write!(f, "cannot change to gid {gid}: {source}")
            }
            IdentityError::SetUid { uid, source } => {
                write!(f, "cannot change to uid {uid}: {source}")
            }
            IdentityError::NotApplied => {
                f.write_str("the identity change did not take effect in full")
            }
            IdentityError::UnknownUser(u) => write!(f, "no such user '{}'", u.escape_debug()),
            IdentityError::UnknownGroup(g) => write!(f, "no such group '{}'", g.escape_debug()),
            IdentityError::Lookup(e) => write!(f, "cannot look up users and groups: {e}"),
            IdentityError::Capabilities(e) => {
                write!(f, "cannot keep CAP_NET_BIND_SERVICE: {e}")
            }
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdentityError::Chroot { source, .. }
            | IdentityError::SetGid { source, .. }
            | IdentityError::SetUid { source, .. }
            | IdentityError::SetGroups(source)
            | IdentityError::Lookup(source)
            | IdentityError::Capabilities(source) => Some(source),
            _ => None,
        }
    }
}

fn os(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

/// Whether the process runs with root's effective user id.
pub fn is_root() -> bool {
    Uid::effective().is_root()
}

/// Makes `dir` the process's `/` and changes into it. Needs root.
pub fn chroot(dir: &Path) -> Result<(), IdentityError> {
    let fail = |e| IdentityError::Chroot {
        path: dir.to_path_buf(),
        source: os(e),
    };
    nix::unistd::chroot(dir).map_err(fail)?;
    nix::unistd::chdir("/").map_err(fail)
}

impl Identity {
    /// The identity of a system account: its uid, primary gid and every
    /// group it is in (what `initgroups` would set from the same files).
    pub fn of(account: &Account) -> Identity {
        Identity {
            uid: account.uid,
            gid: account.gid,
            groups: account.groups.clone(),
        }
    }

    /// The process's current effective identity.
    pub fn current() -> Result<Identity, IdentityError> {
        let groups = nix::unistd::getgroups().map_err(|e| IdentityError::Lookup(os(e)))?;
        Ok(Identity {
            uid: Uid::effective().as_raw(),
            gid: Gid::effective().as_raw(),
            groups: groups.into_iter().map(Gid::as_raw).collect(),
        })
    }

    /// Whether every one of real, effective and saved ids and the group
    /// list are this identity's already.
    fn is_current(&self) -> bool {
        let (Ok(u), Ok(g), Ok(groups)) = (
            nix::unistd::getresuid(),
            nix::unistd::getresgid(),
            nix::unistd::getgroups(),
        ) else {
            return false;
        };
        let mut have: Vec<u32> = groups.into_iter().map(Gid::as_raw).collect();
        let mut want = self.groups.clone();
        have.sort_unstable();
        have.dedup();
        want.sort_unstable();
        want.dedup();
        [u.real, u.effective, u.saved]
            .iter()
            .all(|id| id.as_raw() == self.uid)
            && [g.real, g.effective, g.saved]
                .iter()
                .all(|id| id.as_raw() == self.gid)
            && have == want
    }

    /// Makes the whole process (every thread) act as this identity for
    /// good: supplementary groups, then real, effective and saved gid,
    /// then uid. Needs root unless the process is this identity already.
    /// Checks the result; after a change to a non-root uid there is no way
    /// back.
    pub fn assume(&self) -> Result<(), IdentityError> {
        if self.is_current() {
            return Ok(());
        }
        let groups: Vec<Gid> = self.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        nix::unistd::setgroups(&groups).map_err(|e| IdentityError::SetGroups(os(e)))?;
        let gid = Gid::from_raw(self.gid);
        nix::unistd::setresgid(gid, gid, gid).map_err(|e| IdentityError::SetGid {
            gid: self.gid,
            source: os(e),
        })?;
        let uid = Uid::from_raw(self.uid);
        nix::unistd::setresuid(uid, uid, uid).map_err(|e| IdentityError::SetUid {
            uid: self.uid,
            source: os(e),
        })?;
        if !self.is_current() {
            return Err(IdentityError::NotApplied);
        }
        Ok(())
    }

    /// [`Identity::assume`], keeping one capability, `CAP_NET_BIND_SERVICE`
    /// (for `--active-port-20`), in the calling thread and the threads it
    /// starts later: `PR_SET_KEEPCAPS` keeps the permitted set across the
    /// change of uid, then the permitted and effective sets are cut down to
    /// that one capability (every other one, `CAP_SETUID` first, is gone
    /// for good). Threads started before keep none, which is what the
    /// C library's change of every thread's uid leaves them. Changing to
    /// root keeps everything, as [`Identity::assume`] does.
    pub fn assume_keeping_port_binding(&self) -> Result<(), IdentityError> {
        use rustix::thread::{CapabilitySet, CapabilitySets};
        if self.uid == 0 {
            return self.assume();
        }
        let keep = rustix::thread::set_keep_capabilities(true);
        let assumed = self.assume();
        // Off again whatever happened; it only matters during a change.
        let _ = rustix::thread::set_keep_capabilities(false);
        assumed?;
        keep.map_err(|e| IdentityError::Capabilities(e.into()))?;
        let only = CapabilitySet::NET_BIND_SERVICE;
        let sets = CapabilitySets {
            effective: only,
            permitted: only,
            inheritable: CapabilitySet::empty(),
        };
        rustix::thread::set_capabilities(None, sets)
            .map_err(|e| IdentityError::Capabilities(e.into()))
    }
}

/// The account named `name` in the system's user and group databases
/// (through the C library, so NSS sources such as LDAP count as PAM's
/// do): uid, primary gid, every group `initgroups` would set, and home.
/// `Ok(None)` when there is no such account.
pub fn account_named(name: &str) -> Result<Option<Account>, IdentityError> {
    let lookup = |e| IdentityError::Lookup(os(e));
    let Some(found) = User::from_name(name).map_err(lookup)? else {
        return Ok(None);
    };
    let Ok(cname) = CString::new(found.name.as_str()) else {
        return Ok(None);
    };
    let groups = nix::unistd::getgrouplist(&cname, found.gid)
        .map_err(lookup)?
        .into_iter()
        .map(Gid::as_raw)
        .collect();
    Ok(Some(Account {
        name: found.name,
        uid: found.uid.as_raw(),
        gid: found.gid.as_raw(),
        groups,
        home: found.dir,
    }))
}

/// `--run-as USER[:GROUP]`, resolved: who a standalone daemon becomes
/// once its listening sockets are bound.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunAs {
    /// The option's value as given.
    pub spec: String,
    /// The identity: USER's uid; GROUP's gid, or USER's primary group;
    /// USER's supplementary groups (from the system's group database).
    pub identity: Identity,
}

impl RunAs {
    /// Looks `USER[:GROUP]` up in the system's user and group databases.
    /// Either part may also be a number.
    pub fn resolve(spec: &str) -> Result<RunAs, IdentityError> {
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let lookup = |e| IdentityError::Lookup(os(e));
        let found = match User::from_name(user).map_err(lookup)? {
            Some(found) => Some(found),
            None => match user.parse::<u32>() {
                Ok(n) => User::from_uid(Uid::from_raw(n)).map_err(lookup)?,
                Err(_) => None,
            },
        };
        let Some(found) = found else {
            return Err(IdentityError::UnknownUser(user.to_string()));
        };
        let gid = match group {
            None => found.gid,
            Some(name) => match Group::from_name(name).map_err(lookup)? {
                Some(g) => g.gid,
                None => match name.parse::<u32>() {
                    Ok(n) => Gid::from_raw(n),
                    Err(_) => return Err(IdentityError::UnknownGroup(name.to_string())),
                },
            },
        };
        let name = CString::new(found.name.as_str())
            .map_err(|_| IdentityError::UnknownUser(user.to_string()))?;
        let groups = nix::unistd::getgrouplist(&name, gid)
            .map_err(lookup)?
            .into_iter()
            .map(Gid::as_raw)
            .collect();
        Ok(RunAs {
            spec: spec.to_string(),
            identity: Identity {
                uid: found.uid.as_raw(),
                gid: gid.as_raw(),
                groups,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_run_as() {
        let root = RunAs::resolve("root").unwrap();
        assert_eq!((root.identity.uid, root.identity.gid), (0, 0));
        assert!(root.identity.groups.contains(&0));
        let numeric = RunAs::resolve("0:0").unwrap();
        assert_eq!((numeric.identity.uid, numeric.identity.gid), (0, 0));
        assert!(matches!(
            RunAs::resolve("no-such-user-here"),
            Err(IdentityError::UnknownUser(_))
        ));
        assert!(matches!(
            RunAs::resolve("root:no-such-group-here"),
            Err(IdentityError::UnknownGroup(_))
        ));
    }

    #[test]
    fn looks_accounts_up() {
        let root = account_named("root").unwrap().expect("root exists");
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(root.groups.first(), Some(&0));
        assert_eq!(account_named("no-such-user-here").unwrap(), None);
    }

    #[test]
    fn the_current_identity_is_assumed_without_privilege() {
        // Whoever runs the tests: becoming who we are is a no-op.
        let me = Identity::current().unwrap();
        let same = Identity {
            groups: me.groups.clone(),
            ..me.clone()
        };
        if same.is_current() {
            same.assume().unwrap();
        }
        assert_eq!(Identity::current().unwrap(), me);
    }
}
