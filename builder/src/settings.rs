//! Build settings: defaults, `shelf.toml`, and what of them is recorded in
//! the manifest (everything that changes a bundle's bytes).

use std::path::Path;

use serde::Deserialize;
use shelf_formats::lexical::Analyzer;
use shelf_formats::manifest::{self, BuildSettings, SecretScan};

use crate::BuildError;
use crate::chunker::Chunker;

/// Settings of one build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Files over this many bytes are skipped (`too_large`).
    pub max_file_bytes: u64,
    /// A chunk's length bound in model tokens, header included.
    pub max_chunk_tokens: u32,
    /// Lines repeated at the start of the next chunk.
    pub overlap_lines: u32,
    /// Only paths matching one of these globs are indexed (empty: all).
    pub include: Vec<String>,
    /// Paths matching these globs are skipped (`excluded`).
    pub exclude: Vec<String>,
    /// Skip machine-made text (`generated`): SVG, source maps, lock files,
    /// minified code.
    pub exclude_generated: bool,
    /// Paths whose text is not scanned for credentials (`secrets.rs`):
    /// fixtures with fake keys, documentation of key formats.
    pub allow_secrets_in: Vec<String>,
    /// How files are cut into chunks; part of every content id, so a
    /// change of chunker re-embeds what it cuts differently rather than
    /// mixing old and new chunks.
    pub chunker: Chunker,
    /// How the definitions index is made (`definitions.rs`), or none.
    pub definitions: crate::definitions::Extractor,
    /// Commits in the history index (`history_index.rs`); 0: none.
    pub history_commits: usize,
}

/// Most commits a history index may hold.
const MAX_HISTORY_COMMITS: usize = 100_000;

