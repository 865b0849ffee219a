//! FTPS plumbing both daemons share, on [`rustls`]'s sans-IO API
//! (`read_tls` / `process_new_packets` / `write_tls`).
//!
//! Nothing here owns a socket or blocks: every call takes the socket as a
//! parameter (`&mut impl Read + Write`, for example `&mut &TcpStream`) and
//! returns [`io::ErrorKind::WouldBlock`] exactly when the socket does, in
//! the direction the call is about. So mio calls these on readiness and
//! keeps its edge-triggered flags, and smol calls them inside
//! `Async::read_with` / `write_with`.
//!
//! * [`TlsContext`]: the certificate and key, loaded once from PEM files.
//! * [`SessionTls`]: one control session's TLS configuration, with its own
//!   session cache and ticket key, so that only this session's TLS
//!   sessions can be resumed: a data connection that does not resume one
//!   is refused when reuse is required (vsftpd's `require_ssl_reuse`), so
//!   a third party that connects to a passive port first gets nothing.
//! * [`TlsConn`]: one TLS connection (server side).
//! * [`ControlStream`]: the control connection, clear or TLS, switching on
//!   `AUTH TLS` and `CCC` as the engine asks.
//!
//! Without the `tls` cargo feature the same types exist but no TLS
//! connection can be made ([`TlsContext::load`] fails with
//! [`TlsError::NotCompiled`]).

use std::fmt;
use std::io::{self, Read, Write};
use std::path::PathBuf;

mod settings;

pub(crate) use settings::{TlsArgs, build};
pub use settings::{TlsFile, TlsSettings};

#[cfg(feature = "tls")]
pub use imp::{SessionTls, TlsConn, TlsContext};
#[cfg(not(feature = "tls"))]
pub use off::{SessionTls, TlsConn, TlsContext};

