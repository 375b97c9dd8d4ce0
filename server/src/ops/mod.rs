//! What a caller can ask, whatever the transport: search, read a file,
//! grep, find definitions and references, list files, outline a file,
//! compare two versions, find related chunks, list the repositories. Each
//! operation takes the caller's [`Scope`] and [`Args`] checked against its
//! parameter table ([`params`]) and returns its answer or an [`ApiError`];
//! the REST routes (`http`), the MCP tools (`mcp`) and the web page call
//! these, so every surface shares one pipeline, one admission queue, one
//! set of limits and one set of parameters.
//!
//! Depends on the engine, the repositories and the guard; never on a
//! transport.

pub mod params;
pub mod repos;

use std::sync::{Arc, Mutex, OnceLock};

use shelf_formats::Digest;
use shelf_search::changes::{ChangesAnswer, ChangesRequest, DEFAULT_CHANGES_LIMIT};
use shelf_search::files::{
    DEFAULT_GREP_LIMIT, DefinitionsAnswer, DefinitionsRequest, FileAnswer, FileError, FileRequest,
    GrepAnswer, GrepRequest,
};
use shelf_search::listing::{
    DEFAULT_LIST_LIMIT, ListAnswer, ListRequest, OutlineAnswer, OutlineRequest,
};
use shelf_search::references::{ReferencesAnswer, ReferencesRequest};
use shelf_search::related::{RelatedAnswer, RelatedRequest};
use shelf_search::{
    Answer, EncodeError, Engine, RawRequest, Request, RequestError, RequestLimits, SearchError,
    Target,
};

use crate::cache::BundleCache;
use crate::config::{Limits, ServeConfig};
use crate::error::{ApiError, Code};
use crate::guard::{Admission, RateLimit, Scope, Tokens};
use crate::repos::{Repo, Repos};
use crate::state::{Readiness, Snapshot};
pub use params::Args;

/// Everything an operation needs, shared by every transport and
/// connection: the served repositories, the engine, the cache, the
/// gatekeepers and the limits.
#[derive(Debug)]
pub struct Api {
    /// The served repositories.
    pub repos: Arc<Repos>,
    engine: Arc<OnceLock<Engine>>,
    /// The bundle cache (other versions are fetched into it).
    pub cache: Arc<BundleCache>,
    /// Search tokens, each with its scope.
    pub search_tokens: Tokens,
    /// The admin token.
    pub admin_tokens: Tokens,
    admission: Admission,
    rate_limit: Option<RateLimit>,
    /// The limits at the edge.
    pub limits: Limits,
    default_k: usize,
    /// Whether queries are logged.
    pub log_queries: bool,
    /// Other versions opened for `changes`, most recent last.
    versions: Mutex<Vec<Arc<Snapshot>>>,
    /// Whether the web pages are served (`serve.web`).
    pub web: bool,
}

/// Other versions kept open for `changes` (each holds a cache lease).
const OPEN_VERSIONS: usize = 4;

impl Api {
    /// Builds the API over shared state, with `config`'s tokens and
    /// limits. `engine` is filled in once the model has loaded; until then
    /// queries get 503.
    pub fn new(
        config: &ServeConfig,
        repos: Arc<Repos>,
        engine: Arc<OnceLock<Engine>>,
        cache: Arc<BundleCache>,
    ) -> Self {
        let limits = config.limits.clone();
        Self {
            repos,
            engine,
            cache,
            search_tokens: Tokens::search(&config.auth.search_tokens),
            admin_tokens: Tokens::new(config.auth.admin_token.iter()),
            admission: Admission::new(&limits),
            rate_limit: RateLimit::new(&limits),
            limits,
            default_k: config.default_k,
            log_queries: config.log_queries,
            versions: Mutex::new(Vec::new()),
            web: config.web,
        }
    }

