//! `shelf-bench repos`: see [`Repos`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;

use crate::fixtures::corpus::{Corpus, Style};
use crate::fixtures::dirs::dir_bytes;
use crate::fixtures::load::{self, Call, LevelOut, WARMUP};
use crate::fixtures::process::{process_rss_kib, process_rss_split_kib};
use crate::fixtures::queries::{QueryPool, queries_from};
use crate::fixtures::rng::Rng;
use crate::fixtures::server::{StartOut, Started, follow_args, start_ready, strings};
use crate::fixtures::shelf::ShelfBinary;
use crate::harness::stats::median;
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, table};

/// Words of its own per repository.
const THEME_WORDS: usize = 6;
/// Queries asked of every repository for the quality check.
const QUALITY_PER_REPO: usize = 3;
/// `/v1/repos` requests timed per server.
const LISTINGS: usize = 50;
/// What a server may grow by for 99 more repositories, RSS after a load
/// across all of them (the many-repositories target, issue #27).
const MAX_RSS_PER_99_MIB: f64 = 23.0;
/// The repository the single-repository server serves, and the one the
/// one-repository queries name on the root server.
const FIRST: usize = 0;

/// One server for a whole organisation's repositories beside a server for
/// one of them, in the same run.
///
/// Many small generated repositories (each with words of its own, so a query
/// has one right repository) are built once with the real `shelf build`,
/// kept under --bundle-cache by commit, and published under one local store
/// root as their workflows would (push, then tag `production`). Measured for
/// both servers: start to ready (every repository live), RSS after ready and
/// after load, query latency for one repository (`repo=`) at the same client
/// count, and, for the root, across every repository, how long a newly
/// published repository takes to be listed `ok`, whether the top result
/// across all of them comes from the right repository, and what listing the
/// repositories costs. Needs `cargo build --bin shelf` and `scripts/setup`.
#[derive(Debug, Clone, clap::Args)]
pub struct Repos {
    /// Repositories under the root.
    #[arg(long, default_value_t = 100)]
    repos: usize,
    /// Files per repository (small: one or two chunks each).
    #[arg(long, default_value_t = 30)]
    files: usize,
    /// Seed of the generated repositories.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Clients of every load level (the same for both servers).
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Requests per load level.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
    /// Seconds at most per load level.
    #[arg(long, default_value_t = 60)]
    max_seconds: u64,
    /// Start-to-ready measurements per server, with an empty cache and
    /// with a warm one.
    #[arg(long, default_value_t = 5)]
    starts: usize,
    /// Repositories published while the root server runs (the median time
    /// to be listed is reported).
    #[arg(long, default_value_t = 10)]
    appear_runs: usize,
    /// The servers' --poll-interval, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Where the built bundles are kept between runs.
    #[arg(long, default_value = "target/bench-cache")]
    bundle_cache: PathBuf,
}

/// One generated repository.
struct Spec {
    name: String,
    theme: Vec<String>,
    corpus: Corpus,
}

/// One repository's bundle, as built (or found in the cache).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Built {
    name: String,
    commit: String,
    digest: String,
    path: PathBuf,
    bytes: u64,
    chunks: u64,
    /// The build's wall time when it was built by this run.
    #[serde(default)]
    build_ms: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BuildOut {
    repositories: usize,
    built_now: usize,
    from_cache: usize,
    /// Wall time of the builds made by this run (0 when all were cached).
    build_seconds: f64,
    /// Chunks of every repository built, the newcomers' too.
    chunks_total: u64,
    /// Chunks of the repositories served from the start.
    chunks_served: u64,
    bundle_file_bytes_total: u64,
    /// Push and tag of every served repository into the root.
    publish_seconds: f64,
}

/// Resident memory at one moment, MiB.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Memory {
    rss_mib: f64,
    anon_mib: f64,
    file_mib: f64,
}

