//! Data connections: passive listeners, active connects, and the pump that
//! moves a transfer's bytes between its file side ([`TransferEnd`]) and
//! its socket.
//!
//! File I/O on the data path runs inline on the event loop, as nginx does:
//! `sendfile(2)` for binary downloads, `pread` through [`fill`](ftp_host::transfer::Source::fill) for
//! ASCII downloads and listings, and for uploads `splice(2)` from the
//! socket into a local file ([`Sink::splice_from`]) or else
//! [`Sink::write`]. Each is a bounded call on a local file. Opening the file (which may stat, create
//! directories' temporaries, or read a large directory's first batch) is a
//! [`ftp_host::server::Job`] and runs on a worker.
//!
//! That holds for sources and sinks whose calls are bounded
//! ([`Blocking::Bounded`], local files). One that says its calls may stall
//! ([`Blocking::MayStall`], a store whose reads and writes are network
//! round trips) is never called on the loop: when it opens, it moves to a
//! file thread of its own (module `offload`), which fills the chunks the
//! loop sends and writes the chunks the loop receives; the loop keeps the
//! socket. Giving up such a file side ([`discard_end`]) happens on a
//! thread too.
//!
//! TLS (`PROT P`): once the data connection is up, the server side of a
//! TLS handshake runs through [`TlsConn`] (shared with the smol daemon)
//! before [`Step::Connected`]; a handshake that fails, or that does not
//! resume the control connection's TLS session when that is required,
//! ends the transfer with [`TransferError::NoConnection`]. Downloads use
//! the buffered path (`sendfile` cannot encrypt) and end with
//! `close_notify` before our FIN.
//!
//! Bandwidth limits: a transfer with a [`RateLimit`] moves at most its
//! allowance per step (a `sendfile`, a fill and a write, a read or a
//! splice, each bounded by it); when the allowance runs out it stops (an
//! upload stops reading, and TCP slows the client down) and asks for a
//! wake-up ([`DataTransfer::wake_at`]), which the connection arms as its
//! timer. An unlimited transfer has no bucket and never looks at the clock.
//!
//! Fairness: a transfer moves at most the `budget` its connection's drive
//! gives it per turn; when the budget runs out before the socket would
//! block, the event loop drives the connection again on its next turn
//! (after polling with a zero timeout), so one fast transfer cannot starve
//! other sessions.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsFd;
use std::time::{Duration, Instant as StdInstant};

use ftp_host::active::ActiveFrom;
use ftp_host::passive::{HeaderWaits, KeptListener, Taken, take_allowed};
use ftp_host::rate::RateLimit;
use ftp_host::server::{Server, TransferEnd};
use ftp_host::storage::{Blocking, fs_error_from_io};
use ftp_host::tls::{Handshake, TlsConn};
use ftp_host::transfer::{SENDFILE_CHUNK, Sink, is_connection_error};
use ftp_proto::{DataEndpoint, FsError, IntentId, TransferError, TransferEvent};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::offload::Offload;

/// Bytes asked of one `fill` or one socket read.
const CHUNK: usize = 128 * 1024;

/// Accepts tried on one passive listener per drive.
const ACCEPTS_PER_TURN: usize = 16;

/// A passive listener (PASV/EPSV) of a session, and the data connection
/// it accepted before a transfer asked for it.
#[derive(Debug)]
pub(crate) struct Passive {
    /// The id of the `OpenPassive` intent.
    pub(crate) id: IntentId,
    /// Which passive token slot it uses.
    pub(crate) slot: u8,
    listener: TcpListener,
    /// Its address.
    addr: SocketAddr,
    /// Its token, for when it has to be registered.
    token: Token,
    registered: bool,
    allowed: IpAddr,
    /// Data connections from proxies whose PROXY headers have not fully
    /// arrived, registered under `token` too.
    proxied: HeaderWaits<TcpStream>,
    held: Option<TcpStream>,
    /// A connection may be waiting (unknown until the first accept).
    ready: bool,
}

