//! The semantic ranker: nearest chunks to the query windows' vectors
//! (exactly, in a 1.3 bundle; by an HNSW walk in an older one), among the
//! chunks a [`Selection`] admits.

use crate::filter::{Filter, Selection, path_passes};
use crate::mapped::{Admit, Hit, MappedBundle, OpenError};

/// The `k` best chunks for `vector` that pass `filter`.
pub fn search(
    bundle: &MappedBundle,
    vector: &[f32],
    k: usize,
    filter: &Filter,
) -> Result<Vec<Hit>, OpenError> {
    let selection = Selection::resolve(&bundle.chunks()?, filter);
    rank(bundle, &[vector.to_vec()], &selection, k)
}

/// The best `n` chunks over every window's vector, each scored by its best
/// cosine to any window, among `selection` (resolved on `bundle`).
pub fn rank(
    bundle: &MappedBundle,
    vectors: &[Vec<f32>],
    selection: &Selection,
    n: usize,
) -> Result<Vec<Hit>, OpenError> {
    let queries: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    match selection {
        Selection::All => bundle.nearest(&queries, n, Admit::All),
        Selection::Few(keys) => bundle.nearest(&queries, n, Admit::Keys(keys)),
        Selection::Many(paths) => {
            let chunks = bundle.chunks()?;
            let keep = |key: u64| path_passes(&chunks, paths, key);
            bundle.nearest(&queries, n, Admit::Where(&keep))
        }
    }
}
