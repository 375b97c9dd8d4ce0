//! `lines-v1`: split a file into chunks of whole lines, bounded by model
//! tokens, cutting preferably where code or prose naturally breaks
//! (definition starts, blank lines, Markdown/reST headings).
//!
//! `syntax-v1` is the same algorithm with the cut points and headers taken
//! from a syntax tree (`syntax.rs`: tree-sitter, for Python, Rust,
//! JavaScript/TypeScript, Go and Java): a chunk ends where an item ends,
//! preferring the outermost item boundary that keeps it at least a third
//! full, and its header names the definition that really encloses it
//! (not the nearest line that looks like one). Files in other languages,
//! or that do not parse, are chunked exactly as `lines-v1` chunks them,
//! with `lines-v1` content ids, so their vectors are shared by bundles of
//! either chunker.
//!
//! Why lines underneath: line-based cuts at definition keywords and blank
//! lines work for every text file and, with a header line naming the file
//! and the enclosing definition, each chunk stands alone for the embedder.

use std::str::FromStr;

use sha2::{Digest as _, Sha256};
use shelf_formats::ModelIdentity;

use crate::syntax;

/// How files are cut into chunks (`build.chunker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Chunker {
    /// Whole lines, cut at blank lines, definition keywords and headings.
    #[default]
    LinesV1,
    /// `lines-v1` with the cuts and headers of a syntax tree where one
    /// parses.
    SyntaxV1,
}

impl Chunker {
    /// Every chunker, by name.
    pub const ALL: [Chunker; 2] = [Chunker::LinesV1, Chunker::SyntaxV1];

    /// The name recorded in the manifest and in content ids.
    pub fn name(self) -> &'static str {
        match self {
            Chunker::LinesV1 => "lines-v1",
            Chunker::SyntaxV1 => "syntax-v1",
        }
    }
}

impl FromStr for Chunker {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Chunker::ALL
            .into_iter()
            .find(|c| c.name() == s.trim())
            .ok_or_else(|| format!("unknown chunker '{s}'; use lines-v1 or syntax-v1"))
    }
}

/// Token spans of a text: `(start, end)` byte offsets of each model token,
/// without special tokens. The embedder's tokenizer in production; a
/// whitespace splitter in unit tests.
pub trait TokenSpans: Sync {
    /// Spans of the tokens of `text`, in order.
    fn spans(&self, text: &str) -> Vec<(usize, usize)>;
}

/// One chunk of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// First line, 1-based.
    pub start_line: u32,
    /// Last line, inclusive.
    pub end_line: u32,
    /// The file's text for these lines.
    pub text: String,
    /// What is embedded: a header (path, enclosing definition) and the text.
    pub embed_text: String,
    /// Tokens of `embed_text` by the chunker's count (without [CLS]/[SEP]).
    pub tokens: u32,
    /// sha256 of what is embedded, the model, and the chunker version.
    pub content_id: [u8; 32],
}

/// Chunking parameters.
#[derive(Debug, Clone, Copy)]
pub struct ChunkParams {
    /// Bound on a chunk's tokens, header and special tokens included.
    pub max_tokens: u32,
    /// Lines repeated at the start of the next chunk.
    pub overlap_lines: u32,
    /// The algorithm.
    pub chunker: Chunker,
}

/// Tokens reserved for the header's enclosing-definition line.
const DEFINITION_BUDGET: usize = 16;
/// The header repeats at most this many characters of a definition line.
const DEFINITION_CHARS: usize = 80;

/// A piece of a line: whole lines normally, pieces of a line when one line
/// alone is over the budget (minified code, long tables).
#[derive(Debug, Clone, Copy)]
struct Segment {
    line: usize,
    start: usize,
    end: usize,
    tokens: usize,
}

