//! Smoke tests of the mio runtime: a real server on loopback (port 0), a
//! raw FTP client over `std::net`. The full conformance suite lives in the
//! workspace's `tests` crate; these check that the runtime moves bytes
//! and performs intents correctly.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use ftp_host::cli::{Invocation, parse_args};
use ftp_host::daemon::{Runtime, Shutdown};
use ftp_host::server::Server;
use ftp_mio::Mio;

/// Generous bound on any single wait, so a broken server fails a test
/// instead of hanging it. Nothing is measured.
const WAIT: Duration = Duration::from_secs(20);

fn server_for(dir: &Path, extra: &[&str]) -> Arc<Server> {
    let mut args = vec![
        "ftp-mio".to_string(),
        "-w".to_string(),
        dir.display().to_string(),
        "-l".to_string(),
        "127.0.0.1:0".to_string(),
        "--shutdown-grace".to_string(),
        "2".to_string(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let Invocation::Serve(config) = parse_args(args).expect("valid arguments") else {
        panic!("expected a serve invocation");
    };
    Server::new(config).expect("server starts")
}

/// `Mio::serve` on its own thread, with a folder to serve.
struct Daemon {
    dir: tempfile::TempDir,
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Daemon {
    fn start(extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let server = server_for(dir.path(), extra);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = thread::spawn(move || Mio::serve(server, vec![listener], stop));
        Daemon {
            dir,
            addr,
            shutdown,
            thread: Some(thread),
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn client(&self) -> Client {
        Client::connect(self.addr)
    }

    /// Triggers shutdown and checks that `serve` returns `Ok`.
    fn stop(mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A minimal FTP client.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        let mut client = Client::over(stream);
        assert_eq!(client.reply().0, 220);
        client
    }

    fn over(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes());
    }

    /// Reads one reply: its code and all its text.
    fn reply(&mut self) -> (u16, String) {
        let mut first = String::new();
        self.reader.read_line(&mut first).unwrap();
        assert!(first.ends_with("\r\n"), "bad reply line {first:?}");
        let code: u16 = first[..3].parse().unwrap();
        let mut text = first.clone();
        if first.as_bytes()[3] == b'-' {
            let end = format!("{code} ");
            loop {
                let mut line = String::new();
                self.reader.read_line(&mut line).unwrap();
                assert!(!line.is_empty(), "EOF inside a multi-line reply");
                text.push_str(&line);
                if line.starts_with(&end) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.send(line);
        self.reply()
    }

    fn expect(&mut self, line: &str, code: u16) -> String {
        let (got, text) = self.cmd(line);
        assert_eq!(got, code, "{line} -> {text}");
        text
    }

    fn login(&mut self) {
        self.expect("USER anonymous", 331);
        self.expect("PASS test@", 230);
    }

    fn epsv(&mut self) -> SocketAddr {
        let text = self.expect("EPSV", 229);
        let inner = text.split("(|||").nth(1).unwrap();
        let port: u16 = inner.split('|').next().unwrap().parse().unwrap();
        SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
    }

    fn pasv(&mut self) -> SocketAddr {
        let text = self.expect("PASV", 227);
        let inner = text.split('(').nth(1).unwrap().split(')').next().unwrap();
        let n: Vec<u16> = inner
            .split(',')
            .map(|s| s.trim().parse().unwrap())
            .collect();
        let ip = Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        SocketAddr::new(ip.into(), n[4] * 256 + n[5])
    }

    /// Reads what the server sends until it closes the connection.
    fn read_to_close(&mut self) -> Vec<u8> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        rest
    }

    /// Downloads with `command` over a passive connection to `data`.
    fn download(&mut self, data: SocketAddr, command: &str) -> Vec<u8> {
        let mut conn = connect_data(data);
        let (code, text) = self.cmd(command);
        assert_eq!(code, 150, "{command} -> {text}");
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(self.reply().0, 226);
        got
    }

    /// Uploads `bytes` with `command` over a passive connection to `data`.
    fn upload(&mut self, data: SocketAddr, command: &str, bytes: &[u8]) {
        let mut conn = connect_data(data);
        let (code, text) = self.cmd(command);
        assert_eq!(code, 150, "{command} -> {text}");
        conn.write_all(bytes).unwrap();
        drop(conn);
        let (code, text) = self.reply();
        assert_eq!(code, 226, "{command} -> {text}");
    }
}

fn connect_data(addr: SocketAddr) -> TcpStream {
    let conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(WAIT)).unwrap();
    conn
}

/// Bytes that are not text and do not repeat with a short period.
fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// Text with LF line ends, and its network (CRLF) form.
fn text_pair(lines: usize) -> (Vec<u8>, Vec<u8>) {
    let mut lf = Vec::new();
    let mut crlf = Vec::new();
    for i in 0..lines {
        let line = format!("line {i} of some text that goes on for a while");
        lf.extend_from_slice(line.as_bytes());
        lf.push(b'\n');
        crlf.extend_from_slice(line.as_bytes());
        crlf.extend_from_slice(b"\r\n");
    }
    (lf, crlf)
}

#[test]
fn login_pwd_list_quit() {
    let daemon = Daemon::start(&[]);
    std::fs::write(daemon.path("hello.txt"), b"hello\n").unwrap();
    std::fs::create_dir(daemon.path("folder")).unwrap();
    let mut c = daemon.client();
    c.expect("PWD", 530);
    c.login();
    let pwd = c.expect("PWD", 257);
    assert!(pwd.starts_with("257 \"/\""), "{pwd}");
    let data = c.epsv();
    let listing = String::from_utf8(c.download(data, "LIST")).unwrap();
    assert!(listing.contains("hello.txt"), "{listing}");
    assert!(listing.contains("folder"), "{listing}");
    assert!(listing.ends_with("\r\n"));
    let data = c.epsv();
    let names = String::from_utf8(c.download(data, "NLST")).unwrap();
    assert_eq!(names, "folder\r\nhello.txt\r\n");
    c.expect("QUIT", 221);
    assert!(c.read_to_close().is_empty());
    drop(c);
    daemon.stop();
}

#[test]
fn binary_and_ascii_transfers_round_trip() {
    let daemon = Daemon::start(&[]);
    let mut c = daemon.client();
    c.login();
    // Binary: a few MiB up, then down (sendfile), byte for byte.
    c.expect("TYPE I", 200);
    let bytes = pattern(3 * 1024 * 1024 + 17);
    let data = c.epsv();
    c.upload(data, "STOR blob.bin", &bytes);
    assert!(std::fs::read(daemon.path("blob.bin")).unwrap() == bytes);
    let data = c.epsv();
    assert!(c.download(data, "RETR blob.bin") == bytes);
    // REST (right before RETR: it applies to the next command only).
    let data = c.epsv();
    c.expect("REST 1000", 350);
    assert!(c.download(data, "RETR blob.bin") == bytes[1000..]);
    // PASV works as well as EPSV.
    let data = c.pasv();
    assert!(c.download(data, "RETR blob.bin") == bytes);
    // TYPE A: LF on disk, CRLF on the wire, both ways.
    let (lf, crlf) = text_pair(60_000);
    std::fs::write(daemon.path("text.txt"), &lf).unwrap();
    c.expect("TYPE A", 200);
    let data = c.epsv();
    assert!(c.download(data, "RETR text.txt") == crlf);
    let data = c.epsv();
    c.upload(data, "STOR back.txt", &crlf);
    assert!(std::fs::read(daemon.path("back.txt")).unwrap() == lf);
    c.expect("QUIT", 221);
    drop(c);
    daemon.stop();
}

#[test]
fn active_mode_port_and_eprt() {
    let daemon = Daemon::start(&[]);
    let bytes = pattern(2 * 1024 * 1024);
    std::fs::write(daemon.path("file.bin"), &bytes).unwrap();
    let mut c = daemon.client();
    c.login();
    c.expect("TYPE I", 200);
    for extended in [false, true] {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if extended {
            c.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
        } else {
            c.expect(
                &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
                200,
            );
        }
        c.send("RETR file.bin");
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(c.reply().0, 150);
        let mut got = Vec::new();
        conn.read_to_end(&mut got).unwrap();
        assert_eq!(c.reply().0, 226);
        assert!(got == bytes);
    }
    // An upload over an active connection.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.expect(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        200,
    );
    c.send("STOR active.bin");
    let (mut conn, _) = listener.accept().unwrap();
    assert_eq!(c.reply().0, 150);
    conn.write_all(&bytes).unwrap();
    drop(conn);
    assert_eq!(c.reply().0, 226);
    assert!(std::fs::read(daemon.path("active.bin")).unwrap() == bytes);
    // Nobody listens: the connect fails and the client is told.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.expect(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        200,
    );
    let (code, _) = c.cmd("RETR file.bin");
    assert_eq!(code, 150);
    assert_eq!(c.reply().0, 425);
    c.expect("NOOP", 200);
    drop(c);
    daemon.stop();
}

#[test]
fn abort_during_a_large_download() {
    let daemon = Daemon::start(&[]);
    // Large enough never to fit in socket buffers; sparse, so cheap.
    let file = std::fs::File::create(daemon.path("huge.bin")).unwrap();
    file.set_len(256 * 1024 * 1024).unwrap();
    let mut c = daemon.client();
    c.login();
    c.expect("TYPE I", 200);
    let data = c.epsv();
    let mut conn = connect_data(data);
    assert_eq!(c.cmd("RETR huge.bin").0, 150);
    // Data flows; then the client stops reading and aborts.
    let mut some = vec![0; 64 * 1024];
    conn.read_exact(&mut some).unwrap();
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    let (code, text) = c.reply();
    assert_eq!(code, 426, "{text}");
    let (code, text) = c.reply();
    assert_eq!(code, 226, "{text}");
    drop(conn);
    // The session goes on: another (small) transfer works.
    c.expect("NOOP", 200);
    std::fs::write(daemon.path("small.txt"), b"small\n").unwrap();
    let data = c.epsv();
    assert_eq!(c.download(data, "RETR small.txt"), b"small\n");
    c.expect("QUIT", 221);
    drop(c);
    daemon.stop();
}

/// A TCP connection to `to` from the local address `from`.
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> io::Result<TcpStream> {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None)?;
    bind(&fd, &SocketAddr::V4(SocketAddrV4::new(from, 0)))?;
    connect(&fd, &to)?;
    Ok(TcpStream::from(fd))
}

#[test]
fn passive_port_refuses_other_addresses() {
    let daemon = Daemon::start(&[]);
    std::fs::write(daemon.path("file.txt"), b"the real data\n").unwrap();
    let mut c = daemon.client();
    c.login();
    c.expect("TYPE I", 200);
    let data = c.epsv();
    let mut rogue = connect_from(Ipv4Addr::new(127, 0, 0, 2), data).unwrap();
    rogue.set_read_timeout(Some(WAIT)).unwrap();
    // The server closes it without sending anything.
    let mut buf = [0u8; 16];
    match rogue.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        other => panic!("the rogue connection got {other:?}"),
    }
    assert_eq!(c.download(data, "RETR file.txt"), b"the real data\n");
    c.expect("QUIT", 221);
    drop(c);
    daemon.stop();
}

