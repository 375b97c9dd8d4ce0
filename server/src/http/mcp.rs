//! The Model Context Protocol (docs/clients.md): JSON-RPC 2.0 with the
//! initialize handshake (revisions 2024-11-05 to 2025-11-25) and five
//! read-only tools over [`ops`]: `search_code`, `read_file`, `grep`,
//! `find_definitions`, `list_repositories`. Transport-free here
//! ([`handle`] takes one message and returns its answer); `POST /mcp`
//! ([`post`], streamable HTTP answering with JSON) and `shelf mcp` (stdio)
//! carry it. Stateless: no session id, nothing kept between messages, so
//! any server of a fleet can answer any message.
//!
//! Tool failures (bad arguments, an unknown repository, a path outside the
//! bundle) are tool results with `isError: true` and a message an
//! assistant can act on; only malformed JSON-RPC and unknown methods or
//! tools are protocol errors.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Map, Value, json};
use shelf_search::files::{FileAnswer, GrepAnswer};
use shelf_search::{Answer, BundleRef};

use super::error::{ApiError, Body, Code, json_response};
use super::guard::Scope;
use super::{Api, Outcome, args, ops, params, routes};

/// Protocol revisions this server speaks, newest first.
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

pub(super) const PARSE_ERROR: i64 = -32700;
const INVALID_REQUEST: i64 = -32600;
const METHOD_NOT_FOUND: i64 = -32601;
const INVALID_PARAMS: i64 = -32602;
pub(super) const INTERNAL_ERROR: i64 = -32603;

/// What the server tells a client about itself at initialize.
const INSTRUCTIONS: &str = "shelf answers from released, content-addressed indexes of the team's repositories. \
Start with search_code (meaning and words); open what it finds with read_file (the exact text at the indexed commit); \
use grep for exact strings or regular expressions and find_definitions for where a symbol is defined; \
list_repositories says what is served, at which commit, and how old it is.";

pub(super) fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// Most messages in one batch: each can be a search, and a batch passes
/// the rate limit and admission as one request.
pub const MAX_BATCH: usize = 32;

/// Answers a parsed body or line: one message or a batch (answers for its
/// requests only, `None` when there are none). With `wait_for_live`, a
/// tool call first waits for a live repository ([`wait_until_live`]).
pub(super) async fn answer(
    api: &Api,
    scope: &Scope,
    parsed: Value,
    wait_for_live: bool,
) -> Option<Value> {
    let one = |m: Value| async move {
        if wait_for_live && m.get("method").and_then(Value::as_str) == Some("tools/call") {
            wait_until_live(api).await;
        }
        handle(api, scope, m).await
    };
    match parsed {
        Value::Array(batch) if batch.is_empty() => {
            Some(rpc_error(&Value::Null, INVALID_REQUEST, "an empty batch"))
        }
        Value::Array(batch) if batch.len() > MAX_BATCH => Some(rpc_error(
            &Value::Null,
            INVALID_REQUEST,
            format!(
                "a batch of {} messages; send at most {MAX_BATCH} at once",
                batch.len()
            ),
        )),
        Value::Array(batch) => {
            let mut replies = Vec::new();
            for m in batch {
                if let Some(r) = one(m).await {
                    replies.push(r);
                }
            }
            (!replies.is_empty()).then_some(Value::Array(replies))
        }
        m => one(m).await,
    }
}

