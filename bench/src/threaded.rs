//! The measurements of [`crate::scenarios`] under `--generator threads`:
//! every client an OS thread of its own with blocking sockets
//! ([`crate::blocking`]). The figures mean the same; only the generator
//! differs.

use std::io::{self, Write};
use std::time::{Duration, Instant};

use crate::blocking::{self, Control};
use crate::checksum::{BLOCK, Checksum, Pattern};
use crate::client::fail;
use crate::scenarios::{Acc, BIG_TIMEOUT, Files, LoopStats, Transfer, Window, generator_cpu};
use crate::servers::{Kind, Server};

/// Sleeps until `t` (at once if it is past).
fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

/// Runs `clients` threads of `body` until the window ends, sampling server
/// and generator CPU at the window's edges from this thread.
fn run_loop<F>(server: &Server, clients: usize, window: Window, body: F) -> LoopStats
where
    F: Fn(usize, &mut Acc) + Sync,
{
    std::thread::scope(|scope| {
        let body = &body;
        let threads: Vec<_> = (0..clients)
            .map(|i| {
                std::thread::Builder::new()
                    .stack_size(256 << 10)
                    .spawn_scoped(scope, move || {
                        let mut acc = Acc::default();
                        body(i, &mut acc);
                        acc
                    })
            })
            .collect();
        sleep_until(window.start);
        let (s0, c0) = (server.cpu_secs(), generator_cpu());
        sleep_until(window.end);
        let (server_cpu, client_cpu) = (server.cpu_secs() - s0, generator_cpu() - c0);
        let mut all = Acc::default();
        for t in threads {
            match t {
                Ok(handle) => match handle.join() {
                    Ok(acc) => all.merge(acc),
                    Err(_) => all.error(&fail("a client thread panicked")),
                },
                Err(e) => all.error(&e),
            }
        }
        all.into_stats(window, client_cpu, server_cpu)
    })
}

/// One short session: connect, login, TYPE I, EPSV, RETR a 4 KiB file
/// (checked), QUIT.
fn small_session(server: &Server, name: &str, expected: &[u8], buf: &mut [u8]) -> io::Result<()> {
    let mut ctl = Control::connect(server.addr, None)?;
    ctl.anonymous()?;
    let data = ctl.epsv()?;
    ctl.start_transfer(&format!("RETR {name}"))?;
    blocking::drain_expect(data, buf, expected)?;
    ctl.end_transfer()?;
    ctl.quit()
}

