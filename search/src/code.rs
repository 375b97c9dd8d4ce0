//! Code-aware ranking on top of BM25 and vectors: each ranked chunk's score
//! is multiplied by what its file and its text say about the query.
//!
//! - **File-kind prior.** Tests, docs and changelogs share an issue's
//!   vocabulary, so both rankers like them, while a fix goes to source.
//!   A chunk of a file of another kind than the one asked for
//!   (`query::wants`, or the request's `kind`) is scaled down by that
//!   kind's factor: a prior, not a filter, so "where is X tested" still
//!   finds tests and a source-less answer still has files.
//! - **Definitions.** A chunk that defines a symbol the query names
//!   (`fn send`, `def send`, `func (c *Client) Send`, `class Session`) is
//!   where that symbol lives, not one of its hundred uses.
//! - **Path and module names.** A file whose name or directory is a word
//!   of the query ("the compress middleware" → `middleware/compress.go`),
//!   or whose path the query mentions (a frame), is scaled up.
//!
//! Every factor was kept because it helped on held-out history queries and
//! on the development issues both (docs/benchmarks.md, "Code-aware
//! ranking"); [`CodeTuning::OFF`] is the ranking before them.

use std::collections::HashMap;
use std::str::FromStr;

use shelf_formats::FileKind;
use shelf_formats::chunks::ChunkStore;

use crate::query::Query;
use crate::rank::Ranked;

/// The kind of file a request prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KindPreference {
    /// Whatever the query asks for (`query::wants`): source unless a short
    /// question asks for tests, docs or release notes.
    #[default]
    Auto,
    /// No preference: every kind ranks as the rankers say.
    Any,
    /// This kind.
    Prefer(FileKind),
}

impl FromStr for KindPreference {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(KindPreference::Auto),
            "any" => Ok(KindPreference::Any),
            other => other
                .parse::<FileKind>()
                .map(KindPreference::Prefer)
                .map_err(|_| {
                    format!(
                        "unknown kind '{}'; use auto, any, or one of {}",
                        other.chars().take(32).collect::<String>(),
                        FileKind::ALL.map(FileKind::name).join(", ")
                    )
                }),
        }
    }
}

impl KindPreference {
    /// The kind to prefer for `query` (`None`: no preference).
    pub fn resolve(self, query: &Query) -> Option<FileKind> {
        match self {
            KindPreference::Auto => Some(query.wants),
            KindPreference::Any => None,
            KindPreference::Prefer(k) => Some(k),
        }
    }
}

/// The factors, each 0 (or 1 for the prior) when off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodeTuning {
    /// Score factor of a file that is not of the preferred kind, by its
    /// kind, when source is preferred (source itself is 1).
    pub prior: [(FileKind, f32); 5],
    /// Score factor of a source file when another kind is preferred.
    pub source_when_other: f32,
    /// Boost of a chunk that defines a symbol the query names.
    pub definition: f32,
    /// Boost of a file whose name is a word of the query.
    pub file_name: f32,
    /// Boost of a file in a directory whose name is a word of the query.
    pub dir_name: f32,
    /// Boost of a file whose path the query mentions.
    pub path_mention: f32,
    /// Chunks (best first) whose text is read for definitions.
    pub definition_depth: usize,
}

impl CodeTuning {
    /// No code-aware factor: the ranking as the rankers and fusion give it.
    pub const OFF: CodeTuning = CodeTuning {
        prior: [
            (FileKind::Test, 1.0),
            (FileKind::Doc, 1.0),
            (FileKind::Changelog, 1.0),
            (FileKind::Generated, 1.0),
            (FileKind::Other, 1.0),
        ],
        source_when_other: 1.0,
        definition: 0.0,
        file_name: 0.0,
        dir_name: 0.0,
        path_mention: 0.0,
        definition_depth: 0,
    };

    /// Whether any factor is on.
    pub fn is_off(&self) -> bool {
        *self == CodeTuning::OFF
    }

    fn prior_of(&self, kind: FileKind, wanted: FileKind) -> f32 {
        if kind == wanted {
            return 1.0;
        }
        if kind == FileKind::Source {
            return self.source_when_other;
        }
        self.prior
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(1.0, |(_, f)| *f)
    }
}

impl Default for CodeTuning {
    fn default() -> Self {
        Self {
            prior: [
                (FileKind::Test, 0.6),
                (FileKind::Doc, 0.7),
                (FileKind::Changelog, 0.4),
                (FileKind::Generated, 0.4),
                (FileKind::Other, 0.8),
            ],
            source_when_other: 0.7,
            definition: 0.3,
            file_name: 0.3,
            dir_name: 0.1,
            path_mention: 0.5,
            definition_depth: 200,
        }
    }
}

