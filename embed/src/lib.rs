//! The embedding side of shelf, shared by builder and server: finding and
//! verifying the provisioned runtime (ONNX Runtime + model), and the one
//! [`Embedder`] that turns text into vectors.

pub mod embedder;
pub mod model;
pub mod runtime;

pub use embedder::{
    DIMENSIONS, EmbedError, Embedder, EmbedderOptions, FP32_MODEL_NAME, MAX_TOKENS, MODEL_NAME,
};
pub use model::{ModelSpec, ModelSpecError};
pub use runtime::{Runtime, RuntimeError};
