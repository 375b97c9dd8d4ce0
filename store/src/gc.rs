//! Garbage collection: delete bundles no tag needs any more.
//!
//! Kept: every bundle a tag points at, the `keep` most recent distinct
//! bundles of every tag's history (instant rollback), and every bundle
//! uploaded or tagged within the grace period. The grace period closes the
//! race with concurrent writers: `push` uploads before it tags, and a tag
//! move rewrites the bundle's `.tagged` marker *before* it checks the bundle
//! exists and before the tag record changes, so any bundle a tag is being
//! moved to has a fresh marker (or is fresh itself) while gc runs. gc also
//! re-reads every tag immediately before deleting.
//!
//! The embedding cache goes the same way: a pack is kept while a uses record
//! of a retained bundle names it (every bundle gc does not delete is
//! retained), or while it is younger than the grace period (a shard's pack
//! before its assemble build has made the bundle). Uses records of deleted
//! bundles go with them. A build that writes a uses record while gc runs
//! keeps the packs it names: gc re-reads the records before deleting packs.

use std::collections::BTreeSet;
use std::time::Duration;

use shelf_formats::Digest;
use shelf_formats::keys::{
    CACHE_PREFIX, bundle_key, bundle_manifest_key, bundle_tagged_key, cache_pack_key,
    digest_from_bundle_key, pack_from_key, uses_from_key,
};

use crate::tags::list_tags;
use crate::{Store, StoreError, now_unix};

/// What gc keeps and what it deletes.
#[derive(Debug, Clone)]
pub struct GcPlan {
    /// Bundles to delete, with their sizes.
    pub delete: Vec<(Digest, u64)>,
    /// Bundles kept because a tag points at them or they are recent in a
    /// tag's history.
    pub kept_by_tags: usize,
    /// Unreferenced bundles kept because they are inside the grace period.
    pub kept_by_grace: usize,
    /// Temporary files of killed writers, older than the grace period.
    pub leftovers: Vec<std::path::PathBuf>,
    /// Embedding-cache packs to delete (keys and sizes).
    pub packs: Vec<(String, u64)>,
    /// Packs kept because a retained bundle's uses record names them.
    pub packs_kept_by_bundles: usize,
    /// Unneeded packs kept because they are inside the grace period.
    pub packs_kept_by_grace: usize,
    /// Uses records to delete: of deleted bundles, or of bundles that were
    /// never pushed, older than the grace period.
    pub uses_records: Vec<String>,
    /// Every uses record the plan read (a record written after the plan,
    /// during `execute`, is read again there).
    uses_seen: BTreeSet<String>,
}

/// What [`execute`] deleted.
#[derive(Debug, Clone, Default)]
pub struct GcOutcome {
    /// Bundles (with their manifest copies, markers, commit records).
    pub bundles: Vec<Digest>,
    /// Embedding-cache packs (keys).
    pub packs: Vec<String>,
    /// Uses records (keys).
    pub uses_records: Vec<String>,
}

fn protected(tags: &[shelf_formats::tag::TagRecord], keep: usize) -> BTreeSet<Digest> {
    let mut set = BTreeSet::new();
    for t in tags {
        set.insert(t.digest);
        let mut recent = Vec::new();
        for m in t.history.iter().rev() {
            if !recent.contains(&m.to) {
                recent.push(m.to);
            }
            if recent.len() >= keep {
                break;
            }
        }
        set.extend(recent);
    }
    set
}

/// Decides what to delete; deletes nothing.
pub async fn plan(store: &Store, keep: usize, grace: Duration) -> Result<GcPlan, StoreError> {
    let tags = list_tags(store).await?;
    let keep_set = protected(&tags, keep);
    let objects = store.list(shelf_formats::keys::BUNDLES_PREFIX).await?;
    let cutoff = now_unix() - grace.as_secs() as i64;
    let modified = |key: &str| objects.iter().find(|o| o.key == key).map(|o| o.modified);
    let mut plan = GcPlan {
        delete: Vec::new(),
        kept_by_tags: 0,
        kept_by_grace: 0,
        leftovers: store.leftovers(cutoff).await?,
        packs: Vec::new(),
        packs_kept_by_bundles: 0,
        packs_kept_by_grace: 0,
        uses_records: Vec::new(),
        uses_seen: BTreeSet::new(),
    };
    for o in &objects {
        let Some(digest) = digest_from_bundle_key(&o.key) else {
            continue;
        };
        if keep_set.contains(&digest) {
            plan.kept_by_tags += 1;
            continue;
        }
        let fresh = o.modified > cutoff
            || modified(&bundle_tagged_key(&digest)).is_some_and(|t| t > cutoff);
        if fresh {
            plan.kept_by_grace += 1;
            continue;
        }
        plan.delete.push((digest, o.size));
    }
    plan_cache(store, &objects, cutoff, &mut plan).await?;
    Ok(plan)
}

