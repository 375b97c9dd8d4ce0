//! `shelf-bench embed`: the embedding model and its layout, fp32 against
//! int8, side by side in one run, against the targets of issue 17: cold
//! build chunks/s >= 1.6x, server throughput at 8 clients with distinct
//! queries >= 2.5x with p50 <= 15 ms, RSS not higher, start to ready with
//! the model's load reported.
//!
//! Variants, each the real binary as users run it:
//! - `fp32-before` (with `--baseline-shelf`): a build of shelf from before
//!   this change, on the runtime it was made for (`--baseline-runtime`):
//!   one fp32 session on every core, padded batches of 32 in builds,
//!   micro-batched queries in the server. The targets are ratios to it.
//! - `fp32`: this build with `--model <runtime>/model-fp32`: the fp32 model
//!   in today's layout (one single-threaded session per core, each text
//!   alone).
//! - `int8`: this build's default.
//!
//! Work is interleaved (build run i of every variant, then run i+1; every
//! server started before the first load level, then each level run on each
//! server in turn, in several rounds), so background load on a shared
//! machine falls on every variant alike; medians are quoted. An in-process
//! part first measures the layouts the defaults were chosen by: sessions x
//! threads for chunks, and queries alone against padded batches.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_testkit::GitRepo;
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;

use crate::build_bench::{touch_files, warn_if_busy, write_corpus};
use crate::corpus::Corpus;
use crate::load::{self, Sample, percentile, process_cpu_seconds, process_rss_kib};
use crate::machine::Machine;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::serve_bench::{queries_from, start_once};
use crate::shelf_cli::{BuildRun, REPOSITORY_NAME, ShelfBinary, workspace_root};
use crate::stats::{median, median_by};
use crate::table::{self, Row};

// Targets, in one place so the table and docs/benchmarks.md agree.
const MIN_BUILD_RATIO: f64 = 1.6;
const MIN_SERVE_RATIO_AT_8: f64 = 2.5;
const MAX_P50_AT_8_MS: f64 = 15.0;
const CONCURRENCY: [usize; 3] = [1, 8, 32];
/// Distinct queries of the repeated-query level: a small working set, so
/// most answers can come from the cache.
const REPEATED_SET: usize = 100;
/// Share of files the incremental-equals-cold check changes.
const TOUCHED_SHARE: f64 = 0.05;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files in the generated repository.
    pub files: usize,
    /// Corpus seed.
    pub seed: u64,
    /// Cold builds per variant.
    pub runs: usize,
    /// Rounds of the load levels per server.
    pub rounds: usize,
    /// Requests per level and round.
    pub requests: usize,
    /// Seconds at most per level and round.
    pub max_seconds: u64,
    /// Start-to-ready measurements per variant.
    pub starts: usize,
    /// Chunks embedded per in-process layout measurement.
    pub layout_chunks: usize,
    /// Queries embedded per in-process query measurement.
    pub layout_queries: usize,
    /// A shelf binary from before this change (the `fp32-before` variant).
    pub baseline_shelf: Option<PathBuf>,
    /// The runtime directory that binary was provisioned with.
    pub baseline_runtime: Option<PathBuf>,
    /// JSON results path.
    pub json_out: PathBuf,
    /// The command line.
    pub command: Vec<String>,
}

/// One way of running shelf.
struct Variant {
    name: &'static str,
    about: String,
    shelf: ShelfBinary,
    /// `--runtime` / `--model`, for builds and servers alike.
    args: Vec<String>,
}

