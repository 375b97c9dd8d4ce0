//! Credentials committed inside ordinary files never reach a bundle: the
//! build withholds their lines, reports where they were (never what), and
//! `build.allow_secrets_in` lets a path keep its (fake) keys.

use std::io::Read;
use std::path::Path;

use shelf_formats::bundle::{Limits, unpack_file};
use shelf_formats::manifest::SecretScan;
use shelf_testkit::{GitRepo, cli};

const SHELF: &str = env!("CARGO_BIN_EXE_shelf");

/// Real-looking but fake credentials, assembled at run time so that this
/// source file holds no string a secret scanner would flag.
struct Fakes {
    aws_id: String,
    aws_secret: String,
    github: String,
    slack_hook: String,
    pem_body: Vec<String>,
    fixture_key: String,
}

fn fakes() -> Fakes {
    Fakes {
        aws_id: ["AKIA", "Q4XT7RZ2LW5NBH3M"].concat(),
        aws_secret: ["h8Kd2/Lq9Zr+Vx4Wt7", "NmPb3Yc6Fj1Gs5Ua0EoRiT"].concat(),
        github: ["ghp_", "xY7kQ2mN9pL4vR8sT1wZ5bC3dF6gH0jK2aE4"].concat(),
        slack_hook: [
            "https://hooks.slack.com/services/",
            "T04ABCD1234/B05EFGH5678/q9Wm3Xr7Lp2Kz8Nv4Tb6Yc1J",
        ]
        .concat(),
        pem_body: (0..6)
            .map(|i| format!("MIIEpQIB{i}AAKCAQEAu7Qx9Lm2Pv4Rt8Zw3Nc6Yb1Kd5Hf0Gj7Ae2Si9Uo4Xq3"))
            .collect(),
        fixture_key: ["AKIA", "FIXTURE7Z2LW5NB3"].concat(),
    }
}

fn repo_with_secrets(f: &Fakes) -> GitRepo {
    let r = GitRepo::new();
    r.write(
        "app/config.py",
        format!(
            "\"\"\"Settings for the upload service.\"\"\"\n\
             import os\n\
             AWS_ACCESS_KEY_ID = \"{}\"\n\
             AWS_SECRET_ACCESS_KEY = \"{}\"\n\
             \n\
             def connect_to_bucket(name):\n    \
             \"\"\"Open the bucket that holds customer uploads.\"\"\"\n    \
             return boto3.resource('s3').Bucket(name)\n",
            f.aws_id, f.aws_secret
        ),
    );
    r.write(
        "ci/deploy.yml",
        format!(
            "name: deploy\nenv:\n  GITHUB_TOKEN: {}\n  NOTIFY: {}\nsteps:\n  - run: make release\n",
            f.github, f.slack_hook
        ),
    );
    let mut pem = String::from("-----BEGIN RSA PRIVATE KEY-----\n");
    for l in &f.pem_body {
        pem.push_str(l);
        pem.push('\n');
    }
    pem.push_str("-----END RSA PRIVATE KEY-----\n");
    r.write(
        "deploy/signing.py",
        format!("SIGNING_KEY = \"\"\"\n{pem}\"\"\"\n\ndef sign_release(artifact):\n    return rsa_sign(artifact, SIGNING_KEY)\n"),
    );
    r.write(
        "tests/fixtures/fake_aws.txt",
        format!(
            "example access key for the parser tests: {}\n",
            f.fixture_key
        ),
    );
    r.write("README.md", "# Uploads\n\nStores customer uploads in S3.\n");
    r.commit("service with committed credentials");
    r
}

