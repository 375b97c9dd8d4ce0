//! Every operation's parameters, declared once. The same table parses a
//! REST query string (`GET /v1/file?…`) or JSON body (`POST /v1/search`),
//! checks an MCP tool's arguments, is the tool's JSON Schema
//! (`inputSchema`), and writes the parameter tables of docs/api.md (a
//! test compares them). A wrong type, an unknown name or a number out of
//! range is refused naming the parameter.

use serde_json::{Map, Value, json};
use shelf_search::RequestLimits;
use shelf_search::budget::{MAX_MAX_TOKENS, MIN_MAX_TOKENS};

use crate::error::ApiError;

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
    /// How many results: 1 to the server's `max_k`.
    K,
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
    /// Another name a query string may use (`q` for `query`).
    pub alias: Option<&'static str>,
    /// What it holds.
    pub kind: Kind,
    /// Whether it must be given.
    pub required: bool,
    /// Its default, in words (for the docs); empty when required.
    pub default: &'static str,
    /// What it means.
    pub about: &'static str,
    /// A value a test sends through every surface (JSON).
    pub example: &'static str,
}

const fn param(
    name: &'static str,
    kind: Kind,
    default: &'static str,
    about: &'static str,
    example: &'static str,
) -> Param {
    Param {
        name,
        alias: None,
        kind,
        required: false,
        default,
        about,
        example,
    }
}

const fn required(
    name: &'static str,
    kind: Kind,
    about: &'static str,
    example: &'static str,
) -> Param {
    Param {
        name,
        alias: None,
        kind,
        required: true,
        default: "",
        about,
        example,
    }
}

const fn aka(p: Param, alias: &'static str) -> Param {
    Param {
        alias: Some(alias),
        ..p
    }
}

const MAX_TOKENS_KIND: Kind = Kind::Int {
    min: MIN_MAX_TOKENS as u64,
    max: MAX_MAX_TOKENS as u64,
};

const fn max_tokens(default: &'static str) -> Param {
    param(
        "max_tokens",
        MAX_TOKENS_KIND,
        default,
        "Bound on the answer, in estimated tokens (4 bytes of text each); what is left out is said in `truncated`.",
        "4000",
    )
}

const REPO_ONE: Param = param(
    "repo",
    Kind::Text,
    "the only one with the path",
    "The repository (see list_repositories); needed only when the path is a file of several.",
    "\"sample\"",
);
const REPOS: Param = param(
    "repo",
    Kind::Names,
    "every one the token may see",
    "Only these repositories (see list_repositories).",
    "\"sample\"",
);
const LINE: Kind = Kind::Int {
    min: 1,
    max: u32::MAX as u64,
};
const LIMIT: Param = param(
    "limit",
    Kind::Int {
        min: 1,
        max: shelf_search::files::MAX_GREP_LIMIT as u64,
    },
    "50",
    "Most items listed.",
    "20",
);

/// Default `max_tokens` of `search_code` and `find_related`.
pub const SEARCH_MAX_TOKENS: usize = 8_000;
/// Default `max_tokens` of `read_file`.
pub const FILE_MAX_TOKENS: usize = 16_000;
/// Default `max_tokens` of the listing tools.
pub const LIST_MAX_TOKENS: usize = 4_000;
/// Default `max_tokens` of `changes` (a diff is read whole more often).
pub const CHANGES_MAX_TOKENS: usize = 8_000;

/// `search_code`, `GET|POST /v1/search`.
pub const SEARCH: &[Param] = &[
    aka(
        required(
            "query",
            Kind::Text,
            "What to look for, in words or code: a question, an error message, an identifier.",
            "\"move a tag\"",
        ),
        "q",
    ),
    param("k", Kind::K, "10", "How many results.", "5"),
    REPOS,
    param(
        "path",
        Kind::Text,
        "every path",
        "Only chunks whose path matches this glob, e.g. 'src/**/*.rs'.",
        "\"src/**\"",
    ),
    aka(
        param(
            "language",
            Kind::Names,
            "every language",
            "Only these languages, e.g. 'rust' or ['python', 'go'].",
            "\"rust\"",
        ),
        "lang",
    ),
    param(
        "mode",
        Kind::Choice(&["hybrid", "semantic", "lexical"]),
        "hybrid",
        "How to match: hybrid (meaning and words), semantic (meaning) or lexical (words, BM25).",
        "\"lexical\"",
    ),
    param(
        "group",
        Kind::Choice(&["chunk", "file"]),
        "chunk",
        "List chunks, or the best files with their best chunks.",
        "\"file\"",
    ),
    param(
        "kind",
        Kind::Choice(&[
            "auto",
            "any",
            "source",
            "test",
            "doc",
            "changelog",
            "generated",
            "other",
        ]),
        "auto",
        "The kind of file to prefer (a preference, not a filter): auto (what the query asks for), any, or a kind.",
        "\"source\"",
    ),
    max_tokens("none (REST), 8000 (MCP)"),
];

