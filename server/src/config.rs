//! What `shelf serve` is told, in one settings model: [`ServeSettings`] is
//! both the `[serve]` section of a config file and the command line (as in
//! ripgrep, a config file is just more arguments). The file's settings,
//! then the environment's (through the flags' `env`), then the flags are
//! merged by [`ServeSettings::overlay`], and [`ServeSettings::resolve`]
//! turns the result into the one [`ServeConfig`] the server runs with.
//! Documented in docs/serve.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use shelf_search::mapped::DEFAULT_EXPANSION_SEARCH;

/// Most queries admitted at once (`limits.max_concurrent`): beyond it the
/// queue holds them.
pub const MAX_CONCURRENT: usize = 1024;
use shelf_store::S3Options;

/// A configuration problem, naming the setting and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{origin}: {detail}")]
pub struct ConfigError {
    /// Where the setting came from (a file, a flag, an environment variable).
    pub origin: String,
    /// What is wrong.
    pub detail: String,
}

impl ConfigError {
    pub(crate) fn new(origin: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            origin: origin.into(),
            detail: detail.into(),
        }
    }
}

/// One repository followed in its own store.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoSpec {
    /// Its name (what `repo=` names and every result carries).
    pub name: String,
    /// Its store URL.
    pub store: String,
    /// A tag name, or a glob such as `v*` (newest by semantic version).
    pub follow: String,
}

/// A store root: every direct child that is a shelf store is a repository
/// of that name, all following the same tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootSpec {
    /// The root: a directory or `s3://bucket/prefix`.
    pub url: String,
    /// The tag (or pattern) every repository follows.
    pub follow: String,
}

/// Where the served bundles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Repositories followed in stores: listed one by one, found under a
    /// store root, or both.
    Stores {
        /// A store root listed again every poll interval.
        root: Option<RootSpec>,
        /// Repositories named explicitly.
        repos: Vec<RepoSpec>,
    },
    /// Serve one local bundle file (as the repository `name`, or as its
    /// manifest's repository); nothing is followed.
    Bundle {
        /// The file.
        path: PathBuf,
        /// The repository name, when given.
        name: Option<String>,
    },
}

impl Source {
    /// One repository following `follow` in `store`, named `name` or after
    /// the store's last path segment.
    pub fn store(store: &str, follow: &str, name: Option<&str>) -> Result<Self, ConfigError> {
        let name = match name {
            Some(n) => n.to_string(),
            None => shelf_formats::names::repo_name_of(
                store
                    .split(" (")
                    .next()
                    .unwrap_or(store)
                    .trim_end_matches('/'),
            ),
        };
        validate_repo(&name, "--repo-name / serve.repo_name")?;
        Ok(Source::Stores {
            root: None,
            repos: vec![RepoSpec {
                name,
                store: store.to_string(),
                follow: follow.to_string(),
            }],
        })
    }
}

fn validate_repo(name: &str, origin: &str) -> Result<(), ConfigError> {
    shelf_formats::names::validate_repo_name(name)
        .map_err(|e| ConfigError::new(origin, e.to_string()))
}

/// Limits at the edge. Every request that breaks one gets a 4xx or 503
/// with a JSON error, never a 500.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Most results one query may ask for.
    pub max_k: usize,
    /// Time allowed to send a request head; also how long a keep-alive
    /// connection may sit idle between requests.
    pub header_timeout: Duration,
    /// Time allowed to send the request body.
    pub body_timeout: Duration,
    /// Time allowed for a whole request, queueing included.
    pub request_timeout: Duration,
    /// Queries processed at once.
    pub max_concurrent: usize,
    /// Queries waiting for a slot beyond those; more get 503 at once.
    pub max_queued: usize,
    /// Longest a query waits for a slot before 503.
    pub queue_timeout: Duration,
    /// Sustained queries per second per client address (0: no limit).
    pub rate_limit_per_second: u32,
    /// Burst above the rate per client (default: twice the rate).
    pub rate_limit_burst: u32,
    /// Open connections at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Open connections from one client address at once; more from it are
    /// closed as they arrive, so one client cannot starve the others.
    pub max_connections_per_client: usize,
    /// Time in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 << 10,
            max_query_bytes: 32 << 10,
            max_k: 100,
            header_timeout: Duration::from_secs(5),
            body_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_concurrent: 32,
            max_queued: 256,
            queue_timeout: Duration::from_secs(2),
            rate_limit_per_second: 0,
            rate_limit_burst: 0,
            max_connections: 1024,
            max_connections_per_client: 64,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// A search token and the repositories it may see.
#[derive(Clone, PartialEq, Eq)]
pub struct SearchToken {
    /// The token.
    pub token: String,
    /// Repository names or globs it is limited to (none: every
    /// repository).
    pub repos: Option<Vec<String>>,
}

