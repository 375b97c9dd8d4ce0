//! The definitions stage: every definition in the indexed files (name,
//! enclosing scope, kind, lines) for the definitions index
//! (`definitions.bin`, bundle format 1.4). Python, Rust, JavaScript,
//! TypeScript, Go and Java files are read from their syntax tree (the
//! tree-sitter grammars of `syntax.rs`), which knows where a definition
//! ends and what encloses it; other files, and files a parser refuses, by
//! the line recogniser (`shelf_formats::defline`: a name and a kind per
//! line, no scope, the definition's end taken as its first line).
//! `definitions = "lines"` uses the line recogniser everywhere.

use std::str::FromStr;

use shelf_formats::definitions::{DefKind, Definition};
use shelf_formats::defline;
use tree_sitter::{Node, Parser};

/// Longest name kept, in bytes (longer is generated or noise).
const MAX_NAME: usize = 128;
/// Deepest syntax nesting walked: definitions below it are not listed
/// (keeps the walk bounded on pathological files).
const MAX_NESTING: usize = 256;

/// How definitions are found (`build.definitions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Extractor {
    /// Syntax trees where a grammar exists, the line recogniser elsewhere.
    #[default]
    Syntax,
    /// The line recogniser everywhere.
    Lines,
    /// No definitions index.
    Off,
}

impl Extractor {
    /// The manifest's `settings.definitions` (`None`: no index).
    pub fn kind(self) -> Option<&'static str> {
        match self {
            Extractor::Syntax => Some("defs-v1/syntax"),
            Extractor::Lines => Some("defs-v1/lines"),
            Extractor::Off => None,
        }
    }

    /// The setting's value in `shelf.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Extractor::Syntax => "syntax",
            Extractor::Lines => "lines",
            Extractor::Off => "off",
        }
    }
}

impl FromStr for Extractor {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "syntax" => Ok(Extractor::Syntax),
            "lines" => Ok(Extractor::Lines),
            "off" => Ok(Extractor::Off),
            other => Err(format!(
                "unknown definitions extractor '{other}'; use syntax, lines or off"
            )),
        }
    }
}

/// The definitions of the file at `path` (its chunk store path number
/// `path_index`), in the order found.
pub fn of_file(extractor: Extractor, path: &str, path_index: u32, text: &str) -> Vec<Definition> {
    let found = match extractor {
        Extractor::Off => return Vec::new(),
        Extractor::Syntax => by_syntax(path, text).unwrap_or_else(|| by_lines(path, text)),
        Extractor::Lines => by_lines(path, text),
    };
    found
        .into_iter()
        .filter(|f| !f.name.is_empty() && f.name.len() <= MAX_NAME && f.scope.len() <= MAX_NAME)
        .map(|f| Definition {
            name: f.name,
            scope: f.scope,
            kind: f.kind,
            path_index,
            start_line: f.start_line,
            end_line: f.end_line,
        })
        .collect()
}

/// A definition before it has a path number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Found {
    name: String,
    scope: String,
    kind: DefKind,
    start_line: u32,
    end_line: u32,
}

/// Whether the line recogniser applies to `path`: files whose extension
/// names a programming language (prose and data would give noise like
/// "type" or "class" at a line start).
fn is_code(path: &str) -> bool {
    const CODE: &[&str] = &[
        "rs", "py", "pyi", "go", "ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs", "java",
        "kt", "kts", "scala", "swift", "c", "h", "cc", "cpp", "cxx", "hpp", "hh", "cs", "rb",
        "php", "lua", "ex", "exs", "dart", "m", "mm", "zig", "jl", "r", "pl", "pm", "sh", "bash",
        "vue", "svelte",
    ];
    path.rsplit_once('.')
        .is_some_and(|(_, ext)| CODE.contains(&ext.to_ascii_lowercase().as_str()))
}

fn by_lines(path: &str, text: &str) -> Vec<Found> {
    if !is_code(path) {
        return Vec::new();
    }
    text.lines()
        .enumerate()
        .filter_map(|(n, line)| {
            let (name, kind) = defline::defined(line)?;
            let line = n as u32 + 1;
            Some(Found {
                name: name.to_string(),
                scope: String::new(),
                kind,
                start_line: line,
                end_line: line,
            })
        })
        .collect()
}

/// The grammar's name for a file, if `syntax.rs` parses it.
fn language(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "py" | "pyi" => "python",
        "rs" => "rust",
        "js" | "jsx" | "mjs" | "cjs" => "javascript",
        "ts" | "mts" | "cts" | "tsx" => "typescript",
        "go" => "go",
        "java" => "java",
        _ => return None,
    })
}

