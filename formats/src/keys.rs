//! The object-store key layout, relative to the store's prefix (an S3
//! `bucket/prefix` or a local directory). Documented in docs/formats/store-v1.md.

use crate::digest::Digest;
use crate::names::{TagNameError, validate_tag_name};

/// Key of a bundle: `bundles/sha256/<hex>.tar.zst`. Immutable once written.
pub fn bundle_key(digest: &Digest) -> String {
    format!("bundles/sha256/{}.tar.zst", digest.hex())
}

/// Key of a bundle's manifest copy: `bundles/sha256/<hex>.manifest.json`.
/// Written at push so tag moves and listings can show a bundle's commit
/// without downloading it. Informational: servers trust only the bundle.
pub fn bundle_manifest_key(digest: &Digest) -> String {
    format!("bundles/sha256/{}.manifest.json", digest.hex())
}

/// Key of a bundle's "recently tagged" marker:
/// `bundles/sha256/<hex>.tagged`. A tag move rewrites it before the tag
/// itself; gc never deletes a bundle whose marker is younger than its grace
/// period (docs/store.md).
pub fn bundle_tagged_key(digest: &Digest) -> String {
    format!("bundles/sha256/{}.tagged", digest.hex())
}

/// The digest in a bundle key (`bundles/sha256/<hex>.tar.zst`), if it is one.
pub fn digest_from_bundle_key(key: &str) -> Option<Digest> {
    key.strip_prefix("bundles/sha256/")?
        .strip_suffix(".tar.zst")?
        .parse()
        .ok()
}

/// Key of a tag record: `tags/<name>.json`. The name is validated first so a
/// tag can never address a key outside `tags/`.
pub fn tag_key(name: &str) -> Result<String, TagNameError> {
    validate_tag_name(name)?;
    Ok(format!("tags/{name}.json"))
}

/// Key of a commit record: `commits/<commit>/<settings-id>.json`, mapping a
/// commit built with given settings and model to the bundle it produced.
pub fn commit_record_key(commit: &str, settings_id: &Digest) -> String {
    format!("commits/{commit}/{}.json", settings_id.hex())
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
        assert_eq!(
            commit_record_key("abc", &d),
            format!("commits/abc/{}.json", d.hex())
        );
    }
}
