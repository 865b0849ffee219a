//! One control connection: a task that drives the engine's [`Session`],
//! performs its intents and feeds back what happened.
//!
//! The loop: write what the socket takes of the session's reply bytes,
//! perform every queued intent as the host routes it
//! ([`SessionHost::route`]), then wait for the first of: a message on the
//! session's channel (a finished [`Job`](ftp_host::server::Job), or an event
//! of the running transfer), the control socket being readable (only while
//! the session has input capacity), writable (only while replies wait), or
//! the session's next deadline.
//!
//! Memory stays bounded: the socket is read only up to
//! [`Session::input_capacity`], and replies are pulled from the engine only
//! as fast as the socket takes them (the engine stops handling commands when
//! its own transmit buffer is full). The session's channel holds one
//! message: job results and a transfer's start and end wait for the session
//! to take the one before (progress reports are dropped instead).
//!
//! An idle session costs little (1.8 KiB in all, measured by `ftp-bench`):
//! the `Conn` is boxed once, its wait polls every source in place with
//! no future of its own, the read buffer belongs to the thread and is used
//! only inside a synchronous read, the channel exists only while a job or
//! transfer is outstanding, and jobs run on the shared worker pool, which
//! a burst of argon2 logins cannot grow.
//!
//! FTPS: the control connection's bytes go through a
//! [`ControlStream`] (shared with the mio daemon), which is clear until the
//! engine asks for [`ftp_proto::Intent::UpgradeTls`] (after `AUTH TLS`) and TLS from
//! the start on an implicit-FTPS listener. The switch happens once every
//! reply before it is written; until then the socket is not read, so the
//! client's TLS handshake never reaches the engine as a command.
//!
//! At shutdown the server closes the `stop` channel: each session tells its
//! engine ([`Session::shutdown`]), which says `421` and closes at once when
//! idle or right after a running transfer, and aborts a transfer still
//! running when the grace period ends (`426`, `421`); whatever is left a
//! moment after that is dropped.

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use ftp_host::admission::Admitted;
use ftp_host::control::ReadOutcome;
use ftp_host::daemon::prepare_control_socket;
use ftp_host::limits::ConnectionSlot;
use ftp_host::passive::{KeptListener, resource_error};
use ftp_host::rate::RateLimit;
use ftp_host::server::{
    Action, Job, JobAnswer, JobDone, Server, SessionHost, TlsSwitch, TransferEnd,
};
use ftp_host::tls::ControlStream;
use ftp_host::workers::Workers;
use ftp_proto::{
    Completion, DataEndpoint, IntentId, Output, ResourceError, Session, TransferError,
    TransferEvent,
};
use smol::channel::{Receiver, Sender};
use smol::future::FutureExt;
use smol::stream::Stream;
use smol::{Async, Executor, Task, Timer};

use crate::data::{self, Endpoint, Passive, Start};

/// Longest time spent writing the last replies of a closing session.
const CLOSE_FLUSH: Duration = Duration::from_secs(5);

/// Control-connection bytes read at a time (at most the input capacity).
const READ_CHUNK: usize = 8192;

