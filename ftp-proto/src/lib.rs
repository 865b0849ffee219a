//! `ftp-proto`: the server side of an FTP control connection as a pure
//! state machine.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![deny(missing_debug_implementations, missing_docs)]

extern crate alloc;

pub mod ascii;
pub mod command;
pub mod config;
pub mod event;
pub mod intent;
pub mod line;
pub mod listing;
pub mod meta;
pub mod parse;
pub mod path;
pub mod reply;
pub mod session;
pub mod time;

pub use command::Command;
pub use config::Config;
pub use event::Event;
pub use intent::{
    AuthError, Completion, DataEndpoint, FsError, Grant, Intent, IntentId, Output,
    ResourceError, StoreMode, Transfer, TransferError, TransferEvent, TransferOp,
};
pub use listing::{ListFormat, ListStyle};
pub use meta::{DirEntry, FileKind, Metadata};
pub use path::VirtualPath;
pub use session::Session;
pub use time::{Instant, UnixTime};
