//! Code-aware ranking on top of BM25 and vectors: each ranked chunk's score
//! is multiplied by what its file and its text say about the query.
//!
//! - **File-kind prior.** Tests, docs and changelogs share an issue's
//!   vocabulary, so both rankers like them, while a fix goes to source.
//!   A chunk of a file of another kind than the one asked for
//!   (`query::wants`, or the request's `kind`) is scaled down by that
//!   kind's factor: a prior, not a filter, so "where is X tested" still
//!   finds tests and a source-less answer still has files.
//! - **Module names.** A file in a directory whose name is a word of the
//!   query ("pyreverse ignores type hints" → `pylint/pyreverse/*.py`) is
//!   scaled up.
//! - **Path mentions.** A file whose path the query mentions (a frame of a
//!   stack trace, `src/x.rs`) is scaled up.
//!
//! Every factor was kept because it helped on the history queries and on
//! the development issues both (docs/benchmarks.md, "Code-aware
//! ranking"). Two that were built and measured did not and are gone: a
//! boost for chunks that define a symbol the query names (no gain on
//! either set, 0.7 ms of the p50) and a boost for files whose name is a
//! query word (lower MRR on the development issues). [`CodeTuning::OFF`]
//! is the ranking before any factor.

use std::collections::HashMap;
use std::str::FromStr;

use shelf_formats::FileKind;
use shelf_formats::chunks::ChunkStore;

use crate::query::Query;
use crate::rank::Ranked;

/// The kind of file a request prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindPreference {
    /// Whatever the query asks for (`query::wants`): source unless a short
    /// question asks for tests, docs or release notes.
    #[default]
    Auto,
    /// No preference: every kind ranks as the rankers say.
    Any,
    /// This kind.
    Prefer(FileKind),
}

impl FromStr for KindPreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(KindPreference::Auto),
            "any" => Ok(KindPreference::Any),
            other => other
                .parse::<FileKind>()
                .map(KindPreference::Prefer)
                .map_err(|_| {
                    format!(
                        "unknown kind '{}'; use auto, any, or one of {}",
                        other.chars().take(32).collect::<String>(),
                        FileKind::ALL.map(FileKind::name).join(", ")
                    )
                }),
        }
    }
}

impl KindPreference {
    /// The kind to prefer for `query` (`None`: no preference).
    pub fn resolve(self, query: &Query) -> Option<FileKind> {
        match self {
            KindPreference::Auto => Some(query.wants),
            KindPreference::Any => None,
            KindPreference::Prefer(k) => Some(k),
        }
    }
}

/// The factors, each 0 (or 1 for the prior) when off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeTuning {
    /// Score factor of a file that is not of the preferred kind, by its
    /// kind, when source is preferred (source itself is 1).
    pub prior: [(FileKind, f32); 5],
    /// Score factor of a source file when another kind is preferred.
    pub source_when_other: f32,
    /// Boost of a file in a directory whose name is a word of the query.
    pub dir_name: f32,
    /// Boost of a file whose path the query mentions.
    pub path_mention: f32,
    /// Score factor of a file that mostly re-exports others
    /// (`__init__.py`, `index.ts`, `mod.rs`): 1 is no penalty.
    pub reexport: f32,
    /// Score factor of a compatibility shim (`compat.py`, `_compat/`,
    /// `polyfill`): 1 is no penalty.
    pub compat: f32,
    /// Score factor of an example or demo (`examples/`, `demo/`,
    /// `*_example.py`): 1 is no penalty.
    pub example: f32,
}

impl CodeTuning {
    /// No code-aware factor: the ranking as the rankers and fusion give it.
    pub const OFF: CodeTuning = CodeTuning {
        prior: [
            (FileKind::Test, 1.0),
            (FileKind::Doc, 1.0),
            (FileKind::Changelog, 1.0),
            (FileKind::Generated, 1.0),
            (FileKind::Other, 1.0),
        ],
        source_when_other: 1.0,
        dir_name: 0.0,
        path_mention: 0.0,
        reexport: 1.0,
        compat: 1.0,
        example: 1.0,
    };

    /// Whether any factor is on.
    pub fn is_off(&self) -> bool {
        *self == CodeTuning::OFF
    }

    fn prior_of(&self, kind: FileKind, wanted: FileKind) -> f32 {
        if kind == wanted {
            return 1.0;
        }
        if kind == FileKind::Source {
            return self.source_when_other;
        }
        self.prior
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(1.0, |(_, f)| *f)
    }
}

impl Default for CodeTuning {
    /// Chosen on the history queries of five repositories and the 38
    /// development issues (docs/benchmarks.md, "Code-aware ranking"). Both
    /// sets' gold files are source, so they reward a stronger prior up to
    /// a filter; the prior stops where the gain flattens, so a test or a
    /// page that matches a report far better than any source file still
    /// ranks.
    fn default() -> Self {
        Self {
            prior: [
                (FileKind::Test, 0.3),
                (FileKind::Doc, 0.4),
                (FileKind::Changelog, 0.2),
                (FileKind::Generated, 0.3),
                (FileKind::Other, 0.5),
            ],
            source_when_other: 0.7,
            dir_name: 0.3,
            path_mention: 0.5,
            reexport: 1.0,
            compat: 1.0,
            example: 1.0,
        }
    }
}

