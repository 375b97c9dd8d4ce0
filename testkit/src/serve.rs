//! `shelf serve` as a child process for tests: started on a free loopback
//! port (`--listen 127.0.0.1:0`; the address is read from its log), its
//! stderr collected, stopped with SIGTERM or killed on drop.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::http;

/// A running server.
pub struct ServerProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    logs: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// Starts `shelf serve --bundle <bundle> --cache <cache> <extra>` (see
    /// [`ServerProcess::start`]).
    pub fn serve_bundle(
        shelf: &Path,
        bundle: &Path,
        cache: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let (bundle, cache) = (bundle.display().to_string(), cache.display().to_string());
        let mut args = vec!["--bundle", bundle.as_str(), "--cache", cache.as_str()];
        args.extend_from_slice(extra);
        Self::start(shelf, &args, env)
    }

    /// Starts `shelf serve <args> --listen 127.0.0.1:0` with `env`, and
    /// waits until it listens (not until it is ready). The address comes
    /// from its `info` log line, so `SHELF_LOG` must not hide that level.
    pub fn start(shelf: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(shelf);
        cmd.arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .env_remove("SHELF_RUNTIME")
            .env_remove("SHELF_SEARCH_TOKENS")
            .env_remove("SHELF_ADMIN_TOKEN")
            .env("SHELF_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        // If the test process dies without dropping this (abort, SIGKILL),
        // the kernel stops the server too: no server outlives its test.
        // SAFETY: prctl is async-signal-safe and touches no Rust state.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd.spawn().expect("shelf serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&logs);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let plain = strip_ansi(&line);
                if let Some(rest) = plain.split("listening on http://").nth(1) {
                    // Text and JSON log lines both: the address ends at the
                    // first character no address has.
                    let addr: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push(plain);
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a.parse().expect("a socket address in the log"),
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "shelf serve did not start listening ({status:?}); its log:\n{}",
                    logs.lock().unwrap().join("\n")
                );
            }
        };
        Self { child, addr, logs }
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    /// Its log once `ok` holds for it (lines are read on another thread,
    /// so a line written just now may not be here yet). Panics with the log
    /// if `ok` does not hold within `timeout`: waiting for a line is
    /// asserting it.
    pub fn logs_when(&self, timeout: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let logs = self.logs();
            if ok(&logs) {
                return logs;
            }
            if Instant::now() >= deadline {
                panic!(
                    "the server's log did not show what was expected within {timeout:?}:\n{logs}"
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `GET /readyz` answers 200 and returns its JSON.
    pub fn wait_ready(&self, timeout: Duration) -> serde_json::Value {
        self.wait_for("/readyz", timeout, |r| r.status == 200)
    }

    /// Polls `GET target` until `ok` holds for the response; returns its
    /// JSON. Panics with the server's log on timeout.
    pub fn wait_for(
        &self,
        target: &str,
        timeout: Duration,
        ok: impl Fn(&http::Response) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(r) = http::try_request(self.addr, "GET", target, &[], b"") {
                if ok(&r) {
                    return r.json();
                }
                last = Some(String::from_utf8_lossy(&r.body).into_owned());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "GET {target} did not reach the expected state in {timeout:?}; last answer: {last:?}\nserver log:\n{}",
            self.logs()
        );
    }

    /// Sends SIGTERM and waits for the exit (killing after `timeout`).
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the process to exit by itself (none after `timeout`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Removes terminal colour codes from a log line.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
