//! Data transfers over real data connections: passive and active, IPv4
//! and IPv6, resume, append, unique names, ASCII conversion, names with
//! spaces and UTF-8, ABOR, and many sessions at once.
//!
//! They run on a folder, and on a bucket with `FTP_TEST_STORAGE=s3`;
//! there, resumed uploads and APPE are checked to be refused.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Barrier;

use ftp_host::daemon::Runtime;
use ftp_tests::data::pattern;
use ftp_tests::{
    Client, Data, DataMode, TIMEOUT, TestServer, assert_bytes, assert_storage_refusal,
    daemon_tests, wait_for,
};

daemon_tests! {
    any_storage;
    list_in_passive_mode,
    list_in_every_data_mode,
    retr_binary_exact_in_every_data_mode,
    stor_in_every_data_mode,
    passive_connection_after_the_command,
    many_transfers_in_one_session,
    ipv6_epsv_and_eprt,
    ipv4_mapped_listener,
    retr_resume,
    stor_resume,
    appe_appends_or_creates,
    stou_makes_unique_files,
    type_ascii_converts_both_ways,
    utf8_and_space_names,
    transfer_errors,
    refused_transfer_keeps_the_data_channel,
    abor_during_large_retr,
    abor_during_stor_keeps_previous_version,
    abor_before_data_connection,
    active_connection_refused,
    upload_data_sent_before_the_150,
    concurrent_uploads_to_one_name,
    abandoned_session_frees_its_slot,
    client_resets_data_connection_during_retr,
    large_directory_listing,
    concurrent_sessions,
    concurrent_sessions_on_four_threads,
}

fn list_in_passive_mode<R: Runtime>() {
    let srv = TestServer::builder()
        .file("a.txt", "a")
        .dir("b")
        .start::<R>();
    let mut c = srv.login();
    let addr = c.pasv();
    assert_eq!(addr.ip(), srv.addr().ip(), "227 names the server's address");
    let t = c.start("LIST", Data::Passive(addr)).expect("LIST");
    assert_eq!(t.opening.lines, ["150 Here comes the directory listing."]);
    let mut text = String::new();
    { t.stream }.read_to_string(&mut text).expect("listing");
    assert_eq!(c.read_reply().lines, ["226 Directory send OK."]);
    let lines: Vec<&str> = text.split_terminator("\r\n").collect();
    assert_eq!(lines.len(), 2, "{text:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('-') && l.ends_with(" a.txt")),
        "{text:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('d') && l.ends_with(" b")),
        "{text:?}"
    );
    c.quit();
}

fn list_in_every_data_mode<R: Runtime>() {
    let srv = TestServer::builder()
        .file("one.txt", "1")
        .file("two words.txt", "22")
        .start::<R>();
    let mut c = srv.login();
    for mode in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ] {
        c.mode = mode;
        let mut names: Vec<String> = c
            .nlst("")
            .split_terminator("\r\n")
            .map(str::to_string)
            .collect();
        names.sort();
        assert_eq!(names, ["one.txt", "two words.txt"], "{mode:?}");
        let list = c.list("");
        assert!(list.contains(" two words.txt\r\n"), "{mode:?}: {list:?}");
        let mlsd = c.mlsd("");
        assert!(mlsd.contains("size=2;"), "{mode:?}: {mlsd:?}");
    }
    c.quit();
}

fn retr_binary_exact_in_every_data_mode<R: Runtime>() {
    let content = pattern(1, 300 * 1024 + 7);
    let mut crlf = Vec::new();
    for i in 0..=255u8 {
        crlf.extend_from_slice(&[i, b'\r', b'\n', b'\n', b'\r']);
    }
    let srv = TestServer::builder()
        .file("f.bin", &content)
        .file("bytes.bin", &crlf)
        .file("empty.bin", "")
        .start::<R>();
    let mut c = srv.login();
    c.check("TYPE I", "200 Switching to Binary mode.");
    for mode in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ] {
        c.mode = mode;
        let data = c.data();
        let mut t = c.start("RETR f.bin", data).expect("RETR");
        assert_eq!(
            t.opening.lines,
            [format!(
                "150 Opening BINARY mode data connection for /f.bin ({} bytes).",
                content.len()
            )]
        );
        let mut got = Vec::new();
        t.stream.read_to_end(&mut got).expect("data");
        drop(t);
        assert_eq!(c.read_reply().lines, ["226 Transfer complete."], "{mode:?}");
        assert_bytes(
            &got,
            &content,
            &format!("{mode:?}: {} bytes differ", got.len()),
        );
        assert_eq!(c.retr("bytes.bin"), crlf, "{mode:?}: binary is untouched");
        assert_eq!(c.retr("empty.bin"), b"", "{mode:?}");
    }
    c.quit();
}

