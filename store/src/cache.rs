//! The embedding cache in a store: vectors by content id, per model, in
//! immutable packs (`cache/<model>/packs/<sha256>.pack`, layout in
//! `shelf_formats::embedding_cache`), and the uses records that tie a bundle
//! to the packs its vectors are in (docs/store.md, "Embedding cache").
//!
//! A build learns which of its chunks are cached from one listing of the
//! model's packs and a ranged read of each pack's id table (32 bytes per
//! vector, read 16 at a time), then downloads whole packs only for the
//! vectors it takes. Nothing a pack says is trusted before its whole bytes
//! hash to its name and validate: a pack that fails is refused with a
//! warning, and its vectors are embedded again.

use std::collections::{BTreeMap, HashMap};

use futures_util::{StreamExt, stream};
use serde::Serialize;
use shelf_formats::embedding_cache::{
    HEADER_LEN, ID_LEN, PackHead, READ_LIMIT_BYTES, UsesRecord, VectorPack, model_digest,
    write_packs,
};
use shelf_formats::keys::{cache_pack_key, cache_packs_prefix, cache_uses_key, pack_from_key};
use shelf_formats::{Digest, ModelIdentity};

use crate::{Created, Store, StoreError};

/// Id tables read at once while planning (small ranged reads).
const PLAN_CONCURRENCY: usize = 16;
/// Whole packs downloaded at once (each up to 32 MiB in memory).
const FETCH_CONCURRENCY: usize = 4;
/// The first read of a pack takes its header and the ids of this many
/// vectors (64 KiB): one request for most packs, two for large ones.
const FIRST_READ_IDS: u64 = 2048;

/// A pack in the listing.
#[derive(Debug, Clone)]
pub struct ListedPack {
    /// The sha256 of its bytes (its name).
    pub digest: Digest,
    /// Its key.
    pub key: String,
    /// Its size.
    pub size: u64,
}

/// A pack that was not used, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Refusal {
    /// The pack's key.
    pub key: String,
    /// What is wrong with it.
    pub reason: String,
}

/// Which content ids a store's cache holds for one model, and in which
/// pack: built from the packs' id tables, before any vector is moved.
#[derive(Debug)]
pub struct CacheIndex {
    model: Digest,
    dimensions: u32,
    packs: Vec<ListedPack>,
    holder: HashMap<[u8; 32], u32>,
    /// Later packs that hold an id too (racing writers, or a pack written
    /// again after one was damaged): tried when the first is refused.
    also: HashMap<[u8; 32], Vec<u32>>,
    refused: Vec<Refusal>,
    bytes_read: u64,
}

/// Vectors taken from the cache.
#[derive(Debug, Default)]
pub struct Fetched {
    /// The vectors, by content id.
    pub vectors: HashMap<[u8; 32], Vec<f32>>,
    /// The packs they came from (verified).
    pub packs: Vec<Digest>,
    /// Bytes downloaded.
    pub bytes: u64,
    /// Packs refused on download (their vectors are not in `vectors`).
    pub refused: Vec<Refusal>,
}

impl CacheIndex {
    /// Lists `model`'s packs in `store` and reads their id tables. A store
    /// that does not exist yet is an empty cache; a pack whose header or id
    /// table is wrong (another model or dimensions, a size that does not
    /// match, ids out of order, an unknown layout) is refused with a warning.
    pub async fn load(store: &Store, model: &ModelIdentity) -> Result<Self, StoreError> {
        let digest = model_digest(model);
        let listed = match store.list(&cache_packs_prefix(&digest)).await {
            Ok(l) => l,
            Err(e) if Store::is_missing(&e) => Vec::new(),
            Err(e) => return Err(e),
        };
        let packs: Vec<ListedPack> = listed
            .into_iter()
            .filter_map(|o| {
                let (m, pack) = pack_from_key(&o.key)?;
                (m == digest).then_some(ListedPack {
                    digest: pack,
                    key: o.key,
                    size: o.size,
                })
            })
            .collect();
        let dimensions = model.dimensions;
        let mut tables: Vec<(usize, u64, Ids)> = stream::iter(
            packs
                .iter()
                .enumerate()
                .map(|(i, p)| async move { (i, read_ids(store, p, &digest, dimensions).await) }),
        )
        .buffer_unordered(PLAN_CONCURRENCY)
        .map(|(i, r)| r.map(|(bytes, ids)| (i, bytes, ids)))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
        // Listing order, so the same store always gives the same holders.
        tables.sort_by_key(|(i, _, _)| *i);
        let mut index = CacheIndex {
            model: digest,
            dimensions,
            packs,
            holder: HashMap::new(),
            also: HashMap::new(),
            refused: Vec::new(),
            bytes_read: 0,
        };
        for (i, bytes, ids) in tables {
            index.bytes_read += bytes;
            match ids {
                Ok(ids) => {
                    for id in ids {
                        match index.holder.entry(id) {
                            std::collections::hash_map::Entry::Vacant(e) => {
                                e.insert(i as u32);
                            }
                            std::collections::hash_map::Entry::Occupied(_) => {
                                index.also.entry(id).or_default().push(i as u32);
                            }
                        }
                    }
                }
                Err(reason) => index.refuse(index.packs[i].key.clone(), reason),
            }
        }
        Ok(index)
    }

