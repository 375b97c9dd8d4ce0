//! The history stage: the repository's own past as a bundle member
//! (`history.bin` and its lexical index, bundle format 1.4). A report is
//! often like an earlier one, and the files an earlier change touched are
//! where this one belongs: the query side finds the past commits most like
//! a query and lets them vote for their files.
//!
//! **Which commits** (`commits-v1/N`, the manifest's `settings.history`):
//! among the indexed commit and all its ancestors, the commits that are not
//! merges, not by a bot (dependabot, renovate, … as `shelf eval
//! --from-history` tells them), and whose diff against their first parent
//! (or the empty tree, for a root commit) touches between 1 and
//! [`MAX_FILES`] files and leaves at least one of them in place; of those,
//! the N newest by committer
//! time, ties by object id. Only ancestors: nothing from after the indexed
//! commit can be in its bundle, so a question asked of a commit's parent
//! never finds the commit that answered it. A commit keeps its message
//! (trailers removed, at most [`MAX_MESSAGE_BYTES`]) and the paths its diff
//! added, modified or renamed to, sorted.
//!
//! **Carried forward.** Each commit's entry depends on the commit alone,
//! and the set is "the N best of the ancestors" under one total order. So
//! when the previous bundle's commit P is an ancestor of the commit C being
//! built and was indexed under the same rules, the N best of C's ancestors
//! are the N best of P's N and the commits reachable from C but not from P
//! (`git rev-list C ^P`): only those are read and diffed, and the result
//! is exactly what mining C from scratch gives (tested). Otherwise it is
//! mined from scratch: every ancestor's header is read (cheap) and the
//! newest are diffed until N qualify.
//!
//! A shallow clone does not have the ancestors: the bundle then has no
//! history index (a warning says to fetch the whole history), rather than
//! one that depends on how deep the clone was.

use std::cmp::Reverse;

use git2::{Delta, DiffOptions, Oid, Repository};
use shelf_formats::history::HistoryCommit;

use crate::BuildError;

/// The name and version of the rules above.
pub const RULES: &str = "commits-v1";
/// Commits kept when the settings do not say.
pub const DEFAULT_COMMITS: usize = 1000;
/// Most files a commit may touch and still be kept: a change spread over
/// more (a reformat, a rename of a package) says nothing about where one
/// report belongs.
pub const MAX_FILES: usize = 50;
/// Longest message kept, in bytes (cut at a character boundary).
pub const MAX_MESSAGE_BYTES: usize = 1000;

/// The manifest's `settings.history` for `n` commits (`None`: off).
pub fn kind(n: usize) -> Option<String> {
    (n > 0).then(|| format!("{RULES}/{n}"))
}

/// A previous bundle's history index, to carry forward.
#[derive(Debug, Clone)]
pub struct PreviousHistory {
    /// The commit that bundle indexed.
    pub commit: String,
    /// Its `settings.history`.
    pub kind: Option<String>,
    /// Its commits, newest first.
    pub commits: Vec<HistoryCommit>,
}

/// How the index was made, for the build report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Collected {
    /// Commits read and diffed in this build.
    pub mined: usize,
    /// Commits taken from the previous bundle.
    pub carried: usize,
}

/// The order of the index: newest first, ties by object id.
fn order_key(c: &HistoryCommit) -> (Reverse<i64>, &[u8]) {
    (Reverse(c.time), c.id.as_slice())
}

fn git_err(repo: &Repository, e: &git2::Error) -> BuildError {
    BuildError::Repository {
        path: repo.path().to_path_buf(),
        detail: format!("reading history: {}", e.message()),
    }
}

