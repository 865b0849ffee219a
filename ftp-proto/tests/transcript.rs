//! Transcript tests: client lines in, exact replies out, against the
//! in-memory runtime.

use core::time::Duration;

use ftp_proto::memory::{MemoryFs, MemoryRuntime, TransferMode};
use ftp_proto::{Config, Intent};

fn config() -> Config {
    Config {
        anonymous: true,
        login_fail_delay: Duration::from_millis(500),
        ..Config::default()
    }
}

fn tree() -> MemoryFs {
    let mut fs = MemoryFs::new();
    fs.add_file("/pub/readme.txt", b"hello\nworld\n");
    fs.add_file("/pub/my file.bin", &[0, 1, 2, 3, 255]);
    fs.add_dir("/incoming");
    fs.add_file("/.hidden", b"secret");
    fs
}

/// A session logged in as `alice` (who may write).
fn alice() -> MemoryRuntime {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    rt
}

/// A session logged in anonymously (read-only).
fn anonymous() -> MemoryRuntime {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.command("USER anonymous");
    assert_eq!(rt.command("PASS guest@"), "230 Login successful.\r\n");
    rt
}

#[test]
fn seed_transcript() {
    let mut rt = MemoryRuntime::new(config(), tree());
    assert_eq!(
        String::from_utf8_lossy(&rt.received),
        "220 Service ready.\r\n"
    );
    assert_eq!(
        rt.command("USER alice"),
        "331 Please specify the password.\r\n"
    );
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    let feat = rt.command("FEAT");
    assert!(feat.starts_with("211-Features:\r\n"), "{feat}");
    for f in [
        " EPSV\r\n",
        " PASV\r\n",
        " REST STREAM\r\n",
        " MDTM\r\n",
        " SIZE\r\n",
        " UTF8\r\n",
    ] {
        assert!(feat.contains(f), "FEAT lacks {f:?}: {feat}");
    }
    assert!(feat.ends_with("211 End\r\n"));
    assert_eq!(
        rt.command("CWD pub"),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(
        rt.command("PWD"),
        "257 \"/pub\" is the current directory\r\n"
    );
    assert_eq!(rt.command("TYPE A"), "200 Switching to ASCII mode.\r\n");
    assert_eq!(
        rt.command("PASV"),
        "227 Entering Passive Mode (127,0,0,1,195,81).\r\n"
    );
    assert_eq!(
        rt.command("LIST"),
        "150 Here comes the directory listing.\r\n226 Directory send OK.\r\n"
    );
    let listing = String::from_utf8_lossy(&rt.downloaded).into_owned();
    assert!(listing.contains(" my file.bin\r\n"), "{listing}");
    assert!(listing.contains(" readme.txt\r\n"), "{listing}");
    assert!(listing.starts_with("-rw-r--r--"), "{listing}");
    rt.advance(Duration::from_secs(299));
    assert!(!rt.closed);
    let before = rt.received.len();
    rt.advance(Duration::from_secs(2));
    assert_eq!(&rt.received[before..], b"421 Timeout.\r\n");
    assert!(rt.closed);
}

#[test]
fn commands_need_login() {
    let mut rt = MemoryRuntime::new(config(), tree());
    for line in [
        "CWD /",
        "PWD",
        "LIST",
        "RETR x",
        "PASV",
        "PORT 127,0,0,1,4,1",
        "MKD x",
        "SIZE x",
    ] {
        assert_eq!(
            rt.command(line),
            "530 Please login with USER and PASS.\r\n",
            "{line}"
        );
    }
    assert!(
        rt.intents.is_empty(),
        "no intent before login: {:?}",
        rt.intents
    );
    assert_eq!(rt.command("SYST"), "215 UNIX Type: L8\r\n");
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn pass_without_user_and_bad_password() {
    let mut rt = MemoryRuntime::new(config(), tree());
    assert_eq!(rt.command("PASS x"), "503 Login with USER first.\r\n");
    rt.command("USER alice");
    assert_eq!(rt.command("PASS wrong"), "", "the failure reply is delayed");
    rt.advance(Duration::from_millis(499));
    assert!(!rt.received.ends_with(b"Login incorrect.\r\n"));
    rt.advance(Duration::from_millis(1));
    assert!(rt.received.ends_with(b"530 Login incorrect.\r\n"));
    // The second failure waits twice as long; the third closes the session.
    rt.command("USER alice");
    rt.command("PASS wrong");
    rt.advance(Duration::from_millis(999));
    assert!(
        !rt.received
            .ends_with(b"530 Login incorrect.\r\n530 Login incorrect.\r\n")
    );
    rt.advance(Duration::from_millis(1));
    rt.command("USER alice");
    rt.command("PASS wrong");
    rt.advance(Duration::from_secs(2));
    assert!(
        rt.received
            .ends_with(b"421 Too many failed login attempts, closing control connection.\r\n")
    );
    assert!(rt.closed);
}

#[test]
fn commands_queued_during_login_delay_wait() {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.send(b"USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\n");
    assert!(
        String::from_utf8_lossy(&rt.received).ends_with("331 Please specify the password.\r\n")
    );
    rt.advance(Duration::from_secs(1));
    assert!(String::from_utf8_lossy(&rt.received).ends_with(
        "530 Login incorrect.\r\n331 Please specify the password.\r\n230 Login successful.\r\n"
    ));
}

#[test]
fn anonymous_is_read_only() {
    let mut rt = anonymous();
    assert_eq!(rt.command("MKD new"), "550 Permission denied.\r\n");
    assert_eq!(
        rt.command("DELE pub/readme.txt"),
        "550 Permission denied.\r\n"
    );
    assert_eq!(
        rt.command("RNFR pub/readme.txt"),
        "550 Permission denied.\r\n"
    );
    rt.command("PASV");
    assert_eq!(rt.command("STOR x"), "550 Permission denied.\r\n");
    assert_eq!(rt.command("APPE x"), "550 Permission denied.\r\n");
    assert_eq!(
        rt.command("SITE CHMOD 777 pub"),
        "550 Permission denied.\r\n"
    );
    let writes = rt.intents.iter().any(|i| {
        matches!(
            i,
            Intent::MakeDir { .. }
                | Intent::RemoveDir { .. }
                | Intent::RemoveFile { .. }
                | Intent::Rename { .. }
                | Intent::SetPermissions { .. }
                | Intent::SetModified { .. }
                | Intent::Transfer(ftp_proto::Transfer {
                    op: ftp_proto::TransferOp::Store { .. },
                    ..
                })
        )
    });
    assert!(!writes, "{:?}", rt.intents);
}

#[test]
fn anonymous_refused_when_disabled() {
    let mut rt = MemoryRuntime::new(
        Config {
            anonymous: false,
            login_fail_delay: Duration::ZERO,
            ..config()
        },
        tree(),
    );
    rt.command("USER anonymous");
    assert_eq!(rt.command("PASS x"), "530 Login incorrect.\r\n");
}

#[test]
fn no_login_mode() {
    let mut rt = MemoryRuntime::new(
        Config {
            no_login: true,
            ..config()
        },
        tree(),
    );
    assert_eq!(rt.command("PWD"), "257 \"/\" is the current directory\r\n");
    assert_eq!(rt.command("USER x"), "230 Login successful.\r\n");
    assert_eq!(rt.command("PASS x"), "230 Already logged in.\r\n");
}

#[test]
fn directories() {
    let mut rt = alice();
    assert_eq!(
        rt.command("CWD nowhere"),
        "550 Failed to change directory.\r\n"
    );
    assert_eq!(
        rt.command("CWD pub/readme.txt"),
        "550 Failed to change directory.\r\n"
    );
    assert_eq!(
        rt.command("XCWD /pub"),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(
        rt.command("XPWD"),
        "257 \"/pub\" is the current directory\r\n"
    );
    assert_eq!(
        rt.command("CDUP"),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(
        rt.command("CWD ../../.."),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(rt.command("PWD"), "257 \"/\" is the current directory\r\n");
    assert_eq!(rt.command("MKD new dir"), "257 \"/new dir\" created\r\n");
    assert_eq!(rt.command("XMKD a\"b"), "257 \"/a\"\"b\" created\r\n");
    assert_eq!(
        rt.command("MKD new dir"),
        "550 Create directory operation failed.\r\n"
    );
    assert_eq!(
        rt.command("CWD new dir"),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(
        rt.command("CWD .."),
        "250 Directory successfully changed.\r\n"
    );
    assert_eq!(
        rt.command("RMD pub"),
        "550 Remove directory operation failed.\r\n"
    );
    assert_eq!(
        rt.command("RMD new dir"),
        "250 Remove directory operation successful.\r\n"
    );
    assert_eq!(
        rt.command("XRMD a\"b"),
        "250 Remove directory operation successful.\r\n"
    );
    assert_eq!(rt.fs.get("/new dir"), None);
}

#[test]
fn files_and_rename() {
    let mut rt = alice();
    assert_eq!(rt.command("SIZE pub/readme.txt"), "213 12\r\n");
    assert_eq!(rt.command("SIZE pub"), "550 Could not get file size.\r\n");
    assert_eq!(rt.command("SIZE nope"), "550 Could not get file size.\r\n");
    assert_eq!(rt.command("MDTM pub/readme.txt"), "213 20260921141320\r\n");
    assert_eq!(
        rt.command("MFMT 20200102030405 pub/readme.txt"),
        "213 Modify=20200102030405; modification time set.\r\n"
    );
    assert_eq!(rt.command("MDTM pub/readme.txt"), "213 20200102030405\r\n");
    assert_eq!(rt.command("RNTO x"), "503 RNFR required first.\r\n");
    assert_eq!(rt.command("RNFR nope"), "550 RNFR command failed.\r\n");
    assert_eq!(rt.command("RNFR pub/readme.txt"), "350 Ready for RNTO.\r\n");
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
    assert_eq!(
        rt.command("RNTO x"),
        "503 RNFR required first.\r\n",
        "RNTO only right after RNFR"
    );
    assert_eq!(rt.command("RNFR pub/readme.txt"), "350 Ready for RNTO.\r\n");
    assert_eq!(
        rt.command("RNTO /incoming/read me.txt"),
        "250 Rename successful.\r\n"
    );
    assert_eq!(
        rt.fs.file("/incoming/read me.txt"),
        Some(&b"hello\nworld\n"[..])
    );
    assert_eq!(
        rt.command("DELE /incoming/read me.txt"),
        "250 Delete operation successful.\r\n"
    );
    assert_eq!(
        rt.command("DELE /incoming/read me.txt"),
        "550 Delete operation failed.\r\n"
    );
    assert_eq!(
        rt.command("SITE CHMOD 600 pub/my file.bin"),
        "200 SITE CHMOD command ok.\r\n"
    );
    assert_eq!(
        rt.command("SITE CHMOD 99 x"),
        "501 Syntax error in parameters or arguments.\r\n"
    );
}

#[test]
fn retrieve_binary_ascii_and_rest() {
    let mut rt = alice();
    rt.command("TYPE I");
    rt.command("EPSV");
    assert_eq!(
        rt.command("RETR pub/readme.txt"),
        "150 Opening BINARY mode data connection for /pub/readme.txt (12 bytes).\r\n226 Transfer complete.\r\n"
    );
    assert_eq!(rt.downloaded, b"hello\nworld\n");
    rt.command("TYPE A");
    rt.command("PASV");
    rt.command("RETR pub/readme.txt");
    assert_eq!(rt.downloaded, b"hello\r\nworld\r\n");
    rt.command("TYPE I");
    rt.command("PASV");
    assert_eq!(
        rt.command("REST 6"),
        "350 Restart position accepted (6).\r\n"
    );
    rt.command("RETR pub/readme.txt");
    assert_eq!(rt.downloaded, b"world\n");
    // REST is consumed by the next command, whatever it is.
    rt.command("REST 6");
    rt.command("PASV");
    rt.command("RETR pub/readme.txt");
    assert_eq!(rt.downloaded, b"hello\nworld\n");
}

#[test]
fn transfer_errors() {
    let mut rt = alice();
    assert_eq!(
        rt.command("RETR pub/readme.txt"),
        "425 Use PORT or PASV first.\r\n"
    );
    rt.command("PASV");
    assert_eq!(
        rt.command("RETR nope"),
        "550 Failed to open file: No such file or directory.\r\n"
    );
    // A refused transfer leaves the data channel prepared; one that ran
    // used it up.
    assert!(rt.command("RETR pub/readme.txt").starts_with("150 "));
    assert_eq!(
        rt.command("RETR pub/readme.txt"),
        "425 Use PORT or PASV first.\r\n",
        "PASV is single-use"
    );
    rt.transfer_mode = TransferMode::NoConnection;
    rt.command("PASV");
    rt.command("RETR pub/readme.txt");
    rt.advance(Duration::from_secs(31));
    assert!(
        rt.received
            .ends_with(b"425 Failed to establish connection.\r\n")
    );
}

#[test]
fn store_append_unique_and_resume() {
    let mut rt = alice();
    rt.command("TYPE I");
    rt.command("PASV");
    rt.upload = b"first".to_vec();
    assert_eq!(
        rt.command("STOR incoming/f.txt"),
        "150 Opening BINARY mode data connection for /incoming/f.txt.\r\n226 Transfer complete.\r\n"
    );
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"first"[..]));
    rt.command("PASV");
    rt.upload = b"+more".to_vec();
    rt.command("APPE incoming/f.txt");
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"first+more"[..]));
    rt.command("PASV");
    rt.command("REST 5");
    rt.upload = b"!".to_vec();
    rt.command("STOR incoming/f.txt");
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"first!"[..]));
    rt.command("CWD incoming");
    rt.command("PASV");
    rt.upload = b"u".to_vec();
    assert_eq!(
        rt.command("STOU"),
        "150 FILE: ftp-upload-1\r\n226 Transfer complete.\r\n"
    );
    assert_eq!(rt.fs.file("/incoming/ftp-upload-1"), Some(&b"u"[..]));
    rt.command("TYPE A");
    rt.command("PASV");
    rt.upload = b"a\r\nb\r\n".to_vec();
    rt.command("STOR text.txt");
    assert_eq!(rt.fs.file("/incoming/text.txt"), Some(&b"a\nb\n"[..]));
    rt.command("PASV");
    assert_eq!(
        rt.command("STOR /nowhere/x"),
        "553 Could not create file: No such file or directory.\r\n"
    );
}

