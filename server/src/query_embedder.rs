//! Query embedding off the async runtime: one worker thread per session of
//! the embedder (one single-threaded ONNX session per core by default), each
//! embedding one query at a time, alone; and an LRU cache of query vectors
//! in front of them.
//!
//! No micro-batching, by choice: padded batches of 8 short queries would
//! save about 30% of a query's CPU (`shelf-bench embed`, docs/benchmarks.md),
//! but with the int8 model a query's vector would then depend on the queries
//! that happened to arrive beside it (by up to 0.02 per component), so the
//! same query could rank differently under load. Alone, a query's vector is
//! the same whatever the load, and a cached vector is exactly the one the
//! model would compute again.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use lru::LruCache;
use prometheus::{IntCounter, IntGauge};
use sha2::{Digest as _, Sha256};
use shelf_embed::{EmbedError, Embedder};
use shelf_formats::ModelIdentity;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Default bound of the query cache: 16 MiB, about 9,000 queries of a
/// 384-dimension model.
pub const DEFAULT_CACHE_BYTES: usize = 16 << 20;

/// What a cache entry costs beyond its text and vector: the key's model
/// fingerprint, the `String` and `Arc` headers and the LRU list node.
const ENTRY_OVERHEAD: usize = 128;

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
    /// Time spent waiting for a worker (zero for a cached vector).
    pub queued: Duration,
    /// Time of the model call that embedded it (zero for a cached vector).
    pub compute: Duration,
    /// Texts in that model call: 1, or 0 when the vector was cached.
    pub batch: usize,
    /// Whether the vector came from the cache.
    pub cached: bool,
}

/// How [`QueryEmbedder::start_with`] runs.
#[derive(Debug, Clone)]
pub struct QueryEmbedderOptions {
    /// Queries that may wait for a worker; more are refused as
    /// [`QueryEmbedError::Busy`].
    pub queue: usize,
    /// Bytes of query vectors (with their texts) kept; 0 turns the cache
    /// off.
    pub cache_bytes: usize,
    /// Where cache hits, misses and bytes are counted (`/metrics`); without
    /// it they are counted but not exported.
    pub metrics: Option<Metrics>,
}

impl QueryEmbedderOptions {
    /// `queue` waiting queries, the default cache, no exported metrics.
    pub fn new(queue: usize) -> Self {
        Self {
            queue,
            cache_bytes: DEFAULT_CACHE_BYTES,
            metrics: None,
        }
    }
}

/// Handle to the embedding workers; cheap to share.
#[derive(Clone)]
pub struct QueryEmbedder {
    jobs: SyncSender<Job>,
    identity: ModelIdentity,
    embedder: Arc<Embedder>,
    cache: Arc<QueryCache>,
}

impl std::fmt::Debug for QueryEmbedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEmbedder")
            .field("model", &self.identity.name)
            .field("workers", &self.embedder.sessions())
            .finish()
    }
}

/// Why a query could not be embedded.
#[derive(Debug, thiserror::Error)]
pub enum QueryEmbedError {
    /// More queries are waiting than the queue holds.
    #[error("the embedding queue is full")]
    Busy,
    /// The model failed or its workers are gone.
    #[error("embedding the query failed: {0}")]
    Failed(String),
}

impl QueryEmbedder {
    /// Starts one worker per embedder session, with the default cache.
    /// `queue` bounds waiting queries.
    pub fn start(embedder: Arc<Embedder>, queue: usize) -> std::io::Result<Self> {
        Self::start_with(embedder, QueryEmbedderOptions::new(queue))
    }

