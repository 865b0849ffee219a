//! The servers under test: where their programs are, the config each gets,
//! starting one on loopback, waiting until it greets, stopping it.

use std::fs;
use std::io::{self, BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mio,
    Smol,
    Vsftpd,
    PureFtpd,
    Pyftpdlib,
    /// The built-in sendfile server (RETR only).
    Ceiling,
    /// `rclone serve ftp` over an S3 remote (the S3 figures only).
    Rclone,
}

impl Kind {
    pub fn ours(self) -> bool {
        matches!(self, Kind::Mio | Kind::Smol)
    }
    pub fn anchor(self) -> bool {
        matches!(self, Kind::Vsftpd | Kind::PureFtpd | Kind::Pyftpdlib)
    }
    /// Whether the benchmark configures TLS for it (pyftpdlib would need
    /// pyOpenSSL; the ceiling is plain).
    pub fn tls(self) -> bool {
        matches!(self, Kind::Mio | Kind::Smol | Kind::Vsftpd | Kind::PureFtpd)
    }
}

/// Which passive ports a server is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pasv {
    /// [`PASV_RANGE`], configured explicitly.
    Range,
    /// None configured: the server's own default (what a user who sets
    /// nothing runs).
    Default,
}

impl Pasv {
    /// The suffix of the server's name in the report: none for the range
    /// (the names of earlier runs), `:default` for the default.
    pub fn suffix(self) -> &'static str {
        match self {
            Pasv::Range => "",
            Pasv::Default => ":default",
        }
    }
}

/// One server configuration in the comparison.
#[derive(Clone, Debug)]
pub struct Spec {
    pub name: String,
    pub kind: Kind,
    /// Event loops / executor threads (ours only).
    pub threads: usize,
    /// Passive ports.
    pub pasv: Pasv,
    /// Started with `--metrics` (ours only; `ftp-mio/1+metrics`): what
    /// counting for `/metrics` costs.
    pub metrics: bool,
    /// Started with `--download-rate` and `--upload-rate` at
    /// [`UNREACHED_RATE`] (ours only; `ftp-mio/1+rate`): what a
    /// bandwidth limit that is configured but never reached costs.
    pub rate: bool,
}

/// The rate `+rate` servers get, in bytes per second: 100 GB/s, which
/// loopback never reaches, so every transfer is throttled but never
/// waits.
pub const UNREACHED_RATE: u64 = 100_000_000_000;

/// Programs, found once.
#[derive(Clone, Debug, Default)]
pub struct Programs {
    pub mio: Option<PathBuf>,
    pub smol: Option<PathBuf>,
    pub vsftpd: Option<PathBuf>,
    pub pure_ftpd: Option<PathBuf>,
    /// A Python that can import pyftpdlib.
    pub python: Option<PathBuf>,
}

impl Programs {
    pub fn missing(&self, kind: Kind) -> Option<&'static str> {
        match kind {
            Kind::Mio if self.mio.is_none() => Some("ftp-mio binary not found"),
            Kind::Smol if self.smol.is_none() => Some("ftp-smol binary not found"),
            Kind::Vsftpd if self.vsftpd.is_none() => {
                Some("vsftpd not found (apt-get install vsftpd)")
            }
            Kind::PureFtpd if self.pure_ftpd.is_none() => Some(
                "pure-ftpd not found (apt-get download pure-ftpd && dpkg -x pure-ftpd_*.deb /opt/anchors/pure-ftpd)",
            ),
            Kind::PureFtpd if ftp_home().is_none() => {
                Some("pure-ftpd needs a system user `ftp` with a home folder")
            }
            Kind::Pyftpdlib if self.python.is_none() => {
                Some("pyftpdlib not importable (pip install pyftpdlib)")
            }
            _ => None,
        }
    }
}

/// Finds `name` in PATH, then in the sbin folders and /opt/anchors.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/sbin".into());
    dirs.push("/usr/local/sbin".into());
    dirs.push(format!("/opt/anchors/{name}/usr/sbin").into());
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// A Python interpreter that has pyftpdlib.
pub fn find_python() -> Option<PathBuf> {
    for py in ["python3", "python"] {
        let ok = Command::new(py)
            .args(["-c", "import pyftpdlib"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return Some(py.into());
        }
    }
    None
}

/// The home folder of the system user `ftp` (pure-ftpd's anonymous root).
pub fn ftp_home() -> Option<PathBuf> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("ftp:"))?;
    let home = line.split(':').nth(5)?;
    let home = PathBuf::from(home);
    home.is_dir().then_some(home)
}

