//! Query vectors: what to embed for a query ([`windows`]) and who embeds it
//! ([`QueryEncoder`]). The engine only says what to embed; a caller brings
//! the model: the CLI and evaluations embed in-process with the
//! [`Embedder`], the server through its pool of model threads.

use shelf_embed::Embedder;
use shelf_formats::ModelIdentity;

/// Query windows embedded at most (each one model call's worth of tokens).
pub const MAX_WINDOWS: usize = 4;

/// Why a query could not be embedded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EncodeError {
    /// The model is at capacity; retrying shortly may work.
    #[error("the embedding queue is full; retry shortly")]
    Busy,
    /// The model failed.
    #[error("embedding the query failed: {0}")]
    Failed(String),
}

/// Vectors for a query's windows.
#[derive(Debug, Clone, Default)]
pub struct Encoded {
    /// One L2-normalised vector per window, in order.
    pub vectors: Vec<Vec<f32>>,
    /// The largest model call any window was part of (1 when embedded
    /// alone), for metrics.
    pub batch: usize,
}

/// Turns query text into vectors of one model.
pub trait QueryEncoder: Send + Sync {
    /// The model, which must match every bundle searched with it.
    fn identity(&self) -> &ModelIdentity;
    /// Byte ranges of the model tokens of `text` (without special tokens).
    fn token_spans(&self, text: &str) -> Vec<(usize, usize)>;
    /// Embeds each text as a query (the model's query prefix applied).
    fn encode(&self, texts: &[String]) -> Result<Encoded, EncodeError>;
}

impl QueryEncoder for Embedder {
    fn identity(&self) -> &ModelIdentity {
        Embedder::identity(self)
    }

    fn token_spans(&self, text: &str) -> Vec<(usize, usize)> {
        Embedder::token_spans(self, text).unwrap_or_default()
    }

    fn encode(&self, texts: &[String]) -> Result<Encoded, EncodeError> {
        let vectors = self
            .embed_queries(texts)
            .map_err(|e| EncodeError::Failed(e.to_string()))?;
        Ok(Encoded {
            batch: texts.len(),
            vectors,
        })
    }
}

/// The texts to embed for `query`: the query itself when it fits the model,
/// else consecutive windows of it (each the model's limit less its special
/// tokens and the query prefix), at most `max_windows`.
pub fn windows(encoder: &dyn QueryEncoder, query: &str, max_windows: usize) -> Vec<String> {
    let identity = encoder.identity();
    let prefix = encoder.token_spans(&identity.query_prefix).len();
    let window = (identity.max_tokens as usize)
        .saturating_sub(2 + prefix)
        .max(16);
    let spans = encoder.token_spans(query);
    if spans.len() <= window || max_windows <= 1 {
        return vec![query.to_string()];
    }
    spans
        .chunks(window)
        .take(max_windows)
        .filter_map(|w| {
            let (start, end) = (w.first()?.0, w.last()?.1);
            query.get(start..end).map(str::to_string)
        })
        .collect()
}