/// Re-scores `ranked` (best first) for `query` and sorts it again.
pub fn rerank(
    chunks: &ChunkStore<'_>,
    query: &Query,
    wanted: Option<FileKind>,
    ranked: &mut [Ranked],
    tuning: &CodeTuning,
) {
    if tuning.is_off() || ranked.is_empty() {
        return;
    }
    let mut by_path: HashMap<usize, f32> = HashMap::new();
    for r in ranked.iter_mut() {
        let Ok(key) = usize::try_from(r.key) else {
            continue;
        };
        let Some(p) = chunks.path_index(key) else {
            continue;
        };
        r.score *= *by_path.entry(p).or_insert_with(|| {
            chunks
                .path(p)
                .map_or(1.0, |path| path_factor(path, query, wanted, tuning))
        });
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
}

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The factor every chunk of the file at `path` gets.
fn path_factor(path: &str, query: &Query, wanted: Option<FileKind>, t: &CodeTuning) -> f32 {
    let mut f = wanted.map_or(1.0, |w| t.prior_of(FileKind::of(path), w));
    // A file at the root has no directory to match.
    let mut dirs = path
        .rsplit_once('/')
        .into_iter()
        .flat_map(|(d, _)| d.split('/'));
    if t.dir_name > 0.0 && dirs.any(|d| query.names.contains(&normalise(d))) {
        f *= 1.0 + t.dir_name;
    }
    if t.path_mention > 0.0 && query.paths.iter().any(|m| mentions(path, m)) {
        f *= 1.0 + t.path_mention;
    }
    match role(path) {
        Some(Role::Reexport) => f *= t.reexport,
        Some(Role::Compat) => f *= t.compat,
        Some(Role::Example) => f *= t.example,
        None => {}
    }
    f
}

/// What a file is for, when its path says it is not where code lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A package's entry file, mostly re-exports.
    Reexport,
    /// A compatibility shim.
    Compat,
    /// An example or demo.
    Example,
}

fn role(path: &str) -> Option<Role> {
    let lower = path.to_ascii_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    let stem = name.split('.').next().unwrap_or(name);
    let dirs: Vec<&str> = lower.split('/').rev().skip(1).collect();
    if matches!(stem, "__init__" | "index" | "mod") {
        return Some(Role::Reexport);
    }
    let compat =
        |s: &str| s.contains("compat") || s == "polyfill" || s == "polyfills" || s == "backports";
    if compat(stem) || dirs.iter().any(|d| compat(d)) {
        return Some(Role::Compat);
    }
    let example = |s: &str| {
        matches!(
            s,
            "example" | "examples" | "demo" | "demos" | "sample" | "samples"
        )
    };
    if dirs.iter().any(|d| example(d))
        || stem.starts_with("example_")
        || stem.ends_with("_example")
        || stem.ends_with("_demo")
    {
        return Some(Role::Example);
    }
    None
}

