//! The S3 store: AWS S3 or any S3-compatible service (MinIO, R2, OCI, ...).
//!
//! Create-only writes use `If-None-Match: *` (on `PutObject`, and on
//! `CompleteMultipartUpload` for large files); compare-and-swap uses
//! `If-Match: <etag>`. Both are atomic on the service side.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use shelf_formats::keys::max_object_bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Conditional, Created, ETag, Object, ObjectMeta, S3Options, StoreError};

/// Files at least this large are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 64 << 20;
/// Part size (S3's minimum for all but the last part is 5 MiB).
const PART_SIZE: usize = 16 << 20;

/// A bucket and key prefix on an S3-compatible service.
#[derive(Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    prefix: String,
    url: String,
    multipart_threshold: u64,
}

impl S3Store {
    /// Builds the client from the standard AWS configuration chain plus
    /// `options`, then checks the bucket is reachable (HeadBucket), so
    /// a wrong endpoint, bucket or credential fails here with a clear error.
    pub(crate) async fn open(
        bucket: &str,
        prefix: &str,
        options: &S3Options,
    ) -> Result<Self, StoreError> {
        let url = if prefix.is_empty() {
            format!("s3://{bucket}")
        } else {
            format!("s3://{bucket}/{prefix}")
        };
        let region = options
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(5))
            .read_timeout(Duration::from_secs(60))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region))
            .timeout_config(timeouts)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
        if let Some(endpoint) = &options.endpoint_url {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(creds) = &options.static_credentials {
            loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                creds.access_key_id.clone(),
                creds.secret_access_key.clone(),
                None,
                None,
                "shelf-static",
            ));
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(options.path_style)
            .build();
        let store = Self {
            client: Client::from_conf(config),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            url: match &options.endpoint_url {
                Some(e) => format!("{url} (endpoint {e})"),
                None => url,
            },
            multipart_threshold: options.multipart_threshold.unwrap_or(MULTIPART_THRESHOLD),
        };
        store
            .client
            .head_bucket()
            .bucket(&store.bucket)
            .send()
            .await
            .map_err(|e| store.error("HeadBucket", "", e))?;
        Ok(store)
    }

    pub(crate) fn describe(&self) -> String {
        self.url.clone()
    }

    /// The store one level down, `<prefix>/<name>`, sharing this client
    /// (its connections and credentials).
    pub(crate) fn child(&self, name: &str) -> Self {
        let prefix = if self.prefix.is_empty() {
            name.to_string()
        } else {
            format!("{}/{name}", self.prefix)
        };
        let base = format!("s3://{}", self.bucket);
        let url = match self.url.split_once(" (endpoint ") {
            Some((_, endpoint)) => format!("{base}/{prefix} (endpoint {endpoint}"),
            None => format!("{base}/{prefix}"),
        };
        Self {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            prefix,
            url,
            multipart_threshold: self.multipart_threshold,
        }
    }

    /// The names one level below the prefix (`<prefix>/<name>/…`), in key
    /// order, at most `limit` of them: a listing by delimiter, a page at a
    /// time.
    pub(crate) async fn children(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        let full = self.key("");
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .delimiter("/")
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("ListObjectsV2", "", e))?;
            for p in resp.common_prefixes() {
                let Some(name) = p
                    .prefix()
                    .and_then(|k| k.strip_prefix(full.as_str()))
                    .and_then(|k| k.strip_suffix('/'))
                else {
                    continue;
                };
                out.push(name.to_string());
                if out.len() >= limit {
                    return Ok(out);
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Whether any key starts with `prefix` (one request of one key).
    pub(crate) async fn any(&self, prefix: &str) -> Result<bool, StoreError> {
        let resp = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", prefix, e))?;
        Ok(!resp.contents().is_empty())
    }

    fn key(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// Maps an SDK error to a specific store error.
    fn error<E>(
        &self,
        operation: &'static str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let store = self.describe();
        let detail = |e: &dyn std::error::Error| {
            let mut msg = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        };
        match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                let text = detail(&err);
                if text.contains("credentials") || text.contains("identity") {
                    StoreError::NoCredentials {
                        store,
                        detail: text,
                    }
                } else {
                    StoreError::Unreachable {
                        store,
                        detail: text,
                    }
                }
            }
            SdkError::ServiceError(service) => {
                let status = service.raw().status().as_u16();
                let code = service.err().code().unwrap_or("");
                let message = service.err().message().unwrap_or("");
                match (code, status) {
                    // HeadBucket has no body: a 404 there can only be the bucket.
                    (_, 404) if operation == "HeadBucket" => StoreError::NoSuchBucket {
                        store,
                        bucket: self.bucket.clone(),
                    },
                    ("NoSuchBucket", _) => StoreError::NoSuchBucket {
                        store,
                        bucket: self.bucket.clone(),
                    },
                    ("PreconditionFailed" | "ConditionalRequestConflict", _) | (_, 412 | 409) => {
                        StoreError::Conflict {
                            store,
                            key: key.to_string(),
                        }
                    }
                    (
                        "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "AccessDenied"
                        | "ExpiredToken",
                        _,
                    )
                    | (_, 403) => StoreError::AccessDenied {
                        store,
                        detail: format!(
                            "{} {}",
                            if code.is_empty() { "HTTP 403" } else { code },
                            message
                        )
                        .trim()
                        .to_string(),
                    },
                    _ => StoreError::Service {
                        store,
                        operation,
                        key: key.to_string(),
                        detail: format!("HTTP {status} {code} {message}").trim().to_string(),
                    },
                }
            }
            _ => {
                let text = detail(&err);
                if text.contains("credentials") {
                    StoreError::NoCredentials {
                        store,
                        detail: text,
                    }
                } else {
                    StoreError::Service {
                        store,
                        operation,
                        key: key.to_string(),
                        detail: text,
                    }
                }
            }
        }
    }

    fn is_not_found<E: ProvideErrorMetadata>(
        err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> bool {
        match err {
            SdkError::ServiceError(s) => {
                s.raw().status().as_u16() == 404 && s.err().code() != Some("NoSuchBucket")
            }
            _ => false,
        }
    }

    /// `GetObject`, with "no such key" as `None`.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<Option<aws_sdk_s3::operation::get_object::GetObjectOutput>, StoreError> {
        match self.get_object_if(key, None).await? {
            // Without a known version the request is unconditional.
            Conditional::NotModified | Conditional::Absent => Ok(None),
            Conditional::Changed(resp) => Ok(Some(resp)),
        }
    }

    /// `GetObject` with `If-None-Match: <known>` when a version is known.
    /// The SDK reports S3's `304 Not Modified` as a service error; here it
    /// is an answer.
    async fn get_object_if(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Conditional<aws_sdk_s3::operation::get_object::GetObjectOutput>, StoreError> {
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .set_if_none_match(known.map(|e| e.0.clone()));
        match request.send().await {
            Ok(r) => Ok(Conditional::Changed(r)),
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 304 => {
                Ok(Conditional::NotModified)
            }
            Err(e) if Self::is_not_found(&e) => Ok(Conditional::Absent),
            Err(e) => Err(self.error("GetObject", key, e)),
        }
    }

    pub(crate) async fn get_if_changed(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Conditional, StoreError> {
        Ok(match self.get_object_if(key, known).await? {
            Conditional::NotModified => Conditional::NotModified,
            Conditional::Absent => Conditional::Absent,
            Conditional::Changed(resp) => Conditional::Changed(self.read_body(key, resp).await?),
        })
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let Some(resp) = self.get_object(key).await? else {
            return Ok(None);
        };
        self.read_body(key, resp).await.map(Some)
    }

    fn too_large(&self, key: &str, limit: u64) -> StoreError {
        StoreError::TooLarge {
            store: self.describe(),
            key: key.to_string(),
            limit,
        }
    }

    /// Refuses an answer whose announced length is over what an object
    /// under `key` may be; returns that bound.
    fn check_length(
        &self,
        key: &str,
        resp: &aws_sdk_s3::operation::get_object::GetObjectOutput,
    ) -> Result<u64, StoreError> {
        let limit = max_object_bytes(key);
        if resp
            .content_length()
            .is_some_and(|n| n > 0 && n as u64 > limit)
        {
            return Err(self.too_large(key, limit));
        }
        Ok(limit)
    }

    /// The body, read up to the bound of its key (whatever length was
    /// announced: a body may run on past it).
    async fn read_body(
        &self,
        key: &str,
        resp: aws_sdk_s3::operation::get_object::GetObjectOutput,
    ) -> Result<Object, StoreError> {
        let limit = self.check_length(key, &resp)?;
        let etag = ETag(resp.e_tag().unwrap_or_default().to_string());
        let mut bytes = Vec::new();
        resp.body
            .into_async_read()
            .take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| StoreError::Unreachable {
                store: self.describe(),
                detail: format!("reading {key}: {e}"),
            })?;
        if bytes.len() as u64 > limit {
            return Err(self.too_large(key, limit));
        }
        Ok(Object { bytes, etag })
    }

    pub(crate) async fn get_to_file(&self, key: &str, dest: &Path) -> Result<bool, StoreError> {
        let Some(resp) = self.get_object(key).await? else {
            return Ok(false);
        };
        let limit = self.check_length(key, &resp)?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .await
            .map_err(|e| StoreError::io(dest, e))?;
        let mut body = resp.body.into_async_read().take(limit.saturating_add(1));
        let copied =
            tokio::io::copy(&mut body, &mut file)
                .await
                .map_err(|e| StoreError::Unreachable {
                    store: self.describe(),
                    detail: format!("downloading {key}: {e}"),
                })?;
        if copied > limit {
            return Err(self.too_large(key, limit));
        }
        file.flush().await.map_err(|e| StoreError::io(dest, e))?;
        Ok(true)
    }

    pub(crate) async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if len == 0 {
            return Ok(self.head(key).await?.map(|_| Vec::new()));
        }
        let last = start.saturating_add(len - 1);
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .range(format!("bytes={start}-{last}"));
        match request.send().await {
            Ok(resp) => Ok(Some(self.read_body(key, resp).await?.bytes)),
            // A range that starts at or past the end: nothing there to read.
            Err(SdkError::ServiceError(s)) if s.raw().status().as_u16() == 416 => {
                Ok(Some(Vec::new()))
            }
            Err(e) if Self::is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("GetObject", key, e)),
        }
    }

    pub(crate) async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
        {
            Ok(r) => Ok(Some(r.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if Self::is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error("HeadObject", key, e)),
        }
    }

    pub(crate) async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<Created, StoreError> {
        self.put_create_only(key, ByteStream::from(bytes)).await
    }

    /// `PutObject` with `If-None-Match: *`; a failed precondition means the
    /// object already exists.
    async fn put_create_only(&self, key: &str, body: ByteStream) -> Result<Created, StoreError> {
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .if_none_match("*")
            .body(body)
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(e) => match self.error("PutObject", key, e) {
                StoreError::Conflict { .. } => Ok(Created::AlreadyExists),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn put_new_file(&self, key: &str, path: &Path) -> Result<Created, StoreError> {
        let size = tokio::fs::metadata(path)
            .await
            .map_err(|e| StoreError::io(path, e))?
            .len();
        if size < self.multipart_threshold {
            let body = ByteStream::from_path(path)
                .await
                .map_err(|e| StoreError::io(path, std::io::Error::other(e)))?;
            return self.put_create_only(key, body).await;
        }
        if self.head(key).await?.is_some() {
            return Ok(Created::AlreadyExists);
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let outcome = self.upload_parts_and_complete(key, path, &upload_id).await;
        if !matches!(outcome, Ok(Created::New)) {
            // Nothing was published; drop the parts so they cost nothing.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(self.key(key))
                .upload_id(&upload_id)
                .send()
                .await;
        }
        outcome
    }

    async fn upload_parts_and_complete(
        &self,
        key: &str,
        path: &Path,
        upload_id: &str,
    ) -> Result<Created, StoreError> {
        let mut file = tokio::fs::File::open(path)
            .await
            .map_err(|e| StoreError::io(path, e))?;
        let mut parts = Vec::new();
        let mut number = 1;
        loop {
            let mut buf = vec![0u8; PART_SIZE];
            let mut filled = 0;
            while filled < PART_SIZE {
                let n = file
                    .read(&mut buf[filled..])
                    .await
                    .map_err(|e| StoreError::io(path, e))?;
                if n == 0 {
                    break;
                }
                filled += n;
            }
            if filled == 0 {
                break;
            }
            buf.truncate(filled);
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(self.key(key))
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(buf))
                .send()
                .await
                .map_err(|e| self.error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .build(),
            );
            number += 1;
            if filled < PART_SIZE {
                break;
            }
        }
        let result = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(self.key(key))
            .upload_id(upload_id)
            .if_none_match("*")
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match result {
            Ok(_) => Ok(Created::New),
            Err(e) => match self.error("CompleteMultipartUpload", key, e) {
                StoreError::Conflict { .. } => Ok(Created::AlreadyExists),
                other => Err(other),
            },
        }
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&ETag>,
    ) -> Result<ETag, StoreError> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(bytes));
        req = match expected {
            Some(etag) => req.if_match(&etag.0),
            None => req.if_none_match("*"),
        };
        let resp = req
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(ETag(resp.e_tag().unwrap_or_default().to_string()))
    }

    pub(crate) async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full = self.key(prefix);
        let strip = if self.prefix.is_empty() {
            0
        } else {
            self.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("ListObjectsV2", prefix, e))?;
            for o in resp.contents() {
                let Some(k) = o.key() else { continue };
                out.push(ObjectMeta {
                    key: k.get(strip..).unwrap_or(k).to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                    modified: o.last_modified().map(|t| t.secs()).unwrap_or(0),
                });
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(self.key(key))
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", key, e))?;
        Ok(())
    }
}
