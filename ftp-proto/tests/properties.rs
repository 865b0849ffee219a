//! Property tests of the engine as a whole: path resolution, chunking and
//! back-pressure independence of a session's replies, reply framing and
//! buffer bounds for any input, and parsed commands surviving the wire.
//!
//! The parser's own tests (`parse.rs`) already check that every generated
//! valid command round-trips through `encode_command` / `parse_command`;
//! this file does not repeat that.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ftp_proto::line::{Line, LineBuffer};
use ftp_proto::memory::{MemoryFs, MemoryRuntime};
use ftp_proto::parse::{encode_command, parse_command};
use ftp_proto::reply::is_well_formed;
use ftp_proto::{
    AuthError, Completion, Config, Grant, Instant, Intent, Output, Session, TransferEvent,
    VirtualPath,
};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Paths
// ---------------------------------------------------------------------------

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(String::from(".")),
        Just(String::from("..")),
        Just(String::from("...")),
        "[a-c]{1,3}",
        "[ -~]{1,4}",
        Just(String::from("é")),
    ]
}

/// Relative or absolute path text made of troublesome segments.
fn path_text() -> impl Strategy<Value = String> {
    (any::<bool>(), vec(segment(), 0..8)).prop_map(|(absolute, segments)| {
        let joined = segments.join("/");
        if absolute {
            format!("/{joined}")
        } else {
            joined
        }
    })
}

fn resolve(text: &str) -> VirtualPath {
    VirtualPath::root()
        .resolve(text)
        .expect("no NUL in generated paths")
}

