//! Event hooks (`--hook EVENT=PROGRAM`): programs run when something
//! happened in a session (a login, an upload, a deletion ...) or, for the
//! `pre-` events, before it happens, with the power to refuse it.
//!
//! Every program runs without a shell ([`crate::program`]), with the facts
//! of the event in its environment ([`Facts::env`]) and nothing else but
//! `PATH`, standard input and output on `/dev/null` and standard error
//! logged (at most [`STDERR_LIMIT`] bytes), and is killed with what it
//! started when `--hook-timeout` passes.
//!
//! After-the-fact hooks ([`Hooks::fire`]) never hold anyone up: they go to
//! a queue of at most [`QUEUE_LIMIT`] waiting calls (a call beyond it is
//! dropped, with a warning), served by at most [`MAX_RUNNING`] threads
//! of their own, started when needed and ended after a while idle. The
//! `pre-upload` and `pre-delete` hooks ([`Hooks::allows`]) run on the
//! worker thread of the job they guard; the worker pool keeps such jobs in
//! a lane of their own that never takes every worker
//! ([`crate::workers`]).

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use crate::program::{Program, Run};

/// Most hook programs run at once from the after-the-fact queue.
pub const MAX_RUNNING: usize = 16;

/// Most after-the-fact calls waiting for a thread; more are dropped.
pub const QUEUE_LIMIT: usize = 1024;

/// Bytes of a hook's standard error that are logged.
pub const STDERR_LIMIT: usize = 4096;

/// The default `--hook-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle hook thread waits for work before it ends.
const IDLE_END: Duration = Duration::from_secs(10);

/// What a hook can be attached to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HookEvent {
    /// A successful login.
    Login,
    /// The end of a logged-in session (or a new login after `REIN`).
    Logout,
    /// An upload ended (complete or not).
    Upload,
    /// A download ended (complete or not).
    Download,
    /// `DELE` was carried out (or failed).
    Delete,
    /// `RNFR`/`RNTO` was carried out (or failed).
    Rename,
    /// `MKD` was carried out (or failed).
    Mkdir,
    /// `RMD` was carried out (or failed).
    Rmdir,
    /// Before an upload's file is opened; a refusal answers `550`.
    PreUpload,
    /// Before `DELE` removes a file; a refusal answers `550`.
    PreDelete,
}

impl HookEvent {
    /// Every event, in the order of [`HookEvent::index`].
    pub const ALL: [HookEvent; 10] = [
        HookEvent::Login,
        HookEvent::Logout,
        HookEvent::Upload,
        HookEvent::Download,
        HookEvent::Delete,
        HookEvent::Rename,
        HookEvent::Mkdir,
        HookEvent::Rmdir,
        HookEvent::PreUpload,
        HookEvent::PreDelete,
    ];

    /// The name used in `--hook`, `[hooks]` and `FTP_EVENT`.
    pub fn name(self) -> &'static str {
        match self {
            HookEvent::Login => "login",
            HookEvent::Logout => "logout",
            HookEvent::Upload => "upload",
            HookEvent::Download => "download",
            HookEvent::Delete => "delete",
            HookEvent::Rename => "rename",
            HookEvent::Mkdir => "mkdir",
            HookEvent::Rmdir => "rmdir",
            HookEvent::PreUpload => "pre-upload",
            HookEvent::PreDelete => "pre-delete",
        }
    }

    /// Whether the hook's answer decides if the operation happens.
    pub fn is_pre(self) -> bool {
        matches!(self, HookEvent::PreUpload | HookEvent::PreDelete)
    }

    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for HookEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An event name that is none of [`HookEvent::ALL`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownEvent;

impl std::str::FromStr for HookEvent {
    type Err = UnknownEvent;

    fn from_str(s: &str) -> Result<HookEvent, UnknownEvent> {
        HookEvent::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or(UnknownEvent)
    }
}

/// The programs attached to events and their time limit, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookConfig {
    programs: [Option<Program>; 10],
    /// How long a hook may run before it is killed (`--hook-timeout`).
    pub timeout: Duration,
}

