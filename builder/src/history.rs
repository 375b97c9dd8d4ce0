//! Golden queries from a repository's own history, for
//! `shelf eval --from-history` (docs/eval.md): each recent commit that
//! changes one to three source files is a question ("this is what was
//! wrong or wanted", its message) with a known answer (the source files it
//! changed), asked of the repository as it was just before (its parent).
//!
//! Why commits: every repository has them, so every user gets a quality
//! number without writing golden queries; a commit message is written by
//! the person who knew which files mattered, like an issue but shorter;
//! and asking it of the parent is the real situation (the fix is not in
//! the index yet). Why source files only as the answer, and at most three:
//! a fix's tests, changelog entry and docs come with it but are not where
//! the change is (SWE-bench splits the test patch off the same way), and a
//! commit that touches many files has no one place to find.
//!
//! Also here: building the parents' bundles, oldest first, each
//! incremental from the one before, kept in a cache directory so the next
//! evaluation only asks.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use git2::{Delta, DiffOptions, Repository, Sort};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use shelf_embed::Embedder;
use shelf_formats::FileKind;

use crate::{BuildError, BuildRequest, Observer};

/// Which commits become queries.
#[derive(Debug, Clone, Copy)]
pub struct MineOptions {
    /// Queries wanted (the most recent that qualify).
    pub limit: usize,
    /// Most source files a commit may change (its gold).
    pub max_source_files: usize,
    /// Fewest words a message needs to be a question ("v1.2.3" is not).
    pub min_words: usize,
    /// Commits looked at, at most, before giving up.
    pub scan_limit: usize,
}

impl Default for MineOptions {
    fn default() -> Self {
        Self {
            limit: 100,
            max_source_files: 3,
            min_words: 3,
            scan_limit: 20_000,
        }
    }
}

/// One mined query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryQuery {
    /// `commit-<short id>`.
    pub id: String,
    /// The commit whose message is the query.
    pub commit: String,
    /// Its parent: the bundle the query is asked of.
    pub parent: String,
    /// The parent's committer time (seconds since the epoch), to build
    /// parents oldest first.
    pub parent_time: i64,
    /// The message, subject and body, trailers stripped.
    pub query: String,
    /// The source files the commit changed that exist at the parent.
    pub gold: Vec<String>,
}

/// What mining found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Mined {
    /// The queries, most recent first.
    pub queries: Vec<HistoryQuery>,
    /// Commits looked at.
    pub scanned: usize,
    /// Commits passed over, by reason.
    pub skipped: BTreeMap<&'static str, usize>,
    /// Whether the clone is shallow (its history is cut off).
    pub shallow: bool,
}

fn history_error(repo: &Path, detail: impl std::fmt::Display) -> BuildError {
    BuildError::Repository {
        path: repo.to_path_buf(),
        detail: format!("reading history: {detail}"),
    }
}

/// The message as a query: subject and body with the trailer block
/// (`Signed-off-by:`, `Co-authored-by:`, ... as the last paragraph) and
/// `(cherry picked from ...)` lines removed, whitespace kept.
pub fn query_text(message: &str) -> String {
    let message = message.replace("\r\n", "\n");
    let mut paragraphs: Vec<&str> = message
        .split("\n\n")
        .map(|p| p.trim_matches('\n'))
        .filter(|p| !p.trim().is_empty())
        .collect();
    let is_trailer = |line: &str| {
        let line = line.trim();
        line.is_empty()
            || line.starts_with("(cherry picked from commit")
            || line.split_once(": ").is_some_and(|(key, value)| {
                !key.is_empty()
                    && !value.trim().is_empty()
                    && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && key.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            })
    };
    // Only a final paragraph is a trailer block, and never the subject.
    while paragraphs.len() > 1 && paragraphs.last().is_some_and(|p| p.lines().all(is_trailer)) {
        paragraphs.pop();
    }
    paragraphs.join("\n\n").trim().to_string()
}

fn words(text: &str) -> usize {
    text.split_whitespace()
        .filter(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 2)
        .count()
}

/// Whether a commit's author is a bot (dependency bumps, formatting
/// runs): their messages say nothing about where a report belongs.
pub(crate) fn is_bot(name: &str, email: &str) -> bool {
    let (name, email) = (name.to_ascii_lowercase(), email.to_ascii_lowercase());
    name.contains("[bot]")
        || email.contains("[bot]")
        || ["dependabot", "renovate", "github-actions", "pre-commit-ci"]
            .iter()
            .any(|b| name.starts_with(b))
}

