//! shelf's write side: one git commit in, one reproducible bundle out.
//!
//! The pipeline, in order: read the commit's tree (libgit2, object database
//! only) -> select files by path, then by content -> open the previous
//! bundle, if any -> chunk (rayon, all cores; a file whose text is the
//! previous bundle's takes its chunks from there) -> reuse vectors of
//! chunks already in a previous bundle or in an embedding cache, embed the
//! rest (one single-threaded ONNX session per core, each text alone) and
//! give the cache what it lacked -> write the members (chunk store,
//! lexical index analysed on every core, file texts, the flat vectors) ->
//! write the bundle (deterministic tar+zstd, fsync, rename). Embedding
//! dominates a cold build; a small commit costs what its changed files
//! cost plus a few linear passes over the rest.

pub mod cache;
pub mod chunker;
pub mod definitions;
mod embedding;
pub mod history;
pub mod history_index;
pub mod previous;
pub mod report;
pub mod secrets;
pub mod select;
pub mod settings;
pub mod source;
pub mod syntax;
pub mod vectors;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use sha2::Digest as _;
use shelf_embed::{EmbedError, Embedder};
use shelf_formats::bundle::{BundleError, write_bundle};
use shelf_formats::chunks::{ChunkRecord, ChunkStoreWriter};
use shelf_formats::definitions::DefinitionsWriter;
use shelf_formats::files::{CompressedText, FileTextsWriter};
use shelf_formats::history::{HistoryCommit, HistoryWriter};
use shelf_formats::lexical::{Analyzer, CountedDoc, LexicalIndexWriter};
use shelf_formats::manifest::{Counts, Manifest, Source, members};

pub use cache::{CacheReport, Shard, ShardReport, VectorCache, embed_shard};
pub use report::{BuildReport, Observer, Stage, Stopwatch, Timings};
pub use settings::Settings;

use chunker::{ChunkParams, TokenSpans};
use select::{SkipReason, Skipped};

/// Everything that can stop a build, each naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The path is not a git repository, or libgit2 failed reading it.
    #[error("cannot read git repository at {}: {detail}", path.display())]
    Repository {
        /// The repository path given.
        path: PathBuf,
        /// libgit2's message.
        detail: String,
    },
    /// HEAD has no commit yet.
    #[error("repository at {} has no commits yet: commit something, then build", path.display())]
    EmptyRepository {
        /// The repository path.
        path: PathBuf,
    },
    /// The revision does not resolve to a commit.
    #[error("revision '{rev}' not found in {} (try a branch, tag or commit id that `git rev-parse` knows)", path.display())]
    UnknownRevision {
        /// The revision asked for.
        rev: String,
        /// The repository path.
        path: PathBuf,
    },
    /// Invalid settings.
    #[error("invalid build settings in {origin}: {detail}")]
    Config {
        /// Where the settings came from.
        origin: String,
        /// What is wrong.
        detail: String,
    },
    /// Every file was skipped.
    #[error(
        "nothing to index at commit {commit}: {summary}; check .shelfignore and build.include/exclude"
    )]
    NothingToIndex {
        /// The commit.
        commit: String,
        /// Skip counts by reason.
        summary: String,
    },
    /// The previous bundle cannot be used.
    #[error("cannot use previous bundle {}: {detail}", path.display())]
    Previous {
        /// The previous bundle path.
        path: PathBuf,
        /// Why.
        detail: String,
    },
    /// Embedding failed.
    #[error(transparent)]
    Embed(#[from] EmbedError),
    /// The embedding cache could not be read or written.
    #[error("embedding cache: {0}")]
    Cache(String),
    /// The vector index failed.
    #[error("vector index: {0}")]
    Index(String),
    /// Writing the bundle failed.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The repository (work tree or bare).
    pub repo: PathBuf,
    /// The revision.
    pub rev: String,
    /// Output directory for the bundle.
    pub out_dir: PathBuf,
    /// A previous bundle whose vectors may be reused.
    pub previous: Option<PathBuf>,
    /// A config file on disk; otherwise `shelf.toml` at the revision, if any.
    pub config: Option<PathBuf>,
    /// Repository name for the manifest.
    pub name: Option<String>,
}

/// The embedder's tokenizer as the chunker's measure (public so benchmarks
/// can reproduce exactly what a build embeds).
pub struct ModelTokens<'a>(pub &'a Embedder);

