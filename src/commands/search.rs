//! `shelf search QUERY --bundle FILE | --server URL`: ask from a terminal.
//! With a bundle, the engine answers here (`shelf_search::Engine`, what the
//! server runs); with a server, it is one `POST /v1/search`. Both print
//! the same `Answer`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{Value, json};
use shelf_embed::{Embedder, Runtime};
use shelf_search::{Engine, MappedBundle, RawRequest, Request, RequestLimits, Target};

use crate::cli::SearchArgs;
use crate::output::outln;

/// Runs one query and prints the results.
pub fn run(args: SearchArgs) -> anyhow::Result<ExitCode> {
    let raw = RawRequest {
        query: args.query.clone(),
        k: args.k,
        path: args.path.clone(),
        languages: args.language.clone(),
        mode: Some(args.mode.clone()),
        group: Some(if args.files { "file" } else { "chunk" }.into()),
        kind: args.kind.clone(),
    };
    // Validated here for both paths, so a bad flag is refused before any
    // model loads or any request is sent.
    let request =
        Request::new(raw.clone(), &RequestLimits::default()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = match (&args.bundle, &args.server) {
        (Some(bundle), None) => local(&args, bundle, &request)?,
        (None, Some(server)) => remote(&args, server, &raw)?,
        _ => anyhow::bail!("pass exactly one of --bundle FILE and --server URL"),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_human(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies and opens the bundle, then asks the engine the server runs.
fn local(args: &SearchArgs, bundle: &std::path::Path, request: &Request) -> anyhow::Result<Value> {
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
    let embedder = Embedder::load(&runtime, &super::embedder_options(&args.runtime))?;
    let cache_dir = args.cache.clone().unwrap_or_else(default_cache);
    let mapped = MappedBundle::open_file(bundle, &cache_dir, embedder.identity())
        .with_context(|| format!("opening {}", bundle.display()))?;
    let engine = Engine::new(Arc::new(embedder));
    let repo = mapped.default_repo_name();
    let target = Target {
        repo: &repo,
        bundle: &mapped,
        tag: None,
    };
    let answer = engine.answer(&[target], request)?;
    // Through its JSON text, so numbers print as the server sends them
    // (an f32 turned straight into a `Value` would print as a long f64).
    Ok(serde_json::from_slice(&serde_json::to_vec(&answer)?)?)
}

/// `POST /v1/search` on a server.
fn remote(args: &SearchArgs, server: &str, raw: &RawRequest) -> anyhow::Result<Value> {
    let base = server.trim_end_matches('/');
    let url: http::Uri = format!("{base}/v1/search")
        .parse()
        .with_context(|| format!("--server '{server}' is not a URL like http://127.0.0.1:7700"))?;
    let mut body = json!({
        "query": raw.query,
        "mode": raw.mode,
        "group": raw.group,
    });
    if let Some(k) = raw.k {
        body["k"] = json!(k);
    }
    if let Some(path) = &raw.path {
        body["path"] = json!(path);
    }
    if !raw.languages.is_empty() {
        body["language"] = json!(raw.languages);
    }
    if !args.repo.is_empty() {
        body["repo"] = json!(args.repo);
    }
    if let Some(kind) = &raw.kind {
        body["kind"] = json!(kind);
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
    let many = answer["bundle"].is_null();
    outln!(
        "{} results from {} ({:.1} ms)",
        results.len(),
        answered_by(answer),
        answer["took_ms"].as_f64().unwrap_or(0.0)
    );
    for r in &results {
        outln!(
            "\n{:.3}  {}{}:{}-{}",
            r["score"].as_f64().unwrap_or(0.0),
            repo_prefix(r, many),
            r["path"].as_str().unwrap_or(""),
            r["start_line"],
            r["end_line"]
        );
        for line in r["text"].as_str().unwrap_or("").lines().take(6) {
            outln!("    {line}");
        }
    }
}

/// `repo @ commit (tag t)` for one bundle, or the repositories' names when
/// several answered.
fn answered_by(answer: &Value) -> String {
    let describe = |bundle: &Value| {
        let commit = bundle["commit"].as_str().unwrap_or("");
        format!(
            "{} @ {}{}",
            bundle["repo"]
                .as_str()
                .or(bundle["repository"].as_str())
                .unwrap_or("?"),
            &commit[..12.min(commit.len())],
            bundle["tag"]
                .as_str()
                .map(|t| format!(" (tag {t})"))
                .unwrap_or_default()
        )
    };
    if !answer["bundle"].is_null() {
        return describe(&answer["bundle"]);
    }
    let repos: Vec<String> = answer["repos"]
        .as_array()
        .map(|rs| rs.iter().map(describe).collect())
        .unwrap_or_default();
    format!("{} repositories: {}", repos.len(), repos.join(", "))
}

/// `repo:` before a path when results come from several repositories.
fn repo_prefix(result: &Value, many: bool) -> String {
    match result["repo"].as_str() {
        Some(repo) if many => format!("{repo}:"),
        _ => String::new(),
    }
}

fn print_files(answer: &Value, files: &[Value]) {
    let many = answer["bundle"].is_null();
    outln!(
        "{} files from {} ({:.1} ms, {})",
        files.len(),
        answered_by(answer),
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
        outln!(
            "{:>3}. {}{}  (lines {})",
            f["rank"],
            repo_prefix(f, many),
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
