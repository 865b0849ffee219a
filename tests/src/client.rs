//! A small, strict FTP client over `std::net`.
//!
//! Replies are parsed strictly: every line ends in CRLF, a reply starts
//! with three digits (first digit 1–5) and a space or a hyphen, and a
//! multi-line reply (`xyz-`) ends at the first line starting with the same
//! `xyz `. Anything else panics, failing the test.

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::TIMEOUT;

/// Longest reply line accepted.
const MAX_LINE: u64 = 64 * 1024;
/// Most lines in one multi-line reply.
const MAX_LINES: usize = 100_000;

/// One reply: its code and its lines, without line ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// Every line as received, without CRLF (the first and last lines
    /// include the code).
    pub lines: Vec<String>,
}

impl Reply {
    /// The text of the first line, after `xyz ` or `xyz-`.
    pub fn text(&self) -> &str {
        &self.lines[0][4..]
    }

    /// The text of the last line, after `xyz `.
    pub fn last_text(&self) -> &str {
        &self.lines[self.lines.len() - 1][4..]
    }

    /// The lines between the first and the last of a multi-line reply.
    pub fn inner(&self) -> &[String] {
        if self.lines.len() <= 2 {
            &[]
        } else {
            &self.lines[1..self.lines.len() - 1]
        }
    }

    /// Whether it is a multi-line reply.
    pub fn is_multiline(&self) -> bool {
        self.lines[0].as_bytes()[3] == b'-'
    }

    /// The single line of a single-line reply, e.g. `200 NOOP ok.`.
    pub fn line(&self) -> &str {
        assert!(!self.is_multiline(), "expected one line: {self}");
        &self.lines[0]
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lines.join("\\r\\n"))
    }
}

/// How [`Client`] opens data connections for its transfer helpers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataMode {
    /// `PASV`, then connect (IPv4 only).
    Pasv,
    /// `EPSV`, then connect.
    Epsv,
    /// `PORT` to a listener of ours, then accept (IPv4 only).
    Port,
    /// `EPRT` to a listener of ours, then accept.
    Eprt,
}

/// A data channel announced to the server, not yet connected.
#[derive(Debug)]
pub enum Data {
    /// The server listens here (PASV, EPSV).
    Passive(SocketAddr),
    /// We listen (PORT, EPRT).
    Active(TcpListener),
}

impl Data {
    /// Connects (passive) or accepts (active) with [`TIMEOUT`].
    pub fn open(self) -> io::Result<TcpStream> {
        match self {
            Data::Passive(addr) => {
                let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
                prepare(&s);
                Ok(s)
            }
            Data::Active(listener) => accept_timeout(&listener, TIMEOUT),
        }
    }
}

/// Accepts one connection within `timeout`.
pub fn accept_timeout(listener: &TcpListener, timeout: Duration) -> io::Result<TcpStream> {
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false)?;
                prepare(&s);
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the server did not connect to our PORT/EPRT listener",
                    ));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Err(e) => return Err(e),
        }
    }
}

fn prepare(s: &TcpStream) {
    let _ = s.set_read_timeout(Some(TIMEOUT));
    let _ = s.set_write_timeout(Some(TIMEOUT));
}

/// A data connection of a running transfer, with the `1xx` reply that
/// opened it.
#[derive(Debug)]
pub struct Transfer {
    /// The `150` (or `125`) reply.
    pub opening: Reply,
    /// The data connection.
    pub stream: TcpStream,
}

/// A control connection.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    /// The first reply (`220`, or `421` when refused).
    pub greeting: Reply,
    /// How transfer helpers open data connections.
    pub mode: DataMode,
    /// The local address passive data connections are made from (`None`:
    /// the kernel's choice); set by [`Client::try_connect_from`].
    pub source: Option<IpAddr>,
}

impl Client {
    /// Connects and reads the greeting, which must be `220`.
    pub fn connect(addr: SocketAddr) -> Client {
        let c = Client::try_connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        assert_eq!(c.greeting.code, 220, "greeting: {}", c.greeting);
        c
    }

