//! The verifying bundle reader. It trusts nothing: every byte is hashed as
//! it streams, every entry is checked against the manifest and the limits,
//! and files land in a temporary directory that is renamed into place only
//! when the whole archive checked out.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::BundleError;
use super::writer::{HashingWriter, sync_dir};
use crate::digest::Digest;
use crate::manifest::{FORMAT_VERSION, Manifest, members};
use crate::names::member_name_problem;

/// Prefix of the staging directory of an unpack in progress (then this
/// process's id and `-`), beside its destination: whatever carries it and
/// belongs to no running process was left by one that died mid-unpack.
pub const UNPACKING_PREFIX: &str = ".unpacking-";

/// Size limits a reader enforces, against truncated archives and
/// decompression bombs. The defaults suit bundles of repositories with up to
/// a few million chunks; a server can lower them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest compressed archive accepted.
    pub max_archive_bytes: u64,
    /// Largest total of decompressed bytes (tar headers included).
    pub max_unpacked_bytes: u64,
    /// Largest single member.
    pub max_member_bytes: u64,
    /// Largest manifest.
    pub max_manifest_bytes: u64,
    /// Most members after the manifest.
    pub max_members: usize,
}

impl Default for Limits {
    fn default() -> Self {
        const GIB: u64 = 1 << 30;
        Self {
            max_archive_bytes: 8 * GIB,
            max_unpacked_bytes: 32 * GIB,
            max_member_bytes: 16 * GIB,
            max_manifest_bytes: 16 << 20,
            max_members: 64,
        }
    }
}

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedBundle {
    /// sha256 of the archive's bytes.
    pub digest: Digest,
    /// Compressed size.
    pub size: u64,
    /// The manifest.
    pub manifest: Manifest,
}

/// A bundle unpacked into a directory, after every check passed.
#[derive(Debug, Clone)]
pub struct UnpackedBundle {
    /// The directory holding `manifest.json` and the members.
    pub dir: PathBuf,
    /// What was verified.
    pub bundle: VerifiedBundle,
}

/// Verifies the bundle file at `path` without writing anything: digest
/// (against `expected` when given), structure, manifest and every member.
pub fn verify_file(
    path: &Path,
    expected: Option<&Digest>,
    limits: &Limits,
) -> Result<VerifiedBundle, BundleError> {
    let file = File::open(path).map_err(|e| BundleError::io(path, e))?;
    read_bundle(file, expected, limits, &mut Discard)
}

/// Verifies the bundle file at `path` and unpacks it into `dest`, which must
/// not exist yet. Nothing appears at `dest` unless every check passed.
pub fn unpack_file(
    path: &Path,
    expected: Option<&Digest>,
    dest: &Path,
    limits: &Limits,
) -> Result<UnpackedBundle, BundleError> {
    let file = File::open(path).map_err(|e| BundleError::io(path, e))?;
    unpack(file, expected, dest, limits)
}

/// Like [`unpack_file`], from any byte stream (a download, a pipe).
pub fn unpack(
    source: impl Read,
    expected: Option<&Digest>,
    dest: &Path,
    limits: &Limits,
) -> Result<UnpackedBundle, BundleError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(BundleError::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    let parent = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| BundleError::io(parent, e))?;
    // In the same directory as `dest`, so the final rename is atomic; dropped
    // (and removed) on any error. Named with this process's id, so that
    // what a killed process left can be told from an unpack in progress.
    let staging = tempfile::Builder::new()
        .prefix(&format!("{UNPACKING_PREFIX}{}-", std::process::id()))
        .tempdir_in(parent)
        .map_err(|e| BundleError::io(parent, e))?;
    let mut sink = DirSink {
        dir: staging.path().to_path_buf(),
    };
    let bundle = read_bundle(source, expected, limits, &mut sink)?;
    sync_dir(staging.path());
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, dest) {
        let _ = fs::remove_dir_all(&staged);
        return Err(if fs::symlink_metadata(dest).is_ok() {
            BundleError::DestinationExists {
                path: dest.to_path_buf(),
            }
        } else {
            BundleError::io(dest, e)
        });
    }
    sync_dir(parent);
    Ok(UnpackedBundle {
        dir: dest.to_path_buf(),
        bundle,
    })
}

/// Where verified member bytes go.
trait MemberSink {
    fn open(&mut self, name: &str) -> Result<Box<dyn Write>, BundleError>;
}

struct Discard;

impl MemberSink for Discard {
    fn open(&mut self, _name: &str) -> Result<Box<dyn Write>, BundleError> {
        Ok(Box::new(io::sink()))
    }
}

struct DirSink {
    dir: PathBuf,
}

impl MemberSink for DirSink {
    fn open(&mut self, name: &str) -> Result<Box<dyn Write>, BundleError> {
        // `name` passed member_name_problem: a flat, plain file name.
        let path = self.dir.join(name);
        let file = File::create_new(&path).map_err(|e| BundleError::io(&path, e))?;
        Ok(Box::new(MemberFile {
            out: io::BufWriter::new(file),
            path,
        }))
    }
}

