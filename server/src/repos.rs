//! The repositories one server serves. Each follows, verifies, loads, swaps
//! and degrades on its own ([`Repo`]: its live bundle, status and follower
//! task); the set is one copy-on-write map behind an `ArcSwap`, so a
//! request reads it once without a lock and a repository removed while
//! queries are in flight stays alive until the last of them finishes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::http::Scope;
use crate::metrics::{Metrics, RepoMetrics};
use crate::reload::Reloader;
use crate::state::{Readiness, RepoState};
use crate::supervise::TaskHealth;

/// Where a repository's bundles come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// A tag (or pattern) followed in a store.
    Store {
        /// The store, as configured.
        store: String,
        /// The tag or pattern.
        target: String,
    },
    /// One bundle file.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// One served repository.
#[derive(Debug)]
pub struct Repo {
    /// Its live bundle and status.
    pub state: Arc<RepoState>,
    /// Where its bundles come from.
    pub origin: Origin,
    /// Asks its follower to check now (none: a file, nothing followed).
    pub reloader: Option<Arc<Reloader>>,
    /// Whether a store root listed it (and may drop it again).
    pub from_root: bool,
    follower: Mutex<Option<JoinHandle<()>>>,
}

impl Repo {
    /// A repository served from `origin`; `follower` is the task that
    /// follows it, if any.
    pub fn new(
        state: Arc<RepoState>,
        origin: Origin,
        reloader: Option<Arc<Reloader>>,
        from_root: bool,
        follower: Option<JoinHandle<()>>,
    ) -> Self {
        Self {
            state,
            origin,
            reloader,
            from_root,
            follower: Mutex::new(follower),
        }
    }

    /// The repository's name.
    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// Stops following (the live bundle stays with whoever holds it).
    fn stop(&self) {
        if let Some(task) = self
            .follower
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

/// Overall readiness over the repositories a caller may see.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Overall {
    /// `ok` (every visible repository at its target), `degraded` (at least
    /// one live, some not at their target or not live) or `not_ready`
    /// (none live).
    pub status: &'static str,
    /// Why, when not ok.
    pub reason: Option<String>,
    /// Repositories served (that the caller may see).
    pub repositories: usize,
    /// Those live.
    pub live: usize,
}

/// Every served repository.
#[derive(Debug)]
pub struct Repos {
    map: ArcSwap<BTreeMap<String, Arc<Repo>>>,
    edit: Mutex<()>,
    model_loaded: Arc<AtomicBool>,
    /// The health of the store root's watcher (none watched: never a
    /// problem), which every repository found under the root shares.
    pub root_task: Arc<TaskHealth>,
    /// The server's metrics.
    pub metrics: Metrics,
}

impl Repos {
    /// No repositories yet.
    pub fn new(metrics: Metrics) -> Self {
        metrics.ready.set(0);
        Self {
            map: ArcSwap::from_pointee(BTreeMap::new()),
            edit: Mutex::new(()),
            model_loaded: Arc::new(AtomicBool::new(false)),
            root_task: Arc::default(),
            metrics,
        }
    }

    /// A new repository's state (nothing live), sharing the server's model
    /// flag and metrics; `tasks` keep it current (its follower's health,
    /// and the root watcher's for a repository found under the root).
    pub fn new_state(&self, name: &str, tasks: Vec<Arc<TaskHealth>>) -> Arc<RepoState> {
        Arc::new(RepoState::new(
            name,
            RepoMetrics::new(self.metrics.clone(), name),
            Arc::clone(&self.model_loaded),
            tasks,
        ))
    }

    /// Records that the query model is loaded.
    pub fn set_model_loaded(&self) {
        self.model_loaded.store(true, Ordering::Release);
        self.refresh_gauges();
    }

    /// Whether the query model is loaded.
    pub fn model_loaded(&self) -> bool {
        self.model_loaded.load(Ordering::Acquire)
    }

    /// Every repository now, by name (one load of the pointer).
    pub fn all(&self) -> Arc<BTreeMap<String, Arc<Repo>>> {
        self.map.load_full()
    }

