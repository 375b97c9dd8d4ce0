//! `shelf search QUERY --bundle FILE`: query a local bundle from a terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_server::LiveBundle;

use crate::cli::SearchArgs;

/// Most results one query may ask for.
const MAX_K: usize = 100;

/// Verifies and opens the bundle, embeds the query, prints the nearest chunks.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    if args.query.trim().is_empty() {
        anyhow::bail!(
            "the query is empty: say what to look for, e.g. shelf search \"where are tags moved\""
        );
    }
    if args.k == 0 || args.k > MAX_K {
        anyhow::bail!(
            "-k {} is out of range: ask for 1 to {MAX_K} results",
            args.k
        );
    }
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
    let embedder = Embedder::load(&runtime, &EmbedderOptions::default())?;
    let cache = args.cache.clone().unwrap_or_else(default_cache);
    let bundle = LiveBundle::open_file(&args.bundle, None, &cache, embedder.identity())
        .with_context(|| format!("opening {}", args.bundle.display()))?;
    let started = std::time::Instant::now();
    let query = embedder.embed_query(&args.query)?;
    let hits = bundle.search(&query, args.k)?;
    let took_ms = started.elapsed().as_secs_f64() * 1e3;
    let results: Vec<_> = hits
        .iter()
        .filter_map(|h| {
            let c = bundle.chunk(h.key)?;
            Some(serde_json::json!({
                "score": h.score,
                "path": c.path,
                "start_line": c.start_line,
                "end_line": c.end_line,
                "text": c.text,
            }))
        })
        .collect();
    if args.json {
        let out = serde_json::json!({
            "digest": bundle.digest.to_string(),
            "commit": bundle.manifest.source.commit,
            "took_ms": took_ms,
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} results from {} @ {} ({took_ms:.1} ms)",
        results.len(),
        bundle.manifest.source.repository,
        &bundle.manifest.source.commit[..12.min(bundle.manifest.source.commit.len())]
    );
    for r in &results {
        println!(
            "\n{:.3}  {}:{}-{}",
            r["score"].as_f64().unwrap_or(0.0),
            r["path"].as_str().unwrap_or(""),
            r["start_line"],
            r["end_line"]
        );
        for line in r["text"].as_str().unwrap_or("").lines().take(6) {
            println!("    {line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `$XDG_CACHE_HOME/shelf/bundles`, else `~/.cache/shelf/bundles`.
fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("shelf")
        .join("bundles")
}