/// A member file being written. Its errors are the destination's (a full
/// disk, a directory removed underneath), not the archive's: they are
/// tagged as [`SinkFailed`] so they are reported as I/O on that path, never
/// as a corrupt bundle. `flush` also fsyncs, so a renamed bundle directory
/// is durable and a late write error (delayed allocation) surfaces here.
struct MemberFile {
    out: io::BufWriter<File>,
    path: PathBuf,
}

impl MemberFile {
    fn failed(&self, source: io::Error) -> io::Error {
        io::Error::other(SinkFailed {
            path: self.path.clone(),
            source,
        })
    }
}

impl Write for MemberFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).map_err(|e| self.failed(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.failed(e))?;
        self.out.get_ref().sync_all().map_err(|e| self.failed(e))
    }
}

/// A write to an unpacked member failed; carried inside an `io::Error`
/// through the copy so [`stream_error`] can tell it from a bad archive.
#[derive(Debug)]
struct SinkFailed {
    path: PathBuf,
    source: io::Error,
}

impl std::fmt::Display for SinkFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for SinkFailed {}

/// Which limit a counting reader enforces; carried inside an `io::Error` so
/// it survives the zstd and tar layers and can be reported precisely.
#[derive(Debug)]
struct LimitHit {
    what: &'static str,
    limit: u64,
}

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} exceeds {} bytes", self.what, self.limit)
    }
}

impl std::error::Error for LimitHit {}

/// Counts (and optionally hashes) bytes read, failing past a limit.
struct CountingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    bytes: u64,
    limit: u64,
    what: &'static str,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        if self.bytes > self.limit {
            return Err(io::Error::other(LimitHit {
                what: self.what,
                limit: self.limit,
            }));
        }
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        Ok(n)
    }
}

/// Maps an error from the zstd or tar layers: a limit hit becomes
/// `TooLarge`, a failed write of an unpacked member `Io` on its path, and
/// anything else means the stream is truncated or corrupt.
fn stream_error(e: io::Error) -> BundleError {
    if e.get_ref().is_some_and(|inner| inner.is::<SinkFailed>()) {
        return match e.into_inner().map(|inner| inner.downcast::<SinkFailed>()) {
            Some(Ok(s)) => BundleError::Io {
                path: s.path,
                source: s.source,
            },
            Some(Err(other)) => BundleError::Corrupt {
                detail: other.to_string(),
            },
            None => BundleError::Corrupt {
                detail: "unknown I/O error".into(),
            },
        };
    }
    if let Some(hit) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<LimitHit>())
    {
        return BundleError::TooLarge {
            what: hit.what,
            limit: hit.limit,
        };
    }
    BundleError::Corrupt {
        detail: e.to_string(),
    }
}

