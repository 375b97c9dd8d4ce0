//! The MCP tools: one row per operation of [`crate::ops`], its parameters
//! the operation's table ([`crate::ops::params`], the `inputSchema`), its
//! `outputSchema` derived from the answer type the operation returns
//! (`structuredContent` is that answer serialised), and a text rendering
//! an assistant reads.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value, json};
use shelf_search::changes::ChangesAnswer;
use shelf_search::files::{DefinitionsAnswer, FileAnswer, GrepAnswer};
use shelf_search::listing::{ListAnswer, OutlineAnswer};
use shelf_search::references::ReferencesAnswer;
use shelf_search::related::RelatedAnswer;
use shelf_search::{Answer, BundleRef, RequestLimits, ResultChunk};

use crate::error::ApiError;
use crate::guard::Scope;
use crate::ops::params::{self, Param};
use crate::ops::repos::RepoList;
use crate::ops::{self, Api, Args};

/// One tool: its name, what it does, its parameters and its answer's type.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The name a client calls.
    pub name: &'static str,
    /// A title for people.
    pub title: &'static str,
    /// What it does, for the model.
    pub description: &'static str,
    /// Its parameters.
    pub params: &'static [Param],
    /// Its answer's JSON Schema.
    pub output: fn() -> Value,
}

/// `T`'s schema as it serialises (a field skipped when empty is not
/// required), which is what `structuredContent` is checked against.
fn schema_of<T: JsonSchema>() -> Value {
    let schema = schemars::generate::SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>();
    let mut s = serde_json::to_value(schema).unwrap_or_default();
    // A tool's outputSchema is an object schema; the dialect line is noise
    // to a client.
    if let Value::Object(m) = &mut s {
        m.remove("$schema");
    }
    s
}

/// Every tool, in the order `tools/list` shows them.
pub const TOOLS: &[Tool] = &[
    Tool {
        name: "search_code",
        title: "Search code",
        description: "Search the served repositories by meaning and by words (hybrid of embeddings and BM25). Returns ranked chunks (repo, path, start_line, end_line, score, text) and the bundle (commit, tag, age) that answered. Default max_tokens 8000.",
        params: params::SEARCH,
        output: schema_of::<Answer>,
    },
    Tool {
        name: "read_file",
        title: "Read a file",
        description: "The exact text of a file at the indexed commit, whole or a line range: open any path search_code, grep or find_definitions names. Default max_tokens 16000; a longer range is cut at a line and says where to continue.",
        params: params::FILE,
        output: schema_of::<FileAnswer>,
    },
    Tool {
        name: "grep",
        title: "Grep",
        description: "Exact or regular-expression search over every indexed file at the indexed commit, line by line (linear-time regex). Returns matching lines with path and line number. Default limit 50, max_tokens 4000.",
        params: params::GREP,
        output: schema_of::<GrepAnswer>,
    },
    Tool {
        name: "find_definitions",
        title: "Find definitions",
        description: "Where a symbol (function, method, class, struct, trait, interface, type, constant) is defined, from the definition lines the indexer recognises. Default limit 50, max_tokens 4000.",
        params: params::DEFINITIONS,
        output: schema_of::<DefinitionsAnswer>,
    },
    Tool {
        name: "find_references",
        title: "Find references",
        description: "Where a symbol is used (calls, mentions), its definitions listed apart, ranked: source before tests and docs, then files that use it most. Default limit 50, max_tokens 4000.",
        params: params::REFERENCES,
        output: schema_of::<ReferencesAnswer>,
    },
    Tool {
        name: "list_files",
        title: "List files",
        description: "The indexed files under a directory (one level by default; depth for more) or matching a glob (src/**/*.rs), with sizes, lines and languages: a repository's layout before reading. Default limit 500, max_tokens 4000.",
        params: params::LIST_FILES,
        output: schema_of::<ListAnswer>,
    },
    Tool {
        name: "outline",
        title: "Outline a file",
        description: "A file's definitions in line order (kind, name, start and end line, nesting): what a file holds before reading it, and which line range to read. Default max_tokens 4000.",
        params: params::OUTLINE,
        output: schema_of::<OutlineAnswer>,
    },
    Tool {
        name: "find_related",
        title: "Find related code",
        description: "The chunks of other files most like a file's lines (by embedding): similar implementations, the tests of a function, code to change alongside. Default k 10, max_tokens 8000.",
        params: params::RELATED,
        output: schema_of::<RelatedAnswer>,
    },
    Tool {
        name: "changes",
        title: "Changes between versions",
        description: "What changed between two indexed versions of one repository, each named by a tag (v1.2.0) or a bundle digest: files added, removed and changed; with path, that file's unified diff. to defaults to the live bundle. Default limit 500, max_tokens 8000.",
        params: params::CHANGES,
        output: schema_of::<ChangesAnswer>,
    },
    Tool {
        name: "list_repositories",
        title: "List repositories",
        description: "The repositories this server answers for: name, status, and the live bundle (digest, tag, commit, files, chunks, age). Default max_tokens 4000.",
        params: params::REPOSITORIES,
        output: schema_of::<RepoList>,
    },
];

