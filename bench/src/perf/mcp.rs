//! `shelf-bench mcp`: see [`Mcp`].

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use shelf_formats::bundle::{Limits, unpack_file};
use shelf_formats::files::{CompressedText, FileTexts};
use shelf_formats::manifest::{FORMAT_MINOR, members};
use shelf_formats::names::repo_name_of;
use shelf_testkit::http::encode;
use shelf_testkit::serve::ServerProcess;

use crate::fixtures::devset::{self, Sources, read_rows};
use crate::fixtures::load::{self, Call, HttpClient, Sample};
use crate::fixtures::process::process_rss_kib;
use crate::fixtures::server::{follow_args, start_ready, strings};
use crate::fixtures::shelf::{Report, ShelfBinary};
use crate::harness::stats::{median, percentile};
use crate::harness::{Bench, Benchmark, Machine, Row, table};

/// The development repositories (`../shared/eval/swebench_dev.jsonl`).
const REPOS: [&str; 4] = [
    "psf/requests",
    "pylint-dev/pylint",
    "mwaskom/seaborn",
    "pallets/flask",
];
/// The largest of them, where grep and read_file are timed.
const LARGEST: &str = "pylint-dev/pylint";
/// Results per search, and the answer bound both transports are given
/// (`search_code`'s default), so both do the same work.
const K: usize = 10;
const MAX_TOKENS: usize = 8_000;
/// zstd level of bundles and of each file text.
const ZSTD_LEVEL: i32 = 12;
/// Two release tags of the largest repository, a typical patch release
/// (36 files changed), that `changes` is timed between.
const RELEASES: (&str, &str) = ("v4.0.6", "v4.0.7");
/// `changes` between them, p50 of the calls after the first, at most.
const MAX_CHANGES_P50_MS: f64 = 100.0;
/// MCP's latency over REST's for the same query (median over pairs), at
/// most, where every query is embedded: the protocol should cost little
/// next to the search itself.
const MAX_PAIRED_RATIO: f64 = 1.10;

/// What the assistant-facing surface costs, in one run.
///
/// 1. Size: each development repository built at its HEAD (cached under
///    `--bundle-cache`), and what its file texts (`files.bin`, format 1.2)
///    weigh against the bundle, against the raw texts, and in build time.
/// 2. Grep and read_file over the largest development repository (pylint):
///    `GET /v1/grep` with a common literal, a rare one, one that matches
///    nothing, regular expressions, `ignore_case` and a path filter, and
///    `GET /v1/file` on its largest file.
/// 3. `search_code` over MCP (`POST /mcp`, `tools/call`) against
///    `POST /v1/search` on the same server with the same queries and the
///    same arguments: sequential with the two interleaved (the order
///    alternates per query and round), then `--clients` concurrent clients
///    in alternating phases. Once on a server that embeds every query
///    (query cache off), once on one that answers repeated queries from
///    its vector cache (what is left is transport, ranking and rendering).
///    Both must return the same results in the same order.
/// 4. The tools an assistant reaches for besides search, over MCP on the
///    largest repository: `list_files`, `outline`, `find_references`,
///    `find_related`, and `changes` between two release tags of it (both
///    built incrementally from HEAD's bundle, pushed and tagged in its
///    store): the first call (opening both versions) and the p50 after.
///
/// One server serves the four repositories from one store root (each
/// bundle pushed to `<root>/<name>` and tagged `production`). Needs `cargo
/// build --bin shelf`, `scripts/setup` and the mirrors.
#[derive(Debug, Clone, clap::Args)]
pub struct Mcp {
    /// The repositories, their bundles (under mcp/) and the issues (their
    /// texts are the long queries).
    #[command(flatten)]
    sources: Sources,
    /// Requests per grep pattern and per read.
    #[arg(long, default_value_t = 50)]
    grep_requests: usize,
    /// Times each query is asked per transport, sequentially and in each
    /// concurrent phase.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Clients of the concurrent phases.
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

/// One grep timed: what is asked.
struct GrepCase {
    name: &'static str,
    pattern: &'static str,
    regex: bool,
    ignore_case: bool,
    path: Option<&'static str>,
}

#[rustfmt::skip]
const GREP_CASES: [GrepCase; 7] = [
    GrepCase { name: "common literal", pattern: "self", regex: false, ignore_case: false, path: None },
    GrepCase { name: "rare literal", pattern: "PYLINTHOME", regex: false, ignore_case: false, path: None },
    GrepCase { name: "literal, no match", pattern: "qzx_no_such_token", regex: false, ignore_case: false, path: None },
    GrepCase { name: "regex", pattern: r"def \w+_checker", regex: true, ignore_case: false, path: None },
    GrepCase { name: "regex, many matches", pattern: r"def visit_\w+\(self, node", regex: true, ignore_case: false, path: None },
    GrepCase { name: "ignore_case literal", pattern: "todo", regex: false, ignore_case: true, path: None },
    GrepCase { name: "common literal, path filter", pattern: "self", regex: false, ignore_case: false, path: Some("pylint/checkers/**") },
];

/// Short questions of the kind an assistant asks, written for this
/// benchmark (repository, query): the other half of the search queries,
/// beside the long issue texts.
#[rustfmt::skip]
const SHORT_QUERIES: [(&str, &str); 30] = [
    ("psf/requests", "how are retries configured on a session adapter"),
    ("psf/requests", "where are proxy settings read from the environment"),
    ("psf/requests", "merge cookies from a response into the session jar"),
    ("psf/requests", "strip the Authorization header on redirect to another host"),
    ("psf/requests", "connect and read timeout tuple"),
    ("psf/requests", "SSL certificate verification with a CA bundle path"),
    ("psf/requests", "stream a large download in chunks"),
    ("psf/requests", "encode multipart form data with files"),
    ("pylint-dev/pylint", "register a new checker with the linter"),
    ("pylint-dev/pylint", "parse inline pylint disable comments"),
    ("pylint-dev/pylint", "detect cyclic imports between modules"),
    ("pylint-dev/pylint", "load plugins given on the command line"),
    ("pylint-dev/pylint", "find the configuration file pylintrc or pyproject.toml"),
    ("pylint-dev/pylint", "duplicate code similarity minimum lines"),
    ("pylint-dev/pylint", "naming style regular expression for variable names"),
    ("pylint-dev/pylint", "unused import warning message"),
    ("pylint-dev/pylint", "run linting in parallel with multiple jobs"),
    ("mwaskom/seaborn", "kernel density estimate bandwidth adjustment"),
    ("mwaskom/seaborn", "build a husl color palette"),
    ("mwaskom/seaborn", "FacetGrid map a plotting function over a dataframe"),
    ("mwaskom/seaborn", "boxplot whisker length"),
    ("mwaskom/seaborn", "move the legend outside the axes"),
    ("mwaskom/seaborn", "choose histogram bin edges automatically"),
    ("pallets/flask", "teardown functions of the application context"),
    ("pallets/flask", "register a blueprint with a url prefix"),
    ("pallets/flask", "sign the session cookie with the secret key"),
    ("pallets/flask", "JSON provider sort keys setting"),
    ("pallets/flask", "send a file with conditional etag response"),
    ("pallets/flask", "cli command group for an app factory"),
    ("pallets/flask", "order of before_request hooks"),
];

/// One development repository's bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct BundleInfo {
    repo: String,
    /// The name the server serves it under.
    served_as: String,
    commit: String,
    digest: String,
    path: PathBuf,
    /// Built by this run (else found in the cache).
    built_this_run: bool,
    /// The build's report (`shelf build --json`).
    report: Value,
}

