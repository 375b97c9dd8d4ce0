//! What one repository serves: one `Arc<Snapshot>` behind an `ArcSwap`. A
//! request loads the pointer once and finishes on that snapshot, whatever
//! is swapped in meanwhile; a swap is one pointer store. Beside it, the
//! follower's view of the world (where the tag points, what failed and
//! why), from which readiness is derived: `ok` only when the live bundle is
//! the tag's target. Read by `/readyz`, `/v1/repos`, `/v1/bundle` and the
//! metrics, never on the query path.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use serde::Serialize;
use shelf_formats::Digest;
use shelf_search::MappedBundle;

use crate::cache::Lease;
use crate::metrics::RepoMetrics;
use crate::supervise::TaskHealth;

/// A bundle that is (or was) live, with what served it.
#[derive(Debug)]
pub struct Snapshot {
    /// Read leases on the bundle's mapped files; declared before the
    /// bundle so they are given up before its files close.
    pub(crate) _leases: Option<crate::lease::LeaseSet>,
    /// The verified bundle, mapped from the cache.
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

/// What kind of failure keeps the target from being served. The kind says
/// what to do about it, so it is never guessed: a full disk is not a
/// corrupt bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// The store could not be read (unreachable, denied, the bundle not
    /// there yet). Retried.
    Store,
    /// The cache directory failed (full, removed, unwritable). Retried.
    Disk,
    /// The bundle's bytes do not verify (a corrupt object in the store).
    /// Retried with backoff: the object can be replaced.
    Verification,
    /// The bundle is valid but not for this server (another model, a format
    /// or kind it does not read). Not fetched again: the same digest can
    /// never become servable; the tag must move or the server change.
    Incompatible,
    /// The server's own background task for the repository (its follower,
    /// or the store root's watcher) stopped: a bug. It is restarted with
    /// backoff; until its new run has checked the tag once, nothing says
    /// whether the live bundle is still the tag's.
    Internal,
}

impl Cause {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Cause::Store => "store",
            Cause::Disk => "disk",
            Cause::Verification => "verification",
            Cause::Incompatible => "incompatible",
            Cause::Internal => "internal",
        }
    }
}

/// Why the target is not what is live, as `/v1/bundle` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// What kind of failure.
    pub cause: Cause,
    /// The bundle that failed (none: the store itself failed).
    pub digest: Option<Digest>,
    /// What went wrong and what to do.
    pub message: String,
    /// Consecutive failures of this kind for this bundle.
    pub failures: u32,
    /// When the first of them happened, RFC 3339.
    pub since: String,
    /// When the next attempt is due, RFC 3339 (none: not retried).
    pub retry_at: Option<String>,
}

/// One failure, for `/v1/bundle`'s `last_error`.
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

/// Where the followed tag points, as last read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Followed {
    /// The tag (for a pattern: the newest match).
    pub tag: String,
    /// The bundle it points at.
    pub digest: Digest,
}

/// The follower's view, beside the live pointer.
#[derive(Debug, Default, Clone)]
pub struct Status {
    /// The last successful swap.
    pub last_swap: Option<SwapEvent>,
    /// The last failure of any kind.
    pub last_error: Option<ErrorEvent>,
    /// Where the followed tag points (none: not read yet, or one file is
    /// served).
    pub target: Option<Followed>,
    /// A bundle being loaded now.
    pub loading: Option<Digest>,
    /// Why the target failed to load.
    pub load_problem: Option<Problem>,
    /// Why the store cannot be read now (cleared by the next good read).
    pub store_problem: Option<Problem>,
    /// Why nothing is live yet.
    pub not_ready: Option<String>,
}

/// Readiness as `/readyz` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// The live bundle is the followed tag's target, and the store answers.
    Ok,
    /// Serving, but not the target (it is loading or failed to), or the
    /// store cannot be read: the reason says which.
    Degraded(String),
    /// Nothing can be served.
    NotReady(String),
}

