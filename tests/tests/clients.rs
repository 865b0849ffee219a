//! Real FTP clients against both daemons: curl, wget, lftp, Python's
//! ftplib, ncftp and tnftp. A missing client skips its test with a
//! `SKIP:` line (or fails it when `FTP_TEST_REQUIRE_CLIENTS=1`).

use std::fs;
use std::path::Path;

use ftp_host::daemon::Runtime;
use ftp_tests::clients::{CLIENT_TIMEOUT, command, require, run};
use ftp_tests::data::pattern;
use ftp_tests::{TestServer, daemon_tests, tree};

daemon_tests! {
    curl_list,
    curl_download_passive_and_active,
    curl_upload,
    wget_download,
    wget_recursive,
    lftp_mirror_down_and_up,
    lftp_active_mode,
    python_ftplib,
    ncftp_get_and_put,
    tnftp_fetch_and_upload,
}

/// A scratch folder for a client: its working directory and `HOME`.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix("ftp-tests-client-")
            .tempdir()
            .unwrap();
        fs::create_dir(dir.path().join("home")).unwrap();
        fs::create_dir(dir.path().join("work")).unwrap();
        Scratch { dir }
    }
    fn home(&self) -> std::path::PathBuf {
        self.dir.path().join("home")
    }
    fn work(&self) -> std::path::PathBuf {
        self.dir.path().join("work")
    }
    fn cmd(&self, program: &Path) -> std::process::Command {
        command(program, &self.work(), &self.home())
    }
}

fn url(srv: &TestServer, path: &str) -> String {
    format!("ftp://127.0.0.1:{}/{path}", srv.addr().port())
}

/// A small tree with nested folders, a name with spaces and binary data.
fn sample_tree(b: ftp_tests::Builder) -> ftp_tests::Builder {
    b.file("tree/top.txt", "top level\n")
        .file("tree/with space.txt", "spaces in the name\n")
        .file("tree/bin/data.bin", pattern(40, 70_000))
        .file("tree/a/b/c/deep.txt", "deep\n")
        .file("tree/a/empty.txt", "")
        .dir("tree/a/emptydir")
}

fn curl_list<R: Runtime>() {
    let Some(curl) = require("curl_list", "curl") else {
        return;
    };
    let srv = TestServer::builder()
        .file("hello.txt", "hi\n")
        .file("two words.txt", "x")
        .dir("folder")
        .start::<R>();
    let s = Scratch::new();
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", &url(&srv, "")]),
        CLIENT_TIMEOUT,
    )
    .success("curl list");
    for name in ["hello.txt", "two words.txt", "folder"] {
        assert!(
            out.stdout.lines().any(|l| l.ends_with(&format!(" {name}"))),
            "{name} missing:\n{out}"
        );
    }
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", "--list-only", &url(&srv, "")]),
        CLIENT_TIMEOUT,
    )
    .success("curl --list-only");
    let mut names: Vec<&str> = out.stdout.lines().collect();
    names.sort();
    assert_eq!(names, ["folder", "hello.txt", "two words.txt"], "{out}");
}

fn curl_download_passive_and_active<R: Runtime>() {
    let Some(curl) = require("curl_download_passive_and_active", "curl") else {
        return;
    };
    let content = pattern(41, 1_000_000);
    let srv = TestServer::builder()
        .file("dir/file.bin", &content)
        .file("dir/my file.txt", "spaced\n")
        .start::<R>();
    let s = Scratch::new();
    let modes: [(&str, &[&str]); 4] = [
        ("epsv", &["--ftp-pasv"]),
        ("pasv", &["--ftp-pasv", "--disable-epsv"]),
        ("eprt", &["-P", "-"]),
        ("port", &["-P", "-", "--disable-eprt"]),
    ];
    for (name, flags) in modes {
        let out_file = s.work().join(format!("{name}.bin"));
        let out = run(
            s.cmd(&curl)
                .args(["-sS", "--max-time", "30"])
                .args(flags)
                .arg("-o")
                .arg(&out_file)
                .arg(url(&srv, "dir/file.bin")),
            CLIENT_TIMEOUT,
        );
        let out = out.success(&format!("curl download ({name})"));
        assert!(
            fs::read(&out_file).unwrap() == content,
            "{name}: downloaded bytes differ\n{out}"
        );
    }
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", &url(&srv, "dir/my%20file.txt")]),
        CLIENT_TIMEOUT,
    )
    .success("curl download of a name with a space");
    assert_eq!(out.stdout, "spaced\n");
    // A missing file is an error (curl exit 78: remote file not found).
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", &url(&srv, "dir/nope")]),
        CLIENT_TIMEOUT,
    );
    assert_eq!(out.status.code(), Some(78), "{out}");
}

