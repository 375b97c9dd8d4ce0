//! shelf's benchmarks. Each prints a table (metric, value, target,
//! pass/fail) on stdout, progress on stderr, and writes every raw number to
//! a JSON file so results can be compared across commits.
//!
//! - [`harness`]: the one harness (start, progress, scratch directory, the
//!   `shelf` binary, the machine, the busy check, writing JSON) and the
//!   [`harness::Benchmark`] trait a benchmark implements;
//! - `fixtures`: what benchmarks share (corpus, publishing, servers, the
//!   query pool, the load generator, the development set); no benchmark
//!   imports from another;
//! - [`perf`]: speed and memory;
//! - [`quality`]: retrieval quality.

// So that a benchmark's code reads the same inside this crate and in the
// tests (`use shelf_bench::harness::...`; docs/benchmarks.md, "Adding a
// benchmark").
extern crate self as shelf_bench;

pub mod harness;
pub mod perf;
pub mod quality;

mod fixtures;
