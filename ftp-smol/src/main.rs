//! `ftp-smol`: the FTP server on the smol async runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    ftp_host::daemon::main::<ftp_smol::Smol>()
}
