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

/// The minor version this code writes. Minors add optional manifest
/// fields or members, or a vector layout named by `settings.index` (which a
/// reader checks), so a reader accepts any minor of its major and refuses
/// a kind it does not know by name. 1.1 added the lexical index
/// (`lexical.bin`, `settings.lexical`); 1.2 the file texts (`files.bin`);
/// 1.3 the flat half-precision vectors (`vectors.bin`) in place of the
/// HNSW graph; 1.4 the definitions index (`definitions.bin`,
/// `settings.definitions`) and the history index (`history.bin`,
/// `history-lexical.bin`, `settings.history`); 1.5 the flat vectors as
/// signed bytes in blocks of 32 (`settings.vector_quantization` `i8/32`)
/// in place of half precision.
pub const FORMAT_MINOR: u32 = 5;

/// The vector index kind this code writes (`settings.index`): every vector
/// in `vectors.bin`, searched exactly by cosine.
pub const VECTOR_INDEX_KIND: &str = "flat/cos";

/// How those vectors are stored (`settings.vector_quantization`): signed
/// bytes in blocks of 32 values, each block with its largest magnitude
/// (`shelf_formats::vectors::Element::I8Blocks`). Bundles 1.3 and 1.4
/// store them as IEEE 754 half precision (`f16`), still read.
pub const VECTOR_QUANTIZATION: &str = crate::vectors::Element::I8Blocks.name();

/// The flat vectors' storage of bundles 1.3 and 1.4.
pub const VECTOR_QUANTIZATION_F16: &str = crate::vectors::Element::F16.name();

/// The vector index kind of bundles 1.0 to 1.2, still read: a usearch
/// HNSW graph in `vectors.usearch`, cosine metric, 16 neighbours per node,
/// built with an insertion breadth of 128.
pub const HNSW_INDEX_KIND: &str = "usearch-hnsw/cos/m16/ef128";

/// How the HNSW graph's vectors are stored: `f32`.
pub const HNSW_QUANTIZATION: &str = "f32";

/// Where a bundle's vectors are and how they are searched, from the kinds
/// its manifest names (checked by [`Manifest::check_kinds`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorLayout {
    /// `vectors.bin`, exact search (1.3 and later; i8 blocks since 1.5, f16 before).
    Flat,
    /// `vectors.usearch`, an f32 HNSW graph (1.0 to 1.2).
    Hnsw,
}

impl VectorLayout {
    /// The member holding the vectors.
    pub fn member(self) -> &'static str {
        match self {
            VectorLayout::Flat => members::FLAT_VECTORS,
            VectorLayout::Hnsw => members::VECTORS,
        }
    }
}

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

