//! shelf's search engine: the read side of a bundle, with no server in it.
//!
//! A verified bundle is opened by memory map ([`MappedBundle`]); a query
//! becomes a [`Request`]; [`Engine::answer`] embeds it (through a
//! [`QueryEncoder`] the caller brings), runs the rankers, fuses, groups and
//! returns an [`Answer`], the one type the HTTP API, `shelf search`,
//! `shelf eval` and the benchmarks all serialise.
//!
//! Map: `installed` (a bundle verified once into a directory), `mapped`
//! (one opened bundle, mapped from there), `flat` (exact vector search), `filter` (path and language filters
//! resolved per bundle), `language`, `encode` (query windows and the
//! encoder trait), `semantic` and `lexical` (the two rankers), `rank`
//! (modes, candidates, fusion), `candidates` (files from definitions,
//! paths and history), `query` (query understanding), `code`
//! (code-aware ranking), `group` (files from chunks), `answer` (the
//! pipeline), `across` (several bundles as one collection), `files`
//! (reading and grepping the files at the bundle's commit), `definition`
//! (definition lines, for `find_definitions`), `listing` (files under a
//! path or glob, a file's outline), `references` (where a symbol is
//! used), `related` (chunks like a file's lines), `changes` (two versions
//! of a repository compared), `budget` (the `max_tokens`
//! bound on answers), `eval` (file-level metrics and the quality gate).
//!
//! Depends on `formats` (byte layouts, kinds) and `embed` (the in-process
//! encoder); never on the server or the builder.

pub mod across;
pub mod answer;
pub mod budget;
pub mod candidates;
pub mod changes;
pub mod code;
pub mod encode;
pub mod error;
pub mod eval;
pub mod files;
pub mod filter;
pub mod flat;
pub mod group;
pub mod installed;
pub mod language;
pub mod lexical;
pub mod listing;
pub mod mapped;
pub mod query;
pub mod rank;
pub mod references;
pub mod related;
pub mod semantic;

pub use answer::{
    Answer, BundleRef, Engine, Group, RawRequest, Request, RequestLimits, ResultChunk, ResultFile,
    Target, Timings, Tuning,
};
pub use code::KindPreference;
pub use encode::{EncodeError, Encoded, QueryEncoder};
pub use error::{RequestError, SearchError};
pub use filter::Filter;
pub use mapped::{Hit, MappedBundle, OpenError};
pub use rank::Mode;