impl std::fmt::Debug for SearchToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchToken")
            .field("repos", &self.repos)
            .finish_non_exhaustive()
    }
}

/// Who may do what. Tokens are secrets: never logged, compared in
/// constant time.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Bearer tokens accepted for search and bundle info (empty: open).
    pub search_tokens: Vec<SearchToken>,
    /// Bearer token for `/v1/admin/*` (none: the admin API is off).
    pub admin_token: Option<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("search_tokens", &self.search_tokens.len())
            .field("admin_token", &self.admin_token.is_some())
            .finish()
    }
}

/// Shortest token accepted: guessing one must be hopeless.
pub const MIN_TOKEN_LEN: usize = 16;

/// Environment variable with search tokens (comma-separated). Tokens are
/// never flags or config values: a command line is visible to every user
/// of the machine, and config files get committed.
pub const SEARCH_TOKENS_ENV: &str = "SHELF_SEARCH_TOKENS";
/// Environment variable with the admin token.
pub const ADMIN_TOKEN_ENV: &str = "SHELF_ADMIN_TOKEN";
/// Environment variable naming the store when `--store` does not.
pub const STORE_ENV: &str = "SHELF_STORE";

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Most repositories served from a store root (more are ignored, said
    /// in the log).
    pub max_repositories: usize,
    /// Serve on a non-loopback address without search tokens, on purpose.
    pub allow_anonymous: bool,
    /// What to serve.
    pub source: Source,
    /// S3 client settings for the store.
    pub s3: S3Options,
    /// Cache directory for unpacked bundles.
    pub cache_dir: PathBuf,
    /// How often the followed tag is checked.
    pub poll_interval: Duration,
    /// Longest wait before a bundle that failed to load is tried again.
    pub retry_max: Duration,
    /// Bundles kept in the cache for instant rollback.
    pub keep_bundles: usize,
    /// Results when a query does not say.
    pub default_k: usize,
    /// HNSW search breadth.
    pub expansion_search: usize,
    /// ONNX Runtime threads per query-embedding session (default 1; the
    /// server runs cores / threads sessions).
    pub embed_threads: Option<usize>,
    /// Bytes of query vectors kept in the query cache (0: off).
    pub query_cache_bytes: usize,
    /// A model directory instead of the provisioned default.
    pub model: Option<PathBuf>,
    /// Whether query text may appear in logs (off: never, at any level).
    pub log_queries: bool,
    /// Authentication.
    pub auth: Auth,
    /// Edge limits.
    pub limits: Limits,
}

impl ServeConfig {
    /// Defaults for serving `source`.
    pub fn new(source: Source) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            max_repositories: 1000,
            allow_anonymous: false,
            source,
            s3: S3Options::default(),
            cache_dir: default_cache_dir(),
            poll_interval: Duration::from_secs(5),
            retry_max: Duration::from_secs(60),
            keep_bundles: 3,
            default_k: 10,
            expansion_search: DEFAULT_EXPANSION_SEARCH,
            embed_threads: None,
            query_cache_bytes: crate::query_embedder::DEFAULT_CACHE_BYTES,
            model: None,
            log_queries: false,
            auth: Auth::default(),
            limits: Limits::default(),
        }
    }

    /// Checks settings that only make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let bad = |what: &str, detail: String| Err(ConfigError::new(what, detail));
        if l.max_concurrent == 0 || l.max_concurrent > MAX_CONCURRENT {
            return bad(
                "serve.limits.max_concurrent",
                format!(
                    "{} is out of range: use 1 to {MAX_CONCURRENT}",
                    l.max_concurrent
                ),
            );
        }
        if l.max_k == 0 || self.default_k == 0 || self.default_k > l.max_k {
            return bad(
                "serve.default_k",
                format!(
                    "default_k {} must be between 1 and max_k {}",
                    self.default_k, l.max_k
                ),
            );
        }
        if l.max_body_bytes < 256 || l.max_query_bytes == 0 {
            return bad(
                "serve.limits",
                "max_body_bytes must be at least 256 and max_query_bytes at least 1".into(),
            );
        }
        if l.max_connections == 0 || l.max_connections_per_client == 0 {
            return bad(
                "serve.limits",
                "max_connections and max_connections_per_client must be at least 1".into(),
            );
        }
        if self.poll_interval < Duration::from_millis(50) {
            return bad(
                "serve.poll_interval",
                "poll more rarely than every 50ms".into(),
            );
        }
        for (what, token) in self
            .auth
            .search_tokens
            .iter()
            .map(|t| ("a search token", &t.token))
            .chain(self.auth.admin_token.iter().map(|t| ("the admin token", t)))
        {
            if token.len() < MIN_TOKEN_LEN {
                return bad(
                    "auth",
                    format!(
                        "{what} is {} characters; use at least {MIN_TOKEN_LEN} random characters (e.g. `openssl rand -hex 24`)",
                        token.len()
                    ),
                );
            }
        }
        if self
            .auth
            .admin_token
            .as_ref()
            .is_some_and(|a| self.auth.search_tokens.iter().any(|t| &t.token == a))
        {
            return bad(
                "auth",
                "the admin token is also a search token; give the admin API its own".into(),
            );
        }
        if !self.listen.ip().is_loopback()
            && self.auth.search_tokens.is_empty()
            && !self.allow_anonymous
        {
            return bad(
                "--listen / serve.listen",
                format!(
                    "{} is reachable from other machines and no search token is set, so anyone who reaches it could read the whole code base. Add tokens ({SEARCH_TOKENS_ENV}=<token>[,<token>…] or --search-tokens-file FILE with one token per line; make one with `openssl rand -hex 24`), or serve it openly on purpose with --allow-anonymous (serve.allow_anonymous = true)",
                    self.listen
                ),
            );
        }
        Ok(())
    }
}

