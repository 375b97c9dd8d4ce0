//! `shelf-bench`: shelf's benchmarks. Each prints a table (metric, value,
//! target, pass/fail) on stdout, progress on stderr, and writes every raw
//! number to a JSON file so results can be compared across commits.

mod build_bench;
mod corpus;
mod direct;
mod machine;
mod progress;
mod quantization;
mod rng;
mod rss;
mod shelf_cli;
mod stats;
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
        Command::Quantization {
            bundle,
            queries,
            json_out,
        } => quantization::run(&bundle, queries, &json_out),
    }
}
