//! Candidate sources beyond BM25 and vectors: files a query points at
//! that neither ranker may rank high enough to be seen.
//!
//! - **Definitions.** The identifiers a query names (code spans, words
//!   that read as code, stack frames, fenced code, capitalised names in
//!   prose) are looked up in the bundle's definitions index; each file
//!   that defines one scores by how rare the name is (defined in few
//!   files, used in few chunks) and how plainly the query names it.
//! - **Paths and modules.** A file the query names by path (`src/x.rs`,
//!   `latex.py`), by module (`sympy.polys.factortools`, `crate::a::b`) or
//!   by stem (`ccode`, when it is named as code).
//! - **History.** The past commits whose messages are most like the query
//!   (BM25 over the history index's messages) vote for the files they
//!   changed, each vote divided among its commit's files (BugLocator's
//!   similar-report score). The files changed most often can also be
//!   favoured a little (a change-frequency prior).
//!
//! Each source ranks files; a file at rank r adds weight/(k + r) to one of
//! its chunks (the one that defines the name, else its best-ranked chunk,
//! else its first), exactly as reciprocal rank fusion adds the two
//! rankers' lists: a source can lift a file the rankers found, and bring
//! in one they did not.

use std::collections::HashMap;

use shelf_formats::FileKind;
use shelf_formats::chunks::ChunkStore;
use shelf_formats::definitions::Definitions;
use shelf_formats::history::History;
use shelf_formats::lexical::LexicalIndex;

use crate::filter::Filter;
use crate::lexical;
use crate::mapped::MappedBundle;
use crate::query::{Mention, Query};
use crate::rank::{Fusion, Mode, Ranked};

/// The sources' weights and depths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceTuning {
    /// Weight of the definitions list in the fusion (0: off).
    pub definitions: f32,
    /// A name only in a fenced code block counts this much of one named
    /// as code in the text.
    pub block_weight: f32,
    /// A capitalised name in prose counts this much.
    pub prose_weight: f32,
    /// A name in the first line counts this much more.
    pub title_weight: f32,
    /// Names defined in more files than this are left out (`__init__`,
    /// `get`): they point nowhere.
    pub max_defining_files: usize,
    /// A file's definitions score `s` counts `s / (s + this)` of its list
    /// weight: a rare name the title names plainly counts nearly fully, a
    /// common one named once in a log counts little (0: rank alone).
    pub definition_scale: f32,
    /// Weight of the path and module list (0: off).
    pub paths: f32,
    /// Weight of a file whose stem is a name the query uses as code, in
    /// that list (0: stems are not matched).
    pub stem_weight: f32,
    /// Weight of the history list (0: off).
    pub history: f32,
    /// Past commits that vote.
    pub history_commits: usize,
    /// Only the newest this many commits of the history index are
    /// searched (0: all): measures what a smaller index would give.
    pub history_limit: usize,
    /// Strength of the change-frequency prior (0: off): a file changed in
    /// many of the history's commits is scaled up by up to `1 +` this.
    pub change_prior: f32,
    /// Files each list contributes at most.
    pub depth: usize,
}

impl SourceTuning {
    /// No source: the candidates are the rankers'.
    pub const OFF: SourceTuning = SourceTuning {
        definitions: 0.0,
        block_weight: 0.0,
        prose_weight: 0.0,
        title_weight: 0.0,
        max_defining_files: 0,
        definition_scale: 0.0,
        paths: 0.0,
        stem_weight: 0.0,
        history: 0.0,
        history_commits: 0,
        history_limit: 0,
        change_prior: 0.0,
        depth: 0,
    };

    /// Every source on, each list at weight 1.
    pub const ALL: SourceTuning = SourceTuning {
        definitions: 1.0,
        block_weight: 0.5,
        prose_weight: 0.3,
        title_weight: 1.0,
        max_defining_files: 20,
        definition_scale: 10.0,
        paths: 1.0,
        stem_weight: 0.5,
        history: 1.0,
        history_commits: 20,
        history_limit: 0,
        change_prior: 0.0,
        depth: 10,
    };

