//! The web pages (docs/web.md): search at `/`, a file view at `/file`,
//! the repositories at `/repos`, and sign-in for servers that require
//! search tokens. Served on the API's listener, behind the same gate
//! (rate limit, token, scope) and the same operations as `/v1/*`
//! (through `web::api`); HTML and assets are compiled into the
//! binary.
//!
//! Safety: every page is sent with a Content-Security-Policy that allows
//! only this server's own script and style (no inline script, no other
//! origin), and every name, path and line is escaped (`html::esc`). The
//! pages work without JavaScript; the script only adds keys and line-range
//! selection.

mod api;
mod highlight;
mod html;
mod pages;

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use self::api as for_web;
use self::api::{ApiError, Body, Code};
use crate::ops::Api;

/// The stylesheet's path.
pub const CSS_PATH: &str = "/assets/web.css";
/// The script's path.
pub const JS_PATH: &str = "/assets/web.js";
/// The icon's path (browsers ask for one; `/favicon.ico` would be a 404).
pub const ICON_PATH: &str = "/assets/icon.svg";
const CSS: &str = include_str!("web.css");
const JS: &str = include_str!("web.js");
const ICON: &str = include_str!("icon.svg");

/// Sent with every page: only this server's own script, style and forms;
/// no inline script or style, no frames, no other origin.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The cookie that carries a signed-in browser's token.
const TOKEN_COOKIE: &str = "shelf_token";
/// Largest sign-in form body accepted.
const MAX_FORM_BYTES: usize = 4096;

/// Whether `path` is one of the pages or their assets.
pub fn serves(path: &str) -> bool {
    matches!(
        path,
        "/" | "/file" | "/repos" | "/signin" | "/signout" | CSS_PATH | JS_PATH | ICON_PATH
    )
}

/// What a page knows about the request besides its parameters.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// Signed in with the cookie (then the page offers sign-out).
    signed_in: bool,
    /// The request's path and query, to come back to after signing in.
    here: String,
}

/// Answers a request for a page or an asset: always HTML (or the asset),
/// never JSON, errors included.
pub(crate) async fn handle(
    api: &Api,
    req: Request<Incoming>,
    client: SocketAddr,
) -> Result<Response<Body>, ApiError> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let read = method == Method::GET || method == Method::HEAD;
    match path.as_str() {
        CSS_PATH | JS_PATH | ICON_PATH if read => {
            let (body, kind) = match path.as_str() {
                CSS_PATH => (CSS, "text/css; charset=utf-8"),
                JS_PATH => (JS, "text/javascript; charset=utf-8"),
                _ => (ICON, "image/svg+xml"),
            };
            let mut r = respond(StatusCode::OK, Bytes::from_static(body.as_bytes()), kind);
            r.headers_mut().insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            );
            return Ok(r);
        }
        "/signin" if method == Method::POST => return Ok(sign_in(api, req, client).await),
        "/signout" if method == Method::POST => {
            if let Err(why) = same_origin(req.headers()) {
                return Ok(error_page(&forbidden(why), None));
            }
            return Ok(redirect("/", Some(clear_cookie())));
        }
        "/signin" | "/" | "/file" | "/repos" if read => {}
        _ => {
            let allow = if matches!(path.as_str(), "/signin") {
                "GET, HEAD, POST"
            } else if path == "/signout" {
                "POST"
            } else {
                "GET, HEAD"
            };
            let e = ApiError {
                allow: Some(allow),
                ..ApiError::new(
                    Code::MethodNotAllowed,
                    format!("{method} is not allowed here; use {allow}"),
                )
            };
            return Ok(error_page(&e, None));
        }
    }
    let cookie = cookie_token(req.headers());
    let ctx = Ctx {
        signed_in: cookie.is_some() && for_web::tokens_required(api),
        here: req
            .uri()
            .path_and_query()
            .map_or("/".to_string(), |p| p.as_str().to_string()),
    };
    if path == "/signin" {
        let next = param(&query_pairs(req.uri().query()), "next").to_string();
        return Ok(sign_in_page(api, StatusCode::OK, None, &next));
    }
    let headers = with_token(req.headers(), cookie.as_deref());
    let scope = match for_web::gate(api, &headers, client) {
        Ok(scope) => scope,
        Err(e) if e.code == Code::Unauthorized => {
            let why = cookie.is_some().then_some(
                "the token this browser signed in with is no longer accepted: sign in again",
            );
            let mut r = sign_in_page(api, StatusCode::UNAUTHORIZED, why, &ctx.here);
            if cookie.is_some() {
                r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            }
            return Ok(r);
        }
        Err(e) => return Ok(error_page(&e, Some(&ctx))),
    };
    let pairs = query_pairs(req.uri().query());
    let (status, body) = match path.as_str() {
        "/file" => pages::file(api, &scope, &ctx, &pairs).await,
        "/repos" => pages::repos(api, &scope, &ctx),
        _ => pages::search(api, &scope, &ctx, &pairs).await,
    };
    Ok(respond(
        status,
        Bytes::from(body),
        "text/html; charset=utf-8",
    ))
}