/// `clients` threads, each running short sessions back to back.
pub fn small_sessions(
    server: &Server,
    files: &Files,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> LoopStats {
    let window = Window::new(warmup, measure);
    run_loop(server, clients, window, |i, acc| {
        let mut buf = vec![0u8; 16 << 10];
        let mut k = i;
        loop {
            let t0 = Instant::now();
            if t0 >= window.end {
                break;
            }
            k = (k + 1) % files.small.len();
            let name = format!("small/{k}.bin");
            match small_session(server, &name, &files.small[k], &mut buf) {
                Ok(()) => window.record_in(acc, t0, Instant::now()),
                Err(e) => {
                    acc.error(&e);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    })
}

/// `clients` threads, each with a logged-in session running EPSV + RETR
/// of a 4 KiB file back to back (a failed session is replaced).
pub fn persistent_transfers(
    server: &Server,
    files: &Files,
    clients: usize,
    warmup: Duration,
    measure: Duration,
) -> LoopStats {
    let window = Window::new(warmup, measure);
    run_loop(server, clients, window, |i, acc| {
        let mut buf = vec![0u8; 16 << 10];
        let mut k = i;
        let mut session: Option<Control> = None;
        while Instant::now() < window.end {
            let mut ctl = match session.take() {
                Some(c) => c,
                None => match Control::connect(server.addr, None).and_then(|mut c| {
                    c.anonymous()?;
                    Ok(c)
                }) {
                    Ok(c) => c,
                    Err(e) => {
                        acc.error(&e);
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                },
            };
            k = (k + 1) % files.small.len();
            let t0 = Instant::now();
            let r = (|| {
                let data = ctl.epsv()?;
                ctl.start_transfer(&format!("RETR small/{k}.bin"))?;
                blocking::drain_expect(data, &mut buf, &files.small[k])?;
                ctl.end_transfer()
            })();
            match r {
                Ok(()) => {
                    window.record_in(acc, t0, Instant::now());
                    session = Some(ctl);
                }
                Err(e) => {
                    acc.error(&e);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        if let Some(ctl) = session {
            let _ = ctl.quit();
        }
    })
}

/// RETR of the big file by one blocking client (or, for the ceiling, a
/// plain read of the connection), checksummed, data closed at EOF before
/// the 226.
pub fn retr_big(server: &Server, files: &Files) -> io::Result<Transfer> {
    let mut buf = vec![0u8; 256 << 10];
    let mut sum = Checksum::new();
    let (secs, bytes, server_cpu, client_cpu);
    if server.kind == Kind::Ceiling {
        let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
        let data = blocking::connect(server.addr, None)?;
        bytes = blocking::drain_checksum(data, &mut buf, &mut sum)?;
        secs = t0.elapsed().as_secs_f64();
        server_cpu = server.cpu_secs() - s0;
        client_cpu = generator_cpu() - c0;
    } else {
        let mut ctl = Control::connect(server.addr, None)?;
        ctl.anonymous()?;
        let data = ctl.epsv()?;
        data.set_read_timeout(Some(BIG_TIMEOUT))?;
        let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
        ctl.start_transfer(&format!("RETR {}", files.big_name))?;
        bytes = blocking::drain_checksum(data, &mut buf, &mut sum)?;
        ctl.end_transfer()?;
        secs = t0.elapsed().as_secs_f64();
        server_cpu = server.cpu_secs() - s0;
        client_cpu = generator_cpu() - c0;
        ctl.quit()?;
    }
    if bytes != files.big_len || sum.finish() != files.big_sum {
        return Err(fail(format!(
            "RETR carried wrong bytes: {bytes} of {} bytes",
            files.big_len
        )));
    }
    Ok(Transfer {
        secs,
        bytes,
        server_cpu,
        client_cpu,
    })
}

/// STOR of a big upload into `upload/NAME` by one blocking client; the
/// stored file is checked (size and checksum) and removed afterwards.
pub fn stor_big(server: &Server, files: &Files, name: &str) -> io::Result<Transfer> {
    let stored = files.root.join("upload").join(name);
    let result = upload(
        server,
        &files.pattern,
        files.big_len,
        &format!("upload/{name}"),
    );
    let check = result.and_then(|t| {
        let (len, sum) = crate::scenarios::checksum_file(&stored)?;
        if len != files.big_len || sum != files.big_sum {
            return Err(fail(format!(
                "stored file is wrong: {len} of {} bytes",
                files.big_len
            )));
        }
        Ok(t)
    });
    let _ = std::fs::remove_file(&stored);
    check
}

fn upload(server: &Server, pattern: &Pattern, len: u64, path: &str) -> io::Result<Transfer> {
    let mut ctl = Control::connect(server.addr, None)?;
    ctl.anonymous()?;
    let mut data = ctl.epsv()?;
    data.set_write_timeout(Some(BIG_TIMEOUT))?;
    let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
    ctl.start_transfer(&format!("STOR {path}"))?;
    let mut block = Vec::with_capacity(BLOCK);
    for i in 0..len / BLOCK as u64 {
        pattern.block_into(i, &mut block);
        data.write_all(&block)?;
    }
    drop(data);
    ctl.end_transfer()?;
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = server.cpu_secs() - s0;
    let client_cpu = generator_cpu() - c0;
    ctl.quit()?;
    Ok(Transfer {
        secs,
        bytes: len,
        server_cpu,
        client_cpu,
    })
}
