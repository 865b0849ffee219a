//! Informational commands: FEAT, HELP, STAT (no argument), OPTS, SITE.

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::time::Duration;

use super::{Session, State};
use crate::command::{Opts, Site, TransferType};
use crate::listing::Facts;
use crate::reply::Reply;

/// Every verb the server implements, for HELP.
const VERBS: &[&str] = &[
    "ABOR", "ACCT", "ALLO", "APPE", "AUTH", "AVBL", "CCC", "CDUP", "CLNT", "CWD", "DELE", "EPRT",
    "EPSV", "FEAT", "HASH", "HELP", "HOST", "LIST", "MDTM", "MFMT", "MKD", "MLSD", "MLST", "MODE",
    "NLST", "NOOP", "OPTS", "PASS", "PASV", "PBSZ", "PORT", "PROT", "PWD", "QUIT", "RANG", "REIN",
    "REST", "RETR", "RMD", "RNFR", "RNTO", "SITE", "SIZE", "STAT", "STOR", "STOU", "STRU", "SYST",
    "TYPE", "USER", "XCRC", "XCUP", "XCWD", "XMD5", "XMKD", "XPWD", "XRMD", "XSHA1", "XSHA256",
    "XSHA512",
];

impl Session {
    /// FEAT: exactly the extensions this engine implements.
    pub(super) fn features(&mut self) {
        let mut mlst = String::new();
        self.mlst_facts.write_feat_line(&mut mlst);
        let tls = self.config.tls.available;
        let caps = self.config.storage;
        let mut lines = vec![
            String::from("AVBL"),
            String::from("CLNT"),
            String::from("EPRT"),
            String::from("EPSV"),
            String::from("HOST"),
            String::from("MDTM"),
            String::from("MFMT"),
            mlst,
            String::from("PASV"),
            String::from("REST STREAM"),
            String::from("SIZE"),
            String::from("TVFS"),
            String::from("UTF8"),
        ];
        if !caps.set_modified {
            lines.retain(|l| l != "MFMT");
        }
        if self.config.hash_max_size.is_some() {
            let mut hash = String::from("HASH ");
            for (i, algorithm) in crate::HashAlgorithm::ALL.into_iter().enumerate() {
                if i > 0 {
                    hash.push(';');
                }
                hash.push_str(algorithm.name());
                if algorithm == self.hash_algorithm {
                    hash.push('*');
                }
            }
            lines.push(hash);
            lines.push(String::from("RANG STREAM"));
            lines.push(String::from("XCRC"));
            lines.push(String::from("XMD5"));
            lines.push(String::from("XSHA1"));
            lines.push(String::from("XSHA256"));
            lines.push(String::from("XSHA512"));
            lines.sort_unstable();
        }
        if !caps.resume_upload {
            lines.retain(|l| l != "REST STREAM");
        }
        if tls {
            lines.push(String::from("AUTH TLS"));
            lines.push(String::from("PBSZ"));
            lines.push(String::from("PROT"));
            lines.sort_unstable();
        }
        self.reply_multi(Reply::multi(211, "Features:", lines, "End"));
    }

    pub(super) fn help(&mut self) {
        let lines: Vec<String> = VERBS.chunks(8).map(|row| row.join(" ")).collect();
        self.reply_multi(Reply::multi(
            214,
            "The following commands are recognized.",
            lines,
            "Help OK.",
        ));
    }

    /// STAT without argument: the state of this session.
    pub(super) fn server_status(&mut self) {
        let mut lines = vec![format!("Connected to {}", self.peer.ip())];
        match self.login.user() {
            Some(user) => lines.push(format!("Logged in as {user}")),
            None => lines.push(String::from("Not logged in")),
        }
        lines.push(String::from(match self.transfer_type {
            TransferType::Ascii => "TYPE: ASCII",
            TransferType::Image => "TYPE: BINARY",
        }));
        if let Some(idle) = self.idle_timeout {
            lines.push(format!("Session timeout in seconds is {}", idle.as_secs()));
        }
        lines.push(String::from(if matches!(self.state, State::Transfer(_)) {
            "A data transfer is in progress"
        } else {
            "No data connection"
        }));
        self.reply_multi(Reply::multi(
            211,
            "FTP server status:",
            lines,
            "End of status",
        ));
    }

    pub(super) fn options(&mut self, opts: Opts) {
        match opts {
            Opts::Utf8(true) => self.reply(200, "Always in UTF8 mode."),
            Opts::Utf8(false) => self.reply(504, "UTF8 cannot be turned off."),
            Opts::Mlst(names) => {
                self.mlst_facts = Facts::from_names(names.iter().map(String::as_str));
                let mut text = String::from("MLST OPTS ");
                self.mlst_facts.write_names(&mut text);
                self.reply(200, &text);
            }
            Opts::Hash(name) => self.hash_option(name),
            Opts::Other(_) => self.reply(501, "Option not understood."),
        }
    }

    pub(super) fn site(&mut self, site: Site) {
        match site {
            Site::Help => {
                let verbs = if self.config.storage.set_permissions {
                    "CHMOD HELP IDLE UMASK"
                } else {
                    "HELP IDLE UMASK"
                };
                self.reply_multi(Reply::multi(
                    214,
                    "The following SITE commands are recognized.",
                    vec![String::from(verbs)],
                    "Help OK.",
                ))
            }
            Site::Chmod { mode, path } => self.chmod_command(mode, &path),
            Site::Umask(None) => {
                let text = format!("Your current UMASK is {:03o}", self.umask);
                self.reply(200, &text);
            }
            Site::Umask(Some(_)) if !self.config.storage.set_permissions => {
                self.reply(550, "SITE UMASK is not supported by this storage.")
            }
            Site::Umask(Some(mask)) => {
                self.umask = mask & 0o777;
                let text = format!("UMASK set to {:03o}", self.umask);
                self.reply(200, &text);
            }
            Site::Idle(None) => {
                let text = match self.idle_timeout {
                    Some(idle) => format!(
                        "Current idle time limit is {} seconds; max {}",
                        idle.as_secs(),
                        self.config.max_idle.as_secs()
                    ),
                    None => String::from("There is no idle time limit."),
                };
                self.reply(200, &text);
            }
            Site::Idle(Some(secs)) => {
                let max = self.config.max_idle.as_secs();
                if secs < 30 || secs > max {
                    let text = format!("Idle time must be between 30 and {max} seconds.");
                    return self.reply(501, &text);
                }
                self.idle_timeout = Some(Duration::from_secs(secs));
                let text = format!("Maximum idle time set to {secs} seconds");
                self.reply(200, &text);
            }
            Site::Other(_) => self.reply(500, "Unknown SITE command."),
        }
    }
}