/// A response with the page headers: the CSP and its companions.
fn respond(status: StatusCode, body: Bytes, content_type: &'static str) -> Response<Body> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // Queries are in URLs: no other site learns them from a link.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// An error as a page: its status, its message, escaped.
fn error_page(e: &ApiError, ctx: Option<&Ctx>) -> Response<Body> {
    let body = pages::layout(
        e.code.as_str(),
        ctx,
        &format!(
            "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p><p><a href=\"/\">Back to search</a></p>",
            e.status.as_u16(),
            html::esc(&e.message)
        ),
    );
    let mut r = respond(e.status, Bytes::from(body), "text/html; charset=utf-8");
    if let Some(secs) = e.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Some(allow) = e.allow {
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    r
}

fn forbidden(why: &str) -> ApiError {
    ApiError::new(Code::Forbidden, why.to_string())
}

/// A 303 to `to`, setting `cookie` if given.
fn redirect(to: &str, cookie: Option<HeaderValue>) -> Response<Body> {
    let mut r = respond(
        StatusCode::SEE_OTHER,
        Bytes::new(),
        "text/html; charset=utf-8",
    );
    if let Ok(location) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(c) = cookie {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// Refuses a form post another site could have sent: the browser's
/// `Sec-Fetch-Site`, else its `Origin`, must say this server; a post with
/// neither is refused (API clients send bearer tokens and need no form).
/// The cookie is also `SameSite=Strict`, so another site's post carries
/// none.
fn same_origin(headers: &HeaderMap) -> Result<(), &'static str> {
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site") {
        return match site {
            "same-origin" | "none" => Ok(()),
            _ => Err("this form can only be sent from this server's own pages"),
        };
    }
    let (Some(origin), Some(host)) = (get("origin"), get("host")) else {
        return Err(
            "a form post must come from a browser on this server's pages (no Origin header was sent)",
        );
    };
    let bare = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    if bare == Some(host) {
        Ok(())
    } else {
        Err("this form can only be sent from this server's own pages")
    }
}

/// `POST /signin`: a valid token becomes an HttpOnly, SameSite=Strict
/// cookie and the browser goes back where it was; a wrong one gets the
/// form again with a 401.
async fn sign_in(api: &Api, req: Request<Incoming>, client: SocketAddr) -> Response<Body> {
    if let Err(why) = same_origin(req.headers()) {
        return error_page(&forbidden(why), None);
    }
    let secure = req
        .headers()
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let form = match read_form(api, req).await {
        Ok(form) => form,
        Err(e) => return error_page(&e, None),
    };
    let token = param(&form, "token").trim().to_string();
    let next = safe_next(param(&form, "next"));
    if !for_web::tokens_required(api) {
        return redirect(next, None);
    }
    let headers = with_token(&HeaderMap::new(), Some(&token));
    match for_web::gate(api, &headers, client) {
        Ok(_) => {
            let mut cookie = format!(
                "{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
                html::url(&token)
            );
            if secure {
                cookie.push_str("; Secure");
            }
            match HeaderValue::from_str(&cookie) {
                Ok(c) => redirect(next, Some(c)),
                Err(_) => sign_in_page(
                    api,
                    StatusCode::BAD_REQUEST,
                    Some("that token cannot be kept in a cookie"),
                    next,
                ),
            }
        }
        Err(e) if e.code == Code::Unauthorized => sign_in_page(
            api,
            StatusCode::UNAUTHORIZED,
            Some("that token is not accepted by this server"),
            next,
        ),
        Err(e) => error_page(&e, None),
    }
}

/// Where to go after signing in: a path on this server, else `/`.
/// Browsers drop tabs and newlines from a URL and read `\` as `/`, so a
/// path with either, or with a space or a control character, could become
/// `//other.site`: refused.
fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    if local && !next.starts_with("/signin") {
        next
    } else {
        "/"
    }
}

fn sign_in_page(api: &Api, status: StatusCode, why: Option<&str>, next: &str) -> Response<Body> {
    let body = pages::sign_in(for_web::tokens_required(api), why, safe_next(next));
    respond(status, Bytes::from(body), "text/html; charset=utf-8")
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("shelf_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// The token in the request's cookie, if any.
fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == TOKEN_COOKIE)
        .and_then(|(_, value)| {
            percent_encoding::percent_decode_str(value)
                .decode_utf8()
                .ok()
                .map(|t| t.into_owned())
        })
        .filter(|t| !t.is_empty())
}

/// `headers` with the cookie's token as `Authorization: Bearer`, unless
/// they already carry an `Authorization` header (which wins).
fn with_token(headers: &HeaderMap, token: Option<&str>) -> HeaderMap {
    let mut out = headers.clone();
    if let Some(token) = token
        && !out.contains_key(header::AUTHORIZATION)
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        out.insert(header::AUTHORIZATION, v);
    }
    out
}