/// `$XDG_CACHE_HOME/shelf/serve`, else `~/.cache/shelf/serve`.
pub fn default_cache_dir() -> PathBuf {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("shelf")
        .join("serve")
}

/// A duration written like `5s`, `750ms` or `1m 30s`, in a flag or a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        humantime::parse_duration(s.trim())
            .map(HumanDuration)
            .map_err(|e| format!("'{s}' is not a duration like \"5s\" or \"750ms\": {e}"))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Every setting of `shelf serve`. Each is a flag (`--poll-interval`) and a
/// key of the config file's `[serve]` section (`poll_interval`); limits are
/// under `[serve.limits]` and flags of the same names. All optional: unset
/// means "the next source decides", down to the defaults.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServeSettings {
    /// The store to follow a tag in: s3://bucket/prefix, file:///path or a
    /// directory [default: $SHELF_STORE].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// The tag to follow, or a pattern ('v*') to follow the newest version tag.
    #[arg(long, value_name = "TAG|PATTERN")]
    pub follow: Option<String>,
    /// Serve every repository under this store root: each direct child
    /// ROOT/<name>/ that is a shelf store is the repository <name>, all
    /// following --follow (a directory or s3://bucket/prefix).
    #[arg(long, value_name = "URL", conflicts_with = "store")]
    pub store_root: Option<String>,
    /// Serve this one bundle file instead; nothing is followed.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["store", "follow", "store_root"])]
    pub bundle: Option<PathBuf>,
    /// The repository name of --store or --bundle [default: the store's
    /// last path segment, or the bundle's repository].
    #[arg(long, value_name = "NAME")]
    pub repo_name: Option<String>,
    /// Most repositories served from --store-root [default: 1000].
    #[arg(long, value_name = "N")]
    pub max_repositories: Option<usize>,
    /// Repositories in stores of their own (`[[serve.repository]]` with
    /// name, store and follow): a list of tables has no flag form; for one
    /// repository use --store, for many in one place --store-root.
    #[arg(skip)]
    pub repository: Vec<RepoSpec>,
    /// Address to listen on [default: 127.0.0.1:7700].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Allow a non-loopback --listen without search tokens (anyone who can
    /// reach the address can search).
    #[arg(long)]
    pub allow_anonymous: bool,
    /// Where bundles are unpacked [default: ~/.cache/shelf/serve].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// How often the followed tag is checked [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<HumanDuration>,
    /// Longest wait before a bundle that failed to load is tried again
    /// (the wait doubles from the poll interval) [default: 60s].
    #[arg(long, value_name = "DURATION")]
    pub retry_max: Option<HumanDuration>,
    /// Bundles kept in the cache for instant rollback [default: 3].
    #[arg(long, value_name = "N")]
    pub keep_bundles: Option<usize>,
    /// Results when a query does not say [default: 10].
    #[arg(long, value_name = "N")]
    pub default_k: Option<usize>,
    /// HNSW search breadth (recall against time) [default: 128].
    #[arg(long, value_name = "N")]
    pub expansion_search: Option<usize>,
    /// ONNX Runtime threads per query-embedding session; the server runs
    /// cores / threads sessions, each query alone on one [default: 1].
    #[arg(long, value_name = "N")]
    pub embed_threads: Option<usize>,
    /// Bytes of query vectors kept for repeated queries, 0 for none
    /// [default: 16777216].
    #[arg(long, value_name = "BYTES")]
    pub query_cache_bytes: Option<usize>,
    /// A model directory with a shelf-model.toml instead of the provisioned
    /// model (docs/runtime.md); bundles must have been built with it.
    #[arg(long, value_name = "DIR", env = "SHELF_MODEL")]
    pub model: Option<PathBuf>,
    /// Search tokens, one per line, each optionally followed by the
    /// repositories it may see (names or globs, comma-separated) [else
    /// $SHELF_SEARCH_TOKENS, comma-separated, each seeing every repository].
    #[arg(long, value_name = "FILE")]
    pub search_tokens_file: Option<PathBuf>,
    /// The admin token, for POST /v1/admin/reload (else $SHELF_ADMIN_TOKEN;
    /// none: the admin API is off).
    #[arg(long, value_name = "FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Log query text (off by default: queries never reach logs at any level).
    #[arg(long)]
    pub log_queries: bool,
    /// S3 client settings.
    #[command(flatten)]
    #[serde(skip)]
    pub s3: S3Options,
    /// `endpoint_url` in the file (flags: `--endpoint-url`).
    #[arg(skip)]
    pub endpoint_url: Option<String>,
    /// `path_style` in the file (flags: `--path-style`).
    #[arg(skip)]
    pub path_style: Option<bool>,
    /// `region` in the file (flags: `--region`).
    #[arg(skip)]
    pub region: Option<String>,
    /// Edge limits.
    #[command(flatten)]
    pub limits: LimitSettings,
}

