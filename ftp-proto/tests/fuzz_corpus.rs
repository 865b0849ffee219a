//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/`)
//! through the same checks the fuzz targets run, on stable, in plain
//! `cargo test`.
//!
//! `write_seed_corpus` (ignored) rewrites the hand-written seeds, the
//! `seed-*` files; the other files come from fuzzing runs (`cargo fuzz
//! cmin`) and from crashes that were fixed (`regress-*`).

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use ftp_proto::fuzzing::{self, SessionScript};

/// The checking function of a target.
type Check = fn(&[u8]);

/// Named seed inputs.
type Seeds = Vec<(String, Vec<u8>)>;

const TARGETS: &[(&str, Check)] = &[
    ("parse", fuzzing::parse),
    ("line_framing", fuzzing::line_framing),
    ("path", fuzzing::path),
    ("listing", fuzzing::listing),
    ("ascii", fuzzing::ascii),
    ("session", fuzzing::session),
];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

fn replay(target: &str, check: Check) {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()))
        .map(|entry| entry.expect("corpus entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let mut failed = Vec::new();
    for file in &files {
        let data = fs::read(file).expect("read corpus file");
        if catch_unwind(AssertUnwindSafe(|| check(&data))).is_err() {
            failed.push(file.display().to_string());
        }
    }
    assert!(failed.is_empty(), "{target}: failing inputs {failed:#?}");
}

#[test]
fn parse_corpus() {
    replay("parse", fuzzing::parse);
}

#[test]
fn line_framing_corpus() {
    replay("line_framing", fuzzing::line_framing);
}

#[test]
fn path_corpus() {
    replay("path", fuzzing::path);
}

#[test]
fn listing_corpus() {
    replay("listing", fuzzing::listing);
}

#[test]
fn ascii_corpus() {
    replay("ascii", fuzzing::ascii);
}

#[test]
fn session_corpus() {
    replay("session", fuzzing::session);
}

#[test]
fn every_target_has_a_corpus() {
    for (target, _) in TARGETS {
        let dir = corpus_dir(target);
        let n = fs::read_dir(&dir).map(|d| d.count()).unwrap_or(0);
        assert!(n > 0, "{} is empty or missing", dir.display());
    }
}

// ---------------------------------------------------------------------------
// Seeds
// ---------------------------------------------------------------------------

/// Anonymous allowed, 1 ms failed-login delay, 3 attempts; login timeout
/// 60 s, idle 300 s, data connection 30 s; active mode on; 4096-byte lines;
/// 6 STAT entries; IPv4 loopback.
const DEFAULT: [u8; 4] = [0xD4, 0x8A, 0xF0, 0x00];

fn script() -> SessionScript {
    SessionScript::new(DEFAULT)
}

/// A transfer the runtime opens and completes.
fn transfer(s: SessionScript, line: &str) -> SessionScript {
    s.line(line).ok(false).drain().ok(false).drain()
}

fn session_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let anonymous = || script().line("USER anonymous").line("PASS ftp@example.com");
    let alice = |write| script().line("USER alice").line("PASS secret").ok(write);
    let seeds = [
        (
            "curl-download",
            transfer(
                anonymous()
                    .line("PWD")
                    .line("CWD pub")
                    .ok(false)
                    .line("EPSV")
                    .ok(false)
                    .line("TYPE I")
                    .line("SIZE readme.txt")
                    .ok(false)
                    .drain(),
                "RETR readme.txt",
            )
            .line("QUIT"),
        ),
        (
            "lftp-mlsd-rest",
            transfer(
                transfer(
                    script()
                        .line("FEAT")
                        .line("AUTH TLS")
                        .line("USER alice")
                        .line("PASS secret")
                        .ok(false)
                        .line("PWD")
                        .line("OPTS MLST type;size;modify;UNIX.mode;UNIX.owner;UNIX.group;")
                        .line("CWD /pub")
                        .ok(false)
                        .line("EPSV")
                        .ok(false)
                        .drain(),
                    "MLSD",
                )
                .line("EPSV")
                .ok(false)
                .line("REST 100"),
                "RETR big.iso",
            )
            .line("QUIT"),
        ),
        (
            "filezilla-browse",
            transfer(
                script()
                    .line("AUTH TLS")
                    .line("AUTH SSL")
                    .line("USER anonymous")
                    .line("PASS anonymous@")
                    .line("SYST")
                    .line("FEAT")
                    .line("OPTS UTF8 ON")
                    .line("CLNT FileZilla")
                    .line("PWD")
                    .line("TYPE I")
                    .line("PASV")
                    .ok(false)
                    .drain(),
                "MLSD",
            )
            .line("CWD /incoming")
            .ok(false)
            .line("TYPE A")
            .line("PASV")
            .ok(false)
            .line("STOR upload.txt")
            .drain()
            .line("QUIT"),
        ),
        (
            "upload-and-manage",
            transfer(
                transfer(
                    alice(true).line("TYPE I").line("EPSV").ok(false),
                    "STOR new.bin",
                )
                .line("EPSV")
                .ok(false),
                "APPE new.bin",
            )
            .line("MKD newdir")
            .ok(false)
            .line("RNFR new.bin")
            .ok(false)
            .line("RNTO newdir/new.bin")
            .ok(false)
            .line("SITE CHMOD 644 newdir/new.bin")
            .ok(false)
            .line("MFMT 20260101000000 newdir/new.bin")
            .ok(false)
            .line("MDTM newdir/new.bin")
            .ok(false)
            .line("DELE newdir/new.bin")
            .ok(false)
            .line("RMD newdir")
            .ok(false)
            .line("XMKD x")
            .ok(false)
            .line("CDUP")
            .line("XPWD")
            .drain()
            .line("QUIT"),
        ),
        (
            "stou",
            transfer(alice(true).line("PASV").ok(false), "STOU").line("QUIT"),
        ),
        (
            "active-mode",
            transfer(
                transfer(alice(false).line("PORT 127,0,0,1,7,208"), "LIST -la")
                    .line("EPRT |1|127.0.0.1|2000|"),
                "NLST",
            )
            .line("EPRT |2|::1|2000|")
            .line("PORT 10,0,0,2,4,1")
            .line("PORT 127,0,0,1,0,21")
            .line("EPSV ALL")
            .line("PORT 127,0,0,1,7,208")
            .line("PASV")
            .drain()
            .line("QUIT"),
        ),
        (
            "abort-transfer",
            alice(false)
                .line("PASV")
                .ok(false)
                .line("RETR big.iso")
                .ok(false)
                .send(b"\xff\xf4\xff\xf2ABOR\r\n")
                .line("STAT")
                .ok(false)
                .drain()
                .line("ABOR")
                .line("QUIT"),
        ),
        (
            "connect-timeout",
            alice(false)
                .line("EPSV")
                .ok(false)
                .line("LIST")
                .ok(false)
                .advance_ms(31_000)
                .ok(false)
                .drain()
                .line("NOOP"),
        ),
        (
            "failed-logins",
            SessionScript::new([0xE0, 0x8A, 0xF0, 0x00])
                .line("USER alice")
                .line("PASS wrong")
                .answer(&[1, 2])
                .advance_ms(1000)
                .line("USER alice")
                .line("PASS wrong")
                .answer(&[1, 2])
                .advance_ms(2000)
                .line("USER bob")
                .line("PASS wrong")
                .answer(&[1, 2])
                .to_deadline()
                .drain(),
        ),
        (
            "auth-unavailable",
            script()
                .line("USER alice")
                .line("PASS x")
                .answer(&[1, 3])
                .drain(),
        ),
        (
            "idle-timeout",
            SessionScript::new([0xD4, 0x04, 0xF0, 0x00])
                .line("USER anonymous")
                .line("PASS x")
                .line("SITE IDLE")
                .advance_ms(999)
                .line("NOOP")
                .advance_ms(1001)
                .drain(),
        ),
        (
            "login-timeout",
            SessionScript::new([0xD4, 0x01, 0xF0, 0x00])
                .line("USER alice")
                .to_deadline()
                .drain(),
        ),
        (
            "pipelined",
            script()
                .send(
                    b"USER anonymous\r\nPASS x\r\nSYST\r\nFEAT\r\nPWD\r\nTYPE I\r\nHELP\r\n\
                      STAT\r\nNOOP\r\nSITE HELP\r\nSITE UMASK\r\nMODE S\r\nSTRU F\r\nALLO 10\r\n\
                      ACCT x\r\nHOST ftp.example.com\r\nPBSZ 0\r\nPROT P\r\nCCC\r\nSMNT /x\r\n\
                      OPTS UTF8 OFF\r\nOPTS MLST size;\r\nMLST\r\n",
                )
                .ok(false)
                .line("QUIT"),
        ),
        (
            "telnet-and-framing",
            script()
                .send_in(b"USER anonymous\r\nPASS x\r\n", 1)
                .send(b"NO\xff\xffOP\r\n\xff\xfb\x01SYST\n\xff\xfa\x18\x01\xff\xf0TYPE I\r\n")
                .send(b"\r\n  \r\nnoop\r\nLIST a\rb\r\n")
                .drain()
                .send(b"\xff\xf4\xff\xf2ABOR\r\nPWD"),
        ),
        (
            "long-lines",
            SessionScript::new([0xD4, 0x8A, 0x00, 0x00])
                .line("USER anonymous")
                .line("PASS x")
                .line("RETR aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")
                .send(&[b'x'; 300])
                .line("")
                .line("PWD"),
        ),
        (
            "rein-drops-write",
            alice(true)
                .line("PASV")
                .ok(false)
                .line("REIN")
                .line("USER anonymous")
                .line("PASS x")
                .line("STOR x")
                .line("MKD d")
                .line("PWD")
                .drain()
                .line("QUIT"),
        ),
        (
            "stat-listing",
            alice(false)
                .line("STAT -la /")
                .ok(false)
                .line("STAT")
                .line("MLST readme.txt")
                .ok(false)
                .line("MDTM readme.txt")
                .ok(false)
                .line("SIZE pub")
                .ok(false)
                .line("CWD ../../..")
                .drain()
                .line("QUIT"),
        ),
        (
            "no-login-mode",
            SessionScript::new([0x0B, 0x8A, 0xF0, 0x00])
                .line("PWD")
                .line("USER x")
                .line("EPSV")
                .ok(false)
                .line("STOR x")
                .ok(false)
                .ok(false)
                .line("REIN")
                .line("PWD")
                .drain()
                .line("QUIT"),
        ),
        (
            "ipv6",
            SessionScript::new([0xD4, 0x8A, 0xF0, 0x02])
                .line("USER anonymous")
                .line("PASS x")
                .line("PASV")
                .line("EPSV 1")
                .line("EPSV 2")
                .ok(false)
                .line("EPRT |2|::1|2000|")
                .line("EPRT |3|x|1|")
                .line("LPRT 6,16,0")
                .drain()
                .line("QUIT"),
        ),
        (
            "ftps-explicit",
            transfer(
                SessionScript::new([0xD4, 0x8A, 0xF0, 0x40])
                    .send(b"AUTH TLS\r\nUSER injected\r\n")
                    .ok(false)
                    .line("PBSZ 0")
                    .line("PROT P")
                    .line("USER alice")
                    .line("PASS secret")
                    .ok(false)
                    .line("PASV")
                    .ok(false)
                    .drain(),
                "LIST",
            )
            .line("CCC")
            .line("QUIT"),
        ),
        (
            "ftps-required",
            SessionScript::new([0xD4, 0x8A, 0xF0, 0x80])
                .line("USER alice")
                .line("USER anonymous")
                .line("PASS x")
                .line("REIN")
                .line("AUTH TLS")
                .ok(false)
                .line("USER alice")
                .line("PASS secret")
                .ok(false)
                .line("EPSV")
                .ok(false)
                .line("RETR x")
                .line("PBSZ 0")
                .line("PROT C")
                .line("RETR x")
                .line("PROT P")
                .line("RETR x")
                .ok(false)
                .ok(false)
                .drain()
                .line("QUIT"),
        ),
        (
            "ftps-ccc-and-failure",
            SessionScript::new([0xD4, 0x8A, 0xF0, 0xC0])
                .line("AUTH SSL")
                .ok(false)
                .line("USER alice")
                .line("PASS secret")
                .ok(true)
                .line("CCC")
                .ok(false)
                .line("NOOP")
                .line("AUTH TLS")
                .answer(&[1, 1, 3])
                .drain(),
        ),
        (
            "ftps-implicit",
            SessionScript::new([0xD4, 0x8A, 0xF0, 0x41])
                .line("USER alice")
                .line("PASS secret")
                .ok(false)
                .line("AUTH TLS")
                .line("PROT C")
                .line("PBSZ 0")
                .line("PROT C")
                .line("QUIT"),
        ),
        (
            "confirmed-anonymous",
            SessionScript::new([0xDC, 0x8A, 0xF0, 0x20])
                .line("USER ftp")
                .line("PASS me@")
                .ok(false)
                .line("MKD d")
                .ok(false)
                .line("REIN")
                .line("USER anonymous")
                .line("PASS x")
                .answer(&[1, 2])
                .drain()
                .line("QUIT"),
        ),
        (
            "progress-and-stall",
            SessionScript::new([0xD4, 0x8A, 0xF0, 0x04])
                .line("USER alice")
                .line("PASS secret")
                .ok(false)
                .line("PASV")
                .ok(false)
                .line("RETR big.iso")
                .ok(false)
                .answer(&[1, 2])
                .answer(&[1, 6, 5])
                .advance_ms(900)
                .answer(&[1, 6, 9])
                .advance_ms(1100)
                .ok(false)
                .drain()
                .line("QUIT"),
        ),
        (
            "shutdown",
            alice(false)
                .line("PASV")
                .ok(false)
                .line("RETR big.iso")
                .ok(false)
                .shutdown()
                .line("NOOP")
                .drain()
                .ok(false)
                .drain(),
        ),
        (
            "bad-arguments",
            anonymous()
                .line("TYPE E")
                .line("TYPE X")
                .line("MODE B")
                .line("REST x")
                .line("REST 18446744073709551616")
                .line("PORT 1,2,3")
                .line("EPSV 3")
                .line("CWD")
                .line("SITE CHMOD 999 f")
                .line("MFMT 20261399000000 f")
                .line("RNTO x")
                .send(b"RETR \xc3\x28\r\nCWD a\0b\r\n")
                .drain()
                .line("QUIT"),
        ),
    ];
    seeds
        .into_iter()
        .map(|(name, s)| (name, s.into_bytes()))
        .collect()
}

