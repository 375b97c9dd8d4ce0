//! Where a store is: parsed from `--store URL`.

use std::path::PathBuf;

use crate::StoreError;

/// S3 client settings beyond the standard AWS environment: the one set of
/// S3 options every command that opens a store takes, as flags (and
/// environment variables) and, for `shelf serve`, in its config file.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Options {
    /// S3-compatible endpoint (MinIO, R2, OCI, …); AWS S3 needs none.
    #[arg(long, env = "SHELF_S3_ENDPOINT", value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Path-style S3 addressing: `endpoint/bucket` rather than
    /// `bucket.endpoint` (most S3-compatible services need it).
    #[arg(long, env = "SHELF_S3_PATH_STYLE")]
    pub path_style: bool,
    /// S3 region (default: AWS_REGION / the profile, else us-east-1).
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// Explicit credentials instead of the standard AWS chain (tools and
    /// tests that must not depend on the process environment).
    #[arg(skip)]
    #[serde(skip)]
    pub static_credentials: Option<StaticCredentials>,
    /// Files at least this large are uploaded in parts (default 64 MiB).
    #[arg(skip)]
    #[serde(skip)]
    pub multipart_threshold: Option<u64>,
}

impl S3Options {
    /// These options with `over`'s set ones taking precedence (a flag over
    /// a config file).
    pub fn overlay(self, over: S3Options) -> S3Options {
        S3Options {
            endpoint_url: over.endpoint_url.or(self.endpoint_url),
            path_style: over.path_style || self.path_style,
            region: over.region.or(self.region),
            static_credentials: over.static_credentials.or(self.static_credentials),
            multipart_threshold: over.multipart_threshold.or(self.multipart_threshold),
        }
    }
}

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key (never printed).
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticCredentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `file:///path` or a plain path.
    Local(PathBuf),
    /// `s3://bucket/prefix`.
    S3 {
        /// The bucket.
        bucket: String,
        /// Key prefix without leading or trailing `/` (may be empty).
        prefix: String,
        /// Client settings.
        options: S3Options,
    },
}

impl StoreLocation {
    /// Parses `s3://bucket[/prefix]`, `file:///path` or a path.
    pub fn parse(url: &str, options: S3Options) -> Result<Self, StoreError> {
        let invalid = |detail: &str| StoreError::InvalidUrl {
            url: url.to_string(),
            detail: detail.to_string(),
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.len() < 3
                || bucket.len() > 63
                || !bucket
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
            {
                return Err(invalid(
                    "bucket names are 3-63 characters of a-z, 0-9, '-' and '.'",
                ));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|p| p == ".." || p == ".") {
                return Err(invalid("the prefix must not contain '.' or '..' segments"));
            }
            return Ok(StoreLocation::S3 {
                bucket: bucket.to_string(),
                prefix,
                options,
            });
        }
        if let Some(path) = url.strip_prefix("file://") {
            if !path.starts_with('/') {
                return Err(invalid("file URLs need an absolute path: file:///path"));
            }
            return Ok(StoreLocation::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(invalid("unknown scheme"));
        }
        if url.is_empty() {
            return Err(invalid("empty"));
        }
        Ok(StoreLocation::Local(PathBuf::from(url)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_file_and_plain_paths() {
        let o = S3Options::default();
        assert_eq!(
            StoreLocation::parse("s3://my-bucket/team/shelf/", o.clone()).unwrap(),
            StoreLocation::S3 {
                bucket: "my-bucket".into(),
                prefix: "team/shelf".into(),
                options: o.clone()
            }
        );
        assert!(matches!(
            StoreLocation::parse("s3://bkt", o.clone()).unwrap(),
            StoreLocation::S3 { prefix, .. } if prefix.is_empty()
        ));
        assert_eq!(
            StoreLocation::parse("file:///var/shelf", o.clone()).unwrap(),
            StoreLocation::Local("/var/shelf".into())
        );
        assert_eq!(
            StoreLocation::parse("./store", o.clone()).unwrap(),
            StoreLocation::Local("./store".into())
        );
    }

    #[test]
    fn refuses_bad_urls_with_the_rule() {
        for bad in [
            "s3://A_B",
            "s3://x",
            "file://relative",
            "gs://bucket",
            "",
            "s3://bucket/../x",
        ] {
            let e = StoreLocation::parse(bad, S3Options::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains("invalid store URL"), "{bad}: {e}");
        }
    }
}
