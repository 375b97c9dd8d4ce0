//! Query understanding for issue-like text: what in a query is code (spans
//! in backticks, identifiers, stack-trace frames, file paths) and what is
//! prose, and what kind of file it asks for.
//!
//! The lexical ranker gets every term, each weighing as `QueryTuning` says
//! (by default code terms weigh as prose: a double weight for an issue's
//! `HTTPAdapter.send` or `File "requests/sessions.py", line 12, in send`
//! was measured and cost more than it gave); the code's paths and names
//! feed the path mentions and the candidate sources. The semantic ranker gets the text as written (prose and code alike; the
//! measurement in docs/benchmarks.md is why). The kind of file asked for
//! ("where is X tested", "how do I", "release notes") steers the file-kind
//! prior in `code.rs`; anything else, a bug report or a feature, wants
//! source.
//!
//! Linear in the query's length, no regular expressions: it runs on every
//! query, up to the request limit (32 KiB).

use std::collections::{BTreeMap, HashSet};

use shelf_formats::FileKind;
use shelf_formats::lexical::Analyzer;

/// How the lexical query is weighted.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueryTuning {
    /// Weight of a term that occurs in code (backticks, an identifier, a
    /// frame); prose terms weigh 1.
    pub code_weight: f32,
    /// Embed the query without its code blocks and stack traces (when
    /// prose is left), instead of the text as written.
    pub prose_for_vectors: bool,
    /// Weight multiplier of a term that occurs in the first line (an
    /// issue's title, a commit's subject): 1 is none.
    pub title_weight: f32,
}

impl QueryTuning {
    /// Every term weighs the same and the text is embedded as written: the
    /// ranking before query understanding.
    pub const PLAIN: QueryTuning = QueryTuning {
        code_weight: 1.0,
        prose_for_vectors: false,
        title_weight: 1.0,
    };

    /// [`PLAIN`](Self::PLAIN) with code terms weighing twice as much as
    /// prose: the default until it was measured against sets nobody tuned
    /// on, kept for the benchmarks that measure it.
    pub const CODE_WEIGHTED: QueryTuning = QueryTuning {
        code_weight: 2.0,
        ..QueryTuning::PLAIN
    };
}

impl Default for QueryTuning {
    /// Code terms weigh as prose: twice the weight helped the development
    /// issues that were tuned on (no-leak MRR 0.727 to 0.747) and cost the
    /// held-out sets (sympy's issues R@5 0.775 to 0.751, MRR 0.688 to
    /// 0.673; validation history R@5 0.893 to 0.881), docs/benchmarks.md,
    /// "Candidate sources".
    fn default() -> Self {
        Self::PLAIN
    }
}

/// Fewest words of prose that make [`prose`] worth embedding alone.
const MIN_PROSE_WORDS: usize = 8;

/// `text` without fenced code blocks and stack-trace frames (and the
/// indented lines under a frame), when at least a few words of prose are
/// left; else `text` itself.
pub fn prose(text: &str) -> std::borrow::Cow<'_, str> {
    let mut out = String::new();
    let mut fenced = false;
    let mut in_trace = false;
    let mut dropped = false;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            fenced = !fenced;
            dropped = true;
            continue;
        }
        if fenced {
            continue;
        }
        if t.starts_with("Traceback (most recent call last)") || frame(line).is_some() {
            in_trace = true;
            dropped = true;
            continue;
        }
        // A frame's source line is indented under it.
        if in_trace && line.starts_with(char::is_whitespace) && !t.is_empty() {
            dropped = true;
            continue;
        }
        in_trace = false;
        out.push_str(line);
        out.push('\n');
    }
    if !dropped || out.split_whitespace().count() < MIN_PROSE_WORDS {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(out.trim().to_string())
}

