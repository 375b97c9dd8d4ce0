//! What `shelf serve` is told: the `[serve]` section of a config file, with
//! command-line flags applied on top by the CLI. Every limit at the edge is
//! here, with its default. Documented in docs/serve.md.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use shelf_search::mapped::{DEFAULT_EXPANSION_SEARCH, SEARCH_CONTEXTS};

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

/// Where the served bundles come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Follow a tag (or the newest tag matching a pattern) in a store.
    Follow {
        /// The store URL.
        store: String,
        /// A tag name, or a glob such as `v*` (newest by semantic version).
        follow: String,
    },
    /// Serve one local bundle file; nothing is followed.
    Bundle(PathBuf),
}

/// S3 client settings for the followed store.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreClient {
    /// S3-compatible endpoint.
    pub endpoint_url: Option<String>,
    /// Path-style addressing.
    pub path_style: bool,
    /// Region.
    pub region: Option<String>,
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
    /// Time allowed to send the request head.
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
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Who may do what. Tokens are secrets: never logged, compared in
/// constant time.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Auth {
    /// Bearer tokens accepted for search and bundle info (empty: open).
    pub search_tokens: Vec<String>,
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

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// What to serve.
    pub source: Source,
    /// S3 client settings.
    pub store_client: StoreClient,
    /// Cache directory for unpacked bundles.
    pub cache_dir: PathBuf,
    /// How often the followed tag is checked.
    pub poll_interval: Duration,
    /// Bundles kept in the cache for instant rollback.
    pub keep_bundles: usize,
    /// Results when a query does not say.
    pub default_k: usize,
    /// HNSW search breadth.
    pub expansion_search: usize,
    /// ONNX Runtime threads for query embedding (default: all cores).
    pub embed_threads: Option<usize>,
    /// A model directory instead of the provisioned default.
    pub model: Option<PathBuf>,
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
            source,
            store_client: StoreClient::default(),
            cache_dir: default_cache_dir(),
            poll_interval: Duration::from_secs(5),
            keep_bundles: 3,
            default_k: 10,
            expansion_search: DEFAULT_EXPANSION_SEARCH,
            embed_threads: None,
            model: None,
            auth: Auth::default(),
            limits: Limits::default(),
        }
    }

    /// Checks settings that only make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let l = &self.limits;
        let bad = |what: &str, detail: String| Err(ConfigError::new(what, detail));
        if l.max_concurrent == 0 || l.max_concurrent > SEARCH_CONTEXTS {
            return bad(
                "serve.limits.max_concurrent",
                format!(
                    "{} is out of range: use 1 to {SEARCH_CONTEXTS}",
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
            .map(|t| ("a search token", t))
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
            .is_some_and(|a| self.auth.search_tokens.contains(a))
        {
            return bad(
                "auth",
                "the admin token is also a search token; give the admin API its own".into(),
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

/// The `[serve]` section of a config file, every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSettings {
    /// `listen`.
    pub listen: Option<String>,
    /// `store`.
    pub store: Option<String>,
    /// `follow`.
    pub follow: Option<String>,
    /// `bundle`.
    pub bundle: Option<PathBuf>,
    /// `endpoint_url`.
    pub endpoint_url: Option<String>,
    /// `path_style`.
    pub path_style: Option<bool>,
    /// `region`.
    pub region: Option<String>,
    /// `cache`.
    pub cache: Option<PathBuf>,
    /// `poll_interval`, e.g. `"5s"`.
    pub poll_interval: Option<String>,
    /// `keep_bundles`.
    pub keep_bundles: Option<usize>,
    /// `default_k`.
    pub default_k: Option<usize>,
    /// `expansion_search`.
    pub expansion_search: Option<usize>,
    /// `embed_threads`.
    pub embed_threads: Option<usize>,
    /// `search_tokens_file`: one token per line.
    pub search_tokens_file: Option<PathBuf>,
    /// `admin_token_file`.
    pub admin_token_file: Option<PathBuf>,
    /// `[serve.limits]`.
    #[serde(default)]
    pub limits: FileLimits,
}

/// `[serve.limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct FileLimits {
    pub max_body_bytes: Option<usize>,
    pub max_query_bytes: Option<usize>,
    pub max_k: Option<usize>,
    pub header_timeout: Option<String>,
    pub body_timeout: Option<String>,
    pub request_timeout: Option<String>,
    pub max_concurrent: Option<usize>,
    pub max_queued: Option<usize>,
    pub queue_timeout: Option<String>,
    pub rate_limit_per_second: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub max_connections: Option<usize>,
    pub drain_timeout: Option<String>,
}

/// Other sections (e.g. `[build]`) belong to other commands and are not
/// this one's to refuse.
#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    serve: Option<FileSettings>,
}

impl FileSettings {
    /// Reads the `[serve]` section of `path` (absent section: all defaults).
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
        Ok(file.serve.unwrap_or_default())
    }

    /// Applies these settings over `config` (flags are applied after, by
    /// the caller, so they win).
    pub fn apply(&self, config: &mut ServeConfig, origin: &str) -> Result<(), ConfigError> {
        let err =
            |key: &str, detail: String| ConfigError::new(format!("{origin}: serve.{key}"), detail);
        let duration =
            |key: &str, v: &Option<String>, into: &mut Duration| -> Result<(), ConfigError> {
                if let Some(v) = v {
                    *into = humantime::parse_duration(v).map_err(|e| {
                        err(key, format!("'{v}' is not a duration like \"5s\": {e}"))
                    })?;
                }
                Ok(())
            };
        if let Some(listen) = &self.listen {
            config.listen = listen.parse().map_err(|_| {
                err(
                    "listen",
                    format!("'{listen}' is not an address like 0.0.0.0:7700"),
                )
            })?;
        }
        match (&self.store, &self.follow, &self.bundle) {
            (Some(store), Some(follow), None) => {
                config.source = Source::Follow {
                    store: store.clone(),
                    follow: follow.clone(),
                }
            }
            (None, None, Some(bundle)) => config.source = Source::Bundle(bundle.clone()),
            (None, None, None) => {}
            _ => {
                return Err(err(
                    "store",
                    "set store and follow together, or bundle alone".into(),
                ));
            }
        }
        let c = &mut config.store_client;
        c.endpoint_url = self.endpoint_url.clone().or(c.endpoint_url.take());
        c.path_style = self.path_style.unwrap_or(c.path_style);
        c.region = self.region.clone().or(c.region.take());
        if let Some(cache) = &self.cache {
            config.cache_dir = cache.clone();
        }
        duration(
            "poll_interval",
            &self.poll_interval,
            &mut config.poll_interval,
        )?;
        config.keep_bundles = self.keep_bundles.unwrap_or(config.keep_bundles);
        config.default_k = self.default_k.unwrap_or(config.default_k);
        config.expansion_search = self.expansion_search.unwrap_or(config.expansion_search);
        config.embed_threads = self.embed_threads.or(config.embed_threads);
        if let Some(path) = &self.search_tokens_file {
            config.auth.search_tokens = read_tokens(path)?;
        }
        if let Some(path) = &self.admin_token_file {
            config.auth.admin_token = read_tokens(path)?.into_iter().next();
        }
        let (f, l) = (&self.limits, &mut config.limits);
        l.max_body_bytes = f.max_body_bytes.unwrap_or(l.max_body_bytes);
        l.max_query_bytes = f.max_query_bytes.unwrap_or(l.max_query_bytes);
        l.max_k = f.max_k.unwrap_or(l.max_k);
        duration(
            "limits.header_timeout",
            &f.header_timeout,
            &mut l.header_timeout,
        )?;
        duration("limits.body_timeout", &f.body_timeout, &mut l.body_timeout)?;
        duration(
            "limits.request_timeout",
            &f.request_timeout,
            &mut l.request_timeout,
        )?;
        l.max_concurrent = f.max_concurrent.unwrap_or(l.max_concurrent);
        l.max_queued = f.max_queued.unwrap_or(l.max_queued);
        duration(
            "limits.queue_timeout",
            &f.queue_timeout,
            &mut l.queue_timeout,
        )?;
        l.rate_limit_per_second = f.rate_limit_per_second.unwrap_or(l.rate_limit_per_second);
        l.rate_limit_burst = f.rate_limit_burst.unwrap_or(l.rate_limit_burst);
        l.max_connections = f.max_connections.unwrap_or(l.max_connections);
        duration(
            "limits.drain_timeout",
            &f.drain_timeout,
            &mut l.drain_timeout,
        )?;
        Ok(())
    }
}

/// Reads tokens from a file: one per line; blank lines and `#` comments
/// are skipped. An empty file is an error (it would silently open the API).
pub fn read_tokens(path: &Path) -> Result<Vec<String>, ConfigError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(&origin, format!("cannot read the token file: {e}")))?;
    let tokens = parse_tokens(&text);
    if tokens.is_empty() {
        return Err(ConfigError::new(origin, "the token file has no tokens"));
    }
    Ok(tokens)
}

