//! The session state machine: one control connection from greeting to close.
//!
//! The session is driven by four inputs (bytes, completions, time, and the
//! runtime draining its output) and produces three outputs (reply bytes,
//! intents, deadlines). It never blocks and never performs I/O. Each
//! concern has its own module: [`login`](self) for USER/PASS, `data` for
//! data channels and transfers, `files` for file commands, `info` for
//! informational replies, `tls` for FTPS (AUTH, PBSZ, PROT, CCC).

mod data;
mod files;
mod hash;
mod info;
mod login;
mod timer;
mod tls;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::SocketAddr;
use core::time::Duration;

use crate::command::{Command, TransferType};
use crate::config::Config;
use crate::event::Event;
use crate::intent::{Completion, Intent, IntentId, Output};
use crate::line::{Line, LineBuffer};
use crate::listing::Facts;
use crate::parse::{ParseError, parse_command};
use crate::path::VirtualPath;
use crate::reply::{Reply, write_line};
use crate::time::Instant;

use data::{DataChannel, TransferState};
use files::FsOp;
use login::Login;
use tls::Protection;

/// Reply bytes held before the session stops taking new commands.
const TRANSMIT_HIGH_WATER: usize = 64 * 1024;
/// Unparsed input beyond one line that the session accepts while busy.
const INPUT_SLACK: usize = 4096;
/// Commands held back while a transfer runs (ABOR and STAT jump the queue).
const MAX_DEFERRED: usize = 32;

/// One FTP control connection, from greeting to close.
///
/// See the crate documentation for the loop a runtime writes around it.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
    local: SocketAddr,
    peer: SocketAddr,
    now: Instant,
    started: Instant,
    /// Start of the login deadline ([`Config::login_timeout`]): the
    /// greeting, or a `REIN` that ended a login. Input does not move it.
    login_started: Instant,
    last_activity: Instant,
    input: LineBuffer,
    /// Lines read while a transfer ran, to be handled after it.
    deferred: VecDeque<Deferred>,
    transmit: Vec<u8>,
    transmit_start: usize,
    outputs: VecDeque<Output>,
    events: VecDeque<Event>,
    /// The answerable intent the session waits for and the kind of
    /// answer it wants ([`Intent::answered_by`]).
    awaited: Option<(IntentId, &'static str)>,
    next_id: u64,
    login: Login,
    state: State,
    cwd: VirtualPath,
    transfer_type: TransferType,
    rest: Option<u64>,
    /// The mask of new files and folders (`SITE UMASK`).
    umask: u32,
    /// The digest `HASH` computes (`OPTS HASH`).
    hash_algorithm: crate::HashAlgorithm,
    /// The byte range of the next `HASH` (`RANG`): first and last byte.
    hash_range: Option<(u64, u64)>,
    /// The size `ALLO` announced, for the next transfer if it is an
    /// upload (PASV, TYPE, REST and the like may come between).
    allocated: Option<u64>,
    rename_from: Option<VirtualPath>,
    data: DataChannel,
    /// What TLS protects: the control connection, data connections.
    protection: Protection,
    epsv_all: bool,
    mlst_facts: Facts,
    idle_timeout: Option<Duration>,
    /// The server is going down: close as soon as no transfer runs, and
    /// abort a transfer still running at this deadline.
    shutting_down: Option<Instant>,
    /// The client closed its side of the control connection: answer what
    /// was received, let a running transfer end, then close.
    input_ended: bool,
}

/// A line read while a transfer ran, answered in order after it.
#[derive(Debug)]
enum Deferred {
    /// A command line, parsed.
    Command(Result<Command, ParseError>),
    /// A line over the length limit.
    TooLong,
}