/// `read_file`, `GET /v1/file`.
pub const FILE: &[Param] = &[
    required(
        "path",
        Kind::Text,
        "Repository-relative path, as results name it (src/a.py, not ./src/a.py).",
        "\"src/tags.rs\"",
    ),
    param("start_line", LINE, "1", "First line, 1-based.", "1"),
    param(
        "end_line",
        LINE,
        "the last",
        "Last line, inclusive (past the end: the last).",
        "3",
    ),
    REPO_ONE,
    max_tokens("16000"),
];

/// `grep`, `GET /v1/grep`.
pub const GREP: &[Param] = &[
    required(
        "pattern",
        Kind::Text,
        "Text to find; a regular expression (Rust regex syntax, linear time) when regex is true.",
        "\"tag\"",
    ),
    param(
        "regex",
        Kind::Bool,
        "false",
        "Treat pattern as a regular expression (false: a literal).",
        "true",
    ),
    param(
        "ignore_case",
        Kind::Bool,
        "false",
        "Match regardless of case.",
        "true",
    ),
    param(
        "path",
        Kind::Text,
        "every file",
        "Only files whose path matches this glob, e.g. '**/*.py'.",
        "\"src/**\"",
    ),
    REPOS,
    LIMIT,
    max_tokens("4000"),
];

/// `find_definitions`, `GET /v1/definitions`.
pub const DEFINITIONS: &[Param] = &[
    required(
        "name",
        Kind::Text,
        "The symbol: a function, method, class, struct, trait, type or constant name (exact-case matches first).",
        "\"move_tag\"",
    ),
    REPOS,
    LIMIT,
    max_tokens("4000"),
];

/// `list_repositories`, `GET /v1/repos`.
pub const REPOSITORIES: &[Param] = &[max_tokens("none (REST), 4000 (MCP)")];

/// `list_files`, `GET /v1/files`.
pub const LIST_FILES: &[Param] = &[
    param(
        "path",
        Kind::Text,
        "the repository's root",
        "A directory to list under (src/server), or a glob of files (src/**/*.rs, **/test_*.py).",
        "\"src\"",
    ),
    param(
        "depth",
        Kind::Int { min: 1, max: 64 },
        "1 (a directory), unlimited (a glob)",
        "How many directory levels below `path` to list; deeper files are counted in their directory.",
        "2",
    ),
    REPOS,
    param(
        "limit",
        Kind::Int { min: 1, max: 5_000 },
        "500",
        "Most entries listed.",
        "100",
    ),
    max_tokens("4000"),
];

/// `outline`, `GET /v1/outline`.
pub const OUTLINE: &[Param] = &[
    required(
        "path",
        Kind::Text,
        "The file to outline, repository-relative.",
        "\"src/tags.rs\"",
    ),
    REPO_ONE,
    max_tokens("4000"),
];

/// `find_references`, `GET /v1/references`.
pub const REFERENCES: &[Param] = &[
    required(
        "name",
        Kind::Text,
        "The symbol whose uses to find (an identifier; `Session.send` looks for `send`).",
        "\"move_tag\"",
    ),
    param(
        "path",
        Kind::Text,
        "every file",
        "Only files whose path matches this glob.",
        "\"src/**\"",
    ),
    REPOS,
    LIMIT,
    max_tokens("4000"),
];