/// What one bundle's file texts cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SizeOut {
    repo: String,
    commit: String,
    chunks: u64,
    /// The bundle file (tar + zstd).
    bundle_bytes: u64,
    /// Every member as the manifest lists it (unpacked sizes).
    members: BTreeMap<String, u64>,
    members_total_bytes: u64,
    /// The `files.bin` member.
    files_bin_bytes: u64,
    /// files.bin compressed again as the bundle is (level 12): texts are
    /// already compressed, so this is about files.bin itself and the
    /// member adds about its own size to the bundle file.
    files_bin_recompressed_bytes: u64,
    /// files.bin as a share of the bundle file.
    files_bin_share_of_bundle: f64,
    /// The bundle file less what files.bin adds to it (an estimate of the
    /// same bundle without file texts).
    bundle_without_files_estimate_bytes: u64,
    /// Files in files.bin, and distinct texts among them.
    files: usize,
    distinct_texts: usize,
    /// Bytes of every file's text, and of the distinct texts.
    text_bytes: u64,
    distinct_text_bytes: u64,
    /// The build report's bytes of indexed text (the same texts as read).
    report_text_bytes: u64,
    /// distinct_text_bytes / files_bin_bytes.
    compression_ratio: f64,
    /// The largest file (path, bytes).
    largest_file: (String, u64),
    /// Compressing every distinct text (as the builder does), one thread.
    compress_one_thread_ms: f64,
    /// Decompressing every file's text through `FileTexts::text`, one
    /// thread (what a grep pays before matching).
    decompress_all_ms: f64,
    /// The distinct texts' frames (compressed here as the builder does)
    /// decompressed each with a fresh zstd context, as `FileTexts::text`
    /// does, and all with one reused context: what reusing would save.
    decompress_fresh_context_ms: f64,
    decompress_reused_context_ms: f64,
    /// The build's own stage times (from its report; embedding dominates).
    build_ms: BTreeMap<String, u64>,
    /// compress_one_thread_ms / the build's total.
    compress_share_of_build: f64,
}

/// Latency summary of one series of requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Latency {
    requests: usize,
    failed: usize,
    p50_ms: f64,
    p95_ms: f64,
    max_ms: f64,
    /// Median response body bytes.
    median_response_bytes: f64,
}

