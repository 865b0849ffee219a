//! RETR of the big file over explicit FTPS (`AUTH TLS`, `PBSZ 0`,
//! `PROT P`) with a rustls client, for the servers that offer TLS.
//!
//! The certificate is made at run time (rcgen) for `localhost` and the
//! client trusts exactly that certificate: no verification is switched
//! off. The data connection resumes the control connection's TLS session
//! (the client config keeps the session tickets), so servers that require
//! reuse (ours and vsftpd by default) accept it.
//!
//! The client is blocking on the calling thread: one transfer, nothing to
//! interleave with.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::checksum::Checksum;
use crate::client::fail;
use crate::scenarios::{Files, Transfer, generator_cpu};
use crate::servers::Server;

/// How long any one read may wait.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// The certificate and key the servers get, and the client that trusts
/// them.
pub struct Certs {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Both in one file, for servers that want that (pure-ftpd).
    pub both: PathBuf,
    client: Arc<ClientConfig>,
}

impl Certs {
    /// Makes a self-signed certificate for `localhost` in `dir`.
    pub fn new(dir: &Path) -> io::Result<Certs> {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()])
            .map_err(|e| fail(format!("rcgen: {e}")))?;
        let (cert, key, both) = (
            dir.join("cert.pem"),
            dir.join("key.pem"),
            dir.join("both.pem"),
        );
        let (cert_pem, key_pem) = (made.cert.pem(), made.key_pair.serialize_pem());
        fs::write(&cert, &cert_pem)?;
        fs::write(&key, &key_pem)?;
        fs::write(&both, format!("{key_pem}{cert_pem}"))?;
        let mut roots = RootCertStore::empty();
        roots
            .add(made.cert.der().clone())
            .map_err(|e| fail(format!("root store: {e}")))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(format!("rustls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Certs {
            cert,
            key,
            both,
            client: Arc::new(client),
        })
    }

    fn connect_tls(&self, tcp: TcpStream) -> io::Result<StreamOwned<ClientConnection, TcpStream>> {
        let name = ServerName::try_from("localhost").map_err(|e| fail(e.to_string()))?;
        let conn = ClientConnection::new(self.client.clone(), name)
            .map_err(|e| fail(format!("rustls: {e}")))?;
        Ok(StreamOwned::new(conn, tcp))
    }
}

/// What the TLS RETR measured, and how the data connection was secured.
pub struct TlsTransfer {
    pub transfer: Transfer,
    /// Protocol version and cipher suite of the data connection.
    pub suite: String,
}

/// A control connection's reply: code and last line.
fn reply(r: &mut impl BufRead) -> io::Result<(u16, String)> {
    let mut first = String::new();
    read_line(r, &mut first)?;
    let code = code_of(&first).ok_or_else(|| fail(format!("bad reply: {first:?}")))?;
    let mut last = first.clone();
    if first.as_bytes().get(3) == Some(&b'-') {
        loop {
            last.clear();
            read_line(r, &mut last)?;
            if code_of(&last) == Some(code) && last.as_bytes().get(3) == Some(&b' ') {
                break;
            }
        }
    }
    Ok((code, last.trim_end().to_owned()))
}

fn read_line(r: &mut impl BufRead, line: &mut String) -> io::Result<()> {
    if r.take(64 * 1024).read_line(line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "control connection closed",
        ));
    }
    Ok(())
}

fn code_of(line: &str) -> Option<u16> {
    line.get(..3)?.parse().ok()
}

/// Sends one command line.
fn send<S: Write>(ctl: &mut BufReader<S>, line: &str) -> io::Result<()> {
    ctl.get_mut().write_all(format!("{line}\r\n").as_bytes())?;
    ctl.get_mut().flush()
}

/// Sends `line` and fails unless the reply has code `want`.
fn command<S: Read + Write>(ctl: &mut BufReader<S>, line: &str, want: u16) -> io::Result<String> {
    let (code, text) = send(ctl, line)
        .and_then(|()| reply(ctl))
        .map_err(|e| fail(format!("{line}: {e}")))?;
    if code != want {
        return Err(fail(format!("{line}: expected {want}, got {text}")));
    }
    Ok(text)
}

