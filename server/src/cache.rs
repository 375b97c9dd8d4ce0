//! The server's bundle cache: verified bundles unpacked into
//! `<cache>/<hex>/`, a small `state.json` saying which bundle each followed
//! tag last served (so a restart with the store down still serves), and
//! retention: the N most recently live bundles stay for instant rollback,
//! older ones are removed once their last reader is gone.
//!
//! A `<hex>` directory exists only after a verified unpack renamed it into
//! place (the bundle reader's staging rename), so its name can be trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use shelf_formats::Digest;
use shelf_formats::bundle::{BundleError, UNPACKING_PREFIX};
use shelf_formats::keys::bundle_key;
use shelf_formats::manifest::members;
use shelf_store::{Store, StoreError};

use shelf_search::OpenError;
use shelf_search::mapped::INCOMING_PREFIX;

use crate::state::Cause;

/// Schema of `state.json`.
const STATE_SCHEMA: &str = "shelf.serve-cache/v1";
const STATE_FILE: &str = "state.json";
/// Prefix of a download in progress.
const DOWNLOAD_PREFIX: &str = ".download-";
/// Prefix of `state.json` being written.
const STATE_TEMP_PREFIX: &str = ".state.json.";
/// Prefixes of work in progress: whatever carries one at start-up and
/// belongs to no running process was left by one that died (killed in a
/// download, an unpack or a save) and is removed.
const WORK_PREFIXES: [&str; 4] = [
    DOWNLOAD_PREFIX,
    INCOMING_PREFIX,
    UNPACKING_PREFIX,
    STATE_TEMP_PREFIX,
];

/// Why a bundle could not be made ready in the cache.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The store could not be read (unreachable, denied, bundle missing).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The bundle cannot be opened: it fails verification, is for another
    /// model or format, or its cached copy is unusable.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The cache directory failed (full, removed, unwritable).
    #[error("the cache directory failed at {}: {source}; free space or fix permissions (it is retried)", path.display())]
    Disk {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LoadError {
    /// What kind of failure this is: whether to retry, and what to tell
    /// the operator.
    pub fn cause(&self) -> Cause {
        match self {
            LoadError::Store(StoreError::Bundle(e)) => bundle_cause(e),
            // The object under the bundle's key cannot be this bundle (over
            // the archive limit, or a pipe or device): a bad object in the
            // store, like bytes that do not verify, and replaceable alike.
            LoadError::Store(StoreError::TooLarge { .. } | StoreError::NotAFile { .. }) => {
                Cause::Verification
            }
            LoadError::Store(_) => Cause::Store,
            LoadError::Disk { .. } => Cause::Disk,
            LoadError::Open(OpenError::WrongModel { .. }) => Cause::Incompatible,
            LoadError::Open(OpenError::Bundle(e)) => bundle_cause(e),
            LoadError::Open(OpenError::Io { .. } | OpenError::DamagedCache { .. }) => Cause::Disk,
            LoadError::Open(_) => Cause::Verification,
        }
    }
}

/// Makes `dir` (mode 0700 when new) and checks that no other user can
/// write it: the server maps its files and trusts them by what it
/// recorded when it verified them (docs/serve.md, "The cache directory").
fn private_dir(dir: &Path) -> Result<(), std::io::Error> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let meta = std::fs::metadata(dir)?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(std::io::Error::other(format!(
            "it belongs to user {} and this server runs as user {me}: the server maps the files in it, so only its own user may write it (chown it)",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "other users may write to it (mode {:o}): the server maps the files in it, so only its own user may write it (chmod go-w {})",
            meta.mode() & 0o777,
            dir.display()
        )));
    }
    Ok(())
}