fn text_seeds(target: &str) -> Seeds {
    let lines: &[&[u8]] = match target {
        "parse" => &[
            b"USER anonymous",
            b"PASS ftp@example.com",
            b"PASS",
            b"SYST",
            b"FEAT",
            b"OPTS UTF8 ON",
            b"OPTS MLST type;size;modify;",
            b"PWD",
            b"XPWD",
            b"TYPE I",
            b"type a n",
            b"TYPE L 8",
            b"EPSV",
            b"EPSV ALL",
            b"EPSV 2",
            b"PASV",
            b"PORT 127,0,0,1,7,208",
            b"EPRT |1|127.0.0.1|2000|",
            b"EPRT |2|::1|2000|",
            b"MLSD",
            b"MLST /pub",
            b"REST 100",
            b"RETR my file.txt",
            b"STOR  leading space",
            b"STOU",
            b"LIST -la /pub",
            b"NLST -l",
            b"STAT -a .",
            b"SITE CHMOD 0755 f",
            b"SITE IDLE 600",
            b"SITE UMASK 022",
            b"MFMT 20260101120000.5 f",
            b"HELP SITE",
            b"CWD ..",
            b"  noop  \r\r",
            b"RETR \xff\xfe",
            b"ABOR",
            b"QUIT",
        ],
        "path" => &[
            b"\x00a\nb/c\n..\n../../..\n/x//y/./z/\n",
            b"\x04/a/bc/../d\n.\n\n/\n",
            b"\x02..a b\nd\xc3\xa9j\xc3\xa0\n....\n..\\..\\x\n",
            b"\x01/a\0b\n/ok\n",
        ],
        "ascii" => &[
            b"\x00hello\nworld\n",
            b"\x02\x05\x00\x09\x00a\r\nb\rc\n\r\r\n\n",
            b"\x01\x01\x00\r\n",
            b"\x03\x01\x00\x02\x00\x03\x00\r\r\n\n\r",
        ],
        "line_framing" => &[
            b"\x08\x00\xffUSER anonymous\r\nPASS x\r\nSYST\n",
            b"\x07\x02\x55\x03\x00\x10\x00\xff\xf4\xff\xf2ABOR\r\nLIST a\rb\r\n",
            b"\x03\x01\x00\x05\x00abcdefgh\r\nab\r\ncd\nxxxxx\nyyyyy",
            b"\x05\x03\xaa\x01\x00\x02\x00\x03\x00a\xff\xfa\x18\x00x\n\xff\xffy\xff\xf0b\r\n",
            b"\x06\x00\x00a\xff\xfb\nb\n\xff\xff\xff\n\r\r\n",
        ],
        _ => &[],
    };
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("{i:02}"), l.to_vec()))
        .collect()
}

