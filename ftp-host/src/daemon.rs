//! The part of `main` both daemons share: parse the command line, set up
//! logging and limits, bind the listeners (or take the sockets systemd
//! passes, or the inetd socket), install signal handling, tell the service
//! manager the daemon is ready, then hand over to the runtime.
//!
//! Identity, as BusyBox `ftpd` and `tcpsvd -u` do it:
//! - `--inetd` started as root: the served folder is opened, then the
//!   process chroots into it before the first command, and a login changes
//!   the whole process to the user's uid, gid and groups (anonymous
//!   logins to `-a USER`'s); `-A` sessions and users-file accounts keep
//!   the process's identity. With `--pam` the chroot waits for the login
//!   (PAM's modules need the real `/etc`), and comes just before the
//!   change of identity.
//! - standalone with `--run-as USER[:GROUP]`: root is dropped once the
//!   listening sockets are bound, before anything is served. Sessions act
//!   with the daemon's identity, whoever logs in.

use std::io::{self, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::{self, Invocation, ServerConfig};
use crate::config::ConfigError;
use crate::identity;
use crate::limits;
use crate::server::Server;
use crate::systemd::{self, Passed};

/// A bound, non-blocking listening socket and how its connections start.
#[derive(Debug)]
pub struct Listener {
    /// The socket.
    pub socket: TcpListener,
    /// Implicit FTPS (`--implicit-tls`): every connection starts with a
    /// TLS handshake, and its session is protected from the greeting on.
    pub implicit_tls: bool,
}

impl From<TcpListener> for Listener {
    /// A plain FTP listener.
    fn from(socket: TcpListener) -> Listener {
        Listener {
            socket,
            implicit_tls: false,
        }
    }
}

/// What a runtime (mio, smol) provides to [`main`].
pub trait Runtime {
    /// Serves on already-bound, non-blocking listeners until `shutdown`
    /// triggers, then lets sessions finish for the configured grace period.
    fn serve(server: Arc<Server>, listeners: Vec<Listener>, shutdown: Shutdown) -> io::Result<()>;

    /// Serves exactly one session on an already-connected socket (inetd).
    fn serve_one(server: Arc<Server>, stream: TcpStream) -> io::Result<()>;
}

/// How long a runtime keeps going after the shutdown grace period, so
/// that sessions whose transfers the engine aborts at the end of the grace
/// (`426`, then `421`) get those last replies out before the process ends.
pub const SHUTDOWN_LAST_WORDS: Duration = Duration::from_secs(2);

/// A shutdown request shared by the signal handler and the runtime.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Default)]
struct ShutdownInner {
    triggered: AtomicBool,
    wakers: Mutex<Vec<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// A shutdown that has not been requested.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests shutdown and wakes every registered runtime.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        let wakers = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        for wake in wakers.iter() {
            wake();
        }
    }

    /// Whether shutdown was requested.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Registers a way to wake a runtime when shutdown is requested (called
    /// at once if it already was).
    pub fn on_trigger(&self, wake: impl Fn() + Send + Sync + 'static) {
        let mut wakers = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if self.is_triggered() {
            wake();
        }
        wakers.push(Box::new(wake));
    }
}

/// Socket options every control connection gets: urgent data inline (so
/// an `ABOR` sent with `MSG_OOB`, as Python's ftplib does, arrives whole)
/// and no Nagle delay on replies.
pub fn prepare_control_socket(socket: &impl AsFd) {
    let _ = rustix::net::sockopt::set_socket_oobinline(socket, true);
    let _ = rustix::net::sockopt::set_tcp_nodelay(socket, true);
}

/// Runs a daemon: everything from the command line to exit.
///
/// Call it from the program's `main` and nowhere else: it first takes the
/// service manager's variables out of the environment (see
/// [`crate::systemd`]), which is only sound before any thread starts, and
/// adopts the sockets passed from fd 3 on before anything opens a
/// descriptor.
pub fn main<R: Runtime>() -> ExitCode {
    let manager = systemd::Environment::take();
    let passed = manager.passed_sockets();
    let prog = cli::prog_name();
    let config = match cli::parse_args(std::env::args_os()) {
        Ok(Invocation::Serve(config)) => config,
        Ok(Invocation::HashPassword) => match cli::hash_password_from_stdin() {
            Ok(hash) => {
                println!("{hash}");
                return ExitCode::SUCCESS;
            }
            Err(e) => e.exit(&prog),
        },
        Err(e) => e.exit(&prog),
    };
    crate::log::init_with(config.verbosity, config.syslog, &prog, config.log_format);
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    limits::keep_large_allocations_unpooled();
    let passed = match passed {
        Ok(Passed::NotOurs { pid }) => {
            log::warn!(
                "LISTEN_PID={pid} is another process (this is {}): \
                 the sockets passed with it are left alone",
                std::process::id()
            );
            Passed::Nothing
        }
        Ok(passed) => passed,
        Err(e) => ConfigError::Activation(e).exit(&prog),
    };
    if let Err(e) = manager.connect_notify() {
        log::warn!("{e}");
    }
    let watchdog = manager.watchdog_interval().unwrap_or_else(|e| {
        log::warn!("no watchdog: {e}");
        None
    });
    if let Err(e) = limits::raise_nofile_limit() {
        log::debug!("could not raise the open-file limit: {e}");
    }
    let result = if config.inetd {
        run_inetd::<R>(config, passed, watchdog)
    } else {
        run_standalone::<R>(config, passed, watchdog, &prog)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.exit(&prog),
    }
}

