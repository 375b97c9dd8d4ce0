//! The `shelf` binary as users run it: exit codes, messages, and the
//! build -> verify -> search path on a real repository with the real model.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use shelf_testkit::{GitRepo, sample_repo};

fn shelf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shelf"));
    c.env_remove("SHELF_RUNTIME").env("SHELF_LOG", "warn");
    c
}

fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("shelf runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The checkout's runtime directory (made by scripts/setup).
fn runtime_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtime")
}

/// A runtime directory like the real one, with `lib` replaced by `lib_state`.
fn broken_runtime(lib_state: Option<&[u8]>) -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    let real = runtime_dir();
    std::fs::copy(real.join("runtime.json"), t.path().join("runtime.json")).unwrap();
    for dir in ["model", shelf_embed::runtime::FP32_MODEL_DIR] {
        std::os::unix::fs::symlink(real.join(dir), t.path().join(dir)).unwrap();
    }
    if let Some(bytes) = lib_state {
        std::fs::create_dir_all(t.path().join("lib")).unwrap();
        std::fs::write(t.path().join("lib/libonnxruntime.so.1.24.4"), bytes).unwrap();
    }
    t
}

#[test]
fn doctor_passes_on_the_provisioned_runtime() {
    let (code, out, _) = run(shelf().args(["doctor", "--load"]));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("all checks passed") && out.contains("model loads and embeds (384 dimensions")
    );
}

