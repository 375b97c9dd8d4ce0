//! `shelf_builder::build` on real git repositories with the real model.

use std::path::Path;
use std::sync::OnceLock;

use shelf_builder::{BuildError, BuildReport, BuildRequest, build};
use shelf_embed::{Embedder, EmbedderOptions, Runtime};
use shelf_formats::bundle::{Limits, unpack_file};
use shelf_formats::chunks::ChunkStore;
use shelf_formats::manifest::{Manifest, members};
use shelf_testkit::{GitRepo, sample_repo};

fn embedder() -> &'static Embedder {
    static E: OnceLock<Embedder> = OnceLock::new();
    E.get_or_init(|| {
        let rt = Runtime::locate(None).expect("runtime: run scripts/setup first");
        Embedder::load(&rt, &EmbedderOptions::default()).expect("embedder loads")
    })
}

fn request(repo: &Path, out: &Path) -> BuildRequest {
    BuildRequest {
        repo: repo.to_path_buf(),
        rev: "HEAD".into(),
        out_dir: out.to_path_buf(),
        previous: None,
        config: None,
        name: Some("test/repo".into()),
    }
}

fn run(req: &BuildRequest) -> Result<BuildReport, BuildError> {
    build(req, embedder(), &())
}

/// Unpacks a built bundle and returns its manifest and (path, text) chunks.
fn contents(report: &BuildReport) -> (Manifest, Vec<(String, String)>) {
    let t = tempfile::tempdir().unwrap();
    let u = unpack_file(
        Path::new(&report.bundle_path),
        Some(&report.digest.parse().unwrap()),
        &t.path().join("b"),
        &Limits::default(),
    )
    .unwrap();
    let bytes = std::fs::read(u.dir.join(members::CHUNKS)).unwrap();
    let store = ChunkStore::parse(&bytes).unwrap();
    let chunks = (0..store.len())
        .map(|i| {
            let c = store.get(i).unwrap();
            (c.path.to_string(), c.text.to_string())
        })
        .collect();
    (u.bundle.manifest, chunks)
}

#[test]
fn indexes_committed_content_only() {
    let r = sample_repo();
    r.write("src/tags.rs", "uncommitted edit that must not appear\n");
    r.write("scratch.txt", "untracked file that must not appear\n");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    let (manifest, chunks) = contents(&report);
    let all: String = chunks.iter().map(|(_, t)| t.as_str()).collect();
    assert!(all.contains("compare-and-swap"));
    assert!(!all.contains("uncommitted edit") && !all.contains("untracked file"));
    assert_eq!(manifest.source.commit, r.git(&["rev-parse", "HEAD"]));
    assert_eq!(manifest.source.tree, r.git(&["rev-parse", "HEAD^{tree}"]));
    assert_eq!(manifest.source.git_ref.as_deref(), Some("refs/heads/main"));
    assert_eq!(manifest.source.repository, "test/repo");
    assert_eq!(report.files.indexed, 4);
    assert_eq!(manifest.counts.chunks, chunks.len() as u64);
}

#[test]
fn same_commit_builds_the_same_digest_and_a_bare_clone_too() {
    let r = sample_repo();
    let out = tempfile::tempdir().unwrap();
    let a = run(&request(r.path(), &out.path().join("a"))).unwrap();
    let b = run(&request(r.path(), &out.path().join("b"))).unwrap();
    assert_eq!(a.digest, b.digest);
    assert_eq!(
        std::fs::read(&a.bundle_path).unwrap(),
        std::fs::read(&b.bundle_path).unwrap()
    );
    let bare = r.bare_clone(out.path());
    let mut req = request(&bare, &out.path().join("c"));
    // A bare clone's HEAD names the same branch and commit.
    req.rev = "main".into();
    let c = run(&req).unwrap();
    assert_eq!(c.commit, a.commit);
    let (m, _) = contents(&c);
    assert_eq!(m.source.git_ref.as_deref(), Some("refs/heads/main"));
}

