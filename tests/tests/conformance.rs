//! Control-connection conformance on both daemons over loopback: what
//! commands do to the served folder, and what the runtimes do with the
//! control connection (reply framing, pipelining, back-pressure,
//! fragmented input, timers). The exact reply of each command is the
//! engine's and is checked by its transcript tests
//! (`ftp-proto/tests/transcript.rs`), once.
//!
//! They run on a folder, and on a bucket with `FTP_TEST_STORAGE=s3`:
//! there, MFMT and SITE CHMOD are checked to be refused, a folder with
//! files in it to stay where it is on RNTO, and listings to show what
//! an object store knows (no owner, mode or folder times of its own).

use std::io::Write;
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::tree::{self, Entry};
use ftp_tests::{Client, TestServer, assert_storage_refusal, daemon_tests};

daemon_tests! {
    any_storage;
    reply_format_of_multiline_replies,
    login_and_session_commands,
    unknown_and_malformed_commands,
    directory_navigation,
    mkd_and_rmd_change_the_disk,
    dele_and_rename_change_the_disk,
    size_mdtm_mfmt,
    site_chmod,
    read_only_by_default,
    no_login_mode,
    sequence_errors,
    active_mode_policy,
    listings,
    mlst_and_opts_mlst,
    pipelined_commands,
    pipelined_commands_under_back_pressure,
    fragmented_commands,
    idle_timeout,
    activity_moves_the_idle_timeout,
    failed_logins_close_the_session,
}

/// FEAT, HELP and STAT are multi-line replies in the RFC 959 form; the
/// client's parser is strict, so reading them is the check.
fn reply_format_of_multiline_replies<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.client();
    // Allowed before login.
    let stat = c.expect("STAT", 211);
    assert!(stat.is_multiline());
    assert_eq!(stat.lines[0], "211-FTP server status:");
    assert!(
        stat.inner().contains(&" Not logged in".to_string()),
        "{stat}"
    );
    assert_eq!(stat.last_text(), "End of status");
    c.login_anonymous();
    let feat = c.expect("FEAT", 211);
    assert!(feat.inner().len() >= 6, "{feat}");
    for line in feat.inner() {
        assert!(
            line.starts_with(' '),
            "FEAT lines start with a space: {line:?}"
        );
    }
    let help = c.expect("HELP", 214);
    assert!(help.is_multiline());
    assert_eq!(help.last_text(), "Help OK.");
    let all = help.inner().join(" ");
    for verb in [
        "ABOR", "APPE", "CWD", "EPSV", "FEAT", "LIST", "MLSD", "PASV", "RETR", "STOR", "STOU",
        "XPWD",
    ] {
        assert!(
            all.split(' ').any(|w| w == verb),
            "HELP lacks {verb}: {help}"
        );
    }
    let stat = c.expect("STAT", 211);
    let inner = stat.inner().join("\n");
    assert!(inner.contains(" Logged in as anonymous"), "{stat}");
    assert!(inner.contains(" Connected to 127.0.0.1"), "{stat}");
    assert!(inner.contains(" TYPE: ASCII"), "{stat}");
    assert!(inner.contains(" No data connection"), "{stat}");
    let site_help = c.expect("SITE HELP", 214);
    assert!(site_help.is_multiline(), "{site_help}");
    c.quit();
}

fn login_and_session_commands<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.client();
    c.check("PASS x", "503 Login with USER first.");
    for line in [
        "CWD /", "PWD", "LIST", "RETR x", "PASV", "MKD x", "SIZE x", "EPSV",
    ] {
        c.check(line, "530 Please login with USER and PASS.");
    }
    c.check("ACCT x", "202 ACCT not needed.");
    c.check("USER anonymous", "331 Please specify the password.");
    c.check("PASS me@example.com", "230 Login successful.");
    c.check("PASS again", "230 Already logged in.");
    c.check("USER someone", "530 Can't change to another user.");
    c.check("ACCT x", "202 ACCT not needed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("XPWD", "257 \"/\" is the current directory");
    // `ftp` is anonymous too, and names are case-insensitive.
    c.check("REIN", "220 Service ready for new user.");
    c.check("PWD", "530 Please login with USER and PASS.");
    c.check("USER FTP", "331 Please specify the password.");
    c.check("PASS", "230 Login successful.");
    c.check("QUIT", "221 Goodbye.");
    c.expect_closed();
}

