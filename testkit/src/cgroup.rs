//! A memory limit for one process tree: a memory cgroup (v1, or v2 where
//! only the unified hierarchy is mounted), made by the test or benchmark
//! that needs it and removed when dropped. The faults test and
//! `shelf-bench limit` put `shelf serve` under the same kind of limit
//! through this one helper.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the cgroup v1 memory controller is mounted.
const V1_MEMORY: &str = "/sys/fs/cgroup/memory";
/// Where the unified (v2) hierarchy is mounted on a host without v1.
const V2_ROOT: &str = "/sys/fs/cgroup";

/// Which interface the group speaks: the files differ, the meaning not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// A memory cgroup of our own, removed on drop.
#[derive(Debug)]
pub struct MemoryGroup {
    dir: PathBuf,
    version: Version,
}

impl MemoryGroup {
    /// Makes the group `<name>-<our pid>` under the v1 memory controller,
    /// or under the unified hierarchy where v1 is not mounted (GitHub's
    /// Ubuntu runners). Fails with what to do when neither can be written.
    pub fn create(name: &str) -> io::Result<Self> {
        let leaf = format!("{name}-{}", std::process::id());
        let (version, dir) = if Path::new(V1_MEMORY).join("memory.limit_in_bytes").is_file() {
            (Version::V1, Path::new(V1_MEMORY).join(leaf))
        } else if Path::new(V2_ROOT).join("cgroup.controllers").is_file() {
            // The memory controller must be enabled for the root's
            // children; systemd hosts already have it.
            let control = Path::new(V2_ROOT).join("cgroup.subtree_control");
            if !std::fs::read_to_string(&control)?
                .split_whitespace()
                .any(|c| c == "memory")
            {
                std::fs::write(&control, "+memory").map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!(
                            "enabling the memory controller in {}: {e}",
                            control.display()
                        ),
                    )
                })?;
            }
            (Version::V2, Path::new(V2_ROOT).join(leaf))
        } else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "no memory cgroup controller: neither {V1_MEMORY} (v1) nor a unified hierarchy at {V2_ROOT} (v2) is mounted"
                ),
            ));
        };
        std::fs::create_dir(&dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot make the memory cgroup {} ({e}): this needs root",
                    dir.display()
                ),
            )
        })?;
        Ok(Self { dir, version })
    }

    /// The group's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Limits the group's memory (anonymous and page cache together) to
    /// `bytes`.
    pub fn limit(&self, bytes: u64) -> io::Result<()> {
        let file = match self.version {
            Version::V1 => "memory.limit_in_bytes",
            Version::V2 => "memory.max",
        };
        self.write(file, &bytes.to_string())
    }

    /// A shell script in `dir` that joins the group, then runs `program`
    /// with its arguments: the process, and everything it starts, counts
    /// against the group from its first byte.
    pub fn wrap(&self, program: &Path, dir: &Path) -> io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let name = |p: &Path| {
            p.file_name()
                .map_or("x".into(), |n| n.to_string_lossy().into_owned())
        };
        let wrapper = dir.join(format!("{}-in-{}", name(program), name(&self.dir)));
        // Exit 97 when joining fails, so a run outside the group cannot
        // pass for one inside it.
        let script = format!(
            "#!/bin/sh\necho $$ > {} || exit 97\nexec {} \"$@\"\n",
            shell_quoted(&self.dir.join("cgroup.procs"))?,
            shell_quoted(program)?
        );
        std::fs::write(&wrapper, script)?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        Ok(wrapper)
    }

    /// The most memory the group has used at once, bytes.
    pub fn peak_bytes(&self) -> io::Result<u64> {
        match self.version {
            Version::V1 => self.number("memory.max_usage_in_bytes"),
            // memory.peak: Linux 5.19 and later.
            Version::V2 => self.number("memory.peak"),
        }
    }

    /// How many times the group's usage hit its limit (and the kernel
    /// reclaimed from the group instead of letting it grow): more than 0
    /// shows the limit bit.
    pub fn limit_hits(&self) -> io::Result<u64> {
        match self.version {
            Version::V1 => self.number("memory.failcnt"),
            Version::V2 => self.counter("memory.events", "max"),
        }
    }

    /// How many processes the kernel's OOM killer killed in the group.
    pub fn oom_kills(&self) -> io::Result<u64> {
        // A kernel without the counter (v1 before 4.13) cannot say, and a
        // missing count must not read as none.
        match self.version {
            Version::V1 => self.counter("memory.oom_control", "oom_kill"),
            Version::V2 => self.counter("memory.events", "oom_kill"),
        }
    }

    /// A counter of the group's `memory.stat` (`pgmajfault`, ...).
    pub fn stat(&self, key: &str) -> io::Result<u64> {
        self.counter("memory.stat", key)
    }

    /// The value of the line `<key> <number>` of one of the group's files.
    fn counter(&self, file: &str, key: &str) -> io::Result<u64> {
        let text = self.read(file)?;
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "no {key} in {}/{file}: {text:?}",
                    self.dir.display()
                ))
            })
    }

    fn number(&self, file: &str) -> io::Result<u64> {
        let text = self.read(file)?;
        text.trim().parse().map_err(|e| {
            io::Error::other(format!(
                "{}/{file} is not a number ({e}): {text:?}",
                self.dir.display()
            ))
        })
    }

    fn read(&self, file: &str) -> io::Result<String> {
        let path = self.dir.join(file);
        std::fs::read_to_string(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
    }

    fn write(&self, file: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.dir.join(file), value).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("writing {value} to {}/{file}: {e}", self.dir.display()),
            )
        })
    }
}

