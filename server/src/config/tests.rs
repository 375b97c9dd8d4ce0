use super::*;
use clap::Parser;

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    settings: ServeSettings,
}

fn flags(args: &[&str]) -> ServeSettings {
    Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
        .unwrap()
        .settings
}

fn no_env(_: &str) -> Option<String> {
    None
}

const FILE: &str = r#"
    [build]
    max_chunk_tokens = 200

    [serve]
    listen = "127.0.0.2:8080"
    store = "s3://bucket/idx"
    follow = "v*"
    poll_interval = "750ms"
    endpoint_url = "http://127.0.0.1:9000"
    path_style = true
    [serve.limits]
    max_k = 20
    rate_limit_per_second = 5
"#;

#[test]
fn the_file_then_the_flags_merge_into_one_config() {
    let file = ServeSettings::from_toml(FILE, "shelf.toml").unwrap();
    let c = file.clone().overlay(flags(&[])).resolve(&no_env).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.2:8080");
    assert_eq!(
        c.source,
        Source::Stores {
            root: None,
            repos: vec![RepoSpec {
                name: "idx".into(),
                store: "s3://bucket/idx".into(),
                follow: "v*".into()
            }]
        }
    );
    assert_eq!(c.poll_interval, Duration::from_millis(750));
    assert_eq!((c.limits.max_k, c.limits.rate_limit_per_second), (20, 5));
    assert_eq!(c.limits.max_body_bytes, Limits::default().max_body_bytes);
    assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(c.s3.path_style);
    // Flags win, setting by setting; the same names reach the limits.
    let c = file
        .overlay(flags(&[
            "--poll-interval",
            "2s",
            "--max-k",
            "30",
            "--rate-limit",
            "7",
            "--region",
            "eu-west-1",
        ]))
        .resolve(&no_env)
        .unwrap();
    assert_eq!(c.poll_interval, Duration::from_secs(2));
    assert_eq!((c.limits.max_k, c.limits.rate_limit_per_second), (30, 7));
    assert_eq!(c.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    // A source on the command line replaces the file's.
    let c = ServeSettings::from_toml(FILE, "f")
        .unwrap()
        .overlay(flags(&["--bundle", "b.tar.zst"]))
        .resolve(&no_env)
        .unwrap();
    assert_eq!(
        c.source,
        Source::Bundle {
            path: "b.tar.zst".into(),
            name: None
        }
    );
}

#[test]
fn repositories_come_from_a_root_a_list_or_one_store_and_names_are_checked() {
    let c = flags(&["--store-root", "s3://org/shelf", "--follow", "production"])
        .resolve(&no_env)
        .unwrap();
    assert_eq!(
        c.source,
        Source::Stores {
            root: Some(RootSpec {
                url: "s3://org/shelf".into(),
                follow: "production".into()
            }),
            repos: vec![]
        }
    );
    let text = r#"
        [[serve.repository]]
        name = "api"
        store = "s3://team-a/shelf/api"
        follow = "production"
        [[serve.repository]]
        name = "web"
        store = "/srv/shelf/web"
        follow = "v*"
    "#;
    let c = ServeSettings::from_toml(text, "f")
        .unwrap()
        .resolve(&no_env)
        .unwrap();
    let Source::Stores { root: None, repos } = &c.source else {
        panic!("{:?}", c.source);
    };
    assert_eq!(repos.len(), 2);
    assert_eq!(
        (repos[1].name.as_str(), repos[1].follow.as_str()),
        ("web", "v*")
    );
    let named = flags(&["--store", "./st", "--follow", "p", "--repo-name", "billing"])
        .resolve(&no_env)
        .unwrap();
    let Source::Stores { repos, .. } = &named.source else {
        panic!();
    };
    assert_eq!(repos[0].name, "billing");
    for bad in [
        "[[serve.repository]]\nname = \"a/b\"\nstore = \"x\"\nfollow = \"p\"\n",
        "[[serve.repository]]\nname = \"a\"\nstore = \"x\"\nfollow = \"p\"\n[[serve.repository]]\nname = \"a\"\nstore = \"y\"\nfollow = \"p\"\n",
    ] {
        let err = ServeSettings::from_toml(bad, "f")
            .unwrap()
            .resolve(&no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("serve.repository"), "{err}");
    }
    let err = flags(&["--store", "./st", "--follow", "p", "--repo-name", "../x"])
        .resolve(&no_env)
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid repository name"), "{err}");
}

#[test]
fn token_files_scope_tokens_to_repositories() {
    let tokens = parse_search_tokens(
        "# team tokens\nopen-token-0123456789\nscoped-token-0123456789  api, web-*\n",
    )
    .unwrap();
    assert_eq!(tokens[0].repos, None);
    assert_eq!(
        tokens[1].repos,
        Some(vec!["api".to_string(), "web-*".to_string()])
    );
    let err = parse_search_tokens("tok-0123456789abcdef  [bad\n").unwrap_err();
    assert!(err.contains("line 1") && err.contains("[bad"), "{err}");
}

#[test]
fn unknown_keys_and_bad_values_are_named() {
    let err = ServeSettings::from_toml("[serve]\nlisten_on = \"x\"\n", "f.toml").unwrap_err();
    assert!(err.to_string().contains("listen_on"), "{err}");
    let err =
        ServeSettings::from_toml("[serve]\npoll_interval = \"soon\"\n", "f.toml").unwrap_err();
    assert!(err.to_string().contains("soon"), "{err}");
    let err = ServeSettings::from_toml("[serve.limits]\nmax_kk = 3\n", "f.toml").unwrap_err();
    assert!(err.to_string().contains("max_kk"), "{err}");
    let f = ServeSettings::from_toml("[serve]\nstore = \"s3://b\"\n", "f.toml").unwrap();
    let err = f.resolve(&no_env).unwrap_err().to_string();
    assert!(err.contains("and follow go together"), "{err}");
    // An address is checked where it is given: a flag at parse time, a
    // file key as the file is read.
    let err = Cli::try_parse_from(["serve", "--bundle", "b", "--listen", "nowhere"])
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("--listen") && err.contains("nowhere"), "{err}");
    let err = ServeSettings::from_toml("[serve]\nlisten = \"nowhere\"\n", "f.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("f.toml: serve.listen") && err.contains("nowhere"),
        "{err}"
    );
    assert!(Cli::try_parse_from(["serve", "--poll-interval", "soon"]).is_err());
}

