//! Retrieval quality as users measure and guard it: `shelf eval` on a
//! bundle and on a server (the same numbers), search modes over HTTP, a
//! bundle from before the lexical index, and the quality gate (in the
//! action's publish step: tests/gitops.rs).

use std::path::{Path, PathBuf};
use std::process::Command;

use shelf_testkit::cli;
use shelf_testkit::http;
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::{GitRepo, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

// Golden queries for the sample repository: prose, an identifier, a path.
use shelf_testkit::SAMPLE_GOLDEN as GOLDEN;

fn shelf(args: &[&str]) -> (i32, String, String) {
    cli::run(Path::new(SHELF), args, &[])
}

fn build(repo: &GitRepo, out: &Path) -> (String, PathBuf) {
    let b = cli::build(Path::new(SHELF), repo, out);
    (b.digest, b.path)
}

fn golden(dir: &Path) -> PathBuf {
    let path = dir.join("golden.jsonl");
    std::fs::write(&path, GOLDEN).unwrap();
    path
}

fn eval_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["eval", "--json"];
    all.extend_from_slice(args);
    let (code, out, err) = shelf(&all);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str(&out).unwrap()
}

#[test]
fn eval_scores_every_mode_with_minimum_scores_and_a_server_scores_the_same() {
    let t = tempfile::tempdir().unwrap();
    let (_, bundle) = build(&sample_repo(), &t.path().join("b"));
    let queries = golden(t.path());
    let (q, b, cache) = (
        queries.display().to_string(),
        bundle.display().to_string(),
        t.path().join("cache").display().to_string(),
    );
    // The floor each mode must clear on these four queries: if ranking or
    // scoring breaks, this fails.
    for (mode, min_r5, min_mrr) in [
        ("hybrid", 1.0, 0.85),
        ("semantic", 0.75, 0.6),
        ("lexical", 0.75, 0.6),
    ] {
        let report = eval_json(&[
            "--queries",
            &q,
            "--bundle",
            &b,
            "--cache",
            &cache,
            "--mode",
            mode,
        ]);
        let overall = &report["candidate"]["overall"];
        assert_eq!(overall["n"], 4);
        let (r5, mrr) = (
            overall["recall_at_5"].as_f64().unwrap(),
            overall["mrr"].as_f64().unwrap(),
        );
        assert!(
            r5 >= min_r5 && mrr >= min_mrr,
            "{mode}: recall@5 {r5}, MRR {mrr}\n{report:#}"
        );
        assert!(report["gate"].is_null());
    }
    let human = shelf(&["eval", "--queries", &q, "--bundle", &b, "--cache", &cache]);
    assert_eq!(human.0, 0);
    assert!(
        human.1.contains("R@5") && human.1.contains("nDCG@10") && human.1.contains("all"),
        "{}",
        human.1
    );

    let server = ServerProcess::serve_bundle(
        Path::new(SHELF),
        Path::new(&b),
        &t.path().join("serve-cache"),
        &[],
        &[],
    );
    server.wait_ready(std::time::Duration::from_secs(60));
    let url = format!("http://{}", server.addr);
    let local = eval_json(&["--queries", &q, "--bundle", &b, "--cache", &cache]);
    let remote = eval_json(&["--queries", &q, "--server", &url]);
    assert_eq!(
        remote["candidate"]["overall"],
        local["candidate"]["overall"]
    );
    let tops = |r: &serde_json::Value| -> Vec<serde_json::Value> {
        r["candidate"]["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| q["top"].clone())
            .collect()
    };
    assert_eq!(
        tops(&remote),
        tops(&local),
        "the server ranks files as the library does"
    );
}

#[test]
fn modes_and_file_grouping_over_http() {
    let t = tempfile::tempdir().unwrap();
    // A source file of several chunks (each function longer than a
    // chunk's 256 tokens), so a file's score sums more than one.
    let repo = sample_repo();
    let function = |name: &str, line: &str| {
        format!(
            "{}pub fn {name}() {{}}\n\n",
            format!("/// {line}\n").repeat(30)
        )
    };
    repo.write(
        "src/thumbnails.rs",
        [
            function(
                "crop_thumbnail",
                "Crops a thumbnail to a square around its centre.",
            ),
            function(
                "scale_thumbnail",
                "Scales a thumbnail down to fit a square box.",
            ),
            function(
                "cache_thumbnail",
                "Keeps a scaled thumbnail on disk for later requests.",
            ),
        ]
        .concat(),
    );
    repo.commit("tags");
    let (_, bundle) = build(&repo, &t.path().join("b"));
    let server =
        ServerProcess::serve_bundle(Path::new(SHELF), &bundle, &t.path().join("c"), &[], &[]);
    server.wait_ready(std::time::Duration::from_secs(60));
    let get = |q: &str| http::get(server.addr, q);
    // An identifier: lexical finds it by name, with a BM25 score.
    let r = get("/v1/search?q=resize_image&mode=lexical&k=2").json();
    assert_eq!(r["mode"], "lexical");
    assert_eq!(r["results"][0]["path"], "tools/resize.py");
    assert!(r["results"][0]["lexical_score"].as_f64().unwrap() > 0.0);
    assert!(r["results"][0].get("semantic_score").is_none());
    assert_eq!(
        r["timings_ms"]["embed"], 0.0,
        "lexical search embeds nothing"
    );
    // Hybrid carries both scores where both rankers found the chunk.
    let r = get("/v1/search?q=resize_image+picture+width&k=2").json();
    assert_eq!(r["mode"], "hybrid");
    let top = &r["results"][0];
    assert_eq!(top["path"], "tools/resize.py");
    assert!(
        top["semantic_score"].is_number() && top["lexical_score"].is_number(),
        "{r:#}"
    );
    // Files instead of chunks.
    let r = http::post_json(
        server.addr,
        "/v1/search",
        r#"{"query": "tags and rollback", "k": 3, "group": "file"}"#,
    )
    .json();
    assert_eq!(r["group"], "file");
    assert!(r.get("results").is_none());
    let files = r["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    let mut unique = paths.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(paths.len(), unique.len(), "a file appears once");
    assert!(
        files
            .iter()
            .all(|f| !f["chunks"].as_array().unwrap().is_empty())
    );
    assert_eq!(files[0]["rank"], 1);
    // A file's score is its (at most 3) chunks' scores summed, each
    // further one counting 0.8 of the one before; files are ranked by it
    // and numbered from 1, their chunks too. The thumbnails' file has
    // three chunks to sum.
    let thumbnails = get("/v1/search?q=crop+and+scale+thumbnails&group=file&k=3").json();
    assert_eq!(
        thumbnails["files"][0]["path"], "src/thumbnails.rs",
        "{thumbnails:#}"
    );
    assert!(
        thumbnails["files"][0]["chunks"].as_array().unwrap().len() >= 2,
        "the decay is not exercised: {thumbnails:#}"
    );
    for answer in [&r, &thumbnails] {
        let mut last = f64::INFINITY;
        for (i, f) in answer["files"].as_array().unwrap().iter().enumerate() {
            assert_eq!(f["rank"], i + 1);
            let chunks = f["chunks"].as_array().unwrap();
            assert!(chunks.len() <= 3, "{f}");
            let decayed: f64 = chunks
                .iter()
                .enumerate()
                .map(|(j, c)| c["score"].as_f64().unwrap() * 0.8f64.powi(j as i32))
                .sum();
            let score = f["score"].as_f64().unwrap();
            assert!((score - decayed).abs() < 1e-4, "{f}");
            assert!(score <= last, "files are ranked by score");
            last = score;
            for (j, c) in chunks.iter().enumerate() {
                assert_eq!(c["rank"], j + 1);
                assert_eq!(c["path"], f["path"]);
            }
        }
    }
    // The kind of file preferred: asked for, inferred from the question,
    // or none; an unknown kind is a 400 that names the kinds.
    let r = get("/v1/search?q=tags+and+rollback&group=file&k=3&kind=doc").json();
    assert_eq!(r["kind"], "doc");
    assert_eq!(r["files"][0]["path"], "docs/rollback.md", "{r:#}");
    let r = get("/v1/search?q=tags+and+rollback&group=file&k=3&kind=source").json();
    assert_eq!(r["kind"], "source");
    assert_ne!(r["files"][0]["path"], "docs/rollback.md", "{r:#}");
    let r = get("/v1/search?q=how+do+I+roll+back+production&k=1").json();
    assert_eq!(r["kind"], "doc", "a how-do-I question asks for docs");
    let r = get("/v1/search?q=compare+and+swap+of+a+tag&k=1").json();
    assert_eq!(r["kind"], "source");
    let r = get("/v1/search?q=tags&k=1&kind=any").json();
    assert!(r["kind"].is_null(), "{r:#}");
    let bad = get("/v1/search?q=tags&kind=tests");
    assert_eq!(bad.status, 400);
    let message = bad.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(
        message.contains("unknown kind 'tests'") && message.contains("changelog"),
        "{message}"
    );
    // The bundle says what it can do.
    let info = get("/v1/bundle").json();
    assert_eq!(info["live"]["format"], "1.5");
    assert_eq!(
        info["live"]["search_modes"],
        serde_json::json!(["hybrid", "semantic", "lexical"])
    );
}

#[test]
fn eval_from_history_asks_each_parent_and_keeps_the_parents_bundles() {
    let t = tempfile::tempdir().unwrap();
    let repo = sample_repo();
    repo.write(
        "tools/resize.py",
        "def resize_image(path, width, height):\n    \"\"\"Scale a picture to the given size in pixels, keeping its aspect.\"\"\"\n    img = Image.open(path)\n    img.thumbnail((width, height))\n    return img\n",
    );
    repo.commit("Keep the aspect ratio when scaling a picture to a width and height");
    repo.write("docs/rollback.md", "# Rolling back\n\nRetag production.\n");
    repo.commit("Shorten the rollback guide to one line");
    repo.write(
        "src/http.rs",
        "/// Starts the HTTP listener and serves search requests.\npub async fn serve(addr: SocketAddr) -> std::io::Result<()> {\n    let listener = TcpListener::bind(addr).await?;\n    loop {\n        let (socket, peer) = listener.accept().await?;\n        tracing::debug!(%peer, \"accepted\");\n        tokio::spawn(handle(socket));\n    }\n}\n",
    );
    repo.commit("Log the peer of every connection the listener accepts\n\nSigned-off-by: shelf test <test@shelf.invalid>");
    let (history, cache, mined) = (
        t.path().join("history"),
        t.path().join("cache"),
        t.path().join("mined.jsonl"),
    );
    let args = [
        "--from-history",
        "10",
        "--repo",
        &repo.path().display().to_string(),
        "--history-cache",
        &history.display().to_string(),
        "--cache",
        &cache.display().to_string(),
        "--write-queries",
        &mined.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = eval_json(&args);
    let h = &report["history"];
    assert_eq!(h["asked_of"], "each commit's parent");
    assert_eq!(h["mined"], 2, "{report:#}");
    assert_eq!(h["skipped"]["no-source-file"], 1, "{report:#}");
    assert_eq!(h["skipped"]["root-commit"], 1, "{report:#}");
    let queries = report["candidate"]["queries"].as_array().unwrap();
    let gold: Vec<&str> = queries
        .iter()
        .map(|q| q["gold"][0].as_str().unwrap())
        .collect();
    assert_eq!(gold, ["src/http.rs", "tools/resize.py"], "newest first");
    assert!(
        report["candidate"]["overall"]["recall_at_5"]
            .as_f64()
            .unwrap()
            >= 0.5,
        "{report:#}"
    );
    // The mined queries, as a query file: trailers gone, commits named.
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&mined)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines[0]["query"],
        "Log the peer of every connection the listener accepts"
    );
    assert_eq!(lines[0]["gold_files"][0], "src/http.rs");
    assert_eq!(lines[0]["parent"].as_str().unwrap().len(), 40);
    // Two parents were built and kept; a second run only asks.
    let kept = std::fs::read_dir(&history).unwrap().count();
    assert_eq!(kept, 2);
    let (code, _, err) = shelf(&[&["eval"], args.as_slice()].concat());
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("building parent"), "{err}");
    // A gate compares two bundles: with history it needs --bundle too.
    let (code, _, err) = shelf(
        &[
            &["eval"],
            args.as_slice(),
            &["--baseline-bundle", "x.tar.zst"],
        ]
        .concat(),
    );
    assert_eq!(code, 1);
    assert!(err.contains("pass --bundle FILE"), "{err}");
}

