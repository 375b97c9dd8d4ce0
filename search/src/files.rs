//! Files at the bundle's commit: read one ([`read_file`]), or scan them all
//! for a literal or a regular expression ([`grep`]). Both answer from the
//! bundle's file texts (`files.bin`, format 1.2), never from a disk, so
//! any file a search result names can be opened exactly as it was when the
//! answer was made, and no path can reach outside the bundle.

use std::time::Instant;

use regex::{Regex, RegexBuilder};
use serde::Serialize;
use shelf_formats::files::FileTexts;

use crate::answer::{BundleRef, Target, bundle_ref};
use crate::budget::{Budget, Truncation};
use crate::filter::Filter;
use crate::language::language_of;

/// Longest grep pattern accepted, in bytes.
pub const MAX_PATTERN_BYTES: usize = 512;
/// Matches listed when the request names no limit.
pub const DEFAULT_GREP_LIMIT: usize = 50;
/// Most matches one grep lists.
pub const MAX_GREP_LIMIT: usize = 500;
/// A matching line longer than this is shown cut (bytes).
pub const MAX_LINE_BYTES: usize = 300;
/// Compiled-pattern memory bound: patterns that compile larger (huge
/// repetitions) are refused instead of slowing every scan.
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// Longest path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 1024;

/// Why a file request or a scan cannot be answered: each names what was
/// asked and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The path is not a repository-relative path.
    #[error("'{path}' is not a path inside the repository: {why}")]
    BadPath {
        /// The path, as given (shortened).
        path: String,
        /// Why.
        why: &'static str,
    },
    /// No indexed file has this path.
    #[error("{0}")]
    NotFound(String),
    /// The path exists in several repositories and none was named.
    #[error("'{path}' is a file of several repositories ({}); name one with repo", repos.join(", "))]
    Ambiguous {
        /// The path.
        path: String,
        /// Where it is.
        repos: Vec<String>,
    },
    /// The bundle was built before file texts were part of bundles.
    #[error(
        "the bundle of repository '{repo}' ({digest}, format {format}) predates file texts (format 1.2): rebuild it with this shelf to read or grep its files; search still works"
    )]
    NoFileTexts {
        /// The repository.
        repo: String,
        /// Its bundle.
        digest: String,
        /// The bundle's format.
        format: String,
    },
    /// A line range that the file does not have.
    #[error("{0}")]
    BadRange(String),
    /// The pattern is too long or does not compile.
    #[error("{0}")]
    BadPattern(String),
    /// The bundle's bytes are damaged (verified at load; a bug if seen).
    #[error("{0}")]
    Damaged(String),
}

/// One file's lines, as `read_file` and `GET /v1/file` answer.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct FileAnswer {
    /// The repository.
    pub repo: String,
    /// The path.
    pub path: String,
    /// Language from the extension, if known.
    pub language: Option<&'static str>,
    /// First line shown, 1-based.
    pub start_line: u32,
    /// Last line shown, inclusive (`start_line - 1` when none is shown).
    pub end_line: u32,
    /// Lines in the whole file.
    pub total_lines: u32,
    /// The lines, exactly as at the bundle's commit (lines withheld as
    /// credentials at build time are empty).
    pub text: String,
    /// The bundle that answered.
    pub bundle: BundleRef,
    /// What was left out to stay within `max_tokens`.
    pub truncated: Option<Truncation>,
}