/// `[serve.limits]`, and the flags of the same names.
#[derive(Debug, Clone, Default, clap::Args, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitSettings {
    /// Largest request body in bytes [default: 65536].
    #[arg(long, value_name = "BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Longest query text in bytes [default: 32768].
    #[arg(long, value_name = "BYTES")]
    pub max_query_bytes: Option<usize>,
    /// Most results one query may ask for [default: 100].
    #[arg(long, value_name = "N")]
    pub max_k: Option<usize>,
    /// Time allowed to send a request head, and the longest a keep-alive
    /// connection may sit idle [default: 5s].
    #[arg(long, value_name = "DURATION")]
    pub header_timeout: Option<HumanDuration>,
    /// Time allowed to send the request body [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub body_timeout: Option<HumanDuration>,
    /// Time allowed for a whole request, queueing included [default: 30s].
    #[arg(long, value_name = "DURATION")]
    pub request_timeout: Option<HumanDuration>,
    /// Queries processed at once, 1 to 64 [default: 32].
    #[arg(long, value_name = "N")]
    pub max_concurrent: Option<usize>,
    /// Queries waiting for a slot; more get 503 at once [default: 256].
    #[arg(long, value_name = "N")]
    pub max_queued: Option<usize>,
    /// Longest a query waits for a slot before 503 [default: 2s].
    #[arg(long, value_name = "DURATION")]
    pub queue_timeout: Option<HumanDuration>,
    /// Sustained queries per second per client address, 0 for no limit [default: 0].
    #[arg(long, value_name = "N", visible_alias = "rate-limit")]
    pub rate_limit_per_second: Option<u32>,
    /// Burst above the rate per client [default: twice the rate].
    #[arg(long, value_name = "N")]
    pub rate_limit_burst: Option<u32>,
    /// Open connections at once [default: 1024].
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Open connections from one client address at once [default: 64].
    #[arg(long, value_name = "N")]
    pub max_connections_per_client: Option<usize>,
    /// Time in-flight requests get to finish on shutdown [default: 10s].
    #[arg(long, value_name = "DURATION")]
    pub drain_timeout: Option<HumanDuration>,
}

/// Other sections (e.g. `[build]`) belong to other commands and are not
/// this one's to refuse.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    serve: Option<ServeSettings>,
}