fn unknown_and_malformed_commands<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.login();
    c.check("XYZZY", "500 Unknown command.");
    c.check("FOOBAR x", "500 Unknown command.");
    c.check("", "500 Unknown command.");
    c.check("RETR", "501 Syntax error in parameters or arguments.");
    c.check("CWD", "501 Syntax error in parameters or arguments.");
    c.check("REST x", "501 Syntax error in parameters or arguments.");
    c.check("PORT 1,2,3", "501 Syntax error in parameters or arguments.");
    c.check("NOOP extra", "501 Syntax error in parameters or arguments.");
    // A name that is not UTF-8 is a name (none such here); an argument
    // that must be text is refused.
    c.send_raw(b"CWD \xc3\x28\r\n");
    assert_eq!(c.read_reply().lines, ["550 Failed to change directory."]);
    c.send_raw(b"TYPE \xc3\x28\r\n");
    assert_eq!(c.read_reply().lines, ["501 Argument is not valid UTF-8."]);
    // A line far beyond the limit is refused, and the session goes on.
    let mut long = vec![b'A'; 10_000];
    long.extend_from_slice(b"\r\nNOOP\r\n");
    c.send_raw(&long);
    assert_eq!(c.read_reply().lines, ["500 Command line too long."]);
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    // Bare LF line ends and any case are accepted.
    c.send_raw(b"noop\nPwD\n");
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    assert_eq!(c.read_reply().lines, ["257 \"/\" is the current directory"]);
    c.quit();
}

fn directory_navigation<R: Runtime>() {
    let srv = TestServer::builder()
        .file("pub/sub/deep.txt", "deep")
        .file("pub/file.txt", "x")
        .dir("with space")
        .start::<R>();
    let mut c = srv.login();
    c.check("CWD nowhere", "550 Failed to change directory.");
    c.check("CWD pub/file.txt", "550 Failed to change directory.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CWD pub", "250 Directory successfully changed.");
    c.check("CWD sub", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/pub/sub\" is the current directory");
    c.check("CDUP", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/pub\" is the current directory");
    c.check("XCWD /pub/sub", "250 Directory successfully changed.");
    c.check("XPWD", "257 \"/pub/sub\" is the current directory");
    c.check("XCUP", "250 Directory successfully changed.");
    c.check("XPWD", "257 \"/pub\" is the current directory");
    c.check("CWD ../../..", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("CDUP", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/\" is the current directory");
    c.check(
        "CWD /../../pub/./sub/..",
        "250 Directory successfully changed.",
    );
    c.check("PWD", "257 \"/pub\" is the current directory");
    c.check("CWD /with space", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/with space\" is the current directory");
    // Relative paths in other commands follow the working directory.
    c.check("CWD /pub/sub", "250 Directory successfully changed.");
    c.check("SIZE deep.txt", "213 4");
    c.check("SIZE ../file.txt", "213 1");
    c.quit();
}

fn mkd_and_rmd_change_the_disk<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("full/file", "x")
        .start::<R>();
    let mut c = srv.login();
    c.check("MKD new dir", "257 \"/new dir\" created");
    assert!(srv.is_dir("new dir"));
    c.check("XMKD a\"b", "257 \"/a\"\"b\" created");
    assert!(srv.is_dir("a\"b"));
    c.check("MKD new dir", "550 Create directory operation failed.");
    c.check(
        "MKD missing/parent/x",
        "550 Create directory operation failed.",
    );
    assert!(!srv.exists("missing"));
    c.check("CWD new dir", "250 Directory successfully changed.");
    c.check("MKD inner", "257 \"/new dir/inner\" created");
    assert!(srv.is_dir("new dir/inner"));
    c.check("CWD ..", "250 Directory successfully changed.");
    c.check("RMD new dir", "550 Remove directory operation failed.");
    assert!(srv.is_dir("new dir/inner"));
    c.check("RMD full", "550 Remove directory operation failed.");
    assert_eq!(srv.read_file("full/file").as_deref(), Some(&b"x"[..]));
    c.check("RMD full/file", "550 Remove directory operation failed.");
    assert!(srv.is_file("full/file"));
    c.check("RMD nowhere", "550 Remove directory operation failed.");
    c.check(
        "RMD new dir/inner",
        "250 Remove directory operation successful.",
    );
    c.check("RMD new dir", "250 Remove directory operation successful.");
    assert!(!srv.exists("new dir"));
    c.check("XRMD a\"b", "250 Remove directory operation successful.");
    assert!(!srv.exists("a\"b"));
    c.check("MKD /", "550 Create directory operation failed.");
    // Longer than a name may be (on disk; SeaweedFS's filer has the same
    // limit of 255 bytes).
    c.check(
        &format!("MKD {}", "a".repeat(300)),
        "550 Create directory operation failed.",
    );
    c.quit();
}

