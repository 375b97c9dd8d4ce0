//! What a caller can ask, whatever the transport: search, read a file,
//! grep, find definitions. Each takes the caller's [`Scope`] and checked
//! arguments and returns the answer or an [`ApiError`]; the REST routes
//! and the MCP tools are thin wrappers around these, so both transports
//! share one pipeline, one admission queue and one set of limits.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use hyper::body::Incoming;
use serde_json::{Map, Value};
use shelf_search::files::{
    DEFAULT_GREP_LIMIT, DefinitionsAnswer, DefinitionsRequest, FileAnswer, FileError, FileRequest,
    GrepAnswer, GrepRequest,
};
use shelf_search::{Answer, EncodeError, SearchError, Target};

use super::error::{ApiError, Code};
use super::guard::Scope;
use super::{Api, args, params};
use crate::repos::Repo;
use crate::state::{Readiness, Snapshot};

/// Repositories picked for a request, each with the snapshot it finishes on.
pub(super) type Picked = Vec<(Arc<Repo>, Arc<Snapshot>)>;

pub(super) fn not_ready(why: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(Code::NotReady, format!("not ready to search: {why}"), 2)
}

/// The same answer for a repository that does not exist and one the
/// caller may not see.
pub(super) fn unknown_repo(name: &str, visible: &[Arc<Repo>]) -> ApiError {
    let shown: String = name.chars().take(128).collect();
    let known = if visible.is_empty() {
        "none".to_string()
    } else {
        visible
            .iter()
            .map(|r| r.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    ApiError::new(
        Code::UnknownRepository,
        format!("unknown repository '{shown}'; this server serves: {known} (see /v1/repos)"),
    )
}

/// The live repositories a request asks: those named (each must be
/// visible and live), or every visible live one.
pub(super) fn pick(api: &Api, scope: &Scope, named: &[String]) -> Result<Picked, ApiError> {
    let visible = api.repos.visible(scope);
    if !api.repos.model_loaded() {
        return Err(not_ready("loading the embedding model"));
    }
    if named.is_empty() {
        let live: Picked = visible
            .iter()
            .filter_map(|r| Some((Arc::clone(r), r.state.live()?)))
            .collect();
        if live.is_empty() {
            let why = api
                .repos
                .readiness(scope, true)
                .reason
                .unwrap_or_else(|| "no bundle is live yet".into());
            return Err(not_ready(why));
        }
        return Ok(live);
    }
    let mut picked: Picked = Vec::new();
    for name in named {
        if picked.iter().any(|(r, _)| r.name() == name) {
            continue;
        }
        let Some(repo) = visible.iter().find(|r| r.name() == name) else {
            return Err(unknown_repo(name, &visible));
        };
        let Some(snapshot) = repo.state.live() else {
            let why = match repo.state.readiness() {
                Readiness::NotReady(why) => why,
                _ => "no bundle is live yet".into(),
            };
            return Err(not_ready(format!("repository '{name}': {why}")));
        };
        picked.push((Arc::clone(repo), snapshot));
    }
    Ok(picked)
}

fn targets(picked: &Picked) -> Vec<Target<'_>> {
    picked
        .iter()
        .map(|(repo, snapshot)| Target {
            repo: repo.name(),
            bundle: &snapshot.bundle,
            tag: snapshot.tag.as_deref(),
        })
        .collect()
}

impl Api {
    /// Counts a refused request by reason.
    pub(super) fn rejected(&self, reason: &str) {
        self.repos
            .metrics
            .rejected
            .with_label_values(&[reason])
            .inc();
    }

    /// The gate of every query endpoint: the client's rate, then its
    /// token; the scope the token may see.
    pub(super) fn enter(
        &self,
        req: &Request<Incoming>,
        client: SocketAddr,
        what: &str,
    ) -> Result<Scope, ApiError> {
        if let Some(limit) = &self.rate_limit {
            limit
                .check(client.ip())
                .inspect_err(|_| self.rejected("rate_limited"))?;
        }
        self.search_tokens
            .check(req.headers(), what)
            .inspect_err(|_| self.rejected("unauthorized"))
    }

    /// Runs `work` on the blocking pool inside an admission slot.
    async fn admitted<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot = self
            .admission
            .enter()
            .await
            .inspect_err(|_| self.rejected("overloaded"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(format!("the request's task failed: {e}")))
    }
}

/// One search, ranked across the repositories asked.
pub(super) async fn search(
    api: &Api,
    scope: &Scope,
    asked: params::Search,
) -> Result<Answer, ApiError> {
    let engine = api
        .engine
        .get()
        .ok_or_else(|| not_ready("loading the embedding model"))?
        .clone();
    // The snapshots this request finishes on, whatever is swapped meanwhile.
    let picked = pick(api, scope, &asked.repos)?;
    let request = asked.request;
    let max_tokens = asked.max_tokens;
    // The engine blocks while the model's workers embed the query.
    let answered = api
        .admitted(move || {
            let mut answer = engine.answer(&targets(&picked), &request)?;
            if let Some(max) = max_tokens {
                answer.fit(max);
            }
            Ok::<_, SearchError>(answer)
        })
        .await?;
    let answer = answered.map_err(|e| match e {
        SearchError::NoLexicalIndex => ApiError::bad_request(e.to_string()),
        SearchError::Encode(EncodeError::Busy) => {
            api.rejected("overloaded");
            ApiError::unavailable(
                Code::Overloaded,
                "the embedding queue is full; retry shortly",
                1,
            )
        }
        SearchError::Encode(EncodeError::Failed(_)) | SearchError::Bundle(_) => {
            ApiError::internal(e.to_string())
        }
    })?;
    let m = &api.repos.metrics;
    if answer.mode.needs_vectors() {
        m.stage_seconds
            .with_label_values(&["embed"])
            .observe(answer.embed_time().as_secs_f64());
        m.embed_batch.set(answer.embed_batch as i64);
    }
    m.stage_seconds
        .with_label_values(&["search"])
        .observe(answer.search_time().as_secs_f64());
    Ok(answer)
}

fn file_error(e: FileError) -> ApiError {
    let code = match &e {
        FileError::BadPath { .. } => Code::BadPath,
        FileError::NotFound(_) => Code::NoSuchFile,
        FileError::Ambiguous { .. } => Code::AmbiguousPath,
        FileError::NoFileTexts { .. } => Code::NoFileTexts,
        FileError::BadRange(_) => Code::BadRange,
        FileError::BadPattern(_) => Code::BadPattern,
        FileError::Damaged(_) => Code::Internal,
    };
    ApiError::new(code, e.to_string())
}

/// Lines of one file at the bundle's commit (`read_file`, `GET /v1/file`).
pub(super) async fn read_file(
    api: &Api,
    scope: &Scope,
    a: &Map<String, Value>,
) -> Result<FileAnswer, ApiError> {
    args::check(a, args::FILE)?;
    let named: Vec<String> = args::text(a, "repo").into_iter().collect();
    let picked = pick(api, scope, &named)?;
    let request = FileRequest {
        path: args::text(a, "path").unwrap_or_default(),
        start_line: args::int(a, "start_line").map(|n| n as u32),
        end_line: args::int(a, "end_line").map(|n| n as u32),
        max_tokens: max_tokens(a, args::FILE_MAX_TOKENS),
    };
    api.admitted(move || shelf_search::files::read_file(&targets(&picked), &request))
        .await?
        .map_err(file_error)
}

/// Lines matching a pattern across the files (`grep`, `GET /v1/grep`).
pub(super) async fn grep(
    api: &Api,
    scope: &Scope,
    a: &Map<String, Value>,
) -> Result<GrepAnswer, ApiError> {
    args::check(a, args::GREP)?;
    let picked = pick(api, scope, &args::names(a, "repo"))?;
    let request = GrepRequest {
        pattern: args::text(a, "pattern").unwrap_or_default(),
        regex: args::flag(a, "regex"),
        ignore_case: args::flag(a, "ignore_case"),
        path: args::text(a, "path"),
        limit: args::int(a, "limit").map_or(DEFAULT_GREP_LIMIT, |n| n as usize),
        max_tokens: max_tokens(a, args::LIST_MAX_TOKENS),
    };
    // Compile first: a bad pattern costs no admission slot.
    let re = shelf_search::files::compile(&request).map_err(file_error)?;
    api.admitted(move || shelf_search::files::grep(&targets(&picked), &request, &re))
        .await?
        .map_err(file_error)
}

/// Where a symbol is defined (`find_definitions`, `GET /v1/definitions`).
pub(super) async fn definitions(
    api: &Api,
    scope: &Scope,
    a: &Map<String, Value>,
) -> Result<DefinitionsAnswer, ApiError> {
    args::check(a, args::DEFINITIONS)?;
    let picked = pick(api, scope, &args::names(a, "repo"))?;
    let request = DefinitionsRequest {
        name: args::text(a, "name").unwrap_or_default(),
        limit: args::int(a, "limit").map_or(DEFAULT_GREP_LIMIT, |n| n as usize),
        max_tokens: max_tokens(a, args::LIST_MAX_TOKENS),
    };
    api.admitted(move || shelf_search::files::definitions(&targets(&picked), &request))
        .await?
        .map_err(file_error)
}

fn max_tokens(a: &Map<String, Value>, default: usize) -> usize {
    args::int(a, "max_tokens").map_or(default, |n| n as usize)
}