impl Latency {
    fn of(samples: &[Sample]) -> Self {
        let ok: Vec<&Sample> = samples.iter().filter(|s| s.ok).collect();
        let ms: Vec<f64> = ok.iter().map(|s| s.ms()).collect();
        let bytes: Vec<f64> = ok.iter().map(|s| s.bytes as f64).collect();
        Self {
            requests: samples.len(),
            failed: samples.len() - ok.len(),
            p50_ms: percentile(&ms, 50.0),
            p95_ms: percentile(&ms, 95.0),
            max_ms: percentile(&ms, 100.0),
            median_response_bytes: median(&bytes),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrepOut {
    name: String,
    pattern: String,
    regex: bool,
    ignore_case: bool,
    path: Option<String>,
    files_scanned: u64,
    files_matched: u64,
    total_matches: u64,
    matches_listed: u64,
    latency: Latency,
    /// The server's own scan time (`took_ms`), median.
    server_took_p50_ms: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadOut {
    name: String,
    path: String,
    file_bytes: u64,
    max_tokens: Option<usize>,
    returned_bytes: u64,
    truncated: bool,
    latency: Latency,
}

/// One tool timed over MCP (`tools/call`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ToolOut {
    tool: String,
    arguments: Value,
    /// The first call alone (for `changes`, it opens both versions).
    first_ms: f64,
    /// The calls after it.
    latency: Latency,
    /// The server's own time (`took_ms`), median, where the answer says.
    server_took_p50_ms: Option<f64>,
    /// The first answer's whole-number fields (files added, removed and
    /// changed; entries; references found).
    counts: BTreeMap<String, u64>,
}

/// One transport's series in one comparison.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Side {
    latency: Latency,
    /// Server-side time from the start of embedding to the last result,
    /// median (the same pipeline for both).
    server_took_p50_ms: f64,
    server_embed_p50_ms: f64,
    /// Seconds the phase took (concurrent phases; sequential: the sum of
    /// latencies).
    seconds: f64,
    throughput_qps: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Comparison {
    /// `embed every query` or `query vectors cached`.
    server: String,
    /// `issues` (the development issue texts) or `short`.
    queries: String,
    distinct_queries: usize,
    clients: usize,
    mcp: Side,
    rest: Side,
    /// MCP p50 / REST p50, and the same at p95.
    p50_ratio: f64,
    p95_ratio: f64,
    /// The median over pairs (the same query, MCP and REST) of MCP's
    /// latency over REST's: steadier than a ratio of medians when the
    /// queries' own costs differ by 50x.
    paired_median_ratio: f64,
    /// The median over pairs of MCP's latency minus REST's, ms.
    paired_median_extra_ms: f64,
    /// Pairs compared (the same query asked of both, in the same round).
    pairs: usize,
    /// Pairs whose first result differs (repo, path, lines).
    top1_mismatches: usize,
    /// Pairs whose result lists differ at all (repo, path, lines, order).
    list_mismatches: usize,
    /// Answers cut by max_tokens (MCP, REST).
    truncated: (usize, usize),
}

/// What `shelf-bench mcp` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    bundles: Vec<BundleInfo>,
    sizes: Vec<SizeOut>,
    grep: Vec<GrepOut>,
    read_file: Vec<ReadOut>,
    /// The largest repository at the two release tags.
    releases: Vec<BundleInfo>,
    tools: Vec<ToolOut>,
    search: Vec<Comparison>,
    /// The server's RSS after the grep and read measurements, MiB (four
    /// repositories live).
    server_rss_mib: f64,
    seconds: f64,
    rows: Vec<Row>,
}

impl Benchmark for Mcp {
    const NAME: &'static str = "mcp";
    type Results = Results;

    fn measure(&self, b: &Bench) -> Result<Results> {
        let opts = self;
        if opts.grep_requests == 0 || opts.rounds == 0 || opts.clients == 0 {
            bail!("--grep-requests, --rounds and --clients must be at least 1");
        }
        let started = Instant::now();
        let (shelf, work) = (b.shelf()?, b.work());
        let issues = issue_queries(&opts.sources.queries)?;

        let mut bundles = Vec::new();
        let mut sizes = Vec::new();
        for repo in REPOS {
            let bundle = bundle_for(b, shelf, &opts.sources, repo, "HEAD", None)?;
            let s = sizes_of(&bundle, work)?;
            b.say(format!(
                "{repo}: bundle {}, files.bin {} ({:.1}%), texts {} in {} files",
                mib(s.bundle_bytes),
                mib(s.files_bin_bytes),
                s.files_bin_share_of_bundle * 100.0,
                mib(s.text_bytes),
                s.files
            ));
            bundles.push(bundle);
            sizes.push(s);
        }
        let root = work.join("root");
        for bundle in &bundles {
            shelf.publish(&bundle.path, &bundle.digest, &root.join(&bundle.served_as))?;
        }
        let head = bundles
            .iter()
            .find(|x| x.repo == LARGEST)
            .context("the largest repository")?;
        let old = bundle_for(
            b,
            shelf,
            &opts.sources,
            LARGEST,
            RELEASES.0,
            Some(&head.path),
        )?;
        let new = bundle_for(
            b,
            shelf,
            &opts.sources,
            LARGEST,
            RELEASES.1,
            Some(&old.path),
        )?;
        let store = root.join(&head.served_as);
        for (bundle, tag) in [(&old, RELEASES.0), (&new, RELEASES.1)] {
            shelf.push(&bundle.path, &store)?;
            let store = store.display().to_string();
            shelf.run(&["tag", tag, &bundle.digest, "--store", &store])?;
        }
        let (rt, client) = (load::runtime()?, load::client(opts.clients));

        // The server that embeds every query: grep, read_file, then search.
        b.say("server 1: query cache off (every query embedded)");
        let cache = work.join("serve-cache");
        let server = start_server(shelf, &root, &cache, Some(0), bundles.len())?;
        let on = On {
            rt: &rt,
            client: &client,
            server: &server,
            opts,
            b,
        };
        let largest = bundles
            .iter()
            .zip(&sizes)
            .find(|(b, _)| b.repo == LARGEST)
            .context("the largest repository is among the bundles")?;
        let (grep, read_file) = on.files_part(largest)?;
        let tools = on.tools_part(largest.0)?;
        let server_rss_mib =
            process_rss_kib(server.pid()).map_or(f64::NAN, |(rss, _)| rss as f64 / 1024.0);
        let short: Vec<(String, String)> = SHORT_QUERIES
            .iter()
            .map(|(r, q)| (served_name(r), q.to_string()))
            .collect();
        let sets = [("issues", &issues), ("short", &short)];
        let mut search = Vec::new();
        for (set, queries) in sets {
            search.extend(on.compare("embed every query", set, queries));
        }
        drop(server);

        b.say("server 2: query cache on, every query asked once first");
        let server = start_server(shelf, &root, &cache, None, bundles.len())?;
        let on = On {
            rt: &rt,
            client: &client,
            server: &server,
            opts,
            b,
        };
        for (set, queries) in sets {
            for (repo, q) in queries.iter() {
                on.call(&rest_call(repo, q));
            }
            search.extend(on.compare("query vectors cached", set, queries));
        }
        drop(server);

        let mut rows = rows(&sizes, &grep, &read_file, &search);
        rows.extend(tool_rows(&tools));
        print!("{}", table::render(&rows));
        let results = Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            bundles,
            sizes,
            grep,
            read_file,
            releases: vec![old, new],
            tools,
            search,
            server_rss_mib,
            seconds: started.elapsed().as_secs_f64(),
            rows,
        };
        Ok(results)
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / 1048576.0)
}

fn served_name(repo: &str) -> String {
    repo_name_of(repo)
}

/// The development issues as (served repository, issue text).
fn issue_queries(path: &Path) -> Result<Vec<(String, String)>> {
    let rows = read_rows(path)?;
    let out: Vec<(String, String)> = rows
        .into_iter()
        .filter(|r| REPOS.contains(&r.repo.as_str()))
        .map(|r| (served_name(&r.repo), r.query))
        .collect();
    if out.is_empty() {
        bail!("{} has no rows of {}", path.display(), REPOS.join(", "));
    }
    Ok(out)
}

/// The bundle of `repo` at `rev`: from the cache when a build of that
/// commit in the current format is there, else built now (cold, or reusing
/// the vectors of `previous`).
fn bundle_for(
    b: &Bench,
    shelf: &ShelfBinary,
    sources: &Sources,
    repo: &str,
    rev: &str,
    previous: Option<&Path>,
) -> Result<BundleInfo> {
    let key = repo.replace('/', "+");
    let git_dir = devset::git_dir(&sources.mirror, repo);
    let commit = devset::commit_of(&git_dir, rev)?;
    let dir = sources.bundle_cache.join("mcp").join(&key).join(&commit);
    let record = dir.join("build.json");
    let cached = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(|raw| {
            serde_json::from_value::<Report>(raw.clone()).is_ok_and(|r| {
                r.bundle_path.is_file() && format_minor(&r.bundle_path) == Some(FORMAT_MINOR)
            })
        });
    let (raw, built_this_run) = match cached {
        Some(raw) => (raw, false),
        None => {
            b.say(format!("{repo}: building {rev} {commit}"));
            std::fs::create_dir_all(&dir)?;
            let run = shelf.build_with(&git_dir, &commit, &dir, previous, repo, &[])?;
            b.say(format!(
                "  {} chunks, {:.0} s",
                run.report.chunks.total,
                run.wall.as_secs_f64()
            ));
            std::fs::write(&record, serde_json::to_vec_pretty(&run.raw)?)?;
            (run.raw, true)
        }
    };
    let report: Report = serde_json::from_value(raw.clone()).context("the build report")?;
    Ok(BundleInfo {
        repo: repo.to_string(),
        served_as: served_name(repo),
        commit,
        digest: report.digest.clone(),
        path: report.bundle_path.clone(),
        built_this_run,
        report: raw,
    })
}

/// The format minor a bundle's manifest names (None: unreadable).
fn format_minor(bundle: &Path) -> Option<u32> {
    shelf_formats::bundle::verify_file(bundle, None, &Limits::default())
        .ok()
        .map(|v| v.manifest.format_minor)
}

/// Unpacks the bundle and measures its file texts.
fn sizes_of(b: &BundleInfo, work: &Path) -> Result<SizeOut> {
    let dir = work.join(format!("unpacked-{}", b.served_as));
    let unpacked = unpack_file(&b.path, None, &dir, &Limits::default())
        .with_context(|| format!("unpacking {}", b.path.display()))?;
    let manifest = &unpacked.bundle.manifest;
    if manifest.member(members::FILES).is_none() {
        bail!(
            "{} (format 1.{}) has no {}: it predates file texts",
            b.path.display(),
            manifest.format_minor,
            members::FILES
        );
    }
    let members: BTreeMap<String, u64> = manifest
        .members
        .iter()
        .map(|m| (m.name.clone(), m.size))
        .collect();
    let files_bin = std::fs::read(dir.join(members::FILES))?;
    let texts = FileTexts::parse(&files_bin)?;

    let t = Instant::now();
    let mut all = Vec::with_capacity(texts.len());
    for i in 0..texts.len() {
        all.push(texts.text(i)?);
    }
    let decompress_all_ms = t.elapsed().as_secs_f64() * 1e3;

    let mut seen = HashSet::new();
    let (mut text_bytes, mut distinct_text_bytes) = (0u64, 0u64);
    let mut distinct = Vec::new();
    let mut largest = (String::new(), 0u64);
    for (i, text) in all.iter().enumerate() {
        let entry = texts.entry(i).context("a file entry")?;
        let len = text.len() as u64;
        text_bytes += len;
        if len > largest.1 {
            largest = (entry.path.to_string(), len);
        }
        if seen.insert(*entry.sha256) {
            distinct_text_bytes += len;
            distinct.push(text.as_str());
        }
    }
    let t = Instant::now();
    for text in &distinct {
        CompressedText::new(text)?;
    }
    let compress_one_thread_ms = t.elapsed().as_secs_f64() * 1e3;
    let (decompress_fresh_context_ms, decompress_reused_context_ms) =
        decompress_contexts(&distinct)?;
    let recompressed = zstd::bulk::compress(&files_bin, ZSTD_LEVEL)?.len() as u64;

    let report: Report = serde_json::from_value(b.report.clone())?;
    let bundle_bytes = std::fs::metadata(&b.path)?.len();
    let files_bin_bytes = files_bin.len() as u64;
    let build_total = report.timings_ms.get("total").copied().unwrap_or(0) as f64;
    let out = SizeOut {
        repo: b.repo.clone(),
        commit: b.commit.clone(),
        chunks: report.chunks.total,
        bundle_bytes,
        members_total_bytes: members.values().sum(),
        members,
        files_bin_bytes,
        files_bin_recompressed_bytes: recompressed,
        files_bin_share_of_bundle: files_bin_bytes as f64 / bundle_bytes as f64,
        bundle_without_files_estimate_bytes: bundle_bytes
            .saturating_sub(files_bin_bytes.min(recompressed)),
        files: texts.len(),
        distinct_texts: texts.blob_count(),
        text_bytes,
        distinct_text_bytes,
        report_text_bytes: report.files.text_bytes,
        compression_ratio: distinct_text_bytes as f64 / files_bin_bytes as f64,
        largest_file: largest,
        compress_one_thread_ms,
        decompress_all_ms,
        decompress_fresh_context_ms,
        decompress_reused_context_ms,
        build_ms: report.timings_ms.clone(),
        compress_share_of_build: compress_one_thread_ms / build_total,
    };
    let _ = std::fs::remove_dir_all(&dir);
    Ok(out)
}

/// Milliseconds to decompress the texts' frames with a fresh zstd context
/// each, and with one reused context.
fn decompress_contexts(texts: &[&str]) -> Result<(f64, f64)> {
    let frames: Vec<(Vec<u8>, usize)> = texts
        .iter()
        .map(|t| Ok((zstd::bulk::compress(t.as_bytes(), ZSTD_LEVEL)?, t.len())))
        .collect::<Result<_>>()?;
    let t = Instant::now();
    for (frame, len) in &frames {
        zstd::bulk::decompress(frame, *len)?;
    }
    let fresh = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut d = zstd::bulk::Decompressor::new()?;
    for (frame, len) in &frames {
        d.decompress(frame, *len)?;
    }
    Ok((fresh, t.elapsed().as_secs_f64() * 1e3))
}

/// Pushes every bundle to `<root>/<name>` and tags it `production`.
/// `shelf serve --store-root <root> --follow production`, waited for
/// until every repository is live.
fn start_server(
    shelf: &ShelfBinary,
    root: &Path,
    cache: &Path,
    query_cache_bytes: Option<usize>,
    repos: usize,
) -> Result<ServerProcess> {
    let mut args = follow_args("--store-root", root, cache, "1h");
    // Room for every repository's bundle (`--keep-bundles 8`): the cache
    // keeps the N most recently live bundles over all repositories, and
    // with fewer than the repositories served, one repository going live
    // could prune another's bundle between its download and its open.
    args.extend(strings(&["--keep-bundles", "8"]));
    if let Some(qc) = query_cache_bytes {
        args.extend(["--query-cache-bytes".to_string(), qc.to_string()]);
    }
    let env = [("SHELF_LOG", "warn,shelf_server=info")];
    let all_live = |v: &Value| v["repositories"] == repos as u64 && v["live"] == repos as u64;
    Ok(start_ready(shelf, &args, &env, all_live)?.server)
}

/// `POST /v1/search` with the same arguments `search_code` gets.
fn rest_call(repo: &str, query: &str) -> Call {
    let body = json!({"query": query, "k": K, "repo": repo, "max_tokens": MAX_TOKENS});
    Call::Post("/v1/search", Bytes::from(body.to_string()))
}

/// `POST /mcp`, `tools/call` of `search_code`.
fn mcp_call(repo: &str, query: &str, id: usize) -> Call {
    let arguments = json!({"query": query, "k": K, "repo": repo, "max_tokens": MAX_TOKENS});
    tool_call("search_code", &arguments, id)
}

/// `POST /mcp`, `tools/call` of `name`.
fn tool_call(name: &str, arguments: &Value, id: usize) -> Call {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": {"name": name, "arguments": arguments}
    });
    Call::Mcp(Bytes::from(body.to_string()))
}

