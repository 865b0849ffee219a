//! An in-memory file tree and a complete, synchronous runtime around a
//! [`Session`]: the reference for what a runtime does, and the harness of
//! the engine's own tests, benchmarks and fuzz targets. No I/O happens
//! here: "connections" are byte vectors and time moves only when told.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use crate::ascii::{AsciiDecoder, AsciiEncoder};
use crate::config::Config;
use crate::intent::{
    AuthError, Completion, DataEndpoint, FsError, Grant, Intent, IntentId, Output, ResourceError,
    StoreMode, Transfer, TransferError, TransferEvent, TransferOp,
};
use crate::meta::{DirEntry, FileKind, Metadata};
use crate::path::VirtualPath;
use crate::session::Session;
use crate::time::{Instant, UnixTime};

/// One node of the in-memory tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// A directory (its children are the paths below it).
    Dir,
    /// A file and its bytes.
    File(Vec<u8>),
}

/// A file tree held in memory, keyed by virtual path.
#[derive(Clone, Debug)]
pub struct MemoryFs {
    nodes: BTreeMap<String, (Node, UnixTime, u32)>,
    /// The wall-clock time given to new and changed nodes.
    pub now: UnixTime,
}

impl Default for MemoryFs {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryFs {
    /// A tree holding only the root directory.
    pub fn new() -> Self {
        let now = UnixTime(1_790_000_000);
        let mut nodes = BTreeMap::new();
        nodes.insert(String::from("/"), (Node::Dir, now, 0o755));
        MemoryFs { nodes, now }
    }

    /// Adds (or replaces) a file, creating missing parent directories.
    pub fn add_file(&mut self, path: &str, bytes: &[u8]) {
        let path = VirtualPath::root()
            .resolve(path)
            .unwrap_or_else(VirtualPath::root);
        self.add_dir(path.parent().as_str());
        self.nodes.insert(
            String::from(path.as_str()),
            (Node::File(bytes.to_vec()), self.now, 0o644),
        );
    }

    /// Adds a directory and its missing parents.
    pub fn add_dir(&mut self, path: &str) {
        let path = VirtualPath::root()
            .resolve(path)
            .unwrap_or_else(VirtualPath::root);
        let mut at = VirtualPath::root();
        for part in path.components() {
            at = at.resolve(part).unwrap_or_else(VirtualPath::root);
            self.nodes
                .entry(String::from(at.as_str()))
                .or_insert((Node::Dir, self.now, 0o755));
        }
    }

