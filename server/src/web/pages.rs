//! The pages themselves: each takes the caller's scope and the request's
//! parameters, asks the API's operations, and returns a status and the
//! HTML. Every value from a request, a bundle or a repository is escaped
//! where it is written.

use std::fmt::Write as _;

use http::StatusCode;
use serde_json::{Map, Value, json};
use shelf_formats::FileKind;
use shelf_search::budget::MAX_MAX_TOKENS;
use shelf_search::files::{FileAnswer, GrepRequest, MAX_GREP_LIMIT};

use super::html::{self, Marker, esc, file_link, push_marked, push_number};
use super::{CSS_PATH, Ctx, ICON_PATH, JS_PATH, param};
use crate::ops::Api;
use crate::web::api::{self as for_web, ApiError, Scope};

/// Results a search page asks for.
const PAGE_K: &str = "20";
/// Matching lines a grep page lists at most.
const PAGE_GREP_LIMIT: u64 = 200;
/// Bytes a results page is given room for at the start: a page of 20
/// files' lines is about 80 KB, and growing the string would copy it.
const RESULTS_CAPACITY: usize = 128 << 10;
/// Lines of a search result's chunk shown around its first match.
const SNIPPET_LINES: usize = 8;
/// Lines of a file view per block laid out as one (web.css `.blk`, whose
/// height estimate is this many lines).
const BLOCK_LINES: usize = 100;

/// The page around `main`: header, navigation, and sign-out when the
/// browser signed in.
pub(super) fn layout(title: &str, ctx: Option<&Ctx>, main: &str) -> String {
    let mut page = open(title, ctx, main.len());
    page.push_str(main);
    close(page)
}

/// A page's head, header and navigation, up to the opening of `main`,
/// with room for `main_len` bytes more: a page whose answer is long
/// writes it straight in after this ([`close`] ends it), so its lines
/// are not copied again into a larger string.
fn open(title: &str, ctx: Option<&Ctx>, main_len: usize) -> String {
    let sign_out = if ctx.is_some_and(|c| c.signed_in) {
        "<form method=\"post\" action=\"/signout\" class=\"signout\"><button type=\"submit\">Sign out</button></form>"
    } else {
        ""
    };
    let mut page = String::with_capacity(main_len + 1024);
    let _ = write!(
        page,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"color-scheme\" content=\"light dark\">\
<title>{} · shelf</title>\
<link rel=\"stylesheet\" href=\"{CSS_PATH}\">\
<link rel=\"icon\" href=\"{ICON_PATH}\" type=\"image/svg+xml\">\
<script src=\"{JS_PATH}\" defer></script></head>\
<body><header><nav><a href=\"/\" class=\"brand\">shelf</a>\
<a href=\"/\">Search</a><a href=\"/repos\">Repositories</a>{sign_out}</nav></header>\
<main>",
        esc(title)
    );
    page
}

/// The end of a page [`open`]ed.
fn close(mut page: String) -> String {
    page.push_str("</main></body></html>\n");
    page
}

/// Runs `write` (a page's HTML from an answer) on the blocking pool, as
/// the answer's search ran: writing a page's lines, or highlighting a
/// file, is the longest work of a request, and on the async workers it
/// would hold up every other connection's reads and writes. Every page
/// that writes an answer's lines writes them here, but the semantic
/// search's, which are written in the search's own task
/// (`for_web::search`).
async fn off_the_workers(
    write: impl FnOnce() -> String + Send + 'static,
) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(write)
        .await
        .map_err(|e| ApiError::internal(format!("writing the page failed: {e}")))
}

/// What a search page asks: one of three ways, and its filters.
struct Asked<'a> {
    q: &'a str,
    ask: &'a str,
    mode: &'a str,
    repo: &'a str,
    kind: &'a str,
    path: &'a str,
    language: &'a str,
    regex: bool,
}

impl<'a> Asked<'a> {
    fn of(pairs: &'a [(String, String)]) -> Self {
        let ask = match param(pairs, "ask") {
            a @ ("grep" | "definitions") => a,
            _ => "search",
        };
        Self {
            q: param(pairs, "q"),
            ask,
            mode: param(pairs, "mode"),
            repo: param(pairs, "repo"),
            kind: param(pairs, "kind"),
            path: param(pairs, "path"),
            language: param(pairs, "language"),
            regex: matches!(param(pairs, "regex"), "1" | "on" | "true"),
        }
    }
}

