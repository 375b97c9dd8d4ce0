//! `shelf-bench build`: see [`Build`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_testkit::GitRepo;

use crate::fixtures::corpus::Corpus;
use crate::fixtures::process::children_peak_kib;
use crate::fixtures::rng::Rng;
use crate::fixtures::shelf::{BuildRun, ShelfBinary};
use crate::harness::stats::{median, median_by};
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, machine, table};

// Targets, in one place so the table and the docs agree.
const MAX_NON_EMBED_SHARE: f64 = 0.10;
const MIN_EMBED_RATIO: f64 = 0.95;
const MIN_COLD_OVER_INCREMENTAL: f64 = 50.0;
const MAX_INCREMENTAL_S: f64 = 5.0;
const MAX_PEAK_RSS_MIB: f64 = 1536.0;
/// Share of files the larger incremental commit touches.
const TOUCHED_SHARE: f64 = 0.05;
/// Stages of a build report, in pipeline order.
const STAGES: [&str; 5] = ["read", "chunk", "embed", "index", "pack"];

/// What a build costs, cold and incremental, on a generated repository with
/// the real binary.
///
/// Cold builds, the embedder alone on the same chunks, incremental builds
/// after a 1-file and a 5% commit, peak RSS, bundle size, against the
/// targets: embedding is most of a cold build (other stages < 10%), the
/// builder embeds at >= 95% of the bare model's speed, a one-file commit
/// rebuilds in < 5 s and >= 50x faster than cold, peak RSS < 1.5 GiB. Needs
/// `cargo build --bin shelf` and `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Build {
    /// Files in the generated repository.
    #[arg(long, default_value_t = 2000)]
    files: usize,
    /// Repetitions of each measured build (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Repetitions of the direct (in-process) embedding measurement. One
    /// by default: each run embeds the whole repository again (minutes on
    /// 2 cores), and its noise is other load, not sample size.
    #[arg(long, default_value_t = 1)]
    direct_runs: usize,
    /// Seed of the generated repository (same seed, same bytes).
    #[arg(long, default_value_t = 42)]
    seed: u64,
}

impl Benchmark for Build {
    const NAME: &'static str = "build";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        if self.files == 0 || self.runs == 0 || self.direct_runs == 0 {
            bail!("--files, --runs and --direct-runs must be at least 1");
        }
        let shelf = b.shelf()?;
        let mut repo = BenchRepo::generate(self, b);
        let measured = self.phases(b, shelf, &mut repo)?;
        let results = Results::new(self, b, shelf, &repo, measured);
        print!("{}", table::render(&results.rows));
        Ok(results)
    }
}

/// The measurements one summary is made of, in the order they are taken.
struct Measurements {
    /// Files asked for (`--files`).
    files: usize,
    cold: Vec<BuildRun>,
    peak_rss_kib_after_cold: u64,
    direct: Direct,
    /// Built from the cold bundle after a one-file commit.
    inc1: Vec<BuildRun>,
    /// Files the 5% commit changed.
    inc5_files_changed: usize,
    /// Built from the one-file bundle after the 5% commit.
    inc5: Vec<BuildRun>,
    peak_rss_kib_after_all: u64,
}

impl Build {
    /// Cold builds, the embedder alone on the same chunks, then incremental
    /// builds after a one-file commit (from the cold bundle) and after a
    /// commit touching 5% of files (from the previous commit's bundle, as
    /// CI would build one commit after another).
    fn phases(&self, b: &Bench, shelf: &ShelfBinary, repo: &mut BenchRepo) -> Result<Measurements> {
        let cold = self.phase(b, shelf, repo.git.path(), "cold", "cold", None)?;
        let peak_rss_kib_after_cold = children_peak_kib()?;

        b.say("direct embedding: loading the model and chunking the corpus");
        let direct = Direct::measure(&repo.corpus, self.direct_runs, b)?;

        let mut rng = Rng::new(self.seed ^ 0x1dc3_e3e7);
        repo.commit_one_file(&mut rng, b);
        let inc1 = self.phase(
            b,
            shelf,
            repo.git.path(),
            "incremental 1 file",
            "inc1",
            Some(&cold[0].report.bundle_path),
        )?;

        let inc5_files_changed = repo.commit_touched_share(&mut rng, b);
        let inc5 = self.phase(
            b,
            shelf,
            repo.git.path(),
            "incremental 5%",
            "inc5",
            Some(&inc1[0].report.bundle_path),
        )?;
        Ok(Measurements {
            files: self.files,
            cold,
            peak_rss_kib_after_cold,
            direct,
            inc1,
            inc5_files_changed,
            inc5,
            peak_rss_kib_after_all: children_peak_kib()?,
        })
    }

