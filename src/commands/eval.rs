//! `shelf eval`: how well a bundle (or a server) finds the files that
//! answer known queries, and the quality gate: the same queries against a
//! baseline bundle, failing when a metric drops by more than a margin.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;
use shelf_builder::history::{self, HistoryQuery, MineOptions, Mined, ParentBuild};
use shelf_embed::{Embedder, Runtime};
use shelf_search::eval::{self, DEPTH, EvalQuery, Gate, Report, Summary};
use shelf_search::{Engine, MappedBundle, Mode};

use crate::cli::EvalArgs;
use crate::output::outln;

/// Exit code of a quality gate that failed: a metric dropped by more than
/// the margin. Errors (a bad golden file, a store that refuses) exit 1, so
/// CI can tell "worse" from "could not tell".
pub const GATE_FAILED: u8 = 3;

/// Golden queries mined from history, and what mining passed over.
struct History {
    mined: Mined,
    /// Queries dropped because none of their gold files is indexed (or,
    /// asked of one bundle, still exists at `--rev`).
    dropped: usize,
}

/// Evaluates, prints the report, and applies the gate when asked.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let mode: Mode = args.mode.parse().map_err(anyhow::Error::msg)?;
    if !(0.0..=1.0).contains(&args.max_drop) {
        anyhow::bail!(
            "--max-drop {} is out of range: give a share between 0 and 1",
            args.max_drop
        );
    }
    let gated = args.baseline.is_some() || args.baseline_bundle.is_some();
    let mut history = match args.from_history {
        Some(n) => Some(mine(&args, n)?),
        None => None,
    };
    let per_parent = history.is_some() && args.bundle.is_none() && args.server.is_none();
    if per_parent && gated {
        anyhow::bail!(
            "a quality gate compares two bundles: with --from-history, pass --bundle FILE (the candidate) as well"
        );
    }
    let queries: Vec<EvalQuery> = match (&args.queries, &mut history) {
        (Some(path), _) => eval::read_queries(path)?,
        (None, Some(h)) => {
            if !per_parent {
                // One bundle answers every query: the gold is what still
                // exists at --rev.
                let kept = history::present_at(&args.repo, &args.rev, &h.mined.queries)?;
                h.dropped = h.mined.queries.len() - kept.len();
                h.mined.queries = kept;
            }
            h.mined.queries.iter().map(as_eval_query).collect()
        }
        (None, None) => anyhow::bail!("pass --queries FILE or --from-history N"),
    };
    // The model is loaded once for the candidate, the baseline and builds.
    let engine = if args.bundle.is_some() || gated || per_parent {
        let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
        let embedder = Arc::new(Embedder::load(
            &runtime,
            &super::embedder_options(&args.runtime),
        )?);
        Some((Engine::new(embedder.clone()), embedder))
    } else {
        None
    };
    let cache_dir = args
        .cache
        .clone()
        .unwrap_or_else(super::search::default_cache);
    let local = |path: &Path| -> anyhow::Result<Report> {
        let (engine, _) = engine
            .as_ref()
            .context("the model is needed to evaluate a bundle")?;
        let bundle = MappedBundle::open_file(path, &cache_dir, engine.encoder().identity())
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(eval::evaluate(engine, &bundle, &queries, mode)?)
    };
    let candidate = match (&args.bundle, &args.server, &mut history) {
        (Some(b), _, _) => local(b)?,
        (None, Some(url), _) => remote(url, args.token.as_deref(), &queries, mode)?,
        (None, None, Some(h)) => {
            let (engine, embedder) = engine.as_ref().context("the model is loaded")?;
            at_parents(&args, h, engine, embedder, &cache_dir, mode)?
        }
        (None, None, None) => anyhow::bail!(
            "pass --bundle FILE or --server URL (or --from-history N to ask each commit's parent)"
        ),
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
            "queries": candidate.queries.len(),
            "history": history.as_ref().map(|h| json!({
                "repository": args.repo,
                "rev": args.rev,
                "scanned": h.mined.scanned,
                "mined": h.mined.queries.len() + h.dropped,
                "dropped_gold_not_indexed": h.dropped,
                "skipped": h.mined.skipped,
                "shallow": h.mined.shallow,
                "asked_of": if per_parent { "each commit's parent" } else { "one bundle" },
            })),
            "candidate": candidate,
            "baseline": baseline,
            "gate": gate,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        if let Some(h) = &history {
            print_history(h, per_parent);
        }
        print_report(&candidate, mode, candidate.queries.len());
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

/// Mines the queries `--from-history N` asks (and writes them with
/// `--write-queries`).
fn mine(args: &EvalArgs, n: usize) -> anyhow::Result<History> {
    if n == 0 {
        anyhow::bail!("--from-history 0 asks nothing: give the number of queries to mine");
    }
    let opts = MineOptions {
        limit: n,
        ..MineOptions::default()
    };
    let mined = history::mine(&args.repo, &args.rev, &opts)
        .with_context(|| format!("mining queries from {}", args.repo.display()))?;
    if mined.queries.is_empty() {
        let skipped: Vec<String> = mined
            .skipped
            .iter()
            .map(|(r, n)| format!("{n} {r}"))
            .collect();
        anyhow::bail!(
            "no commit among the {} read from {} at {} makes a query (passed over: {}){}",
            mined.scanned,
            args.repo.display(),
            args.rev,
            if skipped.is_empty() {
                "none".to_string()
            } else {
                skipped.join(", ")
            },
            if mined.shallow {
                "; the clone is shallow: fetch the history (git fetch --unshallow, or actions/checkout with fetch-depth: 0)"
            } else {
                ""
            }
        );
    }
    if let Some(path) = &args.write_queries {
        let mut text = String::new();
        for q in &mined.queries {
            text.push_str(&serde_json::to_string(&json!({
                "id": q.id,
                "query": q.query,
                "gold_files": q.gold,
                "commit": q.commit,
                "parent": q.parent,
            }))?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(History { mined, dropped: 0 })
}

fn as_eval_query(q: &HistoryQuery) -> EvalQuery {
    EvalQuery {
        id: q.id.clone(),
        group: None,
        query: q.query.clone(),
        gold: q.gold.clone(),
        commit: Some(q.commit.clone()),
    }
}

/// Each mined query asked of a bundle of its commit's parent: the parents
/// built (or found in the history cache), oldest first, each incremental
/// from the one before.
fn at_parents(
    args: &EvalArgs,
    h: &mut History,
    engine: &Engine,
    embedder: &Embedder,
    cache_dir: &Path,
    mode: Mode,
) -> anyhow::Result<Report> {
    let how = ParentBuild {
        repo: args.repo.clone(),
        name: None,
        config: args.config.clone(),
        cache: args
            .history_cache
            .clone()
            .unwrap_or_else(|| cache_dir.parent().unwrap_or(cache_dir).join("history")),
    };
    let quiet = crate::progress::is_quiet();
    let bundles = history::build_parents(&h.mined.queries, &how, embedder, &(), |line| {
        if !quiet {
            eprintln!("shelf eval: {line}");
        }
    })?;
    let mut scores = Vec::with_capacity(h.mined.queries.len());
    let mut kept = Vec::with_capacity(h.mined.queries.len());
    let mut open: Option<(&Path, MappedBundle, std::collections::HashSet<String>)> = None;
    for q in &h.mined.queries {
        let path = bundles
            .get(&q.parent)
            .with_context(|| format!("no bundle was built for {}", q.parent))?;
        if open.as_ref().is_none_or(|(p, _, _)| *p != path.as_path()) {
            let bundle = MappedBundle::open_file(path, cache_dir, engine.encoder().identity())
                .with_context(|| format!("opening {}", path.display()))?;
            let indexed = eval::indexed_paths(&bundle)?;
            open = Some((path.as_path(), bundle, indexed));
        }
        let Some((_, bundle, indexed)) = open.as_ref() else {
            continue;
        };
        let Some(query) = eval::keep_indexed(&as_eval_query(q), indexed) else {
            h.dropped += 1;
            continue;
        };
        let files = eval::rank_files(engine, bundle, &query.query, mode)?;
        scores.push(eval::score(&query, &files));
        kept.push(q.clone());
    }
    h.mined.queries = kept;
    Ok(Report::new(scores))
}

fn print_history(h: &History, per_parent: bool) {
    let skipped: Vec<String> = h
        .mined
        .skipped
        .iter()
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    outln!(
        "golden queries from history: {} of the {} commits read (passed over: {}){}; asked of {}\n",
        h.mined.queries.len(),
        h.mined.scanned,
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        },
        if h.dropped > 0 {
            format!(
                "; {} dropped: none of their files is {}",
                h.dropped,
                if per_parent {
                    "indexed"
                } else {
                    "in the bundle's commit"
                }
            )
        } else {
            String::new()
        },
        if per_parent {
            "a bundle of each commit's parent"
        } else {
            "one bundle"
        }
    );
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
    let client = crate::client::JsonClient::for_url(&uri)?;
    let mut scores = Vec::with_capacity(queries.len());
    for q in queries {
        let body = json!({ "query": q.query, "k": DEPTH, "mode": mode, "group": "file" });
        let (status, bytes) =
            rt.block_on(client.post_json(&uri, token, serde_json::to_vec(&body)?))?;
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

fn print_report(r: &Report, mode: Mode, queries: usize) {
    outln!(
        "{} queries, mode {}, files ranked as group=file ranks them (top {DEPTH})\n",
        queries,
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
