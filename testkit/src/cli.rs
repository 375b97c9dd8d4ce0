//! The `shelf` binary run as a user runs it, for integration tests: the
//! provisioned runtime (not whatever `SHELF_RUNTIME` the caller has), quiet
//! logs, and its exit code and output captured.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::GitRepo;

/// Runs `shelf <args>` with `env` added: (exit code, stdout, stderr); the
/// code is -1 when a signal ended it.
pub fn run(shelf: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(shelf);
    c.env_remove("SHELF_RUNTIME")
        .env("SHELF_LOG", "warn")
        .args(args);
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("shelf runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A bundle `shelf build --json` wrote.
pub struct Built {
    /// `sha256:<hex>`.
    pub digest: String,
    /// The bundle file.
    pub path: PathBuf,
    /// The whole build report.
    pub report: serde_json::Value,
}

/// Builds `repo`'s HEAD into `out` and panics with shelf's stderr if that
/// fails.
pub fn build(shelf: &Path, repo: &GitRepo, out: &Path) -> Built {
    let (code, stdout, err) = run(
        shelf,
        &[
            "build",
            "--json",
            "--repo",
            &repo.path().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "shelf build failed: {err}");
    let report: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("shelf build --json printed no JSON ({e}): {stdout}"));
    Built {
        digest: report["digest"].as_str().expect("a digest").to_string(),
        path: PathBuf::from(report["bundle_path"].as_str().expect("a bundle path")),
        report,
    }
}