/// How long a tool call waits for the first live repository when asked to.
pub const READY_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Returns once some repository is live, or after [`READY_WAIT`]: an
/// assistant starts `shelf mcp` and calls a tool at once, before the
/// bundle has loaded.
async fn wait_until_live(api: &Api) {
    let started = std::time::Instant::now();
    let mut logged = false;
    while api.repos.readiness(&Scope::All, true).live == 0 && started.elapsed() < READY_WAIT {
        if !logged {
            tracing::info!("a tool call waits for the first repository to load");
            logged = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Answers one JSON-RPC message as `scope` may see: `Some` reply for a
/// request, `None` for a notification or a response.
pub async fn handle(api: &Api, scope: &Scope, message: Value) -> Option<Value> {
    let Value::Object(msg) = message else {
        return Some(rpc_error(
            &Value::Null,
            INVALID_REQUEST,
            "a JSON-RPC message is an object",
        ));
    };
    let id = msg.get("id").cloned();
    let Some(method) = msg.get("method").and_then(Value::as_str) else {
        // A response to a request this server never sends, or garbage.
        return match (&id, msg.contains_key("result") || msg.contains_key("error")) {
            (_, true) => None,
            (id, false) => Some(rpc_error(
                id.as_ref().unwrap_or(&Value::Null),
                INVALID_REQUEST,
                "a JSON-RPC request has a method",
            )),
        };
    };
    if msg.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return id.map(|id| rpc_error(&id, INVALID_REQUEST, "jsonrpc must be \"2.0\""));
    }
    let Some(id) = id else {
        // Notifications (initialized, cancelled, ...) need no answer.
        return None;
    };
    // A string or an integer: anything else could not be paired with its
    // answer (a float or an integer over 64 bits would come back changed).
    if !(id.is_string() || id.is_i64() || id.is_u64()) {
        return Some(rpc_error(
            &Value::Null,
            INVALID_REQUEST,
            "a request id is a string or an integer",
        ));
    }
    let params = msg.get("params").cloned().unwrap_or(json!({}));
    Some(match method {
        "initialize" => rpc_result(&id, initialize(&params)),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, json!({ "tools": tool_list() })),
        "tools/call" => match call(api, scope, &params).await {
            Ok(result) => rpc_result(&id, result),
            Err((code, message)) => rpc_error(&id, code, message),
        },
        other => rpc_error(
            &id,
            METHOD_NOT_FOUND,
            format!(
                "method '{}' is not served; this server offers tools (tools/list, tools/call)",
                other.chars().take(64).collect::<String>()
            ),
        ),
    })
}

fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or("");
    let version = if PROTOCOL_VERSIONS.contains(&asked) {
        asked
    } else {
        PROTOCOL_VERSIONS[0]
    };
    json!({
        "protocolVersion": version,
        "capabilities": { "tools": { "listChanged": false } },
        "serverInfo": {
            "name": "shelf",
            "title": "shelf code search",
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": INSTRUCTIONS,
    })
}

/// One tool: its name, what it does, and its parameters.
struct Tool {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    params: &'static [args::Param],
    output: fn() -> Value,
}

const TOOLS: &[Tool] = &[
    Tool {
        name: "search_code",
        title: "Search code",
        description: "Search the served repositories by meaning and by words (hybrid of embeddings and BM25). Returns ranked chunks (repo, path, start_line, end_line, score, text) and the bundle (commit, tag, age) that answered. Default max_tokens 8000.",
        params: args::SEARCH,
        output: search_schema,
    },
    Tool {
        name: "read_file",
        title: "Read a file",
        description: "The exact text of a file at the indexed commit, whole or a line range: open any path search_code, grep or find_definitions names. Default max_tokens 16000; a longer range is cut at a line and says where to continue.",
        params: args::FILE,
        output: file_schema,
    },
    Tool {
        name: "grep",
        title: "Grep",
        description: "Exact or regular-expression search over every indexed file at the indexed commit, line by line (linear-time regex). Returns matching lines with path and line number. Default limit 50, max_tokens 4000.",
        params: args::GREP,
        output: grep_schema,
    },
    Tool {
        name: "find_definitions",
        title: "Find definitions",
        description: "Where a symbol (function, method, class, struct, trait, interface, type, constant) is defined, from the definition lines the indexer recognises. Default max_tokens 4000.",
        params: args::DEFINITIONS,
        output: definitions_schema,
    },
    Tool {
        name: "list_repositories",
        title: "List repositories",
        description: "The repositories this server answers for: name, status, and the live bundle (digest, tag, commit, files, chunks, age).",
        params: &[],
        output: repos_schema,
    },
];

fn tool_list() -> Vec<Value> {
    TOOLS
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "title": t.title,
                "description": t.description,
                "inputSchema": args::schema(t.params),
                "outputSchema": (t.output)(),
                "annotations": { "readOnlyHint": true, "openWorldHint": false, "idempotentHint": true },
            })
        })
        .collect()
}

fn bundle_schema() -> Value {
    json!({"type": "object", "properties": {
        "repo": {"type": "string"}, "digest": {"type": "string"}, "tag": {"type": ["string", "null"]},
        "commit": {"type": "string"}, "commit_time": {"type": "string"}, "commit_age_seconds": {"type": "integer"}
    }, "required": ["repo", "digest", "commit"]})
}

fn truncation_schema() -> Value {
    json!({"type": ["object", "null"], "properties": {
        "max_tokens": {"type": "integer"}, "omitted": {"type": "integer"}, "cut": {"type": "boolean"},
        "detail": {"type": "string"}
    }})
}

