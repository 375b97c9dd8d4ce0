//! `shelf-bench agreement`: see [`Agreement`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_formats::vectors::{Element, FlatVectors};
use shelf_search::flat::{Admit, top_k};
use shelf_search::mapped::DEFAULT_EXPANSION_SEARCH;

use crate::fixtures::vectors::{exact_top_k, open_graph_bundle};
use crate::harness::stats::median;
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Row, runtime, table};

/// The flat vectors must find at least this share of exact f32's top k.
const MIN_AGREEMENT: f64 = 0.99;

/// Do the semantic candidates of a bundle agree with exact cosine search?
///
/// For each real bundle of format 1.0 to 1.2 (f32 vectors in a usearch HNSW
/// index, as those builds wrote), the top k (default 50) of these searches
/// over the same vectors and queries, with each search's time per query:
/// - **exact f32**: every vector compared in f32 (the truth);
/// - **today**: the bundle's own HNSW index, searched as the server
///   searches it (`expansion_search` at its default);
/// - **flat f16**: the vectors written as format 1.3's `vectors.bin` (f16)
///   and searched exactly by the engine's own scan (`shelf_search::flat`);
/// - **flat i8**: the same as format 1.5 writes them (signed bytes in
///   blocks of 32), searched by the same scan.
///
/// Agreement is the share of the truth's top k that a search returns.
#[derive(Debug, Clone, clap::Args)]
pub struct Agreement {
    /// Bundles built by `shelf build` of format 1.0 to 1.2 (real
    /// repositories; at least three for the target).
    #[arg(long, required = true)]
    bundle: Vec<PathBuf>,
    /// Queries per bundle (the first line of evenly spaced chunks, embedded).
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Candidates compared.
    #[arg(long, default_value_t = 50)]
    k: usize,
}

/// What `shelf-bench agreement` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    bench: String,
    machine: crate::harness::Machine,
    k: usize,
    bundles: Vec<BundleOut>,
    table: Vec<Row>,
}

/// One bundle's figures.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleOut {
    bundle: String,
    repository: String,
    vectors: usize,
    queries: usize,
    hnsw_agreement: f64,
    flat_f16_agreement: f64,
    flat_i8_agreement: f64,
    exact_f32_p50_us: f64,
    hnsw_p50_us: f64,
    flat_f16_p50_us: f64,
    flat_i8_p50_us: f64,
    hnsw_bytes: u64,
    flat_f16_bytes: u64,
    flat_i8_bytes: u64,
}

impl Benchmark for Agreement {
    const NAME: &'static str = "agreement";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let runtime = runtime()?;
        let embedder = Embedder::load(&runtime, &EmbedderOptions::default())?;
        let mut bundles = Vec::new();
        let mut t = Table::default();
        for (i, path) in self.bundle.iter().enumerate() {
            let out = self.one(b, &embedder, path, &b.work().join(format!("b{i}")))?;
            b.say(format!(
                "{}: hnsw {:.4}, flat f16 {:.4}, flat i8 {:.4}",
                out.repository, out.hnsw_agreement, out.flat_f16_agreement, out.flat_i8_agreement
            ));
            t.check(
                format!(
                    "{} ({} vectors): agreement at k={}, flat i8 (f16, HNSW)",
                    out.repository, out.vectors, self.k
                ),
                format!(
                    "{:.4} ({:.4}, {:.4})",
                    out.flat_i8_agreement, out.flat_f16_agreement, out.hnsw_agreement
                ),
                format!(">= {MIN_AGREEMENT}"),
                out.flat_i8_agreement >= MIN_AGREEMENT && out.flat_f16_agreement >= MIN_AGREEMENT,
            );
            t.info(
                format!(
                    "{}: search per query p50, flat i8 / flat f16 / HNSW / exact f32",
                    out.repository
                ),
                format!(
                    "{:.0} / {:.0} / {:.0} / {:.0} us",
                    out.flat_i8_p50_us, out.flat_f16_p50_us, out.hnsw_p50_us, out.exact_f32_p50_us
                ),
            );
            t.info(
                format!(
                    "{}: vector bytes, flat i8 / flat f16 / HNSW f32",
                    out.repository
                ),
                format!(
                    "{} / {} / {} ({:.2})",
                    out.flat_i8_bytes,
                    out.flat_f16_bytes,
                    out.hnsw_bytes,
                    out.flat_i8_bytes as f64 / out.hnsw_bytes as f64
                ),
            );
            bundles.push(out);
        }
        println!("{}", table::render(&t.rows));
        Ok(Results {
            bench: Self::NAME.into(),
            machine: b.machine.clone(),
            k: self.k,
            bundles,
            table: t.rows,
        })
    }
}

