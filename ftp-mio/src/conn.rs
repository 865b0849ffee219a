//! One session's connection and everything it owns: the engine's
//! [`Session`], the host's [`SessionHost`], the control socket, passive
//! listeners and the running transfer. [`Conn::drive`] is the runtime loop
//! of the crate docs of `ftp_proto`, made non-blocking: write replies,
//! perform intents, read input, move data, until nothing changes; then arm
//! the session's timer.
//!
//! When the client closes its side of the control connection, the engine
//! is told ([`Session::handle_eof`]) and decides: commands already sent are
//! answered, a running download finishes (an upload is abandoned), then it
//! asks to close.
//!
//! The host routes every intent ([`SessionHost::route`]): blocking work
//! (login, file operations, opening a transfer's file) becomes a
//! [`ftp_host::server::Job`] for the worker pool, whose result comes back
//! through [`Conn::job_done`]. The rest is done here:
//! passive listeners, aborts, and switching the control connection to TLS
//! (`AUTH TLS`) or back (`CCC`): the switch waits until every reply before
//! it is written, and the socket is not read meanwhile, so the client's
//! handshake never reaches the engine as a command.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant as StdInstant};

use ftp_host::limits::ConnectionSlot;
use ftp_host::passive::{KeptListener, resource_error};
use ftp_host::server::{Action, Job, JobAnswer, JobDone, SessionHost, TlsSwitch};
use ftp_host::tls::ControlStream;
use ftp_proto::{
    Completion, Intent, IntentId, Output, ResourceError, Session, TransferError, TransferEvent,
};
use mio::Interest;
use mio::event::Event;
use mio::net::TcpStream;

use crate::control::Control;
use crate::data::{DataTransfer, Passive, Step, discard_end};
use crate::event_loop::{Ctx, Ready};
use crate::timers::ConnKey;
use crate::token::{self, PASSIVE_SLOTS, Role};
use ftp_host::control::ReadOutcome;

/// Control reads (of at most the engine's input capacity) per drive.
const CONTROL_READS_PER_TURN: usize = 16;
/// Data bytes one connection moves per drive.
const DATA_BUDGET_PER_TURN: usize = 1024 * 1024;
/// How long the last replies may take to be written after the engine
/// decided to close.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long we read and discard after sending our FIN, waiting for the
/// client's.
const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// The session runs.
    Open,
    /// The engine said close: writing what is left of its replies.
    Flushing { until: StdInstant },
    /// Our FIN is sent; discarding input until the client's FIN.
    Lingering { until: StdInstant },
    /// Done: the loop drops the connection.
    Closed,
}

/// The budgets of one drive.
#[derive(Debug)]
struct Turn {
    reads: usize,
    data: usize,
    /// Work was left undone for lack of budget.
    more: bool,
}

/// One session's connection and resources.
#[derive(Debug)]
pub(crate) struct Conn {
    /// The connection's identity in its loop.
    pub(crate) key: ConnKey,
    session: Session,
    host: SessionHost,
    control: Control,
    peer: SocketAddr,
    /// The control connection's local address: passive listeners bind here.
    local_ip: IpAddr,
    passives: Vec<Passive>,
    /// The listener of the last passive transfer, kept for the next
    /// `PASV`/`EPSV` (see [`KeptListener`]); boxed, as most idle sessions
    /// have none.
    kept_passive: Option<Box<KeptListener>>,
    /// Boxed: most sessions have none, and it is large.
    transfer: Option<Box<DataTransfer>>,
    phase: Phase,
    /// The deadline armed in the loop's timers.
    timer: Option<StdInstant>,
    /// Whether the connection is on the loop's ready list.
    queued: bool,
    /// Jobs submitted and not yet returned.
    jobs: usize,
    /// A switch of the control connection to or from TLS, waiting for
    /// the replies before it to be written (with the intent's id).
    switch: Option<(IntentId, TlsSwitch)>,
    /// Counts the session against the connection limits until dropped.
    _slot: Option<ConnectionSlot>,
}