fn assert_normalised(p: &VirtualPath) -> Result<(), TestCaseError> {
    let s = p.as_str();
    prop_assert!(s.starts_with('/'), "{s:?}");
    if s != "/" {
        for part in s[1..].split('/') {
            prop_assert!(!matches!(part, "" | "." | ".."), "{s:?}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A resolved path is normalised, matches a stack of components that
    /// stops at `/`, and is a fixed point: resolving its text from any
    /// directory gives it back.
    #[test]
    fn resolution_stays_under_root(cwd in path_text(), arg in path_text(), other in path_text()) {
        let cwd = resolve(&cwd);
        let p = cwd.resolve(&arg).expect("no NUL");
        assert_normalised(&p)?;

        prop_assert_eq!(Some(p.as_str().to_owned()), ftp_proto::fuzzing::model_resolve(&cwd, &arg));

        let other = resolve(&other);
        prop_assert_eq!(other.resolve(p.as_str()), Some(p.clone()));
        prop_assert_eq!(p.resolve(p.as_str()), Some(p.clone()));
        prop_assert_eq!(p.resolve(""), Some(p.clone()));
    }

    /// Climbing above the root stays at the root: from any directory, more
    /// `..` than its depth lands where the rest of the path leads from `/`.
    #[test]
    fn dot_dot_stops_at_root(cwd in path_text(), extra in 0usize..4, rest in path_text()) {
        let cwd = resolve(&cwd);
        let depth = cwd.components().count();
        let rest = rest.trim_start_matches('/');
        let climb = format!("{}{rest}", "../".repeat(depth + extra));
        prop_assert_eq!(cwd.resolve(&climb), Some(resolve(rest)));
    }
}

// ---------------------------------------------------------------------------
// Sessions over the in-memory runtime
// ---------------------------------------------------------------------------

/// Anonymous allowed, failed logins answered at once (so nothing waits for
/// time), a short line limit so some lines are too long.
fn config() -> Config {
    Config {
        anonymous: true,
        login_fail_delay: Duration::ZERO,
        max_line: 64,
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

const VERBS: &[&str] = &[
    "USER", "PASS", "REIN", "CWD", "CDUP", "PWD", "MKD", "RMD", "DELE", "RNFR", "RNTO", "SIZE",
    "MDTM", "MFMT", "TYPE", "PORT", "PASV", "EPRT", "EPSV", "RETR", "STOR", "STOU", "APPE", "REST",
    "ABOR", "LIST", "NLST", "MLST", "MLSD", "STAT", "SYST", "HELP", "NOOP", "FEAT", "OPTS", "SITE",
    "HOST", "AUTH", "QUIT", "XYZ",
];

const ARGS: &[&str] = &[
    "",
    "anonymous",
    "alice",
    "secret",
    "/",
    "..",
    "pub",
    "/pub/readme.txt",
    "my file.bin",
    "incoming/new",
    "-la",
    "I",
    "A",
    "127,0,0,1,7,208",
    "|1|127.0.0.1|2000|",
    "ALL",
    "100",
    "UTF8 ON",
    "MLST type;size;",
    "CHMOD 600 /pub/readme.txt",
    "IDLE 60",
    "20260101000000 /pub/readme.txt",
];

/// One client line: a verb and an argument from the tables, or bytes.
/// Without `urgent`, no ABOR or STAT.
fn client_line(urgent: bool) -> impl Strategy<Value = Vec<u8>> {
    let verbs: Vec<&str> = VERBS
        .iter()
        .copied()
        .filter(|v| urgent || !matches!(*v, "ABOR" | "STAT"))
        .collect();
    prop_oneof![
        4 => (proptest::sample::select(verbs), proptest::sample::select(ARGS)).prop_map(
            |(verb, arg)| {
                if arg.is_empty() { verb.to_string() } else { format!("{verb} {arg}") }.into_bytes()
            }
        ),
        1 => vec(
            prop_oneof![
                Just(b' '),
                Just(b'\r'),
                Just(0xffu8),
                Just(0xf4u8),
                Just(0xfau8),
                Just(0xf0u8),
                b'A'..=b'Z',
                any::<u8>()
            ],
            0..80,
        ),
    ]
}

/// A stream of client lines, mostly ending in CRLF, logging in first most
/// of the time (`urgent`: see [`client_line`]).
fn client_stream(urgent: bool) -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![
            Just(&b""[..]),
            Just(&b"USER anonymous\r\nPASS x\r\n"[..]),
            Just(&b"USER alice\r\nPASS secret\r\n"[..]),
        ],
        vec(
            (
                client_line(urgent),
                prop_oneof![8 => Just(&b"\r\n"[..]), 1 => Just(&b"\n"[..]), 1 => Just(&b""[..])],
            ),
            0..40,
        ),
    )
        .prop_map(|(login, lines)| {
            let mut out = login.to_vec();
            for (line, end) in lines {
                out.extend_from_slice(&line);
                out.extend_from_slice(end);
            }
            out
        })
}

/// `data` cut at the given points.
fn split(data: &[u8], cuts: &[proptest::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
    points.sort_unstable();
    let mut parts = Vec::new();
    let mut prev = 0;
    for p in points {
        parts.push(data[prev..p].to_vec());
        prev = p;
    }
    parts.push(data[prev..].to_vec());
    parts
}

fn run_parts(parts: &[Vec<u8>]) -> MemoryRuntime {
    let mut rt = MemoryRuntime::new(config(), tree());
    for part in parts {
        rt.send(part);
    }
    rt
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// The replies depend on the bytes, not on how they are cut into reads.
    ///
    /// Except for ABOR and STAT: they are answered at once while a transfer
    /// runs (RFC 959), so their replies depend on whether the runtime had
    /// finished the transfer when they arrived, which is what chunking
    /// changes here. They are left out.
    #[test]
    fn chunking_does_not_change_replies(
        input in client_stream(false),
        cuts in vec(any::<proptest::sample::Index>(), 1..8),
    ) {
        let whole = run_parts(std::slice::from_ref(&input));
        let parts = split(&input, &cuts);
        let pieces = run_parts(&parts);
        prop_assert_eq!(
            String::from_utf8_lossy(&pieces.received),
            String::from_utf8_lossy(&whole.received)
        );
        prop_assert_eq!(&pieces.intents, &whole.intents);
        prop_assert_eq!(pieces.closed, whole.closed);
        let bytewise: Vec<Vec<u8>> = input.chunks(1).map(<[u8]>::to_vec).collect();
        prop_assert_eq!(run_parts(&bytewise).received, whole.received);
    }

    /// Whatever arrives, the session does not panic, every reply is
    /// well-formed, and once the runtime is idle only the unfinished last
    /// line is buffered.
    #[test]
    fn any_input_gives_well_formed_replies(
        input in prop_oneof![client_stream(true), vec(any::<u8>(), 0..600)],
        cuts in vec(any::<proptest::sample::Index>(), 0..8),
    ) {
        let mut rt = MemoryRuntime::new(config(), tree());
        let limit = rt.session.input_capacity();
        let max_line = config().max_line;
        prop_assert!(limit > max_line);
        for part in split(&input, &cuts) {
            rt.send(&part);
            prop_assert!(
                is_well_formed(&rt.received),
                "{:?}",
                String::from_utf8_lossy(&rt.received)
            );
            prop_assert!(rt.session.transmit().is_empty());
            if rt.closed {
                prop_assert_eq!(rt.session.input_capacity(), 0);
            } else {
                let buffered = limit - rt.session.input_capacity();
                prop_assert!(buffered <= max_line + 1, "{} bytes buffered", buffered);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Back-pressure
// ---------------------------------------------------------------------------

/// Replies the session may hold: its 64 KiB high-water mark plus the
/// replies that can follow the last command it took.
const TRANSMIT_BOUND: usize = 128 * 1024;

/// A runtime that answers every intent at once and writes replies out
/// either eagerly or only when the session stops taking input.
struct Harness {
    session: Session,
    fs: MemoryFs,
    now: Instant,
    received: Vec<u8>,
    closed: bool,
}

impl Harness {
    fn new() -> Self {
        let local = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 21);
        let peer = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
        let now = Instant::from_duration(Duration::from_secs(1));
        Harness {
            session: Session::new(Arc::new(config()), local, peer, now),
            fs: tree(),
            now,
            received: Vec::new(),
            closed: false,
        }
    }

    /// Performs queued intents until the session waits for input.
    fn run(&mut self) {
        while let Some(output) = self.session.poll_output() {
            let (id, intent) = match output {
                Output::Close => {
                    self.closed = true;
                    return;
                }
                Output::Intent(id, intent) => (id, intent),
            };
            let answers = match &intent {
                Intent::Authenticate { user, password } => {
                    vec![Completion::Auth(
                        if user == "alice" && password.expose() == "secret" {
                            Ok(Grant { write: true })
                        } else {
                            Err(AuthError::Denied)
                        },
                    )]
                }
                Intent::OpenPassive { .. } => vec![Completion::PassiveReady(Ok(SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    50000,
                )))],
                Intent::Transfer(_) => vec![
                    Completion::Transfer(TransferEvent::Ready {
                        size: None,
                        name: None,
                    }),
                    Completion::Transfer(TransferEvent::Connected),
                    Completion::Transfer(TransferEvent::Finished { bytes: 0 }),
                ],
                other => self.fs.execute(other).into_iter().collect(),
            };
            for answer in answers {
                self.session.handle_completion(self.now, id, answer);
            }
        }
    }

    fn write_out(&mut self, n: usize) {
        let n = n.min(self.session.transmit().len());
        self.received
            .extend_from_slice(&self.session.transmit()[..n]);
        self.session.consume_transmit(n);
        self.run();
    }

    /// Sends `input`; with `eager`, writes replies out after every step,
    /// otherwise only `chunk` bytes at a time when the session stops taking
    /// input (back-pressure).
    fn drive(mut self, input: &[u8], eager: bool, chunk: usize) -> Result<Vec<u8>, TestCaseError> {
        let mut rest = input;
        self.run();
        while !self.closed {
            prop_assert!(self.session.transmit().len() <= TRANSMIT_BOUND);
            let capacity = self.session.input_capacity();
            if eager && !self.session.transmit().is_empty() {
                self.write_out(usize::MAX);
            } else if capacity > 0 && !rest.is_empty() {
                let n = capacity.min(rest.len());
                self.session.handle_input(self.now, &rest[..n]);
                rest = &rest[n..];
                self.run();
            } else if !self.session.transmit().is_empty() {
                self.write_out(chunk);
            } else {
                break;
            }
        }
        // Stopped reading only because the replies were not written out.
        prop_assert!(
            self.closed || rest.is_empty(),
            "{} bytes never read",
            rest.len()
        );
        let n = self.session.transmit().len();
        self.write_out(n);
        Ok(self.received)
    }
}

/// Commands with long replies, repeated enough to pass the high-water mark
/// (no ABOR or bare STAT: see `chunking_does_not_change_replies`).
fn heavy_stream() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(
            (
                prop_oneof![
                    Just("HELP"),
                    Just("FEAT"),
                    Just("SITE HELP"),
                    Just("STAT /pub"),
                    Just("PWD"),
                    Just("NOOP"),
                    Just("LIST"),
                    Just("PASV"),
                ],
                1usize..120,
            ),
            1..6,
        ),
        client_stream(false),
    )
        .prop_map(|(runs, tail)| {
            let mut out = b"USER anonymous\r\nPASS x\r\n".to_vec();
            for (line, n) in runs {
                for _ in 0..n {
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            out.extend_from_slice(&tail);
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A runtime that writes replies out late (and in small pieces) gets
    /// exactly the replies of one that writes them at once, the session
    /// holds a bounded amount of them meanwhile, and it reads all input.
    #[test]
    fn back_pressure_does_not_change_replies(input in heavy_stream(), chunk in 1usize..5000) {
        let eager = Harness::new().drive(&input, true, usize::MAX)?;
        let lazy = Harness::new().drive(&input, false, chunk)?;
        prop_assert!(is_well_formed(&eager));
        prop_assert_eq!(String::from_utf8_lossy(&lazy), String::from_utf8_lossy(&eager));
    }
}

// ---------------------------------------------------------------------------
// Commands on the wire
// ---------------------------------------------------------------------------

/// Lines that start with a verb, with argument bytes that parsers care
/// about.
fn verb_line() -> impl Strategy<Value = Vec<u8>> {
    (
        proptest::sample::select(VERBS),
        vec(
            prop_oneof![
                Just(b' '),
                Just(b'|'),
                Just(b','),
                Just(b'-'),
                Just(b';'),
                Just(b'\r'),
                Just(b'/'),
                b'0'..=b'9',
                b'a'..=b'z',
                Just(0xc3u8),
                Just(0xa9u8),
            ],
            0..30,
        ),
    )
        .prop_map(|(verb, arg)| {
            let mut line = verb.as_bytes().to_vec();
            line.push(b' ');
            line.extend(arg);
            line
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// What a client writes for a parsed command (its encoding plus CRLF)
    /// comes out of the line framing as the same command.
    #[test]
    fn parsed_commands_survive_the_wire(line in verb_line()) {
        if let Ok(cmd) = parse_command(&line) {
            let encoded = encode_command(&cmd);
            let mut framing = LineBuffer::new(4096);
            // A client doubles 0xFF, Telnet's IAC, in what it sends.
            let wire: Vec<u8> = ftp_proto::name::encode(&encoded)
                .into_iter()
                .flat_map(|b| if b == 0xFF { vec![b, b] } else { vec![b] })
                .collect();
            framing.push(&wire);
            framing.push(b"\r\n");
            match framing.next_line() {
                Some(Line::Complete(l)) => prop_assert_eq!(parse_command(l), Ok(cmd)),
                other => {
                    return Err(TestCaseError::fail(format!("{encoded:?} framed as {other:?}")));
                }
            }
            prop_assert!(framing.next_line().is_none());
        }
    }
}