thread_local! {
    /// The read buffer of every session on this thread: it is only used
    /// between a read and the engine's `handle_input`, with no await in
    /// between.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

/// What blocking jobs and transfer tasks send back to their session.
#[derive(Debug)]
pub enum Msg {
    /// A job (authentication, file operation, opening a transfer) is done.
    Job(JobDone),
    /// Progress of the transfer with this id.
    Transfer(IntentId, TransferEvent),
}

/// Runs a started session (see [`Conn::start`]) until it closes.
///
/// The `Conn` stays boxed: moved by value, it would be stored in the
/// session task's future once per `async` layer it passes through.
pub async fn run(mut conn: Box<Conn>) {
    if conn.serve().await {
        // Boxed: the task would otherwise hold this future's state
        // all its life, for the moment it closes.
        Box::pin(conn.flush_and_close()).await;
    }
    log::debug!("{}: disconnected", conn.host.peer());
}

/// A session and everything it owns; dropping it closes every socket,
/// listener and transfer of the session.
pub struct Conn {
    server: Arc<Server>,
    /// For spawning transfer tasks (weak: the executor owns us).
    ex: Weak<Executor<'static>>,
    session: Session,
    host: SessionHost,
    socket: Async<TcpStream>,
    /// The control connection's bytes: clear or TLS.
    stream: ControlStream,
    /// A switch of the control connection to or from TLS, waiting for
    /// the replies before it to be written (with the intent's id).
    switch: Option<(IntentId, TlsSwitch)>,
    /// TLS may hold decrypted input beyond the last read: read again
    /// before waiting for the socket.
    more_input: bool,
    /// The control connection's local address, where passive listeners bind.
    local_ip: IpAddr,
    /// Where job results and transfer events come back: made when a job
    /// or a transfer starts and dropped when none is outstanding, so that
    /// an idle session holds no channel (see `release_mailbox`).
    mailbox: Option<Mailbox>,
    /// Jobs handed to the pool whose results have not come back.
    jobs: usize,
    /// Open passive listeners, by the id of their `OpenPassive`.
    passive: HashMap<IntentId, Passive>,
    /// The listener of the last passive transfer, kept for the next
    /// `PASV`/`EPSV` (see [`KeptListener`]).
    kept_passive: Option<Box<KeptListener>>,
    /// The running transfer, if any.
    transfer: Option<(IntentId, TransferStage)>,
    /// The shared pool for blocking jobs.
    workers: Workers,
    /// Fires at `armed`, an engine deadline (see `arm_timer`).
    timer: Timer,
    armed: Option<ftp_proto::Instant>,
    /// Closed when the server shuts down; `None` once that was seen.
    /// Pinned, to be polled in place (see `wait`).
    stop: Option<Pin<Box<Receiver<()>>>>,
    _slot: ConnectionSlot,
}

/// A session's channel: our own sender (cloned for each job and
/// transfer) and the receiver, pinned to be polled in place.
type Mailbox = (Sender<Msg>, Pin<Box<Receiver<Msg>>>);

/// How far the running transfer is.
enum TransferStage {
    /// Its file is being opened; the data endpoint waits (and will be
    /// TLS if `tls`). A passive listener stays in the session's table
    /// until the file is open: if it cannot be, the engine keeps the
    /// listener for the next transfer.
    Opening {
        data: DataEndpoint,
        tls: bool,
        /// The transfer's bandwidth limit.
        rate: Option<RateLimit>,
    },
    /// Data moves in this task.
    Moving(Task<()>),
}

/// What ended a wait.
enum Wake {
    Msg(Msg),
    Readable(io::Result<()>),
    Writable(io::Result<()>),
    Deadline,
    Shutdown,
}

impl Conn {
    /// Sets up the session of an admitted control connection (see
    /// [`Server::admit`]), TLS from the first byte if `implicit_tls`;
    /// `None` when that fails. Synchronous, so that the task that then
    /// [`run`]s the session holds only the `Conn`, not also the parts it
    /// was made of.
    pub fn start(
        server: Arc<Server>,
        socket: Async<TcpStream>,
        admitted: Admitted,
        implicit_tls: bool,
        ex: Weak<Executor<'static>>,
        workers: Workers,
        stop: Option<Receiver<()>>,
    ) -> Option<Box<Conn>> {
        let Admitted { local, peer, slot } = admitted;
        prepare_control_socket(socket.get_ref());
        let (mut session, host) = server.session(local, peer);
        let stream = if implicit_tls {
            match host.implicit_tls(&mut session) {
                Ok(stream) => stream,
                Err(e) => {
                    log::warn!("{peer}: implicit TLS: {e}");
                    return None;
                }
            }
        } else {
            ControlStream::plain()
        };
        Some(Box::new(Conn {
            server,
            ex,
            session,
            host,
            socket,
            stream,
            switch: None,
            more_input: false,
            local_ip: local.ip(),
            mailbox: None,
            jobs: 0,
            passive: HashMap::new(),
            kept_passive: None,
            transfer: None,
            workers,
            timer: Timer::never(),
            armed: None,
            stop: stop.map(Box::pin),
            _slot: slot,
        }))
    }

    /// Runs the session. Returns `true` when the engine asked to close
    /// (replies are left to flush), `false` when the connection failed.
    async fn serve(&mut self) -> bool {
        loop {
            loop {
                if self.write_replies().is_err() {
                    return false;
                }
                self.switch_if_due();
                // An abort is the only intent performed with an await: the
                // `Output` is gone before it, and its future is boxed, so
                // that a waiting task holds neither.
                let (id, intent) = match self.session.poll_output() {
                    None => break,
                    Some(Output::Close) => {
                        self.host.log_events(&mut self.session);
                        return true;
                    }
                    Some(Output::Intent(id, intent)) => (id, intent),
                };
                let action = self.host.route(id, intent);
                let Some(abort) = self.perform(id, action) else {
                    continue;
                };
                Box::pin(self.abort(abort)).await;
                self.release_mailbox();
            }
            self.host.log_events(&mut self.session);
            let wake = self.wait().await;
            let now = self.server.clock.now();
            match wake {
                Wake::Msg(msg) => {
                    if matches!(msg, Msg::Job(_)) {
                        self.jobs -= 1;
                    }
                    self.deliver(msg);
                    self.release_mailbox();
                }
                Wake::Readable(Err(_)) | Wake::Writable(Err(_)) => return false,
                Wake::Readable(Ok(())) => {
                    if self.session.input_capacity() == 0 || self.switch.is_some() {
                        continue; // An empty read would look like the end.
                    }
                    if !self.read_input(now) {
                        return false;
                    }
                }
                Wake::Writable(Ok(())) => {}
                Wake::Deadline => {
                    self.armed = None;
                    self.session.handle_timeout(now);
                }
                Wake::Shutdown => {
                    self.stop = None;
                    let grace = self.server.config.shutdown_grace;
                    self.session.shutdown(now, grace);
                }
            }
        }
    }

    /// Reads what the control connection has (up to the engine's input
    /// capacity) into the engine, or tells it the client closed its side.
    /// Returns `false` when the connection failed.
    fn read_input(&mut self, now: ftp_proto::Instant) -> bool {
        READ_BUF.with_borrow_mut(|buf| {
            let mut sock = self.socket.get_ref();
            match self
                .stream
                .read_into(&mut sock, &mut self.session, now, buf)
            {
                // TLS may hold more decrypted input than one read took.
                Ok(ReadOutcome::Fed { .. }) => self.more_input = self.stream.is_tls(),
                Ok(ReadOutcome::WouldBlock | ReadOutcome::Eof) => self.more_input = false,
                Ok(ReadOutcome::Full) => {}
                Err(_) => return false,
            }
            true
        })
    }

    /// Waits for the next thing that concerns the session, in this order
    /// when several are ready: a message in the mailbox, input (only while
    /// the engine takes input), the socket taking output (only while
    /// output waits), the armed deadline, shutdown.
    ///
    /// Every source is polled in place, with no future of its own, so a
    /// waiting session's task holds nothing beyond its `Conn` (and
    /// registers its waker without allocating).
    async fn wait(&mut self) -> Wake {
        self.arm_timer();
        let read = self.session.input_capacity() > 0 && self.switch.is_none();
        let write = !self.session.transmit().is_empty() || self.stream.wants_write();
        poll_fn(|cx| {
            if let Some((_, rx)) = &mut self.mailbox {
                // Never `None`: we hold a sender ourselves.
                if let Poll::Ready(Some(msg)) = rx.as_mut().poll_next(cx) {
                    return Poll::Ready(Wake::Msg(msg));
                }
            }
            if read && self.more_input {
                return Poll::Ready(Wake::Readable(Ok(())));
            }
            if read && let Poll::Ready(r) = self.socket.poll_readable(cx) {
                return Poll::Ready(Wake::Readable(r));
            }
            if write && let Poll::Ready(r) = self.socket.poll_writable(cx) {
                return Poll::Ready(Wake::Writable(r));
            }
            if self.armed.is_some() && Pin::new(&mut self.timer).poll(cx).is_ready() {
                return Poll::Ready(Wake::Deadline);
            }
            if let Some(stop) = &mut self.stop {
                // Nothing is ever sent: it ends when the channel closes.
                if stop.as_mut().poll_next(cx).is_ready() {
                    return Poll::Ready(Wake::Shutdown);
                }
            }
            Poll::Pending
        })
        .await
    }

    /// Arms the session's timer for the engine's next deadline, but only
    /// when that is earlier than the one armed: the idle deadline moves
    /// with every command, and resetting the timer each time costs a timer
    /// syscall or two. A timer that fires early is answered by
    /// `handle_timeout`, which does nothing before a deadline, and then the
    /// next one is armed.
    fn arm_timer(&mut self) {
        let Some(at) = self.session.poll_timeout() else {
            return;
        };
        if self.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        // `Timer::set_after` turns an absurdly far deadline into "never"
        // where `Clock::to_std` would overflow.
        let clock = &self.server.clock;
        self.timer
            .set_after(at.saturating_duration_since(clock.now()));
        self.armed = Some(at);
    }

    /// Performs one intent as the host routes it; its completion comes
    /// now or through the mailbox. An abort is left to the caller, which
    /// awaits it (see `abort`): the transfer to abort is returned.
    fn perform(&mut self, id: IntentId, action: Action) -> Option<IntentId> {
        let now = self.server.clock.now();
        match action {
            Action::Job(job) => self.submit(job),
            Action::Transfer {
                job,
                data,
                tls,
                rate,
            } => {
                self.transfer = Some((id, TransferStage::Opening { data, tls, rate }));
                self.submit(job);
            }
            Action::OpenPassive { peer } => {
                let ready = self.open_passive(id, peer);
                self.session
                    .handle_completion(now, id, Completion::PassiveReady(ready));
            }
            Action::ClosePassive { listener } => {
                self.passive.remove(&listener);
            }
            Action::AbortTransfer { transfer } => return Some(transfer),
            Action::SwitchTls(to) => self.switch = Some((id, to)),
            Action::Nothing => {}
        }
        None
    }

    /// Runs a job now if it cannot block, else on the worker pool.
    fn submit(&mut self, job: Job) {
        let job = match job.try_now() {
            Ok(done) => return self.deliver(Msg::Job(done)),
            Err(job) => job,
        };
        let tx = self.sender();
        self.jobs += 1;
        // Waits, on the worker, for the session to take its last
        // message; fails only once the session is gone.
        let reply = move |done| drop(tx.send_blocking(Msg::Job(done)));
        self.workers.submit(job, Box::new(reply));
    }

    /// Writes what the socket takes of the TLS bytes and replies that
    /// wait; an error means the connection is gone.
    fn write_replies(&mut self) -> io::Result<()> {
        let mut sock = self.socket.get_ref();
        self.stream.write_from(&mut sock, &mut self.session)?;
        Ok(())
    }

    /// Switches the control connection to TLS (or back to clear) once
    /// every reply before the switch is out, and tells the engine.
    fn switch_if_due(&mut self) {
        let Some((id, to)) = self.switch else {
            return;
        };
        if !self.session.transmit().is_empty() || self.stream.wants_write() {
            return;
        }
        self.switch = None;
        let done = self.host.switch_tls(&mut self.stream, to);
        let now = self.server.clock.now();
        self.session.handle_completion(now, id, done);
    }

    /// Binds a passive listener (the transfer that uses it accepts).
    fn open_passive(&mut self, id: IntentId, peer: IpAddr) -> Result<SocketAddr, ResourceError> {
        let again = self
            .kept_passive
            .take()
            .and_then(|k| k.reuse(self.local_ip));
        let bound = again
            .map(Ok)
            .unwrap_or_else(|| self.server.passive.bind(self.local_ip))
            .map(|(listener, addr)| {
                data::listen(listener, addr, peer, self.server.config.proxy_from.clone())
            });
        match bound {
            Ok((addr, connection)) => {
                self.passive.insert(id, connection);
                Ok(addr)
            }
            Err(e) => {
                log::warn!("passive listener on {}: {e}", self.local_ip);
                Err(resource_error(&e))
            }
        }
    }

    /// Stops transfer `id` and answers it with `Aborted`, unless it had
    /// already ended (then its final event is in the channel).
    async fn abort(&mut self, id: IntentId) {
        let Some((_, phase)) = self.transfer.take_if(|(t, _)| *t == id) else {
            return;
        };
        let ended = match phase {
            // The open job's result is discarded when it comes.
            TransferStage::Opening { .. } => false,
            TransferStage::Moving(task) => task.cancel().await.is_some(),
        };
        if !ended {
            let failed = Completion::Transfer(TransferEvent::Failed(TransferError::Aborted));
            let now = self.server.clock.now();
            self.session.handle_completion(now, id, failed);
        }
    }

    /// A sender to the session's mailbox, which is made if there is none.
    fn sender(&mut self) -> Sender<Msg> {
        let (tx, _) = self.mailbox.get_or_insert_with(|| {
            let (tx, rx) = smol::channel::bounded(1);
            (tx, Box::pin(rx))
        });
        tx.clone()
    }

    /// Drops the mailbox when no job and no transfer can send to it any
    /// more and nothing waits in it. A transfer task that has sent its
    /// final event may still hold a sender for a moment; it keeps the old
    /// channel alive, unused, until it ends.
    fn release_mailbox(&mut self) {
        let quiet = self.jobs == 0 && self.transfer.is_none();
        if quiet && self.mailbox.as_ref().is_some_and(|(_, rx)| rx.is_empty()) {
            self.mailbox = None;
        }
    }

    /// Hands a job result or transfer event to the engine.
    fn deliver(&mut self, msg: Msg) {
        let now = self.server.clock.now();
        let (id, completion) = match msg {
            Msg::Job(done) => match self.host.finish(done) {
                JobAnswer::Completion(id, completion) => (id, completion),
                JobAnswer::TransferOpened { id, ready, end } => {
                    return self.start_transfer(id, ready, end);
                }
            },
            Msg::Transfer(id, event) => (id, Completion::Transfer(event)),
        };
        let ends = matches!(
            completion,
            Completion::Transfer(TransferEvent::Finished { .. } | TransferEvent::Failed(_))
        );
        if ends {
            self.transfer.take_if(|(t, _)| *t == id);
        }
        self.session.handle_completion(now, id, completion);
    }

    /// The file of transfer `id` is open: tell the engine and start moving
    /// data (unless the transfer was aborted meanwhile).
    fn start_transfer(&mut self, id: IntentId, ready: Completion, end: TransferEnd) {
        let ex = self.ex.upgrade();
        let endpoint = match (self.transfer.take(), ex) {
            (Some((t, TransferStage::Opening { data, tls, rate })), Some(ex)) if t == id => {
                // The transfer takes its listener now that its file is open.
                let endpoint = match data {
                    DataEndpoint::Passive { listener } => {
                        Endpoint::Passive(self.passive.remove(&listener))
                    }
                    DataEndpoint::Active { addr } => {
                        Endpoint::Active(addr, self.host.active_from())
                    }
                };
                (endpoint, tls, rate, ex)
            }
            (other, _) => {
                self.transfer = other;
                data::give_up(end);
                return;
            }
        };
        let (endpoint, tls, rate, ex) = endpoint;
        let mut limit = data::Limit::new(rate);
        let now = self.server.clock.now();
        let tls = match tls.then(|| self.host.data_tls()).transpose() {
            Ok(tls) => tls,
            Err(e) => {
                log::warn!("{}: data connection TLS: {e}", self.session.peer());
                data::give_up(end);
                let failed = TransferEvent::Failed(TransferError::NoConnection);
                return self
                    .session
                    .handle_completion(now, id, Completion::Transfer(failed));
            }
        };
        self.session.handle_completion(now, id, ready);
        let connected = Completion::Transfer(TransferEvent::Connected);
        let task = match data::start_now(
            endpoint,
            tls.is_some(),
            end,
            &mut limit,
            &self.server.passive,
            &mut self.kept_passive,
        ) {
            Start::Done(event) => {
                self.session.handle_completion(now, id, connected);
                let event = Completion::Transfer(event);
                return self.session.handle_completion(now, id, event);
            }
            Start::Connected {
                socket,
                source,
                sent,
            } => {
                self.session.handle_completion(now, id, connected);
                ex.spawn(data::resume(id, socket, source, sent, limit, self.sender()))
            }
            Start::Wait(endpoint, end) => {
                ex.spawn(data::transfer(id, endpoint, tls, end, limit, self.sender()))
            }
        };
        self.transfer = Some((id, TransferStage::Moving(task)));
    }

    /// Writes the replies still queued (for at most [`CLOSE_FLUSH`]), then
    /// closes the write side.
    async fn flush_and_close(&mut self) {
        let Conn {
            session,
            socket,
            stream,
            ..
        } = self;
        let flush = async {
            loop {
                let pending = session.transmit();
                if pending.is_empty() {
                    break;
                }
                let wrote = socket
                    .write_with(|mut s| nonzero(stream.write(&mut s, pending)))
                    .await;
                match wrote {
                    Ok(n) => session.consume_transmit(n),
                    Err(_) => return,
                }
            }
            stream.close();
            let _ = socket.write_with(|mut s| stream.flush(&mut s)).await;
        };
        let give_up = async {
            Timer::after(CLOSE_FLUSH).await;
        };
        flush.or(give_up).await;
        let _ = self.socket.get_ref().shutdown(Shutdown::Write);
    }
}

/// A write that took nothing as an error.
fn nonzero(written: io::Result<usize>) -> io::Result<usize> {
    match written {
        Ok(0) => Err(io::ErrorKind::WriteZero.into()),
        other => other,
    }
}
