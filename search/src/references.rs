//! Where a symbol is used ([`references`]): every line of every indexed
//! file that names it as a whole identifier, the lines that define it set
//! apart (by the engine's definition finder, as `find_definitions` sees
//! them), ranked so that an assistant reads the likeliest callers first:
//! source files before tests, docs and generated files, files that use
//! the name more before those that mention it once, then by path and line.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use shelf_formats::FileKind;

use crate::answer::{BundleRef, Target, bundle_ref};
use crate::budget::{Budget, Truncation};
use crate::files::{Definition, FileError, TextsScan, cut_line};
use crate::filter::Filter;

/// A `find_references` request.
#[derive(Debug, Clone)]
pub struct ReferencesRequest {
    /// The symbol (its last segment is looked for: `Session.send` → `send`).
    pub name: String,
    /// Only files whose path matches this glob.
    pub path: Option<String>,
    /// Most references listed.
    pub limit: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// One use of the symbol.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct Reference {
    /// 1-based rank.
    pub rank: usize,
    /// The repository.
    pub repo: String,
    /// The file.
    pub path: String,
    /// The line, 1-based.
    pub line: u32,
    /// That line, trimmed (cut at 300 bytes).
    pub text: String,
}

/// Where a symbol is used.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ReferencesAnswer {
    /// The symbol, as given.
    pub name: String,
    /// Its uses, best first.
    pub references: Vec<Reference>,
    /// Every use found, listed or not.
    pub total_references: usize,
    /// Files with at least one use.
    pub files_matched: usize,
    /// The lines that define it (not counted as uses).
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

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Whether `line` names `name` as a whole identifier.
fn names(line: &str, name: &str) -> bool {
    let bytes = line.as_bytes();
    line.match_indices(name).any(|(at, _)| {
        let before = at.checked_sub(1).map(|i| bytes[i]);
        let after = bytes.get(at + name.len()).copied();
        !before.is_some_and(is_ident_byte) && !after.is_some_and(is_ident_byte)
    })
}

/// How early a file of this kind is read: source first.
fn kind_rank(path: &str) -> u8 {
    match FileKind::of(path) {
        FileKind::Source => 0,
        FileKind::Test => 1,
        FileKind::Other => 2,
        FileKind::Doc => 3,
        FileKind::Changelog => 4,
        FileKind::Generated => 5,
    }
}

/// One file's uses: (kind rank, how many, repo, path, each line and its
/// text).
type FileUses = (u8, usize, String, String, Vec<(u32, String)>);

/// Every use of `request.name` in the files of `targets`, definitions
/// apart, ranked (module doc).
pub fn references(
    targets: &[Target<'_>],
    request: &ReferencesRequest,
) -> Result<ReferencesAnswer, FileError> {
    let started = Instant::now();
    let asked = request.name.trim();
    let name = asked
        .rsplit(['.', ':'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(asked);
    if name.is_empty() || name.len() > 256 || !name.bytes().all(is_ident_byte) {
        return Err(FileError::BadPattern(format!(
            "'{}' is not a symbol name: give one identifier, e.g. parse_args or Router",
            asked.chars().take(64).collect::<String>()
        )));
    }
    let filter = Filter::new(request.path.as_deref(), &[]).map_err(FileError::BadPattern)?;
    let mut files: Vec<FileUses> = Vec::new();
    let mut definitions = Vec::new();
    let mut files_scanned = 0;
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
            files_scanned += 1;
            let text = reader
                .text(i)
                .map_err(|e| FileError::Damaged(e.to_string()))?;
            // Most files do not mention the name at all.
            if !text.contains(name) {
                continue;
            }
            let mut uses = Vec::new();
            for (n, line) in text.lines().enumerate() {
                if !names(line, name) {
                    continue;
                }
                let number = n as u32 + 1;
                if shelf_formats::defline::defined_name(line) == Some(name) {
                    definitions.push(Definition {
                        repo: t.repo.to_string(),
                        path: entry.path.to_string(),
                        line: number,
                        text: cut_line(line.trim()),
                        kind: None,
                        scope: None,
                    });
                } else {
                    uses.push((number, cut_line(line.trim())));
                }
            }
            if !uses.is_empty() {
                files.push((
                    kind_rank(entry.path),
                    uses.len(),
                    t.repo.to_string(),
                    entry.path.to_string(),
                    uses,
                ));
            }
        }
    }
    let not_scanned = scan.finish()?;
    files.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.cmp(&a.1))
            .then_with(|| a.2.cmp(&b.2))
            .then_with(|| a.3.cmp(&b.3))
    });
    let files_matched = files.len();
    let total: usize = files.iter().map(|f| f.1).sum();
    let mut budget = Budget::new(request.max_tokens);
    for d in &definitions {
        budget.take(d.path.len() + d.text.len() + 12);
    }
    let mut references = Vec::new();
    let mut by_budget = false;
    'files: for (_, _, repo, path, uses) in files {
        for (line, text) in uses {
            if references.len() >= request.limit {
                break 'files;
            }
            if !budget.take(path.len() + text.len() + 12) {
                by_budget = true;
                break 'files;
            }
            references.push(Reference {
                rank: references.len() + 1,
                repo: repo.clone(),
                path: path.clone(),
                line,
                text,
            });
        }
    }
    let truncated = Truncation::of_list(
        references.len(),
        total,
        "uses",
        &budget,
        by_budget,
        request.limit,
        "narrow with path or repo, or raise limit",
    );
    Ok(ReferencesAnswer {
        name: asked.to_string(),
        references,
        total_references: total,
        files_matched,
        definitions,
        files_scanned,
        not_scanned,
        repos: targets.iter().map(bundle_ref).collect(),
        took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        truncated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_matched_as_a_whole_identifier_only() {
        assert!(names("    move_tag(store, t)", "move_tag"));
        assert!(names("x = a.move_tag", "move_tag"));
        assert!(!names("remove_tag(x)", "move_tag"));
        assert!(!names("move_tags(x)", "move_tag"));
        assert!(names("move_tag", "move_tag"));
        assert!(!names("$move_tag", "move_tag"));
    }

    #[test]
    fn source_files_rank_before_tests_and_docs() {
        assert!(kind_rank("src/tags.rs") < kind_rank("tests/tags.rs"));
        assert!(kind_rank("tests/tags.rs") < kind_rank("docs/tags.md"));
    }
}
