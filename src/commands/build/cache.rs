//! The store's embedding cache as the builder's [`VectorCache`]: the
//! builder is synchronous and knows no store, so each call runs the store's
//! async cache operations on the command's runtime, and what happened is
//! kept here for the report and the uses record.

use std::collections::BTreeSet;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use shelf_builder::cache::RefusedPack;
use shelf_builder::{BuildError, CacheReport, VectorCache};
use shelf_formats::{Digest, ModelIdentity};
use shelf_store::Store;
use shelf_store::cache::{CacheIndex, record_uses, save};

/// One build's view of a store's embedding cache. The index (listing and
/// id tables) is read on the first question, so its time is the build's
/// `cache` stage.
pub struct StoreCache<'a> {
    rt: &'a tokio::runtime::Runtime,
    store: &'a Store,
    model: ModelIdentity,
    index: OnceLock<Result<CacheIndex, String>>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Ids the build asked about that the cache held.
    held: Vec<[u8; 32]>,
    read: BTreeSet<Digest>,
    written: Vec<Digest>,
    refused: Vec<RefusedPack>,
    bytes: u64,
    pushed: u64,
    time: Duration,
}

impl<'a> StoreCache<'a> {
    /// The cache of `model` in `store` (nothing is read yet).
    pub fn new(rt: &'a tokio::runtime::Runtime, store: &'a Store, model: &ModelIdentity) -> Self {
        Self {
            rt,
            store,
            model: model.clone(),
            index: OnceLock::new(),
            state: Mutex::new(State::default()),
        }
    }

    /// Lists the model's packs and reads their id tables, once.
    fn index(&self) -> Result<&CacheIndex, BuildError> {
        self.index
            .get_or_init(|| {
                let t = Instant::now();
                let index = self
                    .rt
                    .block_on(CacheIndex::load(self.store, &self.model))
                    .map_err(|e| e.to_string())?;
                tracing::info!(
                    store = %self.store.describe(),
                    packs = index.packs().len(),
                    vectors = index.len(),
                    ms = t.elapsed().as_millis() as u64,
                    "embedding cache read"
                );
                let mut s = self.state();
                s.refused
                    .extend(index.refused().iter().map(|r| RefusedPack {
                        key: r.key.clone(),
                        reason: r.reason.clone(),
                    }));
                s.bytes += index.bytes_read();
                s.time += t.elapsed();
                Ok(index)
            })
            .as_ref()
            .map_err(|e| BuildError::Cache(e.clone()))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The report; with `bundle`, first records which packs hold its
    /// vectors (what `shelf gc` keeps while the bundle is retained): for
    /// every chunk the cache held, the pack that held it, and the packs
    /// this build wrote.
    pub fn finish(&self, bundle: Option<&Digest>) -> anyhow::Result<CacheReport> {
        let index = self.index()?;
        let t = Instant::now();
        let mut uses_record = None;
        if let Some(bundle) = bundle {
            let (packs, refused) = {
                let s = self.state();
                let packs: BTreeSet<Digest> = s
                    .held
                    .iter()
                    .filter_map(|id| index.holder(id))
                    .chain(s.written.iter().copied())
                    .collect();
                let refused: BTreeSet<String> = s.refused.iter().map(|r| r.key.clone()).collect();
                (packs, refused)
            };
            let model = *index.model();
            let packs: Vec<Digest> = packs
                .into_iter()
                .filter(|p| !refused.contains(&shelf_formats::keys::cache_pack_key(&model, p)))
                .collect();
            uses_record =
                Some(
                    self.rt
                        .block_on(record_uses(self.store, &self.model, bundle, packs))?,
                );
        }
        let mut s = self.state();
        s.time += t.elapsed();
        Ok(CacheReport {
            store: self.store.describe(),
            model: index.model().to_string(),
            packs_listed: index.packs().len(),
            vectors_listed: index.len(),
            packs_read: s.read.len(),
            bytes_read: s.bytes,
            pushed: s.pushed,
            packs_written: s.written.iter().map(|d| d.to_string()).collect(),
            refused: s.refused.clone(),
            uses_record,
            ms: s.time.as_millis() as u64,
        })
    }
}

fn cache_error(e: shelf_store::StoreError) -> BuildError {
    BuildError::Cache(e.to_string())
}

impl VectorCache for StoreCache<'_> {
    fn holds(&self, ids: &[[u8; 32]]) -> Result<Vec<bool>, BuildError> {
        let index = self.index()?;
        let answers: Vec<bool> = ids.iter().map(|id| index.holds(id)).collect();
        let mut s = self.state();
        s.held.extend(
            ids.iter()
                .zip(&answers)
                .filter(|(_, held)| **held)
                .map(|(id, _)| *id),
        );
        Ok(answers)
    }

    fn fetch(
        &self,
        ids: &[[u8; 32]],
    ) -> Result<std::collections::HashMap<[u8; 32], Vec<f32>>, BuildError> {
        let index = self.index()?;
        let t = Instant::now();
        let fetched = self
            .rt
            .block_on(index.fetch(self.store, ids))
            .map_err(cache_error)?;
        tracing::info!(
            vectors = fetched.vectors.len(),
            packs = fetched.packs.len(),
            bytes = fetched.bytes,
            ms = t.elapsed().as_millis() as u64,
            "vectors taken from the embedding cache"
        );
        let mut s = self.state();
        s.read.extend(fetched.packs.iter().copied());
        s.bytes += fetched.bytes;
        s.refused
            .extend(fetched.refused.into_iter().map(|r| RefusedPack {
                key: r.key,
                reason: r.reason,
            }));
        s.time += t.elapsed();
        Ok(fetched.vectors)
    }

    fn save(&self, vectors: &[([u8; 32], &[f32])]) -> Result<(), BuildError> {
        let t = Instant::now();
        let written = self
            .rt
            .block_on(save(self.store, &self.model, vectors))
            .map_err(cache_error)?;
        let mut s = self.state();
        s.pushed += vectors.len() as u64;
        s.written.extend(written);
        s.time += t.elapsed();
        Ok(())
    }
}
