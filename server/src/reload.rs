//! Following a tag: check where it points (on a timer, or at once when
//! asked), and when it moved, load the new bundle beside the live one and
//! swap. Every tag move ends served or reported: a bundle that fails to
//! load leaves the old one serving and the failure in `/readyz`,
//! `/v1/bundle`, the metrics and one log line, with its cause; a store that
//! cannot be read leaves the last verified bundle serving, degraded.
//! Failures are retried with backoff (a corrupt object can be replaced in
//! the store, a full disk freed), except a bundle that can never be served
//! by this server under its digest (another model or format), which waits
//! for the tag to move. Concurrent "check now" requests coalesce into one
//! check, which retries at once whatever the backoff says.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use shelf_formats::Digest;
use shelf_search::{MappedBundle, OpenError};
use shelf_store::{Store, StoreLocation};
use tokio::sync::{Notify, watch};

use crate::cache::{BundleCache, LoadError};
use crate::follow::{FollowError, Resolver};
use crate::query_embedder::QueryEmbedder;
use crate::state::{Cause, Followed, Problem, RepoState, Snapshot, now_rfc3339, rfc3339_after};
use crate::supervise::TaskHealth;

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
    /// What failed, if anything (now, or before and not yet retried).
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

/// What loading a bundle needs, shared by every repository's follower and
/// the one-file mode.
#[derive(Clone)]
pub struct Loader {
    /// The cache bundles are unpacked into.
    pub cache: Arc<BundleCache>,
    /// The query model (its identity must match every bundle's).
    pub embedder: QueryEmbedder,
    /// A real query vector, to prove new bundles answer with.
    pub probe: Arc<Vec<f32>>,
    /// HNSW search breadth for new bundles (1.0 to 1.2).
    pub expansion_search: usize,
    /// Read leases on the files of open bundles.
    pub leases: Arc<crate::lease::FileLeases>,
}

impl std::fmt::Debug for Loader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Loader")
    }
}

/// The text embedded once at start to probe new bundles with a real query.
pub const PROBE_QUERY: &str = "where is this implemented";

impl Loader {
    /// Opens a cached bundle directory as a snapshot: model and kinds
    /// checked, the files checked against their verification record and
    /// mapped, a read lease taken on each, a bounded probe query run
    /// ([`MappedBundle::probe`]). Off the
    /// async runtime; the caller swaps.
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
                bundle.probe(&probe)?;
            }
            Ok(bundle)
        })
        .await
        .map_err(|e| OpenError::Io {
            path: self.cache.bundle_dir(&digest),
            source: std::io::Error::other(e.to_string()),
        })??;
        Ok(Snapshot {
            _leases: Some(self.leases.take(&bundle)),
            bundle,
            tag,
            live_since: SystemTime::now(),
            _lease: Some(lease),
        })
    }

    /// Makes `digest` ready in the cache and opens it. A cached copy that
    /// fails its check (changed or removed behind the server's back) is
    /// discarded and fetched again once, here: the cache heals itself.
    pub async fn load(
        &self,
        store: &Store,
        digest: Digest,
        tag: &str,
    ) -> Result<Snapshot, LoadError> {
        let was_cached = self.cache.contains(&digest);
        // Held until the snapshot holds its own lease.
        let _fetched = self.cache.fetch(store, &digest).await?;
        match self.open_snapshot(digest, Some(tag.to_string())).await {
            Err(LoadError::Open(OpenError::DamagedCache { detail, .. })) if was_cached => {
                tracing::warn!(%digest, %detail, "the cached copy is damaged; fetching it again");
                self.cache.discard(&digest);
                let _fetched = self.cache.fetch(store, &digest).await?;
                self.open_snapshot(digest, Some(tag.to_string())).await
            }
            other => other,
        }
    }
}

/// The follower's memory of a target that failed to load.
#[derive(Debug, Clone)]
struct Attempt {
    digest: Digest,
    failures: u32,
    since: String,
    /// When to try again (none: never under this digest).
    retry_at: Option<Instant>,
}

/// How long to wait before retrying after `failures` consecutive failures:
/// one poll interval, doubling, at most `max`.
pub fn backoff(poll: Duration, failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    poll.saturating_mul(1 << doublings).min(max.max(poll))
}

/// The key under which the bundle cache remembers what following
/// `target` (a tag or pattern) in the store at `store_url` last served.
pub fn target_key(store_url: &str, target: &str) -> String {
    format!("{store_url}#{target}")
}

/// How a follower (re)opens its store.
#[derive(Debug, Clone)]
pub enum StoreSource {
    /// A store of its own.
    Location(StoreLocation),
    /// The child `name` of a store root: reopened through the root.
    Child {
        /// The root.
        root: StoreLocation,
        /// The repository's name below it.
        name: String,
    },
}

impl StoreSource {
    /// Opens the store.
    pub async fn open(&self) -> Result<Store, shelf_store::StoreError> {
        match self {
            StoreSource::Location(l) => Store::open(l).await,
            StoreSource::Child { root, name } => Store::open(root).await?.child(name),
        }
    }
}

