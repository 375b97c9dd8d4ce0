//! `shelf-bench serve`: see [`Serve`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_search::mapped::DEFAULT_EXPANSION_SEARCH;
use shelf_search::{Engine, MappedBundle, RawRequest, Request, RequestLimits};
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;

use crate::fixtures::corpus::Corpus;
use crate::fixtures::load::{self, Call, LevelOut, Sample, WARMUP};
use crate::fixtures::process::process_rss_kib;
use crate::fixtures::queries::QueryPool;
use crate::fixtures::rng::Rng;
use crate::fixtures::server::{StartOut, follow_args, start_once, start_ready};
use crate::fixtures::shelf::{BuildRun, ShelfBinary};
use crate::harness::stats::{median, percentile};
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, runtime, table};

// Targets, in one place so the table and docs/benchmarks.md agree.
const MAX_WARM_START_MS: f64 = 100.0;
const MAX_P50_AT_8_MS: f64 = 10.0;
const MAX_P99_AT_8_MS: f64 = 30.0;
const MAX_SEARCH_MS: f64 = 1.0;
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Clients kept busy while the tag moves.
const SWAP_CLIENTS: usize = 32;
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// The query server under load on loopback, with the real binary, a real
/// ~10,000-chunk bundle and a local directory store.
///
/// Measures start to ready (warm cache and with a download), latency and
/// throughput at 1, 8 and 32 clients with the server's embed/search split,
/// search alone in process, 20 tag moves under 32 clients, and RSS with one
/// and two bundles live. The generator's share of the CPU is reported: it
/// runs on the same two cores as the server. Builds the bundle once
/// (minutes) and keeps it under --bundle-cache. Needs `cargo build --bin
/// shelf` and `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Serve {
    /// Files in the generated repository (2,800 give about 10,000 chunks).
    #[arg(long, default_value_t = 2800)]
    files: usize,
    /// Seed of the generated repository.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Requests per concurrency level.
    #[arg(long, default_value_t = 1500)]
    requests: usize,
    /// Seconds at most per concurrency level.
    #[arg(long, default_value_t = 30)]
    max_seconds: u64,
    /// Tag moves under load.
    #[arg(long, default_value_t = 20)]
    swaps: usize,
    /// Repetitions of each start-to-ready measurement.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Where the built bundles are kept between runs.
    #[arg(long, default_value = "target/bench-cache")]
    bundle_cache: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleInfo {
    digest: String,
    path: PathBuf,
    bytes: u64,
    chunks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapOut {
    moves: usize,
    clients: usize,
    requests: usize,
    failed: usize,
    foreign_digests: usize,
    /// Tag written -> first answer carrying the new digest (the publish
    /// step's reload call comes right after the tag write).
    move_to_first_answer_ms: Vec<f64>,
    median_move_to_first_answer_ms: f64,
    max_move_to_first_answer_ms: f64,
    /// The reload call's own latency (load beside, warm, swap).
    reload_call_ms: Vec<f64>,
    p50_ms_during: f64,
    p99_ms_during: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EfOut {
    expansion_search: usize,
    recall_at_10: f64,
    search_p50_us: f64,
    search_p99_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct InProcessOut {
    queries: usize,
    /// At the server's default search breadth.
    search_p50_us: f64,
    search_p99_us: f64,
    /// Recall@10 against brute force, and time, by search breadth.
    by_expansion: Vec<EfOut>,
    embed_one_query_p50_ms: f64,
    query_tokens_median: f64,
    /// BM25 over the lexical index alone (100 candidates), p50 / p99.
    lexical_p50_us: f64,
    lexical_p99_us: f64,
    /// Both rankers, fusion and file-free ordering, given the query
    /// vector (the whole hybrid cost but the embedding), p50 / p99.
    hybrid_rank_p50_us: f64,
    hybrid_rank_p99_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RssOut {
    one_bundle_mib: f64,
    peak_two_bundles_mib: f64,
    bundle_bytes_mib: f64,
}

/// Everything measured, as the table is made of it.
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    start_warm_cache: StartOut,
    start_with_download: StartOut,
    levels: Vec<LevelOut>,
    in_process: InProcessOut,
    swap: SwapOut,
    rss: RssOut,
}

/// What `shelf-bench serve` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    files: usize,
    seed: u64,
    bundles: Vec<BundleInfo>,
    /// Flattened: its fields are keys of the results themselves.
    #[serde(flatten)]
    measured: Measured,
    rows: Vec<Row>,
}

impl Benchmark for Serve {
    const NAME: &'static str = "serve";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        if self.files == 0 || self.requests == 0 || self.starts == 0 {
            bail!("--files, --requests and --starts must be at least 1");
        }
        let shelf = b.shelf()?;
        let corpus = Corpus::generate(self.files, self.seed);
        let queries = Queries::new(&corpus, self)?;
        let (v1, v2) = self.bundles(b, shelf)?;
        b.say(format!(
            "bundles: v1 {} ({} chunks, {:.1} MiB), v2 {}",
            v1.digest,
            v1.chunks,
            v1.bytes as f64 / 1048576.0,
            v2.digest
        ));
        let store = b.work().join("store");
        shelf.publish(&v1.path, &v1.digest, &store)?;
        shelf.push(&v2.path, &store)?;
        let stage = Stage {
            opts: self,
            b,
            shelf,
            store,
        };
        let (start_warm_cache, start_with_download) = stage.start_to_ready()?;
        let loaded = stage.under_load(&queries, [&v1, &v2])?;
        // Stage 4: search alone, in process, with real query vectors.
        b.say("in-process: search alone and embedding alone");
        let in_process = in_process(&v1, &queries.shared, b.work())?;
        let measured = Measured {
            start_warm_cache,
            start_with_download,
            levels: loaded.levels,
            in_process,
            swap: loaded.swap,
            rss: RssOut {
                one_bundle_mib: loaded.one_bundle_rss_kib as f64 / 1024.0,
                peak_two_bundles_mib: loaded.peak_rss_kib as f64 / 1024.0,
                bundle_bytes_mib: v1.bytes as f64 / 1048576.0,
            },
        };
        let rows = rows(&measured, &v1);
        print!("{}", table::render(&rows));
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            files: self.files,
            seed: self.seed,
            bundles: vec![v1, v2],
            measured,
            rows,
        })
    }
}