/// A query, understood.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The lexical ranker's terms: distinct, with their counts in the query
    /// and their weights.
    pub terms: Vec<(String, u32, f32)>,
    /// Identifiers the query names, lowercased (also matched as names).
    pub symbols: HashSet<String>,
    /// The query's words, lowercased with `_`, `-` and `.` removed, and
    /// each adjacent pair run together ("content charset" also gives
    /// "contentcharset"), for matching file and directory names.
    pub names: HashSet<String>,
    /// File paths the query mentions (a frame's file, `src/x.rs`),
    /// lowercased, without a leading `./` or absolute prefix.
    pub paths: Vec<String>,
    /// The kind of file the query asks for.
    pub wants: FileKind,
    /// Every identifier the query names, as written, and where: what the
    /// definitions source looks up (`candidates.rs`).
    pub identifiers: BTreeMap<String, Mention>,
    /// Module paths the query names (`sympy.polys.factortools`,
    /// `crate::a::b`, `from x.y import z`), as lowercased `/`-joined
    /// parts (`sympy/polys/factortools`).
    pub modules: Vec<String>,
}

/// Where a query names an identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mention {
    /// Times as code in the text: a code span, a word that reads as code,
    /// a stack frame's function.
    pub code: u32,
    /// Times inside a fenced code block.
    pub block: u32,
    /// Times as a capitalised word of prose that does not start a sentence
    /// (`the Intersection of sets`).
    pub prose: u32,
    /// Whether the first line (an issue's title, a commit's subject) names
    /// it.
    pub title: bool,
}

/// Words of the languages themselves, never looked up as names.
const KEYWORDS: &[&str] = &[
    "and",
    "as",
    "assert",
    "async",
    "await",
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "def",
    "default",
    "del",
    "elif",
    "else",
    "enum",
    "except",
    "export",
    "extends",
    "false",
    "final",
    "finally",
    "for",
    "from",
    "func",
    "function",
    "global",
    "if",
    "impl",
    "import",
    "in",
    "interface",
    "is",
    "lambda",
    "let",
    "match",
    "mod",
    "mut",
    "new",
    "nil",
    "none",
    "nonlocal",
    "not",
    "null",
    "or",
    "package",
    "pass",
    "private",
    "protected",
    "pub",
    "public",
    "raise",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "type",
    "undefined",
    "use",
    "var",
    "void",
    "while",
    "with",
    "yield",
    "cls",
];

/// The identifier runs of a word as written (three characters or more,
/// not starting with a digit, not a keyword), each with `how` applied to
/// its mention.
fn mentions_in(
    word: &str,
    out: &mut BTreeMap<String, Mention>,
    title: bool,
    how: impl Fn(&mut Mention),
) {
    for id in word
        .split(|c: char| !is_ident_char(c))
        .map(|s| s.trim_matches('_'))
        .filter(|s| s.len() >= 3 && s.len() <= MAX_NAME)
        .filter(|s| s.chars().next().is_some_and(|c| !c.is_ascii_digit()))
        .filter(|s| !KEYWORDS.contains(&s.to_ascii_lowercase().as_str()))
    {
        let m = out.entry(id.to_string()).or_default();
        how(m);
        m.title |= title;
    }
}

/// The module path a dotted or `::` word names (`a.b.c`, `a::b`), as
/// lowercased `/`-joined parts, when it has two parts or more that are
/// all identifiers.
fn module_of(word: &str) -> Option<String> {
    let w = word.trim_matches(|c: char| !is_ident_char(c));
    let w = w.split('(').next().unwrap_or(w);
    let parts: Vec<&str> = if w.contains("::") {
        w.split("::").collect()
    } else {
        w.split('.').collect()
    };
    let ok = parts.len() >= 2
        && parts.iter().all(|p| {
            p.len() >= 2
                && p.chars().all(is_ident_char)
                && p.chars().next().is_some_and(|c| !c.is_ascii_digit())
        });
    ok.then(|| parts.join("/").to_lowercase())
}

/// Whether `word` is a capitalised prose word (`Intersection`): an upper
/// case letter then lower case ones, four letters or more.
fn capitalised(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !c.is_alphanumeric());
    let mut chars = w.chars();
    w.len() >= 4
        && chars.next().is_some_and(char::is_uppercase)
        && w.chars()
            .skip(1)
            .all(|c| c.is_lowercase() || c.is_ascii_digit())
}

