//! The one embedder: builder and server both turn text into vectors here, so
//! a bundle's vectors and a query's vector come from the same code and model.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use sha2::{Digest as _, Sha256};
use shelf_formats::ModelIdentity;

use crate::model::{ModelSpec, ModelSpecError};
use crate::runtime::{Pin, Runtime, RuntimeError, SETUP_COMMAND, pins};

/// Name recorded in bundles for the provisioned model.
pub const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";
/// Its vector dimensions.
pub const DIMENSIONS: usize = 384;
/// Its token limit (as trained by sentence-transformers).
pub const MAX_TOKENS: usize = 256;

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The runtime is missing or not the pinned one.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// ONNX Runtime could not be loaded.
    #[error(
        "cannot load the ONNX Runtime library {}: {detail}; run `{SETUP_COMMAND} --force`",
        path.display()
    )]
    Library {
        /// The library path.
        path: PathBuf,
        /// What ort said.
        detail: String,
    },
    /// The model or tokenizer failed to load, or inference failed.
    #[error("embedding model error: {0}")]
    Model(String),
    /// A model directory (`--model`) cannot be used.
    #[error(transparent)]
    Spec(#[from] ModelSpecError),
}

/// Tuning that does not change results.
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    /// Threads ONNX Runtime uses inside one inference (default: all cores).
    /// The builder runs one inference at a time with all cores rather than
    /// many single-threaded ones: on 2 cores that measured faster and keeps
    /// one copy of the activations in memory.
    pub intra_threads: Option<usize>,
    /// Texts per inference call.
    pub batch_size: usize,
    /// A model directory with a `shelf-model.toml` to use instead of the
    /// provisioned default (see `model.rs`).
    pub model: Option<PathBuf>,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self {
            intra_threads: None,
            batch_size: 32,
            model: None,
        }
    }
}

/// A loaded model. Shareable across threads; inference calls are serialised
/// (one ONNX session, which already uses every core it was given).
pub struct Embedder {
    model: Mutex<TextEmbedding>,
    /// The model's tokenizer without truncation or padding, for counting.
    counter: tokenizers::Tokenizer,
    identity: ModelIdentity,
    batch_size: usize,
}

/// The model files, read, and what the identity needs beyond them.
struct ModelFiles {
    onnx: Vec<u8>,
    tokenizer: Vec<u8>,
    config: Vec<u8>,
    special: Vec<u8>,
    tok_config: Vec<u8>,
    name: String,
    dimensions: u32,
    pooling: Pooling,
    max_tokens: u32,
    query_prefix: String,
    document_prefix: String,
}

impl ModelFiles {
    /// The provisioned default, each file checked against its pin.
    fn provisioned(runtime: &Runtime) -> Result<Self, EmbedError> {
        Ok(Self {
            onnx: read_pinned(runtime, &pin_for("model/model.onnx")?)?,
            tokenizer: read_pinned(runtime, &pin_for("model/tokenizer.json")?)?,
            config: read_pinned(runtime, &pin_for("model/config.json")?)?,
            special: read_pinned(runtime, &pin_for("model/special_tokens_map.json")?)?,
            tok_config: read_pinned(runtime, &pin_for("model/tokenizer_config.json")?)?,
            name: MODEL_NAME.into(),
            dimensions: DIMENSIONS as u32,
            pooling: Pooling::Mean,
            max_tokens: MAX_TOKENS as u32,
            query_prefix: String::new(),
            document_prefix: String::new(),
        })
    }

    /// A model directory: its files are not pinned (they are the user's);
    /// their hashes go into the identity instead.
    fn custom(dir: &Path) -> Result<Self, EmbedError> {
        let spec = ModelSpec::read(dir)?;
        let read = |p: &Path| {
            std::fs::read(p).map_err(|e| {
                EmbedError::Spec(ModelSpecError {
                    path: p.to_path_buf(),
                    detail: format!("cannot read it: {e}"),
                })
            })
        };
        Ok(Self {
            onnx: read(&spec.onnx)?,
            tokenizer: read(&spec.tokenizer)?,
            config: read(&spec.config)?,
            special: read(&spec.special_tokens_map)?,
            tok_config: read(&spec.tokenizer_config)?,
            pooling: if spec.pooling == "cls" {
                Pooling::Cls
            } else {
                Pooling::Mean
            },
            name: spec.name,
            dimensions: spec.dimensions,
            max_tokens: spec.max_tokens,
            query_prefix: spec.query_prefix,
            document_prefix: spec.document_prefix,
        })
    }
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("identity", &self.identity)
            .finish()
    }
}

/// The process-wide ONNX Runtime environment. ort loads one library per
/// process; asking for a second, different one is an error, not a swap.
static ORT: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();

fn ort_environment(library: &Path) -> Result<ort::environment::Environment, EmbedError> {
    if let Some((path, env)) = ORT.get() {
        if path == library {
            return Ok(env.clone());
        }
        return Err(EmbedError::Library {
            path: library.to_path_buf(),
            detail: format!(
                "this process already loaded {}; one ONNX Runtime per process",
                path.display()
            ),
        });
    }
    let lib_err = |detail: String| EmbedError::Library {
        path: library.to_path_buf(),
        detail,
    };
    let env = ort::init_from(library)
        .map_err(|e| lib_err(e.to_string()))?
        .with_name("shelf")
        .build()
        .map_err(|e| lib_err(e.to_string()))?;
    let _ = ORT.set((library.to_path_buf(), env.clone()));
    Ok(env)
}

