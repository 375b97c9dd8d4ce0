//! Ranking one query against one bundle: the modes (hybrid, semantic,
//! lexical), each ranker's candidates, and reciprocal rank fusion.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;

use crate::error::SearchError;
use crate::filter::{Filter, Selection};
use crate::mapped::{Hit, MappedBundle};
use crate::{lexical, semantic};

/// How a query is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Both, fused by reciprocal rank.
    Hybrid,
    /// Embedding similarity only.
    Semantic,
    /// BM25 only.
    Lexical,
}

impl FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "hybrid" => Ok(Mode::Hybrid),
            "semantic" => Ok(Mode::Semantic),
            "lexical" => Ok(Mode::Lexical),
            other => Err(format!(
                "unknown mode '{other}'; use hybrid, semantic or lexical"
            )),
        }
    }
}

impl Mode {
    /// Whether the query must be embedded.
    pub fn needs_vectors(self) -> bool {
        self != Mode::Lexical
    }
}

/// Candidates each ranker contributes before fusion, for an answer of
/// chunks.
pub const CANDIDATES: usize = 100;
/// Candidates each ranker contributes for an answer grouped by file:
/// deeper lists let a file gather its chunks' votes (on real issues,
/// `shelf-bench swebench`, 300 over 100 lifted file Recall@5 0.844 → 0.857
/// and MRR 0.596 → 0.611, for ~1.3 ms more per query; chunk answers do not
/// pay it).
pub const FILE_CANDIDATES: usize = 300;
/// The reciprocal-rank-fusion constant. Smaller than the usual 60 so the
/// top of each list counts more; 30 ranked best among 10/30/60 on the
/// development issues (docs/benchmarks.md).
pub const RRF_K: f32 = 30.0;
/// One ranked chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// The chunk.
    pub key: u64,
    /// The score it was ranked by (cosine, BM25, or fused).
    pub score: f32,
    /// Its best cosine similarity, if the semantic ranker found it.
    pub semantic: Option<f32>,
    /// Its BM25 score, if the lexical ranker found it.
    pub lexical: Option<f32>,
}

/// The ranking of one query.
#[derive(Debug, Clone)]
pub struct Ranking {
    /// The mode that ranked (a bundle without a lexical index answers
    /// hybrid queries semantically).
    pub mode: Mode,
    /// The kind of file preferred (`None`: no preference).
    pub kind: Option<shelf_formats::FileKind>,
    /// Best first.
    pub chunks: Vec<Ranked>,
}

/// What each ranker found for a query, before fusion.
#[derive(Debug, Clone)]
pub struct Candidates {
    /// The mode that applies (a bundle without a lexical index answers
    /// hybrid queries semantically).
    pub mode: Mode,
    /// Semantic hits, best first (empty in lexical mode).
    pub semantic: Vec<Hit>,
    /// Lexical hits (document, BM25), best first (empty in semantic mode).
    pub lexical: Vec<(u32, f32)>,
}

/// How hybrid mode fuses the two lists: a chunk at rank r (1-based) in a
/// list scores weight / (k + r) for it; the sum ranks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    /// The rank constant.
    pub k: f32,
    /// The lexical list's weight (the semantic list's is 1).
    pub lexical_weight: f32,
}

impl Default for Fusion {
    fn default() -> Self {
        Self {
            k: RRF_K,
            lexical_weight: 1.0,
        }
    }
}

/// How many ranked chunks an answer of `k` files needs, each file summing
/// up to `chunks_per_file`: enough that each can gather its best chunks.
pub fn depth(k: usize, chunks_per_file: usize) -> usize {
    (k * chunks_per_file * 4).max(FILE_CANDIDATES)
}

/// Runs the rankers `mode` needs: `vectors` are the embedded windows
/// (ignored in lexical mode), each ranker contributing at least `n`
/// candidates.
pub fn candidates(
    bundle: &MappedBundle,
    query: &str,
    vectors: &[Vec<f32>],
    mode: Mode,
    filter: &Filter,
    n: usize,
) -> Result<Candidates, SearchError> {
    candidates_for(bundle, Lexical::Text(query), vectors, mode, filter, n)
}

