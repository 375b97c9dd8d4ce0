//! `shelf-bench serve`: the query server under load, on loopback, with the
//! real binary, a real ~10,000-chunk bundle and a local directory store.
//! Measures start to ready (warm cache and with a download), latency and
//! throughput at 1, 8 and 32 clients with the server's embed/search split,
//! search alone in process, 20 tag moves under 32 clients, and RSS with one
//! and two bundles live. The generator's share of the CPU is reported: it
//! runs on the same two cores as the server.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_search::mapped::DEFAULT_EXPANSION_SEARCH;
use shelf_search::{Engine, MappedBundle, RawRequest, Request, RequestLimits};
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;

use crate::build_bench::{touch_files, warn_if_busy, write_corpus};
use crate::corpus::Corpus;
use crate::load::{self, Sample, percentile, process_rss_kib};
use crate::machine::Machine;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::shelf_cli::{ShelfBinary, workspace_root};
use crate::stats::median;
use crate::table::{self, Row};

// Targets, in one place so the table and docs/benchmarks.md agree.
const MAX_WARM_START_MS: f64 = 100.0;
const MAX_P50_AT_8_MS: f64 = 10.0;
const MAX_P99_AT_8_MS: f64 = 30.0;
const MAX_SEARCH_MS: f64 = 1.0;
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Clients kept busy while the tag moves.
const SWAP_CLIENTS: usize = 32;
const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files in the generated repository (2,800 give about 10,000 chunks).
    pub files: usize,
    /// Corpus seed.
    pub seed: u64,
    /// Requests per concurrency level.
    pub requests: usize,
    /// Time bound per concurrency level.
    pub max_seconds: u64,
    /// Tag moves under load.
    pub swaps: usize,
    /// Repetitions of each start-to-ready measurement.
    pub starts: usize,
    /// Where built bundles are kept between runs.
    pub bundle_cache: PathBuf,
    /// JSON results path.
    pub json_out: PathBuf,
    /// The command line.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct BundleInfo {
    digest: String,
    path: PathBuf,
    bytes: u64,
    chunks: u64,
}

/// One load level's figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct LevelOut {
    pub(crate) clients: usize,
    pub(crate) requests: usize,
    pub(crate) failed: usize,
    pub(crate) seconds: f64,
    pub(crate) throughput_qps: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) max_ms: f64,
    pub(crate) server_embed_p50_ms: f64,
    pub(crate) server_embed_p99_ms: f64,
    pub(crate) server_search_p50_ms: f64,
    pub(crate) server_search_p99_ms: f64,
    pub(crate) server_cpu_s: f64,
    pub(crate) generator_cpu_s: f64,
    pub(crate) generator_cpu_share: f64,
}

/// Repeated starts' figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StartOut {
    pub(crate) runs_ms: Vec<f64>,
    pub(crate) median_ms: f64,
    pub(crate) model_load_ms: Vec<f64>,
    pub(crate) median_model_load_ms: f64,
    /// Start to ready minus the model load: everything the bundle costs.
    pub(crate) median_without_model_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