impl Memory {
    fn of(pid: u32) -> Self {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let rss = process_rss_kib(pid).map_or(f64::NAN, |(r, _)| mib(r));
        let (anon, file) =
            process_rss_split_kib(pid).map_or((f64::NAN, f64::NAN), |(a, f)| (mib(a), mib(f)));
        Self {
            rss_mib: rss,
            anon_mib: anon,
            file_mib: file,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerOut {
    /// `--store-root` or `--store`.
    source: String,
    repositories: usize,
    /// Starts into an empty cache (every bundle copied and unpacked).
    start_empty_cache: StartOut,
    /// Starts with every bundle already unpacked in the cache.
    start_warm_cache: StartOut,
    rss_after_ready: Memory,
    rss_after_load: Memory,
    /// Bytes of the live bundles unpacked in the server's cache.
    live_bundle_bytes: u64,
    /// Queries naming the first repository (`repo=`).
    one_repo: LevelOut,
    /// Queries naming no repository (every repository asked).
    across_all: Option<LevelOut>,
    /// `GET /v1/repos`, client-side, median of [`LISTINGS`].
    repos_listing_p50_ms: f64,
    repos_listing_bytes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct AppearOut {
    poll_interval_ms: u64,
    /// Push start to listed `ok` in `/v1/repos`.
    publish_to_ok_ms: Vec<f64>,
    /// Tag written (the publish's last step) to listed `ok`.
    tag_to_ok_ms: Vec<f64>,
    /// Push and tag themselves.
    push_and_tag_ms: Vec<f64>,
    median_publish_to_ok_ms: f64,
    median_tag_to_ok_ms: f64,
}

/// The served repositories' bundles opened in this process, as the server
/// opens each one (`shelf_search::MappedBundle`), without a server around
/// them: what opening a bundle costs by itself.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenOut {
    bundles: usize,
    /// Anonymous memory of this process, opened minus before, per bundle.
    anon_per_bundle_kib: f64,
    /// The bytes each bundle holds in memory (`resident_bytes`), mean.
    held_per_bundle_kib: f64,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct QualityOut {
    queries: usize,
    /// The first result is from the repository the query was written from.
    top1_right_repo: f64,
    /// Some result of the ten is.
    top10_has_right_repo: f64,
    /// Share of all top-10 results that are from the right repository.
    top10_right_share: f64,
    /// Answers that were not 200 or had a result without a `repo`.
    bad_answers: usize,
}

/// What `shelf-bench repos` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    repos: usize,
    files_per_repo: usize,
    seed: u64,
    clients: usize,
    poll_interval_ms: u64,
    build: BuildOut,
    single: ServerOut,
    root: ServerOut,
    appear: AppearOut,
    quality: QualityOut,
    open_in_process: OpenOut,
    /// RSS(root) − RSS(single) after load, MiB, beside the live bundle
    /// bytes the root serves beyond the single server's.
    rss_delta_after_load_mib: f64,
    extra_bundle_mib: f64,
    rss_delta_per_extra_repo_kib: f64,
    rows: Vec<Row>,
}

impl Benchmark for Repos {
    const NAME: &'static str = "repos";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let opts = self;
        if opts.repos < 2 || opts.files == 0 || opts.requests == 0 || opts.starts == 0 {
            bail!("--repos must be at least 2, and --files, --requests and --starts at least 1");
        }
        let shelf = b.shelf()?;
        let specs = generate(opts);
        let (built, mut build) = build_all(b, shelf, &specs, opts)?;
        let (served, newcomers) = built.split_at(opts.repos);
        let root = b.work().join("root");
        std::fs::create_dir_all(&root)?;
        let started = Instant::now();
        for r in served {
            shelf.publish(&r.path, &r.digest, &root.join(&r.name))?;
        }
        build.publish_seconds = started.elapsed().as_secs_f64();
        build.chunks_served = served.iter().map(|r| r.chunks).sum();
        b.say(format!(
            "published {} repositories under {} in {:.1} s",
            served.len(),
            root.display(),
            build.publish_seconds
        ));

        let queries = Queries::new(&specs[..opts.repos], opts)?;
        let stage = Stage {
            opts,
            b,
            shelf,
            root: &root,
        };
        let kinds = [
            Kind::Single(served[FIRST].name.clone()),
            Kind::Root(served.len()),
        ];
        let [single_starts, root_starts] = stage.starts(&kinds)?;
        let single = stage.measure(&kinds[0], single_starts, &queries, None)?;
        let mut appear = None;
        let mut quality = None;
        let root_out = stage.measure(
            &kinds[1],
            root_starts,
            &queries,
            Some(&mut |server: &ServerProcess| {
                quality = Some(quality_check(server, &queries, b));
                appear = Some(stage.appear(server, newcomers)?);
                Ok(())
            }),
        )?;
        let (Some(appear), Some(quality)) = (appear, quality) else {
            bail!("the root server's extra measurements did not run");
        };
        let open_in_process = open_in_process(served, b.work())?;
        b.say(format!(
            "{} bundles opened in process: {:.0} KiB of anonymous memory each, {:.0} KiB of it bundle bytes",
            open_in_process.bundles,
            open_in_process.anon_per_bundle_kib,
            open_in_process.held_per_bundle_kib
        ));

        let delta = root_out.rss_after_load.rss_mib - single.rss_after_load.rss_mib;
        let extra_bundle_mib = (root_out
            .live_bundle_bytes
            .saturating_sub(single.live_bundle_bytes)) as f64
            / 1048576.0;
        let results = Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            repos: opts.repos,
            files_per_repo: opts.files,
            seed: opts.seed,
            clients: opts.clients,
            poll_interval_ms: opts.poll_ms,
            rss_delta_after_load_mib: delta,
            extra_bundle_mib,
            rss_delta_per_extra_repo_kib: delta * 1024.0 / (opts.repos - 1) as f64,
            rows: Vec::new(),
            build,
            single,
            root: root_out,
            appear,
            quality,
            open_in_process,
        };
        let rows = rows(&results);
        print!("{}", table::render(&rows));
        Ok(Results { rows, ..results })
    }
}

/// The served repositories (`repo-000`, ...) and the newcomers published
/// while serving (`new-00`, ...), each with a theme no other has.
fn generate(opts: &Repos) -> Vec<Spec> {
    let themes = themes(opts.repos + opts.appear_runs, opts.seed);
    themes
        .into_iter()
        .enumerate()
        .map(|(i, theme)| {
            let name = if i < opts.repos {
                format!("repo-{i:03}")
            } else {
                format!("new-{:02}", i - opts.repos)
            };
            let style = Style {
                small: true,
                theme: theme.clone(),
            };
            let seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(i as u64);
            Spec {
                corpus: Corpus::generate_styled(opts.files, seed, &style),
                name,
                theme,
            }
        })
        .collect()
}

#[rustfmt::skip]
const SYLLABLES: &[&str] = &[
    "ka", "zo", "vel", "mir", "tus", "qua", "ren", "dor", "phi", "lax", "bro", "nim", "sel",
    "tav", "gor", "yun", "fex", "wib", "cra", "mol", "pex", "dru", "sko", "lin", "har", "vok",
    "zel", "tri", "bam", "quo", "jas", "ult",
];

/// `n` themes of [`THEME_WORDS`] made-up words (three syllables each), no
/// word in two themes.
fn themes(n: usize, seed: u64) -> Vec<Vec<String>> {
    let mut rng = Rng::new(seed ^ 0x7e3e);
    let mut taken = BTreeSet::new();
    (0..n)
        .map(|_| {
            let mut theme = Vec::with_capacity(THEME_WORDS);
            while theme.len() < THEME_WORDS {
                let word: String = (0..3).map(|_| rng.pick(SYLLABLES)).collect();
                if taken.insert(word.clone()) {
                    theme.push(word);
                }
            }
            theme
        })
        .collect()
}

/// Builds every repository that is not in the cache yet (the key is its
/// commit, which the fixed git identity and dates make a function of the
/// content).
fn build_all(
    bench: &Bench,
    shelf: &ShelfBinary,
    specs: &[Spec],
    opts: &Repos,
) -> Result<(Vec<Built>, BuildOut)> {
    let mut out = Vec::with_capacity(specs.len());
    let started = Instant::now();
    let mut built_now = 0;
    for (i, spec) in specs.iter().enumerate() {
        let repo = spec.corpus.write_repo();
        let commit = repo.commit("repos benchmark corpus");
        let dir = opts
            .bundle_cache
            .join("repos")
            .join(&spec.name)
            .join(&commit);
        let record = dir.join("bundle.json");
        let cached = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<Built>(&b).ok())
            .filter(|b| b.path.is_file());
        if let Some(b) = cached {
            out.push(Built {
                build_ms: None,
                ..b
            });
            continue;
        }
        if built_now == 0 {
            bench.say(format!(
                "building the repositories not in {} (about 2 s each on 2 cores)",
                opts.bundle_cache.display()
            ));
        }
        let run = shelf.build_with(repo.path(), "HEAD", &dir, None, &spec.name, &[])?;
        built_now += 1;
        let b = Built {
            name: spec.name.clone(),
            commit,
            digest: run.report.digest.clone(),
            path: run.report.bundle_path.clone(),
            bytes: run.report.bundle_bytes,
            chunks: run.report.chunks.total,
            build_ms: Some(run.wall_ms()),
        };
        std::fs::write(&record, serde_json::to_vec_pretty(&b)?)?;
        if built_now % 10 == 0 || i + 1 == specs.len() {
            bench.say(format!(
                "  built {built_now} ({}/{} done), {:.0} s so far",
                i + 1,
                specs.len(),
                started.elapsed().as_secs_f64()
            ));
        }
        out.push(b);
    }
    let summary = BuildOut {
        repositories: out.len(),
        built_now,
        from_cache: out.len() - built_now,
        build_seconds: if built_now == 0 {
            0.0
        } else {
            started.elapsed().as_secs_f64()
        },
        chunks_total: out.iter().map(|b| b.chunks).sum(),
        bundle_file_bytes_total: out.iter().map(|b| b.bytes).sum(),
        chunks_served: 0,
        publish_seconds: 0.0,
    };
    bench.say(format!(
        "{} repositories, {} chunks: {} built now ({:.0} s), {} from the cache",
        summary.repositories,
        summary.chunks_total,
        summary.built_now,
        summary.build_seconds,
        summary.from_cache
    ));
    Ok((out, summary))
}

