//! Speed and memory, measured with the real `shelf` binary (builds,
//! servers under load) or in process (the model, the index), each against
//! the targets in its table.

pub mod agreement;
pub mod build;
pub mod cache;
pub mod commit;
pub mod embed;
pub mod limit;
pub mod mcp;
pub mod quantization;
pub mod repos;
pub mod serve;
pub mod web;
