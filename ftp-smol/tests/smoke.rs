//! Smoke tests of the smol daemon: a server started in-process on a
//! loopback port, spoken to over raw sockets. The full conformance suite
//! lives in the workspace's `tests` crate; these only check the runtime's
//! plumbing (control loop, passive and active data connections, transfers,
//! abort, peer checks, timeouts, limits, inetd mode).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, Shutdown as NetShutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use ftp_host::cli::{Invocation, parse_args};
use ftp_host::daemon::{Runtime, Shutdown};
use ftp_host::server::Server;
use ftp_smol::Smol;

/// Every socket of the tests gives up after this long.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A server running `Smol::serve` on a thread, shut down when dropped.
struct TestServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    dir: tempfile::TempDir,
}

fn config(dir: &Path, extra: &[&str]) -> Arc<Server> {
    let mut args = vec!["ftp-smol", "-w", dir.to_str().unwrap(), "-l", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let Invocation::Serve(config) = parse_args(args).unwrap() else {
        panic!("not a serve invocation");
    };
    Server::new(config).unwrap()
}

impl TestServer {
    fn start(extra: &[&str]) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut extra = extra.to_vec();
        extra.extend(["--shutdown-grace", "2"]);
        let server = config(dir.path(), &extra);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = Shutdown::new();
        let stop = shutdown.clone();
        let thread = std::thread::spawn(move || Smol::serve(server, vec![listener], stop));
        TestServer {
            addr,
            shutdown,
            thread: Some(thread),
            dir,
        }
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn connect(&self) -> Client {
        Client::connect(self.addr)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.unwrap().unwrap();
            }
        }
    }
}

/// A control connection.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut client = Client {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        client.expect(220);
        client
    }

    /// Reads one (possibly multi-line) reply.
    fn reply(&mut self) -> (u16, String) {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "bad reply line {line:?}");
        let code: u16 = line[..3].parse().unwrap();
        let mut text = line.clone();
        if line.as_bytes()[3] == b'-' {
            loop {
                let mut next = String::new();
                self.reader.read_line(&mut next).unwrap();
                assert!(!next.is_empty(), "connection closed inside a reply");
                text.push_str(&next);
                if next.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn expect(&mut self, code: u16) -> String {
        let (got, text) = self.reply();
        assert_eq!(got, code, "unexpected reply {text:?}");
        text
    }

    fn send(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
    }

    fn cmd(&mut self, line: &str, code: u16) -> String {
        self.send(line);
        self.expect(code)
    }

    fn login(&mut self) {
        self.cmd("USER anonymous", 331);
        self.cmd("PASS guest@", 230);
    }

    /// EPSV and the data connection to the announced port.
    fn epsv(&mut self) -> TcpStream {
        let text = self.cmd("EPSV", 229);
        let port: u16 = text
            .split("|||")
            .nth(1)
            .and_then(|rest| rest.split('|').next())
            .unwrap()
            .parse()
            .unwrap();
        data_connect(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    }

    /// The port announced by EPSV, without connecting.
    fn epsv_port(&mut self) -> u16 {
        let text = self.cmd("EPSV", 229);
        text.split("|||").nth(1).unwrap()[..]
            .trim_end_matches(|c: char| !c.is_ascii_digit())
            .parse()
            .unwrap()
    }

    /// PASV and the data connection to the announced address.
    fn pasv(&mut self) -> TcpStream {
        let text = self.cmd("PASV", 227);
        let inside = text.split('(').nth(1).unwrap().split(')').next().unwrap();
        let n: Vec<u16> = inside.split(',').map(|s| s.parse().unwrap()).collect();
        let ip = Ipv4Addr::new(n[0] as u8, n[1] as u8, n[2] as u8, n[3] as u8);
        data_connect(SocketAddr::from((ip, n[4] * 256 + n[5])))
    }

    /// Downloads `command`'s data over `data`; expects 150 then 226.
    fn download(&mut self, mut data: TcpStream, command: &str) -> Vec<u8> {
        self.cmd(command, 150);
        let mut got = Vec::new();
        data.read_to_end(&mut got).unwrap();
        self.expect(226);
        got
    }

    /// Uploads `bytes` with `command` over `data`; expects 150 then 226.
    fn upload(&mut self, mut data: TcpStream, command: &str, bytes: &[u8]) {
        self.cmd(command, 150);
        data.write_all(bytes).unwrap();
        drop(data);
        self.expect(226);
    }

    fn quit(mut self) {
        self.cmd("QUIT", 221);
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty(), "bytes after 221: {rest:?}");
    }
}

fn data_connect(addr: SocketAddr) -> TcpStream {
    let data = TcpStream::connect(addr).unwrap();
    data.set_read_timeout(Some(TIMEOUT)).unwrap();
    data.set_write_timeout(Some(TIMEOUT)).unwrap();
    data
}

/// Reproducible bytes that do not compress or repeat in short cycles.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn login_pwd_list_quit() {
    let server = TestServer::start(&[]);
    std::fs::write(server.path("hello.txt"), b"hello\n").unwrap();
    std::fs::create_dir(server.path("sub")).unwrap();
    let mut c = server.connect();
    c.login();
    assert!(c.cmd("PWD", 257).contains("\"/\""));
    let data = c.epsv();
    let listing = String::from_utf8(c.download(data, "LIST")).unwrap();
    assert!(listing.contains("hello.txt\r\n"), "{listing:?}");
    assert!(listing.contains(" sub\r\n"), "{listing:?}");
    let data = c.epsv();
    let names = c.download(data, "NLST");
    assert_eq!(names, b"hello.txt\r\nsub\r\n");
    c.quit();
}

