//! Bundle format v1: the writer is deterministic, the reader verifies
//! everything and refuses every hostile archive class with its own error,
//! leaving nothing behind.

use std::fs;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sha2::{Digest as _, Sha256};
use shelf_formats::bundle::{BundleError, Limits, unpack, unpack_file, verify_file, write_bundle};
use shelf_formats::manifest::{Manifest, Member};
use shelf_formats::{Digest, FORMAT_VERSION};

fn manifest() -> Manifest {
    shelf_testkit::sample_manifest(&"a".repeat(40))
}

/// Member files in a fresh directory.
fn members(dir: &Path, files: &[(&str, &[u8])]) -> Vec<(String, PathBuf)> {
    let src = dir.join("src");
    fs::create_dir_all(&src).unwrap();
    files
        .iter()
        .map(|(name, body)| {
            let path = src.join(name);
            fs::write(&path, body).unwrap();
            (name.to_string(), path)
        })
        .collect()
}

fn sample_members(dir: &Path) -> Vec<(String, PathBuf)> {
    members(
        dir,
        &[
            ("vectors.usearch", &[7u8; 5000][..]),
            ("chunks.bin", b"chunk text, twice: chunk text"),
        ],
    )
}

/// Leftovers of an unpack in `parent`: anything but `keep`.
fn leftovers(parent: &Path, keep: &[&str]) -> Vec<String> {
    fs::read_dir(parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !keep.contains(&n.as_str()))
        .collect()
}

#[test]
fn same_inputs_give_byte_identical_bundles() {
    let t = tempfile::tempdir().unwrap();
    let files = sample_members(t.path());
    let a = write_bundle(&t.path().join("a"), manifest(), &files).unwrap();
    let b = write_bundle(&t.path().join("b"), manifest(), &files).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(fs::read(&a.path).unwrap(), fs::read(&b.path).unwrap());
    assert_eq!(
        a.path.file_name().unwrap().to_string_lossy(),
        format!("{}.tar.zst", a.digest.hex())
    );
    // The digest is the sha256 of the file's bytes, nothing else.
    let bytes = fs::read(&a.path).unwrap();
    assert_eq!(Digest::of(&bytes), a.digest);

    // Any change of content changes the digest.
    let mut m = manifest();
    m.source.commit = "c".repeat(40);
    let c = write_bundle(&t.path().join("c"), m, &files).unwrap();
    assert_ne!(a.digest, c.digest);
}

#[test]
fn member_order_given_to_the_writer_does_not_matter() {
    let t = tempfile::tempdir().unwrap();
    let mut files = sample_members(t.path());
    let a = write_bundle(&t.path().join("a"), manifest(), &files).unwrap();
    files.reverse();
    let b = write_bundle(&t.path().join("b"), manifest(), &files).unwrap();
    assert_eq!(a.digest, b.digest);
    let names: Vec<_> = a.manifest.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["chunks.bin", "vectors.usearch"]);
}

#[test]
fn writer_leaves_no_temporary_files() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    let w = write_bundle(&out, manifest(), &sample_members(t.path())).unwrap();
    let name = w.path.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(leftovers(&out, &[&name]), Vec::<String>::new());
}

#[test]
fn round_trip_unpacks_exact_members_and_manifest() {
    let t = tempfile::tempdir().unwrap();
    let files = sample_members(t.path());
    let w = write_bundle(&t.path().join("out"), manifest(), &files).unwrap();
    let dest = t.path().join("cache").join(w.digest.hex());
    let u = unpack_file(&w.path, Some(&w.digest), &dest, &Limits::default()).unwrap();
    assert_eq!(u.bundle.digest, w.digest);
    assert_eq!(u.bundle.manifest, w.manifest);
    assert_eq!(u.bundle.manifest.format_version, FORMAT_VERSION);
    for (name, src) in &files {
        assert_eq!(fs::read(dest.join(name)).unwrap(), fs::read(src).unwrap());
    }
    let on_disk: Manifest =
        serde_json::from_slice(&fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(on_disk, w.manifest);
    assert_eq!(
        leftovers(dest.parent().unwrap(), &[&w.digest.hex()]),
        Vec::<String>::new()
    );

    let v = verify_file(&w.path, Some(&w.digest), &Limits::default()).unwrap();
    assert_eq!(v.size, fs::metadata(&w.path).unwrap().len());
}

// ---- hostile archives, crafted entry by entry ----

struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    data: Vec<u8>,
    /// Size written in the header when it should lie about the data.
    header_size: Option<u64>,
}

