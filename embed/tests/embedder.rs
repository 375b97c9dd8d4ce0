//! The embedder against the real provisioned runtime (scripts/setup): parity
//! with the converter's float64 reference, determinism, and batch behaviour.

use std::sync::OnceLock;

use serde::Deserialize;
use shelf_embed::{DIMENSIONS, Embedder, EmbedderOptions, Runtime};

#[derive(Deserialize)]
struct Reference {
    max_length: usize,
    texts: Vec<RefText>,
}

#[derive(Deserialize)]
struct RefText {
    text: String,
    embedding: Vec<f32>,
}

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        let rt = Runtime::locate(None).expect("runtime: run scripts/setup first");
        Embedder::load(&rt, &EmbedderOptions::default()).expect("embedder loads")
    })
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn matches_the_float64_reference_of_the_original_weights() {
    let rt = Runtime::locate(None).unwrap();
    let path = rt
        .reference_embeddings
        .expect("runtime.json names the reference");
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(reference.max_length, shelf_embed::MAX_TOKENS);
    assert!(reference.texts.len() >= 5);
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let got = embedder().embed_documents(&texts).unwrap();
    for (r, v) in reference.texts.iter().zip(&got) {
        assert_eq!(v.len(), DIMENSIONS);
        let c = cosine(&r.embedding, v);
        eprintln!(
            "parity cosine {c:.7} for {:?}",
            r.text.chars().take(40).collect::<String>()
        );
        assert!(c >= 0.9999, "cosine {c:.6} for {:?}", r.text);
    }
}

#[test]
fn embeds_deterministically_and_normalised() {
    let e = embedder();
    let a = e
        .embed_query("where is the tag compare-and-swap implemented?")
        .unwrap();
    let b = e
        .embed_query("where is the tag compare-and-swap implemented?")
        .unwrap();
    assert_eq!(a, b, "same text, same process: bit-identical");
    let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
}

#[test]
fn a_vector_does_not_depend_on_its_batch_neighbours_beyond_float_noise() {
    // Padding to the longest text in a batch may move the last bits; the
    // builder's reproducibility must not rely on more than this bound.
    let e = embedder();
    let short = "fn add(a: i32, b: i32) -> i32 { a + b }";
    let long = "a much longer neighbour ".repeat(40);
    let alone = e.embed_query(short).unwrap();
    let batched = e.embed_documents(&[long.as_str(), short]).unwrap();
    let c = cosine(&alone, &batched[1]);
    assert!(c > 0.99999, "cosine {c}");
    let max_diff = alone
        .iter()
        .zip(&batched[1])
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!(
        "batch vs alone: max |diff| {max_diff:e}, bit-identical: {}",
        alone == batched[1]
    );
}

#[test]
fn similar_meaning_scores_higher_than_unrelated_text() {
    let e = embedder();
    let v = e
        .embed_documents(&[
            "How do I roll back a release?",
            "Revert the deployment to the previous version",
            "Bananas are rich in potassium",
        ])
        .unwrap();
    assert!(cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]) + 0.2);
}

#[test]
fn counts_tokens_past_the_model_limit() {
    let e = embedder();
    assert_eq!(e.count_tokens("").unwrap(), 2, "[CLS] and [SEP]");
    let long = "word ".repeat(1000);
    assert!(
        e.count_tokens(&long).unwrap() > 1000,
        "no truncation when counting"
    );
}

#[test]
fn empty_input_gives_no_vectors() {
    assert!(embedder().embed_documents::<&str>(&[]).unwrap().is_empty());
}

#[test]
fn a_custom_model_applies_its_prefixes_pooling_and_limit_and_names_itself() {
    let rt = Runtime::locate(None).unwrap();
    // Same weights, mean pooling, prefixes: a query is the default model's
    // document with the prefix in front, bit for bit.
    let dir = shelf_testkit::custom_model(
        &rt.dir,
        "name = \"test/minilm-prefixed\"\ndimensions = 384\npooling = \"mean\"\nmax_tokens = 128\nquery_prefix = \"query: \"\ndocument_prefix = \"passage: \"\n",
    );
    let custom = Embedder::load(
        &rt,
        &EmbedderOptions {
            model: Some(dir.path().to_path_buf()),
            ..EmbedderOptions::default()
        },
    )
    .unwrap();
    let id = custom.identity();
    assert_eq!(
        (id.name.as_str(), id.max_tokens, id.query_prefix.as_str()),
        ("test/minilm-prefixed", 128, "query: ")
    );
    assert_eq!(
        id.onnx_sha256,
        embedder().identity().onnx_sha256,
        "same weights"
    );
    assert!(id.mismatch(embedder().identity()).is_some());
    let q = custom.embed_query("where are tags moved").unwrap();
    let expected = embedder()
        .embed_documents(&["query: where are tags moved"])
        .unwrap();
    assert_eq!(q, expected[0]);
    let d = custom.embed_documents(&["where are tags moved"]).unwrap();
    assert_eq!(
        d,
        embedder()
            .embed_documents(&["passage: where are tags moved"])
            .unwrap()
    );
    assert_ne!(q, d[0], "queries and documents are embedded differently");
    assert!(custom.document_prefix_tokens() >= 1);

    // CLS pooling gives other vectors from the same weights.
    let cls_dir = shelf_testkit::custom_model(
        &rt.dir,
        "name = \"test/minilm-cls\"\ndimensions = 384\npooling = \"cls\"\nmax_tokens = 256\n",
    );
    let cls = Embedder::load(
        &rt,
        &EmbedderOptions {
            model: Some(cls_dir.path().to_path_buf()),
            ..EmbedderOptions::default()
        },
    )
    .unwrap();
    let a = cls.embed_query("where are tags moved").unwrap();
    let b = embedder().embed_query("where are tags moved").unwrap();
    assert!(cosine(&a, &b) < 0.999, "cls and mean pooling differ");

    // A broken model directory is an error naming the file, not a panic.
    let err = Embedder::load(
        &rt,
        &EmbedderOptions {
            model: Some(std::path::PathBuf::from("/nonexistent/model")),
            ..EmbedderOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("shelf-model.toml"), "{err}");
}