/// `changes`, `GET /v1/changes`.
pub const CHANGES: &[Param] = &[
    required(
        "from",
        Kind::Text,
        "The older indexed version: a tag of the repository's store (v1.2.0) or a bundle digest (sha256:…).",
        "\"v1\"",
    ),
    param(
        "to",
        Kind::Text,
        "the live bundle",
        "The newer version, named the same way.",
        "\"v2\"",
    ),
    param(
        "path",
        Kind::Text,
        "none: the list of changed files",
        "One file whose unified diff to show, repository-relative.",
        "\"src/tags.rs\"",
    ),
    param(
        "repo",
        Kind::Text,
        "the only one served",
        "The repository (see list_repositories).",
        "\"sample\"",
    ),
    param(
        "limit",
        Kind::Int { min: 1, max: 5_000 },
        "500",
        "Most changed files listed.",
        "100",
    ),
    max_tokens("8000"),
];

/// `find_related`, `GET /v1/related`.
pub const RELATED: &[Param] = &[
    required(
        "path",
        Kind::Text,
        "The file whose chunks to start from, repository-relative.",
        "\"src/tags.rs\"",
    ),
    param(
        "start_line",
        LINE,
        "1",
        "First line of the range to match.",
        "1",
    ),
    param(
        "end_line",
        LINE,
        "the last",
        "Last line of the range, inclusive.",
        "3",
    ),
    param("k", Kind::K, "10", "How many related chunks.", "5"),
    REPO_ONE,
    max_tokens("8000"),
];

/// Every operation: its REST path, its MCP tool and its parameters.
pub const OPERATIONS: &[(&str, &str, &[Param])] = &[
    ("/v1/search", "search_code", SEARCH),
    ("/v1/file", "read_file", FILE),
    ("/v1/grep", "grep", GREP),
    ("/v1/definitions", "find_definitions", DEFINITIONS),
    ("/v1/references", "find_references", REFERENCES),
    ("/v1/files", "list_files", LIST_FILES),
    ("/v1/outline", "outline", OUTLINE),
    ("/v1/related", "find_related", RELATED),
    ("/v1/changes", "changes", CHANGES),
    ("/v1/repos", "list_repositories", REPOSITORIES),
];