#[derive(Debug, Serialize)]
struct VariantOut {
    name: &'static str,
    about: String,
    shelf_binary: String,
    args: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
struct DocLayoutOut {
    model: String,
    sessions: usize,
    threads_per_session: usize,
    chunks: usize,
    seconds: f64,
    chunks_per_s: f64,
    loadavg_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct QueryLayoutOut {
    model: String,
    threads: usize,
    batch: usize,
    queries: usize,
    wall_ms_per_query: f64,
    cpu_ms_per_query: f64,
}

#[derive(Debug, Clone, Serialize)]
struct BuildRunOut {
    wall_ms: f64,
    embed_ms: f64,
    embedded: u64,
    peak_rss_kib: u64,
    digest: String,
    loadavg_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
struct BuildOut {
    variant: &'static str,
    runs: Vec<BuildRunOut>,
    chunks_embedded: u64,
    median_wall_ms: f64,
    /// Embedded chunks per second of cold-build wall time (process start and
    /// model load included).
    chunks_per_s: f64,
    /// Embedded chunks per second of the report's embed stage.
    embed_stage_chunks_per_s: f64,
    median_peak_rss_mib: f64,
    digests_identical: bool,
    digest: String,
    bundle: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
struct IncrementalOut {
    variant: &'static str,
    files_changed: usize,
    embedded: u64,
    reused: u64,
    incremental_wall_ms: f64,
    incremental_digest: String,
    cold_digest: String,
    equal: bool,
}

#[derive(Debug, Clone, Serialize)]
struct LevelRun {
    round: usize,
    clients: usize,
    requests: usize,
    failed: usize,
    seconds: f64,
    throughput_qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_embed_p50_ms: f64,
    server_cpu_ms_per_query: f64,
    generator_cpu_share: f64,
}

#[derive(Debug, Clone, Serialize)]
struct LevelOut {
    clients: usize,
    rounds: Vec<LevelRun>,
    throughput_qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_embed_p50_ms: f64,
    server_cpu_ms_per_query: f64,
}

#[derive(Debug, Clone, Serialize)]
struct RepeatedOut {
    clients: usize,
    distinct_queries: usize,
    requests: usize,
    throughput_qps: f64,
    p50_ms: f64,
    /// From `/metrics` when the server exports the cache's counters.
    cache_hits: Option<u64>,
    cache_misses: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
struct ServeOut {
    variant: &'static str,
    start_ready_ms: Vec<f64>,
    model_load_ms: Vec<f64>,
    median_start_ready_ms: f64,
    median_model_load_ms: f64,
    levels: Vec<LevelOut>,
    repeated: RepeatedOut,
    rss_mib: f64,
    peak_rss_mib: f64,
}

/// Everything measured, as the table is made of it.
#[derive(Debug, Serialize)]
struct Measured {
    doc_layouts: Vec<DocLayoutOut>,
    query_layouts: Vec<QueryLayoutOut>,
    builds: Vec<BuildOut>,
    incremental: Vec<IncrementalOut>,
    serve: Vec<ServeOut>,
}

#[derive(Debug, Serialize)]
struct Results {
    command: Vec<String>,
    machine: Machine,
    files: usize,
    seed: u64,
    variants: Vec<VariantOut>,
    /// Flattened: its fields are keys of the results themselves.
    #[serde(flatten)]
    measured: Measured,
    loadavg_at_end: Option<String>,
    rows: Vec<Row>,
}

/// Runs the benchmark, prints the table and writes the JSON.
pub fn run(opts: &Options) -> Result<()> {
    if opts.files == 0 || opts.runs == 0 || opts.rounds == 0 || opts.requests == 0 {
        bail!("--files, --runs, --rounds and --requests must be at least 1");
    }
    if opts.baseline_shelf.is_some() != opts.baseline_runtime.is_some() {
        bail!("--baseline-shelf and --baseline-runtime go together");
    }
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-embed-")
        .tempdir()
        .context("creating a temporary directory")?;
    let machine = Machine::current();
    p.say(&format!("{} cores, {}", machine.nproc, machine.cpu_model));
    warn_if_busy(&p, &machine);
    let runtime = Runtime::locate(Some(&workspace_root().join(".runtime")))
        .context("locating the embedding runtime (run scripts/setup in the checkout)")?;
    let variants = variants(opts, &runtime, work.path())?;
    for v in &variants {
        p.say(&format!("variant {}: {}", v.name, v.about));
    }
    let bench = Bench {
        opts,
        p: &p,
        variants: &variants,
        work: work.path(),
    };

    let mut corpus = Corpus::generate(opts.files, opts.seed);
    // 1. In process: the layouts the defaults were chosen by.
    let (doc_layouts, query_layouts) = layouts(opts, &runtime, &corpus, &p)?;
    // 2. Cold builds, interleaved.
    let repo = write_corpus(&corpus);
    repo.commit("embed benchmark corpus");
    let builds = bench.cold_builds(repo.path())?;
    // 3. Incremental == cold after a 5% commit, for this build's models.
    let incremental = bench.incremental_equals_cold(&repo, &mut corpus, &builds)?;
    // 4. Servers on each variant's cold bundle.
    let serve = bench.serve_all(&builds, &corpus)?;

    let measured = Measured {
        doc_layouts,
        query_layouts,
        builds,
        incremental,
        serve,
    };
    let rows = rows(&variants, &measured);
    print!("{}", table::render(&rows));
    let results = Results {
        command: opts.command.clone(),
        machine,
        files: opts.files,
        seed: opts.seed,
        variants: variants.iter().map(Variant::out).collect(),
        measured,
        loadavg_at_end: crate::machine::loadavg(),
        rows,
    };
    if let Some(dir) = opts.json_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json_out, serde_json::to_vec_pretty(&results)?)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
}

impl Variant {
    fn out(&self) -> VariantOut {
        VariantOut {
            name: self.name,
            about: self.about.clone(),
            shelf_binary: self.shelf.source.display().to_string(),
            args: self.args.clone(),
        }
    }
}

/// What the build and serve stages share: the options, the progress log,
/// the variants and the scratch directory.
struct Bench<'a> {
    opts: &'a Options,
    p: &'a Progress,
    variants: &'a [Variant],
    work: &'a Path,
}

impl Bench<'_> {
    /// `shelf build` of `repo` by variant `v` into `<work>/<variant>-<name>`.
    fn build(
        &self,
        v: &Variant,
        repo: &Path,
        name: &str,
        previous: Option<&Path>,
    ) -> Result<BuildRun> {
        v.shelf.build_with(
            repo,
            "HEAD",
            &self.work.join(format!("{}-{name}", v.name)),
            previous,
            REPOSITORY_NAME,
            &v.args,
        )
    }

