//! A real browser for tests and benchmarks: Debian's headless Chromium
//! driven through `chromedriver` over WebDriver's JSON protocol with a
//! plain TCP client (no WebDriver crate to compile). Like the other
//! fixtures it panics, saying what went wrong, rather than returning
//! errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A WebDriver session in Debian's headless Chromium, driven over
/// chromedriver's JSON wire protocol with a plain TCP client (no
/// WebDriver crate to compile). chromedriver and its browser stop on drop.
pub struct Browser {
    driver: std::process::Child,
    addr: std::net::SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

impl Browser {
    /// Starts chromedriver on a free port and opens a session; fails,
    /// saying what to install, when Chromium or its driver is missing.
    pub fn start() -> Self {
        let which = |tool: &str| {
            std::process::Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        };
        let missing = "run scripts/setup-test-services (Debian's chromium and chromium-driver)";
        // Debian's chromium; GitHub's runners have Google Chrome instead.
        let binary = which("chromium")
            .or_else(|| which("google-chrome"))
            .unwrap_or_else(|| panic!("no chromium or google-chrome on PATH: {missing}"));
        assert!(
            which("chromedriver").is_some(),
            "no chromedriver on PATH: {missing}"
        );
        let port = crate::free_port();
        let driver = std::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err()
            || webdriver_request(addr, "GET", "/status", b"").0 != 200
        {
            assert!(
                std::time::Instant::now() < deadline,
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": binary,
                // What Chromium needs headless as root (docs/web.md).
                "args": ["--headless", "--no-sandbox", "--disable-gpu",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display())]
            },
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let mut b = Self {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let opened = b.call("POST", "/session", &caps);
        b.session = opened["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {opened}"))
            .to_string();
        b
    }

    /// One WebDriver command; its `value`, or a panic with the error.
    pub fn call(&self, method: &str, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let target = if path == "/session" {
            path.to_string()
        } else {
            format!("/session/{}{path}", self.session)
        };
        let bytes = if method == "GET" {
            Vec::new()
        } else {
            serde_json::to_vec(body).unwrap()
        };
        let (status, body) = webdriver_request(self.addr, method, &target, &bytes);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{method} {target}: not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            )
        });
        assert_eq!(status, 200, "{method} {target}: {v}");
        v["value"].clone()
    }

    /// Navigates to `url` (WebDriver waits for the page to load).
    pub fn open(&self, url: &str) {
        self.call("POST", "/url", &serde_json::json!({ "url": url }));
    }

    /// Runs `script` in the page; what it returns.
    pub fn js(&self, script: &str) -> serde_json::Value {
        self.call(
            "POST",
            "/execute/sync",
            &serde_json::json!({ "script": script, "args": [] }),
        )
    }

    /// The reference of the first element matching `css`.
    pub fn element(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            "/element",
            &serde_json::json!({ "using": "css selector", "value": css }),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no '{css}': {v}"))
            .to_string()
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.call(
            "POST",
            &format!("/element/{id}/click"),
            &serde_json::json!({}),
        );
    }

    /// Types into the focused element (what a person's keys do).
    pub fn keys(&self, text: &str) {
        let actions: Vec<serde_json::Value> = text
            .chars()
            .flat_map(|c| {
                [
                    serde_json::json!({"type": "keyDown", "value": c.to_string()}),
                    serde_json::json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            "POST",
            "/actions",
            &serde_json::json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]}),
        );
    }

    /// Waits up to 30 s until `script` returns true; `what` names it in
    /// the failure.
    pub fn wait_for(&self, what: &str, script: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.js(script) != true {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: not so after 30 s at {}",
                self.js("return location.href")
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Opens `url` as a new document (after `about:blank`) and returns its
    /// navigation start to load event end, in ms, as the browser measured
    /// it.
    pub fn load_ms(&self, url: &str) -> f64 {
        self.open("about:blank");
        self.open(url);
        let timing = "const n = performance.getEntriesByType('navigation')[0]";
        self.wait_for(
            &format!("{url} loaded"),
            &format!("{timing}; return !!n && n.loadEventEnd > 0"),
        );
        let ms = self.js(&format!("{timing}; return n.loadEventEnd - n.startTime"));
        ms.as_f64()
            .unwrap_or_else(|| panic!("no navigation timing: {ms}"))
    }

    /// Saves a screenshot as `<dir>/<name>.png`.
    pub fn screenshot(&self, dir: &Path, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", &serde_json::Value::Null);
        let png = base64_decode(b64.as_str().expect("a screenshot"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// The browser's console errors since the last call (CSP violations
    /// included).
    pub fn console_errors(&self) -> Vec<String> {
        let logs = self.call("POST", "/se/log", &serde_json::json!({"type": "browser"}));
        logs.as_array()
            .into_iter()
            .flatten()
            .filter(|l| l["level"] == "SEVERE")
            .map(|l| l["message"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(|| {
                webdriver_request(
                    self.addr,
                    "DELETE",
                    &format!("/session/{}", self.session),
                    b"",
                )
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One request to chromedriver, read up to its `Content-Length`:
/// chromedriver keeps the connection open whatever the request says, so
/// reading to the end would wait for the read timeout.
fn webdriver_request(
    addr: std::net::SocketAddr,
    method: &str,
    target: &str,
    body: &[u8],
) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).expect("connect to chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64 << 10];
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            let status: u16 = head
                .split(' ')
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or_else(|| panic!("a bad status line from chromedriver: {head}"));
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no Content-Length from chromedriver: {head}"));
            if got.len() >= end + 4 + length {
                return (status, got[end + 4..end + 4 + length].to_vec());
            }
        }
        let n = s
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{method} {target}: reading chromedriver's answer: {e}"));
        assert!(
            n > 0,
            "{method} {target}: chromedriver closed the connection early"
        );
        got.extend_from_slice(&buf[..n]);
    }
}

fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let clean: Vec<u8> = text.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(value(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}