/// The sizes the Store intents of `rt` announced, in order.
fn store_sizes(rt: &MemoryRuntime) -> Vec<Option<u64>> {
    rt.intents
        .iter()
        .filter_map(|i| match i {
            Intent::Transfer(ftp_proto::Transfer {
                op: ftp_proto::TransferOp::Store { size, .. },
                ..
            }) => Some(*size),
            _ => None,
        })
        .collect()
}

#[test]
fn allo_announces_the_size_of_the_next_upload_only() {
    let mut rt = alice();
    rt.command("TYPE I");
    rt.upload = b"12345".to_vec();
    // PASV and TYPE may come between ALLO and STOR.
    rt.command("ALLO 5");
    rt.command("PASV");
    rt.command("TYPE I");
    rt.command("STOR incoming/a");
    rt.command("PASV");
    rt.command("STOR incoming/b");
    rt.command("ALLO 9 R 100");
    rt.command("REST 2");
    rt.command("PASV");
    rt.command("STOR incoming/b");
    // A download uses it up.
    rt.command("ALLO 7");
    rt.command("PASV");
    rt.command("RETR incoming/a");
    rt.command("PASV");
    rt.command("APPE incoming/c");
    assert_eq!(store_sizes(&rt), [Some(5), None, Some(9), None]);
}

