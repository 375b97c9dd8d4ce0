//! The serving path under faults, as an operator meets them: tags moved to
//! bad bundles and back, store copies repaired, a cache damaged, deleted or
//! out of space, cached files truncated under a live bundle, one client
//! holding every connection, oversized or stalled request heads, and query
//! text in logs. The real binary, real bundles, a real local store; every
//! transition under query load, counting failed requests and answers from
//! a bundle other than the tag's target.

use std::io::{Read, Seek, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shelf_testkit::GitRepo;
use shelf_testkit::cli::{self, Built};
use shelf_testkit::http::{self, encode};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::store::{StoreArgs, plant};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const READY: Duration = Duration::from_secs(60);
const QUERY: &str = "move a tag with compare-and-swap";

fn shelf() -> &'static Path {
    Path::new(SHELF)
}

fn build(repo: &GitRepo, out: &Path) -> Built {
    cli::build(shelf(), repo, out)
}

/// The sample repository published as v1, plus two later commits built
/// (v2 pushed, v3 not).
struct Releases {
    _t: tempfile::TempDir,
    dir: PathBuf,
    store: StoreArgs,
    v1: Built,
    v2: Built,
    v3: Built,
}

fn releases() -> Releases {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().to_path_buf();
    let store = StoreArgs::local(&dir);
    let (repo, v1) = store.published(shelf(), &dir.join("b"));
    repo.write("src/extra.rs", "/// Extra.\npub fn extra() {}\n");
    repo.commit("v2");
    let v2 = build(&repo, &dir.join("b"));
    store.push(shelf(), &v2.path);
    repo.write("src/more.rs", "/// More.\npub fn more() {}\n");
    repo.commit("v3");
    let v3 = build(&repo, &dir.join("b"));
    Releases {
        _t: t,
        dir,
        store,
        v1,
        v2,
        v3,
    }
}

fn follow(r: &Releases, cache: &Path, extra: &[&str]) -> ServerProcess {
    let mut args = vec!["--poll-interval", "200ms", "--retry-max", "1s"];
    args.extend_from_slice(extra);
    r.store.follow(shelf(), "production", cache, &args, &[])
}

/// Waits until `/readyz` is `status` with `target` as the tag's target;
/// returns its JSON.
fn wait_readyz(server: &ServerProcess, status: &str, target: &str) -> serde_json::Value {
    server.wait_for("/readyz", READY, |r| {
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
        v["status"] == status && v["target"] == target
    })
}