/// What a syntax node defines, if anything: its kind, the node holding
/// its name, and whether it opens a scope for what is inside it.
fn definition_of<'t>(
    lang: &str,
    node: Node<'t>,
    in_type: bool,
    top: bool,
) -> Option<(DefKind, Node<'t>)> {
    let name = || node.child_by_field_name("name");
    let func = if in_type {
        DefKind::Method
    } else {
        DefKind::Function
    };
    let kind = node.kind();
    match (lang, kind) {
        ("python", "function_definition") => Some((func, name()?)),
        ("python", "class_definition") => Some((DefKind::Class, name()?)),
        ("python", "assignment") if top => {
            let left = node.child_by_field_name("left")?;
            (left.kind() == "identifier").then_some((DefKind::Variable, left))
        }
        ("rust", "function_item" | "function_signature_item") => Some((func, name()?)),
        ("rust", "struct_item" | "union_item") => Some((DefKind::Class, name()?)),
        ("rust", "enum_item") => Some((DefKind::Enum, name()?)),
        ("rust", "trait_item") => Some((DefKind::Interface, name()?)),
        ("rust", "type_item") => Some((DefKind::Type, name()?)),
        ("rust", "const_item" | "static_item") => Some((DefKind::Variable, name()?)),
        ("rust", "mod_item") => Some((DefKind::Module, name()?)),
        ("rust", "macro_definition") => Some((DefKind::Macro, name()?)),
        ("rust", "impl_item") => {
            let mut ty = node.child_by_field_name("type")?;
            // `impl<T> Wrapper<T>`, `impl a::B`: the type's own name.
            while let Some(inner) = ty
                .child_by_field_name("type")
                .or_else(|| ty.child_by_field_name("name"))
            {
                if inner.id() == ty.id() {
                    break;
                }
                ty = inner;
            }
            Some((DefKind::Impl, ty))
        }
        (
            "javascript" | "typescript",
            "function_declaration" | "generator_function_declaration" | "function_signature",
        ) => Some((DefKind::Function, name()?)),
        ("javascript" | "typescript", "class_declaration" | "abstract_class_declaration") => {
            Some((DefKind::Class, name()?))
        }
        (
            "javascript" | "typescript",
            "method_definition" | "method_signature" | "abstract_method_signature",
        ) => Some((DefKind::Method, name()?)),
        ("typescript", "interface_declaration") => Some((DefKind::Interface, name()?)),
        ("typescript", "type_alias_declaration") => Some((DefKind::Type, name()?)),
        ("typescript", "enum_declaration") => Some((DefKind::Enum, name()?)),
        ("typescript", "module" | "internal_module") => {
            let n = name()?;
            (n.kind() == "identifier").then_some((DefKind::Module, n))
        }
        ("javascript" | "typescript", "variable_declarator") if top => {
            let n = name()?;
            if n.kind() != "identifier" {
                return None;
            }
            let is_function = node.child_by_field_name("value").is_some_and(|v| {
                matches!(
                    v.kind(),
                    "arrow_function" | "function_expression" | "function" | "generator_function"
                )
            });
            let kind = if is_function {
                DefKind::Function
            } else {
                DefKind::Variable
            };
            Some((kind, n))
        }
        ("go", "function_declaration") => Some((DefKind::Function, name()?)),
        ("go", "method_declaration") => Some((DefKind::Method, name()?)),
        ("go", "type_spec" | "type_alias") => {
            let kind = match node.child_by_field_name("type").map(|t| t.kind()) {
                Some("struct_type") => DefKind::Class,
                Some("interface_type") => DefKind::Interface,
                _ => DefKind::Type,
            };
            Some((kind, name()?))
        }
        ("go", "const_spec" | "var_spec") if top => Some((DefKind::Variable, name()?)),
        ("java", "class_declaration" | "record_declaration") => Some((DefKind::Class, name()?)),
        ("java", "interface_declaration" | "annotation_type_declaration") => {
            Some((DefKind::Interface, name()?))
        }
        ("java", "enum_declaration") => Some((DefKind::Enum, name()?)),
        ("java", "method_declaration" | "constructor_declaration") => {
            Some((DefKind::Method, name()?))
        }
        _ => None,
    }
}

/// Kinds whose members are methods (a function inside one is a method).
fn is_type_scope(kind: DefKind) -> bool {
    matches!(
        kind,
        DefKind::Class | DefKind::Interface | DefKind::Enum | DefKind::Impl
    )
}

/// Node kinds that never hold a definition: the walk does not go into
/// them (most of a file's nodes are inside literals and comments).
fn holds_no_definition(kind: &str) -> bool {
    kind.contains("string")
        || kind.contains("comment")
        || kind.ends_with("_literal")
        || matches!(
            kind,
            "identifier" | "integer" | "float" | "number" | "type_identifier" | "field_identifier"
        )
}

