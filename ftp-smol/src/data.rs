//! Data connections: passive listeners, active connects, and the transfer
//! pump that moves a [`Source`] or [`Sink`] over the connection.
//!
//! A passive listener is only bound at `EPSV`/`PASV`; the transfer that
//! uses it accepts the client's connection, which waits in the listen
//! queue until then.
//!
//! A transfer first gets what can be done at once ([`start_now`], in the
//! session's task): a clear download whose client is already connected
//! sends with `sendfile` until the socket is full, and a small file is done
//! then and there, with no task, no readiness registration and no message.
//! The rest runs as a task of its own on the shared executor, apart from
//! the session's control task, so it can run on another thread and can be
//! cancelled by dropping it. It reports [`TransferEvent::Connected`]
//! (unless `start_now` connected) and then exactly one final event
//! ([`TransferEvent::Finished`] or [`TransferEvent::Failed`]) on the
//! session's channel. The final event is sent in the task's last step, so
//! "the task completed" and "the final event is in the channel" are the
//! same thing (the session relies on this when it aborts a transfer).
//!
//! # Blocking file work
//!
//! What follows is for local files, whose sources and sinks say their
//! calls are bounded ([`Blocking::Bounded`]). A source or sink that says
//! its calls may stall ([`Blocking::MayStall`]: a store whose reads and
//! writes are network round trips) is never called on the executor: every
//! `fill` runs on the blocking pool (like a listing's), uploads do no
//! splicing, and giving one up (an abort, a failed connection, a cancelled
//! task dropping it) happens on the blocking pool too ([`give_up`],
//! `OffExecutor`).
//!
//! * Binary downloads use `sendfile(2)` only when the socket is writable
//!   (async-io's `write_with`). A call sends at most what the socket buffer
//!   takes, from the page cache; it is done inline, like a socket write.
//! * Buffered downloads of files (ASCII mode, or where `sendfile` does not
//!   apply) read one chunk with a single `pread`: also inline.
//! * Listings read directories and stat up to 1024 entries per batch, which
//!   can take long on a cold or network file system: every `fill` of a
//!   listing runs on the blocking pool (`smol::unblock`).
//! * Uploads write on the blocking pool, since a disk write may stall on
//!   dirty-page throttling (and so does the commit). A clear binary upload
//!   to a local file waits for the socket to turn readable, then splices
//!   into the file there, with no copy through user space
//!   ([`Sink::splice_from`]), for as long as data keeps coming, up to a
//!   bound in bytes and time (`splice_batch`); other uploads are
//!   read into a buffer and written in batches of [`SINK_BUFFER`] bytes.
//!
//! Cancelling a transfer drops its [`Sink`]; an upload dropped without being
//! committed is aborted (see `ftp_host::storage::WriteObject`), also when it
//! is dropped on a blocking-pool thread after the task is gone.
//!
//! # TLS
//!
//! A `PROT P` transfer does the server side of a TLS handshake (through
//! [`TlsConn`], shared with the mio daemon) before it reports
//! [`TransferEvent::Connected`]; a handshake that fails, or that does not
//! resume the control connection's TLS session when that is required, ends
//! the transfer with [`TransferError::NoConnection`]. Downloads then go
//! through the buffered path (`sendfile` cannot encrypt), and the end of
//! the data is `close_notify` followed by our FIN.
//!
//! # Bandwidth limits
//!
//! A transfer with a [`RateLimit`] ([`Limit`]) waits on a timer until its
//! bucket allows a portion, then moves at most that: one `sendfile` call,
//! one write, one read, or one splice batch bounded by it. An upload that
//! waits reads nothing, so TCP slows the client down. An unlimited
//! transfer has no bucket and never looks at the clock.
//!
//! # Fairness
//!
//! A fast peer keeps a socket ready, so a transfer loop may never have to
//! wait; it yields to the executor every [`YIELD_EVERY`] chunks so other
//! sessions on the same thread keep running.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ftp_host::active::ActiveFrom;
use ftp_host::admission::accept_nonblocking;
use ftp_host::passive::{HeaderWaits, KeptListener, PassivePorts, Taken, take_allowed};
use ftp_host::proxy::{PARTIAL_RETRY, ProxySources};
use ftp_host::rate::RateLimit;
use ftp_host::server::TransferEnd;
use ftp_host::storage::{Blocking, fs_error_from_io};
use ftp_host::tls::{Handshake, TlsConn};
use ftp_host::transfer::{SENDFILE_CHUNK, SINK_BUFFER, Sink, Source, is_connection_error};
use ftp_proto::{FsError, IntentId, TransferError, TransferEvent};
use smol::channel::Sender;
use smol::future::FutureExt;
use smol::{Async, Timer};

