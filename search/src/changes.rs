//! What changed between two indexed versions of one repository
//! ([`changes`]): files added, removed and changed, from the two bundles'
//! file indexes (each file's text is addressed by its sha256, so telling
//! changed from unchanged reads no text), and on request one file's
//! unified diff. Both versions are immutable bundles, so the answer is
//! the same whenever it is asked.

use std::cmp::Ordering;
use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;
use shelf_formats::files::{FileEntry, FileTexts};

use crate::answer::{BundleRef, Target, bundle_ref};
use crate::budget::{Budget, Truncation};
use crate::files::{FileError, check_path, texts};

/// Changed files listed when a request names no limit.
pub const DEFAULT_CHANGES_LIMIT: usize = 500;
/// Lines of context around each change in a diff.
pub const DIFF_CONTEXT: usize = 3;

/// A `changes` request (the two versions are the caller's to open).
#[derive(Debug, Clone)]
pub struct ChangesRequest {
    /// One file whose unified diff to show.
    pub path: Option<String>,
    /// Most changed files listed.
    pub limit: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// One file that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct ChangedFile {
    /// The path.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub status: &'static str,
    /// Bytes in the older version (none when added).
    pub old_size: Option<u32>,
    /// Bytes in the newer version (none when removed).
    pub new_size: Option<u32>,
    /// Lines in the older version.
    pub old_lines: Option<u32>,
    /// Lines in the newer version.
    pub new_lines: Option<u32>,
}

/// One file's unified diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, JsonSchema)]
pub struct FileDiff {
    /// The path.
    pub path: String,
    /// `added`, `removed`, `changed` or `unchanged`.
    pub status: &'static str,
    /// Lines added.
    pub added_lines: usize,
    /// Lines removed.
    pub removed_lines: usize,
    /// The unified diff (`--- a/path`, `+++ b/path`, hunks with 3 lines of
    /// context); empty when unchanged.
    pub diff: String,
}

/// What changed between two versions.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct ChangesAnswer {
    /// The repository.
    pub repo: String,
    /// The older version.
    pub from: BundleRef,
    /// The newer version.
    pub to: BundleRef,
    /// Files added.
    pub added: usize,
    /// Files removed.
    pub removed: usize,
    /// Files changed.
    pub changed: usize,
    /// Files in both and the same.
    pub unchanged: usize,
    /// The files that differ, by path.
    pub files: Vec<ChangedFile>,
    /// The diff of the file asked for, if one was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<FileDiff>,
    /// Milliseconds.
    pub took_ms: f64,
    /// What was left out, by the limit or `max_tokens`.
    pub truncated: Option<Truncation>,
}

fn changed(
    path: &str,
    status: &'static str,
    old: Option<&FileEntry<'_>>,
    new: Option<&FileEntry<'_>>,
) -> ChangedFile {
    ChangedFile {
        path: path.to_string(),
        status,
        old_size: old.map(|e| e.text_len),
        new_size: new.map(|e| e.text_len),
        old_lines: old.map(|e| e.line_count),
        new_lines: new.map(|e| e.line_count),
    }
}

/// Every file that differs between `from` and `to` (two bundles of one
/// repository), by merging their sorted path lists.
fn differences(old: &FileTexts<'_>, new: &FileTexts<'_>) -> (Vec<ChangedFile>, usize) {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    let mut same = 0;
    loop {
        let a = old.entry(i);
        let b = new.entry(j);
        match (a, b) {
            (None, None) => break,
            (Some(a), None) => {
                out.push(changed(a.path, "removed", Some(&a), None));
                i += 1;
            }
            (None, Some(b)) => {
                out.push(changed(b.path, "added", None, Some(&b)));
                j += 1;
            }
            (Some(a), Some(b)) => match a.path.as_bytes().cmp(b.path.as_bytes()) {
                Ordering::Less => {
                    out.push(changed(a.path, "removed", Some(&a), None));
                    i += 1;
                }
                Ordering::Greater => {
                    out.push(changed(b.path, "added", None, Some(&b)));
                    j += 1;
                }
                Ordering::Equal => {
                    if a.sha256 != b.sha256 {
                        out.push(changed(a.path, "changed", Some(&a), Some(&b)));
                    } else {
                        same += 1;
                    }
                    i += 1;
                    j += 1;
                }
            },
        }
    }
    (out, same)
}

