//! Event hooks (`--hook EVENT=PROGRAM`) and the external authentication
//! program (`--auth-program`), on both daemons: the facts each hook gets,
//! `pre-` hooks refusing with `550`, hooks past their time killed while
//! other sessions go on, and every way an authentication program can
//! answer, fail or hang.
//!
//! The hooks are shell scripts run as `/bin/sh SCRIPT` (the daemon itself
//! uses no shell: `/bin/sh` is the program and the script its argument).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ftp_host::daemon::Runtime;
use ftp_tests::{Client, TestServer, daemon_tests, wait_for};

daemon_tests! {
    every_event_fires_once_with_its_facts,
    an_incomplete_download_fires_with_status_failed,
    a_failing_pre_upload_refuses_stor_with_550,
    a_failing_pre_delete_keeps_the_file,
    a_hook_past_its_time_is_killed_while_others_go_on,
    auth_program_allows_with_home_and_write,
    auth_program_refusals_crashes_hangs_and_garbage_deny,
}

/// Hook scripts in a temporary folder, and the file they append to.
struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Scripts {
        Scripts {
            dir: tempfile::Builder::new()
                .prefix("ftp-tests-hooks-")
                .tempdir()
                .expect("temporary folder"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes a script and returns the program text that runs it.
    fn script(&self, name: &str, body: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, body).expect("write a script");
        format!("/bin/sh {}", path.display())
    }

    /// A script that appends one line of its facts to `log`, then exits
    /// with `status`.
    fn recorder(&self, status: u8) -> String {
        let body = format!(
            "printf '%s|%s|%s|%s|%s|%s|%s|%s|%s\\n' \"$FTP_EVENT\" \"$FTP_USER\" \"$FTP_PATH\" \
             \"${{FTP_TARGET-none}}\" \"${{FTP_BYTES-none}}\" \"$FTP_PEER\" \"${{FTP_STATUS-none}}\" \
             \"$FTP_SESSION\" \"${{HOME-nohome}}\" >> {}\nexit {status}\n",
            self.path("log").display()
        );
        self.script(&format!("record-{status}"), &body)
    }

    /// The lines logged so far, split into fields.
    fn lines(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.path("log"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.split('|').map(str::to_string).collect())
            .collect()
    }

    /// Waits for `n` lines, then a moment more to see that no more come.
    fn expect_lines(&self, n: usize) -> Vec<Vec<String>> {
        wait_for(&format!("{n} hook calls"), Duration::from_secs(10), || {
            (self.lines().len() >= n).then_some(())
        });
        std::thread::sleep(Duration::from_millis(300));
        let lines = self.lines();
        assert_eq!(lines.len(), n, "{lines:?}");
        lines
    }
}

/// The line of `event`, which must be the only one.
fn line_of<'a>(lines: &'a [Vec<String>], event: &str) -> &'a [String] {
    let found: Vec<_> = lines.iter().filter(|l| l[0] == event).collect();
    assert_eq!(found.len(), 1, "{event}: {lines:?}");
    found[0]
}

