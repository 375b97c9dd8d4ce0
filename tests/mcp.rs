//! The Model Context Protocol as assistants speak it: the official Python
//! SDK (`mcp`, hash-pinned in scripts/test-requirements.lock) drives the
//! real binary over stdio (`shelf mcp --bundle`, and `shelf mcp --server`
//! relaying to a server) and over streamable HTTP (`POST /mcp` on `shelf
//! serve`, behind search tokens). Every tool is called; bad arguments are
//! tool errors naming what was wrong, never protocol failures; the REST
//! twins answer the same; a bundle from before file texts says so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use shelf_formats::manifest::members;
use shelf_testkit::cli::{self, Built};
use shelf_testkit::http::{self, encode};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::{GitRepo, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const READY: Duration = Duration::from_secs(60);
const TOKEN: &str = "mcp-test-token-0123456789abcdef";
const TAGS_RS: &str = "src/tags.rs";

fn shelf() -> &'static Path {
    Path::new(SHELF)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn runtime() -> PathBuf {
    std::env::var_os("SHELF_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".runtime"))
}

fn python() -> PathBuf {
    let bin = runtime().join("moto-venv/bin/python");
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-test-services",
        bin.display()
    );
    bin
}

/// The sample repository, built once for every test here.
struct Fixture {
    repo: GitRepo,
    built: Built,
    _out: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let repo = sample_repo();
        let out = tempfile::tempdir().unwrap();
        let built = cli::build(shelf(), &repo, out.path());
        Fixture {
            repo,
            built,
            _out: out,
        }
    })
}

fn commit(f: &Fixture) -> String {
    f.built.report["commit"].as_str().unwrap().to_string()
}

/// Runs the Python SDK client against `transport` with `calls`; its report.
fn sdk(transport: Value, calls: &[Value]) -> Value {
    let mut doc = transport;
    doc["calls"] = Value::Array(calls.to_vec());
    run_client(
        Command::new(python()).arg(root().join("tests/support/mcp_client.py")),
        &doc,
    )
}

/// The TypeScript client's packages (scripts/setup-test-services).
fn node_modules() -> PathBuf {
    let dir = runtime().join("mcp-node/node_modules");
    assert!(
        dir.join("@modelcontextprotocol/client/package.json")
            .exists(),
        "{} has no @modelcontextprotocol/client: run scripts/setup-test-services",
        dir.display()
    );
    dir
}

/// Runs the TypeScript v2 client (pinned to 2026-07-28) against
/// `transport` with `calls`, then lists resources and reads `reads`.
fn ts_sdk(transport: Value, calls: &[Value], reads: &[&str]) -> Value {
    let mut doc = transport;
    doc["calls"] = Value::Array(calls.to_vec());
    doc["resources"] = json!(reads);
    doc["modules"] = json!(node_modules());
    let mut node = Command::new("node");
    node.arg(root().join("tests/support/mcp_client.mjs"));
    run_client(&mut node, &doc)
}

