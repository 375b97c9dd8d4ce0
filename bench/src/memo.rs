//! Query vectors computed once per text and shared by every ranking variant
//! a benchmark compares: each variant runs the real pipeline
//! (`Engine::answer`), only the embedding is not repeated.

use std::collections::HashMap;
use std::sync::Mutex;

use shelf_embed::Embedder;
use shelf_formats::ModelIdentity;
use shelf_search::{EncodeError, Encoded, QueryEncoder};

/// An encoder that embeds each distinct text once.
pub struct Memo {
    /// The model.
    pub inner: Embedder,
    seen: Mutex<HashMap<String, Vec<f32>>>,
}

impl Memo {
    /// Remembers `inner`'s vectors.
    pub fn new(inner: Embedder) -> Self {
        Self {
            inner,
            seen: Mutex::new(HashMap::new()),
        }
    }
}

impl QueryEncoder for Memo {
    fn identity(&self) -> &ModelIdentity {
        self.inner.identity()
    }

    fn token_spans(&self, text: &str) -> Vec<(usize, usize)> {
        QueryEncoder::token_spans(&self.inner, text)
    }

    fn encode(&self, texts: &[String]) -> Result<Encoded, EncodeError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let missing: Vec<String> = texts
            .iter()
            .filter(|t| !seen.contains_key(*t))
            .cloned()
            .collect();
        if !missing.is_empty() {
            let fresh = QueryEncoder::encode(&self.inner, &missing)?;
            for (t, v) in missing.into_iter().zip(fresh.vectors) {
                seen.insert(t, v);
            }
        }
        Ok(Encoded {
            vectors: texts.iter().filter_map(|t| seen.get(t).cloned()).collect(),
            batch: 1,
        })
    }
}
