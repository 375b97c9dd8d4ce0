//! Serving a whole store root: every direct child `ROOT/<name>/` that is a
//! shelf store is the repository `<name>`. The root is listed again every
//! poll interval, so a repository whose workflow publishes for the first
//! time is served without a restart and one whose store disappears is
//! dropped (its in-flight queries finish on the bundle they hold). Listing
//! is bounded: at most `max_repositories` are served, names that are not
//! valid repository names are refused (never used as a path) and said once
//! in the log, and children that are not stores are checked again only now
//! and then.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use shelf_formats::names::validate_repo_name;
use shelf_store::{Store, StoreLocation};

use crate::follow::{Follow, Resolver};
use crate::reload::{FollowSpec, Follower, Loader, Reloader, StoreSource, target_key};
use crate::repos::{Origin, Repo, Repos};
use crate::supervise::{Supervised, TaskHealth};

/// Children examined per listing that serve nothing (not stores, not
/// readable, named in the configuration or over `max_repositories`), so a
/// root full of other prefixes costs a bounded number of requests per
/// poll. Checks that find a new repository are not counted: every store a
/// listing finds is served from that listing, not a poll interval later.
const WASTED_CHECKS_PER_LISTING: usize = 64;
/// Listings before a child found not to be a store is examined again.
const RECHECK_AFTER: u32 = 10;
/// Children listed at most beyond `max_repositories` (a few pages).
const LISTED_BEYOND: usize = 10_000;

/// Starts followers as repositories appear: shared by the root watcher
/// and the repositories named one by one.
#[derive(Debug, Clone)]
pub struct Spawner {
    /// The served repositories.
    pub repos: Arc<Repos>,
    /// What loading needs.
    pub loader: Loader,
    /// How often tags are read.
    pub poll: Duration,
    /// Longest wait between retries of a failed bundle.
    pub retry_max: Duration,
}

impl Spawner {
    /// Serves repository `name` by following `follow` in the store `source`
    /// opens (`store`: already open), and returns it. The follower runs
    /// supervised: if it ever stops, it is reported and started again.
    pub fn follow(
        &self,
        name: &str,
        source: StoreSource,
        store: Option<Arc<Store>>,
        store_url: &str,
        follow: &Follow,
        from_root: bool,
    ) -> Arc<Repo> {
        let health = Arc::new(TaskHealth::default());
        let mut tasks = vec![Arc::clone(&health)];
        if from_root {
            tasks.push(Arc::clone(&self.repos.root_task));
        }
        let state = self.repos.new_state(name, tasks);
        let reloader = Arc::new(Reloader::default());
        let supervised = Supervised {
            task: "follower",
            repo: name.to_string(),
            described: format!("the follower of repository '{name}'"),
            health: Arc::clone(&health),
            metrics: self.repos.metrics.clone(),
            first_wait: self.poll,
            max_wait: self.retry_max,
        };
        let start = {
            let (loader, state, reloader) = (
                self.loader.clone(),
                Arc::clone(&state),
                Arc::clone(&reloader),
            );
            let (store_url, follow) = (store_url.to_string(), follow.clone());
            let (poll, retry_max) = (self.poll, self.retry_max);
            move || {
                let follower = Follower::new(
                    loader.clone(),
                    Arc::clone(&state),
                    FollowSpec {
                        source: source.clone(),
                        store: store.clone(),
                        store_url: store_url.clone(),
                        resolver: Resolver::new(follow.clone()),
                        poll,
                        retry_max,
                        health: Arc::clone(&health),
                    },
                );
                follower.run(Arc::clone(&reloader))
            }
        };
        let task = tokio::spawn(supervised.run(start));
        let repo = Arc::new(Repo::new(
            state,
            Origin::Store {
                store: store_url.to_string(),
                target: follow.to_string(),
            },
            Some(reloader),
            from_root,
            Some(task),
        ));
        self.repos.insert(Arc::clone(&repo));
        repo
    }
}

/// Watches one store root.
#[derive(Debug)]
pub struct RootWatcher {
    spawner: Spawner,
    location: StoreLocation,
    url: String,
    follow: Follow,
    max: usize,
    root: Option<Arc<Store>>,
    /// Children found not to be stores, and listings until the next look.
    not_stores: HashMap<String, u32>,
    /// Names already said to be invalid (said once).
    refused: BTreeSet<String>,
}

impl RootWatcher {
    /// A watcher of the root at `location` (`url` as configured).
    pub fn new(
        spawner: Spawner,
        location: StoreLocation,
        url: String,
        follow: Follow,
        max: usize,
    ) -> Self {
        Self {
            spawner,
            location,
            url,
            follow,
            max,
            root: None,
            not_stores: HashMap::new(),
            refused: BTreeSet::new(),
        }
    }

