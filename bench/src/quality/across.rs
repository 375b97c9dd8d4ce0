//! `shelf-bench across`: see [`Across`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shelf_builder::chunker::Chunker;
use shelf_embed::{Embedder, EmbedderOptions};
use shelf_formats::names::repo_name_of;
use shelf_search::across::RepoFusion;
use shelf_search::eval::{self, EvalQuery, QueryScore, Report, Summary};
use shelf_search::{Engine, MappedBundle, Mode, Target, Tuning};

use crate::fixtures::devset::{self, Sources};
use crate::harness::{Bench, Benchmark, Machine, runtime};

/// The development issues asked of all four of their repositories at once
/// (one server, one store root), to choose how the rankings become one.
///
/// Each row asks the bundle of its own repository at its base commit beside
/// the newest dev bundle of every other repository; a hit is a gold file of
/// the row's own repository. Every fusion is scored, and the row's own
/// repository alone (what a client naming `repo=` gets) as the ceiling.
/// Uses the bundles `swebench` builds.
#[derive(Debug, Clone, clap::Args)]
pub struct Across {
    /// The issues, the repositories and their bundles.
    #[command(flatten)]
    sources: Sources,
    /// A model directory instead of the provisioned default.
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
}

/// The fusions compared, and the single-repository ceiling.
const SYSTEMS: [(&str, Option<RepoFusion>); 4] = [
    ("own-repo-only", None),
    ("collection", Some(RepoFusion::Collection)),
    ("interleave", Some(RepoFusion::Interleave)),
    ("scores", Some(RepoFusion::Scores)),
];

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemOut {
    overall: Summary,
    without_leaks: Summary,
    groups: BTreeMap<String, Summary>,
    /// Share of top-5 files that come from another repository than the
    /// row's own.
    other_repo_share_at_5: f64,
}

/// What `shelf-bench across` writes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Results {
    command: Vec<String>,
    machine: Machine,
    systems: BTreeMap<String, SystemOut>,
}

impl Benchmark for Across {
    const NAME: &'static str = "across";
    type Results = Results;

    // Every row asked of its own bundle and the other repositories' newest.
    fn measure(&self, b: &Bench) -> Result<Results> {
        let opts = self;
        let rows = devset::read_rows(&opts.sources.queries)?;
        let build = devset::Build {
            sources: &opts.sources,
            only: &[],
            chunker: Chunker::default(),
            definitions: Default::default(),
            model: opts.model.as_deref(),
        };
        let built = build.all(b, b.shelf()?, &rows)?;
        let options = EmbedderOptions {
            model: opts.model.clone(),
            ..EmbedderOptions::default()
        };
        let embedder = Arc::new(Embedder::load(&runtime()?, &options)?);
        let cache = b.work().join("cache");
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
            b.say(format!("{}/{} {}", i + 1, rows.len(), row.instance_id));
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
        Ok(Results {
            command: b.command.clone(),
            machine: b.machine.clone(),
            systems,
        })
    }
}