fn stor_in_every_data_mode<R: Runtime>() {
    let srv = TestServer::start::<R>(&["-w"]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for (i, mode) in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ]
    .into_iter()
    .enumerate()
    {
        c.mode = mode;
        let content = pattern(10 + i as u64, 200_000 + i);
        let name = format!("up{i}.bin");
        let opening = c.stor(&name, &content);
        assert_eq!(
            opening.lines,
            [format!(
                "150 Opening BINARY mode data connection for /{name}."
            )]
        );
        assert!(
            srv.read_file(&name) == Some(content.clone()),
            "{mode:?}: stored file differs"
        );
        assert_eq!(c.retr(&name), content, "{mode:?}: read back");
        c.check(&format!("SIZE {name}"), &format!("213 {}", content.len()));
    }
    // STOR replaces a longer file completely.
    c.stor("up0.bin", b"short");
    assert_eq!(srv.read_file("up0.bin").as_deref(), Some(&b"short"[..]));
    c.stor("empty", b"");
    assert_eq!(srv.read_file("empty").as_deref(), Some(&b""[..]));
    c.quit();
}

/// A client may connect to the passive port after sending the command.
fn passive_connection_after_the_command<R: Runtime>() {
    let content = pattern(3, 100_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("f.bin", &content)
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let addr = c.epsv();
    c.send("RETR f.bin");
    let mut data = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    data.set_read_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(c.read_reply().code, 150);
    let mut got = Vec::new();
    data.read_to_end(&mut got).unwrap();
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    assert_bytes(&got, &content, "got");
    let addr = c.pasv();
    c.send("STOR g.bin");
    let mut data = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    data.set_write_timeout(Some(TIMEOUT)).unwrap();
    assert_eq!(c.read_reply().code, 150);
    data.write_all(&content).unwrap();
    drop(data);
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    assert_bytes(&stored(&srv, "g.bin"), &content, "contents of g.bin");
    c.quit();
}

/// Passive listeners and data connections are cleaned up between
/// transfers: a hundred of them in one session.
fn many_transfers_in_one_session<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("small.txt", "small")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for i in 0..100 {
        c.mode = [
            DataMode::Pasv,
            DataMode::Epsv,
            DataMode::Port,
            DataMode::Eprt,
        ][i % 4];
        assert_eq!(c.retr("small.txt"), b"small", "transfer {i}");
        // An abandoned passive channel is replaced by the next one.
        if i % 10 == 0 {
            c.pasv();
        }
    }
    for i in 0..20 {
        c.stor(&format!("f{i}"), format!("{i}").as_bytes());
    }
    for i in 0..20 {
        assert_eq!(stored(&srv, &format!("f{i}")), format!("{i}").as_bytes());
    }
    c.quit();
}

fn ipv6_epsv_and_eprt<R: Runtime>() {
    let content = pattern(4, 123_456);
    let srv = TestServer::builder()
        .args(&["-w"])
        .ipv6()
        .file("f.bin", &content)
        .start::<R>();
    let Some(addr6) = srv.addr6() else {
        ftp_tests::skip("ipv6_epsv_and_eprt", "::1 is not available");
        return;
    };
    let mut c = srv.client_at(addr6);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    let stat = c.expect("STAT", 211);
    assert!(
        stat.inner().iter().any(|l| l == " Connected to ::1"),
        "{stat}"
    );
    c.check("PASV", "425 Use EPSV on IPv6 connections.");
    c.check("EPSV 1", "522 Network protocol not supported, use (2).");
    let r = c.expect("EPSV 2", 229);
    assert!(ftp_tests::client::parse_229(&r).is_some(), "{r}");
    c.check("PORT 127,0,0,1,4,1", "500 Illegal PORT command.");
    c.check("EPRT |1|127.0.0.1|5000|", "500 Illegal EPRT command.");
    c.check("EPRT |2|::2|5000|", "500 Illegal EPRT command.");
    for mode in [DataMode::Epsv, DataMode::Eprt] {
        c.mode = mode;
        assert_bytes(&c.retr("f.bin"), &content, &format!("{mode:?}"));
        let name = format!("{mode:?}.bin");
        c.stor(&name, &content);
        assert_bytes(&stored(&srv, &name), &content, &format!("{mode:?}"));
        let names = c.nlst("");
        assert!(
            names.contains(&format!("{name}\r\n")),
            "{mode:?}: {names:?}"
        );
    }
    c.quit();
    // IPv4 sessions on the same server are unaffected.
    let mut c = srv.login();
    c.pasv();
    c.quit();
}

