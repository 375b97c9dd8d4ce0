//! The one answer pipeline. Every client — the HTTP API, `shelf search
//! --bundle`, `shelf eval`, the benchmarks — builds a [`Request`], asks
//! [`Engine::answer`], and serialises the [`Answer`] it gets: query windows
//! → embed → rank → group → results, written once.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Serialize;
use shelf_formats::Digest;
use shelf_formats::chunks::Chunk;

use crate::across::{self, Asked, InBundle, RepoFusion};
use crate::candidates::{self, SourceTuning};
use crate::code::{self, CodeTuning, KindPreference};
use crate::encode::{Encoded, MAX_WINDOWS, QueryEncoder, windows};
use crate::error::{RequestError, SearchError};
use crate::filter::Filter;
use crate::group::{CHUNK_DECAY, CHUNKS_PER_FILE, group_by_file_decayed};
use crate::language::language_of;
use crate::mapped::{MappedBundle, OpenError};
use crate::query::{self, QueryTuning};
use crate::rank::{self, Fusion, Lexical, Mode, Ranked, Ranking};
use shelf_formats::FileKind;
use shelf_formats::lexical::Analyzer;

/// How several repositories' rankings become one by default (measured on
/// the development issues asked across all four of their repositories:
/// docs/benchmarks.md, "Across repositories").
pub const DEFAULT_REPO_FUSION: RepoFusion = RepoFusion::Collection;

/// What an answer lists: chunks, or files with their best chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    /// Ranked chunks.
    Chunk,
    /// Ranked files, each with its best chunks.
    File,
}

impl FromStr for Group {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "chunk" => Ok(Group::Chunk),
            "file" => Ok(Group::File),
            other => Err(format!(
                "unknown group '{}'; use chunk or file",
                other.chars().take(32).collect::<String>()
            )),
        }
    }
}

/// Bounds a request must stay within, and its defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Most results one query may ask for.
    pub max_k: usize,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Results when a request does not say.
    pub default_k: usize,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            max_k: 100,
            max_query_bytes: 32 << 10,
            default_k: 10,
        }
    }
}

/// A request as a client gave it, before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawRequest {
    /// The query text.
    pub query: String,
    /// Results wanted (default: the limits' `default_k`).
    pub k: Option<usize>,
    /// A path glob.
    pub path: Option<String>,
    /// Language names.
    pub languages: Vec<String>,
    /// `hybrid` (default), `semantic` or `lexical`.
    pub mode: Option<String>,
    /// `chunk` (default) or `file`.
    pub group: Option<String>,
    /// The kind of file to prefer: `auto` (default: what the query asks
    /// for), `any`, or a kind (`source`, `test`, `doc`, ...).
    pub kind: Option<String>,
}

/// A validated query.
#[derive(Debug, Clone)]
pub struct Request {
    /// The query text.
    pub query: String,
    /// Results wanted.
    pub k: usize,
    /// Which chunks may be returned.
    pub filter: Filter,
    /// How to match.
    pub mode: Mode,
    /// What to list.
    pub group: Group,
    /// The kind of file to prefer.
    pub kind: KindPreference,
    /// A commit (object id bytes) whose message the history source must
    /// not count: the query's own, when a quality gate asks a commit's
    /// message of a bundle that already holds it. Not a client parameter.
    pub exclude_commit: Option<Vec<u8>>,
}