/// Why TLS could not be set up.
#[derive(Debug)]
pub enum TlsError {
    /// This build has no TLS (the `tls` cargo feature is off).
    NotCompiled,
    /// The server has no certificate, so no TLS connection can be made.
    NotConfigured,
    /// A PEM file could not be read or parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        problem: String,
    },
    /// The certificate file holds no certificate.
    NoCertificate(PathBuf),
    /// The key file holds no private key.
    NoKey(PathBuf),
    /// rustls refused the pair (for example, the key does not belong to
    /// the certificate) or a connection's setup.
    Rejected(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::NotCompiled => {
                f.write_str("TLS is not compiled in (build with the `tls` feature)")
            }
            TlsError::NotConfigured => f.write_str("no certificate is configured (--tls-cert)"),
            TlsError::Pem { path, problem } => write!(f, "{}: {problem}", path.display()),
            TlsError::NoCertificate(path) => {
                write!(f, "{}: no PEM certificate in the file", path.display())
            }
            TlsError::NoKey(path) => {
                write!(f, "{}: no PEM private key in the file", path.display())
            }
            TlsError::Rejected(why) => write!(f, "certificate and key refused: {why}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// Where a handshake stands after [`TlsConn::handshake`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Complete (and, for a data connection, the resumption checked).
    Done,
    /// Call again when the socket is readable.
    WantRead,
    /// Call again when the socket is writable.
    WantWrite,
}

/// The control connection's byte stream: clear, TLS, or on its way back to
/// clear after `CCC`.
#[derive(Debug)]
pub struct ControlStream {
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    Plain,
    Tls(Box<TlsConn>),
    /// `CCC`: our `close_notify` is queued; the client's TLS records are
    /// read one by one, exactly (no byte of what follows in clear is taken),
    /// until its `close_notify`.
    Clearing {
        tls: Box<TlsConn>,
        record: Vec<u8>,
    },
}

/// A TLS record header: type, version, length.
const RECORD_HEADER: usize = 5;

impl ControlStream {
    /// A clear control connection.
    pub fn plain() -> ControlStream {
        ControlStream { mode: Mode::Plain }
    }

    /// A control connection that is TLS from its first byte (implicit
    /// FTPS); the handshake runs as the connection is read and written.
    pub fn tls(conn: TlsConn) -> ControlStream {
        ControlStream {
            mode: Mode::Tls(Box::new(conn)),
        }
    }

    /// `AUTH TLS`: from now on, bytes go through `conn`. Call once the
    /// `234` is written.
    pub fn start_tls(&mut self, conn: TlsConn) {
        self.mode = Mode::Tls(Box::new(conn));
    }

    /// `CCC`: queue our `close_notify` (write it with [`flush`](Self::flush))
    /// and go back to clear once the client's arrives. Call once the `200`
    /// is written. Returns `false` if the connection was not TLS.
    pub fn start_clear(&mut self) -> bool {
        match std::mem::replace(&mut self.mode, Mode::Plain) {
            Mode::Tls(mut tls) => {
                tls.close();
                self.mode = Mode::Clearing {
                    tls,
                    record: Vec::new(),
                };
                true
            }
            other => {
                self.mode = other;
                false
            }
        }
    }

    /// Whether bytes currently go through TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self.mode, Mode::Tls(_))
    }

    /// Whether TLS bytes wait to be written: call [`flush`](Self::flush)
    /// when the socket is writable.
    pub fn wants_write(&self) -> bool {
        match &self.mode {
            Mode::Plain => false,
            Mode::Tls(tls) | Mode::Clearing { tls, .. } => tls.wants_write(),
        }
    }

    /// Reads what the client sent, decrypted. `Ok(0)` is the end of the
    /// stream; `WouldBlock` means the socket has nothing now.
    pub fn read<S: Read + Write>(&mut self, sock: &mut S, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match &mut self.mode {
                Mode::Plain => return sock.read(buf),
                Mode::Tls(tls) => return tls.read(sock, buf),
                Mode::Clearing { tls, record } => {
                    if clear_step(tls, sock, record)? {
                        self.mode = Mode::Plain;
                    }
                }
            }
        }
    }

    /// Writes (a prefix of) `data`; `WouldBlock` means the socket takes
    /// nothing now.
    pub fn write<S: Read + Write>(&mut self, sock: &mut S, data: &[u8]) -> io::Result<usize> {
        match &mut self.mode {
            Mode::Plain => sock.write(data),
            Mode::Tls(tls) => tls.write(sock, data),
            // After our close_notify the server speaks in clear.
            Mode::Clearing { tls, .. } => {
                tls.flush(sock)?;
                sock.write(data)
            }
        }
    }

    /// Writes the TLS bytes that wait; `WouldBlock` if the socket takes
    /// no more now.
    pub fn flush<S: Read + Write>(&mut self, sock: &mut S) -> io::Result<()> {
        match &mut self.mode {
            Mode::Plain => Ok(()),
            Mode::Tls(tls) | Mode::Clearing { tls, .. } => tls.flush(sock),
        }
    }

    /// The session ends: queue `close_notify` (then [`flush`](Self::flush)
    /// before shutting the socket down).
    pub fn close(&mut self) {
        if let Mode::Tls(tls) = &mut self.mode {
            tls.close();
        }
    }
}

