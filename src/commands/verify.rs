//! `shelf verify FILE` or `shelf verify DIGEST|TAG --store URL`: check a
//! bundle end to end.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use shelf_formats::Digest;
use shelf_formats::bundle::{Limits, VerifiedBundle, digest_from_file_name, verify_file};

use crate::cli::VerifyArgs;
use crate::commands::{open_url, runtime};
use crate::output::outln;

/// Verifies digest, structure, manifest and every member hash. A file's
/// expected digest is `--digest`-free: its `<hex>.tar.zst` name when it has
/// one. A store's bundle is downloaded to a temp dir and checked against
/// the digest it is stored under.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // A file on disk is a file, even when SHELF_STORE is set.
    let store = match &args.store {
        Some(url) => Some(url.clone()),
        None if PathBuf::from(&args.bundle).is_file() => None,
        None => super::store_or_env(&None),
    };
    let (verified, expected, origin) = match &store {
        None => {
            let path = PathBuf::from(&args.bundle);
            let expected = digest_from_file_name(&path);
            let v = verify_file(&path, expected.as_ref(), &Limits::default())
                .with_context(|| format!("verifying {}", path.display()))?;
            (v, expected, path.display().to_string())
        }
        Some(url) => runtime()?.block_on(async {
            let store = open_url(url, &args.s3).await?;
            let digest = shelf_store::tags::resolve_target(&store, &args.bundle).await?;
            let dir = tempfile::Builder::new().prefix("shelf-verify-").tempdir()?;
            let path = shelf_store::fetch_bundle(&store, &digest, dir.path())
                .await
                .with_context(|| format!("verifying {digest} in {}", store.describe()))?;
            let v = verify(&path, &digest)?;
            anyhow::Ok((v, Some(digest), store.describe()))
        })?,
    };
    let m = &verified.manifest;
    if args.json {
        let out = serde_json::json!({
            "digest": verified.digest.to_string(),
            "size": verified.size,
            "digest_checked_against": expected.map(|d| d.to_string()),
            "origin": origin,
            "manifest": m,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        outln!("ok  {} ({origin})", verified.digest);
        outln!(
            "    {} bytes, format {}.{}, {} members verified",
            verified.size,
            m.format_version,
            m.format_minor,
            m.members.len()
        );
        outln!(
            "    {} @ {} ({} files, {} chunks, model {})",
            m.source.repository,
            m.source.commit,
            m.counts.files_indexed,
            m.counts.chunks,
            m.model.name
        );
        if expected.is_none() {
            outln!("    (the file name carries no digest: nothing to compare the digest with)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn verify(path: &Path, digest: &Digest) -> anyhow::Result<VerifiedBundle> {
    Ok(verify_file(path, Some(digest), &Limits::default())?)
}
