//! Retrieval quality at the file level: which files a search puts first,
//! scored against the files a query should find. Used by `shelf eval`
//! (and its quality gate) and by the benchmark harness, so both score the
//! same way. Metrics as in `../shared/eval/README.md`: Recall@1/5/10, MRR,
//! nDCG@10 and Acc@1/5/10 (success when min(k, |gold|) gold files are in
//! the top k). Query file format: docs/eval.md.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::answer::{Engine, Group, Request, Target};
use crate::error::SearchError;
use crate::mapped::MappedBundle;
use crate::rank::Mode;

/// Files scored per query.
pub const DEPTH: usize = 10;

/// One query with the files it should find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EvalQuery {
    /// Its id (for reports).
    pub id: String,
    /// A group to report separately (e.g. the repository).
    pub group: Option<String>,
    /// The query text.
    pub query: String,
    /// Repository-relative paths of the files that answer it.
    pub gold: Vec<String>,
    /// The commit (hex) a query mined from history came from: a bundle
    /// whose history index holds it does not let its own message vote
    /// (`Request::exclude_commit`).
    pub commit: Option<String>,
}

/// A query file line: `query` and `gold_files` (or `gold`); optional `id`
/// (or `instance_id`) and `group` (or `repo`). Other fields are ignored, so
/// SWE-bench-style rows work as they are.
#[derive(Debug, Deserialize)]
struct Line {
    query: String,
    #[serde(alias = "gold")]
    gold_files: Vec<String>,
    #[serde(default, alias = "instance_id")]
    id: Option<String>,
    #[serde(default, alias = "repo")]
    group: Option<String>,
    #[serde(default)]
    commit: Option<String>,
}

/// Why a query file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The file cannot be read.
    #[error("cannot read the queries {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A line is not a query.
    #[error(
        "{path} line {line}: {detail} (each line: {{\"query\": \"...\", \"gold_files\": [\"path\", ...], \"id\"?: \"...\", \"group\"?: \"...\"}})"
    )]
    Line {
        /// The file.
        path: String,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// No queries at all.
    #[error("{0} has no queries")]
    Empty(String),
}

/// Reads a JSONL query file (blank lines and `#` lines are skipped).
pub fn read_queries(path: &Path) -> Result<Vec<EvalQuery>, EvalError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: name.clone(),
        source,
    })?;
    parse_queries(&text, &name)
}

/// Parses JSONL query text; `name` labels errors.
pub fn parse_queries(text: &str, name: &str) -> Result<Vec<EvalQuery>, EvalError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let bad = |detail: String| EvalError::Line {
            path: name.to_string(),
            line: i + 1,
            detail,
        };
        let line: Line = serde_json::from_str(trimmed).map_err(|e| bad(e.to_string()))?;
        if line.query.trim().is_empty() {
            return Err(bad("the query is empty".into()));
        }
        if line.gold_files.is_empty() {
            return Err(bad("gold_files is empty: nothing could be found".into()));
        }
        out.push(EvalQuery {
            id: line.id.unwrap_or_else(|| format!("line-{}", i + 1)),
            group: line.group,
            query: line.query,
            gold: line.gold_files,
            commit: line.commit,
        });
    }
    if out.is_empty() {
        return Err(EvalError::Empty(name.to_string()));
    }
    Ok(out)
}

/// One query's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryScore {
    /// The query's id.
    pub id: String,
    /// Its group.
    pub group: Option<String>,
    /// Whether the query names a gold path verbatim (a traceback, say):
    /// such rows are easy for lexical search and reported apart.
    pub leak: bool,
    /// 1-based rank of the first gold file in the top [`DEPTH`], if any.
    pub first_gold_rank: Option<usize>,
    /// Recall at 1, 5, 10.
    pub recall: [f64; 3],
    /// Reciprocal rank of the first gold file (0 if none in the top 10).
    pub reciprocal_rank: f64,
    /// nDCG@10 with binary relevance.
    pub ndcg_at_10: f64,
    /// Acc@1, 5, 10.
    pub acc: [bool; 3],
    /// The files ranked, best first (at most [`DEPTH`]).
    pub top: Vec<String>,
    /// The gold files.
    pub gold: Vec<String>,
}

const CUTS: [usize; 3] = [1, 5, 10];