fn file(name: &str, data: &[u8]) -> Raw<'static> {
    Raw {
        name: Box::leak(name.as_bytes().to_vec().into_boxed_slice()),
        kind: tar::EntryType::Regular,
        data: data.to_vec(),
        header_size: None,
    }
}

fn special(name: &'static str, kind: tar::EntryType) -> Raw<'static> {
    Raw {
        name: name.as_bytes(),
        kind,
        data: vec![],
        header_size: None,
    }
}

fn tar_bytes(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let mut h = tar::Header::new_ustar();
        // Written raw: tar's own set_path refuses the hostile names we need.
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..e.name.len()].copy_from_slice(e.name);
        h.set_size(e.header_size.unwrap_or(e.data.len() as u64));
        h.set_mode(0o644);
        h.set_entry_type(e.kind);
        if matches!(e.kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.set_link_name("/etc/passwd").unwrap();
        }
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(&e.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn zst(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

fn sha(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

fn manifest_listing(listed: &[(&str, &[u8])]) -> Vec<u8> {
    let mut m = manifest();
    m.format_version = FORMAT_VERSION;
    m.members = listed
        .iter()
        .map(|(name, data)| Member {
            name: name.to_string(),
            sha256: sha(data),
            size: data.len() as u64,
        })
        .collect();
    m.to_canonical_json()
}

/// Unpacks `archive` into a fresh destination and asserts that it failed and
/// left nothing behind; returns the error.
fn refuse(archive: &[u8], limits: &Limits) -> BundleError {
    let t = tempfile::tempdir().unwrap();
    let dest = t.path().join("bundle");
    let err = unpack(archive, None, &dest, limits).expect_err("hostile archive was accepted");
    assert!(!dest.exists(), "a refused bundle left {dest:?}");
    assert_eq!(
        leftovers(t.path(), &[]),
        Vec::<String>::new(),
        "staging left behind"
    );
    err
}

fn with_manifest(listed: &[(&str, &[u8])], rest: Vec<Raw>) -> Vec<u8> {
    let mut entries = vec![file("manifest.json", &manifest_listing(listed))];
    entries.extend(rest);
    zst(&tar_bytes(&entries))
}

#[test]
fn refuses_parent_directory_paths() {
    let a = with_manifest(&[], vec![file("../evil", b"x")]);
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::UnsafeEntry { name, reason } if name == "../evil" && reason.contains("..")),
        "{err}"
    );
}

#[test]
fn refuses_absolute_paths() {
    let a = with_manifest(&[], vec![file("/tmp/evil", b"x")]);
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::UnsafeEntry { reason, .. } if *reason == "absolute path"),
        "{err}"
    );
}

#[test]
fn refuses_nested_paths() {
    let a = with_manifest(&[], vec![file("dir/file", b"x")]);
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::UnsafeEntry { reason, .. } if reason.contains("nested")),
        "{err}"
    );
}

#[test]
fn refuses_links_devices_fifos_and_directories() {
    use tar::EntryType as T;
    for (kind, word) in [
        (T::Symlink, "symbolic link"),
        (T::Link, "hard link"),
        (T::Char, "character device"),
        (T::Block, "block device"),
        (T::Fifo, "fifo"),
        (T::Directory, "directory"),
    ] {
        let a = with_manifest(&[], vec![special("chunks.bin", kind)]);
        let err = refuse(&a, &Limits::default());
        assert!(
            matches!(&err, BundleError::ForbiddenEntryType { kind, .. } if *kind == word),
            "{word}: {err}"
        );
        assert!(err.to_string().contains(word));
    }
}

#[test]
fn refuses_duplicate_members() {
    let body = b"same";
    let a = with_manifest(
        &[("chunks.bin", body)],
        vec![file("chunks.bin", body), file("chunks.bin", body)],
    );
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::DuplicateMember { name } if name == "chunks.bin"),
        "{err}"
    );

    // A second manifest is a duplicate too.
    let a = with_manifest(&[], vec![file("manifest.json", b"{}")]);
    assert!(matches!(
        refuse(&a, &Limits::default()),
        BundleError::DuplicateMember { .. }
    ));
}

#[test]
fn refuses_members_not_listed_in_the_manifest() {
    let a = with_manifest(&[], vec![file("extra.bin", b"x")]);
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::UnlistedMember { name } if name == "extra.bin"),
        "{err}"
    );
}

