//! A fixed pool of std threads for the blocking [`Job`]s of every session:
//! password checks (argon2 is slow on purpose), stat, mkdir, rename,
//! directory reads, opening a transfer's file. Both daemons use it.
//!
//! The pool is small and fixed on purpose: a burst of logins queues here
//! instead of starting a thread per hash, so the event loops (or
//! executor threads) keep a core and other sessions' replies are not held
//! up behind the hashes.
//!
//! Password checks have a lane of their own: at most a set number of them
//! run at once (one per CPU by default, `--password-checks`), the rest
//! wait in order, and the workers not checking passwords go on with file
//! operations. An argon2 check holds its hash's whole memory cost while it
//! runs (19 MiB by default), so this bounds what a burst of logins takes;
//! [`crate::argon`] gives each check's memory back when it ends (a worker
//! that goes straight on to the next waiting check reuses it).
//!
//! Slow work, behind a `pre-upload` or `pre-delete` hook
//! ([`crate::hooks`], up to `--hook-timeout`) or a digest (`HASH`), has a
//! lane of its own too. The
//! two slow lanes together never take every worker (with two workers or
//! more): one is always left for file operations.
//!
//! A job travels with its way home, a closure the daemon gives: it sends
//! the [`JobDone`] to the session and wakes whoever waits. Workers end when
//! every [`Workers`] handle is dropped; nobody waits for a job stuck in a
//! hung file system.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::argon;
use crate::server::{Job, JobDone, Lane};

/// Where a finished job's result goes.
pub type Reply = Box<dyn FnOnce(JobDone) + Send>;

/// A job and its way home, as one call.
type Task = Box<dyn FnOnce() + Send>;

/// A handle on the pool; clones share it. The workers end once every
/// handle is dropped and the queue is empty.
#[derive(Clone)]
pub struct Workers {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.handle.queue.lock();
        f.debug_struct("Workers")
            .field("queued", &state.tasks.len())
            .field("checks_queued", &state.checks.len())
            .field("checking", &state.checking)
            .field("check_limit", &self.handle.queue.check_limit)
            .field("hooks_queued", &state.hooks.len())
            .field("hooking", &state.hooking)
            .field("slow_limit", &self.handle.queue.slow_limit)
            .finish()
    }
}

/// What the handles share; dropping the last one closes the queue.
struct Handle {
    queue: Arc<Queue>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_all();
    }
}

/// The jobs waiting for a worker. A plain mutex and condition variable:
/// submitting wakes one idle worker (one futex call), and a worker that
/// finds more work takes it without sleeping.
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    /// Most password checks running at once.
    check_limit: usize,
    /// Most password checks and hook jobs running at once, together.
    slow_limit: usize,
}

#[derive(Default)]
struct State {
    /// Other jobs, with their order of submission.
    tasks: VecDeque<(u64, Task)>,
    /// Password checks, with their order of submission.
    checks: VecDeque<(u64, Task)>,
    /// Order number of the next submission.
    next: u64,
    /// Password checks running now.
    checking: usize,
    /// Slow jobs (behind a `pre-` hook, digests), with their order of
    /// submission.
    hooks: VecDeque<(u64, Task)>,
    /// Slow jobs running now.
    hooking: usize,
    closed: bool,
}

impl State {
    /// Whether a task of `lane` may start now: password checks wait while
    /// `check_limit` of them run, and both slow lanes while `slow_limit`
    /// of their tasks run.
    fn may_start(&self, lane: Lane, check_limit: usize, slow_limit: usize) -> bool {
        let slow = self.checking + self.hooking < slow_limit;
        match lane {
            Lane::Plain => true,
            Lane::Check => slow && self.checking < check_limit,
            Lane::Slow => slow,
        }
    }

    /// The oldest task a worker may start now, and its lane.
    fn take(&mut self, check_limit: usize, slow_limit: usize) -> Option<(Task, Lane)> {
        let mut first: Option<(u64, Lane)> = None;
        for (lane, queue) in [
            (Lane::Plain, &self.tasks),
            (Lane::Check, &self.checks),
            (Lane::Slow, &self.hooks),
        ] {
            if let Some((n, _)) = queue.front() {
                if first.is_none_or(|(m, _)| *n < m)
                    && self.may_start(lane, check_limit, slow_limit)
                {
                    first = Some((*n, lane));
                }
            }
        }
        let (_, lane) = first?;
        let (_, task) = match lane {
            Lane::Plain => self.tasks.pop_front()?,
            Lane::Check => {
                self.checking += 1;
                self.checks.pop_front()?
            }
            Lane::Slow => {
                self.hooking += 1;
                self.hooks.pop_front()?
            }
        };
        Some((task, lane))
    }

    fn push(&mut self, task: Task, lane: Lane) {
        let n = self.next;
        self.next += 1;
        match lane {
            Lane::Plain => self.tasks.push_back((n, task)),
            Lane::Check => self.checks.push_back((n, task)),
            Lane::Slow => self.hooks.push_back((n, task)),
        }
    }