/// Mines queries from the history of `rev` in `repo_path`: commits newest
/// first (by committer time, every branch merged into `rev`), skipping
/// merges, root commits, bots, messages of fewer than `min_words` words,
/// commits that change no source file or more than `max_source_files`,
/// those whose changed source files are all new, and repeated messages.
pub fn mine(repo_path: &Path, rev: &str, opts: &MineOptions) -> Result<Mined, BuildError> {
    let repo = Repository::open(repo_path).map_err(|e| BuildError::Repository {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })?;
    let start = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| BuildError::UnknownRevision {
            rev: rev.to_string(),
            path: repo_path.to_path_buf(),
        })?;
    let mut walk = repo.revwalk().map_err(|e| history_error(repo_path, e))?;
    walk.set_sorting(Sort::TIME)
        .map_err(|e| history_error(repo_path, e))?;
    walk.push(start.id())
        .map_err(|e| history_error(repo_path, e))?;
    let mut mined = Mined {
        shallow: repo.is_shallow(),
        ..Mined::default()
    };
    let mut seen_messages: HashSet<String> = HashSet::new();
    for oid in walk {
        if mined.queries.len() >= opts.limit || mined.scanned >= opts.scan_limit {
            break;
        }
        let Ok(oid) = oid else {
            // A shallow clone's walk ends where its history does.
            *mined.skipped.entry("history-cut-off").or_default() += 1;
            break;
        };
        mined.scanned += 1;
        let commit = repo
            .find_commit(oid)
            .map_err(|e| history_error(repo_path, e))?;
        let reason = match judge(&repo, &commit, opts, &mut seen_messages) {
            Ok(q) => {
                mined.queries.push(q);
                continue;
            }
            Err(reason) => reason,
        };
        *mined.skipped.entry(reason).or_default() += 1;
    }
    Ok(mined)
}

/// The query a commit makes, or why it makes none.
fn judge(
    repo: &Repository,
    commit: &git2::Commit<'_>,
    opts: &MineOptions,
    seen: &mut HashSet<String>,
) -> Result<HistoryQuery, &'static str> {
    match commit.parent_count() {
        // libgit2 shows a shallow clone's oldest commits without parents.
        0 if repo.is_shallow() => return Err("history-cut-off"),
        0 => return Err("root-commit"),
        1 => {}
        _ => return Err("merge"),
    }
    let author = commit.author();
    if is_bot(author.name().unwrap_or(""), author.email().unwrap_or("")) {
        return Err("bot");
    }
    let query = query_text(&String::from_utf8_lossy(commit.message_bytes()));
    if words(&query) < opts.min_words {
        return Err("short-message");
    }
    // A shallow clone lists parents it does not have.
    let parent = commit.parent(0).map_err(|_| "history-cut-off")?;
    let (old, new) = match (parent.tree(), commit.tree()) {
        (Ok(o), Ok(n)) => (o, n),
        _ => return Err("unreadable"),
    };
    let mut diff_opts = DiffOptions::new();
    diff_opts.skip_binary_check(true);
    let diff = repo
        .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut diff_opts))
        .map_err(|_| "unreadable")?;
    let mut source = 0usize;
    let mut gold = Vec::new();
    for d in diff.deltas() {
        let at_parent = matches!(d.status(), Delta::Modified | Delta::Deleted);
        let file = if at_parent {
            d.old_file()
        } else {
            d.new_file()
        };
        let Some(path) = file.path().and_then(|p| p.to_str()) else {
            continue;
        };
        if FileKind::of(path) != FileKind::Source {
            continue;
        }
        source += 1;
        if at_parent {
            gold.push(path.to_string());
        }
    }
    if source == 0 {
        return Err("no-source-file");
    }
    if source > opts.max_source_files {
        return Err("too-many-source-files");
    }
    if gold.is_empty() {
        return Err("only-new-files");
    }
    if !seen.insert(query.clone()) {
        return Err("repeated-message");
    }
    gold.sort();
    let commit_id = commit.id().to_string();
    Ok(HistoryQuery {
        id: format!("commit-{}", &commit_id[..commit_id.len().min(10)]),
        parent: parent.id().to_string(),
        parent_time: parent.time().seconds(),
        commit: commit_id,
        query,
        gold,
    })
}

/// The queries as asked of `rev` itself rather than of each parent (one
/// bundle for all, as a quality gate compares two): each keeps the gold
/// files that still exist at `rev`, and a query with none left is dropped.
pub fn present_at(
    repo_path: &Path,
    rev: &str,
    queries: &[HistoryQuery],
) -> Result<Vec<HistoryQuery>, BuildError> {
    let (_, snapshot) = crate::source::open(repo_path, rev, None)?;
    let paths: HashSet<&str> = snapshot.entries.iter().map(|e| e.path.as_str()).collect();
    Ok(queries
        .iter()
        .filter_map(|q| {
            let gold: Vec<String> = q
                .gold
                .iter()
                .filter(|g| paths.contains(g.as_str()))
                .cloned()
                .collect();
            (!gold.is_empty()).then(|| HistoryQuery { gold, ..q.clone() })
        })
        .collect())
}

