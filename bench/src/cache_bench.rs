//! `shelf-bench cache`: the store's embedding cache and sharded builds, on a
//! generated repository with the real binary and a local store. Measured,
//! one after another on this machine:
//!
//! 1. a cold single build (no store): the baseline;
//! 2. `--shard I/N` for every I, each against the store the previous shards
//!    filled (as matrix jobs that start at different times would), then the
//!    assemble build (`--store`): its digest must be the cold build's and it
//!    must embed nothing. The projected wall time with N runners is the
//!    slowest shard plus the assemble build: each shard's wall here is what
//!    it costs alone on a runner like this one;
//! 3. new-branch builds with the cache warm (no previous bundle, only the
//!    store): one whose branch changed 1% of the files, one with no change
//!    (target: under 10% of the cold build). Each run starts from a copy of
//!    the store as the sharded build left it, so every run embeds the same.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use shelf_testkit::GitRepo;

use crate::build_bench::{edit, pick_distinct, warn_if_busy};
use crate::corpus::Corpus;
use crate::machine::Machine;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::shelf_cli::{BuildRun, REPOSITORY_NAME, ShelfBinary, workspace_root};
use crate::stats::{median, median_by};
use crate::table::{self, Row};

/// A warm new-branch build must take less than this share of a cold one.
const MAX_WARM_OVER_COLD: f64 = 0.10;
/// Share of files the new branch changes.
const BRANCH_SHARE: f64 = 0.01;

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// Files in the generated repository.
    pub files: usize,
    /// Corpus seed.
    pub seed: u64,
    /// Shards of the sharded build.
    pub shards: u32,
    /// Runs of each warm build (the median is reported).
    pub runs: usize,
    /// JSON results path.
    pub json_out: PathBuf,
    /// The command line, recorded with the results.
    pub command: Vec<String>,
}

/// One timed `shelf build --shard`.
#[derive(Debug, Clone, Serialize)]
struct ShardRun {
    shard: String,
    wall_ms: f64,
    loadavg_after: Option<String>,
    report: serde_json::Value,
}

impl ShardRun {
    fn chunks(&self, field: &str) -> u64 {
        self.report["chunks"][field].as_u64().unwrap_or(0)
    }

    fn stage_ms(&self, stage: &str) -> f64 {
        self.report["timings_ms"][stage].as_f64().unwrap_or(0.0)
    }
}

