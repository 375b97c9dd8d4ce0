//! Command-line arguments. Documented for users in docs/cli.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use shelf_server::config::{ServeSettings, StdioSettings};
use shelf_store::S3Options;

/// shelf: GitOps-built retrieval bundles of a git repository, served from
/// object storage by a small query server.
#[derive(Debug, Parser)]
#[command(
    name = "shelf",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("SHELF_COMMIT"), ")"),
    about,
    max_term_width = 100
)]
pub struct Cli {
    /// More logging (-v debug, -vv trace); SHELF_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build a bundle of one git commit.
    Build(BuildArgs),
    /// Upload a bundle to a store (create-only) and record its commit.
    Push(PushArgs),
    /// Point a tag at a bundle in a store (compare-and-swap).
    Tag(TagArgs),
    /// Move a tag back to an earlier bundle; nothing is rebuilt.
    Rollback(RollbackArgs),
    /// List a store's tags, or one tag's history.
    Tags(TagsArgs),
    /// Serve search over HTTP: follow a tag in a store, or serve one bundle.
    Serve(ServeArgs),
    /// Search a bundle from the terminal.
    Search(SearchArgs),
    /// Answer an AI assistant over MCP on stdin/stdout: serve a bundle or
    /// follow a store here, or relay to a shelf server (docs/clients.md).
    Mcp(McpArgs),
    /// Score retrieval on queries with known answers; gate on a baseline.
    Eval(EvalArgs),
    /// Verify a bundle file, or a bundle in a store, end to end.
    Verify(VerifyArgs),
    /// Delete bundles no tag needs from a store.
    Gc(GcArgs),
    /// Check the embedding runtime and environment.
    Doctor(DoctorArgs),
    /// Print a shell completion script (e.g. `shelf completions bash >
    /// /etc/bash_completion.d/shelf`).
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

/// Where the embedding runtime is, and which model.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// The runtime directory made by scripts/setup (default: $SHELF_RUNTIME,
    /// else .runtime/ in this or a parent directory, or beside the binary).
    #[arg(long, value_name = "DIR")]
    pub runtime: Option<PathBuf>,
    /// A model directory with a shelf-model.toml, instead of the provisioned
    /// all-MiniLM-L6-v2 (docs/runtime.md). Builder and servers must agree.
    #[arg(long, value_name = "DIR", env = "SHELF_MODEL")]
    pub model: Option<PathBuf>,
}

/// Which store, and how to reach it.
#[derive(Debug, Clone, Args)]
pub struct StoreArgs {
    /// s3://bucket/prefix, file:///path, or a directory.
    #[arg(long, env = "SHELF_STORE", value_name = "URL")]
    pub store: String,
    #[command(flatten)]
    pub s3: S3Options,
}