/// `doc` with each generated block (between `<!-- generated: KEY -->` and
/// `<!-- /generated -->`) replaced by `fill(KEY)`; an error names a key
/// `fill` does not know or a block left open.
pub fn fill_generated(doc: &str, fill: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    const OPEN: &str = "<!-- generated: ";
    const CLOSE: &str = "<!-- /generated -->";
    let mut out = String::new();
    let mut rest = doc;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let end_key = after
            .find(" -->")
            .ok_or("a generated block's marker is not closed")?;
        let key = &after[..end_key];
        let body_start = at + OPEN.len() + end_key + " -->".len();
        let close = rest[body_start..]
            .find(CLOSE)
            .ok_or_else(|| format!("generated block '{key}' has no {CLOSE}"))?;
        let filled = fill(key).ok_or_else(|| format!("no generated block is called '{key}'"))?;
        out.push_str(&rest[..body_start]);
        out.push('\n');
        out.push_str(&filled);
        out.push_str(CLOSE);
        rest = &rest[body_start + close + CLOSE.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The generated blocks of docs/api.md: `params /v1/…`, each operation's
/// parameter table.
pub fn api_md_block(key: &str) -> Option<String> {
    let path = key.strip_prefix("params ")?;
    let (_, _, table) = OPERATIONS.iter().find(|(p, _, _)| *p == path)?;
    Some(doc_table(table, &RequestLimits::default()))
}

/// The OpenAPI parameters (`in: query`) of `params` (docs/openapi.json).
pub fn openapi_parameters(params: &[Param], limits: &RequestLimits) -> Value {
    let schema = self::schema(params, limits);
    Value::Array(
        params
            .iter()
            .map(|p| {
                let mut s = schema["properties"][p.name].clone();
                let description = s
                    .as_object_mut()
                    .and_then(|m| m.remove("description"))
                    .unwrap_or_default();
                let description = match p.alias {
                    Some(a) => json!(format!(
                        "{} Also `{a}` in a query string.",
                        description.as_str().unwrap_or_default()
                    )),
                    None => description,
                };
                let mut out = json!({
                    "name": p.name,
                    "in": "query",
                    "schema": s,
                    "description": description,
                });
                if p.required {
                    out["required"] = json!(true);
                }
                if matches!(p.kind, Kind::Names) {
                    // Repeated or comma-separated in a query string.
                    out["schema"] = json!({"type": "array", "items": {"type": "string"}});
                    out["style"] = json!("form");
                    out["explode"] = json!(true);
                }
                out
            })
            .collect(),
    )
}

/// Checked arguments of one operation: names known, types right, numbers
/// in range, required ones present (see [`check`]).
#[derive(Debug, Clone, Default)]
pub struct Args(Map<String, Value>);

impl Args {
    /// The string `name`.
    pub fn text(&self, name: &str) -> Option<String> {
        self.0.get(name).and_then(Value::as_str).map(str::to_string)
    }

    /// The number `name`.
    pub fn int(&self, name: &str) -> Option<u64> {
        self.0.get(name).and_then(Value::as_u64)
    }

    /// The number `name`, or `default`.
    pub fn usize_or(&self, name: &str, default: usize) -> usize {
        self.int(name).map_or(default, |n| n as usize)
    }

    /// The flag `name` (absent: false).
    pub fn flag(&self, name: &str) -> bool {
        self.0.get(name).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The names `name` (one string or a list).
    pub fn names(&self, name: &str) -> Vec<String> {
        match self.0.get(name) {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether `name` was given.
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// `max_tokens`, or `default`.
    pub fn max_tokens(&self, default: usize) -> usize {
        self.usize_or("max_tokens", default)
    }

    /// Sets `name` when it was not given (a surface's own default).
    pub fn or_insert(&mut self, name: &str, value: Value) {
        self.0.entry(name).or_insert(value);
    }
}

fn names_of(params: &[Param]) -> String {
    params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

fn find<'a>(params: &'a [Param], name: &str, alias: bool) -> Result<&'a Param, ApiError> {
    params
        .iter()
        .find(|p| p.name == name || (alias && p.alias == Some(name)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown parameter '{}'; known: {}",
                name.chars().take(64).collect::<String>(),
                if params.is_empty() {
                    "none".into()
                } else {
                    names_of(params)
                }
            ))
        })
}

/// Checks JSON arguments (an MCP tool's, a POST body's) against `params`.
pub fn check(
    args: Map<String, Value>,
    params: &[Param],
    limits: &RequestLimits,
) -> Result<Args, ApiError> {
    let mut checked = Map::new();
    for (name, value) in args {
        let p = find(params, &name, false)?;
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
            Kind::Int { .. } | Kind::K => {
                let (min, max) = bounds(p.kind, limits);
                match value.as_u64() {
                    Some(n) if (min..=max).contains(&n) => true,
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "{name} must be a whole number from {min} to {max}, not {}",
                            short(&value)
                        )));
                    }
                }
            }
        };
        if !ok {
            return Err(ApiError::bad_request(match (p.kind, value.as_str()) {
                (Kind::Choice(choices), Some(v)) => format!(
                    "unknown {name} '{}': {name} must be one of {}",
                    v.chars().take(48).collect::<String>(),
                    choices.join(", ")
                ),
                _ => format!(
                    "{name} must be {}, not {}",
                    expected(p.kind, limits),
                    short(&value)
                ),
            }));
        }
        checked.insert(name, value);
    }
    for p in params.iter().filter(|p| p.required) {
        if !checked.contains_key(p.name) {
            return Err(ApiError::bad_request(format!(
                "{} is required: {}",
                p.name, p.about
            )));
        }
    }
    Ok(Args(checked))
}

fn bounds(kind: Kind, limits: &RequestLimits) -> (u64, u64) {
    match kind {
        Kind::Int { min, max } => (min, max),
        _ => (1, limits.max_k as u64),
    }
}

fn expected(kind: Kind, limits: &RequestLimits) -> String {
    match kind {
        Kind::Text => "a string".into(),
        Kind::Bool => "true or false".into(),
        Kind::Names => "a string or a list of strings".into(),
        Kind::Choice(c) => format!("one of {}", c.join(", ")),
        Kind::Int { .. } | Kind::K => {
            let (min, max) = bounds(kind, limits);
            format!("a whole number from {min} to {max}")
        }
    }
}

