//! Off-loop file work for the transfers whose source or sink may stall
//! ([`Blocking::MayStall`](ftp_host::storage::Blocking::MayStall): a store
//! where every read or write is a network round trip). Local files never
//! come here; their calls stay inline on the loop (see `data`).
//!
//! Such a transfer's file side moves to a thread of its own, its *file
//! thread*, as soon as it is opened; the event loop keeps the socket. The
//! two talk over channels: the loop asks for the next chunk to send, or
//! hands over a chunk it received, and the thread answers. After each
//! answer the thread writes a byte to a pipe whose read end is registered
//! with the loop under the transfer's data token, so an answer wakes the
//! loop as socket readiness does, and the loop's usual drive picks it up.
//!
//! Memory and pace: one chunk is read ahead of the socket, and at most
//! [`WRITES_AHEAD`] received chunks wait for the store; the loop stops
//! reading the socket meanwhile, so a slow store slows the client down
//! (TCP flow control) instead of filling memory.
//!
//! Ending early (an abort, a broken connection, the end of the session):
//! dropping the loop's side closes the channel, and the file thread drops
//! the source, or aborts the upload, there, then ends. A thread stuck in a
//! store that never answers stays stuck, but alone: no loop waits for it.
//!
//! Why a thread per transfer rather than the shared worker pool: a transfer
//! calls its store once per chunk for as long as it runs, and the pool is
//! sized for short jobs (logins, stat, opening files); a few slow transfers
//! would hold every worker and stall every session's logins and file
//! operations.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread;

use ftp_host::server::TransferEnd;
use ftp_host::transfer::{Sink, Source};
use ftp_proto::FsError;
use mio::unix::pipe;
use mio::{Interest, Registry, Token};

/// Received chunks that may wait for the file thread at once.
pub(crate) const WRITES_AHEAD: usize = 2;

/// The name of file threads (and of threads that discard a file side).
const THREAD_NAME: &str = "ftp-mio-file";

/// The loop's side of a transfer's file thread.
#[derive(Debug)]
pub(crate) enum Offload {
    /// A download (or listing): the thread fills chunks from the source.
    Send(Filler),
    /// An upload: the thread writes chunks into the sink.
    Receive(Writer),
}

impl Offload {
    /// Moves `end` to a new file thread that reads or writes chunks of at
    /// most `chunk` bytes, and registers the thread's wake-up pipe with
    /// `registry` under `token` (the transfer's data token). On failure the
    /// file side is given up, off the loop as far as a thread can be had.
    pub(crate) fn start(
        end: TransferEnd,
        chunk: usize,
        registry: &Registry,
        token: Token,
    ) -> io::Result<Offload> {
        let (bell, mut wake) = match pipe::new() {
            Ok(pair) => pair,
            Err(e) => {
                discard(end);
                return Err(e);
            }
        };
        if let Err(e) = registry.register(&mut wake, token, Interest::READABLE) {
            discard(end);
            return Err(e);
        }
        let spawn = thread::Builder::new().name(THREAD_NAME.into());
        match end {
            TransferEnd::Send(source) => {
                let (requests, todo) = mpsc::channel();
                let (done, replies) = mpsc::channel();
                let spawned = spawn.spawn(move || fill_chunks(source, chunk, &todo, &done, &bell));
                if let Err(e) = spawned {
                    let _ = registry.deregister(&mut wake);
                    return Err(e);
                }
                Ok(Offload::Send(Filler {
                    requests,
                    replies,
                    wake,
                    asked: false,
                    spare: Vec::new(),
                }))
            }
            TransferEnd::Receive(sink) => {
                let (requests, todo) = mpsc::channel();
                let (done, replies) = mpsc::channel();
                let spawned = spawn.spawn(move || write_chunks(sink, &todo, &done, &bell));
                if let Err(e) = spawned {
                    let _ = registry.deregister(&mut wake);
                    return Err(e);
                }
                Ok(Offload::Receive(Writer {
                    requests,
                    replies,
                    wake,
                    chunk,
                    in_flight: 0,
                    finishing: false,
                    spare: Vec::new(),
                }))
            }
        }
    }

