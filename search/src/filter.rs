//! Which chunks a query may return: a path glob and languages ([`Filter`]),
//! resolved once per query against one bundle ([`Selection`]) and shared
//! by both rankers.

use globset::{Glob, GlobMatcher};

use shelf_formats::chunks::ChunkStore;

use crate::language::{language_names, language_of};

/// Filters that leave at most this many chunks are scored exactly: a graph
/// walk that must skip almost everything can miss the few that pass.
pub const EXACT_FILTER_LIMIT: usize = 4096;

/// Longest path glob accepted, in bytes.
pub const MAX_GLOB_BYTES: usize = 512;
/// Deepest nesting of `{…}` alternatives (and `[…]` classes) in a path
/// glob. The glob becomes a regular expression, whose compiler refuses
/// (and globset then panics on) nesting past a few hundred levels; no real
/// path filter nests more than a few.
pub const MAX_GLOB_NESTING: usize = 8;

/// Which chunks a query may return.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    path: Option<(String, GlobMatcher)>,
    languages: Vec<&'static str>,
    /// The path and languages as given, for echoing them back.
    given_path: Option<String>,
    given_languages: Vec<String>,
}

/// Checks a glob against [`MAX_GLOB_BYTES`] and [`MAX_GLOB_NESTING`].
fn check_glob_bounds(glob: &str) -> Result<(), String> {
    if glob.len() > MAX_GLOB_BYTES {
        return Err(format!(
            "path filter is {} bytes; the limit is {MAX_GLOB_BYTES}",
            glob.len()
        ));
    }
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut escaped = false;
    for c in glob.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '{' | '[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            '}' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_GLOB_NESTING {
        return Err(format!(
            "path filter nests {{…}} or […] {deepest} levels deep; the limit is {MAX_GLOB_NESTING}"
        ));
    }
    Ok(())
}

impl Filter {
    /// A filter from a path glob (globset syntax: `src/**/*.rs`,
    /// `{docs,src}/**`) and language names. Errors say what is wrong.
    pub fn new(path: Option<&str>, languages: &[String]) -> Result<Self, String> {
        let given_path = path.map(str::to_string);
        let path = match path.map(str::trim).filter(|p| !p.is_empty()) {
            Some(p) => {
                check_glob_bounds(p)?;
                let glob = Glob::new(p).map_err(|e| {
                    format!(
                        "path filter '{}' is not a valid glob: {e}",
                        p.chars().take(64).collect::<String>()
                    )
                })?;
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
            given_path,
            given_languages: languages.to_vec(),
        })
    }

    /// The path glob, as given.
    pub fn path(&self) -> Option<&str> {
        self.given_path.as_deref()
    }

    /// The language names, as given.
    pub fn languages(&self) -> &[String] {
        &self.given_languages
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

/// Whether chunk `key`'s path passes, by the per-path table of a
/// [`Selection::Many`].
pub(crate) fn path_passes(chunks: &ChunkStore<'_>, paths: &[bool], key: u64) -> bool {
    usize::try_from(key)
        .ok()
        .and_then(|i| chunks.path_index(i))
        .and_then(|p| paths.get(p).copied())
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn globs_past_the_bounds_are_refused_naming_the_limit() {
        // The glob that panicked globset before bounds existed.
        let deep = format!("{}a{}", "{".repeat(250), "}".repeat(250));
        let e = Filter::new(Some(&deep), &[]).unwrap_err();
        assert!(e.contains("250 levels deep"), "{e}");
        let long = "a/".repeat(300);
        let e = Filter::new(Some(&long), &[]).unwrap_err();
        assert!(
            e.contains("600 bytes") && e.contains("the limit is 512"),
            "{e}"
        );
        let nested = format!("{}a{}", "{".repeat(9), "}".repeat(9));
        let e = Filter::new(Some(&nested), &[]).unwrap_err();
        assert!(
            e.contains("9 levels deep") && e.contains("limit is 8"),
            "{e}"
        );
        let ok = format!("{}a,b{}", "{".repeat(8), "}".repeat(8));
        assert!(Filter::new(Some(&ok), &[]).is_ok());
        assert!(Filter::new(Some("src/\\{x"), &[]).is_ok());
        // The widest globs within the bounds still compile.
        for unit in ["[!a]", "{a,b}", "**/", "?*"] {
            let g = unit.repeat(MAX_GLOB_BYTES / unit.len());
            let _ = Filter::new(Some(&g), &[]);
        }
    }
}