/// The shared queries' count (see [`Queries::shared`]).
const SHARED: usize = 1000;

/// The benchmark's distinct queries. The server caches query vectors: the
/// warm-up and every level get their own, so no level is answered from
/// the cache.
struct Queries {
    warmup: Arc<Vec<String>>,
    /// One slice per load level of [`CONCURRENCY`].
    levels: Vec<Arc<Vec<String>>>,
    /// The first [`SHARED`] queries (the warm-up's among them), for the
    /// tag moves and the in-process measurements.
    shared: Arc<Vec<String>>,
}

impl Queries {
    fn new(corpus: &Corpus, opts: &Serve) -> Result<Self> {
        let needed = WARMUP + CONCURRENCY.len() * opts.requests;
        let mut pool = QueryPool::new(corpus, opts.seed, needed.max(SHARED), needed)?;
        Ok(Self {
            warmup: pool.take(WARMUP),
            levels: CONCURRENCY.map(|_| pool.take(opts.requests)).to_vec(),
            shared: pool.first(SHARED),
        })
    }
}

/// What the stages after the bundles share: the options, the harness,
/// the binary and the store both bundles are in, with `production` on v1.
struct Stage<'a> {
    opts: &'a Serve,
    b: &'a Bench,
    shelf: &'a ShelfBinary,
    store: PathBuf,
}

/// One server under load: the levels, then the tag moves, with its RSS
/// after each.
struct UnderLoad {
    levels: Vec<LevelOut>,
    swap: SwapOut,
    one_bundle_rss_kib: u64,
    peak_rss_kib: u64,
}

