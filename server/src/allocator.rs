//! The C allocator's arenas, bounded to one per core. glibc gives every
//! thread that allocates an arena of its own until there are eight per
//! core, and an arena keeps what its threads freed: its trim threshold
//! rises with the largest block freed in it, and each thread's cache
//! holds small blocks besides. A server's blocking pool runs dozens of
//! threads (one per query in flight, one per store file operation of each
//! repository's follower), so a server of 100 repositories ended a load
//! of queries across all of them with 16 arenas of a few MiB each, most of
//! it free: RssAnon +31 MiB over the server of one repository, against
//! +4 MiB with one arena per core, and no slower (`shelf-bench repos`,
//! docs/benchmarks.md). The model's sessions allocate on threads of their
//! own, so they keep their arenas either way.

/// Bounds the allocator to one arena per core (at least 2) unless the
/// environment already chose (`MALLOC_ARENA_MAX`, or `arena_max` in
/// `GLIBC_TUNABLES`). Call it before the runtime starts its threads: a
/// thread keeps the arena it first allocated in. Returns the bound set, or
/// `None` when the environment chose or the C library is not glibc.
pub fn bound_arenas() -> Option<usize> {
    let chosen = std::env::var_os("MALLOC_ARENA_MAX").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc.arena_max"));
    if chosen {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    bound_arenas_to(cores.max(2))
}

/// Sets glibc's `M_ARENA_MAX` to `n` (the main arena included).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_arenas_to(n: usize) -> Option<usize> {
    let value = libc::c_int::try_from(n).ok()?;
    // SAFETY: mallopt only sets a parameter of the allocator; glibc takes
    // its own lock, so it may be called while other threads allocate.
    let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, value) } == 1;
    if !ok {
        tracing::warn!(
            arenas = n,
            "the C library refused to bound its arenas; memory freed by queries may stay with the process"
        );
        return None;
    }
    Some(n)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_arenas_to(_n: usize) -> Option<usize> {
    None
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use std::sync::{Arc, Barrier};

    /// The arenas glibc has made, from `malloc_info`'s XML (one `<heap
    /// nr=...>` per arena).
    fn arenas() -> usize {
        let mut buf: *mut libc::c_char = std::ptr::null_mut();
        let mut len: libc::size_t = 0;
        // SAFETY: open_memstream allocates the buffer and updates `buf` and
        // `len` on fclose; the buffer is read once, then freed.
        unsafe {
            let stream = libc::open_memstream(&mut buf, &mut len);
            assert!(!stream.is_null(), "open_memstream failed");
            assert_eq!(libc::malloc_info(0, stream), 0, "malloc_info failed");
            libc::fclose(stream);
            let xml = std::slice::from_raw_parts(buf.cast::<u8>(), len);
            let n = String::from_utf8_lossy(xml).matches("<heap nr=").count();
            libc::free(buf.cast());
            n
        }
    }

    /// Threads that each allocate while all the others are alive.
    fn allocate_on_threads(n: usize) {
        let barrier = Arc::new(Barrier::new(n));
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    let held = vec![i as u8; 64 << 10];
                    barrier.wait();
                    std::hint::black_box(held);
                })
            })
            .collect();
        for t in threads {
            t.join().expect("allocating thread");
        }
    }

    // Unbounded, glibc would give each of the twelve threads an arena of
    // its own (up to eight per core): bounded, they share two. (A test
    // runner that runs other tests in this process may have made arenas
    // before the bound; none is made after it.)
    #[test]
    fn twelve_threads_allocating_at_once_share_the_bounded_arenas() {
        let before = arenas();
        assert_eq!(super::bound_arenas_to(2), Some(2));
        allocate_on_threads(12);
        let made = arenas();
        assert!(
            made <= before.max(2),
            "{made} arenas for 12 threads with the bound at 2 ({before} before)"
        );
    }
}