fn read_bundle(
    source: impl Read,
    expected: Option<&Digest>,
    limits: &Limits,
    sink: &mut dyn MemberSink,
) -> Result<VerifiedBundle, BundleError> {
    let raw = CountingReader {
        inner: source,
        hasher: Some(Sha256::new()),
        bytes: 0,
        limit: limits.max_archive_bytes,
        what: "compressed archive",
    };
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(BufReader::new(raw)).map_err(stream_error)?;
    // 2^27 = 128 MiB window: the most a bundle writer uses, and a bound on
    // the decoder's memory for hostile frames.
    decoder.window_log_max(27).map_err(stream_error)?;
    let unpacked = CountingReader {
        inner: decoder,
        hasher: None,
        bytes: 0,
        limit: limits.max_unpacked_bytes,
        what: "decompressed archive",
    };
    let mut archive = tar::Archive::new(unpacked);
    let mut entries = archive.entries().map_err(stream_error)?;

    let manifest = {
        let mut first = match entries.next() {
            Some(entry) => entry.map_err(stream_error)?,
            None => return Err(BundleError::Empty),
        };
        let name = entry_name(&first);
        check_entry_type(&name, first.header().entry_type())?;
        if name != members::MANIFEST {
            return Err(BundleError::ManifestNotFirst { found: name });
        }
        let size = first.header().size().map_err(stream_error)?;
        if size > limits.max_manifest_bytes {
            return Err(BundleError::TooLarge {
                what: "manifest.json",
                limit: limits.max_manifest_bytes,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        first.read_to_end(&mut bytes).map_err(stream_error)?;
        let manifest = parse_manifest(&bytes, limits)?;
        let mut out = sink.open(members::MANIFEST)?;
        out.write_all(&bytes).map_err(stream_error)?;
        out.flush().map_err(stream_error)?;
        manifest
    };

    let mut seen = BTreeSet::new();
    for entry in entries {
        let mut entry = entry.map_err(stream_error)?;
        let name = entry_name(&entry);
        check_entry_type(&name, entry.header().entry_type())?;
        if let Some(reason) = member_name_problem(&name) {
            return Err(BundleError::UnsafeEntry { name, reason });
        }
        if name == members::MANIFEST || !seen.insert(name.clone()) {
            return Err(BundleError::DuplicateMember { name });
        }
        let Some(listed) = manifest.member(&name) else {
            return Err(BundleError::UnlistedMember { name });
        };
        let size = entry.header().size().map_err(stream_error)?;
        if size > limits.max_member_bytes {
            return Err(BundleError::MemberTooLarge {
                name,
                size,
                limit: limits.max_member_bytes,
            });
        }
        if size != listed.size {
            return Err(BundleError::MemberSizeMismatch {
                name,
                listed: listed.size,
                actual: size,
            });
        }
        let mut out = HashingWriter {
            inner: sink.open(&name)?,
            hasher: Sha256::new(),
            bytes: 0,
        };
        io::copy(&mut entry, &mut out).map_err(stream_error)?;
        out.flush().map_err(stream_error)?;
        if out.bytes != listed.size {
            return Err(BundleError::MemberSizeMismatch {
                name,
                listed: listed.size,
                actual: out.bytes,
            });
        }
        let actual: [u8; 32] = out.hasher.finalize().into();
        if actual != listed.sha256 {
            return Err(BundleError::MemberHashMismatch { name });
        }
    }
    if let Some(missing) = manifest.members.iter().find(|m| !seen.contains(&m.name)) {
        return Err(BundleError::MissingMember {
            name: missing.name.clone(),
        });
    }

    // The tar end marker was read; what follows must be zero padding, and the
    // zstd stream must end cleanly (a truncated frame errors here).
    let mut unpacked = archive.into_inner();
    let mut rest = [0u8; 8192];
    loop {
        let n = unpacked.read(&mut rest).map_err(stream_error)?;
        if n == 0 {
            break;
        }
        if rest[..n].iter().any(|&b| b != 0) {
            return Err(BundleError::TrailingData);
        }
    }
    let mut raw = unpacked.inner.finish();
    // Anything left in the raw stream after the last frame is not zstd.
    let mut tail = Vec::new();
    raw.read_to_end(&mut tail).map_err(stream_error)?;
    if !tail.is_empty() {
        return Err(BundleError::TrailingData);
    }
    let raw = raw.into_inner();
    let digest = Digest::from_bytes(raw.hasher.unwrap_or_default().finalize().into());
    if let Some(expected) = expected
        && *expected != digest
    {
        return Err(BundleError::DigestMismatch {
            expected: *expected,
            actual: digest,
        });
    }
    Ok(VerifiedBundle {
        digest,
        size: raw.bytes,
        manifest,
    })
}

fn entry_name<R: Read>(entry: &tar::Entry<'_, R>) -> String {
    String::from_utf8_lossy(&entry.path_bytes()).into_owned()
}

fn check_entry_type(name: &str, kind: tar::EntryType) -> Result<(), BundleError> {
    let refused = match kind {
        tar::EntryType::Regular => return Ok(()),
        tar::EntryType::Symlink => "symbolic link",
        tar::EntryType::Link => "hard link",
        tar::EntryType::Char => "character device",
        tar::EntryType::Block => "block device",
        tar::EntryType::Fifo => "fifo",
        tar::EntryType::Directory => "directory",
        _ => "non-regular entry",
    };
    Err(BundleError::ForbiddenEntryType {
        name: name.to_string(),
        kind: refused,
    })
}

fn parse_manifest(bytes: &[u8], limits: &Limits) -> Result<Manifest, BundleError> {
    // Read the version alone first: a future major version may have a shape
    // this code cannot parse, and the user needs to hear "version", not
    // "missing field".
    #[derive(serde::Deserialize)]
    struct VersionOnly {
        format_version: u32,
    }
    let version: VersionOnly =
        serde_json::from_slice(bytes).map_err(|e| BundleError::ManifestInvalid {
            detail: e.to_string(),
        })?;
    if version.format_version != FORMAT_VERSION {
        return Err(BundleError::UnsupportedFormatVersion {
            found: version.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let manifest: Manifest =
        serde_json::from_slice(bytes).map_err(|e| BundleError::ManifestInvalid {
            detail: e.to_string(),
        })?;
    manifest.check_kinds()?;
    if manifest.members.len() > limits.max_members {
        return Err(BundleError::TooLarge {
            what: "member list",
            limit: limits.max_members as u64,
        });
    }
    let mut names = BTreeSet::new();
    for m in &manifest.members {
        if let Some(reason) = member_name_problem(&m.name) {
            return Err(BundleError::UnsafeEntry {
                name: m.name.clone(),
                reason,
            });
        }
        if m.name == members::MANIFEST || !names.insert(m.name.as_str()) {
            return Err(BundleError::DuplicateMember {
                name: m.name.clone(),
            });
        }
    }
    Ok(manifest)
}