fn search_schema() -> Value {
    let chunk = json!({"type": "object", "properties": {
        "repo": {"type": "string"}, "path": {"type": "string"}, "start_line": {"type": "integer"},
        "end_line": {"type": "integer"}, "score": {"type": "number"}, "text": {"type": "string"}
    }, "required": ["repo", "path", "start_line", "end_line", "score", "text"]});
    json!({"type": "object", "properties": {
        "query": {"type": "string"},
        "results": {"type": "array", "items": chunk},
        "files": {"type": "array"},
        "repos": {"type": "array", "items": bundle_schema()},
        "truncated": truncation_schema(),
    }, "required": ["query", "repos"]})
}

fn file_schema() -> Value {
    json!({"type": "object", "properties": {
        "repo": {"type": "string"}, "path": {"type": "string"}, "start_line": {"type": "integer"},
        "end_line": {"type": "integer"}, "total_lines": {"type": "integer"}, "text": {"type": "string"},
        "bundle": bundle_schema(), "truncated": truncation_schema(),
    }, "required": ["repo", "path", "start_line", "end_line", "total_lines", "text", "bundle"]})
}

fn grep_schema() -> Value {
    let m = json!({"type": "object", "properties": {
        "repo": {"type": "string"}, "path": {"type": "string"}, "line": {"type": "integer"}, "text": {"type": "string"}
    }, "required": ["repo", "path", "line", "text"]});
    json!({"type": "object", "properties": {
        "pattern": {"type": "string"}, "matches": {"type": "array", "items": m},
        "total_matches": {"type": "integer"}, "files_scanned": {"type": "integer"},
        "repos": {"type": "array", "items": bundle_schema()}, "truncated": truncation_schema(),
    }, "required": ["pattern", "matches", "total_matches", "repos"]})
}

fn definitions_schema() -> Value {
    let d = json!({"type": "object", "properties": {
        "repo": {"type": "string"}, "path": {"type": "string"}, "line": {"type": "integer"}, "text": {"type": "string"}
    }, "required": ["repo", "path", "line", "text"]});
    json!({"type": "object", "properties": {
        "name": {"type": "string"}, "definitions": {"type": "array", "items": d},
        "repos": {"type": "array", "items": bundle_schema()}, "truncated": truncation_schema(),
    }, "required": ["name", "definitions", "repos"]})
}

fn repos_schema() -> Value {
    json!({"type": "object", "properties": {
        "repos": {"type": "array", "items": {"type": "object", "properties": {
            "name": {"type": "string"}, "status": {"type": "string"}, "live": {"type": ["object", "null"]}
        }, "required": ["name", "status"]}}
    }, "required": ["repos"]})
}