fn bundle_cause(e: &BundleError) -> Cause {
    match e {
        BundleError::Io { .. } => Cause::Disk,
        BundleError::UnsupportedFormatVersion { .. } | BundleError::UnknownKind(_) => {
            Cause::Incompatible
        }
        _ => Cause::Verification,
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    schema: String,
    /// Bundles in the order they went live, most recent first.
    #[serde(default)]
    recent: Vec<Digest>,
    /// The bundle each followed target last served.
    #[serde(default)]
    live: HashMap<String, Digest>,
}

#[derive(Debug, Default)]
struct Book {
    state: StateFile,
    /// Open snapshots per bundle: their files must stay.
    leases: HashMap<Digest, usize>,
    /// Bundles whose cached copy was found changed while they were served:
    /// fetched again even though they are live (cleared when one goes live).
    damaged: std::collections::HashSet<Digest>,
}

/// A directory of unpacked, verified bundles.
#[derive(Debug)]
pub struct BundleCache {
    dir: PathBuf,
    keep: usize,
    book: Mutex<Book>,
}

/// Keeps a cached bundle's files in place while a snapshot uses them.
#[derive(Debug)]
pub struct Lease {
    cache: Arc<BundleCache>,
    digest: Digest,
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.cache.release(&self.digest);
    }
}