    /// The bounds a request is validated against.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            max_k: self.limits.max_k,
            max_query_bytes: self.limits.max_query_bytes,
            default_k: self.default_k,
        }
    }

    /// Counts a refused request by reason.
    pub fn rejected(&self, reason: &str) {
        self.repos
            .metrics
            .rejected
            .with_label_values(&[reason])
            .inc();
    }

    /// The gate of every query endpoint: the client's rate, then its
    /// token; the scope the token may see.
    pub fn enter(
        &self,
        headers: &http::HeaderMap,
        client: std::net::IpAddr,
        what: &str,
    ) -> Result<Scope, ApiError> {
        if let Some(limit) = &self.rate_limit {
            limit
                .check(client)
                .inspect_err(|_| self.rejected("rate_limited"))?;
        }
        self.search_tokens
            .check(headers, what)
            .inspect_err(|_| self.rejected("unauthorized"))
    }

    /// Runs `work` on the blocking pool inside an admission slot.
    async fn admitted<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot = self
            .admission
            .enter()
            .await
            .inspect_err(|_| self.rejected("overloaded"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| ApiError::internal(format!("the request's task failed: {e}")))
    }
}

/// Repositories picked for a request, each with the snapshot it finishes on.
pub type Picked = Vec<(Arc<Repo>, Arc<Snapshot>)>;

/// 503 `not_ready`, saying why.
pub fn not_ready(why: impl std::fmt::Display) -> ApiError {
    ApiError::unavailable(Code::NotReady, format!("not ready to search: {why}"), 2)
}

