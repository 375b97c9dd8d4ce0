//! Faults that tests inject into a running server, to check that what the
//! server does when its own code fails (a follower that panics) is what the
//! docs say. Compiled into debug builds only (the tests' builds): a release
//! build, which is what is shipped and deployed, has no way to reach them.
//!
//! A test sets `SHELF_TEST_FAULTS` to a directory and creates a file named
//! after an injection point in it (`follower-check-<repo>`,
//! `root-watcher`); while that file exists, the code at that point panics.

/// The variable naming the directory of fault triggers.
pub const FAULTS_ENV: &str = "SHELF_TEST_FAULTS";

/// Panics if a test asked for a fault at `point` (debug builds only).
#[cfg(debug_assertions)]
pub fn inject(point: &str) {
    let Some(dir) = std::env::var_os(FAULTS_ENV) else {
        return;
    };
    let trigger = std::path::Path::new(&dir).join(point);
    if trigger.exists() {
        panic!(
            "fault injected at {point} ({} exists; a debug build's test hook)",
            trigger.display()
        );
    }
}

/// Release builds: nothing is ever injected.
#[cfg(not(debug_assertions))]
#[inline(always)]
pub fn inject(_point: &str) {}