#[test]
fn doctor_names_a_missing_library_and_the_fix_without_panicking() {
    let rt = broken_runtime(None);
    let (code, out, err) = run(shelf()
        .args(["doctor", "--load", "--runtime"])
        .arg(rt.path()));
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("libonnxruntime.so.1.24.4 does not exist"),
        "{out}"
    );
    assert!(out.contains("scripts/setup"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_wrong_library_is_refused_before_it_is_loaded() {
    let rt = broken_runtime(Some(b"not a shared library"));
    let (code, out, _) = run(shelf().args(["doctor", "--runtime"]).arg(rt.path()));
    assert_eq!(code, 1);
    assert!(
        out.contains("is not the pinned file") && out.contains("scripts/setup --force"),
        "{out}"
    );

    let repo = sample_repo();
    let out_dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(shelf()
        .args(["build", "--repo"])
        .arg(repo.path())
        .arg("--out")
        .arg(out_dir.path())
        .arg("--runtime")
        .arg(rt.path()));
    assert_eq!(code, 1);
    assert!(
        err.contains("ONNX Runtime library") && !err.contains("panicked"),
        "{err}"
    );
}

#[test]
fn a_missing_runtime_says_how_to_create_it() {
    let t = tempfile::tempdir().unwrap();
    let (code, out, _) = run(shelf().args(["doctor"]).env("SHELF_RUNTIME", t.path()));
    assert_eq!(code, 1);
    assert!(
        out.contains("no embedding runtime found") && out.contains("scripts/setup"),
        "{out}"
    );
}

#[test]
fn serve_usage_errors_exit_2_and_setting_errors_exit_1_naming_the_setting() {
    // The file may name follow, so this is a setting error, not usage.
    let (code, _, err) = run(shelf().args(["serve", "--store", "file:///tmp/x"]));
    assert_eq!(code, 1);
    assert!(err.contains("--follow"), "{err}");
    let (code, _, err) = run(shelf().args(["serve", "--bundle", "b.tar.zst", "--follow", "x"]));
    assert_eq!(code, 2);
    assert!(err.contains("cannot be used with"), "{err}");
    // SHELF_STORE names a store when nothing else does; it never conflicts
    // with a bundle given on the command line.
    let (code, _, err) = run(shelf().env("SHELF_STORE", "/nonexistent-store").args([
        "serve",
        "--bundle",
        "/nonexistent/b.tar.zst",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/b.tar.zst"), "{err}");
    // An open server on a non-loopback address is a choice, not a default.
    let (code, _, err) =
        run(shelf().args(["serve", "--bundle", "b.tar.zst", "--listen", "0.0.0.0:0"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("SHELF_SEARCH_TOKENS") && err.contains("--allow-anonymous"),
        "{err}"
    );
    let (code, _, err) =
        run(shelf()
            .env("SHELF_SEARCH_TOKENS", "")
            .args(["serve", "--bundle", "b.tar.zst"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("SHELF_SEARCH_TOKENS") && err.contains("no token"),
        "{err}"
    );
    let (code, _, err) = run(shelf().args(["serve"]));
    assert_eq!(code, 1);
    assert!(err.contains("nothing to serve"), "{err}");
    let (code, _, err) = run(shelf().args([
        "serve",
        "--bundle",
        "/nonexistent/b.tar.zst",
        "--listen",
        "127.0.0.1:0",
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/b.tar.zst"), "{err}");
}

/// Whether `help` lists `--flag` (not merely a longer flag it starts).
fn lists_flag(help: &str, flag: &str) -> bool {
    let flag = format!("--{flag}");
    help.match_indices(&flag).any(|(at, _)| {
        !help[at + flag.len()..].starts_with(|c: char| c == '-' || c.is_ascii_alphanumeric())
    })
}

#[test]
fn mcp_help_lists_only_the_settings_mcp_uses_and_serve_help_every_one() {
    let (code, serve, _) = run(shelf().args(["serve", "--help"]));
    assert_eq!(code, 0);
    let (code, mcp, _) = run(shelf().args(["mcp", "--help"]));
    assert_eq!(code, 0);
    let declared = shelf_server::config::declared();
    let flagged: Vec<_> = declared.iter().filter(|i| !i.flag.is_empty()).collect();
    assert!(flagged.iter().any(|i| !i.stdio) && flagged.iter().any(|i| i.stdio));
    for info in flagged {
        assert!(
            lists_flag(&serve, info.flag),
            "serve --help lacks --{}",
            info.flag
        );
        assert_eq!(
            lists_flag(&mcp, info.flag),
            info.stdio,
            "mcp --help and --{}:\n{mcp}",
            info.flag
        );
    }
    for own in ["server", "token", "config", "runtime"] {
        assert!(lists_flag(&mcp, own), "mcp --help lacks --{own}");
    }
    // A flag that does not apply is refused, not silently ignored.
    let (code, _, err) = run(shelf().args(["mcp", "--bundle", "b", "--listen", "0.0.0.0:7700"]));
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--listen"), "{err}");
    // A value out of its range is a setting error naming it and the range.
    let (code, _, err) = run(shelf().args(["serve", "--bundle", "b", "--poll-interval", "1y"]));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--poll-interval") && err.contains("50ms to 1h"),
        "{err}"
    );
}

#[test]
fn build_verify_and_search_a_repository() {
    let repo = sample_repo();
    let t = tempfile::tempdir().unwrap();
    let (code, out, err) = run(shelf()
        .args(["build", "--json", "--repo"])
        .arg(repo.path())
        .arg("--out")
        .arg(t.path().join("bundles")));
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).expect("--json prints JSON only");
    let bundle = report["bundle_path"].as_str().unwrap().to_string();
    assert!(report["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(report["files"]["indexed"], 4);

    let (code, out, _) = run(shelf().args(["verify", &bundle]));
    assert_eq!(code, 0);
    assert!(out.contains(report["digest"].as_str().unwrap()));

    let (code, out, err) = run(shelf()
        .args([
            "search",
            "how do I revert production to the last release",
            "--json",
            "-k",
            "2",
            "--bundle",
            &bundle,
            "--cache",
        ])
        .arg(t.path().join("cache")));
    assert_eq!(code, 0, "{err}");
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(res["results"][0]["path"], "docs/rollback.md", "{out}");
    assert_eq!(res["bundle"]["digest"], report["digest"]);

    let (_, out, _) = run(shelf()
        .args([
            "search",
            "scale a picture to a width and height",
            "--json",
            "--bundle",
            &bundle,
            "--cache",
        ])
        .arg(t.path().join("cache")));
    let res: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(res["results"][0]["path"], "tools/resize.py", "{out}");
}

#[test]
fn verify_refuses_a_corrupted_bundle_with_the_reason() {
    let repo = sample_repo();
    let t = tempfile::tempdir().unwrap();
    let (_, out, _) = run(shelf()
        .args(["build", "--json", "--repo"])
        .arg(repo.path())
        .arg("--out")
        .arg(t.path()));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let bundle = PathBuf::from(report["bundle_path"].as_str().unwrap());
    let mut bytes = std::fs::read(&bundle).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&bundle, &bytes).unwrap();
    let (code, _, err) = run(shelf().arg("verify").arg(&bundle));
    assert_eq!(code, 1);
    assert!(
        err.contains("bundle refused") || err.contains("corrupt"),
        "{err}"
    );

    let (code, _, err) = run(shelf()
        .arg("search")
        .arg("x")
        .arg("--bundle")
        .arg(&bundle)
        .arg("--cache")
        .arg(t.path().join("c")));
    assert_eq!(code, 1, "a corrupt bundle is never searched");
    assert!(
        !t.path()
            .join("c")
            .join(
                bundle
                    .file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .trim_end_matches(".tar.zst")
            )
            .exists()
    );
    assert!(!err.contains("panicked"));
}

#[test]
fn search_refuses_empty_queries_and_bad_k() {
    let (code, _, err) = run(shelf().args(["search", "  ", "--bundle", "x.tar.zst"]));
    assert_eq!(code, 1);
    assert!(err.contains("query is empty"), "{err}");
    let (code, _, err) = run(shelf().args(["search", "q", "-k", "0", "--bundle", "x.tar.zst"]));
    assert_eq!(code, 1);
    assert!(err.contains("1 to 100"), "{err}");
}

#[test]
fn build_errors_name_the_problem_and_exit_1() {
    let empty = GitRepo::new();
    let t = tempfile::tempdir().unwrap();
    let (code, _, err) = run(shelf()
        .args(["build", "--repo"])
        .arg(empty.path())
        .arg("--out")
        .arg(t.path()));
    assert_eq!(code, 1);
    assert!(err.contains("no commits yet"), "{err}");
    let repo = sample_repo();
    let (code, _, err) = run(shelf()
        .args(["build", "--rev", "v9.9.9", "--repo"])
        .arg(repo.path())
        .arg("--out")
        .arg(t.path()));
    assert_eq!(code, 1);
    assert!(err.contains("'v9.9.9'"), "{err}");
}

/// Regular files directly in `dir` (a bundle, or one being written; not
/// the build's staging directory).
fn files_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A build killed (SIGKILL: no destructor runs) while it writes the bundle
/// leaves nothing under a bundle's name: whatever `<hex>.tar.zst` is in
/// `--out` is a whole bundle whose bytes hash to its name. The builds
/// reuse a first build's vectors (`--previous`), so they reach the pack
/// stage at once, and each is killed the moment the writer creates its
/// first file there; a kill that came after the write finished proves
/// nothing, so the test goes on until it has caught the writer mid-write.
#[test]
fn a_build_killed_while_it_writes_the_bundle_leaves_nothing_under_a_bundle_name() {
    let repo = GitRepo::new();
    for i in 0..150 {
        repo.write(
            &format!("src/f{i}.rs"),
            format!("/// Function number {i} of a generated module.\npub fn f{i}(x: u64) -> u64 {{ x.wrapping_mul({i}) ^ 0x{i:x} }}\n"),
        );
    }
    repo.commit("many files");
    let first = tempfile::tempdir().unwrap();
    let previous =
        shelf_testkit::cli::build(Path::new(env!("CARGO_BIN_EXE_shelf")), &repo, first.path());
    let mut caught = 0;
    for _ in 0..30 {
        let out = tempfile::tempdir().unwrap();
        let mut child = shelf()
            .args(["build", "--repo"])
            .arg(repo.path())
            .arg("--out")
            .arg(out.path())
            .arg("--previous")
            .arg(&previous.path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        loop {
            if !files_in(out.path()).is_empty() {
                let _ = child.kill();
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::yield_now();
        }
        child.wait().unwrap();
        let files = files_in(out.path());
        for name in files.iter().filter(|n| n.ends_with(".tar.zst")) {
            let path = out.path().join(name);
            let digest = shelf_formats::bundle::digest_from_file_name(&path).unwrap_or_else(|| {
                panic!("'{name}' ends like a bundle but is not named by a digest")
            });
            assert_eq!(
                shelf_formats::Digest::of(&std::fs::read(&path).unwrap()),
                digest,
                "'{name}' is a partial bundle under a bundle's name"
            );
        }
        if files.iter().any(|n| !n.ends_with(".tar.zst")) {
            caught += 1;
            if caught == 3 {
                break;
            }
        }
    }
    assert!(
        caught > 0,
        "no build was ever killed while it wrote its bundle"
    );
}