impl Conn {
    /// Starts a session on an accepted, non-blocking control socket:
    /// registers it and queues the greeting (written by the first drive).
    pub(crate) fn start(
        cx: &mut Ctx,
        key: ConnKey,
        mut stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        slot: Option<ConnectionSlot>,
        implicit_tls: bool,
    ) -> std::io::Result<Conn> {
        let token = token::conn(key.index, Role::Control);
        let (mut session, host) = cx.server.session(local, peer);
        let io = if implicit_tls {
            host.implicit_tls(&mut session)
                .map_err(|e| std::io::Error::other(format!("implicit TLS: {e}")))?
        } else {
            ControlStream::plain()
        };
        cx.registry.register(
            &mut stream,
            token,
            // Priority: urgent data (see `Control::on_event`).
            Interest::READABLE | Interest::WRITABLE | Interest::PRIORITY,
        )?;
        Ok(Conn {
            key,
            peer: session.peer(),
            local_ip: ftp_host::server::canonical(local).ip(),
            session,
            host,
            control: Control::new(stream, io),
            passives: Vec::new(),
            kept_passive: None,
            transfer: None,
            phase: Phase::Open,
            timer: None,
            queued: false,
            jobs: 0,
            switch: None,
            _slot: slot,
        })
    }

    /// Whether the loop should drop this connection.
    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// Notes readiness of one of the connection's sockets.
    pub(crate) fn on_event(&mut self, role: Role, event: &Event) {
        match role {
            Role::Control => self.control.on_event(event),
            Role::Data => {
                if let Some(t) = &mut self.transfer {
                    t.on_event(event);
                }
            }
            Role::Passive(slot) => {
                if let Some(p) = self.passives.iter_mut().find(|p| p.slot == slot) {
                    p.on_event();
                }
            }
        }
    }

    /// Takes the connection off the ready list before a ready-list drive.
    pub(crate) fn unqueue(&mut self) {
        self.queued = false;
    }

    /// Tells the session the server is shutting down (a transfer may run
    /// for `grace`), and acts on it.
    pub(crate) fn shutdown(&mut self, cx: &mut Ctx, grace: Duration) {
        self.session.shutdown(cx.server.clock.now(), grace);
        self.drive(cx);
    }

    /// Does everything that can be done now, within this turn's budgets.
    pub(crate) fn drive(&mut self, cx: &mut Ctx) {
        let mut turn = Turn {
            reads: CONTROL_READS_PER_TURN,
            data: DATA_BUDGET_PER_TURN,
            more: false,
        };
        while self.pass(cx, &mut turn) {}
        self.host.log_events(&mut self.session);
        self.arm_timer(cx);
        if turn.more && !self.queued && !self.is_closed() {
            self.queued = true;
            cx.ready.push_back(Ready::Conn(self.key));
        }
    }

    /// The connection's deadline passed.
    pub(crate) fn on_timer(&mut self, cx: &mut Ctx) {
        // The loop's timer set already dropped the entry.
        self.timer = None;
        match self.phase {
            Phase::Open => self.session.handle_timeout(cx.server.clock.now()),
            Phase::Flushing { until } | Phase::Lingering { until } => {
                if StdInstant::now() >= until {
                    log::debug!("{}: closing without waiting longer", self.peer);
                    self.phase = Phase::Closed;
                }
            }
            Phase::Closed => {}
        }
        self.drive(cx);
    }

