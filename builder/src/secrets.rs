//! Credentials inside files: a content scan that keeps them out of bundles.
//!
//! The file-name deny-list (`select::SECRET_GLOBS`) catches `.env` and
//! `id_rsa`; it cannot see an access key pasted into `config.py`. This scan
//! reads every selected file's text for the credential shapes secret
//! scanners (gitleaks, GitHub secret scanning) look for: private-key
//! blocks, and tokens whose issuer gives them a fixed, recognisable prefix.
//! Generic "password = ..." guesses are left out on purpose: they are
//! mostly false positives, and every false positive is a line of real code
//! missing from the index.
//!
//! A line that matches is *withheld*: it becomes an empty line, so every
//! other line keeps its number and the chunks around it stay intact (a
//! whole chunk would take up to 256 tokens of unrelated code with it). The
//! build report lists each withheld run by path, line and rule, never its
//! text. Paths in `build.allow_secrets_in` are not scanned (test fixtures
//! with fake keys, documentation of key formats).

use globset::GlobSet;
use regex::bytes::{RegexSet, RegexSetBuilder};
use serde::Serialize;

use crate::BuildError;

/// Name and version of the rule set, recorded in the manifest
/// (`settings.secret_scan.rules`): a bundle built with other rules has
/// another settings identity, so it is never reused in place of this one.
pub const RULES: &str = "secrets-v1";

/// One rule: a stable id (it appears in reports) and its pattern. Patterns
/// match within one line, on bytes, ASCII-only (so the scan never depends on
/// Unicode tables and runs as one DFA over the text).
const PATTERNS: &[(&str, &str)] = &[
    (
        "aws-access-key-id",
        r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
    ),
    (
        "aws-secret-access-key",
        r#"(?i)aws_?secret_?(?:access_?)?key["']?\s*[:=]\s*["']?[A-Za-z0-9/+]{40}(?:[^A-Za-z0-9/+=]|$)"#,
    ),
    (
        "github-token",
        r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b",
    ),
    (
        "github-fine-grained-token",
        r"\bgithub_pat_[A-Za-z0-9_]{82}\b",
    ),
    (
        "gitlab-token",
        r"\bgl(?:pat|ptt|dt|rt|soat|cbt|ft)-[A-Za-z0-9_-]{20,}",
    ),
    ("slack-token", r"\bxox[abposre]-[A-Za-z0-9-]{10,}"),
    (
        "slack-webhook",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/+_-]{30,}",
    ),
    (
        "stripe-key",
        r"\b(?:sk|rk)_(?:live|test|prod)_[A-Za-z0-9]{10,99}\b",
    ),
    (
        "google-api-key",
        r"\bAIza[0-9A-Za-z_-]{35}(?:[^0-9A-Za-z_-]|$)",
    ),
    ("npm-token", r"\bnpm_[A-Za-z0-9]{36}\b"),
    ("pypi-token", r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,}"),
    (
        "openai-key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}",
    ),
    (
        "anthropic-key",
        r"\bsk-ant-(?:api|admin)0[0-9]-[A-Za-z0-9_-]{80,}",
    ),
    (
        "sendgrid-key",
        r"\bSG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?:[^A-Za-z0-9_-]|$)",
    ),
];

/// The rule id of a private-key block (handled line by line, not by
/// [`PATTERNS`], because a block spans lines).
const PRIVATE_KEY: &str = "private-key";

/// A private key's body must carry at least this much base64 for a
/// `-----BEGIN ... PRIVATE KEY-----` marker to count: code and docs that
/// merely mention the marker are not keys (gitleaks uses the same bound).
const MIN_KEY_BODY: usize = 64;

/// How far past a BEGIN marker an END marker is looked for (a 4096-bit RSA
/// key in PEM is about 50 lines).
const MAX_KEY_LINES: usize = 200;

/// One run of withheld lines (1-based, inclusive).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Repository-relative path.
    pub path: String,
    /// First withheld line.
    pub line: u32,
    /// Last withheld line (equal to `line` for a one-line token).
    pub end_line: u32,
    /// The rule that matched (e.g. `aws-access-key-id`, `private-key`).
    pub rule: &'static str,
}

impl Finding {
    /// How many lines this finding withheld.
    pub fn lines(&self) -> u64 {
        u64::from(self.end_line - self.line + 1)
    }
}

/// The scan's part of the build report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SecretsReport {
    /// Lines withheld from the index, over all files.
    pub lines_withheld: u64,
    /// Files with at least one withheld line.
    pub files: u64,
    /// Every withheld run, by path then line.
    pub findings: Vec<Finding>,
}

