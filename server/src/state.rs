//! What is live: one `Arc<Snapshot>` behind an `ArcSwap`. A request loads
//! the pointer once and finishes on that snapshot, whatever is swapped in
//! meanwhile; a swap is one pointer store. Beside it, the server's status
//! (last swap, last error, why it is degraded), read by `/readyz` and
//! `/v1/bundle` only, never on the query path.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use arc_swap::ArcSwapOption;
use serde::Serialize;
use shelf_formats::Digest;

use crate::cache::Lease;
use crate::metrics::Metrics;
use shelf_search::MappedBundle;

/// A bundle that is (or was) live, with what served it.
#[derive(Debug)]
pub struct Snapshot {
    /// The verified, mapped bundle.
    pub bundle: MappedBundle,
    /// The tag that pointed at it when it was loaded (`None`: a local file).
    pub tag: Option<String>,
    /// When it went live.
    pub live_since: SystemTime,
    /// Keeps its cache files until the last reader drops the snapshot.
    pub(crate) _lease: Option<Lease>,
}

/// One swap, for `/v1/bundle`.
#[derive(Debug, Clone, Serialize)]
pub struct SwapEvent {
    /// When, RFC 3339.
    pub at: String,
    /// The bundle before (none at start).
    pub from: Option<Digest>,
    /// The bundle after.
    pub to: Digest,
    /// The tag that moved.
    pub tag: Option<String>,
    /// Milliseconds from noticing the tag move to serving the new bundle.
    pub load_ms: u64,
}

/// One failure, for `/v1/bundle` and `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorEvent {
    /// When, RFC 3339.
    pub at: String,
    /// What failed (`store`, `load`).
    pub kind: &'static str,
    /// The bundle that failed to load, if that is what failed.
    pub digest: Option<Digest>,
    /// The message.
    pub message: String,
}

/// Status beside the live pointer.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// The last successful swap.
    pub last_swap: Option<SwapEvent>,
    /// The last failure of any kind.
    pub last_error: Option<ErrorEvent>,
    /// The store is failing now (cleared by the next good read).
    pub store_problem: Option<String>,
    /// The newest target failed to load and an older bundle serves.
    pub load_problem: Option<(Digest, String)>,
    /// Why nothing is live yet.
    pub not_ready: Option<String>,
    /// Whether the query model is loaded.
    pub model_loaded: bool,
}

/// Readiness as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// A verified bundle is live and the newest target is being served.
    Ok,
    /// Serving, but the store is unreachable or the newest target failed to
    /// load and an older bundle serves.
    Degraded(String),
    /// Nothing can be served.
    NotReady(String),
}

/// The server's shared state.
#[derive(Debug)]
pub struct ServerState {
    live: ArcSwapOption<Snapshot>,
    status: Mutex<Status>,
    /// Metrics.
    pub metrics: Metrics,
}

/// Now as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

impl ServerState {
    /// Nothing live yet.
    pub fn new(metrics: Metrics) -> Self {
        metrics.ready.set(0);
        Self {
            live: ArcSwapOption::empty(),
            status: Mutex::new(Status {
                not_ready: Some("starting: loading the model and the first bundle".into()),
                ..Status::default()
            }),
            metrics,
        }
    }

    /// The live snapshot, held for as long as the caller keeps it.
    pub fn live(&self) -> Option<Arc<Snapshot>> {
        self.live.load_full()
    }

    /// Status, locked briefly.
    pub fn status(&self) -> MutexGuard<'_, Status> {
        // Every update replaces whole fields; a poisoned lock holds a
        // consistent value.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Swaps `next` in (one pointer store); returns what was live.
    pub fn swap(&self, next: Snapshot, load_ms: u64) -> Option<Arc<Snapshot>> {
        let digest = next.bundle.digest;
        let tag = next.tag.clone();
        let commit = next.bundle.manifest.source.commit.clone();
        let chunks = next.bundle.len() as i64;
        let since = next
            .live_since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let previous = self.live.swap(Some(Arc::new(next)));
        let m = &self.metrics;
        m.bundle_info.reset();
        m.bundle_info
            .with_label_values(&[
                digest.to_string().as_str(),
                tag.as_deref().unwrap_or(""),
                &commit,
            ])
            .set(1);
        m.live_since.set(since);
        m.bundle_chunks.set(chunks);
        m.swaps.inc();
        let mut status = self.status();
        status.last_swap = Some(SwapEvent {
            at: now_rfc3339(),
            from: previous.as_ref().map(|p| p.bundle.digest),
            to: digest,
            tag,
            load_ms,
        });
        status.not_ready = None;
        status.load_problem = None;
        drop(status);
        self.refresh_gauges();
        previous
    }

    /// Records a failure; `kind` is `store` or `load`.
    pub fn record_error(&self, kind: &'static str, digest: Option<Digest>, message: String) {
        let mut status = self.status();
        status.last_error = Some(ErrorEvent {
            at: now_rfc3339(),
            kind,
            digest,
            message: message.clone(),
        });
        match (kind, digest) {
            ("load", Some(d)) => status.load_problem = Some((d, message)),
            _ => status.store_problem = Some(message),
        }
        drop(status);
        self.refresh_gauges();
    }

    /// Records that the store answered and the live bundle is the newest.
    pub fn record_healthy(&self) {
        let mut status = self.status();
        status.store_problem = None;
        status.load_problem = None;
        drop(status);
        self.refresh_gauges();
    }

    /// Records that the store answered (its problem, if any, is over).
    pub fn record_store_ok(&self) {
        self.status().store_problem = None;
        self.refresh_gauges();
    }

    /// Records why nothing is live.
    pub fn set_not_ready(&self, reason: String) {
        self.status().not_ready = Some(reason);
        self.refresh_gauges();
    }

    /// Records that the query model is loaded.
    pub fn set_model_loaded(&self) {
        self.status().model_loaded = true;
        self.refresh_gauges();
    }

    /// Readiness now.
    pub fn readiness(&self) -> Readiness {
        let status = self.status();
        if !status.model_loaded {
            return Readiness::NotReady("loading the embedding model".into());
        }
        if self.live.load().is_none() {
            return Readiness::NotReady(
                status
                    .not_ready
                    .clone()
                    .unwrap_or_else(|| "no bundle is live yet".into()),
            );
        }
        if let Some((digest, why)) = &status.load_problem {
            return Readiness::Degraded(format!(
                "the newest bundle {digest} failed to load and an older one is serving: {why}"
            ));
        }
        if let Some(why) = &status.store_problem {
            return Readiness::Degraded(format!(
                "the store is unreachable; serving the last verified bundle: {why}"
            ));
        }
        Readiness::Ok
    }

    fn refresh_gauges(&self) {
        let (ready, degraded) = match self.readiness() {
            Readiness::Ok => (1, 0),
            Readiness::Degraded(_) => (1, 1),
            Readiness::NotReady(_) => (0, 0),
        };
        self.metrics.ready.set(ready);
        self.metrics.degraded.set(degraded);
    }
}
