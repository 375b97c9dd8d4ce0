//! Which files of the commit are indexed, and why the others are not. Every
//! skipped file is counted by reason; nothing is dropped silently.

use std::collections::BTreeMap;

use globset::{Glob, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};

use crate::BuildError;
use crate::settings::Settings;
use crate::source::{EntryKind, Snapshot};

/// Why a file was not indexed. The names are stable: they appear in the
/// manifest's `counts.skipped` and in `--json` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SkipReason {
    /// Looks like a credential file (deny-list below).
    Secret,
    /// Matched `.shelfignore`.
    Ignored,
    /// Matched an exclude glob, or no include glob.
    Excluded,
    /// Machine-made text that is noise to a search: vector images, source
    /// maps, lock files, minified code (by name, or by very long lines).
    Generated,
    /// A symbolic link.
    Symlink,
    /// A submodule.
    Submodule,
    /// Larger than `max_file_bytes`.
    TooLarge,
    /// Contains a NUL byte in its first 8000 bytes (git's test).
    Binary,
    /// Empty or whitespace only.
    Empty,
}

impl SkipReason {
    /// The stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::Secret => "secret",
            SkipReason::Ignored => "shelfignore",
            SkipReason::Excluded => "excluded",
            SkipReason::Generated => "generated",
            SkipReason::Symlink => "symlink",
            SkipReason::Submodule => "submodule",
            SkipReason::TooLarge => "too_large",
            SkipReason::Binary => "binary",
            SkipReason::Empty => "empty",
        }
    }
}

/// File names that usually hold credentials. An index served to assistants
/// must not hand those out, so they are never indexed, whatever the config.
pub const SECRET_GLOBS: &[&str] = &[
    ".env",
    ".env.*",
    "*.env",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "credentials",
    "credentials.json",
    "*.tfstate",
    "*.tfstate.*",
    "secrets.yml",
    "secrets.yaml",
    "*.kdbx",
];

/// File names of machine-made text: thousands of chunks of numbers and
/// hashes that cost embedding time and crowd real answers out. Skipped
/// unless `build.exclude_generated = false`.
pub const GENERATED_GLOBS: &[&str] = &[
    "*.svg",
    "*.map",
    "*.min.js",
    "*.min.css",
    "*.min.mjs",
    "*.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "pnpm-lock.yaml",
    "go.sum",
];

/// Text whose mean line is longer than this (and that is over 4 KiB) is
/// minified or serialised data, not something people read.
const GENERATED_MEAN_LINE: usize = 400;

/// Path-based filters, compiled once per build.
pub struct PathFilter {
    secrets: GlobSet,
    generated: Option<GlobSet>,
    include: Option<GlobSet>,
    exclude: GlobSet,
    shelfignore: Option<Gitignore>,
}

/// Compiles path globs as every build setting reads them; `origin` names
/// the setting in errors.
pub(crate) fn globset<'a>(
    globs: impl IntoIterator<Item = &'a str>,
    origin: &str,
) -> Result<GlobSet, BuildError> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        // A glob without '/' matches the file name anywhere, as in .gitignore.
        let pattern = if g.contains('/') {
            g.to_string()
        } else {
            format!("**/{g}")
        };
        b.add(Glob::new(&pattern).map_err(|e| BuildError::Config {
            origin: origin.to_string(),
            detail: format!("glob '{g}': {e}"),
        })?);
    }
    b.build().map_err(|e| BuildError::Config {
        origin: origin.to_string(),
        detail: e.to_string(),
    })
}

impl PathFilter {
    /// Compiles the deny-list, the settings' globs and `.shelfignore` text.
    pub fn new(settings: &Settings, shelfignore: Option<&str>) -> Result<Self, BuildError> {
        let include = if settings.include.is_empty() {
            None
        } else {
            Some(globset(
                settings.include.iter().map(String::as_str),
                "build.include",
            )?)
        };
        let shelfignore = match shelfignore {
            None => None,
            Some(text) => {
                let mut b = GitignoreBuilder::new("");
                for (n, line) in text.lines().enumerate() {
                    b.add_line(None, line).map_err(|e| BuildError::Config {
                        origin: format!(".shelfignore line {}", n + 1),
                        detail: e.to_string(),
                    })?;
                }
                Some(b.build().map_err(|e| BuildError::Config {
                    origin: ".shelfignore".into(),
                    detail: e.to_string(),
                })?)
            }
        };
        let generated = if settings.exclude_generated {
            Some(globset(
                GENERATED_GLOBS.iter().copied(),
                "generated-file list",
            )?)
        } else {
            None
        };
        Ok(Self {
            secrets: globset(SECRET_GLOBS.iter().copied(), "secret deny-list")?,
            generated,
            include,
            exclude: globset(settings.exclude.iter().map(String::as_str), "build.exclude")?,
            shelfignore,
        })
    }

    /// Why `path` is skipped on its name alone, if it is.
    pub fn skip_by_path(&self, path: &str) -> Option<SkipReason> {
        if self.secrets.is_match(path) {
            return Some(SkipReason::Secret);
        }
        if let Some(ig) = &self.shelfignore
            && ig.matched_path_or_any_parents(path, false).is_ignore()
        {
            return Some(SkipReason::Ignored);
        }
        if self.include.as_ref().is_some_and(|inc| !inc.is_match(path))
            || self.exclude.is_match(path)
        {
            return Some(SkipReason::Excluded);
        }
        if self.generated.as_ref().is_some_and(|g| g.is_match(path)) {
            return Some(SkipReason::Generated);
        }
        None
    }
}

