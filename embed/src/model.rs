//! Bring your own model: any BERT-family ONNX embedding model with its
//! tokenizer files, described by a `shelf-model.toml` in its directory.
//! The provisioned all-MiniLM-L6-v2 stays the default. What the file says
//! (and the files' hashes) becomes the model identity recorded in every
//! bundle, so a server refuses bundles of any other model.
//!
//! ```toml
//! name = "BAAI/bge-small-en-v1.5"
//! dimensions = 384
//! pooling = "cls"            # or "mean"
//! max_tokens = 512
//! query_prefix = "Represent this sentence for searching relevant passages: "
//! document_prefix = ""
//! # file names, relative to this file (these are the defaults):
//! onnx = "model.onnx"
//! tokenizer = "tokenizer.json"
//! config = "config.json"
//! special_tokens_map = "special_tokens_map.json"
//! tokenizer_config = "tokenizer_config.json"
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file a model directory describes itself in.
pub const SPEC_FILE: &str = "shelf-model.toml";

/// A model described by `shelf-model.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// Name recorded in bundles.
    pub name: String,
    /// Vector dimensions the model outputs.
    pub dimensions: u32,
    /// `mean` or `cls` pooling over token states.
    pub pooling: String,
    /// Token limit; longer input is truncated (and long queries windowed).
    pub max_tokens: u32,
    /// Prepended to every query before embedding.
    pub query_prefix: String,
    /// Prepended to every chunk before embedding.
    pub document_prefix: String,
    /// The ONNX file.
    pub onnx: PathBuf,
    /// `tokenizer.json`.
    pub tokenizer: PathBuf,
    /// `config.json`.
    pub config: PathBuf,
    /// `special_tokens_map.json`.
    pub special_tokens_map: PathBuf,
    /// `tokenizer_config.json`.
    pub tokenizer_config: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    dimensions: u32,
    pooling: String,
    max_tokens: u32,
    #[serde(default)]
    query_prefix: String,
    #[serde(default)]
    document_prefix: String,
    #[serde(default)]
    onnx: Option<String>,
    #[serde(default)]
    tokenizer: Option<String>,
    #[serde(default)]
    config: Option<String>,
    #[serde(default)]
    special_tokens_map: Option<String>,
    #[serde(default)]
    tokenizer_config: Option<String>,
}

/// Why a model directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("model {}: {detail}", path.display())]
pub struct ModelSpecError {
    /// The spec file (or directory).
    pub path: PathBuf,
    /// What is wrong.
    pub detail: String,
}

impl ModelSpec {
    /// Reads `dir/shelf-model.toml` (or the given `.toml` file) and checks
    /// that every file it names exists.
    pub fn read(path: &Path) -> Result<Self, ModelSpecError> {
        let file = if path.is_dir() {
            path.join(SPEC_FILE)
        } else {
            path.to_path_buf()
        };
        let bad = |detail: String| ModelSpecError {
            path: file.clone(),
            detail,
        };
        let text = std::fs::read_to_string(&file).map_err(|e| {
            bad(format!(
                "cannot read it ({e}); a model directory needs a {SPEC_FILE} (docs/runtime.md)"
            ))
        })?;
        let s: SpecFile = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if s.name.trim().is_empty() {
            return Err(bad("name is empty".into()));
        }
        if !(1..=8192).contains(&s.dimensions) {
            return Err(bad(format!(
                "dimensions = {} is out of range",
                s.dimensions
            )));
        }
        if s.pooling != "mean" && s.pooling != "cls" {
            return Err(bad(format!(
                "pooling = '{}': use \"mean\" or \"cls\"",
                s.pooling
            )));
        }
        if !(16..=8192).contains(&s.max_tokens) {
            return Err(bad(format!(
                "max_tokens = {} is out of range (16 to 8192)",
                s.max_tokens
            )));
        }
        let dir = file.parent().unwrap_or(Path::new("."));
        let resolve = |given: Option<String>, default: &str| -> Result<PathBuf, ModelSpecError> {
            let p = dir.join(given.as_deref().unwrap_or(default));
            if p.is_file() {
                Ok(p)
            } else {
                Err(bad(format!("{} does not exist", p.display())))
            }
        };
        Ok(Self {
            onnx: resolve(s.onnx, "model.onnx")?,
            tokenizer: resolve(s.tokenizer, "tokenizer.json")?,
            config: resolve(s.config, "config.json")?,
            special_tokens_map: resolve(s.special_tokens_map, "special_tokens_map.json")?,
            tokenizer_config: resolve(s.tokenizer_config, "tokenizer_config.json")?,
            name: s.name,
            dimensions: s.dimensions,
            pooling: s.pooling,
            max_tokens: s.max_tokens,
            query_prefix: s.query_prefix,
            document_prefix: s.document_prefix,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(spec: &str) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for f in [
            "model.onnx",
            "tokenizer.json",
            "config.json",
            "special_tokens_map.json",
            "tokenizer_config.json",
        ] {
            std::fs::write(t.path().join(f), b"x").unwrap();
        }
        std::fs::write(t.path().join(SPEC_FILE), spec).unwrap();
        t
    }

    #[test]
    fn a_spec_reads_with_default_file_names() {
        let t = dir_with(
            "name = \"m\"\ndimensions = 384\npooling = \"cls\"\nmax_tokens = 512\nquery_prefix = \"query: \"\n",
        );
        let s = ModelSpec::read(t.path()).unwrap();
        assert_eq!(
            (s.pooling.as_str(), s.max_tokens, s.query_prefix.as_str()),
            ("cls", 512, "query: ")
        );
        assert_eq!(s.onnx, t.path().join("model.onnx"));
        assert_eq!(s.document_prefix, "");
    }

    #[test]
    fn mistakes_are_named() {
        for (spec, needle) in [
            (
                "name = \"m\"\ndimensions = 384\npooling = \"max\"\nmax_tokens = 512\n",
                "pooling",
            ),
            (
                "name = \"m\"\ndimensions = 0\npooling = \"mean\"\nmax_tokens = 512\n",
                "dimensions",
            ),
            (
                "name = \"m\"\ndimensions = 384\npooling = \"mean\"\nmax_tokens = 512\nprefix = \"x\"\n",
                "prefix",
            ),
            (
                "name = \"m\"\ndimensions = 384\npooling = \"mean\"\nmax_tokens = 512\nonnx = \"other.onnx\"\n",
                "other.onnx does not exist",
            ),
        ] {
            let t = dir_with(spec);
            let err = ModelSpec::read(t.path()).unwrap_err().to_string();
            assert!(err.contains(needle), "{spec}: {err}");
        }
        let err = ModelSpec::read(Path::new("/nonexistent/model"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(SPEC_FILE), "{err}");
    }
}
