//! A bundle ready to answer queries: verified and unpacked into a directory
//! named by its digest, its chunk store and lexical index memory-mapped and
//! its vector index viewed (memory-mapped) in place. Opening is an mmap,
//! not a load.

use std::fs::File;
use std::path::{Path, PathBuf};

use std::io::Read;

use memmap2::{Mmap, MmapMut};
use sha2::{Digest as _, Sha256};
use shelf_formats::bundle::{BundleError, Limits, digest_from_file_name, unpack_file};
use shelf_formats::chunks::{Chunk, ChunkStore, ChunkStoreError};
use shelf_formats::definitions::{Definitions, DefinitionsError};
use shelf_formats::files::{FileTexts, FileTextsError};
use shelf_formats::history::{History, HistoryError};
use shelf_formats::lexical::{Analyzer, LexicalIndex, LexicalIndexError};
use shelf_formats::manifest::Member;
use shelf_formats::manifest::members;
use shelf_formats::{Digest, Manifest, ModelIdentity};

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
    /// An unpacked member is not the size the manifest lists: the cache
    /// was changed behind shelf's back.
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
    /// Cosine similarity, higher is closer (1 - usearch's cosine distance).
    pub score: f32,
}

/// A verified, memory-mapped bundle.
pub struct MappedBundle {
    /// The bundle's digest.
    pub digest: Digest,
    /// Its manifest.
    pub manifest: Manifest,
    /// Where it was unpacked (its files are not used after opening).
    pub dir: PathBuf,
    /// Views `vectors`: declared first so it is dropped first.
    index: usearch::Index,
    /// Its free search contexts.
    contexts: Contexts,
    chunks: Mmap,
    /// The lexical index and the analyzer its manifest names, when the
    /// bundle has one (format 1.1+).
    lexical: Option<(Mmap, Analyzer)>,
    /// The text of every indexed file (format 1.2+).
    files: Option<Mmap>,
    /// The definitions index (format 1.4+).
    definitions: Option<Mmap>,
    /// The history index and the lexical index of its messages (format
    /// 1.4+).
    history: Option<(Mmap, Mmap)>,
    /// What the candidate sources know of the paths, made on first use.
    paths: std::sync::OnceLock<crate::candidates::PathTable>,
    vectors: Mmap,
}

impl std::fmt::Debug for MappedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedBundle")
            .field("digest", &self.digest)
            .finish()
    }
}

impl MappedBundle {
    /// Verifies the bundle file `bundle` and opens it for `model`, unpacked
    /// into `<dir>/<hex>/` (reused when a verified copy is already there).
    pub fn open_file(bundle: &Path, dir: &Path, model: &ModelIdentity) -> Result<Self, OpenError> {
        let (digest, unpacked) = install_file(dir, bundle, None)?;
        Self::open_dir(&unpacked, digest, model)
    }

