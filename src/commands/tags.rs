//! `shelf tags --store URL [--history NAME] [--json]`, or
//! `shelf tags --store-root ROOT`: every repository's tags.

use std::process::ExitCode;

use serde::Serialize;
use shelf_formats::tag::TagRecord;
use shelf_store::tags::{list_tags, read_tag};
use shelf_store::{Store, StoreError};

use crate::cli::TagsArgs;
use crate::commands::{STORE_ENV, age, open_url, runtime, store_or_env};
use crate::output::outln;

/// Children of a root listed at most, as `shelf serve` lists them.
const ROOT_LISTING_LIMIT: usize = 10_000;

/// Lists tags (name, digest, commit, age, moved by), or one tag's history.
pub fn run(args: TagsArgs) -> anyhow::Result<ExitCode> {
    if let Some(root) = &args.store_root {
        return runtime()?.block_on(root_tags(root, &args));
    }
    let Some(url) = store_or_env(&args.store) else {
        anyhow::bail!("name the store: --store URL (or ${STORE_ENV}), or --store-root ROOT");
    };
    runtime()?.block_on(async {
        let store = open_url(&url, &args.s3).await?;
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
        print_table(tags.iter().map(|t| ("", t)), false);
        Ok(ExitCode::SUCCESS)
    })
}

/// One repository of a root and its tags, as `--json` prints it.
#[derive(Debug, Serialize)]
struct RepositoryTags {
    repo: String,
    tags: Vec<TagRecord>,
}

/// Every child of `root` that is a store, by name, with its tags; children
/// whose names are not valid repository names are said and skipped, as the
/// server skips them.
async fn root_tags(root_url: &str, args: &TagsArgs) -> anyhow::Result<ExitCode> {
    let root = open_url(root_url, &args.s3).await?;
    let mut repos = Vec::new();
    for name in root.children(ROOT_LISTING_LIMIT).await? {
        let child: Store = match root.child(&name) {
            Ok(child) => child,
            Err(e) => {
                tracing::warn!(root = %root.describe(), child = %name, "skipped: {e}");
                continue;
            }
        };
        if !child.is_store().await? {
            continue;
        }
        let tags = list_tags(&child).await?;
        repos.push(RepositoryTags { repo: name, tags });
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&repos)?);
        return Ok(ExitCode::SUCCESS);
    }
    if repos.is_empty() {
        outln!("no repositories in {}", root.describe());
        return Ok(ExitCode::SUCCESS);
    }
    print_table(
        repos
            .iter()
            .flat_map(|r| r.tags.iter().map(|t| (r.repo.as_str(), t))),
        true,
    );
    Ok(ExitCode::SUCCESS)
}

/// Tags as a table, with the repository first when there are several.
fn print_table<'a>(rows: impl Iterator<Item = (&'a str, &'a TagRecord)>, with_repo: bool) {
    let repo_col = |s: &str| {
        if with_repo {
            format!("{s:<24} ")
        } else {
            String::new()
        }
    };
    outln!(
        "{}{:<20} {:<73} {:<14} {:>6}  set by",
        repo_col("repo"),
        "tag",
        "digest",
        "commit",
        "age"
    );
    for (repo, t) in rows {
        outln!(
            "{}{:<20} {:<73} {:<14} {:>6}  {}",
            repo_col(repo),
            t.tag,
            t.digest.to_string(),
            t.commit.get(..12).unwrap_or(&t.commit),
            age(&t.created_at),
            t.set_by
        );
    }
}
