//! Data channels (PASV, EPSV, PORT, EPRT) and transfers (RETR, STOR, APPE,
//! STOU, LIST, NLST, MLSD, ABOR).

use alloc::format;
use alloc::string::String;
use core::net::{IpAddr, SocketAddr};

use super::{Session, State};
use crate::command::{EpsvArg, ListArgs, TransferType};
use crate::event::Event;
use crate::intent::{
    Completion, DataEndpoint, FsError, Intent, IntentId, ResourceError, StoreMode, Transfer,
    TransferError, TransferEvent, TransferOp,
};
use crate::listing::{ListFormat, ListStyle};
use crate::path::VirtualPath;
use crate::time::Instant;

use super::files::fs_reason;

/// The data channel prepared for the next transfer.
#[derive(Debug)]
pub(super) enum DataChannel {
    /// Neither PASV nor PORT yet (or the last one was used).
    None,
    /// A passive listener is open.
    Passive { listener: IntentId },
    /// The client listens at this address.
    Active(SocketAddr),
}

/// A running transfer.
#[derive(Debug)]
pub(super) struct TransferState {
    /// The id of the `Transfer` intent.
    pub(super) id: IntentId,
    /// The data channel it uses: prepared again for the next transfer
    /// when this one is refused before it starts (its file could not be
    /// opened), closed when it ends otherwise.
    data: DataEndpoint,
    /// Payload it moves, for replies and the transfer log.
    what: Payload,
    /// When the transfer times out: first the time allowed for the data
    /// connection to come up, then the time allowed without progress.
    pub(super) deadline: Option<Instant>,
    /// Whether the data connection is up.
    connected: bool,
    /// Whether `150` was sent.
    ready: bool,
    /// Why it is being aborted, if it is.
    pub(super) abort: Option<AbortReason>,
}

/// Payload a transfer moves.
#[derive(Debug)]
enum Payload {
    File {
        path: VirtualPath,
        incoming: bool,
        ascii: bool,
    },
    Listing,
}

/// Why the session aborts a transfer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum AbortReason {
    /// The client sent ABOR.
    Client,
    /// The data connection did not come up in time.
    ConnectTimeout,
    /// No data moved for the configured data timeout.
    Stalled,
    /// The server's shutdown grace period ended.
    Shutdown,
    /// The client closed the control connection during an upload.
    ControlClosed,
}

/// The kind of upload command.
#[derive(Clone, Copy, Debug)]
pub(super) enum StoreKind {
    /// STOR, with the REST offset if one was given.
    Stor(Option<u64>),
    /// APPE
    Appe,
    /// STOU
    Stou,
}

/// The kind of listing command.
#[derive(Clone, Copy, Debug)]
pub(super) enum ListKind {
    List,
    Nlst,
    Mlsd,
}

impl Session {
    /// Closes a passive listener that no transfer will use.
    pub(super) fn drop_data_channel(&mut self) {
        if let DataChannel::Passive { listener } =
            core::mem::replace(&mut self.data, DataChannel::None)
        {
            self.intent(Intent::ClosePassive { listener });
        }
    }

    pub(super) fn active_command(&mut self, addr: SocketAddr, extended: bool) {
        if self.epsv_all {
            return self.reply(503, "PORT not allowed after EPSV ALL.");
        }
        if !self.config.allow_active {
            return self.reply(502, "Active mode is disabled; use PASV or EPSV.");
        }
        let addr = SocketAddr::new(addr.ip().to_canonical(), addr.port());
        let own = addr.ip() == self.peer.ip().to_canonical();
        if (!own && !self.config.allow_foreign_active) || addr.port() < self.config.min_active_port
        {
            let verb = if extended { "EPRT" } else { "PORT" };
            return self.reply(500, &format!("Illegal {verb} command."));
        }
        self.drop_data_channel();
        self.data = DataChannel::Active(addr);
        if extended {
            self.reply(200, "EPRT command successful. Consider using EPSV.")
        } else {
            self.reply(200, "PORT command successful. Consider using PASV.")
        }
    }

    pub(super) fn passive_command(&mut self, extended: bool) {
        if self.epsv_all && !extended {
            return self.reply(503, "PASV not allowed after EPSV ALL.");
        }
        if !extended
            && self.local.ip().to_canonical().is_ipv6()
            && self.config.pasv_address.is_none()
        {
            return self.reply(425, "Use EPSV on IPv6 connections.");
        }
        self.drop_data_channel();
        let id = self.intent(Intent::OpenPassive {
            peer: self.peer.ip().to_canonical(),
        });
        self.state = State::OpeningPassive { id, extended };
    }

