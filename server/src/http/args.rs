//! The parameters of the file tools (`read_file`, `grep`,
//! `find_definitions`) and of `search_code`, declared once: the same table
//! checks a REST query string (`GET /v1/file?…`), checks an MCP tool's JSON
//! arguments, and is the tool's JSON Schema. A wrong type, an unknown name
//! or a number out of range is refused naming the parameter.

use serde_json::{Map, Value, json};

use super::error::ApiError;

/// What a parameter holds.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// A string.
    Text,
    /// A whole number within bounds.
    Int {
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// `true` or `false`.
    Bool,
    /// One string or a list of strings (in a query string: repeated or
    /// comma-separated).
    Names,
    /// One of fixed strings.
    Choice(&'static [&'static str]),
}

/// One parameter.
#[derive(Debug, Clone, Copy)]
pub struct Param {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
    /// What it means, for the schema.
    pub about: &'static str,
}

const fn param(name: &'static str, kind: Kind, required: bool, about: &'static str) -> Param {
    Param {
        name,
        kind,
        required,
        about,
    }
}

/// `max_tokens`, which every tool takes (each tool's default is in its
/// description).
const MAX_TOKENS: Param = param(
    "max_tokens",
    Kind::Int {
        min: shelf_search::budget::MIN_MAX_TOKENS as u64,
        max: shelf_search::budget::MAX_MAX_TOKENS as u64,
    },
    false,
    "Bound on the answer, in estimated tokens (4 bytes of text each); what is cut is said in `truncated`.",
);

const REPO_ONE: Param = param(
    "repo",
    Kind::Text,
    false,
    "The repository (see list_repositories); needed only when the path is in several.",
);
const REPOS: Param = param(
    "repo",
    Kind::Names,
    false,
    "Only these repositories (default: every one the token may see).",
);

/// Default `max_tokens` of `search_code`.
pub const SEARCH_MAX_TOKENS: usize = 8_000;
/// Default `max_tokens` of `read_file`.
pub const FILE_MAX_TOKENS: usize = 16_000;
/// Default `max_tokens` of `grep` and `find_definitions`.
pub const LIST_MAX_TOKENS: usize = 4_000;

/// `search_code` (the body of `POST /v1/search`, plus `max_tokens`).
pub const SEARCH: &[Param] = &[
    param(
        "query",
        Kind::Text,
        true,
        "What to look for, in words or code.",
    ),
    param(
        "k",
        Kind::Int { min: 1, max: 1000 },
        false,
        "How many results (default 10).",
    ),
    REPOS,
    param(
        "path",
        Kind::Text,
        false,
        "Only chunks whose path matches this glob, e.g. 'src/**/*.rs'.",
    ),
    param(
        "language",
        Kind::Names,
        false,
        "Only these languages, e.g. 'rust' or ['python', 'go'].",
    ),
    param(
        "mode",
        Kind::Choice(&["hybrid", "semantic", "lexical"]),
        false,
        "How to match: hybrid (default), semantic (meaning) or lexical (words, BM25).",
    ),
    param(
        "group",
        Kind::Choice(&["chunk", "file"]),
        false,
        "List chunks (default) or the best files with their best chunks.",
    ),
    MAX_TOKENS,
];

/// `read_file` and `GET /v1/file`.
pub const FILE: &[Param] = &[
    param(
        "path",
        Kind::Text,
        true,
        "Repository-relative path, as search results give it.",
    ),
    param(
        "start_line",
        Kind::Int {
            min: 1,
            max: u32::MAX as u64,
        },
        false,
        "First line, 1-based (default 1).",
    ),
    param(
        "end_line",
        Kind::Int {
            min: 1,
            max: u32::MAX as u64,
        },
        false,
        "Last line, inclusive (default: the last).",
    ),
    REPO_ONE,
    MAX_TOKENS,
];

