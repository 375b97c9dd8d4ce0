//! A bundle ready to answer queries: installed (verified once) in a
//! directory named by its digest, every member memory-mapped read-only
//! from there. Opening is a `stat` and an `mmap` per member, not a load:
//! the bytes stay in the page cache, shared and evictable, so a server
//! can serve more bundles than it has memory.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use shelf_formats::bundle::BundleError;
use shelf_formats::chunks::{Chunk, ChunkStore, ChunkStoreError};
use shelf_formats::definitions::{Definitions, DefinitionsError};
use shelf_formats::files::{FileTexts, FileTextsError};
use shelf_formats::history::{History, HistoryError};
use shelf_formats::lexical::{Analyzer, LexicalIndex, LexicalIndexError};
use shelf_formats::manifest::{VectorLayout, members};
use shelf_formats::vectors::FlatVectors;
use shelf_formats::{Digest, Manifest, ModelIdentity};

use crate::flat;
pub use crate::flat::Admit;
use crate::installed;
pub use crate::installed::{INCOMING_PREFIX, install_file};

/// Most search contexts one open index keeps. usearch gives every
/// concurrent search a context of its own and fails a search when none is
/// free; each context costs memory per open index (measured: ~970 KiB for
/// 64 on a small index, ~0 for 2), which a server of many repositories
/// pays per repository. So an index keeps one per core up to this bound,
/// and searches beyond that wait for a context instead of failing: a graph
/// search takes well under a millisecond.
pub const MAX_SEARCH_CONTEXTS: usize = 16;

/// The contexts each index keeps here: one per core, 2 to
/// [`MAX_SEARCH_CONTEXTS`].
pub fn search_contexts() -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(2, MAX_SEARCH_CONTEXTS)
}

/// The free search contexts of one index: a search takes one for its
/// duration and waits while none is free.
#[derive(Debug)]
struct Contexts {
    free: std::sync::Mutex<usize>,
    freed: std::sync::Condvar,
}

struct Context<'a>(&'a Contexts);

impl Contexts {
    fn new(n: usize) -> Self {
        Self {
            free: std::sync::Mutex::new(n),
            freed: std::sync::Condvar::new(),
        }
    }

    fn take(&self) -> Context<'_> {
        // The count is only ever changed whole: a panic elsewhere while it
        // was held cannot leave it half-updated.
        let mut free = self
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        *free -= 1;
        Context(self)
    }
}

impl Drop for Context<'_> {
    fn drop(&mut self) {
        *self
            .0
            .free
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
        self.0.freed.notify_one();
    }
}

/// HNSW search breadth (`ef`). The build measured recall@10 0.93 at
/// usearch's default of 64 and 0.99+ at 128 for well under a millisecond
/// on 10k chunks (docs/benchmarks.md).
pub const DEFAULT_EXPANSION_SEARCH: usize = 128;

/// Why a bundle cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The archive failed verification.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// The chunk store is malformed.
    #[error(transparent)]
    Chunks(#[from] ChunkStoreError),
    /// The lexical index is malformed or does not match the chunks.
    #[error(transparent)]
    Lexical(#[from] LexicalIndexError),
    /// The file texts are malformed.
    #[error(transparent)]
    Files(#[from] FileTextsError),
    /// The definitions index is malformed.
    #[error(transparent)]
    Definitions(#[from] DefinitionsError),
    /// The history index is malformed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The bundle's vectors were made by another model than the server's.
    #[error(
        "bundle {digest} was built with another embedding model ({diff}); rebuild it with this server's model, or serve it with the model it was built with"
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
    /// An installed file is missing or is not the file verified at
    /// install: the cache was changed behind shelf's back.
    #[error(
        "cached copy of bundle {digest} is damaged ({detail}); delete {} and it is fetched again",
        dir.display()
    )]
    DamagedCache {
        /// The bundle.
        digest: Digest,
        /// Its cache directory.
        dir: PathBuf,
        /// What differs.
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
    /// Cosine similarity, higher is closer.
    pub score: f32,
}

/// One member file of an installed bundle, mapped read-only. The open
/// file is kept: a server takes a read lease on it (docs/serve.md).
struct MappedFile {
    name: &'static str,
    file: File,
    map: Mmap,
}

/// Where a bundle's vectors are searched.
enum Vectors {
    /// `vectors.bin`: exact search over the flat vectors (1.3+: i8 blocks since 1.5, f16 before).
    Flat(MappedFile),
    /// `vectors.usearch`: an HNSW graph viewed in place (1.0 to 1.2).
    Hnsw {
        /// Views `map`: declared first so it is dropped first.
        index: usearch::Index,
        /// Its free search contexts.
        contexts: Contexts,
        map: MappedFile,
    },
}

/// An installed, verified bundle, its members memory-mapped read-only from
/// the directory it was installed in: opening costs a `stat` and an `mmap`
/// per member, and the served bytes live in the page cache, shared with
/// every process that maps them and given back under memory pressure.
pub struct MappedBundle {
    /// The bundle's digest.
    pub digest: Digest,
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it is installed.
    pub dir: PathBuf,
    vectors: Vectors,
    chunks: MappedFile,
    /// The lexical index and the analyzer its manifest names, when the
    /// bundle has one (format 1.1+).
    lexical: Option<(MappedFile, Analyzer)>,
    /// The text of every indexed file (format 1.2+).
    files: Option<MappedFile>,
    /// The definitions index (format 1.4+).
    definitions: Option<MappedFile>,
    /// The history index and the lexical index of its messages (format
    /// 1.4+).
    history: Option<(MappedFile, MappedFile)>,
    /// What the candidate sources know of the paths, made on first use.
    paths: std::sync::OnceLock<crate::candidates::PathTable>,
    /// Chunks (and vectors), as the chunk store says.
    count: usize,
}

impl std::fmt::Debug for MappedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedBundle")
            .field("digest", &self.digest)
            .finish()
    }
}