/// Hook arguments: `--hook EVENT=PROGRAM` for each event.
fn hook_args(events: &[(&str, &str)]) -> Vec<String> {
    events
        .iter()
        .flat_map(|(e, p)| ["--hook".to_string(), format!("{e}={p}")])
        .collect()
}

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn every_event_fires_once_with_its_facts<R: Runtime>() {
    let s = Scripts::new();
    let rec = s.recorder(0);
    let events = [
        "login",
        "logout",
        "upload",
        "download",
        "delete",
        "rename",
        "mkdir",
        "rmdir",
        "pre-upload",
        "pre-delete",
    ];
    let hooks: Vec<(&str, &str)> = events.iter().map(|e| (*e, rec.as_str())).collect();
    let args = hook_args(&hooks);
    let srv = TestServer::builder()
        .args(&as_strs(&args))
        .user("alice", "secret", Some("alice"), true)
        .start::<R>();
    let mut c = srv.client();
    c.login("alice", "secret");
    c.expect("TYPE I", 200);
    c.stor("a.txt", b"hello");
    assert_eq!(c.retr("a.txt"), b"hello");
    c.expect("MKD d", 257);
    c.expect("RNFR a.txt", 350);
    c.expect("RNTO d/b.txt", 250);
    c.expect("DELE d/b.txt", 250);
    c.expect("RMD d", 250);
    c.quit();
    assert!(!srv.exists("alice/d"));

    let lines = s.expect_lines(events.len());
    let session = &lines[0][7];
    assert!(session.parse::<u64>().is_ok(), "{lines:?}");
    for l in &lines {
        assert_eq!(l.len(), 9, "{l:?}");
        assert_eq!(l[1], "alice", "{l:?}");
        assert_eq!(l[5], "127.0.0.1", "{l:?}");
        assert_eq!(&l[7], session, "{l:?}");
        assert_eq!(l[8], "nohome", "the environment was not cleared: {l:?}");
    }
    let facts = |event| {
        let l = line_of(&lines, event);
        // path, target, bytes, status
        (l[2].clone(), l[3].clone(), l[4].clone(), l[6].clone())
    };
    let f = |p: &str, t: &str, b: &str, st: &str| {
        (p.to_string(), t.to_string(), b.to_string(), st.to_string())
    };
    assert_eq!(facts("login"), f("", "none", "none", "ok"));
    assert_eq!(facts("logout"), f("", "none", "none", "none"));
    assert_eq!(facts("pre-upload"), f("/a.txt", "none", "none", "none"));
    assert_eq!(facts("upload"), f("/a.txt", "none", "5", "ok"));
    assert_eq!(facts("download"), f("/a.txt", "none", "5", "ok"));
    assert_eq!(facts("mkdir"), f("/d", "none", "none", "ok"));
    assert_eq!(facts("rename"), f("/a.txt", "/d/b.txt", "none", "ok"));
    assert_eq!(facts("pre-delete"), f("/d/b.txt", "none", "none", "none"));
    assert_eq!(facts("delete"), f("/d/b.txt", "none", "none", "ok"));
    assert_eq!(facts("rmdir"), f("/d", "none", "none", "ok"));

    // A failed operation fires too, with FTP_STATUS=failed.
    let mut c = srv.client();
    c.login("alice", "secret");
    assert_eq!(c.cmd("RMD nothere").code, 550);
    c.quit();
    let lines = s.expect_lines(events.len() + 3);
    let rmdirs: Vec<_> = lines.iter().filter(|l| l[0] == "rmdir").collect();
    assert_eq!(rmdirs.len(), 2, "{lines:?}");
    assert_eq!(rmdirs[1][2], "/nothere");
    assert_eq!(rmdirs[1][6], "failed");
    assert_ne!(&rmdirs[1][7], session, "a new session, a new number");
}

fn an_incomplete_download_fires_with_status_failed<R: Runtime>() {
    let s = Scripts::new();
    let rec = s.recorder(0);
    let args = hook_args(&[("download", &rec)]);
    let size = 32 << 20;
    let srv = TestServer::builder()
        .args(&as_strs(&args))
        .file("big.bin", vec![7u8; size])
        .start::<R>();
    let mut c = srv.login();
    c.expect("TYPE I", 200);
    let data = c.data();
    let mut t = c.start("RETR big.bin", data).expect("RETR");
    let mut head = vec![0u8; 64 * 1024];
    t.stream.read_exact(&mut head).expect("first bytes");
    c.send_raw(b"\xff\xf4\xff\xf2ABOR\r\n");
    assert_eq!(c.read_reply().code, 426);
    assert_eq!(c.read_reply().code, 226);
    drop(t);
    let lines = s.expect_lines(1);
    let l = &lines[0];
    assert_eq!((l[0].as_str(), l[1].as_str()), ("download", "anonymous"));
    assert_eq!(l[2], "/big.bin");
    assert_eq!(l[6], "failed");
    let bytes: usize = l[4].parse().expect("FTP_BYTES");
    assert!(bytes < size, "{l:?}");
    c.quit();
}

