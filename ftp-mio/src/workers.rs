//! How an event loop gets the results of its blocking [`Job`]s back from
//! the shared worker pool ([`ftp_host::workers::Workers`]).
//!
//! A job travels with its way home: the submitting loop's result channel
//! and [`mio::Waker`]. The worker runs it, sends the [`JobDone`] back and
//! wakes the loop.

use std::sync::Arc;
use std::sync::mpsc::Sender;

use ftp_host::server::{Job, JobDone};
use ftp_host::workers::Workers;
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

    /// Queues `job` of the connection `key` on `workers`, its result to
    /// come back here.
    pub(crate) fn submit(&self, workers: &Workers, key: ConnKey, job: Job) {
        let home = self.clone();
        workers.submit(job, Box::new(move |done| home.deliver(Done { key, done })));
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