    fn refuse(&mut self, key: String, reason: String) {
        tracing::warn!(pack = %key, %reason, "refused an embedding-cache pack: its vectors will be embedded again (delete it, or let shelf gc remove it once no bundle uses it)");
        self.refused.push(Refusal { key, reason });
    }

    /// The model identity digest the index is for.
    pub fn model(&self) -> &Digest {
        &self.model
    }

    /// Packs listed.
    pub fn packs(&self) -> &[ListedPack] {
        &self.packs
    }

    /// Distinct content ids held.
    pub fn len(&self) -> usize {
        self.holder.len()
    }

    /// Whether the cache holds nothing for this model.
    pub fn is_empty(&self) -> bool {
        self.holder.is_empty()
    }

    /// Bytes read to make the index (headers and id tables).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// Packs refused while reading id tables.
    pub fn refused(&self) -> &[Refusal] {
        &self.refused
    }

    /// Whether a pack's id table lists `id`.
    pub fn holds(&self, id: &[u8; 32]) -> bool {
        self.holder.contains_key(id)
    }

    /// The pack whose id table lists `id` first.
    pub fn holder(&self, id: &[u8; 32]) -> Option<Digest> {
        let i = *self.holder.get(id)? as usize;
        Some(self.packs.get(i)?.digest)
    }

    /// Downloads the packs holding `ids` (whole: a pack is used only after
    /// its bytes hash to its name and validate), and takes their vectors.
    /// An id whose pack is refused is taken from another pack that holds
    /// it, if any; ids no usable pack holds are left out.
    pub async fn fetch(&self, store: &Store, ids: &[[u8; 32]]) -> Result<Fetched, StoreError> {
        let mut out = Fetched::default();
        let mut tried: std::collections::HashSet<u32> = std::collections::HashSet::new();
        let mut pending: Vec<[u8; 32]> = ids.to_vec();
        loop {
            let mut wanted: BTreeMap<u32, Vec<[u8; 32]>> = BTreeMap::new();
            for id in pending.drain(..) {
                let first = self.holder.get(&id).into_iter();
                let later = self.also.get(&id).into_iter().flatten();
                if let Some(&i) = first.chain(later).find(|i| !tried.contains(i)) {
                    wanted.entry(i).or_default().push(id);
                }
            }
            if wanted.is_empty() {
                return Ok(out);
            }
            tried.extend(wanted.keys().copied());
            let mut results: Vec<(u32, u64, Vec<[u8; 32]>, Taken)> =
                stream::iter(wanted.into_iter().map(|(i, ids)| async move {
                    let pack = &self.packs[i as usize];
                    let Some(object) = store.get(&pack.key).await? else {
                        // Deleted since it was listed (gc).
                        return Ok((i, 0, ids, Err(None)));
                    };
                    let taken = self.take(pack, &object.bytes, &ids).map_err(Some);
                    Ok::<_, StoreError>((i, object.bytes.len() as u64, ids, taken))
                }))
                .buffer_unordered(FETCH_CONCURRENCY)
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<_, _>>()?;
            results.sort_by_key(|(i, ..)| *i);
            for (i, bytes, ids, taken) in results {
                out.bytes += bytes;
                let pack = &self.packs[i as usize];
                match taken {
                    Ok(vectors) => {
                        out.packs.push(pack.digest);
                        out.vectors.extend(vectors);
                    }
                    Err(None) => pending.extend(ids),
                    Err(Some(reason)) => {
                        tracing::warn!(pack = %pack.key, %reason, "refused an embedding-cache pack: its vectors will be taken from another pack or embedded again");
                        out.refused.push(Refusal {
                            key: pack.key.clone(),
                            reason,
                        });
                        pending.extend(ids);
                    }
                }
            }
        }
    }

    /// Verifies a downloaded pack and takes the vectors of `ids`.
    fn take(&self, pack: &ListedPack, bytes: &[u8], ids: &[[u8; 32]]) -> Result<Pairs, String> {
        let actual = Digest::of(bytes);
        if actual != pack.digest {
            return Err(format!(
                "its bytes do not match its name (they hash to {actual})"
            ));
        }
        let parsed = VectorPack::parse(bytes).map_err(|e| e.to_string())?;
        parsed
            .head()
            .expect(&self.model, self.dimensions)
            .map_err(|e| e.to_string())?;
        ids.iter()
            .map(|id| {
                parsed
                    .get(id)
                    .map(|v| (*id, v))
                    .ok_or_else(|| "it does not hold an id its table listed".to_string())
            })
            .collect()
    }
}

/// Vectors with their content ids.
type Pairs = Vec<([u8; 32], Vec<f32>)>;
/// A pack's ids, or why it is refused.
type Ids = Result<Vec<[u8; 32]>, String>;
/// The vectors taken from one pack, or why none were: `None` when the
/// pack is gone, else the reason it was refused.
type Taken = Result<Pairs, Option<String>>;