    /// The repositories `scope` may see, by name.
    pub fn visible(&self, scope: &Scope) -> Vec<Arc<Repo>> {
        self.all()
            .values()
            .filter(|r| scope.allows(r.name()))
            .cloned()
            .collect()
    }

    /// Repository `name`, if served.
    pub fn get(&self, name: &str) -> Option<Arc<Repo>> {
        self.all().get(name).cloned()
    }

    /// Adds (or replaces) a repository.
    pub fn insert(&self, repo: Arc<Repo>) {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (**self.map.load()).clone();
        if let Some(old) = next.insert(repo.name().to_string(), repo) {
            old.stop();
        }
        self.metrics.repositories.set(next.len() as i64);
        self.map.store(Arc::new(next));
    }

    /// Stops serving `name`: its follower stops now, its bundle is freed
    /// when the last request using it finishes.
    pub fn remove(&self, name: &str) -> Option<Arc<Repo>> {
        let _edit = self.edit.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = (**self.map.load()).clone();
        let removed = next.remove(name)?;
        removed.stop();
        removed.state.metrics.remove();
        self.metrics.repositories.set(next.len() as i64);
        self.map.store(Arc::new(next));
        Some(removed)
    }

    /// Stops every follower (shutdown).
    pub fn stop_all(&self) {
        for repo in self.all().values() {
            repo.stop();
        }
    }

    /// Readiness over the repositories `scope` may see; `names` says
    /// whether the reason may name them (a caller with a valid token).
    pub fn readiness(&self, scope: &Scope, names: bool) -> Overall {
        let repos = self.visible(scope);
        if !self.model_loaded() {
            return Overall {
                status: "not_ready",
                reason: Some("loading the embedding model".into()),
                repositories: repos.len(),
                live: 0,
            };
        }
        let mut live = 0;
        let mut degraded = Vec::new();
        let mut not_ready = Vec::new();
        for r in &repos {
            match r.state.readiness() {
                Readiness::Ok => live += 1,
                Readiness::Degraded(why) => {
                    live += 1;
                    degraded.push((r.name().to_string(), why));
                }
                Readiness::NotReady(why) => not_ready.push((r.name().to_string(), why)),
            }
        }
        // One repository: its own words, as a one-repository server always said.
        let single = |list: &[(String, String)]| match (repos.len(), list) {
            (1, [(_, why)]) => Some(why.clone()),
            _ => None,
        };
        let describe = |what: &str, list: &[(String, String)]| {
            if names {
                format!(
                    "{what}: {}",
                    list.iter()
                        .map(|(n, why)| format!("{n} ({why})"))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            } else {
                format!("{} of {} repositories {what}", list.len(), repos.len())
            }
        };
        let (status, reason) = if repos.is_empty() {
            let why = match self.root_task.problem() {
                // Nothing found under the root may be because nothing looks.
                Some(p) => format!("no repository is served yet; {}", p.message),
                None => "no repository is served yet".to_string(),
            };
            ("not_ready", Some(why))
        } else if live == 0 {
            (
                "not_ready",
                single(&not_ready).or_else(|| Some(describe("not ready", &not_ready))),
            )
        } else if degraded.is_empty() && not_ready.is_empty() {
            ("ok", None)
        } else {
            let mut parts = Vec::new();
            if !degraded.is_empty() {
                parts.push(single(&degraded).unwrap_or_else(|| describe("degraded", &degraded)));
            }
            if !not_ready.is_empty() {
                parts.push(describe("not ready", &not_ready));
            }
            ("degraded", Some(parts.join("; ")))
        };
        Overall {
            status,
            reason,
            repositories: repos.len(),
            live,
        }
    }

    /// Brings every readiness gauge up to date (before `/metrics` renders).
    pub fn refresh_gauges(&self) {
        let overall = self.readiness(&Scope::All, false);
        for r in self.all().values() {
            r.state.refresh_gauges();
        }
        self.metrics
            .ready
            .set(i64::from(overall.status != "not_ready"));
        self.metrics
            .degraded
            .set(i64::from(overall.status == "degraded"));
    }
}
