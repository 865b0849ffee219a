//! The built `ftp-smol` binary: command line, `--inetd`, the embedded default,
//! a bucket upload cut by SIGKILL, reload on SIGHUP, JSON logs, systemd
//! (the tests are `ftp_tests::binary_tests!`, the same for both daemons).

ftp_tests::binary_tests!(env!("CARGO_BIN_EXE_ftp-smol"));
