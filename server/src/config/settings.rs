//! Every setting of `shelf serve` (and of `shelf mcp`), each declared once.
//!
//! **Adding a setting is one declaration below**: its doc comment (the
//! `--help` text and the docs table's meaning), `name: Type`, and in
//! braces what it needs beyond the defaults of [`Info::BASE`]: `flag`
//! (the flag without dashes: give one unless the setting is file-only),
//! `stdio: true` when `shelf mcp` uses it too, `env` for an environment
//! variable, `value_name`, `alias`, `conflicts`.
//!
//! - A setting the server reads as it is goes under `settings` (a field of
//!   [`ServeConfig`]) or `limits` (a field of [`Limits`], `[serve.limits]`
//!   in the file), with its default after `=` and, for a number or a
//!   duration, `range(least, most)` (inclusive), checked at resolve time.
//!   Its field, flag, file key, variable, default, range check and docs
//!   row all follow; nothing else is to write.
//! - A setting `resolve` combines with others (what to serve, tokens, S3)
//!   goes under `inputs`, with `unset` saying what leaving it unset
//!   means; then read it in [`ServeSettings::resolve_for`].
//!
//! Then run `SHELF_UPDATE_DOCS=1 cargo test -p shelf-server
//! docs_serve_md` to write its row into docs/serve.md (the test fails
//! until the docs match). The tests in `config/tests.rs` go over every
//! declared setting: the file, the environment and the flags, the range
//! bounds, the docs and `--help`.
//!
//! [`Info::BASE`]: super::declare::Info::BASE

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use shelf_search::mapped::DEFAULT_EXPANSION_SEARCH;
use shelf_store::S3Options;

use super::declare::declare;
use super::{
    ADMIN_TOKEN_ENV, Auth, ConfigError, Env, MAX_CONCURRENT, RepoSpec, SEARCH_TOKENS_ENV, Source,
    default_cache_dir,
};
use crate::query_embedder::DEFAULT_CACHE_BYTES;

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
const MINUTE: Duration = secs(60);
const HOUR: Duration = secs(3600);