#[test]
fn abort_during_transfer() {
    let mut rt = alice();
    rt.transfer_mode = TransferMode::Hold;
    rt.command("PASV");
    let r = rt.command("RETR pub/readme.txt");
    assert!(r.starts_with("150 "), "{r}");
    // Commands other than ABOR and STAT wait for the transfer.
    assert_eq!(rt.command("PWD"), "");
    let status = rt.command("STAT");
    assert!(status.starts_with("211-FTP server status:\r\n"), "{status}");
    assert!(status.contains("A data transfer is in progress"));
    // ABOR as ftplib and others send it: Telnet IP, DM, then the line.
    rt.send(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert!(
        String::from_utf8_lossy(&rt.received).ends_with(
            "426 Connection closed; transfer aborted.\r\n226 Abort successful.\r\n257 \"/\" is the current directory\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&rt.received)
    );
    assert_eq!(rt.command("ABOR"), "225 No transfer to ABOR.\r\n");
}

#[test]
fn active_mode_policy() {
    let mut rt = alice();
    assert_eq!(
        rt.command("PORT 127,0,0,1,4,1"),
        "200 PORT command successful. Consider using PASV.\r\n"
    );
    assert_eq!(
        rt.command("PORT 127,0,0,2,4,1"),
        "500 Illegal PORT command.\r\n"
    );
    assert_eq!(
        rt.command("PORT 127,0,0,1,0,80"),
        "500 Illegal PORT command.\r\n"
    );
    assert_eq!(
        rt.command("PORT 1,2,3"),
        "501 Syntax error in parameters or arguments.\r\n"
    );
    assert_eq!(
        rt.command("EPRT |1|127.0.0.1|5000|"),
        "200 EPRT command successful. Consider using EPSV.\r\n"
    );
    assert_eq!(
        rt.command("EPRT |1|10.0.0.1|5000|"),
        "500 Illegal EPRT command.\r\n"
    );
    assert_eq!(
        rt.command("EPRT |2|::1|5000|"),
        "500 Illegal EPRT command.\r\n"
    );
    assert_eq!(
        rt.command("EPRT |3|x|5000|"),
        "522 Network protocol not supported, use (1,2).\r\n"
    );
    let r = rt.command("RETR pub/readme.txt");
    assert!(r.starts_with("150 "), "{r}");
    assert!(rt.intents.iter().any(|i| matches!(i, Intent::Transfer(t) if matches!(t.data, ftp_proto::DataEndpoint::Active { addr } if addr.port() == 5000))));
}

#[test]
fn epsv_forms() {
    let mut rt = alice();
    assert_eq!(
        rt.command("EPSV"),
        "229 Entering Extended Passive Mode (|||50001|)\r\n"
    );
    assert_eq!(
        rt.command("EPSV 1"),
        "229 Entering Extended Passive Mode (|||50002|)\r\n"
    );
    assert_eq!(
        rt.command("EPSV 2"),
        "522 Network protocol not supported, use (1).\r\n"
    );
    assert_eq!(rt.command("EPSV ALL"), "200 EPSV ALL ok.\r\n");
    assert_eq!(
        rt.command("PASV"),
        "503 PASV not allowed after EPSV ALL.\r\n"
    );
    assert_eq!(
        rt.command("PORT 127,0,0,1,4,1"),
        "503 PORT not allowed after EPSV ALL.\r\n"
    );
    assert_eq!(
        rt.command("EPRT |1|127.0.0.1|5000|"),
        "503 PORT not allowed after EPSV ALL.\r\n"
    );
    assert!(rt.command("EPSV").starts_with("229 "), "EPSV still works");
    // REIN forgets EPSV ALL.
    assert_eq!(rt.command("REIN"), "220 Service ready for new user.\r\n");
    rt.command("USER alice");
    rt.command("PASS secret");
    assert!(rt.command("PASV").starts_with("227 "));
    // The listener of an abandoned EPSV is closed when the next one opens.
    let closes = rt
        .intents
        .iter()
        .filter(|i| matches!(i, Intent::ClosePassive { .. }))
        .count();
    assert_eq!(closes, 3);
}

#[test]
fn listings() {
    let mut rt = alice();
    rt.command("PASV");
    rt.command("NLST pub");
    assert_eq!(rt.downloaded, b"my file.bin\r\nreadme.txt\r\n");
    rt.command("PASV");
    rt.command("NLST");
    assert_eq!(rt.downloaded, b"incoming\r\npub\r\n");
    rt.command("PASV");
    rt.command("LIST -a");
    assert!(String::from_utf8_lossy(&rt.downloaded).contains(" .hidden\r\n"));
    rt.command("PASV");
    rt.command("MLSD pub");
    let mlsd = String::from_utf8_lossy(&rt.downloaded).into_owned();
    assert!(
        mlsd.contains("type=file;size=12;modify=20260921141320;perm=adfrw;"),
        "{mlsd}"
    );
    assert!(mlsd.contains("; readme.txt\r\n"), "{mlsd}");
    let mlst = rt.command("MLST pub/readme.txt");
    assert!(
        mlst.starts_with("250-Listing /pub/readme.txt\r\n type=file;size=12;"),
        "{mlst}"
    );
    assert!(mlst.ends_with("; /pub/readme.txt\r\n250 End\r\n"), "{mlst}");
    let stat = rt.command("STAT pub");
    assert!(
        stat.starts_with("213-Status of /pub:\r\n -rw-r--r--"),
        "{stat}"
    );
    assert!(
        stat.ends_with(" readme.txt\r\n213 End of status.\r\n"),
        "{stat}"
    );
}

#[test]
fn informational_commands() {
    let mut rt = alice();
    let help = rt.command("HELP");
    assert!(
        help.starts_with("214-") && help.ends_with("214 Help OK.\r\n"),
        "{help}"
    );
    assert_eq!(rt.command("OPTS UTF8 ON"), "200 Always in UTF8 mode.\r\n");
    assert_eq!(rt.command("OPTS FOO"), "501 Option not understood.\r\n");
    assert_eq!(rt.command("MODE S"), "200 Mode set to S.\r\n");
    assert_eq!(
        rt.command("MODE B"),
        "504 Command not implemented for that parameter.\r\n"
    );
    assert_eq!(rt.command("STRU F"), "200 Structure set to F.\r\n");
    assert_eq!(
        rt.command("STRU R"),
        "504 Command not implemented for that parameter.\r\n"
    );
    assert_eq!(rt.command("TYPE L 8"), "200 Switching to Binary mode.\r\n");
    assert_eq!(rt.command("TYPE A N"), "200 Switching to ASCII mode.\r\n");
    assert_eq!(
        rt.command("TYPE E"),
        "504 Command not implemented for that parameter.\r\n"
    );
    assert_eq!(rt.command("ALLO"), "202 ALLO command ignored.\r\n");
    assert_eq!(rt.command("ALLO 100"), "200 ALLO command successful.\r\n");
    assert_eq!(rt.command("AVBL"), "213 1073741824\r\n");
    assert_eq!(
        rt.command("AVBL pub/readme.txt"),
        "550 Could not get available space: Not a directory.\r\n"
    );
    assert_eq!(rt.command("ACCT x"), "202 ACCT not needed.\r\n");
    assert_eq!(rt.command("SMNT /x"), "502 SMNT not implemented.\r\n");
    assert_eq!(rt.command("CLNT curl"), "200 Noted.\r\n");
    assert_eq!(
        rt.command("HOST example.com"),
        "503 HOST must come before USER.\r\n"
    );
    assert_eq!(
        rt.command("SITE UMASK"),
        "200 Your current UMASK is 022\r\n"
    );
    assert_eq!(
        rt.command("SITE IDLE 60"),
        "200 Maximum idle time set to 60 seconds\r\n"
    );
    assert_eq!(rt.command("SITE BOGUS"), "500 Unknown SITE command.\r\n");
    assert_eq!(rt.command("XYZZY"), "500 Unknown command.\r\n");
    assert_eq!(rt.command("SYST"), "215 UNIX Type: L8\r\n");
    assert_eq!(rt.command("TYPE I"), "200 Switching to Binary mode.\r\n");
    assert_eq!(rt.command("TYPE A"), "200 Switching to ASCII mode.\r\n");
    assert_eq!(
        rt.command("OPTS UTF8 OFF"),
        "504 UTF8 cannot be turned off.\r\n"
    );
    // PBSZ, PROT and CCC without AUTH: tls.rs, without_tls_nothing_changes.
    assert_eq!(
        rt.command("SITE IDLE"),
        "200 Current idle time limit is 60 seconds; max 7200\r\n"
    );
    assert!(
        rt.command("SITE IDLE 5")
            .starts_with("501 Idle time must be between 30")
    );
    assert_eq!(rt.command("ABOR"), "225 No transfer to ABOR.\r\n");
    assert_eq!(
        rt.command("AUTH TLS"),
        "502 TLS is not available on this server.\r\n"
    );
    let status = rt.command("STAT");
    assert!(status.contains(" Logged in as alice\r\n"), "{status}");
    assert_eq!(rt.command("REIN"), "220 Service ready for new user.\r\n");
    assert_eq!(
        rt.command("PWD"),
        "530 Please login with USER and PASS.\r\n"
    );
    assert_eq!(rt.command("QUIT"), "221 Goodbye.\r\n");
    assert!(rt.closed);
}

#[test]
fn host_before_login() {
    let mut rt = MemoryRuntime::new(config(), tree());
    assert_eq!(rt.command("SYST"), "215 UNIX Type: L8\r\n");
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
    assert_eq!(rt.command("HOST ftp.example.com"), "220 Host accepted.\r\n");
    assert_eq!(rt.command("CLNT test-suite 1.0"), "200 Noted.\r\n");
    assert_eq!(
        rt.command("AUTH TLS"),
        "502 TLS is not available on this server.\r\n"
    );
    assert_eq!(rt.command("OPTS UTF8 ON"), "200 Always in UTF8 mode.\r\n");
}

#[test]
fn site_idle_changes_the_timeout() {
    let mut rt = alice();
    rt.command("SITE IDLE 60");
    rt.advance(Duration::from_secs(61));
    assert!(rt.received.ends_with(b"421 Timeout.\r\n"));
}

#[test]
fn line_framing_errors() {
    let mut rt = alice();
    let mut long = vec![b'A'; 10_000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    let before = rt.received.len();
    rt.send(&long);
    assert_eq!(
        &rt.received[before..],
        b"500 Command line too long.\r\n200 NOOP ok.\r\n"
    );
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
    let before = rt.received.len();
    // A name that is not UTF-8 is a name like any other (here, one that
    // does not exist); an argument that must be text is refused.
    rt.send(b"CWD \xc3\x28\r\n");
    assert_eq!(
        &rt.received[before..],
        b"550 Failed to change directory.\r\n"
    );
    let before = rt.received.len();
    rt.send(b"TYPE \xc3\x28\r\n");
    assert_eq!(
        &rt.received[before..],
        b"501 Argument is not valid UTF-8.\r\n"
    );
    let before = rt.received.len();
    rt.send(b"noop\nPwD\n");
    assert_eq!(
        &rt.received[before..],
        b"200 NOOP ok.\r\n257 \"/\" is the current directory\r\n"
    );
}

#[test]
fn session_and_login_timeouts() {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.advance(Duration::from_secs(61));
    assert!(
        rt.received
            .ends_with(b"421 Login timeout, closing control connection.\r\n")
    );
    let mut rt = MemoryRuntime::new(
        Config {
            session_timeout: Some(Duration::from_secs(10)),
            ..config()
        },
        tree(),
    );
    rt.command("USER alice");
    rt.command("PASS secret");
    rt.advance(Duration::from_secs(5));
    rt.command("NOOP");
    rt.advance(Duration::from_secs(5));
    assert!(
        rt.received
            .ends_with(b"421 Session time limit reached, closing control connection.\r\n")
    );
}

/// The login deadline counts from the greeting whatever the client sends:
/// a line trickled in byte by byte, complete commands and `REIN` before
/// login do not put it off. A `REIN` after a login starts a new one.
#[test]
fn login_deadline_is_absolute() {
    const CLOSED: &[u8] = b"421 Login timeout, closing control connection.\r\n";
    let mut trickle = MemoryRuntime::new(config(), tree());
    for &b in b"USER aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
        trickle.advance(Duration::from_secs(1));
        trickle.send(&[b]);
    }
    assert!(trickle.closed && trickle.received.ends_with(CLOSED));

    let mut busy = MemoryRuntime::new(config(), tree());
    busy.advance(Duration::from_secs(20));
    assert_eq!(
        busy.command("USER alice"),
        "331 Please specify the password.\r\n"
    );
    busy.advance(Duration::from_secs(20));
    assert_eq!(busy.command("NOOP"), "200 NOOP ok.\r\n");
    busy.advance(Duration::from_secs(19));
    assert_eq!(busy.command("REIN"), "220 Service ready for new user.\r\n");
    busy.advance(Duration::from_secs(1));
    assert!(busy.closed && busy.received.ends_with(CLOSED));

    let mut rt = MemoryRuntime::new(config(), tree());
    rt.advance(Duration::from_secs(30));
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    rt.advance(Duration::from_secs(60));
    assert!(!rt.closed, "no login deadline once logged in");
    assert_eq!(rt.command("REIN"), "220 Service ready for new user.\r\n");
    rt.advance(Duration::from_secs(59));
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
    rt.advance(Duration::from_secs(1));
    assert!(rt.closed && rt.received.ends_with(CLOSED));
}

#[test]
fn stalled_transfer_is_aborted() {
    let mut rt = alice();
    rt.transfer_mode = TransferMode::Hold;
    rt.command("PASV");
    assert!(rt.command("RETR pub/readme.txt").starts_with("150 "));
    rt.advance(Duration::from_secs(299));
    assert!(
        rt.received.ends_with(b"bytes).\r\n"),
        "no reply before the data timeout"
    );
    rt.advance(Duration::from_secs(1));
    assert!(
        rt.received
            .ends_with(b"426 Data connection timed out; transfer aborted.\r\n")
    );
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn progress_keeps_a_transfer_alive() {
    let mut rt = alice();
    rt.transfer_mode = TransferMode::Hold;
    rt.command("PASV");
    rt.command("RETR pub/readme.txt");
    let id = rt
        .intents
        .iter()
        .filter(|i| matches!(i, Intent::Transfer(_)))
        .count();
    assert_eq!(id, 1);
    for _ in 0..10 {
        rt.advance(Duration::from_secs(200));
        rt.report_progress(1);
    }
    assert!(!rt.received.ends_with(b"transfer aborted.\r\n"));
    rt.finish_transfer();
    assert!(rt.received.ends_with(b"226 Transfer complete.\r\n"));
}

#[test]
fn shutdown_closes_idle_sessions_and_waits_for_transfers() {
    let mut idle = alice();
    idle.session.shutdown(idle.now, Duration::from_secs(10));
    idle.run();
    assert!(
        idle.received
            .ends_with(b"421 Server shutting down, closing control connection.\r\n")
    );
    assert!(idle.closed);

    let mut busy = alice();
    busy.transfer_mode = TransferMode::Hold;
    busy.command("PASV");
    busy.command("RETR pub/readme.txt");
    busy.session.shutdown(busy.now, Duration::from_secs(10));
    busy.run();
    assert!(!busy.closed, "a running transfer may finish");
    busy.finish_transfer();
    assert!(busy.received.ends_with(
        b"226 Transfer complete.\r\n421 Server shutting down, closing control connection.\r\n"
    ));
    assert!(busy.closed);
}

#[test]
fn shutdown_aborts_a_transfer_still_running_after_the_grace() {
    let mut busy = alice();
    busy.transfer_mode = TransferMode::Hold;
    busy.command("PASV");
    busy.command("STOR incoming/stalled.bin");
    busy.session.shutdown(busy.now, Duration::from_secs(10));
    busy.run();
    busy.advance(Duration::from_secs(9));
    assert!(!busy.closed, "the transfer has its grace period");
    busy.advance(Duration::from_secs(2));
    assert!(busy.closed);
    assert!(
        busy.received.ends_with(
            b"426 Server shutting down; transfer aborted.\r\n\
              421 Server shutting down, closing control connection.\r\n"
        ),
        "{}",
        String::from_utf8_lossy(&busy.received)
    );
    assert_eq!(busy.fs.file("/incoming/stalled.bin"), None);
}

#[test]
fn a_refused_transfer_keeps_the_passive_listener() {
    let mut rt = alice();
    assert!(rt.command("PASV").starts_with("227 "));
    let open = rt.listeners.clone();
    assert_eq!(open.len(), 1);
    assert_eq!(
        rt.command("RETR missing.txt"),
        "550 Failed to open file: No such file or directory.\r\n"
    );
    assert_eq!(
        rt.command("LIST missing/"),
        "550 Failed to open file: No such file or directory.\r\n"
    );
    assert_eq!(
        rt.command("STOR nowhere/new.txt"),
        "553 Could not create file: No such file or directory.\r\n"
    );
    assert_eq!(rt.listeners, open, "the listener stays open");
    // The next transfer uses it, with no new PASV, and consumes it.
    let reply = rt.command("RETR pub/readme.txt");
    assert!(reply.starts_with("150 ") && reply.ends_with("226 Transfer complete.\r\n"));
    assert!(rt.listeners.is_empty());
    assert_eq!(
        rt.command("RETR pub/readme.txt"),
        "425 Use PORT or PASV first.\r\n"
    );
}

#[test]
fn a_passive_listener_is_closed_when_its_transfer_fails() {
    let mut rt = alice();
    rt.transfer_mode = TransferMode::NoConnection;
    rt.command("EPSV");
    rt.command("RETR pub/readme.txt");
    rt.advance(Duration::from_secs(120));
    assert!(
        String::from_utf8_lossy(&rt.received).ends_with("425 Failed to establish connection.\r\n")
    );
    assert!(rt.listeners.is_empty(), "{:?}", rt.listeners);
    // A new PASV replaces an unused listener.
    rt.transfer_mode = TransferMode::Instant;
    rt.command("PASV");
    rt.command("PASV");
    assert_eq!(rt.listeners.len(), 1);
    rt.command("QUIT");
    assert!(rt.listeners.is_empty());
}

#[test]
fn end_of_input_answers_every_line_then_closes() {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.send(b"USER alice\r\nPASS secret\r\nSYST\r\nSIZE pub/readme.txt\r\nPWD\r\nNOOP\r\npartial");
    rt.eof();
    assert!(rt.closed);
    let text = String::from_utf8_lossy(&rt.received);
    assert!(
        text.ends_with(
            "230 Login successful.\r\n215 UNIX Type: L8\r\n213 12\r\n\
             257 \"/\" is the current directory\r\n200 NOOP ok.\r\n"
        ),
        "{text}"
    );
    assert_eq!(rt.session.input_capacity(), 0);
}

#[test]
fn end_of_input_waits_for_a_failed_login_delay_and_a_transfer() {
    let mut rt = MemoryRuntime::new(config(), tree());
    rt.send(b"USER alice\r\nPASS wrong\r\n");
    rt.eof();
    assert!(!rt.closed, "the delayed 530 is still owed");
    rt.advance(Duration::from_secs(1));
    assert!(rt.closed);
    assert!(rt.received.ends_with(b"530 Login incorrect.\r\n"));

    let mut busy = alice();
    busy.transfer_mode = TransferMode::Hold;
    busy.send(b"PASV\r\nRETR pub/readme.txt\r\nNOOP\r\n");
    busy.eof();
    assert!(!busy.closed, "a running transfer may finish");
    busy.finish_transfer();
    assert!(busy.closed);
    assert!(
        busy.received
            .ends_with(b"226 Transfer complete.\r\n200 NOOP ok.\r\n")
    );
    assert_eq!(busy.downloaded, b"hello\r\nworld\r\n");
}

#[test]
fn end_of_input_abandons_a_running_upload() {
    let mut rt = alice();
    rt.fs.add_file("/incoming/doc.txt", b"version 1\n");
    rt.transfer_mode = TransferMode::Hold;
    rt.command("PASV");
    rt.command("STOR incoming/doc.txt");
    rt.eof();
    assert!(rt.closed);
    assert!(
        rt.received
            .ends_with(b"426 Control connection closed; upload abandoned.\r\n"),
        "{}",
        String::from_utf8_lossy(&rt.received)
    );
    assert_eq!(rt.fs.file("/incoming/doc.txt"), Some(&b"version 1\n"[..]));
}

/// A session of `alice` on a storage that can do what an object store can.
fn alice_on_object_store() -> MemoryRuntime {
    let config = Config {
        storage: ftp_proto::StorageCaps::OBJECT_STORE,
        ..config()
    };
    let mut rt = MemoryRuntime::new(config, tree());
    rt.command("USER alice");
    assert_eq!(rt.command("PASS secret"), "230 Login successful.\r\n");
    rt
}

#[test]
fn object_store_refuses_what_it_cannot_do() {
    let mut rt = alice_on_object_store();
    let feat = rt.command("FEAT");
    assert!(!feat.contains(" MFMT\r\n"), "{feat}");
    assert!(!feat.contains(" REST STREAM\r\n"), "{feat}");
    assert!(
        feat.contains(" MDTM\r\n") && feat.contains(" SIZE\r\n"),
        "{feat}"
    );
    rt.command("TYPE I");
    rt.command("PASV");
    rt.upload = b"first".to_vec();
    assert!(
        rt.command("STOR incoming/f.txt")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"first"[..]));
    rt.upload = b"+more".to_vec();
    assert_eq!(
        rt.command("APPE incoming/f.txt"),
        "502 APPE is not supported by this storage.\r\n"
    );
    assert_eq!(
        rt.command("REST 5"),
        "350 Restart position accepted (5).\r\n"
    );
    assert_eq!(
        rt.command("STOR incoming/f.txt"),
        "504 Restarting an upload (REST before STOR) is not supported by this storage.\r\n"
    );
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"first"[..]));
    // REST 0 is a plain STOR.
    rt.command("PASV");
    rt.command("REST 0");
    rt.upload = b"second".to_vec();
    assert!(
        rt.command("STOR incoming/f.txt")
            .ends_with("226 Transfer complete.\r\n")
    );
    assert_eq!(rt.fs.file("/incoming/f.txt"), Some(&b"second"[..]));
    // Restarted downloads still work: a ranged read.
    rt.command("PASV");
    rt.command("REST 6");
    rt.command("RETR pub/readme.txt");
    assert_eq!(rt.downloaded, b"world\n");
    assert_eq!(
        rt.command("MFMT 20200102030405 pub/readme.txt"),
        "502 MFMT is not supported by this storage.\r\n"
    );
    assert_eq!(
        rt.command("SITE CHMOD 600 pub/readme.txt"),
        "502 SITE CHMOD is not supported by this storage.\r\n"
    );
    let help = rt.command("SITE HELP");
    assert!(
        help.contains("HELP IDLE UMASK") && !help.contains("CHMOD"),
        "{help}"
    );
}

