//! `shelf-bench`: shelf's benchmarks, one subcommand each. Every benchmark
//! is a `shelf_bench::harness::Benchmark` run by the same harness; this
//! file only lists them: speed and memory (`perf`), then retrieval quality
//! (`quality`).

use clap::{Parser, Subcommand};
use shelf_bench::harness::Run;
use shelf_bench::{perf, quality};

#[derive(Debug, Parser)]
#[command(
    name = "shelf-bench",
    about = "shelf's benchmarks: print a table, write JSON"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Each benchmark's help is its options struct's doc comment.
#[derive(Debug, Subcommand)]
enum Command {
    Build(Run<perf::build::Build>),
    Serve(Run<perf::serve::Serve>),
    Embed(Run<perf::embed::Embed>),
    Cache(Run<perf::cache::Cache>),
    Repos(Run<perf::repos::Repos>),
    Mcp(Run<perf::mcp::Mcp>),
    Quantization(Run<perf::quantization::Quantization>),
    Commit(Run<perf::commit::Commit>),
    Agreement(Run<perf::agreement::Agreement>),
    Web(Run<perf::web::Web>),
    Limit(Run<perf::limit::Limit>),
    Swebench(Run<quality::swebench::Swebench>),
    Across(Run<quality::across::Across>),
    History(Run<quality::history::History>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Build(r) => r.run(),
        Command::Serve(r) => r.run(),
        Command::Embed(r) => r.run(),
        Command::Cache(r) => r.run(),
        Command::Repos(r) => r.run(),
        Command::Mcp(r) => r.run(),
        Command::Quantization(r) => r.run(),
        Command::Commit(r) => r.run(),
        Command::Agreement(r) => r.run(),
        Command::Web(r) => r.run(),
        Command::Limit(r) => r.run(),
        Command::Swebench(r) => r.run(),
        Command::Across(r) => r.run(),
        Command::History(r) => r.run(),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use shelf_bench::harness::Benchmark;
    use shelf_bench::{perf, quality};

    use super::Cli;

    /// Each subcommand is named as its benchmark, whose name is also its
    /// results file's: `shelf-bench serve` writes `bench-results/serve.json`.
    #[test]
    fn subcommands_are_named_as_their_benchmarks() {
        let names: Vec<String> = Cli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_string())
            .collect();
        let benchmarks = [
            perf::build::Build::NAME,
            perf::serve::Serve::NAME,
            perf::embed::Embed::NAME,
            perf::cache::Cache::NAME,
            perf::repos::Repos::NAME,
            perf::mcp::Mcp::NAME,
            perf::quantization::Quantization::NAME,
            perf::commit::Commit::NAME,
            perf::agreement::Agreement::NAME,
            perf::web::Web::NAME,
            perf::limit::Limit::NAME,
            quality::swebench::Swebench::NAME,
            quality::across::Across::NAME,
            quality::history::History::NAME,
        ];
        assert_eq!(names, benchmarks);
        Cli::command().debug_assert();
    }
}
