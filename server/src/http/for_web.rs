//! Everything the web pages (`crate::web`) call in the API, in one place:
//! the same gate, operations and repository listing as `/v1/*` and MCP,
//! so a page answers exactly what the API would. Each function is a thin
//! pass-through; when the operations move, only this file follows them.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderMap;
use serde_json::{Map, Value};
use shelf_formats::tag::TagMove;
use shelf_search::Answer;
use shelf_search::files::{DefinitionsAnswer, FileAnswer, GrepAnswer};

pub use super::error::{ApiError, Body, Code};
pub use super::guard::Scope;
use super::{Api, ops, params, routes};

/// The gate of every page: the client's rate, then the token in
/// `headers` (`Authorization: Bearer`); the scope it may see.
pub fn gate(api: &Api, headers: &HeaderMap, client: SocketAddr) -> Result<Scope, ApiError> {
    api.enter(headers, client, "the web pages")
}

/// Whether search tokens are required (then the pages offer sign-in).
pub fn tokens_required(api: &Api) -> bool {
    !api.search_tokens.is_empty()
}

/// How long a request body may take to arrive.
pub fn body_timeout(api: &Api) -> Duration {
    api.limits.body_timeout
}

/// `GET /v1/search?<query>`: the same parameters, checked the same way.
pub async fn search(api: &Api, scope: &Scope, query: &str) -> Result<Answer, ApiError> {
    let asked = params::from_query_string(Some(query), &api.request_limits())?;
    ops::search(api, scope, asked).await
}

/// `read_file` / `GET /v1/file` with JSON arguments.
pub async fn read_file(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<FileAnswer, ApiError> {
    ops::read_file(api, scope, args).await
}

/// `grep` / `GET /v1/grep` with JSON arguments.
pub async fn grep(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<GrepAnswer, ApiError> {
    ops::grep(api, scope, args).await
}

/// `find_definitions` / `GET /v1/definitions` with JSON arguments.
pub async fn definitions(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<DefinitionsAnswer, ApiError> {
    ops::definitions(api, scope, args).await
}

/// One repository as the repositories page shows it.
#[derive(Debug)]
pub struct RepoFacts {
    /// Its entry of `GET /v1/repos` (docs/api.md).
    pub listed: Value,
    /// The live bundle's unpacked size in bytes (its members' sizes).
    pub bytes: Option<u64>,
    /// The followed tag's latest moves, oldest first.
    pub history: Vec<TagMove>,
}

/// Every repository `scope` may see, as `GET /v1/repos` lists them, with
/// the bundle size and tag history beside each.
pub fn repos(api: &Api, scope: &Scope) -> Vec<RepoFacts> {
    let listed = routes::repo_list(api, scope);
    let entries = listed["repos"].as_array().cloned().unwrap_or_default();
    let visible = api.repos.visible(scope);
    entries
        .into_iter()
        .map(|listed| {
            let repo = visible
                .iter()
                .find(|r| listed["name"].as_str() == Some(r.name()));
            let bytes = repo.and_then(|r| r.state.live()).map(|s| {
                s.bundle
                    .manifest
                    .members
                    .iter()
                    .map(|m| m.size)
                    .sum::<u64>()
            });
            let history = repo
                .map(|r| r.state.status().history.clone())
                .unwrap_or_default();
            RepoFacts {
                listed,
                bytes,
                history,
            }
        })
        .collect()
}