fn option(out: &mut String, value: &str, label: &str, chosen: &str) {
    let _ = write!(
        out,
        "<option value=\"{}\"{}>{}</option>",
        esc(value),
        if value == chosen { " selected" } else { "" },
        esc(label)
    );
}

/// The query form, filled with what was asked, written onto `f`.
fn form(f: &mut String, a: &Asked<'_>, repos: &[String]) {
    let _ = write!(
        f,
        "<form method=\"get\" action=\"/\" class=\"query\" role=\"search\">\
<div class=\"row\"><input type=\"search\" name=\"q\" id=\"q\" value=\"{}\" \
placeholder=\"What are you looking for? (press / to type)\" aria-label=\"Query\" autofocus>\
<button type=\"submit\">Search</button></div><div class=\"row filters\">",
        esc(a.q)
    );
    f.push_str("<label>Ask <select name=\"ask\">");
    for (v, l) in [
        ("search", "search"),
        ("grep", "grep (exact text)"),
        ("definitions", "definitions"),
    ] {
        option(f, v, l, a.ask);
    }
    f.push_str("</select></label><label>Mode <select name=\"mode\">");
    for (v, l) in [
        ("", "hybrid"),
        ("semantic", "semantic"),
        ("lexical", "lexical"),
    ] {
        option(f, v, l, a.mode);
    }
    f.push_str("</select></label><label>Repository <select name=\"repo\">");
    option(f, "", "all", a.repo);
    for r in repos {
        option(f, r, r, a.repo);
    }
    f.push_str("</select></label><label>Kind <select name=\"kind\">");
    option(f, "", "auto", a.kind);
    option(f, "any", "any", a.kind);
    for k in FileKind::ALL {
        option(f, k.name(), k.name(), a.kind);
    }
    let _ = write!(
        f,
        "</select></label><label>Path <input name=\"path\" value=\"{}\" placeholder=\"src/**\"></label>\
<label>Language <input name=\"language\" value=\"{}\" placeholder=\"rust\" size=\"8\"></label>\
<label class=\"check\"><input type=\"checkbox\" name=\"regex\" value=\"1\"{}> regex (grep)</label></div></form>",
        esc(a.path),
        esc(a.language),
        if a.regex { " checked" } else { "" }
    );
}

/// `/`: the form, and the answer when a query was given.
pub(super) async fn search(
    api: &Api,
    scope: &Scope,
    ctx: &Ctx,
    pairs: &[(String, String)],
) -> (StatusCode, String) {
    let a = Asked::of(pairs);
    let names = for_web::repo_names(api, scope);
    let title = if a.q.is_empty() { "Search" } else { a.q };
    let start = |room: usize| {
        let mut page = open(title, Some(ctx), room);
        form(&mut page, &a, &names);
        page
    };
    if a.q.trim().is_empty() {
        return (StatusCode::OK, close(start(0)));
    }
    let answered = match a.ask {
        "grep" => grep(api, scope, &a, start(RESULTS_CAPACITY)).await,
        "definitions" => definitions(api, scope, &a, start(RESULTS_CAPACITY)).await,
        _ => semantic(api, scope, &a, start(RESULTS_CAPACITY)).await,
    };
    match answered {
        Ok(page) => (StatusCode::OK, close(page)),
        Err(e) => {
            let mut page = start(0);
            let _ = write!(
                page,
                "<p class=\"error\" id=\"error\">{}</p>",
                esc(&e.message)
            );
            (e.status, close(page))
        }
    }
}

/// A result line: its number, its text and the byte ranges to mark.
type Line<'a> = (u32, &'a str, Vec<(usize, usize)>);

/// Lines grouped under their file, in the order given.
struct FileGroup<'a> {
    repo: &'a str,
    path: &'a str,
    lines: Vec<Line<'a>>,
}

fn group_lines<'a>(
    items: impl Iterator<Item = (&'a str, &'a str, Line<'a>)>,
) -> Vec<FileGroup<'a>> {
    let mut groups: Vec<FileGroup<'a>> = Vec::new();
    for (repo, path, line) in items {
        match groups.iter_mut().find(|g| g.repo == repo && g.path == path) {
            Some(g) => g.lines.push(line),
            None => groups.push(FileGroup {
                repo,
                path,
                lines: vec![line],
            }),
        }
    }
    groups
}