impl TokenSpans for ModelTokens<'_> {
    fn spans(&self, text: &str) -> Vec<(usize, usize)> {
        // A tokenizer error on some text is not worth failing the build
        // for: fall back to a generous estimate (one token per 3 bytes).
        self.0.token_spans(text).unwrap_or_else(|_| {
            (0..text.len())
                .step_by(3)
                .map(|i| (i, (i + 3).min(text.len())))
                .collect()
        })
    }
}

/// A selected file's text.
struct FileText {
    path: String,
    text: String,
    /// sha256 of `text`: what the previous bundle's copy is matched by.
    sha256: [u8; 32],
}

/// One file's chunks, cut now or reused from the previous bundle.
struct FileChunks {
    path: String,
    chunks: Vec<chunker::Chunk>,
    /// Taken from the previous bundle: their vectors are there too, and
    /// they carry no text to embed.
    reused: bool,
    /// Where they were in the previous bundle: the key of the first.
    previous_key: Option<usize>,
    /// The previous bundle's compressed copy of the text, when it was
    /// compressed exactly as this build would.
    compressed: Option<CompressedText>,
}

/// What a build of a request would be, found without building: the commit
/// and the settings that decide the bundle's bytes.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The commit id `rev` resolves to.
    pub commit: String,
    /// The manifest's settings for this build.
    pub settings: shelf_formats::manifest::BuildSettings,
}

/// Resolves the commit and settings of `req` (cheap: no file is read but
/// `shelf.toml`), e.g. to look up a commit record before building.
pub fn plan(req: &BuildRequest, model: &shelf_formats::ModelIdentity) -> Result<Plan, BuildError> {
    let (repo, snapshot) = source::open(&req.repo, &req.rev, req.name.as_deref())?;
    let settings = resolve_settings(req, &repo, &snapshot, model.max_tokens)?;
    Ok(Plan {
        commit: snapshot.commit,
        settings: settings.to_manifest(),
    })
}

fn resolve_settings(
    req: &BuildRequest,
    repo: &git2::Repository,
    snapshot: &source::Snapshot,
    max_tokens: u32,
) -> Result<Settings, BuildError> {
    match &req.config {
        Some(path) => Settings::from_file(path, max_tokens),
        None => match source::read_root_file(repo, snapshot, "shelf.toml") {
            Some(bytes) => Settings::from_toml(
                &String::from_utf8_lossy(&bytes),
                "shelf.toml (at the revision)",
                max_tokens,
            ),
            None => Ok(Settings::default()),
        },
    }
}

/// A candidate file after reading: its text, or why it is skipped.
enum FileRead {
    Text {
        text: String,
        lossy: bool,
        withheld: Vec<secrets::Finding>,
    },
    Skip(SkipReason),
    /// Nothing but credentials: skipped as `secret`, its lines reported.
    OnlySecrets(Vec<secrets::Finding>),
}

fn git_error(repo: &Path, path: &str, e: &git2::Error) -> BuildError {
    BuildError::Repository {
        path: repo.to_path_buf(),
        detail: format!("reading {path}: {}", e.message()),
    }
}

/// Reads one blob and applies the content rules: size (from the object
/// header, before inflating), binary, UTF-8 (lossy), empty.
fn read_candidate(
    repo: &git2::Repository,
    c: &select::Candidate,
    max_file_bytes: u64,
    exclude_generated: bool,
    scanner: &secrets::SecretScanner,
) -> Result<FileRead, BuildError> {
    let err = |e: git2::Error| git_error(repo.path(), &c.path, &e);
    let (size, _) = repo.odb().map_err(err)?.read_header(c.oid).map_err(err)?;
    if size as u64 > max_file_bytes {
        return Ok(FileRead::Skip(SkipReason::TooLarge));
    }
    let blob = repo.find_blob(c.oid).map_err(err)?;
    let bytes = blob.content();
    if select::is_binary(bytes) {
        return Ok(FileRead::Skip(SkipReason::Binary));
    }
    let (mut text, lossy) = match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), false),
        Err(_) => (String::from_utf8_lossy(bytes).into_owned(), true),
    };
    if text.trim().is_empty() {
        return Ok(FileRead::Skip(SkipReason::Empty));
    }
    let mut withheld = Vec::new();
    if let Some((kept, found)) = scanner.scan(&c.path, &text) {
        tracing::warn!(
            path = %c.path,
            lines = %found.iter().map(|f| f.line.to_string()).collect::<Vec<_>>().join(","),
            rules = %found.iter().map(|f| f.rule).collect::<Vec<_>>().join(","),
            "withheld lines that look like credentials from the index (allow the path with build.allow_secrets_in if they are fake)"
        );
        if kept.trim().is_empty() {
            return Ok(FileRead::OnlySecrets(found));
        }
        (text, withheld) = (kept, found);
    }
    if exclude_generated && select::looks_generated(&text) {
        return Ok(FileRead::Skip(SkipReason::Generated));
    }
    Ok(FileRead::Text {
        text,
        lossy,
        withheld,
    })
}

