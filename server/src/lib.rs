//! shelf's read side: verified bundles, opened by memory map and searched.
//! Depends on `formats` for every byte layout and on `embed` for queries;
//! never on the builder.

pub mod live;

pub use live::{Hit, LiveBundle, OpenError};