/// Runs a client script on a spec file holding `doc`; the JSON it printed.
fn run_client(command: &mut Command, doc: &Value) -> Value {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("spec.json");
    std::fs::write(&spec, serde_json::to_vec(doc).unwrap()).unwrap();
    let out = command.arg(&spec).output().unwrap_or_else(|e| {
        panic!(
            "{:?} does not run ({e}): run scripts/setup-test-services",
            command.get_program()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The report is the last line (an SDK may print a warning before it).
    let last = stdout.trim().lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn stdio(args: &[&str], env: Value) -> Value {
    json!({"stdio": {
        "command": SHELF,
        "args": args,
        "env": env,
        "cwd": root().display().to_string(),
    }})
}

fn call(tool: &str, args: Value) -> Value {
    json!({"tool": tool, "args": args})
}

/// Good calls, then bad ones; `check_good` and `check_bad` assert on the
/// answers in the same order.
fn good_calls() -> Vec<Value> {
    vec![
        call(
            "search_code",
            json!({"query": "move a tag with compare-and-swap", "k": 3}),
        ),
        call("read_file", json!({"path": TAGS_RS})),
        call(
            "read_file",
            json!({"path": TAGS_RS, "start_line": 2, "end_line": 3}),
        ),
        call("grep", json!({"pattern": "compare-and-swap"})),
        call("grep", json!({"pattern": "fn \\w+_tag", "regex": true})),
        call("find_definitions", json!({"name": "move_tag"})),
        call("list_repositories", json!({})),
        call(
            "search_code",
            json!({"query": "tag", "k": 10, "max_tokens": 64}),
        ),
        call("list_files", json!({"path": "src"})),
        call("list_files", json!({"path": "**/*.py"})),
        call("outline", json!({"path": TAGS_RS})),
        call("find_references", json!({"name": "read_tag"})),
        call("find_related", json!({"path": TAGS_RS, "k": 3})),
    ]
}

fn check_good(f: &Fixture, report: &Value, answers: &[Value]) {
    assert!(report.get("connect_error").is_none(), "{report}");
    let mut names: Vec<&str> = report["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "changes",
            "find_definitions",
            "find_references",
            "find_related",
            "grep",
            "list_files",
            "list_repositories",
            "outline",
            "read_file",
            "search_code"
        ]
    );
    for t in report["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
    }
    for a in answers {
        assert_eq!(a["isError"], false, "{a}");
    }
    let commit = commit(f);
    let tags_rs = std::fs::read_to_string(f.repo.path().join(TAGS_RS)).unwrap();

    // search_code: ranked chunks with the commit and digest that answered.
    let s = &answers[0]["structured"];
    assert_eq!(s["results"][0]["path"], TAGS_RS, "{s}");
    for key in ["repo", "start_line", "end_line", "score", "text"] {
        assert!(!s["results"][0][key].is_null(), "{key}: {s}");
    }
    assert_eq!(s["bundle"]["commit"], commit.as_str());
    assert_eq!(s["bundle"]["digest"], f.built.digest.as_str());
    assert!(s["bundle"]["commit_age_seconds"].is_u64(), "{s}");
    let text = answers[0]["text"].as_str().unwrap();
    assert!(
        text.contains(TAGS_RS) && text.contains(&commit[..12]),
        "{text}"
    );

    // read_file: the exact text at the commit, whole or by lines.
    assert_eq!(answers[1]["structured"]["text"], tags_rs.as_str());
    assert_eq!(
        answers[1]["structured"]["bundle"]["commit"],
        commit.as_str()
    );
    let lines: Vec<&str> = tags_rs.split_inclusive('\n').collect();
    let part = &answers[2]["structured"];
    assert_eq!(part["text"], lines[1..3].concat().as_str(), "{part}");
    assert_eq!(
        (part["start_line"].as_u64(), part["end_line"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(part["total_lines"].as_u64(), Some(lines.len() as u64));

    // grep, literal and regular expression.
    let literal = &answers[3]["structured"];
    assert_eq!(literal["matches"][0]["path"], TAGS_RS, "{literal}");
    assert_eq!(literal["matches"][0]["line"], 1);
    let regex = &answers[4]["structured"];
    assert_eq!(regex["matches"][0]["path"], TAGS_RS, "{regex}");
    assert_eq!(regex["matches"][0]["line"], 2);
    assert_eq!(regex["total_matches"], 1);

    // find_definitions: where the chunker saw it defined.
    let defs = &answers[5]["structured"]["definitions"];
    assert_eq!(defs[0]["path"], TAGS_RS, "{defs}");
    assert_eq!(defs[0]["line"], 2);

    // list_repositories: what is served, at which commit.
    let repos = &answers[6]["structured"]["repos"];
    assert_eq!(repos.as_array().unwrap().len(), 1, "{repos}");
    assert_eq!(repos[0]["live"]["commit"], commit.as_str());
    assert_eq!(repos[0]["live"]["digest"], f.built.digest.as_str());

    // max_tokens: fewer results than k, and the answer says what was cut.
    let cut = &answers[7]["structured"];
    let t = &cut["truncated"];
    assert_eq!(t["max_tokens"], 64, "{cut}");
    assert!(t["omitted"].as_u64().unwrap() > 0, "{cut}");
    assert!(
        answers[7]["text"].as_str().unwrap().contains("truncated"),
        "{}",
        answers[7]["text"]
    );

    // list_files: a directory one level down, and a glob, with sizes.
    let listed = &answers[8]["structured"];
    let paths: Vec<&str> = listed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["src/http.rs", "src/tags.rs"], "{listed}");
    assert_eq!(listed["entries"][1]["size"], tags_rs.len(), "{listed}");
    assert_eq!(listed["entries"][1]["language"], "rust", "{listed}");
    let py = &answers[9]["structured"];
    assert_eq!(py["glob"], true, "{py}");
    assert_eq!(py["entries"][0]["path"], "tools/resize.py", "{py}");
    assert_eq!(py["total_files"], 1, "{py}");

    // outline: the file's definitions, kind, name and lines.
    let outline = &answers[10]["structured"];
    assert_eq!(outline["symbols"][0]["name"], "move_tag", "{outline}");
    assert_eq!(outline["symbols"][0]["kind"], "function", "{outline}");
    assert_eq!(outline["symbols"][0]["line"], 2, "{outline}");
    assert_eq!(outline["bundle"]["commit"], commit.as_str());

    // find_references: the use, not a definition.
    let refs = &answers[11]["structured"];
    assert_eq!(refs["references"][0]["path"], TAGS_RS, "{refs}");
    assert_eq!(refs["references"][0]["line"], 3, "{refs}");
    assert_eq!(refs["total_references"], 1, "{refs}");

    // find_related: chunks of other files, most alike first.
    let related = &answers[12]["structured"];
    let results = related["results"].as_array().unwrap();
    assert!(!results.is_empty(), "{related}");
    assert!(
        results.iter().all(|r| r["path"] != TAGS_RS),
        "the file itself is not related to itself: {related}"
    );
}

/// An answer without what changes from one call to the next (timings,
/// ages), to compare two clients' answers.
fn stable(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "took_ms"
                            | "timings_ms"
                            | "commit_age_seconds"
                            | "age_seconds"
                            | "live_since"
                    )
                })
                .map(|(k, v)| (k.clone(), stable(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(stable).collect()),
        other => other.clone(),
    }
}

/// Two clients' reports answer every call the same.
fn same_answers(a: &Value, b: &Value) {
    let (a, b) = (
        a["calls"].as_array().unwrap(),
        b["calls"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x["isError"], y["isError"], "{x} / {y}");
        assert_eq!(stable(&x["structured"]), stable(&y["structured"]));
        if x["isError"] == true {
            assert_eq!(x["text"], y["text"]);
        }
    }
}

/// What a client pinned to 2026-07-28 saw of the protocol itself.
fn check_modern(report: &Value) {
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_eq!(report["server_name"], "shelf", "{report}");
    let probe = &report["unsupported_probe"];
    assert_eq!(probe["code"], -32022, "{report}");
    let supported = probe["data"]["supported"].as_array().unwrap();
    assert!(
        supported.contains(&json!("2026-07-28")) && supported.contains(&json!("2025-11-25")),
        "{probe}"
    );
}

/// Bad arguments and what each tool error must name.
fn bad_calls() -> Vec<(Value, &'static str)> {
    vec![
        (call("search_code", json!({"query": 5})), "query"),
        (
            call("search_code", json!({"query": "tag", "k": 0})),
            "k must be",
        ),
        (
            call("search_code", json!({"query": "tag", "k": 100000})),
            "k must be",
        ),
        (
            call("search_code", json!({"query": "tag", "k": "ten"})),
            "k must be",
        ),
        (
            call("search_code", json!({"query": "tag", "repo": "nope"})),
            "nope",
        ),
        (
            call("search_code", json!({"query": "tag", "bogus": 1})),
            "bogus",
        ),
        (call("search_code", json!({})), "query"),
        (
            call("read_file", json!({"path": "../../etc/passwd"})),
            "../../etc/passwd",
        ),
        (
            call("read_file", json!({"path": "/etc/passwd"})),
            "/etc/passwd",
        ),
        (
            call("read_file", json!({"path": "src/absent.rs"})),
            "src/absent.rs",
        ),
        (
            call("read_file", json!({"path": TAGS_RS, "start_line": 50})),
            "50",
        ),
        (
            call("grep", json!({"pattern": "(", "regex": true})),
            "regular expression",
        ),
        (call("grep", json!({"pattern": "a".repeat(600)})), "512"),
        (
            call(
                "grep",
                json!({"pattern": "(\\w+){200}{200}", "regex": true}),
            ),
            "too large",
        ),
        (
            call("grep", json!({"pattern": "tag", "limit": 0})),
            "limit must be",
        ),
        (
            call("find_definitions", json!({"name": ["move_tag"]})),
            "name must be",
        ),
        (call("changes", json!({"from": "v1"})), "bundle file"),
        (
            call("outline", json!({"path": "src/absent.rs"})),
            "src/absent.rs",
        ),
        (
            call("list_files", json!({"path": "src", "depth": 0})),
            "depth must be",
        ),
        (
            call("find_related", json!({"path": TAGS_RS, "k": 100000})),
            "k must be",
        ),
    ]
}

fn check_bad(answers: &[Value]) {
    for ((asked, needle), a) in bad_calls().iter().zip(answers) {
        assert_eq!(a["isError"], true, "{asked} → {a}");
        let text = a["text"].as_str().unwrap();
        assert!(text.contains(needle), "{asked}: '{needle}' not in {text}");
    }
}

fn all_calls() -> Vec<Value> {
    good_calls()
        .into_iter()
        .chain(bad_calls().into_iter().map(|(c, _)| c))
        .collect()
}

#[test]
fn stdio_answers_every_tool_and_bad_arguments_are_tool_errors() {
    let f = fixture();
    let cache = tempfile::tempdir().unwrap();
    let bundle = f.built.path.display().to_string();
    let cache_arg = cache.path().display().to_string();
    let mut reports = Vec::new();
    for mode in ["legacy", "2026-07-28"] {
        let mut transport = stdio(
            &["mcp", "--bundle", &bundle, "--cache", &cache_arg],
            json!({"SHELF_LOG": "warn"}),
        );
        transport["mode"] = json!(mode);
        let report = sdk(transport, &all_calls());
        let answers = report["calls"].as_array().unwrap();
        assert_eq!(answers.len(), all_calls().len(), "{report}");
        let good = good_calls().len();
        check_good(f, &report, &answers[..good]);
        check_bad(&answers[good..]);
        assert!(
            report["instructions"]
                .as_str()
                .unwrap()
                .contains("search_code"),
            "{report}"
        );
        reports.push(report);
    }
    assert_eq!(reports[0]["protocol_version"], "2025-11-25");
    check_modern(&reports[1]);
    same_answers(&reports[0], &reports[1]);
}

/// What the TypeScript v2 client pinned to 2026-07-28 saw of the protocol.
fn check_ts_modern(report: &Value) {
    assert!(report.get("connect_error").is_none(), "{report}");
    assert_eq!(report["protocol_version"], "2026-07-28", "{report}");
    assert_eq!(report["era"], "modern", "{report}");
    assert_eq!(report["server_name"], "shelf", "{report}");
    assert!(
        report["instructions"]
            .as_str()
            .is_some_and(|i| i.contains("search_code")),
        "{report}"
    );
}

/// The URI of `path` in the sample bundle.
fn file_uri(f: &Fixture, path: &str) -> String {
    let repo = f.built.report["repo"]
        .as_str()
        .or(f.built.report["repository"].as_str())
        .unwrap();
    format!("shelf://{repo}/{}/{path}", commit(f))
}

/// Resources read by URI, then what each read must answer: the text, or
/// the error's words.
fn reads(f: &Fixture) -> Vec<(String, Result<String, &'static str>)> {
    let tags = std::fs::read_to_string(f.repo.path().join(TAGS_RS)).unwrap();
    let stale = file_uri(f, TAGS_RS).replace(&commit(f), &"0".repeat(40));
    vec![
        (file_uri(f, TAGS_RS), Ok(tags)),
        (
            file_uri(f, "tools/resize.py"),
            Ok(std::fs::read_to_string(f.repo.path().join("tools/resize.py")).unwrap()),
        ),
        (stale, Err("served at commit")),
        (file_uri(f, "src/absent.rs"), Err("src/absent.rs")),
        (file_uri(f, "../../etc/passwd"), Err("../../etc/passwd")),
        ("https://example.com/x".into(), Err("not a shelf file URI")),
    ]
}

/// A client's resources: every file listed by URI at the commit, and
/// each read answering as [`reads`] says (a refusal is -32602 naming the
/// URI in `data`, as 2026-07-28 says a missing resource is).
fn check_resources(f: &Fixture, report: &Value) {
    let listed: Vec<&str> = report["resources"]
        .as_array()
        .unwrap_or_else(|| panic!("no resources listed: {report}"))
        .iter()
        .map(|r| r["uri"].as_str().unwrap())
        .collect();
    let want: Vec<String> = [
        "docs/rollback.md",
        TAGS_RS,
        "src/http.rs",
        "tools/resize.py",
    ]
    .iter()
    .map(|p| file_uri(f, p))
    .collect();
    let mut sorted_want = want.clone();
    sorted_want.sort();
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(sorted, sorted_want, "{report}");
    let answers = report["reads"].as_array().unwrap();
    let expected = reads(f);
    assert_eq!(answers.len(), expected.len(), "{report}");
    for ((uri, want), got) in expected.iter().zip(answers) {
        match want {
            Ok(text) => {
                let c = &got["contents"][0];
                assert_eq!(c["uri"], uri.as_str(), "{got}");
                assert_eq!(c["text"], text.as_str(), "{uri}: {got}");
                assert_eq!(c["mimeType"], "text/plain", "{got}");
            }
            Err(words) => {
                assert_eq!(got["code"], -32602, "{uri}: {got}");
                assert_eq!(got["data"]["uri"], uri.as_str(), "{uri}: {got}");
                let e = got["exception"].as_str().unwrap();
                assert!(e.contains(words), "{uri}: '{words}' not in {e}");
            }
        }
    }
}

/// The official TypeScript client (v2, pinned to 2026-07-28) over stdio
/// and over HTTP with a token: every tool answers what the Python client
/// pinned to the same revision got on the same transport, bad arguments
/// are the same tool errors, and both clients list and read the files as
/// resources by URI alike (the Python client in legacy mode too).
#[test]
fn the_typescript_client_pinned_to_2026_07_28_gets_the_python_clients_answers() {
    let f = fixture();
    let good = good_calls().len();
    let cache = tempfile::tempdir().unwrap();
    let bundle = f.built.path.display().to_string();
    let cache_arg = cache.path().display().to_string();
    let over_stdio = stdio(
        &["mcp", "--bundle", &bundle, "--cache", &cache_arg],
        json!({"SHELF_LOG": "warn"}),
    );
    let server_cache = tempfile::tempdir().unwrap();
    let (server, _t) = serve_with_token(server_cache.path());
    let over_http = json!({"http": {"url": format!("http://{}/mcp", server.addr), "token": TOKEN}});
    let uris: Vec<String> = reads(f).into_iter().map(|(u, _)| u).collect();
    let uris: Vec<&str> = uris.iter().map(String::as_str).collect();
    for transport in [over_stdio, over_http] {
        let ts = ts_sdk(transport.clone(), &all_calls(), &uris);
        check_ts_modern(&ts);
        let answers = ts["calls"].as_array().unwrap();
        assert_eq!(answers.len(), all_calls().len(), "{ts}");
        check_good(f, &ts, &answers[..good]);
        check_bad(&answers[good..]);
        check_resources(f, &ts);
        for mode in ["2026-07-28", "legacy"] {
            let mut py = transport.clone();
            py["mode"] = json!(mode);
            py["resources"] = json!(uris);
            let py = sdk(py, &all_calls());
            same_answers(&py, &ts);
            assert_eq!(py["tools"], ts["tools"], "the same tool list");
            check_resources(f, &py);
            assert_eq!(py["reads"][0], ts["reads"][0]);
        }
    }
}

/// A file longer than `read_file`'s default bound, read as a resource:
/// its first part, exactly, and what was left out in the content's
/// `_meta`.
#[test]
fn a_long_file_read_as_a_resource_is_bounded_and_says_so() {
    let repo = GitRepo::new();
    let line = "value = compute_the_next_value(previous_value, step_size)\n";
    let long = line.repeat(100_000 / line.len());
    repo.write("long.py", &long);
    repo.commit("a long file");
    let t = tempfile::tempdir().unwrap();
    let built = cli::build(shelf(), &repo, &t.path().join("out"));
    let name = built.report["repo"]
        .as_str()
        .or(built.report["repository"].as_str())
        .unwrap();
    let commit = built.report["commit"].as_str().unwrap();
    let uri = format!("shelf://{name}/{commit}/long.py");
    let bundle = built.path.display().to_string();
    let cache = t.path().join("cache").display().to_string();
    let mut transport = stdio(
        &["mcp", "--bundle", &bundle, "--cache", &cache],
        json!({"SHELF_LOG": "warn"}),
    );
    transport["resources"] = json!([uri]);
    let report = sdk(transport, &[]);
    let c = &report["reads"][0]["contents"][0];
    let text = c["text"].as_str().unwrap_or_else(|| panic!("{report}"));
    assert!(
        text.len() < long.len() && long.starts_with(text),
        "{} of {} bytes",
        text.len(),
        long.len()
    );
    assert!(text.len() > 60_000, "{} bytes", text.len());
    let said = c["meta"]["shelf/truncated"]
        .as_str()
        .unwrap_or_else(|| panic!("{c}"));
    assert!(said.contains("start_line"), "{said}");
}

fn serve_with_token(cache: &Path) -> (ServerProcess, tempfile::TempDir) {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let tokens = t.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n")).unwrap();
    let server = ServerProcess::serve_bundle(
        shelf(),
        &f.built.path,
        cache,
        &["--search-tokens-file", &tokens.display().to_string()],
        &[],
    );
    server.wait_ready(READY);
    (server, t)
}

#[test]
fn http_needs_the_search_token_and_answers_every_tool_like_rest() {
    let f = fixture();
    let cache = tempfile::tempdir().unwrap();
    let (server, _t) = serve_with_token(cache.path());
    let url = format!("http://{}/mcp", server.addr);

    let mut reports = Vec::new();
    for mode in ["legacy", "2026-07-28", "auto"] {
        let report = sdk(
            json!({"http": {"url": url, "token": TOKEN}, "mode": mode}),
            &all_calls(),
        );
        let answers = report["calls"].as_array().unwrap();
        let good = good_calls().len();
        check_good(f, &report, &answers[..good]);
        check_bad(&answers[good..]);
        reports.push(report);
    }
    assert_eq!(reports[0]["protocol_version"], "2025-11-25");
    check_modern(&reports[1]);
    // Auto: discovers the newest revision and keeps it.
    assert_eq!(reports[2]["protocol_version"], "2026-07-28");
    same_answers(&reports[0], &reports[1]);
    same_answers(&reports[0], &reports[2]);
    let report = &reports[0];
    let answers = report["calls"].as_array().unwrap();

    // A missing or wrong token is 401, before any message is read.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let post = |auth: Option<&str>| {
        let mut h = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(a) = auth {
            h.push(("Authorization", a));
        }
        http::request(server.addr, "POST", "/mcp", &h, init.as_bytes())
    };
    assert_eq!(post(None).status, 401);
    assert_eq!(
        post(Some("Bearer wrong-token-0123456789abcdef")).status,
        401
    );
    assert_eq!(post(Some(&format!("Bearer {TOKEN}"))).status, 200);
    // JSON-RPC edges: ids that could not be paired, empty and oversized
    // batches, another site's page.
    let auth = format!("Bearer {TOKEN}");
    let rpc = |body: &str, extra: &[(&str, &str)]| {
        let mut h = vec![
            ("Content-Type", "application/json"),
            ("Authorization", auth.as_str()),
        ];
        h.extend_from_slice(extra);
        http::request(server.addr, "POST", "/mcp", &h, body.as_bytes())
    };
    for bad_id in ["null", "1.5", "true", "{\"a\":1}"] {
        let r = rpc(
            &format!(r#"{{"jsonrpc":"2.0","id":{bad_id},"method":"ping"}}"#),
            &[],
        );
        assert_eq!(r.json()["error"]["code"], -32600, "id {bad_id}");
    }
    assert_eq!(rpc("[]", &[]).json()["error"]["code"], -32600);
    let ping = r#"{"jsonrpc":"2.0","id":"p","method":"ping"}"#;
    let batch = |n: usize| format!("[{}]", vec![ping; n].join(","));
    assert_eq!(rpc(&batch(32), &[]).json().as_array().unwrap().len(), 32);
    let over = rpc(&batch(33), &[]).json();
    assert_eq!(over["error"]["code"], -32600, "{over}");
    assert!(over["error"]["message"].as_str().unwrap().contains("32"));
    // With a token required, a page of the server's own origin may call
    // (it has no token unless the user gave it one); another site never.
    let own = [
        ("Host", "shelf.internal"),
        ("Origin", "https://shelf.internal"),
    ];
    assert_eq!(rpc(ping, &own).status, 200);
    assert_eq!(
        rpc(ping, &[("Origin", "http://evil.example.com")]).status,
        403
    );

    // 2026-07-28 on the wire: the envelope in _meta, the routing headers
    // checked against the body, the revision's statuses and result fields.
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {},
    });
    let modern = |method: &str, params: Value, headers: &[(&str, &str)]| {
        let mut params = params;
        params["_meta"] = meta.clone();
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        rpc(&body.to_string(), headers)
    };
    let list = modern(
        "tools/list",
        json!({}),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(list.status, 200);
    let result = &list.json()["result"];
    assert_eq!(result["resultType"], "complete", "{result}");
    assert_eq!(result["cacheScope"], "public", "{result}");
    assert!(result["ttlMs"].as_u64().is_some(), "{result}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "shelf"
    );
    assert_eq!(result["tools"].as_array().unwrap().len(), 10);
    let mismatch = modern(
        "tools/call",
        json!({"name": "grep", "arguments": {"pattern": "tag"}}),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "search_code"),
        ],
    );
    assert_eq!(mismatch.status, 400);
    assert_eq!(
        mismatch.json()["error"]["code"],
        -32020,
        "{:?}",
        mismatch.json()
    );
    assert!(
        mismatch.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Mcp-Name")
    );
    // resources/read routes by its URI the same way.
    let uri = file_uri(f, TAGS_RS);
    let read = |name: &str| {
        modern(
            "resources/read",
            json!({"uri": uri}),
            &[
                ("MCP-Protocol-Version", "2026-07-28"),
                ("Mcp-Method", "resources/read"),
                ("Mcp-Name", name),
            ],
        )
    };
    let wrong = read("shelf://elsewhere/x");
    assert_eq!(
        (wrong.status, wrong.json()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    let right = read(&uri).json();
    assert_eq!(
        right["result"]["contents"][0]["uri"],
        uri.as_str(),
        "{right}"
    );
    assert_eq!(right["result"]["cacheScope"], "private", "{right}");
    // A name the client wraps in base64 (as the TypeScript client wraps a
    // URI that is not plain ASCII; the unit test in protocol.rs decodes a
    // non-ASCII one) is decoded before it is compared with the body, and a
    // wrapping that does not decode is refused, saying so.
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(uri.as_bytes());
    let wrapped = read(&format!("=?base64?{b64}?=")).json();
    assert_eq!(
        wrapped["result"]["contents"][0]["uri"],
        uri.as_str(),
        "{wrapped}"
    );
    let b64 = base64::engine::general_purpose::STANDARD.encode("shelf://elsewhere/naïve.rs");
    let other = read(&format!("=?base64?{b64}?="));
    assert_eq!(
        (other.status, other.json()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    let message = other.json()["error"]["message"].to_string();
    assert!(message.contains("does not match"), "{message}");
    let broken = read("=?base64?not base64!?=");
    assert_eq!(
        (broken.status, broken.json()["error"]["code"].as_i64()),
        (400, Some(-32020))
    );
    let message = broken.json()["error"]["message"].to_string();
    assert!(
        message.contains("Mcp-Name") && message.contains("does not decode"),
        "{message}"
    );
    let unknown = modern(
        "tools/list",
        json!({}),
        &[
            ("MCP-Protocol-Version", "2099-01-01"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(unknown.status, 400);
    let e = &unknown.json()["error"];
    assert_eq!(e["code"], -32022, "{e}");
    assert_eq!(e["data"]["requested"], "2099-01-01", "{e}");
    assert!(
        e["data"]["supported"]
            .as_array()
            .unwrap()
            .contains(&json!("2026-07-28"))
    );
    let gone = modern(
        "ping",
        json!({}),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "ping"),
        ],
    );
    assert_eq!(gone.status, 404, "ping is not part of 2026-07-28");
    assert_eq!(gone.json()["error"]["code"], -32601);
    let no_meta = rpc(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}"#,
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(no_meta.status, 400);
    assert_eq!(no_meta.json()["error"]["code"], -32602);
    let batch = rpc(
        &format!(
            "[{}]",
            json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
        ),
        &[
            ("MCP-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "tools/list"),
        ],
    );
    assert_eq!(batch.status, 400, "one request per POST at 2026-07-28");

    let refused = sdk(
        json!({"http": {"url": url, "token": "wrong-token-0123456789"}}),
        &[],
    );
    // The SDK reports a refused connection without the status.
    assert!(
        refused["connect_error"].is_string() && refused.get("tools").is_none(),
        "{refused}"
    );

    // The REST twins answer what the tools answered.
    let get =
        |target: &str| http::request(server.addr, "GET", target, &[("Authorization", &auth)], b"");
    let file = get(&format!("/v1/file?path={}", encode(TAGS_RS)));
    assert_eq!(file.status, 200);
    assert_eq!(file.json()["text"], answers[1]["structured"]["text"]);
    let grep = get("/v1/grep?pattern=compare-and-swap");
    assert_eq!(grep.status, 200);
    assert_eq!(grep.json()["matches"], answers[3]["structured"]["matches"]);
    let defs = get("/v1/definitions?name=move_tag");
    assert_eq!(defs.status, 200);
    assert_eq!(
        defs.json()["definitions"],
        answers[5]["structured"]["definitions"]
    );
    let search = get(&format!(
        "/v1/search?q={}&k=3",
        encode("move a tag with compare-and-swap")
    ));
    let paths = |v: &Value| -> Vec<Value> {
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["path"].clone())
            .collect()
    };
    assert_eq!(paths(&search.json()), paths(&answers[0]["structured"]));
    // A REST error is the same error, with its status.
    let traversal = get("/v1/file?path=../../etc/passwd");
    assert_eq!(traversal.status, 400);
    assert_eq!(traversal.json()["error"]["code"], "bad_path");
    let absent = get("/v1/file?path=src/absent.rs");
    assert_eq!(absent.status, 404);
    assert_eq!(get("/v1/file?path=src/tags.rs").status, 200);
    assert_eq!(
        http::get(server.addr, "/v1/file?path=src/tags.rs").status,
        401,
        "no token"
    );

    // `shelf mcp --server` relays, the token from the environment.
    let relayed = sdk(
        stdio(
            &["mcp", "--server", &format!("http://{}", server.addr)],
            json!({"SHELF_TOKEN": TOKEN, "SHELF_LOG": "warn"}),
        ),
        &good_calls(),
    );
    check_good(f, &relayed, relayed["calls"].as_array().unwrap());
    let no_token = sdk(
        stdio(
            &["mcp", "--server", &format!("http://{}", server.addr)],
            json!({"SHELF_LOG": "warn"}),
        ),
        &[],
    );
    let why = no_token["connect_error"].as_str().unwrap_or("");
    assert!(
        why.contains("401") && why.contains("SHELF_TOKEN"),
        "{no_token}"
    );
}

/// The sample bundle as format 1.1 wrote it: no file texts.
fn bundle_before_file_texts(f: &Fixture, out: &Path) -> PathBuf {
    shelf_testkit::repack_older(&f.built.path, out, |m| {
        m["format_minor"] = 1.into();
        let members: Vec<Value> = m["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] != members::FILES)
            .cloned()
            .collect();
        m["members"] = members.into();
    })
}

#[test]
fn a_bundle_from_before_file_texts_is_searched_and_says_it_has_none() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let old = bundle_before_file_texts(f, t.path());
    let bundle = old.display().to_string();
    let cache = t.path().join("cache").display().to_string();
    let report = sdk(
        stdio(
            &["mcp", "--bundle", &bundle, "--cache", &cache],
            json!({"SHELF_LOG": "warn"}),
        ),
        &[
            call(
                "search_code",
                json!({"query": "move a tag with compare-and-swap"}),
            ),
            call("read_file", json!({"path": TAGS_RS})),
            call("grep", json!({"pattern": "tag"})),
        ],
    );
    // The session held for every call: each one answered, none a
    // protocol failure.
    assert!(report.get("connect_error").is_none(), "{report}");
    let answers = report["calls"].as_array().unwrap();
    assert_eq!(answers.len(), 3, "{report}");
    assert!(
        answers.iter().all(|a| a.get("exception").is_none()),
        "{report}"
    );
    assert_eq!(answers[0]["isError"], false, "{report}");
    assert_eq!(answers[0]["structured"]["results"][0]["path"], TAGS_RS);
    for a in &answers[1..] {
        assert_eq!(a["isError"], true, "{a}");
        let text = a["text"].as_str().unwrap();
        assert!(
            text.contains("predates file texts") && text.contains("1.1"),
            "{text}"
        );
    }
}

/// Without search tokens (the loopback default) a page that rebinds its
/// name to 127.0.0.1 sends its own name as Host and Origin: refused.
#[test]
fn an_anonymous_server_refuses_a_rebinding_page() {
    let f = fixture();
    let t = tempfile::tempdir().unwrap();
    let server = ServerProcess::serve_bundle(shelf(), &f.built.path, t.path(), &[], &[]);
    server.wait_ready(READY);
    let list =
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_repositories"}}"#;
    let post = |extra: &[(&str, &str)]| {
        let mut h = vec![("Content-Type", "application/json")];
        h.extend_from_slice(extra);
        http::request(server.addr, "POST", "/mcp", &h, list.as_bytes())
    };
    let r = post(&[
        ("Host", "evil.example.com:7700"),
        ("Origin", "http://evil.example.com:7700"),
    ]);
    assert_eq!(r.status, 403);
    assert!(!String::from_utf8_lossy(&r.body).contains(&f.built.digest));
    assert_eq!(post(&[("Origin", "http://localhost:5173")]).status, 200);
    assert_eq!(post(&[]).status, 200);
}

/// `changes` between two versions of one repository in a store, named by
/// tag: the files added, removed and changed, one file's diff, the same
/// over REST and MCP, and an unknown version refused naming it.
#[test]
fn changes_compares_two_tagged_versions_over_rest_and_mcp() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store").display().to_string();
    let repo = sample_repo();
    let v1 = cli::build(shelf(), &repo, &t.path().join("b1"));
    let old_tags = std::fs::read_to_string(repo.path().join(TAGS_RS)).unwrap();
    let new_tags = old_tags.replace("compare-and-swap", "compare-and-swap, retrying");
    repo.write(TAGS_RS, &new_tags);
    repo.write(
        "src/cache.rs",
        "/// Evicts the oldest entry.\npub fn evict() {}\n",
    );
    repo.git(&["rm", "-q", "docs/rollback.md"]);
    repo.commit("v2");
    let v2 = cli::build(shelf(), &repo, &t.path().join("b2"));
    let ok = |args: &[&str]| {
        let (code, _, err) = cli::run(shelf(), args, &[]);
        assert_eq!(code, 0, "{args:?}: {err}");
    };
    for (built, tag) in [(&v1, "v1"), (&v2, "v2")] {
        ok(&["push", &built.path.display().to_string(), "--store", &store]);
        ok(&["tag", tag, &built.digest, "--store", &store]);
    }
    ok(&["tag", "production", "v2", "--store", &store]);
    let cache = t.path().join("cache").display().to_string();
    let server = ServerProcess::start(
        shelf(),
        &[
            "--store",
            &store,
            "--follow",
            "production",
            "--cache",
            &cache,
        ],
        &[],
    );
    server.wait_ready(READY);

    let listed = http::get(server.addr, "/v1/changes?from=v1");
    assert_eq!(
        listed.status,
        200,
        "{}",
        String::from_utf8_lossy(&listed.body)
    );
    let a = listed.json();
    assert_eq!(a["from"]["digest"], v1.digest.as_str(), "{a}");
    assert_eq!(a["to"]["digest"], v2.digest.as_str(), "{a}");
    assert_eq!(a["from"]["tag"], "v1", "{a}");
    assert_eq!(
        (
            a["added"].as_u64(),
            a["removed"].as_u64(),
            a["changed"].as_u64()
        ),
        (Some(1), Some(1), Some(1)),
        "{a}"
    );
    let files: Vec<(String, String)> = a["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().into(),
                f["status"].as_str().unwrap().into(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("docs/rollback.md", "removed"),
        ("src/cache.rs", "added"),
        (TAGS_RS, "changed"),
    ]
    .iter()
    .map(|(p, s)| (p.to_string(), s.to_string()))
    .collect();
    assert_eq!(files, want, "{a}");

    let diff = http::get(
        server.addr,
        &format!("/v1/changes?from=v1&to=v2&path={}", encode(TAGS_RS)),
    )
    .json();
    let d = &diff["diff"];
    assert_eq!(d["status"], "changed", "{diff}");
    assert_eq!(
        (d["added_lines"].as_u64(), d["removed_lines"].as_u64()),
        (Some(1), Some(1)),
        "{diff}"
    );
    let text = d["diff"].as_str().unwrap();
    assert!(
        text.starts_with("--- a/src/tags.rs\n+++ b/src/tags.rs\n"),
        "{text}"
    );
    assert!(
        text.contains("\n-/// Moves a tag to a new bundle digest with compare-and-swap.\n"),
        "{text}"
    );
    assert!(
        text.contains(
            "\n+/// Moves a tag to a new bundle digest with compare-and-swap, retrying.\n"
        ),
        "{text}"
    );

    let unknown = http::get(server.addr, "/v1/changes?from=v9");
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["code"], "unknown_version");
    assert!(
        unknown.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("v9")
    );

    let url = format!("http://{}/mcp", server.addr);
    let report = sdk(
        json!({"http": {"url": url}, "mode": "2026-07-28"}),
        &[call(
            "changes",
            json!({"from": "v1", "to": "v2", "path": TAGS_RS}),
        )],
    );
    let answer = &report["calls"][0];
    assert_eq!(answer["isError"], false, "{report}");
    assert_eq!(answer["structured"]["diff"], diff["diff"], "{report}");
    assert!(
        answer["text"]
            .as_str()
            .unwrap()
            .contains("compare-and-swap, retrying")
    );
}
