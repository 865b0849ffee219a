//! The BusyBox `ftpd` drop-in, for both daemons, under the real `tcpsvd`
//! (Debian's `ipsvd`) with the seed's line
//! `tcpsvd -vE 127.0.0.1 PORT ftp-mio --inetd -w DIR`: system accounts
//! made here with `useradd` and `chpasswd` log in, their uploads belong to
//! them, the kernel's refusals come back as 550/553, wrong passwords,
//! locked accounts and ftpusers-listed names get 530, and `-a USER` maps
//! anonymous sessions to USER's identity. Also standalone `--system-users`
//! with `--run-as`.
//!
//! The daemons are the binaries next to this test
//! (`target/<profile>/ftp-mio`, `ftp-smol`), which `cargo test --workspace`
//! builds for the daemons' own binary tests. A binary older than the
//! daemons' sources (a partial `cargo test -p ftp-tests`) is not used. Tests that need root, `tcpsvd`,
//! the shadow tools or the binaries print `SKIP:` on the terminal when
//! they are missing; with `FTP_TEST_REQUIRE_CLIENTS=1` (CI, as root) a
//! missing one is a failure.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ftp_tests::{skip, wait_for};

/// Deadline for every socket read and write and every wait.
const TIMEOUT: Duration = Duration::from_secs(20);

/// md5-crypt of `hunter2` (from `ftp-host/tests/data/crypt-vectors.txt`).
const HUNTER2_MD5: &str = "$1$c5eB66kt$nr9i3dra9jmv7nxu0EEBG.";
/// yescrypt of `hunter2`, from the same file.
const HUNTER2_YESCRYPT: &str =
    "$y$j9T$Rnb18z.fEyeOJR9x.FXEN0$RC5GthjFKN8Gg4Bh8W/gq4nFwyesswcalNT824u0bn1";

// ---------------------------------------------------------------------------
// What the machine has
// ---------------------------------------------------------------------------

