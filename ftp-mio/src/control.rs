//! A session's control connection: reads at most
//! [`input_capacity`](Session::input_capacity) bytes into the engine,
//! writes what [`transmit`](Session::transmit) holds, and closes politely.
//!
//! Readiness is edge-triggered, so the socket keeps two flags: set by an
//! event, cleared when a read or write returns `WouldBlock` (or a clear
//! read comes back short, see [`ReadOutcome::Fed`]). While the
//! engine's input capacity is 0 the socket is simply not read; because the
//! flag stays set, reading resumes on the next drive after the engine
//! drains (no new edge is needed). The engine stops producing replies when
//! its transmit buffer is full, so a client that stops reading holds at
//! most that buffer plus the socket's.
//!
//! Bytes go through a [`ControlStream`] (shared with the smol daemon):
//! clear, or TLS after `AUTH TLS` and on implicit-FTPS listeners. Its calls
//! return `WouldBlock` exactly when the socket does in the direction asked
//! for, so the readiness flags keep their meaning under TLS.

use std::io::{self, Read};
use std::net::Shutdown;

use ftp_host::control::ReadOutcome;
use ftp_host::tls::ControlStream;
use ftp_proto::{Instant, Session};
use mio::event::Event;
use mio::net::TcpStream;

/// The control socket and its readiness.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) stream: TcpStream,
    /// Clear or TLS.
    io: ControlStream,
    readable: bool,
    writable: bool,
    /// The client closed its sending side.
    eof: bool,
    /// The last event said the client closed its sending side (or the
    /// socket failed): read until the end is seen, even after a short read.
    hung_up: bool,
    /// Urgent data arrived (a Telnet Synch before `ABOR`): with
    /// `SO_OOBINLINE` a read stops short at the urgent mark with bytes
    /// still queued behind it, so short reads prove nothing until a read
    /// says `WouldBlock`.
    urgent: bool,
}

impl Control {
    /// A freshly accepted (and registered) control socket; it counts as
    /// ready both ways until an operation says otherwise.
    pub(crate) fn new(stream: TcpStream, io: ControlStream) -> Control {
        Control {
            stream,
            io,
            readable: true,
            writable: true,
            eof: false,
            hung_up: false,
            urgent: false,
        }
    }

    /// Notes the readiness an event reports (errors and hang-ups count as
    /// both: the next operation reports them).
    pub(crate) fn on_event(&mut self, event: &Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.readable = true;
        }
        if event.is_read_closed() || event.is_error() {
            self.hung_up = true;
        }
        if event.is_priority() {
            self.urgent = true;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.writable = true;
        }
    }

    /// Whether a read may find data.
    pub(crate) fn readable(&self) -> bool {
        self.readable && !self.eof
    }

    /// Whether nothing waits to be written: no reply, no TLS bytes.
    pub(crate) fn flushed(&self, session: &Session) -> bool {
        session.transmit().is_empty() && !self.io.wants_write()
    }

    /// The connection's byte stream, for switching it to or from TLS
    /// (`AUTH TLS`, `CCC`) once every reply before the switch is written.
    pub(crate) fn stream_mut(&mut self) -> &mut ControlStream {
        &mut self.io
    }

    /// The session is over: queue TLS's `close_notify`, written by the
    /// next [`flush`](Self::flush).
    pub(crate) fn close_tls(&mut self) {
        self.io.close();
    }

    /// Writes as much of the engine's transmit buffer (and of TLS's own
    /// bytes) as the socket takes (see [`ControlStream::write_from`]).
    /// Returns whether anything was written (the engine may then produce
    /// more); an error means the connection is gone.
    pub(crate) fn flush(&mut self, session: &mut Session) -> io::Result<bool> {
        if !self.writable {
            return Ok(false);
        }
        let done = self.io.write_from(&mut &self.stream, session)?;
        if done.would_block {
            self.writable = false;
        }
        Ok(done.wrote)
    }

    /// Reads one chunk (at most the engine's input capacity and the size
    /// of `scratch`) into the engine, or gives it the end of the stream
    /// (see [`ControlStream::read_into`]).
    pub(crate) fn read_into(
        &mut self,
        session: &mut Session,
        now: Instant,
        scratch: &mut [u8],
    ) -> io::Result<ReadOutcome> {
        if !self.readable() {
            return Ok(ReadOutcome::WouldBlock);
        }
        let outcome = self
            .io
            .read_into(&mut &self.stream, session, now, scratch)?;
        match outcome {
            ReadOutcome::Eof => self.eof = true,
            ReadOutcome::WouldBlock => {
                self.readable = false;
                self.urgent = false;
            }
            // A short read emptied the socket: the next bytes (or the
            // client's FIN) raise a new edge, so no read just to learn
            // `WouldBlock` (one system call less per command). Not once
            // the client hung up (its end of stream is read now), nor
            // while urgent data may stop reads short.
            ReadOutcome::Fed { drained: true } if !self.hung_up && !self.urgent => {
                self.readable = false;
            }
            ReadOutcome::Fed { .. } | ReadOutcome::Full => {}
        }
        Ok(outcome)
    }

    /// Sends our FIN; what the client still sends is read and discarded
    /// with [`discard`](Self::discard) until it closes too, so that closing
    /// with unread input does not turn into a reset that could destroy the
    /// last replies in flight.
    pub(crate) fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads and drops up to `chunks` reads of input. `Ok(true)` once the
    /// client has closed; `Ok(false)` when it has to wait (or ran out of
    /// chunks while still readable: see [`readable`](Self::readable)).
    pub(crate) fn discard(&mut self, scratch: &mut [u8], chunks: &mut usize) -> io::Result<bool> {
        while self.readable() {
            if *chunks == 0 {
                return Ok(false);
            }
            *chunks -= 1;
            match (&self.stream).read(scratch) {
                Ok(0) => {
                    self.eof = true;
                    return Ok(true);
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.eof)
    }
}
