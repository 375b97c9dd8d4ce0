//! `shelf serve` as operators run it: the real binary on a free loopback
//! port, real bundles built with the real model, a real store (a local
//! directory, or moto's S3 server), asserted over HTTP.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use shelf_testkit::cli::{self, Built};
use shelf_testkit::http::{self, encode};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::store::{StoreArgs, plant};
use shelf_testkit::{GitRepo, MotoServer, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const READY: Duration = Duration::from_secs(60);
const SEARCH_TOKEN: &str = "search-token-0123456789abcdef";
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

fn shelf(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    cli::run(Path::new(SHELF), args, env)
}

fn build(repo: &GitRepo, out: &Path) -> Built {
    cli::build(Path::new(SHELF), repo, out)
}

fn push(store: &StoreArgs, bundle: &Path) {
    store.push(Path::new(SHELF), bundle);
}

fn tag(store: &StoreArgs, name: &str, target: &str) {
    store.tag(Path::new(SHELF), name, target);
}

/// The sample repository, built, pushed and tagged `production`.
fn published(store: &StoreArgs, out: &Path) -> (GitRepo, Built) {
    store.published(Path::new(SHELF), out)
}

/// `shelf serve --store … --follow … --cache …` plus `extra`.
fn follow(
    store: &StoreArgs,
    target: &str,
    cache: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> ServerProcess {
    store.follow(Path::new(SHELF), target, cache, extra, env)
}

fn search(addr: SocketAddr, q: &str) -> serde_json::Value {
    let r = http::get(addr, &format!("/v1/search?q={}&k=3", encode(q)));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

fn top_path(answer: &serde_json::Value) -> String {
    answer["results"][0]["path"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn live_digest(addr: SocketAddr) -> String {
    http::get(addr, "/v1/bundle").json()["live"]["digest"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn reload(addr: SocketAddr) -> http::Response {
    http::request(
        addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    )
}

#[test]
fn follows_a_tag_by_poll_and_by_admin_reload_and_answers_from_the_right_files() {
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let (repo, v1) = published(&store, &t.path().join("b"));
    let server = follow(
        &store,
        "production",
        &t.path().join("cache"),
        &["--poll-interval", "200ms"],
        &[],
    );
    let ready = server.wait_ready(READY);
    assert_eq!(ready["status"], "ok");
    assert_eq!(ready["digest"], v1.digest);

    let answer = search(server.addr, "move a tag with compare-and-swap");
    assert_eq!(top_path(&answer), "src/tags.rs", "{answer:#}");
    assert_eq!(answer["bundle"]["digest"], v1.digest);
    assert_eq!(answer["bundle"]["tag"], "production");
    assert_eq!(answer["bundle"]["commit"], repo.git(&["rev-parse", "HEAD"]));
    let r = &answer["results"][0];
    assert!(r["semantic_score"].as_f64().unwrap() > 0.2 && r["start_line"] == 1);
    assert_eq!(answer["mode"], "hybrid");
    assert!(r["text"].as_str().unwrap().contains("fn move_tag"));
    assert_eq!(r["chunk_id"].as_str().unwrap().len(), 64);
    assert!(answer["took_ms"].as_f64().unwrap() > 0.0);

    // The tag moves: the poll notices within a few intervals.
    repo.write(
        "src/cache.rs",
        "/// Evicts the least recently used entries when the cache is full.\npub fn evict_lru(cache: &mut Cache) {\n    while cache.len() > cache.capacity() { cache.pop_oldest(); }\n}\n",
    );
    repo.commit("v2");
    let v2 = build(&repo, &t.path().join("b"));
    push(&store, &v2.path);
    tag(&store, "production", &v2.digest);
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["digest"] == v2.digest.as_str()
    });
    let answer = search(server.addr, "evict least recently used cache entries");
    assert_eq!(top_path(&answer), "src/cache.rs");
    assert_eq!(answer["bundle"]["digest"], v2.digest);
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["last_swap"]["from"], v1.digest);
    assert_eq!(info["last_swap"]["to"], v2.digest);
    assert_eq!(info["follow"]["target"], "production");
    assert_eq!(info["live"]["chunks"].as_u64(), Some(v2_chunks(&info)));
    drop(server);

    // A server that polls rarely follows at once when asked.
    let server = follow(
        &store,
        "production",
        &t.path().join("cache"),
        &["--poll-interval", "1h"],
        &[("SHELF_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    server.wait_ready(READY);
    assert_eq!(live_digest(server.addr), v2.digest);
    tag(&store, "production", &v1.digest);
    let r = reload(server.addr);
    assert_eq!(r.status, 200);
    let report = r.json();
    assert_eq!(report["swapped"], true, "{report:#}");
    assert_eq!(report["live"], v1.digest);
    assert_eq!(live_digest(server.addr), v1.digest);
    // Nothing moved: a second reload checks and swaps nothing.
    let again = reload(server.addr).json();
    assert_eq!(
        (again["swapped"].as_bool(), again["target"].as_str()),
        (Some(false), Some(v1.digest.as_str()))
    );
    // The admin API wants the admin token, not a guess.
    let r = http::request(
        server.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    assert_eq!(r.status, 401);
}

fn v2_chunks(info: &serde_json::Value) -> u64 {
    info["live"]["chunks"].as_u64().unwrap_or(0)
}

/// A bundle whose manifest says format 99: written by hand, as a newer
/// shelf would, so no writer of ours can make it.
fn unknown_format_bundle(dir: &Path) -> (String, Vec<u8>) {
    let mut manifest = shelf_testkit::sample_manifest(&"9".repeat(40));
    manifest.format_version = 99;
    manifest.members = vec![];
    let json = manifest.to_canonical_json();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(json.len() as u64);
    h.set_mode(0o444);
    h.set_cksum();
    tar.append_data(&mut h, "manifest.json", &json[..]).unwrap();
    let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    let digest = shelf_formats::Digest::of(&bytes);
    std::fs::create_dir_all(dir).unwrap();
    (digest.to_string(), bytes)
}

#[test]
fn bad_bundles_are_refused_while_the_old_one_keeps_answering_and_readyz_says_why() {
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let (repo, v1) = published(&store, &t.path().join("b"));
    let server = follow(
        &store,
        "production",
        &t.path().join("cache"),
        &["--poll-interval", "100ms"],
        &[("SHELF_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    server.wait_ready(READY);

    // Real bundles of later commits, damaged before they reach the store.
    repo.write("src/extra.rs", "/// Extra.\npub fn extra() {}\n");
    repo.commit("v2");
    let v2 = build(&repo, &t.path().join("b"));
    let mut corrupted = std::fs::read(&v2.path).unwrap();
    let mid = corrupted.len() / 2;
    corrupted[mid] ^= 0x40;
    repo.write("src/more.rs", "/// More.\npub fn more() {}\n");
    repo.commit("v3");
    let v3 = build(&repo, &t.path().join("b"));
    let bytes = std::fs::read(&v3.path).unwrap();
    let truncated = bytes[..bytes.len() * 2 / 3].to_vec();
    let mut other = shelf_testkit::sample_manifest("0").model;
    other.name = "BAAI/bge-small-en-v1.5".into();
    let wrong_model = shelf_testkit::synthetic_bundle(&t.path().join("wm"), 20, &other, 3);
    let (unknown_digest, unknown) = unknown_format_bundle(&t.path().join("uf"));

    plant(t.path(), &v2.digest, &corrupted);
    plant(t.path(), &v3.digest, &truncated);
    push(&store, &wrong_model.path);
    plant(t.path(), &unknown_digest, &unknown);
    let cases = [
        ("corrupted", v2.digest.clone(), "sha256"),
        ("truncated", v3.digest.clone(), ""),
        (
            "wrong model",
            wrong_model.digest.to_string(),
            "another embedding model",
        ),
        ("unknown format", unknown_digest.clone(), "format"),
    ];
    for (what, digest, needle) in cases {
        tag(&store, "production", &digest);
        let report = reload(server.addr).json();
        assert_eq!(report["swapped"], false, "{what}: {report:#}");
        assert_eq!(report["target"], digest.as_str(), "{what}");
        let error = report["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: no error in {report:#}"));
        assert!(error.contains(needle), "{what}: {error}");
        // Still answering, from the old bundle.
        let answer = search(server.addr, "move a tag with compare-and-swap");
        assert_eq!(answer["bundle"]["digest"], v1.digest, "{what}");
        let ready = http::get(server.addr, "/readyz");
        assert_eq!(ready.status, 200, "{what}: degraded still serves");
        let ready = ready.json();
        assert_eq!(ready["status"], "degraded", "{what}");
        let reason = ready["reason"].as_str().unwrap();
        assert!(
            reason.contains(&digest) && reason.contains(&format!("{} is serving", v1.digest)),
            "{what}: {reason}"
        );
        let info = http::get(server.addr, "/v1/bundle").json();
        assert_eq!(info["last_error"]["digest"], digest.as_str(), "{what}");
        // Nothing of the refused bundle is left in the cache.
        let hex = digest.trim_start_matches("sha256:");
        assert!(
            !t.path().join("cache").join(hex).exists(),
            "{what} left files behind"
        );
    }
    // Back to a good bundle: healthy again.
    tag(&store, "production", &v1.digest);
    let report = reload(server.addr).json();
    assert!(report["error"].is_null(), "{report:#}");
    assert_eq!(http::get(server.addr, "/readyz").json()["status"], "ok");
    let metrics = String::from_utf8(http::get(server.addr, "/metrics").body).unwrap();
    // Another model and an unknown format are incompatible, each tried
    // once (the digest can never become servable); the damaged bytes are
    // verification failures, retried with backoff while the tag named them.
    let count = |reason: &str| -> u64 {
        let label = format!("reason=\"{reason}\"");
        http::metric_value(&metrics, "shelf_bundle_load_failures_total", &[&label]).unwrap_or(0.0)
            as u64
    };
    assert_eq!(count("incompatible"), 2, "{metrics}");
    assert!(count("verification") >= 2, "{metrics}");
}

#[test]
fn a_store_down_at_start_serves_a_warm_cache_degraded_and_an_empty_cache_is_not_ready() {
    let t = tempfile::tempdir().unwrap();
    let moto = MotoServer::start();
    let store = StoreArgs::s3(&moto);
    let (_repo, v1) = published(&store, &t.path().join("b"));
    let cache = t.path().join("cache");
    let server = follow(
        &store,
        "production",
        &cache,
        &["--poll-interval", "200ms"],
        &[],
    );
    assert_eq!(server.wait_ready(READY)["status"], "ok");
    assert_eq!(
        server
            .terminate(Duration::from_secs(15))
            .and_then(|s| s.code()),
        Some(0)
    );
    drop(moto);

    // Restart with the store gone: the cached bundle serves, degraded.
    let server = follow(
        &store,
        "production",
        &cache,
        &["--poll-interval", "200ms"],
        &[],
    );
    let ready = server.wait_ready(READY);
    assert_eq!(ready["status"], "degraded", "{ready:#}");
    assert_eq!(ready["digest"], v1.digest);
    let reason = ready["reason"].as_str().unwrap();
    assert!(reason.contains("store cannot be read"), "{reason}");
    let answer = search(server.addr, "move a tag with compare-and-swap");
    assert_eq!(answer["bundle"]["digest"], v1.digest);
    assert_eq!(top_path(&answer), "src/tags.rs");
    drop(server);

    // Nothing cached and no store: alive, not ready, and the log says why.
    let empty = t.path().join("empty-cache");
    let server = follow(
        &store,
        "production",
        &empty,
        &["--poll-interval", "200ms"],
        &[],
    );
    let not_ready = server.wait_for("/readyz", READY, |r| {
        r.status == 503
            && r.json()["reason"]
                .as_str()
                .is_some_and(|s| s.contains("no cached bundle"))
    });
    assert_eq!(not_ready["status"], "not_ready");
    assert_eq!(http::get(server.addr, "/healthz").status, 200);
    let r = http::get(server.addr, "/v1/search?q=anything");
    assert_eq!(r.status, 503);
    assert!(r.header("retry-after").is_some());
    let logs = server.logs();
    assert!(
        logs.contains("not ready") && logs.contains("no cached bundle for 'production'"),
        "{logs}"
    );
}

#[test]
fn following_a_pattern_serves_the_newest_version_tag() {
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let repo = sample_repo();
    let v1 = build(&repo, &t.path().join("b"));
    push(&store, &v1.path);
    repo.write(
        "NOTES.md",
        "# Notes\n\nRelease notes for the second version.\n",
    );
    repo.commit("v2");
    let v2 = build(&repo, &t.path().join("b"));
    push(&store, &v2.path);
    // Text order would pick v1.9.0; semantic order picks v1.10.0.
    tag(&store, "v1.10.0", &v1.digest);
    tag(&store, "v1.9.0", &v2.digest);
    tag(&store, "latest", &v2.digest);
    let server = follow(
        &store,
        "v*",
        &t.path().join("cache"),
        &["--poll-interval", "100ms"],
        &[],
    );
    server.wait_ready(READY);
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["live"]["digest"], v1.digest);
    assert_eq!(info["live"]["tag"], "v1.10.0");
    tag(&store, "v2.0.0", &v2.digest);
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["tag"] == "v2.0.0"
    });
    assert_eq!(live_digest(server.addr), v2.digest);
}

/// `shelf serve --bundle` with the given env and extra flags.
fn serve_file(bundle: &Path, cache: &Path, extra: &[&str], env: &[(&str, &str)]) -> ServerProcess {
    ServerProcess::serve_bundle(Path::new(SHELF), bundle, cache, extra, env)
}

#[test]
fn tokens_are_required_compared_exactly_and_never_logged() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &["--log-format", "json"],
        &[
            (
                "SHELF_SEARCH_TOKENS",
                &format!("other-token-0123456789abcdef,{SEARCH_TOKEN}"),
            ),
            ("SHELF_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    );
    server.wait_ready(READY);
    let q = "/v1/search?q=tags";
    let r = http::get(server.addr, q);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"shelf\""));
    assert_eq!(r.json()["error"]["code"], "unauthorized");
    for bad in [
        "Bearer wrong-token-0123456789abcdef",
        &format!("Basic {SEARCH_TOKEN}"),
        &format!("Bearer {SEARCH_TOKEN}x"),
    ] {
        assert_eq!(
            http::request(server.addr, "GET", q, &[("Authorization", bad)], b"").status,
            401,
            "{bad}"
        );
    }
    let ok = http::request(
        server.addr,
        "GET",
        q,
        &[("Authorization", &format!("Bearer {SEARCH_TOKEN}"))],
        b"",
    );
    assert_eq!(ok.status, 200);
    // The admin token is not a search token, nor the reverse.
    let r = http::request(
        server.addr,
        "GET",
        q,
        &[("Authorization", &format!("Bearer {ADMIN_TOKEN}"))],
        b"",
    );
    assert_eq!(r.status, 401);
    let r = http::request(
        server.addr,
        "POST",
        "/v1/admin/reload",
        &[("Authorization", &format!("Bearer {SEARCH_TOKEN}"))],
        b"",
    );
    assert_eq!(r.status, 401);
    // A one-file server follows nothing: reload says so.
    assert_eq!(reload(server.addr).status, 409);
    // Probes stay open for load balancers.
    assert_eq!(http::get(server.addr, "/readyz").status, 200);
    assert_eq!(http::get(server.addr, "/healthz").status, 200);
    // Logs are JSON lines, one per request with its latency, and no secret.
    let searches = |logs: &str| -> Vec<serde_json::Value> {
        logs.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["fields"]["route"] == "search")
            .collect()
    };
    let logs = server.logs_when(Duration::from_secs(5), |l| searches(l).len() >= 5);
    assert!(!logs.contains(SEARCH_TOKEN) && !logs.contains(ADMIN_TOKEN));
    let access = searches(&logs);
    assert!(access.len() >= 5, "{logs}");
    assert!(
        access
            .iter()
            .any(|v| v["fields"]["status"] == 200 && v["fields"]["results"].as_u64() > Some(0))
    );
    assert!(
        access
            .iter()
            .all(|v| v["fields"]["latency_ms"].as_f64().is_some())
    );
}

/// Every class of bad input, each with its status and a JSON error body.
#[test]
fn bad_input_gets_a_4xx_with_a_json_error_never_a_500() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let config = t.path().join("shelf.toml");
    std::fs::write(&config, "[serve.limits]\nmax_body_bytes = 2048\nmax_query_bytes = 1024\nmax_k = 50\nheader_timeout = \"1s\"\n").unwrap();
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &["--config", &config.display().to_string()],
        &[],
    );
    server.wait_ready(READY);
    let addr = server.addr;
    let json_ct = [("Content-Type", "application/json")];
    let cases: Vec<(&str, http::Response, u16, &str)> = vec![
        (
            "empty query",
            http::get(addr, "/v1/search?q=%20"),
            400,
            "empty",
        ),
        ("no query", http::get(addr, "/v1/search"), 400, "missing"),
        (
            "k zero",
            http::get(addr, "/v1/search?q=x&k=0"),
            400,
            "out of range",
        ),
        (
            "huge k",
            http::get(addr, "/v1/search?q=x&k=1000000000000"),
            400,
            "out of range",
        ),
        (
            "k not a number",
            http::get(addr, "/v1/search?q=x&k=ten"),
            400,
            "whole number",
        ),
        (
            "unknown parameter",
            http::get(addr, "/v1/search?q=x&top=3"),
            400,
            "unknown parameter",
        ),
        (
            "invalid UTF-8 in the query string",
            http::get(addr, "/v1/search?q=%C3%28"),
            400,
            "UTF-8",
        ),
        (
            "query too long",
            http::get(addr, &format!("/v1/search?q={}", "a".repeat(1500))),
            413,
            "limit",
        ),
        (
            "invalid JSON",
            http::post_json(addr, "/v1/search", "{\"query\": "),
            400,
            "invalid JSON",
        ),
        (
            "wrong type",
            http::post_json(addr, "/v1/search", "{\"query\": [\"x\"]}"),
            400,
            "invalid type",
        ),
        (
            "k of the wrong type",
            http::post_json(addr, "/v1/search", "{\"query\": \"x\", \"k\": \"5\"}"),
            400,
            "invalid type",
        ),
        (
            "unknown field",
            http::post_json(addr, "/v1/search", "{\"query\": \"x\", \"topk\": 3}"),
            400,
            "unknown field",
        ),
        (
            "negative k",
            http::post_json(addr, "/v1/search", "{\"query\": \"x\", \"k\": -1}"),
            400,
            "invalid value",
        ),
        (
            "invalid UTF-8 body",
            http::request(
                addr,
                "POST",
                "/v1/search",
                &json_ct,
                b"{\"query\": \"\xc3\x28\"}",
            ),
            400,
            "UTF-8",
        ),
        (
            "body too large",
            http::request(addr, "POST", "/v1/search", &json_ct, &vec![b' '; 4096]),
            413,
            "limit",
        ),
        (
            "lying content length",
            http::request(
                addr,
                "POST",
                "/v1/search",
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Length", "99999999"),
                ],
                b"",
            ),
            413,
            "limit",
        ),
        (
            "form body",
            http::request(
                addr,
                "POST",
                "/v1/search",
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"q=x",
            ),
            415,
            "application/json",
        ),
        (
            "bad glob",
            http::get(addr, "/v1/search?q=x&path=src/%5B"),
            400,
            "glob",
        ),
        (
            "unknown language",
            http::get(addr, "/v1/search?q=x&language=cobol"),
            400,
            "unknown language",
        ),
        (
            "wrong method",
            http::request(addr, "DELETE", "/v1/search", &[], b""),
            405,
            "not allowed",
        ),
        (
            "unknown path",
            http::get(addr, "/v2/search"),
            404,
            "no such endpoint",
        ),
        (
            "a leading . segment",
            http::get(addr, "/v1/file?path=./src/tags.rs"),
            400,
            "'.' or empty segment",
        ),
        (
            "a . segment then an empty one (not an absolute path)",
            http::get(addr, "/v1/file?path=.//src/tags.rs"),
            400,
            "'.' or empty segment",
        ),
    ];
    for (what, r, status, needle) in cases {
        assert_eq!(
            r.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
        let body = r.json();
        assert_eq!(body["error"]["status"], status, "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{what}: {message}");
    }
    // Malformed HTTP is hyper's to refuse: a 4xx, never a 5xx.
    for raw in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET /v1/search?q=x HTTP/9.9\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\x02\r\n\r\n",
    ] {
        if let Some(answer) =
            http::raw(addr, raw, Duration::from_secs(5)).and_then(|b| http::parse(&b))
        {
            assert!(
                (400..500).contains(&answer.status),
                "{raw:?}: {}",
                answer.status
            );
        }
    }
    let huge_head = format!(
        "GET /v1/search?q=x HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
        "b".repeat(64 << 10)
    );
    if let Some(answer) =
        http::raw(addr, huge_head.as_bytes(), Duration::from_secs(5)).and_then(|b| http::parse(&b))
    {
        assert_eq!(answer.status, 431);
    }
    // A client that never finishes its head is cut off after the timeout.
    let started = std::time::Instant::now();
    let answer = http::raw(
        addr,
        b"GET /v1/search?q=x HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(10),
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "held for {:?}",
        started.elapsed()
    );
    if let Some(a) = answer.and_then(|b| http::parse(&b)) {
        assert_eq!(a.status, 408);
    }
    // A pattern across lines matches no line: no file is said to match.
    for pattern in [
        "%0A",
        "tag%0Apub",
        "%5Cn&regex=true",
        "tag%5Cs%2Bpub&regex=true",
    ] {
        let r = http::get(addr, &format!("/v1/grep?pattern={pattern}"));
        assert_eq!(r.status, 200, "{pattern}");
        let a = r.json();
        assert_eq!(
            (a["total_matches"].as_u64(), a["files_matched"].as_u64()),
            (Some(0), Some(0)),
            "{pattern}: {a:#}"
        );
    }
    // And the server is fine after all of it.
    assert_eq!(
        search(addr, "move a tag")["results"]
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    let metrics = String::from_utf8(http::get(addr, "/metrics").body).unwrap();
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
}

/// A server for a property test, stopped when the test ends: one bundle
/// file, with an admin token so the admin API is reached too.
fn fuzz_target() -> (tempfile::TempDir, ServerProcess) {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &[],
        &[("SHELF_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    server.wait_ready(READY);
    (t, server)
}

fn no_5xx(r: &http::Response, sent: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        r.status < 500,
        "{sent} -> {} {}",
        r.status,
        String::from_utf8_lossy(&r.body)
    );
    if r.status != 202 {
        prop_assert!(
            serde_json::from_slice::<serde_json::Value>(&r.body).is_ok(),
            "{sent}: body is not JSON"
        );
    }
    Ok(())
}

/// After a fuzz run: nothing panicked and nothing answered 500, on any
/// route (the access log and the metrics say).
fn nothing_failed(server: &ServerProcess) {
    let metrics = String::from_utf8(http::get(server.addr, "/metrics").body).unwrap();
    assert!(!metrics.contains("status=\"500\""), "{metrics}");
    let logs = server.logs();
    assert!(!logs.contains("panicked"), "{logs}");
}

fn fuzz_config() -> ProptestConfig {
    ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Parameter values: random bytes, and values that mean something to
/// some endpoint (paths good and bad, patterns across lines, numbers at
/// and past their bounds).
fn fuzz_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(vec![
            "src/tags.rs",
            "./src/tags.rs",
            ".//src/tags.rs",
            "src/./tags.rs",
            "../../etc/passwd",
            "/etc/passwd",
            "C:\\x",
            "src\\tags.rs",
            "tag",
            "move_tag",
            "\n",
            "a\nb",
            "\\n",
            "(",
            "[",
            ".*",
            "(a+)+$",
            "x{99999}",
            "0",
            "1",
            "-1",
            "3",
            "99999999999999999999",
            "true",
            "false",
            "rust",
            "cobol",
            "hybrid",
            "file",
            "src/**",
            "example-repo",
            "",
        ])
        .prop_map(|v| v.as_bytes().to_vec()),
    ]
}

/// Every endpoint with a query string, with the parameter names any of
/// them knows (and some none does): method, path, names.
fn fuzz_endpoint() -> impl Strategy<Value = (&'static str, &'static str, bool)> {
    prop::sample::select(vec![
        ("GET", "/v1/search", false),
        ("GET", "/v1/file", false),
        ("GET", "/v1/grep", false),
        ("GET", "/v1/definitions", false),
        ("GET", "/v1/repos", false),
        ("GET", "/v1/bundle", false),
        ("POST", "/v1/admin/reload", false),
        ("POST", "/v1/admin/reload", true),
    ])
}

/// Random query strings on every endpoint (the admin API with and without
/// its token): never a 5xx, always a JSON body, and a grep's counts agree
/// with each other.
#[test]
fn random_query_strings_never_get_a_5xx() {
    let (_t, server) = fuzz_target();
    let names = prop::sample::select(vec![
        "q",
        "k",
        "path",
        "language",
        "mode",
        "group",
        "repo",
        "kind",
        "max_tokens",
        "pattern",
        "regex",
        "ignore_case",
        "limit",
        "start_line",
        "end_line",
        "name",
        "x",
        "",
        "q%00",
    ]);
    let cases = (
        fuzz_endpoint(),
        prop::collection::vec((names, fuzz_value()), 0..5),
    );
    let admin = format!("Bearer {ADMIN_TOKEN}");
    proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 384,
        ..fuzz_config()
    })
    .run(&cases, |((method, path, with_token), pairs)| {
        let qs: Vec<String> = pairs
            .iter()
            .map(|(n, v)| {
                format!(
                    "{n}={}",
                    v.iter().map(|b| format!("%{b:02X}")).collect::<String>()
                )
            })
            .collect();
        let target = format!("{path}?{}", qs.join("&"));
        let headers: Vec<(&str, &str)> = if with_token {
            vec![("Authorization", admin.as_str())]
        } else {
            vec![]
        };
        let r = http::try_request(server.addr, method, &target, &headers, b"");
        prop_assert!(r.is_some(), "no answer to {method} {target}");
        let r = r.unwrap();
        no_5xx(&r, &target)?;
        if path == "/v1/grep" && r.status == 200 {
            let a = r.json();
            let (total, files) = (
                a["total_matches"].as_u64().unwrap(),
                a["files_matched"].as_u64().unwrap(),
            );
            prop_assert!(
                files <= total && (files == 0) == (total == 0),
                "{target}: {total} matches in {files} files"
            );
        }
        Ok(())
    })
    .unwrap();
    nothing_failed(&server);
}

/// Random JSON-RPC messages to `POST /mcp`: every method, every tool with
/// random arguments, batches and junk. Never a 5xx, never a JSON-RPC
/// internal error, never a tool answering `internal`.
#[test]
fn random_mcp_messages_never_get_a_5xx_or_an_internal_error() {
    let (_t, server) = fuzz_target();
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-3i64..2000).prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        fuzz_value()
            .prop_map(|v| serde_json::Value::from(String::from_utf8_lossy(&v).into_owned())),
    ];
    let value = leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..3)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    let arg_names = prop::sample::select(vec![
        "query",
        "k",
        "path",
        "language",
        "mode",
        "group",
        "repo",
        "kind",
        "max_tokens",
        "pattern",
        "regex",
        "ignore_case",
        "limit",
        "start_line",
        "end_line",
        "name",
        "x",
    ]);
    let arguments = prop::collection::btree_map(arg_names, value.clone(), 0..5).prop_map(|m| {
        serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    });
    let tool = prop::sample::select(vec![
        "search_code",
        "read_file",
        "grep",
        "find_definitions",
        "list_repositories",
        "no_such_tool",
    ]);
    let call = (
        tool,
        prop_oneof![3 => arguments, 1 => value.clone()],
        any::<u16>(),
    )
        .prop_map(|(tool, arguments, id)| {
            serde_json::json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                               "params": {"name": tool, "arguments": arguments}})
        });
    let other = (
        prop::sample::select(vec![
            "initialize",
            "tools/list",
            "ping",
            "server/discover",
            "notifications/initialized",
            "resources/list",
            "",
        ]),
        value,
        prop::option::of(any::<i32>()),
    )
        .prop_map(|(method, params, id)| {
            let mut m = serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params});
            if let Some(id) = id {
                m["id"] = id.into();
            }
            m
        });
    let message = prop_oneof![4 => call, 2 => other];
    let body = prop_oneof![
        6 => message.clone().prop_map(|m| serde_json::to_vec(&m).unwrap()),
        1 => prop::collection::vec(message, 0..4)
            .prop_map(|b| serde_json::to_vec(&serde_json::Value::from(b)).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ];
    proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 256,
        ..fuzz_config()
    })
    .run(&body, |body| {
        let sent = String::from_utf8_lossy(&body).into_owned();
        let r = http::try_request(
            server.addr,
            "POST",
            "/mcp",
            &[("Content-Type", "application/json")],
            &body,
        );
        prop_assert!(r.is_some(), "no answer to {sent}");
        let r = r.unwrap();
        no_5xx(&r, &sent)?;
        let answer: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        let replies = match &answer {
            serde_json::Value::Array(all) => all.clone(),
            one => vec![one.clone()],
        };
        for reply in &replies {
            prop_assert!(reply["error"]["code"] != -32603, "{sent} -> {reply}");
            let content = reply["result"]["content"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in content {
                let text = c["text"].as_str().unwrap_or("");
                prop_assert!(!text.contains(" (internal): "), "{sent} -> {text}");
            }
        }
        Ok(())
    })
    .unwrap();
    nothing_failed(&server);
}

