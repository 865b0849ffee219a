//! Logins through the system's PAM stack (`--pam [SERVICE]`, cargo feature
//! `pam`), as vsftpd checks local users: the service's `auth` modules
//! check the password (`pam_authenticate`), its `account` modules whether
//! the account may log in now (`pam_acct_mgmt`). The account the session
//! then acts as (uid, gid, groups, home) comes from the system's user and
//! group databases ([`crate::identity::account_named`]), under the name
//! PAM ends with (a module may map the name given).
//!
//! The bindings are `libpam-sys` (hand-written, no headers or bindgen at
//! build time); this module is the only unsafe code around them, for
//! Linux-PAM (the daemon is Linux-only anyway).
//!
//! - The conversation answers the first hidden prompt with the password
//!   and a visible prompt with the name; any further hidden prompt (a
//!   one-time code after the password, say) fails the conversation, so
//!   the login is refused: FTP has one password.
//! - `PAM_RHOST` is the client's address and `PAM_TTY` is `ftp`, as vsftpd
//!   sets them (for `pam_access`, `pam_time`, the logs).
//! - PAM's own delay after a failure (`pam_faildelay`, `pam_unix`'s 2 s)
//!   is taken over with `PAM_FAIL_DELAY` and not slept: the engine's
//!   doubling `--login-fail-delay` answers the failure instead, on a
//!   timer, without holding a worker asleep.
//! - Transactions run one at a time: PAM modules are not all safe to run
//!   on several threads at once.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::fmt;
use std::net::IpAddr;
use std::ptr;
use std::sync::{Mutex, PoisonError};

use libpam_sys as sys;

use crate::identity::{IdentityError, account_named};
use crate::system::Account;

/// The PAM step that refused or failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// `pam_start`.
    Start,
    /// Setting `PAM_RHOST`, `PAM_TTY` or `PAM_FAIL_DELAY`.
    Items,
    /// `pam_authenticate`: the password.
    Authenticate,
    /// `pam_acct_mgmt`: whether the account may log in now.
    Account,
    /// Reading `PAM_USER` back.
    User,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Step::Start => "pam_start",
            Step::Items => "pam_set_item",
            Step::Authenticate => "pam_authenticate",
            Step::Account => "pam_acct_mgmt",
            Step::User => "pam_get_item(PAM_USER)",
        })
    }
}

/// Why a PAM login did not succeed.
#[derive(Debug)]
pub enum PamError {
    /// The name or password holds a NUL byte, which PAM cannot take.
    Nul,
    /// PAM refused the login: `code` is PAM's answer at `step` (a wrong
    /// password, an unknown user, an expired or locked account...).
    Refused {
        /// Where.
        step: Step,
        /// PAM's return code.
        code: c_int,
    },
    /// PAM itself failed (no such service file, a module that cannot be
    /// loaded, an unreachable directory): the login cannot be checked.
    Failed {
        /// Where.
        step: Step,
        /// PAM's return code.
        code: c_int,
    },
    /// PAM let the name in, but the system's user database has no such
    /// account to act as.
    NoAccount(String),
    /// Looking the account up failed.
    Lookup(IdentityError),
}

impl PamError {
    /// Whether PAM said it does not know the name.
    pub fn is_unknown_user(&self) -> bool {
        matches!(self, PamError::Refused { code, .. } if *code == sys::PAM_USER_UNKNOWN)
    }

    /// Whether PAM said the password is wrong.
    pub fn is_wrong_password(&self) -> bool {
        matches!(self, PamError::Refused { step: Step::Authenticate, code } if *code == sys::PAM_AUTH_ERR)
    }

    /// Whether the login could not be checked at all (rather than being
    /// refused).
    pub fn is_failure(&self) -> bool {
        matches!(self, PamError::Failed { .. } | PamError::Lookup(_))
    }
}

/// PAM's text for a return code.
fn strerror(code: c_int) -> String {
    // SAFETY: Linux-PAM ignores the handle and returns a static string.
    let text = unsafe { sys::pam_strerror(ptr::null(), code) };
    if text.is_null() {
        return format!("PAM error {code}");
    }
    // SAFETY: non-null, NUL-terminated, static.
    unsafe { CStr::from_ptr(text) }
        .to_string_lossy()
        .into_owned()
}

