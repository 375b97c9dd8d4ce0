//! One function per endpoint. Each returns a response or an [`ApiError`];
//! none can panic on what a client sends. Every endpoint that names
//! repositories shows a caller only those its token may see: an unknown
//! and a forbidden repository get the same answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use shelf_formats::Digest;

use super::error::{ApiError, Body, Code, json};
use super::guard::Scope;
use super::ops::{not_ready, unknown_repo};
use super::{Api, Outcome, args, ops, params};
use crate::reload::CheckReport;
use crate::repos::{Origin, Repo};
use crate::state::{ErrorEvent, Followed, Problem, Readiness, Snapshot, SwapEvent};

/// `GET|POST /v1/search`.
pub(super) async fn search(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(&req, client, "search")?;
    let limits = api.request_limits();
    let asked = if req.method() == Method::GET {
        params::from_query_string(req.uri().query(), &limits)?
    } else {
        let body = read_json_body(api, req).await?;
        params::from_json(&body, &limits)?
    };
    let answer = ops::search(api, &scope, asked).await?;
    Ok((
        json(StatusCode::OK, &answer)?,
        Outcome {
            results: Some(answer.len()),
            query: api.log_queries.then(|| answer.query.clone()),
        },
    ))
}

/// `GET /v1/file`: lines of one file at the bundle's commit.
pub(super) async fn file(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(&req, client, "reading files")?;
    let a = args::from_query(req.uri().query(), args::FILE)?;
    let answer = ops::read_file(api, &scope, &a).await?;
    Ok((json(StatusCode::OK, &answer)?, Outcome::default()))
}

/// `GET /v1/grep`: lines matching a pattern in the files.
pub(super) async fn grep(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(&req, client, "grep")?;
    let a = args::from_query(req.uri().query(), args::GREP)?;
    let answer = ops::grep(api, &scope, &a).await?;
    Ok((
        json(StatusCode::OK, &answer)?,
        Outcome {
            results: Some(answer.matches.len()),
            query: api.log_queries.then(|| answer.pattern.clone()),
        },
    ))
}

/// `GET /v1/definitions`: where a symbol is defined.
pub(super) async fn definitions(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(&req, client, "definitions")?;
    let a = args::from_query(req.uri().query(), args::DEFINITIONS)?;
    let answer = ops::definitions(api, &scope, &a).await?;
    Ok((
        json(StatusCode::OK, &answer)?,
        Outcome {
            results: Some(answer.definitions.len()),
            query: api.log_queries.then(|| answer.name.clone()),
        },
    ))
}

/// Reads a JSON request body within the size and time limits.
pub(super) async fn read_json_body(api: &Api, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let essence = ct
            .to_str()
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            return Err(ApiError::new(
                Code::UnsupportedMediaType,
                "send the search as JSON with `Content-Type: application/json`",
            ));
        }
    }
    let max = api.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            Code::BodyTooLarge,
            format!("the request body is over the {max}-byte limit"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let body = Limited::new(req.into_body(), max).collect();
    match tokio::time::timeout(api.limits.body_timeout, body).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::bad_request(format!(
            "reading the request body failed: {e}"
        ))),
        Err(_) => Err(ApiError::new(
            Code::BodyTimeout,
            format!(
                "the request body did not arrive within {} ms",
                api.limits.body_timeout.as_millis()
            ),
        )),
    }
}

/// The `repo` parameter of a query string (the only one these endpoints
/// take).
fn repo_param(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let mut repo = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "repo" {
            return Err(ApiError::bad_request(format!(
                "unknown parameter '{}'; known: repo",
                name.chars().take(64).collect::<String>()
            )));
        }
        let value = percent_encoding::percent_decode_str(&value.replace('+', " "))
            .decode_utf8()
            .map_err(|_| ApiError::bad_request("parameter 'repo' is not valid UTF-8"))?
            .trim()
            .to_string();
        if repo.replace(value).is_some() {
            return Err(ApiError::bad_request("parameter 'repo' is given twice"));
        }
    }
    Ok(repo.filter(|r| !r.is_empty()))
}

/// The one repository an endpoint is about: the one named, or the only
/// one the caller may see.
fn one_repo(api: &Api, scope: &Scope, named: Option<&str>) -> Result<Arc<Repo>, ApiError> {
    let visible = api.repos.visible(scope);
    match named {
        Some(name) => visible
            .iter()
            .find(|r| r.name() == name)
            .cloned()
            .ok_or_else(|| unknown_repo(name, &visible)),
        None => match visible.as_slice() {
            [one] => Ok(Arc::clone(one)),
            [] => Err(not_ready("no repository is served yet")),
            _ => Err(ApiError::bad_request(
                "this server serves several repositories: name one with ?repo=NAME (see /v1/repos)",
            )),
        },
    }
}