impl Passive {
    /// Binds a listener from the server's passive range on `ip` (the
    /// control connection's local address) for connections from `allowed`
    /// only, and returns it with its address. It is registered (under
    /// `token`) only if a transfer has to wait for its connection: the
    /// client usually connects between `EPSV` and `RETR`, so the transfer
    /// finds the connection waiting and the listener never costs a
    /// registration or a wakeup.
    ///
    /// A listener `kept` from the session's last passive transfer is
    /// used again when it can be.
    pub(crate) fn open(
        server: &Server,
        ip: IpAddr,
        allowed: IpAddr,
        id: IntentId,
        slot: u8,
        token: Token,
        kept: Option<KeptListener>,
    ) -> io::Result<(Passive, SocketAddr)> {
        let (listener, addr) = match kept.and_then(|k| k.reuse(ip)) {
            Some(again) => again,
            None => server.passive.bind(ip)?,
        };
        let passive = Passive {
            id,
            slot,
            listener: TcpListener::from_std(listener),
            addr,
            token,
            registered: false,
            allowed,
            proxied: HeaderWaits::new(server.config.proxy_from.clone()),
            held: None,
            ready: true,
        };
        Ok((passive, addr))
    }

    /// Notes that a connection (or more of a PROXY header) may be waiting.
    pub(crate) fn on_event(&mut self) {
        self.ready = true;
    }

    /// When a data connection's PROXY header must be complete, if one is
    /// awaited: drive the connection then.
    pub(crate) fn header_deadline(&self) -> Option<StdInstant> {
        self.proxied.deadline()
    }

    /// Accepts what is waiting, for a transfer that wants its connection:
    /// the first connection from the allowed address is held for the
    /// transfer, every other one before it is closed at once. Once one is
    /// held, the rest wait in the backlog until the listener closes (when
    /// the transfer takes the held one). When nobody is waiting, the
    /// listener is registered, to report the next connection. Returns
    /// `true` when it stopped with connections possibly still waiting
    /// (call again on the next turn).
    ///
    /// A connection from a proxy whose header has not fully arrived waits
    /// registered under the listener's token (edge-triggered: more of the
    /// header is an event), until the host decides
    /// ([`take_allowed`]) or its deadline passes.
    pub(crate) fn accept(&mut self, registry: &Registry) -> bool {
        let now = StdInstant::now();
        let header_due = self.proxied.deadline().is_some_and(|at| at <= now);
        if (!self.ready && !header_due) || self.held.is_some() {
            return false;
        }
        let listener = &self.listener;
        let taken = take_allowed(
            || listener.accept(),
            self.allowed,
            &mut self.proxied,
            ACCEPTS_PER_TURN,
            now,
        );
        for stream in self.proxied.waiting() {
            // Registered once; `AlreadyExists` the next times.
            let _ = registry.register(stream, self.token, Interest::READABLE);
        }
        match taken {
            Ok(Taken::Connection(mut stream)) => {
                if self.proxied.took_waiting() {
                    // It waited for its header, registered; the transfer
                    // registers it again when it must wait.
                    let _ = registry.deregister(&mut stream);
                }
                self.held = Some(stream);
                false
            }
            Ok(Taken::Busy) => true,
            Ok(Taken::Empty) => {
                self.ready = false;
                self.register(registry);
                false
            }
            Err(e) => {
                // Out of descriptors, most likely. The engine's connect
                // timeout ends a transfer that waits in vain.
                log::warn!("accepting a data connection: {e}");
                self.ready = false;
                self.register(registry);
                false
            }
        }
    }

    /// Registers the listener, once. Epoll reports a connection that came
    /// before the registration, so none is missed; if registering fails,
    /// the engine's connect timeout ends the transfer that waits.
    fn register(&mut self, registry: &Registry) {
        if self.registered {
            return;
        }
        match registry.register(&mut self.listener, self.token, Interest::READABLE) {
            Ok(()) => self.registered = true,
            Err(e) => log::warn!("registering a passive listener: {e}"),
        }
    }

    /// The held data connection, if one came.
    pub(crate) fn take_stream(&mut self) -> Option<TcpStream> {
        self.held.take()
    }

    /// Unregisters and closes the listener (and any held connection).
    pub(crate) fn close(mut self, registry: &Registry) {
        if self.registered {
            let _ = registry.deregister(&mut self.listener);
        }
    }

