//! Virtual paths: what the client sees, always absolute, normalised and
//! unable to rise above `/`.
//!
//! The runtime maps a [`VirtualPath`] under its real root (with the kernel's
//! help for symlinks); the engine guarantees the string itself never names
//! anything above `/`.

use alloc::string::String;
use core::fmt;

/// A normalised absolute path in the session's virtual file tree.
///
/// Invariants: starts with `/`; no empty, `.` or `..` components; no
/// trailing `/` except for the root itself; no NUL byte.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtualPath(String);

impl VirtualPath {
    /// The root, `/`.
    pub fn root() -> Self {
        VirtualPath(String::from("/"))
    }

    /// Resolves `arg` (absolute, or relative to `self`) into a new path.
    ///
    /// `.` and repeated slashes are dropped, `..` removes the previous
    /// component and stops at `/`. NUL bytes make the path invalid
    /// (`None`); any other byte, including `\`, is part of a name.
    pub fn resolve(&self, arg: &str) -> Option<VirtualPath> {
        if arg.contains('\0') {
            return None;
        }
        let mut out = if arg.starts_with('/') {
            String::with_capacity(arg.len())
        } else {
            let mut s = String::with_capacity(self.0.len() + arg.len() + 1);
            if !self.is_root() {
                s.push_str(&self.0);
            }
            s
        };
        for part in arg.split('/') {
            match part {
                "" | "." => {}
                ".." => {
                    let cut = out.rfind('/').unwrap_or(0);
                    out.truncate(cut);
                }
                name => {
                    out.push('/');
                    out.push_str(name);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Some(VirtualPath(out))
    }

    /// Whether this is `/`.
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The path as a string, starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path without its leading `/` (empty for the root), ready to be
    /// opened relative to a directory handle.
    pub fn relative(&self) -> &str {
        &self.0[1..]
    }

    /// The last component, `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        if self.is_root() {
            None
        } else {
            self.0.rsplit('/').next()
        }
    }

    /// The containing directory (the root is its own parent).
    pub fn parent(&self) -> VirtualPath {
        match self.0.rfind('/') {
            Some(0) | None => VirtualPath::root(),
            Some(i) => VirtualPath(String::from(&self.0[..i])),
        }
    }

    /// The path's components, outermost first.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.relative().split('/').filter(|c| !c.is_empty())
    }
}

impl fmt::Display for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for VirtualPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(cwd: &str, arg: &str) -> String {
        let cwd = VirtualPath::root().resolve(cwd).unwrap();
        String::from(cwd.resolve(arg).unwrap().as_str())
    }

    #[test]
    fn resolves_relative_and_absolute() {
        assert_eq!(at("/", "a"), "/a");
        assert_eq!(at("/a", "b/c"), "/a/b/c");
        assert_eq!(at("/a", "/x"), "/x");
        assert_eq!(at("/a/b", ".."), "/a");
        assert_eq!(at("/a/b", "../../../.."), "/");
        assert_eq!(at("/", "//a///b//"), "/a/b");
        assert_eq!(at("/", "./a/./b/."), "/a/b");
        assert_eq!(at("/a", ""), "/a");
        assert_eq!(at("/", "my file"), "/my file");
        assert_eq!(at("/", "ünï/çødé"), "/ünï/çødé");
        assert_eq!(at("/", "..\\..\\x"), "/..\\..\\x");
        assert_eq!(at("/", "...."), "/....");
    }

    #[test]
    fn nul_is_rejected() {
        assert!(VirtualPath::root().resolve("a\0b").is_none());
    }

    #[test]
    fn parent_and_name() {
        let p = VirtualPath::root().resolve("/a/b").unwrap();
        assert_eq!(p.file_name(), Some("b"));
        assert_eq!(p.parent().as_str(), "/a");
        assert_eq!(p.parent().parent().as_str(), "/");
        assert_eq!(VirtualPath::root().parent().as_str(), "/");
        assert_eq!(p.relative(), "a/b");
        assert_eq!(p.components().count(), 2);
    }
}
