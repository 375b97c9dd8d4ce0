//! `shelf-bench across`: the development issues asked of all four of
//! their repositories at once, as a server with one store root answers
//! them, to choose how the rankings of several repositories become one.
//! Each row asks the bundle of its own repository at its base commit beside
//! the newest dev bundle of every other repository; a hit is a gold file of
//! the row's own repository. Every fusion is scored, and the row's own
//! repository alone (what a client naming `repo=` gets) as the ceiling.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::Serialize;
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_formats::names::repo_name_of;
use shelf_search::across::RepoFusion;
use shelf_search::eval::{self, EvalQuery, QueryScore, Report, Summary};
use shelf_search::{Engine, MappedBundle, Mode, Target, Tuning};

use crate::machine::Machine;
use crate::progress::Progress;
use crate::shelf_cli::{ShelfBinary, workspace_root};
use crate::swebench;

/// The fusions compared, and the single-repository ceiling.
const SYSTEMS: [(&str, Option<RepoFusion>); 4] = [
    ("own-repo-only", None),
    ("collection", Some(RepoFusion::Collection)),
    ("interleave", Some(RepoFusion::Interleave)),
    ("scores", Some(RepoFusion::Scores)),
];

#[derive(Debug, Serialize)]
struct SystemOut {
    overall: Summary,
    without_leaks: Summary,
    groups: BTreeMap<String, Summary>,
    /// Share of top-5 files that come from another repository than the
    /// row's own.
    other_repo_share_at_5: f64,
}

#[derive(Debug, Serialize)]
struct Results {
    command: Vec<String>,
    machine: Machine,
    systems: BTreeMap<String, SystemOut>,
}

/// Runs the harness over the swebench options' rows and bundle cache.
pub fn run(opts: &swebench::Options) -> Result<()> {
    let p = Progress::start();
    let work = tempfile::Builder::new()
        .prefix("shelf-bench-across-")
        .tempdir()?;
    let shelf = ShelfBinary::prepare(work.path())?;
    let rows = swebench::read_rows(&opts.queries)?;
    let built = swebench::build_all(&shelf, opts, &rows, &p)?;
    let runtime = Runtime::locate(Some(&workspace_root().join(".runtime")))?;
    let options = EmbedderOptions {
        model: opts.model.clone(),
        ..EmbedderOptions::default()
    };
    let embedder = Arc::new(Embedder::load(&runtime, &options)?);
    let cache = work.path().join("cache");
    // Every bundle any row needs, opened once.
    let mut open: BTreeMap<PathBuf, MappedBundle> = BTreeMap::new();
    let newest: BTreeMap<&str, &PathBuf> = built
        .bundles
        .iter()
        .filter_map(|(repo, by_commit)| {
            let newest = rows
                .iter()
                .filter(|r| &r.repo == repo)
                .max_by_key(|r| r.base_commit.as_str())
                .and_then(|r| by_commit.get(&r.base_commit))?;
            Some((repo.as_str(), newest))
        })
        .collect();
    let mut scores: BTreeMap<&str, Vec<(QueryScore, f64)>> = BTreeMap::new();
    for (i, row) in rows.iter().enumerate() {
        let own = built
            .bundles
            .get(&row.repo)
            .and_then(|c| c.get(&row.base_commit))
            .context("a row without a bundle")?;
        let mut paths = vec![(row.repo.as_str(), own.clone())];
        for (repo, path) in &newest {
            if *repo != row.repo {
                paths.push((repo, (*path).clone()));
            }
        }
        for (_, path) in &paths {
            if !open.contains_key(path) {
                let bundle = MappedBundle::open_file(path, &cache, embedder.identity())?;
                open.insert(path.clone(), bundle);
            }
        }
        let names: Vec<String> = paths.iter().map(|(r, _)| repo_name_of(r)).collect();
        let targets: Vec<Target<'_>> = paths
            .iter()
            .zip(&names)
            .map(|((_, path), name)| Target {
                repo: name,
                bundle: &open[path],
                tag: None,
            })
            .collect();
        let own_name = &names[0];
        let query = EvalQuery {
            id: row.instance_id.clone(),
            group: Some(row.repo.clone()),
            query: row.query.clone(),
            gold: row
                .gold_files
                .iter()
                .map(|g| format!("{own_name}/{g}"))
                .collect(),
            commit: None,
        };
        let request = eval::file_request(&row.query, Mode::Hybrid);
        for (system, fusion) in SYSTEMS {
            let engine = Engine::new(embedder.clone()).with_tuning(Tuning {
                across: fusion.unwrap_or(RepoFusion::Collection),
                ..Tuning::default()
            });
            let asked = if fusion.is_some() {
                &targets[..]
            } else {
                &targets[..1]
            };
            let answer = engine.answer(asked, &request)?;
            let files: Vec<String> = answer
                .files
                .unwrap_or_default()
                .into_iter()
                .map(|f| format!("{}/{}", f.repo, f.path))
                .collect();
            let others = files
                .iter()
                .take(5)
                .filter(|f| !f.starts_with(&format!("{own_name}/")))
                .count() as f64
                / files.len().clamp(1, 5) as f64;
            let mut scored = eval::score(&query, &files);
            // A query leaks when it names a gold path itself, not the
            // repository-qualified name scored here.
            scored.leak = row
                .gold_files
                .iter()
                .any(|g| row.query.contains(g.as_str()));
            scores.entry(system).or_default().push((scored, others));
        }
        p.say(&format!("{}/{} {}", i + 1, rows.len(), row.instance_id));
    }
    let systems: BTreeMap<String, SystemOut> = scores
        .into_iter()
        .map(|(system, s)| {
            let share = s.iter().map(|(_, o)| o).sum::<f64>() / s.len().max(1) as f64;
            let report = Report::new(s.into_iter().map(|(q, _)| q).collect());
            (
                system.to_string(),
                SystemOut {
                    overall: report.overall,
                    without_leaks: report.without_leaks,
                    groups: report.groups,
                    other_repo_share_at_5: share,
                },
            )
        })
        .collect();
    println!(
        "{:<16} {}   other-repo share of top 5",
        "system",
        Summary::HEADINGS
    );
    for (system, _) in SYSTEMS {
        if let Some(s) = systems.get(system) {
            println!(
                "{system:<16} {}   {:.3}",
                s.overall.cells(),
                s.other_repo_share_at_5
            );
            println!("{:<16} {}   (no leaks)", "", s.without_leaks.cells());
        }
    }
    let results = Results {
        command: opts.command.clone(),
        machine: Machine::current(),
        systems,
    };
    if let Some(dir) = opts.json_out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&opts.json_out, serde_json::to_vec_pretty(&results)?)?;
    p.say(&format!("results written to {}", opts.json_out.display()));
    Ok(())
}