    /// Whether every source is off.
    pub fn is_off(&self) -> bool {
        self.definitions == 0.0
            && self.paths == 0.0
            && self.history == 0.0
            && self.change_prior == 0.0
    }
}

/// The defaults: the history votes alone. The definitions and the path
/// sources helped the validation history a little and cost the dev
/// split's and sympy's issues more (docs/benchmarks.md, "Candidate
/// sources"), so they are off; [`SourceTuning::ALL`] has every source on.
impl Default for SourceTuning {
    fn default() -> Self {
        Self {
            definitions: 0.0,
            paths: 0.0,
            ..Self::ALL
        }
    }
}

/// What the sources know of a bundle's paths, made once per bundle on
/// first use (`MappedBundle::paths`).
#[derive(Debug, Default)]
pub struct PathTable {
    /// Chunk-store path number by path.
    by_path: HashMap<String, u32>,
    /// Each path number's path, lowercased.
    lower: Vec<String>,
    /// Path numbers by lowercased file name (`latex.py`).
    by_name: HashMap<String, Vec<u32>>,
    /// Path numbers by lowercased stem (`latex`), package entry files
    /// (`__init__`, `index`, `mod`, `lib`) left out.
    by_stem: HashMap<String, Vec<u32>>,
    /// `(module key, path number)` by the key's last part: a key is the
    /// lowercased path without extension (`sympy/printing/latex`), and a
    /// package entry file's directory (`sympy/printing`).
    by_module_tail: HashMap<String, Vec<(String, u32)>>,
    /// The chunk-store path number of each history path, when indexed.
    history_paths: Vec<Option<u32>>,
    /// Commits of the history that changed each chunk-store path.
    changes: HashMap<u32, u32>,
    /// The position in the history (0: newest) of the newest commit that
    /// changed each chunk-store path.
    last_change: HashMap<u32, u32>,
    /// The most any path changed.
    max_changes: u32,
}

/// Stems of files that stand for their directory.
const ENTRY_STEMS: &[&str] = &["__init__", "index", "mod", "lib", "main", "__main__"];

impl PathTable {
    /// The table of `bundle`'s paths (and its history's, if any).
    pub fn of(bundle: &MappedBundle) -> Self {
        let mut t = PathTable::default();
        let Ok(chunks) = bundle.chunks() else {
            return t;
        };
        for p in 0..chunks.path_count() {
            let Some(path) = chunks.path(p) else { continue };
            let p = p as u32;
            t.by_path.insert(path.to_string(), p);
            let lower = path.to_lowercase();
            t.lower.push(lower.clone());
            let name = lower.rsplit('/').next().unwrap_or(&lower);
            t.by_name.entry(name.to_string()).or_default().push(p);
            let (key, stem) = match lower.rsplit_once('.') {
                Some((k, ext)) if !ext.contains('/') => {
                    (k.to_string(), k.rsplit('/').next().unwrap_or(k).to_string())
                }
                _ => (lower.clone(), name.to_string()),
            };
            let mut keys = vec![key.clone()];
            if ENTRY_STEMS.contains(&stem.as_str()) {
                if let Some((dir, _)) = key.rsplit_once('/') {
                    keys.push(dir.to_string());
                }
            } else {
                t.by_stem.entry(stem).or_default().push(p);
            }
            for k in keys {
                let tail = k.rsplit('/').next().unwrap_or(&k).to_string();
                t.by_module_tail.entry(tail).or_default().push((k, p));
            }
        }
        if let Some(Ok((history, _))) = bundle.history() {
            t.history_paths = (0..history.path_count())
                .map(|i| history.path(i).and_then(|p| t.by_path.get(p).copied()))
                .collect();
            for i in 0..history.len() {
                let Some(c) = history.get(i) else { continue };
                for n in c.path_numbers() {
                    if let Some(Some(p)) = t.history_paths.get(n) {
                        *t.changes.entry(*p).or_default() += 1;
                        t.last_change.entry(*p).or_insert(i as u32);
                    }
                }
            }
            t.max_changes = t.changes.values().copied().max().unwrap_or(0);
        }
        t
    }