/// The tool called `name`.
pub fn find(name: &str) -> Option<&'static Tool> {
    TOOLS.iter().find(|t| t.name == name)
}

/// A tool as `tools/list` shows it.
pub fn describe(t: &Tool, limits: &RequestLimits) -> Value {
    json!({
        "name": t.name,
        "title": t.title,
        "description": t.description,
        "inputSchema": params::schema(t.params, limits),
        "outputSchema": (t.output)(),
        "annotations": { "readOnlyHint": true, "openWorldHint": false, "idempotentHint": true },
    })
}

/// What a tool answered: its text and its structured answer.
pub type Rendered = (String, Value);

fn rendered<T: Serialize>(text: String, answer: &T) -> Result<Rendered, ApiError> {
    let value = serde_json::to_value(answer)
        .map_err(|e| ApiError::internal(format!("encoding the answer: {e}")))?;
    Ok((text, value))
}

/// Runs `tool` with `arguments` as `scope` may see: the operation's
/// answer rendered, or why it failed.
pub async fn call(
    api: &Api,
    scope: &Scope,
    tool: &Tool,
    arguments: Map<String, Value>,
) -> Result<Rendered, ApiError> {
    let mut args: Args = params::check(arguments, tool.params, &api.request_limits())?;
    match tool.name {
        "search_code" => {
            // REST answers whole unless asked; an assistant's answer is
            // bounded by default.
            args.or_insert("max_tokens", json!(params::SEARCH_MAX_TOKENS));
            let a = ops::search(api, scope, &args).await?;
            rendered(render_search(&a), &a)
        }
        "read_file" => {
            let a = ops::read_file(api, scope, &args).await?;
            rendered(render_file(&a), &a)
        }
        "grep" => {
            let a = ops::grep(api, scope, &args).await?;
            rendered(render_grep(&a), &a)
        }
        "find_definitions" => {
            let a = ops::definitions(api, scope, &args).await?;
            rendered(render_definitions(&a), &a)
        }
        "find_references" => {
            let a = ops::references(api, scope, &args).await?;
            rendered(render_references(&a), &a)
        }
        "list_files" => {
            let a = ops::list_files(api, scope, &args).await?;
            rendered(render_list(&a), &a)
        }
        "outline" => {
            let a = ops::outline(api, scope, &args).await?;
            rendered(render_outline(&a), &a)
        }
        "find_related" => {
            let a = ops::related(api, scope, &args).await?;
            rendered(render_related(&a), &a)
        }
        "changes" => {
            let a = ops::changes(api, scope, &args).await?;
            rendered(render_changes(&a), &a)
        }
        _ => {
            args.or_insert("max_tokens", json!(params::LIST_MAX_TOKENS));
            let a = ops::repos::repositories(api, scope, &args);
            rendered(render_repos(&a), &a)
        }
    }
}