struct EfOut {
    expansion_search: usize,
    recall_at_10: f64,
    search_p50_us: f64,
    search_p99_us: f64,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
struct RssOut {
    one_bundle_mib: f64,
    peak_two_bundles_mib: f64,
    bundle_bytes_mib: f64,
}

/// Everything measured, as the table is made of it.
#[derive(Debug, Serialize)]
struct Measured {
    start_warm_cache: StartOut,
    start_with_download: StartOut,
    levels: Vec<LevelOut>,
    in_process: InProcessOut,
    swap: SwapOut,
    rss: RssOut,
}

#[derive(Debug, Serialize)]
struct Results {
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

/// Runs the benchmark, prints the table and writes the JSON.
pub fn run(opts: &Options) -> Result<()> {
    if opts.files == 0 || opts.requests == 0 || opts.starts == 0 {
        bail!("--files, --requests and --starts must be at least 1");
    }
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-serve-")
        .tempdir()
        .context("creating a temporary directory")?;
    let shelf = ShelfBinary::prepare(work.path())?;
    let machine = Machine::current();
    p.say(&format!("{} cores, {}", machine.nproc, machine.cpu_model));
    warn_if_busy(&p, &machine);

    let corpus = Corpus::generate(opts.files, opts.seed);
    let pool = QueryPool::new(&corpus, opts)?;
    let (v1, v2) = bundles(&shelf, opts, &p)?;
    p.say(&format!(
        "bundles: v1 {} ({} chunks, {:.1} MiB), v2 {}",
        v1.digest,
        v1.chunks,
        v1.bytes as f64 / 1048576.0,
        v2.digest
    ));
    let bench = Bench::publish(opts, &p, &shelf, work.path(), [&v1, &v2])?;

    let (start_warm_cache, start_with_download) = bench.start_to_ready()?;
    let loaded = bench.under_load(&pool, [&v1, &v2])?;
    // Stage 4: search alone, in process, with real query vectors.
    p.say("in-process: search alone and embedding alone");
    let in_process = in_process(&v1, &pool.shared, work.path())?;

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
    let results = Results {
        command: opts.command.clone(),
        machine,
        files: opts.files,
        seed: opts.seed,
        bundles: vec![v1, v2],
        measured,
        rows,
    };
    if let Some(dir) = opts.json_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json_out, serde_json::to_vec_pretty(&results)?)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
}

/// Queries to warm a server up with.
const WARMUP: usize = 40;
/// The shared queries' count (see [`QueryPool::shared`]).
const SHARED: usize = 1000;

/// The benchmark's distinct queries. The server caches query vectors: the
/// warm-up and every level get their own, so no level is answered from
/// the cache.
struct QueryPool {
    pool: Vec<String>,
    requests: usize,
    /// The first [`SHARED`] queries (the warm-up's among them), for the
    /// tag moves and the in-process measurements.
    shared: Arc<Vec<String>>,
}

impl QueryPool {
    fn new(corpus: &Corpus, opts: &Options) -> Result<Self> {
        let needed = WARMUP + CONCURRENCY.len() * opts.requests;
        let pool = queries_from(corpus, opts.seed, needed.max(SHARED));
        if pool.len() < needed {
            bail!(
                "the corpus gives {} distinct queries, {needed} are needed: lower --requests or raise --files",
                pool.len()
            );
        }
        let shared = Arc::new(pool[..pool.len().min(SHARED)].to_vec());
        Ok(Self {
            pool,
            requests: opts.requests,
            shared,
        })
    }

    fn warmup(&self) -> Arc<Vec<String>> {
        Arc::new(self.pool[..WARMUP].to_vec())
    }

    /// The queries of load level `i` (an index into [`CONCURRENCY`]).
    fn level(&self, i: usize) -> Arc<Vec<String>> {
        let at = WARMUP + i * self.requests;
        Arc::new(self.pool[at..at + self.requests].to_vec())
    }
}

/// What the stages after the bundles share: the options, the progress
/// log, the binary, the scratch directory and the store both bundles are
/// in, with `production` on v1.
struct Bench<'a> {
    opts: &'a Options,
    p: &'a Progress,
    shelf: &'a ShelfBinary,
    work: &'a Path,
    store: String,
}

/// One server under load: the levels, then the tag moves, with its RSS
/// after each.
struct UnderLoad {
    levels: Vec<LevelOut>,
    swap: SwapOut,
    one_bundle_rss_kib: u64,
    peak_rss_kib: u64,
}

impl<'a> Bench<'a> {
    /// Pushes both bundles to a local store and tags v1 `production`.
    fn publish(
        opts: &'a Options,
        p: &'a Progress,
        shelf: &'a ShelfBinary,
        work: &'a Path,
        [v1, v2]: [&BundleInfo; 2],
    ) -> Result<Self> {
        let store = work.join("store").display().to_string();
        for b in [v1, v2] {
            shelf.run(&["push", &b.path.display().to_string(), "--store", &store])?;
        }
        shelf.run(&["tag", "production", &v1.digest, "--store", &store])?;
        Ok(Self {
            opts,
            p,
            shelf,
            work,
            store,
        })
    }

    /// `shelf serve` arguments: follow `production` in the store, with the
    /// bundle cache in `cache`.
    fn serve_args(&self, cache: &Path) -> Vec<String> {
        vec![
            "--store".into(),
            self.store.clone(),
            "--follow".into(),
            "production".into(),
            "--cache".into(),
            cache.display().to_string(),
            "--poll-interval".into(),
            "1h".into(),
        ]
    }

    fn warm_cache(&self) -> PathBuf {
        self.work.join("cache")
    }