    /// The node at `path`.
    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path).map(|(node, _, _)| node)
    }

    /// The bytes of the file at `path`.
    pub fn file(&self, path: &str) -> Option<&[u8]> {
        match self.get(path) {
            Some(Node::File(bytes)) => Some(bytes),
            _ => None,
        }
    }

    fn meta(&self, path: &str) -> Result<Metadata, FsError> {
        let (node, modified, mode) = self.nodes.get(path).ok_or(FsError::NotFound)?;
        let (kind, size) = match node {
            Node::Dir => (FileKind::Dir, 4096),
            Node::File(bytes) => (FileKind::File, bytes.len() as u64),
        };
        Ok(Metadata {
            kind,
            size,
            modified: Some(*modified),
            mode: *mode,
            nlink: 1,
            owner: String::from("ftp"),
            group: String::from("ftp"),
            unique: None,
        })
    }

    fn children(&self, dir: &str) -> Vec<DirEntry> {
        let prefix = if dir == "/" {
            String::from("/")
        } else {
            alloc::format!("{dir}/")
        };
        self.nodes
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .filter(|(path, _)| path.len() > prefix.len() && !path[prefix.len()..].contains('/'))
            .filter_map(|(path, _)| {
                Some(DirEntry {
                    name: String::from(&path[prefix.len()..]),
                    meta: self.meta(path).ok()?,
                    link_target: None,
                })
            })
            .collect()
    }

    fn entries(&self, path: &VirtualPath) -> Result<Vec<DirEntry>, FsError> {
        let meta = self.meta(path.as_str())?;
        if meta.is_dir() {
            Ok(self.children(path.as_str()))
        } else {
            Ok(alloc::vec![DirEntry {
                name: String::from(path.file_name().unwrap_or("/")),
                meta,
                link_target: None,
            }])
        }
    }

    fn parent_is_dir(&self, path: &VirtualPath) -> Result<(), FsError> {
        match self.get(path.parent().as_str()) {
            Some(Node::Dir) => Ok(()),
            Some(Node::File(_)) => Err(FsError::NotADirectory),
            None => Err(FsError::NotFound),
        }
    }

    /// The free space every directory reports (`AVBL`).
    pub const AVAILABLE: u64 = 1 << 30;

    /// Performs a file intent (not transfers) and returns its completion;
    /// `None` for intents that are not file operations.
    pub fn execute(&mut self, intent: &Intent) -> Option<Completion> {
        Some(match intent {
            Intent::Stat { path } => Completion::Stat(self.meta(path.as_str())),
            Intent::ReadDir { path, limit } => Completion::Entries(
                self.entries(path).map(|mut e| {
                    e.truncate(*limit);
                    e
                }),
                self.now,
            ),
            Intent::Available { path } => Completion::Available(match self.get(path.as_str()) {
                Some(Node::Dir) => Ok(MemoryFs::AVAILABLE),
                Some(Node::File(_)) => Err(FsError::NotADirectory),
                None => Err(FsError::NotFound),
            }),
            Intent::MakeDir { path, .. } => Completion::Done(self.make_dir(path)),
            Intent::RemoveDir { path } => Completion::Done(self.remove(path, true)),
            Intent::RemoveFile { path } => Completion::Done(self.remove(path, false)),
            Intent::Rename { from, to } => Completion::Done(self.rename(from, to)),
            Intent::SetPermissions { path, mode } => Completion::Done(
                self.nodes
                    .get_mut(path.as_str())
                    .map(|n| n.2 = *mode)
                    .ok_or(FsError::NotFound),
            ),
            Intent::SetModified { path, time } => Completion::Done(
                self.nodes
                    .get_mut(path.as_str())
                    .map(|n| n.1 = *time)
                    .ok_or(FsError::NotFound),
            ),
            _ => return None,
        })
    }

    fn make_dir(&mut self, path: &VirtualPath) -> Result<(), FsError> {
        if self.nodes.contains_key(path.as_str()) {
            return Err(FsError::AlreadyExists);
        }
        self.parent_is_dir(path)?;
        self.nodes
            .insert(String::from(path.as_str()), (Node::Dir, self.now, 0o755));
        Ok(())
    }

    fn remove(&mut self, path: &VirtualPath, dir: bool) -> Result<(), FsError> {
        match (self.get(path.as_str()), dir) {
            (None, _) => Err(FsError::NotFound),
            (Some(Node::Dir), false) => Err(FsError::IsADirectory),
            (Some(Node::File(_)), true) => Err(FsError::NotADirectory),
            (Some(Node::Dir), true) if path.is_root() => Err(FsError::PermissionDenied),
            (Some(Node::Dir), true) if !self.children(path.as_str()).is_empty() => {
                Err(FsError::NotEmpty)
            }
            _ => {
                self.nodes.remove(path.as_str());
                Ok(())
            }
        }
    }

    fn rename(&mut self, from: &VirtualPath, to: &VirtualPath) -> Result<(), FsError> {
        if !self.nodes.contains_key(from.as_str()) {
            return Err(FsError::NotFound);
        }
        self.parent_is_dir(to)?;
        let prefix = alloc::format!("{from}/");
        if to.as_str().starts_with(&prefix) {
            return Err(FsError::InvalidName);
        }
        let moved: Vec<String> = self
            .nodes
            .keys()
            .filter(|k| *k == from.as_str() || k.starts_with(&prefix))
            .cloned()
            .collect();
        for old in moved {
            if let Some(node) = self.nodes.remove(&old) {
                let new = alloc::format!("{to}{}", &old[from.as_str().len()..]);
                self.nodes.insert(new, node);
            }
        }
        Ok(())
    }
}