fn a_failing_pre_upload_refuses_stor_with_550<R: Runtime>() {
    let s = Scripts::new();
    let no = s.recorder(1);
    let rec = s.recorder(0);
    let args = hook_args(&[("pre-upload", &no), ("upload", &rec)]);
    let srv = TestServer::builder()
        .args(&["-w"])
        .args(&as_strs(&args))
        .start::<R>();
    let mut c = srv.login();
    for line in ["STOR up.txt", "APPE up.txt"] {
        let refused = c.upload(line, b"data").expect_err("refused");
        assert_eq!(refused.code, 550, "{line}: {refused}");
    }
    assert!(!srv.exists("up.txt"));
    assert_eq!(srv.partial_uploads(), Vec::<String>::new());
    // Only the pre-upload hook ran: no upload happened.
    let lines = s.expect_lines(2);
    assert!(lines.iter().all(|l| l[0] == "pre-upload"), "{lines:?}");
    assert!(lines.iter().all(|l| l[2] == "/up.txt"), "{lines:?}");
    c.quit();
}

fn a_failing_pre_delete_keeps_the_file<R: Runtime>() {
    let s = Scripts::new();
    // Refuses to delete anything under /keep.
    let guard = s.script(
        "guard",
        "case \"$FTP_PATH\" in /keep/*) exit 3;; esac\nexit 0\n",
    );
    let args = hook_args(&[("pre-delete", &guard)]);
    let srv = TestServer::builder()
        .args(&["-w"])
        .args(&as_strs(&args))
        .file("keep/precious.txt", "precious")
        .file("other.txt", "other")
        .start::<R>();
    let mut c = srv.login();
    let r = c.cmd("DELE keep/precious.txt");
    assert_eq!(r.code, 550, "{r}");
    assert_eq!(
        srv.read_file("keep/precious.txt").as_deref(),
        Some(&b"precious"[..])
    );
    c.expect("DELE other.txt", 250);
    assert!(!srv.exists("other.txt"));
    c.quit();
}

/// Whether process `pid` is gone (or a zombie waiting for init).
fn is_gone(pid: &str) -> bool {
    let stat = Path::new("/proc").join(pid).join("stat");
    match std::fs::read_to_string(stat) {
        Err(_) => true,
        Ok(s) => s
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn a_hook_past_its_time_is_killed_while_others_go_on<R: Runtime>() {
    let s = Scripts::new();
    // The pre-delete hook starts a sleep, notes both process ids and waits;
    // the login hook just sleeps. Both outlive the 3 s time limit.
    let slow = s.script(
        "slow",
        &format!(
            "sleep 60 &\necho $$ $! > {}\nwait\n",
            s.path("pids").display()
        ),
    );
    let sleepy = s.script("sleepy", "sleep 60\n");
    let args = hook_args(&[("pre-delete", &slow), ("login", &sleepy)]);
    let srv = TestServer::builder()
        .args(&["-w", "--hook-timeout", "3"])
        .args(&as_strs(&args))
        .file("x.txt", "x")
        .start::<R>();
    let mut a = srv.login();
    let started = Instant::now();
    a.send("DELE x.txt");
    let pids = wait_for("the hook to start", Duration::from_secs(10), || {
        std::fs::read_to_string(s.path("pids"))
            .ok()
            .filter(|t| t.ends_with('\n'))
    });
    // While it runs, other sessions log in (firing the sleepy login hook
    // each time) and work at normal speed.
    for i in 0..3 {
        let t = Instant::now();
        let mut b: Client = srv.login();
        b.expect(&format!("MKD d{i}"), 257);
        assert!(b.list("").contains(&format!("d{i}")));
        b.quit();
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "a session took {:?} while a hook hung",
            t.elapsed()
        );
    }
    let r = a.read_reply();
    assert_eq!(r.code, 550, "{r}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(10),
        "the refusal came after {took:?}"
    );
    assert!(srv.exists("x.txt"));
    for pid in pids.split_whitespace() {
        wait_for(
            &format!("process {pid} to end"),
            Duration::from_secs(5),
            || is_gone(pid).then_some(()),
        );
    }
    a.quit();
}

/// An authentication program that answers by user name.
fn auth_script(s: &Scripts) -> String {
    s.script(
        "auth",
        r#"read pw
case "$FTP_USER" in
  carol) [ "$pw" = "s3cret" ] && [ "$FTP_PEER" = 127.0.0.1 ] \
           && echo '{"ok": true, "home": "carol", "write": true, "max_file_size": 100}' \
           || echo '{"ok": false}' ;;
  reader) echo '{"ok": true}' ;;
  nobody) echo '{"ok": false}' ;;
  crash) echo '{"ok": true}'; exit 1 ;;
  killed) kill -9 $$ ;;
  hang) sleep 60 ;;
  garbage) echo 'welcome!' ;;
  unknownkey) echo '{"ok": true, "admin": true}' ;;
  badhome) echo '{"ok": true, "home": "../etc"}' ;;
  nohome) echo '{"ok": true, "home": "missing"}' ;;
  local) echo '{"ok": true, "deny_from": ["127.0.0.0/8"]}' ;;
  *) exit 2 ;;