/// Scores `ranked` (files, best first; duplicates ignored) against the gold.
pub fn score(query: &EvalQuery, ranked: &[String]) -> QueryScore {
    let mut top: Vec<String> = Vec::new();
    for f in ranked {
        if !top.contains(f) {
            top.push(f.clone());
        }
        if top.len() == DEPTH {
            break;
        }
    }
    let gold = &query.gold;
    let hit = |i: usize| gold.contains(&top[i]);
    let found_within = |k: usize| (0..k.min(top.len())).filter(|&i| hit(i)).count();
    let first = (0..top.len()).find(|&i| hit(i)).map(|i| i + 1);
    let dcg: f64 = (0..top.len())
        .filter(|&i| hit(i))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    let ideal: f64 = (0..gold.len().min(DEPTH))
        .map(|i| 1.0 / ((i + 2) as f64).log2())
        .sum();
    QueryScore {
        id: query.id.clone(),
        group: query.group.clone(),
        leak: gold.iter().any(|g| query.query.contains(g.as_str())),
        first_gold_rank: first,
        recall: CUTS.map(|k| found_within(k) as f64 / gold.len() as f64),
        reciprocal_rank: first.map_or(0.0, |r| 1.0 / r as f64),
        ndcg_at_10: if ideal > 0.0 { dcg / ideal } else { 0.0 },
        acc: CUTS.map(|k| found_within(k) >= k.min(gold.len())),
        top,
        gold: gold.clone(),
    }
}

/// Mean metrics over a set of queries.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    /// Queries.
    pub n: usize,
    /// Mean Recall@1.
    pub recall_at_1: f64,
    /// Mean Recall@5.
    pub recall_at_5: f64,
    /// Mean Recall@10.
    pub recall_at_10: f64,
    /// Mean reciprocal rank.
    pub mrr: f64,
    /// Mean nDCG@10.
    pub ndcg_at_10: f64,
    /// Share with Acc@1.
    pub acc_at_1: f64,
    /// Share with Acc@5.
    pub acc_at_5: f64,
    /// Share with Acc@10.
    pub acc_at_10: f64,
}

impl Summary {
    /// The means over `scores`.
    pub fn of<'a>(scores: impl IntoIterator<Item = &'a QueryScore>) -> Self {
        let mut s = Summary::default();
        for q in scores {
            s.n += 1;
            s.recall_at_1 += q.recall[0];
            s.recall_at_5 += q.recall[1];
            s.recall_at_10 += q.recall[2];
            s.mrr += q.reciprocal_rank;
            s.ndcg_at_10 += q.ndcg_at_10;
            s.acc_at_1 += f64::from(u8::from(q.acc[0]));
            s.acc_at_5 += f64::from(u8::from(q.acc[1]));
            s.acc_at_10 += f64::from(u8::from(q.acc[2]));
        }
        if s.n > 0 {
            let n = s.n as f64;
            for v in [
                &mut s.recall_at_1,
                &mut s.recall_at_5,
                &mut s.recall_at_10,
                &mut s.mrr,
                &mut s.ndcg_at_10,
                &mut s.acc_at_1,
                &mut s.acc_at_5,
                &mut s.acc_at_10,
            ] {
                *v /= n;
            }
        }
        s
    }

    /// The column headings of [`Summary::cells`].
    pub const HEADINGS: &'static str = "   n    R@1   R@5  R@10    MRR nDCG@10  Acc@1 Acc@5 Acc@10";

    /// The numbers as fixed-width table cells, under [`Summary::HEADINGS`].
    pub fn cells(&self) -> String {
        format!(
            "{:>4}  {:>5.3} {:>5.3} {:>5.3}  {:>5.3} {:>7.3}  {:>5.3} {:>5.3} {:>6.3}",
            self.n,
            self.recall_at_1,
            self.recall_at_5,
            self.recall_at_10,
            self.mrr,
            self.ndcg_at_10,
            self.acc_at_1,
            self.acc_at_5,
            self.acc_at_10
        )
    }

    /// The gate's metrics, by name.
    pub fn gated(&self) -> [(&'static str, f64); 5] {
        [
            ("recall@1", self.recall_at_1),
            ("recall@5", self.recall_at_5),
            ("recall@10", self.recall_at_10),
            ("mrr", self.mrr),
            ("ndcg@10", self.ndcg_at_10),
        ]
    }
}

/// Every query's score and the summaries.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// All queries.
    pub overall: Summary,
    /// The queries that do not name a gold path.
    pub without_leaks: Summary,
    /// Per group (all queries of the group).
    pub groups: BTreeMap<String, Summary>,
    /// Per group, without the leaking queries.
    pub groups_without_leaks: BTreeMap<String, Summary>,
    /// Each query.
    pub queries: Vec<QueryScore>,
}

impl Report {
    /// Summaries over `scores`.
    pub fn new(scores: Vec<QueryScore>) -> Self {
        let mut groups: BTreeMap<String, Vec<&QueryScore>> = BTreeMap::new();
        for q in &scores {
            if let Some(g) = &q.group {
                groups.entry(g.clone()).or_default().push(q);
            }
        }
        Self {
            overall: Summary::of(&scores),
            without_leaks: Summary::of(scores.iter().filter(|q| !q.leak)),
            groups_without_leaks: groups
                .iter()
                .map(|(g, qs)| {
                    (
                        g.clone(),
                        Summary::of(qs.iter().copied().filter(|q| !q.leak)),
                    )
                })
                .collect(),
            groups: groups
                .iter()
                .map(|(g, qs)| (g.clone(), Summary::of(qs.iter().copied())))
                .collect(),
            queries: scores,
        }
    }
}