use crate::conn::Msg;

/// Bytes read from a source per buffered chunk.
const FILL_CHUNK: usize = 64 * 1024;

/// The chunk of a source whose reads may stall (an object store), read on
/// the blocking pool: larger, so that each hand-off moves more.
const STALL_FILL_CHUNK: usize = 512 * 1024;
/// Chunks moved between two yields to the executor.
pub const YIELD_EVERY: u32 = 16;

/// A bound passive listener, waiting for the transfer that will use it.
/// Nothing accepts on it before that transfer starts: the client's
/// connection waits in the listen queue. Dropping it closes the listener
/// (and resets connections nobody took).
#[derive(Debug)]
pub struct Passive {
    listener: TcpListener,
    /// The only address a data connection is taken from.
    allowed: IpAddr,
    /// Data connections from proxies whose PROXY headers have not fully
    /// arrived.
    proxied: HeaderWaits<TcpStream>,
    /// The listener's address.
    addr: SocketAddr,
}

/// Makes a bound, non-blocking passive `listener` on `addr` the data
/// endpoint for connections from `allowed` only (through one of
/// `proxies`: by its PROXY header). Returns its address.
pub fn listen(
    listener: TcpListener,
    addr: SocketAddr,
    allowed: IpAddr,
    proxies: Option<Arc<ProxySources>>,
) -> (SocketAddr, Passive) {
    let proxied = HeaderWaits::new(proxies);
    (
        addr,
        Passive {
            listener,
            addr,
            allowed,
            proxied,
        },
    )
}

impl Passive {
    /// Its transfer took its connection: gives the listener to `ports` to
    /// keep for the session's next passive command (`None`: enough are
    /// kept already, and it closes).
    pub fn into_kept(self, ports: &PassivePorts) -> Option<KeptListener> {
        ports.keep(self.listener, self.addr)
    }

    /// Takes a connection from the allowed address that is already
    /// waiting, without waiting; `Ok(None)` when there is none (yet).
    /// Connections from other addresses are closed.
    fn accept_now(&mut self) -> io::Result<Option<TcpStream>> {
        take_waiting(&self.listener, self.allowed, &mut self.proxied)
    }

    /// Waits for a connection from the allowed address. While a data
    /// connection from a proxy waits for the rest of its PROXY header, the
    /// host looks again every [`PARTIAL_RETRY`] (its socket, with unread
    /// bytes, stays readable), until it decides.
    async fn accept(self) -> io::Result<Async<TcpStream>> {
        let Passive {
            listener,
            allowed,
            mut proxied,
            ..
        } = self;
        if let Some(stream) = take_waiting(&listener, allowed, &mut proxied)? {
            return Async::new_nonblocking(stream);
        }
        let listener = Async::new_nonblocking(listener)?;
        loop {
            if proxied.is_empty() {
                listener.readable().await?;
            } else {
                let again = async {
                    Timer::after(PARTIAL_RETRY).await;
                    Ok(())
                };
                listener.readable().or(again).await?;
            }
            if let Some(stream) = take_waiting(listener.get_ref(), allowed, &mut proxied)? {
                return Async::new_nonblocking(stream);
            }
        }
    }
}

/// The host's [`take_allowed`] on a std listener, with no bound: the
/// connections it closes are ones the kernel already queued.
fn take_waiting(
    listener: &TcpListener,
    allowed: IpAddr,
    proxied: &mut HeaderWaits<TcpStream>,
) -> io::Result<Option<TcpStream>> {
    let now = Instant::now();
    match take_allowed(
        || accept_nonblocking(listener),
        allowed,
        proxied,
        usize::MAX,
        now,
    )? {
        Taken::Connection(stream) => Ok(Some(stream)),
        Taken::Empty | Taken::Busy => Ok(None),
    }
}

