//! `shelf push BUNDLE --store URL`: upload create-only, verify, record.

use std::process::ExitCode;

use crate::cli::PushArgs;
use crate::commands::{create_store, runtime};
use crate::output::outln;

/// Verifies the bundle, uploads it unless the store has it, verifies the
/// stored copy, and writes the commit record.
pub fn run(args: PushArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = create_store(&args.store).await?;
        let out = shelf_store::push_bundle(&store, &args.bundle).await?;
        let digest = out.bundle.digest;
        if args.json {
            let json = serde_json::json!({
                "digest": digest.to_string(),
                "uploaded": out.uploaded,
                "size": out.bundle.size,
                "commit": out.bundle.manifest.source.commit,
                "commit_record": out.commit_record,
                "store": store.describe(),
            });
            outln!("{}", serde_json::to_string_pretty(&json)?);
        } else if out.uploaded {
            outln!(
                "pushed {digest} ({} bytes) to {}",
                out.bundle.size,
                store.describe()
            );
        } else {
            outln!(
                "{digest} is already in {}: nothing uploaded",
                store.describe()
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
