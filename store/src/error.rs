//! Store errors: each names the store and what to check, never a raw SDK
//! debug dump.

use std::path::PathBuf;

use shelf_formats::Digest;

/// Everything a store operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store URL cannot be parsed.
    #[error(
        "invalid store URL '{url}': {detail} (use s3://bucket/prefix, file:///path or a directory path)"
    )]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong.
        detail: String,
    },
    /// A compare-and-swap lost: someone else wrote first.
    #[error(
        "conflict on {key} in {store}: it changed since it was read (another writer won); read it again and retry"
    )]
    Conflict {
        /// The store.
        store: String,
        /// The key.
        key: String,
    },
    /// The credentials were refused.
    #[error(
        "access denied by {store}: {detail}; check the AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or the role) and the bucket policy"
    )]
    AccessDenied {
        /// The store.
        store: String,
        /// The service's error code and message.
        detail: String,
    },
    /// No credentials could be found.
    #[error(
        "no AWS credentials for {store}: {detail}; set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with a role (e.g. GitHub OIDC)"
    )]
    NoCredentials {
        /// The store.
        store: String,
        /// The provider chain's message.
        detail: String,
    },
    /// The bucket does not exist.
    #[error(
        "bucket '{bucket}' does not exist at {store}: create it, or check the bucket name, region and --endpoint-url"
    )]
    NoSuchBucket {
        /// The store.
        store: String,
        /// The bucket.
        bucket: String,
    },
    /// A local store directory does not exist.
    #[error(
        "store {store} does not exist: check --store (or SHELF_STORE); a local store is created by the first `shelf push`"
    )]
    NoSuchStore {
        /// The store.
        store: String,
    },
    /// The endpoint cannot be reached.
    #[error("cannot reach {store}: {detail}; check --endpoint-url, the network and the region")]
    Unreachable {
        /// The store.
        store: String,
        /// The transport's message.
        detail: String,
    },
    /// Any other service error.
    #[error("{store}: {operation} {key} failed: {detail}")]
    Service {
        /// The store.
        store: String,
        /// The operation.
        operation: &'static str,
        /// The key.
        key: String,
        /// The service's code and message.
        detail: String,
    },
    /// A local file operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A bundle is not in the store.
    #[error("bundle {digest} is not in {store}: push it first (shelf push)")]
    MissingBundle {
        /// The store.
        store: String,
        /// The digest.
        digest: Digest,
    },
    /// A tag does not exist.
    #[error("tag '{tag}' does not exist in {store} (see shelf tags)")]
    NoSuchTag {
        /// The store.
        store: String,
        /// The tag.
        tag: String,
    },
    /// A record in the store cannot be used.
    #[error("{store}: {key} is invalid: {detail}")]
    BadRecord {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// What is wrong.
        detail: String,
    },
    /// An object is larger than any valid object under its key may be
    /// (`shelf_formats::keys::max_object_bytes`): refused before it is read
    /// whole.
    #[error(
        "{key} in {store} is larger than {limit} bytes, the most such an object may be; it is refused unread: replace or delete it"
    )]
    TooLarge {
        /// The store.
        store: String,
        /// The key.
        key: String,
        /// The bound.
        limit: u64,
    },
    /// What is under a key in a local store is not a regular file (a named
    /// pipe, a device, a directory): refused without reading, since a read
    /// could block for ever or never end.
    #[error(
        "{} in {store} is a {kind}, not a regular file; a store holds regular files only: remove or replace it",
        path.display()
    )]
    NotAFile {
        /// The store.
        store: String,
        /// The file.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// A precondition given by the user does not hold (e.g. `--expect`).
    #[error("{0}")]
    Refused(String),
    /// A bundle failed verification.
    #[error(transparent)]
    Bundle(#[from] shelf_formats::bundle::BundleError),
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}