    /// The transfer took its connection: unregisters the listener and
    /// gives it to the server to keep for the session's next passive
    /// command (`None`: the server keeps enough already, and it closes).
    /// Connections still waiting for their PROXY headers are closed.
    pub(crate) fn finish(mut self, registry: &Registry, server: &Server) -> Option<KeptListener> {
        if self.registered && registry.deregister(&mut self.listener).is_err() {
            return None;
        }
        server
            .passive
            .keep(std::net::TcpListener::from(self.listener), self.addr)
    }
}

/// The socket side of a transfer.
#[derive(Debug)]
enum Link {
    /// No socket yet: the file is being opened, or the passive listener
    /// has not accepted.
    Waiting,
    /// An active (PORT/EPRT) connect in progress.
    Connecting(TcpStream),
    /// Connected; the TLS handshake runs.
    Handshaking(TcpStream),
    /// The data connection is up.
    Open(TcpStream),
}

/// What one [`DataTransfer::step`] ended with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Waiting for readiness (or for the file to open).
    Idle,
    /// The budget ran out while the socket was still ready.
    More,
    /// The data connection came up: report
    /// [`TransferEvent::Connected`] and step again.
    Connected,
    /// The transfer is over: report this and drop it.
    End(TransferEvent),
}

/// One running transfer of a session.
/// How often a running transfer reports progress to the engine.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct DataTransfer {
    /// The id of the `Transfer` intent.
    pub(crate) id: IntentId,
    endpoint: DataEndpoint,
    /// The file side, called inline; `None` until the open job returns,
    /// and for a file side that may stall (see `offload`).
    end: Option<TransferEnd>,
    /// The file thread of a file side that may stall.
    offload: Option<Offload>,
    link: Link,
    /// The data socket is registered with the loop (see
    /// [`DataTransfer::register_to_wait`]).
    registered: bool,
    readable: bool,
    writable: bool,
    /// Outgoing bytes not yet written (from `sent` on), or the receive
    /// buffer.
    buf: Vec<u8>,
    sent: usize,
    /// Bytes that crossed the data connection.
    bytes: u64,
    /// When progress was last reported to the engine, and how far it was.
    reported: (StdInstant, u64),
    /// Try `sendfile` before `fill`.
    sendfile: bool,
    /// The source has nothing more.
    source_done: bool,
    /// TLS on the data connection (`PROT P`).
    tls: Option<TlsConn>,
    /// The bandwidth limit; `None`: unlimited.
    rate: Option<RateLimit>,
    /// When the limit lets the transfer go on, while it waits for that.
    throttled: Option<StdInstant>,
}

impl DataTransfer {
    /// A transfer whose file is being opened; its data connection will be
    /// TLS if `tls` is given, and it goes no faster than `rate` allows.
    pub(crate) fn new(
        id: IntentId,
        endpoint: DataEndpoint,
        tls: Option<TlsConn>,
        rate: Option<RateLimit>,
    ) -> DataTransfer {
        DataTransfer {
            id,
            endpoint,
            end: None,
            offload: None,
            link: Link::Waiting,
            registered: false,
            readable: false,
            writable: false,
            buf: Vec::new(),
            sent: 0,
            bytes: 0,
            reported: (StdInstant::now(), 0),
            sendfile: tls.is_none(),
            source_done: false,
            tls,
            rate,
            throttled: None,
        }
    }

    /// When to step the transfer again though no socket is ready: it
    /// waits for its bandwidth limit.
    pub(crate) fn wake_at(&self) -> Option<StdInstant> {
        self.throttled
    }

    /// The bytes moved so far, when they should be reported to the engine
    /// (at most once a second, and only when data moved).
    pub(crate) fn progress_due(&mut self) -> Option<u64> {
        let (at, bytes) = self.reported;
        if self.bytes == bytes || at.elapsed() < PROGRESS_INTERVAL {
            return None;
        }
        self.reported = (StdInstant::now(), self.bytes);
        Some(self.bytes)
    }

    /// The passive listener this transfer uses (and consumes), if any.
    pub(crate) fn passive_listener(&self) -> Option<IntentId> {
        match self.endpoint {
            DataEndpoint::Passive { listener } => Some(listener),
            DataEndpoint::Active { .. } => None,
        }
    }