    /// Lists the root every poll interval, forever (aborted at shutdown).
    pub async fn run(mut self) {
        loop {
            crate::fault::inject("root-watcher");
            if let Err(e) = self.scan().await {
                // A root that cannot be listed changes nothing: every
                // repository already served keeps following its own store.
                tracing::warn!(root = %self.url, error = %e, "cannot list the store root");
                self.root = None;
            }
            // A round done: if this run follows a stop, it is over.
            self.spawner.repos.root_task.clear();
            tokio::time::sleep(self.spawner.poll).await;
        }
    }

    /// Watches the root for as long as the returned future runs, started
    /// again (and reported meanwhile) if it ever stops.
    pub fn supervised(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let supervised = Supervised {
            task: "root_watcher",
            repo: String::new(),
            described: "the watcher of the store root".into(),
            health: Arc::clone(&self.spawner.repos.root_task),
            metrics: self.spawner.repos.metrics.clone(),
            first_wait: self.spawner.poll,
            max_wait: self.spawner.retry_max,
        };
        let (spawner, location, url, follow, max) =
            (self.spawner, self.location, self.url, self.follow, self.max);
        supervised.run(move || {
            RootWatcher::new(
                spawner.clone(),
                location.clone(),
                url.clone(),
                follow.clone(),
                max,
            )
            .run()
        })
    }

    /// One listing: new stores are served, vanished ones dropped.
    pub async fn scan(&mut self) -> Result<(), shelf_store::StoreError> {
        let root = match &self.root {
            Some(r) => Arc::clone(r),
            None => {
                let r = Arc::new(Store::open(&self.location).await?);
                self.root = Some(Arc::clone(&r));
                r
            }
        };
        // Room for names that are refused or are not stores, bounded; a
        // listing that hit the bound drops nothing (it may be incomplete).
        let limit = self.max.saturating_add(LISTED_BEYOND);
        let listed = root.children(limit).await?;
        let complete = listed.len() < limit;
        let repos = &self.spawner.repos;
        let mut present = BTreeSet::new();
        let mut wasted = 0;
        for name in listed {
            if let Err(e) = validate_repo_name(&name) {
                if self.refused.insert(name.clone()) {
                    tracing::warn!(root = %self.url, error = %e, "ignoring a child of the store root");
                }
                continue;
            }
            if repos.get(&name).is_some_and(|r| r.from_root) {
                present.insert(name);
                continue;
            }
            if let Some(wait) = self.not_stores.get_mut(&name)
                && *wait > 0
            {
                *wait -= 1;
                continue;
            }
            if wasted >= WASTED_CHECKS_PER_LISTING {
                continue;
            }
            // Counted as wasted until it is served.
            wasted += 1;
            let child = Arc::new(root.child(&name)?);
            match child.is_store().await {
                Ok(true) => {}
                Ok(false) => {
                    self.not_stores.insert(name, RECHECK_AFTER);
                    continue;
                }
                // One child that cannot be read keeps no other from being
                // served; it is looked at again next listing.
                Err(e) => {
                    tracing::warn!(root = %self.url, child = %name, error = %e, "cannot tell whether a child of the store root is a store");
                    continue;
                }
            }
            self.not_stores.remove(&name);
            if repos.get(&name).is_some() {
                // Named explicitly in the configuration: that one wins.
                continue;
            }
            let served = repos.all().values().filter(|r| r.from_root).count();
            if served >= self.max {
                tracing::warn!(root = %self.url, repo = %name, max = self.max, "not serving another repository of the store root: the limit is reached (--max-repositories)");
                continue;
            }
            tracing::info!(root = %self.url, repo = %name, "a new repository under the store root: following it");
            let store_url = format!("{}/{name}", self.url.trim_end_matches('/'));
            self.spawner.follow(
                &name,
                StoreSource::Child {
                    root: self.location.clone(),
                    name: name.clone(),
                },
                Some(child),
                &store_url,
                &self.follow,
                true,
            );
            wasted -= 1;
            present.insert(name);
        }
        if !complete {
            tracing::warn!(root = %self.url, listed = limit, "the store root has more children than are listed; none is dropped until the listing completes");
            return Ok(());
        }
        for repo in repos.all().values() {
            if repo.from_root && !present.contains(repo.name()) {
                tracing::info!(root = %self.url, repo = %repo.name(), "the repository's store is gone from the root: no longer serving it");
                repos.remove(repo.name());
                // Its bundle is kept for a restart no longer.
                if let Origin::Store { store, target } = &repo.origin {
                    self.spawner.loader.cache.forget(&target_key(store, target));
                }
            }
        }
        Ok(())
    }
}
