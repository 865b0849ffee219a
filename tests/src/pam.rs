//! `--pam` on a daemon's built binary (cargo feature `pam`), against the
//! machine's real PAM stack: a service file naming `pam_unix` written to
//! `/etc/pam.d/ftp-test-…`, and a user made with `useradd` and `chpasswd`.
//! Both are removed afterwards (`userdel -r`), also when the test fails.
//!
//! Writing `/etc/pam.d`, adding a user and `pam_unix` reading
//! `/etc/shadow` need root: elsewhere the check prints `SKIP:` and passes,
//! unless `FTP_TEST_REQUIRE_CLIENTS=1` (CI), where it fails.
//!
//! Each daemon's `tests/pam.rs` (compiled with its `pam` feature only)
//! calls [`check_pam`] with its binary.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::binary::wait_output;
use crate::clients::{clients_required, find_program};
use crate::{Client, TIMEOUT};

/// The user's password (chpasswd reads `name:password` lines).
const PASSWORD: &str = "Pam-test-7xq";

/// Failed-login delay the daemon is started with, in milliseconds;
/// `pam_unix` would add its own 2 s (±25 %) if the daemon let it sleep.
const FAIL_DELAY_MS: u64 = 200;

/// A PAM service file and a user, removed when dropped.
struct Fixture {
    service: String,
    user: String,
    uid: u32,
    pam_file: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let tag = format!("{:x}{:05x}", std::process::id() & 0xfff, nanos & 0xfffff);
        let service = format!("ftp-test-{tag}");
        let pam_file = Path::new("/etc/pam.d").join(&service);
        std::fs::write(
            &pam_file,
            "auth required pam_unix.so\naccount required pam_unix.so\n",
        )
        .expect("write the PAM service file");
        let mut fixture = Fixture {
            service,
            user: format!("ft{tag}"),
            uid: 0,
            pam_file,
        };
        run(Command::new(sbin("useradd")).args(["-m", "-s", "/bin/sh", &fixture.user]));
        let mut chpasswd = Command::new(sbin("chpasswd"))
            .stdin(Stdio::piped())
            .spawn()
            .expect("start chpasswd");
        if let Some(mut stdin) = chpasswd.stdin.take() {
            writeln!(stdin, "{}:{PASSWORD}", fixture.user).expect("write to chpasswd");
        }
        let out = wait_output(chpasswd, TIMEOUT);
        assert!(out.status.success(), "chpasswd failed");
        fixture.uid = uid_of(&fixture.user);
        assert_ne!(fixture.uid, 0, "useradd made a root account?");
        fixture
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pam_file);
        let _ = Command::new(sbin("userdel"))
            .args(["-r", &self.user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A program of the sbin folders (which a user's `PATH` may lack).
fn sbin(program: &str) -> PathBuf {
    find_program(program).unwrap_or_else(|| PathBuf::from(program))
}

/// Runs `command` to completion, which must succeed.
fn run(command: &mut Command) {
    let child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
    let out = wait_output(child, TIMEOUT);
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The uid `/etc/passwd` gives `user`.
fn uid_of(user: &str) -> u32 {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[0] == user)
        .and_then(|f| f[2].parse().ok())
        .unwrap_or_else(|| panic!("{user} is not in /etc/passwd"))
}

/// Whether the check can run here; prints `SKIP:` (or fails, under
/// `FTP_TEST_REQUIRE_CLIENTS=1`) when it cannot.
fn can_run(test: &str) -> bool {
    let why = if !rustix::process::geteuid().is_root() {
        Some("needs root (to write /etc/pam.d, add a user, and for pam_unix to read /etc/shadow)")
    } else if find_program("useradd").is_none() || find_program("chpasswd").is_none() {
        Some("useradd and chpasswd are not installed")
    } else if !["/lib", "/usr/lib", "/lib64", "/usr/lib64"]
        .iter()
        .any(|d| has_pam_unix(Path::new(d)))
    {
        Some("pam_unix.so is not installed")
    } else {
        None
    };
    match why {
        None => true,
        Some(why) if clients_required() => {
            panic!("{test}: {why}, and FTP_TEST_REQUIRE_CLIENTS=1")
        }
        Some(why) => {
            crate::skip(test, why);
            false
        }
    }
}

/// Whether `pam_unix.so` is in a `security` folder under `dir` (or one
/// of its multiarch folders).
fn has_pam_unix(dir: &Path) -> bool {
    let here = |d: &Path| d.join("security/pam_unix.so").is_file();
    here(dir)
        || std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| here(&e.path()))
}

/// A served folder every user may write into, with one file.
fn served() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("hello.txt"), b"hello\n").expect("write");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
        .expect("chmod the served folder");
    dir
}