/// An IPv6 socket bound to an IPv4-mapped address sees IPv4 clients as
/// `::ffff:127.0.0.1`: they must be served as IPv4 clients (227 replies,
/// PORT to their own address, passive connections from them accepted).
fn ipv4_mapped_listener<R: Runtime>() {
    let content = pattern(16, 50_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .listen("[::ffff:127.0.0.1]:0")
        .file("f.bin", &content)
        .start::<R>();
    let Some(mapped) = srv.extra_addr(0) else {
        ftp_tests::skip("ipv4_mapped_listener", "cannot bind [::ffff:127.0.0.1]");
        return;
    };
    let v4 = std::net::SocketAddr::from(([127, 0, 0, 1], mapped.port()));
    let mut c = srv.client_at(v4);
    c.login_anonymous();
    c.expect("TYPE I", 200);
    let stat = c.expect("STAT", 211);
    assert!(
        stat.inner().iter().any(|l| l == " Connected to 127.0.0.1"),
        "{stat}"
    );
    for mode in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ] {
        c.mode = mode;
        assert_bytes(&c.retr("f.bin"), &content, &format!("{mode:?}"));
    }
    c.check("EPSV 2", "522 Network protocol not supported, use (1).");
    c.stor("up.bin", b"mapped");
    assert_eq!(stored(&srv, "up.bin"), b"mapped");
    c.quit();
}

fn retr_resume<R: Runtime>() {
    let content = pattern(5, 100_000);
    let srv = TestServer::builder().file("f.bin", &content).start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for mode in [
        DataMode::Pasv,
        DataMode::Epsv,
        DataMode::Port,
        DataMode::Eprt,
    ] {
        c.mode = mode;
        assert_bytes(
            &c.retr_from("f.bin", 40_000),
            &content[40_000..],
            &format!("{mode:?}: REST 40000 + RETR"),
        );
    }
    assert_eq!(c.retr_from("f.bin", 99_999), &content[99_999..]);
    assert_eq!(c.retr_from("f.bin", 100_000), b"");
    assert_eq!(
        c.retr_from("f.bin", 500_000),
        b"",
        "an offset past the end sends nothing"
    );
    assert_bytes(&c.retr_from("f.bin", 0), &content, "REST 0 + RETR");
    // The offset is used once: the next transfer starts at 0 again.
    assert_bytes(&c.retr("f.bin"), &content, "RETR after a resumed RETR");
    // REST applies to the very next command only; here that is the PASV.
    c.check("REST 50000", "350 Restart position accepted (50000).");
    assert_bytes(&c.retr("f.bin"), &content, "REST, PASV, RETR");
    c.quit();
}

