//! The FTPS settings of the command line (`--tls-cert` ...) and of the
//! configuration file's `[tls]` table, merged and checked into
//! [`TlsSettings`].
//!
//! ```toml
//! [tls]
//! cert = "/etc/ftpd/cert.pem"      # --tls-cert: chain, leaf first
//! key = "/etc/ftpd/key.pem"        # --tls-key
//! required = false                 # --tls-required: both of the next two
//! required_login = false           # --tls-required-login
//! required_data = false            # --tls-required-data
//! implicit = ["0.0.0.0:990"]       # --implicit-tls
//! reuse_optional = false           # --tls-reuse-optional
//! allow_ccc = false                # --allow-ccc
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ftp_proto::config::TlsPolicy;
use serde::Deserialize;

use super::TlsContext;
use crate::config::{ConfigError, parse_listen};

/// The FTPS flags as clap sees them (flattened into the daemon's flags).
#[derive(clap::Args, Debug, Default)]
pub(crate) struct TlsArgs {
    /// PEM certificate chain (leaf first) for FTPS; enables AUTH TLS
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,

    /// Refuse non-anonymous logins and data connections in clear (530/521)
    #[arg(long)]
    tls_required: bool,

    /// Refuse non-anonymous logins before AUTH TLS (530)
    #[arg(long)]
    tls_required_login: bool,

    /// Refuse clear data connections of non-anonymous sessions (521)
    #[arg(long)]
    tls_required_data: bool,

    /// Also listen on ADDR:PORT for implicit FTPS (TLS from the first byte; usually port 990); repeatable
    #[arg(long, value_name = "ADDR:PORT", value_parser = cli_listen)]
    implicit_tls: Vec<SocketAddr>,

    /// Let TLS data connections skip resuming the control connection's TLS session
    #[arg(long)]
    tls_reuse_optional: bool,

    /// Accept CCC (the control connection back in clear after login)
    #[arg(long)]
    allow_ccc: bool,
}

fn cli_listen(s: &str) -> Result<SocketAddr, String> {
    parse_listen(s).map_err(str::to_owned)
}

/// The configuration file's `[tls]` table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFile {
    /// PEM certificate chain (`--tls-cert`).
    pub cert: Option<PathBuf>,
    /// PEM private key (`--tls-key`).
    pub key: Option<PathBuf>,
    /// `--tls-required`.
    pub required: Option<bool>,
    /// `--tls-required-login`.
    pub required_login: Option<bool>,
    /// `--tls-required-data`.
    pub required_data: Option<bool>,
    /// `--implicit-tls` addresses.
    #[serde(default, deserialize_with = "de_addrs")]
    pub implicit: Option<Vec<SocketAddr>>,
    /// `--tls-reuse-optional`.
    pub reuse_optional: Option<bool>,
    /// `--allow-ccc`.
    pub allow_ccc: Option<bool>,
}

fn de_addrs<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<SocketAddr>>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|t| parse_listen(t).map_err(serde::de::Error::custom))
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

impl TlsFile {
    /// Puts `base` in front of the relative paths.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        for p in [&mut self.cert, &mut self.key].into_iter().flatten() {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
    }
}

/// FTPS as configured: the loaded certificate, the implicit listeners and
/// the engine's policy.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    /// The certificate and key, loaded and checked.
    pub context: Arc<TlsContext>,
    /// Addresses of implicit-FTPS listeners (`--implicit-tls`).
    pub implicit: Vec<SocketAddr>,
    /// What the engine requires (`available` is always set).
    pub policy: TlsPolicy,
}

/// Merges the command line over the file; `None` when no certificate is
/// configured (and no other TLS setting is either).
pub(crate) fn build(
    args: TlsArgs,
    file: Option<TlsFile>,
    inetd: bool,
) -> Result<Option<TlsSettings>, ConfigError> {
    let file = file.unwrap_or_default();
    let flag = |arg: bool, file: Option<bool>| arg || file.unwrap_or(false);
    let required = flag(args.tls_required, file.required);
    let policy = TlsPolicy {
        available: true,
        control_required: required || flag(args.tls_required_login, file.required_login),
        data_required: required || flag(args.tls_required_data, file.required_data),
        allow_ccc: flag(args.allow_ccc, file.allow_ccc),
    };
    let reuse_optional = flag(args.tls_reuse_optional, file.reuse_optional);
    let implicit_given = if args.implicit_tls.is_empty() {
        file.implicit.unwrap_or_default()
    } else {
        args.implicit_tls
    };
    let mut implicit = Vec::new();
    for addr in implicit_given {
        if !implicit.contains(&addr) {
            implicit.push(addr);
        }
    }
    let cert = args.tls_cert.or(file.cert);
    let key = args.tls_key.or(file.key);
    let (cert, key) = match (cert, key) {
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err(ConfigError::Conflict("--tls-cert needs --tls-key")),
        (None, Some(_)) => return Err(ConfigError::Conflict("--tls-key needs --tls-cert")),
        (None, None) => {
            let others = policy.control_required
                || policy.data_required
                || policy.allow_ccc
                || reuse_optional
                || !implicit.is_empty();
            if others {
                return Err(ConfigError::Conflict(
                    "TLS settings need a certificate: give --tls-cert and --tls-key",
                ));
            }
            return Ok(None);
        }
    };
    if inetd && !implicit.is_empty() {
        return Err(ConfigError::Conflict(
            "--implicit-tls opens listeners of its own and cannot be combined with --inetd",
        ));
    }
    let context = TlsContext::load(&cert, &key, !reuse_optional).map_err(ConfigError::Tls)?;
    Ok(Some(TlsSettings {
        context: Arc::new(context),
        implicit,
        policy,
    }))
}
