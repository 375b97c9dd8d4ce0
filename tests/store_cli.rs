//! `shelf push | tag | rollback | tags | gc | verify` and `build
//! --reuse-from` as users run them, against a local directory store and a
//! real S3-compatible server (moto) on 127.0.0.1.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use shelf_testkit::cli;
use shelf_testkit::{GitRepo, MotoServer, TEST_BUCKET, sample_repo};

/// A store as the CLI sees it: `--store` plus what the environment adds.
struct Target {
    url: String,
    extra: Vec<String>,
    env: Vec<(&'static str, String)>,
}

fn local_target(dir: &Path) -> Target {
    Target {
        url: dir.join("store").display().to_string(),
        extra: vec![],
        env: vec![],
    }
}

fn s3_target(endpoint: String) -> Target {
    Target {
        url: format!("s3://{TEST_BUCKET}/indexes"),
        extra: vec!["--endpoint-url".into(), endpoint, "--path-style".into()],
        env: vec![
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ],
    }
}

fn shelf(target: &Target, args: &[&str]) -> (i32, String, String) {
    let mut all = args.to_vec();
    if args.first() != Some(&"build") {
        all.extend(["--store", target.url.as_str()]);
        all.extend(target.extra.iter().map(String::as_str));
    }
    let env: Vec<(&str, &str)> = target.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    cli::run(Path::new(env!("CARGO_BIN_EXE_shelf")), &all, &env)
}

fn build(repo: &GitRepo, out: &Path) -> serde_json::Value {
    cli::build(Path::new(env!("CARGO_BIN_EXE_shelf")), repo, out).report
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

/// The whole publish / retag / rollback story on one store.
fn release_story(target: &Target) {
    let repo = sample_repo();
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&repo, &t.path().join("b"));
    repo.write(
        "docs/rollback.md",
        "# Rolling back\n\nRetag production to any earlier bundle.\n",
    );
    repo.commit("v2");
    let v2 = build(&repo, &t.path().join("b"));
    let (b1, b2) = (
        v1["bundle_path"].as_str().unwrap(),
        v2["bundle_path"].as_str().unwrap(),
    );
    let (d1, d2) = (
        v1["digest"].as_str().unwrap(),
        v2["digest"].as_str().unwrap(),
    );

    let (code, out, err) = shelf(target, &["push", b1, "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["uploaded"], true);
    let (_, out, _) = shelf(target, &["push", b1, "--json"]);
    assert_eq!(json(&out)["uploaded"], false, "second push is a no-op");
    let (code, out, _) = shelf(target, &["push", b2]);
    assert_eq!(code, 0);
    assert!(out.contains("pushed"), "{out}");

    // Tag by digest, then by commit id; --expect guards the second move.
    let (code, _, err) = shelf(
        target,
        &["tag", "production", d1, "--expect", "none", "--by", "test"],
    );
    assert_eq!(code, 0, "{err}");
    let commit2 = v2["commit"].as_str().unwrap();
    let (code, out, err) = shelf(
        target,
        &["tag", "production", commit2, "--expect", d1, "--json"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["digest"], d2);
    // A stale --expect is a conflict, and changes nothing.
    let (code, _, err) = shelf(target, &["tag", "production", d1, "--expect", d1]);
    assert_eq!(code, 1);
    assert!(err.contains("conflict"), "{err}");

    let (code, out, _) = shelf(target, &["tags"]);
    assert_eq!(code, 0);
    assert!(out.contains("production") && out.contains(d2), "{out}");

    // Rollback: back to v1 in one step, nothing rebuilt.
    let (code, out, err) = shelf(target, &["rollback", "production", "--json"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(json(&out)["digest"], d1);
    let (_, out, _) = shelf(target, &["tags", "--history", "production", "--json"]);
    let record = json(&out);
    assert_eq!(record["history"].as_array().unwrap().len(), 3, "{out}");
    assert_eq!(record["history"][2]["reason"], "rollback");

    // Verify what the tag points at, end to end, from the store.
    let (code, out, err) = shelf(target, &["verify", "production"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(d1));

    // Rebuilding v1's commit costs a lookup.
    let none = Target {
        url: String::new(),
        extra: target.extra.clone(),
        env: target.env.clone(),
    };
    repo.git(&["checkout", "-q", "HEAD~1"]);
    let repo_path = repo.path().display().to_string();
    let again = t.path().join("again").display().to_string();
    let mut args = vec![
        "build",
        "--json",
        "--repo",
        &repo_path,
        "--out",
        &again,
        "--reuse-from",
        &target.url,
    ];
    args.extend(target.extra.iter().map(String::as_str));
    let (code, out, err) = shelf(&none, &args);
    assert_eq!(code, 0, "{err}");
    let reused = json(&out);
    assert_eq!(reused["reused"], true, "{out}");
    assert_eq!(reused["digest"], d1);

    // Build incrementally from the bundle a tag points at in the store.
    repo.git(&["checkout", "-q", "main"]);
    repo.write(
        "src/new.rs",
        "/// A new function.\npub fn new_function() -> u8 { 7 }\n",
    );
    repo.commit("v3");
    let v3dir = t.path().join("v3").display().to_string();
    let mut args = vec![
        "build",
        "--json",
        "--repo",
        &repo_path,
        "--out",
        &v3dir,
        "--store",
        &target.url,
        "--previous-tag",
        "production",
    ];
    args.extend(target.extra.iter().map(String::as_str));
    let (code, out, err) = shelf(&none, &args);
    assert_eq!(code, 0, "{err}");
    let v3 = json(&out);
    assert!(v3["chunks"]["reused"].as_u64().unwrap() > 0, "{out}");
    // production is on v1 (rolled back): v3 differs from it by v2's change
    // to docs/rollback.md and the new file, one chunk each.
    assert_eq!(
        v3["chunks"]["embedded"], 2,
        "only the changed files' chunks: {out}"
    );

    // gc keeps both: one is tagged, the other is in production's recent history.
    let (code, out, _) = shelf(
        target,
        &["gc", "--keep", "2", "--grace", "0s", "--dry-run", "--json"],
    );
    assert_eq!(code, 0);
    assert_eq!(json(&out)["planned"].as_array().unwrap().len(), 0, "{out}");
}

#[test]
fn release_story_on_a_local_store() {
    let t = tempfile::tempdir().unwrap();
    release_story(&local_target(t.path()));
}

#[test]
fn release_story_on_s3() {
    let moto = MotoServer::start();
    release_story(&s3_target(moto.endpoint()));
}

#[test]
fn a_tag_cannot_point_at_a_bundle_the_store_lacks() {
    let t = tempfile::tempdir().unwrap();
    let target = local_target(t.path());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let (code, _, err) = shelf(&target, &["tag", "production", &digest]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not in") && err.contains("push it first"),
        "{err}"
    );
    let (_, out, _) = shelf(&target, &["tags"]);
    assert!(out.contains("no tags"), "{out}");
}

#[test]
fn store_errors_name_the_store_and_what_to_check() {
    let moto = MotoServer::start();
    let mut target = s3_target(moto.endpoint());
    target.url = "s3://missing-bucket/x".into();
    let (code, _, err) = shelf(&target, &["tags"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bucket 'missing-bucket' does not exist"),
        "{err}"
    );
    assert!(
        !err.contains("SdkError") && !err.contains("panicked"),
        "no raw SDK dump: {err}"
    );

    let port = shelf_testkit::free_port();
    let target = s3_target(format!("http://127.0.0.1:{port}"));
    let (code, _, err) = shelf(&target, &["tags"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot reach") && err.contains(&port.to_string()),
        "{err}"
    );

    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = shelf(&local_target(t.path()), &["tag", "bad/name", "x"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid tag name"), "{err}");
}

/// Forwards 127.0.0.1 connections to `upstream`, but cuts any connection
/// once more than `limit` bytes of request have passed: a network that
/// fails in the middle of an upload.
fn cutting_proxy(upstream: u16, limit: usize) -> (u16, Arc<AtomicBool>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port();
    let cut = Arc::new(AtomicBool::new(false));
    let cut_flag = cut.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { break };
            let Ok(mut server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                break;
            };
            let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s2, &mut c2);
                let _ = c2.shutdown(Shutdown::Both);
            });
            let cut_flag = cut_flag.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                let mut buf = [0u8; 4096];
                while let Ok(n) = client.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    sent += n;
                    if sent > limit {
                        cut_flag.store(true, Ordering::SeqCst);
                        break;
                    }
                    if server.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
                let _ = client.shutdown(Shutdown::Both);
                let _ = server.shutdown(Shutdown::Both);
            });
        }
    });
    (port, cut)
}

#[test]
fn a_push_cut_off_midway_leaves_no_bundle_and_no_tag_change() {
    let moto = MotoServer::start();
    let direct = s3_target(moto.endpoint());
    let repo = sample_repo();
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&repo, &t.path().join("b"));
    let d1 = v1["digest"].as_str().unwrap();
    let (code, _, err) = shelf(&direct, &["push", v1["bundle_path"].as_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    shelf(&direct, &["tag", "production", d1]);

    // Distinct files, so the bundle holds many (incompressible) vectors.
    for i in 0..40 {
        repo.write(&format!("src/gen/f{i}.rs"), format!("/// Generated function {i}.\npub fn f{i}(x: u64) -> u64 {{ x.rotate_left({i}) ^ {} }}\n", i * 7919));
    }
    repo.commit("bigger");
    let v2 = build(&repo, &t.path().join("b"));
    let bundle2: PathBuf = v2["bundle_path"].as_str().unwrap().into();
    assert!(std::fs::metadata(&bundle2).unwrap().len() > 16 << 10);

    let upstream: u16 = moto.endpoint().rsplit(':').next().unwrap().parse().unwrap();
    let (proxy_port, cut) = cutting_proxy(upstream, 8 << 10);
    let through_proxy = s3_target(format!("http://127.0.0.1:{proxy_port}"));
    let (code, _, err) = shelf(&through_proxy, &["push", bundle2.to_str().unwrap()]);
    assert!(cut.load(Ordering::SeqCst), "the proxy cut the upload");
    assert_eq!(code, 1, "a cut push fails: {err}");
    assert!(!err.contains("panicked"));

    // Nothing of v2 is visible, and production still points at v1.
    let (code, _, _) = shelf(&direct, &["verify", v2["digest"].as_str().unwrap()]);
    assert_eq!(code, 1, "no bundle object for v2");
    let (_, out, _) = shelf(&direct, &["tags", "--json"]);
    assert_eq!(json(&out)[0]["digest"], d1);
    // And a clean retry succeeds.
    let (code, _, err) = shelf(&direct, &["push", bundle2.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
}