/// Where [`build_parents`] keeps bundles, and what it builds them with.
#[derive(Debug, Clone)]
pub struct ParentBuild {
    /// The repository.
    pub repo: PathBuf,
    /// Repository name for the manifests.
    pub name: Option<String>,
    /// A build settings file (default: `shelf.toml` at each parent).
    pub config: Option<PathBuf>,
    /// Kept bundles: `<cache>/<commit>-<settings>/`.
    pub cache: PathBuf,
}

/// Bundles of every parent the queries name (`commit -> bundle file`),
/// built oldest first, each incremental from the previous one, and reused
/// from the cache when one of the same commit, model and settings is there.
/// `progress` hears one line per bundle.
pub fn build_parents(
    queries: &[HistoryQuery],
    how: &ParentBuild,
    embedder: &Embedder,
    observer: &dyn Observer,
    mut progress: impl FnMut(&str),
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    let mut parents: Vec<(i64, &str)> = queries
        .iter()
        .map(|q| (q.parent_time, q.parent.as_str()))
        .collect();
    parents.sort();
    parents.dedup();
    let mut built = BTreeMap::new();
    let mut previous: Option<PathBuf> = None;
    for (i, (_, commit)) in parents.iter().enumerate() {
        let mut req = BuildRequest {
            repo: how.repo.clone(),
            rev: commit.to_string(),
            out_dir: PathBuf::new(),
            previous: previous.clone(),
            config: how.config.clone(),
            name: how.name.clone(),
        };
        let plan = crate::plan(&req, embedder.identity())?;
        let fingerprint = {
            let mut h = Sha256::new();
            h.update(serde_json::to_vec(embedder.identity()).unwrap_or_default());
            h.update(serde_json::to_vec(&plan.settings).unwrap_or_default());
            h.update(req.name.as_deref().unwrap_or("").as_bytes());
            hex::encode(&h.finalize()[..8])
        };
        req.out_dir = how.cache.join(format!("{commit}-{fingerprint}"));
        let record = req.out_dir.join("bundle.json");
        let cached: Option<PathBuf> = std::fs::read(&record)
            .ok()
            .and_then(|b| serde_json::from_slice::<PathBuf>(&b).ok())
            .filter(|p| p.is_file());
        let bundle = match cached {
            Some(b) => b,
            None => {
                progress(&format!(
                    "building parent {}/{} {}{}",
                    i + 1,
                    parents.len(),
                    &commit[..commit.len().min(10)],
                    if previous.is_some() {
                        " (incremental)"
                    } else {
                        ""
                    }
                ));
                let report = crate::build(&req, embedder, observer)?;
                let path = PathBuf::from(&report.bundle_path);
                let bytes = serde_json::to_vec(&path).unwrap_or_default();
                std::fs::write(&record, bytes).map_err(|e| BuildError::Io {
                    path: record.clone(),
                    source: e,
                })?;
                path
            }
        };
        built.insert(commit.to_string(), bundle.clone());
        previous = Some(bundle);
    }
    Ok(built)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_and_cherry_pick_notes_are_not_the_query() {
        let m = "Fix the retry loop\n\nIt retried forever when the pool was closed.\nSee #12.\n\nSigned-off-by: A <a@x>\nCo-authored-by: B <b@x>\n";
        assert_eq!(
            query_text(m),
            "Fix the retry loop\n\nIt retried forever when the pool was closed.\nSee #12."
        );
        let m = "Fix: a subject with a colon\n\n(cherry picked from commit abc)\n";
        assert_eq!(query_text(m), "Fix: a subject with a colon");
        // A subject alone is never taken for a trailer.
        assert_eq!(query_text("docs: typo"), "docs: typo");
        // A body paragraph that merely contains a colon stays.
        let m = "Subject line here\n\nNote: this matters because reasons.\nAnd more text.";
        assert_eq!(query_text(m), m);
    }

    #[test]
    fn bots_are_told_apart_from_people() {
        assert!(is_bot(
            "dependabot[bot]",
            "49699333+dependabot[bot]@users.noreply.github.com"
        ));
        assert!(is_bot("renovate-bot", "x@y"));
        assert!(!is_bot("Andrew Gallant", "jamslam@gmail.com"));
    }
}