/// A `tools/call`: the tool's result, a failed tool as `isError`, or a
/// protocol error for an unknown tool or malformed params.
async fn call(api: &Api, scope: &Scope, params: &Value) -> Result<Value, (i64, String)> {
    let Some(name) = params["name"].as_str() else {
        return Err((INVALID_PARAMS, "tools/call needs params.name".into()));
    };
    let arguments = match &params["arguments"] {
        Value::Null => Map::new(),
        Value::Object(m) => m.clone(),
        _ => {
            return Err((
                INVALID_PARAMS,
                "tools/call params.arguments must be an object".into(),
            ));
        }
    };
    if !TOOLS.iter().any(|t| t.name == name) {
        return Err((
            INVALID_PARAMS,
            format!(
                "unknown tool '{}'; tools: {}",
                name.chars().take(64).collect::<String>(),
                TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    }
    let answered = match name {
        "search_code" => search_code(api, scope, &arguments).await,
        "read_file" => ops::read_file(api, scope, &arguments)
            .await
            .and_then(|a| rendered(render_file(&a), &a)),
        "grep" => ops::grep(api, scope, &arguments)
            .await
            .and_then(|a| rendered(render_grep(&a), &a)),
        "find_definitions" => ops::definitions(api, scope, &arguments)
            .await
            .and_then(|a| rendered(render_definitions(&a), &a)),
        _ => list_repositories(api, scope, &arguments),
    };
    Ok(match answered {
        Ok((text, structured)) => json!({
            "content": [{"type": "text", "text": text}],
            "structuredContent": structured,
            "isError": false,
        }),
        Err(e) => json!({
            "content": [{"type": "text", "text": format!("{} ({}): {}", name, e.code, e.message)}],
            "isError": true,
        }),
    })
}

fn rendered<T: serde::Serialize>(text: String, answer: &T) -> Result<(String, Value), ApiError> {
    let value = serde_json::to_value(answer)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    Ok((text, value))
}

async fn search_code(
    api: &Api,
    scope: &Scope,
    a: &Map<String, Value>,
) -> Result<(String, Value), ApiError> {
    args::check(a, args::SEARCH)?;
    let mut body = a.clone();
    body.entry("max_tokens")
        .or_insert(json!(args::SEARCH_MAX_TOKENS));
    body.retain(|_, v| !v.is_null());
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let asked = params::from_json(&bytes, &api.request_limits())?;
    let answer = ops::search(api, scope, asked).await?;
    rendered(render_search(&answer), &answer)
}

fn list_repositories(
    api: &Api,
    scope: &Scope,
    a: &Map<String, Value>,
) -> Result<(String, Value), ApiError> {
    args::check(a, &[])?;
    let list = routes::repo_list(api, scope);
    let mut text = String::new();
    for r in list["repos"].as_array().into_iter().flatten() {
        let live = &r["live"];
        let commit = live["commit"].as_str().unwrap_or("");
        text.push_str(&format!(
            "{} [{}]{}\n",
            r["name"].as_str().unwrap_or("?"),
            r["status"].as_str().unwrap_or("?"),
            if live.is_null() {
                format!(
                    ": nothing live ({})",
                    r["reason"].as_str().unwrap_or("not loaded yet")
                )
            } else {
                format!(
                    " {} @ {} (tag {}), built from the commit of {}, {} files, {} chunks",
                    live["digest"].as_str().unwrap_or(""),
                    commit.get(..12).unwrap_or(commit),
                    live["tag"].as_str().unwrap_or("none"),
                    live["built_at"].as_str().unwrap_or("?"),
                    live["files"],
                    live["chunks"]
                )
            }
        ));
    }
    if text.is_empty() {
        text = "no repository is served".into();
    }
    Ok((text, list))
}

/// `repo @ commit (tag t), committed <time> (<n> days ago)`.
fn describe(b: &BundleRef) -> String {
    format!(
        "{} @ {}{}, committed {} ({} ago)",
        b.repo,
        b.commit.get(..12).unwrap_or(&b.commit),
        b.tag
            .as_deref()
            .map(|t| format!(" (tag {t})"))
            .unwrap_or_default(),
        b.commit_time,
        age(b.commit_age_seconds)
    )
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn fence(language: Option<&str>) -> &str {
    language.unwrap_or("")
}

fn render_search(a: &Answer) -> String {
    let mut out = format!(
        "{} for \"{}\" from {}\n",
        match (&a.results, &a.files) {
            (Some(r), _) => format!("{} chunks", r.len()),
            (_, Some(f)) => format!("{} files", f.len()),
            _ => "nothing".into(),
        },
        a.query,
        a.repos.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    let chunks: Vec<_> = match (&a.results, &a.files) {
        (Some(r), _) => r.iter().collect(),
        (_, Some(f)) => f.iter().flat_map(|f| f.chunks.iter()).collect(),
        _ => Vec::new(),
    };
    for c in chunks {
        out.push_str(&format!(
            "\n{}. {}:{}:{}-{} (score {:.3})\n```{}\n{}\n```\n",
            c.rank,
            c.repo,
            c.path,
            c.start_line,
            c.end_line,
            c.score,
            fence(c.language),
            c.text.trim_end_matches('\n')
        ));
    }
    if let Some(t) = &a.truncated {
        out.push_str(&format!("\n[truncated: {}]\n", t.detail));
    }
    out
}

fn render_file(a: &FileAnswer) -> String {
    let mut out = format!(
        "{}:{} lines {}-{} of {}, from {}\n```{}\n{}\n```\n",
        a.repo,
        a.path,
        a.start_line,
        a.end_line,
        a.total_lines,
        describe(&a.bundle),
        fence(a.language),
        a.text.trim_end_matches('\n')
    );
    if let Some(t) = &a.truncated {
        out.push_str(&format!("[truncated: {}]\n", t.detail));
    }
    out
}

fn render_grep(a: &GrepAnswer) -> String {
    let mut out = format!(
        "{} matching lines in {} of {} files for {} '{}' in {}\n",
        a.total_matches,
        a.files_matched,
        a.files_scanned,
        if a.regex { "regex" } else { "literal" },
        a.pattern,
        a.repos.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    for m in &a.matches {
        out.push_str(&format!("{}:{}:{}: {}\n", m.repo, m.path, m.line, m.text));
    }
    if !a.not_scanned.is_empty() {
        out.push_str(&format!(
            "[not scanned, bundles predate file texts: {}]\n",
            a.not_scanned.join(", ")
        ));
    }
    if let Some(t) = &a.truncated {
        out.push_str(&format!("[truncated: {}]\n", t.detail));
    }
    out
}

fn render_definitions(a: &shelf_search::files::DefinitionsAnswer) -> String {
    let mut out = format!(
        "{} definitions of '{}' in {}\n",
        a.definitions.len(),
        a.name,
        a.repos.iter().map(describe).collect::<Vec<_>>().join("; ")
    );
    for d in &a.definitions {
        out.push_str(&format!("{}:{}:{}: {}\n", d.repo, d.path, d.line, d.text));
    }
    if let Some(t) = &a.truncated {
        out.push_str(&format!("[truncated: {}]\n", t.detail));
    }
    out
}

/// Whether an `Origin` header may reach this server. A web page must not
/// drive it: a page on another site, or one that rebinds its own name to
/// this server's address (then its Origin and the Host it sends are the
/// same attacker's name). So a browser origin is accepted when it is a
/// loopback one, or when it is this server's own and a search token is
/// required anyway (a rebinding page has no token). No Origin: not a
/// browser.
fn origin_allowed(headers: &http::HeaderMap, tokens_required: bool) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    if is_loopback(host_of(authority)) {
        return true;
    }
    tokens_required
        && headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

/// The host of `host[:port]`, `[v6]` or `[v6]:port`.
fn host_of(authority: &str) -> &str {
    if authority.starts_with('[') {
        return authority
            .find(']')
            .map_or(authority, |end| &authority[..=end]);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn mcp_response(status: StatusCode, body: &Value) -> Response<Body> {
    json_response(status, serde_json::to_vec(body).unwrap_or_default())
}

/// `POST /mcp`: streamable HTTP, answered with one JSON body (202 with none
/// when every message was a notification or a response). Gated like
/// `/v1/search`: rate limit, then the search token (401 without).
pub(super) async fn post(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<(Response<Body>, Outcome), ApiError> {
    let scope = api.enter(&req, client, "MCP")?;
    if !origin_allowed(req.headers(), !api.search_tokens.is_empty()) {
        return Err(ApiError::new(
            Code::ForbiddenOrigin,
            "requests from this Origin are refused: /mcp answers loopback origins, and its own origin when search tokens are required",
        ));
    }
    if let Some(v) = req.headers().get("mcp-protocol-version") {
        let v = v.to_str().unwrap_or("");
        if !PROTOCOL_VERSIONS.contains(&v) {
            let message = format!(
                "MCP-Protocol-Version '{}' is not spoken here; supported: {}",
                v.chars().take(32).collect::<String>(),
                PROTOCOL_VERSIONS.join(", ")
            );
            let body = rpc_error(&Value::Null, INVALID_REQUEST, message);
            return Ok((
                mcp_response(StatusCode::BAD_REQUEST, &body),
                Outcome::default(),
            ));
        }
    }
    let body = routes::read_json_body(api, req).await?;
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let body = rpc_error(
                &Value::Null,
                PARSE_ERROR,
                format!("the body is not JSON: {e}"),
            );
            return Ok((
                mcp_response(StatusCode::BAD_REQUEST, &body),
                Outcome::default(),
            ));
        }
    };
    let reply = answer(api, &scope, parsed, false).await;
    let response = match reply {
        Some(r) => mcp_response(StatusCode::OK, &r),
        None => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::ACCEPTED;
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            r
        }
    };
    Ok((response, Outcome::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, HeaderValue::from_str(o).unwrap());
        }
        h
    }

    #[test]
    fn a_rebinding_page_is_refused_unless_a_token_is_required() {
        // The page's origin and the Host its browser sends are both the
        // attacker's name, now resolving to 127.0.0.1.
        let rebound = headers(
            Some("http://evil.example.com:7700"),
            "evil.example.com:7700",
        );
        assert!(!origin_allowed(&rebound, false));
        assert!(origin_allowed(&rebound, true));
        let other_site = headers(Some("https://evil.example"), "shelf.internal:7700");
        assert!(!origin_allowed(&other_site, true));
        assert!(!origin_allowed(
            &headers(Some("null"), "127.0.0.1:7700"),
            false
        ));
        assert!(!origin_allowed(
            &headers(Some("http://localhost.evil.example"), "127.0.0.1:7700"),
            false
        ));
    }

    #[test]
    fn loopback_origins_and_non_browsers_are_accepted() {
        for origin in [
            "http://localhost:3000",
            "http://127.0.0.1",
            "http://127.0.0.2:8080",
            "http://[::1]",
            "http://[::1]:7700",
        ] {
            assert!(
                origin_allowed(&headers(Some(origin), "127.0.0.1:7700"), false),
                "{origin}"
            );
        }
        assert!(origin_allowed(&headers(None, "anything:1"), false));
    }
}