/// The environment the settings read tokens from (a function, so tests
/// need not change the process's environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl ServeSettings {
    /// Reads the `[serve]` section of `path` (absent section: all unset).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, format!("cannot read it: {e}")))?;
        Self::from_toml(&text, &origin)
    }

    /// Parses config text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: ConfigFile = toml::from_str(text)
            .map_err(|e| ConfigError::new(origin, format!("invalid [serve] settings: {e}")))?;
        let mut settings = file.serve.unwrap_or_default();
        // The file spells the S3 options at the section's top level.
        settings.s3 = S3Options {
            endpoint_url: settings.endpoint_url.take(),
            path_style: settings.path_style.take().unwrap_or(false),
            region: settings.region.take(),
            ..S3Options::default()
        };
        Ok(settings)
    }

    /// These settings with every one `over` sets taking precedence (the
    /// command line over a config file). Switches (`--allow-anonymous`,
    /// `--path-style`) are on when either turns them on.
    pub fn overlay(self, over: ServeSettings) -> ServeSettings {
        let (l, o) = (self.limits, over.limits);
        // A source given by `over` replaces the file's whole source, so
        // `--bundle` is not mixed with a file's `store`.
        let over_source = over.bundle.is_some()
            || over.store.is_some()
            || over.follow.is_some()
            || over.store_root.is_some();
        let (store, follow, bundle, store_root) = if over_source {
            (over.store, over.follow, over.bundle, over.store_root)
        } else {
            (self.store, self.follow, self.bundle, self.store_root)
        };
        ServeSettings {
            store,
            follow,
            bundle,
            store_root,
            repo_name: over.repo_name.or(self.repo_name),
            max_repositories: over.max_repositories.or(self.max_repositories),
            // The list lives in the file only.
            repository: self.repository,
            listen: over.listen.or(self.listen),
            allow_anonymous: over.allow_anonymous || self.allow_anonymous,
            cache: over.cache.or(self.cache),
            poll_interval: over.poll_interval.or(self.poll_interval),
            retry_max: over.retry_max.or(self.retry_max),
            keep_bundles: over.keep_bundles.or(self.keep_bundles),
            default_k: over.default_k.or(self.default_k),
            expansion_search: over.expansion_search.or(self.expansion_search),
            embed_threads: over.embed_threads.or(self.embed_threads),
            query_cache_bytes: over.query_cache_bytes.or(self.query_cache_bytes),
            model: over.model.or(self.model),
            search_tokens_file: over.search_tokens_file.or(self.search_tokens_file),
            admin_token_file: over.admin_token_file.or(self.admin_token_file),
            log_queries: over.log_queries || self.log_queries,
            s3: self.s3.overlay(over.s3),
            endpoint_url: None,
            path_style: None,
            region: None,
            limits: LimitSettings {
                max_body_bytes: o.max_body_bytes.or(l.max_body_bytes),
                max_query_bytes: o.max_query_bytes.or(l.max_query_bytes),
                max_k: o.max_k.or(l.max_k),
                header_timeout: o.header_timeout.or(l.header_timeout),
                body_timeout: o.body_timeout.or(l.body_timeout),
                request_timeout: o.request_timeout.or(l.request_timeout),
                max_concurrent: o.max_concurrent.or(l.max_concurrent),
                max_queued: o.max_queued.or(l.max_queued),
                queue_timeout: o.queue_timeout.or(l.queue_timeout),
                rate_limit_per_second: o.rate_limit_per_second.or(l.rate_limit_per_second),
                rate_limit_burst: o.rate_limit_burst.or(l.rate_limit_burst),
                max_connections: o.max_connections.or(l.max_connections),
                max_connections_per_client: o
                    .max_connections_per_client
                    .or(l.max_connections_per_client),
                drain_timeout: o.drain_timeout.or(l.drain_timeout),
            },
        }
    }

    /// What to serve, from the merged settings. `$SHELF_STORE` names the
    /// store when only `follow` is given (it is not a flag default, so it
    /// never conflicts with --bundle).
    fn source(&self, env: Env<'_>) -> Result<Source, ConfigError> {
        let repos = &self.repository;
        for (i, r) in repos.iter().enumerate() {
            validate_repo(&r.name, &format!("serve.repository[{i}].name"))?;
            if repos[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError::new(
                    format!("serve.repository[{i}].name"),
                    format!("repository '{}' is listed twice", r.name),
                ));
            }
        }
        let store = match (&self.store, &self.follow, &self.store_root) {
            (None, Some(_), None) if repos.is_empty() => {
                env(STORE_ENV).filter(|s| !s.trim().is_empty())
            }
            _ => self.store.clone(),
        };
        match (&store, &self.follow, &self.bundle, &self.store_root) {
            (None, None, Some(path), None) if repos.is_empty() => Ok(Source::Bundle {
                path: path.clone(),
                name: match &self.repo_name {
                    Some(n) => {
                        validate_repo(n, "--repo-name / serve.repo_name")?;
                        Some(n.clone())
                    }
                    None => None,
                },
            }),
            (_, _, Some(_), _) => Err(ConfigError::new(
                "--bundle / serve.bundle",
                "a bundle file is served alone: drop store, store_root, follow and repository, or drop bundle",
            )),
            (Some(store), Some(follow), None, None) if repos.is_empty() => {
                Source::store(store, follow, self.repo_name.as_deref())
            }
            (None, Some(follow), None, Some(root)) => Ok(Source::Stores {
                root: Some(RootSpec {
                    url: root.clone(),
                    follow: follow.clone(),
                }),
                repos: repos.clone(),
            }),
            (None, None, None, None) if !repos.is_empty() => Ok(Source::Stores {
                root: None,
                repos: repos.clone(),
            }),
            (None, None, None, None) => Err(ConfigError::new(
                "shelf serve",
                "nothing to serve: pass --store URL --follow TAG, --store-root URL --follow TAG, or --bundle FILE, or list [[serve.repository]] in --config",
            )),
            (_, None, None, _) => Err(ConfigError::new(
                "--store / --store-root and --follow",
                "a store (or store root) and follow go together: shelf serve --store URL --follow TAG",
            )),
            _ => Err(ConfigError::new(
                "--store / --follow",
                "give --store (one repository) or --store-root (many) with --follow, or [[serve.repository]] entries, not a mix of --store and the others",
            )),
        }
    }

    /// The one conversion: merged settings (and the tokens in `env`) into
    /// the configuration the server runs with, validated.
    pub fn resolve(self, env: Env<'_>) -> Result<ServeConfig, ConfigError> {
        let source = self.source(env)?;
        let mut c = ServeConfig::new(source);
        if let Some(listen) = &self.listen {
            c.listen = listen.trim().parse().map_err(|_| {
                ConfigError::new(
                    "--listen / serve.listen",
                    format!("'{listen}' is not an address like 127.0.0.1:7700 or 0.0.0.0:7700"),
                )
            })?;
        }
        c.allow_anonymous = self.allow_anonymous;
        c.max_repositories = self.max_repositories.unwrap_or(c.max_repositories).max(1);
        c.s3 = self.s3;
        c.cache_dir = self.cache.unwrap_or(c.cache_dir);
        let d = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        c.poll_interval = d(self.poll_interval, c.poll_interval);
        c.retry_max = d(self.retry_max, c.retry_max);
        c.keep_bundles = self.keep_bundles.unwrap_or(c.keep_bundles);
        c.default_k = self.default_k.unwrap_or(c.default_k);
        c.expansion_search = self.expansion_search.unwrap_or(c.expansion_search);
        c.embed_threads = self.embed_threads;
        c.query_cache_bytes = self.query_cache_bytes.unwrap_or(c.query_cache_bytes);
        c.model = self.model;
        c.log_queries = self.log_queries;
        c.auth = Auth {
            search_tokens: match &self.search_tokens_file {
                Some(path) => read_search_tokens(path)?,
                None => tokens_from_env(env, SEARCH_TOKENS_ENV)?
                    .into_iter()
                    .map(|token| SearchToken { token, repos: None })
                    .collect(),
            },
            admin_token: match &self.admin_token_file {
                Some(path) => read_search_tokens(path)?
                    .into_iter()
                    .next()
                    .map(|t| t.token),
                None => tokens_from_env(env, ADMIN_TOKEN_ENV)?.into_iter().next(),
            },
        };
        let (f, l) = (self.limits, &mut c.limits);
        l.max_body_bytes = f.max_body_bytes.unwrap_or(l.max_body_bytes);
        l.max_query_bytes = f.max_query_bytes.unwrap_or(l.max_query_bytes);
        l.max_k = f.max_k.unwrap_or(l.max_k);
        l.header_timeout = d(f.header_timeout, l.header_timeout);
        l.body_timeout = d(f.body_timeout, l.body_timeout);
        l.request_timeout = d(f.request_timeout, l.request_timeout);
        l.max_concurrent = f.max_concurrent.unwrap_or(l.max_concurrent);
        l.max_queued = f.max_queued.unwrap_or(l.max_queued);
        l.queue_timeout = d(f.queue_timeout, l.queue_timeout);
        l.rate_limit_per_second = f.rate_limit_per_second.unwrap_or(l.rate_limit_per_second);
        l.rate_limit_burst = f.rate_limit_burst.unwrap_or(l.rate_limit_burst);
        l.max_connections = f.max_connections.unwrap_or(l.max_connections);
        l.max_connections_per_client = f
            .max_connections_per_client
            .unwrap_or(l.max_connections_per_client);
        l.drain_timeout = d(f.drain_timeout, l.drain_timeout);
        c.validate()?;
        Ok(c)
    }
}

