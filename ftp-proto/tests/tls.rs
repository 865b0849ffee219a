//! FTPS transcripts (RFC 4217): AUTH, PBSZ, PROT, CCC and the policies
//! that require TLS, against the in-memory runtime (which "switches" the
//! connection at once).

use ftp_proto::config::TlsPolicy;
use ftp_proto::memory::{MemoryFs, MemoryRuntime};
use ftp_proto::{Config, Intent};

fn config(tls: TlsPolicy) -> Config {
    Config {
        anonymous: true,
        tls,
        ..Config::default()
    }
}

fn available() -> TlsPolicy {
    TlsPolicy {
        available: true,
        ..TlsPolicy::default()
    }
}

fn required() -> TlsPolicy {
    TlsPolicy {
        available: true,
        control_required: true,
        data_required: true,
        allow_ccc: false,
    }
}

fn tree() -> MemoryFs {
    let mut fs = MemoryFs::new();
    fs.add_file("/readme.txt", b"hello\n");
    fs
}

fn runtime(tls: TlsPolicy) -> MemoryRuntime {
    MemoryRuntime::new(config(tls), tree())
}

/// The transfers the runtime was asked for, by their `tls` flag.
fn transfer_tls(rt: &MemoryRuntime) -> Vec<bool> {
    rt.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Transfer(t) => Some(t.tls),
            _ => None,
        })
        .collect()
}