/// What the session is waiting for before it reads the next command.
#[derive(Debug)]
enum State {
    /// Ready for the next command.
    Ready,
    /// Waiting for the answer to `Intent::Authenticate`.
    /// Waiting for the answer to `Intent::Authenticate` (or to
    /// `Intent::ConfirmAnonymous` for an anonymous login).
    Authenticating {
        id: IntentId,
        user: String,
        anonymous: bool,
    },
    /// A failed login's reply is held back until `until`.
    LoginDelay { until: Instant },
    /// Waiting for `Completion::PassiveReady`.
    OpeningPassive { id: IntentId, extended: bool },
    /// Waiting for a file operation.
    Fs { id: IntentId, op: FsOp },
    /// A transfer runs; only ABOR and STAT are handled meanwhile.
    Transfer(TransferState),
    /// A digest is computed (`HASH`); as for a transfer, only ABOR and
    /// STAT are handled meanwhile.
    Hashing(hash::Hashing),
    /// Waiting for the runtime to switch the control connection to TLS
    /// (`protect`, after `AUTH`) or back to clear (after `CCC`).
    SwitchingTls { id: IntentId, protect: bool },
    /// The session has said its last word ([`Output::Close`] is queued);
    /// nothing is taken in any more.
    Closed,
}

impl Session {
    /// A new session on a connection from `peer` to our `local` address;
    /// the `220` greeting is queued at once. Addresses should be canonical
    /// (IPv4-mapped IPv6 addresses turned into IPv4).
    pub fn new(config: Arc<Config>, local: SocketAddr, peer: SocketAddr, now: Instant) -> Self {
        let login = if config.no_login {
            Login::LoggedIn {
                user: String::from("ftp"),
                write: config.anonymous_write,
                anonymous: true,
            }
        } else {
            Login::AwaitUser
        };
        let mut session = Session {
            input: LineBuffer::new(config.max_line),
            idle_timeout: config.idle_timeout,
            config,
            local,
            peer,
            now,
            started: now,
            login_started: now,
            last_activity: now,
            deferred: VecDeque::new(),
            transmit: Vec::new(),
            transmit_start: 0,
            outputs: VecDeque::new(),
            events: VecDeque::new(),
            awaited: None,
            next_id: 0,
            login,
            state: State::Ready,
            cwd: VirtualPath::root(),
            transfer_type: TransferType::Ascii,
            rest: None,
            allocated: None,
            hash_algorithm: crate::HashAlgorithm::Sha256,
            hash_range: None,
            umask: 0,
            rename_from: None,
            data: DataChannel::None,
            protection: Protection::default(),
            epsv_all: false,
            mlst_facts: Facts::DEFAULT,
            shutting_down: None,
            input_ended: false,
        };
        let greeting = session.config.greeting.clone();
        session.reply(220, &greeting);
        session.umask = session.config.umask;
        session
    }