/// Runs the benchmark, prints the table and writes the JSON.
pub fn run(opts: &Options) -> Result<()> {
    if opts.files == 0 || opts.shards == 0 || opts.runs == 0 {
        bail!("--files, --shards and --runs must be at least 1");
    }
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-cache-")
        .tempdir()
        .context("creating a temporary directory")?;
    let shelf = ShelfBinary::prepare(work.path())?;
    let machine = Machine::current();
    p.say(&format!(
        "{} cores, {}; shelf binary {}",
        machine.nproc,
        machine.cpu_model,
        shelf.source.display()
    ));
    warn_if_busy(&p, &machine);

    p.say(&format!(
        "generating {} files (seed {})",
        opts.files, opts.seed
    ));
    let mut corpus = Corpus::generate(opts.files, opts.seed);
    let repo = GitRepo::new();
    for f in &corpus.files {
        repo.write(&f.path, &f.text);
    }
    let base_commit = repo.commit("benchmark corpus");
    p.say(&format!(
        "committed {base_commit} ({} bytes of text)",
        corpus.text_bytes()
    ));

    // 1. The cold single build.
    p.say("cold single build (no store)");
    let cold = shelf.build(repo.path(), &work.path().join("cold"), None)?;
    say_build(&p, &cold);

    // 2. Shards one after another, then the assemble build.
    let store = work.path().join("store");
    let store_arg = store.display().to_string();
    let mut shards = Vec::new();
    for i in 1..=opts.shards {
        let shard = format!("{i}/{}", opts.shards);
        p.say(&format!("shard {shard}"));
        let r = run_shard(&shelf, repo.path(), &shard, &store_arg)?;
        p.say(&format!(
            "  {:.1} s wall: {} distinct, {} missing, {} embedded (stages s: read {:.1}, chunk {:.1}, embed {:.1}, push {:.1})",
            r.wall_ms / 1000.0,
            r.chunks("unique"),
            r.chunks("missing"),
            r.chunks("embedded"),
            r.stage_ms("read") / 1000.0,
            r.stage_ms("chunk") / 1000.0,
            r.stage_ms("embed") / 1000.0,
            r.stage_ms("push") / 1000.0,
        ));
        shards.push(r);
    }
    p.say("assemble build (--store)");
    let store_flag = ["--store".to_string(), store_arg.clone()];
    let assemble = shelf.build_with(
        repo.path(),
        "HEAD",
        &work.path().join("assemble"),
        None,
        REPOSITORY_NAME,
        &store_flag,
    )?;
    say_build(&p, &assemble);
    let snapshot = work.path().join("store-after-shards");
    copy_dir(&store, &snapshot)?;
    let (pack_count, pack_bytes) = packs_in(&snapshot)?;

    // 3. New branches, with the cache the sharded build left.
    let main_head = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["checkout", "-q", "-b", "feature/unchanged"]);
    repo.git(&[
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "a branch with no change",
    ]);
    let unchanged = warm_runs(
        &p,
        &shelf,
        &repo,
        opts.runs,
        &snapshot,
        work.path(),
        "unchanged",
    )?;
    repo.git(&["checkout", "-q", &main_head]);
    repo.git(&["checkout", "-q", "-b", "feature/one-percent"]);
    let mut rng = Rng::new(opts.seed ^ 0xcac4e);
    let touched = pick_distinct(
        corpus.files.len(),
        ((corpus.files.len() as f64) * BRANCH_SHARE).ceil() as usize,
        &mut rng,
    );
    for (j, &i) in touched.iter().enumerate() {
        edit(&repo, &mut corpus, i, &mut rng, j % 2 == 0);
    }
    let branch_commit = repo.commit("change 1% of files");
    p.say(&format!(
        "branch commit {branch_commit}: changed {} files",
        touched.len()
    ));
    let changed = warm_runs(
        &p,
        &shelf,
        &repo,
        opts.runs,
        &snapshot,
        work.path(),
        "one-percent",
    )?;

    let summary = Summary::new(
        &cold,
        &shards,
        &assemble,
        &unchanged,
        &changed,
        touched.len(),
        (pack_count, pack_bytes),
    );
    let rows = summary.rows(opts.shards);
    print!("{}", table::render(&rows));
    let results = Results {
        command: opts.command.clone(),
        machine,
        params: Params {
            files: opts.files,
            seed: opts.seed,
            shards: opts.shards,
            runs: opts.runs,
            branch_share: BRANCH_SHARE,
        },
        commits: vec![base_commit, branch_commit],
        cold: cold.raw.clone(),
        cold_wall_ms: cold.wall_ms(),
        shards,
        assemble: assemble.raw.clone(),
        assemble_wall_ms: assemble.wall_ms(),
        warm_unchanged: unchanged.iter().map(Warm::from).collect(),
        warm_one_percent: changed.iter().map(Warm::from).collect(),
        summary,
        rows,
    };
    write_json(&opts.json_out, &results)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
}

fn say_build(p: &Progress, r: &BuildRun) {
    p.say(&format!(
        "  {:.1} s wall, {} chunks ({} embedded, {} from the cache), digest {}",
        r.wall.as_secs_f64(),
        r.report.chunks.total,
        r.report.chunks.embedded,
        r.raw["chunks"]["cached"].as_u64().unwrap_or(0),
        r.report.digest
    ));
}