    /// Stage 1, start to ready: with a download into an empty cache, then
    /// warm. Returns (warm cache, with download).
    fn start_to_ready(&self) -> Result<(StartOut, StartOut)> {
        let (shelf, work) = (self.shelf, self.work);
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
        let start_with_download = start_out(&download);
        let start_warm_cache = start_out(&warm);
        self.p.say(&format!(
            "start to ready: warm {:.0} ms (model {:.0} ms), with download {:.0} ms",
            start_warm_cache.median_ms,
            start_warm_cache.median_model_load_ms,
            start_with_download.median_ms
        ));
        Ok((start_warm_cache, start_with_download))
    }

    /// Stages 2 and 3: one server on the warm cache, warmed up, then the
    /// load levels, then tag moves under load.
    fn under_load(&self, pool: &QueryPool, bundles: [&BundleInfo; 2]) -> Result<UnderLoad> {
        let args = self.serve_args(&self.warm_cache());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = ServerProcess::start(
            self.shelf.path(),
            &args,
            &[
                ("SHELF_ADMIN_TOKEN", ADMIN_TOKEN),
                ("SHELF_LOG", "warn,shelf_server=info"),
            ],
        );
        server.wait_ready(Duration::from_secs(120));
        let pid = server.pid();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let warmup = load::Limits {
            requests: WARMUP,
            max_time: Duration::from_secs(60),
        };
        let never = Arc::new(AtomicBool::new(false));
        rt.block_on(load::run(server.addr, 2, pool.warmup(), "", warmup, never));
        let levels = self.load_levels(&rt, &server, pool);
        let (one_bundle_rss_kib, _) = process_rss_kib(pid).unwrap_or((0, 0));

        self.p.say(&format!(
            "{} tag moves under {SWAP_CLIENTS} clients",
            self.opts.swaps
        ));
        let swap = self.swap_under_load(&rt, &server, bundles, &pool.shared)?;
        let (_, peak_rss_kib) = process_rss_kib(pid).unwrap_or((0, 0));
        self.p.say(&format!(
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
        pool: &QueryPool,
    ) -> Vec<LevelOut> {
        let mut levels = Vec::new();
        for (li, clients) in CONCURRENCY.into_iter().enumerate() {
            self.p.say(&format!(
                "{clients} clients: up to {} requests or {} s",
                self.opts.requests, self.opts.max_seconds
            ));
            let limits = load::Limits {
                requests: self.opts.requests,
                max_time: Duration::from_secs(self.opts.max_seconds),
            };
            let timed = load::run_timed(rt, server, clients, pool.level(li), "", limits);
            let level = level_out(clients, &timed);
            self.p.say(&format!(
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
}

/// Query texts: the words of random lines of the corpus, 4 to 10 of them,
/// as people and assistants ask; distinct (callers give each measurement
/// its own, so the server's query cache answers none of them).
pub(crate) fn queries_from(corpus: &Corpus, seed: u64, n: usize) -> Vec<String> {
    let mut rng = Rng::new(seed ^ 0x5e_4e);
    let mut out = std::collections::BTreeSet::new();
    let mut attempts = 0;
    while out.len() < n && attempts < n * 50 {
        attempts += 1;
        let file = rng.pick_ref(&corpus.files);
        let lines: Vec<&str> = file.text.lines().collect();
        let line = lines[rng
            .below(lines.len().max(1))
            .min(lines.len().saturating_sub(1))];
        let words: Vec<&str> = line
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() > 1)
            .collect();
        if words.len() < 4 {
            continue;
        }
        let take = rng.range(4, 11).min(words.len());
        out.insert(words[..take].join(" ").to_lowercase());
    }
    let mut v: Vec<String> = out.into_iter().collect();
    // A fixed shuffle, so clients do not walk the queries in sorted order.
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

/// v1 (the corpus) and v2 (5% of files changed, built incrementally),
/// built once and kept under `--bundle-cache` for later runs.
fn bundles(shelf: &ShelfBinary, opts: &Options, p: &Progress) -> Result<(BundleInfo, BundleInfo)> {
    let dir = opts
        .bundle_cache
        .join(format!("serve-f{}-s{}", opts.files, opts.seed));
    let record = dir.join("bundles.json");
    let cached = std::fs::read(&record)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<(BundleInfoIn, BundleInfoIn)>(&bytes).ok())
        .filter(|(a, b)| a.path.is_file() && b.path.is_file());
    // Bundles of an older format are rebuilt from themselves: every vector
    // is reused, only what the format added is computed.
    let mut previous = None;
    if let Some((a, b)) = cached {
        if current_format(&a.path) && current_format(&b.path) {
            p.say(&format!("reusing the bundles in {}", dir.display()));
            return Ok((a.into(), b.into()));
        }
        previous = Some(a.path);
    }
    std::fs::create_dir_all(&dir)?;
    let mut corpus = Corpus::generate(opts.files, opts.seed);
    let repo = write_corpus(&corpus);
    repo.commit("serve benchmark corpus");
    p.say(&format!(
        "building v1 of {} files (embedding ~10,000 chunks: several minutes on 2 cores)",
        opts.files
    ));
    let v1 = shelf.build(repo.path(), &dir.join("v1"), previous.as_deref())?;
    let mut rng = Rng::new(opts.seed ^ 0x7a9);
    let count = corpus.files.len() / 20;
    touch_files(&repo, &mut corpus, count, &mut rng);
    repo.commit("touch 5% of files");
    p.say("building v2 incrementally (5% of files changed)");
    let v2 = shelf.build(repo.path(), &dir.join("v2"), Some(&v1.report.bundle_path))?;
    let info = |r: &crate::shelf_cli::BuildRun| BundleInfo {
        digest: r.report.digest.clone(),
        path: r.report.bundle_path.clone(),
        bytes: r.report.bundle_bytes,
        chunks: r.report.chunks.total,
    };
    let (a, b) = (info(&v1), info(&v2));
    std::fs::write(&record, serde_json::to_vec_pretty(&(&a, &b))?)?;
    Ok((a, b))
}

/// Whether a bundle has everything this shelf writes (the lexical index).
fn current_format(bundle: &Path) -> bool {
    shelf_formats::bundle::verify_file(bundle, None, &Default::default()).is_ok_and(|v| {
        v.manifest
            .member(shelf_formats::manifest::members::LEXICAL)
            .is_some()
    })
}

#[derive(serde::Deserialize)]
struct BundleInfoIn {
    digest: String,
    path: PathBuf,
    bytes: u64,
    chunks: u64,
}

impl From<BundleInfoIn> for BundleInfo {
    fn from(b: BundleInfoIn) -> Self {
        Self {
            digest: b.digest,
            path: b.path,
            bytes: b.bytes,
            chunks: b.chunks,
        }
    }
}

/// One start: spawn, poll `/readyz` every millisecond, stop. Returns
/// (start to ready, model load) in ms.
pub(crate) fn start_once(shelf: &ShelfBinary, args: &[String]) -> Result<(f64, f64)> {
    let started = start_ready(shelf, args, &[], |_| true)?;
    let _ = started.server.terminate(Duration::from_secs(20));
    Ok((started.ready_ms, started.model_ms))
}

/// A server that has become ready, and how long that took.
pub(crate) struct Started {
    /// The running server.
    pub server: ServerProcess,
    /// Spawn to the first `/readyz` answer that was 200 and `ready`.
    pub ready_ms: f64,
    /// The model load the server logged; NaN if it did not.
    pub model_ms: f64,
}

/// Spawns `shelf serve <args>` with `env` and polls `/readyz` every
/// millisecond until it answers 200 with a body `ready` accepts.
pub(crate) fn start_ready(
    shelf: &ShelfBinary,
    args: &[String],
    env: &[(&str, &str)],
    ready: impl Fn(&serde_json::Value) -> bool,
) -> Result<Started> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    // The model load is read from the `info` log, the level tests start at.
    let server = ServerProcess::start(shelf.path(), &args, env);
    let deadline = started + Duration::from_secs(300);
    let mut last = None;
    loop {
        if let Some(r) = http::try_request(server.addr, "GET", "/readyz", &[], b"") {
            if r.status == 200 && ready(&serde_json::from_slice(&r.body).unwrap_or_default()) {
                break;
            }
            last = Some(String::from_utf8_lossy(&r.body).into_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "the server was not ready in 300 s; last /readyz: {}\n{}",
                last.unwrap_or_default(),
                server.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let ready_ms = started.elapsed().as_secs_f64() * 1e3;
    let model_ms = server
        .logs()
        .lines()
        .find(|l| l.contains("embedding model loaded"))
        .and_then(|l| l.split("elapsed_ms=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(f64::NAN);
    Ok(Started {
        server,
        ready_ms,
        model_ms,
    })
}

/// The starts' medians, from (start to ready, model load) pairs in ms.
pub(crate) fn start_out(runs: &[(f64, f64)]) -> StartOut {
    let ready: Vec<f64> = runs.iter().map(|r| r.0).collect();
    let model: Vec<f64> = runs.iter().map(|r| r.1).collect();
    let without: Vec<f64> = runs.iter().map(|r| r.0 - r.1).collect();
    StartOut {
        median_ms: median(&ready),
        median_model_load_ms: median(&model),
        median_without_model_ms: median(&without),
        runs_ms: ready,
        model_load_ms: model,
    }
}

/// A load run's latency, throughput and CPU figures.
pub(crate) fn level_out(clients: usize, timed: &load::Timed) -> LevelOut {
    let samples = &timed.samples;
    let (server_cpu, self_cpu) = (timed.server_cpu_s, timed.generator_cpu_s);
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.status == 200).collect();
    let lat: Vec<f64> = ok.iter().map(|s| s.latency.as_secs_f64() * 1e3).collect();
    let embed: Vec<f64> = ok.iter().map(|s| s.embed_ms).collect();
    let search: Vec<f64> = ok.iter().map(|s| s.search_ms).collect();
    LevelOut {
        clients,
        requests: samples.len(),
        failed: samples.len() - ok.len(),
        seconds: timed.seconds,
        throughput_qps: ok.len() as f64 / timed.seconds,
        p50_ms: percentile(&lat, 50.0),
        p90_ms: percentile(&lat, 90.0),
        p99_ms: percentile(&lat, 99.0),
        max_ms: percentile(&lat, 100.0),
        server_embed_p50_ms: percentile(&embed, 50.0),
        server_embed_p99_ms: percentile(&embed, 99.0),
        server_search_p50_ms: percentile(&search, 50.0),
        server_search_p99_ms: percentile(&search, 99.0),
        server_cpu_s: server_cpu,
        generator_cpu_s: self_cpu,
        generator_cpu_share: self_cpu / (self_cpu + server_cpu),
    }
}

/// When each tag move was made and the digest it moved to, and how long
/// each reload call took.
struct TagMoves {
    marks: Vec<(Instant, String)>,
    reload_ms: Vec<f64>,
}

impl Bench<'_> {
    /// Stage 3: `--swaps` tag moves, alternating v2 and v1, each followed
    /// by the publish step's reload call, under [`SWAP_CLIENTS`] clients.
    fn swap_under_load(
        &self,
        rt: &tokio::runtime::Runtime,
        server: &ServerProcess,
        bundles: [&BundleInfo; 2],
        queries: &Arc<Vec<String>>,
    ) -> Result<SwapOut> {
        let stop = Arc::new(AtomicBool::new(false));
        let load = rt.spawn(load::run(
            server.addr,
            SWAP_CLIENTS,
            Arc::clone(queries),
            "",
            load::Limits {
                requests: usize::MAX,
                max_time: Duration::from_secs(3600),
            },
            Arc::clone(&stop),
        ));
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
            self.shelf
                .run(&["tag", "production", &to.digest, "--store", &self.store])?;
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
    let runtime = Runtime::locate(Some(&workspace_root().join(".runtime")))?;
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
                analyzer,
                q,
                shelf_search::rank::CANDIDATES,
                |_| true,
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

/// The table, in sections: starts, load levels, in process, tag moves, RSS.
fn rows(m: &Measured, v1: &BundleInfo) -> Vec<Row> {
    let mut rows = start_rows(m, v1);
    for l in &m.levels {
        rows.extend(level_rows(l));
    }
    rows.extend(in_process_rows(&m.in_process));
    rows.extend(swap_rows(&m.swap));
    rows.push(Row::info(
        "RSS, one bundle live / peak with two",
        format!(
            "{:.0} MiB / {:.0} MiB",
            m.rss.one_bundle_mib, m.rss.peak_two_bundles_mib
        ),
    ));
    rows
}

fn start_rows(m: &Measured, v1: &BundleInfo) -> Vec<Row> {
    let (warm, download) = (&m.start_warm_cache, &m.start_with_download);
    vec![
        Row::info(
            "bundle",
            format!("{} chunks, {:.1} MiB", v1.chunks, m.rss.bundle_bytes_mib),
        ),
        Row::check(
            "start to ready, warm cache (median)",
            format!("{:.0} ms", warm.median_ms),
            format!("< {MAX_WARM_START_MS:.0} ms"),
            warm.median_ms < MAX_WARM_START_MS,
        ),
        Row::info(
            "  of which model load",
            format!("{:.0} ms", warm.median_model_load_ms),
        ),
        Row::check(
            "  of which everything else (bundle open, mmap, warm)",
            format!("{:.0} ms", warm.median_without_model_ms),
            format!("< {MAX_WARM_START_MS:.0} ms"),
            warm.median_without_model_ms < MAX_WARM_START_MS,
        ),
        Row::info(
            "start to ready, download from local store",
            format!("{:.0} ms", download.median_ms),
        ),
    ]
}

/// One level's rows; the targets are at 8 clients.
fn level_rows(l: &LevelOut) -> Vec<Row> {
    let c = l.clients;
    let mut rows = vec![Row::info(
        format!("{c} clients: throughput"),
        format!("{:.0} q/s ({} failed)", l.throughput_qps, l.failed),
    )];
    let (p50, p99) = (format!("{:.1} ms", l.p50_ms), format!("{:.1} ms", l.p99_ms));
    if c == 8 {
        rows.push(Row::check(
            format!("{c} clients: p50"),
            p50,
            format!("<= {MAX_P50_AT_8_MS:.0} ms"),
            l.p50_ms <= MAX_P50_AT_8_MS,
        ));
        rows.push(Row::check(
            format!("{c} clients: p99"),
            p99,
            format!("<= {MAX_P99_AT_8_MS:.0} ms"),
            l.p99_ms <= MAX_P99_AT_8_MS,
        ));
    } else {
        rows.push(Row::info(
            format!("{c} clients: p50 / p99"),
            format!("{p50} / {p99}"),
        ));
    }
    rows.push(Row::info(
        format!("{c} clients: server embed p50 / search p50"),
        format!(
            "{:.1} ms / {:.2} ms",
            l.server_embed_p50_ms, l.server_search_p50_ms
        ),
    ));
    rows.push(Row::info(
        format!("{c} clients: generator share of CPU"),
        format!("{:.0}%", l.generator_cpu_share * 100.0),
    ));
    rows
}

fn in_process_rows(in_process: &InProcessOut) -> Vec<Row> {
    let mut rows = vec![Row::check(
        "search alone, in process (p50 / p99)",
        format!(
            "{:.0} us / {:.0} us",
            in_process.search_p50_us, in_process.search_p99_us
        ),
        format!("< {MAX_SEARCH_MS:.0} ms"),
        in_process.search_p99_us < MAX_SEARCH_MS * 1000.0,
    )];
    for e in &in_process.by_expansion {
        rows.push(Row::info(
            format!(
                "  search breadth ef={}: recall@10 / p50",
                e.expansion_search
            ),
            format!("{:.3} / {:.0} us", e.recall_at_10, e.search_p50_us),
        ));
    }
    rows.extend([
        Row::info(
            "lexical (BM25) alone, in process (p50 / p99)",
            format!(
                "{:.0} us / {:.0} us",
                in_process.lexical_p50_us, in_process.lexical_p99_us
            ),
        ),
        Row::info(
            "hybrid ranking without the embedding (p50 / p99)",
            format!(
                "{:.0} us / {:.0} us",
                in_process.hybrid_rank_p50_us, in_process.hybrid_rank_p99_us
            ),
        ),
        Row::info(
            "embed one query alone, in process (p50)",
            format!(
                "{:.1} ms ({:.0} tokens median)",
                in_process.embed_one_query_p50_ms, in_process.query_tokens_median
            ),
        ),
    ]);
    rows
}

fn swap_rows(swap: &SwapOut) -> Vec<Row> {
    vec![
        Row::check(
            format!("swap under load: failed of {} requests", swap.requests),
            swap.failed.to_string(),
            "0",
            swap.failed == 0,
        ),
        Row::check(
            "swap under load: answers from neither bundle",
            swap.foreign_digests.to_string(),
            "0",
            swap.foreign_digests == 0,
        ),
        Row::info(
            "tag move -> first answer from new bundle (median / max)",
            format!(
                "{:.0} ms / {:.0} ms",
                swap.median_move_to_first_answer_ms, swap.max_move_to_first_answer_ms
            ),
        ),
        Row::info(
            "tag move -> swapped (reload call, median, first move excluded)",
            format!(
                "{:.0} ms",
                median(swap.reload_call_ms.get(1..).unwrap_or(&[]))
            ),
        ),
    ]
}
