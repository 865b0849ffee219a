//! The loopback ceiling: a minimal server, one thread, that accepts a
//! connection and `sendfile`s the big file into it, nothing else. RETR of
//! the same file with the same client reads as a fraction of this.
//!
//! It runs in a process of its own (this program, started with the hidden
//! `--serve-sendfile FILE`), so that the scheduler places it as it places
//! the other servers, and its CPU time is measured the same way.

use std::fs::File;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

/// The body of `ftp-bench --serve-sendfile FILE`: announces its address on
/// stdout as the daemons do, then serves one connection at a time until
/// killed.
pub fn serve_forever(file: &Path) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    println!(
        "ftp-bench: serving sendfile at ftp://{}/",
        listener.local_addr()?
    );
    io::stdout().flush()?;
    // A failed accept or transfer only ends that connection.
    for conn in listener.incoming().flatten() {
        let _ = send(file, conn);
    }
    Ok(())
}

fn send(path: &Path, conn: TcpStream) -> io::Result<()> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut offset = 0u64;
    while offset < len {
        let chunk = (len - offset).min(1 << 30) as usize;
        if rustix::fs::sendfile(&conn, &file, Some(&mut offset), chunk)? == 0 {
            break;
        }
    }
    Ok(())
}
