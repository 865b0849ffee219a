//! `ftp-mio`: the FTP server on one mio event loop per thread.

use std::process::ExitCode;

fn main() -> ExitCode {
    ftp_host::daemon::main::<ftp_mio::Mio>()
}