fn dele_and_rename_change_the_disk<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/readme.txt", "hello\nworld\n")
        .file("gone.txt", "bye")
        .dir("incoming")
        .dir("emptydir")
        .start::<R>();
    let mut c = srv.login();
    c.check("DELE gone.txt", "250 Delete operation successful.");
    assert!(!srv.exists("gone.txt"));
    c.check("DELE gone.txt", "550 Delete operation failed.");
    c.check("DELE emptydir", "550 Delete operation failed.");
    assert!(srv.is_dir("emptydir"));
    c.check("RNTO x", "503 RNFR required first.");
    c.check("RNFR nope", "550 RNFR command failed.");
    c.check("RNTO x", "503 RNFR required first.");
    c.check("RNFR pub/readme.txt", "350 Ready for RNTO.");
    c.check("NOOP", "200 NOOP ok.");
    c.check("RNTO x", "503 RNFR required first.");
    assert!(srv.is_file("pub/readme.txt"));
    c.check("RNFR pub/readme.txt", "350 Ready for RNTO.");
    c.check("RNTO /incoming/read me.txt", "250 Rename successful.");
    assert!(!srv.exists("pub/readme.txt"));
    assert_eq!(
        srv.read_file("incoming/read me.txt").as_deref(),
        Some(&b"hello\nworld\n"[..])
    );
    if srv.serves_a_bucket() {
        folders_move_only_when_empty(&srv, &mut c);
    } else {
        // Directories rename too.
        c.check("RNFR incoming", "350 Ready for RNTO.");
        c.check("RNTO done", "250 Rename successful.");
    }
    assert!(srv.is_file("done/read me.txt"));
    assert!(!srv.exists("incoming"));
    // Into a folder that does not exist: refused, nothing moves.
    c.check("RNFR done/read me.txt", "350 Ready for RNTO.");
    c.check("RNTO nowhere/x", "550 Rename failed.");
    assert!(srv.is_file("done/read me.txt"));
    assert!(!srv.exists("nowhere"));
    c.check("RNFR /", "550 Cannot rename the root directory.");
    c.check("DELE done/read me.txt", "250 Delete operation successful.");
    assert_eq!(srv.names("done"), Vec::<String>::new());
    c.quit();
}

/// In a bucket a folder is a prefix of its objects' keys: an empty one
/// (its marker alone) renames, one with files in it is refused and stays
/// whole. Leaves `done/read me.txt` and no `incoming`, as a folder's
/// rename does.
fn folders_move_only_when_empty(srv: &TestServer, c: &mut Client) {
    c.check("RNFR incoming", "350 Ready for RNTO.");
    c.check("RNTO done", "550 Rename failed.");
    assert!(srv.is_file("incoming/read me.txt"));
    assert!(!srv.exists("done"));
    c.check("RNFR emptydir", "350 Ready for RNTO.");
    c.check("RNTO done", "250 Rename successful.");
    assert!(srv.is_dir("done") && !srv.exists("emptydir"));
    c.check("RNFR incoming/read me.txt", "350 Ready for RNTO.");
    c.check("RNTO done/read me.txt", "250 Rename successful.");
    c.check("RMD incoming", "250 Remove directory operation successful.");
}