impl HookConfig {
    /// No hooks, the default time limit.
    pub fn new(timeout: Duration) -> HookConfig {
        HookConfig {
            programs: Default::default(),
            timeout,
        }
    }

    /// Attaches `program` to `event`, replacing what was attached.
    pub fn set(&mut self, event: HookEvent, program: Program) {
        self.programs[event.index()] = Some(program);
    }

    /// The program attached to `event`.
    pub fn get(&self, event: HookEvent) -> Option<&Program> {
        self.programs[event.index()].as_ref()
    }

    /// Whether no event has a program.
    pub fn is_empty(&self) -> bool {
        self.programs.iter().all(Option::is_none)
    }
}

/// What a hook is told about its event, in its environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    /// `FTP_EVENT`.
    pub event: HookEvent,
    /// `FTP_USER`: the logged-in name (`anonymous` for anonymous
    /// sessions), empty before a login.
    pub user: String,
    /// `FTP_PATH`: the virtual path, as the session sees it.
    pub path: Option<String>,
    /// `FTP_TARGET`: the new name of a rename.
    pub target: Option<String>,
    /// `FTP_BYTES`: the bytes an upload or download moved.
    pub bytes: Option<u64>,
    /// `FTP_PEER`: the client's address.
    pub peer: IpAddr,
    /// `FTP_STATUS`: `ok` or `failed` (after-the-fact events only).
    pub status: Option<Status>,
    /// `FTP_SESSION`: the session's number in the logs.
    pub session: u64,
}

/// How an operation ended, for `FTP_STATUS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// It was done (a transfer: completely).
    Ok,
    /// It failed (a transfer: it ended before all the data moved).
    Failed,
}

impl Status {
    /// `ok` or `failed`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Failed => "failed",
        }
    }

    /// [`Status::Ok`] when `ok`.
    pub fn of(ok: bool) -> Status {
        if ok { Status::Ok } else { Status::Failed }
    }
}

impl Facts {
    /// The facts of `event` in session `session` of `user` from `peer`,
    /// with no path, target, byte count or status yet.
    pub fn new(event: HookEvent, session: u64, user: &str, peer: IpAddr) -> Facts {
        Facts {
            event,
            user: user.to_string(),
            path: None,
            target: None,
            bytes: None,
            peer,
            status: None,
            session,
        }
    }

    /// The environment variables: always `FTP_EVENT`, `FTP_USER`,
    /// `FTP_PEER` and `FTP_SESSION`; the others when they apply.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("FTP_EVENT", self.event.name().to_string()),
            ("FTP_USER", self.user.clone()),
            ("FTP_PEER", self.peer.to_string()),
            ("FTP_SESSION", self.session.to_string()),
        ];
        if let Some(path) = &self.path {
            env.push(("FTP_PATH", path.clone()));
        }
        if let Some(target) = &self.target {
            env.push(("FTP_TARGET", target.clone()));
        }
        if let Some(bytes) = self.bytes {
            env.push(("FTP_BYTES", bytes.to_string()));
        }
        if let Some(status) = self.status {
            env.push(("FTP_STATUS", status.name().to_string()));
        }
        env
    }
}

/// The hook runner of a server.
pub struct Hooks {
    config: HookConfig,
    queue: Arc<Queue>,
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.queue.lock();
        f.debug_struct("Hooks")
            .field("config", &self.config)
            .field("queued", &state.calls.len())
            .field("threads", &state.threads)
            .finish()
    }
}

/// The after-the-fact calls waiting, and the threads that run them.
struct Queue {
    state: Mutex<QueueState>,
    ready: Condvar,
}