/// The same answer for a repository that does not exist and one the
/// caller may not see.
pub fn unknown_repo(name: &str, visible: &[Arc<Repo>]) -> ApiError {
    let shown: String = name.chars().take(128).collect();
    let known = if visible.is_empty() {
        "none".to_string()
    } else {
        visible
            .iter()
            .map(|r| r.name().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    ApiError::new(
        Code::UnknownRepository,
        format!("unknown repository '{shown}'; this server serves: {known} (see /v1/repos)"),
    )
}

/// The live repositories a request asks: those named (each must be
/// visible and live), or every visible live one.
pub fn pick(api: &Api, scope: &Scope, named: &[String]) -> Result<Picked, ApiError> {
    let visible = api.repos.visible(scope);
    if !api.repos.model_loaded() {
        return Err(not_ready("loading the embedding model"));
    }
    if named.is_empty() {
        let live: Picked = visible
            .iter()
            .filter_map(|r| Some((Arc::clone(r), r.state.live()?)))
            .collect();
        if live.is_empty() {
            let why = api
                .repos
                .readiness(scope, true)
                .reason
                .unwrap_or_else(|| "no bundle is live yet".into());
            return Err(not_ready(why));
        }
        return Ok(live);
    }
    let mut picked: Picked = Vec::new();
    for name in named {
        if picked.iter().any(|(r, _)| r.name() == name) {
            continue;
        }
        let Some(repo) = visible.iter().find(|r| r.name() == name) else {
            return Err(unknown_repo(name, &visible));
        };
        let Some(snapshot) = repo.state.live() else {
            let why = match repo.state.readiness() {
                Readiness::NotReady(why) => why,
                _ => "no bundle is live yet".into(),
            };
            return Err(not_ready(format!("repository '{name}': {why}")));
        };
        picked.push((Arc::clone(repo), snapshot));
    }
    Ok(picked)
}

fn targets(picked: &Picked) -> Vec<Target<'_>> {
    picked
        .iter()
        .map(|(repo, snapshot)| Target {
            repo: repo.name(),
            bundle: &snapshot.bundle,
            tag: snapshot.tag.as_deref(),
        })
        .collect()
}

fn file_error(e: FileError) -> ApiError {
    let code = match &e {
        FileError::BadPath { .. } => Code::BadPath,
        FileError::NotFound(_) => Code::NoSuchFile,
        FileError::Ambiguous { .. } => Code::AmbiguousPath,
        FileError::NoFileTexts { .. } => Code::NoFileTexts,
        FileError::BadRange(_) => Code::BadRange,
        FileError::BadPattern(_) => Code::BadPattern,
        FileError::Damaged(_) => Code::Internal,
    };
    ApiError::new(code, e.to_string())
}

/// Runs an engine function over the picked targets on the blocking pool,
/// inside an admission slot.
async fn over_targets<T: Send + 'static>(
    api: &Api,
    picked: Picked,
    work: impl FnOnce(&[Target<'_>]) -> Result<T, FileError> + Send + 'static,
) -> Result<T, ApiError> {
    api.admitted(move || work(&targets(&picked)))
        .await?
        .map_err(file_error)
}

/// One search, ranked across the repositories asked (`search_code`,
/// `GET|POST /v1/search`). `max_tokens` bounds the answer when given.
pub async fn search(api: &Api, scope: &Scope, args: &Args) -> Result<Answer, ApiError> {
    search_then(api, scope, args, |answer| answer).await
}

/// [`search`], and then `finish` on its answer in the same task of the
/// blocking pool: a caller that turns the answer into a page does it
/// there rather than in a second task (one hand-off per request, not two).
/// `finish` runs inside the search's admission slot: it is the request's
/// work on the blocking pool, and counts against `max_concurrent` with it.
pub async fn search_then<T: Send + 'static>(
    api: &Api,
    scope: &Scope,
    args: &Args,
    finish: impl FnOnce(Answer) -> T + Send + 'static,
) -> Result<T, ApiError> {
    let request = Request::new(
        RawRequest {
            query: args.text("query").unwrap_or_default(),
            k: args.int("k").map(|k| k as usize),
            path: args.text("path"),
            languages: args.names("language"),
            mode: args.text("mode"),
            group: args.text("group"),
            kind: args.text("kind"),
        },
        &api.request_limits(),
    )
    .map_err(|e| match e {
        RequestError::TooLong(m) => ApiError::new(Code::QueryTooLong, m),
        RequestError::Invalid(m) => ApiError::bad_request(m),
    })?;
    let engine = api
        .engine
        .get()
        .ok_or_else(|| not_ready("loading the embedding model"))?
        .clone();
    // The snapshots this request finishes on, whatever is swapped meanwhile.
    let picked = pick(api, scope, &args.names("repo"))?;
    let max_tokens = args.int("max_tokens").map(|n| n as usize);
    // The engine blocks while the model's workers embed the query.
    let answered = api
        .admitted(move || {
            let mut answer = engine.answer(&targets(&picked), &request)?;
            if let Some(max) = max_tokens {
                answer.fit(max);
            }
            let timing = Timing::of(&answer);
            Ok::<_, SearchError>((timing, finish(answer)))
        })
        .await?;
    let (timing, finished) = answered.map_err(|e| match e {
        SearchError::NoLexicalIndex => ApiError::bad_request(e.to_string()),
        SearchError::Encode(EncodeError::Busy) => {
            api.rejected("overloaded");
            ApiError::unavailable(
                Code::Overloaded,
                "the embedding queue is full; retry shortly",
                1,
            )
        }
        SearchError::Encode(EncodeError::Failed(_)) | SearchError::Bundle(_) => {
            ApiError::internal(e.to_string())
        }
    })?;
    let m = &api.repos.metrics;
    if let Some((embed, batch)) = timing.embed {
        m.stage_seconds
            .with_label_values(&["embed"])
            .observe(embed.as_secs_f64());
        m.embed_batch.set(batch as i64);
    }
    m.stage_seconds
        .with_label_values(&["search"])
        .observe(timing.search.as_secs_f64());
    Ok(finished)
}

/// What a search's metrics record, taken before its answer is finished.
struct Timing {
    /// Embedding time and batch, when the mode embeds the query.
    embed: Option<(std::time::Duration, usize)>,
    search: std::time::Duration,
}

impl Timing {
    fn of(answer: &Answer) -> Self {
        Self {
            embed: answer
                .mode
                .needs_vectors()
                .then(|| (answer.embed_time(), answer.embed_batch)),
            search: answer.search_time(),
        }
    }
}

/// The repository named by a one-repository parameter, or every visible
/// live one (the engine then finds the one that has the path).
fn one_named(args: &Args) -> Vec<String> {
    args.text("repo").into_iter().collect()
}

/// Lines of one file at the bundle's commit (`read_file`, `GET /v1/file`).
pub async fn read_file(api: &Api, scope: &Scope, args: &Args) -> Result<FileAnswer, ApiError> {
    let picked = pick(api, scope, &one_named(args))?;
    let request = FileRequest {
        path: args.text("path").unwrap_or_default(),
        start_line: args.int("start_line").map(|n| n as u32),
        end_line: args.int("end_line").map(|n| n as u32),
        max_tokens: args.max_tokens(params::FILE_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::files::read_file(t, &request)
    })
    .await
}

/// Lines matching a pattern across the files (`grep`, `GET /v1/grep`).
pub async fn grep(api: &Api, scope: &Scope, args: &Args) -> Result<GrepAnswer, ApiError> {
    let picked = pick(api, scope, &args.names("repo"))?;
    let request = GrepRequest {
        pattern: args.text("pattern").unwrap_or_default(),
        regex: args.flag("regex"),
        ignore_case: args.flag("ignore_case"),
        path: args.text("path"),
        limit: args.usize_or("limit", DEFAULT_GREP_LIMIT),
        max_tokens: args.max_tokens(params::LIST_MAX_TOKENS),
    };
    // Compile first: a bad pattern costs no admission slot.
    let re = shelf_search::files::compile(&request).map_err(file_error)?;
    over_targets(api, picked, move |t| {
        shelf_search::files::grep(t, &request, &re)
    })
    .await
}

/// Where a symbol is defined (`find_definitions`, `GET /v1/definitions`).
pub async fn definitions(
    api: &Api,
    scope: &Scope,
    args: &Args,
) -> Result<DefinitionsAnswer, ApiError> {
    let picked = pick(api, scope, &args.names("repo"))?;
    let request = DefinitionsRequest {
        name: args.text("name").unwrap_or_default(),
        limit: args.usize_or("limit", DEFAULT_GREP_LIMIT),
        max_tokens: args.max_tokens(params::LIST_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::files::definitions(t, &request)
    })
    .await
}

/// The files under a directory or matching a glob (`list_files`,
/// `GET /v1/files`).
pub async fn list_files(api: &Api, scope: &Scope, args: &Args) -> Result<ListAnswer, ApiError> {
    let picked = pick(api, scope, &args.names("repo"))?;
    let request = ListRequest {
        path: args.text("path").unwrap_or_default(),
        depth: args.int("depth").map(|n| n as usize),
        limit: args.usize_or("limit", DEFAULT_LIST_LIMIT),
        max_tokens: args.max_tokens(params::LIST_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::listing::list_files(t, &request)
    })
    .await
}

/// One file's definitions (`outline`, `GET /v1/outline`).
pub async fn outline(api: &Api, scope: &Scope, args: &Args) -> Result<OutlineAnswer, ApiError> {
    let picked = pick(api, scope, &one_named(args))?;
    let request = OutlineRequest {
        path: args.text("path").unwrap_or_default(),
        max_tokens: args.max_tokens(params::LIST_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::listing::outline(t, &request)
    })
    .await
}

/// Where a symbol is used (`find_references`, `GET /v1/references`).
pub async fn references(
    api: &Api,
    scope: &Scope,
    args: &Args,
) -> Result<ReferencesAnswer, ApiError> {
    let picked = pick(api, scope, &args.names("repo"))?;
    let request = ReferencesRequest {
        name: args.text("name").unwrap_or_default(),
        path: args.text("path"),
        limit: args.usize_or("limit", DEFAULT_GREP_LIMIT),
        max_tokens: args.max_tokens(params::LIST_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::references::references(t, &request)
    })
    .await
}

/// The chunks most like a file's lines (`find_related`, `GET /v1/related`).
pub async fn related(api: &Api, scope: &Scope, args: &Args) -> Result<RelatedAnswer, ApiError> {
    let picked = pick(api, scope, &one_named(args))?;
    let request = RelatedRequest {
        path: args.text("path").unwrap_or_default(),
        start_line: args.int("start_line").map(|n| n as u32),
        end_line: args.int("end_line").map(|n| n as u32),
        k: args.usize_or("k", api.default_k),
        max_tokens: args.max_tokens(params::SEARCH_MAX_TOKENS),
    };
    over_targets(api, picked, move |t| {
        shelf_search::related::related(t, &request)
    })
    .await
}

/// What changed between two indexed versions of one repository
/// (`changes`, `GET /v1/changes`): each version named by a tag of the
/// repository's store or a digest, fetched and verified into the cache
/// like any bundle when it is not the live one.
pub async fn changes(api: &Api, scope: &Scope, args: &Args) -> Result<ChangesAnswer, ApiError> {
    let picked = pick(api, scope, &one_named(args))?;
    let (repo, live) = match picked.as_slice() {
        [one] => one.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "changes compares versions of one repository: name it with repo (see list_repositories)",
            ));
        }
    };
    let from = version(api, &repo, &live, &args.text("from").unwrap_or_default()).await?;
    let to = match args.text("to") {
        Some(to) => version(api, &repo, &live, &to).await?,
        None => Arc::clone(&live),
    };
    if from.bundle.manifest.source.repository != to.bundle.manifest.source.repository {
        return Err(ApiError::new(
            Code::UnknownVersion,
            format!(
                "the two versions are of different repositories ({} and {}): name two versions of one",
                from.bundle.manifest.source.repository, to.bundle.manifest.source.repository
            ),
        ));
    }
    let request = ChangesRequest {
        path: args.text("path"),
        limit: args.usize_or("limit", DEFAULT_CHANGES_LIMIT),
        max_tokens: args.max_tokens(params::CHANGES_MAX_TOKENS),
    };
    let name = repo.name().to_string();
    api.admitted(move || {
        fn target<'a>(name: &'a str, s: &'a Snapshot) -> Target<'a> {
            Target {
                repo: name,
                bundle: &s.bundle,
                tag: s.tag.as_deref(),
            }
        }
        shelf_search::changes::changes(&target(&name, &from), &target(&name, &to), &request)
    })
    .await?
    .map_err(file_error)
}