/// Where a transfer gets its data connection.
#[derive(Debug)]
pub enum Endpoint {
    /// The connection of a passive listener (`None`: no such listener).
    Passive(Option<Passive>),
    /// Connect out to the client (PORT/EPRT), from the control
    /// connection's local address.
    Active(SocketAddr, ActiveFrom),
}

impl Endpoint {
    async fn connect(self) -> io::Result<Async<TcpStream>> {
        match self {
            Endpoint::Passive(Some(passive)) => passive.accept().await,
            Endpoint::Passive(None) => Err(io::ErrorKind::NotConnected.into()),
            Endpoint::Active(addr, from) => {
                let stream = Async::new(ftp_host::active::connect(from, addr)?)?;
                stream.writable().await?;
                stream.get_ref().take_error()?.map_or(Ok(stream), Err)
            }
        }
    }
}

/// How far [`start_now`] got.
#[derive(Debug)]
pub enum Start {
    /// Nothing could be done without waiting: run [`transfer`] from the
    /// beginning.
    Wait(Endpoint, TransferEnd),
    /// Connected (report [`TransferEvent::Connected`]) and `sent` bytes
    /// sent: run [`resume`] for the rest.
    Connected {
        /// The data connection, non-blocking.
        socket: TcpStream,
        /// The file, positioned after what was sent.
        source: Source,
        /// Bytes already sent.
        sent: u64,
    },
    /// Connected and done: report [`TransferEvent::Connected`], then this.
    Done(TransferEvent),
}

/// Calls to `sendfile` a transfer may make in the session's task before it
/// moves to a task of its own.
const SEND_NOW_CALLS: u32 = 4;

/// Does what a clear download can do at once, in the session's task: a
/// small file whose client is already connected to the passive listener is
/// sent with no task, no readiness registration and no message (the
/// common case of a client fetching many small files). Anything else, or
/// whatever is left when the socket is full, goes to a transfer task.
///
/// A throttled download sends only what `limit` allows now.
///
/// The passive listener, once its connection is taken, goes to `ports` to
/// be kept in `kept` for the session's next passive command.
pub fn start_now(
    endpoint: Endpoint,
    tls: bool,
    end: TransferEnd,
    limit: &mut Limit,
    ports: &PassivePorts,
    kept: &mut Option<Box<KeptListener>>,
) -> Start {
    let (mut passive, mut source) = match (endpoint, tls, end) {
        (Endpoint::Passive(Some(passive)), false, TransferEnd::Send(source))
            if source.blocking() == Blocking::Bounded =>
        {
            (passive, source)
        }
        (endpoint, _, end) => return Start::Wait(endpoint, end),
    };
    // An accept error is the transfer task's to report.
    let Ok(Some(socket)) = passive.accept_now() else {
        let endpoint = Endpoint::Passive(Some(passive));
        return Start::Wait(endpoint, TransferEnd::Send(source));
    };
    *kept = passive.into_kept(ports).map(Box::new);
    let mut sent = 0u64;
    for _ in 0..SEND_NOW_CALLS {
        let max = limit.allowance_now(SENDFILE_CHUNK);
        if max == 0 {
            break;
        }
        match source.sendfile_to(socket.as_fd(), max) {
            Ok(Some(0)) => {
                // The socket closes (our FIN) as this returns.
                drop(socket);
                return Start::Done(TransferEvent::Finished { bytes: sent });
            }
            Ok(Some(n)) => {
                limit.consume(n);
                sent += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(None) => break,
            Err(e) => return Start::Done(send_failed(&e)),
        }
    }
    Start::Connected {
        socket,
        source,
        sent,
    }
}

/// A data connection, clear or TLS.
struct DataStream {
    socket: Async<TcpStream>,
    tls: Option<TlsConn>,
}

impl DataStream {
    /// Runs the TLS handshake, if the connection is TLS.
    async fn handshake(&mut self) -> io::Result<()> {
        let Some(tls) = &mut self.tls else {
            return Ok(());
        };
        loop {
            match tls.handshake(&mut self.socket.get_ref())? {
                Handshake::Done => return Ok(()),
                Handshake::WantRead => self.socket.readable().await?,
                Handshake::WantWrite => self.socket.writable().await?,
            }
        }
    }

    /// Reads some bytes; `Ok(0)` at the end of the data.
    async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let DataStream { socket, tls } = self;
        match tls {
            None => socket.read_with(|mut s| io::Read::read(&mut s, buf)).await,
            Some(tls) => socket.read_with(|mut s| tls.read(&mut s, buf)).await,
        }
    }

    /// Writes all of `data`.
    async fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        let DataStream { socket, tls } = self;
        while !data.is_empty() {
            let n = match tls {
                None => {
                    socket
                        .write_with(|mut s| io::Write::write(&mut s, data))
                        .await?
                }
                Some(tls) => socket.write_with(|mut s| tls.write(&mut s, data)).await?,
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            data = &data[n..];
        }
        Ok(())
    }

    /// Ends the data: `close_notify` (for TLS), then our FIN.
    async fn finish(&mut self) -> io::Result<()> {
        let DataStream { socket, tls } = self;
        if let Some(tls) = tls {
            tls.close();
            socket.write_with(|mut s| tls.flush(&mut s)).await?;
        }
        // The data is out; a peer that already closed does not matter.
        let _ = socket.get_ref().shutdown(Shutdown::Write);
        Ok(())
    }
}

