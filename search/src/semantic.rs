//! The semantic ranker: nearest chunks to each query window's vector in
//! the bundle's HNSW index, among the chunks a [`Selection`] admits.

use std::collections::HashMap;

use crate::filter::{Filter, Selection, path_passes};
use crate::mapped::{Hit, MappedBundle, OpenError};

/// The `k` best chunks for `vector` that pass `filter`.
pub fn search(
    bundle: &MappedBundle,
    vector: &[f32],
    k: usize,
    filter: &Filter,
) -> Result<Vec<Hit>, OpenError> {
    let selection = Selection::resolve(&bundle.chunks()?, filter);
    search_selected(bundle, vector, k, &selection)
}

/// The `k` best chunks for `vector` among `selection` (resolved on
/// `bundle`): few are scored exactly, many by a graph walk that skips the
/// rest.
pub fn search_selected(
    bundle: &MappedBundle,
    vector: &[f32],
    k: usize,
    selection: &Selection,
) -> Result<Vec<Hit>, OpenError> {
    match selection {
        Selection::All => bundle.search(vector, k),
        Selection::Few(keys) => bundle.exact_among(vector, keys, k),
        Selection::Many(paths) => {
            let chunks = bundle.chunks()?;
            bundle.filtered_search(vector, k, |key| path_passes(&chunks, paths, key))
        }
    }
}

/// The best `n` chunks over every window's vector, each scored by its best
/// cosine to any window.
pub fn rank(
    bundle: &MappedBundle,
    vectors: &[Vec<f32>],
    selection: &Selection,
    n: usize,
) -> Result<Vec<Hit>, OpenError> {
    rank_with(bundle, vectors, selection, n, false)
}

/// [`rank`], every window's unfiltered candidates found by exact search
/// over all vectors when `exact`.
pub fn rank_with(
    bundle: &MappedBundle,
    vectors: &[Vec<f32>],
    selection: &Selection,
    n: usize,
    exact: bool,
) -> Result<Vec<Hit>, OpenError> {
    let mut best: HashMap<u64, f32> = HashMap::new();
    for v in vectors {
        let hits = match selection {
            Selection::All if exact => bundle.exact_search(v, n)?,
            _ => search_selected(bundle, v, n, selection)?,
        };
        for h in hits {
            let slot = best.entry(h.key).or_insert(f32::MIN);
            *slot = slot.max(h.score);
        }
    }
    let mut hits: Vec<Hit> = best
        .into_iter()
        .map(|(key, score)| Hit { key, score })
        .collect();
    hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
    hits.truncate(n);
    Ok(hits)
}
