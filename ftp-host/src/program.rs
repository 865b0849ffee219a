//! Running one external program (an event hook, an `--auth-program`)
//! without a shell: an absolute path and its arguments, an environment of
//! `PATH` and the given variables only, in a process group of its own, with
//! a deadline after which the whole group is killed and the program reaped.
//!
//! Its output is read while it runs, at most a set number of bytes of
//! each stream (the rest is read and thrown away, so a chatty program
//! never blocks on a full pipe). Call [`Program::run`] off the event loops:
//! it blocks until the program ends or its time is up.

use std::ffi::OsString;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::process::{Pid, Signal, kill_process_group};

/// `PATH` for programs when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Longest wait between two looks at whether a program that closed its
/// pipes (or has none) has ended.
const MAX_NAP: Duration = Duration::from_millis(20);

/// A program to run: an absolute path and its arguments, from
/// `PATH ARG...` split on whitespace (no shell, no quoting).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Program {
    /// The executable.
    pub path: PathBuf,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Why a program's text could not be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgramError {
    /// Nothing was given.
    Empty,
    /// The path is not absolute.
    NotAbsolute,
}

impl ProgramError {
    /// The reason, for [`crate::config::ConfigError::Invalid`].
    pub fn reason(self) -> &'static str {
        match self {
            ProgramError::Empty => "names no program",
            ProgramError::NotAbsolute => "the program must be an absolute path",
        }
    }
}

impl fmt::Display for ProgramError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ProgramError {}

impl std::str::FromStr for Program {
    type Err = ProgramError;

    /// `PATH [ARG...]`, split on whitespace; `PATH` must be absolute.
    fn from_str(s: &str) -> Result<Program, ProgramError> {
        let mut words = s.split_whitespace();
        let path = Path::new(words.next().ok_or(ProgramError::Empty)?);
        if !path.is_absolute() {
            return Err(ProgramError::NotAbsolute);
        }
        Ok(Program {
            path: path.to_path_buf(),
            args: words.map(OsString::from).collect(),
        })
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        for a in &self.args {
            write!(f, " {}", a.to_string_lossy())?;
        }
        Ok(())
    }
}

/// What one run is given and may take.
#[derive(Debug)]
pub struct Run<'a> {
    /// Variables of the environment, besides `PATH`.
    pub env: &'a [(&'a str, String)],
    /// Written to standard input, which is then closed; `None`: standard
    /// input is `/dev/null`.
    pub stdin: Option<&'a [u8]>,
    /// Bytes of standard output kept; `0`: standard output is `/dev/null`.
    pub stdout_limit: usize,
    /// Bytes of standard error kept; `0`: standard error is `/dev/null`.
    pub stderr_limit: usize,
    /// When the program is killed.
    pub timeout: Duration,
}

/// How a program ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// What it wrote to standard output, up to the limit.
    pub stdout: Vec<u8>,
    /// Whether it wrote more than the limit to standard output.
    pub stdout_cut: bool,
    /// What it wrote to standard error, up to the limit.
    pub stderr: Vec<u8>,
}

impl Finished {
    /// The exit status as text: `exit status 3`, `killed by signal 9`.
    pub fn describe(&self) -> String {
        match (self.status.code(), self.status.signal()) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => self.status.to_string(),
        }
    }
}

/// Why a program did not finish.
#[derive(Debug)]
pub enum RunError {
    /// It could not be started.
    Spawn(io::Error),
    /// Its time ran out: it was killed (with its process group) and
    /// reaped.
    TimedOut(Duration),
    /// Watching it failed; it was killed and reaped.
    Wait(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Spawn(e) => write!(f, "cannot start it: {e}"),
            RunError::TimedOut(t) => write!(f, "killed after {} s", t.as_secs_f64()),
            RunError::Wait(e) => write!(f, "lost track of it: {e}"),
        }
    }
}

impl std::error::Error for RunError {}

/// One output stream being read.
struct Capture<R> {
    pipe: Option<R>,
    kept: Vec<u8>,
    limit: usize,
    cut: bool,
}

