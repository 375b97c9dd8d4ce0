//! The syntax of a source file, as the chunker uses it (`syntax-v1`):
//! where its items start (top-level definitions and statements, the
//! members of classes, impls and modules, the statements of long bodies),
//! how deep each is, and which definition encloses a line. Parsed with
//! tree-sitter for Python, Rust, JavaScript, TypeScript (and TSX), Go and
//! Java; anything else, or a file that does not parse cleanly enough,
//! gets no outline and is chunked by lines (`lines-v1`).
//!
//! Only the outline crosses this module's boundary, so the chunker keeps
//! one algorithm (token budgets, overlap, headers) and syntax only decides
//! where it may cut and what a chunk's header names.

use tree_sitter::{Language, Node, Parser};

/// Files over this many bytes are chunked by lines: parse time grows with
/// size and such files are mostly generated.
const MAX_PARSE_BYTES: usize = 512 << 10;
/// Share of a file's lines inside parse errors over which the outline is
/// not trusted.
const MAX_ERROR_SHARE: f64 = 0.2;
/// Nesting levels of items recorded (0: top level; 1: members of a class
/// or impl, or statements of a top-level function; 2: below that).
const MAX_DEPTH: u8 = 2;

/// The languages parsed, by extension.
pub(crate) fn language_of(path: &str) -> Option<Language> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "py" | "pyi" => tree_sitter_python::LANGUAGE.into(),
        "rs" => tree_sitter_rust::LANGUAGE.into(),
        "js" | "jsx" | "mjs" | "cjs" => tree_sitter_javascript::LANGUAGE.into(),
        "ts" | "mts" | "cts" => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
        "tsx" => tree_sitter_typescript::LANGUAGE_TSX.into(),
        "go" => tree_sitter_go::LANGUAGE.into(),
        "java" => tree_sitter_java::LANGUAGE.into(),
        _ => return None,
    })
}

/// Whether `path` is in a language this module parses.
pub fn supports(path: &str) -> bool {
    language_of(path).is_some()
}

/// Where a file's items start, and what encloses each line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outline {
    /// Per line (0-based): the smallest depth of an item starting there
    /// (its leading comments and attributes included), if any.
    pub starts: Vec<Option<u8>>,
    /// Definitions (items with a name): `(first line, last line, line of
    /// the name)`, 0-based, outermost first.
    pub definitions: Vec<(usize, usize, usize)>,
}

impl Outline {
    /// The line of the innermost definition that contains `line` and
    /// starts before it (for a chunk's header).
    pub fn enclosing(&self, line: usize) -> Option<usize> {
        self.definitions
            .iter()
            .filter(|(s, e, _)| *s < line && line <= *e)
            .max_by_key(|(s, _, _)| *s)
            .map(|(_, _, name)| *name)
    }
}

/// Node kinds whose named children are the items one level deeper.
fn is_body(kind: &str) -> bool {
    kind == "block"
        || kind == "declaration_list"
        || kind == "statement_block"
        || kind == "class_body"
        || kind == "interface_body"
        || kind == "enum_body"
        || kind == "field_declaration_list"
        || kind == "object_type"
        || kind.ends_with("_body")
}

/// Nodes that belong to the item after them when they touch it.
fn is_leading(kind: &str) -> bool {
    kind.contains("comment") || kind == "attribute_item" || kind == "decorator"
}

/// The outline of `text` (the file at `path`), or `None`: another
/// language, too large, or too broken to trust.
pub fn outline(path: &str, text: &str) -> Option<Outline> {
    let language = language_of(path)?;
    let mut parser = Parser::new();
    parser.set_language(&language).ok()?;
    let tree = parse_trusted(&mut parser, text)?;
    let root = tree.root_node();
    let lines = text.lines().count().max(1);
    let mut out = Outline {
        starts: vec![None; lines + 1],
        definitions: Vec::new(),
    };
    items(root, 0, &mut out);
    out.starts.truncate(lines);
    Some(out)
}

/// The syntax tree of `text` by `parser` (its language already set), or
/// `None` when the text is too large to parse or too broken to trust: the
/// one rule the chunker and the definitions index share.
pub(crate) fn parse_trusted(parser: &mut Parser, text: &str) -> Option<tree_sitter::Tree> {
    if text.len() > MAX_PARSE_BYTES {
        return None;
    }
    let tree = parser.parse(text, None)?;
    let root = tree.root_node();
    let lines = text.lines().count().max(1);
    if root.has_error() && error_lines(root) as f64 > MAX_ERROR_SHARE * lines as f64 {
        return None;
    }
    Some(tree)
}

/// Lines covered by error nodes (roughly: the outermost ones).
fn error_lines(node: Node<'_>) -> usize {
    if node.is_error() || node.is_missing() {
        return node.end_position().row - node.start_position().row + 1;
    }
    if !node.has_error() {
        return 0;
    }
    let mut cursor = node.walk();
    node.children(&mut cursor).map(error_lines).sum()
}

/// Records the items among `parent`'s named children at `depth`, and
/// recurses into their bodies.
fn items(parent: Node<'_>, depth: u8, out: &mut Outline) {
    let mut cursor = parent.walk();
    let children: Vec<Node<'_>> = parent.named_children(&mut cursor).collect();
    let mut lead: Option<usize> = None;
    for (i, node) in children.iter().enumerate() {
        let start = node.start_position().row;
        let end = node.end_position().row;
        if is_leading(node.kind()) {
            // A comment or attribute that touches the next item starts it.
            let touches = children
                .get(i + 1)
                .is_some_and(|next| next.start_position().row <= end + 1);
            if touches {
                lead.get_or_insert(start);
                continue;
            }
        }
        let first = lead.take().unwrap_or(start);
        if let Some(slot) = out.starts.get_mut(first) {
            *slot = Some(slot.map_or(depth, |d| d.min(depth)));
        }
        if let Some(name) = definition_name(*node) {
            out.definitions.push((first, end, name));
        }
        if depth < MAX_DEPTH {
            descend(*node, depth + 1, out);
        }
    }
}

