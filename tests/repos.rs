//! One server for many repositories, as a team runs it: a store root
//! (a local directory and moto's S3) whose children are the repositories'
//! stores, each published by its own workflow. Listing, the `repo` filter,
//! one ranked list across repositories, repositories appearing and going
//! while serving, one repository broken and unreachable under load while
//! the others answer, a repository of another model refused alone, and
//! search tokens limited to some repositories. The real binary, real
//! bundles, real stores.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use shelf_testkit::cli::{self, Built};
use shelf_testkit::http::{self, encode, metric_value};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::store::StoreArgs;
use shelf_testkit::{GitRepo, MotoServer, TEST_BUCKET, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const READY: Duration = Duration::from_secs(60);

fn shelf() -> &'static Path {
    Path::new(SHELF)
}

/// A small storefront: TypeScript whose meaning differs from the sample
/// repository's.
fn web_repo() -> GitRepo {
    let r = GitRepo::new();
    r.write(
        "src/cart.ts",
        "/** Computes the shopping cart total, adding sales tax to every line. */\n\
         export function cartTotal(items: Item[], taxRate: number): number {\n  \
         return items.reduce((sum, i) => sum + i.price * i.quantity * (1 + taxRate), 0);\n}\n",
    );
    r.write(
        "src/login.tsx",
        "/** The sign-in form: email, password and a remember-me box. */\n\
         export function LoginForm(props: { onSubmit: (email: string, password: string) => void }) {\n  \
         return <form onSubmit={submit}><input type=\"email\" /><input type=\"password\" /></form>;\n}\n",
    );
    r.commit("storefront");
    r
}

/// Install notes: a third repository published while serving.
fn docs_repo() -> GitRepo {
    let r = GitRepo::new();
    r.write(
        "guide/install.md",
        "# Installing\n\nInstall the command line tool with `cargo install`, then run the setup script once.\n",
    );
    r.commit("guide");
    r
}

/// A store root with its repositories' stores as children, and the
/// server's cache beside it.
struct Org {
    _t: tempfile::TempDir,
    dir: PathBuf,
    root: StoreArgs,
    moto: Option<MotoServer>,
}

impl Org {
    fn local() -> Self {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let root = StoreArgs {
            url: dir.join("root").display().to_string(),
            extra: vec![],
            env: vec![],
        };
        std::fs::create_dir_all(&root.url).unwrap();
        Self {
            _t: t,
            dir,
            root,
            moto: None,
        }
    }

    fn s3() -> Self {
        let t = tempfile::tempdir().unwrap();
        let moto = MotoServer::start();
        let mut root = StoreArgs::s3(&moto);
        root.url = format!("s3://{TEST_BUCKET}/org");
        Self {
            dir: t.path().to_path_buf(),
            _t: t,
            root,
            moto: Some(moto),
        }
    }

    /// Builds `repo`, pushes it to `ROOT/<name>` and tags it `production`,
    /// as that repository's workflow would.
    fn publish(&self, name: &str, repo: &GitRepo) -> Built {
        let built = cli::build(shelf(), repo, &self.dir.join("built").join(name));
        let store = self.root.child(name);
        store.push(shelf(), &built.path);
        store.tag(shelf(), "production", &built.digest);
        built
    }

    /// `n` children of the root that are not stores, and one that holds a
    /// tag under a name no repository may have.
    fn clutter(&self, n: usize) {
        match &self.moto {
            None => {
                for i in 0..n {
                    let d = Path::new(&self.root.url).join(format!("junk-{i:04}"));
                    std::fs::create_dir_all(&d).unwrap();
                    std::fs::write(d.join("README"), "not a store").unwrap();
                }
                let bad = Path::new(&self.root.url).join("Bad Name/tags");
                std::fs::create_dir_all(&bad).unwrap();
                std::fs::write(bad.join("production.json"), "{}").unwrap();
            }
            Some(moto) => {
                let junk: Vec<String> = (0..n).map(|i| format!("org/junk-{i:04}/README")).collect();
                moto.put_objects(TEST_BUCKET, &junk, "not a store");
                moto.put_objects(
                    TEST_BUCKET,
                    &["org/Bad Name/tags/production.json".into()],
                    "{}",
                );
            }
        }
    }

