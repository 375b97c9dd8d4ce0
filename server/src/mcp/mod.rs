//! The Model Context Protocol (docs/clients.md): the protocol itself,
//! transport-free ([`protocol`]: both eras, 2024-11-05 to 2025-11-25 and
//! 2026-07-28), the tools ([`tools`]: one per operation of [`crate::ops`],
//! with that operation's parameter table and answer type), the indexed
//! files as resources by URI ([`resources`]), and its two
//! transports: streamable HTTP (`POST /mcp`, [`http`]) and stdio
//! (`shelf mcp`, [`stdio`]). Depends on the operations, never the other
//! way round.

pub mod http;
pub mod protocol;
pub mod resources;
pub mod stdio;
pub mod tools;
