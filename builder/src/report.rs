//! What a build tells its caller: progress while it runs, a summary when it
//! is done (printed as a table, or as JSON with `--json`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use shelf_formats::bundle::WrittenBundle;

use crate::secrets::SecretsReport;
use crate::source::Snapshot;

/// Wall and CPU time of one stretch of a build. CPU time counts every
/// thread of the process (rayon's, ONNX Runtime's), so on a busy machine,
/// where wall time says little, it still says what a stage cost.
#[derive(Debug, Clone, Copy)]
pub struct Stopwatch {
    wall: Instant,
    cpu: Duration,
}

impl Stopwatch {
    /// Starts now.
    pub fn start() -> Self {
        Self {
            wall: Instant::now(),
            cpu: process_cpu(),
        }
    }

    /// Wall and CPU time since the start.
    pub fn lap(&self) -> (Duration, Duration) {
        (self.wall.elapsed(), process_cpu().saturating_sub(self.cpu))
    }
}

/// User and system CPU time of this process so far.
fn process_cpu() -> Duration {
    // SAFETY: getrusage writes only into the struct it is given.
    let usage = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let tv = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Each stage's wall and CPU time, by name.
#[derive(Debug, Default)]
pub struct Timings {
    wall: BTreeMap<&'static str, Duration>,
    cpu: BTreeMap<&'static str, Duration>,
}

impl Timings {
    /// Records `name` as the time since `watch` started.
    pub fn record(&mut self, name: &'static str, watch: Stopwatch) {
        self.record_lap(name, watch.lap());
    }

    /// Records `name` as `(wall, cpu)`.
    pub fn record_lap(&mut self, name: &'static str, (wall, cpu): (Duration, Duration)) {
        self.wall.insert(name, wall);
        self.cpu.insert(name, cpu);
    }

    /// Records `name` with a wall time only (CPU not measured apart).
    pub fn record_wall(&mut self, name: &'static str, wall: Duration) {
        self.wall.insert(name, wall);
    }
}

fn millis(m: &BTreeMap<&'static str, Duration>) -> BTreeMap<String, u64> {
    m.iter()
        .map(|(k, v)| (k.to_string(), v.as_millis() as u64))
        .collect()
}

/// Build stages, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the commit and file contents.
    Read,
    /// Chunking files.
    Chunk,
    /// Embedding new chunks.
    Embed,
    /// Building the index and chunk store.
    Index,
    /// Writing the bundle.
    Pack,
}

impl Stage {
    /// Lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Read => "read",
            Stage::Chunk => "chunk",
            Stage::Embed => "embed",
            Stage::Index => "index",
            Stage::Pack => "pack",
        }
    }
}

/// Receives progress. Implemented by the CLI (progress bars on a terminal,
/// plain lines in CI logs); `()` ignores it.
pub trait Observer: Sync {
    /// A stage starts (or learns its total) with `total` units of work.
    fn stage(&self, stage: Stage, total: u64);
    /// `n` more units of the current stage are done.
    fn advance(&self, n: u64);
}

impl Observer for () {
    fn stage(&self, _: Stage, _: u64) {}
    fn advance(&self, _: u64) {}
}

/// File counts of a build.
#[derive(Debug, Clone, Serialize)]
pub struct FileCounts {
    /// Entries in the commit's tree (files, links, submodules).
    pub seen: u64,
    /// Files with chunks in the bundle.
    pub indexed: u64,
    /// Skipped files by reason.
    pub skipped: BTreeMap<String, u64>,
    /// Up to five example paths per skip reason.
    pub skipped_examples: BTreeMap<String, Vec<String>>,
    /// Indexed files that were not UTF-8 and were decoded lossily.
    pub decoded_lossy: u64,
    /// Bytes of indexed text.
    pub text_bytes: u64,
    /// Indexed files whose text was the previous bundle's: their chunks
    /// were taken from it, not cut again.
    pub unchanged: u64,
}

/// Chunk counts of a build.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkCounts {
    /// Chunks in the bundle.
    pub total: u64,
    /// Unique chunk texts embedded by this build.
    pub embedded: u64,
    /// Unique chunk texts whose vectors came from the previous bundle.
    pub reused: u64,
    /// Unique chunk texts whose vectors came from the store's embedding
    /// cache.
    pub cached: u64,
}

/// The summary of one build (`shelf build --json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    /// `sha256:<hex>` of the bundle.
    pub digest: String,
    /// Where the bundle was written.
    pub bundle_path: String,
    /// Its size in bytes.
    pub bundle_bytes: u64,
    /// Repository name recorded.
    pub repository: String,
    /// Commit id.
    pub commit: String,
    /// Ref built, if any.
    pub git_ref: Option<String>,
    /// Files.
    pub files: FileCounts,
    /// Chunks.
    pub chunks: ChunkCounts,
    /// Lines withheld because they look like credentials, by path and line
    /// (never their text).
    pub secrets: SecretsReport,
    /// What the build read from and gave to a store's embedding cache
    /// (set by the caller that owns the cache; absent without one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheReport>,
    /// Milliseconds per stage, and `total`.
    pub timings_ms: BTreeMap<String, u64>,
    /// CPU milliseconds per stage (every thread), and `total`.
    pub cpu_ms: BTreeMap<String, u64>,
}

impl BuildReport {
    pub(crate) fn new(
        written: &WrittenBundle,
        snapshot: &Snapshot,
        files: FileCounts,
        chunks: ChunkCounts,
        timings: &Timings,
    ) -> Self {
        Self {
            digest: written.digest.to_string(),
            bundle_path: written.path.display().to_string(),
            bundle_bytes: written.size,
            repository: snapshot.repository.clone(),
            commit: snapshot.commit.clone(),
            git_ref: snapshot.git_ref.clone(),
            files,
            chunks,
            secrets: SecretsReport::default(),
            cache: None,
            timings_ms: millis(&timings.wall),
            cpu_ms: millis(&timings.cpu),
        }
    }
}
