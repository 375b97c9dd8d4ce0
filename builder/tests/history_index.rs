//! The history index of a bundle (`history_index.rs`) on real git
//! repositories: which commits it holds, in which order, and that carrying
//! it forward from a previous bundle gives exactly what mining from
//! scratch gives.

use std::process::Command;

use git2::Repository;
use shelf_builder::history_index::{self, MAX_FILES, PreviousHistory, collect};
use shelf_formats::history::HistoryCommit;
use shelf_testkit::GitRepo;

/// `git add -A && git commit` with the committer and author date `date`
/// (seconds since the epoch); returns the commit id.
fn commit_at(r: &GitRepo, message: &str, date: i64) -> String {
    commit_as(r, message, date, "t")
}

/// [`commit_at`] by the author `name`.
fn commit_as(r: &GitRepo, message: &str, date: i64, name: &str) -> String {
    r.git(&["add", "-A"]);
    let stamp = format!("@{date} +0000");
    let out = Command::new("git")
        .args([
            "-c",
            &format!("user.name={name}"),
            "-c",
            "user.email=t@x.invalid",
        ])
        .args(["-c", "commit.gpgsign=false"])
        .args(["commit", "-q", "--allow-empty", "-m", message])
        .current_dir(r.path())
        .env("GIT_AUTHOR_DATE", &stamp)
        .env("GIT_COMMITTER_DATE", &stamp)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.git(&["rev-parse", "HEAD"])
}

fn mined(
    r: &GitRepo,
    commit: &str,
    limit: usize,
    previous: Option<&PreviousHistory>,
) -> Vec<HistoryCommit> {
    let repo = Repository::open(r.path()).unwrap();
    collect(&repo, commit, limit, previous).unwrap().unwrap().0
}

fn ids(commits: &[HistoryCommit]) -> Vec<String> {
    commits.iter().map(HistoryCommit::id_hex).collect()
}

fn previous_of(commit: &str, limit: usize, commits: Vec<HistoryCommit>) -> PreviousHistory {
    PreviousHistory {
        commit: commit.to_string(),
        kind: history_index::kind(limit),
        commits,
    }
}

#[test]
fn only_ancestors_that_follow_the_rules_newest_first() {
    let r = GitRepo::new();
    r.write("src/a.py", "def a(): pass\n")
        .write("README.md", "# x\n");
    let root = commit_at(&r, "Start the project", 1_000);
    r.write("src/a.py", "def a(): return 1\n");
    let fix = commit_at(
        &r,
        "Fix a\n\nIt returned None.\n\nSigned-off-by: T <t@x>",
        2_000,
    );
    for i in 0..=MAX_FILES {
        r.write(&format!("gen/f{i}.py"), format!("X = {i}\n"));
    }
    let huge = commit_at(&r, "Generate many files", 3_000);
    r.git(&["rm", "-q", "-r", "gen"]);
    let only_delete = commit_at(&r, "Remove the generated files", 4_000);
    r.write("Cargo.lock", "bumped\n");
    let bot = commit_as(
        &r,
        "Bump serde from 1.0.1 to 1.0.2",
        4_500,
        "dependabot[bot]",
    );
    // A side branch merged back: its commit is an ancestor, the merge is not kept.
    r.git(&["checkout", "-q", "-b", "side"]);
    r.write("src/b.py", "def b(): pass\n");
    let side = commit_at(&r, "Add b on a branch", 5_000);
    r.git(&["checkout", "-q", "main"]);
    r.write("src/a.py", "def a(): return 2\n");
    let main_fix = commit_at(&r, "Return 2 from a", 6_000);
    r.git(&["merge", "-q", "--no-ff", "--no-edit", "side"]);
    let merge = r.git(&["rev-parse", "HEAD"]);
    // A later commit on another branch is no ancestor of `merge`.
    r.git(&["checkout", "-q", "-b", "later"]);
    r.write("src/c.py", "def c(): pass\n");
    let later = commit_at(&r, "Add c later", 9_000);

    let got = mined(&r, &merge, 100, None);
    assert_eq!(
        ids(&got),
        [main_fix.clone(), side.clone(), fix.clone(), root.clone()]
    );
    for left_out in [&huge, &only_delete, &bot, &merge, &later] {
        assert!(!ids(&got).contains(left_out), "{left_out}");
    }
    let f = &got[2];
    assert_eq!(f.message, "Fix a\n\nIt returned None.", "trailers removed");
    assert_eq!(f.files, ["src/a.py"]);
    assert_eq!(f.time, 2_000);
    assert_eq!(
        got[3].files,
        ["README.md", "src/a.py"],
        "a root commit's files"
    );
    // The bound keeps the newest.
    assert_eq!(ids(&mined(&r, &merge, 2, None)), [main_fix, side]);
    // A history of 0 commits is no history.
    assert!(mined(&r, &merge, 0, None).is_empty());
}

