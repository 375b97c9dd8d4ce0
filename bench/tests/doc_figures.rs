//! The figures the documentation quotes, checked against the committed
//! results they come from (`bench/tests/doc-figures.tsv`): each line names
//! a document, a results file, a JSON pointer (or two, divided or
//! subtracted), a scale, and the phrase as the document prints it with the
//! figure in [brackets]. The phrase must be in the document, and the value
//! at the pointer, scaled and rounded to the figure's decimals, must be the
//! figure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One line of the table, checked: `Err` says what does not match.
fn check(
    line: &str,
    docs: &mut BTreeMap<String, String>,
    results: &mut BTreeMap<String, Value>,
) -> Result<(), String> {
    let [doc, json, pointer, scale, phrase] = line.split('\t').collect::<Vec<_>>()[..] else {
        return Err("not five tab-separated fields".into());
    };
    let text = docs
        .entry(doc.to_string())
        .or_insert_with(|| std::fs::read_to_string(root().join(doc)).unwrap_or_default());
    let (before, rest) = phrase.split_once('[').ok_or("no [figure] in the phrase")?;
    let (figure, after) = rest.split_once(']').ok_or("no [figure] in the phrase")?;
    if !text.contains(&format!("{before}{figure}{after}")) {
        return Err(format!("{doc} does not say \"{before}{figure}{after}\""));
    }
    let value = results.entry(json.to_string()).or_insert_with(|| {
        let path = root().join("bench-results").join(json);
        serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default()
    });
    let at = |p: &str| -> Result<f64, String> {
        match value.pointer(p.trim()) {
            Some(Value::Number(n)) => n
                .as_f64()
                .ok_or_else(|| format!("{json}{p} is not a number")),
            Some(Value::Array(a)) => Ok(a.len() as f64),
            Some(other) => Err(format!("{json}{p} is {other}, not a number")),
            None => Err(format!("{json} has nothing at {p}")),
        }
    };
    let x = if let Some((a, b)) = pointer.split_once(" / ") {
        at(a)? / at(b)?
    } else if let Some((a, b)) = pointer.split_once(" - ") {
        at(a)? - at(b)?
    } else {
        at(pointer)?
    };
    let scale: f64 = scale
        .parse()
        .map_err(|_| format!("scale {scale} is not a number"))?;
    // As printed: thousands separators, a typographic minus, a plus sign.
    let printed = figure.replace([',', '+'], "").replace('−', "-");
    let decimals = printed.split_once('.').map_or(0, |(_, d)| d.len());
    let want: f64 = printed
        .parse()
        .map_err(|_| format!("[{figure}] is not a number"))?;
    let got = format!("{:.*}", decimals, x * scale);
    if got.parse::<f64>() != Ok(want) {
        return Err(format!("{doc} says {figure}, {json}{pointer} gives {got}"));
    }
    Ok(())
}

#[test]
fn every_figure_in_the_table_is_what_its_results_say() {
    let table = std::fs::read_to_string(root().join("bench/tests/doc-figures.tsv"))
        .expect("bench/tests/doc-figures.tsv is readable");
    let (mut docs, mut results) = (BTreeMap::new(), BTreeMap::new());
    let mut checked = 0;
    let mut failures = Vec::new();
    for (i, line) in table.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        checked += 1;
        if let Err(why) = check(line, &mut docs, &mut results) {
            failures.push(format!("doc-figures.tsv line {}: {why}", i + 1));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 100, "only {checked} figures in the table");
}

#[test]
fn a_figure_that_disagrees_or_a_phrase_the_doc_lacks_fails() {
    let (mut docs, mut results) = (BTreeMap::new(), BTreeMap::new());
    docs.insert(
        "d.md".to_string(),
        "| cold build | 545.4 s | and 7.4% of cold".to_string(),
    );
    let json = serde_json::json!({"ms": 545400.6, "other_ms": 546000.0, "share": 0.07396});
    results.insert("r.json".to_string(), json);
    let mut ok = |line: &str| check(line, &mut docs, &mut results);
    assert_eq!(
        ok("d.md\tr.json\t/ms\t0.001\t| cold build | [545.4] s"),
        Ok(())
    );
    assert_eq!(ok("d.md\tr.json\t/share\t100\tand [7.4]% of cold"), Ok(()));
    assert!(ok("d.md\tr.json\t/other_ms\t0.001\t| cold build | [545.4] s").is_err());
    assert!(ok("d.md\tr.json\t/ms\t0.001\t| cold build | [545.5] s").is_err());
    assert!(ok("d.md\tr.json\t/share\t100\tand [7.40]% of cold").is_err());
    assert!(ok("d.md\tr.json\t/missing\t1\t| cold build | [545.4] s").is_err());
    assert!(ok("d.md\tr.json\t/ms\t0.001\t| warm build | [545.4] s").is_err());
}