impl SecretsReport {
    /// Adds one file's findings.
    pub fn add(&mut self, findings: Vec<Finding>) {
        if findings.is_empty() {
            return;
        }
        self.files += 1;
        self.lines_withheld += findings.iter().map(Finding::lines).sum::<u64>();
        self.findings.extend(findings);
    }

    /// Sorts findings by path and line (files are read in parallel).
    pub fn finish(mut self) -> Self {
        self.findings
            .sort_by(|a, b| a.path.cmp(&b.path).then(a.line.cmp(&b.line)));
        self
    }
}

/// The compiled scan, built once per build and shared by every reader thread.
pub struct SecretScanner {
    set: RegexSet,
    allow: GlobSet,
}

impl SecretScanner {
    /// Compiles the rules, and `allow` (globs, as in `build.exclude`): paths
    /// whose content is not scanned.
    pub fn new(allow: &[String]) -> Result<Self, BuildError> {
        let set = RegexSetBuilder::new(PATTERNS.iter().map(|(_, p)| *p))
            .unicode(false)
            .build()
            .map_err(|e| BuildError::Config {
                origin: "secret scan rules".into(),
                detail: format!("{e} (a bug: please report it)"),
            })?;
        let allow =
            crate::select::globset(allow.iter().map(String::as_str), "build.allow_secrets_in")?;
        Ok(Self { set, allow })
    }

    /// Withholds every line of `text` that holds a credential: returns the
    /// text with those lines emptied (line breaks kept) and the findings, or
    /// `None` when there is nothing to withhold (the common case: no copy).
    pub fn scan(&self, path: &str, text: &str) -> Option<(String, Vec<Finding>)> {
        if self.allow.is_match(path) {
            return None;
        }
        let bytes = text.as_bytes();
        let maybe_key = text.contains("PRIVATE KEY");
        if !maybe_key && !self.set.is_match(bytes) {
            return None;
        }
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        let mut withheld: Vec<Option<&'static str>> = vec![None; lines.len()];
        if maybe_key {
            mark_private_keys(&lines, &mut withheld);
        }
        for (i, line) in lines.iter().enumerate() {
            if withheld[i].is_none()
                && let Some(rule) = self.set.matches(line.as_bytes()).iter().next()
            {
                withheld[i] = Some(PATTERNS[rule].0);
            }
        }
        let findings = runs(path, &withheld);
        if findings.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        for (line, w) in lines.iter().zip(&withheld) {
            if w.is_some() {
                out.push_str(line_ending(line));
            } else {
                out.push_str(line);
            }
        }
        Some((out, findings))
    }
}

/// `"\r\n"`, `"\n"` or `""`: what ends `line`.
fn line_ending(line: &str) -> &str {
    if line.ends_with("\r\n") {
        "\r\n"
    } else if line.ends_with('\n') {
        "\n"
    } else {
        ""
    }
}

/// Where a `-----BEGIN ... PRIVATE KEY-----` marker ends in `line`.
fn begin_marker_end(line: &str) -> Option<usize> {
    let start = line.find("-----BEGIN ")?;
    let rest = &line[start + 11..];
    let close = rest.find("-----")?;
    let label = &rest[..close];
    let is_key = label.len() <= 100
        && (label.ends_with("PRIVATE KEY") || label.ends_with("PRIVATE KEY BLOCK"))
        && label
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b" _-".contains(&b));
    is_key.then_some(start + 11 + close + 5)
}

fn has_end_marker(s: &str) -> bool {
    s.find("-----END ")
        .is_some_and(|i| s[i..].contains("PRIVATE KEY"))
}

