//! Reading one commit of a git repository with libgit2: from the object
//! database only, so uncommitted files never leak in and bare repositories
//! work.

use std::path::Path;

use git2::{ErrorCode, ObjectType, Repository, TreeWalkMode, TreeWalkResult};

use crate::BuildError;

/// One path in the commit's tree, before selection.
#[derive(Debug, Clone)]
pub struct TreeEntry {
    /// Repository-relative path with `/` separators.
    pub path: String,
    /// What the tree says it is.
    pub kind: EntryKind,
}

/// Tree entry kinds that matter for indexing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular or executable file: its blob id.
    File(git2::Oid),
    /// A symbolic link (not followed).
    Symlink,
    /// A submodule (a commit in another repository; not followed).
    Submodule,
}

/// The commit being indexed and its tree's entries.
#[derive(Debug)]
pub struct Snapshot {
    /// Repository name recorded in the manifest.
    pub repository: String,
    /// Commit id.
    pub commit: String,
    /// Tree id.
    pub tree: String,
    /// The full ref name when the revision named one.
    pub git_ref: Option<String>,
    /// Committer time, seconds since the epoch.
    pub commit_time: i64,
    /// Every entry, sorted by path.
    pub entries: Vec<TreeEntry>,
}

/// Opens `repo_path` and resolves `rev` to a commit.
pub fn open(
    repo_path: &Path,
    rev: &str,
    name: Option<&str>,
) -> Result<(Repository, Snapshot), BuildError> {
    let repo = Repository::open(repo_path).map_err(|e| BuildError::Repository {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })?;
    if rev == "HEAD" {
        match repo.head() {
            Err(e) if e.code() == ErrorCode::UnbornBranch => {
                return Err(BuildError::EmptyRepository {
                    path: repo_path.to_path_buf(),
                });
            }
            _ => {}
        }
    }
    let snapshot = snapshot(&repo, repo_path, rev, name)?;
    Ok((repo, snapshot))
}

/// Up to `max` first-parent ancestors of `rev`, nearest first (the
/// commits whose bundles a build of `rev` would most likely share files
/// with).
pub fn first_parent_ancestors(
    repo_path: &Path,
    rev: &str,
    max: usize,
) -> Result<Vec<String>, BuildError> {
    let repo = Repository::open(repo_path).map_err(|e| BuildError::Repository {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })?;
    let unknown = || BuildError::UnknownRevision {
        rev: rev.to_string(),
        path: repo_path.to_path_buf(),
    };
    let mut commit = repo
        .revparse_single(rev)
        .and_then(|o| o.peel_to_commit())
        .map_err(|_| unknown())?;
    let mut out = Vec::new();
    while out.len() < max {
        let Ok(parent) = commit.parent(0) else { break };
        out.push(parent.id().to_string());
        commit = parent;
    }
    Ok(out)
}

fn snapshot(
    repo: &Repository,
    repo_path: &Path,
    rev: &str,
    name: Option<&str>,
) -> Result<Snapshot, BuildError> {
    let (object, reference) = repo
        .revparse_ext(rev)
        .map_err(|_| BuildError::UnknownRevision {
            rev: rev.to_string(),
            path: repo_path.to_path_buf(),
        })?;
    let commit = object
        .peel_to_commit()
        .map_err(|_| BuildError::UnknownRevision {
            rev: rev.to_string(),
            path: repo_path.to_path_buf(),
        })?;
    let git_ref = match reference.as_ref().and_then(|r| r.name().ok()) {
        Some(n) => Some(n.to_string()),
        // `HEAD` names the branch it points at, when it points at one.
        None if rev == "HEAD" => repo
            .head()
            .ok()
            .filter(|h| h.is_branch())
            .and_then(|h| h.name().ok().map(str::to_string)),
        None => None,
    };
    let tree = commit.tree().map_err(|e| BuildError::Repository {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })?;
    let mut entries = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            // A non-UTF-8 name cannot be a path in the bundle; record it lossily.
            let path = format!("{dir}{}", String::from_utf8_lossy(entry.name_bytes()));
            tracing::warn!(%path, "skipping tree entry whose name is not UTF-8");
            return TreeWalkResult::Skip;
        };
        let path = format!("{dir}{name}");
        let kind = match (entry.kind(), entry.filemode()) {
            (Some(ObjectType::Tree), _) => return TreeWalkResult::Ok,
            (Some(ObjectType::Commit), _) => EntryKind::Submodule,
            (_, 0o120000) => EntryKind::Symlink,
            (Some(ObjectType::Blob), _) => EntryKind::File(entry.id()),
            _ => return TreeWalkResult::Ok,
        };
        entries.push(TreeEntry { path, kind });
        TreeWalkResult::Ok
    })
    .map_err(|e| BuildError::Repository {
        path: repo_path.to_path_buf(),
        detail: e.message().to_string(),
    })?;
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    let repository = name
        .map(str::to_string)
        .unwrap_or_else(|| repository_name(repo, repo_path));
    Ok(Snapshot {
        repository,
        commit: commit.id().to_string(),
        tree: tree.id().to_string(),
        git_ref,
        commit_time: commit.time().seconds(),
        entries,
    })
}

/// `owner/name` from the origin remote's URL, else the directory's name
/// (without `.git`). Independent of where the clone lives, so two clones of
/// one commit build the same bundle.
fn repository_name(repo: &Repository, path: &Path) -> String {
    let from_url = repo
        .find_remote("origin")
        .ok()
        .and_then(|r| r.url().ok().map(str::to_string))
        .and_then(|url| {
            let trimmed = url
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_string();
            let parts: Vec<&str> = trimmed.rsplit(['/', ':']).take(2).collect();
            (parts.len() == 2 && !parts[0].is_empty() && !parts[1].is_empty())
                .then(|| format!("{}/{}", parts[1], parts[0]))
        });
    from_url.unwrap_or_else(|| {
        let dir = if repo.is_bare() {
            repo.path().to_path_buf()
        } else {
            repo.workdir().unwrap_or(path).to_path_buf()
        };
        dir.file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
            .unwrap_or_else(|| "repository".to_string())
    })
}

/// Reads a file at the commit (for `shelf.toml` and `.shelfignore`).
pub fn read_root_file(repo: &Repository, snapshot: &Snapshot, path: &str) -> Option<Vec<u8>> {
    let entry = snapshot.entries.iter().find(|e| e.path == path)?;
    match entry.kind {
        EntryKind::File(oid) => repo.find_blob(oid).ok().map(|b| b.content().to_vec()),
        _ => None,
    }
}