/// Queries on `threads` threads until dropped, counting failed requests
/// and answers from a bundle other than the one `expect` names while it
/// names one (set after the server reports ok, cleared before a tag move).
struct Load {
    stop: Arc<AtomicBool>,
    expect: Arc<Mutex<Option<String>>>,
    answered: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    wrong: Arc<Mutex<Vec<String>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr, threads: usize) -> Self {
        let load = Self {
            stop: Arc::default(),
            expect: Arc::default(),
            answered: Arc::default(),
            failed: Arc::default(),
            wrong: Arc::default(),
            threads: Vec::new(),
        };
        let threads = (0..threads)
            .map(|_| {
                let (stop, expect) = (Arc::clone(&load.stop), Arc::clone(&load.expect));
                let (answered, failed) = (Arc::clone(&load.answered), Arc::clone(&load.failed));
                let wrong = Arc::clone(&load.wrong);
                std::thread::spawn(move || {
                    let target = format!("/v1/search?q={}&k=3", encode(QUERY));
                    while !stop.load(Ordering::Relaxed) {
                        let expected = expect.lock().unwrap().clone();
                        match http::try_request(addr, "GET", &target, &[], b"") {
                            Some(r) if r.status == 200 => {
                                answered.fetch_add(1, Ordering::Relaxed);
                                let got = r.json()["bundle"]["digest"]
                                    .as_str()
                                    .unwrap_or("")
                                    .to_string();
                                if let Some(e) = expected
                                    && got != e
                                {
                                    wrong.lock().unwrap().push(format!("{got} while {e}"));
                                }
                            }
                            _ => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        Self { threads, ..load }
    }

    /// From now on every answer must come from `digest`.
    fn expect(&self, digest: Option<&str>) {
        *self.expect.lock().unwrap() = digest.map(str::to_string);
    }

    /// Stops and returns (answered, failed, wrong answers).
    fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            t.join().unwrap();
        }
        let wrong = self.wrong.lock().unwrap().clone();
        (
            self.answered.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            wrong,
        )
    }
}

/// The value of the series `name` whose labels include every one of
/// `labels` (`key="value"`), 0 when there is none.
fn metric(server: &ServerProcess, name: &str, labels: &[&str]) -> u64 {
    let body = String::from_utf8(http::get(server.addr, "/metrics").body).unwrap();
    shelf_testkit::http::metric_value(&body, name, labels).unwrap_or(0.0) as u64
}

/// A tag moved to a bad bundle, to a good one, and to the bad one again is
/// reported degraded every time it names the bad one (never `ok` while
/// another bundle serves), and once the store's copy is repaired the same
/// digest is fetched again and served. Under load: no request fails, and
/// once the server says ok every answer is from the tag's target.
#[test]
fn a_refused_bundle_is_reported_every_time_its_tag_names_it_and_served_once_repaired() {
    let r = releases();
    let good_v3 = std::fs::read(&r.v3.path).unwrap();
    let mut bad = good_v3.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x40;
    plant(&r.dir, &r.v3.digest, &bad);
    let server = follow(&r, &r.dir.join("cache"), &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    let load = Load::start(server.addr, 4);
    load.expect(Some(&r.v1.digest));

    let step = |target: &Built, status: &str| {
        load.expect(None);
        r.store.tag(shelf(), "production", &target.digest);
        if status == "ok" {
            let ready = wait_readyz(&server, status, &target.digest);
            assert_eq!(ready["digest"], target.digest);
            load.expect(Some(&target.digest));
            return ready;
        }
        // Refused, not just loading: the failure is on record.
        server.wait_for("/v1/bundle", READY, |r| {
            let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap_or_default();
            v["load_problem"]["digest"] == target.digest.as_str()
        });
        wait_readyz(&server, status, &target.digest)
    };
    let refused = step(&r.v3, "degraded");
    let reason = refused["reason"].as_str().unwrap();
    assert!(reason.contains(&r.v3.digest), "{reason}");
    assert_eq!(metric(&server, "shelf_degraded", &[]), 1);
    step(&r.v2, "ok");
    assert_eq!(metric(&server, "shelf_degraded", &[]), 0);
    // The same bad digest again: reported again, not silently skipped.
    let again = step(&r.v3, "degraded");
    assert_eq!(metric(&server, "shelf_degraded", &[]), 1);
    assert_eq!(
        again["digest"], r.v2.digest,
        "the good bundle keeps serving"
    );
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["load_problem"]["cause"], "verification", "{info:#}");
    assert_eq!(info["load_problem"]["digest"], r.v3.digest.as_str());
    assert!(info["load_problem"]["retry_at"].is_string(), "{info:#}");
    // Repair the store's copy: the digest is retried and served.
    plant(&r.dir, &r.v3.digest, &good_v3);
    let ready = wait_readyz(&server, "ok", &r.v3.digest);
    assert_eq!(ready["digest"], r.v3.digest);
    load.expect(Some(&r.v3.digest));
    std::thread::sleep(Duration::from_millis(300));
    let (answered, failed, wrong) = load.finish();
    assert!(answered > 20, "the load ran ({answered} answers)");
    assert_eq!(failed, 0, "no request failed during the transitions");
    assert!(wrong.is_empty(), "answers from another bundle: {wrong:?}");
    let logs = server.logs_when(Duration::from_secs(5), |l| {
        l.matches("refused the tag's bundle").count() >= 2
    });
    assert!(
        logs.matches("refused the tag's bundle").count() >= 2,
        "each refusal is logged: {logs}"
    );
}

/// A cached copy damaged (or deleted) behind the server's back is fetched
/// again when a rollback needs it; the server never serves it, never
/// reports ok while serving something else, and never needs a restart.
#[test]
fn a_damaged_or_deleted_cache_copy_is_fetched_again_on_rollback() {
    let r = releases();
    let cache = r.dir.join("cache");
    let server = follow(&r, &cache, &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    r.store.tag(shelf(), "production", &r.v2.digest);
    wait_readyz(&server, "ok", &r.v2.digest);
    let load = Load::start(server.addr, 2);
    load.expect(Some(&r.v2.digest));
    // v1 is still cached (kept for instant rollback): damage it.
    let v1_dir = cache.join(r.v1.digest.trim_start_matches("sha256:"));
    let chunks = v1_dir.join("chunks.bin");
    let len = std::fs::metadata(&chunks).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&chunks)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    load.expect(None);
    r.store.tag(shelf(), "production", &r.v1.digest);
    wait_readyz(&server, "ok", &r.v1.digest);
    load.expect(Some(&r.v1.digest));
    // And v2's copy removed by hand, as the old message advised.
    std::fs::remove_dir_all(cache.join(r.v2.digest.trim_start_matches("sha256:"))).unwrap();
    load.expect(None);
    r.store.tag(shelf(), "production", &r.v2.digest);
    wait_readyz(&server, "ok", &r.v2.digest);
    load.expect(Some(&r.v2.digest));
    std::thread::sleep(Duration::from_millis(200));
    let (answered, failed, wrong) = load.finish();
    assert!(answered > 10);
    assert_eq!(failed, 0);
    assert!(wrong.is_empty(), "{wrong:?}");
    let logs = server.logs_when(Duration::from_secs(5), |l| l.contains("damaged"));
    assert!(logs.contains("damaged"), "{logs}");
}

/// Deleting the whole cache directory while serving is safe, as the docs
/// say: the next swap makes it again.
#[test]
fn deleting_the_cache_directory_while_serving_breaks_no_later_swap() {
    let r = releases();
    let cache = r.dir.join("cache");
    let server = follow(&r, &cache, &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    std::fs::remove_dir_all(&cache).unwrap();
    let answer = http::get(server.addr, &format!("/v1/search?q={}", encode(QUERY)));
    assert_eq!(answer.status, 200, "the live bundle needs no cache files");
    r.store.tag(shelf(), "production", &r.v2.digest);
    wait_readyz(&server, "ok", &r.v2.digest);
    assert!(cache.join("state.json").is_file(), "state is written again");
    r.store.tag(shelf(), "production", &r.v1.digest);
    wait_readyz(&server, "ok", &r.v1.digest);
}

/// A full disk under the cache is a disk failure, retried, never called a
/// corrupt bundle; once space is freed the bundle goes live without a
/// restart. Needs root for a size-limited tmpfs: where it cannot mount one
/// it fails saying so (CI runs it as root; a runner without root leaves it
/// out with nextest's filter, which counts it as skipped).
#[test]
fn a_full_cache_disk_is_reported_as_such_and_retried_until_space_is_freed() {
    let r = releases();
    let cache = r.dir.join("tmpfs-cache");
    std::fs::create_dir_all(&cache).unwrap();
    let mount = std::process::Command::new("mount")
        // 0700: the server refuses a cache directory others may write.
        .args(["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs"])
        .arg(&cache)
        .output();
    let mounted = mount.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        mounted,
        "this test needs to mount a 4 MiB tmpfs (root, or CAP_SYS_ADMIN) and cannot: {}; run it as root, or leave it out knowingly: cargo nextest run -E 'not test(=a_full_cache_disk_is_reported_as_such_and_retried_until_space_is_freed)'",
        match &mount {
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_string(),
            Err(e) => format!("mount: {e}"),
        }
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _unmount = Unmount(cache.clone());
    let server = follow(&r, &cache, &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    // Fill the disk.
    let filler = cache.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 << 10];
    while f.write_all(&block).is_ok() {}
    drop(f);
    r.store.tag(shelf(), "production", &r.v2.digest);
    let degraded = wait_readyz(&server, "degraded", &r.v2.digest);
    let reason = degraded["reason"].as_str().unwrap();
    assert!(
        !reason.contains("corrupt") && !reason.contains("truncated"),
        "a full disk is not a corrupt bundle: {reason}"
    );
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["load_problem"]["cause"], "disk", "{info:#}");
    assert!(
        info["load_problem"]["message"]
            .as_str()
            .unwrap()
            .contains("No space left"),
        "{info:#}"
    );
    assert!(
        metric(
            &server,
            "shelf_bundle_load_failures_total",
            &["reason=\"disk\""]
        ) >= 1
    );
    assert_eq!(
        metric(
            &server,
            "shelf_bundle_load_failures_total",
            &["reason=\"verification\""]
        ),
        0
    );
    std::fs::remove_file(&filler).unwrap();
    let started = Instant::now();
    wait_readyz(&server, "ok", &r.v2.digest);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "live within the retry backoff once space is back: {:?}",
        started.elapsed()
    );
}

/// The live bundle's cache files are mapped read-only and leased: another
/// process that opens one for writing (here root, which permissions do not
/// stop) is held back by the kernel while the server exits at once, naming
/// the file, before any answer can come from the changed bytes; the writer
/// then goes ahead. A server started again on that cache finds the files
/// changed since they were verified, fetches the bundle again, and answers
/// as before (docs/serve.md, "The cache directory").
#[test]
fn a_cache_file_written_under_a_live_bundle_stops_the_server_and_a_restart_heals_it() {
    let r = releases();
    let cache = r.dir.join("cache");
    let mut server = follow(&r, &cache, &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    let ask = |addr: SocketAddr| {
        let a = http::get(addr, &format!("/v1/search?q={}&k=3", encode(QUERY)));
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        http::timeless(a.json())
    };
    let before = ask(server.addr);
    let dir = cache.join(r.v1.digest.trim_start_matches("sha256:"));
    let writer = {
        let dir = dir.clone();
        std::thread::spawn(move || {
            // Blocks in open() until the server has let its lease go.
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("vectors.bin"))
                .unwrap();
            std::io::Write::write_all(&mut f, b"changed behind the server's back").unwrap();
            std::fs::OpenOptions::new()
                .write(true)
                .open(dir.join("chunks.bin"))
                .unwrap()
                .set_len(0)
                .unwrap();
        })
    };
    let status = server
        .wait_exit(Duration::from_secs(30))
        .expect("the server exits when a leased file is opened for writing");
    assert_eq!(status.code(), Some(75), "{}", server.logs());
    let logs = server.logs();
    assert!(
        logs.contains("vectors.bin") && logs.contains("exiting now"),
        "{logs}"
    );
    writer.join().unwrap();
    assert_eq!(std::fs::metadata(dir.join("chunks.bin")).unwrap().len(), 0);
    // A new process on the same cache refuses the changed copy and fetches
    // the bundle from the store again.
    let server = follow(&r, &cache, &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    for _ in 0..5 {
        assert_eq!(ask(server.addr), before);
    }
    let logs = server.logs_when(Duration::from_secs(5), |l| l.contains("damaged"));
    assert!(
        logs.contains("damaged") && logs.contains("was verified"),
        "{logs}"
    );
}

/// A TCP connection from `source` (another loopback address) to `addr`.
fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let from: SocketAddr = format!("{source}:0")
        .parse()
        .map_err(std::io::Error::other)?;
    socket.bind(&from.into())?;
    socket.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    Ok(socket.into())
}

/// Whether the server has closed `stream` (a read ends or fails at once).
fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// One address holding many stalled connections (slowloris) gets no more
/// than its share; everyone else is served, and its stalled heads are
/// closed after the header timeout, as are idle keep-alive connections.
#[test]
fn one_client_cannot_take_every_connection() {
    let r = releases();
    let server = r.store.follow(
        shelf(),
        "production",
        &r.dir.join("cache"),
        &[
            "--max-connections-per-client",
            "16",
            "--header-timeout",
            "1s",
        ],
        &[],
    );
    wait_readyz(&server, "ok", &r.v1.digest);
    let mut held = Vec::new();
    for _ in 0..64 {
        if let Ok(mut s) = connect_from("127.0.0.2", server.addr) {
            // Half a request head, never finished.
            let _ = s.write_all(b"GET /v1/search?q=x HTTP/1.1\r\nHost: a\r\n");
            held.push(s);
        }
    }
    let still_open = held
        .iter_mut()
        .map(|s| closed(s, Duration::from_millis(100)))
        .filter(|closed| !closed)
        .count();
    assert!(
        still_open <= 16,
        "{still_open} of 64 connections from one address stayed open"
    );
    for i in 0..30 {
        let r = http::try_request(
            server.addr,
            "GET",
            &format!("/v1/search?q={}", encode(QUERY)),
            &[],
            b"",
        );
        assert_eq!(
            r.map(|r| r.status),
            Some(200),
            "request {i} from another client"
        );
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        held.iter_mut()
            .all(|s| closed(s, Duration::from_millis(500))),
        "stalled heads are closed after the header timeout"
    );
    // An idle keep-alive connection is closed after the same timeout.
    let mut keep = TcpStream::connect(server.addr).unwrap();
    keep.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n")
        .unwrap();
    keep.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 512];
    assert!(keep.read(&mut buf).unwrap() > 0, "answered");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        closed(&mut keep, Duration::from_millis(500)),
        "idle keep-alive closed"
    );
    assert!(
        metric(
            &server,
            "shelf_http_rejected_total",
            &["reason=\"too_many_connections_from_client\""]
        ) >= 48
    );
}