declare! {
    inputs {
        /// The store to follow a tag in: s3://bucket/prefix, file:///path
        /// or a directory (with --follow alone, $SHELF_STORE names it).
        store: String, { flag: "store", value_name: "URL", stdio: true, source: true };
        /// The tag to follow, or a pattern ('v*') to follow the newest
        /// version tag.
        follow: String, { flag: "follow", value_name: "TAG|PATTERN", stdio: true, source: true };
        /// Serve every repository under this store root: each direct child
        /// ROOT/<name>/ that is a shelf store is the repository <name>,
        /// all following --follow (a directory or s3://bucket/prefix).
        store_root: String, {
            flag: "store-root", value_name: "URL", stdio: true, source: true,
            conflicts: &["store"],
        };
        /// Serve this one bundle file instead; nothing is followed.
        bundle: PathBuf, {
            flag: "bundle", value_name: "FILE", stdio: true, source: true,
            conflicts: &["store", "follow", "store_root"],
        };
        /// The repository name of --store or --bundle.
        repo_name: String, {
            flag: "repo-name", value_name: "NAME", stdio: true,
            unset: "the store's last path segment, or the bundle's repository",
        };
        /// Repositories in stores of their own: `[[serve.repository]]`
        /// tables with name, store and follow, in the file only (for one
        /// repository use --store, for many in one place --store-root).
        repository: Vec<RepoSpec>, { stdio: true };
        /// Where bundles are unpacked.
        cache: PathBuf, {
            flag: "cache", value_name: "DIR", stdio: true,
            unset: "`~/.cache/shelf/serve` (`shelf mcp`: `~/.cache/shelf/mcp`)",
        };
        /// A model directory with a shelf-model.toml instead of the
        /// provisioned model (docs/runtime.md); bundles must have been
        /// built with it.
        model: PathBuf, {
            flag: "model", value_name: "DIR", env: "SHELF_MODEL", stdio: true,
            unset: "the provisioned model",
        };
        /// Search tokens, one per line, each optionally followed by the
        /// repositories it may see (names or globs, comma-separated).
        search_tokens_file: PathBuf, {
            flag: "search-tokens-file", value_name: "FILE",
            unset: "the tokens in `SHELF_SEARCH_TOKENS` (comma-separated), else none",
        };
        /// The admin token, for POST /v1/admin/reload.
        admin_token_file: PathBuf, {
            flag: "admin-token-file", value_name: "FILE",
            unset: "the token in `SHELF_ADMIN_TOKEN`, else none (the admin API is off)",
        };
        /// S3-compatible endpoint (MinIO, R2, …); AWS S3 needs none.
        endpoint_url: String, {
            flag: "endpoint-url", value_name: "URL", env: "SHELF_S3_ENDPOINT", stdio: true,
            unset: "AWS S3",
        };
        /// Path-style S3 addressing: endpoint/bucket rather than
        /// bucket.endpoint (most S3-compatible services need it).
        path_style: bool, {
            flag: "path-style", env: "SHELF_S3_PATH_STYLE", stdio: true, unset: "off",
        };
        /// S3 region.
        region: String, {
            flag: "region", value_name: "REGION", stdio: true,
            unset: "`AWS_REGION` or the profile's, else us-east-1",
        };
    }

    /// Everything the server needs to run: the settings below, resolved
    /// and checked, and what `resolve` makes of the inputs above.
    #[derive(Debug, Clone)]
    pub struct ServeConfig(source: Source) {
        /// What to serve.
        pub source: Source = source,
        /// S3 client settings for the store.
        pub s3: S3Options = S3Options::default(),
        /// Cache directory for unpacked bundles.
        pub cache_dir: PathBuf = default_cache_dir(),
        /// A model directory instead of the provisioned default.
        pub model: Option<PathBuf> = None,
        /// Authentication.
        pub auth: Auth = Auth::default(),
        /// Edge limits.
        pub limits: Limits = Limits::default(),
    }
    settings {
        /// Address to listen on; 0.0.0.0:7700 serves other hosts (which
        /// needs search tokens, or --allow-anonymous).
        listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7700)), { flag: "listen" };
        /// Serve a non-loopback --listen without search tokens, on purpose:
        /// anyone who can reach the address can search.
        allow_anonymous: bool = false, { flag: "allow-anonymous" };
        /// Let query text reach the logs (off: queries never reach logs at
        /// any level).
        log_queries: bool = false, { flag: "log-queries" };
        /// Most repositories served from a store root (more are ignored,
        /// said in the log).
        max_repositories: usize = 1000, range(1, 10_000), {
            flag: "max-repositories", stdio: true,
        };
        /// How often the followed tag (and a store root's listing) is read.
        poll_interval: Duration = secs(5), range(ms(50), HOUR), {
            flag: "poll-interval", stdio: true,
        };
        /// Longest wait before a bundle that failed to load is tried again
        /// (the wait doubles from the poll interval).
        retry_max: Duration = MINUTE, range(ms(50), HOUR), { flag: "retry-max", stdio: true };
        /// Bundles kept in the cache for instant rollback.
        keep_bundles: usize = 3, range(1, 1000), { flag: "keep-bundles", stdio: true };
        /// How often every cached bundle is hashed again in the
        /// background, at the lowest priority; 0s for never
        /// (docs/serve.md, "The cache directory").
        scrub_interval: Duration = HOUR, range(secs(0), secs(7 * 24 * 3600)), {
            flag: "scrub-interval", stdio: true,
        };
        /// Results when a query does not say (at most max_k).
        default_k: usize = 10, range(1, 1000), { flag: "default-k", stdio: true };
        /// HNSW search breadth (recall against time) of bundles 1.0 to 1.2;
        /// 1.3 bundles are searched exactly.
        expansion_search: usize = DEFAULT_EXPANSION_SEARCH, range(1, 4096), {
            flag: "expansion-search", stdio: true,
        };
        /// ONNX Runtime threads per query-embedding session; the server
        /// runs cores / threads sessions, each query alone on one.
        embed_threads: usize = 1, range(1, 64), { flag: "embed-threads", stdio: true };
        /// Bytes of query vectors kept for repeated queries (LRU; 0: off).
        query_cache_bytes: usize = DEFAULT_CACHE_BYTES, range(0, 1 << 30), {
            flag: "query-cache-bytes", value_name: "BYTES", stdio: true,
        };
    }

    /// Limits at the edge. Every request that breaks one gets a 4xx or 503
    /// with a JSON error, never a 500.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Limits {}
    limits {
        /// Largest request body; larger: 413.
        max_body_bytes: usize = 64 << 10, range(256, 16 << 20), {
            flag: "max-body-bytes", value_name: "BYTES",
        };
        /// Longest query text; longer: 413 (over MCP, an invalid-params
        /// error).
        max_query_bytes: usize = 32 << 10, range(1, 1 << 20), {
            flag: "max-query-bytes", value_name: "BYTES", stdio: true,
        };
        /// Most results one query may ask for; more: 400.
        max_k: usize = 100, range(1, 1000), { flag: "max-k", stdio: true };
        /// Time allowed to send a request head, and the longest a
        /// keep-alive connection may sit idle; then the connection is
        /// closed without an answer.
        header_timeout: Duration = secs(5), range(ms(100), 10 * MINUTE), {
            flag: "header-timeout",
        };
        /// Time allowed to send the request body; then 408.
        body_timeout: Duration = secs(10), range(ms(100), 10 * MINUTE), {
            flag: "body-timeout",
        };
        /// Time allowed for a whole request, queueing included; then 503
        /// `timeout`.
        request_timeout: Duration = secs(30), range(ms(100), 10 * MINUTE), {
            flag: "request-timeout", stdio: true,
        };
        /// Queries processed at once; more wait in the queue.
        max_concurrent: usize = 32, range(1, MAX_CONCURRENT), {
            flag: "max-concurrent", stdio: true,
        };
        /// Queries waiting for a slot; more get 503 `overloaded` at once.
        max_queued: usize = 256, range(0, 65_536), { flag: "max-queued", stdio: true };
        /// Longest a query waits for a slot; then 503 `overloaded`.
        queue_timeout: Duration = secs(2), range(Duration::ZERO, 10 * MINUTE), {
            flag: "queue-timeout", stdio: true,
        };
        /// Sustained queries per second per client address (0: no limit);
        /// beyond the burst: 429 with Retry-After.
        rate_limit_per_second: u32 = 0, range(0, 100_000), {
            flag: "rate-limit-per-second", alias: "rate-limit",
        };
        /// Burst above the rate per client (0: twice the rate).
        rate_limit_burst: u32 = 0, range(0, 1_000_000), { flag: "rate-limit-burst" };
        /// Open connections at once; more are closed as they arrive.
        max_connections: usize = 1024, range(1, 100_000), { flag: "max-connections" };
        /// Open connections from one client address at once; more from it
        /// are closed as they arrive, so one client cannot starve the
        /// others.
        max_connections_per_client: usize = 64, range(1, 100_000), {
            flag: "max-connections-per-client",
        };
        /// Time in-flight requests get to finish on shutdown; then they are
        /// dropped.
        drain_timeout: Duration = secs(10), range(Duration::ZERO, 10 * MINUTE), {
            flag: "drain-timeout", stdio: true,
        };
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

/// Who reads the settings: `shelf serve` over HTTP, or `shelf mcp` on
/// stdio, which uses fewer of them (`Info::stdio`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// `shelf serve`.
    Http,
    /// `shelf mcp`.
    Stdio,
}