fn curl_upload<R: Runtime>() {
    let Some(curl) = require("curl_upload", "curl") else {
        return;
    };
    let srv = TestServer::builder().args(&["-w"]).dir("up").start::<R>();
    let s = Scratch::new();
    let content = pattern(42, 654_321);
    let local = s.work().join("local.bin");
    fs::write(&local, &content).unwrap();
    for (name, flags) in [("passive", &[][..]), ("active", &["-P", "-"][..])] {
        let out = run(
            s.cmd(&curl)
                .args(["-sS", "--max-time", "30"])
                .args(flags)
                .arg("-T")
                .arg(&local)
                .arg(url(&srv, &format!("up/{name}.bin"))),
            CLIENT_TIMEOUT,
        );
        out.success(&format!("curl upload ({name})"));
        assert!(
            fs::read(srv.path(&format!("up/{name}.bin"))).unwrap() == content,
            "{name}: file on the server differs"
        );
    }
    // Creating missing folders on the way.
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", "--ftp-create-dirs", "-T"])
            .arg(&local)
            .arg(url(&srv, "new/dir/x.bin")),
        CLIENT_TIMEOUT,
    );
    out.success("curl --ftp-create-dirs");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("new/dir/x.bin")).unwrap(),
        &content,
        "contents of new/dir/x.bin",
    );
    // A read-only server refuses.
    let ro = TestServer::start::<R>(&[]);
    let out = run(
        s.cmd(&curl)
            .args(["-sS", "--max-time", "30", "-T"])
            .arg(&local)
            .arg(url(&ro, "x.bin")),
        CLIENT_TIMEOUT,
    );
    assert!(!out.status.success(), "upload to a read-only server: {out}");
    assert!(!ro.path("x.bin").exists());
}

fn wget_download<R: Runtime>() {
    let Some(wget) = require("wget_download", "wget") else {
        return;
    };
    let content = pattern(43, 500_000);
    let srv = TestServer::builder()
        .file("file.bin", &content)
        .start::<R>();
    let s = Scratch::new();
    for (name, flags) in [("passive", &[][..]), ("active", &["--no-passive-ftp"][..])] {
        let out_file = s.work().join(format!("{name}.bin"));
        let out = run(
            s.cmd(&wget)
                .args(["-q", "--timeout=20", "--tries=1"])
                .args(flags)
                .arg("-O")
                .arg(&out_file)
                .arg(url(&srv, "file.bin")),
            CLIENT_TIMEOUT,
        );
        let out = out.success(&format!("wget ({name})"));
        assert!(
            fs::read(&out_file).unwrap() == content,
            "{name}: bytes differ\n{out}"
        );
    }
}

fn wget_recursive<R: Runtime>() {
    let Some(wget) = require("wget_recursive", "wget") else {
        return;
    };
    let srv = sample_tree(TestServer::builder()).start::<R>();
    let s = Scratch::new();
    let out = run(
        s.cmd(&wget)
            .args(["-q", "-r", "-nH", "--timeout=20", "--tries=1"])
            .arg(url(&srv, "tree/")),
        CLIENT_TIMEOUT,
    );
    let out = out.success("wget -r");
    // wget does not create empty folders it finds nothing in; compare the
    // files.
    let served = tree::snapshot(&srv.path("tree"));
    let got = tree::snapshot(&s.work().join("tree"));
    for (path, entry) in &served {
        if let tree::Entry::File(_) = entry {
            assert_eq!(
                got.get(path),
                Some(entry),
                "{} differs or is missing\n{out}",
                path.display()
            );
        }
    }
    for (path, entry) in &got {
        assert_eq!(
            served.get(path),
            Some(entry),
            "{} was not on the server",
            path.display()
        );
    }
}

/// lftp settings that make it fail fast instead of retrying.
const LFTP_SETTINGS: &str = "set cmd:fail-exit yes; set net:max-retries 1; \
     set net:timeout 10; set net:reconnect-interval-base 1; set ftp:ssl-allow no; \
     set xfer:clobber on;";