impl Request {
    /// Validates `raw` against `limits`; errors name the parameter.
    pub fn new(raw: RawRequest, limits: &RequestLimits) -> Result<Self, RequestError> {
        let invalid = RequestError::Invalid;
        if raw.query.trim().is_empty() {
            return Err(invalid("the query is empty: say what to look for".into()));
        }
        if raw.query.len() > limits.max_query_bytes {
            return Err(RequestError::TooLong(format!(
                "the query is {} bytes; the limit is {}",
                raw.query.len(),
                limits.max_query_bytes
            )));
        }
        let k = raw.k.unwrap_or(limits.default_k);
        if k == 0 || k > limits.max_k {
            return Err(invalid(format!(
                "k = {k} is out of range: ask for 1 to {} results",
                limits.max_k
            )));
        }
        let filter = Filter::new(raw.path.as_deref(), &raw.languages).map_err(invalid)?;
        let mode = match raw.mode {
            Some(m) => m.parse::<Mode>().map_err(invalid)?,
            None => Mode::Hybrid,
        };
        let group = match raw.group {
            Some(g) => g.parse::<Group>().map_err(invalid)?,
            None => Group::Chunk,
        };
        let kind = match raw.kind {
            Some(k) => k.parse::<KindPreference>().map_err(invalid)?,
            None => KindPreference::Auto,
        };
        Ok(Self {
            query: raw.query,
            k,
            filter,
            mode,
            group,
            kind,
            exclude_commit: None,
        })
    }
}

/// A bundle that answered.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct BundleRef {
    /// The repository it is served as.
    pub repo: String,
    /// Its digest.
    #[schemars(with = "String")]
    pub digest: Digest,
    /// The tag that pointed at it when it was loaded (`None`: a file).
    pub tag: Option<String>,
    /// The repository it was built from.
    pub repository: String,
    /// The commit it was built from.
    pub commit: String,
    /// When that commit was made (RFC 3339, UTC): how fresh the index is.
    pub commit_time: String,
    /// Seconds from that commit to this answer: the index's age (how
    /// long ago the code it answers from was committed).
    pub commit_age_seconds: u64,
}

/// Where the time went, in milliseconds (rounded to microseconds).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, JsonSchema)]
pub struct Timings {
    /// Embedding the query (queueing for the model included); 0 in
    /// lexical mode.
    pub embed: f64,
    /// Ranking and reading the results.
    pub search: f64,
}

/// One result chunk.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ResultChunk {
    /// 1-based rank.
    pub rank: usize,
    /// The repository it is from.
    pub repo: String,
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
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ResultFile {
    /// 1-based rank.
    pub rank: usize,
    /// The repository it is from.
    pub repo: String,
    /// The path.
    pub path: String,
    /// What the file is ranked by: its best chunks' scores (at most 3)
    /// summed, each after the first counting 0.8 of the one before.
    pub score: f32,
    /// Language from the extension, if known.
    pub language: Option<&'static str>,
    /// Its chunks among the ranked ones, best first (at most
    /// [`CHUNKS_PER_FILE`]).
    pub chunks: Vec<ResultChunk>,
}

/// The answer to one request: what `/v1/search` returns and
/// `shelf search --json` prints (docs/api.md).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct Answer {
    /// The query text.
    pub query: String,
    /// Results asked for.
    pub k: usize,
    /// The path filter, as given.
    pub path: Option<String>,
    /// The language filter, as given.
    pub language: Vec<String>,
    /// The mode that ranked (a bundle without a lexical index answers
    /// hybrid queries semantically).
    pub mode: Mode,
    /// What is listed.
    pub group: Group,
    /// The kind of file preferred: the request's `kind`, or with `auto`
    /// the kind the query asks for; `null` with `kind=any`.
    #[schemars(with = "Option<String>")]
    pub kind: Option<FileKind>,
    /// The bundle that answered, when one did (a query over several
    /// repositories has `null` here and lists them in `repos`).
    pub bundle: Option<BundleRef>,
    /// Every bundle that answered, one per repository asked.
    pub repos: Vec<BundleRef>,
    /// Milliseconds from the start of embedding to the last result.
    pub took_ms: f64,
    /// Where they went.
    pub timings_ms: Timings,
    /// Ranked chunks (`group=chunk`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub results: Option<Vec<ResultChunk>>,
    /// Ranked files (`group=file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<Vec<ResultFile>>,
    /// What was left out to stay within a `max_tokens` bound
    /// ([`Answer::fit`]); absent when nothing was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<crate::budget::Truncation>,
    /// The largest model call the query's windows were part of (0 in
    /// lexical mode), for metrics; not serialised.
    #[serde(skip)]
    pub embed_batch: usize,
}

