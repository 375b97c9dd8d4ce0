//! Search parameters from a query string (`GET /v1/search?q=…`) or a JSON
//! body (`POST /v1/search`), validated the same way. Unknown parameters,
//! wrong types, invalid UTF-8 and out-of-range values are 400s that say
//! which parameter and why.

use serde::Deserialize;
use shelf_search::{RawRequest, Request, RequestError, RequestLimits};

use super::error::{ApiError, Code};

/// A search as asked: the query and the repositories named (none: every
/// repository the caller may see).
#[derive(Debug, Clone)]
pub struct Search {
    /// The validated query.
    pub request: Request,
    /// Repository names, as given.
    pub repos: Vec<String>,
    /// A bound on the answer, in estimated tokens (`Answer::fit`).
    pub max_tokens: Option<usize>,
}

/// The JSON body of `POST /v1/search`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchBody {
    query: String,
    #[serde(default)]
    k: Option<usize>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    language: Option<OneOrMany>,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    repo: Option<OneOrMany>,
    #[serde(default)]
    kind: Option<String>,
    max_tokens: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Query-string parameter names, for messages.
const GET_PARAMS: &str = "q, k, path, language, mode, group, kind, repo, max_tokens";

/// Repository names from `repo` values (each comma-separated).
fn repo_names(values: impl IntoIterator<Item = String>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .collect::<Vec<_>>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Parses `GET` parameters.
pub fn from_query_string(query: Option<&str>, limits: &RequestLimits) -> Result<Search, ApiError> {
    let mut repos = Vec::new();
    let mut q = None;
    let mut k = None;
    let mut path = None;
    let mut language = None;
    let mut mode = None;
    let mut group = None;
    let mut kind = None;
    let mut max_tokens = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, "a parameter name")?;
        if name == "repo" {
            // Repeatable: ?repo=a&repo=b, or ?repo=a,b.
            repos.push(decode(value, "parameter 'repo'")?);
            continue;
        }
        let slot = match name.as_str() {
            "q" | "query" => &mut q,
            "k" => &mut k,
            "path" => &mut path,
            "language" | "lang" => &mut language,
            "mode" => &mut mode,
            "group" => &mut group,
            "kind" => &mut kind,
            "max_tokens" => &mut max_tokens,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown parameter '{}'; known: {GET_PARAMS}",
                    other.chars().take(64).collect::<String>()
                )));
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "parameter '{name}' is given twice"
            )));
        }
        *slot = Some(decode(value, &format!("parameter '{name}'"))?);
    }
    let k = match k {
        None => None,
        Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "k must be a whole number from 1 to {}, not '{}'",
                limits.max_k,
                text.chars().take(32).collect::<String>()
            ))
        })?),
    };
    let languages = language
        .map(|l| {
            l.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let max_tokens = match max_tokens {
        None => None,
        Some(text) => Some(text.trim().parse::<usize>().map_err(|_| {
            ApiError::bad_request(format!(
                "max_tokens must be a whole number, not '{}'",
                text.chars().take(32).collect::<String>()
            ))
        })?),
    };
    let Some(query) = q else {
        return Err(ApiError::bad_request(
            "missing the query: pass ?q=<what to look for>",
        ));
    };
    Ok(Search {
        request: validate(
            RawRequest {
                query,
                k,
                path,
                languages,
                mode,
                group,
                kind,
            },
            limits,
        )?,
        repos: repo_names(repos),
        max_tokens: check_max_tokens(max_tokens)?,
    })
}

fn check_max_tokens(max_tokens: Option<usize>) -> Result<Option<usize>, ApiError> {
    max_tokens
        .map(shelf_search::budget::check_max_tokens)
        .transpose()
        .map_err(ApiError::bad_request)
}

/// Parses a `POST` body.
pub fn from_json(body: &[u8], limits: &RequestLimits) -> Result<Search, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request("the request body is not valid UTF-8"));
    }
    let parsed: SearchBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {e}; expected {{\"query\": string, \"k\"?: number, \"path\"?: glob, \"language\"?: string or [string], \"mode\"?: \"hybrid\"|\"semantic\"|\"lexical\", \"group\"?: \"chunk\"|\"file\", \"kind\"?: \"auto\"|\"any\"|\"source\"|\"test\"|\"doc\"|\"changelog\"|\"generated\"|\"other\", \"repo\"?: string or [string], \"max_tokens\"?: number}}"
        ))
    })?;
    let languages = match parsed.language {
        None => Vec::new(),
        Some(OneOrMany::One(l)) => vec![l],
        Some(OneOrMany::Many(ls)) => ls,
    };
    let repos = match parsed.repo {
        None => Vec::new(),
        Some(OneOrMany::One(r)) => vec![r],
        Some(OneOrMany::Many(rs)) => rs,
    };
    Ok(Search {
        request: validate(
            RawRequest {
                query: parsed.query,
                k: parsed.k,
                path: parsed.path,
                languages,
                mode: parsed.mode,
                group: parsed.group,
                kind: parsed.kind,
            },
            limits,
        )?,
        repos: repo_names(repos),
        max_tokens: check_max_tokens(parsed.max_tokens)?,
    })
}