/// uid and gid of the system user `ftp`.
pub fn ftp_ids() -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("ftp:"))?;
    let mut f = line.split(':').skip(2);
    Some((f.next()?.parse().ok()?, f.next()?.parse().ok()?))
}

/// A port that was free a moment ago (for servers that need a fixed port).
pub fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What every start needs.
pub struct Setup<'a> {
    pub programs: &'a Programs,
    /// The served folder (big file, small files, writable `upload/`).
    pub data: &'a Path,
    /// Big file (for the ceiling).
    pub big: &'a Path,
    /// Folder for configs and logs.
    pub work: &'a Path,
    /// Users file for ours (argon2 scenario), instead of anonymous.
    pub users: Option<&'a Path>,
    /// Number of the start, naming its work folder (configs, logs).
    pub slot: u16,
    /// Certificate for FTPS (explicit, optional for clients), if wanted.
    pub certs: Option<&'a crate::tls::Certs>,
}

/// Passive ports of every server run with [`Pasv::Range`]: 22,000 ports below Linux's ephemeral
/// range (32768-60999), so they never collide with the generator's own
/// ports. Servers that run at the same time share the range: only one is
/// driven at a time, and each skips a port that is in use. pure-ftpd caps
/// its clients at half its range (`maxusers = (last - first + 1) / 2` in
/// its ftpd.c), so the range must hold twice the idle sessions.
pub const PASV_RANGE: (u16, u16) = (10000, 31999);

