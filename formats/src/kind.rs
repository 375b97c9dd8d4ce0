//! What kind of file a path is: source, test, documentation, changelog,
//! generated, or other (configuration, data, build files). One
//! classification, by path alone, shared by the query side (the file-kind
//! prior and the `kind` request parameter, docs/api.md) and the write side
//! (`shelf eval --from-history` mines commits that change source files),
//! so "a source file" means the same everywhere.
//!
//! Path alone because the query side must classify hundreds of candidate
//! files per query in microseconds and a bundle records no more than the
//! path; the rules are the conventions of the common ecosystems (Rust,
//! Python, Go, JavaScript/TypeScript, Java), first match wins in the order
//! generated, changelog, test, doc, source, other.

use std::str::FromStr;

use serde::Serialize;

/// The kinds of file, as the API names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Code that is built or run: the files a fix usually changes.
    Source,
    /// Tests, test data and fixtures.
    Test,
    /// Documentation: prose formats and anything under a docs directory.
    Doc,
    /// Changelogs, release notes, news fragments.
    Changelog,
    /// Machine-made or vendored files: lock files, snapshots, minified code,
    /// generated bindings.
    Generated,
    /// Configuration, build and CI files, data.
    Other,
}

impl FileKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [FileKind; 6] = [
        FileKind::Source,
        FileKind::Test,
        FileKind::Doc,
        FileKind::Changelog,
        FileKind::Generated,
        FileKind::Other,
    ];

    /// The kind's name in the API.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Source => "source",
            FileKind::Test => "test",
            FileKind::Doc => "doc",
            FileKind::Changelog => "changelog",
            FileKind::Generated => "generated",
            FileKind::Other => "other",
        }
    }

    /// The kind of the file at `path` (repository-relative, `/`-separated).
    pub fn of(path: &str) -> FileKind {
        let lower = path.to_ascii_lowercase();
        let (dirs, name) = match lower.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", lower.as_str()),
        };
        let dirs: Vec<&str> = dirs.split('/').filter(|d| !d.is_empty()).collect();
        let ext = name.rsplit_once('.').map_or("", |(_, e)| e);
        let in_dir = |set: &[&str]| dirs.iter().any(|d| set.contains(d));
        if is_generated(name, ext, &dirs) {
            FileKind::Generated
        } else if is_changelog(name, &dirs) {
            FileKind::Changelog
        } else if in_dir(TEST_DIRS) || is_test_name(name, ext) {
            FileKind::Test
        } else if DOC_EXTENSIONS.contains(&ext)
            || in_dir(DOC_DIRS)
            || DOC_NAMES
                .iter()
                .any(|n| name == *n || name.starts_with(&format!("{n}.")))
        {
            FileKind::Doc
        } else if SOURCE_EXTENSIONS.contains(&ext) {
            FileKind::Source
        } else {
            FileKind::Other
        }
    }
}

impl FromStr for FileKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim().to_ascii_lowercase();
        FileKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown file kind '{}'; use one of {}",
                    s.chars().take(32).collect::<String>(),
                    FileKind::ALL.map(FileKind::name).join(", ")
                )
            })
    }
}

const SOURCE_EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "pyx", "go", "ts", "tsx", "mts", "cts", "js", "jsx", "mjs", "cjs", "java",
    "kt", "kts", "scala", "groovy", "c", "h", "cc", "cpp", "cxx", "hh", "hpp", "hxx", "cs", "fs",
    "rb", "php", "swift", "m", "mm", "lua", "pl", "pm", "sh", "bash", "zsh", "ps1", "ex", "exs",
    "erl", "hrl", "hs", "ml", "mli", "clj", "cljs", "dart", "vue", "svelte", "sql", "r", "jl",
    "zig", "nim", "proto", "elm", "v", "sv", "vhd", "asm", "s",
];

const DOC_EXTENSIONS: &[&str] = &[
    "md", "markdown", "mdx", "rst", "txt", "adoc", "asciidoc", "org", "tex", "rdoc", "pod",
];

const DOC_DIRS: &[&str] = &[
    "doc",
    "docs",
    "documentation",
    "site",
    "website",
    "book",
    "man",
];

/// Files named like this (with or without an extension) are documentation.
const DOC_NAMES: &[&str] = &[
    "readme",
    "license",
    "licence",
    "copying",
    "contributing",
    "authors",
    "code_of_conduct",
    "security",
    "notice",
];

const TEST_DIRS: &[&str] = &[
    "test",
    "tests",
    "testing",
    "__tests__",
    "__mocks__",
    "spec",
    "specs",
    "testdata",
    "test_data",
    "fixtures",
    "e2e",
    "integration_tests",
    "benchmarks-tests",
];

