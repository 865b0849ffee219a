//! `ftp-smol`: the FTP daemon on the smol async runtime, driving the
//! [`ftp_proto`] engine with the host services of [`ftp_host`].
//!
//! * [`Smol::serve`] runs `--threads` threads on one shared
//!   [`smol::Executor`]: the calling thread plus `threads - 1` workers. Each
//!   listener gets an accept task; each connection gets a session task
//!   (module `session`); a transfer that cannot be done at once gets a
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

mod data;
mod session;

use std::fs::File;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

use ftp_host::daemon::{Listener, Runtime, Shutdown};
use ftp_host::limits::OUT_OF_DESCRIPTORS;
use ftp_host::server::Server;
use ftp_host::workers::Workers;
use smol::future::FutureExt;
use smol::{Async, Executor, Timer};

use crate::session::Control;

/// Pause after an accept error that is not about one connection (no
/// descriptors left, out of memory), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

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
                Timer::after(grace).await;
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
        let socket = Async::new(stream)?;
        let ex = Arc::new(Executor::new());
        let jobs = Workers::spawn("ftp-smol", 1, 1)?;
        let admitted = Control::admit(server, socket, false, Arc::downgrade(&ex), jobs, None);
        if let Some(control) = admitted {
            smol::block_on(ex.run(session::run(control)));
        }
        Ok(())
    }
}

/// Accepts connections on `listener` and spawns a session task for each
/// (implicit FTPS sessions, if `implicit_tls`).
///
/// The task keeps one spare descriptor (an open `/dev/null`). When
/// `accept` fails because the process is out of descriptors, the spare is
/// closed, one waiting client is accepted and told `421`, and the spare is
/// reopened, so clients are turned away instead of waiting unanswered in
/// the backlog (sessions already running go on).
async fn accept(
    server: Arc<Server>,
    listener: Async<TcpListener>,
    implicit_tls: bool,
    ex: Weak<Executor<'static>>,
    jobs: Workers,
    alive: smol::channel::Sender<()>,
    stop: smol::channel::Receiver<()>,
) {
    let mut spare = open_spare();
    loop {
        if spare.is_none() {
            spare = open_spare();
        }
        match listener.accept().await {
            Ok((socket, _)) => {
                let Some(executor) = ex.upgrade() else { return };
                let (server, jobs, stop) = (server.clone(), jobs.clone(), Some(stop.clone()));
                let admitted = Control::admit(server, socket, implicit_tls, ex.clone(), jobs, stop);
                let Some(control) = admitted else { continue };
                let alive = alive.clone();
                executor
                    .spawn(async move {
                        session::run(control).await;
                        drop(alive);
                    })
                    .detach();
            }
            Err(e) if data::is_transient(&e) => {}
            Err(e) if out_of_descriptors(&e) && spare.is_some() => {
                drop(spare.take());
                let refused = shed(listener.get_ref());
                spare = open_spare();
                if spare.is_none() {
                    Timer::after(ACCEPT_BACKOFF).await;
                } else if refused {
                    smol::future::yield_now().await;
                } else {
                    // `accept` fails with EMFILE before it looks at the
                    // queue: nobody was waiting. Wait for somebody, rather
                    // than spin (and starve the sessions on this thread).
                    let _ = listener.readable().await;
                }
            }
            Err(e) => {
                log::warn!("accept: {e}");
                Timer::after(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The spare descriptor of an accept task.
fn open_spare() -> Option<File> {
    File::open("/dev/null").ok()
}

fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(
        rustix::io::Errno::from_io_error(e),
        Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE)
    )
}

/// Accepts one waiting client with the descriptor the spare freed, tells
/// it `421` (best effort: a fresh socket's buffer takes one line) and
/// closes it. Returns whether a client was waiting.
fn shed(listener: &TcpListener) -> bool {
    match listener.accept() {
        Ok((stream, peer)) => {
            log::warn!("{peer}: refused: out of file descriptors");
            let mut reply = Vec::new();
            ftp_proto::reply::write_line(&mut reply, 421, b' ', OUT_OF_DESCRIPTORS);
            let _ = stream.set_nonblocking(true);
            let _ = (&stream).write(&reply);
            true
        }
        Err(_) => false,
    }
}