    /// Connects and reads the greeting, whatever it is.
    pub fn try_connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        Client::from_stream(s)
    }

    /// Takes over a connected socket and reads the greeting.
    pub fn from_stream(s: TcpStream) -> io::Result<Client> {
        prepare(&s);
        s.set_nodelay(true)?;
        let mode = if s.peer_addr()?.is_ipv6() {
            DataMode::Epsv
        } else {
            DataMode::Pasv
        };
        let writer = s.try_clone()?;
        let mut reader = BufReader::new(s);
        let greeting = read_reply_from(&mut reader)?;
        Ok(Client {
            reader,
            writer,
            greeting,
            mode,
            source: None,
        })
    }

    /// Connects from the local address `from` (and makes passive data
    /// connections from it too) and reads the greeting, whatever it is.
    pub fn try_connect_from(from: IpAddr, to: SocketAddr) -> io::Result<Client> {
        let mut c = Client::from_stream(connect_from(from, to)?)?;
        c.source = Some(from);
        Ok(c)
    }

    /// Connects, sends `header` (a PROXY header: see
    /// [`crate::proxy_header`]) and reads the greeting, whatever it is.
    pub fn try_connect_with(addr: SocketAddr, header: &[u8]) -> io::Result<Client> {
        let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
        s.write_all(header)?;
        Client::from_stream(s)
    }

    /// The server's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.writer.peer_addr().expect("peer address")
    }

    /// Our address on the control connection.
    pub fn local_addr(&self) -> SocketAddr {
        self.writer.local_addr().expect("local address")
    }

    /// The control socket (for socket options in tests).
    pub fn socket(&self) -> &TcpStream {
        &self.writer
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.writer
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("sending {:?}: {e}", String::from_utf8_lossy(bytes)));
    }

    /// Sends one command line (CRLF added) without reading the reply.
    pub fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads the next reply; panics on a malformed one, end of stream or
    /// timeout.
    pub fn read_reply(&mut self) -> Reply {
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading a reply: {e}"))
    }

    /// Reads the next reply; I/O errors and the end of the stream are
    /// returned (`UnexpectedEof`), malformed replies panic.
    pub fn try_read_reply(&mut self) -> io::Result<Reply> {
        read_reply_from(&mut self.reader)
    }

    /// Sends a command and reads its reply.
    pub fn cmd(&mut self, line: &str) -> Reply {
        self.send(line);
        self.try_read_reply()
            .unwrap_or_else(|e| panic!("reading the reply to {line:?}: {e}"))
    }

    /// Sends a command and checks the reply code.
    pub fn expect(&mut self, line: &str, code: u16) -> Reply {
        let r = self.cmd(line);
        assert_eq!(r.code, code, "{line:?} got {r}, expected {code}");
        r
    }

    /// Reads the next reply and checks its code.
    pub fn expect_reply(&mut self, code: u16) -> Reply {
        let r = self.read_reply();
        assert_eq!(r.code, code, "got {r}, expected {code}");
        r
    }

    /// Sends a command and checks the whole single-line reply.
    pub fn check(&mut self, line: &str, expected: &str) {
        let r = self.cmd(line);
        assert_eq!(r.lines, [expected], "{line:?}");
    }

    /// Checks that the server closes the control connection (end of stream
    /// or reset) within [`TIMEOUT`], with no further reply.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 512];
        match self.reader.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!(
                "expected the connection to close, got {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("expected the connection to close: {e}"),
        }
    }

    /// `USER anonymous` / `PASS guest@`, expecting 331 and 230.
    pub fn login_anonymous(&mut self) {
        self.login("anonymous", "guest@");
    }

    /// `USER name` / `PASS password`, expecting 331 and 230.
    pub fn login(&mut self, user: &str, password: &str) {
        self.expect(&format!("USER {user}"), 331);
        self.expect(&format!("PASS {password}"), 230);
    }

    /// `QUIT`: 221, then the server closes.
    pub fn quit(mut self) {
        self.check("QUIT", "221 Goodbye.");
        self.expect_closed();
    }

    /// `PASV`: the address from the 227 reply.
    pub fn pasv(&mut self) -> SocketAddr {
        let r = self.expect("PASV", 227);
        parse_227(&r).unwrap_or_else(|| panic!("malformed 227: {r}"))
    }

    /// `EPSV`: the port of the 229 reply, on the control connection's peer
    /// address.
    pub fn epsv(&mut self) -> SocketAddr {
        let r = self.expect("EPSV", 229);
        let port = parse_229(&r).unwrap_or_else(|| panic!("malformed 229: {r}"));
        SocketAddr::new(self.peer_addr().ip(), port)
    }

    /// Listens on our control address and sends `PORT` (expects 200).
    pub fn port_listener(&mut self) -> TcpListener {
        let listener = self.listen_local();
        let addr = listener.local_addr().unwrap();
        let IpAddr::V4(ip) = addr.ip() else {
            panic!("PORT needs IPv4, control connection is {addr}")
        };
        let [a, b, c, d] = ip.octets();
        let (p1, p2) = (addr.port() >> 8, addr.port() & 0xff);
        self.expect(&format!("PORT {a},{b},{c},{d},{p1},{p2}"), 200);
        listener
    }

    /// Listens on our control address and sends `EPRT` (expects 200).
    pub fn eprt_listener(&mut self) -> TcpListener {
        let listener = self.listen_local();
        let addr = listener.local_addr().unwrap();
        let proto = if addr.is_ipv4() { 1 } else { 2 };
        self.expect(
            &format!("EPRT |{proto}|{}|{}|", addr.ip(), addr.port()),
            200,
        );
        listener
    }

    fn listen_local(&self) -> TcpListener {
        let ip = self.local_addr().ip();
        TcpListener::bind(SocketAddr::new(ip, 0)).expect("listen for active mode")
    }

    /// Prepares a data channel the way [`Client::mode`] says.
    pub fn data(&mut self) -> Data {
        match self.mode {
            DataMode::Pasv => Data::Passive(self.pasv()),
            DataMode::Epsv => Data::Passive(self.epsv()),
            DataMode::Port => Data::Active(self.port_listener()),
            DataMode::Eprt => Data::Active(self.eprt_listener()),
        }
    }

    /// Starts a transfer command on `data`. A passive channel is connected
    /// before the command is sent (as most clients do); an active one is
    /// accepted after the `1xx` reply. Returns the refusal if the reply is
    /// not `1xx`.
    pub fn start(&mut self, line: &str, data: Data) -> Result<Transfer, Reply> {
        match data {
            Data::Passive(addr) => {
                let stream = match self.source {
                    Some(from) => connect_from(from, addr),
                    None => TcpStream::connect_timeout(&addr, TIMEOUT),
                };
                self.send(line);
                let r = self.read_reply();
                if r.code / 100 != 1 {
                    return Err(r);
                }
                let stream = stream.unwrap_or_else(|e| panic!("{line:?}: connect {addr}: {e}"));
                prepare(&stream);
                Ok(Transfer { opening: r, stream })
            }
            Data::Active(listener) => {
                self.send(line);
                let r = self.read_reply();
                if r.code / 100 != 1 {
                    return Err(r);
                }
                let stream = accept_timeout(&listener, TIMEOUT)
                    .unwrap_or_else(|e| panic!("{line:?} after {r}: {e}"));
                Ok(Transfer { opening: r, stream })
            }
        }
    }

    /// Runs a command that sends data to us (RETR, LIST, NLST, MLSD):
    /// returns the bytes, or the refusal. Panics unless the transfer ends
    /// with `226`.
    pub fn download(&mut self, line: &str) -> Result<Vec<u8>, Reply> {
        self.download_from(line, None)
    }

    /// [`Client::download`] with `REST offset` sent right before the
    /// command (after the data channel is prepared, as REST must come
    /// immediately before the transfer command).
    pub fn download_from(&mut self, line: &str, rest: Option<u64>) -> Result<Vec<u8>, Reply> {
        let data = self.data();
        if let Some(offset) = rest {
            self.check(
                &format!("REST {offset}"),
                &format!("350 Restart position accepted ({offset})."),
            );
        }
        let mut t = self.start(line, data)?;
        let mut bytes = Vec::new();
        t.stream
            .read_to_end(&mut bytes)
            .unwrap_or_else(|e| panic!("{line:?}: reading data: {e}"));
        drop(t.stream);
        let end = self.read_reply();
        assert_eq!(end.code, 226, "{line:?} ended with {end}");
        Ok(bytes)
    }

    /// Runs a command that receives data (STOR, APPE, STOU): sends `bytes`,
    /// closes the data connection and returns the opening reply, or the
    /// refusal. Panics unless the transfer ends with `226`.
    pub fn upload(&mut self, line: &str, bytes: &[u8]) -> Result<Reply, Reply> {
        self.upload_from(line, None, bytes)
    }

    /// [`Client::upload`] with `REST offset` right before the command.
    pub fn upload_from(
        &mut self,
        line: &str,
        rest: Option<u64>,
        bytes: &[u8],
    ) -> Result<Reply, Reply> {
        let data = self.data();
        if let Some(offset) = rest {
            self.check(
                &format!("REST {offset}"),
                &format!("350 Restart position accepted ({offset})."),
            );
        }
        let mut t = self.start(line, data)?;
        t.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("{line:?}: writing data: {e}"));
        let _ = t.stream.shutdown(std::net::Shutdown::Write);
        drop(t.stream);
        let end = self.read_reply();
        assert_eq!(end.code, 226, "{line:?} ended with {end}");
        Ok(t.opening)
    }

    /// `RETR path`, which must succeed.
    pub fn retr(&mut self, path: &str) -> Vec<u8> {
        self.download(&format!("RETR {path}"))
            .unwrap_or_else(|r| panic!("RETR {path}: {r}"))
    }

    /// `REST offset` + `RETR path`, which must succeed.
    pub fn retr_from(&mut self, path: &str, offset: u64) -> Vec<u8> {
        self.download_from(&format!("RETR {path}"), Some(offset))
            .unwrap_or_else(|r| panic!("REST {offset} + RETR {path}: {r}"))
    }

    /// `REST offset` + `STOR path`, which must succeed.
    pub fn stor_from(&mut self, path: &str, offset: u64, bytes: &[u8]) -> Reply {
        self.upload_from(&format!("STOR {path}"), Some(offset), bytes)
            .unwrap_or_else(|r| panic!("REST {offset} + STOR {path}: {r}"))
    }

    /// `STOR path`, which must succeed.
    pub fn stor(&mut self, path: &str, bytes: &[u8]) -> Reply {
        self.upload(&format!("STOR {path}"), bytes)
            .unwrap_or_else(|r| panic!("STOR {path}: {r}"))
    }

    /// `LIST args` (no space when `args` is empty) as text.
    pub fn list(&mut self, args: &str) -> String {
        self.listing("LIST", args)
    }

    /// `NLST args` as text.
    pub fn nlst(&mut self, args: &str) -> String {
        self.listing("NLST", args)
    }

    /// `MLSD args` as text.
    pub fn mlsd(&mut self, args: &str) -> String {
        self.listing("MLSD", args)
    }

    fn listing(&mut self, verb: &str, args: &str) -> String {
        let line = if args.is_empty() {
            verb.to_string()
        } else {
            format!("{verb} {args}")
        };
        let bytes = self
            .download(&line)
            .unwrap_or_else(|r| panic!("{line}: {r}"));
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{line}: not UTF-8: {e}"))
    }
}

