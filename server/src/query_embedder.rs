//! Query embedding off the async runtime, with micro-batching: one thread
//! owns the model; queries that arrive while it is busy are embedded
//! together in its next call. A lone query waits for nothing, and under load
//! the model runs few large calls instead of many small ones, which is what
//! keeps tail latency flat on a small machine.
//!
//! Batching does not change results: the embedder gives a text the same
//! vector alone or beside others (tested in `embed/tests/embedder.rs`).

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use shelf_embed::{EmbedError, Embedder};
use shelf_formats::ModelIdentity;
use tokio::sync::oneshot;

/// Most queries embedded in one model call.
pub const MAX_BATCH: usize = 16;

struct Job {
    text: String,
    queued: Instant,
    reply: oneshot::Sender<Result<Embedded, String>>,
}

/// A query's vector and what it cost.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The vector.
    pub vector: Vec<f32>,
    /// Time spent waiting for the model thread.
    pub queued: Duration,
    /// Time of the model call that embedded it (shared with its batch).
    pub compute: Duration,
    /// Queries in that call.
    pub batch: usize,
}

/// Handle to the embedding thread; cheap to share.
#[derive(Clone)]
pub struct QueryEmbedder {
    jobs: SyncSender<Job>,
    identity: ModelIdentity,
    embedder: Arc<Embedder>,
}

impl std::fmt::Debug for QueryEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEmbedder")
            .field("model", &self.identity.name)
            .finish()
    }
}

/// Why a query could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum QueryEmbedError {
    /// More queries are waiting than the thread's queue holds.
    #[error("the embedding queue is full")]
    Busy,
    /// The model failed or its thread is gone.
    #[error("embedding the query failed: {0}")]
    Failed(String),
}

impl QueryEmbedder {
    /// Starts the model thread. `queue` bounds waiting queries.
    pub fn start(embedder: Arc<Embedder>, queue: usize) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel(queue.max(1));
        let identity = embedder.identity().clone();
        let worker = Arc::clone(&embedder);
        std::thread::Builder::new()
            .name("shelf-embed".into())
            .spawn(move || run(&worker, &rx))?;
        Ok(Self {
            jobs,
            identity,
            embedder,
        })
    }

    /// The model's identity.
    pub fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    /// The embedder itself (for token counting; never for inference on the
    /// async runtime).
    pub fn embedder(&self) -> &Arc<Embedder> {
        &self.embedder
    }

    /// Embeds one query.
    pub async fn embed(&self, text: String) -> Result<Embedded, QueryEmbedError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            text,
            queued: Instant::now(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(QueryEmbedError::Busy),
            Err(TrySendError::Disconnected(_)) => {
                return Err(QueryEmbedError::Failed(
                    "the embedding thread stopped".into(),
                ));
            }
        }
        answer
            .await
            .map_err(|_| QueryEmbedError::Failed("the embedding thread stopped".into()))?
            .map_err(QueryEmbedError::Failed)
    }

    /// Embeds several texts in one call, on the caller's thread (for
    /// warming a new model or bundle outside the request path).
    pub fn embed_now(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embedder.embed_queries(texts)
    }
}

fn run(embedder: &Embedder, jobs: &Receiver<Job>) {
    // Ends when every sender (every `QueryEmbedder` clone) is dropped.
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let texts: Vec<&str> = batch.iter().map(|j| j.text.as_str()).collect();
        let result = embedder.embed_queries(&texts);
        let compute = started.elapsed();
        let size = batch.len();
        match result {
            Ok(vectors) if vectors.len() == size => {
                for (job, vector) in batch.into_iter().zip(vectors) {
                    let _ = job.reply.send(Ok(Embedded {
                        vector,
                        queued: started.saturating_duration_since(job.queued),
                        compute,
                        batch: size,
                    }));
                }
            }
            Ok(vectors) => {
                let msg = format!(
                    "the model returned {} vectors for {size} texts",
                    vectors.len()
                );
                for job in batch {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
            Err(e) => {
                let msg = e.to_string();
                for job in batch {
                    let _ = job.reply.send(Err(msg.clone()));
                }
            }
        }
    }
}

/// The engine embeds through the model thread: a query's windows are
/// queued together (so they share model calls with each other and with
/// other requests), and the caller blocks until they come back. Called
/// from a blocking thread (`spawn_blocking`), never from the async runtime.
impl shelf_search::QueryEncoder for QueryEmbedder {
    fn identity(&self) -> &ModelIdentity {
        &self.identity
    }

    fn token_spans(&self, text: &str) -> Vec<(usize, usize)> {
        self.embedder.token_spans(text).unwrap_or_default()
    }

    fn encode(&self, texts: &[String]) -> Result<shelf_search::Encoded, shelf_search::EncodeError> {
        let answers = tokio::runtime::Handle::current().block_on(futures_util::future::join_all(
            texts.iter().map(|t| self.embed(t.clone())),
        ));
        let mut out = shelf_search::Encoded::default();
        for a in answers {
            let a = a.map_err(|e| match e {
                QueryEmbedError::Busy => shelf_search::EncodeError::Busy,
                QueryEmbedError::Failed(m) => shelf_search::EncodeError::Failed(m),
            })?;
            out.batch = out.batch.max(a.batch);
            out.vectors.push(a.vector);
        }
        Ok(out)
    }
}
