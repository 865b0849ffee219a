//! `--pam` on the built `ftp-mio` binary, against the machine's PAM stack
//! (`ftp_tests::pam`, the same for both daemons). Compiled only with the
//! `pam` feature: `cargo test -p ftp-mio --features pam --test pam`.
#![cfg(feature = "pam")]

#[test]
fn pam_logins() {
    ftp_tests::pam::check_pam(
        "pam_logins",
        std::path::Path::new(env!("CARGO_BIN_EXE_ftp-mio")),
    );
}
