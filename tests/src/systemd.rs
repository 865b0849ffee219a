//! A daemon's built binary under systemd's protocols: socket activation
//! by the real `systemd-socket-activate` (listening sockets told apart by
//! name, and one process per connection with `--inetd`), `sd_notify`
//! messages received on a datagram socket of the test's (a path and an
//! abstract name), and activations the daemon must refuse or ignore.
//!
//! Each daemon's `tests/binary.rs` calls these with its binary. Without
//! `systemd-socket-activate` (Debian package `systemd`) the tests that
//! need it print `SKIP:` (a failure under `FTP_TEST_REQUIRE_CLIENTS=1`).

use std::io::{BufRead, BufReader, Read, Write};
use std::mem::MaybeUninit;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::{Pid, Signal};

use crate::certs::Certs;
use crate::client::Client;
use crate::{TIMEOUT, wait_for};

/// The tool that plays systemd's part.
const ACTIVATE: &str = "systemd-socket-activate";

/// What the served folder holds.
const HELLO: &[u8] = b"hello from a passed socket\n";

/// A folder with `hello.txt`.
fn served() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("hello.txt"), HELLO).expect("write");
    dir
}

/// Text a child writes, collected by a thread as it comes.
#[derive(Clone, Default)]
struct Collected(Arc<Mutex<String>>);

impl Collected {
    fn spawn(stream: impl Read + Send + 'static) -> Collected {
        let collected = Collected::default();
        let text = collected.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                let mut text = text.lock().unwrap_or_else(|e| e.into_inner());
                text.push_str(&line);
                text.push('\n');
            }
        });
        collected
    }

    fn text(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until the text holds `needle` at least `times` times.
    fn wait_for(&self, needle: &str, times: usize) {
        wait_for(
            &format!("{needle:?} x{times} in {:?}", self.text()),
            TIMEOUT,
            || (self.text().matches(needle).count() >= times).then_some(()),
        );
    }
}

/// `systemd-socket-activate` listening on loopback ports it was given,
/// in a process group of its own that is killed on drop (with the daemon
/// it became, or the daemons it started).
struct Activated {
    child: Child,
    ports: Vec<u16>,
    stdout: Collected,
    stderr: Collected,
}

impl Activated {
    /// Starts `tool` with one `-l 127.0.0.1:PORT` per socket (free ports
    /// chosen now, and chosen again if another test takes one first),
    /// `options`, then `program` and its `args`; returns once every socket
    /// listens.
    fn start(tool: &Path, sockets: usize, options: &[&str], program: &Path, args: &[&str]) -> Self {
        for _ in 0..5 {
            let held: Vec<TcpListener> = (0..sockets)
                .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
                .collect();
            let ports: Vec<u16> = held
                .iter()
                .map(|l| l.local_addr().expect("address").port())
                .collect();
            drop(held);
            let mut cmd = Command::new(tool);
            for port in &ports {
                cmd.arg(format!("--listen=127.0.0.1:{port}"));
            }
            let mut child = cmd
                .args(options)
                .arg(program)
                .args(args)
                .process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start systemd-socket-activate");
            let stdout = Collected::spawn(child.stdout.take().expect("stdout"));
            let stderr = Collected::spawn(child.stderr.take().expect("stderr"));
            let mut activated = Activated {
                child,
                ports,
                stdout,
                stderr,
            };
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let listening = activated.stderr.text().matches("Listening on ").count();
                if listening == sockets {
                    return activated;
                }
                if let Ok(Some(_)) = activated.child.try_wait() {
                    // Lost a port to another test: try other ones.
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{ACTIVATE} did not listen: {}",
                    activated.stderr.text()
                );
                std::thread::sleep(Duration::from_millis(10));
            }
            let text = activated.stderr.text();
            assert!(text.contains("in use"), "{ACTIVATE} failed: {text}");
        }
        panic!("{ACTIVATE}: no free ports after five tries");
    }

    fn addr(&self, socket: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.ports[socket]))
    }

    /// The exit status of the daemon the tool became (without `--accept`
    /// or `--inetd`, it executes the daemon in its own place).
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        if let Some(pid) = Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process_group(pid, Signal::KILL);
        }
        let _ = self.child.wait();
    }
}