pub struct Server {
    pub name: String,
    pub kind: Kind,
    pub pasv: Pasv,
    pub addr: SocketAddr,
    /// The server process.
    pub pid: Option<u32>,
    /// The exact configuration it got, for the report.
    pub config: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    pub fn start(spec: &Spec, setup: &Setup) -> io::Result<Server> {
        let dir = setup
            .work
            .join(format!("{}-{}", spec.name.replace('/', "-"), setup.slot));
        fs::create_dir_all(&dir)?;
        let log = dir.join("stderr.log");
        // The range, or (0, 0) for the server's default.
        let (lo, hi) = match spec.pasv {
            Pasv::Range => PASV_RANGE,
            Pasv::Default => (0, 0),
        };
        let data = setup.data.display().to_string();
        let mut announce = false;
        let (cmd, config, port) = match spec.kind {
            Kind::Ceiling => {
                let mut cmd = Command::new(std::env::current_exe()?);
                cmd.arg("--serve-sendfile").arg(setup.big);
                announce = true;
                let config =
                    "built into ftp-bench (own process): one thread, accept + sendfile(2) of the whole file".into();
                (cmd, config, 0)
            }
            Kind::Mio | Kind::Smol => {
                let prog = if spec.kind == Kind::Mio {
                    setup.programs.mio.clone()
                } else {
                    setup.programs.smol.clone()
                }
                .ok_or_else(|| io::Error::other("binary missing"))?;
                let mut args: Vec<String> = vec![
                    "-l".into(),
                    "127.0.0.1:0".into(),
                    "--threads".into(),
                    spec.threads.to_string(),
                    "--max-clients".into(),
                    "0".into(),
                    // The scale figure holds thousands of sessions from
                    // a few loopback addresses.
                    "--max-per-ip".into(),
                    "0".into(),
                ];
                if spec.pasv == Pasv::Range {
                    args.push("--pasv-ports".into());
                    args.push(format!("{lo}-{hi}"));
                }
                if spec.metrics {
                    args.push("--metrics".into());
                    args.push("127.0.0.1:0".into());
                }
                if spec.rate {
                    for flag in ["--download-rate", "--upload-rate"] {
                        args.push(flag.into());
                        args.push(UNREACHED_RATE.to_string());
                    }
                }
                if crate::proxy_header::enabled() {
                    // Every loopback source: the scale figure connects
                    // from 127.R.K.N.
                    args.push("--proxy-from".into());
                    args.push("127.0.0.0/8".into());
                }
                if let Some(certs) = setup.certs {
                    args.push("--tls-cert".into());
                    args.push(certs.cert.display().to_string());
                    args.push("--tls-key".into());
                    args.push(certs.key.display().to_string());
                }
                if let Some(users) = setup.users {
                    args.push("--users".into());
                    args.push(users.display().to_string());
                } else {
                    args.push("-w".into());
                }
                args.push(data.clone());
                let config = format!(
                    "{} {}",
                    prog.file_name().unwrap().to_string_lossy(),
                    args.join(" ")
                );
                let mut cmd = Command::new(prog);
                cmd.args(&args);
                announce = true;
                (cmd, config, 0)
            }
            Kind::Vsftpd => {
                let prog = setup.programs.vsftpd.clone().unwrap();
                let port = free_port()?;
                let mut conf = vsftpd_conf(port, &data, lo, hi);
                if let Some(certs) = setup.certs {
                    conf.push_str(&vsftpd_tls(certs));
                }
                let path = dir.join("vsftpd.conf");
                fs::write(&path, &conf)?;
                let mut cmd = Command::new(prog);
                cmd.arg(&path);
                (cmd, conf, port)
            }
            Kind::PureFtpd => {
                let prog = setup.programs.pure_ftpd.clone().unwrap();
                let home = ftp_home().unwrap();
                let port = free_port()?;
                let mut args = pure_ftpd_args(port, lo, hi);
                if let Some(certs) = setup.certs {
                    // TLS allowed, not required; certificate and key in one file.
                    args.extend(["-Y".into(), "1".into(), "-2".into()]);
                    args.push(certs.both.display().to_string());
                }
                // pure-ftpd serves anonymous sessions from the home of the
                // user `ftp`; in a private mount namespace that home shows
                // the data folder, without touching the system.
                let mut cmd = Command::new("unshare");
                cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
                    .arg(r#"mount --bind "$1" "$2" && shift 2 && exec "$@""#)
                    .arg("sh")
                    .arg(&data)
                    .arg(&home)
                    .arg(&prog)
                    .args(&args);
                let config = format!(
                    "pure-ftpd {}   (anonymous root: the data folder bind-mounted on ~ftp = {} in a private mount namespace)",
                    args.join(" "),
                    home.display()
                );
                (cmd, config, port)
            }
            Kind::Rclone => {
                return Err(io::Error::other("rclone is started by the S3 figures only"));
            }
            Kind::Pyftpdlib => {
                let python = setup.programs.python.clone().unwrap();
                let port = free_port()?;
                let script = dir.join("serve.py");
                fs::write(&script, PYFTPDLIB_SCRIPT)?;
                let mut cmd = Command::new(python);
                cmd.arg(&script)
                    .arg(&data)
                    .arg(port.to_string())
                    .arg(lo.to_string())
                    .arg(hi.to_string());
                let config = format!(
                    "python3 serve.py {data} {port} {lo} {hi}, serve.py:\n{PYFTPDLIB_SCRIPT}"
                );
                (cmd, config, port)
            }
        };
        Server::spawn(
            &spec.name, spec.kind, spec.pasv, cmd, config, port, announce, log,
        )
    }

    /// Starts `cmd` (output into `log`) and waits until it serves: until it
    /// prints its address (`announce`, ours and the ceiling), else until
    /// `port` greets with 220.
    #[allow(clippy::too_many_arguments)]
    pub fn spawn(
        name: &str,
        kind: Kind,
        pasv: Pasv,
        mut cmd: Command,
        config: String,
        port: u16,
        announce: bool,
        log: PathBuf,
    ) -> io::Result<Server> {
        // vsftpd reports configuration errors on descriptor 0.
        cmd.stdin(if kind == Kind::Vsftpd {
            Stdio::from(
                fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)?,
            )
        } else {
            Stdio::null()
        })
        .stdout(if announce {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stderr(Stdio::from(
            fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log)?,
        ));
        let mut child = cmd.spawn()?;
        let pid = child.id();
        let addr = if announce {
            let stdout = child.stdout.take().unwrap();
            match read_announce(stdout) {
                Some(addr) => addr,
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(io::Error::other(format!(
                        "{name} did not start: {}",
                        tail(&log)
                    )));
                }
            }
        } else {
            SocketAddr::from(([127, 0, 0, 1], port))
        };
        let mut server = Server {
            name: name.to_owned(),
            kind,
            pasv,
            addr,
            pid: Some(pid),
            config,
            child: Some(child),
            log,
        };
        if !announce {
            if let Err(e) = server.wait_greeting() {
                let msg = format!("{name} did not start: {e}; {}", tail(&server.log));
                server.stop();
                return Err(io::Error::other(msg));
            }
        }
        Ok(server)
    }

