//! The bundle manifest: `manifest.json`, the first member of every bundle.
//! Specified in docs/formats/bundle-v1.md.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::hex_sha256;
use crate::model::ModelIdentity;

/// The bundle format major version this code writes and reads. A reader
/// refuses any other major version: a new major means old readers would
/// misread the bytes.
pub const FORMAT_VERSION: u32 = 1;

/// The minor version this code writes. Minors only add optional manifest
/// fields or new members, so a reader accepts any minor of its major.
/// 1.1 added the lexical index (`lexical.bin`, `settings.lexical`); 1.2
/// the file texts (`files.bin`); 1.4 the definitions index
/// (`definitions.bin`, `settings.definitions`) and the history index
/// (`history.bin`, `history-lexical.bin`, `settings.history`).
pub const FORMAT_MINOR: u32 = 4;

/// The vector index kind of every bundle of this format
/// (`settings.index`): a usearch HNSW graph, cosine metric, 16 neighbours
/// per node, built with an insertion breadth of 128.
pub const VECTOR_INDEX_KIND: &str = "usearch-hnsw/cos/m16/ef128";

/// How vectors are stored in that index (`settings.vector_quantization`).
pub const VECTOR_QUANTIZATION: &str = "f32";

/// The kinds a manifest names, each checked on read against what this code
/// understands: a bundle built with an index or analyzer this shelf does
/// not know would otherwise be searched with the wrong code, silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bundle has {field} '{found}', this shelf reads {} only: use a shelf release that reads it, or rebuild the bundle with this one",
    supported.join(", ")
)]
pub struct UnknownKind {
    /// The manifest field (`settings.index`, ...).
    pub field: &'static str,
    /// What the bundle names.
    pub found: String,
    /// What this code reads.
    pub supported: Vec<&'static str>,
}

/// Everything a reader needs to trust and interpret a bundle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Major format version; see [`FORMAT_VERSION`].
    pub format_version: u32,
    /// Minor format version; see [`FORMAT_MINOR`].
    #[serde(default)]
    pub format_minor: u32,
    /// Where the indexed content came from.
    pub source: Source,
    /// The embedding model every vector in the bundle was made with.
    pub model: ModelIdentity,
    /// Build settings that change the bundle's bytes.
    pub settings: BuildSettings,
    /// What was indexed and what was skipped.
    pub counts: Counts,
    /// Every member after the manifest, sorted by name, with its hash and size.
    pub members: Vec<Member>,
}

/// The git commit a bundle was built from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Repository name (e.g. `owner/name`, or the directory name).
    pub repository: String,
    /// Full commit id (40 hex characters for SHA-1 repositories).
    pub commit: String,
    /// The commit's tree id.
    pub tree: String,
    /// The ref the build was asked for (e.g. `refs/heads/main`), if any.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// Committer time of the commit, seconds since the Unix epoch. The only
    /// time in a manifest, so rebuilding a commit later gives the same bytes.
    pub commit_time: i64,
}

/// Settings that change a bundle's bytes. Two builds with equal settings,
/// commit and model give byte-identical bundles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildSettings {
    /// Name and version of the chunking algorithm (e.g. `lines-v1`).
    pub chunker: String,
    /// Upper bound on a chunk's length in model tokens.
    pub max_chunk_tokens: u32,
    /// Lines repeated from the previous chunk at the start of the next.
    pub overlap_lines: u32,
    /// Files larger than this many bytes are skipped.
    pub max_file_bytes: u64,
    /// Include globs (empty: everything not excluded).
    pub include: Vec<String>,
    /// Exclude globs, applied after include.
    pub exclude: Vec<String>,
    /// How vectors are stored in the index (`f32`, `f16` or `i8`).
    pub vector_quantization: String,
    /// The vector index kind and its build parameters
    /// (e.g. `usearch-hnsw/cos/m16/ef128`).
    pub index: String,
    /// The lexical index kind and analyzer (`bm25/code-v1`), when the bundle
    /// has one (format 1.1 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lexical: Option<String>,
    /// Whether machine-made text (SVG, lock files, minified code) was
    /// skipped (format 1.1 and later; absent: not skipped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_generated: Option<bool>,
    /// The content scan for credentials that withheld lines from the
    /// indexed text (absent: no scan; bundles made before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_scan: Option<SecretScan>,
    /// How the definitions index was made (`defs-v1/syntax`), when the
    /// bundle has one (format 1.4 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definitions: Option<String>,
    /// Which commits the history index holds (`commits-v1/2000`: the
    /// 2,000 most recent eligible ancestors), when the bundle has one
    /// (format 1.4 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
}