    /// `--runs` cold builds per variant, run i of every variant before run
    /// i+1 of any.
    fn cold_builds(&self, repo: &Path) -> Result<Vec<BuildOut>> {
        let runs_wanted = self.opts.runs;
        let mut runs: Vec<Vec<BuildRun>> = self.variants.iter().map(|_| Vec::new()).collect();
        for run in 0..runs_wanted {
            for (v, out) in self.variants.iter().zip(&mut runs) {
                self.p.say(&format!(
                    "cold build {}/{} of {}",
                    run + 1,
                    runs_wanted,
                    v.name
                ));
                let r = self.build(v, repo, &format!("cold-{run}"), None)?;
                self.p.say(&format!(
                    "  {:.1} s wall, {} chunks embedded, embed stage {:.1} s, peak RSS {} MiB (load {})",
                    r.wall.as_secs_f64(),
                    r.report.chunks.embedded,
                    r.stage_ms("embed") / 1000.0,
                    r.peak_rss_kib / 1024,
                    r.loadavg_after.as_deref().unwrap_or("?")
                ));
                out.push(r);
            }
        }
        Ok(self
            .variants
            .iter()
            .zip(&runs)
            .map(|(v, r)| build_out(v.name, r))
            .collect())
    }

    /// Commits a change to [`TOUCHED_SHARE`] of the files, then builds it
    /// incrementally (from each variant's cold bundle) and cold, for every
    /// variant of this build.
    fn incremental_equals_cold(
        &self,
        repo: &GitRepo,
        corpus: &mut Corpus,
        builds: &[BuildOut],
    ) -> Result<Vec<IncrementalOut>> {
        let mut rng = Rng::new(self.opts.seed ^ 0x17);
        let count = ((corpus.files.len() as f64) * TOUCHED_SHARE).ceil() as usize;
        let touched = touch_files(repo, corpus, count, &mut rng);
        repo.commit("touch 5% of files");
        let mut incremental = Vec::new();
        for (v, b) in self.variants.iter().zip(builds) {
            if v.name == "fp32-before" {
                continue;
            }
            self.p.say(&format!(
                "incremental and cold builds of the 5% commit, {}",
                v.name
            ));
            let inc = self.build(v, repo.path(), "inc5", Some(&b.bundle))?;
            let cold = self.build(v, repo.path(), "cold5", None)?;
            incremental.push(IncrementalOut {
                variant: v.name,
                files_changed: touched,
                embedded: inc.report.chunks.embedded,
                reused: inc.report.chunks.reused,
                incremental_wall_ms: inc.wall_ms(),
                equal: inc.report.digest == cold.report.digest,
                incremental_digest: inc.report.digest,
                cold_digest: cold.report.digest,
            });
        }
        Ok(incremental)
    }
}

fn variants(opts: &Options, runtime: &Runtime, work: &Path) -> Result<Vec<Variant>> {
    let mut out = Vec::new();
    if let (Some(shelf), Some(rt)) = (&opts.baseline_shelf, &opts.baseline_runtime) {
        let rt = rt
            .canonicalize()
            .with_context(|| format!("--baseline-runtime {}", rt.display()))?;
        out.push(Variant {
            name: "fp32-before",
            about: format!(
                "{} on {}: the server and builder before int8 (one fp32 session on every core, batched)",
                shelf.display(),
                rt.display()
            ),
            shelf: ShelfBinary::prepare_from(shelf, work, "shelf-before")?,
            args: vec!["--runtime".into(), rt.display().to_string()],
        });
    }
    let fp32_dir = runtime.fp32_model_dir();
    let fp32_dir = fp32_dir.canonicalize().unwrap_or(fp32_dir);
    out.push(Variant {
        name: "fp32",
        about: format!(
            "this build, --model {}: fp32, one single-threaded session per core",
            fp32_dir.display()
        ),
        shelf: ShelfBinary::prepare(work)?,
        args: vec!["--model".into(), fp32_dir.display().to_string()],
    });
    out.push(Variant {
        name: "int8",
        about: "this build, the default model: int8, one single-threaded session per core".into(),
        shelf: {
            // Its own copy, so the variants share no file.
            let dir = work.join("int8");
            std::fs::create_dir_all(&dir)?;
            ShelfBinary::prepare(&dir)?
        },
        args: Vec::new(),
    });
    Ok(out)
}

/// The in-process measurements: chunks/s per (sessions x threads), and a
/// query's cost alone or in a padded batch, at one or two threads.
fn layouts(
    opts: &Options,
    runtime: &Runtime,
    corpus: &Corpus,
    p: &Progress,
) -> Result<(Vec<DocLayoutOut>, Vec<QueryLayoutOut>)> {
    let models = [("fp32", Some(runtime.fp32_model_dir())), ("int8", None)];
    let texts = layout_texts(runtime, corpus, opts.layout_chunks)?;
    let queries = queries_from(corpus, opts.seed ^ 0x9e, opts.layout_queries);
    let mut docs = Vec::new();
    let mut qs = Vec::new();
    for (name, dir) in &models {
        let model = LayoutModel { runtime, name, dir };
        for (sessions, threads) in [(1, 2), (2, 1)] {
            let d = model.documents(sessions, threads, &texts)?;
            p.say(&format!(
                "layout {name} {sessions} session(s) x {threads} thread(s): {:.1} chunks/s",
                d.chunks_per_s
            ));
            docs.push(d);
        }
        for (threads, batch) in [(1, 1), (1, 8), (2, 1), (2, 8)] {
            let q = model.queries(threads, batch, &queries)?;
            p.say(&format!(
                "queries {name}, {threads} thread(s), batch {batch}: {:.2} ms wall, {:.2} ms CPU per query",
                q.wall_ms_per_query, q.cpu_ms_per_query
            ));
            qs.push(q);
        }
    }
    Ok((docs, qs))
}

/// `count` of the corpus's unique chunk texts, evenly spaced over the
/// length-sorted chunks: every length is there.
fn layout_texts(runtime: &Runtime, corpus: &Corpus, count: usize) -> Result<Vec<String>> {
    let tokenizer = Embedder::load(runtime, &EmbedderOptions::default())?;
    let (unique, _) = crate::direct::unique_chunks(&corpus.files, &tokenizer);
    drop(tokenizer);
    let step = (unique.len() / count.max(1)).max(1);
    Ok(unique
        .into_iter()
        .step_by(step)
        .take(count)
        .map(|c| c.embed_text)
        .collect())
}

/// One model whose layouts are measured: fp32 from its directory, or the
/// default (int8) when `dir` is `None`.
struct LayoutModel<'a> {
    runtime: &'a Runtime,
    name: &'a str,
    dir: &'a Option<PathBuf>,
}

impl LayoutModel<'_> {
    /// Chunks/s embedding `texts` with `sessions` x `threads`, after a
    /// warm-up on the first 8.
    fn documents(&self, sessions: usize, threads: usize, texts: &[String]) -> Result<DocLayoutOut> {
        let e = Embedder::load(
            self.runtime,
            &EmbedderOptions {
                sessions: Some(sessions),
                intra_threads: Some(threads),
                model: self.dir.clone(),
                ..EmbedderOptions::default()
            },
        )?;
        e.embed_documents(&texts[..texts.len().min(8)])?;
        let t = Instant::now();
        std::hint::black_box(e.embed_documents(texts)?);
        let seconds = t.elapsed().as_secs_f64();
        Ok(DocLayoutOut {
            model: self.name.to_string(),
            sessions,
            threads_per_session: threads,
            chunks: texts.len(),
            seconds,
            chunks_per_s: texts.len() as f64 / seconds,
            loadavg_after: crate::machine::loadavg(),
        })
    }