/// Re-scores `ranked` (best first) for `query` and sorts it again.
pub fn rerank(
    chunks: &ChunkStore<'_>,
    query: &Query,
    wanted: Option<FileKind>,
    ranked: &mut [Ranked],
    tuning: &CodeTuning,
) {
    if tuning.is_off() || ranked.is_empty() {
        return;
    }
    let mut by_path: HashMap<usize, f32> = HashMap::new();
    for (i, r) in ranked.iter_mut().enumerate() {
        let Ok(key) = usize::try_from(r.key) else {
            continue;
        };
        let Some(p) = chunks.path_index(key) else {
            continue;
        };
        let file = *by_path.entry(p).or_insert_with(|| {
            chunks
                .path(p)
                .map_or(1.0, |path| path_factor(path, query, wanted, tuning))
        });
        let mut factor = file;
        if tuning.definition > 0.0
            && i < tuning.definition_depth
            && !query.symbols.is_empty()
            && let Some(c) = chunks.get(key)
            && defines_any(c.text, query)
        {
            factor *= 1.0 + tuning.definition;
        }
        r.score *= factor;
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.key.cmp(&b.key)));
}

/// Names too generic to say which module a file is (`src/lib.rs`).
const GENERIC_STEMS: &[&str] = &["mod", "index", "__init__", "lib", "main", "init"];

fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The factor every chunk of the file at `path` gets.
fn path_factor(path: &str, query: &Query, wanted: Option<FileKind>, t: &CodeTuning) -> f32 {
    let mut f = wanted.map_or(1.0, |w| t.prior_of(FileKind::of(path), w));
    let parts: Vec<&str> = path.split('/').collect();
    let Some((file, dirs)) = parts.split_last() else {
        return f;
    };
    let stem = file.split('.').next().unwrap_or(file);
    let stem = if GENERIC_STEMS.contains(&stem) {
        dirs.last().copied().unwrap_or(stem)
    } else {
        stem
    };
    if t.file_name > 0.0 && query.names.contains(&normalise(stem)) {
        f *= 1.0 + t.file_name;
    }
    if t.dir_name > 0.0 && dirs.iter().any(|d| query.names.contains(&normalise(d))) {
        f *= 1.0 + t.dir_name;
    }
    if t.path_mention > 0.0 && query.paths.iter().any(|m| mentions(path, m)) {
        f *= 1.0 + t.path_mention;
    }
    f
}

/// Whether the mention `m` (lowercased) names `path`: the same file name
/// and, when the mention has directories, the same last two components
/// (`site-packages/requests/sessions.py` names `src/requests/sessions.py`).
fn mentions(path: &str, m: &str) -> bool {
    let p: Vec<String> = path.rsplit('/').take(2).map(str::to_lowercase).collect();
    let q: Vec<&str> = m.rsplit('/').take(2).collect();
    match (q.as_slice(), p.as_slice()) {
        ([f], [pf, ..]) => f == pf,
        ([f, d], [pf, pd]) => f == pf && d == pd,
        _ => false,
    }
}

/// Modifiers that may precede a definition keyword.
const MODIFIERS: &[&str] = &[
    "pub(crate) ",
    "pub(super) ",
    "pub ",
    "export default ",
    "export ",
    "async ",
    "static ",
    "public ",
    "private ",
    "protected ",
    "internal ",
    "final ",
    "abstract ",
    "override ",
    "unsafe ",
    "extern ",
    "inline ",
    "virtual ",
    "readonly ",
    "declare ",
    "const fn ",
];

/// Keywords after which the next identifier is being defined.
const DEFINERS: &[&str] = &[
    "fn ",
    "def ",
    "class ",
    "func ",
    "function ",
    "function* ",
    "struct ",
    "enum ",
    "trait ",
    "type ",
    "interface ",
    "impl ",
    "mod ",
    "macro_rules! ",
    "union ",
    "record ",
];

/// Keywords that may look like a method definition (`if (x) {`).
const NOT_NAMES: &[&str] = &[
    "if",
    "for",
    "while",
    "switch",
    "catch",
    "return",
    "new",
    "else",
    "do",
    "try",
    "match",
    "synchronized",
    "using",
    "with",
    "when",
    "elif",
    "except",
    "foreach",
    "loop",
];

