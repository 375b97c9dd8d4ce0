//! The example of docs/benchmarks.md ("Adding a benchmark") is this file's
//! code between the markers, verbatim: it compiles against the harness,
//! runs, and writes its JSON, so the documentation stays true.

// example start
use std::time::Instant;

use anyhow::Result;
use serde::{Deserialize, Serialize};
use shelf_bench::harness::{Bench, Benchmark, Machine, Row, stats::median, table};

/// Writing 1 MiB to the scratch directory and syncing it.
#[derive(Debug, clap::Args)]
pub struct Scratch {
    /// Writes (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// What `shelf-bench scratch` writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    runs_ms: Vec<f64>,
    rows: Vec<Row>,
}

impl Benchmark for Scratch {
    const NAME: &'static str = "scratch";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let mut runs_ms = Vec::new();
        for i in 0..self.runs {
            let t = Instant::now();
            let f = std::fs::File::create(b.work().join(format!("{i}.bin")))?;
            std::io::Write::write_all(&mut &f, &[7; 1 << 20])?;
            f.sync_all()?;
            runs_ms.push(t.elapsed().as_secs_f64() * 1e3);
            b.say(format!("write {}: {:.1} ms", i + 1, runs_ms[i]));
        }
        let value = format!("{:.1} ms", median(&runs_ms));
        let rows = vec![Row::info("write and sync 1 MiB (median)", value)];
        print!("{}", table::render(&rows));
        let (command, machine) = (b.command.clone(), b.machine.clone());
        Ok(Results {
            command,
            machine,
            runs_ms,
            rows,
        })
    }
}
// example end

#[test]
fn the_documented_example_runs_and_writes_its_results() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scratch.json");
    let run = shelf_bench::harness::Run {
        benchmark: Scratch { runs: 2 },
        json_out: Some(out.clone()),
    };
    run.run().unwrap();
    let results: Results = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(results.runs_ms.len(), 2);
    assert!(results.runs_ms.iter().all(|ms| *ms > 0.0), "{results:?}");
    assert_eq!(results.rows[0].metric, "write and sync 1 MiB (median)");
    assert!(results.machine.nproc >= 1);
}

#[test]
fn the_documentation_shows_this_example_verbatim() {
    let this = include_str!("adding_a_benchmark.rs");
    let (_, rest) = this.split_once("// example start\n").unwrap();
    let (example, _) = rest.split_once("// example end").unwrap();
    let docs = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/benchmarks.md"),
    )
    .unwrap();
    assert!(
        docs.contains(&format!("```rust\n{example}```")),
        "docs/benchmarks.md, \"Adding a benchmark\", must show the example of \
         bench/tests/adding_a_benchmark.rs verbatim"
    );
}
