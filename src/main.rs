//! `shelf`: one CLI for building, publishing and serving retrieval bundles.
//!
//! This file is the table of contents: parse arguments, set up logging,
//! dispatch each subcommand to one function, map the outcome to an exit code
//! (0 ok, 1 failed, 2 usage error).

mod cli;
mod client;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(&cli);
    progress::set_quiet(cli.quiet);
    let outcome = match cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Search(args) => commands::search::run(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Doctor(args) => commands::doctor::run(args),
        Command::Push(args) => commands::push::run(args),
        Command::Tag(args) => commands::tag::run(args),
        Command::Rollback(args) => commands::rollback::run(args),
        Command::Tags(args) => commands::tags::run(args),
        Command::Gc(args) => commands::gc::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Mcp(args) => commands::mcp::run(args),
        Command::Completions(args) => {
            let mut command = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut command, "shelf", &mut script);
            output::outln!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(ExitCode::SUCCESS)
        }
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

/// Logs go to stderr so stdout stays clean for JSON and tables. The level
/// comes from `SHELF_LOG` (tracing's env-filter syntax), `-v`/`-q`, or `info`.
fn init_logging(cli: &Cli) {
    use tracing_subscriber::EnvFilter;
    let default = match (cli.verbose, cli.quiet) {
        (_, true) => "warn",
        (0, false) => "info",
        (1, false) => "debug",
        _ => "trace",
    };
    let asked = std::env::var("SHELF_LOG").ok();
    let mut filter = asked
        .as_deref()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    // The tokenizer's trace lines spell out every text it sees, queries
    // included: never shown unless SHELF_LOG names its target on purpose
    // (docs/serve.md, "Logs").
    if !asked.as_deref().is_some_and(|f| f.contains("tokenizers"))
        && let Ok(quiet) = "tokenizers=off".parse()
    {
        filter = filter.add_directive(quiet);
    }
    // Colour only for people: CI logs and log collectors get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_target(false);
    match cli.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => builder.init(),
    }
}