/// Who is recorded as moving a tag.
#[derive(Debug, Args)]
pub struct ByArgs {
    /// Who or what moves the tag (default: the CI job, else user@host).
    #[arg(long)]
    pub by: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The bundle file (<hex>.tar.zst).
    pub bundle: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The tag to move (e.g. production, v1.4.0).
    pub name: String,
    /// What to point it at: a digest, another tag, or a commit with a pushed bundle.
    pub target: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Move only if the tag now points at this digest ('none': only if the
    /// tag does not exist). Without it, concurrent moves are retried.
    #[arg(long, value_name = "DIGEST|none")]
    pub expect: Option<String>,
    /// Why (recorded in the history).
    #[arg(long)]
    pub reason: Option<String>,
    #[command(flatten)]
    pub by: ByArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The tag to move back.
    pub name: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Go to this digest, tag or commit instead of back in history.
    #[arg(long, conflicts_with = "steps")]
    pub to: Option<String>,
    /// How many moves back in the tag's history.
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    #[command(flatten)]
    pub by: ByArgs,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct TagsArgs {
    /// s3://bucket/prefix, file:///path, or a directory [default: $SHELF_STORE].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// A root whose child stores are repositories (as `shelf serve
    /// --store-root`): every repository's tags, one table.
    #[arg(long, value_name = "URL", conflicts_with_all = ["history", "store"])]
    pub store_root: Option<String>,
    #[command(flatten)]
    pub s3: S3Options,
    /// Show every move of this tag.
    #[arg(long, value_name = "TAG")]
    pub history: Option<String>,
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct GcArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Also keep the N most recent bundles of every tag's history.
    #[arg(long)]
    pub keep: usize,
    /// Never delete bundles pushed or tagged more recently than this (e.g. 1h, 30m, 0s).
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    /// List what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The git repository (work tree or bare); only committed content is read.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// The revision to index (commit, branch, tag, or any rev-parse syntax).
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Directory to write the bundle into, as <sha256-hex>.tar.zst.
    #[arg(long, default_value = "bundles")]
    pub out: PathBuf,
    /// A previous bundle of this repository: chunks whose content id is in it
    /// reuse its vectors instead of being embedded again.
    #[arg(long, value_name = "BUNDLE")]
    pub previous: Option<PathBuf>,
    /// Build settings (default: shelf.toml at the revision's root, if any).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A store: chunks its embedding cache holds are not embedded, the
    /// vectors it lacks are pushed to it, and --previous-tag is read from it
    /// [default: $SHELF_STORE].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Neither read nor write the store's embedding cache.
    #[arg(long)]
    pub no_embedding_cache: bool,
    /// Embed only share I of N of the chunks the store's embedding cache
    /// lacks, push them, and write no bundle; a build with the same store
    /// then assembles the bundle (docs/building.md).
    #[arg(
        long,
        value_name = "I/N",
        conflicts_with_all = ["previous", "previous_tag", "reuse_from", "no_embedding_cache"]
    )]
    pub shard: Option<shelf_builder::Shard>,
    /// Build incrementally from the bundle this tag points at in the store.
    #[arg(long, value_name = "TAG", conflicts_with = "previous")]
    pub previous_tag: Option<String>,
    /// If this store has a commit record for this commit and settings, and
    /// its bundle verifies, print its digest and build nothing.
    #[arg(long, value_name = "URL")]
    pub reuse_from: Option<String>,
    #[command(flatten)]
    pub s3: S3Options,
    /// Name recorded as the repository (default: from the origin remote, else
    /// the directory name).
    #[arg(long)]
    pub name: Option<String>,
    /// Print the build summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A bundle file (.tar.zst); with --store, a digest or tag in the store.
    pub bundle: String,
    /// Verify a bundle in this store (downloaded to a temp dir) [default:
    /// $SHELF_STORE, when BUNDLE is not a file].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub s3: S3Options,
    /// The digest it must have (default: the one in its file name, if any).
    #[arg(long)]
    pub digest: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["bundle", "server"])))]
pub struct SearchArgs {
    /// What to look for, in words or code.
    pub query: String,
    /// Search this local bundle file.
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Ask this server instead (e.g. http://127.0.0.1:7700).
    #[arg(long, value_name = "URL", env = "SHELF_SERVER")]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "SHELF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Only these repositories of a server that serves several (repeat or
    /// comma-separate) [default: every repository the token may see].
    #[arg(
        long,
        value_name = "NAME",
        value_delimiter = ',',
        conflicts_with = "bundle"
    )]
    pub repo: Vec<String>,
    /// How many results [default: 10, as the server's default].
    #[arg(short, long)]
    pub k: Option<usize>,
    /// Only chunks whose path matches this glob (e.g. 'src/**/*.rs').
    #[arg(long, value_name = "GLOB")]
    pub path: Option<String>,
    /// Only chunks of these languages (e.g. rust,python).
    #[arg(long, value_name = "LANG", value_delimiter = ',')]
    pub language: Vec<String>,
    /// How to match: hybrid (default), semantic or lexical.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Answer with the best files (each with its best chunks) instead of chunks.
    #[arg(long)]
    pub files: bool,
    /// The kind of file to prefer: auto (what the query asks for: source
    /// unless it asks for tests, docs or release notes), any, source, test,
    /// doc, changelog, generated or other. A preference, not a filter.
    #[arg(long, value_name = "KIND")]
    pub kind: Option<String>,
    /// Where verified bundles are unpacked (with --bundle).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").args(["bundle", "server"])))]
