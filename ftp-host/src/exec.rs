//! Carrying out the simple file intents: one blocking [`Storage`] call each.
//!
//! Runtimes call [`execute`] off their event loop (a thread pool, or
//! `smol::unblock`) and hand the completion back to the session.

use ftp_proto::{Completion, DirEntry, FsError, Intent, VirtualPath};

use crate::storage::Storage;

/// Performs a file intent and returns its answer.
///
/// Handles [`Intent::Stat`], [`Intent::ReadDir`] (at most `limit` entries,
/// sorted by name), [`Intent::MakeDir`], [`Intent::RemoveDir`],
/// [`Intent::RemoveFile`], [`Intent::Rename`], [`Intent::SetPermissions`]
/// [`Intent::SetModified`] and [`Intent::Available`]. Returns `None` for the intents that are not
/// file operations (authentication, passive listeners, transfers, TLS),
/// which the runtime carries out itself.
pub fn execute(storage: &dyn Storage, intent: &Intent) -> Option<Completion> {
    let completion = match intent {
        Intent::Stat { path } => Completion::Stat(storage.stat(path)),
        Intent::ReadDir { path, limit } => Completion::Entries(
            read_entries(storage, path, *limit),
            crate::clock::wall_now(),
        ),
        Intent::MakeDir { path, umask } => Completion::Done(storage.make_dir(path, Some(*umask))),
        Intent::RemoveDir { path } => Completion::Done(storage.remove_dir(path)),
        Intent::RemoveFile { path } => Completion::Done(storage.remove_file(path)),
        Intent::Rename { from, to } => Completion::Done(storage.rename(from, to)),
        Intent::SetPermissions { path, mode } => {
            Completion::Done(storage.set_permissions(path, *mode))
        }
        Intent::SetModified { path, time } => Completion::Done(storage.set_modified(path, *time)),
        Intent::Available { path } => Completion::Available(storage.available(path)),
        Intent::Authenticate { .. }
        | Intent::ConfirmAnonymous { .. }
        | Intent::OpenPassive { .. }
        | Intent::ClosePassive { .. }
        | Intent::Transfer(_)
        | Intent::AbortTransfer { .. }
        | Intent::UpgradeTls
        | Intent::ClearTls
        | Intent::Hash { .. }
        | Intent::CancelHash { .. } => return None,
    };
    Some(completion)
}

/// Reads at most `limit` entries of the directory `path` (or the single
/// entry of a file), sorted by name.
pub fn read_entries(
    storage: &dyn Storage,
    path: &VirtualPath,
    limit: usize,
) -> Result<Vec<DirEntry>, FsError> {
    let mut reader = storage.read_dir(path)?;
    let mut entries = Vec::new();
    while entries.len() < limit {
        let batch = reader.next_batch((limit - entries.len()).min(256))?;
        if batch.is_empty() {
            break;
        }
        entries.extend(batch);
    }
    entries.truncate(limit);
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalFs;
    use ftp_proto::{
        DataEndpoint, FileKind, IntentId, ListFormat, ListStyle, StoreMode, Transfer, TransferOp,
        UnixTime,
    };

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    fn setup() -> (tempfile::TempDir, LocalFs) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("d")).unwrap();
        for name in ["c", "a", "b"] {
            std::fs::write(tmp.path().join("d").join(name), name).unwrap();
        }
        let fs = LocalFs::open(tmp.path()).unwrap();
        (tmp, fs)
    }

    #[test]
    fn stat_and_entries() {
        let (_tmp, fs) = setup();
        let Some(Completion::Stat(Ok(meta))) = execute(&fs, &Intent::Stat { path: vp("/d/a") })
        else {
            panic!("expected a stat");
        };
        assert_eq!(meta.kind, FileKind::File);
        assert_eq!(meta.size, 1);
        assert_eq!(
            execute(&fs, &Intent::Stat { path: vp("/zz") }),
            Some(Completion::Stat(Err(FsError::NotFound)))
        );
        let Some(Completion::Entries(Ok(entries), _)) = execute(
            &fs,
            &Intent::ReadDir {
                path: vp("/d"),
                limit: 10,
            },
        ) else {
            panic!("expected entries");
        };
        let names: Vec<_> = entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let Some(Completion::Entries(Ok(entries), _)) = execute(
            &fs,
            &Intent::ReadDir {
                path: vp("/d"),
                limit: 2,
            },
        ) else {
            panic!("expected entries");
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(read_entries(&fs, &vp("/d"), 0).unwrap().len(), 0);
        assert_eq!(read_entries(&fs, &vp("/d/b"), 5).unwrap()[0].name, "b");
    }

    #[test]
    fn changes() {
        let (tmp, fs) = setup();
        let done = |i: Intent| match execute(&fs, &i) {
            Some(Completion::Done(r)) => r,
            other => panic!("unexpected {other:?}"),
        };
        assert_eq!(
            done(Intent::MakeDir {
                path: vp("/n"),
                umask: 0o022,
            }),
            Ok(())
        );
        assert_eq!(
            done(Intent::MakeDir {
                path: vp("/n"),
                umask: 0o022,
            }),
            Err(FsError::AlreadyExists)
        );
        assert_eq!(
            done(Intent::Rename {
                from: vp("/d/a"),
                to: vp("/n/a2"),
            }),
            Ok(())
        );
        assert!(tmp.path().join("n/a2").exists());
        assert_eq!(
            done(Intent::SetPermissions {
                path: vp("/n/a2"),
                mode: 0o640,
            }),
            Ok(())
        );
        assert_eq!(
            done(Intent::SetModified {
                path: vp("/n/a2"),
                time: UnixTime(86_400),
            }),
            Ok(())
        );
        let meta = fs.stat(&vp("/n/a2")).unwrap();
        assert_eq!((meta.mode, meta.modified), (0o640, Some(UnixTime(86_400))));
        assert_eq!(
            done(Intent::RemoveDir { path: vp("/n") }),
            Err(FsError::NotEmpty)
        );
        assert_eq!(done(Intent::RemoveFile { path: vp("/n/a2") }), Ok(()));
        assert_eq!(done(Intent::RemoveDir { path: vp("/n") }), Ok(()));
        assert!(!tmp.path().join("n").exists());
    }

    #[test]
    fn other_intents_are_not_file_operations() {
        let (_tmp, fs) = setup();
        let others = [
            Intent::Authenticate {
                user: "u".into(),
                password: "p".into(),
            },
            Intent::OpenPassive {
                peer: "127.0.0.1".parse().unwrap(),
            },
            Intent::ClosePassive {
                listener: IntentId(1),
            },
            Intent::Transfer(Transfer {
                data: DataEndpoint::Passive {
                    listener: IntentId(1),
                },
                op: TransferOp::List {
                    path: vp("/"),
                    format: ListFormat {
                        style: ListStyle::Names,
                        show_hidden: false,
                        writable: false,
                        glob: None,
                    },
                },
                ascii: false,
                tls: false,
            }),
            Intent::Transfer(Transfer {
                data: DataEndpoint::Passive {
                    listener: IntentId(1),
                },
                op: TransferOp::Store {
                    path: vp("/x"),
                    mode: StoreMode::Replace,
                    size: None,
                    umask: 0o022,
                },
                ascii: false,
                tls: false,
            }),
            Intent::AbortTransfer {
                transfer: IntentId(2),
            },
            Intent::UpgradeTls,
            Intent::ClearTls,
        ];
        for intent in others {
            assert_eq!(execute(&fs, &intent), None, "{intent:?}");
        }
        assert!(!_tmp.path().join("x").exists());
    }
}