    /// Whether the file is open and the transfer waits for a passive
    /// listener's connection.
    pub(crate) fn wants_passive_stream(&self) -> bool {
        self.is_opened() && matches!(self.link, Link::Waiting) && self.passive_listener().is_some()
    }

    /// Whether the file side is open.
    pub(crate) fn is_opened(&self) -> bool {
        self.end.is_some() || self.offload.is_some()
    }

    /// The file side is open. A file side that may stall moves to its file
    /// thread (whose wake-ups come under `token`); one that cannot be
    /// started ends the transfer with a file error, returned here. For an
    /// active transfer, starts connecting from `from` (registered under
    /// `token`); a connect that fails at once ends the transfer with
    /// [`TransferError::NoConnection`], returned here.
    pub(crate) fn opened(
        &mut self,
        end: TransferEnd,
        registry: &Registry,
        token: Token,
        from: ActiveFrom,
    ) -> Option<TransferEvent> {
        if blocking(&end).may_stall() {
            match Offload::start(end, CHUNK, registry, token) {
                Ok(offload) => self.offload = Some(offload),
                Err(e) => {
                    log::warn!("no thread for a transfer's file: {e}");
                    return Some(TransferEvent::Failed(TransferError::Fs(FsError::Other)));
                }
            }
            // Zero-copy needs a local file.
            self.sendfile = false;
        } else {
            self.end = Some(end);
        }
        let DataEndpoint::Active { addr } = self.endpoint else {
            return None;
        };
        let connected = ftp_host::active::connect(from, addr).and_then(|stream| {
            let mut stream = TcpStream::from_std(stream);
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(stream)
        });
        match connected {
            Ok(stream) => {
                self.link = Link::Connecting(stream);
                self.registered = true;
                self.readable = true;
                self.writable = true;
                None
            }
            Err(e) => {
                log::debug!("data connection to {addr}: {e}");
                Some(TransferEvent::Failed(TransferError::NoConnection))
            }
        }
    }

    /// Takes over a connection accepted by the passive listener, not yet
    /// registered: it is used as ready until a call would block (see
    /// [`DataTransfer::register_to_wait`]), so a small download is sent
    /// and closed without ever being registered. Returns whether it
    /// counts as connected now; with TLS, [`Step::Connected`] comes after
    /// the handshake.
    pub(crate) fn attach(&mut self, stream: TcpStream) -> bool {
        self.readable = true;
        self.writable = true;
        if self.tls.is_some() {
            self.link = Link::Handshaking(stream);
            return false;
        }
        self.link = Link::Open(stream);
        true
    }

    /// After a [`Step::Idle`]: registers the data socket (under `token`)
    /// if it is not yet, since the transfer now waits for its readiness.
    /// Epoll reports readiness that came before the registration, so
    /// nothing is missed between the call that would block and this one.
    pub(crate) fn register_to_wait(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        if self.registered {
            return Ok(());
        }
        if let Link::Open(stream) | Link::Handshaking(stream) = &mut self.link {
            registry.register(stream, token, Interest::READABLE | Interest::WRITABLE)?;
            self.registered = true;
        }
        Ok(())
    }

    /// Notes the readiness of the data socket.
    pub(crate) fn on_event(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
    }