    /// A worker finished one of this connection's jobs.
    pub(crate) fn job_done(&mut self, cx: &mut Ctx, done: JobDone) {
        self.jobs = self.jobs.saturating_sub(1);
        let finished = self.host.finish(done);
        if self.phase != Phase::Open {
            if let JobAnswer::TransferOpened { end, .. } = finished {
                discard_end(Some(end));
            }
            return;
        }
        let now = cx.server.clock.now();
        match finished {
            JobAnswer::Completion(id, completion) => {
                if self.transfer.as_ref().is_some_and(|t| t.id == id) {
                    // The transfer's file could not be opened.
                    if let Some(t) = self.transfer.take() {
                        self.release_transfer(cx, t);
                    }
                }
                self.session.handle_completion(now, id, completion);
            }
            JobAnswer::TransferOpened { id, ready, end } => {
                let token = token::conn(self.key.index, Role::Data);
                match &mut self.transfer {
                    Some(t) if t.id == id && !t.is_opened() => {
                        self.session.handle_completion(now, id, ready);
                        if let Some(event) =
                            t.opened(end, &cx.registry, token, self.host.active_from())
                        {
                            self.end_transfer(cx, event);
                        }
                    }
                    // Aborted while the file was being opened.
                    _ => discard_end(Some(end)),
                }
            }
        }
    }

    /// One round of everything; `true` if anything changed that may let
    /// something else proceed.
    fn pass(&mut self, cx: &mut Ctx, turn: &mut Turn) -> bool {
        match self.phase {
            Phase::Open => {}
            Phase::Flushing { .. } | Phase::Lingering { .. } => return self.closing_pass(cx, turn),
            Phase::Closed => return false,
        }
        let mut progress = false;
        match self.control.flush(&mut self.session) {
            Ok(wrote) => progress |= wrote,
            Err(e) => {
                log::debug!("{}: control connection: {e}", self.peer);
                self.close_now(cx);
                return false;
            }
        }
        progress |= self.switch_if_due(cx);
        while let Some(output) = self.session.poll_output() {
            progress = true;
            match output {
                Output::Close => {
                    self.begin_close(cx);
                    return true;
                }
                Output::Intent(id, intent) => self.perform(cx, id, intent),
            }
        }
        self.host.log_events(&mut self.session);
        if self.switch.is_some() {
            // What the client sends now is the handshake (or TLS's end):
            // not read before the switch.
        } else if turn.reads > 0 {
            let now = cx.server.clock.now();
            match self
                .control
                .read_into(&mut self.session, now, &mut cx.scratch)
            {
                Ok(ReadOutcome::Fed { .. }) => {
                    turn.reads -= 1;
                    progress = true;
                }
                Ok(ReadOutcome::Eof) => progress = true,
                Ok(ReadOutcome::WouldBlock | ReadOutcome::Full) => {}
                Err(e) => {
                    log::debug!("{}: control connection: {e}", self.peer);
                    self.close_now(cx);
                    return false;
                }
            }
        } else if self.control.readable() && self.session.input_capacity() > 0 {
            turn.more = true;
        }
        progress |= self.step_transfer(cx, turn);
        progress
    }

    /// Flushing the last replies, then lingering.
    fn closing_pass(&mut self, cx: &mut Ctx, turn: &mut Turn) -> bool {
        match self.phase {
            Phase::Flushing { .. } => match self.control.flush(&mut self.session) {
                Err(_) => {
                    self.phase = Phase::Closed;
                    false
                }
                Ok(wrote) => {
                    if self.session.transmit().is_empty() {
                        // TLS ends with close_notify, written before our FIN.
                        self.control.close_tls();
                        if self.control.flush(&mut self.session).is_err()
                            || !self.control.flushed(&self.session)
                        {
                            return wrote;
                        }
                        self.control.shutdown_write();
                        self.phase = Phase::Lingering {
                            until: StdInstant::now() + LINGER_TIMEOUT,
                        };
                        true
                    } else {
                        wrote
                    }
                }
            },
            Phase::Lingering { .. } => {
                match self.control.discard(&mut cx.scratch, &mut turn.reads) {
                    Ok(true) | Err(_) => self.phase = Phase::Closed,
                    Ok(false) => turn.more |= self.control.readable(),
                }
                false
            }
            Phase::Open | Phase::Closed => false,
        }
    }