fn validate(raw: RawRequest, limits: &RequestLimits) -> Result<Request, ApiError> {
    Request::new(raw, limits).map_err(|e| match e {
        RequestError::TooLong(m) => ApiError::new(Code::QueryTooLong, m),
        RequestError::Invalid(m) => ApiError::bad_request(m),
    })
}

/// Percent-decodes one query-string component (`+` is a space); invalid
/// UTF-8 after decoding is refused, not replaced.
fn decode(raw: &str, what: &str) -> Result<String, ApiError> {
    let spaced = raw.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(format!("{what} is not valid UTF-8 after percent-decoding"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use shelf_search::{Group, Mode};

    fn get(qs: &str) -> Result<Request, ApiError> {
        from_query_string(Some(qs), &RequestLimits::default()).map(|s| s.request)
    }

    fn post(body: &str) -> Result<Request, ApiError> {
        from_json(body.as_bytes(), &RequestLimits::default()).map(|s| s.request)
    }

    #[test]
    fn repositories_are_named_once_or_many_times() {
        let s = from_query_string(
            Some("q=x&repo=api&repo=web,docs"),
            &RequestLimits::default(),
        )
        .unwrap();
        assert_eq!(s.repos, ["api", "web", "docs"]);
        let s = from_json(
            br#"{"query": "x", "repo": ["api", "web"]}"#,
            &RequestLimits::default(),
        )
        .unwrap();
        assert_eq!(s.repos, ["api", "web"]);
        let s = from_json(
            br#"{"query": "x", "repo": "api"}"#,
            &RequestLimits::default(),
        )
        .unwrap();
        assert_eq!(s.repos, ["api"]);
        assert!(
            from_query_string(Some("q=x"), &RequestLimits::default())
                .unwrap()
                .repos
                .is_empty()
        );
    }

    #[test]
    fn query_strings_decode_and_default() {
        let p = get(
            "q=retry+policy%20here&k=3&path=src%2F**&language=rust,python&mode=lexical&group=file",
        )
        .unwrap();
        assert_eq!((p.mode, p.group), (Mode::Lexical, Group::File));
        assert_eq!(get("q=x").unwrap().mode, Mode::Hybrid);
        assert_eq!(p.query, "retry policy here");
        assert_eq!(p.k, 3);
        assert_eq!(p.filter.path(), Some("src/**"));
        assert_eq!(p.filter.languages(), ["rust", "python"]);
        assert_eq!(get("q=x").unwrap().k, 10);
    }

    #[test]
    fn bad_query_strings_are_named() {
        for (qs, needle) in [
            ("", "missing the query"),
            ("q=", "empty"),
            ("q=%20%20", "empty"),
            ("q=x&k=0", "out of range"),
            ("q=x&k=101", "out of range"),
            ("q=x&k=ten", "whole number"),
            ("q=x&k=-1", "whole number"),
            ("q=x&k=99999999999999999999999", "whole number"),
            ("q=x&q=y", "twice"),
            ("q=x&color=red", "unknown parameter 'color'"),
            ("q=%FF%FE", "not valid UTF-8"),
            ("q=x&language=klingon", "unknown language"),
            ("q=x&path=src/[", "not a valid glob"),
            ("q=x&mode=fuzzy", "unknown mode"),
            ("q=x&group=dir", "unknown group"),
        ] {
            let e = get(qs).unwrap_err();
            assert!(e.status.is_client_error(), "{qs}: {:?}", e.status);
            assert!(e.message.contains(needle), "{qs}: {}", e.message);
        }
    }

    #[test]
    fn json_bodies_are_strict() {
        let p = post(r#"{"query": "tags", "k": 2, "language": ["rust"], "mode": "semantic", "group": "chunk"}"#).unwrap();
        assert_eq!((p.mode, p.group), (Mode::Semantic, Group::Chunk));
        assert_eq!((p.query.as_str(), p.k), ("tags", 2));
        assert_eq!(
            post(r#"{"query": "tags", "language": "rust"}"#)
                .unwrap()
                .filter
                .languages(),
            ["rust"]
        );
        for (body, needle) in [
            ("", "invalid JSON"),
            ("{", "invalid JSON"),
            ("[]", "invalid JSON"),
            (r#"{"k": 3}"#, "missing field `query`"),
            (r#"{"query": 7}"#, "invalid type"),
            (r#"{"query": "x", "k": "3"}"#, "invalid type"),
            (r#"{"query": "x", "k": 1e3}"#, "invalid type"),
            (r#"{"query": "x", "k": 100000}"#, "out of range"),
            (r#"{"query": "x", "extra": 1}"#, "unknown field `extra`"),
            (r#"{"query": "   "}"#, "empty"),
        ] {
            let e = post(body).unwrap_err();
            assert!(e.status.is_client_error(), "{body}");
            assert!(e.message.contains(needle), "{body}: {}", e.message);
        }
        let e = from_json(b"{\"query\": \"\xff\"}", &RequestLimits::default())
            .map(|s| s.request)
            .unwrap_err();
        assert!(e.message.contains("UTF-8"));
    }

    #[test]
    fn overlong_queries_are_413() {
        let long = "a".repeat(RequestLimits::default().max_query_bytes + 1);
        assert_eq!(get(&format!("q={long}")).unwrap_err().status, 413);
    }
}
