//! Tag records: `tags/<name>.json`, a named pointer to a bundle digest with
//! the history of its moves. Specified in docs/formats/store-v1.md.

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Schema identifier written into every tag record.
pub const TAG_RECORD_SCHEMA: &str = "shelf.tag/v1";

/// The current state of one tag, plus its history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagRecord {
    /// Always [`TAG_RECORD_SCHEMA`]; readers refuse other values.
    pub schema: String,
    /// The tag's name (also in the key; repeated so a record stands alone).
    pub tag: String,
    /// The bundle the tag points at now.
    pub digest: Digest,
    /// The commit that bundle was built from.
    pub commit: String,
    /// When the tag was last moved, RFC 3339 UTC (e.g. `2026-11-22T10:00:00Z`).
    pub created_at: String,
    /// Who or what moved it (user, CI job), free text.
    pub set_by: String,
    /// The digest it pointed at before this move, if any.
    pub previous: Option<Digest>,
    /// Every move, oldest first, the current one last.
    #[serde(default)]
    pub history: Vec<TagMove>,
}

/// One move of a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagMove {
    /// When, RFC 3339 UTC.
    pub at: String,
    /// Who or what moved it.
    pub by: String,
    /// The digest before the move (`None` when the tag was created).
    pub from: Option<Digest>,
    /// The digest after the move.
    pub to: Digest,
    /// The commit of `to`.
    pub commit: String,
    /// Why, if the mover said (e.g. `rollback`).
    #[serde(default)]
    pub reason: Option<String>,
}

/// Why bytes are not a tag record this code understands.
#[derive(Debug, thiserror::Error)]
pub enum TagRecordError {
    /// Not JSON of the expected shape.
    #[error("tag record is not valid JSON of schema {TAG_RECORD_SCHEMA}: {0}")]
    Malformed(#[from] serde_json::Error),
    /// Written by a newer or different schema.
    #[error(
        "tag record has schema '{found}', this shelf understands only '{TAG_RECORD_SCHEMA}': upgrade shelf"
    )]
    UnknownSchema {
        /// The schema found.
        found: String,
    },
}

impl TagRecord {
    /// Parses and checks the schema.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TagRecordError> {
        let record: TagRecord = serde_json::from_slice(bytes)?;
        if record.schema != TAG_RECORD_SCHEMA {
            return Err(TagRecordError::UnknownSchema {
                found: record.schema,
            });
        }
        Ok(record)
    }

    /// Canonical pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TagRecord {
        let d = Digest::of(b"a");
        TagRecord {
            schema: TAG_RECORD_SCHEMA.into(),
            tag: "production".into(),
            digest: d,
            commit: "c".repeat(40),
            created_at: "2026-11-22T10:00:00Z".into(),
            set_by: "ci".into(),
            previous: None,
            history: vec![TagMove {
                at: "2026-11-22T10:00:00Z".into(),
                by: "ci".into(),
                from: None,
                to: d,
                commit: "c".repeat(40),
                reason: None,
            }],
        }
    }

    #[test]
    fn round_trips_through_json() {
        let r = record();
        assert_eq!(TagRecord::from_json(&r.to_json()).unwrap(), r);
    }

    #[test]
    fn refuses_unknown_schema_naming_it() {
        let mut r = record();
        r.schema = "shelf.tag/v9".into();
        let err = TagRecord::from_json(&r.to_json()).unwrap_err().to_string();
        assert!(
            err.contains("shelf.tag/v9") && err.contains("upgrade"),
            "{err}"
        );
    }
}