/// What the lexical ranker is asked: the query text (analyzed as the
/// bundle's index was), or terms already analyzed and weighted
/// (`query::Query::terms`, analyzed by the bundle's analyzer).
#[derive(Debug, Clone, Copy)]
pub enum Lexical<'a> {
    /// Text, every term weighing 1.
    Text(&'a str),
    /// `(term, count, weight)`.
    Terms(&'a [(String, u32, f32)]),
}

/// [`candidates`] with the lexical query given as [`Lexical`].
pub fn candidates_for(
    bundle: &MappedBundle,
    query: Lexical<'_>,
    vectors: &[Vec<f32>],
    mode: Mode,
    filter: &Filter,
    n: usize,
) -> Result<Candidates, SearchError> {
    let lexical_index = bundle.lexical().transpose()?;
    let mode = match (mode, &lexical_index) {
        (Mode::Lexical, None) => return Err(SearchError::NoLexicalIndex),
        (Mode::Hybrid, None) => Mode::Semantic,
        (m, _) => m,
    };
    let want = n.max(CANDIDATES);
    let chunks = bundle.chunks()?;
    let selection = Selection::resolve(&chunks, filter);
    let semantic = if mode.needs_vectors() {
        semantic::rank(bundle, vectors, &selection, want)?
    } else {
        Vec::new()
    };
    let lexical = match (&lexical_index, mode) {
        (Some((ix, analyzer)), Mode::Hybrid | Mode::Lexical) => {
            let admits = |doc| selection.admits(&chunks, u64::from(doc));
            match query {
                Lexical::Text(text) => lexical::search(ix, *analyzer, text, want, admits),
                Lexical::Terms(terms) => lexical::search_terms(ix, terms, want, admits),
            }
        }
        _ => Vec::new(),
    };
    Ok(Candidates {
        mode,
        semantic,
        lexical,
    })
}

/// Orders candidates: by cosine, by BM25, or fused; the first `n`.
pub fn order(c: &Candidates, fusion: &Fusion, n: usize) -> Vec<Ranked> {
    let mut chunks: Vec<Ranked> = match c.mode {
        Mode::Semantic => c
            .semantic
            .iter()
            .map(|h| Ranked {
                key: h.key,
                score: h.score,
                semantic: Some(h.score),
                lexical: None,
            })
            .collect(),
        Mode::Lexical => c
            .lexical
            .iter()
            .map(|&(doc, s)| Ranked {
                key: u64::from(doc),
                score: s,
                semantic: None,
                lexical: Some(s),
            })
            .collect(),
        Mode::Hybrid => fuse(&c.semantic, &c.lexical, fusion),
    };
    chunks.truncate(n.max(1));
    chunks
}

/// Reciprocal rank fusion: a chunk scores weight/(k + rank) in each list
/// it is in; the sum ranks.
fn fuse(semantic: &[Hit], lexical: &[(u32, f32)], fusion: &Fusion) -> Vec<Ranked> {
    fuse_keyed(
        semantic.iter().map(|h| (h.key, h.score)),
        lexical.iter().map(|&(doc, s)| (u64::from(doc), s)),
        fusion,
    )
    .into_iter()
    .map(|(key, r)| Ranked { key, ..r })
    .collect()
}

/// [`fuse`] over any chunk key (a chunk of one bundle, or of one of
/// several): each list best first; the fused list best first, ties by key.
pub(crate) fn fuse_keyed<K: Copy + Eq + std::hash::Hash + Ord>(
    semantic: impl IntoIterator<Item = (K, f32)>,
    lexical: impl IntoIterator<Item = (K, f32)>,
    fusion: &Fusion,
) -> Vec<(K, Ranked)> {
    let blank = Ranked {
        key: 0,
        score: 0.0,
        semantic: None,
        lexical: None,
    };
    let mut fused: HashMap<K, Ranked> = HashMap::new();
    for (rank, (key, score)) in semantic.into_iter().enumerate() {
        let r = fused.entry(key).or_insert(blank);
        r.score += 1.0 / (fusion.k + rank as f32 + 1.0);
        r.semantic = Some(score);
    }
    for (rank, (key, score)) in lexical.into_iter().enumerate() {
        let r = fused.entry(key).or_insert(blank);
        r.score += fusion.lexical_weight / (fusion.k + rank as f32 + 1.0);
        r.lexical = Some(score);
    }
    let mut out: Vec<(K, Ranked)> = fused.into_iter().collect();
    out.sort_by(|a, b| b.1.score.total_cmp(&a.1.score).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_say_what_is_wrong() {
        assert_eq!("Hybrid".parse::<Mode>(), Ok(Mode::Hybrid));
        assert_eq!(" lexical ".parse::<Mode>(), Ok(Mode::Lexical));
        assert!("fuzzy".parse::<Mode>().unwrap_err().contains("hybrid"));
        assert!(!Mode::Lexical.needs_vectors());
    }

    #[test]
    fn fusion_rewards_agreement() {
        let semantic = [
            Hit { key: 1, score: 0.9 },
            Hit { key: 2, score: 0.8 },
            Hit { key: 3, score: 0.7 },
        ];
        let lexical = [(3u32, 12.0f32), (4, 9.0), (1, 2.0)];
        let fused = fuse(&semantic, &lexical, &Fusion::default());
        let order: Vec<u64> = fused.iter().map(|r| r.key).collect();
        // 1: ranks 1 and 3; 3: ranks 3 and 1; tie broken by key.
        assert_eq!(order, [1, 3, 2, 4]);
        assert_eq!(fused[0].semantic, Some(0.9));
        assert_eq!(fused[0].lexical, Some(2.0));
        assert_eq!(fused[2].lexical, None);
    }
}
