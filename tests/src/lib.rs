//! Test harness for the FTP daemons (work in progress).
