//! The built `ftp-smol` binary: command line, `--inetd`, the embedded default,
//! systemd.

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

/// The built binary under systemd's protocols (`ftp_tests::systemd`).
mod systemd {
    use std::path::Path;

    fn bin() -> &'static Path {
        Path::new(env!("CARGO_BIN_EXE_ftp-smol"))
    }

    #[test]
    fn socket_activation() {
        ftp_tests::systemd::check_socket_activation(bin());
    }

    #[test]
    fn socket_activation_implicit_tls() {
        ftp_tests::systemd::check_socket_activation_implicit_tls(bin());
    }

    #[test]
    fn inetd_activation() {
        ftp_tests::systemd::check_inetd_activation(bin());
    }

    #[test]
    fn bad_activation() {
        ftp_tests::systemd::check_bad_activation(bin());
    }

    #[test]
    fn notify() {
        ftp_tests::systemd::check_notify(bin());
    }
}
