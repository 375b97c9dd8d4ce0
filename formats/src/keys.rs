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
/// Prefix of the embedding cache (packs and uses records of every model).
pub const CACHE_PREFIX: &str = "cache/";

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

/// Listing prefix of one model's packs: `cache/<model-hex>/packs/`.
pub fn cache_packs_prefix(model: &Digest) -> String {
    format!("{CACHE_PREFIX}{}/packs/", model.hex())
}

/// Key of an embedding-cache pack: `cache/<model-hex>/packs/<hex>.pack`,
/// named by the sha256 of its bytes. Immutable once written.
pub fn cache_pack_key(model: &Digest, pack: &Digest) -> String {
    format!("{}{}.pack", cache_packs_prefix(model), pack.hex())
}

/// The (model, pack) digests in a pack key, if it is one.
pub fn pack_from_key(key: &str) -> Option<(Digest, Digest)> {
    let (model, rest) = key.strip_prefix(CACHE_PREFIX)?.split_once('/')?;
    let pack = rest.strip_prefix("packs/")?.strip_suffix(".pack")?;
    Some((model.parse().ok()?, pack.parse().ok()?))
}

/// Listing prefix of one model's uses records: `cache/<model-hex>/uses/`.
pub fn cache_uses_prefix(model: &Digest) -> String {
    format!("{CACHE_PREFIX}{}/uses/", model.hex())
}

/// Key of a uses record: `cache/<model-hex>/uses/<bundle-hex>/<record-hex>.json`,
/// the record named by the sha256 of its bytes, so a bundle built twice
/// from other packs has two records and neither overwrites the other.
pub fn cache_uses_key(model: &Digest, bundle: &Digest, record: &Digest) -> String {
    format!(
        "{}{}/{}.json",
        cache_uses_prefix(model),
        bundle.hex(),
        record.hex()
    )
}

/// The (model, bundle) digests in a uses-record key, if it is one.
pub fn uses_from_key(key: &str) -> Option<(Digest, Digest)> {
    let (model, rest) = key.strip_prefix(CACHE_PREFIX)?.split_once('/')?;
    let (bundle, record) = rest.strip_prefix("uses/")?.split_once('/')?;
    record.strip_suffix(".json")?.parse::<Digest>().ok()?;
    Some((model.parse().ok()?, bundle.parse().ok()?))
}

/// Largest tag record a reader accepts. A record keeps every move of its
/// tag (about 300 bytes each), so this is tens of thousands of moves.
pub const MAX_TAG_RECORD_BYTES: u64 = 16 << 20;
/// Largest commit record, uses record or marker a reader accepts (a few
/// hundred bytes each; a uses record lists one digest per pack).
pub const MAX_RECORD_BYTES: u64 = 16 << 20;
/// Largest object a reader accepts under a key this layout does not name.
pub const MAX_OTHER_OBJECT_BYTES: u64 = 64 << 20;

/// The most bytes the object at `key` may have: what a reader of the store
/// reads at most before refusing it (a tag record linked to a device, an
/// object grown beyond any valid one). A bundle is bounded by the bundle
/// reader's archive limit, its manifest copy by the manifest limit, a pack
/// by [`crate::embedding_cache::READ_LIMIT_BYTES`].
pub fn max_object_bytes(key: &str) -> u64 {
    let limits = crate::bundle::Limits::default();
    if let Some(rest) = key.strip_prefix(BUNDLES_PREFIX) {
        return if rest.ends_with(".tar.zst") {
            limits.max_archive_bytes
        } else if rest.ends_with(".manifest.json") {
            limits.max_manifest_bytes
        } else {
            MAX_RECORD_BYTES
        };
    }
    if key.starts_with(TAGS_PREFIX) {
        return MAX_TAG_RECORD_BYTES;
    }
    if key.starts_with(COMMITS_PREFIX) || uses_from_key(key).is_some() {
        return MAX_RECORD_BYTES;
    }
    if pack_from_key(key).is_some() {
        return crate::embedding_cache::READ_LIMIT_BYTES;
    }
    MAX_OTHER_OBJECT_BYTES
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

    #[test]
    fn cache_keys_follow_the_documented_layout_and_parse_back() {
        let (m, p, b) = (Digest::of(b"m"), Digest::of(b"p"), Digest::of(b"b"));
        let pack = cache_pack_key(&m, &p);
        assert_eq!(pack, format!("cache/{}/packs/{}.pack", m.hex(), p.hex()));
        assert!(pack.starts_with(&cache_packs_prefix(&m)));
        assert_eq!(pack_from_key(&pack), Some((m, p)));
        let uses = cache_uses_key(&m, &b, &p);
        assert_eq!(
            uses,
            format!("cache/{}/uses/{}/{}.json", m.hex(), b.hex(), p.hex())
        );
        assert!(uses.starts_with(&cache_uses_prefix(&m)));
        assert_eq!(uses_from_key(&uses), Some((m, b)));
        assert_eq!(pack_from_key(&uses), None);
        assert_eq!(uses_from_key(&pack), None);
        assert_eq!(
            pack_from_key(&format!("cache/{}/packs/x.pack", m.hex())),
            None
        );
        assert_eq!(pack_from_key("bundles/sha256/x.tar.zst"), None);
    }

    #[test]
    fn every_kind_of_object_has_its_own_bound() {
        let (d, m) = (Digest::of(b"b"), Digest::of(b"m"));
        let limits = crate::bundle::Limits::default();
        assert_eq!(max_object_bytes(&bundle_key(&d)), limits.max_archive_bytes);
        assert_eq!(
            max_object_bytes(&bundle_manifest_key(&d)),
            limits.max_manifest_bytes
        );
        assert_eq!(max_object_bytes(&bundle_tagged_key(&d)), MAX_RECORD_BYTES);
        assert_eq!(
            max_object_bytes(&tag_key("prod").unwrap()),
            MAX_TAG_RECORD_BYTES
        );
        assert_eq!(
            max_object_bytes(&commit_record_key("abc", &d)),
            MAX_RECORD_BYTES
        );
        assert_eq!(
            max_object_bytes(&cache_pack_key(&m, &d)),
            crate::embedding_cache::READ_LIMIT_BYTES
        );
        assert_eq!(
            max_object_bytes(&cache_uses_key(&m, &d, &d)),
            MAX_RECORD_BYTES
        );
        assert_eq!(max_object_bytes("elsewhere/x"), MAX_OTHER_OBJECT_BYTES);
    }
}
