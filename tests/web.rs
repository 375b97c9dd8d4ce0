//! The web pages (docs/web.md) of a real `shelf serve`, asserted on their
//! HTML (needles, no browser): every page renders from real bundles, a
//! file named and written as markup renders inert, every page carries the
//! CSP, a scoped token sees only its repositories on every page, and
//! sign-in turns a token into a strict cookie; and the same in a real
//! browser (its WebDriver client is `shelf_testkit::browser`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shelf_testkit::browser::Browser;
use shelf_testkit::cli::{self, Built};
use shelf_testkit::http::{self, Response};
use shelf_testkit::serve::ServerProcess;
use shelf_testkit::store::StoreArgs;
use shelf_testkit::{GitRepo, sample_repo};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");
const READY: Duration = Duration::from_secs(90);
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
/// A file whose name and text are markup: it must render as text.
const XSS_PATH: &str = "src/<img src=x onerror=alert(1)>.rs";
const XSS_TEXT: &str = "// <script>alert(\"xss\")</script>\n/// Shows a banner.\npub fn evil_banner() -> &'static str {\n    \"<img src=x onerror=alert(2)>\"\n}\n";
const ALL_TOKEN: &str = "web-all-token-0123456789abcdef";
const API_TOKEN: &str = "web-api-token-0123456789abcdef";

/// A store root with two repositories: `api` (the sample repository plus
/// the markup file, tagged twice so its tag has a history) and `secret`.
struct Site {
    _t: tempfile::TempDir,
    dir: PathBuf,
    root: StoreArgs,
    /// The first and second builds of `api`.
    api: (Built, Built),
}

fn shelf() -> &'static Path {
    Path::new(SHELF)
}

impl Site {
    /// Builds, pushes and tags both repositories.
    fn new() -> Self {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().to_path_buf();
        let root = StoreArgs {
            url: dir.join("root").display().to_string(),
            extra: vec![],
            env: vec![],
        };
        std::fs::create_dir_all(&root.url).unwrap();
        let api = sample_repo();
        api.write(XSS_PATH, XSS_TEXT);
        api.commit("a file named as markup");
        let first = Self::publish(&root, &dir, "api", &api, "1");
        let long: String = (1..=5000)
            .map(|i| format!("pub const LINE_{i}: u32 = {i};\n"))
            .collect();
        api.write("src/long.rs", long);
        api.commit("a long file");
        let second = Self::publish(&root, &dir, "api", &api, "2");
        let secret = GitRepo::new();
        secret.write(
            "payroll.md",
            "# Payroll\n\nSalaries are paid on the last day of the month.\n",
        );
        secret.commit("secret");
        Self::publish(&root, &dir, "secret", &secret, "1");
        Self {
            _t: t,
            dir,
            root,
            api: (first, second),
        }
    }

    fn publish(root: &StoreArgs, dir: &Path, name: &str, repo: &GitRepo, n: &str) -> Built {
        let built = cli::build(shelf(), repo, &dir.join("built").join(name).join(n));
        let store = root.child(name);
        store.push(shelf(), &built.path);
        store.tag(shelf(), "production", &built.digest);
        built
    }

