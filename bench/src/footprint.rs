//! Footprint for embedded boxes: sizes of the daemons built with the
//! size-optimised `embedded` profile, and the RSS of an idle daemon.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::procfs;

#[derive(Clone, Debug)]
pub struct Footprint {
    pub program: String,
    /// `release` or `embedded`.
    pub profile: String,
    /// `default features` or `--no-default-features`.
    pub features: String,
    pub bytes: u64,
    pub idle_rss_kib: Option<u64>,
    /// Why a build could not be measured (or may be stale), if so.
    pub note: String,
}

fn profile_name(target: Option<&str>) -> String {
    match target {
        Some(_) => "embedded, static musl".into(),
        None => "embedded".into(),
    }
}

/// The workspace root (this crate's parent folder).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `cargo build` for the two daemons.
pub fn cargo_build(target_dir: &Path, profile: &str, extra: &[&str]) -> io::Result<()> {
    eprintln!(
        "building ftp-mio and ftp-smol (--profile {profile} {}) into {}",
        extra.join(" "),
        target_dir.display()
    );
    let mut cargo = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    // ring (TLS) compiles C for the target; without a musl cross compiler
    // the host's gcc does (ring's C needs no libc headers).
    if extra.contains(&MUSL) && !on_path("x86_64-linux-musl-gcc") && !on_path("musl-gcc") {
        cargo.env("CC_x86_64_unknown_linux_musl", "gcc");
    }
    let status = cargo
        .current_dir(workspace())
        .env("CARGO_TARGET_DIR", target_dir)
        .args([
            "build",
            "--profile",
            profile,
            "-p",
            "ftp-mio",
            "-p",
            "ftp-smol",
        ])
        .args(extra)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!("cargo build failed: {status}")));
    }
    Ok(())
}

/// Whether `program` is on `PATH`.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether ftp-mio declares cargo features (then the embedded build is
/// also measured without the default ones).
fn has_features() -> bool {
    fs::read_to_string(workspace().join("ftp-mio/Cargo.toml"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "[features]"))
}

/// Starts `prog` with no session, waits for its announce line, and reads
/// its VmRSS after a moment.
pub fn idle_rss(prog: &Path, data: &Path) -> Option<u64> {
    let mut child = Command::new(prog)
        .args(["-l", "127.0.0.1:0", "--threads", "1"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut line = String::new();
    let _ = BufReader::new(child.stdout.take()?).read_line(&mut line);
    std::thread::sleep(Duration::from_millis(500));
    let rss = procfs::rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    rss
}

/// Whether rustup has the musl target (a static build, as embedded boxes
/// often use).
fn musl_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(MUSL))
}

const MUSL: &str = "x86_64-unknown-linux-musl";

/// Sizes and idle RSS of the release and embedded builds: with and without
/// default features (when ftp-mio has features), for the host's glibc and,
/// when its target is installed, for static musl.
/// With `build`, runs `cargo build` first (a no-op when up to date).
pub fn measure(target_dir: &Path, release_dir: &Path, data: &Path, build: bool) -> Vec<Footprint> {
    let mut out = Vec::new();
    let mut features: Vec<(&str, &str, Vec<&str>)> = vec![("default features", "", vec![])];
    if has_features() {
        features.push((
            "--no-default-features",
            "no-default-features",
            vec!["--no-default-features"],
        ));
    }
    let mut targets: Vec<Option<&str>> = vec![None];
    if musl_installed() {
        targets.push(Some(MUSL));
    }
    for target in &targets {
        for (label, sub, extra) in &features {
            let dir = if sub.is_empty() {
                target_dir.to_path_buf()
            } else {
                target_dir.join(sub)
            };
            let embedded = match target {
                Some(t) => dir.join(t).join("embedded"),
                None => dir.join("embedded"),
            };
            let missing = ["ftp-mio", "ftp-smol"]
                .iter()
                .any(|p| !embedded.join(p).is_file());
            let mut note = String::new();
            if build || missing {
                let mut args = extra.clone();
                if let Some(t) = target {
                    args.extend(["--target", t]);
                }
                if let Err(e) = cargo_build(&dir, "embedded", &args) {
                    eprintln!("footprint: {e}");
                    note = if missing {
                        format!("build failed: {e}")
                    } else {
                        format!("build failed ({e}); measured an older binary")
                    };
                }
            }
            if missing && !note.is_empty() {
                out.push(Footprint {
                    program: "ftp-mio, ftp-smol".into(),
                    profile: profile_name(*target),
                    features: label.to_string(),
                    bytes: 0,
                    idle_rss_kib: None,
                    note,
                });
                continue;
            }
            for prog in ["ftp-mio", "ftp-smol"] {
                let path = embedded.join(prog);
                if let Ok(meta) = fs::metadata(&path) {
                    out.push(Footprint {
                        program: prog.into(),
                        profile: profile_name(*target),
                        features: label.to_string(),
                        bytes: meta.len(),
                        idle_rss_kib: idle_rss(&path, data),
                        note: note.clone(),
                    });
                }
            }
        }
    }
    for prog in ["ftp-mio", "ftp-smol"] {
        let path = release_dir.join(prog);
        if let Ok(meta) = fs::metadata(&path) {
            out.push(Footprint {
                program: prog.into(),
                profile: "release".into(),
                features: "default features".into(),
                bytes: meta.len(),
                idle_rss_kib: idle_rss(&path, data),
                note: String::new(),
            });
        }
    }
    out
}