#[derive(Default)]
struct QueueState {
    calls: VecDeque<(Program, Facts)>,
    /// Threads started and not ended.
    threads: usize,
    /// Threads waiting for a call.
    idle: usize,
    /// Calls running now.
    running: usize,
    /// The [`Hooks`] is gone: threads end once the queue is empty.
    closed: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Hooks {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

impl Hooks {
    /// A runner for `config`.
    pub fn new(config: HookConfig) -> Hooks {
        Hooks {
            config,
            queue: Arc::new(Queue {
                state: Mutex::default(),
                ready: Condvar::new(),
            }),
        }
    }

    /// Whether a program is attached to `event`.
    pub fn has(&self, event: HookEvent) -> bool {
        self.config.get(event).is_some()
    }

    /// Runs the hook of an after-the-fact event, later, on a hook thread;
    /// nothing happens if `facts.event` has none. Never blocks: with
    /// [`QUEUE_LIMIT`] calls waiting, this one is dropped and logged.
    pub fn fire(&self, facts: Facts) {
        let Some(program) = self.config.get(facts.event) else {
            return;
        };
        let mut state = self.queue.lock();
        if state.calls.len() >= QUEUE_LIMIT {
            drop(state);
            log::warn!(
                session = facts.session;
                "hook {}: {QUEUE_LIMIT} calls already wait; this one is dropped",
                facts.event
            );
            return;
        }
        state.calls.push_back((program.clone(), facts));
        if state.idle > 0 {
            drop(state);
            self.queue.ready.notify_one();
        } else if state.threads < MAX_RUNNING {
            state.threads += 1;
            drop(state);
            let queue = self.queue.clone();
            let timeout = self.config.timeout;
            let spawned = std::thread::Builder::new()
                .name("ftp-hook".into())
                .spawn(move || serve(&queue, timeout));
            if let Err(e) = spawned {
                log::warn!("cannot start a hook thread: {e}");
                self.queue.lock().threads -= 1;
            }
        }
    }

    /// Waits, at most `within`, for the after-the-fact calls queued and
    /// running to end: a daemon about to exit calls it so that the last
    /// session's `logout` hook runs. Says how many were left.
    pub fn finish(&self, within: Duration) -> usize {
        let deadline = std::time::Instant::now() + within;
        let mut state = self.queue.lock();
        loop {
            let left = state.calls.len() + state.running;
            let now = std::time::Instant::now();
            if left == 0 || now >= deadline {
                if left > 0 {
                    log::warn!("{left} hook calls still queued or running at exit");
                }
                return left;
            }
            state = self
                .queue
                .ready
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Runs the hook of a `pre-` event now, on this thread, and says
    /// whether the operation may go on: yes without a hook, no when the
    /// program exits with a non-zero status, cannot be started or runs
    /// out of time.
    pub fn allows(&self, facts: &Facts) -> bool {
        let Some(program) = self.config.get(facts.event) else {
            return true;
        };
        let allowed = run(program, facts, self.config.timeout);
        if !allowed {
            log::info!(
                session = facts.session, event = facts.event.name();
                "hook {} refused {}",
                facts.event,
                facts.path.as_deref().unwrap_or("-")
            );
        }
        allowed
    }
}

/// A hook thread: runs queued calls until none comes for [`IDLE_END`] or
/// the runner is gone and the queue empty.
fn serve(queue: &Queue, timeout: Duration) {
    let mut state = queue.lock();
    loop {
        if let Some((program, facts)) = state.calls.pop_front() {
            state.running += 1;
            drop(state);
            run(&program, &facts, timeout);
            state = queue.lock();
            state.running -= 1;
            if state.calls.is_empty() && state.running == 0 {
                // Whoever waits in `Hooks::finish`.
                queue.ready.notify_all();
            }
            continue;
        }
        if state.closed {
            break;
        }
        state.idle += 1;
        let (next, waited) = queue
            .ready
            .wait_timeout(state, IDLE_END)
            .unwrap_or_else(|e| e.into_inner());
        state = next;
        state.idle -= 1;
        if waited.timed_out() && state.calls.is_empty() {
            break;
        }
    }
    state.threads -= 1;
}

/// Runs one hook: whether it exited with status 0 (anything else, and a
/// program that could not run or ran out of time, is logged).
fn run(program: &Program, facts: &Facts, timeout: Duration) -> bool {
    let env = facts.env();
    let done = program.run(&Run {
        env: &env,
        stdin: None,
        stdout_limit: 0,
        stderr_limit: STDERR_LIMIT,
        timeout,
    });
    let event = facts.event;
    match done {
        Ok(done) => {
            if !done.stderr.is_empty() {
                log::warn!(
                    session = facts.session, event = event.name();
                    "hook {event} ({program}) said: {}",
                    String::from_utf8_lossy(&done.stderr).trim_end()
                );
            }
            if done.status.success() {
                log::debug!(session = facts.session; "hook {event} ({program}) ran");
                true
            } else {
                log::warn!(
                    session = facts.session, event = event.name();
                    "hook {event} ({program}) ended with {}",
                    done.describe()
                );
                false
            }
        }
        Err(e) => {
            log::warn!(
                session = facts.session, event = event.name();
                "hook {event} ({program}): {e}"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Instant;

    fn facts(event: HookEvent) -> Facts {
        let mut f = Facts::new(event, 7, "alice", "127.0.0.1".parse().unwrap());
        f.path = Some("/up/a b.txt".into());
        f
    }

    /// `/bin/sh` running a script of `body`. (Executing a file written a
    /// moment ago can fail with "text file busy" while another test
    /// thread forks.)
    fn script(dir: &Path, name: &str, body: &str) -> Program {
        let path = dir.join(name);
        std::fs::write(&path, format!("{body}\n")).unwrap();
        Program {
            path: "/bin/sh".into(),
            args: vec![path.into()],
        }
    }

    fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check() {
            assert!(Instant::now() < deadline, "waited too long for {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn event_names_round_trip() {
        for e in HookEvent::ALL {
            assert_eq!(e.name().parse::<HookEvent>(), Ok(e));
            assert_eq!(HookEvent::ALL[e.index()], e);
        }
        assert_eq!("pre_upload".parse::<HookEvent>(), Err(UnknownEvent));
        assert!(HookEvent::PreDelete.is_pre() && !HookEvent::Delete.is_pre());
    }

    #[test]
    fn facts_become_the_environment() {
        let mut f = facts(HookEvent::Rename);
        f.target = Some("/b".into());
        f.status = Some(Status::Failed);
        let env = f.env();
        let get = |k: &str| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("FTP_EVENT"), Some("rename"));
        assert_eq!(get("FTP_USER"), Some("alice"));
        assert_eq!(get("FTP_PATH"), Some("/up/a b.txt"));
        assert_eq!(get("FTP_TARGET"), Some("/b"));
        assert_eq!(get("FTP_STATUS"), Some("failed"));
        assert_eq!(get("FTP_PEER"), Some("127.0.0.1"));
        assert_eq!(get("FTP_SESSION"), Some("7"));
        assert_eq!(get("FTP_BYTES"), None);
    }

    #[test]
    fn pre_hooks_decide_by_exit_status_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HookConfig::new(Duration::from_millis(300));
        let hooks = Hooks::new(config.clone());
        assert!(
            hooks.allows(&facts(HookEvent::PreUpload)),
            "no hook: allowed"
        );
        config.set(
            HookEvent::PreUpload,
            script(dir.path(), "yes", "test \"$FTP_PATH\" = '/up/a b.txt'"),
        );
        config.set(HookEvent::PreDelete, script(dir.path(), "no", "exit 1"));
        let hooks = Hooks::new(config.clone());
        assert!(hooks.allows(&facts(HookEvent::PreUpload)));
        assert!(!hooks.allows(&facts(HookEvent::PreDelete)));
        config.set(HookEvent::PreDelete, script(dir.path(), "slow", "sleep 10"));
        let started = Instant::now();
        assert!(!Hooks::new(config).allows(&facts(HookEvent::PreDelete)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn after_the_fact_hooks_run_on_at_most_the_limit_of_threads() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let gate = dir.path().join("gate");
        let mut config = HookConfig::new(Duration::from_secs(20));
        // Each call notes itself, then waits for the gate to open.
        config.set(
            HookEvent::Upload,
            script(
                dir.path(),
                "up",
                &format!(
                    "echo \"$FTP_SESSION\" >> {}; while [ ! -e {} ]; do sleep 0.02; done",
                    log.display(),
                    gate.display()
                ),
            ),
        );
        let hooks = Hooks::new(config);
        let started = Instant::now();
        for n in 0..(MAX_RUNNING as u64 + 4) {
            let mut f = facts(HookEvent::Upload);
            f.session = n;
            hooks.fire(f);
        }
        // Nothing attached: nothing queued.
        hooks.fire(facts(HookEvent::Download));
        assert!(started.elapsed() < Duration::from_secs(2), "fire blocked");
        let lines = || {
            std::fs::read_to_string(&log)
                .map(|t| t.lines().count())
                .unwrap_or(0)
        };
        wait_for("the first calls", || lines() == MAX_RUNNING);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(lines(), MAX_RUNNING, "more than the limit ran at once");
        assert_eq!(hooks.queue.lock().calls.len(), 4);
        assert_eq!(hooks.finish(Duration::from_millis(100)), MAX_RUNNING + 4);
        std::fs::write(&gate, "").unwrap();
        assert_eq!(hooks.finish(Duration::from_secs(10)), 0);
        assert_eq!(lines(), MAX_RUNNING + 4);
        let queue = Arc::downgrade(&hooks.queue);
        drop(hooks);
        wait_for("the threads to end", || queue.strong_count() == 0);
    }

    #[test]
    fn calls_beyond_the_queue_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = HookConfig::new(Duration::from_secs(20));
        let gate = dir.path().join("gate");
        config.set(
            HookEvent::Login,
            script(
                dir.path(),
                "login",
                &format!("while [ ! -e {} ]; do sleep 0.02; done", gate.display()),
            ),
        );
        let hooks = Hooks::new(config);
        for _ in 0..(MAX_RUNNING + QUEUE_LIMIT + 50) {
            hooks.fire(facts(HookEvent::Login));
        }
        let queued = hooks.queue.lock().calls.len();
        assert!(queued <= QUEUE_LIMIT, "{queued}");
        assert!(queued >= QUEUE_LIMIT - MAX_RUNNING, "{queued}");
        // Let them all go, and wait until they have ended: the gate goes
        // with the folder at the end of the test, and a call still
        // waiting for it then would never end.
        std::fs::write(&gate, "").unwrap();
        assert_eq!(hooks.finish(Duration::from_secs(20)), 0);
        drop(hooks);
    }
}

/// What a `pre-` hook adds to each upload or deletion it guards; run with
/// `cargo test -p ftp-host --lib -- --ignored pre_hook_latency --nocapture`.
#[cfg(test)]
mod measure {
    use super::*;

    #[test]
    #[ignore = "a measurement, not a check"]
    fn pre_hook_latency() {
        let mut config = HookConfig::new(Duration::from_secs(5));
        config.set(HookEvent::PreUpload, "/bin/true".parse().unwrap());
        let hooks = Hooks::new(config);
        let f = Facts::new(HookEvent::PreUpload, 1, "a", "127.0.0.1".parse().unwrap());
        let n = 200;
        let t = std::time::Instant::now();
        for _ in 0..n {
            assert!(hooks.allows(&f));
        }
        eprintln!(
            "MEASURE: {:?} per pre-hook run of /bin/true",
            t.elapsed() / n
        );
    }
}