fn short(value: &Value) -> String {
    value.to_string().chars().take(48).collect()
}

/// A JSON request body (`POST /v1/search`) as arguments of `params`.
pub fn from_body(body: &[u8], params: &[Param], limits: &RequestLimits) -> Result<Args, ApiError> {
    if std::str::from_utf8(body).is_err() {
        return Err(ApiError::bad_request("the request body is not valid UTF-8"));
    }
    let parsed: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let Value::Object(map) = parsed else {
        return Err(ApiError::bad_request(format!(
            "invalid JSON body: expected an object with {}",
            names_of(params)
        )));
    };
    check(map, params, limits)
}

/// A query string as arguments of `params` (a parameter's alias is
/// accepted too), then [`check`]ed.
pub fn from_query(
    query: Option<&str>,
    params: &[Param],
    limits: &RequestLimits,
) -> Result<Args, ApiError> {
    let mut args = Map::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = decode(name, "a parameter name")?;
        let p = find(params, &name, true)?;
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
                    "parameter '{}' is given twice",
                    p.name
                )));
            }
            Kind::Int { .. } | Kind::K => match value.trim().parse::<u64>() {
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
    check(args, params, limits)
}

/// Percent-decodes one query-string component (`+` is a space); invalid
/// UTF-8 after decoding is refused, not replaced.
fn decode(raw: &str, what: &str) -> Result<String, ApiError> {
    percent_encoding::percent_decode_str(&raw.replace('+', " "))
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| {
            ApiError::bad_request(format!("{what} is not valid UTF-8 after percent-decoding"))
        })
}

