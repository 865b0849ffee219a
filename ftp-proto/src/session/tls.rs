//! FTPS (RFC 4217): AUTH, PBSZ, PROT, CCC, and the policy that says what
//! must be protected. The engine only decides; the runtime performs the
//! handshakes ([`Intent::UpgradeTls`], [`Intent::ClearTls`] and
//! [`crate::Transfer::tls`]).

use super::{Session, State};
use crate::intent::{Completion, Intent};

/// How far the session's protection goes.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Protection {
    /// The control connection is TLS (after `AUTH TLS`, or from the start
    /// in implicit mode).
    pub(super) control: bool,
    /// `PBSZ` was accepted since TLS started.
    pbsz: bool,
    /// `PROT P`: data connections are TLS.
    pub(super) data: bool,
}

impl Protection {
    /// An implicit-TLS session: protected from the first byte, with
    /// protected data connections by default (clients of port 990 expect
    /// them, and most send `PBSZ 0` / `PROT P` anyway).
    pub(super) fn implicit() -> Protection {
        Protection {
            control: true,
            pbsz: true,
            data: true,
        }
    }
}

/// `AUTH` mechanisms that mean TLS (`SSL` and `TLS-P` are older names
/// clients still send).
fn is_tls_mechanism(mechanism: &str) -> bool {
    ["TLS", "TLS-C", "SSL", "TLS-P"]
        .iter()
        .any(|m| mechanism.eq_ignore_ascii_case(m))
}

impl Session {
    /// Marks the control connection as protected from the start (implicit
    /// FTPS, conventionally port 990): the runtime has wrapped the
    /// connection in TLS before the greeting. Data connections default to
    /// protected (`PROT P`); `PROT C` turns that off where allowed.
    pub fn mark_protected(&mut self) {
        self.protection = Protection::implicit();
    }

    /// Whether the control connection is protected by TLS.
    pub fn is_protected(&self) -> bool {
        self.protection.control
    }

    pub(super) fn auth_command(&mut self, mechanism: &str) {
        if !self.config.tls.available {
            return self.reply(502, "TLS is not available on this server.");
        }
        if !is_tls_mechanism(mechanism) {
            return self.reply(504, "Unknown AUTH mechanism; use AUTH TLS.");
        }
        if self.protection.control {
            return self.reply(503, "Already using TLS.");
        }
        self.reply(234, "Proceed with negotiation.");
        // Anything the client sent in clear after AUTH could have been
        // injected by a third party: it is dropped, not answered over TLS.
        self.input.clear();
        self.deferred.clear();
        let id = self.intent(Intent::UpgradeTls);
        self.state = State::SwitchingTls { id, protect: true };
    }

    pub(super) fn pbsz_command(&mut self, size: &str) {
        if !self.protection.control {
            return self.reply(503, "Security data exchange not completed (no AUTH).");
        }
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_digit()) {
            return self.reply(501, "PBSZ needs a number.");
        }
        self.protection.pbsz = true;
        self.reply(200, "PBSZ=0");
    }

    pub(super) fn prot_command(&mut self, level: &str) {
        if !self.protection.control {
            return self.reply(503, "Security data exchange not completed (no AUTH).");
        }
        if !self.protection.pbsz {
            return self.reply(503, "PROT needs PBSZ first.");
        }
        match level {
            l if l.eq_ignore_ascii_case("P") => {
                self.protection.data = true;
                self.reply(200, "PROT now Private.");
            }
            l if l.eq_ignore_ascii_case("C") => {
                self.protection.data = false;
                self.reply(200, "PROT now Clear.");
            }
            l if l.eq_ignore_ascii_case("S") || l.eq_ignore_ascii_case("E") => {
                self.reply(536, "PROT level not supported; use C or P.")
            }
            _ => self.reply(504, "Unknown PROT level; use C or P."),
        }
    }

    pub(super) fn ccc_command(&mut self) {
        if !self.protection.control {
            return self.reply(533, "Command channel is not protected.");
        }
        if !self.login.is_logged_in() {
            return self.reply(530, "Please login with USER and PASS.");
        }
        if !self.config.tls.allow_ccc {
            return self.reply(534, "CCC is not allowed on this server.");
        }
        self.reply(200, "Control connection cleared; going on in clear.");
        self.input.clear();
        self.deferred.clear();
        self.protection.control = false;
        let id = self.intent(Intent::ClearTls);
        self.state = State::SwitchingTls { id, protect: false };
    }

    /// The runtime switched the control connection (or could not).
    pub(super) fn tls_switched(&mut self, protect: bool, completion: Completion) {
        match completion {
            Completion::Tls(Ok(())) => {
                if protect {
                    self.protection = Protection {
                        control: true,
                        pbsz: false,
                        data: false,
                    };
                }
            }
            // The connection is in an unknown state: nothing more can be
            // said on it.
            _ => {
                self.drop_data_channel();
                self.state = State::Closed;
                self.outputs.push_back(crate::intent::Output::Close);
            }
        }
    }

    /// Whether `USER name` must wait for TLS (`530`).
    pub(super) fn login_needs_tls(&self, anonymous_name: bool) -> bool {
        self.config.tls.control_required && !self.protection.control && !anonymous_name
    }

    /// Whether a transfer must be refused because its data connection
    /// would be clear (`521`).
    pub(super) fn transfer_needs_tls(&self) -> bool {
        self.config.tls.data_required && !self.protection.data && !self.is_anonymous()
    }
}