#[test]
fn skips_and_reports_binary_oversized_secrets_ignored_links_and_submodules() {
    let r = sample_repo();
    r.write("assets/logo.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    r.write("data/huge.txt", "x".repeat(2 << 20));
    r.write(".env", "DATABASE_PASSWORD=hunter2\n");
    r.write("deploy/id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\n");
    r.write("certs/server.pem", "-----BEGIN CERTIFICATE-----\n");
    r.write(".shelfignore", "vendor/\n");
    r.write("vendor/lib.rs", "pub fn vendored() {}\n");
    r.write("empty.txt", "\n\n");
    std::os::unix::fs::symlink("src/tags.rs", r.path().join("link.rs")).unwrap();
    r.git(&["add", "-A"]);
    // A submodule entry (gitlink) without fetching anything.
    r.git(&[
        "update-index",
        "--add",
        "--cacheinfo",
        "160000,1111111111111111111111111111111111111111,third_party/sub",
    ]);
    // Not r.commit(): its `add -A` would stage the gitlink's removal.
    r.git(&["commit", "-q", "-m", "more files"]);

    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    let skipped = &report.files.skipped;
    assert_eq!(skipped.get("binary"), Some(&1), "{skipped:?}");
    assert_eq!(skipped.get("too_large"), Some(&1));
    assert_eq!(skipped.get("secret"), Some(&3));
    assert_eq!(skipped.get("shelfignore"), Some(&1));
    assert_eq!(skipped.get("symlink"), Some(&1));
    assert_eq!(skipped.get("submodule"), Some(&1));
    assert_eq!(skipped.get("empty"), Some(&1));
    assert!(report.files.skipped_examples["secret"].contains(&".env".to_string()));
    let (manifest, chunks) = contents(&report);
    assert_eq!(&manifest.counts.skipped, skipped);
    let all: String = chunks.iter().map(|(_, t)| t.as_str()).collect();
    assert!(!all.contains("hunter2") && !all.contains("PRIVATE KEY"));
    assert!(
        chunks
            .iter()
            .all(|(p, _)| p != "vendor/lib.rs" && p != "link.rs")
    );
    // .shelfignore itself is a small text file and is indexed like any other.
    assert_eq!(report.files.indexed, 5);
}

#[test]
fn invalid_utf8_is_decoded_lossily_and_counted() {
    let r = GitRepo::new();
    r.write("latin1.txt", b"caf\xe9 cr\xe8me br\xfbl\xe9e recipe\n");
    r.commit("latin-1");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    assert_eq!(report.files.decoded_lossy, 1);
    let (manifest, chunks) = contents(&report);
    assert_eq!(manifest.counts.decoded_lossy, 1);
    assert!(chunks[0].1.contains("caf\u{fffd} cr\u{fffd}me"));
}

#[test]
fn empty_repository_is_a_clear_error() {
    let r = GitRepo::new();
    let out = tempfile::tempdir().unwrap();
    let err = run(&request(r.path(), out.path())).unwrap_err();
    assert!(matches!(err, BuildError::EmptyRepository { .. }), "{err}");
    assert!(err.to_string().contains("no commits yet"));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn unknown_revision_is_named_in_the_error() {
    let r = sample_repo();
    let out = tempfile::tempdir().unwrap();
    let mut req = request(r.path(), out.path());
    req.rev = "no-such-branch".into();
    let err = run(&req).unwrap_err();
    assert!(matches!(err, BuildError::UnknownRevision { .. }), "{err}");
    assert!(err.to_string().contains("'no-such-branch'"), "{err}");
}

#[test]
fn not_a_repository_is_a_clear_error() {
    let t = tempfile::tempdir().unwrap();
    let err = run(&request(t.path(), &t.path().join("out"))).unwrap_err();
    assert!(matches!(err, BuildError::Repository { .. }), "{err}");
    assert!(err.to_string().contains(&t.path().display().to_string()));
}

#[test]
fn a_tree_with_nothing_indexable_says_why() {
    let r = GitRepo::new();
    r.write(".env", "SECRET=1\n");
    r.commit("only a secret");
    let out = tempfile::tempdir().unwrap();
    let err = run(&request(r.path(), out.path())).unwrap_err();
    assert!(matches!(err, BuildError::NothingToIndex { .. }), "{err}");
    assert!(err.to_string().contains("1 secret skipped"), "{err}");
}

#[test]
fn settings_come_from_shelf_toml_at_the_revision() {
    let r = sample_repo();
    r.write("shelf.toml", "[build]\nexclude = [\"*.py\", \"docs/**\"]\n");
    r.commit("config");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    assert_eq!(report.files.skipped.get("excluded"), Some(&2));
    let (manifest, _) = contents(&report);
    assert_eq!(manifest.settings.exclude, ["*.py", "docs/**"]);

    r.write("shelf.toml", "[build]\nmax_file_bytez = 1\n");
    r.commit("typo");
    let err = run(&request(r.path(), out.path())).unwrap_err().to_string();
    assert!(
        err.contains("shelf.toml") && err.contains("max_file_bytez"),
        "{err}"
    );
}

#[test]
fn incremental_build_reuses_unchanged_chunks_and_matches_a_cold_build() {
    let r = sample_repo();
    for i in 0..6 {
        r.write(
            &format!("src/module{i}.rs"),
            format!("/// Module {i}.\npub fn handler_{i}(x: u32) -> u32 {{\n    x * {i} + 1\n}}\n"),
        );
    }
    r.commit("modules");
    let out = tempfile::tempdir().unwrap();
    let first = run(&request(r.path(), &out.path().join("v1"))).unwrap();
    assert_eq!(first.chunks.reused, 0);

    r.write(
        "src/module3.rs",
        "/// Module 3, rewritten.\npub fn handler_3(x: u32) -> u32 {\n    x ^ 0xff\n}\n",
    );
    r.commit("change one file");
    let mut inc = request(r.path(), &out.path().join("v2"));
    inc.previous = Some(first.bundle_path.clone().into());
    let incremental = run(&inc).unwrap();
    assert_eq!(
        incremental.chunks.embedded, 1,
        "only the changed file's chunk"
    );
    assert_eq!(incremental.chunks.reused, incremental.chunks.total - 1);

    let cold = run(&request(r.path(), &out.path().join("cold"))).unwrap();
    assert_eq!(cold.chunks.reused, 0);
    assert_eq!(
        incremental.digest, cold.digest,
        "incremental == cold, byte for byte"
    );
}

/// Rust source of `n` functions of varied lengths, numbered from `seed`.
fn module_text(seed: usize, n: usize) -> String {
    (0..n)
        .map(|k| {
            let id = seed * 31 + k;
            let body: String = (0..(id % 9) * 3)
                .map(|l| format!("    let v{l} = x.wrapping_mul({}) ^ {l};\n", id + l))
                .collect();
            format!("/// Handler {id}: retries request {id}.\npub fn handler_{id}(x: u64) -> u64 {{\n{body}    x + {id}\n}}\n\n")
        })
        .collect()
}

#[test]
fn incremental_equals_cold_when_new_chunks_are_embedded_among_other_neighbours() {
    // A cold build embeds every chunk, an incremental one only the changed
    // ones: each chunk is embedded beside different texts (and, across the
    // embedder's sessions, in a different order). With a model whose
    // vectors depended on batch neighbours or padding (int8 dynamic
    // quantisation in a padded batch does), the digests would differ.
    let r = GitRepo::new();
    for i in 0..40 {
        r.write(&format!("src/m{i}.rs"), module_text(i, 1 + i % 6));
    }
    r.commit("forty modules of varied length");
    let out = tempfile::tempdir().unwrap();
    let first = run(&request(r.path(), &out.path().join("v1"))).unwrap();
    assert!(first.chunks.embedded > 60, "{:?}", first.chunks);

    // Change a spread of short and long files, add some, remove one.
    for i in (0..40).step_by(5) {
        r.write(
            &format!("src/m{i}.rs"),
            module_text(100 + i, 1 + (i + 3) % 6),
        );
    }
    for i in 40..44 {
        r.write(&format!("src/m{i}.rs"), module_text(i, 2 + i % 4));
    }
    r.git(&["rm", "-q", "src/m7.rs"]);
    r.commit("change, add and remove modules");
    let mut inc = request(r.path(), &out.path().join("v2"));
    inc.previous = Some(first.bundle_path.clone().into());
    let incremental = run(&inc).unwrap();
    assert!(
        incremental.chunks.embedded >= 10 && incremental.chunks.reused >= 40,
        "{:?}",
        incremental.chunks
    );

    let cold = run(&request(r.path(), &out.path().join("cold"))).unwrap();
    assert_eq!(cold.chunks.reused, 0);
    assert_eq!(
        cold.chunks.embedded,
        incremental.chunks.embedded + incremental.chunks.reused
    );
    assert_eq!(
        incremental.digest, cold.digest,
        "incremental == cold, byte for byte"
    );
}

#[test]
fn a_previous_bundle_that_is_corrupt_is_refused() {
    let r = sample_repo();
    let out = tempfile::tempdir().unwrap();
    let bad = out.path().join("bad.tar.zst");
    std::fs::write(&bad, b"not a bundle").unwrap();
    let mut req = request(r.path(), &out.path().join("o"));
    req.previous = Some(bad.clone());
    let err = run(&req).unwrap_err();
    assert!(matches!(err, BuildError::Previous { .. }), "{err}");
    assert!(err.to_string().contains("bad.tar.zst"));
}

#[test]
fn the_bundle_carries_a_lexical_index_of_every_chunk_and_skips_generated_text() {
    let r = sample_repo();
    r.write("doc/logo.svg", "<svg><path d=\"M0 0 L10 10\"/></svg>\n");
    r.write("Cargo.lock", "[[package]]\nname = \"x\"\n");
    r.write("web/app.js", format!("var a={};\n", "1,".repeat(3000)));
    r.commit("generated files");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    assert_eq!(
        report.files.skipped.get("generated"),
        Some(&3),
        "{:?}",
        report.files.skipped
    );
    let t = tempfile::tempdir().unwrap();
    let u = unpack_file(
        Path::new(&report.bundle_path),
        Some(&report.digest.parse().unwrap()),
        &t.path().join("b"),
        &Limits::default(),
    )
    .unwrap();
    let m = &u.bundle.manifest;
    assert_eq!((m.format_version, m.format_minor), (1, 5));
    assert_eq!(m.settings.lexical.as_deref(), Some("bm25/code-v1"));
    assert_eq!(m.settings.exclude_generated, Some(true));
    let lexical = std::fs::read(u.dir.join(members::LEXICAL)).unwrap();
    let ix = shelf_formats::lexical::LexicalIndex::parse(&lexical).unwrap();
    let chunks = std::fs::read(u.dir.join(members::CHUNKS)).unwrap();
    let store = ChunkStore::parse(&chunks).unwrap();
    assert_eq!(ix.doc_count(), store.len());
    // Document i is chunk i: the identifier's postings point at its file.
    let docs: Vec<u32> = ix
        .lookup("resize_image")
        .unwrap()
        .iter()
        .map(|(d, _)| d)
        .collect();
    assert!(!docs.is_empty());
    assert!(
        docs.iter()
            .all(|&d| store.get(d as usize).unwrap().path == "tools/resize.py")
    );
    // The path is indexed too.
    assert!(ix.lookup("rollback.md").is_some());
}

#[test]
fn the_bundle_carries_the_exact_text_of_every_indexed_file_once() {
    let r = sample_repo();
    let twin = "def resize_image(path, width, height):\n    \"\"\"Scale a picture to the given size in pixels.\"\"\"\n    img = Image.open(path)\n    return img.resize((width, height))\n";
    r.write("vendor/resize_copy.py", twin);
    r.write("Cargo.lock", "[[package]]\nname = \"x\"\n");
    r.commit("a copy and a generated file");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    let t = tempfile::tempdir().unwrap();
    let u = unpack_file(
        Path::new(&report.bundle_path),
        Some(&report.digest.parse().unwrap()),
        &t.path().join("b"),
        &Limits::default(),
    )
    .unwrap();
    let bytes = std::fs::read(u.dir.join(members::FILES)).unwrap();
    let texts = shelf_formats::files::FileTexts::parse(&bytes).unwrap();
    let chunks = std::fs::read(u.dir.join(members::CHUNKS)).unwrap();
    let store = ChunkStore::parse(&chunks).unwrap();
    let mut indexed: Vec<String> = (0..store.len())
        .map(|i| store.get(i).unwrap().path.to_string())
        .collect();
    indexed.sort();
    indexed.dedup();
    // Exactly the files with chunks: the generated lock file has none.
    assert_eq!(texts.len(), indexed.len());
    assert!(texts.find("Cargo.lock").is_none());
    for path in &indexed {
        let i = texts
            .find(path)
            .unwrap_or_else(|| panic!("{path} has no text"));
        let on_disk = std::fs::read_to_string(r.path().join(path)).unwrap();
        assert_eq!(texts.text(i).unwrap(), on_disk, "{path}");
    }
    // Two files with the same bytes share one stored text.
    assert_eq!(texts.blob_count(), texts.len() - 1);
}

#[test]
fn the_bundle_carries_its_definitions_and_the_history_before_it() {
    let r = sample_repo();
    r.write(
        "src/router.py",
        "class Router:\n    def add_route(self, path):\n        return path\n",
    );
    let added = r.commit("Add a router with routes");
    let out = tempfile::tempdir().unwrap();
    let report = run(&request(r.path(), out.path())).unwrap();
    let t = tempfile::tempdir().unwrap();
    let u = unpack_file(
        Path::new(&report.bundle_path),
        Some(&report.digest.parse().unwrap()),
        &t.path().join("b"),
        &Limits::default(),
    )
    .unwrap();
    let m = &u.bundle.manifest;
    assert_eq!(m.settings.definitions.as_deref(), Some("defs-v1/syntax"));
    assert_eq!(m.settings.history.as_deref(), Some("commits-v1/1000"));
    let chunks = std::fs::read(u.dir.join(members::CHUNKS)).unwrap();
    let store = ChunkStore::parse(&chunks).unwrap();
    let defs = std::fs::read(u.dir.join(members::DEFINITIONS)).unwrap();
    let defs = shelf_formats::definitions::Definitions::parse(&defs, store.path_count()).unwrap();
    let found: Vec<_> = defs
        .lookup("add_route")
        .map(|i| defs.get(i).unwrap())
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(
        store.path(found[0].path_index as usize),
        Some("src/router.py")
    );
    assert_eq!(
        (found[0].scope, found[0].start_line, found[0].end_line),
        ("Router", 2, 3)
    );
    let history = std::fs::read(u.dir.join(members::HISTORY)).unwrap();
    let history = shelf_formats::history::History::parse(&history).unwrap();
    // The test repository's commits share one time: ordered by id then.
    let commits: Vec<_> = (0..history.len())
        .map(|i| history.commit(i).unwrap())
        .collect();
    let own = commits
        .iter()
        .find(|c| c.id_hex() == added)
        .expect("the commit itself");
    assert_eq!(own.files, ["src/router.py"]);
    assert_eq!(own.message, "Add a router with routes");
    assert!(commits.windows(2).all(|w| w[0].id < w[1].id));
    let lexical = std::fs::read(u.dir.join(members::HISTORY_LEXICAL)).unwrap();
    let lexical = shelf_formats::lexical::LexicalIndex::parse(&lexical).unwrap();
    assert_eq!(
        lexical.doc_count(),
        history.len(),
        "one document per commit"
    );
    assert!(lexical.lookup("router").is_some());

    // Both can be switched off; the manifest then names neither.
    r.write(
        "shelf.toml",
        "[build]\ndefinitions = \"off\"\nhistory_commits = 0\n",
    );
    r.commit("no extras");
    let report = run(&request(r.path(), &out.path().join("off"))).unwrap();
    let (m, _) = contents(&report);
    assert_eq!((m.settings.definitions, m.settings.history), (None, None));
    let names: Vec<&str> = m.members.iter().map(|x| x.name.as_str()).collect();
    assert_eq!(
        names,
        ["chunks.bin", "files.bin", "lexical.bin", "vectors.bin"]
    );
}