    /// Connects until the server greets (220), for up to 10 s.
    fn wait_greeting(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                return Err(io::Error::other(format!("exited with {status}")));
            }
            let addr = self.addr;
            let r = smol::block_on(crate::client::timeout(Duration::from_secs(2), async {
                let ctl = crate::client::Control::connect(addr, None).await?;
                ctl.quit().await
            }));
            match r {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// The process tree's CPU seconds so far.
    pub fn cpu_secs(&self) -> f64 {
        self.pid.map_or(0.0, procfs::tree_cpu_secs)
    }

    /// The process tree's PSS in KiB.
    pub fn pss_kib(&self) -> u64 {
        self.pid.map(procfs::tree_pss_kib).unwrap_or(0)
    }

    /// Whether the server process is still running.
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => true,
        }
    }

    pub fn stderr_tail(&self) -> String {
        tail(&self.log)
    }

    /// SIGTERM, up to 5 s to exit, then SIGKILL for it and whatever is
    /// left of its process tree.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id();
        let tree = procfs::tree(pid);
        if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        for p in tree.into_iter().skip(1) {
            if let Some(p) = rustix::process::Pid::from_raw(p as i32) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the daemon's "serving DIR at ftp://ADDR/" line.
fn read_announce(stdout: std::process::ChildStdout) -> Option<SocketAddr> {
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).ok()?;
    let start = line.find("ftp://")? + 6;
    let end = start + line[start..].find('/')?;
    line[start..end].parse().ok()
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join(" | ")
}

/// vsftpd's configuration; passive ports `lo`-`hi`, or its default (a
/// random port in 1024-65535) when `lo` is 0.
fn vsftpd_conf(port: u16, data: &str, lo: u16, hi: u16) -> String {
    let pasv = if lo == 0 {
        "# passive ports: vsftpd's default (a random port in 1024-65535)\n".to_owned()
    } else {
        format!("# passive ports {lo}-{hi}\npasv_min_port={lo}\npasv_max_port={hi}\n")
    };
    format!(
        "\
# standalone on loopback, in the foreground
listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port={port}
background=NO
# anonymous only, uploads allowed (for STOR), served folder as its root
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root={data}
write_enable=YES
anon_upload_enable=YES
anon_umask=022
# no limits on sessions
max_clients=0
max_per_ip=0
pasv_enable=YES
{pasv}connect_from_port_20=NO
# fast paths: sendfile, no logs, no per-session network namespace
use_sendfile=YES
xferlog_enable=NO
dirmessage_enable=NO
isolate_network=NO
"
    )
}

fn vsftpd_tls(certs: &crate::tls::Certs) -> String {
    format!(
        "\
# FTPS: allowed for anonymous sessions, not required; data connections
# must reuse the control connection's TLS session (vsftpd's default)
ssl_enable=YES
allow_anon_ssl=YES
force_anon_logins_ssl=NO
force_anon_data_ssl=NO
require_ssl_reuse=YES
ssl_ciphers=HIGH
rsa_cert_file={}
rsa_private_key_file={}
",
        certs.cert.display(),
        certs.key.display()
    )
}

/// pure-ftpd's arguments; passive ports `lo`-`hi`, or its default (a
/// random port in 1024-65535) when `lo` is 0.
fn pure_ftpd_args(port: u16, lo: u16, hi: u16) -> Vec<String> {
    let mut args: Vec<String> = [
        "-S",
        &format!("127.0.0.1,{port}"),
        "-e", // anonymous only
        "-c",
        "60000", // most clients
        "-C",
        "60000", // most clients per address
        "-H",    // no DNS lookups
        "-f",    // no syslog
        "none",
        "-4", // IPv4 only
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if lo != 0 {
        args.extend(["-p".into(), format!("{lo}:{hi}")]);
    }
    args
}

pub const PYFTPDLIB_SCRIPT: &str = r#"import logging, sys
from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.log import config_logging
from pyftpdlib.servers import FTPServer

root, port, lo, hi = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
config_logging(level=logging.WARNING)   # no per-command log lines
auth = DummyAuthorizer()
auth.add_anonymous(root, perm="elrw")   # read + upload, as the others
FTPHandler.authorizer = auth
FTPHandler.use_sendfile = True
# lo 0: pyftpdlib's default (None: the kernel's choice, port 0)
FTPHandler.passive_ports = range(lo, hi + 1) if lo else None
server = FTPServer(("127.0.0.1", port), FTPHandler)
server.max_cons = 0                     # no limit
server.max_cons_per_ip = 0              # no limit
server.serve_forever()
"#;

/// Makes `path` world-readable (temp dirs are 0700).
pub fn make_readable(path: &Path) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
}
