//! Object storage, the source of truth: immutable bundles named by digest,
//! tag records moved by compare-and-swap, commit records. Two real back
//! ends behind one [`Store`]: a local directory (the embedded default) and
//! any S3-compatible service. Key layout and record schemas come from
//! `shelf-formats`; the protocol is documented in docs/store.md.

pub mod cache;
mod error;
pub mod gc;
mod local;
mod location;
mod s3;
pub mod tags;
mod transfer;

use std::path::Path;

pub use error::StoreError;
pub use location::{S3Options, StaticCredentials, StoreLocation};
pub use tags::{MoveRequest, TagMoveOutcome};
pub use transfer::{PushOutcome, fetch_bundle, push_bundle, read_commit_record};

/// An object's entity tag: an opaque version identifier that
/// compare-and-swap writes are conditioned on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(pub String);

/// An object read from a store.
#[derive(Debug, Clone)]
pub struct Object {
    /// Its bytes.
    pub bytes: Vec<u8>,
    /// Its entity tag.
    pub etag: ETag,
}

/// The answer to a conditional read ([`Store::get_if_changed`]).
#[derive(Debug, Clone)]
pub enum Conditional<T = Object> {
    /// The object still has the entity tag the caller knows.
    NotModified,
    /// There is no object at the key.
    Absent,
    /// The object changed (or the caller knew no version): here it is.
    Changed(T),
}

/// One key in a listing.
#[derive(Debug, Clone)]
pub struct ObjectMeta {
    /// The key, relative to the store's prefix.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification, seconds since the Unix epoch.
    pub modified: i64,
}

/// Result of a create-only write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// This call created the object.
    New,
    /// The object already existed; nothing was written.
    AlreadyExists,
}

/// A store: where bundles and tags live.
#[derive(Debug)]
pub enum Store {
    /// A local directory.
    Local(local::LocalStore),
    /// An S3 bucket and prefix.
    S3(s3::S3Store),
}

impl Store {
    /// Opens the store at `location` (S3 clients load credentials from the
    /// standard AWS chain).
    pub async fn open(location: &StoreLocation) -> Result<Self, StoreError> {
        Ok(match location {
            StoreLocation::Local(path) => Store::Local(local::LocalStore::open(path)?),
            StoreLocation::S3 {
                bucket,
                prefix,
                options,
            } => Store::S3(s3::S3Store::open(bucket, prefix, options).await?),
        })
    }

    /// Opens the store at `location` to write to it: a local store's
    /// directory is created if it does not exist yet (the first push).
    pub async fn create(location: &StoreLocation) -> Result<Self, StoreError> {
        if let StoreLocation::Local(path) = location {
            std::fs::create_dir_all(path).map_err(|e| StoreError::Io {
                path: path.clone(),
                source: e,
            })?;
        }
        Self::open(location).await
    }

    /// Whether the store is missing altogether (a local directory that does
    /// not exist): for callers to whom "nothing there yet" is an answer.
    pub fn is_missing(e: &StoreError) -> bool {
        matches!(e, StoreError::NoSuchStore { .. })
    }

    /// The store below this one at `<prefix>/<name>` (a repository under a
    /// store root), sharing this one's client. `name` must be a valid
    /// repository name (`formats::names::validate_repo_name`): it becomes a
    /// key segment or a directory name.
    pub fn child(&self, name: &str) -> Result<Self, StoreError> {
        shelf_formats::names::validate_repo_name(name)
            .map_err(|e| StoreError::Refused(e.to_string()))?;
        Ok(match self {
            Store::Local(s) => Store::Local(s.child(name)),
            Store::S3(s) => Store::S3(s.child(name)),
        })
    }

    /// The names one level below this store (`<name>/…`), sorted, at most
    /// `limit`: the candidates of a store root's repositories.
    pub async fn children(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        match self {
            Store::Local(s) => local(s, move |s| s.children(limit)).await,
            Store::S3(s) => s.children(limit).await,
        }
    }

