//! The loopback ceiling: a minimal server, one thread, that accepts a
//! connection and `sendfile`s the big file into it, nothing else. RETR of
//! the same file with the same client reads as a fraction of this.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;

/// Name of the server thread (the generator's own CPU excludes it).
pub const THREAD_NAME: &str = "ceiling";

pub struct Ceiling {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    tid: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl Ceiling {
    pub fn start(file: PathBuf) -> io::Result<Ceiling> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let tid = Arc::new(AtomicU32::new(0));
        let (stop2, tid2) = (stop.clone(), tid.clone());
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                tid2.store(crate::procfs::current_tid(), Ordering::SeqCst);
                for conn in listener.incoming() {
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    if let Ok(conn) = conn {
                        let _ = send(&file, conn);
                    }
                }
            })?;
        while tid.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        Ok(Ceiling {
            addr,
            stop,
            tid,
            thread: Some(thread),
        })
    }

    /// CPU seconds the server thread has used.
    pub fn cpu_secs(&self) -> f64 {
        crate::procfs::thread_cpu_ns(self.tid.load(Ordering::SeqCst)) as f64 / 1e9
    }
}

fn send(path: &PathBuf, conn: TcpStream) -> io::Result<()> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut offset = 0u64;
    while offset < len {
        let chunk = (len - offset).min(1 << 30) as usize;
        let n = rustix::fs::sendfile(&conn, &file, Some(&mut offset), chunk)?;
        if n == 0 {
            break;
        }
    }
    Ok(())
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
