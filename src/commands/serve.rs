//! `shelf serve`: the read-only query server. Settings come from defaults,
//! then `--config` (its `[serve]` section), then the environment (tokens),
//! then flags. Stops gracefully on SIGTERM or Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use shelf_embed::Runtime;
use shelf_server::config::{FileSettings, ServeConfig, Source, parse_tokens, read_tokens};

use crate::cli::ServeArgs;

/// Environment variable with search tokens (comma-separated).
const SEARCH_TOKENS_ENV: &str = "SHELF_SEARCH_TOKENS";
/// Environment variable with the admin token.
const ADMIN_TOKEN_ENV: &str = "SHELF_ADMIN_TOKEN";

/// Builds the configuration and runs the server until a stop signal.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = configure(&args)?;
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
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
        Box::new(|_| {}),
        stop_signal(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

fn configure(args: &ServeArgs) -> anyhow::Result<ServeConfig> {
    // The source from flags, if they name one; the file may name it instead.
    let flag_source = match (&args.store, &args.follow, &args.bundle) {
        (Some(store), Some(follow), None) => Some(Source::Follow {
            store: store.clone(),
            follow: follow.clone(),
        }),
        (None, None, Some(bundle)) => Some(Source::Bundle(bundle.clone())),
        (None, None, None) => None,
        (_, _, Some(_)) => anyhow::bail!(
            "--bundle serves one file: drop --store/--follow, or drop --bundle to follow a tag"
        ),
        _ => {
            anyhow::bail!("--store and --follow go together: shelf serve --store URL --follow TAG")
        }
    };
    let mut config = ServeConfig::new(Source::Bundle(Default::default()));
    let mut source_set = false;
    if let Some(path) = &args.config {
        let file = FileSettings::from_file(path)?;
        source_set = file.bundle.is_some() || file.store.is_some();
        file.apply(&mut config, &path.display().to_string())?;
    }
    match flag_source {
        Some(s) => config.source = s,
        None if source_set => {}
        None => anyhow::bail!(
            "nothing to serve: pass --store URL --follow TAG (or --bundle FILE), or set them in --config's [serve] section"
        ),
    }
    if let Ok(tokens) = std::env::var(SEARCH_TOKENS_ENV)
        && !tokens.trim().is_empty()
    {
        config.auth.search_tokens = parse_tokens(&tokens);
    }
    if let Ok(token) = std::env::var(ADMIN_TOKEN_ENV)
        && !token.trim().is_empty()
    {
        config.auth.admin_token = Some(token.trim().to_string());
    }
    if let Some(path) = &args.search_tokens_file {
        config.auth.search_tokens = read_tokens(path)?;
    }
    if let Some(path) = &args.admin_token_file {
        config.auth.admin_token = read_tokens(path)?.into_iter().next();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(cache) = &args.cache {
        config.cache_dir = cache.clone();
    }
    if let Some(poll) = args.poll_interval {
        config.poll_interval = poll;
    }
    if args.runtime.model.is_some() {
        config.model = args.runtime.model.clone();
    }
    if let Some(keep) = args.keep_bundles {
        config.keep_bundles = keep;
    }
    if let Some(rate) = args.rate_limit {
        config.limits.rate_limit_per_second = rate;
    }
    let client = &mut config.store_client;
    if args.s3.endpoint_url.is_some() {
        client.endpoint_url = args.s3.endpoint_url.clone();
    }
    client.path_style |= args.s3.path_style;
    if args.s3.region.is_some() {
        client.region = args.s3.region.clone();
    }
    config.validate()?;
    Ok(config)
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
