//! Retrieval quality: real issues and mined golden queries asked of
//! bundles of real repositories (fetched under `--mirror`, never
//! committed), scored at the file level as `shelf eval` scores them.

pub mod across;
pub mod history;
pub mod swebench;
