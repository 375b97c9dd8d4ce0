//! `shelf serve` from start to shutdown: listen at once (so `/healthz`
//! answers while loading), load the model once for every repository, start
//! one follower per repository (named, or found under a store root, which
//! is watched), and on shutdown stop accepting and drain in-flight
//! requests.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_search::{Engine, OpenError};
use shelf_store::StoreLocation;
use tokio::net::TcpListener;

use crate::cache::{BundleCache, LoadError};
use crate::config::{ServeConfig, Source};
use crate::follow::Follow;
use crate::http::Api;
use crate::metrics::Metrics;
use crate::query_embedder::{QueryEmbedder, QueryEmbedderOptions};
use crate::reload::{Loader, PROBE_QUERY, StoreSource};
use crate::repos::{Origin, Repo, Repos};
use crate::root::{RootWatcher, Spawner};

/// Why the server could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {error}; choose another address with --listen")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error (in the message, not a source: said once).
        error: std::io::Error,
    },
    /// The cache directory cannot be used.
    #[error("cannot use the cache directory {}: {error}; choose another with --cache", path.display())]
    Cache {
        /// The directory.
        path: std::path::PathBuf,
        /// The OS error (in the message, not a source: said once).
        error: std::io::Error,
    },
    /// The model cannot be loaded.
    #[error(transparent)]
    Model(#[from] shelf_embed::EmbedError),
    /// The one bundle file given cannot be served.
    #[error("cannot serve {}: {detail}", path.display())]
    Bundle {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        detail: String,
    },
    /// Metrics could not be set up (a bug).
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// Anything else from the OS.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// A running server's address, reported as soon as it listens.
pub type OnListening = Box<dyn FnOnce(SocketAddr) + Send>;

/// Who the server answers: HTTP clients on `config.listen`, or one MCP
/// client on this process's stdin and stdout (`shelf mcp`). Everything
/// behind the front (model, repositories, followers, limits) is the same.
pub enum Front {
    /// HTTP on `config.listen`; the address is reported once bound.
    Http(OnListening),
    /// MCP over stdio until stdin closes.
    Stdio,
}

/// Runs the server until `shutdown` resolves (or, on stdio, stdin ends).
pub async fn run(
    config: ServeConfig,
    runtime: Runtime,
    front: Front,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    config.validate()?;
    let listener =
        match &front {
            Front::Http(_) => Some(TcpListener::bind(config.listen).await.map_err(|error| {
                ServeError::Listen {
                    addr: config.listen,
                    error,
                }
            })?),
            Front::Stdio => None,
        };
    let repos = Arc::new(Repos::new(Metrics::new()?));
    let cache = BundleCache::open(&config.cache_dir, config.keep_bundles).map_err(|error| {
        ServeError::Cache {
            path: config.cache_dir.clone(),
            error,
        }
    })?;
    let engine_cell = Arc::new(OnceLock::new());
    let api = Arc::new(Api::new(
        &config,
        Arc::clone(&repos),
        Arc::clone(&engine_cell),
        Arc::clone(&cache),
    ));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stopped = async move {
        let _ = stop_rx.await;
    };
    let mut front_task = match (front, listener) {
        (Front::Http(on_listening), Some(listener)) => {
            let addr = listener.local_addr()?;
            let http = tokio::spawn(crate::http::serve(listener, api, stopped));
            tracing::info!(%addr, "listening on http://{addr}");
            if !addr.ip().is_loopback() && config.auth.search_tokens.is_empty() {
                tracing::warn!(
                    %addr,
                    "serving without search tokens on an address other machines can reach (--allow-anonymous): anyone who reaches it can search the whole code base"
                );
            }
            on_listening(addr);
            http
        }
        _ => tokio::spawn(crate::http::serve_stdio(
            api,
            tokio::io::stdin(),
            tokio::io::stdout(),
            stopped,
        )),
    };

    // The model: loaded once, off the async runtime.
    let started = std::time::Instant::now();
    let options = EmbedderOptions {
        intra_threads: Some(config.embed_threads),
        model: config.model.clone(),
        ..EmbedderOptions::default()
    };
    let embedder = tokio::task::spawn_blocking(move || Embedder::load(&runtime, &options))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??;
    let embedder = QueryEmbedder::start_with(
        Arc::new(embedder),
        QueryEmbedderOptions {
            queue: config.limits.max_queued + config.limits.max_concurrent,
            cache_bytes: config.query_cache_bytes,
            metrics: Some(repos.metrics.clone()),
        },
    )?;
    let probe_embedder = embedder.clone();
    let probe = tokio::task::spawn_blocking(move || probe_embedder.embed_now(&[PROBE_QUERY]))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))??
        .pop()
        .unwrap_or_default();
    tracing::info!(
        model = %embedder.identity().name,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "embedding model loaded"
    );
    let loader = Loader {
        cache: Arc::clone(&cache),
        embedder: embedder.clone(),
        probe: Arc::new(probe),
        expansion_search: config.expansion_search,
        leases: crate::lease::FileLeases::start()?,
    };
    let _scrubber = if config.scrub_interval.is_zero() {
        None
    } else {
        Some(crate::scrub::start(
            loader.clone(),
            Arc::clone(&repos),
            config.scrub_interval,
        )?)
    };
    let _ = engine_cell.set(Engine::new(Arc::new(embedder)));
    repos.set_model_loaded();
    let spawner = Spawner {
        repos: Arc::clone(&repos),
        loader,
        poll: config.poll_interval,
        retry_max: config.retry_max,
    };
    let mut watchers = Vec::new();
    match &config.source {
        Source::Bundle { path, name } => serve_file(&spawner, path, name.as_deref()).await?,
        Source::Stores { root, repos: named } => {
            let follow_of = |origin: &str, follow: &str| {
                Follow::parse(follow).map_err(|e| crate::config::ConfigError::new(origin, e))
            };
            let location_of = |origin: &str, url: &str| {
                StoreLocation::parse(url, config.s3.clone())
                    .map_err(|e| crate::config::ConfigError::new(origin, e.to_string()))
            };
            for spec in named {
                let origin = format!("repository '{}'", spec.name);
                spawner.follow(
                    &spec.name,
                    StoreSource::Location(location_of(&origin, &spec.store)?),
                    None,
                    &spec.store,
                    &follow_of(&origin, &spec.follow)?,
                    false,
                );
            }
            if let Some(root) = root {
                let watcher = RootWatcher::new(
                    spawner.clone(),
                    location_of("--store-root", &root.url)?,
                    root.url.clone(),
                    follow_of("--follow", &root.follow)?,
                    config.max_repositories,
                );
                watchers.push(tokio::spawn(watcher.supervised()));
            }
        }
    }

    // The HTTP front ends only when told; the stdio one also when its
    // client closes stdin.
    let front_ended = tokio::select! {
        () = shutdown => {
            tracing::info!("shutdown requested");
            false
        }
        _ = &mut front_task => true,
    };
    for w in watchers {
        w.abort();
    }
    repos.stop_all();
    let _ = stop_tx.send(());
    if !front_ended {
        let _ = front_task.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// `--bundle FILE`: verify, unpack into the cache, serve as repository
/// `name` (default: the bundle's). Nothing is followed; a bundle that
/// fails is an error at start.
async fn serve_file(
    spawner: &Spawner,
    path: &std::path::Path,
    name: Option<&str>,
) -> Result<(), ServeError> {
    let loader = &spawner.loader;
    let fail = |detail: String| ServeError::Bundle {
        path: path.to_path_buf(),
        detail,
    };
    let started = std::time::Instant::now();
    let install = || {
        let cache = Arc::clone(&loader.cache);
        let file = path.to_path_buf();
        tokio::task::spawn_blocking(move || cache.install_file(&file, None))
    };
    let (digest, _) = install()
        .await
        .map_err(|e| fail(e.to_string()))?
        .map_err(|e| fail(e.to_string()))?;
    let snapshot = match loader.open_snapshot(digest, None).await {
        // A cached copy changed behind the server's back: unpack the file
        // again instead of refusing to start.
        Err(LoadError::Open(OpenError::DamagedCache { detail, .. })) => {
            tracing::warn!(%digest, %detail, "the cached copy is damaged; unpacking the file again");
            loader.cache.discard(&digest);
            install()
                .await
                .map_err(|e| fail(e.to_string()))?
                .map_err(|e| fail(e.to_string()))?;
            loader.open_snapshot(digest, None).await
        }
        other => other,
    }
    .map_err(|e| fail(e.to_string()))?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| snapshot.bundle.default_repo_name());
    let state = spawner.repos.new_state(&name, Vec::new());
    state.swap(snapshot, started.elapsed().as_millis() as u64);
    loader
        .cache
        .record_live(&format!("file:{}", path.display()), digest);
    spawner.repos.insert(Arc::new(Repo::new(
        state,
        Origin::File {
            path: path.to_path_buf(),
        },
        None,
        false,
        None,
    )));
    tracing::info!(%digest, repo = %name, "serving {}", path.display());
    Ok(())
}
