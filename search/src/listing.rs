//! What is in the bundle, without searching: the files under a directory
//! or matching a glob ([`list_files`]), and the definitions of one file
//! ([`outline`]). Both answer from the file texts' index (`files.bin`:
//! paths, sizes and line counts need no decompression; an outline reads
//! one text), so they are as exact as `read_file` and as cheap as a walk
//! of the path list.

use std::collections::BTreeMap;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use crate::answer::{BundleRef, Target, bundle_ref};
use crate::budget::{Budget, Truncation};
use crate::files::{FileError, TextsScan, check_path, cut_line, locate};
use crate::filter::Filter;
use crate::language::language_of;

/// Entries listed when a request names no limit.
pub const DEFAULT_LIST_LIMIT: usize = 500;

/// A `list_files` request.
#[derive(Debug, Clone)]
pub struct ListRequest {
    /// A directory (`src/server`, empty for the root) or a glob of files
    /// (`**/*.rs`): a glob when it has `*`, `?`, `[` or `{`.
    pub path: String,
    /// Directory levels below `path` to list (default: 1 for a directory,
    /// every level for a glob).
    pub depth: Option<usize>,
    /// Most entries listed.
    pub limit: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// One listed file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ListEntry {
    /// The repository.
    pub repo: String,
    /// Its path; a directory's ends with `/`.
    pub path: String,
    /// `file` or `dir`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Bytes: the file's text, or every indexed file under the directory.
    pub size: u64,
    /// A file's lines.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lines: Option<u32>,
    /// A file's language, from its extension.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<&'static str>,
    /// A directory's indexed files, at any depth.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// What `list_files` answers.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ListAnswer {
    /// The directory or glob, as asked.
    pub path: String,
    /// Whether `path` was read as a glob.
    pub glob: bool,
    /// Entries, by repository and path (directories before their files).
    pub entries: Vec<ListEntry>,
    /// Every entry there was, listed or not.
    pub total_entries: usize,
    /// Indexed files under `path` (or matching it), at any depth.
    pub total_files: u64,
    /// Repositories whose bundles predate file texts (not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_scanned: Vec<String>,
    /// Every bundle that answered.
    pub repos: Vec<BundleRef>,
    /// Milliseconds of listing.
    pub took_ms: f64,
    /// What was left out, by the limit or `max_tokens`.
    pub truncated: Option<Truncation>,
}

fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// The files of `targets` under a directory or matching a glob, with
/// their sizes, lines and languages; a directory listing folds what is
/// deeper than `depth` into directory entries with counts and sizes.
pub fn list_files(targets: &[Target<'_>], request: &ListRequest) -> Result<ListAnswer, FileError> {
    let started = Instant::now();
    let asked = request.path.trim_matches('/');
    let glob = is_glob(asked);
    let filter = if glob {
        Some(Filter::new(Some(asked), &[]).map_err(FileError::BadPattern)?)
    } else {
        if !asked.is_empty() {
            check_path(asked)?;
        }
        None
    };
    let depth = request
        .depth
        .unwrap_or(if glob { usize::MAX } else { 1 })
        .max(1);
    let mut entries = Vec::new();
    let mut total_files = 0u64;
    let mut scan = TextsScan::default();
    for t in targets {
        let Some(texts) = scan.open(t)? else {
            continue;
        };
        // Directories found, with (files, bytes) under them.
        let mut dirs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        let mut files = Vec::new();
        for i in 0..texts.len() {
            let Some(e) = texts.entry(i) else { continue };
            let rest = match &filter {
                Some(f) => {
                    if !f.accepts(e.path) {
                        continue;
                    }
                    e.path
                }
                None if asked.is_empty() => e.path,
                None if e.path == asked => {
                    // The path names one file: list it.
                    e.path.rsplit('/').next().unwrap_or(e.path)
                }
                None => match e.path.strip_prefix(asked).and_then(|r| r.strip_prefix('/')) {
                    Some(rest) => rest,
                    None => continue,
                },
            };
            total_files += 1;
            let segments: Vec<&str> = rest.split('/').collect();
            if glob || segments.len() <= depth {
                files.push(ListEntry {
                    repo: t.repo.to_string(),
                    path: e.path.to_string(),
                    kind: "file",
                    size: u64::from(e.text_len),
                    lines: Some(e.line_count),
                    language: language_of(e.path),
                    files: None,
                });
            } else {
                let prefix_len = e.path.len() - rest.len();
                let dir_len: usize = segments[..depth].iter().map(|s| s.len() + 1).sum();
                let dir = &e.path[..prefix_len + dir_len];
                let slot = dirs.entry(dir.to_string()).or_insert((0, 0));
                slot.0 += 1;
                slot.1 += u64::from(e.text_len);
            }
        }
        let mut here: Vec<ListEntry> = dirs
            .into_iter()
            .map(|(path, (count, size))| ListEntry {
                repo: t.repo.to_string(),
                path,
                kind: "dir",
                size,
                lines: None,
                language: None,
                files: Some(count),
            })
            .chain(files)
            .collect();
        here.sort_by(|a, b| a.path.cmp(&b.path));
        entries.extend(here);
    }
    let not_scanned = scan.finish()?;
    if entries.is_empty() && !glob && !asked.is_empty() {
        return Err(FileError::NotFound(format!(
            "no indexed file is under '{asked}'; list the root (no path) or use a glob such as '**/{}*'",
            asked.rsplit('/').next().unwrap_or(asked)
        )));
    }
    let total_entries = entries.len();
    let mut budget = Budget::new(request.max_tokens);
    let mut shown = Vec::new();
    let mut by_budget = false;
    for e in entries {
        if shown.len() >= request.limit {
            break;
        }
        // What a reader sees: `path  size  lines  language`.
        if !budget.take(e.path.len() + 32) {
            by_budget = true;
            break;
        }
        shown.push(e);
    }
    let truncated = Truncation::of_list(
        shown.len(),
        total_entries,
        "entries",
        &budget,
        by_budget,
        request.limit,
        "list a subdirectory, lower depth, or use a narrower glob",
    );
    Ok(ListAnswer {
        path: request.path.clone(),
        glob,
        entries: shown,
        total_entries,
        total_files,
        not_scanned,
        repos: targets.iter().map(bundle_ref).collect(),
        took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        truncated,
    })
}

/// An `outline` request.
#[derive(Debug, Clone)]
pub struct OutlineRequest {
    /// The file, repository-relative.
    pub path: String,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// One definition of a file's outline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Symbol {
    /// What it is: `function`, `method`, `class`, `struct`, `enum`,
    /// `trait`, `interface`, `type`, `impl`, `module`, `macro`,
    /// `constant`, `variable`.
    pub kind: &'static str,
    /// The name it defines.
    pub name: String,
    /// The line it starts on, 1-based.
    pub line: u32,
    /// The last line of its body, estimated from indentation (the line
    /// before the next one indented no deeper, a closing brace kept).
    pub end_line: u32,
    /// How many definitions it is nested in (0: top level).
    pub depth: u32,
    /// Its first line, trimmed (cut at 300 bytes).
    pub text: String,
}

/// A file's definitions, in line order.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct OutlineAnswer {
    /// The repository.
    pub repo: String,
    /// The file.
    pub path: String,
    /// Its language, from the extension.
    pub language: Option<&'static str>,
    /// Lines in the file.
    pub total_lines: u32,
    /// Its definitions, in line order.
    pub symbols: Vec<Symbol>,
    /// The bundle that answered.
    pub bundle: BundleRef,
    /// What was left out by `max_tokens`.
    pub truncated: Option<Truncation>,
}