/// Longest word kept as a name or symbol (longer is a hash or noise).
const MAX_NAME: usize = 64;
/// Queries longer than this many words are reports, not questions about
/// where tests or docs are.
const QUESTION_WORDS: usize = 30;

const SOURCE_EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "go", "ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs", "java", "kt",
    "scala", "c", "h", "cc", "cpp", "hpp", "cs", "rb", "php", "swift", "md", "rst", "toml", "yaml",
    "yml", "json",
];

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$'
}

/// Whether a whitespace-separated word reads as code: `snake_case`,
/// `camelCase`, `a.b`, `a::b`, `f()`, `a/b.rs`.
fn looks_like_code(word: &str) -> bool {
    let w = word.trim_matches(|c: char| !is_ident_char(c) && c != '(' && c != ')');
    if w.chars().filter(|c| c.is_alphabetic()).count() < 2 {
        return false;
    }
    let chars: Vec<char> = w.chars().collect();
    let inner_underscore = chars
        .windows(3)
        .any(|p| p[1] == '_' && p[0].is_alphanumeric() && p[2].is_alphanumeric());
    let leading_underscore = w.starts_with('_') && w.len() > 2;
    let camel = chars
        .windows(2)
        .any(|p| p[0].is_lowercase() && p[1].is_uppercase());
    let call = w.ends_with("()") || (w.contains('(') && !w.starts_with('('));
    let path_sep = w.contains("::") || w.contains("->");
    let dotted = chars.windows(3).enumerate().any(|(i, p)| {
        // `a.b` between identifier characters, each side at least two
        // long: `e.g.` and `i.e.` are not code.
        p[1] == '.'
            && p[0].is_alphanumeric()
            && p[2].is_alphanumeric()
            && i >= 1
            && chars[i - 1].is_alphanumeric()
            && chars.get(i + 3).is_some_and(|c| c.is_alphanumeric())
    });
    let slash_path = w.contains('/') && path_mention(w).is_some();
    inner_underscore || leading_underscore || camel || call || path_sep || dotted || slash_path
}

/// The file path a word names, if it names one: `dir/file.ext` or
/// `file.ext` with a known extension, optionally `:line[:col]` after it.
fn path_mention(word: &str) -> Option<String> {
    let w = word.trim_matches(|c: char| {
        matches!(
            c,
            '"' | '\'' | '`' | '(' | ')' | ',' | '<' | '>' | '[' | ']'
        )
    });
    // Drop `:line:col` and a trailing colon.
    let w = w.split(':').next().unwrap_or(w);
    let (stem, ext) = w.rsplit_once('.')?;
    if stem.is_empty() || !SOURCE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
        return None;
    }
    if !stem
        .chars()
        .all(|c| is_ident_char(c) || matches!(c, '/' | '\\' | '.' | '-'))
    {
        return None;
    }
    let p = w.replace('\\', "/").to_ascii_lowercase();
    let p = p
        .trim_start_matches("./")
        .trim_start_matches('/')
        .to_string();
    // A dotted name (`requests.get`) is no path; `sessions.py` is.
    (p.contains('/') || ext.len() <= 4).then_some(p)
}

/// The identifiers of a code word: each
/// identifier-character run of three or more characters.
fn identifiers(word: &str, out: &mut HashSet<String>) {
    for id in word
        .split(|c: char| !is_ident_char(c))
        .map(|s| s.trim_matches('_'))
        .filter(|s| s.len() >= 3 && s.len() <= MAX_NAME)
        .filter(|s| s.chars().next().is_some_and(|c| !c.is_ascii_digit()))
    {
        out.insert(id.to_lowercase());
    }
}