/// The history index of `commit` in `repo` under `limit` commits, carried
/// forward from `previous` when its commit is an ancestor and its rules
/// are these; `None` when the clone is shallow.
pub fn collect(
    repo: &Repository,
    commit: &str,
    limit: usize,
    previous: Option<&PreviousHistory>,
) -> Result<Option<(Vec<HistoryCommit>, Collected)>, BuildError> {
    if limit == 0 {
        return Ok(Some((Vec::new(), Collected::default())));
    }
    if repo.is_shallow() {
        tracing::warn!(
            "the clone is shallow: the bundle gets no history index (fetch the whole history, e.g. actions/checkout with fetch-depth: 0)"
        );
        return Ok(None);
    }
    let err = |e: git2::Error| git_err(repo, &e);
    let head = Oid::from_str(commit).map_err(err)?;
    let same_rules = |p: &&PreviousHistory| p.kind == kind(limit);
    let base = previous.filter(same_rules).and_then(|p| {
        let p_oid = Oid::from_str(&p.commit).ok()?;
        let ancestor = p_oid == head || repo.graph_descendant_of(head, p_oid).ok()?;
        ancestor.then_some((p_oid, p))
    });
    let mut walk = repo.revwalk().map_err(err)?;
    walk.push(head).map_err(err)?;
    if let Some((p_oid, _)) = base {
        walk.hide(p_oid).map_err(err)?;
    }
    // Every candidate's header: (time, id), merges left out.
    let mut candidates: Vec<(Reverse<i64>, Oid)> = Vec::new();
    for oid in walk {
        let oid = oid.map_err(err)?;
        let c = repo.find_commit(oid).map_err(err)?;
        if c.parent_count() > 1 {
            continue;
        }
        candidates.push((Reverse(c.time().seconds()), oid));
    }
    candidates.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.as_bytes().cmp(b.1.as_bytes())));
    let carried: Vec<HistoryCommit> = base.map(|(_, p)| p.commits.clone()).unwrap_or_default();
    // A new commit older than the N-th carried one cannot enter.
    let floor = (carried.len() >= limit)
        .then(|| carried.last().map(|c| (Reverse(c.time), c.id.clone())))
        .flatten();
    let mut mined = Vec::new();
    for (time, oid) in candidates {
        if mined.len() >= limit {
            break;
        }
        if let Some((ft, fid)) = &floor
            && (time, oid.as_bytes()) > (*ft, fid.as_slice())
        {
            break;
        }
        if let Some(entry) = entry_of(repo, oid)? {
            mined.push(entry);
        }
    }
    let n_mined = mined.len();
    let fresh: std::collections::HashSet<Vec<u8>> = mined.iter().map(|c| c.id.clone()).collect();
    let mut all = carried;
    all.extend(mined);
    all.sort_by(|a, b| order_key(a).cmp(&order_key(b)));
    all.dedup_by(|a, b| a.id == b.id);
    all.truncate(limit);
    let n_carried = all.iter().filter(|c| !fresh.contains(&c.id)).count();
    Ok(Some((
        all,
        Collected {
            mined: n_mined,
            carried: n_carried,
        },
    )))
}

/// A commit's entry, or `None` when the rules leave it out.
fn entry_of(repo: &Repository, oid: Oid) -> Result<Option<HistoryCommit>, BuildError> {
    let err = |e: git2::Error| git_err(repo, &e);
    let commit = repo.find_commit(oid).map_err(err)?;
    let author = commit.author();
    if crate::history::is_bot(author.name().unwrap_or(""), author.email().unwrap_or("")) {
        return Ok(None);
    }
    let tree = commit.tree().map_err(err)?;
    let parent_tree = match commit.parent_count() {
        0 => None,
        _ => Some(commit.parent(0).map_err(err)?.tree().map_err(err)?),
    };
    let mut opts = DiffOptions::new();
    opts.skip_binary_check(true);
    let diff = repo
        .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), Some(&mut opts))
        .map_err(err)?;
    let touched = diff.deltas().len();
    if touched == 0 || touched > MAX_FILES {
        return Ok(None);
    }
    let mut files: Vec<String> = diff
        .deltas()
        .filter(|d| d.status() != Delta::Deleted)
        .filter_map(|d| d.new_file().path()?.to_str().map(str::to_string))
        .collect();
    files.sort();
    files.dedup();
    if files.is_empty() {
        return Ok(None);
    }
    let mut message = crate::history::query_text(&String::from_utf8_lossy(commit.message_bytes()));
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    Ok(Some(HistoryCommit {
        id: oid.as_bytes().to_vec(),
        time: commit.time().seconds(),
        message,
        files,
    }))
}