#[test]
fn auth_tls_upgrades_then_pbsz_and_prot() {
    let mut rt = runtime(available());
    assert_eq!(rt.command("AUTH TLS"), "234 Proceed with negotiation.\r\n");
    assert!(rt.intents.contains(&Intent::UpgradeTls));
    assert!(rt.session.is_protected());
    assert_eq!(rt.command("PROT P"), "503 PROT needs PBSZ first.\r\n");
    assert_eq!(rt.command("PBSZ 0"), "200 PBSZ=0\r\n");
    assert_eq!(rt.command("PBSZ 16384"), "200 PBSZ=0\r\n");
    assert_eq!(rt.command("PBSZ x"), "501 PBSZ needs a number.\r\n");
    assert_eq!(rt.command("PROT P"), "200 PROT now Private.\r\n");
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    rt.command("PASV");
    assert!(
        rt.command("RETR readme.txt")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(rt.command("PROT c"), "200 PROT now Clear.\r\n");
    rt.command("PASV");
    assert!(rt.command("LIST").ends_with("226 Directory send OK.\r\n"));
    assert_eq!(transfer_tls(&rt), [true, false]);
    assert_eq!(
        rt.command("PROT S"),
        "536 PROT level not supported; use C or P.\r\n"
    );
    assert_eq!(
        rt.command("PROT E"),
        "536 PROT level not supported; use C or P.\r\n"
    );
    assert_eq!(
        rt.command("PROT X"),
        "504 Unknown PROT level; use C or P.\r\n"
    );
    assert_eq!(rt.command("AUTH TLS"), "503 Already using TLS.\r\n");
}

#[test]
fn auth_mechanisms() {
    for mechanism in ["TLS", "tls", "SSL", "TLS-C", "tls-p"] {
        let mut rt = runtime(available());
        let line = format!("AUTH {mechanism}");
        assert_eq!(rt.command(&line), "234 Proceed with negotiation.\r\n");
    }
    let mut rt = runtime(available());
    assert_eq!(
        rt.command("AUTH KERBEROS_V4"),
        "504 Unknown AUTH mechanism; use AUTH TLS.\r\n"
    );
    assert!(!rt.session.is_protected());
    assert!(!rt.intents.contains(&Intent::UpgradeTls));
}

#[test]
fn commands_sent_in_clear_behind_auth_are_dropped() {
    let mut rt = runtime(available());
    let before = rt.received.len();
    rt.send(b"AUTH TLS\r\nUSER alice\r\nPASS secret\r\n");
    assert_eq!(
        String::from_utf8_lossy(&rt.received[before..]),
        "234 Proceed with negotiation.\r\n"
    );
    assert_eq!(rt.session.user(), None);
    // What comes after the switch is answered.
    assert_eq!(
        rt.command("USER alice"),
        "331 Please specify the password.\r\n"
    );
}

#[test]
fn without_tls_nothing_changes() {
    let mut rt = runtime(TlsPolicy::default());
    assert_eq!(
        rt.command("AUTH TLS"),
        "502 TLS is not available on this server.\r\n"
    );
    assert_eq!(
        rt.command("PBSZ 0"),
        "503 Security data exchange not completed (no AUTH).\r\n"
    );
    assert_eq!(
        rt.command("PROT P"),
        "503 Security data exchange not completed (no AUTH).\r\n"
    );
    assert_eq!(
        rt.command("CCC"),
        "533 Command channel is not protected.\r\n"
    );
    let feat = rt.command("FEAT");
    assert!(!feat.contains("AUTH") && !feat.contains("PBSZ"), "{feat}");
}

#[test]
fn feat_lists_tls_when_available() {
    let mut rt = runtime(available());
    let feat = rt.command("FEAT");
    for line in [" AUTH TLS\r\n", " PBSZ\r\n", " PROT\r\n", " EPSV\r\n"] {
        assert!(feat.contains(line), "FEAT lacks {line:?}: {feat}");
    }
    assert!(feat.starts_with("211-Features:\r\n AUTH TLS\r\n"), "{feat}");
}

#[test]
fn required_tls_refuses_clear_logins_but_not_anonymous() {
    let mut rt = runtime(required());
    assert_eq!(
        rt.command("USER alice"),
        "530 Non-anonymous sessions must use encryption.\r\n"
    );
    assert_eq!(rt.command("PASS secret"), "503 Login with USER first.\r\n");
    assert_eq!(rt.session.user(), None);
    // Anonymous sessions have no secret to protect.
    rt.command("USER anonymous");
    assert_eq!(rt.command("PASS me@"), "230 Login successful.\r\n");
    rt.command("PASV");
    assert!(rt.command("LIST").ends_with("226 Directory send OK.\r\n"));
}

#[test]
fn required_tls_refuses_clear_data() {
    let mut rt = runtime(required());
    rt.command("AUTH TLS");
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    rt.command("PASV");
    assert_eq!(
        rt.command("LIST"),
        "521 Data connections must be encrypted.\r\n"
    );
    rt.command("PBSZ 0");
    rt.command("PROT P");
    // The passive listener was kept for the retry.
    assert!(rt.command("LIST").ends_with("226 Directory send OK.\r\n"));
    assert_eq!(transfer_tls(&rt), [true]);
}

#[test]
fn ccc_needs_permission() {
    let mut rt = runtime(available());
    rt.command("AUTH TLS");
    rt.command("USER alice");
    rt.command("PASS secret");
    assert_eq!(
        rt.command("CCC"),
        "534 CCC is not allowed on this server.\r\n"
    );
    assert!(rt.session.is_protected());

    let mut rt = runtime(TlsPolicy {
        allow_ccc: true,
        ..available()
    });
    rt.command("AUTH TLS");
    assert_eq!(
        rt.command("CCC"),
        "530 Please login with USER and PASS.\r\n"
    );
    rt.command("USER alice");
    rt.command("PASS secret");
    assert_eq!(
        rt.command("CCC"),
        "200 Control connection cleared; going on in clear.\r\n"
    );
    assert!(rt.intents.contains(&Intent::ClearTls));
    assert!(!rt.session.is_protected());
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn implicit_sessions_start_protected() {
    let mut rt = runtime(required());
    rt.session.mark_protected();
    assert!(rt.session.is_protected());
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    // Data is protected without PBSZ/PROT.
    rt.command("PASV");
    assert!(rt.command("LIST").ends_with("226 Directory send OK.\r\n"));
    assert_eq!(transfer_tls(&rt), [true]);
    assert_eq!(rt.command("PBSZ 0"), "200 PBSZ=0\r\n");
    assert_eq!(rt.command("PROT C"), "200 PROT now Clear.\r\n");
    rt.command("PASV");
    assert_eq!(
        rt.command("LIST"),
        "521 Data connections must be encrypted.\r\n"
    );
}

#[test]
fn failed_upgrade_closes() {
    use ftp_proto::{Completion, FsError, Output};
    let mut rt = runtime(available());
    // Drive the session by hand: the runtime could not start TLS.
    let now = rt.now;
    rt.session.handle_input(now, b"AUTH TLS\r\n");
    let mut upgrade = None;
    while let Some(output) = rt.session.poll_output() {
        if let Output::Intent(id, Intent::UpgradeTls) = output {
            upgrade = Some(id);
        }
    }
    let id = upgrade.expect("UpgradeTls");
    rt.session
        .handle_completion(now, id, Completion::Done(Err(FsError::Other)));
    assert_eq!(rt.session.poll_output(), Some(Output::Close));
    assert!(rt.session.is_closing());
}