#[test]
fn default_storage_can_do_everything() {
    let mut rt = alice();
    let feat = rt.command("FEAT");
    assert!(feat.contains(" MFMT\r\n") && feat.contains(" REST STREAM\r\n"));
    assert!(rt.command("SITE HELP").contains("CHMOD HELP IDLE UMASK"));
}

#[test]
fn hash_commands_and_reply_shapes() {
    use ftp_proto::memory::fnv1a;
    let mut rt = alice();
    let text = b"hello\nworld\n";
    let whole = format!("{:016x}", fnv1a(text));
    assert_eq!(
        rt.command("HASH pub/readme.txt"),
        format!("213 SHA-256 0-11 {whole} pub/readme.txt\r\n")
    );
    assert_eq!(rt.command("OPTS HASH"), "200 SHA-256\r\n");
    assert_eq!(rt.command("OPTS HASH md5"), "200 MD5\r\n");
    assert_eq!(rt.command("OPTS HASH SHA-3"), "504 Unknown algorithm.\r\n");
    let feat = rt.command("FEAT");
    assert!(
        feat.contains(" HASH SHA-256;SHA-512;SHA-1;MD5*;CRC32\r\n"),
        "{feat}"
    );
    assert_eq!(
        rt.command("RANG 2 5"),
        "350 Restarting at 2. Ending byte 5.\r\n"
    );
    let part = format!("{:016x}", fnv1a(&text[2..6]));
    assert_eq!(
        rt.command("HASH pub/readme.txt"),
        format!("213 MD5 2-5 {part} pub/readme.txt\r\n")
    );
    // RANG is used up by one HASH.
    assert!(
        rt.command("HASH pub/readme.txt")
            .starts_with("213 MD5 0-11 ")
    );
    assert_eq!(
        rt.command("RANG 5 2"),
        "501 The end of the range is before its start.\r\n"
    );
    assert_eq!(
        rt.command("RANG 1 0"),
        "350 Restarting at 0. Ending byte EOF.\r\n"
    );
    assert_eq!(
        rt.command("XCRC pub/readme.txt"),
        format!("250 {whole}\r\n")
    );
    assert_eq!(
        rt.command("XSHA256 pub/readme.txt 2 6"),
        format!("250 {part}\r\n")
    );
    assert_eq!(rt.command("HASH pub"), "550 Not a regular file.\r\n");
    assert_eq!(
        rt.command("HASH nothing"),
        "550 No such file or directory.\r\n"
    );
    assert_eq!(
        rt.command("XMD5 pub/readme.txt 20 30"),
        "501 The range is not within the file.\r\n"
    );
}