/// One server being measured, and what asking it takes.
struct On<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a HttpClient,
    server: &'a ServerProcess,
    opts: &'a Mcp,
    b: &'a Bench,
}

impl On<'_> {
    /// One call, waited for.
    fn call(&self, c: &Call) -> Sample {
        self.rt
            .block_on(load::call(self.client, self.server.addr, c))
    }

    /// The same call `--grep-requests` times, one after another.
    fn repeat(&self, c: &Call) -> Vec<Sample> {
        (0..self.opts.grep_requests).map(|_| self.call(c)).collect()
    }

    /// Stage 4: the other tools over MCP on the largest repository, each asked
    /// once, then `--grep-requests` times; `changes` between the release tags
    /// (the list, then the diff of the first file it lists as changed).
    fn tools_part(&self, bundle: &BundleInfo) -> Result<Vec<ToolOut>> {
        let repo = bundle.served_as.as_str();
        let (from, to) = RELEASES;
        let mut cases = vec![
            (
                "list_files",
                json!({"repo": repo, "path": "pylint/checkers"}),
            ),
            ("list_files", json!({"repo": repo, "path": "**/*.py"})),
            (
                "outline",
                json!({"repo": repo, "path": "pylint/checkers/typecheck.py"}),
            ),
            ("find_references", json!({"repo": repo, "name": "PyLinter"})),
            (
                "find_related",
                json!({"repo": repo, "path": "pylint/lint/pylinter.py", "start_line": 1, "end_line": 80}),
            ),
            ("changes", json!({"repo": repo, "from": from, "to": to})),
        ];
        let mut out = Vec::new();
        let mut i = 0;
        while i < cases.len() {
            let (tool, arguments) = cases[i].clone();
            i += 1;
            let call = tool_call(tool, &arguments, i);
            let (first, samples) = (self.call(&call), self.repeat(&call));
            if let Some(bad) = std::iter::once(&first).chain(&samples).find(|s| !s.ok) {
                bail!("{tool} {arguments} failed: {}", bad.answer);
            }
            if tool == "changes" && arguments.get("path").is_none() {
                let files = first.answer["files"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let changed = files.iter().find(|f| f["status"] == "changed");
                let path = changed
                    .and_then(|f| f["path"].as_str())
                    .context("no file changed")?;
                cases.push((
                    "changes",
                    json!({"repo": repo, "from": from, "to": to, "path": path}),
                ));
            }
            let took = took_p50(&samples);
            let t = ToolOut {
                tool: tool.into(),
                arguments,
                first_ms: first.ms(),
                latency: Latency::of(&samples),
                server_took_p50_ms: (!took.is_nan()).then_some(took),
                counts: first
                    .answer
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_u64()?)))
                    .collect(),
            };
            self.b.say(format!(
                "{} {}: first {:.1} ms, p50 {:.2} ms, p95 {:.2} ms",
                t.tool, t.arguments, t.first_ms, t.latency.p50_ms, t.latency.p95_ms
            ));
            out.push(t);
        }
        Ok(out)
    }

    /// Stage 2: grep and read_file over the largest repository.
    fn files_part(
        &self,
        (bundle, size): (&BundleInfo, &SizeOut),
    ) -> Result<(Vec<GrepOut>, Vec<ReadOut>)> {
        let repo = &bundle.served_as;
        let mut grep = Vec::new();
        for g in &GREP_CASES {
            let mut target = format!(
                "/v1/grep?repo={}&pattern={}&regex={}&ignore_case={}",
                encode(repo),
                encode(g.pattern),
                g.regex,
                g.ignore_case
            );
            if let Some(path) = g.path {
                target.push_str(&format!("&path={}", encode(path)));
            }
            let samples = self.repeat(&Call::Get(target));
            let a = &first_ok(&samples, &format!("grep '{}'", g.pattern))?.answer;
            let out = GrepOut {
                name: g.name.into(),
                pattern: g.pattern.into(),
                regex: g.regex,
                ignore_case: g.ignore_case,
                path: g.path.map(str::to_string),
                files_scanned: f(a, "files_scanned"),
                files_matched: f(a, "files_matched"),
                total_matches: f(a, "total_matches"),
                matches_listed: a["matches"].as_array().map_or(0, |m| m.len() as u64),
                latency: Latency::of(&samples),
                server_took_p50_ms: took_p50(&samples),
            };
            self.b.say(format!(
                "grep {} '{}': {} files, {} matches, p50 {:.1} ms, p95 {:.1} ms",
                g.name,
                g.pattern,
                out.files_scanned,
                out.total_matches,
                out.latency.p50_ms,
                out.latency.p95_ms
            ));
            grep.push(out);
        }
        let (path, file_bytes) = size.largest_file.clone();
        let mut read_file = Vec::new();
        for (name, max_tokens) in [
            ("largest file, default max_tokens", None),
            (
                "largest file, whole (max_tokens 200000)",
                Some(shelf_search::budget::MAX_MAX_TOKENS),
            ),
            ("largest file, lines 1000-1100", None),
        ] {
            let mut target = format!("/v1/file?repo={}&path={}", encode(repo), encode(&path));
            if let Some(m) = max_tokens {
                target.push_str(&format!("&max_tokens={m}"));
            }
            if name.contains("1000-1100") {
                target.push_str("&start_line=1000&end_line=1100");
            }
            let samples = self.repeat(&Call::Get(target));
            let first = first_ok(&samples, &format!("reading {path}"))?;
            let out = ReadOut {
                name: name.into(),
                path: path.clone(),
                file_bytes,
                max_tokens,
                returned_bytes: first.answer["text"].as_str().map_or(0, |t| t.len() as u64),
                truncated: !first.answer["truncated"].is_null(),
                latency: Latency::of(&samples),
            };
            self.b.say(format!(
                "read_file {name}: {} of {} bytes, p50 {:.2} ms",
                out.returned_bytes, file_bytes, out.latency.p50_ms
            ));
            read_file.push(out);
        }
        Ok((grep, read_file))
    }

    /// Stage 3: `search_code` over MCP against `/v1/search`, sequential and
    /// interleaved, then with concurrent clients in alternating phases.
    fn compare(&self, server: &str, set: &str, queries: &[(String, String)]) -> Vec<Comparison> {
        let (opts, series) = (
            self.opts,
            Series {
                server,
                set,
                queries: queries.len(),
            },
        );
        // Sequential: each query of both, in an order that alternates.
        let (mut mcp, mut rest) = (Vec::new(), Vec::new());
        let mut id = 0;
        for round in 0..opts.rounds {
            for (i, (repo, q)) in queries.iter().enumerate() {
                id += 1;
                let calls = [mcp_call(repo, q, id), rest_call(repo, q)];
                let first = (i + round) % 2;
                let x = self.call(&calls[first]);
                let y = self.call(&calls[1 - first]);
                let (m, r) = if first == 0 { (x, y) } else { (y, x) };
                mcp.push(m);
                rest.push(r);
            }
        }
        let pairs: Vec<(&Sample, &Sample)> = mcp.iter().zip(&rest).collect();
        let sum = |s: &[Sample]| s.iter().map(Sample::ms).sum::<f64>() / 1e3;
        let sequential = series.of(1, (&mcp, sum(&mcp)), (&rest, sum(&rest)), paired(&pairs));
        self.b.say(sequential.summary());

        // Concurrent: `clients` clients, MCP and REST phases in the order
        // ABBA, each phase every query `rounds` times.
        let mut phases: BTreeMap<bool, (Vec<Sample>, f64)> = BTreeMap::new();
        for is_mcp in [true, false, false, true] {
            let calls: Vec<Call> = (0..opts.rounds)
                .flat_map(|_| queries.iter())
                .enumerate()
                .map(|(i, (repo, q))| {
                    if is_mcp {
                        mcp_call(repo, q, i)
                    } else {
                        rest_call(repo, q)
                    }
                })
                .collect();
            let t = Instant::now();
            let (n, never) = (calls.len(), Arc::new(AtomicBool::new(false)));
            let (client, addr) = (self.client, self.server.addr);
            let phase = load::run(
                client,
                addr,
                opts.clients,
                Arc::new(calls),
                load::Limits::once(n),
                never,
            );
            let samples = self.rt.block_on(phase);
            let entry = phases.entry(is_mcp).or_default();
            entry.0.extend(samples);
            entry.1 += t.elapsed().as_secs_f64();
        }
        let (mcp, mcp_s) = phases.remove(&true).unwrap_or_default();
        let (rest, rest_s) = phases.remove(&false).unwrap_or_default();
        // Concurrent answers come back in any order: pair them by query.
        let by_query = |samples: &[Sample]| -> BTreeMap<String, Vec<usize>> {
            let mut m: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, s) in samples.iter().enumerate() {
                m.entry(s.answer["query"].as_str().unwrap_or("").to_string())
                    .or_default()
                    .push(i);
            }
            m
        };
        let (bm, br) = (by_query(&mcp), by_query(&rest));
        let mut pairs = Vec::new();
        for (q, ms) in &bm {
            for (a, b) in ms.iter().zip(br.get(q).into_iter().flatten()) {
                pairs.push((&mcp[*a], &rest[*b]));
            }
        }
        let mut stats = paired(&pairs);
        // Answers that did not pair (failed ones) count as mismatches.
        let unpaired = mcp.len().max(rest.len()) - pairs.len();
        stats.pairs += unpaired;
        stats.top1_mismatches += unpaired;
        stats.list_mismatches += unpaired;
        let concurrent = series.of(opts.clients, (&mcp, mcp_s), (&rest, rest_s), stats);
        self.b.say(concurrent.summary());
        vec![sequential, concurrent]
    }
}

