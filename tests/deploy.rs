//! Deployment artefacts as operators use them: the container image built
//! from ./Dockerfile with podman (on a base made locally from Debian's
//! packages) and run read-only as a non-root user with a cache volume,
//! following a tag in a local-directory store; the systemd unit checked by
//! `systemd-analyze`; and docs/deployment.md showing exactly these files.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use shelf_testkit::http::{self, encode};
use shelf_testkit::{cli, free_port, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const TOKEN: &str = "container-test-token-0123456789";

fn podman(args: &[&str]) -> Output {
    Command::new("podman")
        .args(args)
        .output()
        .expect("podman runs (scripts/setup-test-services installs it)")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// What this host's podman needs to start a container. Hosts where the
/// container engine may not raise resource limits (no CAP_SYS_RESOURCE, as
/// in some CI sandboxes) need them set at or below the current ones; crun
/// 1.8 refuses hosts with controllers on the cgroup v2 hierarchy of a
/// hybrid setup, where runc works. Tried in order, and printed.
fn host_flags(image: &str) -> Vec<String> {
    let hard = |flag: &str| {
        let out = Command::new("sh")
            .args(["-c", &format!("ulimit -H{flag}")])
            .output()
            .unwrap();
        let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
        match v.parse::<u64>() {
            Ok(n) => n.min(65536).to_string(),
            Err(_) => "65536".into(),
        }
    };
    let nofile = hard("n");
    let limits = vec![
        "--ulimit".to_string(),
        format!("nofile={nofile}:{nofile}"),
        "--ulimit".to_string(),
        "nproc=4096:4096".to_string(),
    ];
    let mut runc = vec!["--runtime".to_string(), "runc".to_string()];
    runc.extend(limits.clone());
    for flags in [vec![], limits, runc] {
        let mut args = vec!["run", "--rm", "--entrypoint", "true"];
        args.extend(flags.iter().map(String::as_str));
        args.push(image);
        if podman(&args).status.success() {
            eprintln!("podman run needs on this host: {flags:?}");
            return flags;
        }
    }
    let out = podman(&["run", "--rm", "--entrypoint", "true", image]);
    panic!(
        "podman cannot start a container here: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Everything the test made in podman, removed however the test ends.
struct Cleanup {
    container: String,
    volume: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = podman(&["rm", "-f", "-t", "0", &self.container]);
        let _ = podman(&["volume", "rm", "-f", &self.volume]);
        let _ = podman(&["rmi", "-f", &self.image]);
    }
}

/// Makes a store directory readable by the container's user (10001).
fn share(dir: &Path) {
    let status = Command::new("chmod")
        .args(["-R", "a+rX"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for(addr: SocketAddr, target: &str, status: u16, timeout: Duration) -> http::Response {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(r) = http::try_request(addr, "GET", target, &[], b"") {
            if r.status == status {
                return r;
            }
            last = Some((r.status, String::from_utf8_lossy(&r.body).into_owned()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("GET {target} did not answer {status} in {timeout:?}; last: {last:?}");
}

#[test]
fn the_image_serves_read_only_as_a_non_root_user_with_a_cache_volume_and_a_healthcheck() {
    let id = format!("{}-{}", std::process::id(), free_port());
    let image = format!("localhost/shelf-test:{id}");
    let cleanup = Cleanup {
        container: format!("shelf-test-{id}"),
        volume: format!("shelf-test-cache-{id}"),
        image: image.clone(),
    };

    // The image, from the test build's binary and the provisioned runtime.
    let out = Command::new(Path::new(ROOT).join("scripts/image"))
        .args(["--binary", SHELF, "--tag", &image, "--runtime"])
        .arg(Path::new(ROOT).join(".runtime"))
        .output()
        .unwrap();
    assert_eq!(ok(&out), image);
    let config = ok(&podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Config.User}} {{json .Config.Volumes}} {{json .Config.Healthcheck.Test}}",
        &image,
    ]));
    assert!(
        config.starts_with("10001:10001 {\"/var/cache/shelf\":{}}") && config.contains("/readyz"),
        "{config}"
    );
    let flags = host_flags(&image);

    // A local-directory store with a bundle, and no tag yet.
    let t = tempfile::tempdir().unwrap();
    let store = t.path().join("store");
    let repo = sample_repo();
    let built = cli::build(Path::new(SHELF), &repo, &t.path().join("b"));
    let store_s = store.display().to_string();
    let (code, _, err) = cli::run(
        Path::new(SHELF),
        &[
            "push",
            &built.path.display().to_string(),
            "--store",
            &store_s,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    share(&store);

    ok(&podman(&["volume", "create", &cleanup.volume]));
    let port = free_port();
    let publish = format!("127.0.0.1:{port}:7700");
    let cache = format!("{}:/var/cache/shelf", cleanup.volume);
    let mount = format!("{store_s}:/store:ro");
    let tokens = format!("SHELF_SEARCH_TOKENS={TOKEN}");
    let mut args = vec![
        "run",
        "--detach",
        "--name",
        &cleanup.container,
        // Read-only everywhere but the cache volume: no tmpfs on /tmp either.
        "--read-only",
        "--read-only-tmpfs=false",
        // The healthcheck is run below by hand (no systemd timers here).
        "--health-interval=disable",
        "--publish",
        &publish,
        "--volume",
        &cache,
        "--volume",
        &mount,
        "--env",
        &tokens,
    ];
    args.extend(flags.iter().map(String::as_str));
    args.extend([
        image.as_str(),
        "--store",
        "/store",
        "--follow",
        "production",
        "--poll-interval",
        "300ms",
    ]);
    ok(&podman(&args));
    let logs = || {
        let out = podman(&["logs", &cleanup.container]);
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Up, but nothing to serve: not ready, and the healthcheck says so.
    let started = Instant::now();
    wait_for(addr, "/healthz", 200, Duration::from_secs(60));
    assert_eq!(http::get(addr, "/readyz").status, 503, "{}", logs());
    let hc = podman(&["healthcheck", "run", &cleanup.container]);
    assert!(!hc.status.success(), "healthy before there is a bundle");

    // The tag lands: the container follows it into its cache volume.
    let (code, _, err) = cli::run(
        Path::new(SHELF),
        &["tag", "production", &built.digest, "--store", &store_s],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    share(&store);
    let ready = wait_for(addr, "/readyz", 200, Duration::from_secs(60)).json();
    eprintln!("container ready {:?} after start", started.elapsed());
    assert_eq!(ready["digest"], built.digest.as_str());
    ok(&podman(&["healthcheck", "run", &cleanup.container]));
    let q = format!(
        "/v1/search?q={}&k=1",
        encode("scale a picture to a size in pixels")
    );
    let auth = format!("Bearer {TOKEN}");
    let r = http::request(addr, "GET", &q, &[("Authorization", &auth)], b"");
    assert_eq!(r.status, 200, "{}", logs());
    assert_eq!(r.json()["results"][0]["path"], "tools/resize.py");
    assert_eq!(http::get(addr, &q).status, 401, "tokens are enforced");

    // Non-root, a read-only root, and the bundle in the volume.
    assert_eq!(
        ok(&podman(&["exec", &cleanup.container, "id", "-u"])),
        "10001"
    );
    for place in ["/usr/local/bin/x", "/tmp/x", "/opt/shelf/runtime/x"] {
        let w = podman(&["exec", &cleanup.container, "touch", place]);
        assert!(!w.status.success(), "{place} is writable");
        assert!(
            String::from_utf8_lossy(&w.stderr).contains("Read-only file system"),
            "{place}: {}",
            String::from_utf8_lossy(&w.stderr)
        );
    }
    let cached = ok(&podman(&[
        "exec",
        &cleanup.container,
        "ls",
        "/var/cache/shelf",
    ]));
    assert!(
        cached.contains(built.digest.trim_start_matches("sha256:")),
        "{cached}"
    );

    // Stopped by its PID with SIGTERM: it drains and exits 0.
    let pid = ok(&podman(&[
        "inspect",
        "--format",
        "{{.State.Pid}}",
        &cleanup.container,
    ]));
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let code = ok(&podman(&["wait", &cleanup.container]));
    assert_eq!(code, "0", "{}", logs());
    assert!(logs().contains("\"stopped\""), "{}", logs());
    drop(cleanup);
}

/// The fenced block after `marker` in docs/deployment.md.
fn doc_block(marker: &str) -> String {
    let doc = std::fs::read_to_string(Path::new(ROOT).join("docs/deployment.md")).unwrap();
    let start = doc
        .find(marker)
        .unwrap_or_else(|| panic!("docs/deployment.md has no {marker}"));
    let body = &doc[start + marker.len()..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("\n```").unwrap() + 1].to_string()
}

#[test]
fn docs_deployment_shows_exactly_the_dockerfile_and_the_unit_in_the_repository() {
    let dockerfile = std::fs::read_to_string(Path::new(ROOT).join("Dockerfile")).unwrap();
    assert_eq!(doc_block("```dockerfile"), dockerfile);
    let unit = std::fs::read_to_string(Path::new(ROOT).join("deploy/shelf-serve.service")).unwrap();
    assert_eq!(doc_block("```ini"), unit);
}

fn analyze(args: &[&str], unit: &Path) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(args)
        .arg(unit)
        .current_dir(unit.parent().unwrap())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    // scripts/setup-test-services installs it; without it the unit is
    // unchecked, which is a failure, not a pass.
    let version = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "systemd-analyze is needed to check deploy/shelf-serve.service and is not installed ({:?}): run scripts/setup-test-services (it installs Debian's systemd package)",
        version.err()
    );
    // verify also checks that ExecStart's binary exists: point it at this
    // build, the only difference from the file users install.
    let t = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(Path::new(ROOT).join("deploy/shelf-serve.service")).unwrap();
    assert!(text.contains("ExecStart=/usr/local/bin/shelf "));
    let unit = t.path().join("shelf-serve.service");
    std::fs::write(&unit, text.replace("/usr/local/bin/shelf", SHELF)).unwrap();
    let (success, said) = analyze(&["verify"], &unit);
    assert!(success && said.trim().is_empty(), "{said}");

    let (success, said) = analyze(&["security", "--offline=yes", "--no-pager"], &unit);
    assert!(success, "{said}");
    let level: f64 = said
        .split("Overall exposure level for shelf-serve.service: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in: {said}"));
    assert!(level <= 2.0, "exposure {level}:\n{said}");
    eprintln!("systemd-analyze security: exposure {level}");

    // The check is not a rubber stamp: a misspelt directive is reported.
    std::fs::write(
        &unit,
        text.replace("/usr/local/bin/shelf", SHELF)
            .replace("ProtectHome=yes", "ProtectHom=yes"),
    )
    .unwrap();
    let (_, said) = analyze(&["verify"], &unit);
    assert!(said.contains("Unknown key 'ProtectHom'"), "{said}");
}