/// A form body (`application/x-www-form-urlencoded`) within the size and
/// time limits.
async fn read_form(api: &Api, req: Request<Incoming>) -> Result<Vec<(String, String)>, ApiError> {
    let body = Limited::new(req.into_body(), MAX_FORM_BYTES).collect();
    match tokio::time::timeout(for_web::body_timeout(api), body).await {
        Ok(Ok(collected)) => {
            let bytes = collected.to_bytes();
            let text = std::str::from_utf8(&bytes)
                .map_err(|_| ApiError::bad_request("the form is not valid UTF-8"))?;
            Ok(query_pairs(Some(text)))
        }
        Ok(Err(_)) => Err(ApiError::new(
            Code::BodyTooLarge,
            format!("the form is over {MAX_FORM_BYTES} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            Code::BodyTimeout,
            "the form did not arrive in time",
        )),
    }
}

/// A query string's pairs, percent-decoded (`+` is a space); a pair that
/// is not valid UTF-8 after decoding is dropped.
fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .ok()
            .map(|s| s.into_owned())
    };
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((decode(name)?, decode(value)?))
        })
        .collect()
}

/// The first value of `name` (empty when absent).
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> &'a str {
    pairs
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next("/file?repo=a"), "/file?repo=a");
        for bad in [
            "//evil.example/",
            "https://evil.example/",
            "/\\evil",
            "/\t/evil.example",
            "/\n/evil.example",
            "/ /x",
            "",
            "/signin",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad}");
        }
    }

    #[test]
    fn a_form_post_from_another_site_is_refused() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (n, v) in pairs {
                m.insert(*n, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")])).is_ok());
        assert!(same_origin(&h(&[("sec-fetch-site", "cross-site")])).is_err());
        assert!(same_origin(&h(&[("sec-fetch-site", "same-site")])).is_err());
        assert!(same_origin(&h(&[("origin", "http://a:1"), ("host", "a:1")])).is_ok());
        assert!(same_origin(&h(&[("origin", "http://b:1"), ("host", "a:1")])).is_err());
        assert!(same_origin(&h(&[("host", "a:1")])).is_err());
    }

    #[test]
    fn the_cookie_token_is_read_back_and_a_header_wins() {
        let mut m = HeaderMap::new();
        m.insert(
            header::COOKIE,
            HeaderValue::from_static("a=b; shelf_token=t%3Bx%20y; c=d"),
        );
        assert_eq!(cookie_token(&m).as_deref(), Some("t;x y"));
        let with = with_token(&m, Some("t"));
        assert_eq!(with[header::AUTHORIZATION], "Bearer t");
        m.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(with_token(&m, Some("t"))[header::AUTHORIZATION], "Bearer h");
    }
}