/// One served repository's live bundle and status.
#[derive(Debug)]
pub struct RepoState {
    /// The repository's name (what `repo=` names and results carry).
    pub name: String,
    live: ArcSwapOption<Snapshot>,
    status: Mutex<Status>,
    /// Whether the server's query model is loaded (shared by every
    /// repository).
    model_loaded: Arc<AtomicBool>,
    /// The health of the tasks that keep this repository current: its
    /// follower, and the watcher of the store root it was found under.
    tasks: Vec<Arc<TaskHealth>>,
    /// Its metrics.
    pub metrics: RepoMetrics,
}

/// Now as RFC 3339 with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Latest time RFC 3339 can write (and `humantime` format): 9999-12-31.
const LAST_WRITABLE_SECS: u64 = 253_402_300_799;

/// `wait` from now, as RFC 3339 with seconds. Never panics: a wait past
/// what a clock or the format can hold is said as the last second of year
/// 9999 (no setting may ask for that; this is the guard for when one
/// does).
pub fn rfc3339_after(wait: Duration) -> String {
    let last = SystemTime::UNIX_EPOCH + Duration::from_secs(LAST_WRITABLE_SECS);
    let at = SystemTime::now()
        .checked_add(wait)
        .filter(|t| *t <= last)
        .unwrap_or(last);
    humantime::format_rfc3339_seconds(at).to_string()
}

impl RepoState {
    /// Nothing live yet; `tasks` are the health of the tasks that keep it
    /// current (none: one bundle file, nothing followed).
    pub fn new(
        name: &str,
        metrics: RepoMetrics,
        model_loaded: Arc<AtomicBool>,
        tasks: Vec<Arc<TaskHealth>>,
    ) -> Self {
        metrics.health(false, false);
        Self {
            name: name.to_string(),
            live: ArcSwapOption::empty(),
            status: Mutex::new(Status {
                not_ready: Some("starting: loading the first bundle".into()),
                ..Status::default()
            }),
            model_loaded,
            tasks,
            metrics,
        }
    }

    /// Why a task that keeps this repository current is not running as it
    /// should (the first such), if one is not.
    pub fn task_problem(&self) -> Option<Problem> {
        self.tasks.iter().find_map(|t| t.problem())
    }

    /// The live snapshot, held for as long as the caller keeps it.
    pub fn live(&self) -> Option<Arc<Snapshot>> {
        self.live.load_full()
    }

    /// The live bundle's digest.
    pub fn live_digest(&self) -> Option<Digest> {
        self.live.load().as_ref().map(|s| s.bundle.digest)
    }

    /// Status, locked briefly.
    pub fn status(&self) -> MutexGuard<'_, Status> {
        // Every update replaces whole fields; a poisoned lock holds a
        // consistent value.
        self.status
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the status and refreshes the readiness gauges.
    fn update(&self, change: impl FnOnce(&mut Status)) {
        change(&mut self.status());
        self.refresh_gauges();
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
        self.metrics.swapped(
            &digest.to_string(),
            tag.as_deref().unwrap_or(""),
            &commit,
            chunks,
            since,
        );
        self.update(|status| {
            status.last_swap = Some(SwapEvent {
                at: now_rfc3339(),
                from: previous.as_ref().map(|p| p.bundle.digest),
                to: digest,
                tag,
                load_ms,
            });
            status.not_ready = None;
            if status
                .load_problem
                .as_ref()
                .is_some_and(|p| p.digest == Some(digest))
            {
                status.load_problem = None;
            }
        });
        previous
    }

    /// Records where the followed tag points now.
    pub fn set_target(&self, target: Option<Followed>) {
        self.update(|s| {
            // A problem with a bundle the tag no longer names is history.
            if s.load_problem.as_ref().is_some_and(|p| {
                p.digest.is_some() && p.digest != target.as_ref().map(|t| t.digest)
            }) {
                s.load_problem = None;
            }
            s.target = target;
        });
    }

    /// Records that `digest` is being loaded (none: the load is over).
    pub fn set_loading(&self, digest: Option<Digest>) {
        self.update(|s| s.loading = digest);
    }

    /// Records why the target failed to load.
    pub fn record_load_problem(&self, problem: Problem) {
        self.update(|s| {
            s.last_error = Some(ErrorEvent {
                at: now_rfc3339(),
                kind: "load",
                digest: problem.digest,
                message: problem.message.clone(),
            });
            s.load_problem = Some(problem);
        });
    }

