//! The session's deadlines, in one table: [`Session::poll_timeout`] takes
//! the earliest of them and [`Session::handle_timeout`] fires the ones that
//! have passed, so the two can never disagree about what is armed.

use super::{Session, State, data};
use crate::time::Instant;

/// One of the session's deadlines. When several pass at once they fire in
/// this order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Timer {
    /// The absolute session time limit (`421`, close).
    Session,
    /// The time allowed to log in (`421`, close).
    Login,
    /// Silence between commands (`421`, close).
    Idle,
    /// A failed login's reply is held back until then.
    LoginDelay,
    /// The shutdown grace period is over: a running transfer is aborted.
    Shutdown,
    /// The running transfer's data connection did not come up, or no data
    /// moved for the data timeout.
    Transfer,
}

impl Session {
    /// Every deadline and when it passes (`None`: not armed now).
    pub(super) fn deadlines(&self) -> [(Timer, Option<Instant>); 6] {
        let logging_in = !self.login.is_logged_in();
        let (delay, transfer, shutdown) = match &self.state {
            State::LoginDelay { until } => (Some(*until), None, None),
            State::Transfer(t) => (
                None,
                t.deadline,
                self.shutting_down.filter(|_| t.abort.is_none()),
            ),
            _ => (None, None, None),
        };
        [
            (
                Timer::Session,
                self.config.session_timeout.map(|d| self.started + d),
            ),
            (
                Timer::Login,
                self.config
                    .login_timeout
                    .filter(|_| logging_in)
                    .map(|d| self.login_started + d),
            ),
            (Timer::Idle, self.idle_deadline()),
            (Timer::LoginDelay, delay),
            (Timer::Shutdown, shutdown),
            (Timer::Transfer, transfer),
        ]
    }

    /// The first deadline (in [`Timer`] order) that has passed by `now`.
    pub(super) fn passed(&self, now: Instant) -> Option<Timer> {
        self.deadlines()
            .into_iter()
            .find(|(_, at)| at.is_some_and(|at| now >= at))
            .map(|(timer, _)| timer)
    }

    /// Does what a passed deadline calls for; each action disarms its
    /// deadline (or closes the session).
    pub(super) fn fire(&mut self, timer: Timer) {
        match timer {
            Timer::Session => self.close_with(
                421,
                "Session time limit reached, closing control connection.",
            ),
            Timer::Login => self.close_with(421, "Login timeout, closing control connection."),
            Timer::Idle => self.close_with(421, "Timeout."),
            Timer::LoginDelay => {
                self.state = State::Ready;
                self.login_delay_over();
            }
            Timer::Shutdown => self.abort_transfer(data::AbortReason::Shutdown),
            Timer::Transfer => {
                if let State::Transfer(t) = &mut self.state {
                    t.deadline = None;
                }
                self.transfer_timed_out();
            }
        }
    }
}