impl Stage<'_> {
    fn serve_args(&self, cache: &Path) -> Vec<String> {
        follow_args("--store", &self.store, cache, "1h")
    }

    fn warm_cache(&self) -> PathBuf {
        self.b.work().join("cache")
    }

    /// Stage 1, start to ready: with a download into an empty cache, then
    /// warm. Returns (warm cache, with download).
    fn start_to_ready(&self) -> Result<(StartOut, StartOut)> {
        let (shelf, work) = (self.shelf, self.b.work());
        let mut download = Vec::new();
        for i in 0..self.opts.starts {
            let cache = work.join(format!("cold-cache-{i}"));
            download.push(start_once(shelf, &self.serve_args(&cache))?);
            let _ = std::fs::remove_dir_all(&cache);
        }
        start_once(shelf, &self.serve_args(&self.warm_cache()))?;
        let mut warm = Vec::new();
        for _ in 0..self.opts.starts {
            warm.push(start_once(shelf, &self.serve_args(&self.warm_cache()))?);
        }
        let (start_warm_cache, start_with_download) =
            (StartOut::of(&warm), StartOut::of(&download));
        self.b.say(format!(
            "start to ready: warm {:.0} ms (model {:.0} ms), with download {:.0} ms",
            start_warm_cache.median_ms,
            start_warm_cache.median_model_load_ms,
            start_with_download.median_ms
        ));
        Ok((start_warm_cache, start_with_download))
    }

    /// Stages 2 and 3: one server on the warm cache, warmed up, then the
    /// load levels, then tag moves under load.
    fn under_load(&self, queries: &Queries, bundles: [&BundleInfo; 2]) -> Result<UnderLoad> {
        let env = [
            ("SHELF_ADMIN_TOKEN", ADMIN_TOKEN),
            ("SHELF_LOG", "warn,shelf_server=info"),
        ];
        let args = self.serve_args(&self.warm_cache());
        let server = start_ready(self.shelf, &args, &env, |_| true)?.server;
        let pid = server.pid();
        let rt = load::runtime()?;
        load::warm_up(&rt, server.addr, Call::searches(&queries.warmup, ""));
        let levels = self.load_levels(&rt, &server, queries);
        let (one_bundle_rss_kib, _) = process_rss_kib(pid).unwrap_or((0, 0));

        let swaps = self.opts.swaps;
        self.b
            .say(format!("{swaps} tag moves under {SWAP_CLIENTS} clients"));
        let swap = self.swap_under_load(&rt, &server, bundles, &queries.shared)?;
        let (_, peak_rss_kib) = process_rss_kib(pid).unwrap_or((0, 0));
        self.b.say(format!(
            "  {} requests, {} failed, {} from another bundle; move -> first new answer median {:.0} ms, max {:.0} ms",
            swap.requests,
            swap.failed,
            swap.foreign_digests,
            swap.median_move_to_first_answer_ms,
            swap.max_move_to_first_answer_ms
        ));
        drop(server);
        drop(rt);
        Ok(UnderLoad {
            levels,
            swap,
            one_bundle_rss_kib,
            peak_rss_kib,
        })
    }

    /// Latency and throughput at each of [`CONCURRENCY`] clients.
    fn load_levels(
        &self,
        rt: &tokio::runtime::Runtime,
        server: &ServerProcess,
        queries: &Queries,
    ) -> Vec<LevelOut> {
        let mut levels = Vec::new();
        for (clients, level) in CONCURRENCY.into_iter().zip(&queries.levels) {
            let (requests, secs) = (self.opts.requests, self.opts.max_seconds);
            self.b.say(format!(
                "{clients} clients: up to {requests} requests or {secs} s"
            ));
            let limits = load::Limits::new(requests, secs);
            let timed = load::run_timed(rt, server, clients, Call::searches(level, ""), limits);
            let level = LevelOut::of(clients, &timed);
            self.b.say(format!(
                "  {:.0} q/s, p50 {:.1} ms, p99 {:.1} ms (server embed p50 {:.1} ms, search p50 {:.2} ms), {} failed, generator {:.0}% of CPU",
                level.throughput_qps,
                level.p50_ms,
                level.p99_ms,
                level.server_embed_p50_ms,
                level.server_search_p50_ms,
                level.failed,
                level.generator_cpu_share * 100.0
            ));
            levels.push(level);
        }
        levels
    }

    /// Stage 3: `--swaps` tag moves, alternating v2 and v1, each followed
    /// by the publish step's reload call, under [`SWAP_CLIENTS`] clients.
    fn swap_under_load(
        &self,
        rt: &tokio::runtime::Runtime,
        server: &ServerProcess,
        bundles: [&BundleInfo; 2],
        queries: &[String],
    ) -> Result<SwapOut> {
        let stop = Arc::new(AtomicBool::new(false));
        let limits = load::Limits::new(usize::MAX, 3600);
        let (addr, calls, until) = (server.addr, Call::searches(queries, ""), Arc::clone(&stop));
        let load = rt.spawn(async move {
            let client = load::client(SWAP_CLIENTS);
            load::run(&client, addr, SWAP_CLIENTS, calls, limits, until).await
        });
        std::thread::sleep(Duration::from_millis(500));
        let moves = self.move_tag(server, bundles);
        stop.store(true, Ordering::Relaxed);
        let moves = moves?;
        let samples = rt.block_on(load).context("the load generator failed")?;
        Ok(swap_out(self.opts.swaps, &samples, moves, bundles))
    }

    fn move_tag(&self, server: &ServerProcess, [v1, v2]: [&BundleInfo; 2]) -> Result<TagMoves> {
        let mut marks = Vec::new();
        let mut reload_ms = Vec::new();
        for i in 0..self.opts.swaps {
            let to = if i % 2 == 0 { v2 } else { v1 };
            self.shelf.tag(&to.digest, &self.store)?;
            let moved = Instant::now();
            let r = http::request(
                server.addr,
                "POST",
                "/v1/admin/reload",
                &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
                b"",
            );
            reload_ms.push(moved.elapsed().as_secs_f64() * 1e3);
            if r.status != 200 || r.json()["live"] != to.digest.as_str() {
                bail!(
                    "reload after move {i} did not swap: {}",
                    String::from_utf8_lossy(&r.body)
                );
            }
            marks.push((moved, to.digest.clone()));
            // Let some answers come from the new bundle before the next move.
            std::thread::sleep(Duration::from_millis(300));
        }
        Ok(TagMoves { marks, reload_ms })
    }
}