    /// Wall and CPU time per query, in groups of `batch` at `threads`
    /// threads, after a warm-up on the first 8.
    fn queries(&self, threads: usize, batch: usize, queries: &[String]) -> Result<QueryLayoutOut> {
        let e = Embedder::load(
            self.runtime,
            &EmbedderOptions {
                sessions: Some(1),
                intra_threads: Some(threads),
                batch_size: batch,
                model: self.dir.clone(),
            },
        )?;
        e.embed_queries(&queries[..queries.len().min(8)])?;
        let me = std::process::id();
        let cpu0 = process_cpu_seconds(me).unwrap_or(f64::NAN);
        let t = Instant::now();
        for group in queries.chunks(batch) {
            std::hint::black_box(e.embed_queries(group)?);
        }
        let wall = t.elapsed().as_secs_f64();
        let cpu = process_cpu_seconds(me).unwrap_or(f64::NAN) - cpu0;
        Ok(QueryLayoutOut {
            model: self.name.to_string(),
            threads,
            batch,
            queries: queries.len(),
            wall_ms_per_query: wall * 1e3 / queries.len() as f64,
            cpu_ms_per_query: cpu * 1e3 / queries.len() as f64,
        })
    }
}

fn build_out(name: &'static str, runs: &[BuildRun]) -> BuildOut {
    let embedded = runs.first().map_or(0, |r| r.report.chunks.embedded);
    let wall = median_by(runs, BuildRun::wall_ms);
    let embed = median_by(runs, |r| r.stage_ms("embed"));
    BuildOut {
        variant: name,
        runs: runs
            .iter()
            .map(|r| BuildRunOut {
                wall_ms: r.wall_ms(),
                embed_ms: r.stage_ms("embed"),
                embedded: r.report.chunks.embedded,
                peak_rss_kib: r.peak_rss_kib,
                digest: r.report.digest.clone(),
                loadavg_after: r.loadavg_after.clone(),
            })
            .collect(),
        chunks_embedded: embedded,
        median_wall_ms: wall,
        chunks_per_s: embedded as f64 / (wall / 1000.0),
        embed_stage_chunks_per_s: embedded as f64 / (embed / 1000.0),
        median_peak_rss_mib: median_by(runs, |r| r.peak_rss_kib as f64 / 1024.0),
        digests_identical: runs
            .windows(2)
            .all(|w| w[0].report.digest == w[1].report.digest),
        digest: runs
            .first()
            .map(|r| r.report.digest.clone())
            .unwrap_or_default(),
        bundle: runs
            .first()
            .map(|r| r.report.bundle_path.clone())
            .unwrap_or_default(),
    }
}

