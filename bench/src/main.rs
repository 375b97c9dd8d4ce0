//! `shelf-bench`: shelf's benchmarks, one subcommand each. Every benchmark
//! is a `shelf_bench::harness::Benchmark` run by the same harness; this
//! file only lists them (the retrieval-quality ones still the old way).

mod across_bench;
mod history_bench;
// The old modules the quality benchmarks still use until they move onto
// the harness (the next commit); the parts the others used are unused now.
#[allow(dead_code)]
mod load;
#[allow(dead_code)]
mod machine;
mod memo;
mod progress;
#[allow(dead_code)]
mod shelf_cli;
#[allow(dead_code)]
mod stats;
mod swebench;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use shelf_bench::harness::Run;
use shelf_bench::perf;

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
    /// Build throughput: cold and incremental builds, the embedder alone.
    Build(Run<perf::build::Build>),
    /// The query server under load, swaps under load, start to ready.
    Serve(Run<perf::serve::Serve>),
    /// fp32 against int8 (and a shelf from before), side by side.
    Embed(Run<perf::embed::Embed>),
    /// The store's embedding cache and sharded builds.
    Cache(Run<perf::cache::Cache>),
    /// One server for many repositories beside one for a single one.
    Repos(Run<perf::repos::Repos>),
    /// File texts' size, grep and read_file, MCP against REST.
    Mcp(Run<perf::mcp::Mcp>),
    /// Index scalar kind and ef_add over a real bundle's vectors.
    Quantization(Run<perf::quantization::Quantization>),
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
        /// Also score a grid of the parameters.
        #[arg(long)]
        sweep: bool,
        /// Where to write the JSON results.
        #[arg(long, default_value = "bench-results/history.json")]
        json_out: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Build(r) => r.run(),
        Command::Serve(r) => r.run(),
        Command::Embed(r) => r.run(),
        Command::Cache(r) => r.run(),
        Command::Repos(r) => r.run(),
        Command::Mcp(r) => r.run(),
        Command::Quantization(r) => r.run(),
        Command::Swebench {
            queries,
            mirror,
            bundle_cache,
            only,
            build_only,
            sweep,
            model,
            chunker,
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
            json_out,
            command: std::env::args().collect(),
        }),
        Command::History {
            repos,
            queries,
            mirror,
            bundle_cache,
            chunkers,
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
            sweep,
            json_out,
            command: std::env::args().collect(),
        }),
    }
}