/// Maps member `name` of the bundle installed in `dir`, checking its size
/// against the manifest (a file changed since [`installed::check`] looked
/// is refused, not mapped short).
fn map_member(
    dir: &Path,
    digest: Digest,
    manifest: &Manifest,
    name: &'static str,
) -> Result<MappedFile, OpenError> {
    let member = manifest.member(name).ok_or_else(|| OpenError::Index {
        digest,
        detail: format!("the manifest lists no {name}"),
    })?;
    let path = dir.join(name);
    let damaged = |detail: String| OpenError::DamagedCache {
        digest,
        dir: dir.to_path_buf(),
        detail,
    };
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(format!("{name} is missing")));
        }
        Err(source) => return Err(OpenError::Io { path, source }),
    };
    let size = file
        .metadata()
        .map_err(|source| OpenError::Io {
            path: path.clone(),
            source,
        })?
        .len();
    if size != member.size || size == 0 {
        return Err(damaged(format!(
            "{name} is {size} bytes, the manifest says {}",
            member.size
        )));
    }
    // SAFETY: the file is a verified cache file, read-only (0444) in a
    // directory only this server's user may write (docs/serve.md, "The
    // cache directory"); every read through the map is bounds-checked
    // against the size checked above. A file truncated under the map
    // anyway is what the server's read lease on it guards against.
    let map = unsafe { Mmap::map(&file) }.map_err(|source| OpenError::Io { path, source })?;
    Ok(MappedFile { name, file, map })
}

impl MappedBundle {
    /// Verifies the bundle file `bundle` and opens it for `model`, installed
    /// into `<dir>/<hex>/` (reused when a verified copy is already there).
    pub fn open_file(bundle: &Path, dir: &Path, model: &ModelIdentity) -> Result<Self, OpenError> {
        let (digest, unpacked) = install_file(dir, bundle, None)?;
        Self::open_dir(&unpacked, digest, model)
    }