fn stor_resume<R: Runtime>() {
    let content = pattern(6, 150_000);
    let srv = TestServer::start::<R>(&["-w"]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    if srv.serves_a_bucket() {
        return stor_resume_is_refused(&srv, c, &content);
    }
    // An interrupted upload, completed with REST + STOR.
    c.stor("f.bin", &content[..60_000]);
    c.stor_from("f.bin", 60_000, &content[60_000..]);
    assert_bytes(
        &stored(&srv, "f.bin"),
        &content,
        "STOR then REST 60000 + STOR",
    );
    // The same in active mode.
    c.mode = DataMode::Eprt;
    c.stor("h.bin", &content[..1]);
    c.stor_from("h.bin", 1, &content[1..]);
    assert_bytes(&stored(&srv, "h.bin"), &content, "EPRT: REST 1 + STOR");
    // REST n + STOR writes from n on and ends the file there.
    srv.write_file("g.txt", "first+more");
    c.stor_from("g.txt", 5, b"!");
    assert_eq!(stored(&srv, "g.txt"), b"first!");
    // Resuming a file that does not exist yet starts it.
    c.stor_from("new.bin", 0, b"abc");
    assert_eq!(stored(&srv, "new.bin"), b"abc");
    c.quit();
}

/// An object cannot be written from an offset: `REST n` + `STOR` is
/// refused (passive and active), the object stays as it was and nothing
/// new appears; `REST 0` + `STOR` is a whole upload, which works.
fn stor_resume_is_refused(srv: &TestServer, mut c: Client, content: &[u8]) {
    c.stor("f.bin", &content[..60_000]);
    for (mode, offset) in [(DataMode::Epsv, 60_000), (DataMode::Eprt, 1)] {
        c.mode = mode;
        let r = c
            .upload_from("STOR f.bin", Some(offset), &content[offset as usize..])
            .expect_err("REST + STOR into an object");
        assert_storage_refusal(&r, &format!("{mode:?}: REST {offset} + STOR"));
        let r = c
            .upload_from("STOR h.bin", Some(offset), &content[offset as usize..])
            .expect_err("REST + STOR of a new object");
        assert_storage_refusal(&r, &format!("{mode:?}: REST {offset} + STOR of a new name"));
        c.check("NOOP", "200 NOOP ok.");
    }
    assert_bytes(
        &stored(srv, "f.bin"),
        &content[..60_000],
        "the object as it was",
    );
    assert!(!srv.exists("h.bin"), "a refused upload made an object");
    // The offset was used up by the refusal: the next STOR is whole.
    c.stor("f.bin", content);
    assert_bytes(
        &stored(srv, "f.bin"),
        content,
        "STOR after a refused resume",
    );
    c.stor_from("new.bin", 0, b"abc");
    assert_eq!(stored(srv, "new.bin"), b"abc");
    c.quit();
}

fn appe_appends_or_creates<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("f.txt", "first")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    if srv.serves_a_bucket() {
        return appe_is_refused(&srv, c);
    }
    let opening = c
        .upload("APPE f.txt", b"+more")
        .unwrap_or_else(|r| panic!("APPE: {r}"));
    assert_eq!(opening.code, 150);
    assert_eq!(stored(&srv, "f.txt"), b"first+more");
    c.upload("APPE new.txt", b"created")
        .unwrap_or_else(|r| panic!("APPE: {r}"));
    assert_eq!(stored(&srv, "new.txt"), b"created");
    let big = pattern(7, 500_000);
    c.upload("APPE new.txt", &big).unwrap();
    let on_disk = stored(&srv, "new.txt");
    assert!(
        on_disk.len() == 7 + big.len() && on_disk[7..] == big[..] && on_disk[..7] == b"created"[..]
    );
    let data = c.data();
    let r = c
        .start("APPE nowhere/x", data)
        .expect_err("APPE into a missing folder");
    assert_eq!(r.code, 553, "{r}");
    c.quit();
}

/// An object cannot be added to: APPE is refused whether the object
/// exists or not, in any data mode, and leaves the bucket as it was; the
/// data channel stays for the next transfer.
fn appe_is_refused(srv: &TestServer, mut c: Client) {
    for mode in [DataMode::Pasv, DataMode::Port] {
        c.mode = mode;
        for line in ["APPE f.txt", "APPE new.txt", "APPE nowhere/x"] {
            let r = c
                .upload(line, b"+more")
                .expect_err("APPE on an object store");
            assert_storage_refusal(&r, &format!("{mode:?}: {line}"));
        }
        assert_eq!(c.retr("f.txt"), b"first", "{mode:?}");
    }
    assert_eq!(srv.names(""), ["f.txt"]);
    assert_eq!(stored(srv, "f.txt"), b"first");
    let feat = c.expect("FEAT", 211);
    assert!(
        !feat.inner().iter().any(|l| l.contains("REST STREAM")),
        "FEAT offers resumed uploads: {feat}"
    );
    c.quit();
}

fn stou_makes_unique_files<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .dir("incoming")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    c.check("CWD incoming", "250 Directory successfully changed.");
    let mut names = Vec::new();
    for content in [&b"first"[..], b"second"] {
        let opening = c
            .upload("STOU", content)
            .unwrap_or_else(|r| panic!("STOU: {r}"));
        assert_eq!(opening.code, 150);
        let name = opening
            .text()
            .strip_prefix("FILE: ")
            .unwrap_or_else(|| panic!("STOU's 150 names the file: {opening}"))
            .to_string();
        assert!(!name.contains('/'), "{name}");
        assert_eq!(stored(&srv, &format!("incoming/{name}")), content);
        names.push(name);
    }
    assert_ne!(names[0], names[1]);
    names.sort();
    assert_eq!(srv.names("incoming"), names);
    assert_eq!(
        srv.names(""),
        ["incoming"],
        "STOU writes into the working directory"
    );
    c.quit();
}

