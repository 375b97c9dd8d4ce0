//! `shelf mcp`: the Model Context Protocol on stdin and stdout, for an AI
//! assistant that starts shelf as a subprocess (docs/clients.md). Either
//! the server runs here (`--bundle`, `--store --follow`, `--store-root`,
//! `--config`: the same settings and answers as `shelf serve`, with stdio
//! in place of HTTP), or every message is relayed to a shelf server's
//! `/mcp` (`--server`, the token from `$SHELF_TOKEN`). stdout carries
//! only protocol messages; logs go to stderr.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};
use shelf_server::mcp::protocol;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::cli::McpArgs;

/// Serves MCP on stdio until stdin closes or a stop signal.
pub fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    if let Some(server) = &args.server {
        return relay(server, args.token.as_deref());
    }
    // The settings over stdio, with a cache apart from `shelf serve`'s
    // (Surface::default_cache_dir).
    super::serve::run_front(
        args.config.as_deref(),
        args.settings.0,
        args.runtime.as_deref(),
        shelf_server::config::Surface::Stdio,
        shelf_server::Front::Stdio,
    )
}

/// Relays each line of stdin to `server`/mcp and writes its answer as one
/// line. A server that refuses (a missing or wrong token, a limit) or
/// cannot be reached is answered as a JSON-RPC error to that request, so
/// the assistant shows the reason instead of hanging.
fn relay(server: &str, token: Option<&str>) -> anyhow::Result<ExitCode> {
    let base = server.trim_end_matches('/');
    let url: http::Uri = format!("{base}/mcp")
        .parse()
        .with_context(|| format!("--server '{server}' is not a URL like http://127.0.0.1:7700"))?;
    let rt = super::runtime()?;
    let client = crate::client::JsonClient::for_url(&url)?;
    rt.block_on(async {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        let mut stdout = tokio::io::stdout();
        while let Some(line) = lines.next_line().await.context("reading stdin")? {
            if line.trim().is_empty() {
                continue;
            }
            let parsed = serde_json::from_str::<Value>(&line).ok();
            let id = parsed.as_ref().and_then(|m| m.get("id").cloned());
            let headers = parsed.as_ref().map(routing_headers).unwrap_or_default();
            let reply = relay_one(&client, &url, token, line.into_bytes(), id, &headers).await;
            if let Some(reply) = reply {
                let mut out = serde_json::to_vec(&reply)?;
                out.push(b'\n');
                stdout.write_all(&out).await.context("writing stdout")?;
                stdout.flush().await.context("writing stdout")?;
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// The HTTP routing headers of a 2026-07-28 message (its version, method
/// and tool name or resource URI, which that revision's HTTP transport
/// repeats in headers); none for a legacy one.
fn routing_headers(message: &Value) -> Vec<(&'static str, String)> {
    let Some(version) = message["params"]["_meta"][protocol::VERSION_META].as_str() else {
        return Vec::new();
    };
    let mut headers = vec![("MCP-Protocol-Version", version.to_string())];
    if let Some(method) = message["method"].as_str() {
        headers.push(("Mcp-Method", method.to_string()));
        if let Some(name) = protocol::mcp_name(method, &message["params"]) {
            headers.push(("Mcp-Name", name.to_string()));
        }
    }
    headers
}

/// One message to the server: its answer, nothing for a notification, or
/// an error naming what went wrong when the message had an id.
async fn relay_one(
    client: &crate::client::JsonClient,
    url: &http::Uri,
    token: Option<&str>,
    body: Vec<u8>,
    id: Option<Value>,
    headers: &[(&str, String)],
) -> Option<Value> {
    let error = |message: String| {
        tracing::warn!("{message}");
        id.clone().map(
            |id| json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32603, "message": message}}),
        )
    };
    let (status, bytes) = match client.post_json_with(url, token, body, headers).await {
        Ok(answer) => answer,
        Err(e) => return error(format!("{e:#}")),
    };
    if status == http::StatusCode::ACCEPTED {
        return None;
    }
    let value = serde_json::from_slice::<Value>(&bytes).ok();
    match value {
        // A JSON-RPC answer (including the server's own protocol errors).
        Some(v) if v.get("jsonrpc").is_some() || v.is_array() => Some(v),
        Some(v) => {
            let message = v["error"]["message"].as_str().unwrap_or("no message");
            let hint = if status == http::StatusCode::UNAUTHORIZED {
                "; set SHELF_TOKEN to a search token of that server"
            } else {
                ""
            };
            error(format!(
                "{url} refused the message ({status}): {message}{hint}"
            ))
        }
        None => error(format!(
            "{url} answered {status} with something that is not JSON: {}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
        )),
    }
}