    /// Records why the store cannot be read.
    pub fn record_store_problem(&self, problem: Problem) {
        self.update(|s| {
            s.last_error = Some(ErrorEvent {
                at: now_rfc3339(),
                kind: "store",
                digest: None,
                message: problem.message.clone(),
            });
            s.store_problem = Some(problem);
        });
    }

    /// The current store problem, if the store failed last time.
    pub fn store_problem(&self) -> Option<Problem> {
        self.status().store_problem.clone()
    }

    /// Records that the store answered (its problem, if any, is over).
    pub fn record_store_ok(&self) {
        self.update(|s| s.store_problem = None);
    }

    /// Records why nothing is live.
    pub fn set_not_ready(&self, reason: String) {
        self.update(|s| s.not_ready = Some(reason));
    }

    /// Readiness now.
    pub fn readiness(&self) -> Readiness {
        let internal = self.task_problem();
        let status = self.status();
        let live = self.live_digest();
        readiness_of(
            &status,
            live,
            self.model_loaded.load(Ordering::Acquire),
            internal.as_ref(),
        )
    }

    /// Brings the repository's readiness gauges up to date.
    pub fn refresh_gauges(&self) {
        let (ready, degraded) = match self.readiness() {
            Readiness::Ok => (true, false),
            Readiness::Degraded(_) => (true, true),
            Readiness::NotReady(_) => (false, false),
        };
        self.metrics.health(ready, degraded);
    }
}

/// Readiness from a status, the live digest and a task's problem: `ok`
/// only when what is live is what the tag names, the store answers and the
/// tasks that keep it so run.
fn readiness_of(
    status: &Status,
    live: Option<Digest>,
    model_loaded: bool,
    internal: Option<&Problem>,
) -> Readiness {
    let found = readiness_without_tasks(status, live, model_loaded);
    let Some(p) = internal.filter(|_| model_loaded) else {
        return found;
    };
    // A stopped task comes first: nothing else is kept current meanwhile.
    let text = problem_text(p);
    match found {
        Readiness::NotReady(why) => Readiness::NotReady(format!("{text}; and: {why}")),
        Readiness::Degraded(why) => Readiness::Degraded(format!("{text}; and: {why}")),
        Readiness::Ok => Readiness::Degraded(text),
    }
}

/// A problem as readiness says it: what, how often since when, and when
/// it is tried again.
fn problem_text(p: &Problem) -> String {
    let retry = match &p.retry_at {
        Some(at) => format!("next attempt at {at}"),
        None => "not retried until the tag moves".into(),
    };
    format!(
        "{} ({} failure{} since {}; {retry})",
        p.message,
        p.failures,
        if p.failures == 1 { "" } else { "s" },
        p.since
    )
}