/// Which comparison: the server, the query set and its size.
struct Series<'a> {
    server: &'a str,
    set: &'a str,
    queries: usize,
}

impl Series<'_> {
    /// The comparison of `clients` clients' MCP and REST samples, each
    /// with the seconds its phases took.
    fn of(
        &self,
        clients: usize,
        (mcp, mcp_s): (&[Sample], f64),
        (rest, rest_s): (&[Sample], f64),
        stats: Paired,
    ) -> Comparison {
        let (mcp_side, rest_side) = (side(mcp, mcp_s), side(rest, rest_s));
        Comparison {
            server: self.server.into(),
            queries: self.set.into(),
            distinct_queries: self.queries,
            clients,
            p50_ratio: mcp_side.latency.p50_ms / rest_side.latency.p50_ms,
            p95_ratio: mcp_side.latency.p95_ms / rest_side.latency.p95_ms,
            mcp: mcp_side,
            rest: rest_side,
            pairs: stats.pairs,
            top1_mismatches: stats.top1_mismatches,
            list_mismatches: stats.list_mismatches,
            paired_median_ratio: stats.median_ratio,
            paired_median_extra_ms: stats.median_extra_ms,
            truncated: (truncated(mcp), truncated(rest)),
        }
    }
}

impl Comparison {
    /// One progress line.
    fn summary(&self) -> String {
        let (m, r) = (&self.mcp.latency, &self.rest.latency);
        format!(
            "{} / {} / {} client(s): MCP p50 {:.1} ms p95 {:.1} ms, REST p50 {:.1} ms p95 {:.1} ms, paired ratio {:.3} (+{:.2} ms); {} of {} lists differ",
            self.server,
            self.queries,
            self.clients,
            m.p50_ms,
            m.p95_ms,
            r.p50_ms,
            r.p95_ms,
            self.paired_median_ratio,
            self.paired_median_extra_ms,
            self.list_mismatches,
            self.pairs
        )
    }
}

