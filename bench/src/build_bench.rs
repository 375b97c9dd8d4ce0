//! `shelf-bench build`: what a build costs, cold and incremental, measured
//! on a generated repository with the real binary, against the targets:
//! embedding is most of a cold build (other stages < 10%), the builder
//! embeds at >= 95% of the bare model's speed, a one-file commit rebuilds
//! in < 5 s and >= 50x faster than cold, peak RSS < 1.5 GiB.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shelf_testkit::GitRepo;

use crate::corpus::{self, Corpus};
use crate::direct::{self, Direct};
use crate::machine::Machine;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::rss;
use crate::shelf_cli::{BuildRun, ShelfBinary};
use crate::stats::{median, median_by};
use crate::table::{self, Row};

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

/// Options of one benchmark run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files in the generated repository.
    pub files: usize,
    /// Repetitions of each measured build.
    pub runs: usize,
    /// Repetitions of the direct embedding measurement.
    pub direct_runs: usize,
    /// Corpus seed.
    pub seed: u64,
    /// JSON results path.
    pub json_out: PathBuf,
    /// The command line, recorded with the results.
    pub command: Vec<String>,
}

/// Runs the benchmark, prints the table and writes the JSON.
pub fn run(opts: &Options) -> Result<()> {
    if opts.files == 0 || opts.runs == 0 || opts.direct_runs == 0 {
        bail!("--files, --runs and --direct-runs must be at least 1");
    }
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-")
        .tempdir()
        .context("creating a temporary directory for bundles")?;
    let shelf = ShelfBinary::prepare(work.path())?;
    let machine = Machine::current();
    p.say(&format!(
        "{} cores, {}; shelf binary {}",
        machine.nproc,
        machine.cpu_model,
        shelf.source.display()
    ));
    warn_if_busy(&p, &machine);

    let mut repo = BenchRepo::generate(opts, &p);
    let builds = Builds {
        p: &p,
        shelf: &shelf,
        work: work.path(),
        runs: opts.runs,
    };
    let measured = measure(opts, &builds, &mut repo)?;
    let results = Results::new(opts, machine, &shelf, &repo, measured);
    print!("{}", table::render(&results.rows));
    write_json(&opts.json_out, &results)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
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

/// Cold builds, the embedder alone on the same chunks, then incremental
/// builds after a one-file commit (from the cold bundle) and after a
/// commit touching 5% of files (from the previous commit's bundle, as CI
/// would build one commit after another).
fn measure(opts: &Options, builds: &Builds, repo: &mut BenchRepo) -> Result<Measurements> {
    let p = builds.p;
    let cold = builds.phase("cold", "cold", repo.git.path(), None)?;
    let peak_rss_kib_after_cold = rss::children_peak_kib()?;

    p.say("direct embedding: loading the model and chunking the corpus");
    let direct = direct::measure(&repo.corpus.files, opts.direct_runs, |m| p.say(m))?;

    let mut rng = Rng::new(opts.seed ^ 0x1dc3_e3e7);
    repo.commit_one_file(&mut rng, p);
    let inc1 = builds.phase(
        "incremental 1 file",
        "inc1",
        repo.git.path(),
        Some(&cold[0].report.bundle_path),
    )?;

    let inc5_files_changed = repo.commit_touched_share(&mut rng, p);
    let inc5 = builds.phase(
        "incremental 5%",
        "inc5",
        repo.git.path(),
        Some(&inc1[0].report.bundle_path),
    )?;
    let peak_rss_kib_after_all = rss::children_peak_kib()?;
    Ok(Measurements {
        files: opts.files,
        cold,
        peak_rss_kib_after_cold,
        direct,
        inc1,
        inc5_files_changed,
        inc5,
        peak_rss_kib_after_all,
    })
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
    fn generate(opts: &Options, p: &Progress) -> Self {
        p.say(&format!(
            "generating {} files (seed {})",
            opts.files, opts.seed
        ));
        let corpus = Corpus::generate(opts.files, opts.seed);
        let git = write_corpus(&corpus);
        let base = git.commit("benchmark corpus");
        p.say(&format!(
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
    fn commit_one_file(&mut self, rng: &mut Rng, p: &Progress) {
        let one = rng.below(self.corpus.files.len());
        edit(&self.git, &mut self.corpus, one, rng, true);
        let commit = self.git.commit("append a definition to one file");
        p.say(&format!(
            "commit {commit}: appended a definition to {}",
            self.corpus.files[one].path
        ));
        self.commits.push(commit);
    }

    /// Changes [`TOUCHED_SHARE`] of the files and commits; returns how many
    /// files changed.
    fn commit_touched_share(&mut self, rng: &mut Rng, p: &Progress) -> usize {
        let count = ((self.corpus.files.len() as f64) * TOUCHED_SHARE).ceil() as usize;
        let touched = touch_files(&self.git, &mut self.corpus, count, rng);
        let commit = self.git.commit("touch 5% of files");
        p.say(&format!("commit {commit}: changed {touched} files"));
        self.commits.push(commit);
        touched
    }
}

/// Writes every file of `corpus` into a new repository, uncommitted.
/// GitRepo is the tests' fixture: it panics (with git's message) rather
/// than returning errors, which is acceptable for a benchmark's setup.
pub(crate) fn write_corpus(corpus: &Corpus) -> GitRepo {
    let repo = GitRepo::new();
    for f in &corpus.files {
        repo.write(&f.path, &f.text);
    }
    repo
}

/// Says so when other work is already using the cores: embedding takes all
/// of them, so a concurrent compile or build slows it in proportion, and
/// the medians then measure the machine, not shelf.
pub(crate) fn warn_if_busy(p: &Progress, machine: &Machine) {
    let one_minute = machine
        .loadavg_at_start
        .as_deref()
        .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
    if let Some(load) = one_minute
        && load > 0.75 * machine.nproc as f64
    {
        p.say(&format!(
            "warning: load average {load:.2} on {} cores before starting: \
             results will be slowed by other work",
            machine.nproc
        ));
    }
}

/// How every measured build is run: `runs` times each, into the scratch
/// directory, with a progress line per run.
struct Builds<'a> {
    p: &'a Progress,
    shelf: &'a ShelfBinary,
    work: &'a Path,
    runs: usize,
}

impl Builds<'_> {
    /// Builds `repo` `runs` times into `<work>/<dir>-<i>`, from `previous`
    /// when given.
    fn phase(
        &self,
        name: &str,
        dir: &str,
        repo: &Path,
        previous: Option<&Path>,
    ) -> Result<Vec<BuildRun>> {
        let runs = self.runs;
        let mut out = Vec::with_capacity(runs);
        for i in 0..runs {
            self.p.say(&format!("{name} build {}/{runs}", i + 1));
            let r = self
                .shelf
                .build(repo, &self.work.join(format!("{dir}-{i}")), previous)
                .with_context(|| format!("{name} build {}", i + 1))?;
            let stages: Vec<String> = STAGES
                .iter()
                .map(|s| format!("{s} {:.1}", r.stage_ms(s) / 1000.0))
                .collect();
            self.p.say(&format!(
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

/// Changes file `i` (append a definition, or insert a line in the middle)
/// in the corpus and the work tree.
pub(crate) fn edit(repo: &GitRepo, corpus: &mut Corpus, i: usize, rng: &mut Rng, append: bool) {
    let f = &mut corpus.files[i];
    f.text = if append {
        corpus::append_definition(&f.path, &f.text, rng)
    } else {
        corpus::edit_middle(&f.path, &f.text, rng)
    };
    repo.write(&f.path, &f.text);
}

/// Changes `count` distinct random files in the corpus and the work tree
/// (half get a definition appended, half a line inserted in the middle),
/// uncommitted; returns how many changed.
pub(crate) fn touch_files(
    repo: &GitRepo,
    corpus: &mut Corpus,
    count: usize,
    rng: &mut Rng,
) -> usize {
    let touched = pick_distinct(corpus.files.len(), count, rng);
    for (j, &i) in touched.iter().enumerate() {
        edit(repo, corpus, i, rng, j % 2 == 0);
    }
    touched.len()
}

/// `k` distinct indices below `n`, by a partial Fisher-Yates shuffle.
pub(crate) fn pick_distinct(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    let k = k.min(n);
    for i in 0..k {
        let j = i + rng.below(n - i);
        all.swap(i, j);
    }
    all.truncate(k);
    all
}

/// Whether every run produced the same bundle.
fn same_digest(runs: &[BuildRun]) -> bool {
    runs.windows(2)
        .all(|w| w[0].report.digest == w[1].report.digest)
}

/// The derived numbers (medians over runs), each named for the JSON.
#[derive(Debug, Clone, Serialize)]
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
            cold_digests_identical: same_digest(cold),
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
            inc1_digests_identical: same_digest(inc1),
            cold_over_inc1: cold_wall_ms / inc1_wall_ms,
            cold_over_inc1_total: cold_total_ms / median_by(inc1, total),
            inc5_files_changed: m.inc5_files_changed,
            inc5_wall_ms,
            inc5_total_ms,
            inc5_embedded: inc5[0].report.chunks.embedded,
            inc5_reused: inc5[0].report.chunks.reused,
            inc5_digests_identical: same_digest(inc5),
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
        let mut rows = self.cold_rows(runs);
        rows.extend(self.embed_rows());
        rows.extend(self.one_file_rows(runs));
        rows.extend(self.five_percent_rows(runs));
        rows.extend(self.resource_rows());
        rows
    }

    fn cold_rows(&self, runs: usize) -> Vec<Row> {
        let stage = |k: &str| self.cold_stage_ms.get(k).copied().unwrap_or(f64::NAN);
        let mut rows = vec![
            Row::info(
                "repository",
                format!(
                    "{} files, {:.1} MB text",
                    self.files_indexed,
                    self.text_bytes as f64 / 1e6
                ),
            ),
            Row::info(
                "chunks (per file)",
                format!("{} ({:.2})", self.chunks_total, self.chunks_per_file),
            ),
            Row::info("cold build, wall", secs(self.cold_wall_ms)),
            Row::info(
                "cold build, wall (fastest run)",
                secs(self.cold_wall_min_ms),
            ),
            Row::info("cold build, report total", secs(self.cold_total_ms)),
            Row::info("cold startup (wall - total)", secs(self.cold_startup_ms)),
        ];
        for st in STAGES {
            rows.push(Row::info(format!("cold stage {st}"), secs(stage(st))));
        }
        rows.extend([
            Row::info(
                "cold chunks/s (total chunks / total)",
                format!("{:.1}", self.cold_chunks_per_s),
            ),
            Row::check(
                "non-embedding share (total - embed)/total",
                percent(self.cold_non_embed_share),
                format!("< {}", percent(MAX_NON_EMBED_SHARE)),
                self.cold_non_embed_share < MAX_NON_EMBED_SHARE,
            ),
            Row::info(
                "non-embedding share incl. startup (wall)",
                percent(self.cold_non_embed_share_wall),
            ),
            reproducible(self.cold_digests_identical, "cold", runs),
            Row::info("cold digest", self.cold_digest.clone()),
        ]);
        rows
    }

    fn embed_rows(&self) -> Vec<Row> {
        vec![
            Row::info(
                "builder embed stage chunks/s",
                format!("{:.1}", self.builder_embed_chunks_per_s),
            ),
            Row::info(
                "direct embedder chunks/s",
                format!(
                    "{:.1} ({} chunks, {} run{})",
                    self.direct_embed_chunks_per_s,
                    self.direct_chunks_unique,
                    self.direct_runs,
                    if self.direct_runs == 1 { "" } else { "s" }
                ),
            ),
            Row::check(
                "direct embeds what a cold build embeds",
                format!("{} vs {}", self.direct_chunks_unique, self.cold_embedded),
                "equal chunk counts",
                self.direct_chunks_unique as u64 == self.cold_embedded,
            ),
            Row::check(
                "embed throughput ratio builder/direct",
                format!("{:.3}", self.embed_ratio),
                format!(">= {MIN_EMBED_RATIO}"),
                self.embed_ratio >= MIN_EMBED_RATIO,
            ),
            Row::info(
                "embed ratio, fastest runs",
                format!("{:.3}", self.embed_ratio_best),
            ),
        ]
    }

    fn one_file_rows(&self, runs: usize) -> Vec<Row> {
        vec![
            Row::check(
                "incremental 1 file, wall",
                secs(self.inc1_wall_ms),
                format!("< {MAX_INCREMENTAL_S} s"),
                self.inc1_wall_ms < MAX_INCREMENTAL_S * 1000.0,
            ),
            Row::info("incremental 1 file, report total", secs(self.inc1_total_ms)),
            Row::info(
                "incremental 1 file, embedded/reused",
                format!("{}/{}", self.inc1_embedded, self.inc1_reused),
            ),
            Row::check(
                "cold/incremental 1 file (wall)",
                format!("{:.1}x", self.cold_over_inc1),
                format!(">= {MIN_COLD_OVER_INCREMENTAL}x"),
                self.cold_over_inc1 >= MIN_COLD_OVER_INCREMENTAL,
            ),
            Row::info(
                "cold/incremental 1 file (report total)",
                format!("{:.1}x", self.cold_over_inc1_total),
            ),
            reproducible(self.inc1_digests_identical, "incremental 1 file", runs),
        ]
    }

    fn five_percent_rows(&self, runs: usize) -> Vec<Row> {
        vec![
            Row::info(
                format!("incremental {} files (5%), wall", self.inc5_files_changed),
                secs(self.inc5_wall_ms),
            ),
            Row::info("incremental 5%, report total", secs(self.inc5_total_ms)),
            Row::info(
                "incremental 5%, embedded/reused",
                format!("{}/{}", self.inc5_embedded, self.inc5_reused),
            ),
            Row::info(
                "incremental 5% / (5% of cold), wall",
                format!("{:.2}", self.inc5_over_proportional_wall),
            ),
            Row::info(
                "incremental 5% / (5% of cold), total",
                format!("{:.2}", self.inc5_over_proportional_total),
            ),
            reproducible(self.inc5_digests_identical, "incremental 5%", runs),
        ]
    }

    fn resource_rows(&self) -> Vec<Row> {
        vec![
            Row::check(
                "peak RSS of cold builds",
                format!("{:.0} MiB", self.peak_rss_mib),
                format!("< {MAX_PEAK_RSS_MIB:.0} MiB"),
                self.peak_rss_mib < MAX_PEAK_RSS_MIB,
            ),
            Row::info(
                "bundle size (/ text size)",
                format!(
                    "{:.1} MB ({:.2}x)",
                    self.bundle_bytes as f64 / 1e6,
                    self.bundle_over_text
                ),
            ),
        ]
    }
}

/// Milliseconds as seconds, for the table.
fn secs(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// A share as a percentage, for the table.
fn percent(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// Whether a phase's runs all gave the same bundle (not checked with one run).
fn reproducible(same: bool, what: &str, runs: usize) -> Row {
    if runs < 2 {
        Row::info(format!("{what} digest reproducible"), "1 run: not checked")
    } else {
        Row::check(
            format!("{what} digest reproducible"),
            if same { "yes" } else { "NO" },
            format!("identical over {runs} runs"),
            same,
        )
    }
}

#[derive(Debug, Serialize)]
struct Results {
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
        opts: &Options,
        machine: Machine,
        shelf: &ShelfBinary,
        repo: &BenchRepo,
        m: Measurements,
    ) -> Self {
        let summary = Summary::new(&m);
        let rows = summary.rows(opts.runs);
        let (rust, python, markdown) = repo.corpus.count_by_kind();
        let files = repo.corpus.files.len();
        Self {
            command: opts.command.clone(),
            machine,
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
                       is timed; median over --direct-runs",
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

#[derive(Debug, Serialize)]
struct BinaryInfo {
    source: String,
    bytes: u64,
    modified_unix: u64,
}

#[derive(Debug, Serialize)]
struct Params {
    files: usize,
    runs: usize,
    direct_runs: usize,
    seed: u64,
}

#[derive(Debug, Serialize)]
struct CorpusInfo {
    files: usize,
    text_bytes_final: u64,
    rust: usize,
    python: usize,
    markdown: usize,
    /// Base, one-file and 5% commits.
    commits: Vec<String>,
}

#[derive(Debug, Serialize)]
struct DirectOut {
    median_ms: f64,
    chunks_per_s: f64,
    note: &'static str,
    measured: Direct,
}

/// One phase's raw runs and medians.
#[derive(Debug, Serialize)]
struct PhaseOut {
    previous: Option<String>,
    files_changed: usize,
    median_wall_ms: f64,
    median_stage_ms: BTreeMap<String, f64>,
    digests_identical: bool,
    runs: Vec<RunOut>,
}

#[derive(Debug, Serialize)]
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
            digests_identical: same_digest(runs),
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

fn write_json(path: &Path, results: &Results) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(results).context("serialising results")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
