//! What a server follows, and where it points now: one tag, or the newest
//! tag (by semantic version) whose name matches a pattern such as `v*`.
//! Polling is cheap: a tag record is read with `If-None-Match`, so an
//! unchanged tag costs one small conditional request.

use std::collections::HashMap;

use globset::{Glob, GlobMatcher};
use shelf_formats::keys::{self, tag_key};
use shelf_formats::names::validate_tag_name;
use shelf_formats::tag::TagRecord;
use shelf_store::{Conditional, ETag, Store, StoreError};

/// The follow target given on the command line.
#[derive(Debug, Clone)]
pub enum Follow {
    /// Exactly this tag.
    Tag(String),
    /// The newest tag whose name matches, by semantic version.
    Newest {
        /// The pattern as given.
        pattern: String,
        /// It, compiled.
        matcher: GlobMatcher,
    },
}

impl std::fmt::Display for Follow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Follow::Tag(t) => f.write_str(t),
            Follow::Newest { pattern, .. } => f.write_str(pattern),
        }
    }
}

impl Follow {
    /// A tag name, or a glob (`*`, `?`, `[…]`) selecting the newest match.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.contains(['*', '?', '[']) {
            let matcher = Glob::new(s)
                .map_err(|e| format!("'{s}' is not a valid tag pattern: {e}"))?
                .compile_matcher();
            return Ok(Follow::Newest {
                pattern: s.to_string(),
                matcher,
            });
        }
        validate_tag_name(s).map_err(|e| e.to_string())?;
        Ok(Follow::Tag(s.to_string()))
    }
}

/// Where the target points now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The tag (for a pattern: the newest match).
    pub tag: String,
    /// Its record.
    pub record: TagRecord,
}

/// Why the target could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tag does not exist (yet).
    #[error("tag '{tag}' does not exist in {store}; create it with `shelf tag {tag} <digest>`")]
    NoSuchTag {
        /// The tag.
        tag: String,
        /// The store.
        store: String,
    },
    /// No tag matches the pattern.
    #[error(
        "no tag in {store} matches '{pattern}' with a semantic version (e.g. v1.2.0); tags that are not versions are ignored"
    )]
    NoMatch {
        /// The pattern.
        pattern: String,
        /// The store.
        store: String,
    },
    /// A tag record cannot be read.
    #[error("tag record {key} in {store} is invalid: {detail}")]
    BadRecord {
        /// Its key.
        key: String,
        /// The store.
        store: String,
        /// What is wrong.
        detail: String,
    },
}

/// Resolves a [`Follow`] target repeatedly, remembering each record's
/// entity tag so unchanged records are not transferred again.
#[derive(Debug)]
pub struct Resolver {
    follow: Follow,
    known: HashMap<String, (ETag, TagRecord)>,
}

impl Resolver {
    /// A resolver for `follow`.
    pub fn new(follow: Follow) -> Self {
        Self {
            follow,
            known: HashMap::new(),
        }
    }

    /// The target.
    pub fn follow(&self) -> &Follow {
        &self.follow
    }

    /// Where the target points now.
    pub async fn resolve(&mut self, store: &Store) -> Result<Resolved, FollowError> {
        let tag = match &self.follow {
            Follow::Tag(t) => t.clone(),
            Follow::Newest { pattern, matcher } => {
                let listed = store.list(keys::TAGS_PREFIX).await?;
                let names = listed.iter().filter_map(|m| {
                    keys::tag_from_key(&m.key)
                        .filter(|name| matcher.is_match(name))
                        .map(str::to_string)
                });
                newest(names).ok_or_else(|| FollowError::NoMatch {
                    pattern: pattern.clone(),
                    store: store.describe(),
                })?
            }
        };
        let record = self.read(store, &tag).await?;
        Ok(Resolved { tag, record })
    }

