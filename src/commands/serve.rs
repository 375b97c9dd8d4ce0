//! `shelf serve`: the read-only query server. Settings come from
//! `--config` (its `[serve]` section), then the environment, then flags,
//! merged and checked in one place (`shelf_server::config`). Stops
//! gracefully on SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use shelf_embed::Runtime;
use shelf_server::config::ServeSettings;

use crate::cli::ServeArgs;

/// Builds the configuration and runs the server until a stop signal.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let file = match &args.config {
        Some(path) => ServeSettings::from_file(path)?,
        None => ServeSettings::default(),
    };
    let config = file
        .overlay(*args.settings)
        .resolve(&|name| std::env::var(name).ok())?;
    let runtime = Runtime::locate(args.runtime.as_deref())?;
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("shelf-serve")
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    rt.block_on(shelf_server::run(
        config,
        runtime,
        shelf_server::Front::Http(Box::new(|_| {})),
        stop_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Resolves on SIGTERM (what orchestrators send) or SIGINT (Ctrl-C).
pub async fn stop_signal() {
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