    pub(super) fn epsv_command(&mut self, arg: EpsvArg) {
        match arg {
            EpsvArg::All => {
                self.epsv_all = true;
                self.reply(200, "EPSV ALL ok.")
            }
            EpsvArg::Protocol(p) => {
                let ours = if self.local.ip().to_canonical().is_ipv4() {
                    1
                } else {
                    2
                };
                if p != ours {
                    let text = format!("Network protocol not supported, use ({ours}).");
                    return self.reply(522, &text);
                }
                self.passive_command(true)
            }
            EpsvArg::Any => self.passive_command(true),
        }
    }

    pub(super) fn passive_ready(&mut self, id: IntentId, extended: bool, completion: Completion) {
        let addr = match completion {
            Completion::PassiveReady(Ok(addr)) => addr,
            Completion::PassiveReady(Err(ResourceError::Exhausted)) => {
                return self.reply(425, "No passive port available, try again later.");
            }
            _ => return self.reply(425, "Can't open passive connection."),
        };
        self.data = DataChannel::Passive { listener: id };
        let port = addr.port();
        if extended {
            let text = format!("Entering Extended Passive Mode (|||{port}|)");
            return self.reply(229, &text);
        }
        let ip = match (self.config.pasv_address, addr.ip().to_canonical()) {
            (Some(public), _) => public,
            (None, IpAddr::V4(ip)) => ip,
            (None, IpAddr::V6(_)) => {
                self.drop_data_channel();
                return self.reply(425, "Use EPSV on IPv6 connections.");
            }
        };
        let [a, b, c, d] = ip.octets();
        let text = format!(
            "Entering Passive Mode ({a},{b},{c},{d},{},{}).",
            port >> 8,
            port & 0xff
        );
        self.reply(227, &text);
    }

    /// Takes the prepared data channel for a transfer, or answers `425`.
    fn take_endpoint(&mut self) -> Option<DataEndpoint> {
        match core::mem::replace(&mut self.data, DataChannel::None) {
            DataChannel::None => {
                self.reply(425, "Use PORT or PASV first.");
                None
            }
            DataChannel::Passive { listener } => Some(DataEndpoint::Passive { listener }),
            DataChannel::Active(addr) => Some(DataEndpoint::Active { addr }),
        }
    }

    fn start_transfer(&mut self, op: TransferOp, what: Payload) {
        // A download or listing uses up an `ALLO` too, and a transfer
        // ends a `RANG` meant for `HASH`.
        self.allocated = None;
        self.hash_range = None;
        if self.transfer_needs_tls() {
            // The data channel stays prepared: PROT P and a retry may follow.
            return self.reply(521, "Data connections must be encrypted.");
        }
        let Some(data) = self.take_endpoint() else {
            return;
        };
        let ascii = self.transfer_type == TransferType::Ascii;
        let tls = self.protection.data;
        let id = self.intent(Intent::Transfer(Transfer {
            data,
            op,
            ascii,
            tls,
        }));
        self.state = State::Transfer(TransferState {
            id,
            data,
            what,
            deadline: Some(self.now + self.config.data_connect_timeout),
            connected: false,
            ready: false,
            abort: None,
        });
    }

    pub(super) fn retrieve_command(&mut self, arg: &str, offset: u64) {
        let Some(path) = self.resolve(arg) else {
            return self.reply(553, "File name not allowed.");
        };
        let what = Payload::File {
            path: path.clone(),
            incoming: false,
            ascii: self.transfer_type == TransferType::Ascii,
        };
        self.start_transfer(TransferOp::Retrieve { path, offset }, what);
    }

    pub(super) fn store_command(&mut self, arg: &str, kind: StoreKind) {
        // What `ALLO` announced is for this command only, whatever comes of it.
        let size = self.allocated.take();
        if !self.may_write() {
            return self.reply(550, "Permission denied.");
        }
        if matches!(kind, StoreKind::Stor(Some(offset)) if offset > 0)
            && !self.config.storage.resume_upload
        {
            return self.reply(
                504,
                "Restarting an upload (REST before STOR) is not supported by this storage.",
            );
        }
        let Some(path) = self.resolve(arg) else {
            return self.reply(553, "File name not allowed.");
        };
        if path.is_root() && !matches!(kind, StoreKind::Stou) {
            return self.reply(553, "Could not create file.");
        }
        let mode = match kind {
            StoreKind::Stor(None) | StoreKind::Stor(Some(0)) => StoreMode::Replace,
            StoreKind::Stor(Some(offset)) => StoreMode::Resume(offset),
            StoreKind::Appe => StoreMode::Append,
            StoreKind::Stou => StoreMode::Unique,
        };
        let what = Payload::File {
            path: path.clone(),
            incoming: true,
            ascii: self.transfer_type == TransferType::Ascii,
        };
        let umask = self.umask;
        self.start_transfer(
            TransferOp::Store {
                path,
                mode,
                size,
                umask,
            },
            what,
        );
    }

