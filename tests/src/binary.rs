//! Tests of a daemon's built binary: the command line a user types, and
//! `--inetd` on a real socket as standard input. Each daemon's own test
//! target calls [`check_binary`] with `env!("CARGO_BIN_EXE_…")`, which also
//! makes `cargo test` build the binaries.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::TIMEOUT;

/// The daemon binary `name` (`ftp-mio`, `ftp-smol`) that cargo built for
/// this profile, beside the running test executable
/// (`target/<profile>/deps/TEST-HASH` → `target/<profile>/NAME`), or why
/// it cannot be used: missing, or older than the daemons' sources (a
/// partial `cargo test -p ftp-tests` does not rebuild it, and an old
/// binary would test old code). `cargo test --workspace` builds the
/// binaries, since each daemon has a test of its own binary.
pub fn built_daemon(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .filter(|p| p.is_file())
        .ok_or_else(|| format!("{name} is not built: run `cargo build --bins` first"))?;
    let built = std::fs::metadata(&path).and_then(|m| m.modified());
    if built.is_ok_and(|built| built < newest_source(name)) {
        return Err(format!(
            "{name} is older than its sources: run `cargo build --bins` first"
        ));
    }
    Ok(path)
}

/// The newest modification time of the sources daemon `name` is built
/// from (the engine, the host and its own crate).
fn newest_source(name: &str) -> SystemTime {
    fn walk(path: &Path, newest: &mut SystemTime) {
        let Ok(meta) = std::fs::metadata(path) else {
            return;
        };
        if meta.is_dir() {
            for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
                walk(&entry.path(), newest);
            }
        } else if let Ok(modified) = meta.modified() {
            *newest = (*newest).max(modified);
        }
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut newest = SystemTime::UNIX_EPOCH;
    // Only sources: a change to any of them makes cargo relink the
    // binaries (a manifest or lock file may change without that).
    for part in ["ftp-proto/src", "ftp-host/src", &format!("{name}/src")] {
        walk(&workspace.join(part), &mut newest);
    }
    newest
}

/// Starts the daemon `cmd` describes, standard input closed and standard
/// output piped, and reads the line it announces itself with.
fn start_announced(cmd: &mut Command) -> (Child, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let stdout = child.stdout.take().expect("stdout");
    let announced = line(&mut BufReader::new(stdout));
    (child, announced)
}

/// Runs every binary-level check against the daemon at `bin`.
pub fn check_binary(bin: &Path) {
    bad_configuration_is_one_line(bin);
    inetd_serves_one_session(bin);
    standalone_announces_and_serves(bin);
    login_burst_gives_memory_back(bin);
}

