//! `shelf-bench commit`: see [`Commit`].

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_builder::{BuildError, BuildRequest, VectorCache};
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_testkit::http;

use crate::fixtures::corpus::Corpus;
use crate::fixtures::dirs::{copy_dir, dir_bytes};
use crate::fixtures::load::{self, Call, LevelOut};
use crate::fixtures::process::process_rss_split_kib;
use crate::fixtures::queries::QueryPool;
use crate::fixtures::rng::Rng;
use crate::fixtures::server::{StartOut, follow_args, start_once, start_ready, strings};
use crate::fixtures::shelf::{BuildRun, REPOSITORY_NAME, ShelfBinary};
use crate::harness::stats::{median, median_by};
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Row, runtime, table};

/// A one-file commit at 10,000 files must build in under this (wall).
const MAX_COMMIT_MS_10K: f64 = 5_000.0;
/// ... and at 100,000 files in under this.
const MAX_COMMIT_MS_100K: f64 = 30_000.0;
/// This build's bundle against the baseline's, at most.
const MAX_BUNDLE_RATIO: f64 = 0.60;
/// Query latency against the baseline's, at most.
const MAX_LATENCY_RATIO: f64 = 1.5;
const CLIENTS: [usize; 2] = [1, 8];

/// What a one-file commit costs on a generated repository of 10,000 (or
/// 100,000) files, and what serving its bundle costs.
///
/// With this build of `shelf` and (optionally) another one beside it
/// (`--baseline`, today's binary) on the same repository, store and queries,
/// one after another. Embedding such a repository once would take hours
/// here, so the store's embedding cache is filled first with **stand-in
/// vectors** (unit vectors of the model's dimension drawn from each chunk's
/// content id), under the real model's identity: every build then takes
/// them from the cache, and the commits' few new chunks are embedded by the
/// real model. What is timed is everything after embedding, which is what
/// the vector layer changes. Search answers on stand-in vectors are
/// meaningless as rankings but cost what real ones do. For each binary and
/// repository size:
/// 1. the cold assemble: `shelf build --store` of the first commit with
///    every vector in the cache (wall time, peak RSS, bundle bytes);
/// 2. `--runs` one-file commits, each built twice: with `--previous` (the
///    parent's bundle) and with `--store` alone (a warm cache; this build
///    also finds the parent's bundle in the store by its commit record);
///    the two must give one digest; a build's stages are reported;
/// 3. the last commit built cold (a store holding only the cache): its
///    digest must be the incremental builds';
/// 4. the last bundle served from a local store: start to ready on a warm
///    cache, RssAnon and RssFile after ready, and memory while it swaps to
///    the first commit's bundle (fetched, unpacked and mapped beside it);
/// 5. once every binary is built, their servers all running, latency at 1
///    and 8 clients on distinct queries, in rounds that alternate between
///    the binaries (so other work on the machine slows both alike).
///
/// Needs `cargo build --bin shelf` and `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Commit {
    /// Repository sizes in files (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    files: Vec<usize>,
    /// Seed of the generated repositories.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// One-file commits per binary and size (medians are reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Another `shelf` binary (today's) measured beside this one.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Sizes above this are not measured with the baseline.
    #[arg(long, default_value_t = 10_000)]
    baseline_max_files: usize,
    /// Requests per client level.
    #[arg(long, default_value_t = 300)]
    requests: usize,
}

/// What `shelf-bench commit` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    bench: String,
    machine: crate::harness::Machine,
    vectors: String,
    sizes: Vec<SizeOut>,
    table: Vec<Row>,
}

/// One repository size.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeOut {
    files: usize,
    chunks: u64,
    binaries: Vec<BinaryOut>,
}

/// One binary on one repository.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryOut {
    label: String,
    binary: String,
    assemble_ms: f64,
    assemble_peak_rss_kib: u64,
    bundle_bytes: u64,
    /// Median wall of the one-file commits built with `--previous`.
    commit_previous_ms: f64,
    /// Median wall of the one-file commits built with `--store` alone.
    commit_store_ms: f64,
    /// Median of each stage (wall, ms) of the `--previous` builds.
    stages_ms: BTreeMap<String, f64>,
    /// Median of each stage (CPU, ms), when the report has them.
    stages_cpu_ms: BTreeMap<String, f64>,
    /// Every commit build's report.
    runs: Vec<CommitRun>,
    /// The cold build's digest equals every incremental build's.
    incremental_equals_cold: bool,
    start_warm: StartOut,
    rss_anon_kib: u64,
    rss_file_kib: u64,
    /// The served bundle swapped for another of the same size.
    #[serde(default)]
    swap: Option<SwapOut>,
    levels: Vec<LevelOut>,
}