fn is_test_name(name: &str, ext: &str) -> bool {
    let stem = name.strip_suffix(&format!(".{ext}")).unwrap_or(name);
    (stem.starts_with("test_") && ext == "py")
        || stem.ends_with("_test")
        || stem.ends_with("_tests")
        || stem.ends_with(".test")
        || stem.ends_with(".spec")
        || stem.ends_with("_spec")
        || (ext == "java" || ext == "kt") && (stem.ends_with("test") || stem.ends_with("tests"))
        || matches!(stem, "test" | "tests" | "conftest")
}

const CHANGELOG_NAMES: &[&str] = &[
    "changelog",
    "changes",
    "history",
    "news",
    "release-notes",
    "release_notes",
    "releasenotes",
    "releases",
    "whatsnew",
];

const CHANGELOG_DIRS: &[&str] = &[
    "changelog.d",
    "changes",
    "newsfragments",
    "news",
    "whatsnew",
    "release-notes",
    "release_notes",
    ".changeset",
    ".changes",
];

fn is_changelog(name: &str, dirs: &[&str]) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    CHANGELOG_NAMES.contains(&stem) || dirs.iter().any(|d| CHANGELOG_DIRS.contains(d))
}

const LOCK_FILES: &[&str] = &[
    "cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lockb",
    "poetry.lock",
    "pdm.lock",
    "uv.lock",
    "pipfile.lock",
    "go.sum",
    "gemfile.lock",
    "composer.lock",
    "flake.lock",
];

const GENERATED_DIRS: &[&str] = &[
    "vendor",
    "node_modules",
    "third_party",
    "__snapshots__",
    "dist",
    "generated",
];

fn is_generated(name: &str, ext: &str, dirs: &[&str]) -> bool {
    LOCK_FILES.contains(&name)
        || matches!(ext, "map" | "snap" | "lock")
        || name.ends_with(".min.js")
        || name.ends_with(".min.css")
        || name.ends_with(".pb.go")
        || name.ends_with("_pb2.py")
        || name.ends_with("_pb2_grpc.py")
        || name.contains(".generated.")
        || name.contains("_generated.")
        || name.contains(".gen.")
        || dirs.iter().any(|d| GENERATED_DIRS.contains(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_get_the_kind_their_ecosystem_means() {
        for (path, kind) in [
            ("src/main.rs", FileKind::Source),
            ("crates/ignore/src/gitignore.rs", FileKind::Source),
            ("requests/sessions.py", FileKind::Source),
            ("middleware/compress.go", FileKind::Source),
            ("packages/zod/src/v4/core/util.ts", FileKind::Source),
            ("src/main/java/org/x/Parser.java", FileKind::Source),
            ("benches/parse.rs", FileKind::Source),
            ("tests/test_requests.py", FileKind::Test),
            ("pylint/checkers/test_utils.py", FileKind::Test),
            ("middleware/content_charset_test.go", FileKind::Test),
            (
                "packages/zod/src/v4/classic/tests/string.test.ts",
                FileKind::Test,
            ),
            ("src/parser.spec.js", FileKind::Test),
            ("src/test/java/org/x/ParserTest.java", FileKind::Test),
            ("crates/core/tests.rs", FileKind::Test),
            ("conftest.py", FileKind::Test),
            ("tests/testdata/a.json", FileKind::Test),
            ("README.md", FileKind::Doc),
            ("docs/user/quickstart.rst", FileKind::Doc),
            ("docs/conf.py", FileKind::Doc),
            ("LICENSE", FileKind::Doc),
            ("packages/docs/content/basics.mdx", FileKind::Doc),
            ("CHANGELOG.md", FileKind::Changelog),
            ("axum/CHANGELOG.md", FileKind::Changelog),
            ("HISTORY.rst", FileKind::Changelog),
            ("doc/whatsnew/fragments/1234.bugfix", FileKind::Changelog),
            ("changelog.d/x.md", FileKind::Changelog),
            ("Cargo.lock", FileKind::Generated),
            ("go.sum", FileKind::Generated),
            ("dist/zod.min.js", FileKind::Generated),
            ("src/__snapshots__/a.ts.snap", FileKind::Generated),
            ("api/v1/service.pb.go", FileKind::Generated),
            ("Cargo.toml", FileKind::Other),
            (".github/workflows/ci.yml", FileKind::Other),
            ("package.json", FileKind::Other),
            ("Makefile", FileKind::Other),
        ] {
            assert_eq!(FileKind::of(path), kind, "{path}");
        }
    }

    #[test]
    fn kinds_parse_by_name_and_say_what_is_wrong() {
        for k in FileKind::ALL {
            assert_eq!(k.name().parse::<FileKind>(), Ok(k));
        }
        assert_eq!(" Test ".parse::<FileKind>(), Ok(FileKind::Test));
        let e = "tests".parse::<FileKind>().unwrap_err();
        assert!(
            e.contains("unknown file kind 'tests'") && e.contains("source, test"),
            "{e}"
        );
    }
}
