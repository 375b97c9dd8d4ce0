//! What `shelf serve` and `shelf mcp` are told. Every setting is declared
//! once, in `settings.rs`: from that one list come the config file's
//! `[serve]` keys, the environment variables, the flags (and their
//! `--help`), the defaults, the ranges and docs/serve.md's table. The
//! file's settings, then the environment's, then the flags are merged by
//! [`ServeSettings::merge`] (one [`ServeSettings::overlay`] per layer), and
//! [`ServeSettings::resolve_for`] turns the result into the one
//! [`ServeConfig`] the server runs with. Documented in docs/serve.md.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod declare;
mod settings;
#[cfg(test)]
pub(crate) mod tests;
mod value;

pub use declare::{DOCS_BEGIN, DOCS_END, Given, Group, Info, Origin, check_docs, docs_tables};
pub use settings::{
    DECLARED, Declared, Limits, ServeConfig, ServeSettings, StdioSettings, Surface, declared,
};
pub use value::Value;

/// Most queries admitted at once (`limits.max_concurrent`): beyond it the
/// queue holds them.
pub const MAX_CONCURRENT: usize = 1024;

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

impl ServeConfig {
    /// The rules between settings: each setting's own range is checked
    /// by `validate` before.
    fn check_together(&self) -> Result<(), ConfigError> {
        let bad = |what: &str, detail: String| Err(ConfigError::new(what, detail));
        if self.default_k > self.limits.max_k {
            return bad(
                "--default-k / serve.default_k",
                format!(
                    "default_k {} must be at most max_k {}: lower default_k or raise max_k",
                    self.default_k, self.limits.max_k
                ),
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

/// The environment the settings read (a function, so tests need not
/// change the process's environment).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

impl ServeSettings {
    /// Reads the `[serve]` section of `path` (absent section: all unset).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&origin, format!("cannot read it: {e}")))?;
        Self::from_toml(&text, &origin)
    }

    /// Parses config text; `origin` names it in errors. Other sections
    /// (e.g. `[build]`) belong to other commands and are not this one's to
    /// refuse; an unknown key in `[serve]` or `[serve.limits]` is an error
    /// naming it.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: toml::Table = toml::from_str(text)
            .map_err(|e| ConfigError::new(origin, format!("invalid TOML: {e}")))?;
        let mut settings = Self::default();
        let Some(serve) = file.get("serve") else {
            return Ok(settings);
        };
        let table = |value: &toml::Value, name: &str| match value {
            toml::Value::Table(t) => Ok(t.clone()),
            other => Err(ConfigError::new(
                origin,
                format!(
                    "{name} must be a table ([{name}]), not {}",
                    other.type_str()
                ),
            )),
        };
        let unknown = |key: &str| {
            ConfigError::new(
                origin,
                format!(
                    "unknown setting {key}: the settings are listed in docs/serve.md and `shelf serve --help`"
                ),
            )
        };
        for (key, value) in table(serve, "serve")? {
            if key == "limits" {
                for (key, value) in table(&value, "serve.limits")? {
                    if !settings.set_from_file(Group::Limits, &key, &value, origin)? {
                        return Err(unknown(&format!("serve.limits.{key}")));
                    }
                }
            } else if !settings.set_from_file(Group::Serve, &key, &value, origin)? {
                return Err(unknown(&format!("serve.{key}")));
            }
        }
        Ok(settings)
    }

    /// What to serve, from the merged settings. `$SHELF_STORE` names the
    /// store when only `follow` is given (it is not a default of `store`,
    /// so it never conflicts with --bundle).
    fn source(&self, env: Env<'_>) -> Result<Source, ConfigError> {
        let given = |g: &Option<Given<String>>| g.as_ref().map(|g| g.value.clone());
        let (follow, store_root, repo_name) = (
            given(&self.follow),
            given(&self.store_root),
            given(&self.repo_name),
        );
        let bundle = self.bundle.as_ref().map(|g| g.value.clone());
        let repos = self
            .repository
            .as_ref()
            .map(|g| g.value.clone())
            .unwrap_or_default();
        for (i, r) in repos.iter().enumerate() {
            validate_repo(&r.name, &format!("serve.repository[{i}].name"))?;
            if repos[..i].iter().any(|o| o.name == r.name) {
                return Err(ConfigError::new(
                    format!("serve.repository[{i}].name"),
                    format!("repository '{}' is listed twice", r.name),
                ));
            }
        }
        let store = match (&self.store, &follow, &store_root) {
            (None, Some(_), None) if repos.is_empty() => {
                env(STORE_ENV).filter(|s| !s.trim().is_empty())
            }
            _ => given(&self.store),
        };
        match (&store, &follow, &bundle, &store_root) {
            (None, None, Some(path), None) if repos.is_empty() => Ok(Source::Bundle {
                path: path.clone(),
                name: match &repo_name {
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
                Source::store(store, follow, repo_name.as_deref())
            }
            (None, Some(follow), None, Some(root)) => Ok(Source::Stores {
                root: Some(RootSpec {
                    url: root.clone(),
                    follow: follow.clone(),
                }),
                repos,
            }),
            (None, None, None, None) if !repos.is_empty() => {
                Ok(Source::Stores { root: None, repos })
            }
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
