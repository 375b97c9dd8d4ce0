//! The background re-hash of the bundles installed in the cache.
//!
//! Opening a bundle trusts its files by the identity recorded when they
//! were verified (`shelf_search::installed`), and live files are guarded by
//! read leases (`lease`). Bytes can still change without the kernel being
//! asked: a failing disk, a filesystem bug, a write while the server was
//! down that restored the times. So every `--scrub-interval` one thread, at
//! the lowest CPU priority and a bounded read rate, hashes every installed
//! bundle again against its manifest. A bundle that fails is removed from
//! the cache; every repository serving it is reported degraded (cause
//! `disk`) and fetches it again, and serves the fresh copy once verified.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shelf_formats::manifest::members;
use shelf_formats::{Digest, Manifest};
use shelf_search::OpenError;
use shelf_search::installed::rehash;

use crate::cache::BundleCache;
use crate::reload::Loader;
use crate::repos::{Origin, Repo, Repos};
use crate::state::{Cause, Problem, now_rfc3339};

/// Bytes per second the re-hash reads at most: a background check must
/// not take the disk from queries.
pub const SCRUB_BYTES_PER_SECOND: u64 = 64 << 20;

/// A running scrub; stops when dropped.
#[derive(Debug)]
pub struct Scrubber {
    stop: Arc<AtomicBool>,
}

impl Drop for Scrubber {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts re-hashing every bundle in `cache` each `interval` (first after
/// one interval), reporting damage to the repositories in `repos`.
pub fn start(loader: Loader, repos: Arc<Repos>, interval: Duration) -> std::io::Result<Scrubber> {
    let cache = Arc::clone(&loader.cache);
    let stop = Arc::new(AtomicBool::new(false));
    let (found, mut damaged) = tokio::sync::mpsc::unbounded_channel::<(Digest, String)>();
    let thread_stop = Arc::clone(&stop);
    let thread_cache = Arc::clone(&cache);
    std::thread::Builder::new()
        .name("shelf-scrub".into())
        .spawn(move || {
            lowest_priority();
            while sleep_unless_stopped(interval, &thread_stop) {
                for digest in thread_cache.cached() {
                    if thread_stop.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Err(detail) = scrub_one(&thread_cache, digest, &thread_stop)
                        && found.send((digest, detail)).is_err()
                    {
                        return;
                    }
                }
            }
        })?;
    tokio::spawn(async move {
        while let Some((digest, detail)) = damaged.recv().await {
            handle_damage(&loader, &repos, digest, &detail).await;
        }
    });
    Ok(Scrubber { stop })
}

/// Sleeps `interval` in short steps; false once told to stop.
fn sleep_unless_stopped(interval: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + interval;
    while Instant::now() < until {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200).min(interval));
    }
    !stop.load(Ordering::Relaxed)
}

/// Re-hashes one installed bundle; the damage found, if any.
fn scrub_one(cache: &Arc<BundleCache>, digest: Digest, stop: &AtomicBool) -> Result<(), String> {
    // Held so retention does not remove the files mid-read.
    let _lease = cache.lease(digest);
    let dir = cache.bundle_dir(&digest);
    let manifest: Manifest = match std::fs::read(dir.join(members::MANIFEST)) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(m) => m,
            Err(e) => return Err(format!("its manifest no longer parses: {e}")),
        },
        // Removed since it was listed: nothing to check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            tracing::warn!(%digest, error = %e, "the background re-hash cannot read a cached bundle");
            return Ok(());
        }
    };
    let started = Instant::now();
    let mut read = 0u64;
    let mut pace = |n: usize| {
        read += n as u64;
        // Sleep until the read rate is back under the bound.
        let due = Duration::from_secs_f64(read as f64 / SCRUB_BYTES_PER_SECOND as f64);
        if let Some(ahead) = due.checked_sub(started.elapsed())
            && !stop.load(Ordering::Relaxed)
        {
            std::thread::sleep(ahead);
        }
    };
    match rehash(&dir, &manifest, digest, &mut pace) {
        Ok(()) => {
            tracing::debug!(%digest, bytes = read, elapsed_ms = started.elapsed().as_millis() as u64, "re-hashed a cached bundle: unchanged");
            Ok(())
        }
        Err(OpenError::DamagedCache { detail, .. }) => Err(detail),
        Err(OpenError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// A bundle failed its re-hash: drop the cached copy, and have every
/// repository serving it report it and fetch it again.
async fn handle_damage(loader: &Loader, repos: &Repos, digest: Digest, detail: &str) {
    tracing::error!(%digest, %detail, "the background re-hash found a cached bundle changed on disk: removing it; repositories serving it fetch it again");
    loader.cache.mark_damaged(digest);
    for repo in repos.all().values() {
        if repo.state.live_digest() != Some(digest) {
            continue;
        }
        repo.state.record_load_problem(Problem {
            cause: Cause::Disk,
            digest: Some(digest),
            message: format!(
                "the cached copy of the live bundle {digest} changed on disk ({detail}); fetching it again"
            ),
            failures: 1,
            since: now_rfc3339(),
            retry_at: None,
        });
        match (&repo.origin, &repo.reloader) {
            (Origin::File { path }, _) => reinstall(loader, repo, path, digest).await,
            (_, Some(reloader)) => {
                let reloader = Arc::clone(reloader);
                tokio::spawn(async move { reloader.check_now().await });
            }
            (_, None) => {}
        }
    }
}

/// A repository serving one bundle file: install the file again and swap
/// the fresh copy in.
async fn reinstall(loader: &Loader, repo: &Repo, path: &std::path::Path, digest: Digest) {
    let started = Instant::now();
    let cache = Arc::clone(&loader.cache);
    let file = path.to_path_buf();
    let installed =
        tokio::task::spawn_blocking(move || cache.install_file(&file, Some(&digest))).await;
    let opened = match installed {
        Ok(Ok(_)) => loader
            .open_snapshot(digest, None)
            .await
            .map_err(|e| e.to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match opened {
        Ok(snapshot) => {
            loader
                .cache
                .record_live(&format!("file:{}", path.display()), digest);
            repo.state
                .swap(snapshot, started.elapsed().as_millis() as u64);
            tracing::info!(%digest, path = %path.display(), "installed the bundle file again after its cached copy changed");
        }
        Err(e) => {
            tracing::error!(%digest, path = %path.display(), error = %e, "cannot install the bundle file again: still serving the changed copy's maps; restart the server")
        }
    }
}

/// The scrub thread runs at the lowest CPU priority (Linux: per thread).
fn lowest_priority() {
    // SAFETY: gettid and setpriority have no memory preconditions; a
    // failure leaves the priority as it was.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}
