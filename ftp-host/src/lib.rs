//! `ftp-host`: everything the two FTP daemons share that is not protocol.
//!
//! The engine (`ftp-proto`) decides; this crate carries out what it decides
//! against the real machine: the command line and configuration, the user
//! database, file operations beneath the served root, transfer sources and
//! sinks, passive ports, connection limits and logs.
#![deny(missing_debug_implementations, missing_docs)]

pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod exec;
pub mod limits;
pub mod log;
pub mod passive;
pub mod server;
pub mod storage;
pub mod transfer;
pub mod users;
pub mod xferlog;
