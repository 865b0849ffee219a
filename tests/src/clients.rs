//! Real FTP clients (curl, wget, lftp, python3 ...) run as child processes
//! with a time limit.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Time limit of one client run.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether missing clients fail the tests (`FTP_TEST_REQUIRE_CLIENTS=1`,
/// set by CI) instead of skipping them.
pub fn clients_required() -> bool {
    std::env::var("FTP_TEST_REQUIRE_CLIENTS").is_ok_and(|v| v == "1")
}

/// The path of `program` on `PATH`, or in the sbin folders (where Debian
/// puts haproxy) that a user's `PATH` may lack.
pub fn find_program(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The path of `program`, or `None` after printing `SKIP: test: program
/// not installed` on the terminal. With `FTP_TEST_REQUIRE_CLIENTS=1` a
/// missing program fails the test instead.
pub fn require(test: &str, program: &str) -> Option<PathBuf> {
    if let Some(p) = find_program(program) {
        return Some(p);
    }
    if clients_required() {
        panic!("{test}: {program} not installed, and FTP_TEST_REQUIRE_CLIENTS=1");
    }
    crate::skip(test, &format!("{program} not installed"));
    None
}

/// What a client run produced.
#[derive(Debug)]
pub struct Output {
    /// The exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Output {
    /// Panics with the output unless the program exited with status 0.
    pub fn success(self, what: &str) -> Output {
        assert!(self.status.success(), "{what}: {}\n{self}", self.status);
        self
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        )
    }
}

/// Runs `cmd` (standard input closed, outputs captured) and waits for it
/// at most `timeout`; a program still running then is killed and the test
/// fails.
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let shown = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                let stdout = out.join().unwrap_or_default();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{shown}: still running after {timeout:?}, killed\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => panic!("{shown}: wait: {e}"),
        }
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// A command for `program` running in `dir`, with a clean, predictable
/// environment for FTP clients (no proxies, a private `HOME` so that no
/// user configuration such as `~/.netrc` or `~/.lftprc` applies).
pub fn command(program: &Path, dir: &Path, home: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(dir)
        .env("HOME", home)
        .env("LC_ALL", "C.UTF-8")
        .env_remove("ftp_proxy")
        .env_remove("FTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .env_remove("http_proxy")
        .env_remove("no_proxy");
    cmd
}
