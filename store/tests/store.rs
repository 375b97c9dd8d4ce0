//! The store's guarantees, as one suite run against both back ends: a local
//! directory and a real S3-compatible server (moto) on 127.0.0.1.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use shelf_formats::Digest;
use shelf_formats::bundle::write_bundle;
use shelf_formats::keys::bundle_key;
use shelf_store::cache::{self, CacheIndex};
use shelf_store::tags::{
    MoveRequest, RollbackTarget, list_tags, move_tag, read_tag, resolve_target, rollback,
};
use shelf_store::{
    Conditional, Created, S3Options, StaticCredentials, Store, StoreError, StoreLocation,
    fetch_bundle, gc, push_bundle,
};
use shelf_testkit::{MotoServer, TEST_BUCKET};

fn s3_options(moto: &MotoServer) -> S3Options {
    s3_options_for(moto.endpoint())
}

fn s3_options_for(endpoint: String) -> S3Options {
    S3Options {
        endpoint_url: Some(endpoint),
        path_style: true,
        region: Some("us-east-1".into()),
        static_credentials: Some(StaticCredentials {
            access_key_id: "test".into(),
            secret_access_key: "test".into(),
        }),
        multipart_threshold: None,
    }
}

async fn open_local(dir: &Path) -> Store {
    Store::create(&StoreLocation::Local(dir.join("store")))
        .await
        .unwrap()
}

async fn open_s3(moto: &MotoServer) -> Store {
    let loc =
        StoreLocation::parse(&format!("s3://{TEST_BUCKET}/team/shelf"), s3_options(moto)).unwrap();
    Store::open(&loc).await.unwrap()
}

/// A small valid bundle for `commit` (`n` distinguishes contents).
fn bundle(dir: &Path, n: u32) -> PathBuf {
    let src = dir.join(format!("src{n}"));
    std::fs::create_dir_all(&src).unwrap();
    let member = src.join("chunks.bin");
    std::fs::write(&member, format!("bundle number {n}").repeat(50)).unwrap();
    let mut manifest = shelf_testkit::sample_manifest(&format!("{n:040x}"));
    manifest.source.repository = "test/repo".into();
    write_bundle(&dir.join("out"), manifest, &[("chunks.bin".into(), member)])
        .unwrap()
        .path
}

fn digest_of(path: &Path) -> Digest {
    shelf_formats::bundle::digest_from_file_name(path).unwrap()
}

async fn tag(
    store: &Store,
    name: &str,
    to: Digest,
    expect: Option<Option<Digest>>,
) -> Result<shelf_store::TagMoveOutcome, StoreError> {
    move_tag(
        store,
        &MoveRequest {
            tag: name.into(),
            to,
            expect,
            by: "test".into(),
            reason: None,
        },
    )
    .await
}