/// The JSON Schema of `params` (an MCP tool's `inputSchema`).
pub fn schema(params: &[Param], limits: &RequestLimits) -> Value {
    let mut properties = Map::new();
    for p in params {
        let mut s = match p.kind {
            Kind::Text => json!({"type": "string"}),
            Kind::Bool => json!({"type": "boolean"}),
            Kind::Int { .. } | Kind::K => {
                let (min, max) = bounds(p.kind, limits);
                json!({"type": "integer", "minimum": min, "maximum": max})
            }
            Kind::Names => json!({
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]
            }),
            Kind::Choice(c) => json!({"type": "string", "enum": c}),
        };
        let about = if p.default.is_empty() {
            p.about.to_string()
        } else {
            format!("{} Default: {}.", p.about, p.default)
        };
        s["description"] = json!(about);
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

/// The markdown table of `params` docs/api.md shows for one endpoint.
pub fn doc_table(params: &[Param], limits: &RequestLimits) -> String {
    let mut out = String::from("| parameter | type | default | meaning |\n|---|---|---|---|\n");
    for p in params {
        let name = match p.alias {
            Some(a) => format!("`{}` (query string: also `{a}`)", p.name),
            None => format!("`{}`", p.name),
        };
        let kind = match p.kind {
            Kind::Text => "string".to_string(),
            Kind::Bool => "`true`/`false`".to_string(),
            Kind::Names => "name or list (query string: repeated or comma-separated)".to_string(),
            Kind::Choice(c) => c
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", "),
            Kind::Int { .. } => {
                let (min, max) = bounds(p.kind, limits);
                format!("integer {min}..{max}")
            }
            Kind::K => "integer 1..`max_k` (100)".to_string(),
        };
        let kind = if p.required {
            format!("{kind}, required")
        } else {
            kind
        };
        let default = if p.required { "—" } else { p.default };
        out.push_str(&format!("| {name} | {kind} | {default} | {} |\n", p.about));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> RequestLimits {
        RequestLimits::default()
    }

    #[test]
    fn query_strings_and_json_are_checked_by_one_table() {
        let a = from_query(
            Some("pattern=fn+main&regex=true&limit=5&repo=a,b&repo=c"),
            GREP,
            &limits(),
        )
        .unwrap();
        assert_eq!(a.text("pattern").as_deref(), Some("fn main"));
        assert!(a.flag("regex"));
        assert_eq!(a.int("limit"), Some(5));
        assert_eq!(a.names("repo"), ["a", "b", "c"]);
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
            let e = from_query(Some(q), GREP, &limits()).unwrap_err().message;
            assert!(e.contains(says), "{q}: {e}");
        }
        let args: Map<String, Value> = serde_json::from_str(r#"{"path": 3}"#).unwrap();
        let e = check(args, FILE, &limits()).unwrap_err().message;
        assert!(e.contains("path must be a string, not 3"), "{e}");
        let args: Map<String, Value> =
            serde_json::from_str(r#"{"query": "x", "mode": "fuzzy"}"#).unwrap();
        let e = check(args, SEARCH, &limits()).unwrap_err().message;
        assert!(e.contains("one of hybrid, semantic, lexical"), "{e}");
        let s = schema(FILE, &limits());
        assert_eq!(s["required"], json!(["path"]));
        assert_eq!(s["properties"]["start_line"]["type"], "integer");
    }

    #[test]
    fn k_is_bounded_by_the_servers_max_k_in_the_schema_and_the_check() {
        let tight = RequestLimits {
            max_k: 7,
            ..limits()
        };
        assert_eq!(schema(SEARCH, &tight)["properties"]["k"]["maximum"], 7);
        let args: Map<String, Value> = serde_json::from_str(r#"{"query": "x", "k": 8}"#).unwrap();
        let e = check(args, SEARCH, &tight).unwrap_err().message;
        assert!(e.contains("k must be a whole number from 1 to 7"), "{e}");
        let ok = from_query(Some("q=x&k=7&lang=rust"), SEARCH, &tight).unwrap();
        assert_eq!(ok.text("query").as_deref(), Some("x"));
        assert_eq!(ok.names("language"), ["rust"]);
    }

    #[test]
    fn every_example_passes_its_own_check() {
        for table in [
            SEARCH,
            FILE,
            GREP,
            DEFINITIONS,
            REPOSITORIES,
            LIST_FILES,
            OUTLINE,
            REFERENCES,
            CHANGES,
            RELATED,
        ] {
            let mut args = Map::new();
            for p in table {
                let v: Value = serde_json::from_str(p.example).unwrap();
                args.insert(p.name.to_string(), v);
            }
            check(args, table, &limits()).unwrap();
        }
    }

    fn doc(name: &str) -> (std::path::PathBuf, String) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../docs")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    /// docs/api.md's parameter tables are written from the tables
    /// (`SHELF_UPDATE_DOCS=1 cargo test --workspace docs_api_md` rewrites
    /// them), and every operation has one.
    #[test]
    fn docs_api_md_parameter_tables_come_from_the_tables() {
        let (path, text) = doc("api.md");
        for (op, _, _) in OPERATIONS {
            assert!(
                text.contains(&format!("<!-- generated: params {op} -->")),
                "docs/api.md has no parameter table for {op}"
            );
        }
        let filled = fill_generated(&text, api_md_block).unwrap();
        if filled != text {
            if std::env::var_os("SHELF_UPDATE_DOCS").is_some() {
                std::fs::write(&path, filled).unwrap();
            } else {
                panic!(
                    "docs/api.md's parameter tables differ from server/src/ops/params.rs; SHELF_UPDATE_DOCS=1 cargo test --workspace docs_api_md rewrites them"
                );
            }
        }
    }

    /// A JSON value as a query string writes it.
    fn query_value(v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .map(|x| x.as_str().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        }
    }

    /// Every parameter docs/api.md documents for an endpoint is accepted
    /// by its REST route (query string) and by its MCP tool (JSON
    /// arguments), with the table's example value.
    #[test]
    fn every_parameter_documented_in_api_md_is_accepted_by_rest_and_mcp() {
        let (_, text) = doc("api.md");
        let mut checked = 0;
        for (op, _, table) in OPERATIONS {
            let marker = format!("<!-- generated: params {op} -->");
            let block = text.split(&marker).nth(1).unwrap();
            let block = block.split("<!-- /generated -->").next().unwrap();
            for row in block.lines().filter(|l| l.starts_with("| `")) {
                let name = row.split('`').nth(1).unwrap();
                let p = table.iter().find(|p| p.name == name).unwrap_or_else(|| {
                    panic!("{op}: docs/api.md documents '{name}', which the table does not have")
                });
                let mut json_args = Map::new();
                let mut query = Vec::new();
                for q in table.iter().filter(|q| q.required || q.name == name) {
                    let v: Value = serde_json::from_str(q.example).unwrap();
                    query.push(format!(
                        "{}={}",
                        q.name,
                        percent_encoding::utf8_percent_encode(
                            &query_value(&v),
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ));
                    json_args.insert(q.name.to_string(), v);
                }
                let rest = from_query(Some(&query.join("&")), table, &limits());
                assert!(rest.is_ok(), "{op} refuses {name}: {:?}", rest.err());
                let mcp = check(json_args, table, &limits());
                assert!(
                    mcp.is_ok(),
                    "the tool of {op} refuses {}: {:?}",
                    p.name,
                    mcp.err()
                );
                checked += 1;
            }
        }
        assert!(
            checked >= 40,
            "only {checked} parameters found in docs/api.md"
        );
    }

    /// docs/openapi.json: every operation's `GET` parameters are its
    /// table's, and the answers of the 1.5 endpoints are the answer types'
    /// schemas (`SHELF_UPDATE_DOCS=1 cargo test --workspace docs_openapi`
    /// rewrites them).
    #[test]
    fn docs_openapi_parameters_and_new_answers_come_from_the_types() {
        use schemars::JsonSchema;
        use shelf_search::changes::ChangesAnswer;
        use shelf_search::listing::{ListAnswer, OutlineAnswer};
        use shelf_search::references::ReferencesAnswer;
        use shelf_search::related::RelatedAnswer;

        let (path, text) = doc("openapi.json");
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut generator = schemars::generate::SchemaSettings::draft2020_12()
            .with(|s| {
                s.definitions_path = "/components/schemas".into();
                s.meta_schema = None;
            })
            .for_serialize()
            .into_generator();
        fn answer<T: JsonSchema>(g: &mut schemars::SchemaGenerator) -> Value {
            serde_json::to_value(g.subschema_for::<T>()).unwrap()
        }
        let new: Vec<(&str, &str, Value)> = vec![
            (
                "/v1/references",
                "Where a symbol is used (since 1.5)",
                answer::<ReferencesAnswer>(&mut generator),
            ),
            (
                "/v1/files",
                "Files under a directory or matching a glob (since 1.5)",
                answer::<ListAnswer>(&mut generator),
            ),
            (
                "/v1/outline",
                "A file's definitions (since 1.5)",
                answer::<OutlineAnswer>(&mut generator),
            ),
            (
                "/v1/related",
                "The chunks most like a file's lines (since 1.5)",
                answer::<RelatedAnswer>(&mut generator),
            ),
            (
                "/v1/changes",
                "What changed between two indexed versions (since 1.5)",
                answer::<ChangesAnswer>(&mut generator),
            ),
        ];
        let mut want = doc.clone();
        want["info"]["version"] = json!("1.6.0");
        for (op, summary, schema) in new {
            want["paths"][op] = json!({"get": {
                "operationId": op.trim_start_matches("/v1/"),
                "summary": summary,
                "responses": {
                    "200": {"description": "The answer", "content": {"application/json": {"schema": schema}}},
                    "400": {"$ref": "#/components/responses/Error"},
                    "401": {"$ref": "#/components/responses/Error"},
                    "404": {"$ref": "#/components/responses/Error"},
                    "503": {"$ref": "#/components/responses/Error"},
                },
            }});
        }
        for (name, schema) in generator.definitions() {
            // The hand-written components of 1.4 (BundleRef, Truncation,
            // …) describe the same types; only what is missing is added.
            if want["components"]["schemas"].get(name).is_none() {
                want["components"]["schemas"][name] = schema.clone();
            }
        }
        for (op, _, table) in OPERATIONS {
            want["paths"][op]["get"]["parameters"] = openapi_parameters(table, &limits());
        }
        if want != doc {
            if std::env::var_os("SHELF_UPDATE_DOCS").is_some() {
                std::fs::write(&path, serde_json::to_string_pretty(&want).unwrap() + "\n").unwrap();
            } else {
                panic!(
                    "docs/openapi.json differs from the parameter tables and answer types; SHELF_UPDATE_DOCS=1 cargo test --workspace docs_openapi rewrites it"
                );
            }
        }
    }
}