fn normalise_name(word: &str) -> String {
    word.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// What a frame line of a stack trace names: Python's `File "p", line
/// N, in f`, and the `at f (p:1:2)` of JavaScript and Java.
fn frame(line: &str) -> Option<(Option<String>, Option<String>)> {
    let t = line.trim();
    if let Some(rest) = t.strip_prefix("File \"") {
        let (path, after) = rest.split_once('"')?;
        let func = after
            .rsplit_once(" in ")
            .map(|(_, f)| f.trim().to_string())
            .filter(|f| !f.starts_with('<'));
        return Some((path_mention(path), func));
    }
    if let Some(rest) = t.strip_prefix("at ") {
        let func = rest
            .split([' ', '('])
            .next()
            .map(|f| f.rsplit('.').next().unwrap_or(f).to_string())
            .filter(|f| f.len() >= 3);
        let path = rest.split(['(', ')', ' ']).find_map(path_mention);
        return Some((path, func));
    }
    None
}

/// Understands `text` for a bundle whose lexical index uses `analyzer`.
pub fn analyze(analyzer: Analyzer, text: &str, tuning: &QueryTuning) -> Query {
    let mut code = String::new();
    let mut symbols = HashSet::new();
    let mut paths: Vec<String> = Vec::new();
    let mut fenced = false;
    let mut prose_words: Vec<String> = Vec::new();
    let mut named: BTreeMap<String, Mention> = BTreeMap::new();
    let mut modules: Vec<String> = Vec::new();
    let mut seen_title = false;
    for line in text.lines() {
        // The first line with words is the title (or a commit's subject).
        let title = !seen_title && !line.trim().is_empty();
        seen_title |= title;
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            code.push_str(line);
            code.push('\n');
            for word in line.split_whitespace() {
                mentions_in(word, &mut named, false, |m| m.block += 1);
                modules.extend(module_of(word));
            }
            continue;
        }
        if let Some((path, func)) = frame(line) {
            code.push_str(line);
            code.push('\n');
            if let Some(p) = path {
                paths.push(p);
            }
            if let Some(f) = func {
                identifiers(&f, &mut symbols);
                mentions_in(&f, &mut named, title, |m| m.code += 1);
            }
            continue;
        }
        // Inline code spans alternate with prose at each backtick.
        let mut sentence_start = true;
        for (i, part) in line.split('`').enumerate() {
            let in_span = i % 2 == 1;
            for word in part.split_whitespace() {
                if let Some(p) = path_mention(word) {
                    paths.push(p);
                }
                if in_span || looks_like_code(word) {
                    code.push_str(word);
                    code.push(' ');
                    identifiers(word, &mut symbols);
                    mentions_in(word, &mut named, title, |m| m.code += 1);
                    modules.extend(module_of(word));
                } else {
                    if !sentence_start && capitalised(word) {
                        mentions_in(word, &mut named, title, |m| m.prose += 1);
                    }
                    let n = normalise_name(word);
                    if !n.is_empty() && n.len() <= MAX_NAME {
                        prose_words.push(n);
                    }
                }
                sentence_start = word.ends_with(['.', '!', '?', ':']);
            }
        }
    }
    modules.sort();
    modules.dedup();
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    analyzer.analyze(text, |t| *counts.entry(t.to_string()).or_insert(0) += 1);
    let mut code_terms: HashSet<String> = HashSet::new();
    analyzer.analyze(&code, |t| {
        code_terms.insert(t.to_string());
    });
    let mut title_terms: HashSet<String> = HashSet::new();
    if tuning.title_weight != 1.0
        && let Some(title) = text.lines().find(|l| !l.trim().is_empty())
    {
        analyzer.analyze(title, |t| {
            title_terms.insert(t.to_string());
        });
    }
    let terms = counts
        .into_iter()
        .map(|(t, n)| {
            let mut w = if code_terms.contains(&t) {
                tuning.code_weight
            } else {
                1.0
            };
            if title_terms.contains(&t) {
                w *= tuning.title_weight;
            }
            (t, n, w)
        })
        .collect();
    let mut names: HashSet<String> = HashSet::new();
    for pair in prose_words.windows(2) {
        names.insert(format!("{}{}", pair[0], pair[1]));
    }
    names.extend(prose_words.iter().cloned());
    names.extend(symbols.iter().map(|s| normalise_name(s)));
    paths.sort();
    paths.dedup();
    Query {
        terms,
        symbols,
        names,
        paths,
        wants: wants(text),
        identifiers: named,
        modules,
    }
}