fn lftp_mirror_down_and_up<R: Runtime>() {
    let Some(lftp) = require("lftp_mirror_down_and_up", "lftp") else {
        return;
    };
    let srv = sample_tree(TestServer::builder().args(&["-w"])).start::<R>();
    let s = Scratch::new();
    let script = format!("{LFTP_SETTINGS} mirror tree local; bye");
    let out = run(
        s.cmd(&lftp)
            .args(["-u", "anonymous,lftp@", "-e", &script])
            .arg(url(&srv, "")),
        CLIENT_TIMEOUT,
    );
    let out = out.success("lftp mirror");
    let _ = &out;
    tree::assert_same_tree(&srv.path("tree"), &s.work().join("local"));

    // Up: a local tree with different contents, mirrored to a new folder.
    tree::write_files(
        &s.work().join("upload"),
        &[
            ("one.txt", b"one\n"),
            ("sub dir/two.txt", b"two\n"),
            ("sub dir/deeper/three.bin", &pattern(44, 123_457)),
            ("sub dir/deeper/ünï côdé.txt", "utf-8\n".as_bytes()),
        ],
    );
    fs::create_dir_all(s.work().join("upload/empty dir")).unwrap();
    let script = format!("{LFTP_SETTINGS} mirror -R upload uploaded; bye");
    let out = run(
        s.cmd(&lftp)
            .args(["-u", "anonymous,lftp@", "-e", &script])
            .arg(url(&srv, "")),
        CLIENT_TIMEOUT,
    );
    out.success("lftp mirror -R");
    tree::assert_same_tree(&s.work().join("upload"), &srv.path("uploaded"));
    assert!(
        !tree::names(srv.root()).iter().any(|n| n.contains(".part")),
        "{:?}",
        tree::names(srv.root())
    );
}

fn lftp_active_mode<R: Runtime>() {
    let Some(lftp) = require("lftp_active_mode", "lftp") else {
        return;
    };
    let srv = sample_tree(TestServer::builder().args(&["-w"])).start::<R>();
    let s = Scratch::new();
    fs::write(s.work().join("put.bin"), pattern(45, 300_000)).unwrap();
    let script = format!(
        "{LFTP_SETTINGS} set ftp:passive-mode off; mirror tree local; \
         put put.bin -o tree/put.bin; cls -1 tree; bye"
    );
    let out = run(
        s.cmd(&lftp)
            .args(["-u", "anonymous,lftp@", "-e", &script])
            .arg(url(&srv, "")),
        CLIENT_TIMEOUT,
    );
    let out = out.success("lftp active mode");
    assert!(out.stdout.contains("with space.txt"), "{out}");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("tree/put.bin")).unwrap(),
        &pattern(45, 300_000),
        "put in active mode",
    );
    fs::remove_file(srv.path("tree/put.bin")).unwrap();
    tree::assert_same_tree(&srv.path("tree"), &s.work().join("local"));
}

/// Python's ftplib: login, nlst, retrbinary, storbinary, abort, mlsd.
const FTPLIB_SCRIPT: &str = r#"
import ftplib, sys
host, port, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ftp = ftplib.FTP()
ftp.connect(host, port, timeout=10)
print("WELCOME", ftp.getwelcome())
ftp.login()
print("NLST", "|".join(sorted(ftp.nlst())))
with open(work + "/down.bin", "wb") as f:
    ftp.retrbinary("RETR data.bin", f.write)
with open(work + "/up.bin", "rb") as f:
    print("STOR", ftp.storbinary("STOR up.bin", f))
ftp.set_pasv(False)
with open(work + "/down-active.bin", "wb") as f:
    ftp.retrbinary("RETR data.bin", f.write)
ftp.set_pasv(True)
ftp.voidcmd("TYPE I")
conn = ftp.transfercmd("RETR big.bin")
got = conn.recv(65536)
print("ABOR-GOT", len(got) > 0)
resp = ftp.abort()
print("ABOR", resp)
if resp.startswith("426"):
    print("ABOR-END", ftp.getresp())
conn.close()
print("NOOP", ftp.voidcmd("NOOP"))
facts = {name: f for name, f in ftp.mlsd()}
print("MLSD", "|".join(sorted(facts)))
print("MLSD-SIZE", facts["data.bin"]["size"], facts["data.bin"]["type"])
print("SIZE", ftp.size("data.bin"))
ftp.cwd("sub")
print("PWD", ftp.pwd())
print("QUIT", ftp.quit())
"#;