/// Kills the daemon when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs every PAM check against the daemon at `bin`.
pub fn check_pam(test: &str, bin: &Path) {
    if !can_run(test) {
        return;
    }
    let fixture = Fixture::new();
    standalone_logins(bin, &fixture);
    inetd_login_takes_the_identity(bin, &fixture);
    inetd_anonymous_takes_the_a_users_identity(bin, &fixture);
}

/// A standalone daemon with `--pam SERVICE`: the right password logs in
/// and lists, a wrong one and an unknown user get `530`, and a failure
/// waits the daemon's delay, not PAM's as well.
fn standalone_logins(bin: &Path, fixture: &Fixture) {
    let dir = served();
    let delay = FAIL_DELAY_MS.to_string();
    let mut child = Command::new(bin)
        .args(["-l", "127.0.0.1:0", "--login-fail-delay", &delay])
        .args(["--pam", &fixture.service])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let stdout = child.stdout.take().expect("stdout");
    let daemon = Daemon(child);
    let mut announced = String::new();
    BufReader::new(stdout)
        .read_line(&mut announced)
        .expect("read the announcement");
    let addr: SocketAddr = announced
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ftp://"))
        .and_then(|w| w.strip_suffix('/'))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no ftp://ADDR/ in {announced:?}"));

    let mut c = Client::connect(addr);
    c.login(&fixture.user, PASSWORD);
    let listing = c.list("");
    assert!(listing.contains("hello.txt"), "{listing}");
    c.quit();

    let mut c = Client::connect(addr);
    c.expect(&format!("USER {}", fixture.user), 331);
    let started = Instant::now();
    c.expect("PASS not-the-password", 530);
    let waited = started.elapsed();
    // pam_unix asks for at least 1.5 s; the engine's delay alone is far
    // below that.
    assert!(
        waited < Duration::from_millis(FAIL_DELAY_MS + 1000),
        "a failed PAM login took {waited:?}: PAM's own delay was not taken over"
    );
    assert!(
        waited >= Duration::from_millis(FAIL_DELAY_MS),
        "a failed login answered after {waited:?}, before the daemon's delay"
    );
    c.expect("USER no-such-user-here", 331);
    c.expect(&format!("PASS {PASSWORD}"), 530);
    // The right password still works on the same connection.
    c.login(&fixture.user, PASSWORD);
    c.quit();
    drop(daemon);
}

/// Starts `bin` on one end of a loopback connection, as inetd does, and
/// returns the other end, greeted.
fn inetd(bin: &Path, args: &[&str], dir: &Path) -> (Client, Child) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    let child = Command::new(bin)
        .args(args)
        .arg(dir)
        .stdin(Stdio::from(OwnedFd::from(accepted)))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let c = Client::from_stream(client).expect("greeting");
    assert_eq!(c.greeting.code, 220, "{}", c.greeting);
    (c, child)
}

/// `--inetd --pam SERVICE -a USER` started as root: an anonymous login
/// (no PAM) also takes the deferred chroot and USER's identity.
fn inetd_anonymous_takes_the_a_users_identity(bin: &Path, fixture: &Fixture) {
    let dir = served();
    let args = [
        "--inetd",
        "-w",
        "--pam",
        &fixture.service,
        "-a",
        &fixture.user,
    ];
    let (mut c, child) = inetd(bin, &args, dir.path());
    c.login_anonymous();
    let listing = c.list("");
    assert!(listing.contains("hello.txt"), "{listing}");
    c.stor("anon.txt", b"anonymous upload\n");
    c.quit();
    let out = wait_output(child, TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(dir.path().join("anon.txt")).expect("the upload");
    assert_eq!(meta.uid(), fixture.uid, "the upload belongs to -a USER");
}

/// `--inetd --pam SERVICE` started as root: the login changes the
/// process to the user (after PAM, which needs the real `/etc`, the
/// process chroots into the served folder), so an upload is the user's;
/// after `REIN`, another login is refused with `421`.
fn inetd_login_takes_the_identity(bin: &Path, fixture: &Fixture) {
    let dir = served();
    let args = ["--inetd", "-w", "--pam", &fixture.service];
    let (mut c, child) = inetd(bin, &args, dir.path());
    c.login(&fixture.user, PASSWORD);
    let listing = c.list("");
    assert!(listing.contains("hello.txt"), "{listing}");
    c.stor("mine.txt", b"uploaded through PAM\n");
    // PAM never runs after the chroot (it would read its configuration
    // from the served folder): a second login needs a new connection.
    c.expect("REIN", 220);
    c.expect(&format!("USER {}", fixture.user), 331);
    c.expect(&format!("PASS {PASSWORD}"), 421);
    c.expect_closed();
    let out = wait_output(child, TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(dir.path().join("mine.txt")).expect("the upload");
    assert_eq!(
        meta.uid(),
        fixture.uid,
        "the upload belongs to the user who logged in"
    );
}