/// Queries to warm each server up with.
const WARMUP: usize = 40;

/// The serve stage's distinct queries: one slice per (round, level), so
/// within one server no query text repeats and no answer can come from
/// its cache; then the warm-up; then the repeated level's small set.
struct ServeQueries {
    pool: Vec<String>,
    requests: usize,
    slots: usize,
}

impl ServeQueries {
    fn new(corpus: &Corpus, opts: &Options) -> Result<Self> {
        let slots = opts.rounds * CONCURRENCY.len();
        let needed = slots * opts.requests + WARMUP + REPEATED_SET;
        let pool = queries_from(corpus, opts.seed ^ 0x5e_4e_17, needed);
        if pool.len() < needed {
            bail!(
                "the corpus gives {} distinct queries, {needed} are needed: lower --requests or --rounds, or raise --files",
                pool.len()
            );
        }
        Ok(Self {
            pool,
            requests: opts.requests,
            slots,
        })
    }

    /// The queries of slot `i` (round x levels + level).
    fn slot(&self, i: usize) -> Arc<Vec<String>> {
        Arc::new(self.pool[i * self.requests..(i + 1) * self.requests].to_vec())
    }

    fn warmup(&self) -> Arc<Vec<String>> {
        let at = self.slots * self.requests;
        Arc::new(self.pool[at..at + WARMUP].to_vec())
    }

    fn repeated(&self) -> Arc<Vec<String>> {
        Arc::new(self.pool[self.pool.len() - REPEATED_SET..].to_vec())
    }
}

/// Per variant, then per level of [`CONCURRENCY`], the runs of each round.
type LevelRuns = Vec<Vec<Vec<LevelRun>>>;