/// `repo @ commit (tag t), committed <time> (<n> days ago)`.
fn bundle(b: &BundleRef) -> String {
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

fn bundles(list: &[BundleRef]) -> String {
    list.iter().map(bundle).collect::<Vec<_>>().join("; ")
}

fn age(seconds: u64) -> String {
    match seconds {
        s if s < 3600 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}

fn truncated(out: &mut String, t: &Option<shelf_search::budget::Truncation>) {
    if let Some(t) = t {
        out.push_str(&format!("[truncated: {}]\n", t.detail));
    }
}

fn not_scanned(out: &mut String, repos: &[String]) {
    if !repos.is_empty() {
        out.push_str(&format!(
            "[not scanned, bundles predate file texts: {}]\n",
            repos.join(", ")
        ));
    }
}

fn chunk(out: &mut String, c: &ResultChunk) {
    out.push_str(&format!(
        "\n{}. {}:{}:{}-{} (score {:.3})\n```{}\n{}\n```\n",
        c.rank,
        c.repo,
        c.path,
        c.start_line,
        c.end_line,
        c.score,
        c.language.unwrap_or(""),
        c.text.trim_end_matches('\n')
    ));
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
        bundles(&a.repos)
    );
    let chunks: Vec<_> = match (&a.results, &a.files) {
        (Some(r), _) => r.iter().collect(),
        (_, Some(f)) => f.iter().flat_map(|f| f.chunks.iter()).collect(),
        _ => Vec::new(),
    };
    for c in chunks {
        chunk(&mut out, c);
    }
    if a.truncated.is_some() {
        out.push('\n');
    }
    truncated(&mut out, &a.truncated);
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
        bundle(&a.bundle),
        a.language.unwrap_or(""),
        a.text.trim_end_matches('\n')
    );
    truncated(&mut out, &a.truncated);
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
        bundles(&a.repos)
    );
    for m in &a.matches {
        out.push_str(&format!("{}:{}:{}: {}\n", m.repo, m.path, m.line, m.text));
    }
    not_scanned(&mut out, &a.not_scanned);
    truncated(&mut out, &a.truncated);
    out
}

fn render_definitions(a: &DefinitionsAnswer) -> String {
    let mut out = format!(
        "{} definitions of '{}' in {}\n",
        a.definitions.len(),
        a.name,
        bundles(&a.repos)
    );
    for d in &a.definitions {
        out.push_str(&format!("{}:{}:{}: {}\n", d.repo, d.path, d.line, d.text));
    }
    truncated(&mut out, &a.truncated);
    out
}

fn render_references(a: &ReferencesAnswer) -> String {
    let mut out = format!(
        "{} uses of '{}' in {} files ({} scanned) in {}\n",
        a.total_references,
        a.name,
        a.files_matched,
        a.files_scanned,
        bundles(&a.repos)
    );
    for d in &a.definitions {
        out.push_str(&format!(
            "defined at {}:{}:{}: {}\n",
            d.repo, d.path, d.line, d.text
        ));
    }
    for r in &a.references {
        out.push_str(&format!("{}:{}:{}: {}\n", r.repo, r.path, r.line, r.text));
    }
    not_scanned(&mut out, &a.not_scanned);
    truncated(&mut out, &a.truncated);
    out
}

fn render_list(a: &ListAnswer) -> String {
    let shown = if a.path.is_empty() { "/" } else { &a.path };
    let mut out = format!(
        "{} of {} entries {} '{}' ({} files) in {}\n",
        a.entries.len(),
        a.total_entries,
        if a.glob { "matching" } else { "under" },
        shown,
        a.total_files,
        bundles(&a.repos)
    );
    for e in &a.entries {
        let what = match (e.kind, e.files, e.lines) {
            ("dir", Some(n), _) => format!("{n} files, {} bytes", e.size),
            (_, _, Some(lines)) => format!(
                "{} lines, {} bytes{}",
                lines,
                e.size,
                e.language.map(|l| format!(", {l}")).unwrap_or_default()
            ),
            _ => format!("{} bytes", e.size),
        };
        out.push_str(&format!("{}:{} ({what})\n", e.repo, e.path));
    }
    not_scanned(&mut out, &a.not_scanned);
    truncated(&mut out, &a.truncated);
    out
}

