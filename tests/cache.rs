//! The store's embedding cache through the real binary and the real model:
//! shards then an assemble build give a cold build's digest (local store
//! and S3), a new branch or a fork embeds only chunks never embedded in the
//! store, a damaged pack never reaches a bundle, a shard killed while it
//! pushes leaves nothing under a pack's name, and wrong flags are named.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use shelf_testkit::cli::{self, Built};
use shelf_testkit::store::StoreArgs;
use shelf_testkit::{GitRepo, MotoServer};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");

fn shelf() -> &'static Path {
    Path::new(SHELF)
}

/// A repository of `n` small Rust modules and a README, each chunk its own
/// text.
fn modules(n: usize) -> GitRepo {
    let r = GitRepo::new();
    for i in 0..n {
        r.write(
            &format!("src/m{i}.rs"),
            format!(
                "/// Module {i}: retries request {i} with backoff.\npub fn handler_{i}(x: u64) -> u64 {{\n    x.wrapping_mul({i}) ^ 0x{i:x}\n}}\n"
            ),
        );
    }
    r.write(
        "README.md",
        "# Modules\n\nEach module retries one request.\n",
    );
    r.commit("modules");
    r
}

/// `shelf build --json --repo R --name t EXTRA… STORE…`: the report, or
/// the exit code and stderr.
fn run_build(
    repo: &Path,
    extra: &[&str],
    store: Option<&StoreArgs>,
) -> Result<(serde_json::Value, String), (i32, String)> {
    let repo = repo.display().to_string();
    let mut args: Vec<String> = ["build", "--json", "--name", "t", "--repo", &repo]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let env = store.map(|s| s.env()).unwrap_or_default();
    if let Some(s) = store {
        args.extend(s.args());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = cli::run(shelf(), &args, &env);
    if code != 0 {
        return Err((code, err));
    }
    let report =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("no JSON report ({e}): {out}\n{err}"));
    Ok((report, err))
}

fn build_ok(repo: &Path, extra: &[&str], store: Option<&StoreArgs>) -> serde_json::Value {
    run_build(repo, extra, store)
        .unwrap_or_else(|(code, err)| panic!("shelf build exited {code}: {err}"))
        .0
}

