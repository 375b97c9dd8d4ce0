//! One function per endpoint. Each returns a response or an [`ApiError`];
//! none can panic on what a client sends. Every endpoint that names
//! repositories shows a caller only those its token may see: an unknown
//! and a forbidden repository get the same answer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use shelf_formats::Digest;

use super::{Api, Outcome};
use crate::error::{ApiError, Body, Code, json};
use crate::guard::Scope;
use crate::ops::params::{self, Param};
use crate::ops::repos::{FollowInfo, LiveInfo, follow_info, live_info, readiness_fields};
use crate::ops::{self, Args, not_ready, unknown_repo};
use crate::reload::CheckReport;
use crate::repos::Repo;
use crate::state::{ErrorEvent, Followed, Problem, SwapEvent};

/// The gate and the query string of a `GET` endpoint: the caller's scope
/// and its arguments checked against the operation's `table`.
fn get_args(
    api: &Api,
    req: &Request<Incoming>,
    client: SocketAddr,
    what: &str,
    table: &[Param],
) -> Result<(Scope, Args), ApiError> {
    let scope = api.enter(req.headers(), client.ip(), what)?;
    let args = params::from_query(req.uri().query(), table, &api.request_limits())?;
    Ok((scope, args))
}

fn answered<T: Serialize>(answer: &T) -> Result<(Response<Body>, Outcome), ApiError> {
    Ok((json(StatusCode::OK, answer)?, Outcome::default()))
}

/// `GET|POST /v1/search`.
pub(super) async fn search(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(req.headers(), client.ip(), "search")?;
    let limits = api.request_limits();
    let args = if req.method() == Method::GET {
        params::from_query(req.uri().query(), params::SEARCH, &limits)?
    } else {
        let body = read_json_body(api, req).await?;
        params::from_body(&body, params::SEARCH, &limits)?
    };
    let answer = ops::search(api, &scope, &args).await?;
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
    let (scope, a) = get_args(api, &req, client, "reading files", params::FILE)?;
    answered(&ops::read_file(api, &scope, &a).await?)
}

/// `GET /v1/grep`: lines matching a pattern in the files.
pub(super) async fn grep(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "grep", params::GREP)?;
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
    let (scope, a) = get_args(api, &req, client, "definitions", params::DEFINITIONS)?;
    let answer = ops::definitions(api, &scope, &a).await?;
    Ok((
        json(StatusCode::OK, &answer)?,
        Outcome {
            results: Some(answer.definitions.len()),
            query: api.log_queries.then(|| answer.name.clone()),
        },
    ))
}

/// `GET /v1/files`: files under a directory or matching a glob.
pub(super) async fn files(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "listing files", params::LIST_FILES)?;
    answered(&ops::list_files(api, &scope, &a).await?)
}

/// `GET /v1/outline`: one file's definitions.
pub(super) async fn outline(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "outline", params::OUTLINE)?;
    answered(&ops::outline(api, &scope, &a).await?)
}

/// `GET /v1/references`: where a symbol is used.
pub(super) async fn references(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "references", params::REFERENCES)?;
    answered(&ops::references(api, &scope, &a).await?)
}

/// `GET /v1/related`: the chunks most like a file's lines.
pub(super) async fn related(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "related chunks", params::RELATED)?;
    answered(&ops::related(api, &scope, &a).await?)
}

/// `GET /v1/changes`: what changed between two indexed versions.
pub(super) async fn changes(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let (scope, a) = get_args(api, &req, client, "changes", params::CHANGES)?;
    answered(&ops::changes(api, &scope, &a).await?)
}

/// Reads a JSON request body within the size and time limits.
pub async fn read_json_body(api: &Api, req: Request<Incoming>) -> Result<Bytes, ApiError> {
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
struct BundleResponse<'a> {
    repo: &'a str,
    status: &'static str,
    reason: Option<String>,
    follow: Option<FollowInfo>,
    live: Option<LiveInfo>,
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
        follow: follow_info(&repo.origin),
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

/// `GET /v1/repos`: every repository the caller may see.
pub(super) fn repos(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let scope = api
        .search_tokens
        .check(req.headers(), "the repository list")?;
    let args = params::from_query(
        req.uri().query(),
        params::REPOSITORIES,
        &api.request_limits(),
    )?;
    json(
        StatusCode::OK,
        &ops::repos::repositories(api, &scope, &args),
    )
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
