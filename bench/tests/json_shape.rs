//! Each benchmark's results type against the results committed in
//! `bench-results/`, without running a benchmark: every committed file
//! deserializes into its benchmark's type (unknown fields refused where the
//! type allows it), and serializing that again gives exactly the file's
//! keys at every level. A harness whose JSON gains, loses or renames a key
//! fails here; so does a committed file no harness writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use shelf_bench::{perf, quality};

fn results_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench-results")
}

/// Every key of `v` by its path (`.a.b[].c`), so a map's keys, an array's
/// elements' keys and nested objects all count.
fn key_paths(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{path}.{k}");
                key_paths(x, &p, out);
                out.insert(p);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|x| key_paths(x, &format!("{path}[]"), out)),
        _ => {}
    }
}

/// The file at `path` read as `T` and written again has the file's keys,
/// all of them.
fn round_trip<T: DeserializeOwned + Serialize>(path: &Path) -> Result<(), String> {
    let file = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{file}: {e}"))?;
    let committed: Value = serde_json::from_str(&text).map_err(|e| format!("{file}: {e}"))?;
    let typed: T = serde_json::from_value(committed.clone())
        .map_err(|e| format!("{file} does not read as its harness's results: {e}"))?;
    let written = serde_json::to_value(&typed).map_err(|e| format!("{file}: {e}"))?;
    let (mut want, mut got) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&committed, "", &mut want);
    key_paths(&written, "", &mut got);
    if want != got {
        let lost: Vec<_> = want.difference(&got).take(10).collect();
        let added: Vec<_> = got.difference(&want).take(10).collect();
        return Err(format!(
            "{file}: the harness writes other keys; in the file only: {lost:?}; written only: {added:?}"
        ));
    }
    Ok(())
}

type Check = fn(&Path) -> Result<(), String>;

/// Every committed results file and the type of the harness that wrote it.
const COMMITTED: [(&str, Check); 34] = [
    ("build.json", round_trip::<perf::build::Results>),
    ("serve.json", round_trip::<perf::serve::Results>),
    ("embed.json", round_trip::<perf::embed::Results>),
    ("cache.json", round_trip::<perf::cache::Results>),
    ("repos.json", round_trip::<perf::repos::Results>),
    ("mcp.json", round_trip::<perf::mcp::Results>),
    ("commit.json", round_trip::<perf::commit::Results>),
    ("commit-100k.json", round_trip::<perf::commit::Results>),
    ("agreement.json", round_trip::<perf::agreement::Results>),
    ("web.json", round_trip::<perf::web::Results>),
    ("limit.json", round_trip::<perf::limit::Results>),
    (
        "quantization.json",
        round_trip::<perf::quantization::Results>,
    ),
    ("across.json", round_trip::<quality::across::Results>),
    ("swebench.json", round_trip::<quality::swebench::Results>),
    (
        "swebench-int8.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-ranking.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-decay.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-sympy-decay.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-sweep.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-syntax.json",
        round_trip::<quality::swebench::Results>,
    ),
    ("history.json", round_trip::<quality::history::Results>),
    (
        "history-sweep.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-heldout.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-heldout2.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation-decay.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation-previous.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation-baseline.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation-sources.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "history-validation-defaults.json",
        round_trip::<quality::history::Results>,
    ),
    (
        "swebench-defaults.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-sympy-defaults.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-sources.json",
        round_trip::<quality::swebench::Results>,
    ),
    (
        "swebench-sympy-sources.json",
        round_trip::<quality::swebench::Results>,
    ),
];

#[test]
fn every_committed_result_has_its_harness_shape() {
    let failures: Vec<String> = COMMITTED
        .iter()
        .filter_map(|(file, check)| check(&results_dir().join(file)).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A results file nobody checks would let its harness drift unseen.
/// (`chunker-cost.jsonl` is not a harness's: three `shelf build --json`
/// reports, written by hand for docs/benchmarks.md.)
#[test]
fn every_committed_results_file_is_checked() {
    let checked: BTreeSet<&str> = COMMITTED.iter().map(|(f, _)| *f).collect();
    let on_disk: BTreeSet<String> = std::fs::read_dir(results_dir())
        .expect("bench-results/ is readable")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".json"))
        .collect();
    let unchecked: Vec<&String> = on_disk
        .iter()
        .filter(|f| !checked.contains(f.as_str()))
        .collect();
    assert!(
        unchecked.is_empty(),
        "results files no harness type checks: {unchecked:?}"
    );
}

/// The check itself: a key the type does not know, and a key the file
/// lacks, are both caught (so the test above can fail).
#[test]
fn a_renamed_or_missing_key_is_caught() {
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Shape {
        kept: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        optional: Option<u32>,
    }
    let dir = tempfile::tempdir().unwrap();
    let check = |json: &str| {
        let path = dir.path().join("x.json");
        std::fs::write(&path, json).unwrap();
        round_trip::<Shape>(&path)
    };
    assert!(check(r#"{"kept": 1}"#).is_ok());
    let renamed = check(r#"{"kept": 1, "renamed": 2}"#).unwrap_err();
    assert!(renamed.contains("renamed"), "{renamed}");
    assert!(check(r#"{"optional": 2}"#).is_err());
}