#[test]
fn random_bodies_never_get_a_5xx() {
    let (_t, server) = fuzz_target();
    let bodies = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..300),
        (
            "[a-z ]{0,40}",
            prop::option::of(any::<i64>()),
            prop::option::of("[a-z*/{}\\[]{0,12}"),
            prop::option::of("[a-z]{0,8}"),
            prop::option::of(prop::sample::select(vec![
                "hybrid", "semantic", "lexical", "x"
            ])),
            prop::option::of(prop::sample::select(vec!["file", "chunk", "dir"])),
        )
            .prop_map(|(q, k, p, l, m, g)| {
                let mut v = serde_json::json!({ "query": q });
                if let Some(k) = k {
                    v["k"] = serde_json::json!(k);
                }
                if let Some(p) = p {
                    v["path"] = serde_json::json!(p);
                }
                if let Some(l) = l {
                    v["language"] = serde_json::json!(l);
                }
                if let Some(m) = m {
                    v["mode"] = serde_json::json!(m);
                }
                if let Some(g) = g {
                    v["group"] = serde_json::json!(g);
                }
                serde_json::to_vec(&v).unwrap()
            }),
    ];
    proptest::test_runner::TestRunner::new(fuzz_config())
        .run(&bodies, |body| {
            let r = http::try_request(
                server.addr,
                "POST",
                "/v1/search",
                &[("Content-Type", "application/json")],
                &body,
            );
            prop_assert!(r.is_some(), "no answer");
            no_5xx(&r.unwrap(), &String::from_utf8_lossy(&body))
        })
        .unwrap();
    nothing_failed(&server);
}