    /// Builds `repo` `--runs` times into `<work>/<dir>-<i>`, from
    /// `previous` when given, with a progress line per run.
    fn phase(
        &self,
        b: &Bench,
        shelf: &ShelfBinary,
        repo: &Path,
        name: &str,
        dir: &str,
        previous: Option<&Path>,
    ) -> Result<Vec<BuildRun>> {
        let runs = self.runs;
        let mut out = Vec::with_capacity(runs);
        for i in 0..runs {
            b.say(format!("{name} build {}/{runs}", i + 1));
            let r = shelf
                .build(repo, &b.work().join(format!("{dir}-{i}")), previous, &[])
                .with_context(|| format!("{name} build {}", i + 1))?;
            let stages: Vec<String> = STAGES
                .iter()
                .map(|s| format!("{s} {:.1}", r.stage_ms(s) / 1000.0))
                .collect();
            b.say(format!(
                "  {:.1} s wall, {} chunks ({} embedded, {} reused), stages s: {} (load {})",
                r.wall.as_secs_f64(),
                r.report.chunks.total,
                r.report.chunks.embedded,
                r.report.chunks.reused,
                stages.join(", "),
                r.loadavg_after.as_deref().unwrap_or("?")
            ));
            out.push(r);
        }
        Ok(out)
    }
}

/// The generated repository: its files as last written, the git work tree
/// and the commits made so far (base, one file, 5%).
struct BenchRepo {
    corpus: Corpus,
    git: GitRepo,
    commits: Vec<String>,
}

impl BenchRepo {
    /// Generates the corpus and commits it.
    fn generate(opts: &Build, b: &Bench) -> Self {
        b.say(format!(
            "generating {} files (seed {})",
            opts.files, opts.seed
        ));
        let corpus = Corpus::generate(opts.files, opts.seed);
        let git = corpus.write_repo();
        let base = git.commit("benchmark corpus");
        b.say(format!(
            "committed {} ({} bytes of text) in {}",
            base,
            corpus.text_bytes(),
            git.path().display()
        ));
        Self {
            corpus,
            git,
            commits: vec![base],
        }
    }

    /// Appends a definition to one random file and commits.
    fn commit_one_file(&mut self, rng: &mut Rng, b: &Bench) {
        let one = rng.below(self.corpus.files.len());
        self.corpus.edit(&self.git, one, rng, true);
        let commit = self.git.commit("append a definition to one file");
        let path = &self.corpus.files[one].path;
        b.say(format!("commit {commit}: appended a definition to {path}"));
        self.commits.push(commit);
    }

    /// Changes [`TOUCHED_SHARE`] of the files and commits; returns how many
    /// files changed.
    fn commit_touched_share(&mut self, rng: &mut Rng, b: &Bench) -> usize {
        let count = ((self.corpus.files.len() as f64) * TOUCHED_SHARE).ceil() as usize;
        let touched = self.corpus.touch(&self.git, count, rng);
        let commit = self.git.commit("touch 5% of files");
        b.say(format!("commit {commit}: changed {touched} files"));
        self.commits.push(commit);
        touched
    }
}

/// The embedder alone, in this process, on exactly the texts a build
/// embeds: the ceiling the builder's embed stage is compared against, so
/// overhead the builder adds around the model (queueing, copies, locking)
/// shows up as a ratio below 1.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    /// Chunks the files make, duplicates included.
    chunks_total: usize,
    /// Unique chunk texts embedded per run.
    chunks_unique: usize,
    /// Sum of the unique chunks' tokens.
    tokens_unique: u64,
    /// Milliseconds to embed every unique chunk, per run.
    runs_ms: Vec<f64>,
    /// Load averages after each run.
    loadavg_after: Vec<Option<String>>,
}

