//! Command-line arguments. Documented for users in docs/cli.md.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// shelf: GitOps-built retrieval bundles of a git repository, served from
/// object storage by a small query server.
#[derive(Debug, Parser)]
#[command(name = "shelf", version, about, max_term_width = 100)]
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
    /// Upload a bundle to a store (not in this build yet).
    Push(Unbuilt),
    /// Point a tag at a bundle (not in this build yet).
    Tag(Unbuilt),
    /// Move a tag back to an earlier bundle (not in this build yet).
    Rollback(Unbuilt),
    /// List tags in a store (not in this build yet).
    Tags(Unbuilt),
    /// Serve search over HTTP (not in this build yet).
    Serve(Unbuilt),
    /// Search a bundle from the terminal.
    Search(SearchArgs),
    /// Verify a bundle file end to end.
    Verify(VerifyArgs),
    /// Delete unreferenced bundles from a store (not in this build yet).
    Gc(Unbuilt),
    /// Check the embedding runtime and environment.
    Doctor(DoctorArgs),
}

/// Arguments of commands not in this build; accepted so that the command
/// can say so instead of clap reporting an unknown argument.
#[derive(Debug, Args)]
pub struct Unbuilt {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

/// Where the embedding runtime is.
#[derive(Debug, Args)]
pub struct RuntimeArgs {
    /// The runtime directory made by scripts/setup (default: $SHELF_RUNTIME,
    /// else .runtime/ in this or a parent directory, or beside the binary).
    #[arg(long, value_name = "DIR")]
    pub runtime: Option<PathBuf>,
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
    /// The bundle file (.tar.zst).
    pub bundle: PathBuf,
    /// The digest it must have (default: the one in its file name, if any).
    #[arg(long)]
    pub digest: Option<String>,
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// What to look for, in words or code.
    pub query: String,
    /// Search this local bundle file.
    #[arg(long, value_name = "FILE")]
    pub bundle: PathBuf,
    /// How many results.
    #[arg(short, long, default_value_t = 5)]
    pub k: usize,
    /// Where verified bundles are unpacked.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Print results as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub runtime: RuntimeArgs,
    /// Also load the model and embed a test sentence.
    #[arg(long)]
    pub load: bool,
}
