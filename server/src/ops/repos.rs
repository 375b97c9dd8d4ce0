//! The served repositories as callers see them: typed, so the REST body
//! (`/v1/repos`, `/v1/bundle`), MCP's `list_repositories` (its
//! `structuredContent`, its text and its output schema) and the web page
//! read the same fields.

use std::time::SystemTime;

use schemars::JsonSchema;
use serde::Serialize;
use shelf_search::budget::{Budget, Truncation};

use super::{Api, Args};
use crate::guard::Scope;
use crate::repos::{Origin, Repo};
use crate::state::{Followed, Readiness, Snapshot};

/// The live bundle of a repository.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LiveInfo {
    /// Its digest.
    pub digest: String,
    /// The tag that pointed at it when it was loaded.
    pub tag: Option<String>,
    /// The repository it was built from.
    pub repository: String,
    /// The commit it was built from.
    pub commit: String,
    /// The git ref it was built from.
    #[serde(rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit's time (RFC 3339).
    pub built_at: String,
    /// When it went live here (RFC 3339).
    pub live_since: String,
    /// Seconds it has been live.
    pub age_seconds: u64,
    /// Files indexed.
    pub files: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// The embedding model it was built with.
    pub model: ModelInfo,
    /// Its format, `major.minor`.
    pub format: String,
    /// The search modes it can answer.
    pub search_modes: Vec<String>,
    /// Whether the bundle has its files' texts (format 1.2+): read_file,
    /// grep, definitions and the listing tools need them.
    pub file_texts: bool,
}

/// An embedding model.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ModelInfo {
    /// Its name.
    pub name: String,
    /// Vector dimensions.
    pub dimensions: u32,
}

/// What a repository follows.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct FollowInfo {
    /// The store, as configured.
    pub store: String,
    /// The tag or pattern.
    pub target: String,
}

/// What a tag points at.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TargetInfo {
    /// The tag.
    pub tag: String,
    /// The digest it points at.
    pub digest: String,
}

/// One repository: its readiness and its live bundle.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RepoInfo {
    /// Its name.
    pub name: String,
    /// `ok`, `degraded` or `not_ready`.
    pub status: &'static str,
    /// Why it is not `ok`.
    pub reason: Option<String>,
    /// What it follows (`null`: a bundle file).
    pub follow: Option<FollowInfo>,
    /// Its live bundle (`null` until it has one).
    pub live: Option<LiveInfo>,
    /// What its tag points at.
    pub target: Option<TargetInfo>,
}

/// Every repository the caller may see.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RepoList {
    /// The repositories, by name.
    pub repos: Vec<RepoInfo>,
    /// What was left out by `max_tokens` (absent when nothing was).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
}

/// The live bundle's fields.
pub fn live_info(s: &Snapshot) -> LiveInfo {
    let b = &s.bundle;
    let m = &b.manifest;
    let built =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.source.commit_time.max(0) as u64);
    LiveInfo {
        digest: b.digest.to_string(),
        tag: s.tag.clone(),
        repository: m.source.repository.clone(),
        commit: m.source.commit.clone(),
        git_ref: m.source.git_ref.clone(),
        built_at: humantime::format_rfc3339_seconds(built).to_string(),
        live_since: humantime::format_rfc3339_millis(s.live_since).to_string(),
        age_seconds: s.live_since.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        files: m.counts.files_indexed,
        chunks: m.counts.chunks,
        model: ModelInfo {
            name: m.model.name.clone(),
            dimensions: m.model.dimensions,
        },
        format: format!("{}.{}", m.format_version, m.format_minor),
        search_modes: b.modes().iter().map(|m| m.to_string()).collect(),
        file_texts: b.files().is_some(),
    }
}

/// What a repository follows, if a store.
pub fn follow_info(origin: &Origin) -> Option<FollowInfo> {
    match origin {
        Origin::Store { store, target } => Some(FollowInfo {
            store: store.clone(),
            target: target.clone(),
        }),
        Origin::File { .. } => None,
    }
}

/// A tag target's fields.
pub fn target_info(t: &Followed) -> TargetInfo {
    TargetInfo {
        tag: t.tag.clone(),
        digest: t.digest.to_string(),
    }
}

/// A readiness as `status` and `reason`.
pub fn readiness_fields(r: Readiness) -> (&'static str, Option<String>) {
    match r {
        Readiness::Ok => ("ok", None),
        Readiness::Degraded(why) => ("degraded", Some(why)),
        Readiness::NotReady(why) => ("not_ready", Some(why)),
    }
}

/// One repository's entry.
pub fn repo_info(r: &Repo) -> RepoInfo {
    let (status, reason) = readiness_fields(r.state.readiness());
    RepoInfo {
        name: r.name().to_string(),
        status,
        reason,
        follow: follow_info(&r.origin),
        live: r.state.live().as_deref().map(live_info),
        target: r.state.status().target.as_ref().map(target_info),
    }
}

/// Every repository `scope` may see, with its status and live bundle
/// (`list_repositories`, `GET /v1/repos`), within `max_tokens` when given
/// (REST lists every one unless asked; the MCP tool defaults to
/// [`super::params::LIST_MAX_TOKENS`]).
pub fn repositories(api: &Api, scope: &Scope, args: &Args) -> RepoList {
    let all: Vec<RepoInfo> = api
        .repos
        .visible(scope)
        .iter()
        .map(|r| repo_info(r))
        .collect();
    let Some(max_tokens) = args.int("max_tokens") else {
        return RepoList {
            repos: all,
            truncated: None,
        };
    };
    let mut budget = Budget::new(max_tokens as usize);
    let total = all.len();
    // What a reader sees of one: its name, status and live bundle (about
    // 400 bytes of JSON).
    let mut repos = Vec::new();
    for r in all {
        // The first is always shown: an answer names at least one.
        if !budget.take(r.name.len() + 400) && !repos.is_empty() {
            break;
        }
        repos.push(r);
    }
    let truncated = (repos.len() < total).then(|| Truncation {
        max_tokens: budget.max_tokens(),
        omitted: total - repos.len(),
        cut: false,
        next_start_line: None,
        detail: format!(
            "{} of {total} repositories listed; raise max_tokens",
            repos.len()
        ),
    });
    RepoList { repos, truncated }
}