    /// Moves data, using at most `budget` bytes of it.
    pub(crate) fn step(&mut self, budget: &mut usize) -> Step {
        match &self.link {
            Link::Waiting => Step::Idle,
            Link::Connecting(stream) => {
                if !self.writable {
                    return Step::Idle;
                }
                match connect_result(stream) {
                    Ok(true) => {
                        if let Link::Connecting(stream) =
                            std::mem::replace(&mut self.link, Link::Waiting)
                        {
                            if self.tls.is_some() {
                                self.link = Link::Handshaking(stream);
                                return self.step(budget);
                            }
                            self.link = Link::Open(stream);
                        }
                        Step::Connected
                    }
                    Ok(false) => {
                        self.writable = false;
                        Step::Idle
                    }
                    Err(e) => {
                        log::debug!("data connection: {e}");
                        Step::End(TransferEvent::Failed(TransferError::NoConnection))
                    }
                }
            }
            Link::Handshaking(stream) => {
                let Some(tls) = &mut self.tls else {
                    return Step::End(TransferEvent::Failed(TransferError::NoConnection));
                };
                match tls.handshake(&mut &*stream) {
                    Ok(Handshake::Done) => {
                        if let Link::Handshaking(stream) =
                            std::mem::replace(&mut self.link, Link::Waiting)
                        {
                            self.link = Link::Open(stream);
                        }
                        Step::Connected
                    }
                    Ok(Handshake::WantRead) => {
                        self.readable = false;
                        Step::Idle
                    }
                    Ok(Handshake::WantWrite) => {
                        self.writable = false;
                        Step::Idle
                    }
                    Err(e) => {
                        log::warn!("data connection TLS: {e}");
                        Step::End(TransferEvent::Failed(TransferError::NoConnection))
                    }
                }
            }
            Link::Open(_) if self.rate.is_some() => self.pump_limited(budget),
            Link::Open(_) => self.pump(budget),
        }
    }

    /// Moves data on the open connection.
    fn pump(&mut self, budget: &mut usize) -> Step {
        match (&self.end, &self.offload) {
            (Some(TransferEnd::Send(_)), _) | (None, Some(Offload::Send(_))) => {
                self.pump_send(budget)
            }
            (Some(TransferEnd::Receive(_)), _) => self.pump_receive(budget),
            (None, Some(Offload::Receive(_))) => self.pump_offloaded_receive(budget),
            (None, None) => Step::Idle,
        }
    }

    /// [`pump`](Self::pump) within the rate's allowance as well as the
    /// turn's budget. When the allowance is spent first, the transfer
    /// waits (idle) until [`wake_at`](Self::wake_at).
    fn pump_limited(&mut self, budget: &mut usize) -> Step {
        let now = StdInstant::now();
        let allowed = self.rate.as_mut().map_or(0, |r| r.allowance(now));
        // Called even with nothing allowed: an offloaded upload's commit
        // may be waiting to be collected.
        let mut within = allowed.min(*budget);
        let before = self.bytes;
        let step = self.pump(&mut within);
        let moved = usize::try_from(self.bytes - before).unwrap_or(usize::MAX);
        *budget = budget.saturating_sub(moved);
        let Some(rate) = &mut self.rate else {
            return step;
        };
        rate.consume(moved);
        self.throttled = None;
        match step {
            Step::More if *budget > 0 => match rate.ready_at(now) {
                Some(at) => {
                    self.throttled = Some(at);
                    Step::Idle
                }
                None => Step::More,
            },
            other => other,
        }
    }

    /// Sends the source: from the file inline, or from the chunks its file
    /// thread fills.
    fn pump_send(&mut self, budget: &mut usize) -> Step {
        let DataTransfer {
            end,
            offload,
            link: Link::Open(stream),
            writable,
            buf,
            sent,
            bytes,
            sendfile,
            source_done,
            tls,
            ..
        } = self
        else {
            return Step::Idle;
        };
        loop {
            if *budget == 0 {
                return Step::More;
            }
            if *sent < buf.len() {
                if !*writable {
                    return Step::Idle;
                }
                let end = buf.len().min(*sent + *budget);
                match write_to(stream, tls, &buf[*sent..end]) {
                    Ok(0) => return lost(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        *sent += n;
                        *bytes += n as u64;
                        *budget = budget.saturating_sub(n);
                        if *sent == buf.len() {
                            buf.clear();
                            *sent = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return lost(e),
                }
                continue;
            }
            if *source_done {
                if let Some(tls) = tls {
                    tls.close();
                    match tls.flush(&mut &*stream) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            *writable = false;
                            return Step::Idle;
                        }
                        Err(e) => return lost(e),
                    }
                    let _ = stream.shutdown(Shutdown::Write);
                }
                // A clear stream: its FIN goes with the close when the
                // transfer is dropped, in this same drive.
                return Step::End(TransferEvent::Finished { bytes: *bytes });
            }
            if *sendfile {
                let Some(TransferEnd::Send(source)) = end else {
                    *sendfile = false;
                    continue;
                };
                if !*writable {
                    return Step::Idle;
                }
                match source.sendfile_to(stream.as_fd(), SENDFILE_CHUNK.min(*budget)) {
                    Ok(Some(0)) => *source_done = true,
                    Ok(Some(n)) => {
                        *bytes += n as u64;
                        *budget = budget.saturating_sub(n);
                    }
                    Ok(None) => *sendfile = false,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => *writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_connection_error(&e) => return lost(e),
                    Err(e) => return file_failed(&e),
                }
                continue;
            }
            let filled = match (end.as_mut(), offload.as_mut()) {
                (Some(TransferEnd::Send(source)), _) => source.fill(buf, CHUNK.min(*budget)),
                (None, Some(Offload::Send(filler))) => match filler.next(buf) {
                    Some(filled) => filled,
                    // The file thread's answer wakes the loop.
                    None => return Step::Idle,
                },
                _ => return Step::Idle,
            };
            match filled {
                Ok(0) => *source_done = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return file_failed(&e),
            }
        }
    }