fn ident_prefix(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The name a line defines, if it starts a definition.
pub fn defined_name(line: &str) -> Option<&str> {
    let indent = line.len() - line.trim_start().len();
    let mut t = line.trim_start();
    while let Some(m) = MODIFIERS.iter().find(|m| t.starts_with(**m)) {
        t = t[m.len()..].trim_start();
    }
    let generic_impl = t.starts_with("impl<");
    if let Some(k) = DEFINERS
        .iter()
        .find(|k| t.starts_with(**k))
        .or(generic_impl.then_some(&"impl "))
    {
        let skip = if generic_impl { 4 } else { k.len() };
        let mut rest = t[skip..].trim_start();
        if *k == "func " && rest.starts_with('(') {
            // Go: func (r *Recv) Name(...)
            rest = rest.split_once(')')?.1.trim_start();
        }
        if *k == "impl " {
            if rest.starts_with('<') {
                rest = rest.split_once('>')?.1.trim_start();
            }
            if let Some((_, ty)) = rest.split_once(" for ") {
                rest = ty.trim_start();
            }
        }
        let name = ident_prefix(rest);
        return (!name.is_empty()).then_some(name);
    }
    for k in ["const ", "let ", "var "] {
        if indent <= 4 && t.starts_with(k) {
            let name = ident_prefix(t[k.len()..].trim_start());
            return (!name.is_empty()).then_some(name);
        }
    }
    // A method or function with a return type (`parse(input) {`,
    // `Foo bar(int x) {`): the identifier before the first '(' on a line
    // that opens a block, with no assignment or call chain before it.
    let open = t.trim_end();
    if open.ends_with('{') && !t.starts_with('}') {
        let (before, _) = t.split_once('(')?;
        if before.contains('=') || before.contains('.') || before.contains('"') {
            return None;
        }
        let name = before.trim_end().rsplit(' ').next()?;
        let name = ident_prefix(name);
        let first = ident_prefix(before.trim_start());
        if name.is_empty() || NOT_NAMES.contains(&name) || NOT_NAMES.contains(&first) {
            return None;
        }
        return Some(name);
    }
    None
}

/// Whether `text` defines one of the query's symbols.
fn defines_any(text: &str, query: &Query) -> bool {
    text.lines().any(|line| {
        defined_name(line)
            .is_some_and(|n| n.len() >= 3 && query.symbols.contains(&n.to_lowercase()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_are_recognised_in_the_common_languages() {
        for (line, name) in [
            ("pub fn send(&self) -> Result<()> {", Some("send")),
            (
                "    pub(crate) async fn retry_policy() {}",
                Some("retry_policy"),
            ),
            ("impl<T> Display for Wrapper<T> {", Some("Wrapper")),
            ("impl Router {", Some("Router")),
            ("def send(self, request, **kwargs):", Some("send")),
            ("    async def fetch(self):", Some("fetch")),
            ("class Session(SessionRedirectMixin):", Some("Session")),
            (
                "func (mx *Mux) Handle(pattern string, handler http.Handler) {",
                Some("Handle"),
            ),
            (
                "func NewCompressor(level int, types ...string) *Compressor {",
                Some("NewCompressor"),
            ),
            (
                "export function toJSONSchema(schema) {",
                Some("toJSONSchema"),
            ),
            ("export const optional = (inner) => {", Some("optional")),
            ("  parse(input: unknown): T {", Some("parse")),
            (
                "    public List<String> splitLines(String s) {",
                Some("splitLines"),
            ),
            (
                "type Middleware = func(http.Handler) http.Handler",
                Some("Middleware"),
            ),
            ("    if (x) {", None),
            ("    } else if (y) {", None),
            ("    let x = compute(y);", Some("x")),
            ("            let deep = 1;", None),
            ("    return send(request) {", None),
            ("    foo.bar(baz) {", None),
            ("just prose here", None),
        ] {
            assert_eq!(defined_name(line), name, "{line}");
        }
    }

    #[test]
    fn kind_preferences_parse_and_say_what_is_wrong() {
        assert_eq!("auto".parse(), Ok(KindPreference::Auto));
        assert_eq!("Any".parse(), Ok(KindPreference::Any));
        assert_eq!("test".parse(), Ok(KindPreference::Prefer(FileKind::Test)));
        let e = "tests".parse::<KindPreference>().unwrap_err();
        assert!(
            e.contains("unknown kind 'tests'") && e.contains("auto, any"),
            "{e}"
        );
    }

    #[test]
    fn mentions_match_the_file_and_its_directory() {
        assert!(mentions(
            "src/requests/sessions.py",
            "usr/lib/site-packages/requests/sessions.py"
        ));
        assert!(mentions("src/requests/sessions.py", "sessions.py"));
        assert!(!mentions("src/requests/models.py", "sessions.py"));
        assert!(!mentions("src/other/sessions.py", "requests/sessions.py"));
    }
}