/// The port of a 229 reply.
fn epsv_port(text: &str) -> Option<u16> {
    let inner = &text[text.find("(|||")? + 4..];
    inner[..inner.find('|')?].parse().ok()
}

/// RETR of the big file over TLS, checksummed; time from `RETR` to `226`.
pub fn retr_big(server: &Server, files: &Files, certs: &Certs) -> io::Result<TlsTransfer> {
    let tcp = TcpStream::connect(server.addr)?;
    tcp.set_read_timeout(Some(READ_TIMEOUT))?;
    tcp.set_nodelay(true)?;
    let mut plain = BufReader::new(tcp);
    let (code, text) = reply(&mut plain)?;
    if code != 220 {
        return Err(fail(format!("greeting: {text}")));
    }
    command(&mut plain, "AUTH TLS", 234)?;
    let mut ctl = BufReader::new(certs.connect_tls(plain.into_inner())?);
    send(&mut ctl, "USER anonymous")?;
    match reply(&mut ctl)? {
        (230, _) => {}
        (331, _) => {
            command(&mut ctl, "PASS bench@example.org", 230)?;
        }
        (_, text) => return Err(fail(format!("USER: {text}"))),
    }
    command(&mut ctl, "PBSZ 0", 200)?;
    command(&mut ctl, "PROT P", 200)?;
    command(&mut ctl, "TYPE I", 200)?;
    let epsv = command(&mut ctl, "EPSV", 229)?;
    let port = epsv_port(&epsv).ok_or_else(|| fail(format!("bad EPSV reply: {epsv}")))?;
    let data_tcp = TcpStream::connect(SocketAddr::new(server.addr.ip(), port))?;
    data_tcp.set_read_timeout(Some(READ_TIMEOUT))?;

    let (s0, c0, t0) = (server.cpu_secs(), generator_cpu(), Instant::now());
    send(&mut ctl, &format!("RETR {}", files.big_name))?;
    // The data connection is read before the 150: a server may hold its
    // 150 until the data connection's handshake is done, and the
    // handshake needs this side to speak first. Replies wait in the
    // socket meanwhile.
    let mut data = certs.connect_tls(data_tcp)?;
    let mut sum = Checksum::new();
    let mut buf = vec![0u8; 256 << 10];
    let mut bytes = 0u64;
    loop {
        let n = match data.read(&mut buf) {
            Ok(n) => n,
            // A server that closes without close_notify ends the data
            // here too; the byte count and checksum judge it.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(fail(format!("data connection after {bytes} bytes: {e}"))),
        };
        if n == 0 {
            break;
        }
        sum.update(&buf[..n]);
        bytes += n as u64;
    }
    let suite = format!(
        "{:?} {:?}",
        data.conn.protocol_version().map(|v| format!("{v:?}")),
        data.conn.negotiated_cipher_suite().map(|s| s.suite()),
    )
    .replace("Some(", "")
    .replace([')', '"'], "");
    data.conn.send_close_notify();
    let _ = data.conn.complete_io(&mut data.sock);
    drop(data);
    let (code, text) = reply(&mut ctl)?;
    if code != 150 && code != 125 {
        return Err(fail(format!("RETR: {text}")));
    }
    let (code, text) = reply(&mut ctl)?;
    if code != 226 && code != 250 {
        return Err(fail(format!("end of RETR: {text}")));
    }
    let secs = t0.elapsed().as_secs_f64();
    let server_cpu = server.cpu_secs() - s0;
    let client_cpu = generator_cpu() - c0;
    let _ = command(&mut ctl, "QUIT", 221);
    if bytes != files.big_len || sum.finish() != files.big_sum {
        return Err(fail(format!(
            "RETR over TLS carried wrong bytes: {bytes} of {} bytes",
            files.big_len
        )));
    }
    Ok(TlsTransfer {
        transfer: Transfer {
            secs,
            bytes,
            server_cpu,
            client_cpu,
        },
        suite,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies() {
        let mut r = BufReader::new(&b"230-hello\r\n more\r\n230 done\r\n229 x (|||4242|)\r\n"[..]);
        assert_eq!(reply(&mut r).unwrap(), (230, "230 done".into()));
        let (code, text) = reply(&mut r).unwrap();
        assert_eq!((code, epsv_port(&text)), (229, Some(4242)));
        assert!(reply(&mut r).is_err());
    }
}
