//! `shelf rollback NAME [--to TARGET | --steps N] --store URL`.

use std::process::ExitCode;

use shelf_store::tags::{RollbackTarget, rollback};

use crate::cli::RollbackArgs;
use crate::commands::tag::print_move;
use crate::commands::{mover, open_store, runtime};

/// Moves the tag back in its history (or to a named target), conditional on
/// it not moving meanwhile. Seconds; nothing is rebuilt.
pub fn run(args: RollbackArgs) -> anyhow::Result<ExitCode> {
    let target = match &args.to {
        Some(t) => RollbackTarget::To(t.clone()),
        None => RollbackTarget::Steps(args.steps),
    };
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let out = rollback(&store, &args.name, &target, &mover(args.by.by.clone())).await?;
        print_move(&out, args.json)?;
        Ok(ExitCode::SUCCESS)
    })
}
