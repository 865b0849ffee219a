//! The file side of data transfers, shared by both runtimes: a [`Source`]
//! produces what goes out over a data connection (a file or a listing), a
//! [`Sink`] takes in what arrives. Sockets stay in the runtimes.
//!
//! Memory stays bounded: a source produces at most about `max` bytes per
//! [`Source::fill`] call, a listing holds at most [`SORTED_LISTING_LIMIT`]
//! entries at a time, and a sink buffers at most [`SINK_BUFFER`] bytes.
//!
//! Blocking: both sides call the [`Storage`]'s handles, which block. Each
//! side says how long its calls may wait ([`Source::blocking`],
//! [`Sink::blocking`]): for local files ([`Blocking::Bounded`]) they are
//! single `pread`/`write` calls that a non-blocking runtime may make on its
//! loop; a source or sink that answers [`Blocking::MayStall`] (an object
//! store, where a call is a network round trip) must be called off the
//! loop: [`Source::fill`], [`Sink::write`], [`Sink::room`],
//! [`Sink::splice_from`], [`Sink::finish`], [`Sink::abort`] and dropping
//! either. A binary upload to a local file can skip the user-space copy:
//! [`Sink::splice_from`] moves what the socket holds into the file with
//! `splice(2)`.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::os::fd::BorrowedFd;

use ftp_proto::ascii::{AsciiDecoder, AsciiEncoder};
use ftp_proto::{DirEntry, FsError, ListFormat, StoreMode, TransferOp, UnixTime, VirtualPath};

use crate::quota::{Quota, UploadCharge};
use crate::splice::{SpliceError, SplicePipe};
use crate::storage::{
    Blocking, DirReader, ReadFile, Storage, Upload, fs_error_from_io, io_error_from_fs,
};

/// A directory with at most this many entries is listed sorted by name;
/// a larger one is listed in that many first (sorted), then in batches of
/// [`LISTING_BATCH`] (each sorted), so memory stays bounded.
pub const SORTED_LISTING_LIMIT: usize = 1024;

/// Entries read from a large directory at a time.
pub const LISTING_BATCH: usize = 256;

/// Most bytes one `sendfile(2)` call is asked to send. Large: a
/// non-blocking `sendfile` sends what the socket's buffer takes, and each
/// call has a fixed cost (the socket lock, a push of what it queued); at
/// 128 KiB a 1 GiB download took 8,400 calls and twice the CPU of one
/// blocking call for the whole file, at 1 MiB about 1,500.
pub const SENDFILE_CHUNK: usize = 1 << 20;

/// The most bytes a [`Sink`] holds before writing them to the file.
pub const SINK_BUFFER: usize = 512 * 1024;

/// Outgoing data of a transfer: a file (RETR) or a listing (LIST, NLST,
/// MLSD).
#[derive(Debug)]
pub struct Source {
    inner: SourceInner,
}

#[derive(Debug)]
enum SourceInner {
    File {
        file: ReadFile,
        /// Present in ASCII mode.
        ascii: Option<AsciiEncoder>,
        /// Raw bytes read before ASCII conversion.
        raw: Vec<u8>,
    },
    Listing(Box<Listing>),
}

#[derive(Debug)]
struct Listing {
    reader: Box<dyn DirReader>,
    format: ListFormat,
    now: UnixTime,
    /// Entries read but not formatted yet.
    queue: VecDeque<DirEntry>,
    /// Formatted bytes not handed out yet, from `sent` on.
    pending: Vec<u8>,
    sent: usize,
    started: bool,
    reader_done: bool,
}