impl Bench<'_> {
    /// Servers on each variant's cold bundle: start to ready, then every
    /// server up and the levels run on each in turn, round after round,
    /// then repeated queries.
    fn serve_all(&self, builds: &[BuildOut], corpus: &Corpus) -> Result<Vec<ServeOut>> {
        let starts = self.start_to_ready(builds)?;
        let servers = self.start_servers(builds);
        let queries = ServeQueries::new(corpus, self.opts)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let never = Arc::new(AtomicBool::new(false));
        for s in &servers {
            rt.block_on(load::run(
                s.addr,
                2,
                queries.warmup(),
                "",
                load::Limits {
                    requests: WARMUP,
                    max_time: Duration::from_secs(60),
                },
                Arc::clone(&never),
            ));
        }
        let levels = self.distinct_levels(&rt, &servers, &queries);
        let mut out = Vec::new();
        for (vi, (v, s)) in self.variants.iter().zip(&servers).enumerate() {
            // Repeated queries last, so their cache never served a level above.
            let repeated = self.repeated_level(&rt, s, &queries);
            self.p.say(&format!(
                "{}: repeated queries ({REPEATED_SET} distinct, 8 clients): {:.0} q/s, p50 {:.1} ms, cache hits {:?}",
                v.name, repeated.throughput_qps, repeated.p50_ms, repeated.cache_hits
            ));
            let rss = process_rss_kib(s.pid()).unwrap_or((0, 0));
            out.push(serve_out(v.name, &starts[vi], &levels[vi], repeated, rss));
        }
        drop(servers);
        Ok(out)
    }

    /// `shelf serve` arguments for variant `v` on its cold bundle.
    fn serve_args(&self, v: &Variant, b: &BuildOut) -> Vec<String> {
        let mut args = vec![
            "--bundle".to_string(),
            b.bundle.display().to_string(),
            "--cache".to_string(),
            self.work
                .join(format!("{}-cache", v.name))
                .display()
                .to_string(),
        ];
        args.extend(v.args.iter().cloned());
        args
    }

    /// `--starts` (start to ready, model load) in ms per variant,
    /// interleaved; the cache is filled by a first, unmeasured start.
    fn start_to_ready(&self, builds: &[BuildOut]) -> Result<Vec<Vec<(f64, f64)>>> {
        let variants = self.variants;
        let mut starts: Vec<Vec<(f64, f64)>> = variants.iter().map(|_| Vec::new()).collect();
        for (v, b) in variants.iter().zip(builds) {
            start_once(&v.shelf, &self.serve_args(v, b))?;
        }
        for _ in 0..self.opts.starts {
            for ((v, b), out) in variants.iter().zip(builds).zip(&mut starts) {
                out.push(start_once(&v.shelf, &self.serve_args(v, b))?);
            }
        }
        for (v, s) in variants.iter().zip(&starts) {
            self.p.say(&format!(
                "{}: start to ready {:.0} ms (model {:.0} ms)",
                v.name,
                median(&s.iter().map(|x| x.0).collect::<Vec<_>>()),
                median(&s.iter().map(|x| x.1).collect::<Vec<_>>())
            ));
        }
        Ok(starts)
    }

    /// One server per variant, each ready.
    fn start_servers(&self, builds: &[BuildOut]) -> Vec<ServerProcess> {
        self.variants
            .iter()
            .zip(builds)
            .map(|(v, b)| {
                let args = self.serve_args(v, b);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let s = ServerProcess::start(
                    v.shelf.path(),
                    &args,
                    &[("SHELF_LOG", "warn,shelf_server=info")],
                );
                s.wait_ready(Duration::from_secs(120));
                s
            })
            .collect()
    }

    fn limits(&self) -> load::Limits {
        load::Limits {
            requests: self.opts.requests,
            max_time: Duration::from_secs(self.opts.max_seconds),
        }
    }

    /// Each round, each level, each server in turn, with distinct queries.
    fn distinct_levels(
        &self,
        rt: &tokio::runtime::Runtime,
        servers: &[ServerProcess],
        queries: &ServeQueries,
    ) -> LevelRuns {
        let mut levels: LevelRuns = self
            .variants
            .iter()
            .map(|_| CONCURRENCY.iter().map(|_| Vec::new()).collect())
            .collect();
        for round in 0..self.opts.rounds {
            for (li, &clients) in CONCURRENCY.iter().enumerate() {
                let slot = queries.slot(round * CONCURRENCY.len() + li);
                for (vi, (v, s)) in self.variants.iter().zip(servers).enumerate() {
                    let timed =
                        load::run_timed(rt, s, clients, Arc::clone(&slot), "", self.limits());
                    let run = level_run(round, clients, &timed);
                    self.p.say(&format!(
                        "round {} {clients:>2} clients {:<11}: {:.0} q/s, p50 {:.1} ms, p99 {:.1} ms, server CPU {:.2} ms/query, {} failed",
                        round + 1,
                        v.name,
                        run.throughput_qps,
                        run.p50_ms,
                        run.p99_ms,
                        run.server_cpu_ms_per_query,
                        run.failed
                    ));
                    levels[vi][li].push(run);
                }
            }
        }
        levels
    }

    /// 8 clients over [`REPEATED_SET`] queries, with the server's query
    /// cache counters.
    fn repeated_level(
        &self,
        rt: &tokio::runtime::Runtime,
        server: &ServerProcess,
        queries: &ServeQueries,
    ) -> RepeatedOut {
        let timed = load::run_timed(rt, server, 8, queries.repeated(), "", self.limits());
        let samples = &timed.samples;
        let ok: Vec<&Sample> = samples.iter().filter(|x| x.status == 200).collect();
        let lat: Vec<f64> = ok.iter().map(|x| x.latency.as_secs_f64() * 1e3).collect();
        let (cache_hits, cache_misses) = cache_counters(server);
        RepeatedOut {
            clients: 8,
            distinct_queries: REPEATED_SET,
            requests: samples.len(),
            throughput_qps: ok.len() as f64 / timed.seconds,
            p50_ms: percentile(&lat, 50.0),
            cache_hits,
            cache_misses,
        }
    }
}

/// The query cache's hits and misses from `/metrics`. A server that does
/// not export them, or registers the series but never counts into them
/// (its query embedder not given the metrics), says nothing.
fn cache_counters(server: &ServerProcess) -> (Option<u64>, Option<u64>) {
    let metrics = http::get(server.addr, "/metrics");
    let text = String::from_utf8_lossy(&metrics.body);
    let counter = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    };
    match (
        counter("shelf_query_cache_hits_total "),
        counter("shelf_query_cache_misses_total "),
    ) {
        (Some(0), Some(0)) => (None, None),
        counts => counts,
    }
}