fn size_mdtm_mfmt<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/readme.txt", "hello\nworld\n")
        .file("empty", "")
        .start::<R>();
    let time = set_time(&srv, "pub/readme.txt", 1_758_464_000);
    let mut c = srv.login();
    c.check("SIZE pub/readme.txt", "213 12");
    c.check("SIZE empty", "213 0");
    c.check("SIZE pub", "550 Could not get file size.");
    c.check("SIZE nope", "550 Could not get file size.");
    c.check("MDTM pub/readme.txt", &format!("213 {}", tree::mdtm(time)));
    c.check("MDTM pub", "550 Could not get file modification time.");
    c.check("MDTM nope", "550 Could not get file modification time.");
    c.check(
        "MFMT 2020 pub/readme.txt",
        "501 Syntax error in parameters or arguments.",
    );
    if srv.serves_a_bucket() {
        return mfmt_is_refused::<R>(&srv, c, time);
    }
    c.check(
        "MFMT 20200102030405 pub/readme.txt",
        "213 Modify=20200102030405; modification time set.",
    );
    assert_eq!(srv.modified("pub/readme.txt"), 1_577_934_245);
    c.check("MDTM pub/readme.txt", "213 20200102030405");
    c.check(
        "MFMT 20200102030405 nope",
        "550 Could not set file modification time.",
    );
    assert!(!srv.exists("nope"));
    // Read-only sessions may not change times.
    let ro = TestServer::builder().file("f", "x").start::<R>();
    let time = set_time(&ro, "f", 1_000_000_000);
    let mut c = ro.login();
    c.check("MFMT 20200102030405 f", "550 Permission denied.");
    assert_eq!(ro.modified("f"), time);
    c.check("MDTM f", "213 20010909014640");
}

/// An object's time is the store's: MFMT is refused (for any name, and
/// for read-only sessions too), not offered in FEAT, and changes nothing.
fn mfmt_is_refused<R: Runtime>(srv: &TestServer, mut c: Client, time: i64) {
    for line in [
        "MFMT 20200102030405 pub/readme.txt",
        "MFMT 20200102030405 nope",
    ] {
        assert_storage_refusal(&c.cmd(line), line);
    }
    assert_eq!(srv.modified("pub/readme.txt"), time);
    c.check("MDTM pub/readme.txt", &format!("213 {}", tree::mdtm(time)));
    assert!(!srv.exists("nope"));
    let feat = c.expect("FEAT", 211);
    assert!(
        !feat.inner().iter().any(|l| l.trim() == "MFMT"),
        "FEAT offers MFMT: {feat}"
    );
    c.quit();
    let ro = TestServer::builder().file("f", "x").start::<R>();
    let mut c = ro.login();
    assert_storage_refusal(&c.cmd("MFMT 20200102030405 f"), "MFMT, read-only");
    c.quit();
}

/// Sets the modification time of the file `rel` to `secs` on disk and
/// returns it; an object's time cannot be set, and is returned as the
/// store keeps it.
fn set_time(srv: &TestServer, rel: &str, secs: u64) -> i64 {
    if srv.serves_a_bucket() {
        srv.modified(rel)
    } else {
        tree::set_mtime(&srv.path(rel), secs);
        secs as i64
    }
}

fn site_chmod<R: Runtime>() {
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/my file.bin", [0u8, 1, 2])
        .start::<R>();
    if srv.serves_a_bucket() {
        return site_chmod_is_refused(&srv);
    }
    let path = srv.path("pub/my file.bin");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let mut c = srv.login();
    c.check(
        "SITE CHMOD 600 pub/my file.bin",
        "200 SITE CHMOD command ok.",
    );
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    c.check(
        "SITE CHMOD 99 pub/my file.bin",
        "501 Syntax error in parameters or arguments.",
    );
    c.check("SITE CHMOD 644 nope", "550 SITE CHMOD command failed.");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o7777,
        0o600
    );
}

/// An object has no permission bits: SITE CHMOD is refused, not listed
/// by SITE HELP, and listings show the same mode after it.
fn site_chmod_is_refused(srv: &TestServer) {
    let mut c = srv.login();
    let before = c.list("pub");
    assert!(before.starts_with("-rw-r--r-- "), "{before:?}");
    for line in [
        "SITE CHMOD 600 pub/my file.bin",
        "SITE CHMOD 644 nope",
        "SITE CHMOD 755 pub",
    ] {
        assert_storage_refusal(&c.cmd(line), line);
    }
    c.check(
        "SITE CHMOD 99 pub/my file.bin",
        "501 Syntax error in parameters or arguments.",
    );
    assert_eq!(c.list("pub"), before);
    let help = c.expect("SITE HELP", 214);
    assert!(
        !help.inner().join(" ").contains("CHMOD"),
        "SITE HELP offers CHMOD: {help}"
    );
    c.quit();
}