/// Whether the mention `m` (lowercased) names `path`: the same file name
/// and, when the mention has directories, the same last two components
/// (`site-packages/requests/sessions.py` names `src/requests/sessions.py`).
fn mentions(path: &str, m: &str) -> bool {
    let p: Vec<String> = path.rsplit('/').take(2).map(str::to_lowercase).collect();
    let q: Vec<&str> = m.rsplit('/').take(2).collect();
    match (q.as_slice(), p.as_slice()) {
        ([f], [pf, ..]) => f == pf,
        ([f, d], [pf, pd]) => f == pf && d == pd,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelf_formats::chunks::{ChunkRecord, ChunkStoreWriter};
    use shelf_formats::lexical::Analyzer;

    use crate::query::{QueryTuning, analyze};

    /// A chunk store of one chunk per path, in this order.
    fn store(paths: &[&str]) -> Vec<u8> {
        let mut w = ChunkStoreWriter::new();
        for (i, path) in paths.iter().enumerate() {
            w.push(&ChunkRecord {
                content_id: [i as u8; 32],
                path,
                start_line: 1,
                end_line: 1,
                text: "x",
            });
        }
        let mut bytes = Vec::new();
        w.write_to(&mut bytes).unwrap();
        bytes
    }

    /// The paths in the order `rerank` leaves chunks scored `scores`.
    fn reranked(paths: &[&str], scores: &[f32], query: &str, kind: KindPreference) -> Vec<String> {
        let bytes = store(paths);
        let chunks = ChunkStore::open(&bytes).unwrap();
        let query = analyze(Analyzer::CodeV1, query, &QueryTuning::default());
        let mut ranked: Vec<Ranked> = scores
            .iter()
            .enumerate()
            .map(|(i, &score)| Ranked {
                key: i as u64,
                score,
                semantic: None,
                lexical: None,
            })
            .collect();
        rerank(
            &chunks,
            &query,
            kind.resolve(&query),
            &mut ranked,
            &CodeTuning::default(),
        );
        ranked
            .iter()
            .map(|r| paths[r.key as usize].to_string())
            .collect()
    }

    #[test]
    fn a_report_puts_source_above_tests_and_docs_that_score_higher() {
        let paths = [
            "tests/test_sessions.py",
            "docs/sessions.rst",
            "requests/sessions.py",
        ];
        let report = "Session.send drops the proxy settings when a redirect is followed";
        let order = reranked(&paths, &[2.0, 1.8, 1.0], report, KindPreference::Auto);
        assert_eq!(order[0], "requests/sessions.py", "{order:?}");
        // `any` leaves the rankers' order.
        let order = reranked(&paths, &[2.0, 1.8, 1.0], report, KindPreference::Any);
        assert_eq!(order, paths);
    }

    #[test]
    fn the_prior_is_not_a_filter() {
        // A test file that matches a report far better than any source
        // file still ranks first, and every file stays in the answer.
        let paths = ["tests/test_sessions.py", "requests/sessions.py"];
        let order = reranked(
            &paths,
            &[5.0, 1.0],
            "redirects lose proxies",
            KindPreference::Auto,
        );
        assert_eq!(order, paths);
    }

    #[test]
    fn a_question_about_tests_prefers_tests() {
        let paths = ["requests/sessions.py", "tests/test_sessions.py"];
        let order = reranked(
            &paths,
            &[1.3, 1.0],
            "where are redirects tested?",
            KindPreference::Auto,
        );
        assert_eq!(order[0], "tests/test_sessions.py", "{order:?}");
        let order = reranked(
            &paths,
            &[1.0, 1.5],
            "redirects",
            KindPreference::Prefer(FileKind::Source),
        );
        assert_eq!(order[0], "requests/sessions.py", "{order:?}");
    }

    #[test]
    fn a_directory_the_query_names_and_a_path_it_mentions_lift_their_files() {
        let paths = [
            "pylint/checkers/typecheck.py",
            "pylint/pyreverse/diagrams.py",
        ];
        let query = "pyreverse does not read type hints";
        let order = reranked(&paths, &[1.2, 1.0], query, KindPreference::Auto);
        assert_eq!(order[0], "pylint/pyreverse/diagrams.py", "{order:?}");
        let paths = ["src/client.rs", "src/retry.rs"];
        let query = "panic at src/retry.rs:40 when the budget is spent";
        let order = reranked(&paths, &[1.4, 1.0], query, KindPreference::Auto);
        assert_eq!(order[0], "src/retry.rs", "{order:?}");
        // A file at the root has no directory: a code span with no
        // letters or digits (`$$$`, an empty name) lifts nothing.
        let root = ["src/client.rs", "setup.py"];
        let order = reranked(
            &root,
            &[1.2, 1.0],
            "`$$$` breaks the client",
            KindPreference::Any,
        );
        assert_eq!(order, root);
        // Neither names a directory or a path here: the order stands.
        let order = reranked(
            &paths,
            &[1.4, 1.0],
            "the budget is spent",
            KindPreference::Auto,
        );
        assert_eq!(order, paths);
    }

    #[test]
    fn kind_preferences_parse_and_say_what_is_wrong() {
        assert_eq!("auto".parse(), Ok(KindPreference::Auto));
        assert_eq!("Any".parse(), Ok(KindPreference::Any));
        assert_eq!("test".parse(), Ok(KindPreference::Prefer(FileKind::Test)));
        let e = "tests".parse::<KindPreference>().unwrap_err();
        assert!(
            e.contains("unknown kind 'tests'") && e.contains("auto, any"),
            "{e}"
        );
    }

    #[test]
    fn entry_files_shims_and_examples_are_told_apart() {
        assert_eq!(role("sympy/printing/__init__.py"), Some(Role::Reexport));
        assert_eq!(role("packages/zod/src/index.ts"), Some(Role::Reexport));
        assert_eq!(role("src/_compat.py"), Some(Role::Compat));
        assert_eq!(role("lib/compat/io.js"), Some(Role::Compat));
        assert_eq!(role("examples/basic/main.go"), Some(Role::Example));
        assert_eq!(role("src/retry_example.rs"), Some(Role::Example));
        assert_eq!(role("sympy/printing/latex.py"), None);
        assert_eq!(role("src/indexer.rs"), None);
    }

    #[test]
    fn mentions_match_the_file_and_its_directory() {
        assert!(mentions(
            "src/requests/sessions.py",
            "usr/lib/site-packages/requests/sessions.py"
        ));
        assert!(mentions("src/requests/sessions.py", "sessions.py"));
        assert!(!mentions("src/requests/models.py", "sessions.py"));
        assert!(!mentions("src/other/sessions.py", "requests/sessions.py"));
    }
}
