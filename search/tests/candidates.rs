//! The candidate sources (`candidates.rs`) on real bundles of format 1.4:
//! a file the rankers rank low comes in because the query names what it
//! defines, names its module, or is like a past change to it; and what a
//! request excludes (a filter, another kind, the query's own commit)
//! stays out. Lexical mode: the bundles' vectors are placeholders.

use std::sync::Arc;

use shelf_formats::ModelIdentity;
use shelf_formats::definitions::DefKind;
use shelf_formats::history::HistoryCommit;
use shelf_search::candidates::SourceTuning;
use shelf_search::{
    EncodeError, Encoded, Engine, MappedBundle, QueryEncoder, RawRequest, Request, RequestLimits,
    Target, Tuning,
};
use shelf_testkit::{FilesBundle, bundle_of_files};

/// An encoder for lexical requests only: nothing here is embedded.
struct LexicalOnly(ModelIdentity);

impl QueryEncoder for LexicalOnly {
    fn identity(&self) -> &ModelIdentity {
        &self.0
    }
    fn token_spans(&self, text: &str) -> Vec<(usize, usize)> {
        vec![(0, text.len())]
    }
    fn encode(&self, _: &[String]) -> Result<Encoded, EncodeError> {
        panic!("a lexical request embedded its query")
    }
}

/// Twelve files that call `retry_budget` over and over, one that defines
/// it (and says little else), a module file, a test that also defines it,
/// and a timer a past commit fixed.
fn spec() -> FilesBundle<'static> {
    const CALLERS: [&str; 12] = [
        "src/a.py", "src/b.py", "src/c.py", "src/d.py", "src/e.py", "src/f.py", "src/g.py",
        "src/h.py", "src/i.py", "src/j.py", "src/k.py", "src/l.py",
    ];
    let mut files: Vec<(&str, &str)> = CALLERS
        .iter()
        .map(|p| {
            (
                *p,
                "x = retry_budget()\ny = retry_budget() + retry_budget()\nreturns zero when retry_budget is spent\nfrom sympy.polys import factortools\nfactortools.mignotte(x), factortools.mignotte(y)\n",
            )
        })
        .collect();
    files.extend([
        (
            "src/budget.py",
            "def retry_budget():\n    \"\"\"How many tries are left.\"\"\"\n    return LEFT\n",
        ),
        (
            "src/polys/factortools.py",
            "def mignotte(f):\n    return f\n\ndef knuth(f):\n    coefficients = list(f)\n    norms = [abs(c) for c in coefficients]\n    largest = max(norms)\n    total = sum(norms)\n    return largest * total\n\ndef cohen(f, g):\n    left = knuth(f)\n    right = knuth(g)\n    return min(left, right)\n",
        ),
        ("tests/test_budget.py", "def retry_budget():\n    return 0\n"),
        ("src/timer.py", "class Timer:\n    def fire(self):\n        pass\n"),
    ]);
    FilesBundle {
        files,
        definitions: vec![
            ("retry_budget", "", DefKind::Function, "src/budget.py", 1),
            (
                "retry_budget",
                "",
                DefKind::Function,
                "tests/test_budget.py",
                1,
            ),
            (
                "mignotte",
                "",
                DefKind::Function,
                "src/polys/factortools.py",
                1,
            ),
            ("Timer", "", DefKind::Class, "src/timer.py", 1),
        ],
        history: vec![
            HistoryCommit {
                id: vec![7; 20],
                time: 200,
                message: "Stop the periodic flush from firing twice".into(),
                files: vec!["src/timer.py".into()],
            },
            HistoryCommit {
                id: vec![6; 20],
                time: 100,
                message: "Initial import".into(),
                files: vec!["src/a.py".into()],
            },
        ],
        without_indexes: false,
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    bundle: MappedBundle,
    encoder: Arc<LexicalOnly>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let model = shelf_testkit::sample_manifest("00").model;
    let written = bundle_of_files(&dir.path().join("out"), &spec(), &model);
    let bundle = MappedBundle::open_file(&written.path, &dir.path().join("cache"), &model).unwrap();
    Fixture {
        _dir: dir,
        bundle,
        encoder: Arc::new(LexicalOnly(model)),
    }
}

/// The files `sources` ranks for `query` (lexical, grouped by file).
fn files(
    f: &Fixture,
    query: &str,
    sources: SourceTuning,
    edit: impl Fn(&mut Request),
) -> Vec<String> {
    let engine = Engine::new(f.encoder.clone()).with_tuning(Tuning {
        sources,
        ..Tuning::default()
    });
    let mut request = Request::new(
        RawRequest {
            query: query.into(),
            k: Some(10),
            mode: Some("lexical".into()),
            group: Some("file".into()),
            ..RawRequest::default()
        },
        &RequestLimits::default(),
    )
    .unwrap();
    edit(&mut request);
    let target = Target {
        repo: "r",
        bundle: &f.bundle,
        tag: None,
    };
    engine
        .answer(&[target], &request)
        .unwrap()
        .files
        .unwrap()
        .into_iter()
        .map(|x| x.path)
        .collect()
}