/// Without `-w`, anonymous sessions change nothing on disk.
fn read_only_by_default<R: Runtime>() {
    let srv = TestServer::builder()
        .file("pub/readme.txt", "hello\n")
        .dir("incoming")
        .dir("empty")
        .start::<R>();
    let before = srv.snapshot();
    let bucket = srv.serves_a_bucket();
    let mut c = srv.login();
    for line in [
        "MKD new",
        "XMKD new",
        "RMD empty",
        "XRMD empty",
        "DELE pub/readme.txt",
        "RNFR pub/readme.txt",
    ] {
        c.check(line, "550 Permission denied.");
    }
    // What the storage cannot do at all is refused as that.
    for line in ["MFMT 20200102030405 pub/readme.txt", "SITE CHMOD 777 pub"] {
        if bucket {
            assert_storage_refusal(&c.cmd(line), line);
        } else {
            c.check(line, "550 Permission denied.");
        }
    }
    c.check("RNTO x", "503 RNFR required first.");
    for line in [
        "STOR incoming/x",
        "STOR pub/readme.txt",
        "APPE pub/readme.txt",
        "STOU",
        "STOU incoming",
    ] {
        let data = c.data();
        match c.start(line, data) {
            Err(r) if bucket && line.starts_with("APPE") => assert_storage_refusal(&r, line),
            Err(r) => assert_eq!(r.lines, ["550 Permission denied."], "{line}"),
            Ok(t) => panic!("{line}: read-only server accepted an upload: {}", t.opening),
        }
    }
    // Reading still works.
    assert_eq!(
        c.retr("pub/readme.txt"),
        b"hello\r\n",
        "TYPE A is the default"
    );
    c.quit();
    assert_eq!(srv.snapshot(), before, "the tree changed");

    // With -w the same session rights allow changes.
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/readme.txt", "hello\n")
        .start::<R>();
    let mut c = srv.login();
    c.check("MKD new", "257 \"/new\" created");
    c.expect("TYPE I", 200);
    c.stor("new/up.bin", b"uploaded");
    c.check("DELE pub/readme.txt", "250 Delete operation successful.");
    c.quit();
    let after = srv.snapshot();
    assert_eq!(
        after.get(std::path::Path::new("new/up.bin")),
        Some(&Entry::File(b"uploaded".to_vec()))
    );
    assert_eq!(after.get(std::path::Path::new("new")), Some(&Entry::Dir));
    assert!(!srv.exists("pub/readme.txt"));
}

/// `-A`: every session starts logged in.
fn no_login_mode<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-A"])
        .file("f.txt", "x")
        .start::<R>();
    let mut c = srv.client();
    c.check("PWD", "257 \"/\" is the current directory");
    c.check("SIZE f.txt", "213 1");
    c.check("USER x", "230 Login successful.");
    c.check("PASS x", "230 Already logged in.");
    c.check("MKD d", "550 Permission denied.");
    assert!(!srv.exists("d"));
    c.quit();
    let srv = TestServer::builder().args(&["-A", "-w"]).start::<R>();
    let mut c = srv.client();
    c.check("MKD d", "257 \"/d\" created");
    assert!(srv.is_dir("d"));
}

