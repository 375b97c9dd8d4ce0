//! Results on stdout. A reader that stops reading (`shelf tags --json |
//! head -1`) closes the pipe; the command then ends quietly with exit 0
//! instead of panicking in `println!`. SIGPIPE stays ignored (Rust's
//! default), because the same process also writes to network sockets,
//! where a closed peer must be an error, not a signal that kills it.

use std::io::Write;

/// Writes one line of results to stdout (use through [`outln!`]).
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write the results to stdout: {e}");
            std::process::exit(1);
        }
    }
}

/// `println!` for results: see [`line`].
macro_rules! outln {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use outln;
