//! `shelf-bench embed`: see [`Embed`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_testkit::GitRepo;
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;

use crate::fixtures::corpus::Corpus;
use crate::fixtures::load::{self, Call, Sample, Timed, WARMUP};
use crate::fixtures::process::{process_cpu_seconds, process_rss_kib};
use crate::fixtures::queries::{QueryPool, queries_from};
use crate::fixtures::rng::Rng;
use crate::fixtures::server::{start_once, start_ready, strings};
use crate::fixtures::shelf::{BuildRun, ShelfBinary};
use crate::harness::stats::{median_by, percentile};
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, machine, runtime, table};

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

/// The embedding model and its layout, fp32 against int8 side by side in
/// one run.
///
/// Against the targets of issue 17: cold build chunks/s >= 1.6x, server
/// throughput at 8 clients with distinct queries >= 2.5x with p50 <= 15 ms,
/// RSS not higher, start to ready with the model's load reported. Variants,
/// each the real binary as users run it:
/// - `fp32-before` (with `--baseline-shelf`): a build of shelf from before
///   int8, on the runtime it was made for (`--baseline-runtime`): one fp32
///   session on every core, padded batches of 32 in builds, micro-batched
///   queries in the server. The targets are ratios to it.
/// - `fp32`: this build with `--model <runtime>/model-fp32`: the fp32 model
///   in today's layout (one single-threaded session per core, each text
///   alone).
/// - `int8`: this build's default.
///
/// An in-process part first measures the layouts the defaults were chosen
/// by (sessions x threads for chunks, queries alone against padded
/// batches); then cold builds (chunks/s, peak RSS, reproducibility),
/// incremental == cold, and servers at 1, 8 and 32 clients with distinct
/// queries, repeated queries, start to ready and RSS. Work is interleaved
/// (build run i of every variant, then run i+1; every server started before
/// the first load level, then each level run on each server in turn, in
/// several rounds), so background load on a shared machine falls on every
/// variant alike; medians are quoted. Needs `cargo build --bin shelf` and
/// `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Embed {
    /// Files in the generated repository.
    #[arg(long, default_value_t = 800)]
    files: usize,
    /// Seed of the generated repository.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Cold builds per variant (the median is reported).
    #[arg(long, default_value_t = 2)]
    runs: usize,
    /// Rounds of the load levels per server (medians are reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Requests per level and round (each a distinct query).
    #[arg(long, default_value_t = 800)]
    requests: usize,
    /// Seconds at most per level and round.
    #[arg(long, default_value_t = 20)]
    max_seconds: u64,
    /// Start-to-ready measurements per variant.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Chunks per in-process layout measurement.
    #[arg(long, default_value_t = 400)]
    layout_chunks: usize,
    /// Queries per in-process query measurement.
    #[arg(long, default_value_t = 400)]
    layout_queries: usize,
    /// A shelf binary from before int8 became the default.
    #[arg(long, requires = "baseline_runtime")]
    baseline_shelf: Option<PathBuf>,
    /// The runtime directory that binary was provisioned with.
    #[arg(long, requires = "baseline_shelf")]
    baseline_runtime: Option<PathBuf>,
}