/// Memory while a server swaps its bundle for another: both mapped, the
/// new one fetched and unpacked by the server, neither copied.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SwapOut {
    /// Bytes of the unpacked bundle swapped in.
    unpacked_bytes: u64,
    /// RssAnon and RssFile before the tag moved.
    anon_before_kib: u64,
    file_before_kib: u64,
    /// The largest RssAnon and RssFile sampled (every 2 ms) from the tag's
    /// move until the new bundle was live, and a second after.
    anon_peak_kib: u64,
    file_peak_kib: u64,
    /// Tag moved to the new bundle live, as `/v1/bundle` says.
    swap_ms: f64,
}

/// One one-file commit, built both ways.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitRun {
    previous_ms: f64,
    store_ms: f64,
    digest: String,
    previous_report: serde_json::Value,
    store_report: serde_json::Value,
}

impl Benchmark for Commit {
    const NAME: &'static str = "commit";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let shelf = b.shelf()?;
        let baseline = self
            .baseline
            .as_ref()
            .map(|p| ShelfBinary::prepare_from(p, b.work(), "shelf-baseline"))
            .transpose()?;
        let runtime = runtime()?;
        let embedder = Embedder::load(&runtime, &EmbedderOptions::default())?;
        let mut sizes = Vec::new();
        let mut t = Table::default();
        for &files in &self.files {
            let mut binaries = vec![("this", shelf)];
            if let Some(base) = &baseline
                && files <= self.baseline_max_files
            {
                binaries.push(("baseline", base));
            }
            let size = self.size(b, &embedder, files, &binaries)?;
            rows(&mut t, &size);
            sizes.push(size);
        }
        println!("{}", table::render(&t.rows));
        Ok(Results {
            bench: Self::NAME.into(),
            machine: b.machine.clone(),
            vectors: "stand-in unit vectors from each content id, under the real model's identity; the commits' new chunks embedded by the real model".into(),
            sizes,
            table: t.rows,
        })
    }
}

