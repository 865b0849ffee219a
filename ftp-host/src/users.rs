//! The users file: named accounts with argon2 password hashes.
//!
//! ```toml
//! [[user]]
//! name = "alice"
//! password = "$argon2id$v=19$m=19456,t=2,p=1$...$..."   # from `PROG hash-password`
//! home = "alice"        # optional: folder under DIR that becomes her `/`
//! write = true          # optional, default false
//! # optional limits and filters (see `crate::policy::UserPolicy`):
//! quota_bytes = 1073741824
//! quota_files = 10000
//! max_file_size = 104857600
//! download_rate = 1048576
//! upload_rate = 524288
//! allow_from = ["10.0.0.0/8", "2001:db8::/32"]
//! deny_from = ["10.9.9.0/24"]
//! ```
//!
//! Passwords are stored only as PHC hash strings; plain text is refused
//! when the file is loaded. Verification is slow by design (argon2), so
//! the daemons run [`UserDb::verify`] off their event loop, on the worker
//! pool's password-check lane, which bounds how many run at once; each
//! check's memory is given back to the system when it ends
//! ([`crate::argon`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, PasswordHash, PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params};
use ftp_proto::{AuthError, Grant};
use serde::Deserialize;

use crate::argon::{self, VerifyError};
use crate::config::{ConfigError, UserProblem, line_of};
use crate::policy::UserPolicy;

/// Hash checked for names that are not in the database when the database
/// is empty, so that an unknown name costs as much as a known one. Its
/// output (all zero bytes) matches no password.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

/// What a successful login in the users file grants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserGrant {
    /// The user's name.
    pub name: String,
    /// The user's home: a relative, normalised folder under the served
    /// root (no `..`, no `.`), or `None` for the root itself.
    pub home: Option<PathBuf>,
    /// Whether the user may change the file tree.
    pub write: bool,
    /// The account's limits and address filters.
    pub policy: Arc<UserPolicy>,
}

impl UserGrant {
    /// The engine's view of this grant.
    pub fn to_grant(&self) -> Grant {
        Grant { write: self.write }
    }
}

/// One account.
#[derive(Clone)]
struct Account {
    /// The PHC string, checked to parse as an argon2 hash.
    hash: String,
    home: Option<PathBuf>,
    write: bool,
    policy: Arc<UserPolicy>,
}

/// The accounts of a users file.
#[derive(Clone)]
pub struct UserDb {
    accounts: HashMap<String, Account>,
    /// Names in file order (for listing and checks).
    order: Vec<String>,
    /// A hash with the same parameters as the first account's, matching no
    /// password; verified for unknown names.
    dummy: String,
}

impl fmt::Debug for UserDb {
    // Never print hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDb")
            .field("users", &self.order)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    name: toml::Spanned<String>,
    password: toml::Spanned<String>,
    home: Option<toml::Spanned<String>>,
    #[serde(default)]
    write: bool,
    // The keys of `UserPolicy`, repeated: serde cannot flatten a struct
    // into one that refuses unknown keys.
    quota_bytes: Option<u64>,
    quota_files: Option<u64>,
    max_file_size: Option<u64>,
    download_rate: Option<u64>,
    upload_rate: Option<u64>,
    allow_from: Option<toml::Spanned<Vec<String>>>,
    deny_from: Option<toml::Spanned<Vec<String>>>,
}

