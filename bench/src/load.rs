//! What is left of the old load module until the quality benchmarks move
//! onto the harness: a process's resident set, for `shelf_cli`.

/// A process's resident set now and at its peak, KiB (`VmRSS`, `VmHWM`).
pub fn process_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
