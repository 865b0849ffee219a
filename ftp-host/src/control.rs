//! Moving the control connection's bytes between a non-blocking socket and
//! the engine, through its [`ControlStream`] (clear or TLS): one read step
//! and one write step that both runtimes use, so that what a short read,
//! `WouldBlock`, `EINTR` and the end of the stream mean is decided once.

use std::io::{self, Read, Write};

use ftp_proto::{Instant, Session};

use crate::tls::ControlStream;

/// What one [`ControlStream::read_into`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Bytes went to the engine. `drained`: the read was short on a clear
    /// (not TLS) connection, so the socket's queue was empty at that
    /// moment; whatever arrives later raises a new readiness event, and an
    /// edge-triggered runtime may wait for it instead of reading again
    /// only to be told `WouldBlock`.
    Fed {
        /// The socket had no more bytes.
        drained: bool,
    },
    /// The socket has nothing now (it would block).
    WouldBlock,
    /// The engine takes no input now (back-pressure, or its input ended):
    /// nothing was read.
    Full,
    /// The client closed its sending side; the engine was told
    /// ([`Session::handle_eof`]) and decides when the session ends.
    Eof,
}

/// What one [`ControlStream::write_from`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteOutcome {
    /// Reply bytes were written (the engine may now produce more).
    pub wrote: bool,
    /// The socket took less than there was: wait until it is writable.
    pub would_block: bool,
}

impl ControlStream {
    /// Reads once from `sock` (at most the engine's input capacity and
    /// `buf.len()`) and hands the bytes, or the end of the stream, to
    /// `session`.
    pub fn read_into<S: Read + Write>(
        &mut self,
        sock: &mut S,
        session: &mut Session,
        now: Instant,
        buf: &mut [u8],
    ) -> io::Result<ReadOutcome> {
        let want = session.input_capacity().min(buf.len());
        if want == 0 {
            return Ok(ReadOutcome::Full);
        }
        loop {
            match self.read(sock, &mut buf[..want]) {
                Ok(0) => {
                    session.handle_eof(now);
                    return Ok(ReadOutcome::Eof);
                }
                Ok(n) => {
                    session.handle_input(now, &buf[..n]);
                    return Ok(ReadOutcome::Fed {
                        drained: n < want && !self.is_tls(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(ReadOutcome::WouldBlock);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes TLS's own pending bytes, then as much of the engine's
    /// replies as `sock` takes. An error means the connection is gone.
    pub fn write_from<S: Read + Write>(
        &mut self,
        sock: &mut S,
        session: &mut Session,
    ) -> io::Result<WriteOutcome> {
        let mut done = WriteOutcome {
            wrote: false,
            would_block: false,
        };
        match self.flush(sock) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                done.would_block = true;
                return Ok(done);
            }
            other => other?,
        }
        while !session.transmit().is_empty() {
            match self.write(sock, session.transmit()) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    session.consume_transmit(n);
                    done.wrote = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    done.would_block = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }
}