fn listing_seeds() -> Seeds {
    // now, facts, show_hidden, display name, then entries: kind, name,
    // size, modified, mode, nlink, owner, group, unique, link target.
    let entry = |kind: u8, name: &str, target: Option<&str>| {
        let mut e = vec![kind, 0x30];
        e.push(name.len() as u8);
        e.extend_from_slice(name.as_bytes());
        e.extend_from_slice(&[0x0d, 3, 0x04]); // size from the table; a modify time
        e.extend_from_slice(&[0xed, 0x41, 0x00, 0x05]); // mode, nlink
        e.extend_from_slice(&[0x30, 3, b'f', b't', b'p', 0x30, 4, b'u', b's', b'e', b'r']);
        e.push(1);
        e.extend_from_slice(&[0x09, 0x0d]); // unique
        match target {
            Some(t) => {
                e.extend_from_slice(&[1, 0x30, t.len() as u8]);
                e.extend_from_slice(t.as_bytes());
            }
            None => e.push(0),
        }
        e
    };
    let mut seeds = Vec::new();
    let header = |facts: u8| vec![0x20, facts, 1, 0x30, 4, b'/', b'p', b'u', b'b'];
    let mut a = header(0x3f);
    a.extend(entry(0, "readme.txt", None));
    a.extend(entry(1, "dir name", None));
    a.extend(entry(2, "link", Some("target.txt")));
    a.extend(entry(3, ".hidden", None));
    seeds.push((String::from("00"), a));
    let mut b = header(0xff);
    b.extend(entry(2, "evil\r\n226 x", Some("t\n")));
    b.extend(entry(0, "semi;colon", None));
    seeds.push((String::from("01"), b));
    let mut c = vec![0x05, 0x00, 0x00, 0x00];
    c.extend(entry(0, "..", None));
    seeds.push((String::from("02"), c));
    seeds
}