    fn is_empty(&self) -> bool {
        self.tasks.is_empty() && self.checks.is_empty() && self.hooks.is_empty()
    }
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking job cannot leave the queue half-changed.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Workers {
    /// Worker threads for `threads` event loops: enough that a few slow
    /// password checks do not hold up everyone's file operations, few
    /// enough that a burst of hashes shares the cores with the loops
    /// instead of crowding them out (a thread per hash would).
    pub fn count_for(threads: usize) -> usize {
        (threads * 2).clamp(4, 64)
    }

    /// Starts `count` (at least one) worker threads named `NAME-worker-N`,
    /// of which at most `checks` run password checks at the same time:
    /// at least one, and with two workers or more at most all but one, so
    /// that a file operation never waits behind hashes. Each argon2 check
    /// holds its hash's memory cost (19 MiB by default) while it runs, so
    /// `checks` bounds the memory a burst of logins takes; further checks
    /// wait in their own queue, and the other workers go on with file
    /// operations.
    pub fn spawn(name: &str, count: usize, checks: usize) -> io::Result<Workers> {
        let count = count.max(1);
        let mut started = 0;
        let slow_limit = (count - 1).max(1);
        let queue = Arc::new(Queue {
            state: Mutex::default(),
            ready: Condvar::new(),
            check_limit: checks.clamp(1, slow_limit),
            slow_limit,
        });
        for n in 0..count {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-worker-{n}"))
                .spawn(move || work(&queue));
            if let Err(e) = spawned {
                // Some workers are enough; none is an error.
                if n == 0 {
                    return Err(e);
                }
                log::warn!("started only {n} worker threads: {e}");
                break;
            }
            started += 1;
        }
        log::debug!(
            "{started} worker threads, {} for password checks at once",
            queue.check_limit.min(started)
        );
        Ok(Workers {
            handle: Arc::new(Handle { queue }),
        })
    }

    /// Queues `job`; `reply` gets its result, on a worker thread. Password
    /// checks and work behind a `pre-` hook ([`Job::lane`]) go to their
    /// own, bounded lanes.
    pub fn submit(&self, job: Job, reply: Reply) {
        let lane = job.lane();
        self.execute(Box::new(move || reply(job.run())), lane);
    }

    /// Queues `task` to run on a worker thread, in `lane`.
    fn execute(&self, task: Task, lane: Lane) {
        let queue = &self.handle.queue;
        let mut state = queue.lock();
        state.push(task, lane);
        let startable = state.may_start(lane, queue.check_limit, queue.slow_limit);
        drop(state);
        // A slow task that must wait for another to end needs no worker
        // now: the end of that one wakes a worker.
        if startable {
            queue.ready.notify_one();
        }
    }
}

/// Counts a running task of a slow lane; ends it even if the task panics.
struct Slow<'a>(&'a Queue, Lane);

impl Drop for Slow<'_> {
    fn drop(&mut self) {
        let mut state = self.0.lock();
        match self.1 {
            Lane::Check => state.checking -= 1,
            Lane::Slow => state.hooking -= 1,
            Lane::Plain => {}
        }
        // This worker takes the next task of its own lane itself (and a
        // checking worker its argon2 block with it: waking another would
        // map a third). A task of the other slow lane, free to start now,
        // needs another worker; so does everything if this one's task
        // panicked and it is ending.
        let other_waiting = match self.1 {
            Lane::Check => !state.hooks.is_empty(),
            Lane::Slow => !state.checks.is_empty(),
            Lane::Plain => false,
        };
        let any_waiting = !state.checks.is_empty() || !state.hooks.is_empty();
        drop(state);
        if other_waiting || (any_waiting && std::thread::panicking()) {
            self.0.ready.notify_one();
        }
    }
}

