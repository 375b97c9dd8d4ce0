//! `shelf-bench quantization`: see [`Quantization`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use usearch::{Index, ScalarKind};

use crate::fixtures::vectors::{exact_top_k, open_graph_bundle};
use crate::harness::{Bench, Benchmark};

const K: usize = 10;

/// Which scalar type (and insert-time candidate list, `ef_add`) should
/// bundle indexes use?
///
/// Builds HNSW graphs over a real bundle's vectors with each usearch scalar
/// kind and measures recall@10 against exact f32 search, index size, build
/// time (single-threaded, as the builder does) and search latency.
#[derive(Debug, Clone, clap::Args)]
pub struct Quantization {
    /// A bundle built by `shelf build` (a real repository, not generated text).
    #[arg(long)]
    bundle: PathBuf,
    /// Queries (the first line of evenly spaced chunks, embedded).
    #[arg(long, default_value_t = 300)]
    queries: usize,
}

/// What `shelf-bench quantization` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    bench: String,
    bundle: String,
    vectors: usize,
    queries: usize,
    k: usize,
    rows: Vec<KindOut>,
}

/// One scalar kind and `ef_add`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KindOut {
    kind: String,
    ef_add: usize,
    recall_at_10: f64,
    index_bytes: u64,
    build_ms: f64,
    search_p50_us: f64,
}

impl Benchmark for Quantization {
    const NAME: &'static str = "quantization";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let (bundle, queries) = (&self.bundle, self.queries);
        let t = b.work();
        let graph = open_graph_bundle(bundle, &t.join("b"), queries)?;
        let vectors = &graph.vectors;
        let dims = graph.index.dimensions();
        let n = vectors.len();
        anyhow::ensure!(n > K, "the bundle has only {n} chunks");
        let runtime = Runtime::locate(None)?;
        let embedder = Embedder::load(&runtime, &EmbedderOptions::default())?;
        let query_vecs = embedder.embed_queries(&graph.query_texts)?;
        b.say(format!("{n} vectors, {} queries, k={K}", query_vecs.len()));

        // Ground truth: exact cosine (vectors are normalised: dot product).
        let truth: Vec<Vec<u64>> = query_vecs
            .iter()
            .map(|qv| exact_top_k(vectors, qv, K))
            .collect();

        let mut rows = Vec::new();
        println!(
            "{:<6} {:>7} {:>10} {:>12} {:>14} {:>10} {:>12}",
            "kind", "ef_add", "recall@10", "index bytes", "bytes/vector", "build ms", "search p50"
        );
        for (name, kind, ef_add) in [
            ("f32", ScalarKind::F32, 128),
            ("f32", ScalarKind::F32, 64),
            ("bf16", ScalarKind::BF16, 128),
            ("f16", ScalarKind::F16, 128),
            ("i8", ScalarKind::I8, 128),
        ] {
            // The HNSW options bundles 1.0 to 1.2 were built with.
            let opts = usearch::IndexOptions {
                dimensions: dims,
                metric: usearch::MetricKind::Cos,
                quantization: kind,
                connectivity: 16,
                expansion_add: ef_add,
                expansion_search: 64,
                multi: false,
            };
            let started = Instant::now();
            let idx = Index::new(&opts).map_err(|e| anyhow::anyhow!("{e}"))?;
            idx.reserve(n).map_err(|e| anyhow::anyhow!("{e}"))?;
            for (key, v) in vectors.iter().enumerate() {
                idx.add(key as u64, v).map_err(|e| anyhow::anyhow!("{e}"))?;
            }
            let build_ms = started.elapsed().as_secs_f64() * 1e3;
            let path = t.join(format!("{name}-{ef_add}.usearch"));
            idx.save(path.to_str().context("UTF-8 path")?)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let size = std::fs::metadata(&path)?.len();
            let mut hits = 0usize;
            let mut times = Vec::with_capacity(query_vecs.len());
            for (qv, truth) in query_vecs.iter().zip(&truth) {
                let started = Instant::now();
                let m = idx.search(qv, K).map_err(|e| anyhow::anyhow!("{e}"))?;
                times.push(started.elapsed().as_secs_f64() * 1e6);
                hits += m.keys.iter().filter(|k| truth.contains(k)).count();
            }
            times.sort_by(f64::total_cmp);
            let recall = hits as f64 / (K * query_vecs.len()) as f64;
            let p50 = times[times.len() / 2];
            println!(
                "{name:<6} {ef_add:>7} {recall:>10.4} {size:>12} {:>14.0} {build_ms:>10.0} {p50:>10.1}us",
                size as f64 / n as f64,
            );
            rows.push(KindOut {
                kind: name.into(),
                ef_add,
                recall_at_10: recall,
                index_bytes: size,
                build_ms,
                search_p50_us: p50,
            });
        }
        Ok(Results {
            bench: "quantization".into(),
            bundle: bundle.display().to_string(),
            vectors: n,
            queries: query_vecs.len(),
            k: K,
            rows,
        })
    }
}
