//! The HTTP API (docs/api.md): hyper 1 over tokio, HTTP/1.1 with
//! keep-alive, no framework. A request is a function of the live snapshot
//! it loads once; limits are set here, at the edge.

mod args;
mod error;
mod guard;
mod mcp;
mod ops;
mod params;
mod routes;
mod stdio;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
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

pub use error::{ApiError, Body, Code};
pub use guard::{Scope, Tokens};
pub use stdio::serve_stdio;

use shelf_search::{Engine, RequestLimits};

use crate::cache::BundleCache;
use crate::config::{Limits, ServeConfig};
use crate::repos::Repos;
use guard::{Admission, RateLimit};

/// Largest request head (request line and headers) accepted; longer heads
/// get 431 and the connection is closed.
pub const MAX_HEAD_BYTES: usize = 12 << 10;
/// hyper's read buffer: above the head limit, so the limit is what
/// decides, not where a read happened to end.
const READ_BUFFER_BYTES: usize = 16 << 10;

/// Everything a request handler needs, shared by all connections.
#[derive(Debug)]
pub struct Api {
    repos: Arc<Repos>,
    engine: Arc<OnceLock<Engine>>,
    cache: Arc<BundleCache>,
    search_tokens: Tokens,
    admin_tokens: Tokens,
    admission: Admission,
    rate_limit: Option<RateLimit>,
    limits: Limits,
    default_k: usize,
    log_queries: bool,
}

/// The route a request is for: a fixed set, so metrics stay small.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Search,
    File,
    Grep,
    Definitions,
    Mcp,
    Bundle,
    Repos,
    Reload,
    Healthz,
    Readyz,
    Metrics,
    NotFound,
}

impl Route {
    fn of(path: &str) -> Self {
        match path {
            "/v1/search" => Route::Search,
            "/v1/file" => Route::File,
            "/v1/grep" => Route::Grep,
            "/v1/definitions" => Route::Definitions,
            "/mcp" => Route::Mcp,
            "/v1/bundle" => Route::Bundle,
            "/v1/repos" => Route::Repos,
            "/v1/admin/reload" => Route::Reload,
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/metrics" => Route::Metrics,
            _ => Route::NotFound,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Search => "search",
            Route::File => "file",
            Route::Grep => "grep",
            Route::Definitions => "definitions",
            Route::Mcp => "mcp",
            Route::Bundle => "bundle",
            Route::Repos => "repos",
            Route::Reload => "reload",
            Route::Healthz => "healthz",
            Route::Readyz => "readyz",
            Route::Metrics => "metrics",
            Route::NotFound => "not_found",
        }
    }

    fn allows(self, method: &Method) -> Result<(), ApiError> {
        let allow = match self {
            Route::Search => "GET, POST",
            Route::Reload | Route::Mcp => "POST",
            Route::NotFound => return Ok(()),
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

impl Api {
    /// Builds the API over shared state, with `config`'s tokens and
    /// limits. `engine` is filled in once the model has loaded; until then
    /// queries get 503.
    pub fn new(
        config: &ServeConfig,
        repos: Arc<Repos>,
        engine: Arc<OnceLock<Engine>>,
        cache: Arc<BundleCache>,
    ) -> Self {
        let limits = config.limits.clone();
        Self {
            repos,
            engine,
            cache,
            search_tokens: Tokens::search(&config.auth.search_tokens),
            admin_tokens: Tokens::new(config.auth.admin_token.iter()),
            admission: Admission::new(&limits),
            rate_limit: RateLimit::new(&limits),
            limits,
            default_k: config.default_k,
            log_queries: config.log_queries,
        }
    }

    /// The bounds a search request is validated against.
    fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_k: self.limits.max_k,
            max_query_bytes: self.limits.max_query_bytes,
            default_k: self.default_k,
        }
    }

    /// Answers one request. Never fails and never panics outward: errors
    /// and panics become JSON error responses, and every request is
    /// counted, timed and logged once.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Response<Body> {
        let started = Instant::now();
        let route = Route::of(req.uri().path());
        let method = req.method().clone();
        let m = &self.repos.metrics;
        m.in_flight.inc();
        let work = AssertUnwindSafe(self.dispatch(route, req, client)).catch_unwind();
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

    async fn dispatch(
        &self,
        route: Route,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<(Response<Body>, Outcome), ApiError> {
        route.allows(req.method())?;
        let plain = |r: Result<Response<Body>, ApiError>| r.map(|r| (r, Outcome::default()));
        match route {
            Route::Search => routes::search(self, req, client).await,
            Route::File => routes::file(self, req, client).await,
            Route::Grep => routes::grep(self, req, client).await,
            Route::Definitions => routes::definitions(self, req, client).await,
            Route::Mcp => mcp::post(self, req, client).await,
            Route::Bundle => plain(routes::bundle(self, &req)),
            Route::Repos => plain(routes::repos(self, &req)),
            Route::Reload => plain(routes::reload(self, &req).await),
            Route::Healthz => plain(routes::healthz()),
            Route::Readyz => plain(routes::readyz(self, &req)),
            Route::Metrics => plain(routes::metrics(self, &req)),
            Route::NotFound => Err(ApiError::new(
                Code::NotFound,
                format!(
                    "no such endpoint '{}'; see docs/api.md (/v1/search, /v1/file, /v1/grep, /v1/definitions, /v1/repos, /v1/bundle, /mcp, /healthz, /readyz, /metrics)",
                    req.uri().path().chars().take(128).collect::<String>()
                ),
            )),
        }
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
            async move { Ok::<_, Infallible>(api.handle(req, client).await) }
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
