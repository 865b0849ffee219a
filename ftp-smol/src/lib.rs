//! `ftp-smol`: the FTP daemon on the smol async runtime, driving the
//! [`ftp_proto`] engine with the host services of [`ftp_host`].
//!
//! * [`Smol::serve`] runs `--threads` threads on one shared
//!   [`smol::Executor`]: the calling thread plus `threads - 1` workers. Each
//!   listener gets an accept task; each connection gets a session task
//!   (module `conn`, as in ftp-mio); a transfer that cannot be done at once gets a
//!   task of its own (module `data`, whose documentation says which file
//!   work runs inline and which on a blocking pool). Jobs (authentication,
//!   file operations, opening files) run on the shared worker pool;
//!   directory listings and upload writes on smol's blocking pool
//!   (`smol::unblock`).
//! * [`Smol::serve_one`] runs one session on the calling thread (inetd).
//!
//! The runtime only moves bytes and performs intents; every protocol
//! decision is the engine's.
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

mod conn;
mod data;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Weak};
use std::thread;

use ftp_host::admission::{
    ACCEPT_PAUSE, Accepted, Acceptor, Admission, Admitted, AwaitingHeader, HeaderStep,
    accept_nonblocking, refuse,
};
use ftp_host::daemon::{Listener, Runtime, SHUTDOWN_LAST_WORDS, Shutdown};
use ftp_host::proxy::PARTIAL_RETRY;
use ftp_host::server::Server;
use ftp_host::workers::Workers;
use smol::future::FutureExt;
use smol::{Async, Executor, Timer};

use crate::conn::Conn;

/// The smol runtime.
#[derive(Debug)]
pub struct Smol;

impl Runtime for Smol {
    fn serve(server: Arc<Server>, listeners: Vec<Listener>, shutdown: Shutdown) -> io::Result<()> {
        let listeners = listeners
            .into_iter()
            .map(|l| Ok((Async::new(l.socket)?, l.implicit_tls)))
            .collect::<io::Result<Vec<_>>>()?;
        let ex = Arc::new(Executor::new());
        let jobs = Workers::spawn(
            "ftp-smol",
            Workers::count_for(server.config.threads.max(1)),
            server.config.password_checks,
        )?;

        // Closed when shutdown triggers: wakes the main task.
        let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
        shutdown.on_trigger(move || {
            stop_tx.close();
        });
        // Every session task holds a sender: `recv` fails once all are gone.
        let (alive_tx, alive_rx) = smol::channel::bounded::<()>(1);
        let accepting: Vec<_> = listeners
            .into_iter()
            .map(|(l, implicit_tls)| {
                let accept = accept(
                    server.clone(),
                    l,
                    implicit_tls,
                    Arc::downgrade(&ex),
                    jobs.clone(),
                    alive_tx.clone(),
                    stop_rx.clone(),
                );
                ex.spawn(accept)
            })
            .collect();

        let (done_tx, done_rx) = smol::channel::bounded::<()>(1);
        let mut workers = Vec::new();
        for i in 1..server.config.threads.max(1) {
            let (ex, done) = (ex.clone(), done_rx.clone());
            let spawned = thread::Builder::new()
                .name(format!("ftp-smol-{i}"))
                .spawn(move || smol::block_on(ex.run(done.recv())));
            match spawned {
                Ok(handle) => workers.push(handle),
                Err(e) => log::warn!("could not start worker thread {i}: {e}"),
            }
        }

        let grace = server.config.shutdown_grace;
        smol::block_on(ex.run(async move {
            let _ = stop_rx.recv().await;
            drop(accepting); // Cancels the accept tasks and closes the listeners.
            drop(alive_tx);
            let active = server.limiter.active();
            if active > 0 {
                log::info!("waiting up to {grace:?} for {active} session(s)");
            }
            let sessions_ended = async {
                let _ = alive_rx.recv().await;
            };
            let grace_over = async {
                // Sessions abort what still runs when the grace ends, and
                // need a moment to say so.
                Timer::after(grace + SHUTDOWN_LAST_WORDS).await;
            };
            sessions_ended.or(grace_over).await;
        }));

        done_tx.close();
        for worker in workers {
            let _ = worker.join();
        }
        // The last strong reference: dropping the executor drops the
        // sessions still running after the grace period.
        drop(ex);
        Ok(())
    }

    fn serve_one(server: Arc<Server>, stream: TcpStream) -> io::Result<()> {
        let peer = stream.peer_addr()?;
        let admitted = match server.admit(stream.local_addr(), peer) {
            Admission::Admitted(admitted) => admitted,
            Admission::Refused { reply } => {
                refuse(&stream, &reply);
                return Ok(());
            }
            // `--proxy-from` is refused with `--inetd`.
            Admission::Ignored | Admission::AwaitHeader(_) => return Ok(()),
        };
        let socket = Async::new(stream)?;
        let ex = Arc::new(Executor::new());
        let jobs = Workers::spawn("ftp-smol", 1, 1)?;
        let weak = Arc::downgrade(&ex);
        let started = Conn::start(server, socket, admitted, false, weak, jobs, None);
        if let Some(conn) = started {
            smol::block_on(ex.run(conn::run(conn)));
        }
        Ok(())
    }
}

