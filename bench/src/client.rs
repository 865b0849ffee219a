//! A raw FTP client on smol: control connection, replies, passive data
//! connections. No client library; each call is one command and its reply.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use rustix::net::{AddressFamily, SocketFlags, SocketType};
use smol::Async;
use smol::io::{AsyncReadExt, AsyncWriteExt};

use crate::checksum::Checksum;

/// A failed step, with what the server said.
pub fn fail(msg: impl Into<String>) -> io::Error {
    io::Error::other(msg.into())
}

/// Runs `fut`, failing with `TimedOut` after `limit`.
pub async fn timeout<T>(
    limit: Duration,
    fut: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    smol::future::or(fut, async {
        smol::Timer::after(limit).await;
        Err(io::Error::new(io::ErrorKind::TimedOut, "timed out"))
    })
    .await
}

/// Opens a TCP connection, from `src` (port chosen by the kernel) when
/// given, so that many sessions can come from several loopback addresses.
pub async fn connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<Async<TcpStream>> {
    let s = Async::new(start_connect(addr, src)?)?;
    s.writable().await?;
    if let Err(e) = rustix::net::sockopt::socket_error(s.get_ref())? {
        return Err(e.into());
    }
    let _ = rustix::net::sockopt::set_tcp_nodelay(s.get_ref(), true);
    Ok(s)
}

/// Starts a non-blocking connection from `src` (or the kernel's choice of
/// source address) and returns the socket without waiting for the
/// handshake: the first read or write waits for it (and fails if the
/// connection was refused). For data connections: on loopback the
/// handshake is done before `connect` returns, so this saves the generator
/// a readiness round trip per transfer and changes nothing for the server.
/// No `TCP_NODELAY`: a data connection moves bulk.
fn start_connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(
        family,
        SocketType::STREAM,
        SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
        None,
    )?;
    if let Some(src) = src {
        rustix::net::bind(&fd, &SocketAddr::new(src, 0))?;
    }
    match rustix::net::connect(&fd, &addr) {
        Ok(()) | Err(rustix::io::Errno::INPROGRESS) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(TcpStream::from(fd))
}

/// A data connection, registered with the reactor only once it has to
/// wait. A small download is usually all there by the time its `150` has
/// been read, so it is read and closed without a registration: that saves
/// two `epoll_ctl` calls per transfer, 7 % of the generator's time in the
/// persistent-sessions loop.
pub struct DataConn {
    raw: Option<TcpStream>,
    registered: Option<Async<TcpStream>>,
}

impl DataConn {
    fn new(stream: TcpStream) -> DataConn {
        DataConn {
            raw: Some(stream),
            registered: None,
        }
    }

    /// A connection already registered (the loopback ceiling's).
    pub fn registered(stream: Async<TcpStream>) -> DataConn {
        DataConn {
            raw: None,
            registered: Some(stream),
        }
    }

    /// Reads what is there, waiting (registered from then on) if nothing is.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(raw) = &self.raw {
            loop {
                match io::Read::read(&mut &*raw, buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    done => return done,
                }
            }
        }
        self.stream()?.read(buf).await
    }

    /// The connection registered with the reactor, for writing or waiting.
    pub fn stream(&mut self) -> io::Result<&mut Async<TcpStream>> {
        if let Some(raw) = self.raw.take() {
            self.registered = Some(Async::new(raw)?);
        }
        self.registered
            .as_mut()
            .ok_or_else(|| fail("data connection already failed to register"))
    }
}

/// A data connection that begins with its PROXY header (`--proxy-header`):
/// sent at once when the handshake is done, as on loopback it nearly
/// always is, else once the connection is writable.
async fn with_header(stream: TcpStream) -> io::Result<DataConn> {
    if let Ok(header) = crate::proxy_header::for_stream(&stream) {
        if let Ok(n) = rustix::net::send(&stream, &header, rustix::net::SendFlags::DONTWAIT) {
            if n == header.len() {
                return Ok(DataConn::new(stream));
            }
        }
    }
    let mut stream = Async::new(stream)?;
    stream.writable().await?;
    let header = crate::proxy_header::for_stream(stream.get_ref())?;
    stream.write_all(&header).await?;
    Ok(DataConn::registered(stream))
}

/// One reply: its code and the text of its last line.
#[derive(Debug)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn describe(&self) -> String {
        format!("{} {}", self.code, self.text)
    }
}