/// One way of running shelf.
struct Variant {
    name: &'static str,
    about: String,
    shelf: ShelfBinary,
    /// `--runtime` / `--model`, for builds and servers alike.
    args: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantOut {
    name: String,
    about: String,
    shelf_binary: String,
    args: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DocLayoutOut {
    model: String,
    sessions: usize,
    threads_per_session: usize,
    chunks: usize,
    seconds: f64,
    chunks_per_s: f64,
    loadavg_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryLayoutOut {
    model: String,
    threads: usize,
    batch: usize,
    queries: usize,
    wall_ms_per_query: f64,
    cpu_ms_per_query: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildRunOut {
    wall_ms: f64,
    embed_ms: f64,
    embedded: u64,
    peak_rss_kib: u64,
    digest: String,
    loadavg_after: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildOut {
    variant: String,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IncrementalOut {
    variant: String,
    files_changed: usize,
    embedded: u64,
    reused: u64,
    incremental_wall_ms: f64,
    incremental_digest: String,
    cold_digest: String,
    equal: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LevelOut {
    clients: usize,
    rounds: Vec<LevelRun>,
    throughput_qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    server_embed_p50_ms: f64,
    server_cpu_ms_per_query: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServeOut {
    variant: String,
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
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    doc_layouts: Vec<DocLayoutOut>,
    query_layouts: Vec<QueryLayoutOut>,
    builds: Vec<BuildOut>,
    incremental: Vec<IncrementalOut>,
    serve: Vec<ServeOut>,
}

/// What `shelf-bench embed` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
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

impl Benchmark for Embed {
    const NAME: &'static str = "embed";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        if self.files == 0 || self.runs == 0 || self.rounds == 0 || self.requests == 0 {
            bail!("--files, --runs, --rounds and --requests must be at least 1");
        }
        if self.baseline_shelf.is_some() != self.baseline_runtime.is_some() {
            bail!("--baseline-shelf and --baseline-runtime go together");
        }
        let runtime = runtime()?;
        let variants = self.variants(&runtime, b.work())?;
        for v in &variants {
            b.say(format!("variant {}: {}", v.name, v.about));
        }
        let stage = Stage {
            opts: self,
            b,
            variants: &variants,
        };
        let mut corpus = Corpus::generate(self.files, self.seed);
        // 1. In process: the layouts the defaults were chosen by.
        let (doc_layouts, query_layouts) = self.layouts(&runtime, &corpus, b)?;
        // 2. Cold builds, interleaved.
        let repo = corpus.write_repo();
        repo.commit("embed benchmark corpus");
        let builds = stage.cold_builds(repo.path())?;
        // 3. Incremental == cold after a 5% commit, for this build's models.
        let incremental = stage.incremental_equals_cold(&repo, &mut corpus, &builds)?;
        // 4. Servers on each variant's cold bundle.
        let serve = stage.serve_all(&builds, &corpus)?;

        let measured = Measured {
            doc_layouts,
            query_layouts,
            builds,
            incremental,
            serve,
        };
        let rows = rows(&variants, &measured);
        print!("{}", table::render(&rows));
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            files: self.files,
            seed: self.seed,
            variants: variants.iter().map(Variant::out).collect(),
            measured,
            loadavg_at_end: machine::loadavg(),
            rows,
        })
    }
}

impl Variant {
    fn out(&self) -> VariantOut {
        VariantOut {
            name: self.name.to_string(),
            about: self.about.clone(),
            shelf_binary: self.shelf.source.display().to_string(),
            args: self.args.clone(),
        }
    }
}

/// What the build and serve stages share: the options, the harness and
/// the variants.
struct Stage<'a> {
    opts: &'a Embed,
    b: &'a Bench,
    variants: &'a [Variant],
}

impl Stage<'_> {
    /// `shelf build` of `repo` by variant `v` into `<work>/<variant>-<name>`.
    fn build(
        &self,
        v: &Variant,
        repo: &Path,
        name: &str,
        previous: Option<&Path>,
    ) -> Result<BuildRun> {
        let out = self.b.work().join(format!("{}-{name}", v.name));
        v.shelf.build(repo, &out, previous, &v.args)
    }

    /// `--runs` cold builds per variant, run i of every variant before run
    /// i+1 of any.
    fn cold_builds(&self, repo: &Path) -> Result<Vec<BuildOut>> {
        let runs_wanted = self.opts.runs;
        let mut runs: Vec<Vec<BuildRun>> = self.variants.iter().map(|_| Vec::new()).collect();
        for run in 0..runs_wanted {
            for (v, out) in self.variants.iter().zip(&mut runs) {
                self.b.say(format!(
                    "cold build {}/{} of {}",
                    run + 1,
                    runs_wanted,
                    v.name
                ));
                let r = self.build(v, repo, &format!("cold-{run}"), None)?;
                self.b.say(format!(
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
        let touched = corpus.touch(repo, count, &mut rng);
        repo.commit("touch 5% of files");
        let mut incremental = Vec::new();
        for (v, b) in self.variants.iter().zip(builds) {
            if v.name == "fp32-before" {
                continue;
            }
            self.b.say(format!(
                "incremental and cold builds of the 5% commit, {}",
                v.name
            ));
            let inc = self.build(v, repo.path(), "inc5", Some(&b.bundle))?;
            let cold = self.build(v, repo.path(), "cold5", None)?;
            incremental.push(IncrementalOut {
                variant: v.name.to_string(),
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

impl Embed {
    fn variants(&self, runtime: &Runtime, work: &Path) -> Result<Vec<Variant>> {
        let mut out = Vec::new();
        if let (Some(shelf), Some(rt)) = (&self.baseline_shelf, &self.baseline_runtime) {
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
            about: "this build, the default model: int8, one single-threaded session per core"
                .into(),
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
        &self,
        runtime: &Runtime,
        corpus: &Corpus,
        b: &Bench,
    ) -> Result<(Vec<DocLayoutOut>, Vec<QueryLayoutOut>)> {
        let models = [("fp32", Some(runtime.fp32_model_dir())), ("int8", None)];
        let texts = layout_texts(runtime, corpus, self.layout_chunks)?;
        let queries = queries_from(corpus, self.seed ^ 0x9e, self.layout_queries);
        let mut docs = Vec::new();
        let mut qs = Vec::new();
        for (name, dir) in &models {
            let model = LayoutModel { runtime, name, dir };
            for (sessions, threads) in [(1, 2), (2, 1)] {
                let d = model.documents(sessions, threads, &texts)?;
                b.say(format!(
                    "layout {name} {sessions} session(s) x {threads} thread(s): {:.1} chunks/s",
                    d.chunks_per_s
                ));
                docs.push(d);
            }
            for (threads, batch) in [(1, 1), (1, 8), (2, 1), (2, 8)] {
                let q = model.queries(threads, batch, &queries)?;
                b.say(format!(
                "queries {name}, {threads} thread(s), batch {batch}: {:.2} ms wall, {:.2} ms CPU per query",
                q.wall_ms_per_query, q.cpu_ms_per_query
            ));
                qs.push(q);
            }
        }
        Ok((docs, qs))
    }
}

/// `count` of the corpus's unique chunk texts, evenly spaced over the
/// length-sorted chunks: every length is there.
fn layout_texts(runtime: &Runtime, corpus: &Corpus, count: usize) -> Result<Vec<String>> {
    let tokenizer = Embedder::load(runtime, &EmbedderOptions::default())?;
    let (unique, _) = corpus.unique_chunks(&tokenizer);
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
            loadavg_after: machine::loadavg(),
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

fn build_out(name: &str, runs: &[BuildRun]) -> BuildOut {
    let embedded = runs.first().map_or(0, |r| r.report.chunks.embedded);
    let wall = median_by(runs, BuildRun::wall_ms);
    let embed = median_by(runs, |r| r.stage_ms("embed"));
    BuildOut {
        variant: name.to_string(),
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
        digests_identical: BuildRun::same_digest(runs),
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

/// The serve stage's distinct queries: one slice per (round, level), so
/// within one server no query text repeats and no answer can come from
/// its cache; then the warm-up; then the repeated level's small set.
struct ServeQueries {
    slots: Vec<Arc<Vec<String>>>,
    warmup: Arc<Vec<String>>,
    repeated: Arc<Vec<String>>,
}

impl ServeQueries {
    fn new(corpus: &Corpus, opts: &Embed) -> Result<Self> {
        let slots = opts.rounds * CONCURRENCY.len();
        let needed = slots * opts.requests + WARMUP + REPEATED_SET;
        let mut pool = QueryPool::new(corpus, opts.seed ^ 0x5e_4e_17, needed, needed)?;
        Ok(Self {
            slots: (0..slots).map(|_| pool.take(opts.requests)).collect(),
            warmup: pool.take(WARMUP),
            repeated: pool.take(REPEATED_SET),
        })
    }
}

/// Per variant, then per level of [`CONCURRENCY`], the runs of each round.
type LevelRuns = Vec<Vec<Vec<LevelRun>>>;

impl Stage<'_> {
    /// Servers on each variant's cold bundle: start to ready, then every
    /// server up and the levels run on each in turn, round after round,
    /// then repeated queries.
    fn serve_all(&self, builds: &[BuildOut], corpus: &Corpus) -> Result<Vec<ServeOut>> {
        let starts = self.start_to_ready(builds)?;
        let servers = self.start_servers(builds)?;
        let queries = ServeQueries::new(corpus, self.opts)?;
        let rt = load::runtime()?;
        for s in &servers {
            load::warm_up(&rt, s.addr, Call::searches(&queries.warmup, ""));
        }
        let levels = self.distinct_levels(&rt, &servers, &queries);
        let mut out = Vec::new();
        for (vi, (v, s)) in self.variants.iter().zip(&servers).enumerate() {
            // Repeated queries last, so their cache never served a level above.
            let repeated = self.repeated_level(&rt, s, &queries);
            self.b.say(format!(
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
        let cache = self.b.work().join(format!("{}-cache", v.name));
        let (bundle, cache) = (b.bundle.display().to_string(), cache.display().to_string());
        let mut args = strings(&["--bundle", &bundle, "--cache", &cache]);
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
            self.b.say(format!(
                "{}: start to ready {:.0} ms (model {:.0} ms)",
                v.name,
                median_by(s, |x| x.0),
                median_by(s, |x| x.1)
            ));
        }
        Ok(starts)
    }

    /// One server per variant, each ready.
    fn start_servers(&self, builds: &[BuildOut]) -> Result<Vec<ServerProcess>> {
        let env = [("SHELF_LOG", "warn,shelf_server=info")];
        let servers = self.variants.iter().zip(builds);
        servers
            .map(|(v, b)| Ok(start_ready(&v.shelf, &self.serve_args(v, b), &env, |_| true)?.server))
            .collect()
    }

    fn limits(&self) -> load::Limits {
        load::Limits::new(self.opts.requests, self.opts.max_seconds)
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
                let slot = &queries.slots[round * CONCURRENCY.len() + li];
                for (vi, (v, s)) in self.variants.iter().zip(servers).enumerate() {
                    let calls = Call::searches(slot, "");
                    let timed = load::run_timed(rt, s, clients, calls, self.limits());
                    let run = level_run(round, clients, &timed);
                    self.b.say(format!(
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
        let calls = Call::searches(&queries.repeated, "");
        let timed = load::run_timed(rt, server, 8, calls, self.limits());
        let lat = timed.of_answered(Sample::ms);
        let (cache_hits, cache_misses) = cache_counters(server);
        RepeatedOut {
            clients: 8,
            distinct_queries: REPEATED_SET,
            requests: timed.samples.len(),
            throughput_qps: timed.throughput_qps(),
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
    variant: &str,
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
        variant: variant.to_string(),
        start_ready_ms: starts.iter().map(|x| x.0).collect(),
        model_load_ms: starts.iter().map(|x| x.1).collect(),
        median_start_ready_ms: median_by(starts, |x| x.0),
        median_model_load_ms: median_by(starts, |x| x.1),
        levels,
        repeated,
        rss_mib: rss as f64 / 1024.0,
        peak_rss_mib: peak as f64 / 1024.0,
    }
}

fn level_run(round: usize, clients: usize, timed: &Timed) -> LevelRun {
    let lat = timed.of_answered(Sample::ms);
    let embed = timed.of_answered(|s| s.embed_ms);
    LevelRun {
        round,
        clients,
        requests: timed.samples.len(),
        failed: timed.samples.len() - lat.len(),
        seconds: timed.seconds,
        throughput_qps: timed.throughput_qps(),
        p50_ms: percentile(&lat, 50.0),
        p99_ms: percentile(&lat, 99.0),
        server_embed_p50_ms: percentile(&embed, 50.0),
        server_cpu_ms_per_query: timed.server_cpu_s * 1e3 / lat.len().max(1) as f64,
        generator_cpu_share: timed.generator_cpu_share(),
    }
}

/// The table: layouts, builds, servers, then each target as a ratio of
/// int8 to the baseline (`fp32-before` when measured, else `fp32`).
fn rows(variants: &[Variant], m: &Measured) -> Vec<Row> {
    let mut t = Table::default();
    let yes = |b: bool| if b { "yes" } else { "no" };
    for d in &m.doc_layouts {
        let (model, s, th) = (&d.model, d.sessions, d.threads_per_session);
        let what = format!("in process, {model} chunks: {s} session(s) x {th} thread(s)");
        t.info(what, format!("{:.1} chunks/s", d.chunks_per_s));
    }
    for q in &m.query_layouts {
        let how = match q.batch {
            1 => "alone".to_string(),
            n => format!("padded batches of {n}"),
        };
        let what = format!(
            "in process, {} query: {} thread(s), {how}",
            q.model, q.threads
        );
        let (cpu, wall) = (q.cpu_ms_per_query, q.wall_ms_per_query);
        t.info(what, format!("{cpu:.2} ms CPU, {wall:.2} ms wall"));
    }
    for b in &m.builds {
        let v = &b.variant;
        let (wall, speed, n) = (b.median_wall_ms / 1000.0, b.chunks_per_s, b.chunks_embedded);
        let stage = b.embed_stage_chunks_per_s;
        let value = format!("{wall:.1} s / {speed:.1} ({n} chunks; embed stage {stage:.1}/s)");
        t.info(format!("cold build, {v}: wall / chunks/s"), value);
        let same = b.digests_identical;
        t.check(
            format!("cold build, {v}: same digest every run"),
            yes(same),
            "yes",
            same,
        );
        t.info(
            format!("cold build, {v}: peak RSS"),
            format!("{:.0} MiB", b.median_peak_rss_mib),
        );
    }
    let find_b = |n: &str| m.builds.iter().find(|b| b.variant == n);
    let find_s = |n: &str| m.serve.iter().find(|s| s.variant == n);
    if let (Some(before), Some(now)) = (find_b("fp32-before"), find_b("fp32")) {
        let what = "fp32 bundle: today's layout gives the same bytes as before";
        t.info(what, yes(before.digest == now.digest));
    }
    for i in &m.incremental {
        let what = format!(
            "{}: incremental after {} files changed == cold",
            i.variant, i.files_changed
        );
        let value = format!(
            "{} ({} embedded, {} reused)",
            yes(i.equal),
            i.embedded,
            i.reused
        );
        t.check(what, value, "yes", i.equal);
    }
    for s in &m.serve {
        let v = &s.variant;
        let (ready, model) = (s.median_start_ready_ms, s.median_model_load_ms);
        t.info(
            format!("serve, {v}: start to ready (model load)"),
            format!("{ready:.0} ms ({model:.0} ms)"),
        );
        for l in &s.levels {
            let (qps, p50, p99, cpu) = (
                l.throughput_qps,
                l.p50_ms,
                l.p99_ms,
                l.server_cpu_ms_per_query,
            );
            let value =
                format!("{qps:.0} q/s, p50 {p50:.1} ms, p99 {p99:.1} ms, {cpu:.2} ms CPU/query");
            t.info(
                format!("serve, {v}: {} clients, distinct queries", l.clients),
                value,
            );
        }
        let r = &s.repeated;
        let cache = match (r.cache_hits, r.cache_misses) {
            (Some(h), Some(m)) => format!(", cache hits {h} / misses {m}"),
            _ => String::new(),
        };
        let what = format!(
            "serve, {v}: 8 clients, {} repeated queries",
            r.distinct_queries
        );
        t.info(
            what,
            format!("{:.0} q/s, p50 {:.1} ms{cache}", r.throughput_qps, r.p50_ms),
        );
        let (rss, peak) = (s.rss_mib, s.peak_rss_mib);
        t.info(
            format!("serve, {v}: RSS now / peak"),
            format!("{rss:.0} MiB / {peak:.0} MiB"),
        );
    }
    // The targets are checked against the first baseline (the server and
    // builder as they were, when measured); the other is information.
    let baselines = variants.iter().map(|v| v.name).filter(|n| *n != "int8");
    for (k, name) in baselines.enumerate() {
        let mut ratio = |metric: String, r: f64, target: Option<(&str, bool)>| match target {
            Some((target, pass)) if k == 0 => t.check(metric, format!("{r:.2}x"), target, pass),
            _ => t.info(metric, format!("{r:.2}x")),
        };
        if let (Some(a), Some(b)) = (find_b("int8"), find_b(name)) {
            let speed = a.chunks_per_s / b.chunks_per_s;
            let target = format!(">= {MIN_BUILD_RATIO}x");
            ratio(
                format!("int8 / {name}: cold build chunks/s"),
                speed,
                Some((&target, speed >= MIN_BUILD_RATIO)),
            );
            let rss = a.median_peak_rss_mib / b.median_peak_rss_mib;
            ratio(
                format!("int8 / {name}: build peak RSS"),
                rss,
                Some(("<= 1x", rss <= 1.0)),
            );
        }
        if let (Some(a), Some(b)) = (find_s("int8"), find_s(name)) {
            let target = format!(">= {MIN_SERVE_RATIO_AT_8}x");
            for (la, lb) in a.levels.iter().zip(&b.levels) {
                let r = la.throughput_qps / lb.throughput_qps;
                let checked =
                    (la.clients == 8).then_some((target.as_str(), r >= MIN_SERVE_RATIO_AT_8));
                ratio(
                    format!("int8 / {name}: throughput at {} clients", la.clients),
                    r,
                    checked,
                );
            }
            let rss = a.rss_mib / b.rss_mib;
            ratio(
                format!("int8 / {name}: server RSS"),
                rss,
                Some(("<= 1x", rss <= 1.0)),
            );
            let start = a.median_start_ready_ms / b.median_start_ready_ms;
            ratio(format!("int8 / {name}: start to ready"), start, None);
        }
    }
    if let Some(l) = find_s("int8").and_then(|s| s.levels.iter().find(|l| l.clients == 8)) {
        let (p50, target) = (l.p50_ms, format!("<= {MAX_P50_AT_8_MS:.0} ms"));
        t.check(
            "int8: p50 at 8 clients",
            format!("{p50:.1} ms"),
            target,
            p50 <= MAX_P50_AT_8_MS,
        );
    }
    t.rows
}
