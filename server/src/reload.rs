//! Following a tag: check where it points (on a timer, or at once when
//! asked), and when it moved, load the new bundle beside the live one,
//! warm it, and swap. A bundle that fails to load leaves the old one
//! serving; a store that cannot be reached leaves the last verified bundle
//! serving. Concurrent "check now" requests coalesce into one check.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use shelf_formats::Digest;
use shelf_store::{Store, StoreLocation};
use tokio::sync::{Notify, watch};

use crate::cache::{BundleCache, LoadError};
use crate::follow::{FollowError, Resolver};
use crate::query_embedder::QueryEmbedder;
use crate::state::{ServerState, Snapshot, now_rfc3339};
use shelf_search::{MappedBundle, OpenError};

/// What one check found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    /// When it finished, RFC 3339.
    pub checked_at: String,
    /// The tag followed (for a pattern: the newest match).
    pub tag: Option<String>,
    /// Where the tag points.
    pub target: Option<Digest>,
    /// What is live after the check.
    pub live: Option<Digest>,
    /// Whether this check swapped a new bundle in.
    pub swapped: bool,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// Triggers checks and lets callers wait for their result.
#[derive(Debug)]
pub struct Reloader {
    requested: AtomicU64,
    wake: Notify,
    done: watch::Sender<(u64, CheckReport)>,
}

impl Default for Reloader {
    fn default() -> Self {
        Self {
            requested: AtomicU64::new(0),
            wake: Notify::new(),
            done: watch::channel((0, CheckReport::default())).0,
        }
    }
}

impl Reloader {
    /// Asks for a check now and waits for the first check that started
    /// after this call. Calls made while a check runs share the next one.
    pub async fn check_now(&self) -> CheckReport {
        let mine = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let mut done = self.done.subscribe();
        self.wake.notify_one();
        loop {
            {
                let current = done.borrow_and_update();
                if current.0 >= mine {
                    return current.1.clone();
                }
            }
            if done.changed().await.is_err() {
                return CheckReport {
                    error: Some("the server is shutting down".into()),
                    ..CheckReport::default()
                };
            }
        }
    }

    /// The last check's report.
    pub fn last(&self) -> CheckReport {
        self.done.borrow().1.clone()
    }
}

/// What loading a bundle needs, shared by the follower and the one-file
/// mode.
#[derive(Clone)]
pub struct Loader {
    /// The live pointer and status.
    pub state: Arc<ServerState>,
    /// The cache bundles are unpacked into.
    pub cache: Arc<BundleCache>,
    /// The query model (its identity must match every bundle's).
    pub embedder: QueryEmbedder,
    /// A real query vector, to warm new bundles with.
    pub probe: Arc<Vec<f32>>,
    /// HNSW search breadth for new bundles.
    pub expansion_search: usize,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

/// The text embedded once at start to warm new bundles with a real query.
pub const PROBE_QUERY: &str = "where is this implemented";

impl Loader {
    /// Opens a cached bundle directory as a snapshot: model check,
    /// structure, search breadth, pages faulted in, a probe query run. Off
    /// the async runtime; the caller swaps.
    pub async fn open_snapshot(
        &self,
        digest: Digest,
        tag: Option<String>,
    ) -> Result<Snapshot, LoadError> {
        let lease = self.cache.lease(digest);
        let dir = self.cache.bundle_dir(&digest);
        let model = self.embedder.identity().clone();
        let probe = Arc::clone(&self.probe);
        let ef = self.expansion_search;
        let bundle = tokio::task::spawn_blocking(move || -> Result<MappedBundle, OpenError> {
            let bundle = MappedBundle::open_dir(&dir, digest, &model)?;
            bundle.set_expansion_search(ef);
            if !bundle.is_empty() {
                bundle.search(&probe, 10)?;
            }
            Ok(bundle)
        })
        .await
        .map_err(|e| OpenError::Io {
            path: self.cache.bundle_dir(&digest),
            source: std::io::Error::other(e.to_string()),
        })??;
        Ok(Snapshot {
            bundle,
            tag,
            live_since: SystemTime::now(),
            _lease: Some(lease),
        })
    }
}

/// The follower: owns the store client and the tag resolver, and is the
/// only writer of the live pointer.
pub struct Follower {
    loader: Loader,
    location: StoreLocation,
    store_url: String,
    store: Option<Arc<Store>>,
    resolver: Resolver,
    /// Bundles that failed for good, with why: not downloaded again.
    failed: HashMap<Digest, String>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("follow", &self.resolver.follow().to_string())
            .finish()
    }
}

impl Follower {
    /// A follower of `resolver`'s target in the store at `location`
    /// (`store_url` names it in messages and in the cache's memory).
    pub fn new(
        loader: Loader,
        location: StoreLocation,
        store_url: String,
        resolver: Resolver,
    ) -> Self {
        Self {
            loader,
            location,
            store_url,
            store: None,
            resolver,
            failed: HashMap::new(),
        }
    }

    /// The key under which the cache remembers this target's last bundle.
    fn target_key(&self) -> String {
        format!("{}#{}", self.store_url, self.resolver.follow())
    }

    async fn store(&mut self) -> Result<Arc<Store>, LoadError> {
        if let Some(s) = &self.store {
            return Ok(Arc::clone(s));
        }
        let store = Arc::new(Store::open(&self.location).await?);
        self.store = Some(Arc::clone(&store));
        Ok(store)
    }

