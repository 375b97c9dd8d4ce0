//! `shelf-bench web`: see [`Web`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_testkit::browser::Browser;
use shelf_testkit::http::{encode, try_request};

use crate::fixtures::corpus::Corpus;
use crate::fixtures::load::{self, Call, Limits};
use crate::fixtures::queries::QueryPool;
use crate::fixtures::server::{start_ready, strings};
use crate::harness::stats::{median, percentile};
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, machine, table};

// Targets (docs/web.md, issue 31), in one place for the table and docs.
const MAX_P50_RATIO: f64 = 1.2;
const MAX_TRANSFER_BYTES: usize = 100_000;
const MAX_RENDER_MS: f64 = 1000.0;
const LONG_PATH: &str = "src/long_table.rs";
const LONG_LINES: usize = 5000;
const CLIENTS: usize = 8;

/// The web pages (docs/web.md) against the API they render, on one real
/// `shelf serve` of a generated repository.
///
/// The search page's HTML answer against `/v1/search` on the same queries
/// (warmed) at 8 clients, in alternating phases (p50 of each and their
/// ratio, the server's CPU per request); what the search and repositories
/// pages transfer with their stylesheet, script and icon; and a 5,000-line
/// file view's render time in headless Chromium (needs chromium and
/// chromedriver: scripts/setup-test-services). Builds a ~1,000-chunk bundle
/// once and keeps it under --bundle-cache.
#[derive(Debug, Clone, clap::Args)]
pub struct Web {
    /// Files in the generated repository (a 5,000-line file is added).
    #[arg(long, default_value_t = 300)]
    files: usize,
    /// Seed of the generated repository.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Distinct queries, each asked of both (warmed first: the page's cost
    /// is measured, not the query's embedding).
    #[arg(long, default_value_t = 40)]
    queries: usize,
    /// Requests per phase.
    #[arg(long, default_value_t = 750)]
    requests: usize,
    /// Rounds of one phase each, the side going first alternating: short
    /// phases, many of them, so a burst of other work on the machine
    /// falls on both sides alike.
    #[arg(long, default_value_t = 6)]
    rounds: usize,
    /// Loads of the long file view in the browser.
    #[arg(long, default_value_t = 7)]
    renders: usize,
    /// Where the built bundle is kept between runs.
    #[arg(long, default_value = "target/bench-cache")]
    bundle_cache: PathBuf,
}

/// One side's latencies over all its phases.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    requests: usize,
    failed: usize,
    p50_ms: f64,
    p90_ms: f64,
    /// The p50 of each phase, in order.
    phase_p50_ms: Vec<f64>,
    /// The server's and this process's (the clients') CPU time per
    /// request, on the same cores.
    server_cpu_ms_per_request: f64,
    client_cpu_ms_per_request: f64,
    body_bytes_median: f64,
}

/// What `shelf-bench web` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    bench: String,
    command: Vec<String>,
    machine: Machine,
    loadavg_at_end: Option<String>,
    bundle: String,
    clients: usize,
    api: Side,
    page: Side,
    p50_ratio: f64,
    /// Bytes of each page or asset (`/?q=…`, `/repos`, css, js, icon),
    /// as sent (uncompressed).
    transfer_bytes: Vec<(String, usize)>,
    transfer_total_bytes: usize,
    /// Navigation start to the load event, each load of the long file.
    render_ms: Vec<f64>,
    render_median_ms: f64,
    table: Vec<Row>,
}

impl Benchmark for Web {
    const NAME: &'static str = "web";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let shelf = b.shelf()?;
        let mut corpus = Corpus::generate(self.files, self.seed);
        let pool = QueryPool::new(&corpus, self.seed, self.queries, self.queries)?;
        let dir = self
            .bundle_cache
            .join(format!("web-f{}-s{}", self.files, self.seed));
        let bundle = dir.join("bundle.shelf");
        if !bundle.is_file() {
            b.say(format!("building {} (minutes)", bundle.display()));
            let long = (1..=LONG_LINES).map(|i| format!("pub const LINE_{i}: u32 = {i};\n"));
            corpus.files.push(crate::fixtures::corpus::File {
                path: LONG_PATH.into(),
                text: long.collect(),
            });
            let repo = corpus.write_repo();
            repo.commit("web benchmark corpus");
            let built = shelf.build(repo.path(), &dir.join("out"), None, &[])?;
            std::fs::copy(&built.report.bundle_path, &bundle).context("keeping the bundle")?;
        }
        let args = strings(&["--bundle", &bundle.display().to_string()]);
        let server = start_ready(shelf, &args, &[], |_| true)?.server;
        let addr = server.addr;
        let get = |target: &str| match try_request(addr, "GET", target, &[], b"") {
            Some(r) if r.status == 200 => Ok(r.body),
            r => bail!("GET {target}: {:?}", r.map(|r| r.status)),
        };
        let repos: serde_json::Value = serde_json::from_slice(&get("/v1/repos")?)?;
        let name = encode(
            repos["repos"][0]["name"]
                .as_str()
                .context("no repository")?,
        );
        let (mut api, mut page) = (Vec::new(), Vec::new());
        for q in pool.all() {
            let q = encode(q);
            api.push(Call::Page(format!("/v1/search?q={q}&group=file&k=20")));
            page.push(Call::Page(format!("/?q={q}")));
        }
        let (api, page) = (Arc::new(api), Arc::new(page));
        let rt = load::runtime()?;
        let n = pool.all().len();
        load::run_fresh(&rt, addr, 1, Arc::clone(&api), Limits::once(n));
        load::run_fresh(&rt, addr, 1, Arc::clone(&page), Limits::once(n));
        let mut phases: [Vec<load::Timed>; 2] = Default::default();
        for round in 0..self.rounds {
            for side in if round % 2 == 0 { [0, 1] } else { [1, 0] } {
                let calls = Arc::clone(if side == 0 { &api } else { &page });
                let (requests, max_time) = (self.requests, Duration::from_secs(120));
                let limits = Limits { requests, max_time };
                phases[side].push(load::run_timed(&rt, &server, CLIENTS, calls, limits));
                b.say(format!("round {round}, {}: done", ["api", "page"][side]));
            }
        }
        let [api, page] = phases.map(|runs| side(&runs));
        let p50_ratio = page.p50_ms / api.p50_ms;

