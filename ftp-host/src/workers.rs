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

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::server::{Job, JobDone};

/// Where a finished job's result goes.
pub type Reply = Box<dyn FnOnce(JobDone) + Send>;

struct Task {
    job: Job,
    reply: Reply,
}

/// A handle on the pool; clones share it.
#[derive(Debug, Clone)]
pub struct Workers {
    tx: Sender<Task>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("job", &self.job).finish()
    }
}

impl Workers {
    /// Worker threads for `threads` event loops: enough that a few slow
    /// password checks do not hold up everyone's file operations, few
    /// enough that they cannot take every core from the loops.
    pub fn count_for(threads: usize) -> usize {
        (threads * 2).clamp(4, 64)
    }

    /// Starts `count` (at least one) worker threads named `NAME-worker-N`.
    pub fn spawn(name: &str, count: usize) -> io::Result<Workers> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..count.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-worker-{n}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                // Some workers are enough; none is an error.
                if n == 0 {
                    return Err(e);
                }
                log::warn!("started only {n} worker threads: {e}");
                break;
            }
        }
        Ok(Workers { tx })
    }

    /// Queues `job`; `reply` gets its result, on a worker thread.
    pub fn submit(&self, job: Job, reply: Reply) {
        if let Err(mpsc::SendError(task)) = self.tx.send(Task { job, reply }) {
            // Every worker is gone (they only end with the queue, so this
            // is a bug); doing the work here beats hanging the session.
            log::error!("worker pool gone; running a job on the caller's thread");
            run(task);
        }
    }
}

fn work(rx: &Mutex<Receiver<Task>>) {
    loop {
        let task = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        match task {
            Ok(task) => run(task),
            Err(_) => return,
        }
    }
}

fn run(task: Task) {
    (task.reply)(task.job.run());
}
