//! Shell-style patterns in the last component of `LIST`, `NLST` and
//! `MLSD` arguments (`NLST *.txt`, `mget *.csv`): `*`, `?` and `[...]`
//! (with ranges and `!` or `^` to negate), matched against names, never
//! across `/`. A `[` without its `]` is an ordinary character.

use alloc::string::String;

/// A pattern a listing is filtered with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    /// The pattern (one path component).
    pub pattern: String,
    /// What the client wrote before the pattern (`dir/` in `dir/*.txt`),
    /// printed before each name of an `NLST`, so the names it returns can
    /// be fetched as they are.
    pub prefix: String,
    /// Most names the listing may match; more is refused.
    pub max_matches: usize,
}

impl Glob {
    /// Whether `name` matches the pattern.
    pub fn matches(&self, name: &str) -> bool {
        matches(&self.pattern, name)
    }
}

/// Whether `s` holds a pattern character.
pub fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Splits a listing argument whose last component is a pattern into the
/// directory part (as written, with its trailing `/`, possibly empty) and
/// the pattern; `None` when the last component has no pattern character.
pub fn split_pattern(arg: &str) -> Option<(&str, &str)> {
    let cut = arg.rfind('/').map_or(0, |i| i + 1);
    let (dir, last) = arg.split_at(cut);
    (is_pattern(last) && !last.is_empty()).then_some((dir, last))
}

/// Whether `name` matches `pattern` as a shell would match one file name.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: alloc::vec::Vec<char> = pattern.chars().collect();
    let n: alloc::vec::Vec<char> = name.chars().collect();
    // Classic backtracking over the last `*`: linear in practice, at worst
    // pattern length times name length, both bounded by the line length.
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ni));
                pi += 1;
                continue;
            }
            Some('?') => {
                pi += 1;
                ni += 1;
                continue;
            }
            Some('[') => {
                if let Some((hit, next)) = class(&p[pi..], n[ni]) {
                    if hit {
                        pi += next;
                        ni += 1;
                        continue;
                    }
                } else if n[ni] == '[' {
                    pi += 1;
                    ni += 1;
                    continue;
                }
            }
            Some(&c) if c == n[ni] => {
                pi += 1;
                ni += 1;
                continue;
            }
            _ => {}
        }
        match star {
            Some((sp, sn)) => {
                pi = sp + 1;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            }
            None => return false,
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the class at the start of `p` (`p[0]` is `[`):
/// whether it matched and the class's length, or `None` if the class is
/// not closed.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = matches!(p.get(i), Some('!' | '^'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    loop {
        let &lo = p.get(i)?;
        if lo == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&hi| hi != ']') {
            let hi = p[i + 2];
            hit |= lo <= c && c <= hi;
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_patterns() {
        let yes = [
            ("*.txt", "a.txt"),
            ("*.txt", ".txt"),
            ("a?c", "abc"),
            ("*", "anything"),
            ("[abc]x", "bx"),
            ("[a-c]x", "cx"),
            ("[!a-c]x", "dx"),
            ("[^a]x", "bx"),
            ("[]]x", "]x"),
            ("[a-]x", "-x"),
            ("x[", "x["),
            ("*a*b*c", "zzazzbzzc"),
            ("é*", "été"),
            ("**", ""),
        ];
        for (p, n) in yes {
            assert!(matches(p, n), "{p} should match {n}");
        }
        let no = [
            ("*.txt", "a.txt.gz"),
            ("a?c", "ac"),
            ("[abc]x", "dx"),
            ("[!a-c]x", "bx"),
            ("*a*b*c", "zzazzbzz"),
            ("?", ""),
        ];
        for (p, n) in no {
            assert!(!matches(p, n), "{p} should not match {n}");
        }
    }

    #[test]
    fn only_the_last_component_is_a_pattern() {
        assert_eq!(split_pattern("*.txt"), Some(("", "*.txt")));
        assert_eq!(split_pattern("dir/a?.csv"), Some(("dir/", "a?.csv")));
        assert_eq!(split_pattern("*/x.txt"), None);
        assert_eq!(split_pattern("dir/"), None);
        assert_eq!(split_pattern("plain"), None);
    }

    #[test]
    fn long_patterns_stay_cheap() {
        let pattern = "*a".repeat(200);
        let name = "a".repeat(199);
        assert!(!matches(&pattern, &name));
    }
}
