//! A bundle installed in a directory `<dir>/<hex>/`: unpacked from a
//! verified archive, every member's structure checked, its files made
//! read-only, and a record written of what identifies each verified file
//! (device, inode, size, modification and change times). Verification
//! happens once, here; opening the bundle later (a restart, a rollback)
//! compares the files with the record instead of hashing them again, so
//! opening costs a few `stat`s and maps, whatever the bundle's size.
//!
//! What the record can and cannot see is the cache's trust model
//! (docs/serve.md, "The cache directory"): any write to a file through
//! the kernel changes its change time, which nobody but root can set, so a
//! file truncated, rewritten or replaced since it was verified is found at
//! the next open. Bytes that change without the kernel knowing (a failing
//! disk) are found by [`rehash`], which a server runs now and then.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use shelf_formats::bundle::{Limits, digest_from_file_name, unpack_file};
use shelf_formats::chunks::ChunkStore;
use shelf_formats::definitions::Definitions;
use shelf_formats::files::FileTexts;
use shelf_formats::history::History;
use shelf_formats::lexical::LexicalIndex;
use shelf_formats::manifest::{VectorLayout, members};
use shelf_formats::vectors::FlatVectors;
use shelf_formats::{Digest, Manifest};

use crate::mapped::OpenError;

/// The record's file name inside a bundle directory (member names never
/// start with a dot, so it cannot collide with one).
pub const RECORD: &str = ".verified.json";
const RECORD_SCHEMA: &str = "shelf.verified/v1";

/// Prefix of an unpack in progress in a bundle directory; whatever carries
/// it and belongs to no running process is a leftover of a crash.
pub const INCOMING_PREFIX: &str = ".incoming-";