    pub(super) fn list_command(&mut self, args: ListArgs, kind: ListKind) {
        let arg = args.path.as_deref().unwrap_or("");
        // `NLST dir/*.txt`: list `dir`, keeping the names that match.
        let (dir, glob) = match crate::glob::split_pattern(arg) {
            Some((dir, pattern)) => (
                dir,
                Some(alloc::boxed::Box::new(crate::glob::Glob {
                    pattern: String::from(pattern),
                    prefix: String::from(dir),
                    max_matches: self.config.max_glob_matches,
                })),
            ),
            None => (arg, None),
        };
        let Some(path) = self.resolve(dir) else {
            return self.reply(553, "File name not allowed.");
        };
        let style = match kind {
            ListKind::List => ListStyle::Long,
            ListKind::Nlst if args.long => ListStyle::Long,
            ListKind::Nlst => ListStyle::Names,
            ListKind::Mlsd => ListStyle::Machine(self.mlst_facts),
        };
        let format = ListFormat {
            style,
            show_hidden: args.all || matches!(kind, ListKind::Mlsd),
            writable: self.may_write(),
            glob,
        };
        self.start_transfer(TransferOp::List { path, format }, Payload::Listing);
    }

    /// The client closed the control connection while a transfer runs. A
    /// download or listing may finish; an upload is abandoned (the file
    /// keeps its previous contents), because in stream mode the end of
    /// the data is the only end-of-file mark: a client that is killed
    /// closes both connections, and its cut upload would otherwise be
    /// committed as if complete.
    pub(super) fn input_ended_during_transfer(&mut self) {
        if let State::Transfer(TransferState {
            what: Payload::File { incoming: true, .. },
            ..
        }) = self.state
        {
            self.abort_transfer(AbortReason::ControlClosed);
        }
    }

    /// The transfer's deadline passed: abort it for the reason that applies.
    pub(super) fn transfer_timed_out(&mut self) {
        let State::Transfer(t) = &mut self.state else {
            return;
        };
        let reason = if t.connected {
            AbortReason::Stalled
        } else {
            AbortReason::ConnectTimeout
        };
        self.abort_transfer(reason);
    }

    /// `ABOR` while a transfer runs or a digest is computed.
    pub(super) fn abort_running(&mut self) {
        if let State::Hashing(_) = &self.state {
            if let State::Hashing(h) = core::mem::replace(&mut self.state, State::Ready) {
                self.cancel_hash(&h, true);
            }
            return;
        }
        self.abort_transfer(AbortReason::Client);
    }

    /// Aborts the running transfer; the answer comes with its last event.
    pub(super) fn abort_transfer(&mut self, reason: AbortReason) {
        let State::Transfer(t) = &mut self.state else {
            return self.reply(225, "No transfer to ABOR.");
        };
        if t.abort.is_some() {
            return;
        }
        t.abort = Some(reason);
        t.deadline = None;
        let transfer = t.id;
        self.intent(Intent::AbortTransfer { transfer });
    }

    pub(super) fn transfer_event(&mut self, mut t: TransferState, completion: Completion) {
        // Data moving counts as activity for the idle timer.
        self.last_activity = self.now;
        let event = match completion {
            Completion::Transfer(event) => event,
            _ => TransferEvent::Failed(TransferError::Fs(FsError::Other)),
        };
        match event {
            TransferEvent::Ready { size, name } => {
                if !t.ready && t.abort.is_none() {
                    t.ready = true;
                    self.opening_reply(&t, size, name);
                }
                self.state = State::Transfer(t);
            }
            TransferEvent::Connected | TransferEvent::Progress { .. } => {
                t.connected = true;
                if t.abort.is_none() {
                    t.deadline = self.config.data_timeout.map(|d| self.now + d);
                }
                self.state = State::Transfer(t);
            }
            TransferEvent::Finished { bytes } => {
                self.release_endpoint(t.data);
                self.log_transfer(&t, bytes, true);
                let text = match t.what {
                    Payload::Listing => "Directory send OK.",
                    Payload::File { .. } => "Transfer complete.",
                };
                self.reply(226, text);
                if t.abort == Some(AbortReason::Client) {
                    self.reply(225, "ABOR successful; the transfer had already completed.");
                }
            }
            TransferEvent::Failed(TransferError::Fs(error)) if !t.ready && t.abort.is_none() => {
                // Refused before anything moved (the file could not be
                // opened): the data channel stays prepared, as in vsftpd
                // and pure-ftpd, for clients that connect to it after
                // sending the command, and for the next transfer.
                self.data = match t.data {
                    DataEndpoint::Passive { listener } => DataChannel::Passive { listener },
                    DataEndpoint::Active { addr } => DataChannel::Active(addr),
                };
                self.log_refused(&t, error);
                self.transfer_failed(&t, TransferError::Fs(error));
            }
            TransferEvent::Failed(error) => {
                self.release_endpoint(t.data);
                self.log_transfer(&t, 0, false);
                self.transfer_failed(&t, error);
            }
        }
    }

