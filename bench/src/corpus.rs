//! The benchmark's repository: a deterministic mix of Rust, Python and
//! Markdown files in nested directories, sized like a real code base (most
//! files 1-8 KB, a few up to 30 KB). Generated rather than checked in so the
//! size is a flag, and generated from words that mean something so the
//! tokenizer and the model see text shaped like real code and prose (random
//! bytes would tokenize very differently). Same seed, same bytes.

use std::collections::BTreeSet;

use crate::rng::Rng;

/// The language of a generated file; decides its syntax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `.rs`
    Rust,
    /// `.py`
    Python,
    /// `.md`
    Markdown,
}

impl Kind {
    /// The kind of a generated path, by extension.
    pub fn of(path: &str) -> Kind {
        if path.ends_with(".rs") {
            Kind::Rust
        } else if path.ends_with(".py") {
            Kind::Python
        } else {
            Kind::Markdown
        }
    }
}

/// One generated file.
#[derive(Debug, Clone)]
pub struct File {
    /// Repository-relative path with `/` separators (as git and the builder
    /// name it).
    pub path: String,
    /// Its contents.
    pub text: String,
}

/// A generated repository's files.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// The files, in generation order.
    pub files: Vec<File>,
}

/// How a corpus is generated beyond its file count and seed.
#[derive(Debug, Clone, Default)]
pub struct Style {
    /// Every file one or two chunks (about 0.7-1.5 KB) instead of a real
    /// code base's mix: many small repositories build in minutes.
    pub small: bool,
    /// Words of this repository alone, used for one noun in four, so that
    /// queries written in them have one right repository among many.
    pub theme: Vec<String>,
}

impl Corpus {
    /// `count` files from `seed`.
    pub fn generate(count: usize, seed: u64) -> Corpus {
        Self::generate_styled(count, seed, &Style::default())
    }

    /// `count` files from `seed` in `style` (the default style is
    /// [`Corpus::generate`]'s output, byte for byte).
    pub fn generate_styled(count: usize, seed: u64, style: &Style) -> Corpus {
        let mut rng = Rng::new(seed);
        let layout = Layout::new(count, &mut rng);
        let mut taken = BTreeSet::new();
        let mut files = Vec::with_capacity(count);
        for _ in 0..count {
            let roll = rng.below(100);
            let kind = match roll {
                0..50 => Kind::Rust,
                50..80 => Kind::Python,
                _ => Kind::Markdown,
            };
            let path = unique_path(layout.path(kind, &mut rng), &mut taken);
            let size = if style.small {
                small_size(&mut rng)
            } else {
                target_size(&mut rng)
            };
            let text = Gen(&mut rng, &style.theme).file(kind, size);
            files.push(File { path, text });
        }
        Corpus { files }
    }

    /// Total bytes of text.
    pub fn text_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.text.len() as u64).sum()
    }

    /// Files per kind: (Rust, Python, Markdown).
    pub fn count_by_kind(&self) -> (usize, usize, usize) {
        let n = |k| self.files.iter().filter(|f| Kind::of(&f.path) == k).count();
        (n(Kind::Rust), n(Kind::Python), n(Kind::Markdown))
    }
}

/// The file with one more definition (or section) at its end: the most
/// common small change.
pub fn append_definition(path: &str, text: &str, rng: &mut Rng) -> String {
    let mut g = Gen(rng, &[]);
    let mut out = text.to_string();
    match Kind::of(path) {
        Kind::Rust => out.push_str(&g.rust_fn("", true)),
        Kind::Python => out.push_str(&g.python_def("")),
        Kind::Markdown => out.push_str(&g.markdown_section()),
    }
    out
}