/// The follower of one repository: owns its store client and tag
/// resolver, and is the only writer of its live pointer.
pub struct Follower {
    loader: Loader,
    state: Arc<RepoState>,
    source: StoreSource,
    store_url: String,
    store: Option<Arc<Store>>,
    resolver: Resolver,
    poll: Duration,
    retry_max: Duration,
    /// Its task's health: cleared after every check (a check done means
    /// the task runs).
    health: Arc<TaskHealth>,
    /// The target that failed last, and when to try it again.
    attempt: Option<Attempt>,
    /// Consecutive store failures and when they began.
    store_failures: (u32, String),
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("follow", &self.resolver.follow().to_string())
            .finish()
    }
}

/// What one follower follows, and how often.
#[derive(Debug)]
pub struct FollowSpec {
    /// How to (re)open its store.
    pub source: StoreSource,
    /// The store already open (a root's child shares the root's client).
    pub store: Option<Arc<Store>>,
    /// The store's URL, for messages and the cache's memory.
    pub store_url: String,
    /// The tag or pattern.
    pub resolver: Resolver,
    /// How often the tag is read.
    pub poll: Duration,
    /// Longest wait between retries of a failed bundle.
    pub retry_max: Duration,
    /// The health of the task it runs in.
    pub health: Arc<TaskHealth>,
}

impl Follower {
    /// A follower of `spec`'s target for the repository `state`.
    pub fn new(loader: Loader, state: Arc<RepoState>, spec: FollowSpec) -> Self {
        let FollowSpec {
            source,
            store,
            store_url,
            resolver,
            poll,
            retry_max,
            health,
        } = spec;
        Self {
            loader,
            state,
            source,
            store_url,
            store,
            resolver,
            poll,
            retry_max,
            health,
            attempt: None,
            store_failures: (0, String::new()),
        }
    }

    /// The key under which the cache remembers this target's last bundle.
    fn target_key(&self) -> String {
        target_key(&self.store_url, &self.resolver.follow().to_string())
    }

    async fn store(&mut self) -> Result<Arc<Store>, LoadError> {
        if let Some(s) = &self.store {
            return Ok(Arc::clone(s));
        }
        let store = Arc::new(self.source.open().await?);
        self.store = Some(Arc::clone(&store));
        Ok(store)
    }

    /// First load at start: like a check, but when nothing could be
    /// loaded, the bundle this target last served (if still cached) goes
    /// live, degraded, while the follower keeps trying.
    pub async fn start(&mut self) -> CheckReport {
        let report = self.check(true).await;
        if self.state.live().is_some() {
            return report;
        }
        let reason = report
            .error
            .clone()
            .unwrap_or_else(|| "no bundle could be loaded".into());
        let Some(digest) = self.loader.cache.last_live(&self.target_key()) else {
            tracing::error!("{}", self.not_live(&reason));
            return report;
        };
        tracing::warn!(%digest, reason = %reason, "serving the last verified bundle from the cache");
        let started = Instant::now();
        match self.loader.open_snapshot(digest, None).await {
            Ok(snapshot) => {
                self.state
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
                self.state.set_not_ready(message);
                report
            }
        }
    }

    /// Records why nothing is live (with what the cache could offer) and
    /// returns the message.
    fn not_live(&self, reason: &str) -> String {
        let message = format!(
            "not ready: {reason}; no cached bundle for '{}' of {} in {} (retrying)",
            self.resolver.follow(),
            self.state.name,
            self.loader.cache.dir().display()
        );
        self.state.set_not_ready(message.clone());
        message
    }

    /// Checks the target once; loads and swaps if it moved (or failed
    /// before and is due again; `now` retries at once).
    pub async fn check(&mut self, now: bool) -> CheckReport {
        crate::fault::inject(&format!("follower-check-{}", self.state.name));
        let live = self.state.live_digest();
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
        if self.store_failures.0 > 0 {
            tracing::info!(store = %self.store_url, "the store answers again");
        }
        self.store_failures = (0, String::new());
        self.state.record_store_ok();
        let digest = resolved.record.digest;
        let tag = resolved.tag;
        report.tag = Some(tag.clone());
        report.target = Some(digest);
        self.state.set_target(Some(Followed {
            tag: tag.clone(),
            digest,
        }));
        self.state.set_history(&resolved.record.history);
        if live == Some(digest) && !self.loader.cache.is_damaged(&digest) {
            self.attempt = None;
            self.count_check("unchanged");
            return self.finish(report);
        }
        if let Some(a) = self.attempt.as_ref().filter(|a| a.digest == digest) {
            let due = a.retry_at.is_some_and(|at| now || Instant::now() >= at);
            if !due {
                // Still reported (readiness says why); not fetched again yet.
                report.error = self
                    .state
                    .status()
                    .load_problem
                    .as_ref()
                    .map(|p| p.message.clone());
                self.count_check("waiting");
                return self.finish(report);
            }
        }
        self.count_check("changed");
        tracing::info!(repo = %self.state.name, %tag, %digest, "loading the tag's bundle beside the live one");
        let started = Instant::now();
        self.state.set_loading(Some(digest));
        let loaded = self.loader.load(&store, digest, &tag).await;
        self.state.set_loading(None);
        match loaded {
            Ok(snapshot) => {
                let load_ms = started.elapsed().as_millis() as u64;
                // Recorded before the swap: once readiness says this bundle
                // is live, the cache's state already says so too.
                self.loader.cache.record_live(&self.target_key(), digest);
                let previous = self.state.swap(snapshot, load_ms);
                self.attempt = None;
                tracing::info!(
                    repo = %self.state.name,
                    %tag,
                    from = %previous.as_ref().map(|p| p.bundle.digest.to_string()).unwrap_or_else(|| "nothing".into()),
                    to = %digest,
                    load_ms,
                    "swapped"
                );
                report.live = Some(digest);
                report.swapped = true;
            }
            Err(e) => {
                let message = self.load_failed(digest, &tag, live, &e);
                if matches!(e, LoadError::Store(_)) {
                    self.state.metrics.store_error();
                    self.store = None;
                }
                report.error = Some(message);
            }
        }
        self.finish(report)
    }

