//! Tags: named pointers to bundles, moved only by compare-and-swap, with the
//! full history of their moves in the record itself (docs/store.md).

use shelf_formats::Digest;
use shelf_formats::keys::{self, bundle_key, bundle_manifest_key, bundle_tagged_key, tag_key};
use shelf_formats::manifest::Manifest;
use shelf_formats::names::validate_tag_name;
use shelf_formats::tag::{TAG_RECORD_SCHEMA, TagMove, TagRecord};

use crate::{ETag, Store, StoreError, now_rfc3339};

/// How many times a move without `expect` re-reads and retries after losing
/// a race. Each retry re-reads the record, so no history entry is lost.
const MAX_RETRIES: usize = 16;

/// How long a move that lost a race waits before it reads the tag again:
/// 2 ms for the first retry, doubling to 64 ms, plus up to as much again
/// picked by the bundle's digest. Writers that lost together then try again apart, and S3, which
/// refuses every one of several conditional writes that arrive together
/// (409), sees them one at a time.
fn retry_pause(to: &Digest, attempt: usize) -> std::time::Duration {
    let base = 1u64 << attempt.min(6);
    let spread = u64::from(to.as_bytes()[attempt % 32]) % (base + 1);
    std::time::Duration::from_millis(base + spread)
}

/// A request to point a tag at a bundle.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    /// The tag.
    pub tag: String,
    /// The bundle to point at.
    pub to: Digest,
    /// Only move if the tag currently points here (`Some(None)`: only if the
    /// tag does not exist yet). `None`: move whatever it points at, retrying
    /// on concurrent moves.
    pub expect: Option<Option<Digest>>,
    /// Who or what moves it.
    pub by: String,
    /// Why, if given (`rollback` for rollbacks).
    pub reason: Option<String>,
}

/// What a move did.
#[derive(Debug, Clone)]
pub struct TagMoveOutcome {
    /// The record after the move.
    pub record: TagRecord,
    /// Where it pointed before (`None`: created).
    pub previous: Option<Digest>,
    /// `false` when it already pointed at the target (nothing written).
    pub moved: bool,
}

/// Reads a tag's record and entity tag.
pub async fn read_tag(store: &Store, name: &str) -> Result<Option<(TagRecord, ETag)>, StoreError> {
    let key = tag_key(name).map_err(|e| StoreError::Refused(e.to_string()))?;
    let Some(obj) = store.get(&key).await? else {
        return Ok(None);
    };
    let record = TagRecord::from_json(&obj.bytes).map_err(|e| StoreError::BadRecord {
        store: store.describe(),
        key,
        detail: e.to_string(),
    })?;
    Ok(Some((record, obj.etag)))
}

/// The commit a bundle was built from, from its manifest copy in the store
/// (`unknown` if the bundle was put there without one).
pub async fn bundle_commit(store: &Store, digest: &Digest) -> Result<String, StoreError> {
    Ok(match store.get(&bundle_manifest_key(digest)).await? {
        Some(obj) => serde_json::from_slice::<Manifest>(&obj.bytes)
            .map(|m| m.source.commit)
            .unwrap_or_else(|_| "unknown".into()),
        None => "unknown".into(),
    })
}

/// Resolves what a user names as a tag target: a digest (`sha256:…` or 64
/// hex), another tag's name, or a commit id (full or a unique prefix of at
/// least 7 hex characters) with a commit record in the store.
pub async fn resolve_target(store: &Store, target: &str) -> Result<Digest, StoreError> {
    if let Ok(d) = target.parse::<Digest>() {
        return Ok(d);
    }
    if validate_tag_name(target).is_ok()
        && let Some((record, _)) = read_tag(store, target).await?
    {
        return Ok(record.digest);
    }
    let is_hex =
        target.len() >= 7 && target.len() <= 64 && target.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex {
        let records = store
            .list(&shelf_formats::keys::commit_records_prefix(target))
            .await?;
        let mut digests = Vec::new();
        for meta in &records {
            if let Some(r) = crate::transfer::read_commit_record(store, &meta.key).await?
                && !digests.contains(&r.digest)
            {
                digests.push(r.digest);
            }
        }
        match digests.as_slice() {
            [one] => return Ok(*one),
            [] => {}
            many => {
                return Err(StoreError::Refused(format!(
                    "'{target}' matches {} bundles (several commits or settings); name the digest instead",
                    many.len()
                )));
            }
        }
    }
    Err(StoreError::Refused(format!(
        "'{target}' is not a digest, a tag, or a commit with a pushed bundle in {}",
        store.describe()
    )))
}