fn tool_rows(tools: &[ToolOut]) -> Vec<Row> {
    tools
        .iter()
        .map(|t| {
            let mut what: Vec<String> = t
                .arguments
                .as_object()
                .into_iter()
                .flatten()
                .filter(|(k, _)| *k != "repo")
                .map(|(k, v)| format!("{k} {}", v.as_str().map_or(v.to_string(), str::to_string)))
                .collect();
            what.sort();
            let metric = format!("{} ({}): p50 / p95 (first)", t.tool, what.join(", "));
            let value = format!("{} ({:.1} ms)", ms_pair(&t.latency), t.first_ms);
            if t.tool == "changes" && t.arguments.get("path").is_none() {
                let ok = t.latency.p50_ms <= MAX_CHANGES_P50_MS;
                Row::check(
                    metric,
                    value,
                    format!("p50 <= {MAX_CHANGES_P50_MS:.0} ms"),
                    ok,
                )
            } else {
                Row::info(metric, value)
            }
        })
        .collect()
}

fn f(v: &Value, key: &str) -> u64 {
    v[key].as_u64().unwrap_or(0)
}

/// The first answer that succeeded, or an error naming `what` with the
/// first answer's failure.
fn first_ok<'a>(samples: &'a [Sample], what: &str) -> Result<&'a Sample> {
    samples.iter().find(|s| s.ok).with_context(|| {
        let why = samples.first().map(|s| s.answer.to_string());
        format!("{what} failed: {}", why.unwrap_or_default())
    })
}