impl UserDb {
    /// Reads and checks a users file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { line, message, .. } => ConfigError::Parse {
                path: Some(path.to_path_buf()),
                line,
                message,
            },
            ConfigError::User {
                line,
                name,
                problem,
                ..
            } => ConfigError::User {
                path: Some(path.to_path_buf()),
                line,
                name,
                problem,
            },
            other => other,
        })
    }

    /// Parses and checks the text of a users file.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile =
            toml::from_str(text).map_err(|e| ConfigError::from_toml(None, text, &e))?;
        let mut accounts = HashMap::with_capacity(raw.user.len());
        let mut order = Vec::with_capacity(raw.user.len());
        for user in raw.user {
            let name = user.name.get_ref().clone();
            let fail = |offset: usize, problem: UserProblem| ConfigError::User {
                path: None,
                line: Some(line_of(text, offset)),
                name: name.clone(),
                problem,
            };
            if name.is_empty() || name.chars().any(char::is_control) {
                return Err(fail(user.name.span().start, UserProblem::BadName));
            }
            if accounts.contains_key(&name) {
                return Err(fail(user.name.span().start, UserProblem::Duplicate));
            }
            check_hash(user.password.get_ref()).map_err(|p| fail(user.password.span().start, p))?;
            let home = match &user.home {
                Some(h) => normalise_home(h.get_ref()).map_err(|p| fail(h.span().start, p))?,
                None => None,
            };
            let networks = |list: &Option<toml::Spanned<Vec<String>>>| match list {
                None => Ok(Vec::new()),
                Some(l) => l
                    .get_ref()
                    .iter()
                    .map(|n| n.parse())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| fail(l.span().start, UserProblem::BadNetwork(e))),
            };
            let policy = UserPolicy {
                quota_bytes: user.quota_bytes,
                quota_files: user.quota_files,
                max_file_size: user.max_file_size,
                download_rate: user.download_rate,
                upload_rate: user.upload_rate,
                allow_from: networks(&user.allow_from)?,
                deny_from: networks(&user.deny_from)?,
            };
            order.push(name.clone());
            accounts.insert(
                name,
                Account {
                    hash: user.password.into_inner(),
                    home,
                    write: user.write,
                    policy: Arc::new(policy),
                },
            );
        }
        let dummy = order
            .first()
            .and_then(|n| accounts.get(n))
            .and_then(|a| dummy_like(&a.hash))
            .unwrap_or_else(|| DUMMY_HASH.to_string());
        Ok(UserDb {
            accounts,
            order,
            dummy,
        })
    }

    /// The names of all accounts, in file order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// The home folder of an account (relative to the served root), if the
    /// account exists and has one.
    pub fn home(&self, user: &str) -> Option<&Path> {
        self.accounts.get(user)?.home.as_deref()
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether the file has no accounts.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Whether `user` is an account of the file.
    pub fn contains(&self, user: &str) -> bool {
        self.accounts.contains_key(user)
    }

    /// Checks a password. Slow by design (argon2 with the parameters in the
    /// stored hash): call it off the event loop.
    ///
    /// An unknown name is verified against a dummy hash (with the first
    /// account's parameters) so the answer takes about as long as for a
    /// known name; both give [`AuthError::Denied`].
    pub fn verify(&self, user: &str, password: &str) -> Result<UserGrant, AuthError> {
        let Some(account) = self.accounts.get(user) else {
            if let Ok(hash) = PasswordHash::new(&self.dummy) {
                let _ = argon::verify(password.as_bytes(), &hash);
            }
            return Err(AuthError::Denied);
        };
        let hash = PasswordHash::new(&account.hash).map_err(|_| AuthError::Unavailable)?;
        match argon::verify(password.as_bytes(), &hash) {
            Ok(()) => Ok(UserGrant {
                name: user.to_string(),
                home: account.home.clone(),
                write: account.write,
                policy: account.policy.clone(),
            }),
            Err(VerifyError::Mismatch) => Err(AuthError::Denied),
            Err(e) => {
                log::warn!("login as {user}: {e}");
                Err(AuthError::Unavailable)
            }
        }
    }
}

/// Checks that `s` is an argon2 PHC string argon2 can verify against.
fn check_hash(s: &str) -> Result<(), UserProblem> {
    let hash = PasswordHash::new(s).map_err(UserProblem::NotPhc)?;
    Algorithm::try_from(hash.algorithm)
        .map_err(|_| UserProblem::NotArgon2(hash.algorithm.to_string()))?;
    if hash.hash.is_none() || hash.salt.is_none() {
        return Err(UserProblem::NotPhc(
            argon2::password_hash::Error::PhcStringField,
        ));
    }
    Params::try_from(&hash).map_err(UserProblem::BadParams)?;
    if let Some(v) = hash.version {
        argon2::Version::try_from(v).map_err(|e| UserProblem::BadParams(e.into()))?;
    }
    Ok(())
}

