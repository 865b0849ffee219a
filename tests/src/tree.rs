//! File trees on disk: snapshots to compare, and small helpers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// One entry of a [`snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A folder.
    Dir,
    /// A regular file and its contents.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(PathBuf),
}

/// Every entry under `root` (not following symlinks), by relative path.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut out = BTreeMap::new();
    walk(root, Path::new(""), &mut out);
    out
}

fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
    let dir = root.join(rel);
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let rel = rel.join(entry.file_name());
        let full = root.join(&rel);
        let kind = entry.file_type().expect("file type");
        if kind.is_symlink() {
            out.insert(rel, Entry::Symlink(fs::read_link(&full).expect("readlink")));
        } else if kind.is_dir() {
            out.insert(rel.clone(), Entry::Dir);
            walk(root, &rel, out);
        } else {
            out.insert(rel, Entry::File(fs::read(&full).expect("read file")));
        }
    }
}

/// Panics with the first difference unless the trees under `a` and `b`
/// have the same folders, files and contents.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let sa = snapshot(a);
    let sb = snapshot(b);
    for (path, entry) in &sa {
        match sb.get(path) {
            None => panic!(
                "{} is in {} but not in {}",
                path.display(),
                a.display(),
                b.display()
            ),
            Some(other) => assert!(
                other == entry,
                "{} differs between {} and {}",
                path.display(),
                a.display(),
                b.display()
            ),
        }
    }
    for path in sb.keys() {
        assert!(
            sa.contains_key(path),
            "{} is in {} but not in {}",
            path.display(),
            b.display(),
            a.display()
        );
    }
}

/// Writes `files` (relative path, contents) under `root`, creating folders.
pub fn write_files(root: &Path, files: &[(&str, &[u8])]) {
    for (path, contents) in files {
        let full = root.join(path);
        if let Some(parent) = full.parent() {
            fs::create_dir_all(parent).expect("create folder");
        }
        fs::write(&full, contents).expect("write file");
    }
}

/// Names in the folder `dir` (not recursive), sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The modification time of `path` as seconds since the Unix epoch.
pub fn mtime(path: &Path) -> i64 {
    let m = fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    match m.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Sets the modification time of `path`.
pub fn set_mtime(path: &Path, secs_since_epoch: u64) {
    let f = fs::File::options()
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    f.set_modified(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs_since_epoch))
        .expect("set mtime");
}

/// `YYYYMMDDHHMMSS` (UTC) for seconds since the epoch, as MDTM prints it.
pub fn mdtm(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The day number (days since 1970-01-01) of a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdtm_format() {
        assert_eq!(mdtm(0), "19700101000000");
        assert_eq!(mdtm(1_577_934_245), "20200102030405");
        assert_eq!(mdtm(951_782_400), "20000229000000");
    }

    #[test]
    fn day_numbers_round_trip() {
        for days in [-800_000, -1, 0, 59, 10_957, 11_016, 20_000, 800_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }
}