/// Splits `text` (the file at `path`) into chunks.
pub fn chunk_file(
    path: &str,
    text: &str,
    params: ChunkParams,
    spans: &dyn TokenSpans,
    model: &ModelIdentity,
) -> Vec<Chunk> {
    let path_tokens = spans.spans(path).len() + 1;
    // [CLS] + [SEP] + path line + definition line.
    let budget = (params.max_tokens as usize)
        .saturating_sub(2 + path_tokens + DEFINITION_BUDGET)
        .max(8);
    let line_starts = line_starts(text);
    let segments = segments(text, &line_starts, &spans.spans(text), budget);
    if segments.is_empty() {
        return Vec::new();
    }
    let kind = FileKind::of(path);
    let lines: Vec<&str> = (0..line_starts.len())
        .map(|l| line_text(text, &line_starts, l))
        .collect();
    let outline = match params.chunker {
        Chunker::SyntaxV1 => syntax::outline(path, text),
        Chunker::LinesV1 => None,
    };
    // What was really used names the content ids: a file cut by lines has
    // the ids (and so the vectors) it has under lines-v1.
    let used = if outline.is_some() {
        Chunker::SyntaxV1
    } else {
        Chunker::LinesV1
    };

    let mut chunks = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut tokens = 0;
        let mut end = start;
        // Possible cuts: (segment index, priority; lower is better).
        let mut cuts: Vec<(usize, u8)> = Vec::new();
        while end < segments.len() && (end == start || tokens + segments[end].tokens <= budget) {
            tokens += segments[end].tokens;
            end += 1;
            if end < segments.len() && segments[end].start == line_starts[segments[end].line] {
                let l = segments[end].line;
                let priority = match &outline {
                    Some(o) => o
                        .starts
                        .get(l)
                        .copied()
                        .flatten()
                        .or_else(|| is_blank_boundary(&lines, l).then_some(SYNTAX_BLANK)),
                    None => is_boundary(&lines, l, kind).then_some(0),
                };
                if let Some(p) = priority {
                    cuts.push((end, p));
                }
            }
        }
        if end < segments.len()
            && let Some(cut) = choose_cut(&cuts, start, end, outline.is_some())
        {
            end = cut;
        }
        let first = segments[start];
        let last = segments[end - 1];
        let chunk_text = &text[first.start..last.end];
        if !chunk_text.trim().is_empty() {
            let definition = match &outline {
                Some(o) => o.enclosing(first.line).map(|l| shorten(lines[l].trim())),
                None => enclosing_definition(&lines, first.line, kind),
            };
            let embed_text = match definition {
                Some(def) => format!("{path}\n{def}\n{chunk_text}"),
                None => format!("{path}\n{chunk_text}"),
            };
            let tokens = (path_tokens
                + definition.map_or(0, |d| spans.spans(d).len() + 1)
                + segments[start..end].iter().map(|s| s.tokens).sum::<usize>())
                as u32;
            chunks.push(Chunk {
                start_line: first.line as u32 + 1,
                end_line: last.line as u32 + 1,
                text: chunk_text.to_string(),
                content_id: content_id(used, model, &embed_text),
                embed_text,
                tokens,
            });
        }
        if end >= segments.len() {
            break;
        }
        // Repeat the last lines in the next chunk, but always move forward.
        start = end
            .saturating_sub(params.overlap_lines as usize)
            .max(start + 1);
    }
    chunks
}

/// Priority of a blank-line cut under `syntax-v1`: after every item
/// boundary (depths 0 to 2).
const SYNTAX_BLANK: u8 = 3;

/// Where to end a chunk that would otherwise end at `end`: under
/// `lines-v1` the last natural boundary that keeps at least half the
/// chunk; under `syntax-v1` the outermost item boundary (then the latest)
/// that keeps at least a third, else a blank line that keeps half.
fn choose_cut(cuts: &[(usize, u8)], start: usize, end: usize, syntax: bool) -> Option<usize> {
    let len = end - start;
    if !syntax {
        return cuts
            .last()
            .filter(|(c, _)| c - start >= len.div_ceil(2))
            .map(|(c, _)| *c);
    }
    cuts.iter()
        .filter(|(c, p)| {
            let kept = c - start;
            if *p < SYNTAX_BLANK {
                kept >= len.div_ceil(3)
            } else {
                kept >= len.div_ceil(2)
            }
        })
        .min_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(c, _)| *c)
}

/// The content id: sha256 of the chunker that cut the text, the model
/// identity, and exactly the embedded text. Equal ids mean equal vectors,
/// which is what makes reusing vectors from a previous bundle safe.
pub fn content_id(chunker: Chunker, model: &ModelIdentity, embed_text: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"shelf-content-v1\0");
    h.update(chunker.name().as_bytes());
    h.update([0]);
    h.update(model.onnx_sha256);
    h.update(model.tokenizer_sha256);
    h.update(model.max_tokens.to_le_bytes());
    h.update(embed_text.as_bytes());
    h.finalize().into()
}