impl fmt::Display for PamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PamError::Nul => f.write_str("the name or password holds a NUL byte"),
            PamError::Refused { step, code } | PamError::Failed { step, code } => {
                write!(f, "{step}: {}", strerror(*code))
            }
            PamError::NoAccount(name) => write!(
                f,
                "PAM accepted {:?}, but the user database has no such account",
                name.escape_debug()
            ),
            PamError::Lookup(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PamError {}

/// Whether a return code says PAM could not do its work (rather than
/// refusing the login).
fn is_failure(code: c_int) -> bool {
    [
        sys::PAM_OPEN_ERR,
        sys::PAM_SYMBOL_ERR,
        sys::PAM_SERVICE_ERR,
        sys::PAM_SYSTEM_ERR,
        sys::PAM_BUF_ERR,
        sys::PAM_AUTHINFO_UNAVAIL,
        sys::PAM_ABORT,
    ]
    .contains(&code)
}

fn error(step: Step, code: c_int) -> PamError {
    if is_failure(code) {
        PamError::Failed { step, code }
    } else {
        PamError::Refused { step, code }
    }
}

/// Most messages one conversation call may carry (Linux-PAM's
/// `PAM_MAX_NUM_MSG`).
const MAX_MESSAGES: c_int = 32;

/// What the conversation answers with.
struct Answers {
    user: CString,
    password: CString,
    /// Whether the password was given already.
    asked: std::cell::Cell<bool>,
}

/// Frees the answers of one conversation call, wiping passwords first.
///
/// # Safety
/// `replies` was allocated by `calloc` for `n` responses, each `resp`
/// null or from `strdup`.
unsafe fn free_replies(replies: *mut sys::pam_response, n: usize) {
    for i in 0..n {
        // SAFETY: within the array, per the contract.
        let reply = unsafe { &mut *replies.add(i) };
        if !reply.resp.is_null() {
            // SAFETY: a NUL-terminated string of ours.
            let len = unsafe { libc::strlen(reply.resp) };
            // SAFETY: `len` bytes are ours to write.
            unsafe { ptr::write_bytes(reply.resp, 0, len) };
            // SAFETY: from `strdup`.
            unsafe { libc::free(reply.resp.cast()) };
        }
    }
    // SAFETY: from `calloc`.
    unsafe { libc::free(replies.cast()) };
}

/// The conversation function PAM calls (Linux-PAM's layout: `msg` is an
/// array of `num_msg` pointers). The answers are allocated with the C
/// library, as PAM frees them.
unsafe extern "C" fn converse(
    num_msg: c_int,
    msg: *const *const sys::pam_message,
    resp: *mut *mut sys::pam_response,
    appdata: *mut c_void,
) -> c_int {
    if !(1..=MAX_MESSAGES).contains(&num_msg) || msg.is_null() || resp.is_null() {
        return sys::PAM_CONV_ERR;
    }
    if appdata.is_null() {
        return sys::PAM_CONV_ERR;
    }
    // SAFETY: `appdata` is the `Answers` the transaction holds for as long
    // as PAM may call this.
    let answers = unsafe { &*(appdata as *const Answers) };
    let n = num_msg as usize;
    // SAFETY: plain allocation; zeroed, so every `resp` starts null.
    let replies = unsafe { libc::calloc(n, std::mem::size_of::<sys::pam_response>()) }
        .cast::<sys::pam_response>();
    if replies.is_null() {
        return sys::PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: `msg` holds `num_msg` pointers.
        let message = unsafe { *msg.add(i) };
        if message.is_null() {
            // SAFETY: allocated above, answers from strdup.
            unsafe { free_replies(replies, n) };
            return sys::PAM_CONV_ERR;
        }
        // SAFETY: PAM's message, valid during the call.
        let message = unsafe { &*message };
        let answer: Option<&CStr> = match message.msg_style {
            sys::PAM_PROMPT_ECHO_OFF if !answers.asked.replace(true) => Some(&answers.password),
            sys::PAM_PROMPT_ECHO_ON => Some(&answers.user),
            sys::PAM_ERROR_MSG | sys::PAM_TEXT_INFO => {
                if !message.msg.is_null() {
                    // SAFETY: PAM's NUL-terminated text.
                    let text = unsafe { CStr::from_ptr(message.msg) };
                    log::debug!("PAM says: {}", text.to_string_lossy());
                }
                None
            }
            _ => {
                // A second hidden prompt, or one FTP cannot answer.
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return sys::PAM_CONV_ERR;
            }
        };
        if let Some(answer) = answer {
            // SAFETY: a NUL-terminated string; PAM frees the copy.
            let copy = unsafe { libc::strdup(answer.as_ptr()) };
            if copy.is_null() {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return sys::PAM_BUF_ERR;
            }
            // SAFETY: within the array.
            unsafe { (*replies.add(i)).resp = copy };
        }
    }
    // SAFETY: PAM gave a place for the answer.
    unsafe { *resp = replies };
    sys::PAM_SUCCESS
}

/// Called by Linux-PAM instead of sleeping after a failure
/// (`PAM_FAIL_DELAY`): the engine delays the answer itself.
unsafe extern "C" fn no_delay(_status: c_int, _usec: c_uint, _appdata: *mut c_void) {}

/// One PAM transaction: ended (`pam_end`) when dropped, with its last
/// return code.
struct Transaction {
    handle: *mut sys::pam_handle,
    last: c_int,
    /// Kept for as long as the handle: OpenPAM keeps the pointer, and
    /// the conversation reads the answers.
    _conv: Box<sys::pam_conv>,
    _answers: Box<Answers>,
}

impl Transaction {
    fn start(service: &CStr, answers: Answers) -> Result<Transaction, PamError> {
        let answers = Box::new(answers);
        let mut conv = Box::new(sys::pam_conv {
            conv: converse,
            appdata_ptr: (&*answers as *const Answers).cast_mut().cast(),
        });
        let mut handle = ptr::null_mut();
        // SAFETY: valid strings; `conv` and `answers` live as long as the
        // transaction.
        let code = unsafe {
            sys::pam_start(
                service.as_ptr(),
                answers.user.as_ptr(),
                &mut *conv,
                &mut handle,
            )
        };
        if code != sys::PAM_SUCCESS || handle.is_null() {
            return Err(PamError::Failed {
                step: Step::Start,
                code,
            });
        }
        Ok(Transaction {
            handle,
            last: sys::PAM_SUCCESS,
            _conv: conv,
            _answers: answers,
        })
    }

    /// Records a step's return code, as an error unless it succeeded.
    fn step(&mut self, step: Step, code: c_int) -> Result<(), PamError> {
        self.last = code;
        if code == sys::PAM_SUCCESS {
            Ok(())
        } else {
            Err(error(step, code))
        }
    }

    fn set_item(&mut self, item: c_int, value: *const c_void) -> Result<(), PamError> {
        // SAFETY: a live handle; PAM copies string items, and the
        // function item is a static function.
        let code = unsafe { sys::pam_set_item(self.handle, item, value) };
        self.step(Step::Items, code)
    }

    fn authenticate(&mut self) -> Result<(), PamError> {
        let flags = sys::PAM_SILENT | sys::PAM_DISALLOW_NULL_AUTHTOK;
        // SAFETY: a live handle.
        let code = unsafe { sys::pam_authenticate(self.handle, flags) };
        self.step(Step::Authenticate, code)
    }

    fn account(&mut self) -> Result<(), PamError> {
        let flags = sys::PAM_SILENT | sys::PAM_DISALLOW_NULL_AUTHTOK;
        // SAFETY: a live handle.
        let code = unsafe { sys::pam_acct_mgmt(self.handle, flags) };
        self.step(Step::Account, code)
    }

    /// `PAM_USER` now: the name the modules settled on.
    fn user(&mut self) -> Result<String, PamError> {
        let mut item: *const c_void = ptr::null();
        // SAFETY: a live handle; the item stays PAM's.
        let code = unsafe { sys::pam_get_item(self.handle, sys::PAM_USER, &mut item) };
        self.step(Step::User, code)?;
        if item.is_null() {
            return Err(PamError::Failed {
                step: Step::User,
                code: sys::PAM_SYSTEM_ERR,
            });
        }
        // SAFETY: PAM's NUL-terminated string, copied before the
        // transaction ends.
        let name = unsafe { CStr::from_ptr(item.cast::<c_char>()) };
        Ok(name.to_string_lossy().into_owned())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        // SAFETY: the handle from pam_start, ended once.
        unsafe { sys::pam_end(self.handle, self.last) };
    }
}

/// One PAM transaction at a time, for modules that are not thread-safe.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Checks `user`'s `password` with PAM service `service` for a client at
/// `peer`, and returns the account the session acts as. Blocking (PAM
/// modules may ask a directory server): call it on the worker pool's
/// password-check lane.
pub fn check(service: &str, user: &str, password: &str, peer: IpAddr) -> Result<Account, PamError> {
    let (Ok(service), Ok(user_c), Ok(password)) = (
        CString::new(service),
        CString::new(user),
        CString::new(password),
    ) else {
        return Err(PamError::Nul);
    };
    let Ok(rhost) = CString::new(peer.to_string()) else {
        return Err(PamError::Nul);
    };
    let answers = Answers {
        user: user_c,
        password,
        asked: std::cell::Cell::new(false),
    };
    let name = {
        let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        let mut pam = Transaction::start(&service, answers)?;
        pam.set_item(sys::PAM_RHOST, rhost.as_ptr().cast())?;
        pam.set_item(sys::PAM_TTY, c"ftp".as_ptr().cast())?;
        pam.set_item(sys::PAM_FAIL_DELAY, no_delay as *const c_void)?;
        pam.authenticate()?;
        pam.account()?;
        pam.user()?
    };
    match account_named(&name) {
        Ok(Some(account)) => Ok(account),
        Ok(None) => Err(PamError::NoAccount(name)),
        Err(e) => Err(PamError::Lookup(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Calls the conversation as PAM would, with `styles` as prompts.
    fn converse_with(answers: &Answers, styles: &[c_int]) -> Result<Vec<Option<String>>, c_int> {
        let messages: Vec<sys::pam_message> = styles
            .iter()
            .map(|&style| sys::pam_message {
                msg_style: style,
                msg: c"prompt: ".as_ptr(),
            })
            .collect();
        let pointers: Vec<*const sys::pam_message> =
            messages.iter().map(|m| m as *const _).collect();
        let mut replies: *mut sys::pam_response = ptr::null_mut();
        // SAFETY: valid arrays and answers, as PAM passes them.
        let code = unsafe {
            converse(
                styles.len() as c_int,
                pointers.as_ptr(),
                &mut replies,
                (answers as *const Answers).cast_mut().cast(),
            )
        };
        if code != sys::PAM_SUCCESS {
            return Err(code);
        }
        let out = (0..styles.len())
            .map(|i| {
                // SAFETY: `converse` filled `styles.len()` replies.
                let r = unsafe { &*replies.add(i) };
                (!r.resp.is_null())
                    // SAFETY: strings from strdup.
                    .then(|| {
                        unsafe { CStr::from_ptr(r.resp) }
                            .to_string_lossy()
                            .into_owned()
                    })
            })
            .collect();
        // SAFETY: as `converse` allocated them.
        unsafe { free_replies(replies, styles.len()) };
        Ok(out)
    }

    fn answers() -> Answers {
        Answers {
            user: c"alice".to_owned(),
            password: c"hunter2".to_owned(),
            asked: std::cell::Cell::new(false),
        }
    }

    #[test]
    fn the_conversation_answers_name_and_one_password() {
        let a = answers();
        let got = converse_with(
            &a,
            &[
                sys::PAM_TEXT_INFO,
                sys::PAM_PROMPT_ECHO_ON,
                sys::PAM_PROMPT_ECHO_OFF,
            ],
        )
        .unwrap();
        assert_eq!(got, [None, Some("alice".into()), Some("hunter2".into())]);
        // A second hidden prompt (a one-time code, say) is not answered
        // with the password again.
        assert_eq!(
            converse_with(&a, &[sys::PAM_PROMPT_ECHO_OFF]),
            Err(sys::PAM_CONV_ERR)
        );
        // Prompts FTP cannot answer, and silly counts.
        let b = answers();
        assert_eq!(
            converse_with(&b, &[sys::PAM_ERROR_MSG, 99]),
            Err(sys::PAM_CONV_ERR)
        );
        assert_eq!(converse_with(&b, &[]), Err(sys::PAM_CONV_ERR));
    }

    #[test]
    fn names_and_passwords_with_nul_are_refused_before_pam() {
        let peer: IpAddr = [127, 0, 0, 1].into();
        assert!(matches!(
            check("ftp", "a\0b", "x", peer),
            Err(PamError::Nul)
        ));
        assert!(matches!(check("ftp", "a", "x\0", peer), Err(PamError::Nul)));
    }

    #[test]
    fn codes_sort_into_refusals_and_failures() {
        assert!(error(Step::Authenticate, sys::PAM_AUTH_ERR).is_wrong_password());
        assert!(error(Step::Authenticate, sys::PAM_USER_UNKNOWN).is_unknown_user());
        assert!(!error(Step::Account, sys::PAM_ACCT_EXPIRED).is_failure());
        assert!(error(Step::Start, sys::PAM_SYSTEM_ERR).is_failure());
        assert!(error(Step::Authenticate, sys::PAM_AUTHINFO_UNAVAIL).is_failure());
        let text = error(Step::Authenticate, sys::PAM_AUTH_ERR).to_string();
        assert!(text.starts_with("pam_authenticate: "), "{text}");
    }
}
