//! Peak memory of the builds, from the kernel's accounting of waited-for
//! children: no sampling, so a short spike is not missed.

use anyhow::{Result, bail};

/// The largest resident set size of any child process waited for so far,
/// in KiB (`ru_maxrss` is in KiB on Linux). Includes the `git` processes
/// that made the repository, which are far smaller than a build.
pub fn children_peak_kib() -> Result<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a whole `rusage` into the pointer it is given,
    // which points at enough zeroed, writable memory for one.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    if rc != 0 {
        bail!(
            "getrusage(RUSAGE_CHILDREN) failed: {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: initialised by the successful call above (and zeroed before).
    let usage = unsafe { usage.assume_init() };
    Ok(u64::try_from(usage.ru_maxrss).unwrap_or(0))
}
