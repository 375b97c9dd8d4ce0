//! `shelf-bench history`: see [`History`].

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shelf_builder::chunker::Chunker;
use shelf_builder::definitions::Extractor;
use shelf_builder::history::{self, MineOptions, ParentBuild};
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_search::eval::{self, EvalQuery, QueryScore, Report, Summary};
use shelf_search::{Engine, MappedBundle, QueryEncoder};

use crate::fixtures::devset::git_dir;
use crate::fixtures::ranking::{Memo, rank_files, variants};
use crate::harness::stats::median;
use crate::harness::{Bench, Benchmark, Machine, runtime};

/// Retrieval quality on golden queries mined from public repositories'
/// history (`shelf eval --from-history`).
///
/// The same mining and the same parent bundles as `shelf eval`, for
/// repositories fetched outside this checkout (bare clones under --mirror,
/// never committed). Each repository's most recent commits that change 1-3
/// source files are mined, every parent is built (oldest first, each
/// incremental from the one before, kept under --bundle-cache), and every
/// query is asked of its parent's bundle by the ranking as it was (`plain`:
/// RRF of BM25 and vectors, files by their best three chunks), by today's
/// defaults, and by each default with one part switched off, or one part
/// alone: the measurement that decides which parts stay. Per repository and
/// overall; every query's top files in the JSON.
#[derive(Debug, Clone, clap::Args)]
pub struct History {
    /// Repositories (owner/name); by default the held-out ones.
    #[arg(long = "repo", default_values = HELD_OUT)]
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
    /// Chunkers to build the parents' bundles with, each its own set (the
    /// headline: plain ranking on lines-v1 against the defaults on the
    /// default chunker).
    #[arg(long = "chunker", default_values = ["lines-v1", "syntax-v1"], value_parser = Chunker::from_str)]
    chunkers: Vec<Chunker>,
    /// How the parents' definitions index is made (syntax, lines or off).
    #[arg(long, default_value = "syntax", value_parser = Extractor::from_str)]
    definitions: Extractor,
    /// Also score a grid of the parameters (slow to read, same cost to run).
    #[arg(long)]
    sweep: bool,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoOut {
    scanned: usize,
    skipped: BTreeMap<String, usize>,
    mined: usize,
    dropped_gold_not_indexed: usize,
    parents: usize,
    /// The mined queries kept (`shelf_builder::history::HistoryQuery`).
    queries: Vec<Value>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantOut {
    report: Report,
    /// Median milliseconds of the answer after embedding (ranking, the
    /// factors, grouping, reading the results).
    search_ms_p50: f64,
}

/// What `shelf-bench history` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    chunkers: Vec<String>,
    /// The two variants the headline compares.
    headline: (String, String),
    repositories: BTreeMap<String, RepoOut>,
    variants: BTreeMap<String, VariantOut>,
}

/// The comparison the targets are about: the defaults of d5804de
/// (`today`) on `lines-v1` bundles against the defaults on the default
/// chunker's (or the first chunker asked for, when those were not built).
fn headline(opts: &History) -> (String, String) {
    let has = |c: Chunker| opts.chunkers.contains(&c);
    let first = opts.chunkers.first().copied().unwrap_or_default();
    let before = if has(Chunker::LinesV1) {
        Chunker::LinesV1
    } else {
        first
    };
    let after = if has(Chunker::default()) {
        Chunker::default()
    } else {
        first
    };
    (
        format!("today @{}", before.name()),
        format!("default @{}", after.name()),
    )
}

/// The repositories nobody tuned on (the default list).
pub const HELD_OUT: [&str; 5] = [
    "BurntSushi/ripgrep",
    "tokio-rs/axum",
    "go-chi/chi",
    "colinhacks/zod",
    "psf/requests",
];

impl Benchmark for History {
    const NAME: &'static str = "history";
    type Results = Results;