fn sequence_errors<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/readme.txt", "hello\n")
        .start::<R>();
    let mut c = srv.client();
    c.check("PASS x", "503 Login with USER first.");
    c.login_anonymous();
    c.check("RNTO x", "503 RNFR required first.");
    c.check("RETR pub/readme.txt", "425 Use PORT or PASV first.");
    c.check("STOR x", "425 Use PORT or PASV first.");
    c.check("LIST", "425 Use PORT or PASV first.");
    c.check("NLST", "425 Use PORT or PASV first.");
    c.check("MLSD", "425 Use PORT or PASV first.");
    assert!(!srv.exists("x"));
    // A refused transfer leaves its channel prepared (tested in
    // transfers.rs); a new PASV replaces it.
    let data = c.data();
    let r = c
        .start("RETR nope", data)
        .expect_err("RETR of a missing file");
    assert_eq!(
        r.lines,
        ["550 Failed to open file: No such file or directory."]
    );
    assert_eq!(c.retr("pub/readme.txt"), b"hello\r\n");
    // REST applies to the very next command only.
    c.expect("TYPE I", 200);
    c.check("REST 3", "350 Restart position accepted (3).");
    c.check("NOOP", "200 NOOP ok.");
    assert_eq!(c.retr("pub/readme.txt"), b"hello\n");
    c.quit();
}

fn active_mode_policy<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.login();
    c.check(
        "PORT 127,0,0,1,4,1",
        "200 PORT command successful. Consider using PASV.",
    );
    c.check("PORT 127,0,0,2,4,1", "500 Illegal PORT command.");
    c.check("PORT 10,1,2,3,4,1", "500 Illegal PORT command.");
    c.check("PORT 127,0,0,1,0,80", "500 Illegal PORT command.");
    c.check("PORT 1,2,3", "501 Syntax error in parameters or arguments.");
    c.check(
        "PORT 127,0,0,1,300,1",
        "501 Syntax error in parameters or arguments.",
    );
    c.check(
        "EPRT |1|127.0.0.1|5000|",
        "200 EPRT command successful. Consider using EPSV.",
    );
    c.check("EPRT |1|10.0.0.1|5000|", "500 Illegal EPRT command.");
    c.check("EPRT |2|::1|5000|", "500 Illegal EPRT command.");
    c.check("EPRT |1|127.0.0.1|80|", "500 Illegal EPRT command.");
    c.check(
        "EPRT |3|x|5000|",
        "522 Network protocol not supported, use (1,2).",
    );
    c.check(
        "EPRT garbage",
        "501 Syntax error in parameters or arguments.",
    );
    c.quit();
}

