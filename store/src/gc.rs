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

use std::collections::BTreeSet;
use std::time::Duration;

use shelf_formats::Digest;
use shelf_formats::keys::{
    bundle_key, bundle_manifest_key, bundle_tagged_key, digest_from_bundle_key,
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
    Ok(plan)
}

/// Deletes what `plan` chose, re-reading the tags first so a bundle a tag
/// was moved to since the plan was made survives. Returns what was deleted.
pub async fn execute(store: &Store, plan: &GcPlan, keep: usize) -> Result<Vec<Digest>, StoreError> {
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
    Ok(deleted)
}