/// `shelf build --shard SHARD --store STORE --json`, timed.
fn run_shard(shelf: &ShelfBinary, repo: &Path, shard: &str, store: &str) -> Result<ShardRun> {
    let started = Instant::now();
    let output = Command::new(shelf.path())
        .args(["build", "--json", "--shard", shard, "--store", store])
        .arg("--repo")
        .arg(repo)
        .args(["--name", REPOSITORY_NAME])
        .current_dir(workspace_root())
        .env("SHELF_LOG", "warn")
        .output()
        .with_context(|| format!("running {}", shelf.path().display()))?;
    let wall = started.elapsed();
    if !output.status.success() {
        bail!(
            "shelf build --shard {shard} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("shelf build --shard --json printed no JSON report")?;
    Ok(ShardRun {
        shard: shard.to_string(),
        wall_ms: ms(wall),
        loadavg_after: crate::machine::loadavg(),
        report,
    })
}

/// `runs` builds of the checked-out branch with only the store (each from
/// a fresh copy of `snapshot`, so each finds the same cache).
fn warm_runs(
    p: &Progress,
    shelf: &ShelfBinary,
    repo: &GitRepo,
    runs: usize,
    snapshot: &Path,
    work: &Path,
    name: &str,
) -> Result<Vec<BuildRun>> {
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let store = work.join(format!("store-{name}-{i}"));
        copy_dir(snapshot, &store)?;
        p.say(&format!(
            "new branch ({name}), warm cache: build {}/{runs}",
            i + 1
        ));
        let r = shelf.build_with(
            repo.path(),
            "HEAD",
            &work.join(format!("warm-{name}-{i}")),
            None,
            REPOSITORY_NAME,
            &["--store".to_string(), store.display().to_string()],
        )?;
        say_build(p, &r);
        std::fs::remove_dir_all(&store).ok();
        out.push(r);
    }
    Ok(out)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Copies a local store (files and directories only).
fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Packs in a local store, and their bytes.
fn packs_in(store: &Path) -> Result<(usize, u64)> {
    let (mut count, mut bytes) = (0, 0);
    let cache = store.join("cache");
    for model in
        std::fs::read_dir(&cache).with_context(|| format!("reading {}", cache.display()))?
    {
        let packs = model?.path().join("packs");
        for f in
            std::fs::read_dir(&packs).with_context(|| format!("reading {}", packs.display()))?
        {
            let f = f?;
            if f.file_name().to_string_lossy().ends_with(".pack") {
                count += 1;
                bytes += f.metadata()?.len();
            }
        }
    }
    Ok((count, bytes))
}

#[derive(Debug, Clone, Serialize)]
struct Summary {
    chunks_total: u64,
    chunks_unique: u64,
    cold_wall_ms: f64,
    cold_embedded: u64,
    cold_embed_chunks_per_s: f64,
    cold_digest: String,
    shard_wall_ms: Vec<f64>,
    shard_embedded: Vec<u64>,
    shards_embedded_total: u64,
    /// Largest share over the smallest.
    shard_balance: f64,
    slowest_shard_ms: f64,
    assemble_wall_ms: f64,
    assemble_embedded: u64,
    assemble_cached: u64,
    assemble_cache_ms: f64,
    assemble_digest_equals_cold: bool,
    /// Slowest shard + assemble: the wall time with one runner per shard.
    projected_wall_ms: f64,
    projected_speedup: f64,
    /// Every shard and the assemble build, one after another.
    sequential_wall_ms: f64,
    pack_count: usize,
    pack_bytes: u64,
    warm_unchanged_wall_ms: f64,
    warm_unchanged_embedded: u64,
    warm_unchanged_over_cold: f64,
    warm_one_percent_files_changed: usize,
    warm_one_percent_wall_ms: f64,
    warm_one_percent_embedded: u64,
    warm_one_percent_cached: u64,
    warm_one_percent_cache_ms: f64,
    warm_one_percent_stage_ms: std::collections::BTreeMap<String, f64>,
    warm_one_percent_over_cold: f64,
}

impl Summary {
    fn new(
        cold: &BuildRun,
        shards: &[ShardRun],
        assemble: &BuildRun,
        unchanged: &[BuildRun],
        changed: &[BuildRun],
        files_changed: usize,
        (pack_count, pack_bytes): (usize, u64),
    ) -> Self {
        let shard_embedded: Vec<u64> = shards.iter().map(|s| s.chunks("embedded")).collect();
        let slowest_shard_ms = shards.iter().map(|s| s.wall_ms).fold(0.0, f64::max);
        let projected_wall_ms = slowest_shard_ms + assemble.wall_ms();
        let cached = |r: &BuildRun| r.raw["chunks"]["cached"].as_u64().unwrap_or(0);
        let cache_ms = |r: &BuildRun| r.raw["timings_ms"]["cache"].as_f64().unwrap_or(0.0);
        let warm_unchanged_wall_ms = median_by(unchanged, BuildRun::wall_ms);
        let warm_one_percent_wall_ms = median_by(changed, BuildRun::wall_ms);
        Self {
            chunks_total: cold.report.chunks.total,
            chunks_unique: cold.report.chunks.embedded,
            cold_wall_ms: cold.wall_ms(),
            cold_embedded: cold.report.chunks.embedded,
            cold_embed_chunks_per_s: cold.report.chunks.embedded as f64
                / (cold.stage_ms("embed") / 1000.0),
            cold_digest: cold.report.digest.clone(),
            shard_wall_ms: shards.iter().map(|s| s.wall_ms).collect(),
            shards_embedded_total: shard_embedded.iter().sum(),
            shard_balance: *shard_embedded.iter().max().unwrap_or(&0) as f64
                / (*shard_embedded.iter().min().unwrap_or(&0)).max(1) as f64,
            shard_embedded,
            slowest_shard_ms,
            assemble_wall_ms: assemble.wall_ms(),
            assemble_embedded: assemble.report.chunks.embedded,
            assemble_cached: cached(assemble),
            assemble_cache_ms: cache_ms(assemble),
            assemble_digest_equals_cold: assemble.report.digest == cold.report.digest,
            projected_wall_ms,
            projected_speedup: cold.wall_ms() / projected_wall_ms,
            sequential_wall_ms: shards.iter().map(|s| s.wall_ms).sum::<f64>() + assemble.wall_ms(),
            pack_count,
            pack_bytes,
            warm_unchanged_wall_ms,
            warm_unchanged_embedded: unchanged[0].report.chunks.embedded,
            warm_unchanged_over_cold: warm_unchanged_wall_ms / cold.wall_ms(),
            warm_one_percent_files_changed: files_changed,
            warm_one_percent_wall_ms,
            warm_one_percent_embedded: changed[0].report.chunks.embedded,
            warm_one_percent_cached: cached(&changed[0]),
            warm_one_percent_cache_ms: median(&changed.iter().map(cache_ms).collect::<Vec<_>>()),
            warm_one_percent_stage_ms: [
                "read", "chunk", "cache", "embed", "index", "pack", "total",
            ]
            .iter()
            .map(|s| {
                (
                    s.to_string(),
                    median_by(changed, |r| r.raw["timings_ms"][*s].as_f64().unwrap_or(0.0)),
                )
            })
            .collect(),
            warm_one_percent_over_cold: warm_one_percent_wall_ms / cold.wall_ms(),
        }
    }

    fn rows(&self, n: u32) -> Vec<Row> {
        let s = |ms: f64| format!("{:.1} s", ms / 1000.0);
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        let mut rows = vec![
            Row::info(
                "chunks (distinct)",
                format!("{} ({})", self.chunks_total, self.chunks_unique),
            ),
            Row::info("cold single build, wall", s(self.cold_wall_ms)),
            Row::info(
                "cold embed stage chunks/s",
                format!("{:.1}", self.cold_embed_chunks_per_s),
            ),
        ];
        for (i, (wall, embedded)) in self
            .shard_wall_ms
            .iter()
            .zip(&self.shard_embedded)
            .enumerate()
        {
            rows.push(Row::info(
                format!("shard {}/{n}: wall (embedded)", i + 1),
                format!("{} ({embedded})", s(*wall)),
            ));
        }
        rows.extend([
            Row::check(
                "shards embed every chunk once",
                format!("{} of {}", self.shards_embedded_total, self.cold_embedded),
                "equal",
                self.shards_embedded_total == self.cold_embedded,
            ),
            Row::info(
                "largest share / smallest",
                format!("{:.3}", self.shard_balance),
            ),
            Row::info("assemble build, wall", s(self.assemble_wall_ms)),
            Row::info("assemble build, cache stage", s(self.assemble_cache_ms)),
            Row::check(
                "assemble build embeds",
                self.assemble_embedded.to_string(),
                "0",
                self.assemble_embedded == 0,
            ),
            Row::check(
                "assemble digest == cold digest",
                if self.assemble_digest_equals_cold {
                    "yes"
                } else {
                    "NO"
                },
                "identical",
                self.assemble_digest_equals_cold,
            ),
            Row::info(
                format!("projected wall with {n} runners (slowest shard + assemble)"),
                s(self.projected_wall_ms),
            ),
            Row::info(
                "cold / projected",
                format!("{:.2}x", self.projected_speedup),
            ),
            Row::info(
                "shards + assemble one after another",
                format!(
                    "{} ({:.2}x cold)",
                    s(self.sequential_wall_ms),
                    self.sequential_wall_ms / self.cold_wall_ms
                ),
            ),
            Row::info(
                "cache in the store",
                format!(
                    "{} packs, {:.1} MB",
                    self.pack_count,
                    self.pack_bytes as f64 / 1e6
                ),
            ),
            Row::info(
                "new branch, no change: wall (embedded)",
                format!(
                    "{} ({})",
                    s(self.warm_unchanged_wall_ms),
                    self.warm_unchanged_embedded
                ),
            ),
            Row::check(
                "new branch, no change / cold",
                pct(self.warm_unchanged_over_cold),
                format!("< {}", pct(MAX_WARM_OVER_COLD)),
                self.warm_unchanged_over_cold < MAX_WARM_OVER_COLD,
            ),
            Row::info(
                format!(
                    "new branch, {} files changed: wall (embedded/cached)",
                    self.warm_one_percent_files_changed
                ),
                format!(
                    "{} ({}/{})",
                    s(self.warm_one_percent_wall_ms),
                    self.warm_one_percent_embedded,
                    self.warm_one_percent_cached
                ),
            ),
            Row::info(
                "new branch 1%: stages (read chunk cache embed index pack)",
                ["read", "chunk", "cache", "embed", "index", "pack"]
                    .iter()
                    .map(|k| {
                        format!(
                            "{:.1}",
                            self.warm_one_percent_stage_ms
                                .get(*k)
                                .copied()
                                .unwrap_or(0.0)
                                / 1000.0
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            Row::check(
                "new branch, 1% changed / cold",
                pct(self.warm_one_percent_over_cold),
                format!("< {}", pct(MAX_WARM_OVER_COLD)),
                self.warm_one_percent_over_cold < MAX_WARM_OVER_COLD,
            ),
        ]);
        rows
    }
}

#[derive(Debug, Serialize)]
struct Results {
    command: Vec<String>,
    machine: Machine,
    params: Params,
    /// Base and branch commits.
    commits: Vec<String>,
    cold: serde_json::Value,
    cold_wall_ms: f64,
    shards: Vec<ShardRun>,
    assemble: serde_json::Value,
    assemble_wall_ms: f64,
    warm_unchanged: Vec<Warm>,
    warm_one_percent: Vec<Warm>,
    summary: Summary,
    rows: Vec<Row>,
}

#[derive(Debug, Serialize)]
struct Params {
    files: usize,
    seed: u64,
    shards: u32,
    runs: usize,
    branch_share: f64,
}

#[derive(Debug, Serialize)]
struct Warm {
    wall_ms: f64,
    loadavg_after: Option<String>,
    report: serde_json::Value,
}

impl From<&BuildRun> for Warm {
    fn from(r: &BuildRun) -> Self {
        Self {
            wall_ms: r.wall_ms(),
            loadavg_after: r.loadavg_after.clone(),
            report: r.raw.clone(),
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