#[derive(Serialize)]
struct LiveInfo<'a> {
    digest: Digest,
    tag: Option<&'a str>,
    repository: &'a str,
    commit: &'a str,
    #[serde(rename = "ref")]
    git_ref: Option<&'a str>,
    built_at: String,
    live_since: String,
    age_seconds: u64,
    files: u64,
    chunks: u64,
    model: ModelInfo<'a>,
    format: String,
    search_modes: &'a [&'a str],
    /// Whether the bundle has its files' texts (format 1.2+): read_file,
    /// grep and definitions need them.
    file_texts: bool,
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    name: &'a str,
    dimensions: u32,
}

fn live_info(s: &Snapshot) -> LiveInfo<'_> {
    let b = &s.bundle;
    let m = &b.manifest;
    let built =
        SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(m.source.commit_time.max(0) as u64);
    LiveInfo {
        digest: b.digest,
        tag: s.tag.as_deref(),
        repository: &m.source.repository,
        commit: &m.source.commit,
        git_ref: m.source.git_ref.as_deref(),
        built_at: humantime::format_rfc3339_seconds(built).to_string(),
        live_since: humantime::format_rfc3339_millis(s.live_since).to_string(),
        age_seconds: s.live_since.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        files: m.counts.files_indexed,
        chunks: m.counts.chunks,
        model: ModelInfo {
            name: &m.model.name,
            dimensions: m.model.dimensions,
        },
        format: format!("{}.{}", m.format_version, m.format_minor),
        search_modes: b.modes(),
        file_texts: b.files().is_some(),
    }
}

#[derive(Serialize)]
struct FollowOut<'a> {
    store: &'a str,
    target: &'a str,
}

fn follow_out(origin: &Origin) -> Option<FollowOut<'_>> {
    match origin {
        Origin::Store { store, target } => Some(FollowOut { store, target }),
        Origin::File { .. } => None,
    }
}

#[derive(Serialize)]
struct BundleResponse<'a> {
    repo: &'a str,
    status: &'static str,
    reason: Option<String>,
    follow: Option<FollowOut<'a>>,
    live: Option<LiveInfo<'a>>,
    target: Option<Followed>,
    loading: Option<Digest>,
    load_problem: Option<Problem>,
    store_problem: Option<Problem>,
    task_problem: Option<Problem>,
    last_swap: Option<SwapEvent>,
    last_error: Option<ErrorEvent>,
    last_check: Option<CheckReport>,
    cached: Vec<Digest>,
}

fn readiness_fields(r: Readiness) -> (&'static str, Option<String>) {
    match r {
        Readiness::Ok => ("ok", None),
        Readiness::Degraded(why) => ("degraded", Some(why)),
        Readiness::NotReady(why) => ("not_ready", Some(why)),
    }
}

/// `GET /v1/bundle[?repo=NAME]`: one repository in detail.
pub(super) fn bundle(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let scope = api.search_tokens.check(req.headers(), "bundle info")?;
    let named = repo_param(req.uri().query())?;
    let repo = one_repo(api, &scope, named.as_deref())?;
    let snapshot = repo.state.live();
    let (status, reason) = readiness_fields(repo.state.readiness());
    let status_now = repo.state.status().clone();
    // The cache is shared: a scoped caller sees only this repository's
    // digests in it.
    let cached = match scope {
        Scope::All => api.cache.cached(),
        Scope::Only(_) => {
            let own = [
                snapshot.as_ref().map(|s| s.bundle.digest),
                status_now.target.as_ref().map(|t| t.digest),
                status_now.loading,
            ];
            api.cache
                .cached()
                .into_iter()
                .filter(|d| own.contains(&Some(*d)))
                .collect()
        }
    };
    let body = BundleResponse {
        repo: repo.name(),
        status,
        reason,
        follow: follow_out(&repo.origin),
        live: snapshot.as_deref().map(live_info),
        target: status_now.target,
        loading: status_now.loading,
        load_problem: status_now.load_problem,
        store_problem: status_now.store_problem,
        task_problem: repo.state.task_problem(),
        last_swap: status_now.last_swap,
        last_error: status_now.last_error,
        last_check: repo.reloader.as_ref().map(|r| r.last()),
        cached,
    };
    json(StatusCode::OK, &body)
}

#[derive(Serialize)]
struct RepoOut<'a> {
    name: &'a str,
    status: &'static str,
    reason: Option<String>,
    follow: Option<FollowOut<'a>>,
    live: Option<LiveInfo<'a>>,
    target: Option<Followed>,
}

/// `GET /v1/repos`: every repository the caller may see.
pub(super) fn repos(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let scope = api
        .search_tokens
        .check(req.headers(), "the repository list")?;
    if let Some(q) = req.uri().query().filter(|q| !q.is_empty()) {
        return Err(ApiError::bad_request(format!(
            "/v1/repos takes no parameters, got '{}'",
            q.chars().take(64).collect::<String>()
        )));
    }
    json(StatusCode::OK, &repo_list(api, &scope))
}