impl Serve {
    /// v1 (the corpus) and v2 (5% of files changed, built incrementally),
    /// built once and kept under `--bundle-cache` for later runs.
    fn bundles(&self, b: &Bench, shelf: &ShelfBinary) -> Result<(BundleInfo, BundleInfo)> {
        let dir = self
            .bundle_cache
            .join(format!("serve-f{}-s{}", self.files, self.seed));
        let record = dir.join("bundles.json");
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<(BundleInfo, BundleInfo)>(&bytes).ok())
            .filter(|(a, b)| a.path.is_file() && b.path.is_file());
        // Bundles of an older format are rebuilt from themselves: every vector
        // is reused, only what the format added is computed.
        let mut previous = None;
        if let Some((v1, v2)) = cached {
            if current_format(&v1.path) && current_format(&v2.path) {
                b.say(format!("reusing the bundles in {}", dir.display()));
                return Ok((v1, v2));
            }
            previous = Some(v1.path);
        }
        std::fs::create_dir_all(&dir)?;
        let mut corpus = Corpus::generate(self.files, self.seed);
        let repo = corpus.write_repo();
        repo.commit("serve benchmark corpus");
        b.say(format!(
            "building v1 of {} files (embedding ~10,000 chunks: several minutes on 2 cores)",
            self.files
        ));
        let v1 = shelf.build(repo.path(), &dir.join("v1"), previous.as_deref(), &[])?;
        let mut rng = Rng::new(self.seed ^ 0x7a9);
        let count = corpus.files.len() / 20;
        corpus.touch(&repo, count, &mut rng);
        repo.commit("touch 5% of files");
        b.say("building v2 incrementally (5% of files changed)");
        let v2 = shelf.build(
            repo.path(),
            &dir.join("v2"),
            Some(&v1.report.bundle_path),
            &[],
        )?;
        let info = |r: &BuildRun| BundleInfo {
            digest: r.report.digest.clone(),
            path: r.report.bundle_path.clone(),
            bytes: r.report.bundle_bytes,
            chunks: r.report.chunks.total,
        };
        let (a, b) = (info(&v1), info(&v2));
        std::fs::write(&record, serde_json::to_vec_pretty(&(&a, &b))?)?;
        Ok((a, b))
    }
}

