//! Why a query cannot be answered.

use crate::encode::EncodeError;
use crate::mapped::OpenError;

/// Why a query cannot be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Lexical search on a bundle without a lexical index.
    #[error(
        "this bundle has no lexical index (it was built by a shelf older than format 1.1): rebuild it, or use mode=semantic"
    )]
    NoLexicalIndex,
    /// The bundle failed underneath.
    #[error(transparent)]
    Bundle(#[from] OpenError),
    /// The query could not be embedded.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// A request that is not a valid query, named parameter by parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A parameter is missing, malformed or out of range.
    #[error("{0}")]
    Invalid(String),
    /// The query text is over the length limit.
    #[error("{0}")]
    TooLong(String),
}

impl RequestError {
    /// The message.
    pub fn message(&self) -> &str {
        match self {
            RequestError::Invalid(m) | RequestError::TooLong(m) => m,
        }
    }
}