/// The benchmark's queries. The servers run without a query cache, so a
/// query asked twice is embedded twice, as a new one would be.
struct Queries {
    /// Lines of the first repository.
    one: Arc<Vec<String>>,
    /// Lines in some repository's own words, every repository in turn.
    across: Arc<Vec<String>>,
    /// (query, its repository) for the quality check.
    quality: Vec<(String, String)>,
}

impl Queries {
    fn new(specs: &[Spec], opts: &Repos) -> Result<Self> {
        let one = QueryPool::new(&specs[FIRST].corpus, opts.seed, 400, WARMUP)
            .context("the first repository's queries")?
            .all()
            .to_vec();
        let mut per_repo = Vec::with_capacity(specs.len());
        for (i, spec) in specs.iter().enumerate() {
            let themed = themed_queries(spec, opts.seed ^ i as u64);
            if themed.len() < QUALITY_PER_REPO {
                bail!(
                    "{} gives only {} queries in its own words: raise --files",
                    spec.name,
                    themed.len()
                );
            }
            per_repo.push(themed);
        }
        let quality = per_repo
            .iter()
            .zip(specs)
            .flat_map(|(qs, spec)| {
                qs.iter()
                    .take(QUALITY_PER_REPO)
                    .map(|q| (q.clone(), spec.name.clone()))
            })
            .collect();
        // Round robin over the repositories, so every stretch of the load
        // asks all of them.
        let depth = per_repo.iter().map(Vec::len).max().unwrap_or(0);
        let across = (0..depth)
            .flat_map(|d| per_repo.iter().filter_map(move |qs| qs.get(d).cloned()))
            .collect();
        Ok(Self {
            one: Arc::new(one),
            across: Arc::new(across),
            quality,
        })
    }
}