impl Agreement {
    fn one(&self, b: &Bench, embedder: &Embedder, path: &Path, work: &Path) -> Result<BundleOut> {
        let graph = open_graph_bundle(path, work, self.queries)?;
        let (index, vectors) = (&graph.index, &graph.vectors);
        index.change_expansion_search(DEFAULT_EXPANSION_SEARCH);
        let dims = index.dimensions();
        let n = vectors.len();
        anyhow::ensure!(n > self.k, "{}: only {n} chunks", path.display());
        let rows: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
        let written = |element| -> Result<Vec<u8>> {
            let mut bytes = Vec::new();
            shelf_formats::vectors::write_to(&rows, dims, element, &mut bytes)?;
            Ok(bytes)
        };
        let (f16_bytes, i8_bytes) = (written(Element::F16)?, written(Element::I8Blocks)?);
        let open = |b| FlatVectors::open(b).map_err(|e| anyhow::anyhow!("{e}"));
        let (f16, i8) = (open(&f16_bytes)?, open(&i8_bytes)?);
        let queries = embedder.embed_queries(&graph.query_texts)?;
        b.say(format!(
            "{}: {n} vectors, {} queries",
            path.display(),
            queries.len()
        ));
        let k = self.k;
        let (mut exact_us, mut hnsw_us) = (Vec::new(), Vec::new());
        let (mut f16_us, mut i8_us) = (Vec::new(), Vec::new());
        let (mut hnsw_hits, mut f16_hits, mut i8_hits) = (0usize, 0usize, 0usize);
        for qv in &queries {
            let started = Instant::now();
            let truth = exact_top_k(vectors, qv, k);
            exact_us.push(started.elapsed().as_secs_f64() * 1e6);

            let started = Instant::now();
            let found = index.search(qv, k).map_err(|e| anyhow::anyhow!("{e}"))?;
            hnsw_us.push(started.elapsed().as_secs_f64() * 1e6);
            hnsw_hits += found.keys.iter().filter(|key| truth.contains(key)).count();

            for (flat, us, hits) in [
                (&f16, &mut f16_us, &mut f16_hits),
                (&i8, &mut i8_us, &mut i8_hits),
            ] {
                let started = Instant::now();
                let found = top_k(flat, &[qv.as_slice()], k, Admit::All);
                us.push(started.elapsed().as_secs_f64() * 1e6);
                *hits += found.iter().filter(|h| truth.contains(&h.key)).count();
            }
        }
        let total = (k * queries.len()) as f64;
        Ok(BundleOut {
            bundle: path.display().to_string(),
            repository: graph.repository.clone(),
            vectors: n,
            queries: queries.len(),
            hnsw_agreement: hnsw_hits as f64 / total,
            flat_f16_agreement: f16_hits as f64 / total,
            flat_i8_agreement: i8_hits as f64 / total,
            exact_f32_p50_us: median(&exact_us),
            hnsw_p50_us: median(&hnsw_us),
            flat_f16_p50_us: median(&f16_us),
            flat_i8_p50_us: median(&i8_us),
            hnsw_bytes: std::fs::metadata(&graph.graph_path)?.len(),
            flat_f16_bytes: f16_bytes.len() as u64,
            flat_i8_bytes: i8_bytes.len() as u64,
        })
    }
}
