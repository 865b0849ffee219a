//! The mio runtime for the FTP engine (work in progress).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use ftp_host::daemon::{Runtime, Shutdown};
use ftp_host::server::Server;

/// The mio runtime.
#[derive(Debug)]
pub struct Mio;

impl Runtime for Mio {
    fn serve(server: Arc<Server>, listeners: Vec<TcpListener>, shutdown: Shutdown) -> io::Result<()> {
        let _ = (server, listeners, shutdown);
        Err(io::Error::other("not yet implemented"))
    }

    fn serve_one(server: Arc<Server>, stream: TcpStream) -> io::Result<()> {
        let _ = (server, stream);
        Err(io::Error::other("not yet implemented"))
    }
}