#[command(group(clap::ArgGroup::new("golden").required(true).args(["queries", "from_history"])))]
pub struct EvalArgs {
    /// Queries with the files they should find, one JSON object per line
    /// (docs/eval.md).
    #[arg(long, value_name = "FILE")]
    pub queries: Option<PathBuf>,
    /// Or mine N golden queries from the repository's history (--repo):
    /// recent commits that change 1-3 source files, the message as the
    /// query, those files as the gold, each asked of a bundle of the
    /// commit's parent (built incrementally, kept in --history-cache),
    /// unless --bundle or --server names one thing to ask (docs/eval.md).
    #[arg(long, value_name = "N")]
    pub from_history: Option<usize>,
    /// The repository --from-history reads.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub repo: PathBuf,
    /// The revision whose history --from-history reads.
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Build settings for the parents' bundles (default: shelf.toml at each).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the parents' bundles are kept between runs
    /// [default: <cache>/history].
    #[arg(long, value_name = "DIR")]
    pub history_cache: Option<PathBuf>,
    /// Also write the mined queries to FILE (JSONL, the --queries format).
    #[arg(long, value_name = "FILE", requires = "from_history")]
    pub write_queries: Option<PathBuf>,
    /// Evaluate this bundle file (required with --queries unless --server).
    #[arg(long, value_name = "FILE")]
    pub bundle: Option<PathBuf>,
    /// Or a running server.
    #[arg(long, value_name = "URL", env = "SHELF_SERVER")]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "SHELF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// How to match: hybrid (default), semantic or lexical.
    #[arg(long, default_value = "hybrid")]
    pub mode: String,
    /// Quality gate: compare with the bundle this tag points at in the
    /// store; exit 3 when a metric drops by more than --max-drop.
    #[arg(long, value_name = "TAG")]
    pub baseline: Option<String>,
    /// Quality gate against a bundle file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub baseline_bundle: Option<PathBuf>,
    /// The store of --baseline [default: $SHELF_STORE].
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    #[command(flatten)]
    pub s3: S3Options,
    /// Largest allowed drop of recall@1/5/10, MRR or nDCG@10 (absolute, 0-1).
    #[arg(long, default_value_t = 0.05)]
    pub max_drop: f64,
    /// Where verified bundles are unpacked.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Settings file with a [serve] section (flags and the environment
    /// override it, setting by setting).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The runtime directory made by scripts/setup (default: $SHELF_RUNTIME,
    /// else .runtime/ in this or a parent directory, or beside the binary).
    #[arg(long, value_name = "DIR")]
    pub runtime: Option<PathBuf>,
    // Boxed: the settings are large next to every other command's.
    #[command(flatten)]
    pub settings: Box<ServeSettings>,
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// Relay every message to this shelf server's /mcp (e.g.
    /// https://shelf.example.com) instead of serving here.
    #[arg(long, value_name = "URL", conflicts_with_all = ["bundle", "store", "store_root", "config"])]
    pub server: Option<String>,
    /// Bearer token for --server.
    #[arg(long, env = "SHELF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Settings file with a [serve] section, as `shelf serve` reads it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The runtime directory made by scripts/setup (default: $SHELF_RUNTIME,
    /// else .runtime/ in this or a parent directory, or beside the binary).
    #[arg(long, value_name = "DIR")]
    pub runtime: Option<PathBuf>,
    /// The settings of `shelf serve` that apply over stdio (docs/serve.md;
    /// the default cache is ~/.cache/shelf/mcp).
    #[command(flatten)]
    pub settings: Box<StdioSettings>,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Also load the model and embed a test sentence.
    #[arg(long)]
    pub load: bool,
}