#[test]
fn eval_from_history_of_a_shallow_clone_says_to_fetch_the_history() {
    let t = tempfile::tempdir().unwrap();
    let repo = sample_repo();
    repo.write(
        "tools/resize.py",
        "def resize_image(path, w, h):\n    return None\n",
    );
    repo.commit("Stop resizing pictures for now, it was broken");
    let shallow = t.path().join("shallow");
    let out = Command::new("git")
        .args(["clone", "-q", "--depth", "1"])
        .arg(format!("file://{}", repo.path().display()))
        .arg(&shallow)
        .output()
        .unwrap();
    assert!(out.status.success());
    let (code, _, err) = shelf(&[
        "eval",
        "--from-history",
        "5",
        "--repo",
        &shallow.display().to_string(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no commit among the 1 read") && err.contains("fetch-depth: 0"),
        "{err}"
    );
}

/// A bundle as format 1.0 would have written it: no lexical index, minor 0.
fn as_format_1_0(bundle: &Path, out: &Path) -> PathBuf {
    shelf_testkit::repack_older(bundle, out, |m| {
        m["format_minor"] = 0.into();
        let settings = m["settings"].as_object_mut().unwrap();
        settings.remove("lexical");
        settings.remove("exclude_generated");
        let members: Vec<serde_json::Value> = m["members"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| x["name"] != "lexical.bin" && x["name"] != "files.bin")
            .cloned()
            .collect();
        m["members"] = members.into();
    })
}

#[test]
fn a_bundle_from_before_the_lexical_index_still_serves_semantically_and_says_so() {
    let t = tempfile::tempdir().unwrap();
    let (_, bundle) = build(&sample_repo(), &t.path().join("b"));
    let old = as_format_1_0(&bundle, &t.path().join("old"));
    let (code, _, err) = shelf(&["verify", &old.display().to_string()]);
    assert_eq!(code, 0, "a 1.0 bundle still verifies: {err}");
    let server = ServerProcess::serve_bundle(Path::new(SHELF), &old, &t.path().join("c"), &[], &[]);
    server.wait_ready(std::time::Duration::from_secs(60));
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["live"]["format"], "1.0");
    assert_eq!(
        info["live"]["search_modes"],
        serde_json::json!(["semantic"])
    );
    let r = http::get(server.addr, "/v1/search?q=scale+a+picture&k=1").json();
    assert_eq!(
        (r["mode"].as_str(), r["results"][0]["path"].as_str()),
        (Some("semantic"), Some("tools/resize.py"))
    );
    let r = http::get(server.addr, "/v1/search?q=resize_image&mode=lexical");
    assert_eq!(r.status, 400);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no lexical index")
    );
}

