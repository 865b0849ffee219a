//! A small pool of std threads that run the blocking [`Job`]s of every
//! event loop: password checks (argon2 is slow on purpose), stat, mkdir,
//! rename, directory reads, opening a transfer's file.
//!
//! A job travels with its way home: the submitting loop's result channel
//! and [`mio::Waker`]. The worker runs it, sends the [`JobDone`] back and
//! wakes the loop. Workers end when every loop has dropped its
//! [`Workers`] handle (the queue's senders); `serve` does not wait for a
//! job stuck in a hung file system.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use ftp_host::server::{Job, JobDone};
use mio::Waker;

use crate::timers::ConnKey;

/// A finished job, addressed to the connection that asked for it.
#[derive(Debug)]
pub(crate) struct Done {
    /// The connection that submitted the job.
    pub(crate) key: ConnKey,
    /// What the job produced.
    pub(crate) done: JobDone,
}

/// Where a loop wants its results.
#[derive(Debug, Clone)]
pub(crate) struct ReturnAddress {
    tx: Sender<Done>,
    waker: Arc<Waker>,
}

impl ReturnAddress {
    /// Results go to `tx`, then `waker` is woken.
    pub(crate) fn new(tx: Sender<Done>, waker: Arc<Waker>) -> ReturnAddress {
        ReturnAddress { tx, waker }
    }

    fn deliver(&self, done: Done) {
        // A loop that has ended no longer listens; its jobs' results (and
        // any upload they opened, which aborts on drop) are dropped.
        if self.tx.send(done).is_ok() {
            if let Err(e) = self.waker.wake() {
                log::error!("could not wake an event loop: {e}");
            }
        }
    }
}

struct Task {
    key: ConnKey,
    job: Job,
    reply: ReturnAddress,
}

/// A handle on the pool: clone it for every loop.
#[derive(Debug, Clone)]
pub(crate) struct Workers {
    tx: Sender<Task>,
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("key", &self.key).finish()
    }
}

impl Workers {
    /// Starts `count` (at least one) worker threads.
    pub(crate) fn spawn(count: usize) -> io::Result<Workers> {
        let (tx, rx) = mpsc::channel::<Task>();
        let rx = Arc::new(Mutex::new(rx));
        for n in 0..count.max(1) {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("ftp-mio-worker-{n}"))
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

    /// Queues `job` for the connection `key`; its result comes back to
    /// `reply`.
    pub(crate) fn submit(&self, key: ConnKey, job: Job, reply: &ReturnAddress) {
        let task = Task {
            key,
            job,
            reply: reply.clone(),
        };
        if let Err(mpsc::SendError(task)) = self.tx.send(task) {
            // Every worker is gone (they only end with the queue, so this
            // is a bug); doing the work here beats hanging the session.
            log::error!("worker pool gone; running a job on the event loop");
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
    let done = task.job.run();
    task.reply.deliver(Done {
        key: task.key,
        done,
    });
}