/// Runs transfer `id`: gets the data connection (with a TLS handshake if
/// `tls` is given), moves the data, closes the connection and reports to
/// the session.
pub async fn transfer(
    id: IntentId,
    endpoint: Endpoint,
    tls: Option<TlsConn>,
    end: TransferEnd,
    limit: Limit,
    tx: Sender<Msg>,
) {
    let connected = match endpoint.connect().await {
        Ok(socket) => {
            let mut stream = DataStream { socket, tls };
            match stream.handshake().await {
                Ok(()) => Ok(stream),
                Err(e) => {
                    log::warn!("transfer {id:?}: data connection TLS: {e}");
                    Err(e)
                }
            }
        }
        Err(e) => Err(e),
    };
    let event = match connected {
        Err(e) => {
            log::debug!("transfer {id:?}: no data connection: {e}");
            give_up(end);
            TransferEvent::Failed(TransferError::NoConnection)
        }
        Ok(stream) => {
            let _ = tx.send(Msg::Transfer(id, TransferEvent::Connected)).await;
            let progress = Progress::new(id, tx.clone());
            match end {
                TransferEnd::Send(source) => send(stream, source, progress, 0, limit).await,
                TransferEnd::Receive(sink) => receive(stream, sink, progress, limit).await,
            }
        }
    };
    // The last step: the session drops this task once it has the event.
    let _ = tx.send(Msg::Transfer(id, event)).await;
}

/// Runs the rest of download `id`, which [`start_now`] connected and
/// began (without TLS), and reports its final event to the session.
pub async fn resume(
    id: IntentId,
    socket: TcpStream,
    source: Source,
    sent: u64,
    limit: Limit,
    tx: Sender<Msg>,
) {
    let event = match Async::new_nonblocking(socket) {
        Err(e) => lost(&e),
        Ok(socket) => {
            let stream = DataStream { socket, tls: None };
            send(stream, source, Progress::new(id, tx.clone()), sent, limit).await
        }
    };
    // The last step, as in `transfer`.
    let _ = tx.send(Msg::Transfer(id, event)).await;
}