/// Runs the same scenario against a local directory and against S3.
macro_rules! on_both_backends {
    ($name:ident, |$store:ident, $dir:ident| $body:block) => {
        mod $name {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn local() {
                let tmp = tempfile::tempdir().unwrap();
                let $dir: &Path = tmp.path();
                let $store = Arc::new(open_local($dir).await);
                $body
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn s3() {
                let moto = MotoServer::start();
                let tmp = tempfile::tempdir().unwrap();
                let $dir: &Path = tmp.path();
                let $store = Arc::new(open_s3(&moto).await);
                $body
            }
        }
    };
}

on_both_backends!(create_only_writes_never_overwrite, |store, _dir| {
    assert_eq!(
        store.put_new("a/b.json", b"first".to_vec()).await.unwrap(),
        Created::New
    );
    assert_eq!(
        store.put_new("a/b.json", b"second".to_vec()).await.unwrap(),
        Created::AlreadyExists
    );
    assert_eq!(
        store.get("a/b.json").await.unwrap().unwrap().bytes,
        b"first"
    );
    assert!(store.get("a/missing.json").await.unwrap().is_none());
});

on_both_backends!(
    conditional_reads_answer_not_modified_until_a_write,
    |store, _dir| {
        assert!(matches!(
            store.get_if_changed("tags/t.json", None).await.unwrap(),
            Conditional::Absent
        ));
        let e1 = store
            .put_if("tags/t.json", b"v1".to_vec(), None)
            .await
            .unwrap();
        let Conditional::Changed(first) = store.get_if_changed("tags/t.json", None).await.unwrap()
        else {
            panic!("an unconditional read must return the object");
        };
        assert_eq!(first.bytes, b"v1");
        assert_eq!(first.etag, e1);
        assert!(matches!(
            store
                .get_if_changed("tags/t.json", Some(&e1))
                .await
                .unwrap(),
            Conditional::NotModified
        ));
        let e2 = store
            .put_if("tags/t.json", b"v2".to_vec(), Some(&e1))
            .await
            .unwrap();
        let Conditional::Changed(second) = store
            .get_if_changed("tags/t.json", Some(&e1))
            .await
            .unwrap()
        else {
            panic!("a read conditioned on the old version must return the new one");
        };
        assert_eq!((second.bytes.as_slice(), &second.etag), (&b"v2"[..], &e2));
        store.delete("tags/t.json").await.unwrap();
        assert!(matches!(
            store
                .get_if_changed("tags/t.json", Some(&e2))
                .await
                .unwrap(),
            Conditional::Absent
        ));
    }
);

on_both_backends!(compare_and_swap_needs_the_current_version, |store, _dir| {
    let e1 = store.put_if("k.json", b"v1".to_vec(), None).await.unwrap();
    assert!(matches!(
        store.put_if("k.json", b"x".to_vec(), None).await,
        Err(StoreError::Conflict { .. })
    ));
    let e2 = store
        .put_if("k.json", b"v2".to_vec(), Some(&e1))
        .await
        .unwrap();
    assert!(matches!(
        store.put_if("k.json", b"x".to_vec(), Some(&e1)).await,
        Err(StoreError::Conflict { .. })
    ));
    store
        .put_if("k.json", b"v3".to_vec(), Some(&e2))
        .await
        .unwrap();
    assert_eq!(store.get("k.json").await.unwrap().unwrap().bytes, b"v3");
});

on_both_backends!(
    pushing_verifies_uploads_once_and_records_the_commit,
    |store, dir| {
        let b = bundle(dir, 1);
        let first = push_bundle(&store, &b).await.unwrap();
        assert!(first.uploaded);
        assert_eq!(
            first.commit_record,
            format!(
                "commits/{:040x}/{}.json",
                1,
                shelf_formats::commit_record::settings_id(
                    &first.bundle.manifest.settings,
                    &first.bundle.manifest.model
                )
                .hex()
            )
        );
        let again = push_bundle(&store, &b).await.unwrap();
        assert!(!again.uploaded, "second push is a no-op");
        let fetched = fetch_bundle(&store, &digest_of(&b), &dir.join("fetched"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&fetched).unwrap(), std::fs::read(&b).unwrap());
        // A commit resolves to its bundle.
        assert_eq!(
            resolve_target(&store, &format!("{:040x}", 1))
                .await
                .unwrap(),
            digest_of(&b)
        );
    }
);

on_both_backends!(sixteen_racing_pushes_upload_once, |store, dir| {
    let b = bundle(dir, 2);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (store, b) = (store.clone(), b.clone());
        tasks.push(tokio::spawn(async move { push_bundle(&store, &b).await }));
    }
    let mut uploaded = 0;
    for t in tasks {
        uploaded += usize::from(t.await.unwrap().unwrap().uploaded);
    }
    assert_eq!(uploaded, 1, "exactly one upload, 15 no-ops");
    let fetched = fetch_bundle(&store, &digest_of(&b), &dir.join("f"))
        .await
        .unwrap();
    assert_eq!(
        std::fs::read(fetched).unwrap(),
        std::fs::read(&b).unwrap(),
        "object intact"
    );
});

on_both_backends!(a_corrupt_bundle_is_never_pushed, |store, dir| {
    let b = bundle(dir, 3);
    let mut bytes = std::fs::read(&b).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&b, bytes).unwrap();
    assert!(matches!(
        push_bundle(&store, &b).await,
        Err(StoreError::Bundle(_))
    ));
    assert_eq!(store.head(&bundle_key(&digest_of(&b))).await.unwrap(), None);
});

