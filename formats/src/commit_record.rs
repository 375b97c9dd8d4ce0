//! Commit records: `commits/<commit>/<settings-id>.json`, which bundle a
//! commit produced with given settings and model. They let a rebuild of an
//! already-indexed commit (a re-run workflow, a retagged release) cost a
//! lookup instead of a build.

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::digest::Digest;
use crate::manifest::BuildSettings;
use crate::model::ModelIdentity;

/// Schema identifier written into every commit record.
pub const COMMIT_RECORD_SCHEMA: &str = "shelf.commit/v1";

/// One commit's bundle for one settings id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    /// Always [`COMMIT_RECORD_SCHEMA`].
    pub schema: String,
    /// Repository name from the manifest.
    pub repository: String,
    /// The commit id.
    pub commit: String,
    /// See [`settings_id`].
    pub settings_id: Digest,
    /// The bundle built.
    pub digest: Digest,
    /// When the record was written, RFC 3339 UTC.
    pub created_at: String,
}

/// The identity of everything besides the commit that decides a bundle's
/// bytes: sha256 of the canonical JSON of the settings and the model
/// identity. Equal commit + equal settings id => equal bundle.
pub fn settings_id(settings: &BuildSettings, model: &ModelIdentity) -> Digest {
    #[derive(Serialize)]
    struct Identity<'a> {
        settings: &'a BuildSettings,
        model: &'a ModelIdentity,
    }
    let json = serde_json::to_vec(&Identity { settings, model }).unwrap_or_default();
    let mut h = Sha256::new();
    h.update(b"shelf-settings-v1\0");
    h.update(&json);
    Digest::from_bytes(h.finalize().into())
}
