//! The embed stage: vectors for the chunks no previous bundle had.
//!
//! The embedder runs every text alone on one of its sessions (one per core),
//! so a chunk's vector depends only on its text, never on which other chunks
//! happen to be new in this build: an incremental build reuses exactly the
//! bits a cold build computes (tested in `builder/tests/build.rs`).

use shelf_embed::{EmbedError, Embedder};

use crate::chunker::Chunk;
use crate::report::Observer;

/// One vector per chunk, in the order given. Longest texts go first, so the
/// last calls are short and no session idles while another finishes a long
/// one; the order changes no vector.
pub(crate) fn embed_missing(
    embedder: &Embedder,
    chunks: &[&Chunk],
    observer: &dyn Observer,
) -> Result<Vec<Vec<f32>>, EmbedError> {
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by(|&a, &b| {
        chunks[b]
            .tokens
            .cmp(&chunks[a].tokens)
            .then(chunks[a].content_id.cmp(&chunks[b].content_id))
    });
    let texts: Vec<&str> = order
        .iter()
        .map(|&i| chunks[i].embed_text.as_str())
        .collect();
    let embedded = embedder.embed_documents_with(&texts, &|n| observer.advance(n as u64))?;
    let mut out = vec![Vec::new(); chunks.len()];
    for (i, v) in order.into_iter().zip(embedded) {
        out[i] = v;
    }
    Ok(out)
}
