//! Search parameters from a query string (`GET /v1/search?q=…`) or a JSON
//! body (`POST /v1/search`), validated the same way. Unknown parameters,
//! wrong types, invalid UTF-8 and out-of-range values are 400s that say
//! which parameter and why.

use serde::Deserialize;

use super::error::ApiError;
use crate::config::Limits;
use crate::query::Filter;
use crate::search::Mode;

/// A validated search request.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// The query text.
    pub query: String,
    /// Results wanted.
    pub k: usize,
    /// The path glob, as given.
    pub path: Option<String>,
    /// Language names, as given.
    pub languages: Vec<String>,
    /// Both, compiled.
    pub filter: Filter,
    /// How to match.
    pub mode: Mode,
    /// Whether to answer with files (`group=file`) instead of chunks.
    pub by_file: bool,
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
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Query-string parameter names, for messages.
const GET_PARAMS: &str = "q, k, path, language, mode, group";

/// Parses `GET` parameters.
pub fn from_query_string(
    query: Option<&str>,
    limits: &Limits,
    default_k: usize,
) -> Result<SearchParams, ApiError> {
    let mut q = None;
    let mut k = None;
    let mut path = None;
    let mut language = None;
    let mut mode = None;
    let mut group = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, "a parameter name")?;
        let slot = match name.as_str() {
            "q" | "query" => &mut q,
            "k" => &mut k,
            "path" => &mut path,
            "language" | "lang" => &mut language,
            "mode" => &mut mode,
            "group" => &mut group,
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
    let Some(query) = q else {
        return Err(ApiError::bad_request(
            "missing the query: pass ?q=<what to look for>",
        ));
    };
    validate(
        Unchecked {
            query,
            k,
            path,
            languages,
            mode,
            group,
        },
        limits,
        default_k,
    )
}

/// Parses a `POST` body.
pub fn from_json(body: &[u8], limits: &Limits, default_k: usize) -> Result<SearchParams, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request("the request body is not valid UTF-8"));
    }
    let parsed: SearchBody = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "invalid JSON body: {e}; expected {{\"query\": string, \"k\"?: number, \"path\"?: glob, \"language\"?: string or [string], \"mode\"?: \"hybrid\"|\"semantic\"|\"lexical\", \"group\"?: \"chunk\"|\"file\"}}"
        ))
    })?;
    let languages = match parsed.language {
        None => Vec::new(),
        Some(OneOrMany::One(l)) => vec![l],
        Some(OneOrMany::Many(ls)) => ls,
    };
    validate(
        Unchecked {
            query: parsed.query,
            k: parsed.k,
            path: parsed.path,
            languages,
            mode: parsed.mode,
            group: parsed.group,
        },
        limits,
        default_k,
    )
}

/// Parameters as given, before validation.
struct Unchecked {
    query: String,
    k: Option<usize>,
    path: Option<String>,
    languages: Vec<String>,
    mode: Option<String>,
    group: Option<String>,
}

fn validate(p: Unchecked, limits: &Limits, default_k: usize) -> Result<SearchParams, ApiError> {
    let Unchecked {
        query,
        k,
        path,
        languages,
        mode,
        group,
    } = p;
    if query.trim().is_empty() {
        return Err(ApiError::bad_request(
            "the query is empty: say what to look for",
        ));
    }
    if query.len() > limits.max_query_bytes {
        return Err(ApiError::new(
            http::StatusCode::PAYLOAD_TOO_LARGE,
            "query_too_long",
            format!(
                "the query is {} bytes; the limit is {}",
                query.len(),
                limits.max_query_bytes
            ),
        ));
    }
    let k = k.unwrap_or(default_k);
    if k == 0 || k > limits.max_k {
        return Err(ApiError::bad_request(format!(
            "k = {k} is out of range: ask for 1 to {} results",
            limits.max_k
        )));
    }
    let filter = Filter::new(path.as_deref(), &languages).map_err(ApiError::bad_request)?;
    let mode = match mode {
        Some(m) => m.parse::<Mode>().map_err(ApiError::bad_request)?,
        None => Mode::Hybrid,
    };
    let by_file = match group.as_deref().map(str::trim) {
        None | Some("chunk") => false,
        Some("file") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown group '{}'; use chunk or file",
                other.chars().take(32).collect::<String>()
            )));
        }
    };
    Ok(SearchParams {
        query,
        k,
        path,
        languages,
        filter,
        mode,
        by_file,
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

    fn get(qs: &str) -> Result<SearchParams, ApiError> {
        from_query_string(Some(qs), &Limits::default(), 10)
    }

    fn post(body: &str) -> Result<SearchParams, ApiError> {
        from_json(body.as_bytes(), &Limits::default(), 10)
    }

    #[test]
    fn query_strings_decode_and_default() {
        let p = get(
            "q=retry+policy%20here&k=3&path=src%2F**&language=rust,python&mode=lexical&group=file",
        )
        .unwrap();
        assert_eq!((p.mode, p.by_file), (Mode::Lexical, true));
        assert_eq!(get("q=x").unwrap().mode, Mode::Hybrid);
        assert_eq!(p.query, "retry policy here");
        assert_eq!(p.k, 3);
        assert_eq!(p.path.as_deref(), Some("src/**"));
        assert_eq!(p.languages, vec!["rust", "python"]);
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
        assert_eq!((p.mode, p.by_file), (Mode::Semantic, false));
        assert_eq!((p.query.as_str(), p.k), ("tags", 2));
        assert_eq!(
            post(r#"{"query": "tags", "language": "rust"}"#)
                .unwrap()
                .languages,
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
        let e = from_json(b"{\"query\": \"\xff\"}", &Limits::default(), 10).unwrap_err();
        assert!(e.message.contains("UTF-8"));
    }

    #[test]
    fn overlong_queries_are_413() {
        let long = "a".repeat(Limits::default().max_query_bytes + 1);
        assert_eq!(get(&format!("q={long}")).unwrap_err().status, 413);
    }
}
