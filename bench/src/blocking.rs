//! The second generator mode, `--generator threads`: every client is an OS
//! thread of its own with blocking sockets, as independent clients on
//! other machines behave. Nothing is batched: each client sends a command,
//! sleeps in `read` until the reply, and goes on, so the server sees one
//! event at a time from each of them instead of a burst from one busy
//! generator thread.
//!
//! The same raw-FTP steps as [`crate::client`], with `std::net` sockets.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::checksum::Checksum;
use crate::client::{ExpectedData, Reply, ReplyReader, fail, parse_epsv};

/// Every blocking read or write gives up after this long.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a blocking TCP connection (from `src` when given) with the step
/// timeout on reads; writes block as a plain client's do (the bulk upload
/// sets its own timeout). A plain `connect`: on loopback it is done or
/// refused at once, and a client with a timed connect makes five more
/// system calls per connection, which the generator cannot spare.
pub fn connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<TcpStream> {
    let stream = match src {
        None => TcpStream::connect(addr)?,
        Some(src) => {
            let family = if addr.is_ipv4() {
                rustix::net::AddressFamily::INET
            } else {
                rustix::net::AddressFamily::INET6
            };
            let fd = rustix::net::socket_with(
                family,
                rustix::net::SocketType::STREAM,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )?;
            rustix::net::bind(&fd, &SocketAddr::new(src, 0))?;
            rustix::net::connect(&fd, &addr)?;
            TcpStream::from(fd)
        }
    };
    stream.set_read_timeout(Some(STEP_TIMEOUT))?;
    if crate::proxy_header::enabled() {
        let header = crate::proxy_header::for_stream(&stream)?;
        (&stream).write_all(&header)?;
    }
    Ok(stream)
}

/// A blocking control connection.
pub struct Control {
    stream: TcpStream,
    replies: ReplyReader,
    peer: SocketAddr,
    src: Option<IpAddr>,
    out: Vec<u8>,
}

impl Control {
    /// Connects and reads the greeting, which must be 220.
    pub fn connect(addr: SocketAddr, src: Option<IpAddr>) -> io::Result<Control> {
        let stream = connect(addr, src)?;
        let _ = stream.set_nodelay(true);
        let mut ctl = Control {
            stream,
            replies: ReplyReader::new(512),
            peer: addr,
            src,
            out: Vec::with_capacity(64),
        };
        ctl.expect(220)?;
        Ok(ctl)
    }

    /// Reads one (possibly multi-line) reply.
    pub fn reply(&mut self) -> io::Result<Reply> {
        loop {
            if let Some(reply) = self.replies.next_reply()? {
                return Ok(reply);
            }
            let n = self.stream.read(self.replies.spare()?)?;
            self.replies.filled(n)?;
        }
    }

    /// Reads a reply and fails unless it has code `code`.
    pub fn expect(&mut self, code: u16) -> io::Result<Reply> {
        let reply = self.reply()?;
        if reply.code != code {
            return Err(fail(format!(
                "expected {code}, got {} {}",
                reply.code, reply.text
            )));
        }
        Ok(reply)
    }

    /// Sends a command and returns its reply.
    pub fn cmd(&mut self, line: &str) -> io::Result<Reply> {
        self.out.clear();
        self.out.extend_from_slice(line.as_bytes());
        self.out.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.out)?;
        self.reply()
    }

    /// Sends a command and fails unless the reply has code `code`.
    pub fn cmd_expect(&mut self, line: &str, code: u16) -> io::Result<Reply> {
        let reply = self.cmd(line)?;
        if reply.code != code {
            return Err(fail(format!(
                "{line}: expected {code}, got {} {}",
                reply.code, reply.text
            )));
        }
        Ok(reply)
    }

    /// Anonymous login (PASS only when asked for) and binary type.
    pub fn anonymous(&mut self) -> io::Result<()> {
        let r = self.cmd("USER anonymous")?;
        match r.code {
            230 => {}
            331 => {
                self.cmd_expect("PASS bench@example.org", 230)?;
            }
            _ => return Err(fail(format!("USER: {} {}", r.code, r.text))),
        }
        self.cmd_expect("TYPE I", 200)?;
        Ok(())
    }

    /// EPSV, then connects the data connection to the port in the reply.
    pub fn epsv(&mut self) -> io::Result<TcpStream> {
        let r = self.cmd_expect("EPSV", 229)?;
        let port =
            parse_epsv(&r.text).ok_or_else(|| fail(format!("bad EPSV reply: {}", r.text)))?;
        connect(SocketAddr::new(self.peer.ip(), port), self.src)
    }

    /// Sends a transfer command and expects a positive preliminary reply.
    pub fn start_transfer(&mut self, line: &str) -> io::Result<()> {
        let r = self.cmd(line)?;
        if r.code != 150 && r.code != 125 {
            return Err(fail(format!("{line}: {} {}", r.code, r.text)));
        }
        Ok(())
    }

    /// Reads the reply that ends a transfer: 226 (or 250).
    pub fn end_transfer(&mut self) -> io::Result<()> {
        let r = self.reply()?;
        if r.code != 226 && r.code != 250 {
            return Err(fail(format!("end of transfer: {} {}", r.code, r.text)));
        }
        Ok(())
    }

    /// QUIT, 221, then waits (at most 2 s) for the server to close first.
    pub fn quit(mut self) -> io::Result<()> {
        self.cmd_expect("QUIT", 221)?;
        self.stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        let mut byte = [0u8; 64];
        while matches!(self.stream.read(&mut byte), Ok(n) if n > 0) {}
        Ok(())
    }
}

/// Reads a data connection to EOF into a checksum, closing it at EOF.
pub fn drain_checksum(mut data: TcpStream, buf: &mut [u8], sum: &mut Checksum) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = data.read(buf)?;
        if n == 0 {
            return Ok(total);
        }
        sum.update(&buf[..n]);
        total += n as u64;
    }
}

/// Reads a small data connection to EOF (closing it then) and checks it
/// holds `expected`.
pub fn drain_expect(mut data: TcpStream, buf: &mut [u8], expected: &[u8]) -> io::Result<()> {
    let mut check = ExpectedData::new(expected);
    loop {
        let n = data.read(buf)?;
        if n == 0 {
            break;
        }
        check.update(&buf[..n]);
    }
    drop(data);
    check.finish()
}