/// The file with a comment line inserted in its middle: a change that
/// touches existing chunks rather than adding new ones at the end.
pub fn edit_middle(path: &str, text: &str, rng: &mut Rng) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.len() / 2;
    let indent: String = lines
        .get(at)
        .map(|l| l.chars().take_while(|c| *c == ' ').collect())
        .unwrap_or_default();
    let sentence = Gen(rng, &[]).sentence();
    let inserted = match Kind::of(path) {
        Kind::Rust => format!("{indent}// {sentence}"),
        Kind::Python => format!("{indent}# {sentence}"),
        Kind::Markdown => sentence,
    };
    let mut out = String::with_capacity(text.len() + inserted.len() + 1);
    for (i, line) in lines.iter().enumerate() {
        if i == at {
            out.push_str(&inserted);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    if at >= lines.len() {
        out.push_str(&inserted);
        out.push('\n');
    }
    out
}

/// Bytes to aim a file at: log-uniform over 0.3-3 KB for most files
/// (a header and one whole definition make files of ~0.8-3.5 KB), 8-30 KB
/// for 2%. A 256-token chunk holds ~540 bytes of code (the same on shelf's
/// own sources), so this averages ~3.5 chunks per file; files of 1-8 KB
/// throughout would average ~6, far from typical repositories.
fn target_size(rng: &mut Rng) -> usize {
    const LO: f64 = 300.0;
    const HI: f64 = 3000.0;
    if rng.chance(2) {
        rng.range(8 * 1024, 30 * 1024)
    } else {
        (LO * (HI / LO).powf(rng.unit())) as usize
    }
}

/// Bytes to aim a small file at: log-uniform over 200-900 (a header and
/// one definition make files of about 0.7-1.5 KB).
fn small_size(rng: &mut Rng) -> usize {
    (200.0 * 4.5f64.powf(rng.unit())) as usize
}

/// `path`, or `path` with a numeric suffix if that is already taken.
fn unique_path(path: String, taken: &mut BTreeSet<String>) -> String {
    if taken.insert(path.clone()) {
        return path;
    }
    let (stem, ext) = path.rsplit_once('.').unwrap_or((path.as_str(), ""));
    let mut i = 2;
    loop {
        let candidate = format!("{stem}_{i}.{ext}");
        if taken.insert(candidate.clone()) {
            return candidate;
        }
        i += 1;
    }
}

/// The directory structure: a few crates, services and doc sections, scaled
/// with the file count so directories hold tens of files, not thousands.
struct Layout {
    crates: Vec<String>,
    services: Vec<String>,
    sections: Vec<String>,
}

impl Layout {
    fn new(count: usize, rng: &mut Rng) -> Layout {
        // Two directories may draw the same name; they are then one.
        let names = |n: usize, rng: &mut Rng| -> Vec<String> {
            (0..n)
                .map(|_| format!("{}-{}", rng.pick(NOUNS), rng.pick(SUFFIXES)))
                .collect()
        };
        Layout {
            crates: names((count / 60).max(2), rng),
            services: names((count / 80).max(2), rng),
            sections: names((count / 120).max(2), rng),
        }
    }

    fn path(&self, kind: Kind, rng: &mut Rng) -> String {
        let noun = rng.pick(NOUNS);
        let verb = rng.pick(VERBS);
        match kind {
            Kind::Rust => {
                let krate = rng.pick_ref(&self.crates);
                let mut dir = format!("crates/{krate}/src");
                for _ in 0..rng.below(3) {
                    dir.push('/');
                    dir.push_str(rng.pick(NOUNS));
                }
                format!("{dir}/{noun}_{verb}.rs")
            }
            Kind::Python => {
                let svc = rng.pick_ref(&self.services);
                let pkg = svc.replace('-', "_");
                if rng.chance(20) {
                    format!("services/{svc}/tests/test_{noun}_{verb}.py")
                } else {
                    let sub = if rng.chance(50) {
                        format!("/{}", rng.pick(NOUNS))
                    } else {
                        String::new()
                    };
                    format!("services/{svc}/{pkg}{sub}/{noun}_{verb}.py")
                }
            }
            Kind::Markdown => {
                if rng.chance(15) {
                    format!("crates/{}/README.md", rng.pick_ref(&self.crates))
                } else {
                    format!("docs/{}/{verb}-{noun}.md", rng.pick_ref(&self.sections))
                }
            }
        }
    }
}

/// Text generation over one PRNG, with the repository's own words.
struct Gen<'a>(&'a mut Rng, &'a [String]);

/// Percent of nouns drawn from a theme, when there is one.
const THEME_PERCENT: u32 = 25;

impl<'a> Gen<'a> {
    fn noun(&mut self) -> &'a str {
        let theme = self.1;
        // No draw without a theme: the default output stays as it was.
        if !theme.is_empty() && self.0.chance(THEME_PERCENT) {
            return self.0.pick_ref(theme).as_str();
        }
        self.0.pick(NOUNS)
    }
    fn verb(&mut self) -> &'static str {
        self.0.pick(VERBS)
    }
    fn adj(&mut self) -> &'static str {
        self.0.pick(ADJECTIVES)
    }
    fn num(&mut self) -> usize {
        self.0.pick(&[2, 3, 8, 16, 32, 64, 100, 256, 1000, 4096])
    }
    fn type_name(&mut self) -> String {
        let n = self.noun();
        if self.0.chance(40) {
            let m = self.noun();
            format!("{}{}", camel(n), camel(m))
        } else {
            camel(n)
        }
    }

    /// One English sentence about nouns of the code base.
    fn sentence(&mut self) -> String {
        let (v, a, n, n2, n3) = (
            self.verb(),
            self.adj(),
            self.noun(),
            self.noun(),
            self.noun(),
        );
        let (v2, a2, k) = (self.verb(), self.adj(), self.num());
        match self.0.below(12) {
            0 => format!("{} every {a} {n} before the {n2} is {a2}.", cap(v)),
            1 => format!("If the {n} has no {n2}, this falls back to the {a} {n3}."),
            2 => format!(
                "Returns an error when the {n} exceeds the {n2} limit of {k} {}.",
                plural(n3)
            ),
            3 => format!(
                "The {n} is kept {a} so that {} can {v} it later.",
                plural(n2)
            ),
            4 => format!("Runs once per {n}; doing it twice would {v} the {a} {n2} again."),
            5 => format!("Note: the {n} must be {a} before you {v} the {n2}."),
            6 => format!("Uses a {a} {n} to {v} {} in logarithmic time.", plural(n2)),
            7 => format!("See `{v}_{n}` for how the {n2} becomes {a}."),
            8 => format!(
                "Why here: to {v} the {n} before the {n2} handler, which runs on every {n3}."
            ),
            9 => format!(
                "Each {n} holds at most {k} {} and one {a2} {n3}.",
                plural(n2)
            ),
            10 => format!(
                "{} the {n} first, then {v2} the {a} {} in order.",
                cap(v),
                plural(n2)
            ),
            _ => format!("A {a} {n} means the {n2} was never {a2}; {v2} it and retry."),
        }
    }

    fn paragraph(&mut self, sentences: usize) -> String {
        (0..sentences)
            .map(|_| self.sentence())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A file of `kind` of about `size` bytes (whole definitions, so a
    /// little over).
    fn file(&mut self, kind: Kind, size: usize) -> String {
        let mut out = match kind {
            Kind::Rust => self.rust_header(),
            Kind::Python => self.python_header(),
            Kind::Markdown => format!("# {}\n\n{}\n", self.title(), self.paragraph(3)),
        };
        let mut items = 0;
        while out.len() < size {
            let item = match kind {
                Kind::Rust => match self.0.below(10) {
                    0..5 => self.rust_fn("", true),
                    5..8 => self.rust_struct(),
                    _ => self.rust_enum(),
                },
                Kind::Python => {
                    if self.0.chance(35) {
                        self.python_class()
                    } else {
                        self.python_def("")
                    }
                }
                Kind::Markdown => self.markdown_section(),
            };
            // Definitions are long next to small targets: stop rather than
            // overshoot by much, but keep at least one.
            if items > 0 && out.len() + item.len() > size + size / 4 {
                break;
            }
            out.push_str(&item);
            items += 1;
        }
        out
    }

    fn rust_header(&mut self) -> String {
        let mut out = format!(
            "//! {}\n//!\n//! {}\n\n",
            self.sentence(),
            self.paragraph(2)
        );
        out.push_str("use std::collections::HashMap;\n");
        for _ in 0..self.0.range(1, 4) {
            let (m, t) = (self.noun(), self.type_name());
            out.push_str(&format!("use crate::{m}::{t};\n"));
        }
        out
    }

    fn rust_fn(&mut self, indent: &str, public: bool) -> String {
        let (v, a, n) = (self.verb(), self.adj(), self.noun());
        let (arg, ret) = (self.noun(), self.type_name());
        let arg_ty = self.type_name();
        let mut out = format!("\n{indent}/// {}\n", self.sentence());
        if self.0.chance(50) {
            out.push_str(&format!("{indent}///\n{indent}/// {}\n", self.paragraph(2)));
        }
        let vis = if public { "pub " } else { "" };
        out.push_str(&format!(
            "{indent}{vis}fn {v}_{a}_{n}(&self, {arg}: &{arg_ty}, limit: usize) -> Result<{ret}, Error> {{\n"
        ));
        let body = format!("{indent}    ");
        for _ in 0..self.0.range(3, 10) {
            out.push_str(&self.rust_statement(&body, arg));
        }
        out.push_str(&format!("{body}Ok({ret}::from({arg}))\n{indent}}}\n"));
        out
    }

    fn rust_statement(&mut self, ind: &str, arg: &str) -> String {
        let (v, a, n, n2) = (self.verb(), self.adj(), self.noun(), self.noun());
        let k = self.num();
        match self.0.below(8) {
            0 => format!(
                "{ind}let {n} = self.{}.get(&{arg}.id()).ok_or(Error::Missing{})?;\n",
                plural(n),
                camel(n)
            ),
            1 => format!(
                "{ind}let mut {}: Vec<{}> = Vec::with_capacity(limit.min({k}));\n",
                plural(n),
                self.type_name()
            ),
            2 => format!(
                "{ind}if {arg}.is_{a}() {{\n{ind}    return Err(Error::{}{}({arg}.id()));\n{ind}}}\n",
                camel(a),
                camel(n)
            ),
            3 => format!(
                "{ind}for item in {arg}.{}().filter(|x| x.{n2}_count() > {k}) {{\n{ind}    item.{v}_{n}(limit)?;\n{ind}}}\n",
                plural(n)
            ),
            4 => format!("{ind}// {}\n", self.sentence()),
            5 => format!(
                "{ind}let total: u64 = {arg}.{}().map(|x| x.{n2}_size()).sum();\n",
                plural(n)
            ),
            6 => format!(
                "{ind}match {arg}.{n}_state() {{\n{ind}    State::{} => self.{v}_{n2}({arg})?,\n{ind}    _ => tracing::debug!({n} = %{arg}.id(), \"{v} {a} {n2}\"),\n{ind}}}\n",
                camel(a)
            ),
            _ => format!("{ind}self.{v}_{n}(&{arg}, {k})?;\n"),
        }
    }

    fn rust_struct(&mut self) -> String {
        let name = self.type_name();
        let mut out = format!(
            "\n/// {}\n#[derive(Debug, Clone)]\npub struct {name} {{\n",
            self.sentence()
        );
        for _ in 0..self.0.range(2, 6) {
            let (f, t) = (self.noun(), self.type_name());
            out.push_str(&format!("    /// {}\n    pub {f}: {t},\n", self.sentence()));
        }
        out.push_str(&format!("}}\n\nimpl {name} {{"));
        for _ in 0..self.0.range(1, 3) {
            out.push_str(&self.rust_fn("    ", true));
        }
        out.push_str("}\n");
        out
    }

    fn rust_enum(&mut self) -> String {
        let mut out = format!(
            "\n/// {}\n#[derive(Debug, Clone, Copy, PartialEq, Eq)]\npub enum {} {{\n",
            self.sentence(),
            self.type_name()
        );
        for _ in 0..self.0.range(2, 6) {
            let a = self.adj();
            out.push_str(&format!("    /// {}\n    {},\n", self.sentence(), camel(a)));
        }
        out.push_str("}\n");
        out
    }

    fn python_header(&mut self) -> String {
        let mut out = format!(
            "\"\"\"{}\n\n{}\n\"\"\"\n\nimport logging\nimport os\n",
            self.sentence(),
            self.paragraph(2)
        );
        for _ in 0..self.0.range(1, 3) {
            let (m, t) = (self.noun(), self.type_name());
            out.push_str(&format!("from .{m} import {t}\n"));
        }
        out.push_str("\nlog = logging.getLogger(__name__)\n");
        out
    }

    fn python_def(&mut self, indent: &str) -> String {
        let (v, a, n, arg) = (self.verb(), self.adj(), self.noun(), self.noun());
        let this = if indent.is_empty() { "" } else { "self, " };
        let mut out = format!(
            "\n\n{indent}def {v}_{a}_{n}({this}{arg}, limit={}):\n{indent}    \"\"\"{}\n\n{indent}    {}\n{indent}    \"\"\"\n",
            self.num(),
            self.sentence(),
            self.sentence()
        );
        let body = format!("{indent}    ");
        for _ in 0..self.0.range(3, 9) {
            out.push_str(&self.python_statement(&body, arg));
        }
        out.push_str(&format!("{body}return {arg}\n"));
        out
    }

    fn python_statement(&mut self, ind: &str, arg: &str) -> String {
        let (v, a, n, n2) = (self.verb(), self.adj(), self.noun(), self.noun());
        let k = self.num();
        match self.0.below(7) {
            0 => format!(
                "{ind}{} = [x for x in {arg}.{}() if x.is_{a}()]\n",
                plural(n),
                plural(n)
            ),
            1 => format!(
                "{ind}if len({arg}.{}) > {k}:\n{ind}    raise ValueError(\"too many {} for {n2}\")\n",
                plural(n),
                plural(n)
            ),
            2 => format!("{ind}# {}\n", self.sentence()),
            3 => format!(
                "{ind}for item in {arg}.{}:\n{ind}    item.{v}_{n2}(limit)\n",
                plural(n)
            ),
            4 => format!("{ind}log.debug(\"{v} %s {a} {n}\", {arg}.id)\n"),
            5 => format!(
                "{ind}total = sum(x.{n2}_size for x in {arg}.{})\n",
                plural(n)
            ),
            _ => format!("{ind}{arg}.{n} = {arg}.{n} or {}()\n", self.type_name()),
        }
    }

    fn python_class(&mut self) -> String {
        let name = self.type_name();
        let base = if self.0.chance(50) {
            "object".to_string()
        } else {
            self.type_name()
        };
        let mut out = format!(
            "\n\nclass {name}({base}):\n    \"\"\"{}\"\"\"\n\n    def __init__(self",
            self.sentence()
        );
        let fields: Vec<&str> = (0..self.0.range(2, 4)).map(|_| self.noun()).collect();
        for f in &fields {
            out.push_str(&format!(", {f}=None"));
        }
        out.push_str("):\n");
        for f in &fields {
            out.push_str(&format!("        self.{f} = {f}\n"));
        }
        for _ in 0..self.0.range(1, 3) {
            out.push_str(&self.python_def("    "));
        }
        out
    }

    fn title(&mut self) -> String {
        let (v, a, n) = (self.verb(), self.adj(), self.noun());
        match self.0.below(4) {
            0 => format!("How to {v} a {a} {n}"),
            1 => format!("{} {}", cap(a), plural(n)),
            2 => format!("Troubleshooting {} {}", a, plural(n)),
            _ => format!("The {n} {}", self.noun()),
        }
    }

    fn markdown_section(&mut self) -> String {
        let mut out = format!("\n## {}\n\n", self.title());
        for _ in 0..self.0.range(1, 3) {
            let n = self.0.range(2, 5);
            out.push_str(&self.paragraph(n));
            out.push_str("\n\n");
        }
        match self.0.below(3) {
            0 => {
                for _ in 0..self.0.range(2, 5) {
                    out.push_str(&format!("- {}\n", self.sentence()));
                }
            }
            1 => {
                out.push_str("```rust");
                out.push_str(&self.rust_fn("", false));
                out.push_str("```\n");
            }
            _ => {
                out.push_str("| setting | default | meaning |\n|---|---|---|\n");
                for _ in 0..self.0.range(2, 5) {
                    let (n, a, k) = (self.noun(), self.adj(), self.num());
                    out.push_str(&format!("| `{a}_{n}` | {k} | {} |\n", self.sentence()));
                }
            }
        }
        out
    }
}

fn cap(word: &str) -> String {
    let mut c = word.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn camel(word: &str) -> String {
    word.split(['_', ' ', '-']).map(cap).collect()
}

fn plural(noun: &str) -> String {
    if noun.ends_with('s') || noun.ends_with('x') || noun.ends_with("ch") || noun.ends_with("sh") {
        format!("{noun}es")
    } else if let Some(stem) = noun.strip_suffix('y')
        && !stem.ends_with(['a', 'e', 'o', 'u'])
    {
        format!("{stem}ies")
    } else {
        format!("{noun}s")
    }
}

#[rustfmt::skip]
const NOUNS: &[&str] = &[
    "bundle", "index", "chunk", "cache", "request", "session", "token", "user", "account",
    "invoice", "order", "payment", "queue", "worker", "schedule", "config", "manifest", "digest",
    "snapshot", "commit", "tree", "blob", "vector", "query", "result", "score", "shard", "replica",
    "lease", "lock", "batch", "stream", "buffer", "frame", "packet", "route", "handler", "metric",
    "histogram", "counter", "span", "trace", "event", "message", "topic", "subscriber", "image",
    "thumbnail", "pixel", "color", "font", "layout", "widget", "page", "template", "report",
    "tenant", "quota", "limit", "price", "currency", "address", "email", "permission", "role",
    "policy", "certificate", "signature", "checksum", "archive", "upload", "download", "file",
    "directory", "path", "url", "header", "cookie", "response", "status", "probe", "migration",
    "schema", "table", "column", "row", "transaction", "ledger", "balance", "job", "node",
];

#[rustfmt::skip]
const VERBS: &[&str] = &[
    "load", "save", "parse", "render", "validate", "compute", "fetch", "store", "merge", "split",
    "encode", "decode", "compress", "verify", "sign", "resolve", "retry", "cancel", "flush",
    "open", "close", "read", "write", "build", "publish", "notify", "register", "lookup", "insert",
    "remove", "update", "sort", "filter", "group", "count", "normalize", "convert", "format",
    "scan", "search", "rank", "refresh", "expire", "evict", "rotate", "migrate", "import",
    "export", "sync", "reconcile", "allocate", "release", "acquire", "track", "measure", "emit",
    "collect", "aggregate",
];

#[rustfmt::skip]
const ADJECTIVES: &[&str] = &[
    "pending", "stale", "cached", "remote", "local", "signed", "encrypted", "compressed",
    "partial", "expired", "active", "default", "primary", "secondary", "temporary", "persistent",
    "concurrent", "incremental", "sorted", "unique", "empty", "valid",
];

#[rustfmt::skip]
const SUFFIXES: &[&str] = &[
    "core", "api", "store", "client", "server", "tools", "sync", "worker",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic() {
        let a = Corpus::generate(50, 3);
        let b = Corpus::generate(50, 3);
        assert_eq!(a.files.len(), 50);
        for (x, y) in a.files.iter().zip(&b.files) {
            assert_eq!(x.path, y.path);
            assert_eq!(x.text, y.text);
        }
        let c = Corpus::generate(50, 4);
        assert_ne!(a.files[0].text, c.files[0].text);
    }

    #[test]
    fn paths_are_unique_and_sizes_plausible() {
        let c = Corpus::generate(500, 1);
        let paths: BTreeSet<_> = c.files.iter().map(|f| &f.path).collect();
        assert_eq!(paths.len(), 500);
        assert!(
            c.files
                .iter()
                .all(|f| f.text.len() >= 300 && f.text.len() < 40 * 1024)
        );
        let mean = c.text_bytes() as f64 / 500.0;
        // ~540 bytes per chunk: 3-4 chunks per file on average.
        assert!((1500.0..2500.0).contains(&mean), "mean {mean}");
    }

    #[test]
    fn edits_change_the_text() {
        let mut rng = Rng::new(9);
        let c = Corpus::generate(3, 2);
        for f in &c.files {
            let appended = append_definition(&f.path, &f.text, &mut rng);
            assert!(appended.starts_with(&f.text) && appended.len() > f.text.len());
            let edited = edit_middle(&f.path, &f.text, &mut rng);
            assert_ne!(edited, f.text);
        }
    }

    /// Other benchmarks keep bundles built from `generate`'s output under
    /// a cache keyed by file count and seed: the output must not drift.
    #[test]
    fn default_output_is_pinned() {
        let c = Corpus::generate(300, 42);
        // FNV-1a over every path and text, in order.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for f in &c.files {
            for b in f.path.bytes().chain([0]).chain(f.text.bytes()).chain([0]) {
                h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        assert_eq!(h, 0x9cf6_5df8_72e2_6be8, "{h:#x}");
    }

    #[test]
    fn plurals() {
        assert_eq!(plural("address"), "addresses");
        assert_eq!(plural("policy"), "policies");
        assert_eq!(plural("key"), "keys");
        assert_eq!(plural("index"), "indexes");
    }
}
