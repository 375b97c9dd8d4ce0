//! `shelf-bench history`: retrieval quality on golden queries mined from
//! public repositories' own history (`shelf eval --from-history`, the same
//! mining and the same parent bundles), for a list of repositories fetched
//! outside this checkout (bare clones under `--mirror`, never committed).
//!
//! Each repository's most recent qualifying commits are mined, every parent
//! is built (oldest first, each incremental from the one before, kept under
//! `--bundle-cache`), and every query is asked of its parent's bundle by
//! the ranking as it was (`plain`: RRF of BM25 and vectors, files by their
//! best three chunks) and by today's defaults, and by each default with
//! one part switched off, or one part alone: the measurement that decides
//! which parts stay. Per repository and overall; every query's top files in
//! the JSON.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use shelf_builder::chunker::Chunker;
use shelf_builder::history::{self, HistoryQuery, MineOptions, ParentBuild};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_search::candidates::SourceTuning;
use shelf_search::code::CodeTuning;
use shelf_search::eval::{self, EvalQuery, QueryScore, Report, Summary};
use shelf_search::query::QueryTuning;
use shelf_search::{Engine, MappedBundle, Mode, QueryEncoder, Tuning};

use crate::memo::Memo;

use crate::machine::Machine;
use crate::progress::Progress;
use crate::shelf_cli::workspace_root;
use crate::stats::median;

/// The repositories nobody tuned on (the default list).
pub const HELD_OUT: [&str; 5] = [
    "BurntSushi/ripgrep",
    "tokio-rs/axum",
    "go-chi/chi",
    "colinhacks/zod",
    "psf/requests",
];

/// Options of one run.
#[derive(Debug, Clone)]
pub struct Options {
    /// `owner/name` of each repository.
    pub repos: Vec<String>,
    /// Queries mined per repository.
    pub queries: usize,
    /// Where the repositories are: `<dir>/<owner>+<name>/repo` (bare git).
    pub mirror: PathBuf,
    /// Where the parents' bundles are kept between runs.
    pub bundle_cache: PathBuf,
    /// The chunkers whose bundles are built and asked (each its own set of
    /// parent bundles).
    pub chunkers: Vec<Chunker>,
    /// How the parents' definitions index is made.
    pub definitions: shelf_builder::definitions::Extractor,
    /// Also score the parameter grid (slow to read, same cost to run).
    pub sweep: bool,
    /// JSON results path.
    pub json_out: PathBuf,
    /// The command line.
    pub command: Vec<String>,
}

/// The defaults of tree d5804de, before the candidate sources: the
/// baseline the sources are measured against (graph search).
pub fn today() -> Tuning {
    Tuning {
        sources: SourceTuning::OFF,
        chunk_decay: 1.0,
        exact_vectors: false,
        adaptive_fusion: 0.0,
        code: CodeTuning {
            reexport: 1.0,
            compat: 1.0,
            example: 1.0,
            ..CodeTuning::default()
        },
        ..Tuning::default()
    }
}