fn n(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn cold(repo: &GitRepo, out: &Path) -> Built {
    let (code, stdout, err) = cli::run(
        shelf(),
        &[
            "build",
            "--json",
            "--name",
            "t",
            "--repo",
            &repo.path().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    Built {
        digest: report["digest"].as_str().unwrap().to_string(),
        path: PathBuf::from(report["bundle_path"].as_str().unwrap()),
        report,
    }
}

/// Three shards one after another, then an assemble build: its digest is
/// the cold build's and it embeds nothing.
fn shards_then_assemble(repo: &GitRepo, store: &StoreArgs, out: &Path, cold: &Built) {
    let unique = n(&cold.report["chunks"]["embedded"]);
    let mut embedded = 0;
    for i in 1..=3 {
        let shard = format!("{i}/3");
        let r = build_ok(repo.path(), &["--shard", &shard], Some(store));
        assert_eq!(r["shard"], shard.as_str());
        assert_eq!(n(&r["chunks"]["unique"]), unique);
        // Each share is decided by the content id alone, whatever the
        // shards before it pushed.
        assert_eq!(
            n(&r["chunks"]["cached"]) + n(&r["chunks"]["missing"]),
            unique
        );
        assert_eq!(n(&r["cache"]["pushed"]), n(&r["chunks"]["embedded"]));
        assert!(r.get("digest").is_none(), "a shard writes no bundle: {r:#}");
        embedded += n(&r["chunks"]["embedded"]);
    }
    assert_eq!(embedded, unique, "the shares cover every chunk once");
    let again = build_ok(repo.path(), &["--shard", "2/3"], Some(store));
    assert_eq!(n(&again["chunks"]["embedded"]), 0, "{again:#}");
    let out = out.display().to_string();
    let assembled = build_ok(repo.path(), &["--out", &out], Some(store));
    assert_eq!(assembled["digest"], cold.digest.as_str(), "{assembled:#}");
    assert_eq!(n(&assembled["chunks"]["embedded"]), 0);
    assert_eq!(n(&assembled["chunks"]["cached"]), unique);
    assert_eq!(n(&assembled["cache"]["pushed"]), 0);
    assert!(
        assembled["cache"]["uses_record"].is_string(),
        "{assembled:#}"
    );
}

#[test]
fn shards_then_an_assemble_build_give_the_cold_digest_on_a_local_store_and_on_s3() {
    let repo = modules(14);
    let t = tempfile::tempdir().unwrap();
    let cold = cold(&repo, &t.path().join("cold"));
    shards_then_assemble(
        &repo,
        &StoreArgs::local(t.path()),
        &t.path().join("local"),
        &cold,
    );
    let moto = MotoServer::start();
    shards_then_assemble(&repo, &StoreArgs::s3(&moto), &t.path().join("s3"), &cold);
}

#[test]
fn a_new_branch_or_a_fork_embeds_only_chunks_never_embedded_in_the_store() {
    let repo = modules(10);
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let out = t.path().join("out").display().to_string();
    // main, built incrementally from an older bundle (as the action does):
    // the vectors it reuses from that bundle are pushed too, not only the
    // ones it embeds.
    let older = cold(&repo, &t.path().join("older"));
    repo.write(
        "src/extra.rs",
        "/// Parses the settings file.\npub fn parse() {}\n",
    );
    repo.commit("one more module");
    let previous = older.path.display().to_string();
    let main = build_ok(
        repo.path(),
        &["--out", &out, "--previous", &previous],
        Some(&store),
    );
    let unique = n(&main["chunks"]["reused"]) + n(&main["chunks"]["embedded"]);
    assert_eq!(n(&main["chunks"]["embedded"]), 1, "{main:#}");
    assert_eq!(n(&main["cache"]["pushed"]), unique, "{main:#}");

    // A branch with one changed and one new file, built with no previous
    // bundle at all: only their chunks are embedded.
    repo.git(&["checkout", "-q", "-b", "feature/retry"]);
    repo.write(
        "src/m3.rs",
        "/// Module 3, rewritten: gives up after three tries.\npub fn handler_3(x: u64) -> u64 { x }\n",
    );
    repo.write(
        "src/new.rs",
        "/// Computes the backoff delay.\npub fn delay() {}\n",
    );
    repo.commit("retry changes");
    let branch = build_ok(repo.path(), &["--out", &out], Some(&store));
    assert_eq!(n(&branch["chunks"]["embedded"]), 2, "{branch:#}");
    assert_eq!(n(&branch["chunks"]["cached"]), unique - 1, "{branch:#}");
    let cold_branch = cold(&repo, &t.path().join("cold-branch"));
    assert_eq!(branch["digest"], cold_branch.digest.as_str());

    // A fork: another clone, another directory, the same chunks.
    let fork = t.path().join("fork");
    let status = Command::new("git")
        .args(["clone", "-q", "--branch", "feature/retry"])
        .arg(repo.path())
        .arg(&fork)
        .status()
        .unwrap();
    assert!(status.success());
    let forked = build_ok(&fork, &["--out", &out], Some(&store));
    assert_eq!(n(&forked["chunks"]["embedded"]), 0, "{forked:#}");
    assert_eq!(forked["digest"], cold_branch.digest.as_str());

    // Without the cache the same build embeds everything again.
    let off = build_ok(
        &fork,
        &["--out", &out, "--no-embedding-cache"],
        Some(&store),
    );
    assert_eq!(n(&off["chunks"]["embedded"]), n(&off["chunks"]["total"]));
    assert!(off.get("cache").is_none());
}

/// Every file under the local store's packs directories.
fn pack_files(store_root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(models) = std::fs::read_dir(store_root.join("cache")) else {
        return out;
    };
    for m in models {
        if let Ok(files) = std::fs::read_dir(m.unwrap().path().join("packs")) {
            out.extend(files.map(|f| f.unwrap().path()));
        }
    }
    out.sort();
    out
}

#[test]
fn a_damaged_pack_is_refused_with_a_warning_and_never_reaches_a_bundle() {
    let repo = modules(8);
    let t = tempfile::tempdir().unwrap();
    let store = StoreArgs::local(t.path());
    let out = t.path().join("out").display().to_string();
    let first = build_ok(repo.path(), &["--out", &out], Some(&store));
    let packs = pack_files(&t.path().join("store"));
    assert_eq!(packs.len(), 1, "{packs:?}");
    // One bit of one vector changed in place: same size, valid header.
    let mut bytes = std::fs::read(&packs[0]).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    std::fs::write(&packs[0], &bytes).unwrap();

    let out2 = t.path().join("out2").display().to_string();
    let (second, stderr) = run_build(repo.path(), &["--out", &out2], Some(&store)).unwrap();
    assert_eq!(
        second["digest"], first["digest"],
        "the damaged vector is not in the bundle"
    );
    assert_eq!(
        n(&second["chunks"]["embedded"]),
        n(&first["chunks"]["embedded"])
    );
    let refused = second["cache"]["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{second:#}");
    assert!(
        refused[0]["reason"]
            .as_str()
            .unwrap()
            .contains("do not match its name"),
        "{second:#}"
    );
    assert!(
        stderr.contains("refused an embedding-cache pack"),
        "{stderr}"
    );
    // The build wrote the pack again, so the next one takes everything
    // from the cache.
    let out3 = t.path().join("out3").display().to_string();
    let third = build_ok(repo.path(), &["--out", &out3], Some(&store));
    assert_eq!(n(&third["chunks"]["embedded"]), 0, "{third:#}");
    assert_eq!(third["digest"], first["digest"]);
}

/// Runs a shard into the local store at `store_root` and SIGKILLs it while
/// it writes a pack: as soon as a temporary file appears beside the packs
/// (the write has started and not yet been linked under its name). Returns
/// whether the kill landed there (`false`: the shard finished first).
fn kill_shard_while_writing(repo: &GitRepo, store_root: &Path) -> bool {
    let mut child = Command::new(SHELF)
        .env_remove("SHELF_RUNTIME")
        .env("SHELF_LOG", "shelf_store=debug,warn")
        .args(["build", "--shard", "1/1", "--name", "t", "--repo"])
        .arg(repo.path())
        .arg("--store")
        .arg(store_root)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let pushing = lines.any(|l| l.unwrap().contains("pushing an embedding-cache pack"));
    assert!(pushing, "the shard reached its push");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut landed = false;
    while std::time::Instant::now() < deadline {
        if pack_files(store_root).iter().any(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".shelf-tmp-")
        }) {
            landed = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
    }
    let _ = child.kill(); // SIGKILL: no destructor, no cleanup runs.
    child.wait().unwrap();
    landed
}

#[test]
fn a_shard_killed_while_it_pushes_leaves_nothing_under_a_pack_name() {
    let repo = modules(30);
    let t = tempfile::tempdir().unwrap();
    let is_temp = |p: &PathBuf| {
        p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(".shelf-tmp-")
    };
    // A kill can land before the pack is linked under its name (nothing
    // there) or after (a whole pack there); try until one lands before.
    let mut before_link = false;
    for attempt in 0..8 {
        let dir = t.path().join(format!("attempt-{attempt}"));
        let in_flight = kill_shard_while_writing(&repo, &dir.join("store"));
        // Whatever moment the kill hit, a file under a pack's name is a
        // whole pack whose bytes hash to its name; anything else is a
        // temporary file (which gc removes after the grace period).
        let files = pack_files(&dir.join("store"));
        let mut named = 0;
        for path in files.iter().filter(|p| !is_temp(p)) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let hex = name.strip_suffix(".pack").expect("only packs");
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(shelf_formats::Digest::of(&bytes).hex(), hex, "{name}");
            named += 1;
        }
        // The shard, run again, pushes what is not there yet.
        let again = build_ok(
            repo.path(),
            &["--shard", "1/1"],
            Some(&StoreArgs::local(&dir)),
        );
        let expected = if named == 0 {
            n(&again["chunks"]["unique"])
        } else {
            0
        };
        assert_eq!(n(&again["cache"]["pushed"]), expected, "{again:#}");
        if in_flight && named == 0 {
            before_link = true;
            break;
        }
    }
    assert!(before_link, "no kill landed while a pack was being written");
}

#[test]
fn shard_flags_that_cannot_work_are_named() {
    let repo = modules(1);
    let path = repo.path().display().to_string();
    let run = |args: &[&str]| {
        let mut all = vec!["build", "--repo", &path];
        all.extend_from_slice(args);
        cli::run(shelf(), &all, &[])
    };
    let (code, _, err) = run(&["--shard", "1/2"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--store") && err.contains("SHELF_STORE"),
        "{err}"
    );
    let (code, _, err) = run(&["--shard", "5/4", "--store", "/tmp/x"]);
    assert_eq!(code, 2);
    assert!(err.contains("expected I/N"), "{err}");
    let (code, _, err) = run(&["--shard", "1/2", "--store", "/tmp/x", "--previous", "b"]);
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}
