//! `shelf-bench`: shelf's benchmarks. Each prints a table (metric, value,
//! target, pass/fail) on stdout, progress on stderr, and writes every raw
//! number to a JSON file so results can be compared across commits.

mod across_bench;
mod build_bench;
mod cache_bench;
mod corpus;
mod direct;
mod embed_bench;
mod history_bench;
mod load;
mod machine;
mod mcp_bench;
mod memo;
mod progress;
mod quantization;
mod repos_bench;
mod rng;
mod rss;
mod serve_bench;
mod shelf_cli;
mod stats;
mod swebench;
mod table;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "shelf-bench",
    about = "shelf's benchmarks: print a table, write JSON"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build throughput: cold builds, direct embedder throughput,
    /// incremental builds after a 1-file and a 5% commit, peak RSS, bundle
    /// size. Needs `cargo build --bin shelf` and `scripts/setup` first.
    Build {
        /// Files in the generated repository.
        #[arg(long, default_value_t = 2000)]
        files: usize,
        /// Repetitions of each measured build (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Repetitions of the direct (in-process) embedding measurement. One
        /// by default: each run embeds the whole repository again (minutes
        /// on 2 cores), and its noise is other load, not sample size.
        #[arg(long, default_value_t = 1)]
        direct_runs: usize,
        /// Seed of the generated repository (same seed, same bytes).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Where to write the JSON results (parent directories are created).
        #[arg(long, default_value = "bench-results/build.json")]
        json_out: PathBuf,
    },
    /// The query server under load on loopback: start to ready, latency and
    /// throughput at 1, 8 and 32 clients, search alone, 20 tag moves under
    /// load, RSS. Builds a ~10,000-chunk bundle once (minutes) and keeps it
    /// under --bundle-cache. Needs `cargo build --bin shelf` and
    /// `scripts/setup` first.
    Serve {
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
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/serve.json")]
        json_out: PathBuf,
    },
    /// The embedding model and its layout, fp32 against int8 side by side
    /// in one run: in-process layouts (sessions x threads, queries alone or
    /// batched), cold builds (chunks/s, peak RSS, reproducibility),
    /// incremental == cold, and servers at 1, 8 and 32 clients with
    /// distinct queries, repeated queries, start to ready and RSS. With
    /// --baseline-shelf, also a shelf from before int8 (the targets are
    /// ratios to it). Needs `cargo build --bin shelf` and `scripts/setup`.
    Embed {
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
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/embed.json")]
        json_out: PathBuf,
    },
    /// The store's embedding cache: a cold single build against N shards
    /// run one after another and an assemble build (each shard's share, the
    /// projected wall time with N runners, digest equality), and new-branch
    /// builds with the cache warm. Needs `cargo build --bin shelf` and
    /// `scripts/setup` first.
    Cache {
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
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/cache.json")]
        json_out: PathBuf,
    },
    /// Retrieval quality on real issues (../shared/eval/swebench_dev.jsonl):
    /// builds each repository at each base commit (incrementally, kept under
    /// --bundle-cache), then scores lexical, semantic and hybrid search and a
    /// whole-file BM25 baseline, per repository and overall, with and
    /// without the rows whose query names a gold path.
    Swebench {
        /// The evaluation set (JSONL).
        #[arg(long, default_value = "../shared/eval/swebench_dev.jsonl")]
        queries: PathBuf,
        /// Directory of fetched repositories: <dir>/<owner>+<name>/repo (bare).
        #[arg(long, default_value = "/work/.mirror")]
        mirror: PathBuf,
        /// Where the built bundles are kept between runs.
        #[arg(long, default_value = "target/bench-cache")]
        bundle_cache: PathBuf,
        /// Only this repository (owner/name); repeatable.
        #[arg(long)]
        only: Vec<String>,
        /// Build the bundles and stop.
        #[arg(long)]
        build_only: bool,
        /// Also score the ranking grid of `history --sweep`.
        #[arg(long)]
        sweep: bool,
        /// A model directory instead of the provisioned default, for
        /// building and asking (e.g. .runtime/model-fp32).
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// The chunker to build with (lines-v1 or syntax-v1).
        #[arg(long, default_value = "lines-v1")]
        chunker: String,
        /// How the bundles' definitions index is made (syntax, lines or
        /// off; bundles of another than the default are kept apart).
        #[arg(long, default_value = "syntax")]
        definitions: String,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/swebench.json")]
        json_out: PathBuf,
    },
    /// The development issues asked of all four of their repositories at
    /// once (one server, one store root): every way of fusing the
    /// repositories' rankings, scored against the row's own repository's
    /// gold files. Uses the bundles `swebench` builds.
    Across {
        /// The evaluation set (JSONL).
        #[arg(long, default_value = "../shared/eval/swebench_dev.jsonl")]
        queries: PathBuf,
        /// Directory of fetched repositories: <dir>/<owner>+<name>/repo (bare).
        #[arg(long, default_value = "/work/.mirror")]
        mirror: PathBuf,
        /// Where the built bundles are kept between runs.
        #[arg(long, default_value = "target/bench-cache")]
        bundle_cache: PathBuf,
        /// A model directory instead of the provisioned default.
        #[arg(long, value_name = "DIR")]
        model: Option<PathBuf>,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/across.json")]
        json_out: PathBuf,
    },
    /// Retrieval quality on golden queries mined from public repositories'
    /// history (`shelf eval --from-history`): each repository's recent
    /// commits that change 1-3 source files, asked of their parents'
    /// bundles (built incrementally, kept under --bundle-cache), by the
    /// ranking as it was and by today's defaults, with each part off and
    /// alone; per repository and overall.
    History {
        /// Repositories (owner/name); default: the five held-out ones.
        #[arg(long = "repo")]
        repos: Vec<String>,
        /// Queries mined per repository.
        #[arg(long, default_value_t = 60)]
        queries: usize,
        /// Directory of fetched repositories: <dir>/<owner>+<name>/repo (bare).
        #[arg(long, default_value = "/work/.mirror")]
        mirror: PathBuf,
        /// Where the parents' bundles are kept between runs.
        #[arg(long, default_value = "target/bench-cache/history")]
        bundle_cache: PathBuf,
        /// Chunkers to build the parents' bundles with, each its own set
        /// (the headline: plain ranking on lines-v1 against the defaults on
        /// the default chunker).
        #[arg(long = "chunker", default_values_t = vec!["lines-v1".to_string(), "syntax-v1".to_string()])]
        chunkers: Vec<String>,
        /// How the parents' definitions index is made (syntax, lines or off).
        #[arg(long, default_value = "syntax")]
        definitions: String,
        /// Also score a grid of the parameters.
        #[arg(long)]
        sweep: bool,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/history.json")]
        json_out: PathBuf,
    },
    /// One server for many repositories beside one for a single
    /// repository, in the same run: --repos small generated repositories
    /// (built once with `shelf build`, kept under --bundle-cache) published
    /// under one local store root. Start to ready, RSS, query latency for
    /// one repository and across all, how long a newly published
    /// repository takes to be listed, and whether the right repository
    /// comes first across all of them. Needs `cargo build --bin shelf`
    /// and `scripts/setup` first.
    Repos {
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
        /// Repositories published while the root server runs (the median
        /// time to be listed is reported).
        #[arg(long, default_value_t = 10)]
        appear_runs: usize,
        /// The servers' --poll-interval, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        poll_ms: u64,
        /// Where the built bundles are kept between runs.
        #[arg(long, default_value = "target/bench-cache")]
        bundle_cache: PathBuf,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/repos.json")]
        json_out: PathBuf,
    },
    /// What the assistant-facing surface costs, in one run: the size of
    /// the file texts (files.bin) in each development repository's bundle
    /// at HEAD (built once, kept under --bundle-cache), GET /v1/grep and
    /// /v1/file on the largest (pylint), and search_code over MCP against
    /// POST /v1/search on the same server with the same queries. Needs
    /// `cargo build --bin shelf`, `scripts/setup` and the mirrors.
    Mcp {
        /// Directory of fetched repositories: <dir>/<owner>+<name>/repo (bare).
        #[arg(long, default_value = "/work/.mirror")]
        mirror: PathBuf,
        /// Where the built bundles are kept between runs (under mcp/).
        #[arg(long, default_value = "target/bench-cache")]
        bundle_cache: PathBuf,
        /// The development issues (their texts are the long queries).
        #[arg(long, default_value = "../shared/eval/swebench_dev.jsonl")]
        queries: PathBuf,
        /// Requests per grep pattern and per read.
        #[arg(long, default_value_t = 50)]
        grep_requests: usize,
        /// Times each query is asked per transport, sequentially and in
        /// each concurrent phase.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Clients of the concurrent phases.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/mcp.json")]
        json_out: PathBuf,
    },
    /// Index scalar kind and ef_add: recall@10 against exact search, size,
    /// build and search time, over a real bundle's vectors.
    Quantization {
        /// A bundle built by `shelf build` (a real repository, not generated text).
        #[arg(long)]
        bundle: PathBuf,
        /// Queries (the first line of evenly spaced chunks, embedded).
        #[arg(long, default_value_t = 300)]
        queries: usize,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/quantization.json")]
        json_out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build {
            files,
            runs,
            direct_runs,
            seed,
            json_out,
        } => build_bench::run(&build_bench::Options {
            files,
            runs,
            direct_runs,
            seed,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Serve {
            files,
            seed,
            requests,
            max_seconds,
            swaps,
            starts,
            bundle_cache,
            json_out,
        } => serve_bench::run(&serve_bench::Options {
            files,
            seed,
            requests,
            max_seconds,
            swaps,
            starts,
            bundle_cache,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Embed {
            files,
            seed,
            runs,
            rounds,
            requests,
            max_seconds,
            starts,
            layout_chunks,
            layout_queries,
            baseline_shelf,
            baseline_runtime,
            json_out,
        } => embed_bench::run(&embed_bench::Options {
            files,
            seed,
            runs,
            rounds,
            requests,
            max_seconds,
            starts,
            layout_chunks,
            layout_queries,
            baseline_shelf,
            baseline_runtime,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Cache {
            files,
            seed,
            shards,
            runs,
            json_out,
        } => cache_bench::run(&cache_bench::Options {
            files,
            seed,
            shards,
            runs,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Swebench {
            queries,
            mirror,
            bundle_cache,
            only,
            build_only,
            sweep,
            model,
            chunker,
            definitions,
            json_out,
        } => swebench::run(&swebench::Options {
            queries,
            mirror,
            bundle_cache,
            only,
            build_only,
            sweep,
            model,
            chunker: chunker.parse().map_err(anyhow::Error::msg)?,
            definitions: definitions.parse().map_err(anyhow::Error::msg)?,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Across {
            queries,
            mirror,
            bundle_cache,
            model,
            json_out,
        } => across_bench::run(&swebench::Options {
            queries,
            mirror,
            bundle_cache,
            only: Vec::new(),
            build_only: false,
            sweep: false,
            model,
            chunker: shelf_builder::chunker::Chunker::default(),
            definitions: Default::default(),
            json_out,
            command: std::env::args().collect(),
        }),
        Command::History {
            repos,
            queries,
            mirror,
            bundle_cache,
            chunkers,
            definitions,
            sweep,
            json_out,
        } => history_bench::run(&history_bench::Options {
            repos: if repos.is_empty() {
                history_bench::HELD_OUT.map(str::to_string).to_vec()
            } else {
                repos
            },
            queries,
            mirror,
            bundle_cache,
            chunkers: chunkers
                .iter()
                .map(|c| c.parse().map_err(anyhow::Error::msg))
                .collect::<anyhow::Result<_>>()?,
            definitions: definitions.parse().map_err(anyhow::Error::msg)?,
            sweep,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Repos {
            repos,
            files,
            seed,
            clients,
            requests,
            max_seconds,
            starts,
            appear_runs,
            poll_ms,
            bundle_cache,
            json_out,
        } => repos_bench::run(&repos_bench::Options {
            repos,
            files,
            seed,
            clients,
            requests,
            max_seconds,
            starts,
            appear_runs,
            poll_ms,
            bundle_cache,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Mcp {
            mirror,
            bundle_cache,
            queries,
            grep_requests,
            rounds,
            clients,
            json_out,
        } => mcp_bench::run(&mcp_bench::Options {
            mirror,
            bundle_cache,
            queries,
            grep_requests,
            rounds,
            clients,
            json_out,
            command: std::env::args().collect(),
        }),
        Command::Quantization {
            bundle,
            queries,
            json_out,
        } => quantization::run(&bundle, queries, &json_out),
    }
}
