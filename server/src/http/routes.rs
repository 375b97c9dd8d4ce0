//! One function per endpoint. Each returns a response or an [`ApiError`];
//! none can panic on what a client sends.

use std::net::SocketAddr;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use shelf_formats::Digest;

use super::error::{ApiError, Body, json};
use super::{Api, Outcome, params};
use shelf_search::{EncodeError, SearchError, Target};

use crate::reload::CheckReport;
use crate::state::{ErrorEvent, Followed, Problem, Readiness, SwapEvent};

fn not_ready(api: &Api) -> ApiError {
    let why = match api.state.readiness() {
        Readiness::NotReady(why) => why,
        _ => "no bundle is live yet".into(),
    };
    ApiError::unavailable("not_ready", format!("not ready to search: {why}"), 2)
}

/// `GET|POST /v1/search`.
pub(super) async fn search(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let rejected = |reason: &str| {
        api.state
            .metrics
            .rejected
            .with_label_values(&[reason])
            .inc()
    };
    if let Some(limit) = &api.rate_limit {
        limit
            .check(client.ip())
            .inspect_err(|_| rejected("rate_limited"))?;
    }
    if !api.search_tokens.is_empty() {
        api.search_tokens
            .check(req.headers(), "search")
            .inspect_err(|_| rejected("unauthorized"))?;
    }
    let _slot = api
        .admission
        .enter()
        .await
        .inspect_err(|_| rejected("overloaded"))?;
    let limits = api.request_limits();
    let request = if req.method() == Method::GET {
        params::from_query_string(req.uri().query(), &limits)?
    } else {
        let body = read_json_body(api, req).await?;
        params::from_json(&body, &limits)?
    };
    let engine = api.engine.get().ok_or_else(|| not_ready(api))?.clone();
    // The snapshot this request finishes on, whatever is swapped meanwhile.
    let snapshot = api.state.live().ok_or_else(|| not_ready(api))?;
    // The engine blocks while the model threads embed the query.
    let answered = tokio::task::spawn_blocking(move || {
        let target = Target {
            bundle: &snapshot.bundle,
            tag: snapshot.tag.as_deref(),
        };
        engine.answer(target, &request)
    })
    .await
    .map_err(|e| ApiError::internal(format!("the search task failed: {e}")))?;
    let answer = answered.map_err(|e| match e {
        SearchError::NoLexicalIndex => ApiError::bad_request(e.to_string()),
        SearchError::Encode(EncodeError::Busy) => {
            rejected("overloaded");
            ApiError::unavailable(
                "overloaded",
                "the embedding queue is full; retry shortly",
                1,
            )
        }
        SearchError::Encode(EncodeError::Failed(_)) | SearchError::Bundle(_) => {
            ApiError::internal(e.to_string())
        }
    })?;
    let m = &api.state.metrics;
    if answer.mode.needs_vectors() {
        m.stage_seconds
            .with_label_values(&["embed"])
            .observe(answer.embed_time().as_secs_f64());
        m.embed_batch.set(answer.embed_batch as i64);
    }
    m.stage_seconds
        .with_label_values(&["search"])
        .observe(answer.search_time().as_secs_f64());
    Ok((
        json(StatusCode::OK, &answer)?,
        Outcome {
            results: Some(answer.len()),
            query: api.log_queries.then(|| answer.query.clone()),
        },
    ))
}

/// Reads a JSON request body within the size and time limits.
async fn read_json_body(api: &Api, req: Request<Incoming>) -> Result<Bytes, ApiError> {
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
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the search as JSON with `Content-Type: application/json`",
            ));
        }
    }
    let max = api.limits.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
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
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the request body did not arrive within {} ms",
                api.limits.body_timeout.as_millis()
            ),
        )),
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
}

#[derive(Serialize)]
struct ModelInfo<'a> {
    name: &'a str,
    dimensions: u32,
}

#[derive(Serialize)]
struct FollowOut<'a> {
    store: &'a str,
    target: &'a str,
}

#[derive(Serialize)]
struct BundleResponse<'a> {
    status: &'static str,
    reason: Option<String>,
    follow: Option<FollowOut<'a>>,
    live: Option<LiveInfo<'a>>,
    target: Option<Followed>,
    loading: Option<Digest>,
    load_problem: Option<Problem>,
    store_problem: Option<Problem>,
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

/// `GET /v1/bundle`.
pub(super) fn bundle(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if !api.search_tokens.is_empty() {
        api.search_tokens.check(req.headers(), "bundle info")?;
    }
    let snapshot = api.state.live();
    let (status, reason) = readiness_fields(api.state.readiness());
    let status_now = api.state.status().clone();
    let live = snapshot.as_ref().map(|s| {
        let b = &s.bundle;
        let m = &b.manifest;
        let built = SystemTime::UNIX_EPOCH
            + std::time::Duration::from_secs(m.source.commit_time.max(0) as u64);
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
        }
    });
    let body = BundleResponse {
        status,
        reason,
        follow: api.follow.as_ref().map(|f| FollowOut {
            store: &f.store,
            target: &f.target,
        }),
        live,
        target: status_now.target,
        loading: status_now.loading,
        load_problem: status_now.load_problem,
        store_problem: status_now.store_problem,
        last_swap: status_now.last_swap,
        last_error: status_now.last_error,
        last_check: api.reloader.as_ref().map(|r| r.last()),
        cached: api.cache.cached(),
    };
    json(StatusCode::OK, &body)
}

/// `POST /v1/admin/reload`: check the followed tag now; answers with what
/// the check found and did.
pub(super) async fn reload(api: &Api, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
    if api.admin_tokens.is_empty() {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "admin_disabled",
            "the admin API is off: start the server with an admin token (SHELF_ADMIN_TOKEN or serve.admin_token_file)",
        ));
    }
    api.admin_tokens.check(req.headers(), "the admin API")?;
    let Some(reloader) = &api.reloader else {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "nothing_to_follow",
            "this server serves one bundle file (--bundle) and follows no tag",
        ));
    };
    let report = reloader.check_now().await;
    json(StatusCode::OK, &report)
}

/// `GET /healthz`: the process is alive and answering.
pub(super) fn healthz() -> Result<Response<Body>, ApiError> {
    json(StatusCode::OK, &serde_json::json!({ "status": "alive" }))
}

/// `GET /readyz`: 200 when a verified bundle is live (`ok` or `degraded`
/// with the reason), 503 when nothing can be served.
pub(super) fn readyz(api: &Api) -> Result<Response<Body>, ApiError> {
    let readiness = api.state.readiness();
    let code = match readiness {
        Readiness::NotReady(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::OK,
    };
    let (status, reason) = readiness_fields(readiness);
    let digest = api.state.live_digest();
    let target = api.state.status().target.as_ref().map(|t| t.digest);
    json(
        code,
        &serde_json::json!({ "status": status, "reason": reason, "digest": digest, "target": target }),
    )
}

/// `GET /metrics`: Prometheus text format.
pub(super) fn metrics(api: &Api) -> Result<Response<Body>, ApiError> {
    let body = api
        .state
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