/// The documented head limit is the real one, and a stalled head is
/// closed (hyper answers nothing; the docs say so).
#[test]
fn a_head_over_12_kib_gets_431_and_one_under_it_does_not() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&shelf_testkit::sample_repo(), &t.path().join("b"));
    let server = ServerProcess::serve_bundle(
        shelf(),
        &v1.path,
        &t.path().join("cache"),
        &["--header-timeout", "1s"],
        &[],
    );
    server.wait_ready(READY);
    let head = |filler: usize| {
        let mut h = String::from("GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n");
        let line_overhead = "X-Pad: \r\n".len() + "\r\n".len();
        h.push_str(&format!(
            "X-Pad: {}\r\n\r\n",
            "a".repeat(filler - h.len() - line_overhead)
        ));
        assert_eq!(h.len(), filler);
        h
    };
    let status = |h: String| {
        http::raw(server.addr, h.as_bytes(), Duration::from_secs(5))
            .and_then(|b| http::parse(&b))
            .map(|r| r.status)
    };
    assert_eq!(status(head(12 << 10)), Some(200));
    assert_eq!(status(head((12 << 10) + 1)), Some(431));
    let started = Instant::now();
    let stalled = http::raw(
        server.addr,
        b"GET /healthz HTTP/1.1\r\nHost: a\r\n",
        Duration::from_secs(10),
    );
    assert!(stalled.is_none(), "closed without an answer: {stalled:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Query text reaches no log at any level (the tokenizer's trace lines
/// spelled it out character by character) unless --log-queries asks.
#[test]
fn query_text_reaches_no_log_unless_asked_for() {
    let t = tempfile::tempdir().unwrap();
    let v1 = build(&shelf_testkit::sample_repo(), &t.path().join("b"));
    let secret_query = "quixotic zeppelin fandango";
    for (extra, logged) in [(&[][..], false), (&["--log-queries"][..], true)] {
        let server = ServerProcess::serve_bundle(
            shelf(),
            &v1.path,
            &t.path().join("cache"),
            extra,
            &[("SHELF_LOG", "trace")],
        );
        server.wait_ready(READY);
        let r = http::get(
            server.addr,
            &format!("/v1/search?q={}", encode(secret_query)),
        );
        assert_eq!(r.status, 200);
        // The access line is written after the answer.
        let logs = server.logs_when(Duration::from_secs(5), |l| l.contains("route=\"search\""));
        assert!(logs.contains("route=\"search\""), "the request is logged");
        assert_eq!(logs.contains("zeppelin"), logged, "{extra:?}: {logs}");
        assert!(
            !logs.contains("Replacing char"),
            "tokenizer trace lines are off"
        );
    }
}

/// Makes a named pipe at `path`.
fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `/healthz` and a search from `digest` answer now, each within a few
/// seconds: nothing the follower does holds the server.
fn still_answers(server: &ServerProcess, digest: &str) {
    let started = Instant::now();
    let health = http::try_request(server.addr, "GET", "/healthz", &[], b"");
    assert_eq!(health.map(|r| r.status), Some(200), "/healthz answers");
    let answer = http::get(server.addr, &format!("/v1/search?q={}", encode(QUERY)));
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["bundle"]["digest"], digest);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "answered in {:?}",
        started.elapsed()
    );
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// An object in a local store that is not a regular file is refused with
/// its path and never read: a tag record or a bundle that is a named pipe
/// (whose open would block for ever) or a link to /dev/zero (whose read
/// would never end). /healthz and the live bundle answer throughout, a
/// record over the size any record may be is refused unread, a bad bundle
/// object is a bad object (`verification`), never a full disk, and SIGTERM
/// still stops the server.
#[test]
fn store_objects_that_are_not_regular_files_are_refused_and_block_nothing() {
    let r = releases();
    let server = follow(&r, &r.dir.join("cache"), &[]);
    wait_readyz(&server, "ok", &r.v1.digest);
    let store = r.dir.join("store");
    let record = store.join("tags/production.json");
    let saved = r.dir.join("production.json.saved");
    std::fs::rename(&record, &saved).unwrap();
    let reason_names = |what: &'static str| {
        let record = record.display().to_string();
        move |resp: &http::Response| {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            let reason = v["reason"].as_str().unwrap_or("");
            v["status"] == "degraded" && reason.contains(what) && reason.contains(&record)
        }
    };

    mkfifo(&record);
    server.wait_for("/readyz", READY, reason_names("named pipe"));
    still_answers(&server, &r.v1.digest);

    std::fs::remove_file(&record).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &record).unwrap();
    server.wait_for("/readyz", READY, reason_names("character device"));
    still_answers(&server, &r.v1.digest);
    assert!(
        rss_kib(server.pid()) < 2 << 20,
        "memory stays bounded: {} KiB",
        rss_kib(server.pid())
    );

    std::fs::remove_file(&record).unwrap();
    std::fs::write(&record, vec![b' '; 17 << 20]).unwrap();
    let large = server.wait_for("/readyz", READY, |resp| {
        resp.json()["reason"]
            .as_str()
            .is_some_and(|r| r.contains("larger than") && r.contains("tags/production.json"))
    });
    assert_eq!(large["status"], "degraded", "{large:#}");

    std::fs::remove_file(&record).unwrap();
    std::fs::rename(&saved, &record).unwrap();
    wait_readyz(&server, "ok", &r.v1.digest);

    // The tag moves to a bundle whose object is a pipe, then a device.
    let hex = r.v2.digest.trim_start_matches("sha256:");
    let object = store.join(format!("bundles/sha256/{hex}.tar.zst"));
    let kept = r.dir.join("v2.tar.zst.saved");
    std::fs::rename(&object, &kept).unwrap();
    mkfifo(&object);
    r.store.tag(shelf(), "production", &r.v2.digest);
    let problem_names = |what: &'static str| {
        let object = object.display().to_string();
        move |resp: &http::Response| {
            let v: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
            v["load_problem"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(what) && m.contains(&object))
        }
    };
    let info = server.wait_for("/v1/bundle", READY, problem_names("named pipe"));
    assert_eq!(info["load_problem"]["cause"], "verification", "{info:#}");
    assert_eq!(info["status"], "degraded", "{info:#}");
    still_answers(&server, &r.v1.digest);

    std::fs::remove_file(&object).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &object).unwrap();
    let info = server.wait_for("/v1/bundle", READY, problem_names("character device"));
    assert_eq!(info["load_problem"]["cause"], "verification", "{info:#}");
    still_answers(&server, &r.v1.digest);
    assert_eq!(
        metric(
            &server,
            "shelf_bundle_load_failures_total",
            &["reason=\"disk\""]
        ),
        0,
        "a bad store object is not a full disk"
    );
    let cache_entries: Vec<String> = std::fs::read_dir(r.dir.join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".download-"))
        .collect();
    assert!(
        cache_entries.is_empty(),
        "nothing downloaded: {cache_entries:?}"
    );

    // Repaired: the same digest is fetched again and served.
    std::fs::remove_file(&object).unwrap();
    std::fs::rename(&kept, &object).unwrap();
    wait_readyz(&server, "ok", &r.v2.digest);
    let status = server.terminate(Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| s.success()),
        "SIGTERM stops it: {status:?}"
    );
}

