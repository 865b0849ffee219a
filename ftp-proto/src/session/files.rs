//! File commands answered over the control connection: CWD, MKD, RMD,
//! DELE, RNFR/RNTO, SIZE, MDTM, MFMT, MLST, SITE CHMOD and `STAT path`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::Session;
use crate::command::ListArgs;
use crate::intent::{Completion, FsError, Intent};
use crate::listing::{ListFormat, ListStyle, write_mdtm, write_mlst_entry};
use crate::meta::{DirEntry, Metadata};
use crate::path::VirtualPath;
use crate::reply::{Reply, quote_path};
use crate::time::UnixTime;

/// A file operation the session waits for, and what to answer when it ends.
#[derive(Debug)]
pub(super) enum FsOp {
    /// `Stat` for CWD: change into `path` if it is a directory.
    Cwd(VirtualPath),
    /// `Stat` answered with file information.
    Stat(VirtualPath, StatFor),
    /// `Stat` for RNFR: remember `path` if it exists.
    Rnfr(VirtualPath),
    /// `MakeDir`: answer 257 with the new path.
    Mkd(VirtualPath),
    /// An operation answered 250/200 or 550.
    Change(Change),
    /// `ReadDir` for `STAT path`.
    StatList(VirtualPath, ListFormat),
    /// `Available` for `AVBL`.
    Avbl,
    /// `Stat` of the file a digest is asked for.
    HashStat(super::hash::HashRequest),
}

/// What a `Stat` result is for.
#[derive(Clone, Copy, Debug)]
pub(super) enum StatFor {
    /// SIZE: 213 with the size of a file.
    Size,
    /// MDTM: 213 with the modification time.
    Mdtm,
    /// MLST: 250 with the facts of one entry.
    Mlst,
}

/// Operations whose answer is a plain success or failure line.
#[derive(Clone, Copy, Debug)]
pub(super) enum Change {
    RemoveDir,
    RemoveFile,
    Rename,
    SetModified(UnixTime),
    Chmod(u32),
}

impl Change {
    fn success(self) -> (u16, &'static str) {
        match self {
            Change::RemoveDir => (250, "Remove directory operation successful."),
            Change::RemoveFile => (250, "Delete operation successful."),
            Change::Rename => (250, "Rename successful."),
            Change::SetModified(_) => (213, ""),
            Change::Chmod(_) => (200, "SITE CHMOD command ok."),
        }
    }

    fn failure(self) -> &'static str {
        match self {
            Change::RemoveDir => "Remove directory operation failed.",
            Change::RemoveFile => "Delete operation failed.",
            Change::Rename => "Rename failed.",
            Change::SetModified(_) => "Could not set file modification time.",
            Change::Chmod(_) => "SITE CHMOD command failed.",
        }
    }
}

/// The reason text of a `550` for a file-system error.
pub(super) fn fs_reason(error: FsError) -> &'static str {
    match error {
        FsError::NotFound => "No such file or directory.",
        FsError::PermissionDenied => "Permission denied.",
        FsError::AlreadyExists => "File exists.",
        FsError::NotADirectory => "Not a directory.",
        FsError::IsADirectory => "Is a directory.",
        FsError::NotEmpty => "Directory not empty.",
        FsError::NoSpace => "No space left on device.",
        FsError::QuotaExceeded => "Disk quota exceeded.",
        FsError::InvalidName => "Invalid file name.",
        FsError::TooManyMatches => "Too many names match the pattern.",
        FsError::Other => "Local error.",
    }
}

impl Session {
    /// Resolves an argument or answers `553` for a name that can't exist.
    fn path_or_reply(&mut self, arg: &str) -> Option<VirtualPath> {
        let path = self.resolve(arg);
        if path.is_none() {
            self.reply(553, "File name not allowed.");
        }
        path
    }

    /// Checks write permission, answering `550` when it is missing.
    fn writable_or_reply(&mut self) -> bool {
        let ok = self.may_write();
        if !ok {
            self.reply(550, "Permission denied.");
        }
        ok
    }

