//! Fixtures for shelf's tests, in one place: real git repositories made in
//! temporary directories with the `git` CLI (what users have), nothing mocked.

pub mod browser;
pub mod cgroup;
pub mod cli;
pub mod http;
pub mod serve;
pub mod static_server;
pub mod store;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use shelf_formats::ModelIdentity;
use shelf_formats::manifest::{BuildSettings, Counts, Manifest, Source, VectorLayout};

/// A git repository in a temporary directory, removed on drop.
pub struct GitRepo {
    dir: tempfile::TempDir,
}

impl Default for GitRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl GitRepo {
    /// `git init` with a fixed identity and branch name `main`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("shelf-test-repo-")
            .tempdir()
            .expect("temp dir");
        let repo = GitRepo { dir };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// The work tree.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the work tree with a fixed identity and dates, so commit
    /// ids are reproducible; panics with git's stderr on failure.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .args([
                "-c",
                "user.name=shelf test",
                "-c",
                "user.email=test@shelf.invalid",
            ])
            .args(["-c", "commit.gpgsign=false", "-c", "core.autocrlf=false"])
            .args(args)
            .current_dir(self.path())
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Writes a file (creating parent directories).
    pub fn write(&self, path: &str, contents: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, contents).expect("write");
        self
    }

    /// `git add -A && git commit`; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.git(&["rev-parse", "HEAD"])
    }

    /// A bare clone next to the work tree; returns its path.
    pub fn bare_clone(&self, into: &Path) -> PathBuf {
        let dest = into.join("bare.git");
        let out = Command::new("git")
            .args(["clone", "-q", "--bare"])
            .arg(self.path())
            .arg(&dest)
            .output()
            .expect("git clone");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        dest
    }
}

/// A small, realistic repository: Rust, Python and Markdown files whose
/// contents a query can find by meaning.
pub fn sample_repo() -> GitRepo {
    let r = GitRepo::new();
    r.write(
        "src/tags.rs",
        "/// Moves a tag to a new bundle digest with compare-and-swap.\n\
         pub fn move_tag(store: &Store, name: &str, expected: Digest, new: Digest) -> Result<()> {\n    \
         let current = store.read_tag(name)?;\n    \
         if current != expected {\n        return Err(Error::Conflict);\n    }\n    \
         store.write_tag(name, new)\n}\n",
    );
    r.write(
        "src/http.rs",
        "/// Starts the HTTP listener and serves search requests.\n\
         pub async fn serve(addr: SocketAddr) -> std::io::Result<()> {\n    \
         let listener = TcpListener::bind(addr).await?;\n    \
         loop {\n        let (socket, _) = listener.accept().await?;\n        tokio::spawn(handle(socket));\n    }\n}\n",
    );
    r.write(
        "tools/resize.py",
        "def resize_image(path, width, height):\n    \"\"\"Scale a picture to the given size in pixels.\"\"\"\n    \
         img = Image.open(path)\n    return img.resize((width, height))\n",
    );
    r.write(
        "docs/rollback.md",
        "# Rolling back\n\nTo return production to the previous release, retag it:\n\n    shelf rollback production\n\nNothing is rebuilt.\n",
    );
    r.commit("sample");
    r
}

/// Golden queries of [`sample_repo`] (docs/eval.md): one per file a query
/// can find by meaning.
pub const SAMPLE_GOLDEN: &str = r#"# golden queries of the sample repository
{"id": "cas", "query": "moving a tag to a new bundle with compare and swap", "gold_files": ["src/tags.rs"]}
{"id": "resize", "query": "scale a picture to a width and height in pixels", "gold_files": ["tools/resize.py"]}
{"id": "rollback", "query": "how do I return production to the previous release", "gold_files": ["docs/rollback.md"]}
{"id": "listener", "query": "TcpListener bind accept loop", "gold_files": ["src/http.rs"]}
"#;

/// moto's S3-compatible server on a free 127.0.0.1 port, started for one
/// test and stopped (killed and reaped) when dropped. Installed by
/// `scripts/setup-test-services`.
pub struct MotoServer {
    child: std::process::Child,
    port: u16,
}

/// Bucket every [`MotoServer`] starts with.
pub const TEST_BUCKET: &str = "shelf-test";

impl MotoServer {
    /// Starts a server that accepts any credentials, with [`TEST_BUCKET`].
    pub fn start() -> Self {
        let server = Self::spawn(false);
        server.create_bucket(TEST_BUCKET);
        server
    }

