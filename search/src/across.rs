//! Ranking one query over several bundles at once (the repositories one
//! server serves) into one list. Scores of different bundles do not compare
//! as they are: BM25 weighs a term by its rarity in one bundle, and fused
//! ranks say nothing about how well a repository's best chunk matches. How
//! the lists become one is [`RepoFusion`]; the default was chosen by
//! measurement (docs/benchmarks.md, "Across repositories").

use std::str::FromStr;

use serde::Serialize;
use shelf_formats::lexical::{Analyzer, LexicalIndex};

use crate::error::SearchError;
use crate::filter::{Filter, Selection};
use crate::mapped::MappedBundle;
use crate::query::Query;
use crate::rank::{self, CANDIDATES, Fusion, Lexical, Mode, Ranked, fuse_keyed};
use crate::{lexical, semantic};

/// How the rankings of several bundles become one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RepoFusion {
    /// The bundles are one collection: semantic hits merged by cosine (one
    /// model: comparable), lexical hits by BM25 with the collection's term
    /// statistics (comparable), then reciprocal rank fusion over the two
    /// merged lists, exactly as for one bundle.
    Collection,
    /// Each bundle ranked alone, the lists fused by reciprocal rank: every
    /// repository's first result ranks with every other's first.
    Interleave,
    /// Each bundle ranked alone, merged by each chunk's own fused score.
    Scores,
}

impl FromStr for RepoFusion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "collection" => Ok(RepoFusion::Collection),
            "interleave" => Ok(RepoFusion::Interleave),
            "scores" => Ok(RepoFusion::Scores),
            other => Err(format!(
                "unknown repository fusion '{other}'; use collection, interleave or scores"
            )),
        }
    }
}

/// A ranked chunk of one of several bundles.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InBundle {
    /// Which bundle (its position in the list ranked).
    pub target: usize,
    /// The chunk in it, and its scores.
    pub ranked: Ranked,
}

/// What is asked of every bundle.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    /// The query as each bundle's analyzer understands it, one per bundle.
    pub queries: &'a [Query],
    /// Its windows' vectors (one model for every bundle).
    pub vectors: &'a [Vec<f32>],
    /// The mode asked for.
    pub mode: Mode,
    /// Which chunks may be returned.
    pub filter: &'a Filter,
    /// Chunks wanted in the one list.
    pub n: usize,
}