fn python_ftplib<R: Runtime>() {
    let Some(python) = require("python_ftplib", "python3") else {
        return;
    };
    let data = pattern(46, 250_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("data.bin", &data)
        .file("big.bin", pattern(47, 48 << 20))
        .dir("sub")
        .start::<R>();
    let s = Scratch::new();
    let up = pattern(48, 99_999);
    fs::write(s.work().join("up.bin"), &up).unwrap();
    let out = run(
        s.cmd(&python)
            .arg("-c")
            .arg(FTPLIB_SCRIPT)
            .arg("127.0.0.1")
            .arg(srv.addr().port().to_string())
            .arg(s.work()),
        CLIENT_TIMEOUT,
    );
    let out = out.success("python ftplib");
    let line = |key: &str| -> String {
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line\n{out}"))
            .to_string()
    };
    assert_eq!(line("WELCOME"), "220 Service ready.");
    assert_eq!(line("NLST"), "big.bin|data.bin|sub");
    ftp_tests::assert_bytes(
        &fs::read(s.work().join("down.bin")).unwrap(),
        &data,
        "contents of down.bin",
    );
    ftp_tests::assert_bytes(
        &fs::read(s.work().join("down-active.bin")).unwrap(),
        &data,
        "contents of down-active.bin",
    );
    assert_eq!(line("STOR"), "226 Transfer complete.");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("up.bin")).unwrap(),
        &up,
        "contents of up.bin",
    );
    assert_eq!(line("ABOR-GOT"), "True");
    let abor = line("ABOR");
    assert!(abor.starts_with("426"), "ABOR answered {abor}\n{out}");
    assert_eq!(line("ABOR-END"), "226 Abort successful.");
    assert_eq!(line("NOOP"), "200 NOOP ok.");
    assert_eq!(line("MLSD"), "big.bin|data.bin|sub|up.bin");
    assert_eq!(line("MLSD-SIZE"), "250000 file");
    assert_eq!(line("SIZE"), "250000");
    assert_eq!(line("PWD"), "/sub");
    assert_eq!(line("QUIT"), "221 Goodbye.");
}

fn ncftp_get_and_put<R: Runtime>() {
    let Some(get) = require("ncftp_get_and_put", "ncftpget") else {
        return;
    };
    let Some(put) = require("ncftp_get_and_put", "ncftpput") else {
        return;
    };
    let content = pattern(49, 400_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/file.bin", &content)
        .dir("incoming")
        .start::<R>();
    let s = Scratch::new();
    let port = srv.addr().port().to_string();
    let out = run(
        s.cmd(&get)
            .args(["-t", "20", "-P", &port, "127.0.0.1", "."])
            .arg("/pub/file.bin"),
        CLIENT_TIMEOUT,
    );
    let out = out.success("ncftpget");
    assert!(
        fs::read(s.work().join("file.bin")).unwrap() == content,
        "{out}"
    );
    fs::write(s.work().join("local.bin"), &content[..123_456]).unwrap();
    let out = run(
        s.cmd(&put).args([
            "-t",
            "20",
            "-P",
            &port,
            "127.0.0.1",
            "/incoming",
            "local.bin",
        ]),
        CLIENT_TIMEOUT,
    );
    out.success("ncftpput");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("incoming/local.bin")).unwrap(),
        &content[..123_456],
        "contents of incoming/local.bin",
    );
}

fn tnftp_fetch_and_upload<R: Runtime>() {
    let Some(tnftp) = require("tnftp_fetch_and_upload", "tnftp") else {
        return;
    };
    let content = pattern(50, 300_000);
    let srv = TestServer::builder()
        .args(&["-w"])
        .file("pub/file.bin", &content)
        .dir("incoming")
        .start::<R>();
    let s = Scratch::new();
    let out = run(
        s.cmd(&tnftp)
            .args(["-V", "-q", "20", "-o", "got.bin"])
            .arg(url(&srv, "pub/file.bin")),
        CLIENT_TIMEOUT,
    );
    let out = out.success("tnftp fetch");
    assert!(
        fs::read(s.work().join("got.bin")).unwrap() == content,
        "{out}"
    );
    fs::write(s.work().join("sent.bin"), &content[..99_000]).unwrap();
    let out = run(
        s.cmd(&tnftp)
            .args(["-V", "-q", "20", "-u"])
            .arg(url(&srv, "incoming/"))
            .arg("sent.bin"),
        CLIENT_TIMEOUT,
    );
    out.success("tnftp upload");
    ftp_tests::assert_bytes(
        &fs::read(srv.path("incoming/sent.bin")).unwrap(),
        &content[..99_000],
        "contents of incoming/sent.bin",
    );
}