fn type_ascii_converts_both_ways<R: Runtime>() {
    let mut unix = String::new();
    for i in 0..20_000 {
        unix.push_str(&format!("line {i} of some text\n"));
    }
    let dos = unix.replace('\n', "\r\n");
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("unix.txt", &unix)
        .file("short.txt", "a\nb\n")
        .start::<R>();
    let mut c = srv.login();
    c.check("TYPE A", "200 Switching to ASCII mode.");
    let data = c.data();
    let t = c.start("RETR short.txt", data).expect("RETR");
    assert!(
        t.opening
            .text()
            .starts_with("Opening ASCII mode data connection for /short.txt")
    );
    let mut got = Vec::new();
    { t.stream }.read_to_end(&mut got).unwrap();
    assert_eq!(c.read_reply().code, 226);
    assert_eq!(got, b"a\r\nb\r\n");
    assert_bytes(&c.retr("unix.txt"), dos.as_bytes(), "LF becomes CRLF");
    c.stor("up.txt", dos.as_bytes());
    assert!(
        stored(&srv, "up.txt") == unix.as_bytes(),
        "CRLF becomes LF in the stored file"
    );
    c.stor("small.txt", b"a\r\nb\r\n");
    assert_eq!(stored(&srv, "small.txt"), b"a\nb\n");
    // A CRLF already in the file is sent as it is, not doubled.
    srv.write_file("mixed.txt", "a\r\nb\n");
    assert_eq!(c.retr("mixed.txt"), b"a\r\nb\r\n");
    // TYPE I leaves both alone.
    c.check("TYPE I", "200 Switching to Binary mode.");
    assert_bytes(&c.retr("unix.txt"), unix.as_bytes(), "RETR unix.txt");
    c.stor("raw.txt", dos.as_bytes());
    assert_bytes(
        &stored(&srv, "raw.txt"),
        dos.as_bytes(),
        "contents of raw.txt",
    );
    c.quit();
}

fn utf8_and_space_names<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("déjà vu/日本語.txt", "nihongo")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let name = "ünï côdé.txt";
    c.stor(name, "contents ✓".as_bytes());
    assert_eq!(stored(&srv, name), "contents ✓".as_bytes());
    assert!(srv.names("").contains(&name.to_string()));
    assert!(c.nlst("").split_terminator("\r\n").any(|n| n == name));
    assert!(c.list("").contains(&format!(" {name}\r\n")));
    assert!(c.mlsd("").contains(&format!("; {name}\r\n")));
    assert_eq!(c.retr(name), "contents ✓".as_bytes());
    c.check(&format!("SIZE {name}"), "213 12");
    c.check(&format!("RNFR {name}"), "350 Ready for RNTO.");
    c.check("RNTO  leading space.txt", "250 Rename successful.");
    assert_eq!(
        stored(&srv, " leading space.txt"),
        "contents ✓".as_bytes(),
        "the argument is verbatim after one space"
    );
    assert!(!srv.exists(name), "renamed away");
    c.check("MKD dïr with space", "257 \"/dïr with space\" created");
    assert!(srv.is_dir("dïr with space"));
    c.check("CWD dïr with space", "250 Directory successfully changed.");
    c.check("PWD", "257 \"/dïr with space\" is the current directory");
    c.check("CWD /déjà vu", "250 Directory successfully changed.");
    assert_eq!(c.retr("日本語.txt"), b"nihongo");
    assert_eq!(c.nlst(""), "日本語.txt\r\n");
    c.quit();
}

fn transfer_errors<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("dir/f.txt", "x")
        .start::<R>();
    let mut c = srv.login();
    let cases = [
        (
            "RETR nope",
            "550 Failed to open file: No such file or directory.",
        ),
        ("RETR dir", "550 Failed to open file: Is a directory."),
        (
            "STOR nowhere/x",
            "553 Could not create file: No such file or directory.",
        ),
        ("STOR /", "553 Could not create file."),
        ("STOR dir", "553 Could not create file: Is a directory."),
        (
            "LIST nope",
            "550 Failed to open file: No such file or directory.",
        ),
    ];
    for (line, expected) in cases {
        let data = c.data();
        match c.start(line, data) {
            Err(r) => assert_eq!(r.lines, [expected], "{line}"),
            Ok(t) => panic!("{line}: {}", t.opening),
        }
        c.check("NOOP", "200 NOOP ok.");
    }
    assert!(!srv.exists("nowhere"));
    assert_eq!(stored(&srv, "dir/f.txt"), b"x");
    c.quit();
}