/// Sends `source` (a file or a listing; `sent` bytes of it already went)
/// and closes the connection.
async fn send(
    mut stream: DataStream,
    source: Source,
    mut progress: Progress,
    sent: u64,
    mut limit: Limit,
) -> TransferEvent {
    let mut bytes = sent;
    let may_stall = source.blocking().may_stall();
    // `sendfile` cannot encrypt, and needs a local file.
    let mut zero_copy = stream.tls.is_none() && !may_stall;
    // Listings stat whole batches of entries; a store that may stall is
    // never read on the executor.
    let off_executor = source.is_listing() || may_stall;
    let mut held = OffExecutor::new(source, may_stall);
    let mut buf = Vec::with_capacity(FILL_CHUNK);
    // Off the executor: the buffer being filled, and the fill under way.
    let mut spare = Vec::new();
    let mut ahead = None;
    let mut fair = Fairness::default();
    loop {
        fair.tick().await;
        if zero_copy {
            let Some(source) = held.get_mut() else {
                return TransferEvent::Failed(TransferError::Fs(FsError::Other));
            };
            let max = limit.allowance(SENDFILE_CHUNK).await;
            let sent = stream
                .socket
                .write_with(|s| source.sendfile_to(s.as_fd(), max))
                .await;
            match sent {
                Ok(Some(0)) => break,
                Ok(Some(n)) => {
                    limit.consume(n);
                    bytes += n as u64;
                    progress.report(bytes);
                    continue;
                }
                Ok(None) => zero_copy = false,
                Err(e) => return send_failed(&e),
            }
        }
        buf.clear();
        let filled = if off_executor {
            // The next chunk is read on the blocking pool while this one
            // is written: a store's round trips overlap the socket's.
            let task = match ahead.take() {
                Some(task) => task,
                None => match held.take() {
                    Some(source) => fill_off(source, std::mem::take(&mut spare)),
                    None => return TransferEvent::Failed(TransferError::Fs(FsError::Other)),
                },
            };
            let (source, filled_buf, r) = task.await;
            spare = std::mem::replace(&mut buf, filled_buf);
            if matches!(r, Ok(n) if n > 0) {
                ahead = Some(fill_off(source, std::mem::take(&mut spare)));
            } else {
                held.put(source);
            }
            r
        } else {
            match held.take() {
                Some(mut source) => {
                    let r = source.fill(&mut buf, FILL_CHUNK);
                    held.put(source);
                    r
                }
                None => return TransferEvent::Failed(TransferError::Fs(FsError::Other)),
            }
        };
        match filled {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) => return TransferEvent::Failed(TransferError::Fs(fs_error_from_io(&e))),
        }
        // Unlimited: all at once; throttled: a portion at a time.
        let mut at = 0;
        while at < buf.len() {
            let n = limit.allowance(buf.len() - at).await;
            if let Err(e) = stream.write_all(&buf[at..at + n]).await {
                return lost(&e);
            }
            limit.consume(n);
            at += n;
            bytes += n as u64;
            progress.report(bytes);
        }
    }
    // Closing the write side first sends everything queued, then FIN.
    if let Err(e) = stream.finish().await {
        return lost(&e);
    }
    drop(stream);
    TransferEvent::Finished { bytes }
}

/// Fills `buf` (emptied first) with the next chunk of `source` on the
/// blocking pool. If the transfer is dropped meanwhile, the source is
/// dropped there too, never on the executor.
fn fill_off(
    mut source: Source,
    mut buf: Vec<u8>,
) -> smol::Task<(Source, Vec<u8>, std::io::Result<usize>)> {
    smol::unblock(move || {
        buf.clear();
        let chunk = if source.blocking().may_stall() {
            STALL_FILL_CHUNK
        } else {
            FILL_CHUNK
        };
        let r = source.fill(&mut buf, chunk);
        (source, buf, r)
    })
}

/// Set once a transfer's task is dropped (cancelled by `ABOR`, a timeout
/// or the end of the session). Work the task left running on the blocking
/// pool goes on after that; it must then abort the upload rather than
/// commit it when it sees the end of the data.
#[derive(Clone, Debug, Default)]
struct Abandoned(Arc<AtomicBool>);

impl Abandoned {
    /// Commits the upload, unless its task is gone: then aborts it.
    fn commit(&self, sink: Sink) -> Result<(), FsError> {
        if self.0.load(Ordering::SeqCst) {
            sink.abort();
            return Err(FsError::Other);
        }
        sink.finish().map(drop)
    }
}

/// Sets its [`Abandoned`] when dropped with the task's future.
struct AbandonOnDrop(Abandoned);