#[test]
fn the_gate_fails_when_a_golden_file_loses_its_chunks_and_names_the_query() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store").display().to_string();
    let repo = sample_repo();
    std::fs::create_dir_all(repo.path().join(".shelf")).unwrap();
    std::fs::write(repo.path().join(".shelf/golden.jsonl"), GOLDEN).unwrap();
    repo.commit("golden queries");
    let (d1, v1) = build(&repo, &t.path().join("b"));
    assert_eq!(
        shelf(&["push", &v1.display().to_string(), "--store", &store]).0,
        0
    );
    assert_eq!(shelf(&["tag", "production", &d1, "--store", &store]).0, 0);

    // v2 loses the file one golden query needs.
    repo.git(&["rm", "-q", "tools/resize.py"]);
    repo.commit("drop the image tool");
    let (_, v2) = build(&repo, &t.path().join("b"));
    let q = repo
        .path()
        .join(".shelf/golden.jsonl")
        .display()
        .to_string();
    let cache = t.path().join("cache").display().to_string();
    let v2s = v2.display().to_string();
    let (code, out, err) = shelf(&[
        "eval",
        "--queries",
        &q,
        "--bundle",
        &v2s,
        "--baseline",
        "production",
        "--store",
        &store,
        "--cache",
        &cache,
    ]);
    assert_eq!(
        code, 3,
        "a failed gate exits 3, not 1 like an error: {out}{err}"
    );
    assert!(
        err.contains("quality gate failed") && err.contains("resize"),
        "{err}"
    );
    assert!(
        out.contains("queries that got worse") && out.contains("FAIL"),
        "{out}"
    );
    assert!(
        err.contains("(queries that got worse: resize)"),
        "only the query that lost its file: {err}"
    );
    // A wide enough margin lets it through; the same bundle always passes.
    let wide = shelf(&[
        "eval",
        "--queries",
        &q,
        "--bundle",
        &v2s,
        "--baseline",
        "production",
        "--store",
        &store,
        "--cache",
        &cache,
        "--max-drop",
        "0.5",
    ]);
    assert_eq!(wide.0, 0, "{}", wide.2);
    let same = shelf(&[
        "eval",
        "--queries",
        &q,
        "--bundle",
        &v1.display().to_string(),
        "--baseline-bundle",
        &v1.display().to_string(),
        "--cache",
        &cache,
        "--max-drop",
        "0",
    ]);
    assert_eq!(same.0, 0, "{}", same.2);
    let missing = shelf(&[
        "eval",
        "--queries",
        &q,
        "--bundle",
        &v2s,
        "--baseline",
        "staging",
        "--store",
        &store,
    ]);
    assert_eq!(missing.0, 1);
    assert!(
        missing.2.contains("baseline tag 'staging' does not exist"),
        "{}",
        missing.2
    );
    // The action's publish step and its exit codes: tests/gitops.rs.
}

