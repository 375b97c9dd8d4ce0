//! Read leases on the cache files a live bundle maps (Linux `F_SETLEASE`).
//!
//! A served bundle's bytes are read-only maps of verified cache files
//! (docs/serve.md, "The cache directory"). Permissions keep other users
//! out; a process running as the server's own user (or root) could still
//! open one of those files for writing or truncate it, and the next query
//! would read bytes nobody verified, or die of SIGBUS past a truncation.
//! A read lease closes that gap: the kernel holds such an `open` or
//! `truncate` back (up to `/proc/sys/fs/lease-break-time`, 45 s by
//! default) and tells this process with SIGIO. The server then exits at
//! once, naming the file, so that no answer is ever computed from changed
//! bytes; the lease goes with the process, the writer proceeds, and the
//! next start finds the file changed (its change time moved) and fetches
//! the bundle again. Exit status [`EXIT_CACHE_CHANGED`].
//!
//! Where leases are not available (a filesystem without them, another
//! user's files) the server says so once and relies on the checks at open
//! and the background re-hash.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use shelf_search::MappedBundle;

/// The exit status after a leased cache file was opened for writing
/// (EX_TEMPFAIL: a restart heals it).
pub const EXIT_CACHE_CHANGED: i32 = 75;

/// Every lease held, by the set it belongs to.
#[derive(Debug, Default)]
pub struct FileLeases {
    held: Mutex<HashMap<u64, Vec<(RawFd, PathBuf)>>>,
    next: AtomicU64,
    /// Whether "leases are unavailable" was said already.
    said: AtomicBool,
}

/// The leases on one bundle's files, given up when dropped (before the
/// bundle's files are closed: a `Snapshot` declares it first).
#[derive(Debug)]
pub struct LeaseSet {
    leases: Arc<FileLeases>,
    id: u64,
}

impl Drop for LeaseSet {
    fn drop(&mut self) {
        self.leases.book().remove(&self.id);
    }
}

impl FileLeases {
    /// Starts watching for lease breaks. Must run inside the runtime and
    /// before any lease is taken: SIGIO's default action ends the process
    /// without a word.
    pub fn start() -> std::io::Result<Arc<Self>> {
        let leases = Arc::new(Self::default());
        let mut signals = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::io())?;
        let watched = Arc::clone(&leases);
        tokio::spawn(async move {
            while signals.recv().await.is_some() {
                watched.check_breaks();
            }
        });
        Ok(leases)
    }

    fn book(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Vec<(RawFd, PathBuf)>>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a read lease on every file `bundle` maps. A file whose lease
    /// cannot be taken is served without one (said once per process).
    pub fn take(self: &Arc<Self>, bundle: &MappedBundle) -> LeaseSet {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut taken = Vec::new();
        for (name, file) in bundle.member_files() {
            let fd = file.as_raw_fd();
            // SAFETY: `fd` is an open descriptor owned by `bundle`, which
            // outlives the lease set (see `LeaseSet`).
            let r = unsafe { libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) };
            if r == 0 {
                taken.push((fd, bundle.dir.join(name)));
            } else if !self.said.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    path = %bundle.dir.join(name).display(),
                    error = %std::io::Error::last_os_error(),
                    "cannot take a read lease on a cache file (another owner, or a filesystem without leases): a change to it while it is served is found by the background re-hash, not at once"
                );
            }
        }
        self.book().insert(id, taken);
        LeaseSet {
            leases: Arc::clone(self),
            id,
        }
    }

    /// On SIGIO: a lease that is no longer a read lease is being broken,
    /// because another process is opening that file for writing or
    /// truncating it. Exit before any query can read what it writes.
    fn check_breaks(&self) {
        let book = self.book();
        for (fd, path) in book.values().flatten() {
            // SAFETY: registered descriptors stay open until their set is
            // removed from the book, which this lock excludes.
            let now = unsafe { libc::fcntl(*fd, libc::F_GETLEASE) };
            if now != libc::F_RDLCK {
                tracing::error!(
                    path = %path.display(),
                    "another process is writing to a file of a bundle this server is serving: exiting now so that no answer comes from changed bytes; restart the server and it fetches the bundle again (exit status {EXIT_CACHE_CHANGED})"
                );
                std::process::exit(EXIT_CACHE_CHANGED);
            }
        }
    }

    /// Files leased now (for tests and metrics).
    pub fn count(&self) -> usize {
        self.book().values().map(Vec::len).sum()
    }
}