/// Opens the source of an outgoing transfer and tells how many bytes it
/// will send, when known.
///
/// * [`TransferOp::Retrieve`]: the file from `offset` on; a directory is
///   [`FsError::IsADirectory`]; an offset at or beyond the end sends
///   nothing (as vsftpd does). The size is the bytes after the offset in
///   binary mode, `None` in ASCII mode (the conversion changes it).
/// * [`TransferOp::List`]: the listing of a directory (or of a single
///   file), streamed; size `None`. Listings are sent as formatted (already
///   CRLF), whatever `ascii` says.
/// * [`TransferOp::Store`] is not a source: [`FsError::Other`].
pub fn open_source(
    storage: &dyn Storage,
    op: &TransferOp,
    ascii: bool,
    now: UnixTime,
) -> Result<(Source, Option<u64>), FsError> {
    match op {
        TransferOp::Retrieve { path, offset } => Ok(file_source(
            storage.open_read(path, *offset)?,
            *offset,
            ascii,
        )),
        TransferOp::List { path, format } => {
            let mut reader = storage.read_dir(path)?;
            // A pattern's matches are all found before the listing starts,
            // so that too many is a refusal, not a cut listing.
            let matches = match &format.glob {
                Some(glob) => Some(glob_matches(reader.as_mut(), format, glob.max_matches)?),
                None => None,
            };
            let listing = Listing {
                reader,
                format: format.clone(),
                now,
                reader_done: matches.is_some(),
                started: matches.is_some(),
                queue: matches.unwrap_or_default(),
                pending: Vec::new(),
                sent: 0,
            };
            Ok((
                Source {
                    inner: SourceInner::Listing(Box::new(listing)),
                },
                None,
            ))
        }
        TransferOp::Store { .. } => Err(FsError::Other),
    }
}