    /// The path number of `path`, if indexed.
    pub fn number(&self, path: &str) -> Option<u32> {
        self.by_path.get(path).copied()
    }
}

/// How a file's score in a list scales its share of the list's weight.
#[derive(Debug, Clone, Copy)]
enum Scale {
    /// `s / (s + s0)`.
    Saturating(f32),
    /// The score itself (at most 1).
    Score,
    /// The score over the list's best.
    OfBest,
}

/// A file a source ranks, with the chunk that shows why (if one does).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Scored {
    path: u32,
    score: f32,
    chunk: Option<u64>,
}

/// Files ranked best first, ties by path number, the first `depth`.
fn ranked_files(mut scored: HashMap<u32, (f32, Option<u64>)>, depth: usize) -> Vec<Scored> {
    let mut out: Vec<Scored> = scored
        .drain()
        .filter(|(_, (s, _))| *s > 0.0)
        .map(|(path, (score, chunk))| Scored { path, score, chunk })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.path.cmp(&b.path)));
    out.truncate(depth);
    out
}

/// How plainly a query names an identifier (0: not at all).
fn strength(m: &Mention, t: &SourceTuning) -> f32 {
    let code = f32::from(u8::from(m.code > 0));
    let block = f32::from(u8::from(m.block > 0)) * t.block_weight;
    let prose = f32::from(u8::from(m.prose > 0)) * t.prose_weight;
    let named = code.max(block).max(prose);
    if named == 0.0 {
        return 0.0;
    }
    named * if m.title { 1.0 + t.title_weight } else { 1.0 }
}

