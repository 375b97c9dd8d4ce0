//! Reusing a previous bundle: a chunk whose content id is in it is not
//! embedded again, a file whose text and chunking settings are unchanged is
//! not chunked again (its chunks are the previous bundle's, byte for
//! byte), and its compressed text is not compressed again when the same
//! compressor made it. The previous bundle is verified like any other
//! before a byte of it is used.
//!
//! Each reuse gives exactly what doing the work again would give, so an
//! incremental build writes the bundle a cold build writes: chunks are a
//! function of the path, the text, the chunker settings and the model
//! (all compared here); a vector of the content id (which hashes the
//! chunker, the model and the embedded text); a zstd frame of the text,
//! the level and the library version (`settings.compression`).

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use memmap2::Mmap;
use shelf_formats::ModelIdentity;
use shelf_formats::bundle::{Limits, unpack_file};
use shelf_formats::chunks::ChunkStore;
use shelf_formats::definitions::{Definition, Definitions};
use shelf_formats::files::{CompressedText, FileTexts};
use shelf_formats::history::History;
use shelf_formats::lexical::LexicalIndex;
use shelf_formats::manifest::{BuildSettings, Manifest, VectorLayout, members};
use shelf_formats::vectors::FlatVectors;

use crate::BuildError;
use crate::chunker::Chunk;
use crate::history_index::PreviousHistory;
use crate::vectors;

/// What the previous bundle's vectors are stored in.
enum Stored {
    Flat(Mmap),
    /// Bundles 1.0 to 1.2: an HNSW graph viewed in place.
    Hnsw(usearch::Index),
}

/// A previous bundle's lexical index and each document's `(term, count)`
/// pairs.
pub type LexicalReuse<'a> = (LexicalIndex<'a>, &'a [Vec<(u32, u32)>]);

/// A previous bundle opened for reuse.
pub struct Previous {
    /// Where the previous bundle is, for errors.
    path: std::path::PathBuf,
    manifest: Manifest,
    chunks: Mmap,
    files: Option<Mmap>,
    lexical: Option<Mmap>,
    /// The history index (format 1.4+), carried forward by the history
    /// stage.
    history: Option<Mmap>,
    /// The definitions index (format 1.4+), whose unchanged files'
    /// definitions the definitions stage carries forward.
    definitions: Option<Mmap>,
    /// The lexical index's documents, turned around once when first asked.
    documents: std::sync::OnceLock<Vec<Vec<(u32, u32)>>>,
    stored: Stored,
    by_id: HashMap<[u8; 32], u64>,
    /// Each path's chunks: a range of the chunk store (sorted by path).
    by_path: HashMap<String, Range<usize>>,
    dimensions: usize,
    // Keeps the unpacked files alive under the maps.
    _dir: tempfile::TempDir,
}

