//! Languages by file extension, for the `language` filter and the
//! `language` field of results.

/// Languages by file extension (or whole file name), for the `language`
/// filter and the `language` field of results.
const LANGUAGES: &[(&str, &[&str])] = &[
    ("c", &["c", "h"]),
    ("cpp", &["cc", "cpp", "cxx", "hh", "hpp", "hxx"]),
    ("csharp", &["cs"]),
    ("css", &["css", "scss", "sass", "less"]),
    ("go", &["go"]),
    ("html", &["html", "htm"]),
    ("java", &["java"]),
    ("javascript", &["js", "jsx", "mjs", "cjs"]),
    ("json", &["json"]),
    ("kotlin", &["kt", "kts"]),
    ("markdown", &["md", "markdown", "mdx"]),
    ("php", &["php"]),
    ("python", &["py", "pyi"]),
    ("rst", &["rst"]),
    ("ruby", &["rb"]),
    ("rust", &["rs"]),
    ("scala", &["scala"]),
    ("shell", &["sh", "bash", "zsh"]),
    ("sql", &["sql"]),
    ("swift", &["swift"]),
    ("text", &["txt"]),
    ("toml", &["toml"]),
    ("typescript", &["ts", "tsx", "mts", "cts"]),
    ("yaml", &["yaml", "yml"]),
];

/// The language of a path, from its extension (`None`: not one shelf names).
pub fn language_of(path: &str) -> Option<&'static str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    LANGUAGES
        .iter()
        .find(|(_, exts)| exts.contains(&ext.as_str()))
        .map(|(lang, _)| *lang)
}

/// Every language name the filter accepts.
pub fn language_names() -> impl Iterator<Item = &'static str> {
    LANGUAGES.iter().map(|(l, _)| *l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_come_from_extensions() {
        assert_eq!(language_of("src/main.rs"), Some("rust"));
        assert_eq!(language_of("a/B.PY"), Some("python"));
        assert_eq!(language_of("docs/x.md"), Some("markdown"));
        assert_eq!(language_of("Makefile"), None);
        assert_eq!(language_of(".hidden/x"), None);
    }
}