impl Answer {
    /// Results listed (chunks or files).
    pub fn len(&self) -> usize {
        self.results.as_ref().map_or(0, Vec::len) + self.files.as_ref().map_or(0, Vec::len)
    }

    /// Whether nothing matched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Time spent embedding.
    pub fn embed_time(&self) -> Duration {
        Duration::from_secs_f64(self.timings_ms.embed / 1e3)
    }

    /// Time spent ranking.
    pub fn search_time(&self) -> Duration {
        Duration::from_secs_f64(self.timings_ms.search / 1e3)
    }
}

/// A bundle to answer from: the repository it is served as, and the tag
/// it was loaded by.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The repository's name.
    pub repo: &'a str,
    /// The bundle.
    pub bundle: &'a MappedBundle,
    /// The tag that pointed at it (`None`: a local file).
    pub tag: Option<&'a str>,
}

/// The knobs of the pipeline. The defaults are what every client uses;
/// benchmarks vary them to measure why they are the defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tuning {
    /// How hybrid mode fuses its two lists.
    pub fusion: Fusion,
    /// Query windows embedded at most.
    pub max_windows: usize,
    /// Chunks summed to score a file.
    pub chunks_per_file: usize,
    /// How the rankings of several repositories become one.
    pub across: RepoFusion,
    /// How the lexical query weighs code.
    pub query: QueryTuning,
    /// The code-aware factors.
    pub code: CodeTuning,
    /// The candidate sources (definitions, paths, history).
    pub sources: SourceTuning,
    /// Each further chunk of a file counts this much of the one before
    /// in the file's score (1: a plain sum of its best chunks).
    pub chunk_decay: f32,
    /// How far the lexical list's weight follows what the query looks
    /// like: times `1 + this` for a query of code alone, `1 - this` for
    /// prose alone, in between by the share of code terms (0: fixed).
    pub adaptive_fusion: f32,
}

impl Tuning {
    /// The pipeline before query understanding and code-aware ranking
    /// (what benchmarks compare the defaults with).
    pub fn plain() -> Self {
        Self {
            query: QueryTuning::PLAIN,
            code: CodeTuning::OFF,
            sources: SourceTuning::OFF,
            chunk_decay: 1.0,
            ..Self::default()
        }
    }
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            fusion: Fusion::default(),
            max_windows: MAX_WINDOWS,
            chunks_per_file: CHUNKS_PER_FILE,
            across: DEFAULT_REPO_FUSION,
            query: QueryTuning::default(),
            code: CodeTuning::default(),
            sources: SourceTuning::default(),
            chunk_decay: CHUNK_DECAY,
            adaptive_fusion: 0.0,
        }
    }
}

/// The search engine: a query model and the pipeline's tuning. Cheap to
/// clone; shared by every request.
#[derive(Clone)]
pub struct Engine {
    encoder: Arc<dyn QueryEncoder>,
    tuning: Tuning,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("model", &self.encoder.identity().name)
            .field("tuning", &self.tuning)
            .finish()
    }
}

impl Engine {
    /// An engine that embeds queries with `encoder`.
    pub fn new(encoder: Arc<dyn QueryEncoder>) -> Self {
        Self {
            encoder,
            tuning: Tuning::default(),
        }
    }

    /// The same engine with other knobs.
    pub fn with_tuning(mut self, tuning: Tuning) -> Self {
        self.tuning = tuning;
        self
    }

    /// The query model.
    pub fn encoder(&self) -> &dyn QueryEncoder {
        self.encoder.as_ref()
    }