/// A transfer refused before it starts (`550`, `553`) leaves the data
/// channel prepared, as vsftpd, pure-ftpd and pyftpdlib do: a client that
/// connects after sending the command (suppaftp) reaches the port, and the
/// next transfer uses it without a new PASV/EPSV/PORT.
fn refused_transfer_keeps_the_data_channel<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("a.txt", "hello\n")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for mode in [DataMode::Pasv, DataMode::Epsv] {
        c.mode = mode;
        let Data::Passive(addr) = c.data() else {
            unreachable!("{mode:?} is passive")
        };
        // suppaftp's order: the command, then the connect, then the reply.
        c.send("RETR missing.txt");
        let early = TcpStream::connect_timeout(&addr, TIMEOUT)
            .unwrap_or_else(|e| panic!("{mode:?}: the port closed after RETR: {e}"));
        let r = c.read_reply();
        assert_eq!(
            r.lines,
            ["550 Failed to open file: No such file or directory."],
            "{mode:?}"
        );
        c.check(
            "LIST missing/",
            "550 Failed to open file: No such file or directory.",
        );
        c.check(
            "STOR nowhere/x.txt",
            "553 Could not create file: No such file or directory.",
        );
        // The next transfer takes the connection made after the 550.
        let opening = c.expect("RETR a.txt", 150);
        let mut got = Vec::new();
        early.set_read_timeout(Some(TIMEOUT)).unwrap();
        { early }
            .read_to_end(&mut got)
            .unwrap_or_else(|e| panic!("{mode:?}: data after {opening}: {e}"));
        assert_eq!(got, b"hello\n", "{mode:?}");
        assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
        // That one used the channel up.
        c.check("RETR a.txt", "425 Use PORT or PASV first.");
    }
    // The same for an active channel.
    c.mode = DataMode::Port;
    let Data::Active(listener) = c.data() else {
        unreachable!("PORT is active")
    };
    c.expect("RETR missing.txt", 550);
    let data = Data::Active(listener);
    let t = c
        .start("RETR a.txt", data)
        .expect("RETR after a refused RETR");
    let mut got = Vec::new();
    { t.stream }.read_to_end(&mut got).expect("data");
    assert_eq!(got, b"hello\n");
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    assert!(!srv.exists("nowhere"));
    c.quit();
}

/// ABOR as ftplib and others send it, during a RETR the client does not
/// read: 426 then 226, deferred commands after them, and the session goes
/// on.
fn abor_during_large_retr<R: Runtime>() {
    let size = 48 << 20;
    let srv = TestServer::builder()
        .file("big.bin", pattern(8, size))
        .file("small.txt", "small")
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    for mode in [DataMode::Pasv, DataMode::Port] {
        c.mode = mode;
        abort_one_retr(&mut c, size);
    }
    c.check("ABOR", "225 No transfer to ABOR.");
    assert_eq!(c.retr("small.txt"), b"small");
    c.quit();
}

fn abort_one_retr(c: &mut Client, size: usize) {
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut head = vec![0u8; 64 * 1024];
    t.stream.read_exact(&mut head).expect("first bytes");
    assert_bytes(&head, &pattern(8, head.len()), "first bytes");
    // Other commands wait for the transfer; STAT answers at once.
    c.send("PWD");
    let stat = c.expect("STAT", 211);
    assert!(
        stat.inner()
            .iter()
            .any(|l| l == " A data transfer is in progress"),
        "{stat}"
    );
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(
        c.read_reply().lines,
        ["426 Connection closed; transfer aborted."]
    );
    assert_eq!(c.read_reply().lines, ["226 Abort successful."]);
    assert_eq!(c.read_reply().lines, ["257 \"/\" is the current directory"]);
    c.check("NOOP", "200 NOOP ok.");
    // The server closed the data connection without sending everything.
    let mut rest = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        match t.stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("the data connection stayed open after ABOR: {e}"),
        }
    }
    assert!(
        head.len() + rest < size,
        "{:?}: the whole file was sent",
        c.mode
    );
}

