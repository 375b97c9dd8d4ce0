//! Reusing vectors from a previous bundle: a chunk whose content id is in
//! it is not embedded again. The previous bundle is verified like any other
//! before a byte of it is used.

use std::collections::HashMap;
use std::path::Path;

use shelf_formats::ModelIdentity;
use shelf_formats::bundle::{Limits, unpack_file};
use shelf_formats::chunks::ChunkStore;
use shelf_formats::manifest::{VECTOR_QUANTIZATION, members};

use crate::BuildError;
use crate::index;

/// Vectors of a previous bundle, by content id.
pub struct Previous {
    by_id: HashMap<[u8; 32], u64>,
    index: usearch::Index,
    dimensions: usize,
    // Keeps the unpacked files (and the index's memory map) alive.
    _dir: tempfile::TempDir,
}

impl Previous {
    /// Opens and verifies `bundle`. Returns `None` (with a warning) when it
    /// was built with another model or stores its vectors quantised another
    /// way: its vectors would not match, so everything is embedded afresh.
    pub fn open(bundle: &Path, model: &ModelIdentity) -> Result<Option<Self>, BuildError> {
        let fail = |detail: String| BuildError::Previous {
            path: bundle.to_path_buf(),
            detail,
        };
        let dir = tempfile::Builder::new()
            .prefix("shelf-previous-")
            .tempdir()
            .map_err(|e| fail(e.to_string()))?;
        let unpacked = unpack_file(bundle, None, &dir.path().join("b"), &Limits::default())
            .map_err(|e| fail(e.to_string()))?;
        let manifest = &unpacked.bundle.manifest;
        if let Some(diff) = manifest.model.mismatch(model) {
            tracing::warn!(previous = %bundle.display(), %diff, "previous bundle has another model: embedding everything");
            return Ok(None);
        }
        if manifest.settings.vector_quantization != VECTOR_QUANTIZATION {
            tracing::warn!(previous = %bundle.display(), "previous bundle stores its vectors quantised another way: embedding everything");
            return Ok(None);
        }
        let bytes =
            std::fs::read(unpacked.dir.join(members::CHUNKS)).map_err(|e| fail(e.to_string()))?;
        let store = ChunkStore::parse(&bytes).map_err(|e| fail(e.to_string()))?;
        let by_id = (0..store.len())
            .filter_map(|i| store.content_id(i).map(|id| (*id, i as u64)))
            .collect();
        let dimensions = model.dimensions as usize;
        let index = index::view(&unpacked.dir.join(members::VECTORS), dimensions)?;
        Ok(Some(Previous {
            by_id,
            index,
            dimensions,
            _dir: dir,
        }))
    }

    /// The stored vector of a chunk with this content id, if the previous
    /// bundle has one.
    pub fn vector(&self, content_id: &[u8; 32]) -> Option<Vec<f32>> {
        let key = *self.by_id.get(content_id)?;
        let mut v = vec![0f32; self.dimensions];
        match self.index.get(key, &mut v) {
            Ok(n) if n >= 1 => Some(v),
            _ => None,
        }
    }

    /// Chunks in the previous bundle.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether it had no chunks.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}