impl Drop for AbandonOnDrop {
    fn drop(&mut self) {
        (self.0).0.store(true, Ordering::SeqCst);
    }
}

/// Receives into `sink` until the peer closes, then commits the upload.
async fn receive(
    mut stream: DataStream,
    sink: Sink,
    mut progress: Progress,
    mut limit: Limit,
) -> TransferEvent {
    let abandoned = Abandoned::default();
    let _armed = AbandonOnDrop(abandoned.clone());
    let may_stall = sink.blocking().may_stall();
    let (sink, mut bytes) = match stream.tls {
        // Splicing needs a local file.
        None if !may_stall => {
            match splice_receive(&stream.socket, sink, &mut progress, &abandoned, &mut limit).await
            {
                Spliced::Ended(event) => return event,
                Spliced::Unsupported(sink, bytes) => (sink, bytes),
            }
        }
        _ => (sink, 0),
    };
    let mut sink = OffExecutor::new(sink, may_stall);
    let mut buf = vec![0u8; SINK_BUFFER];
    let mut filled = 0;
    let mut fair = Fairness::default();
    loop {
        fair.tick().await;
        let max = limit.allowance(buf.len() - filled).await;
        let n = match stream.read(&mut buf[filled..filled + max]).await {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // Dropping the sink aborts the upload (off the executor
                // if it may stall).
                drop(sink);
                return lost(&e);
            }
        };
        limit.consume(n);
        filled += n;
        bytes += n as u64;
        progress.report(bytes);
        if n != 0 && filled < buf.len() {
            continue;
        }
        let Some(mut owned) = sink.take() else { break };
        let last = n == 0;
        let abandoned = abandoned.clone();
        let (back, b, result) = smol::unblock(move || {
            let result = owned.write(&buf[..filled]);
            if result.is_err() {
                owned.abort();
                return (None, buf, result);
            }
            if last {
                return (None, buf, abandoned.commit(owned));
            }
            (Some(owned), buf, result)
        })
        .await;
        if let Some(back) = back {
            sink.put(back);
        }
        (buf, filled) = (b, 0);
        if let Err(e) = result {
            return TransferEvent::Failed(TransferError::Fs(e));
        }
        if last {
            break;
        }
    }
    // A TLS client waits for our close_notify (Python's `unwrap`).
    let _ = stream.finish().await;
    TransferEvent::Finished { bytes }
}

/// A source or sink held by a transfer's task across its awaits. If the
/// task is cancelled (dropped) while it holds one whose calls may stall,
/// the drop (which closes the source, or aborts the upload) runs on the
/// blocking pool rather than on the executor.
struct OffExecutor<T: Send + 'static> {
    value: Option<T>,
    may_stall: bool,
}

impl<T: Send + 'static> OffExecutor<T> {
    /// Holds `value`; `may_stall` says where it is dropped.
    fn new(value: T, may_stall: bool) -> Self {
        OffExecutor {
            value: Some(value),
            may_stall,
        }
    }

    /// Takes the value out (to move it to the blocking pool and back).
    fn take(&mut self) -> Option<T> {
        self.value.take()
    }

    /// The value, to use in place.
    fn get_mut(&mut self) -> Option<&mut T> {
        self.value.as_mut()
    }

    /// Holds the value again.
    fn put(&mut self, value: T) {
        self.value = Some(value);
    }
}

impl<T: Send + 'static> Drop for OffExecutor<T> {
    fn drop(&mut self) {
        if let Some(value) = self.value.take() {
            if self.may_stall {
                smol::unblock(move || drop(value)).detach();
            }
        }
    }
}

/// Gives up the file side of a transfer that will not run: aborts an
/// upload, closes a source; on the blocking pool when its calls may stall.
pub fn give_up(end: TransferEnd) {
    let may_stall = match &end {
        TransferEnd::Send(source) => source.blocking().may_stall(),
        TransferEnd::Receive(sink) => sink.blocking().may_stall(),
    };
    let abort = move || {
        if let TransferEnd::Receive(sink) = end {
            sink.abort();
        }
    };
    if may_stall {
        smol::unblock(abort).detach();
    } else {
        abort();
    }
}

