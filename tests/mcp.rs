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

fn python() -> PathBuf {
    let runtime = std::env::var_os("SHELF_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".runtime"));
    let bin = runtime.join("moto-venv/bin/python");
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

/// Runs the SDK client against `transport` with `calls`; its report.
fn sdk(transport: Value, calls: &[Value]) -> Value {
    let t = tempfile::tempdir().unwrap();
    let spec = t.path().join("spec.json");
    let mut doc = transport;
    doc["calls"] = Value::Array(calls.to_vec());
    std::fs::write(&spec, serde_json::to_vec(&doc).unwrap()).unwrap();
    let out = Command::new(python())
        .arg(root().join("tests/support/mcp_client.py"))
        .arg(&spec)
        .output()
        .expect("the SDK client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the SDK client failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
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
            "find_definitions",
            "grep",
            "list_repositories",
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
    let report = sdk(
        stdio(
            &["mcp", "--bundle", &bundle, "--cache", &cache_arg],
            json!({"SHELF_LOG": "warn"}),
        ),
        &all_calls(),
    );
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

    let report = sdk(json!({"http": {"url": url, "token": TOKEN}}), &all_calls());
    let answers = report["calls"].as_array().unwrap();
    let good = good_calls().len();
    check_good(f, &report, &answers[..good]);
    check_bad(&answers[good..]);

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
