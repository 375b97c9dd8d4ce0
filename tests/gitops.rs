//! GitOps end to end, as users meet it: the GitHub Action's own steps
//! (`scripts/action/publish`) against a real S3-compatible server and a
//! local store, a real `shelf serve` following the tag, swaps and rollback
//! under a client that never stops querying, and the linters of the action
//! and the workflows.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use shelf_testkit::cli;
use shelf_testkit::http::{self, encode};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::{GitRepo, MotoServer, SAMPLE_GOLDEN, TEST_BUCKET, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ADMIN_TOKEN: &str = "admin-token-0123456789abcdef";

/// What one run of the action's publish step printed and wrote.
#[derive(Debug)]
struct Published {
    outputs: BTreeMap<String, String>,
    summary: String,
    stderr: String,
    build: Option<serde_json::Value>,
}

impl Published {
    fn out(&self, key: &str) -> &str {
        self.outputs.get(key).map(String::as_str).unwrap_or("")
    }
}

/// The environment the action gives its publish step, for one store.
struct Action {
    env: Vec<(String, String)>,
    work: tempfile::TempDir,
}

impl Action {
    fn new(store: &str, extra: &[(&str, String)]) -> Self {
        let work = tempfile::tempdir().unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("SHELF_BIN".into(), SHELF.into()),
            ("SHELF_STORE".into(), store.into()),
            (
                "SHELF_PREVIOUS_DIR".into(),
                work.path().join("previous").display().to_string(),
            ),
            ("SHELF_LOG".into(), "warn".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
        Self { env, work }
    }

    /// Runs `scripts/action/publish` with the action's variables plus
    /// `vars`; returns its outputs, or the exit code and stderr.
    fn publish(&self, vars: &[(&str, &str)]) -> Result<Published, (i32, String)> {
        match self.run(vars) {
            (0, published) => Ok(published),
            (code, published) => Err((code, published.stderr)),
        }
    }

    /// Runs `scripts/action/publish`: its exit code, and what it wrote
    /// (outputs and summary are written before a failure too).
    fn run(&self, vars: &[(&str, &str)]) -> (i32, Published) {
        let run = tempfile::tempdir_in(self.work.path()).unwrap();
        let (output_file, summary_file) = (run.path().join("output"), run.path().join("summary"));
        let scratch = run.path().join("scratch");
        let mut cmd = Command::new(Path::new(ROOT).join("scripts/action/publish"));
        cmd.current_dir(ROOT)
            .env_remove("GITHUB_ACTIONS")
            .env_remove("SHELF_RUNTIME")
            .env("GITHUB_OUTPUT", &output_file)
            .env("GITHUB_STEP_SUMMARY", &summary_file)
            .env("SHELF_WORK_DIR", &scratch);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("publish runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let outputs = std::fs::read_to_string(&output_file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let build = std::fs::read(scratch.join("build.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        let published = Published {
            outputs,
            summary: std::fs::read_to_string(&summary_file).unwrap_or_default(),
            stderr,
            build,
        };
        (out.status.code().unwrap_or(-1), published)
    }
}

fn publish_ok(action: &Action, vars: &[(&str, &str)]) -> Published {
    action
        .publish(vars)
        .unwrap_or_else(|(code, err)| panic!("publish exited {code}:\n{err}"))
}

fn s3_env(moto: &MotoServer) -> Vec<(&'static str, String)> {
    vec![
        ("SHELF_S3_ENDPOINT", moto.endpoint()),
        ("SHELF_S3_PATH_STYLE", "true".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

fn shelf(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli::run(Path::new(SHELF), args, &env)
}

fn repo_str(repo: &GitRepo) -> String {
    repo.path().display().to_string()
}

#[test]
fn the_action_builds_reuses_builds_incrementally_promotes_and_notifies_on_s3() {
    let moto = MotoServer::start();
    let store = format!("s3://{TEST_BUCKET}/indexes");
    let env = s3_env(&moto);
    let action = Action::new(&store, &env);
    let repo = sample_repo();
    let path = repo_str(&repo);

    // A push to main: a cold build.
    let first = publish_ok(
        &action,
        &[("SHELF_TAG", "main"), ("SHELF_REPOSITORY", &path)],
    );
    let d1 = first.out("digest").to_string();
    assert!(
        d1.starts_with("sha256:") && d1.len() == 71,
        "{:?}",
        first.outputs
    );
    assert_eq!((first.out("reused"), first.out("tag")), ("false", "main"));
    assert_eq!(first.out("commit"), repo.git(&["rev-parse", "HEAD"]));
    assert!(
        first.summary.contains(&d1) && first.summary.contains("| chunks |"),
        "{}",
        first.summary
    );

    // The workflow re-runs on the same commit: a lookup, not a build.
    let again = publish_ok(
        &action,
        &[("SHELF_TAG", "main"), ("SHELF_REPOSITORY", &path)],
    );
    assert_eq!(
        (again.out("digest"), again.out("reused")),
        (d1.as_str(), "true")
    );
    assert!(
        again.summary.contains("already existed"),
        "{}",
        again.summary
    );

    // A new commit, with a server following main to notify.
    let server = ServerProcess::start(
        Path::new(SHELF),
        &[
            "--store",
            &store,
            "--endpoint-url",
            &moto.endpoint(),
            "--path-style",
            "--follow",
            "main",
            "--poll-interval",
            "1h",
            "--cache",
            &action.work.path().join("serve-cache").display().to_string(),
        ],
        &[
            ("SHELF_ADMIN_TOKEN", ADMIN_TOKEN),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ],
    );
    server.wait_ready(Duration::from_secs(60));
    repo.write(
        "src/cache.rs",
        "/// Evicts the least recently used entries.\npub fn evict_lru() {}\n",
    );
    repo.commit("add an LRU cache");
    let url = format!("http://{}", server.addr);
    let third = publish_ok(
        &action,
        &[
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", &path),
            ("SHELF_RELOAD_URL", &format!("{url}, http://127.0.0.1:9")),
            ("SHELF_RELOAD_TOKEN", ADMIN_TOKEN),
        ],
    );
    let d2 = third.out("digest").to_string();
    assert_ne!(d2, d1);
    assert_eq!(third.out("reused"), "false");
    let build = third.build.as_ref().expect("the build's JSON report");
    assert!(
        build["chunks"]["reused"].as_u64().unwrap() >= 4,
        "{build:#}"
    );
    assert!(
        build["chunks"]["embedded"].as_u64().unwrap() <= 2,
        "{build:#}"
    );
    assert!(
        third
            .stderr
            .contains("incrementally from the cached bundle"),
        "{}",
        third.stderr
    );
    // The server was told, and had swapped before the step ended; the dead
    // second URL is a warning, not a failure.
    let live = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(live["live"]["digest"], d2.as_str());
    assert!(
        third.stderr.contains("could not notify http://127.0.0.1:9"),
        "{}",
        third.stderr
    );
    assert!(third.summary.contains(&url), "{}", third.summary);

    // Promotion: production moves to main's bundle; nothing is built.
    let promoted = publish_ok(
        &action,
        &[("SHELF_TAG", "production"), ("SHELF_FROM_TAG", "main")],
    );
    assert_eq!(
        (promoted.out("digest"), promoted.out("reused")),
        (d2.as_str(), "true")
    );
    assert!(promoted.build.is_none(), "a promotion builds nothing");
    let mut args = vec!["tags", "--json", "--store", &store];
    let endpoint = moto.endpoint();
    args.extend(["--endpoint-url", &endpoint, "--path-style"]);
    let (code, out, err) = shelf(&args, &env);
    assert_eq!(code, 0, "{err}");
    let tags: serde_json::Value = serde_json::from_str(&out).unwrap();
    let production = tags
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == "production")
        .unwrap();
    assert_eq!(production["digest"], d2.as_str());

    // Missing inputs are named.
    let (code, err) = Action::new("", &env)
        .publish(&[("SHELF_TAG", "main")])
        .err()
        .unwrap();
    assert_eq!(code, 1);
    assert!(
        err.contains("SHELF_STORE") && err.contains("'store' input"),
        "{err}"
    );
}

/// Bundles in a local store.
fn bundles_in(store: &Path) -> usize {
    std::fs::read_dir(store.join("bundles/sha256"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".tar.zst"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn gitops_end_to_end_swap_and_rollback_by_retagging_without_a_failed_query() {
    let t = tempfile::tempdir().unwrap();
    let store_dir = t.path().join("store");
    let store = store_dir.display().to_string();
    let action = Action::new(&store, &[]);
    let repo = sample_repo();
    let path = repo_str(&repo);
    let c1 = repo.git(&["rev-parse", "HEAD"]);
    repo.git(&["tag", "v1"]);

    // v1: built and published by the action's step, tagged production.
    let v1 = publish_ok(
        &action,
        &[("SHELF_TAG", "production"), ("SHELF_REPOSITORY", &path)],
    );
    let d1 = v1.out("digest").to_string();
    let poll = Duration::from_millis(300);
    let server = ServerProcess::start(
        Path::new(SHELF),
        &[
            "--store",
            &store,
            "--follow",
            "production",
            "--poll-interval",
            "300ms",
            "--cache",
            &t.path().join("cache").display().to_string(),
        ],
        &[],
    );
    server.wait_ready(Duration::from_secs(60));
    let q = format!(
        "/v1/search?q={}&k=3",
        encode("evict least recently used cache entries")
    );
    let answer = http::get(server.addr, &q).json();
    assert_eq!(answer["bundle"]["digest"], d1.as_str());
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"] != "src/cache.rs")
    );

    // A client that never stops asking, through everything that follows.
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let addr = server.addr;
    let client = {
        let (stop, failed, q) = (stop.clone(), failed.clone(), q.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http::try_request(addr, "GET", &q, &[], b"") {
                    Some(r) if r.status == 200 => seen.push(
                        r.json()["bundle"]["digest"]
                            .as_str()
                            .unwrap_or("")
                            .to_string(),
                    ),
                    other => {
                        eprintln!("failed query: {:?}", other.map(|r| r.status));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        })
    };

    // v2: a commit, an incremental build, the tag moves; the server follows.
    repo.write("src/cache.rs", "/// Evicts the least recently used entries when the cache is full.\npub fn evict_lru(cache: &mut Cache) {\n    while cache.len() > cache.capacity() { cache.pop_oldest(); }\n}\n");
    repo.commit("v2");
    let v2 = publish_ok(
        &action,
        &[("SHELF_TAG", "production"), ("SHELF_REPOSITORY", &path)],
    );
    let d2 = v2.out("digest").to_string();
    let b = v2.build.as_ref().unwrap();
    assert!(b["chunks"]["reused"].as_u64() > Some(0), "{b:#}");
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["digest"] == d2.as_str()
    });
    let answer = http::get(server.addr, &q).json();
    assert_eq!(answer["bundle"]["digest"], d2.as_str());
    assert_eq!(answer["results"][0]["path"], "src/cache.rs");
    let stored = bundles_in(&store_dir);
    assert_eq!(stored, 2);

    // Rollback by retagging: back on v1 within the poll interval, nothing built.
    let started = Instant::now();
    let (code, out, err) = shelf(
        &["rollback", "production", "--store", &store, "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap()["digest"],
        d1.as_str()
    );
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["digest"] == d1.as_str()
    });
    let took = started.elapsed();
    assert!(
        took < poll * 4 + Duration::from_secs(2),
        "rollback took {took:?}"
    );
    assert_eq!(
        bundles_in(&store_dir),
        stored,
        "a rollback builds and uploads nothing"
    );
    let answer = http::get(server.addr, &q).json();
    assert!(
        answer["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["path"] != "src/cache.rs")
    );

    // Rollback the other way: the git tag v1 is re-published (as moving a
    // git tag back re-runs the action). Its commit was built before: reused.
    server.wait_for("/readyz", Duration::from_secs(5), |r| r.status == 200);
    let (code, _, err) = shelf(&["tag", "production", &d2, "--store", &store], &[]);
    assert_eq!(code, 0, "{err}");
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["digest"] == d2.as_str()
    });
    let back = publish_ok(
        &action,
        &[
            ("SHELF_TAG", "production"),
            ("SHELF_REPOSITORY", &path),
            ("SHELF_REV", "v1"),
        ],
    );
    assert_eq!(
        (back.out("digest"), back.out("reused"), back.out("commit")),
        (d1.as_str(), "true", c1.as_str())
    );
    server.wait_for("/v1/bundle", Duration::from_secs(20), |r| {
        r.json()["live"]["digest"] == d1.as_str()
    });
    assert_eq!(
        bundles_in(&store_dir),
        stored,
        "the old commit's bundle was reused, not rebuilt"
    );

    stop.store(true, Ordering::Relaxed);
    let seen = client.join().unwrap();
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "queries failed during swaps and rollbacks"
    );
    assert!(seen.iter().all(|d| *d == d1 || *d == d2));
    assert!(
        seen.contains(&d1) && seen.contains(&d2),
        "the client saw both bundles"
    );
}

#[test]
fn the_action_the_workflows_and_their_scripts_pass_the_linters() {
    let out = Command::new(Path::new(ROOT).join("scripts/lint-actions"))
        .current_dir(ROOT)
        .output()
        .expect("lint-actions runs");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The action checker is not a rubber stamp: a broken action fails it.
    let t = tempfile::tempdir().unwrap();
    let broken = t.path().join("action.yml");
    let text = std::fs::read_to_string(Path::new(ROOT).join("action.yml"))
        .unwrap()
        .replace("id: publish", "id: renamed")
        .replace("${{ inputs.reload-token }}", "${{ inputs.reload-tokn }}");
    std::fs::write(&broken, text).unwrap();
    let python: PathBuf = Path::new(ROOT).join(".runtime/moto-venv/bin/python");
    let out = Command::new(python)
        .arg(Path::new(ROOT).join("scripts/check_action.py"))
        .arg(&broken)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("inputs.reload-tokn is used but not declared"),
        "{report}"
    );
    assert!(
        report.contains("input 'reload-token' is declared but never used"),
        "{report}"
    );
    assert!(
        report.contains("reads step 'publish', which has no such id"),
        "{report}"
    );
}

/// The tag a local store's `shelf tags --json` lists for `tag`, if any.
fn tag_digest(store: &str, tag: &str) -> Option<String> {
    let (code, out, err) = shelf(&["tags", "--json", "--store", store], &[]);
    assert_eq!(code, 0, "{err}");
    let tags: serde_json::Value = serde_json::from_str(&out).unwrap();
    tags.as_array()
        .unwrap()
        .iter()
        .find(|t| t["tag"] == tag)
        .map(|t| t["digest"].as_str().unwrap().to_string())
}

#[test]
fn the_action_tells_a_quality_regression_from_an_evaluation_error_and_moves_no_tag_on_either() {
    let t = tempfile::tempdir().unwrap();
    let store_dir = t.path().join("store");
    let store = store_dir.display().to_string();
    let action = Action::new(&store, &[]);
    let repo = sample_repo();
    repo.write(".shelf/golden.jsonl", SAMPLE_GOLDEN);
    repo.commit("golden queries");
    let path = repo_str(&repo);
    let gated = |extra: &[(&str, &str)]| {
        let mut vars = vec![
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", path.as_str()),
            ("SHELF_FAIL_ON_QUALITY_DROP", "true"),
        ];
        vars.extend_from_slice(extra);
        action.run(&vars)
    };

    // The first release of a tag has no baseline.
    let (code, first) = gated(&[]);
    assert_eq!(code, 0, "{}", first.stderr);
    assert_eq!(first.out("quality-gate"), "skipped");
    let d1 = first.out("digest").to_string();

    // An error while evaluating (a malformed golden file) is not a verdict.
    repo.write(
        ".shelf/golden.jsonl",
        "{\"id\": \"cas\", \"query\": \"compare and swap\"\n",
    );
    repo.commit("a broken golden file");
    let (code, broken) = gated(&[]);
    assert_eq!(code, 4, "{}", broken.stderr);
    assert_eq!(broken.out("quality-gate"), "error");
    assert!(
        broken.stderr.contains("could not be evaluated")
            && broken.stderr.contains("golden.jsonl line 1"),
        "{}",
        broken.stderr
    );
    assert!(!broken.stderr.contains("regression"), "{}", broken.stderr);
    assert!(
        broken.summary.contains("could not be evaluated"),
        "{}",
        broken.summary
    );
    assert_eq!(broken.out("digest"), "", "no tag moved, so no digest");
    assert_eq!(tag_digest(&store, "main").as_deref(), Some(d1.as_str()));

    // A regression: the file one golden query needs is gone.
    repo.write(".shelf/golden.jsonl", SAMPLE_GOLDEN);
    repo.git(&["rm", "-q", "tools/resize.py"]);
    repo.commit("drop the image tool");
    let (code, worse) = gated(&[]);
    assert_eq!(code, 3, "{}", worse.stderr);
    assert_eq!(worse.out("quality-gate"), "failed");
    assert!(
        worse.stderr.contains("quality regression") && worse.stderr.contains("resize"),
        "{}",
        worse.stderr
    );
    assert!(
        !worse.stderr.contains("could not be evaluated"),
        "{}",
        worse.stderr
    );
    assert!(
        worse.summary.contains("quality regression") && worse.summary.contains("recall@"),
        "{}",
        worse.summary
    );
    assert_eq!(tag_digest(&store, "main").as_deref(), Some(d1.as_str()));

    // Re-running the failed job finds the pushed bundle (nothing is built)
    // and is gated again: a re-run is not a way around the gate.
    let (code, rerun) = gated(&[]);
    assert_eq!(code, 3, "{}", rerun.stderr);
    assert!(
        rerun.stderr.contains("nothing was built"),
        "{}",
        rerun.stderr
    );
    assert_eq!(tag_digest(&store, "main").as_deref(), Some(d1.as_str()));

    // A baseline that cannot be fetched is an error, whatever the candidate.
    let hex = d1.trim_start_matches("sha256:");
    let object = store_dir.join(format!("bundles/sha256/{hex}.tar.zst"));
    let kept = t.path().join("kept.tar.zst");
    std::fs::rename(&object, &kept).unwrap();
    let (code, unreadable) = gated(&[]);
    assert_eq!(code, 4, "{}", unreadable.stderr);
    assert_eq!(unreadable.out("quality-gate"), "error");
    assert!(
        unreadable.stderr.contains("could not be evaluated"),
        "{}",
        unreadable.stderr
    );
    std::fs::rename(&kept, &object).unwrap();

    // A margin wide enough lets the same drop through, and the tag moves.
    let (code, accepted) = gated(&[("SHELF_QUALITY_MARGIN", "0.9")]);
    assert_eq!(code, 0, "{}", accepted.stderr);
    assert_eq!(accepted.out("quality-gate"), "passed");
    assert!(accepted.summary.contains("| quality gate | passed |"));
    assert_eq!(
        tag_digest(&store, "main").as_deref(),
        Some(accepted.out("digest"))
    );
    assert_ne!(accepted.out("digest"), d1);
}

#[test]
fn the_action_gates_on_queries_mined_from_history_and_catches_a_regression() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store").display().to_string();
    let action = Action::new(&store, &[]);
    let repo = sample_repo();
    repo.write(
        "src/tags.rs",
        "/// Moves a tag to a new bundle digest with compare-and-swap, retrying lost races.\npub fn move_tag(store: &Store, name: &str, expected: Digest, new: Digest) -> Result<()> {\n    loop {\n        let current = store.read_tag(name)?;\n        if current != expected {\n            return Err(Error::Conflict);\n        }\n        if store.write_tag(name, new).is_ok() {\n            return Ok(());\n        }\n    }\n}\n",
    );
    repo.commit("Retry the tag move when compare and swap loses a race");
    repo.write(
        "tools/resize.py",
        "def resize_image(path, width, height):\n    \"\"\"Scale a picture to the given size in pixels, keeping its aspect.\"\"\"\n    img = Image.open(path)\n    img.thumbnail((width, height))\n    return img\n",
    );
    repo.commit("Keep the aspect ratio when scaling a picture to a width and height");
    let path = repo_str(&repo);
    let gated = |extra: &[(&str, &str)]| {
        let mut vars = vec![
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", path.as_str()),
            ("SHELF_FAIL_ON_QUALITY_DROP", "true"),
            ("SHELF_GOLDEN_FROM_HISTORY", "5"),
        ];
        vars.extend_from_slice(extra);
        action.run(&vars)
    };
    let (code, first) = gated(&[]);
    assert_eq!(code, 0, "{}", first.stderr);
    assert_eq!(first.out("quality-gate"), "skipped", "no baseline yet");
    let d1 = first.out("digest").to_string();

    // A new commit: the mined queries are asked of both bundles; nothing
    // got worse.
    repo.write("docs/rollback.md", "# Rolling back\n\nRetag production to the previous release:\n\n    shelf rollback production\n");
    repo.commit("Say how to roll back in fewer words");
    let (code, passed) = gated(&[]);
    assert_eq!(code, 0, "{}", passed.stderr);
    assert_eq!(passed.out("quality-gate"), "passed", "{}", passed.stderr);
    assert!(
        passed
            .stderr
            .contains("golden queries mined from the history"),
        "{}",
        passed.stderr
    );
    let d2 = passed.out("digest").to_string();
    assert_ne!(d2, d1);

    // Ignoring the source directory loses the file a mined query answers:
    // a regression, and the tag stays.
    repo.write(".shelfignore", "src/\n");
    repo.commit("Stop indexing the sources by accident");
    let (code, worse) = gated(&[]);
    assert_eq!(code, 3, "{}", worse.stderr);
    assert_eq!(worse.out("quality-gate"), "failed");
    assert!(
        worse.stderr.contains("quality regression"),
        "{}",
        worse.stderr
    );
    assert_eq!(tag_digest(&store, "main").as_deref(), Some(d2.as_str()));

    // Not a number is an input error, before any gate.
    let (code, bad) = gated(&[("SHELF_GOLDEN_FROM_HISTORY", "many")]);
    assert_eq!(code, 1, "{}", bad.stderr);
    assert!(bad.stderr.contains("golden-from-history"), "{}", bad.stderr);
}

fn tag_names(names: &[&str]) -> Vec<String> {
    let out = Command::new(Path::new(ROOT).join("scripts/action/tag-name"))
        .args(names)
        .output()
        .expect("tag-name runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn short_sha256(name: &str) -> String {
    shelf_formats::Digest::of(name.as_bytes()).to_string()["sha256:".len()..][..8].to_string()
}

#[test]
fn branch_names_become_valid_distinct_tags_the_same_way_every_time() {
    let long = format!("team/{}", "very-long-branch-name-".repeat(10));
    let names = [
        "main",
        "v1.4.0",
        "release_2026-11",
        "feature/login-form",
        "refs/heads/feature/login-form",
        "feature-login/form",
        "dependabot/npm_and_yarn/lodash-4.17.21",
        "../../etc/passwd",
        "-leading-dash",
        "a..b/c",
        "ünïcødé/branch",
        "fix/#123 spaces & symbols!",
        "///",
        long.as_str(),
    ];
    let mapped = tag_names(&names);
    assert_eq!(mapped.len(), names.len());
    for (name, tag) in names.iter().zip(&mapped) {
        shelf_formats::names::validate_tag_name(tag)
            .unwrap_or_else(|e| panic!("{name:?} -> {tag:?}: {e}"));
    }
    // Valid names are used as they are; others are readable plus a hash.
    assert_eq!(mapped[..3], ["main", "v1.4.0", "release_2026-11"]);
    let login = format!("feature-login-form-{}", short_sha256("feature/login-form"));
    assert_eq!(mapped[3], login);
    assert_eq!(
        login, "feature-login-form-5e6268e3",
        "docs/action.md's example"
    );
    assert_eq!(mapped[4], login, "refs/heads/ is the same branch");
    assert_eq!(
        mapped[5],
        format!("feature-login-form-{}", short_sha256("feature-login/form")),
        "same readable part, another branch: another tag"
    );
    assert_eq!(
        mapped[6],
        format!(
            "dependabot-npm_and_yarn-lodash-4.17.21-{}",
            short_sha256("dependabot/npm_and_yarn/lodash-4.17.21")
        )
    );
    assert!(mapped[7].starts_with("etc-passwd-"), "{}", mapped[7]);
    assert!(mapped[13].len() <= 128 && mapped[13].starts_with("team-very-long"));
    let distinct: std::collections::BTreeSet<&String> = mapped.iter().collect();
    assert_eq!(
        distinct.len(),
        names.len() - 1,
        "only the refs/heads/ twin repeats"
    );
    assert_eq!(tag_names(&names), mapped, "the same names map the same way");
}

#[test]
fn the_action_publishes_and_promotes_a_branch_with_a_slash() {
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store").display().to_string();
    let action = Action::new(&store, &[]);
    let repo = sample_repo();
    let path = repo_str(&repo);
    let branch = "feature/login-form";
    let tag = format!("feature-login-form-{}", short_sha256(branch));

    let published = publish_ok(
        &action,
        &[("SHELF_TAG", branch), ("SHELF_REPOSITORY", &path)],
    );
    assert_eq!(published.out("tag"), tag);
    assert!(
        published.stderr.contains(&format!("using '{tag}'")),
        "{}",
        published.stderr
    );
    assert_eq!(
        tag_digest(&store, &tag).as_deref(),
        Some(published.out("digest"))
    );
    // Promotion names the branch, as the workflow knows it.
    let promoted = publish_ok(
        &action,
        &[("SHELF_TAG", "preview"), ("SHELF_FROM_TAG", branch)],
    );
    assert_eq!(promoted.out("digest"), published.out("digest"));
    assert_eq!(
        tag_digest(&store, "preview").as_deref(),
        Some(published.out("digest"))
    );
}

#[test]
fn the_action_embeds_in_shards_then_assembles_without_embedding_and_gets_the_cold_digest() {
    let t = tempfile::tempdir().unwrap();
    let store_dir = t.path().join("store");
    let store = store_dir.display().to_string();
    let action = Action::new(&store, &[]);
    let repo = sample_repo();
    let path = repo_str(&repo);
    // A single cold build, named as the action names it.
    let (code, out, err) = shelf(
        &[
            "build",
            "--json",
            "--name",
            "example/repo",
            "--repo",
            &path,
            "--out",
            &t.path().join("cold").display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let cold: serde_json::Value = serde_json::from_str(&out).unwrap();
    let unique = cold["chunks"]["embedded"].as_u64().unwrap();

    let mut embedded = 0;
    for shard in ["1/2", "2/2"] {
        // As the matrix job runs it: the tag is passed but unused.
        let run = publish_ok(
            &action,
            &[
                ("SHELF_TAG", "main"),
                ("SHELF_SHARD", shard),
                ("SHELF_REPOSITORY", &path),
                ("SHELF_NAME", "example/repo"),
            ],
        );
        assert_eq!(run.out("commit"), repo.git(&["rev-parse", "HEAD"]));
        assert_eq!(run.out("digest"), "", "a shard publishes no bundle");
        assert!(
            run.summary.contains(&format!("shard `{shard}`")),
            "{}",
            run.summary
        );
        embedded += run.out("embedded").parse::<u64>().unwrap();
    }
    assert_eq!(embedded, unique, "the two shares cover every chunk once");
    assert_eq!(bundles_in(&store_dir), 0);
    assert_eq!(tag_digest(&store, "main"), None, "a shard moves no tag");

    let assembled = publish_ok(
        &action,
        &[
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", &path),
            ("SHELF_NAME", "example/repo"),
        ],
    );
    assert_eq!(assembled.out("embedded"), "0", "{}", assembled.stderr);
    let build = assembled.build.as_ref().expect("the build's JSON report");
    assert_eq!(
        build["chunks"]["cached"].as_u64(),
        Some(unique),
        "{build:#}"
    );
    assert_eq!(assembled.out("digest"), cold["digest"].as_str().unwrap());
    assert_eq!(
        tag_digest(&store, "main").as_deref(),
        Some(assembled.out("digest"))
    );

    // A shard builds nothing else; combined with from-tag it is refused.
    let (code, err) = action
        .publish(&[
            ("SHELF_SHARD", "1/2"),
            ("SHELF_FROM_TAG", "main"),
            ("SHELF_TAG", "x"),
        ])
        .err()
        .unwrap();
    assert_eq!(code, 1);
    assert!(err.contains("shard and from-tag"), "{err}");
}

/// Under an organisation's store root each repository publishes to
/// ROOT/<its name>, the name made valid as tag names are, and a server
/// following the root serves it under that name.
#[test]
fn the_action_publishes_under_a_store_root_as_the_repository_name() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("org");
    let root_str = root.display().to_string();
    let action = Action::new("", &[("SHELF_STORE_ROOT", root_str.clone())]);
    let repo = sample_repo();
    let path = repo_str(&repo);
    let published = publish_ok(
        &action,
        &[
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", &path),
            ("GITHUB_REPOSITORY", "acme/billing-api"),
        ],
    );
    assert_eq!(published.out("repository"), "billing-api");
    let store = root.join("billing-api").display().to_string();
    assert_eq!(
        tag_digest(&store, "main").as_deref(),
        Some(published.out("digest"))
    );
    // A name that is not a valid repository name is mapped, not used.
    let odd = publish_ok(
        &action,
        &[
            ("SHELF_TAG", "main"),
            ("SHELF_REPOSITORY", &path),
            ("SHELF_REPOSITORY_NAME", "Web Client/v2"),
        ],
    );
    let mapped = format!("Web-Client-v2-{}", short_sha256("Web Client/v2"));
    assert_eq!(odd.out("repository"), mapped);
    assert_eq!(
        tag_digest(&root.join(&mapped).display().to_string(), "main").as_deref(),
        Some(odd.out("digest"))
    );
    // Both, or neither, is a clear error and publishes nothing.
    let both = Action::new(
        &root.join("x").display().to_string(),
        &[("SHELF_STORE_ROOT", root_str)],
    );
    let (code, err) = both
        .publish(&[("SHELF_TAG", "main"), ("SHELF_REPOSITORY", &path)])
        .unwrap_err();
    assert_eq!(code, 1);
    assert!(err.contains("not both"), "{err}");
    assert!(!root.join("x").exists());
    // A server following the root serves it by that name.
    let cache = t.path().join("cache");
    let server = ServerProcess::start(
        Path::new(SHELF),
        &[
            "--store-root",
            &root.display().to_string(),
            "--follow",
            "main",
            "--cache",
            &cache.display().to_string(),
        ],
        &[],
    );
    let repos = server.wait_for("/v1/repos", Duration::from_secs(60), |r| {
        r.status == 200
            && r.json()["repos"]
                .as_array()
                .is_some_and(|l| l.len() == 2 && l.iter().all(|x| x["status"] == "ok"))
    });
    let names: Vec<&str> = repos["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"billing-api") && names.contains(&mapped.as_str()),
        "{repos}"
    );
}