/// Ranks `bundles`' chunks for one query as one list of `asked.n`. Returns
/// the mode that applied: hybrid falls back to semantic when no bundle has
/// a lexical index; a bundle without one takes part in hybrid mode
/// semantically and not at all in lexical mode.
pub fn rank(
    bundles: &[&MappedBundle],
    asked: &Asked<'_>,
    fusion: &Fusion,
    how: RepoFusion,
) -> Result<(Mode, Vec<InBundle>), SearchError> {
    let Asked {
        queries,
        vectors,
        mode,
        filter,
        n,
    } = *asked;
    let lexes: Vec<Option<(LexicalIndex<'_>, Analyzer)>> = bundles
        .iter()
        .map(|b| b.lexical().transpose())
        .collect::<Result<_, _>>()?;
    let any_lexical = lexes.iter().any(Option::is_some);
    let mode = match (mode, any_lexical) {
        (Mode::Lexical, false) => return Err(SearchError::NoLexicalIndex),
        (Mode::Hybrid, false) => Mode::Semantic,
        (m, _) => m,
    };
    let ranked = match how {
        RepoFusion::Collection => collection(bundles, &lexes, &Asked { mode, ..*asked }, fusion)?,
        RepoFusion::Interleave | RepoFusion::Scores => {
            let mut lists = Vec::with_capacity(bundles.len());
            for (i, b) in bundles.iter().enumerate() {
                if mode == Mode::Lexical && lexes[i].is_none() {
                    lists.push(Vec::new());
                    continue;
                }
                let terms = Lexical::Terms(&queries[i].terms);
                let c = rank::candidates_for(b, terms, vectors, mode, filter, n)?;
                lists.push(rank::order(&c, fusion, n));
            }
            merge(lists, how, fusion, n)
        }
    };
    Ok((mode, ranked))
}

/// [`RepoFusion::Collection`], with `asked.mode` already resolved.
fn collection(
    bundles: &[&MappedBundle],
    lexes: &[Option<(LexicalIndex<'_>, Analyzer)>],
    asked: &Asked<'_>,
    fusion: &Fusion,
) -> Result<Vec<InBundle>, SearchError> {
    let Asked {
        queries,
        vectors,
        mode,
        filter,
        n,
    } = *asked;
    let want = n.max(CANDIDATES);
    let present: Vec<(LexicalIndex<'_>, Vec<String>)> = lexes
        .iter()
        .zip(queries)
        .filter_map(|(l, q)| {
            let terms = q.terms.iter().map(|(t, _, _)| t.clone()).collect();
            l.map(|(ix, _)| (ix, terms))
        })
        .collect();
    let stats = lexical::Collection::of_terms(&present);
    let mut sem: Vec<((usize, u64), f32)> = Vec::new();
    let mut lex: Vec<((usize, u64), f32)> = Vec::new();
    for (i, b) in bundles.iter().enumerate() {
        let chunks = b.chunks()?;
        let selection = Selection::resolve(&chunks, filter);
        if mode.needs_vectors() {
            for h in semantic::rank(b, vectors, &selection, want)? {
                sem.push(((i, h.key), h.score));
            }
        }
        if let (Some((ix, _)), Mode::Hybrid | Mode::Lexical) = (&lexes[i], mode) {
            let accept = |doc: u32| selection.admits(&chunks, u64::from(doc));
            let terms = &queries[i].terms;
            for (doc, s) in
                lexical::search(ix, lexical::Query::Terms(terms), want, accept, Some(&stats))
            {
                lex.push(((i, u64::from(doc)), s));
            }
        }
    }
    let by_score =
        |a: &((usize, u64), f32), b: &((usize, u64), f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    sem.sort_by(by_score);
    sem.truncate(want);
    lex.sort_by(by_score);
    lex.truncate(want);
    let mut out: Vec<InBundle> = match mode {
        Mode::Semantic => sem
            .into_iter()
            .map(|((target, key), s)| in_bundle(target, key, s, Some(s), None))
            .collect(),
        Mode::Lexical => lex
            .into_iter()
            .map(|((target, key), s)| in_bundle(target, key, s, None, Some(s)))
            .collect(),
        Mode::Hybrid => fuse_keyed(sem, lex, fusion)
            .into_iter()
            .map(|((target, key), r)| InBundle {
                target,
                ranked: Ranked { key, ..r },
            })
            .collect(),
    };
    out.truncate(n.max(1));
    Ok(out)
}

fn in_bundle(
    target: usize,
    key: u64,
    score: f32,
    semantic: Option<f32>,
    lexical: Option<f32>,
) -> InBundle {
    InBundle {
        target,
        ranked: Ranked {
            key,
            score,
            semantic,
            lexical,
        },
    }
}

/// Merges per-bundle rankings (each best first) into one list of `n`.
fn merge(lists: Vec<Vec<Ranked>>, how: RepoFusion, fusion: &Fusion, n: usize) -> Vec<InBundle> {
    let mut all: Vec<(f32, InBundle)> = lists
        .into_iter()
        .enumerate()
        .flat_map(|(target, list)| {
            list.into_iter().enumerate().map(move |(rank, ranked)| {
                let key = match how {
                    RepoFusion::Interleave => 1.0 / (fusion.k + rank as f32 + 1.0),
                    _ => ranked.score,
                };
                (key, InBundle { target, ranked })
            })
        })
        .collect();
    all.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.target.cmp(&b.1.target))
            .then(a.1.ranked.key.cmp(&b.1.ranked.key))
    });
    all.truncate(n.max(1));
    all.into_iter().map(|(_, r)| r).collect()
}