impl Direct {
    /// Chunks `corpus` as a build of it does, then embeds the unique chunks
    /// `runs` times, timing only the embedding.
    fn measure(corpus: &Corpus, runs: usize, b: &Bench) -> Result<Self> {
        let runtime = Runtime::locate(None)
            .context("locating the embedding runtime (run scripts/setup in the checkout)")?;
        let embedder = Embedder::load(&runtime, &EmbedderOptions::default())
            .context("loading the embedding model")?;
        let (unique, chunks_total) = corpus.unique_chunks(&embedder);
        let tokens_unique = unique.iter().map(|c| u64::from(c.tokens)).sum();
        let mut runs_ms = Vec::with_capacity(runs);
        let mut loadavg_after = Vec::with_capacity(runs);
        for run in 0..runs {
            let n = unique.len();
            b.say(format!(
                "direct embed run {}/{runs}: {n} unique chunks",
                run + 1
            ));
            let started = Instant::now();
            // One call over every text, as the builder's embed stage makes.
            let texts: Vec<&str> = unique.iter().map(|c| c.embed_text.as_str()).collect();
            let vectors = embedder
                .embed_documents(&texts)
                .context("embedding the chunks directly")?;
            // Keeps the optimiser from discarding the work; costs nothing.
            std::hint::black_box(vectors);
            runs_ms.push(started.elapsed().as_secs_f64() * 1000.0);
            loadavg_after.push(machine::loadavg());
            b.say(format!(
                "  {:.1} s, {:.1} chunks/s (load {})",
                started.elapsed().as_secs_f64(),
                n as f64 / started.elapsed().as_secs_f64(),
                loadavg_after.last().cloned().flatten().unwrap_or_default()
            ));
        }
        Ok(Self {
            chunks_total,
            chunks_unique: unique.len(),
            tokens_unique,
            runs_ms,
            loadavg_after,
        })
    }
}

/// The derived numbers (medians over runs), each named for the JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Summary {
    files_indexed: u64,
    text_bytes: u64,
    chunks_total: u64,
    chunks_per_file: f64,
    cold_embedded: u64,
    cold_wall_ms: f64,
    /// The fastest cold build: the least disturbed by other work.
    cold_wall_min_ms: f64,
    cold_total_ms: f64,
    cold_stage_ms: BTreeMap<String, f64>,
    /// Process start and model load: wall minus the report's total.
    cold_startup_ms: f64,
    cold_chunks_per_s: f64,
    /// (total - embed) / total, inside the build.
    cold_non_embed_share: f64,
    /// (wall - embed) / wall, startup included.
    cold_non_embed_share_wall: f64,
    cold_digest: String,
    cold_digests_identical: bool,
    builder_embed_chunks_per_s: f64,
    direct_embed_chunks_per_s: f64,
    /// Unique chunks the direct measurement embedded; should equal the
    /// cold builds' `chunks.embedded`.
    direct_chunks_unique: usize,
    direct_runs: usize,
    embed_ratio: f64,
    /// The ratio of the fastest builder run to the fastest direct run.
    embed_ratio_best: f64,
    inc1_wall_ms: f64,
    inc1_total_ms: f64,
    inc1_embedded: u64,
    inc1_reused: u64,
    inc1_digests_identical: bool,
    cold_over_inc1: f64,
    /// The same ratio inside the build (report totals), without startup.
    cold_over_inc1_total: f64,
    inc5_files_changed: usize,
    inc5_wall_ms: f64,
    inc5_total_ms: f64,
    inc5_embedded: u64,
    inc5_reused: u64,
    inc5_digests_identical: bool,
    /// Incremental wall time over the cold wall time scaled by the share of
    /// files changed: 1 means exactly proportional.
    inc5_over_proportional_wall: f64,
    /// The same inside the build (report totals), without startup.
    inc5_over_proportional_total: f64,
    peak_rss_mib: f64,
    bundle_bytes: u64,
    bundle_over_text: f64,
}

