//! `shelf search QUERY --bundle FILE | --server URL`: ask from a terminal.
//! With a bundle, the query runs here through the same code the server
//! runs; with a server, it is one `POST /v1/search`. Both print the same.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use shelf_embed::{Embedder, Runtime};
use shelf_server::LiveBundle;
use shelf_server::cache::BundleCache;
use shelf_server::query::Filter;
use shelf_server::search::{self, Mode};

use crate::cli::SearchArgs;

/// Most results one query may ask for (the server's default limit too).
const MAX_K: usize = 100;

/// Runs one query and prints the results.
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
    let answer = match (&args.bundle, &args.server) {
        (Some(bundle), None) => local(&args, bundle)?,
        (None, Some(server)) => remote(&args, server)?,
        _ => anyhow::bail!("pass exactly one of --bundle FILE and --server URL"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_human(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies and opens the bundle, embeds the query, ranks: the engine the
/// server runs.
fn local(args: &SearchArgs, bundle: &std::path::Path) -> anyhow::Result<Value> {
    let filter = Filter::new(args.path.as_deref(), &args.language).map_err(anyhow::Error::msg)?;
    let mode: Mode = args.mode.parse().map_err(anyhow::Error::msg)?;
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
    let embedder = Embedder::load(&runtime, &super::embedder_options(&args.runtime))?;
    let cache_dir = args.cache.clone().unwrap_or_else(default_cache);
    let cache = BundleCache::open(&cache_dir, usize::MAX)
        .with_context(|| format!("opening the cache {}", cache_dir.display()))?;
    let (digest, dir) = cache
        .install_file(bundle, None)
        .with_context(|| format!("opening {}", bundle.display()))?;
    let live = LiveBundle::open_dir(&dir, digest, embedder.identity())
        .with_context(|| format!("opening {}", bundle.display()))?;
    let started = std::time::Instant::now();
    let vectors = if mode.needs_vectors() {
        embedder.embed_queries(&search::windows(
            &embedder,
            &args.query,
            search::MAX_WINDOWS,
        ))?
    } else {
        Vec::new()
    };
    let embed_ms = started.elapsed().as_secs_f64() * 1e3;
    let t = std::time::Instant::now();
    let depth = search::depth(args.k, args.files);
    let ranking = search::rank(&live, &args.query, &vectors, mode, &filter, depth)?;
    let (results, files) = if args.files {
        (
            None,
            Some(search::file_results(&live, &ranking.chunks, args.k)?),
        )
    } else {
        (
            Some(search::chunk_results(&live, &ranking.chunks, args.k)?),
            None,
        )
    };
    let search_ms = t.elapsed().as_secs_f64() * 1e3;
    let source = &live.manifest.source;
    let mut answer = json!({
        "query": args.query,
        "k": args.k,
        "mode": ranking.mode,
        "group": if args.files { "file" } else { "chunk" },
        "bundle": {
            "digest": live.digest,
            "tag": null,
            "repository": source.repository,
            "commit": source.commit,
        },
        "took_ms": started.elapsed().as_secs_f64() * 1e3,
        "timings_ms": { "embed": embed_ms, "search": search_ms },
    });
    if let Some(r) = results {
        answer["results"] = json!(r);
    }
    if let Some(f) = files {
        answer["files"] = json!(f);
    }
    Ok(answer)
}

/// `POST /v1/search` on a server.
fn remote(args: &SearchArgs, server: &str) -> anyhow::Result<Value> {
    let base = server.trim_end_matches('/');
    let url: http::Uri = format!("{base}/v1/search")
        .parse()
        .with_context(|| format!("--server '{server}' is not a URL like http://127.0.0.1:7700"))?;
    let mut body = json!({
        "query": args.query,
        "k": args.k,
        "mode": args.mode,
        "group": if args.files { "file" } else { "chunk" },
    });
    if let Some(path) = &args.path {
        body["path"] = json!(path);
    }
    if !args.language.is_empty() {
        body["language"] = json!(args.language);
    }
    let rt = super::runtime()?;
    let (status, bytes) = rt.block_on(crate::client::post_json(
        &url,
        args.token.as_deref(),
        serde_json::to_vec(&body)?,
    ))?;
    let value: Value = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{server} answered {status} with something that is not JSON: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )
    })?;
    if !status.is_success() {
        let message = value["error"]["message"].as_str().unwrap_or("no message");
        anyhow::bail!("{server} refused the search ({status}): {message}");
    }
    Ok(value)
}

fn print_human(answer: &Value) {
    if let Some(files) = answer["files"].as_array() {
        print_files(answer, files);
        return;
    }
    let results = answer["results"].as_array().cloned().unwrap_or_default();
    let bundle = &answer["bundle"];
    let commit = bundle["commit"].as_str().unwrap_or("");
    println!(
        "{} results from {} @ {}{} ({:.1} ms)",
        results.len(),
        bundle["repository"].as_str().unwrap_or("?"),
        &commit[..12.min(commit.len())],
        bundle["tag"]
            .as_str()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default(),
        answer["took_ms"].as_f64().unwrap_or(0.0)
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
}

fn print_files(answer: &Value, files: &[Value]) {
    let bundle = &answer["bundle"];
    let commit = bundle["commit"].as_str().unwrap_or("");
    println!(
        "{} files from {} @ {} ({:.1} ms, {})",
        files.len(),
        bundle["repository"].as_str().unwrap_or("?"),
        &commit[..12.min(commit.len())],
        answer["took_ms"].as_f64().unwrap_or(0.0),
        answer["mode"].as_str().unwrap_or("?")
    );
    for f in files {
        let lines: Vec<String> = f["chunks"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| format!("{}-{}", c["start_line"], c["end_line"]))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:>3}. {}  (lines {})",
            f["rank"],
            f["path"].as_str().unwrap_or(""),
            lines.join(", ")
        );
    }
}

/// `$XDG_CACHE_HOME/shelf/bundles`, else `~/.cache/shelf/bundles`.
pub fn default_cache() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("shelf")
        .join("bundles")
}
