//! `shelf verify FILE`: check a bundle file end to end without unpacking it.

use std::process::ExitCode;

use anyhow::Context;
use shelf_formats::Digest;
use shelf_formats::bundle::{Limits, digest_from_file_name, verify_file};

use crate::cli::VerifyArgs;

/// Verifies digest, structure, manifest and every member hash. The expected
/// digest is `--digest`, else the `<hex>.tar.zst` file name when it is one.
pub fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let expected = match &args.digest {
        Some(d) => Some(d.parse::<Digest>()?),
        None => digest_from_file_name(&args.bundle),
    };
    let verified = verify_file(&args.bundle, expected.as_ref(), &Limits::default())
        .with_context(|| format!("verifying {}", args.bundle.display()))?;
    let m = &verified.manifest;
    if args.json {
        let out = serde_json::json!({
            "digest": verified.digest.to_string(),
            "size": verified.size,
            "digest_checked_against": expected.map(|d| d.to_string()),
            "manifest": m,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("ok  {}", verified.digest);
        println!(
            "    {} bytes, format {}.{}, {} members verified",
            verified.size,
            m.format_version,
            m.format_minor,
            m.members.len()
        );
        println!(
            "    {} @ {} ({} files, {} chunks, model {})",
            m.source.repository,
            m.source.commit,
            m.counts.files_indexed,
            m.counts.chunks,
            m.model.name
        );
        if expected.is_none() {
            println!("    (no expected digest given: pass --digest to pin it)");
        }
    }
    Ok(ExitCode::SUCCESS)
}