/// `grep` and `GET /v1/grep`.
pub const GREP: &[Param] = &[
    param(
        "pattern",
        Kind::Text,
        true,
        "Text to find; a regular expression (Rust regex syntax, linear time) when regex is true.",
    ),
    param(
        "regex",
        Kind::Bool,
        false,
        "Treat pattern as a regular expression (default false: a literal).",
    ),
    param(
        "ignore_case",
        Kind::Bool,
        false,
        "Match regardless of case (default false).",
    ),
    param(
        "path",
        Kind::Text,
        false,
        "Only files whose path matches this glob, e.g. '**/*.py'.",
    ),
    REPOS,
    param(
        "limit",
        Kind::Int {
            min: 1,
            max: shelf_search::files::MAX_GREP_LIMIT as u64,
        },
        false,
        "Most matching lines listed (default 50).",
    ),
    MAX_TOKENS,
];

/// `find_definitions` and `GET /v1/definitions`.
pub const DEFINITIONS: &[Param] = &[
    param(
        "name",
        Kind::Text,
        true,
        "The symbol: a function, class, struct, trait, type or constant name.",
    ),
    REPOS,
    param(
        "limit",
        Kind::Int { min: 1, max: 500 },
        false,
        "Most definitions listed (default 50).",
    ),
    MAX_TOKENS,
];

fn names_of(params: &[Param]) -> String {
    params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

fn find<'a>(params: &'a [Param], name: &str) -> Result<&'a Param, ApiError> {
    params.iter().find(|p| p.name == name).ok_or_else(|| {
        ApiError::bad_request(format!(
            "unknown parameter '{}'; known: {}",
            name.chars().take(64).collect::<String>(),
            names_of(params)
        ))
    })
}

/// Checks JSON arguments against `params`: names known, types right,
/// numbers in range, required ones present.
pub fn check(args: &Map<String, Value>, params: &[Param]) -> Result<(), ApiError> {
    for (name, value) in args {
        let p = find(params, name)?;
        if value.is_null() {
            continue;
        }
        let ok = match p.kind {
            Kind::Text => value.is_string(),
            Kind::Bool => value.is_boolean(),
            Kind::Names => {
                value.is_string()
                    || value
                        .as_array()
                        .is_some_and(|a| a.iter().all(Value::is_string))
            }
            Kind::Choice(choices) => value.as_str().is_some_and(|v| choices.contains(&v)),
            Kind::Int { min, max } => {
                return match value.as_u64() {
                    Some(n) if (min..=max).contains(&n) => continue,
                    _ => Err(ApiError::bad_request(format!(
                        "{name} must be a whole number from {min} to {max}, not {}",
                        short(value)
                    ))),
                };
            }
        };
        if !ok {
            return Err(ApiError::bad_request(format!(
                "{name} must be {}, not {}",
                expected(p.kind),
                short(value)
            )));
        }
    }
    for p in params.iter().filter(|p| p.required) {
        if args.get(p.name).is_none_or(Value::is_null) {
            return Err(ApiError::bad_request(format!(
                "{} is required: {}",
                p.name, p.about
            )));
        }
    }
    Ok(())
}

fn expected(kind: Kind) -> String {
    match kind {
        Kind::Text => "a string".into(),
        Kind::Bool => "true or false".into(),
        Kind::Names => "a string or a list of strings".into(),
        Kind::Choice(c) => format!("one of {}", c.join(", ")),
        Kind::Int { min, max } => format!("a whole number from {min} to {max}"),
    }
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(48).collect()
}