impl Surface {
    /// The cache when no setting names one: `shelf mcp` keeps its own, as
    /// two processes pruning one cache would remove each other's bundles.
    pub fn default_cache_dir(self) -> PathBuf {
        match self {
            Surface::Http => default_cache_dir(),
            Surface::Stdio => default_cache_dir().with_file_name("mcp"),
        }
    }
}

fn value<T: Clone>(given: &Option<super::declare::Given<T>>) -> Option<T> {
    given.as_ref().map(|g| g.value.clone())
}

impl ServeSettings {
    /// The one merge: the `[serve]` section of `file` (if any), then the
    /// environment's variables, then `flags`, setting by setting.
    pub fn merge(
        file: Option<&std::path::Path>,
        env: Env<'_>,
        flags: ServeSettings,
    ) -> Result<ServeSettings, ConfigError> {
        let file = match file {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        Self::merge_layers(file, env, flags)
    }

    /// [`ServeSettings::merge`] with the file already read.
    pub fn merge_layers(
        file: ServeSettings,
        env: Env<'_>,
        flags: ServeSettings,
    ) -> Result<ServeSettings, ConfigError> {
        Ok(file.overlay(Self::from_env(env)?).overlay(flags))
    }

    /// [`ServeSettings::resolve_for`] `shelf serve`.
    pub fn resolve(self, env: Env<'_>) -> Result<ServeConfig, ConfigError> {
        self.resolve_for(Surface::Http, env)
    }

    /// The one conversion: merged settings (and the tokens in `env`) into
    /// the configuration the server runs with, every setting checked
    /// against its range, then the settings that go together.
    pub fn resolve_for(
        mut self,
        surface: Surface,
        env: Env<'_>,
    ) -> Result<ServeConfig, ConfigError> {
        if surface == Surface::Stdio {
            self.keep_only_stdio();
        }
        let mut c = ServeConfig::new(self.source(env)?);
        c.apply(&self)?;
        c.limits.apply(&self)?;
        c.cache_dir = value(&self.cache).unwrap_or_else(|| surface.default_cache_dir());
        c.model = value(&self.model);
        c.s3 = S3Options {
            endpoint_url: value(&self.endpoint_url),
            path_style: value(&self.path_style).unwrap_or(false),
            region: value(&self.region),
            ..S3Options::default()
        };
        // Over stdio the client is the local user who started the process:
        // no tokens (http/stdio.rs).
        if surface == Surface::Http {
            c.auth = Auth {
                search_tokens: match value(&self.search_tokens_file) {
                    Some(path) => super::read_search_tokens(&path)?,
                    None => super::tokens_from_env(env, SEARCH_TOKENS_ENV)?
                        .into_iter()
                        .map(|token| super::SearchToken { token, repos: None })
                        .collect(),
                },
                admin_token: match value(&self.admin_token_file) {
                    Some(path) => super::read_search_tokens(&path)?
                        .into_iter()
                        .next()
                        .map(|t| t.token),
                    None => super::tokens_from_env(env, ADMIN_TOKEN_ENV)?
                        .into_iter()
                        .next(),
                },
            };
        }
        c.validate()?;
        Ok(c)
    }
}

impl ServeConfig {
    /// Checks every setting against its range, then the settings that only
    /// make sense together (a config built in code is checked too).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_ranges()?;
        self.limits.check_ranges()?;
        self.check_together()
    }
}

impl clap::Args for ServeSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Self::augment(cmd, false)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment(cmd, false)
    }
}

impl clap::FromArgMatches for ServeSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self::from_matches(matches))
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = std::mem::take(self).overlay(Self::from_matches(matches));
        Ok(())
    }
}

/// The flags of `shelf mcp`: the settings it uses (`stdio: true`), and
/// only those, so `shelf mcp --help` lists what applies.
#[derive(Debug, Clone, Default)]
pub struct StdioSettings(pub ServeSettings);

impl clap::Args for StdioSettings {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        ServeSettings::augment(cmd, true)
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        ServeSettings::augment(cmd, true)
    }
}

impl clap::FromArgMatches for StdioSettings {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(ServeSettings::from_matches(matches)))
    }
    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(matches)
    }
}