/// One variant's serve results: its starts, the medians of its levels'
/// rounds, the repeated level and its RSS (now, peak) in KiB.
fn serve_out(
    variant: &'static str,
    starts: &[(f64, f64)],
    levels: &[Vec<LevelRun>],
    repeated: RepeatedOut,
    (rss, peak): (u64, u64),
) -> ServeOut {
    let levels = CONCURRENCY
        .iter()
        .zip(levels)
        .map(|(&clients, runs)| LevelOut {
            clients,
            throughput_qps: median_by(runs, |r| r.throughput_qps),
            p50_ms: median_by(runs, |r| r.p50_ms),
            p99_ms: median_by(runs, |r| r.p99_ms),
            server_embed_p50_ms: median_by(runs, |r| r.server_embed_p50_ms),
            server_cpu_ms_per_query: median_by(runs, |r| r.server_cpu_ms_per_query),
            rounds: runs.to_vec(),
        })
        .collect();
    ServeOut {
        variant,
        start_ready_ms: starts.iter().map(|x| x.0).collect(),
        model_load_ms: starts.iter().map(|x| x.1).collect(),
        median_start_ready_ms: median(&starts.iter().map(|x| x.0).collect::<Vec<_>>()),
        median_model_load_ms: median(&starts.iter().map(|x| x.1).collect::<Vec<_>>()),
        levels,
        repeated,
        rss_mib: rss as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
    }
}

fn level_run(round: usize, clients: usize, timed: &load::Timed) -> LevelRun {
    let samples = &timed.samples;
    let (server_cpu, self_cpu) = (timed.server_cpu_s, timed.generator_cpu_s);
    let ok: Vec<&Sample> = samples.iter().filter(|s| s.status == 200).collect();
    let lat: Vec<f64> = ok.iter().map(|s| s.latency.as_secs_f64() * 1e3).collect();
    let embed: Vec<f64> = ok.iter().map(|s| s.embed_ms).collect();
    LevelRun {
        round,
        clients,
        requests: samples.len(),
        failed: samples.len() - ok.len(),
        seconds: timed.seconds,
        throughput_qps: ok.len() as f64 / timed.seconds,
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        server_embed_p50_ms: percentile(&embed, 50.0),
        server_cpu_ms_per_query: server_cpu * 1e3 / ok.len().max(1) as f64,
        generator_cpu_share: self_cpu / (self_cpu + server_cpu),
    }
}

/// The table: layouts, builds, servers, then each target as a ratio of
/// int8 to the baseline (`fp32-before` when measured, else `fp32`).
fn rows(variants: &[Variant], m: &Measured) -> Vec<Row> {
    let mut rows = layout_rows(&m.doc_layouts, &m.query_layouts);
    rows.extend(build_rows(&m.builds));
    rows.extend(m.incremental.iter().map(incremental_row));
    for s in &m.serve {
        rows.extend(serve_rows(s));
    }
    let find_b = |n: &str| m.builds.iter().find(|b| b.variant == n);
    let find_s = |n: &str| m.serve.iter().find(|s| s.variant == n);
    let baselines: Vec<&str> = variants
        .iter()
        .map(|v| v.name)
        .filter(|n| *n != "int8")
        .collect();
    // The targets are checked against the first baseline (the server and
    // builder as they were, when measured); the other is information.
    for (k, base) in baselines.iter().enumerate() {
        let ratio = Ratio {
            base,
            checked: k == 0,
        };
        if let (Some(a), Some(b)) = (find_b("int8"), find_b(base)) {
            rows.extend(ratio.build_rows(a, b));
        }
        if let (Some(a), Some(b)) = (find_s("int8"), find_s(base)) {
            rows.extend(ratio.serve_rows(a, b));
        }
    }
    if let Some(l) = find_s("int8").and_then(|s| s.levels.iter().find(|l| l.clients == 8)) {
        rows.push(Row::check(
            "int8: p50 at 8 clients",
            format!("{:.1} ms", l.p50_ms),
            format!("<= {MAX_P50_AT_8_MS:.0} ms"),
            l.p50_ms <= MAX_P50_AT_8_MS,
        ));
    }
    rows
}

fn layout_rows(docs: &[DocLayoutOut], queries: &[QueryLayoutOut]) -> Vec<Row> {
    let mut rows = Vec::new();
    for d in docs {
        rows.push(Row::info(
            format!(
                "in process, {} chunks: {} session(s) x {} thread(s)",
                d.model, d.sessions, d.threads_per_session
            ),
            format!("{:.1} chunks/s", d.chunks_per_s),
        ));
    }
    for q in queries {
        rows.push(Row::info(
            format!(
                "in process, {} query: {} thread(s), {}",
                q.model,
                q.threads,
                if q.batch == 1 {
                    "alone".to_string()
                } else {
                    format!("padded batches of {}", q.batch)
                }
            ),
            format!(
                "{:.2} ms CPU, {:.2} ms wall",
                q.cpu_ms_per_query, q.wall_ms_per_query
            ),
        ));
    }
    rows
}

