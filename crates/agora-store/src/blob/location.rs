//! Where blobs live, as the configuration says it: a directory, or an S3-compatible
//! bucket named by a URL.
//!
//! - `/var/lib/agora/blobs`, `./data/blobs` or `file:///var/lib/agora/blobs`: a local
//!   directory ([`FsBlobStore`]).
//! - `s3://BUCKET[/PREFIX]?endpoint=URL&region=REGION`: a bucket ([`ObjectBlobStore`]).
//!   Credentials come from the usual AWS sources, never from the URL: the
//!   `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (/ `AWS_SESSION_TOKEN`) environment
//!   variables, a web identity token (`AWS_WEB_IDENTITY_TOKEN_FILE`, `AWS_ROLE_ARN`), the
//!   container credentials endpoint, or the instance metadata service.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::signer::Url;

use super::{BlobStore, FsBlobStore, ObjectBlobStore};
use crate::BlobError;

/// The query parameters an `s3://` URL accepts, with what each means.
pub const S3_URL_KEYS: &[(&str, &str)] = &[
    (
        "endpoint",
        "the S3 API's base URL, for S3-compatible servers (default: AWS)",
    ),
    (
        "region",
        "the bucket's region (default: AWS_REGION, else us-east-1)",
    ),
    (
        "allow_http",
        "true to allow a plain-HTTP endpoint (implied by an http:// endpoint)",
    ),
    (
        "virtual_hosted_style_request",
        "true for BUCKET.endpoint URLs instead of endpoint/BUCKET",
    ),
];

/// Where blobs live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobLocation {
    /// A local directory.
    Directory(PathBuf),
    /// An S3-compatible bucket.
    S3(S3Location),
}

/// A bucket, a key prefix in it, and the settings from the URL's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    pub prefix: String,
    pub settings: Vec<(String, String)>,
}

impl BlobLocation {
    /// Opens the store: creates the directory, or builds the S3 client (which contacts
    /// nothing until the first request; the readiness probe does that).
    pub async fn open(&self) -> Result<Arc<dyn BlobStore>, BlobError> {
        match self {
            BlobLocation::Directory(dir) => Ok(Arc::new(FsBlobStore::open(dir).await?)),
            BlobLocation::S3(s3) => Ok(Arc::new(s3.open()?)),
        }
    }
}

impl S3Location {
    /// The object store for this bucket, with presigned URLs.
    pub fn open(&self) -> Result<ObjectBlobStore, BlobError> {
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&self.bucket);
        for (key, value) in &self.settings {
            let key = AmazonS3ConfigKey::from_str(key).map_err(|e| BlobError::BadLocation {
                location: self.to_string(),
                reason: e.to_string(),
            })?;
            if key == AmazonS3ConfigKey::Endpoint && value.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            builder = builder.with_config(key, value);
        }
        let s3 = Arc::new(builder.build().map_err(|e| BlobError::BadLocation {
            location: self.to_string(),
            reason: e.to_string(),
        })?);
        Ok(ObjectBlobStore::new(s3.clone())
            .with_signer(s3)
            .with_prefix(&self.prefix))
    }
}

impl std::fmt::Display for S3Location {
    /// The URL without credentials (it never holds any): safe to log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}", self.bucket)?;
        if !self.prefix.is_empty() {
            write!(f, "/{}", self.prefix)?;
        }
        for (i, (key, value)) in self.settings.iter().enumerate() {
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl std::fmt::Display for BlobLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BlobLocation::Directory(dir) => write!(f, "{}", dir.display()),
            BlobLocation::S3(s3) => s3.fmt(f),
        }
    }
}

impl FromStr for BlobLocation {
    type Err = BlobError;

    fn from_str(text: &str) -> Result<BlobLocation, BlobError> {
        let bad = |reason: String| BlobError::BadLocation {
            location: shown(text),
            reason,
        };
        let text = text.trim();
        if text.is_empty() {
            return Err(bad(
                "it is empty: expected a directory, file:///PATH or s3://BUCKET?endpoint=URL&region=REGION".into(),
            ));
        }
        let Some((scheme, _)) = text.split_once("://") else {
            return Ok(BlobLocation::Directory(PathBuf::from(text)));
        };
        match scheme {
            "file" => {
                let url = Url::parse(text).map_err(|e| bad(e.to_string()))?;
                let dir = url.to_file_path().map_err(|()| {
                    bad("a file:// URL needs an absolute path on this machine, as in file:///var/lib/agora/blobs".into())
                })?;
                Ok(BlobLocation::Directory(dir))
            }
            "s3" => parse_s3(text).map(BlobLocation::S3).map_err(bad),
            other => Err(bad(format!(
                "unsupported scheme `{other}`: expected a directory, file:///PATH or s3://BUCKET?endpoint=URL&region=REGION"
            ))),
        }
    }
}