/// A worker: runs tasks until the queue is closed and empty.
///
/// A worker keeps the argon2 memory of its last password check only while
/// its next task is another check: it gives the memory back before any
/// other task and before it waits, so at most as many blocks are mapped as
/// checks run.
fn work(queue: &Queue) {
    argon::keep_memory();
    let mut state = queue.lock();
    loop {
        if let Some((task, lane)) = state.take(queue.check_limit, queue.slow_limit) {
            drop(state);
            if lane != Lane::Check {
                argon::release_memory();
            }
            let slow = (lane != Lane::Plain).then(|| Slow(queue, lane));
            task();
            drop(slow);
            state = queue.lock();
        } else if state.closed && state.is_empty() {
            // Workers that waited for a check slot learn that all is done.
            queue.ready.notify_all();
            drop(state);
            argon::release_memory();
            return;
        } else if argon::holds_memory() {
            // Unmapping takes a moment: not while holding the queue.
            drop(state);
            argon::release_memory();
            state = queue.lock();
        } else {
            state = queue.ready.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    /// The password-check lane when `check`, else the plain one.
    fn lane(check: bool) -> Lane {
        if check { Lane::Check } else { Lane::Plain }
    }

    #[test]
    fn every_task_runs_once_and_workers_end_with_the_last_handle() {
        let pool = Workers::spawn("test", 3, 1).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            pool.clone()
                .execute(Box::new(move || tx.send(i).unwrap()), lane(i % 3 == 0));
        }
        let mut seen: Vec<i32> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // A queued task still runs after the last handle is gone; then the
        // workers end and drop their clone of the queue.
        let queue = Arc::downgrade(&pool.handle.queue);
        pool.execute(Box::new(move || tx.send(100).unwrap()), Lane::Check);
        drop(pool);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(100));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "workers did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn password_checks_run_at_most_the_limit_at_once_and_others_go_on() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let pool = Workers::spawn("test", 4, 2).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        // Checks hold their slot until released, so the test sees the
        // queue while they run.
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        for i in 0..20 {
            let (running, most, gate, tx) =
                (running.clone(), most.clone(), gate.clone(), tx.clone());
            pool.execute(
                Box::new(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let (open, cv) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                    drop(open);
                    running.fetch_sub(1, Ordering::SeqCst);
                    tx.send(("check", i)).unwrap();
                }),
                Lane::Check,
            );
        }
        // Two checks hold two workers; the other two still run file jobs,
        // submitted after the 18 waiting checks.
        for i in 0..10 {
            let tx = tx.clone();
            pool.execute(Box::new(move || tx.send(("file", i)).unwrap()), Lane::Plain);
        }
        for _ in 0..10 {
            let (kind, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(kind, "file", "a check ended while the gate was shut");
        }
        // The two checks may not have reached their first step yet.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while running.load(Ordering::SeqCst) != 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "two checks should run"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        {
            let state = pool.handle.queue.lock();
            assert_eq!((state.checking, state.checks.len()), (2, 18));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let mut checks: Vec<i32> = (0..20)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .map(|(kind, i)| {
                assert_eq!(kind, "check");
                i
            })
            .collect();
        checks.sort_unstable();
        assert_eq!(checks, (0..20).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 2, "more than 2 checks at once");
        // A worker gives the slot back just after its check's last step
        // (the message above), so wait for it, within a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.handle.queue.lock().checking != 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "a check slot was not given back"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn hook_jobs_and_checks_together_leave_a_worker_for_files() {
        let pool = Workers::spawn("test", 3, 2).unwrap();
        let gate = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = mpsc::channel();
        let blocked = |lane: Lane, i: i32| {
            let (gate, tx) = (gate.clone(), tx.clone());
            pool.execute(
                Box::new(move || {
                    let (open, cv) = &*gate;
                    let mut open = open.lock().unwrap();
                    while !*open {
                        open = cv.wait(open).unwrap();
                    }
                    drop(open);
                    tx.send((lane, i)).unwrap();
                }),
                lane,
            );
        };
        for i in 0..4 {
            blocked(Lane::Slow, i);
        }
        blocked(Lane::Check, 0);
        // Two hook jobs hold two of the three workers; the third still
        // runs file jobs, and neither the other hooks nor the check start.
        for i in 0..5 {
            let tx = tx.clone();
            pool.execute(
                Box::new(move || tx.send((Lane::Plain, i)).unwrap()),
                Lane::Plain,
            );
        }
        for _ in 0..5 {
            let (lane, _) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(
                lane,
                Lane::Plain,
                "a slow job ended while the gate was shut"
            );
        }
        {
            let state = pool.handle.queue.lock();
            assert_eq!((state.hooking, state.hooks.len()), (2, 2));
            assert_eq!((state.checking, state.checks.len()), (0, 1));
        }
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        let mut ended: Vec<(Lane, i32)> = (0..5)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        ended.sort_by_key(|(lane, i)| (*lane == Lane::Check, *i));
        assert_eq!(
            ended,
            [
                (Lane::Slow, 0),
                (Lane::Slow, 1),
                (Lane::Slow, 2),
                (Lane::Slow, 3),
                (Lane::Check, 0)
            ]
        );
    }

    #[test]
    fn the_check_limit_is_at_least_one_and_leaves_a_worker_for_files() {
        let limit = |count, checks| {
            Workers::spawn("test", count, checks)
                .unwrap()
                .handle
                .queue
                .check_limit
        };
        assert_eq!(limit(3, 0), 1);
        assert_eq!(limit(3, 2), 2);
        assert_eq!(limit(3, 8), 2);
        assert_eq!(limit(1, 8), 1);
        // One worker, one check at a time: checks and file jobs take turns
        // in the order they came.
        let pool = Workers::spawn("test", 1, 1).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            pool.execute(Box::new(move || tx.send(i).unwrap()), lane(i % 2 == 0));
        }
        let order: Vec<i32> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    }
}