impl Summary {
    fn new(m: &Measurements) -> Self {
        let (cold, inc1, inc5) = (&m.cold[..], &m.inc1[..], &m.inc5[..]);
        let first = &cold[0].report;
        let total = |r: &BuildRun| r.stage_ms("total");
        let cold_wall_ms = median_by(cold, BuildRun::wall_ms);
        let cold_total_ms = median_by(cold, total);
        let mut cold_stage_ms: BTreeMap<String, f64> = STAGES
            .iter()
            .map(|s| (s.to_string(), median_by(cold, |r| r.stage_ms(s))))
            .collect();
        cold_stage_ms.insert("total".into(), cold_total_ms);
        let direct = &m.direct;
        let direct_ms = median(&direct.runs_ms);
        let embed_rate =
            |r: &BuildRun| r.report.chunks.embedded as f64 / (r.stage_ms("embed") / 1000.0);
        let builder_embed_chunks_per_s = median_by(cold, embed_rate);
        let best_builder = cold.iter().map(embed_rate).fold(0.0, f64::max);
        let best_direct_ms = direct.runs_ms.iter().copied().fold(f64::INFINITY, f64::min);
        let direct_embed_chunks_per_s = direct.chunks_unique as f64 / (direct_ms / 1000.0);
        let inc1_wall_ms = median_by(inc1, BuildRun::wall_ms);
        let inc5_wall_ms = median_by(inc5, BuildRun::wall_ms);
        let inc5_total_ms = median_by(inc5, total);
        let share = m.inc5_files_changed as f64 / m.files as f64;
        Self {
            files_indexed: first.files.indexed,
            text_bytes: first.files.text_bytes,
            chunks_total: first.chunks.total,
            cold_embedded: first.chunks.embedded,
            chunks_per_file: first.chunks.total as f64 / first.files.indexed.max(1) as f64,
            cold_wall_ms,
            cold_wall_min_ms: cold
                .iter()
                .map(BuildRun::wall_ms)
                .fold(f64::INFINITY, f64::min),
            cold_total_ms,
            cold_startup_ms: median_by(cold, |r| r.wall_ms() - total(r)),
            cold_chunks_per_s: median_by(cold, |r| {
                r.report.chunks.total as f64 / (total(r) / 1000.0)
            }),
            cold_non_embed_share: median_by(cold, |r| (total(r) - r.stage_ms("embed")) / total(r)),
            cold_non_embed_share_wall: median_by(cold, |r| {
                (r.wall_ms() - r.stage_ms("embed")) / r.wall_ms()
            }),
            cold_digest: first.digest.clone(),
            cold_digests_identical: BuildRun::same_digest(cold),
            builder_embed_chunks_per_s,
            direct_embed_chunks_per_s,
            direct_chunks_unique: direct.chunks_unique,
            direct_runs: direct.runs_ms.len(),
            embed_ratio: builder_embed_chunks_per_s / direct_embed_chunks_per_s,
            embed_ratio_best: best_builder
                / (direct.chunks_unique as f64 / (best_direct_ms / 1000.0)),
            inc1_wall_ms,
            inc1_total_ms: median_by(inc1, total),
            inc1_embedded: inc1[0].report.chunks.embedded,
            inc1_reused: inc1[0].report.chunks.reused,
            inc1_digests_identical: BuildRun::same_digest(inc1),
            cold_over_inc1: cold_wall_ms / inc1_wall_ms,
            cold_over_inc1_total: cold_total_ms / median_by(inc1, total),
            inc5_files_changed: m.inc5_files_changed,
            inc5_wall_ms,
            inc5_total_ms,
            inc5_embedded: inc5[0].report.chunks.embedded,
            inc5_reused: inc5[0].report.chunks.reused,
            inc5_digests_identical: BuildRun::same_digest(inc5),
            inc5_over_proportional_wall: inc5_wall_ms / (cold_wall_ms * share),
            inc5_over_proportional_total: inc5_total_ms / (cold_total_ms * share),
            peak_rss_mib: m.peak_rss_kib_after_cold as f64 / 1024.0,
            bundle_bytes: first.bundle_bytes,
            bundle_over_text: first.bundle_bytes as f64 / first.files.text_bytes.max(1) as f64,
            cold_stage_ms,
        }
    }