/// Reads a pack's header and id table with ranged reads: the bytes read,
/// and the ids or why the pack is refused. `Err` is a store failure.
async fn read_ids(
    store: &Store,
    pack: &ListedPack,
    model: &Digest,
    dimensions: u32,
) -> Result<(u64, Ids), StoreError> {
    if pack.size > READ_LIMIT_BYTES {
        return Ok((
            0,
            Err(format!(
                "{} bytes is over the {READ_LIMIT_BYTES}-byte limit for a pack",
                pack.size
            )),
        ));
    }
    let first = HEADER_LEN as u64 + ID_LEN as u64 * FIRST_READ_IDS;
    let Some(mut prefix) = store.get_range(&pack.key, 0, first).await? else {
        // Deleted since it was listed: an empty pack.
        return Ok((0, Ok(Vec::new())));
    };
    let checked = PackHead::parse(&prefix).and_then(|h| h.expect(model, dimensions).map(|_| h));
    let head = match checked {
        Ok(h) => h,
        Err(e) => return Ok((prefix.len() as u64, Err(e.to_string()))),
    };
    if head.total_len() != Some(pack.size) {
        return Ok((
            prefix.len() as u64,
            Err(format!(
                "it is {} bytes, but its header describes {} vectors of {} dimensions",
                pack.size, head.count, head.dimensions
            )),
        ));
    }
    let end = head.ids_end().unwrap_or(0);
    let have = prefix.len() as u64;
    if have < end {
        match store.get_range(&pack.key, have, end - have).await? {
            Some(rest) => prefix.extend(rest),
            None => return Ok((have, Ok(Vec::new()))),
        }
    }
    let bytes = prefix.len() as u64;
    Ok((bytes, head.ids(&prefix).map_err(|e| e.to_string())))
}

/// Writes `vectors` to `store` as packs of `model` (create-only: a pack
/// that is already there, from a racing writer of the same vectors, is
/// left as it is). Returns the packs' digests.
pub async fn save(
    store: &Store,
    model: &ModelIdentity,
    vectors: &[([u8; 32], &[f32])],
) -> Result<Vec<Digest>, StoreError> {
    if vectors.is_empty() {
        return Ok(Vec::new());
    }
    let digest = model_digest(model);
    let packs = write_packs(&digest, model.dimensions, vectors)
        .map_err(|e| StoreError::Refused(format!("not writing to the embedding cache: {e}")))?;
    let mut out = Vec::with_capacity(packs.len());
    for bytes in packs {
        let pack = Digest::of(&bytes);
        let key = cache_pack_key(&digest, &pack);
        let size = bytes.len();
        tracing::debug!(%key, size, "pushing an embedding-cache pack");
        match store.put_new(&key, bytes.clone()).await? {
            Created::New => tracing::info!(%key, size, "pushed an embedding-cache pack"),
            Created::AlreadyExists => replace_if_damaged(store, &key, &pack, bytes).await,
        }
        out.push(pack);
    }
    Ok(out)
}

/// A pack of these bytes is already there: a racing writer of the same
/// vectors, or a damaged object under this name (which would otherwise
/// shadow these vectors forever, since create-only writes never replace
/// it). Bytes that do not hash to their name are provably not this pack,
/// so they are deleted and the pack written again. Failing that (e.g. no
/// permission to delete) is a warning: the build has its vectors anyway.
async fn replace_if_damaged(store: &Store, key: &str, pack: &Digest, bytes: Vec<u8>) {
    let replaced = async {
        let intact = store
            .get(key)
            .await?
            .is_some_and(|o| Digest::of(&o.bytes) == *pack);
        if intact {
            tracing::info!(%key, "the embedding cache already has this pack");
            return Ok(false);
        }
        store.delete(key).await?;
        store.put_new(key, bytes).await?;
        Ok::<_, StoreError>(true)
    };
    match replaced.await {
        Ok(false) => {}
        Ok(true) => {
            tracing::warn!(%key, "replaced a damaged embedding-cache pack (its bytes did not hash to its name)")
        }
        Err(e) => {
            tracing::warn!(%key, error = %e, "could not check or replace an embedding-cache pack already under this name; if it is damaged, delete it")
        }
    }
}

/// Records that `bundle`'s vectors are in `packs` (create-only, named by
/// the record's own sha256). Returns the key.
pub async fn record_uses(
    store: &Store,
    model: &ModelIdentity,
    bundle: &Digest,
    packs: Vec<Digest>,
) -> Result<String, StoreError> {
    let digest = model_digest(model);
    let bytes = UsesRecord::new(*bundle, digest, packs).to_bytes();
    let key = cache_uses_key(&digest, bundle, &Digest::of(&bytes));
    store.put_new(&key, bytes).await?;
    Ok(key)
}

/// Reads a uses record.
pub async fn read_uses(store: &Store, key: &str) -> Result<Option<UsesRecord>, StoreError> {
    let Some(obj) = store.get(key).await? else {
        return Ok(None);
    };
    UsesRecord::parse(&obj.bytes)
        .map(Some)
        .map_err(|detail| StoreError::BadRecord {
            store: store.describe(),
            key: key.to_string(),
            detail,
        })
}