/// Tokens from text: one per line, or comma-separated (as in an
/// environment variable); blanks and `#` comments skipped.
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

    fn follow() -> ServeConfig {
        ServeConfig::new(Source::Follow {
            store: "s3://b/p".into(),
            follow: "production".into(),
        })
    }

    #[test]
    fn file_settings_apply_over_defaults_and_other_sections_are_ignored() {
        let text = r#"
            [build]
            max_chunk_tokens = 200

            [serve]
            listen = "0.0.0.0:8080"
            store = "s3://bucket/idx"
            follow = "v*"
            poll_interval = "750ms"
            [serve.limits]
            max_k = 20
            rate_limit_per_second = 5
        "#;
        let f = FileSettings::from_toml(text, "shelf.toml").unwrap();
        let mut c = ServeConfig::new(Source::Bundle("x".into()));
        f.apply(&mut c, "shelf.toml").unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(
            c.source,
            Source::Follow {
                store: "s3://bucket/idx".into(),
                follow: "v*".into()
            }
        );
        assert_eq!(c.poll_interval, Duration::from_millis(750));
        assert_eq!((c.limits.max_k, c.limits.rate_limit_per_second), (20, 5));
        assert_eq!(c.limits.max_body_bytes, Limits::default().max_body_bytes);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = FileSettings::from_toml("[serve]\nlisten_on = \"x\"\n", "f.toml").unwrap_err();
        assert!(err.to_string().contains("listen_on"), "{err}");
        let f = FileSettings::from_toml("[serve]\npoll_interval = \"soon\"\n", "f.toml").unwrap();
        let err = f.apply(&mut follow(), "f.toml").unwrap_err().to_string();
        assert!(
            err.contains("serve.poll_interval") && err.contains("soon"),
            "{err}"
        );
        let f = FileSettings::from_toml("[serve]\nstore = \"s3://b\"\n", "f.toml").unwrap();
        assert!(
            f.apply(&mut follow(), "f.toml").is_err(),
            "store without follow"
        );
    }

    #[test]
    fn short_or_shared_tokens_are_refused() {
        let mut c = follow();
        c.auth.search_tokens = vec!["short".into()];
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("at least 16")
        );
        let long = "0123456789abcdef0123".to_string();
        c.auth.search_tokens = vec![long.clone()];
        c.auth.admin_token = Some(long);
        assert!(c.validate().unwrap_err().to_string().contains("its own"));
    }

    #[test]
    fn limits_out_of_range_are_refused() {
        let mut c = follow();
        c.limits.max_concurrent = SEARCH_CONTEXTS + 1;
        assert!(c.validate().is_err());
        let mut c = follow();
        c.default_k = 500;
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
