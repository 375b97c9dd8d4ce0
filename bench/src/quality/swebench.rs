//! `shelf-bench swebench`: see [`Swebench`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shelf_builder::chunker::Chunker;
use shelf_builder::definitions::Extractor;
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_formats::chunks::ChunkStore;
use shelf_formats::lexical::{LexicalIndex, LexicalIndexWriter};
use shelf_search::eval::{self, EvalQuery, QueryScore, Report, Summary};
use shelf_search::group::{CHUNKS_PER_FILE, group_by_file};
use shelf_search::rank::{self, Candidates, FILE_CANDIDATES, Fusion, Ranked};
use shelf_search::{Engine, Filter, MappedBundle, Mode, Tuning};

use crate::fixtures::devset::{self, Built, EvalRow, Sources};
use crate::fixtures::ranking::{Memo, rank_files, variants};
use crate::harness::stats::median;
use crate::harness::{Bench, Benchmark, Machine, runtime};

/// Retrieval quality on real issues (../shared/eval/swebench_dev.jsonl).
///
/// The issue text is the query, the files the fix changed the gold answer.
/// The repositories are fetched outside this checkout (never committed);
/// each is built at every base commit the set names, oldest first, each
/// build incremental from the previous one, and the bundles are kept under
/// --bundle-cache so later runs only evaluate. Then every row is asked of
/// its commit's bundle in each search mode (lexical, semantic, hybrid), and
/// of a whole-file BM25 baseline computed here, and scored at the file level
/// (`shelf eval`'s metrics), per repository and overall, with and without
/// the rows whose query names a gold path.
#[derive(Debug, Clone, clap::Args)]
pub struct Swebench {
    /// The issues, the repositories and their bundles.
    #[command(flatten)]
    sources: Sources,
    /// Only this repository (owner/name); repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Build the bundles and stop.
    #[arg(long)]
    build_only: bool,
    /// Also score the ranking grid of `history --sweep`.
    #[arg(long)]
    sweep: bool,
    /// A model directory instead of the provisioned default, for building
    /// and asking (e.g. .runtime/model-fp32).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// The chunker to build with (lines-v1 or syntax-v1; other chunkers'
    /// bundles are kept under swebench-<chunker>/).
    #[arg(long, default_value = "lines-v1", value_parser = Chunker::from_str)]
    chunker: Chunker,
    /// How the bundles' definitions index is made (syntax, lines or off;
    /// bundles of another than the default are kept apart).
    #[arg(long, default_value = "syntax", value_parser = Extractor::from_str)]
    definitions: Extractor,
}

/// The rankers compared, in table order.
const SYSTEMS: [&str; 5] = ["bm25-file", "lexical", "semantic", "hybrid", "hybrid-1win"];

/// A whole-file BM25 index of one bundle: one document per file (its
/// chunks put back together), analyzed like shelf's chunks, path included.
struct FileIndex {
    bytes: Vec<u8>,
    paths: Vec<String>,
}

impl FileIndex {
    fn of(bundle: &MappedBundle) -> Result<Self> {
        let chunks: ChunkStore<'_> = bundle.chunks()?;
        let mut files: BTreeMap<String, (u32, String)> = BTreeMap::new();
        for i in 0..chunks.len() {
            let Some(c) = chunks.get(i) else { continue };
            let (last, text) = files
                .entry(c.path.to_string())
                .or_insert((0, String::new()));
            // Chunks overlap by a few lines: keep each line once.
            let skip = (*last + 1).saturating_sub(c.start_line) as usize;
            for line in c.text.split_inclusive('\n').skip(skip) {
                text.push_str(line);
            }
            *last = (*last).max(c.end_line);
        }
        let mut w = LexicalIndexWriter::new();
        let mut paths = Vec::with_capacity(files.len());
        for (path, (_, text)) in files {
            w.push_chunk(&path, &text);
            paths.push(path);
        }
        let mut bytes = Vec::new();
        w.write_to(&mut bytes)?;
        Ok(Self { bytes, paths })
    }