/// The server's own time (`took_ms`), median over the answers that say.
fn took_p50(samples: &[Sample]) -> f64 {
    let took: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.answer["took_ms"].as_f64())
        .collect();
    median(&took)
}

/// What a search answer lists, to compare transports: (repo, path,
/// start_line, end_line) in rank order.
fn listed(answer: &Value) -> Vec<(String, String, u64, u64)> {
    answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["repo"].as_str().unwrap_or("").to_string(),
                r["path"].as_str().unwrap_or("").to_string(),
                r["start_line"].as_u64().unwrap_or(0),
                r["end_line"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

fn side(samples: &[Sample], seconds: f64) -> Side {
    let embed: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.answer["timings_ms"]["embed"].as_f64())
        .collect();
    Side {
        latency: Latency::of(samples),
        server_took_p50_ms: took_p50(samples),
        server_embed_p50_ms: median(&embed),
        seconds,
        throughput_qps: samples.len() as f64 / seconds,
    }
}

/// The same query asked of both transports.
#[derive(Debug, Clone, Copy, Default)]
struct Paired {
    pairs: usize,
    top1_mismatches: usize,
    list_mismatches: usize,
    median_ratio: f64,
    median_extra_ms: f64,
}

/// Compares each pair's answers and latencies (MCP first).
fn paired(pairs: &[(&Sample, &Sample)]) -> Paired {
    let mut out = Paired {
        pairs: pairs.len(),
        ..Paired::default()
    };
    let (mut ratios, mut extra) = (Vec::new(), Vec::new());
    for (m, r) in pairs {
        let (lm, lr) = (listed(&m.answer), listed(&r.answer));
        if !m.ok || !r.ok || lm.first() != lr.first() {
            out.top1_mismatches += 1;
        }
        if !m.ok || !r.ok || lm != lr {
            out.list_mismatches += 1;
        }
        if m.ok && r.ok {
            ratios.push(m.ms() / r.ms());
            extra.push(m.ms() - r.ms());
        }
    }
    out.median_ratio = median(&ratios);
    out.median_extra_ms = median(&extra);
    out
}

fn truncated(samples: &[Sample]) -> usize {
    samples
        .iter()
        .filter(|s| !s.answer["truncated"].is_null())
        .count()
}

fn ms_pair(l: &Latency) -> String {
    format!("{:.2} ms / {:.2} ms", l.p50_ms, l.p95_ms)
}

fn rows(
    sizes: &[SizeOut],
    grep: &[GrepOut],
    read_file: &[ReadOut],
    search: &[Comparison],
) -> Vec<Row> {
    let mut rows = Vec::new();
    for s in sizes {
        let name = served_name(&s.repo);
        rows.push(Row::info(
            format!("{name}: bundle / files.bin (share)"),
            format!(
                "{} / {} ({:.1}%)",
                mib(s.bundle_bytes),
                mib(s.files_bin_bytes),
                s.files_bin_share_of_bundle * 100.0
            ),
        ));
        rows.push(Row::info(
            format!("{name}: file texts raw -> files.bin"),
            format!(
                "{} in {} files ({} distinct) -> {:.1}x",
                mib(s.text_bytes),
                s.files,
                s.distinct_texts,
                s.compression_ratio
            ),
        ));
        rows.push(Row::info(
            format!("{name}: compress texts, 1 thread / build total"),
            format!(
                "{:.2} s / {:.0} s ({:.2}%)",
                s.compress_one_thread_ms / 1e3,
                s.build_ms.get("total").copied().unwrap_or(0) as f64 / 1e3,
                s.compress_share_of_build * 100.0
            ),
        ));
    }
    for s in sizes.iter().filter(|s| s.repo == LARGEST) {
        rows.push(Row::info(
            format!(
                "{}: decompress texts, fresh / reused zstd context",
                served_name(&s.repo)
            ),
            format!(
                "{:.1} ms / {:.1} ms",
                s.decompress_fresh_context_ms, s.decompress_reused_context_ms
            ),
        ));
    }
    let (bundles, files): (u64, u64) = sizes.iter().fold((0, 0), |(b, f), s| {
        (b + s.bundle_bytes, f + s.files_bin_bytes)
    });
    rows.push(Row::info(
        "all four: files.bin share of the bundles",
        format!("{:.1}%", files as f64 / bundles as f64 * 100.0),
    ));
    for g in grep {
        rows.push(Row::info(
            format!("grep {} '{}': p50 / p95", g.name, g.pattern),
            format!(
                "{} ({} files, {} matches)",
                ms_pair(&g.latency),
                g.files_scanned,
                g.total_matches
            ),
        ));
    }
    for r in read_file {
        rows.push(Row::info(
            format!("read_file {}: p50 / p95", r.name),
            format!(
                "{} ({} of {} bytes)",
                ms_pair(&r.latency),
                r.returned_bytes,
                r.file_bytes
            ),
        ));
    }
    for c in search {
        let what = format!(
            "{}, {} queries, {} client(s)",
            c.server, c.queries, c.clients
        );
        rows.push(Row::info(
            format!("{what}: MCP p50 / p95"),
            ms_pair(&c.mcp.latency),
        ));
        rows.push(Row::info(
            format!("{what}: REST p50 / p95"),
            ms_pair(&c.rest.latency),
        ));
        rows.push(Row::info(
            format!("{what}: MCP / REST p50 (p95)"),
            format!("{:.3} ({:.3})", c.p50_ratio, c.p95_ratio),
        ));
        let paired = format!(
            "{:.3} ({:+.2} ms)",
            c.paired_median_ratio, c.paired_median_extra_ms
        );
        let metric = format!("{what}: MCP / REST, median of pairs");
        if c.server == "embed every query" && c.clients == 1 {
            rows.push(Row::check(
                metric,
                paired,
                format!("<= {MAX_PAIRED_RATIO:.2}"),
                c.paired_median_ratio <= MAX_PAIRED_RATIO,
            ));
        } else {
            rows.push(Row::info(metric, paired));
        }
        rows.push(Row::info(
            format!("{what}: response bytes MCP / REST (median)"),
            format!(
                "{:.0} / {:.0}",
                c.mcp.latency.median_response_bytes, c.rest.latency.median_response_bytes
            ),
        ));
        rows.push(Row::check(
            format!("{what}: answers that differ"),
            format!(
                "{} of {} (top 1: {})",
                c.list_mismatches, c.pairs, c.top1_mismatches
            ),
            "0",
            c.list_mismatches == 0 && c.mcp.latency.failed == 0 && c.rest.latency.failed == 0,
        ));
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: f64, ok: bool, paths: &[&str]) -> Sample {
        let results: Vec<Value> = paths
            .iter()
            .map(|p| json!({"repo": "r", "path": p, "start_line": 1, "end_line": 9}))
            .collect();
        Sample {
            at: std::time::Instant::now(),
            latency: std::time::Duration::from_secs_f64(ms / 1e3),
            status: 200,
            ok,
            bytes: 0,
            digest: None,
            embed_ms: f64::NAN,
            search_ms: f64::NAN,
            answer: json!({ "results": results }),
        }
    }

    #[test]
    fn pairs_count_differences_in_order_and_failures() {
        let same = (
            sample(2.0, true, &["a", "b"]),
            sample(1.0, true, &["a", "b"]),
        );
        let reordered = (
            sample(3.0, true, &["a", "b"]),
            sample(3.0, true, &["b", "a"]),
        );
        let tail = (
            sample(4.0, true, &["a", "b"]),
            sample(2.0, true, &["a", "c"]),
        );
        let failed = (sample(1.0, false, &["a"]), sample(1.0, true, &["a"]));
        let p = paired(&[(&same.0, &same.1)]);
        assert_eq!((p.pairs, p.top1_mismatches, p.list_mismatches), (1, 0, 0));
        assert_eq!((p.median_ratio, p.median_extra_ms), (2.0, 1.0));
        let all = [
            (&same.0, &same.1),
            (&reordered.0, &reordered.1),
            (&tail.0, &tail.1),
            (&failed.0, &failed.1),
        ];
        let p = paired(&all);
        assert_eq!((p.pairs, p.top1_mismatches, p.list_mismatches), (4, 2, 3));
        // The failed pair has no latency ratio: the median of 2, 1, 2.
        assert_eq!(p.median_ratio, 2.0);
    }

    #[test]
    fn every_short_query_names_a_development_repository() {
        for (repo, q) in SHORT_QUERIES {
            assert!(REPOS.contains(&repo), "{repo}");
            assert!(!q.trim().is_empty());
        }
        assert!(REPOS.contains(&LARGEST));
    }
}