#[test]
fn idle_timeout_closes_with_421() {
    let daemon = Daemon::start(&["-t", "1"]);
    let mut c = daemon.client();
    let (code, text) = c.reply();
    assert_eq!(code, 421, "{text}");
    assert!(c.read_to_close().is_empty());
    drop(c);
    daemon.stop();
}

#[test]
fn connection_limit_refuses_with_421() {
    let daemon = Daemon::start(&["--max-clients", "1"]);
    let mut first = daemon.client();
    let mut second = Client::over(TcpStream::connect(daemon.addr).unwrap());
    let (code, text) = second.reply();
    assert_eq!(code, 421, "{text}");
    assert!(second.read_to_close().is_empty());
    first.expect("NOOP", 200);
    first.expect("QUIT", 221);
    drop((first, second));
    daemon.stop();
}

#[test]
fn sessions_run_in_parallel_on_several_loops() {
    let daemon = Daemon::start(&["--threads", "3"]);
    let addr = daemon.addr;
    let clients: Vec<_> = (0..8)
        .map(|i| {
            thread::spawn(move || {
                let bytes = pattern(512 * 1024 + i);
                let mut c = Client::connect(addr);
                c.login();
                c.expect("TYPE I", 200);
                let name = format!("file-{i}.bin");
                let data = c.epsv();
                c.upload(data, &format!("STOR {name}"), &bytes);
                let data = c.epsv();
                assert!(c.download(data, &format!("RETR {name}")) == bytes);
                c.expect("QUIT", 221);
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    daemon.stop();
}

#[test]
fn serve_one_runs_a_single_session() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one.txt"), b"just one\n").unwrap();
    let server = server_for(dir.path(), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The tiny accept loop an inetd would be.
    let inetd = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        Mio::serve_one(server, stream)
    });
    let mut c = Client::connect(addr);
    c.login();
    let data = c.epsv();
    let listing = String::from_utf8(c.download(data, "LIST")).unwrap();
    assert!(listing.contains("one.txt"), "{listing}");
    c.expect("QUIT", 221);
    assert!(c.read_to_close().is_empty());
    drop(c);
    inetd.join().unwrap().unwrap();
}