/// `text` without a query or user information: a secret mistakenly put there is never
/// echoed.
fn shown(text: &str) -> String {
    let text = text.split('?').next().unwrap_or_default();
    match text.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://…@{host}"),
            None => text.to_owned(),
        },
        None => text.to_owned(),
    }
}

fn parse_s3(text: &str) -> Result<S3Location, String> {
    let url = Url::parse(text).map_err(|e| e.to_string())?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials do not belong in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment (or use another AWS credential source)".into());
    }
    let bucket = url.host_str().unwrap_or_default().to_owned();
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.'))
        && bucket.as_bytes()[0].is_ascii_alphanumeric()
        && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
    if !valid_bucket || url.port().is_some() {
        return Err(format!(
            "`{bucket}` is not a bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit (the server goes in ?endpoint=URL)"
        ));
    }
    let prefix = url.path().trim_matches('/').to_owned();
    let mut settings = Vec::new();
    for (key, value) in url.query_pairs() {
        if !S3_URL_KEYS.iter().any(|(k, _)| *k == key) {
            if key.contains("key") || key.contains("secret") || key.contains("token") {
                return Err(format!(
                    "`{key}` does not belong in the URL: credentials come from the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)"
                ));
            }
            let accepted: Vec<&str> = S3_URL_KEYS.iter().map(|(k, _)| *k).collect();
            return Err(format!(
                "unknown setting `{key}`: accepted are {}",
                accepted.join(", ")
            ));
        }
        if settings.iter().any(|(k, _): &(String, String)| *k == key) {
            return Err(format!("`{key}` is given twice"));
        }
        if key == "endpoint" {
            let endpoint = Url::parse(&value).map_err(|e| {
                format!(
                    "endpoint `{value}` is not a URL ({e}): expected e.g. http://127.0.0.1:9000"
                )
            })?;
            if !matches!(endpoint.scheme(), "http" | "https") {
                return Err(format!(
                    "endpoint `{value}` must be an http:// or https:// URL"
                ));
            }
        }
        if matches!(&*key, "allow_http" | "virtual_hosted_style_request")
            && !matches!(&*value, "true" | "false")
        {
            return Err(format!("`{key}` is `{value}`: expected true or false"));
        }
        settings.push((key.into_owned(), value.into_owned()));
    }
    Ok(S3Location {
        bucket,
        prefix,
        settings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(text: &str) -> S3Location {
        match text.parse::<BlobLocation>().unwrap() {
            BlobLocation::S3(s3) => s3,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    fn refusal(text: &str) -> String {
        text.parse::<BlobLocation>().unwrap_err().to_string()
    }

    #[test]
    fn paths_and_file_urls_are_directories() {
        assert_eq!(
            "./agora-data/blobs".parse::<BlobLocation>().unwrap(),
            BlobLocation::Directory("./agora-data/blobs".into())
        );
        assert_eq!(
            "file:///var/lib/agora/blobs"
                .parse::<BlobLocation>()
                .unwrap(),
            BlobLocation::Directory("/var/lib/agora/blobs".into())
        );
    }

    #[test]
    fn s3_urls_name_bucket_prefix_and_settings() {
        let loc = s3("s3://agora-blobs/prod/eu?endpoint=http://127.0.0.1:9000&region=eu-west-1");
        assert_eq!(loc.bucket, "agora-blobs");
        assert_eq!(loc.prefix, "prod/eu");
        assert_eq!(
            loc.settings,
            [
                ("endpoint".into(), "http://127.0.0.1:9000".into()),
                ("region".into(), "eu-west-1".into())
            ]
        );
        assert_eq!(
            loc.to_string(),
            "s3://agora-blobs/prod/eu?endpoint=http://127.0.0.1:9000&region=eu-west-1"
        );
        assert_eq!(s3("s3://bucket").prefix, "");
    }

    #[test]
    fn bad_locations_say_what_would_be_accepted() {
        assert!(refusal("gs://bucket").contains("unsupported scheme `gs`"));
        assert!(refusal("s3://Bucket_1").contains("not a bucket name"));
        assert!(refusal("s3://b").contains("not a bucket name"));
        assert!(refusal("s3://bucket?colour=blue").contains("accepted are endpoint, region"));
        assert!(refusal("s3://bucket?endpoint=ftp://x").contains("http:// or https://"));
        assert!(refusal("s3://bucket?allow_http=yes").contains("expected true or false"));
        assert!(refusal("s3://bucket?region=a&region=b").contains("given twice"));
        assert!(refusal("file://relative/path").contains("absolute path"));
        assert!(refusal("").contains("empty"));
    }

    #[test]
    fn credentials_in_the_url_are_refused_and_never_echoed() {
        let message = refusal("s3://AKIA:hunter2@bucket");
        assert!(message.contains("credentials do not belong"), "{message}");
        let message = refusal("s3://bucket?secret_access_key=hunter2");
        assert!(message.contains("does not belong in the URL"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
