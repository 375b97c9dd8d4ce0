//! The real `shelf` binary, run as a user runs it, and the JSON report it
//! prints with `--json`. Measuring the binary (not the library) puts process
//! start and model loading in the wall time, which is what a CI job pays.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// The workspace root (where `.runtime/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Repository name recorded in the benchmark's bundles.
pub const REPOSITORY_NAME: &str = "shelf-bench-corpus";

/// A private copy of `target/debug/shelf`.
#[derive(Debug)]
pub struct ShelfBinary {
    /// The copy that is run.
    path: PathBuf,
    /// Where it was copied from.
    pub source: PathBuf,
    /// Its size in bytes (to tell builds apart in the results).
    pub bytes: u64,
    /// Its modification time, seconds since the Unix epoch.
    pub modified_unix: u64,
}

impl ShelfBinary {
    /// Copies `target/debug/shelf` into `into`: other work may rebuild the
    /// binary in the shared target directory while the benchmark runs, and
    /// every run must measure the same one.
    pub fn prepare(into: &Path) -> Result<Self> {
        let root = workspace_root();
        // Canonical so the results name the binary without `bench/..`.
        let root = root.canonicalize().unwrap_or(root);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        Self::prepare_from(&target.join("debug/shelf"), into, "shelf")
    }

    /// Copies the binary at `source` into `into` as `name` (another
    /// build of shelf, to compare against).
    pub fn prepare_from(source: &Path, into: &Path, name: &str) -> Result<Self> {
        let source = source.to_path_buf();
        let meta = std::fs::metadata(&source).with_context(|| {
            format!(
                "{} not found: run cargo build --bin shelf first",
                source.display()
            )
        })?;
        let path = into.join(name);
        std::fs::copy(&source, &path)
            .with_context(|| format!("copying {} to {}", source.display(), path.display()))?;
        let modified_unix = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Ok(Self {
            path,
            source,
            bytes: meta.len(),
            modified_unix,
        })
    }