    /// Deletes repository `name`'s whole store.
    fn remove(&self, name: &str) {
        match &self.moto {
            None => std::fs::remove_dir_all(Path::new(&self.root.url).join(name)).unwrap(),
            Some(moto) => moto.delete_prefix(TEST_BUCKET, &format!("org/{name}/")),
        }
    }

    /// `shelf serve --store-root ROOT --follow production`, polling fast.
    fn serve(&self, extra: &[&str]) -> ServerProcess {
        let mut args = vec!["--store-root".to_string(), self.root.url.clone()];
        args.extend(self.root.extra.iter().cloned());
        args.extend(
            [
                "--follow",
                "production",
                "--cache",
                &self.dir.join("cache").display().to_string(),
                "--poll-interval",
                "200ms",
                "--retry-max",
                "1s",
            ]
            .map(String::from),
        );
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ServerProcess::start(shelf(), &args, &self.root.env())
    }
}

/// The names `/v1/repos` lists, and whether each is `ok`.
fn listed(body: &Value) -> Vec<(String, bool)> {
    body["repos"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap_or("").to_string(),
                        r["status"] == "ok",
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Waits until `/v1/repos` lists exactly `names`, all `ok`.
fn wait_repos(server: &ServerProcess, names: &[&str], headers: &[(&str, &str)]) -> Value {
    let want: Vec<(String, bool)> = names.iter().map(|n| (n.to_string(), true)).collect();
    let deadline = Instant::now() + READY;
    loop {
        let r = http::try_request(server.addr, "GET", "/v1/repos", headers, b"");
        if let Some(r) = &r
            && r.status == 200
            && listed(&r.json()) == want
        {
            return r.json();
        }
        assert!(
            Instant::now() < deadline,
            "/v1/repos never listed {names:?} all ok; last: {:?}\n{}",
            r.map(|r| String::from_utf8_lossy(&r.body).into_owned()),
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn search(addr: SocketAddr, query: &str, extra: &str) -> http::Response {
    http::get(addr, &format!("/v1/search?q={}&k=5{extra}", encode(query)))
}

/// The repositories of an answer's results.
fn result_repos(answer: &Value) -> BTreeSet<String> {
    answer["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r["repo"].as_str().unwrap_or("(none)").to_string())
                .collect()
        })
        .unwrap_or_default()
}

const CART: &str = "shopping cart total with sales tax";
const CAS: &str = "move a tag with compare-and-swap";
const INSTALL: &str = "install the command line tool with cargo";

/// Everything a store root promises, on either kind of store.
fn a_store_root_serves_each_child_store(org: &Org) {
    let api = org.publish("api", &sample_repo());
    let web = org.publish("web", &web_repo());
    org.clutter(120);
    let server = org.serve(&[]);
    let repos = wait_repos(&server, &["api", "web"], &[]);
    let by_name = |n: &str| {
        repos["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(by_name("api")["live"]["digest"], api.digest.as_str());
    assert_eq!(by_name("web")["live"]["digest"], web.digest.as_str());
    assert_eq!(by_name("web")["live"]["tag"], "production");
    assert!(by_name("web")["live"]["commit"].is_string(), "{repos:#}");
    assert!(by_name("web")["live"]["age_seconds"].is_u64(), "{repos:#}");
    // Refused names are said, never followed.
    let logs = server.logs_when(READY, |l| l.contains("'Bad Name'"));
    let said = logs
        .lines()
        .filter(|l| l.contains("ignoring a child of the store root") && l.contains("'Bad Name'"))
        .count();
    assert_eq!(said, 1, "said once: {logs}");
    assert!(
        repos["repos"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "Bad Name"),
        "{repos:#}"
    );

    let ready = http::get(server.addr, "/readyz");
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["repositories"].as_u64(),
            ready["live"].as_u64()
        ),
        (Some("ok"), Some(2), Some(2)),
        "{ready:#}"
    );

    // Across every repository: one ranked list, each result named.
    let cart = search(server.addr, CART, "").json();
    assert_eq!(cart["results"][0]["repo"], "web", "{cart:#}");
    assert_eq!(cart["results"][0]["path"], "src/cart.ts", "{cart:#}");
    assert!(cart["bundle"].is_null(), "{cart:#}");
    let answered: BTreeSet<&str> = cart["repos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["repo"].as_str().unwrap())
        .collect();
    assert_eq!(answered, BTreeSet::from(["api", "web"]));
    let cas = search(server.addr, CAS, "").json();
    assert_eq!(cas["results"][0]["repo"], "api", "{cas:#}");
    assert_eq!(cas["results"][0]["path"], "src/tags.rs", "{cas:#}");
    assert_eq!(
        result_repos(&cas),
        BTreeSet::from(["api".to_string(), "web".to_string()])
    );

    // The repo filter, GET and POST.
    let only_api = search(server.addr, CART, "&repo=api").json();
    assert_eq!(result_repos(&only_api), BTreeSet::from(["api".to_string()]));
    assert_eq!(only_api["bundle"]["digest"], api.digest.as_str());
    let post = http::post_json(
        server.addr,
        "/v1/search",
        &format!(r#"{{"query": "{CAS}", "repo": ["web"]}}"#),
    );
    assert_eq!(post.status, 200);
    assert_eq!(
        result_repos(&post.json()),
        BTreeSet::from(["web".to_string()])
    );
    let both = search(server.addr, CAS, "&repo=web,api").json();
    assert_eq!(both["results"][0]["repo"], "api", "{both:#}");

    // Unknown names are refused, naming them.
    let unknown = search(server.addr, CAS, "&repo=nope");
    assert_eq!(unknown.status, 400);
    let e = unknown.json();
    assert_eq!(e["error"]["code"], "unknown_repository");
    assert!(
        e["error"]["message"].as_str().unwrap().contains("'nope'"),
        "{e:#}"
    );
    let bad = search(server.addr, CAS, &format!("&repo={}", encode("../etc")));
    assert_eq!(bad.status, 400);

    // One repository in detail; the metrics carry its name.
    let b = http::get(server.addr, "/v1/bundle?repo=web").json();
    assert_eq!(b["live"]["digest"], web.digest.as_str());
    assert_eq!(b["repo"], "web");
    let several = http::get(server.addr, "/v1/bundle");
    assert_eq!(several.status, 400);
    assert!(String::from_utf8_lossy(&several.body).contains("?repo=NAME"));
    let metrics = String::from_utf8(http::get(server.addr, "/metrics").body).unwrap();
    assert_eq!(
        metric_value(&metrics, "shelf_repository_ready", &["repo=\"api\""]),
        Some(1.0)
    );
    assert_eq!(metric_value(&metrics, "shelf_repositories", &[]), Some(2.0));
    assert!(!metrics.contains("junk-"), "only repositories are labelled");

    // A repository publishing for the first time is served without a
    // restart; one whose store is deleted is dropped.
    let docs = org.publish("docs", &docs_repo());
    wait_repos(&server, &["api", "docs", "web"], &[]);
    let install = search(server.addr, INSTALL, "&repo=docs").json();
    assert_eq!(install["bundle"]["digest"], docs.digest.as_str());
    assert_eq!(install["results"][0]["path"], "guide/install.md");
    org.remove("web");
    wait_repos(&server, &["api", "docs"], &[]);
    assert_eq!(search(server.addr, CART, "&repo=web").status, 400);
    let after = search(server.addr, CART, "").json();
    assert!(!result_repos(&after).contains("web"), "{after:#}");
    assert_eq!(
        server
            .terminate(Duration::from_secs(10))
            .and_then(|s| s.code()),
        Some(0)
    );
}

#[test]
fn a_local_store_root_serves_each_child_store_as_a_repository() {
    a_store_root_serves_each_child_store(&Org::local());
}

#[test]
fn an_s3_store_root_serves_each_child_store_as_a_repository() {
    a_store_root_serves_each_child_store(&Org::s3());
}

/// More stores than one listing examines for "is it a store" (64) are
/// all served from the first listing: the 65th once waited a whole poll
/// interval for the next. The poll here is an hour, so only the first
/// listing can serve them. The bundles are synthetic (with the real
/// model's identity, so they load): only their listing is asked about.
#[test]
fn every_store_a_listing_finds_is_served_at_once() {
    use shelf_store::{MoveRequest, S3Options, Store, StoreLocation};
    let org = Org::local();
    let real = org.publish("api", &sample_repo());
    let model = shelf_formats::bundle::verify_file(&real.path, None, &Default::default())
        .unwrap()
        .manifest
        .model;
    let names: Vec<String> = (0..70).map(|i| format!("svc-{i:02}")).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (i, name) in names.iter().enumerate() {
            let out = org.dir.join("synthetic").join(name);
            let built = shelf_testkit::synthetic_bundle(&out, 3, &model, i as u64 + 1);
            let url = Path::new(&org.root.url).join(name).display().to_string();
            let location = StoreLocation::parse(&url, S3Options::default()).unwrap();
            let store = Store::create(&location).await.unwrap();
            shelf_store::push_bundle(&store, &built.path).await.unwrap();
            let tag = MoveRequest {
                tag: "production".into(),
                to: built.digest,
                expect: None,
                by: "test".into(),
                reason: None,
            };
            shelf_store::tags::move_tag(&store, &tag).await.unwrap();
        }
    });
    let cache = org.dir.join("cache").display().to_string();
    let args = [
        "--store-root",
        org.root.url.as_str(),
        "--follow",
        "production",
        "--cache",
        cache.as_str(),
        "--poll-interval",
        "1h",
    ];
    let server = ServerProcess::start(shelf(), &args, &[]);
    let mut all: Vec<&str> = names.iter().map(String::as_str).collect();
    all.insert(0, "api");
    wait_repos(&server, &all, &[]);
    let ready = server.wait_ready(READY);
    assert_eq!(ready["repositories"], 71, "{ready}");
    assert_eq!(ready["status"], "ok", "{ready}");
}

#[test]
fn the_cli_searches_named_repositories_and_lists_a_roots_tags() {
    let org = Org::local();
    let api = org.publish("api", &sample_repo());
    let web = org.publish("web", &web_repo());
    org.clutter(3);
    // Every repository's tags, one table or JSON.
    let (code, out, err) = cli::run(
        shelf(),
        &["tags", "--store-root", &org.root.url, "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let tags: Value = serde_json::from_str(&out).unwrap();
    let rows: Vec<(&str, &str)> = tags
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["repo"].as_str().unwrap(),
                r["tags"][0]["digest"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![("api", api.digest.as_str()), ("web", web.digest.as_str())]
    );
    assert!(err.contains("Bad Name"), "the invalid name is said: {err}");
    let (code, table, _) = cli::run(shelf(), &["tags", "--store-root", &org.root.url], &[]);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("production")),
        "{table}"
    );
    let (code, _, err) = cli::run(
        shelf(),
        &["tags", "--store-root", &org.root.url, "--store", "x"],
        &[],
    );
    assert_eq!(code, 2, "{err}");

    let server = org.serve(&[]);
    wait_repos(&server, &["api", "web"], &[]);
    let url = format!("http://{}", server.addr);
    let (code, out, err) = cli::run(
        shelf(),
        &["search", CART, "--server", &url, "--repo", "api", "--json"],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(result_repos(&answer), BTreeSet::from(["api".to_string()]));
    let (code, human, err) = cli::run(shelf(), &["search", CART, "--server", &url], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        human.contains("2 repositories") && human.contains("web:src/cart.ts"),
        "{human}"
    );
    let (code, _, err) = cli::run(
        shelf(),
        &["search", CART, "--server", &url, "--repo", "nope"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("unknown repository 'nope'"), "{err}");
    // --repo is for servers; a bundle file is one repository.
    let (code, _, err) = cli::run(
        shelf(),
        &[
            "search",
            CART,
            "--bundle",
            &api.path.display().to_string(),
            "--repo",
            "api",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--server"), "{err}");
}

/// Queries on threads until stopped: repository `api` alone (each answer
/// must equal `baseline`) and every repository at once, counting failures.
struct Load {
    stop: Arc<AtomicBool>,
    answered: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What of an answer must not change: paths, lines, scores, the bundle.
fn essence(answer: &Value) -> Value {
    let results: Vec<Value> = answer["results"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| serde_json::json!([r["repo"], r["path"], r["start_line"], r["score"]]))
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({"bundle": answer["bundle"]["digest"], "results": results})
}

impl Load {
    fn start(addr: SocketAddr, baseline: Value) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answered = Arc::new(AtomicUsize::new(0));
        let failures: Arc<Mutex<Vec<String>>> = Arc::default();
        let threads = (0..4)
            .map(|i| {
                let (stop, answered, failures) = (
                    Arc::clone(&stop),
                    Arc::clone(&answered),
                    Arc::clone(&failures),
                );
                let baseline = baseline.clone();
                std::thread::spawn(move || {
                    let alone = format!("/v1/search?q={}&k=5&repo=api", encode(CAS));
                    let across = format!("/v1/search?q={}&k=5", encode(CAS));
                    while !stop.load(Ordering::Relaxed) {
                        let target = if i % 2 == 0 { &alone } else { &across };
                        match http::try_request(addr, "GET", target, &[], b"") {
                            Some(r) if r.status == 200 => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                if target == &alone && essence(&r.json()) != baseline {
                                    failures.lock().unwrap().push(format!(
                                        "api's answer changed: {}",
                                        essence(&r.json())
                                    ));
                                }
                                if target == &across && r.json()["results"][0]["repo"] != "api" {
                                    failures
                                        .lock()
                                        .unwrap()
                                        .push(format!("across: {}", essence(&r.json())));
                                }
                            }
                            Some(r) => failures.lock().unwrap().push(format!(
                                "{target}: {} {}",
                                r.status,
                                String::from_utf8_lossy(&r.body)
                            )),
                            None => failures
                                .lock()
                                .unwrap()
                                .push(format!("{target}: no answer")),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            answered,
            failures,
            threads,
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.answered.load(Ordering::Relaxed),
            self.failures.lock().unwrap().clone(),
        )
    }
}

/// `/v1/repos`' entry for `name`.
fn entry(server: &ServerProcess, name: &str) -> Value {
    http::get(server.addr, "/v1/repos").json()["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

fn wait_entry(server: &ServerProcess, name: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + READY;
    loop {
        let e = entry(server, name);
        if ok(&e) {
            return e;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never reached the state; last {e:#}\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn one_repository_corrupt_and_unreachable_never_fails_a_healthy_one_under_load() {
    let org = Org::local();
    let api = org.publish("api", &sample_repo());
    let web_git = web_repo();
    let web = org.publish("web", &web_git);
    let server = org.serve(&[]);
    wait_repos(&server, &["api", "web"], &[]);
    let baseline = essence(&search(server.addr, CAS, "&repo=api").json());
    assert_eq!(baseline["bundle"], api.digest.as_str());
    let load = Load::start(server.addr, baseline);

    // web's tag moves to a bundle whose bytes are not its digest's.
    web_git.write("src/more.ts", "export const more = 1;\n");
    web_git.commit("more");
    let v2 = cli::build(shelf(), &web_git, &org.dir.join("built/web2"));
    let web_store = Path::new(&org.root.url).join("web");
    let mut bytes = std::fs::read(&v2.path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let hex = v2.digest.trim_start_matches("sha256:");
    std::fs::write(
        web_store.join(format!("bundles/sha256/{hex}.tar.zst")),
        &bytes,
    )
    .unwrap();
    org.root.child("web").tag(shelf(), "production", &v2.digest);
    let degraded = wait_entry(&server, "web", |e| {
        e["status"] == "degraded"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("does not match its sha256"))
    });
    assert_eq!(
        degraded["live"]["digest"],
        web.digest.as_str(),
        "the last good bundle stays live"
    );
    let ready = http::get(server.addr, "/readyz");
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["status"], "degraded");
    assert!(
        ready["reason"].as_str().unwrap().contains("web"),
        "{ready:#}"
    );
    assert!(
        !ready["reason"].as_str().unwrap().contains("api"),
        "{ready:#}"
    );

    // Then its store cannot be read at all.
    std::fs::remove_dir_all(web_store.join("tags")).unwrap();
    std::fs::write(web_store.join("tags"), "not a directory").unwrap();
    let unreachable = wait_entry(&server, "web", |e| {
        e["status"] == "degraded"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("and the store") && r.contains("Not a directory"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let metrics = String::from_utf8(http::get(server.addr, "/metrics").body).unwrap();
    assert_eq!(
        metric_value(&metrics, "shelf_repository_degraded", &["repo=\"web\""]),
        Some(1.0),
        "{unreachable:#}"
    );
    assert_eq!(
        metric_value(&metrics, "shelf_repository_degraded", &["repo=\"api\""]),
        Some(0.0)
    );
    assert_eq!(entry(&server, "api")["status"], "ok");

    let (answered, failures) = load.finish();
    assert!(
        failures.is_empty(),
        "{} of {answered} queries failed or changed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(answered > 50, "only {answered} queries ran");
}

#[test]
fn a_repository_of_another_model_is_refused_alone_with_the_reason() {
    let org = Org::local();
    org.publish("api", &sample_repo());
    let model = shelf_testkit::custom_model(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".runtime"),
        "name = \"test/minilm-cls\"\ndimensions = 384\npooling = \"cls\"\nmax_tokens = 256\n",
    );
    let other = web_repo();
    let (code, out, err) = cli::run(
        shelf(),
        &[
            "build",
            "--json",
            "--model",
            &model.path().display().to_string(),
            "--repo",
            &other.path().display().to_string(),
            "--out",
            &org.dir.join("built/other").display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let store = org.root.child("web");
    store.push(shelf(), Path::new(report["bundle_path"].as_str().unwrap()));
    store.tag(shelf(), "production", report["digest"].as_str().unwrap());

    let server = org.serve(&[]);
    let web = wait_entry(&server, "web", |e| {
        e["status"] == "not_ready" && e["reason"].as_str().is_some_and(|r| r.contains("model"))
    });
    let reason = web["reason"].as_str().unwrap();
    assert!(reason.contains("test/minilm-cls"), "{web:#}");
    assert_eq!(
        wait_entry(&server, "api", |e| e["status"] == "ok")["status"],
        "ok"
    );
    // api answers; web is named as not servable.
    let cas = search(server.addr, CAS, "").json();
    assert_eq!(
        result_repos(&cas),
        BTreeSet::from(["api".to_string()]),
        "{cas:#}"
    );
    let asked = search(server.addr, CART, "&repo=web");
    assert_eq!(
        asked.status,
        503,
        "{}",
        String::from_utf8_lossy(&asked.body)
    );
    assert!(String::from_utf8_lossy(&asked.body).contains("web"));
}

#[test]
fn scoped_tokens_never_see_outside_their_repositories() {
    let org = Org::local();
    org.publish("api", &sample_repo());
    org.publish("web", &web_repo());
    org.publish("secret-payroll", &docs_repo());
    let all = "unscoped-token-0123456789abcdef";
    let web_only = "web-token-0123456789abcdefghij";
    let tokens = org.dir.join("tokens");
    std::fs::write(
        &tokens,
        format!("# who sees what\n{all}\n{web_only} web,we?-*\n"),
    )
    .unwrap();
    let server = org.serve(&["--search-tokens-file", &tokens.display().to_string()]);
    let full = [("Authorization", format!("Bearer {all}"))];
    let full: Vec<(&str, &str)> = full.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let scoped = [("Authorization", format!("Bearer {web_only}"))];
    let scoped: Vec<(&str, &str)> = scoped.iter().map(|(k, v)| (*k, v.as_str())).collect();
    wait_repos(&server, &["api", "secret-payroll", "web"], &full);
    let get = |target: &str, h: &[(&str, &str)]| http::request(server.addr, "GET", target, h, b"");

    // The listing, readiness and a search across everything: web alone.
    let listing = get("/v1/repos", &scoped);
    assert_eq!(listing.status, 200);
    assert_eq!(listed(&listing.json()), vec![("web".to_string(), true)]);
    let ready = String::from_utf8(get("/readyz", &scoped).body).unwrap();
    assert!(
        !ready.contains("api") && !ready.contains("secret"),
        "{ready}"
    );
    let install = get(&format!("/v1/search?q={}&k=10", encode(INSTALL)), &scoped);
    assert_eq!(install.status, 200);
    let install = install.json();
    assert_eq!(result_repos(&install), BTreeSet::from(["web".to_string()]));
    let text = install.to_string();
    assert!(
        !text.contains("secret-payroll") && !text.contains("\"api\""),
        "{text}"
    );

    // A repository outside the scope and one that does not exist: the
    // same answer, and neither lists the hidden ones.
    for target in ["/v1/search?q=x&repo=", "/v1/bundle?repo="] {
        let hidden = get(&format!("{target}secret-payroll"), &scoped);
        let missing = get(&format!("{target}secret-payrolx"), &scoped);
        assert_eq!((hidden.status, missing.status), (400, 400), "{target}");
        let (h, m) = (hidden.json(), missing.json());
        assert_eq!(h["error"]["code"], m["error"]["code"]);
        assert_eq!(
            h["error"]["message"]
                .as_str()
                .unwrap()
                .replace("secret-payroll", "NAME"),
            m["error"]["message"]
                .as_str()
                .unwrap()
                .replace("secret-payrolx", "NAME"),
        );
        assert!(
            !h.to_string().contains("\"api\"") && !h.to_string().contains("api,"),
            "{h:#}"
        );
    }
    let mixed = get("/v1/search?q=x&repo=web,api", &scoped);
    assert_eq!(mixed.status, 400);
    let web_bundle = get("/v1/bundle?repo=web", &scoped).json();
    assert_eq!(
        web_bundle["cached"].as_array().unwrap().len(),
        1,
        "{web_bundle:#}"
    );
    // The metrics name every repository: not for a scoped token.
    assert_eq!(get("/metrics", &scoped).status, 403);
    assert_eq!(get("/metrics", &[]).status, 401);
    assert_eq!(get("/metrics", &full).status, 200);

    // The unscoped token sees everything, as before.
    assert_eq!(listed(&get("/v1/repos", &full).json()).len(), 3);
    let everything = get(&format!("/v1/search?q={}&k=10", encode(INSTALL)), &full).json();
    assert!(
        result_repos(&everything).contains("secret-payroll"),
        "{everything:#}"
    );
    // No token, no answer.
    assert_eq!(get("/v1/repos", &[]).status, 401);
}
