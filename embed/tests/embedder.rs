//! The embedder against the real provisioned runtime (scripts/setup): parity
//! with the converter's float64 reference (fp32 and the int8 default),
//! determinism, and the property reproducible bundles rest on: a text's
//! vector does not depend on what else is embedded with it.

use std::sync::OnceLock;

use serde::Deserialize;
use shelf_embed::{DIMENSIONS, Embedder, EmbedderOptions, FP32_MODEL_NAME, MODEL_NAME, Runtime};

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

fn fp32() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| load(fp32_options()))
}

fn fp32_options() -> EmbedderOptions {
    let rt = Runtime::locate(None).expect("runtime: run scripts/setup first");
    EmbedderOptions {
        model: Some(rt.fp32_model_dir()),
        ..EmbedderOptions::default()
    }
}

fn load(options: EmbedderOptions) -> Embedder {
    let rt = Runtime::locate(None).expect("runtime: run scripts/setup first");
    Embedder::load(&rt, &options).expect("embedder loads")
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// Cosines of `e`'s vectors to the converter's float64 reference.
fn parity(e: &Embedder) -> Vec<f64> {
    let rt = Runtime::locate(None).unwrap();
    let path = rt
        .reference_embeddings
        .expect("runtime.json names the reference");
    let reference: Reference = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(reference.max_length, shelf_embed::MAX_TOKENS);
    assert!(reference.texts.len() >= 5);
    let texts: Vec<&str> = reference.texts.iter().map(|t| t.text.as_str()).collect();
    let got = e.embed_documents(&texts).unwrap();
    reference
        .texts
        .iter()
        .zip(&got)
        .map(|(r, v)| {
            assert_eq!(v.len(), DIMENSIONS);
            let c = cosine(&r.embedding, v);
            eprintln!(
                "{} parity cosine {c:.7} for {:?}",
                e.identity().name,
                r.text.chars().take(40).collect::<String>()
            );
            c
        })
        .collect()
}

#[test]
fn the_fp32_model_matches_the_float64_reference_of_the_original_weights() {
    for c in parity(fp32()) {
        assert!(c >= 0.9999, "cosine {c:.6}");
    }
}

#[test]
fn the_int8_default_stays_close_to_the_float64_reference() {
    // Quantisation costs accuracy by design; the bound is what per-channel
    // weights measured on real chunks (mean 0.992, min 0.973 over 4,289),
    // with a little room. Per-tensor weights (mean 0.93) would fail it.
    let cosines = parity(embedder());
    let mean = cosines.iter().sum::<f64>() / cosines.len() as f64;
    let min = cosines.iter().copied().fold(1.0, f64::min);
    assert!(mean >= 0.985 && min >= 0.96, "mean {mean:.4}, min {min:.4}");
}

#[test]
fn the_default_is_the_int8_model_and_fp32_keeps_the_identity_bundles_had() {
    let rt = Runtime::locate(None).unwrap();
    let int8 = embedder().identity();
    assert_eq!(int8.name, MODEL_NAME);
    let fp32 = fp32().identity();
    assert_eq!(fp32.name, FP32_MODEL_NAME);
    // Bundles built before int8 became the default recorded exactly this
    // fp32 identity, so `--model .runtime/model-fp32` still serves them.
    assert_eq!(
        hex::encode(fp32.onnx_sha256),
        "c2b7f86bb2680168e85e070add6a193f54407e13ec97454d9ba2b50534dff4d8"
    );
    assert_eq!(
        (fp32.dimensions, fp32.pooling.as_str(), fp32.max_tokens),
        (384, "mean", 256)
    );
    assert!(fp32.query_prefix.is_empty() && fp32.document_prefix.is_empty());
    assert_eq!(
        Some(int8.onnx_sha256),
        shelf_embed::runtime::pinned_sha256("model/model.onnx")
    );
    assert_eq!(int8.tokenizer_sha256, fp32.tokenizer_sha256);
    // A server with one refuses bundles of the other, naming why.
    let diff = int8.mismatch(fp32).expect("different models");
    assert!(diff.contains("int8-per-channel"), "{diff}");
    assert!(rt.fp32_model_dir().join("shelf-model.toml").is_file());
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

const SHORT: &str = "fn add(a: i32, b: i32) -> i32 { a + b }";

/// Texts of very different lengths, `SHORT` among them: more than the
/// embedder has sessions, so several embed at once.
fn neighbours() -> Vec<String> {
    let mut texts: Vec<String> = (0..9)
        .map(|i| {
            format!("def handler_{i}(request):\n    return retry(request, {i})\n").repeat(i + 1)
        })
        .collect();
    texts.insert(4, SHORT.to_string());
    texts.push("a much longer neighbour ".repeat(40));
    texts
}

/// `e` gives SHORT the same bits alone, in a batch of ten, beside a much
/// longer neighbour, and as a query; and every text of the batch the bits
/// it has alone.
fn assert_batch_invariant(e: &Embedder) {
    let alone = e.embed_documents(&[SHORT]).unwrap().remove(0);
    let texts = neighbours();
    let batched = e.embed_documents(&texts).unwrap();
    assert_eq!(
        batched[4],
        alone,
        "{}: in a batch of ten",
        e.identity().name
    );
    let long = "a much longer neighbour ".repeat(40);
    let beside = e.embed_documents(&[long.as_str(), SHORT]).unwrap();
    assert_eq!(
        beside[1],
        alone,
        "{}: beside a longer text",
        e.identity().name
    );
    assert_eq!(e.embed_query(SHORT).unwrap(), alone, "as a query");
    for (t, v) in texts.iter().zip(&batched) {
        assert_eq!(&e.embed_documents(&[t]).unwrap()[0], v, "{t:?}");
    }
}

#[test]
fn a_vector_is_bit_identical_alone_in_a_batch_and_beside_a_longer_neighbour() {
    assert_batch_invariant(embedder());
}

#[test]
fn an_fp32_vector_is_bit_identical_alone_in_a_batch_and_beside_a_longer_neighbour() {
    assert_batch_invariant(fp32());
}

#[test]
fn vectors_do_not_depend_on_sessions_or_threads_per_session() {
    // Builder and server may run other layouts (`embed_threads`); a
    // bundle's vectors and a cached query's must not care.
    let texts = neighbours();
    let reference = embedder().embed_documents(&texts).unwrap();
    for (sessions, threads) in [(1, 1), (1, 2), (3, 1)] {
        let e = load(EmbedderOptions {
            sessions: Some(sessions),
            intra_threads: Some(threads),
            ..EmbedderOptions::default()
        });
        assert_eq!((e.sessions(), e.threads_per_session()), (sessions, threads));
        assert_eq!(
            e.embed_documents(&texts).unwrap(),
            reference,
            "{sessions} sessions x {threads} threads"
        );
    }
}

#[test]
fn padded_batches_would_change_int8_vectors_which_is_why_texts_run_alone() {
    // The trap the one-text-per-call design avoids: in a padded batch the
    // int8 model's activation scales cover the neighbours and the padding.
    // If this stopped failing to be equal, the test above would prove less.
    let long = "a much longer neighbour ".repeat(40);
    let batched_options = EmbedderOptions {
        batch_size: 8,
        ..EmbedderOptions::default()
    };
    let int8 = load(batched_options.clone());
    let alone = embedder().embed_documents(&[SHORT]).unwrap().remove(0);
    let padded = int8.embed_documents(&[long.as_str(), SHORT]).unwrap();
    let diff = max_abs_diff(&alone, &padded[1]);
    eprintln!("int8, padded batch vs alone: max |diff| {diff:e}");
    assert!(diff > 1e-4, "max |diff| {diff:e}");
    // fp32 has no activation quantisation; measured, not relied on (every
    // text runs alone with fp32 too).
    let fp32_batched = load(EmbedderOptions {
        model: fp32_options().model,
        ..batched_options
    });
    let alone = fp32().embed_documents(&[SHORT]).unwrap().remove(0);
    let padded = fp32_batched
        .embed_documents(&[long.as_str(), SHORT])
        .unwrap();
    eprintln!(
        "fp32, padded batch vs alone: max |diff| {:e}, bit-identical: {}",
        max_abs_diff(&alone, &padded[1]),
        alone == padded[1]
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