impl Drop for MemoryGroup {
    fn drop(&mut self) {
        // Empty by now (its processes were stopped); retried briefly while
        // the kernel finishes their exit.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "could not remove the memory cgroup {} (a process still in it?): rmdir it by hand",
            self.dir.display()
        );
    }
}

/// `path` in single quotes for sh; refused if it is not UTF-8 (the
/// script would run another path).
fn shell_quoted(path: &Path) -> io::Result<String> {
    let text = path.to_str().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} is not UTF-8: it cannot be written into a script",
                path.display()
            ),
        )
    })?;
    Ok(format!("'{}'", text.replace('\'', r"'\''")))
}

/// Drops the page cache of every file in `dir` (written and closed, and
/// mapped by no one by then) and checks that none of it is left, so the
/// next reader reads them again: in cgroup v1 a cached page stays charged
/// to the group that read it first, and a process put under a limit after
/// another read its files would otherwise be given them outside its limit.
/// Returns the bytes of the files.
pub fn drop_cached_pages(dir: &Path) -> io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        bytes += len;
        // Dirty pages are not dropped: written back first.
        file.sync_data()?;
        // SAFETY: posix_fadvise only reads the descriptor, which is open.
        let err = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if err != 0 {
            let e = io::Error::from_raw_os_error(err);
            return Err(io::Error::new(
                e.kind(),
                format!("dropping the cached pages of {}: {e}", path.display()),
            ));
        }
        let resident = resident_pages(&file, len)?;
        if resident > 0 {
            return Err(io::Error::other(format!(
                "{resident} pages of {} are still cached after dropping them (is it mapped by a running process?)",
                path.display()
            )));
        }
    }
    Ok(bytes)
}

/// Pages of `file` (of `len` bytes) in the page cache, from `mincore` on a
/// read-only map of it.
fn resident_pages(file: &std::fs::File, len: u64) -> io::Result<usize> {
    use std::os::fd::AsRawFd as _;
    let Ok(len) = usize::try_from(len) else {
        return Err(io::Error::other("a file larger than the address space"));
    };
    if len == 0 {
        return Ok(0);
    }
    // SAFETY: a fresh shared read-only map of an open file, unmapped below;
    // nothing reads through it (mincore only asks the kernel about it).
    let map = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    if map == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: sysconf only reads a configuration value.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let mut vec = vec![0u8; len.div_ceil(page)];
    // SAFETY: `map` is a mapping of `len` bytes and `vec` has one byte per
    // page of it, as mincore requires.
    let rc = unsafe { libc::mincore(map, len, vec.as_mut_ptr()) };
    let err = io::Error::last_os_error();
    // SAFETY: unmaps exactly the mapping made above.
    unsafe { libc::munmap(map, len) };
    if rc != 0 {
        return Err(err);
    }
    Ok(vec.iter().filter(|&&b| b & 1 == 1).count())
}