    /// Unregisters the wake-up pipe and lets the file thread go: it drops
    /// the source, or aborts an upload that was not committed, and ends.
    pub(crate) fn close(self, registry: &Registry) {
        let mut wake = match self {
            Offload::Send(filler) => filler.wake,
            Offload::Receive(writer) => writer.wake,
        };
        let _ = registry.deregister(&mut wake);
    }
}

/// The loop's side of a download's file thread.
#[derive(Debug)]
pub(crate) struct Filler {
    /// Empty buffers to fill.
    requests: Sender<Vec<u8>>,
    /// Filled buffers and what `fill` said.
    replies: Receiver<(Vec<u8>, io::Result<usize>)>,
    wake: pipe::Receiver,
    /// A buffer is with the thread.
    asked: bool,
    /// The buffer to give the thread next.
    spare: Vec<u8>,
}

impl Filler {
    /// The next chunk of the source, swapped into `buf` (empty; its
    /// allocation goes back to the thread): `Some(Ok(n))` for `n` bytes
    /// (`0` at the end), `Some(Err(_))` when reading failed, `None` while
    /// the thread is still reading (its answer wakes the loop). On a chunk,
    /// asks for the one after it at once, so the store is read while the
    /// socket is written.
    pub(crate) fn next(&mut self, buf: &mut Vec<u8>) -> Option<io::Result<usize>> {
        if !self.asked {
            self.ask();
        }
        drain(&self.wake);
        match self.replies.try_recv() {
            Ok((data, result)) => {
                self.asked = false;
                self.spare = std::mem::replace(buf, data);
                if matches!(result, Ok(n) if n > 0) {
                    self.ask();
                }
                Some(result)
            }
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => Some(Err(thread_gone())),
        }
    }

    fn ask(&mut self) {
        let buf = std::mem::take(&mut self.spare);
        self.asked = self.requests.send(buf).is_ok();
    }
}

/// What the loop asks of an upload's file thread.
#[derive(Debug)]
enum ToWriter {
    /// Write these bytes.
    Write(Vec<u8>),
    /// The data is complete: finish and commit the upload.
    Finish,
}

/// What an upload's file thread answers.
#[derive(Debug)]
enum FromWriter {
    /// The buffer of a [`ToWriter::Write`], and how writing it went.
    Wrote(Vec<u8>, Result<(), FsError>),
    /// How [`Sink::finish`] went.
    Finished(Result<u64, FsError>),
}

/// The loop's side of an upload's file thread.
#[derive(Debug)]
pub(crate) struct Writer {
    requests: Sender<ToWriter>,
    replies: Receiver<FromWriter>,
    wake: pipe::Receiver,
    /// The size of the buffers handed out.
    chunk: usize,
    /// Chunks sent and not yet written.
    in_flight: usize,
    /// [`ToWriter::Finish`] was sent.
    finishing: bool,
    /// Written buffers, for the next reads.
    spare: Vec<Vec<u8>>,
}

impl Writer {
    /// Takes the file thread's answers: `Some(Err(_))` when a write (or
    /// the commit) failed, `Some(Ok(()))` once the upload is committed,
    /// `None` while there is nothing to report.
    pub(crate) fn collect(&mut self) -> Option<Result<(), FsError>> {
        drain(&self.wake);
        loop {
            match self.replies.try_recv() {
                Ok(FromWriter::Wrote(buf, Ok(()))) => {
                    self.in_flight = self.in_flight.saturating_sub(1);
                    if self.spare.len() < WRITES_AHEAD {
                        self.spare.push(buf);
                    }
                }
                Ok(FromWriter::Wrote(_, Err(e))) => return Some(Err(e)),
                Ok(FromWriter::Finished(result)) => return Some(result.map(drop)),
                Err(TryRecvError::Empty) => return None,
                Err(TryRecvError::Disconnected) => return Some(Err(FsError::Other)),
            }
        }
    }