/// Replies read from a control connection: a buffer that either client
/// (async here, blocking in `blocking.rs`) fills with its own reads.
pub struct ReplyReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// The code of a multi-line reply whose last line has not come yet.
    open: Option<u16>,
}

/// Longest reply line a [`ReplyReader`] accepts.
const REPLY_LINE_MAX: usize = 64 * 1024;

impl ReplyReader {
    /// An empty reader with a buffer of `capacity` bytes (it grows for a
    /// longer line, up to [`REPLY_LINE_MAX`]).
    pub fn new(capacity: usize) -> ReplyReader {
        ReplyReader {
            buf: vec![0; capacity.max(16)],
            start: 0,
            end: 0,
            open: None,
        }
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// The next whole reply, if its lines are buffered; the lines of a
    /// multi-line reply before its last are consumed and dropped.
    pub fn next_reply(&mut self) -> io::Result<Option<Reply>> {
        while let Some(line) = self.line() {
            let code = parse_code(&line);
            let sep = line.as_bytes().get(3).copied();
            match self.open {
                Some(open) if code == Some(open) && sep == Some(b' ') => {
                    self.open = None;
                }
                Some(_) => continue,
                None => {
                    let code = code.ok_or_else(|| fail(format!("bad reply: {line:?}")))?;
                    if sep == Some(b'-') {
                        self.open = Some(code);
                        continue;
                    }
                }
            }
            let code = code.unwrap_or_default();
            return Ok(Some(Reply {
                code,
                text: line[3..].trim().to_owned(),
            }));
        }
        Ok(None)
    }

    /// One buffered line without its CRLF, if a whole one is there.
    fn line(&mut self) -> Option<String> {
        let nl = self.buf[self.start..self.end]
            .iter()
            .position(|&b| b == b'\n')?;
        let mut line = &self.buf[self.start..self.start + nl];
        if line.last() == Some(&b'\r') {
            line = &line[..line.len() - 1];
        }
        let text = String::from_utf8_lossy(line).into_owned();
        self.start += nl + 1;
        Some(text)
    }

    /// Room for the next read: what is buffered moves to the front, and
    /// a full buffer doubles (a line longer than [`REPLY_LINE_MAX`] fails).
    pub fn spare(&mut self) -> io::Result<&mut [u8]> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= REPLY_LINE_MAX {
                return Err(fail("reply line too long"));
            }
            self.buf.resize(self.buf.len() * 2, 0);
        }
        Ok(&mut self.buf[self.end..])
    }

    /// Records `n` bytes read into [`spare`](Self::spare); 0 is the end
    /// of the connection, an error.
    pub fn filled(&mut self, n: usize) -> io::Result<()> {
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "control connection closed",
            ));
        }
        self.end += n;
        Ok(())
    }
}

/// A control connection.
pub struct Control {
    stream: Async<TcpStream>,
    replies: ReplyReader,
    /// The server's address (data connections go to its IP).
    peer: SocketAddr,
    /// The source address data connections are bound to: the control
    /// connection's, when it was chosen (`None`: the kernel's choice,
    /// which is the same address for loopback).
    src: Option<IpAddr>,
    /// One command line at a time, reused.
    out: Vec<u8>,
}

