//! The protocol, transport-free: one JSON-RPC message in, its answer out
//! ([`handle`]), in either era of MCP:
//!
//! - **legacy** (2024-11-05 to 2025-11-25): an `initialize` handshake, then
//!   `tools/list` and `tools/call`, and the files as resources
//!   (`resources/list`, `resources/templates/list`, `resources/read`);
//! - **2026-07-28**: no handshake and no session; every request carries
//!   its version and the client's capabilities in `params._meta`,
//!   `server/discover` says what the server speaks, results carry
//!   `resultType` (and `ttlMs`/`cacheScope` where cacheable) and the
//!   server's identity in `_meta`; an unknown version is -32022 with
//!   `data.supported`.
//!
//! Each request names its era itself (its `_meta`, or on HTTP its
//! `MCP-Protocol-Version` header), so nothing is kept between messages
//! and any server of a fleet can answer any message.
//!
//! Tool failures (bad arguments, an unknown repository, a path outside
//! the bundle) are tool results with `isError: true` and a message an
//! assistant can act on; only malformed JSON-RPC, unknown methods or
//! tools and envelope errors are protocol errors.

use serde_json::{Map, Value, json};

use super::resources;
use super::tools::{self, TOOLS};
use crate::guard::Scope;
use crate::ops::Api;

/// Handshake revisions (`initialize`), newest first.
pub const LEGACY_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Per-request-envelope revisions (no `initialize`), newest first.
pub const MODERN_VERSIONS: &[&str] = &["2026-07-28"];

/// Every revision spoken, newest first.
pub fn supported_versions() -> Vec<&'static str> {
    MODERN_VERSIONS
        .iter()
        .chain(LEGACY_VERSIONS)
        .copied()
        .collect()
}

/// Whether `version` is one this server speaks.
pub fn is_supported(version: &str) -> bool {
    MODERN_VERSIONS.contains(&version) || LEGACY_VERSIONS.contains(&version)
}

/// JSON-RPC: not JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: no such method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: wrong params (an unknown tool, a bad envelope).
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: a bug.
pub const INTERNAL_ERROR: i64 = -32603;
/// 2026-07-28: an HTTP routing header disagrees with the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// 2026-07-28: the protocol version is not spoken (`data.supported`).
pub const UNSUPPORTED_VERSION: i64 = -32022;

/// `_meta` key of a request's protocol version (2026-07-28).
pub const VERSION_META: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of a request's client capabilities (2026-07-28).
pub const CAPABILITIES_META: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of a result's server identity (2026-07-28).
pub const SERVER_INFO_META: &str = "io.modelcontextprotocol/serverInfo";

/// How long a 2026-07-28 client may reuse `tools/list` and
/// `server/discover`: they change only when the server restarts with other
/// limits.
pub const LIST_TTL_MS: u64 = 300_000;

/// What the server tells a client about itself.
const INSTRUCTIONS: &str = "shelf answers from released, content-addressed indexes of the team's repositories. \
Start with search_code (meaning and words); open what it finds with read_file (the exact text at the indexed commit); \
use grep for exact strings or regular expressions, find_definitions and find_references for a symbol, \
list_files and outline to see a repository's layout and a file's definitions, find_related for code like a given range, \
and changes for what differs between two released versions; \
list_repositories says what is served, at which commit, and how old it is.";

/// The HTTP routing headers of one message (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name`); stdio has none.
#[derive(Debug, Clone, Default)]
pub struct Routing {
    /// `MCP-Protocol-Version`.
    pub version: Option<String>,
    /// `Mcp-Method`.
    pub method: Option<String>,
    /// `Mcp-Name`.
    pub name: Option<String>,
}

/// A JSON-RPC error answer.
pub fn rpc_error(id: &Value, code: i64, message: impl Into<String>) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message.into()}})
}

/// -32022 for `requested`, naming every version spoken.
pub fn unsupported_version(id: &Value, requested: &str) -> Value {
    let shown: String = requested.chars().take(32).collect();
    json!({"jsonrpc": "2.0", "id": id, "error": {
        "code": UNSUPPORTED_VERSION,
        "message": format!(
            "protocol version '{shown}' is not spoken here; supported: {}",
            supported_versions().join(", ")
        ),
        "data": {"supported": supported_versions(), "requested": shown},
    }})
}

