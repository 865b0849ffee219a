//! `ftp-host`: everything the two FTP daemons share that is not protocol.
//!
//! The engine (`ftp-proto`) decides; this crate carries out what it decides
//! against the real machine: the command line and configuration, the user
//! database, file operations beneath the served root, transfer sources and
//! sinks, passive ports, connection limits and logs.
//!
//! The only `unsafe` code is the call into the system's `crypt` in
//! [`crypt`], the mapping of argon2's working memory in [`argon`], and in
//! [`systemd`] the adoption of the sockets the service manager passes and
//! the removal of its variables from the environment at start, and the
//! allocator's tuning in [`limits`], and (with the `pam` feature) the
//! calls into the system's PAM library in `pam`; every other module is
//! checked to have none.
#![deny(missing_debug_implementations, missing_docs, unsafe_code)]

pub mod active;
pub mod admission;
pub mod argon;
pub mod auth_program;
pub mod ban;
pub mod cli;
pub mod clock;
pub mod config;
pub mod control;
pub mod crypt;
pub mod daemon;
pub mod digest;
pub mod exec;
pub mod hooks;
pub mod http;
pub mod identity;
pub mod limits;
pub mod log;
pub mod metrics;
#[cfg(feature = "pam")]
pub mod pam;
pub mod passive;
pub mod pasv_address;
pub mod policy;
pub mod program;
pub mod proxy;
pub mod quota;
pub mod rate;
pub mod server;
mod splice;
pub mod storage;
pub mod system;
pub mod systemd;
pub mod tls;
pub mod transfer;
pub mod users;
pub mod workers;
pub mod xferlog;

/// Helpers of the crate's unit tests.
#[cfg(test)]
mod testing {
    use std::net::{TcpListener, TcpStream};

    /// A connected TCP pair on loopback: (client side, server side).
    pub(crate) fn loopback_pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }
}