/// How [`MemoryRuntime`] treats transfers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferMode {
    /// Complete every transfer at once.
    Instant,
    /// Stop after the data connection is up, until
    /// [`MemoryRuntime::finish_transfer`] or an abort.
    Hold,
    /// Never get a data connection (the client does not connect).
    NoConnection,
}

/// A synchronous runtime: a [`Session`], a [`MemoryFs`], a simulated clock,
/// and byte vectors standing in for the connections.
#[derive(Debug)]
pub struct MemoryRuntime {
    /// The session under test.
    pub session: Session,
    /// The file tree.
    pub fs: MemoryFs,
    /// The simulated monotonic clock.
    pub now: Instant,
    /// Every reply byte the client has received.
    pub received: Vec<u8>,
    /// Data the client received over data connections (for the last transfer).
    pub downloaded: Vec<u8>,
    /// Data the client will send on its next upload.
    pub upload: Vec<u8>,
    /// How transfers behave.
    pub transfer_mode: TransferMode,
    /// Accounts that log in: (name, password, write).
    pub users: Vec<(String, String, bool)>,
    /// Whether the runtime was told to close.
    pub closed: bool,
    /// Every intent seen, in order (for assertions).
    pub intents: Vec<Intent>,
    /// Passive listeners open now, by the id of their `OpenPassive`; a
    /// transfer consumes its listener once connected, as real runtimes do.
    pub listeners: Vec<IntentId>,
    held: Option<(IntentId, Transfer)>,
    /// Leave `Hash` intents unanswered (to test `ABOR` during `HASH`).
    pub hold_hashes: bool,
    /// The `Hash` left unanswered.
    pub held_hash: Option<IntentId>,
    next_port: u16,
    unique: u32,
}