fn rpc_result(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

/// A resource request's result, or its error with `data`.
fn resource_answer(id: &Value, answer: Result<Value, resources::Refused>) -> Value {
    match answer {
        Ok(result) => rpc_result(id, result),
        Err((code, message, data)) => {
            let mut e = rpc_error(id, code, message);
            if !data.is_null() {
                e["error"]["data"] = data;
            }
            e
        }
    }
}

/// The HTTP status a 2026-07-28 error answer is sent with.
pub fn modern_status(reply: &Value) -> u16 {
    match reply["error"]["code"].as_i64() {
        Some(
            PARSE_ERROR | INVALID_REQUEST | INVALID_PARAMS | HEADER_MISMATCH | UNSUPPORTED_VERSION,
        ) => 400,
        Some(METHOD_NOT_FOUND) => 404,
        _ => 200,
    }
}

/// Most messages in one batch (legacy): each can be a search, and a batch
/// passes the rate limit and admission as one request.
pub const MAX_BATCH: usize = 32;

/// Answers a parsed body or line: one message or a batch (answers for its
/// requests only, `None` when there are none). With `wait_for_live`, a
/// tool call first waits for a live repository ([`wait_until_live`]).
pub async fn answer(
    api: &Api,
    scope: &Scope,
    parsed: Value,
    wait_for_live: bool,
    routing: Option<&Routing>,
) -> Option<Value> {
    let one = |m: Value| async move {
        let method = m.get("method").and_then(Value::as_str);
        if wait_for_live
            && matches!(
                method,
                Some("tools/call" | "resources/read" | "resources/list")
            )
        {
            wait_until_live(api).await;
        }
        handle(api, scope, m, routing).await
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

/// Whether a message is of the 2026-07-28 era: its `_meta` names a
/// protocol version, or it is `server/discover`.
pub fn is_modern(message: &Value) -> bool {
    message["method"].as_str() == Some("server/discover")
        || message["params"]["_meta"].get(VERSION_META).is_some()
}

/// Answers one JSON-RPC message as `scope` may see: `Some` reply for a
/// request, `None` for a notification or a response. `routing` carries
/// the HTTP headers a 2026-07-28 request is checked against.
pub async fn handle(
    api: &Api,
    scope: &Scope,
    message: Value,
    routing: Option<&Routing>,
) -> Option<Value> {
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
    let header_modern = routing
        .and_then(|r| r.version.as_deref())
        .is_some_and(|v| MODERN_VERSIONS.contains(&v));
    if header_modern || is_modern(&Value::Object(msg.clone())) {
        return Some(Box::pin(modern(api, scope, &id, method, &params, routing)).await);
    }
    Some(match method {
        "initialize" => rpc_result(&id, initialize(&params)),
        "ping" => rpc_result(&id, json!({})),
        "tools/list" => rpc_result(&id, json!({ "tools": tool_list(api) })),
        "tools/call" => match call(api, scope, &params).await {
            Ok(result) => rpc_result(&id, result),
            Err((code, message)) => rpc_error(&id, code, message),
        },
        "resources/list" => resource_answer(&id, resources::list(api, scope, &params).await),
        "resources/templates/list" => rpc_result(&id, resources::templates()),
        "resources/read" => resource_answer(&id, resources::read(api, scope, &params).await),
        other => rpc_error(
            &id,
            METHOD_NOT_FOUND,
            format!(
                "method '{}' is not served; this server offers tools (tools/list, tools/call) and resources (resources/list, resources/templates/list, resources/read)",
                other.chars().take(64).collect::<String>()
            ),
        ),
    })
}

fn server_info() -> Value {
    json!({
        "name": "shelf",
        "title": "shelf code search",
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn initialize(params: &Value) -> Value {
    let asked = params["protocolVersion"].as_str().unwrap_or("");
    let version = if LEGACY_VERSIONS.contains(&asked) {
        asked
    } else {
        LEGACY_VERSIONS[0]
    };
    json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(),
        "instructions": INSTRUCTIONS,
    })
}

/// What this server offers, in either era: tools, and files as resources
/// (no subscriptions: a URI names an immutable text).
fn capabilities() -> Value {
    json!({
        "tools": { "listChanged": false },
        "resources": { "listChanged": false, "subscribe": false },
    })
}

/// The envelope of a 2026-07-28 request checked, in the revision's order:
/// `_meta` carries the version and the client's capabilities; on HTTP the
/// routing headers agree with the body; the version is one spoken here.
fn envelope(
    id: &Value,
    method: &str,
    params: &Value,
    routing: Option<&Routing>,
) -> Result<(), Value> {
    let Some(meta) = params.get("_meta").and_then(Value::as_object) else {
        return Err(rpc_error(
            id,
            INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying '{VERSION_META}' and '{CAPABILITIES_META}' (protocol 2026-07-28)"
            ),
        ));
    };
    let missing: Vec<&str> = [VERSION_META, CAPABILITIES_META]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(rpc_error(
            id,
            INVALID_PARAMS,
            format!(
                "params._meta is missing the required key(s): {}",
                missing.join(", ")
            ),
        ));
    }
    let version = &meta[VERSION_META];
    if let Some(r) = routing {
        let mismatch = |what: &str| {
            Err(rpc_error(
                id,
                HEADER_MISMATCH,
                format!("the {what} header does not match the request body"),
            ))
        };
        if r.version.as_deref() != version.as_str() {
            return mismatch("MCP-Protocol-Version");
        }
        if r.method.as_deref() != Some(method) {
            return mismatch("Mcp-Method");
        }
        if let Some(name) = mcp_name(method, params) {
            match r.name.as_deref().map(header_value) {
                Some(Ok(sent)) if sent == name => {}
                Some(Err(why)) => {
                    return Err(rpc_error(
                        id,
                        HEADER_MISMATCH,
                        format!("the Mcp-Name header {why}"),
                    ));
                }
                _ => return mismatch("Mcp-Name"),
            }
        }
    }
    let Some(version) = version.as_str() else {
        return Err(rpc_error(
            id,
            INVALID_PARAMS,
            format!("params._meta['{VERSION_META}'] must be a string"),
        ));
    };
    if !MODERN_VERSIONS.contains(&version) {
        return Err(unsupported_version(id, version));
    }
    Ok(())
}

/// What a 2026-07-28 client wraps a header value in when the value cannot
/// travel as plain ASCII (characters outside printable ASCII, spaces at
/// either end, a value that looks like the wrapping): `=?base64?…?=`
/// around the base64 of its UTF-8.
const BASE64_OPEN: &str = "=?base64?";
const BASE64_CLOSE: &str = "?=";

/// A header value as the client meant it: plain, or decoded from its
/// base64 wrapping.
fn header_value(raw: &str) -> Result<String, String> {
    use base64::Engine as _;
    let Some(inner) = raw
        .strip_prefix(BASE64_OPEN)
        .and_then(|r| r.strip_suffix(BASE64_CLOSE))
    else {
        return Ok(raw.to_string());
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .map_err(|e| {
            format!("is wrapped as base64 ({BASE64_OPEN}…{BASE64_CLOSE}) but does not decode: {e}")
        })?;
    String::from_utf8(bytes)
        .map_err(|_| "decodes from base64 to bytes that are not UTF-8".to_string())
}

/// The body field a 2026-07-28 request's `Mcp-Name` header mirrors (the
/// tool's name, the resource's URI), for the methods that have one.
pub fn mcp_name<'p>(method: &str, params: &'p Value) -> Option<&'p str> {
    match method {
        "tools/call" => params["name"].as_str(),
        "resources/read" => params["uri"].as_str(),
        _ => None,
    }
}

/// A 2026-07-28 result: `resultType`, and who answered in `_meta`.
fn modern_result(id: &Value, mut result: Value) -> Value {
    result["resultType"] = json!("complete");
    result["_meta"] = json!({ SERVER_INFO_META: server_info() });
    rpc_result(id, result)
}

/// How long a 2026-07-28 client may reuse a file read by URI: the text at
/// a commit never changes (the revision's longest).
pub const FILE_TTL_MS: u64 = 86_400_000;

/// A 2026-07-28 resource result, cacheable by this client alone for `ttl_ms`.
fn modern_cacheable(id: &Value, answer: Result<Value, resources::Refused>, ttl_ms: u64) -> Value {
    match answer {
        Ok(mut result) => {
            result["ttlMs"] = json!(ttl_ms);
            result["cacheScope"] = json!("private");
            modern_result(id, result)
        }
        Err(e) => resource_answer(id, Err(e)),
    }
}

/// Answers a 2026-07-28 request.
async fn modern(
    api: &Api,
    scope: &Scope,
    id: &Value,
    method: &str,
    params: &Value,
    routing: Option<&Routing>,
) -> Value {
    if let Err(refused) = envelope(id, method, params, routing) {
        return refused;
    }
    match method {
        "server/discover" => modern_result(
            id,
            json!({
                "supportedVersions": supported_versions(),
                "capabilities": capabilities(),
                "serverInfo": server_info(),
                "instructions": INSTRUCTIONS,
                "ttlMs": LIST_TTL_MS,
                "cacheScope": "public",
            }),
        ),
        "tools/list" => modern_result(
            id,
            json!({
                "tools": tool_list(api),
                "ttlMs": LIST_TTL_MS,
                "cacheScope": "public",
            }),
        ),
        "tools/call" => match call(api, scope, params).await {
            Ok(result) => modern_result(id, result),
            Err((code, message)) => rpc_error(id, code, message),
        },
        // What a token may see decides the lists and texts: never shared
        // between users (the template is everyone's). A list changes when
        // a bundle goes live; a file at a commit never does.
        "resources/list" => modern_cacheable(id, resources::list(api, scope, params).await, 0),
        "resources/templates/list" => modern_cacheable(id, Ok(resources::templates()), LIST_TTL_MS),
        "resources/read" => {
            modern_cacheable(id, resources::read(api, scope, params).await, FILE_TTL_MS)
        }
        other => rpc_error(
            id,
            METHOD_NOT_FOUND,
            format!(
                "method '{}' is not served at protocol 2026-07-28; this server answers server/discover, tools/list, tools/call, resources/list, resources/templates/list and resources/read",
                other.chars().take(64).collect::<String>()
            ),
        ),
    }
}

fn tool_list(api: &Api) -> Vec<Value> {
    let limits = api.request_limits();
    TOOLS.iter().map(|t| tools::describe(t, &limits)).collect()
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
    let Some(tool) = tools::find(name) else {
        return Err((
            INVALID_PARAMS,
            format!(
                "unknown tool '{}'; tools: {}",
                name.chars().take(64).collect::<String>(),
                TOOLS.iter().map(|t| t.name).collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    // Boxed: the tools' futures together are too deep to lay out inline.
    Ok(
        match Box::pin(tools::call(api, scope, tool, arguments)).await {
            Ok((text, structured)) => json!({
                "content": [{"type": "text", "text": text}],
                "structuredContent": structured,
                "isError": false,
            }),
            Err(e) => json!({
                "content": [{"type": "text", "text": format!("{} ({}): {}", name, e.code, e.message)}],
                "isError": true,
            }),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_value_wrapped_in_base64_is_decoded_and_a_plain_one_kept() {
        assert_eq!(header_value("search_code").unwrap(), "search_code");
        // "shelf://r/c/naïve.rs" as UTF-8, then base64.
        let wrapped = "=?base64?c2hlbGY6Ly9yL2MvbmHDr3ZlLnJz?=";
        assert_eq!(header_value(wrapped).unwrap(), "shelf://r/c/naïve.rs");
        assert_eq!(header_value("=?base64??=").unwrap(), "");
        let bad = header_value("=?base64?@@@?=").unwrap_err();
        assert!(bad.contains("does not decode"), "{bad}");
        // 0xff 0xfe: valid base64, not UTF-8.
        let bad = header_value("=?base64?//4=?=").unwrap_err();
        assert!(bad.contains("not UTF-8"), "{bad}");
    }
}