/// A metric that fell by more than the margin.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Drop {
    /// The metric.
    pub metric: &'static str,
    /// The baseline's value.
    pub baseline: f64,
    /// The candidate's value.
    pub candidate: f64,
}

/// A query that did worse than in the baseline.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorseQuery {
    /// Its id.
    pub id: String,
    /// First gold rank in the baseline (None: not in the top 10).
    pub baseline_rank: Option<usize>,
    /// First gold rank now.
    pub candidate_rank: Option<usize>,
    /// Recall@5 before and after.
    pub recall_at_5: (f64, f64),
}

/// The quality gate's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// The allowed drop per metric (absolute).
    pub max_drop: f64,
    /// Metrics that dropped by more.
    pub failed: Vec<Drop>,
    /// Queries that got worse (a later first gold file, or lower recall@5).
    pub worse: Vec<WorseQuery>,
}

impl Gate {
    /// Whether the candidate passes.
    pub fn passed(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Compares a candidate with a baseline over the same queries.
pub fn gate(candidate: &Report, baseline: &Report, max_drop: f64) -> Gate {
    let failed = candidate
        .overall
        .gated()
        .iter()
        .zip(baseline.overall.gated())
        .filter(|((_, c), (_, b))| b - c > max_drop + 1e-12)
        .map(|((m, c), (_, b))| Drop {
            metric: m,
            baseline: b,
            candidate: *c,
        })
        .collect();
    let before: BTreeMap<&str, &QueryScore> = baseline
        .queries
        .iter()
        .map(|q| (q.id.as_str(), q))
        .collect();
    let worse = candidate
        .queries
        .iter()
        .filter_map(|c| {
            let b = before.get(c.id.as_str())?;
            let later = match (b.first_gold_rank, c.first_gold_rank) {
                (Some(_), None) => true,
                (Some(x), Some(y)) => y > x,
                _ => false,
            };
            (later || c.recall[1] < b.recall[1]).then(|| WorseQuery {
                id: c.id.clone(),
                baseline_rank: b.first_gold_rank,
                candidate_rank: c.first_gold_rank,
                recall_at_5: (b.recall[1], c.recall[1]),
            })
        })
        .collect();
    Gate {
        max_drop,
        failed,
        worse,
    }
}

/// The files a search ranks first for `query` in `bundle` (at most
/// [`DEPTH`]): the engine's answer with `group=file`, as a server gives it.
pub fn rank_files(
    engine: &Engine,
    bundle: &MappedBundle,
    query: &str,
    mode: Mode,
) -> Result<Vec<String>, SearchError> {
    ranked_paths(engine, bundle, &file_request(query, mode))
}

/// The files `engine` ranks for `request` in `bundle`.
fn ranked_paths(
    engine: &Engine,
    bundle: &MappedBundle,
    request: &Request,
) -> Result<Vec<String>, SearchError> {
    let repo = bundle.default_repo_name();
    let target = Target {
        repo: &repo,
        bundle,
        tag: None,
    };
    let answer = engine.answer(&[target], request)?;
    Ok(answer
        .files
        .unwrap_or_default()
        .into_iter()
        .map(|f| f.path)
        .collect())
}

/// The request an evaluation asks for `query`: the top [`DEPTH`] files.
/// Queries are not length-limited here: golden files hold whole issues.
pub fn file_request(query: &str, mode: Mode) -> Request {
    Request {
        query: query.to_string(),
        k: DEPTH,
        filter: Default::default(),
        mode,
        group: Group::File,
        kind: Default::default(),
        exclude_commit: None,
    }
}

/// The paths `bundle` indexes.
pub fn indexed_paths(
    bundle: &MappedBundle,
) -> Result<std::collections::HashSet<String>, SearchError> {
    let chunks = bundle.chunks()?;
    Ok((0..chunks.path_count())
        .filter_map(|p| chunks.path(p).map(str::to_string))
        .collect())
}

/// `query` with only the gold files in `indexed` (files a build skipped,
/// too large or ignored, cannot be found); `None` when none is left.
pub fn keep_indexed(
    query: &EvalQuery,
    indexed: &std::collections::HashSet<String>,
) -> Option<EvalQuery> {
    let gold: Vec<String> = query
        .gold
        .iter()
        .filter(|g| indexed.contains(g.as_str()))
        .cloned()
        .collect();
    (!gold.is_empty()).then(|| EvalQuery {
        gold,
        ..query.clone()
    })
}

/// Scores every query against `bundle`.
pub fn evaluate(
    engine: &Engine,
    bundle: &MappedBundle,
    queries: &[EvalQuery],
    mode: Mode,
) -> Result<Report, SearchError> {
    let mut scores = Vec::with_capacity(queries.len());
    for q in queries {
        let mut request = file_request(&q.query, mode);
        request.exclude_commit = q.commit.as_deref().and_then(|c| hex::decode(c).ok());
        scores.push(score(q, &ranked_paths(engine, bundle, &request)?));
    }
    Ok(Report::new(scores))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(gold: &[&str], query: &str) -> EvalQuery {
        EvalQuery {
            id: "q".into(),
            group: Some("g".into()),
            query: query.into(),
            gold: gold.iter().map(|s| s.to_string()).collect(),
            commit: None,
        }
    }

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn metrics_match_hand_computed_values() {
        // Gold a and b; ranked x, a, y, b, ...
        let s = score(&q(&["a", "b"], "text"), &files(&["x", "a", "y", "b", "z"]));
        assert_eq!(s.first_gold_rank, Some(2));
        assert_eq!(s.recall, [0.0, 1.0, 1.0]);
        assert_eq!(s.reciprocal_rank, 0.5);
        let dcg = 1.0 / 3f64.log2() + 1.0 / 5f64.log2();
        let idcg = 1.0 + 1.0 / 3f64.log2();
        assert!((s.ndcg_at_10 - dcg / idcg).abs() < 1e-12);
        assert_eq!(s.acc, [false, true, true]);
        assert!(!s.leak);
        // Duplicates are one file; a miss scores zero.
        let miss = score(&q(&["a"], "names a"), &files(&["x", "x", "y"]));
        assert_eq!(miss.top, ["x", "y"]);
        assert_eq!(
            (miss.reciprocal_rank, miss.ndcg_at_10, miss.first_gold_rank),
            (0.0, 0.0, None)
        );
        assert!(miss.leak, "the query names the gold path");
        // Acc@1 with one gold file is a hit at rank 1.
        assert_eq!(
            score(&q(&["a"], "t"), &files(&["a"])).acc,
            [true, true, true]
        );
    }

    #[test]
    fn summaries_and_the_gate_name_what_dropped() {
        let qs: Vec<EvalQuery> = (0..4)
            .map(|i| EvalQuery {
                id: format!("q{i}"),
                group: Some(if i < 2 { "g1" } else { "g2" }.into()),
                query: "t".into(),
                gold: vec![format!("f{i}")],
                commit: None,
            })
            .collect();
        let base = Report::new(qs.iter().map(|q| score(q, &[q.gold[0].clone()])).collect());
        assert_eq!(base.overall.mrr, 1.0);
        assert_eq!(base.groups["g1"].n, 2);
        // q3 loses its file; q2 falls to rank 2.
        let cand = Report::new(
            qs.iter()
                .map(|q| match q.id.as_str() {
                    "q3" => score(q, &files(&["other"])),
                    "q2" => score(q, &[String::from("other"), q.gold[0].clone()]),
                    _ => score(q, &[q.gold[0].clone()]),
                })
                .collect(),
        );
        let g = gate(&cand, &base, 0.05);
        assert!(!g.passed());
        assert!(
            g.failed
                .iter()
                .any(|d| d.metric == "mrr" && d.candidate == 0.625)
        );
        let worse: Vec<&str> = g.worse.iter().map(|w| w.id.as_str()).collect();
        assert_eq!(worse, ["q2", "q3"]);
        assert!(gate(&base, &base, 0.0).passed());
        assert!(gate(&cand, &base, 0.5).passed(), "within a wide margin");
    }

    #[test]
    fn query_files_are_read_with_aliases_and_errors_named() {
        let text = "# golden queries\n{\"query\": \"tags\", \"gold_files\": [\"src/tags.rs\"], \"id\": \"t1\"}\n\n{\"instance_id\": \"x-1\", \"repo\": \"o/r\", \"query\": \"q\", \"gold\": [\"a.py\"], \"extra\": 1}\n";
        let rows = parse_queries(text, "golden.jsonl").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[1].id.as_str(), rows[1].group.as_deref()),
            ("x-1", Some("o/r"))
        );
        let err = parse_queries("{\"query\": \"q\"}\n", "g.jsonl")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("g.jsonl line 1") && err.contains("gold_files"),
            "{err}"
        );
        let err = parse_queries("{\"query\": \" \", \"gold_files\": [\"a\"]}", "g").unwrap_err();
        assert!(err.to_string().contains("empty"));
        assert!(parse_queries("# nothing\n", "g").is_err());
    }
}