/// A `read_file` request.
#[derive(Debug, Clone)]
pub struct FileRequest {
    /// Repository-relative path.
    pub path: String,
    /// First line wanted (default 1).
    pub start_line: Option<u32>,
    /// Last line wanted, inclusive (default: the last).
    pub end_line: Option<u32>,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// Checks that `path` is a repository-relative path as the bundle names
/// files (`src/a.py`: no `.` or `..` segment, no empty one, nothing
/// absolute) and says why not. Nothing is rewritten: `./a.py` is refused
/// like any other `.` segment, so every accepted path is the one looked up.
pub fn check_path(path: &str) -> Result<&str, FileError> {
    let bad = |why| FileError::BadPath {
        path: path.chars().take(128).collect(),
        why,
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(bad("it is longer than 1024 bytes"));
    }
    if path.starts_with('/') || path.contains(":\\") || path.starts_with('\\') {
        return Err(bad(
            "it is absolute; give it relative to the repository's root",
        ));
    }
    if path.contains('\\') {
        return Err(bad("it has a backslash; separate directories with '/'"));
    }
    if path.contains('\0') {
        return Err(bad("it has a NUL byte"));
    }
    if path
        .split('/')
        .any(|s| s == ".." || s == "." || s.is_empty())
    {
        return Err(bad(
            "it has a '..', '.' or empty segment; name the file as the repository does (src/a.py, not ./src/a.py)",
        ));
    }
    Ok(path)
}

/// Walks the targets of an operation over file texts: a target whose
/// bundle predates file texts is skipped and named (`not_scanned`), any
/// other error stops the operation, and when no target had texts the
/// operation fails with the first one's error.
#[derive(Default)]
pub(crate) struct TextsScan {
    not_scanned: Vec<String>,
    /// `None` before any target; the first skip's error until a target
    /// has texts; `Ok` after.
    scanned_any: Option<Result<(), FileError>>,
}

impl TextsScan {
    /// `t`'s file texts, or `None` when its bundle has none (skip it).
    pub(crate) fn open<'a>(&mut self, t: &Target<'a>) -> Result<Option<FileTexts<'a>>, FileError> {
        match texts(t) {
            Ok(texts) => {
                self.scanned_any = Some(Ok(()));
                Ok(Some(texts))
            }
            Err(e @ FileError::NoFileTexts { .. }) => {
                self.not_scanned.push(t.repo.to_string());
                self.scanned_any.get_or_insert(Err(e));
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The targets skipped, or the error when none had texts.
    pub(crate) fn finish(self) -> Result<Vec<String>, FileError> {
        match self.scanned_any {
            Some(Err(e)) => Err(e),
            _ => Ok(self.not_scanned),
        }
    }
}

pub(crate) fn texts<'a>(t: &Target<'a>) -> Result<FileTexts<'a>, FileError> {
    match t.bundle.files() {
        Some(Ok(texts)) => Ok(texts),
        Some(Err(e)) => Err(FileError::Damaged(e.to_string())),
        None => Err(FileError::NoFileTexts {
            repo: t.repo.to_string(),
            digest: t.bundle.digest.to_string(),
            format: format!(
                "{}.{}",
                t.bundle.manifest.format_version, t.bundle.manifest.format_minor
            ),
        }),
    }
}

/// Up to five indexed paths that end with `path`'s file name, to suggest.
fn similar_paths(texts: &FileTexts<'_>, path: &str) -> Vec<String> {
    let name = path.rsplit('/').next().unwrap_or(path);
    (0..texts.len())
        .filter_map(|i| texts.entry(i))
        .filter(|e| e.path.rsplit('/').next() == Some(name))
        .take(5)
        .map(|e| e.path.to_string())
        .collect()
}

