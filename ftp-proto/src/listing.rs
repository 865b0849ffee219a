//! Listing formats: `ls -l` lines for LIST, bare names for NLST, RFC 3659
//! facts for MLSD/MLST, and the `MDTM` timestamp.

use alloc::vec::Vec;

use crate::meta::DirEntry;
use crate::time::UnixTime;

/// How a listing prints each entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListFormat {
    /// The line format.
    pub style: ListStyle,
    /// Include names starting with `.` (`-a`).
    pub show_hidden: bool,
    /// Whether the session may write (MLSD `perm` facts).
    pub writable: bool,
}

/// The line format of a listing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListStyle {
    /// `ls -l` style (LIST).
    Long,
    /// Names only (NLST).
    Names,
    /// RFC 3659 facts (MLSD) with the selected facts.
    Machine(Facts),
}

/// A set of MLST facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facts(pub u8);

impl ListFormat {
    /// Whether an entry with this name belongs in the listing.
    pub fn includes(&self, name: &str) -> bool {
        let _ = name;
        todo!()
    }

    /// Appends the entry's line, CRLF-terminated. `now` decides between the
    /// recent (`Mon DD HH:MM`) and old (`Mon DD  YYYY`) date forms.
    pub fn write_entry(&self, entry: &DirEntry, now: UnixTime, out: &mut Vec<u8>) {
        let _ = (entry, now, out);
        todo!()
    }
}