/// Reads a runtime file and checks it against its pin, so what is loaded is
/// exactly what was verified.
fn read_pinned(runtime: &Runtime, pin: &Pin) -> Result<Vec<u8>, RuntimeError> {
    let path = runtime.dir.join(pin.relative);
    let bytes = std::fs::read(&path).map_err(|_| RuntimeError::MissingFile {
        what: pin.what(),
        path: path.clone(),
    })?;
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != pin.sha256 {
        return Err(RuntimeError::WrongFile {
            what: pin.what(),
            path,
            expected: pin.sha256.to_string(),
            actual,
        });
    }
    Ok(bytes)
}

fn pin_for(relative: &str) -> Result<Pin, EmbedError> {
    pins()
        .into_iter()
        .find(|p| p.relative == relative)
        .ok_or_else(|| EmbedError::Model(format!("no pin for {relative} in runtime.sha256")))
}

impl Embedder {
    /// Verifies the runtime's pinned files, then loads ONNX Runtime and the
    /// model. Never panics on a missing or wrong runtime: that is an error
    /// naming the file and the setup command.
    pub fn load(runtime: &Runtime, options: &EmbedderOptions) -> Result<Self, EmbedError> {
        let started = std::time::Instant::now();
        // The library is checked by hash before ort opens it: a wrong one
        // could abort the process inside ort.
        let lib_pin = pins()
            .into_iter()
            .find(|p| p.relative.starts_with("lib/"))
            .ok_or_else(|| EmbedError::Model("no library pin in runtime.sha256".into()))?;
        read_pinned(runtime, &lib_pin)?;
        let files = match &options.model {
            None => ModelFiles::provisioned(runtime)?,
            Some(dir) => ModelFiles::custom(dir)?,
        };
        let verified_ms = started.elapsed().as_millis() as u64;
        let identity = ModelIdentity {
            name: files.name,
            dimensions: files.dimensions,
            pooling: match files.pooling {
                Pooling::Cls => "cls".into(),
                Pooling::Mean => "mean".into(),
            },
            normalized: true,
            max_tokens: files.max_tokens,
            onnx_sha256: Sha256::digest(&files.onnx).into(),
            tokenizer_sha256: Sha256::digest(&files.tokenizer).into(),
            query_prefix: files.query_prefix,
            document_prefix: files.document_prefix,
        };

        let env = ort_environment(&runtime.dir.join(lib_pin.relative))?;
        let model = UserDefinedEmbeddingModel::new(
            files.onnx,
            TokenizerFiles {
                tokenizer_file: files.tokenizer,
                config_file: files.config,
                special_tokens_map_file: files.special,
                tokenizer_config_file: files.tok_config,
            },
        )
        .with_pooling(files.pooling);
        let mut init = InitOptionsUserDefined::new()
            .with_environment(env)
            .with_max_length(files.max_tokens as usize);
        if let Some(n) = options.intra_threads {
            init = init.with_intra_threads(n);
        }
        let session_started = std::time::Instant::now();
        let model = TextEmbedding::try_new_from_user_defined(model, init)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        let mut counter = model.tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        counter.with_padding(None);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            read_and_verify_ms = verified_ms,
            session_ms = session_started.elapsed().as_millis() as u64,
            "embedding model loaded"
        );
        Ok(Self {
            model: Mutex::new(model),
            counter,
            identity,
            batch_size: options.batch_size.max(1),
        })
    }

    /// The identity recorded in bundles built with this embedder.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// Embeds texts as given; one L2-normalised vector per text, in order.
    fn embed_raw<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let mut model = self
            .model
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        model
            .embed(texts, Some(self.batch_size))
            .map_err(|e| EmbedError::Model(e.to_string()))
    }

    fn with_prefix<S: AsRef<str>>(prefix: &str, texts: &[S]) -> Vec<String> {
        texts
            .iter()
            .map(|t| format!("{prefix}{}", t.as_ref()))
            .collect()
    }

    /// Embeds chunks (what bundles store): the model's document prefix, if
    /// any, is prepended. One L2-normalised vector per text, in order.
    pub fn embed_documents<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.identity.document_prefix.is_empty() {
            return self.embed_raw(texts);
        }
        self.embed_raw(&Self::with_prefix(&self.identity.document_prefix, texts))
    }

    /// Embeds queries: the model's query prefix, if any, is prepended.
    pub fn embed_queries<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.identity.query_prefix.is_empty() {
            return self.embed_raw(texts);
        }
        self.embed_raw(&Self::with_prefix(&self.identity.query_prefix, texts))
    }

    /// Embeds one query.
    pub fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed_queries(&[text])?
            .pop()
            .ok_or_else(|| EmbedError::Model("the model returned no vector".into()))
    }

    /// Tokens the document prefix adds to every chunk (chunkers leave room
    /// for them).
    pub fn document_prefix_tokens(&self) -> usize {
        if self.identity.document_prefix.is_empty() {
            return 0;
        }
        self.token_spans(&self.identity.document_prefix)
            .map(|s| s.len())
            .unwrap_or(0)
    }

    /// Byte ranges of the model tokens of `text`, without special tokens and
    /// without truncation: what chunkers measure length with.
    pub fn token_spans(&self, text: &str) -> Result<Vec<(usize, usize)>, EmbedError> {
        self.counter
            .encode(text, false)
            .map(|enc| enc.get_offsets().to_vec())
            .map_err(|e| EmbedError::Model(e.to_string()))
    }

    /// How many model tokens `text` becomes (with special tokens, before
    /// truncation): the chunker's measure of length.
    /// Needs no lock, so chunkers can count on every core at once.
    pub fn count_tokens(&self, text: &str) -> Result<usize, EmbedError> {
        self.counter
            .encode(text, true)
            .map(|enc| enc.get_ids().len())
            .map_err(|e| EmbedError::Model(e.to_string()))
    }
}