fn run_inetd<R: Runtime>(
    mut config: ServerConfig,
    passed: Passed,
    watchdog: Option<Duration>,
) -> Result<(), ConfigError> {
    // systemd's `Accept=yes` passes the connection as fd 3; inetd, tcpsvd
    // and `systemd-socket-activate --inetd --accept` as standard input.
    let stream = match passed {
        Passed::Sockets(sockets) => {
            systemd::passed_connection(sockets).map_err(ConfigError::Activation)?
        }
        Passed::Nothing | Passed::NotOurs { .. } => {
            systemd::stdin_connection().map_err(ConfigError::Activation)?
        }
    };
    let root = identity::is_root();
    if root {
        config.enable_login_identity();
        // PAM's modules read the real /etc (and load from /lib) at login:
        // the chroot waits for it.
        config.chroot_at_login = config.pam.is_some();
    }
    // Opens the folder (and the transfer log, and reads the names for
    // listings) while the real / is still there.
    let server = Server::new(config)?;
    if root && !server.config.chroot_at_login {
        identity::chroot(&server.config.root).map_err(ConfigError::Identity)?;
        log::debug!("chrooted to {}", server.config.root.display());
    }
    let peer = stream
        .peer_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    serving(&format!("serving one session for {peer}"), watchdog);
    let served = R::serve_one(server.clone(), stream).map_err(ConfigError::Stdin);
    finish_hooks(&server);
    served
}

/// Lets the hooks the last sessions fired (their `logout`) run before the
/// process exits, for at most `--hook-timeout`.
fn finish_hooks(server: &Server) {
    if let Some(hooks) = &server.hooks {
        hooks.finish(server.config.hooks.timeout);
    }
}

fn run_standalone<R: Runtime>(
    config: ServerConfig,
    passed: Passed,
    watchdog: Option<Duration>,
    prog: &str,
) -> Result<(), ConfigError> {
    let listeners = match passed {
        Passed::Sockets(sockets) => systemd::passed_listeners(sockets, config.tls.is_some())
            .map_err(ConfigError::Activation)?,
        Passed::Nothing | Passed::NotOurs { .. } => bind(&config)?,
    };
    let metrics = match config.metrics {
        Some(addr) => {
            Some(crate::http::bind(addr).map_err(|source| ConfigError::Bind { addr, source })?)
        }
        None => None,
    };
    let server = Server::new(config)?;
    match &server.config.run_as {
        Some(run_as) => {
            if server.config.active_port_20 {
                let kept = run_as.identity.assume_keeping_port_binding();
                kept.map_err(ConfigError::Identity)?;
                log::info!("running as {}, keeping CAP_NET_BIND_SERVICE", run_as.spec);
            } else {
                run_as.identity.assume().map_err(ConfigError::Identity)?;
                log::info!("running as {}", run_as.spec);
            }
        }
        None if (server.config.system_users.is_some() || server.config.pam.is_some())
            && identity::is_root() =>
        {
            log::warn!(
                "{} as root without --run-as: every session acts as root; \
                 use --inetd under tcpsvd for per-user identities",
                if server.config.pam.is_some() {
                    "--pam"
                } else {
                    "--system-users"
                }
            )
        }
        None => {}
    }
    let status = announce(&server, &listeners, prog);
    let shutdown = Shutdown::new();
    // Answers (503 on /readyz once the shutdown begins) until `serve`
    // returns.
    let _endpoint = match metrics {
        Some(listener) => Some(
            crate::http::spawn(listener, server.clone(), shutdown.clone())
                .map_err(ConfigError::Metrics)?,
        ),
        None => None,
    };
    watch_signals(shutdown.clone(), server.clone());
    serving(&status, watchdog);
    let served =
        R::serve(server.clone(), listeners, shutdown).map_err(|source| ConfigError::Bind {
            addr: ([0, 0, 0, 0], 0).into(),
            source,
        });
    finish_hooks(&server);
    served
}