impl Commit {
    /// Every binary on a generated repository of `files` files.
    fn size(
        &self,
        b: &Bench,
        embedder: &Embedder,
        files: usize,
        binaries: &[(&str, &ShelfBinary)],
    ) -> Result<SizeOut> {
        let dir = b.work().join(format!("n{files}"));
        std::fs::create_dir_all(&dir)?;
        b.say(format!("generating {files} files"));
        let corpus = Corpus::generate(files, self.seed);
        let repo = corpus.write_repo();
        repo.commit("corpus");
        let cache_store = dir.join("cache-store");
        b.say("filling the store's embedding cache with stand-in vectors");
        let chunks = fill_cache(repo.path(), &dir, &cache_store, embedder)?;
        b.say(format!("{chunks} chunks cached"));
        let pool = QueryPool::new(&corpus, self.seed, 4 * self.requests, 2 * self.requests)?;
        let mut out = Vec::new();
        let mut servers = Vec::new();
        let first = repo.git(&["rev-parse", "HEAD"]);
        for (label, shelf) in binaries {
            // Each binary edits the same files in the same order from the
            // same first commit, on a branch of its own.
            let mut corpus = corpus.clone();
            repo.git(&["checkout", "-q", "-B", label, first.trim()]);
            let (binary, args) = self.binary(
                b,
                &dir.join(label),
                label,
                shelf,
                &mut corpus,
                &repo,
                &cache_store,
            )?;
            out.push(binary);
            servers.push((*shelf, args));
        }
        for (binary, levels) in out
            .iter_mut()
            .zip(latency(b, &servers, &pool, self.requests)?)
        {
            binary.levels = levels;
        }
        Ok(SizeOut {
            files,
            chunks,
            binaries: out,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn binary(
        &self,
        b: &Bench,
        dir: &Path,
        label: &str,
        shelf: &ShelfBinary,
        corpus: &mut Corpus,
        repo: &shelf_testkit::GitRepo,
        cache_store: &Path,
    ) -> Result<(BinaryOut, Vec<String>)> {
        std::fs::create_dir_all(dir)?;
        let store = dir.join("store");
        copy_dir(cache_store, &store)?;
        let store_arg = store.display().to_string();
        let with_store = strings(&["--store", &store_arg]);
        b.say(format!("{label}: cold assemble from the cache"));
        let assemble = shelf.build(repo.path(), &dir.join("a"), None, &with_store)?;
        if assemble.report.chunks.embedded != 0 {
            bail!(
                "{label}: the assemble build embedded {} chunks: the cache was not used",
                assemble.report.chunks.embedded
            );
        }
        shelf.push(&assemble.report.bundle_path, &store)?;
        let mut previous = assemble.report.bundle_path.clone();
        let mut rng = Rng::new(self.seed ^ 0x5eed);
        let mut runs = Vec::new();
        let mut per_stage: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        let mut per_stage_cpu: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in 0..self.runs {
            let i = rng.below(corpus.files.len());
            corpus.edit(repo, i, &mut rng, r % 2 == 0);
            repo.commit(&format!("edit {}", corpus.files[i].path));
            let (p, s) = (dir.join(format!("p{r}")), dir.join(format!("s{r}")));
            let with_previous = shelf.build(repo.path(), &p, Some(&previous), &[])?;
            let with_store_only = shelf.build(repo.path(), &s, None, &with_store)?;
            let digest = with_previous.report.digest.clone();
            if with_store_only.report.digest != digest {
                bail!(
                    "{label}: commit {r}: --previous gave {digest}, --store gave {}",
                    with_store_only.report.digest
                );
            }
            b.say(format!(
                "{label}: commit {r}: --previous {:.0} ms, --store {:.0} ms",
                with_previous.wall_ms(),
                with_store_only.wall_ms()
            ));
            for (stage, ms) in &with_previous.report.timings_ms {
                per_stage.entry(stage.clone()).or_default().push(*ms as f64);
            }
            if let Some(cpu) = with_previous.raw["cpu_ms"].as_object() {
                for (stage, ms) in cpu {
                    per_stage_cpu
                        .entry(stage.clone())
                        .or_default()
                        .push(ms.as_f64().unwrap_or(0.0));
                }
            }
            shelf.push(&with_store_only.report.bundle_path, &store)?;
            previous = with_previous.report.bundle_path.clone();
            runs.push(CommitRun {
                previous_ms: with_previous.wall_ms(),
                store_ms: with_store_only.wall_ms(),
                digest,
                previous_report: with_previous.raw.clone(),
                store_report: with_store_only.raw.clone(),
            });
        }
        let cold = cold_build(shelf, repo, dir, cache_store)?;
        let incremental_equals_cold = runs.last().is_none_or(|r| r.digest == cold.report.digest);
        if !incremental_equals_cold {
            bail!(
                "{label}: the cold build of the last commit gave {}, the incremental builds another digest",
                cold.report.digest
            );
        }
        let last = runs
            .last()
            .map_or(assemble.report.digest.clone(), |r| r.digest.clone());
        shelf.tag(&last, &store)?;
        let args = follow_args("--store", &store, &dir.join("serve-cache"), "1h");
        let (start_warm, rss) = start(shelf, &args)?;
        b.say(format!(
            "{label}: swapping the served bundle for the first commit's"
        ));
        let swap = swap(
            shelf,
            &store,
            &dir.join("swap-cache"),
            &last,
            &assemble.report.digest,
        )?;
        b.say(format!(
            "{label}: swap in {:.0} ms, RssAnon {} -> peak {} KiB",
            swap.swap_ms, swap.anon_before_kib, swap.anon_peak_kib
        ));
        let out = BinaryOut {
            label: label.into(),
            binary: shelf.source.display().to_string(),
            assemble_ms: assemble.wall_ms(),
            assemble_peak_rss_kib: assemble.peak_rss_kib,
            bundle_bytes: assemble.report.bundle_bytes,
            commit_previous_ms: median_by(&runs, |r| r.previous_ms),
            commit_store_ms: median_by(&runs, |r| r.store_ms),
            stages_ms: per_stage
                .iter()
                .map(|(k, v)| (k.clone(), median(v)))
                .collect(),
            stages_cpu_ms: per_stage_cpu
                .iter()
                .map(|(k, v)| (k.clone(), median(v)))
                .collect(),
            runs,
            incremental_equals_cold,
            start_warm,
            rss_anon_kib: rss.0,
            rss_file_kib: rss.1,
            swap: Some(swap),
            levels: Vec::new(),
        };
        Ok((out, args))
    }
}

/// The last commit built with a store that holds the cache and nothing
/// else: no previous bundle to find, every vector from the cache or the
/// model.
fn cold_build(
    shelf: &ShelfBinary,
    repo: &shelf_testkit::GitRepo,
    dir: &Path,
    cache_store: &Path,
) -> Result<BuildRun> {
    let store = dir.join("cold-store");
    copy_dir(cache_store, &store)?;
    let args = strings(&["--store", &store.display().to_string()]);
    let run = shelf.build(repo.path(), &dir.join("cold"), None, &args)?;
    if run.report.chunks.reused != 0 {
        bail!(
            "the cold build reused {} chunks from a previous bundle",
            run.report.chunks.reused
        );
    }
    Ok(run)
}

/// Warm starts and memory after ready.
fn start(shelf: &ShelfBinary, args: &[String]) -> Result<(StartOut, (u64, u64))> {
    // The first start downloads and installs; the others find it cached.
    start_once(shelf, args)?;
    let warm = (0..3)
        .map(|_| start_once(shelf, args))
        .collect::<Result<Vec<_>>>()?;
    let server = start_ready(shelf, args, &[], |_| true)?.server;
    let rss = process_rss_split_kib(server.pid()).unwrap_or((0, 0));
    let _ = server.terminate(Duration::from_secs(20));
    Ok((StartOut::of(&warm), rss))
}

/// Serves `from` (tagged in `store`), then moves the tag to `to` and
/// samples the server's memory every 2 ms until `to` is live and for a
/// second after; the tag is moved back to `from` at the end.
fn swap(shelf: &ShelfBinary, store: &Path, cache: &Path, from: &str, to: &str) -> Result<SwapOut> {
    let args = follow_args("--store", store, cache, "100ms");
    let server = start_ready(shelf, &args, &[], |_| true)?.server;
    let pid = server.pid();
    let (anon_before_kib, file_before_kib) = process_rss_split_kib(pid).unwrap_or((0, 0));
    let live = || {
        http::try_request(server.addr, "GET", "/v1/bundle", &[], b"")
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r.body).ok())
            .and_then(|v| v["live"]["digest"].as_str().map(str::to_string))
    };
    let moved = std::time::Instant::now();
    shelf.tag(to, store)?;
    let (mut anon_peak_kib, mut file_peak_kib) = (anon_before_kib, file_before_kib);
    let mut swapped: Option<f64> = None;
    while moved.elapsed() < Duration::from_secs(300) {
        if let Some((anon, file)) = process_rss_split_kib(pid) {
            anon_peak_kib = anon_peak_kib.max(anon);
            file_peak_kib = file_peak_kib.max(file);
        }
        match swapped {
            None if live().as_deref() == Some(to) => {
                swapped = Some(moved.elapsed().as_secs_f64() * 1e3);
            }
            Some(ms) if moved.elapsed().as_secs_f64() * 1e3 > ms + 1000.0 => break,
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let _ = server.terminate(Duration::from_secs(20));
    shelf.tag(from, store)?;
    let swap_ms =
        swapped.ok_or_else(|| anyhow::anyhow!("{to} was not live 300 s after the tag moved"))?;
    let unpacked_bytes = dir_bytes(&cache.join(to.trim_start_matches("sha256:"))).unwrap_or(0);
    Ok(SwapOut {
        unpacked_bytes,
        anon_before_kib,
        file_before_kib,
        anon_peak_kib,
        file_peak_kib,
        swap_ms,
    })
}

/// Rounds of each level alternate between the binaries' servers, all
/// running: load from other work on this machine then falls on both
/// alike, and a ratio between them means something.
const ROUNDS: usize = 6;

/// Latency at each client level for every server, interleaved, on
/// distinct queries (the same ones for every binary: a repeated query
/// would be answered from the query-vector cache).
fn latency(
    b: &Bench,
    servers: &[(&ShelfBinary, Vec<String>)],
    pool: &QueryPool,
    requests: usize,
) -> Result<Vec<Vec<LevelOut>>> {
    let running = servers
        .iter()
        .map(|(shelf, args)| Ok(start_ready(shelf, args, &[], |_| true)?.server))
        .collect::<Result<Vec<_>>>()?;
    let rt = load::runtime()?;
    let queries = pool.all();
    let mut out: Vec<Vec<LevelOut>> = servers.iter().map(|_| Vec::new()).collect();
    for (n, clients) in CLIENTS.into_iter().enumerate() {
        let slice = &queries[n * requests..(n + 1) * requests];
        let mut timed: Vec<Option<load::Timed>> = servers.iter().map(|_| None).collect();
        for round in slice.chunks(requests.div_ceil(ROUNDS)) {
            for (server, total) in running.iter().zip(&mut timed) {
                let t = load::run_timed(
                    &rt,
                    server,
                    clients,
                    Call::searches(round, ""),
                    load::Limits::new(round.len(), 120),
                );
                match total {
                    Some(all) => all.absorb(t),
                    None => *total = Some(t),
                }
            }
        }
        for ((levels, t), (shelf, _)) in out.iter_mut().zip(timed).zip(servers) {
            let Some(t) = t else { continue };
            let level = LevelOut::of(clients, &t);
            b.say(format!(
                "{}: {clients} clients: p50 {:.1} ms, p99 {:.1} ms",
                shelf.source.display(),
                level.p50_ms,
                level.p99_ms
            ));
            levels.push(level);
        }
    }
    for server in running {
        let _ = server.terminate(Duration::from_secs(20));
    }
    Ok(out)
}

/// The summary rows of one size: targets where the issue set them.
fn rows(t: &mut Table, size: &SizeOut) {
    let n = size.files;
    let this = &size.binaries[0];
    let limit = if n <= 10_000 {
        MAX_COMMIT_MS_10K
    } else {
        MAX_COMMIT_MS_100K
    };
    t.info(format!("{n} files: chunks"), size.chunks.to_string());
    for (i, b) in size.binaries.iter().enumerate() {
        let who = if i == 0 { "" } else { "baseline " };
        let what = format!("{n} files: {who}one-file commit, --previous / --store (median wall)");
        let value = format!("{:.0} / {:.0} ms", b.commit_previous_ms, b.commit_store_ms);
        if i == 0 {
            let commit = b.commit_previous_ms.max(b.commit_store_ms);
            t.check(what, value, format!("< {limit:.0} ms"), commit < limit);
        } else {
            t.info(what, value);
        }
        t.info(
            format!("{n} files: {who}RssAnon / RssFile after ready"),
            format!("{} / {} MiB", b.rss_anon_kib / 1024, b.rss_file_kib / 1024),
        );
        t.info(
            format!("{n} files: {who}start to ready, warm cache (model)"),
            format!(
                "{:.0} ms ({:.0} ms)",
                b.start_warm.median_ms, b.start_warm.median_model_load_ms
            ),
        );
    }
    let stages: Vec<String> = this
        .stages_cpu_ms
        .iter()
        .filter(|(k, _)| !k.starts_with("index.") && k.as_str() != "total")
        .map(|(k, v)| format!("{k} {v:.0}"))
        .collect();
    t.info(
        format!("{n} files: stages, CPU ms (--previous)"),
        stages.join(", "),
    );
    t.info(
        format!("{n} files: cold assemble, peak RSS"),
        format!(
            "{:.0} ms, {} MiB",
            this.assemble_ms,
            this.assemble_peak_rss_kib / 1024
        ),
    );
    t.check(
        format!("{n} files: incremental == cold"),
        this.incremental_equals_cold.to_string(),
        "true",
        this.incremental_equals_cold,
    );
    if let Some(w) = &this.swap {
        t.info(
            format!("{n} files: swap to another bundle: RssAnon before / peak, RssFile peak"),
            format!(
                "{} / {} MiB, {} MiB ({} MiB unpacked, live in {:.0} ms)",
                w.anon_before_kib / 1024,
                w.anon_peak_kib / 1024,
                w.file_peak_kib / 1024,
                w.unpacked_bytes >> 20,
                w.swap_ms
            ),
        );
    }
    let Some(base) = size.binaries.get(1) else {
        t.info(
            format!("{n} files: bundle"),
            format!("{} bytes", this.bundle_bytes),
        );
        for l in &this.levels {
            t.info(
                format!("{n} files: {} clients p50 / p99", l.clients),
                format!("{:.1} / {:.1} ms", l.p50_ms, l.p99_ms),
            );
        }
        return;
    };
    let ratio = this.bundle_bytes as f64 / base.bundle_bytes as f64;
    t.check(
        format!("{n} files: bundle bytes, this / baseline"),
        format!("{} / {} ({ratio:.2})", this.bundle_bytes, base.bundle_bytes),
        format!("<= {MAX_BUNDLE_RATIO:.2}"),
        ratio <= MAX_BUNDLE_RATIO,
    );
    for (l, bl) in this.levels.iter().zip(&base.levels) {
        let (r50, r99) = (l.p50_ms / bl.p50_ms, l.p99_ms / bl.p99_ms);
        t.check(
            format!(
                "{n} files: {} clients p50 / p99, this (baseline)",
                l.clients
            ),
            format!(
                "{:.1} ({:.1}) / {:.1} ({:.1}) ms",
                l.p50_ms, bl.p50_ms, l.p99_ms, bl.p99_ms
            ),
            format!("<= {MAX_LATENCY_RATIO}x"),
            r50 <= MAX_LATENCY_RATIO && r99 <= MAX_LATENCY_RATIO,
        );
    }
}

/// The embedding cache of a new local store at `store`, filled with a
/// stand-in vector for every chunk of `repo`'s HEAD. Returns the chunks.
fn fill_cache(repo: &Path, dir: &Path, store: &Path, embedder: &Embedder) -> Result<u64> {
    let standin = StandIn {
        dimensions: embedder.identity().dimensions as usize,
        made: Mutex::default(),
    };
    let request = BuildRequest {
        repo: repo.to_path_buf(),
        rev: "HEAD".into(),
        out_dir: dir.join("standin"),
        previous: None,
        config: None,
        name: Some(REPOSITORY_NAME.into()),
    };
    let report = shelf_builder::build_with(&request, embedder, Some(&standin), &())
        .context("building with stand-in vectors")?;
    let made = standin
        .made
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let pairs: Vec<([u8; 32], &[f32])> = made.iter().map(|(id, v)| (*id, v.as_slice())).collect();
    let rt = load::runtime()?;
    rt.block_on(async {
        let store =
            shelf_store::Store::create(&shelf_store::StoreLocation::Local(store.to_path_buf()))
                .await?;
        for part in pairs.chunks(50_000) {
            shelf_store::cache::save(&store, embedder.identity(), part).await?;
        }
        anyhow::Ok(())
    })?;
    std::fs::remove_dir_all(dir.join("standin")).ok();
    Ok(report.chunks.total)
}

/// A cache that holds every vector: a unit vector drawn from the id.
struct StandIn {
    dimensions: usize,
    made: Mutex<HashMap<[u8; 32], Vec<f32>>>,
}

impl VectorCache for StandIn {
    fn holds(&self, ids: &[[u8; 32]]) -> Result<Vec<bool>, BuildError> {
        Ok(vec![true; ids.len()])
    }

    fn fetch(&self, ids: &[[u8; 32]]) -> Result<HashMap<[u8; 32], Vec<f32>>, BuildError> {
        let vectors: HashMap<[u8; 32], Vec<f32>> = ids
            .iter()
            .map(|id| {
                let mut seed = [0u8; 8];
                seed.copy_from_slice(&id[..8]);
                let mut rng = Rng::new(u64::from_le_bytes(seed));
                let mut v: Vec<f32> = (0..self.dimensions)
                    .map(|_| rng.unit() as f32 - 0.5)
                    .collect();
                let norm = v
                    .iter()
                    .map(|x| x * x)
                    .sum::<f32>()
                    .sqrt()
                    .max(f32::MIN_POSITIVE);
                v.iter_mut().for_each(|x| *x /= norm);
                (*id, v)
            })
            .collect();
        self.made
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(vectors.iter().map(|(k, v)| (*k, v.clone())));
        Ok(vectors)
    }

    fn save(&self, _: &[([u8; 32], &[f32])]) -> Result<(), BuildError> {
        Ok(())
    }
}