#[test]
fn a_non_loopback_listen_without_tokens_is_refused_unless_allowed() {
    let err = flags(&["--bundle", "b", "--listen", "0.0.0.0:7700"])
        .resolve(&no_env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("0.0.0.0:7700")
            && err.contains(SEARCH_TOKENS_ENV)
            && err.contains("--allow-anonymous"),
        "{err}"
    );
    let open = flags(&[
        "--bundle",
        "b",
        "--listen",
        "0.0.0.0:7700",
        "--allow-anonymous",
    ])
    .resolve(&no_env)
    .unwrap();
    assert!(open.allow_anonymous && open.auth.search_tokens.is_empty());
    let env = |k: &str| (k == SEARCH_TOKENS_ENV).then(|| "0123456789abcdef0123".to_string());
    let with_token = flags(&["--bundle", "b", "--listen", "[::]:7700"])
        .resolve(&env)
        .unwrap();
    assert_eq!(with_token.auth.search_tokens.len(), 1);
    // Loopback needs nothing.
    assert!(flags(&["--bundle", "b"]).resolve(&no_env).is_ok());
}

#[test]
fn an_empty_token_list_is_an_error_everywhere() {
    let empty = |k: &str| (k == SEARCH_TOKENS_ENV).then(|| " , ".to_string());
    let err = flags(&["--bundle", "b"])
        .resolve(&empty)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(SEARCH_TOKENS_ENV) && err.contains("no token"),
        "{err}"
    );
    let t = tempfile::tempdir().unwrap();
    let file = t.path().join("tokens");
    std::fs::write(&file, "# nobody\n\n").unwrap();
    let err = flags(&[
        "--bundle",
        "b",
        "--search-tokens-file",
        file.to_str().unwrap(),
    ])
    .resolve(&no_env)
    .unwrap_err()
    .to_string();
    assert!(err.contains("no tokens"), "{err}");
}

#[test]
fn short_or_shared_tokens_are_refused() {
    let mut c = ServeConfig::new(Source::Bundle {
        path: "b".into(),
        name: None,
    });
    c.auth.search_tokens = vec![SearchToken {
        token: "short".into(),
        repos: None,
    }];
    assert!(
        c.validate()
            .unwrap_err()
            .to_string()
            .contains("at least 16")
    );
    let long = "0123456789abcdef0123".to_string();
    c.auth.search_tokens = vec![SearchToken {
        token: long.clone(),
        repos: None,
    }];
    c.auth.admin_token = Some(long);
    assert!(c.validate().unwrap_err().to_string().contains("its own"));
}