    /// The table, in sections: cold builds, embedding, the two incremental
    /// builds, resources.
    fn rows(&self, runs: usize) -> Vec<Row> {
        let secs = |ms: f64| format!("{:.2} s", ms / 1000.0);
        let percent = |x: f64| format!("{:.1}%", x * 100.0);
        let mut t = Table::default();
        // Whether a phase's runs all gave the same bundle (not checked with one run).
        let reproducible = |t: &mut Table, same: bool, what: &str| match runs {
            0 | 1 => t.info(format!("{what} digest reproducible"), "1 run: not checked"),
            _ => t.check(
                format!("{what} digest reproducible"),
                if same { "yes" } else { "NO" },
                format!("identical over {runs} runs"),
                same,
            ),
        };
        let mb = self.text_bytes as f64 / 1e6;
        t.info(
            "repository",
            format!("{} files, {mb:.1} MB text", self.files_indexed),
        );
        t.info(
            "chunks (per file)",
            format!("{} ({:.2})", self.chunks_total, self.chunks_per_file),
        );
        t.info("cold build, wall", secs(self.cold_wall_ms));
        t.info(
            "cold build, wall (fastest run)",
            secs(self.cold_wall_min_ms),
        );
        t.info("cold build, report total", secs(self.cold_total_ms));
        t.info("cold startup (wall - total)", secs(self.cold_startup_ms));
        for st in STAGES {
            let ms = self.cold_stage_ms.get(st).copied().unwrap_or(f64::NAN);
            t.info(format!("cold stage {st}"), secs(ms));
        }
        t.info(
            "cold chunks/s (total chunks / total)",
            format!("{:.1}", self.cold_chunks_per_s),
        );
        let share = self.cold_non_embed_share;
        let target = format!("< {}", percent(MAX_NON_EMBED_SHARE));
        t.check(
            "non-embedding share (total - embed)/total",
            percent(share),
            target,
            share < MAX_NON_EMBED_SHARE,
        );
        t.info(
            "non-embedding share incl. startup (wall)",
            percent(self.cold_non_embed_share_wall),
        );
        reproducible(&mut t, self.cold_digests_identical, "cold");
        t.info("cold digest", self.cold_digest.clone());

        t.info(
            "builder embed stage chunks/s",
            format!("{:.1}", self.builder_embed_chunks_per_s),
        );
        let (direct, unique, n) = (
            self.direct_embed_chunks_per_s,
            self.direct_chunks_unique,
            self.direct_runs,
        );
        let plural = if n == 1 { "" } else { "s" };
        t.info(
            "direct embedder chunks/s",
            format!("{direct:.1} ({unique} chunks, {n} run{plural})"),
        );
        let cold = self.cold_embedded;
        let what = "direct embeds what a cold build embeds";
        t.check(
            what,
            format!("{unique} vs {cold}"),
            "equal chunk counts",
            unique as u64 == cold,
        );
        let ratio = self.embed_ratio;
        let target = format!(">= {MIN_EMBED_RATIO}");
        t.check(
            "embed throughput ratio builder/direct",
            format!("{ratio:.3}"),
            target,
            ratio >= MIN_EMBED_RATIO,
        );
        t.info(
            "embed ratio, fastest runs",
            format!("{:.3}", self.embed_ratio_best),
        );

        let wall = self.inc1_wall_ms;
        let target = format!("< {MAX_INCREMENTAL_S} s");
        t.check(
            "incremental 1 file, wall",
            secs(wall),
            target,
            wall < MAX_INCREMENTAL_S * 1000.0,
        );
        t.info("incremental 1 file, report total", secs(self.inc1_total_ms));
        let (embedded, reused) = (self.inc1_embedded, self.inc1_reused);
        t.info(
            "incremental 1 file, embedded/reused",
            format!("{embedded}/{reused}"),
        );
        let over = self.cold_over_inc1;
        let target = format!(">= {MIN_COLD_OVER_INCREMENTAL}x");
        let pass = over >= MIN_COLD_OVER_INCREMENTAL;
        t.check(
            "cold/incremental 1 file (wall)",
            format!("{over:.1}x"),
            target,
            pass,
        );
        t.info(
            "cold/incremental 1 file (report total)",
            format!("{:.1}x", self.cold_over_inc1_total),
        );
        reproducible(&mut t, self.inc1_digests_identical, "incremental 1 file");

        let files = self.inc5_files_changed;
        t.info(
            format!("incremental {files} files (5%), wall"),
            secs(self.inc5_wall_ms),
        );
        t.info("incremental 5%, report total", secs(self.inc5_total_ms));
        let (embedded, reused) = (self.inc5_embedded, self.inc5_reused);
        t.info(
            "incremental 5%, embedded/reused",
            format!("{embedded}/{reused}"),
        );
        let (wall, total) = (
            self.inc5_over_proportional_wall,
            self.inc5_over_proportional_total,
        );
        t.info("incremental 5% / (5% of cold), wall", format!("{wall:.2}"));
        t.info(
            "incremental 5% / (5% of cold), total",
            format!("{total:.2}"),
        );
        reproducible(&mut t, self.inc5_digests_identical, "incremental 5%");

        let rss = self.peak_rss_mib;
        let target = format!("< {MAX_PEAK_RSS_MIB:.0} MiB");
        t.check(
            "peak RSS of cold builds",
            format!("{rss:.0} MiB"),
            target,
            rss < MAX_PEAK_RSS_MIB,
        );
        let (mb, over) = (self.bundle_bytes as f64 / 1e6, self.bundle_over_text);
        t.info(
            "bundle size (/ text size)",
            format!("{mb:.1} MB ({over:.2}x)"),
        );
        t.rows
    }
}

