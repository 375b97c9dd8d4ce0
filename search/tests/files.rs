//! What a client sends to read_file and grep never reaches a panic: any
//! path is accepted as a repository-relative path or refused naming it,
//! any pattern compiles within its bounds or is refused.

use shelf_search::files::{self, FileError, GrepRequest};

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]

    #[test]
    fn any_path_is_checked_without_a_panic(path in "(\\PC|[./\\\\:\\x00]){0,1100}") {
        match files::check_path(&path) {
            // What is accepted stays inside the repository.
            Ok(p) => {
                proptest::prop_assert!(!p.starts_with('/'));
                proptest::prop_assert!(!p.split('/').any(|s| s == ".." || s.is_empty()));
            }
            Err(FileError::BadPath { .. }) => {}
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
