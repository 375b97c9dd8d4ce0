//! `shelf tag NAME TARGET --store URL [--expect DIGEST|none]`.

use std::process::ExitCode;

use anyhow::Context;
use shelf_formats::Digest;
use shelf_store::TagMoveOutcome;
use shelf_store::tags::{MoveRequest, move_tag, resolve_target};

use crate::cli::TagArgs;
use crate::commands::{mover, open_store, runtime};
use crate::output::outln;

/// Resolves the target and moves the tag with compare-and-swap.
pub fn run(args: TagArgs) -> anyhow::Result<ExitCode> {
    shelf_formats::names::validate_tag_name(&args.name)?;
    let expect = match args.expect.as_deref() {
        None => None,
        Some("none") => Some(None),
        Some(d) => Some(Some(d.parse::<Digest>().context("--expect")?)),
    };
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let to = resolve_target(&store, &args.target).await?;
        let out = move_tag(
            &store,
            &MoveRequest {
                tag: args.name.clone(),
                to,
                expect,
                by: mover(args.by.by.clone()),
                reason: args.reason.clone(),
            },
        )
        .await?;
        print_move(&out, args.json)?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Prints a tag move (shared with rollback).
pub fn print_move(out: &TagMoveOutcome, json: bool) -> anyhow::Result<()> {
    let r = &out.record;
    if json {
        let v = serde_json::json!({
            "tag": r.tag,
            "digest": r.digest.to_string(),
            "commit": r.commit,
            "previous": out.previous.map(|d| d.to_string()),
            "moved": out.moved,
            "moves": r.history.len(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if !out.moved {
        outln!("{} already points at {}: nothing changed", r.tag, r.digest);
    } else {
        match out.previous {
            Some(p) => outln!("{}: {} -> {} (commit {})", r.tag, p, r.digest, r.commit),
            None => outln!("{}: created -> {} (commit {})", r.tag, r.digest, r.commit),
        }
    }
    Ok(())
}