/// A query string as JSON arguments of `params`, then [`check`]ed.
pub fn from_query(query: Option<&str>, params: &[Param]) -> Result<Map<String, Value>, ApiError> {
    let mut args = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, "a parameter name")?;
        let p = find(params, &name)?;
        let value = decode(value, &format!("parameter '{name}'"))?;
        let parsed = match p.kind {
            Kind::Names => {
                let mut list = match args.remove(p.name) {
                    Some(Value::Array(list)) => list,
                    _ => Vec::new(),
                };
                list.extend(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(|s| Value::String(s.to_string())),
                );
                Value::Array(list)
            }
            _ if args.contains_key(p.name) => {
                return Err(ApiError::bad_request(format!(
                    "parameter '{name}' is given twice"
                )));
            }
            Kind::Int { .. } => match value.trim().parse::<u64>() {
                Ok(n) => json!(n),
                Err(_) => Value::String(value),
            },
            Kind::Bool => match value.trim() {
                "true" | "1" | "yes" => json!(true),
                "false" | "0" | "no" => json!(false),
                _ => Value::String(value),
            },
            Kind::Text | Kind::Choice(_) => Value::String(value),
        };
        args.insert(p.name.to_string(), parsed);
    }
    check(&args, params)?;
    Ok(args)
}

/// Percent-decodes one query-string component (`+` is a space).
fn decode(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(format!("{what} is not valid UTF-8 after percent-decoding"))
        })
}

/// The JSON Schema of `params` (an MCP tool's `inputSchema`).
pub fn schema(params: &[Param]) -> Value {
    let mut properties = Map::new();
    for p in params {
        let mut s = match p.kind {
            Kind::Text => json!({"type": "string"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Int { min, max } => json!({"type": "integer", "minimum": min, "maximum": max}),
            Kind::Names => json!({
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            }),
            Kind::Choice(c) => json!({"type": "string", "enum": c}),
        };
        s["description"] = json!(p.about);
        properties.insert(p.name.to_string(), s);
    }
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// The string `name` of checked arguments.
pub fn text(args: &Map<String, Value>, name: &str) -> Option<String> {
    args.get(name).and_then(Value::as_str).map(str::to_string)
}

/// The number `name` of checked arguments.
pub fn int(args: &Map<String, Value>, name: &str) -> Option<u64> {
    args.get(name).and_then(Value::as_u64)
}

/// The flag `name` of checked arguments (absent: false).
pub fn flag(args: &Map<String, Value>, name: &str) -> bool {
    args.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The names `name` of checked arguments (one string or a list).
pub fn names(args: &Map<String, Value>, name: &str) -> Vec<String> {
    match args.get(name) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_and_json_are_checked_by_one_table() {
        let a = from_query(
            Some("pattern=fn+main&regex=true&limit=5&repo=a,b&repo=c"),
            GREP,
        )
        .unwrap();
        assert_eq!(text(&a, "pattern").as_deref(), Some("fn main"));
        assert!(flag(&a, "regex"));
        assert_eq!(int(&a, "limit"), Some(5));
        assert_eq!(names(&a, "repo"), ["a", "b", "c"]);
        for (q, says) in [
            (
                "pattern=x&limit=0",
                "limit must be a whole number from 1 to 500",
            ),
            ("pattern=x&limit=ten", "limit must be a whole number"),
            ("pattern=x&regex=maybe", "regex must be true or false"),
            ("limit=3", "pattern is required"),
            ("pattern=x&nope=1", "unknown parameter 'nope'"),
            ("pattern=x&pattern=y", "given twice"),
        ] {
            let e = from_query(Some(q), GREP).unwrap_err().message;
            assert!(e.contains(says), "{q}: {e}");
        }
        let args: Map<String, Value> = serde_json::from_str(r#"{"path": 3}"#).unwrap();
        let e = check(&args, FILE).unwrap_err().message;
        assert!(e.contains("path must be a string, not 3"), "{e}");
        let args: Map<String, Value> =
            serde_json::from_str(r#"{"query": "x", "mode": "fuzzy"}"#).unwrap();
        let e = check(&args, SEARCH).unwrap_err().message;
        assert!(e.contains("one of hybrid, semantic, lexical"), "{e}");
        let s = schema(FILE);
        assert_eq!(s["required"], json!(["path"]));
        assert_eq!(s["properties"]["start_line"]["type"], "integer");
    }
}