/// A file chosen on its path, to be read and checked by content.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Repository-relative path.
    pub path: String,
    /// Its blob.
    pub oid: git2::Oid,
}

/// Skipped files: counts by reason, and a few example paths per reason.
#[derive(Debug, Default, Clone)]
pub struct Skipped {
    /// Count per reason.
    pub counts: BTreeMap<SkipReason, u64>,
    /// Up to 5 example paths per reason, for the report.
    pub examples: BTreeMap<SkipReason, Vec<String>>,
}

impl Skipped {
    /// Records one skipped path.
    pub fn add(&mut self, reason: SkipReason, path: &str) {
        *self.counts.entry(reason).or_default() += 1;
        let ex = self.examples.entry(reason).or_default();
        if ex.len() < 5 {
            ex.push(path.to_string());
        }
    }

    /// Counts keyed by stable reason name, for the manifest.
    pub fn by_name(&self) -> BTreeMap<String, u64> {
        self.counts
            .iter()
            .map(|(r, n)| (r.as_str().to_string(), *n))
            .collect()
    }
}

/// Splits the snapshot into candidates and path-skipped files.
pub fn by_path(snapshot: &Snapshot, filter: &PathFilter, skipped: &mut Skipped) -> Vec<Candidate> {
    let mut out = Vec::new();
    for e in &snapshot.entries {
        match e.kind {
            EntryKind::Symlink => skipped.add(SkipReason::Symlink, &e.path),
            EntryKind::Submodule => skipped.add(SkipReason::Submodule, &e.path),
            EntryKind::File(oid) => match filter.skip_by_path(&e.path) {
                Some(reason) => skipped.add(reason, &e.path),
                None => out.push(Candidate {
                    path: e.path.clone(),
                    oid,
                }),
            },
        }
    }
    out
}

/// Checks content: minified or serialised text (long lines throughout).
pub fn looks_generated(text: &str) -> bool {
    let lines = text.lines().count().max(1);
    text.len() > 4096 && text.len() / lines > GENERATED_MEAN_LINE
}

/// Checks content: binary if a NUL appears in the first 8000 bytes.
pub fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8000)].contains(&0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(settings: &Settings, ignore: Option<&str>) -> PathFilter {
        PathFilter::new(settings, ignore).unwrap()
    }

    #[test]
    fn deny_list_catches_credential_files_anywhere() {
        let f = filter(&Settings::default(), None);
        for p in [
            ".env",
            "app/.env.production",
            "certs/server.pem",
            "deploy/id_rsa",
            "home/.aws/credentials",
            "infra/terraform.tfstate",
        ] {
            assert_eq!(f.skip_by_path(p), Some(SkipReason::Secret), "{p}");
        }
        for p in ["src/env.rs", "docs/keys.md", "environment.py"] {
            assert_eq!(f.skip_by_path(p), None, "{p}");
        }
    }

    #[test]
    fn shelfignore_uses_gitignore_rules() {
        let f = filter(
            &Settings::default(),
            Some("vendor/\n*.gen.js\n!keep.gen.js\n"),
        );
        assert_eq!(f.skip_by_path("vendor/lib/a.rs"), Some(SkipReason::Ignored));
        assert_eq!(f.skip_by_path("web/app.gen.js"), Some(SkipReason::Ignored));
        assert_eq!(f.skip_by_path("web/keep.gen.js"), None);
        assert_eq!(f.skip_by_path("src/vendor.rs"), None);
    }

    #[test]
    fn include_and_exclude_globs() {
        let s = Settings {
            include: vec!["src/**".into(), "*.md".into()],
            exclude: vec!["*.lock".into()],
            ..Settings::default()
        };
        let f = filter(&s, None);
        assert_eq!(f.skip_by_path("src/main.rs"), None);
        assert_eq!(f.skip_by_path("docs/guide.md"), None);
        assert_eq!(f.skip_by_path("build.rs"), Some(SkipReason::Excluded));
        assert_eq!(f.skip_by_path("src/Cargo.lock"), Some(SkipReason::Excluded));
    }

    #[test]
    fn generated_text_is_skipped_by_name_and_by_shape_unless_asked_for() {
        let f = filter(&Settings::default(), None);
        for p in [
            "doc/_static/logo.svg",
            "web/app.min.js",
            "Cargo.lock",
            "web/package-lock.json",
            "a/b.js.map",
        ] {
            assert_eq!(f.skip_by_path(p), Some(SkipReason::Generated), "{p}");
        }
        assert_eq!(f.skip_by_path("src/map.rs"), None);
        let all = Settings {
            exclude_generated: false,
            ..Settings::default()
        };
        assert_eq!(filter(&all, None).skip_by_path("logo.svg"), None);
        let minified = format!("var a={};\n", "x".repeat(5000));
        assert!(looks_generated(&minified));
        let code = "fn main() {\n    println!(\"hi\");\n}\n".repeat(300);
        assert!(!looks_generated(&code));
        assert!(
            !looks_generated("short"),
            "small files are never judged by shape"
        );
    }

    #[test]
    fn binary_means_a_nul_early_on() {
        assert!(is_binary(b"\x89PNG\r\n\x1a\n\0\0"));
        assert!(!is_binary("plain text ü".as_bytes()));
        let mut late = vec![b'a'; 9000];
        late[8500] = 0;
        assert!(!is_binary(&late));
    }
}