#[test]
fn a_bundle_of_a_custom_model_is_served_only_by_servers_of_that_model() {
    let t = tempfile::tempdir().unwrap();
    let model = shelf_testkit::custom_model(
        &Path::new(ROOT).join(".runtime"),
        "name = \"test/minilm-cls\"\ndimensions = 384\npooling = \"cls\"\nmax_tokens = 256\nquery_prefix = \"query: \"\n",
    );
    let m = model.path().display().to_string();
    let repo = sample_repo();
    let (code, out, err) = shelf(&[
        "build",
        "--json",
        "--model",
        &m,
        "--repo",
        &repo.path().display().to_string(),
        "--out",
        &t.path().join("b").display().to_string(),
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bundle = report["bundle_path"].as_str().unwrap().to_string();
    // A server with the default model refuses it, naming the difference.
    let refused = Command::new(SHELF)
        .current_dir(ROOT)
        .env_remove("SHELF_RUNTIME")
        .args([
            "serve",
            "--bundle",
            &bundle,
            "--listen",
            "127.0.0.1:0",
            "--cache",
        ])
        .arg(t.path().join("c1"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    assert!(
        err.contains("another embedding model") && err.contains("test/minilm-cls"),
        "{err}"
    );
    // The same model serves it, and its answers make sense.
    let server = ServerProcess::serve_bundle(
        Path::new(SHELF),
        Path::new(&bundle),
        &t.path().join("c2"),
        &["--model", &m],
        &[],
    );
    server.wait_ready(std::time::Duration::from_secs(60));
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["live"]["model"]["name"], "test/minilm-cls");
    let r = http::get(
        server.addr,
        "/v1/search?q=scale+a+picture+in+pixels&k=1&mode=semantic",
    )
    .json();
    assert_eq!(r["results"][0]["path"], "tools/resize.py", "{r:#}");
}