/// BM25's rarity of a term over the bundle's chunks (1 when the bundle
/// has no lexical index, or the term is in no chunk).
fn text_rarity(lexical: Option<&LexicalIndex<'_>>, term: &str) -> f32 {
    let Some(ix) = lexical else { return 1.0 };
    let n = ix.doc_count() as f32;
    let df = ix.lookup(term).map_or(0, |p| p.len()) as f32;
    if df == 0.0 {
        return (1.0 + (n + 0.5) / 0.5).ln();
    }
    (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
}

/// The chunk of path `p` that holds line `line`, if any.
fn chunk_at(chunks: &ChunkStore<'_>, p: u32, line: u32) -> Option<u64> {
    chunks.chunks_of(p as usize).find_map(|i| {
        let c = chunks.get(i)?;
        (c.start_line <= line && line <= c.end_line).then_some(i as u64)
    })
}

/// The definitions list: files defining the query's identifiers.
fn by_definitions(
    defs: &Definitions<'_>,
    chunks: &ChunkStore<'_>,
    lexical: Option<&LexicalIndex<'_>>,
    query: &Query,
    wanted: Option<FileKind>,
    t: &SourceTuning,
) -> Vec<Scored> {
    let paths = chunks.path_count().max(1) as f32;
    let mut scored: HashMap<u32, (f32, Option<u64>)> = HashMap::new();
    // Case-insensitive lookups: `Session` and `session` are one name.
    let mut by_lower: HashMap<String, (f32, bool)> = HashMap::new();
    for (name, m) in &query.identifiers {
        let s = strength(m, t);
        if s == 0.0 {
            continue;
        }
        let e = by_lower
            .entry(name.to_ascii_lowercase())
            .or_insert((0.0, false));
        e.0 = e.0.max(s);
    }
    for (lower, (s, _)) in by_lower {
        let range = defs.lookup(&lower);
        if range.is_empty() {
            continue;
        }
        let mut files: Vec<(u32, u32)> = range
            .filter_map(|i| defs.get(i))
            .map(|d| (d.path_index, d.start_line))
            .collect();
        files.sort_unstable();
        files.dedup_by_key(|f| f.0);
        if files.len() > t.max_defining_files {
            continue;
        }
        // Rarity counts every defining file; only wanted ones are scored.
        let defining = files.len();
        files.retain(|(p, _)| {
            wanted.is_none_or(|k| {
                chunks
                    .path(*p as usize)
                    .is_some_and(|x| FileKind::of(x) == k)
            })
        });
        let rarity = (1.0 + paths / defining as f32).ln();
        let w = s * rarity * text_rarity(lexical, &lower) / defining as f32;
        for (p, line) in files {
            let e = scored.entry(p).or_insert((0.0, None));
            e.0 += w;
            if e.1.is_none() {
                e.1 = chunk_at(chunks, p, line);
            }
        }
    }
    ranked_files(scored, t.depth)
}

/// The paths list: files the query names by path, module or stem.
fn by_paths(table: &PathTable, query: &Query, t: &SourceTuning) -> Vec<Scored> {
    let mut scored: HashMap<u32, (f32, Option<u64>)> = HashMap::new();
    let mut add = |p: u32, s: f32| {
        let e = scored.entry(p).or_insert((0.0, None));
        e.0 = e.0.max(s);
    };
    for m in &query.paths {
        let name = m.rsplit('/').next().unwrap_or(m);
        let dir = m.rsplit('/').nth(1);
        let files = table.by_name.get(name).map_or(&[][..], Vec::as_slice);
        // A bare name many files share (`__init__.py`, `setup.py` in a
        // monorepo) names none of them.
        if dir.is_none() && files.len() > 2 {
            continue;
        }
        for &p in files {
            let Some(lower) = table.lower.get(p as usize) else {
                continue;
            };
            let parent = lower.rsplit('/').nth(1);
            if dir.is_none() || dir == parent {
                add(p, 1.0);
            }
        }
    }
    for module in &query.modules {
        // The longest prefix that names a module: `a/b/c/f` is module
        // `a/b/c` when `f` is a function in it.
        let parts: Vec<&str> = module.split('/').collect();
        if matches!(parts[0], "self" | "this" | "cls") {
            continue;
        }
        'prefixes: for n in (1..=parts.len()).rev() {
            let key = parts[..n].join("/");
            let tail = parts[n - 1];
            let mut found = false;
            for (k, p) in table.by_module_tail.get(tail).into_iter().flatten() {
                let matches = k == &key || k.ends_with(&format!("/{key}"));
                // One part alone is a stem, not a module.
                if matches && (n >= 2 || k == &key) {
                    add(*p, 0.9);
                    found = true;
                }
            }
            if found {
                break 'prefixes;
            }
        }
    }
    if t.stem_weight > 0.0 {
        for (name, m) in &query.identifiers {
            if m.code == 0 && !m.title {
                continue;
            }
            let files = table.by_stem.get(&name.to_lowercase());
            if let Some(files) = files.filter(|f| f.len() <= 3) {
                for &p in files {
                    add(p, t.stem_weight / files.len() as f32);
                }
            }
        }
    }
    ranked_files(scored, t.depth)
}

/// The history list: files changed by the past commits most like the
/// query, each commit's vote divided among its files.
#[allow(clippy::too_many_arguments)]
fn by_history(
    history: &History<'_>,
    messages: &LexicalIndex<'_>,
    table: &PathTable,
    query: &Query,
    exclude: Option<&[u8]>,
    wanted: Option<FileKind>,
    t: &SourceTuning,
) -> Vec<Scored> {
    let limit = if t.history_limit == 0 {
        u32::MAX
    } else {
        t.history_limit as u32
    };
    let similar = lexical::search(
        messages,
        lexical::Query::Terms(&query.terms),
        t.history_commits + 1,
        |d| d < limit,
        None,
    );
    let mut scored: HashMap<u32, (f32, Option<u64>)> = HashMap::new();
    let mut used = 0;
    for (doc, s) in similar {
        let Some(c) = history.get(doc as usize) else {
            continue;
        };
        if exclude.is_some_and(|x| x == c.id) {
            continue;
        }
        if used == t.history_commits {
            break;
        }
        used += 1;
        // A commit's vote goes to the files of the kind wanted, divided
        // among them (its tests and changelog take no share).
        let files: Vec<u32> = c
            .path_numbers()
            .filter_map(|n| table.history_paths.get(n).copied().flatten())
            .filter(|p| {
                wanted.is_none_or(|k| {
                    table
                        .lower
                        .get(*p as usize)
                        .is_some_and(|x| FileKind::of(x) == k)
                })
            })
            .collect();
        if files.is_empty() {
            continue;
        }
        let vote = s / files.len() as f32;
        for p in files {
            scored.entry(p).or_insert((0.0, None)).0 += vote;
        }
    }
    ranked_files(scored, t.depth)
}

