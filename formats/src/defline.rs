//! The definition lines of source text: which name a line defines, and
//! what kind of thing it is, if the line starts a definition, in the
//! common languages. Recognised line by line, with no parser: the builder
//! uses it for the definitions index where no syntax tree is available
//! (other languages, files a parser refuses, or `definitions = "lines"`),
//! and the engine's `find_definitions` scans the file texts of bundles
//! older than the definitions index with it.

use crate::definitions::DefKind;

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
    defined(line).map(|(name, _)| name)
}

/// The kind a definition keyword introduces; an indented `def`, `fn` or
/// `func` is taken for a method.
fn kind_of(keyword: &str, indented: bool) -> DefKind {
    match keyword.trim_end() {
        "fn" | "def" | "func" | "function" | "function*" if indented => DefKind::Method,
        "fn" | "def" | "func" | "function" | "function*" => DefKind::Function,
        "class" | "struct" | "union" | "record" => DefKind::Class,
        "trait" | "interface" => DefKind::Interface,
        "enum" => DefKind::Enum,
        "type" => DefKind::Type,
        "impl" => DefKind::Impl,
        "mod" => DefKind::Module,
        "macro_rules!" => DefKind::Macro,
        _ => DefKind::Variable,
    }
}

/// The name a line defines and its kind, if the line starts a definition.
pub fn defined(line: &str) -> Option<(&str, DefKind)> {
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
        return (!name.is_empty()).then_some((name, kind_of(k, indent > 0)));
    }
    for k in ["const ", "let ", "var "] {
        if indent <= 4 && t.starts_with(k) {
            let name = ident_prefix(t[k.len()..].trim_start());
            return (!name.is_empty()).then_some((name, DefKind::Variable));
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
        let kind = if indent > 0 {
            DefKind::Method
        } else {
            DefKind::Function
        };
        return Some((name, kind));
    }
    None
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
        for (line, kind) in [
            ("def send(self):", DefKind::Function),
            ("    def send(self):", DefKind::Method),
            ("class Session:", DefKind::Class),
            ("pub trait Send {", DefKind::Interface),
            ("impl Router {", DefKind::Impl),
            ("export const optional = (inner) => {", DefKind::Variable),
            ("  parse(input: unknown): T {", DefKind::Method),
            ("macro_rules! vec {", DefKind::Macro),
        ] {
            assert_eq!(defined(line).map(|d| d.1), Some(kind), "{line}");
        }
    }
}