/// Every entry `format` lists (with its pattern) from `reader`, sorted by
/// name; [`FsError::TooManyMatches`] past `max`.
fn glob_matches(
    reader: &mut dyn DirReader,
    format: &ListFormat,
    max: usize,
) -> Result<VecDeque<DirEntry>, FsError> {
    let mut found = Vec::new();
    loop {
        let batch = reader.next_batch(LISTING_BATCH)?;
        if batch.is_empty() {
            break;
        }
        found.extend(batch.into_iter().filter(|e| format.includes(&e.name)));
        if found.len() > max {
            return Err(FsError::TooManyMatches);
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(found.into())
}

/// [`open_source`] for a download, if the storage can open its file
/// without blocking ([`Storage::open_read_cached`]); `None` for anything
/// else, which goes to the worker pool.
pub fn open_source_cached(
    storage: &dyn Storage,
    op: &TransferOp,
    ascii: bool,
) -> Option<Result<(Source, Option<u64>), FsError>> {
    let TransferOp::Retrieve { path, offset } = op else {
        return None;
    };
    Some(
        storage
            .open_read_cached(path, *offset)?
            .map(|file| file_source(file, *offset, ascii)),
    )
}

/// The source of a download of `file` from `offset` on, with its size
/// (binary mode only: ASCII mode changes the length).
fn file_source(file: ReadFile, offset: u64, ascii: bool) -> (Source, Option<u64>) {
    let size = (!ascii).then(|| file.size().saturating_sub(offset));
    let inner = SourceInner::File {
        file,
        ascii: ascii.then(AsciiEncoder::default),
        raw: Vec::new(),
    };
    (Source { inner }, size)
}

impl Source {
    /// Appends up to about `max` bytes (`max` 0 counts as 1; ASCII
    /// conversion may exceed it slightly) to `buf` and returns how many were
    /// appended; `Ok(0)` means the end.
    ///
    /// File errors come as [`io::Error`]s; get the client's view with
    /// [`crate::storage::fs_error_from_io`].
    pub fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let max = max.max(1);
        match &mut self.inner {
            SourceInner::File {
                file, ascii: None, ..
            } => {
                let start = buf.len();
                buf.resize(start + max, 0);
                match file.read(&mut buf[start..]) {
                    Ok(n) => {
                        buf.truncate(start + n);
                        Ok(n)
                    }
                    Err(e) => {
                        buf.truncate(start);
                        Err(e)
                    }
                }
            }
            SourceInner::File {
                file,
                ascii: Some(encoder),
                raw,
            } => {
                // Every LF may become CRLF: read half of `max`.
                let want = (max / 2).max(1);
                raw.resize(want, 0);
                let n = file.read(&mut raw[..want])?;
                let start = buf.len();
                encoder.encode(&raw[..n], buf);
                Ok(buf.len() - start)
            }
            SourceInner::Listing(listing) => listing.fill(buf, max),
        }
    }

    /// Sends up to `max` bytes of a binary-mode local file straight from the
    /// file to `socket` with `sendfile(2)`.
    ///
    /// Returns `Ok(Some(n))` for `n` bytes sent (`Ok(Some(0))` at the end of
    /// the file), or `Ok(None)` when zero-copy does not apply (ASCII mode, a
    /// listing, a store without local files, or a kernel that refuses) and
    /// the caller must use [`fill`](Self::fill). A full non-blocking socket
    /// gives an error of kind [`io::ErrorKind::WouldBlock`]: wait for
    /// writability and call again. `fill` and `sendfile_to` share one
    /// position, so they may be mixed.
    pub fn sendfile_to(&mut self, socket: BorrowedFd<'_>, max: usize) -> io::Result<Option<usize>> {
        match &mut self.inner {
            SourceInner::File {
                file, ascii: None, ..
            } => file.sendfile_to(socket, max),
            _ => Ok(None),
        }
    }

    /// Whether this source is a listing (rather than a file).
    pub fn is_listing(&self) -> bool {
        matches!(self.inner, SourceInner::Listing(_))
    }

    /// How long [`fill`](Self::fill) and [`sendfile_to`](Self::sendfile_to)
    /// may wait, and so whether an event loop may call them inline
    /// ([`Blocking::Bounded`]: a local file or directory) or must call them
    /// off its loop ([`Blocking::MayStall`]: a store whose reads are
    /// network round trips). Fixed for the life of the source.
    pub fn blocking(&self) -> Blocking {
        match &self.inner {
            SourceInner::File { file, .. } => file.blocking(),
            SourceInner::Listing(listing) => listing.reader.blocking(),
        }
    }
}

impl Listing {
    fn fill(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let start = buf.len();
        loop {
            let room = max - (buf.len() - start);
            if room == 0 {
                break;
            }
            if self.sent < self.pending.len() {
                let take = room.min(self.pending.len() - self.sent);
                buf.extend_from_slice(&self.pending[self.sent..self.sent + take]);
                self.sent += take;
                continue;
            }
            self.pending.clear();
            self.sent = 0;
            if let Some(entry) = self.queue.pop_front() {
                if self.format.includes(&entry.name) {
                    self.format.write_entry(&entry, self.now, &mut self.pending);
                }
                continue;
            }
            if self.reader_done {
                break;
            }
            self.refill().map_err(io_error_from_fs)?;
        }
        Ok(buf.len() - start)
    }

    fn refill(&mut self) -> Result<(), FsError> {
        let mut entries = Vec::new();
        let want = if self.started {
            LISTING_BATCH
        } else {
            SORTED_LISTING_LIMIT
        };
        self.started = true;
        while entries.len() < want {
            let batch = self.reader.next_batch(want - entries.len())?;
            if batch.is_empty() {
                self.reader_done = true;
                break;
            }
            entries.extend(batch);
        }
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        self.queue.extend(entries);
        Ok(())
    }
}

/// Incoming data of a transfer, written to an [`Upload`] through a buffer
/// of at most [`SINK_BUFFER`] bytes.
#[derive(Debug)]
pub struct Sink {
    upload: Upload,
    /// Present in ASCII mode.
    decoder: Option<AsciiDecoder>,
    /// Binary mode: [`SINK_BUFFER`] bytes once used, of which `filled`
    /// hold data. ASCII mode: the decoded bytes (`filled` unused).
    buf: Vec<u8>,
    filled: usize,
    written: u64,
    /// Binary uploads to a local file try [`splice_from`](Sink::splice_from)
    /// until it does not apply; the pipe is made on first use.
    splice: bool,
    pipe: Option<SplicePipe>,
    /// The upload's place in its user's quota, when there is one: every
    /// byte is counted before it is written.
    charge: Option<UploadCharge>,
}

/// Opens the sink of an upload to `path` (for [`StoreMode::Unique`], the
/// directory) and returns it with the name chosen for `STOU` (`None` for
/// the other modes).
pub fn open_sink(
    storage: &dyn Storage,
    path: &VirtualPath,
    mode: StoreMode,
    ascii: bool,
    umask: Option<u32>,
) -> Result<(Sink, Option<String>), FsError> {
    let upload = storage.open_write(path, mode, umask)?;
    let name = matches!(mode, StoreMode::Unique).then(|| upload.name().to_owned());
    Ok((
        Sink {
            upload,
            decoder: ascii.then(AsciiDecoder::default),
            buf: Vec::new(),
            filled: 0,
            written: 0,
            splice: !ascii,
            pipe: None,
            charge: None,
        },
        name,
    ))
}

/// Opens the sink of an upload as [`open_sink`] does, first checking it
/// against the user's quota (`announced`: the size `ALLO` gave), which
/// then counts every byte it writes.
pub fn open_sink_with_quota(
    storage: &dyn Storage,
    path: &VirtualPath,
    mode: StoreMode,
    ascii: bool,
    umask: Option<u32>,
    quota: Option<&Quota>,
    announced: Option<u64>,
) -> Result<(Sink, Option<String>), FsError> {
    let Some(quota) = quota else {
        return open_sink(storage, path, mode, ascii, umask);
    };
    let existing = match mode {
        StoreMode::Unique => None,
        _ => storage
            .stat(path)
            .ok()
            .filter(|m| m.kind == ftp_proto::FileKind::File)
            .map(|m| m.size),
    };
    let charge = quota.begin_upload(mode, existing, announced)?;
    let (mut sink, name) = open_sink(storage, path, mode, ascii, umask)?;
    sink.charge = Some(charge);
    Ok((sink, name))
}

impl Sink {
    /// Takes in bytes from the data connection (converting CRLF to LF in
    /// ASCII mode), writing to the file whenever the buffer is full. After
    /// an error, call [`abort`](Self::abort).
    pub fn write(&mut self, data: &[u8]) -> Result<(), FsError> {
        if self.decoder.is_none() {
            if self.filled + data.len() > SINK_BUFFER {
                self.flush_binary()?;
            }
            if data.len() >= SINK_BUFFER {
                charge(&mut self.charge, data.len())?;
                self.upload.write_all(data)?;
                self.written += data.len() as u64;
            } else {
                let room = self.binary_room();
                room[..data.len()].copy_from_slice(data);
                self.filled += data.len();
            }
            return Ok(());
        }
        let Sink {
            upload,
            decoder: Some(decoder),
            buf,
            written,
            charge: quota,
            ..
        } = self
        else {
            return Ok(());
        };
        for chunk in data.chunks(SINK_BUFFER / 2) {
            decoder.decode(chunk, buf);
            if buf.len() >= SINK_BUFFER / 2 {
                charge(quota, buf.len())?;
                flush(upload, buf, written)?;
            }
        }
        Ok(())
    }

    /// Binary mode: the free part of the buffer, to read the data
    /// connection straight into (one copy less than [`write`](Self::write));
    /// then [`commit`](Self::commit) what was read. A full buffer is
    /// written to the file first. `None` in ASCII mode, where bytes go
    /// through the decoder: use `write`.
    pub fn room(&mut self) -> Result<Option<&mut [u8]>, FsError> {
        if self.decoder.is_some() {
            return Ok(None);
        }
        if self.filled == SINK_BUFFER {
            self.flush_binary()?;
        }
        Ok(Some(self.binary_room()))
    }

    /// Binary mode on a local file: moves up to `max` bytes that the data
    /// connection `socket` has received straight into the file with
    /// `splice(2)`, without copying them through user space.
    ///
    /// `Ok(None)` means this does not apply (ASCII mode, a store without
    /// local files, a socket or file system the kernel cannot splice): read
    /// into [`room`](Self::room) instead, from then on. Otherwise
    /// `Ok(Some(r))` carries the socket side's result: `Ok(0)` when the
    /// peer closed, an error of kind [`io::ErrorKind::WouldBlock`] when no
    /// data is waiting. `Err` is a failure to write the file.
    pub fn splice_from(
        &mut self,
        socket: BorrowedFd<'_>,
        max: usize,
    ) -> Result<Option<io::Result<usize>>, FsError> {
        if !self.splice {
            return Ok(None);
        }
        self.flush_binary()?;
        if self.pipe.is_none() && self.upload.local_file().is_some() {
            self.pipe = SplicePipe::new().ok();
        }
        let max = match &self.charge {
            Some(charge) => usize::try_from(charge.room())
                .unwrap_or(usize::MAX)
                .min(max),
            None => max,
        };
        let (Some(file), Some(pipe), true) = (self.upload.local_file(), &mut self.pipe, max > 0)
        else {
            // Without room left, the buffered path finds out whether more
            // data comes (and refuses it).
            self.splice = false;
            return Ok(None);
        };
        match pipe.receive(socket, file, max) {
            Ok(n) => {
                if let Some(charge) = &mut self.charge {
                    charge.charge_written(n as u64);
                }
                self.written += n as u64;
                Ok(Some(Ok(n)))
            }
            Err(SpliceError::Socket(e)) => Ok(Some(Err(e))),
            Err(SpliceError::File(e)) => Err(fs_error_from_io(&e)),
            Err(SpliceError::Unsupported) => {
                self.splice = false;
                self.pipe = None;
                Ok(None)
            }
        }
    }

    /// How long [`write`](Self::write), [`room`](Self::room) (which may
    /// write a full buffer), [`splice_from`](Self::splice_from),
    /// [`finish`](Self::finish) and [`abort`](Self::abort) (or the drop)
    /// may wait, and so whether an event loop may call them inline
    /// ([`Blocking::Bounded`]: a local file) or must call them off its loop
    /// ([`Blocking::MayStall`]: a store whose writes are network round
    /// trips). Fixed for the life of the sink.
    pub fn blocking(&self) -> Blocking {
        self.upload.blocking()
    }

    /// Counts `n` bytes read into [`room`](Self::room) as data.
    pub fn commit(&mut self, n: usize) {
        self.filled = (self.filled + n).min(self.buf.len());
    }

    /// The free part of the binary buffer, allocated on first use.
    fn binary_room(&mut self) -> &mut [u8] {
        if self.buf.len() != SINK_BUFFER {
            self.buf = vec![0; SINK_BUFFER];
        }
        &mut self.buf[self.filled..]
    }

    /// Writes the binary buffer's data to the file.
    fn flush_binary(&mut self) -> Result<(), FsError> {
        if self.filled > 0 {
            charge(&mut self.charge, self.filled)?;
            self.upload.write_all(&self.buf[..self.filled])?;
            self.written += self.filled as u64;
            self.filled = 0;
        }
        Ok(())
    }

    /// Bytes written to the file so far (not counting the buffer).
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The end of the data: writes what is buffered (and a CR held back in
    /// ASCII mode), commits the upload and returns the bytes written to the
    /// file.
    pub fn finish(mut self) -> Result<u64, FsError> {
        if let Some(decoder) = &mut self.decoder {
            decoder.finish(&mut self.buf);
            charge(&mut self.charge, self.buf.len())?;
            flush(&mut self.upload, &mut self.buf, &mut self.written)?;
        } else {
            self.flush_binary()?;
        }
        let charge = self.charge.take();
        self.upload.commit()?;
        if let Some(charge) = charge {
            charge.settle(true);
        }
        Ok(self.written)
    }

    /// Gives the upload up (see [`Upload::abort`]).
    pub fn abort(mut self) {
        if let Some(charge) = self.charge.take() {
            charge.settle(false);
        }
        self.upload.abort();
    }
}

/// Counts `n` bytes about to be written against the quota, if any.
fn charge(quota: &mut Option<UploadCharge>, n: usize) -> Result<(), FsError> {
    match quota {
        Some(q) => q.charge(n as u64),
        None => Ok(()),
    }
}

fn flush(upload: &mut Upload, buf: &mut Vec<u8>, written: &mut u64) -> Result<(), FsError> {
    if !buf.is_empty() {
        upload.write_all(buf)?;
        *written += buf.len() as u64;
        buf.clear();
    }
    Ok(())
}

/// Whether an error of [`Source::sendfile_to`] came from the socket (the
/// data connection broke) rather than from the file.
pub fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::TimedOut
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable
            | io::ErrorKind::NetworkDown
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::LocalFs;
    use ftp_proto::ListStyle;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    fn vp(s: &str) -> VirtualPath {
        VirtualPath::root().resolve(s).unwrap()
    }

    fn setup() -> (tempfile::TempDir, LocalFs) {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("digits"), b"0123456789").unwrap();
        std::fs::write(tmp.path().join("text"), b"one\ntwo\r\nthree\n").unwrap();
        std::fs::create_dir(tmp.path().join("dir")).unwrap();
        let fs = LocalFs::open(tmp.path()).unwrap();
        (tmp, fs)
    }

    fn drain(source: &mut Source, max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let before = out.len();
            let n = source.fill(&mut out, max).unwrap();
            assert_eq!(out.len() - before, n);
            assert!(n <= max.max(1) * 2);
            if n == 0 {
                return out;
            }
        }
    }

    fn retrieve(fs: &LocalFs, path: &str, offset: u64, ascii: bool) -> (Vec<u8>, Option<u64>) {
        let op = TransferOp::Retrieve {
            path: vp(path),
            offset,
        };
        let (mut source, size) = open_source(fs, &op, ascii, UnixTime(0)).unwrap();
        assert!(!source.is_listing());
        (drain(&mut source, 3), size)
    }

    #[test]
    fn retrieve_with_offset() {
        let (_tmp, fs) = setup();
        assert_eq!(
            retrieve(&fs, "/digits", 0, false),
            (b"0123456789".to_vec(), Some(10))
        );
        assert_eq!(
            retrieve(&fs, "/digits", 4, false),
            (b"456789".to_vec(), Some(6))
        );
        assert_eq!(retrieve(&fs, "/digits", 10, false), (Vec::new(), Some(0)));
        assert_eq!(retrieve(&fs, "/digits", 99, false), (Vec::new(), Some(0)));
        let op = TransferOp::Retrieve {
            path: vp("/dir"),
            offset: 0,
        };
        assert_eq!(
            open_source(&fs, &op, false, UnixTime(0)).unwrap_err(),
            FsError::IsADirectory
        );
        let op = TransferOp::Store {
            path: vp("/x"),
            mode: StoreMode::Replace,
            size: None,
            umask: 0o022,
        };
        assert_eq!(
            open_source(&fs, &op, false, UnixTime(0)).unwrap_err(),
            FsError::Other
        );
    }

    /// An object of a store that says nothing about blocking.
    #[derive(Debug)]
    struct Remote(&'static [u8]);

    impl crate::storage::ReadObject for Remote {
        fn size(&self) -> u64 {
            self.0.len() as u64
        }

        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn local_sides_are_bounded_and_other_stores_may_stall() {
        let (_tmp, fs) = setup();
        let op = TransferOp::Retrieve {
            path: vp("/digits"),
            offset: 0,
        };
        let (source, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        assert_eq!(source.blocking(), Blocking::Bounded);
        let op = TransferOp::List {
            path: vp("/dir"),
            format: ListFormat {
                style: ListStyle::Names,
                show_hidden: false,
                writable: false,
                glob: None,
            },
        };
        let (listing, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        assert_eq!(listing.blocking(), Blocking::Bounded);
        let (sink, _) = open_sink(&fs, &vp("/up"), StoreMode::Replace, false, None).unwrap();
        assert_eq!(sink.blocking(), Blocking::Bounded);
        sink.abort();
        // A store that does not say is kept off the loop.
        let (mut remote, size) =
            file_source(ReadFile::from_object(Box::new(Remote(b"abc"))), 0, false);
        assert_eq!(size, Some(3));
        assert_eq!(remote.blocking(), Blocking::MayStall);
        assert!(remote.blocking().may_stall());
        assert_eq!(
            remote.sendfile_to(std::io::stdout().as_fd(), 10).unwrap(),
            None
        );
        assert_eq!(drain(&mut remote, 2), b"abc");
    }

    #[test]
    fn retrieve_ascii() {
        let (_tmp, fs) = setup();
        let (data, size) = retrieve(&fs, "/text", 0, true);
        assert_eq!(data, b"one\r\ntwo\r\nthree\r\n");
        assert_eq!(size, None);
    }

    fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
        let text = bytes.strip_suffix(b"\r\n").unwrap_or(bytes);
        let mut lines: Vec<Vec<u8>> = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l).to_vec())
            .collect();
        if bytes.is_empty() {
            lines.clear();
        }
        lines
    }

    #[test]
    fn listing_streams_every_entry() {
        let (tmp, fs) = setup();
        for i in 0..1500 {
            std::fs::write(tmp.path().join("dir").join(format!("file-{i:04}")), b"").unwrap();
        }
        std::fs::write(tmp.path().join("dir/.hidden"), b"").unwrap();
        let format = ListFormat {
            style: ListStyle::Long,
            show_hidden: false,
            writable: false,
            glob: None,
        };
        let op = TransferOp::List {
            path: vp("/dir"),
            format: format.clone(),
        };
        let now = UnixTime(1_800_000_000);
        let (mut source, size) = open_source(&fs, &op, false, now).unwrap();
        assert!(source.is_listing());
        assert_eq!(size, None);
        assert_eq!(
            source.sendfile_to(std::io::stdout().as_fd(), 10).unwrap(),
            None
        );
        let out = drain(&mut source, 1000);
        // Exactly the lines `write_entry` makes for the included entries.
        let mut expected = Vec::new();
        for entry in crate::exec::read_entries(&fs, &vp("/dir"), usize::MAX).unwrap() {
            if format.includes(&entry.name) {
                format.write_entry(&entry, now, &mut expected);
            }
        }
        assert!(out.ends_with(b"\r\n"));
        let mut got = lines(&out);
        let mut want = lines(&expected);
        assert_eq!(want.len(), 1500);
        got.sort();
        want.sort();
        assert_eq!(got, want);
        assert!(!String::from_utf8_lossy(&out).contains(".hidden"));
    }

    #[test]
    fn small_listing_is_sorted() {
        let (tmp, fs) = setup();
        for name in ["m", "b", "z", "a", "q"] {
            std::fs::write(tmp.path().join("dir").join(name), b"").unwrap();
        }
        let format = ListFormat {
            style: ListStyle::Names,
            show_hidden: false,
            writable: false,
            glob: None,
        };
        let op = TransferOp::List {
            path: vp("/dir"),
            format: format.clone(),
        };
        let (mut source, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        let out = drain(&mut source, 1);
        let mut expected = Vec::new();
        for entry in crate::exec::read_entries(&fs, &vp("/dir"), 100).unwrap() {
            format.write_entry(&entry, UnixTime(0), &mut expected);
        }
        assert_eq!(out, expected);
    }

    #[test]
    fn listing_of_a_file_and_of_nothing() {
        let (_tmp, fs) = setup();
        let format = ListFormat {
            style: ListStyle::Names,
            show_hidden: true,
            writable: false,
            glob: None,
        };
        let op = TransferOp::List {
            path: vp("/digits"),
            format: format.clone(),
        };
        let (mut source, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        let out = drain(&mut source, 4096);
        assert!(String::from_utf8_lossy(&out).contains("digits"));
        let op = TransferOp::List {
            path: vp("/dir"),
            format: format.clone(),
        };
        let (mut source, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        assert!(drain(&mut source, 4096).is_empty());
        let op = TransferOp::List {
            path: vp("/missing"),
            format,
        };
        assert_eq!(
            open_source(&fs, &op, false, UnixTime(0)).unwrap_err(),
            FsError::NotFound
        );
    }

    #[test]
    fn sendfile_gives_identical_bytes() {
        let (tmp, fs) = setup();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        std::fs::write(tmp.path().join("big"), &data).unwrap();
        let (mut tx, mut rx) = UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            rx.read_to_end(&mut got).unwrap();
            got
        });
        let op = TransferOp::Retrieve {
            path: vp("/big"),
            offset: 1000,
        };
        let (mut source, size) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        assert_eq!(size, Some(data.len() as u64 - 1000));
        // Mix the two ways: they share one position.
        let mut first = Vec::new();
        source.fill(&mut first, 500).unwrap();
        tx.write_all(&first).unwrap();
        let mut total = first.len();
        loop {
            match source.sendfile_to(tx.as_fd(), 65536).unwrap() {
                Some(0) => break,
                Some(n) => total += n,
                None => panic!("sendfile should apply to a binary local file"),
            }
        }
        drop(tx);
        assert_eq!(total, data.len() - 1000);
        assert_eq!(reader.join().unwrap(), &data[1000..]);
    }

    #[test]
    fn sendfile_would_block_passes_through() {
        let (tmp, fs) = setup();
        std::fs::write(tmp.path().join("big"), vec![7u8; 8 << 20]).unwrap();
        let (tx, _rx) = UnixStream::pair().unwrap();
        tx.set_nonblocking(true).unwrap();
        let op = TransferOp::Retrieve {
            path: vp("/big"),
            offset: 0,
        };
        let (mut source, _) = open_source(&fs, &op, false, UnixTime(0)).unwrap();
        let mut saw_would_block = false;
        for _ in 0..10_000 {
            match source.sendfile_to(tx.as_fd(), 1 << 20) {
                Ok(Some(n)) => assert!(n > 0),
                Ok(None) => panic!("sendfile should apply"),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
                    saw_would_block = true;
                    break;
                }
            }
        }
        assert!(saw_would_block);
        let op = TransferOp::Retrieve {
            path: vp("/big"),
            offset: 0,
        };
        let (mut ascii, _) = open_source(&fs, &op, true, UnixTime(0)).unwrap();
        assert_eq!(ascii.sendfile_to(tx.as_fd(), 10).unwrap(), None);
    }

    fn store(
        fs: &LocalFs,
        path: &str,
        mode: StoreMode,
        ascii: bool,
        parts: &[&[u8]],
    ) -> (u64, Option<String>) {
        let (mut sink, name) = open_sink(fs, &vp(path), mode, ascii, None).unwrap();
        for part in parts {
            sink.write(part).unwrap();
        }
        (sink.finish().unwrap(), name)
    }

    #[test]
    fn sink_modes() {
        let (tmp, fs) = setup();
        let big = vec![b'z'; SINK_BUFFER * 2 + 17];
        let (n, name) = store(
            &fs,
            "/new",
            StoreMode::Replace,
            false,
            &[b"ab", &big, b"cd"],
        );
        assert_eq!(name, None);
        assert_eq!(n, big.len() as u64 + 4);
        let got = std::fs::read(tmp.path().join("new")).unwrap();
        assert_eq!(&got[..2], b"ab");
        assert_eq!(&got[got.len() - 2..], b"cd");
        assert_eq!(got.len(), big.len() + 4);
        store(&fs, "/digits", StoreMode::Append, false, &[b"AB"]);
        assert_eq!(
            std::fs::read(tmp.path().join("digits")).unwrap(),
            b"0123456789AB"
        );
        store(&fs, "/digits", StoreMode::Resume(3), false, &[b"xyz"]);
        assert_eq!(std::fs::read(tmp.path().join("digits")).unwrap(), b"012xyz");
        let (n, name) = store(&fs, "/dir", StoreMode::Unique, false, &[b"u"]);
        assert_eq!(n, 1);
        let name = name.unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("dir").join(&name)).unwrap(),
            b"u"
        );
    }

    #[test]
    fn sink_room_takes_reads_in_place_mixed_with_writes() {
        let (tmp, fs) = setup();
        let (mut sink, _) =
            open_sink(&fs, &vp("/direct"), StoreMode::Replace, false, None).unwrap();
        let mut expected = Vec::new();
        let mut next = 0u8;
        // Reads of odd sizes that cross the buffer's end several times,
        // with a plain write in between.
        for round in 0..40usize {
            let room = sink.room().unwrap().expect("binary mode has room");
            assert!(!room.is_empty());
            let n = room.len().min(17_000 + round * 911);
            for b in &mut room[..n] {
                *b = next;
                next = next.wrapping_add(1);
            }
            expected.extend_from_slice(&room[..n]);
            sink.commit(n);
            if round == 20 {
                sink.write(b"-plain-").unwrap();
                expected.extend_from_slice(b"-plain-");
            }
        }
        assert!(expected.len() > SINK_BUFFER * 2);
        assert_eq!(sink.finish().unwrap(), expected.len() as u64);
        assert_eq!(std::fs::read(tmp.path().join("direct")).unwrap(), expected);
        // ASCII mode has no room: its bytes go through the decoder.
        let (mut ascii, _) = open_sink(&fs, &vp("/a"), StoreMode::Replace, true, None).unwrap();
        assert!(ascii.room().unwrap().is_none());
        ascii.abort();
    }

    #[test]
    fn sink_ascii_and_abort() {
        let (tmp, fs) = setup();
        let (n, _) = store(
            &fs,
            "/t",
            StoreMode::Replace,
            true,
            &[b"a\r", b"\nb\r\n", b"c\r"],
        );
        assert_eq!(std::fs::read(tmp.path().join("t")).unwrap(), b"a\nb\nc\r");
        assert_eq!(n, 6);
        let (mut sink, _) =
            open_sink(&fs, &vp("/digits"), StoreMode::Replace, false, None).unwrap();
        sink.write(b"partial").unwrap();
        sink.abort();
        assert_eq!(
            std::fs::read(tmp.path().join("digits")).unwrap(),
            b"0123456789"
        );
        let (mut sink, _) =
            open_sink(&fs, &vp("/digits"), StoreMode::Replace, false, None).unwrap();
        sink.write(&vec![1u8; SINK_BUFFER + 1]).unwrap();
        assert_eq!(sink.written(), SINK_BUFFER as u64 + 1);
        drop(sink);
        assert_eq!(
            std::fs::read(tmp.path().join("digits")).unwrap(),
            b"0123456789"
        );
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".part-")), "{names:?}");
        assert_eq!(
            open_sink(&fs, &vp("/dir"), StoreMode::Replace, false, None).unwrap_err(),
            FsError::IsADirectory
        );
    }
}