/// The commit, its settings, and the selected files' texts.
struct ReadOut {
    snapshot: source::Snapshot,
    settings: Settings,
    files: Vec<FileText>,
    skipped: Skipped,
    decoded_lossy: u64,
    text_bytes: u64,
    /// Lines left out because they hold credentials.
    withheld: secrets::SecretsReport,
}

/// Every chunk's vector by content id, and how many were made or reused.
struct Vectors {
    by_id: HashMap<[u8; 32], Vec<f32>>,
    embedded: u64,
    reused: u64,
    cached: u64,
    /// Time spent asking and filling the cache (not embedding).
    cache_time: std::time::Duration,
}

/// The members written into a staging directory, ready to pack.
struct Staged {
    dir: tempfile::TempDir,
    files_indexed: u64,
    files_unchanged: u64,
    /// How long each member took to write (wall, CPU).
    parts: Vec<(&'static str, (std::time::Duration, std::time::Duration))>,
    chunks: u64,
    /// The optional members written (format 1.4), by name.
    extra: Vec<&'static str>,
}

/// What the bundle knows beyond chunks and vectors: the definitions index
/// and the history index, each absent when off (or, for history, when the
/// clone is shallow).
struct Extras {
    definitions: Option<DefinitionsWriter>,
    history: Option<Vec<HistoryCommit>>,
}

/// Builds one bundle. See the crate docs for the pipeline: each stage is
/// one function below, timed here.
pub fn build(
    req: &BuildRequest,
    embedder: &Embedder,
    observer: &dyn Observer,
) -> Result<BuildReport, BuildError> {
    build_with(req, embedder, None, observer)
}

/// [`build`] with an embedding cache: chunks it holds are not embedded,
/// and what it lacks is given to it. The bundle is the same either way.
pub fn build_with(
    req: &BuildRequest,
    embedder: &Embedder,
    cache: Option<&dyn VectorCache>,
    observer: &dyn Observer,
) -> Result<BuildReport, BuildError> {
    let started = Stopwatch::start();
    let mut timings = Timings::default();

    let t = Stopwatch::start();
    let read = read_files(req, embedder, observer)?;
    timings.record("read", t);
    let t = Stopwatch::start();
    let previous = match &req.previous {
        Some(p) => previous::Previous::open(p, embedder.identity())?,
        None => None,
    };
    if req.previous.is_some() {
        timings.record("previous", t);
    }
    let t = Stopwatch::start();
    let chunked = chunk_files(&read, embedder, previous.as_ref(), observer);
    timings.record("chunk", t);
    let t = Stopwatch::start();
    let definitions = definitions_of(&read, &chunked, previous.as_ref());
    timings.record("definitions", t);
    let t = Stopwatch::start();
    let extras = Extras {
        definitions,
        history: history_of(req, &read, previous.as_ref())?,
    };
    timings.record("history", t);
    let t = Stopwatch::start();
    let vectors = vectors_for(&chunked, embedder, previous.as_ref(), cache, observer)?;
    let (wall, cpu) = t.lap();
    timings.record_lap("embed", (wall.saturating_sub(vectors.cache_time), cpu));
    if cache.is_some() {
        timings.record_wall("cache", vectors.cache_time);
    }
    let t = Stopwatch::start();
    let mut staged = write_members(
        &req.out_dir,
        &read,
        &chunked,
        &vectors,
        previous.as_ref(),
        embedder,
        observer,
    )?;
    write_extras(&mut staged, &extras)?;
    drop(previous);
    timings.record("index", t);
    for (part, took) in &staged.parts {
        timings.record_lap(part, *took);
    }
    let t = Stopwatch::start();
    observer.stage(Stage::Pack, 1);
    let written = pack(&req.out_dir, &read, embedder, &staged)?;
    observer.advance(1);
    timings.record("pack", t);
    timings.record("total", started);

    let ReadOut {
        snapshot,
        skipped,
        decoded_lossy,
        text_bytes,
        withheld,
        ..
    } = read;
    let mut report = BuildReport::new(
        &written,
        &snapshot,
        report::FileCounts {
            seen: snapshot.entries.len() as u64,
            indexed: staged.files_indexed,
            skipped: skipped.by_name(),
            skipped_examples: skipped
                .examples
                .iter()
                .map(|(r, v)| (r.as_str().to_string(), v.clone()))
                .collect(),
            decoded_lossy,
            text_bytes,
            unchanged: staged.files_unchanged,
        },
        report::ChunkCounts {
            total: staged.chunks,
            embedded: vectors.embedded,
            reused: vectors.reused,
            cached: vectors.cached,
        },
        &timings,
    );
    report.secrets = withheld.finish();
    Ok(report)
}

/// Read: the commit, its settings, and the selected files' contents, blobs
/// read on every core.
fn read_files(
    req: &BuildRequest,
    embedder: &Embedder,
    observer: &dyn Observer,
) -> Result<ReadOut, BuildError> {
    observer.stage(Stage::Read, 0);
    let (repo, snapshot) = source::open(&req.repo, &req.rev, req.name.as_deref())?;
    let settings = resolve_settings(req, &repo, &snapshot, embedder.identity().max_tokens)?;
    let shelfignore = source::read_root_file(&repo, &snapshot, ".shelfignore")
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let filter = select::PathFilter::new(&settings, shelfignore.as_deref())?;
    let mut skipped = Skipped::default();
    let candidates = select::by_path(&snapshot, &filter, &mut skipped);
    let scanner = secrets::SecretScanner::new(&settings.allow_secrets_in)?;
    let mut withheld = secrets::SecretsReport::default();
    observer.stage(Stage::Read, candidates.len() as u64);
    // A git2 Repository is not Sync, so each rayon thread opens its own
    // handle on the same object database.
    let git_dir = repo.path().to_path_buf();
    let read: Vec<(select::Candidate, Result<FileRead, BuildError>)> = candidates
        .into_par_iter()
        .map_init(
            || git2::Repository::open(&git_dir),
            |handle, c| {
                let result = match handle {
                    Ok(r) => read_candidate(
                        r,
                        &c,
                        settings.max_file_bytes,
                        settings.exclude_generated,
                        &scanner,
                    ),
                    Err(e) => Err(git_error(&req.repo, &c.path, e)),
                };
                observer.advance(1);
                (c, result)
            },
        )
        .collect();
    let mut files = Vec::with_capacity(read.len());
    let (mut decoded_lossy, mut text_bytes) = (0u64, 0u64);
    for (c, result) in read {
        match result? {
            FileRead::Skip(reason) => skipped.add(reason, &c.path),
            FileRead::OnlySecrets(found) => {
                withheld.add(found);
                skipped.add(SkipReason::Secret, &c.path);
            }
            FileRead::Text {
                text,
                lossy,
                withheld: found,
            } => {
                withheld.add(found);
                decoded_lossy += u64::from(lossy);
                text_bytes += text.len() as u64;
                let sha256 = sha2::Sha256::digest(text.as_bytes()).into();
                files.push(FileText {
                    path: c.path,
                    text,
                    sha256,
                });
            }
        }
    }
    if files.is_empty() {
        let summary = if skipped.counts.is_empty() {
            "the tree has no files".to_string()
        } else {
            skipped
                .by_name()
                .iter()
                .map(|(r, n)| format!("{n} {r}"))
                .collect::<Vec<_>>()
                .join(", ")
                + " skipped"
        };
        return Err(BuildError::NothingToIndex {
            commit: snapshot.commit,
            summary,
        });
    }
    Ok(ReadOut {
        snapshot,
        settings,
        files,
        skipped,
        decoded_lossy,
        text_bytes,
        withheld,
    })
}

/// Chunk on every core, in file order. A file whose path and text are the
/// previous bundle's, chunked with the same settings by the same model,
/// takes its chunks from there: chunking it again would give the same.
fn chunk_files(
    read: &ReadOut,
    embedder: &Embedder,
    previous: Option<&previous::Previous>,
    observer: &dyn Observer,
) -> Vec<FileChunks> {
    observer.stage(Stage::Chunk, read.files.len() as u64);
    // A model's document prefix is embedded with every chunk: leave room.
    let params = ChunkParams {
        max_tokens: read
            .settings
            .max_chunk_tokens
            .saturating_sub(embedder.document_prefix_tokens() as u32)
            .max(16),
        overlap_lines: read.settings.overlap_lines,
        chunker: read.settings.chunker,
    };
    let spans = ModelTokens(embedder);
    let model = embedder.identity();
    let manifest_settings = read.settings.to_manifest();
    let chunks_alike = previous.filter(|p| p.chunks_alike(&manifest_settings));
    let texts_alike = previous.is_some_and(|p| p.texts_alike(&manifest_settings));
    read.files
        .par_iter()
        .map(|f| {
            let done = match chunks_alike.and_then(|p| p.file(&f.path, &f.sha256)) {
                Some(p) => FileChunks {
                    path: f.path.clone(),
                    chunks: p.chunks,
                    reused: true,
                    previous_key: Some(p.first_key),
                    compressed: p.text.filter(|_| texts_alike),
                },
                None => FileChunks {
                    path: f.path.clone(),
                    chunks: chunker::chunk_file(&f.path, &f.text, params, &spans, model),
                    reused: false,
                    previous_key: None,
                    compressed: None,
                },
            };
            observer.advance(1);
            done
        })
        .collect()
}

/// Definitions: every indexed file's (those with chunks, numbered as the
/// chunk store numbers their paths), found on every core; an unchanged
/// file's carried over from the previous bundle when it found them the
/// same way (the same text gives the same definitions, so the index is the
/// one a cold build writes).
fn definitions_of(
    read: &ReadOut,
    chunked: &[FileChunks],
    previous: Option<&previous::Previous>,
) -> Option<DefinitionsWriter> {
    let extractor = read.settings.definitions;
    let kind = extractor.kind()?;
    let carried = previous.and_then(|p| p.definitions(kind));
    let numbered: Vec<(&FileText, &FileChunks, u32)> = read
        .files
        .iter()
        .zip(chunked)
        .filter(|(_, c)| !c.chunks.is_empty())
        .enumerate()
        .map(|(n, (f, c))| (f, c, n as u32))
        .collect();
    let found: Vec<Vec<shelf_formats::definitions::Definition>> = numbered
        .par_iter()
        .map(|(f, c, n)| match &carried {
            Some(by_path) if c.reused => by_path
                .get(f.path.as_str())
                .into_iter()
                .flatten()
                .map(|d| shelf_formats::definitions::Definition {
                    path_index: *n,
                    ..d.clone()
                })
                .collect(),
            _ => definitions::of_file(extractor, &f.path, *n, &f.text),
        })
        .collect();
    let mut writer = DefinitionsWriter::new();
    for d in found.into_iter().flatten() {
        writer.push(d);
    }
    Some(writer)
}

/// History: the commit's recent ancestors, carried forward from the
/// previous bundle when it allows (`history_index.rs`).
fn history_of(
    req: &BuildRequest,
    read: &ReadOut,
    previous: Option<&previous::Previous>,
) -> Result<Option<Vec<HistoryCommit>>, BuildError> {
    let limit = read.settings.history_commits;
    if limit == 0 {
        return Ok(None);
    }
    let previous = match previous {
        Some(p) => p.history()?,
        None => None,
    };
    let repo = git2::Repository::open(&req.repo).map_err(|e| BuildError::Repository {
        path: req.repo.clone(),
        detail: e.message().to_string(),
    })?;
    let collected = history_index::collect(&repo, &read.snapshot.commit, limit, previous.as_ref())?;
    if let Some((commits, how)) = &collected {
        tracing::debug!(
            commits = commits.len(),
            mined = how.mined,
            carried = how.carried,
            "history index"
        );
    }
    Ok(collected.map(|(commits, _)| commits))
}

/// Vectors: reused by content id from the previous bundle, then taken from
/// the cache, the rest embedded, each unique text once. The cache is then
/// given every vector of this commit it lacked (embedded here or reused
/// from the previous bundle), so whatever bundle a later build of any
/// branch makes from these chunks finds them.
fn vectors_for(
    chunked: &[FileChunks],
    embedder: &Embedder,
    previous: Option<&previous::Previous>,
    cache: Option<&dyn VectorCache>,
    observer: &dyn Observer,
) -> Result<Vectors, BuildError> {
    let model = embedder.identity();
    let mut by_id: HashMap<[u8; 32], Vec<f32>> = HashMap::new();
    // Distinct chunks in order of first appearance.
    let mut unique: Vec<&chunker::Chunk> = Vec::new();
    let mut reused = 0u64;
    for file in chunked {
        for c in &file.chunks {
            if by_id.contains_key(&c.content_id) {
                continue;
            }
            unique.push(c);
            if let Some(v) = previous.and_then(|p| p.vector(&c.content_id)) {
                by_id.insert(c.content_id, v);
                reused += 1;
            } else if file.reused {
                // A reused chunk's vector is in the bundle it came from.
                return Err(BuildError::Index(format!(
                    "the previous bundle has no vector for a chunk of {} (a bug: please report it)",
                    file.path
                )));
            } else {
                // Placeholder marks "queued" so duplicates are embedded once.
                by_id.insert(c.content_id, Vec::new());
            }
        }
    }
    let t = Instant::now();
    let ids: Vec<[u8; 32]> = unique.iter().map(|c| c.content_id).collect();
    let held = match cache {
        Some(cache) => cache.holds(&ids)?,
        None => vec![false; ids.len()],
    };
    let wanted: Vec<[u8; 32]> = unique
        .iter()
        .zip(&held)
        .filter(|(c, h)| **h && by_id[&c.content_id].is_empty())
        .map(|(c, _)| c.content_id)
        .collect();
    let mut cached = 0u64;
    if let Some(cache) = cache
        && !wanted.is_empty()
    {
        for (id, v) in cache.fetch(&wanted)? {
            if v.len() == model.dimensions as usize
                && let Some(slot) = by_id.get_mut(&id).filter(|s| s.is_empty())
            {
                *slot = v;
                cached += 1;
            }
        }
    }
    let mut cache_time = t.elapsed();
    let missing: Vec<&chunker::Chunk> = unique
        .iter()
        .copied()
        .filter(|c| by_id[&c.content_id].is_empty())
        .collect();
    let embedded = missing.len() as u64;
    observer.stage(Stage::Embed, missing.len() as u64);
    let fresh = embedding::embed_missing(embedder, &missing, observer)?;
    for (c, v) in missing.iter().zip(fresh) {
        by_id.insert(c.content_id, v);
    }
    if let Some(cache) = cache {
        let t = Instant::now();
        // What the cache lacked: not held, or held by a pack it could not
        // hand out (those were just embedded again).
        let embedded_now: std::collections::HashSet<[u8; 32]> =
            missing.iter().map(|c| c.content_id).collect();
        let lacking: Vec<([u8; 32], &[f32])> = unique
            .iter()
            .zip(&held)
            .filter(|(c, h)| !**h || embedded_now.contains(&c.content_id))
            .map(|(c, _)| (c.content_id, by_id[&c.content_id].as_slice()))
            .collect();
        cache.save(&lacking)?;
        cache_time += t.elapsed();
    }
    Ok(Vectors {
        by_id,
        embedded,
        reused,
        cached,
        cache_time,
    })
}

/// Index and chunk store (and lexical index), in (path, line) order: key
/// i = chunk i, and the texts of the files that have chunks, written into a
/// staging directory beside the output.
fn write_members(
    out_dir: &Path,
    read: &ReadOut,
    chunked: &[FileChunks],
    vectors: &Vectors,
    previous: Option<&previous::Previous>,
    embedder: &Embedder,
    observer: &dyn Observer,
) -> Result<Staged, BuildError> {
    let files = &read.files;
    let total_chunks: usize = chunked.iter().map(|f| f.chunks.len()).sum();
    observer.stage(Stage::Index, total_chunks as u64);
    let staging = tempfile::Builder::new()
        .prefix(".staging-")
        .tempdir_in(prepare_out_dir(out_dir)?)
        .map_err(|e| BuildError::Io {
            path: out_dir.to_path_buf(),
            source: e,
        })?;
    let mut store = ChunkStoreWriter::new();
    let mut ordered = Vec::with_capacity(total_chunks);
    let mut files_indexed = 0u64;
    let mut files_unchanged = 0u64;
    for FileChunks {
        path,
        chunks,
        reused,
        ..
    } in chunked
    {
        files_indexed += u64::from(!chunks.is_empty());
        files_unchanged += u64::from(*reused && !chunks.is_empty());
        for c in chunks {
            store.push(&ChunkRecord {
                content_id: c.content_id,
                path,
                start_line: c.start_line,
                end_line: c.end_line,
                text: &c.text,
            });
            // Content that appears twice in a commit shares one vector.
            let v = vectors
                .by_id
                .get(&c.content_id)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    BuildError::Index(format!(
                        "no vector for a chunk of {path} (a bug: please report it)"
                    ))
                })?;
            ordered.push(v.as_slice());
        }
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| BuildError::Io { path, source: e }
    };
    let write = |name: &str, write: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>| {
        let path = staging.path().join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
        write(&mut f).map_err(io(&path))?;
        std::io::Write::flush(&mut f).map_err(io(&path))
    };
    // Each member's share of the stage, for the report.
    let mut parts = Vec::new();
    let t = Stopwatch::start();
    write(members::CHUNKS, &|w| store.write_to(w))?;
    parts.push(("index.chunks", t.lap()));
    let t = Stopwatch::start();
    let reuse = previous.and_then(|p| p.lexical(&read.settings.to_manifest()));
    write(members::LEXICAL, &|w| {
        lexical_index(chunked, reuse.as_ref()).write_to(w)
    })?;
    parts.push(("index.lexical", t.lap()));
    let t = Stopwatch::start();
    write(members::FILES, &|w| file_texts(files, chunked)?.write_to(w))?;
    parts.push(("index.files", t.lap()));
    let t = Stopwatch::start();
    vectors::write(
        &ordered,
        embedder.identity().dimensions as usize,
        &staging.path().join(members::FLAT_VECTORS),
    )?;
    parts.push(("index.vectors", t.lap()));
    observer.advance(total_chunks as u64);
    Ok(Staged {
        dir: staging,
        files_indexed,
        files_unchanged,
        parts,
        chunks: total_chunks as u64,
        extra: Vec::new(),
    })
}

