//! The built `ftp-smol` binary: command line, `--inetd`, the embedded default.

#[test]
fn binary() {
    ftp_tests::binary::check_binary(std::path::Path::new(env!("CARGO_BIN_EXE_ftp-smol")));
}

#[test]
fn killed_during_bucket_uploads() {
    ftp_tests::binary::check_killed_during_bucket_uploads(std::path::Path::new(env!(
        "CARGO_BIN_EXE_ftp-smol"
    )));
}

#[test]
fn sighup_reloads_the_users_file() {
    ftp_tests::binary::check_sighup_reloads_the_users_file(std::path::Path::new(env!(
        "CARGO_BIN_EXE_ftp-smol"
    )));
}

#[test]
fn json_logs() {
    ftp_tests::binary::check_json_logs(std::path::Path::new(env!("CARGO_BIN_EXE_ftp-smol")));
}