/// Whether a bundle has everything this shelf writes (the lexical index).
fn current_format(bundle: &Path) -> bool {
    shelf_formats::bundle::verify_file(bundle, None, &Default::default()).is_ok_and(|v| {
        v.manifest
            .member(shelf_formats::manifest::members::LEXICAL)
            .is_some()
    })
}

/// When each tag move was made and the digest it moved to, and how long
/// each reload call took.
struct TagMoves {
    marks: Vec<(Instant, String)>,
    reload_ms: Vec<f64>,
}

fn swap_out(
    moves: usize,
    samples: &[Sample],
    tag_moves: TagMoves,
    [v1, v2]: [&BundleInfo; 2],
) -> SwapOut {
    let mut to_first = Vec::new();
    for (moved, digest) in &tag_moves.marks {
        if let Some(first) = samples
            .iter()
            .filter(|s| s.at > *moved && s.digest.as_deref() == Some(digest.as_str()))
            .map(|s| s.at)
            .min()
        {
            to_first.push(first.duration_since(*moved).as_secs_f64() * 1e3);
        }
    }
    let allowed = [v1.digest.as_str(), v2.digest.as_str()];
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.status == 200).collect();
    let lat: Vec<f64> = ok.iter().map(|s| s.latency.as_secs_f64() * 1e3).collect();
    SwapOut {
        moves,
        clients: SWAP_CLIENTS,
        requests: samples.len(),
        failed: samples.len() - ok.len(),
        foreign_digests: ok
            .iter()
            .filter(|s| !s.digest.as_deref().is_some_and(|d| allowed.contains(&d)))
            .count(),
        median_move_to_first_answer_ms: median(&to_first),
        max_move_to_first_answer_ms: to_first.iter().copied().fold(f64::NAN, f64::max),
        move_to_first_answer_ms: to_first,
        reload_call_ms: tag_moves.reload_ms,
        p50_ms_during: percentile(&lat, 50.0),
        p99_ms_during: percentile(&lat, 99.0),
    }
}

/// Search alone (and one query's embedding alone), in this process.
fn in_process(v1: &BundleInfo, queries: &[String], work: &Path) -> Result<InProcessOut> {
    let runtime = runtime()?;
    let embedder = std::sync::Arc::new(Embedder::load(&runtime, &EmbedderOptions::default())?);
    let bundle = MappedBundle::open_file(
        &v1.path,
        &work.join("in-process-cache"),
        embedder.identity(),
    )?;
    let engine = Engine::new(embedder.clone());
    let n = queries.len().min(300);
    let vectors = embedder.embed_queries(&queries[..n])?;
    let (by_expansion, search_us) = vector_search(&bundle, &vectors)?;
    let (lexical_us, hybrid_us) = ranking(&engine, &bundle, queries, &vectors)?;
    let (embed_ms, tokens) = embedding(&embedder, queries)?;
    Ok(InProcessOut {
        queries: n,
        search_p50_us: percentile(&search_us, 50.0),
        search_p99_us: percentile(&search_us, 99.0),
        by_expansion,
        embed_one_query_p50_ms: percentile(&embed_ms, 50.0),
        query_tokens_median: median(&tokens),
        lexical_p50_us: percentile(&lexical_us, 50.0),
        lexical_p99_us: percentile(&lexical_us, 99.0),
        hybrid_rank_p50_us: percentile(&hybrid_us, 50.0),
        hybrid_rank_p99_us: percentile(&hybrid_us, 99.0),
    })
}

