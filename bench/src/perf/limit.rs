//! `shelf-bench limit`: see [`Limit`].

use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use shelf_testkit::cgroup::{MemoryGroup, drop_cached_pages};
use shelf_testkit::http::{encode, timeless, try_request};

use crate::fixtures::process::process_rss_split_kib;
use crate::fixtures::server::{Started, start_ready, strings};
use crate::harness::stats::percentile;
use crate::harness::table::Table;
use crate::harness::{Bench, Benchmark, Machine, Row, machine, table};

/// A server under a memory limit smaller than its own memory plus the
/// bundle it serves (docs/serve.md, "Memory"; issue 27): does it answer
/// the same, does it live, what does the limit cost?
///
/// Serves one large synthetic bundle (random vectors under the real
/// model's identity, so every semantic query scans every vector) twice
/// from the same cache: once without a limit, then in a memory cgroup
/// limited to the first server's anonymous memory after ready plus
/// `--room-mib`, with the bundle's pages dropped from the page cache in
/// between so the limited server reads them under its own limit. The same
/// queries are asked of both, `--rounds` times. Needs root (it makes the
/// memory group).
#[derive(Debug, Clone, clap::Args)]
pub struct Limit {
    /// Chunks in the synthetic bundle.
    #[arg(long, default_value_t = 400_000)]
    chunks: usize,
    /// Memory the limit allows beyond the unlimited server's anonymous
    /// memory after ready, MiB: loading the model peaks 50 to 60 MiB above
    /// what it keeps, and with 64 MiB the load sometimes thrashed for
    /// minutes (the binary's and the runtime's pages reclaimed and read
    /// again).
    #[arg(long, default_value_t = 96)]
    room_mib: u64,
    /// Times each query is asked of each server.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
}

/// One server's figures.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerOut {
    /// Spawn to ready, ms.
    ready_ms: f64,
    /// Model load, from the server's log, ms.
    model_ms: f64,
    rss_anon_after_ready_mib: f64,
    rss_file_after_queries_mib: f64,
    queries: usize,
    /// Latency of each query, ms, in the order asked.
    latency_ms: Vec<f64>,
    p50_ms: f64,
    p90_ms: f64,
}

/// What `shelf-bench limit` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    loadavg_at_end: Option<String>,
    chunks: usize,
    /// The bundle's members as installed in the cache.
    bundle_mib: f64,
    free: ServerOut,
    limit_mib: f64,
    /// The unlimited server's anonymous memory after ready plus the bundle:
    /// what a server that copied its bundle into memory would need.
    own_plus_bundle_mib: f64,
    limited: ServerOut,
    /// Answers under the limit equal to the unlimited server's (timings
    /// removed), of all asked.
    same_answers: usize,
    /// The memory group's peak usage (anonymous and page cache).
    group_peak_mib: f64,
    /// Times the group's usage reached its limit and the kernel reclaimed
    /// from it (`memory.failcnt`; v2: `max` in `memory.events`).
    limit_hits: u64,
    /// The group's major page faults (`pgmajfault`, each a read from disk
    /// of one page or more): the bundle paged in and out under the limit.
    group_major_faults: u64,
    oom_kills: u64,
    alive_after: bool,
    rows: Vec<Row>,
}

