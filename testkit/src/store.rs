//! A store as integration tests drive it through the real CLI: a local
//! directory or moto's S3 server, with `shelf push`, `shelf tag` and
//! `shelf serve --follow` run against it, and a way to put bytes into it
//! that no push would accept (a tampered bucket).

use std::path::Path;

use crate::cli::{self, Built};
use crate::serve::ServerProcess;
use crate::{GitRepo, MotoServer, TEST_BUCKET, sample_repo};

/// A store as the CLI sees it: its URL, extra flags and environment.
#[derive(Clone)]
pub struct StoreArgs {
    /// `--store` value.
    pub url: String,
    /// Flags after it (S3 endpoint and addressing).
    pub extra: Vec<String>,
    /// Environment (credentials).
    pub env: Vec<(&'static str, String)>,
}

impl StoreArgs {
    /// A local directory store at `<dir>/store`.
    pub fn local(dir: &Path) -> Self {
        Self {
            url: dir.join("store").display().to_string(),
            extra: vec![],
            env: vec![],
        }
    }

    /// A prefix of the test bucket on `moto`.
    pub fn s3(moto: &MotoServer) -> Self {
        Self {
            url: format!("s3://{TEST_BUCKET}/idx"),
            extra: vec![
                "--endpoint-url".into(),
                moto.endpoint(),
                "--path-style".into(),
            ],
            env: vec![
                ("AWS_ACCESS_KEY_ID", "test".into()),
                ("AWS_SECRET_ACCESS_KEY", "test".into()),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ],
        }
    }

    /// The store `<url>/<name>` beside the same flags: one repository's
    /// store under a store root.
    pub fn child(&self, name: &str) -> Self {
        Self {
            url: format!("{}/{name}", self.url.trim_end_matches('/')),
            ..self.clone()
        }
    }

    /// `--store URL` plus the S3 flags.
    pub fn args(&self) -> Vec<String> {
        let mut a = vec!["--store".to_string(), self.url.clone()];
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The environment, as `(name, value)` pairs.
    pub fn env(&self) -> Vec<(&str, &str)> {
        self.env.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    fn run(&self, shelf: &Path, mut args: Vec<String>) -> (i32, String, String) {
        args.extend(self.args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli::run(shelf, &args, &self.env())
    }

    /// `shelf push BUNDLE`; panics with shelf's stderr on failure.
    pub fn push(&self, shelf: &Path, bundle: &Path) {
        let (code, _, err) = self.run(shelf, vec!["push".into(), bundle.display().to_string()]);
        assert_eq!(code, 0, "push: {err}");
    }

    /// `shelf tag NAME TARGET`; panics with shelf's stderr on failure.
    pub fn tag(&self, shelf: &Path, name: &str, target: &str) {
        let (code, _, err) = self.run(shelf, vec!["tag".into(), name.into(), target.into()]);
        assert_eq!(code, 0, "tag: {err}");
    }

    /// The sample repository, built into `out`, pushed and tagged
    /// `production`.
    pub fn published(&self, shelf: &Path, out: &Path) -> (GitRepo, Built) {
        let repo = sample_repo();
        let v1 = cli::build(shelf, &repo, out);
        self.push(shelf, &v1.path);
        self.tag(shelf, "production", &v1.digest);
        (repo, v1)
    }

    /// `shelf serve --store … --follow TARGET --cache CACHE EXTRA…` with
    /// `env` added to the store's.
    pub fn follow(
        &self,
        shelf: &Path,
        target: &str,
        cache: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ServerProcess {
        let mut args = self.args();
        args.extend([
            "--follow".to_string(),
            target.to_string(),
            "--cache".to_string(),
            cache.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut all_env = self.env();
        all_env.extend_from_slice(env);
        ServerProcess::start(shelf, &args, &all_env)
    }
}

/// Puts `bytes` in the local store at `<dir>/store` under `digest`, as a
/// broken upload or a tampered bucket would (the CLI's push would refuse
/// them).
pub fn plant(dir: &Path, digest: &str, bytes: &[u8]) {
    let hex = digest.trim_start_matches("sha256:");
    let path = dir
        .join("store/bundles/sha256")
        .join(format!("{hex}.tar.zst"));
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, bytes).expect("write the planted bundle");
}
