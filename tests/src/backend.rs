//! What a test server serves: a temporary folder (the default), or with
//! `FTP_TEST_STORAGE=s3` a prefix of a bucket of a SeaweedFS cluster
//! shared by every test of the test binary.
//!
//! The variable applies to the test files whose tests are declared with
//! `daemon_tests! { any_storage; ... }` (see [`crate::daemon_tests`]):
//! those are written against [`crate::TestServer`]'s methods that work
//! on both (`read_file`, `exists`, `names` ...). Every other test file
//! serves a folder whatever the variable says.
//!
//! The cluster is started once, by the first test that needs it, and
//! lives as long as the test process: a watcher process (`sh`) kills its
//! processes and removes its folder once the test process has exited,
//! however it ended (a `static` is never dropped).

use std::io::ErrorKind;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::objects::Objects;
use crate::seaweed::SeaweedFs;

/// The environment variable that chooses the storage: `local` (the
/// default) or `s3`.
pub const STORAGE_VAR: &str = "FTP_TEST_STORAGE";

/// The bucket of the shared cluster that test servers serve prefixes of.
pub const BUCKET: &str = "ftp-suite";

/// Where a test server keeps its files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A temporary folder on the local disk.
    Local,
    /// A prefix of [`BUCKET`] on the shared SeaweedFS cluster.
    S3,
}

/// The storage `FTP_TEST_STORAGE` names; panics on a value that is
/// neither `local` nor `s3`.
pub fn chosen() -> Backend {
    match std::env::var(STORAGE_VAR) {
        Err(_) => Backend::Local,
        Ok(v) if v.is_empty() || v == "local" => Backend::Local,
        Ok(v) if v == "s3" => Backend::S3,
        Ok(v) => panic!("{STORAGE_VAR}={v:?}: expected local or s3"),
    }
}

/// Set by the first test of a test file that runs on the chosen storage.
static FOLLOWS_CHOICE: AtomicBool = AtomicBool::new(false);

/// Called by [`crate::daemon_tests`] before each test declared with
/// `any_storage;`: from then on, test servers of this test process serve
/// the storage [`chosen`] says. Under `s3` it starts the shared cluster
/// (once), or says `SKIP:` and returns `false` when `weed` is not
/// installed (a failure under `FTP_TEST_REQUIRE_CLIENTS=1`).
pub fn enter(test: &str) -> bool {
    FOLLOWS_CHOICE.store(true, Ordering::Relaxed);
    if chosen() == Backend::Local {
        return true;
    }
    if CLUSTER.get().is_none() && crate::clients::require(test, "weed").is_none() {
        return false;
    }
    cluster();
    true
}

/// The storage of a test server started now.
pub(crate) fn for_new_server() -> Backend {
    if FOLLOWS_CHOICE.load(Ordering::Relaxed) {
        chosen()
    } else {
        Backend::Local
    }
}

/// The shared cluster and what removes it after the test process.
struct Shared {
    store: SeaweedFs,
    /// The watcher's standard input: closed by the system when the test
    /// process ends, which is the watcher's signal.
    _watcher: Option<ChildStdin>,
}

static CLUSTER: OnceLock<Shared> = OnceLock::new();

/// The shared cluster, started (with [`BUCKET`]) by the first caller;
/// the others wait for it. Panics if `weed` is missing or the cluster
/// does not start.
pub fn cluster() -> &'static SeaweedFs {
    &CLUSTER
        .get_or_init(|| {
            let weed = crate::clients::find_program("weed")
                .unwrap_or_else(|| panic!("{STORAGE_VAR}=s3: weed is not installed"));
            let store = SeaweedFs::start_with(&weed);
            store.bucket(BUCKET);
            let watcher = watch(&store);
            Shared {
                store,
                _watcher: watcher,
            }
        })
        .store
}

/// Starts a process that, once the test process has ended (its end of a
/// pipe closes), kills the cluster's processes and removes its folder.
fn watch(store: &SeaweedFs) -> Option<ChildStdin> {
    let script = "trap '' INT TERM HUP; read -r _ || :; dir=$1; shift; \
                  kill -KILL \"$@\" 2>/dev/null; sleep 1; rm -rf \"$dir\"";
    let spawned = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("ftp-tests-seaweed-watcher")
        .arg(store.dir())
        .args(store.pids().iter().map(u32::to_string))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match spawned {
        Ok(mut child) => child.stdin.take(),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            eprintln!("no sh: the shared SeaweedFS cluster outlives the tests");
            None
        }
        Err(e) => panic!("starting the cluster's watcher: {e}"),
    }
}

/// A configuration file's `[storage]` table that serves `objects` of the
/// shared cluster (which takes any credentials).
pub(crate) fn storage_table(objects: &Objects) -> String {
    format!(
        "[storage]\nurl = \"s3://{}/{}\"\ns3_endpoint = \"{}\"\n\
         access_key_id = \"test\"\nsecret_access_key = \"test\"\n",
        objects.bucket(),
        objects.prefix(),
        cluster().endpoint()
    )
}

/// A new prefix of [`BUCKET`] for one test server.
pub(crate) fn new_prefix() -> Objects {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    Objects::new(cluster().addr(), BUCKET, &format!("server-{n}"))
}