impl Control {
    /// Connects and reads the greeting, which must be 220.
    pub async fn connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<Control> {
        let mut stream = connect(addr, src).await?;
        if crate::proxy_header::enabled() {
            let header = crate::proxy_header::for_stream(stream.get_ref())?;
            stream.write_all(&header).await?;
        }
        // Small buffers: the scale figure holds 100,000 of these. A reply
        // line longer than the reader's buffer grows it; `out` grows to
        // the longest command sent.
        let mut ctl = Control {
            stream,
            replies: ReplyReader::new(256),
            peer: addr,
            src,
            out: Vec::new(),
        };
        ctl.expect(220).await?;
        Ok(ctl)
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some(reply) = self.replies.next_reply()? {
                return Ok(reply);
            }
            let n = self.stream.read(self.replies.spare()?).await?;
            self.replies.filled(n)?;
        }
    }

    /// Reads a reply and fails unless it has code `code`.
    pub async fn expect(&mut self, code: u16) -> io::Result<Reply> {
        let reply = self.reply().await?;
        if reply.code != code {
            return Err(fail(format!("expected {code}, got {}", reply.describe())));
        }
        Ok(reply)
    }

    /// Sends one command line.
    pub async fn send(&mut self, line: &str) -> io::Result<()> {
        self.out.clear();
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.out).await
    }

    /// Sends a command and returns its reply.
    pub async fn cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.send(line).await?;
        self.await_reply().await?;
        self.reply().await
    }

    /// Waits for the reply to a command just sent, unless a reply is
    /// already buffered: the read that would find nothing yet is skipped.
    async fn await_reply(&mut self) -> io::Result<()> {
        if self.replies.is_empty() {
            self.stream.readable().await?;
        }
        Ok(())
    }

    /// Sends a command and fails unless the reply has code `code`.
    pub async fn cmd_expect(&mut self, line: &str, code: u16) -> io::Result<Reply> {
        self.send(line).await?;
        self.await_reply().await?;
        self.expect(code)
            .await
            .map_err(|e| fail(format!("{line}: {e}")))
    }

    /// USER + PASS (PASS only when asked for), expecting 230.
    pub async fn login(&mut self, user: &str, pass: &str) -> io::Result<()> {
        let r = self.cmd(&format!("USER {user}")).await?;
        match r.code {
            230 => Ok(()),
            331 => {
                self.cmd_expect(&format!("PASS {pass}"), 230).await?;
                Ok(())
            }
            _ => Err(fail(format!("USER: {}", r.describe()))),
        }
    }

    /// Anonymous login and binary type.
    pub async fn anonymous(&mut self) -> io::Result<()> {
        self.login("anonymous", "bench@example.org").await?;
        self.cmd_expect("TYPE I", 200).await?;
        Ok(())
    }

    /// EPSV, then connects the data connection to the port in the reply.
    pub async fn epsv(&mut self) -> io::Result<DataConn> {
        let r = self.cmd_expect("EPSV", 229).await?;
        let port =
            parse_epsv(&r.text).ok_or_else(|| fail(format!("bad EPSV reply: {}", r.text)))?;
        let stream = start_connect(SocketAddr::new(self.peer.ip(), port), self.src)?;
        if crate::proxy_header::enabled() {
            return with_header(stream).await;
        }
        Ok(DataConn::new(stream))
    }

    /// Sends a transfer command and expects a positive preliminary reply.
    pub async fn start_transfer(&mut self, line: &str) -> io::Result<()> {
        let r = self.cmd(line).await?;
        if r.code != 150 && r.code != 125 {
            return Err(fail(format!("{line}: {}", r.describe())));
        }
        Ok(())
    }

    /// Reads the reply that ends a transfer: 226 (or 250).
    pub async fn end_transfer(&mut self) -> io::Result<()> {
        let r = self.reply().await?;
        if r.code != 226 && r.code != 250 {
            return Err(fail(format!("end of transfer: {}", r.describe())));
        }
        Ok(())
    }

    /// QUIT, 221, then waits for the server to close first (so the
    /// TIME_WAIT stays on the server's side, not on the generator's ports).
    pub async fn quit(mut self) -> io::Result<()> {
        self.cmd_expect("QUIT", 221).await?;
        let mut byte = [0u8; 64];
        let _ = timeout(Duration::from_secs(2), async {
            while self.stream.read(&mut byte).await? > 0 {}
            Ok(())
        })
        .await;
        Ok(())
    }
}

pub(crate) fn parse_code(line: &str) -> Option<u16> {
    let b = line.as_bytes();
    if b.len() < 3 || !b[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 3 && b[3] != b' ' && b[3] != b'-' {
        return None;
    }
    line[..3].parse().ok()
}

/// The port of `229 Entering Extended Passive Mode (|||PORT|)`.
pub(crate) fn parse_epsv(text: &str) -> Option<u16> {
    let open = text.find('(')?;
    let inner = &text[open + 1..];
    let delim = inner.chars().next()?;
    let mut parts = inner.split(delim);
    parts.next()?;
    parts.next()?;
    parts.next()?;
    parts.next()?.parse().ok()
}

/// Reads a data connection to EOF into a checksum, closing it at EOF
/// (before the caller waits for 226). Returns the byte count.
pub async fn drain_checksum(
    mut data: DataConn,
    buf: &mut [u8],
    sum: &mut Checksum,
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = data.read(buf).await?;
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        total += n as u64;
    }
    drop(data);
    Ok(total)
}

/// Checks that what a data connection delivers, piece by piece, is
/// exactly `expected`: sans-IO, for the async and the blocking client.
pub struct ExpectedData<'a> {
    expected: &'a [u8],
    got: usize,
    same: bool,
}

