//! The vector index: a usearch HNSW graph over the chunk vectors, saved in
//! usearch's own file format so the server can `view()` (memory-map) it.

use std::path::Path;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::BuildError;

/// Graph degree. usearch's default; 16 neighbours per node keeps recall@10
/// near 1.0 at these sizes while the graph stays small next to the vectors.
const CONNECTIVITY: usize = 16;
/// Candidate list size while inserting; higher builds a better graph.
const EXPANSION_ADD: usize = 128;
/// Default candidate list size while searching (the server may raise it).
const EXPANSION_SEARCH: usize = 64;

/// The options every shelf v1 index is built with: what the manifest's
/// `settings.index` names ([`shelf_formats::manifest::VECTOR_INDEX_KIND`],
/// `usearch-hnsw/cos/m16/ef128`) and `settings.vector_quantization` (`f32`).
pub fn options(dimensions: usize) -> IndexOptions {
    IndexOptions {
        dimensions,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F32,
        connectivity: CONNECTIVITY,
        expansion_add: EXPANSION_ADD,
        expansion_search: EXPANSION_SEARCH,
        multi: false,
    }
}

/// Builds the index with key `i` for `vectors[i]` and saves it to `path`.
///
/// Vectors are added one by one from this thread, in key order: HNSW graph
/// shape depends on insertion order and on which thread's level generator
/// draws a node's level, so this is what makes the file reproducible.
/// (Insertion is a small share of a build next to embedding.)
pub fn build(vectors: &[&[f32]], dimensions: usize, path: &Path) -> Result<(), BuildError> {
    let index = Index::new(&options(dimensions)).map_err(usearch_error)?;
    index.reserve(vectors.len()).map_err(usearch_error)?;
    for (key, v) in vectors.iter().enumerate() {
        index.add(key as u64, v).map_err(usearch_error)?;
    }
    let path_str = utf8_path(path)?;
    index.save(path_str).map_err(usearch_error)?;
    Ok(())
}

/// Opens a saved index read-only by memory-mapping it.
pub fn view(path: &Path, dimensions: usize) -> Result<Index, BuildError> {
    let index = Index::new(&options(dimensions)).map_err(usearch_error)?;
    let path_str = utf8_path(path)?;
    index.view(path_str).map_err(usearch_error)?;
    Ok(index)
}

/// usearch reports errors as C++ exceptions; keep their message.
fn usearch_error(e: impl std::fmt::Display) -> BuildError {
    BuildError::Index(e.to_string())
}

fn utf8_path(path: &Path) -> Result<&str, BuildError> {
    path.to_str()
        .ok_or_else(|| BuildError::Index(format!("index path {} is not UTF-8", path.display())))
}