/// The whole bundle, decompressed: every member, manifest included.
fn bundle_bytes(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    zstd::stream::read::Decoder::new(std::fs::File::open(path).unwrap())
        .unwrap()
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// Every file text in the bundle's `files.bin`, decompressed, joined.
fn file_texts(path: &Path) -> String {
    let t = tempfile::tempdir().unwrap();
    let u =
        shelf_formats::bundle::unpack_file(path, None, &t.path().join("u"), &Default::default())
            .unwrap();
    let bytes = std::fs::read(u.dir.join(shelf_formats::manifest::members::FILES)).unwrap();
    let texts = shelf_formats::files::FileTexts::parse(&bytes).unwrap();
    assert!(!texts.is_empty());
    (0..texts.len()).map(|i| texts.text(i).unwrap()).collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn build(repo: &GitRepo, out: &Path) -> (serde_json::Value, String) {
    let (code, stdout, stderr) = cli::run(
        Path::new(SHELF),
        &[
            "build",
            "--json",
            "--repo",
            &repo.path().display().to_string(),
            "--out",
            &out.display().to_string(),
        ],
        // The most verbose logs: a secret must not reach any level.
        &[("SHELF_LOG", "trace")],
    );
    assert_eq!(code, 0, "{stderr}");
    (serde_json::from_str(&stdout).unwrap(), stdout + &stderr)
}

#[test]
fn credentials_in_files_are_withheld_reported_by_line_and_never_printed() {
    let f = fakes();
    let repo = repo_with_secrets(&f);
    let out = tempfile::tempdir().unwrap();
    let (report, printed) = build(&repo, out.path());
    let bundle_path = Path::new(report["bundle_path"].as_str().unwrap());
    let bundle = bundle_bytes(bundle_path);
    // The file texts are compressed one by one inside the archive: read
    // them all, as read_file and grep would.
    let texts = file_texts(bundle_path);

    let secrets = [&f.aws_id, &f.aws_secret, &f.github, &f.slack_hook]
        .into_iter()
        .chain(&f.pem_body);
    for s in secrets {
        assert!(!contains(&bundle, s), "{s} is in the bundle");
        assert!(!texts.contains(s.as_str()), "{s} is in the file texts");
        assert!(!printed.contains(s.as_str()), "{s} was printed");
    }
    // The code around them is still indexed, and searchable by its words.
    assert!(texts.contains("def connect_to_bucket(name):"));
    assert!(contains(&bundle, "def connect_to_bucket(name):"));
    assert!(contains(&bundle, "def sign_release(artifact):"));
    assert!(contains(&bundle, "run: make release"));

    let s = &report["secrets"];
    let found: Vec<(String, u64, u64, String)> = s["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["path"].as_str().unwrap().to_string(),
                x["line"].as_u64().unwrap(),
                x["end_line"].as_u64().unwrap(),
                x["rule"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("app/config.py", 3, 3, "aws-access-key-id"),
        ("app/config.py", 4, 4, "aws-secret-access-key"),
        ("ci/deploy.yml", 3, 3, "github-token"),
        ("ci/deploy.yml", 4, 4, "slack-webhook"),
        ("deploy/signing.py", 2, 9, "private-key"),
        ("tests/fixtures/fake_aws.txt", 1, 1, "aws-access-key-id"),
    ];
    let want: Vec<(String, u64, u64, String)> = want
        .iter()
        .map(|(p, a, b, r)| (p.to_string(), *a, *b, r.to_string()))
        .collect();
    assert_eq!(found, want, "{s:#}");
    assert_eq!(s["lines_withheld"], 13);
    assert_eq!(s["files"], 4);
    // The log names the place, for whoever reads the build's output.
    assert!(
        printed.contains("app/config.py") && printed.contains("look like credentials"),
        "{printed}"
    );
    // A file that is nothing but a credential is skipped as a secret; the
    // others are indexed with the lines emptied, so every other line keeps
    // its number.
    assert_eq!(report["files"]["indexed"], 4, "{:#}", report["files"]);
    assert_eq!(report["files"]["skipped"]["secret"], 1);
    let manifest = manifest(&report);
    assert_eq!(
        manifest.settings.secret_scan,
        Some(SecretScan {
            rules: "secrets-v1".into(),
            allow: vec![]
        })
    );
}

fn manifest(report: &serde_json::Value) -> shelf_formats::Manifest {
    let t = tempfile::tempdir().unwrap();
    let u = unpack_file(
        Path::new(report["bundle_path"].as_str().unwrap()),
        Some(&report["digest"].as_str().unwrap().parse().unwrap()),
        &t.path().join("b"),
        &Limits::default(),
    )
    .unwrap();
    u.bundle.manifest
}

#[test]
fn a_path_allowed_in_shelf_toml_keeps_its_fake_keys_and_the_rest_is_still_scanned() {
    let f = fakes();
    let repo = repo_with_secrets(&f);
    repo.write(
        "shelf.toml",
        "[build]\nallow_secrets_in = [\"tests/fixtures/**\"]\n",
    );
    repo.commit("allow the fixtures");
    let out = tempfile::tempdir().unwrap();
    let (report, _) = build(&repo, out.path());
    let bundle = bundle_bytes(Path::new(report["bundle_path"].as_str().unwrap()));
    assert!(
        contains(&bundle, &f.fixture_key),
        "the allowed fixture is indexed"
    );
    assert!(
        !contains(&bundle, &f.aws_id),
        "other paths are still scanned"
    );
    let paths: Vec<&str> = report["secrets"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["path"].as_str().unwrap())
        .collect();
    assert!(!paths.contains(&"tests/fixtures/fake_aws.txt"), "{paths:?}");
    // The manifest records the scan and the allow-list: settings that change
    // a bundle's bytes (and so its identity for reuse).
    assert_eq!(
        manifest(&report).settings.secret_scan,
        Some(SecretScan {
            rules: "secrets-v1".into(),
            allow: vec!["tests/fixtures/**".into()]
        })
    );

    repo.write("shelf.toml", "[build]\nallow_secrets_in = [\"[\"]\n");
    repo.commit("a bad glob");
    let (code, _, err) = cli::run(
        Path::new(SHELF),
        &[
            "build",
            "--repo",
            &repo.path().display().to_string(),
            "--out",
            &out.path().display().to_string(),
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("glob '['"), "{err}");
}
