//! What a client sends to read_file and grep never reaches a panic: any
//! path is accepted as a repository-relative path or refused naming it,
//! any pattern compiles within its bounds or is refused.

use proptest::prelude::{Strategy, prop_oneof};
use shelf_search::files::{self, FileError, GrepRequest, MAX_PATH_BYTES};

/// The rules a path must follow, written apart from the code they check:
/// not empty, at most 1,024 bytes, not absolute (`/`, `\`, `C:\`), no
/// backslash, no NUL, and no `.`, `..` or empty segment.
fn rules_hold(path: &str) -> bool {
    !path.is_empty()
        && path.len() <= MAX_PATH_BYTES
        && !path.starts_with('/')
        && !path.contains('\\')
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !matches!(segment, "" | "." | ".."))
}

/// Paths that pass, and paths that break one rule or several: segments of
/// ordinary names, dots, empties, backslashes, NULs and drive letters,
/// joined by slashes, now and then long enough for the length bound.
fn path_like() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        6 => "[a-zA-Z0-9_-]{1,12}(\\.[a-z]{1,4})?",
        1 => proptest::sample::select(vec!["", ".", "..", "...", ".hidden"]).prop_map(String::from),
        1 => "(\\PC|[\\\\:\\x00]){1,6}",
        1 => "[a-z]{1,300}",
    ];
    let joined = proptest::collection::vec(segment, 1..12).prop_map(|s| s.join("/"));
    (
        proptest::sample::select(vec!["", "", "", "/", "./", "C:\\", "\\"]),
        joined,
        proptest::sample::select(vec!["", "", "", "/", "\0"]),
    )
        .prop_map(|(head, body, tail)| format!("{head}{body}{tail}"))
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    /// `check_path` accepts exactly the paths its six documented rules
    /// allow (docs/api.md, `bad_path`), and returns them unchanged.
    #[test]
    fn a_path_is_accepted_exactly_when_every_rule_holds(path in path_like()) {
        match files::check_path(&path) {
            Ok(p) => {
                proptest::prop_assert_eq!(p, path.as_str());
                proptest::prop_assert!(rules_hold(&path), "accepted {:?}", path);
            }
            Err(FileError::BadPath { .. }) => {
                proptest::prop_assert!(!rules_hold(&path), "refused {:?}", path)
            }
            Err(e) => proptest::prop_assert!(false, "unexpected error {e}"),
        }
    }

    #[test]
    fn any_pattern_compiles_or_is_refused_without_a_panic(
        pattern in "(\\PC|[()\\[\\]{}*+?|\\\\^$.]|\\{[0-9]{1,4}(,[0-9]{0,4})?\\}){0,600}",
        regex: bool,
        ignore_case: bool,
    ) {
        let request = GrepRequest {
            pattern: pattern.clone(),
            regex,
            ignore_case,
            path: None,
            limit: 10,
            max_tokens: 1000,
        };
        match files::compile(&request) {
            Ok(re) => {
                // A literal always matches itself.
                if !regex && !ignore_case {
                    proptest::prop_assert!(re.is_match(&pattern));
                }
            }
            Err(FileError::BadPattern(_)) => {}
            Err(e) => proptest::prop_assert!(false, "unexpected error {e}"),
        }
    }
}
