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

/// A control connection.
pub struct Control {
    stream: Async<TcpStream>,
    buf: Vec<u8>,
    start: usize,
    end: usize,
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
        // line longer than `buf` grows it; `out` grows to the longest
        // command sent.
        let mut ctl = Control {
            stream,
            buf: vec![0; 256],
            start: 0,
            end: 0,
            peer: addr,
            src,
            out: Vec::new(),
        };
        ctl.expect(220).await?;
        Ok(ctl)
    }

    /// Reads one line (without CRLF) into a fresh string.
    async fn line(&mut self) -> io::Result<String> {
        loop {
            if let Some(nl) = self.buf[self.start..self.end]
                .iter()
                .position(|&b| b == b'\n')
            {
                let mut line = &self.buf[self.start..self.start + nl];
                if line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let text = String::from_utf8_lossy(line).into_owned();
                self.start += nl + 1;
                return Ok(text);
            }
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.end == self.buf.len() {
                if self.buf.len() >= 64 * 1024 {
                    return Err(fail("reply line too long"));
                }
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = self.stream.read(&mut self.buf[self.end..]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "control connection closed",
                ));
            }
            self.end += n;
        }
    }

    /// Reads one (possibly multi-line) reply.
    pub async fn reply(&mut self) -> io::Result<Reply> {
        let first = self.line().await?;
        let code = parse_code(&first).ok_or_else(|| fail(format!("bad reply: {first:?}")))?;
        if first.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: first[3..].trim().to_owned(),
            });
        }
        loop {
            let line = self.line().await?;
            if parse_code(&line) == Some(code) && line.as_bytes().get(3) == Some(&b' ') {
                return Ok(Reply {
                    code,
                    text: line[3..].trim().to_owned(),
                });
            }
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
        if self.start == self.end {
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

/// Reads a small data connection to EOF and checks it holds `expected`.
pub async fn drain_expect(mut data: DataConn, buf: &mut [u8], expected: &[u8]) -> io::Result<()> {
    let mut got = 0usize;
    let mut same = true;
    loop {
        let n = data.read(buf).await?;
        if n == 0 {
            break;
        }
        if got + n > expected.len() || buf[..n] != expected[got..got + n] {
            same = false;
        }
        got += n;
    }
    drop(data);
    if !same || got != expected.len() {
        return Err(fail(format!(
            "wrong data: {got} bytes, expected {}{}",
            expected.len(),
            if same { "" } else { " (content differs)" }
        )));
    }
    Ok(())
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
}