/// Tokens from an environment variable: unset is none; set but holding no
/// token is an error, since it would silently open the API.
fn tokens_from_env(env: Env<'_>, name: &str) -> Result<Vec<String>, ConfigError> {
    match env(name) {
        None => Ok(Vec::new()),
        Some(text) => {
            let tokens = parse_tokens(&text);
            if tokens.is_empty() {
                return Err(ConfigError::new(
                    name,
                    "is set but holds no token: put tokens in it (comma-separated), or unset it",
                ));
            }
            Ok(tokens)
        }
    }
}

/// Reads a token file: one token per line, optionally followed by
/// whitespace and the comma-separated repository names or globs it is
/// limited to (`tok-…  api,web-*`); blank lines and `#` comments are
/// skipped. An empty file is an error (it would silently open the API).
pub fn read_search_tokens(path: &Path) -> Result<Vec<SearchToken>, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&origin, format!("cannot read the token file: {e}")))?;
    let tokens = parse_search_tokens(&text).map_err(|e| ConfigError::new(&origin, e))?;
    if tokens.is_empty() {
        return Err(ConfigError::new(origin, "the token file has no tokens"));
    }
    Ok(tokens)
}

/// Token file text (see [`read_search_tokens`]); errors name the line.
pub fn parse_search_tokens(text: &str) -> Result<Vec<SearchToken>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let Some(token) = fields.next() else { continue };
        let scope: Vec<String> = fields
            .flat_map(|f| f.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        for glob in &scope {
            globset::Glob::new(glob).map_err(|e| {
                format!("line {}: repository glob '{glob}' is not valid: {e}", i + 1)
            })?;
        }
        out.push(SearchToken {
            token: token.to_string(),
            repos: (!scope.is_empty()).then_some(scope),
        });
    }
    Ok(out)
}