/// ABOR while the server still waits for the passive data connection.
fn abor_before_data_connection<R: Runtime>() {
    let srv = TestServer::builder().file("f.txt", "data").start::<R>();
    let mut c = srv.login();
    let addr = c.pasv();
    c.send("RETR f.txt");
    c.send("ABOR");
    // The 150 may or may not come first (the file may have been opened
    // before the ABOR was read).
    let mut r = c.read_reply();
    if r.code == 150 {
        r = c.read_reply();
    }
    assert_eq!(r.lines, ["426 Connection closed; transfer aborted."]);
    assert_eq!(c.read_reply().lines, ["226 Abort successful."]);
    c.check("NOOP", "200 NOOP ok.");
    // The listener is gone: a late connection gets nothing.
    if let Ok(mut late) = TcpStream::connect_timeout(&addr, TIMEOUT) {
        late.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = Vec::new();
        match late.read_to_end(&mut buf) {
            Ok(_) => assert!(buf.is_empty(), "data after ABOR: {buf:?}"),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("the aborted passive listener still accepts: {e}"),
        }
    }
    assert_eq!(c.retr("f.txt"), b"data");
    c.quit();
}

/// PORT to a port nobody listens on: 425 after the 150, and the session
/// goes on.
fn active_connection_refused<R: Runtime>() {
    let srv = TestServer::builder().file("f.txt", "data").start::<R>();
    let mut c = srv.login();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    c.expect(&format!("EPRT |1|127.0.0.1|{port}|"), 200);
    c.send("RETR f.txt");
    let mut r = c.read_reply();
    if r.code == 150 {
        r = c.read_reply();
    }
    assert_eq!(r.lines, ["425 Failed to establish connection."]);
    c.check("NOOP", "200 NOOP ok.");
    assert_eq!(c.retr("f.txt"), b"data");
    c.quit();
}

/// A client that writes its upload before the 150 arrives loses nothing.
fn upload_data_sent_before_the_150<R: Runtime>() {
    let content = pattern(12, 200_000);
    let srv = TestServer::start::<R>(&["-w"]);
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let addr = c.epsv();
    let mut data = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
    data.set_write_timeout(Some(TIMEOUT)).unwrap();
    c.send("STOR early.bin");
    data.write_all(&content).unwrap();
    drop(data);
    assert_eq!(c.read_reply().code, 150);
    assert_eq!(c.read_reply().lines, ["226 Transfer complete."]);
    assert_bytes(
        &stored(&srv, "early.bin"),
        &content,
        "upload sent before the 150",
    );
    c.quit();
}

/// Two sessions upload to the same name at once: the file ends up as one
/// of the two, complete.
fn concurrent_uploads_to_one_name<R: Runtime>() {
    let srv = TestServer::start::<R>(&["-w"]);
    let a_data = pattern(13, 3 << 20);
    let b_data = pattern(14, 3 << 20);
    let mut a = srv.login();
    let mut b = srv.login();
    for c in [&mut a, &mut b] {
        c.expect("TYPE I", 200);
    }
    let da = a.data();
    let mut ta = a.start("STOR same.bin", da).expect("STOR a");
    let db = b.data();
    let mut tb = b.start("STOR same.bin", db).expect("STOR b");
    for chunk in 0..3 {
        let r = chunk << 20..(chunk + 1) << 20;
        ta.stream.write_all(&a_data[r.clone()]).unwrap();
        tb.stream.write_all(&b_data[r]).unwrap();
    }
    drop(ta);
    assert_eq!(a.read_reply().lines, ["226 Transfer complete."]);
    drop(tb);
    assert_eq!(b.read_reply().lines, ["226 Transfer complete."]);
    let now = stored(&srv, "same.bin");
    assert!(
        now == a_data || now == b_data,
        "the file is neither upload whole ({} bytes)",
        now.len()
    );
    wait_for_no_partial_uploads(&srv);
    assert_eq!(srv.names(""), ["same.bin"]);
    a.quit();
    b.quit();
}

/// A client that vanishes in the middle of a transfer frees its place
/// (here the only one, `--max-clients 1`).
fn abandoned_session_frees_its_slot<R: Runtime>() {
    let srv = TestServer::builder()
        .args(&["--max-clients", "1"])
        .file("big.bin", pattern(15, 16 << 20))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let t = c.start("RETR big.bin", data).expect("RETR");
    drop(c);
    drop(t);
    let mut next = wait_for("the abandoned session's place", TIMEOUT, || {
        let c = Client::try_connect(srv.addr()).expect("connect");
        (c.greeting.code == 220).then_some(c)
    });
    next.login_anonymous();
    next.check("SIZE big.bin", &format!("213 {}", 16 << 20));
    next.quit();
}