/// Each source's list for `query`, as paths and scores best first: what
/// [`add_sources`] adds, for diagnostics (which file a source brought in,
/// and why it ranks where it does).
pub fn explain(
    bundle: &MappedBundle,
    query: &Query,
    wanted: Option<FileKind>,
    t: &SourceTuning,
) -> Vec<(&'static str, Vec<(String, f32)>)> {
    let Ok(chunks) = bundle.chunks() else {
        return Vec::new();
    };
    let table = bundle.paths();
    let lexical = bundle.lexical().and_then(Result::ok).map(|(ix, _)| ix);
    let named = |list: Vec<Scored>| {
        list.into_iter()
            .map(|s| {
                let path = chunks.path(s.path as usize).unwrap_or("?").to_string();
                (path, s.score)
            })
            .collect::<Vec<_>>()
    };
    let mut out = Vec::new();
    if let Some(Ok(defs)) = bundle.definitions() {
        out.push((
            "definitions",
            named(by_definitions(
                &defs,
                &chunks,
                lexical.as_ref(),
                query,
                wanted,
                t,
            )),
        ));
    }
    out.push(("paths", named(by_paths(table, query, t))));
    if let Some(Ok((history, messages))) = bundle.history() {
        out.push((
            "history",
            named(by_history(
                &history, &messages, table, query, None, wanted, t,
            )),
        ));
        let mut recent: Vec<(String, f32)> = table
            .last_change
            .iter()
            .filter_map(|(p, i)| Some((chunks.path(*p as usize)?.to_string(), *i as f32)))
            .collect();
        recent.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
        recent.truncate(200);
        out.push(("recent", recent));
        let mut frequent: Vec<(String, f32)> = table
            .changes
            .iter()
            .filter_map(|(p, n)| Some((chunks.path(*p as usize)?.to_string(), *n as f32)))
            .collect();
        frequent.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        frequent.truncate(200);
        out.push(("frequent", frequent));
        // The similar commits themselves, as `score|file,file` entries.
        let similar = lexical::search(
            &messages,
            lexical::Query::Terms(&query.terms),
            50,
            |_| true,
            None,
        );
        let commits: Vec<(String, f32)> = similar
            .into_iter()
            .filter_map(|(doc, s)| {
                let c = history.get(doc as usize)?;
                let files: Vec<String> = c
                    .path_numbers()
                    .filter_map(|n| table.history_paths.get(n).copied().flatten())
                    .filter_map(|p| chunks.path(p as usize).map(str::to_string))
                    .collect();
                Some((format!("{doc}|{}", files.join(",")), s))
            })
            .collect();
        out.push(("commits", commits));
    }
    out
}

