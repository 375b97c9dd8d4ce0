//! The one embedder: builder and server both turn text into vectors here, so
//! a bundle's vectors and a query's vector come from the same code and model.
//!
//! **Every text is its own model call**, unpadded, on one of several
//! single-threaded ONNX sessions that run in parallel. The default model is
//! dynamically quantised: its activation scales are computed over the whole
//! input tensor, so in a padded batch a text's vector would depend on its
//! neighbours and on the padding (by up to 0.02 per component, measured).
//! Alone, it depends only on the text: a chunk embedded in a cold build, in
//! an incremental one or as a query gets the same bits (tested in
//! `embed/tests/embedder.rs`). One session per core keeps the cores busy
//! without batches, and single-threaded calls waste nothing on
//! synchronising a thread pool over a short query.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError, TryLockError};

use fastembed::{
    InitOptionsUserDefined, Pooling, TextEmbedding, TokenizerFiles, UserDefinedEmbeddingModel,
};
use sha2::{Digest as _, Sha256};
use shelf_formats::ModelIdentity;

use crate::model::{ModelSpec, ModelSpecError};
use crate::runtime::{Pin, Runtime, RuntimeError, SETUP_COMMAND, pins};

/// Name recorded in bundles for the provisioned default model:
/// all-MiniLM-L6-v2 with int8 weights per output channel and dynamically
/// quantised activations (`scripts/quantize_minilm.py`). Its own name (not
/// only its file hash) so a "wrong model" error says what differs.
pub const MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2:int8-per-channel";
/// Name of the provisioned fp32 model (`.runtime/model-fp32`, selected with
/// `--model`): the name bundles built before int8 became the default carry.
pub const FP32_MODEL_NAME: &str = "sentence-transformers/all-MiniLM-L6-v2";
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

/// How the model runs. The layout (sessions, threads) does not change a
/// single bit of any vector (tested); `batch_size` above 1 does.
#[derive(Debug, Clone)]
pub struct EmbedderOptions {
    /// Threads ONNX Runtime uses inside one session (default 1). One thread
    /// per call and one session per core measured faster than one session
    /// with every core, for chunks and for queries (docs/benchmarks.md).
    pub intra_threads: Option<usize>,
    /// Sessions that embed in parallel (default: the cores divided by
    /// `intra_threads`, at least one). Each holds its own copy of the
    /// weights (23 MB int8, 90 MB fp32).
    pub sessions: Option<usize>,
    /// Texts per model call. 1, the default and what shelf uses everywhere,
    /// embeds every text alone and unpadded. Larger values pad a batch to
    /// its longest text in one call; they exist to measure what batching
    /// would gain, and with a dynamically quantised model (the default)
    /// they make a vector depend on its batch neighbours (tested).
    pub batch_size: usize,
    /// A model directory with a `shelf-model.toml` to use instead of the
    /// provisioned default (see `model.rs`).
    pub model: Option<PathBuf>,
}

impl Default for EmbedderOptions {
    fn default() -> Self {
        Self {
            intra_threads: None,
            sessions: None,
            batch_size: 1,
            model: None,
        }
    }
}

impl EmbedderOptions {
    /// The (sessions, threads per session) these options ask for on this
    /// machine.
    pub fn layout(&self) -> (usize, usize) {
        let threads = self.intra_threads.unwrap_or(1).max(1);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let sessions = self.sessions.unwrap_or(cores / threads).max(1);
        (sessions, threads)
    }
}

/// The vectors of one model call, with the call's index.
type CallVectors = (usize, Vec<Vec<f32>>);