/// Every repository `scope` may see, with its status and live bundle: the
/// body of `/v1/repos` and of MCP's `list_repositories`.
pub(super) fn repo_list(api: &Api, scope: &Scope) -> serde_json::Value {
    let visible = api.repos.visible(scope);
    let snapshots: Vec<Option<Arc<Snapshot>>> = visible.iter().map(|r| r.state.live()).collect();
    let list: Vec<RepoOut<'_>> = visible
        .iter()
        .zip(&snapshots)
        .map(|(r, snapshot)| {
            let (status, reason) = readiness_fields(r.state.readiness());
            RepoOut {
                name: r.name(),
                status,
                reason,
                follow: follow_out(&r.origin),
                live: snapshot.as_deref().map(live_info),
                target: r.state.status().target.clone(),
            }
        })
        .collect();
    serde_json::json!({ "repos": list })
}

/// `POST /v1/admin/reload[?repo=NAME]`: check the followed tags now;
/// answers with what each check found and did.
pub(super) async fn reload(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if api.admin_tokens.is_empty() {
        return Err(ApiError::new(
            Code::AdminDisabled,
            "the admin API is off: start the server with an admin token (SHELF_ADMIN_TOKEN or serve.admin_token_file)",
        ));
    }
    api.admin_tokens.check(req.headers(), "the admin API")?;
    let named = repo_param(req.uri().query())?;
    let all = api.repos.visible(&Scope::All);
    let nothing = || {
        ApiError::new(
            Code::NothingToFollow,
            "this server serves bundle files (--bundle) and follows no tag",
        )
    };
    let chosen: Vec<Arc<Repo>> = match &named {
        Some(name) => vec![one_repo(api, &Scope::All, Some(name))?],
        None => all
            .iter()
            .filter(|r| r.reloader.is_some())
            .cloned()
            .collect(),
    };
    if chosen.is_empty() {
        return Err(nothing());
    }
    let checks = chosen.iter().map(|r| async move {
        let report = match &r.reloader {
            Some(reloader) => Some(reloader.check_now().await),
            None => None,
        };
        (r.name().to_string(), report)
    });
    let reports = futures_util::future::join_all(checks).await;
    // One repository (named, or the only one): its report, as a
    // one-repository server always answered.
    if let [(_, report)] = reports.as_slice() {
        return match report {
            Some(report) => json(StatusCode::OK, report),
            None => Err(nothing()),
        };
    }
    let by_repo: std::collections::BTreeMap<String, CheckReport> = reports
        .into_iter()
        .filter_map(|(name, report)| Some((name, report?)))
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "repos": by_repo }))
}

/// `GET /healthz`: the process is alive and answering.
pub(super) fn healthz() -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 while at least one repository is live (`ok` when
/// every one is at its tag's target, else `degraded` with the reason), 503
/// when none can be served. Unauthenticated, so it names repositories only
/// to a caller with a valid search token (and only those it may see).
pub(super) fn readyz(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let (scope, names) = match api.search_tokens.scope_of(req.headers()) {
        Some(scope) => (scope, true),
        None => (Scope::All, false),
    };
    let overall = api.repos.readiness(&scope, names);
    let code = if overall.status == "not_ready" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut body = serde_json::json!({
        "status": overall.status,
        "reason": overall.reason,
        "repositories": overall.repositories,
        "live": overall.live,
    });
    // A one-repository server also says which bundle and target.
    if let [one] = api.repos.visible(&Scope::All).as_slice() {
        body["digest"] = serde_json::json!(one.state.live_digest());
        body["target"] = serde_json::json!(one.state.status().target.as_ref().map(|t| t.digest));
    }
    json(code, &body)
}

/// `GET /metrics`: Prometheus text format. Its `repo` labels name every
/// repository, so once some search token is limited to some repositories
/// it answers only an unscoped search token or an admin token.
pub(super) fn metrics(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if api.search_tokens.any_scoped() {
        let admin =
            !api.admin_tokens.is_empty() && api.admin_tokens.scope_of(req.headers()).is_some();
        let unscoped = admin
            || matches!(
                api.search_tokens.check(req.headers(), "/metrics")?,
                Scope::All
            );
        if !unscoped {
            return Err(ApiError::new(
                Code::Forbidden,
                "/metrics names every repository: it needs a search token without a repository scope, or an admin token",
            ));
        }
    }
    api.repos.refresh_gauges();
    let body = api
        .repos
        .metrics
        .render()
        .map_err(|e| ApiError::internal(format!("rendering metrics: {e}")))?;
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::Metrics::content_type()),
    );
    Ok(response)
}
