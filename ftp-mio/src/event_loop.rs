//! One event loop: a [`mio::Poll`], the control listeners it accepts on,
//! its connections, their deadlines, and the turn-by-turn schedule.
//!
//! A turn: poll (with a zero timeout when connections are on the ready
//! list, else until the next deadline), handle each event (a listener
//! accepts, a connection's socket drives that connection, the waker
//! delivers worker results and shutdown), drive the connections and
//! listeners that were left on the ready list last turn, then fire expired
//! timers.
//!
//! A connection from a `--proxy-from` source first waits (registered on its
//! own, with a deadline) for its PROXY header, which the host reads and
//! judges ([`Server::admit_proxied`]); it becomes a session only then.
//!
//! Shutdown: the listeners (and connections still waiting for a PROXY
//! header) are closed at once; sessions get
//! `shutdown_grace` to finish (the engine aborts a transfer still running
//! then, with `426` and `421`), and [`SHUTDOWN_LAST_WORDS`] more to say
//! so; then whatever is left is closed and the loop returns.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant as StdInstant};

use ftp_host::admission::{
    ACCEPT_PAUSE, Accepted, Acceptor, Admission, Admitted, AwaitingHeader, HeaderStep, refuse,
};
use ftp_host::daemon::{Listener, SHUTDOWN_LAST_WORDS, Shutdown, prepare_control_socket};
use ftp_host::server::{Server, canonical};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Registry, Waker};

use crate::conn::Conn;
use crate::slab::Slab;
use crate::timers::{ConnKey, Timers};
use crate::token::{self, Target};
use ftp_host::workers::Workers;

use crate::workers::{Done, ReturnAddress};

/// Connections accepted from one listener per turn.
const ACCEPTS_PER_TURN: usize = 32;
/// Size of the buffer control input is read into.
const SCRATCH: usize = 16 * 1024;

/// Something to drive again on the next turn without waiting for an event.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Ready {
    /// A connection that stopped for lack of budget.
    Conn(ConnKey),
    /// A listener that may have more connections waiting.
    Listener(usize),
}

/// What a connection's drive needs from its loop.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The server.
    pub(crate) server: Arc<Server>,
    /// Where sockets are (un)registered.
    pub(crate) registry: Registry,
    /// The connections' deadlines.
    pub(crate) timers: Timers,
    /// What to drive next turn.
    pub(crate) ready: VecDeque<Ready>,
    /// The worker pool.
    pub(crate) workers: Workers,
    /// Where the pool sends this loop's results.
    pub(crate) reply: ReturnAddress,
    /// Buffer for control input.
    pub(crate) scratch: Vec<u8>,
}

/// One event loop (one thread).
#[derive(Debug)]
pub(crate) struct EventLoop {
    poll: Poll,
    cx: Ctx,
    /// Boxed, so the slab's spare capacity costs a pointer per slot.
    conns: Slab<Box<Conn>>,
    /// Connections from proxies waiting for their PROXY headers.
    headers: Slab<Header>,
    /// Their deadlines.
    header_timers: Timers,
    results: Receiver<Done>,
    listeners: Vec<Option<TcpListener>>,
    /// Which listeners are implicit FTPS, by index.
    implicit_tls: Vec<bool>,
    acceptor: Acceptor,
    /// Accepting resumes then (after running out of descriptors).
    paused_until: Option<StdInstant>,
    shutdown: Option<Shutdown>,
    /// Shutdown has begun; sessions must be done by then.
    stop_at: Option<StdInstant>,
    /// Serve the connections there are, then return (inetd).
    one_shot: bool,
    next_serial: u64,
}

/// A connection from a proxy whose PROXY header has not fully arrived:
/// registered (readable) under [`token::header`], with its deadline in
/// the loop's `header_timers`.
#[derive(Debug)]
struct Header {
    key: ConnKey,
    stream: TcpStream,
    waiting: AwaitingHeader,
    implicit_tls: bool,
    timer: Option<StdInstant>,
}