#[test]
fn over_the_rate_a_client_gets_429_and_over_capacity_503_both_with_retry_after() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let config = t.path().join("shelf.toml");
    std::fs::write(
        &config,
        "[serve.limits]\nrate_limit_per_second = 2\nrate_limit_burst = 3\n",
    )
    .unwrap();
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &["--config", &config.display().to_string()],
        &[],
    );
    server.wait_ready(READY);
    let statuses: Vec<_> = (0..6)
        .map(|_| http::get(server.addr, "/v1/search?q=tags"))
        .collect();
    assert!(statuses[..3].iter().all(|r| r.status == 200));
    let limited = statuses
        .iter()
        .find(|r| r.status == 429)
        .expect("the burst is 3");
    assert!(
        limited
            .header("retry-after")
            .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1))
    );
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    // Health probes are not rate limited.
    assert_eq!(http::get(server.addr, "/readyz").status, 200);
    drop(server);

    std::fs::write(
        &config,
        "[serve.limits]\nmax_concurrent = 1\nmax_queued = 0\n",
    )
    .unwrap();
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &["--config", &config.display().to_string()],
        &[],
    );
    server.wait_ready(READY);
    let addr = server.addr;
    let answers: Vec<http::Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                s.spawn(move || {
                    (0..6)
                        .map(|j| {
                            http::get(
                                addr,
                                &format!("/v1/search?q=query+number+{i}+{j}+about+tags"),
                            )
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let overloaded: Vec<_> = answers.iter().filter(|r| r.status == 503).collect();
    assert!(answers.iter().all(|r| r.status == 200 || r.status == 503));
    assert!(
        !overloaded.is_empty(),
        "12 clients against one slot and no queue"
    );
    assert!(
        overloaded
            .iter()
            .all(|r| r.header("retry-after") == Some("1")
                && r.json()["error"]["code"] == "overloaded")
    );
    assert!(answers.iter().any(|r| r.status == 200));
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(&v1.path, &t.path().join("cache"), &[], &[]);
    server.wait_ready(READY);
    let addr = server.addr;
    // A request whose body is still arriving when the signal comes.
    let body = br#"{"query": "move a tag with compare-and-swap", "k": 2}"#;
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    stream.write_all(&body[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let pid = server.pid();
    let stopper = std::thread::spawn(move || server.terminate(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body[10..]).unwrap();
    let mut answer = Vec::new();
    std::io::Read::read_to_end(&mut stream, &mut answer).unwrap();
    let answer = http::parse(&answer).expect("an answer after SIGTERM");
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["results"][0]["path"], "src/tags.rs");
    let status = stopper.join().unwrap();
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "pid {pid} did not exit cleanly"
    );
    // And it no longer accepts connections.
    assert!(std::net::TcpStream::connect(addr).is_err());
}

#[test]
fn tag_moves_under_load_fail_no_request_and_never_mix_bundles() {
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let (repo, v1) = published(&store, &t.path().join("b"));
    repo.write(
        "src/cache.rs",
        "/// Evicts the least recently used entries.\npub fn evict_lru() {}\n",
    );
    repo.commit("v2");
    let v2 = build(&repo, &t.path().join("b"));
    push(&store, &v2.path);
    let server = follow(
        &store,
        "production",
        &t.path().join("cache"),
        &["--poll-interval", "1h"],
        &[("SHELF_ADMIN_TOKEN", ADMIN_TOKEN)],
    );
    server.wait_ready(READY);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let allowed = [v1.digest.clone(), v2.digest.clone()];
    let clients: Vec<_> = (0..6)
        .map(|i| {
            let (stop, ok, failed, allowed) =
                (stop.clone(), ok.clone(), failed.clone(), allowed.clone());
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match http::try_request(
                        addr,
                        "GET",
                        &format!("/v1/search?q=evict+tags+{i}&k=3"),
                        &[],
                        b"",
                    ) {
                        Some(r) if r.status == 200 => {
                            let v = r.json();
                            let d = v["bundle"]["digest"].as_str().unwrap_or("").to_string();
                            assert!(allowed.contains(&d), "answer from {d}");
                            // Every result comes from the bundle named: v1 has no cache.rs.
                            if d == allowed[0] {
                                assert!(
                                    v["results"]
                                        .as_array()
                                        .unwrap()
                                        .iter()
                                        .all(|r| r["path"] != "src/cache.rs")
                                );
                            }
                            seen.push(d);
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        other => {
                            eprintln!(
                                "failed: {:?}",
                                other.map(|r| (
                                    r.status,
                                    String::from_utf8_lossy(&r.body).into_owned()
                                ))
                            );
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                seen
            })
        })
        .collect();
    for round in 0..6 {
        let to = if round % 2 == 0 {
            &v2.digest
        } else {
            &v1.digest
        };
        tag(&store, "production", to);
        let report = reload(addr).json();
        assert_eq!(report["live"], to.as_str(), "{report:#}");
        // Let queries land on this bundle before the next move, however
        // slow a busy machine makes them.
        let before = ok.load(Ordering::Relaxed);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while ok.load(Ordering::Relaxed) < before + 6 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    stop.store(true, Ordering::Relaxed);
    let seen: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        ok.load(Ordering::Relaxed) >= 36,
        "{} answers",
        ok.load(Ordering::Relaxed)
    );
    assert!(seen.contains(&v1.digest) && seen.contains(&v2.digest));
    let metrics = String::from_utf8(http::get(addr, "/metrics").body).unwrap();
    assert_eq!(
        http::metric_value(&metrics, "shelf_bundle_swaps_total", &[]),
        Some(7.0),
        "{metrics}"
    );
}

#[test]
fn search_cli_asks_a_server_and_prints_what_it_answers() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(
        &v1.path,
        &t.path().join("cache"),
        &[],
        &[("SHELF_SEARCH_TOKENS", SEARCH_TOKEN)],
    );
    server.wait_ready(READY);
    let url = format!("http://{}", server.addr);
    let (code, out, err) = shelf(
        &[
            "search",
            "move a tag with compare-and-swap",
            "--server",
            &url,
            "-k",
            "2",
            "--json",
        ],
        &[("SHELF_TOKEN", SEARCH_TOKEN)],
    );
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["results"][0]["path"], "src/tags.rs");
    assert_eq!(v["bundle"]["digest"], v1.digest);
    let (code, out, _) = shelf(
        &[
            "search",
            "resize a picture",
            "--server",
            &url,
            "--language",
            "python",
        ],
        &[("SHELF_TOKEN", SEARCH_TOKEN)],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("tools/resize.py") && !out.contains("src/tags.rs"),
        "{out}"
    );
    // Refusals are errors that say why.
    let (code, _, err) = shelf(&["search", "tags", "--server", &url], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("401") && err.contains("token"), "{err}");
    let (code, _, err) = shelf(&["search", "tags", "--server", "http://127.0.0.1:9"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot reach"), "{err}");
}

/// `shelf search --bundle F --json` and `GET /v1/search` over the same
/// bundle are one engine's answer: equal field for field but the timings,
/// for chunks and for files, with filters.
#[test]
fn search_cli_on_a_bundle_and_the_api_give_the_same_answer() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(&v1.path, &t.path().join("cache"), &[], &[]);
    server.wait_ready(READY);
    let bundle = v1.path.display().to_string();
    let cli_cache = t.path().join("cli-cache").display().to_string();
    let cases: [(&str, &[&str]); 3] = [
        (
            "q=move+a+tag+with+compare-and-swap",
            &["move a tag with compare-and-swap"],
        ),
        (
            "q=resize+a+picture&group=file&k=3",
            &["resize a picture", "--files", "-k", "3"],
        ),
        (
            "q=where+are+tags+read&language=rust&mode=lexical",
            &[
                "where are tags read",
                "--language",
                "rust",
                "--mode",
                "lexical",
            ],
        ),
    ];
    for (query_string, cli_args) in cases {
        let r = http::get(server.addr, &format!("/v1/search?{query_string}"));
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        let api = http::timeless(r.json());
        let mut args = vec![
            "search", "--json", "--bundle", &bundle, "--cache", &cli_cache,
        ];
        args.extend_from_slice(cli_args);
        let (code, out, err) = shelf(&args, &[]);
        assert_eq!(code, 0, "{err}");
        let cli = http::timeless(serde_json::from_str(&out).unwrap());
        // A file has no tag; the server's answer says it serves none either.
        assert_eq!(api, cli, "{query_string}");
        assert!(
            api["results"]
                .as_array()
                .or(api["files"].as_array())
                .is_some_and(|r| !r.is_empty()),
            "{query_string}: {api}"
        );
    }
}

/// docs/openapi.json names every route the server has, and a real answer
/// has every field its schema requires.
#[test]
fn the_openapi_document_matches_the_server() {
    let doc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json"))
            .unwrap(),
    )
    .unwrap();
    let mut paths: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        [
            "/healthz",
            "/mcp",
            "/metrics",
            "/readyz",
            "/v1/admin/reload",
            "/v1/bundle",
            "/v1/definitions",
            "/v1/file",
            "/v1/grep",
            "/v1/repos",
            "/v1/search"
        ]
    );
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&sample_repo(), &t.path().join("b"));
    let server = serve_file(&v1.path, &t.path().join("cache"), &[], &[]);
    server.wait_ready(READY);
    let schemas = &doc["components"]["schemas"];
    let required = |schema: &str| -> Vec<String> {
        schemas[schema]["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let answer = search(server.addr, "move a tag");
    for field in required("SearchResponse") {
        assert!(!answer[&field].is_null(), "search response lacks {field}");
    }
    for field in required("Result") {
        assert!(
            answer["results"][0].get(&field).is_some(),
            "result lacks {field}"
        );
    }
    let bundle = http::get(server.addr, "/v1/bundle").json();
    for field in required("BundleStatus") {
        assert!(bundle.get(&field).is_some(), "bundle status lacks {field}");
    }
    for (target, schema) in [
        ("/v1/file?path=src/tags.rs", "FileAnswer"),
        ("/v1/grep?pattern=tag", "GrepAnswer"),
        ("/v1/definitions?name=move_tag", "DefinitionsAnswer"),
        ("/v1/repos", "RepoList"),
    ] {
        let answer = http::get(server.addr, target).json();
        for field in required(schema) {
            assert!(answer.get(&field).is_some(), "{target} lacks {field}");
        }
    }
    let repo = &http::get(server.addr, "/v1/repos").json()["repos"][0];
    let item = &schemas["RepoList"]["properties"]["repos"]["items"]["required"];
    for field in item.as_array().unwrap() {
        assert!(
            repo.get(field.as_str().unwrap()).is_some(),
            "repo lacks {field}"
        );
    }
    for field in required("BundleRef") {
        assert!(
            answer["bundle"].get(&field).is_some(),
            "bundle ref lacks {field}"
        );
    }
    let error = http::get(server.addr, "/v1/search?q=").json();
    for field in required("Error") {
        assert!(error.get(&field).is_some(), "error lacks {field}");
    }
    // The codes the server can send (one list, shelf_server::http::Code:
    // no code is sent that is not in it) are the codes docs/api.md's error
    // table lists, each with its status.
    let api_md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/api.md")).unwrap();
    assert_eq!(
        documented_codes(&api_md),
        shelf_server::http::Code::ALL
            .iter()
            .map(|c| (c.status().as_u16(), c.as_str().to_string()))
            .collect::<std::collections::BTreeSet<_>>(),
        "docs/api.md's error table against the server's codes"
    );
}

/// The `(status, code)` pairs of docs/api.md's table under "## Errors":
/// rows `| 400 | `code`, `other` | when |`.
fn documented_codes(api_md: &str) -> std::collections::BTreeSet<(u16, String)> {
    let section = api_md
        .split("\n## Errors\n")
        .nth(1)
        .expect("docs/api.md has an Errors section")
        .split("\n## ")
        .next()
        .unwrap();
    let mut codes = std::collections::BTreeSet::new();
    for row in section.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else {
            continue; // the header and the rule
        };
        for code in cells[2].split(',') {
            let code = code.trim().trim_matches('`');
            assert!(
                !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "a code cell of docs/api.md: {row}"
            );
            codes.insert((status, code.to_string()));
        }
    }
    codes
}
