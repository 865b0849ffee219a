//! Multipart uploads left behind: a daemon killed during an upload
//! (`kill -9`, a crash, a lost machine) cannot abort its multipart upload,
//! and the store keeps its parts (and bills them) until someone does. At
//! start the daemon lists the multipart uploads under the served prefix
//! (`ListMultipartUploads`) and aborts those initiated longer ago than a
//! configured age (`--s3-abort-uploads-after`): younger ones may belong to
//! another node that serves the same bucket and is still receiving.
//!
//! OpenDAL has no call for listing multipart uploads, so these two requests
//! are made here with the crates OpenDAL itself is built on: reqsign signs
//! them (AWS Signature V4), OpenDAL's HTTP client sends them, and quick-xml
//! reads the XML answer into the structs below.

use std::fmt;
use std::time::{Duration, SystemTime};

use http::{Method, Request, StatusCode};
use opendal::Buffer;
use opendal::raw::HttpClient;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqsign_aws_v4::{Credential, RequestSigner, StaticCredentialProvider};
use reqsign_core::{Context, Signer};
use serde::Deserialize;

use super::super::S3Config;

/// Uploads asked for per `ListMultipartUploads` page (S3's maximum).
const PAGE: usize = 1000;

/// Pages read at most in one sweep (a million uploads), so that a store
/// that keeps answering "truncated" cannot keep the sweep going forever.
const MAX_PAGES: usize = 1000;

/// What may stay unencoded in a query value or a key (RFC 3986's
/// unreserved characters; S3 wants everything else percent-encoded).
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, keeping `/` between the segments of a key in a URL path.
const KEY_PATH: &AsciiSet = &UNRESERVED.remove(b'/');

/// Why a sweep stopped.
#[derive(Debug)]
pub enum SweepError {
    /// A request could not be built (a bad endpoint URL).
    Request(String),
    /// Signing failed.
    Sign(reqsign_core::Error),
    /// The request could not be sent or its answer read.
    Send(opendal::Error),
    /// The store answered with an HTTP error.
    Status(StatusCode, String),
    /// The answer was not the XML a `ListMultipartUploads` answer is.
    Xml(String),
}

impl fmt::Display for SweepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SweepError::Request(e) => write!(f, "cannot build the request: {e}"),
            SweepError::Sign(e) => write!(f, "cannot sign the request: {e}"),
            SweepError::Send(e) => write!(f, "request failed: {e}"),
            SweepError::Status(code, body) => write!(f, "the store answered {code}: {body}"),
            SweepError::Xml(e) => write!(f, "unreadable answer: {e}"),
        }
    }
}

impl std::error::Error for SweepError {}

/// What a sweep found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Multipart uploads under the prefix, of any age.
    pub found: usize,
    /// Those old enough, aborted.
    pub aborted: usize,
    /// Those old enough whose abort failed (they stay; the next start
    /// tries again).
    pub failed: usize,
}

/// One page of a `ListMultipartUploads` answer (the fields used).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ListPage {
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
    upload: Vec<UploadEntry>,
}

/// One multipart upload in progress.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct UploadEntry {
    key: String,
    upload_id: String,
    /// ISO 8601, for example `2026-12-05T19:20:00.000Z`.
    initiated: String,
}

/// Signs and sends the two requests of a sweep.
pub(super) struct Sweeper {
    /// `https://host[:port]/BUCKET` (path-style), no trailing `/`.
    bucket_url: String,
    signer: Signer<Credential>,
    client: HttpClient,
}

