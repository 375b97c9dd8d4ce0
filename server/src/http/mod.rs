//! The HTTP API (docs/api.md): hyper 1 over tokio, HTTP/1.1 with
//! keep-alive, no framework. A request is a function of the live snapshot
//! it loads once; limits are set here, at the edge. The REST routes
//! (`routes`) call the operations (`crate::ops`); `POST /mcp` hands the
//! body to the MCP HTTP transport (`crate::mcp::http`).

pub use routes::read_json_body;

mod routes;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use http::{Method, Request, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use crate::error::{ApiError, Body, Code};
pub use crate::guard::{Scope, Tokens};
pub use crate::ops::Api;

/// Largest request head (request line and headers) accepted; longer heads
/// get 431 and the connection is closed.
pub const MAX_HEAD_BYTES: usize = 12 << 10;
/// hyper's read buffer: above the head limit, so the limit is what
/// decides, not where a read happened to end.
const READ_BUFFER_BYTES: usize = 16 << 10;

/// The route a request is for: a fixed set, so metrics stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Search,
    File,
    Grep,
    Definitions,
    Files,
    Outline,
    References,
    Related,
    Changes,
    Mcp,
    Bundle,
    Repos,
    Reload,
    Healthz,
    Readyz,
    Metrics,
    /// The web pages and their assets (crate::web).
    Web,
    NotFound,
}

impl Route {
    fn of(path: &str) -> Self {
        match path {
            "/v1/search" => Route::Search,
            "/v1/file" => Route::File,
            "/v1/grep" => Route::Grep,
            "/v1/definitions" => Route::Definitions,
            "/v1/files" => Route::Files,
            "/v1/outline" => Route::Outline,
            "/v1/references" => Route::References,
            "/v1/related" => Route::Related,
            "/v1/changes" => Route::Changes,
            "/mcp" => Route::Mcp,
            "/v1/bundle" => Route::Bundle,
            "/v1/repos" => Route::Repos,
            "/v1/admin/reload" => Route::Reload,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            p if crate::web::serves(p) => Route::Web,
            _ => Route::NotFound,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Search => "search",
            Route::File => "file",
            Route::Grep => "grep",
            Route::Definitions => "definitions",
            Route::Files => "files",
            Route::Outline => "outline",
            Route::References => "references",
            Route::Related => "related",
            Route::Changes => "changes",
            Route::Mcp => "mcp",
            Route::Bundle => "bundle",
            Route::Repos => "repos",
            Route::Reload => "reload",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::Web => "web",
            Route::NotFound => "not_found",
        }
    }

    fn allows(self, method: &Method) -> Result<(), ApiError> {
        let allow = match self {
            Route::Search => "GET, POST",
            Route::Reload | Route::Mcp => "POST",
            // Each page says which methods it takes.
            Route::NotFound | Route::Web => return Ok(()),
            _ => "GET, HEAD",
        };
        let ok = match self {
            Route::Search => method == Method::GET || method == Method::POST,
            Route::Reload | Route::Mcp => method == Method::POST,
            _ => method == Method::GET || method == Method::HEAD,
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError {
                allow: Some(allow),
                ..ApiError::new(
                    Code::MethodNotAllowed,
                    format!("{method} is not allowed here; use {allow}"),
                )
            })
        }
    }
}

/// What a handler reports for the access log.
#[derive(Debug, Default)]
struct Outcome {
    results: Option<usize>,
    /// The query text, only when `--log-queries` asked for it.
    query: Option<String>,
}

/// Answers one request on `api`. Never fails and never panics outward:
/// errors and panics become JSON error responses, and every request is
/// counted, timed and logged once.
pub async fn handle(api: Arc<Api>, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
    api.handle(req, client).await
}

impl Api {
    async fn handle(self: Arc<Self>, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let route = match Route::of(req.uri().path()) {
            Route::Web if !self.web => Route::NotFound,
            route => route,
        };
        let method = req.method().clone();
        let m = &self.repos.metrics;
        m.in_flight.inc();
        let work = AssertUnwindSafe(dispatch(&self, route, req, client)).catch_unwind();
        let answered = tokio::time::timeout(self.limits.request_timeout, work).await;
        m.in_flight.dec();
        let (response, outcome) = match answered {
            Ok(Ok(Ok((response, outcome)))) => (response, outcome),
            Ok(Ok(Err(e))) => (e.into_response(), Outcome::default()),
            Ok(Err(_panic)) => {
                tracing::error!(
                    route = route.label(),
                    "a request handler panicked; answered 500"
                );
                (
                    ApiError::internal(
                        "the server hit a bug answering this request; it was logged",
                    )
                    .into_response(),
                    Outcome::default(),
                )
            }
            Err(_) => (
                ApiError::unavailable(
                    Code::Timeout,
                    format!(
                        "the request took longer than {} ms",
                        self.limits.request_timeout.as_millis()
                    ),
                    1,
                )
                .into_response(),
                Outcome::default(),
            ),
        };
        let status = response.status();
        let elapsed = started.elapsed();
        let labels = [route.label(), status.as_str()];
        m.requests.with_label_values(&labels).inc();
        m.request_seconds
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
        if route != Route::Healthz && route != Route::Metrics {
            tracing::info!(
                target: "shelf::access",
                client = %client.ip(),
                method = %method,
                route = route.label(),
                status = status.as_u16(),
                latency_ms = elapsed.as_secs_f64() * 1e3,
                results = outcome.results,
                query = outcome.query,
                "request"
            );
        }
        response
    }
}