/// One result file: its name linking to the file view, and its lines,
/// each linking to the file at that line, written straight into `out`.
fn file_block(out: &mut String, repo: &str, path: &str, extra: &str, lines: &[Line<'_>]) {
    // Escaped once: each line's link is this and its `#L<n>`.
    let link = esc(&file_link(repo, path, 0));
    let _ = write!(
        out,
        "<section class=\"result\"><h2><a href=\"{link}\"><span class=\"repo\">{}</span> {}</a>{extra}</h2><div class=\"lines\">",
        esc(repo),
        esc(path)
    );
    for &(n, text, ref marks) in lines {
        out.push_str("<a href=\"");
        out.push_str(&link);
        out.push_str("#L");
        push_number(out, n);
        out.push_str("\"><span class=\"ln\">");
        push_number(out, n);
        out.push_str("</span>");
        push_marked(out, text, marks);
        out.push_str("</a>");
    }
    out.push_str("</div></section>");
}

fn summary(out: &mut String, text: &str) {
    let _ = write!(out, "<p class=\"summary\" id=\"summary\">{}</p>", esc(text));
}

/// Words of a question that say nothing about the code; not marked.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "be", "by", "can", "do", "does", "for", "how", "in", "is", "it", "of",
    "on", "or", "the", "this", "that", "to", "was", "what", "when", "where", "which", "who", "why",
    "with",
];

/// The query's words, lowercase, for marking lines.
fn terms(q: &str) -> Vec<String> {
    q.split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map(str::to_ascii_lowercase)
        .filter(|w| w.len() >= 2 && !STOPWORDS.contains(&w.as_str()))
        .collect()
}

/// The search answer's files written onto `page` (which the answer's
/// task gets, and gives back written).
async fn semantic(
    api: &Api,
    scope: &Scope,
    a: &Asked<'_>,
    mut page: String,
) -> Result<String, ApiError> {
    let query = html::query(&[
        ("q", a.q),
        ("mode", a.mode),
        ("repo", a.repo),
        ("kind", a.kind),
        ("path", a.path),
        ("language", a.language),
        ("group", "file"),
        ("k", PAGE_K),
    ]);
    let q = a.q.to_string();
    for_web::search(api, scope, &query, move |answer| {
        search_results(&mut page, &q, &answer);
        page
    })
    .await
}

/// The search answer's files and lines, marked with `q`'s words, written
/// onto `out`.
fn search_results(out: &mut String, q: &str, answer: &shelf_search::Answer) {
    let files = answer.files.as_deref().unwrap_or_default();
    summary(
        out,
        &format!(
            "{} file{} · {} · {:.0} ms",
            files.len(),
            if files.len() == 1 { "" } else { "s" },
            format!("{:?}", answer.mode).to_ascii_lowercase(),
            answer.took_ms
        ),
    );
    let marker = Marker::new(&terms(q));
    for f in files {
        let mut lines: Vec<Line<'_>> = Vec::new();
        for chunk in &f.chunks {
            // The window starts two lines before the first line marked.
            let first_hit = marker.first_line(&chunk.text);
            let from = first_hit.unwrap_or(0).saturating_sub(2);
            for (i, line) in chunk
                .text
                .lines()
                .enumerate()
                .skip(from)
                .take(SNIPPET_LINES)
            {
                let n = chunk.start_line + i as u32;
                if lines.iter().any(|(m, ..)| *m == n) {
                    continue;
                }
                let marks = match first_hit {
                    Some(_) => marker.marks(line),
                    None => Vec::new(),
                };
                lines.push((n, line, marks));
            }
        }
        lines.sort_by_key(|(n, ..)| *n);
        let lang = f
            .language
            .map(|l| format!(" <span class=\"lang\">{}</span>", esc(l)))
            .unwrap_or_default();
        file_block(out, &f.repo, &f.path, &lang, &lines);
    }
}

fn repo_arg(args: &mut Map<String, Value>, repo: &str) {
    if !repo.is_empty() {
        args.insert("repo".into(), json!([repo]));
    }
}

