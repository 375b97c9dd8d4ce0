//! One module per subcommand; each `run` returns the process exit code.

pub mod build;
pub mod doctor;
pub mod search;
pub mod verify;
