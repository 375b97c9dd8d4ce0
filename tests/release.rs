//! The release path end to end: `scripts/release` makes the assets
//! release.yml publishes (from the binary this test profile built: no
//! second cargo profile), a loopback HTTP server serves them as a release
//! host does, and the action's install step (`scripts/action/install`)
//! downloads, checks and installs them, hits its cache on the second run,
//! and refuses a damaged or mismatched asset without installing anything.

use std::path::{Path, PathBuf};
use std::process::Command;

use shelf_testkit::static_server::StaticServer;

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));
const TARGET: &str = "x86_64-unknown-linux-gnu";

fn asset() -> String {
    format!("shelf-{VERSION}-{TARGET}.tar.gz")
}

/// Runs a script of the checkout with `env` (and nothing of the caller's
/// GitHub or shelf settings): (exit code, stdout, stderr).
fn script(path: &str, args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut c = Command::new(Path::new(ROOT).join(path));
    c.args(args).current_dir(ROOT);
    for k in [
        "SHELF_VERSION",
        "SHELF_RELEASE_REPO",
        "SHELF_RELEASE_BASE_URL",
        "SHELF_INSTALL_DIR",
        "SHELF_RUNTIME",
        "GITHUB_ACTION_REPOSITORY",
        "GITHUB_ENV",
        "GITHUB_OUTPUT",
        "GITHUB_PATH",
        "RUNNER_TOOL_CACHE",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("script runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn release(out: &Path, extra: &[&str]) -> (i32, String, String) {
    let out = out.display().to_string();
    let mut args = vec!["--binary", SHELF, "--out", &out];
    args.extend_from_slice(extra);
    script("scripts/release", &args, &[])
}

fn sha256_hex(path: &Path) -> String {
    let d = shelf_formats::Digest::of(&std::fs::read(path).unwrap()).to_string();
    d["sha256:".len()..].to_string()
}

fn tar_list(archive: &Path) -> Vec<String> {
    let out = Command::new("tar")
        .arg("-tzf")
        .arg(archive)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The install step as the action runs it, against `base_url`.
fn install(base_url: &str, bin_dir: &Path, home: &Path) -> (i32, String, String) {
    let url = PathBuf::from(base_url);
    script(
        "scripts/action/install",
        &[],
        &[
            ("SHELF_RELEASE_BASE_URL", &url),
            ("SHELF_INSTALL_DIR", bin_dir),
            // The provisioned runtime: scripts/setup finds it ready.
            ("SHELF_RUNTIME_DIR", &Path::new(ROOT).join(".runtime")),
            ("HOME", home),
        ],
    )
}

#[test]
fn release_assets_are_what_the_workflow_publishes_and_reproducible() {
    let t = tempfile::tempdir().unwrap();
    let (code, out, err) = release(&t.path().join("a"), &[]);
    assert_eq!(code, 0, "{err}");
    let archive = t.path().join("a").join(asset());
    assert_eq!(out.trim(), archive.display().to_string());
    let sums = std::fs::read_to_string(t.path().join("a").join(asset() + ".sha256")).unwrap();
    assert_eq!(sums, format!("{}  {}\n", sha256_hex(&archive), asset()));
    assert_eq!(
        tar_list(&archive),
        [
            "BUILD-INFO",
            "python-requirements.lock",
            "runtime.sha256",
            "shelf"
        ]
    );
    let x = t.path().join("x");
    std::fs::create_dir_all(&x).unwrap();
    assert!(
        Command::new("tar")
            .arg("-xzf")
            .arg(&archive)
            .arg("-C")
            .arg(&x)
            .status()
            .unwrap()
            .success()
    );
    assert_eq!(
        std::fs::read(x.join("shelf")).unwrap(),
        std::fs::read(SHELF).unwrap()
    );
    assert_eq!(
        std::fs::read(x.join("runtime.sha256")).unwrap(),
        std::fs::read(Path::new(ROOT).join("embed/runtime.sha256")).unwrap(),
        "the runtime manifest is the binary's own pins"
    );
    let info = std::fs::read_to_string(x.join("BUILD-INFO")).unwrap();
    assert!(
        info.contains(&format!("version: {VERSION}")) && info.contains("glibc: 2."),
        "{info}"
    );

    // The same binary gives the same bytes.
    let (code, _, err) = release(&t.path().join("b"), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        std::fs::read(t.path().join("b").join(asset())).unwrap()
    );

    // A version that is not the checkout's, or a binary that is not shelf,
    // is refused before anything is written.
    let (code, _, err) = release(&t.path().join("c"), &["--version", "v99.0.0"]);
    assert_eq!(code, 1);
    assert!(err.contains("not the workspace version"), "{err}");
    let (code, _, err) = script(
        "scripts/release",
        &[
            "--binary",
            "/bin/true",
            "--out",
            &t.path().join("c").display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("reports version"), "{err}");
    assert!(!t.path().join("c").exists(), "nothing was written");
}

#[test]
fn the_action_installs_a_release_from_a_server_checks_it_caches_it_and_refuses_a_bad_one() {
    let t = tempfile::tempdir().unwrap();
    let served = t.path().join("releases");
    let dir = served.join(VERSION);
    let (code, _, err) = release(&dir, &[]);
    assert_eq!(code, 0, "{err}");
    let server = StaticServer::start(&served);
    let home = t.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // First run: download, check, install.
    let bin = t.path().join("bin");
    let (code, out, err) = install(&server.url(), &bin, &home);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("SHELF_BIN={}", bin.join("shelf").display())),
        "{out}"
    );
    assert!(
        err.contains(&format!(
            "installed shelf {} from the {VERSION} release",
            env!("CARGO_PKG_VERSION")
        )),
        "{err}"
    );
    assert_eq!(
        std::fs::read(bin.join("shelf")).unwrap(),
        std::fs::read(SHELF).unwrap()
    );
    let fetched = server.requests();
    assert_eq!(
        fetched,
        [
            format!("GET /{VERSION}/{} HTTP/1.1\" 200 -", asset()),
            format!("GET /{VERSION}/{}.sha256 HTTP/1.1\" 200 -", asset()),
        ]
    );

    // Second run: the installed binary is this version's: nothing is fetched.
    let (code, _, err) = install(&server.url(), &bin, &home);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("already installed") && err.contains("nothing to do"),
        "{err}"
    );
    assert_eq!(
        server.requests().len(),
        fetched.len(),
        "a cache hit downloads nothing"
    );

    // A damaged asset (one byte changed): refused, with a clear message,
    // and nothing installed.
    let archive = dir.join(asset());
    let good = std::fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(&archive, &bad).unwrap();
    let fresh = t.path().join("bin-fresh");
    let (code, out, err) = install(&server.url(), &fresh, &home);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("{} does not match its published sha256", asset()))
            && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(!out.contains("SHELF_BIN"), "{out}");
    assert!(!fresh.join("shelf").exists() && !fresh.join(".version").exists());

    // A checksum file that names another file does not vouch for this one.
    std::fs::write(&archive, &good).unwrap();
    let sums = dir.join(asset() + ".sha256");
    let real_sums = std::fs::read_to_string(&sums).unwrap();
    std::fs::write(
        &sums,
        format!("{}  some-other-file.tar.gz\n", sha256_hex(&archive)),
    )
    .unwrap();
    let (code, _, err) = install(&server.url(), &fresh, &home);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expected nothing for this file"), "{err}");
    assert!(!fresh.join("shelf").exists());

    // A release whose binary expects another runtime than this checkout
    // provisions: its checksum is right, and it is still refused.
    let stage = t.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    std::fs::copy(SHELF, stage.join("shelf")).unwrap();
    std::fs::write(
        stage.join("runtime.sha256"),
        format!("{}  lib/libonnxruntime.so.9.9.9\n", "0".repeat(64)),
    )
    .unwrap();
    assert!(
        Command::new("tar")
            .arg("-czf")
            .arg(&archive)
            .arg("-C")
            .arg(&stage)
            .args(["shelf", "runtime.sha256"])
            .status()
            .unwrap()
            .success()
    );
    std::fs::write(&sums, format!("{}  {}\n", sha256_hex(&archive), asset())).unwrap();
    let (code, _, err) = install(&server.url(), &fresh, &home);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("expects other runtime files"), "{err}");
    assert!(!fresh.join("shelf").exists());
    std::fs::write(&sums, real_sums).unwrap();
}

