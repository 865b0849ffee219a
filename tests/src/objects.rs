//! The objects under one prefix of a bucket of the test cluster
//! ([`crate::seaweed`]), read and written with plain unsigned HTTP
//! requests: what the tests see of a bucket without going through the
//! daemon's own S3 client.
//!
//! Paths are relative to the prefix, `/`-separated, with no leading `/`
//! (`""` is the prefix itself). A folder is a common prefix; the
//! harness makes it as the daemons' `MKD` does, a zero-byte marker
//! object `name/`.

use std::net::SocketAddr;
use std::path::PathBuf;

use crate::seaweed::{Response, http_request};
use crate::tree::Entry;

/// Keys asked for per `ListObjectsV2` page.
const PAGE: usize = 1000;

/// A prefix of a bucket, reached over HTTP.
#[derive(Clone, Debug)]
pub struct Objects {
    addr: SocketAddr,
    bucket: String,
    /// Ends in `/`.
    prefix: String,
}

/// One level of a folder: the files' and the sub-folders' names.
#[derive(Debug, Default)]
struct Level {
    files: Vec<String>,
    dirs: Vec<String>,
}

impl Objects {
    /// The objects under `prefix` (no leading or trailing `/`) of
    /// `bucket` of the S3 gateway at `addr`.
    pub fn new(addr: SocketAddr, bucket: &str, prefix: &str) -> Objects {
        Objects {
            addr,
            bucket: bucket.into(),
            prefix: format!("{}/", prefix.trim_matches('/')),
        }
    }

