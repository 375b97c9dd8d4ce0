//! MCP over streamable HTTP (`POST /mcp`), answered with one JSON body
//! (202 with none when every message was a notification or a response).
//! Gated like `/v1/search` (rate limit, then the search token) and, since
//! a browser page must not drive it, by `Origin`. A 2026-07-28 request
//! (its `MCP-Protocol-Version` header names that revision, or its
//! `_meta` does) is one request per POST, its routing headers checked
//! against the body, its errors sent with the revision's HTTP statuses.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;

use super::protocol::{
    self, HEADER_MISMATCH, INVALID_REQUEST, MODERN_VERSIONS, PARSE_ERROR, Routing, rpc_error,
};
use crate::error::{ApiError, Body, Code, json_response};
use crate::ops::Api;

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

fn accepted() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::ACCEPTED;
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The routing headers, or the one that is given twice.
fn routing(headers: &HeaderMap) -> Result<Routing, &'static str> {
    let one = |name: &'static str| -> Result<Option<String>, &'static str> {
        let mut values = headers.get_all(name).iter();
        let first = values.next();
        if values.next().is_some() {
            return Err(name);
        }
        Ok(first.map(|v| String::from_utf8_lossy(v.as_bytes()).trim().to_string()))
    };
    Ok(Routing {
        version: one("mcp-protocol-version")?,
        method: one("mcp-method")?,
        name: one("mcp-name")?,
    })
}

/// `POST /mcp`.
pub async fn post(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<Body>, ApiError> {
    let scope = api.enter(req.headers(), client.ip(), "MCP")?;
    if !origin_allowed(req.headers(), !api.search_tokens.is_empty()) {
        return Err(ApiError::new(
            Code::ForbiddenOrigin,
            "requests from this Origin are refused: /mcp answers loopback origins, and its own origin when search tokens are required",
        ));
    }
    let routing = match routing(req.headers()) {
        Ok(r) => r,
        Err(twice) => {
            let body = rpc_error(
                &Value::Null,
                HEADER_MISMATCH,
                format!("the {twice} header is given more than once"),
            );
            return Ok(mcp_response(StatusCode::BAD_REQUEST, &body));
        }
    };
    let body = crate::http::read_json_body(api, req).await?;
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let body = rpc_error(
                &Value::Null,
                PARSE_ERROR,
                format!("the body is not JSON: {e}"),
            );
            return Ok(mcp_response(StatusCode::BAD_REQUEST, &body));
        }
    };
    let id = parsed.get("id").cloned().unwrap_or(Value::Null);
    if let Some(v) = routing.version.as_deref()
        && !protocol::is_supported(v)
    {
        let body = protocol::unsupported_version(&id, v);
        return Ok(mcp_response(StatusCode::BAD_REQUEST, &body));
    }
    let modern = routing
        .version
        .as_deref()
        .is_some_and(|v| MODERN_VERSIONS.contains(&v))
        || protocol::is_modern(&parsed);
    if !modern {
        return Ok(
            match protocol::answer(api, &scope, parsed, false, Some(&routing)).await {
                Some(r) => mcp_response(StatusCode::OK, &r),
                None => accepted(),
            },
        );
    }
    // 2026-07-28: one request or notification per POST.
    let Value::Object(_) = &parsed else {
        let body = rpc_error(
            &Value::Null,
            INVALID_REQUEST,
            "a 2026-07-28 POST carries one JSON-RPC request or notification, not a batch",
        );
        return Ok(mcp_response(StatusCode::BAD_REQUEST, &body));
    };
    if parsed.get("id").is_none() {
        return Ok(accepted());
    }
    Ok(
        match protocol::handle(api, &scope, parsed, Some(&routing)).await {
            Some(r) => {
                let status =
                    StatusCode::from_u16(protocol::modern_status(&r)).unwrap_or(StatusCode::OK);
                mcp_response(status, &r)
            }
            None => accepted(),
        },
    )
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
