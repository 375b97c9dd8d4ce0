//! The load generator: N closed-loop clients on loopback, each with its own
//! keep-alive connection, sending `GET /v1/search` back to back until a
//! request count, a deadline or a stop flag ends the run. Every answer is
//! recorded with its latency, status, the digest that answered and the
//! server's own embed/search split.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use shelf_testkit::serve::ServerProcess;

/// One request's outcome.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the answer was complete.
    pub at: Instant,
    /// Client-side latency.
    pub latency: Duration,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// The bundle that answered.
    pub digest: Option<String>,
    /// The server's embedding time, ms.
    pub embed_ms: f64,
    /// The server's search time, ms.
    pub search_ms: f64,
}

/// When a run ends.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Total requests over all clients.
    pub requests: usize,
    /// Wall-clock bound.
    pub max_time: Duration,
}

/// Runs `clients` clients against `addr` until `limits` or `stop`; every
/// request carries `params` after its query (e.g. `&repo=NAME`; empty for
/// none).
pub async fn run(
    addr: SocketAddr,
    clients: usize,
    queries: Arc<Vec<String>>,
    params: &str,
    limits: Limits,
    stop: Arc<AtomicBool>,
) -> Vec<Sample> {
    let params: Arc<str> = Arc::from(params);
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(clients)
        .build(connector);
    let issued = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + limits.max_time;
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, queries, params, issued, stop) = (
                client.clone(),
                Arc::clone(&queries),
                Arc::clone(&params),
                Arc::clone(&issued),
                Arc::clone(&stop),
            );
            let total = limits.requests;
            tokio::spawn(async move {
                let mut out = Vec::new();
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    if i >= total || Instant::now() >= deadline || stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let q = &queries[i % queries.len()];
                    out.push(one(&client, addr, q, &params).await);
                }
                out
            })
        })
        .collect();
    let mut samples = Vec::new();
    for t in tasks {
        if let Ok(s) = t.await {
            samples.extend(s);
        }
    }
    samples
}

/// A load run with the CPU time the server and this process (the
/// generator, on the same cores) spent during it.
#[derive(Debug)]
pub struct Timed {
    /// Every request's outcome.
    pub samples: Vec<Sample>,
    /// Wall time of the run.
    pub seconds: f64,
    /// The server's CPU seconds; NaN when /proc could not be read.
    pub server_cpu_s: f64,
    /// This process's CPU seconds; NaN when /proc could not be read.
    pub generator_cpu_s: f64,
}

/// [`run`] against `server` on `rt` until `limits`, with the CPU time each
/// side spent.
pub fn run_timed(
    rt: &tokio::runtime::Runtime,
    server: &ServerProcess,
    clients: usize,
    queries: Arc<Vec<String>>,
    params: &str,
    limits: Limits,
) -> Timed {
    let (pid, me) = (server.pid(), std::process::id());
    let (server_cpu0, self_cpu0) = (process_cpu_seconds(pid), process_cpu_seconds(me));
    let never = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let samples = rt.block_on(run(server.addr, clients, queries, params, limits, never));
    let seconds = started.elapsed().as_secs_f64();
    let delta =
        |now: Option<f64>, then: Option<f64>| now.zip(then).map_or(f64::NAN, |(a, b)| a - b);
    let server_cpu_s = delta(process_cpu_seconds(pid), server_cpu0);
    let generator_cpu_s = delta(process_cpu_seconds(me), self_cpu0);
    Timed {
        samples,
        seconds,
        server_cpu_s,
        generator_cpu_s,
    }
}

async fn one(
    client: &Client<HttpConnector, Empty<Bytes>>,
    addr: SocketAddr,
    query: &str,
    params: &str,
) -> Sample {
    let started = Instant::now();
    let uri = format!(
        "http://{addr}/v1/search?k=10&q={}{params}",
        shelf_testkit::http::encode(query)
    );
    let mut sample = Sample {
        at: started,
        latency: Duration::ZERO,
        status: 0,
        digest: None,
        embed_ms: f64::NAN,
        search_ms: f64::NAN,
    };
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return sample;
    };
    let Ok(response) = client.get(uri).await else {
        sample.latency = started.elapsed();
        sample.at = Instant::now();
        return sample;
    };
    sample.status = response.status().as_u16();
    let body = response.into_body().collect().await.map(|b| b.to_bytes());
    sample.at = Instant::now();
    sample.latency = started.elapsed();
    if let Ok(bytes) = body
        && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
    {
        sample.digest = v["bundle"]["digest"].as_str().map(str::to_string);
        sample.embed_ms = v["timings_ms"]["embed"].as_f64().unwrap_or(f64::NAN);
        sample.search_ms = v["timings_ms"]["search"].as_f64().unwrap_or(f64::NAN);
    }
    sample
}

/// The `p`-th percentile (0-100) by nearest rank; NaN if empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// CPU seconds a process has used (user + system), from /proc.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields overall.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks.max(1.0))
}

/// A process's resident set now and at its peak, KiB (`VmRSS`, `VmHWM`).
pub fn process_rss_kib(pid: u32) -> Option<(u64, u64)> {
    let [rss, peak] = status_kib(pid, ["VmRSS:", "VmHWM:"])?;
    Some((rss, peak))
}

/// A process's resident set split into anonymous memory (heap, stacks)
/// and file pages (the binary, libraries, memory-mapped files), KiB
/// (`RssAnon`, `RssFile`).
pub fn process_rss_split_kib(pid: u32) -> Option<(u64, u64)> {
    let [anon, file] = status_kib(pid, ["RssAnon:", "RssFile:"])?;
    Some((anon, file))
}

/// Fields of `/proc/<pid>/status` given in KiB.
fn status_kib<const N: usize>(pid: u32, keys: [&str; N]) -> Option<[u64; N]> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |key: &str| -> Option<u64> {
        status
            .lines()
            .find(|l| l.starts_with(key))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let mut out = [0; N];
    for (slot, key) in out.iter_mut().zip(keys) {
        *slot = field(key)?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), 50.0);
        assert_eq!(percentile(&v, 99.0), 99.0);
        assert_eq!(percentile(&v, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
        assert_eq!(percentile(&[f64::NAN, 3.0], 50.0), 3.0);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        let pid = std::process::id();
        assert!(process_cpu_seconds(pid).is_some());
        let (rss, peak) = process_rss_kib(pid).unwrap();
        assert!(rss > 0 && peak >= rss);
        let (anon, file) = process_rss_split_kib(pid).unwrap();
        assert!(anon > 0 && file > 0);
        // RssShmem is the third part; two reads a moment apart differ a little.
        assert!(
            (anon + file) as f64 <= rss as f64 * 1.5,
            "{anon} + {file} vs {rss}"
        );
    }
}