#[test]
fn limits_out_of_range_are_refused() {
    let mut c = ServeConfig::new(Source::Bundle {
        path: "b".into(),
        name: None,
    });
    c.limits.max_concurrent = MAX_CONCURRENT + 1;
    assert!(c.validate().is_err());
    let mut c = ServeConfig::new(Source::Bundle {
        path: "b".into(),
        name: None,
    });
    c.default_k = 500;
    assert!(c.validate().is_err());
    let mut c = ServeConfig::new(Source::Bundle {
        path: "b".into(),
        name: None,
    });
    c.limits.max_connections_per_client = 0;
    assert!(c.validate().is_err());
}

#[test]
fn tokens_parse_from_lines_and_commas() {
    assert_eq!(
        parse_tokens("# team tokens\na, b\n\n c \n"),
        vec!["a", "b", "c"]
    );
}

// --- Every declared setting, enumerated from the declarations ---

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use clap::CommandFactory;
use proptest::prelude::*;

use super::declare::{DOCS_BEGIN, DOCS_END, check_docs, docs_tables};

/// A value of one setting for the tests that go over every setting: as
/// the file writes it and as a flag or a variable writes it; and its
/// range's bounds and their neighbours outside (as text and as TOML).
pub(crate) struct Sample {
    toml: toml::Value,
    text: String,
    bounds: Option<(String, String)>,
    outside: Vec<(String, toml::Value)>,
}

impl Sample {
    pub(crate) fn of<T: Value>(info: &Info, seed: u64) -> Self {
        let range = (info.range)().map(|(least, most)| {
            let parse = |s: &str| {
                T::parse(s)
                    .unwrap_or_else(|e| panic!("{}'s bound {s} must read back: {e}", info.key))
            };
            (parse(&least), parse(&most))
        });
        let value = T::sample(seed, range.as_ref().map(|(a, b)| (a, b)));
        let outside = match &range {
            Some((least, most)) => [least.step(false), most.step(true)]
                .into_iter()
                .flatten()
                .map(|v| (v.show(), v.to_toml()))
                .collect(),
            None => Vec::new(),
        };
        Sample {
            toml: value.to_toml(),
            text: value.show(),
            bounds: range.as_ref().map(|(a, b)| (a.show(), b.show())),
            outside,
        }
    }
}

fn sample(info: &Info, seed: u64) -> Sample {
    ServeSettings::sample(info.key, seed).expect("every declared setting has a field")
}

/// A value as a TOML file writes it inline.
fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => serde_json::to_string(s).unwrap(),
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Array(a) => {
            format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", "))
        }
        toml::Value::Table(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{k} = {}", inline(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => panic!("no setting is written as {other:?}"),
    }
}

/// A config file that sets these settings.
fn file_text(settings: &[(&Info, toml::Value)]) -> String {
    let lines = |group: Group| {
        settings
            .iter()
            .filter(|(i, _)| i.group == group)
            .map(|(i, v)| format!("{} = {}\n", i.key, inline(v)))
            .collect::<String>()
    };
    format!(
        "[serve]\n{}[serve.limits]\n{}",
        lines(Group::Serve),
        lines(Group::Limits)
    )
}

/// The one rule between two numbers: default_k is at most max_k. While
/// one of them takes any value of its range, the other is set to its
/// most accommodating bound (in the file and as flags).
fn partner(key: &str) -> Option<(&'static Info, u64)> {
    match key {
        "default_k" => Some((&DECLARED.max_k, 1000)),
        "max_k" => Some((&DECLARED.default_k, 1)),
        _ => None,
    }
}

fn partner_flags(key: &str) -> Vec<String> {
    partner(key)
        .map(|(p, v)| format!("--{}={v}", p.flag))
        .into_iter()
        .collect()
}

fn parse_flags(args: &[String]) -> Result<ServeSettings, clap::Error> {
    Cli::try_parse_from(std::iter::once("serve".to_string()).chain(args.iter().cloned()))
        .map(|c| c.settings)
}

/// A resolved setting, shown.
fn resolved(c: &ServeConfig, key: &str) -> Option<String> {
    c.shown(key).or_else(|| c.limits.shown(key))
}