/// The lexical index of every chunk, in chunk order: an unchanged chunk's
/// terms carried over from the previous bundle's index (`reuse`), every
/// other chunk analysed on its own core; then all added in order, so the
/// bytes do not depend on how the work was split or what was reused.
fn lexical_index(
    chunked: &[FileChunks],
    reuse: Option<&previous::LexicalReuse<'_>>,
) -> LexicalIndexWriter {
    // Each chunk: its key in the previous bundle, when its terms can be
    // carried over, else what to analyze.
    let docs: Vec<(Option<usize>, &str, &str)> = chunked
        .iter()
        .flat_map(|f| {
            f.chunks.iter().enumerate().map(move |(j, c)| {
                let key = f.previous_key.filter(|_| reuse.is_some()).map(|k| k + j);
                (key, f.path.as_str(), c.text.as_str())
            })
        })
        .collect();
    let counted: Vec<Option<CountedDoc>> = docs
        .par_iter()
        .map(|(key, path, text)| key.is_none().then(|| CountedDoc::chunk(path, text)))
        .collect();
    let mut lexical = LexicalIndexWriter::new();
    let mut remap = Vec::new();
    for ((key, path, text), doc) in docs.iter().zip(counted) {
        match (doc, key, reuse) {
            (Some(doc), _, _) => lexical.push_counted(doc),
            (None, Some(key), Some((index, documents))) => match documents.get(*key) {
                Some(terms) => lexical.push_from(index, terms, index.doc_len(*key), &mut remap),
                None => lexical.push_chunk(path, text),
            },
            (None, _, _) => lexical.push_chunk(path, text),
        }
    }
    lexical
}