    /// Feeds bytes read from the control connection. The runtime should
    /// read at most [`Session::input_capacity`] bytes; more are accepted but
    /// only as far as the line buffer's own bound.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.now = now;
        if self.is_closing() || self.input_ended || bytes.is_empty() {
            return;
        }
        self.input.push(bytes);
        self.process();
    }

    /// The client closed its side of the control connection (a read
    /// returned end of stream, or TLS's `close_notify` came). Scripts
    /// send every command and then half-close, so every complete line
    /// already received is still answered, a running download or listing
    /// may finish, and then the session closes ([`Output::Close`]) without
    /// a reply of its own. A running upload is abandoned instead (`426`):
    /// a killed client closes both connections, and the end of its data
    /// must not commit a cut file. A partial last line is dropped. No
    /// input is taken after this ([`Session::input_capacity`] is 0).
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = now;
        if self.is_closing() || self.input_ended {
            return;
        }
        self.input_ended = true;
        self.input_ended_during_transfer();
        self.process();
    }

    /// How many more bytes the session accepts now; 0 means stop reading
    /// (back-pressure) until output is drained or an intent completes, and
    /// after [`Session::handle_eof`] for good.
    pub fn input_capacity(&self) -> usize {
        if self.is_closing() || self.input_ended {
            return 0;
        }
        let limit = self.config.max_line + INPUT_SLACK;
        limit.saturating_sub(self.input.buffered())
    }

    /// Reports the result of an intent. Completions for ids the session no
    /// longer waits for are ignored.
    pub fn handle_completion(&mut self, now: Instant, id: IntentId, completion: Completion) {
        self.now = now;
        if self.is_closing() {
            return;
        }
        if let Some((want_id, expected)) = self.awaited {
            let got = completion.kind();
            if want_id == id && got != expected {
                self.events.push_back(Event::WrongAnswer { expected, got });
            }
        }
        match core::mem::replace(&mut self.state, State::Ready) {
            State::Authenticating {
                id: want,
                user,
                anonymous,
            } if want == id => {
                self.auth_completed(user, anonymous, completion);
            }
            State::OpeningPassive { id: want, extended } if want == id => {
                self.passive_ready(id, extended, completion);
            }
            State::Fs { id: want, op } if want == id => self.fs_completed(op, completion),
            State::Transfer(t) if t.id == id => self.transfer_event(t, completion),
            State::Hashing(h) if h.id == id => self.hash_completed(h, completion),
            State::SwitchingTls { id: want, protect } if want == id => {
                self.tls_switched(protect, completion)
            }
            other => {
                self.state = other;
                return;
            }
        }
        self.process();
    }

    /// Lets timers fire; call when [`Session::poll_timeout`]'s deadline passes
    /// (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        // Each firing disarms its deadline, so this ends; the bound is the
        // table's length.
        for _ in 0..self.deadlines().len() {
            match self.passed(now) {
                Some(timer) if !self.is_closing() => self.fire(timer),
                _ => break,
            }
        }
        self.process();
    }

    /// The server is shutting down: an idle session gets `421` and closes
    /// now; a session in the middle of a transfer closes (with `421`) as
    /// soon as the transfer ends, and a transfer still running after
    /// `grace` is aborted (`426`, then `421`), so that no client is left
    /// without a word.
    pub fn shutdown(&mut self, now: Instant, grace: Duration) {
        self.now = now;
        if !self.is_closing() && self.shutting_down.is_none() {
            self.shutting_down = Some(now + grace);
            self.process();
        }
    }

    /// The next deadline at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closing() {
            return None;
        }
        self.deadlines().into_iter().filter_map(|(_, at)| at).min()
    }

    /// Reply bytes waiting to be written to the control connection.
    pub fn transmit(&self) -> &[u8] {
        &self.transmit[self.transmit_start..]
    }

    /// Marks `n` bytes of [`Session::transmit`] as written.
    pub fn consume_transmit(&mut self, n: usize) {
        self.transmit_start = (self.transmit_start + n).min(self.transmit.len());
        if self.transmit_start == self.transmit.len() {
            self.transmit.clear();
            self.transmit_start = 0;
        } else if self.transmit_start > TRANSMIT_HIGH_WATER {
            self.transmit.drain(..self.transmit_start);
            self.transmit_start = 0;
        }
        if !self.is_closing() && self.transmit().len() < TRANSMIT_HIGH_WATER {
            self.process();
        }
    }

    /// The next intent to perform, or the instruction to close.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The next loggable event (only with [`Config::log_events`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the session has decided to close (after [`Output::Close`]).
    pub fn is_closing(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// The logged-in user's name, if any.
    pub fn user(&self) -> Option<&str> {
        self.login.user()
    }

    /// Whether the logged-in session is anonymous (or needs no login).
    pub fn is_anonymous(&self) -> bool {
        matches!(
            self.login,
            Login::LoggedIn {
                anonymous: true,
                ..
            }
        )
    }

    /// The client's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// The session's working directory.
    pub fn cwd(&self) -> &VirtualPath {
        &self.cwd
    }

    fn idle_deadline(&self) -> Option<Instant> {
        if matches!(self.state, State::Transfer(_) | State::Hashing(_)) {
            return None;
        }
        self.idle_timeout.map(|d| self.last_activity + d)
    }

    /// Handles buffered commands until the session has to wait.
    fn process(&mut self) {
        while !self.is_closing() && self.transmit().len() < TRANSMIT_HIGH_WATER {
            if self.shutting_down.is_some() && !matches!(self.state, State::Transfer(_)) {
                return self.close_with(421, "Server shutting down, closing control connection.");
            }
            let in_transfer = match self.state {
                State::Ready => false,
                State::Transfer(_) | State::Hashing(_) => true,
                _ => return,
            };
            let from_queue = !in_transfer && !self.deferred.is_empty();
            let queued = if from_queue {
                self.deferred.pop_front()
            } else {
                None
            };
            let parsed = match queued {
                Some(Deferred::Command(parsed)) => parsed,
                Some(Deferred::TooLong) => {
                    self.last_activity = self.now;
                    self.reply(500, "Command line too long.");
                    continue;
                }
                None => {
                    if in_transfer && self.deferred.len() >= MAX_DEFERRED {
                        return;
                    }
                    match self.input.next_line() {
                        None if self.input_ended && !in_transfer => {
                            // Everything the client sent is answered.
                            return self.close_quietly();
                        }
                        None => return,
                        Some(Line::TooLong) => {
                            self.last_activity = self.now;
                            if in_transfer {
                                // Like any other line, answered after the transfer.
                                self.deferred.push_back(Deferred::TooLong);
                            } else {
                                self.reply(500, "Command line too long.");
                            }
                            continue;
                        }
                        Some(Line::Complete(line)) => {
                            let parsed = parse_command(line);
                            if self.config.log_events {
                                let text = log_line(line, &parsed);
                                self.events.push_back(Event::Command(text));
                            }
                            parsed
                        }
                    }
                }
            };
            self.last_activity = self.now;
            if in_transfer {
                match parsed {
                    Ok(Command::Abor) => self.abort_running(),
                    Ok(Command::Stat(None)) => self.server_status(),
                    other => self.deferred.push_back(Deferred::Command(other)),
                }
                continue;
            }
            match parsed {
                Ok(command) => self.dispatch(command),
                Err(e) => self.parse_error(e),
            }
        }
    }

    fn parse_error(&mut self, error: ParseError) {
        self.rest = None;
        self.allocated = None;
        self.rename_from = None;
        self.reply(error.reply_code(), error.reply_text());
    }

    /// Routes one command, applying the rules every command shares:
    /// login required, REST and RNFR consumed by the very next command.
    fn dispatch(&mut self, command: Command) {
        let rest = self.rest.take();
        let rename_from = self.rename_from.take();
        if !self.login.is_logged_in() && !allowed_before_login(&command) {
            return self.reply(530, "Please login with USER and PASS.");
        }
        match command {
            Command::User(name) => self.user_command(name),
            Command::Pass(secret) => self.pass_command(secret),
            Command::Acct(_) => self.reply(202, "ACCT not needed."),
            Command::Rein => self.reinitialize(),
            Command::Quit => self.close_with(221, "Goodbye."),
            Command::Cwd(arg) => self.cwd_command(&arg),
            Command::Cdup => self.cwd_command(".."),
            Command::Pwd => {
                let text = alloc::format!(
                    "{} is the current directory",
                    crate::reply::quote_path(self.cwd.as_str())
                );
                self.reply(257, &text)
            }
            Command::Mkd(arg) => self.mkd_command(&arg),
            Command::Rmd(arg) => self.simple_write(&arg, files::Change::RemoveDir),
            Command::Dele(arg) => self.simple_write(&arg, files::Change::RemoveFile),
            Command::Rnfr(arg) => self.rnfr_command(&arg),
            Command::Rnto(arg) => self.rnto_command(rename_from, &arg),
            Command::Size(arg) => self.stat_for(&arg, files::StatFor::Size),
            Command::Mdtm(arg) => self.stat_for(&arg, files::StatFor::Mdtm),
            Command::Mfmt { time, path } => {
                if !self.config.storage.set_modified {
                    return self.reply(502, "MFMT is not supported by this storage.");
                }
                self.simple_write(&path, files::Change::SetModified(time))
            }
            Command::Type(t) => {
                self.transfer_type = t;
                match t {
                    TransferType::Ascii => self.reply(200, "Switching to ASCII mode."),
                    TransferType::Image => self.reply(200, "Switching to Binary mode."),
                }
            }
            Command::Mode(_) => self.reply(200, "Mode set to S."),
            Command::Stru(_) => self.reply(200, "Structure set to F."),
            Command::Port(addr) => self.active_command(SocketAddr::V4(addr), false),
            Command::Eprt(addr) => self.active_command(addr, true),
            Command::Pasv => self.passive_command(false),
            Command::Epsv(arg) => self.epsv_command(arg),
            Command::Retr(arg) => self.retrieve_command(&arg, rest.unwrap_or(0)),
            Command::Stor(arg) => self.store_command(&arg, data::StoreKind::Stor(rest)),
            Command::Appe(arg) => {
                if !self.config.storage.append {
                    return self.reply(502, "APPE is not supported by this storage.");
                }
                self.store_command(&arg, data::StoreKind::Appe)
            }
            Command::Stou(arg) => {
                self.store_command(arg.as_deref().unwrap_or(""), data::StoreKind::Stou)
            }
            Command::Allo(None) => self.reply(202, "ALLO command ignored."),
            Command::Allo(Some(size)) => {
                self.allocated = Some(size);
                self.reply(200, "ALLO command successful.")
            }
            Command::Avbl(path) => self.available_command(path.as_deref().unwrap_or("")),
            Command::Hash(arg) => {
                let range = self.hash_range.take();
                self.hash_command(arg, range)
            }
            Command::Rang(start, last) => self.range_command(start, last),
            Command::XHash {
                algorithm,
                path,
                range,
            } => self.legacy_hash_command(algorithm, path, range),
            Command::Rest(offset) => {
                self.rest = Some(offset);
                let text = alloc::format!("Restart position accepted ({offset}).");
                self.reply(350, &text)
            }
            Command::Abor => self.reply(225, "No transfer to ABOR."),
            Command::List(args) => self.list_command(args, data::ListKind::List),
            Command::Nlst(args) => self.list_command(args, data::ListKind::Nlst),
            Command::Mlsd(path) => self.list_command(
                crate::command::ListArgs {
                    path,
                    all: true,
                    ..Default::default()
                },
                data::ListKind::Mlsd,
            ),
            Command::Mlst(path) => {
                self.stat_for(path.as_deref().unwrap_or(""), files::StatFor::Mlst)
            }
            Command::Stat(None) => self.server_status(),
            Command::Stat(Some(args)) => self.stat_listing(args),
            Command::Syst => self.reply(215, "UNIX Type: L8"),
            Command::Help(_) => self.help(),
            Command::Noop => self.reply(200, "NOOP ok."),
            Command::Feat => self.features(),
            Command::Opts(opts) => self.options(opts),
            Command::Site(site) => self.site(site),
            Command::Host(_) => {
                if self.login.is_logged_in() || !matches!(self.login, Login::AwaitUser) {
                    self.reply(503, "HOST must come before USER.")
                } else {
                    self.reply(220, "Host accepted.")
                }
            }
            Command::Clnt(_) => self.reply(200, "Noted."),
            Command::Auth(mechanism) => self.auth_command(&mechanism),
            Command::Pbsz(size) => self.pbsz_command(&size),
            Command::Prot(level) => self.prot_command(&level),
            Command::Ccc => self.ccc_command(),
            Command::Smnt(_) => self.reply(502, "SMNT not implemented."),
        }
    }

    /// Resets the session to just after the greeting (REIN).
    fn reinitialize(&mut self) {
        self.drop_data_channel();
        // A session that logged in gets a new login deadline; one that has
        // not keeps its own, so that REIN cannot put the deadline off.
        if self.login.is_logged_in() {
            self.login_started = self.now;
        }
        self.login = if self.config.no_login {
            Login::LoggedIn {
                user: String::from("ftp"),
                write: self.config.anonymous_write,
                anonymous: true,
            }
        } else {
            Login::AwaitUser
        };
        self.cwd = VirtualPath::root();
        self.transfer_type = TransferType::Ascii;
        self.allocated = None;
        self.hash_range = None;
        self.hash_algorithm = crate::HashAlgorithm::Sha256;
        self.umask = self.config.umask;
        self.epsv_all = false;
        self.mlst_facts = Facts::DEFAULT;
        self.idle_timeout = self.config.idle_timeout;
        self.reply(220, "Service ready for new user.");
    }

    /// Resolves a client path argument against the working directory.
    fn resolve(&self, arg: &str) -> Option<VirtualPath> {
        self.cwd.resolve(arg)
    }

    /// Whether the logged-in user may change the file tree.
    fn may_write(&self) -> bool {
        matches!(self.login, Login::LoggedIn { write: true, .. })
    }

    fn next_id(&mut self) -> IntentId {
        self.next_id += 1;
        IntentId(self.next_id)
    }

    /// Queues an intent and returns its id.
    fn intent(&mut self, intent: Intent) -> IntentId {
        let id = self.next_id();
        if let Some(kind) = intent.answered_by() {
            self.awaited = Some((id, kind));
        }
        self.outputs.push_back(Output::Intent(id, intent));
        id
    }

    /// Queues an intent whose completion the session then waits for.
    fn await_fs(&mut self, intent: Intent, op: FsOp) {
        let id = self.intent(intent);
        self.state = State::Fs { id, op };
    }

    /// Queues a single-line reply.
    fn reply(&mut self, code: u16, text: &str) {
        write_line(&mut self.transmit, code, b' ', text);
        if self.config.log_events {
            self.events
                .push_back(Event::Reply(code, String::from(text)));
        }
    }

    /// Queues a multi-line reply.
    fn reply_multi(&mut self, reply: Reply<'_>) {
        reply.encode(&mut self.transmit);
        if self.config.log_events {
            self.events
                .push_back(Event::Reply(reply.code, String::from(reply.text.as_ref())));
        }
    }

    /// Queues a final reply and closes the session.
    fn close_with(&mut self, code: u16, text: &str) {
        self.reply(code, text);
        self.close_quietly();
    }

    /// Closes the session with no reply of its own (replies queued before
    /// are still written).
    fn close_quietly(&mut self) {
        // A transfer already being aborted was asked to stop once.
        match core::mem::replace(&mut self.state, State::Ready) {
            State::Transfer(t) if t.abort.is_none() => {
                let transfer = t.id;
                self.intent(Intent::AbortTransfer { transfer });
            }
            State::Hashing(h) => self.cancel_hash(&h, false),
            _ => {}
        }
        self.drop_data_channel();
        self.state = State::Closed;
        self.outputs.push_back(Output::Close);
    }
}

