//! `shelf serve`: the read-only query server. Settings come from
//! `--config` (its `[serve]` section), then the environment, then flags,
//! merged and checked in one place (`shelf_server::config`). Stops
//! gracefully on SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use shelf_embed::Runtime;
use shelf_server::config::{ServeSettings, Surface};

use crate::cli::ServeArgs;

/// Builds the configuration and runs the server until a stop signal.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    run_front(
        args.config.as_deref(),
        *args.settings,
        args.runtime.as_deref(),
        Surface::Http,
        shelf_server::Front::Http(Box::new(|_| {})),
    )
}

/// Merges `--config`, the environment and `flags` (the settings `surface`
/// uses), and runs the server behind `front` until a stop signal:
/// `shelf serve` and `shelf mcp` alike.
pub fn run_front(
    config: Option<&std::path::Path>,
    flags: ServeSettings,
    runtime: Option<&std::path::Path>,
    surface: Surface,
    front: shelf_server::Front,
) -> anyhow::Result<ExitCode> {
    let env = |name: &str| std::env::var(name).ok();
    let config = ServeSettings::merge(config, &env, flags)?.resolve_for(surface, &env)?;
    let runtime = Runtime::locate(runtime)?;
    // Before the runtime's threads exist: each keeps the arena it first
    // allocated in.
    if let Some(arenas) = shelf_server::allocator::bound_arenas() {
        tracing::debug!(arenas, "allocator arenas bounded to one per core");
    }
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("shelf-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(shelf_server::run(config, runtime, front, stop_signal()))?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