/// A loaded model. Shareable across threads: each call takes a free session
/// (or waits for one), so as many calls run at once as there are sessions.
pub struct Embedder {
    sessions: Vec<Mutex<TextEmbedding>>,
    /// Where the next single call starts looking for a free session, so
    /// calls from several threads spread over the sessions.
    next_session: AtomicUsize,
    /// The model's tokenizer without truncation or padding, for counting.
    counter: tokenizers::Tokenizer,
    identity: ModelIdentity,
    batch_size: usize,
    intra_threads: usize,
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
        // Every call tokenizes one text; with its parallelism on, tokenizers
        // would hand even that to rayon's pool and wait for the answer: a
        // thread handoff and a spinning pool per query. Process-wide, and
        // only batch encodes use it (chunkers count tokens one text at a
        // time on their own threads).
        tokenizers::utils::parallelism::set_parallelism(false);
        let (sessions, threads) = options.layout();
        let init = InitOptionsUserDefined::new()
            .with_environment(env)
            .with_max_length(files.max_tokens as usize)
            .with_intra_threads(threads);
        let session_started = std::time::Instant::now();
        // Sessions are created in parallel: each one optimises the graph and
        // prepacks its weights, which is most of a model's load time.
        let loaded: Vec<Result<TextEmbedding, EmbedError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..sessions)
                .map(|_| {
                    let (model, init) = (model.clone(), init.clone());
                    scope.spawn(move || {
                        TextEmbedding::try_new_from_user_defined(model, init)
                            .map_err(|e| EmbedError::Model(e.to_string()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EmbedError::Model(
                            "creating an ONNX session panicked".into(),
                        ))
                    })
                })
                .collect()
        });
        let sessions = loaded.into_iter().collect::<Result<Vec<_>, _>>()?;
        let first = sessions
            .first()
            .ok_or_else(|| EmbedError::Model("no ONNX session was created".into()))?;
        let mut counter = first.tokenizer.clone();
        counter
            .with_truncation(None)
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        counter.with_padding(None);
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            read_and_verify_ms = verified_ms,
            session_ms = session_started.elapsed().as_millis() as u64,
            sessions = sessions.len(),
            threads_per_session = threads,
            "embedding model loaded"
        );
        Ok(Self {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next_session: AtomicUsize::new(0),
            counter,
            identity,
            batch_size: options.batch_size.max(1),
            intra_threads: threads,
        })
    }

    /// Sessions that can embed at once.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// ONNX Runtime threads inside each session.
    pub fn threads_per_session(&self) -> usize {
        self.intra_threads
    }

    /// A free session, starting the search at `start`; waits for that one
    /// when all are busy.
    fn session(&self, start: usize) -> MutexGuard<'_, TextEmbedding> {
        let n = self.sessions.len();
        for k in 0..n {
            match self.sessions[(start + k) % n].try_lock() {
                Ok(guard) => return guard,
                // A panic inside ort while a session was held leaves the
                // session itself usable: its state is per call.
                Err(TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.sessions[start % n]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One model call over `texts` (one text unless `batch_size` says more).
    fn call<S: AsRef<str> + Send + Sync>(
        model: &mut TextEmbedding,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let vectors = model
            .embed(texts, Some(texts.len()))
            .map_err(|e| EmbedError::Model(e.to_string()))?;
        if vectors.len() != texts.len() {
            return Err(EmbedError::Model(format!(
                "the model returned {} vectors for {} texts",
                vectors.len(),
                texts.len()
            )));
        }
        Ok(vectors)
    }

    /// The identity recorded in bundles built with this embedder.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// Embeds texts as given; one L2-normalised vector per text, in order.
    /// Calls (one per text by default) are spread over every session;
    /// `done` hears how many texts each finished call embedded.
    fn embed_raw<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let calls: Vec<&[S]> = texts.chunks(self.batch_size).collect();
        let start = self.next_session.fetch_add(1, Ordering::Relaxed);
        let workers = self.sessions.len().min(calls.len());
        if workers <= 1 {
            let mut out = Vec::with_capacity(texts.len());
            let mut model = self.session(start);
            for call in calls {
                out.extend(Self::call(&mut model, call)?);
                done(call.len());
            }
            return Ok(out);
        }
        // Workers take the next call from a shared counter, so a long text
        // holds up one session, not a precomputed share of the work.
        let next = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let results: Vec<Result<Vec<CallVectors>, EmbedError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..workers)
                .map(|w| {
                    let (calls, next, failed) = (&calls, &next, &failed);
                    scope.spawn(move || {
                        let mut model = self.session(start + w);
                        let mut mine = Vec::new();
                        while !failed.load(Ordering::Relaxed) {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(call) = calls.get(i) else { break };
                            match Self::call(&mut model, call) {
                                Ok(v) => mine.push((i, v)),
                                Err(e) => {
                                    failed.store(true, Ordering::Relaxed);
                                    return Err(e);
                                }
                            }
                            done(call.len());
                        }
                        Ok(mine)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(EmbedError::Model("an embedding worker panicked".into()))
                    })
                })
                .collect()
        });
        let mut by_call: Vec<Option<Vec<Vec<f32>>>> = (0..calls.len()).map(|_| None).collect();
        for r in results {
            for (i, v) in r? {
                by_call[i] = Some(v);
            }
        }
        let mut out = Vec::with_capacity(texts.len());
        for v in by_call {
            out.extend(v.ok_or_else(|| EmbedError::Model("a text was not embedded".into()))?);
        }
        Ok(out)
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
        self.embed_documents_with(texts, &|_| {})
    }

    /// [`Embedder::embed_documents`], calling `done(n)` as each `n` texts
    /// are embedded (from several threads at once): a build's progress.
    pub fn embed_documents_with<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
        done: &(dyn Fn(usize) + Sync),
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.identity.document_prefix.is_empty() {
            return self.embed_raw(texts, done);
        }
        self.embed_raw(
            &Self::with_prefix(&self.identity.document_prefix, texts),
            done,
        )
    }

    /// Embeds queries: the model's query prefix, if any, is prepended.
    pub fn embed_queries<S: AsRef<str> + Send + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        if self.identity.query_prefix.is_empty() {
            return self.embed_raw(texts, &|_| {});
        }
        self.embed_raw(
            &Self::with_prefix(&self.identity.query_prefix, texts),
            &|_| {},
        )
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