/// The sources by rank alone: the default scale of a definition's score
/// is set for repositories of real size (thousands of files), where a
/// name defined once and used in few places is rare; in these few files
/// every name is common.
fn by_rank() -> SourceTuning {
    SourceTuning {
        definition_scale: 0.0,
        ..SourceTuning::ALL
    }
}

fn rank(files: &[String], path: &str) -> Option<usize> {
    files.iter().position(|f| f == path).map(|i| i + 1)
}

#[test]
fn the_file_that_defines_a_named_identifier_comes_first() {
    let f = fixture();
    let query = "`retry_budget` returns zero";
    let before = files(&f, query, SourceTuning::OFF, |_| {});
    let after = files(&f, query, by_rank(), |_| {});
    // Twelve callers outrank the definition on words alone.
    assert!(
        rank(&before, "src/budget.py").is_none_or(|r| r > 5),
        "{before:?}"
    );
    assert_eq!(rank(&after, "src/budget.py"), Some(1), "{after:?}");
    // The test that also defines it is not what a report wants.
    assert!(
        rank(&after, "tests/test_budget.py").is_none_or(|r| r > 5),
        "{after:?}"
    );
}

#[test]
fn a_module_path_brings_its_file() {
    let f = fixture();
    let query = "sympy.polys.factortools.dmp_zz_bound is slow";
    let before = files(&f, query, SourceTuning::OFF, |_| {});
    let after = files(&f, query, by_rank(), |_| {});
    assert!(
        rank(&before, "src/polys/factortools.py").is_none_or(|r| r > 3),
        "{before:?}"
    );
    assert!(
        rank(&after, "src/polys/factortools.py").is_some_and(|r| r <= 3),
        "{after:?}"
    );
}

#[test]
fn a_past_change_like_the_query_votes_for_its_files_unless_it_is_the_querys_own() {
    let f = fixture();
    let query = "periodic flush fires twice";
    let before = files(&f, query, SourceTuning::OFF, |_| {});
    assert_eq!(
        rank(&before, "src/timer.py"),
        None,
        "no shared word: {before:?}"
    );
    let after = files(&f, query, SourceTuning::ALL, |_| {});
    assert_eq!(rank(&after, "src/timer.py"), Some(1), "{after:?}");
    // Asked as the commit itself (a quality gate on a bundle that holds
    // it), its own message does not vote.
    let own = files(&f, query, SourceTuning::ALL, |r| {
        r.exclude_commit = Some(vec![7; 20]);
    });
    assert_eq!(rank(&own, "src/timer.py"), None, "{own:?}");
}

#[test]
fn filters_and_the_kind_asked_for_bound_what_sources_bring() {
    let f = fixture();
    let query = "`retry_budget` returns zero";
    let filtered = files(&f, query, SourceTuning::ALL, |r| {
        r.filter = shelf_search::Filter::new(Some("src/[a-c].py"), &[]).unwrap();
    });
    assert!(
        filtered
            .iter()
            .all(|p| ["src/a.py", "src/b.py", "src/c.py"].contains(&p.as_str())),
        "{filtered:?}"
    );
    // Asked for tests, the test that defines the name is what comes in.
    let tests = files(&f, query, by_rank(), |r| {
        r.kind = shelf_search::KindPreference::Prefer(shelf_formats::FileKind::Test);
    });
    assert_eq!(rank(&tests, "tests/test_budget.py"), Some(1), "{tests:?}");
}