/// Points a tag at a bundle with compare-and-swap, appending the move to
/// its history. Refuses a bundle that is not in the store.
pub async fn move_tag(store: &Store, req: &MoveRequest) -> Result<TagMoveOutcome, StoreError> {
    let key = tag_key(&req.tag).map_err(|e| StoreError::Refused(e.to_string()))?;
    // Mark the bundle as recently tagged before checking it exists and
    // before the tag moves: gc spares bundles with a fresh marker, which
    // closes the race between this move and a concurrent gc.
    store
        .put(&bundle_tagged_key(&req.to), now_rfc3339().into_bytes())
        .await?;
    if store.head(&bundle_key(&req.to)).await?.is_none() {
        store.delete(&bundle_tagged_key(&req.to)).await?;
        return Err(StoreError::MissingBundle {
            store: store.describe(),
            digest: req.to,
        });
    }
    let commit = bundle_commit(store, &req.to).await?;
    for attempt in 0..MAX_RETRIES {
        if attempt > 0 {
            tokio::time::sleep(retry_pause(&req.to, attempt)).await;
        }
        let current = read_tag(store, &req.tag).await?;
        let current_digest = current.as_ref().map(|(r, _)| r.digest);
        if let Some(expected) = &req.expect
            && *expected != current_digest
        {
            return Err(StoreError::Conflict {
                store: store.describe(),
                key: format!(
                    "{key} (expected {}, found {})",
                    expected.map_or("no tag".to_string(), |d| d.to_string()),
                    current_digest.map_or("no tag".to_string(), |d| d.to_string())
                ),
            });
        }
        if let Some((record, _)) = &current
            && record.digest == req.to
        {
            return Ok(TagMoveOutcome {
                record: record.clone(),
                previous: Some(record.digest),
                moved: false,
            });
        }
        let at = now_rfc3339();
        let mut history = current
            .as_ref()
            .map(|(r, _)| r.history.clone())
            .unwrap_or_default();
        history.push(TagMove {
            at: at.clone(),
            by: req.by.clone(),
            from: current_digest,
            to: req.to,
            commit: commit.clone(),
            reason: req.reason.clone(),
        });
        let record = TagRecord {
            schema: TAG_RECORD_SCHEMA.into(),
            tag: req.tag.clone(),
            digest: req.to,
            commit: commit.clone(),
            created_at: at,
            set_by: req.by.clone(),
            previous: current_digest,
            history,
        };
        let etag = current.as_ref().map(|(_, e)| e);
        match store.put_if(&key, record.to_json(), etag).await {
            Ok(_) => {
                return Ok(TagMoveOutcome {
                    record,
                    previous: current_digest,
                    moved: true,
                });
            }
            Err(StoreError::Conflict { .. }) if req.expect.is_none() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(StoreError::Conflict {
        store: store.describe(),
        key: format!("{key} (still contended after {MAX_RETRIES} attempts)"),
    })
}

/// Where a rollback goes.
#[derive(Debug, Clone)]
pub enum RollbackTarget {
    /// This many moves back in the tag's history (1 = the previous bundle).
    Steps(usize),
    /// A digest, tag or commit (see [`resolve_target`]).
    To(String),
}

/// Moves a tag back: to the bundle it pointed at `steps` moves ago, or to a
/// named target. Conditional on the tag not moving meanwhile. Nothing is
/// rebuilt: the bundle must still be in the store.
pub async fn rollback(
    store: &Store,
    tag: &str,
    target: &RollbackTarget,
    by: &str,
) -> Result<TagMoveOutcome, StoreError> {
    let Some((record, _)) = read_tag(store, tag).await? else {
        return Err(StoreError::NoSuchTag {
            store: store.describe(),
            tag: tag.to_string(),
        });
    };
    let to = match target {
        RollbackTarget::To(t) => resolve_target(store, t).await?,
        RollbackTarget::Steps(steps) => {
            let n = record.history.len();
            if *steps == 0 || *steps >= n {
                return Err(StoreError::Refused(format!(
                    "tag '{tag}' has {} earlier position(s) in its history; cannot go back {steps}",
                    n.saturating_sub(1)
                )));
            }
            record.history[n - 1 - steps].to
        }
    };
    move_tag(
        store,
        &MoveRequest {
            tag: tag.to_string(),
            to,
            expect: Some(Some(record.digest)),
            by: by.to_string(),
            reason: Some("rollback".into()),
        },
    )
    .await
}

/// Every tag record in the store, sorted by name. Records that cannot be
/// read are reported as errors rather than skipped.
pub async fn list_tags(store: &Store) -> Result<Vec<TagRecord>, StoreError> {
    let mut out = Vec::new();
    for meta in store.list(keys::TAGS_PREFIX).await? {
        let Some(name) = keys::tag_from_key(&meta.key) else {
            continue;
        };
        if let Some((record, _)) = read_tag(store, name).await? {
            out.push(record);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_differ_between_bundles_and_stay_short() {
        let (a, b) = (Digest::from_bytes([7; 32]), Digest::from_bytes([200; 32]));
        let total: std::time::Duration = (1..MAX_RETRIES).map(|n| retry_pause(&a, n)).sum();
        assert!(total < std::time::Duration::from_secs(2), "{total:?}");
        for n in 1..MAX_RETRIES {
            let p = retry_pause(&a, n);
            let base = std::time::Duration::from_millis(1 << n.min(6));
            assert!(p >= base && p <= base * 2, "attempt {n}: {p:?}");
        }
        assert_ne!(retry_pause(&a, 6), retry_pause(&b, 6));
    }
}