/// Settings the server reads as they are (they have a default).
fn is_direct(info: &Info) -> bool {
    (info.default)().is_some()
}

const FILE_NAME: &str = "shelf.toml";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// For every declared setting: a value in the file and not on the
    /// command line survives the merge, whatever else the environment and
    /// the flags set, and is what the server runs with; the same setting
    /// in the environment or on the command line wins over the file.
    #[test]
    fn every_setting_in_the_file_survives_the_merge_unless_given_later(
        seed in any::<u64>(),
        flagged in any::<u64>(),
        in_env in any::<u64>(),
    ) {
        let all = declared();
        for (n, info) in all.iter().enumerate() {
            let mine = sample(info, seed);
            let mut file = vec![(*info, mine.toml.clone())];
            if let Some((p, v)) = partner(info.key) {
                file.push((p, toml::Value::Integer(v as i64)));
            }
            let text = file_text(&file);
            let mut args = Vec::new();
            let mut env = HashMap::new();
            // Others: never this one, nor a part of what to serve (which
            // replaces the file's whole source: tested apart), nor the two
            // bound by a rule (each is this one in its turn).
            for (m, other) in all.iter().enumerate() {
                if m == n || other.source || partner(other.key).is_some() {
                    continue;
                }
                let theirs = sample(other, seed.rotate_left(m as u32) ^ m as u64);
                if !other.flag.is_empty() && (flagged >> (m % 64)) & 1 == 1 {
                    args.push(format!("--{}={}", other.flag, theirs.text));
                }
                if !other.env.is_empty() && (in_env >> (m % 64)) & 1 == 1 {
                    env.insert(other.env, theirs.text.clone());
                }
            }
            let env_fn = |name: &str| env.get(name).cloned();
            let merged = ServeSettings::merge_layers(
                ServeSettings::from_toml(&text, FILE_NAME).unwrap(),
                &env_fn,
                parse_flags(&args).unwrap(),
            )
            .unwrap();
            prop_assert_eq!(
                merged.shown(info.key),
                Some(mine.text.clone()),
                "{} from\n{}\nwith {:?} and {:?}", info.key, text, args, env
            );
            prop_assert_eq!(merged.origin_of(info.key), Some(Origin::File(FILE_NAME.into())));

            // What the server runs with, for the settings it reads as they
            // are (the others are combined: tested one by one above).
            if is_direct(info) {
                let mut direct: Vec<String> = args
                    .iter()
                    .filter(|a| {
                        let flag = a.trim_start_matches("--").split('=').next().unwrap_or("");
                        all.iter().any(|o| o.flag == flag && is_direct(o))
                    })
                    .cloned()
                    .collect();
                direct.push("--bundle=b.tar.zst".into());
                let c = ServeSettings::merge_layers(
                    ServeSettings::from_toml(&text, FILE_NAME).unwrap(),
                    &no_env,
                    parse_flags(&direct).unwrap(),
                )
                .and_then(|s| s.resolve(&no_env))
                .unwrap_or_else(|e| panic!("{}: {e}", info.key));
                prop_assert_eq!(resolved(&c, info.key), Some(mine.text.clone()));
            }

            // Given later, the later layer wins.
            let later = sample(info, !seed);
            if !info.env.is_empty() {
                let env_fn = |name: &str| (name == info.env).then(|| later.text.clone());
                let merged = ServeSettings::merge_layers(
                    ServeSettings::from_toml(&text, FILE_NAME).unwrap(),
                    &env_fn,
                    ServeSettings::default(),
                )
                .unwrap();
                prop_assert_eq!(merged.shown(info.key), Some(later.text.clone()));
                prop_assert_eq!(merged.origin_of(info.key), Some(Origin::Env(info.env)));
            }
            if !info.flag.is_empty() {
                let merged = ServeSettings::merge_layers(
                    ServeSettings::from_toml(&text, FILE_NAME).unwrap(),
                    &no_env,
                    parse_flags(&[format!("--{}={}", info.flag, later.text)]).unwrap(),
                )
                .unwrap();
                prop_assert_eq!(merged.shown(info.key), Some(later.text.clone()));
                prop_assert_eq!(merged.origin_of(info.key), Some(Origin::Flag));
            }
        }
    }
}

