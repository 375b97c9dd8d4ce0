//! Everything the web pages call in the server, in one place: the same
//! gate, operations and repository listing as `/v1/*` and MCP
//! (`crate::ops`), so a page answers exactly what the API would. Each
//! function is a thin pass-through.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderMap;
use serde_json::{Map, Value};
use shelf_formats::tag::TagMove;
use shelf_search::Answer;
use shelf_search::files::{DefinitionsAnswer, FileAnswer, GrepAnswer};

pub use crate::error::{ApiError, Body, Code};
pub use crate::guard::Scope;
use crate::ops::{self, Api, Args, params};

/// The gate of every page: the client's rate, then the token in
/// `headers` (`Authorization: Bearer`); the scope it may see.
pub fn gate(api: &Api, headers: &HeaderMap, client: SocketAddr) -> Result<Scope, ApiError> {
    api.enter(headers, client.ip(), "the web pages")
}

/// Whether search tokens are required (then the pages offer sign-in).
pub fn tokens_required(api: &Api) -> bool {
    !api.search_tokens.is_empty()
}

/// How long a request body may take to arrive.
pub fn body_timeout(api: &Api) -> Duration {
    api.limits.body_timeout
}

/// `GET /v1/search?<query>`: the same parameters, checked the same way;
/// `write` turns the answer into the page in the search's own task.
pub async fn search(
    api: &Api,
    scope: &Scope,
    query: &str,
    write: impl FnOnce(Answer) -> String + Send + 'static,
) -> Result<String, ApiError> {
    let args = params::from_query(Some(query), params::SEARCH, &api.request_limits())?;
    ops::search_then(api, scope, &args, write).await
}

/// JSON arguments checked against an operation's parameter table.
fn checked(
    api: &Api,
    args: &Map<String, Value>,
    table: &[params::Param],
) -> Result<Args, ApiError> {
    params::check(args.clone(), table, &api.request_limits())
}

/// `read_file` / `GET /v1/file` with JSON arguments.
pub async fn read_file(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<FileAnswer, ApiError> {
    ops::read_file(api, scope, &checked(api, args, params::FILE)?).await
}

/// `grep` / `GET /v1/grep` with JSON arguments.
pub async fn grep(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<GrepAnswer, ApiError> {
    ops::grep(api, scope, &checked(api, args, params::GREP)?).await
}

/// `find_definitions` / `GET /v1/definitions` with JSON arguments.
pub async fn definitions(
    api: &Api,
    scope: &Scope,
    args: &Map<String, Value>,
) -> Result<DefinitionsAnswer, ApiError> {
    ops::definitions(api, scope, &checked(api, args, params::DEFINITIONS)?).await
}

/// The names of the repositories `scope` may see, as `GET /v1/repos`
/// orders them (the search form's filter needs nothing else).
pub fn repo_names(api: &Api, scope: &Scope) -> Vec<String> {
    api.repos
        .visible(scope)
        .iter()
        .map(|r| r.name().to_string())
        .collect()
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
    let listed = ops::repos::repositories(api, scope, &Args::default());
    let visible = api.repos.visible(scope);
    listed
        .repos
        .iter()
        .map(|info| {
            let listed = serde_json::to_value(info).unwrap_or(Value::Null);
            let repo = visible.iter().find(|r| r.name() == info.name);
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