        // What the two pages and the assets they load transfer: sent raw
        // (the server does not compress), so no proxy's gzip is assumed.
        let first = format!("/?q={}", encode(&pool.all()[0]));
        let assets = [
            "/repos",
            "/assets/web.css",
            "/assets/web.js",
            "/assets/icon.svg",
        ];
        let mut transfer = Vec::new();
        for target in [first.as_str()].into_iter().chain(assets) {
            transfer.push((target.to_string(), get(target)?.len()));
        }
        let raw: usize = transfer.iter().map(|t| t.1).sum();

        let browser = Browser::start();
        let mut render_ms = Vec::new();
        for i in 0..self.renders {
            // `&n=` makes each load a new document.
            let path = encode(LONG_PATH);
            let url = format!("http://{addr}/file?repo={name}&path={path}&n={i}#L4000-L4010");
            render_ms.push(browser.load_ms(&url));
        }
        drop(browser);
        let _ = server.terminate(Duration::from_secs(20));
        let render_median_ms = median(&render_ms);

        let mut t = Table::default();
        let (a, p) = (api.p50_ms, page.p50_ms);
        t.info(
            "p50 at 8 clients, /v1/search (group=file, k=20) / page",
            format!("{a:.1} / {p:.1} ms"),
        );
        let pass = p50_ratio <= MAX_P50_RATIO;
        t.check(
            "page / API, p50",
            format!("{p50_ratio:.2}"),
            format!("<= {MAX_P50_RATIO}"),
            pass,
        );
        let (a, p) = (&api, &page);
        t.info(
            "CPU per request (server + clients), API / page",
            format!(
                "{:.2} + {:.2} / {:.2} + {:.2} ms",
                a.server_cpu_ms_per_request,
                a.client_cpu_ms_per_request,
                p.server_cpu_ms_per_request,
                p.client_cpu_ms_per_request
            ),
        );
        let pass = raw < MAX_TRANSFER_BYTES;
        let what = "search + repositories pages, css, js, icon";
        t.check(
            what,
            format!("{raw} B"),
            format!("< {MAX_TRANSFER_BYTES} B"),
            pass,
        );
        let pass = render_median_ms < MAX_RENDER_MS;
        let what = format!("{LONG_LINES}-line file view in Chromium, navigation to load, p50");
        t.check(
            what,
            format!("{render_median_ms:.0} ms"),
            format!("< {MAX_RENDER_MS} ms"),
            pass,
        );
        println!("{}", table::render(&t.rows));
        Ok(Results {
            bench: Self::NAME.into(),
            command: b.command.clone(),
            machine: b.machine.clone(),
            loadavg_at_end: machine::loadavg(),
            bundle: bundle.display().to_string(),
            clients: CLIENTS,
            api,
            page,
            p50_ratio,
            transfer_bytes: transfer,
            transfer_total_bytes: raw,
            render_ms,
            render_median_ms,
            table: t.rows,
        })
    }
}

/// One side's figures over its phases.
fn side(runs: &[load::Timed]) -> Side {
    let all = |f: fn(&load::Sample) -> f64| -> Vec<f64> {
        runs.iter().flat_map(|r| r.of_answered(f)).collect()
    };
    let (lat, bytes) = (all(load::Sample::ms), all(|s| s.bytes as f64));
    let requests: usize = runs.iter().map(|r| r.samples.len()).sum();
    let cpu = |f: fn(&load::Timed) -> f64| runs.iter().map(f).sum::<f64>() * 1e3 / requests as f64;
    let phase_p50 = |r: &load::Timed| percentile(&r.of_answered(load::Sample::ms), 50.0);
    Side {
        requests,
        failed: requests - lat.len(),
        p50_ms: percentile(&lat, 50.0),
        p90_ms: percentile(&lat, 90.0),
        phase_p50_ms: runs.iter().map(phase_p50).collect(),
        server_cpu_ms_per_request: cpu(|r| r.server_cpu_s),
        client_cpu_ms_per_request: cpu(|r| r.generator_cpu_s),
        body_bytes_median: median(&bytes),
    }
}
