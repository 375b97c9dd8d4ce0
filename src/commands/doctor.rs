//! `shelf doctor`: is the embedding runtime there and the pinned one?

use std::process::ExitCode;

use shelf_embed::{Embedder, Runtime};

use crate::cli::DoctorArgs;

/// Prints one line per check; exits 1 if any failed. Never loads ONNX
/// Runtime unless every file checked out (a wrong library can abort).
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let runtime = match Runtime::locate(args.runtime.runtime.as_deref()) {
        Ok(rt) => rt,
        Err(e) => {
            println!("FAIL  {e}");
            return Ok(ExitCode::from(1));
        }
    };
    println!("ok    runtime directory {}", runtime.dir.display());
    let mut failed = 0;
    for check in runtime.check() {
        println!("{check}");
        failed += usize::from(check.result.is_err());
    }
    if failed == 0 && args.load {
        let started = std::time::Instant::now();
        match Embedder::load(&runtime, &super::embedder_options(&args.runtime))
            .and_then(|e| e.embed_query("shelf doctor"))
        {
            Ok(v) => println!(
                "ok    model loads and embeds ({} dimensions, {} ms)",
                v.len(),
                started.elapsed().as_millis()
            ),
            Err(e) => {
                println!("FAIL  {e}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        println!("{failed} check(s) failed");
        return Ok(ExitCode::from(1));
    }
    println!("all checks passed");
    Ok(ExitCode::SUCCESS)
}