/// A PHC string with the parameters and salt of `model` and an all-zero
/// output of the same length, which no password produces in practice.
fn dummy_like(model: &str) -> Option<String> {
    let mut hash = PasswordHash::new(model).ok()?;
    let len = hash.hash.as_ref()?.len();
    hash.hash = Some(Output::new(&[0u8; Output::MAX_LENGTH][..len]).ok()?);
    Some(hash.to_string())
}

/// Turns a `home` value into a normalised relative path (`None` for the
/// root itself).
pub(crate) fn normalise_home(s: &str) -> Result<Option<PathBuf>, UserProblem> {
    let mut out = PathBuf::new();
    for c in Path::new(s).components() {
        match c {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(UserProblem::HomeParent),
            Component::RootDir | Component::Prefix(_) => return Err(UserProblem::HomeAbsolute),
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

/// Hashes a password for the users file: argon2id with the library's
/// default parameters and a random salt from the operating system. Returns
/// the PHC string.
pub fn hash_password(password: &str) -> Result<String, ConfigError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ConfigError::Hash)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::Version;

    /// A cheap hash, so tests stay fast; verification reads the parameters
    /// from the string.
    fn cheap_hash(password: &str) -> String {
        let argon = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8, 1, 1, None).unwrap(),
        );
        argon
            .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))
            .unwrap()
            .to_string()
    }

    fn file(entries: &[(&str, &str, Option<&str>, bool)]) -> String {
        let mut s = String::from("# users\n");
        for (name, pw, home, write) in entries {
            s.push_str(&format!(
                "[[user]]\nname = \"{name}\"\npassword = \"{pw}\"\n"
            ));
            if let Some(h) = home {
                s.push_str(&format!("home = \"{h}\"\n"));
            }
            s.push_str(&format!("write = {write}\n\n"));
        }
        s
    }

    #[test]
    fn parses_and_verifies() {
        let text = file(&[
            (
                "alice",
                &cheap_hash("wonder land"),
                Some("./alice/in"),
                true,
            ),
            ("bob", &cheap_hash("builder"), None, false),
        ]);
        let db = UserDb::parse(&text).unwrap();
        assert_eq!(db.len(), 2);
        assert_eq!(db.names().collect::<Vec<_>>(), ["alice", "bob"]);
        assert_eq!(db.home("alice"), Some(Path::new("alice/in")));
        assert_eq!(
            db.verify("alice", "wonder land"),
            Ok(UserGrant {
                name: "alice".into(),
                home: Some(PathBuf::from("alice/in")),
                write: true,
                policy: Arc::default(),
            })
        );
        let bob = db.verify("bob", "builder").unwrap();
        assert_eq!((bob.home.as_deref(), bob.write), (None, false));
        assert_eq!(bob.to_grant(), Grant { write: false });
        assert_eq!(db.verify("alice", "wonderland"), Err(AuthError::Denied));
        assert_eq!(db.verify("alice", ""), Err(AuthError::Denied));
        assert_eq!(db.verify("carol", "builder"), Err(AuthError::Denied));
        assert_eq!(db.verify("Alice", "wonder land"), Err(AuthError::Denied));
        assert!(!format!("{db:?}").contains("argon2"));
    }

    #[test]
    fn dummy_matches_the_first_accounts_parameters() {
        let h = cheap_hash("x");
        let db = UserDb::parse(&file(&[("a", &h, None, false)])).unwrap();
        let dummy = PasswordHash::new(&db.dummy).unwrap();
        let real = PasswordHash::new(&h).unwrap();
        assert_eq!(dummy.params, real.params);
        assert_eq!(dummy.hash.unwrap().len(), real.hash.unwrap().len());
        assert_ne!(db.dummy, h);
        // An empty database still has a usable dummy.
        let empty = UserDb::parse("").unwrap();
        assert!(empty.is_empty());
        assert!(PasswordHash::new(&empty.dummy).is_ok());
        assert_eq!(empty.verify("anyone", "x"), Err(AuthError::Denied));
    }

    #[test]
    fn rejects_plain_text_password_naming_the_user() {
        let text = file(&[
            ("ok", &cheap_hash("x"), None, false),
            ("bob", "hunter2", None, false),
        ]);
        let err = UserDb::parse(&text).unwrap_err();
        match &err {
            ConfigError::User {
                name,
                problem: UserProblem::NotPhc(_),
                line,
                ..
            } => {
                assert_eq!(name, "bob");
                assert_eq!(*line, Some(9));
            }
            other => panic!("unexpected {other:?}"),
        }
        let msg = err.to_string();
        assert!(
            msg.starts_with("users file:9: user 'bob': password is not an argon2 PHC hash"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_other_algorithms_and_bad_params() {
        let pbkdf = "$pbkdf2-sha256$i=1000$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let err = UserDb::parse(&file(&[("u", pbkdf, None, false)])).unwrap_err();
        assert!(
            matches!(&err, ConfigError::User { problem: UserProblem::NotArgon2(a), .. } if a == "pbkdf2-sha256"),
            "{err:?}"
        );
        let no_output = "$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA";
        assert!(UserDb::parse(&file(&[("u", no_output, None, false)])).is_err());
        let bad_m = "$argon2id$v=19$m=1,t=1,p=1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        let err = UserDb::parse(&file(&[("u", bad_m, None, false)])).unwrap_err();
        assert!(
            matches!(
                &err,
                ConfigError::User {
                    problem: UserProblem::BadParams(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn rejects_bad_homes() {
        let h = cheap_hash("x");
        for (home, want) in [
            ("/srv/bob", UserProblem::HomeAbsolute),
            ("../etc", UserProblem::HomeParent),
            ("bob/../../x", UserProblem::HomeParent),
        ] {
            let err = UserDb::parse(&file(&[("bob", &h, Some(home), false)])).unwrap_err();
            match err {
                ConfigError::User {
                    name,
                    problem,
                    line,
                    ..
                } => {
                    assert_eq!((name.as_str(), problem), ("bob", want));
                    assert_eq!(line, Some(5));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let db = UserDb::parse(&file(&[("bob", &h, Some("."), false)])).unwrap();
        assert_eq!(db.home("bob"), None);
    }

    #[test]
    fn rejects_duplicates_bad_names_and_unknown_keys() {
        let h = cheap_hash("x");
        let err =
            UserDb::parse(&file(&[("bob", &h, None, false), ("bob", &h, None, true)])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::User {
                problem: UserProblem::Duplicate,
                ..
            }
        ));
        let err = UserDb::parse(&file(&[("", &h, None, false)])).unwrap_err();
        assert!(matches!(
            err,
            ConfigError::User {
                problem: UserProblem::BadName,
                ..
            }
        ));
        let err = UserDb::parse("[[user]]\nname = \"a\"\npasword = \"x\"\n").unwrap_err();
        assert!(
            matches!(err, ConfigError::Parse { line: Some(3), .. }),
            "{err:?}"
        );
        let err = UserDb::parse("[[user]]\nname = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn load_names_the_file() {
        let path = std::env::temp_dir().join(format!("ftp-host-users-{}.toml", std::process::id()));
        std::fs::write(&path, file(&[("bob", "plain", None, false)])).unwrap();
        let err = UserDb::load(&path).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        assert!(
            err.to_string()
                .starts_with(&format!("{}:4: user 'bob'", path.display())),
            "{err}"
        );
        assert!(matches!(UserDb::load(&path), Err(ConfigError::Read { .. })));
    }

    #[test]
    fn hash_password_makes_verifiable_argon2id_hashes() {
        let h = hash_password("s3cret").unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_ne!(h, hash_password("s3cret").unwrap(), "salt must be random");
        let db = UserDb::parse(&file(&[("u", &h, None, true)])).unwrap();
        assert!(db.verify("u", "s3cret").is_ok());
        assert_eq!(db.verify("u", "s3cre"), Err(AuthError::Denied));
    }
}
