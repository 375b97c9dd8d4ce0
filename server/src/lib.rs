//! shelf's read side: verified bundles opened by memory map, a tag followed
//! in the store, bundles swapped atomically, queries answered over HTTP.
//! Depends on `formats` for every byte layout, `embed` for queries and
//! `store` for following; never on the builder.
//!
//! Map: `live` (one mapped bundle), `cache` (unpacked bundles on disk and
//! their retention), `follow` (what a tag points at), `reload` (check, load
//! beside, warm, swap), `state` (the live pointer and status), `query`
//! (filters, filtered vector search), `lexical` (BM25), `search` (modes,
//! long-query windows, fusion, file grouping), `query_embedder`
//! (micro-batched query vectors),
//! `http` (the API and its limits), `metrics`, `config`, `serve` (start to
//! shutdown).

pub mod cache;
pub mod config;
pub mod eval;
pub mod follow;
pub mod http;
pub mod lexical;
pub mod live;
pub mod metrics;
pub mod query;
pub mod query_embedder;
pub mod reload;
pub mod search;
pub mod serve;
pub mod state;

pub use live::{Hit, LiveBundle, OpenError};
pub use serve::{ServeError, run};