    /// Whether the thread takes another chunk now (else the loop waits
    /// for its answer, which wakes it).
    pub(crate) fn has_room(&self) -> bool {
        !self.finishing && self.in_flight < WRITES_AHEAD
    }

    /// A buffer of the chunk size to read the socket into.
    pub(crate) fn buffer(&mut self) -> Vec<u8> {
        let mut buf = self.spare.pop().unwrap_or_default();
        buf.resize(self.chunk, 0);
        buf
    }

    /// Takes back a [`buffer`](Self::buffer) that was not used.
    pub(crate) fn give_back(&mut self, buf: Vec<u8>) {
        self.spare.push(buf);
    }

    /// Hands `data` (all of it is data) to the thread to write.
    pub(crate) fn write(&mut self, data: Vec<u8>) -> Result<(), FsError> {
        self.requests
            .send(ToWriter::Write(data))
            .map_err(|_| FsError::Other)?;
        self.in_flight += 1;
        Ok(())
    }

    /// The data is complete: the thread writes what it holds and commits
    /// the upload; [`collect`](Self::collect) reports how that went.
    pub(crate) fn finish(&mut self) -> Result<(), FsError> {
        self.requests
            .send(ToWriter::Finish)
            .map_err(|_| FsError::Other)?;
        self.finishing = true;
        Ok(())
    }
}

/// A download's file thread: fills each buffer the loop sends until the
/// loop hangs up, then drops the source.
fn fill_chunks(
    mut source: Source,
    chunk: usize,
    todo: &Receiver<Vec<u8>>,
    done: &Sender<(Vec<u8>, io::Result<usize>)>,
    bell: &pipe::Sender,
) {
    while let Ok(mut buf) = todo.recv() {
        buf.clear();
        let result = source.fill(&mut buf, chunk);
        if done.send((buf, result)).is_err() {
            break;
        }
        ring(bell);
    }
}

/// An upload's file thread: writes each chunk the loop sends, commits on
/// [`ToWriter::Finish`], and aborts the upload if the loop hangs up first.
fn write_chunks(
    mut sink: Sink,
    todo: &Receiver<ToWriter>,
    done: &Sender<FromWriter>,
    bell: &pipe::Sender,
) {
    while let Ok(request) = todo.recv() {
        let reply = match request {
            ToWriter::Write(buf) => {
                let result = sink.write(&buf);
                FromWriter::Wrote(buf, result)
            }
            ToWriter::Finish => {
                let _ = done.send(FromWriter::Finished(sink.finish()));
                ring(bell);
                return;
            }
        };
        if done.send(reply).is_err() {
            break;
        }
        ring(bell);
    }
    sink.abort();
}

/// Gives up a file side that may stall without making the loop wait: a
/// thread drops the source, or aborts the upload.
pub(crate) fn discard(end: TransferEnd) {
    let spawned = thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || {
            if let TransferEnd::Receive(sink) = end {
                sink.abort();
            }
        });
    if let Err(e) = spawned {
        // The closure, and the file side with it, was dropped here.
        log::warn!("no thread to give up a transfer's file on: {e}");
    }
}

/// Wakes the loop: one byte into the pipe. A full pipe already wakes it.
fn ring(bell: &pipe::Sender) {
    let mut bell = bell;
    let _ = bell.write(&[1]);
}

/// Empties the wake-up pipe, so that the next answer makes it readable
/// again (it is registered edge-triggered).
fn drain(wake: &pipe::Receiver) {
    let mut wake = wake;
    let mut scratch = [0u8; 64];
    loop {
        match wake.read(&mut scratch) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

fn thread_gone() -> io::Error {
    io::Error::other("the transfer's file thread ended")
}