/// Reads one more piece of a TLS record during `CCC`, byte-exact; returns
/// `true` once the client's `close_notify` has come.
fn clear_step<S: Read + Write>(
    tls: &mut TlsConn,
    sock: &mut S,
    record: &mut Vec<u8>,
) -> io::Result<bool> {
    let _ = tls.flush(sock);
    let want = if record.len() < RECORD_HEADER {
        RECORD_HEADER
    } else {
        RECORD_HEADER + usize::from(u16::from_be_bytes([record[3], record[4]]))
    };
    let have = record.len();
    record.resize(want, 0);
    let n = match sock.read(&mut record[have..]) {
        Ok(0) => {
            record.truncate(have);
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(n) => n,
        Err(e) => {
            record.truncate(have);
            return Err(e);
        }
    };
    record.truncate(have + n);
    if record.len() < RECORD_HEADER || record.len() < want {
        return Ok(false);
    }
    let complete = RECORD_HEADER + usize::from(u16::from_be_bytes([record[3], record[4]]));
    if record.len() < complete {
        return Ok(false);
    }
    let closed = tls.feed_record(record)?;
    record.clear();
    Ok(closed)
}

/// Calls `op` again while it is interrupted by a signal.
#[cfg(feature = "tls")]
fn retry<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    loop {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

#[cfg(feature = "tls")]
mod imp {
    use std::fmt;
    use std::io::{self, Read, Write};
    use std::path::Path;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use rustls::server::ServerSessionMemoryCache;
    use rustls::{HandshakeKind, ServerConfig, ServerConnection};

    use super::{Handshake, TlsError, retry};
    use crate::metrics::Metrics;

    /// TLS sessions each control session remembers for resumption.
    const SESSIONS_PER_CONTROL: usize = 32;

    /// The server's certificate and key, ready to make sessions' configs.
    pub struct TlsContext {
        base: Arc<ServerConfig>,
        require_reuse: bool,
    }

    impl fmt::Debug for TlsContext {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TlsContext")
                .field("require_reuse", &self.require_reuse)
                .finish_non_exhaustive()
        }
    }

    impl TlsContext {
        /// Loads the certificate chain (leaf first) and private key from
        /// PEM files and checks that they belong together.
        /// `require_reuse`: data connections must resume the control
        /// connection's TLS session.
        pub fn load(cert: &Path, key: &Path, require_reuse: bool) -> Result<Self, TlsError> {
            let pem = |path: &Path, e: rustls::pki_types::pem::Error| TlsError::Pem {
                path: path.to_path_buf(),
                problem: match e {
                    rustls::pki_types::pem::Error::Io(e) => format!("cannot read: {e}"),
                    other => format!("not valid PEM: {other:?}"),
                },
            };
            let chain = CertificateDer::pem_file_iter(cert)
                .map_err(|e| pem(cert, e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| pem(cert, e))?;
            if chain.is_empty() {
                return Err(TlsError::NoCertificate(cert.to_path_buf()));
            }
            let private = match PrivateKeyDer::from_pem_file(key) {
                Ok(k) => k,
                Err(rustls::pki_types::pem::Error::NoItemsFound) => {
                    return Err(TlsError::NoKey(key.to_path_buf()));
                }
                Err(e) => return Err(pem(key, e)),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| TlsError::Rejected(e.to_string()))?
                .with_no_client_auth()
                .with_single_cert(chain, private)
                .map_err(|e| TlsError::Rejected(e.to_string()))?;
            Ok(TlsContext {
                base: Arc::new(config),
                require_reuse,
            })
        }

        /// The TLS configuration of one new control session: the server's
        /// certificate with a session cache and ticket key of its own.
        pub fn session(&self) -> Result<SessionTls, TlsError> {
            let mut control = (*self.base).clone();
            control.session_storage = ServerSessionMemoryCache::new(SESSIONS_PER_CONTROL);
            control.ticketer = rustls::crypto::ring::Ticketer::new()
                .map_err(|e| TlsError::Rejected(e.to_string()))?;
            // Data connections resume with the control connection's
            // tickets (same cache and ticket key) but send no TLS 1.3
            // tickets of their own: an uploading client never reads them,
            // and closing with unread bytes makes its kernel send a reset
            // that can destroy the end of the upload.
            let mut data = control.clone();
            data.send_tls13_tickets = 0;
            Ok(SessionTls {
                control: Arc::new(control),
                data: Arc::new(data),
                require_reuse: self.require_reuse,
                metrics: None,
            })
        }
    }

    /// One control session's TLS configuration (see the module docs).
    pub struct SessionTls {
        control: Arc<ServerConfig>,
        data: Arc<ServerConfig>,
        require_reuse: bool,
        metrics: Option<Arc<Metrics>>,
    }

    impl fmt::Debug for SessionTls {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("SessionTls")
                .field("require_reuse", &self.require_reuse)
                .finish_non_exhaustive()
        }
    }

    impl SessionTls {
        /// Counts the handshakes of this session's connections in
        /// `metrics`.
        pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
            self.metrics = Some(metrics);
            self
        }

        /// A TLS connection for the control connection.
        pub fn control(&self) -> Result<TlsConn, TlsError> {
            TlsConn::new(&self.control, false, self.metrics.clone())
        }

        /// A TLS connection for a data connection of this session: its
        /// handshake fails unless it resumes one of this session's TLS
        /// sessions (when reuse is required).
        pub fn data(&self) -> Result<TlsConn, TlsError> {
            TlsConn::new(&self.data, self.require_reuse, self.metrics.clone())
        }
    }

    /// One server-side TLS connection; the socket is a parameter of every
    /// call (see the module docs).
    pub struct TlsConn {
        conn: ServerConnection,
        require_resumption: bool,
        closed: bool,
        /// Where the handshake's outcome is counted, until it is.
        metrics: Option<Arc<Metrics>>,
    }

    impl Drop for TlsConn {
        fn drop(&mut self) {
            // Given up before the handshake finished (the peer left).
            self.tally(false);
        }
    }

    impl fmt::Debug for TlsConn {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("TlsConn")
                .field("handshaking", &self.conn.is_handshaking())
                .field("kind", &self.conn.handshake_kind())
                .finish_non_exhaustive()
        }
    }

    /// A rustls error as an I/O error.
    fn invalid(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    impl TlsConn {
        fn new(
            config: &Arc<ServerConfig>,
            require_resumption: bool,
            metrics: Option<Arc<Metrics>>,
        ) -> Result<Self, TlsError> {
            let conn = ServerConnection::new(config.clone())
                .map_err(|e| TlsError::Rejected(e.to_string()))?;
            Ok(TlsConn {
                conn,
                require_resumption,
                closed: false,
                metrics,
            })
        }

        /// Counts the handshake's outcome, once.
        fn tally(&mut self, ok: bool) {
            if let Some(metrics) = self.metrics.take() {
                metrics.tls_handshake(ok);
            }
        }

        /// Whether TLS bytes wait to be written.
        pub fn wants_write(&self) -> bool {
            self.conn.wants_write()
        }

        /// Whether the handshake resumed an earlier TLS session.
        pub fn is_resumed(&self) -> bool {
            self.conn.handshake_kind() == Some(HandshakeKind::Resumed)
        }

        /// Runs the handshake as far as the socket allows. A data
        /// connection that had to resume a session and did not fails here
        /// with [`io::ErrorKind::PermissionDenied`].
        pub fn handshake<S: Read + Write>(&mut self, sock: &mut S) -> io::Result<Handshake> {
            let result = self.handshake_step(sock);
            match &result {
                Ok(Handshake::Done) => self.tally(true),
                Err(_) => self.tally(false),
                Ok(_) => {}
            }
            result
        }

        fn handshake_step<S: Read + Write>(&mut self, sock: &mut S) -> io::Result<Handshake> {
            loop {
                if self.conn.wants_write() {
                    match retry(|| self.conn.write_tls(sock)) {
                        Ok(_) => continue,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            return Ok(Handshake::WantWrite);
                        }
                        Err(e) => return Err(e),
                    }
                }
                if !self.conn.is_handshaking() {
                    if self.require_resumption && !self.is_resumed() {
                        return Err(io::Error::new(
                            io::ErrorKind::PermissionDenied,
                            "the data connection did not resume the control connection's TLS session",
                        ));
                    }
                    return Ok(Handshake::Done);
                }
                match retry(|| self.conn.read_tls(sock)) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(_) => self.process(sock)?,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Ok(Handshake::WantRead);
                    }
                    Err(e) => return Err(e),
                }
            }
        }

        /// Processes records read; on a TLS error, sends the alert (best
        /// effort) and fails.
        fn process<S: Write>(&mut self, sock: &mut S) -> io::Result<()> {
            if let Err(e) = self.conn.process_new_packets() {
                let _ = self.conn.write_tls(sock);
                return Err(invalid(e));
            }
            Ok(())
        }

        /// Reads decrypted bytes. `Ok(0)`: the peer ended the stream (with
        /// `close_notify`, or, as vsftpd accepts by default, by closing
        /// the socket). `WouldBlock`: the socket has nothing now. TLS bytes
        /// the handshake needs written go out on the way, as far as the
        /// socket takes them (see [`wants_write`](Self::wants_write)).
        pub fn read<S: Read + Write>(&mut self, sock: &mut S, buf: &mut [u8]) -> io::Result<usize> {
            let result = self.read_step(sock, buf);
            if self.metrics.is_some() {
                match &result {
                    Err(e) if e.kind() != io::ErrorKind::WouldBlock => self.tally(false),
                    _ if !self.conn.is_handshaking() => self.tally(true),
                    _ => {}
                }
            }
            result
        }

        fn read_step<S: Read + Write>(
            &mut self,
            sock: &mut S,
            buf: &mut [u8],
        ) -> io::Result<usize> {
            loop {
                match self.conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                match self.flush(sock) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                match retry(|| self.conn.read_tls(sock)) {
                    Ok(0) if self.conn.is_handshaking() => {
                        return Err(io::ErrorKind::UnexpectedEof.into());
                    }
                    // The reader reports the end on the next round.
                    Ok(_) => self.process(sock)?,
                    Err(e) => return Err(e),
                }
            }
        }

        /// Encrypts (a prefix of) `data` and writes what the socket takes.
        /// Accepted bytes may still wait in the connection
        /// ([`wants_write`](Self::wants_write)); `WouldBlock` means
        /// earlier bytes still wait and the socket takes nothing now.
        pub fn write<S: Read + Write>(&mut self, sock: &mut S, data: &[u8]) -> io::Result<usize> {
            if self.closed {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.flush(sock)?;
            let n = self.conn.writer().write(data)?;
            match self.flush(sock) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if n == 0 && !data.is_empty() {
                // Only while the handshake runs and its plaintext buffer
                // is full; the runtimes never write that much then.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        }

        /// Writes every TLS byte that waits; `WouldBlock` if the socket
        /// takes no more now.
        pub fn flush<S: Write>(&mut self, sock: &mut S) -> io::Result<()> {
            while self.conn.wants_write() {
                if retry(|| self.conn.write_tls(sock))? == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
            }
            Ok(())
        }

        /// Queues `close_notify` (once); write it with
        /// [`flush`](Self::flush).
        pub fn close(&mut self) {
            if !self.closed {
                self.closed = true;
                self.conn.send_close_notify();
            }
        }

        /// Takes one complete TLS record (read byte-exact by the caller);
        /// returns `true` if the peer's `close_notify` has come.
        pub(super) fn feed_record(&mut self, record: &[u8]) -> io::Result<bool> {
            let mut rest = record;
            while !rest.is_empty() {
                if self.conn.read_tls(&mut rest)? == 0 {
                    break;
                }
            }
            if let Err(e) = self.conn.process_new_packets() {
                return Err(invalid(e));
            }
            let mut sink = [0u8; 512];
            loop {
                match self.conn.reader().read(&mut sink) {
                    Ok(0) => return Ok(true),
                    // Application data during CCC is dropped.
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(true),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(not(feature = "tls"))]
mod off {
    use std::convert::Infallible;
    use std::io::{self, Read, Write};
    use std::path::Path;

    use super::{Handshake, TlsError};
    use crate::metrics::Metrics;
    use std::sync::Arc;

    /// Stands in for the certificate and key; never made without TLS.
    #[derive(Debug)]
    pub struct TlsContext {
        never: Infallible,
    }

    impl TlsContext {
        /// Always [`TlsError::NotCompiled`].
        pub fn load(_cert: &Path, _key: &Path, _require_reuse: bool) -> Result<Self, TlsError> {
            Err(TlsError::NotCompiled)
        }

        /// Never called: no context exists.
        pub fn session(&self) -> Result<SessionTls, TlsError> {
            match self.never {}
        }
    }

    /// Stands in for a session's TLS configuration; never made.
    #[derive(Debug)]
    pub struct SessionTls {
        never: Infallible,
    }

    impl SessionTls {
        /// Never called.
        pub fn with_metrics(self, _: Arc<Metrics>) -> Self {
            match self.never {}
        }

        /// Never called.
        pub fn control(&self) -> Result<TlsConn, TlsError> {
            match self.never {}
        }

        /// Never called.
        pub fn data(&self) -> Result<TlsConn, TlsError> {
            match self.never {}
        }
    }

    /// Stands in for a TLS connection; never made.
    #[derive(Debug)]
    pub struct TlsConn {
        never: Infallible,
    }

    impl TlsConn {
        /// Never called: no connection exists.
        pub fn wants_write(&self) -> bool {
            match self.never {}
        }
        /// Never called.
        pub fn is_resumed(&self) -> bool {
            match self.never {}
        }
        /// Never called.
        pub fn handshake<S: Read + Write>(&mut self, _: &mut S) -> io::Result<Handshake> {
            match self.never {}
        }
        /// Never called.
        pub fn read<S: Read + Write>(&mut self, _: &mut S, _: &mut [u8]) -> io::Result<usize> {
            match self.never {}
        }
        /// Never called.
        pub fn write<S: Read + Write>(&mut self, _: &mut S, _: &[u8]) -> io::Result<usize> {
            match self.never {}
        }
        /// Never called.
        pub fn flush<S: Write>(&mut self, _: &mut S) -> io::Result<()> {
            match self.never {}
        }
        /// Never called.
        pub fn close(&mut self) {
            match self.never {}
        }
        pub(super) fn feed_record(&mut self, _: &[u8]) -> io::Result<bool> {
            match self.never {}
        }
    }
}