/// The texts of the files that were indexed (those with chunks), as the
/// chunks saw them (withheld lines empty), compressed on every core; a
/// text the previous bundle compressed the same way is taken as it is.
fn file_texts(files: &[FileText], chunked: &[FileChunks]) -> std::io::Result<FileTextsWriter> {
    let compressed: Vec<(&str, CompressedText)> = files
        .par_iter()
        .zip(chunked.par_iter())
        .filter(|(_, c)| !c.chunks.is_empty())
        .map(|(f, c)| {
            let text = match &c.compressed {
                Some(done) => done.clone(),
                None => CompressedText::new(&f.text)?,
            };
            Ok((f.path.as_str(), text))
        })
        .collect::<std::io::Result<_>>()?;
    let mut writer = FileTextsWriter::new();
    for (path, text) in compressed {
        writer.push(path, text);
    }
    Ok(writer)
}

/// The optional members (format 1.4): the definitions index and the
/// history index with its lexical index, written beside the others.
fn write_extras(staged: &mut Staged, extras: &Extras) -> Result<(), BuildError> {
    let dir = staged.dir.path().to_path_buf();
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e| BuildError::Io { path, source: e }
    };
    let write = |name: &str, write: &dyn Fn(&mut dyn std::io::Write) -> std::io::Result<()>| {
        let path = dir.join(name);
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io(&path))?);
        write(&mut f).map_err(io(&path))?;
        std::io::Write::flush(&mut f).map_err(io(&path))
    };
    let t = Stopwatch::start();
    let mut extra = Vec::new();
    if let Some(defs) = &extras.definitions {
        write(members::DEFINITIONS, &|w| defs.write_to(w))?;
        extra.push(members::DEFINITIONS);
    }
    if let Some(commits) = &extras.history {
        let mut history = HistoryWriter::new();
        let mut messages = LexicalIndexWriter::new();
        for c in commits {
            let mut terms = Vec::new();
            Analyzer::CURRENT.analyze(&c.message, |t| terms.push(t.to_string()));
            messages.push_doc(terms.iter().map(String::as_str));
            history
                .push(c.clone())
                .map_err(io(&dir.join(members::HISTORY)))?;
        }
        write(members::HISTORY, &|w| history.write_to(w))?;
        write(members::HISTORY_LEXICAL, &|w| messages.write_to(w))?;
        extra.extend([members::HISTORY, members::HISTORY_LEXICAL]);
    }
    staged.parts.push(("index.extras", t.lap()));
    staged.extra = extra;
    Ok(())
}