fn listings<R: Runtime>() {
    let srv = TestServer::builder()
        .file("pub/readme.txt", "hello\nworld\n")
        .file("pub/my file.bin", [0u8, 1, 2, 3, 255])
        .file("pub/.hidden", "secret")
        .dir("pub/sub dir")
        .dir("incoming")
        .start::<R>();
    let time = set_time(&srv, "pub/readme.txt", 1_758_464_000);
    let mut c = srv.login();
    let list = c.list("pub");
    assert!(list.ends_with("\r\n"), "{list:?}");
    let lines: Vec<&str> = list.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 3, "{list:?}");
    for line in &lines {
        assert!(!line.contains('\n'), "{list:?}");
    }
    let readme = lines
        .iter()
        .find(|l| l.ends_with(" readme.txt"))
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(readme.starts_with("-rw-r--r--"), "{readme}");
    assert!(
        readme.split_whitespace().any(|w| w == "12"),
        "size: {readme}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with(" my file.bin")),
        "{list:?}"
    );
    let dir = lines
        .iter()
        .find(|l| l.ends_with(" sub dir"))
        .unwrap_or_else(|| panic!("{list:?}"));
    assert!(dir.starts_with('d'), "{dir}");
    if srv.serves_a_bucket() {
        // An object store has no owners, modes or link counts, and a
        // folder (a common prefix) has no time: fixed values stand in.
        assert!(
            readme.starts_with("-rw-r--r--    1 ftp      ftp            12 "),
            "{readme}"
        );
        assert_eq!(
            *dir,
            "drwxr-xr-x    2 ftp      ftp             0 Jan  1  1970 sub dir"
        );
    }
    assert!(!list.contains(".hidden"), "{list:?}");
    let all = c.list("-a pub");
    assert!(all.contains(" .hidden\r\n"), "{all:?}");
    // LIST of one file lists that file.
    let one = c.list("pub/readme.txt");
    assert_eq!(one.split_terminator("\r\n").count(), 1, "{one:?}");
    assert!(one.ends_with(" readme.txt\r\n"), "{one:?}");
    // LIST of the working directory.
    c.check("CWD pub", "250 Directory successfully changed.");
    assert_eq!(c.list(""), list);
    c.check("CWD /", "250 Directory successfully changed.");

    let mut names: Vec<String> = c
        .nlst("pub")
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect();
    names.sort();
    assert_eq!(names, ["my file.bin", "readme.txt", "sub dir"]);
    let mut top: Vec<String> = c
        .nlst("")
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect();
    top.sort();
    assert_eq!(top, ["incoming", "pub"]);
    let long = c.nlst("-l pub");
    assert!(long.contains("-rw-r--r--"), "{long:?}");

    let mlsd = c.mlsd("pub");
    let entry = mlsd
        .split_terminator("\r\n")
        .find(|l| l.ends_with("; readme.txt"))
        .unwrap_or_else(|| panic!("{mlsd:?}"));
    let facts = format!("type=file;size=12;modify={};", tree::mdtm(time));
    assert!(entry.starts_with(&facts), "{entry}");
    assert!(mlsd.contains("type=dir;"), "{mlsd:?}");
    if srv.serves_a_bucket() {
        assert!(
            mlsd.split_terminator("\r\n")
                .any(|l| l == "type=dir;perm=el;unix.mode=0755; sub dir"),
            "a folder of a bucket has no modify fact: {mlsd:?}"
        );
    }
    assert!(
        mlsd.contains("; .hidden\r\n"),
        "MLSD shows every entry: {mlsd:?}"
    );

    // Missing paths.
    let data = c.data();
    let r = c.start("LIST nowhere", data).expect_err("LIST nowhere");
    assert_eq!(r.code, 550, "{r}");
    let data = c.data();
    let r = c.start("MLSD nowhere", data).expect_err("MLSD nowhere");
    assert_eq!(r.code, 550, "{r}");

    // STAT path: a listing over the control connection.
    let stat = c.expect("STAT pub", 213);
    assert_eq!(stat.lines[0], "213-Status of /pub:");
    assert_eq!(stat.last_text(), "End of status.");
    assert!(
        stat.inner()
            .iter()
            .any(|l| l.starts_with(" -rw-r--r--") && l.ends_with(" readme.txt")),
        "{stat}"
    );
    let r = c.expect("STAT nowhere", 550);
    assert_eq!(r.text(), "No such file or directory.");
    c.quit();
}

fn mlst_and_opts_mlst<R: Runtime>() {
    let srv = TestServer::builder()
        .file("pub/readme.txt", "hello\nworld\n")
        .start::<R>();
    let time = set_time(&srv, "pub/readme.txt", 1_758_464_000);
    let mut c = srv.login();
    let r = c.expect("MLST pub/readme.txt", 250);
    assert_eq!(r.lines.len(), 3, "{r}");
    assert_eq!(r.lines[0], "250-Listing /pub/readme.txt");
    let facts = format!(" type=file;size=12;modify={};", tree::mdtm(time));
    assert!(r.lines[1].starts_with(&facts), "{r}");
    assert!(r.lines[1].ends_with("; /pub/readme.txt"), "{r}");
    assert_eq!(r.lines[2], "250 End");
    let r = c.expect("MLST", 250);
    assert!(
        r.lines[1].contains("type=") && r.lines[1].ends_with(" /"),
        "{r}"
    );
    let r = c.expect("MLST pub", 250);
    assert!(r.lines[1].contains("type=dir;"), "{r}");
    c.check("MLST nope", "550 No such file or directory.");
    let r = c.expect("OPTS MLST size;type;", 200);
    assert!(r.text().starts_with("MLST OPTS "), "{r}");
    let r = c.expect("MLST pub/readme.txt", 250);
    assert!(
        r.lines[1].starts_with(" type=file;size=12; ")
            || r.lines[1].starts_with(" size=12;type=file; "),
        "only the chosen facts: {r}"
    );
    let feat = c.expect("FEAT", 211);
    assert!(
        feat.inner().iter().any(|l| l.starts_with(" MLST ")),
        "{feat}"
    );
    c.quit();
}