/// How a build scanned file text for credentials (`settings.secret_scan`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretScan {
    /// Name and version of the rule set (e.g. `secrets-v1`).
    pub rules: String,
    /// Path globs whose content was not scanned (`build.allow_secrets_in`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
}

/// What a build indexed and what it skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Files whose chunks are in the bundle.
    pub files_indexed: u64,
    /// Chunks (and vectors) in the bundle.
    pub chunks: u64,
    /// Files left out, by reason (e.g. `binary`, `too_large`, `secret`).
    pub skipped: BTreeMap<String, u64>,
    /// Indexed files that were not valid UTF-8 and were decoded lossily
    /// (invalid sequences became U+FFFD).
    #[serde(default)]
    pub decoded_lossy: u64,
}

/// One member file of a bundle, as listed in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Flat file name, `[a-z0-9][a-z0-9._-]*`.
    pub name: String,
    /// sha256 of the member's bytes, bare lowercase hex.
    #[serde(with = "hex_sha256")]
    pub sha256: [u8; 32],
    /// Size in bytes.
    pub size: u64,
}

/// Fixed member names of format v1.
pub mod members {
    /// The manifest; always the first tar entry.
    pub const MANIFEST: &str = "manifest.json";
    /// The usearch HNSW index over chunk vectors, openable by `Index::view`.
    pub const VECTORS: &str = "vectors.usearch";
    /// The chunk store: texts, paths, line ranges and content ids.
    pub const CHUNKS: &str = "chunks.bin";
    /// The lexical (BM25) index over the chunks; format 1.1 and later.
    pub const LEXICAL: &str = "lexical.bin";
    /// The text of every indexed file; format 1.2 and later.
    pub const FILES: &str = "files.bin";
    /// Every definition in the indexed files; format 1.4 and later.
    pub const DEFINITIONS: &str = "definitions.bin";
    /// Recent commits with their messages and files; format 1.4 and later.
    pub const HISTORY: &str = "history.bin";
    /// The lexical index over the history's messages; format 1.4 and later.
    pub const HISTORY_LEXICAL: &str = "history-lexical.bin";
}

impl Manifest {
    /// Checks every kind the manifest names (vector index, quantisation,
    /// lexical analyzer) against what this code reads.
    pub fn check_kinds(&self) -> Result<(), UnknownKind> {
        let check = |field, found: &str, supported: &[&'static str]| {
            if supported.contains(&found) {
                Ok(())
            } else {
                Err(UnknownKind {
                    field,
                    found: found.to_string(),
                    supported: supported.to_vec(),
                })
            }
        };
        check("settings.index", &self.settings.index, &[VECTOR_INDEX_KIND])?;
        check(
            "settings.vector_quantization",
            &self.settings.vector_quantization,
            &[VECTOR_QUANTIZATION],
        )?;
        if let Some(kind) = &self.settings.lexical {
            crate::lexical::Analyzer::from_kind(kind).ok_or_else(|| UnknownKind {
                field: "settings.lexical",
                found: kind.clone(),
                supported: crate::lexical::Analyzer::ALL
                    .iter()
                    .map(|a| a.kind())
                    .collect(),
            })?;
        }
        Ok(())
    }

    /// The listed member called `name`, if any.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The manifest's canonical bytes: pretty JSON with a trailing newline.
    /// Field order is fixed by the struct and maps are sorted, so equal
    /// manifests serialise to equal bytes.
    pub fn to_canonical_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}