on_both_backends!(a_tag_cannot_point_at_a_missing_bundle, |store, dir| {
    let b = bundle(dir, 4);
    let err = tag(&store, "production", digest_of(&b), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::MissingBundle { .. }), "{err}");
    assert!(read_tag(&store, "production").await.unwrap().is_none());
    assert!(err.to_string().contains("push it first"));
});

on_both_backends!(
    sixteen_racing_moves_from_one_expected_value_have_one_winner,
    |store, dir| {
        let base = bundle(dir, 10);
        push_bundle(&store, &base).await.unwrap();
        let base_d = digest_of(&base);
        tag(&store, "production", base_d, Some(None)).await.unwrap();
        let mut targets = Vec::new();
        for i in 0..16 {
            let b = bundle(dir, 100 + i);
            push_bundle(&store, &b).await.unwrap();
            targets.push(digest_of(&b));
        }
        let mut tasks = Vec::new();
        for d in targets {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                tag(&store, "production", d, Some(Some(base_d))).await
            }));
        }
        let (mut won, mut conflicts) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(_) => won += 1,
                Err(StoreError::Conflict { .. }) => conflicts += 1,
                Err(e) => panic!("unexpected: {e}"),
            }
        }
        assert_eq!((won, conflicts), (1, 15));
        let (record, _) = read_tag(&store, "production").await.unwrap().unwrap();
        assert_eq!(record.history.len(), 2, "creation + the one winning move");
        assert_eq!(record.history[1].from, Some(base_d));
    }
);

