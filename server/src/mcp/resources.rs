//! MCP resources: every indexed file of a live bundle, at its commit, by
//! URI (docs/clients.md, "Resources"):
//!
//! `shelf://REPO/COMMIT/PATH`: the repository as served, the full commit
//! the live bundle was built from, and the repository-relative path, each
//! byte outside `A-Z a-z 0-9 - . _ ~` (and `/` between path segments)
//! percent-encoded. A URI names one immutable text: once that commit is no
//! longer live, reading it is refused naming the live one.
//!
//! `resources/list` pages through the files of every visible repository
//! ([`PAGE`] a page, the first [`MOST_LISTED`] in all; `list_files` finds
//! the rest); `resources/read` answers what `read_file` would, bounded the
//! same way.

use serde_json::{Map, Value, json};
use shelf_search::budget::MAX_MAX_TOKENS;

use crate::error::ApiError;
use crate::guard::Scope;
use crate::ops::{self, Api, params};

/// The scheme of a file's URI.
pub const SCHEME: &str = "shelf://";
/// Files in one `resources/list` page.
pub const PAGE: usize = 200;
/// Files listed in all (the largest `list_files` limit).
pub const MOST_LISTED: usize = 5_000;
/// The URI template clients fill in (`resources/templates/list`).
pub const TEMPLATE: &str = "shelf://{repo}/{commit}/{+path}";

/// A failed resource request: a JSON-RPC error code, its message, and
/// its `data`.
pub type Refused = (i64, String, Value);

fn encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            b'/' if keep_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The URI of `path` in `repo` at `commit`.
pub fn uri(repo: &str, commit: &str, path: &str) -> String {
    format!(
        "{SCHEME}{}/{}/{}",
        encode(repo, false),
        encode(commit, false),
        encode(path, true)
    )
}

/// `(repo, commit, path)` of a URI this server made, or why it is not one.
pub fn parse(uri: &str) -> Result<(String, String, String), String> {
    let bad = |why: &str| {
        format!(
            "'{}' is not a shelf file URI: {why}; URIs look like {TEMPLATE} (see resources/list)",
            uri.chars().take(200).collect::<String>()
        )
    };
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| bad("it does not start with shelf://"))?;
    let mut parts = rest.splitn(3, '/');
    let (Some(repo), Some(commit), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad("it needs a repository, a commit and a path"));
    };
    let decoded = |s: &str| decode(s).ok_or_else(|| bad("a bad percent-encoding"));
    let (repo, commit, path) = (decoded(repo)?, decoded(commit)?, decoded(path)?);
    if repo.is_empty() || path.is_empty() {
        return Err(bad("the repository or the path is empty"));
    }
    if commit.len() != 40 || !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad("the commit is not a full 40-digit hex id"));
    }
    Ok((repo, commit.to_ascii_lowercase(), path))
}

/// Arguments for an operation, as a client would send them.
fn args(pairs: Value, table: &[params::Param], api: &Api) -> Result<ops::Args, ApiError> {
    let Value::Object(map) = pairs else {
        return Ok(ops::Args::default());
    };
    params::check(map, table, &api.request_limits())
}

/// Not found (or not a URI of ours): -32602 with `data.uri`, as the
/// 2026-07-28 revision says (earlier clients read it the same way); a
/// server-side failure is -32603.
fn refused(uri: &str, e: ApiError) -> Refused {
    if e.status.is_server_error() {
        (super::protocol::INTERNAL_ERROR, e.message, Value::Null)
    } else {
        (
            super::protocol::INVALID_PARAMS,
            e.message,
            json!({ "uri": uri }),
        )
    }
}

/// A `resources/list` page: the files of every visible live repository,
/// by repository and path, from the offset `cursor` names.
pub async fn list(api: &Api, scope: &Scope, params: &Value) -> Result<Value, Refused> {
    let offset = match &params["cursor"] {
        Value::Null => 0,
        Value::String(c) => c.parse::<usize>().map_err(|_| {
            let shown: String = c.chars().take(64).collect();
            (
                super::protocol::INVALID_PARAMS,
                format!("cursor '{shown}' is not one this server gave"),
                Value::Null,
            )
        })?,
        _ => {
            return Err((
                super::protocol::INVALID_PARAMS,
                "cursor must be a string".into(),
                Value::Null,
            ));
        }
    };
    let everything = json!({"path": "**", "limit": MOST_LISTED, "max_tokens": MAX_MAX_TOKENS});
    let listed = async {
        let a = args(everything, params::LIST_FILES, api)?;
        ops::list_files(api, scope, &a).await
    }
    .await
    .map_err(|e| refused("", e))?;
    let commits: Map<String, Value> = listed
        .repos
        .iter()
        .map(|b| (b.repo.clone(), json!(b.commit)))
        .collect();
    let files: Vec<_> = listed.entries.iter().filter(|e| e.kind == "file").collect();
    let resources: Vec<Value> = files
        .iter()
        .skip(offset)
        .take(PAGE)
        .filter_map(|e| {
            let commit = commits.get(&e.repo)?.as_str()?;
            Some(json!({
                "uri": uri(&e.repo, commit, &e.path),
                "name": e.path,
                "title": format!("{}:{} @ {}", e.repo, e.path, commit.get(..12).unwrap_or(commit)),
                "mimeType": "text/plain",
                "size": e.size,
            }))
        })
        .collect();
    let mut page = json!({ "resources": resources });
    if offset + PAGE < files.len() {
        page["nextCursor"] = json!((offset + PAGE).to_string());
    }
    Ok(page)
}

/// The one template: a file at a commit.
pub fn templates() -> Value {
    json!({"resourceTemplates": [{
        "uriTemplate": TEMPLATE,
        "name": "file",
        "title": "A file at an indexed commit",
        "description": "The exact text of a repository's file at the commit its live bundle was built from (list_repositories names the commit).",
        "mimeType": "text/plain",
    }]})
}

/// A `resources/read`: the file's text at the commit its URI names, as
/// `read_file` answers it (bounded the same way; what a long file left out
/// is said in the content's `_meta`).
pub async fn read(api: &Api, scope: &Scope, params: &Value) -> Result<Value, Refused> {
    let Some(uri) = params["uri"].as_str() else {
        return Err((
            super::protocol::INVALID_PARAMS,
            "resources/read needs params.uri".into(),
            Value::Null,
        ));
    };
    let (repo, commit, path) =
        parse(uri).map_err(|m| (super::protocol::INVALID_PARAMS, m, json!({ "uri": uri })))?;
    let answer = async {
        let a = args(json!({"repo": repo, "path": path}), params::FILE, api)?;
        ops::read_file(api, scope, &a).await
    }
    .await
    .map_err(|e| refused(uri, e))?;
    if answer.path != path {
        return Err((
            super::protocol::INVALID_PARAMS,
            format!("'{path}' is not a file of '{repo}'"),
            json!({ "uri": uri }),
        ));
    }
    if answer.bundle.commit != commit {
        return Err((
            super::protocol::INVALID_PARAMS,
            format!(
                "'{repo}' is served at commit {} now, not {commit}; list the resources again (resources/list) for the live URIs",
                answer.bundle.commit
            ),
            json!({ "uri": uri }),
        ));
    }
    let mut content = json!({"uri": uri, "mimeType": "text/plain", "text": answer.text});
    if let Some(t) = &answer.truncated {
        content["_meta"] = json!({ "shelf/truncated": t.detail });
    }
    Ok(json!({ "contents": [content] }))
}