impl Sweeper {
    /// A sweeper for `config`'s bucket that sends with `client` (the
    /// storage's own).
    pub(super) fn new(config: &S3Config, client: HttpClient) -> Sweeper {
        let endpoint = match &config.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://s3.{}.amazonaws.com", config.region),
        };
        let mut credentials =
            StaticCredentialProvider::new(&config.access_key_id, &config.secret_access_key);
        if let Some(token) = &config.session_token {
            credentials = credentials.with_session_token(token);
        }
        let signer = Signer::new(
            Context::new(),
            credentials,
            RequestSigner::new("s3", &config.region),
        );
        Sweeper {
            bucket_url: format!(
                "{endpoint}/{}",
                utf8_percent_encode(&config.bucket, UNRESERVED)
            ),
            signer,
            client,
        }
    }

    /// Aborts the multipart uploads under `prefix` initiated at least
    /// `older_than` before `now`.
    pub(super) async fn sweep(
        &self,
        prefix: &str,
        older_than: Duration,
        now: SystemTime,
    ) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let mut markers: Option<(String, String)> = None;
        for _ in 0..MAX_PAGES {
            let page = self.list_page(prefix, markers.as_ref()).await?;
            for upload in &page.upload {
                if !upload.key.starts_with(prefix) {
                    continue;
                }
                report.found += 1;
                if !is_older(&upload.initiated, older_than, now) {
                    continue;
                }
                match self.abort(&upload.key, &upload.upload_id).await {
                    Ok(()) => {
                        log::info!(
                            "aborted a multipart upload left behind: {} (begun {})",
                            upload.key,
                            upload.initiated
                        );
                        report.aborted += 1;
                    }
                    Err(e) => {
                        log::warn!(
                            "cannot abort the multipart upload left behind of {}: {e}",
                            upload.key
                        );
                        report.failed += 1;
                    }
                }
            }
            match (
                page.is_truncated,
                page.next_key_marker,
                page.next_upload_id_marker,
            ) {
                (true, Some(key), Some(id)) if !key.is_empty() => markers = Some((key, id)),
                _ => break,
            }
        }
        Ok(report)
    }

    /// One page of `GET /BUCKET?uploads&prefix=...`.
    async fn list_page(
        &self,
        prefix: &str,
        markers: Option<&(String, String)>,
    ) -> Result<ListPage, SweepError> {
        let mut url = format!(
            "{}?uploads=&max-uploads={PAGE}&prefix={}",
            self.bucket_url,
            utf8_percent_encode(prefix, UNRESERVED)
        );
        if let Some((key, id)) = markers {
            url.push_str(&format!(
                "&key-marker={}&upload-id-marker={}",
                utf8_percent_encode(key, UNRESERVED),
                utf8_percent_encode(id, UNRESERVED)
            ));
        }
        let body = self.send(Method::GET, &url).await?;
        parse_page(&body)
    }

    /// `DELETE /BUCKET/KEY?uploadId=...`; an upload already gone (someone
    /// else aborted or completed it) counts as done.
    async fn abort(&self, key: &str, upload_id: &str) -> Result<(), SweepError> {
        let url = format!(
            "{}/{}?uploadId={}",
            self.bucket_url,
            utf8_percent_encode(key, KEY_PATH),
            utf8_percent_encode(upload_id, UNRESERVED)
        );
        match self.send(Method::DELETE, &url).await {
            Err(SweepError::Status(StatusCode::NOT_FOUND, _)) => Ok(()),
            other => other.map(drop),
        }
    }

    /// Signs and sends a request without a body; the answer's body on 2xx.
    async fn send(&self, method: Method, url: &str) -> Result<Vec<u8>, SweepError> {
        let request = Request::builder()
            .method(method)
            .uri(url)
            .body(())
            .map_err(|e| SweepError::Request(e.to_string()))?;
        let (mut parts, ()) = request.into_parts();
        self.signer
            .sign(&mut parts, None)
            .await
            .map_err(SweepError::Sign)?;
        let response = self
            .client
            .send(Request::from_parts(parts, Buffer::new()))
            .await
            .map_err(SweepError::Send)?;
        let status = response.status();
        let body = response.into_body().to_vec();
        if status.is_success() {
            Ok(body)
        } else {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]).into_owned();
            Err(SweepError::Status(status, text))
        }
    }
}

/// Reads one page of a `ListMultipartUploads` answer.
fn parse_page(xml: &[u8]) -> Result<ListPage, SweepError> {
    let text = std::str::from_utf8(xml).map_err(|e| SweepError::Xml(e.to_string()))?;
    quick_xml::de::from_str(text).map_err(|e| SweepError::Xml(e.to_string()))
}

/// Whether an upload initiated at `initiated` (ISO 8601) is at least
/// `age` old at `now`. A time that cannot be read is not old: the sweep
/// never aborts what it cannot date.
fn is_older(initiated: &str, age: Duration, now: SystemTime) -> bool {
    let Ok(at) = initiated.parse::<jiff::Timestamp>() else {
        return false;
    };
    let Ok(now) = jiff::Timestamp::try_from(now) else {
        return false;
    };
    let Ok(age) = jiff::SignedDuration::try_from(age) else {
        return false;
    };
    now.duration_since(at) >= age
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE_XML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>ftp/b.bin</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>ftp/a b.bin</Key><UploadId>id1</UploadId>
    <Initiator><ID>x</ID></Initiator><StorageClass>STANDARD</StorageClass>
    <Initiated>2026-12-05T10:00:00.000Z</Initiated></Upload>
  <Upload><Key>ftp/b.bin</Key><UploadId>id2</UploadId>
    <Initiated>2026-12-05T11:59:30Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;

    #[test]
    fn reads_a_page() {
        let page = parse_page(PAGE_XML.as_bytes()).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.next_key_marker.as_deref(), Some("ftp/b.bin"));
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("id2"));
        let keys: Vec<_> = page.upload.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["ftp/a b.bin", "ftp/b.bin"]);
        assert_eq!(page.upload[0].upload_id, "id1");
    }

    #[test]
    fn reads_an_empty_page() {
        let xml = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>\
                   </ListMultipartUploadsResult>";
        let page = parse_page(xml.as_bytes()).unwrap();
        assert!(!page.is_truncated && page.upload.is_empty());
        assert!(
            parse_page(b"<Error><Code>AccessDenied</Code></Error>")
                .is_ok_and(|p| p.upload.is_empty())
        );
        assert!(parse_page(b"\xff").is_err());
    }

    #[test]
    fn ages() {
        let now: SystemTime = "2026-12-05T12:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .into();
        let hour = Duration::from_secs(3600);
        assert!(is_older("2026-12-05T10:00:00.000Z", hour, now));
        assert!(!is_older("2026-12-05T11:59:30Z", hour, now));
        assert!(is_older("2026-12-05T11:59:30Z", Duration::ZERO, now));
        assert!(!is_older("yesterday", Duration::ZERO, now));
    }

    #[test]
    fn encodes_keys() {
        assert_eq!(
            utf8_percent_encode("ftp/a b+c.bin", KEY_PATH).to_string(),
            "ftp/a%20b%2Bc.bin"
        );
        assert_eq!(
            utf8_percent_encode("ftp/x", UNRESERVED).to_string(),
            "ftp%2Fx"
        );
    }
}
