//! `shelf build`: one commit in, one bundle out (or, with `--shard`, one
//! share of the embedding a bundle needs, into the store's cache).

mod cache;

use std::process::ExitCode;

use anyhow::Context;
use shelf_builder::{BuildReport, BuildRequest, Shard, ShardReport, VectorCache};
use shelf_embed::{Embedder, Runtime};
use shelf_store::{Store, StoreLocation};

use crate::cli::BuildArgs;
use crate::commands::open_url;
use crate::output::outln;
use crate::progress;

use cache::StoreCache;

/// Builds, then prints the summary (table on stderr, or JSON on stdout).
/// With `--reuse-from`, a commit already built with the same settings and
/// model costs a lookup; with `--previous-tag`, the tag's bundle is fetched
/// and verified to build incrementally from; with a store, its embedding
/// cache supplies the vectors it holds and gets the ones it lacks; with
/// `--shard`, only this share of what the cache lacks is embedded.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let store_url = super::store_or_env(&args.store);
    if let Some(shard) = args.shard
        && store_url.is_none()
    {
        anyhow::bail!(
            "--shard {shard} fills a store's embedding cache: pass --store URL or set SHELF_STORE"
        );
    }
    let runtime = Runtime::locate(args.runtime.runtime.as_deref())?;
    let embedder = Embedder::load(&runtime, &super::embedder_options(&args.runtime))?;
    let mut request = BuildRequest {
        repo: args.repo.clone(),
        rev: args.rev.clone(),
        out_dir: args.out.clone(),
        previous: args.previous.clone(),
        config: args.config.clone(),
        name: args.name.clone(),
    };
    if let (Some(shard), Some(url)) = (args.shard, &store_url) {
        return run_shard(&args, shard, url, &request, &embedder);
    }
    let use_cache = store_url.is_some() && !args.no_embedding_cache;
    // Kept alive until the build is done: the fetched previous bundle.
    let mut _previous_dir = None;
    let rt = if args.reuse_from.is_some() || store_url.is_some() {
        Some(crate::commands::runtime()?)
    } else {
        None
    };
    let mut store = None;
    if let Some(rt) = &rt {
        if let Some(url) = &args.reuse_from
            && let Some(reused) = rt.block_on(reuse(&args, url, &request, &embedder))?
        {
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&reused)?);
            } else {
                outln!(
                    "reused {} (commit {} was built before with these settings): nothing built",
                    reused["digest"].as_str().unwrap_or(""),
                    reused["commit"].as_str().unwrap_or("")
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(url) = &store_url {
            // The cache writes to the store, so a local one is made by the
            // first build as by the first push; read-only use opens it.
            store = Some(rt.block_on(async {
                if use_cache {
                    let location = StoreLocation::parse(url, args.s3.clone())?;
                    anyhow::Ok(Store::create(&location).await?)
                } else {
                    open_url(url, &args.s3).await
                }
            })?);
        }
        if let Some(tag) = &args.previous_tag {
            let store = store.as_ref().with_context(|| {
                format!("--previous-tag {tag} needs the store it is in: pass --store URL or set SHELF_STORE")
            })?;
            let dir = tempfile::Builder::new()
                .prefix("shelf-previous-")
                .tempdir()?;
            let path = rt.block_on(async {
                let record = match shelf_store::tags::read_tag(store, tag).await {
                    Ok(Some((record, _))) => record,
                    Ok(None) => {
                        tracing::warn!(%tag, "previous tag does not exist yet: building from scratch");
                        return anyhow::Ok(None);
                    }
                    Err(e) if Store::is_missing(&e) => {
                        tracing::warn!(store = %store.describe(), "the store does not exist yet: building from scratch");
                        return anyhow::Ok(None);
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(Some(
                    shelf_store::fetch_bundle(store, &record.digest, dir.path()).await?,
                ))
            })?;
            request.previous = path;
            _previous_dir = Some(dir);
        }
    }
    if request.previous.is_none()
        && let (Some(rt), Some(store)) = (&rt, &store)
    {
        let dir = tempfile::Builder::new()
            .prefix("shelf-previous-")
            .tempdir()?;
        request.previous =
            rt.block_on(previous_from_store(store, &request, &embedder, dir.path()))?;
        _previous_dir = Some(dir);
    }
    let cache = match (&rt, &store) {
        (Some(rt), Some(store)) if use_cache => {
            Some(StoreCache::new(rt, store, embedder.identity()))
        }
        _ => None,
    };
    let observer = progress::for_stderr();
    let mut report = shelf_builder::build_with(
        &request,
        &embedder,
        cache.as_ref().map(|c| c as &dyn VectorCache),
        observer.as_ref(),
    )
    .with_context(|| format!("building {} at {}", args.repo.display(), args.rev))?;
    drop(observer);
    if let Some(cache) = &cache {
        let digest: shelf_formats::Digest = report.digest.parse()?;
        report.cache = Some(cache.finish(Some(&digest))?);
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

/// `--shard I/N`: read and chunk the commit, embed this share of what the
/// store's cache lacks, push it; no bundle.
fn run_shard(
    args: &BuildArgs,
    shard: Shard,
    url: &str,
    request: &BuildRequest,
    embedder: &Embedder,
) -> anyhow::Result<ExitCode> {
    let rt = crate::commands::runtime()?;
    let location = StoreLocation::parse(url, args.s3.clone())?;
    let store = rt.block_on(Store::create(&location))?;
    let cache = StoreCache::new(&rt, &store, embedder.identity());
    let observer = progress::for_stderr();
    let mut report =
        shelf_builder::embed_shard(request, embedder, &cache, shard, observer.as_ref())
            .with_context(|| format!("shard {shard} of {} at {}", args.repo.display(), args.rev))?;
    drop(observer);
    report.cache = Some(cache.finish(None)?);
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_shard_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_shard_summary(r: &ShardReport) {
    outln!("shard {} of {} @ {}", r.shard, r.repository, r.commit);
    outln!(
        "  chunks    {} total, {} distinct: {} cached, {} missing, {} in this share (embedded)",
        r.chunks.total,
        r.chunks.unique,
        r.chunks.cached,
        r.chunks.missing,
        r.chunks.embedded
    );
    if let Some(c) = &r.cache {
        print_cache_line(c);
    }
    let ms = |k: &str| r.timings_ms.get(k).copied().unwrap_or(0);
    outln!(
        "  time      {} ms (read {}, chunk {}, lookup {}, embed {}, push {})",
        ms("total"),
        ms("read"),
        ms("chunk"),
        ms("lookup"),
        ms("embed"),
        ms("push")
    );
}

fn print_cache_line(c: &shelf_builder::CacheReport) {
    outln!(
        "  cache     {} packs ({} vectors) in {}; {} read, {} vectors pushed in {} pack(s), {} ms{}",
        c.packs_listed,
        c.vectors_listed,
        c.store,
        c.packs_read,
        c.pushed,
        c.packs_written.len(),
        c.ms,
        if c.refused.is_empty() {
            String::new()
        } else {
            format!("; {} refused (see the warnings)", c.refused.len())
        }
    );
}

/// Ancestors looked at for a previous bundle in the store.
const PREVIOUS_ANCESTORS: usize = 32;

/// The bundle of the nearest first-parent ancestor that the store has a
/// commit record of with this build's settings and model, fetched and
/// verified into `dir`: what a build with a store but no `--previous`
/// builds incrementally from (the same bundle either way; only faster).
async fn previous_from_store(
    store: &Store,
    request: &BuildRequest,
    embedder: &Embedder,
    dir: &std::path::Path,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let plan = shelf_builder::plan(request, embedder.identity())?;
    let sid = shelf_formats::commit_record::settings_id(&plan.settings, embedder.identity());
    let ancestors = shelf_builder::source::first_parent_ancestors(
        &request.repo,
        &plan.commit,
        PREVIOUS_ANCESTORS,
    )?;
    for commit in ancestors {
        let key = shelf_formats::keys::commit_record_key(&commit, &sid);
        let record = match shelf_store::read_commit_record(store, &key).await {
            Ok(Some(record)) => record,
            Ok(None) => continue,
            Err(e) if Store::is_missing(&e) => return Ok(None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's commit records: building without a previous bundle");
                return Ok(None);
            }
        };
        match shelf_store::fetch_bundle(store, &record.digest, dir).await {
            Ok(path) => {
                tracing::info!(%commit, digest = %record.digest, "building incrementally from the bundle of an earlier commit in the store");
                return Ok(Some(path));
            }
            Err(e) => {
                tracing::warn!(%commit, error = %e, "the store's bundle of an earlier commit is unusable: trying an older one");
            }
        }
    }
    Ok(None)
}

/// The commit record for this build, if the store has one whose bundle is
/// present and verifies: the JSON summary to print instead of building.
async fn reuse(
    args: &BuildArgs,
    url: &str,
    request: &BuildRequest,
    embedder: &Embedder,
) -> anyhow::Result<Option<serde_json::Value>> {
    let store = open_url(url, &args.s3).await?;
    let plan = shelf_builder::plan(request, embedder.identity())?;
    let sid = shelf_formats::commit_record::settings_id(&plan.settings, embedder.identity());
    let key = shelf_formats::keys::commit_record_key(&plan.commit, &sid);
    let record = match shelf_store::read_commit_record(&store, &key).await {
        Ok(Some(record)) => record,
        Ok(None) => {
            tracing::info!(commit = %plan.commit, "no commit record in the store: building");
            return Ok(None);
        }
        // The first build of a repository publishes into a new store.
        Err(e) if Store::is_missing(&e) => {
            tracing::info!(store = %store.describe(), "the store does not exist yet: building");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    std::fs::create_dir_all(&args.out)?;
    let path = match shelf_store::fetch_bundle(&store, &record.digest, &args.out).await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "commit record found but its bundle is unusable: building");
            return Ok(None);
        }
    };
    Ok(Some(serde_json::json!({
        "digest": record.digest.to_string(),
        "bundle_path": path.display().to_string(),
        "commit": plan.commit,
        "reused": true,
        "commit_record": key,
    })))
}

fn print_summary(r: &BuildReport) {
    let ms = |k: &str| r.timings_ms.get(k).copied().unwrap_or(0);
    outln!("built {}", r.digest);
    outln!("  bundle    {} ({} bytes)", r.bundle_path, r.bundle_bytes);
    outln!(
        "  source    {} @ {}{}",
        r.repository,
        r.commit,
        r.git_ref
            .as_deref()
            .map(|g| format!(" ({g})"))
            .unwrap_or_default()
    );
    outln!(
        "  files     {} in tree, {} indexed ({} unchanged: chunks reused), {} skipped",
        r.files.seen,
        r.files.indexed,
        r.files.unchanged,
        r.files.skipped.values().sum::<u64>()
    );
    for (reason, n) in &r.files.skipped {
        let examples = r
            .files
            .skipped_examples
            .get(reason)
            .cloned()
            .unwrap_or_default();
        outln!("            {n:>6} {reason}: {}", examples.join(", "));
    }
    if r.files.decoded_lossy > 0 {
        outln!(
            "            {} files were not UTF-8 and were decoded lossily",
            r.files.decoded_lossy
        );
    }
    outln!(
        "  chunks    {} total, {} embedded, {} reused, {} from the cache",
        r.chunks.total,
        r.chunks.embedded,
        r.chunks.reused,
        r.chunks.cached
    );
    if let Some(c) = &r.cache {
        print_cache_line(c);
    }
    outln!(
        "  time      {} ms (read {}, previous {}, chunk {}, embed {}, index {}, pack {})",
        ms("total"),
        ms("read"),
        ms("previous"),
        ms("chunk"),
        ms("embed"),
        ms("index"),
        ms("pack")
    );
}