/// Adds the sources' lists to `ranked` (best first, as `mode` ranked it)
/// and sorts it again; a file the request's `filter` refuses, or not of
/// the kind the query wants (`wanted`), is not brought in. `exclude` is a commit whose message must not vote
/// (the query's own, when a quality gate asks a commit's message of a
/// bundle that contains it).
#[allow(clippy::too_many_arguments)]
pub fn add_sources(
    bundle: &MappedBundle,
    query: &Query,
    wanted: Option<FileKind>,
    filter: &Filter,
    exclude: Option<&[u8]>,
    ranked: &mut Vec<Ranked>,
    mode: Mode,
    fusion: &Fusion,
    t: &SourceTuning,
) {
    if t.is_off() {
        return;
    }
    let Ok(chunks) = bundle.chunks() else { return };
    let table = bundle.paths();
    let lexical = bundle.lexical().and_then(Result::ok).map(|(ix, _)| ix);
    // Each list with its weight and how a file's score scales its share.
    let mut lists: Vec<(f32, Scale, Vec<Scored>)> = Vec::new();
    if t.definitions > 0.0
        && let Some(Ok(defs)) = bundle.definitions()
    {
        lists.push((
            t.definitions,
            Scale::Saturating(t.definition_scale),
            by_definitions(&defs, &chunks, lexical.as_ref(), query, wanted, t),
        ));
    }
    if t.paths > 0.0 {
        lists.push((t.paths, Scale::Score, by_paths(table, query, t)));
    }
    if t.history > 0.0
        && let Some(Ok((history, messages))) = bundle.history()
    {
        lists.push((
            t.history,
            Scale::OfBest,
            by_history(&history, &messages, table, query, exclude, wanted, t),
        ));
    }
    // Fused scores are reciprocal ranks already; a single ranker's are
    // cosines or BM25, so a source's rank 1 is made worth what that
    // ranker's best chunk scores, as a list in the fusion would be.
    let unit = match mode {
        Mode::Hybrid => 1.0,
        Mode::Semantic | Mode::Lexical => {
            ranked.first().map_or(1.0, |r| r.score.max(0.0)) * (fusion.k + 1.0)
        }
    };
    // Each file's best-ranked chunk so far.
    let mut best: HashMap<u32, u64> = HashMap::new();
    let mut at: HashMap<u64, usize> = HashMap::new();
    for (i, r) in ranked.iter().enumerate() {
        at.insert(r.key, i);
        if let Some(p) = usize::try_from(r.key)
            .ok()
            .and_then(|k| chunks.path_index(k))
        {
            best.entry(p as u32).or_insert(r.key);
        }
    }
    for (weight, scale, list) in lists.iter_mut() {
        list.retain(|s| {
            chunks
                .path(s.path as usize)
                .is_some_and(|p| filter.accepts(p) && wanted.is_none_or(|k| FileKind::of(p) == k))
        });
        let weight = *weight;
        let best_score = list.first().map_or(1.0, |s| s.score.max(f32::MIN_POSITIVE));
        for (rank, s) in list.iter().enumerate() {
            let key = s.chunk.or_else(|| best.get(&s.path).copied()).or_else(|| {
                let first = chunks.chunks_of(s.path as usize).start;
                (first < chunks.len()).then_some(first as u64)
            });
            let Some(key) = key else { continue };
            let share = match *scale {
                Scale::Saturating(s0) if s0 > 0.0 => s.score / (s.score + s0),
                Scale::Saturating(_) => 1.0,
                Scale::Score => s.score.min(1.0),
                Scale::OfBest => s.score / best_score,
            };
            let add = unit * weight * share / (fusion.k + rank as f32 + 1.0);
            match at.get(&key) {
                Some(&i) => ranked[i].score += add,
                None => {
                    at.insert(key, ranked.len());
                    best.entry(s.path).or_insert(key);
                    ranked.push(Ranked {
                        key,
                        score: add,
                        semantic: None,
                        lexical: None,
                    });
                }
            }
        }
    }
    if t.change_prior > 0.0 && table.max_changes > 0 {
        let max = (1.0 + table.max_changes as f32).ln();
        for r in ranked.iter_mut() {
            let Some(p) = usize::try_from(r.key)
                .ok()
                .and_then(|k| chunks.path_index(k))
            else {
                continue;
            };
            let n = table.changes.get(&(p as u32)).copied().unwrap_or(0);
            r.score *= 1.0 + t.change_prior * (1.0 + n as f32).ln() / max;
        }
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
}
