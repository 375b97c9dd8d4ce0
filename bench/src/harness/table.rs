//! The human-readable result: one row per metric with its target and
//! whether it was met, aligned for a terminal or a CI log.

use serde::{Deserialize, Serialize};

/// One metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    /// What is measured.
    pub metric: String,
    /// The measured value, formatted.
    pub value: String,
    /// The target, or empty for information only.
    pub target: String,
    /// Met or not; `None` for information only.
    pub pass: Option<bool>,
}

impl Row {
    /// A row without a target.
    pub fn info(metric: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            pass: None,
        }
    }

    /// A row with a target.
    pub fn check(
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        pass: bool,
    ) -> Self {
        Self {
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            pass: Some(pass),
        }
    }
}

/// A table being built, one call per row.
#[derive(Debug, Default)]
pub struct Table {
    /// The rows so far.
    pub rows: Vec<Row>,
}

impl Table {
    /// Adds a row without a target.
    pub fn info(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row::info(metric, value));
    }

    /// Adds a row with a target.
    pub fn check(
        &mut self,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        pass: bool,
    ) {
        self.rows.push(Row::check(metric, value, target, pass));
    }
}

/// The rows as an aligned text table.
pub fn render(rows: &[Row]) -> String {
    let verdict = |r: &Row| match r.pass {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "",
    };
    let header = ["metric", "value", "target", "result"];
    let width = |i: usize, f: &dyn Fn(&Row) -> usize| {
        rows.iter().map(f).max().unwrap_or(0).max(header[i].len())
    };
    let w0 = width(0, &|r| r.metric.chars().count());
    let w1 = width(1, &|r| r.value.chars().count());
    let w2 = width(2, &|r| r.target.chars().count());
    let mut out = format!(
        "{:<w0$}  {:>w1$}  {:<w2$}  {}\n",
        header[0], header[1], header[2], header[3]
    );
    out.push_str(&format!("{}\n", "-".repeat(w0 + w1 + w2 + 6 + 6)));
    for r in rows {
        let line = format!(
            "{:<w0$}  {:>w1$}  {:<w2$}  {}",
            r.metric,
            r.value,
            r.target,
            verdict(r)
        );
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