/// Reads one strictly formed reply.
fn read_reply_from(reader: &mut impl BufRead) -> io::Result<Reply> {
    let first = read_line(reader, None)?;
    let bytes = first.as_bytes();
    let well_formed = bytes.len() >= 4
        && bytes[..3].iter().all(u8::is_ascii_digit)
        && (b'1'..=b'5').contains(&bytes[0])
        && (bytes[3] == b' ' || bytes[3] == b'-');
    assert!(well_formed, "malformed reply line {first:?}");
    let code: u16 = first[..3].parse().unwrap();
    let multi = bytes[3] == b'-';
    let mut lines = vec![first];
    if multi {
        let end = format!("{code} ");
        loop {
            let line = read_line(reader, Some(&lines))?;
            let last = line.starts_with(&end);
            lines.push(line);
            if last {
                break;
            }
            assert!(
                lines.len() < MAX_LINES,
                "multi-line {code} reply without end"
            );
        }
    }
    Ok(Reply { code, lines })
}

/// Reads one CRLF-terminated UTF-8 line (without the CRLF).
fn read_line(reader: &mut impl BufRead, so_far: Option<&[String]>) -> io::Result<String> {
    let mut buf = Vec::new();
    reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf)?;
    let context = || match so_far {
        Some(lines) => format!(" after {lines:?}"),
        None => String::new(),
    };
    if buf.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed{}", context()),
        ));
    }
    assert!(
        buf.ends_with(b"\r\n"),
        "reply line not ended by CRLF: {:?}{}",
        String::from_utf8_lossy(&buf),
        context()
    );
    buf.truncate(buf.len() - 2);
    assert!(
        !buf.contains(&b'\r') && !buf.contains(&0),
        "CR or NUL inside a reply line: {:?}",
        String::from_utf8_lossy(&buf)
    );
    Ok(String::from_utf8(buf)
        .unwrap_or_else(|e| panic!("reply line is not UTF-8: {e}{}", context())))
}

