//! The S3 figures (`--figures s3`, or `s3-retr`, `s3-stor`, `s3-list`,
//! `s3-small`, `s3-burst`): ftp-mio and ftp-smol serving a bucket, against
//! `rclone serve ftp` on the same bucket of the same SeaweedFS store, in the
//! same run. See BENCHMARKS.md, "Object storage (S3)".

mod figures;
mod http;
pub mod report;
pub mod run;
mod setup;
mod store;

use std::fmt;
use std::io;

pub use run::run;

/// The bucket every server serves.
pub const BUCKET: &str = "bench";

/// The prefix every server serves as `/`.
pub const PREFIX: &str = "ftp";

/// Credentials given to every client of the store (it checks none).
pub const ACCESS_KEY: &str = "bench";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "bench-secret";

/// The S3 figure names; `s3` stands for all of them.
pub const FIGURES: [&str; 5] = ["s3-retr", "s3-stor", "s3-list", "s3-small", "s3-burst"];

/// Why an S3 step failed.
#[derive(Debug)]
pub enum S3Error {
    /// A socket or file operation.
    Io(io::Error),
    /// The store's process exited or never answered.
    StoreExited(String),
    /// The store answered something that is not HTTP as expected.
    BadAnswer(String),
    /// The store answered with an unexpected status.
    Status {
        /// The request.
        what: String,
        /// The status it got.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// An object holds other bytes than were sent.
    Wrong(String),
}

impl fmt::Display for S3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            S3Error::Io(e) => write!(f, "{e}"),
            S3Error::StoreExited(why) => write!(f, "the store is not running: {why}"),
            S3Error::BadAnswer(what) => write!(f, "the store answered badly: {what}"),
            S3Error::Status { what, status, body } => {
                write!(f, "{what}: HTTP {status}: {body}")
            }
            S3Error::Wrong(what) => write!(f, "stored object is wrong: {what}"),
        }
    }
}

impl std::error::Error for S3Error {}

impl From<io::Error> for S3Error {
    fn from(e: io::Error) -> S3Error {
        S3Error::Io(e)
    }
}

/// Whether `figure` (one of [`FIGURES`]) was asked for, by name or as `s3`.
pub fn wanted(figures: &[String], figure: &str) -> bool {
    figures.iter().any(|f| f == figure || f == "s3")
}

/// Whether any S3 figure was asked for.
pub fn any_wanted(figures: &[String]) -> bool {
    FIGURES.iter().any(|f| wanted(figures, f))
}
