//! Syntax highlighting for the file view, with tree-sitter's highlight
//! queries and the grammars the builder's chunker already compiles
//! (Rust, Python, Go, JavaScript, Java). The output is escaped text in
//! `<span class="hl-NAME">` elements, one string per line; other
//! languages, and any file the highlighter gives up on, stay plain.

use std::sync::OnceLock;
use std::sync::atomic::AtomicUsize;

use tree_sitter_highlight::{HighlightConfiguration, HighlightEvent, Highlighter};

use super::html::push_esc;

/// The capture names styled (web.css has a `.hl-…` rule for each); a
/// capture is styled by its longest prefix among these.
const NAMES: [&str; 12] = [
    "comment",
    "keyword",
    "string",
    "number",
    "constant",
    "function",
    "type",
    "attribute",
    "property",
    "operator",
    "variable.builtin",
    "constructor",
];

/// The CSS class of each name: dots are not allowed in it.
const CLASSES: [&str; 12] = [
    "hl-comment",
    "hl-keyword",
    "hl-string",
    "hl-number",
    "hl-constant",
    "hl-function",
    "hl-type",
    "hl-attribute",
    "hl-property",
    "hl-operator",
    "hl-builtin",
    "hl-constructor",
];

/// Files larger than this are shown plain: highlighting is linear, but a
/// page should not wait on a generated megabyte.
const MAX_BYTES: usize = 1 << 20;

fn configured(
    cell: &'static OnceLock<Option<HighlightConfiguration>>,
    make: impl FnOnce() -> Option<HighlightConfiguration>,
) -> Option<&'static HighlightConfiguration> {
    cell.get_or_init(|| {
        let mut config = make()?;
        config.configure(&NAMES);
        Some(config)
    })
    .as_ref()
}

/// The highlighting of `language` (the names `shelf_search` gives files),
/// if there is one. Each is built once, on first use.
fn config(language: &str) -> Option<&'static HighlightConfiguration> {
    static RUST: OnceLock<Option<HighlightConfiguration>> = OnceLock::new();
    static PYTHON: OnceLock<Option<HighlightConfiguration>> = OnceLock::new();
    static GO: OnceLock<Option<HighlightConfiguration>> = OnceLock::new();
    static JAVASCRIPT: OnceLock<Option<HighlightConfiguration>> = OnceLock::new();
    static JAVA: OnceLock<Option<HighlightConfiguration>> = OnceLock::new();
    let new = |lang: tree_sitter::Language, name: &str, query: &str| {
        HighlightConfiguration::new(lang, name, query, "", "")
            .inspect_err(|e| tracing::warn!(language = name, error = %e, "a highlight query does not compile; files stay plain"))
            .ok()
    };
    match language {
        "rust" => configured(&RUST, || {
            new(
                tree_sitter_rust::LANGUAGE.into(),
                "rust",
                tree_sitter_rust::HIGHLIGHTS_QUERY,
            )
        }),
        "python" => configured(&PYTHON, || {
            new(
                tree_sitter_python::LANGUAGE.into(),
                "python",
                tree_sitter_python::HIGHLIGHTS_QUERY,
            )
        }),
        "go" => configured(&GO, || {
            new(
                tree_sitter_go::LANGUAGE.into(),
                "go",
                tree_sitter_go::HIGHLIGHTS_QUERY,
            )
        }),
        "javascript" => configured(&JAVASCRIPT, || {
            new(
                tree_sitter_javascript::LANGUAGE.into(),
                "javascript",
                tree_sitter_javascript::HIGHLIGHT_QUERY,
            )
        }),
        "java" => configured(&JAVA, || {
            new(
                tree_sitter_java::LANGUAGE.into(),
                "java",
                tree_sitter_java::HIGHLIGHTS_QUERY,
            )
        }),
        _ => None,
    }
}

/// `text`'s lines as escaped HTML with highlight spans (each line closes
/// the spans it opened), or `None` to show it plain.
pub fn lines(language: Option<&str>, text: &str) -> Option<Vec<String>> {
    let config = config(language?)?;
    if text.len() > MAX_BYTES {
        return None;
    }
    let cancel = AtomicUsize::new(0);
    let mut highlighter = Highlighter::new();
    let events = highlighter
        .highlight(config, text.as_bytes(), Some(&cancel), |_| None)
        .ok()?;
    let mut out = Vec::new();
    let mut line = String::new();
    let mut open: Vec<usize> = Vec::new();
    for event in events {
        match event.ok()? {
            HighlightEvent::HighlightStart(h) => {
                open.push(h.0);
                line.push_str("<span class=\"");
                line.push_str(CLASSES.get(h.0)?);
                line.push_str("\">");
            }
            HighlightEvent::HighlightEnd => {
                open.pop();
                line.push_str("</span>");
            }
            HighlightEvent::Source { start, end } => {
                let piece = text.get(start..end)?;
                let mut parts = piece.split('\n').peekable();
                while let Some(part) = parts.next() {
                    push_esc(&mut line, part);
                    if parts.peek().is_some() {
                        line.extend(open.iter().map(|_| "</span>"));
                        out.push(std::mem::take(&mut line));
                        for h in &open {
                            line.push_str("<span class=\"");
                            line.push_str(CLASSES.get(*h)?);
                            line.push_str("\">");
                        }
                    }
                }
            }
        }
    }
    line.extend(open.iter().map(|_| "</span>"));
    // A text ending in a newline has no line after it, as `str::lines`.
    if !text.ends_with('\n') || !line.is_empty() {
        out.push(line);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_is_highlighted_line_by_line_and_escaped() {
        let text = "/// <b>doc</b>\nfn main() {\n    let s = \"a\nb\";\n}\n";
        let lines = lines(Some("rust"), text).expect("rust is highlighted");
        assert_eq!(lines.len(), text.lines().count());
        assert!(
            lines[0].starts_with("<span class=\"hl-comment\">/// &lt;b&gt;doc"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("<span class=\"hl-keyword\">fn</span>"),
            "{}",
            lines[1]
        );
        // A string across lines is closed at the end of its first line and
        // opened again on the next.
        assert!(
            lines[2].ends_with("<span class=\"hl-string\">&quot;a</span>"),
            "{}",
            lines[2]
        );
        assert!(
            lines[3].starts_with("<span class=\"hl-string\">b&quot;</span>"),
            "{}",
            lines[3]
        );
        for l in &lines {
            assert_eq!(
                l.matches("<span").count(),
                l.matches("</span>").count(),
                "{l}"
            );
        }
    }

    #[test]
    fn unknown_languages_and_huge_files_stay_plain() {
        assert!(lines(Some("cobol"), "x").is_none());
        assert!(lines(None, "x").is_none());
        assert!(lines(Some("rust"), &"a".repeat(MAX_BYTES + 1)).is_none());
    }
}
