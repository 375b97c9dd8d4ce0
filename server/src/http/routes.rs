//! One function per endpoint. Each returns a response or an [`ApiError`];
//! none can panic on what a client sends.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use serde::Serialize;
use shelf_formats::Digest;

use super::error::{ApiError, Body, json};
use super::{Api, Outcome, params};
use crate::query_embedder::{QueryEmbedError, QueryEmbedder};
use crate::reload::CheckReport;
use crate::search::{self, Mode, ResultChunk, ResultFile, SearchError};
use crate::state::{ErrorEvent, Readiness, SwapEvent};

#[derive(Serialize)]
struct BundleRef<'a> {
    digest: Digest,
    tag: Option<&'a str>,
    repository: &'a str,
    commit: &'a str,
}

#[derive(Serialize)]
struct Timings {
    embed: f64,
    search: f64,
}

#[derive(Serialize)]
struct SearchResponse<'a> {
    query: &'a str,
    k: usize,
    path: Option<&'a str>,
    language: &'a [String],
    mode: Mode,
    group: &'static str,
    bundle: BundleRef<'a>,
    took_ms: f64,
    timings_ms: Timings,
    #[serde(skip_serializing_if = "Option::is_none")]
    results: Option<Vec<ResultChunk>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    files: Option<Vec<ResultFile>>,
}

/// Embeds the query's windows (one, unless it is longer than the model
/// reads) concurrently, so they share model calls.
async fn embed_windows(
    embedder: &QueryEmbedder,
    query: &str,
) -> Result<(Vec<Vec<f32>>, usize), QueryEmbedError> {
    let windows = search::windows(embedder.embedder(), query, search::MAX_WINDOWS);
    let answers =
        futures_util::future::join_all(windows.into_iter().map(|w| embedder.embed(w))).await;
    let mut vectors = Vec::with_capacity(answers.len());
    let mut batch = 0;
    for a in answers {
        let a = a?;
        batch = batch.max(a.batch);
        vectors.push(a.vector);
    }
    Ok((vectors, batch))
}

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
    let params = if req.method() == Method::GET {
        params::from_query_string(req.uri().query(), &api.limits, api.default_k)?
    } else {
        let body = read_json_body(api, req).await?;
        params::from_json(&body, &api.limits, api.default_k)?
    };
    let embedder = api.embedder.get().ok_or_else(|| not_ready(api))?;
    // The snapshot this request finishes on, whatever is swapped meanwhile.
    let snapshot = api.state.live().ok_or_else(|| not_ready(api))?;
    let started = Instant::now();
    let (vectors, batch) = if params.mode.needs_vectors() {
        embed_windows(embedder, &params.query)
            .await
            .map_err(|e| match e {
                QueryEmbedError::Busy => {
                    rejected("overloaded");
                    ApiError::unavailable(
                        "overloaded",
                        "the embedding queue is full; retry shortly",
                        1,
                    )
                }
                QueryEmbedError::Failed(m) => ApiError::internal(m),
            })?
    } else {
        (Vec::new(), 0)
    };
    let embed_time = started.elapsed();
    let t = Instant::now();
    let bundle = &snapshot.bundle;
    let ranking = search::rank(
        bundle,
        &params.query,
        &vectors,
        params.mode,
        &params.filter,
        search::depth(params.k, params.by_file),
    )
    .map_err(|e| match e {
        SearchError::NoLexicalIndex => ApiError::bad_request(e.to_string()),
        SearchError::Bundle(_) | SearchError::Embed(_) => ApiError::internal(e.to_string()),
    })?;
    let internal = |e: crate::live::OpenError| ApiError::internal(e.to_string());
    let (results, files) = if params.by_file {
        let files = search::file_results(bundle, &ranking.chunks, params.k).map_err(internal)?;
        (None, Some(files))
    } else {
        let chunks = search::chunk_results(bundle, &ranking.chunks, params.k).map_err(internal)?;
        (Some(chunks), None)
    };
    let search_time = t.elapsed();
    let m = &api.state.metrics;
    if params.mode.needs_vectors() {
        m.stage_seconds
            .with_label_values(&["embed"])
            .observe(embed_time.as_secs_f64());
        m.embed_batch.set(batch as i64);
    }
    m.stage_seconds
        .with_label_values(&["search"])
        .observe(search_time.as_secs_f64());
    let count = results.as_ref().map_or(0, Vec::len) + files.as_ref().map_or(0, Vec::len);
    let body = SearchResponse {
        query: &params.query,
        k: params.k,
        path: params.path.as_deref(),
        language: &params.languages,
        mode: ranking.mode,
        group: if params.by_file { "file" } else { "chunk" },
        bundle: BundleRef {
            digest: bundle.digest,
            tag: snapshot.tag.as_deref(),
            repository: &bundle.manifest.source.repository,
            commit: &bundle.manifest.source.commit,
        },
        took_ms: ms(started.elapsed()),
        timings_ms: Timings {
            embed: if params.mode.needs_vectors() {
                ms(embed_time)
            } else {
                0.0
            },
            search: ms(search_time),
        },
        results,
        files,
    };
    Ok((
        json(StatusCode::OK, &body)?,
        Outcome {
            results: Some(count),
        },
    ))
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
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
    let (last_swap, last_error) = {
        let s = api.state.status();
        (s.last_swap.clone(), s.last_error.clone())
    };
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
        last_swap,
        last_error,
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
    let digest = api.state.live().map(|s| s.bundle.digest);
    json(
        code,
        &serde_json::json!({ "status": status, "reason": reason, "digest": digest }),
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