on_both_backends!(racing_moves_without_expect_lose_no_history, |store, dir| {
    let mut targets = Vec::new();
    for i in 0..16 {
        let b = bundle(dir, 200 + i);
        push_bundle(&store, &b).await.unwrap();
        targets.push(digest_of(&b));
    }
    let mut tasks = Vec::new();
    for d in targets.clone() {
        let store = store.clone();
        tasks.push(tokio::spawn(
            async move { tag(&store, "main", d, None).await },
        ));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let (record, _) = read_tag(&store, "main").await.unwrap().unwrap();
    assert_eq!(record.history.len(), 16, "every move is in the history");
    // The history is a chain: each move starts where the previous ended.
    for w in record.history.windows(2) {
        assert_eq!(w[1].from, Some(w[0].to));
    }
    assert_eq!(record.digest, record.history.last().unwrap().to);
});

on_both_backends!(
    rollback_restores_the_earlier_bundle_and_keeps_history,
    |store, dir| {
        let (a, b) = (bundle(dir, 20), bundle(dir, 21));
        push_bundle(&store, &a).await.unwrap();
        push_bundle(&store, &b).await.unwrap();
        tag(&store, "production", digest_of(&a), None)
            .await
            .unwrap();
        tag(&store, "production", digest_of(&b), None)
            .await
            .unwrap();
        let out = rollback(&store, "production", &RollbackTarget::Steps(1), "test")
            .await
            .unwrap();
        assert_eq!(out.record.digest, digest_of(&a));
        assert_eq!(out.previous, Some(digest_of(&b)));
        let (record, _) = read_tag(&store, "production").await.unwrap().unwrap();
        assert_eq!(record.history.len(), 3);
        assert_eq!(record.history[2].reason.as_deref(), Some("rollback"));
        assert_eq!(record.commit, format!("{:040x}", 20));
        // Rolling back to a named tag or too far.
        tag(&store, "staging", digest_of(&b), None).await.unwrap();
        let out = rollback(
            &store,
            "production",
            &RollbackTarget::To("staging".into()),
            "test",
        )
        .await
        .unwrap();
        assert_eq!(out.record.digest, digest_of(&b));
        assert!(
            rollback(&store, "production", &RollbackTarget::Steps(9), "t")
                .await
                .is_err()
        );
        assert!(matches!(
            rollback(&store, "nope", &RollbackTarget::Steps(1), "t").await,
            Err(StoreError::NoSuchTag { .. })
        ));
        let names: Vec<String> = list_tags(&store)
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(names, ["production", "staging"]);
    }
);

on_both_backends!(
    gc_dry_run_lists_exactly_what_gc_deletes_and_tagged_bundles_survive,
    |store, dir| {
        let mut d = Vec::new();
        for i in 0..5 {
            let b = bundle(dir, 30 + i);
            push_bundle(&store, &b).await.unwrap();
            d.push(digest_of(&b));
        }
        // production: d0 -> d1 -> d2 (current); keep 2 => d1, d2 kept. d3 tagged by staging. d0 and d4 unreferenced.
        for x in [d[0], d[1], d[2]] {
            tag(&store, "production", x, None).await.unwrap();
        }
        tag(&store, "staging", d[3], None).await.unwrap();
        // Inside the grace period nothing is deleted.
        let plan = gc::plan(&store, 2, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(plan.delete.is_empty());
        assert_eq!(plan.kept_by_grace, 2);
        // d0 was tagged (marker written) too; with no grace both go.
        let plan = gc::plan(&store, 2, Duration::ZERO).await.unwrap();
        let mut planned: Vec<Digest> = plan.delete.iter().map(|(d, _)| *d).collect();
        planned.sort();
        let mut expected = vec![d[0], d[4]];
        expected.sort();
        assert_eq!(planned, expected);
        let mut deleted = gc::execute(&store, &plan, 2).await.unwrap().bundles;
        deleted.sort();
        assert_eq!(deleted, expected, "dry run == what gc deleted");
        for keep in [d[1], d[2], d[3]] {
            assert!(store.head(&bundle_key(&keep)).await.unwrap().is_some());
        }
        for gone in [d[0], d[4]] {
            assert!(store.head(&bundle_key(&gone)).await.unwrap().is_none());
        }
        // The commit record of a deleted bundle is gone too.
        assert!(
            resolve_target(&store, &format!("{:040x}", 30))
                .await
                .is_err()
        );
    }
);

#[tokio::test]
async fn a_missing_local_store_is_named_on_read_and_created_by_the_first_write() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("mistyped");
    let location = StoreLocation::Local(dir.clone());
    let store = Store::open(&location).await.unwrap();
    for err in [
        list_tags(&store).await.unwrap_err(),
        store.get("tags/production.json").await.unwrap_err(),
        gc::plan(&store, 1, Duration::ZERO).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::NoSuchStore { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("mistyped") && message.contains("shelf push"),
            "{message}"
        );
    }
    assert!(!dir.exists(), "reading a store must not create it");
    let store = Store::create(&location).await.unwrap();
    push_bundle(&store, &bundle(tmp.path(), 90)).await.unwrap();
    assert_eq!(store.list("bundles/").await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_removes_what_killed_writers_left_and_two_gcs_at_once_both_succeed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(open_local(tmp.path()).await);
    let mut d = Vec::new();
    for i in 0..6 {
        let b = bundle(tmp.path(), 60 + i);
        push_bundle(&store, &b).await.unwrap();
        d.push(digest_of(&b));
    }
    tag(&store, "production", d[0], None).await.unwrap();
    // What a push or a tag move killed by SIGKILL leaves: temporary files
    // beside the keys, never under a key. One is old, one is fresh.
    let root = tmp.path().join("store");
    let old = root.join("bundles/sha256/.shelf-tmp-killed");
    let fresh = root.join("tags/.shelf-tmp-running");
    for path in [&old, &fresh] {
        std::fs::write(path, b"partial").unwrap();
    }
    let hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    assert!(
        store
            .list("")
            .await
            .unwrap()
            .iter()
            .all(|m| !m.key.contains(".shelf-tmp-")),
        "leftovers are never listed as objects"
    );
    let grace = Duration::from_secs(600);
    let (a, b) = tokio::join!(
        {
            let store = Arc::clone(&store);
            async move {
                let plan = gc::plan(&store, 1, grace).await?;
                gc::execute(&store, &plan, 1).await
            }
        },
        {
            let store = Arc::clone(&store);
            async move {
                let plan = gc::plan(&store, 1, grace).await?;
                gc::execute(&store, &plan, 1).await
            }
        }
    );
    a.unwrap();
    b.unwrap();
    assert!(!old.exists(), "an hour-old leftover is removed");
    assert!(
        fresh.exists(),
        "a leftover inside the grace period may be a running write"
    );
    // Two more at once with no grace: both succeed, and between them every
    // untagged bundle is gone exactly once (and the now-old leftover).
    std::fs::File::options()
        .write(true)
        .open(&fresh)
        .unwrap()
        .set_modified(hour_ago)
        .unwrap();
    let run = || {
        let store = Arc::clone(&store);
        async move {
            let plan = gc::plan(&store, 1, Duration::ZERO).await?;
            gc::execute(&store, &plan, 1).await
        }
    };
    let (a, b) = tokio::join!(run(), run());
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.bundles.len() + b.bundles.len() >= 5, "{a:?} {b:?}");
    for gone in &d[1..] {
        assert!(store.head(&bundle_key(gone)).await.unwrap().is_none());
    }
    assert!(store.head(&bundle_key(&d[0])).await.unwrap().is_some());
    assert!(!fresh.exists());
}

on_both_backends!(tag_names_are_validated, |store, _dir| {
    for bad in ["../x", "a/b", "", ".hidden"] {
        let err = read_tag(&store, bad).await.unwrap_err().to_string();
        assert!(err.contains("invalid tag name"), "{bad}: {err}");
    }
});

#[tokio::test]
async fn large_files_are_uploaded_in_parts_create_only() {
    let moto = MotoServer::start();
    let mut opts = s3_options(&moto);
    opts.multipart_threshold = Some(1 << 20);
    let loc = StoreLocation::parse(&format!("s3://{TEST_BUCKET}"), opts).unwrap();
    let store = Store::open(&loc).await.unwrap();
    let t = tempfile::tempdir().unwrap();
    let big = t.path().join("big");
    let data: Vec<u8> = (0..(20u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    assert_eq!(
        store.put_new_file("bundles/big", &big).await.unwrap(),
        Created::New
    );
    assert_eq!(
        store.put_new_file("bundles/big", &big).await.unwrap(),
        Created::AlreadyExists
    );
    assert_eq!(store.get("bundles/big").await.unwrap().unwrap().bytes, data);
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let moto = MotoServer::start();
    let loc = StoreLocation::parse("s3://no-such-bucket/x", s3_options(&moto)).unwrap();
    let err = Store::open(&loc).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchBucket { .. }), "{err}");
    assert!(
        err.to_string().contains("'no-such-bucket' does not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn wrong_credentials_are_reported_as_access_denied() {
    let moto = MotoServer::start_with_auth();
    let mut opts = s3_options(&moto);
    opts.static_credentials = Some(StaticCredentials {
        access_key_id: "AKIAWRONG".into(),
        secret_access_key: "wrong".into(),
    });
    let loc = StoreLocation::parse(&format!("s3://{TEST_BUCKET}"), opts).unwrap();
    let err = Store::open(&loc).await.unwrap_err();
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("access denied by s3://shelf-test") && text.contains("AWS_ACCESS_KEY_ID"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_named() {
    let port = shelf_testkit::free_port();
    let opts = s3_options_for(format!("http://127.0.0.1:{port}"));
    let loc = StoreLocation::parse("s3://shelf-test", opts).unwrap();
    let err = Store::open(&loc).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

// The embedding cache: packs, id tables read alone, refusals, races, gc.

/// Dimensions of the cache tests' vectors.
const DIMS: u32 = 64;

/// A model identity with small vectors, for cache tests without a model.
fn small_model() -> shelf_formats::ModelIdentity {
    let mut m = shelf_testkit::sample_manifest("0").model;
    m.dimensions = DIMS;
    m
}

/// `n` distinct (content id, unit vector) pairs, different for each `seed`.
fn vectors(n: u32, seed: u32) -> Vec<([u8; 32], Vec<f32>)> {
    (0..n)
        .map(|i| {
            let id = *Digest::of(format!("chunk {seed}/{i}").as_bytes()).as_bytes();
            let v: Vec<f32> = (0..DIMS)
                .map(|k| ((i * DIMS + k + seed) as f32).sin())
                .collect();
            (id, v)
        })
        .collect()
}

fn as_pairs(v: &[([u8; 32], Vec<f32>)]) -> Vec<([u8; 32], &[f32])> {
    v.iter().map(|(id, v)| (*id, v.as_slice())).collect()
}

on_both_backends!(
    cache_packs_round_trip_and_lookups_read_only_id_tables,
    |store, _dir| {
        let model = small_model();
        let empty = CacheIndex::load(&store, &model).await.unwrap();
        assert!(empty.is_empty() && empty.packs().is_empty());
        let first = vectors(3000, 1);
        let written = cache::save(&store, &model, &as_pairs(&first))
            .await
            .unwrap();
        let more = vectors(5, 2);
        written_too(&store, &model, &more).await;
        let index = CacheIndex::load(&store, &model).await.unwrap();
        assert_eq!(index.len(), 3005);
        assert!(index.refused().is_empty(), "{:?}", index.refused());
        // 3,000 ids take a second ranged read; no vector was read.
        let pack_bytes: u64 = index.packs().iter().map(|p| p.size).sum();
        assert!(
            index.bytes_read() < pack_bytes / 5,
            "{} of {pack_bytes}",
            index.bytes_read()
        );
        assert_eq!(index.holder(&first[0].0), Some(written[0]));
        // Fetch a few from each pack (and one the cache does not hold).
        let stranger = *Digest::of(b"never embedded").as_bytes();
        let want = [first[7].0, first[2999].0, more[4].0, stranger];
        let fetched = index.fetch(&store, &want).await.unwrap();
        assert_eq!(fetched.vectors.len(), 3);
        assert_eq!(fetched.vectors[&first[7].0], first[7].1);
        assert_eq!(fetched.vectors[&more[4].0], more[4].1);
        assert_eq!(fetched.packs.len(), 2);
        assert!(!fetched.vectors.contains_key(&stranger));
        // Another model sees none of it.
        let mut other = model.clone();
        other.onnx_sha256 = [9; 32];
        assert!(CacheIndex::load(&store, &other).await.unwrap().is_empty());
    }
);

async fn written_too(
    store: &Store,
    model: &shelf_formats::ModelIdentity,
    v: &[([u8; 32], Vec<f32>)],
) {
    cache::save(store, model, &as_pairs(v)).await.unwrap();
}

on_both_backends!(
    damaged_foreign_and_unknown_packs_are_refused_and_a_damaged_one_is_healed,
    |store, _dir| {
        use shelf_formats::embedding_cache::{model_digest, write_packs};
        use shelf_formats::keys::cache_pack_key;
        let model = small_model();
        let md = model_digest(&model);
        let good = vectors(4, 3);
        written_too(&store, &model, &good).await;
        // Bytes that do not hash to their name: a pack whose vectors were
        // changed after it was named (same size, valid header and ids).
        let honest = write_packs(&md, DIMS, &as_pairs(&vectors(4, 4)))
            .unwrap()
            .remove(0);
        let mut tampered = honest.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 0x40;
        let tampered_key = cache_pack_key(&md, &Digest::of(&honest));
        store.put_new(&tampered_key, tampered).await.unwrap();
        // Named correctly, but of another model or dimensions, truncated,
        // or of an unknown layout version.
        let foreign_model = write_packs(
            &Digest::of(b"another model"),
            DIMS,
            &as_pairs(&vectors(2, 5)),
        )
        .unwrap()
        .remove(0);
        let wide: Vec<([u8; 32], Vec<f32>)> = vectors(2, 6)
            .into_iter()
            .map(|(id, mut v)| {
                v.extend_from_slice(&[0.5; DIMS as usize]);
                (id, v)
            })
            .collect();
        let foreign_dims = write_packs(&md, 2 * DIMS, &as_pairs(&wide))
            .unwrap()
            .remove(0);
        let mut truncated = write_packs(&md, DIMS, &as_pairs(&vectors(3, 7)))
            .unwrap()
            .remove(0);
        truncated.truncate(truncated.len() - 8);
        let mut future = write_packs(&md, DIMS, &as_pairs(&vectors(3, 8)))
            .unwrap()
            .remove(0);
        future[8] = 2;
        let mut refused_keys = vec![tampered_key.clone()];
        for bytes in [foreign_model, foreign_dims, truncated, future] {
            let key = cache_pack_key(&md, &Digest::of(&bytes));
            store.put_new(&key, bytes).await.unwrap();
            refused_keys.push(key);
        }
        let index = CacheIndex::load(&store, &model).await.unwrap();
        let at_planning: Vec<(&str, &str)> = index
            .refused()
            .iter()
            .map(|r| (r.key.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(at_planning.len(), 4, "{at_planning:#?}");
        for (key, reason) in &at_planning {
            assert!(
                reason.contains("of model")
                    || reason.contains("128 dimensions")
                    || reason.contains("header describes")
                    || reason.contains("layout version 2"),
                "{key}: {reason}"
            );
        }
        // The tampered pack passes planning (its header and ids are fine)
        // and is refused when its bytes are checked against its name.
        let bad_ids: Vec<[u8; 32]> = vectors(4, 4).into_iter().map(|(id, _)| id).collect();
        assert!(bad_ids.iter().all(|id| index.holds(id)));
        let mut want = bad_ids.clone();
        want.push(good[0].0);
        let fetched = index.fetch(&store, &want).await.unwrap();
        assert_eq!(fetched.vectors.len(), 1, "only the good pack's vector");
        assert_eq!(fetched.vectors[&good[0].0], good[0].1);
        assert_eq!(fetched.refused.len(), 1);
        assert_eq!(fetched.refused[0].key, tampered_key);
        assert!(
            fetched.refused[0].reason.contains("do not match its name"),
            "{}",
            fetched.refused[0].reason
        );
        // Another pack holding two of those ids (a later build's): they
        // come from it instead.
        let again = vectors(4, 4);
        written_too(&store, &model, &again[..2]).await;
        let index = CacheIndex::load(&store, &model).await.unwrap();
        let fetched = index.fetch(&store, &bad_ids).await.unwrap();
        assert_eq!(fetched.vectors.len(), 2);
        assert_eq!(fetched.vectors[&again[1].0], again[1].1);
        // Writing the damaged pack's vectors again replaces the bytes under
        // its name, which a create-only write alone would never do.
        written_too(&store, &model, &again).await;
        let index = CacheIndex::load(&store, &model).await.unwrap();
        let fetched = index.fetch(&store, &bad_ids).await.unwrap();
        assert_eq!(fetched.vectors.len(), 4);
        assert!(fetched.refused.is_empty(), "{:?}", fetched.refused);
        let stored = store.get(&tampered_key).await.unwrap().unwrap().bytes;
        assert_eq!(stored, honest);
    }
);

on_both_backends!(
    racing_writers_of_the_same_vectors_leave_one_pack_and_all_succeed,
    |store, _dir| {
        let model = small_model();
        let v = Arc::new(vectors(50, 9));
        let mut tasks = Vec::new();
        for i in 0..8 {
            let (store, v, model) = (Arc::clone(&store), Arc::clone(&v), model.clone());
            tasks.push(tokio::spawn(async move {
                // Each racer has the vectors in another order.
                let mut mine = (*v).clone();
                mine.rotate_left(i * 5);
                cache::save(&store, &model, &as_pairs(&mine)).await
            }));
        }
        let mut names = BTreeSet::new();
        for t in tasks {
            names.extend(t.await.unwrap().unwrap());
        }
        assert_eq!(names.len(), 1, "{names:?}");
        let index = CacheIndex::load(&store, &model).await.unwrap();
        assert_eq!((index.packs().len(), index.len()), (1, 50));
    }
);

on_both_backends!(
    gc_keeps_the_packs_retained_bundles_use_and_deletes_the_rest_after_the_grace_period,
    |store, dir| {
        let model = small_model();
        let (kept_bundle, dropped_bundle) = (bundle(dir, 70), bundle(dir, 71));
        let (kept, dropped) = (digest_of(&kept_bundle), digest_of(&dropped_bundle));
        for b in [&kept_bundle, &dropped_bundle] {
            push_bundle(&store, b).await.unwrap();
        }
        tag(&store, "main", kept, None).await.unwrap();
        let shared = cache::save(&store, &model, &as_pairs(&vectors(5, 10)))
            .await
            .unwrap();
        let only_dropped = cache::save(&store, &model, &as_pairs(&vectors(5, 11)))
            .await
            .unwrap();
        let orphan = cache::save(&store, &model, &as_pairs(&vectors(5, 12)))
            .await
            .unwrap();
        let kept_record = cache::record_uses(&store, &model, &kept, shared.clone())
            .await
            .unwrap();
        let dropped_record = cache::record_uses(
            &store,
            &model,
            &dropped,
            [shared.clone(), only_dropped.clone()].concat(),
        )
        .await
        .unwrap();
        // Inside the grace period every pack stays: both bundles are fresh,
        // so retained, and use two packs; the orphan is fresh itself.
        let plan = gc::plan(&store, 1, Duration::from_secs(3600))
            .await
            .unwrap();
        assert!(plan.packs.is_empty(), "{:?}", plan.packs);
        assert_eq!(
            (plan.packs_kept_by_bundles, plan.packs_kept_by_grace),
            (2, 1)
        );
        // Without one: the untagged bundle goes, and with it its record and
        // the pack only it used; the orphan pack goes; the shared one stays.
        let plan = gc::plan(&store, 1, Duration::ZERO).await.unwrap();
        let key = |p: &Digest| {
            shelf_formats::keys::cache_pack_key(
                &shelf_formats::embedding_cache::model_digest(&model),
                p,
            )
        };
        let planned: BTreeSet<String> = plan.packs.iter().map(|(k, _)| k.clone()).collect();
        let expected: BTreeSet<String> = [key(&only_dropped[0]), key(&orphan[0])].into();
        assert_eq!(planned, expected);
        assert_eq!(plan.uses_records, vec![dropped_record.clone()]);
        let done = gc::execute(&store, &plan, 1).await.unwrap();
        assert_eq!(done.bundles, vec![dropped]);
        assert_eq!(
            done.packs.iter().cloned().collect::<BTreeSet<_>>(),
            expected
        );
        assert!(store.head(&key(&shared[0])).await.unwrap().is_some());
        assert!(store.head(&kept_record).await.unwrap().is_some());
        assert!(store.head(&dropped_record).await.unwrap().is_none());
        for gone in &expected {
            assert!(store.head(gone).await.unwrap().is_none(), "{gone}");
        }
        // A build that names a pack after gc planned, before it deleted:
        // the pack survives.
        let late = cache::save(&store, &model, &as_pairs(&vectors(5, 13)))
            .await
            .unwrap();
        let plan = gc::plan(&store, 1, Duration::ZERO).await.unwrap();
        assert_eq!(plan.packs.len(), 1);
        cache::record_uses(&store, &model, &kept, late.clone())
            .await
            .unwrap();
        let done = gc::execute(&store, &plan, 1).await.unwrap();
        assert!(done.packs.is_empty(), "{:?}", done.packs);
        assert!(store.head(&key(&late[0])).await.unwrap().is_some());
    }
);

#[tokio::test]
async fn ranged_reads_return_what_is_there() {
    let moto = MotoServer::start();
    let tmp = tempfile::tempdir().unwrap();
    for store in [open_local(tmp.path()).await, open_s3(&moto).await] {
        store.put_new("r/x", b"0123456789".to_vec()).await.unwrap();
        let read = |start, len| {
            let store = &store;
            async move { store.get_range("r/x", start, len).await.unwrap() }
        };
        assert_eq!(read(2, 3).await.as_deref(), Some(&b"234"[..]));
        assert_eq!(read(8, 100).await.as_deref(), Some(&b"89"[..]));
        assert_eq!(read(10, 5).await.as_deref(), Some(&b""[..]));
        assert_eq!(store.get_range("r/none", 0, 4).await.unwrap(), None);
    }
}
