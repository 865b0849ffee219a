//! Parse + answer throughput of the engine on a realistic command mix.
//!
//! Run with `cargo bench -p ftp-proto --bench engine`. Prints commands per
//! second on one core. The mix is what clients such as FileZilla, lftp and
//! curl send around transfers: navigation, metadata queries, type and mode
//! changes, passive-mode setup and keep-alives, with every intent answered
//! by the in-memory runtime.

use std::time::{Duration, Instant};

use ftp_proto::Config;
use ftp_proto::memory::{MemoryFs, MemoryRuntime};

const MIX: &[&str] = &[
    "NOOP",
    "PWD",
    "TYPE I",
    "CWD /pub/dir",
    "SIZE file.bin",
    "MDTM file.bin",
    "CDUP",
    "EPSV",
    "REST 0",
    "TYPE A",
    "OPTS UTF8 ON",
    "MODE S",
    "STRU F",
    "SYST",
    "CWD nowhere",
    "XYZZY",
];

fn main() {
    let mut fs = MemoryFs::new();
    fs.add_file("/pub/dir/file.bin", &[7; 1024]);
    let mut rt = MemoryRuntime::new(
        Config {
            anonymous: true,
            ..Config::default()
        },
        fs,
    );
    rt.command("USER anonymous");
    rt.command("PASS bench@");

    let mut batch = Vec::new();
    for line in MIX {
        batch.extend_from_slice(line.as_bytes());
        batch.extend_from_slice(b"\r\n");
    }

    // Warm up, then measure whole batches for about two seconds.
    for _ in 0..1000 {
        rt.send(&batch);
        rt.received.clear();
    }
    let start = Instant::now();
    let mut commands = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for _ in 0..1000 {
            rt.send(&batch);
            rt.received.clear();
            rt.intents.clear();
        }
        commands += 1000 * MIX.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    assert!(!rt.closed, "the session must survive the mix");
    println!(
        "engine: {commands} commands in {secs:.2} s = {:.2} million commands/s on one core",
        commands as f64 / secs / 1e6
    );
}