    /// Whether this is a shelf store: it has a tag or a bundle.
    pub async fn is_store(&self) -> Result<bool, StoreError> {
        for prefix in [
            shelf_formats::keys::TAGS_PREFIX,
            shelf_formats::keys::BUNDLES_PREFIX,
        ] {
            let found = match self {
                Store::Local(s) => local(s, move |s| s.any(prefix)).await?,
                Store::S3(s) => s.any(prefix).await?,
            };
            if found {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The store's URL, for messages.
    pub fn describe(&self) -> String {
        match self {
            Store::Local(s) => s.describe(),
            Store::S3(s) => s.describe(),
        }
    }

    /// Reads an object, or `None` if there is none at `key`.
    pub async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.get(&key)).await
            }
            Store::S3(s) => s.get(key).await,
        }
    }

    /// Reads an object unless it still has the entity tag `known`: a cheap
    /// poll (S3: `GetObject` with `If-None-Match`, answered 304 without a
    /// body when nothing changed).
    pub async fn get_if_changed(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Conditional, StoreError> {
        match self {
            Store::Local(s) => {
                let (key, known) = (key.to_string(), known.cloned());
                local(s, move |s| s.get_if_changed(&key, known.as_ref())).await
            }
            Store::S3(s) => s.get_if_changed(key, known).await,
        }
    }

    /// Streams an object into a new file at `dest`; `false` if absent.
    pub async fn get_to_file(&self, key: &str, dest: &Path) -> Result<bool, StoreError> {
        match self {
            Store::Local(s) => {
                let (key, dest) = (key.to_string(), dest.to_path_buf());
                local(s, move |s| s.get_to_file(&key, &dest)).await
            }
            Store::S3(s) => s.get_to_file(key, dest).await,
        }
    }

    /// Up to `len` bytes of the object at `key` from byte `start` (fewer
    /// when the object ends first), or `None` if absent: reading a pack's
    /// id table without its vectors (S3: `GetObject` with `Range`).
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.get_range(&key, start, len)).await
            }
            Store::S3(s) => s.get_range(key, start, len).await,
        }
    }

    /// Size of the object at `key`, or `None` if absent.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.head(&key)).await
            }
            Store::S3(s) => s.head(key).await,
        }
    }

    /// Writes `bytes` at `key` only if nothing is there (create-only).
    pub async fn put_new(&self, key: &str, bytes: Vec<u8>) -> Result<Created, StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.put_new(&key, &bytes)).await
            }
            Store::S3(s) => s.put_new(key, bytes).await,
        }
    }

    /// Uploads the file at `path` to `key` only if nothing is there. Large
    /// files go up in parts (S3 multipart); the object appears whole or not
    /// at all.
    pub async fn put_new_file(&self, key: &str, path: &Path) -> Result<Created, StoreError> {
        match self {
            Store::Local(s) => {
                let (key, path) = (key.to_string(), path.to_path_buf());
                local(s, move |s| s.put_new_file(&key, &path)).await
            }
            Store::S3(s) => s.put_new_file(key, path).await,
        }
    }

    /// Compare-and-swap: writes `bytes` at `key` only if the object's
    /// current entity tag is `expected` (`None`: only if there is no object).
    /// Returns the new entity tag, or [`StoreError::Conflict`].
    pub async fn put_if(
        &self,
        key: &str,
        bytes: Vec<u8>,
        expected: Option<&ETag>,
    ) -> Result<ETag, StoreError> {
        match self {
            Store::Local(s) => {
                let (key, expected) = (key.to_string(), expected.cloned());
                local(s, move |s| s.put_if(&key, &bytes, expected.as_ref())).await
            }
            Store::S3(s) => s.put_if(key, bytes, expected).await,
        }
    }

    /// Overwrites `key` unconditionally (only for small markers whose last
    /// write time is what matters).
    pub async fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.put(&key, &bytes)).await
            }
            Store::S3(s) => s.put(key, bytes).await,
        }
    }

    /// Every object under `prefix`.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        match self {
            Store::Local(s) => {
                let prefix = prefix.to_string();
                local(s, move |s| s.list(&prefix)).await
            }
            Store::S3(s) => s.list(prefix).await,
        }
    }

    /// Temporary files a killed writer left in a local store, older than
    /// `cutoff` (seconds since the epoch). S3 writes leave none under any
    /// key (an interrupted multipart upload is aborted by the writer or by
    /// the bucket's lifecycle rule, docs/store.md).
    pub async fn leftovers(&self, cutoff: i64) -> Result<Vec<std::path::PathBuf>, StoreError> {
        match self {
            Store::Local(s) => local(s, move |s| s.leftovers(cutoff)).await,
            Store::S3(_) => Ok(Vec::new()),
        }
    }

    /// Removes one of [`Store::leftovers`].
    pub async fn remove_leftover(&self, path: &Path) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => {
                let path = path.to_path_buf();
                local(s, move |s| s.remove_leftover(&path)).await
            }
            Store::S3(_) => Ok(()),
        }
    }

    /// Deletes `key` (absent is fine).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Store::Local(s) => {
                let key = key.to_string();
                local(s, move |s| s.delete(&key)).await
            }
            Store::S3(s) => s.delete(key).await,
        }
    }
}

/// Runs a local store operation on tokio's blocking pool. A local store's
/// file I/O can take long (a slow or hung network filesystem under it) and
/// must never hold one of the async runtime's threads, which answer every
/// request of a server, `/healthz` included.
async fn local<T: Send + 'static>(
    store: &local::LocalStore,
    op: impl FnOnce(&local::LocalStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    let described = store.describe();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Io {
                path: described.into(),
                source: std::io::Error::other(format!("the store operation did not finish: {e}")),
            })
        })
}

/// Now as RFC 3339 UTC with seconds, the time format of tag records.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
