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
        let outcome = if args.dry_run {
            gc::GcOutcome::default()
        } else {
            gc::execute(&store, &plan, args.keep).await?
        };
        let deleted = &outcome.bundles;
        if args.json {
            let v = serde_json::json!({
                "dry_run": args.dry_run,
                "planned": plan.delete.iter().map(|(d, _)| d.to_string()).collect::<Vec<_>>(),
                "deleted": deleted.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
                "kept_by_tags": plan.kept_by_tags,
                "kept_by_grace": plan.kept_by_grace,
                "leftovers": plan.leftovers.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                "cache": {
                    "planned_packs": plan.packs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                    "deleted_packs": outcome.packs,
                    "deleted_uses_records": outcome.uses_records,
                    "planned_uses_records": plan.uses_records,
                    "packs_kept_by_bundles": plan.packs_kept_by_bundles,
                    "packs_kept_by_grace": plan.packs_kept_by_grace,
                },
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
        for (key, size) in &plan.packs {
            if args.dry_run || outcome.packs.contains(key) {
                outln!("{verb} {key} ({size} bytes)");
            }
        }
        if !plan.packs.is_empty() || plan.packs_kept_by_bundles + plan.packs_kept_by_grace > 0 {
            outln!(
                "{} embedding-cache pack(s) {verb}; kept {} that retained bundles use, {} inside the grace period",
                if args.dry_run { plan.packs.len() } else { outcome.packs.len() },
                plan.packs_kept_by_bundles,
                plan.packs_kept_by_grace
            );
        }
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