/// The vector index alone: recall@10 against brute force and time by
/// search breadth, and the times (us) at the server's default breadth,
/// which the bundle is left at.
fn vector_search(bundle: &MappedBundle, vectors: &[Vec<f32>]) -> Result<(Vec<EfOut>, Vec<f64>)> {
    let n = vectors.len();
    let exact: Vec<Vec<u64>> = vectors
        .iter()
        .map(|v| Ok(bundle.exact_search(v, 10)?.iter().map(|h| h.key).collect()))
        .collect::<Result<_>>()?;
    let mut by_expansion = Vec::new();
    let mut search_us = Vec::new();
    for ef in [64, 128, 256] {
        bundle.set_expansion_search(ef);
        let mut times = Vec::with_capacity(n);
        let mut found = 0usize;
        for (v, truth) in vectors.iter().zip(&exact) {
            let t = Instant::now();
            let hits = bundle.search(v, 10)?;
            times.push(t.elapsed().as_secs_f64() * 1e6);
            found += hits.iter().filter(|h| truth.contains(&h.key)).count();
        }
        by_expansion.push(EfOut {
            expansion_search: ef,
            recall_at_10: found as f64 / (10 * n) as f64,
            search_p50_us: percentile(&times, 50.0),
            search_p99_us: percentile(&times, 99.0),
        });
        if ef == DEFAULT_EXPANSION_SEARCH {
            search_us = times;
        }
    }
    bundle.set_expansion_search(DEFAULT_EXPANSION_SEARCH);
    Ok((by_expansion, search_us))
}