    /// Opens the bundle installed in `dir` for `model`: checks the kinds
    /// the manifest names and the model identity, checks that the files are
    /// the ones verified at install ([`installed::check`]), then maps every
    /// member read-only and reads its header. Nothing is hashed or copied:
    /// the cost does not grow with the bundle.
    pub fn open_dir(dir: &Path, digest: Digest, model: &ModelIdentity) -> Result<Self, OpenError> {
        let manifest_path = dir.join(members::MANIFEST);
        let manifest_bytes = match std::fs::read(&manifest_path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(OpenError::DamagedCache {
                    digest,
                    dir: dir.to_path_buf(),
                    detail: "manifest.json is missing".into(),
                });
            }
            Err(source) => {
                return Err(OpenError::Io {
                    path: manifest_path,
                    source,
                });
            }
        };
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes).map_err(|e| {
            OpenError::Bundle(BundleError::ManifestInvalid {
                detail: e.to_string(),
            })
        })?;
        manifest
            .check_kinds()
            .map_err(|e| OpenError::Bundle(e.into()))?;
        if let Some(diff) = manifest.model.mismatch(model) {
            return Err(OpenError::WrongModel { digest, diff });
        }
        installed::check(dir, &manifest, digest)?;
        let index_err = |detail: String| OpenError::Index { digest, detail };
        let chunks = map_member(dir, digest, &manifest, members::CHUNKS)?;
        let count = ChunkStore::open(&chunks.map)?.len();
        let lexical = match manifest.member(members::LEXICAL) {
            None => None,
            Some(_) => {
                // check_kinds accepted the kind; a 1.1 bundle always names it.
                let analyzer = manifest
                    .settings
                    .lexical
                    .as_deref()
                    .and_then(Analyzer::from_kind)
                    .ok_or_else(|| {
                        index_err(
                            "lexical.bin is present but settings.lexical names no analyzer".into(),
                        )
                    })?;
                let map = map_member(dir, digest, &manifest, members::LEXICAL)?;
                LexicalIndex::open(&map.map)?;
                Some((map, analyzer))
            }
        };
        let files = match manifest.member(members::FILES) {
            None => None,
            Some(_) => {
                let map = map_member(dir, digest, &manifest, members::FILES)?;
                FileTexts::open(&map.map)?;
                Some(map)
            }
        };
        let definitions = match manifest.member(members::DEFINITIONS) {
            None => None,
            Some(_) => {
                let map = map_member(dir, digest, &manifest, members::DEFINITIONS)?;
                Definitions::open(&map.map)?;
                Some(map)
            }
        };
        let history = match manifest.member(members::HISTORY) {
            None => None,
            Some(_) => {
                let map = map_member(dir, digest, &manifest, members::HISTORY)?;
                History::open(&map.map)?;
                let lexical = map_member(dir, digest, &manifest, members::HISTORY_LEXICAL)?;
                LexicalIndex::open(&lexical.map)?;
                Some((map, lexical))
            }
        };
        let dims = model.dimensions as usize;
        let vectors = match manifest.vector_layout() {
            VectorLayout::Flat => {
                let map = map_member(dir, digest, &manifest, members::FLAT_VECTORS)?;
                let flat = FlatVectors::open_as(&map.map, manifest.vector_element())
                    .map_err(|e| index_err(e.to_string()))?;
                if flat.dimensions() != dims || flat.len() != count {
                    return Err(index_err(format!(
                        "{} vectors of {} dimensions for {count} chunks of a {dims}-dimension model",
                        flat.len(),
                        flat.dimensions()
                    )));
                }
                Vectors::Flat(map)
            }
            VectorLayout::Hnsw => {
                let map = map_member(dir, digest, &manifest, members::VECTORS)?;
                let meta = usearch::Index::metadata_from_buffer(&map.map)
                    .map_err(|e| index_err(e.to_string()))?;
                let index =
                    usearch::Index::new(&meta.into()).map_err(|e| index_err(e.to_string()))?;
                // SAFETY: the map is moved into the same `Vectors::Hnsw` as
                // the index, declared after it, so it outlives the view; it
                // is read-only.
                unsafe { index.view_from_buffer(&map.map) }
                    .map_err(|e| index_err(e.to_string()))?;
                if index.dimensions() != dims || index.size() != count {
                    return Err(index_err(format!(
                        "{} vectors of {} dimensions for {count} chunks of a {dims}-dimension model",
                        index.size(),
                        index.dimensions()
                    )));
                }
                // Reserving contexts copies node pointers only: the graph
                // and vectors stay where they are.
                let contexts = search_contexts();
                index
                    .reserve_capacity_and_threads(index.size(), contexts)
                    .map_err(|e| index_err(format!("reserving search contexts: {e}")))?;
                index.change_expansion_search(DEFAULT_EXPANSION_SEARCH);
                Vectors::Hnsw {
                    index,
                    contexts: Contexts::new(contexts),
                    map,
                }
            }
        };
        Ok(Self {
            digest,
            manifest,
            dir: dir.to_path_buf(),
            vectors,
            chunks,
            lexical,
            files,
            definitions,
            history,
            paths: std::sync::OnceLock::new(),
            count,
        })
    }

    /// The repository name this bundle is served as when nothing names it
    /// otherwise (one bundle file): its manifest's repository, made a
    /// valid name.
    pub fn default_repo_name(&self) -> String {
        shelf_formats::names::repo_name_of(&self.manifest.source.repository)
    }

    /// The lexical index and the analyzer queries must be analyzed with,
    /// if the bundle has one. O(1), like [`MappedBundle::chunks`].
    pub fn lexical(&self) -> Option<Result<(LexicalIndex<'_>, Analyzer), OpenError>> {
        self.lexical.as_ref().map(|(m, analyzer)| {
            LexicalIndex::open(&m.map)
                .map(|ix| (ix, *analyzer))
                .map_err(OpenError::from)
        })
    }

    /// The analyzer of the bundle's lexical index, if it has one.
    pub fn analyzer(&self) -> Option<Analyzer> {
        self.lexical.as_ref().map(|(_, a)| *a)
    }

    /// The text of every indexed file, if the bundle has them (format
    /// 1.2+). O(1), like [`MappedBundle::chunks`].
    pub fn files(&self) -> Option<Result<FileTexts<'_>, OpenError>> {
        self.files
            .as_ref()
            .map(|m| FileTexts::open(&m.map).map_err(OpenError::from))
    }

    /// The definitions index, if the bundle has one (format 1.4+). O(1).
    pub fn definitions(&self) -> Option<Result<Definitions<'_>, OpenError>> {
        self.definitions
            .as_ref()
            .map(|m| Definitions::open(&m.map).map_err(OpenError::from))
    }

    /// The history index and the lexical index of its messages, if the
    /// bundle has them (format 1.4+). O(1).
    pub fn history(&self) -> Option<Result<(History<'_>, LexicalIndex<'_>), OpenError>> {
        self.history.as_ref().map(|(h, l)| {
            Ok((
                History::open(&h.map).map_err(OpenError::from)?,
                LexicalIndex::open(&l.map).map_err(OpenError::from)?,
            ))
        })
    }

    /// The bundle's paths as the candidate sources look them up (made on
    /// first use, then shared by every query).
    pub fn paths(&self) -> &crate::candidates::PathTable {
        self.paths
            .get_or_init(|| crate::candidates::PathTable::of(self))
    }

    /// The search modes this bundle supports.
    pub fn modes(&self) -> &'static [&'static str] {
        if self.lexical.is_some() {
            &["hybrid", "semantic", "lexical"]
        } else {
            &["semantic"]
        }
    }

    /// The chunk store. O(1): the store was fully validated when the bundle
    /// was installed, so only its header is re-read here (and cannot fail
    /// where the full parse succeeded on the same verified bytes).
    pub fn chunks(&self) -> Result<ChunkStore<'_>, OpenError> {
        Ok(ChunkStore::open(&self.chunks.map)?)
    }

    /// Chunk `key`.
    pub fn chunk(&self, key: u64) -> Option<Chunk<'_>> {
        self.chunks().ok()?.get(usize::try_from(key).ok()?)
    }

    /// Number of chunks (and vectors).
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether the bundle has no chunks.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Whether the vectors are searched exactly (format 1.3+) rather than
    /// by an HNSW graph walk.
    pub fn is_exact(&self) -> bool {
        matches!(self.vectors, Vectors::Flat(_))
    }

    /// Sets the HNSW search breadth (`ef`) of a 1.0 to 1.2 bundle; exact
    /// search has none.
    pub fn set_expansion_search(&self, ef: usize) {
        if let Vectors::Hnsw { index, .. } = &self.vectors {
            index.change_expansion_search(ef.max(1));
        }
    }

    fn index_error(&self, e: impl std::fmt::Display) -> OpenError {
        OpenError::Index {
            digest: self.digest,
            detail: e.to_string(),
        }
    }

    fn flat<'a>(&self, map: &'a MappedFile) -> Result<FlatVectors<'a>, OpenError> {
        FlatVectors::open(&map.map).map_err(|e| self.index_error(e))
    }

    /// The `k` nearest chunks to any of `queries` (vectors of the bundle's
    /// model), each scored by its nearest query, among the chunks `admit`
    /// lets through; best first.
    pub fn nearest(
        &self,
        queries: &[&[f32]],
        k: usize,
        admit: Admit<'_>,
    ) -> Result<Vec<Hit>, OpenError> {
        match &self.vectors {
            Vectors::Flat(map) => Ok(flat::top_k(&self.flat(map)?, queries, k, admit)),
            Vectors::Hnsw {
                index, contexts, ..
            } => {
                let mut best: std::collections::HashMap<u64, f32> = Default::default();
                for q in queries {
                    let hits = match admit {
                        Admit::All => {
                            let _context = contexts.take();
                            hits(&index.search(q, k).map_err(|e| self.index_error(e))?)
                        }
                        Admit::Keys(keys) => self.hnsw_among(index, q, keys, k)?,
                        Admit::Where(keep) => {
                            let _context = contexts.take();
                            hits(
                                &index
                                    .filtered_search(q, k, keep)
                                    .map_err(|e| self.index_error(e))?,
                            )
                        }
                    };
                    for h in hits {
                        let slot = best.entry(h.key).or_insert(f32::MIN);
                        *slot = slot.max(h.score);
                    }
                }
                let mut out: Vec<Hit> = best
                    .into_iter()
                    .map(|(key, score)| Hit { key, score })
                    .collect();
                out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
                out.truncate(k);
                Ok(out)
            }
        }
    }

    /// The `k` nearest chunks to `query` (a vector of the bundle's model).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, OpenError> {
        self.nearest(&[query], k, Admit::All)
    }

    /// Proves a newly opened bundle answers before it is swapped in, at a
    /// cost that does not grow with it: `query` is scored against the
    /// first and last few vectors (every byte layout and the kernel in
    /// use, at both ends of the file) and the flat vectors are handed to
    /// the kernel's read-ahead, so the pages the first scans need arrive
    /// in the background instead of holding readiness back (a full scan
    /// here took 122 ms at 370,000 vectors).
    pub fn probe(&self, query: &[f32]) -> Result<(), OpenError> {
        const ENDS: u64 = 32;
        match &self.vectors {
            Vectors::Flat(map) => {
                let n = self.flat(map)?.len() as u64;
                let keys: Vec<u64> = (0..n.min(ENDS))
                    .chain(n.saturating_sub(ENDS).max(ENDS.min(n))..n)
                    .collect();
                self.nearest(&[query], 10, Admit::Keys(&keys))?;
                // Advice only: a kernel that ignores it still pages in on
                // demand.
                let _ = map.map.advise(memmap2::Advice::WillNeed);
            }
            Vectors::Hnsw { .. } => {
                self.search(query, 10)?;
            }
        }
        Ok(())
    }

    /// The true `k` nearest chunks, every vector scored: what
    /// [`MappedBundle::search`] answers on a 1.3 bundle, and the yardstick
    /// of an HNSW graph's recall on an older one.
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, OpenError> {
        match &self.vectors {
            Vectors::Flat(_) => self.search(query, k),
            Vectors::Hnsw {
                index, contexts, ..
            } => {
                let _context = contexts.take();
                Ok(hits(
                    &index
                        .exact_search(query, k)
                        .map_err(|e| self.index_error(e))?,
                ))
            }
        }
    }

    /// Exact scores of the given chunks in an HNSW bundle, best `k` first:
    /// for filters that leave few candidates, where a graph walk could miss
    /// them.
    fn hnsw_among(
        &self,
        index: &usearch::Index,
        query: &[f32],
        keys: &[u64],
        k: usize,
    ) -> Result<Vec<Hit>, OpenError> {
        let mut vector = vec![0f32; index.dimensions()];
        let mut out = Vec::with_capacity(keys.len());
        for &key in keys {
            let found = index
                .get(key, &mut vector)
                .map_err(|e| self.index_error(e))?;
            if found == 0 {
                continue;
            }
            // Vectors are L2-normalised: the dot product is the cosine.
            let score = vector.iter().zip(query).map(|(a, b)| a * b).sum();
            out.push(Hit { key, score });
        }
        out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
        out.truncate(k);
        Ok(out)
    }

    /// Chunk `key`'s stored vector, if there is one.
    pub fn vector(&self, key: u64) -> Option<Vec<f32>> {
        match &self.vectors {
            Vectors::Flat(map) => self.flat(map).ok()?.vector(usize::try_from(key).ok()?),
            Vectors::Hnsw { index, .. } => {
                let mut v = vec![0f32; index.dimensions()];
                (index.get(key, &mut v).ok()? >= 1).then_some(v)
            }
        }
    }

    fn maps(&self) -> impl Iterator<Item = &MappedFile> + '_ {
        let vectors = match &self.vectors {
            Vectors::Flat(m) => m,
            Vectors::Hnsw { map, .. } => map,
        };
        std::iter::once(&self.chunks)
            .chain(self.lexical.as_ref().map(|(m, _)| m))
            .chain(self.files.as_ref())
            .chain(self.definitions.as_ref())
            .chain(self.history.iter().flat_map(|(h, l)| [h, l]))
            .chain(std::iter::once(vectors))
    }

    /// Bytes of the bundle mapped from its installed files.
    pub fn mapped_bytes(&self) -> usize {
        self.maps().map(|m| m.map.len()).sum()
    }

    /// Every member file the bundle maps, by name, open read-only: the
    /// files a server leases while it serves them.
    pub fn member_files(&self) -> impl Iterator<Item = (&'static str, &File)> + '_ {
        self.maps().map(|m| (m.name, &m.file))
    }
}

fn hits(matches: &usearch::ffi::Matches) -> Vec<Hit> {
    matches
        .keys
        .iter()
        .zip(&matches.distances)
        .map(|(&key, &d)| Hit {
            key,
            score: 1.0 - d,
        })
        .collect()
}