/// The unified diff of `path` between the two versions, cut to `budget`.
fn diff_of(
    old: &FileTexts<'_>,
    new: &FileTexts<'_>,
    path: &str,
    budget: &mut Budget,
) -> Result<(FileDiff, Option<Truncation>), FileError> {
    let damaged = |e: shelf_formats::files::FileTextsError| FileError::Damaged(e.to_string());
    let read = |t: &FileTexts<'_>| -> Result<Option<(String, [u8; 32])>, FileError> {
        match t.find(path) {
            Some(i) => {
                let sha = t.entry(i).map(|e| *e.sha256).unwrap_or_default();
                Ok(Some((t.text(i).map_err(damaged)?, sha)))
            }
            None => Ok(None),
        }
    };
    let (a, b) = (read(old)?, read(new)?);
    let status = match (&a, &b) {
        (None, None) => {
            return Err(FileError::NotFound(format!(
                "'{path}' is an indexed file of neither version; see the list of changed files"
            )));
        }
        (None, Some(_)) => "added",
        (Some(_), None) => "removed",
        (Some((_, x)), Some((_, y))) if x == y => "unchanged",
        _ => "changed",
    };
    let (a, b) = (
        a.map(|(t, _)| t).unwrap_or_default(),
        b.map(|(t, _)| t).unwrap_or_default(),
    );
    let diff = similar::TextDiff::from_lines(&a, &b);
    let (mut added_lines, mut removed_lines) = (0, 0);
    for op in diff.ops() {
        for change in diff.iter_changes(op) {
            match change.tag() {
                similar::ChangeTag::Insert => added_lines += 1,
                similar::ChangeTag::Delete => removed_lines += 1,
                similar::ChangeTag::Equal => {}
            }
        }
    }
    let text = if status == "unchanged" {
        String::new()
    } else {
        diff.unified_diff()
            .context_radius(DIFF_CONTEXT)
            .header(&format!("a/{path}"), &format!("b/{path}"))
            .to_string()
    };
    let (shown, _) = budget.take_lines(&text);
    let truncated = (shown.len() < text.len()).then(|| Truncation {
        max_tokens: budget.max_tokens(),
        omitted: 0,
        cut: true,
        next_start_line: None,
        detail: format!(
            "the diff of '{path}' is cut at {} of its {} lines; raise max_tokens, or read both versions' lines with read_file",
            shown.lines().count(),
            text.lines().count()
        ),
    });
    Ok((
        FileDiff {
            path: path.to_string(),
            status,
            added_lines,
            removed_lines,
            diff: shown.to_string(),
        },
        truncated,
    ))
}

/// What changed from `from` to `to`, two versions of one repository
/// (module doc); with `request.path`, that file's diff too.
pub fn changes(
    from: &Target<'_>,
    to: &Target<'_>,
    request: &ChangesRequest,
) -> Result<ChangesAnswer, FileError> {
    let started = Instant::now();
    let (old, new) = (texts(from)?, texts(to)?);
    let (files, unchanged) = differences(&old, &new);
    let count = |s: &str| files.iter().filter(|f| f.status == s).count();
    let (added, removed, modified) = (count("added"), count("removed"), count("changed"));
    let mut budget = Budget::new(request.max_tokens);
    let (diff, mut truncated) = match &request.path {
        Some(path) => {
            let path = check_path(path)?;
            let (d, t) = diff_of(&old, &new, path, &mut budget)?;
            (Some(d), t)
        }
        None => (None, None),
    };
    let total = files.len();
    let mut shown = Vec::new();
    let mut by_budget = false;
    for f in files {
        if shown.len() >= request.limit {
            break;
        }
        if !budget.take(f.path.len() + 40) {
            by_budget = true;
            break;
        }
        shown.push(f);
    }
    if shown.len() < total && truncated.is_none() {
        truncated = Some(Truncation {
            max_tokens: budget.max_tokens(),
            omitted: total - shown.len(),
            cut: false,
            next_start_line: None,
            detail: format!(
                "{} of {total} changed files listed ({}); raise limit or max_tokens",
                shown.len(),
                if by_budget {
                    format!("max_tokens {}", budget.max_tokens())
                } else {
                    format!("the limit of {}", request.limit)
                }
            ),
        });
    } else if let Some(t) = truncated.as_mut() {
        t.omitted = total - shown.len();
    }
    Ok(ChangesAnswer {
        repo: to.repo.to_string(),
        from: bundle_ref(from),
        to: bundle_ref(to),
        added,
        removed,
        changed: modified,
        unchanged,
        files: shown,
        diff,
        took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        truncated,
    })
}
