//! HASH, RANG, OPTS HASH and the older XCRC/XMD5/XSHA* commands: the
//! engine checks the file and the range (a `Stat` first), asks the host
//! for the digest ([`Intent::Hash`]) and waits for it as for a transfer:
//! meanwhile `ABOR` cancels it and `STAT` answers, other commands wait.

use alloc::format;
use alloc::string::String;

use super::files::fs_reason;
use super::{Session, State};
use crate::hash::HashAlgorithm;
use crate::intent::{Completion, FsError, Intent, IntentId};
use crate::meta::Metadata;
use crate::path::VirtualPath;

/// Which command asked, for the shape of the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HashForm {
    /// `HASH`: `213 ALGO start-end hex path`.
    Hash,
    /// `XCRC` and the like: `250 hex`.
    Legacy,
}

/// A digest asked for, before and while it is computed.
#[derive(Debug)]
pub(super) struct HashRequest {
    form: HashForm,
    algorithm: HashAlgorithm,
    /// The path as the client wrote it (echoed in the `213`).
    arg: String,
    path: VirtualPath,
    /// First byte, and one past the last (`None`: to the end).
    start: u64,
    end: Option<u64>,
}

/// A digest being computed.
#[derive(Debug)]
pub(super) struct Hashing {
    pub(super) id: IntentId,
    request: HashRequest,
    /// First byte and one past the last.
    start: u64,
    end: u64,
}

impl Session {
    /// `HASH path`.
    pub(super) fn hash_command(&mut self, arg: String, range: Option<(u64, u64)>) {
        let (start, end) = match range {
            Some((start, last)) => (start, Some(last.saturating_add(1))),
            None => (0, None),
        };
        self.hash_start(HashForm::Hash, self.hash_algorithm, arg, start, end);
    }

    /// `XCRC path [start end]` and its siblings (`end` exclusive).
    pub(super) fn legacy_hash_command(
        &mut self,
        algorithm: HashAlgorithm,
        arg: String,
        range: Option<(u64, u64)>,
    ) {
        let (start, end) = match range {
            Some((start, end)) => (start, Some(end)),
            None => (0, None),
        };
        self.hash_start(HashForm::Legacy, algorithm, arg, start, end);
    }

    fn hash_start(
        &mut self,
        form: HashForm,
        algorithm: HashAlgorithm,
        arg: String,
        start: u64,
        end: Option<u64>,
    ) {
        if self.config.hash_max_size.is_none() {
            return self.reply(502, "Command not implemented.");
        }
        let Some(path) = self.resolve(&arg) else {
            return self.reply(553, "File name not allowed.");
        };
        let request = HashRequest {
            form,
            algorithm,
            arg,
            path: path.clone(),
            start,
            end,
        };
        self.await_fs(Intent::Stat { path }, super::files::FsOp::HashStat(request));
    }

    /// `RANG start end`: the range of the next `HASH`; `RANG 1 0` resets.
    pub(super) fn range_command(&mut self, start: u64, last: u64) {
        if (start, last) == (1, 0) {
            self.hash_range = None;
            return self.reply(350, "Restarting at 0. Ending byte EOF.");
        }
        if last < start {
            return self.reply(501, "The end of the range is before its start.");
        }
        self.hash_range = Some((start, last));
        let text = format!("Restarting at {start}. Ending byte {last}.");
        self.reply(350, &text);
    }

    /// `OPTS HASH [name]`.
    pub(super) fn hash_option(&mut self, name: Option<String>) {
        if self.config.hash_max_size.is_none() {
            return self.reply(501, "Option not understood.");
        }
        match name {
            None => self.reply(200, self.hash_algorithm.name()),
            Some(name) => match HashAlgorithm::from_name(&name) {
                Some(algorithm) => {
                    self.hash_algorithm = algorithm;
                    self.reply(200, algorithm.name());
                }
                None => self.reply(504, "Unknown algorithm."),
            },
        }
    }

    /// The `Stat` of a digest's file came back: check it and the range,
    /// then ask for the digest.
    pub(super) fn hash_stat(&mut self, request: HashRequest, meta: Result<Metadata, FsError>) {
        let meta = match meta {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => return self.reply(550, "Not a regular file."),
            Err(e) => return self.reply(550, fs_reason(e)),
        };
        let start = request.start;
        let end = request.end.map_or(meta.size, |end| end.min(meta.size));
        if start > meta.size || end < start {
            return self.reply(501, "The range is not within the file.");
        }
        let limit = self.config.hash_max_size.unwrap_or(0);
        if end - start > limit {
            let text = format!("File too large to hash: at most {limit} bytes at once.");
            return self.reply(552, &text);
        }
        let id = self.intent(Intent::Hash {
            path: request.path.clone(),
            algorithm: request.algorithm,
            start,
            end,
        });
        self.state = State::Hashing(Hashing {
            id,
            request,
            start,
            end,
        });
    }

    /// The digest came back.
    pub(super) fn hash_completed(&mut self, hashing: Hashing, completion: Completion) {
        let Hashing {
            request,
            start,
            end,
            ..
        } = hashing;
        match completion {
            Completion::Hash(Ok(hex)) => match request.form {
                HashForm::Hash => {
                    // The range as the draft prints it: first and last byte.
                    let last = end.saturating_sub(1).max(start);
                    let text = format!(
                        "{} {start}-{last} {hex} {}",
                        request.algorithm.name(),
                        request.arg
                    );
                    self.reply(213, &text);
                }
                HashForm::Legacy => self.reply(250, &hex),
            },
            Completion::Hash(Err(e)) => {
                let text = format!("Could not compute the digest: {}", fs_reason(e));
                self.reply(550, &text);
            }
            _ => self.reply(451, "Requested action aborted: local error in processing."),
        }
    }

    /// `ABOR` (or the session closing) while a digest is computed.
    pub(super) fn cancel_hash(&mut self, hashing: &Hashing, by_client: bool) {
        self.awaited = None;
        self.intent(Intent::CancelHash { hash: hashing.id });
        if by_client {
            self.reply(426, "Digest computation aborted.");
            self.reply(226, "Abort successful.");
        }
    }
}