esac
"#,
    )
}

fn auth_server<R: Runtime>(s: &Scripts) -> TestServer {
    let program = auth_script(s);
    TestServer::builder()
        .args(&[
            "--auth-program",
            &program,
            "--auth-timeout",
            "1",
            "--login-fail-delay",
            "0",
        ])
        .dir("carol")
        .file("top.txt", "top")
        .start::<R>()
}

fn auth_program_allows_with_home_and_write<R: Runtime>() {
    let s = Scripts::new();
    let srv = auth_server::<R>(&s);
    let mut c = srv.client();
    c.login("carol", "s3cret");
    c.expect("TYPE I", 200);
    c.stor("mine.txt", b"carol's");
    assert_eq!(
        srv.read_file("carol/mine.txt").as_deref(),
        Some(&b"carol's"[..])
    );
    assert!(!c.list("").contains("top.txt"), "carol sees her home only");
    // The answer's max_file_size (100) holds.
    let data = c.data();
    let mut t = c.start("STOR big.txt", data).expect("STOR opens");
    let _ = t.stream.write_all(&[0u8; 200]);
    let _ = t.stream.shutdown(std::net::Shutdown::Write);
    drop(t);
    let end = c.read_reply();
    assert_eq!(end.code, 552, "{end}");
    assert!(!srv.exists("carol/big.txt"));
    c.quit();
    // Without "write", read-only; without "home", the root.
    let mut r = srv.client();
    r.login("reader", "anything");
    assert_eq!(r.retr("top.txt"), b"top");
    let refused = r.upload("STOR new.txt", b"x").expect_err("read-only");
    assert_eq!(refused.code, 550, "{refused}");
    r.quit();
    // No anonymous logins by default with an auth program.
    let mut a = srv.client();
    a.expect("USER anonymous", 331);
    a.expect("PASS guest@", 530);
}

fn auth_program_refusals_crashes_hangs_and_garbage_deny<R: Runtime>() {
    let s = Scripts::new();
    let srv = auth_server::<R>(&s);
    for (user, password) in [
        ("carol", "wrong"),
        ("nobody", "x"),
        ("crash", "x"),
        ("killed", "x"),
        ("garbage", "x"),
        ("unknownkey", "x"),
        ("badhome", "x"),
        ("nohome", "x"),
        ("local", "x"),
        ("stranger", "x"),
        ("hang", "x"),
    ] {
        let started = Instant::now();
        let mut c = srv.client();
        c.expect(&format!("USER {user}"), 331);
        let r = c.cmd(&format!("PASS {password}"));
        assert_eq!(r.code, 530, "{user}: {r}");
        let took = started.elapsed();
        let limit = if user == "hang" { 5000 } else { 900 };
        assert!(
            took < Duration::from_millis(limit),
            "{user}: the refusal took {took:?}"
        );
        if user == "hang" {
            assert!(took >= Duration::from_millis(900), "{user}: {took:?}");
        }
        // The session goes on.
        c.check("NOOP", "200 NOOP ok.");
        c.quit();
    }
}