#[test]
fn a_layer_that_says_what_to_serve_replaces_the_whole_source_below_it() {
    let file = ServeSettings::from_toml(
        "[serve]\nstore = \"s3://b/idx\"\nfollow = \"production\"\nrepo_name = \"api\"\n",
        "f",
    )
    .unwrap();
    let merged = file.clone().overlay(flags(&["--bundle", "b.tar.zst"]));
    assert_eq!((merged.store, merged.follow), (None, None));
    // repo_name is not part of the source: it names what is served.
    assert_eq!(merged.repo_name.map(|g| g.value), Some("api".to_string()));
    let merged = file.overlay(flags(&["--follow", "v*"]));
    assert_eq!(merged.store, None);
    assert_eq!(merged.follow.map(|g| g.value), Some("v*".to_string()));
}

#[test]
fn declarations_are_complete_and_their_names_agree() {
    let all = declared();
    for (n, info) in all.iter().enumerate() {
        assert!(
            !info.doc_line().is_empty(),
            "{} has no doc comment",
            info.key
        );
        assert!(
            all[..n].iter().all(|o| o.key != info.key),
            "{} is declared twice",
            info.key
        );
        if !info.flag.is_empty() {
            assert_eq!(info.flag, info.key.replace('_', "-"), "the flag is the key");
        }
        if !info.env.is_empty() {
            assert!(info.env.starts_with("SHELF_"), "{}", info.env);
        }
        // Every number and every duration has a range, and only they do.
        let numeric = ["N", "DURATION"].contains(&info.type_value_name);
        assert_eq!(numeric, (info.range)().is_some(), "{}", info.key);
        if numeric {
            assert!(is_direct(info), "{}: a range needs a default", info.key);
        }
    }
}

#[test]
fn every_bound_is_accepted_and_its_neighbour_outside_refused_naming_the_setting() {
    let mut refused = 0;
    for info in declared() {
        let Some(range) = info.range_text() else {
            continue;
        };
        let s = sample(info, 1);
        let (least, most) = s.bounds.clone().unwrap();
        let with = |value: &str| {
            let mut args = vec![format!("--{}={value}", info.flag), "--bundle=b".into()];
            args.extend(partner_flags(info.key));
            parse_flags(&args).unwrap().resolve(&no_env)
        };
        for inside in [&least, &most] {
            let c = with(inside).unwrap_or_else(|e| panic!("{} {inside}: {e}", info.key));
            assert_eq!(resolved(&c, info.key).as_deref(), Some(inside.as_str()));
        }
        for (outside, toml) in &s.outside {
            let names = |err: &str, origin: &str| {
                err.contains(origin)
                    && err.contains(&format!("{} {outside} is out of range", info.key))
                    && err.contains(&range)
            };
            let err = with(outside).unwrap_err().to_string();
            assert!(names(&err, &format!("--{}", info.flag)), "{err}");
            // From the file, the error names the file and the key.
            let mut file = vec![(info, toml.clone())];
            if let Some((p, v)) = partner(info.key) {
                file.push((p, toml::Value::Integer(v as i64)));
            }
            let err = ServeSettings::from_toml(&file_text(&file), FILE_NAME)
                .unwrap()
                .overlay(flags(&["--bundle", "b"]))
                .resolve(&no_env)
                .unwrap_err()
                .to_string();
            assert!(
                names(&err, &format!("{FILE_NAME}: serve.{}", info.file_key())),
                "{err}"
            );
            refused += 1;
        }
    }
    // Every range has a neighbour above; those that start above zero one
    // below.
    assert!(refused >= 30, "{refused}");
}

#[test]
fn the_values_the_issue_found_accepted_are_refused() {
    for (args, named) in [
        (
            &["--poll-interval", "1y"][..],
            "poll_interval 1year is out of range: use 50ms to 1h",
        ),
        (&["--retry-max", "100years"], "retry_max"),
        (
            &["--request-timeout", "0s"],
            "request_timeout 0s is out of range: use 100ms to 10m",
        ),
    ] {
        let mut all = vec!["--bundle", "b"];
        all.extend_from_slice(args);
        let err = flags(&all).resolve(&no_env).unwrap_err().to_string();
        assert!(err.contains(named), "{err}");
    }
    // A config built in code is checked as well, named by its key.
    let mut c = ServeConfig::new(Source::Bundle {
        path: "b".into(),
        name: None,
    });
    c.poll_interval = Duration::from_secs(2 * 3600);
    let err = c.validate().unwrap_err().to_string();
    assert!(
        err.contains("serve.poll_interval") && err.contains("2h"),
        "{err}"
    );
}