fn line_starts(text: &str) -> Vec<usize> {
    let mut starts = vec![0];
    starts.extend(
        text.match_indices('\n')
            .map(|(i, _)| i + 1)
            .filter(|&i| i < text.len()),
    );
    starts
}

fn line_text<'a>(text: &'a str, starts: &[usize], l: usize) -> &'a str {
    let end = starts.get(l + 1).copied().unwrap_or(text.len());
    text[starts[l]..end].trim_end_matches(['\n', '\r'])
}

/// Lines with their token counts; lines over `budget` are cut into pieces
/// at token boundaries.
fn segments(text: &str, starts: &[usize], spans: &[(usize, usize)], budget: usize) -> Vec<Segment> {
    let mut per_line: Vec<Vec<(usize, usize)>> = vec![Vec::new(); starts.len()];
    for &(s, e) in spans {
        let line = starts.partition_point(|&ls| ls <= s).saturating_sub(1);
        per_line[line].push((s, e));
    }
    let mut out = Vec::new();
    for (l, toks) in per_line.iter().enumerate() {
        let start = starts[l];
        let end = starts.get(l + 1).copied().unwrap_or(text.len());
        if toks.len() <= budget {
            out.push(Segment {
                line: l,
                start,
                end,
                tokens: toks.len(),
            });
            continue;
        }
        let mut piece_start = start;
        for group in toks.chunks(budget) {
            let piece_end = group.last().map_or(end, |t| t.1).max(piece_start);
            out.push(Segment {
                line: l,
                start: piece_start,
                end: piece_end,
                tokens: group.len(),
            });
            piece_start = piece_end;
        }
        if let Some(last) = out.last_mut() {
            last.end = end;
        }
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Markdown,
    Rst,
    Code,
}

impl FileKind {
    fn of(path: &str) -> Self {
        let lower = path.to_ascii_lowercase();
        if lower.ends_with(".md") || lower.ends_with(".markdown") || lower.ends_with(".mdx") {
            FileKind::Markdown
        } else if lower.ends_with(".rst") || lower.ends_with(".txt") {
            FileKind::Rst
        } else {
            FileKind::Code
        }
    }
}

/// Keywords that start a definition in common languages.
const DEFINITION_STARTS: &[&str] = &[
    "fn ",
    "pub fn ",
    "pub(crate) fn ",
    "async fn ",
    "pub async fn ",
    "impl ",
    "impl<",
    "struct ",
    "pub struct ",
    "enum ",
    "pub enum ",
    "trait ",
    "pub trait ",
    "mod ",
    "pub mod ",
    "macro_rules!",
    "def ",
    "async def ",
    "class ",
    "func ",
    "function ",
    "export ",
    "interface ",
    "type ",
    "public ",
    "private ",
    "protected ",
    "static ",
    "package ",
    "module ",
    "namespace ",
    "template",
    "#[",
    "@",
];

fn is_definition(line: &str) -> bool {
    let indent = line.len() - line.trim_start().len();
    indent <= 4
        && DEFINITION_STARTS
            .iter()
            .any(|k| line.trim_start().starts_with(k))
}

fn is_heading(lines: &[&str], l: usize, kind: FileKind) -> bool {
    match kind {
        FileKind::Markdown => lines[l].starts_with('#'),
        FileKind::Rst => lines.get(l + 1).is_some_and(|next| {
            next.len() >= 3
                && next
                    .chars()
                    .all(|c| matches!(c, '=' | '-' | '~' | '^' | '*'))
        }),
        FileKind::Code => false,
    }
}

fn is_blank_boundary(lines: &[&str], l: usize) -> bool {
    l > 0 && lines[l - 1].trim().is_empty() && !lines[l].trim().is_empty()
}

/// Whether a chunk may start at line `l`: after a blank line, at a
/// definition, or at a heading.
fn is_boundary(lines: &[&str], l: usize, kind: FileKind) -> bool {
    is_blank_boundary(lines, l)
        || is_heading(lines, l, kind)
        || (kind == FileKind::Code && is_definition(lines[l]))
}

/// The nearest definition or heading above `line` (trimmed and shortened),
/// unless the chunk starts with one.
fn enclosing_definition<'a>(lines: &[&'a str], line: usize, kind: FileKind) -> Option<&'a str> {
    let found = |l: usize| match kind {
        FileKind::Code => is_definition(lines[l]),
        _ => is_heading(lines, l, kind),
    };
    if found(line) {
        return None;
    }
    let l = (0..line).rev().find(|&l| found(l))?;
    Some(shorten(lines[l].trim()))
}