impl BundleCache {
    /// Opens (creating) the cache at `dir`, keeping the `keep` most recently
    /// live bundles. Leftovers of interrupted downloads are removed.
    pub fn open(dir: &Path, keep: usize) -> Result<Arc<Self>, std::io::Error> {
        private_dir(dir)?;
        remove_leftovers(dir)?;
        let path = dir.join(STATE_FILE);
        let state = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<StateFile>(&bytes) {
                Ok(s) if s.schema == STATE_SCHEMA => s,
                Ok(s) => {
                    tracing::warn!(
                        path = %path.display(),
                        schema = %s.schema,
                        "the cache state file has another schema; starting with an empty history (a store that is down cannot be bridged with the last bundle)"
                    );
                    StateFile::default()
                }
                Err(e) => {
                    tracing::warn!(
                        path = %path.display(),
                        error = %e,
                        "the cache state file is not valid JSON; starting with an empty history (a store that is down cannot be bridged with the last bundle)"
                    );
                    StateFile::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => StateFile::default(),
            Err(e) => {
                tracing::warn!(
                    path = %path.display(),
                    error = %e,
                    "cannot read the cache state file; starting with an empty history (a store that is down cannot be bridged with the last bundle): fix its permissions"
                );
                StateFile::default()
            }
        };
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
            book: Mutex::new(Book {
                state,
                ..Book::default()
            }),
        }))
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where bundle `digest` is (or would be) unpacked.
    pub fn bundle_dir(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    /// Whether a verified copy of `digest` is here.
    pub fn contains(&self, digest: &Digest) -> bool {
        self.bundle_dir(digest).join(members::MANIFEST).is_file()
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        // The book is only ever updated whole; a panic elsewhere while it
        // was held cannot leave it half-written.
        self.book
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Verifies a local bundle file (against `expected`, else the digest in
    /// its `<hex>.tar.zst` name) and unpacks it here unless a verified copy
    /// already is. Returns the digest and directory.
    pub fn install_file(
        &self,
        bundle: &Path,
        expected: Option<&Digest>,
    ) -> Result<(Digest, PathBuf), OpenError> {
        shelf_search::mapped::install_file(&self.dir, bundle, expected)
    }

    /// Makes bundle `digest` ready here: nothing to do when a verified copy
    /// is cached, else download it from `store` and verify while unpacking.
    /// Nothing is left under the bundle's name unless it verified. The
    /// cache directory is made again if someone removed it. The lease,
    /// taken before anything else, keeps the bundle's files until the
    /// caller has opened it: other repositories going live prune the cache
    /// meanwhile, and a bundle unpacked but not yet open is read by nobody.
    pub async fn fetch(
        self: &Arc<Self>,
        store: &Store,
        digest: &Digest,
    ) -> Result<(PathBuf, Lease), LoadError> {
        let lease = self.lease(*digest);
        if self.contains(digest) {
            return Ok((self.bundle_dir(digest), lease));
        }
        std::fs::create_dir_all(&self.dir).map_err(|source| LoadError::Disk {
            path: self.dir.clone(),
            source,
        })?;
        let download = self.dir.join(format!(
            "{DOWNLOAD_PREFIX}{}-{}.tar.zst",
            digest.hex(),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&download);
        let started = std::time::Instant::now();
        let fetched = match store.get_to_file(&bundle_key(digest), &download).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(LoadError::Store(StoreError::MissingBundle {
                store: store.describe(),
                digest: *digest,
            })),
            // Writing the download failed: the disk's fault, not the store's.
            Err(StoreError::Io { path, source }) if path == download => {
                Err(LoadError::Disk { path, source })
            }
            Err(e) => Err(e.into()),
        };
        if let Err(e) = fetched {
            let _ = std::fs::remove_file(&download);
            return Err(e);
        }
        tracing::debug!(
            %digest,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "bundle downloaded; verifying and unpacking"
        );
        let cache = Arc::clone(self);
        let (path, expected) = (download.clone(), *digest);
        let installed =
            tokio::task::spawn_blocking(move || cache.install_file(&path, Some(&expected)))
                .await
                .unwrap_or_else(|e| {
                    Err(OpenError::Io {
                        path: download.clone(),
                        source: std::io::Error::other(e.to_string()),
                    })
                });
        let _ = std::fs::remove_file(&download);
        Ok((installed?.1, lease))
    }

    /// Removes the cached copy of `digest` (it failed its check when
    /// opened), so the next fetch downloads it again.
    pub fn discard(&self, digest: &Digest) {
        let dir = self.bundle_dir(digest);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => tracing::warn!(%digest, "removed a damaged cached copy; fetching it again"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(%digest, error = %e, "cannot remove a damaged cached copy"),
        }
    }

    /// Records that the cached copy of `digest` changed on disk and
    /// removes it, so that it is fetched again even where it is live (open
    /// snapshots keep mapping the files they opened).
    pub fn mark_damaged(&self, digest: Digest) {
        self.book().damaged.insert(digest);
        self.discard(&digest);
    }

    /// Whether `digest`'s cached copy was found changed and not replaced
    /// since.
    pub fn is_damaged(&self, digest: &Digest) -> bool {
        self.book().damaged.contains(digest)
    }

    /// Keeps `digest`'s files until the lease is dropped.
    pub fn lease(self: &Arc<Self>, digest: Digest) -> Lease {
        *self.book().leases.entry(digest).or_default() += 1;
        Lease {
            cache: Arc::clone(self),
            digest,
        }
    }

    fn release(&self, digest: &Digest) {
        let mut book = self.book();
        if let Some(n) = book.leases.get_mut(digest) {
            *n -= 1;
            if *n == 0 {
                book.leases.remove(digest);
            }
        }
        self.prune(&book);
    }

    /// Records that `digest` went live for `target` (persisted, so a restart
    /// knows it), then removes bundles outside the kept set that nobody
    /// reads any more.
    pub fn record_live(&self, target: &str, digest: Digest) {
        let mut book = self.book();
        book.damaged.remove(&digest);
        book.state.schema = STATE_SCHEMA.into();
        book.state.recent.retain(|d| *d != digest);
        book.state.recent.insert(0, digest);
        book.state.recent.truncate(self.keep.max(16));
        book.state.live.insert(target.to_string(), digest);
        if let Err(e) = self.save(&book.state) {
            tracing::warn!(error = %e, "cannot save the cache state; a restart with the store down will not know the last bundle");
        }
        self.prune(&book);
    }

    /// Forgets `target` (its repository is no longer served): its last
    /// bundle is removed like any other once it is not kept or open.
    pub fn forget(&self, target: &str) {
        let mut book = self.book();
        if book.state.live.remove(target).is_none() {
            return;
        }
        if let Err(e) = self.save(&book.state) {
            tracing::warn!(error = %e, "cannot save the cache state");
        }
        self.prune(&book);
    }

    /// The bundle `target` last served, if its verified copy is still here.
    pub fn last_live(&self, target: &str) -> Option<Digest> {
        let digest = *self.book().state.live.get(target)?;
        self.contains(&digest).then_some(digest)
    }

    /// Digests of the cached bundles, most recently live first.
    pub fn cached(&self) -> Vec<Digest> {
        self.book()
            .state
            .recent
            .iter()
            .copied()
            .filter(|d| self.contains(d))
            .collect()
    }

    fn save(&self, state: &StateFile) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let mut bytes = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let tmp = self
            .dir
            .join(format!("{STATE_TEMP_PREFIX}{}", std::process::id()));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, self.dir.join(STATE_FILE))
    }

    /// Removes every unpacked bundle that is neither among the `keep` most
    /// recently live, nor the last live bundle of some target, nor open.
    /// Each target's last bundle stays so that a restart (of a server with
    /// more repositories than `keep`) finds every repository's bundle
    /// cached, and serves it if the store is down.
    fn prune(&self, book: &Book) {
        let keep: Vec<&Digest> = book
            .state
            .recent
            .iter()
            .take(self.keep)
            .chain(book.state.live.values())
            .collect();
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            // Removed behind the server's back: nothing left to prune.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => {
                tracing::warn!(
                    path = %self.dir.display(),
                    error = %e,
                    "cannot list the cache to remove bundles that are no longer kept; they stay until it can be listed"
                );
                return;
            }
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(digest) = name.parse::<Digest>() else {
                continue;
            };
            if keep.contains(&&digest) || book.leases.contains_key(&digest) {
                continue;
            }
            match std::fs::remove_dir_all(entry.path()) {
                Ok(()) => {
                    tracing::info!(%digest, "removed from the cache (not among the kept bundles)")
                }
                Err(e) => tracing::warn!(%digest, error = %e, "cannot remove a cached bundle"),
            }
        }
    }
}

