//! Long-lived background work, watched: each repository's follower and the
//! store root's watcher run for the server's whole life, so one that ends
//! (a panic, or a loop that returns) must not end silently, leaving
//! `/readyz` with its last word while the tag moves on. A [`Supervised`]
//! task catches the end, logs it once with its cause, counts it
//! (`shelf_task_failures_total`), reports it as an `internal` problem where
//! readiness is read, and starts the task again after a backoff (one poll
//! interval, doubling, at most the retry cap; back to the start once a run
//! lasted longer than the cap). The problem is cleared by the task itself
//! once its new run has done one round of work.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::metrics::Metrics;
use crate::reload::backoff;
use crate::state::{Cause, Problem, now_rfc3339, rfc3339_after};

/// The latest end of one supervised task, while it has not yet done a
/// round of work since: shared by the task, its supervisor and whoever
/// reports readiness.
#[derive(Debug, Default)]
pub struct TaskHealth {
    problem: Mutex<Option<Problem>>,
}

impl TaskHealth {
    /// Why the task is not running as it should, if it is not.
    pub fn problem(&self) -> Option<Problem> {
        self.lock().clone()
    }

    /// The task has done a round of work: it runs again.
    pub fn clear(&self) {
        let mut problem = self.lock();
        if problem.is_some() {
            *problem = None;
        }
    }

    fn set(&self, problem: Problem) {
        *self.lock() = Some(problem);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Problem>> {
        // Only whole values are stored: a poisoned lock holds a valid one.
        self.problem
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What a supervised task is, for its log lines, metric and problem.
#[derive(Debug, Clone)]
pub struct Supervised {
    /// The kind of task (`follower`, `root_watcher`): the metric's `task`.
    pub task: &'static str,
    /// The repository it serves (the metric's `repo`; empty for the root
    /// watcher, which serves several).
    pub repo: String,
    /// How it is named in messages (`the follower of repository 'api'`).
    pub described: String,
    /// Where its problem is reported.
    pub health: Arc<TaskHealth>,
    /// The server's metrics.
    pub metrics: Metrics,
    /// The first wait before a restart (the poll interval).
    pub first_wait: Duration,
    /// The longest wait (the retry cap).
    pub max_wait: Duration,
}

impl Supervised {
    /// Runs the task `start` makes, and makes and runs it again each time
    /// it ends, for as long as this future is polled (aborting it aborts
    /// the task: both are one future).
    pub async fn run<F, Fut>(self, mut start: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut failures = 0u32;
        loop {
            let began = Instant::now();
            let ended = AssertUnwindSafe(start()).catch_unwind().await;
            let (how, cause) = match ended {
                Ok(()) => ("ended", "it returned, which it never should".to_string()),
                Err(payload) => ("panic", format!("it panicked: {}", panic_text(&*payload))),
            };
            // A run that lasted past the cap was healthy: start over.
            if began.elapsed() > self.max_wait.max(self.first_wait) {
                failures = 0;
            }
            failures = failures.saturating_add(1);
            let wait = backoff(self.first_wait, failures, self.max_wait);
            self.metrics
                .task_failures
                .with_label_values(&[self.task, self.repo.as_str(), how])
                .inc();
            let message = format!(
                "internal: {} stopped ({cause}); it is restarted (a bug: please report it with this log)",
                self.described
            );
            tracing::error!(
                task = self.task,
                repo = %self.repo,
                failures,
                restart_in_ms = wait.as_millis() as u64,
                "{message}"
            );
            let since = match self.health.problem() {
                Some(p) => p.since,
                None => now_rfc3339(),
            };
            self.health.set(Problem {
                cause: Cause::Internal,
                digest: None,
                message,
                failures,
                since,
                retry_at: Some(rfc3339_after(wait)),
            });
            tokio::time::sleep(wait).await;
        }
    }
}

/// The text a panic carried (`panic!` with a message gives a `&str` or a
/// `String`).
fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervised(health: &Arc<TaskHealth>, metrics: &Metrics) -> Supervised {
        Supervised {
            task: "follower",
            repo: "api".into(),
            described: "the follower of repository 'api'".into(),
            health: Arc::clone(health),
            metrics: metrics.clone(),
            first_wait: Duration::from_millis(10),
            max_wait: Duration::from_millis(40),
        }
    }

    #[tokio::test]
    async fn a_panicking_task_is_reported_counted_and_started_again() {
        let health = Arc::new(TaskHealth::default());
        let metrics = Metrics::new().unwrap();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let mut done_tx = Some(done_tx);
        let counted = Arc::clone(&runs);
        let seen = Arc::clone(&health);
        let task = tokio::spawn(supervised(&health, &metrics).run(move || {
            let n = counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let seen = Arc::clone(&seen);
            let done = if n == 2 { done_tx.take() } else { None };
            async move {
                match n {
                    0 => panic!("injected"),
                    1 => {}
                    _ => {
                        // The third run sees what the first two left.
                        let problem = seen.problem();
                        if let Some(done) = done {
                            let _ = done.send(problem);
                        }
                        std::future::pending::<()>().await;
                    }
                }
            }
        }));
        let problem = tokio::time::timeout(Duration::from_secs(10), done_rx)
            .await
            .expect("the task is started a third time")
            .unwrap()
            .expect("a problem is reported");
        assert_eq!(problem.cause, Cause::Internal);
        assert!(
            problem.message.contains("it returned"),
            "the latest end: {}",
            problem.message
        );
        assert_eq!(problem.failures, 2);
        let count = |how: &str| {
            metrics
                .task_failures
                .with_label_values(&["follower", "api", how])
                .get()
        };
        assert_eq!((count("panic"), count("ended")), (1, 1));
        // Aborting the supervisor ends the task it runs.
        task.abort();
        assert!(task.await.unwrap_err().is_cancelled());
        assert_eq!(runs.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