/// A manifest count that its members do not bear out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bundle refused: the manifest's {field} is {claimed} but {holder} holds {found}; the manifest does not describe its members (rebuild the bundle)"
)]
pub struct CountMismatch {
    /// The manifest field.
    pub field: &'static str,
    /// What the manifest says.
    pub claimed: u64,
    /// What the member holds.
    pub found: u64,
    /// The member counted.
    pub holder: &'static str,
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
    /// How vectors are stored in the index (`f32` in an HNSW graph, `f16` or `i8/32` flat).
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
    /// Which commits the history index holds (`commits-v1/1000`: the
    /// 1,000 most recent eligible ancestors), when the bundle has one
    /// (format 1.4 and later).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history: Option<String>,
    /// The compressor of the archive and of each file text,
    /// `zstd-<version>/<level>` (format 1.3 and later; absent before).
    /// The same bytes compress to the same bytes when it is the same, so
    /// a build reuses an earlier bundle's compressed texts only then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
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
    /// The usearch HNSW index over chunk vectors, openable by `Index::view`
    /// (format 1.0 to 1.2).
    pub const VECTORS: &str = "vectors.usearch";
    /// The flat vectors; format 1.3 and later.
    pub const FLAT_VECTORS: &str = "vectors.bin";
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
        check(
            "settings.index",
            &self.settings.index,
            &[VECTOR_INDEX_KIND, HNSW_INDEX_KIND],
        )?;
        // Each index kind stores its vectors one way.
        let quantization: &[&'static str] = match self.vector_layout() {
            VectorLayout::Flat => &[VECTOR_QUANTIZATION, VECTOR_QUANTIZATION_F16],
            VectorLayout::Hnsw => &[HNSW_QUANTIZATION],
        };
        check(
            "settings.vector_quantization",
            &self.settings.vector_quantization,
            quantization,
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

    /// Checks the manifest's counts against what its members hold: `chunks`
    /// chunks under `paths` distinct paths (the chunk store), and `files`
    /// file texts when the bundle has them. A manifest is what status pages
    /// and tools report, so a count its members do not bear out is refused,
    /// naming both numbers.
    pub fn check_counts(
        &self,
        chunks: u64,
        paths: u64,
        files: Option<u64>,
    ) -> Result<(), CountMismatch> {
        let check = |field, claimed: u64, found: u64, holder| {
            if claimed == found {
                Ok(())
            } else {
                Err(CountMismatch {
                    field,
                    claimed,
                    found,
                    holder,
                })
            }
        };
        check("counts.chunks", self.counts.chunks, chunks, members::CHUNKS)?;
        check(
            "counts.files_indexed",
            self.counts.files_indexed,
            paths,
            members::CHUNKS,
        )?;
        if let Some(files) = files {
            check(
                "counts.files_indexed",
                self.counts.files_indexed,
                files,
                members::FILES,
            )?;
        }
        Ok(())
    }

    /// Where the vectors are, by `settings.index` (meaningful once
    /// [`Manifest::check_kinds`] accepted it).
    pub fn vector_layout(&self) -> VectorLayout {
        if self.settings.index == HNSW_INDEX_KIND {
            VectorLayout::Hnsw
        } else {
            VectorLayout::Flat
        }
    }

    /// How the flat vectors store their values, by
    /// `settings.vector_quantization` (`None` for an HNSW bundle or a name
    /// [`Manifest::check_kinds`] refuses). A reader checks `vectors.bin`'s
    /// header against it: the two are written together.
    pub fn vector_element(&self) -> Option<crate::vectors::Element> {
        match self.vector_layout() {
            VectorLayout::Flat => {
                crate::vectors::Element::from_name(&self.settings.vector_quantization)
            }
            VectorLayout::Hnsw => None,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(chunks: u64, files: u64) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            format_minor: FORMAT_MINOR,
            source: Source {
                repository: "r".into(),
                commit: "c".repeat(40),
                tree: "t".repeat(40),
                git_ref: None,
                commit_time: 0,
            },
            model: ModelIdentity {
                name: "m".into(),
                dimensions: 2,
                pooling: "mean".into(),
                normalized: true,
                max_tokens: 8,
                onnx_sha256: [0; 32],
                tokenizer_sha256: [0; 32],
                query_prefix: String::new(),
                document_prefix: String::new(),
            },
            settings: BuildSettings {
                chunker: "lines-v1".into(),
                max_chunk_tokens: 8,
                overlap_lines: 0,
                max_file_bytes: 1,
                include: vec![],
                exclude: vec![],
                vector_quantization: VECTOR_QUANTIZATION.into(),
                index: VECTOR_INDEX_KIND.into(),
                lexical: None,
                exclude_generated: None,
                secret_scan: None,
                definitions: None,
                history: None,
                compression: None,
            },
            counts: Counts {
                files_indexed: files,
                chunks,
                ..Counts::default()
            },
            members: vec![],
        }
    }

    #[test]
    fn counts_the_members_do_not_bear_out_are_refused_naming_both() {
        assert_eq!(manifest(40, 5).check_counts(40, 5, Some(5)), Ok(()));
        assert_eq!(manifest(40, 5).check_counts(40, 5, None), Ok(()));
        let e = manifest(1_000_000_000_000, 5)
            .check_counts(40, 5, Some(5))
            .unwrap_err();
        assert_eq!(
            (e.field, e.claimed, e.found),
            ("counts.chunks", 1_000_000_000_000, 40)
        );
        assert!(
            e.to_string().contains("1000000000000")
                && e.to_string().contains("chunks.bin holds 40"),
            "{e}"
        );
        let e = manifest(40, 9).check_counts(40, 5, None).unwrap_err();
        assert_eq!(e.field, "counts.files_indexed");
        let e = manifest(40, 5).check_counts(40, 5, Some(4)).unwrap_err();
        assert_eq!(e.holder, members::FILES);
    }
}
