//! `ftp-mio`: the FTP server on [`mio`], one event loop per thread,
//! driving the sans-IO engine of `ftp_proto` with the host services of
//! `ftp_host`.
//!
//! # Layout
//!
//! * `event_loop`: one [`mio::Poll`] per thread: accepting (with the
//!   host's [`Acceptor`](ftp_host::admission::Acceptor) and admission
//!   step), dispatching readiness, the ready list, timers, shutdown.
//! * `conn`: one session's resources and its drive loop (write replies,
//!   perform intents, read commands, move data).
//! * `control`: the control socket: bounded reads into the engine,
//!   replies out, the polite close.
//! * `data`: passive listeners, active connects, the transfer pump
//!   (`sendfile` or a bounded buffer).
//! * `offload`: the file thread of a transfer whose store may stall.
//! * `workers`: getting the results of blocking [`Job`]s back from the
//!   shared worker pool.
//! * `timers`, `token`, `slab`: deadlines, the meaning of tokens, indices.
//!
//! # What runs where
//!
//! Everything a [`Job`] does runs on the worker pool: password checks
//! (argon2, slow on purpose), stat, directory reads, mkdir, rename, delete,
//! and opening a transfer's file. File I/O on the data path runs inline in
//! the event loop, as nginx does: `sendfile(2)` for binary downloads,
//! `pread` for ASCII downloads and listings, `write` for uploads; each call
//! is bounded (128 KiB) and a connection moves at most 1 MiB per turn, so
//! one transfer cannot starve the others. That is for local files; a
//! source or sink that says its calls may stall
//! ([`ftp_host::storage::Blocking::MayStall`], an object store) is read
//! and written on a thread of its own instead, so it never stalls a loop.
//!
//! Memory per session is bounded: the engine's input and reply buffers
//! (the runtime reads only [`input_capacity`](ftp_proto::Session::input_capacity)
//! bytes), and one transfer buffer of at most a few hundred KiB.
//!
//! [`Job`]: ftp_host::server::Job
#![forbid(unsafe_code)]
#![deny(missing_docs, missing_debug_implementations)]

mod conn;
mod control;
mod data;
mod event_loop;
mod offload;
mod slab;
mod timers;
mod token;
mod workers;

use std::io;
use std::net::TcpStream;
use std::sync::Arc;
use std::thread;

use ftp_host::daemon::{Listener, Runtime, Shutdown};
use ftp_host::server::Server;

use event_loop::EventLoop;
use ftp_host::workers::Workers;

/// The mio runtime: [`Runtime::serve`] runs `config.threads` event loops
/// sharing one worker pool; [`Runtime::serve_one`] runs one loop for one
/// inetd session.
#[derive(Debug)]
pub struct Mio;

impl Runtime for Mio {
    fn serve(server: Arc<Server>, listeners: Vec<Listener>, shutdown: Shutdown) -> io::Result<()> {
        let threads = server.config.threads.max(1);
        let workers = Workers::spawn(
            "ftp-mio",
            Workers::count_for(threads),
            server.config.password_checks,
        )?;
        // Build every loop here, so that setup errors are reported before
        // anything runs.
        let mut loops = Vec::with_capacity(threads);
        for _ in 0..threads {
            let clones = listeners
                .iter()
                .map(|l| {
                    Ok(Listener {
                        socket: l.socket.try_clone()?,
                        implicit_tls: l.implicit_tls,
                    })
                })
                .collect::<io::Result<Vec<_>>>()?;
            loops.push(EventLoop::new(
                server.clone(),
                clones,
                workers.clone(),
                Some(shutdown.clone()),
            )?);
        }
        // Each loop holds its own clones; the listening sockets close when
        // the last loop drops them.
        drop(listeners);
        drop(workers);
        let mut handles = Vec::with_capacity(threads);
        for (n, event_loop) in loops.into_iter().enumerate() {
            let stop = shutdown.clone();
            let spawned = thread::Builder::new()
                .name(format!("ftp-mio-{n}"))
                .spawn(move || {
                    let result = event_loop.run();
                    if let Err(e) = &result {
                        log::error!("event loop {n}: {e}");
                        // One loop failing stops the server.
                        stop.trigger();
                    }
                    result
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    shutdown.trigger();
                    join_all(handles)?;
                    return Err(e);
                }
            }
        }
        join_all(handles)
    }

    fn serve_one(server: Arc<Server>, stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        let local = stream.local_addr()?;
        let peer = stream.peer_addr()?;
        let workers = Workers::spawn("ftp-mio", 1, 1)?;
        let mut event_loop = EventLoop::new(server, Vec::new(), workers, None)?;
        event_loop.adopt(mio::net::TcpStream::from_std(stream), local, peer)?;
        event_loop.run()
    }
}

/// Waits for every loop; the first error wins.
fn join_all(handles: Vec<thread::JoinHandle<io::Result<()>>>) -> io::Result<()> {
    let mut result = Ok(());
    for handle in handles {
        let outcome = handle
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("an event loop panicked")));
        if result.is_ok() {
            result = outcome;
        }
    }
    result
}