impl<R: Read + AsFd> Capture<R> {
    fn new(pipe: Option<R>, limit: usize) -> io::Result<Capture<R>> {
        if let Some(p) = &pipe {
            rustix::io::ioctl_fionbio(p, true)?;
        }
        Ok(Capture {
            pipe,
            kept: Vec::new(),
            limit,
            cut: false,
        })
    }

    /// Reads what is there; closes the pipe at its end.
    fn drain(&mut self) {
        let Some(pipe) = &mut self.pipe else {
            return;
        };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = self.limit - self.kept.len();
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                    self.cut |= n > room;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }
}

impl Program {
    /// Runs the program as `run` says and waits for it, at most
    /// `run.timeout`.
    pub fn run(&self, run: &Run<'_>) -> Result<Finished, RunError> {
        let mut command = Command::new(&self.path);
        command
            .args(&self.args)
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| DEFAULT_PATH.into()),
            )
            // A name that is not UTF-8 reaches the program as its bytes.
            .envs(
                run.env
                    .iter()
                    .map(|(k, v)| (k, std::ffi::OsString::from_vec(ftp_proto::name::encode(v)))),
            )
            .current_dir("/")
            .process_group(0)
            .stdin(if run.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(piped_if(run.stdout_limit))
            .stderr(piped_if(run.stderr_limit));
        let mut child = command.spawn().map_err(RunError::Spawn)?;
        let watched = watch(&mut child, run);
        if watched.is_err() {
            kill(&child);
        }
        // Reaped in every case: after a kill it ends at once.
        let status = child.wait();
        let (stdout, stderr) = watched?;
        let status = status.map_err(RunError::Wait)?;
        Ok(Finished {
            status,
            stdout_cut: stdout.cut,
            stdout: stdout.kept,
            stderr: stderr.kept,
        })
    }
}

fn piped_if(limit: usize) -> Stdio {
    if limit > 0 {
        Stdio::piped()
    } else {
        Stdio::null()
    }
}

/// Kills the program's process group (what it started too).
fn kill(child: &Child) {
    let pid = Pid::from_child(child);
    if let Err(e) = kill_process_group(pid, Signal::KILL) {
        // The group may be gone already; the program itself must go.
        log::debug!("cannot kill process group {pid:?}: {e}");
        let _ = rustix::process::kill_process(pid, Signal::KILL);
    }
}

type Captured = (
    Capture<std::process::ChildStdout>,
    Capture<std::process::ChildStderr>,
);