/// Base64 characters in `s`, counting `\n` escapes as nothing (keys pasted
/// into JSON or string literals are one line with escaped newlines).
fn body_chars(s: &str) -> usize {
    s.replace("\\n", " ")
        .replace("\\r", " ")
        .bytes()
        .filter(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
        .count()
}

/// Marks private-key blocks: a BEGIN marker, then a body of at least
/// [`MIN_KEY_BODY`] base64 characters, up to the END marker (or, for a
/// truncated key, the last line of the body).
fn mark_private_keys(lines: &[&str], withheld: &mut [Option<&'static str>]) {
    let mut i = 0;
    while i < lines.len() {
        let Some(after) = begin_marker_end(lines[i]) else {
            i += 1;
            continue;
        };
        let tail = &lines[i][after..];
        // One line holds the whole key (escaped newlines).
        if has_end_marker(tail) || body_chars(tail) >= MIN_KEY_BODY {
            let end = tail.find("-----END ").unwrap_or(tail.len());
            if body_chars(&tail[..end]) >= MIN_KEY_BODY {
                withheld[i] = Some(PRIVATE_KEY);
                i += 1;
                continue;
            }
        }
        // A block over lines: body lines until END, headers and blanks allowed.
        let mut body = 0;
        let mut last_body = i;
        let mut end = None;
        for (j, line) in lines.iter().enumerate().skip(i + 1).take(MAX_KEY_LINES) {
            if has_end_marker(line) {
                end = Some(j);
                break;
            }
            let t = line.trim();
            // PEM headers of encrypted keys: `Proc-Type: 4,ENCRYPTED`.
            let header = t.split_once(": ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            // Body lines, also as string literals (`"MIIE...\n" +`).
            let unquoted = t.trim_matches(|c| matches!(c, '"' | '\'' | ',' | '+' | ' '));
            let base64 = !unquoted.is_empty()
                && unquoted
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=\\".contains(&b));
            if base64 {
                body += body_chars(unquoted);
                last_body = j;
            } else if !(t.is_empty() || header) {
                break;
            }
        }
        if body >= MIN_KEY_BODY {
            let stop = end.unwrap_or(last_body);
            for w in &mut withheld[i..=stop] {
                *w = Some(PRIVATE_KEY);
            }
            i = stop + 1;
        } else {
            i += 1;
        }
    }
}

/// Groups withheld lines into runs of one rule.
fn runs(path: &str, withheld: &[Option<&'static str>]) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for (i, w) in withheld.iter().enumerate() {
        let Some(rule) = *w else { continue };
        let line = i as u32 + 1;
        match out.last_mut() {
            Some(f) if f.rule == rule && f.end_line + 1 == line => f.end_line = line,
            _ => out.push(Finding {
                path: path.to_string(),
                line,
                end_line: line,
                rule,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fake credentials, assembled at run time so this file itself holds no
    /// string a secret scanner (ours included) would flag.
    fn fake(prefix: &str, body: &str) -> String {
        format!("{prefix}{body}")
    }

    fn scanner() -> SecretScanner {
        SecretScanner::new(&[]).unwrap()
    }

    fn rules_of(text: &str) -> Vec<&'static str> {
        scanner()
            .scan("x", text)
            .map(|(_, f)| f.iter().map(|f| f.rule).collect())
            .unwrap_or_default()
    }

    #[test]
    fn each_rule_catches_its_token_shape() {
        let b36 = "R8sT2vX9qL4mN7pK1wZ5yB3cD6fG0hJ2aQ4e";
        let cases = [
            (fake("AKIA", "Z7Q3LJ5RX2WNHE4T"), "aws-access-key-id"),
            (
                format!(
                    "aws_secret_access_key = \"{}\"",
                    fake("wJalrXUtnFEMI/K7MDENG/", "bPxRfiCYzQ8v3KpLm2")
                ),
                "aws-secret-access-key",
            ),
            (fake("ghp_", b36), "github-token"),
            (
                fake("github_pat_", &format!("11ABCDEFG0{}", "x7".repeat(36))),
                "github-fine-grained-token",
            ),
            (fake("glpat-", "Xk3vQ9sLm2Np7Rt5Wz1Y"), "gitlab-token"),
            (
                fake(
                    "xoxb-",
                    "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
                ),
                "slack-token",
            ),
            (
                fake(
                    "https://hooks.slack.com/services/",
                    "T0123ABCD/B0456EFGH/aBcDeFgHiJkLmNoPqRsTuVwX",
                ),
                "slack-webhook",
            ),
            (fake("sk_live_", "4eC39HqLyjWDarjtT1zdp7dc"), "stripe-key"),
            (
                fake("AIza", "SyD4x9Q2mLw8Zr7Tn3Kp6Vb1Yc5Hj0Gf-_e"),
                "google-api-key",
            ),
            (fake("npm_", b36), "npm-token"),
            (
                fake("pypi-AgEIcHlwaS5vcmc", &"Cq1Zx8".repeat(10)),
                "pypi-token",
            ),
            (
                fake(
                    "sk-proj-",
                    &format!("{}T3BlbkFJ{}", "Ab3dE".repeat(5), "Zy9xW".repeat(5)),
                ),
                "openai-key",
            ),
            (
                fake("sk-ant-api03-", &"Qw3Er5Ty7U".repeat(9)),
                "anthropic-key",
            ),
            (
                fake(
                    "SG.",
                    &format!("{}.{}", "aB3dE5gH7jK9mN1pQ3sT5v", "xY".repeat(21) + "z"),
                ),
                "sendgrid-key",
            ),
        ];
        for (line, rule) in &cases {
            let text = format!("before\nconfig = \"{line}\"\nafter\n");
            assert_eq!(rules_of(&text), [*rule], "{line}");
        }
    }

    #[test]
    fn near_misses_are_left_alone() {
        for text in [
            "let key = AKIA_PLACEHOLDER;\n",
            "AKIAZ7Q3LJ5RX2WNHE4\n",                 // one character short
            "ghp_short\n",                           // not 36 characters
            "the prefix sk_live_ marks live keys\n", // no body
            "-----BEGIN RSA PRIVATE KEY-----\n",     // a marker, no key
            "if line.contains(\"-----BEGIN OPENSSH PRIVATE KEY-----\") {\n    return;\n}\n",
        ] {
            assert_eq!(rules_of(text), Vec::<&str>::new(), "{text:?}");
        }
    }

    fn pem(label: &str, lines: usize) -> String {
        let mut s = format!("-----BEGIN {label}-----\n");
        for i in 0..lines {
            s.push_str(&format!(
                "MIIEow{i:02}IBAAKCAQEA7v3Qd9sKx2LmPq8RtYz4NcWf0BvJh1GdUaE5oXiT6nS\n"
            ));
        }
        s.push_str(&format!("-----END {label}-----\n"));
        s
    }

    #[test]
    fn a_private_key_block_is_withheld_whole_and_line_numbers_stay() {
        let text = format!(
            "# deploy key\n{}print('done')\n",
            pem("OPENSSH PRIVATE KEY", 5)
        );
        let (out, findings) = scanner().scan("deploy/key.txt", &text).unwrap();
        assert_eq!(
            findings,
            [Finding {
                path: "deploy/key.txt".into(),
                line: 2,
                end_line: 8,
                rule: "private-key"
            }]
        );
        assert_eq!(out, "# deploy key\n\n\n\n\n\n\n\nprint('done')\n");
        assert_eq!(out.lines().count(), text.lines().count());
    }

    #[test]
    fn a_key_in_one_escaped_line_and_a_truncated_key_are_caught() {
        let one_line = format!(
            "{{\"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n\"}}\n",
            "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC".repeat(3)
        );
        assert_eq!(rules_of(&one_line), ["private-key"]);
        let pem = pem("RSA PRIVATE KEY", 3);
        let truncated: String = pem.lines().take(3).map(|l| format!("{l}\n")).collect();
        let text = format!("{truncated}def next(): pass\n");
        let (out, f) = scanner().scan("k.py", &text).unwrap();
        assert_eq!((f[0].line, f[0].end_line), (1, 3));
        assert!(out.ends_with("\n\n\ndef next(): pass\n"), "{out:?}");
    }

    #[test]
    fn crlf_files_keep_their_line_endings() {
        let text = format!("a\r\nkey = {}\r\nb\r\n", fake("AKIA", "Z7Q3LJ5RX2WNHE4T"));
        let (out, _) = scanner().scan("w.ini", &text).unwrap();
        assert_eq!(out, "a\r\n\r\nb\r\n");
    }

    #[test]
    fn allowed_paths_are_not_scanned() {
        let s = SecretScanner::new(&["tests/fixtures/**".into(), "KEYS.md".into()]).unwrap();
        let text = fake("AKIA", "Z7Q3LJ5RX2WNHE4T");
        assert!(s.scan("tests/fixtures/aws.txt", &text).is_none());
        assert!(s.scan("docs/KEYS.md", &text).is_none());
        assert!(s.scan("src/aws.txt", &text).is_some());
        assert!(SecretScanner::new(&["[".into()]).is_err());
    }

    #[test]
    fn the_report_counts_lines_and_files() {
        let mut r = SecretsReport::default();
        let s = scanner();
        r.add(
            s.scan(
                "b.py",
                &fake("ghp_", "R8sT2vX9qL4mN7pK1wZ5yB3cD6fG0hJ2aQ4e"),
            )
            .unwrap()
            .1,
        );
        r.add(s.scan("a.txt", &pem("EC PRIVATE KEY", 2)).unwrap().1);
        r.add(Vec::new());
        let r = r.finish();
        assert_eq!((r.files, r.lines_withheld), (2, 5));
        assert_eq!(r.findings[0].path, "a.txt");
    }
}
