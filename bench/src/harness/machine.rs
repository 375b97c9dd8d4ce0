//! What the numbers were measured on, recorded with them: throughput on 2
//! cores means nothing without saying so.

use std::process::Command;

use serde::{Deserialize, Serialize};

use super::workspace_root;

/// The machine and checkout a result came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Machine {
    /// Cores available to this process.
    pub nproc: usize,
    /// CPU model name from /proc/cpuinfo.
    pub cpu_model: String,
    /// Total memory in MiB from /proc/meminfo.
    pub mem_total_mib: u64,
    /// The checkout's HEAD commit, if git can tell.
    pub git_head: Option<String>,
    /// Whether the checkout had uncommitted changes.
    pub git_dirty: Option<bool>,
    /// Load averages when the benchmark started.
    pub loadavg_at_start: Option<String>,
}

impl Machine {
    /// Reads the current machine; unknown fields are left empty rather than
    /// failing the benchmark.
    pub fn current() -> Self {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = field(&cpuinfo, "model name").unwrap_or_else(|| "unknown".into());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_total_mib = field(&meminfo, "MemTotal")
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024);
        let git = |args: &[&str]| {
            Command::new("git")
                .args(args)
                .current_dir(workspace_root())
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        Self {
            nproc,
            cpu_model,
            mem_total_mib,
            git_head: git(&["rev-parse", "HEAD"]),
            git_dirty: git(&["status", "--porcelain"]).map(|s| !s.is_empty()),
            loadavg_at_start: loadavg(),
        }
    }
}

/// The 1, 5 and 15 minute load averages from /proc/loadavg: recorded with
/// each run because other work on the machine slows embedding directly.
pub fn loadavg() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The value of the first `key : value` line.
fn field(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}
