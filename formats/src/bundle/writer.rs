//! The deterministic bundle writer: same manifest and member bytes in, same
//! archive bytes (and so the same digest) out.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::BundleError;
use crate::digest::Digest;
use crate::manifest::{FORMAT_MINOR, FORMAT_VERSION, Manifest, Member, members};
use crate::names::member_name_problem;

/// zstd level of the archive. Part of the format's determinism: changing
/// it changes every digest. Level 3, not more: a small commit's build
/// compresses the whole archive again, and on pylint's bundle level 12
/// took 20 times as long for an output 11% smaller (docs/benchmarks.md);
/// half the archive is vectors and already-compressed file texts, which no
/// level shrinks.
pub const ZSTD_LEVEL: i32 = 3;

/// zstd level of each file text in `files.bin`: compressed once per
/// distinct text and kept from bundle to bundle while the text is the
/// same, so a high level costs a cold build only.
pub const TEXT_LEVEL: i32 = 12;

/// The compressor of the archive and of each file text
/// (`settings.compression`, format 1.3): zstd's library version and the
/// two levels. Two builds compress equal bytes to equal bytes when this is
/// equal, which is what lets a build reuse another's compressed texts.
pub fn compression_id() -> String {
    format!(
        "zstd-{}/{ZSTD_LEVEL}/{TEXT_LEVEL}",
        zstd::zstd_safe::version_string()
    )
}

/// File mode recorded for every tar entry.
const ENTRY_MODE: u32 = 0o444;

/// A bundle written to disk.
#[derive(Debug, Clone)]
pub struct WrittenBundle {
    /// sha256 of the archive's bytes.
    pub digest: Digest,
    /// Where it was written: `<out_dir>/<hex>.tar.zst`.
    pub path: PathBuf,
    /// Archive size in bytes.
    pub size: u64,
    /// The manifest as written, with its member list filled in.
    pub manifest: Manifest,
}

/// The file name of a bundle in a directory: `<hex>.tar.zst`.
pub fn bundle_file_name(digest: &Digest) -> String {
    format!("{}.tar.zst", digest.hex())
}

/// The digest in a bundle's file name (`<hex>.tar.zst`), if it is one: the
/// inverse of [`bundle_file_name`].
pub fn digest_from_file_name(path: &Path) -> Option<Digest> {
    path.file_name()?
        .to_str()?
        .strip_suffix(".tar.zst")?
        .parse()
        .ok()
}

/// Writes a bundle of `member_files` (name -> file) into `out_dir`.
///
/// The manifest's `members`, `format_version` and `format_minor` are filled
/// in here; everything else is taken as given. Entries are written sorted by
/// name with fixed mode, owner and mtime, so equal inputs give equal bytes.
/// The archive is written under a temporary name, fsynced and renamed, so
/// `out_dir` never holds a partial bundle under a bundle's name.
pub fn write_bundle(
    out_dir: &Path,
    mut manifest: Manifest,
    member_files: &[(String, PathBuf)],
) -> Result<WrittenBundle, BundleError> {
    let mut files: Vec<&(String, PathBuf)> = member_files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut listed = Vec::with_capacity(files.len());
    for window in files.windows(2) {
        if window[0].0 == window[1].0 {
            return Err(BundleError::DuplicateMember {
                name: window[0].0.clone(),
            });
        }
    }
    for (name, path) in &files {
        if let Some(reason) = member_name_problem(name) {
            return Err(BundleError::UnsafeEntry {
                name: name.clone(),
                reason,
            });
        }
        if name == members::MANIFEST {
            return Err(BundleError::DuplicateMember { name: name.clone() });
        }
        let (sha256, size) = hash_file(path)?;
        listed.push(Member {
            name: name.clone(),
            sha256,
            size,
        });
    }
    manifest.format_version = FORMAT_VERSION;
    manifest.format_minor = FORMAT_MINOR;
    manifest.members = listed;
    let manifest_bytes = manifest.to_canonical_json();

    fs::create_dir_all(out_dir).map_err(|e| BundleError::io(out_dir, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(".partial-bundle-")
        .suffix(".tmp")
        .tempfile_in(out_dir)
        .map_err(|e| BundleError::io(out_dir, e))?;
    let tmp_path = tmp.path().to_path_buf();
    let io_err = |e| BundleError::io(&tmp_path, e);

    let hashing = HashingWriter {
        inner: BufWriter::new(tmp.as_file().try_clone().map_err(io_err)?),
        hasher: Sha256::new(),
        bytes: 0,
    };
    let mut encoder = zstd::stream::write::Encoder::new(hashing, ZSTD_LEVEL).map_err(io_err)?;
    encoder.include_checksum(true).map_err(io_err)?;
    let mut tar = tar::Builder::new(encoder);
    tar.mode(tar::HeaderMode::Deterministic);
    append_entry(
        &mut tar,
        members::MANIFEST,
        manifest_bytes.len() as u64,
        &manifest_bytes[..],
    )
    .map_err(io_err)?;
    for (member, (_, path)) in manifest.members.iter().zip(&files) {
        let file = File::open(path).map_err(|e| BundleError::io(path, e))?;
        // Read exactly the bytes that were hashed: a file that changed size
        // since would fail the reader's checks, so fail here instead.
        let mut body = BufReader::new(file).take(member.size);
        append_entry(&mut tar, &member.name, member.size, &mut body)
            .map_err(|e| BundleError::io(path, e))?;
        if body.limit() != 0 {
            return Err(BundleError::MemberSizeMismatch {
                name: member.name.clone(),
                listed: member.size,
                actual: member.size - body.limit(),
            });
        }
    }
    let encoder = tar.into_inner().map_err(io_err)?;
    let mut hashing = encoder.finish().map_err(io_err)?;
    hashing.inner.flush().map_err(io_err)?;
    let size = hashing.bytes;
    let digest = Digest::from_bytes(hashing.hasher.finalize().into());
    tmp.as_file().sync_all().map_err(io_err)?;

    let path = out_dir.join(bundle_file_name(&digest));
    tmp.persist(&path)
        .map_err(|e| BundleError::io(&path, e.error))?;
    sync_dir(out_dir);
    Ok(WrittenBundle {
        digest,
        path,
        size,
        manifest,
    })
}

fn append_entry<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    body: impl Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_path(name)?;
    header.set_size(size);
    header.set_mode(ENTRY_MODE);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    tar.append(&header, body)
}

/// sha256 and size of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<([u8; 32], u64), BundleError> {
    let mut file = File::open(path).map_err(|e| BundleError::io(path, e))?;
    let mut hasher = HashingWriter {
        inner: io::sink(),
        hasher: Sha256::new(),
        bytes: 0,
    };
    io::copy(&mut file, &mut hasher).map_err(|e| BundleError::io(path, e))?;
    Ok((hasher.hasher.finalize().into(), hasher.bytes))
}

/// Best effort: makes a rename durable. Not every platform can open a
/// directory for sync, and failing the write for that would be worse.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    pub(crate) inner: W,
    pub(crate) hasher: Sha256,
    pub(crate) bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