    /// Starts a server that enforces IAM credentials: every request with
    /// made-up keys is refused (for wrong-credential tests).
    pub fn start_with_auth() -> Self {
        Self::spawn(true)
    }

    fn moto_dir() -> PathBuf {
        let runtime = std::env::var_os("SHELF_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.runtime"));
        runtime.join("moto-venv/bin")
    }

    fn spawn(auth: bool) -> Self {
        let bin = Self::moto_dir().join("moto_server");
        assert!(
            bin.exists(),
            "{} is missing: run scripts/setup-test-services",
            bin.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let mut cmd = Command::new(&bin);
            cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            if auth {
                cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
            }
            let child = cmd.spawn().expect("moto_server starts");
            let mut server = MotoServer { child, port };
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while std::time::Instant::now() < deadline {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return server;
                }
                if let Ok(Some(_)) = server.child.try_wait() {
                    break; // lost the port to someone else: try another
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            let _ = server.child.kill();
        }
        panic!("moto_server did not start on 127.0.0.1");
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (with moto's own boto3, as an operator would).
    pub fn create_bucket(&self, name: &str) {
        self.boto3(&format!("s3.create_bucket(Bucket='{name}')"));
    }

    /// Deletes every object whose key starts with `prefix` in `bucket`, as
    /// an operator removing a repository's store would.
    pub fn delete_prefix(&self, bucket: &str, prefix: &str) {
        self.boto3(&format!(
            "b = boto3.resource('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1').Bucket('{bucket}')\n\
             b.objects.filter(Prefix='{prefix}').delete()",
            self.endpoint()
        ));
    }

    /// Writes `body` at each of `keys` in `bucket` (objects no push wrote),
    /// in one client session.
    pub fn put_objects(&self, bucket: &str, keys: &[String], body: &str) {
        self.boto3(&format!(
            "for k in {keys:?}:\n    s3.put_object(Bucket='{bucket}', Key=k, Body={body:?}.encode())"
        ));
    }

    /// Runs `statements` with moto's own boto3 and `s3` a client of this
    /// server; panics with Python's stderr on failure.
    fn boto3(&self, statements: &str) {
        let py = Self::moto_dir().join("python");
        let out = Command::new(py)
            .arg("-c")
            .arg(format!(
                "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
                 aws_secret_access_key='test', region_name='us-east-1')\n{statements}",
                self.endpoint()
            ))
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// A plausible manifest for `commit`, for tests that write bundles without
/// the builder (members are filled in by the writer).
pub fn sample_manifest(commit: &str) -> Manifest {
    Manifest {
        format_version: 0,
        format_minor: 0,
        source: Source {
            repository: "example/repo".into(),
            commit: commit.into(),
            tree: "b".repeat(40),
            git_ref: Some("refs/heads/main".into()),
            commit_time: 1_763_800_000,
        },
        model: ModelIdentity {
            name: "sentence-transformers/all-MiniLM-L6-v2".into(),
            dimensions: 384,
            pooling: "mean".into(),
            normalized: true,
            max_tokens: 256,
            onnx_sha256: [1; 32],
            tokenizer_sha256: [2; 32],
            query_prefix: String::new(),
            document_prefix: String::new(),
        },
        settings: BuildSettings {
            chunker: "lines-v1".into(),
            max_chunk_tokens: 256,
            overlap_lines: 2,
            max_file_bytes: 1 << 20,
            include: vec![],
            exclude: vec!["*.lock".into()],
            vector_quantization: shelf_formats::manifest::VECTOR_QUANTIZATION.into(),
            index: shelf_formats::manifest::VECTOR_INDEX_KIND.into(),
            lexical: None,
            exclude_generated: None,
            secret_scan: None,
            definitions: None,
            history: None,
            compression: None,
        },
        counts: Counts {
            files_indexed: 2,
            chunks: 3,
            skipped: BTreeMap::from([("binary".into(), 1)]),
            decoded_lossy: 0,
        },
        members: vec![],
    }
}

/// Queries for a [`synthetic_bundle`] in semantic mode: each scans every
/// vector, so each needs all of the vectors' pages (the memory-limit test
/// and `shelf-bench limit` ask them).
pub const SCAN_QUERIES: [&str; 12] = [
    "parse the configuration file",
    "retry with backoff",
    "render a table of results",
    "hash the password",
    "open a database connection",
    "split a string into tokens",
    "read the environment variables",
    "compress a stream of bytes",
    "sort the entries by date",
    "send an http request with a timeout",
    "walk a directory tree",
    "format an error for the user",
];

/// Writes a real bundle without a model: `chunks` chunks over a few dozen
/// Rust, Python and Markdown paths, with deterministic pseudo-random unit
/// vectors of `model.dimensions`, indexed as the builder indexes them. For
/// tests of the read side that need many chunks or another model identity
/// (queries against it are meaningless; its structure is not).
pub fn synthetic_bundle(
    out_dir: &Path,
    chunks: usize,
    model: &ModelIdentity,
    seed: u64,
) -> shelf_formats::bundle::WrittenBundle {
    synthetic_bundle_with(out_dir, chunks, model, seed, |_| {})
}

/// A [`synthetic_bundle`] under the identity of the model `shelf` really
/// builds with (read from its bundle of [`sample_repo`], made in `dir`), so
/// that a server of that model serves it: random vectors, so the answers
/// mean nothing, but every semantic query scans every vector.
pub fn synthetic_bundle_of_real_model(
    shelf: &Path,
    dir: &Path,
    chunks: usize,
    seed: u64,
) -> shelf_formats::bundle::WrittenBundle {
    let real = cli::build(shelf, &sample_repo(), &dir.join("real"));
    let unpacked = shelf_formats::bundle::unpack_file(
        &real.path,
        None,
        &dir.join("real-unpacked"),
        &shelf_formats::bundle::Limits::default(),
    )
    .expect("the sample repository's bundle unpacks");
    synthetic_bundle(
        &dir.join("big"),
        chunks,
        &unpacked.bundle.manifest.model,
        seed,
    )
}

/// [`synthetic_bundle`] with its manifest changed by `edit` before it is
/// written (for bundles a reader must refuse, e.g. unknown kinds).
pub fn synthetic_bundle_with(
    out_dir: &Path,
    chunks: usize,
    model: &ModelIdentity,
    seed: u64,
    edit: impl FnOnce(&mut Manifest),
) -> shelf_formats::bundle::WrittenBundle {
    synthetic(out_dir, chunks, model, seed, VectorLayout::Flat, edit)
}

/// [`synthetic_bundle`] as shelf wrote bundles before format 1.3: the
/// vectors in a usearch HNSW graph (`vectors.usearch`), format 1.0. For
/// tests that older bundles keep serving.
pub fn synthetic_hnsw_bundle(
    out_dir: &Path,
    chunks: usize,
    model: &ModelIdentity,
    seed: u64,
) -> shelf_formats::bundle::WrittenBundle {
    synthetic(out_dir, chunks, model, seed, VectorLayout::Hnsw, |m| {
        m.settings.index = shelf_formats::manifest::HNSW_INDEX_KIND.into();
        m.settings.vector_quantization = shelf_formats::manifest::HNSW_QUANTIZATION.into();
    })
}

fn synthetic(
    out_dir: &Path,
    chunks: usize,
    model: &ModelIdentity,
    seed: u64,
    layout: VectorLayout,
    edit: impl FnOnce(&mut Manifest),
) -> shelf_formats::bundle::WrittenBundle {
    use shelf_formats::chunks::{ChunkRecord, ChunkStoreWriter};
    let src = tempfile::tempdir().expect("temp dir");
    let dims = model.dimensions as usize;
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    };
    let exts = ["rs", "py", "md"];
    let mut records = Vec::with_capacity(chunks);
    for i in 0..chunks {
        let file = i / 8;
        let path = format!("src/mod{}/file{file}.{}", file % 7, exts[file % 3]);
        let text = format!("chunk {i} of {path}\n");
        let id: [u8; 32] = sha2_of(text.as_bytes());
        records.push((path, text, id, (i % 8) as u32 * 10 + 1));
    }
    records.sort_by(|a, b| a.0.cmp(&b.0).then(a.3.cmp(&b.3)));
    let mut store = ChunkStoreWriter::new();
    for (path, text, id, line) in &records {
        store.push(&ChunkRecord {
            content_id: *id,
            path,
            start_line: *line,
            end_line: line + 9,
            text,
        });
    }
    let chunks_path = src.path().join("chunks.bin");
    let mut bytes = Vec::new();
    store.write_to(&mut bytes).expect("chunk store");
    std::fs::write(&chunks_path, bytes).expect("write chunks");
    let vectors: Vec<Vec<f32>> = (0..chunks)
        .map(|_| {
            let mut v: Vec<f32> = (0..dims).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-6);
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect();
    let vectors_path = src.path().join(layout.member());
    match layout {
        VectorLayout::Flat => {
            write_flat_vectors(&vectors_path, &vectors, dims);
        }
        VectorLayout::Hnsw => {
            let index = usearch::Index::new(&usearch::IndexOptions {
                dimensions: dims,
                metric: usearch::MetricKind::Cos,
                quantization: usearch::ScalarKind::F32,
                connectivity: 16,
                expansion_add: 128,
                expansion_search: 64,
                multi: false,
            })
            .expect("index");
            index.reserve(chunks).expect("reserve");
            for (key, v) in vectors.iter().enumerate() {
                index.add(key as u64, v).expect("add");
            }
            index
                .save(vectors_path.to_str().expect("utf-8 temp path"))
                .expect("save index");
        }
    }
    let mut manifest = sample_manifest(&format!("{seed:040x}"));
    manifest.model = model.clone();
    manifest.counts.chunks = chunks as u64;
    manifest.counts.files_indexed = chunks.div_ceil(8) as u64;
    edit(&mut manifest);
    shelf_formats::bundle::write_bundle(
        out_dir,
        manifest,
        &[
            ("chunks.bin".into(), chunks_path),
            (layout.member().into(), vectors_path),
        ],
    )
    .expect("write bundle")
}

/// What [`bundle_of_files`] writes: one chunk per file, and the
/// definitions and history a build would have found.
#[derive(Debug, Clone, Default)]
pub struct FilesBundle<'a> {
    /// `(path, text)`, one chunk each (sorted by path when written).
    pub files: Vec<(&'a str, &'a str)>,
    /// `(name, scope, kind, path, line)` definitions.
    pub definitions: Vec<(
        &'a str,
        &'a str,
        shelf_formats::definitions::DefKind,
        &'a str,
        u32,
    )>,
    /// History commits, newest first.
    pub history: Vec<shelf_formats::history::HistoryCommit>,
    /// Leave the definitions and history indexes out (a bundle of format
    /// 1.3, as shelf built before them).
    pub without_indexes: bool,
}

/// Writes a real bundle of format 1.4 without a model or a repository:
/// one chunk per file with its lexical index, flat vectors of
/// `model.dimensions` (one axis per file, so only lexical queries mean anything), and the
/// definitions and history indexes given. For tests of what the read side
/// does with those members.
pub fn bundle_of_files(
    out_dir: &Path,
    spec: &FilesBundle<'_>,
    model: &ModelIdentity,
) -> shelf_formats::bundle::WrittenBundle {
    use shelf_formats::chunks::{ChunkRecord, ChunkStoreWriter};
    use shelf_formats::definitions::{Definition, DefinitionsWriter};
    use shelf_formats::history::HistoryWriter;
    use shelf_formats::lexical::LexicalIndexWriter;
    let src = tempfile::tempdir().expect("temp dir");
    let mut files = spec.files.clone();
    files.sort();
    let mut store = ChunkStoreWriter::new();
    let mut lexical = LexicalIndexWriter::new();
    for (path, text) in &files {
        store.push(&ChunkRecord {
            content_id: sha2_of(text.as_bytes()),
            path,
            start_line: 1,
            end_line: text.lines().count().max(1) as u32,
            text,
        });
        lexical.push_chunk(path, text);
    }
    let mut defs = DefinitionsWriter::new();
    for (name, scope, kind, path, line) in &spec.definitions {
        let path_index = files
            .iter()
            .position(|(p, _)| p == path)
            .expect("a definition's file is one of the files") as u32;
        defs.push(Definition {
            name: name.to_string(),
            scope: scope.to_string(),
            kind: *kind,
            path_index,
            start_line: *line,
            end_line: *line,
        });
    }
    let mut history = HistoryWriter::new();
    let mut messages = LexicalIndexWriter::new();
    for c in &spec.history {
        let mut terms = Vec::new();
        shelf_formats::lexical::analyze(&c.message, |t| terms.push(t.to_string()));
        messages.push_doc(terms.iter().map(String::as_str));
        history.push(c.clone()).expect("history commit");
    }
    let write = |name: &str, f: &dyn Fn(&mut Vec<u8>) -> std::io::Result<()>| {
        let mut bytes = Vec::new();
        f(&mut bytes).expect("member");
        let path = src.path().join(name);
        std::fs::write(&path, bytes).expect("write member");
        (name.to_string(), path)
    };
    let mut texts = shelf_formats::files::FileTextsWriter::new();
    for (path, text) in &files {
        texts.push(
            path,
            shelf_formats::files::CompressedText::new(text).expect("compress"),
        );
    }
    let mut members = vec![
        write("chunks.bin", &|b| store.write_to(b)),
        write("lexical.bin", &|b| lexical.write_to(b)),
        write("files.bin", &|b| texts.write_to(b)),
    ];
    if !spec.without_indexes {
        members.extend([
            write("definitions.bin", &|b| defs.write_to(b)),
            write("history.bin", &|b| history.write_to(b)),
            write("history-lexical.bin", &|b| messages.write_to(b)),
        ]);
    }
    let dims = model.dimensions as usize;
    let vectors: Vec<Vec<f32>> = (0..files.len())
        .map(|key| {
            let mut v = vec![0f32; dims];
            v[key % dims] = 1.0;
            v
        })
        .collect();
    let vectors_path = src.path().join(VectorLayout::Flat.member());
    write_flat_vectors(&vectors_path, &vectors, dims);
    members.push((VectorLayout::Flat.member().into(), vectors_path));
    let mut manifest = sample_manifest(&"ab".repeat(20));
    manifest.model = model.clone();
    manifest.counts.chunks = files.len() as u64;
    manifest.counts.files_indexed = files.len() as u64;
    manifest.settings.lexical = Some(shelf_formats::lexical::Analyzer::CURRENT.kind().into());
    if !spec.without_indexes {
        manifest.settings.definitions = Some("defs-v1/syntax".into());
        manifest.settings.history = Some("commits-v1/1000".into());
    }
    shelf_formats::bundle::write_bundle(out_dir, manifest, &members).expect("write bundle")
}

fn sha2_of(bytes: &[u8]) -> [u8; 32] {
    shelf_formats::Digest::of(bytes).as_bytes().to_owned()
}

/// A "bring your own model" directory built from the provisioned model's
/// files (symlinked) with its own `shelf-model.toml`: a genuinely different
/// model identity and behaviour (pooling, prefixes, token limit) without a
/// second download. `runtime` is the provisioned runtime directory.
pub fn custom_model(runtime: &Path, spec: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("shelf-test-model-")
        .tempdir()
        .expect("temp dir");
    for f in [
        "model.onnx",
        "tokenizer.json",
        "config.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
    ] {
        std::os::unix::fs::symlink(runtime.join("model").join(f), dir.path().join(f))
            .expect("symlink a model file");
    }
    std::fs::write(dir.path().join("shelf-model.toml"), spec).expect("write the spec");
    dir
}

/// Re-packs `bundle` as an older format would have written it: `edit`
/// changes the manifest's JSON (its minor, settings it did not have, its
/// `members`), and only the members still listed are packed. The tar+zstd
/// is written here because the writer only writes the current minor.
/// Returns `<out>/<hex>.tar.zst`.
pub fn repack_older(
    bundle: &Path,
    out: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let t = tempfile::tempdir().expect("temp dir");
    let dir = t.path().join("u");
    shelf_formats::bundle::unpack_file(bundle, None, &dir, &Default::default())
        .expect("the bundle unpacks");
    let read = std::fs::read(dir.join("manifest.json")).expect("manifest");
    let mut m: serde_json::Value = serde_json::from_slice(&read).expect("manifest JSON");
    edit(&mut m);
    let mut manifest = serde_json::to_vec_pretty(&m).expect("JSON");
    manifest.push(b'\n');
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |name: &str, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o444);
        h.set_cksum();
        tar.append_data(&mut h, name, data).expect("tar entry");
    };
    add("manifest.json", &manifest);
    for member in m["members"].as_array().expect("members") {
        let name = member["name"].as_str().expect("member name");
        add(name, &std::fs::read(dir.join(name)).expect("member"));
    }
    let bytes = zstd::encode_all(&tar.into_inner().expect("tar")[..], 3).expect("zstd");
    let digest = shelf_formats::Digest::of(&bytes);
    std::fs::create_dir_all(out).expect("out dir");
    let path = out.join(format!("{}.tar.zst", digest.hex()));
    std::fs::write(&path, &bytes).expect("write bundle");
    path
}

/// Writes `vectors` as the `vectors.bin` a build of today writes.
fn write_flat_vectors(path: &Path, vectors: &[Vec<f32>], dims: usize) {
    let refs: Vec<&[f32]> = vectors.iter().map(Vec::as_slice).collect();
    let file = std::fs::File::create(path).expect("create vectors");
    shelf_formats::vectors::write_to(
        &refs,
        dims,
        shelf_formats::vectors::Element::I8Blocks,
        std::io::BufWriter::new(file),
    )
    .expect("write vectors");
}