/// Several commands in one packet are answered in order.
fn pipelined_commands<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.client();
    c.send_raw(b"USER anonymous\r\nPASS x\r\nPWD\r\nNOOP\r\n");
    assert_eq!(c.read_reply().lines, ["331 Please specify the password."]);
    assert_eq!(c.read_reply().lines, ["230 Login successful."]);
    assert_eq!(c.read_reply().lines, ["257 \"/\" is the current directory"]);
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    // Many small commands, then one that needs the file system, then more.
    let mut burst = String::new();
    for _ in 0..100 {
        burst.push_str("NOOP\r\n");
    }
    burst.push_str("CWD /\r\nSYST\r\nQUIT\r\n");
    c.send_raw(burst.as_bytes());
    for i in 0..100 {
        assert_eq!(c.read_reply().lines, ["200 NOOP ok."], "reply {i}");
    }
    assert_eq!(
        c.read_reply().lines,
        ["250 Directory successfully changed."]
    );
    assert_eq!(c.read_reply().lines, ["215 UNIX Type: L8"]);
    assert_eq!(c.read_reply().lines, ["221 Goodbye."]);
    c.expect_closed();
}

/// Thousands of commands sent without reading replies: the daemon must
/// stop reading while its replies are not taken, and lose nothing.
fn pipelined_commands_under_back_pressure<R: Runtime>() {
    const N: usize = 20_000;
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.login();
    let mut writer = c.socket().try_clone().expect("clone socket");
    let sender = std::thread::spawn(move || {
        let batch = "NOOP\r\nPWD\r\n".repeat(500);
        for _ in 0..N / 1000 {
            writer.write_all(batch.as_bytes()).expect("send batch");
        }
    });
    for i in 0..N / 2 {
        let r = c.read_reply();
        assert_eq!(r.lines, ["200 NOOP ok."], "reply {}", 2 * i);
        let r = c.read_reply();
        assert_eq!(
            r.lines,
            ["257 \"/\" is the current directory"],
            "reply {}",
            2 * i + 1
        );
    }
    sender.join().expect("sender");
    c.quit();
}

/// A command may arrive a byte at a time.
fn fragmented_commands<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let mut c = srv.client();
    for b in b"USER anonymous\r\n" {
        c.send_raw(&[*b]);
    }
    assert_eq!(c.read_reply().lines, ["331 Please specify the password."]);
    c.send_raw(b"PASS x\r");
    c.send_raw(b"\nNO");
    assert_eq!(c.read_reply().lines, ["230 Login successful."]);
    c.send_raw(b"OP\r\n");
    assert_eq!(c.read_reply().lines, ["200 NOOP ok."]);
    c.quit();
}

fn idle_timeout<R: Runtime>() {
    let srv = TestServer::start::<R>(&["-t", "1"]);
    let mut c = srv.login();
    let start = Instant::now();
    c.check("NOOP", "200 NOOP ok.");
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Timeout."]);
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
    c.expect_closed();
    // The server goes on serving others.
    let c = srv.login();
    c.quit();
}

/// Commands push the idle deadline back: a session that sends one every
/// 300 ms outlives several 1 s timeouts (the daemons' timers may fire at an
/// older, earlier deadline and must then wait for the new one), and is
/// closed about a second after it falls silent.
fn activity_moves_the_idle_timeout<R: Runtime>() {
    let srv = TestServer::start::<R>(&["-t", "1"]);
    let mut c = srv.login();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(2500) {
        c.check("NOOP", "200 NOOP ok.");
        std::thread::sleep(Duration::from_millis(300));
    }
    let silent = Instant::now();
    let r = c.read_reply();
    assert_eq!(r.lines, ["421 Timeout."]);
    let waited = silent.elapsed();
    assert!(
        waited >= Duration::from_millis(500) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    c.expect_closed();
}

fn failed_logins_close_the_session<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--login-fail-delay", "50", "--max-login-attempts", "2"])
        .user("alice", "secret", None, false)
        .start::<R>();
    let mut c = srv.client();
    c.expect("USER alice", 331);
    c.check("PASS wrong", "530 Login incorrect.");
    c.expect("USER alice", 331);
    c.send("PASS wrong");
    assert_eq!(c.read_reply().lines, ["530 Login incorrect."]);
    assert_eq!(
        c.read_reply().lines,
        ["421 Too many failed login attempts, closing control connection."]
    );
    c.expect_closed();
    let mut c = srv.client();
    c.login("alice", "secret");
}