    /// Closes the passive listener of a transfer that has ended (the
    /// runtime ignores it when the transfer already consumed it).
    fn release_endpoint(&mut self, data: DataEndpoint) {
        if let DataEndpoint::Passive { listener } = data {
            self.intent(Intent::ClosePassive { listener });
        }
    }

    fn opening_reply(&mut self, t: &TransferState, size: Option<u64>, name: Option<String>) {
        let text = match (&t.what, name) {
            (_, Some(name)) => format!("FILE: {name}"),
            (Payload::Listing, None) => String::from("Here comes the directory listing."),
            (Payload::File { path, ascii, .. }, None) => {
                let mode = if *ascii { "ASCII" } else { "BINARY" };
                match size {
                    Some(size) => {
                        format!("Opening {mode} mode data connection for {path} ({size} bytes).")
                    }
                    None => format!("Opening {mode} mode data connection for {path}."),
                }
            }
        };
        self.reply(150, &text);
    }

    fn transfer_failed(&mut self, t: &TransferState, error: TransferError) {
        match (t.abort, error) {
            (Some(AbortReason::Client), _) => {
                self.reply(426, "Connection closed; transfer aborted.");
                self.reply(226, "Abort successful.");
            }
            (Some(AbortReason::Stalled), _) => {
                self.reply(426, "Data connection timed out; transfer aborted.")
            }
            (Some(AbortReason::Shutdown), _) => {
                self.reply(426, "Server shutting down; transfer aborted.")
            }
            (Some(AbortReason::ControlClosed), _) => {
                self.reply(426, "Control connection closed; upload abandoned.")
            }
            (Some(AbortReason::ConnectTimeout), _) | (None, TransferError::NoConnection) => {
                self.reply(425, "Failed to establish connection.")
            }
            (None, TransferError::ConnectionLost) | (None, TransferError::Aborted) => {
                self.reply(426, "Connection closed; transfer aborted.")
            }
            (None, TransferError::Fs(FsError::NoSpace)) => {
                self.reply(452, "Insufficient storage space.")
            }
            (None, TransferError::Fs(FsError::QuotaExceeded)) => {
                self.reply(552, "Exceeded storage allocation.")
            }
            (None, TransferError::Fs(FsError::TooManyMatches)) => {
                let text = format!(
                    "Too many names match the pattern (more than {}); narrow it.",
                    self.config.max_glob_matches
                );
                self.reply(550, &text)
            }
            (None, TransferError::Fs(e)) if !t.ready => {
                let incoming = matches!(t.what, Payload::File { incoming: true, .. });
                match (incoming, e) {
                    (true, FsError::InvalidName) => self.reply(553, "File name not allowed."),
                    (true, _) => {
                        self.reply(553, &format!("Could not create file: {}", fs_reason(e)))
                    }
                    (false, _) => {
                        self.reply(550, &format!("Failed to open file: {}", fs_reason(e)))
                    }
                }
            }
            (None, TransferError::Fs(_)) => {
                self.reply(451, "Requested action aborted: local error in processing.")
            }
        }
    }

    /// Logs a transfer refused before it started (nothing was moved, so
    /// it is no transfer for the transfer log).
    fn log_refused(&mut self, t: &TransferState, error: FsError) {
        if !self.config.log_events {
            return;
        }
        if let Payload::File { path, incoming, .. } = &t.what {
            self.events.push_back(Event::TransferRefused {
                path: path.clone(),
                incoming: *incoming,
                reason: fs_reason(error),
            });
        }
    }

    fn log_transfer(&mut self, t: &TransferState, bytes: u64, complete: bool) {
        if !self.config.log_events {
            return;
        }
        if let Payload::File {
            path,
            incoming,
            ascii,
        } = &t.what
        {
            self.events.push_back(Event::TransferEnded {
                path: path.clone(),
                incoming: *incoming,
                bytes,
                ascii: *ascii,
                complete,
            });
        }
    }
}
