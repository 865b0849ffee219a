//! An external authentication program (`--auth-program PROGRAM`): asked
//! about logins of names the users file does not hold (or every login,
//! without a users file).
//!
//! The program runs without a shell ([`crate::program`]) with `FTP_USER`
//! and `FTP_PEER` (and `PATH`) in its environment and the password and a
//! newline on its standard input. It answers one JSON object on standard
//! output (at most [`ANSWER_LIMIT`] bytes) and exits with status 0:
//!
//! ```json
//! {"ok": true, "home": "alice", "write": true, "quota_bytes": 1048576,
//!  "allow_from": ["10.0.0.0/8"]}
//! ```
//!
//! or `{"ok": false}`. `home` (a folder under the served root, as in the
//! users file; default the root) and `write` (default `false`) are
//! optional, and so are the keys of [`UserPolicy`]. Any other key, another
//! exit status, a crash, a program past its `--auth-timeout` or output
//! that is not such an object refuses the login.
//!
//! The daemons ask it from the worker pool's password-check lane, which
//! bounds how many run at once (`--password-checks`).

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::config::UserProblem;
use crate::policy::UserPolicy;
use crate::program::{Program, Run, RunError};
use crate::users::normalise_home;

/// Most bytes of an answer.
pub const ANSWER_LIMIT: usize = 64 * 1024;

/// Bytes of the program's standard error that are logged.
const STDERR_LIMIT: usize = 4096;

/// The default `--auth-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the program allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allowed {
    /// The home: a relative, normalised folder under the served root, or
    /// `None` for the root itself.
    pub home: Option<PathBuf>,
    /// Whether the user may change the file tree.
    pub write: bool,
    /// The account's limits and address filters.
    pub policy: UserPolicy,
}

/// The program's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// `{"ok": true, ...}`.
    Allowed(Allowed),
    /// `{"ok": false}`.
    Refused,
}

/// Why the program gave no usable answer.
#[derive(Debug)]
pub enum AuthProgramError {
    /// It could not run, or ran out of time.
    Run(RunError),
    /// It ended with another status than 0.
    Status(String),
    /// It wrote more than [`ANSWER_LIMIT`] bytes.
    TooLong,
    /// What it wrote is not an answer.
    Garbage(String),
    /// Its `home` cannot be a home.
    Home(UserProblem),
}

impl fmt::Display for AuthProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthProgramError::Run(e) => write!(f, "{e}"),
            AuthProgramError::Status(s) => write!(f, "ended with {s}"),
            AuthProgramError::TooLong => {
                write!(f, "answered more than {ANSWER_LIMIT} bytes")
            }
            AuthProgramError::Garbage(why) => write!(f, "answered no usable JSON object: {why}"),
            AuthProgramError::Home(p) => write!(f, "answered an unusable home: {p}"),
        }
    }
}

impl std::error::Error for AuthProgramError {}

/// Asks `program` whether `user` may log in from `peer` with `password`;
/// blocks up to `timeout` (then the program is killed).
pub fn ask(
    program: &Program,
    timeout: Duration,
    user: &str,
    password: &str,
    peer: IpAddr,
) -> Result<Verdict, AuthProgramError> {
    let env = [
        ("FTP_USER", user.to_string()),
        ("FTP_PEER", peer.to_string()),
    ];
    let mut input = Vec::with_capacity(password.len() + 1);
    input.extend_from_slice(password.as_bytes());
    input.push(b'\n');
    let done = program.run(&Run {
        env: &env,
        stdin: Some(&input),
        stdout_limit: ANSWER_LIMIT,
        stderr_limit: STDERR_LIMIT,
        timeout,
    });
    input.fill(0);
    let done = done.map_err(AuthProgramError::Run)?;
    if !done.stderr.is_empty() {
        log::warn!(
            "auth program ({program}) said: {}",
            String::from_utf8_lossy(&done.stderr).trim_end()
        );
    }
    if !done.status.success() {
        return Err(AuthProgramError::Status(done.describe()));
    }
    if done.stdout_cut {
        return Err(AuthProgramError::TooLong);
    }
    parse_answer(&done.stdout)
}

