//! Bundle format v1: one `.tar.zst` archive, `manifest.json` first, then
//! fixed-name members, named by the sha256 of its bytes.
//! Specified in docs/formats/bundle-v1.md.

mod reader;
mod writer;

use std::path::{Path, PathBuf};

pub use reader::{
    Limits, UNPACKING_PREFIX, UnpackedBundle, VerifiedBundle, unpack, unpack_file, verify_file,
};
pub use writer::{
    TEXT_LEVEL, WrittenBundle, ZSTD_LEVEL, bundle_file_name, compression_id, digest_from_file_name,
    write_bundle,
};

use crate::digest::Digest;

/// Everything that can be wrong with a bundle, each case named so a user
/// (or a test) can tell what happened.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The archive has no entries at all.
    #[error("bundle is empty: no manifest.json entry")]
    Empty,
    /// zstd or tar framing is broken: usually a truncated download.
    #[error("bundle is truncated or corrupt ({detail}); download it again")]
    Corrupt {
        /// What the decoder said.
        detail: String,
    },
    /// A size limit was exceeded (a decompression bomb, or limits set too low).
    #[error("bundle refused: {what} exceeds the limit of {limit} bytes")]
    TooLarge {
        /// What was too large.
        what: &'static str,
        /// The limit.
        limit: u64,
    },
    /// The first entry is not `manifest.json`.
    #[error("bundle refused: first entry is '{found}', expected manifest.json")]
    ManifestNotFirst {
        /// The entry found first.
        found: String,
    },
    /// `manifest.json` does not parse.
    #[error("bundle refused: manifest.json is invalid: {detail}")]
    ManifestInvalid {
        /// The parser's message.
        detail: String,
    },
    /// The manifest's major version is not one this code reads.
    #[error(
        "bundle has format_version {found}, this shelf reads format_version {supported} only: \
         use a shelf release that supports format {found}"
    )]
    UnsupportedFormatVersion {
        /// Version in the manifest.
        found: u32,
        /// Version this code reads.
        supported: u32,
    },
    /// The manifest names an index, quantisation or analyzer kind this code
    /// does not read.
    #[error(transparent)]
    UnknownKind(#[from] crate::manifest::UnknownKind),
    /// A manifest count that the members do not bear out.
    #[error(transparent)]
    CountMismatch(#[from] crate::manifest::CountMismatch),
    /// An entry name that could escape the target directory or is not plain.
    #[error("bundle refused: unsafe entry name '{name}' ({reason})")]
    UnsafeEntry {
        /// The entry name, lossily decoded.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A link, device, directory or other non-regular entry.
    #[error("bundle refused: entry '{name}' is a {kind}; bundles hold regular files only")]
    ForbiddenEntryType {
        /// The entry name.
        name: String,
        /// What kind of entry it is.
        kind: &'static str,
    },
    /// The same name twice (or the manifest listed again).
    #[error("bundle refused: member '{name}' appears more than once")]
    DuplicateMember {
        /// The repeated name.
        name: String,
    },
    /// An entry that the manifest does not list.
    #[error("bundle refused: entry '{name}' is not listed in manifest.json")]
    UnlistedMember {
        /// The unlisted entry.
        name: String,
    },
    /// A listed member that is not in the archive.
    #[error("bundle refused: member '{name}' is listed in manifest.json but missing")]
    MissingMember {
        /// The missing member.
        name: String,
    },
    /// A member whose size differs from the manifest's.
    #[error("bundle refused: member '{name}' has {actual} bytes, manifest.json says {listed}")]
    MemberSizeMismatch {
        /// The member.
        name: String,
        /// Size in the manifest.
        listed: u64,
        /// Size found.
        actual: u64,
    },
    /// A member whose sha256 differs from the manifest's.
    #[error("bundle refused: member '{name}' does not match its sha256 in manifest.json")]
    MemberHashMismatch {
        /// The member.
        name: String,
    },
    /// A member over the per-member limit.
    #[error("bundle refused: member '{name}' has {size} bytes, over the limit of {limit}")]
    MemberTooLarge {
        /// The member.
        name: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Bytes after the end of the archive.
    #[error("bundle refused: data after the end of the archive")]
    TrailingData,
    /// The archive's sha256 is not the one asked for.
    #[error("bundle refused: its digest is {actual}, expected {expected}")]
    DigestMismatch {
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes read.
        actual: Digest,
    },
    /// Unpacking would overwrite something.
    #[error("{} already exists; unpack into a new directory", path.display())]
    DestinationExists {
        /// The existing path.
        path: PathBuf,
    },
}

impl BundleError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
