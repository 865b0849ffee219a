//! The session state machine.

use alloc::sync::Arc;
use core::net::SocketAddr;

use crate::config::Config;
use crate::event::Event;
use crate::intent::{Completion, IntentId, Output};
use crate::time::Instant;

/// One FTP control connection, from greeting to close.
#[derive(Debug)]
pub struct Session {
    config: Arc<Config>,
}

impl Session {
    /// A new session on a connection from `peer` to our `local` address;
    /// the `220` greeting is queued at once.
    pub fn new(config: Arc<Config>, local: SocketAddr, peer: SocketAddr, now: Instant) -> Self {
        let _ = (local, peer, now);
        Session { config }
    }

    /// Feeds bytes read from the control connection (at most
    /// [`Session::input_capacity`] of them).
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        let _ = (now, bytes, &self.config);
        todo!()
    }

    /// How many more bytes the session accepts now; 0 means stop reading
    /// (back-pressure) until output is drained or an intent completes.
    pub fn input_capacity(&self) -> usize {
        todo!()
    }

    /// Reports the result of an intent.
    pub fn handle_completion(&mut self, now: Instant, id: IntentId, completion: Completion) {
        let _ = (now, id, completion);
        todo!()
    }

    /// Lets timers fire; call when [`Session::poll_timeout`]'s deadline passes.
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        todo!()
    }

    /// The next deadline at which [`Session::handle_timeout`] must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!()
    }

    /// Reply bytes waiting to be written to the control connection.
    pub fn transmit(&self) -> &[u8] {
        todo!()
    }

    /// Marks `n` bytes of [`Session::transmit`] as written.
    pub fn consume_transmit(&mut self, n: usize) {
        let _ = n;
        todo!()
    }

    /// The next intent to perform, or the instruction to close.
    pub fn poll_output(&mut self) -> Option<Output> {
        todo!()
    }

    /// The next loggable event (only with [`Config::log_events`]).
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!()
    }
}