    /// First load at start: like a check, but when the store cannot answer,
    /// the bundle this target last served (if still cached) goes live, and
    /// the server says it is degraded.
    pub async fn start(&mut self) -> CheckReport {
        let report = self.check().await;
        if self.loader.state.live().is_some() {
            return report;
        }
        let reason = report
            .error
            .clone()
            .unwrap_or_else(|| "no bundle could be loaded".into());
        let Some(digest) = self.loader.cache.last_live(&self.target_key()) else {
            let message = format!(
                "not ready: {reason}; no cached bundle for '{}' in {} (will retry)",
                self.resolver.follow(),
                self.loader.cache.dir().display()
            );
            tracing::error!("{message}");
            self.loader.state.set_not_ready(message);
            return report;
        };
        tracing::warn!(%digest, reason = %reason, "serving the last verified bundle from the cache");
        let started = Instant::now();
        match self.loader.open_snapshot(digest, None).await {
            Ok(snapshot) => {
                self.loader
                    .state
                    .swap(snapshot, started.elapsed().as_millis() as u64);
                CheckReport {
                    live: Some(digest),
                    ..report
                }
            }
            Err(e) => {
                let message = format!(
                    "not ready: {reason}; the cached bundle {digest} cannot be opened either: {e}"
                );
                tracing::error!("{message}");
                self.loader.state.set_not_ready(message);
                report
            }
        }
    }

    /// Checks the target once; swaps if it moved to a loadable bundle.
    pub async fn check(&mut self) -> CheckReport {
        let live = self.loader.state.live().map(|s| s.bundle.digest);
        let mut report = CheckReport {
            live,
            ..CheckReport::default()
        };
        let store = match self.store().await {
            Ok(s) => s,
            Err(e) => return self.store_failed(report, e.to_string()),
        };
        let resolved = match self.resolver.resolve(&store).await {
            Ok(r) => r,
            Err(FollowError::Store(e)) => {
                // A client that failed once may hold a dead connection pool
                // or stale credentials: open a fresh one next time.
                self.store = None;
                return self.store_failed(report, e.to_string());
            }
            Err(e) => return self.store_failed(report, e.to_string()),
        };
        self.loader.state.record_store_ok();
        let digest = resolved.record.digest;
        report.tag = Some(resolved.tag.clone());
        report.target = Some(digest);
        if live == Some(digest) {
            self.loader.state.record_healthy();
            self.count_check("unchanged");
            return self.finish(report);
        }
        if let Some(why) = self.failed.get(&digest) {
            // Already refused: keep serving the old bundle, keep saying why.
            report.error = Some(why.clone());
            self.count_check("unchanged");
            return self.finish(report);
        }
        self.count_check("changed");
        tracing::info!(tag = %resolved.tag, %digest, "tag moved; loading the new bundle beside the live one");
        let started = Instant::now();
        let loaded = match self.loader.cache.fetch(&store, &digest).await {
            Ok(_) => {
                self.loader
                    .open_snapshot(digest, Some(resolved.tag.clone()))
                    .await
            }
            Err(e) => Err(e),
        };
        match loaded {
            Ok(snapshot) => {
                let load_ms = started.elapsed().as_millis() as u64;
                let previous = self.loader.state.swap(snapshot, load_ms);
                self.loader.cache.record_live(&self.target_key(), digest);
                self.loader.state.record_healthy();
                tracing::info!(
                    tag = %resolved.tag,
                    from = %previous.as_ref().map(|p| p.bundle.digest.to_string()).unwrap_or_else(|| "nothing".into()),
                    to = %digest,
                    load_ms,
                    "swapped"
                );
                report.live = Some(digest);
                report.swapped = true;
            }
            Err(e) => {
                let message = e.to_string();
                let reason = match &e {
                    LoadError::Open(OpenError::WrongModel { .. }) => "wrong_model",
                    _ if e.is_permanent() => "verification",
                    LoadError::Store(_) => "store",
                    LoadError::Open(_) => "io",
                };
                self.loader
                    .state
                    .metrics
                    .load_failures
                    .with_label_values(&[reason])
                    .inc();
                if matches!(e, LoadError::Store(_)) && !e.is_permanent() {
                    self.loader.state.metrics.store_errors.inc();
                    self.store = None;
                }
                if e.is_permanent() {
                    self.failed.insert(digest, message.clone());
                }
                tracing::error!(
                    tag = %resolved.tag,
                    %digest,
                    error = %message,
                    live = %live.map(|d| d.to_string()).unwrap_or_else(|| "nothing".into()),
                    "refused the new bundle; the live one keeps serving"
                );
                self.loader
                    .state
                    .record_error("load", Some(digest), message.clone());
                report.error = Some(message);
            }
        }
        self.finish(report)
    }

    fn count_check(&self, result: &str) {
        self.loader
            .state
            .metrics
            .tag_checks
            .with_label_values(&[result])
            .inc();
    }

    fn store_failed(&mut self, report: CheckReport, message: String) -> CheckReport {
        self.loader.state.metrics.store_errors.inc();
        self.count_check("error");
        tracing::warn!(store = %self.store_url, error = %message, "cannot read the followed tag");
        self.loader
            .state
            .record_error("store", None, message.clone());
        self.finish(CheckReport {
            error: Some(message),
            ..report
        })
    }

    fn finish(&self, mut report: CheckReport) -> CheckReport {
        report.checked_at = now_rfc3339();
        report.live = self.loader.state.live().map(|s| s.bundle.digest);
        report
    }

    /// Checks every `poll`, or at once when [`Reloader::check_now`] asks,
    /// forever (the caller aborts the task at shutdown). The first check
    /// is the start-up load.
    pub async fn run(mut self, reloader: Arc<Reloader>, poll: Duration) {
        let mut first = true;
        loop {
            let upto = reloader.requested.load(Ordering::Acquire);
            let report = if first {
                self.start().await
            } else {
                self.check().await
            };
            first = false;
            reloader.done.send_replace((upto, report));
            tokio::select! {
                _ = tokio::time::sleep(poll) => {}
                _ = reloader.wake.notified() => {}
            }
        }
    }
}