    /// Performs one intent of the engine, as the host routes it.
    fn perform(&mut self, cx: &mut Ctx, id: IntentId, intent: Intent) {
        let now = cx.server.clock.now();
        match self.host.route(id, intent) {
            Action::Job(job) => self.submit(cx, job),
            Action::Transfer {
                job,
                data,
                tls,
                rate,
            } => {
                if let Some(old) = self.transfer.take() {
                    log::warn!("{}: a transfer started before the last ended", self.peer);
                    self.release_transfer(cx, old);
                }
                let tls = match tls.then(|| self.host.data_tls()).transpose() {
                    Ok(tls) => tls,
                    Err(e) => {
                        log::warn!("{}: data connection TLS: {e}", self.peer);
                        let failed = TransferEvent::Failed(TransferError::NoConnection);
                        self.session
                            .handle_completion(now, id, Completion::Transfer(failed));
                        return;
                    }
                };
                self.transfer = Some(Box::new(DataTransfer::new(id, data, tls, rate)));
                self.submit(cx, job);
            }
            Action::OpenPassive { peer } => {
                let result = self.open_passive(cx, id, peer);
                self.session
                    .handle_completion(now, id, Completion::PassiveReady(result));
            }
            Action::ClosePassive { listener } => self.close_passive(cx, listener),
            Action::AbortTransfer { transfer } => {
                if self.transfer.as_ref().is_some_and(|t| t.id == transfer) {
                    self.end_transfer(cx, TransferEvent::Failed(TransferError::Aborted));
                }
            }
            Action::SwitchTls(to) => self.switch = Some((id, to)),
            Action::Nothing => {}
        }
    }

    /// Runs a job now if it cannot block, else on the worker pool.
    fn submit(&mut self, cx: &mut Ctx, job: Job) {
        self.jobs += 1;
        match job.try_now() {
            Ok(done) => self.job_done(cx, done),
            Err(job) => cx.reply.submit(&cx.workers, self.key, job),
        }
    }

    /// Switches the control connection to TLS (or back to clear) once
    /// every reply before the switch is written, and tells the engine.
    fn switch_if_due(&mut self, cx: &mut Ctx) -> bool {
        let Some((id, to)) = self.switch else {
            return false;
        };
        if !self.control.flushed(&self.session) {
            return false;
        }
        self.switch = None;
        let done = self.host.switch_tls(self.control.stream_mut(), to);
        let now = cx.server.clock.now();
        self.session.handle_completion(now, id, done);
        true
    }

    fn open_passive(
        &mut self,
        cx: &mut Ctx,
        id: IntentId,
        allowed: IpAddr,
    ) -> Result<SocketAddr, ResourceError> {
        let Some(slot) = (0..PASSIVE_SLOTS).find(|s| self.passives.iter().all(|p| p.slot != *s))
        else {
            return Err(ResourceError::Exhausted);
        };
        let token = token::conn(self.key.index, Role::Passive(slot));
        let kept = self.kept_passive.take().map(|k| *k);
        match Passive::open(&cx.server, self.local_ip, allowed, id, slot, token, kept) {
            Ok((passive, addr)) => {
                self.passives.push(passive);
                Ok(addr)
            }
            Err(e) => {
                log::warn!("{}: passive listener on {}: {e}", self.peer, self.local_ip);
                Err(resource_error(&e))
            }
        }
    }

    fn close_passive(&mut self, cx: &mut Ctx, listener: IntentId) {
        if let Some(pos) = self.passives.iter().position(|p| p.id == listener) {
            self.passives.swap_remove(pos).close(&cx.registry);
        }
    }