    fn rank(&self, query: &str) -> Result<Vec<String>> {
        let ix = LexicalIndex::parse(&self.bytes)?;
        Ok(shelf_search::lexical::search(
            &ix,
            shelf_search::lexical::Query::Text(shelf_formats::lexical::Analyzer::CURRENT, query),
            eval::DEPTH,
            |_| true,
            None,
        )
        .into_iter()
        .filter_map(|(d, _)| self.paths.get(d as usize).cloned())
        .collect())
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemOut {
    report: Report,
    mean_query_ms: f64,
}

/// What `shelf-bench swebench` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    queries: PathBuf,
    bundles: Built,
    systems: BTreeMap<String, SystemOut>,
    /// The ranking before query understanding and code-aware ranking
    /// (`plain`), today's defaults (`default`), and each part off and
    /// alone (`ranking::variants`), all hybrid and grouped by file.
    /// Absent from results written before the variants were measured.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    variants: BTreeMap<String, SweepOut>,
    /// Hybrid variants (fusion constant, lexical weight, file aggregation,
    /// query windows), scored on the same candidates: the measurement
    /// behind the defaults.
    sweep: BTreeMap<String, SweepOut>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SweepOut {
    overall: Summary,
    without_leaks: Summary,
    /// Median search time after embedding (ranking variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    search_ms_p50: Option<f64>,
    /// Every row's score (the headline variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queries: Option<Vec<QueryScore>>,
}

/// Files from ranked chunks, by the plain sum of their best three (`sum3`;
/// `group=file` decays each further chunk since API 1.6) or by their best
/// chunk (`max`).
fn files_of(bundle: &MappedBundle, ranked: &[Ranked], sum3: bool) -> Result<Vec<String>> {
    let chunks = bundle.chunks()?;
    let scored: Vec<(&str, f32)> = ranked
        .iter()
        .filter_map(|r| Some((chunks.get(usize::try_from(r.key).ok()?)?.path, r.score)))
        .collect();
    let summed = if sum3 { CHUNKS_PER_FILE } else { 1 };
    Ok(group_by_file(&scored, summed, eval::DEPTH)
        .into_iter()
        .map(|f| f.file.to_string())
        .collect())
}

/// Every sweep variant's files for one query's candidates.
fn sweep_row(
    bundle: &MappedBundle,
    wide: &Candidates,
    narrow: &Candidates,
) -> Result<Vec<(String, Vec<String>)>> {
    let mut out = Vec::new();
    // Does summing a file's best chunks help the single rankers too?
    for mode in [Mode::Semantic, Mode::Lexical] {
        let single = Candidates {
            mode,
            semantic: wide.semantic.clone(),
            lexical: wide.lexical.clone(),
        };
        let ranked = rank::order(&single, &Fusion::default(), 600);
        for sum3 in [false, true] {
            let name = format!("{mode:?} {}", if sum3 { "sum3" } else { "max" });
            out.push((name, files_of(bundle, &ranked, sum3)?));
        }
    }
    for (windows, c) in [("4win", wide), ("1win", narrow)] {
        for depth in [100usize, 300] {
            let c = Candidates {
                mode: c.mode,
                semantic: c.semantic.iter().take(depth).copied().collect(),
                lexical: c.lexical.iter().take(depth).copied().collect(),
            };
            for k in [10.0f32, 30.0, 60.0] {
                for w in [0.5f32, 1.0, 2.0] {
                    let ranked = rank::order(
                        &c,
                        &Fusion {
                            k,
                            lexical_weight: w,
                        },
                        600,
                    );
                    for sum3 in [false, true] {
                        let name = format!(
                            "k={k:<2} w_lex={w:<3} {} {windows} c{depth}",
                            if sum3 { "sum3" } else { "max " }
                        );
                        out.push((name, files_of(bundle, &ranked, sum3)?));
                    }
                }
            }
        }
    }
    Ok(out)
}

type Evaluated = (
    BTreeMap<String, SystemOut>,
    BTreeMap<String, SweepOut>,
    BTreeMap<String, SweepOut>,
);

/// What every row is asked with: the engine as clients get it, the same
/// engine with one query window, and the bundle of the row's commit.
struct Asker {
    engine: Engine,
    one_window: Engine,
    /// The ranking variants, over one memoised model.
    variants: Vec<(String, Engine)>,
    open: Option<(PathBuf, MappedBundle, FileIndex)>,
    cache: PathBuf,
}

/// Per system, every row's score and the time spent.
#[derive(Default)]
struct Scores {
    by_system: BTreeMap<&'static str, Vec<QueryScore>>,
    millis: BTreeMap<&'static str, f64>,
    sweep: BTreeMap<String, Vec<QueryScore>>,
    variants: BTreeMap<String, Vec<QueryScore>>,
    /// Per variant, each row's search time after embedding (ms).
    variant_ms: BTreeMap<String, Vec<f64>>,
}

impl Asker {
    fn new(work: &Path, model: Option<&Path>, sweep: bool) -> Result<Self> {
        let runtime = runtime()?;
        let options = EmbedderOptions {
            model: model.map(Path::to_path_buf),
            ..EmbedderOptions::default()
        };
        let embedder = std::sync::Arc::new(Embedder::load(&runtime, &options)?);
        let engine = Engine::new(embedder);
        let one_window = engine.clone().with_tuning(Tuning {
            max_windows: 1,
            ..Tuning::default()
        });
        let memo = std::sync::Arc::new(Memo::new(Embedder::load(
            &runtime,
            &EmbedderOptions::default(),
        )?));
        let variants = variants(sweep)
            .into_iter()
            .map(|(n, t)| (n, Engine::new(memo.clone()).with_tuning(t)))
            .collect();
        Ok(Self {
            engine,
            one_window,
            variants,
            open: None,
            cache: work.join("cache"),
        })
    }

    /// The bundle at `path` (kept open while consecutive rows share it).
    fn bundle(&mut self, path: &Path) -> Result<&(PathBuf, MappedBundle, FileIndex)> {
        if self.open.as_ref().is_none_or(|(p, _, _)| p != path) {
            // The installed copy of the bundle left behind is removed, so
            // a run over many large bundles does not fill the disk (a
            // later row of its commit installs it again).
            if let Some((_, done, _)) = self.open.take() {
                let installed = done.dir.clone();
                drop(done);
                std::fs::remove_dir_all(&installed)
                    .with_context(|| format!("removing {}", installed.display()))?;
            }
            let identity = self.engine.encoder().identity().clone();
            let bundle = MappedBundle::open_file(path, &self.cache, &identity)?;
            let files = FileIndex::of(&bundle)?;
            self.open = Some((path.to_path_buf(), bundle, files));
        }
        self.open.as_ref().context("a bundle is open")
    }

    /// Asks every system, and every sweep variant, one row.
    fn row(&mut self, row: &EvalRow, path: &Path, scores: &mut Scores) -> Result<()> {
        let (engine, one_window) = (self.engine.clone(), self.one_window.clone());
        let variants = self.variants.clone();
        let (_, bundle, files) = self.bundle(path)?;
        let query = EvalQuery {
            id: row.instance_id.clone(),
            group: Some(row.repo.clone()),
            query: row.query.clone(),
            gold: row.gold_files.clone(),
            commit: None,
        };
        for system in SYSTEMS {
            let t = Instant::now();
            let ranked = match system {
                "bm25-file" => files.rank(&row.query)?,
                "lexical" => eval::rank_files(&engine, bundle, &row.query, Mode::Lexical)?,
                "semantic" => eval::rank_files(&engine, bundle, &row.query, Mode::Semantic)?,
                "hybrid" => eval::rank_files(&engine, bundle, &row.query, Mode::Hybrid)?,
                _ => eval::rank_files(&one_window, bundle, &row.query, Mode::Hybrid)?,
            };
            *scores.millis.entry(system).or_default() += t.elapsed().as_secs_f64() * 1e3;
            scores
                .by_system
                .entry(system)
                .or_default()
                .push(eval::score(&query, &ranked));
        }
        for (name, v) in &variants {
            let (ms, ranked) = rank_files(v, bundle, &row.query)?;
            scores.variant_ms.entry(name.clone()).or_default().push(ms);
            scores
                .variants
                .entry(name.clone())
                .or_default()
                .push(eval::score(&query, &ranked));
        }
        let request = eval::file_request(&row.query, Mode::Hybrid);
        let vectors = engine.encode(&request)?.vectors;
        let none = Filter::default();
        let wide = rank::candidates(
            bundle,
            &row.query,
            &vectors,
            Mode::Hybrid,
            &none,
            FILE_CANDIDATES,
        )?;
        let narrow = rank::candidates(
            bundle,
            &row.query,
            &vectors[..1],
            Mode::Hybrid,
            &none,
            FILE_CANDIDATES,
        )?;
        for (name, files) in sweep_row(bundle, &wide, &narrow)? {
            scores
                .sweep
                .entry(name)
                .or_default()
                .push(eval::score(&query, &files));
        }
        Ok(())
    }
}

fn evaluate_all(
    rows: &[EvalRow],
    built: &Built,
    work: &Path,
    model: Option<&Path>,
    sweep: bool,
    b: &Bench,
) -> Result<Evaluated> {
    let mut asker = Asker::new(work, model, sweep)?;
    let mut scores = Scores::default();
    for (i, row) in rows.iter().enumerate() {
        let Some(path) = built
            .bundles
            .get(&row.repo)
            .and_then(|c| c.get(&row.base_commit))
        else {
            continue;
        };
        asker.row(row, path, &mut scores)?;
        b.say(format!(
            "{}/{} {}: hybrid first gold rank {:?}",
            i + 1,
            rows.len(),
            row.instance_id,
            scores.by_system["hybrid"]
                .last()
                .and_then(|s| s.first_gold_rank)
        ));
    }
    let mut variants = summarise(scores.variants.clone());
    for (name, out) in variants.iter_mut() {
        out.search_ms_p50 = scores.variant_ms.get(name).map(|m| median(m));
        if matches!(name.as_str(), "today" | "default") {
            out.queries = scores.variants.get(name).cloned();
        }
    }
    let sweep = summarise(scores.sweep);
    let systems = scores
        .by_system
        .into_iter()
        .map(|(system, s)| {
            let n = s.len().max(1) as f64;
            let out = SystemOut {
                mean_query_ms: scores.millis.get(system).copied().unwrap_or(0.0) / n,
                report: Report::new(s),
            };
            (system.to_string(), out)
        })
        .collect();
    Ok((systems, sweep, variants))
}

/// Each named set of scores, summarised over all rows and without leaks.
fn summarise(scores: BTreeMap<String, Vec<QueryScore>>) -> BTreeMap<String, SweepOut> {
    scores
        .into_iter()
        .map(|(name, s)| {
            let r = Report::new(s);
            let out = SweepOut {
                overall: r.overall,
                without_leaks: r.without_leaks,
                search_ms_p50: None,
                queries: None,
            };
            (name, out)
        })
        .collect()
}

fn line(label: &str, system: &str, s: &Summary) -> String {
    format!("{label:<26} {system:<12} {}", s.cells())
}

fn print_sweep(sweep: &BTreeMap<String, SweepOut>) {
    let mut rows: Vec<(&String, &SweepOut)> = sweep.iter().collect();
    rows.sort_by(|a, b| {
        (b.1.overall.mrr + b.1.overall.recall_at_5)
            .total_cmp(&(a.1.overall.mrr + a.1.overall.recall_at_5))
    });
    println!("\nhybrid variants (same candidates), best first by MRR + R@5:");
    println!(
        "{:<32} {:>5} {:>5} {:>7}   {:>9} {:>9}",
        "variant", "R@5", "MRR", "nDCG@10", "R@5 (nl)", "MRR (nl)"
    );
    for (name, s) in rows {
        println!(
            "{name:<32} {:>5.3} {:>5.3} {:>7.3}   {:>9.3} {:>9.3}",
            s.overall.recall_at_5,
            s.overall.mrr,
            s.overall.ndcg_at_10,
            s.without_leaks.recall_at_5,
            s.without_leaks.mrr
        );
    }
}

fn print_variants(variants: &BTreeMap<String, SweepOut>) {
    let mut rows: Vec<(&String, &SweepOut)> = variants.iter().collect();
    rows.sort_by(|a, b| {
        let key = |s: &SweepOut| s.overall.mrr + s.overall.recall_at_5;
        key(b.1).total_cmp(&key(a.1))
    });
    println!(
        "\nranking variants (hybrid, group=file; plain = before query understanding and code-aware ranking), best first by MRR + R@5:"
    );
    println!(
        "{:<44} {:>5} {:>5} {:>5} {:>7}   {:>9} {:>9} {:>9}  {:>7}",
        "variant", "R@1", "R@5", "MRR", "nDCG@10", "R@1 (nl)", "R@5 (nl)", "MRR (nl)", "p50 ms"
    );
    for (name, s) in rows {
        println!(
            "{name:<44} {:>5.3} {:>5.3} {:>5.3} {:>7.3}   {:>9.3} {:>9.3} {:>9.3}  {:>7.3}",
            s.overall.recall_at_1,
            s.overall.recall_at_5,
            s.overall.mrr,
            s.overall.ndcg_at_10,
            s.without_leaks.recall_at_1,
            s.without_leaks.recall_at_5,
            s.without_leaks.mrr,
            s.search_ms_p50.unwrap_or(f64::NAN)
        );
    }
}

/// One section's summary: a group's or all rows, with or without leaks.
fn pick(r: &Report, group: Option<&str>, no_leaks: bool) -> Option<Summary> {
    match (group, no_leaks) {
        (Some(g), false) => r.groups.get(g).copied(),
        (Some(g), true) => r.groups_without_leaks.get(g).copied(),
        (None, false) => Some(r.overall),
        (None, true) => Some(r.without_leaks),
    }
}

fn print_table(systems: &BTreeMap<String, SystemOut>) {
    println!("{:<26} {:<12} {}", "rows", "system", Summary::HEADINGS);
    let groups: Vec<String> = systems
        .values()
        .next()
        .map(|s| s.report.groups.keys().cloned().collect())
        .unwrap_or_default();
    let mut sections: Vec<(String, Option<String>, bool)> = Vec::new();
    for g in groups {
        sections.push((g.clone(), Some(g.clone()), false));
        sections.push((format!("{g} (no leaks)"), Some(g), true));
    }
    sections.push(("all".into(), None, false));
    sections.push(("all (no leaks)".into(), None, true));
    for (label, group, no_leaks) in &sections {
        for system in SYSTEMS {
            if let Some(s) = systems
                .get(system)
                .and_then(|o| pick(&o.report, group.as_deref(), *no_leaks))
            {
                println!("{}", line(label, system, &s));
            }
        }
        println!();
    }
    for system in SYSTEMS {
        if let Some(o) = systems.get(system) {
            println!(
                "{system:<12} mean time per query {:.1} ms (in process)",
                o.mean_query_ms
            );
        }
    }
}

impl Benchmark for Swebench {
    const NAME: &'static str = "swebench";
    /// None with --build-only: nothing is written.
    type Results = Option<Results>;

    fn measure(&self, b: &Bench) -> Result<Option<Results>> {
        let shelf = b.shelf()?;
        let rows = devset::read_rows(&self.sources.queries)?;
        b.say(format!(
            "{} rows from {}",
            rows.len(),
            self.sources.queries.display()
        ));
        let build = devset::Build {
            sources: &self.sources,
            only: &self.only,
            chunker: self.chunker,
            definitions: self.definitions,
            model: self.model.as_deref(),
        };
        let built = build.all(b, shelf, &rows)?;
        if self.build_only {
            b.say("built every bundle; --build-only: not evaluating");
            return Ok(None);
        }
        let rows: Vec<EvalRow> = rows
            .into_iter()
            .filter(|r| self.only.is_empty() || self.only.contains(&r.repo))
            .collect();
        let model = self.model.as_deref();
        let (systems, sweep, variants) =
            evaluate_all(&rows, &built, b.work(), model, self.sweep, b)?;
        print_table(&systems);
        print_sweep(&sweep);
        print_variants(&variants);
        Ok(Some(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            queries: self.sources.queries.clone(),
            bundles: built,
            systems,
            variants,
            sweep,
        }))
    }
}
