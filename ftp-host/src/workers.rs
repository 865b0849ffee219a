//! A fixed pool of std threads for the blocking [`Job`]s of every session:
//! password checks (argon2 is slow on purpose), stat, mkdir, rename,
//! directory reads, opening a transfer's file. Both daemons use it.
//!
//! The pool is small and fixed on purpose: a burst of logins queues here
//! instead of starting a thread per hash, so the event loops (or
//! executor threads) keep a core and other sessions' replies are not held
//! up behind the hashes.
//!
//! A job travels with its way home, a closure the daemon gives: it sends
//! the [`JobDone`] to the session and wakes whoever waits. Workers end when
//! every [`Workers`] handle is dropped; nobody waits for a job stuck in a
//! hung file system.

use std::collections::VecDeque;
use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::server::{Job, JobDone};

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
        let queued = self.handle.queue.lock().tasks.len();
        f.debug_struct("Workers").field("queued", &queued).finish()
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
#[derive(Default)]
struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

#[derive(Default)]
struct State {
    tasks: VecDeque<Task>,
    closed: bool,
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

    /// Starts `count` (at least one) worker threads named `NAME-worker-N`.
    pub fn spawn(name: &str, count: usize) -> io::Result<Workers> {
        let queue = Arc::new(Queue::default());
        for n in 0..count.max(1) {
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
        }
        Ok(Workers {
            handle: Arc::new(Handle { queue }),
        })
    }

    /// Queues `job`; `reply` gets its result, on a worker thread.
    pub fn submit(&self, job: Job, reply: Reply) {
        self.execute(Box::new(move || reply(job.run())));
    }

    /// Queues `task` to run on a worker thread.
    fn execute(&self, task: Task) {
        let queue = &self.handle.queue;
        queue.lock().tasks.push_back(task);
        queue.ready.notify_one();
    }
}

/// A worker: runs tasks until the queue is closed and empty.
fn work(queue: &Queue) {
    let mut state = queue.lock();
    loop {
        if let Some(task) = state.tasks.pop_front() {
            drop(state);
            task();
            state = queue.lock();
        } else if state.closed {
            return;
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

    #[test]
    fn every_task_runs_once_and_workers_end_with_the_last_handle() {
        let pool = Workers::spawn("test", 3).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..100 {
            let tx = tx.clone();
            pool.clone().execute(Box::new(move || tx.send(i).unwrap()));
        }
        let mut seen: Vec<i32> = (0..100)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>());
        // A queued task still runs after the last handle is gone; then the
        // workers end and drop their clone of the queue.
        let queue = Arc::downgrade(&pool.handle.queue);
        pool.execute(Box::new(move || tx.send(100).unwrap()));
        drop(pool);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(100));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while queue.strong_count() > 0 {
            assert!(std::time::Instant::now() < deadline, "workers did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