/// Accepts connections on `listener` with the host's [`Acceptor`] (its
/// spare descriptor turns clients away with `421` when the process is out
/// of descriptors), has the host admit each, and spawns a session task for
/// each admitted one (implicit FTPS sessions, if `implicit_tls`).
async fn accept(
    server: Arc<Server>,
    listener: Async<TcpListener>,
    implicit_tls: bool,
    ex: Weak<Executor<'static>>,
    jobs: Workers,
    alive: smol::channel::Sender<()>,
    stop: smol::channel::Receiver<()>,
) {
    let mut acceptor = Acceptor::new();
    loop {
        let (socket, peer) = match acceptor.accept(|| accept_nonblocking(listener.get_ref())) {
            Accepted::Stream(socket, peer) => (socket, peer),
            Accepted::Empty => {
                if let Err(e) = listener.readable().await {
                    log::warn!("accept: {e}");
                    Timer::after(ACCEPT_PAUSE).await;
                }
                continue;
            }
            // Let the sessions on this thread run between refusals.
            Accepted::Refused => {
                smol::future::yield_now().await;
                continue;
            }
            Accepted::Pause => {
                Timer::after(ACCEPT_PAUSE).await;
                acceptor.replenish();
                continue;
            }
        };
        let Some(executor) = ex.upgrade() else { return };
        let mut admission = server.admit(socket.local_addr(), peer);
        if let Admission::AwaitHeader(waiting) = &mut admission {
            // The header usually came with the connection.
            let now = std::time::Instant::now();
            if let HeaderStep::Done(decided) = server.admit_proxied(waiting, &socket, now) {
                admission = decided;
            }
        }
        let session = || Session {
            server: server.clone(),
            implicit_tls,
            ex: ex.clone(),
            jobs: jobs.clone(),
            stop: stop.clone(),
            alive: alive.clone(),
        };
        match admission {
            Admission::Admitted(admitted) => {
                let Ok(socket) = Async::new_nonblocking(socket) else {
                    continue;
                };
                executor.spawn(session().run(socket, admitted)).detach();
            }
            Admission::Refused { reply } => refuse(&socket, &reply),
            Admission::Ignored => {}
            Admission::AwaitHeader(waiting) => {
                // Its own task: the header may take a moment, and the
                // listener must not wait for it.
                let session = session();
                executor
                    .spawn(async move {
                        if let Some((socket, admitted)) =
                            await_header(&session.server, socket, waiting).await
                        {
                            session.run(socket, admitted).await;
                        }
                    })
                    .detach();
            }
        }
    }
}

/// What a session task needs besides its socket.
struct Session {
    server: Arc<Server>,
    implicit_tls: bool,
    ex: Weak<Executor<'static>>,
    jobs: Workers,
    stop: smol::channel::Receiver<()>,
    alive: smol::channel::Sender<()>,
}

impl Session {
    /// Runs the session of an admitted connection to its end.
    async fn run(self, socket: Async<TcpStream>, admitted: Admitted) {
        let started = Conn::start(
            self.server,
            socket,
            admitted,
            self.implicit_tls,
            self.ex,
            self.jobs,
            Some(self.stop),
        );
        if let Some(conn) = started {
            conn::run(conn).await;
        }
        drop(self.alive);
    }
}

/// Waits for the PROXY header of a connection from a proxy (readable, or
/// every [`PARTIAL_RETRY`] while part of it sits unread, since readiness
/// here is level-triggered; until its deadline) and has the host judge it:
/// the admitted connection, or `None` once it is refused or closed.
async fn await_header(
    server: &Arc<Server>,
    socket: TcpStream,
    mut waiting: AwaitingHeader,
) -> Option<(Async<TcpStream>, Admitted)> {
    let socket = Async::new_nonblocking(socket).ok()?;
    let deadline = waiting.deadline();
    loop {
        let now = std::time::Instant::now();
        match server.admit_proxied(&mut waiting, socket.get_ref(), now) {
            HeaderStep::Done(Admission::Admitted(admitted)) => return Some((socket, admitted)),
            HeaderStep::Done(Admission::Refused { reply }) => {
                refuse(socket.get_ref(), &reply);
                return None;
            }
            HeaderStep::Done(Admission::Ignored | Admission::AwaitHeader(_)) => return None,
            HeaderStep::Wait { partial } => {
                let until = Timer::at(deadline);
                if partial {
                    Timer::after(PARTIAL_RETRY).or(until).await;
                } else {
                    let readable = async {
                        let _ = socket.readable().await;
                        std::time::Instant::now()
                    };
                    readable.or(until).await;
                }
            }
        }
    }
}
