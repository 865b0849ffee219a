//! `Config::authenticate_anonymous`: the host confirms anonymous logins
//! (to take the identity anonymous sessions act with) before the session
//! goes on, and the engine still decides what anonymous sessions may do.

use std::sync::Arc;
use std::time::Duration;

use ftp_proto::{AuthError, Completion, Config, Grant, Instant, Intent, IntentId, Output, Session};

fn session(config: Config) -> Session {
    Session::new(
        Arc::new(config),
        "127.0.0.1:21".parse().unwrap(),
        "127.0.0.1:40000".parse().unwrap(),
        Instant::from_duration(Duration::ZERO),
    )
}

fn now() -> Instant {
    Instant::from_duration(Duration::ZERO)
}

/// The replies queued so far, consumed.
fn replies(s: &mut Session) -> String {
    let text = String::from_utf8_lossy(s.transmit()).into_owned();
    let n = s.transmit().len();
    s.consume_transmit(n);
    text
}

fn outputs(s: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

/// The one `ConfirmAnonymous` intent queued, with the password given.
fn confirm(s: &mut Session) -> (IntentId, String) {
    match outputs(s).as_slice() {
        [Output::Intent(id, Intent::ConfirmAnonymous { password })] => {
            (*id, password.expose().to_string())
        }
        other => panic!("expected one ConfirmAnonymous, got {other:?}"),
    }
}

/// The one `Authenticate` intent queued, with its user and password.
fn authenticate(s: &mut Session) -> (IntentId, String, String) {
    match outputs(s).as_slice() {
        [Output::Intent(id, Intent::Authenticate { user, password })] => {
            (*id, user.clone(), password.expose().to_string())
        }
        other => panic!("expected one Authenticate, got {other:?}"),
    }
}

fn hooked() -> Config {
    Config {
        anonymous: true,
        authenticate_anonymous: true,
        anonymous_write: false,
        login_fail_delay: Duration::ZERO,
        ..Config::default()
    }
}

#[test]
fn anonymous_login_waits_for_the_host_and_keeps_the_engines_write_policy() {
    for name in ["anonymous", "FTP", "Anonymous"] {
        let mut s = session(hooked());
        replies(&mut s);
        // The STOR pipelined behind PASS must wait for the answer.
        s.handle_input(
            now(),
            format!("USER {name}\r\nPASS me@example.org\r\nMKD x\r\n").as_bytes(),
        );
        assert_eq!(replies(&mut s), "331 Please specify the password.\r\n");
        let (id, password) = confirm(&mut s);
        assert_eq!(password, "me@example.org");
        assert!(s.user().is_none());
        // The host confirms; anonymous_write (false) still rules.
        s.handle_completion(now(), id, Completion::Anonymous(Ok(())));
        assert_eq!(
            replies(&mut s),
            "230 Login successful.\r\n550 Permission denied.\r\n"
        );
        assert!(s.is_anonymous());
        assert_eq!(s.user(), Some("anonymous"));
        assert!(outputs(&mut s).is_empty(), "MKD must not reach the host");
    }
}

#[test]
fn a_refused_anonymous_login_is_an_ordinary_failure() {
    let mut s = session(hooked());
    replies(&mut s);
    s.handle_input(now(), b"USER ftp\r\nPASS x\r\n");
    let (id, _) = confirm(&mut s);
    s.handle_completion(now(), id, Completion::Anonymous(Err(AuthError::Denied)));
    assert_eq!(
        replies(&mut s),
        "331 Please specify the password.\r\n530 Login incorrect.\r\n"
    );
    assert!(s.user().is_none());
    s.handle_input(now(), b"USER ftp\r\nPASS x\r\n");
    let (id, _) = confirm(&mut s);
    s.handle_completion(
        now(),
        id,
        Completion::Anonymous(Err(AuthError::Unavailable)),
    );
    assert!(replies(&mut s).contains("421 "));
    assert!(s.is_closing());
}

#[test]
fn without_the_hook_or_without_anonymous_nothing_changes() {
    // Off: granted at once, no intent.
    let mut s = session(Config {
        authenticate_anonymous: false,
        ..hooked()
    });
    replies(&mut s);
    s.handle_input(now(), b"USER anonymous\r\nPASS x\r\n");
    assert!(replies(&mut s).ends_with("230 Login successful.\r\n"));
    assert!(outputs(&mut s).is_empty());
    // Anonymous not allowed: refused without asking the host.
    let mut s = session(Config {
        anonymous: false,
        ..hooked()
    });
    replies(&mut s);
    s.handle_input(now(), b"USER anonymous\r\nPASS x\r\n");
    assert!(replies(&mut s).ends_with("530 Login incorrect.\r\n"));
    assert!(outputs(&mut s).is_empty());
    // Other names go to the host as before, and its grant's write counts.
    let mut s = session(hooked());
    replies(&mut s);
    s.handle_input(now(), b"USER alice\r\nPASS pw\r\n");
    let (id, user, _) = authenticate(&mut s);
    assert_eq!(user, "alice");
    s.handle_completion(now(), id, Completion::Auth(Ok(Grant { write: true })));
    assert!(replies(&mut s).ends_with("230 Login successful.\r\n"));
    assert!(!s.is_anonymous());
    s.handle_input(now(), b"MKD x\r\n");
    assert!(
        matches!(
            outputs(&mut s).as_slice(),
            [Output::Intent(_, Intent::MakeDir { .. })]
        ),
        "a user the host lets write may"
    );
}

#[test]
fn a_wrong_kind_of_answer_fails_and_is_reported() {
    let mut s = session(hooked());
    replies(&mut s);
    s.handle_input(now(), b"USER ftp\r\nPASS x\r\n");
    let (id, _) = confirm(&mut s);
    // An `Auth` grant is no confirmation of an anonymous login.
    s.handle_completion(now(), id, Completion::Auth(Ok(Grant { write: true })));
    assert!(s.user().is_none());
    assert!(replies(&mut s).contains("421 "), "taken as unavailable");
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(
        events.contains(&ftp_proto::Event::WrongAnswer {
            expected: "Anonymous",
            got: "Auth"
        }),
        "{events:?}"
    );
}
