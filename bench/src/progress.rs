//! Progress lines on stderr, stamped with the time since start, so a long
//! run shows it is alive and where the time goes (stdout is the table).

use std::time::Instant;

/// Prints progress lines.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    started: Instant,
}

impl Progress {
    /// Starts the clock.
    pub fn start() -> Self {
        Self {
            started: Instant::now(),
        }
    }

    /// One line on stderr.
    pub fn say(&self, msg: &str) {
        eprintln!(
            "[shelf-bench {:>7.1}s] {msg}",
            self.started.elapsed().as_secs_f64()
        );
    }
}
