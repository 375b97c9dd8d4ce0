//! A memory limit for one process tree: a cgroup v1 memory group, made by
//! the test or benchmark that needs it and removed when dropped. The
//! faults test and `shelf-bench limit` put `shelf serve` under the same
//! kind of limit through this one helper.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the cgroup v1 memory controller is mounted (../shared/ENV.md:
/// writable as root here).
const MEMORY_CONTROLLER: &str = "/sys/fs/cgroup/memory";

/// A memory cgroup of our own, removed on drop.
#[derive(Debug)]
pub struct MemoryGroup {
    dir: PathBuf,
}

impl MemoryGroup {
    /// Makes the group `<name>-<our pid>`. Fails with what to do when the
    /// controller is missing or not writable (not root, cgroup v2 only).
    pub fn create(name: &str) -> io::Result<Self> {
        let dir = Path::new(MEMORY_CONTROLLER).join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot make the memory cgroup {} ({e}): this needs root and the cgroup v1 memory controller mounted at {MEMORY_CONTROLLER}",
                    dir.display()
                ),
            )
        })?;
        Ok(Self { dir })
    }

    /// The group's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Limits the group's memory (anonymous and page cache together) to
    /// `bytes`.
    pub fn limit(&self, bytes: u64) -> io::Result<()> {
        self.write("memory.limit_in_bytes", &bytes.to_string())
    }

    /// A shell script in `dir` that joins the group, then runs `program`
    /// with its arguments: the process, and everything it starts, counts
    /// against the group from its first byte.
    pub fn wrap(&self, program: &Path, dir: &Path) -> io::Result<PathBuf> {
        use std::os::unix::fs::PermissionsExt as _;
        let name = program
            .file_name()
            .map_or("program".into(), |n| n.to_string_lossy());
        let wrapper = dir.join(format!(
            "{name}-in-{}",
            self.dir
                .file_name()
                .map_or("group".into(), |n| n.to_string_lossy())
        ));
        // Exit 97 when joining fails, so a run outside the group cannot
        // pass for one inside it.
        let script = format!(
            "#!/bin/sh\necho $$ > '{}/cgroup.procs' || exit 97\nexec '{}' \"$@\"\n",
            self.dir.display(),
            program.display()
        );
        std::fs::write(&wrapper, script)?;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))?;
        Ok(wrapper)
    }

    /// The most memory the group has used at once, bytes.
    pub fn peak_bytes(&self) -> io::Result<u64> {
        self.number("memory.max_usage_in_bytes")
    }

    /// How many processes the kernel's OOM killer killed in the group.
    pub fn oom_kills(&self) -> io::Result<u64> {
        // A kernel without the counter (before 4.13) cannot say, and a
        // missing count must not read as none.
        let control = self.read("memory.oom_control")?;
        control
            .lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!(
                    "no oom_kill count in {}/memory.oom_control: {control:?}",
                    self.dir.display()
                ))
            })
    }

    /// A counter of the group's `memory.stat` (`pgmajfault`, `cache`, ...).
    pub fn stat(&self, key: &str) -> io::Result<u64> {
        self.read("memory.stat")?
            .lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::other(format!("no {key} in {}/memory.stat", self.dir.display()))
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
        std::fs::read_to_string(self.dir.join(file))
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

/// Drops the page cache of every file in `dir` (not mapped by anyone by
/// then), so the next reader faults them in again: in cgroup v1 a cached
/// page stays charged to the group that read it first, and a process put
/// under a limit after another read its files would otherwise be given
/// them outside its limit. Returns the bytes of the files.
pub fn drop_cached_pages(dir: &Path) -> io::Result<u64> {
    use std::os::fd::AsRawFd as _;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path.is_file() {
            continue;
        }
        let file = std::fs::File::open(&path)?;
        bytes += file.metadata()?.len();
        // SAFETY: posix_fadvise only reads the descriptor, which is open.
        let err = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
        if err != 0 {
            let e = io::Error::from_raw_os_error(err);
            return Err(io::Error::new(
                e.kind(),
                format!("dropping the cached pages of {}: {e}", path.display()),
            ));
        }
    }
    Ok(bytes)
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
    }
}