    /// `shelf serve --store-root … --follow production` with a tokens file
    /// (when `tokens`) and `extra`, ready once both repositories are live.
    fn serve(&self, tokens: bool, extra: &[&str]) -> ServerProcess {
        let file = self.dir.join("tokens");
        std::fs::write(&file, format!("{ALL_TOKEN}\n{API_TOKEN} api\n")).unwrap();
        let cache = self
            .dir
            .join(format!("cache-{}", extra.len() + usize::from(tokens)));
        let mut args: Vec<String> = [
            "--store-root",
            &self.root.url,
            "--follow",
            "production",
            "--cache",
            &cache.display().to_string(),
        ]
        .map(String::from)
        .to_vec();
        if tokens {
            args.push("--search-tokens-file".into());
            args.push(file.display().to_string());
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = ServerProcess::start(shelf(), &args, &[]);
        let auth = format!("Bearer {ALL_TOKEN}");
        let deadline = std::time::Instant::now() + READY;
        loop {
            let r = http::request(
                server.addr,
                "GET",
                "/v1/repos",
                &[("Authorization", &auth)],
                b"",
            );
            let live = r.status == 200
                && r.json()["repos"]
                    .as_array()
                    .is_some_and(|l| l.len() == 2 && l.iter().all(|e| e["live"].is_object()));
            if live {
                return server;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "both repositories not live in time: {}\n{}",
                String::from_utf8_lossy(&r.body),
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn get(server: &ServerProcess, target: &str, headers: &[(&str, &str)]) -> (Response, String) {
    let r = http::request(server.addr, "GET", target, headers, b"");
    let body = String::from_utf8_lossy(&r.body).into_owned();
    (r, body)
}

/// Every element on the page is one the pages write, none has an event
/// handler attribute, and the only script is the page's own file. Text
/// from bundles cannot add to them: its `<` is always escaped, so every
/// raw `<` starts one of the page's own tags.
fn assert_inert(body: &str) {
    const TAGS: &[&str] = &[
        "!doctype", "html", "head", "meta", "title", "link", "script", "body", "header", "nav",
        "a", "form", "button", "main", "div", "input", "select", "option", "label", "p", "section",
        "h1", "h2", "h3", "span", "code", "mark", "dl", "dt", "dd", "table", "thead", "tbody",
        "tr", "th", "td",
    ];
    let mut rest = body;
    while let Some(i) = rest.find('<') {
        let tag = &rest[i + 1..];
        let end = tag
            .find('>')
            .unwrap_or_else(|| panic!("an unclosed tag in {body}"));
        let inside = &tag[..end].to_ascii_lowercase();
        let name = inside
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        assert!(TAGS.contains(&name), "<{inside}> in {body}");
        for attr in inside.split_whitespace().skip(1) {
            assert!(
                !attr.starts_with("on"),
                "<{inside}> has a handler in {body}"
            );
            assert!(
                !attr.starts_with("style"),
                "<{inside}> has a style in {body}"
            );
        }
        if name == "script" && !inside.starts_with('/') {
            assert_eq!(inside, "script src=\"/assets/web.js\" defer", "{body}");
        }
        assert!(!inside.contains("javascript:"), "{body}");
        rest = &tag[end..];
    }
}

fn assert_page(r: &Response, body: &str, status: u16) {
    assert_eq!(r.status, status, "{body}");
    assert_eq!(r.header("content-security-policy"), Some(CSP));
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(body.starts_with("<!doctype html>"), "{body}");
    assert_inert(body);
}

fn encode(s: &str) -> String {
    http::encode(s)
}

#[test]
fn every_page_renders_escaped_under_the_csp_and_answers_like_the_api() {
    let site = Site::new();
    let server = site.serve(false, &[]);
    let (api1, api2) = &site.api;

    // The search page with no query: the form, focused by `/`.
    let (r, body) = get(&server, "/", &[]);
    assert_page(&r, &body, 200);
    assert!(
        body.contains("id=\"q\"") && body.contains("name=\"ask\""),
        "{body}"
    );
    assert!(
        body.contains("<option value=\"api\">api</option>"),
        "{body}"
    );

    // A search: results grouped by file, the file linked, lines marked.
    let (r, body) = get(&server, "/?q=move+tag+compare+and+swap&repo=api", &[]);
    assert_page(&r, &body, 200);
    assert!(
        body.contains("href=\"/file?repo=api&amp;path=src/tags.rs\""),
        "{body}"
    );
    assert!(
        body.contains("href=\"/file?repo=api&amp;path=src/tags.rs#L2\""),
        "{body}"
    );
    assert!(
        body.contains("<mark>move</mark>_<mark>tag</mark>"),
        "{body}"
    );
    // The URL holds the query: the form comes back filled.
    assert!(
        body.contains("value=\"move tag compare and swap\""),
        "{body}"
    );
    assert!(body.contains("<option value=\"api\" selected>"), "{body}");

    // grep finds the markup file by its text; name and text render inert.
    let (r, body) = get(&server, "/?ask=grep&q=%3Cscript%3E", &[]);
    assert_page(&r, &body, 200);
    assert!(
        body.contains("src/&lt;img src=x onerror=alert(1)&gt;.rs"),
        "{body}"
    );
    assert!(
        body.contains("// <mark>&lt;script&gt;</mark>alert(&quot;xss&quot;)&lt;/script&gt;"),
        "{body}"
    );
    assert!(body.contains("1 matching line in 1 file"), "{body}");

    // Definitions: the line that defines it, linked.
    let (r, body) = get(&server, "/?ask=definitions&q=evil_banner", &[]);
    assert_page(&r, &body, 200);
    assert!(body.contains("1 definition of evil_banner"), "{body}");
    assert!(
        body.contains(&format!(
            "href=\"/file?repo=api&amp;path={}#L3\"",
            encode(XSS_PATH).replace("%2F", "/")
        )),
        "{body}"
    );

    // The file view of the markup file: inert, numbered, anchored, with
    // its commit, tag and a permalink naming the commit.
    let commit = api2.report["commit"].as_str().unwrap().to_string();
    let (r, body) = get(
        &server,
        &format!("/file?repo=api&path={}", encode(XSS_PATH)),
        &[],
    );
    assert_page(&r, &body, 200);
    // Highlighted (a Rust comment), and still only text.
    assert!(
        body.contains("<div class=\"l\" id=\"L1\"><a class=\"ln\" href=\"#L1\">1</a><span class=\"hl-comment\">// &lt;script&gt;alert(&quot;xss&quot;)&lt;/script&gt;</span></div>"),
        "{body}"
    );
    assert!(
        body.contains("<span class=\"hl-keyword\">fn</span>"),
        "{body}"
    );
    assert!(body.contains("id=\"L5\""), "{body}");
    assert!(!body.contains("id=\"L6\""), "{body}");
    assert!(body.contains(&format!("title=\"{commit}\"")), "{body}");
    assert!(body.contains("<dt>Tag</dt><dd>production</dd>"), "{body}");
    let permalink = format!(
        "href=\"/file?repo=api&amp;path={}&amp;commit={commit}\"",
        encode(XSS_PATH).replace("%2F", "/")
    );
    assert!(body.contains(&permalink), "{permalink} in {body}");
    // The permalink opens; a commit the server no longer serves is a 404
    // that names both.
    let (r, _) = get(
        &server,
        &format!("/file?repo=api&path=src/tags.rs&commit={commit}"),
        &[],
    );
    assert_eq!(r.status, 200);
    let old = api1.report["commit"].as_str().unwrap();
    let (r, body) = get(
        &server,
        &format!("/file?repo=api&path=src/tags.rs&commit={old}"),
        &[],
    );
    assert_page(&r, &body, 404);
    assert!(body.contains(old) && body.contains(&commit), "{body}");
    // A 5,000-line file: every line anchored.
    let (r, body) = get(&server, "/file?repo=api&path=src/long.rs", &[]);
    assert_page(&r, &body, 200);
    assert!(
        body.contains("id=\"L5000\"") && body.contains("LINE_5000"),
        "{body:.300}"
    );
    // A missing file: the API's answer, as a page.
    let (r, body) = get(&server, "/file?repo=api&path=src/nope.rs", &[]);
    assert_page(&r, &body, 404);

    // Repositories: tag, commit, digest, size, status, and the tag's
    // history with the command that rolls back to the earlier bundle.
    let (r, body) = get(&server, "/repos", &[]);
    assert_page(&r, &body, 200);
    for needle in [
        "<h2>api <span class=\"status ok\">ok</span></h2>",
        "<h2>secret <span class=\"status ok\">ok</span></h2>",
        &format!("<code>{}</code>", api2.digest),
        &format!("<code>{commit}</code>"),
        "<dt>Size</dt>",
        "(current)",
    ] {
        assert!(body.contains(needle), "'{needle}' in {body}");
    }
    let store = Path::new(&site.root.url).join("api");
    let rollback = format!(
        "shelf rollback production --store {} --to {}",
        store.display(),
        api1.digest
    );
    assert!(body.contains(&rollback), "'{rollback}' in {body}");

    // Bad input is the API's 400, on the page, escaped.
    let (r, body) = get(&server, "/?q=x&mode=%3Cb%3Ebogus", &[]);
    assert_page(&r, &body, 400);
    assert!(
        body.contains("unknown mode &#39;&lt;b&gt;bogus&#39;"),
        "{body}"
    );
    let (r, body) = get(&server, "/?q=x&repo=nope", &[]);
    assert_page(&r, &body, 400);
    assert!(body.contains("unknown repository"), "{body}");

    // Assets come from the binary; other methods are refused.
    let (r, body) = get(&server, "/assets/web.js", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(body.contains("selectLines"));
    let (r, body) = get(&server, "/assets/web.css", &[]);
    assert_eq!(r.status, 200);
    assert!(body.contains("prefers-color-scheme: dark"));
    let (r, body) = get(&server, "/assets/icon.svg", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("image/svg+xml"));
    assert!(body.starts_with("<svg"));
    let r = http::request(server.addr, "POST", "/", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    // The API is unchanged beside the pages.
    assert_eq!(get(&server, "/v1/repos", &[]).0.status, 200);
    drop(server);

    // Turned off, the pages are not there; the API still is.
    let off = site.serve(false, &["--web=false"]);
    let (r, _) = get(&off, "/", &[]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    assert_eq!(get(&off, "/assets/web.js", &[]).0.status, 404);
    assert_eq!(get(&off, "/v1/repos", &[]).0.status, 200);
}

/// The `shelf_token` cookie a `Set-Cookie` header sets.
fn cookie_of(r: &Response) -> String {
    let set = r.header("set-cookie").expect("a cookie is set");
    set.split(';').next().unwrap().to_string()
}

#[test]
fn a_scoped_token_sees_only_its_repositories_on_every_page_and_signs_in_with_a_strict_cookie() {
    let site = Site::new();
    let server = site.serve(true, &[]);

    // No token: every page is the sign-in form (401), naming nothing.
    for target in [
        "/",
        "/?q=payroll",
        "/repos",
        "/file?repo=secret&path=payroll.md",
    ] {
        let (r, body) = get(&server, target, &[]);
        assert_page(&r, &body, 401);
        assert!(body.contains("name=\"token\""), "{body}");
        assert!(
            !body.contains("<h2>") && !body.contains("Salaries"),
            "{body}"
        );
    }

    // Sign-in from another site is refused before the token is looked at.
    let form = format!("token={API_TOKEN}&next=%2Frepos");
    let post = |headers: &[(&str, &str)], body: &str| {
        let mut h = vec![("Content-Type", "application/x-www-form-urlencoded")];
        h.extend_from_slice(headers);
        http::request(server.addr, "POST", "/signin", &h, body.as_bytes())
    };
    let r = post(&[("Sec-Fetch-Site", "cross-site")], &form);
    assert_eq!(r.status, 403);
    assert!(r.header("set-cookie").is_none());
    let r = post(&[], &form);
    assert_eq!(r.status, 403, "no Origin and no Sec-Fetch-Site");
    // A wrong token: the form again, 401, no cookie.
    let r = post(
        &[("Sec-Fetch-Site", "same-origin")],
        "token=wrong-token-0123456789",
    );
    assert_eq!(r.status, 401);
    assert!(r.header("set-cookie").is_none());
    // The scoped token: a strict, HttpOnly cookie and back where it was.
    let origin = format!("http://{}", server.addr);
    let r = post(&[("Origin", &origin)], &form);
    assert_eq!(r.status, 303, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("location"), Some("/repos"));
    let set = r.header("set-cookie").unwrap();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let cookie = cookie_of(&r);
    let with = [("Cookie", cookie.as_str())];

    // Every page shows `api` and never `secret`.
    let (r, body) = get(&server, "/repos", &with);
    assert_page(&r, &body, 200);
    assert!(body.contains("<h2>api "), "{body}");
    assert!(!body.contains("secret"), "{body}");
    assert!(body.contains("Sign out"), "{body}");
    let (r, body) = get(&server, "/", &with);
    assert_page(&r, &body, 200);
    assert!(!body.contains("secret"), "{body}");
    let (r, body) = get(&server, "/?q=when+are+salaries+paid", &with);
    assert_page(&r, &body, 200);
    assert!(
        !body.contains("payroll") && !body.contains("Salaries"),
        "{body}"
    );
    let (r, body) = get(&server, "/?ask=grep&q=Salaries", &with);
    assert_page(&r, &body, 200);
    assert!(body.contains("0 matching lines"), "{body}");
    // Naming the hidden repository is the unknown-repository answer.
    let (r, body) = get(&server, "/file?repo=secret&path=payroll.md", &with);
    assert_page(&r, &body, 400);
    assert!(body.contains("unknown repository"), "{body}");
    assert!(!body.contains("Salaries"), "{body}");
    let (r, body) = get(&server, "/?q=salaries&repo=secret", &with);
    assert_page(&r, &body, 400);
    assert!(!body.contains("Salaries"), "{body}");
    // The unscoped token, as a bearer header, sees both.
    let auth = format!("Bearer {ALL_TOKEN}");
    let (_, body) = get(&server, "/repos", &[("Authorization", &auth)]);
    assert!(body.contains("<h2>secret "), "{body}");
    assert!(
        !body.contains("Sign out"),
        "a header is not a sign-in: {body}"
    );

    // Sign-out clears the cookie (and is refused from another site).
    let signout =
        |headers: &[(&str, &str)]| http::request(server.addr, "POST", "/signout", headers, b"");
    let r = signout(&[("Cookie", &cookie), ("Sec-Fetch-Site", "cross-site")]);
    assert_eq!(r.status, 403);
    let r = signout(&[("Cookie", &cookie), ("Sec-Fetch-Site", "same-origin")]);
    assert_eq!(r.status, 303);
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
    // A cookie whose token is not accepted gets the form and is cleared.
    let (r, body) = get(
        &server,
        "/repos",
        &[("Cookie", "shelf_token=no-such-token-0123456789")],
    );
    assert_page(&r, &body, 401);
    assert!(body.contains("no longer accepted"), "{body}");
    assert!(r.header("set-cookie").unwrap().contains("Max-Age=0"));
}

/// Where the browser test's screenshots go (CI keeps them).
fn shots() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser")
}

#[test]
fn in_a_real_browser_people_search_open_a_result_follow_a_line_range_and_sign_in_scoped() {
    let site = Site::new();
    let server = site.serve(true, &[]);
    let base = format!("http://{}", server.addr);
    let b = Browser::start();

    // Not signed in: the form; a scoped token signs in and sees only its
    // repository.
    b.open(&format!("{base}/repos"));
    b.wait_for(
        "the sign-in form",
        "return !!document.getElementById('token')",
    );
    b.click("#token");
    b.keys(API_TOKEN);
    b.click(".signin button");
    b.wait_for(
        "back on /repos",
        "return location.pathname === '/repos' && !!document.querySelector('section.repo')",
    );
    let names = b.js("return [...document.querySelectorAll('section.repo h2')].map(h => h.firstChild.textContent.trim())");
    assert_eq!(names, serde_json::json!(["api"]));
    b.screenshot(&shots(), "repos-scoped");
    // The cookie is not readable by scripts.
    assert_eq!(b.js("return document.cookie"), "");

    // Search: `/` focuses the box; type, press Enter, results by file.
    b.open(&format!("{base}/"));
    b.wait_for("the search page", "return !!document.getElementById('q')");
    b.js("document.activeElement.blur()");
    b.keys("/");
    assert_eq!(b.js("return document.activeElement.id"), "q");
    b.keys("move a tag with compare and swap\u{E007}");
    b.wait_for(
        "results",
        "return document.querySelectorAll('section.result').length > 0",
    );
    assert!(
        b.js("return location.search")
            .as_str()
            .unwrap()
            .contains("q=move+a+tag"),
        "the URL holds the query"
    );
    let nth = b.js("return 1 + [...document.querySelectorAll('section.result h2 a')].findIndex(a => a.textContent === 'api src/tags.rs')");
    assert!(nth.as_i64().unwrap() >= 1, "src/tags.rs among the results");
    assert!(b.js("return document.querySelectorAll('section.result mark').length > 0") == true);
    b.screenshot(&shots(), "search");

    // Open a result at its line: the line is the target, in view.
    b.click(&format!("section.result:nth-of-type({nth}) .lines > a"));
    b.wait_for(
        "the file view",
        "return location.pathname === '/file' && !!document.getElementById('code')",
    );
    let hash = b.js("return location.hash");
    let line = hash.as_str().unwrap().trim_start_matches("#L").to_string();
    assert!(line.parse::<u32>().is_ok(), "{hash}");
    assert_eq!(
        b.js("return document.querySelector('.l:target').id"),
        format!("L{line}")
    );

    // The markup file renders as text: no element it names exists.
    b.open(&format!("{base}/file?repo=api&path={}", encode(XSS_PATH)));
    b.wait_for("the markup file", "return !!document.getElementById('L1')");
    assert_eq!(
        b.js("return document.querySelectorAll('main img, main script').length"),
        0
    );
    assert_eq!(
        // The line's text is everything after its number.
        b.js("return [...document.getElementById('L1').childNodes].slice(1).map(n => n.textContent).join('')"),
        "// <script>alert(\"xss\")</script>"
    );
    assert_eq!(
        b.js("return document.querySelector('h1').textContent"),
        XSS_PATH
    );
    b.screenshot(&shots(), "xss-inert");

    // A 5,000-line file at a line range: rendered, the range selected and
    // scrolled to. How long it takes is a measurement, not a test: a
    // timed assertion fails on a loaded machine (`shelf-bench web`
    // records it against its target).
    let load_ms = b.load_ms(&format!(
        "{base}/file?repo=api&path=src/long.rs#L4000-L4010"
    ));
    b.wait_for(
        "the long file",
        "return document.querySelectorAll('.l.sel').length === 11",
    );
    eprintln!("5,000-line file view: {load_ms:.0} ms from navigation to load");
    let in_view = b.js("const r = document.getElementById('L4000').getBoundingClientRect(); return r.top >= 0 && r.bottom <= innerHeight");
    assert_eq!(in_view, true, "line 4000 is scrolled into view");
    b.screenshot(&shots(), "long-file-range");

    // Filter by repository: the scoped token cannot name `secret`.
    b.open(&format!("{base}/?q=salaries&repo=secret"));
    b.wait_for("the refusal", "return !!document.getElementById('error')");
    assert!(b.js("return document.body.textContent.includes('Salaries')") == false);

    // Sign out: the form again.
    b.open(&format!("{base}/repos"));
    b.click(".signout button");
    b.wait_for(
        "signed out",
        "return location.pathname === '/' && !!document.getElementById('token')",
    );

    // The unscoped token sees both repositories and filters to one.
    b.click("#token");
    b.keys(ALL_TOKEN);
    b.click(".signin button");
    b.wait_for("signed in", "return !!document.getElementById('q')");
    let options =
        b.js("return [...document.querySelectorAll('select[name=repo] option')].map(o => o.value)");
    assert_eq!(options, serde_json::json!(["", "api", "secret"]));
    b.open(&format!("{base}/?q=when+are+salaries+paid&repo=secret"));
    b.wait_for(
        "results",
        "return document.querySelectorAll('section.result').length > 0",
    );
    let repos = b.js("return [...new Set([...document.querySelectorAll('section.result .repo')].map(s => s.textContent))]");
    assert_eq!(repos, serde_json::json!(["secret"]));
    // A phone's width.
    b.call(
        "POST",
        "/window/rect",
        &serde_json::json!({"width": 390, "height": 844}),
    );
    b.screenshot(&shots(), "search-phone");
    let overflow = b.js("return document.documentElement.scrollWidth <= innerWidth + 1");
    assert_eq!(overflow, true, "no sideways scrolling at a phone's width");

    // The pages answered 401 and 400 on purpose above (asserted there);
    // Chromium logs those statuses too. Anything else is an error.
    let mut errors = b.console_errors();
    errors.retain(|m| {
        !m.contains("the server responded with a status of 401")
            && !m.contains("the server responded with a status of 400")
    });
    assert!(errors.is_empty(), "console errors: {errors:?}");
}