/// Logs in anonymously, lists and downloads `hello.txt`.
fn login_list_download(addr: SocketAddr) {
    let mut c = Client::connect(addr);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    let listing = c.list("");
    assert!(listing.contains("hello.txt"), "{listing}");
    assert_eq!(c.retr("hello.txt"), HELLO);
    c.quit();
}

/// `systemd-socket-activate --fdname=ftp BIN DIR`: the daemon serves the
/// passed socket (not `--listen`'s default), for as many sessions as come.
pub fn check_socket_activation(bin: &Path) {
    let test = format!("socket_activation ({})", bin.display());
    let Some(tool) = crate::clients::require(&test, ACTIVATE) else {
        return;
    };
    let dir = served();
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    let activated = Activated::start(&tool, 1, &["--fdname=ftp"], bin, &[dir_arg]);
    // The first connection makes the tool start the daemon.
    login_list_download(activated.addr(0));
    login_list_download(activated.addr(0));
    let url = format!("ftp://{}/", activated.addr(0));
    activated.stdout.wait_for(&url, 1);
}

/// Two passed sockets, `ftp` and `ftps`: the first serves FTP in clear,
/// the second implicit FTPS (TLS from the first byte).
pub fn check_socket_activation_implicit_tls(bin: &Path) {
    let test = format!("socket_activation_implicit_tls ({})", bin.display());
    let Some(tool) = crate::clients::require(&test, ACTIVATE) else {
        return;
    };
    let dir = served();
    let certs = Certs::new();
    let mut args = certs.args();
    args.push(dir.path().to_str().expect("UTF-8 path").to_owned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let activated = Activated::start(&tool, 2, &["--fdname=ftp:ftps"], bin, &args);
    login_list_download(activated.addr(0));

    let mut tcp = TcpStream::connect(activated.addr(1)).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let mut tls = certs.client();
    let mut stream = rustls::Stream::new(&mut tls, &mut tcp);
    let mut reader = BufReader::new(&mut stream);
    let mut greeting = String::new();
    reader
        .read_line(&mut greeting)
        .expect("a greeting over TLS");
    assert!(greeting.starts_with("220 "), "{greeting:?}");
    stream.write_all(b"QUIT\r\n").expect("send");
    let mut reader = BufReader::new(&mut stream);
    let mut bye = String::new();
    reader.read_line(&mut bye).expect("read");
    assert!(bye.starts_with("221 "), "{bye:?}");

    let stdout = &activated.stdout;
    stdout.wait_for(&format!("ftps://{}/", activated.addr(1)), 1);
}

/// One process per connection, as systemd's `Accept=yes`: with the
/// connection as standard input (`--inetd --accept`, inetd's protocol) and
/// as fd 3 with `LISTEN_FDS=1` (`--accept`, systemd's). Two sessions at once each
/// get a process of their own, which exits when its session ends.
pub fn check_inetd_activation(bin: &Path) {
    let test = format!("inetd_activation ({})", bin.display());
    let Some(tool) = crate::clients::require(&test, ACTIVATE) else {
        return;
    };
    let dir = served();
    let dir_arg = dir.path().to_str().expect("UTF-8 path");
    for mode in [&["--inetd", "--accept"][..], &["--accept", "--fdname=ftp"]] {
        let activated = Activated::start(&tool, 1, mode, bin, &["--inetd", "-A", dir_arg]);
        let mut first = Client::connect(activated.addr(0));
        let mut second = Client::connect(activated.addr(0));
        for c in [&mut first, &mut second] {
            c.check("SIZE hello.txt", &format!("213 {}", HELLO.len()));
        }
        first.quit();
        activated.stderr.wait_for("died with code 0", 1);
        second.quit();
        activated.stderr.wait_for("died with code 0", 2);
        let spawned = activated.stderr.text().matches("Spawned ").count();
        assert_eq!(spawned, 2, "{mode:?}: {}", activated.stderr.text());
    }
}

/// Activations the daemon must not serve: sockets for another process
/// (`LISTEN_PID`) are left alone and `--listen` is served; a descriptor
/// that is no socket, a connection without `--inetd`, a socket named for
/// implicit FTPS without a certificate, a listening socket with `--inetd`
/// (passed, or as standard input) each end the daemon with one line
/// saying so.
pub fn check_bad_activation(bin: &Path) {
    let dir = served();
    let dir_arg = dir.path().to_str().expect("UTF-8 path");

    // fd 3 is /dev/null: adopting it would fail, so ignoring it is seen.
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg("LISTEN_PID=1 exec \"$0\" \"$@\" 3</dev/null")
        .arg(bin)
        .args(["-l", "127.0.0.1:0", dir_arg])
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "ftp")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let stdout = Collected::spawn(child.stdout.take().expect("stdout"));
    let stderr = Collected::spawn(child.stderr.take().expect("stderr"));
    let result = std::panic::catch_unwind(|| {
        stdout.wait_for("ftp://", 1);
        let text = stdout.text();
        let addr = text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("ftp://")?.strip_suffix('/'))
            .expect("an address")
            .parse()
            .expect("an address");
        Client::connect(addr).quit();
        stderr.wait_for("LISTEN_PID=1 is another process", 1);
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    let out = Command::new("/bin/sh")
        .arg("-c")
        .arg("LISTEN_PID=$$ exec \"$0\" \"$@\" 3</dev/null")
        .arg(bin)
        .arg(dir_arg)
        .env("LISTEN_FDS", "1")
        .env("LISTEN_FDNAMES", "ftp")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let out = crate::binary::wait_output(out, TIMEOUT);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(
        err.contains("fd 3 (ftp) is not a listening TCP socket: it is not a socket"),
        "{err}"
    );

    let test = format!("bad_activation ({})", bin.display());
    let Some(tool) = crate::clients::require(&test, ACTIVATE) else {
        return;
    };
    let cases: [(&[&str], &[&str], &str); 4] = [
        (
            &["--accept", "--fdname=ftp"],
            &[],
            "fd 3 (ftp) is a connection, not a listening socket",
        ),
        (
            &["--fdname=ftps"],
            &[],
            "fd 3 (ftps) is named for implicit FTPS, but no certificate",
        ),
        (
            &["--fdname=ftp"],
            &["--inetd", "-A"],
            "--inetd serves one connection, but 1 socket(s) were passed, 1 of them listening",
        ),
        (
            &["--inetd"],
            &["--inetd", "-A"],
            "--inetd needs a TCP connection on standard input, which is a listening socket",
        ),
    ];
    for (options, args, error) in cases {
        let args = [args, &[dir_arg][..]].concat();
        let mut activated = Activated::start(&tool, 1, options, bin, &args);
        // A connection makes the tool start the daemon, which refuses.
        let _trigger = TcpStream::connect(activated.addr(0)).expect("connect");
        activated.stderr.wait_for(error, 1);
        if !options.contains(&"--accept") {
            assert_eq!(activated.wait().code(), Some(1), "{error}");
        }
    }
}

/// One `sd_notify` datagram and the process that sent it.
fn receive(socket: &UnixDatagram) -> Option<(String, Option<u32>)> {
    let mut buf = [0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
    let mut ancillary = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let got = rustix::net::recvmsg(socket, &mut iov, &mut ancillary, RecvFlags::empty()).ok()?;
    let pid = ancillary.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmCredentials(c) => Some(c.pid.as_raw_nonzero().get() as u32),
        _ => None,
    });
    let text = String::from_utf8_lossy(&buf[..got.bytes]).into_owned();
    Some((text, pid))
}

