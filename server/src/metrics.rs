//! Prometheus metrics, in the classic text exposition format at
//! `GET /metrics`. Names and labels are part of the API (docs/api.md).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: fine below 10 ms, where queries should be.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0,
];

/// Every metric the server exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `shelf_http_requests_total{route,status}`.
    pub requests: IntCounterVec,
    /// `shelf_http_request_duration_seconds{route,status}`.
    pub request_seconds: HistogramVec,
    /// `shelf_http_in_flight_requests`.
    pub in_flight: IntGauge,
    /// `shelf_http_rejected_total{reason}`: rate_limited, overloaded,
    /// unauthorized, too_many_connections.
    pub rejected: IntCounterVec,
    /// `shelf_query_stage_seconds{stage}`: embed, search.
    pub stage_seconds: HistogramVec,
    /// `shelf_query_embed_batch_size` (last batch).
    pub embed_batch: IntGauge,
    /// `shelf_query_cache_hits_total`: query texts whose vector was cached.
    pub query_cache_hits: IntCounter,
    /// `shelf_query_cache_misses_total`: query texts embedded by the model.
    pub query_cache_misses: IntCounter,
    /// `shelf_query_cache_bytes`: what the cached query vectors take.
    pub query_cache_bytes: IntGauge,
    /// `shelf_bundle_info{repo,digest,tag,commit}` = 1 for each live bundle.
    pub bundle_info: IntGaugeVec,
    /// `shelf_bundle_live_since_seconds{repo}`: Unix time it went live.
    pub live_since: GaugeVec,
    /// `shelf_bundle_chunks{repo}`.
    pub bundle_chunks: IntGaugeVec,
    /// `shelf_ready` (1 when at least one repository is live).
    pub ready: IntGauge,
    /// `shelf_degraded` (1 when serving but a repository is not at its
    /// tag's target, or its store cannot be read).
    pub degraded: IntGauge,
    /// `shelf_repository_ready{repo}` (1 when that repository is live).
    pub repo_ready: IntGaugeVec,
    /// `shelf_repository_degraded{repo}` (1 when it serves but not its
    /// target, or its store cannot be read).
    pub repo_degraded: IntGaugeVec,
    /// `shelf_repositories`: repositories served (live or not).
    pub repositories: IntGauge,
    /// `shelf_bundle_swaps_total{repo}`.
    pub swaps: IntCounterVec,
    /// `shelf_bundle_load_failures_total{repo,reason}`.
    pub load_failures: IntCounterVec,
    /// `shelf_store_errors_total{repo}`.
    pub store_errors: IntCounterVec,
    /// `shelf_tag_checks_total{repo,result}`: unchanged, changed, waiting,
    /// error.
    pub tag_checks: IntCounterVec,
    /// `shelf_task_failures_total{task,repo,reason}`: a long-lived task
    /// (`follower`, `root_watcher`; `repo` empty for the latter) stopped,
    /// by `reason` (`panic`, `ended`), and was started again.
    pub task_failures: IntCounterVec,
}

/// The metrics of one repository: every series it owns carries its name as
/// the `repo` label, and is removed with it.
#[derive(Clone, Debug)]
pub struct RepoMetrics {
    metrics: Metrics,
    repo: String,
    /// The label values of its series with more labels than `repo`, so
    /// they can be removed exactly.
    seen: std::sync::Arc<std::sync::Mutex<Seen>>,
}

#[derive(Debug, Default)]
struct Seen {
    bundle_info: Option<[String; 3]>,
    causes: std::collections::BTreeSet<String>,
    results: std::collections::BTreeSet<String>,
}

