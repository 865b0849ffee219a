//! Setting up the S3 figures: the bucket's contents and the servers'
//! commands.

use std::path::Path;
use std::process::Command;

use super::run::{Inputs, LIST_OBJECTS};
use super::store::{self, Store};
use super::{ACCESS_KEY, BUCKET, PREFIX, S3Error, SECRET_KEY, figures};
use crate::checksum::Pattern;
use crate::servers::{self, Kind, PASV_RANGE, Server, Spec};

/// Puts the served objects: `big.bin`, `small/N.bin`, the listed folder
/// and the marker of `upload/`.
pub fn fill(store: &Store, inp: &Inputs, pattern: &Pattern) -> Result<(), S3Error> {
    let t0 = std::time::Instant::now();
    let mut http = store.http()?;
    store::put_pattern(
        &mut http,
        BUCKET,
        &figures::key("big.bin"),
        pattern,
        inp.p.size,
    )?;
    for (i, bytes) in inp.small.iter().enumerate() {
        store::put_bytes(
            &mut http,
            BUCKET,
            &figures::key(&format!("small/{i}.bin")),
            bytes,
        )?;
    }
    store::put_bytes(&mut http, BUCKET, &figures::key("upload/"), &[])?;
    // The listed folder, from a few connections at once.
    const PUTTERS: usize = 8;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..PUTTERS)
            .map(|w| {
                s.spawn(move || -> Result<(), S3Error> {
                    let mut http = store.http()?;
                    for i in (w..LIST_OBJECTS).step_by(PUTTERS) {
                        let key = figures::key(&format!(
                            "{}/{}",
                            figures::LIST_DIR,
                            figures::list_name(i)
                        ));
                        store::put_bytes(&mut http, BUCKET, &key, &figures::list_body(i))?;
                    }
                    Ok(())
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err(S3Error::Wrong("a putter panicked".into())))
            })
            .collect::<Result<Vec<()>, S3Error>>()
    })?;
    eprintln!(
        "ftp-bench: S3: bucket filled in {:.1} s (big.bin {} MiB, 100 small, {LIST_OBJECTS} listed)",
        t0.elapsed().as_secs_f64(),
        inp.p.size >> 20
    );
    Ok(())
}

/// Starts one server on the store; ours print their address, rclone is
/// waited for until it greets.
pub fn start_server(
    spec: &Spec,
    inp: &Inputs,
    store: &Store,
    rclone: Option<&Path>,
    slot: u16,
) -> std::io::Result<Server> {
    let dir = inp
        .work
        .join(format!("s3-{}-{slot}", spec.name.replace('/', "-")));
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("stderr.log");
    let (lo, hi) = PASV_RANGE;
    let endpoint = store.endpoint();
    if spec.kind == Kind::Rclone {
        let prog = rclone.ok_or_else(|| std::io::Error::other("rclone missing"))?;
        let port = servers::free_port()?;
        let args = [
            "serve".to_owned(),
            "ftp".into(),
            format!("s3:{BUCKET}/{PREFIX}"),
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            "--user".into(),
            "anonymous".into(),
            "--pass".into(),
            "bench@example.org".into(),
            "--passive-port".into(),
            format!("{lo}-{hi}"),
        ];
        let env = [
            ("RCLONE_CONFIG_S3_TYPE", "s3"),
            ("RCLONE_CONFIG_S3_PROVIDER", "Other"),
            ("RCLONE_CONFIG_S3_ENDPOINT", endpoint.as_str()),
            ("RCLONE_CONFIG_S3_ACCESS_KEY_ID", ACCESS_KEY),
            ("RCLONE_CONFIG_S3_SECRET_ACCESS_KEY", SECRET_KEY),
        ];
        let config = format!(
            "{} rclone {}",
            env.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" "),
            args.join(" ")
        );
        let mut cmd = Command::new(prog);
        cmd.args(&args).envs(env);
        return Server::spawn(
            &spec.name, spec.kind, spec.pasv, cmd, config, port, false, log,
        );
    }
    let prog = match spec.kind {
        Kind::Mio => inp.programs.mio.clone(),
        _ => inp.programs.smol.clone(),
    }
    .ok_or_else(|| std::io::Error::other("binary missing"))?;
    let args = [
        "-l".to_owned(),
        "127.0.0.1:0".into(),
        "--threads".into(),
        spec.threads.to_string(),
        "--max-clients".into(),
        "0".into(),
        "--max-per-ip".into(),
        "0".into(),
        "--pasv-ports".into(),
        format!("{lo}-{hi}"),
        "--storage".into(),
        format!("s3://{BUCKET}/{PREFIX}"),
        "--s3-endpoint".into(),
        endpoint.clone(),
        "-w".into(),
    ];
    let env = [
        ("AWS_ACCESS_KEY_ID", ACCESS_KEY),
        ("AWS_SECRET_ACCESS_KEY", SECRET_KEY),
    ];
    let name = prog
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let config = format!(
        "AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY} {name} {}",
        args.join(" ")
    );
    let mut cmd = Command::new(prog);
    cmd.args(&args).envs(env);
    Server::spawn(&spec.name, spec.kind, spec.pasv, cmd, config, 0, true, log)
}
