//! The one harness every benchmark runs in. A benchmark is a [`Benchmark`]:
//! its options (a clap `Args` struct) and its measurement. The harness
//! does the rest, the same way for all of them: the scratch directory, the
//! progress log, the copy of the `shelf` binary, the record of the machine,
//! the warning when other work is using the cores, and writing the results
//! as JSON (`bench-results/<name>.json` unless `--json-out`).

pub mod machine;
pub mod stats;
pub mod table;

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;

use crate::fixtures::shelf::ShelfBinary;
pub use machine::Machine;
pub use table::Row;

/// One benchmark. Writing one is writing this: what it measures, how it
/// prints its table, and what it returns for the JSON.
pub trait Benchmark: clap::Args {
    /// The subcommand (`shelf-bench <NAME>`), and the results file's
    /// default name (`bench-results/<NAME>.json`).
    const NAME: &'static str;
    /// Everything measured, as written to JSON. A value that serialises to
    /// `null` (an `Option` left `None`, as `swebench --build-only` does)
    /// writes nothing.
    type Results: Serialize;
    /// Takes the measurements with what `bench` provides, prints them
    /// (stdout is the table, progress goes through [`Bench::say`]) and
    /// returns them.
    fn measure(&self, bench: &Bench) -> Result<Self::Results>;
}

// A benchmark's options and the harness's own (no doc comment: the
// subcommand's help is the benchmark's own doc comment).
#[allow(missing_docs)]
#[derive(Debug, clap::Args)]
pub struct Run<B: Benchmark> {
    /// The benchmark's options.
    #[command(flatten)]
    pub benchmark: B,
    /// Where to write the JSON results (default:
    /// bench-results/<benchmark>.json; parent directories are created).
    #[arg(long, value_name = "FILE")]
    pub json_out: Option<PathBuf>,
}

impl<B: Benchmark> Run<B> {
    /// Starts the harness, measures, writes the JSON.
    pub fn run(&self) -> Result<()> {
        let bench = Bench::start(B::NAME)?;
        let results = serde_json::to_value(self.benchmark.measure(&bench)?)
            .context("serialising the results")?;
        if results.is_null() {
            return Ok(());
        }
        let path = self
            .json_out
            .clone()
            .unwrap_or_else(|| format!("bench-results/{}.json", B::NAME).into());
        write_json(&path, &results)?;
        bench.say(format!("results written to {}", path.display()));
        Ok(())
    }
}

/// What every benchmark is given: a scratch directory (removed at the
/// end), the progress log, the `shelf` binary, the machine.
pub struct Bench {
    started: Instant,
    work: tempfile::TempDir,
    shelf: OnceCell<ShelfBinary>,
    /// The machine and checkout, read when the benchmark started.
    pub machine: Machine,
    /// The command line, recorded with the results.
    pub command: Vec<String>,
}

impl Bench {
    /// Starts the clock, makes the scratch directory, records the machine
    /// and warns when the machine is already busy.
    pub fn start(name: &str) -> Result<Self> {
        let work = tempfile::Builder::new()
            .prefix(&format!("shelf-bench-{name}-"))
            .tempdir()
            .context("creating a temporary directory")?;
        let bench = Self {
            started: Instant::now(),
            work,
            shelf: OnceCell::new(),
            machine: Machine::current(),
            command: std::env::args().collect(),
        };
        let m = &bench.machine;
        bench.say(format!("{} cores, {}", m.nproc, m.cpu_model));
        bench.warn_if_busy();
        Ok(bench)
    }

    /// One progress line on stderr, stamped with the time since start, so
    /// a long run shows it is alive and where the time goes.
    pub fn say(&self, msg: impl AsRef<str>) {
        let s = self.started.elapsed().as_secs_f64();
        eprintln!("[shelf-bench {s:>7.1}s] {}", msg.as_ref());
    }

    /// The scratch directory.
    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// A private copy of `target/debug/shelf` (made on first use): other
    /// work may rebuild the shared target directory while a benchmark
    /// runs, and every run must measure the same binary.
    pub fn shelf(&self) -> Result<&ShelfBinary> {
        if let Some(s) = self.shelf.get() {
            return Ok(s);
        }
        let s = ShelfBinary::prepare(self.work())?;
        self.say(format!("shelf binary {}", s.source.display()));
        Ok(self.shelf.get_or_init(|| s))
    }

    /// Says so when other work is already using the cores: embedding takes
    /// all of them, so a concurrent compile or build slows it in
    /// proportion, and the medians then measure the machine, not shelf.
    fn warn_if_busy(&self) {
        let m = &self.machine;
        let one_minute = m
            .loadavg_at_start
            .as_deref()
            .and_then(|l| l.split_whitespace().next()?.parse::<f64>().ok());
        if let Some(load) = one_minute
            && load > 0.75 * m.nproc as f64
        {
            self.say(format!(
                "warning: load average {load:.2} on {} cores before starting: \
                 results will be slowed by other work",
                m.nproc
            ));
        }
    }
}

/// The workspace root (where `.runtime/` and `target/` are).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The checkout's provisioned embedding runtime (`.runtime/`).
pub fn runtime() -> Result<shelf_embed::Runtime> {
    shelf_embed::Runtime::locate(Some(&workspace_root().join(".runtime")))
        .context("locating the embedding runtime (run scripts/setup in the checkout)")
}

/// Writes `results` as pretty JSON with a final newline, creating the
/// parent directories: the one place results are written.
pub fn write_json(path: &Path, results: &impl Serialize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut text = serde_json::to_string_pretty(results).context("serialising results")?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}