async fn grep(
    api: &Api,
    scope: &Scope,
    a: &Asked<'_>,
    mut out: String,
) -> Result<String, ApiError> {
    let mut args = Map::new();
    args.insert("pattern".into(), json!(a.q));
    args.insert("regex".into(), json!(a.regex));
    args.insert(
        "limit".into(),
        json!(PAGE_GREP_LIMIT.min(MAX_GREP_LIMIT as u64)),
    );
    if !a.path.is_empty() {
        args.insert("path".into(), json!(a.path));
    }
    repo_arg(&mut args, a.repo);
    let answer = for_web::grep(api, scope, &args).await?;
    // The same pattern, compiled as grep compiled it, marks the matches.
    let re = shelf_search::files::compile(&GrepRequest {
        pattern: a.q.to_string(),
        regex: a.regex,
        ignore_case: false,
        path: None,
        limit: 1,
        max_tokens: MAX_MAX_TOKENS,
    })
    .ok();
    off_the_workers(move || {
        summary(
            &mut out,
            &format!(
                "{} matching line{} in {} file{} ({} listed) · {:.0} ms",
                answer.total_matches,
                if answer.total_matches == 1 { "" } else { "s" },
                answer.files_matched,
                if answer.files_matched == 1 { "" } else { "s" },
                answer.matches.len(),
                answer.took_ms
            ),
        );
        let items = answer.matches.iter().map(|m| {
            let marks: Vec<(usize, usize)> = re
                .as_ref()
                .map(|re| {
                    re.find_iter(&m.text)
                        .map(|x| (x.start(), x.end()))
                        .collect()
                })
                .unwrap_or_default();
            (
                m.repo.as_str(),
                m.path.as_str(),
                (m.line, m.text.as_str(), marks),
            )
        });
        for g in group_lines(items) {
            file_block(&mut out, g.repo, g.path, "", &g.lines);
        }
        out
    })
    .await
}

async fn definitions(
    api: &Api,
    scope: &Scope,
    a: &Asked<'_>,
    mut out: String,
) -> Result<String, ApiError> {
    let mut args = Map::new();
    args.insert("name".into(), json!(a.q.trim()));
    repo_arg(&mut args, a.repo);
    let answer = for_web::definitions(api, scope, &args).await?;
    off_the_workers(move || {
        let n = answer.definitions.len();
        summary(
            &mut out,
            &format!(
                "{n} definition{} of {} · {:.0} ms",
                if n == 1 { "" } else { "s" },
                answer.name,
                answer.took_ms
            ),
        );
        let marker = Marker::new(std::slice::from_ref(&answer.name));
        let items = answer.definitions.iter().map(|d| {
            (
                d.repo.as_str(),
                d.path.as_str(),
                (d.line, d.text.as_str(), marker.marks(&d.text)),
            )
        });
        for g in group_lines(items) {
            file_block(&mut out, g.repo, g.path, "", &g.lines);
        }
        out
    })
    .await
}

/// `/file?repo=R&path=P[&commit=C]`: the whole file at the bundle's
/// commit, each line with an anchor (`#L10`, `#L10-L20`).
pub(super) async fn file(
    api: &Api,
    scope: &Scope,
    ctx: &Ctx,
    pairs: &[(String, String)],
) -> (StatusCode, String) {
    let repo = param(pairs, "repo");
    let path = param(pairs, "path");
    let commit = param(pairs, "commit");
    match file_view(api, scope, repo, path, commit).await {
        Ok(main) => (StatusCode::OK, layout(path, Some(ctx), &main)),
        Err(e) => (
            e.status,
            layout(
                path,
                Some(ctx),
                &format!(
                    "<h1>{}</h1><p class=\"error\" id=\"error\">{}</p>",
                    esc(path),
                    esc(&e.message)
                ),
            ),
        ),
    }
}

async fn file_view(
    api: &Api,
    scope: &Scope,
    repo: &str,
    path: &str,
    commit: &str,
) -> Result<String, ApiError> {
    let mut args = Map::new();
    args.insert("path".into(), json!(path));
    args.insert("max_tokens".into(), json!(MAX_MAX_TOKENS));
    if !repo.is_empty() {
        args.insert("repo".into(), json!(repo));
    }
    let answer = for_web::read_file(api, scope, &args).await?;
    let b = &answer.bundle;
    let same_commit = commit.is_empty() || (commit.len() >= 7 && b.commit.starts_with(commit));
    if !same_commit {
        return Err(ApiError::new(
            crate::http::Code::NoSuchFile,
            format!(
                "this link names commit {commit}, but repository '{}' is now served at commit {}: open the file there, or ask the operator to roll back",
                b.repo, b.commit
            ),
        ));
    }
    off_the_workers(move || file_html(&answer)).await
}