#[test]
fn store_and_retrieve_binary_and_ascii() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.login();

    let binary = noise(3 << 20, 7);
    c.cmd("TYPE I", 200);
    let data = c.epsv();
    c.upload(data, "STOR blob.bin", &binary);
    assert!(std::fs::read(server.path("blob.bin")).unwrap() == binary);
    let data = c.epsv();
    let back = c.download(data, "RETR blob.bin");
    assert!(back == binary, "binary RETR differs");
    // REST (right before RETR): the tail only.
    let data = c.epsv();
    c.cmd("REST 1000000", 350);
    assert!(c.download(data, "RETR blob.bin") == binary[1_000_000..]);

    // TYPE A: CRLF on the wire, LF on disk.
    let mut wire = Vec::new();
    let mut disk = Vec::new();
    for (i, chunk) in noise(2 << 20, 9).chunks(61).enumerate() {
        let line: Vec<u8> = chunk
            .iter()
            .map(|b| b'a' + b % 26)
            .chain(format!("{i}").bytes())
            .collect();
        wire.extend_from_slice(&line);
        wire.extend_from_slice(b"\r\n");
        disk.extend_from_slice(&line);
        disk.push(b'\n');
    }
    c.cmd("TYPE A", 200);
    let data = c.epsv();
    c.upload(data, "STOR text.txt", &wire);
    assert!(std::fs::read(server.path("text.txt")).unwrap() == disk);
    let data = c.epsv();
    assert!(
        c.download(data, "RETR text.txt") == wire,
        "ASCII RETR differs"
    );
    c.quit();
}

#[test]
fn pasv_and_port() {
    let server = TestServer::start(&["--threads", "4"]);
    let content = noise(300_000, 3);
    std::fs::write(server.path("f.bin"), &content).unwrap();
    let mut c = server.connect();
    c.login();
    c.cmd("TYPE I", 200);
    let data = c.pasv();
    assert!(c.download(data, "RETR f.bin") == content);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    c.cmd(
        &format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff),
        200,
    );
    c.cmd("RETR f.bin", 150);
    let (mut data, _) = listener.accept().unwrap();
    data.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    c.expect(226);
    assert!(got == content);

    // An upload over an active connection.
    c.cmd(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
    c.cmd("STOR up.bin", 150);
    let (mut data, _) = listener.accept().unwrap();
    data.write_all(&content[..1234]).unwrap();
    drop(data);
    c.expect(226);
    assert_eq!(
        std::fs::read(server.path("up.bin")).unwrap(),
        &content[..1234]
    );
    c.quit();
}

