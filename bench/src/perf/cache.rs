//! `shelf-bench cache`: see [`Cache`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_testkit::GitRepo;

use crate::fixtures::corpus::Corpus;
use crate::fixtures::dirs::copy_dir;
use crate::fixtures::rng::Rng;
use crate::fixtures::shelf::{BuildRun, REPOSITORY_NAME, ShelfBinary};
use crate::harness::stats::median_by;
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, machine, table};

/// A warm new-branch build must take less than this share of a cold one.
const MAX_WARM_OVER_COLD: f64 = 0.10;
/// Share of files the new branch changes.
const BRANCH_SHARE: f64 = 0.01;
/// Stages of a build with a store, in pipeline order.
const STAGES: [&str; 6] = ["read", "chunk", "cache", "embed", "index", "pack"];

/// The store's embedding cache and sharded builds, on a generated
/// repository with the real binary and a local store.
///
/// Measured one after another on this machine:
/// 1. a cold single build (no store): the baseline;
/// 2. `--shard I/N` for every I, each against the store the previous shards
///    filled (as matrix jobs that start at different times would), then the
///    assemble build (`--store`): its digest must be the cold build's and it
///    must embed nothing. The projected wall time with N runners is the
///    slowest shard plus the assemble build: each shard's wall here is what
///    it costs alone on a runner like this one;
/// 3. new-branch builds with the cache warm (no previous bundle, only the
///    store): one whose branch changed 1% of the files, one with no change
///    (target: under 10% of the cold build). Each run starts from a copy of
///    the store as the sharded build left it, so every run embeds the same.
///
/// Needs `cargo build --bin shelf` and `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Cache {
    /// Files in the generated repository.
    #[arg(long, default_value_t = 10_000)]
    files: usize,
    /// Seed of the generated repository.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Shards of the sharded build.
    #[arg(long, default_value_t = 4)]
    shards: u32,
    /// Runs of each warm new-branch build (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

/// One timed `shelf build --shard`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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

impl Benchmark for Cache {
    const NAME: &'static str = "cache";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        if self.files == 0 || self.shards == 0 || self.runs == 0 {
            bail!("--files, --shards and --runs must be at least 1");
        }
        let (shelf, work) = (b.shelf()?, b.work());
        b.say(format!(
            "generating {} files (seed {})",
            self.files, self.seed
        ));
        let mut corpus = Corpus::generate(self.files, self.seed);
        let repo = corpus.write_repo();
        let base_commit = repo.commit("benchmark corpus");
        b.say(format!(
            "committed {base_commit} ({} bytes of text)",
            corpus.text_bytes()
        ));

        // 1. The cold single build.
        b.say("cold single build (no store)");
        let cold = shelf.build(repo.path(), &work.join("cold"), None, &[])?;
        say_build(b, &cold);

        // 2. Shards one after another, then the assemble build.
        let store = work.join("store");
        let store_arg = store.display().to_string();
        let mut shards = Vec::new();
        for i in 1..=self.shards {
            let shard = format!("{i}/{}", self.shards);
            b.say(format!("shard {shard}"));
            let r = run_shard(shelf, repo.path(), &shard, &store_arg)?;
            b.say(format!(
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
        b.say("assemble build (--store)");
        let store_flag = ["--store".to_string(), store_arg.clone()];
        let out = work.join("assemble");
        let assemble = shelf.build(repo.path(), &out, None, &store_flag)?;
        say_build(b, &assemble);
        let snapshot = work.join("store-after-shards");
        copy_dir(&store, &snapshot)?;
        let packs = packs_in(&snapshot)?;

        // 3. New branches, with the cache the sharded build left.
        let warm = |name: &str| warm_runs(b, shelf, &repo, self.runs, &snapshot, name);
        let main_head = repo.git(&["rev-parse", "HEAD"]);
        repo.git(&["checkout", "-q", "-b", "feature/unchanged"]);
        repo.git(&[
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            "a branch with no change",
        ]);
        let unchanged = warm("unchanged")?;
        repo.git(&["checkout", "-q", &main_head]);
        repo.git(&["checkout", "-q", "-b", "feature/one-percent"]);
        let mut rng = Rng::new(self.seed ^ 0xcac4e);
        let count = ((corpus.files.len() as f64) * BRANCH_SHARE).ceil() as usize;
        let touched = corpus.touch(&repo, count, &mut rng);
        let branch_commit = repo.commit("change 1% of files");
        b.say(format!(
            "branch commit {branch_commit}: changed {touched} files"
        ));
        let changed = warm("one-percent")?;

        let summary = Summary::new(
            &cold, &shards, &assemble, &unchanged, &changed, touched, packs,
        );
        let rows = summary.rows(self.shards);
        print!("{}", table::render(&rows));
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            params: Params {
                files: self.files,
                seed: self.seed,
                shards: self.shards,
                runs: self.runs,
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
        })
    }
}