async fn dispatch(
    api: &Api,
    route: Route,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    route.allows(req.method())?;
    let plain = |r: Result<Response<Body>, ApiError>| r.map(|r| (r, Outcome::default()));
    match route {
        Route::Search => routes::search(api, req, client).await,
        Route::File => routes::file(api, req, client).await,
        Route::Grep => routes::grep(api, req, client).await,
        Route::Definitions => routes::definitions(api, req, client).await,
        Route::Files => routes::files(api, req, client).await,
        Route::Outline => routes::outline(api, req, client).await,
        Route::References => routes::references(api, req, client).await,
        Route::Related => routes::related(api, req, client).await,
        Route::Changes => routes::changes(api, req, client).await,
        Route::Mcp => plain(crate::mcp::http::post(api, req, client).await),
        Route::Bundle => plain(routes::bundle(api, &req)),
        Route::Repos => plain(routes::repos(api, &req)),
        Route::Reload => plain(routes::reload(api, &req).await),
        Route::Healthz => plain(routes::healthz()),
        Route::Readyz => plain(routes::readyz(api, &req)),
        Route::Metrics => plain(routes::metrics(api, &req)),
        Route::Web => plain(crate::web::handle(api, req, client).await),
        Route::NotFound => Err(ApiError::new(
            Code::NotFound,
            format!(
                "no such endpoint '{}'; see docs/api.md (/v1/search, /v1/file, /v1/grep, /v1/definitions, /v1/files, /v1/outline, /v1/references, /v1/related, /v1/changes, /v1/repos, /v1/bundle, /mcp, /healthz, /readyz, /metrics)",
                req.uri().path().chars().take(128).collect::<String>()
            ),
        )),
    }
}

/// Open connections per client address, so one address cannot take the
/// whole `max_connections` and starve the others.
#[derive(Debug, Default)]
struct PerClient {
    open: std::sync::Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection counted against its address; uncounted on drop.
struct ClientSlot {
    table: Arc<PerClient>,
    ip: IpAddr,
}

impl PerClient {
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            table: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Serves `api` on `listener` until `shutdown` resolves, then stops
/// accepting and gives in-flight requests up to the drain timeout.
///
/// Connections: at most `max_connections` at once and
/// `max_connections_per_client` from one address; more are closed as they
/// arrive. A connection that does not send a complete request head within
/// `header_timeout` is closed without an answer, and the same timer closes
/// a keep-alive connection left idle that long (hyper starts it whenever it
/// waits for the next request).
pub async fn serve(listener: TcpListener, api: Arc<Api>, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let connections = Arc::new(Semaphore::new(api.limits.max_connections));
    let per_client = Arc::new(PerClient::default());
    let header_timeout = api.limits.header_timeout;
    let drain = api.limits.drain_timeout;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, client) = match accepted {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off, do not spin.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(client_slot) =
            per_client.enter(client.ip(), api.limits.max_connections_per_client)
        else {
            api.repos
                .metrics
                .rejected
                .with_label_values(&["too_many_connections_from_client"])
                .inc();
            drop(stream);
            continue;
        };
        let Ok(slot) = Arc::clone(&connections).try_acquire_owned() else {
            api.repos
                .metrics
                .rejected
                .with_label_values(&["too_many_connections"])
                .inc();
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let api = Arc::clone(&api);
        let service = service_fn(move |req| {
            let api = Arc::clone(&api);
            async move { Ok::<_, Infallible>(handle(api, req, client).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_header_size(MAX_HEAD_BYTES)
            .max_buf_size(READ_BUFFER_BYTES)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(client = %client, error = %e, "connection ended with an error");
            }
            drop((slot, client_slot));
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections drained"),
        () = tokio::time::sleep(drain) => tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            "drain timeout: closing the remaining connections"
        ),
    }
}