impl RepoMetrics {
    /// `metrics` labelled for `repo`.
    pub fn new(metrics: Metrics, repo: &str) -> Self {
        Self {
            metrics,
            repo: repo.to_string(),
            seen: Default::default(),
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The server-wide metrics.
    pub fn all(&self) -> &Metrics {
        &self.metrics
    }

    /// A swap to a bundle: its info, time and size.
    pub fn swapped(&self, digest: &str, tag: &str, commit: &str, chunks: i64, since: f64) {
        let m = &self.metrics;
        let mut seen = self.seen();
        if let Some([d, t, c]) = seen.bundle_info.take() {
            let _ = m
                .bundle_info
                .remove_label_values(&[self.repo.as_str(), &d, &t, &c]);
        }
        m.bundle_info
            .with_label_values(&[self.repo.as_str(), digest, tag, commit])
            .set(1);
        seen.bundle_info = Some([digest.into(), tag.into(), commit.into()]);
        drop(seen);
        m.live_since.with_label_values(&[&self.repo]).set(since);
        m.bundle_chunks.with_label_values(&[&self.repo]).set(chunks);
        m.swaps.with_label_values(&[&self.repo]).inc();
    }

    /// A bundle refused, by cause.
    pub fn load_failed(&self, cause: &str) {
        self.seen().causes.insert(cause.to_string());
        self.metrics
            .load_failures
            .with_label_values(&[self.repo.as_str(), cause])
            .inc();
    }

    /// A failed read of the store.
    pub fn store_error(&self) {
        self.metrics
            .store_errors
            .with_label_values(&[&self.repo])
            .inc();
    }

    /// One check of the followed tag, by result.
    pub fn tag_check(&self, result: &str) {
        self.seen().results.insert(result.to_string());
        self.metrics
            .tag_checks
            .with_label_values(&[self.repo.as_str(), result])
            .inc();
    }

    /// The repository's readiness.
    pub fn health(&self, ready: bool, degraded: bool) {
        let m = &self.metrics;
        m.repo_ready
            .with_label_values(&[&self.repo])
            .set(i64::from(ready));
        m.repo_degraded
            .with_label_values(&[&self.repo])
            .set(i64::from(degraded));
    }

    /// Forgets every series of the repository (it is no longer served).
    pub fn remove(&self) {
        let m = &self.metrics;
        let seen = std::mem::take(&mut *self.seen());
        if let Some([d, t, c]) = seen.bundle_info {
            let _ = m
                .bundle_info
                .remove_label_values(&[self.repo.as_str(), &d, &t, &c]);
        }
        for cause in &seen.causes {
            let _ = m
                .load_failures
                .remove_label_values(&[self.repo.as_str(), cause]);
        }
        for result in &seen.results {
            let _ = m
                .tag_checks
                .remove_label_values(&[self.repo.as_str(), result]);
        }
        let _ = m.live_since.remove_label_values(&[&self.repo]);
        for v in [&m.bundle_chunks, &m.repo_ready, &m.repo_degraded] {
            let _ = v.remove_label_values(&[&self.repo]);
        }
        for v in [&m.swaps, &m.store_errors] {
            let _ = v.remove_label_values(&[&self.repo]);
        }
        for reason in ["panic", "ended"] {
            let _ = m
                .task_failures
                .remove_label_values(&["follower", self.repo.as_str(), reason]);
        }
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Registers every metric in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let latency = |name: &str, help: &str| {
            HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())
        };
        let m = Self {
            requests: IntCounterVec::new(
                Opts::new(
                    "shelf_http_requests_total",
                    "HTTP requests by route and status.",
                ),
                &["route", "status"],
            )?,
            request_seconds: HistogramVec::new(
                latency(
                    "shelf_http_request_duration_seconds",
                    "HTTP request latency by route and status.",
                ),
                &["route", "status"],
            )?,
            in_flight: IntGauge::new("shelf_http_in_flight_requests", "Requests being served.")?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "shelf_http_rejected_total",
                    "Requests refused before any work, by reason.",
                ),
                &["reason"],
            )?,
            stage_seconds: HistogramVec::new(
                latency(
                    "shelf_query_stage_seconds",
                    "Time of each query stage (embed includes queueing for the model).",
                ),
                &["stage"],
            )?,
            embed_batch: IntGauge::new(
                "shelf_query_embed_batch_size",
                "Queries in the last model call.",
            )?,
            query_cache_hits: IntCounter::new(
                "shelf_query_cache_hits_total",
                "Query texts whose vector came from the cache.",
            )?,
            query_cache_misses: IntCounter::new(
                "shelf_query_cache_misses_total",
                "Query texts the model embedded (not in the cache).",
            )?,
            query_cache_bytes: IntGauge::new(
                "shelf_query_cache_bytes",
                "Bytes the cached query vectors and their texts take.",
            )?,
            bundle_info: IntGaugeVec::new(
                Opts::new(
                    "shelf_bundle_info",
                    "The live bundle of each repository (value 1).",
                ),
                &["repo", "digest", "tag", "commit"],
            )?,
            live_since: GaugeVec::new(
                Opts::new(
                    "shelf_bundle_live_since_seconds",
                    "Unix time the live bundle went live.",
                ),
                &["repo"],
            )?,
            bundle_chunks: IntGaugeVec::new(
                Opts::new("shelf_bundle_chunks", "Chunks in the live bundle."),
                &["repo"],
            )?,
            ready: IntGauge::new("shelf_ready", "1 when at least one repository is live.")?,
            degraded: IntGauge::new(
                "shelf_degraded",
                "1 when a repository serves another bundle than its tag's, or its store is unreachable.",
            )?,
            repo_ready: IntGaugeVec::new(
                Opts::new("shelf_repository_ready", "1 when the repository is live."),
                &["repo"],
            )?,
            repo_degraded: IntGaugeVec::new(
                Opts::new(
                    "shelf_repository_degraded",
                    "1 when the repository serves another bundle than its tag's, or its store is unreachable.",
                ),
                &["repo"],
            )?,
            repositories: IntGauge::new("shelf_repositories", "Repositories served.")?,
            swaps: IntCounterVec::new(
                Opts::new("shelf_bundle_swaps_total", "Bundles swapped in."),
                &["repo"],
            )?,
            load_failures: IntCounterVec::new(
                Opts::new(
                    "shelf_bundle_load_failures_total",
                    "Bundles that could not be loaded, by reason.",
                ),
                &["repo", "reason"],
            )?,
            store_errors: IntCounterVec::new(
                Opts::new("shelf_store_errors_total", "Failed reads of the store."),
                &["repo"],
            )?,
            tag_checks: IntCounterVec::new(
                Opts::new(
                    "shelf_tag_checks_total",
                    "Checks of the followed tag, by result.",
                ),
                &["repo", "result"],
            )?,
            task_failures: IntCounterVec::new(
                Opts::new(
                    "shelf_task_failures_total",
                    "Long-lived tasks that stopped (a bug) and were started again, by task and reason.",
                ),
                &["task", "repo", "reason"],
            )?,
            registry,
        };
        m.registry.register(Box::new(m.requests.clone()))?;
        m.registry.register(Box::new(m.request_seconds.clone()))?;
        m.registry.register(Box::new(m.in_flight.clone()))?;
        m.registry.register(Box::new(m.rejected.clone()))?;
        m.registry.register(Box::new(m.stage_seconds.clone()))?;
        m.registry.register(Box::new(m.embed_batch.clone()))?;
        m.registry.register(Box::new(m.query_cache_hits.clone()))?;
        m.registry
            .register(Box::new(m.query_cache_misses.clone()))?;
        m.registry.register(Box::new(m.query_cache_bytes.clone()))?;
        m.registry.register(Box::new(m.bundle_info.clone()))?;
        m.registry.register(Box::new(m.live_since.clone()))?;
        m.registry.register(Box::new(m.bundle_chunks.clone()))?;
        m.registry.register(Box::new(m.ready.clone()))?;
        m.registry.register(Box::new(m.degraded.clone()))?;
        m.registry.register(Box::new(m.repo_ready.clone()))?;
        m.registry.register(Box::new(m.repo_degraded.clone()))?;
        m.registry.register(Box::new(m.repositories.clone()))?;
        m.registry.register(Box::new(m.swaps.clone()))?;
        m.registry.register(Box::new(m.load_failures.clone()))?;
        m.registry.register(Box::new(m.store_errors.clone()))?;
        m.registry.register(Box::new(m.tag_checks.clone()))?;
        m.registry.register(Box::new(m.task_failures.clone()))?;
        Ok(m)
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> Result<Vec<u8>, prometheus::Error> {
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(out)
    }

    /// The content type of [`Metrics::render`]'s output.
    pub fn content_type() -> &'static str {
        prometheus::TEXT_FORMAT
    }
}
