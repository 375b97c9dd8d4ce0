//! `shelf gc --store URL --keep N [--grace 1h] [--dry-run]`.

use std::process::ExitCode;

use shelf_store::gc;

use crate::cli::GcArgs;
use crate::commands::{open_store, runtime};
use crate::output::outln;

/// Plans, prints, and (without --dry-run) deletes.
pub fn run(args: GcArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        let plan = gc::plan(&store, args.keep, args.grace).await?;
        let deleted = if args.dry_run {
            Vec::new()
        } else {
            gc::execute(&store, &plan, args.keep).await?
        };
        if args.json {
            let v = serde_json::json!({
                "dry_run": args.dry_run,
                "planned": plan.delete.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
                "deleted": deleted.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "kept_by_tags": plan.kept_by_tags,
                "kept_by_grace": plan.kept_by_grace,
                "leftovers": plan.leftovers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            });
            outln!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(ExitCode::SUCCESS);
        }
        let verb = if args.dry_run { "would delete" } else { "deleted" };
        for (d, size) in &plan.delete {
            if args.dry_run || deleted.contains(d) {
                outln!("{verb} {d} ({size} bytes)");
            }
        }
        outln!(
            "{} bundle(s) {verb}; kept {} referenced by tags (keep {}), {} inside the {} grace period",
            if args.dry_run { plan.delete.len() } else { deleted.len() },
            plan.kept_by_tags,
            args.keep,
            plan.kept_by_grace,
            humantime::format_duration(args.grace)
        );
        if !plan.leftovers.is_empty() {
            outln!(
                "{} leftover temporary file(s) of interrupted writes {}",
                plan.leftovers.len(),
                if args.dry_run { "would be removed" } else { "removed" }
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
