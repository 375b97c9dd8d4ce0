//! `shelf tags --store URL [--history NAME] [--json]`.

use std::process::ExitCode;

use shelf_store::StoreError;
use shelf_store::tags::{list_tags, read_tag};

use crate::cli::TagsArgs;
use crate::commands::{age, open_store, runtime};
use crate::output::outln;

/// Lists tags (name, digest, commit, age, moved by), or one tag's history.
pub fn run(args: TagsArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async {
        let store = open_store(&args.store).await?;
        if let Some(name) = &args.history {
            let Some((record, _)) = read_tag(&store, name).await? else {
                return Err(StoreError::NoSuchTag {
                    store: store.describe(),
                    tag: name.clone(),
                }
                .into());
            };
            if args.json {
                outln!("{}", serde_json::to_string_pretty(&record)?);
                return Ok(ExitCode::SUCCESS);
            }
            outln!(
                "{:<22} {:<73} {:<14} {:<10} by",
                "when",
                "to",
                "commit",
                "reason"
            );
            for m in &record.history {
                outln!(
                    "{:<22} {:<73} {:<14} {:<10} {}",
                    m.at,
                    m.to.to_string(),
                    m.commit.get(..12).unwrap_or(&m.commit),
                    m.reason.as_deref().unwrap_or("-"),
                    m.by
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
        let tags = list_tags(&store).await?;
        if args.json {
            outln!("{}", serde_json::to_string_pretty(&tags)?);
            return Ok(ExitCode::SUCCESS);
        }
        if tags.is_empty() {
            outln!("no tags in {}", store.describe());
            return Ok(ExitCode::SUCCESS);
        }
        outln!(
            "{:<20} {:<73} {:<14} {:>6}  set by",
            "tag",
            "digest",
            "commit",
            "age"
        );
        for t in &tags {
            outln!(
                "{:<20} {:<73} {:<14} {:>6}  {}",
                t.tag,
                t.digest.to_string(),
                t.commit.get(..12).unwrap_or(&t.commit),
                age(&t.created_at),
                t.set_by
            );
        }
        Ok(ExitCode::SUCCESS)
    })
}