/// The daemon's notifications on a datagram socket of the test's, named
/// by `NOTIFY_SOCKET` (a path, then an abstract `@name`): `READY=1` once
/// it serves, `WATCHDOG=1` every half of `WATCHDOG_USEC` (only when
/// `WATCHDOG_PID` is the daemon or unset), `STOPPING=1` after SIGTERM;
/// every one from the daemon's own process.
pub fn check_notify(bin: &Path) {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("notify");
    let by_path = UnixDatagram::bind(&path).expect("bind the notify socket");
    notify_session(
        bin,
        &by_path,
        path.as_os_str().to_str().expect("UTF-8"),
        None,
    );

    let daemon = bin.file_name().expect("a file name").to_string_lossy();
    let name = format!("ftp-tests-notify-{}-{daemon}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
        .expect("an abstract name");
    let by_name = UnixDatagram::bind_addr(&addr).expect("bind the abstract socket");
    notify_session(bin, &by_name, &format!("@{name}"), Some("1"));
}

/// Notifications received so far, with when each came.
type Messages = Vec<(Instant, String)>;

/// Receives on `socket` until `until` holds, checking that every message
/// comes from the process `pid`.
fn collect(socket: &UnixDatagram, pid: u32, got: &mut Messages, until: impl Fn(&Messages) -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !until(got) {
        assert!(Instant::now() < deadline, "timed out; received {got:?}");
        if let Some((text, sender)) = receive(socket) {
            assert_eq!(sender, Some(pid), "{text:?} from another process");
            got.push((Instant::now(), text));
        }
    }
}

/// Whether a message has the line `line`.
fn has(got: &Messages, line: &str) -> bool {
    got.iter().any(|(_, t)| t.lines().any(|l| l == line))
}

/// Runs the daemon with `NOTIFY_SOCKET=value` and `WATCHDOG_USEC=200000`
/// (and `WATCHDOG_PID`, if given, which is not the daemon), and checks
/// what arrives on `socket`.
fn notify_session(bin: &Path, socket: &UnixDatagram, value: &str, watchdog_pid: Option<&str>) {
    rustix::net::sockopt::set_socket_passcred(socket, true).expect("SO_PASSCRED");
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let dir = served();
    let mut cmd = Command::new(bin);
    cmd.args(["-l", "127.0.0.1:0"])
        .arg(dir.path())
        .env("NOTIFY_SOCKET", value)
        .env("WATCHDOG_USEC", "200000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(pid) = watchdog_pid {
        cmd.env("WATCHDOG_PID", pid);
    }
    let child = cmd.spawn().expect("start the daemon");
    let pid = child.id();
    let mut got = Messages::new();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        collect(socket, pid, &mut got, |m| has(m, "READY=1"));
        let ready = got.iter().find(|(_, t)| t.starts_with("READY=1\n"));
        let (_, ready) = ready.expect("READY=1 comes with STATUS=");
        assert!(ready.contains("\nSTATUS=serving "), "{value}: {ready:?}");
        let since = Instant::now();
        let pings = |m: &Messages| {
            m.iter()
                .filter(|(at, t)| *at >= since && t == "WATCHDOG=1")
                .count()
        };
        match watchdog_pid {
            None => collect(socket, pid, &mut got, |m| pings(m) >= 3),
            Some(_) => {
                let quiet = since + Duration::from_millis(500);
                collect(socket, pid, &mut got, |_| Instant::now() >= quiet);
                assert_eq!(pings(&got), 0, "{value}: WATCHDOG_PID is another process");
            }
        }
        let daemon = Pid::from_raw(pid as i32).expect("a pid");
        // A reload (SIGHUP) is announced: RELOADING=1 with the monotonic
        // time, then READY=1 again.
        let readies = |m: &Messages| m.iter().filter(|(_, t)| t.starts_with("READY=1")).count();
        let before = readies(&got);
        rustix::process::kill_process(daemon, Signal::HUP).expect("SIGHUP");
        collect(socket, pid, &mut got, |m| readies(m) > before);
        let reloading = got
            .iter()
            .find(|(_, t)| t.starts_with("RELOADING=1\n"))
            .unwrap_or_else(|| panic!("{value}: no RELOADING=1 in {got:?}"));
        assert!(reloading.1.contains("\nMONOTONIC_USEC="), "{reloading:?}");
        rustix::process::kill_process(daemon, Signal::TERM).expect("SIGTERM");
        collect(socket, pid, &mut got, |m| has(m, "STOPPING=1"));
    }));
    let out = crate::binary::wait_output(child, TIMEOUT);
    if let Err(panic) = result {
        eprintln!("{value}: {}", String::from_utf8_lossy(&out.stderr));
        std::panic::resume_unwind(panic);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