/// The one target whose file texts hold `path`, those texts and the file's
/// index in them: not found (or the one target's own error, such as a
/// bundle without file texts) when none has it, [`FileError::Ambiguous`]
/// when several do.
pub(crate) fn locate<'t, 'a>(
    targets: &'t [Target<'a>],
    path: &str,
) -> Result<(&'t Target<'a>, FileTexts<'a>, usize), FileError> {
    let mut found = Vec::new();
    let mut first_error = None;
    for t in targets {
        match texts(t) {
            Ok(texts) => {
                if let Some(i) = texts.find(path) {
                    found.push((t, texts, i));
                }
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => {
            if let (Some(e), [_]) = (first_error, targets) {
                return Err(e);
            }
            Err(not_found(targets, path))
        }
        _ => Err(FileError::Ambiguous {
            path: path.to_string(),
            repos: found.iter().map(|(t, _, _)| t.repo.to_string()).collect(),
        }),
    }
}

/// Reads lines of one file from the first of `targets` that has it (a path
/// in several, with no repository named, is [`FileError::Ambiguous`]).
pub fn read_file(targets: &[Target<'_>], request: &FileRequest) -> Result<FileAnswer, FileError> {
    let path = check_path(&request.path)?;
    let (target, texts, i) = locate(targets, path)?;
    let text = texts
        .text(i)
        .map_err(|e| FileError::Damaged(e.to_string()))?;
    let total = text.lines().count() as u32;
    let start = request.start_line.unwrap_or(1).max(1);
    let end = request.end_line.unwrap_or(total).min(total);
    if start > total.max(1) {
        return Err(FileError::BadRange(format!(
            "'{path}' has {total} lines; start_line {start} is past its end"
        )));
    }
    if end < start && total > 0 {
        return Err(FileError::BadRange(format!(
            "end_line {end} is before start_line {start}"
        )));
    }
    let wanted = line_range(&text, start, end);
    let mut budget = Budget::new(request.max_tokens);
    let (shown, lines) = budget.take_lines(wanted);
    let shown_end = start - 1 + lines as u32;
    let truncated = (shown.len() < wanted.len()).then(|| Truncation {
        max_tokens: budget.max_tokens(),
        omitted: 0,
        cut: true,
        next_start_line: Some(shown_end + 1),
        detail: format!(
            "lines {start}-{shown_end} of {start}-{end} shown; ask for start_line {} to read on, or raise max_tokens",
            shown_end + 1
        ),
    });
    Ok(FileAnswer {
        repo: target.repo.to_string(),
        path: path.to_string(),
        language: language_of(path),
        start_line: start,
        end_line: shown_end,
        total_lines: total,
        text: shown.to_string(),
        bundle: bundle_ref(target),
        truncated,
    })
}

pub(crate) fn not_found(targets: &[Target<'_>], path: &str) -> FileError {
    let mut similar = Vec::new();
    for t in targets {
        if let Ok(texts) = texts(t) {
            similar.extend(similar_paths(&texts, path).into_iter().map(|p| {
                if targets.len() > 1 {
                    format!("{}:{p}", t.repo)
                } else {
                    p
                }
            }));
        }
    }
    let at = match targets {
        [t] => format!(
            "repository '{}' at commit {}",
            t.repo,
            t.bundle.manifest.source.commit.get(..12).unwrap_or("")
        ),
        _ => format!("any of {} repositories", targets.len()),
    };
    let hint = if similar.is_empty() {
        "find files with grep or search_code".to_string()
    } else {
        format!("files with that name: {}", similar.join(", "))
    };
    FileError::NotFound(format!(
        "'{path}' is not an indexed file of {at} (not in the tree, or skipped when indexing); {hint}"
    ))
}

/// The text of lines `start..=end` (1-based) of `text`, newlines kept.
fn line_range(text: &str, start: u32, end: u32) -> &str {
    let mut from = text.len();
    let mut to = text.len();
    let mut at = 0usize;
    for (line, piece) in (1u32..).zip(text.split_inclusive('\n')) {
        if line == start {
            from = at;
        }
        at += piece.len();
        if line == end {
            to = at;
            break;
        }
    }
    if from > to {
        return "";
    }
    &text[from..to]
}

/// A grep request.
#[derive(Debug, Clone)]
pub struct GrepRequest {
    /// A literal, or a regular expression when `regex` is set.
    pub pattern: String,
    /// Whether `pattern` is a regular expression (Rust `regex` syntax:
    /// linear time, no backreferences or look-around).
    pub regex: bool,
    /// Match letters regardless of case.
    pub ignore_case: bool,
    /// Only files whose path matches this glob.
    pub path: Option<String>,
    /// Most matches listed.
    pub limit: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// One matching line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct GrepMatch {
    /// The repository.
    pub repo: String,
    /// The file.
    pub path: String,
    /// The line number, 1-based.
    pub line: u32,
    /// The line (cut at [`MAX_LINE_BYTES`], marked with `…`).
    pub text: String,
}

/// What a grep found.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct GrepAnswer {
    /// The pattern, as given.
    pub pattern: String,
    /// Whether it was a regular expression.
    pub regex: bool,
    /// Matching lines, by repository, path and line.
    pub matches: Vec<GrepMatch>,
    /// Every matching line, listed or not.
    pub total_matches: usize,
    /// Files that had a match.
    pub files_matched: usize,
    /// Files read.
    pub files_scanned: usize,
    /// Repositories whose bundles predate file texts (not scanned).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<String>,
    /// Every bundle that answered.
    pub repos: Vec<BundleRef>,
    /// Milliseconds of scanning.
    pub took_ms: f64,
    /// What was left out, by the limit or `max_tokens`.
    pub truncated: Option<Truncation>,
}

/// Compiles a request's pattern within the bounds.
pub fn compile(request: &GrepRequest) -> Result<Regex, FileError> {
    let p = &request.pattern;
    if p.is_empty() {
        return Err(FileError::BadPattern("the pattern is empty".into()));
    }
    if p.len() > MAX_PATTERN_BYTES {
        return Err(FileError::BadPattern(format!(
            "the pattern is {} bytes; the limit is {MAX_PATTERN_BYTES}",
            p.len()
        )));
    }
    let source = if request.regex {
        p.clone()
    } else {
        regex::escape(p)
    };
    RegexBuilder::new(&source)
        .case_insensitive(request.ignore_case)
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .nest_limit(64)
        .build()
        .map_err(|e| {
            FileError::BadPattern(match e {
                regex::Error::CompiledTooBig(_) => {
                    "the regular expression compiles too large (a big repetition?); simplify it"
                        .into()
                }
                e => format!(
                    "'{}' is not a valid regular expression: {}",
                    p.chars().take(64).collect::<String>(),
                    e.to_string().lines().last().unwrap_or("")
                ),
            })
        })
}

/// Scans every file of `targets` that passes the path glob, line by line,
/// for `re`: the request's pattern as [`compile`] made it (a caller
/// compiles first, so a bad pattern is refused before any other work).
pub fn grep(
    targets: &[Target<'_>],
    request: &GrepRequest,
    re: &Regex,
) -> Result<GrepAnswer, FileError> {
    let started = Instant::now();
    let filter = Filter::new(request.path.as_deref(), &[]).map_err(FileError::BadPattern)?;
    let mut answer = GrepAnswer {
        pattern: request.pattern.clone(),
        regex: request.regex,
        matches: Vec::new(),
        total_matches: 0,
        files_matched: 0,
        files_scanned: 0,
        not_scanned: Vec::new(),
        repos: targets.iter().map(bundle_ref).collect(),
        took_ms: 0.0,
        truncated: None,
    };
    let mut budget = Budget::new(request.max_tokens);
    let mut over_budget = 0usize;
    let mut scan = TextsScan::default();
    for t in targets {
        let Some(texts) = scan.open(t)? else {
            continue;
        };
        let mut reader = texts
            .reader()
            .map_err(|e| FileError::Damaged(e.to_string()))?;
        for i in 0..texts.len() {
            let Some(entry) = texts.entry(i) else {
                continue;
            };
            if !filter.accepts(entry.path) {
                continue;
            }
            answer.files_scanned += 1;
            let text = reader
                .text(i)
                .map_err(|e| FileError::Damaged(e.to_string()))?;
            // A quick test of the whole text first; a file counts as matched
            // only by a matching line (a pattern can match across lines, as
            // `\n` does, where no single line matches).
            if !re.is_match(&text) {
                continue;
            }
            let mut matched_here = false;
            for (n, line) in text.lines().enumerate() {
                if !re.is_match(line) {
                    continue;
                }
                if !matched_here {
                    matched_here = true;
                    answer.files_matched += 1;
                }
                answer.total_matches += 1;
                if answer.matches.len() >= request.limit {
                    continue;
                }
                let m = GrepMatch {
                    repo: t.repo.to_string(),
                    path: entry.path.to_string(),
                    line: n as u32 + 1,
                    text: cut_line(line),
                };
                // What a reader sees: `path:line: text`.
                if over_budget == 0 && budget.take(m.path.len() + m.text.len() + 12) {
                    answer.matches.push(m);
                } else {
                    over_budget += 1;
                }
            }
        }
    }
    answer.not_scanned = scan.finish()?;
    let omitted = answer.total_matches - answer.matches.len();
    if omitted > 0 {
        let why = if over_budget > 0 {
            format!("max_tokens {}", budget.max_tokens())
        } else {
            format!("the limit of {}", request.limit)
        };
        answer.truncated = Some(Truncation {
            max_tokens: budget.max_tokens(),
            omitted,
            cut: false,
            next_start_line: None,
            detail: format!(
                "{} of {} matching lines listed ({why}); narrow the pattern or the path glob, or raise the limit",
                answer.matches.len(),
                answer.total_matches
            ),
        });
    }
    answer.took_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    Ok(answer)
}

/// One definition of a symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct Definition {
    /// The repository.
    pub repo: String,
    /// The file.
    pub path: String,
    /// The line it starts on, 1-based.
    pub line: u32,
    /// That line, trimmed (cut at [`MAX_LINE_BYTES`]).
    pub text: String,
    /// What it defines (`function`, `class`, ...), when the bundle's
    /// definitions index says (format 1.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<&'static str>,
    /// What encloses it (`Session` for a method of it; empty at the top
    /// level), when the bundle's definitions index says (format 1.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Where a symbol is defined.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct DefinitionsAnswer {
    /// The symbol, as given.
    pub name: String,
    /// Its definitions: exact-case matches first, then by repository,
    /// path and line.
    pub definitions: Vec<Definition>,
    /// Files read.
    pub files_scanned: usize,
    /// Repositories whose bundles predate file texts (not scanned).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<String>,
    /// Every bundle that answered.
    pub repos: Vec<BundleRef>,
    /// Milliseconds of scanning.
    pub took_ms: f64,
    /// What was left out, by the limit or `max_tokens`.
    pub truncated: Option<Truncation>,
}

/// A `find_definitions` request.
#[derive(Debug, Clone)]
pub struct DefinitionsRequest {
    /// The symbol.
    pub name: String,
    /// Most definitions listed.
    pub limit: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// Every definition of `request.name` in `targets`, the same case first;
/// a name in another case counts too, after them. A bundle with a
/// definitions index (format 1.4) answers from it (and reads only the
/// files that hold a definition, for its line); an older one is scanned
/// line by line with [`shelf_formats::defline::defined_name`].
pub fn definitions(
    targets: &[Target<'_>],
    request: &DefinitionsRequest,
) -> Result<DefinitionsAnswer, FileError> {
    let started = Instant::now();
    let name = request.name.trim();
    if name.is_empty() || name.len() > 256 || name.chars().any(char::is_whitespace) {
        return Err(FileError::BadPattern(format!(
            "'{}' is not a symbol name: give one identifier, e.g. parse_args or Router",
            name.chars().take(64).collect::<String>()
        )));
    }
    // The symbol's last segment: `Session.request` and `a::b` name `request`, `b`.
    let wanted = name
        .rsplit(['.', ':'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(name);
    let mut exact = Vec::new();
    let mut other_case = Vec::new();
    let mut files_scanned = 0;
    let mut scan = TextsScan::default();
    for t in targets {
        let Some(texts) = scan.open(t)? else {
            continue;
        };
        let found = match t.bundle.definitions() {
            Some(index) => {
                let index = index.map_err(|e| FileError::Damaged(e.to_string()))?;
                from_index(t, &texts, &index, wanted)?
            }
            None => by_scanning(t, &texts, wanted)?,
        };
        files_scanned += found.files_read;
        exact.extend(found.exact);
        other_case.extend(found.other_case);
    }
    let not_scanned = scan.finish()?;
    exact.extend(other_case);
    let total = exact.len();
    let mut budget = Budget::new(request.max_tokens);
    let mut shown = Vec::new();
    for d in exact {
        if shown.len() >= request.limit || !budget.take(d.path.len() + d.text.len() + 12) {
            break;
        }
        shown.push(d);
    }
    let truncated = (shown.len() < total).then(|| Truncation {
        max_tokens: budget.max_tokens(),
        omitted: total - shown.len(),
        cut: false,
        next_start_line: None,
        detail: format!(
            "{} of {total} definitions listed; name a repository or raise limit or max_tokens",
            shown.len()
        ),
    });
    Ok(DefinitionsAnswer {
        name: name.to_string(),
        definitions: shown,
        files_scanned,
        not_scanned,
        repos: targets.iter().map(bundle_ref).collect(),
        took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        truncated,
    })
}

/// One bundle's definitions of a name: the same case, another case, and
/// how many files were read to find them.
struct Found {
    exact: Vec<Definition>,
    other_case: Vec<Definition>,
    files_read: usize,
}

/// From the definitions index: a lookup, then each file that holds one
/// read once for the lines.
fn from_index(
    t: &Target<'_>,
    texts: &FileTexts<'_>,
    index: &shelf_formats::definitions::Definitions<'_>,
    wanted: &str,
) -> Result<Found, FileError> {
    let damaged = |e: &dyn std::fmt::Display| FileError::Damaged(e.to_string());
    let chunks = t.bundle.chunks().map_err(|e| damaged(&e))?;
    let mut defs: Vec<_> = index
        .lookup(&wanted.to_ascii_lowercase())
        .filter_map(|i| index.get(i))
        .collect();
    defs.sort_by_key(|d| (d.path_index, d.start_line));
    let mut found = Found {
        exact: Vec::new(),
        other_case: Vec::new(),
        files_read: 0,
    };
    let mut reader = texts.reader().map_err(|e| damaged(&e))?;
    let mut open: Option<(u32, String)> = None;
    for d in defs {
        let Some(path) = chunks.path(d.path_index as usize) else {
            continue;
        };
        if open.as_ref().is_none_or(|(p, _)| *p != d.path_index) {
            let Some(i) = texts.find(path) else { continue };
            open = Some((d.path_index, reader.text(i).map_err(|e| damaged(&e))?));
            found.files_read += 1;
        }
        let text = open
            .as_ref()
            .and_then(|(_, text)| text.lines().nth(d.start_line as usize - 1))
            .unwrap_or("");
        let def = Definition {
            repo: t.repo.to_string(),
            path: path.to_string(),
            line: d.start_line,
            text: cut_line(text.trim()),
            kind: Some(d.kind.name()),
            scope: Some(d.scope.to_string()),
        };
        if d.name == wanted {
            found.exact.push(def);
        } else {
            found.other_case.push(def);
        }
    }
    Ok(found)
}

/// From the file texts alone (bundles before the definitions index):
/// every line of every file that mentions the name, by the line
/// recogniser.
fn by_scanning(t: &Target<'_>, texts: &FileTexts<'_>, wanted: &str) -> Result<Found, FileError> {
    let mut found = Found {
        exact: Vec::new(),
        other_case: Vec::new(),
        files_read: 0,
    };
    let mut reader = texts
        .reader()
        .map_err(|e| FileError::Damaged(e.to_string()))?;
    let wanted_lower = wanted.to_lowercase();
    for i in 0..texts.len() {
        let Some(entry) = texts.entry(i) else {
            continue;
        };
        found.files_read += 1;
        let text = reader
            .text(i)
            .map_err(|e| FileError::Damaged(e.to_string()))?;
        // Most files do not mention the name at all: skip them whole.
        if !text.to_lowercase().contains(&wanted_lower) {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let Some(defined) = shelf_formats::defline::defined_name(line) else {
                continue;
            };
            let list = if defined == wanted {
                &mut found.exact
            } else if defined.eq_ignore_ascii_case(wanted) {
                &mut found.other_case
            } else {
                continue;
            };
            list.push(Definition {
                repo: t.repo.to_string(),
                path: entry.path.to_string(),
                line: n as u32 + 1,
                text: cut_line(line.trim()),
                kind: None,
                scope: None,
            });
        }
    }
    Ok(found)
}

/// `line` cut to at most [`MAX_LINE_BYTES`] at a character boundary.
pub(crate) fn cut_line(line: &str) -> String {
    if line.len() <= MAX_LINE_BYTES {
        return line.to_string();
    }
    let mut end = MAX_LINE_BYTES;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_outside_the_repository_are_refused_with_the_reason() {
        for (p, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../secret", "'..'"),
            ("src/../../x", "'..'"),
            ("src//a.rs", "empty segment"),
            ("C:\\x", "absolute"),
            ("src\\a.rs", "backslash"),
            ("a\0b", "NUL"),
            // `.` segments are refused like the docs say, a leading one too,
            // and a path after one is not called absolute.
            ("./a.py", "'.'"),
            ("src/./a.py", "'.'"),
            (".//a.py", "'.'"),
        ] {
            let e = check_path(p).unwrap_err().to_string();
            assert!(e.contains(why), "{p:?}: {e}");
            assert!(
                p.starts_with('/') || p.contains(":\\") || !e.contains("absolute"),
                "{p:?}: {e}"
            );
        }
        assert_eq!(check_path("src/a.rs"), Ok("src/a.rs"));
        assert!(check_path(&"a/".repeat(600)).is_err());
    }

    #[test]
    fn line_ranges_are_inclusive_and_keep_newlines() {
        let t = "one\ntwo\nthree\n";
        assert_eq!(line_range(t, 1, 3), t);
        assert_eq!(line_range(t, 2, 2), "two\n");
        assert_eq!(line_range(t, 2, 3), "two\nthree\n");
        assert_eq!(line_range("a\nb", 2, 2), "b");
    }

    #[test]
    fn patterns_are_bounded_and_errors_name_the_problem() {
        let req = |p: &str, regex| GrepRequest {
            pattern: p.into(),
            regex,
            ignore_case: false,
            path: None,
            limit: 10,
            max_tokens: 1000,
        };
        assert!(compile(&req("a(b", false)).is_ok(), "a literal is escaped");
        let e = compile(&req("a(b", true)).unwrap_err().to_string();
        assert!(e.contains("not a valid regular expression"), "{e}");
        let e = compile(&req(&"x".repeat(600), false))
            .unwrap_err()
            .to_string();
        assert!(e.contains("limit is 512"), "{e}");
        let e = compile(&req("(a{1000}){1000}", true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("too large"), "{e}");
        assert!(compile(&req("", false)).is_err());
        let ci = GrepRequest {
            ignore_case: true,
            ..req("HELLO", false)
        };
        assert!(compile(&ci).unwrap().is_match("hello"));
        assert_eq!(cut_line(&"é".repeat(400)).len(), 300 + "…".len());
    }
}
