//! The mapped bundle under concurrency, and its refusals.

use std::sync::Arc;

use shelf_formats::ModelIdentity;
use shelf_server::cache::BundleCache;
use shelf_server::query::{self, Filter, Selection};
use shelf_server::search;
use shelf_server::{LiveBundle, OpenError};

fn model() -> ModelIdentity {
    shelf_testkit::sample_manifest("0").model
}

fn open(chunks: usize) -> (tempfile::TempDir, LiveBundle) {
    let t = tempfile::tempdir().unwrap();
    let written = shelf_testkit::synthetic_bundle(&t.path().join("out"), chunks, &model(), 7);
    let cache = BundleCache::open(&t.path().join("cache"), 3).unwrap();
    let (digest, dir) = cache.install_file(&written.path, None).unwrap();
    let bundle = LiveBundle::open_dir(&dir, digest, &model()).unwrap();
    (t, bundle)
}

fn ranked(hits: &[shelf_server::Hit]) -> Vec<search::Ranked> {
    hits.iter()
        .map(|h| search::Ranked {
            key: h.key,
            score: h.score,
            semantic: Some(h.score),
            lexical: None,
        })
        .collect()
}

fn query(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..384)
        .map(|i| ((i * 31 + seed * 17) % 97) as f32 - 48.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[test]
fn many_threads_search_one_view_at_once_with_the_same_answers() {
    let (_t, bundle) = open(3000);
    let bundle = Arc::new(bundle);
    let expected: Vec<_> = (0..32)
        .map(|s| bundle.search(&query(s), 10).unwrap())
        .collect();
    let expected = Arc::new(expected);
    let threads: Vec<_> = (0..48)
        .map(|t| {
            let (bundle, expected) = (Arc::clone(&bundle), Arc::clone(&expected));
            std::thread::spawn(move || {
                for round in 0..50 {
                    let s = (t + round) % 32;
                    let hits = bundle
                        .search(&query(s), 10)
                        .expect("a search context is free");
                    assert_eq!(hits, expected[s]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn filters_narrow_results_and_a_narrow_filter_is_exact() {
    // Enough chunks that the broad filter passes more than the exact
    // search takes (4,096) and so really walks the graph.
    let (_t, bundle) = open(7000);
    let q = query(3);
    // Few chunks pass: scored exactly, so they are the true best among them.
    let narrow = Filter::new(Some("src/mod1/file1.py"), &[]).unwrap();
    let hits = query::search(&bundle, &q, 5, &narrow).unwrap();
    let results = search::chunk_results(&bundle, &ranked(&hits), hits.len()).unwrap();
    assert!(!results.is_empty());
    assert!(
        results.iter().all(|r| r.path == "src/mod1/file1.py"),
        "{results:?}"
    );
    assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
    // A broad filter walks the graph, skipping what it rejects.
    let broad = Filter::new(None, &["python".into(), "rust".into()]).unwrap();
    let hits = query::search(&bundle, &q, 20, &broad).unwrap();
    let results = search::chunk_results(&bundle, &ranked(&hits), hits.len()).unwrap();
    assert_eq!(results.len(), 20);
    assert!(
        results
            .iter()
            .all(|r| matches!(r.language, Some("python" | "rust")))
    );
    assert_eq!(results[0].rank, 1);
    // Resolved once per query: the narrow filter as the few keys that pass,
    // the broad one per path; both admit exactly what the filter accepts.
    let chunks = bundle.chunks().unwrap();
    let few = Selection::resolve(&chunks, &narrow);
    let many = Selection::resolve(&chunks, &broad);
    assert!(matches!(few, Selection::Few(_)), "{few:?}");
    assert!(matches!(many, Selection::Many(_)));
    for key in 0..chunks.len() as u64 {
        let path = chunks.get(key as usize).unwrap().path;
        assert_eq!(few.admits(&chunks, key), narrow.accepts(path), "{path}");
        assert_eq!(many.admits(&chunks, key), broad.accepts(path), "{path}");
    }
    assert!(Selection::resolve(&chunks, &Filter::default()) == Selection::All);
}

#[test]
fn a_bundle_of_another_model_is_refused_naming_the_difference() {
    let t = tempfile::tempdir().unwrap();
    let mut other = model();
    other.name = "intfloat/e5-small-v2".into();
    let written = shelf_testkit::synthetic_bundle(&t.path().join("out"), 50, &other, 1);
    let cache = BundleCache::open(&t.path().join("cache"), 3).unwrap();
    let (digest, dir) = cache.install_file(&written.path, None).unwrap();
    let err = LiveBundle::open_dir(&dir, digest, &model()).unwrap_err();
    assert!(matches!(err, OpenError::WrongModel { .. }));
    assert!(err.to_string().contains("e5-small-v2"), "{err}");
}

#[test]
fn a_damaged_cache_copy_is_refused_not_served() {
    let (t, bundle) = open(100);
    let dir = bundle.dir.clone();
    let digest = bundle.digest;
    drop(bundle);
    let chunks = dir.join("chunks.bin");
    let mut bytes = std::fs::read(&chunks).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&chunks, bytes).unwrap();
    let err = LiveBundle::open_dir(&dir, digest, &model()).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    drop(t);
}