/// The file view's facts and its lines, highlighted.
fn file_html(answer: &FileAnswer) -> String {
    let b = &answer.bundle;
    let mut out = String::new();
    let short = &b.commit[..b.commit.len().min(12)];
    let _ = write!(
        out,
        "<h1 class=\"path\">{}</h1><dl class=\"facts\">\
<dt>Repository</dt><dd><a href=\"/repos\">{}</a> ({})</dd>\
<dt>Commit</dt><dd><code title=\"{}\">{}</code>, committed {} ago ({})</dd>\
<dt>Tag</dt><dd>{}</dd><dt>Lines</dt><dd>{}</dd></dl>\
<p><a id=\"permalink\" href=\"{}\">Permalink to this commit</a></p>",
        esc(&answer.path),
        esc(&b.repo),
        esc(&b.repository),
        esc(&b.commit),
        esc(short),
        html::age(b.commit_age_seconds),
        esc(&b.commit_time),
        esc(b.tag.as_deref().unwrap_or("(a bundle file; no tag)")),
        answer.total_lines,
        esc(&format!(
            "/file?{}",
            html::query(&[
                ("repo", &b.repo),
                ("path", &answer.path),
                ("commit", &b.commit)
            ])
        )),
    );
    if let Some(t) = &answer.truncated {
        let _ = write!(
            out,
            "<p class=\"error\">Shown up to line {} of {}: {}</p>",
            answer.end_line,
            answer.total_lines,
            esc(&serde_json::to_string(t).unwrap_or_default())
        );
    }
    out.push_str("<div class=\"code\" id=\"code\">");
    let lines: Vec<String> = super::highlight::lines(answer.language, &answer.text)
        .unwrap_or_else(|| answer.text.lines().map(esc).collect());
    // Two elements a line, in blocks the browser lays out only when
    // they are on screen (CSS `content-visibility`): a long file renders
    // in the time of its first screen, every line still in the page.
    for (i, block) in lines.chunks(BLOCK_LINES).enumerate() {
        out.push_str("<div class=\"blk\">");
        for (j, line) in block.iter().enumerate() {
            let n = answer.start_line as usize + i * BLOCK_LINES + j;
            let _ = write!(
                out,
                "<div class=\"l\" id=\"L{n}\"><a class=\"ln\" href=\"#L{n}\">{n}</a>{line}</div>"
            );
        }
        out.push_str("</div>");
    }
    out.push_str("</div>");
    out
}

/// `/repos`: every repository the caller may see, with its bundle, its
/// status and its tag's history.
pub(super) fn repos(api: &Api, scope: &Scope, ctx: &Ctx) -> (StatusCode, String) {
    let facts = for_web::repos(api, scope);
    let mut out = format!(
        "<h1>Repositories</h1><p class=\"summary\">{} served</p>",
        facts.len()
    );
    for f in &facts {
        let r = &f.listed;
        let s = |v: &Value| v.as_str().unwrap_or("").to_string();
        let name = s(&r["name"]);
        let status = s(&r["status"]);
        let live = &r["live"];
        let _ = write!(
            out,
            "<section class=\"repo\" id=\"repo-{}\"><h2>{} <span class=\"status {}\">{}</span></h2>",
            esc(&html::url(&name)),
            esc(&name),
            esc(&status),
            esc(&status)
        );
        if let Some(reason) = r["reason"].as_str() {
            let _ = write!(out, "<p class=\"reason\">{}</p>", esc(reason));
        }
        out.push_str("<dl class=\"facts\">");
        let mut fact = |k: &str, v: String| {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), v);
        };
        if live.is_object() {
            fact(
                "Tag",
                esc(live["tag"].as_str().unwrap_or("(a bundle file)")),
            );
            fact(
                "Commit",
                format!("<code>{}</code>", esc(&s(&live["commit"]))),
            );
            fact("Committed", esc(&s(&live["built_at"])));
            fact(
                "Digest",
                format!("<code>{}</code>", esc(&s(&live["digest"]))),
            );
            if let Some(bytes) = f.bytes {
                fact("Size", esc(&html::bytes(bytes)));
            }
            fact(
                "Files",
                format!(
                    "{} files, {} chunks, format {}",
                    live["files"],
                    live["chunks"],
                    esc(&s(&live["format"]))
                ),
            );
            fact("Live since", esc(&s(&live["live_since"])));
        } else {
            fact("Live", "nothing yet".into());
        }
        if r["follow"].is_object() {
            fact(
                "Follows",
                format!(
                    "<code>{}</code> in <code>{}</code>",
                    esc(&s(&r["follow"]["target"])),
                    esc(&s(&r["follow"]["store"]))
                ),
            );
        }
        out.push_str("</dl>");
        history(&mut out, r, &f.history);
        out.push_str("</section>");
    }
    (StatusCode::OK, layout("Repositories", Some(ctx), &out))
}