/// Query texts from `spec`'s lines that hold one of its own words as a
/// word of their own.
fn themed_queries(spec: &Spec, seed: u64) -> Vec<String> {
    queries_from(&spec.corpus, seed, 200)
        .into_iter()
        .filter(|q| q.split(' ').any(|w| spec.theme.iter().any(|t| t == w)))
        .collect()
}

/// Which server.
#[derive(Debug, Clone)]
enum Kind {
    /// `--store ROOT/<name>`.
    Single(String),
    /// `--store-root ROOT` with this many repositories.
    Root(usize),
}

impl Kind {
    fn label(&self) -> &'static str {
        match self {
            Kind::Single(_) => "single",
            Kind::Root(_) => "root",
        }
    }

    fn repositories(&self) -> usize {
        match self {
            Kind::Single(_) => 1,
            Kind::Root(n) => *n,
        }
    }
}

/// Starts' (start to ready, model load) in ms.
type Runs = Vec<(f64, f64)>;

/// Both servers' starts: (empty cache, warm cache) runs of each.
type Starts = [(Runs, Runs); 2];

/// What every stage shares.
struct Stage<'a> {
    opts: &'a Repos,
    b: &'a Bench,
    shelf: &'a ShelfBinary,
    root: &'a Path,
}

/// A stage run on the root server while it is up.
type WhileUp<'f> = &'f mut dyn FnMut(&ServerProcess) -> Result<()>;