    /// Answers `request` from `targets` (one bundle, or the bundles of
    /// several repositories ranked as one list). Blocking: it waits for the
    /// query's vectors, so async callers run it off their runtime.
    pub fn answer(&self, targets: &[Target<'_>], request: &Request) -> Result<Answer, SearchError> {
        let started = Instant::now();
        let encoded = self.encode(request)?;
        let embed_time = started.elapsed();
        let t = Instant::now();
        let (mode, kind, ranked) = self.rank_many(targets, request, &encoded.vectors)?;
        let (results, files) = match request.group {
            Group::File => (None, Some(self.file_results(targets, &ranked, request.k)?)),
            Group::Chunk => (Some(chunk_results(targets, &ranked, request.k)?), None),
        };
        let search_time = t.elapsed();
        let repos: Vec<BundleRef> = targets.iter().map(bundle_ref).collect();
        Ok(Answer {
            query: request.query.clone(),
            k: request.k,
            path: request.filter.path().map(str::to_string),
            language: request.filter.languages().to_vec(),
            mode,
            group: request.group,
            kind,
            bundle: (repos.len() == 1).then(|| repos[0].clone()),
            repos,
            took_ms: ms(started.elapsed()),
            timings_ms: Timings {
                embed: if request.mode.needs_vectors() {
                    ms(embed_time)
                } else {
                    0.0
                },
                search: ms(search_time),
            },
            results,
            files,
            truncated: None,
            embed_batch: encoded.batch,
        })
    }

    /// The query's vectors: one per window, none in lexical mode.
    pub fn encode(&self, request: &Request) -> Result<Encoded, SearchError> {
        if !request.mode.needs_vectors() {
            return Ok(Encoded::default());
        }
        let text = if self.tuning.query.prose_for_vectors {
            query::prose(&request.query)
        } else {
            std::borrow::Cow::Borrowed(request.query.as_str())
        };
        let texts = windows(self.encoder.as_ref(), &text, self.tuning.max_windows);
        Ok(self.encoder.encode(&texts)?)
    }

    /// Chunks to rank for `request`: `k` for chunks, more for files.
    fn depth(&self, request: &Request) -> usize {
        match request.group {
            Group::File => rank::depth(request.k, self.tuning.chunks_per_file),
            Group::Chunk => request.k,
        }
    }

    /// Ranks one bundle's chunks for `request` given its vectors (what
    /// [`Engine::answer`] does after embedding; benchmarks time it alone).
    pub fn rank(
        &self,
        bundle: &MappedBundle,
        request: &Request,
        vectors: &[Vec<f32>],
    ) -> Result<Ranking, SearchError> {
        let n = self.depth(request);
        let analyzer = bundle.analyzer().unwrap_or(Analyzer::CURRENT);
        let query = query::analyze(analyzer, &request.query, &self.tuning.query);
        let c = rank::candidates_for(
            bundle,
            Lexical::Terms(&query.terms),
            vectors,
            request.mode,
            &request.filter,
            n,
        )?;
        let kind = request.kind.resolve(&query);
        // Re-scored over a deeper list than a chunk answer shows, so a
        // chunk the factors lift can come from below the first k.
        let fusion = self.fusion_for(&query);
        let mut chunks = rank::order(&c, &fusion, n.max(rank::CANDIDATES));
        candidates::add_sources(
            bundle,
            &query,
            kind,
            &request.filter,
            request.exclude_commit.as_deref(),
            &mut chunks,
            c.mode,
            &fusion,
            &self.tuning.sources,
        );
        code::rerank(
            &bundle.chunks()?,
            &query,
            kind,
            &mut chunks,
            &self.tuning.code,
        );
        chunks.truncate(n.max(1));
        Ok(Ranking {
            mode: c.mode,
            kind,
            chunks,
        })
    }

    /// The fusion for `query`: the tuning's, its lexical weight following
    /// the query's share of code terms when `adaptive_fusion` is on.
    fn fusion_for(&self, query: &query::Query) -> Fusion {
        let mut fusion = self.tuning.fusion;
        if self.tuning.adaptive_fusion != 0.0 && !query.terms.is_empty() {
            let code = query.terms.iter().filter(|t| t.2 > 1.0).count() as f32;
            let share = code / query.terms.len() as f32;
            fusion.lexical_weight *= 1.0 + self.tuning.adaptive_fusion * (2.0 * share - 1.0);
        }
        fusion
    }

    /// Ranks the chunks of every target as one list: one bundle as
    /// [`Engine::rank`] does, several by the tuning's [`RepoFusion`].
    pub fn rank_many(
        &self,
        targets: &[Target<'_>],
        request: &Request,
        vectors: &[Vec<f32>],
    ) -> Result<(Mode, Option<FileKind>, Vec<InBundle>), SearchError> {
        if let [one] = targets {
            let ranking = self.rank(one.bundle, request, vectors)?;
            let chunks = ranking
                .chunks
                .into_iter()
                .map(|ranked| InBundle { target: 0, ranked })
                .collect();
            return Ok((ranking.mode, ranking.kind, chunks));
        }
        let bundles: Vec<&MappedBundle> = targets.iter().map(|t| t.bundle).collect();
        let queries: Vec<query::Query> = bundles
            .iter()
            .map(|b| {
                let analyzer = b.analyzer().unwrap_or(Analyzer::CURRENT);
                query::analyze(analyzer, &request.query, &self.tuning.query)
            })
            .collect();
        let kind = queries.first().and_then(|q| request.kind.resolve(q));
        let n = self.depth(request);
        // Ranked deeper than shown, as for one bundle, so a chunk the code
        // factors lift can come from below the first n.
        let (mode, fused) = across::rank(
            &bundles,
            &Asked {
                queries: &queries,
                vectors,
                mode: request.mode,
                filter: &request.filter,
                n: n.max(rank::CANDIDATES),
            },
            &self.tuning.fusion,
            self.tuning.across,
        )?;
        // The code factors per repository (each knows its own paths), then
        // one list again by the factored scores.
        let mut by_target: Vec<Vec<Ranked>> = vec![Vec::new(); targets.len()];
        for c in fused {
            by_target[c.target].push(c.ranked);
        }
        let mut all = Vec::new();
        for (target, mut list) in by_target.into_iter().enumerate() {
            let chunks = bundles[target].chunks()?;
            candidates::add_sources(
                bundles[target],
                &queries[target],
                kind,
                &request.filter,
                request.exclude_commit.as_deref(),
                &mut list,
                mode,
                &self.tuning.fusion,
                &self.tuning.sources,
            );
            code::rerank(
                &chunks,
                &queries[target],
                kind,
                &mut list,
                &self.tuning.code,
            );
            all.extend(list.into_iter().map(|ranked| InBundle { target, ranked }));
        }
        all.sort_by(|a, b| {
            b.ranked
                .score
                .total_cmp(&a.ranked.score)
                .then(a.target.cmp(&b.target))
                .then(a.ranked.key.cmp(&b.ranked.key))
        });
        all.truncate(n.max(1));
        Ok((mode, kind, all))
    }

    /// The first `k` files, each with its best chunks, ranked by those
    /// chunks' scores summed with the tuning's decay; across repositories a
    /// file is a (repository, path) pair.
    ///
    /// Summing rather than taking the best chunk alone favours a file that
    /// several chunks point at: the file a fix touches usually matches an
    /// issue in more than one place, while a single lucky chunk (a test, a
    /// changelog line) does not. On the development issues this lifted file
    /// Recall@5 in every mode (hybrid 0.75 → 0.86, MRR 0.55 → 0.61;
    /// docs/benchmarks.md).
    fn file_results(
        &self,
        targets: &[Target<'_>],
        ranked: &[InBundle],
        k: usize,
    ) -> Result<Vec<ResultFile>, OpenError> {
        let stores = targets
            .iter()
            .map(|t| t.bundle.chunks())
            .collect::<Result<Vec<_>, _>>()?;
        let found: Vec<(&InBundle, Chunk<'_>)> = ranked
            .iter()
            .filter_map(|r| {
                let store = stores.get(r.target)?;
                Some((r, store.get(usize::try_from(r.ranked.key).ok()?)?))
            })
            .collect();
        let scored: Vec<((usize, &str), f32)> = found
            .iter()
            .map(|(r, c)| ((r.target, c.path), r.ranked.score))
            .collect();
        // Only the chunks a file keeps are copied out of the bundle.
        Ok(group_by_file_decayed(
            &scored,
            self.tuning.chunks_per_file,
            self.tuning.chunk_decay,
            k,
        )
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let (target, path) = g.file;
            ResultFile {
                rank: i + 1,
                repo: targets[target].repo.to_string(),
                path: path.to_string(),
                score: g.score,
                language: language_of(path),
                chunks: g
                    .members
                    .iter()
                    .enumerate()
                    .map(|(j, &m)| {
                        result_chunk(j + 1, targets[target].repo, &found[m].0.ranked, &found[m].1)
                    })
                    .collect(),
            }
        })
        .collect())
    }
}

/// What answered, with how fresh it is.
pub fn bundle_ref(t: &Target<'_>) -> BundleRef {
    let source = &t.bundle.manifest.source;
    let committed =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(source.commit_time.max(0) as u64);
    BundleRef {
        repo: t.repo.to_string(),
        digest: t.bundle.digest,
        tag: t.tag.map(str::to_string),
        repository: source.repository.clone(),
        commit: source.commit.clone(),
        commit_time: humantime::format_rfc3339_seconds(committed).to_string(),
        commit_age_seconds: std::time::SystemTime::now()
            .duration_since(committed)
            .map_or(0, |d| d.as_secs()),
    }
}

/// The first `k` chunks with their text.
fn chunk_results(
    targets: &[Target<'_>],
    ranked: &[InBundle],
    k: usize,
) -> Result<Vec<ResultChunk>, OpenError> {
    let stores = targets
        .iter()
        .map(|t| t.bundle.chunks())
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ranked
        .iter()
        .filter_map(|r| {
            let chunk = stores
                .get(r.target)?
                .get(usize::try_from(r.ranked.key).ok()?)?;
            Some((r, chunk))
        })
        .take(k)
        .enumerate()
        .map(|(i, (r, c))| result_chunk(i + 1, targets[r.target].repo, &r.ranked, &c))
        .collect())
}

fn result_chunk(rank: usize, repo: &str, r: &Ranked, c: &Chunk<'_>) -> ResultChunk {
    ResultChunk {
        rank,
        repo: repo.to_string(),
        score: r.score,
        semantic_score: r.semantic,
        lexical_score: r.lexical,
        path: c.path.to_string(),
        start_line: c.start_line,
        end_line: c.end_line,
        language: language_of(c.path),
        chunk_id: hex::encode(c.content_id),
        text: c.text.to_string(),
    }
}

/// Milliseconds, rounded to microseconds.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(query: &str) -> RawRequest {
        RawRequest {
            query: query.into(),
            ..RawRequest::default()
        }
    }