fn required() -> bool {
    std::env::var("FTP_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// Skips (or, when required, fails) `test` for want of `what`.
fn missing(test: &str, what: &str) {
    if required() {
        panic!("{test}: {what}, and FTP_TEST_REQUIRE_CLIENTS=1");
    }
    skip(test, what);
}

/// Where `program` is: on `PATH`, or in the sbin folders a non-login
/// root shell may not have there.
fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}

fn in_path(program: &str) -> bool {
    find(program).is_some()
}

/// `program` as found by [`find`] (or as is, to fail with its name).
fn tool(program: &str) -> PathBuf {
    find(program).unwrap_or_else(|| PathBuf::from(program))
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The daemon's path if this test can run: the binary, `tcpsvd` and (with
/// `root`) root and the shadow tools are there.
fn ready(test: &str, daemon: &str, root: bool, tcpsvd: bool) -> Option<PathBuf> {
    let binary = match ftp_tests::binary::built_daemon(daemon) {
        Ok(binary) => binary,
        Err(why) => {
            missing(test, &why);
            return None;
        }
    };
    if tcpsvd && !in_path("tcpsvd") {
        missing(test, "tcpsvd is not installed (Debian package ipsvd)");
        return None;
    }
    if root {
        if !is_root() {
            missing(test, "needs root (to add users and change identity)");
            return None;
        }
        for tool in ["useradd", "chpasswd", "usermod", "userdel"] {
            if !in_path(tool) {
                missing(test, &format!("{tool} is not installed (package passwd)"));
                return None;
            }
        }
    }
    Some(binary)
}

// ---------------------------------------------------------------------------
// System users made for a test
// ---------------------------------------------------------------------------

/// useradd and friends lock /etc/passwd; one at a time.
static ACCOUNTS: Mutex<()> = Mutex::new(());

/// Runs a shadow tool, retrying while another process holds the lock.
fn shadow_tool(program: &str, args: &[&str], stdin: Option<&str>) {
    let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
    let mut last = String::new();
    for _ in 0..50 {
        let mut child = Command::new(tool(program))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{program} {args:?} failed: {last}");
}

/// A system account that exists while this value does (`userdel` on drop,
/// also when the test fails).
struct SystemUser {
    name: String,
    password: String,
    uid: u32,
    gid: u32,
}

impl SystemUser {
    /// `useradd` (with a group of its own, in the `users` group too) and a
    /// password set with `chpasswd`, so hashed as the system hashes
    /// (yescrypt on Debian).
    fn new(password: &str) -> SystemUser {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "ftpbb{}x{}",
            std::process::id() % 1_000_000,
            N.fetch_add(1, Ordering::Relaxed)
        );
        shadow_tool(
            "useradd",
            &[
                "-M",
                "-U",
                "-G",
                "users",
                "-d",
                "/nonexistent",
                "-s",
                "/usr/sbin/nologin",
                &name,
            ],
            None,
        );
        let mut user = SystemUser {
            name,
            password: password.to_string(),
            uid: 0,
            gid: 0,
        };
        shadow_tool(
            "chpasswd",
            &[],
            Some(&format!("{}:{password}\n", user.name)),
        );
        let passwd = fs::read_to_string("/etc/passwd").unwrap();
        let line = passwd
            .lines()
            .find(|l| l.starts_with(&format!("{}:", user.name)))
            .expect("the new user is in /etc/passwd");
        let f: Vec<&str> = line.split(':').collect();
        user.uid = f[2].parse().unwrap();
        user.gid = f[3].parse().unwrap();
        user
    }

    /// The hash `chpasswd` stored.
    fn hash(&self) -> String {
        let shadow = fs::read_to_string("/etc/shadow").unwrap();
        shadow
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{}:", self.name)))
            .and_then(|rest| rest.split(':').next())
            .unwrap_or("")
            .to_string()
    }

    /// The user's groups as `id -G` says (what initgroups gives).
    fn groups(&self) -> Vec<u32> {
        let out = Command::new(tool("id"))
            .arg("-G")
            .arg(&self.name)
            .output()
            .unwrap();
        let mut groups: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|g| g.parse().ok())
            .collect();
        groups.sort_unstable();
        groups
    }

    fn lock(&self) {
        shadow_tool("usermod", &["-L", &self.name], None);
    }
}

impl Drop for SystemUser {
    fn drop(&mut self) {
        let _one = ACCOUNTS.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..50 {
            let done = Command::new(tool("userdel"))
                .arg(&self.name)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success() || s.code() == Some(6));
            if done {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

// ---------------------------------------------------------------------------
// The served folder
// ---------------------------------------------------------------------------

/// A served folder (root's, mode 755) with `own/` belonging to `owner`
/// and `root-only/` (root's, 755) inside.
fn files_for(owner: Option<&SystemUser>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::write(dir.path().join("hello.txt"), b"hello from busybox land\n").unwrap();
    fs::create_dir(dir.path().join("own")).unwrap();
    fs::create_dir(dir.path().join("root-only")).unwrap();
    fs::set_permissions(dir.path().join("own"), fs::Permissions::from_mode(0o755)).unwrap();
    if let Some(u) = owner {
        rustix::fs::chown(
            dir.path().join("own"),
            Some(rustix::fs::Uid::from_raw(u.uid)),
            Some(rustix::fs::Gid::from_raw(u.gid)),
        )
        .unwrap();
    }
    dir
}

// ---------------------------------------------------------------------------
// tcpsvd and the daemons
// ---------------------------------------------------------------------------

/// A port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap()
}

/// A running server process (tcpsvd, or a standalone daemon), killed on
/// drop. Its standard error goes to a log file for diagnostics.
struct Running {
    child: Child,
    port: u16,
    log: PathBuf,
    _logdir: tempfile::TempDir,
}

impl Running {
    /// Starts `program args…` with `{PORT}` in `args` replaced by a free
    /// port, and waits until `ready` appears in its output (retrying with
    /// another port if it exits first, as when the port was taken).
    fn start(program: &Path, args: &[&str], ready: &str) -> Running {
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let logdir = tempfile::tempdir().unwrap();
            let log = logdir.path().join("log");
            let out = fs::File::create(&log).unwrap();
            let args: Vec<String> = args
                .iter()
                .map(|a| a.replace("{PORT}", &port.to_string()))
                .collect();
            let mut child = Command::new(program)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
            let deadline = Instant::now() + TIMEOUT;
            loop {
                let text = fs::read_to_string(&log).unwrap_or_default();
                if text.contains(ready) {
                    return Running {
                        child,
                        port,
                        log,
                        _logdir: logdir,
                    };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    last = text;
                    break;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("{} did not start: {text}", program.display());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("{} kept exiting: {last}", program.display());
    }

    /// The seed's line: `tcpsvd -vE 127.0.0.1 PORT DAEMON --inetd -w
    /// [extra…] DIR`.
    fn tcpsvd(daemon: &Path, extra: &[&str], dir: &Path) -> Running {
        let daemon = daemon.to_str().unwrap();
        let mut args = vec!["-vE", "127.0.0.1", "{PORT}", daemon, "--inetd", "-w"];
        args.extend_from_slice(extra);
        args.push(dir.to_str().unwrap());
        Running::start(&tool("tcpsvd"), &args, "listening on")
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The session processes tcpsvd started (its children).
    fn sessions(&self) -> Vec<u32> {
        children_of(self.child.id())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Processes whose parent is `parent`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // pid (comm) state ppid …; comm may hold spaces.
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

/// What `/proc/PID/task/TID/status` says about one thread: its name, uids
/// and gids (real, effective, saved, filesystem) and groups (sorted).
struct ThreadCredentials {
    name: String,
    uids: Vec<u32>,
    gids: Vec<u32>,
    groups: Vec<u32>,
}

/// The credentials of every thread of `pid`.
fn thread_credentials(pid: u32) -> Vec<ThreadCredentials> {
    let mut out = Vec::new();
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(status) = fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or("")
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        };
        let thread = status
            .lines()
            .find_map(|l| l.strip_prefix("Name:"))
            .unwrap_or("")
            .trim()
            .to_string();
        let mut groups = field("Groups:");
        groups.sort_unstable();
        out.push(ThreadCredentials {
            name: thread,
            uids: field("Uid:"),
            gids: field("Gid:"),
            groups,
        });
    }
    out
}

/// Checks that every thread of `pid` acts as `user` (uid, gid, groups).
fn assert_process_is(pid: u32, user: &SystemUser) {
    let threads = thread_credentials(pid);
    assert!(!threads.is_empty(), "no threads for pid {pid}");
    let groups = user.groups();
    for t in &threads {
        let name = &t.name;
        assert_eq!(t.uids, vec![user.uid; 4], "thread {name} of {pid}: uids");
        assert_eq!(t.gids, vec![user.gid; 4], "thread {name} of {pid}: gids");
        assert_eq!(t.groups, groups, "thread {name} of {pid}: groups");
    }
}

// ---------------------------------------------------------------------------
// A small FTP client
// ---------------------------------------------------------------------------

struct Ftp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Ftp {
    fn connect(addr: SocketAddr) -> Ftp {
        let stream = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        let mut ftp = Ftp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        let (code, text) = ftp.reply();
        assert_eq!(code, 220, "greeting: {text}");
        ftp
    }

    /// One reply (all lines of a multi-line one): code and text.
    fn reply(&mut self) -> (u16, String) {
        let mut text = String::new();
        let mut first = String::new();
        self.reader.read_line(&mut first).unwrap();
        text.push_str(&first);
        let code: u16 = first.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
        if first.as_bytes().get(3) == Some(&b'-') {
            loop {
                let mut line = String::new();
                if self.reader.read_line(&mut line).unwrap() == 0 {
                    break;
                }
                text.push_str(&line);
                if line.starts_with(&format!("{code} ")) {
                    break;
                }
            }
        }
        (code, text)
    }

    fn cmd(&mut self, line: &str) -> (u16, String) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .unwrap();
        self.reply()
    }

    fn login(&mut self, user: &str, password: &str) -> u16 {
        let (code, text) = self.cmd(&format!("USER {user}"));
        assert_eq!(code, 331, "USER: {text}");
        self.cmd(&format!("PASS {password}")).0
    }

    fn passive(&mut self) -> TcpStream {
        let (code, text) = self.cmd("EPSV");
        assert_eq!(code, 229, "EPSV: {text}");
        let port: u16 = text
            .split('|')
            .nth(3)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("EPSV reply {text}"));
        let data =
            TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), TIMEOUT).unwrap();
        data.set_read_timeout(Some(TIMEOUT)).unwrap();
        data
    }

    /// Uploads `content` to `path`; the final reply's code (or the first
    /// one's, if it refused at once).
    fn stor(&mut self, path: &str, content: &[u8]) -> (u16, String) {
        self.cmd("TYPE I");
        let mut data = self.passive();
        let (code, text) = self.cmd(&format!("STOR {path}"));
        if code != 150 && code != 125 {
            return (code, text);
        }
        data.write_all(content).unwrap();
        drop(data);
        self.reply()
    }

    fn retr(&mut self, path: &str) -> Vec<u8> {
        self.cmd("TYPE I");
        let mut data = self.passive();
        let (code, text) = self.cmd(&format!("RETR {path}"));
        assert!(code == 150 || code == 125, "RETR {path}: {text}");
        let mut content = Vec::new();
        data.read_to_end(&mut content).unwrap();
        let (code, text) = self.reply();
        assert_eq!(code, 226, "RETR {path}: {text}");
        content
    }

    fn quit(mut self) {
        let _ = self.cmd("QUIT");
    }
}

/// A login that must succeed.
fn logged_in(addr: SocketAddr, user: &str, password: &str, server: &Running) -> Ftp {
    let mut ftp = Ftp::connect(addr);
    let code = ftp.login(user, password);
    assert_eq!(code, 230, "login as {user}; server log:\n{}", server.log());
    ftp
}

fn refused(code: u16) -> bool {
    code == 550 || code == 553
}

// ---------------------------------------------------------------------------
// The tests, written once for both daemons
// ---------------------------------------------------------------------------

/// A system user logs in under tcpsvd; the session chroots, every thread
/// changes to the user's uid, gid and groups; uploads belong to the user;
/// the kernel's refusals are 550/553.
fn system_user_logs_in_and_owns_uploads(daemon: &str) {
    let test = format!("{daemon}: system_user_logs_in_and_owns_uploads");
    let Some(binary) = ready(&test, daemon, true, true) else {
        return;
    };
    let user = SystemUser::new("S3cret pass");
    let other = SystemUser::new("other pass");
    let hash = user.hash();
    assert!(hash.starts_with('$'), "chpasswd wrote {hash:?}");
    let dir = files_for(Some(&user));
    let server = Running::tcpsvd(&binary, &["-v"], dir.path());
    let mut ftp = logged_in(server.addr(), &user.name, &user.password, &server);

    // The session: chrooted into the folder, acting as the user.
    let sessions = server.sessions();
    assert_eq!(sessions.len(), 1, "one session process: {sessions:?}");
    let pid = sessions[0];
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/root")).unwrap(),
        dir.path().canonicalize().unwrap()
    );
    assert_process_is(pid, &user);

    assert_eq!(ftp.cmd("PWD").1, "257 \"/\" is the current directory\r\n");
    assert_eq!(ftp.retr("/hello.txt"), b"hello from busybox land\n");
    let (code, text) = ftp.stor("own/mine.txt", b"uploaded by the user\n");
    assert_eq!(code, 226, "STOR own/mine.txt: {text}\n{}", server.log());
    let meta = fs::metadata(dir.path().join("own/mine.txt")).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
    assert_eq!(ftp.retr("own/mine.txt"), b"uploaded by the user\n");
    // Where only root may write, the kernel says no.
    let (code, text) = ftp.stor("root-only/no.txt", b"x");
    assert!(refused(code), "STOR root-only/no.txt: {text}");
    let (code, text) = ftp.stor("/top.txt", b"x");
    assert!(refused(code), "STOR /top.txt: {text}");
    let (code, text) = ftp.cmd("MKD root-only/d");
    assert!(refused(code), "MKD root-only/d: {text}");
    let (code, text) = ftp.cmd("DELE hello.txt");
    assert!(refused(code), "DELE hello.txt: {text}");
    assert!(!dir.path().join("root-only/no.txt").exists());
    assert!(dir.path().join("hello.txt").exists());
    // Still alive and still the user after the refusals.
    assert_eq!(ftp.cmd("NOOP").0, 200);
    assert_process_is(pid, &user);
    // After REIN the same user may log in again; anyone else would need
    // the identity the process gave up: 421, and the session closes.
    assert_eq!(ftp.cmd("REIN").0, 220);
    assert_eq!(ftp.login(&user.name, &user.password), 230);
    assert_eq!(ftp.cmd("REIN").0, 220);
    assert_eq!(ftp.login(&other.name, &other.password), 421);
    wait_for("the session to end after 421", TIMEOUT, || {
        server.sessions().is_empty().then_some(())
    });
}

/// Wrong password: 530 after the configured delay. Locked account and an
/// account the ftpusers file lists: 530 with the right password.
fn refusals_get_530(daemon: &str) {
    let test = format!("{daemon}: refusals_get_530");
    let Some(binary) = ready(&test, daemon, true, true) else {
        return;
    };
    let good = SystemUser::new("good pass");
    let locked = SystemUser::new("locked pass");
    locked.lock();
    let listed = SystemUser::new("listed pass");
    let dir = files_for(None);
    let etc = tempfile::tempdir().unwrap();
    let ftpusers = etc.path().join("ftpusers");
    fs::write(&ftpusers, format!("# refused\nroot\n{}\n", listed.name)).unwrap();
    let server = Running::tcpsvd(
        &binary,
        &[
            "--ftpusers",
            ftpusers.to_str().unwrap(),
            "--login-fail-delay",
            "400",
        ],
        dir.path(),
    );
    let addr = server.addr();

    let mut ftp = Ftp::connect(addr);
    ftp.cmd(&format!("USER {}", good.name));
    let start = Instant::now();
    let (code, text) = ftp.cmd("PASS not the password");
    let waited = start.elapsed();
    assert_eq!(code, 530, "wrong password: {text}");
    assert!(
        waited >= Duration::from_millis(400),
        "530 came after {waited:?}, before the 400 ms delay"
    );
    // The same session may try again, and the right password works.
    assert_eq!(ftp.login(&good.name, &good.password), 230);
    ftp.quit();

    for (who, user) in [("locked", &locked), ("listed", &listed)] {
        let mut ftp = Ftp::connect(addr);
        assert_eq!(ftp.login(&user.name, &user.password), 530, "{who} account");
        ftp.quit();
    }
    let mut ftp = Ftp::connect(addr);
    assert_eq!(ftp.login("no-such-user-here", "x"), 530, "unknown user");
    // Anonymous is off without -a.
    assert_eq!(ftp.login("anonymous", "me@example.org"), 530, "anonymous");
    ftp.quit();
}

/// `-a USER`: anonymous (and ftp) sessions act as USER.
fn anonymous_takes_the_a_users_identity(daemon: &str) {
    let test = format!("{daemon}: anonymous_takes_the_a_users_identity");
    let Some(binary) = ready(&test, daemon, true, true) else {
        return;
    };
    let user = SystemUser::new("unused pass");
    let dir = files_for(Some(&user));
    let server = Running::tcpsvd(&binary, &["-a", &user.name], dir.path());
    for name in ["anonymous", "ftp"] {
        let mut ftp = logged_in(server.addr(), name, "me@example.org", &server);
        let sessions = server.sessions();
        assert_eq!(sessions.len(), 1, "{sessions:?}");
        assert_process_is(sessions[0], &user);
        let file = format!("own/{name}.txt");
        let (code, text) = ftp.stor(&file, b"anonymous upload\n");
        assert_eq!(code, 226, "STOR {file}: {text}");
        let meta = fs::metadata(dir.path().join(&file)).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
        let (code, text) = ftp.stor("root-only/x", b"x");
        assert!(refused(code), "{text}");
        ftp.quit();
        // Wait for the session to end before the next one is looked at.
        wait_for("the session to end", TIMEOUT, || {
            server.sessions().is_empty().then_some(())
        });
    }
    // The account itself cannot log in with a wrong password.
    let mut ftp = Ftp::connect(server.addr());
    assert_eq!(ftp.login(&user.name, "wrong"), 530);
    ftp.quit();
}

/// Accounts from other files (the hidden test flags), no root needed:
/// what a developer's machine can check with tcpsvd alone. As root the
/// account is root's own uid, so nothing changes identity.
fn fake_accounts_log_in(daemon: &str) {
    let test = format!("{daemon}: fake_accounts_log_in");
    let Some(binary) = ready(&test, daemon, false, true) else {
        return;
    };
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let etc = tempfile::tempdir().unwrap();
    let p = |n: &str| etc.path().join(n).to_str().unwrap().to_string();
    fs::write(
        p("passwd"),
        format!(
            "tester:x:{uid}:{gid}::/:/bin/sh\nold:{HUNTER2_MD5}:{uid}:{gid}::/:/bin/sh\n\
             locked:x:{uid}:{gid}::/:/bin/sh\n"
        ),
    )
    .unwrap();
    fs::write(
        p("shadow"),
        format!("tester:{HUNTER2_YESCRYPT}:19000::::::\nlocked:!{HUNTER2_YESCRYPT}::::::::\n"),
    )
    .unwrap();
    fs::write(p("group"), "").unwrap();
    fs::write(p("ftpusers"), "").unwrap();
    let dir = files_for(None);
    let (passwd, shadow, group, ftpusers) = (p("passwd"), p("shadow"), p("group"), p("ftpusers"));
    let server = Running::tcpsvd(
        &binary,
        &[
            "--passwd-file",
            &passwd,
            "--shadow-file",
            &shadow,
            "--group-file",
            &group,
            "--ftpusers",
            &ftpusers,
            "--login-fail-delay",
            "0",
        ],
        dir.path(),
    );
    let mut ftp = logged_in(server.addr(), "tester", "hunter2", &server);
    let (code, text) = ftp.stor("own/up.txt", b"up");
    assert_eq!(code, 226, "{text}");
    assert_eq!(fs::read(dir.path().join("own/up.txt")).unwrap(), b"up");
    ftp.quit();
    let ftp = logged_in(server.addr(), "old", "hunter2", &server);
    ftp.quit();
    let mut ftp = Ftp::connect(server.addr());
    assert_eq!(ftp.login("tester", "hunter3"), 530);
    assert_eq!(ftp.login("locked", "hunter2"), 530);
    ftp.quit();
}

/// Standalone `--system-users --run-as USER`: root is dropped after
/// binding, before serving; every session acts as USER whoever logs in.
fn standalone_run_as(daemon: &str) {
    let test = format!("{daemon}: standalone_run_as");
    let Some(binary) = ready(&test, daemon, true, false) else {
        return;
    };
    let daemon_user = SystemUser::new("daemon pass");
    let login = SystemUser::new("login pass");
    let dir = files_for(Some(&daemon_user));
    let server = Running::start(
        &binary,
        &[
            "--system-users",
            "--run-as",
            &daemon_user.name,
            "--threads",
            "2",
            "-l",
            "127.0.0.1:{PORT}",
            "-w",
            dir.path().to_str().unwrap(),
        ],
        "serving",
    );
    assert_process_is(server.child.id(), &daemon_user);
    let mut ftp = logged_in(server.addr(), &login.name, &login.password, &server);
    let (code, text) = ftp.stor("own/by-login.txt", b"x");
    assert_eq!(code, 226, "{text}");
    let meta = fs::metadata(dir.path().join("own/by-login.txt")).unwrap();
    assert_eq!(meta.uid(), daemon_user.uid, "the daemon's identity");
    assert_process_is(server.child.id(), &daemon_user);
    ftp.quit();
    let mut ftp = Ftp::connect(server.addr());
    assert_eq!(ftp.login(&login.name, "wrong"), 530);
    ftp.quit();
}

macro_rules! for_both_daemons {
    ($($test:ident),* $(,)?) => {
        mod ftp_mio {
            $(#[test] fn $test() { super::$test("ftp-mio") })*
        }
        mod ftp_smol {
            $(#[test] fn $test() { super::$test("ftp-smol") })*
        }
    };
}

for_both_daemons!(
    system_user_logs_in_and_owns_uploads,
    refusals_get_530,
    anonymous_takes_the_a_users_identity,
    fake_accounts_log_in,
    standalone_run_as,
);