/// What identifies one verified file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileIdentity {
    name: String,
    size: u64,
    dev: u64,
    ino: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileIdentity {
    fn of(dir: &Path, name: &str) -> std::io::Result<Self> {
        let m = std::fs::symlink_metadata(dir.join(name))?;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Ok(Self {
            name: name.to_string(),
            size: m.size(),
            dev: m.dev(),
            ino: m.ino(),
            mtime_ns: ns(m.mtime(), m.mtime_nsec()),
            ctime_ns: ns(m.ctime(), m.ctime_nsec()),
        })
    }

    /// How `now` differs from the verified file, if it does.
    fn changed(&self, now: &FileIdentity) -> Option<String> {
        if now.size != self.size {
            Some(format!(
                "{} is {} bytes, {} when it was verified",
                self.name, now.size, self.size
            ))
        } else if (now.dev, now.ino) != (self.dev, self.ino) {
            Some(format!("{} was replaced since it was verified", self.name))
        } else if (now.mtime_ns, now.ctime_ns) != (self.mtime_ns, self.ctime_ns) {
            Some(format!("{} was changed since it was verified", self.name))
        } else {
            None
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    schema: String,
    digest: Digest,
    files: Vec<FileIdentity>,
}

/// The files a bundle directory holds: the manifest and every member.
fn names(manifest: &Manifest) -> impl Iterator<Item = &str> {
    std::iter::once(members::MANIFEST).chain(manifest.members.iter().map(|m| m.name.as_str()))
}

/// Verifies a bundle file (against `expected`, else the digest in its
/// `<hex>.tar.zst` name) and installs it into `<dir>/<hex>/` unless it is
/// installed already. A `<hex>` directory only ever appears by the rename
/// at the end of a verified, sealed install, so its name can be trusted.
pub fn install_file(
    dir: &Path,
    bundle: &Path,
    expected: Option<&Digest>,
) -> Result<(Digest, PathBuf), OpenError> {
    let expected = expected.copied().or_else(|| digest_from_file_name(bundle));
    if let Some(d) = expected
        && dir.join(d.hex()).join(members::MANIFEST).is_file()
    {
        return Ok((d, dir.join(d.hex())));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| OpenError::Io { path, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let staging = dir.join(format!(
        "{INCOMING_PREFIX}{}-{}",
        std::process::id(),
        expected.map(|d| d.hex()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let installed = unpack_file(bundle, expected.as_ref(), &staging, &Limits::default())
        .map_err(OpenError::from)
        .and_then(|unpacked| {
            let digest = unpacked.bundle.digest;
            verify_members(&staging, &unpacked.bundle.manifest, digest)?;
            seal(&staging, &unpacked.bundle.manifest, digest)?;
            Ok(digest)
        });
    let digest = match installed {
        Ok(d) => d,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    let target = dir.join(digest.hex());
    if target.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    } else if let Err(e) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(io(&target)(e));
    }
    Ok((digest, target))
}

/// Checks what a member's hash cannot: that each member parses and that the
/// members agree with each other and with the manifest's counts. Run once
/// per install (and by [`rehash`]); an open afterwards reads headers only.
pub fn verify_members(dir: &Path, manifest: &Manifest, digest: Digest) -> Result<(), OpenError> {
    let index_err = |detail: String| OpenError::Index { digest, detail };
    manifest
        .check_kinds()
        .map_err(|e| OpenError::Bundle(e.into()))?;
    // Mapped, not read: verifying a large bundle then costs page cache
    // (shared, evictable) instead of a second copy in anonymous memory
    // beside the live bundle during a swap (243 MiB at 370,000 chunks).
    let read = |name: &str| -> Result<memmap2::Mmap, OpenError> {
        let path = dir.join(name);
        let file = File::open(&path).map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?;
        // SAFETY: the file was just unpacked into this server's private
        // cache directory (docs/serve.md, "The cache directory"), which
        // only its user may write; every parser bounds-checks its reads.
        unsafe { memmap2::Mmap::map(&file) }.map_err(|source| OpenError::Io { path, source })
    };
    let present = |name: &str| manifest.member(name).is_some();
    if !present(members::CHUNKS) {
        return Err(index_err("the manifest lists no chunks.bin".into()));
    }
    let chunks_bytes = read(members::CHUNKS)?;
    let (count, paths) = ChunkStore::parse(&chunks_bytes).map(|c| (c.len(), c.path_count()))?;
    drop(chunks_bytes);
    if present(members::LEXICAL) {
        let bytes = read(members::LEXICAL)?;
        let docs = LexicalIndex::parse(&bytes)?.doc_count();
        if docs != count {
            return Err(index_err(format!(
                "lexical index has {docs} documents for {count} chunks"
            )));
        }
    }
    let files = match present(members::FILES) {
        true => Some(FileTexts::parse(&read(members::FILES)?)?.len() as u64),
        false => None,
    };
    if present(members::DEFINITIONS) {
        Definitions::parse(&read(members::DEFINITIONS)?, paths)?;
    }
    match (present(members::HISTORY), present(members::HISTORY_LEXICAL)) {
        (false, false) => {}
        (true, true) => {
            let commits = History::parse(&read(members::HISTORY)?)?.len();
            let docs = LexicalIndex::parse(&read(members::HISTORY_LEXICAL)?)?.doc_count();
            if docs != commits {
                return Err(index_err(format!(
                    "history's lexical index has {docs} documents for {commits} commits"
                )));
            }
        }
        (history, _) => {
            let (has, lacks) = match history {
                true => (members::HISTORY, members::HISTORY_LEXICAL),
                false => (members::HISTORY_LEXICAL, members::HISTORY),
            };
            return Err(index_err(format!(
                "the manifest lists {has} but no {lacks}"
            )));
        }
    }
    // What `/v1/bundle` and the tools report is the manifest: it must be
    // what the members hold.
    manifest
        .check_counts(count as u64, paths as u64, files)
        .map_err(|e| OpenError::Bundle(e.into()))?;
    let layout = manifest.vector_layout();
    if !present(layout.member()) {
        return Err(index_err(format!(
            "the manifest lists no {}",
            layout.member()
        )));
    }
    let dimensions = manifest.model.dimensions as usize;
    let (vectors, dims) = match layout {
        VectorLayout::Flat => {
            let bytes = read(members::FLAT_VECTORS)?;
            let flat = FlatVectors::open_as(&bytes, manifest.vector_element())
                .map_err(|e| index_err(e.to_string()))?;
            (flat.len(), flat.dimensions())
        }
        VectorLayout::Hnsw => {
            let bytes = read(members::VECTORS)?;
            let meta = usearch::Index::metadata_from_buffer(&bytes)
                .map_err(|e| index_err(e.to_string()))?;
            (meta.count_present as usize, meta.dimensions as usize)
        }
    };
    if dims != dimensions {
        return Err(index_err(format!(
            "{dims} dimensions, the manifest's model has {dimensions}"
        )));
    }
    if vectors != count {
        return Err(index_err(format!("{vectors} vectors for {count} chunks")));
    }
    Ok(())
}

/// Makes the installed files read-only and writes the record of what
/// identifies each one, durably, before the directory is renamed into
/// place.
fn seal(dir: &Path, manifest: &Manifest, digest: Digest) -> Result<(), OpenError> {
    let io = |path: PathBuf| move |source| OpenError::Io { path, source };
    let mut files = Vec::new();
    for name in names(manifest) {
        let path = dir.join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
            .map_err(io(path.clone()))?;
        // After the chmod: it changes the change time.
        files.push(FileIdentity::of(dir, name).map_err(io(path))?);
    }
    let record = Record {
        schema: RECORD_SCHEMA.into(),
        digest,
        files,
    };
    let path = dir.join(RECORD);
    let mut bytes = serde_json::to_vec_pretty(&record).unwrap_or_default();
    bytes.push(b'\n');
    let mut f = File::create(&path).map_err(io(path.clone()))?;
    f.write_all(&bytes).map_err(io(path.clone()))?;
    f.sync_all().map_err(io(path.clone()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))
        .map_err(io(path.clone()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether the bundle installed in `dir` is still the verified one: every
/// file the record names has the identity it had when sealed. A directory
/// without a record (installed by a shelf before records existed) is
/// verified in full now, by [`rehash`], and sealed.
pub fn check(dir: &Path, manifest: &Manifest, digest: Digest) -> Result<(), OpenError> {
    let damaged = |detail: String| OpenError::DamagedCache {
        digest,
        dir: dir.to_path_buf(),
        detail,
    };
    let record: Record = match std::fs::read(dir.join(RECORD)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| damaged(format!("its verification record is unreadable: {e}")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(%digest, dir = %dir.display(), "a cached bundle without a verification record: verifying it in full once");
            rehash(dir, manifest, digest, &mut |_| {})?;
            return seal(dir, manifest, digest);
        }
        Err(source) => {
            return Err(OpenError::Io {
                path: dir.join(RECORD),
                source,
            });
        }
    };
    if record.schema != RECORD_SCHEMA || record.digest != digest {
        return Err(damaged(format!(
            "its verification record is for {} ({})",
            record.digest, record.schema
        )));
    }
    for name in names(manifest) {
        let Some(verified) = record.files.iter().find(|f| f.name == name) else {
            return Err(damaged(format!("{name} is not in its verification record")));
        };
        let now = match FileIdentity::of(dir, name) {
            Ok(now) => now,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(format!("{name} is missing")));
            }
            Err(source) => {
                return Err(OpenError::Io {
                    path: dir.join(name),
                    source,
                });
            }
        };
        if let Some(detail) = verified.changed(&now) {
            return Err(damaged(detail));
        }
    }
    Ok(())
}

/// Hashes every member of the bundle in `dir` again and checks it against
/// the manifest, then checks the members' structure: what an install
/// verified, done again from the disk. `pace` is told the bytes read after
/// each block, so a caller can throttle a background check.
pub fn rehash(
    dir: &Path,
    manifest: &Manifest,
    digest: Digest,
    pace: &mut dyn FnMut(usize),
) -> Result<(), OpenError> {
    let damaged = |detail: String| OpenError::DamagedCache {
        digest,
        dir: dir.to_path_buf(),
        detail,
    };
    let mut block = vec![0u8; 1 << 20];
    for member in &manifest.members {
        let path = dir.join(&member.name);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(damaged(format!("{} is missing", member.name)));
            }
            Err(source) => return Err(OpenError::Io { path, source }),
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = file.read(&mut block).map_err(|source| OpenError::Io {
                path: path.clone(),
                source,
            })?;
            if n == 0 {
                break;
            }
            hasher.update(&block[..n]);
            size += n as u64;
            pace(n);
        }
        let actual: [u8; 32] = hasher.finalize().into();
        if size != member.size || actual != member.sha256 {
            return Err(damaged(format!(
                "{} does not match its size and sha256 in the manifest",
                member.name
            )));
        }
    }
    verify_members(dir, manifest, digest)
}
