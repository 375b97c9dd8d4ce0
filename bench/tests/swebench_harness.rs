//! The retrieval harnesses end to end on a small repository they build
//! here: the same code that scores the SWE-bench set (fetched repositories,
//! built per base commit, every system scored) and asks it across
//! repositories must keep working in CI, where the real repositories cannot
//! be fetched.

use std::path::Path;
use std::process::Command;

use shelf_testkit::sample_repo;

#[test]
fn the_harnesses_build_per_commit_and_score_every_system() {
    let t = tempfile::tempdir().unwrap();
    let repo = sample_repo();
    let c1 = repo.git(&["rev-parse", "HEAD"]);
    repo.write(
        "src/cache.rs",
        "/// Evicts the least recently used entries when the cache is full.\npub fn evict_lru(cache: &mut Cache) {\n    while cache.len() > cache.capacity() { cache.pop_oldest(); }\n}\n",
    );
    let c2 = repo.commit("an LRU cache");
    // The mirror layout the harness reads: <dir>/<owner>+<name>/repo (bare).
    let mirror = t.path().join("mirror");
    std::fs::create_dir_all(mirror.join("test+repo")).unwrap();
    let bare = repo.bare_clone(&mirror.join("test+repo"));
    std::fs::rename(&bare, mirror.join("test+repo/repo")).unwrap();
    let rows = [
        (
            c1.as_str(),
            "moving a tag with compare and swap",
            "src/tags.rs",
        ),
        (
            c1.as_str(),
            "scale an image: see tools/resize.py",
            "tools/resize.py",
        ),
        (
            c2.as_str(),
            "evict least recently used entries from the cache",
            "src/cache.rs",
        ),
    ];
    let jsonl: String = rows
        .iter()
        .enumerate()
        .map(|(i, (commit, query, gold))| {
            format!(
                "{}\n",
                serde_json::json!({
                    "instance_id": format!("test__repo-{i}"),
                    "repo": "test/repo",
                    "base_commit": commit,
                    "query": query,
                    "gold_files": [gold],
                })
            )
        })
        .collect();
    let queries = t.path().join("rows.jsonl");
    std::fs::write(&queries, jsonl).unwrap();
    let json_out = t.path().join("out.json");
    let out = Command::new(env!("CARGO_BIN_EXE_shelf-bench"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["swebench", "--queries"])
        .arg(&queries)
        .arg("--mirror")
        .arg(&mirror)
        .arg("--bundle-cache")
        .arg(t.path().join("bundles"))
        .arg("--json-out")
        .arg(&json_out)
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("test/repo 2/2: building") && stderr.contains("(incremental)"),
        "{stderr}"
    );
    assert!(
        stdout.contains("all (no leaks)") && stdout.contains("bm25-file"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
    for system in ["bm25-file", "lexical", "semantic", "hybrid", "hybrid-1win"] {
        let report = &results["systems"][system]["report"];
        assert_eq!(report["overall"]["n"], 3, "{system}");
        assert_eq!(
            report["without_leaks"]["n"], 2,
            "{system}: one query names its gold path"
        );
        assert!(report["groups"]["test/repo"]["n"] == 3, "{system}");
    }
    // Floors: every ranker finds these answers in its top 5.
    for system in ["lexical", "semantic", "hybrid"] {
        let r5 = results["systems"][system]["report"]["overall"]["recall_at_5"]
            .as_f64()
            .unwrap();
        assert!(r5 >= 0.99, "{system}: recall@5 {r5}");
    }
    let mrr = results["systems"]["hybrid"]["report"]["overall"]["mrr"]
        .as_f64()
        .unwrap();
    assert!(mrr >= 0.8, "hybrid MRR {mrr}");
    // `across` asks the same rows of the same kept bundles; with a single
    // repository every fusion is the repository alone.
    let across_out = t.path().join("across.json");
    let across = Command::new(env!("CARGO_BIN_EXE_shelf-bench"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["across", "--queries"])
        .arg(&queries)
        .arg("--mirror")
        .arg(&mirror)
        .arg("--bundle-cache")
        .arg(t.path().join("bundles"))
        .arg("--json-out")
        .arg(&across_out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&across.stderr);
    assert!(
        across.status.success() && !stderr.contains("building"),
        "{stderr}"
    );
    let across: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&across_out).unwrap()).unwrap();
    let ceiling = &across["systems"]["own-repo-only"]["overall"];
    assert_eq!(ceiling["n"], 3, "{across}");
    for fusion in ["collection", "interleave", "scores"] {
        assert_eq!(&across["systems"][fusion]["overall"], ceiling, "{fusion}");
    }
    // A second run builds nothing: the bundles are kept.
    let again = Command::new(env!("CARGO_BIN_EXE_shelf-bench"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["swebench", "--build-only", "--queries"])
        .arg(&queries)
        .arg("--mirror")
        .arg(&mirror)
        .arg("--bundle-cache")
        .arg(t.path().join("bundles"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && !stderr.contains("building"),
        "{stderr}"
    );
}