/// At most [`DEFINITION_CHARS`] characters of a definition line.
fn shorten(def: &str) -> &str {
    let cut = def
        .char_indices()
        .nth(DEFINITION_CHARS)
        .map_or(def.len(), |(i, _)| i);
    &def[..cut]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whitespace-separated words as tokens.
    struct Words;
    impl TokenSpans for Words {
        fn spans(&self, text: &str) -> Vec<(usize, usize)> {
            let mut out = Vec::new();
            let mut start = None;
            for (i, c) in text.char_indices() {
                match (c.is_whitespace(), start) {
                    (false, None) => start = Some(i),
                    (true, Some(s)) => {
                        out.push((s, i));
                        start = None;
                    }
                    _ => {}
                }
            }
            if let Some(s) = start {
                out.push((s, text.len()));
            }
            out
        }
    }

    fn model() -> ModelIdentity {
        ModelIdentity {
            name: "m".into(),
            dimensions: 4,
            pooling: "mean".into(),
            normalized: true,
            max_tokens: 256,
            onnx_sha256: [0; 32],
            tokenizer_sha256: [0; 32],
            query_prefix: String::new(),
            document_prefix: String::new(),
        }
    }

    fn params(max_tokens: u32) -> ChunkParams {
        ChunkParams {
            max_tokens,
            overlap_lines: 0,
            chunker: Chunker::LinesV1,
        }
    }

    #[test]
    fn small_file_is_one_chunk_with_path_header() {
        let c = chunk_file("src/a.rs", "fn a() {}\n", params(256), &Words, &model());
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].start_line, c[0].end_line), (1, 1));
        assert_eq!(c[0].text, "fn a() {}\n");
        assert_eq!(c[0].embed_text, "src/a.rs\nfn a() {}\n");
    }

    #[test]
    fn chunks_cover_every_line_within_the_budget() {
        let text: String = (0..200)
            .map(|i| format!("word{i} and some more words here\n"))
            .collect();
        let c = chunk_file("f.txt", &text, params(64), &Words, &model());
        assert!(c.len() > 5);
        assert_eq!(c[0].start_line, 1);
        assert_eq!(c.last().unwrap().end_line, 200);
        for w in c.windows(2) {
            assert_eq!(w[1].start_line, w[0].end_line + 1, "no gaps, no overlap");
        }
        assert!(c.iter().all(|ch| ch.tokens as usize <= 64 - 2));
    }

    #[test]
    fn cuts_at_definitions_and_names_the_enclosing_one() {
        let mut text = String::new();
        for f in 0..6 {
            text.push_str(&format!("fn f{f}() {{\n"));
            for l in 0..6 {
                text.push_str(&format!("    let v{l} = compute(a, b, c);\n"));
            }
            text.push_str("}\n");
        }
        let c = chunk_file("src/lib.rs", &text, params(120), &Words, &model());
        assert!(c.len() >= 2);
        for ch in &c {
            assert!(
                ch.text.starts_with("fn f"),
                "chunk starts mid-function: {:?}",
                ch.text
            );
        }
        // A function too long for one chunk: the continuation names it.
        let long: String = std::iter::once("fn big() {\n".to_string())
            .chain((0..80).map(|i| format!("    step({i}, more, words);\n")))
            .collect();
        let c = chunk_file("src/big.rs", &long, params(120), &Words, &model());
        assert!(c.len() > 1);
        assert!(
            c[1].embed_text
                .starts_with("src/big.rs\nfn big() {\n    step("),
            "{}",
            c[1].embed_text
        );
    }

    #[test]
    fn markdown_cuts_at_headings() {
        let mut text = String::new();
        for s in 0..4 {
            text.push_str(&format!("# Section {s}\n"));
            for _ in 0..10 {
                text.push_str("prose words in a paragraph of text\n");
            }
        }
        let c = chunk_file("docs/guide.md", &text, params(120), &Words, &model());
        assert!(
            c.iter().all(|ch| ch.text.starts_with("# Section")),
            "{c:#?}"
        );
    }

    #[test]
    fn overlong_line_is_split_not_dropped() {
        let line: String = (0..1000).map(|i| format!("t{i} ")).collect();
        let c = chunk_file("min.js", &line, params(64), &Words, &model());
        assert!(c.len() > 10);
        let joined: String = c.iter().map(|ch| ch.text.as_str()).collect();
        assert_eq!(joined, line);
        assert!(c.iter().all(|ch| ch.start_line == 1 && ch.end_line == 1));
    }

    #[test]
    fn overlap_repeats_whole_lines() {
        let text: String = (0..100).map(|i| format!("line {i} x y z\n")).collect();
        let p = ChunkParams {
            max_tokens: 64,
            overlap_lines: 2,
            chunker: Chunker::LinesV1,
        };
        let c = chunk_file("f.txt", &text, p, &Words, &model());
        for w in c.windows(2) {
            assert_eq!(
                w[1].start_line + 2,
                w[0].end_line + 1,
                "{:?} {:?}",
                w[0],
                w[1]
            );
        }
    }

    #[test]
    fn content_id_depends_on_text_and_model() {
        let m = model();
        let a = content_id(Chunker::LinesV1, &m, "x");
        assert_eq!(a, content_id(Chunker::LinesV1, &m, "x"));
        assert_ne!(a, content_id(Chunker::LinesV1, &m, "y"));
        assert_ne!(a, content_id(Chunker::SyntaxV1, &m, "x"));
        let mut m2 = m.clone();
        m2.onnx_sha256 = [1; 32];
        assert_ne!(a, content_id(Chunker::LinesV1, &m2, "x"));
    }

    fn syntax(max_tokens: u32) -> ChunkParams {
        ChunkParams {
            chunker: Chunker::SyntaxV1,
            ..params(max_tokens)
        }
    }

    #[test]
    fn syntax_v1_cuts_between_items_and_names_the_real_enclosing_definition() {
        // Methods of an impl with comments inside and no blank lines: the
        // keyword heuristic of lines-v1 sees `// fn` lines and nested
        // closures alike; the syntax tree knows where each method ends.
        let mut text = String::from("struct S;\nimpl S {\n");
        for m in 0..5 {
            text.push_str(&format!("    /// Method {m}.\n    pub fn m{m}(&self) {{\n"));
            for l in 0..5 {
                text.push_str(&format!("        let v{l} = compute(a, b, c, {m});\n"));
            }
            text.push_str("    }\n");
        }
        text.push_str("}\n");
        let c = chunk_file("src/s.rs", &text, syntax(110), &Words, &model());
        assert!(c.len() >= 3, "{c:#?}");
        for ch in &c[1..] {
            assert!(
                ch.text.starts_with("    /// Method"),
                "a chunk starts inside a method: {:?}",
                ch.text
            );
            assert!(
                ch.embed_text.starts_with("src/s.rs\nimpl S {\n"),
                "{}",
                ch.embed_text
            );
        }
        assert_eq!(c.last().unwrap().end_line as usize, text.lines().count());
        // A chunk inside a long method is headed by that method.
        let long: String = std::iter::once("fn big() {\n".to_string())
            .chain((0..80).map(|i| format!("    step({i}, more, words);\n")))
            .chain(std::iter::once("}\n".to_string()))
            .collect();
        let c = chunk_file("src/big.rs", &long, syntax(120), &Words, &model());
        assert!(c.len() > 1);
        assert!(
            c[1].embed_text
                .starts_with("src/big.rs\nfn big() {\n    step(")
        );
    }

    #[test]
    fn syntax_v1_cuts_other_files_exactly_as_lines_v1_with_the_same_ids() {
        let mut md = String::new();
        for s in 0..4 {
            md.push_str(&format!("# Section {s}\n"));
            for _ in 0..10 {
                md.push_str("prose words in a paragraph of text\n");
            }
        }
        for (path, text) in [
            ("docs/guide.md", md.as_str()),
            ("src/broken.rs", &"fn ( { ] ) ;; <<>> }}\n".repeat(50)),
        ] {
            let lines = chunk_file(path, text, params(120), &Words, &model());
            let syn = chunk_file(path, text, syntax(120), &Words, &model());
            assert_eq!(lines, syn, "{path}");
        }
        let rs = "fn a() {}\n";
        let lines = chunk_file("a.rs", rs, params(120), &Words, &model());
        let syn = chunk_file("a.rs", rs, syntax(120), &Words, &model());
        assert_eq!(lines[0].text, syn[0].text);
        assert_ne!(
            lines[0].content_id, syn[0].content_id,
            "cut by another chunker"
        );
    }

    #[test]
    fn whitespace_only_file_has_no_chunks() {
        assert!(chunk_file("e.txt", " \n\n\t\n", params(64), &Words, &model()).is_empty());
    }
}