    fn pump_receive(&mut self, budget: &mut usize) -> Step {
        let DataTransfer {
            end,
            link: Link::Open(stream),
            readable,
            buf,
            bytes,
            tls,
            ..
        } = self
        else {
            return Step::Idle;
        };
        loop {
            if *budget == 0 {
                return Step::More;
            }
            if !*readable {
                return Step::Idle;
            }
            let Some(TransferEnd::Receive(sink)) = end else {
                return Step::Idle;
            };
            // Binary on a local file: spliced into the file. Otherwise
            // binary: straight into the sink's buffer. ASCII: through ours
            // and the sink's decoder.
            let spliced = match tls {
                None => sink.splice_from(stream.as_fd(), *budget),
                Some(_) => Ok(None),
            };
            let read = match spliced {
                Ok(Some(read)) => read.map(|n| (n, Landed::File)),
                Ok(None) => match sink.room() {
                    Ok(Some(room)) => {
                        let max = room.len().min(*budget);
                        read_from(stream, tls, &mut room[..max]).map(|n| (n, Landed::SinkBuffer))
                    }
                    Ok(None) => {
                        if buf.len() != CHUNK {
                            buf.resize(CHUNK, 0);
                        }
                        read_from(stream, tls, &mut buf[..CHUNK.min(*budget)])
                            .map(|n| (n, Landed::OwnBuffer))
                    }
                    Err(e) => return Step::End(TransferEvent::Failed(TransferError::Fs(e))),
                },
                Err(e) => return Step::End(TransferEvent::Failed(TransferError::Fs(e))),
            };
            match read {
                Ok((0, _)) => {
                    let Some(TransferEnd::Receive(sink)) = end.take() else {
                        return Step::Idle;
                    };
                    if let Some(tls) = tls {
                        // A TLS client waits for our close_notify (Python's
                        // `unwrap`); a fresh socket's buffer takes it.
                        tls.close();
                        let _ = tls.flush(&mut &*stream);
                    }
                    return match sink.finish() {
                        Ok(_) => Step::End(TransferEvent::Finished { bytes: *bytes }),
                        Err(e) => Step::End(TransferEvent::Failed(TransferError::Fs(e))),
                    };
                }
                Ok((n, landed)) => {
                    *bytes += n as u64;
                    *budget = budget.saturating_sub(n);
                    match landed {
                        Landed::File => {}
                        Landed::SinkBuffer => sink.commit(n),
                        Landed::OwnBuffer => {
                            if let Err(e) = sink.write(&buf[..n]) {
                                return Step::End(TransferEvent::Failed(TransferError::Fs(e)));
                            }
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => *readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return lost(e),
            }
        }
    }

    /// Receives into a sink that may stall: reads the socket into chunks
    /// for its file thread, at most [`crate::offload::WRITES_AHEAD`] of
    /// them waiting at once, and at the end of the data has the thread
    /// commit the upload.
    fn pump_offloaded_receive(&mut self, budget: &mut usize) -> Step {
        let DataTransfer {
            offload: Some(Offload::Receive(writer)),
            link: Link::Open(stream),
            readable,
            bytes,
            tls,
            ..
        } = self
        else {
            return Step::Idle;
        };
        loop {
            match writer.collect() {
                Some(Ok(())) => return Step::End(TransferEvent::Finished { bytes: *bytes }),
                Some(Err(e)) => return Step::End(TransferEvent::Failed(TransferError::Fs(e))),
                None => {}
            }
            if !writer.has_room() {
                // The file thread's answer wakes the loop.
                return Step::Idle;
            }
            if *budget == 0 {
                return Step::More;
            }
            if !*readable {
                return Step::Idle;
            }
            let mut chunk = writer.buffer();
            let max = chunk.len().min(*budget);
            match read_from(stream, tls, &mut chunk[..max]) {
                Ok(0) => {
                    writer.give_back(chunk);
                    if let Some(tls) = tls {
                        // As in `pump_receive`: our close_notify first.
                        tls.close();
                        let _ = tls.flush(&mut &*stream);
                    }
                    if let Err(e) = writer.finish() {
                        return Step::End(TransferEvent::Failed(TransferError::Fs(e)));
                    }
                }
                Ok(n) => {
                    chunk.truncate(n);
                    *bytes += n as u64;
                    *budget = budget.saturating_sub(n);
                    if let Err(e) = writer.write(chunk) {
                        return Step::End(TransferEvent::Failed(TransferError::Fs(e)));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    writer.give_back(chunk);
                    *readable = false;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => writer.give_back(chunk),
                Err(e) => return lost(e),
            }
        }
    }

    /// Ends the transfer: closes the data connection (unregistered from
    /// `registry`) and gives up an unfinished upload.
    pub(crate) fn close(self, registry: &Registry) {
        match self.link {
            Link::Open(mut stream)
            | Link::Connecting(mut stream)
            | Link::Handshaking(mut stream) => {
                if self.registered {
                    let _ = registry.deregister(&mut stream);
                }
            }
            Link::Waiting => {}
        }
        if let Some(offload) = self.offload {
            offload.close(registry);
        }
        discard_end(self.end);
    }
}

/// Where [`DataTransfer::pump_receive`] put the bytes it read.
enum Landed {
    /// Spliced into the file already.
    File,
    /// In the sink's buffer, to be committed.
    SinkBuffer,
    /// In the transfer's own buffer, to be written to the sink.
    OwnBuffer,
}

/// Writes to the data connection, through TLS if it has it.
fn write_to(stream: &TcpStream, tls: &mut Option<TlsConn>, data: &[u8]) -> io::Result<usize> {
    match tls {
        Some(tls) => tls.write(&mut &*stream, data),
        None => (&*stream).write(data),
    }
}

/// Reads from the data connection, through TLS if it has it.
fn read_from(stream: &TcpStream, tls: &mut Option<TlsConn>, buf: &mut [u8]) -> io::Result<usize> {
    match tls {
        Some(tls) => tls.read(&mut &*stream, buf),
        None => (&*stream).read(buf),
    }
}

/// Gives up the file side of a transfer that will not run; on a thread
/// when its calls may stall.
pub(crate) fn discard_end(end: Option<TransferEnd>) {
    let Some(end) = end else {
        return;
    };
    if blocking(&end).may_stall() {
        crate::offload::discard(end);
        return;
    }
    if let TransferEnd::Receive(sink) = end {
        Sink::abort(sink);
    }
    // A source just closes its file when dropped.
}

/// How long the calls of a file side may wait.
fn blocking(end: &TransferEnd) -> Blocking {
    match end {
        TransferEnd::Send(source) => source.blocking(),
        TransferEnd::Receive(sink) => sink.blocking(),
    }
}

/// Whether a non-blocking connect finished: `Ok(true)` connected,
/// `Ok(false)` still in progress, `Err` failed.
fn connect_result(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

fn lost(e: io::Error) -> Step {
    log::debug!("data connection lost: {e}");
    Step::End(TransferEvent::Failed(TransferError::ConnectionLost))
}

fn file_failed(e: &io::Error) -> Step {
    log::warn!("reading for a transfer: {e}");
    Step::End(TransferEvent::Failed(TransferError::Fs(fs_error_from_io(
        e,
    ))))
}