impl<'a> ExpectedData<'a> {
    /// Nothing received yet.
    pub fn new(expected: &'a [u8]) -> ExpectedData<'a> {
        ExpectedData {
            expected,
            got: 0,
            same: true,
        }
    }

    /// Takes the next piece received.
    pub fn update(&mut self, piece: &[u8]) {
        let end = self.got + piece.len();
        if end > self.expected.len() || piece != &self.expected[self.got..end] {
            self.same = false;
        }
        self.got = end;
    }

    /// After EOF: whether the pieces were the expected bytes, all of them.
    pub fn finish(self) -> io::Result<()> {
        if self.same && self.got == self.expected.len() {
            return Ok(());
        }
        Err(fail(format!(
            "wrong data: {} bytes, expected {}{}",
            self.got,
            self.expected.len(),
            if self.same { "" } else { " (content differs)" }
        )))
    }
}

/// Reads a small data connection to EOF and checks it holds `expected`.
pub async fn drain_expect(mut data: DataConn, buf: &mut [u8], expected: &[u8]) -> io::Result<()> {
    let mut check = ExpectedData::new(expected);
    loop {
        let n = data.read(buf).await?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n]);
    }
    drop(data);
    check.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_and_epsv() {
        assert_eq!(parse_code("220 hi"), Some(220));
        assert_eq!(parse_code("220-hi"), Some(220));
        assert_eq!(parse_code("220"), Some(220));
        assert_eq!(parse_code("22x"), None);
        assert_eq!(
            parse_epsv("Entering Extended Passive Mode (|||50123|)"),
            Some(50123)
        );
        assert_eq!(parse_epsv("EPSV ok (|||2020|)."), Some(2020));
    }

    /// Feeds `bytes` to `reader` in pieces of `step` bytes, collecting
    /// every reply that completes.
    fn feed(reader: &mut ReplyReader, bytes: &[u8], step: usize) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        for mut piece in bytes.chunks(step) {
            while !piece.is_empty() {
                // As a read does: at most what the spare room takes.
                let spare = reader.spare().unwrap();
                let n = spare.len().min(piece.len());
                spare[..n].copy_from_slice(&piece[..n]);
                reader.filled(n).unwrap();
                piece = &piece[n..];
                while let Some(r) = reader.next_reply().unwrap() {
                    out.push((r.code, r.text));
                }
            }
        }
        out
    }

    #[test]
    fn expected_data_needs_every_byte_and_no_more() {
        let whole = b"0123456789";
        let check = |pieces: &[&[u8]]| {
            let mut c = ExpectedData::new(whole);
            for p in pieces {
                c.update(p);
            }
            c.finish()
        };
        assert!(check(&[b"0123", b"456789"]).is_ok());
        assert!(check(&[b"0123", b"45678"]).is_err(), "short");
        assert!(check(&[b"0123456789", b"x"]).is_err(), "long");
        assert!(check(&[b"0123", b"4X6789"]).is_err(), "different");
    }

    #[test]
    fn reply_reader_joins_lines_split_anywhere() {
        let input = b"220 hi\r\n211-Features:\r\n EPSV\r\n211 End\r\n150 go\r\n226 done\r\n";
        let want = vec![
            (220, "hi".to_owned()),
            (211, "End".to_owned()),
            (150, "go".to_owned()),
            (226, "done".to_owned()),
        ];
        for step in [1, 2, 7, input.len()] {
            let mut reader = ReplyReader::new(16);
            assert_eq!(feed(&mut reader, input, step), want, "step {step}");
            assert!(reader.is_empty());
        }
    }

    #[test]
    fn reply_reader_refuses_garbage_overlong_lines_and_eof() {
        let mut reader = ReplyReader::new(16);
        reader.spare().unwrap()[..5].copy_from_slice(b"xyz\r\n");
        reader.filled(5).unwrap();
        assert!(reader.next_reply().is_err());

        let mut reader = ReplyReader::new(16);
        let mut overlong = Ok(());
        for _ in 0..REPLY_LINE_MAX {
            match reader.spare() {
                Ok(spare) => {
                    let n = spare.len();
                    spare.fill(b'a');
                    reader.filled(n).unwrap();
                }
                Err(e) => {
                    overlong = Err(e);
                    break;
                }
            }
        }
        assert!(
            overlong.is_err(),
            "a line without end must not grow the buffer forever"
        );

        let mut reader = ReplyReader::new(16);
        assert_eq!(
            reader.filled(0).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }
}