impl MemoryRuntime {
    /// A runtime with a fresh session for a client at 127.0.0.1.
    pub fn new(config: Config, fs: MemoryFs) -> Self {
        let now = Instant::from_duration(Duration::from_secs(1000));
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 21);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
        let session = Session::new(Arc::new(config), local, peer, now);
        let mut runtime = MemoryRuntime {
            session,
            fs,
            now,
            received: Vec::new(),
            downloaded: Vec::new(),
            upload: Vec::new(),
            transfer_mode: TransferMode::Instant,
            users: alloc::vec![(String::from("alice"), String::from("secret"), true)],
            closed: false,
            intents: Vec::new(),
            listeners: Vec::new(),
            held: None,
            hold_hashes: false,
            held_hash: None,
            next_port: 50000,
            unique: 0,
        };
        runtime.run();
        runtime
    }

    /// Sends bytes as the client and runs the session until it waits.
    pub fn send(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while !rest.is_empty() && !self.closed {
            let n = self.session.input_capacity().min(rest.len());
            if n == 0 {
                break;
            }
            self.session.handle_input(self.now, &rest[..n]);
            rest = &rest[n..];
            self.run();
        }
    }

    /// Sends one command line (CRLF added) and returns the replies it produced.
    pub fn command(&mut self, line: &str) -> String {
        let before = self.received.len();
        let mut bytes = Vec::from(line.as_bytes());
        bytes.extend_from_slice(b"\r\n");
        self.send(&bytes);
        String::from_utf8_lossy(&self.received[before..]).into_owned()
    }

    /// Closes the client's side of the control connection (a half-close)
    /// and runs the session until it waits.
    pub fn eof(&mut self) {
        self.session.handle_eof(self.now);
        self.run();
    }

    /// Moves the clock forward and lets timers fire.
    pub fn advance(&mut self, by: Duration) {
        let target = self.now + by;
        while let Some(deadline) = self.session.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = self.now.max(deadline);
            self.session.handle_timeout(self.now);
            self.run();
        }
        self.now = target;
        self.session.handle_timeout(self.now);
        self.run();
    }

    /// Completes a held transfer.
    pub fn finish_transfer(&mut self) {
        if self.transfer_mode != TransferMode::Hold {
            return;
        }
        if let Some((id, transfer)) = self.held.take() {
            let done = self.complete(transfer);
            self.session.handle_completion(self.now, id, done);
            self.run();
        }
    }

    /// Reports progress of a held transfer, as a runtime does while data flows.
    pub fn report_progress(&mut self, bytes: u64) {
        if let Some((id, _)) = &self.held {
            let id = *id;
            let progress = Completion::Transfer(TransferEvent::Progress { bytes });
            self.session.handle_completion(self.now, id, progress);
            self.run();
        }
    }

    /// The runtime loop: drain replies and intents until the session waits.
    pub fn run(&mut self) {
        loop {
            let pending = self.session.transmit().len();
            if pending > 0 {
                self.received.extend_from_slice(self.session.transmit());
                self.session.consume_transmit(pending);
            }
            while self.session.poll_event().is_some() {}
            let Some(output) = self.session.poll_output() else {
                if self.session.transmit().is_empty() {
                    return;
                }
                continue;
            };
            match output {
                Output::Close => {
                    self.received.extend_from_slice(self.session.transmit());
                    let n = self.session.transmit().len();
                    self.session.consume_transmit(n);
                    self.closed = true;
                    return;
                }
                Output::Intent(id, intent) => {
                    self.intents.push(intent.clone());
                    self.perform(id, intent);
                }
            }
        }
    }

    fn perform(&mut self, id: IntentId, intent: Intent) {
        if let Some(done) = self.fs.execute(&intent) {
            return self.session.handle_completion(self.now, id, done);
        }
        let done = match intent {
            Intent::Authenticate { user, password } => Completion::Auth(
                self.users
                    .iter()
                    .find(|(u, p, _)| *u == user && p == password.expose())
                    .map(|(_, _, write)| Grant { write: *write })
                    .ok_or(AuthError::Denied),
            ),
            Intent::OpenPassive { .. } => {
                self.next_port = self.next_port.wrapping_add(1);
                if self.next_port == 0 {
                    Completion::PassiveReady(Err(ResourceError::Exhausted))
                } else {
                    self.listeners.push(id);
                    Completion::PassiveReady(Ok(SocketAddr::new(
                        IpAddr::V4(Ipv4Addr::LOCALHOST),
                        self.next_port,
                    )))
                }
            }
            Intent::Transfer(transfer) => return self.transfer(id, transfer),
            Intent::AbortTransfer { transfer } => {
                if self
                    .held
                    .as_ref()
                    .is_some_and(|(held, _)| *held == transfer)
                {
                    self.held = None;
                    self.session.handle_completion(
                        self.now,
                        transfer,
                        Completion::Transfer(TransferEvent::Failed(TransferError::Aborted)),
                    );
                }
                return;
            }
            // The in-memory connection "switches" at once.
            Intent::UpgradeTls | Intent::ClearTls => Completion::Tls(Ok(())),
            Intent::ConfirmAnonymous { .. } => Completion::Anonymous(Ok(())),
            Intent::ClosePassive { listener } => {
                self.listeners.retain(|l| *l != listener);
                return;
            }
            Intent::Hash { .. } if self.hold_hashes => {
                self.held_hash = Some(id);
                return;
            }
            Intent::Hash {
                path, start, end, ..
            } => Completion::Hash(match self.fs.get(path.as_str()) {
                Some(Node::File(bytes)) => {
                    let range = bytes.get(start as usize..end as usize).unwrap_or(&[]);
                    Ok(alloc::format!("{:016x}", fnv1a(range)))
                }
                _ => Err(FsError::NotFound),
            }),
            Intent::CancelHash { hash } => {
                if self.held_hash == Some(hash) {
                    self.held_hash = None;
                }
                return;
            }
            _ => return,
        };
        self.session.handle_completion(self.now, id, done);
    }

    fn transfer(&mut self, id: IntentId, transfer: Transfer) {
        let ready = match &transfer.op {
            TransferOp::Retrieve { path, .. } => match self.fs.get(path.as_str()) {
                Some(Node::File(bytes)) => Ok((Some(bytes.len() as u64), None)),
                Some(Node::Dir) => Err(FsError::IsADirectory),
                None => Err(FsError::NotFound),
            },
            TransferOp::Store { path, mode, .. } => match (mode, self.fs.get(path.as_str())) {
                (StoreMode::Unique, Some(Node::Dir)) => {
                    self.unique += 1;
                    Ok((None, Some(alloc::format!("ftp-upload-{}", self.unique))))
                }
                (StoreMode::Unique, _) => Err(FsError::NotADirectory),
                (_, Some(Node::Dir)) => Err(FsError::IsADirectory),
                _ => self.fs.parent_is_dir(path).map(|()| (None, None)),
            },
            TransferOp::List { path, .. } => self.fs.entries(path).map(|_| (None, None)),
        };
        let (size, name) = match ready {
            Ok(ready) => ready,
            Err(e) => {
                let failed = Completion::Transfer(TransferEvent::Failed(TransferError::Fs(e)));
                return self.session.handle_completion(self.now, id, failed);
            }
        };
        let ready = Completion::Transfer(TransferEvent::Ready {
            size,
            name: name.clone(),
        });
        self.session.handle_completion(self.now, id, ready);
        if self.transfer_mode == TransferMode::NoConnection {
            self.held = Some((id, transfer));
            return;
        }
        if let DataEndpoint::Passive { listener } = transfer.data {
            // The transfer takes the listener's connection, and with it
            // the listener; one that is not open gives no connection.
            if !self.listeners.contains(&listener) {
                let failed = TransferEvent::Failed(TransferError::NoConnection);
                let failed = Completion::Transfer(failed);
                return self.session.handle_completion(self.now, id, failed);
            }
            self.listeners.retain(|l| *l != listener);
        }
        self.session.handle_completion(
            self.now,
            id,
            Completion::Transfer(TransferEvent::Connected),
        );
        let transfer = match (transfer.op, name) {
            (
                TransferOp::Store {
                    path, size, umask, ..
                },
                Some(name),
            ) => Transfer {
                op: TransferOp::Store {
                    path: path.resolve(&name).unwrap_or(path),
                    mode: StoreMode::Replace,
                    size,
                    umask,
                },
                ..transfer
            },
            (op, _) => Transfer { op, ..transfer },
        };
        if self.transfer_mode == TransferMode::Hold {
            self.held = Some((id, transfer));
            return;
        }
        let done = self.complete(transfer);
        self.session.handle_completion(self.now, id, done);
    }

    fn complete(&mut self, transfer: Transfer) -> Completion {
        let mut out = Vec::new();
        let bytes = match transfer.op {
            TransferOp::Retrieve { path, offset } => {
                let data = self.fs.file(path.as_str()).unwrap_or_default();
                let start = usize::try_from(offset)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                if transfer.ascii {
                    AsciiEncoder::default().encode(&data[start..], &mut out);
                } else {
                    out.extend_from_slice(&data[start..]);
                }
                let n = out.len() as u64;
                self.downloaded = out;
                n
            }
            TransferOp::List { path, format } => {
                for entry in self.fs.entries(&path).unwrap_or_default() {
                    if format.includes(&entry.name) {
                        format.write_entry(&entry, self.fs.now, &mut out);
                    }
                }
                let n = out.len() as u64;
                self.downloaded = out;
                n
            }
            TransferOp::Store { path, mode, .. } => {
                let sent = core::mem::take(&mut self.upload);
                let mut data = Vec::new();
                if transfer.ascii {
                    let mut decoder = AsciiDecoder::default();
                    decoder.decode(&sent, &mut data);
                    decoder.finish(&mut data);
                } else {
                    data = sent.clone();
                }
                let mut file = match mode {
                    StoreMode::Replace | StoreMode::Unique => Vec::new(),
                    StoreMode::Append => self.fs.file(path.as_str()).unwrap_or_default().to_vec(),
                    StoreMode::Resume(offset) => {
                        let mut old = self.fs.file(path.as_str()).unwrap_or_default().to_vec();
                        old.truncate(usize::try_from(offset).unwrap_or(usize::MAX));
                        old
                    }
                };
                file.extend_from_slice(&data);
                self.fs.add_file(path.as_str(), &file);
                sent.len() as u64
            }
        };
        Completion::Transfer(TransferEvent::Finished { bytes })
    }
}

/// FNV-1a, 64 bits: the stand-in digest of the in-memory runtime (the
/// engine never computes digests; the host does, with real algorithms).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
