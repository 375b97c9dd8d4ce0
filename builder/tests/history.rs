//! Mining golden queries from a repository's history: which commits become
//! queries, what their gold is, and what is passed over and why.

use shelf_builder::history::{MineOptions, mine};
use shelf_testkit::GitRepo;

#[test]
fn commits_that_change_few_source_files_become_queries_with_their_parents_files_as_gold() {
    let r = GitRepo::new();
    r.write("src/retry.rs", "pub fn retry() {}\n")
        .write("src/pool.rs", "pub fn pool() {}\n")
        .write("src/idle.rs", "pub fn idle() {}\n")
        .write("README.md", "# demo\n");
    let root = r.commit("Initial import of the retry and pool code");
    r.write("src/retry.rs", "pub fn retry() { backoff(); }\n")
        .write("tests/retry.rs", "#[test] fn t() {}\n")
        .write("CHANGELOG.md", "- retry backs off\n");
    let fix = r.commit(
        "Back off between retries\n\nThe loop spun without waiting.\n\nSigned-off-by: shelf test <test@shelf.invalid>",
    );
    r.write("README.md", "# demo\n\nMore prose.\n");
    r.commit("Explain the demo in the readme");
    r.write("src/new.rs", "pub fn new() {}\n");
    r.commit("Add a brand new module for later");
    r.write("src/retry.rs", "pub fn retry() { backoff(); log(); }\n");
    r.commit("wip");
    for i in 0..4 {
        r.write(&format!("src/m{i}.rs"), "pub fn m() {}\n");
    }
    r.write("src/pool.rs", "pub fn pool() { grow(); }\n")
        .write("src/retry.rs", "pub fn retry() { grow(); }\n");
    r.commit("Rework everything at once in one big commit");
    r.git(&["checkout", "-q", "-b", "side", &fix]);
    r.write("src/idle.rs", "pub fn idle() { shrink(); }\n");
    let side = r.commit("Shrink the pool when it is idle");
    r.git(&["checkout", "-q", "main"]);
    r.git(&[
        "merge",
        "-q",
        "--no-ff",
        "-m",
        "Merge the side branch",
        "side",
    ]);
    r.git(&["rm", "-q", "src/pool.rs"]);
    r.git(&["commit", "-q", "-m", "Remove the pool, nothing uses it"]);

    let mined = mine(r.path(), "HEAD", &MineOptions::default()).unwrap();
    let got: Vec<(&str, Vec<&str>)> = mined
        .queries
        .iter()
        .map(|q| {
            (
                q.query.as_str(),
                q.gold.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    // Same timestamps everywhere: the walk's order among them is git's,
    // so compare as a set.
    let mut got_sorted = got.clone();
    got_sorted.sort();
    let mut want = vec![
        ("Remove the pool, nothing uses it", vec!["src/pool.rs"]),
        ("Shrink the pool when it is idle", vec!["src/idle.rs"]),
        (
            "Back off between retries\n\nThe loop spun without waiting.",
            vec!["src/retry.rs"],
        ),
    ];
    want.sort();
    assert_eq!(got_sorted, want, "{mined:#?}");
    let fix_query = mined
        .queries
        .iter()
        .find(|q| q.query.starts_with("Back off"))
        .unwrap();
    assert_eq!(fix_query.parent, root);
    assert_eq!(fix_query.commit, fix);
    assert!(fix_query.id.starts_with("commit-"));
    let side_query = mined
        .queries
        .iter()
        .find(|q| q.query.starts_with("Shrink"))
        .unwrap();
    assert_eq!(side_query.commit, side, "branches merged in are mined too");
    for (reason, n) in [
        ("merge", 1),
        ("root-commit", 1),
        ("short-message", 1),
        ("no-source-file", 1),
        ("only-new-files", 1),
        ("too-many-source-files", 1),
    ] {
        assert_eq!(mined.skipped.get(reason), Some(&n), "{reason}: {mined:#?}");
    }
    assert!(!mined.shallow);

    // A limit takes the most recent.
    let one = mine(
        r.path(),
        "HEAD",
        &MineOptions {
            limit: 1,
            ..MineOptions::default()
        },
    )
    .unwrap();
    assert_eq!(one.queries.len(), 1);
}

#[test]
fn a_shallow_clone_says_its_history_is_cut_off() {
    let r = GitRepo::new();
    for i in 0..4 {
        r.write("src/lib.rs", format!("pub fn f() -> u32 {{ {i} }}\n"));
        r.commit(&format!("Return {i} from the function f now"));
    }
    let t = tempfile::tempdir().unwrap();
    let shallow = t.path().join("shallow");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--depth", "2"])
        .arg(format!("file://{}", r.path().display()))
        .arg(&shallow)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mined = mine(&shallow, "HEAD", &MineOptions::default()).unwrap();
    assert!(mined.shallow);
    assert_eq!(mined.queries.len(), 1, "{mined:#?}");
    assert_eq!(mined.skipped.get("history-cut-off"), Some(&1), "{mined:#?}");
    let e = mine(&shallow, "nope", &MineOptions::default()).unwrap_err();
    assert!(e.to_string().contains("revision 'nope' not found"), "{e}");
}

#[test]
fn a_query_commit_is_never_in_its_parents_history_index() {
    use shelf_builder::history::{ParentBuild, build_parents};
    use shelf_embed::{Embedder, EmbedderOptions, Runtime};
    use shelf_formats::bundle::{Limits, unpack_file};
    use shelf_formats::history::History;
    use shelf_formats::manifest::members;

    let r = GitRepo::new();
    r.write("src/retry.rs", "pub fn retry() {}\n")
        .write("src/pool.rs", "pub fn pool() {}\n");
    r.commit("Initial import of the retry and pool code");
    let mut commits = Vec::new();
    for (i, (file, message)) in [
        ("src/retry.rs", "Back off between retries of the request"),
        ("src/pool.rs", "Grow the pool when every connection is busy"),
        ("src/retry.rs", "Give up after the retry budget is spent"),
    ]
    .iter()
    .enumerate()
    {
        r.write(file, format!("pub fn f{i}() {{}}\n"));
        commits.push(r.commit(message));
    }
    let mined = mine(r.path(), "HEAD", &MineOptions::default()).unwrap();
    assert_eq!(mined.queries.len(), 3, "{mined:#?}");
    let cache = tempfile::tempdir().unwrap();
    let runtime = Runtime::locate(None).expect("runtime: run scripts/setup first");
    let embedder = Embedder::load(&runtime, &EmbedderOptions::default()).unwrap();
    let how = ParentBuild {
        repo: r.path().to_path_buf(),
        name: Some("test/repo".into()),
        config: None,
        cache: cache.path().to_path_buf(),
    };
    let bundles = build_parents(&mined.queries, &how, &embedder, &(), |_| {}).unwrap();
    for q in &mined.queries {
        let t = tempfile::tempdir().unwrap();
        let u = unpack_file(
            &bundles[&q.parent],
            None,
            &t.path().join("b"),
            &Limits::default(),
        )
        .unwrap();
        let bytes = std::fs::read(u.dir.join(members::HISTORY)).unwrap();
        let history = History::parse(&bytes).unwrap();
        let ids: Vec<String> = (0..history.len())
            .map(|i| history.get(i).unwrap().id_hex())
            .collect();
        assert!(
            !ids.contains(&q.commit),
            "{} is in its parent's history: {ids:?}",
            q.commit
        );
        assert!(ids.contains(&q.parent), "the parent itself is: {ids:?}");
        // Nothing newer than the parent either.
        let later = commits.iter().skip_while(|c| **c != q.commit);
        for c in later {
            assert!(!ids.contains(c), "{c} is after {}", q.parent);
        }
    }
}