impl Default for Settings {
    fn default() -> Self {
        Self {
            max_file_bytes: 1 << 20,
            max_chunk_tokens: 256,
            overlap_lines: 2,
            include: Vec::new(),
            exclude: Vec::new(),
            exclude_generated: true,
            allow_secrets_in: Vec::new(),
            chunker: Chunker::default(),
            definitions: crate::definitions::Extractor::default(),
            history_commits: crate::history_index::DEFAULT_COMMITS,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    build: BuildSection,
    /// `shelf serve`'s settings may share the file; they are its to check.
    #[serde(default)]
    #[allow(dead_code)]
    serve: Option<toml::Table>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildSection {
    max_file_bytes: Option<u64>,
    max_chunk_tokens: Option<u32>,
    overlap_lines: Option<u32>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    exclude_generated: Option<bool>,
    allow_secrets_in: Option<Vec<String>>,
    chunker: Option<String>,
    definitions: Option<String>,
    history_commits: Option<usize>,
}

impl Settings {
    /// Parses `shelf.toml` text over the defaults. `origin` names the file
    /// in errors.
    pub fn from_toml(text: &str, origin: &str, model_max_tokens: u32) -> Result<Self, BuildError> {
        let invalid = |detail: String| BuildError::Config {
            origin: origin.to_string(),
            detail,
        };
        let file: ConfigFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let d = Settings::default();
        let b = file.build;
        let s = Settings {
            max_file_bytes: b.max_file_bytes.unwrap_or(d.max_file_bytes),
            max_chunk_tokens: b.max_chunk_tokens.unwrap_or(d.max_chunk_tokens),
            overlap_lines: b.overlap_lines.unwrap_or(d.overlap_lines),
            include: b.include.unwrap_or_default(),
            exclude: b.exclude.unwrap_or_default(),
            exclude_generated: b.exclude_generated.unwrap_or(d.exclude_generated),
            allow_secrets_in: b.allow_secrets_in.unwrap_or_default(),
            chunker: match b.chunker {
                Some(c) => c
                    .parse()
                    .map_err(|e| invalid(format!("build.chunker: {e}")))?,
                None => d.chunker,
            },
            definitions: match b.definitions {
                Some(x) => x
                    .parse()
                    .map_err(|e| invalid(format!("build.definitions: {e}")))?,
                None => d.definitions,
            },
            history_commits: b.history_commits.unwrap_or(d.history_commits),
        };
        if s.history_commits > MAX_HISTORY_COMMITS {
            return Err(invalid(format!(
                "build.history_commits = {} is more than {MAX_HISTORY_COMMITS}",
                s.history_commits
            )));
        }
        if s.max_chunk_tokens < 32 || s.max_chunk_tokens > model_max_tokens {
            return Err(invalid(format!(
                "build.max_chunk_tokens = {} must be between 32 and the model's limit {model_max_tokens}",
                s.max_chunk_tokens
            )));
        }
        if s.overlap_lines > 20 {
            return Err(invalid(format!(
                "build.overlap_lines = {} is more than 20",
                s.overlap_lines
            )));
        }
        for g in s
            .include
            .iter()
            .chain(&s.exclude)
            .chain(&s.allow_secrets_in)
        {
            globset::Glob::new(g).map_err(|e| invalid(format!("glob '{g}': {e}")))?;
        }
        Ok(s)
    }

    /// Reads a config file from disk.
    pub fn from_file(path: &Path, model_max_tokens: u32) -> Result<Self, BuildError> {
        let text = std::fs::read_to_string(path).map_err(|e| BuildError::Config {
            origin: path.display().to_string(),
            detail: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string(), model_max_tokens)
    }

    /// The manifest's record of these settings.
    pub fn to_manifest(&self) -> BuildSettings {
        BuildSettings {
            chunker: self.chunker.name().to_string(),
            max_chunk_tokens: self.max_chunk_tokens,
            overlap_lines: self.overlap_lines,
            max_file_bytes: self.max_file_bytes,
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            vector_quantization: manifest::VECTOR_QUANTIZATION.to_string(),
            index: manifest::VECTOR_INDEX_KIND.to_string(),
            lexical: Some(Analyzer::CURRENT.kind().to_string()),
            exclude_generated: Some(self.exclude_generated),
            secret_scan: Some(SecretScan {
                rules: crate::secrets::RULES.to_string(),
                allow: self.allow_secrets_in.clone(),
            }),
            definitions: self.definitions.kind().map(str::to_string),
            history: crate::history_index::kind(self.history_commits),
            compression: Some(shelf_formats::bundle::compression_id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(
            Settings::from_toml("", "t", 256).unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn reads_overrides() {
        let s = Settings::from_toml(
            "[build]\nmax_file_bytes = 10\nexclude = [\"*.lock\"]\n",
            "t",
            256,
        )
        .unwrap();
        assert_eq!(s.max_file_bytes, 10);
        assert_eq!(s.exclude, ["*.lock"]);
    }

    #[test]
    fn typos_and_bad_values_name_the_file_and_key() {
        let e = Settings::from_toml("[build]\nmax_file_byte = 1\n", "repo/shelf.toml", 256)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("repo/shelf.toml") && e.contains("max_file_byte"),
            "{e}"
        );
        let e = Settings::from_toml("[build]\nmax_chunk_tokens = 9999\n", "x", 256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_chunk_tokens"), "{e}");
        let e = Settings::from_toml("[build]\nexclude = [\"[\"]\n", "x", 256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("glob"), "{e}");
        let e = Settings::from_toml("[build]\nchunker = \"ast\"\n", "x", 256)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("build.chunker") && e.contains("syntax-v1"),
            "{e}"
        );
        let s = Settings::from_toml("[build]\nchunker = \"syntax-v1\"\n", "x", 256).unwrap();
        assert_eq!(s.chunker, Chunker::SyntaxV1);
        assert_eq!(s.to_manifest().chunker, "syntax-v1");
        let e = Settings::from_toml("[build]\ndefinitions = \"ast\"\n", "x", 256)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("build.definitions") && e.contains("lines"),
            "{e}"
        );
        let e = Settings::from_toml("[build]\nhistory_commits = 1000000\n", "x", 256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("build.history_commits"), "{e}");
        let s = Settings::from_toml(
            "[build]\ndefinitions = \"off\"\nhistory_commits = 0\n",
            "x",
            256,
        )
        .unwrap();
        let m = s.to_manifest();
        assert_eq!((m.definitions, m.history), (None, None));
        let m = Settings::default().to_manifest();
        assert_eq!(m.definitions.as_deref(), Some("defs-v1/syntax"));
        assert_eq!(m.history.as_deref(), Some("commits-v1/1000"));
    }
}