    /// The prefix, without its trailing `/`.
    pub fn prefix(&self) -> &str {
        self.prefix.trim_end_matches('/')
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key of `rel`.
    fn key(&self, rel: &str) -> String {
        format!("{}{}", self.prefix, rel.trim_matches('/'))
    }

    /// The key prefix of the folder `rel`, ending in `/`.
    fn dir_key(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}{rel}/", self.prefix)
        }
    }

    /// One request; panics on I/O errors and on a status not in `ok`.
    fn request(&self, method: &str, target: &str, body: &[u8], ok: &[u16]) -> Response {
        match http_request(self.addr, method, target, body) {
            Ok(r) if ok.contains(&r.status) => r,
            Ok(r) => panic!(
                "bucket: {method} {target}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ),
            Err(e) => panic!("bucket: {method} {target}: {e}"),
        }
    }

    /// The request target of object `key`.
    fn object_target(&self, key: &str) -> String {
        format!("/{}/{}", self.bucket, encode(key, true))
    }

    /// The content of `rel`, `None` if there is no such object.
    pub fn get(&self, rel: &str) -> Option<Vec<u8>> {
        let r = self.request("GET", &self.object_target(&self.key(rel)), &[], &[200, 404]);
        (r.status == 200).then_some(r.body)
    }

    /// Stores `data` as `rel`, with a folder marker for every folder above
    /// it.
    pub fn put(&self, rel: &str, data: &[u8]) {
        let rel = rel.trim_matches('/');
        if let Some((parent, _)) = rel.rsplit_once('/') {
            self.make_dir(parent);
        }
        self.request("PUT", &self.object_target(&self.key(rel)), data, &[200]);
    }

    /// Makes the folder `rel` and its parents (their marker objects).
    pub fn make_dir(&self, rel: &str) {
        let rel = rel.trim_matches('/');
        let mut at = 0;
        while at < rel.len() {
            let end = rel[at..].find('/').map_or(rel.len(), |i| at + i);
            let marker = self.dir_key(&rel[..end]);
            self.request("PUT", &self.object_target(&marker), &[], &[200]);
            at = end + 1;
        }
    }

    /// Deletes the object `rel` and the folder marker `rel/` (what is not
    /// there is no error).
    pub fn delete(&self, rel: &str) {
        for key in [self.key(rel), self.dir_key(rel)] {
            self.request("DELETE", &self.object_target(&key), &[], &[200, 204, 404]);
        }
    }

    /// Whether the object `rel` exists (a file, not a folder marker).
    pub fn is_file(&self, rel: &str) -> bool {
        let rel = rel.trim_matches('/');
        !rel.is_empty() && self.head(rel).is_some()
    }

    /// Whether `rel` is a folder: the prefix itself, or a key prefix that
    /// some object (its marker, or anything in it) has.
    pub fn is_dir(&self, rel: &str) -> bool {
        let rel = rel.trim_matches('/');
        if rel.is_empty() {
            return true;
        }
        let page = self.list_page(&self.dir_key(rel), false, 1, None);
        !page.0.is_empty() || !page.1.is_empty()
    }

    /// The answer to a `HEAD` of `rel`, `None` if there is no such object.
    fn head(&self, rel: &str) -> Option<Response> {
        let r = self.request(
            "HEAD",
            &self.object_target(&self.key(rel)),
            &[],
            &[200, 404],
        );
        (r.status == 200).then_some(r)
    }

    /// The modification time of the object `rel` (its `Last-Modified`),
    /// as seconds since the Unix epoch; panics if there is none.
    pub fn modified(&self, rel: &str) -> i64 {
        let r = self
            .head(rel)
            .unwrap_or_else(|| panic!("bucket: no object {rel}"));
        let value = r
            .headers
            .iter()
            .find_map(|h| {
                let (name, value) = h.split_once(':')?;
                name.trim()
                    .eq_ignore_ascii_case("last-modified")
                    .then(|| value.trim().to_string())
            })
            .unwrap_or_else(|| panic!("bucket: HEAD {rel}: no Last-Modified"));
        http_date(&value).unwrap_or_else(|| panic!("bucket: HEAD {rel}: Last-Modified {value:?}"))
    }

    /// The names in the folder `rel` (files and folders, one level),
    /// sorted; its own marker is not one of them.
    pub fn names(&self, rel: &str) -> Vec<String> {
        let level = self.level(rel);
        let mut names = level.files;
        names.extend(level.dirs);
        names.sort();
        names
    }

    /// One level of the folder `rel`, every page of it.
    fn level(&self, rel: &str) -> Level {
        let dir = self.dir_key(rel);
        let mut level = Level::default();
        let mut token = None;
        loop {
            let (keys, prefixes, next) = self.list_page(&dir, true, PAGE, token.as_deref());
            for key in keys {
                match key.strip_prefix(dir.as_str()) {
                    Some(name) if !name.is_empty() => level.files.push(name.to_string()),
                    _ => {}
                }
            }
            for prefix in prefixes {
                if let Some(name) = prefix.strip_prefix(dir.as_str()) {
                    level.dirs.push(name.trim_end_matches('/').to_string());
                }
            }
            match next {
                Some(t) => token = Some(t),
                None => return level,
            }
        }
    }

    /// Every key under the prefix, relative to it, sorted.
    fn all_keys(&self) -> Vec<String> {
        let mut all = Vec::new();
        let mut token = None;
        loop {
            let (keys, _, next) = self.list_page(&self.prefix, false, PAGE, token.as_deref());
            all.extend(
                keys.iter()
                    .filter_map(|k| k.strip_prefix(self.prefix.as_str()))
                    .map(str::to_string),
            );
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        all.sort();
        all
    }

    /// Every folder and file under the prefix with its contents, as
    /// [`crate::tree::snapshot`] gives them for a folder: a marker
    /// `a/b/` is the folder `a/b`, and so is every folder above a key.
    pub fn snapshot(&self) -> std::collections::BTreeMap<PathBuf, Entry> {
        let mut out = std::collections::BTreeMap::new();
        for key in self.all_keys() {
            let (rel, dir) = match key.strip_suffix('/') {
                Some(rel) => (rel, true),
                None => (key.as_str(), false),
            };
            let mut parent = rel;
            while let Some((up, _)) = parent.rsplit_once('/') {
                out.insert(PathBuf::from(up), Entry::Dir);
                parent = up;
            }
            if rel.is_empty() {
                continue;
            }
            let entry = if dir {
                Entry::Dir
            } else {
                Entry::File(self.get(rel).unwrap_or_default())
            };
            out.insert(PathBuf::from(rel), entry);
        }
        out
    }

    /// The keys (relative to the prefix) of the multipart uploads in
    /// progress under the prefix.
    pub fn uploads(&self) -> Vec<String> {
        let target = format!(
            "/{}?uploads&prefix={}",
            self.bucket,
            encode(&self.prefix, false)
        );
        let body = self.request("GET", &target, &[], &[200]).body;
        let text = String::from_utf8_lossy(&body);
        blocks(&text, "Upload")
            .iter()
            .filter_map(|upload| first(upload, "Key"))
            .filter_map(|key| key.strip_prefix(self.prefix.as_str()).map(str::to_string))
            .collect()
    }

    /// One `ListObjectsV2` page of the keys starting with `prefix` (one
    /// level if `delimited`): the keys, the common prefixes, and the token
    /// of the next page if there is one.
    fn list_page(
        &self,
        prefix: &str,
        delimited: bool,
        max: usize,
        token: Option<&str>,
    ) -> (Vec<String>, Vec<String>, Option<String>) {
        let mut target = format!(
            "/{}?list-type=2&max-keys={max}&prefix={}",
            self.bucket,
            encode(prefix, false)
        );
        if delimited {
            target.push_str("&delimiter=%2F");
        }
        if let Some(token) = token {
            target.push_str("&continuation-token=");
            target.push_str(&encode(token, false));
        }
        let body = self.request("GET", &target, &[], &[200]).body;
        let text = String::from_utf8_lossy(&body);
        let keys = blocks(&text, "Contents")
            .iter()
            .filter_map(|c| first(c, "Key"))
            .collect();
        let prefixes = blocks(&text, "CommonPrefixes")
            .iter()
            .filter_map(|c| first(c, "Prefix"))
            .collect();
        let truncated = first(&text, "IsTruncated").is_some_and(|t| t == "true");
        let next = if truncated {
            let next = first(&text, "NextContinuationToken");
            assert!(
                next.is_some(),
                "bucket: a truncated listing without a token"
            );
            next
        } else {
            None
        };
        (keys, prefixes, next)
    }
}

/// Percent-encodes `s` for a request target: everything but unreserved
/// characters (and `/` if `keep_slash`).
pub(crate) fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (keep_slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The insides of every `<tag>...</tag>` in `text`.
pub(crate) fn blocks<'a>(text: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find(&open) {
        let inner = &rest[start + open.len()..];
        let Some(end) = inner.find(&close) else { break };
        out.push(&inner[..end]);
        rest = &inner[end + close.len()..];
    }
    out
}

