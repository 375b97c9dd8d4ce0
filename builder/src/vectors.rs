//! The vectors member: every chunk's vector, key `i` for chunk `i`, as
//! `vectors.bin` (signed bytes in blocks of 32, searched exactly; layout
//! in `shelf_formats::vectors`). Writing it is one pass over the vectors, so a
//! build that changes a few chunks does not pay for a graph over all of
//! them. Reading the HNSW graphs of bundles 1.0 to 1.2 stays, for reusing
//! their vectors.

use std::path::Path;

use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

use crate::BuildError;

/// Writes `vectors[i]` as vector `i` of a `vectors.bin` at `path`.
pub fn write(vectors: &[&[f32]], dimensions: usize, path: &Path) -> Result<(), BuildError> {
    let io = |source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    shelf_formats::vectors::write_to(
        vectors,
        dimensions,
        shelf_formats::vectors::Element::I8Blocks,
        std::io::BufWriter::new(file),
    )
    .map_err(io)
}

/// Opens the HNSW graph of a 1.0 to 1.2 bundle read-only, by memory map.
pub fn view_hnsw(path: &Path, dimensions: usize) -> Result<Index, BuildError> {
    let options = IndexOptions {
        dimensions,
        metric: MetricKind::Cos,
        quantization: ScalarKind::F32,
        connectivity: 16,
        expansion_add: 128,
        expansion_search: 64,
        multi: false,
    };
    let fail = |e: &dyn std::fmt::Display| BuildError::Index(e.to_string());
    let index = Index::new(&options).map_err(|e| fail(&e))?;
    let path_str = path
        .to_str()
        .ok_or_else(|| BuildError::Index(format!("index path {} is not UTF-8", path.display())))?;
    index.view(path_str).map_err(|e| fail(&e))?;
    Ok(index)
}
