//! A minimal HTTP/1.1 client for the store: unsigned requests on one
//! kept-alive connection, bodies streamed (a 1 GiB object is never held in
//! memory). The store runs without an identity configuration, so it takes
//! unsigned requests.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::S3Error;

/// Read and write timeout of every request.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest header block accepted from the store.
const MAX_HEAD: usize = 64 << 10;

/// One kept-alive connection to the store.
pub struct Http {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Http {
    /// Connects to `addr`.
    pub fn connect(addr: SocketAddr) -> io::Result<Http> {
        let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let _ = stream.set_nodelay(true);
        Ok(Http {
            addr,
            writer: stream.try_clone()?,
            reader: BufReader::with_capacity(256 << 10, stream),
        })
    }

    /// Sends `method path` with a body of `len` bytes written by `body`,
    /// then reads the answer, handing its body to `sink` piece by piece.
    /// Returns the status.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        len: u64,
        body: &mut dyn FnMut(&mut dyn Write) -> io::Result<()>,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u16, S3Error> {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {len}\r\n\r\n",
            self.addr
        );
        let mut out = io::BufWriter::with_capacity(1 << 20, &self.writer);
        out.write_all(head.as_bytes())?;
        body(&mut out)?;
        out.flush()?;
        drop(out);
        self.read_answer(method == "HEAD", sink)
    }

    /// A request without a body; the answer's body is returned whole
    /// (for small answers: listings, errors, the master's status).
    pub fn simple(&mut self, method: &str, path: &str) -> Result<(u16, Vec<u8>), S3Error> {
        let mut got = Vec::new();
        let status = self.request(method, path, 0, &mut |_| Ok(()), &mut |b| {
            got.extend_from_slice(b)
        })?;
        Ok((status, got))
    }

    /// Reads the status line, the headers and the body.
    fn read_answer(
        &mut self,
        head_only: bool,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<u16, S3Error> {
        let mut line = String::new();
        let mut status = None;
        let mut length: Option<u64> = None;
        let mut chunked = false;
        let mut total = 0;
        loop {
            line.clear();
            let n = self.reader.read_line(&mut line)?;
            total += n;
            if n == 0 {
                return Err(S3Error::BadAnswer("connection closed in the header".into()));
            }
            if total > MAX_HEAD {
                return Err(S3Error::BadAnswer("header too long".into()));
            }
            let text = line.trim_end();
            if status.is_none() {
                status = text.split(' ').nth(1).and_then(|s| s.parse::<u16>().ok());
                if status.is_none() {
                    return Err(S3Error::BadAnswer(format!("status line {text:?}")));
                }
                continue;
            }
            if text.is_empty() {
                break;
            }
            if let Some((name, value)) = text.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length =
                        Some(value.parse().map_err(|_| {
                            S3Error::BadAnswer(format!("content-length {value:?}"))
                        })?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        let status = status.unwrap_or(0);
        if head_only || status == 204 || status == 304 {
            return Ok(status);
        }
        if chunked {
            self.read_chunked(sink)?;
        } else {
            self.read_exact_len(length.unwrap_or(0), sink)?;
        }
        Ok(status)
    }

    /// Passes exactly `len` bytes of the body to `sink`.
    fn read_exact_len(&mut self, mut len: u64, sink: &mut dyn FnMut(&[u8])) -> io::Result<()> {
        while len > 0 {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "body cut short",
                ));
            }
            let n = buf.len().min(usize::try_from(len).unwrap_or(usize::MAX));
            sink(&buf[..n]);
            self.reader.consume(n);
            len -= n as u64;
        }
        Ok(())
    }

    /// Passes a chunked body to `sink`.
    fn read_chunked(&mut self, sink: &mut dyn FnMut(&[u8])) -> Result<(), S3Error> {
        let mut line = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line)?;
            let hex = line.trim().split(';').next().unwrap_or_default();
            let size = u64::from_str_radix(hex, 16)
                .map_err(|_| S3Error::BadAnswer(format!("chunk size {hex:?}")))?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if self.reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(());
                    }
                }
            }
            self.read_exact_len(size, sink)?;
            let mut crlf = [0u8; 2];
            self.reader.read_exact(&mut crlf)?;
        }
    }
}
