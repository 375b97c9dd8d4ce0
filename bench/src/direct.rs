//! The embedder alone, in this process, on exactly the texts a build
//! embeds: the ceiling the builder's embed stage is compared against, so
//! overhead the builder adds around the model (queueing, copies, locking)
//! shows up as a ratio below 1.

use std::collections::HashSet;
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Serialize;
use shelf_builder::ModelTokens;
use shelf_builder::Settings;
use shelf_builder::chunker::{Chunk, ChunkParams, chunk_file};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};

use crate::corpus::File;

/// Direct embedding timings.
#[derive(Debug, Clone, Serialize)]
pub struct Direct {
    /// Chunks the files make, duplicates included.
    pub chunks_total: usize,
    /// Unique chunk texts embedded per run.
    pub chunks_unique: usize,
    /// Sum of the unique chunks' tokens.
    pub tokens_unique: u64,
    /// Milliseconds to embed every unique chunk, per run.
    pub runs_ms: Vec<f64>,
    /// Load averages after each run.
    pub loadavg_after: Vec<Option<String>>,
}

/// Chunks `files` as a build of them does, then embeds the unique chunks
/// `runs` times, timing only the embedding.
pub fn measure(files: &[File], runs: usize, progress: impl Fn(&str)) -> Result<Direct> {
    let runtime = Runtime::locate(None)
        .context("locating the embedding runtime (run scripts/setup in the checkout)")?;
    let embedder = Embedder::load(&runtime, &EmbedderOptions::default())
        .context("loading the embedding model")?;
    let (unique, chunks_total) = unique_chunks(files, &embedder);
    let tokens_unique = unique.iter().map(|c| u64::from(c.tokens)).sum();
    let mut runs_ms = Vec::with_capacity(runs);
    let mut loadavg_after = Vec::with_capacity(runs);
    for run in 0..runs {
        progress(&format!(
            "direct embed run {}/{runs}: {} unique chunks",
            run + 1,
            unique.len()
        ));
        let started = Instant::now();
        // One call over every text, as the builder's embed stage makes.
        let texts: Vec<&str> = unique.iter().map(|c| c.embed_text.as_str()).collect();
        let vectors = embedder
            .embed_documents(&texts)
            .context("embedding the chunks directly")?;
        // Keeps the optimiser from discarding the work; costs nothing.
        std::hint::black_box(vectors);
        runs_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        loadavg_after.push(crate::machine::loadavg());
        progress(&format!(
            "  {:.1} s, {:.1} chunks/s (load {})",
            started.elapsed().as_secs_f64(),
            unique.len() as f64 / started.elapsed().as_secs_f64(),
            loadavg_after.last().cloned().flatten().unwrap_or_default()
        ));
    }
    Ok(Direct {
        chunks_total,
        chunks_unique: unique.len(),
        tokens_unique,
        runs_ms,
        loadavg_after,
    })
}

/// What a cold build embeds, in its order: every chunk of every file with
/// the default settings (the generated repository has no shelf.toml), each
/// content id once, longest first (then by content id), as
/// `builder/src/embedding.rs` orders them. Returns them and the number of
/// chunks before deduplication.
pub(crate) fn unique_chunks(files: &[File], embedder: &Embedder) -> (Vec<Chunk>, usize) {
    let settings = Settings::default();
    let params = ChunkParams {
        max_tokens: settings.max_chunk_tokens,
        overlap_lines: settings.overlap_lines,
        chunker: settings.chunker,
    };
    let spans = ModelTokens(embedder);
    let mut seen = HashSet::new();
    let mut unique = Vec::new();
    let mut total = 0;
    for f in files {
        for c in chunk_file(&f.path, &f.text, params, &spans, embedder.identity()) {
            total += 1;
            if seen.insert(c.content_id) {
                unique.push(c);
            }
        }
    }
    unique.sort_by(|a, b| {
        b.tokens
            .cmp(&a.tokens)
            .then(a.content_id.cmp(&b.content_id))
    });
    (unique, total)
}
