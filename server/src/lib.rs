//! shelf's query server: a verified bundle from the store followed by tag,
//! swapped atomically, and the search engine (`shelf-search`) served over
//! HTTP. Depends on `formats` for every byte layout, `search` for answers,
//! `embed` for the query model and `store` for following; never on the
//! builder.
//!
//! Map: `cache` (unpacked bundles on disk and their retention), `follow`
//! (what a tag points at), `reload` (one repository's follower: check,
//! load beside, swap), `state` (one repository's live pointer and status),
//! `repos` (every served repository), `root` (repositories found under a
//! store root), `supervise` (those long-lived tasks watched, reported and
//! restarted), `query_embedder` (the query model's workers), `http` (the
//! API and its limits), `metrics`, `config`, `serve` (start to shutdown),
//! `fault` (faults tests inject into debug builds).

pub mod cache;
pub mod config;
pub mod fault;
pub mod follow;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod query_embedder;
pub mod reload;
pub mod repos;
pub mod root;
pub mod scrub;
pub mod serve;
pub mod state;
pub mod supervise;

pub use serve::{Front, ServeError, run};