    /// The copy's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `shelf <args>` from the workspace root (where the runtime is
    /// found); fails with its stderr when it fails.
    pub fn run(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.path)
            .args(args)
            .current_dir(workspace_root())
            .env("SHELF_LOG", "warn")
            .output()
            .with_context(|| format!("running {}", self.path.display()))?;
        if !output.status.success() {
            bail!(
                "shelf {} failed ({}):\n{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// `shelf build --repo R --out O [--previous P] --json`, timed, with the
    /// benchmark's fixed repository name.
    pub fn build(&self, repo: &Path, out: &Path, previous: Option<&Path>) -> Result<BuildRun> {
        self.build_named(repo, "HEAD", out, previous, REPOSITORY_NAME)
    }

    /// `shelf build --repo R --rev REV --name NAME --out O [--previous P]
    /// --json`, timed.
    pub fn build_named(
        &self,
        repo: &Path,
        rev: &str,
        out: &Path,
        previous: Option<&Path>,
        name: &str,
    ) -> Result<BuildRun> {
        self.build_with(repo, rev, out, previous, name, &[])
    }

    /// [`ShelfBinary::build_named`] with more arguments (e.g. `--model`,
    /// `--runtime`).
    pub fn build_with(
        &self,
        repo: &Path,
        rev: &str,
        out: &Path,
        previous: Option<&Path>,
        name: &str,
        extra: &[String],
    ) -> Result<BuildRun> {
        let mut cmd = Command::new(&self.path);
        cmd.arg("build")
            .arg("--repo")
            .arg(repo)
            .arg("--rev")
            .arg(rev)
            .arg("--out")
            .arg(out)
            .arg("--json")
            // The default name is the directory's, a random temporary one:
            // a fixed name makes the digest depend only on the commit and
            // the binary, so it can be compared across benchmark runs.
            .arg("--name")
            .arg(name)
            // The copy is outside the checkout, so the runtime is found from
            // the working directory instead of the binary's location.
            .current_dir(workspace_root());
        if let Some(p) = previous {
            cmd.arg("--previous").arg(p);
        }
        cmd.args(extra);
        let started = Instant::now();
        let output =
            run_measured(&mut cmd).with_context(|| format!("running {}", self.path.display()))?;
        let wall = started.elapsed();
        if !output.status.success() {
            bail!(
                "shelf build failed ({}):\n{}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let raw: serde_json::Value = serde_json::from_slice(&output.stdout).with_context(|| {
            format!(
                "shelf build --json printed no JSON report; stdout was:\n{}",
                String::from_utf8_lossy(&output.stdout)
            )
        })?;
        let report: Report = serde_json::from_value(raw.clone())
            .context("shelf build's JSON report lacks fields the benchmark needs")?;
        Ok(BuildRun {
            wall,
            report,
            raw,
            loadavg_after: crate::machine::loadavg(),
            peak_rss_kib: output.peak_rss_kib,
        })
    }
}

/// A finished child: its exit status, output and peak resident set.
struct Measured {
    status: ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    peak_rss_kib: u64,
}

/// Runs `cmd` to completion like `Command::output`, and also samples the
/// child's own peak RSS (`VmHWM`, every 10 ms). Not `wait4`'s `ru_maxrss`:
/// the kernel carries the spawning process's high-water mark across the
/// exec into it, so every child would report at least this benchmark's own
/// peak (measured: three different builds all "639 MiB").
fn run_measured(cmd: &mut Command) -> Result<Measured> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = child.id();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some((_, hwm)) = crate::load::process_rss_kib(pid) {
                    peak = peak.max(hwm);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let mut stderr_pipe = child.stderr.take().context("child stderr")?;
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr_pipe.read_to_end(&mut buf);
        buf
    });
    let mut stdout = Vec::new();
    child
        .stdout
        .take()
        .context("child stdout")?
        .read_to_end(&mut stdout)?;
    let stderr = stderr.join().unwrap_or_default();
    // Both pipes closed: the child has exited. Stop sampling before it
    // is reaped, so its pid (free again after `wait`) is never read.
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let peak_rss_kib = sampler.join().unwrap_or(0);
    let status = child.wait()?;
    Ok(Measured {
        status,
        stdout,
        stderr,
        peak_rss_kib,
    })
}

/// One timed build.
#[derive(Debug, Clone)]
pub struct BuildRun {
    /// Process start to exit.
    pub wall: Duration,
    /// The fields of the report the benchmark uses.
    pub report: Report,
    /// The whole report, kept for the JSON results.
    pub raw: serde_json::Value,
    /// Load averages when the build ended.
    pub loadavg_after: Option<String>,
    /// The build process's peak resident set, KiB.
    pub peak_rss_kib: u64,
}

impl BuildRun {
    /// Milliseconds of a stage in the report (`total` for the whole build
    /// inside the process); 0 if absent.
    pub fn stage_ms(&self, stage: &str) -> f64 {
        self.report.timings_ms.get(stage).copied().unwrap_or(0) as f64
    }

    /// Wall time in milliseconds.
    pub fn wall_ms(&self) -> f64 {
        self.wall.as_secs_f64() * 1000.0
    }
}

/// The part of `shelf build --json` the benchmark reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// `sha256:<hex>` of the bundle.
    pub digest: String,
    /// Where the bundle was written.
    pub bundle_path: PathBuf,
    /// Its size.
    pub bundle_bytes: u64,
    /// File counts.
    pub files: Files,
    /// Chunk counts.
    pub chunks: Chunks,
    /// Milliseconds per stage and `total`.
    pub timings_ms: BTreeMap<String, u64>,
}

/// File counts of a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Files {
    /// Tree entries.
    pub seen: u64,
    /// Files with chunks.
    pub indexed: u64,
    /// Bytes of indexed text.
    pub text_bytes: u64,
}

/// Chunk counts of a report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Chunks {
    /// Chunks in the bundle.
    pub total: u64,
    /// Unique texts embedded by this build.
    pub embedded: u64,
    /// Unique texts reused from the previous bundle.
    pub reused: u64,
}