fn render_outline(a: &OutlineAnswer) -> String {
    let mut out = format!(
        "{}:{} ({} lines{}): {} definitions, from {}\n",
        a.repo,
        a.path,
        a.total_lines,
        a.language.map(|l| format!(", {l}")).unwrap_or_default(),
        a.symbols.len(),
        bundle(&a.bundle)
    );
    for s in &a.symbols {
        out.push_str(&format!(
            "{}{} {} (lines {}-{})\n",
            "  ".repeat(s.depth as usize),
            s.kind,
            s.name,
            s.line,
            s.end_line
        ));
    }
    truncated(&mut out, &a.truncated);
    out
}

fn render_related(a: &RelatedAnswer) -> String {
    let mut out = format!(
        "{} chunks like {}:{}:{}-{} (from {} of its chunks) in {}\n",
        a.results.len(),
        a.repo,
        a.path,
        a.start_line,
        a.end_line,
        a.query_chunks,
        bundles(&a.repos)
    );
    for c in &a.results {
        chunk(&mut out, c);
    }
    truncated(&mut out, &a.truncated);
    out
}

fn render_changes(a: &ChangesAnswer) -> String {
    let mut out = format!(
        "{}: {} added, {} removed, {} changed, {} unchanged from {} to {}\n",
        a.repo,
        a.added,
        a.removed,
        a.changed,
        a.unchanged,
        bundle(&a.from),
        bundle(&a.to)
    );
    if let Some(d) = &a.diff {
        out.push_str(&format!(
            "{} ({}, +{} -{})\n```diff\n{}```\n",
            d.path, d.status, d.added_lines, d.removed_lines, d.diff
        ));
    } else {
        for f in &a.files {
            out.push_str(&format!("{} {}\n", f.status, f.path));
        }
    }
    truncated(&mut out, &a.truncated);
    out
}

fn render_repos(list: &RepoList) -> String {
    let mut text = String::new();
    for r in &list.repos {
        text.push_str(&format!("{} [{}]", r.name, r.status));
        match &r.live {
            None => text.push_str(&format!(
                ": nothing live ({})\n",
                r.reason.as_deref().unwrap_or("not loaded yet")
            )),
            Some(live) => text.push_str(&format!(
                " {} @ {} (tag {}), built from the commit of {}, {} files, {} chunks\n",
                live.digest,
                live.commit.get(..12).unwrap_or(&live.commit),
                live.tag.as_deref().unwrap_or("none"),
                live.built_at,
                live.files,
                live.chunks
            )),
        }
    }
    if text.is_empty() {
        text = "no repository is served".into();
    }
    truncated(&mut text, &list.truncated);
    text
}