impl Benchmark for Limit {
    const NAME: &'static str = "limit";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        if self.rounds == 0 || self.chunks == 0 {
            bail!("--rounds and --chunks must be at least 1");
        }
        let shelf = b.shelf()?;
        b.say(format!("building a {}-chunk bundle", self.chunks));
        let bundle =
            shelf_testkit::synthetic_bundle_of_real_model(shelf.path(), b.work(), self.chunks, 11);
        let cache = b.work().join("cache");
        let args = strings(&[
            "--bundle",
            &bundle.path.display().to_string(),
            "--cache",
            &cache.display().to_string(),
        ]);

        b.say("serving without a limit");
        let started = start_ready(shelf, &args, &[], |_| true)?;
        let anon_kib = rss(&started)?.0;
        let (free, free_answers) = ask(&started, anon_kib, self.rounds)?;
        // Stopped (killed and waited for) before its pages are dropped.
        drop(started);
        let installed = cache.join(bundle.digest.hex());
        let bundle_bytes = drop_cached_pages(&installed)
            .with_context(|| format!("reading {}", installed.display()))?;

        let room = self.room_mib.checked_mul(1 << 20);
        let limit = room
            .and_then(|r| (anon_kib * 1024).checked_add(r))
            .context("--room-mib is too large")?;
        let own_plus_bundle = anon_kib * 1024 + bundle_bytes;
        let group = MemoryGroup::create("shelf-bench-limit")?;
        group.limit(limit)?;
        let wrapper = group.wrap(shelf.path(), b.work())?;
        b.say(format!("serving under a limit of {} MiB", limit >> 20));
        let started = start_ready(&shelf.run_through(wrapper), &args, &[], |_| true)?;
        let (limited, limited_answers) = ask(&started, rss(&started)?.0, self.rounds)?;
        let alive_after = try_request(started.server.addr, "GET", "/healthz", &[], b"").is_some();
        drop(started);
        let same_answers = free_answers
            .iter()
            .zip(&limited_answers)
            .filter(|(a, b)| a == b)
            .count();
        let (peak, faults) = (group.peak_bytes()?, group.stat("pgmajfault")?);
        let limit_hits = group.limit_hits()?;
        let oom_kills = group.oom_kills()?;

        let mib = |bytes: u64| bytes as f64 / (1 << 20) as f64;
        let mut t = Table::default();
        t.info(
            "bundle; unlimited server's anonymous memory after ready",
            format!(
                "{:.0} MiB; {:.0} MiB",
                mib(bundle_bytes),
                free.rss_anon_after_ready_mib
            ),
        );
        t.check(
            "memory limit",
            format!("{:.0} MiB", mib(limit)),
            format!("< own + bundle, {:.0} MiB", mib(own_plus_bundle)),
            limit < own_plus_bundle,
        );
        let asked = free_answers.len();
        t.check(
            "answers under the limit equal to unlimited",
            format!("{same_answers} of {asked}"),
            "all",
            same_answers == asked && asked == limited_answers.len(),
        );
        t.check(
            "killed by the OOM killer",
            oom_kills.to_string(),
            "0",
            oom_kills == 0,
        );
        t.check(
            "alive after the queries",
            alive_after.to_string(),
            "true",
            alive_after,
        );
        t.check(
            "times the group reached its limit (peak memory)",
            format!("{limit_hits} ({:.0} MiB)", mib(peak)),
            "> 0: the limit bit",
            limit_hits > 0,
        );
        t.info("major page faults under the limit", faults.to_string());
        t.info(
            "query p50 / p90, unlimited / limited",
            format!(
                "{:.1} / {:.1} ms; {:.1} / {:.1} ms",
                free.p50_ms, free.p90_ms, limited.p50_ms, limited.p90_ms
            ),
        );
        t.info(
            "start to ready, unlimited (installs the bundle) / limited",
            format!("{:.0} / {:.0} ms", free.ready_ms, limited.ready_ms),
        );
        println!("{}", table::render(&t.rows));
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            loadavg_at_end: machine::loadavg(),
            chunks: self.chunks,
            bundle_mib: mib(bundle_bytes),
            free,
            limit_mib: mib(limit),
            own_plus_bundle_mib: mib(own_plus_bundle),
            limited,
            same_answers,
            group_peak_mib: mib(peak),
            limit_hits,
            group_major_faults: faults,
            oom_kills,
            alive_after,
            rows: t.rows,
        })
    }
}

/// The server's anonymous and file-backed resident memory, KiB.
fn rss(started: &Started) -> Result<(u64, u64)> {
    let pid = started.server.pid();
    process_rss_split_kib(pid).with_context(|| format!("reading /proc/{pid}/status"))
}

/// Asks every query `rounds` times of a server whose anonymous memory
/// after ready was `anon_kib`; its figures and its answers (timings
/// removed), in the order asked.
fn ask(
    started: &Started,
    anon_kib: u64,
    rounds: usize,
) -> Result<(ServerOut, Vec<serde_json::Value>)> {
    let (mut latency_ms, mut answers) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for q in shelf_testkit::SCAN_QUERIES {
            let target = format!("/v1/search?q={}&k=10&mode=semantic", encode(q));
            let asked = Instant::now();
            let r = try_request(started.server.addr, "GET", &target, &[], b"")
                .with_context(|| format!("no answer to {target}:\n{}", started.server.logs()))?;
            latency_ms.push(asked.elapsed().as_secs_f64() * 1e3);
            if r.status != 200 {
                bail!(
                    "{target}: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                );
            }
            let answer: serde_json::Value = serde_json::from_slice(&r.body)?;
            answers.push(timeless(answer)["results"].clone());
        }
    }
    let file_kib = rss(started)?.1;
    let out = ServerOut {
        ready_ms: started.ready_ms,
        model_ms: started.model_ms,
        rss_anon_after_ready_mib: anon_kib as f64 / 1024.0,
        rss_file_after_queries_mib: file_kib as f64 / 1024.0,
        queries: latency_ms.len(),
        p50_ms: percentile(&latency_ms, 50.0),
        p90_ms: percentile(&latency_ms, 90.0),
        latency_ms,
    };
    Ok((out, answers))
}