#[test]
fn the_longest_waits_the_ranges_allow_cannot_overflow_the_follower() {
    let most = |info: &Info| Duration::parse(&(info.range)().unwrap().1).unwrap();
    let (poll, retry) = (most(&DECLARED.poll_interval), most(&DECLARED.retry_max));
    for failures in [1, 2, 17, u32::MAX] {
        // What reload.rs adds to the clock and formats.
        let wait = crate::reload::backoff(poll, failures, retry);
        assert!(wait <= Duration::from_secs(3600), "{wait:?}");
        let at = SystemTime::now().checked_add(wait).unwrap();
        assert!(
            humantime::format_rfc3339_seconds(at)
                .to_string()
                .starts_with("20")
        );
    }
}

#[test]
fn the_environment_layer_sits_between_the_file_and_the_flags() {
    let with_env = declared()
        .into_iter()
        .filter(|i| !i.env.is_empty())
        .collect::<Vec<_>>();
    assert!(with_env.len() >= 3, "{with_env:?}");
    for info in with_env {
        let (a, b, c) = (sample(info, 1), sample(info, 2), sample(info, 3));
        let file = || ServeSettings::from_toml(&file_text(&[(info, a.toml.clone())]), "f").unwrap();
        let env = |name: &str| (name == info.env).then(|| b.text.clone());
        // The environment over the file...
        let merged = ServeSettings::merge_layers(file(), &env, ServeSettings::default()).unwrap();
        assert_eq!(merged.shown(info.key), Some(b.text.clone()), "{}", info.key);
        assert_eq!(merged.origin_of(info.key), Some(Origin::Env(info.env)));
        // ...the flags over the environment...
        let flag = parse_flags(&[format!("--{}={}", info.flag, c.text)]).unwrap();
        let merged = ServeSettings::merge_layers(file(), &env, flag).unwrap();
        assert_eq!(merged.shown(info.key), Some(c.text.clone()), "{}", info.key);
        // ...and a variable set to nothing is unset.
        let empty = |name: &str| (name == info.env).then(String::new);
        let merged = ServeSettings::merge_layers(file(), &empty, ServeSettings::default()).unwrap();
        assert_eq!(merged.shown(info.key), Some(a.text.clone()), "{}", info.key);
    }
    // A value the variable cannot hold names the variable and the setting.
    let bad = |name: &str| (name == "SHELF_S3_PATH_STYLE").then(|| "maybe".to_string());
    let err = ServeSettings::from_env(&bad).unwrap_err().to_string();
    assert!(
        err.contains("SHELF_S3_PATH_STYLE") && err.contains("maybe") && err.contains("path_style"),
        "{err}"
    );
    // It reaches what the server runs with.
    let env = |name: &str| match name {
        "SHELF_S3_ENDPOINT" => Some("http://127.0.0.1:9000".to_string()),
        "SHELF_S3_PATH_STYLE" => Some("true".to_string()),
        "SHELF_MODEL" => Some("/models/mini".to_string()),
        _ => None,
    };
    let c = ServeSettings::merge_layers(ServeSettings::default(), &env, flags(&["--bundle", "b"]))
        .unwrap()
        .resolve(&env)
        .unwrap();
    assert_eq!(c.s3.endpoint_url.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(c.s3.path_style);
    assert_eq!(c.model, Some(PathBuf::from("/models/mini")));
}

#[test]
fn shelf_store_names_the_store_only_when_nothing_else_says_what_to_serve() {
    let env = |name: &str| (name == STORE_ENV).then(|| "s3://bucket/idx".to_string());
    let c = flags(&["--follow", "production"]).resolve(&env).unwrap();
    let Source::Stores { repos, .. } = &c.source else {
        panic!("{:?}", c.source);
    };
    assert_eq!(repos[0].store, "s3://bucket/idx");
    let c = flags(&["--bundle", "b"]).resolve(&env).unwrap();
    assert!(matches!(c.source, Source::Bundle { .. }), "{:?}", c.source);
}

#[derive(clap::Parser)]
struct McpCli {
    #[command(flatten)]
    settings: StdioSettings,
}

#[test]
fn shelf_mcp_takes_only_the_settings_it_uses_and_drops_the_others_from_a_shared_file() {
    let serve = Cli::command().render_long_help().to_string();
    let mcp = McpCli::command().render_long_help().to_string();
    let has = |help: &str, flag: &str| {
        help.match_indices(&format!("--{flag}")).any(|(at, m)| {
            !help[at + m.len()..].starts_with(|c: char| c == '-' || c.is_ascii_alphanumeric())
        })
    };
    for info in declared().into_iter().filter(|i| !i.flag.is_empty()) {
        assert!(has(&serve, info.flag), "serve --help lacks --{}", info.flag);
        assert_eq!(
            has(&mcp, info.flag),
            info.stdio,
            "mcp --help and --{}",
            info.flag
        );
        if !info.stdio {
            let s = sample(info, 1);
            assert!(
                McpCli::try_parse_from(["mcp".to_string(), format!("--{}={}", info.flag, s.text)])
                    .is_err(),
                "shelf mcp accepts --{}",
                info.flag
            );
        }
    }
    // A file shared with `shelf serve`: its HTTP settings do not apply.
    let file = ServeSettings::from_toml(
        "[serve]\nlisten = \"0.0.0.0:7700\"\nsearch_tokens_file = \"/nonexistent\"\nbundle = \"b\"\npoll_interval = \"1s\"\n[serve.limits]\nheader_timeout = \"1h\"\nmax_k = 20\n",
        "f",
    )
    .unwrap();
    let tokens = |name: &str| (name == SEARCH_TOKENS_ENV).then(|| "short".to_string());
    let c = file.resolve_for(Surface::Stdio, &tokens).unwrap();
    assert_eq!(c.listen, ServeConfig::new(c.source.clone()).listen);
    assert_eq!(c.limits.header_timeout, Limits::default().header_timeout);
    assert!(c.auth.search_tokens.is_empty());
    assert_eq!(
        (c.poll_interval, c.limits.max_k),
        (Duration::from_secs(1), 20)
    );
    assert_eq!(c.cache_dir, Surface::Stdio.default_cache_dir());
    assert_ne!(c.cache_dir, Surface::Http.default_cache_dir());
}

#[test]
fn docs_serve_md_lists_exactly_the_declared_settings() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/serve.md");
    let doc = std::fs::read_to_string(&path).unwrap();
    let want = docs_tables(&declared());
    let (Some(begin), Some(end)) = (doc.find(DOCS_BEGIN), doc.find(DOCS_END)) else {
        panic!("docs/serve.md has no settings tables between\n{DOCS_BEGIN}\nand\n{DOCS_END}");
    };
    let end = end + DOCS_END.len();
    if std::env::var_os("SHELF_UPDATE_DOCS").is_some() {
        std::fs::write(&path, format!("{}{want}{}", &doc[..begin], &doc[end..])).unwrap();
        return;
    }
    let region = &doc[begin..end];
    let problems = check_docs(region, &declared());
    assert!(
        problems.is_empty(),
        "docs/serve.md and the declarations (server/src/config/settings.rs) differ; SHELF_UPDATE_DOCS=1 cargo test -p shelf-server docs_serve_md writes the tables:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        region, want,
        "docs/serve.md's settings tables are not the generated ones; SHELF_UPDATE_DOCS=1 cargo test -p shelf-server docs_serve_md writes them"
    );
}

#[test]
fn the_docs_check_catches_a_missing_an_extra_and_a_wrong_row() {
    let all = declared();
    let good = docs_tables(&all);
    assert!(check_docs(&good, &all).is_empty());
    let without: String = good
        .lines()
        .filter(|l| !l.contains("| `poll_interval` |"))
        .map(|l| format!("{l}\n"))
        .collect();
    let problems = check_docs(&without, &all).join("\n");
    assert!(
        problems.contains("`poll_interval` is declared but has no row"),
        "{problems}"
    );
    let extra =
        format!("{good}\n| `--frobnicate N` | `frobnicate` | | `1` | | no | Frobnicates. |\n");
    let problems = check_docs(&extra, &all).join("\n");
    assert!(
        problems.contains("`frobnicate`, which is not a declared setting"),
        "{problems}"
    );
    let row = DECLARED.poll_interval.docs_row();
    let wrong = good.replace(&row, &row.replace("`5s`", "`4s`"));
    assert_ne!(wrong, good);
    let problems = check_docs(&wrong, &all).join("\n");
    assert!(
        problems.contains("`poll_interval`: docs/serve.md says default `4s`, the declaration `5s`"),
        "{problems}"
    );
}