    // Mines, builds the parents and asks every query of every variant.
    fn measure(&self, b: &Bench) -> Result<Results> {
        let opts = self;
        let work = b.work();
        let memo = Arc::new(Memo::new(Embedder::load(
            &runtime()?,
            &EmbedderOptions::default(),
        )?));
        let variants = variants(opts.sweep);
        let engines: Vec<(String, Engine)> = variants
            .iter()
            .map(|(n, t)| (n.clone(), Engine::new(memo.clone()).with_tuning(*t)))
            .collect();
        let mut repositories = BTreeMap::new();
        let mut scores: BTreeMap<String, Vec<QueryScore>> = BTreeMap::new();
        let mut millis: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for repo in &opts.repos {
            let git_dir = git_dir(&opts.mirror, repo);
            let mined = history::mine(
                &git_dir,
                "HEAD",
                &MineOptions {
                    limit: opts.queries,
                    ..MineOptions::default()
                },
            )
            .with_context(|| format!("mining {repo} at {}", git_dir.display()))?;
            b.say(format!(
                "{repo}: {} queries from {} commits",
                mined.queries.len(),
                mined.scanned
            ));
            let mut kept = Vec::new();
            let mut dropped = 0;
            let mut parents = 0;
            for chunker in &opts.chunkers {
                let config = work.join(format!("{}.toml", chunker.name()));
                std::fs::write(
                    &config,
                    format!(
                        "[build]\nchunker = \"{}\"\ndefinitions = \"{}\"\n",
                        chunker.name(),
                        opts.definitions.name()
                    ),
                )?;
                let how = ParentBuild {
                    repo: git_dir.clone(),
                    name: Some(repo.clone()),
                    config: Some(config),
                    cache: opts.bundle_cache.join(repo.replace('/', "+")),
                };
                std::fs::create_dir_all(&how.cache)?;
                let bundles =
                    history::build_parents(&mined.queries, &how, &memo.inner, &(), |l| {
                        b.say(format!("{repo} {}: {l}", chunker.name()))
                    })?;
                parents = bundles.len();
                let first_set = chunker == &opts.chunkers[0];
                let mut open: Option<(PathBuf, MappedBundle, HashSet<String>)> = None;
                for (qi, q) in mined.queries.iter().enumerate() {
                    let path = bundles.get(&q.parent).context("a parent bundle")?;
                    if open.as_ref().is_none_or(|(o, _, _)| o != path) {
                        let bundle =
                            MappedBundle::open_file(path, &work.join("cache"), memo.identity())?;
                        let indexed = eval::indexed_paths(&bundle)?;
                        open = Some((path.clone(), bundle, indexed));
                    }
                    let Some((_, bundle, indexed)) = open.as_ref() else {
                        continue;
                    };
                    let query = EvalQuery {
                        id: q.id.clone(),
                        group: Some(repo.clone()),
                        query: q.query.clone(),
                        gold: q.gold.clone(),
                        commit: Some(q.commit.clone()),
                    };
                    // Which files are indexed does not depend on the chunker.
                    let Some(query) = eval::keep_indexed(&query, indexed) else {
                        dropped += usize::from(first_set);
                        continue;
                    };
                    // The first engine to ask a query meets cold caches (its
                    // p50 was twice the others'): each query starts at the next
                    // engine, so every variant is first equally often.
                    let start = qi % engines.len();
                    let rotated = engines[start..].iter().chain(&engines[..start]);
                    for (name, engine) in rotated {
                        let name = format!("{name} @{}", chunker.name());
                        let (ms, files) = rank_files(engine, bundle, &query.query)?;
                        millis.entry(name.clone()).or_default().push(ms);
                        scores
                            .entry(name)
                            .or_default()
                            .push(eval::score(&query, &files));
                    }
                    if first_set {
                        kept.push(q.clone());
                    }
                }
            }
            let (before, after) = headline(opts);
            if let (Some(s), Some(plain)) = (scores.get(&after), scores.get(&before)) {
                let of_repo = |s: &[QueryScore]| {
                    Report::new(
                        s.iter()
                            .filter(|q| q.group.as_deref() == Some(repo))
                            .cloned()
                            .collect(),
                    )
                };
                let (r, p) = (of_repo(s), of_repo(plain));
                b.say(format!(
                    "{repo}: {} queries; R@5 {:.3} -> {:.3}, MRR {:.3} -> {:.3}",
                    r.overall.n,
                    p.overall.recall_at_5,
                    r.overall.recall_at_5,
                    p.overall.mrr,
                    r.overall.mrr
                ));
            }
            repositories.insert(
                repo.clone(),
                RepoOut {
                    scanned: mined.scanned,
                    skipped: mined
                        .skipped
                        .iter()
                        .map(|(k, v)| (k.to_string(), *v))
                        .collect(),
                    mined: mined.queries.len(),
                    dropped_gold_not_indexed: dropped,
                    parents,
                    queries: kept
                        .iter()
                        .map(serde_json::to_value)
                        .collect::<Result<_, _>>()?,
                },
            );
        }
        let mut variants_out: BTreeMap<String, VariantOut> = scores
            .into_iter()
            .map(|(name, s)| {
                let ms = millis.get(&name).map_or(f64::NAN, |m| median(m));
                (
                    name,
                    VariantOut {
                        report: Report::new(s),
                        search_ms_p50: ms,
                    },
                )
            })
            .collect();
        print_tables(&opts.repos, &variants_out, &headline(opts));
        // Each query's ranking is kept for `today` and `default` of each
        // chunker only: the other variants' summaries say what they measured,
        // and their per-query lists would make the file hundreds of megabytes
        // with --sweep.
        for (name, v) in variants_out.iter_mut() {
            if !(name.starts_with("today @") || name.starts_with("default @")) {
                v.report.queries.clear();
            }
        }
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            chunkers: opts.chunkers.iter().map(|c| c.name().to_string()).collect(),
            headline: headline(opts),
            repositories,
            variants: variants_out,
        })
    }
}

