//! Vectors kept outside bundles, as the builder sees them: an embedding
//! cache looked up before embedding and given what the cache lacks after
//! (the store's, in `shelf build --store`), and sharded builds that only
//! fill it (`--shard I/N`). The builder knows no store: the cache is a
//! trait its caller implements.
//!
//! Reusing a vector from the cache is sound because a vector depends only on
//! the text and the model (every text is embedded alone), and the content
//! id is the sha256 of exactly those: a build that takes its vectors from
//! the cache writes the bundle a cold build writes, byte for byte.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Instant;

use serde::Serialize;
use shelf_embed::Embedder;

use crate::report::{Observer, Stage};
use crate::{BuildError, BuildRequest, chunk_files, embedding, read_files};

/// An embedding cache: vectors by content id for the embedder's model.
pub trait VectorCache: Sync {
    /// Which of `ids` the cache holds (cheap: decided from an index, no
    /// vector moved), one answer per id.
    fn holds(&self, ids: &[[u8; 32]]) -> Result<Vec<bool>, BuildError>;
    /// The vectors of `ids` that the cache can hand out, verified. An id it
    /// held but cannot hand out now (a damaged pack) is left out: the
    /// builder embeds it.
    fn fetch(&self, ids: &[[u8; 32]]) -> Result<HashMap<[u8; 32], Vec<f32>>, BuildError>;
    /// Stores vectors the cache lacks.
    fn save(&self, vectors: &[([u8; 32], &[f32])]) -> Result<(), BuildError>;
}

/// What a build or shard did with a store's embedding cache (filled in by
/// the cache's implementer; part of `shelf build --json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CacheReport {
    /// The store.
    pub store: String,
    /// The model identity digest the cache is keyed by.
    pub model: String,
    /// Packs of this model in the store.
    pub packs_listed: usize,
    /// Distinct content ids those packs hold.
    pub vectors_listed: usize,
    /// Packs downloaded for vectors.
    pub packs_read: usize,
    /// Bytes downloaded (id tables and packs).
    pub bytes_read: u64,
    /// Vectors pushed (the ones the cache lacked).
    pub pushed: u64,
    /// Packs written (`sha256:…`); a pack that was already there counts too.
    pub packs_written: Vec<String>,
    /// Packs refused (damaged, another model or dimensions, unknown layout):
    /// their vectors were embedded again.
    pub refused: Vec<RefusedPack>,
    /// The uses record written for the bundle (builds, not shards).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uses_record: Option<String>,
    /// Milliseconds spent on the cache: listing, id tables, downloads,
    /// uploads.
    pub ms: u64,
}

/// A pack the cache refused.
#[derive(Debug, Clone, Serialize)]
pub struct RefusedPack {
    /// Its key.
    pub key: String,
    /// Why.
    pub reason: String,
}

/// One of N deterministic shares of the chunks a cache lacks: share I holds
/// the chunks whose content id, its first 8 bytes read as a little-endian
/// u64, is I-1 modulo N. The share of a chunk depends on its id alone, so
/// shards that start at different times (and see different cache states)
/// never leave a chunk to nobody and never embed one twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    /// How many shares.
    pub count: u32,
}

/// Most shares a build can be split into.
pub const MAX_SHARDS: u32 = 1024;

