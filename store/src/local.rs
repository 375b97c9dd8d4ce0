//! The local-directory store, the embedded default. Same guarantees as S3:
//!
//! - create-only: the object is written under a temporary name, fsynced,
//!   then hard-linked to its key; `link` fails atomically if the key exists,
//!   so racing writers cannot both win and nobody sees a partial object;
//! - compare-and-swap: an exclusive `flock` on `<key>.lock` (released by the
//!   kernel if the process dies, so no stale locks), read the current
//!   version, compare, write a temporary file and rename it over the key;
//! - entity tag = sha256 of the object's bytes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use shelf_formats::keys::max_object_bytes;

use crate::{Conditional, Created, ETag, Object, ObjectMeta, StoreError};

/// A store in a local directory. Its methods block (file I/O): `Store`
/// runs them on the blocking pool, never on the async runtime's threads.
#[derive(Debug, Clone)]
pub struct LocalStore {
    root: PathBuf,
}

/// Suffixes of files that are bookkeeping, not objects.
const TEMP_MARK: &str = ".shelf-tmp-";
const LOCK_SUFFIX: &str = ".lock";

impl LocalStore {
    /// Opens a store rooted at `root`. Nothing is created here: the first
    /// write (a push) creates the directory, and a read of a store that
    /// does not exist is an error naming it, not an empty store.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        let root = std::path::absolute(root).map_err(|e| StoreError::io(root, e))?;
        Ok(Self { root })
    }

    /// Reads need the store to exist: a mistyped `--store` must not look
    /// like an empty store.
    fn existing(&self) -> Result<(), StoreError> {
        if self.root.is_dir() {
            return Ok(());
        }
        Err(StoreError::NoSuchStore {
            store: self.describe(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        format!("file://{}", self.root.display())
    }

    /// The store in the directory `name` below this one.
    pub(crate) fn child(&self, name: &str) -> Self {
        Self {
            root: self.root.join(name),
        }
    }

    /// The directories directly below the root, sorted, at most `limit`.
    pub(crate) fn children(&self, limit: usize) -> Result<Vec<String>, StoreError> {
        self.existing()?;
        let entries = fs::read_dir(&self.root).map_err(|e| StoreError::io(&self.root, e))?;
        let mut out: Vec<String> = entries
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        out.sort();
        out.truncate(limit);
        Ok(out)
    }

    /// Whether any object's key starts with `prefix` (a directory prefix
    /// ending in `/`, or a key prefix).
    pub(crate) fn any(&self, prefix: &str) -> Result<bool, StoreError> {
        if !self.root.is_dir() {
            return Ok(false);
        }
        Ok(!self.list(prefix)?.is_empty())
    }

    /// Keys are validated by `shelf-formats` before they get here; this
    /// check keeps even a malformed key inside the root.
    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if key.is_empty()
            || key.starts_with('/')
            || key
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(StoreError::Refused(format!("invalid object key '{key}'")));
        }
        Ok(self.root.join(key))
    }

    fn etag_of(bytes: &[u8]) -> ETag {
        ETag(hex::encode(Sha256::digest(bytes)))
    }

    /// Opens the object at `key` for reading (`None`: there is none). The
    /// open does not wait on a named pipe (`O_NONBLOCK`), and anything but
    /// a regular file is refused with its path before a byte is read, as is
    /// a file larger than an object under `key` may be. Returns the file,
    /// its path and that bound.
    fn open_object(&self, key: &str) -> Result<Option<(File, PathBuf, u64)>, StoreError> {
        self.existing()?;
        let path = self.path(key)?;
        let file = match OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let meta = file.metadata().map_err(|e| StoreError::io(&path, e))?;
        let kind = meta.file_type();
        if !kind.is_file() {
            return Err(StoreError::NotAFile {
                store: self.describe(),
                path,
                kind: file_kind(kind),
            });
        }
        let limit = max_object_bytes(key);
        if meta.len() > limit {
            return Err(self.too_large(key, limit));
        }
        Ok(Some((file, path, limit)))
    }

    fn too_large(&self, key: &str, limit: u64) -> StoreError {
        StoreError::TooLarge {
            store: self.describe(),
            key: key.to_string(),
            limit,
        }
    }

    pub(crate) fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        let Some((file, path, limit)) = self.open_object(key)? else {
            return Ok(None);
        };
        // Bounded even if the file grows while it is read.
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| StoreError::io(&path, e))?;
        if bytes.len() as u64 > limit {
            return Err(self.too_large(key, limit));
        }
        Ok(Some(Object {
            etag: Self::etag_of(&bytes),
            bytes,
        }))
    }

    /// Tag records are a few KiB: reading and hashing one costs less than
    /// keeping a separate version stamp in step with it.
    pub(crate) fn get_if_changed(
        &self,
        key: &str,
        known: Option<&ETag>,
    ) -> Result<Conditional, StoreError> {
        Ok(match self.get(key)? {
            None => Conditional::Absent,
            Some(obj) if Some(&obj.etag) == known => Conditional::NotModified,
            Some(obj) => Conditional::Changed(obj),
        })
    }

    pub(crate) fn get_to_file(&self, key: &str, dest: &Path) -> Result<bool, StoreError> {
        let Some((src, _, limit)) = self.open_object(key)? else {
            return Ok(false);
        };
        let mut out = File::create_new(dest).map_err(|e| StoreError::io(dest, e))?;
        let copied = io::copy(&mut src.take(limit.saturating_add(1)), &mut out)
            .map_err(|e| StoreError::io(dest, e))?;
        if copied > limit {
            return Err(self.too_large(key, limit));
        }
        Ok(true)
    }

    pub(crate) fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use std::io::{Seek, SeekFrom};
        let Some((mut file, path, _)) = self.open_object(key)? else {
            return Ok(None);
        };
        let mut out = Vec::new();
        file.seek(SeekFrom::Start(start))
            .and_then(|_| file.take(len).read_to_end(&mut out))
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(Some(out))
    }

    pub(crate) fn head(&self, key: &str) -> Result<Option<u64>, StoreError> {
        self.existing()?;
        let path = self.path(key)?;
        match fs::metadata(&path) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    /// A fsynced temporary file beside `path` holding `bytes`.
    fn temp_beside(
        path: &Path,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> Result<tempfile::TempPath, StoreError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TEMP_MARK)
            .tempfile_in(dir)
            .map_err(|e| StoreError::io(dir, e))?;
        fill(tmp.as_file_mut()).map_err(|e| StoreError::io(tmp.path(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io(tmp.path(), e))?;
        Ok(tmp.into_temp_path())
    }

    fn link_new(tmp: &Path, path: &Path) -> Result<Created, StoreError> {
        match fs::hard_link(tmp, path) {
            Ok(()) => {
                sync_parent(path);
                Ok(Created::New)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(Created::AlreadyExists),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    pub(crate) fn put_new(&self, key: &str, bytes: &[u8]) -> Result<Created, StoreError> {
        let path = self.path(key)?;
        if path.exists() {
            return Ok(Created::AlreadyExists);
        }
        let tmp = Self::temp_beside(&path, |f| f.write_all(bytes))?;
        Self::link_new(&tmp, &path)
    }

    pub(crate) fn put_new_file(&self, key: &str, src: &Path) -> Result<Created, StoreError> {
        let path = self.path(key)?;
        if path.exists() {
            return Ok(Created::AlreadyExists);
        }
        let mut input = File::open(src).map_err(|e| StoreError::io(src, e))?;
        let tmp = Self::temp_beside(&path, |f| io::copy(&mut input, f).map(|_| ()))?;
        Self::link_new(&tmp, &path)
    }

    pub(crate) fn put_if(
        &self,
        key: &str,
        bytes: &[u8],
        expected: Option<&ETag>,
    ) -> Result<ETag, StoreError> {
        let path = self.path(key)?;
        let lock_path = PathBuf::from(format!("{}{LOCK_SUFFIX}", path.display()));
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| StoreError::io(&lock_path, e))?;
        lock.lock().map_err(|e| StoreError::io(&lock_path, e))?;
        let current = self.get(key)?.map(|o| o.etag);
        if current.as_ref() != expected {
            return Err(StoreError::Conflict {
                store: self.describe(),
                key: key.to_string(),
            });
        }
        let tmp = Self::temp_beside(&path, |f| f.write_all(bytes))?;
        tmp.persist(&path)
            .map_err(|e| StoreError::io(&path, e.error))?;
        sync_parent(&path);
        // The lock is released when `lock` is dropped, after the rename.
        drop(lock);
        Ok(Self::etag_of(bytes))
    }

    pub(crate) fn put(&self, key: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let tmp = Self::temp_beside(&path, |f| f.write_all(bytes))?;
        tmp.persist(&path)
            .map_err(|e| StoreError::io(&path, e.error))?;
        Ok(())
    }

    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.existing()?;
        let mut out = Vec::new();
        let start = self.root.join(prefix.trim_end_matches('/'));
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| StoreError::io(&dir, e))?;
                let path = entry.path();
                // Another process (a concurrent gc) may remove what was
                // just listed: gone is not an error.
                let meta = match entry.metadata() {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(StoreError::io(&path, e)),
                };
                if meta.is_dir() {
                    stack.push(path);
                    continue;
                }
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with(TEMP_MARK) || name.ends_with(LOCK_SUFFIX) {
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let modified = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0);
                out.push(ObjectMeta {
                    key: rel.to_string_lossy().into_owned(),
                    size: meta.len(),
                    modified,
                });
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Temporary files that a killed writer left behind (`.shelf-tmp-*`,
    /// never under an object's name), last modified before `cutoff`
    /// (seconds since the epoch): what gc may remove.
    pub(crate) fn leftovers(&self, cutoff: i64) -> Result<Vec<PathBuf>, StoreError> {
        self.existing()?;
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .is_some_and(|d| (d.as_secs() as i64) < cutoff);
                if stale && entry.file_name().to_string_lossy().starts_with(TEMP_MARK) {
                    out.push(entry.path());
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes a leftover found by [`LocalStore::leftovers`] (gone already
    /// is fine: a concurrent gc got there first).
    pub(crate) fn remove_leftover(&self, path: &Path) -> Result<(), StoreError> {
        if !path.starts_with(&self.root) {
            return Err(StoreError::Refused(format!(
                "{} is not inside the store",
                path.display()
            )));
        }
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    pub(crate) fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(path, e)),
        }
    }
}

/// What a file that is not a regular file is, for messages.
fn file_kind(kind: fs::FileType) -> &'static str {
    if kind.is_dir() {
        "directory"
    } else if kind.is_fifo() {
        "named pipe"
    } else if kind.is_char_device() {
        "character device"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

fn sync_parent(path: &Path) {
    if let Some(dir) = path.parent()
        && let Ok(d) = File::open(dir)
    {
        let _ = d.sync_all();
    }
}
