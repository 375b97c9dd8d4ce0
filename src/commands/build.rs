//! `shelf build`: one commit in, one bundle out.

use std::process::ExitCode;

use anyhow::Context;
use shelf_builder::{BuildReport, BuildRequest};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};

use crate::cli::BuildArgs;
use crate::progress;

/// Builds, then prints the summary (table on stderr, or JSON on stdout).
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
    let embedder = Embedder::load(&runtime, &EmbedderOptions::default())?;
    let request = BuildRequest {
        repo: args.repo.clone(),
        rev: args.rev.clone(),
        out_dir: args.out.clone(),
        previous: args.previous.clone(),
        config: args.config.clone(),
        name: args.name.clone(),
    };
    let observer = progress::for_stderr(args.json);
    let report = shelf_builder::build(&request, &embedder, observer.as_ref())
        .with_context(|| format!("building {} at {}", args.repo.display(), args.rev))?;
    drop(observer);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_summary(r: &BuildReport) {
    let ms = |k: &str| r.timings_ms.get(k).copied().unwrap_or(0);
    println!("built {}", r.digest);
    println!("  bundle    {} ({} bytes)", r.bundle_path, r.bundle_bytes);
    println!(
        "  source    {} @ {}{}",
        r.repository,
        r.commit,
        r.git_ref
            .as_deref()
            .map(|g| format!(" ({g})"))
            .unwrap_or_default()
    );
    println!(
        "  files     {} in tree, {} indexed, {} skipped",
        r.files.seen,
        r.files.indexed,
        r.files.skipped.values().sum::<u64>()
    );
    for (reason, n) in &r.files.skipped {
        let examples = r
            .files
            .skipped_examples
            .get(reason)
            .cloned()
            .unwrap_or_default();
        println!("            {n:>6} {reason}: {}", examples.join(", "));
    }
    if r.files.decoded_lossy > 0 {
        println!(
            "            {} files were not UTF-8 and were decoded lossily",
            r.files.decoded_lossy
        );
    }
    println!(
        "  chunks    {} total, {} embedded, {} reused",
        r.chunks.total, r.chunks.embedded, r.chunks.reused
    );
    println!(
        "  time      {} ms (read {}, chunk {}, embed {}, index {}, pack {})",
        ms("total"),
        ms("read"),
        ms("chunk"),
        ms("embed"),
        ms("index"),
        ms("pack")
    );
}