/// Node kinds whose children are still at the top level of a file (so a
/// variable declared there is module-level).
fn keeps_top(kind: &str) -> bool {
    matches!(
        kind,
        "module"
            | "program"
            | "source_file"
            | "expression_statement"
            | "export_statement"
            | "lexical_declaration"
            | "variable_declaration"
            | "const_declaration"
            | "var_declaration"
            | "decorated_definition"
    )
}

/// The receiver type of a Go method (`func (m *Mux) Handle`: `Mux`).
fn go_receiver(node: Node<'_>, text: &str) -> Option<String> {
    let receiver = node.child_by_field_name("receiver")?;
    let mut stack = vec![receiver];
    while let Some(n) = stack.pop() {
        if n.kind() == "type_identifier" {
            return n.utf8_text(text.as_bytes()).ok().map(str::to_string);
        }
        let mut cursor = n.walk();
        let kids: Vec<Node<'_>> = n.named_children(&mut cursor).collect();
        stack.extend(kids.into_iter().rev());
    }
    None
}

fn by_syntax(path: &str, text: &str) -> Option<Vec<Found>> {
    let lang = language(path)?;
    let tree = {
        let language = crate::syntax::language_of(path)?;
        let mut parser = Parser::new();
        parser.set_language(&language).ok()?;
        crate::syntax::parse_trusted(&mut parser, text)?
    };
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    // Scopes are an arena of (parent, name) so a frame carries an index,
    // not a copy of its enclosing names.
    let mut scopes: Vec<(usize, String)> = vec![(0, String::new())];
    let joined = |scopes: &[(usize, String)], mut at: usize| {
        let mut names = Vec::new();
        while at != 0 {
            names.push(scopes[at].1.as_str());
            at = scopes[at].0;
        }
        names.reverse();
        names.join(".")
    };
    // (node, scope, whether the scope is a type, top level, nesting).
    type Frame<'t> = (Node<'t>, usize, bool, bool, usize);
    let mut stack: Vec<Frame<'_>> = vec![(tree.root_node(), 0, false, true, 0)];
    let mut cursor = tree.walk();
    while let Some((node, scope, in_type, top, nesting)) = stack.pop() {
        let mut inner_scope = scope;
        let mut inner_type = in_type;
        let mut inner_top = top && keeps_top(node.kind());
        if let Some((kind, name_node)) = definition_of(lang, node, in_type, top) {
            // The name's line: what "defined at line N" points at (below
            // decorators and attributes, like the line recogniser's).
            let start = name_node.start_position().row;
            if let Ok(name) = name_node.utf8_text(bytes) {
                let mut own_scope = joined(&scopes, scope);
                if lang == "go"
                    && kind == DefKind::Method
                    && let Some(r) = go_receiver(node, text)
                {
                    own_scope = r;
                }
                out.push(Found {
                    name: name.to_string(),
                    scope: own_scope,
                    kind,
                    start_line: start as u32 + 1,
                    end_line: node.end_position().row as u32 + 1,
                });
                if kind != DefKind::Variable {
                    scopes.push((scope, name.to_string()));
                    inner_scope = scopes.len() - 1;
                    inner_type = is_type_scope(kind);
                }
            }
            inner_top = false;
        }
        if nesting >= MAX_NESTING || holds_no_definition(node.kind()) {
            continue;
        }
        let first = stack.len();
        for kid in node.named_children(&mut cursor) {
            stack.push((kid, inner_scope, inner_type, inner_top, nesting + 1));
        }
        // Children in file order on top of the stack.
        stack[first..].reverse();
    }
    // The walk is depth-first with children pushed in reverse: found in
    // file order already, but sort to say so.
    out.sort_by(|a, b| {
        (a.start_line, a.end_line, &a.name).cmp(&(b.start_line, b.end_line, &b.name))
    });
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(path: &str, text: &str) -> Vec<(String, String, DefKind, u32, u32)> {
        of_file(Extractor::Syntax, path, 0, text)
            .into_iter()
            .map(|d| (d.name, d.scope, d.kind, d.start_line, d.end_line))
            .collect()
    }

    fn has(found: &[(String, String, DefKind, u32, u32)], name: &str, scope: &str, kind: DefKind) {
        assert!(
            found
                .iter()
                .any(|f| f.0 == name && f.1 == scope && f.2 == kind),
            "{name} in {scope:?} as {kind:?}: {found:?}"
        );
    }

    #[test]
    fn python_classes_methods_decorators_and_module_names() {
        let text = "import os\n\nMatrix = MutableDenseMatrix\n\n\nclass Session:\n    timeout = 3\n\n    @property\n    def closed(self):\n        def inner():\n            pass\n        return False\n\n\ndef ccode(expr):\n    x = 1\n    return x\n";
        let f = names("sympy/printing/ccode.py", text);
        has(&f, "Matrix", "", DefKind::Variable);
        has(&f, "Session", "", DefKind::Class);
        has(&f, "closed", "Session", DefKind::Method);
        has(&f, "inner", "Session.closed", DefKind::Function);
        has(&f, "ccode", "", DefKind::Function);
        // Assignments inside bodies are not definitions.
        assert!(!f.iter().any(|d| d.0 == "x" || d.0 == "timeout"), "{f:?}");
        // A decorated method starts at its name's line, below the
        // decorator, and ends with its body.
        let closed = f.iter().find(|d| d.0 == "closed").unwrap();
        assert_eq!((closed.3, closed.4), (10, 13));
        let ccode = f.iter().find(|d| d.0 == "ccode").unwrap();
        assert_eq!((ccode.3, ccode.4), (16, 18));
    }

    #[test]
    fn rust_go_typescript_and_java_scopes() {
        let rs = "pub struct Router;\n\nimpl<T> Display for Wrapper<T> {\n    fn fmt(&self) {}\n}\n\nmod inner {\n    pub const LIMIT: u32 = 3;\n    pub trait Handler { fn handle(&self); }\n}\n\nmacro_rules! route { () => {} }\n";
        let f = names("src/router.rs", rs);
        has(&f, "Router", "", DefKind::Class);
        has(&f, "Wrapper", "", DefKind::Impl);
        has(&f, "fmt", "Wrapper", DefKind::Method);
        has(&f, "LIMIT", "inner", DefKind::Variable);
        has(&f, "Handler", "inner", DefKind::Interface);
        has(&f, "handle", "inner.Handler", DefKind::Method);
        has(&f, "route", "", DefKind::Macro);
        let go = "package chi\n\ntype Mux struct{ n int }\n\ntype Router interface{ Handle() }\n\nfunc (mx *Mux) Handle(p string) {}\n\nfunc NewMux() *Mux { return nil }\n\nconst Limit = 3\n";
        let f = names("mux.go", go);
        has(&f, "Mux", "", DefKind::Class);
        has(&f, "Router", "", DefKind::Interface);
        has(&f, "Handle", "Mux", DefKind::Method);
        has(&f, "NewMux", "", DefKind::Function);
        has(&f, "Limit", "", DefKind::Variable);
        let ts = "export class ZodString {\n  parse(input: unknown): string {\n    const local = 1;\n    return String(input);\n  }\n}\n\nexport const optional = (x: number) => x;\nexport interface Schema { a: number }\ntype Id = string;\nfunction helper() {}\n";
        let f = names("packages/zod/src/types.ts", ts);
        has(&f, "ZodString", "", DefKind::Class);
        has(&f, "parse", "ZodString", DefKind::Method);
        has(&f, "optional", "", DefKind::Function);
        has(&f, "Schema", "", DefKind::Interface);
        has(&f, "Id", "", DefKind::Type);
        has(&f, "helper", "", DefKind::Function);
        assert!(!f.iter().any(|d| d.0 == "local"), "{f:?}");
        let optional = f.iter().find(|d| d.0 == "optional").unwrap();
        assert_eq!((optional.3, optional.4), (8, 8));
        let java = "class A {\n  A() {}\n  void run() {\n    go();\n  }\n}\n";
        let f = names("src/A.java", java);
        has(&f, "A", "", DefKind::Class);
        has(&f, "run", "A", DefKind::Method);
        has(&f, "A", "A", DefKind::Method);
    }

    #[test]
    fn other_languages_and_broken_files_fall_back_to_lines() {
        let c = "static int parse_header(const char *p) {\n  return 0;\n}\n";
        let f = names("src/http.c", c);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!((f[0].0.as_str(), f[0].3, f[0].4), ("parse_header", 1, 1));
        let broken = format!(
            "{}def survives(x):\n    pass\n",
            "fn ( { ] ) ;; <<>> }}\n".repeat(50)
        );
        let f = names("src/broken.py", &broken);
        assert!(f.iter().any(|d| d.0 == "survives"), "{f:?}");
        // Prose is not code: nothing at all.
        assert!(names("README.md", "class Notes:\ntype this\n").is_empty());
        // `lines` reads Python by lines too, without scopes.
        let f = of_file(
            Extractor::Lines,
            "a.py",
            3,
            "class A:\n    def run(self):\n        pass\n",
        );
        let got: Vec<_> = f
            .iter()
            .map(|d| (d.name.as_str(), d.kind, d.path_index))
            .collect();
        assert_eq!(got, [("A", DefKind::Class, 3), ("run", DefKind::Method, 3)]);
        assert!(of_file(Extractor::Off, "a.py", 0, "def f(): pass\n").is_empty());
        assert_eq!("lines".parse(), Ok(Extractor::Lines));
        assert!(
            "ast"
                .parse::<Extractor>()
                .unwrap_err()
                .contains("syntax, lines or off")
        );
    }
}