/// A follower that panics (a fault the debug build's test hook injects:
/// release builds have no hook) is reported as `internal` in /readyz,
/// /v1/bundle and /v1/repos while the live bundle keeps answering; each
/// stop is logged once with its cause and counted; the follower is started
/// again with backoff (not in a tight loop); once it runs again the report
/// clears, and the next tag move is served.
#[test]
fn a_follower_that_panics_is_reported_restarted_and_serves_the_next_tag_move() {
    let r = releases();
    let faults = tempfile::tempdir().unwrap();
    let fault_dir = faults.path().display().to_string();
    let server = r.store.follow(
        shelf(),
        "production",
        &r.dir.join("cache"),
        &["--poll-interval", "200ms", "--retry-max", "1s"],
        &[("SHELF_TEST_FAULTS", fault_dir.as_str())],
    );
    wait_readyz(&server, "ok", &r.v1.digest);
    let name = http::get(server.addr, "/v1/repos").json()["repos"][0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let trigger = faults.path().join(format!("follower-check-{name}"));
    std::fs::write(&trigger, b"").unwrap();

    let ready = wait_readyz(&server, "degraded", &r.v1.digest);
    let reason = ready["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("internal:")
            && reason.contains(&format!("the follower of repository '{name}'"))
            && reason.contains("fault injected"),
        "{reason}"
    );
    let info = http::get(server.addr, "/v1/bundle").json();
    assert_eq!(info["status"], "degraded", "{info:#}");
    assert_eq!(info["task_problem"]["cause"], "internal", "{info:#}");
    assert!(info["task_problem"]["retry_at"].is_string(), "{info:#}");
    let listed = http::get(server.addr, "/v1/repos").json();
    assert_eq!(listed["repos"][0]["status"], "degraded", "{listed:#}");
    assert!(
        listed["repos"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("internal:")),
        "{listed:#}"
    );
    still_answers(&server, &r.v1.digest);
    let stops = |server: &ServerProcess| {
        metric(
            server,
            "shelf_task_failures_total",
            &[
                "task=\"follower\"",
                &format!("repo=\"{name}\""),
                "reason=\"panic\"",
            ],
        )
    };
    // Restarted while the fault lasts, each time after a wait.
    let started = Instant::now();
    while stops(&server) < 3 {
        assert!(
            started.elapsed() < READY,
            "the follower is not restarted: {}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(&trigger).unwrap();
    wait_readyz(&server, "ok", &r.v1.digest);
    let elapsed = started.elapsed();
    let count = stops(&server);
    // 200 ms doubling up to 1 s: a tight loop would stop thousands of times.
    assert!(
        count as f64 <= 3.0 + elapsed.as_secs_f64() / 0.2,
        "{count} stops in {elapsed:?}"
    );
    let logs = server.logs_when(Duration::from_secs(5), |l| {
        l.matches("stopped (it panicked").count() as u64 == count
    });
    assert_eq!(
        logs.matches("stopped (it panicked").count() as u64,
        count,
        "each stop logged once: {logs}"
    );
    let info = http::get(server.addr, "/v1/bundle").json();
    assert!(info["task_problem"].is_null(), "{info:#}");

    r.store.tag(shelf(), "production", &r.v2.digest);
    wait_readyz(&server, "ok", &r.v2.digest);
    still_answers(&server, &r.v2.digest);
}

/// A server killed (SIGKILL) in the middle of an unpack leaves its staging
/// directory in the cache; the next start on that cache removes it, as
/// docs/serve.md says of work files, and serves. The bundle arrives
/// through a named pipe of which only half is written, so the kill
/// certainly lands mid-unpack.
#[test]
fn work_files_of_a_server_killed_mid_unpack_are_removed_at_the_next_start() {
    let t = tempfile::tempdir().unwrap();
    let built = build(&shelf_testkit::sample_repo(), &t.path().join("b"));
    let cache = t.path().join("cache");
    let pipes = t.path().join("pipe");
    std::fs::create_dir_all(&pipes).unwrap();
    let pipe = pipes.join(built.path.file_name().unwrap());
    mkfifo(&pipe);
    let work_files = |cache: &Path| -> Vec<String> {
        std::fs::read_dir(cache)
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| {
                        [".unpacking-", ".incoming-", ".download-"]
                            .iter()
                            .any(|p| n.starts_with(p))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    for round in 0..3 {
        let server = ServerProcess::serve_bundle(shelf(), &pipe, &cache, &[], &[]);
        let bytes = std::fs::read(&built.path).unwrap();
        // Blocks until the server opens the pipe to unpack it.
        let mut writer = std::fs::OpenOptions::new().write(true).open(&pipe).unwrap();
        writer.write_all(&bytes[..bytes.len() / 2]).unwrap();
        let started = Instant::now();
        while !work_files(&cache)
            .iter()
            .any(|n| n.starts_with(".unpacking-"))
        {
            assert!(
                started.elapsed() < READY,
                "no unpack began: {:?}\n{}",
                work_files(&cache),
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(server); // SIGKILL, mid-unpack
        drop(writer);
        assert!(
            !work_files(&cache).is_empty(),
            "round {round}: the kill left work files"
        );
    }
    let server = ServerProcess::serve_bundle(shelf(), &built.path, &cache, &[], &[]);
    server.wait_ready(READY);
    assert_eq!(
        work_files(&cache),
        Vec::<String>::new(),
        "{}",
        server.logs()
    );
    let answer = http::get(server.addr, &format!("/v1/search?q={}", encode(QUERY)));
    assert_eq!(answer.json()["bundle"]["digest"], built.digest);
}

/// Where the cache's filesystem gives no leases, bytes of a live bundle
/// changed on disk are found by the background re-hash: the repository is
/// reported, the bundle fetched again and the fresh copy served.
#[test]
fn the_background_rehash_finds_a_live_bundle_changed_on_disk_and_serves_a_fresh_copy() {
    let r = releases();
    let cache = r.dir.join("cache");
    let faults = tempfile::tempdir().unwrap();
    std::fs::write(faults.path().join("no-leases"), b"").unwrap();
    let fault_dir = faults.path().display().to_string();
    let server = r.store.follow(
        shelf(),
        "production",
        &cache,
        &[
            "--poll-interval",
            "1h",
            "--retry-max",
            "1s",
            "--scrub-interval",
            "1s",
        ],
        &[("SHELF_TEST_FAULTS", fault_dir.as_str())],
    );
    wait_readyz(&server, "ok", &r.v1.digest);
    let vectors = cache
        .join(r.v1.digest.trim_start_matches("sha256:"))
        .join("vectors.bin");
    let original = std::fs::read(&vectors).unwrap();
    // One byte flipped in place, no truncation: what a failing disk or a
    // stray write does.
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(&vectors)
        .unwrap();
    f.seek(std::io::SeekFrom::End(-1)).unwrap();
    f.write_all(&[original[original.len() - 1] ^ 0x55]).unwrap();
    drop(f);
    // Found, then the same digest fetched again and swapped in.
    let logs = server.logs_when(Duration::from_secs(60), |l| {
        l.split("background re-hash found")
            .nth(1)
            .is_some_and(|after| after.contains("swapped"))
    });
    assert!(logs.contains("leases switched off"), "{logs}");
    let ready = wait_readyz(&server, "ok", &r.v1.digest);
    assert_eq!(ready["target"], r.v1.digest.as_str());
    // The file served now is a fresh, verified copy.
    server.wait_for("/readyz", READY, |_| {
        std::fs::read(&vectors).ok().as_ref() == Some(&original)
    });
    let a = http::get(server.addr, &format!("/v1/search?q={}&k=3", encode(QUERY)));
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["bundle"]["digest"], r.v1.digest.as_str());
}

/// The server maps what is in its cache, so only its own user may write
/// the directory: one others may write, or another user's, is refused at
/// start with what to do.
#[test]
fn a_cache_directory_others_may_write_or_another_user_owns_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let r = releases();
    let run = |cache: &Path| {
        let mut child = std::process::Command::new(shelf())
            .args(["serve", "--bundle"])
            .arg(&r.v1.path)
            .arg("--cache")
            .arg(cache)
            .args(["--listen", "127.0.0.1:0"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "shelf serve did not refuse the cache directory {}",
                    cache.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        (status, err)
    };
    let open = r.dir.join("open-cache");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let (status, err) = run(&open);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("other users may write to it") && err.contains("chmod go-w"),
        "{err}"
    );
    assert!(
        std::fs::read_dir(&open).unwrap().next().is_none(),
        "something was written to a refused directory"
    );

    let theirs = r.dir.join("their-cache");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let (status, err) = run(&theirs);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("belongs to user 65534") && err.contains("chown"),
        "{err}"
    );

    // Its own directory, made private if it was not.
    let mine = r.dir.join("my-cache");
    let server = ServerProcess::serve_bundle(shelf(), &r.v1.path, &mine, &[], &[]);
    server.wait_for("/readyz", READY, |r| r.status == 200);
    let mode = std::fs::metadata(&mine).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "mode {mode:o}");
}

/// A server's bundles are mapped, not copied: under a memory limit (a
/// cgroup) smaller than its model plus the bundle it serves, it answers
/// every query as it does without one and is not killed, the kernel
/// paging the bundle's files in and out. Needs root (a memory cgroup, v1
/// or v2); the GitHub workflow runs it in its root step.
#[test]
fn a_server_under_a_memory_limit_below_model_plus_bundle_answers_the_same_and_lives() {
    let group = shelf_testkit::cgroup::MemoryGroup::create("shelf-test").unwrap_or_else(|e| {
        panic!("{e}; or leave this test out knowingly: cargo nextest run -E 'not test(=a_server_under_a_memory_limit_below_model_plus_bundle_answers_the_same_and_lives)'")
    });

    // A large synthetic bundle under the real model's identity.
    let t = tempfile::tempdir().unwrap();
    let big = shelf_testkit::synthetic_bundle_of_real_model(shelf(), t.path(), 400_000, 11);
    let cache = t.path().join("cache");
    let queries = &shelf_testkit::SCAN_QUERIES[..6];
    let answers = |server: &ServerProcess| -> Vec<serde_json::Value> {
        queries
            .iter()
            .map(|q| {
                let a = http::get(
                    server.addr,
                    &format!("/v1/search?q={}&k=10&mode=semantic", encode(q)),
                );
                assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
                http::timeless(a.json())["results"].clone()
            })
            .collect()
    };

    // Unlimited: installs the bundle in the cache; its answers and memory.
    let server = ServerProcess::serve_bundle(shelf(), &big.path, &cache, &[], &[]);
    server.wait_for("/readyz", READY, |r| r.status == 200);
    let free = answers(&server);
    let anon_kib = rss_anon_kib(server.pid());
    drop(server);
    // Its pages leave the cache (checked with mincore), or the limited
    // server would be given them charged to this process's group instead
    // of its own: every page of it that server uses, it reads itself.
    let bundle_bytes =
        shelf_testkit::cgroup::drop_cached_pages(&cache.join(big.digest.hex())).unwrap();
    assert!(
        bundle_bytes > 180 << 20,
        "the bundle is only {bundle_bytes} bytes"
    );
    // Room for the process's own memory and some page cache, far less
    // than its own memory plus the bundle. The room is measured from the
    // anonymous memory after ready, and loading the model peaks 50 to
    // 60 MiB above that: with 64 MiB of room the load sometimes thrashed
    // for minutes (shelf-bench limit), so 96, against a bundle of about
    // 200 MiB.
    let limit = anon_kib * 1024 + (96 << 20);
    assert!(limit < anon_kib * 1024 + bundle_bytes);
    group.limit(limit).unwrap();
    let wrapper = group.wrap(shelf(), t.path()).unwrap();

    let server = ServerProcess::serve_bundle(&wrapper, &big.path, &cache, &[], &[]);
    server.wait_for("/readyz", READY, |r| r.status == 200);
    for round in 0..3 {
        assert_eq!(
            answers(&server),
            free,
            "round {round}: other answers under the limit"
        );
    }
    let usage = group.peak_bytes().unwrap();
    // The limit bit: the group reached it and the kernel reclaimed from it
    // (the bundle's pages) rather than let it grow.
    let hits = group.limit_hits().unwrap();
    assert!(
        hits > 0,
        "the group never reached its limit ({usage} of {limit} bytes at most)"
    );
    let faults = group.stat("pgmajfault").unwrap();
    assert!(faults > 0, "the group read nothing from disk");
    assert_eq!(
        group.oom_kills().unwrap(),
        0,
        "the OOM killer killed in the group"
    );
    assert!(
        http::try_request(server.addr, "GET", "/healthz", &[], b"").is_some(),
        "the server died under the limit:\n{}",
        server.logs()
    );
    eprintln!(
        "limit {} MiB, server anonymous memory {} MiB, bundle {} MiB, peak usage {} MiB",
        limit >> 20,
        anon_kib >> 10,
        bundle_bytes >> 20,
        usage >> 20
    );
}

fn rss_anon_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}
