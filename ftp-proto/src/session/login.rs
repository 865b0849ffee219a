//! USER / PASS: login policy, failed-login delays and attempt limits.

use alloc::string::String;
use core::time::Duration;

use super::{Session, State};
use crate::event::Event;
use crate::intent::{AuthError, Completion, Intent};
use crate::secret::Secret;

/// Where the session stands with authentication.
#[derive(Debug)]
pub(super) enum Login {
    /// Waiting for `USER`.
    AwaitUser,
    /// `USER` given, waiting for `PASS`.
    AwaitPass { user: String, failures: u32 },
    /// Logged in.
    LoggedIn {
        user: String,
        write: bool,
        anonymous: bool,
    },
    /// A login failed; `PASS` replies are held back, then `USER` is needed again.
    Failed { failures: u32 },
}

impl Login {
    pub(super) fn is_logged_in(&self) -> bool {
        matches!(self, Login::LoggedIn { .. })
    }

    pub(super) fn user(&self) -> Option<&str> {
        match self {
            Login::LoggedIn { user, .. } => Some(user),
            _ => None,
        }
    }

    fn failures(&self) -> u32 {
        match self {
            Login::AwaitPass { failures, .. } | Login::Failed { failures } => *failures,
            _ => 0,
        }
    }
}

/// Whether `name` asks for an anonymous login.
fn is_anonymous_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("anonymous") || name.eq_ignore_ascii_case("ftp")
}

impl Session {
    pub(super) fn user_command(&mut self, name: String) {
        match &self.login {
            Login::LoggedIn { .. } if self.config.no_login => {
                return self.reply(230, "Login successful.");
            }
            Login::LoggedIn { .. } => return self.reply(530, "Can't change to another user."),
            _ => {}
        }
        if self.login_needs_tls(is_anonymous_name(&name)) {
            return self.reply(530, "Non-anonymous sessions must use encryption.");
        }
        let failures = self.login.failures();
        self.login = Login::AwaitPass {
            user: name,
            failures,
        };
        self.reply(331, "Please specify the password.");
    }

    pub(super) fn pass_command(&mut self, secret: Secret) {
        let (user, failures) = match core::mem::replace(&mut self.login, Login::AwaitUser) {
            Login::AwaitPass { user, failures } => (user, failures),
            logged_in @ Login::LoggedIn { .. } => {
                self.login = logged_in;
                return self.reply(230, "Already logged in.");
            }
            other => {
                self.login = other;
                return self.reply(503, "Login with USER first.");
            }
        };
        if is_anonymous_name(&user) {
            if !self.config.anonymous {
                self.login = Login::AwaitPass { user, failures };
                return self.auth_completed_failure(AuthError::Denied);
            }
            if !self.config.authenticate_anonymous {
                return self.logged_in(
                    String::from("anonymous"),
                    self.config.anonymous_write,
                    true,
                );
            }
        }
        self.login = Login::AwaitPass {
            user: user.clone(),
            failures,
        };
        // Only reached for an anonymous name when the runtime confirms
        // anonymous logins (`authenticate_anonymous`).
        let anonymous = is_anonymous_name(&user);
        let (id, user) = if anonymous {
            let id = self.intent(Intent::ConfirmAnonymous { password: secret });
            (id, String::from("anonymous"))
        } else {
            let intent = Intent::Authenticate {
                user: user.clone(),
                password: secret,
            };
            (self.intent(intent), user)
        };
        self.state = State::Authenticating {
            id,
            user,
            anonymous,
        };
    }

    pub(super) fn auth_completed(&mut self, user: String, anonymous: bool, completion: Completion) {
        match (anonymous, completion) {
            // A confirmed anonymous login: the engine's policy decides what
            // it may write.
            (true, Completion::Anonymous(Ok(()))) => {
                self.logged_in(user, self.config.anonymous_write, true)
            }
            (false, Completion::Auth(Ok(grant))) => self.logged_in(user, grant.write, false),
            (true, Completion::Anonymous(Err(e))) | (false, Completion::Auth(Err(e))) => {
                self.auth_completed_failure(e)
            }
            _ => self.auth_completed_failure(AuthError::Unavailable),
        }
    }

    fn logged_in(&mut self, user: String, write: bool, anonymous: bool) {
        if self.config.log_events {
            self.events.push_back(Event::Login {
                user: user.clone(),
                anonymous,
            });
        }
        self.login = Login::LoggedIn {
            user,
            write,
            anonymous,
        };
        self.reply(230, "Login successful.");
    }

    /// A failed login: hold the `530` back for a delay that doubles with
    /// every failure, so guessing passwords is slow.
    fn auth_completed_failure(&mut self, error: AuthError) {
        let failures = self.login.failures().saturating_add(1);
        if let (true, Login::AwaitPass { user, .. }) = (self.config.log_events, &self.login) {
            self.events
                .push_back(Event::LoginFailed { user: user.clone() });
        }
        self.login = Login::Failed { failures };
        if error == AuthError::Unavailable {
            return self.close_with(421, "Service not available, closing control connection.");
        }
        let factor = 1u32 << (failures - 1).min(6);
        let delay = self
            .config
            .login_fail_delay
            .checked_mul(factor)
            .unwrap_or(Duration::from_secs(60));
        self.state = State::LoginDelay {
            until: self.now + delay,
        };
        if delay.is_zero() {
            self.state = State::Ready;
            self.login_delay_over();
        }
    }

    /// The delay after a failed login has passed: answer it.
    pub(super) fn login_delay_over(&mut self) {
        let failures = self.login.failures();
        if failures >= self.config.max_login_attempts {
            self.reply(530, "Login incorrect.");
            return self.close_with(
                421,
                "Too many failed login attempts, closing control connection.",
            );
        }
        self.reply(530, "Login incorrect.");
    }
}