/// Tokens from an environment variable's text: comma-separated (or one per
/// line); blanks and `#` comments skipped. They see every repository.
pub fn parse_tokens(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .flat_map(|l| l.split(','))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: ServeSettings,
    }

    fn flags(args: &[&str]) -> ServeSettings {
        Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap()
            .settings
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const FILE: &str = r#"
        [build]
        max_chunk_tokens = 200

        [serve]
        listen = "127.0.0.2:8080"
        store = "s3://bucket/idx"
        follow = "v*"
        poll_interval = "750ms"
        endpoint_url = "http://127.0.0.1:9000"
        path_style = true
        [serve.limits]
        max_k = 20
        rate_limit_per_second = 5
    "#;

    #[test]
    fn the_file_then_the_flags_merge_into_one_config() {
        let file = ServeSettings::from_toml(FILE, "shelf.toml").unwrap();
        let c = file.clone().overlay(flags(&[])).resolve(&no_env).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.2:8080");
        assert_eq!(
            c.source,
            Source::Stores {
                root: None,
                repos: vec![RepoSpec {
                    name: "idx".into(),
                    store: "s3://bucket/idx".into(),
                    follow: "v*".into()
                }]
            }
        );
        assert_eq!(c.poll_interval, Duration::from_millis(750));
        assert_eq!((c.limits.max_k, c.limits.rate_limit_per_second), (20, 5));
        assert_eq!(c.limits.max_body_bytes, Limits::default().max_body_bytes);
        assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(c.s3.path_style);
        // Flags win, setting by setting; the same names reach the limits.
        let c = file
            .overlay(flags(&[
                "--poll-interval",
                "2s",
                "--max-k",
                "30",
                "--rate-limit",
                "7",
                "--region",
                "eu-west-1",
            ]))
            .resolve(&no_env)
            .unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(2));
        assert_eq!((c.limits.max_k, c.limits.rate_limit_per_second), (30, 7));
        assert_eq!(c.s3.region.as_deref(), Some("eu-west-1"));
        assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
        // A source on the command line replaces the file's.
        let c = ServeSettings::from_toml(FILE, "f")
            .unwrap()
            .overlay(flags(&["--bundle", "b.tar.zst"]))
            .resolve(&no_env)
            .unwrap();
        assert_eq!(
            c.source,
            Source::Bundle {
                path: "b.tar.zst".into(),
                name: None
            }
        );
    }

    #[test]
    fn repositories_come_from_a_root_a_list_or_one_store_and_names_are_checked() {
        let c = flags(&["--store-root", "s3://org/shelf", "--follow", "production"])
            .resolve(&no_env)
            .unwrap();
        assert_eq!(
            c.source,
            Source::Stores {
                root: Some(RootSpec {
                    url: "s3://org/shelf".into(),
                    follow: "production".into()
                }),
                repos: vec![]
            }
        );
        let text = r#"
            [[serve.repository]]
            name = "api"
            store = "s3://team-a/shelf/api"
            follow = "production"
            [[serve.repository]]
            name = "web"
            store = "/srv/shelf/web"
            follow = "v*"
        "#;
        let c = ServeSettings::from_toml(text, "f")
            .unwrap()
            .resolve(&no_env)
            .unwrap();
        let Source::Stores { root: None, repos } = &c.source else {
            panic!("{:?}", c.source);
        };
        assert_eq!(repos.len(), 2);
        assert_eq!(
            (repos[1].name.as_str(), repos[1].follow.as_str()),
            ("web", "v*")
        );
        let named = flags(&["--store", "./st", "--follow", "p", "--repo-name", "billing"])
            .resolve(&no_env)
            .unwrap();
        let Source::Stores { repos, .. } = &named.source else {
            panic!();
        };
        assert_eq!(repos[0].name, "billing");
        for bad in [
            "[[serve.repository]]\nname = \"a/b\"\nstore = \"x\"\nfollow = \"p\"\n",
            "[[serve.repository]]\nname = \"a\"\nstore = \"x\"\nfollow = \"p\"\n[[serve.repository]]\nname = \"a\"\nstore = \"y\"\nfollow = \"p\"\n",
        ] {
            let err = ServeSettings::from_toml(bad, "f")
                .unwrap()
                .resolve(&no_env)
                .unwrap_err()
                .to_string();
            assert!(err.contains("serve.repository"), "{err}");
        }
        let err = flags(&["--store", "./st", "--follow", "p", "--repo-name", "../x"])
            .resolve(&no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid repository name"), "{err}");
    }

    #[test]
    fn token_files_scope_tokens_to_repositories() {
        let tokens = parse_search_tokens(
            "# team tokens\nopen-token-0123456789\nscoped-token-0123456789  api, web-*\n",
        )
        .unwrap();
        assert_eq!(tokens[0].repos, None);
        assert_eq!(
            tokens[1].repos,
            Some(vec!["api".to_string(), "web-*".to_string()])
        );
        let err = parse_search_tokens("tok-0123456789abcdef  [bad\n").unwrap_err();
        assert!(err.contains("line 1") && err.contains("[bad"), "{err}");
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = ServeSettings::from_toml("[serve]\nlisten_on = \"x\"\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
        let err =
            ServeSettings::from_toml("[serve]\npoll_interval = \"soon\"\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("soon"), "{err}");
        let err = ServeSettings::from_toml("[serve.limits]\nmax_kk = 3\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("max_kk"), "{err}");
        let f = ServeSettings::from_toml("[serve]\nstore = \"s3://b\"\n", "f.toml").unwrap();
        let err = f.resolve(&no_env).unwrap_err().to_string();
        assert!(err.contains("and follow go together"), "{err}");
        let err = flags(&["--bundle", "b", "--listen", "nowhere"])
            .resolve(&no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--listen") && err.contains("nowhere"), "{err}");
        assert!(Cli::try_parse_from(["serve", "--poll-interval", "soon"]).is_err());
    }

    #[test]
    fn a_non_loopback_listen_without_tokens_is_refused_unless_allowed() {
        let err = flags(&["--bundle", "b", "--listen", "0.0.0.0:7700"])
            .resolve(&no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("0.0.0.0:7700")
                && err.contains(SEARCH_TOKENS_ENV)
                && err.contains("--allow-anonymous"),
            "{err}"
        );
        let open = flags(&[
            "--bundle",
            "b",
            "--listen",
            "0.0.0.0:7700",
            "--allow-anonymous",
        ])
        .resolve(&no_env)
        .unwrap();
        assert!(open.allow_anonymous && open.auth.search_tokens.is_empty());
        let env = |k: &str| (k == SEARCH_TOKENS_ENV).then(|| "0123456789abcdef0123".to_string());
        let with_token = flags(&["--bundle", "b", "--listen", "[::]:7700"])
            .resolve(&env)
            .unwrap();
        assert_eq!(with_token.auth.search_tokens.len(), 1);
        // Loopback needs nothing.
        assert!(flags(&["--bundle", "b"]).resolve(&no_env).is_ok());
    }

    #[test]
    fn an_empty_token_list_is_an_error_everywhere() {
        let empty = |k: &str| (k == SEARCH_TOKENS_ENV).then(|| " , ".to_string());
        let err = flags(&["--bundle", "b"])
            .resolve(&empty)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(SEARCH_TOKENS_ENV) && err.contains("no token"),
            "{err}"
        );
        let t = tempfile::tempdir().unwrap();
        let file = t.path().join("tokens");
        std::fs::write(&file, "# nobody\n\n").unwrap();
        let err = flags(&[
            "--bundle",
            "b",
            "--search-tokens-file",
            file.to_str().unwrap(),
        ])
        .resolve(&no_env)
        .unwrap_err()
        .to_string();
        assert!(err.contains("no tokens"), "{err}");
    }

    #[test]
    fn short_or_shared_tokens_are_refused() {
        let mut c = ServeConfig::new(Source::Bundle {
            path: "b".into(),
            name: None,
        });
        c.auth.search_tokens = vec![SearchToken {
            token: "short".into(),
            repos: None,
        }];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("at least 16")
        );
        let long = "0123456789abcdef0123".to_string();
        c.auth.search_tokens = vec![SearchToken {
            token: long.clone(),
            repos: None,
        }];
        c.auth.admin_token = Some(long);
        assert!(c.validate().unwrap_err().to_string().contains("its own"));
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let mut c = ServeConfig::new(Source::Bundle {
            path: "b".into(),
            name: None,
        });
        c.limits.max_concurrent = MAX_CONCURRENT + 1;
        assert!(c.validate().is_err());
        let mut c = ServeConfig::new(Source::Bundle {
            path: "b".into(),
            name: None,
        });
        c.default_k = 500;
        assert!(c.validate().is_err());
        let mut c = ServeConfig::new(Source::Bundle {
            path: "b".into(),
            name: None,
        });
        c.limits.max_connections_per_client = 0;
        assert!(c.validate().is_err());
    }

    #[test]
    fn tokens_parse_from_lines_and_commas() {
        assert_eq!(
            parse_tokens("# team tokens\na, b\n\n c \n"),
            vec!["a", "b", "c"]
        );
    }
}