impl Previous {
    /// Opens and verifies `bundle`. Returns `None` (with a warning) when it
    /// was built with another model: its vectors would not match, so
    /// everything is embedded afresh.
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
        let manifest = unpacked.bundle.manifest;
        if let Some(diff) = manifest.model.mismatch(model) {
            tracing::warn!(previous = %bundle.display(), %diff, "previous bundle has another model: embedding everything");
            return Ok(None);
        }
        manifest.check_kinds().map_err(|e| fail(e.to_string()))?;
        let map = |name: &str| -> Result<Mmap, BuildError> {
            let path = unpacked.dir.join(name);
            let file = std::fs::File::open(&path).map_err(|e| fail(format!("{name}: {e}")))?;
            // SAFETY: a private temporary directory this build made and
            // nothing else writes; the map lives no longer than it does.
            unsafe { Mmap::map(&file) }.map_err(|e| fail(format!("{name}: {e}")))
        };
        let chunks = map(members::CHUNKS)?;
        let store = ChunkStore::parse(&chunks).map_err(|e| fail(e.to_string()))?;
        let mut by_id = HashMap::with_capacity(store.len());
        let mut by_path: HashMap<String, Range<usize>> = HashMap::new();
        for i in 0..store.len() {
            let chunk = store
                .get(i)
                .ok_or_else(|| fail(format!("chunk {i} is unreadable")))?;
            by_id.entry(*chunk.content_id).or_insert(i as u64);
            by_path
                .entry(chunk.path.to_string())
                .and_modify(|r| r.end = i + 1)
                .or_insert(i..i + 1);
        }
        let files = match manifest.member(members::FILES) {
            Some(_) => {
                let m = map(members::FILES)?;
                FileTexts::parse(&m).map_err(|e| fail(e.to_string()))?;
                Some(m)
            }
            None => None,
        };
        let lexical = match manifest.member(members::LEXICAL) {
            Some(_) => {
                let m = map(members::LEXICAL)?;
                LexicalIndex::parse(&m).map_err(|e| fail(e.to_string()))?;
                Some(m)
            }
            None => None,
        };
        let history = match manifest.member(members::HISTORY) {
            Some(_) => {
                let m = map(members::HISTORY)?;
                History::parse(&m).map_err(|e| fail(e.to_string()))?;
                Some(m)
            }
            None => None,
        };
        let definitions = match manifest.member(members::DEFINITIONS) {
            Some(_) => {
                let m = map(members::DEFINITIONS)?;
                Definitions::parse(&m, store.path_count()).map_err(|e| fail(e.to_string()))?;
                Some(m)
            }
            None => None,
        };
        let dimensions = model.dimensions as usize;
        let stored = match manifest.vector_layout() {
            VectorLayout::Flat => {
                let m = map(members::FLAT_VECTORS)?;
                let flat = FlatVectors::open_as(&m, manifest.vector_element())
                    .map_err(|e| fail(e.to_string()))?;
                if flat.dimensions() != dimensions || flat.len() != store.len() {
                    return Err(fail(format!(
                        "{} vectors of {} dimensions for {} chunks",
                        flat.len(),
                        flat.dimensions(),
                        store.len()
                    )));
                }
                Stored::Flat(m)
            }
            VectorLayout::Hnsw => Stored::Hnsw(vectors::view_hnsw(
                &unpacked.dir.join(members::VECTORS),
                dimensions,
            )?),
        };
        Ok(Some(Previous {
            manifest,
            chunks,
            files,
            lexical,
            history,
            definitions,
            path: bundle.to_path_buf(),
            documents: std::sync::OnceLock::new(),
            stored,
            by_id,
            by_path,
            dimensions,
            _dir: dir,
        }))
    }

    /// The previous bundle's history index, to carry forward (`None`
    /// when it has none).
    pub fn history(&self) -> Result<Option<PreviousHistory>, BuildError> {
        let Some(bytes) = &self.history else {
            return Ok(None);
        };
        let unreadable = || BuildError::Previous {
            path: self.path.clone(),
            detail: "its history index has an unreadable commit".into(),
        };
        let history = History::open(bytes).map_err(|_| unreadable())?;
        let commits = (0..history.len())
            .map(|i| history.commit(i))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(unreadable)?;
        Ok(Some(PreviousHistory {
            commit: self.manifest.source.commit.clone(),
            kind: self.manifest.settings.history.clone(),
            commits,
        }))
    }

    /// The stored vector of a chunk with this content id, if the previous
    /// bundle has one.
    pub fn vector(&self, content_id: &[u8; 32]) -> Option<Vec<f32>> {
        let key = *self.by_id.get(content_id)?;
        match &self.stored {
            Stored::Flat(m) => FlatVectors::open(m)
                .ok()?
                .vector(usize::try_from(key).ok()?),
            Stored::Hnsw(index) => {
                let mut v = vec![0f32; self.dimensions];
                match index.get(key, &mut v) {
                    Ok(n) if n >= 1 => Some(v),
                    _ => None,
                }
            }
        }
    }

    /// Whether files chunked under `settings` by `model` are cut the way
    /// the previous bundle's were.
    pub fn chunks_alike(&self, settings: &BuildSettings) -> bool {
        let p = &self.manifest.settings;
        (&p.chunker, p.max_chunk_tokens, p.overlap_lines)
            == (
                &settings.chunker,
                settings.max_chunk_tokens,
                settings.overlap_lines,
            )
    }

    /// Whether the previous bundle's file texts were compressed exactly as
    /// this build compresses them.
    pub fn texts_alike(&self, settings: &BuildSettings) -> bool {
        self.files.is_some()
            && self.manifest.settings.compression.is_some()
            && self.manifest.settings.compression == settings.compression
    }

    /// The previous bundle's lexical index and its documents' terms, when
    /// it was analyzed as `settings` would analyze (so an unchanged
    /// chunk's terms can be carried over instead of analyzed again).
    pub fn lexical(&self, settings: &BuildSettings) -> Option<LexicalReuse<'_>> {
        if self.manifest.settings.lexical.is_none()
            || self.manifest.settings.lexical != settings.lexical
        {
            return None;
        }
        let index = LexicalIndex::open(self.lexical.as_deref()?).ok()?;
        let documents = self.documents.get_or_init(|| index.documents());
        Some((index, documents))
    }

    /// The previous bundle's definitions by file path, when they were found
    /// the way `kind` (`settings.definitions`) finds them: an unchanged
    /// file's are then the same, and need not be found again.
    pub fn definitions(&self, kind: &str) -> Option<HashMap<&str, Vec<Definition>>> {
        if self.manifest.settings.definitions.as_deref() != Some(kind) {
            return None;
        }
        let defs = Definitions::open(self.definitions.as_deref()?).ok()?;
        let store = ChunkStore::open(&self.chunks).ok()?;
        let mut by_path: HashMap<&str, Vec<Definition>> = HashMap::new();
        for i in 0..defs.len() {
            let d = defs.get(i)?;
            by_path
                .entry(store.path(d.path_index as usize)?)
                .or_default()
                .push(Definition {
                    name: d.name.to_string(),
                    scope: d.scope.to_string(),
                    kind: d.kind,
                    path_index: d.path_index,
                    start_line: d.start_line,
                    end_line: d.end_line,
                });
        }
        Some(by_path)
    }

    /// The previous bundle's copy of the file at `path`, if its text had
    /// sha256 `sha256`: its compressed text and its chunks (content ids
    /// checked against `model`'s, so a chunk is never reused under another
    /// identity). `None` when the file was not there or differed.
    pub fn file(&self, path: &str, sha256: &[u8; 32]) -> Option<PreviousFile> {
        let texts = FileTexts::open(self.files.as_deref()?).ok()?;
        let i = texts.find(path)?;
        let entry = texts.entry(i)?;
        if entry.sha256 != sha256 {
            return None;
        }
        let store = ChunkStore::open(&self.chunks).ok()?;
        let range = self.by_path.get(path)?.clone();
        let first_key = range.start;
        let mut chunks = Vec::with_capacity(range.len());
        for k in range {
            let c = store.get(k)?;
            chunks.push(Chunk {
                start_line: c.start_line,
                end_line: c.end_line,
                text: c.text.to_string(),
                embed_text: String::new(),
                tokens: 0,
                content_id: *c.content_id,
            });
        }
        Some(PreviousFile {
            chunks,
            first_key,
            text: texts.compressed(i),
        })
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

/// One unchanged file, from the previous bundle.
pub struct PreviousFile {
    /// Its chunks, exactly as cut before (no embedding text: their vectors
    /// are reused too).
    pub chunks: Vec<Chunk>,
    /// The key of its first chunk in the previous bundle (the others
    /// follow).
    pub first_key: usize,
    /// Its compressed text.
    pub text: Option<CompressedText>,
}