#[test]
fn carried_forward_equals_mined_from_scratch_at_every_commit() {
    // Committer times out of order (a rebased branch, a skewed clock),
    // branches merged back, ties in time: the order is still total and
    // carrying forward still gives what mining from scratch gives.
    let r = GitRepo::new();
    let times = [100i64, 300, 200, 200, 500, 400, 400, 50, 700, 600, 650, 800];
    let mut chain = Vec::new();
    for (i, t) in times.iter().enumerate() {
        if i % 4 == 2 {
            r.git(&["checkout", "-q", "-b", &format!("topic{i}")]);
            r.write(&format!("src/topic{i}.py"), "x = 1\n");
            commit_at(&r, &format!("Topic {i}"), t - 30);
            r.git(&["checkout", "-q", "main"]);
            r.write(&format!("src/m{i}.py"), format!("y = {i}\n"));
            commit_at(&r, &format!("Main {i}"), *t);
            r.git(&["merge", "-q", "--no-ff", "--no-edit", &format!("topic{i}")]);
            chain.push(r.git(&["rev-parse", "HEAD"]));
        } else {
            r.write(&format!("src/f{}.py", i % 3), format!("z = {i}\n"));
            chain.push(commit_at(&r, &format!("Change {i}"), *t));
        }
    }
    let repo = Repository::open(r.path()).unwrap();
    let mut carried_any = 0;
    for limit in [1usize, 3, 5, 100] {
        let mut previous: Option<(String, Vec<HistoryCommit>)> = None;
        for c in &chain {
            let cold = mined(&r, c, limit, None);
            assert!(cold.len() <= limit);
            if let Some((p, commits)) = previous.take() {
                let prev = previous_of(&p, limit, commits);
                let (carried, how) = collect(&repo, c, limit, Some(&prev)).unwrap().unwrap();
                assert_eq!(ids(&carried), ids(&cold), "limit {limit} at {c}");
                assert_eq!(carried, cold);
                // Only what is new since the previous commit was read.
                assert!(how.mined <= 3, "{how:?}");
                carried_any += how.carried;
            }
            previous = Some((c.clone(), cold));
        }
    }
    assert!(
        carried_any > 20,
        "the previous index was carried: {carried_any}"
    );
    // A previous bundle of a commit that is not an ancestor, or made under
    // another bound, is not carried: the result is still the cold one.
    let first = &chain[0];
    let last = chain.last().unwrap();
    let newer = previous_of(last, 3, mined(&r, last, 3, None));
    assert_eq!(mined(&r, first, 3, Some(&newer)), mined(&r, first, 3, None));
    let other_bound = previous_of(&chain[5], 2, mined(&r, &chain[5], 2, None));
    assert_eq!(
        mined(&r, last, 3, Some(&other_bound)),
        mined(&r, last, 3, None)
    );
}

#[test]
fn a_shallow_clone_gets_no_history_index() {
    let r = GitRepo::new();
    for i in 0..3 {
        r.write("src/lib.rs", format!("pub fn f() -> u32 {{ {i} }}\n"));
        commit_at(&r, &format!("Return {i}"), 100 + i);
    }
    let t = tempfile::tempdir().unwrap();
    let shallow = t.path().join("shallow");
    let out = Command::new("git")
        .args(["clone", "-q", "--depth", "1"])
        .arg(format!("file://{}", r.path().display()))
        .arg(&shallow)
        .output()
        .unwrap();
    assert!(out.status.success());
    let repo = Repository::open(&shallow).unwrap();
    let head = repo.head().unwrap().target().unwrap().to_string();
    assert!(collect(&repo, &head, 10, None).unwrap().is_none());
}