impl Stage<'_> {
    fn args(&self, kind: &Kind, cache: &Path) -> Vec<String> {
        let (flag, store) = match kind {
            Kind::Single(name) => ("--store", self.root.join(name)),
            Kind::Root(_) => ("--store-root", self.root.to_path_buf()),
        };
        let poll = format!("{}ms", self.opts.poll_ms);
        let mut args = follow_args(flag, &store, cache, &poll);
        // `--query-cache-bytes 0`: every query embedded, as a new query is.
        args.extend(strings(&["--query-cache-bytes", "0"]));
        args
    }

    fn warm_cache(&self, kind: &Kind) -> PathBuf {
        self.b.work().join(format!("cache-{}", kind.label()))
    }

    /// Starts until every repository is live, to a `/readyz` that says
    /// `ok` for all of them.
    fn start(&self, kind: &Kind, cache: &Path) -> Result<Started> {
        let n = kind.repositories();
        start_ready(
            self.shelf,
            &self.args(kind, cache),
            &[],
            move |v: &Value| {
                v["status"] == "ok" && v["repositories"] == n as u64 && v["live"] == n as u64
            },
        )
        .with_context(|| {
            format!(
                "the {} server never had all {n} repositories live (bundles of another model in --bundle-cache? remove it)",
                kind.label()
            )
        })
    }

    /// Start to ready, empty cache then warm, the two servers taking turns
    /// so that other work on the machine slows both alike. The first
    /// empty-cache start fills the warm cache.
    fn starts(&self, kinds: &[Kind; 2]) -> Result<Starts> {
        let mut out: Starts = Default::default();
        for i in 0..self.opts.starts {
            for (k, kind) in kinds.iter().enumerate() {
                let cache = if i == 0 {
                    self.warm_cache(kind)
                } else {
                    self.b.work().join(format!("cold-{}-{i}", kind.label()))
                };
                let s = self.start(kind, &cache)?;
                out[k].0.push((s.ready_ms, s.model_ms));
                let _ = s.server.terminate(Duration::from_secs(20));
                if i > 0 {
                    let _ = std::fs::remove_dir_all(&cache);
                }
                self.b.say(format!(
                    "{} server, empty cache: ready in {:.0} ms (model {:.0} ms)",
                    kind.label(),
                    s.ready_ms,
                    s.model_ms
                ));
            }
        }
        // The last warm start of each is the one measured under load.
        for _ in 1..self.opts.starts {
            for (k, kind) in kinds.iter().enumerate() {
                let s = self.start(kind, &self.warm_cache(kind))?;
                out[k].1.push((s.ready_ms, s.model_ms));
                let _ = s.server.terminate(Duration::from_secs(20));
            }
        }
        Ok(out)
    }

    /// One server, started on its warm cache: RSS once ready, the load
    /// levels, RSS after, `/v1/repos` timed, then `while_up`.
    fn measure(
        &self,
        kind: &Kind,
        (empty, mut warm): (Runs, Runs),
        queries: &Queries,
        while_up: Option<WhileUp<'_>>,
    ) -> Result<ServerOut> {
        let started = self.start(kind, &self.warm_cache(kind))?;
        warm.push((started.ready_ms, started.model_ms));
        let server = started.server;
        let pid = server.pid();
        let rss_after_ready = Memory::of(pid);
        self.b.say(format!(
            "{} server: ready in {:.0} ms, RSS {:.0} MiB",
            kind.label(),
            started.ready_ms,
            rss_after_ready.rss_mib
        ));
        let live_bundle_bytes = live_bundle_bytes(&server, &self.warm_cache(kind))?;
        let rt = load::runtime()?;
        let first = format!("&repo=repo-{FIRST:03}");
        let one = Call::searches(&queries.one, &first);
        load::warm_up(&rt, server.addr, Arc::clone(&one));
        let one_repo = self.level(&rt, &server, kind, "one repository", one);
        let across_all = match kind {
            Kind::Root(_) => {
                let across = Call::searches(&queries.across, "");
                load::warm_up(&rt, server.addr, Arc::clone(&across));
                Some(self.level(&rt, &server, kind, "all repositories", across))
            }
            Kind::Single(_) => None,
        };
        let rss_after_load = Memory::of(pid);
        let (repos_listing_p50_ms, repos_listing_bytes) = listing(&server)?;
        self.b.say(format!(
            "{} server: RSS after load {:.0} MiB (anon {:.0}, file {:.0}); /v1/repos {:.2} ms, {} bytes",
            kind.label(),
            rss_after_load.rss_mib,
            rss_after_load.anon_mib,
            rss_after_load.file_mib,
            repos_listing_p50_ms,
            repos_listing_bytes
        ));
        drop(rt);
        if let Some(f) = while_up {
            f(&server)?;
        }
        let _ = server.terminate(Duration::from_secs(20));
        Ok(ServerOut {
            source: match kind {
                Kind::Single(_) => "--store".into(),
                Kind::Root(_) => "--store-root".into(),
            },
            repositories: kind.repositories(),
            start_empty_cache: StartOut::of(&empty),
            start_warm_cache: StartOut::of(&warm),
            rss_after_ready,
            rss_after_load,
            live_bundle_bytes,
            one_repo,
            across_all,
            repos_listing_p50_ms,
            repos_listing_bytes,
        })
    }

    fn level(
        &self,
        rt: &tokio::runtime::Runtime,
        server: &ServerProcess,
        kind: &Kind,
        what: &str,
        calls: Arc<Vec<Call>>,
    ) -> LevelOut {
        let limits = load::Limits::new(self.opts.requests, self.opts.max_seconds);
        let timed = load::run_timed(rt, server, self.opts.clients, calls, limits);
        let l = LevelOut::of(self.opts.clients, &timed);
        self.b.say(format!(
            "{} server, {what}, {} clients: {:.0} q/s, p50 {:.1} ms, p99 {:.1} ms (server search p50 {:.2} ms), {} of {} failed",
            kind.label(),
            l.clients,
            l.throughput_qps,
            l.p50_ms,
            l.p99_ms,
            l.server_search_p50_ms,
            l.failed,
            l.requests
        ));
        l
    }

    /// Publishes each newcomer (built beforehand) under the root while the
    /// server runs, and times it until `/v1/repos` lists it `ok`.
    fn appear(&self, server: &ServerProcess, newcomers: &[Built]) -> Result<AppearOut> {
        let (mut publish_to_ok, mut tag_to_ok, mut push_and_tag) = (vec![], vec![], vec![]);
        let mut rng = Rng::new(self.opts.seed ^ 0xa99e);
        for b in newcomers {
            // Each publish follows the last one's listing by a fixed time
            // otherwise, and would always wait about one whole poll: a
            // workflow publishes at any moment of the poll cycle.
            let phase = self.opts.poll_ms as f64 * rng.unit();
            std::thread::sleep(Duration::from_secs_f64(phase / 1e3));
            let started = Instant::now();
            self.shelf
                .publish(&b.path, &b.digest, &self.root.join(&b.name))?;
            let tagged = Instant::now();
            let deadline = tagged + Duration::from_secs(120);
            loop {
                if let Some(r) = http::try_request(server.addr, "GET", "/v1/repos", &[], b"")
                    && r.status == 200
                    && listed_ok(
                        &serde_json::from_slice(&r.body).unwrap_or_default(),
                        &b.name,
                    )
                {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "{} was not listed ok 120 s after its tag:\n{}",
                        b.name,
                        server.logs()
                    );
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            let ok = Instant::now();
            publish_to_ok.push(ok.duration_since(started).as_secs_f64() * 1e3);
            tag_to_ok.push(ok.duration_since(tagged).as_secs_f64() * 1e3);
            push_and_tag.push(tagged.duration_since(started).as_secs_f64() * 1e3);
            self.b.say(format!(
                "{} published: listed ok {:.0} ms after its tag (push and tag {:.0} ms)",
                b.name,
                tag_to_ok.last().copied().unwrap_or(f64::NAN),
                push_and_tag.last().copied().unwrap_or(f64::NAN)
            ));
        }
        Ok(AppearOut {
            poll_interval_ms: self.opts.poll_ms,
            median_publish_to_ok_ms: median(&publish_to_ok),
            median_tag_to_ok_ms: median(&tag_to_ok),
            publish_to_ok_ms: publish_to_ok,
            tag_to_ok_ms: tag_to_ok,
            push_and_tag_ms: push_and_tag,
        })
    }
}