/// Reads an answer: one JSON object.
pub fn parse_answer(text: &[u8]) -> Result<Verdict, AuthProgramError> {
    let garbage = |why: String| AuthProgramError::Garbage(why);
    let mut object: Map<String, Value> =
        serde_json::from_slice(text).map_err(|e| garbage(e.to_string()))?;
    match object.remove("ok") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Verdict::Refused),
        _ => return Err(garbage("\"ok\" must be true or false".into())),
    }
    let home = match object.remove("home") {
        None | Some(Value::Null) => None,
        Some(Value::String(h)) => normalise_home(&h).map_err(AuthProgramError::Home)?,
        Some(_) => return Err(garbage("\"home\" must be a string".into())),
    };
    let write = match object.remove("write") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(w)) => w,
        Some(_) => return Err(garbage("\"write\" must be true or false".into())),
    };
    let policy: UserPolicy =
        serde_json::from_value(Value::Object(object)).map_err(|e| garbage(e.to_string()))?;
    Ok(Verdict::Allowed(Allowed {
        home,
        write,
        policy,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Verdict, AuthProgramError> {
        parse_answer(s.as_bytes())
    }

    fn sh(script: &str) -> Program {
        Program {
            path: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    const ME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[test]
    fn answers_are_json_objects_with_ok() {
        assert_eq!(
            parse(r#"{"ok": false, "why": 1}"#).unwrap(),
            Verdict::Refused
        );
        assert_eq!(
            parse(" {\"ok\": true}\n").unwrap(),
            Verdict::Allowed(Allowed {
                home: None,
                write: false,
                policy: UserPolicy::default(),
            })
        );
        let Verdict::Allowed(a) = parse(
            r#"{"ok": true, "home": "./a/b", "write": true, "quota_files": 3,
                "deny_from": ["127.0.0.0/8"]}"#,
        )
        .unwrap() else {
            panic!("allowed");
        };
        assert_eq!(a.home, Some(PathBuf::from("a/b")));
        assert!(a.write);
        assert_eq!(a.policy.quota_files, Some(3));
        assert!(!a.policy.admits(ME));
        for bad in [
            "",
            "yes",
            "[]",
            r#"{"ok": "yes"}"#,
            r#"{"home": "a"}"#,
            r#"{"ok": true, "write": 1}"#,
            r#"{"ok": true, "quota": 1}"#,
            r#"{"ok": true, "allow_from": ["nowhere"]}"#,
            r#"{"ok": true} {"ok": true}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(AuthProgramError::Garbage(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            parse(r#"{"ok": true, "home": "../x"}"#),
            Err(AuthProgramError::Home(UserProblem::HomeParent))
        ));
        assert!(matches!(
            parse(r#"{"ok": true, "home": "/etc"}"#),
            Err(AuthProgramError::Home(UserProblem::HomeAbsolute))
        ));
    }

    #[test]
    fn the_program_gets_the_password_and_the_facts() {
        let p = sh(
            r#"read pw; if [ "$pw" = hunter2 ] && [ "$FTP_USER" = bob ] && [ "$FTP_PEER" = 127.0.0.1 ]; then echo '{"ok": true, "write": true}'; else echo '{"ok": false}'; fi"#,
        );
        let t = Duration::from_secs(10);
        assert!(matches!(
            ask(&p, t, "bob", "hunter2", ME),
            Ok(Verdict::Allowed(Allowed { write: true, .. }))
        ));
        assert_eq!(ask(&p, t, "bob", "hunter3", ME).unwrap(), Verdict::Refused);
        assert_eq!(ask(&p, t, "eve", "hunter2", ME).unwrap(), Verdict::Refused);
    }

    #[test]
    fn crashes_hangs_and_floods_refuse() {
        let t = Duration::from_millis(500);
        let e = ask(&sh(r#"echo '{"ok": true}'; exit 1"#), t, "a", "b", ME).unwrap_err();
        assert!(matches!(e, AuthProgramError::Status(_)), "{e}");
        let e = ask(&sh("kill -9 $$"), t, "a", "b", ME).unwrap_err();
        assert!(e.to_string().contains("signal 9"), "{e}");
        let e = ask(&sh("sleep 10"), t, "a", "b", ME).unwrap_err();
        assert!(
            matches!(e, AuthProgramError::Run(RunError::TimedOut(_))),
            "{e}"
        );
        let e = ask(&sh("head -c 100000 /dev/zero"), t, "a", "b", ME).unwrap_err();
        assert!(matches!(e, AuthProgramError::TooLong), "{e}");
    }
}
