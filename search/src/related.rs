//! "More like this" ([`related`]): the chunks most like a given file's
//! lines, by the vectors the bundle already stores for them. The chunks
//! of the file that overlap the range are the queries (no model call),
//! every other file's chunks are scored by their nearest one (exact on a
//! 1.3 bundle), and the best come back as search results.

use std::time::Instant;

use schemars::JsonSchema;
use serde::Serialize;

use crate::answer::{BundleRef, ResultChunk, Target, bundle_ref};
use crate::budget::{Truncation, fit_chunks};
use crate::files::{FileError, check_path};
use crate::flat::Admit;
use crate::language::language_of;

/// A `find_related` request.
#[derive(Debug, Clone)]
pub struct RelatedRequest {
    /// The file to start from.
    pub path: String,
    /// First line of the range (default 1).
    pub start_line: Option<u32>,
    /// Last line of the range, inclusive (default: the last).
    pub end_line: Option<u32>,
    /// How many related chunks.
    pub k: usize,
    /// Bound on the answer.
    pub max_tokens: usize,
}

/// The chunks most like a file's lines.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct RelatedAnswer {
    /// The repository of the file started from.
    pub repo: String,
    /// The file started from.
    pub path: String,
    /// The lines its matching chunks cover.
    pub start_line: u32,
    /// Last of them, inclusive.
    pub end_line: u32,
    /// How many of its chunks were the queries.
    pub query_chunks: usize,
    /// Chunks of other files, most alike first (`score`: cosine to the
    /// nearest query chunk).
    pub results: Vec<ResultChunk>,
    /// Every bundle that answered.
    pub repos: Vec<BundleRef>,
    /// Milliseconds.
    pub took_ms: f64,
    /// What was left out by `max_tokens`.
    pub truncated: Option<Truncation>,
}

/// The `request.k` chunks of other files most like the chunks of
/// `request.path` that overlap its line range, across every target (one
/// model, so their scores compare).
pub fn related(
    targets: &[Target<'_>],
    request: &RelatedRequest,
) -> Result<RelatedAnswer, FileError> {
    let started = Instant::now();
    let path = check_path(&request.path)?;
    let damaged = |e: crate::mapped::OpenError| FileError::Damaged(e.to_string());
    // The target with the file, and its chunks over the range.
    let mut source = None;
    for (ti, t) in targets.iter().enumerate() {
        let chunks = t.bundle.chunks().map_err(damaged)?;
        let of_file: Vec<u64> = (0..chunks.len())
            .filter(|&i| chunks.get(i).is_some_and(|c| c.path == path))
            .map(|i| i as u64)
            .collect();
        if of_file.is_empty() {
            continue;
        }
        if source.is_some() {
            return Err(FileError::Ambiguous {
                path: path.to_string(),
                repos: targets
                    .iter()
                    .filter(|t| {
                        t.bundle.chunks().is_ok_and(|c| {
                            (0..c.len()).any(|i| c.get(i).is_some_and(|c| c.path == path))
                        })
                    })
                    .map(|t| t.repo.to_string())
                    .collect(),
            });
        }
        source = Some((ti, of_file));
    }
    let Some((ti, of_file)) = source else {
        return Err(FileError::NotFound(format!(
            "'{path}' has no indexed chunks in {}; find files with list_files or search_code",
            match targets {
                [t] => format!("repository '{}'", t.repo),
                _ => format!("any of {} repositories", targets.len()),
            }
        )));
    };
    let home = &targets[ti];
    let store = home.bundle.chunks().map_err(damaged)?;
    let start = request.start_line.unwrap_or(1).max(1);
    let end = request.end_line.unwrap_or(u32::MAX);
    if end < start {
        return Err(FileError::BadRange(format!(
            "end_line {end} is before start_line {start}"
        )));
    }
    let chosen: Vec<u64> = of_file
        .iter()
        .copied()
        .filter(|&k| {
            store
                .get(k as usize)
                .is_some_and(|c| c.start_line <= end && c.end_line >= start)
        })
        .collect();
    if chosen.is_empty() {
        let last = of_file
            .iter()
            .filter_map(|&k| store.get(k as usize))
            .map(|c| c.end_line)
            .max()
            .unwrap_or(0);
        return Err(FileError::BadRange(format!(
            "no chunk of '{path}' covers lines {start}-{}; its chunks cover lines 1-{last}",
            if end == u32::MAX {
                "the end".to_string()
            } else {
                end.to_string()
            }
        )));
    }
    let covered = (
        chosen
            .iter()
            .filter_map(|&k| store.get(k as usize))
            .map(|c| c.start_line)
            .min()
            .unwrap_or(start),
        chosen
            .iter()
            .filter_map(|&k| store.get(k as usize))
            .map(|c| c.end_line)
            .max()
            .unwrap_or(start),
    );
    let vectors: Vec<Vec<f32>> = chosen
        .iter()
        .filter_map(|&k| home.bundle.vector(k))
        .collect();
    let queries: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    let mut scored = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let chunks = t.bundle.chunks().map_err(damaged)?;
        let other_file = |key: u64| chunks.get(key as usize).is_some_and(|c| c.path != path);
        let admit = if i == ti {
            Admit::Where(&other_file)
        } else {
            Admit::All
        };
        for hit in t
            .bundle
            .nearest(&queries, request.k, admit)
            .map_err(damaged)?
        {
            scored.push((hit.score, i, hit.key));
        }
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    scored.truncate(request.k);
    let mut results = Vec::with_capacity(scored.len());
    for (score, i, key) in scored {
        let t = &targets[i];
        let Some(c) = t.bundle.chunk(key) else {
            continue;
        };
        results.push(ResultChunk {
            rank: results.len() + 1,
            repo: t.repo.to_string(),
            score,
            semantic_score: Some(score),
            lexical_score: None,
            path: c.path.to_string(),
            start_line: c.start_line,
            end_line: c.end_line,
            language: language_of(c.path),
            chunk_id: hex::encode(c.content_id),
            text: c.text.to_string(),
        });
    }
    let truncated = fit_chunks(
        &mut results,
        request.max_tokens,
        path.len() + 128,
        "raise max_tokens, lower k, or read a file with read_file",
    );
    Ok(RelatedAnswer {
        repo: home.repo.to_string(),
        path: path.to_string(),
        start_line: covered.0,
        end_line: covered.1,
        query_chunks: queries.len(),
        results,
        repos: targets.iter().map(bundle_ref).collect(),
        took_ms: (started.elapsed().as_secs_f64() * 1e6).round() / 1e3,
        truncated,
    })
}
