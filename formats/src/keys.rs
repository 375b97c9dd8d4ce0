//! The object-store key layout, relative to the store's prefix (an S3
//! `bucket/prefix` or a local directory). Documented in docs/formats/store-v1.md.

use crate::digest::Digest;
use crate::names::{TagNameError, validate_tag_name};

/// Key of a bundle: `bundles/sha256/<hex>.tar.zst`. Immutable once written.
pub fn bundle_key(digest: &Digest) -> String {
    format!("bundles/sha256/{}.tar.zst", digest.hex())
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
        assert_eq!(
            commit_record_key("abc", &d),
            format!("commits/abc/{}.json", d.hex())
        );
    }
}
