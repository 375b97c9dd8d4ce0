//! The identity of an embedding model. A bundle records the model its vectors
//! were made with; a server embeds queries with its own model and must refuse
//! a bundle whose model is not the same, or every answer would be noise.

use serde::{Deserialize, Serialize};

use crate::digest::hex_sha256;

/// Everything that decides what vector a text becomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelIdentity {
    /// Human name, e.g. `sentence-transformers/all-MiniLM-L6-v2`.
    pub name: String,
    /// Vector dimensions.
    pub dimensions: u32,
    /// Pooling over token states (`mean` or `cls`).
    pub pooling: String,
    /// Whether vectors are L2-normalised.
    pub normalized: bool,
    /// Token limit; longer input is truncated.
    pub max_tokens: u32,
    /// sha256 of the ONNX model file.
    #[serde(with = "hex_sha256")]
    pub onnx_sha256: [u8; 32],
    /// sha256 of `tokenizer.json`.
    #[serde(with = "hex_sha256")]
    pub tokenizer_sha256: [u8; 32],
    /// Text prepended to queries before embedding (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub query_prefix: String,
    /// Text prepended to chunks before embedding (empty: none).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub document_prefix: String,
}

impl ModelIdentity {
    /// Names the first field on which `self` and `other` differ, or `None`
    /// when they are the same model. Used in "wrong model" errors so the user
    /// sees what differs, not just that something does.
    pub fn mismatch(&self, other: &ModelIdentity) -> Option<String> {
        let field = if self.name != other.name {
            format!("name '{}' vs '{}'", self.name, other.name)
        } else if self.dimensions != other.dimensions {
            format!("dimensions {} vs {}", self.dimensions, other.dimensions)
        } else if self.pooling != other.pooling {
            format!("pooling '{}' vs '{}'", self.pooling, other.pooling)
        } else if self.normalized != other.normalized {
            format!("normalized {} vs {}", self.normalized, other.normalized)
        } else if self.max_tokens != other.max_tokens {
            format!("max_tokens {} vs {}", self.max_tokens, other.max_tokens)
        } else if self.onnx_sha256 != other.onnx_sha256 {
            "ONNX file sha256".to_string()
        } else if self.tokenizer_sha256 != other.tokenizer_sha256 {
            "tokenizer.json sha256".to_string()
        } else if self.query_prefix != other.query_prefix {
            format!(
                "query prefix '{}' vs '{}'",
                self.query_prefix, other.query_prefix
            )
        } else if self.document_prefix != other.document_prefix {
            format!(
                "document prefix '{}' vs '{}'",
                self.document_prefix, other.document_prefix
            )
        } else {
            return None;
        };
        Some(field)
    }
}