impl Shard {
    /// Whether chunk `id` is in this share.
    pub fn takes(&self, id: &[u8; 32]) -> bool {
        let mut first = [0u8; 8];
        first.copy_from_slice(&id[..8]);
        u64::from_le_bytes(first) % u64::from(self.count) == u64::from(self.index - 1)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let err = || {
            format!("'{s}' is not a shard: expected I/N with 1 <= I <= N <= {MAX_SHARDS}, e.g. 2/4")
        };
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (u32, u32) = (
            i.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if index == 0 || index > count || count > MAX_SHARDS {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

/// Chunk counts of a shard.
#[derive(Debug, Clone, Serialize)]
pub struct ShardChunks {
    /// Chunks at the commit.
    pub total: u64,
    /// Distinct chunk texts.
    pub unique: u64,
    /// Distinct texts the cache already held.
    pub cached: u64,
    /// Distinct texts it lacked (over every share).
    pub missing: u64,
    /// Of those, this share's: embedded and pushed by this shard.
    pub embedded: u64,
}

/// The summary of one shard (`shelf build --shard I/N --json`).
#[derive(Debug, Clone, Serialize)]
pub struct ShardReport {
    /// `I/N`.
    pub shard: String,
    /// Repository name recorded.
    pub repository: String,
    /// Commit id.
    pub commit: String,
    /// Ref built, if any.
    pub git_ref: Option<String>,
    /// Files with chunks.
    pub files_indexed: u64,
    /// Chunks.
    pub chunks: ShardChunks,
    /// What was read from and pushed to the cache (set by the caller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheReport>,
    /// Milliseconds per stage (`read`, `chunk`, `lookup`, `embed`, `push`),
    /// and `total`.
    pub timings_ms: std::collections::BTreeMap<String, u64>,
}

/// A shard: reads and chunks the commit as a build does, asks `cache`
/// which chunks it lacks, embeds this share of those and saves them. Writes
/// no bundle; a build with the same cache afterwards embeds nothing the
/// shards covered.
pub fn embed_shard(
    req: &BuildRequest,
    embedder: &Embedder,
    cache: &dyn VectorCache,
    shard: Shard,
    observer: &dyn Observer,
) -> Result<ShardReport, BuildError> {
    let started = Instant::now();
    let mut timings = std::collections::BTreeMap::new();
    let mut timed = |name: &str, t: Instant| {
        timings.insert(name.to_string(), t.elapsed().as_millis() as u64);
    };
    let t = Instant::now();
    let read = read_files(req, embedder, observer)?;
    timed("read", t);
    let t = Instant::now();
    let chunked = chunk_files(&read, embedder, None, observer);
    timed("chunk", t);

    let t = Instant::now();
    let mut unique = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    for file in &chunked {
        for c in &file.chunks {
            total += 1;
            if seen.insert(c.content_id) {
                unique.push(c);
            }
        }
    }
    let ids: Vec<[u8; 32]> = unique.iter().map(|c| c.content_id).collect();
    let held = cache.holds(&ids)?;
    let missing: Vec<&crate::chunker::Chunk> = unique
        .iter()
        .zip(&held)
        .filter(|(_, h)| !**h)
        .map(|(c, _)| *c)
        .collect();
    let share: Vec<&crate::chunker::Chunk> = missing
        .iter()
        .copied()
        .filter(|c| shard.takes(&c.content_id))
        .collect();
    timed("lookup", t);
    tracing::info!(
        %shard,
        chunks = unique.len(),
        missing = missing.len(),
        share = share.len(),
        "embedding this shard's share of the chunks the cache lacks"
    );

    let t = Instant::now();
    observer.stage(Stage::Embed, share.len() as u64);
    let vectors = embedding::embed_missing(embedder, &share, observer)?;
    timed("embed", t);
    let t = Instant::now();
    let pairs: Vec<([u8; 32], &[f32])> = share
        .iter()
        .zip(&vectors)
        .map(|(c, v)| (c.content_id, v.as_slice()))
        .collect();
    cache.save(&pairs)?;
    timed("push", t);
    timed("total", started);

    Ok(ShardReport {
        shard: shard.to_string(),
        repository: read.snapshot.repository.clone(),
        commit: read.snapshot.commit.clone(),
        git_ref: read.snapshot.git_ref.clone(),
        files_indexed: chunked.iter().filter(|f| !f.chunks.is_empty()).count() as u64,
        chunks: ShardChunks {
            total,
            unique: unique.len() as u64,
            cached: (unique.len() - missing.len()) as u64,
            missing: missing.len() as u64,
            embedded: share.len() as u64,
        },
        cache: None,
        timings_ms: timings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_parse_and_refuse_what_is_not_one() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "1/0", "x/2", "3", "1/2000", ""] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("expected I/N"), "{bad}: {e}");
        }
    }

    #[test]
    fn every_id_is_in_exactly_one_share_and_shares_are_balanced() {
        let n = 4;
        let shards: Vec<Shard> = (1..=n).map(|index| Shard { index, count: n }).collect();
        let mut sizes = vec![0usize; n as usize];
        for i in 0..4000u32 {
            let id = shelf_formats::Digest::of(&i.to_le_bytes());
            let owners: Vec<usize> = (0..n as usize)
                .filter(|&s| shards[s].takes(id.as_bytes()))
                .collect();
            assert_eq!(owners.len(), 1);
            sizes[owners[0]] += 1;
        }
        // sha256 ids spread evenly: each share within 10% of a quarter.
        assert!(
            sizes.iter().all(|&s| (900..=1100).contains(&s)),
            "{sizes:?}"
        );
    }
}
