//! One module per subcommand; each `run` returns the process exit code.
//! Shared here: opening a store, and who a tag move is recorded as.

pub mod build;
pub mod doctor;
pub mod eval;
pub mod gc;
pub mod mcp;
pub mod push;
pub mod rollback;
pub mod search;
pub mod serve;
pub mod tag;
pub mod tags;
pub mod verify;

use anyhow::Context;
use shelf_embed::EmbedderOptions;
use shelf_store::{S3Options, Store, StoreLocation};

use crate::cli::{RuntimeArgs, StoreArgs};

/// Embedder options for the model the arguments name.
pub fn embedder_options(args: &RuntimeArgs) -> EmbedderOptions {
    EmbedderOptions {
        model: args.model.clone(),
        ..EmbedderOptions::default()
    }
}

/// A tokio runtime for one command: stores are async (the S3 client is).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Opens the store the arguments name (checking it is reachable).
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Store> {
    open_url(&args.store, &args.s3).await
}

/// Opens the store the arguments name to write to it (a local store's
/// directory is created by the first push).
pub async fn create_store(args: &StoreArgs) -> anyhow::Result<Store> {
    let location = StoreLocation::parse(&args.store, args.s3.clone())?;
    Ok(Store::create(&location).await?)
}

/// Opens a store by URL with S3 client settings.
pub async fn open_url(url: &str, s3: &S3Options) -> anyhow::Result<Store> {
    let location = StoreLocation::parse(url, s3.clone())?;
    Ok(Store::open(&location).await?)
}

/// Environment variable naming the store when a command's `--store` does
/// not.
pub const STORE_ENV: &str = "SHELF_STORE";

/// The store a command's optional `--store` names, else `$SHELF_STORE`.
pub fn store_or_env(flag: &Option<String>) -> Option<String> {
    flag.clone().or_else(|| {
        std::env::var(STORE_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty())
    })
}

/// Who moves a tag: `--by`, else the GitHub Actions run, else user@host.
pub fn mover(by: Option<String>) -> String {
    if let Some(by) = by {
        return by;
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    if let (Some(repo), Some(run)) = (env("GITHUB_REPOSITORY"), env("GITHUB_RUN_ID")) {
        return format!(
            "github-actions {repo} run {run}{}",
            env("GITHUB_ACTOR")
                .map(|a| format!(" ({a})"))
                .unwrap_or_default()
        );
    }
    let user = env("USER").unwrap_or_else(|| "unknown".into());
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| env("HOSTNAME"))
        .unwrap_or_else(|| "localhost".into());
    format!("{user}@{host}")
}

/// Seconds since `rfc3339`, for "age" columns.
pub fn age(rfc3339: &str) -> String {
    let Ok(t) = humantime::parse_rfc3339(rfc3339) else {
        return "?".into();
    };
    match std::time::SystemTime::now().duration_since(t) {
        Ok(d) if d.as_secs() < 120 => format!("{}s", d.as_secs()),
        Ok(d) if d.as_secs() < 7200 => format!("{}m", d.as_secs() / 60),
        Ok(d) if d.as_secs() < 172_800 => format!("{}h", d.as_secs() / 3600),
        Ok(d) => format!("{}d", d.as_secs() / 86_400),
        Err(_) => "0s".into(),
    }
}
