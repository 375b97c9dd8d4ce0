//! shelf's query server: a verified bundle from the store followed by tag,
//! swapped atomically, and the search engine (`shelf-search`) served over
//! HTTP. Depends on `formats` for every byte layout, `search` for answers,
//! `embed` for the query model and `store` for following; never on the
//! builder.
//!
//! Map: `allocator` (the C allocator's arenas bounded per core), `cache`
//! (unpacked bundles on disk and their retention), `follow` (what a tag
//! points at), `reload` (one repository's follower: check,
//! load beside, swap), `state` (one repository's live pointer and status),
//! `repos` (every served repository), `root` (repositories found under a
//! store root), `supervise` (those long-lived tasks watched, reported and
//! restarted), `query_embedder` (the query model's workers), `ops` (every
//! operation a caller can ask, and its one parameter table), `error` and
//! `guard` (refusals, tokens, rate and admission), `http` (the REST API and
//! its limits), `mcp` (the Model Context Protocol over HTTP and stdio),
//! `metrics`, `config`, `serve` (start to shutdown), `fault` (faults tests
//! inject into debug builds). Transports depend on `ops`, never the other
//! way round.

pub mod allocator;
pub mod cache;
pub mod config;
pub mod error;
pub mod fault;
pub mod follow;
pub mod guard;
pub mod http;
pub mod lease;
pub mod mcp;
pub mod metrics;
pub mod ops;
pub mod query_embedder;
pub mod reload;
pub mod repos;
pub mod root;
pub mod scrub;
pub mod serve;
pub mod state;
pub mod supervise;
pub mod web;

pub use serve::{Front, ServeError, run};
