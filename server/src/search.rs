//! The search engine: one query against one bundle in a mode (hybrid,
//! semantic, lexical), with filters, long queries cut into model-sized
//! windows, rank fusion, and grouping by file. Shared by the HTTP API,
//! `shelf search` and `shelf eval`, so all three rank the same way.
//!
//! Embedding is the caller's (the server embeds off the async runtime, in
//! batches); this module says what to embed ([`windows`]) and ranks.

use std::collections::HashMap;
use std::str::FromStr;

use serde::Serialize;
use shelf_embed::Embedder;

use crate::lexical;
use crate::live::{Hit, LiveBundle, OpenError};
use crate::query::{self, Filter, Selection};
use shelf_formats::chunks::Chunk;

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
/// Query windows embedded at most (each one model call's worth of tokens).
pub const MAX_WINDOWS: usize = 4;

/// The texts to embed for `query`: the query itself when it fits the model,
/// else consecutive windows of it (each the model's limit less its special
/// tokens and the query prefix), at most `max_windows`.
pub fn windows(embedder: &Embedder, query: &str, max_windows: usize) -> Vec<String> {
    let prefix = embedder
        .token_spans(&embedder.identity().query_prefix)
        .map(|s| s.len())
        .unwrap_or(0);
    let window = (embedder.identity().max_tokens as usize)
        .saturating_sub(2 + prefix)
        .max(16);
    let spans = embedder.token_spans(query).unwrap_or_default();
    if spans.len() <= window || max_windows <= 1 {
        return vec![query.to_string()];
    }
    spans
        .chunks(window)
        .take(max_windows)
        .filter_map(|w| {
            let (start, end) = (w.first()?.0, w.last()?.1);
            query.get(start..end).map(str::to_string)
        })
        .collect()
}

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
    /// Best first.
    pub chunks: Vec<Ranked>,
}