    pub(super) fn cwd_command(&mut self, arg: &str) {
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        if path.is_root() {
            self.cwd = path;
            return self.reply(250, "Directory successfully changed.");
        }
        self.await_fs(Intent::Stat { path: path.clone() }, FsOp::Cwd(path));
    }

    pub(super) fn mkd_command(&mut self, arg: &str) {
        if !self.writable_or_reply() {
            return;
        }
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        let umask = self.umask;
        self.await_fs(
            Intent::MakeDir {
                path: path.clone(),
                umask,
            },
            FsOp::Mkd(path),
        );
    }

    pub(super) fn simple_write(&mut self, arg: &str, op: Change) {
        if !self.writable_or_reply() {
            return;
        }
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        let intent = match op {
            Change::RemoveDir => Intent::RemoveDir { path },
            Change::RemoveFile => Intent::RemoveFile { path },
            Change::SetModified(time) => Intent::SetModified { path, time },
            Change::Chmod(mode) => Intent::SetPermissions { path, mode },
            Change::Rename => return,
        };
        self.await_fs(intent, FsOp::Change(op));
    }

    pub(super) fn rnfr_command(&mut self, arg: &str) {
        if !self.writable_or_reply() {
            return;
        }
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        if path.is_root() {
            return self.reply(550, "Cannot rename the root directory.");
        }
        self.await_fs(Intent::Stat { path: path.clone() }, FsOp::Rnfr(path));
    }

    pub(super) fn rnto_command(&mut self, from: Option<VirtualPath>, arg: &str) {
        let Some(from) = from else {
            return self.reply(503, "RNFR required first.");
        };
        let Some(to) = self.path_or_reply(arg) else {
            return;
        };
        if !self.writable_or_reply() {
            return;
        }
        self.await_fs(Intent::Rename { from, to }, FsOp::Change(Change::Rename));
    }

    pub(super) fn stat_for(&mut self, arg: &str, what: StatFor) {
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        self.await_fs(Intent::Stat { path: path.clone() }, FsOp::Stat(path, what));
    }

    /// `AVBL [path]`: the bytes an upload may still take there.
    pub(super) fn available_command(&mut self, arg: &str) {
        let Some(path) = self.path_or_reply(arg) else {
            return;
        };
        self.await_fs(Intent::Available { path }, FsOp::Avbl);
    }

    pub(super) fn chmod_command(&mut self, mode: u32, arg: &str) {
        if !self.config.storage.set_permissions {
            return self.reply(502, "SITE CHMOD is not supported by this storage.");
        }
        self.simple_write(arg, Change::Chmod(mode));
    }

    /// `STAT path`: a listing over the control connection.
    pub(super) fn stat_listing(&mut self, args: ListArgs) {
        let Some(path) = self.path_or_reply(args.path.as_deref().unwrap_or("")) else {
            return;
        };
        let format = ListFormat {
            style: ListStyle::Long,
            show_hidden: args.all,
            writable: self.may_write(),
            glob: None,
        };
        let limit = self.config.max_stat_entries;
        self.await_fs(
            Intent::ReadDir {
                path: path.clone(),
                limit,
            },
            FsOp::StatList(path, format),
        );
    }