/// BM25 alone, and the engine's whole ranking of a 10-chunk answer
/// without the embedding (the vectors are given): times in us.
fn ranking(
    engine: &Engine,
    bundle: &MappedBundle,
    queries: &[String],
    vectors: &[Vec<f32>],
) -> Result<(Vec<f64>, Vec<f64>)> {
    let n = vectors.len();
    let mut lexical_us = Vec::with_capacity(n);
    let mut hybrid_us = Vec::with_capacity(n);
    for (q, v) in queries.iter().zip(vectors) {
        if let Some(ix) = bundle.lexical() {
            let (ix, analyzer) = ix?;
            let t = Instant::now();
            std::hint::black_box(shelf_search::lexical::search(
                &ix,
                shelf_search::lexical::Query::Text(analyzer, q),
                shelf_search::rank::CANDIDATES,
                |_| true,
                None,
            ));
            lexical_us.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let request = Request::new(
            RawRequest {
                query: q.clone(),
                k: Some(10),
                ..RawRequest::default()
            },
            &RequestLimits::default(),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let t = Instant::now();
        std::hint::black_box(engine.rank(bundle, &request, std::slice::from_ref(v))?);
        hybrid_us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok((lexical_us, hybrid_us))
}

/// One query's embedding alone, over the first 50 queries: times in ms,
/// and the queries' token counts.
fn embedding(embedder: &Embedder, queries: &[String]) -> Result<(Vec<f64>, Vec<f64>)> {
    let mut embed_ms = Vec::new();
    for q in queries.iter().take(50) {
        let t = Instant::now();
        std::hint::black_box(embedder.embed_query(q)?);
        embed_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let tokens: Vec<f64> = queries
        .iter()
        .take(50)
        .filter_map(|q| embedder.count_tokens(q).ok())
        .map(|t| t as f64)
        .collect();
    Ok((embed_ms, tokens))
}

/// The table, in sections: starts, load levels, in process, tag moves, RSS;
/// the latency targets are at 8 clients.
fn rows(m: &Measured, v1: &BundleInfo) -> Vec<Row> {
    let mut t = Table::default();
    let ms = |v: f64| format!("{v:.0} ms");
    let us = |a: f64, b: f64| format!("{a:.0} us / {b:.0} us");
    let (warm, download) = (&m.start_warm_cache, &m.start_with_download);
    let start_target = format!("< {MAX_WARM_START_MS:.0} ms");
    t.info(
        "bundle",
        format!("{} chunks, {:.1} MiB", v1.chunks, m.rss.bundle_bytes_mib),
    );
    let ready = warm.median_ms;
    t.check(
        "start to ready, warm cache (median)",
        ms(ready),
        &start_target,
        ready < MAX_WARM_START_MS,
    );
    t.info("  of which model load", ms(warm.median_model_load_ms));
    let rest = warm.median_without_model_ms;
    let what = "  of which everything else (bundle open, mmap, warm)";
    t.check(what, ms(rest), start_target, rest < MAX_WARM_START_MS);
    t.info(
        "start to ready, download from local store",
        ms(download.median_ms),
    );
    for l in &m.levels {
        let c = l.clients;
        t.info(
            format!("{c} clients: throughput"),
            format!("{:.0} q/s ({} failed)", l.throughput_qps, l.failed),
        );
        let (p50, p99) = (format!("{:.1} ms", l.p50_ms), format!("{:.1} ms", l.p99_ms));
        if c == 8 {
            t.check(
                format!("{c} clients: p50"),
                p50,
                format!("<= {MAX_P50_AT_8_MS:.0} ms"),
                l.p50_ms <= MAX_P50_AT_8_MS,
            );
            t.check(
                format!("{c} clients: p99"),
                p99,
                format!("<= {MAX_P99_AT_8_MS:.0} ms"),
                l.p99_ms <= MAX_P99_AT_8_MS,
            );
        } else {
            t.info(format!("{c} clients: p50 / p99"), format!("{p50} / {p99}"));
        }
        let (embed, search) = (l.server_embed_p50_ms, l.server_search_p50_ms);
        t.info(
            format!("{c} clients: server embed p50 / search p50"),
            format!("{embed:.1} ms / {search:.2} ms"),
        );
        t.info(
            format!("{c} clients: generator share of CPU"),
            format!("{:.0}%", l.generator_cpu_share * 100.0),
        );
    }
    let ip = &m.in_process;
    let (p50, p99) = (ip.search_p50_us, ip.search_p99_us);
    let what = "search alone, in process (p50 / p99)";
    t.check(
        what,
        us(p50, p99),
        format!("< {MAX_SEARCH_MS:.0} ms"),
        p99 < MAX_SEARCH_MS * 1000.0,
    );
    for e in &ip.by_expansion {
        let what = format!(
            "  search breadth ef={}: recall@10 / p50",
            e.expansion_search
        );
        t.info(
            what,
            format!("{:.3} / {:.0} us", e.recall_at_10, e.search_p50_us),
        );
    }
    t.info(
        "lexical (BM25) alone, in process (p50 / p99)",
        us(ip.lexical_p50_us, ip.lexical_p99_us),
    );
    t.info(
        "hybrid ranking without the embedding (p50 / p99)",
        us(ip.hybrid_rank_p50_us, ip.hybrid_rank_p99_us),
    );
    let (embed, tokens) = (ip.embed_one_query_p50_ms, ip.query_tokens_median);
    t.info(
        "embed one query alone, in process (p50)",
        format!("{embed:.1} ms ({tokens:.0} tokens median)"),
    );
    let sw = &m.swap;
    let what = format!("swap under load: failed of {} requests", sw.requests);
    t.check(what, sw.failed.to_string(), "0", sw.failed == 0);
    let foreign = sw.foreign_digests;
    t.check(
        "swap under load: answers from neither bundle",
        foreign.to_string(),
        "0",
        foreign == 0,
    );
    let (first, most) = (
        sw.median_move_to_first_answer_ms,
        sw.max_move_to_first_answer_ms,
    );
    t.info(
        "tag move -> first answer from new bundle (median / max)",
        format!("{} / {}", ms(first), ms(most)),
    );
    let reload = median(sw.reload_call_ms.get(1..).unwrap_or(&[]));
    t.info(
        "tag move -> swapped (reload call, median, first move excluded)",
        ms(reload),
    );
    let (one, two) = (m.rss.one_bundle_mib, m.rss.peak_two_bundles_mib);
    t.info(
        "RSS, one bundle live / peak with two",
        format!("{one:.0} MiB / {two:.0} MiB"),
    );
    t.rows
}
