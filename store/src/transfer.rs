//! Moving bundles in and out of a store, verified at both ends.

use std::path::{Path, PathBuf};

use shelf_formats::Digest;
use shelf_formats::bundle::{
    Limits, VerifiedBundle, bundle_file_name, digest_from_file_name, verify_file,
};
use shelf_formats::commit_record::{COMMIT_RECORD_SCHEMA, CommitRecord, settings_id};
use shelf_formats::keys::{bundle_key, bundle_manifest_key, commit_record_key};

use crate::{Created, Store, StoreError, now_rfc3339};

/// What `push` did.
#[derive(Debug, Clone)]
pub struct PushOutcome {
    /// The bundle, as verified before upload.
    pub bundle: VerifiedBundle,
    /// Whether this push uploaded it (`false`: it was already there).
    pub uploaded: bool,
    /// The commit record key written (or found).
    pub commit_record: String,
}

/// Pushes a bundle file: verifies it, uploads it create-only under
/// `bundles/sha256/<hex>.tar.zst`, downloads and verifies what the store
/// now holds, then records its manifest copy and the commit record. A bundle
/// that is already there is not uploaded again.
pub async fn push_bundle(store: &Store, path: &Path) -> Result<PushOutcome, StoreError> {
    let bundle = verify_file(
        path,
        digest_from_file_name(path).as_ref(),
        &Limits::default(),
    )?;
    let digest = bundle.digest;
    let key = bundle_key(&digest);
    let uploaded = match store.head(&key).await? {
        Some(_) => false,
        None => store.put_new_file(&key, path).await? == Created::New,
    };
    // Verify what the store holds now, whoever uploaded it: a torn or
    // corrupted object must not sit under a digest name unnoticed.
    let check_dir = tempfile::Builder::new()
        .prefix("shelf-push-check-")
        .tempdir()
        .map_err(|e| StoreError::io(std::env::temp_dir(), e))?;
    let fetched = fetch_bundle(store, &digest, check_dir.path()).await?;
    drop(fetched);

    let manifest = &bundle.manifest;
    store
        .put_new(&bundle_manifest_key(&digest), manifest.to_canonical_json())
        .await?;
    let sid = settings_id(&manifest.settings, &manifest.model);
    let record_key = commit_record_key(&manifest.source.commit, &sid);
    let record = CommitRecord {
        schema: COMMIT_RECORD_SCHEMA.into(),
        repository: manifest.source.repository.clone(),
        commit: manifest.source.commit.clone(),
        settings_id: sid,
        digest,
        created_at: now_rfc3339(),
    };
    let mut json = serde_json::to_vec_pretty(&record).unwrap_or_default();
    json.push(b'\n');
    if store.put_new(&record_key, json).await? == Created::AlreadyExists {
        // A rebuild of the same commit and settings. If it produced another
        // digest the build was not reproducible: keep the first record, say so.
        if let Some(existing) = read_commit_record(store, &record_key).await?
            && existing.digest != digest
        {
            tracing::warn!(
                commit = %manifest.source.commit,
                recorded = %existing.digest,
                pushed = %digest,
                "commit record already names another bundle for these settings; keeping it"
            );
        }
    }
    Ok(PushOutcome {
        bundle,
        uploaded,
        commit_record: record_key,
    })
}

/// Downloads the bundle `digest` into `dir/<hex>.tar.zst` and verifies it
/// against the digest; nothing is left at that name unless it verified.
/// Returns the file's path.
pub async fn fetch_bundle(
    store: &Store,
    digest: &Digest,
    dir: &Path,
) -> Result<PathBuf, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let final_path = dir.join(bundle_file_name(digest));
    let tmp = tempfile::Builder::new()
        .prefix(".fetching-")
        .tempdir_in(dir)
        .map_err(|e| StoreError::io(dir, e))?;
    let tmp_file = tmp.path().join("bundle");
    if !store.get_to_file(&bundle_key(digest), &tmp_file).await? {
        return Err(StoreError::MissingBundle {
            store: store.describe(),
            digest: *digest,
        });
    }
    verify_file(&tmp_file, Some(digest), &Limits::default())?;
    std::fs::rename(&tmp_file, &final_path).map_err(|e| StoreError::io(&final_path, e))?;
    Ok(final_path)
}

/// Reads a commit record, if present.
pub async fn read_commit_record(
    store: &Store,
    key: &str,
) -> Result<Option<CommitRecord>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    let record: CommitRecord =
        serde_json::from_slice(&obj.bytes).map_err(|e| StoreError::BadRecord {
            store: store.describe(),
            key: key.to_string(),
            detail: e.to_string(),
        })?;
    if record.schema != COMMIT_RECORD_SCHEMA {
        return Err(StoreError::BadRecord {
            store: store.describe(),
            key: key.to_string(),
            detail: format!("schema '{}' is not {COMMIT_RECORD_SCHEMA}", record.schema),
        });
    }
    Ok(Some(record))
}
