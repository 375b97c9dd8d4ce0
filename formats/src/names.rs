//! Names that end up in object keys and file names: tag names and bundle
//! member names. Both are validated here, once, so neither side can write a
//! key or a path the other would refuse.

/// Longest tag name accepted.
pub const MAX_TAG_NAME_LEN: usize = 128;

/// Why a tag name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid tag name '{shown}': {reason}; tag names are 1-{MAX_TAG_NAME_LEN} characters of \
     A-Z a-z 0-9 . _ - and start with a letter or digit (e.g. 'production', 'v1.4.0')"
)]
pub struct TagNameError {
    shown: String,
    reason: &'static str,
}

/// Checks a tag name: `[A-Za-z0-9][A-Za-z0-9._-]{0,127}`, without `..`.
///
/// The charset keeps a tag name safe as one object-key segment and one file
/// name on every store: no `/`, no control characters, no `..`.
pub fn validate_tag_name(name: &str) -> Result<(), TagNameError> {
    let fail = |reason| {
        Err(TagNameError {
            shown: name.escape_default().take(160).collect(),
            reason,
        })
    };
    let Some(first) = name.bytes().next() else {
        return fail("it is empty");
    };
    if name.len() > MAX_TAG_NAME_LEN {
        return fail("it is too long");
    }
    if !first.is_ascii_alphanumeric() {
        return fail("it must start with a letter or digit");
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return if bad == '/' {
            fail("it contains '/'")
        } else if bad.is_control() {
            fail("it contains a control character")
        } else {
            fail("it contains a character outside the allowed set")
        };
    }
    if name.contains("..") {
        return fail("it contains '..'");
    }
    Ok(())
}

/// Why a repository name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid repository name '{shown}': {reason}; repository names are 1-{MAX_TAG_NAME_LEN} characters of \
     A-Z a-z 0-9 . _ - and start with a letter or digit (e.g. 'api', 'web-client')"
)]
pub struct RepoNameError {
    shown: String,
    reason: &'static str,
}

/// Checks a repository name (a store root's child, a `[[repository]]`
/// name, a `repo` parameter): the same rules as a tag name, for the same
/// reason: it becomes one segment of an object key or a path.
pub fn validate_repo_name(name: &str) -> Result<(), RepoNameError> {
    validate_tag_name(name).map_err(|e| RepoNameError {
        shown: e.shown,
        reason: e.reason,
    })
}

/// A valid repository name for a manifest's `source.repository` (e.g.
/// `owner/name` or a directory name): its last `/` segment, with every
/// character outside the allowed set replaced by `-`.
pub fn repo_name_of(repository: &str) -> String {
    let last = repository
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(repository);
    let mut name: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    while name.contains("..") {
        name = name.replace("..", ".");
    }
    let name = name.trim_start_matches(['.', '_', '-']).to_string();
    let mut name: String = name.chars().take(MAX_TAG_NAME_LEN).collect();
    if name.is_empty() {
        name = "repository".into();
    }
    name
}

/// Checks a bundle member name: a single flat file name of
/// `[a-z0-9][a-z0-9._-]*`, at most 64 bytes. Returns a short reason if not.
pub(crate) fn member_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("empty name");
    }
    if name.starts_with('/') {
        return Some("absolute path");
    }
    if name.split(['/', '\\']).any(|part| part == "..") {
        return Some("parent directory ('..') in path");
    }
    if name.contains(['/', '\\']) {
        return Some("nested path (members are flat file names)");
    }
    if name.len() > 64 {
        return Some("name longer than 64 bytes");
    }
    let first_ok = name.as_bytes()[0].is_ascii_lowercase() || name.as_bytes()[0].is_ascii_digit();
    let rest_ok = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'));
    if !first_ok || !rest_ok {
        return Some("characters outside [a-z0-9._-]");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_usual_tag_names() {
        for ok in ["main", "production", "v1.4.0", "release_2026-11", "A", "9"] {
            validate_tag_name(ok).unwrap();
        }
    }

    #[test]
    fn refuses_tag_names_that_could_escape_a_key_or_path() {
        let cases = [
            ("", "empty"),
            ("a/b", "'/'"),
            ("..", "start with a letter"),
            ("v1..2", "'..'"),
            (".hidden", "start with a letter"),
            ("-x", "start with a letter"),
            ("tab\there", "control character"),
            ("sp ace", "outside the allowed set"),
            ("aünï", "outside the allowed set"),
        ];
        for (name, why) in cases {
            let err = validate_tag_name(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        let long = "a".repeat(MAX_TAG_NAME_LEN + 1);
        assert!(
            validate_tag_name(&long)
                .unwrap_err()
                .to_string()
                .contains("too long")
        );
    }

    #[test]
    fn repository_names_are_validated_and_derived_from_manifests() {
        validate_repo_name("web-client").unwrap();
        assert!(
            validate_repo_name("a/b")
                .unwrap_err()
                .to_string()
                .contains("repository name")
        );
        assert!(validate_repo_name("..").is_err());
        assert_eq!(repo_name_of("psf/requests"), "requests");
        assert_eq!(repo_name_of("shelf-test-repo-a1B2"), "shelf-test-repo-a1B2");
        assert_eq!(repo_name_of("weird name!"), "weird-name-");
        assert_eq!(repo_name_of("/"), "repository");
        for s in ["psf/requests", "..x..", "  ", "ünï", "a/.hidden"] {
            validate_repo_name(&repo_name_of(s)).unwrap();
        }
    }

    #[test]
    fn member_names_are_flat_and_plain() {
        assert_eq!(member_name_problem("chunks.bin"), None);
        assert_eq!(member_name_problem("/etc/passwd"), Some("absolute path"));
        assert_eq!(
            member_name_problem("../x"),
            Some("parent directory ('..') in path")
        );
        assert_eq!(
            member_name_problem("a/b"),
            Some("nested path (members are flat file names)")
        );
        assert_eq!(
            member_name_problem("Upper"),
            Some("characters outside [a-z0-9._-]")
        );
    }
}
