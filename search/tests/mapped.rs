//! The mapped bundle under concurrency, and its refusals.

use std::sync::Arc;

use shelf_formats::ModelIdentity;
use shelf_formats::bundle::BundleError;
use shelf_search::filter::{Filter, Selection};
use shelf_search::language::language_of;
use shelf_search::mapped::install_file;
use shelf_search::{Hit, MappedBundle, OpenError, semantic};

fn model() -> ModelIdentity {
    shelf_testkit::sample_manifest("0").model
}

fn open(chunks: usize) -> (tempfile::TempDir, MappedBundle) {
    let t = tempfile::tempdir().unwrap();
    let written = shelf_testkit::synthetic_bundle(&t.path().join("out"), chunks, &model(), 7);
    let bundle = MappedBundle::open_file(&written.path, &t.path().join("cache"), &model()).unwrap();
    (t, bundle)
}

fn paths(bundle: &MappedBundle, hits: &[Hit]) -> Vec<String> {
    let chunks = bundle.chunks().unwrap();
    hits.iter()
        .map(|h| chunks.get(h.key as usize).unwrap().path.to_string())
        .collect()
}

fn query(seed: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..384)
        .map(|i| ((i * 31 + seed * 17) % 97) as f32 - 48.0)
        .collect();
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

/// 48 threads on an index of `search_contexts()` contexts (2 here): the
/// ones without a context wait for one instead of failing.
#[test]
fn many_threads_search_one_view_at_once_with_the_same_answers() {
    assert!(shelf_search::mapped::search_contexts() < 48);
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
    // Few chunks pass: scored exactly, so they are the true best among them:
    // the brute-force ranking of every chunk, cut to those that pass.
    let narrow = Filter::new(Some("src/mod1/file1.py"), &[]).unwrap();
    let hits = semantic::search(&bundle, &q, 5, &narrow).unwrap();
    let found = paths(&bundle, &hits);
    assert!(found.iter().all(|p| p == "src/mod1/file1.py"), "{found:?}");
    let chunks = bundle.chunks().unwrap();
    let truth: Vec<Hit> = bundle
        .exact_search(&q, bundle.len())
        .unwrap()
        .into_iter()
        .filter(|h| narrow.accepts(chunks.get(h.key as usize).unwrap().path))
        .take(5)
        .collect();
    assert_eq!(truth.len(), 5, "the file has at least 5 chunks");
    assert_eq!(
        hits.iter().map(|h| h.key).collect::<Vec<_>>(),
        truth.iter().map(|h| h.key).collect::<Vec<_>>(),
        "{hits:?} against the brute-force {truth:?}"
    );
    for (h, t) in hits.iter().zip(&truth) {
        assert!((h.score - t.score).abs() < 1e-4, "{h:?} against {t:?}");
    }
    // A broad filter walks the graph, skipping what it rejects.
    let broad = Filter::new(None, &["python".into(), "rust".into()]).unwrap();
    let hits = semantic::search(&bundle, &q, 20, &broad).unwrap();
    let found = paths(&bundle, &hits);
    assert_eq!(found.len(), 20);
    assert!(
        found
            .iter()
            .all(|p| matches!(language_of(p), Some("python" | "rust")))
    );
    // Resolved once per query: the narrow filter as the few keys that pass,
    // the broad one per path; both admit exactly what the filter accepts.
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

/// What `/v1/bundle` and the tools report is the manifest: a manifest whose
/// counts its members do not bear out (a bundle claiming 10^12 chunks) is
/// refused at open, naming both numbers.
#[test]
fn a_manifest_whose_counts_the_members_do_not_bear_out_is_refused_at_open() {
    let t = tempfile::tempdir().unwrap();
    type Edit = fn(&mut shelf_formats::Manifest);
    let cases: [(&str, Edit); 2] = [
        (
            "counts.chunks is 1000000000000 but chunks.bin holds 40",
            |m| m.counts.chunks = 1_000_000_000_000,
        ),
        ("counts.files_indexed is 99 but chunks.bin holds 5", |m| {
            m.counts.files_indexed = 99
        }),
    ];
    for (i, (said, edit)) in cases.into_iter().enumerate() {
        let out = t.path().join(format!("out{i}"));
        let written = shelf_testkit::synthetic_bundle_with(&out, 40, &model(), 3, edit);
        let err =
            MappedBundle::open_file(&written.path, &t.path().join("cache"), &model()).unwrap_err();
        assert!(
            matches!(err, OpenError::Bundle(BundleError::CountMismatch(_))),
            "{err:?}"
        );
        assert!(err.to_string().contains(said), "{err}");
    }
    // The same bundle with true counts opens.
    let written = shelf_testkit::synthetic_bundle(&t.path().join("good"), 40, &model(), 3);
    MappedBundle::open_file(&written.path, &t.path().join("cache"), &model()).unwrap();
}

#[test]
fn a_bundle_of_another_model_is_refused_naming_the_difference() {
    let t = tempfile::tempdir().unwrap();
    let mut other = model();
    other.name = "intfloat/e5-small-v2".into();
    let written = shelf_testkit::synthetic_bundle(&t.path().join("out"), 50, &other, 1);
    let (digest, dir) = install_file(&t.path().join("cache"), &written.path, None).unwrap();
    let err = MappedBundle::open_dir(&dir, digest, &model()).unwrap_err();
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
    let err = MappedBundle::open_dir(&dir, digest, &model()).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    drop(t);
}

#[test]
fn a_bundle_naming_an_unknown_index_or_analyzer_is_refused_naming_both_kinds() {
    type Edit = fn(&mut shelf_formats::Manifest);
    let cases: [(&str, Edit); 3] = [
        ("settings.index", |m| {
            m.settings.index = "usearch-hnsw/ip/m32/ef64".into()
        }),
        ("settings.lexical", |m| {
            m.settings.lexical = Some("bm25/code-v9".into())
        }),
        ("settings.vector_quantization", |m| {
            m.settings.vector_quantization = "b1".into()
        }),
    ];
    for (field, edit) in cases {
        let t = tempfile::tempdir().unwrap();
        let written =
            shelf_testkit::synthetic_bundle_with(&t.path().join("out"), 20, &model(), 3, edit);
        let cache = t.path().join("cache");
        let err = MappedBundle::open_file(&written.path, &cache, &model()).unwrap_err();
        let OpenError::Bundle(BundleError::UnknownKind(kind)) = &err else {
            panic!("{field}: refused for the wrong reason: {err}");
        };
        assert_eq!(kind.field, field);
        let message = err.to_string();
        assert!(
            message.contains(&kind.found) && message.contains(kind.supported[0]),
            "{message}"
        );
        // Nothing of it was unpacked where a server would look for it.
        assert!(
            !cache.join(written.digest.hex()).exists(),
            "{field}: a refused bundle left a cache entry"
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// Whatever a client puts in a request's parameters, validating it
    /// never panics, and a request that validates ranks a bundle without
    /// panicking: globs of any nesting and length, any language or mode
    /// text, any k.
    #[test]
    fn no_parameter_reaches_a_panic(
        query in "\\PC{0,64}",
        k in proptest::option::of(0usize..1_000_000),
        path in proptest::option::of("[{}\\[\\]*?!a-z0-9/.,\\\\-]{0,700}"),
        languages in proptest::collection::vec("(rust|python|Rust|\\PC{0,8})", 0..4),
        mode in proptest::option::of("(hybrid|semantic|lexical|\\PC{0,8})"),
        group in proptest::option::of("(chunk|file|\\PC{0,8})"),
        kind in proptest::option::of("(auto|any|source|test|doc|\\PC{0,8})"),
    ) {
        let raw = shelf_search::RawRequest { query, k, path, languages, mode, group, kind };
        let Ok(request) = shelf_search::Request::new(raw, &shelf_search::RequestLimits::default()) else {
            return Ok(());
        };
        // Query understanding takes any text without a panic.
        let understood = shelf_search::query::analyze(
            shelf_formats::lexical::Analyzer::CodeV1,
            &request.query,
            &Default::default(),
        );
        let _ = request.kind.resolve(&understood);
        let bundle = fuzz_bundle();
        let vectors = vec![query_vector(1)];
        let ranked = shelf_search::rank::candidates(
            bundle,
            &request.query,
            &vectors,
            request.mode,
            &request.filter,
            request.k,
        );
        // The synthetic bundle has no lexical index: lexical mode is a
        // clear error, never a panic.
        if request.mode == shelf_search::Mode::Lexical {
            proptest::prop_assert!(ranked.is_err());
        } else {
            proptest::prop_assert!(ranked.is_ok());
        }
    }
}

/// One bundle for every fuzz case (opening one per case would dominate).
fn fuzz_bundle() -> &'static MappedBundle {
    static BUNDLE: std::sync::OnceLock<(tempfile::TempDir, MappedBundle)> =
        std::sync::OnceLock::new();
    &BUNDLE.get_or_init(|| open(300)).1
}

fn query_vector(seed: usize) -> Vec<f32> {
    query(seed)
}