/// How [`splice_receive`] ended.
enum Spliced {
    /// The upload is over (committed, or failed).
    Ended(TransferEvent),
    /// Splicing does not apply to this upload; receive the ordinary way
    /// into the sink, which holds this many bytes already.
    Unsupported(Sink, u64),
}

/// What one batch of [`splice_receive`] on the blocking pool ended with;
/// the sink comes back unless the upload is over.
enum Batch {
    /// The socket is empty for now, or the batch is big enough.
    More(Sink),
    /// The peer closed and the upload was committed (or failed to).
    End(Result<(), FsError>),
    /// The data connection broke.
    Lost(Sink, io::Error),
    /// Writing the file failed.
    File(Sink, FsError),
    /// Splicing does not apply.
    Unsupported(Sink),
}

/// Binary upload to a local file: each time the socket turns readable,
/// moves what it holds into the file with `splice(2)` (see
/// [`Sink::splice_from`]) on the blocking pool, in batches (see
/// [`splice_batch`]), so a slow disk never stalls the executor.
async fn splice_receive(
    socket: &Async<TcpStream>,
    sink: Sink,
    progress: &mut Progress,
    abandoned: &Abandoned,
    limit: &mut Limit,
) -> Spliced {
    // The blocking pool needs a descriptor of its own (the same socket).
    let Ok(mut clone) = socket.get_ref().try_clone() else {
        return Spliced::Unsupported(sink, 0);
    };
    let mut sink = sink;
    let mut bytes = 0u64;
    loop {
        let most = limit.allowance(SPLICE_BATCH.0).await;
        if let Err(e) = socket.readable().await {
            sink.abort();
            return Spliced::Ended(lost(&e));
        }
        let abandoned = abandoned.clone();
        let (back, moved, batch) = smol::unblock(move || {
            let (moved, batch) = splice_batch(&clone, sink, &abandoned, most);
            (clone, moved, batch)
        })
        .await;
        clone = back;
        limit.consume(moved);
        bytes += moved as u64;
        progress.report(bytes);
        sink = match batch {
            Batch::More(sink) => sink,
            Batch::Unsupported(sink) => return Spliced::Unsupported(sink, bytes),
            Batch::End(Ok(())) => return Spliced::Ended(TransferEvent::Finished { bytes }),
            Batch::End(Err(e)) => {
                return Spliced::Ended(TransferEvent::Failed(TransferError::Fs(e)));
            }
            Batch::Lost(sink, e) => {
                sink.abort();
                return Spliced::Ended(lost(&e));
            }
            Batch::File(sink, e) => {
                sink.abort();
                return Spliced::Ended(TransferEvent::Failed(TransferError::Fs(e)));
            }
        };
    }
}

/// The most one [`splice_batch`] moves, and the longest it runs, before it
/// hands the upload back to its task, which reports progress and can be
/// cancelled (`ABOR`, timeouts) between batches.
const SPLICE_BATCH: (usize, Duration) = (32 << 20, Duration::from_millis(20));

/// How long a [`splice_batch`] that has moved data waits on its blocking
/// thread for the socket to turn readable again before it hands back.
/// A fast client refills the socket within microseconds; handing back
/// each time it runs dry would cost a trip through the reactor and the
/// executor per few hundred KiB (at 3 GB/s, 20 % of the throughput).
const SPLICE_LINGER: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 2_000_000,
};