/// Binds the `--listen` and `--implicit-tls` addresses.
fn bind(config: &ServerConfig) -> Result<Vec<Listener>, ConfigError> {
    let implicit = config.tls.as_ref().map_or(&[][..], |t| &t.implicit[..]);
    let plain = config.listen.iter().map(|&addr| (addr, false));
    let mut listeners = Vec::with_capacity(config.listen.len() + implicit.len());
    for (addr, implicit_tls) in plain.chain(implicit.iter().map(|&addr| (addr, true))) {
        let socket = TcpListener::bind(addr)
            .and_then(|l| l.set_nonblocking(true).map(|()| l))
            .map_err(|source| ConfigError::Bind { addr, source })?;
        listeners.push(Listener {
            socket,
            implicit_tls,
        });
    }
    Ok(listeners)
}

/// Tells the service manager (if any) that the daemon serves, with
/// `status` for `systemctl status`, and starts the watchdog thread.
fn serving(status: &str, watchdog: Option<Duration>) {
    if let Err(e) = systemd::notify(&format!("{}\nSTATUS={status}", systemd::READY)) {
        log::warn!("{e}");
    }
    if let Some(every) = watchdog {
        systemd::start_watchdog(every);
    }
}

/// Prints the one line that says how to connect, and returns it without
/// the program's name.
fn announce(server: &Server, listeners: &[Listener], prog: &str) -> String {
    let config = &server.config;
    let engine = &config.engine;
    let who = if engine.no_login {
        "no login needed"
    } else if config.system_users.is_some() {
        if engine.anonymous {
            "system accounts and anonymous login"
        } else {
            "system accounts"
        }
    } else if engine.anonymous {
        "anonymous login"
    } else {
        "login required"
    };
    let access = if engine.anonymous_write {
        "read-write"
    } else {
        "read-only"
    };
    let urls: Vec<String> = listeners
        .iter()
        .filter_map(|l| Some((l.socket.local_addr().ok()?, l.implicit_tls)))
        .map(|(a, implicit)| match implicit {
            true => format!("ftps://{a}/"),
            false => format!("ftp://{a}/"),
        })
        .collect();
    let mut out = io::stdout().lock();
    let whom = if config.system_users.is_some() {
        "for everyone"
    } else {
        "for anonymous sessions"
    };
    let status = format!(
        "serving {} at {} ({who}, {access} {whom})",
        config.root.display(),
        urls.join(" ")
    );
    let _ = writeln!(out, "{prog}: {status}");
    let _ = out.flush();
    drop(out);
    let limit = |n: usize| match n {
        0 => "no limit".to_string(),
        n => n.to_string(),
    };
    log::info!(
        "sessions: {} in all, {} per address; login timeout {}",
        limit(config.max_clients),
        limit(config.max_per_ip.as_ref().map_or(0, |(n, _)| *n)),
        engine
            .login_timeout
            .map_or("none".to_string(), |d| format!("{} s", d.as_secs()))
    );
    status
}

/// Triggers `shutdown` on SIGTERM or SIGINT (telling the service manager
/// `STOPPING=1`); reloads the accounts and certificate on SIGHUP.
fn watch_signals(shutdown: Shutdown, server: Arc<Server>) {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    match signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP]) {
        Ok(mut signals) => {
            let spawned = std::thread::Builder::new()
                .name("signals".into())
                .spawn(move || {
                    for signal in signals.forever() {
                        if signal == SIGHUP {
                            reload(&server);
                            continue;
                        }
                        log::info!("signal {signal}: shutting down");
                        if let Err(e) = systemd::notify(systemd::STOPPING) {
                            log::warn!("{e}");
                        }
                        shutdown.trigger();
                        break;
                    }
                });
            if let Err(e) = spawned {
                log::warn!("no signal handling: {e}");
            }
        }
        Err(e) => log::warn!("no signal handling: {e}"),
    }
}

/// Reloads on SIGHUP, logging one line either way, and telling the
/// service manager `RELOADING=1` and then `READY=1`.
fn reload(server: &Server) {
    if let Err(e) = systemd::notify_reloading() {
        log::warn!("{e}");
    }
    let outcome = server.reload();
    if let Err(e) = systemd::notify(systemd::READY) {
        log::warn!("{e}");
    }
    match outcome {
        Ok(done) => log::info!(
            "reloaded: {} accounts in the users file{}",
            done.users,
            if done.certificate {
                ", certificate and key"
            } else {
                ""
            }
        ),
        Err(e) => log::error!("reload refused, the old settings stay: {e}"),
    }
}
