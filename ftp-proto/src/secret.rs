//! [`Secret`]: a password on its way from `PASS` to the runtime that
//! checks it.
//!
//! The one type every password travels in (the parsed `PASS` command, the
//! login state, [`crate::Intent::Authenticate`], the host's job): its
//! `Debug` prints nothing of the value, so no log line, panic message or
//! `{:?}` of a command or intent can show a password. Reading it is an
//! explicit [`Secret::expose`].

use alloc::string::String;
use core::fmt;

/// A password (or other secret text). `Debug` shows only that it is there.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// What logs show in place of a secret.
    pub const MASK: &'static str = "****";

    /// Wraps `value`.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret itself, for the code that checks it (or sends it, in a
    /// test client).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty (`PASS` with no argument).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(String::from(value))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", Secret::MASK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn debug_never_shows_the_value() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret(****)");
        assert_eq!(s.expose(), "hunter2");
        let cmd = crate::Command::Pass(s.clone());
        assert!(!format!("{cmd:?}").contains("hunter2"));
        let intent = crate::Intent::Authenticate {
            user: String::from("alice"),
            password: s,
        };
        assert!(!format!("{intent:?}").contains("hunter2"));
    }
}