/// The kind of definition `line` makes of `name`: read from the word
/// before the name (`fn send`, `class Session`, `impl X for Y`).
fn kind_of(line: &str, name: &str, nested: bool) -> &'static str {
    let before = line
        .find(name)
        .map_or("", |at| line[..at].trim_end())
        .rsplit([' ', '\t'])
        .next()
        .unwrap_or("");
    match before {
        "fn" | "def" | "function" | "function*" => {
            if nested {
                "method"
            } else {
                "function"
            }
        }
        "func" => "function",
        "class" => "class",
        "struct" => "struct",
        "enum" => "enum",
        "trait" => "trait",
        "interface" => "interface",
        "type" => "type",
        "impl" | "for" => "impl",
        "mod" => "module",
        "macro_rules!" => "macro",
        "union" => "union",
        "record" => "record",
        "const" => "constant",
        "let" | "var" => "variable",
        b if b.ends_with(')') => "method",
        _ => {
            if nested {
                "method"
            } else {
                "function"
            }
        }
    }
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Whether `line` closes a block opened at its own indentation (`}`,
/// `})`, `end`), and so still belongs to it.
fn closes(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with('}') || t.starts_with(')') || t.starts_with(']') || t == "end"
}

/// The definitions of one file (by the engine's definition finder,
/// [`shelf_formats::defline::defined_name`]), each with its kind, its lines and
/// its nesting.
pub fn outline(
    targets: &[Target<'_>],
    request: &OutlineRequest,
) -> Result<OutlineAnswer, FileError> {
    let path = check_path(&request.path)?;
    let (target, texts, i) = locate(targets, path)?;
    let text = texts
        .text(i)
        .map_err(|e| FileError::Damaged(e.to_string()))?;
    let lines: Vec<&str> = text.lines().collect();
    // Open definitions: (index into symbols, indent).
    let mut open: Vec<(usize, usize)> = Vec::new();
    let mut symbols: Vec<Symbol> = Vec::new();
    let mut last_code = 0u32;
    for (n, line) in lines.iter().enumerate() {
        let number = n as u32 + 1;
        if line.trim().is_empty() {
            continue;
        }
        let indent = indent_of(line);
        while let Some(&(s, at)) = open.last() {
            if indent > at || (indent == at && closes(line)) {
                break;
            }
            symbols[s].end_line = last_code.max(symbols[s].line);
            open.pop();
        }
        last_code = number;
        let Some(name) = shelf_formats::defline::defined_name(line) else {
            continue;
        };
        let nested = !open.is_empty();
        symbols.push(Symbol {
            kind: kind_of(line, name, nested),
            name: name.to_string(),
            line: number,
            end_line: number,
            depth: open.len() as u32,
            text: cut_line(line.trim()),
        });
        open.push((symbols.len() - 1, indent));
    }
    for (s, _) in open {
        symbols[s].end_line = last_code.max(symbols[s].line);
    }
    let total = symbols.len();
    let mut budget = Budget::new(request.max_tokens);
    let kept = symbols
        .iter()
        .take_while(|s| budget.take(s.name.len() + s.text.len() + 24))
        .count();
    symbols.truncate(kept);
    let truncated = (kept < total).then(|| Truncation {
        max_tokens: budget.max_tokens(),
        omitted: total - kept,
        cut: false,
        next_start_line: symbols.last().map(|s| s.end_line + 1),
        detail: format!(
            "{kept} of {total} definitions listed; raise max_tokens, or read the rest of the file with read_file"
        ),
    });
    Ok(OutlineAnswer {
        repo: target.repo.to_string(),
        path: path.to_string(),
        language: language_of(path),
        total_lines: lines.len() as u32,
        symbols,
        bundle: bundle_ref(target),
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_word_before_the_name() {
        assert_eq!(kind_of("pub fn send(&self) {", "send", false), "function");
        assert_eq!(kind_of("    fn send(&self) {", "send", true), "method");
        assert_eq!(kind_of("class Session:", "Session", false), "class");
        assert_eq!(kind_of("impl<T> Store for Local {", "Local", false), "impl");
        assert_eq!(kind_of("pub struct Tag {", "Tag", false), "struct");
        assert_eq!(kind_of("func (s *S) Run() {", "Run", false), "method");
        assert_eq!(kind_of("const LIMIT = 3", "LIMIT", false), "constant");
    }

    #[test]
    fn globs_are_told_from_directories() {
        assert!(is_glob("**/*.rs"));
        assert!(is_glob("src/{a,b}"));
        assert!(!is_glob("src/server"));
    }
}