/// The cache's part of the plan: which packs and uses records go.
async fn plan_cache(
    store: &Store,
    bundles: &[crate::ObjectMeta],
    cutoff: i64,
    plan: &mut GcPlan,
) -> Result<(), StoreError> {
    let present: BTreeSet<Digest> = bundles
        .iter()
        .filter_map(|o| digest_from_bundle_key(&o.key))
        .collect();
    let doomed: BTreeSet<Digest> = plan.delete.iter().map(|(d, _)| *d).collect();
    let cache = store.list(CACHE_PREFIX).await?;
    let mut needed = Needed::default();
    for o in &cache {
        let Some((model, bundle)) = uses_from_key(&o.key) else {
            continue;
        };
        plan.uses_seen.insert(o.key.clone());
        let retained = present.contains(&bundle) && !doomed.contains(&bundle);
        // A fresh record of a bundle not pushed yet: its build just ran.
        let pending = !present.contains(&bundle) && o.modified > cutoff;
        if retained || pending {
            needed.read(store, &o.key, model).await?;
        } else {
            plan.uses_records.push(o.key.clone());
        }
    }
    for o in &cache {
        let Some((model, _)) = pack_from_key(&o.key) else {
            continue;
        };
        if needed.covers(&o.key, &model) {
            plan.packs_kept_by_bundles += 1;
        } else if o.modified > cutoff {
            plan.packs_kept_by_grace += 1;
        } else {
            plan.packs.push((o.key.clone(), o.size));
        }
    }
    Ok(())
}

/// Packs that uses records name; a model whose record could not be read
/// keeps every pack (what it named is unknown).
#[derive(Default)]
struct Needed {
    packs: BTreeSet<String>,
    unknown: BTreeSet<Digest>,
}

impl Needed {
    async fn read(&mut self, store: &Store, key: &str, model: Digest) -> Result<(), StoreError> {
        match crate::cache::read_uses(store, key).await {
            Ok(Some(r)) => {
                self.packs
                    .extend(r.packs.iter().map(|p| cache_pack_key(&model, p)));
            }
            Ok(None) => {}
            Err(StoreError::BadRecord { detail, .. }) => {
                tracing::warn!(record = %key, %detail, "unreadable uses record: keeping every pack of its model");
                self.unknown.insert(model);
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn covers(&self, pack_key: &str, model: &Digest) -> bool {
        self.packs.contains(pack_key) || self.unknown.contains(model)
    }
}

/// Deletes what `plan` chose, re-reading the tags first so a bundle a tag
/// was moved to since the plan was made survives, and the uses records so
/// a pack a build has named since survives. Returns what was deleted.
pub async fn execute(store: &Store, plan: &GcPlan, keep: usize) -> Result<GcOutcome, StoreError> {
    let keep_set = protected(&list_tags(store).await?, keep);
    let mut deleted = Vec::new();
    for (digest, _) in &plan.delete {
        if keep_set.contains(digest) {
            continue;
        }
        store.delete(&bundle_key(digest)).await?;
        store.delete(&bundle_manifest_key(digest)).await?;
        store.delete(&bundle_tagged_key(digest)).await?;
        deleted.push(*digest);
    }
    for path in &plan.leftovers {
        store.remove_leftover(path).await?;
    }
    // Commit records pointing at deleted bundles would only mislead
    // `build --reuse-from`; remove them too.
    for meta in store.list(shelf_formats::keys::COMMITS_PREFIX).await? {
        if let Some(r) = crate::transfer::read_commit_record(store, &meta.key).await?
            && deleted.contains(&r.digest)
        {
            store.delete(&meta.key).await?;
        }
    }
    let mut outcome = GcOutcome {
        bundles: deleted,
        ..GcOutcome::default()
    };
    if plan.packs.is_empty() && plan.uses_records.is_empty() {
        return Ok(outcome);
    }
    let mut since = Needed::default();
    for o in store.list(CACHE_PREFIX).await? {
        if let Some((model, _)) = uses_from_key(&o.key)
            && !plan.uses_seen.contains(&o.key)
        {
            since.read(store, &o.key, model).await?;
        }
    }
    for (key, _) in &plan.packs {
        let spared = pack_from_key(key).is_some_and(|(model, _)| since.covers(key, &model));
        if !spared {
            store.delete(key).await?;
            outcome.packs.push(key.clone());
        }
    }
    for key in &plan.uses_records {
        store.delete(key).await?;
        outcome.uses_records.push(key.clone());
    }
    Ok(outcome)
}
