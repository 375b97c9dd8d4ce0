//! The object-store key layout, relative to the store's prefix (an S3
//! `bucket/prefix` or a local directory). Documented in docs/formats/store-v1.md.

use crate::digest::Digest;
use crate::names::{TagNameError, validate_tag_name};

/// Prefix of every bundle object (bundles, manifest copies, markers).
pub const BUNDLES_PREFIX: &str = "bundles/sha256/";
/// Prefix of every tag record.
pub const TAGS_PREFIX: &str = "tags/";
/// Prefix of every commit record.
pub const COMMITS_PREFIX: &str = "commits/";

/// Key of a bundle: `bundles/sha256/<hex>.tar.zst`. Immutable once written.
pub fn bundle_key(digest: &Digest) -> String {
    format!("{BUNDLES_PREFIX}{}.tar.zst", digest.hex())
}

/// Key of a bundle's manifest copy: `bundles/sha256/<hex>.manifest.json`.
/// Written at push so tag moves and listings can show a bundle's commit
/// without downloading it. Informational: servers trust only the bundle.
pub fn bundle_manifest_key(digest: &Digest) -> String {
    format!("{BUNDLES_PREFIX}{}.manifest.json", digest.hex())
}

/// Key of a bundle's "recently tagged" marker:
/// `bundles/sha256/<hex>.tagged`. A tag move rewrites it before the tag
/// itself; gc never deletes a bundle whose marker is younger than its grace
/// period (docs/store.md).
pub fn bundle_tagged_key(digest: &Digest) -> String {
    format!("{BUNDLES_PREFIX}{}.tagged", digest.hex())
}

/// The digest in a bundle key (`bundles/sha256/<hex>.tar.zst`), if it is one.
pub fn digest_from_bundle_key(key: &str) -> Option<Digest> {
    key.strip_prefix(BUNDLES_PREFIX)?
        .strip_suffix(".tar.zst")?
        .parse()
        .ok()
}

/// Key of a tag record: `tags/<name>.json`. The name is validated first so a
/// tag can never address a key outside `tags/`.
pub fn tag_key(name: &str) -> Result<String, TagNameError> {
    validate_tag_name(name)?;
    Ok(format!("{TAGS_PREFIX}{name}.json"))
}

/// The tag a tag-record key (`tags/<name>.json`) is for, if it is one with
/// a valid name.
pub fn tag_from_key(key: &str) -> Option<&str> {
    let name = key.strip_prefix(TAGS_PREFIX)?.strip_suffix(".json")?;
    validate_tag_name(name).is_ok().then_some(name)
}

/// Key of a commit record: `commits/<commit>/<settings-id>.json`, mapping a
/// commit built with given settings and model to the bundle it produced.
pub fn commit_record_key(commit: &str, settings_id: &Digest) -> String {
    format!("{COMMITS_PREFIX}{commit}/{}.json", settings_id.hex())
}

/// The listing prefix of every commit record of commits whose id starts
/// with `commit_prefix` (lowercased).
pub fn commit_records_prefix(commit_prefix: &str) -> String {
    format!("{COMMITS_PREFIX}{}", commit_prefix.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let d = Digest::of(b"bundle");
        assert_eq!(
            bundle_key(&d),
            format!("bundles/sha256/{}.tar.zst", d.hex())
        );
        assert_eq!(tag_key("production").unwrap(), "tags/production.json");
        assert!(tag_key("../bundles/x").is_err());
        assert_eq!(digest_from_bundle_key(&bundle_key(&d)), Some(d));
        assert_eq!(digest_from_bundle_key("bundles/sha256/x.tar.zst"), None);
        assert!(bundle_manifest_key(&d).ends_with(".manifest.json"));
        assert_eq!(tag_from_key("tags/v1.2.json"), Some("v1.2"));
        assert_eq!(tag_from_key("tags/a/b.json"), None);
        assert_eq!(tag_from_key("tags/x.txt"), None);
        assert_eq!(tag_from_key("bundles/x.json"), None);
        assert_eq!(commit_records_prefix("ABC"), "commits/abc");
        assert_eq!(
            commit_record_key("abc", &d),
            format!("commits/abc/{}.json", d.hex())
        );
    }
}