/// The address of a `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2).` reply.
pub fn parse_227(r: &Reply) -> Option<SocketAddr> {
    let text = r.text();
    let open = text.find('(')?;
    let close = open + text[open..].find(')')?;
    let nums: Vec<u8> = text[open + 1..close]
        .split(',')
        .map(|n| n.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = nums[..] else {
        return None;
    };
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        u16::from(p1) << 8 | u16::from(p2),
    ))
}

/// The port of a `229 Entering Extended Passive Mode (|||port|)` reply.
pub fn parse_229(r: &Reply) -> Option<u16> {
    let text = r.text();
    let open = text.find("(|||")?;
    let rest = &text[open + 4..];
    let close = rest.find("|)")?;
    rest[..close].parse().ok()
}

/// A TCP connection to `to` from a chosen local address (to play a data
/// connection from the wrong host).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType};
    let family = if to.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd: OwnedFd = rustix::net::socket(family, SocketType::STREAM, None)?;
    rustix::net::bind(&fd, &SocketAddr::new(from, 0))?;
    rustix::net::connect(&fd, &to)?;
    let s = TcpStream::from(fd);
    prepare(&s);
    Ok(s)
}

/// Closes a connection with a reset (SO_LINGER 0) rather than an orderly
/// end of stream, so the peer sees an error and not end-of-file.
pub fn reset(s: TcpStream) {
    let _ = rustix::net::sockopt::set_socket_linger(&s, Some(Duration::ZERO));
    drop(s);
}

/// `::1` as an address, for IPv6 tests.
pub const LOCALHOST_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);