/// Waits for `child` with a deadline, killing it if it overruns.
pub(crate) fn wait_output(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("collect the output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("the daemon did not exit within {limit:?}");
}

/// Runs the binary with `args` and returns its exit code and stderr.
fn run(bin: &Path, args: &[&str]) -> (Option<i32>, String) {
    let child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let out = wait_output(child, TIMEOUT);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Bad configuration exits non-zero with one line naming the problem.
fn bad_configuration_is_one_line(bin: &Path) {
    let missing = "/nonexistent/ftp-test-dir";
    let (code, err) = run(bin, &[missing]);
    assert_eq!(code, Some(1), "unreadable DIR: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(missing), "names the folder: {err}");

    let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let dir = dir.path().to_str().expect("UTF-8 temp path");
    let (code, err) = run(bin, &["-l", &addr, dir]);
    assert_eq!(code, Some(1), "port in use: {err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.contains(&addr), "names the address: {err}");

    let (code, err) = run(bin, &["-l", "1.2.3:4", dir]);
    assert_eq!(code, Some(2), "bad address is a usage error: {err}");
    assert!(err.contains("1.2.3:4"), "names the value: {err}");
}

/// The `ADDR` of the `ftp://ADDR/` a daemon announces at start.
fn announced_addr(announced: &str) -> Option<String> {
    announced
        .split_whitespace()
        .find_map(|w| w.strip_prefix("ftp://"))
        .and_then(|w| w.strip_suffix('/'))
        .map(str::to_owned)
}

/// Reads one reply line.
fn line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read a reply");
    line
}

/// `--inetd` serves exactly one session on the socket it gets as stdin,
/// then exits. (`-A`: without it, `--inetd` logs in system accounts, as
/// BusyBox does; those have their own tests under tcpsvd.)
fn inetd_serves_one_session(bin: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("hello.txt"), b"hello\n").expect("write");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let client = TcpStream::connect(listener.local_addr().expect("address")).expect("connect");
    client.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let (served, _) = listener.accept().expect("accept");
    let stdin = Stdio::from(OwnedFd::from(served));
    let child = Command::new(bin)
        .args(["--inetd", "-A"])
        .arg(dir.path())
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the daemon");
    let mut reader = BufReader::new(client.try_clone().expect("clone"));
    let mut writer = client;
    assert!(line(&mut reader).starts_with("220 "));
    writer
        .write_all(b"SIZE hello.txt\r\nQUIT\r\n")
        .expect("send");
    assert_eq!(line(&mut reader), "213 6\r\n");
    assert!(line(&mut reader).starts_with("221 "));
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    assert!(rest.is_empty(), "nothing after 221: {rest:?}");
    let out = wait_output(child, TIMEOUT);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The embedded default: `PROG DIR` prints how to connect and serves DIR
/// read-only to anonymous users.
fn standalone_announces_and_serves(bin: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut child, announced) = start_announced(
        Command::new(bin)
            .args(["-l", "127.0.0.1:0"])
            .arg(dir.path())
            .stderr(Stdio::null()),
    );
    let addr = announced_addr(&announced);
    let result = std::panic::catch_unwind(|| {
        assert!(announced.contains("read-only"), "{announced}");
        let addr = addr.expect("the announcement names ftp://ADDR/");
        let stream = TcpStream::connect(&addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut reader = BufReader::new(stream.try_clone().expect("clone"));
        let mut writer = stream;
        assert!(line(&mut reader).starts_with("220 "));
        writer
            .write_all(b"USER ftp\r\nPASS x\r\nMKD new\r\nQUIT\r\n")
            .expect("send");
        assert!(line(&mut reader).starts_with("331 "));
        assert!(line(&mut reader).starts_with("230 "));
        assert!(
            line(&mut reader).starts_with("550 "),
            "read-only by default"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(!dir.path().join("new").exists());
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A field of `/proc/PID/status` in KiB (`VmRSS`, `VmHWM`).
fn status_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// A burst of parallel logins with argon2 hashes (19 MiB each, the
/// library's default) takes at most the memory of the password checks
/// allowed at once, and gives it back: 2 s after the burst the daemon's
/// RSS is within 1 MiB of its idle RSS.
fn login_burst_gives_memory_back(bin: &Path) {
    const LOGINS: usize = 24;
    const CHECKS: u64 = 2;
    const ARGON_KIB: u64 = 19 * 1024;
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users.toml");
    let hash = ftp_host::users::hash_password("burst").expect("hash");
    assert!(hash.contains("m=19456,"), "default parameters: {hash}");
    std::fs::write(
        &users,
        format!("[[user]]\nname = \"u\"\npassword = \"{hash}\"\n"),
    )
    .expect("write users");
    let served = dir.path().join("root");
    std::fs::create_dir(&served).expect("create root");
    let (mut child, announced) = start_announced(
        Command::new(bin)
            .args(["-l", "127.0.0.1:0", "--password-checks", "2", "--users"])
            .arg(&users)
            .arg(&served)
            .stderr(Stdio::null()),
    );
    let pid = child.id();
    let result = std::panic::catch_unwind(|| {
        let addr = announced_addr(&announced).expect("the announcement names ftp://ADDR/");
        std::thread::sleep(Duration::from_millis(300));
        let idle = status_kib(pid, "VmRSS");
        let logins: Vec<_> = (0..LOGINS)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || {
                    let stream = TcpStream::connect(&addr).expect("connect");
                    stream.set_read_timeout(Some(TIMEOUT * 3)).expect("timeout");
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut writer = stream;
                    assert!(line(&mut reader).starts_with("220 "));
                    writer.write_all(b"USER u\r\nPASS burst\r\n").expect("send");
                    assert!(line(&mut reader).starts_with("331 "));
                    let reply = line(&mut reader);
                    assert!(reply.starts_with("230 "), "{reply}");
                    writer.write_all(b"QUIT\r\n").expect("send");
                    assert!(line(&mut reader).starts_with("221 "));
                })
            })
            .collect();
        for login in logins {
            login.join().expect("a login failed");
        }
        let peak = status_kib(pid, "VmHWM");
        std::thread::sleep(Duration::from_secs(2));
        let after = status_kib(pid, "VmRSS");
        let peak_bound = idle + CHECKS * ARGON_KIB + 4 * 1024;
        eprintln!(
            "{}: {LOGINS} parallel logins: idle {idle} KiB, peak {peak} KiB (bound {peak_bound}), 2 s after {after} KiB",
            bin.display()
        );
        assert!(
            peak <= peak_bound,
            "peak RSS {peak} KiB over idle {idle} KiB + {CHECKS} checks x {ARGON_KIB} KiB + 4 MiB"
        );
        assert!(
            after <= idle + 1024,
            "RSS 2 s after the burst {after} KiB, idle {idle} KiB: memory was kept"
        );
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// A daemon binary started on `127.0.0.1:0`, killed (SIGKILL) on drop.
struct Daemon {
    child: Child,
    addr: String,
}

impl Daemon {
    /// Starts `bin` with `args` (and `-l 127.0.0.1:0`) and reads the
    /// address it announces.
    fn start(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let (mut child, announced) = start_announced(
            Command::new(bin)
                .args(["-l", "127.0.0.1:0"])
                .args(args)
                .envs(env.iter().copied())
                .stderr(Stdio::inherit()),
        );
        let Some(addr) = announced_addr(&announced) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not announce ftp://ADDR/: {announced:?}");
        };
        Daemon { child, addr }
    }

    /// A client logged in anonymously, in binary mode.
    fn login(&self) -> crate::client::Client {
        let addr = self.addr.parse().expect("an address");
        let mut c = crate::client::Client::connect(addr);
        c.login_anonymous();
        c.expect("TYPE I", 200);
        c
    }

    /// SIGKILL, as a crash or the OOM killer would, and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A daemon serving a bucket is killed with SIGKILL while two uploads are
/// under way (one replacing an object, one new): neither leaves an object
/// under its name, the replaced object is whole, and the next start
/// aborts the two multipart uploads left behind.
pub fn check_killed_during_bucket_uploads(bin: &Path) {
    const BUCKET: &str = "ftp-killed";
    let test = format!("killed_during_bucket_uploads ({})", bin.display());
    let Some(store) = crate::seaweed::SeaweedFs::start(&test) else {
        return;
    };
    store.bucket(BUCKET);
    let old = crate::data::pattern(5, 100_000);
    store.put_object(BUCKET, "served/keep.bin", &old);
    let storage = format!("s3://{BUCKET}/served");
    let endpoint = store.endpoint();
    let env = [
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    let args = ["-w", "--storage", &storage, "--s3-endpoint", &endpoint];
    let mut daemon = Daemon::start(bin, &args, &env);

    // Two uploads, each well past two parts, neither finished.
    let chunk = crate::data::pattern(6, 1 << 20);
    let mut uploads = Vec::new();
    for name in ["keep.bin", "new.bin"] {
        let mut c = daemon.login();
        let data = c.data();
        let mut transfer = c.start(&format!("STOR {name}"), data).expect("STOR");
        for _ in 0..24 {
            transfer.stream.write_all(&chunk).expect("send a MiB");
        }
        uploads.push((c, transfer));
    }
    let deadline = Instant::now() + TIMEOUT;
    while store.multipart_uploads(BUCKET).len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut left = store.multipart_uploads(BUCKET);
    left.sort();
    assert_eq!(
        left,
        ["served/keep.bin", "served/new.bin"],
        "uploads under way"
    );

    daemon.kill();
    drop(uploads);
    assert_eq!(
        store.get_object(BUCKET, "served/keep.bin"),
        old,
        "the replaced object is whole"
    );
    let new = store
        .request("GET", &format!("/{BUCKET}/served/new.bin"), &[])
        .expect("GET");
    assert_eq!(new.status, 404, "no object under the new name");
    assert_eq!(store.multipart_uploads(BUCKET).len(), 2, "left behind");

    // The next start aborts them (all of them, with an age of 0), in the
    // background, while it serves.
    let args = [&args[..], &["--s3-abort-uploads-after", "0"]].concat();
    let daemon = Daemon::start(bin, &args, &env);
    let mut c = daemon.login();
    c.check("SIZE keep.bin", &format!("213 {}", old.len()));
    let deadline = Instant::now() + TIMEOUT;
    while !store.multipart_uploads(BUCKET).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        store.multipart_uploads(BUCKET),
        Vec::<String>::new(),
        "aborted at the next start"
    );
    c.expect("SIZE new.bin", 550);
    c.quit();
}

/// SIGHUP makes the daemon read its users file again: an account added
/// to it logs in, without a restart.
pub fn check_sighup_reloads_the_users_file(bin: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let users = dir.path().join("users.toml");
    let entry = |name: &str| {
        let hash = ftp_host::users::hash_password("pw").expect("hash");
        format!("[[user]]\nname = \"{name}\"\npassword = \"{hash}\"\n")
    };
    std::fs::write(&users, entry("alice")).expect("write users");
    let served = dir.path().join("root");
    std::fs::create_dir(&served).expect("create root");
    let users_arg = users.to_str().expect("UTF-8 path");
    let served_arg = served.to_str().expect("UTF-8 path");
    let daemon = Daemon::start(bin, &["--users", users_arg, served_arg], &[]);
    let addr = daemon.addr.parse().expect("an address");
    let try_login = |name: &str| {
        let mut c = crate::client::Client::connect(addr);
        c.send(&format!("USER {name}"));
        assert_eq!(c.read_reply().code, 331);
        c.send("PASS pw");
        c.read_reply().code
    };
    assert_eq!(try_login("alice"), 230);
    assert_eq!(try_login("bob"), 530);
    std::fs::write(&users, entry("alice") + &entry("bob")).expect("write users");
    let pid = rustix::process::Pid::from_child(&daemon.child);
    rustix::process::kill_process(pid, rustix::process::Signal::HUP).expect("SIGHUP");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let code = try_login("bob");
        if code == 230 {
            break;
        }
        assert!(Instant::now() < deadline, "bob still refused after SIGHUP");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(try_login("alice"), 230);
}

/// `--log-format json`: every line standard error gets is one JSON
/// object with the time, level and message, and session events carry
/// their fields (session, peer, user, command; bytes and duration of a
/// transfer).
pub fn check_json_logs(bin: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("hello.txt"), b"hello\n").expect("write");
    let (child, announced) = start_announced(
        Command::new(bin)
            .args(["-l", "127.0.0.1:0", "-v", "--log-format", "json"])
            .arg(dir.path())
            .stderr(Stdio::piped()),
    );
    let addr = announced_addr(&announced).and_then(|a| a.parse().ok());
    let result = std::panic::catch_unwind(|| {
        let addr = addr.expect("the announcement names ftp://ADDR/");
        let mut c = crate::client::Client::connect(addr);
        c.login_anonymous();
        c.expect("TYPE I", 200);
        assert_eq!(c.retr("hello.txt"), b"hello\n");
        c.quit();
    });
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let out = wait_output(child, TIMEOUT);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    let text = String::from_utf8(out.stderr).expect("UTF-8 logs");
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(records.len() >= 4, "{text}");
    for r in &records {
        for key in ["time", "level", "prog", "pid", "msg"] {
            assert!(r.get(key).is_some(), "no {key} in {r}");
        }
        let time = r["time"].as_str().expect("a time string");
        assert!(time.len() == 24 && time.ends_with('Z'), "{time}");
    }
    let retr = records
        .iter()
        .find(|r| r["command"] == "RETR hello.txt")
        .unwrap_or_else(|| panic!("no RETR record in {text}"));
    assert_eq!(retr["user"], "anonymous", "{retr}");
    assert_eq!(retr["peer"], "127.0.0.1", "{retr}");
    assert!(retr["session"].as_u64().is_some(), "{retr}");
    let sent = records
        .iter()
        .find(|r| r["direction"] == "download")
        .unwrap_or_else(|| panic!("no transfer record in {text}"));
    assert_eq!(sent["bytes"], 6, "{sent}");
    assert_eq!(sent["path"], "/hello.txt", "{sent}");
    assert!(sent["duration_ms"].as_u64().is_some(), "{sent}");
    assert_eq!(sent["session"], retr["session"]);
}

/// A daemon that exits (here at SIGTERM) first lets the hooks its
/// sessions fired run: the last session's `logout` hook, slow on purpose,
/// has written its line by the time the process is gone. The login is
/// answered by an `--auth-program`.
pub fn check_hooks_run_before_exit(bin: &Path) {
    let dir = tempfile::tempdir().expect("temp dir");
    let etc = tempfile::tempdir().expect("temp dir");
    let log = etc.path().join("log");
    let auth = etc.path().join("auth");
    std::fs::write(&auth, "read p\necho '{\"ok\": true}'\n").expect("write");
    let logout = etc.path().join("logout");
    std::fs::write(
        &logout,
        format!(
            "sleep 0.5\necho \"$FTP_EVENT $FTP_USER\" >> {}\n",
            log.display()
        ),
    )
    .expect("write");
    let (child, announced) = start_announced(
        Command::new(bin)
            .args(["-l", "127.0.0.1:0", "--hook-timeout", "5"])
            .arg("--auth-program")
            .arg(format!("/bin/sh {}", auth.display()))
            .arg("--hook")
            .arg(format!("logout=/bin/sh {}", logout.display()))
            .arg(dir.path())
            .stderr(Stdio::piped()),
    );
    let addr = announced_addr(&announced).and_then(|a| a.parse().ok());
    let result = std::panic::catch_unwind(|| {
        let addr = addr.expect("the announcement names ftp://ADDR/");
        let mut c = crate::client::Client::connect(addr);
        c.login("dora", "anything");
        c.quit();
    });
    let pid = rustix::process::Pid::from_child(&child);
    let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    let out = wait_output(child, TIMEOUT);
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert_eq!(
        text, "logout dora\n",
        "the logout hook did not run before the exit"
    );
}

/// `--run-as nobody --active-port-20`, started as root: the daemon drops
/// to `nobody` keeping only `CAP_NET_BIND_SERVICE` (read back from
/// `/proc`), and its active data connections still leave from port 20 of
/// the control connection's address. SKIP without root.
pub fn check_active_port_20_after_run_as(bin: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if !ftp_host::identity::is_root() {
        return crate::skip("active_port_20_after_run_as", "needs root");
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // `nobody` reads the served folder.
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(dir.path(), open).expect("chmod the folder");
    std::fs::write(dir.path().join("f.txt"), b"from port 20\n").expect("write a file");
    let (mut child, announced) = start_announced(
        Command::new(bin)
            .args([
                "--run-as",
                "nobody",
                "--active-port-20",
                "-l",
                "127.0.0.1:0",
            ])
            .arg(dir.path())
            .stderr(Stdio::null()),
    );
    let pid = child.id();
    let result = std::panic::catch_unwind(|| {
        let addr = announced_addr(&announced).expect("the announcement names ftp://ADDR/");
        let addr: std::net::SocketAddr = addr.parse().expect("an address");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
                .unwrap_or_default()
        };
        assert_eq!(field("Uid:"), "65534 65534 65534 65534", "{status}");
        // CAP_NET_BIND_SERVICE is bit 10, and nothing else is left.
        assert_eq!(field("CapEff:"), "0000000000000400", "{status}");
        assert_eq!(field("CapPrm:"), "0000000000000400", "{status}");
        let mut c = crate::Client::connect(addr);
        c.login_anonymous();
        c.expect("TYPE I", 200);
        c.mode = crate::DataMode::Port;
        let data = c.data();
        let mut t = c.start("RETR f.txt", data).expect("RETR");
        let from = t.stream.peer_addr().expect("data connection's peer");
        let mut bytes = Vec::new();
        t.stream.read_to_end(&mut bytes).expect("read the file");
        drop(t.stream);
        c.expect_reply(226);
        assert_eq!(bytes, b"from port 20\n");
        assert_eq!(from, std::net::SocketAddr::from(([127, 0, 0, 1], 20)));
    });
    let _ = child.kill();
    let _ = child.wait();
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}

/// The tests of a daemon's built binary, for its `tests/binary.rs`:
/// `ftp_tests::binary_tests!(env!("CARGO_BIN_EXE_ftp-mio"));`.
#[macro_export]
macro_rules! binary_tests {
    ($bin:expr) => {
        fn bin() -> &'static ::std::path::Path {
            ::std::path::Path::new($bin)
        }

        #[test]
        fn binary() {
            $crate::binary::check_binary(bin());
        }

        #[test]
        fn killed_during_bucket_uploads() {
            $crate::binary::check_killed_during_bucket_uploads(bin());
        }

        #[test]
        fn sighup_reloads_the_users_file() {
            $crate::binary::check_sighup_reloads_the_users_file(bin());
        }

        #[test]
        fn json_logs() {
            $crate::binary::check_json_logs(bin());
        }

        #[test]
        fn hooks_run_before_exit() {
            $crate::binary::check_hooks_run_before_exit(bin());
        }

        #[test]
        fn active_port_20_after_run_as() {
            $crate::binary::check_active_port_20_after_run_as(bin());
        }

        /// The built binary under systemd's protocols (`ftp_tests::systemd`).
        mod systemd {
            use super::bin;

            #[test]
            fn socket_activation() {
                $crate::systemd::check_socket_activation(bin());
            }

            #[test]
            fn socket_activation_implicit_tls() {
                $crate::systemd::check_socket_activation_implicit_tls(bin());
            }

            #[test]
            fn inetd_activation() {
                $crate::systemd::check_inetd_activation(bin());
            }

            #[test]
            fn bad_activation() {
                $crate::systemd::check_bad_activation(bin());
            }

            #[test]
            fn notify() {
                $crate::systemd::check_notify(bin());
            }
        }
    };
}