#[test]
fn abor_cancels_a_hash_at_once() {
    let mut rt = alice();
    rt.hold_hashes = true;
    assert_eq!(rt.command("HASH pub/readme.txt"), "");
    let id = rt.held_hash.expect("the Hash intent");
    // Other commands wait, as during a transfer; STAT answers.
    assert_eq!(rt.command("NOOP"), "");
    assert!(rt.command("STAT").starts_with("211-"));
    assert_eq!(
        rt.command("ABOR"),
        "426 Digest computation aborted.\r\n226 Abort successful.\r\n200 NOOP ok.\r\n"
    );
    assert_eq!(rt.held_hash, None);
    assert!(rt.intents.contains(&Intent::CancelHash { hash: id }));
    // A late answer is ignored.
    rt.session.handle_completion(
        rt.now,
        id,
        ftp_proto::Completion::Hash(Ok(String::from("00"))),
    );
    assert_eq!(rt.command("NOOP"), "200 NOOP ok.\r\n");
}

#[test]
fn hash_size_limit_and_off() {
    let mut rt = MemoryRuntime::new(
        Config {
            hash_max_size: Some(5),
            ..config()
        },
        tree(),
    );
    rt.users.push(("alice".into(), "pw".into(), true));
    rt.command("USER alice");
    rt.command("PASS pw");
    assert_eq!(
        rt.command("HASH pub/readme.txt"),
        "552 File too large to hash: at most 5 bytes at once.\r\n"
    );
    rt.command("RANG 0 4");
    assert!(
        rt.command("HASH pub/readme.txt")
            .starts_with("213 SHA-256 0-4 ")
    );
    let mut off = MemoryRuntime::new(
        Config {
            hash_max_size: None,
            ..config()
        },
        tree(),
    );
    off.users.push(("alice".into(), "pw".into(), true));
    off.command("USER alice");
    off.command("PASS pw");
    assert_eq!(
        off.command("HASH pub/readme.txt"),
        "502 Command not implemented.\r\n"
    );
    assert!(!off.command("FEAT").contains("HASH"));
}