#[test]
fn refuses_listed_members_that_are_missing() {
    let a = with_manifest(&[("chunks.bin", b"x")], vec![]);
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::MissingMember { name } if name == "chunks.bin"),
        "{err}"
    );
}

#[test]
fn refuses_member_hash_mismatch() {
    let a = with_manifest(
        &[("chunks.bin", b"listed")],
        vec![file("chunks.bin", b"LISTED")],
    );
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::MemberHashMismatch { name } if name == "chunks.bin"),
        "{err}"
    );
}

#[test]
fn refuses_member_size_mismatch() {
    let a = with_manifest(
        &[("chunks.bin", b"short")],
        vec![file("chunks.bin", b"longer!")],
    );
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(
            &err,
            BundleError::MemberSizeMismatch {
                listed: 5,
                actual: 7,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn refuses_archives_over_the_compressed_limit() {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    let bytes = fs::read(&w.path).unwrap();
    let limits = Limits {
        max_archive_bytes: bytes.len() as u64 - 1,
        ..Limits::default()
    };
    let err = refuse(&bytes, &limits);
    assert!(
        matches!(&err, BundleError::TooLarge { what, .. } if what.contains("compressed")),
        "{err}"
    );
}

#[test]
fn refuses_decompression_bombs() {
    // 64 MiB of zeros compress to a few KiB.
    let bomb = vec![0u8; 64 << 20];
    let a = with_manifest(&[("chunks.bin", &bomb)], vec![file("chunks.bin", &bomb)]);
    assert!(a.len() < 64 << 10, "bomb is {} bytes", a.len());
    let limits = Limits {
        max_unpacked_bytes: 8 << 20,
        ..Limits::default()
    };
    let err = refuse(&a, &limits);
    assert!(
        matches!(&err, BundleError::TooLarge { what, .. } if what.contains("decompressed")),
        "{err}"
    );

    let limits = Limits {
        max_member_bytes: 1 << 20,
        ..Limits::default()
    };
    let err = refuse(&a, &limits);
    assert!(matches!(&err, BundleError::MemberTooLarge { .. }), "{err}");
}

#[test]
fn refuses_a_member_whose_header_claims_a_huge_size() {
    // A header may lie: the size is checked against the limit before reading.
    let mut e = file("chunks.bin", b"tiny");
    e.header_size = Some(1 << 40);
    let a = with_manifest(&[("chunks.bin", b"tiny")], vec![e]);
    let err = refuse(&a, &Limits::default());
    assert!(matches!(&err, BundleError::MemberTooLarge { .. }), "{err}");
}

#[test]
fn refuses_truncated_archives_at_any_length() {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    let bytes = fs::read(&w.path).unwrap();
    for cut in [0, 1, 4, 20, bytes.len() / 2, bytes.len() - 1] {
        let err = refuse(&bytes[..cut], &Limits::default());
        assert!(
            matches!(err, BundleError::Corrupt { .. } | BundleError::Empty),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn refuses_unknown_format_version_naming_both_versions() {
    let mut m: serde_json::Value = serde_json::from_slice(&manifest_listing(&[])).unwrap();
    m["format_version"] = 2.into();
    let a = zst(&tar_bytes(&[file(
        "manifest.json",
        &serde_json::to_vec(&m).unwrap(),
    )]));
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(
            err,
            BundleError::UnsupportedFormatVersion {
                found: 2,
                supported: 1
            }
        ),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains("format_version 2") && text.contains("format_version 1"),
        "{text}"
    );
}

#[test]
fn refuses_an_archive_whose_first_entry_is_not_the_manifest() {
    let a = zst(&tar_bytes(&[file("chunks.bin", b"x")]));
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(&err, BundleError::ManifestNotFirst { found } if found == "chunks.bin"),
        "{err}"
    );
}

#[test]
fn refuses_invalid_manifest_json() {
    let a = zst(&tar_bytes(&[file(
        "manifest.json",
        b"{\"format_version\": 1",
    )]));
    assert!(matches!(
        refuse(&a, &Limits::default()),
        BundleError::ManifestInvalid { .. }
    ));
}

#[test]
fn refuses_data_after_the_archive() {
    let mut t = tar_bytes(&[file("manifest.json", &manifest_listing(&[]))]);
    t.extend_from_slice(b"smuggled");
    let err = refuse(&zst(&t), &Limits::default());
    assert!(matches!(err, BundleError::TrailingData), "{err}");

    let mut a = with_manifest(&[], vec![]);
    a.extend_from_slice(b"not zstd");
    let err = refuse(&a, &Limits::default());
    assert!(
        matches!(err, BundleError::TrailingData | BundleError::Corrupt { .. }),
        "{err}"
    );
}

#[test]
fn refuses_a_valid_bundle_under_the_wrong_digest() {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    let wrong = Digest::of(b"another bundle");
    let dest = t.path().join("cache/x");
    let err = unpack_file(&w.path, Some(&wrong), &dest, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, BundleError::DigestMismatch { expected, actual } if expected == wrong && actual == w.digest)
    );
    assert!(!dest.exists());
    assert_eq!(
        leftovers(&t.path().join("cache"), &[]),
        Vec::<String>::new()
    );
}

#[test]
fn never_unpacks_over_an_existing_directory() {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    let dest = t.path().join("live");
    fs::create_dir_all(&dest).unwrap();
    fs::write(dest.join("keep.txt"), b"mine").unwrap();
    let err = unpack_file(&w.path, Some(&w.digest), &dest, &Limits::default()).unwrap_err();
    assert!(
        matches!(err, BundleError::DestinationExists { .. }),
        "{err}"
    );
    assert_eq!(fs::read(dest.join("keep.txt")).unwrap(), b"mine");
}

#[test]
fn writer_refuses_unsafe_or_duplicate_member_names() {
    let t = tempfile::tempdir().unwrap();
    let files = members(t.path(), &[("ok.bin", b"x")]);
    let path = files[0].1.clone();
    for bad in ["../x", "/abs", "a/b", "Upper", "manifest.json"] {
        let err = write_bundle(
            &t.path().join("o"),
            manifest(),
            &[(bad.into(), path.clone())],
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::UnsafeEntry { .. } | BundleError::DuplicateMember { .. }
            ),
            "{bad}: {err}"
        );
    }
    let dup = vec![
        ("a.bin".to_string(), path.clone()),
        ("a.bin".to_string(), path),
    ];
    assert!(matches!(
        write_bundle(&t.path().join("o"), manifest(), &dup).unwrap_err(),
        BundleError::DuplicateMember { .. }
    ));
}

// ---- property tests: the reader never panics, and no corruption passes ----

fn valid_bundle() -> (Vec<u8>, Digest) {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    (fs::read(&w.path).unwrap(), w.digest)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_and_never_unpack(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("b");
        prop_assert!(unpack(&bytes[..], None, &dest, &Limits::default()).is_err());
        prop_assert!(!dest.exists());
    }

    #[test]
    fn any_single_byte_change_or_cut_is_refused(pos in any::<prop::sample::Index>(), xor in 1u8..=255, cut in any::<bool>()) {
        let (mut bytes, digest) = valid_bundle();
        let i = pos.index(bytes.len());
        if cut { bytes.truncate(i) } else { bytes[i] ^= xor }
        let t = tempfile::tempdir().unwrap();
        let dest = t.path().join("b");
        prop_assert!(unpack(&bytes[..], Some(&digest), &dest, &Limits::default()).is_err());
        prop_assert!(!dest.exists());
        let left: Vec<_> = fs::read_dir(t.path()).unwrap().collect();
        prop_assert!(left.is_empty());
    }

    #[test]
    fn valid_zstd_of_arbitrary_tar_like_bytes_never_panics(body in proptest::collection::vec(any::<u8>(), 0..3000)) {
        // Get past the zstd layer so the tar and manifest parsers see garbage.
        let mut tarish = tar_bytes(&[file("manifest.json", &manifest_listing(&[]))]);
        tarish.truncate(512);
        tarish.extend_from_slice(&body);
        let a = zst(&tarish);
        let t = tempfile::tempdir().unwrap();
        let _ = unpack(&a[..], None, &t.path().join("b"), &Limits::default());
    }
}

#[test]
fn the_file_name_carries_the_digest() {
    let t = tempfile::tempdir().unwrap();
    let w = write_bundle(&t.path().join("o"), manifest(), &sample_members(t.path())).unwrap();
    assert_eq!(
        shelf_formats::bundle::digest_from_file_name(&w.path),
        Some(w.digest)
    );
    assert_eq!(
        shelf_formats::bundle::digest_from_file_name(Path::new("x.tar.zst")),
        None
    );
    assert_eq!(
        shelf_formats::bundle::digest_from_file_name(Path::new("bundle.tgz")),
        None
    );
}