#[test]
fn abort_during_large_retrieve() {
    let server = TestServer::start(&[]);
    // Far more than socket buffers hold: the transfer cannot end unread.
    let big = std::fs::File::create(server.path("big")).unwrap();
    big.set_len(256 << 20).unwrap();
    std::fs::write(server.path("small"), b"small file").unwrap();
    let mut c = server.connect();
    c.login();
    c.cmd("TYPE I", 200);
    let mut data = c.epsv();
    c.cmd("RETR big", 150);
    let mut some = [0u8; 4096];
    data.read_exact(&mut some).unwrap();
    // Telnet IP and Synch (IAC IP IAC DM), then ABOR, as clients send it.
    c.writer.write_all(b"\xff\xf4\xff\xf2ABOR\r\n").unwrap();
    c.expect(426);
    c.expect(226);
    drop(data);
    c.cmd("NOOP", 200);
    let data = c.epsv();
    assert_eq!(c.download(data, "RETR small"), b"small file");
    c.quit();
}

#[test]
fn abort_during_upload_keeps_session() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.login();
    c.cmd("TYPE I", 200);
    let mut data = c.epsv();
    c.cmd("STOR partial.bin", 150);
    data.write_all(&noise(100_000, 5)).unwrap();
    c.send("ABOR");
    c.expect(426);
    c.expect(226);
    drop(data);
    c.cmd("NOOP", 200);
    c.quit();
    // STOR writes under a temporary name: nothing is left behind.
    let names: Vec<_> = std::fs::read_dir(server.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(names.is_empty(), "{names:?}");
}

/// A TCP connection to `to` from `from` (port 0: any).
fn connect_from(from: Ipv4Addr, to: SocketAddr) -> TcpStream {
    use rustix::net::{AddressFamily, SocketType, bind, connect, socket};
    let fd = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    bind(&fd, &SocketAddr::from((from, 0))).unwrap();
    connect(&fd, &to).unwrap();
    let stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[test]
fn passive_port_refuses_other_source_address() {
    let server = TestServer::start(&[]);
    std::fs::write(server.path("f"), b"for the right client").unwrap();
    let mut c = server.connect();
    c.login();
    let port = c.epsv_port();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut intruder = connect_from(Ipv4Addr::new(127, 0, 0, 2), addr);
    // The server closes it: end of stream or a reset, never data.
    let mut buf = [0u8; 16];
    match intruder.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
    let data = data_connect(addr);
    assert_eq!(c.download(data, "RETR f"), b"for the right client");
    c.quit();
}

#[test]
fn idle_timeout_closes_with_421() {
    let server = TestServer::start(&["-t", "1"]);
    let mut c = server.connect();
    c.login();
    c.expect(421);
    let mut rest = Vec::new();
    c.reader.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
}

#[test]
fn over_the_limit_gets_421() {
    let server = TestServer::start(&["--max-clients", "1"]);
    let mut first = server.connect();
    let second = TcpStream::connect(server.addr).unwrap();
    second.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reply = String::new();
    BufReader::new(second).read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("421 "), "{reply:?}");
    first.login();
    first.quit();
}

#[test]
fn serve_one_under_a_tiny_accept_loop() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("one"), b"inetd style").unwrap();
    let server = config(dir.path(), &[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accept_loop = std::thread::spawn(move || {
        for _ in 0..2 {
            let (stream, _) = listener.accept().unwrap();
            Smol::serve_one(server.clone(), stream).unwrap();
        }
    });
    for _ in 0..2 {
        let mut c = Client::connect(addr);
        c.login();
        let data = c.epsv();
        assert_eq!(c.download(data, "RETR one"), b"inetd style");
        c.quit();
    }
    accept_loop.join().unwrap();
}

#[test]
fn shutdown_with_a_session_open_ends_after_grace() {
    let server = TestServer::start(&[]);
    let mut c = server.connect();
    c.login();
    drop(server); // Triggers shutdown; returns once the grace period is over.
    let mut rest = Vec::new();
    let _ = c.reader.read_to_end(&mut rest);
    let _ = c.writer.shutdown(NetShutdown::Both);
}