    /// Gets the transfer its data connection and moves its data.
    fn step_transfer(&mut self, cx: &mut Ctx, turn: &mut Turn) -> bool {
        let now = cx.server.clock.now();
        let Some(t) = &mut self.transfer else {
            return false;
        };
        let mut progress = false;
        let mut ended = None;
        if t.wants_passive_stream() {
            let listener = t.passive_listener();
            match self.passives.iter().position(|p| Some(p.id) == listener) {
                Some(pos) => {
                    turn.more |= self.passives[pos].accept(&cx.registry);
                    if let Some(stream) = self.passives[pos].take_stream() {
                        // The transfer consumes the listener; the session
                        // may keep it for its next passive command.
                        let passive = self.passives.swap_remove(pos);
                        self.kept_passive = passive.finish(&cx.registry, &cx.server).map(Box::new);
                        if t.attach(stream) {
                            let connected = Completion::Transfer(TransferEvent::Connected);
                            self.session.handle_completion(now, t.id, connected);
                        }
                        progress = true;
                    }
                }
                None => ended = Some(TransferEvent::Failed(TransferError::NoConnection)),
            }
        }
        while ended.is_none() {
            match t.step(&mut turn.data) {
                Step::Idle => {
                    let token = token::conn(self.key.index, Role::Data);
                    if let Err(e) = t.register_to_wait(&cx.registry, token) {
                        log::warn!("{}: data connection: {e}", self.peer);
                        ended = Some(TransferEvent::Failed(TransferError::NoConnection));
                    }
                    break;
                }
                Step::More => {
                    turn.more = true;
                    break;
                }
                Step::Connected => {
                    let connected = Completion::Transfer(TransferEvent::Connected);
                    self.session.handle_completion(now, t.id, connected);
                    progress = true;
                }
                Step::End(event) => ended = Some(event),
            }
        }
        if let Some(event) = ended {
            self.end_transfer(cx, event);
            progress = true;
        } else if let Some(bytes) = t.progress_due() {
            let event = Completion::Transfer(TransferEvent::Progress { bytes });
            self.session.handle_completion(now, t.id, event);
        }
        progress
    }

    /// Ends the transfer (closing its data connection) and reports `event`.
    fn end_transfer(&mut self, cx: &mut Ctx, event: TransferEvent) {
        if let Some(t) = self.transfer.take() {
            let id = t.id;
            self.release_transfer(cx, t);
            let now = cx.server.clock.now();
            self.session
                .handle_completion(now, id, Completion::Transfer(event));
        }
    }

    /// Drops a transfer. A passive listener it did not consume yet stays:
    /// the engine closes it or prepares it for the next transfer.
    fn release_transfer(&mut self, cx: &mut Ctx, t: Box<DataTransfer>) {
        t.close(&cx.registry);
    }

    /// Drops every data-side resource: the transfer (an upload is given
    /// up) and the passive listeners.
    fn release_all(&mut self, cx: &mut Ctx) {
        if let Some(t) = self.transfer.take() {
            self.release_transfer(cx, t);
        }
        for passive in self.passives.drain(..) {
            passive.close(&cx.registry);
        }
        self.kept_passive = None;
    }

    /// The engine said close: drop the data side, then flush and linger.
    fn begin_close(&mut self, cx: &mut Ctx) {
        self.release_all(cx);
        self.phase = Phase::Flushing {
            until: StdInstant::now() + FLUSH_TIMEOUT,
        };
    }

    /// Closes at once (the client is gone, or time is up).
    pub(crate) fn close_now(&mut self, cx: &mut Ctx) {
        self.release_all(cx);
        self.phase = Phase::Closed;
    }

    fn arm_timer(&mut self, cx: &mut Ctx) {
        let at = match self.phase {
            // A data connection's PROXY header, or a throttled transfer's
            // next portion, may be due before the engine's deadline; the
            // engine takes an early timeout calmly.
            Phase::Open => self
                .session
                .poll_timeout()
                .map(|t| cx.server.clock.to_std(t))
                .into_iter()
                .chain(self.passives.iter().filter_map(Passive::header_deadline))
                .chain(self.transfer.as_ref().and_then(|t| t.wake_at()))
                .min(),
            Phase::Flushing { until } | Phase::Lingering { until } => Some(until),
            Phase::Closed => None,
        };
        cx.timers.arm(self.key, &mut self.timer, at);
    }

    /// Last rites when the loop drops the connection: everything released,
    /// the control socket unregistered (and closed by the drop).
    pub(crate) fn finish(mut self, cx: &mut Ctx) {
        self.release_all(cx);
        cx.timers.arm(self.key, &mut self.timer, None);
        let _ = cx.registry.deregister(&mut self.control.stream);
        log::debug!("{}: connection closed", self.peer);
    }
}
