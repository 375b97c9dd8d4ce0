//! `shelf doctor`: is the embedding runtime there and the pinned one?

use std::process::ExitCode;

use shelf_embed::{Embedder, Runtime};

use crate::cli::DoctorArgs;
use crate::output::outln;

/// Prints one line per check; exits 1 if any failed. Never loads ONNX
/// Runtime unless every file checked out (a wrong library can abort).
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let runtime = match Runtime::locate(args.runtime.runtime.as_deref()) {
        Ok(rt) => rt,
        Err(e) => {
            outln!("FAIL  {e}");
            return Ok(ExitCode::from(1));
        }
    };
    outln!("ok    runtime directory {}", runtime.dir.display());
    let mut failed = 0;
    for check in runtime.check() {
        outln!("{check}");
        failed += usize::from(check.result.is_err());
    }
    if failed == 0 && args.load {
        let started = std::time::Instant::now();
        match Embedder::load(&runtime, &super::embedder_options(&args.runtime))
            .and_then(|e| e.embed_query("shelf doctor"))
        {
            Ok(v) => outln!(
                "ok    model loads and embeds ({} dimensions, {} ms)",
                v.len(),
                started.elapsed().as_millis()
            ),
            Err(e) => {
                outln!("FAIL  {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        outln!("{failed} check(s) failed");
        return Ok(ExitCode::from(1));
    }
    outln!("all checks passed");
    Ok(ExitCode::SUCCESS)
}