/// Feeds standard input and reads the output until the program ends, or
/// fails with [`RunError::TimedOut`] at the deadline.
fn watch(child: &mut Child, run: &Run<'_>) -> Result<Captured, RunError> {
    let deadline = Instant::now() + run.timeout;
    let mut stdin = child.stdin.take();
    if let Some(s) = &stdin {
        rustix::io::ioctl_fionbio(s, true).map_err(|e| RunError::Wait(e.into()))?;
    }
    let mut input = run.stdin.unwrap_or_default();
    let mut out = Capture::new(child.stdout.take(), run.stdout_limit).map_err(RunError::Wait)?;
    let mut err = Capture::new(child.stderr.take(), run.stderr_limit).map_err(RunError::Wait)?;
    // Readable once the program ends: no polling for its exit.
    let pidfd =
        rustix::process::pidfd_open(Pid::from_child(child), rustix::process::PidfdFlags::empty())
            .ok();
    let mut ended = false;
    let mut nap = Duration::from_millis(1);
    loop {
        if let Some(s) = &mut stdin {
            match s.write(input) {
                Ok(n) => input = &input[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // It closed its standard input: it wants no more.
                Err(_) => input = &[],
            }
            if input.is_empty() {
                stdin = None;
            }
        }
        out.drain();
        err.drain();
        if !ended {
            ended = child.try_wait().map_err(RunError::Wait)?.is_some();
        }
        // Done once it ended and what it started no longer holds its
        // output open.
        if ended && out.pipe.is_none() && err.pipe.is_none() {
            return Ok((out, err));
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(RunError::TimedOut(run.timeout));
        }
        let left = deadline - now;
        let mut fds = Vec::with_capacity(3);
        if let Some(p) = &out.pipe {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if let Some(p) = &err.pipe {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if let Some(s) = &stdin {
            fds.push(PollFd::new(s, PollFlags::OUT));
        }
        if let (false, Some(p)) = (ended, &pidfd) {
            fds.push(PollFd::new(p, PollFlags::IN));
        }
        if fds.is_empty() {
            // Nothing to wait on but the end itself: look again soon.
            std::thread::sleep(nap.min(left));
            nap = (nap * 2).min(MAX_NAP);
        } else {
            let wait = left.min(Duration::from_secs(1));
            let timeout = Timespec {
                tv_sec: wait.as_secs() as i64,
                tv_nsec: i64::from(wait.subsec_nanos()),
            };
            match poll(&mut fds, Some(&timeout)) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(RunError::Wait(e.into())),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Program {
        Program {
            path: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
        }
    }

    fn run(timeout_ms: u64) -> Run<'static> {
        Run {
            env: &[],
            stdin: None,
            stdout_limit: 64,
            stderr_limit: 64,
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[test]
    fn programs_are_absolute_paths_split_on_whitespace() {
        let p: Program = " /bin/echo  a b ".parse().unwrap();
        assert_eq!(p.path, PathBuf::from("/bin/echo"));
        assert_eq!(p.args, vec![OsString::from("a"), OsString::from("b")]);
        assert_eq!(p.to_string(), "/bin/echo a b");
        assert_eq!("echo a".parse::<Program>(), Err(ProgramError::NotAbsolute));
        assert_eq!("  ".parse::<Program>(), Err(ProgramError::Empty));
    }

    #[test]
    fn the_environment_is_cleared_but_for_path_and_the_facts() {
        let env = [("FTP_USER", "alice".to_string())];
        let r = Run {
            env: &env,
            stdout_limit: 4096,
            ..run(10_000)
        };
        let done = sh("env").run(&r).unwrap();
        assert!(done.status.success());
        let text = String::from_utf8(done.stdout).unwrap();
        let mut names: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        names.sort_unstable();
        // sh itself may add PWD, SHLVL and `_`.
        names.retain(|n| !["PWD", "SHLVL", "_"].contains(n));
        assert_eq!(names, ["FTP_USER", "PATH"], "{text}");
        assert!(text.contains("FTP_USER=alice\n"));
    }

    #[test]
    fn input_is_given_and_output_is_bounded() {
        let r = Run {
            stdin: Some(b"secret\n"),
            stdout_limit: 10,
            ..run(10_000)
        };
        let done = sh("read p; echo \"got $p\"; head -c 100000 /dev/zero; echo oops >&2; exit 3")
            .run(&r)
            .unwrap();
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(done.describe(), "exit status 3");
        assert_eq!(done.stdout, b"got secret");
        assert!(done.stdout_cut);
        assert_eq!(done.stderr, b"oops\n");
    }

    #[test]
    fn a_program_past_its_time_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let script = format!("sleep 30 & echo $$ $! > {}; wait", pids.to_str().unwrap());
        let started = Instant::now();
        let e = sh(&script).run(&run(300)).unwrap_err();
        assert!(matches!(e, RunError::TimedOut(_)), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = std::fs::read_to_string(&pids).unwrap();
        for pid in text.split_whitespace() {
            // The shell was reaped; its sleep, killed with the group, is
            // reaped by init soon after.
            let proc = PathBuf::from(format!("/proc/{pid}"));
            let deadline = Instant::now() + Duration::from_secs(5);
            while proc.exists()
                && !std::fs::read_to_string(proc.join("stat")).is_ok_and(|s| s.contains(") Z"))
            {
                assert!(Instant::now() < deadline, "process {pid} lives on");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    #[test]
    fn a_missing_program_cannot_start() {
        let p: Program = "/nonexistent/hook".parse().unwrap();
        assert!(matches!(p.run(&run(1000)), Err(RunError::Spawn(_))));
    }
}