    /// Opens an unpacked, verified bundle directory for `model`: checks the
    /// kinds the manifest names and the model identity, then reads every
    /// member into memory of this process while hashing it against the
    /// manifest, and checks the chunk store's structure and the index's
    /// shape.
    ///
    /// Why private copies and not maps of the cache files: a file mapped
    /// from the cache could be truncated or rewritten by anyone with write
    /// access to the directory, and the next query would die of SIGBUS or
    /// read bytes nobody verified. Copying costs one read of the bundle at
    /// load time (no more resident memory than a warmed map) and makes the
    /// served bytes exactly the verified ones for the bundle's whole life.
    pub fn open_dir(dir: &Path, digest: Digest, model: &ModelIdentity) -> Result<Self, OpenError> {
        let io = |path: PathBuf| move |source| OpenError::Io { path, source };
        let manifest_path = dir.join(members::MANIFEST);
        let manifest_bytes = std::fs::read(&manifest_path).map_err(io(manifest_path.clone()))?;
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
        let copy = |name: &str| -> Result<Mmap, OpenError> {
            let member = manifest.member(name).ok_or_else(|| OpenError::Index {
                digest,
                detail: format!("the manifest lists no {name}"),
            })?;
            private_copy(dir, digest, member)
        };
        let chunks = copy(members::CHUNKS)?;
        let count = ChunkStore::parse(&chunks)?.len();
        let lexical = match manifest.member(members::LEXICAL) {
            None => None,
            Some(_) => {
                // check_kinds accepted the kind; a 1.1 bundle always names it.
                let analyzer = manifest
                    .settings
                    .lexical
                    .as_deref()
                    .and_then(Analyzer::from_kind)
                    .ok_or_else(|| OpenError::Index {
                        digest,
                        detail: "lexical.bin is present but settings.lexical names no analyzer"
                            .into(),
                    })?;
                let map = copy(members::LEXICAL)?;
                let docs = LexicalIndex::parse(&map)?.doc_count();
                if docs != count {
                    return Err(OpenError::Index {
                        digest,
                        detail: format!("lexical index has {docs} documents for {count} chunks"),
                    });
                }
                Some((map, analyzer))
            }
        };

        let files = match manifest.member(members::FILES) {
            None => None,
            Some(_) => {
                let map = copy(members::FILES)?;
                FileTexts::parse(&map)?;
                Some(map)
            }
        };

        let path_count = ChunkStore::open(&chunks)?.path_count();
        let definitions = match manifest.member(members::DEFINITIONS) {
            None => None,
            Some(_) => {
                let map = copy(members::DEFINITIONS)?;
                Definitions::parse(&map, path_count)?;
                Some(map)
            }
        };
        let history = match manifest.member(members::HISTORY) {
            None => None,
            Some(_) => {
                let map = copy(members::HISTORY)?;
                let commits = History::parse(&map)?.len();
                let lexical = copy(members::HISTORY_LEXICAL)?;
                let docs = LexicalIndex::parse(&lexical)?.doc_count();
                if docs != commits {
                    return Err(OpenError::Index {
                        digest,
                        detail: format!(
                            "history's lexical index has {docs} documents for {commits} commits"
                        ),
                    });
                }
                Some((map, lexical))
            }
        };

        let index_err = |detail: String| OpenError::Index { digest, detail };
        let vectors = copy(members::VECTORS)?;
        let meta =
            usearch::Index::metadata_from_buffer(&vectors).map_err(|e| index_err(e.to_string()))?;
        let index = usearch::Index::new(&meta.into()).map_err(|e| index_err(e.to_string()))?;
        // SAFETY: `vectors` is owned by the returned value and declared after
        // `index`, so it is dropped after the index that views it; the
        // mapping is read-only and private to this process.
        unsafe { index.view_from_buffer(&vectors) }.map_err(|e| index_err(e.to_string()))?;
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
        // Reserving contexts copies node pointers only: the graph and
        // vectors stay where they are.
        let contexts = search_contexts();
        index
            .reserve_capacity_and_threads(index.size(), contexts)
            .map_err(|e| index_err(format!("reserving search contexts: {e}")))?;
        index.change_expansion_search(DEFAULT_EXPANSION_SEARCH);
        Ok(Self {
            contexts: Contexts::new(contexts),
            digest,
            manifest,
            dir: dir.to_path_buf(),
            index,
            chunks,
            lexical,
            files,
            definitions,
            history,
            paths: std::sync::OnceLock::new(),
            vectors,
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
            LexicalIndex::open(m)
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
            .map(|m| FileTexts::open(m).map_err(OpenError::from))
    }

    /// The definitions index, if the bundle has one (format 1.4+). O(1).
    pub fn definitions(&self) -> Option<Result<Definitions<'_>, OpenError>> {
        self.definitions
            .as_ref()
            .map(|m| Definitions::open(m).map_err(OpenError::from))
    }

    /// The history index and the lexical index of its messages, if the
    /// bundle has them (format 1.4+). O(1).
    pub fn history(&self) -> Option<Result<(History<'_>, LexicalIndex<'_>), OpenError>> {
        self.history.as_ref().map(|(h, l)| {
            Ok((
                History::open(h).map_err(OpenError::from)?,
                LexicalIndex::open(l).map_err(OpenError::from)?,
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
    /// was opened, so only its header is re-read here (and cannot fail
    /// where the full parse succeeded on the same immutable bytes).
    pub fn chunks(&self) -> Result<ChunkStore<'_>, OpenError> {
        Ok(ChunkStore::open(&self.chunks)?)
    }

    /// Chunk `key`.
    pub fn chunk(&self, key: u64) -> Option<Chunk<'_>> {
        self.chunks().ok()?.get(usize::try_from(key).ok()?)
    }

    /// Number of chunks (and vectors).
    pub fn len(&self) -> usize {
        self.index.size()
    }

    /// Whether the bundle has no chunks.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Sets the HNSW search breadth (`ef`).
    pub fn set_expansion_search(&self, ef: usize) {
        self.index.change_expansion_search(ef.max(1));
    }

    fn index_error(&self, e: impl std::fmt::Display) -> OpenError {
        OpenError::Index {
            digest: self.digest,
            detail: e.to_string(),
        }
    }

    /// The `k` nearest chunks to `query` (a vector of the bundle's model).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, OpenError> {
        let _context = self.contexts.take();
        let matches = self
            .index
            .search(query, k)
            .map_err(|e| self.index_error(e))?;
        Ok(hits(&matches))
    }

    /// The true `k` nearest chunks by brute force (for measuring the
    /// graph search's recall, not for serving).
    pub fn exact_search(&self, query: &[f32], k: usize) -> Result<Vec<Hit>, OpenError> {
        let _context = self.contexts.take();
        let matches = self
            .index
            .exact_search(query, k)
            .map_err(|e| self.index_error(e))?;
        Ok(hits(&matches))
    }

    /// The `k` nearest chunks among those `keep` accepts. The HNSW walk
    /// skips rejected chunks, so a filter that accepts few of them is better
    /// served by [`MappedBundle::exact_among`].
    pub fn filtered_search(
        &self,
        query: &[f32],
        k: usize,
        keep: impl Fn(u64) -> bool,
    ) -> Result<Vec<Hit>, OpenError> {
        let _context = self.contexts.take();
        let matches = self
            .index
            .filtered_search(query, k, keep)
            .map_err(|e| self.index_error(e))?;
        Ok(hits(&matches))
    }

    /// Exact scores of the given chunks, best `k` first: for filters that
    /// leave few candidates, where a graph walk could miss them.
    pub fn exact_among(
        &self,
        query: &[f32],
        keys: &[u64],
        k: usize,
    ) -> Result<Vec<Hit>, OpenError> {
        let mut vector = vec![0f32; self.index.dimensions()];
        let mut out = Vec::with_capacity(keys.len());
        for &key in keys {
            let found = self
                .index
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

    /// Bytes of the bundle held in memory (the verified private copies).
    pub fn resident_bytes(&self) -> usize {
        self.chunks.len()
            + self.vectors.len()
            + self.lexical.as_ref().map_or(0, |(m, _)| m.len())
            + self.definitions.as_ref().map_or(0, |m| m.len())
            + self.history.as_ref().map_or(0, |(h, l)| h.len() + l.len())
    }
}

/// Reads member `member` of the bundle unpacked in `dir` into anonymous
/// memory of this process, checking its size and sha256 against the
/// manifest as it goes; the copy is then made read-only. A mismatch means
/// the cache was changed behind shelf's back: [`OpenError::DamagedCache`].
fn private_copy(dir: &Path, digest: Digest, member: &Member) -> Result<Mmap, OpenError> {
    let path = dir.join(&member.name);
    let io = |source| OpenError::Io {
        path: path.clone(),
        source,
    };
    let damaged = |detail: String| OpenError::DamagedCache {
        digest,
        dir: dir.to_path_buf(),
        detail,
    };
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(damaged(format!("{} is missing", member.name)));
        }
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    if size != member.size {
        return Err(damaged(format!(
            "{} is {size} bytes, the manifest says {}",
            member.name, member.size
        )));
    }
    let len = usize::try_from(size)
        .map_err(|_| damaged(format!("{} does not fit in memory", member.name)))?;
    if len == 0 {
        // No valid member is empty (each starts with a header).
        return Err(damaged(format!("{} is empty", member.name)));
    }
    // An anonymous map is page-aligned (usearch views it in place) and
    // belongs to this process alone.
    let mut copy = MmapMut::map_anon(len).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut filled = 0;
    while filled < len {
        let n = file.read(&mut copy[filled..len]).map_err(io)?;
        if n == 0 {
            return Err(damaged(format!(
                "{} ended after {filled} of {len} bytes while it was read",
                member.name
            )));
        }
        hasher.update(&copy[filled..filled + n]);
        filled += n;
    }
    let actual: [u8; 32] = hasher.finalize().into();
    if actual != member.sha256 {
        return Err(damaged(format!(
            "{} does not match its sha256 in the manifest",
            member.name
        )));
    }
    copy.make_read_only().map_err(io)
}

/// Verifies a bundle file (against `expected`, else the digest in its
/// `<hex>.tar.zst` name) and unpacks it into `<dir>/<hex>/` unless a
/// verified copy already is there. A `<hex>` directory only ever appears by
/// the verified unpack's atomic rename, so its name can be trusted.
pub fn install_file(
    dir: &Path,
    bundle: &Path,
    expected: Option<&Digest>,
) -> Result<(Digest, PathBuf), OpenError> {
    let expected = expected.copied().or_else(|| digest_from_file_name(bundle));
    if let Some(d) = expected
        && dir.join(d.hex()).join(members::MANIFEST).is_file()
    {
        return Ok((d, dir.join(d.hex())));
    }
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    // Unpacked under a temporary name first when the digest is not known
    // up front; `unpack_file` itself stages and renames atomically.
    let staging = dir.join(format!(
        "{INCOMING_PREFIX}{}-{}",
        std::process::id(),
        expected.map(|d| d.hex()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&staging);
    let unpacked = unpack_file(bundle, expected.as_ref(), &staging, &Limits::default())
        .inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&staging);
        })?;
    let digest = unpacked.bundle.digest;
    let target = dir.join(digest.hex());
    if target.exists() {
        let _ = std::fs::remove_dir_all(&staging);
    } else if let Err(e) = std::fs::rename(&staging, &target) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(OpenError::Io {
            path: target,
            source: e,
        });
    }
    Ok((digest, target))
}

/// Prefix of an unpack in progress in a bundle directory; whatever carries
/// it and belongs to no running process is a leftover of a crash.
pub const INCOMING_PREFIX: &str = ".incoming-";

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