fn resolve(version: &str, checkout: &Path) -> (i32, String, String) {
    let out = Command::new(checkout.join("scripts/action/resolve-version"))
        .env("SHELF_VERSION", version)
        .env_remove("GITHUB_OUTPUT")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_binary_cache_key_is_the_resolved_version_and_moves_with_the_source() {
    // The action's checkout of a release names its release.
    let root = Path::new(ROOT);
    assert_eq!(resolve("", root).1, VERSION);
    assert_eq!(resolve("v1.4.2", root).1, "v1.4.2");
    let (code, _, err) = resolve("v1", root);
    assert_eq!(code, 1);
    assert!(err.contains("exact release"), "{err}");

    // "source" is a hash of what the build reads: a change is a new key.
    let t = tempfile::tempdir().unwrap();
    let co = t.path();
    std::fs::create_dir_all(co.join("scripts/action")).unwrap();
    std::fs::create_dir_all(co.join("src")).unwrap();
    std::fs::copy(
        root.join("scripts/action/resolve-version"),
        co.join("scripts/action/resolve-version"),
    )
    .unwrap();
    std::fs::write(
        co.join("Cargo.toml"),
        "[workspace.package]\nversion = \"2.0.0\"\n",
    )
    .unwrap();
    std::fs::write(co.join("src/main.rs"), "fn main() {}\n").unwrap();
    assert_eq!(resolve("", co).1, "v2.0.0");
    let (code, a, err) = resolve("source", co);
    assert_eq!(code, 0, "{err}");
    assert!(a.starts_with("source-") && a.len() == 23, "{a}");
    assert_eq!(resolve("source", co).1, a, "stable");
    std::fs::write(co.join("src/main.rs"), "fn main() { println!(); }\n").unwrap();
    let b = resolve("source", co).1;
    assert_ne!(a, b, "a changed source file changes the key");
    assert_eq!(
        resolve(&b, co).1,
        b,
        "a resolved version resolves to itself"
    );
}

#[test]
fn other_platforms_are_refused_with_a_clear_message_not_a_broken_install() {
    // What `uname` says on an arm64 Mac (the real one cannot run here).
    let t = tempfile::tempdir().unwrap();
    let shim = t.path().join("uname");
    std::fs::write(
        &shim,
        "#!/bin/sh\ncase \"$1\" in -s) echo Darwin ;; -m) echo arm64 ;; *) echo Darwin ;; esac\n",
    )
    .unwrap();
    let status = Command::new("chmod")
        .arg("755")
        .arg(&shim)
        .status()
        .unwrap();
    assert!(status.success());
    let path = format!("{}:{}", t.path().display(), std::env::var("PATH").unwrap());
    let runtime = t.path().join("runtime");
    let out = Command::new(Path::new(ROOT).join("scripts/setup"))
        .env("PATH", &path)
        .env("SHELF_RUNTIME_DIR", &runtime)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("Darwin arm64 is not supported") && err.contains("x86_64 Linux only"),
        "{err}"
    );
    assert!(!runtime.exists(), "nothing was provisioned");
    let bin = t.path().join("bin");
    let out = Command::new(Path::new(ROOT).join("scripts/action/install"))
        .env("PATH", &path)
        .env("SHELF_INSTALL_DIR", &bin)
        .env("SHELF_RELEASE_BASE_URL", "http://127.0.0.1:9")
        .env_remove("SHELF_VERSION")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("no shelf release for Darwin-arm64") && err.contains("shelf-version: source"),
        "{err}"
    );
    assert!(!bin.exists(), "nothing was installed");
}