/// Splices what `socket` holds into `sink`, for up to `most` bytes (at
/// most [`SPLICE_BATCH`]'s) or [`SPLICE_BATCH`]'s time, waiting up to
/// [`SPLICE_LINGER`] each time the socket runs dry; commits the upload if
/// the peer closed (unless the task that started the batch is gone).
/// Returns the bytes moved.
fn splice_batch(
    socket: &TcpStream,
    mut sink: Sink,
    abandoned: &Abandoned,
    most: usize,
) -> (usize, Batch) {
    let longest = SPLICE_BATCH.1;
    let start = Instant::now();
    let mut moved = 0;
    loop {
        match sink.splice_from(socket.as_fd(), most - moved) {
            Ok(None) => return (moved, Batch::Unsupported(sink)),
            Ok(Some(Ok(0))) => return (moved, Batch::End(abandoned.commit(sink))),
            Ok(Some(Ok(n))) => {
                moved += n;
                if moved >= most || start.elapsed() >= longest {
                    return (moved, Batch::More(sink));
                }
            }
            Ok(Some(Err(e))) if e.kind() == io::ErrorKind::WouldBlock => {
                if moved == 0 || start.elapsed() >= longest || !readable_soon(socket) {
                    return (moved, Batch::More(sink));
                }
            }
            Ok(Some(Err(e))) if e.kind() == io::ErrorKind::Interrupted => {}
            Ok(Some(Err(e))) => return (moved, Batch::Lost(sink, e)),
            Err(e) => return (moved, Batch::File(sink, e)),
        }
    }
}

/// Waits up to [`SPLICE_LINGER`] for `socket` to be readable (or closed).
fn readable_soon(socket: &TcpStream) -> bool {
    use rustix::event::{PollFd, PollFlags, poll};
    let mut fds = [PollFd::new(socket, PollFlags::IN)];
    matches!(poll(&mut fds, Some(&SPLICE_LINGER)), Ok(n) if n > 0)
}

/// Reports a transfer's progress to its session, at most once a second, so
/// the engine's stall timeout sees data moving.
struct Progress {
    id: IntentId,
    tx: Sender<Msg>,
    last: Instant,
}

impl Progress {
    fn new(id: IntentId, tx: Sender<Msg>) -> Self {
        Progress {
            id,
            tx,
            last: Instant::now(),
        }
    }

    fn report(&mut self, bytes: u64) {
        if self.last.elapsed() >= Duration::from_secs(1) {
            self.last = Instant::now();
            // Dropped when the session has not taken the last message
            // yet: a later report (or the end) follows.
            let _ = self
                .tx
                .try_send(Msg::Transfer(self.id, TransferEvent::Progress { bytes }));
        }
    }
}

/// A transfer's bandwidth limit, as its task applies it; `None`:
/// unlimited, which costs nothing.
#[derive(Debug, Default)]
pub struct Limit(Option<RateLimit>);

impl Limit {
    /// The limit `rate` sets (none for `None`).
    pub fn new(rate: Option<RateLimit>) -> Limit {
        Limit(rate)
    }

    /// Waits (on a timer) until some bytes may go, and returns how many,
    /// at most `max`; unlimited, `max` at once.
    async fn allowance(&mut self, max: usize) -> usize {
        let Some(rate) = &mut self.0 else {
            return max;
        };
        loop {
            let now = Instant::now();
            let n = rate.allowance(now);
            if n > 0 {
                return n.min(max);
            }
            if let Some(at) = rate.ready_at(now) {
                Timer::at(at).await;
            }
        }
    }

    /// How many bytes (at most `max`) may go now, without waiting.
    fn allowance_now(&mut self, max: usize) -> usize {
        match &mut self.0 {
            None => max,
            Some(rate) => rate.allowance(Instant::now()).min(max),
        }
    }

    /// Counts `n` bytes that moved.
    fn consume(&mut self, n: usize) {
        if let Some(rate) = &mut self.0 {
            rate.consume(n);
        }
    }
}

/// Counts chunks and yields to the executor every [`YIELD_EVERY`].
#[derive(Default)]
struct Fairness(u32);

impl Fairness {
    async fn tick(&mut self) {
        self.0 = self.0.wrapping_add(1);
        if self.0 % YIELD_EVERY == 0 {
            smol::future::yield_now().await;
        }
    }
}

/// The event for a failed `sendfile`: the connection broke, or the file
/// could not be read.
fn send_failed(e: &io::Error) -> TransferEvent {
    if is_connection_error(e) {
        lost(e)
    } else {
        TransferEvent::Failed(TransferError::Fs(fs_error_from_io(e)))
    }
}

/// The event for a data connection that broke.
fn lost(e: &io::Error) -> TransferEvent {
    log::debug!("data connection lost: {e}");
    TransferEvent::Failed(TransferError::ConnectionLost)
}