    /// Starts one worker per embedder session.
    pub fn start_with(
        embedder: Arc<Embedder>,
        options: QueryEmbedderOptions,
    ) -> std::io::Result<Self> {
        let (jobs, rx) = std::sync::mpsc::sync_channel(options.queue.max(1));
        let identity = embedder.identity().clone();
        let cache = Arc::new(QueryCache::new(
            &identity,
            options.cache_bytes,
            options.metrics.as_ref(),
        ));
        // Workers share the receiver: whichever is idle takes the next
        // query. They end when every sender (every clone) is dropped.
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..embedder.sessions() {
            let (worker, rx, cache) = (Arc::clone(&embedder), Arc::clone(&rx), Arc::clone(&cache));
            std::thread::Builder::new()
                .name(format!("shelf-embed-{i}"))
                .spawn(move || run(&worker, &rx, &cache))?;
        }
        Ok(Self {
            jobs,
            identity,
            embedder,
            cache,
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

    /// The query cache (its counters and size).
    pub fn cache(&self) -> &QueryCache {
        &self.cache
    }

    /// Embeds one query: from the cache when this exact text was embedded
    /// before, else on the next free worker.
    pub async fn embed(&self, text: String) -> Result<Embedded, QueryEmbedError> {
        if let Some(vector) = self.cache.get(&text) {
            return Ok(Embedded {
                vector: vector.to_vec(),
                queued: Duration::ZERO,
                compute: Duration::ZERO,
                batch: 0,
                cached: true,
            });
        }
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
                    "the embedding workers stopped".into(),
                ));
            }
        }
        answer
            .await
            .map_err(|_| QueryEmbedError::Failed("the embedding workers stopped".into()))?
            .map_err(QueryEmbedError::Failed)
    }

    /// Embeds several texts on the caller's thread, bypassing the queue and
    /// the cache (for warming a new model or bundle outside the request
    /// path).
    pub fn embed_now(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embedder.embed_queries(texts)
    }
}

fn run(embedder: &Embedder, jobs: &Mutex<Receiver<Job>>, cache: &QueryCache) {
    loop {
        // The lock is held only while waiting for the next job, so one idle
        // worker waits on the channel and the others on the lock.
        let job = match jobs.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        let started = Instant::now();
        let result = embedder.embed_query(&job.text);
        let compute = started.elapsed();
        let answer = result
            .map(|vector| {
                cache.insert(job.text, &vector);
                Embedded {
                    vector,
                    queued: started.saturating_duration_since(job.queued),
                    compute,
                    batch: 1,
                    cached: false,
                }
            })
            .map_err(|e| e.to_string());
        // The client may have gone; the vector is cached all the same.
        let _ = job.reply.send(answer);
    }
}

/// Query vectors by model identity and exact text, least recently used
/// evicted first, bounded by the bytes of texts and vectors it holds.
pub struct QueryCache {
    /// sha256 of the model identity: part of every key, so a vector is
    /// never answered for another model's query.
    model: [u8; 32],
    capacity: usize,
    inner: Mutex<CacheInner>,
    hits: AtomicU64,
    misses: AtomicU64,
    /// Entries, for [`QueryCache::len`] without taking the lock.
    entries: AtomicUsize,
    exported: Option<Exported>,
}

/// The cache's series in `/metrics`.
struct Exported {
    hits: IntCounter,
    misses: IntCounter,
    bytes: IntGauge,
}

struct CacheInner {
    map: LruCache<CacheKey, Arc<[f32]>>,
    bytes: usize,
}

#[derive(Debug, PartialEq, Eq)]
struct CacheKey {
    model: [u8; 32],
    text: String,
}

impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // The model part is the same in every key of one cache: hashing
        // the text alone spreads keys just as well.
        self.text.hash(state);
    }
}

impl std::fmt::Debug for QueryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryCache")
            .field("capacity", &self.capacity)
            .field("entries", &self.len())
            .finish()
    }
}

impl QueryCache {
    /// An empty cache of at most `capacity` bytes for `model`'s vectors,
    /// counting into `metrics` when given.
    pub fn new(model: &ModelIdentity, capacity: usize, metrics: Option<&Metrics>) -> Self {
        // Serialising a plain struct of strings and numbers cannot fail;
        // were it to, every key would share the empty fingerprint, which
        // is still one model per cache.
        let fingerprint = Sha256::digest(serde_json::to_vec(model).unwrap_or_default()).into();
        Self {
            model: fingerprint,
            capacity,
            inner: Mutex::new(CacheInner {
                map: LruCache::unbounded(),
                bytes: 0,
            }),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            entries: AtomicUsize::new(0),
            exported: metrics.map(|m| Exported {
                hits: m.query_cache_hits.clone(),
                misses: m.query_cache_misses.clone(),
                bytes: m.query_cache_bytes.clone(),
            }),
        }
    }