/// The snapshot of the version `named` of `repo`: the live one, one
/// already open, or fetched from the repository's store into the cache
/// (verified while it unpacks) and opened.
async fn version(
    api: &Api,
    repo: &Repo,
    live: &Arc<Snapshot>,
    named: &str,
) -> Result<Arc<Snapshot>, ApiError> {
    let unknown = |why: String| ApiError::new(Code::UnknownVersion, why);
    let named = named.trim();
    if named.is_empty() {
        return Err(unknown(
            "name a version: a tag or a digest (sha256:…)".into(),
        ));
    }
    if live.tag.as_deref() == Some(named)
        || named.parse::<Digest>().ok() == Some(live.bundle.digest)
    {
        return Ok(Arc::clone(live));
    }
    let Some(versions) = repo.versions.as_ref() else {
        return Err(unknown(format!(
            "repository '{}' is served from a bundle file, not a store: it has no other versions to compare",
            repo.name()
        )));
    };
    let unavailable = |why: String| ApiError::unavailable(Code::VersionUnavailable, why, 5);
    let store = versions
        .store()
        .await
        .map_err(|e| unavailable(format!("cannot open the store of '{}': {e}", repo.name())))?;
    let digest = shelf_store::tags::resolve_target(&store, named)
        .await
        .map_err(|e| match e {
            shelf_store::StoreError::Refused(m) => unknown(m),
            other => unavailable(format!("cannot read '{named}' in the store: {other}")),
        })?;
    if digest == live.bundle.digest {
        return Ok(Arc::clone(live));
    }
    if let Some(open) = api
        .versions
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|s| s.bundle.digest == digest)
    {
        return Ok(Arc::clone(open));
    }
    let snapshot = versions
        .load(&store, digest, named)
        .await
        .map_err(|e| unavailable(format!("version '{named}' ({digest}) cannot be used: {e}")))?;
    let snapshot = Arc::new(snapshot);
    let mut open = api.versions.lock().unwrap_or_else(|e| e.into_inner());
    open.push(Arc::clone(&snapshot));
    if open.len() > OPEN_VERSIONS {
        open.remove(0);
    }
    Ok(snapshot)
}