fn abor_during_stor_keeps_previous_version<R: Runtime>() {
    let old = pattern(9, 100_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("doc.bin", &old)
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("STOR doc.bin", data).expect("STOR");
    // More than one 8 MiB part: in a bucket, a multipart upload is under
    // way, and must be aborted.
    t.stream.write_all(&pattern(10, 9 << 20)).expect("data");
    c.send("ABOR");
    let r = c.read_reply();
    assert_eq!(r.lines, ["426 Connection closed; transfer aborted."]);
    assert_eq!(c.read_reply().lines, ["226 Abort successful."]);
    drop(t);
    wait_for_no_partial_uploads(&srv);
    let now = stored(&srv, "doc.bin");
    assert!(
        now == old,
        "an aborted STOR must not replace the file (now {} bytes)",
        now.len()
    );
    assert_eq!(srv.names(""), ["doc.bin"]);
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// The client drops the data connection in the middle of a RETR: the
/// server reports 426 and the session continues.
fn client_resets_data_connection_during_retr<R: Runtime>() {
    let srv = TestServer::builder()
        .file("big.bin", pattern(11, 32 << 20))
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut head = vec![0u8; 4096];
    t.stream.read_exact(&mut head).unwrap();
    ftp_tests::client::reset(t.stream);
    assert_eq!(
        c.read_reply().lines,
        ["426 Connection closed; transfer aborted."]
    );
    c.check("NOOP", "200 NOOP ok.");
    c.check("SIZE big.bin", &format!("213 {}", 32 << 20));
    c.quit();
}

/// A directory with more entries than a listing sorts in memory.
fn large_directory_listing<R: Runtime>() {
    let srv = TestServer::start::<R>(&[]);
    let files: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|i| (format!("file-{i:05}.txt"), b"x".to_vec()))
        .collect();
    srv.write_files(&files);
    let mut c = srv.login();
    let mut names: Vec<String> = c
        .nlst("")
        .split_terminator("\r\n")
        .map(str::to_string)
        .collect();
    names.sort();
    let expected: Vec<String> = (0..3000).map(|i| format!("file-{i:05}.txt")).collect();
    assert_eq!(names, expected);
    let list = c.list("");
    assert_eq!(list.split_terminator("\r\n").count(), 3000);
    let mlsd = c.mlsd("");
    assert_eq!(mlsd.split_terminator("\r\n").count(), 3000);
    // The same over the control connection: a reply far larger than the
    // socket buffers.
    let stat = c.expect("STAT /", 213);
    assert_eq!(stat.inner().len(), 3000, "{}", stat.lines[0]);
    assert!(stat.inner().iter().all(|l| l.starts_with(" -rw")));
    c.check("NOOP", "200 NOOP ok.");
    c.quit();
}

/// 50 sessions log in, then download at the same time.
fn concurrent_sessions<R: Runtime>() {
    concurrent::<R>(50, &[]);
}

/// The same with four worker threads (`--threads 4`).
fn concurrent_sessions_on_four_threads<R: Runtime>() {
    concurrent::<R>(50, &["--threads", "4"]);
}

fn concurrent<R: Runtime>(n_sessions: usize, args: &[&str]) {
    let n = n_sessions;
    let mut builder = TestServer::builder().args(args);
    for i in 0..10 {
        builder = builder.file(
            &format!("f{i}.bin"),
            pattern(100 + i, 256 * 1024 + i as usize),
        );
    }
    let srv = builder.start::<R>();
    let barrier = Barrier::new(n);
    let addr = srv.addr();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|n| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut c = Client::connect(addr);
                    c.login_anonymous();
                    c.expect("TYPE I", 200);
                    c.mode = DataMode::Epsv;
                    barrier.wait();
                    let i = (n % 10) as u64;
                    let got = c.retr(&format!("f{i}.bin"));
                    assert!(
                        got == pattern(100 + i, 256 * 1024 + i as usize),
                        "session {n}: wrong bytes"
                    );
                    c.quit();
                })
            })
            .collect();
        for (n, h) in handles.into_iter().enumerate() {
            if let Err(e) = h.join() {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("session {n} failed: {msg}");
            }
        }
    });
}

/// Waits until no unfinished upload is left: no hidden temporary file
/// (`.NAME.part-*`) in a served folder, no multipart upload under a
/// served prefix.
fn wait_for_no_partial_uploads(srv: &TestServer) {
    wait_for("the unfinished upload to be cleaned up", TIMEOUT, || {
        srv.partial_uploads().is_empty().then_some(())
    });
}

/// The stored file `rel`, which must exist.
#[track_caller]
fn stored(srv: &TestServer, rel: &str) -> Vec<u8> {
    srv.read_file(rel)
        .unwrap_or_else(|| panic!("{rel} was not stored"))
}