impl EventLoop {
    /// A loop accepting on `listeners` (already non-blocking) until
    /// `shutdown` triggers; with no listeners and no shutdown, a loop that
    /// returns when its last connection ends.
    pub(crate) fn new(
        server: Arc<Server>,
        listeners: Vec<Listener>,
        workers: Workers,
        shutdown: Option<Shutdown>,
    ) -> io::Result<EventLoop> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = Arc::new(Waker::new(&registry, token::WAKER)?);
        let (tx, results) = mpsc::channel();
        let mut registered = Vec::with_capacity(listeners.len());
        let implicit_tls = listeners.iter().map(|l| l.implicit_tls).collect();
        for (n, listener) in listeners.into_iter().enumerate() {
            listener.socket.set_nonblocking(true)?;
            let mut listener = TcpListener::from_std(listener.socket);
            registry.register(&mut listener, token::listener(n), Interest::READABLE)?;
            registered.push(Some(listener));
        }
        let one_shot = registered.is_empty() && shutdown.is_none();
        if let Some(shutdown) = &shutdown {
            let waker = Arc::clone(&waker);
            shutdown.on_trigger(move || {
                let _ = waker.wake();
            });
        }
        Ok(EventLoop {
            poll,
            cx: Ctx {
                server,
                registry,
                timers: Timers::default(),
                ready: VecDeque::new(),
                workers,
                reply: ReturnAddress::new(tx, waker),
                scratch: vec![0; SCRATCH],
            },
            conns: Slab::default(),
            headers: Slab::default(),
            header_timers: Timers::default(),
            results,
            listeners: registered,
            implicit_tls,
            acceptor: Acceptor::new(),
            paused_until: None,
            shutdown,
            stop_at: None,
            one_shot,
            next_serial: 0,
        })
    }

    /// Adds a session on an already-connected control socket (inetd), not
    /// counted against the connection limits.
    pub(crate) fn adopt(
        &mut self,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> io::Result<()> {
        prepare_control_socket(&stream);
        self.add_conn(stream, local, canonical(peer), None, false)
    }

    /// Runs until shutdown (or, for a one-shot loop, until its last
    /// connection ends).
    pub(crate) fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        loop {
            self.check_shutdown();
            if self.is_done() {
                break;
            }
            let timeout = self.poll_timeout();
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.close_all();
                    return Err(e);
                }
            }
            for event in events.iter() {
                self.handle(event);
            }
            self.run_ready();
            self.run_timers();
        }
        self.close_all();
        Ok(())
    }

    fn is_done(&self) -> bool {
        if self.one_shot {
            return self.conns.is_empty();
        }
        match self.stop_at {
            None => false,
            Some(at) => self.conns.is_empty() || StdInstant::now() >= at,
        }
    }

    /// Starts shutting down once asked: stop accepting, start the grace
    /// period.
    fn check_shutdown(&mut self) {
        let asked = self.shutdown.as_ref().is_some_and(Shutdown::is_triggered);
        if !asked || self.stop_at.is_some() {
            return;
        }
        for mut listener in self.listeners.iter_mut().filter_map(Option::take) {
            let _ = self.cx.registry.deregister(&mut listener);
        }
        self.drop_headers();
        let grace = self.cx.server.config.shutdown_grace;
        self.stop_at = Some(StdInstant::now() + grace + SHUTDOWN_LAST_WORDS);
        // Idle sessions get their 421 now; busy ones after their transfer,
        // which the engine aborts once the grace is over.
        for index in self.conns.indices() {
            if let Some(conn) = self.conns.get_mut(index) {
                conn.shutdown(&mut self.cx, grace);
            }
            self.reap(index);
        }
        if !self.conns.is_empty() {
            log::info!(
                "shutting down: {} session(s) get {grace:?} to finish",
                self.conns.len()
            );
        }
    }

    fn poll_timeout(&self) -> Option<Duration> {
        if !self.cx.ready.is_empty() {
            return Some(Duration::ZERO);
        }
        let next = [
            self.cx.timers.next(),
            self.header_timers.next(),
            self.paused_until,
            self.stop_at,
        ]
        .into_iter()
        .flatten()
        .min()?;
        Some(next.saturating_duration_since(StdInstant::now()))
    }

    fn handle(&mut self, event: &Event) {
        match token::target(event.token()) {
            Target::Waker => self.collect_results(),
            Target::Listener(n) => self.accept_from(n),
            Target::Header(index) => self.read_header(index),
            Target::Conn(index, role) => {
                if let Some(conn) = self.conns.get_mut(index) {
                    conn.on_event(role, event);
                    conn.drive(&mut self.cx);
                }
                self.reap(index);
            }
        }
    }

    /// Hands worker results to their connections.
    fn collect_results(&mut self) {
        while let Ok(Done { key, done }) = self.results.try_recv() {
            match self.conns.get_mut(key.index) {
                Some(conn) if conn.key == key => {
                    conn.job_done(&mut self.cx, done);
                    conn.drive(&mut self.cx);
                    self.reap(key.index);
                }
                // The connection is gone; an upload in `done` aborts on drop.
                _ => drop(done),
            }
        }
    }

    fn run_ready(&mut self) {
        let ready = std::mem::take(&mut self.cx.ready);
        for item in ready {
            match item {
                Ready::Conn(key) => match self.conns.get_mut(key.index) {
                    Some(conn) if conn.key == key => {
                        conn.unqueue();
                        conn.drive(&mut self.cx);
                        self.reap(key.index);
                    }
                    _ => {}
                },
                Ready::Listener(n) => self.accept_from(n),
            }
        }
    }

    fn run_timers(&mut self) {
        let now = StdInstant::now();
        for key in self.cx.timers.expired(now) {
            if let Some(conn) = self.conns.get_mut(key.index) {
                if conn.key == key {
                    conn.on_timer(&mut self.cx);
                    self.reap(key.index);
                }
            }
        }
        for key in self.header_timers.expired(now) {
            if let Some(header) = self.headers.get_mut(key.index) {
                if header.key == key {
                    header.timer = None;
                    self.read_header(key.index);
                }
            }
        }
        if self.paused_until.is_some_and(|at| now >= at) {
            self.paused_until = None;
            self.acceptor.replenish();
            for n in 0..self.listeners.len() {
                self.cx.ready.push_back(Ready::Listener(n));
            }
        }
    }

    /// Drops the connection at `index` if it has closed.
    fn reap(&mut self, index: usize) {
        if self.conns.get_mut(index).is_some_and(|c| c.is_closed()) {
            if let Some(conn) = self.conns.remove(index) {
                conn.finish(&mut self.cx);
            }
        }
    }

    fn accept_from(&mut self, n: usize) {
        if self.paused_until.is_some() {
            return;
        }
        for _ in 0..ACCEPTS_PER_TURN {
            let Some(Some(listener)) = self.listeners.get(n) else {
                return;
            };
            match self.acceptor.accept(|| listener.accept()) {
                Accepted::Stream(stream, peer) => {
                    let implicit_tls = self.implicit_tls.get(n).copied().unwrap_or(false);
                    self.admit(stream, peer, implicit_tls)
                }
                Accepted::Refused => {}
                Accepted::Empty => return,
                Accepted::Pause => {
                    self.paused_until = Some(StdInstant::now() + ACCEPT_PAUSE);
                    return;
                }
            }
        }
        // More may be waiting; no new edge will say so.
        self.cx.ready.push_back(Ready::Listener(n));
    }

    /// A new control connection: the host admits it (or refuses it),
    /// then its session starts (with TLS from the first byte if
    /// `implicit_tls`).
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr, implicit_tls: bool) {
        match self.cx.server.admit(stream.local_addr(), peer) {
            Admission::AwaitHeader(waiting) => self.await_header(stream, waiting, implicit_tls),
            decided => self.start_admitted(stream, decided, implicit_tls),
        }
    }

    /// A connection from a proxy: its header usually came with it, and
    /// decides at once; else it waits, registered, until it is readable
    /// or its deadline.
    fn await_header(
        &mut self,
        mut stream: TcpStream,
        mut waiting: AwaitingHeader,
        implicit_tls: bool,
    ) {
        let now = StdInstant::now();
        let step = self.cx.server.admit_proxied(&mut waiting, &stream, now);
        if let HeaderStep::Done(admission) = step {
            return self.start_admitted(stream, admission, implicit_tls);
        }
        let index = self.headers.vacant();
        if !token::header_fits(index) {
            return;
        }
        self.next_serial += 1;
        let key = ConnKey {
            index,
            serial: self.next_serial,
        };
        if let Err(e) =
            self.cx
                .registry
                .register(&mut stream, token::header(index), Interest::READABLE)
        {
            log::warn!("{}: waiting for a PROXY header: {e}", waiting.proxy());
            return;
        }
        let mut header = Header {
            key,
            stream,
            implicit_tls,
            timer: None,
            waiting,
        };
        let deadline = header.waiting.deadline();
        self.header_timers
            .arm(key, &mut header.timer, Some(deadline));
        self.headers.insert(header);
    }

    /// More of a PROXY header may have come (or its deadline passed).
    fn read_header(&mut self, index: usize) {
        let Some(header) = self.headers.get_mut(index) else {
            return;
        };
        let now = StdInstant::now();
        let step = self
            .cx
            .server
            .admit_proxied(&mut header.waiting, &header.stream, now);
        // Edge-triggered: a partial header is reported again when more of
        // it comes.
        let HeaderStep::Done(admission) = step else {
            return;
        };
        let Some(mut header) = self.headers.remove(index) else {
            return;
        };
        self.header_timers.arm(header.key, &mut header.timer, None);
        let _ = self.cx.registry.deregister(&mut header.stream);
        self.start_admitted(header.stream, admission, header.implicit_tls);
    }

    /// Acts on what admission decided: starts the session, or refuses.
    fn start_admitted(&mut self, stream: TcpStream, admission: Admission, implicit_tls: bool) {
        match admission {
            Admission::Admitted(Admitted { local, peer, slot }) => {
                prepare_control_socket(&stream);
                if let Err(e) = self.add_conn(stream, local, peer, Some(slot), implicit_tls) {
                    log::warn!("{peer}: could not start a session: {e}");
                }
            }
            Admission::Refused { reply } => refuse(&stream, &reply),
            // A decided header is never awaited again.
            Admission::Ignored | Admission::AwaitHeader(_) => {}
        }
    }

    fn add_conn(
        &mut self,
        stream: TcpStream,
        local: SocketAddr,
        peer: SocketAddr,
        slot: Option<ftp_host::limits::ConnectionSlot>,
        implicit_tls: bool,
    ) -> io::Result<()> {
        let index = self.conns.vacant();
        if !token::index_fits(index) {
            return Err(io::Error::other("too many connections for one loop"));
        }
        self.next_serial += 1;
        let key = ConnKey {
            index,
            serial: self.next_serial,
        };
        let conn = Conn::start(&mut self.cx, key, stream, local, peer, slot, implicit_tls)?;
        let index = self.conns.insert(Box::new(conn));
        debug_assert_eq!(index, key.index);
        if let Some(conn) = self.conns.get_mut(index) {
            conn.drive(&mut self.cx);
        }
        self.reap(index);
        Ok(())
    }

    /// Closes the connections still waiting for their PROXY headers.
    fn drop_headers(&mut self) {
        for index in self.headers.indices() {
            if let Some(mut header) = self.headers.remove(index) {
                self.header_timers.arm(header.key, &mut header.timer, None);
                let _ = self.cx.registry.deregister(&mut header.stream);
            }
        }
    }

    /// Closes every connection and listener.
    fn close_all(&mut self) {
        self.drop_headers();
        for index in self.conns.indices() {
            if let Some(mut conn) = self.conns.remove(index) {
                conn.close_now(&mut self.cx);
                conn.finish(&mut self.cx);
            }
        }
        for mut listener in self.listeners.iter_mut().filter_map(Option::take) {
            let _ = self.cx.registry.deregister(&mut listener);
        }
    }
}