/// Unpacks every bundle of `served` under `work`, then opens them all at
/// once and measures this process's anonymous memory around the opens.
fn open_in_process(served: &[Built], work: &Path) -> Result<OpenOut> {
    let dir = work.join("open-in-process");
    std::fs::create_dir_all(&dir)?;
    let first = served.first().context("no repositories")?;
    let model = shelf_formats::bundle::verify_file(&first.path, None, &Default::default())
        .with_context(|| format!("verifying {}", first.path.display()))?
        .manifest
        .model;
    let unpacked = served
        .iter()
        .map(|b| {
            shelf_search::mapped::install_file(&dir, &b.path, None)
                .with_context(|| format!("unpacking {}", b.path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let pid = std::process::id();
    let anon = || process_rss_split_kib(pid).map_or(f64::NAN, |(a, _)| a as f64);
    let before = anon();
    let open = unpacked
        .into_iter()
        .map(|(digest, path)| {
            shelf_search::MappedBundle::open_dir(&path, digest, &model)
                .with_context(|| format!("opening {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let after = anon();
    let n = open.len() as f64;
    let held: usize = open.iter().map(|b| b.mapped_bytes()).sum();
    drop(open);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(OpenOut {
        bundles: served.len(),
        anon_per_bundle_kib: (after - before) / n,
        held_per_bundle_kib: held as f64 / 1024.0 / n,
    })
}

/// Whether `/v1/repos` lists `name` with status `ok`.
fn listed_ok(body: &Value, name: &str) -> bool {
    body["repos"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["name"] == name && r["status"] == "ok"))
}

/// The bytes of every live bundle unpacked in `cache` (`<cache>/<hex>/`).
fn live_bundle_bytes(server: &ServerProcess, cache: &Path) -> Result<u64> {
    let r = http::try_request(server.addr, "GET", "/v1/repos", &[], b"")
        .context("no answer to GET /v1/repos")?;
    let body: Value = serde_json::from_slice(&r.body).context("/v1/repos is not JSON")?;
    let mut total = 0;
    for repo in body["repos"].as_array().into_iter().flatten() {
        let digest = repo["live"]["digest"]
            .as_str()
            .with_context(|| format!("a repository without a live digest: {repo}"))?;
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        total += dir_bytes(&cache.join(hex))?;
    }
    Ok(total)
}

/// `GET /v1/repos` [`LISTINGS`] times: median ms and the body's size.
fn listing(server: &ServerProcess) -> Result<(f64, usize)> {
    let mut ms = Vec::with_capacity(LISTINGS);
    let mut bytes = 0;
    for _ in 0..LISTINGS {
        let t = Instant::now();
        let r = http::try_request(server.addr, "GET", "/v1/repos", &[], b"")
            .context("no answer to GET /v1/repos")?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        if r.status != 200 {
            bail!("GET /v1/repos answered {}", r.status);
        }
        bytes = r.body.len();
    }
    Ok((median(&ms), bytes))
}

/// Every repository's own queries asked of all of them at once.
fn quality_check(server: &ServerProcess, queries: &Queries, b: &Bench) -> QualityOut {
    let (mut top1, mut top10, mut share, mut bad) = (0usize, 0usize, 0.0, 0usize);
    for (q, repo) in &queries.quality {
        let target = format!("/v1/search?k=10&q={}", http::encode(q));
        let answer = http::try_request(server.addr, "GET", &target, &[], b"")
            .filter(|r| r.status == 200)
            .and_then(|r| serde_json::from_slice::<Value>(&r.body).ok());
        let repos: Option<Vec<String>> = answer.as_ref().and_then(|a| {
            a["results"]
                .as_array()?
                .iter()
                .map(|r| r["repo"].as_str().map(str::to_string))
                .collect()
        });
        let Some(repos) = repos.filter(|r| !r.is_empty()) else {
            bad += 1;
            continue;
        };
        top1 += usize::from(repos[0] == *repo);
        top10 += usize::from(repos.contains(repo));
        share += repos.iter().filter(|r| *r == repo).count() as f64 / repos.len() as f64;
    }
    let n = queries.quality.len();
    let out = QualityOut {
        queries: n,
        top1_right_repo: top1 as f64 / n as f64,
        top10_has_right_repo: top10 as f64 / n as f64,
        top10_right_share: share / n as f64,
        bad_answers: bad,
    };
    b.say(format!(
        "quality: right repository first for {:.1}% of {n} queries, in the top 10 for {:.1}%",
        out.top1_right_repo * 100.0,
        out.top10_has_right_repo * 100.0
    ));
    out
}

fn rows(r: &Results) -> Vec<Row> {
    let (s, a, n, c) = (&r.single, &r.root, r.repos, r.clients);
    let mut t = Table::default();
    let bo = &r.build;
    let chunks = (r.files_per_repo, bo.chunks_served);
    t.info(
        "repositories (files each, chunks in all)",
        format!("{n} {chunks:?}"),
    );
    t.info(
        "build of the repositories not cached (this run)",
        format!(
            "{} built in {:.0} s, {} from the cache",
            bo.built_now, bo.build_seconds, bo.from_cache
        ),
    );
    let mut pair = |what: &str, f: &dyn Fn(&ServerOut) -> String| {
        t.info(
            format!("{what}: 1 repo / {n} repos"),
            format!("{} / {}", f(s), f(a)),
        );
    };
    let ms = |v: f64| format!("{v:.0} ms");
    pair("start to ready, empty cache (median)", &|x| {
        ms(x.start_empty_cache.median_ms)
    });
    pair("start to ready, warm cache (median)", &|x| {
        ms(x.start_warm_cache.median_ms)
    });
    pair("  of which model load", &|x| {
        ms(x.start_warm_cache.median_model_load_ms)
    });
    pair("  without the model, empty cache", &|x| {
        ms(x.start_empty_cache.median_without_model_ms)
    });
    pair("  without the model, warm cache", &|x| {
        ms(x.start_warm_cache.median_without_model_ms)
    });
    let one = format!("one repository (repo=), {c} clients");
    pair(&format!("{one}: p50"), &|x| {
        format!("{:.1} ms", x.one_repo.p50_ms)
    });
    pair(&format!("{one}: p99"), &|x| {
        format!("{:.1} ms", x.one_repo.p99_ms)
    });
    pair("one repository: throughput", &|x| {
        format!("{:.0} q/s", x.one_repo.throughput_qps)
    });
    pair("one repository: server search p50", &|x| {
        format!("{:.2} ms", x.one_repo.server_search_p50_ms)
    });
    let mem = |m: &Memory| {
        format!(
            "{:.0} MiB (anon {:.0} + file {:.0})",
            m.rss_mib, m.anon_mib, m.file_mib
        )
    };
    let mib = |b: u64| b as f64 / 1048576.0;
    let (after_ready, after_load) = (
        format!("{} / {}", mem(&s.rss_after_ready), mem(&a.rss_after_ready)),
        format!("{} / {}", mem(&s.rss_after_load), mem(&a.rss_after_load)),
    );
    let live = |x: &ServerOut| format!("{:.2} MiB", mib(x.live_bundle_bytes));
    let listing = (
        s.repos_listing_p50_ms,
        a.repos_listing_p50_ms,
        a.repos_listing_bytes / 1024,
    );
    if let Some(all) = &a.across_all {
        let (p50, p99) = (all.p50_ms, all.p99_ms);
        t.info(
            format!("all {n} repositories, {c} clients: p50 / p99"),
            format!("{p50:.1} ms / {p99:.1} ms"),
        );
        let (qps, search) = (all.throughput_qps, all.server_search_p50_ms);
        t.info(
            format!("all {n} repositories: throughput / server search p50"),
            format!("{qps:.0} q/s / {search:.2} ms"),
        );
    }
    let levels = [Some(&s.one_repo), Some(&a.one_repo), a.across_all.as_ref()];
    let failed: usize = levels.iter().flatten().map(|l| l.failed).sum();
    let requests: usize = levels.iter().flatten().map(|l| l.requests).sum();
    t.check(
        format!("failed queries of {requests}"),
        failed.to_string(),
        "0",
        failed == 0,
    );
    t.info(format!("RSS after ready: 1 repo / {n} repos"), after_ready);
    t.info(format!("RSS after load: 1 repo / {n} repos"), after_load);
    t.info(
        format!("live bundles, unpacked: 1 repo / {n} repos"),
        format!("{} / {}", live(s), live(a)),
    );
    let (delta, extra) = (r.rss_delta_after_load_mib, r.extra_bundle_mib);
    // The many-repositories target for 99 more, scaled to the run's count.
    // Not the bundles' own bytes: each small member is mapped in whole
    // pages, so the file pages alone exceed them (docs/benchmarks.md).
    let bound = MAX_RSS_PER_99_MIB * (n - 1) as f64 / 99.0;
    t.check(
        format!("RSS after load, {n} repos − 1 repo"),
        format!(
            "{delta:.1} MiB (the {} more bundles: {extra:.1} MiB)",
            n - 1
        ),
        format!("<= {bound:.1} MiB"),
        delta <= bound,
    );
    let per_repo = extra * 1024.0 / (n - 1) as f64;
    t.info(
        "  per repository beyond the first",
        format!(
            "{:.0} KiB (bundle {per_repo:.0} KiB)",
            r.rss_delta_per_extra_repo_kib
        ),
    );
    let o = &r.open_in_process;
    t.info(
        format!(
            "  a bundle opened in process (shelf_search, {} at once)",
            o.bundles
        ),
        format!(
            "{:.0} KiB anon each ({:.0} KiB bundle bytes)",
            o.anon_per_bundle_kib, o.held_per_bundle_kib
        ),
    );
    t.info(
        format!("GET /v1/repos (median): 1 repo / {n} repos"),
        format!(
            "{:.2} ms / {:.2} ms, {} KiB",
            listing.0, listing.1, listing.2
        ),
    );
    let ap = &r.appear;
    let most = ap.tag_to_ok_ms.iter().copied().fold(f64::NAN, f64::max);
    let (median, publish) = (ap.median_tag_to_ok_ms, ap.median_publish_to_ok_ms);
    t.info(
        format!(
            "new repository: tag -> listed ok (median of {}, poll {} ms)",
            ap.tag_to_ok_ms.len(),
            ap.poll_interval_ms
        ),
        format!("{median:.0} ms, at most {most:.0} ms (push start -> ok {publish:.0} ms)"),
    );
    let q = &r.quality;
    t.check(
        format!(
            "across {n}: answers not 200 or with a result naming no repository ({} queries)",
            q.queries
        ),
        q.bad_answers.to_string(),
        "0",
        q.bad_answers == 0,
    );
    // A figure, not a target: the words common to every generated
    // repository make the wrong one come first now and then.
    let pct = |x: f64| x * 100.0;
    let (first, top10, share) = (
        q.top1_right_repo,
        q.top10_has_right_repo,
        q.top10_right_share,
    );
    t.info(
        "  right repository first / in the top 10 / share of the top 10",
        format!(
            "{:.1}% / {:.1}% / {:.1}%",
            pct(first),
            pct(top10),
            pct(share)
        ),
    );
    t.rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn themes_are_disjoint_and_fixed_by_the_seed() {
        let a = themes(120, 5);
        let words: BTreeSet<&String> = a.iter().flatten().collect();
        assert_eq!(words.len(), 120 * THEME_WORDS);
        assert_eq!(a, themes(120, 5));
        assert_ne!(a, themes(120, 6));
    }

    #[test]
    fn every_repository_has_queries_in_its_own_words() {
        let opts = Repos {
            repos: 3,
            files: 30,
            seed: 42,
            clients: 1,
            requests: 1,
            max_seconds: 1,
            starts: 1,
            appear_runs: 1,
            poll_ms: 1000,
            bundle_cache: PathBuf::new(),
        };
        let specs = generate(&opts);
        assert_eq!(
            specs.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["repo-000", "repo-001", "repo-002", "new-00"]
        );
        for s in &specs {
            // Small files: a few chunks at most.
            let bytes = s.corpus.text_bytes() as usize;
            assert!(bytes < 30 * 1500, "{}: {bytes} bytes", s.name);
            assert!(s.corpus.files.iter().all(|f| f.text.len() < 8192));
            let q = themed_queries(s, 1);
            assert!(q.len() >= QUALITY_PER_REPO, "{}: {q:?}", s.name);
            // No other repository's words in them.
            for other in specs.iter().filter(|o| o.name != s.name) {
                assert!(
                    q.iter()
                        .all(|q| !q.split(' ').any(|w| other.theme.iter().any(|t| t == w)))
                );
            }
        }
        let queries = Queries::new(&specs[..3], &opts).unwrap();
        assert_eq!(queries.quality.len(), 3 * QUALITY_PER_REPO);
        // The load across repositories takes them in turn.
        assert!(queries.across.len() >= 3);
    }
}