/// Commands a client may send before logging in.
fn allowed_before_login(command: &Command) -> bool {
    matches!(
        command,
        Command::User(_)
            | Command::Pass(_)
            | Command::Acct(_)
            | Command::Rein
            | Command::Quit
            | Command::Feat
            | Command::Syst
            | Command::Help(_)
            | Command::Noop
            | Command::Opts(_)
            | Command::Host(_)
            | Command::Clnt(_)
            | Command::Auth(_)
            | Command::Pbsz(_)
            | Command::Prot(_)
            | Command::Ccc
            | Command::Stat(None)
    )
}

/// The command line as it may be logged: `PASS` arguments masked (also
/// when they fail to parse, for example as not UTF-8), bytes that are not
/// UTF-8 replaced.
fn log_line(line: &[u8], parsed: &Result<Command, ParseError>) -> String {
    if matches!(parsed, Ok(Command::Pass(_))) || is_pass_line(line) {
        return alloc::format!("PASS {}", crate::secret::Secret::MASK);
    }
    String::from_utf8_lossy(line).into_owned()
}

/// Whether `line` is a `PASS` command, as the parser would see its verb
/// (leading spaces skipped, case ignored, a space or the end after it).
fn is_pass_line(line: &[u8]) -> bool {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let line = &line[start..];
    line.get(..4)
        .is_some_and(|verb| verb.eq_ignore_ascii_case(b"PASS"))
        && matches!(line.get(4), None | Some(b' ' | b'\r'))
}