/// The tag's moves, newest first, each earlier target with the command
/// that rolls the tag back to it.
fn history(out: &mut String, listed: &Value, moves: &[shelf_formats::tag::TagMove]) {
    if moves.is_empty() {
        return;
    }
    let store = listed["follow"]["store"].as_str().unwrap_or("STORE");
    let tag = listed["target"]["tag"]
        .as_str()
        .or_else(|| listed["live"]["tag"].as_str())
        .unwrap_or("TAG");
    let current = moves.last().map(|m| m.to);
    out.push_str(
        "<h3>Tag history</h3><table class=\"history\"><thead><tr><th>Set</th><th>By</th><th>Bundle</th><th>Commit</th><th>Roll back to it</th></tr></thead><tbody>",
    );
    for m in moves.iter().rev() {
        let digest = m.to.to_string();
        let command = if Some(m.to) == current {
            "(current)".to_string()
        } else {
            format!(
                "<code class=\"command\">shelf rollback {} --store {} --to {}</code>",
                esc(&shell_word(tag)),
                esc(&shell_word(store)),
                esc(&digest)
            )
        };
        let why = m
            .reason
            .as_deref()
            .map(|r| format!(" ({})", esc(r)))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{}{why}</td><td>{}</td><td><code title=\"{}\">{}</code></td><td><code>{}</code></td><td>{command}</td></tr>",
            esc(&m.at),
            esc(&m.by),
            esc(&digest),
            esc(&digest[..digest.len().min(19)]),
            esc(&m.commit[..m.commit.len().min(12)]),
        );
    }
    out.push_str("</tbody></table>");
}

/// `word` quoted for a POSIX shell when it holds anything but safe
/// characters.
fn shell_word(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// `/signin`: the token form (or, with no tokens required, a note).
pub(super) fn sign_in(required: bool, why: Option<&str>, next: &str) -> String {
    let mut main = String::from("<h1>Sign in</h1>");
    if !required {
        main.push_str("<p>This server requires no token: <a href=\"/\">search</a>.</p>");
        return layout("Sign in", None, &main);
    }
    if let Some(why) = why {
        let _ = write!(main, "<p class=\"error\" id=\"error\">{}</p>", esc(why));
    }
    let _ = write!(
        main,
        "<p>This server needs a search token. It is kept in an HttpOnly cookie for this \
browser session and sent only to this server.</p>\
<form method=\"post\" action=\"/signin\" class=\"signin\">\
<input type=\"hidden\" name=\"next\" value=\"{}\">\
<label>Token <input type=\"password\" name=\"token\" id=\"token\" autocomplete=\"current-password\" required autofocus></label>\
<button type=\"submit\">Sign in</button></form>",
        esc(next)
    );
    layout("Sign in", None, &main)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_they_need_it() {
        assert_eq!(shell_word("production"), "production");
        assert_eq!(shell_word("s3://b/p"), "s3://b/p");
        assert_eq!(shell_word("a b'c"), "'a b'\\''c'");
        assert_eq!(shell_word(""), "''");
    }

    #[test]
    fn query_terms_skip_punctuation_short_and_empty_words() {
        assert_eq!(terms("Where is a Tag moved? x_y"), ["tag", "moved", "x_y"]);
    }
}