/// The line of a definition's name, looking through wrappers (`export`,
/// decorators) to the declaration they hold.
fn definition_name(node: Node<'_>) -> Option<usize> {
    if let Some(name) = node.child_by_field_name("name") {
        return Some(name.start_position().row);
    }
    // A Rust impl names its type, not itself.
    if node.kind() == "impl_item" {
        return node
            .child_by_field_name("type")
            .map(|t| t.start_position().row);
    }
    let inner = node
        .child_by_field_name("declaration")
        .or_else(|| node.child_by_field_name("definition"))?;
    inner
        .child_by_field_name("name")
        .map(|n| n.start_position().row)
}

/// The items inside `node`: the named children of its body, wherever the
/// grammar puts it (a `body` field, or a body-like child).
fn descend(node: Node<'_>, depth: u8, out: &mut Outline) {
    if is_body(node.kind()) {
        items(node, depth, out);
        return;
    }
    let mut cursor = node.walk();
    let kids: Vec<Node<'_>> = node.named_children(&mut cursor).collect();
    for kid in kids {
        if is_body(kid.kind()) {
            items(kid, depth, out);
        } else if matches!(
            kid.kind(),
            "class_declaration"
                | "function_declaration"
                | "lexical_declaration"
                | "interface_declaration"
                | "type_alias_declaration"
                | "enum_declaration"
                | "abstract_class_declaration"
                | "class_definition"
                | "function_definition"
                | "arrow_function"
                | "function_expression"
                | "variable_declarator"
                | "type_spec"
                | "internal_module"
        ) {
            // Wrappers (export, decorators, declarators) hold the item
            // whose body is one level down.
            descend(kid, depth, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts(o: &Outline) -> Vec<(usize, u8)> {
        o.starts
            .iter()
            .enumerate()
            .filter_map(|(l, d)| d.map(|d| (l, d)))
            .collect()
    }

    #[test]
    fn rust_items_members_and_their_docs() {
        let text = "use std::fmt;\n\n/// A router.\n#[derive(Debug)]\npub struct Router {\n    routes: Vec<u8>,\n}\n\nimpl Router {\n    /// Adds one.\n    pub fn add(&mut self) {\n        self.routes.push(1);\n    }\n\n    fn len(&self) -> usize {\n        self.routes.len()\n    }\n}\n";
        let o = outline("src/router.rs", text).unwrap();
        // use (0), doc+attr+struct (2), its field (5), impl (8), its
        // methods with their docs (9, 14), their statements (11, 15).
        assert_eq!(
            starts(&o),
            [
                (0, 0),
                (2, 0),
                (5, 1),
                (8, 0),
                (9, 1),
                (11, 2),
                (14, 1),
                (15, 2)
            ]
        );
        assert_eq!(o.enclosing(11), Some(10), "inside add: its name line");
        assert_eq!(o.enclosing(8), None, "the impl's own line");
        assert_eq!(o.enclosing(15), Some(14));
    }

    #[test]
    fn python_classes_decorators_and_methods() {
        let text = "import os\n\n\nclass Session:\n    \"\"\"A session.\"\"\"\n\n    @property\n    def closed(self):\n        return False\n\n    def send(self, request):\n        x = 1\n        return x\n";
        let o = outline("requests/sessions.py", text).unwrap();
        let s = starts(&o);
        for want in [(0, 0), (3, 0), (6, 1), (10, 1)] {
            assert!(s.contains(&want), "{want:?} in {s:?}");
        }
        assert_eq!(o.enclosing(11), Some(10));
        assert_eq!(o.enclosing(8), Some(7), "a decorated method names itself");
    }

    #[test]
    fn go_typescript_javascript_and_java_parse_too() {
        let go = "package chi\n\n// Mux routes.\ntype Mux struct {\n\tn int\n}\n\nfunc (mx *Mux) Handle(p string) {\n\tmx.n++\n}\n";
        let o = outline("mux.go", go).unwrap();
        assert!(
            starts(&o).contains(&(2, 0)) && starts(&o).contains(&(7, 0)),
            "{:?}",
            starts(&o)
        );
        assert_eq!(o.enclosing(8), Some(7));
        let ts = "export class ZodString {\n  parse(input: unknown): string {\n    return String(input);\n  }\n}\n\nexport function optional(x: number) {\n  return x;\n}\n";
        let o = outline("packages/zod/src/types.ts", ts).unwrap();
        assert!(starts(&o).contains(&(1, 1)), "{:?}", starts(&o));
        assert_eq!(o.enclosing(2), Some(1));
        assert!(starts(&o).contains(&(6, 0)));
        let js = "function a() {\n  return 1;\n}\nconst b = () => {\n  return 2;\n};\n";
        assert!(outline("lib/a.js", js).is_some());
        let java = "class A {\n  void run() {\n    go();\n  }\n}\n";
        let o = outline("src/A.java", java).unwrap();
        assert!(starts(&o).contains(&(1, 1)), "{:?}", starts(&o));
    }

    #[test]
    fn other_languages_and_broken_files_get_no_outline() {
        assert!(outline("README.md", "# x\n").is_none());
        assert!(outline("Makefile", "all:\n").is_none());
        let broken: String = "fn ( { ] ) ;; <<>> }}\n".repeat(50);
        assert!(outline("src/broken.rs", &broken).is_none());
        assert!(supports("a/b.tsx") && !supports("a/b.toml"));
    }
}