fn readiness_without_tasks(status: &Status, live: Option<Digest>, model_loaded: bool) -> Readiness {
    if !model_loaded {
        return Readiness::NotReady("loading the embedding model".into());
    }
    let Some(live) = live else {
        let why = status
            .not_ready
            .clone()
            .or_else(|| {
                status
                    .load_problem
                    .as_ref()
                    .or(status.store_problem.as_ref())
                    .map(problem_text)
            })
            .unwrap_or_else(|| "no bundle is live yet".into());
        return Readiness::NotReady(why);
    };
    if let Some(target) = &status.target
        && target.digest != live
    {
        let serving = format!(
            "tag '{}' points at {} but {live} is serving",
            target.tag, target.digest
        );
        return Readiness::Degraded(match (&status.load_problem, status.loading) {
            (Some(p), _) if p.digest == Some(target.digest) => match &status.store_problem {
                // Both matter: why the target was refused, and why the
                // tag cannot be read again to see whether it moved.
                Some(s) => format!(
                    "{serving}: {}; and the store: {}",
                    problem_text(p),
                    problem_text(s)
                ),
                None => format!("{serving}: {}", problem_text(p)),
            },
            (_, Some(d)) if d == target.digest => format!("{serving}: loading it"),
            _ => match &status.store_problem {
                Some(p) => format!("{serving}: {}", problem_text(p)),
                None => format!("{serving}: it will be loaded at the next check"),
            },
        });
    }
    if let Some(p) = &status.store_problem {
        return Readiness::Degraded(format!(
            "the store cannot be read; serving the last verified bundle: {}",
            problem_text(p)
        ));
    }
    Readiness::Ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(n: u8) -> Digest {
        Digest::from_bytes([n; 32])
    }

    fn problem(digest: Option<Digest>, cause: Cause) -> Problem {
        Problem {
            cause,
            digest,
            message: "it broke".into(),
            failures: 2,
            since: "2026-12-01T00:00:00Z".into(),
            retry_at: Some("2026-12-01T00:00:08Z".into()),
        }
    }

    #[test]
    fn any_wait_is_written_without_a_panic() {
        for wait in [
            Duration::ZERO,
            Duration::from_secs(1),
            Duration::from_secs(365 * 24 * 3600),
            Duration::from_secs(9_000 * 365 * 24 * 3600),
            Duration::from_secs(u64::MAX / 2),
            Duration::MAX,
        ] {
            let at = rfc3339_after(wait);
            assert!(at.ends_with('Z'), "{wait:?}: {at}");
        }
        assert_eq!(
            rfc3339_after(Duration::MAX),
            "9999-12-31T23:59:59Z",
            "past the last writable second"
        );
    }

    #[test]
    fn ok_only_when_the_live_bundle_is_the_targets() {
        let mut s = Status {
            target: Some(Followed {
                tag: "prod".into(),
                digest: d(1),
            }),
            ..Status::default()
        };
        assert_eq!(readiness_of(&s, Some(d(1)), true, None), Readiness::Ok);
        // The tag moved and nothing failed yet: degraded, saying so.
        let Readiness::Degraded(why) = readiness_of(&s, Some(d(2)), true, None) else {
            panic!("live != target is never ok");
        };
        assert!(why.contains("tag 'prod' points at"), "{why}");
        s.loading = Some(d(1));
        let Readiness::Degraded(why) = readiness_of(&s, Some(d(2)), true, None) else {
            panic!();
        };
        assert!(why.contains("loading it"), "{why}");
        // A failed load names its reason, count and next attempt.
        s.loading = None;
        s.load_problem = Some(problem(Some(d(1)), Cause::Verification));
        let Readiness::Degraded(why) = readiness_of(&s, Some(d(2)), true, None) else {
            panic!();
        };
        assert!(
            why.contains("it broke") && why.contains("2 failures") && why.contains("next attempt"),
            "{why}"
        );
        // Nothing live: not ready, with the reason.
        s.not_ready = None;
        let Readiness::NotReady(why) = readiness_of(&s, None, true, None) else {
            panic!();
        };
        assert!(why.contains("it broke"), "{why}");
        // A store that fails while the target is live is degraded too.
        s.load_problem = None;
        s.store_problem = Some(problem(None, Cause::Store));
        assert!(matches!(
            readiness_of(&s, Some(d(1)), true, None),
            Readiness::Degraded(_)
        ));
        assert!(matches!(
            readiness_of(&s, Some(d(1)), false, None),
            Readiness::NotReady(_)
        ));
    }

    #[test]
    fn a_stopped_task_is_never_ok_and_says_so_first() {
        let s = Status {
            target: Some(Followed {
                tag: "prod".into(),
                digest: d(1),
            }),
            ..Status::default()
        };
        let mut internal = problem(None, Cause::Internal);
        internal.message = "internal: the follower stopped".into();
        let Readiness::Degraded(why) = readiness_of(&s, Some(d(1)), true, Some(&internal)) else {
            panic!("a stopped follower is not ok");
        };
        assert!(why.starts_with("internal: the follower stopped"), "{why}");
        let Readiness::Degraded(why) = readiness_of(&s, Some(d(2)), true, Some(&internal)) else {
            panic!();
        };
        assert!(
            why.starts_with("internal:") && why.contains("tag 'prod' points at"),
            "{why}"
        );
        let Readiness::NotReady(why) = readiness_of(&s, None, true, Some(&internal)) else {
            panic!();
        };
        assert!(why.starts_with("internal:"), "{why}");
    }
}