/// The generated block of docs/clients.md (`tools`): each tool's call, its
/// parameters from its table (`?`: optional), and what it is for.
pub fn clients_md_block(key: &str) -> Option<String> {
    if key != "tools" {
        return None;
    }
    let mut out = String::from("| tool | what for |\n|---|---|\n");
    for t in TOOLS {
        let args: Vec<String> = t
            .params
            .iter()
            .map(|p| {
                if p.required {
                    p.name.to_string()
                } else {
                    format!("{}?", p.name)
                }
            })
            .collect();
        let what = t
            .description
            .split_once(". ")
            .map_or(t.description, |(first, _)| first);
        out.push_str(&format!(
            "| `{}({})` | {} |\n",
            t.name,
            args.join(", "),
            what.trim_end_matches('.')
        ));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::params::{OPERATIONS, fill_generated};

    fn clients_md() -> (std::path::PathBuf, String) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/clients.md");
        let text = std::fs::read_to_string(&path).unwrap();
        (path, text)
    }

    /// docs/clients.md's tool list is written from the tools' tables
    /// (`SHELF_UPDATE_DOCS=1 cargo test --workspace docs_clients_md`
    /// rewrites it).
    #[test]
    fn docs_clients_md_tool_list_comes_from_the_tables() {
        let (path, text) = clients_md();
        assert!(text.contains("<!-- generated: tools -->"));
        let filled = fill_generated(&text, clients_md_block).unwrap();
        if filled != text {
            if std::env::var_os("SHELF_UPDATE_DOCS").is_some() {
                std::fs::write(&path, filled).unwrap();
            } else {
                panic!(
                    "docs/clients.md's tool list differs from server/src/mcp/tools.rs; SHELF_UPDATE_DOCS=1 cargo test --workspace docs_clients_md rewrites it"
                );
            }
        }
    }

    /// Every example call in docs/clients.md ("What an assistant sends")
    /// names a tool and arguments its MCP tool accepts, and so does the
    /// tool's REST twin; every tool has one.
    #[test]
    fn every_example_in_clients_md_is_accepted_by_mcp_and_rest() {
        let (_, text) = clients_md();
        let section = text
            .split("### What an assistant sends")
            .nth(1)
            .expect("docs/clients.md has a section 'What an assistant sends'");
        let limits = RequestLimits::default();
        let mut seen = std::collections::BTreeSet::new();
        for row in section.lines().take_while(|l| !l.starts_with("## ")) {
            let Some(rest) = row.strip_prefix("| `") else {
                continue;
            };
            let (name, rest) = rest.split_once('`').unwrap();
            let json = rest
                .split_once("| `")
                .unwrap()
                .1
                .rsplit_once("` |")
                .unwrap()
                .0;
            let tool = find(name).unwrap_or_else(|| panic!("clients.md: no tool '{name}'"));
            let args: Map<String, Value> = serde_json::from_str(json)
                .unwrap_or_else(|e| panic!("clients.md, {name}: {e}: {json}"));
            let query: Vec<String> = args
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::String(s) => s.clone(),
                        Value::Array(a) => a
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        other => other.to_string(),
                    };
                    format!(
                        "{k}={}",
                        percent_encoding::utf8_percent_encode(
                            &v,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    )
                })
                .collect();
            let mcp = params::check(args, tool.params, &limits);
            assert!(mcp.is_ok(), "clients.md, {name} {json}: {:?}", mcp.err());
            let (_, _, table) = OPERATIONS.iter().find(|(_, t, _)| *t == name).unwrap();
            let rest = params::from_query(Some(&query.join("&")), table, &limits);
            assert!(
                rest.is_ok(),
                "clients.md, {name} {json} over REST: {:?}",
                rest.err()
            );
            seen.insert(name.to_string());
        }
        let all: std::collections::BTreeSet<String> =
            TOOLS.iter().map(|t| t.name.to_string()).collect();
        assert_eq!(seen, all, "every tool has an example in clients.md");
    }

    /// Each tool's parameters are its operation's, so REST and MCP cannot
    /// disagree on what they accept.
    #[test]
    fn every_tool_takes_its_operations_table() {
        assert_eq!(TOOLS.len(), OPERATIONS.len());
        for (_, name, table) in OPERATIONS {
            let tool = find(name).unwrap();
            assert_eq!(format!("{:?}", tool.params), format!("{table:?}"), "{name}");
        }
    }

    /// Snapshots of every tool's input and output schema, one file per
    /// tool under server/toolsnaps/ (a change to what a client sees shows
    /// in review; `SHELF_UPDATE_DOCS=1 cargo test --workspace toolsnaps`
    /// rewrites them), and no file for a tool that is gone.
    #[test]
    fn toolsnaps_match_every_tools_schemas() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("toolsnaps");
        let update = std::env::var_os("SHELF_UPDATE_DOCS").is_some();
        if update {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let limits = RequestLimits::default();
        let mut stale = Vec::new();
        for t in TOOLS {
            let snap = describe(t, &limits);
            let text = serde_json::to_string_pretty(&snap).unwrap() + "\n";
            let path = dir.join(format!("{}.json", t.name));
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                if update {
                    std::fs::write(&path, &text).unwrap();
                } else {
                    stale.push(t.name);
                }
            }
        }
        assert!(
            stale.is_empty(),
            "the schemas of {stale:?} differ from server/toolsnaps/; review, then SHELF_UPDATE_DOCS=1 cargo test --workspace toolsnaps"
        );
        for entry in std::fs::read_dir(&dir).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            let tool = name.strip_suffix(".json").unwrap_or(&name);
            assert!(
                find(tool).is_some(),
                "server/toolsnaps/{name} is of no tool"
            );
        }
    }
}