fn say_build(b: &Bench, r: &BuildRun) {
    b.say(format!(
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
    let repo = repo.display().to_string();
    let started = Instant::now();
    let stdout = shelf.run(&[
        "build",
        "--json",
        "--shard",
        shard,
        "--store",
        store,
        "--repo",
        &repo,
        "--name",
        REPOSITORY_NAME,
    ])?;
    let wall_ms = started.elapsed().as_secs_f64() * 1e3;
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .context("shelf build --shard --json printed no JSON report")?;
    Ok(ShardRun {
        shard: shard.to_string(),
        wall_ms,
        loadavg_after: machine::loadavg(),
        report,
    })
}

/// `runs` builds of the checked-out branch with only the store (each from
/// a fresh copy of `snapshot`, so each finds the same cache).
fn warm_runs(
    b: &Bench,
    shelf: &ShelfBinary,
    repo: &GitRepo,
    runs: usize,
    snapshot: &Path,
    name: &str,
) -> Result<Vec<BuildRun>> {
    let work = b.work();
    let mut out = Vec::with_capacity(runs);
    for i in 0..runs {
        let store = work.join(format!("store-{name}-{i}"));
        copy_dir(snapshot, &store)?;
        b.say(format!(
            "new branch ({name}), warm cache: build {}/{runs}",
            i + 1
        ));
        let store_flag = ["--store".to_string(), store.display().to_string()];
        let r = shelf.build(
            repo.path(),
            &work.join(format!("warm-{name}-{i}")),
            None,
            &store_flag,
        )?;
        say_build(b, &r);
        std::fs::remove_dir_all(&store).ok();
        out.push(r);
    }
    Ok(out)
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    warm_one_percent_stage_ms: BTreeMap<String, f64>,
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
        let cache_ms = |r: &BuildRun| r.stage_ms("cache");
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
            warm_one_percent_cache_ms: median_by(changed, cache_ms),
            warm_one_percent_stage_ms: STAGES
                .iter()
                .chain(&["total"])
                .map(|s| (s.to_string(), median_by(changed, |r| r.stage_ms(s))))
                .collect(),
            warm_one_percent_over_cold: warm_one_percent_wall_ms / cold.wall_ms(),
        }
    }

    fn rows(&self, n: u32) -> Vec<Row> {
        let s = |ms: f64| format!("{:.1} s", ms / 1000.0);
        let pct = |x: f64| format!("{:.1}%", x * 100.0);
        let mut t = Table::default();
        t.info(
            "chunks (distinct)",
            format!("{} ({})", self.chunks_total, self.chunks_unique),
        );
        t.info("cold single build, wall", s(self.cold_wall_ms));
        t.info(
            "cold embed stage chunks/s",
            format!("{:.1}", self.cold_embed_chunks_per_s),
        );
        let shards = self.shard_wall_ms.iter().zip(&self.shard_embedded);
        for (i, (wall, embedded)) in shards.enumerate() {
            t.info(
                format!("shard {}/{n}: wall (embedded)", i + 1),
                format!("{} ({embedded})", s(*wall)),
            );
        }
        let (embedded, cold) = (self.shards_embedded_total, self.cold_embedded);
        t.check(
            "shards embed every chunk once",
            format!("{embedded} of {cold}"),
            "equal",
            embedded == cold,
        );
        t.info(
            "largest share / smallest",
            format!("{:.3}", self.shard_balance),
        );
        t.info("assemble build, wall", s(self.assemble_wall_ms));
        t.info("assemble build, cache stage", s(self.assemble_cache_ms));
        let assembled = self.assemble_embedded;
        t.check(
            "assemble build embeds",
            assembled.to_string(),
            "0",
            assembled == 0,
        );
        let same = self.assemble_digest_equals_cold;
        let yes = if same { "yes" } else { "NO" };
        t.check("assemble digest == cold digest", yes, "identical", same);
        t.info(
            format!("projected wall with {n} runners (slowest shard + assemble)"),
            s(self.projected_wall_ms),
        );
        t.info(
            "cold / projected",
            format!("{:.2}x", self.projected_speedup),
        );
        let sequential = self.sequential_wall_ms;
        let over_cold = sequential / self.cold_wall_ms;
        t.info(
            "shards + assemble one after another",
            format!("{} ({over_cold:.2}x cold)", s(sequential)),
        );
        let (packs, mb) = (self.pack_count, self.pack_bytes as f64 / 1e6);
        t.info("cache in the store", format!("{packs} packs, {mb:.1} MB"));
        let (wall, embedded) = (s(self.warm_unchanged_wall_ms), self.warm_unchanged_embedded);
        t.info(
            "new branch, no change: wall (embedded)",
            format!("{wall} ({embedded})"),
        );
        let (unchanged, changed) = (
            self.warm_unchanged_over_cold,
            self.warm_one_percent_over_cold,
        );
        let target = format!("< {}", pct(MAX_WARM_OVER_COLD));
        t.check(
            "new branch, no change / cold",
            pct(unchanged),
            &target,
            unchanged < MAX_WARM_OVER_COLD,
        );
        let (wall, files) = (
            s(self.warm_one_percent_wall_ms),
            self.warm_one_percent_files_changed,
        );
        let (embedded, cached) = (self.warm_one_percent_embedded, self.warm_one_percent_cached);
        t.info(
            format!("new branch, {files} files changed: wall (embedded/cached)"),
            format!("{wall} ({embedded}/{cached})"),
        );
        let stage = |k: &str| {
            self.warm_one_percent_stage_ms
                .get(k)
                .copied()
                .unwrap_or(0.0)
                / 1000.0
        };
        let stages: Vec<String> = STAGES.iter().map(|k| format!("{:.1}", stage(k))).collect();
        t.info(
            "new branch 1%: stages (read chunk cache embed index pack)",
            stages.join(" "),
        );
        t.check(
            "new branch, 1% changed / cold",
            pct(changed),
            target,
            changed < MAX_WARM_OVER_COLD,
        );
        t.rows
    }
}

/// What `shelf-bench cache` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
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

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    files: usize,
    seed: u64,
    shards: u32,
    runs: usize,
    branch_share: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