    #[test]
    fn requests_default_and_refuse_what_is_out_of_range() {
        let limits = RequestLimits::default();
        let r = Request::new(raw("tags"), &limits).unwrap();
        assert_eq!((r.k, r.mode, r.group), (10, Mode::Hybrid, Group::Chunk));
        for (bad, needle) in [
            (raw("  "), "empty"),
            (
                RawRequest {
                    k: Some(0),
                    ..raw("x")
                },
                "out of range",
            ),
            (
                RawRequest {
                    k: Some(101),
                    ..raw("x")
                },
                "out of range",
            ),
            (
                RawRequest {
                    mode: Some("fuzzy".into()),
                    ..raw("x")
                },
                "unknown mode",
            ),
            (
                RawRequest {
                    group: Some("dir".into()),
                    ..raw("x")
                },
                "unknown group",
            ),
            (
                RawRequest {
                    languages: vec!["klingon".into()],
                    ..raw("x")
                },
                "unknown language",
            ),
        ] {
            let e = Request::new(bad, &limits).unwrap_err();
            assert!(matches!(e, RequestError::Invalid(_)), "{e:?}");
            assert!(e.message().contains(needle), "{e}");
        }
        let long = raw(&"a".repeat(limits.max_query_bytes + 1));
        assert!(matches!(
            Request::new(long, &limits),
            Err(RequestError::TooLong(_))
        ));
    }
}