/// Pack: the manifest and the staged members, into `<out>/<hex>.tar.zst`.
fn pack(
    out_dir: &Path,
    read: &ReadOut,
    embedder: &Embedder,
    staged: &Staged,
) -> Result<shelf_formats::bundle::WrittenBundle, BuildError> {
    let snapshot = &read.snapshot;
    let manifest = Manifest {
        format_version: 0,
        format_minor: 0,
        source: Source {
            repository: snapshot.repository.clone(),
            commit: snapshot.commit.clone(),
            tree: snapshot.tree.clone(),
            git_ref: snapshot.git_ref.clone(),
            commit_time: snapshot.commit_time,
        },
        model: embedder.identity().clone(),
        settings: {
            // A setting whose member could not be made (history in a
            // shallow clone) is not recorded as if it were there.
            let mut settings = read.settings.to_manifest();
            if !staged.extra.contains(&members::DEFINITIONS) {
                settings.definitions = None;
            }
            if !staged.extra.contains(&members::HISTORY) {
                settings.history = None;
            }
            settings
        },
        counts: Counts {
            files_indexed: staged.files_indexed,
            chunks: staged.chunks,
            skipped: read.skipped.by_name(),
            decoded_lossy: read.decoded_lossy,
        },
        members: Vec::new(),
    };
    let member = |name: &str| (name.to_string(), staged.dir.path().join(name));
    let mut all: Vec<(String, PathBuf)> = [
        members::CHUNKS,
        members::FILES,
        members::LEXICAL,
        members::FLAT_VECTORS,
    ]
    .iter()
    .chain(&staged.extra)
    .map(|n| member(n))
    .collect();
    all.sort();
    Ok(write_bundle(out_dir, manifest, &all)?)
}

fn prepare_out_dir(dir: &Path) -> Result<&Path, BuildError> {
    std::fs::create_dir_all(dir).map_err(|e| BuildError::Io {
        path: dir.to_path_buf(),
        source: e,
    })?;
    Ok(dir)
}