/// Why a query cannot be answered as asked.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// Lexical search on a bundle without a lexical index.
    #[error(
        "this bundle has no lexical index (it was built by a shelf older than format 1.1): rebuild it, or use mode=semantic"
    )]
    NoLexicalIndex,
    /// The bundle failed underneath.
    #[error(transparent)]
    Bundle(#[from] OpenError),
    /// The query could not be embedded.
    #[error("embedding the query failed: {0}")]
    Embed(String),
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

/// How many ranked chunks to ask [`rank`] for: `k` for an answer of chunks;
/// for `k` files, enough that each can gather its best chunks.
pub fn depth(k: usize, group_files: bool) -> usize {
    if group_files {
        (k * CHUNKS_PER_FILE * 4).max(FILE_CANDIDATES)
    } else {
        k
    }
}

/// Runs the rankers `mode` needs: `vectors` are the embedded [`windows`]
/// (ignored in lexical mode), each ranker contributing at least `n`
/// candidates.
pub fn candidates(
    bundle: &LiveBundle,
    query: &str,
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
        semantic(bundle, vectors, &selection, want)?
    } else {
        Vec::new()
    };
    let lexical = match (&lexical_index, mode) {
        (Some(ix), Mode::Hybrid | Mode::Lexical) => lexical::search(ix, query, want, |doc| {
            selection.admits(&chunks, u64::from(doc))
        }),
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

/// Ranks `bundle`'s chunks for a query (the first `n`), with the default
/// fusion.
pub fn rank(
    bundle: &LiveBundle,
    query: &str,
    vectors: &[Vec<f32>],
    mode: Mode,
    filter: &Filter,
    n: usize,
) -> Result<Ranking, SearchError> {
    let c = candidates(bundle, query, vectors, mode, filter, n)?;
    Ok(Ranking {
        mode: c.mode,
        chunks: order(&c, &Fusion::default(), n),
    })
}

/// The best chunks over every window's vector, by each chunk's best cosine.
fn semantic(
    bundle: &LiveBundle,
    vectors: &[Vec<f32>],
    selection: &Selection,
    n: usize,
) -> Result<Vec<Hit>, OpenError> {
    let mut best: HashMap<u64, f32> = HashMap::new();
    for v in vectors {
        for h in query::search_selected(bundle, v, n, selection)? {
            let slot = best.entry(h.key).or_insert(f32::MIN);
            *slot = slot.max(h.score);
        }
    }
    let mut hits: Vec<Hit> = best
        .into_iter()
        .map(|(key, score)| Hit { key, score })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
    hits.truncate(n);
    Ok(hits)
}

/// Reciprocal rank fusion: a chunk scores weight/(k + rank) in each list
/// it is in; the sum ranks.
fn fuse(semantic: &[Hit], lexical: &[(u32, f32)], fusion: &Fusion) -> Vec<Ranked> {
    let mut fused: HashMap<u64, Ranked> = HashMap::new();
    for (rank, h) in semantic.iter().enumerate() {
        let r = fused.entry(h.key).or_insert(Ranked {
            key: h.key,
            score: 0.0,
            semantic: None,
            lexical: None,
        });
        r.score += 1.0 / (fusion.k + rank as f32 + 1.0);
        r.semantic = Some(h.score);
    }
    for (rank, &(doc, s)) in lexical.iter().enumerate() {
        let key = u64::from(doc);
        let r = fused.entry(key).or_insert(Ranked {
            key,
            score: 0.0,
            semantic: None,
            lexical: None,
        });
        r.score += fusion.lexical_weight / (fusion.k + rank as f32 + 1.0);
        r.lexical = Some(s);
    }
    let mut out: Vec<Ranked> = fused.into_values().collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
    out
}

/// One result chunk, ready to serialise.
#[derive(Debug, Clone, Serialize)]
pub struct ResultChunk {
    /// 1-based rank.
    pub rank: usize,
    /// The score it was ranked by.
    pub score: f32,
    /// Its cosine similarity, when the semantic ranker found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semantic_score: Option<f32>,
    /// Its BM25 score, when the lexical ranker found it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lexical_score: Option<f32>,
    /// Repository-relative path.
    pub path: String,
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// Language from the extension, if known.
    pub language: Option<&'static str>,
    /// The chunk's content id (hex).
    pub chunk_id: String,
    /// The chunk's text.
    pub text: String,
}

/// One file of a grouped answer.
#[derive(Debug, Clone, Serialize)]
pub struct ResultFile {
    /// 1-based rank.
    pub rank: usize,
    /// The path.
    pub path: String,
    /// What the file is ranked by: the sum of its best chunks' scores (at
    /// most [`CHUNKS_PER_FILE`] of them).
    pub score: f32,
    /// Language from the extension, if known.
    pub language: Option<&'static str>,
    /// Its chunks among the ranked ones, best first (at most
    /// [`CHUNKS_PER_FILE`]).
    pub chunks: Vec<ResultChunk>,
}

/// Chunks shown per file in a grouped answer, and summed to rank it.
pub const CHUNKS_PER_FILE: usize = 3;

/// The first `k` chunks with their text.
pub fn chunk_results(
    bundle: &LiveBundle,
    ranked: &[Ranked],
    k: usize,
) -> Result<Vec<ResultChunk>, OpenError> {
    let chunks = bundle.chunks()?;
    Ok(ranked
        .iter()
        .filter_map(|r| Some((r, chunks.get(usize::try_from(r.key).ok()?)?)))
        .take(k)
        .enumerate()
        .map(|(i, (r, c))| result_chunk(i + 1, r, &c))
        .collect())
}

fn result_chunk(rank: usize, r: &Ranked, c: &Chunk<'_>) -> ResultChunk {
    ResultChunk {
        rank,
        score: r.score,
        semantic_score: r.semantic,
        lexical_score: r.lexical,
        path: c.path.to_string(),
        start_line: c.start_line,
        end_line: c.end_line,
        language: query::language_of(c.path),
        chunk_id: hex::encode(c.content_id),
        text: c.text.to_string(),
    }
}

/// The first `k` files, each with its best chunks, ranked by the sum of
/// those chunks' scores.
///
/// Summing rather than taking the best chunk alone favours a file that
/// several chunks point at: the file a fix touches usually matches an issue
/// in more than one place, while a single lucky chunk (a test, a changelog
/// line) does not. On the development issues this lifted file Recall@5 in
/// every mode (hybrid 0.75 → 0.86, MRR 0.55 → 0.61; docs/benchmarks.md).
pub fn file_results(
    bundle: &LiveBundle,
    ranked: &[Ranked],
    k: usize,
) -> Result<Vec<ResultFile>, OpenError> {
    let chunks = bundle.chunks()?;
    let found: Vec<(&Ranked, Chunk<'_>)> = ranked
        .iter()
        .filter_map(|r| Some((r, chunks.get(usize::try_from(r.key).ok()?)?)))
        .collect();
    let scored: Vec<(&str, f32)> = found.iter().map(|(r, c)| (c.path, r.score)).collect();
    // Only the chunks a file keeps are copied out of the bundle.
    Ok(group_by_file(&scored, CHUNKS_PER_FILE, k)
        .into_iter()
        .enumerate()
        .map(|(i, g)| ResultFile {
            rank: i + 1,
            path: g.path.to_string(),
            score: g.score,
            language: query::language_of(g.path),
            chunks: g
                .members
                .iter()
                .enumerate()
                .map(|(j, &m)| result_chunk(j + 1, found[m].0, &found[m].1))
                .collect(),
        })
        .collect())
}

/// One file of a grouped answer before its chunks are read.
#[derive(Debug, Clone, PartialEq)]
pub struct FileGroup<'a> {
    /// The path.
    pub path: &'a str,
    /// The sum of its members' scores.
    pub score: f32,
    /// Positions of its best chunks in the ranked list, best first.
    pub members: Vec<usize>,
}

/// Groups ranked `(path, score)` pairs (best first) by path: each file
/// keeps its first `summed` and is scored by their sum; the best `k`.
/// `summed` 1 ranks files by their best chunk; answers use
/// [`CHUNKS_PER_FILE`] (the benchmark compares both).
pub fn group_by_file<'a>(ranked: &[(&'a str, f32)], summed: usize, k: usize) -> Vec<FileGroup<'a>> {
    let mut files: Vec<FileGroup<'a>> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for (i, &(path, score)) in ranked.iter().enumerate() {
        match slot.get(path) {
            Some(&f) => {
                let f = &mut files[f];
                if f.members.len() < summed {
                    f.score += score;
                    f.members.push(i);
                }
            }
            None => {
                slot.insert(path, files.len());
                files.push(FileGroup {
                    path,
                    score,
                    members: vec![i],
                });
            }
        }
    }
    // Stable: equal sums keep the order of their best chunks.
    files.sort_by(|a, b| b.score.total_cmp(&a.score));
    files.truncate(k);
    files
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
    fn files_rank_by_their_best_chunks_summed() {
        let ranked = [
            ("lucky.py", 0.05),
            ("fix.py", 0.04),
            ("tie_a.py", 0.035),
            ("fix.py", 0.03),
            ("tie_b.py", 0.035),
            ("fix.py", 0.02),
            ("fix.py", 0.01),
        ];
        let files = group_by_file(&ranked, CHUNKS_PER_FILE, 3);
        let order: Vec<&str> = files.iter().map(|f| f.path).collect();
        // fix.py: 0.04 + 0.03 + 0.02 (its fourth chunk is not counted);
        // the two equal sums below lucky.py keep their first appearance.
        assert_eq!(order, ["fix.py", "lucky.py", "tie_a.py"]);
        assert!((files[0].score - 0.09).abs() < 1e-6);
        assert_eq!(files[0].members, [1, 3, 5]);
        assert_eq!(files[1].members, [0]);
        assert!(group_by_file(&[], CHUNKS_PER_FILE, 3).is_empty());
        // Summing one chunk ranks files by their best chunk.
        let best: Vec<&str> = group_by_file(&ranked, 1, 3)
            .iter()
            .map(|f| f.path)
            .collect();
        assert_eq!(best, ["lucky.py", "fix.py", "tie_a.py"]);
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