    /// Records a failed load: its cause, the backoff, one log line.
    fn load_failed(
        &mut self,
        digest: Digest,
        tag: &str,
        live: Option<Digest>,
        e: &LoadError,
    ) -> String {
        let cause = e.cause();
        let message = e.to_string();
        let (failures, since) = match &self.attempt {
            Some(a) if a.digest == digest => (a.failures + 1, a.since.clone()),
            _ => (1, now_rfc3339()),
        };
        // A wait past what the clock can hold is never (no setting allows
        // one; nothing here may panic if one did).
        let wait = (cause != Cause::Incompatible)
            .then(|| backoff(self.poll, failures, self.retry_max))
            .filter(|w| Instant::now().checked_add(*w).is_some());
        self.attempt = Some(Attempt {
            digest,
            failures,
            since: since.clone(),
            retry_at: wait.and_then(|w| Instant::now().checked_add(w)),
        });
        self.state.metrics.load_failed(cause.label());
        tracing::error!(
            repo = %self.state.name,
            %tag,
            %digest,
            cause = cause.label(),
            failures,
            retry_in_ms = wait.map(|w| w.as_millis() as u64),
            error = %message,
            live = %live.map(|d| d.to_string()).unwrap_or_else(|| "nothing".into()),
            "refused the tag's bundle; the live one keeps serving"
        );
        self.state.record_load_problem(Problem {
            cause,
            digest: Some(digest),
            message: message.clone(),
            failures,
            since,
            retry_at: wait.map(rfc3339_after),
        });
        message
    }

    fn count_check(&self, result: &str) {
        self.state.metrics.tag_check(result);
    }

    fn store_failed(&mut self, report: CheckReport, message: String) -> CheckReport {
        self.state.metrics.store_error();
        self.count_check("error");
        if self.store_failures.0 == 0 {
            self.store_failures.1 = now_rfc3339();
        }
        self.store_failures.0 += 1;
        let (failures, since) = self.store_failures.clone();
        // One line when it starts failing, then one per ten checks.
        if failures == 1 || failures.is_multiple_of(10) {
            tracing::warn!(repo = %self.state.name, store = %self.store_url, failures, error = %message, "cannot read the followed tag");
        }
        self.state.record_store_problem(Problem {
            cause: Cause::Store,
            digest: None,
            message: message.clone(),
            failures,
            since,
            retry_at: Some(rfc3339_after(self.poll)),
        });
        self.finish(CheckReport {
            error: Some(message),
            ..report
        })
    }

    fn finish(&self, mut report: CheckReport) -> CheckReport {
        report.checked_at = now_rfc3339();
        report.live = self.state.live_digest();
        // While nothing is live, the reason stays current.
        if report.live.is_none()
            && let Some(error) = &report.error
        {
            self.not_live(error);
        }
        report
    }

    /// Checks every poll interval, or at once when
    /// [`Reloader::check_now`] asks, forever (the caller aborts the task at
    /// shutdown). The first check is the start-up load.
    pub async fn run(mut self, reloader: Arc<Reloader>) {
        let mut first = true;
        let mut asked = 0;
        loop {
            let upto = reloader.requested.load(Ordering::Acquire);
            let report = if first {
                self.start().await
            } else {
                // An explicit request retries at once; a timer tick waits
                // for the backoff.
                self.check(upto > asked).await
            };
            asked = upto;
            first = false;
            self.health.clear();
            reloader.done.send_replace((upto, report));
            tokio::select! {
                _ = tokio::time::sleep(self.poll) => {}
                _ = reloader.wake.notified() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_poll_interval_up_to_the_cap() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), 1, s(60)), s(1));
        assert_eq!(backoff(s(1), 2, s(60)), s(2));
        assert_eq!(backoff(s(1), 5, s(60)), s(16));
        assert_eq!(backoff(s(1), 7, s(60)), s(60));
        assert_eq!(backoff(s(5), 100, s(60)), s(60));
        // A cap below the poll interval is the poll interval.
        assert_eq!(backoff(s(5), 3, s(1)), s(5));
    }
}
