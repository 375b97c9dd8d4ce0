//! The contract between shelf's builder and server. Everything both sides
//! must agree on lives here, once: the bundle archive and its manifest, the
//! chunk store's and file texts' byte layouts, tag records, the object-store
//! key layout, the embedding cache's packs and the identity of the embedding
//! model. Nothing else in shelf knows a byte layout.

pub mod bundle;
pub mod chunks;
pub mod commit_record;
pub mod definitions;
pub mod defline;
pub mod digest;
pub mod embedding_cache;
pub mod files;
pub mod history;
pub mod keys;
pub mod kind;
pub mod layout;
pub mod lexical;
pub mod manifest;
pub mod model;
pub mod names;
pub mod tag;
pub mod vectors;

pub use digest::Digest;
pub use kind::FileKind;
pub use manifest::{FORMAT_MINOR, FORMAT_VERSION, Manifest};
pub use model::ModelIdentity;