/// The text of the first `<tag>` in `text`, XML entities decoded.
pub(crate) fn first(text: &str, tag: &str) -> Option<String> {
    blocks(text, tag).first().map(|t| unescape(t))
}

/// `text` with XML's character references decoded.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let Some(semi) = after.find(';') else {
            out.push_str(&rest[amp..]);
            return out;
        };
        let name = &after[..semi];
        let decoded = match name {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => name
                .strip_prefix("#x")
                .map(|hex| u32::from_str_radix(hex, 16))
                .or_else(|| name.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[amp..amp + 2 + semi]),
        }
        rest = &after[semi + 1..];
    }
    out.push_str(rest);
    out
}

/// Seconds since the Unix epoch of an HTTP date (`Sun, 06 Nov 1994
/// 08:49:37 GMT`).
fn http_date(value: &str) -> Option<i64> {
    let mut words = value.split_whitespace().skip(1);
    let day: u32 = words.next()?.parse().ok()?;
    let month = words.next()?;
    let year: i64 = words.next()?.parse().ok()?;
    let mut clock = words.next()?.split(':').map(str::parse::<i64>);
    let (h, m, s) = (
        clock.next()?.ok()?,
        clock.next()?.ok()?,
        clock.next()?.ok()?,
    );
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == month)? as u32 + 1;
    let days = crate::tree::days_from_civil(year, month, day);
    Some(days * 86_400 + h * 3600 + m * 60 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_keys_and_query_values() {
        assert_eq!(encode("a b/ü\"x", true), "a%20b/%C3%BC%22x");
        assert_eq!(encode("p/", false), "p%2F");
    }

    #[test]
    fn decodes_xml_text() {
        assert_eq!(unescape("a&amp;b&#34;c&#x9;&lt;"), "a&b\"c\t<");
        assert_eq!(unescape("no &entity"), "no &entity");
    }

    #[test]
    fn reads_http_dates() {
        assert_eq!(
            http_date("Thu, 02 Jan 2020 03:04:05 GMT"),
            Some(1_577_934_245)
        );
        assert_eq!(http_date("garbage"), None);
    }

    #[test]
    fn finds_blocks() {
        let xml = "<R><Prefix>p/</Prefix><Contents><Key>p/a</Key></Contents>\
                   <CommonPrefixes><Prefix>p/d/</Prefix></CommonPrefixes></R>";
        assert_eq!(blocks(xml, "Contents"), ["<Key>p/a</Key>"]);
        let dirs: Vec<_> = blocks(xml, "CommonPrefixes")
            .iter()
            .filter_map(|b| first(b, "Prefix"))
            .collect();
        assert_eq!(dirs, ["p/d/"]);
    }
}