fn print_tables(
    repos: &[String],
    variants: &BTreeMap<String, VariantOut>,
    (before, after): &(String, String),
) {
    println!(
        "{:<24} {:<22} {}",
        "repository",
        "ranking",
        Summary::HEADINGS
    );
    let row = |label: &str, name: &str, s: &Summary| {
        println!("{label:<24} {name:<22} {}", s.cells());
    };
    let (Some(plain), Some(full)) = (variants.get(before), variants.get(after)) else {
        return;
    };
    let pair = [(before.as_str(), plain), (after.as_str(), full)];
    for repo in repos {
        for (name, v) in pair {
            if let Some(s) = v.report.groups.get(repo) {
                row(repo, name, s);
            }
        }
        if let (Some(a), Some(b)) = (plain.report.groups.get(repo), full.report.groups.get(repo)) {
            println!(
                "{:<24} {:<22} R@5 {:+.3}  MRR {:+.3}",
                "",
                "change",
                b.recall_at_5 - a.recall_at_5,
                b.mrr - a.mrr
            );
        }
    }
    for (name, v) in pair {
        row("all", name, &v.report.overall);
    }
    for (name, v) in pair {
        row("all (no path leaks)", name, &v.report.without_leaks);
    }
    println!(
        "\nsearch after embedding, p50 in process: {before} {:.3} ms, {after} {:.3} ms ({:+.3} ms)",
        plain.search_ms_p50,
        full.search_ms_p50,
        full.search_ms_p50 - plain.search_ms_p50
    );
    let mut rows: Vec<(&String, &VariantOut)> = variants.iter().collect();
    rows.sort_by(|a, b| {
        let key = |v: &VariantOut| v.report.overall.recall_at_5 + v.report.overall.mrr;
        key(b.1).total_cmp(&key(a.1))
    });
    println!(
        "\nvariants, best first by R@5 + MRR (worst repository's change in MRR against {before}):"
    );
    println!(
        "{:<52} {:>5} {:>5} {:>5} {:>7} {:>9} {:>8}",
        "variant", "R@1", "R@5", "MRR", "nDCG", "worst dMRR", "p50 ms"
    );
    for (name, v) in rows {
        let worst = repos
            .iter()
            .filter_map(|r| Some(v.report.groups.get(r)?.mrr - plain.report.groups.get(r)?.mrr))
            .fold(f64::INFINITY, f64::min);
        let o = &v.report.overall;
        println!(
            "{name:<52} {:>5.3} {:>5.3} {:>5.3} {:>7.3} {:>+9.3} {:>8.3}",
            o.recall_at_1, o.recall_at_5, o.mrr, o.ndcg_at_10, worst, v.search_ms_p50
        );
    }
}
