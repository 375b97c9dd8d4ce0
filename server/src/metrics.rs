//! Prometheus metrics, in the classic text exposition format at
//! `GET /metrics`. Names and labels are part of the API (docs/api.md).

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
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
    /// `shelf_bundle_info{digest,tag,commit}` = 1 for the live bundle.
    pub bundle_info: IntGaugeVec,
    /// `shelf_bundle_live_since_seconds`: Unix time the live bundle went live.
    pub live_since: Gauge,
    /// `shelf_bundle_chunks`.
    pub bundle_chunks: IntGauge,
    /// `shelf_ready` (1 when a verified bundle is live).
    pub ready: IntGauge,
    /// `shelf_degraded` (1 when serving but something upstream failed).
    pub degraded: IntGauge,
    /// `shelf_bundle_swaps_total`.
    pub swaps: IntCounter,
    /// `shelf_bundle_load_failures_total{reason}`.
    pub load_failures: IntCounterVec,
    /// `shelf_store_errors_total`.
    pub store_errors: IntCounter,
    /// `shelf_tag_checks_total{result}`: unchanged, changed, error.
    pub tag_checks: IntCounterVec,
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
                Opts::new("shelf_bundle_info", "The live bundle (value 1)."),
                &["digest", "tag", "commit"],
            )?,
            live_since: Gauge::new(
                "shelf_bundle_live_since_seconds",
                "Unix time the live bundle went live.",
            )?,
            bundle_chunks: IntGauge::new("shelf_bundle_chunks", "Chunks in the live bundle.")?,
            ready: IntGauge::new("shelf_ready", "1 when a verified bundle is live.")?,
            degraded: IntGauge::new(
                "shelf_degraded",
                "1 when serving an older bundle or the store is unreachable.",
            )?,
            swaps: IntCounter::new("shelf_bundle_swaps_total", "Bundles swapped in.")?,
            load_failures: IntCounterVec::new(
                Opts::new(
                    "shelf_bundle_load_failures_total",
                    "Bundles that could not be loaded, by reason.",
                ),
                &["reason"],
            )?,
            store_errors: IntCounter::new(
                "shelf_store_errors_total",
                "Failed reads of the store.",
            )?,
            tag_checks: IntCounterVec::new(
                Opts::new(
                    "shelf_tag_checks_total",
                    "Checks of the followed tag, by result.",
                ),
                &["result"],
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
        m.registry.register(Box::new(m.swaps.clone()))?;
        m.registry.register(Box::new(m.load_failures.clone()))?;
        m.registry.register(Box::new(m.store_errors.clone()))?;
        m.registry.register(Box::new(m.tag_checks.clone()))?;
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