/// A source of [`SourceTuning`]: its name, and how to switch it on in a
/// tuning (from the defaults) or off.
type SourcePart = (&'static str, fn(&mut SourceTuning, &SourceTuning));

const SOURCE_PARTS: [SourcePart; 3] = [
    ("definitions", |t, from| {
        t.definitions = from.definitions;
        t.block_weight = from.block_weight;
        t.prose_weight = from.prose_weight;
        t.title_weight = from.title_weight;
        t.max_defining_files = from.max_defining_files;
        t.definition_scale = from.definition_scale;
        t.depth = from.depth;
    }),
    ("paths", |t, from| {
        t.paths = from.paths;
        t.stem_weight = from.stem_weight;
        t.depth = from.depth;
    }),
    ("history", |t, from| {
        t.history = from.history;
        t.history_commits = from.history_commits;
        t.history_limit = from.history_limit;
        t.depth = from.depth;
    }),
];

/// The variants compared, by name: the ranking as it was (`plain`), the
/// defaults of d5804de (`today`, and `today exact` with exact vector
/// search), today's defaults (`default`, exact vector search: the coming
/// vector layer), each default part off and alone, and each candidate
/// source off and alone.
pub fn variants(sweep: bool) -> Vec<(String, Tuning)> {
    let exact = |t: Tuning| Tuning {
        exact_vectors: true,
        ..t
    };
    let plain = exact(Tuning::plain());
    let full = exact(Tuning::default());
    let base = exact(today());
    let code = CodeTuning::default();
    let off = CodeTuning::OFF;
    let mut out: Vec<(String, Tuning)> = vec![
        ("plain".into(), plain),
        ("today".into(), today()),
        ("today exact".into(), base),
        ("default".into(), full),
    ];
    type Part = (&'static str, fn(&mut CodeTuning, &CodeTuning));
    let parts: [Part; 3] = [
        ("kind-prior", |t, from| {
            t.prior = from.prior;
            t.source_when_other = from.source_when_other;
        }),
        ("dir-name", |t, from| t.dir_name = from.dir_name),
        ("path-mention", |t, from| t.path_mention = from.path_mention),
    ];
    for (name, set) in parts {
        let mut without = code;
        set(&mut without, &off);
        out.push((
            format!("default -{name}"),
            Tuning {
                code: without,
                ..full
            },
        ));
    }
    out.push((
        "default -code-weights".into(),
        Tuning {
            query: QueryTuning::PLAIN,
            ..full
        },
    ));
    // The candidate sources, each off and each alone on today's ranking.
    let sources = SourceTuning::default();
    for (name, set) in SOURCE_PARTS {
        let mut alone = SourceTuning::OFF;
        set(&mut alone, &sources);
        out.push((
            format!("today exact +{name}"),
            Tuning {
                sources: alone,
                ..base
            },
        ));
        let mut without = full.sources;
        set(&mut without, &SourceTuning::OFF);
        without.depth = full.sources.depth;
        out.push((
            format!("default -{name}"),
            Tuning {
                sources: without,
                ..full
            },
        ));
    }
    let with_sources = |f: fn(&mut SourceTuning)| {
        let mut t = full;
        f(&mut t.sources);
        t
    };
    for w in [1.5f32, 2.0] {
        out.push((
            format!("default title-terms={w}"),
            Tuning {
                query: QueryTuning {
                    title_weight: w,
                    ..full.query
                },
                ..full
            },
        ));
    }
    for n in [500usize, 1000] {
        let mut t = full;
        t.sources.history_limit = n;
        out.push((format!("default history-limit={n}"), t));
    }
    for p in [0.1f32, 0.3] {
        let mut t = full;
        t.sources.change_prior = p;
        out.push((format!("default change-prior={p}"), t));
    }
    // The semble rules: per-file decay, a fusion weight that follows the
    // query, penalties for entry files, shims and examples.
    for d in [0.5f32, 0.8] {
        out.push((
            format!("default chunk-decay={d}"),
            Tuning {
                chunk_decay: d,
                ..full
            },
        ));
    }
    for a in [0.3f32, 0.6] {
        out.push((
            format!("default adaptive-fusion={a}"),
            Tuning {
                adaptive_fusion: a,
                ..full
            },
        ));
    }
    out.push((
        "default penalties=0.7".into(),
        Tuning {
            code: CodeTuning {
                reexport: 0.7,
                compat: 0.7,
                example: 0.7,
                ..full.code
            },
            ..full
        },
    ));
    // File coherence: how many of a file's chunks its score sums.
    for n in [1usize, 2, 5] {
        out.push((
            format!("default chunks-per-file={n}"),
            Tuning {
                chunks_per_file: n,
                ..full
            },
        ));
    }
    if sweep {
        let grid: [(&str, fn(&mut SourceTuning)); 27] = [
            ("definitions=0.5", |s| s.definitions = 0.5),
            ("definitions=2", |s| s.definitions = 2.0),
            ("definitions=3", |s| s.definitions = 3.0),
            ("definition-scale=0", |s| s.definition_scale = 0.0),
            ("definition-scale=3", |s| s.definition_scale = 3.0),
            ("definition-scale=30", |s| s.definition_scale = 30.0),
            ("block-weight=0", |s| s.block_weight = 0.0),
            ("block-weight=1", |s| s.block_weight = 1.0),
            ("prose-weight=0", |s| s.prose_weight = 0.0),
            ("prose-weight=0.6", |s| s.prose_weight = 0.6),
            ("title-weight=0", |s| s.title_weight = 0.0),
            ("title-weight=2", |s| s.title_weight = 2.0),
            ("max-defining-files=5", |s| s.max_defining_files = 5),
            ("max-defining-files=50", |s| s.max_defining_files = 50),
            ("paths=0.5", |s| s.paths = 0.5),
            ("paths=2", |s| s.paths = 2.0),
            ("stem-weight=0", |s| s.stem_weight = 0.0),
            ("stem-weight=1", |s| s.stem_weight = 1.0),
            ("history=0.5", |s| s.history = 0.5),
            ("history=2", |s| s.history = 2.0),
            ("history=3", |s| s.history = 3.0),
            ("history=4", |s| s.history = 4.0),
            ("history-commits=5", |s| s.history_commits = 5),
            ("history-commits=10", |s| s.history_commits = 10),
            ("history-commits=50", |s| s.history_commits = 50),
            ("depth=5", |s| s.depth = 5),
            ("depth=20", |s| s.depth = 20),
        ];
        for (name, f) in grid {
            out.push((format!("default {name}"), with_sources(f)));
        }
        // Combinations of what helped alone.
        let combos: [(&str, f32, f32, f32, usize); 6] = [
            // (name, chunk decay, adaptive fusion, definitions, history commits)
            ("decay=0.5 adaptive=0.6", 0.5, 0.6, 1.0, 20),
            ("decay=0.5 definitions=2", 0.5, 0.0, 2.0, 20),
            ("decay=0.5 adaptive=0.3 definitions=2", 0.5, 0.3, 2.0, 20),
            ("decay=0.5 adaptive=0.6 definitions=2 commits=10", 0.5, 0.6, 2.0, 10),
            ("decay=0.7 adaptive=0.3 definitions=2", 0.7, 0.3, 2.0, 20),
            ("decay=0.3 adaptive=0.3 definitions=2", 0.3, 0.3, 2.0, 20),
        ];
        for (name, decay, adaptive, definitions, commits) in combos {
            let mut t = full;
            t.chunk_decay = decay;
            t.adaptive_fusion = adaptive;
            t.sources.definitions = definitions;
            t.sources.history_commits = commits;
            out.push((format!("default {name}"), t));
        }
        for w in [1.5f32, 3.0] {
            out.push((
                format!("default code-weight={w}"),
                Tuning {
                    query: QueryTuning {
                        code_weight: w,
                        ..full.query
                    },
                    ..full
                },
            ));
        }
    }
    out
}

#[derive(Debug, Serialize)]
struct RepoOut {
    scanned: usize,
    skipped: BTreeMap<&'static str, usize>,
    mined: usize,
    dropped_gold_not_indexed: usize,
    parents: usize,
    queries: Vec<HistoryQuery>,
}

#[derive(Debug, Serialize)]
struct VariantOut {
    report: Report,
    /// Median milliseconds of the answer after embedding (ranking, the
    /// factors, grouping, reading the results).
    search_ms_p50: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    command: Vec<String>,
    machine: Machine,
    chunkers: Vec<&'static str>,
    /// The two variants the headline compares.
    headline: (String, String),
    repositories: BTreeMap<String, RepoOut>,
    variants: BTreeMap<String, VariantOut>,
}

/// The comparison the targets are about: the defaults of d5804de
/// on `lines-v1` bundles against today's defaults on the default
/// chunker's (or the first chunker asked for, when those were not built).
fn headline(opts: &Options) -> (String, String) {
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

fn mirror_of(mirror: &Path, repo: &str) -> PathBuf {
    mirror.join(repo.replace('/', "+")).join("repo")
}

/// Runs the benchmark.
pub fn run(opts: &Options) -> Result<()> {
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-history-")
        .tempdir()?;
    let runtime = Runtime::locate(Some(&workspace_root().join(".runtime")))?;
    let memo = Arc::new(Memo::new(Embedder::load(
        &runtime,
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
        let git_dir = mirror_of(&opts.mirror, repo);
        let mined = history::mine(
            &git_dir,
            "HEAD",
            &MineOptions {
                limit: opts.queries,
                ..MineOptions::default()
            },
        )
        .with_context(|| format!("mining {repo} at {}", git_dir.display()))?;
        p.say(&format!(
            "{repo}: {} queries from {} commits",
            mined.queries.len(),
            mined.scanned
        ));
        let mut kept = Vec::new();
        let mut dropped = 0;
        let mut parents = 0;
        for chunker in &opts.chunkers {
            let config = work.path().join(format!("{}.toml", chunker.name()));
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
            let bundles = history::build_parents(&mined.queries, &how, &memo.inner, &(), |l| {
                p.say(&format!("{repo} {}: {l}", chunker.name()))
            })?;
            parents = bundles.len();
            let first_set = chunker == &opts.chunkers[0];
            let mut open: Option<(PathBuf, MappedBundle, HashSet<String>)> = None;
            for (qi, q) in mined.queries.iter().enumerate() {
                let path = bundles.get(&q.parent).context("a parent bundle")?;
                if open.as_ref().is_none_or(|(o, _, _)| o != path) {
                    let bundle =
                        MappedBundle::open_file(path, &work.path().join("cache"), memo.identity())?;
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
                    let request = eval::file_request(&query.query, Mode::Hybrid);
                    let target = shelf_search::Target {
                        repo: "bench",
                        bundle,
                        tag: None,
                    };
                    let answer = engine.answer(&[target], &request)?;
                    millis
                        .entry(name.clone())
                        .or_default()
                        .push(answer.timings_ms.search);
                    let files: Vec<String> = answer
                        .files
                        .unwrap_or_default()
                        .into_iter()
                        .map(|f| f.path)
                        .collect();
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
        if let (Some(s), Some(b)) = (scores.get(&after), scores.get(&before)) {
            let r = Report::new(
                s.iter()
                    .filter(|q| q.group.as_deref() == Some(repo))
                    .cloned()
                    .collect(),
            );
            let b = Report::new(
                b.iter()
                    .filter(|q| q.group.as_deref() == Some(repo))
                    .cloned()
                    .collect(),
            );
            p.say(&format!(
                "{repo}: {} queries; R@5 {:.3} -> {:.3}, MRR {:.3} -> {:.3}",
                r.overall.n,
                b.overall.recall_at_5,
                r.overall.recall_at_5,
                b.overall.mrr,
                r.overall.mrr
            ));
        }
        repositories.insert(
            repo.clone(),
            RepoOut {
                scanned: mined.scanned,
                skipped: mined.skipped.clone(),
                mined: mined.queries.len(),
                dropped_gold_not_indexed: dropped,
                parents,
                queries: kept,
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
    // Each query's ranking is kept for `today`, `today exact` and `default` of each
    // chunker only: the other variants' summaries say what they measured,
    // and their per-query lists would make the file hundreds of megabytes
    // with --sweep.
    for (name, v) in variants_out.iter_mut() {
        if !(name.starts_with("today @")
            || name.starts_with("today exact @")
            || name.starts_with("default @"))
        {
            v.report.queries.clear();
        }
    }
    let results = Results {
        command: opts.command.clone(),
        machine: Machine::current(),
        chunkers: opts.chunkers.iter().map(|c| c.name()).collect(),
        headline: headline(opts),
        repositories,
        variants: variants_out,
    };
    if let Some(dir) = opts.json_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json_out, serde_json::to_vec_pretty(&results)?)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
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
