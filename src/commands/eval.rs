//! `shelf eval`: how well a bundle (or a server) finds the files that
//! answer known queries, and the quality gate: the same queries against a
//! baseline bundle, failing when a metric drops by more than a margin.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use shelf_embed::{Embedder, Runtime};
use shelf_search::eval::{self, DEPTH, EvalQuery, Gate, Report, Summary};
use shelf_search::{Engine, MappedBundle, Mode};

use crate::cli::EvalArgs;
use crate::output::outln;

/// Exit code of a quality gate that failed: a metric dropped by more than
/// the margin. Errors (a bad golden file, a store that refuses) exit 1, so
/// CI can tell "worse" from "could not tell".
pub const GATE_FAILED: u8 = 3;

/// Evaluates, prints the report, and applies the gate when asked.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let queries = eval::read_queries(&args.queries)?;
    let mode: Mode = args.mode.parse().map_err(anyhow::Error::msg)?;
    if !(0.0..=1.0).contains(&args.max_drop) {
        anyhow::bail!(
            "--max-drop {} is out of range: give a share between 0 and 1",
            args.max_drop
        );
    }
    let gated = args.baseline.is_some() || args.baseline_bundle.is_some();
    // The model is loaded once for the candidate and the baseline.
    let engine = if args.bundle.is_some() || gated {
        let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
        let embedder = Embedder::load(&runtime, &super::embedder_options(&args.runtime))?;
        Some(Engine::new(Arc::new(embedder)))
    } else {
        None
    };
    let cache_dir = args
        .cache
        .clone()
        .unwrap_or_else(super::search::default_cache);
    let local = |path: &Path| -> anyhow::Result<Report> {
        let engine = engine
            .as_ref()
            .context("the model is needed to evaluate a bundle")?;
        let bundle = MappedBundle::open_file(path, &cache_dir, engine.encoder().identity())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(eval::evaluate(engine, &bundle, &queries, mode)?)
    };
    let candidate = match (&args.bundle, &args.server) {
        (Some(b), _) => local(b)?,
        (None, Some(url)) => remote(url, args.token.as_deref(), &queries, mode)?,
        (None, None) => anyhow::bail!("pass --bundle FILE or --server URL"),
    };
    let baseline = match (&args.baseline_bundle, &args.baseline) {
        (Some(b), _) => Some(local(b)?),
        (None, Some(tag)) => {
            let dir = tempfile::Builder::new()
                .prefix("shelf-baseline-")
                .tempdir()?;
            let path = super::runtime()?.block_on(async {
                let url = super::store_or_env(&args.store).with_context(|| {
                    format!("--baseline {tag} needs the store it is in: pass --store URL or set SHELF_STORE")
                })?;
                let store = super::open_url(&url, &args.s3).await?;
                let Some((record, _)) = shelf_store::tags::read_tag(&store, tag).await? else {
                    anyhow::bail!(
                        "baseline tag '{tag}' does not exist in {}: nothing to compare with (drop --baseline for the first release)",
                        store.describe()
                    );
                };
                Ok(shelf_store::fetch_bundle(&store, &record.digest, dir.path()).await?)
            })?;
            Some(local(&path)?)
        }
        (None, None) => None,
    };
    let gate = baseline
        .as_ref()
        .map(|b| eval::gate(&candidate, b, args.max_drop));
    if args.json {
        let out = json!({
            "mode": mode,
            "queries": queries.len(),
            "candidate": candidate,
            "baseline": baseline,
            "gate": gate,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_report(&candidate, mode, &queries);
        if let (Some(b), Some(g)) = (&baseline, &gate) {
            print_gate(&candidate, b, g);
        }
    }
    match gate {
        Some(g) if !g.passed() => {
            let worse: Vec<String> = g.worse.iter().map(|w| w.id.clone()).collect();
            eprintln!(
                "error: quality gate failed: {} dropped by more than {} (queries that got worse: {})",
                g.failed
                    .iter()
                    .map(|d| format!("{} {:.3} -> {:.3}", d.metric, d.baseline, d.candidate))
                    .collect::<Vec<_>>()
                    .join(", "),
                args.max_drop,
                if worse.is_empty() {
                    "none".into()
                } else {
                    worse.join(", ")
                }
            );
            Ok(ExitCode::from(GATE_FAILED))
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// Asks a server for each query's files (`group=file`).
fn remote(
    url: &str,
    token: Option<&str>,
    queries: &[EvalQuery],
    mode: Mode,
) -> anyhow::Result<Report> {
    let uri: http::Uri = format!("{}/v1/search", url.trim_end_matches('/'))
        .parse()
        .with_context(|| format!("--server '{url}' is not a URL like http://127.0.0.1:7700"))?;
    let rt = super::runtime()?;
    let mut scores = Vec::with_capacity(queries.len());
    for q in queries {
        let body = json!({ "query": q.query, "k": DEPTH, "mode": mode, "group": "file" });
        let (status, bytes) = rt.block_on(crate::client::post_json(
            &uri,
            token,
            serde_json::to_vec(&body)?,
        ))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{url} answered {status} with something that is not JSON"))?;
        if !status.is_success() {
            anyhow::bail!(
                "{url} refused query {} ({status}): {}",
                q.id,
                answer["error"]["message"].as_str().unwrap_or("no message")
            );
        }
        let files: Vec<String> = answer["files"]
            .as_array()
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| f["path"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        scores.push(eval::score(q, &files));
    }
    Ok(Report::new(scores))
}

fn row(label: &str, s: &Summary) -> String {
    format!("{label:<28} {}", s.cells())
}

fn print_report(r: &Report, mode: Mode, queries: &[EvalQuery]) {
    outln!(
        "{} queries, mode {}, files ranked as group=file ranks them (top {DEPTH})\n",
        queries.len(),
        serde_json::to_value(mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    );
    outln!("{:<28} {}", "", Summary::HEADINGS);
    for (g, s) in &r.groups {
        outln!("{}", row(g, s));
        if let Some(nl) = r.groups_without_leaks.get(g)
            && nl.n != s.n
        {
            outln!("{}", row("  without path leaks", nl));
        }
    }
    outln!("{}", row("all", &r.overall));
    if r.without_leaks.n != r.overall.n {
        outln!("{}", row("  without path leaks", &r.without_leaks));
    }
}

fn print_gate(candidate: &Report, baseline: &Report, g: &Gate) {
    outln!("\nquality gate (max drop {}):", g.max_drop);
    for ((m, c), (_, b)) in candidate
        .overall
        .gated()
        .iter()
        .zip(baseline.overall.gated())
    {
        let verdict = if g.failed.iter().any(|d| d.metric == *m) {
            "FAIL"
        } else {
            "ok"
        };
        outln!(
            "  {m:<10} baseline {b:.3}  candidate {c:.3}  ({:+.3})  {verdict}",
            c - b
        );
    }
    if !g.worse.is_empty() {
        outln!("  queries that got worse:");
        for w in &g.worse {
            let rank = |r: Option<usize>| r.map_or("-".to_string(), |r| r.to_string());
            outln!(
                "    {:<30} first gold file at rank {} -> {}, recall@5 {:.2} -> {:.2}",
                w.id,
                rank(w.baseline_rank),
                rank(w.candidate_rank),
                w.recall_at_5.0,
                w.recall_at_5.1
            );
        }
    }
}