/// Removes what processes that died left in the cache directory: entries
/// with a work-file prefix whose owner no longer runs. Each one is said in
/// the log; one that cannot be removed is said and left.
fn remove_leftovers(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !WORK_PREFIXES.iter().any(|p| name.starts_with(p)) || owner_alive(&name) {
            continue;
        }
        let path = entry.path();
        let removed = match entry.file_type() {
            Ok(t) if t.is_dir() => std::fs::remove_dir_all(&path),
            _ => std::fs::remove_file(&path),
        };
        match removed {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed the work file of an interrupted download or unpack")
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot remove the work file of an interrupted download or unpack")
            }
        }
    }
    Ok(())
}

/// Whether the process that named a work-in-progress entry (its pid is
/// the name's first all-digit `-`/`.` field) still runs: another process
/// may be unpacking into the same cache right now. An entry without a pid
/// belongs to nobody.
fn owner_alive(name: &str) -> bool {
    name.split(['-', '.'])
        .find(|p| !p.is_empty() && p.len() <= 10 && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u32>().ok())
        .is_some_and(|pid| pid != std::process::id() && Path::new(&format!("/proc/{pid}")).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_bundle(cache: &BundleCache, n: u8) -> Digest {
        let d = Digest::from_bytes([n; 32]);
        let dir = cache.bundle_dir(&d);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(members::MANIFEST), b"{}").unwrap();
        d
    }

    /// What a load does: lease first (so nothing prunes the bundle while
    /// it arrives), unpack, go live.
    fn load(cache: &Arc<BundleCache>, n: u8) -> (Digest, Lease) {
        let lease = cache.lease(Digest::from_bytes([n; 32]));
        let d = fake_bundle(cache, n);
        cache.record_live("prod", d);
        (d, lease)
    }

    #[test]
    fn keeps_the_recent_and_the_leased_and_removes_the_rest() {
        let t = tempfile::tempdir().unwrap();
        let cache = BundleCache::open(t.path(), 2).unwrap();
        let (a, lease_a) = load(&cache, 1);
        let (b, _) = load(&cache, 2);
        let (c, _) = load(&cache, 3);
        // a fell out of the two most recent, but a reader still holds it.
        assert!(cache.contains(&a) && cache.contains(&b) && cache.contains(&c));
        drop(lease_a);
        assert!(!cache.contains(&a), "released and not kept: removed");
        assert!(cache.contains(&b) && cache.contains(&c));
        assert_eq!(cache.cached(), vec![c, b]);
    }

    #[test]
    fn a_bundle_being_loaded_is_not_pruned() {
        let t = tempfile::tempdir().unwrap();
        let cache = BundleCache::open(t.path(), 1).unwrap();
        let (_, _a) = load(&cache, 1);
        let arriving = cache.lease(Digest::from_bytes([2; 32]));
        let b = fake_bundle(&cache, 2);
        let (c, _) = load(&cache, 3);
        assert!(cache.contains(&b), "leased while it loads");
        drop(arriving);
        assert!(!cache.contains(&b) && cache.contains(&c));
    }

    /// Another repository going live between a bundle's unpack and its
    /// open removed it (at 100 repositories under one root, 19 stayed
    /// not ready): the lease fetch returns closes that gap.
    #[tokio::test]
    async fn a_fetched_bundle_stays_until_its_lease_is_dropped() {
        let t = tempfile::tempdir().unwrap();
        let location = shelf_store::StoreLocation::parse(
            &t.path().join("store").display().to_string(),
            shelf_store::S3Options::default(),
        )
        .unwrap();
        let store = Store::create(&location).await.unwrap();
        let model = shelf_testkit::sample_manifest("c").model;
        let built = shelf_testkit::synthetic_bundle(&t.path().join("built"), 20, &model, 1);
        shelf_store::push_bundle(&store, &built.path).await.unwrap();
        let cache = BundleCache::open(&t.path().join("cache"), 1).unwrap();
        let (dir, lease) = cache.fetch(&store, &built.digest).await.unwrap();
        assert_eq!(dir, cache.bundle_dir(&built.digest));
        // Two other repositories go live before this one is opened.
        let (_b, _lb) = load_as(&cache, "other/production", 7);
        let (_c, _lc) = load_as(&cache, "third/production", 8);
        assert!(cache.contains(&built.digest), "pruned before it was opened");
        drop(lease);
        assert!(
            !cache.contains(&built.digest),
            "never live, released: removed"
        );
        // A second fetch of a cached copy leases it as well.
        let (_, lease) = cache.fetch(&store, &built.digest).await.unwrap();
        let (_d, _ld) = load_as(&cache, "other/production", 9);
        assert!(cache.contains(&built.digest));
        drop(lease);
    }

    /// `load`, for target `target`.
    fn load_as(cache: &Arc<BundleCache>, target: &str, n: u8) -> (Digest, Lease) {
        let lease = cache.lease(Digest::from_bytes([n; 32]));
        let d = fake_bundle(cache, n);
        cache.record_live(target, d);
        (d, lease)
    }

    /// With more repositories than `keep`, every repository's bundle must
    /// survive a restart, where nothing is open yet and the first
    /// repository to go live prunes.
    #[test]
    fn every_targets_last_bundle_stays_for_a_restart() {
        let t = tempfile::tempdir().unwrap();
        let cache = BundleCache::open(t.path(), 1).unwrap();
        let targets: Vec<String> = (0..5).map(|i| format!("repo-{i}/production")).collect();
        let digests: Vec<Digest> = targets
            .iter()
            .zip(1u8..)
            .map(|(target, n)| load_as(&cache, target, n).0)
            .collect();
        drop(cache);
        let again = BundleCache::open(t.path(), 1).unwrap();
        for (target, d) in targets.iter().zip(&digests) {
            assert_eq!(again.last_live(target), Some(*d), "{target}");
        }
        // The first to go live again prunes: the others' bundles stay.
        let (_, first) = load_as(&again, &targets[0], 1);
        assert!(digests.iter().all(|d| again.contains(d)));
        drop(first);
        // A target's bundle replaced and not among the kept: removed.
        let (_, _replaced) = load_as(&again, &targets[0], 20);
        assert!(!again.contains(&digests[0]));
        assert!(digests[1..].iter().all(|d| again.contains(d)));
    }

    /// A repository no longer served keeps its bundle only while it is
    /// among the recent or open.
    #[test]
    fn a_forgotten_targets_bundle_is_removed_once_released() {
        let t = tempfile::tempdir().unwrap();
        let cache = BundleCache::open(t.path(), 1).unwrap();
        let (gone, lease) = load_as(&cache, "gone/production", 1);
        let (_, _other) = load_as(&cache, "other/production", 2);
        drop(lease);
        assert!(cache.contains(&gone), "its target's last bundle stays");
        cache.forget("gone/production");
        assert!(!cache.contains(&gone));
        assert_eq!(cache.last_live("gone/production"), None);
        // Forgotten for a restart as well.
        drop(cache);
        let again = BundleCache::open(t.path(), 1).unwrap();
        assert_eq!(again.last_live("gone/production"), None);
        assert!(again.last_live("other/production").is_some());
    }

    #[test]
    fn remembers_the_last_live_bundle_across_restarts() {
        let t = tempfile::tempdir().unwrap();
        let cache = BundleCache::open(t.path(), 3).unwrap();
        let a = fake_bundle(&cache, 1);
        cache.record_live("production", a);
        drop(cache);
        let again = BundleCache::open(t.path(), 3).unwrap();
        assert_eq!(again.last_live("production"), Some(a));
        assert_eq!(again.last_live("staging"), None);
        // A remembered bundle whose files are gone is not offered.
        std::fs::remove_dir_all(again.bundle_dir(&a)).unwrap();
        assert_eq!(again.last_live("production"), None);
    }

    /// What `f` logs at `warn` and above, as text.
    fn warnings(f: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = sink.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn an_unreadable_state_file_is_an_empty_history_and_said() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join(STATE_FILE), b"{ not json").unwrap();
        let said = warnings(|| {
            let cache = BundleCache::open(t.path(), 3).unwrap();
            assert_eq!(cache.last_live("production"), None);
        });
        assert!(
            said.contains("not valid JSON") && said.contains(STATE_FILE),
            "{said}"
        );
        // One that cannot be read at all (here: a directory) is said too,
        // with the OS's reason, not taken silently as no history.
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join(STATE_FILE)).unwrap();
        let said = warnings(|| {
            let cache = BundleCache::open(t.path(), 3).unwrap();
            assert_eq!(cache.last_live("production"), None);
        });
        assert!(
            said.contains("cannot read the cache state file") && said.contains(STATE_FILE),
            "{said}"
        );
        // A missing one is a first start: nothing to say.
        let t = tempfile::tempdir().unwrap();
        assert_eq!(
            warnings(|| drop(BundleCache::open(t.path(), 3).unwrap())),
            ""
        );
    }

    #[test]
    fn a_cache_that_cannot_be_listed_is_said_when_pruning() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("cache");
        let cache = BundleCache::open(&dir, 1).unwrap();
        // The directory replaced by a file: listing it fails (as root too).
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"not a directory").unwrap();
        let said = warnings(|| cache.record_live("production", Digest::from_bytes([7; 32])));
        assert!(said.contains("cannot list the cache"), "{said}");
    }

    #[test]
    fn work_files_of_dead_processes_are_removed_at_open_and_live_ones_kept() {
        let t = tempfile::tempdir().unwrap();
        let dead = 4_999_999; // above pid_max: no such process
        let mine = std::process::id();
        // What a download, an unpack (the reader's staging directory and
        // its destination) and a save leave when their process is killed.
        std::fs::write(t.path().join(format!(".download-abc-{dead}.tar.zst")), b"x").unwrap();
        std::fs::create_dir_all(t.path().join(format!(".incoming-{dead}-abc"))).unwrap();
        std::fs::create_dir_all(t.path().join(format!("{UNPACKING_PREFIX}{dead}-Xa1b2c/m")))
            .unwrap();
        std::fs::create_dir_all(t.path().join(".unpacking-Xa1b2c")).unwrap();
        std::fs::write(t.path().join(format!("{STATE_TEMP_PREFIX}{dead}")), b"{").unwrap();
        // Another process that runs (this test's parent) is unpacking now.
        let parent = std::os::unix::process::parent_id();
        let live = format!("{UNPACKING_PREFIX}{parent}-Zz9y8x");
        std::fs::create_dir_all(t.path().join(&live)).unwrap();
        assert_ne!(parent, mine);
        BundleCache::open(t.path(), 3).unwrap();
        let left: Vec<String> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, vec![live]);
    }
}