#[test]
fn site_umask_reaches_every_creating_intent() {
    let mut rt = alice();
    assert_eq!(rt.command("SITE UMASK 077"), "200 UMASK set to 077\r\n");
    assert_eq!(
        rt.command("SITE UMASK"),
        "200 Your current UMASK is 077\r\n"
    );
    rt.command("MKD incoming/private");
    rt.command("TYPE I");
    rt.command("PASV");
    rt.upload = b"x".to_vec();
    rt.command("STOR incoming/private/f");
    let masks: Vec<u32> = rt
        .intents
        .iter()
        .filter_map(|i| match i {
            Intent::MakeDir { umask, .. } => Some(*umask),
            Intent::Transfer(ftp_proto::Transfer {
                op: ftp_proto::TransferOp::Store { umask, .. },
                ..
            }) => Some(*umask),
            _ => None,
        })
        .collect();
    assert_eq!(masks, [0o077, 0o077]);
    // REIN goes back to the configured mask.
    rt.command("REIN");
    rt.command("USER alice");
    rt.command("PASS secret");
    assert_eq!(
        rt.command("SITE UMASK"),
        "200 Your current UMASK is 022\r\n"
    );
    let mut objects = alice_on_object_store();
    assert_eq!(
        objects.command("SITE UMASK 077"),
        "550 SITE UMASK is not supported by this storage.\r\n"
    );
}

#[test]
fn names_that_are_not_utf8_keep_their_bytes() {
    use ftp_proto::name::decode;
    let mut fs = tree();
    fs.add_dir(&decode(b"/d\xe9j\xe0"));
    fs.add_file(&decode(b"/d\xe9j\xe0/caf\xe9.txt"), b"latin-1\n");
    let mut rt = MemoryRuntime::new(config(), fs);
    rt.command("USER alice");
    rt.command("PASS secret");
    rt.command("OPTS UTF8 ON");
    let before = rt.received.len();
    rt.send(b"CWD d\xe9j\xe0\r\n");
    assert_eq!(
        &rt.received[before..],
        b"250 Directory successfully changed.\r\n"
    );
    let before = rt.received.len();
    rt.send(b"PWD\r\n");
    assert_eq!(
        &rt.received[before..],
        b"257 \"/d\xe9j\xe0\" is the current directory\r\n"
    );
    rt.command("PASV");
    rt.command("NLST");
    assert_eq!(rt.downloaded, b"caf\xe9.txt\r\n");
    rt.command("TYPE I");
    rt.command("PASV");
    rt.send(b"RETR caf\xe9.txt\r\n");
    assert_eq!(rt.downloaded, b"latin-1\n");
}
