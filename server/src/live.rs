//! A bundle ready to answer queries: verified, unpacked into a cache
//! directory named by its digest, its chunk store memory-mapped and its
//! vector index viewed (memory-mapped) in place.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use shelf_formats::bundle::{BundleError, Limits, digest_from_file_name, unpack_file};
use shelf_formats::chunks::{Chunk, ChunkStore, ChunkStoreError};
use shelf_formats::manifest::members;
use shelf_formats::{Digest, Manifest, ModelIdentity};

/// Why a bundle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The archive failed verification.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The chunk store is malformed.
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
    /// The bundle's vectors were made by another model than the server's.
    #[error(
        "bundle {digest} was built with another embedding model ({diff}); rebuild it or serve it with that model"
    )]
    WrongModel {
        /// The bundle.
        digest: Digest,
        /// The first difference.
        diff: String,
    },
    /// The vector index cannot be opened or does not match the manifest.
    #[error("vector index of bundle {digest}: {detail}")]
    Index {
        /// The bundle.
        digest: Digest,
        /// What is wrong.
        detail: String,
    },
    /// A cache file could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One search result: chunk key and cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The chunk's key (its index in the chunk store).
    pub key: u64,
    /// Cosine similarity, higher is closer (1 - usearch's cosine distance).
    pub score: f32,
}

/// A verified, memory-mapped bundle.
pub struct LiveBundle {
    /// The bundle's digest.
    pub digest: Digest,
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it is unpacked.
    pub dir: PathBuf,
    chunks: Mmap,
    index: usearch::Index,
}

impl std::fmt::Debug for LiveBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveBundle")
            .field("digest", &self.digest)
            .finish()
    }
}

impl LiveBundle {
    /// Verifies the bundle file (against `expected`, or the digest in its
    /// `<hex>.tar.zst` name), unpacks it into `cache/<hex>` unless a
    /// verified copy is already there, and opens it for `model`.
    pub fn open_file(
        bundle: &Path,
        expected: Option<&Digest>,
        cache: &Path,
        model: &ModelIdentity,
    ) -> Result<Self, OpenError> {
        let expected = expected.copied().or_else(|| digest_from_file_name(bundle));
        // A cache directory is only ever created by a successful verified
        // unpack (staging dir renamed into place), so its name can be trusted.
        if let Some(d) = expected {
            let dir = cache.join(d.hex());
            if dir.join(members::MANIFEST).is_file() {
                return Self::open_dir(&dir, d, model);
            }
        }
        let staging = cache.join(format!(".incoming-{}", std::process::id()));
        let unpacked = match unpack_file(bundle, expected.as_ref(), &staging, &Limits::default()) {
            Ok(u) => u,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e.into());
            }
        };
        let digest = unpacked.bundle.digest;
        let dir = cache.join(digest.hex());
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&staging);
        } else if let Err(e) = std::fs::rename(&staging, &dir) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(OpenError::Io {
                path: dir,
                source: e,
            });
        }
        Self::open_dir(&dir, digest, model)
    }

    /// Opens an unpacked, verified bundle directory.
    pub fn open_dir(dir: &Path, digest: Digest, model: &ModelIdentity) -> Result<Self, OpenError> {
        let io = |path: PathBuf| move |source| OpenError::Io { path, source };
        let manifest_path = dir.join(members::MANIFEST);
        let manifest_bytes = std::fs::read(&manifest_path).map_err(io(manifest_path.clone()))?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            OpenError::Bundle(BundleError::ManifestInvalid {
                detail: e.to_string(),
            })
        })?;
        if let Some(diff) = manifest.model.mismatch(model) {
            return Err(OpenError::WrongModel { digest, diff });
        }
        let chunks_path = dir.join(members::CHUNKS);
        let file = File::open(&chunks_path).map_err(io(chunks_path.clone()))?;
        // SAFETY: the file is in a cache directory shelf owns and never
        // modifies after the verified unpack renamed it into place.
        let chunks = unsafe { Mmap::map(&file) }.map_err(io(chunks_path))?;
        let count = ChunkStore::parse(&chunks)?.len();

        let index_err = |detail: String| OpenError::Index { digest, detail };
        let vectors = dir.join(members::VECTORS);
        let vectors = vectors
            .to_str()
            .ok_or_else(|| index_err("cache path is not UTF-8".into()))?;
        let index = usearch::Index::restore_view(vectors).map_err(|e| index_err(e.to_string()))?;
        if index.dimensions() != model.dimensions as usize {
            return Err(index_err(format!(
                "{} dimensions, the model has {}",
                index.dimensions(),
                model.dimensions
            )));
        }
        if index.size() != count {
            return Err(index_err(format!(
                "{} vectors for {count} chunks",
                index.size()
            )));
        }
        Ok(Self {
            digest,
            manifest,
            dir: dir.to_path_buf(),
            chunks,
            index,
        })
    }

    /// Chunk `key`. O(1): the store was fully validated when the bundle was
    /// opened, so only its header is re-read here.
    pub fn chunk(&self, key: u64) -> Option<Chunk<'_>> {
        ChunkStore::open(&self.chunks)
            .ok()?
            .get(usize::try_from(key).ok()?)
    }

    /// The `k` nearest chunks to `query` (a vector of the bundle's model).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, OpenError> {
        let matches = self.index.search(query, k).map_err(|e| OpenError::Index {
            digest: self.digest,
            detail: e.to_string(),
        })?;
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&key, &d)| Hit {
                key,
                score: 1.0 - d,
            })
            .collect())
    }
}