/// What `shelf-bench build` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    shelf_binary: BinaryInfo,
    params: Params,
    corpus: CorpusInfo,
    cold: PhaseOut,
    direct_embed: DirectOut,
    incremental_one_file: PhaseOut,
    incremental_five_percent: PhaseOut,
    peak_rss_kib_after_cold: u64,
    peak_rss_kib_after_all: u64,
    summary: Summary,
    rows: Vec<Row>,
}

impl Results {
    /// The summary, the table and the raw runs of one benchmark.
    fn new(
        opts: &Build,
        b: &Bench,
        shelf: &ShelfBinary,
        repo: &BenchRepo,
        m: Measurements,
    ) -> Self {
        let summary = Summary::new(&m);
        let rows = summary.rows(opts.runs);
        let (rust, python, markdown) = repo.corpus.count_by_kind();
        let files = repo.corpus.files.len();
        Self {
            command: b.command.clone(),
            machine: b.machine.clone(),
            shelf_binary: BinaryInfo {
                source: shelf.source.display().to_string(),
                bytes: shelf.bytes,
                modified_unix: shelf.modified_unix,
            },
            params: Params {
                files: opts.files,
                runs: opts.runs,
                direct_runs: opts.direct_runs,
                seed: opts.seed,
            },
            corpus: CorpusInfo {
                files,
                // After the edits; the cold builds saw the base commit's text.
                text_bytes_final: repo.corpus.text_bytes(),
                rust,
                python,
                markdown,
                commits: repo.commits.clone(),
            },
            cold: PhaseOut::new(&m.cold, None, files),
            direct_embed: DirectOut {
                median_ms: median(&m.direct.runs_ms),
                chunks_per_s: summary.direct_embed_chunks_per_s,
                note: "in-process Embedder::embed_documents over the unique chunks of the base \
                       commit in one call, longest first as the builder orders them; only embedding \
                       is timed; median over --direct-runs"
                    .into(),
                measured: m.direct,
            },
            incremental_one_file: PhaseOut::new(&m.inc1, Some(&m.cold[0].report.bundle_path), 1),
            incremental_five_percent: PhaseOut::new(
                &m.inc5,
                Some(&m.inc1[0].report.bundle_path),
                m.inc5_files_changed,
            ),
            peak_rss_kib_after_cold: m.peak_rss_kib_after_cold,
            peak_rss_kib_after_all: m.peak_rss_kib_after_all,
            summary,
            rows,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryInfo {
    source: String,
    bytes: u64,
    modified_unix: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    files: usize,
    runs: usize,
    direct_runs: usize,
    seed: u64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusInfo {
    files: usize,
    text_bytes_final: u64,
    rust: usize,
    python: usize,
    markdown: usize,
    /// Base, one-file and 5% commits.
    commits: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DirectOut {
    median_ms: f64,
    chunks_per_s: f64,
    note: String,
    measured: Direct,
}

/// One phase's raw runs and medians.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhaseOut {
    previous: Option<String>,
    files_changed: usize,
    median_wall_ms: f64,
    median_stage_ms: BTreeMap<String, f64>,
    digests_identical: bool,
    runs: Vec<RunOut>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunOut {
    wall_ms: f64,
    loadavg_after: Option<String>,
    report: serde_json::Value,
}

impl PhaseOut {
    fn new(runs: &[BuildRun], previous: Option<&Path>, files_changed: usize) -> Self {
        Self {
            previous: previous.map(|p| p.display().to_string()),
            files_changed,
            median_wall_ms: median_by(runs, BuildRun::wall_ms),
            median_stage_ms: STAGES
                .iter()
                .chain(&["total"])
                .map(|s| (s.to_string(), median_by(runs, |r| r.stage_ms(s))))
                .collect(),
            digests_identical: BuildRun::same_digest(runs),
            runs: runs
                .iter()
                .map(|r| RunOut {
                    wall_ms: r.wall_ms(),
                    loadavg_after: r.loadavg_after.clone(),
                    report: r.raw.clone(),
                })
                .collect(),
        }
    }
}
