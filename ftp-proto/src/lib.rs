//! `ftp-proto`: the server side of an FTP control connection as a pure
//! state machine.
//!
//! A [`Session`] consumes control-connection bytes, intent completions and
//! the passing of time, and produces reply bytes, [`Intent`]s (things the
//! runtime must do: check a password, open a passive listener, stat a
//! path, run a transfer...) and deadlines. It never touches a socket, a
//! file or a clock, so it runs the same under any event loop, in tests with
//! simulated time, and builds as `no_std` (it needs only `alloc`).
//!
//! Everything an FTP server decides is decided here: login policy and
//! failed-login delays, permissions, path resolution under the virtual root
//! ([`VirtualPath`]), reply codes and texts ([`reply`]), LIST/NLST/MLSD
//! formatting ([`ListFormat`]), REST offsets, RNFR/RNTO pairing, PORT/EPRT
//! address checks, timeouts and buffer limits. A runtime only moves bytes and
//! performs intents.
//!
//! # The runtime loop
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use ftp_proto::memory::MemoryFs;
//! use ftp_proto::{Completion, Config, Grant, Instant, Intent, Output, Session};
//!
//! let mut fs = MemoryFs::new();
//! fs.add_file("/hello.txt", b"hello world\n");
//! let config = Arc::new(Config { anonymous: true, ..Config::default() });
//! let local = "127.0.0.1:21".parse().unwrap();
//! let peer = "127.0.0.1:40000".parse().unwrap();
//! let mut now = Instant::from_duration(Duration::ZERO);
//! let mut session = Session::new(config, local, peer, now);
//!
//! // What the client sends, as it would arrive from the socket.
//! let mut incoming: &[u8] = b"USER anonymous\r\nPASS me@\r\nSIZE hello.txt\r\nQUIT\r\n";
//! let mut written = Vec::new(); // stands in for the socket's write side
//!
//! loop {
//!     // 1. Write what the session has to say (respecting back-pressure:
//!     //    a real runtime writes what the socket takes and consumes that).
//!     let n = session.transmit().len();
//!     written.extend_from_slice(session.transmit());
//!     session.consume_transmit(n);
//!
//!     // 2. Perform intents and feed their completions back.
//!     match session.poll_output() {
//!         Some(Output::Close) => break,
//!         Some(Output::Intent(id, intent)) => {
//!             let done = match &intent {
//!                 Intent::Authenticate { .. } => Completion::Auth(Ok(Grant { write: false })),
//!                 other => fs.execute(other).expect("the example only needs file intents"),
//!             };
//!             session.handle_completion(now, id, done);
//!             continue;
//!         }
//!         None => {}
//!     }
//!
//!     // 3. Wait for readiness or the next deadline, then feed what happened.
//!     if !incoming.is_empty() {
//!         let n = session.input_capacity().min(incoming.len());
//!         session.handle_input(now, &incoming[..n]);
//!         incoming = &incoming[n..];
//!     } else if let Some(deadline) = session.poll_timeout() {
//!         now = deadline;
//!         session.handle_timeout(now);
//!     } else {
//!         break;
//!     }
//! }
//!
//! let transcript = String::from_utf8(written).unwrap();
//! assert!(transcript.contains("230 Login successful.\r\n213 12\r\n221 Goodbye.\r\n"));
//! ```
//!
//! [`memory::MemoryRuntime`] is the same loop, complete with transfers, as
//! used by the engine's tests.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations, missing_docs)]

extern crate alloc;

pub mod ascii;
pub mod command;
pub mod config;
mod event;
#[cfg(feature = "_fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod glob;
mod hash;
mod intent;
pub mod line;
mod listing;
pub mod memory;
mod meta;
pub mod name;
pub mod parse;
mod path;
pub mod reply;
mod secret;
mod session;
mod time;

pub use command::Command;
pub use config::{Config, StorageCaps};
pub use event::Event;
pub use hash::HashAlgorithm;
pub use intent::{
    AuthError, Completion, DataEndpoint, FsError, Grant, Intent, IntentId, Output, ResourceError,
    StoreMode, TlsSwitchError, Transfer, TransferError, TransferEvent, TransferOp,
};
pub use listing::{Facts, ListFormat, ListStyle};
pub use meta::{DirEntry, FileKind, Metadata};
pub use path::VirtualPath;
pub use secret::Secret;
pub use session::Session;
pub use time::{DateTime, Instant, UnixTime};