#[test]
fn find_definitions_answers_from_the_index_and_scans_older_bundles_alike() {
    use shelf_search::files::{DefinitionsRequest, definitions};
    let dir = tempfile::tempdir().unwrap();
    let model = shelf_testkit::sample_manifest("00").model;
    let mut old_spec = spec();
    old_spec.without_indexes = true;
    let new = bundle_of_files(&dir.path().join("new"), &spec(), &model);
    let old = bundle_of_files(&dir.path().join("old"), &old_spec, &model);
    let open = |w: &shelf_formats::bundle::WrittenBundle| {
        MappedBundle::open_file(&w.path, &dir.path().join("cache"), &model).unwrap()
    };
    let (new, old) = (open(&new), open(&old));
    assert!(new.definitions().is_some() && old.definitions().is_none());
    let ask = |b: &MappedBundle, name: &str| {
        let target = Target {
            repo: "r",
            bundle: b,
            tag: None,
        };
        let request = DefinitionsRequest {
            name: name.into(),
            limit: 10,
            max_tokens: 4000,
        };
        definitions(&[target], &request).unwrap()
    };
    let from_index = ask(&new, "retry_budget");
    let scanned = ask(&old, "retry_budget");
    let places = |a: &shelf_search::files::DefinitionsAnswer| {
        a.definitions
            .iter()
            .map(|d| (d.path.clone(), d.line, d.text.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(places(&from_index), places(&scanned));
    assert_eq!(
        places(&from_index),
        [
            ("src/budget.py".into(), 1, "def retry_budget():".into()),
            (
                "tests/test_budget.py".into(),
                1,
                "def retry_budget():".into()
            ),
        ]
    );
    // The index also says what each is and where; it reads only the files
    // that hold one, where a scan reads every file.
    assert_eq!(from_index.definitions[0].kind, Some("function"));
    assert_eq!(from_index.definitions[0].scope.as_deref(), Some(""));
    assert_eq!(from_index.files_scanned, 2);
    assert_eq!(scanned.files_scanned, 16);
    assert_eq!(scanned.definitions[0].kind, None);
    // Another case comes after the same case; a name defined nowhere is
    // an empty answer, not an error.
    let timer = ask(&new, "timer");
    assert_eq!(timer.definitions[0].path, "src/timer.py");
    assert!(ask(&new, "nowhere_defined").definitions.is_empty());
}

#[test]
fn an_evaluation_of_mined_queries_never_lets_a_commit_answer_itself() {
    use shelf_search::eval::{EvalQuery, evaluate};
    let f = fixture();
    let engine = Engine::new(f.encoder.clone());
    let query = |commit: Option<String>| EvalQuery {
        id: "q".into(),
        group: None,
        query: "periodic flush fires twice".into(),
        gold: vec!["src/timer.py".into()],
        commit,
    };
    // The bundle holds the commit the query was mined from: its message
    // must not vote for the files it changed.
    let own = evaluate(
        &engine,
        &f.bundle,
        &[query(Some("07".repeat(20)))],
        shelf_search::Mode::Lexical,
    )
    .unwrap();
    assert_eq!(own.overall.recall_at_10, 0.0, "{:?}", own.queries);
    // A query from elsewhere (no commit) may use that past change.
    let other = evaluate(
        &engine,
        &f.bundle,
        &[query(None)],
        shelf_search::Mode::Lexical,
    )
    .unwrap();
    assert_eq!(other.overall.recall_at_1, 1.0, "{:?}", other.queries);
}

/// The bundle of [`spec`] written again with member `name` replaced by
/// `bytes` (the manifest's hashes made to match: only what a hash cannot
/// catch is wrong).
fn with_member(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let model = shelf_testkit::sample_manifest("00").model;
    let good = bundle_of_files(&dir.join("good"), &spec(), &model);
    let unpacked = shelf_formats::bundle::unpack_file(
        &good.path,
        None,
        &dir.join("unpacked"),
        &shelf_formats::bundle::Limits::default(),
    )
    .unwrap();
    std::fs::write(unpacked.dir.join(name), bytes).unwrap();
    let mut manifest = unpacked.bundle.manifest.clone();
    let members: Vec<(String, std::path::PathBuf)> = manifest
        .members
        .drain(..)
        .map(|m| (m.name.clone(), unpacked.dir.join(&m.name)))
        .collect();
    shelf_formats::bundle::write_bundle(&dir.join("bad"), manifest, &members)
        .unwrap()
        .path
}

#[test]
fn install_refuses_definitions_or_history_that_do_not_fit_the_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let model = shelf_testkit::sample_manifest("00").model;
    // A definition in file 99 of a bundle of 16 files.
    let mut defs = shelf_formats::definitions::DefinitionsWriter::new();
    defs.push(shelf_formats::definitions::Definition {
        name: "retry_budget".to_string(),
        scope: String::new(),
        kind: DefKind::Function,
        path_index: 99,
        start_line: 1,
        end_line: 2,
    });
    let mut bytes = Vec::new();
    defs.write_to(&mut bytes).unwrap();
    let bad = with_member(&dir.path().join("defs"), "definitions.bin", &bytes);
    let err = MappedBundle::open_file(&bad, &dir.path().join("cache"), &model)
        .expect_err("a definition outside the bundle's files is refused");
    assert!(
        matches!(err, shelf_search::OpenError::Definitions(_)),
        "{err}"
    );
    // The history's lexical index with the chunks' documents, not the
    // commits'.
    let written = bundle_of_files(&dir.path().join("src"), &spec(), &model);
    let unpacked = shelf_formats::bundle::unpack_file(
        &written.path,
        None,
        &dir.path().join("src-unpacked"),
        &shelf_formats::bundle::Limits::default(),
    )
    .unwrap();
    let chunks_lexical = std::fs::read(unpacked.dir.join("lexical.bin")).unwrap();
    let bad = with_member(
        &dir.path().join("history"),
        "history-lexical.bin",
        &chunks_lexical,
    );
    let err = MappedBundle::open_file(&bad, &dir.path().join("cache"), &model)
        .expect_err("a history whose lexical index has other documents is refused");
    assert!(err.to_string().contains("history's lexical index"), "{err}");
    // Nothing of either was installed.
    let installed: Vec<_> = std::fs::read_dir(dir.path().join("cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(installed.is_empty(), "{installed:?}");
}
