//! Filters (path glob, language) and the filtered vector search for one
//! query vector; `search.rs` builds the modes and results on top.

use globset::{Glob, GlobMatcher};

use shelf_formats::chunks::ChunkStore;

use crate::live::{Hit, LiveBundle, OpenError};

/// Filters that leave at most this many chunks are scored exactly: a graph
/// walk that must skip almost everything can miss the few that pass.
const EXACT_FILTER_LIMIT: usize = 4096;

/// Languages by file extension (or whole file name), for the `language`
/// filter and the `language` field of results.
const LANGUAGES: &[(&str, &[&str])] = &[
    ("c", &["c", "h"]),
    ("cpp", &["cc", "cpp", "cxx", "hh", "hpp", "hxx"]),
    ("csharp", &["cs"]),
    ("css", &["css", "scss", "sass", "less"]),
    ("go", &["go"]),
    ("html", &["html", "htm"]),
    ("java", &["java"]),
    ("javascript", &["js", "jsx", "mjs", "cjs"]),
    ("json", &["json"]),
    ("kotlin", &["kt", "kts"]),
    ("markdown", &["md", "markdown", "mdx"]),
    ("php", &["php"]),
    ("python", &["py", "pyi"]),
    ("rst", &["rst"]),
    ("ruby", &["rb"]),
    ("rust", &["rs"]),
    ("scala", &["scala"]),
    ("shell", &["sh", "bash", "zsh"]),
    ("sql", &["sql"]),
    ("swift", &["swift"]),
    ("text", &["txt"]),
    ("toml", &["toml"]),
    ("typescript", &["ts", "tsx", "mts", "cts"]),
    ("yaml", &["yaml", "yml"]),
];

/// The language of a path, from its extension (`None`: not one shelf names).
pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(_, exts)| exts.contains(&ext.as_str()))
        .map(|(lang, _)| *lang)
}

/// Every language name the filter accepts.
pub fn language_names() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|(l, _)| *l)
}

/// Which chunks a query may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    path: Option<(String, GlobMatcher)>,
    languages: Vec<&'static str>,
}

impl Filter {
    /// A filter from a path glob (globset syntax: `src/**/*.rs`,
    /// `{docs,src}/**`) and language names. Errors say what is wrong.
    pub fn new(path: Option<&str>, languages: &[String]) -> Result<Self, String> {
        let path = match path.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                let glob = Glob::new(p)
                    .map_err(|e| format!("path filter '{p}' is not a valid glob: {e}"))?;
                Some((p.to_string(), glob.compile_matcher()))
            }
            None => None,
        };
        let mut langs = Vec::new();
        for l in languages {
            let wanted = l.trim().to_ascii_lowercase();
            match language_names().find(|n| *n == wanted) {
                Some(n) => langs.push(n),
                None => {
                    return Err(format!(
                        "unknown language '{l}'; known: {}",
                        language_names().collect::<Vec<_>>().join(", ")
                    ));
                }
            }
        }
        Ok(Self {
            path,
            languages: langs,
        })
    }

    /// Whether it accepts everything.
    pub fn is_empty(&self) -> bool {
        self.path.is_none() && self.languages.is_empty()
    }

    /// Whether chunks of `path` pass.
    pub fn accepts(&self, path: &str) -> bool {
        let lang_ok = self.languages.is_empty()
            || language_of(path).is_some_and(|l| self.languages.contains(&l));
        lang_ok && self.path.as_ref().is_none_or(|(_, m)| m.is_match(path))
    }
}

/// A filter resolved against one bundle: which chunks pass. Resolved once
/// per query and shared by every query window and the lexical ranker, so
/// the globs and the walk over the chunks run once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// No filter: every chunk.
    All,
    /// At most [`EXACT_FILTER_LIMIT`] chunks pass: their keys, ascending.
    Few(Vec<u64>),
    /// More pass: per path, whether its chunks do.
    Many(Vec<bool>),
}

impl Selection {
    /// Which of `chunks` pass `filter`.
    pub fn resolve(chunks: &ChunkStore<'_>, filter: &Filter) -> Self {
        if filter.is_empty() {
            return Self::All;
        }
        let paths: Vec<bool> = (0..chunks.path_count())
            .map(|p| chunks.path(p).is_some_and(|path| filter.accepts(path)))
            .collect();
        let keys: Vec<u64> = (0..chunks.len() as u64)
            .filter(|&key| path_passes(chunks, &paths, key))
            .take(EXACT_FILTER_LIMIT + 1)
            .collect();
        if keys.len() <= EXACT_FILTER_LIMIT {
            Self::Few(keys)
        } else {
            Self::Many(paths)
        }
    }

    /// Whether chunk `key` of `chunks` (the store this was resolved on)
    /// passes.
    pub fn admits(&self, chunks: &ChunkStore<'_>, key: u64) -> bool {
        match self {
            Self::All => true,
            Self::Few(keys) => keys.binary_search(&key).is_ok(),
            Self::Many(paths) => path_passes(chunks, paths, key),
        }
    }
}

fn path_passes(chunks: &ChunkStore<'_>, paths: &[bool], key: u64) -> bool {
    usize::try_from(key)
        .ok()
        .and_then(|i| chunks.path_index(i))
        .and_then(|p| paths.get(p).copied())
        .unwrap_or(false)
}

/// The `k` best chunks for `vector` that pass `filter`.
pub fn search(
    bundle: &LiveBundle,
    vector: &[f32],
    k: usize,
    filter: &Filter,
) -> Result<Vec<Hit>, OpenError> {
    let selection = Selection::resolve(&bundle.chunks()?, filter);
    search_selected(bundle, vector, k, &selection)
}

/// The `k` best chunks for `vector` among `selection` (resolved on
/// `bundle`): few are scored exactly, many by a graph walk that skips the
/// rest.
pub fn search_selected(
    bundle: &LiveBundle,
    vector: &[f32],
    k: usize,
    selection: &Selection,
) -> Result<Vec<Hit>, OpenError> {
    match selection {
        Selection::All => bundle.search(vector, k),
        Selection::Few(keys) => bundle.exact_among(vector, keys, k),
        Selection::Many(paths) => {
            let chunks = bundle.chunks()?;
            bundle.filtered_search(vector, k, |key| path_passes(&chunks, paths, key))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_from_extensions() {
        assert_eq!(language_of("src/main.rs"), Some("rust"));
        assert_eq!(language_of("a/B.PY"), Some("python"));
        assert_eq!(language_of("docs/x.md"), Some("markdown"));
        assert_eq!(language_of("Makefile"), None);
        assert_eq!(language_of(".hidden/x"), None);
    }

    #[test]
    fn filters_combine_path_and_language() {
        let f = Filter::new(Some("src/**"), &["Rust".into()]).unwrap();
        assert!(f.accepts("src/a/b.rs"));
        assert!(!f.accepts("src/a/b.py"));
        assert!(!f.accepts("tests/b.rs"));
        assert!(Filter::new(None, &[]).unwrap().is_empty());
        assert!(Filter::new(Some("  "), &[]).unwrap().is_empty());
        let err = Filter::new(None, &["klingon".into()]).unwrap_err();
        assert!(err.contains("klingon") && err.contains("rust"), "{err}");
        assert!(Filter::new(Some("src/[a"), &[]).is_err());
    }
}