    pub(super) fn fs_completed(&mut self, op: FsOp, completion: Completion) {
        match (op, completion) {
            (FsOp::Cwd(path), Completion::Stat(Ok(meta))) if meta.is_dir() => {
                self.cwd = path;
                self.reply(250, "Directory successfully changed.");
            }
            (FsOp::Cwd(_), Completion::Stat(_)) => self.reply(550, "Failed to change directory."),
            (FsOp::Stat(path, what), Completion::Stat(Ok(meta))) => {
                self.stat_answer(&path, what, meta)
            }
            (FsOp::Stat(_, what), Completion::Stat(Err(e))) => {
                let text = match what {
                    StatFor::Size => "Could not get file size.",
                    StatFor::Mdtm => "Could not get file modification time.",
                    StatFor::Mlst => fs_reason(e),
                };
                self.reply(550, text);
            }
            (FsOp::Rnfr(path), Completion::Stat(Ok(_))) => {
                self.rename_from = Some(path);
                self.reply(350, "Ready for RNTO.");
            }
            (FsOp::Rnfr(_), Completion::Stat(Err(_))) => self.reply(550, "RNFR command failed."),
            (FsOp::Mkd(path), Completion::Done(Ok(()))) => {
                let text = format!("{} created", quote_path(path.as_str()));
                self.reply(257, &text);
            }
            (FsOp::Mkd(_), Completion::Done(Err(_))) => {
                self.reply(550, "Create directory operation failed.")
            }
            (FsOp::Change(Change::SetModified(time)), Completion::Done(Ok(()))) => {
                let mut text = String::from("Modify=");
                write_mdtm(time, &mut text);
                text.push_str("; modification time set.");
                self.reply(213, &text);
            }
            (FsOp::Change(op), Completion::Done(Ok(()))) => {
                let (code, text) = op.success();
                self.reply(code, text);
            }
            (FsOp::Change(op), Completion::Done(Err(_))) => self.reply(550, op.failure()),
            (FsOp::StatList(path, format), Completion::Entries(Ok(entries), now)) => {
                self.stat_list_answer(&path, &format, &entries, now)
            }
            (FsOp::StatList(_, _), Completion::Entries(Err(e), _)) => self.reply(550, fs_reason(e)),
            (FsOp::HashStat(request), Completion::Stat(meta)) => self.hash_stat(request, meta),
            (FsOp::Avbl, Completion::Available(Ok(bytes))) => self.reply(213, &format!("{bytes}")),
            (FsOp::Avbl, Completion::Available(Err(e))) => {
                let text = format!("Could not get available space: {}", fs_reason(e));
                self.reply(550, &text)
            }
            // A completion of the wrong kind: a runtime bug, never a hang.
            _ => self.reply(451, "Requested action aborted: local error in processing."),
        }
    }

    fn stat_answer(&mut self, path: &VirtualPath, what: StatFor, meta: Metadata) {
        match what {
            StatFor::Size if meta.is_file() => {
                let text = format!("{}", meta.size);
                self.reply(213, &text);
            }
            StatFor::Size => self.reply(550, "Could not get file size."),
            StatFor::Mdtm => match meta.modified {
                Some(time) if meta.is_file() => {
                    let mut text = String::new();
                    write_mdtm(time, &mut text);
                    self.reply(213, &text);
                }
                _ => self.reply(550, "Could not get file modification time."),
            },
            StatFor::Mlst => {
                let entry = DirEntry {
                    name: String::from(path.file_name().unwrap_or("/")),
                    meta,
                    link_target: None,
                };
                let mut line = String::new();
                write_mlst_entry(
                    self.mlst_facts,
                    self.may_write(),
                    &entry,
                    path.as_str(),
                    &mut line,
                );
                let first = format!("Listing {path}");
                let line = String::from(line.trim_end_matches(['\r', '\n']));
                self.reply_multi(Reply::multi(250, first, alloc::vec![line], "End"));
            }
        }
    }

    fn stat_list_answer(
        &mut self,
        path: &VirtualPath,
        format: &ListFormat,
        entries: &[DirEntry],
        now: UnixTime,
    ) {
        let mut lines = Vec::with_capacity(entries.len());
        let mut buf = Vec::new();
        for entry in entries.iter().filter(|e| format.includes(&e.name)) {
            buf.clear();
            format.write_entry(entry, now, &mut buf);
            let text = String::from_utf8_lossy(&buf);
            lines.push(String::from(text.trim_end_matches(['\r', '\n'])));
        }
        let first = format!("Status of {path}:");
        self.reply_multi(Reply::multi(213, first, lines, "End of status."));
    }
}