/// The kind of file `text` asks for: tests, docs or release notes when a
/// short question says so ("where is the retry tested", "how do I
/// configure retries", "which release notes mention X"), else source. A
/// long text is a report, and a report's fix is in the source whatever it
/// mentions.
pub fn wants(text: &str) -> FileKind {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|w| {
            w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'')
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() || words.len() > QUESTION_WORDS {
        return FileKind::Source;
    }
    let first = words[0].as_str();
    let question = matches!(
        first,
        "where"
            | "which"
            | "what"
            | "how"
            | "find"
            | "show"
            | "list"
            | "is"
            | "are"
            | "does"
            | "do"
            | "who"
            | "any"
    ) || text.trim_end().ends_with('?');
    if !question {
        return FileKind::Source;
    }
    let has = |set: &[&str]| words.iter().any(|w| set.contains(&w.as_str()));
    let phrase = |a: &str, b: &str| words.windows(2).any(|p| p[0] == a && p[1] == b);
    if has(&["changelog", "changelogs", "changes.md"])
        || phrase("release", "notes")
        || phrase("what's", "new")
    {
        FileKind::Changelog
    } else if has(&[
        "tested", "test", "tests", "testing", "spec", "specs", "fixture", "fixtures",
    ]) {
        FileKind::Test
    } else if has(&[
        "documented",
        "documentation",
        "docs",
        "doc",
        "readme",
        "tutorial",
        "guide",
        "example",
        "examples",
    ]) || (first == "how"
        && words
            .get(1)
            .is_some_and(|w| matches!(w.as_str(), "do" | "can" | "to" | "should")))
    {
        FileKind::Doc
    } else {
        FileKind::Source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Query {
        analyze(Analyzer::CodeV1, text, &QueryTuning::default())
    }

    fn weight(query: &Query, term: &str) -> Option<f32> {
        query.terms.iter().find(|(t, _, _)| t == term).map(|t| t.2)
    }

    #[test]
    fn code_in_prose_is_weighted_up_when_tuned_so_and_its_identifiers_become_symbols() {
        let text = "Fix `_encode_files` detection when HTTPAdapter.send retries on parseHeaders()";
        let query = analyze(Analyzer::CodeV1, text, &QueryTuning::CODE_WEIGHTED);
        for code in ["encode_files", "encode", "httpadapter.send", "parseheaders"] {
            assert_eq!(weight(&query, code), Some(2.0), "{code}: {:?}", query.terms);
        }
        assert_eq!(weight(&query, "detection"), Some(1.0));
        assert_eq!(weight(&query, "retries"), Some(1.0));
        for s in ["encode_files", "httpadapter", "send", "parseheaders"] {
            assert!(query.symbols.contains(s), "{s}: {:?}", query.symbols);
        }
        assert!(!query.symbols.contains("detection"));
        assert_eq!(query.wants, FileKind::Source);
        // Plain tuning, the default, weighs every term alike.
        let plain = analyze(Analyzer::CodeV1, "`x_y` z", &QueryTuning::PLAIN);
        assert!(plain.terms.iter().all(|t| t.2 == 1.0));
        assert!(q(text).terms.iter().all(|t| t.2 == 1.0));
    }

    #[test]
    fn prose_drops_code_blocks_and_traces_when_words_are_left() {
        let text = "Session.send fails when the pool is closed and retries are enabled\n```python\ns = Session()\ns.get(url)\n```\nTraceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    s.get(url)\nValueError: closed\nExpected a clear error instead.";
        assert_eq!(
            prose(text),
            "Session.send fails when the pool is closed and retries are enabled\nValueError: closed\nExpected a clear error instead."
        );
        // Nothing to drop, or too little prose left: the text as written.
        assert_eq!(prose("plain words only"), "plain words only");
        let mostly_code = "see\n```\nlet x = 1;\n```";
        assert_eq!(prose(mostly_code), mostly_code);
    }

    #[test]
    fn stack_frames_give_paths_and_functions() {
        let text = "Traceback (most recent call last):\n  File \"/usr/lib/python3/site-packages/requests/sessions.py\", line 529, in request\n    resp = self.send(prep, **send_kwargs)\n  File \"app.py\", line 3, in <module>\nTypeError: bad\n    at Router.handle (src/router/index.js:12:5)\nsee crates/ignore/src/walk.rs:101 too";
        let query = q(text);
        assert!(query.symbols.contains("request"), "{:?}", query.symbols);
        assert!(query.symbols.contains("handle"), "{:?}", query.symbols);
        for p in [
            "usr/lib/python3/site-packages/requests/sessions.py",
            "app.py",
            "src/router/index.js",
            "crates/ignore/src/walk.rs",
        ] {
            assert!(query.paths.iter().any(|x| x == p), "{p}: {:?}", query.paths);
        }
        // A frame's file is code: weighted up when code is.
        let coded = analyze(Analyzer::CodeV1, text, &QueryTuning::CODE_WEIGHTED);
        assert_eq!(weight(&coded, "sessions"), Some(2.0));
        assert_eq!(weight(&coded, "too"), Some(1.0));
    }

    #[test]
    fn identifiers_are_counted_where_they_are_named_and_modules_found() {
        let text = "`Permutation` fails in sympy.combinatorics.permutations\nThe Intersection of two sets, and then Union.\n```python\n>>> from sympy.printing.mathml import mathml\n>>> Permutation([[0, 1]])\n>>> x = 1\n```\n  File \"sympy/core/numbers.py\", line 10, in __new__\n";
        let query = q(text);
        let m = |name: &str| query.identifiers.get(name).copied().unwrap_or_default();
        assert_eq!(m("Permutation").code, 1);
        assert_eq!(m("Permutation").block, 1);
        assert!(m("Permutation").title);
        assert_eq!(m("Intersection").prose, 1, "{:?}", query.identifiers);
        assert!(!m("Intersection").title);
        // `The` starts a sentence, `Union` ends one: only the first is left out.
        assert_eq!(m("The"), Mention::default());
        assert_eq!(m("Union").prose, 1);
        assert_eq!(m("mathml").block, 2);
        assert_eq!(m("new").code, 0, "a keyword is no name");
        assert!(
            query.identifiers.keys().all(|k| k.len() >= 3),
            "{:?}",
            query.identifiers
        );
        assert_eq!(
            query.modules,
            ["sympy/combinatorics/permutations", "sympy/printing/mathml"]
        );
        assert_eq!(
            module_of("crate::router::tree"),
            Some("crate/router/tree".into())
        );
        assert_eq!(module_of("e.g."), None);
        assert_eq!(
            module_of("HTTPAdapter.send()"),
            Some("httpadapter/send".into())
        );
    }

    #[test]
    fn names_join_adjacent_words_for_file_and_directory_names() {
        let query = q("middleware: content charset should skip empty bodies");
        for n in ["middleware", "contentcharset", "charset", "skip"] {
            assert!(query.names.contains(n), "{n}: {:?}", query.names);
        }
        assert!(!query.names.contains("e.g"));
        assert!(!looks_like_code("e.g."));
        assert!(!looks_like_code("Hello."));
        assert!(looks_like_code("z.toJSONSchema"));
    }

    #[test]
    fn the_kind_asked_for_follows_short_questions_and_reports_want_source() {
        for (text, kind) in [
            ("where is the retry policy tested", FileKind::Test),
            ("which tests cover path parsing?", FileKind::Test),
            ("how do I configure the retry policy", FileKind::Doc),
            ("where is the compress middleware documented", FileKind::Doc),
            (
                "what do the release notes say about brotli",
                FileKind::Changelog,
            ),
            ("where is the retry policy implemented", FileKind::Source),
            ("Add tests for the retry policy", FileKind::Source),
            ("retry policy", FileKind::Source),
            ("", FileKind::Source),
        ] {
            assert_eq!(wants(text), kind, "{text}");
        }
        let report = format!(
            "How do I stop this crash? {}",
            "The test suite fails with a traceback when the session is closed. ".repeat(4)
        );
        assert_eq!(
            wants(&report),
            FileKind::Source,
            "a long report wants source"
        );
    }
}