    async fn read(&mut self, store: &Store, tag: &str) -> Result<TagRecord, FollowError> {
        let key = tag_key(tag).map_err(|e| StoreError::Refused(e.to_string()))?;
        let known = self.known.get(tag).map(|(etag, _)| etag);
        match store.get_if_changed(&key, known).await? {
            Conditional::NotModified => match self.known.get(tag) {
                Some((_, record)) => Ok(record.clone()),
                None => Err(FollowError::BadRecord {
                    key,
                    store: store.describe(),
                    detail: "the store answered 'not modified' to an unconditional read".into(),
                }),
            },
            Conditional::Absent => {
                self.known.remove(tag);
                Err(FollowError::NoSuchTag {
                    tag: tag.to_string(),
                    store: store.describe(),
                })
            }
            Conditional::Changed(obj) => {
                let record =
                    TagRecord::from_json(&obj.bytes).map_err(|e| FollowError::BadRecord {
                        key: key.clone(),
                        store: store.describe(),
                        detail: e.to_string(),
                    })?;
                if record.tag != tag {
                    return Err(FollowError::BadRecord {
                        key,
                        store: store.describe(),
                        detail: format!("it names tag '{}'", record.tag),
                    });
                }
                self.known
                    .insert(tag.to_string(), (obj.etag, record.clone()));
                Ok(record)
            }
        }
    }
}

/// A tag name's semantic version: `v1.2.3`, `1.2.3`, `v1.2` (= 1.2.0) and
/// `v1` (= 1.0.0), with optional pre-release and build parts.
pub fn tag_version(name: &str) -> Option<semver::Version> {
    let bare = name
        .strip_prefix('v')
        .or_else(|| name.strip_prefix('V'))
        .unwrap_or(name);
    if let Ok(v) = semver::Version::parse(bare) {
        return Some(v);
    }
    // Pad a short core (`1.2`, `1`) before any pre-release or build part.
    let split = bare.find(['-', '+']).unwrap_or(bare.len());
    let (core, rest) = bare.split_at(split);
    let parts = core.split('.').count();
    if core.is_empty() || parts > 2 {
        return None;
    }
    let padded = format!("{core}{}{rest}", ".0".repeat(3 - parts));
    semver::Version::parse(&padded).ok()
}

/// The name with the highest semantic version; names that are not versions
/// are ignored. Equal versions (`v1.0` and `1.0.0`) tie-break by name, so
/// the choice is stable.
pub fn newest(names: impl IntoIterator<Item = String>) -> Option<String> {
    names
        .into_iter()
        .filter_map(|n| tag_version(&n).map(|v| (v, n)))
        .max_by(|(va, na), (vb, nb)| va.cmp(vb).then_with(|| na.cmp(nb)))
        .map(|(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_order_semantically_not_as_text() {
        let names = [
            "v1.9.0",
            "v1.10.0",
            "v1.10.0-rc.1",
            "latest",
            "v2.0.0-beta",
            "v1.2",
        ];
        assert_eq!(
            newest(names.iter().map(|s| s.to_string())),
            Some("v2.0.0-beta".to_string())
        );
        assert_eq!(
            newest(
                ["v1.9.0", "v1.10.0", "v1.10.0-rc.1"]
                    .iter()
                    .map(|s| s.to_string())
            ),
            Some("v1.10.0".to_string())
        );
        assert_eq!(
            newest(["main", "production"].iter().map(|s| s.to_string())),
            None
        );
    }

    #[test]
    fn short_versions_are_padded() {
        assert_eq!(tag_version("v1.2"), semver::Version::parse("1.2.0").ok());
        assert_eq!(tag_version("3"), semver::Version::parse("3.0.0").ok());
        assert_eq!(
            tag_version("v1.2-rc.1"),
            semver::Version::parse("1.2.0-rc.1").ok()
        );
        assert_eq!(tag_version("v1.2.3.4"), None);
        assert_eq!(tag_version("release"), None);
    }

    #[test]
    fn follow_targets_parse_as_tag_or_pattern() {
        assert!(matches!(Follow::parse("production"), Ok(Follow::Tag(_))));
        let Ok(Follow::Newest { matcher, .. }) = Follow::parse("v*") else {
            panic!("v* is a pattern");
        };
        assert!(matcher.is_match("v1.2.0") && !matcher.is_match("main"));
        assert!(Follow::parse("../etc").is_err());
        assert!(Follow::parse("[").is_err());
    }
}