/// Each variant's cold builds, then whether fp32 in today's layout gives
/// the bytes it gave before.
fn build_rows(builds: &[BuildOut]) -> Vec<Row> {
    let mut rows = Vec::new();
    for b in builds {
        rows.push(Row::info(
            format!("cold build, {}: wall / chunks/s", b.variant),
            format!(
                "{:.1} s / {:.1} ({} chunks; embed stage {:.1}/s)",
                b.median_wall_ms / 1000.0,
                b.chunks_per_s,
                b.chunks_embedded,
                b.embed_stage_chunks_per_s
            ),
        ));
        rows.push(Row::check(
            format!("cold build, {}: same digest every run", b.variant),
            if b.digests_identical { "yes" } else { "no" },
            "yes",
            b.digests_identical,
        ));
        rows.push(Row::info(
            format!("cold build, {}: peak RSS", b.variant),
            format!("{:.0} MiB", b.median_peak_rss_mib),
        ));
    }
    if let (Some(before), Some(now)) = (
        builds.iter().find(|b| b.variant == "fp32-before"),
        builds.iter().find(|b| b.variant == "fp32"),
    ) {
        rows.push(Row::info(
            "fp32 bundle: today's layout gives the same bytes as before",
            if before.digest == now.digest {
                "yes"
            } else {
                "no"
            },
        ));
    }
    rows
}

fn incremental_row(i: &IncrementalOut) -> Row {
    Row::check(
        format!(
            "{}: incremental after {} files changed == cold",
            i.variant, i.files_changed
        ),
        format!(
            "{} ({} embedded, {} reused)",
            if i.equal { "yes" } else { "no" },
            i.embedded,
            i.reused
        ),
        "yes",
        i.equal,
    )
}

fn serve_rows(s: &ServeOut) -> Vec<Row> {
    let mut rows = vec![Row::info(
        format!("serve, {}: start to ready (model load)", s.variant),
        format!(
            "{:.0} ms ({:.0} ms)",
            s.median_start_ready_ms, s.median_model_load_ms
        ),
    )];
    for l in &s.levels {
        rows.push(Row::info(
            format!(
                "serve, {}: {} clients, distinct queries",
                s.variant, l.clients
            ),
            format!(
                "{:.0} q/s, p50 {:.1} ms, p99 {:.1} ms, {:.2} ms CPU/query",
                l.throughput_qps, l.p50_ms, l.p99_ms, l.server_cpu_ms_per_query
            ),
        ));
    }
    rows.push(Row::info(
        format!(
            "serve, {}: 8 clients, {} repeated queries",
            s.variant, s.repeated.distinct_queries
        ),
        format!(
            "{:.0} q/s, p50 {:.1} ms{}",
            s.repeated.throughput_qps,
            s.repeated.p50_ms,
            match (s.repeated.cache_hits, s.repeated.cache_misses) {
                (Some(h), Some(m)) => format!(", cache hits {h} / misses {m}"),
                _ => String::new(),
            }
        ),
    ));
    rows.push(Row::info(
        format!("serve, {}: RSS now / peak", s.variant),
        format!("{:.0} MiB / {:.0} MiB", s.rss_mib, s.peak_rss_mib),
    ));
    rows
}

/// int8 against one baseline; its targets are checked only when
/// `checked` (the first baseline), else the rows are information.
struct Ratio<'a> {
    base: &'a str,
    checked: bool,
}

impl Ratio<'_> {
    fn row(&self, metric: String, value: String, target: String, pass: bool) -> Row {
        if self.checked {
            Row::check(metric, value, target, pass)
        } else {
            Row::info(metric, value)
        }
    }

    fn build_rows(&self, int8: &BuildOut, base: &BuildOut) -> Vec<Row> {
        let name = self.base;
        let speed = int8.chunks_per_s / base.chunks_per_s;
        let rss = int8.median_peak_rss_mib / base.median_peak_rss_mib;
        vec![
            self.row(
                format!("int8 / {name}: cold build chunks/s"),
                format!("{speed:.2}x"),
                format!(">= {MIN_BUILD_RATIO}x"),
                speed >= MIN_BUILD_RATIO,
            ),
            self.row(
                format!("int8 / {name}: build peak RSS"),
                format!("{rss:.2}x"),
                "<= 1x".into(),
                rss <= 1.0,
            ),
        ]
    }

    fn serve_rows(&self, int8: &ServeOut, base: &ServeOut) -> Vec<Row> {
        let name = self.base;
        let mut rows = Vec::new();
        for (la, lb) in int8.levels.iter().zip(&base.levels) {
            let r = la.throughput_qps / lb.throughput_qps;
            let metric = format!("int8 / {name}: throughput at {} clients", la.clients);
            if la.clients == 8 {
                rows.push(self.row(
                    metric,
                    format!("{r:.2}x"),
                    format!(">= {MIN_SERVE_RATIO_AT_8}x"),
                    r >= MIN_SERVE_RATIO_AT_8,
                ));
            } else {
                rows.push(Row::info(metric, format!("{r:.2}x")));
            }
        }
        let r = int8.rss_mib / base.rss_mib;
        rows.push(self.row(
            format!("int8 / {name}: server RSS"),
            format!("{r:.2}x"),
            "<= 1x".into(),
            r <= 1.0,
        ));
        rows.push(Row::info(
            format!("int8 / {name}: start to ready"),
            format!(
                "{:.2}x",
                int8.median_start_ready_ms / base.median_start_ready_ms
            ),
        ));
        rows
    }
}