    fn key(&self, text: &str) -> CacheKey {
        CacheKey {
            model: self.model,
            text: text.to_string(),
        }
    }

    fn cost(text: &str, dimensions: usize) -> usize {
        text.len() + dimensions * std::mem::size_of::<f32>() + ENTRY_OVERHEAD
    }

    /// The cached vector of `text`, counting a hit or a miss.
    pub fn get(&self, text: &str) -> Option<Arc<[f32]>> {
        if self.capacity == 0 {
            return None;
        }
        let key = self.key(text);
        let found = self
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .map
            .get(&key)
            .cloned();
        let (count, series) = match (&found, &self.exported) {
            (Some(_), e) => (&self.hits, e.as_ref().map(|e| &e.hits)),
            (None, e) => (&self.misses, e.as_ref().map(|e| &e.misses)),
        };
        count.fetch_add(1, Ordering::Relaxed);
        if let Some(series) = series {
            series.inc();
        }
        found
    }

    /// Keeps `vector` as `text`'s, evicting the least recently used
    /// entries beyond the bound. An entry larger than the whole bound is
    /// not kept.
    pub fn insert(&self, text: String, vector: &[f32]) {
        let cost = Self::cost(&text, vector.len());
        if cost > self.capacity {
            return;
        }
        let key = CacheKey {
            model: self.model,
            text,
        };
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((old_key, old)) = inner.map.push(key, Arc::from(vector)) {
            // `push` hands back the replaced entry of the same key (two
            // workers embedded one text at once): same cost, freed.
            inner.bytes -= Self::cost(&old_key.text, old.len());
        }
        inner.bytes += cost;
        while inner.bytes > self.capacity {
            let Some((k, v)) = inner.map.pop_lru() else {
                break;
            };
            inner.bytes -= Self::cost(&k.text, v.len());
        }
        self.entries.store(inner.map.len(), Ordering::Relaxed);
        if let Some(e) = &self.exported {
            e.bytes.set(inner.bytes as i64);
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held, as the bound counts them.
    pub fn bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .bytes
    }

    /// Lookups answered from the cache so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups the model had to answer so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

/// The engine embeds through the workers: a query's windows are queued
/// together (each embedded alone, on whichever worker is free), and the
/// caller blocks until they come back. Called
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

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(name: &str) -> ModelIdentity {
        let mut model = shelf_testkit::sample_manifest("c0ffee").model;
        model.name = name.into();
        model
    }

    fn embedder() -> Arc<Embedder> {
        let rt = shelf_embed::Runtime::locate(None).expect("runtime: run scripts/setup first");
        Arc::new(
            Embedder::load(&rt, &shelf_embed::EmbedderOptions::default()).expect("embedder loads"),
        )
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_cache_stays_within_its_bytes_and_evicts_the_least_recently_used() {
        let one = QueryCache::cost("q0", 4);
        let cache = QueryCache::new(&identity("m"), 3 * one, None);
        for q in ["q0", "q1", "q2"] {
            cache.insert(q.into(), &[1.0, 2.0, 3.0, 4.0]);
        }
        assert_eq!((cache.len(), cache.bytes()), (3, 3 * one));
        assert!(cache.get("q0").is_some(), "q0 is now the most recent");
        cache.insert("q3".into(), &[0.0; 4]);
        assert_eq!(cache.len(), 3);
        assert!(cache.bytes() <= 3 * one);
        assert!(cache.get("q1").is_none(), "the least recently used went");
        assert!(cache.get("q0").is_some() && cache.get("q3").is_some());
        // Inserting a text again replaces it without counting it twice.
        cache.insert("q3".into(), &[5.0; 4]);
        assert_eq!(cache.bytes(), 3 * one);
        assert_eq!(cache.get("q3").as_deref(), Some(&[5.0f32; 4][..]));
        // An entry larger than the whole bound is not kept.
        cache.insert("x".repeat(4 * one), &[0.0; 4]);
        assert!(cache.get(&"x".repeat(4 * one)).is_none());
        assert_eq!((cache.hits(), cache.misses()), (4, 2));
        // Exact text: a different space is a different query.
        assert!(cache.get("q0 ").is_none());
    }

    #[test]
    fn a_disabled_cache_keeps_nothing_and_counts_nothing() {
        let cache = QueryCache::new(&identity("m"), 0, None);
        cache.insert("q".into(), &[1.0]);
        assert!(cache.get("q").is_none());
        assert_eq!((cache.len(), cache.hits(), cache.misses()), (0, 0, 0));
    }

    #[test]
    fn caches_of_different_models_key_their_vectors_apart() {
        let a = QueryCache::new(&identity("model-a"), 1 << 20, None);
        let b = QueryCache::new(&identity("model-b"), 1 << 20, None);
        assert_ne!(a.model, b.model);
        assert_ne!(a.key("same text"), b.key("same text"));
        assert_eq!(a.key("same text"), a.key("same text"));
    }

    #[test]
    fn a_repeated_query_is_answered_from_the_cache_with_the_same_bits_and_counted() {
        let metrics = Metrics::new().unwrap();
        let embedder = embedder();
        let expected = embedder.embed_query("where are tags moved").unwrap();
        let qe = QueryEmbedder::start_with(
            Arc::clone(&embedder),
            QueryEmbedderOptions {
                metrics: Some(metrics.clone()),
                ..QueryEmbedderOptions::new(8)
            },
        )
        .unwrap();
        let (first, second) = block_on(async {
            let first = qe.embed("where are tags moved".into()).await.unwrap();
            let second = qe.embed("where are tags moved".into()).await.unwrap();
            (first, second)
        });
        assert!(!first.cached && second.cached);
        assert_eq!((first.batch, second.batch), (1, 0));
        assert_eq!(first.vector, expected);
        assert_eq!(second.vector, expected);
        assert_eq!((qe.cache().hits(), qe.cache().misses()), (1, 1));
        let text = String::from_utf8(metrics.render().unwrap()).unwrap();
        for line in [
            "shelf_query_cache_hits_total 1",
            "shelf_query_cache_misses_total 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
        assert!(text.contains("shelf_query_cache_bytes "), "{text}");
    }

    #[test]
    fn concurrent_queries_get_the_bits_they_get_alone() {
        let embedder = embedder();
        assert!(embedder.sessions() >= 1);
        let queries: Vec<String> = (0..24)
            .map(|i| format!("how is request {i} retried after a timeout"))
            .collect();
        let alone: Vec<Vec<f32>> = queries
            .iter()
            .map(|q| embedder.embed_query(q).unwrap())
            .collect();
        let qe = QueryEmbedder::start(Arc::clone(&embedder), 64).unwrap();
        let answers = block_on(futures_util::future::join_all(
            queries.iter().map(|q| qe.embed(q.clone())),
        ));
        for (a, expected) in answers.into_iter().zip(&alone) {
            let a = a.unwrap();
            assert!(!a.cached);
            assert_eq!(&a.vector, expected, "same bits under load as alone");
        }
        assert_eq!(qe.cache().len(), queries.len());
    }

    #[test]
    fn a_full_queue_is_busy_not_a_wait() {
        let embedder = embedder();
        let qe = QueryEmbedder::start_with(
            embedder,
            QueryEmbedderOptions {
                cache_bytes: 0,
                ..QueryEmbedderOptions::new(1)
            },
        )
        .unwrap();
        let long = "a long query that keeps a worker busy ".repeat(30);
        let answers = block_on(futures_util::future::join_all(
            (0..64).map(|i| qe.embed(format!("{long} {i}"))),
        ));
        let busy = answers
            .iter()
            .filter(|a| matches!(a, Err(QueryEmbedError::Busy)))
            .count();
        assert!(busy > 0, "64 queries at once into a queue of one");
        assert!(answers.iter().any(Result::is_ok));
    }
}
