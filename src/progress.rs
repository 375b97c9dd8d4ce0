//! Build progress for people and for logs: an indicatif bar when stderr is
//! a terminal, otherwise (CI, or stderr redirected to a file) a plain line
//! per stage and every ~10% (or 15 s), so a log shows the work is alive
//! without drowning in output. `-q` silences both. Progress goes to stderr
//! only, so it never mixes with `--json` on stdout.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use shelf_builder::{Observer, Stage};

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences progress for the rest of the process (`-q`).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether `-q` silenced progress.
pub fn is_quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Chooses bars or lines by whether stderr is a terminal; nothing with `-q`.
pub fn for_stderr() -> Box<dyn Observer> {
    if QUIET.load(Ordering::Relaxed) {
        Box::new(())
    } else if std::io::stderr().is_terminal() {
        Box::new(Bars(Mutex::new(None)))
    } else {
        Box::new(Lines(Mutex::new(LineState::default())))
    }
}

struct Bars(Mutex<Option<ProgressBar>>);

impl Observer for Bars {
    fn stage(&self, stage: Stage, total: u64) {
        let mut bar = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = bar.take() {
            b.finish_and_clear();
        }
        let b = ProgressBar::new(total);
        let style =
            ProgressStyle::with_template("{prefix:>6} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
        b.set_style(style);
        b.set_prefix(stage.name());
        *bar = Some(b);
    }

    fn advance(&self, n: u64) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            b.inc(n);
        }
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Some(b) = self.0.lock().unwrap_or_else(|e| e.into_inner()).take() {
            b.finish_and_clear();
        }
    }
}

#[derive(Default)]
struct LineState {
    stage: Option<Stage>,
    total: u64,
    done: u64,
    next_report: u64,
    last_line: Option<Instant>,
    started: Option<Instant>,
}

struct Lines(Mutex<LineState>);

impl Observer for Lines {
    fn stage(&self, stage: Stage, total: u64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if s.stage != Some(stage) {
            s.started = Some(Instant::now());
            s.done = 0;
        }
        *s = LineState {
            stage: Some(stage),
            total,
            next_report: total / 10,
            last_line: Some(Instant::now()),
            ..*s
        };
        if total > 0 {
            eprintln!("{}: {total} to do", stage.name());
        }
    }

    fn advance(&self, n: u64) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        s.done += n;
        let stale = s
            .last_line
            .is_none_or(|t| t.elapsed() > Duration::from_secs(15));
        if s.total > 0 && s.done < s.total && (s.done >= s.next_report || stale) {
            let rate = s
                .started
                .map(|t| s.done as f64 / t.elapsed().as_secs_f64().max(1e-3))
                .unwrap_or(0.0);
            eprintln!(
                "{}: {}/{} ({:.0}%, {rate:.1}/s)",
                s.stage.map_or("?", Stage::name),
                s.done,
                s.total,
                100.0 * s.done as f64 / s.total as f64
            );
            s.next_report = s.done + (s.total / 10).max(1);
            s.last_line = Some(Instant::now());
        }
    }
}