/// Rewrites the `seed-*` files of every corpus (run with `--ignored`).
#[test]
#[ignore = "rewrites fuzz/corpus/*/seed-*; run by hand"]
fn write_seed_corpus() {
    let mut all: Vec<(&str, Seeds)> = Vec::new();
    all.push((
        "session",
        session_seeds()
            .into_iter()
            .map(|(n, b)| (String::from(n), b))
            .collect(),
    ));
    for target in ["parse", "path", "ascii", "line_framing"] {
        all.push((target, text_seeds(target)));
    }
    all.push(("listing", listing_seeds()));
    for (target, seeds) in all {
        let dir = corpus_dir(target);
        fs::create_dir_all(&dir).unwrap();
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
            {
                fs::remove_file(path).unwrap();
            }
        }
        for (name, bytes) in seeds {
            fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}

/// Runs one input through one target on stable, printing the session's
/// replies for `session` inputs:
///
/// ```sh
/// FUZZ_TARGET=session FUZZ_INPUT=fuzz/artifacts/session/crash-... \
///     cargo test -p ftp-proto --test fuzz_corpus replay_one -- --ignored --nocapture
/// ```
#[test]
#[ignore = "needs FUZZ_TARGET and FUZZ_INPUT"]
fn replay_one() {
    let target = std::env::var("FUZZ_TARGET").expect("FUZZ_TARGET");
    let input = std::env::var("FUZZ_INPUT").expect("FUZZ_INPUT");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(&input);
    let data = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    if target == "session" {
        let replies = fuzzing::session_replies(&data);
        println!("{}", String::from_utf8_lossy(&replies));
        return;
    }
    let (_, check) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no target {target}"));
    check(&data);
}
