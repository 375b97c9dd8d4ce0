//! The machinery behind the one list of settings (`settings.rs`): what a
//! declaration holds ([`Info`]), where a value came from ([`Given`]), and
//! the `declare!` macro that turns the list into the structs, the merge,
//! the flags and the docs table. Nothing here names a setting.

use clap::{Arg, ArgAction, ArgMatches, Command};

use super::value::Value;
use super::{ConfigError, Env};

/// Where a setting lives in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// `[serve]`.
    Serve,
    /// `[serve.limits]`.
    Limits,
}

/// Where a value came from, for errors that say where to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A config file (its path as given).
    File(String),
    /// An environment variable.
    Env(&'static str),
    /// The command line.
    Flag,
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Given<T> {
    /// The value.
    pub value: T,
    /// Its source.
    pub from: Origin,
}

impl<T> Given<T> {
    /// A value given on the command line (what tests and callers build).
    pub fn flag(value: T) -> Self {
        Self {
            value,
            from: Origin::Flag,
        }
    }
}

/// One setting's declaration, without its type: what the flags, the file,
/// the environment layer, `--help` and docs/serve.md read.
#[derive(Debug)]
pub struct Info {
    /// The file key and clap id (`poll_interval`).
    pub key: &'static str,
    /// `[serve]` or `[serve.limits]`.
    pub group: Group,
    /// The flag without dashes (`poll-interval`); empty: file only.
    pub flag: &'static str,
    /// Another flag name it answers to, shown in `--help`.
    pub alias: &'static str,
    /// The environment variable of the environment layer; empty: none.
    pub env: &'static str,
    /// What `--help` calls its value; empty: the type's name.
    pub value_name: &'static str,
    /// The type's name for its value (`DURATION`, `N`).
    pub type_value_name: &'static str,
    /// A switch (`--flag` alone is true).
    pub switch: bool,
    /// What it does: the doc comment of its declaration.
    pub doc: &'static str,
    /// Whether `shelf mcp` (stdio) uses it; others are not flags of
    /// `shelf mcp` and are dropped from its merged settings.
    pub stdio: bool,
    /// Part of what to serve: a layer that sets one of these replaces every
    /// one of them from the layers below (`--bundle` is not mixed with a
    /// file's `store`).
    pub source: bool,
    /// Flags it cannot be given with (clap ids).
    pub conflicts: &'static [&'static str],
    /// What being unset means, for settings without a default value.
    pub unset: &'static str,
    /// The default, shown; `None` for settings without one.
    pub default: fn() -> Option<String>,
    /// The range (least, most), shown; `None` when any value goes.
    pub range: fn() -> Option<(String, String)>,
}

impl Info {
    /// What a declaration leaves unsaid (`..Info::BASE`); the macro fills
    /// in key, group, type, default and range.
    pub const BASE: Info = Info {
        key: "",
        group: Group::Serve,
        flag: "",
        alias: "",
        env: "",
        value_name: "",
        type_value_name: "",
        switch: false,
        doc: "",
        stdio: false,
        source: false,
        conflicts: &[],
        unset: "—",
        default: || None,
        range: || None,
    };

    /// The key as the file spells it under `[serve]`: `poll_interval`,
    /// `limits.max_k`.
    pub fn file_key(&self) -> String {
        match self.group {
            Group::Serve => self.key.to_string(),
            Group::Limits => format!("limits.{}", self.key),
        }
    }

    /// The doc comment as one line.
    pub fn doc_line(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The default as docs and `--help` write it.
    pub fn default_text(&self) -> String {
        (self.default)().unwrap_or_else(|| self.unset.to_string())
    }

    /// The range as docs, `--help` and errors write it.
    pub fn range_text(&self) -> Option<String> {
        (self.range)().map(|(least, most)| format!("{least} to {most}"))
    }

    /// What `--help` calls the value.
    pub fn value_name(&self) -> &'static str {
        if self.value_name.is_empty() {
            self.type_value_name
        } else {
            self.value_name
        }
    }

    /// Where a value of this setting came from, as an error names it.
    pub fn origin(&self, from: &Origin) -> String {
        match from {
            Origin::File(path) => format!("{path}: serve.{}", self.file_key()),
            Origin::Env(name) => (*name).to_string(),
            Origin::Flag => format!("--{}", self.flag),
        }
    }

    /// Refuses `value` outside `least..=most`, naming the setting, the
    /// value, the range and where the value came from (`None`: set in
    /// code, named by its file key).
    pub fn check<T: Value + PartialOrd>(
        &self,
        value: &T,
        least: &T,
        most: &T,
        from: Option<&Origin>,
    ) -> Result<(), ConfigError> {
        if value >= least && value <= most {
            return Ok(());
        }
        let origin = match from {
            Some(from) => self.origin(from),
            None => format!("serve.{}", self.file_key()),
        };
        Err(ConfigError::new(
            origin,
            format!(
                "{} {} is out of range: use {} to {}",
                self.key,
                value.show(),
                least.show(),
                most.show()
            ),
        ))
    }

    /// A value from the config file.
    pub fn from_file<T: Value>(
        &self,
        value: &toml::Value,
        file: &str,
    ) -> Result<Given<T>, ConfigError> {
        let value = T::from_toml(value).map_err(|e| {
            ConfigError::new(
                format!("{file}: serve.{}", self.file_key()),
                format!("{e} (see docs/serve.md)"),
            )
        })?;
        Ok(Given {
            value,
            from: Origin::File(file.to_string()),
        })
    }

    /// The value of this setting's environment variable; unset or empty
    /// is none.
    pub fn from_env<T: Value>(&self, env: Env<'_>) -> Result<Option<Given<T>>, ConfigError> {
        if self.env.is_empty() {
            return Ok(None);
        }
        let Some(text) = env(self.env).filter(|t| !t.trim().is_empty()) else {
            return Ok(None);
        };
        let value = T::parse(&text)
            .map_err(|e| ConfigError::new(self.env, format!("{e} (the {} setting)", self.key)))?;
        Ok(Some(Given {
            value,
            from: Origin::Env(self.env),
        }))
    }

    /// `--help`'s text: what it does, its default, range and variable.
    fn help(&self) -> String {
        let mut help = self.doc_line();
        let default = self.default_text();
        if default != Info::BASE.unset {
            help.push_str(&format!(" [default: {default}]"));
        }
        if let Some(range) = self.range_text() {
            help.push_str(&format!(" [range: {range}]"));
        }
        if !self.env.is_empty() {
            help.push_str(&format!(" [env: {}]", self.env));
        }
        // Markdown's code marks are for docs/serve.md, not a terminal.
        help.replace('`', "")
    }

    /// `cmd` with this setting's flag (none when it is file-only, or when
    /// `stdio_only` and `shelf mcp` does not use it).
    pub fn add_arg<T: Value>(&'static self, cmd: Command, stdio_only: bool) -> Command {
        if self.flag.is_empty() || (stdio_only && !self.stdio) {
            return cmd;
        }
        let mut arg = Arg::new(self.key)
            .long(self.flag)
            .help(self.help())
            .value_name(self.value_name())
            .value_parser(T::parse)
            .action(ArgAction::Set)
            .conflicts_with_all(self.conflicts);
        if T::SWITCH {
            arg = arg
                .num_args(0..=1)
                .require_equals(true)
                .default_missing_value("true");
        }
        if !self.alias.is_empty() {
            arg = arg.visible_alias(self.alias);
        }
        if self.group == Group::Limits {
            arg = arg.help_heading("Limits ([serve.limits] in the config file)");
        }
        cmd.arg(arg)
    }

    /// This setting's value on the command line, if given.
    pub fn take<T: Value>(&self, matches: &ArgMatches) -> Option<Given<T>> {
        if self.flag.is_empty() {
            return None;
        }
        // Not a flag of this command (`shelf mcp` has fewer): unset.
        let value = matches.try_get_one::<T>(self.key).ok().flatten()?;
        Some(Given::flag(value.clone()))
    }

    /// This setting's row of the docs table (docs/serve.md).
    pub fn docs_row(&self) -> String {
        let flag = if self.flag.is_empty() {
            "(no flag)".to_string()
        } else if self.switch {
            format!("`--{}`", self.flag)
        } else {
            format!("`--{} {}`", self.flag, self.value_name())
        };
        let flag = if self.alias.is_empty() {
            flag
        } else {
            format!("{flag} (`--{}`)", self.alias)
        };
        let env = if self.env.is_empty() {
            String::new()
        } else {
            format!("`{}`", self.env)
        };
        let default = match (self.default)() {
            Some(shown) => format!("`{shown}`"),
            None => self.unset.to_string(),
        };
        let cells = [
            flag,
            format!("`{}`", self.key),
            env,
            default,
            self.range_text().unwrap_or_default(),
            if self.stdio { "yes" } else { "no" }.into(),
            self.doc_line(),
        ];
        // A table cell cannot hold a bare `|` (`TAG|PATTERN`).
        let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |", cells.join(" | "))
    }
}

/// The first line of the generated settings tables in docs/serve.md.
pub const DOCS_BEGIN: &str = "<!-- settings tables: generated from server/src/config/settings.rs; SHELF_UPDATE_DOCS=1 cargo test -p shelf-server docs_serve_md writes them -->";
/// The line after them.
pub const DOCS_END: &str = "<!-- end of the settings tables -->";

/// docs/serve.md's settings tables, from the declarations: `[serve]`, then
/// `[serve.limits]`, between [`DOCS_BEGIN`] and [`DOCS_END`].
pub fn docs_tables(declared: &[&Info]) -> String {
    let header = "| flag | key | env | default | range | `shelf mcp` | meaning |\n|---|---|---|---|---|---|---|";
    let rows = |group: Group| {
        declared
            .iter()
            .filter(|i| i.group == group)
            .map(|i| i.docs_row() + "\n")
            .collect::<String>()
    };
    format!(
        "{DOCS_BEGIN}\n{header}\n{}\n### Limits (`[serve.limits]`, flags of the same names)\n\n{header}\n{}{DOCS_END}",
        rows(Group::Serve),
        rows(Group::Limits)
    )
}

/// Builds the settings from one list. Three sections, in this order:
/// `inputs` (settings `resolve` combines into other fields), then the
/// settings that are fields of the config struct, then those of the
/// limits struct. For each setting the macro writes its field in
/// `ServeSettings` (and in the config or limits struct), its `Info` in
/// `DECLARED`, its file key, environment variable and flag, its default,
/// its range check, and its line in the merge.
macro_rules! declare {
    (
        inputs {
            $( $(#[doc = $idoc:literal])*
               $ifield:ident: $ity:ty, { $($ik:ident: $iv:expr),* $(,)? }; )*
        }
        $(#[$cmeta:meta])*
        pub struct $Config:ident($($param:ident: $pty:ty),*) {
            $( $(#[doc = $xdoc:literal])* pub $xfield:ident: $xty:ty = $xdefault:expr, )*
        }
        settings {
            $( $(#[doc = $cdoc:literal])*
               $cfield:ident: $cty:ty = $cdefault:expr, $(range($cmin:expr, $cmax:expr),)?
               { $($ck:ident: $cv:expr),* $(,)? }; )*
        }
        $(#[$lmeta:meta])*
        pub struct $Limits:ident {}
        limits {
            $( $(#[doc = $ldoc:literal])*
               $lfield:ident: $lty:ty = $ldefault:expr, $(range($lmin:expr, $lmax:expr),)?
               { $($lk:ident: $lv:expr),* $(,)? }; )*
        }
    ) => {
        declare!(@config $(#[$cmeta])* $Config($($param: $pty),*)
            [ $( $(#[doc = $xdoc])* $xfield: $xty = $xdefault; )* ]
            [ $( $(#[doc = $cdoc])* $cfield: $cty = $cdefault; $( ($cmin, $cmax) )? )* ]);
        declare!(@config $(#[$lmeta])* $Limits()
            []
            [ $( $(#[doc = $ldoc])* $lfield: $lty = $ldefault; $( ($lmin, $lmax) )? )* ]);
        declare!(@settings
            $( $(#[doc = $idoc])* $ifield: $ity => $crate::config::declare::Info {
                key: stringify!($ifield),
                group: $crate::config::declare::Group::Serve,
                doc: concat!($($idoc, "\n"),*),
                type_value_name: <$ity as $crate::config::value::Value>::VALUE_NAME,
                switch: <$ity as $crate::config::value::Value>::SWITCH,
                $($ik: $iv,)*
                ..$crate::config::declare::Info::BASE
            }; )*
            $( $(#[doc = $cdoc])* $cfield: $cty => $crate::config::declare::Info {
                key: stringify!($cfield),
                group: $crate::config::declare::Group::Serve,
                doc: concat!($($cdoc, "\n"),*),
                type_value_name: <$cty as $crate::config::value::Value>::VALUE_NAME,
                switch: <$cty as $crate::config::value::Value>::SWITCH,
                default: || Some(<$cty as $crate::config::value::Value>::show(&$cdefault)),
                range: || None $(.or(Some((
                    <$cty as $crate::config::value::Value>::show(&$cmin),
                    <$cty as $crate::config::value::Value>::show(&$cmax),
                ))))?,
                $($ck: $cv,)*
                ..$crate::config::declare::Info::BASE
            }; )*
            $( $(#[doc = $ldoc])* $lfield: $lty => $crate::config::declare::Info {
                key: stringify!($lfield),
                group: $crate::config::declare::Group::Limits,
                doc: concat!($($ldoc, "\n"),*),
                type_value_name: <$lty as $crate::config::value::Value>::VALUE_NAME,
                switch: <$lty as $crate::config::value::Value>::SWITCH,
                default: || Some(<$lty as $crate::config::value::Value>::show(&$ldefault)),
                range: || None $(.or(Some((
                    <$lty as $crate::config::value::Value>::show(&$lmin),
                    <$lty as $crate::config::value::Value>::show(&$lmax),
                ))))?,
                $($lk: $lv,)*
                ..$crate::config::declare::Info::BASE
            }; )*
        );
    };

    // A struct of resolved settings (and fields `resolve` fills itself),
    // with its defaults and the range checks.
    (@config $(#[$meta:meta])* $Config:ident($($param:ident: $pty:ty),*)
        [ $( $(#[doc = $xdoc:literal])* $xfield:ident: $xty:ty = $xdefault:expr; )* ]
        [ $( $(#[doc = $doc:literal])* $field:ident: $ty:ty = $default:expr; $( ($min:expr, $max:expr) )? )* ]
    ) => {
        $(#[$meta])*
        pub struct $Config {
            $( $(#[doc = $xdoc])* pub $xfield: $xty, )*
            $( $(#[doc = $doc])* pub $field: $ty, )*
        }

        impl $Config {
            /// Every setting at its default (docs/serve.md).
            pub fn new($($param: $pty),*) -> Self {
                Self {
                    $( $xfield: $xdefault, )*
                    $( $field: $default, )*
                }
            }

            /// Takes every setting `settings` gives, each checked against
            /// its range.
            fn apply(&mut self, settings: &ServeSettings) -> Result<(), ConfigError> {
                $(
                    if let Some(given) = &settings.$field {
                        $( DECLARED.$field.check(&given.value, &$min, &$max, Some(&given.from))?; )?
                        self.$field = given.value.clone();
                    }
                )*
                Ok(())
            }

            /// Checks every setting against its range.
            fn check_ranges(&self) -> Result<(), ConfigError> {
                $( $( DECLARED.$field.check(&self.$field, &$min, &$max, None)?; )? )*
                Ok(())
            }

            /// A setting's value, shown (tests compare it across layers).
            #[cfg(test)]
            pub(crate) fn shown(&self, key: &str) -> Option<String> {
                $(
                    if key == stringify!($field) {
                        return Some(<$ty as $crate::config::value::Value>::show(&self.$field));
                    }
                )*
                None
            }
        }
    };

    // Everything that runs over every setting.
    (@settings $( $(#[doc = $doc:literal])* $field:ident: $ty:ty => $info:expr; )*) => {
        /// Every setting of `shelf serve`, as one source gives them (the
        /// file, the environment, the flags) or as they merged: unset
        /// means "the next source decides", down to the defaults. Each is
        /// declared once, in `settings.rs`.
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct ServeSettings {
            $( $(#[doc = $doc])* pub $field: Option<$crate::config::declare::Given<$ty>>, )*
        }

        /// Every setting's declaration, by name (`DECLARED.poll_interval`).
        #[derive(Debug)]
        pub struct Declared {
            $( $(#[doc = $doc])* pub $field: $crate::config::declare::Info, )*
        }

        /// The declarations: flags, keys, variables, defaults, ranges, docs.
        pub static DECLARED: Declared = Declared { $( $field: $info, )* };

        /// Every declaration, in the order of `settings.rs`.
        pub fn declared() -> Vec<&'static $crate::config::declare::Info> {
            vec![$( &DECLARED.$field ),*]
        }

        impl ServeSettings {
            /// Sets `key` of `group` from the file; false when no setting
            /// has that key.
            pub(super) fn set_from_file(
                &mut self,
                group: $crate::config::declare::Group,
                key: &str,
                value: &toml::Value,
                file: &str,
            ) -> Result<bool, ConfigError> {
                $(
                    if DECLARED.$field.group == group && DECLARED.$field.key == key {
                        self.$field = Some(DECLARED.$field.from_file::<$ty>(value, file)?);
                        return Ok(true);
                    }
                )*
                Ok(false)
            }

            /// The environment layer: every setting with a variable that
            /// `env` sets (and is not empty).
            pub fn from_env(env: Env<'_>) -> Result<Self, ConfigError> {
                Ok(Self {
                    $( $field: DECLARED.$field.from_env::<$ty>(env)?, )*
                })
            }

            /// These settings with every one `over` sets taking precedence
            /// (the environment over the file, the flags over both). A
            /// layer that says what to serve replaces the whole source.
            pub fn overlay(self, over: ServeSettings) -> ServeSettings {
                let mut base = self;
                if over.sets_source() {
                    $( if DECLARED.$field.source { base.$field = None; } )*
                }
                ServeSettings {
                    $( $field: over.$field.or(base.$field), )*
                }
            }

            /// Whether any setting of what to serve is set.
            fn sets_source(&self) -> bool {
                false $( || (DECLARED.$field.source && self.$field.is_some()) )*
            }

            /// Drops what `shelf mcp` does not use (a shared file may set it).
            fn keep_only_stdio(&mut self) {
                $( if !DECLARED.$field.stdio { self.$field = None; } )*
            }

            /// Every flag, or (`stdio_only`) those of `shelf mcp`.
            fn augment(cmd: clap::Command, stdio_only: bool) -> clap::Command {
                let mut cmd = cmd;
                $( cmd = DECLARED.$field.add_arg::<$ty>(cmd, stdio_only); )*
                cmd
            }

            /// The flags given.
            fn from_matches(matches: &clap::ArgMatches) -> Self {
                Self {
                    $( $field: DECLARED.$field.take::<$ty>(matches), )*
                }
            }

            /// A setting's value, shown (tests compare it across layers).
            #[cfg(test)]
            pub(crate) fn shown(&self, key: &str) -> Option<String> {
                $(
                    if key == stringify!($field) {
                        return self.$field.as_ref().map(|g| $crate::config::value::Value::show(&g.value));
                    }
                )*
                None
            }

            /// Where a setting's value came from.
            #[cfg(test)]
            pub(crate) fn origin_of(&self, key: &str) -> Option<$crate::config::declare::Origin> {
                $(
                    if key == stringify!($field) {
                        return self.$field.as_ref().map(|g| g.from.clone());
                    }
                )*
                None
            }

            /// A value for `key` chosen by `seed` (in its range), as the
            /// file writes it, as a flag's argument, and shown.
            #[cfg(test)]
            pub(crate) fn sample(key: &str, seed: u64) -> Option<$crate::config::tests::Sample> {
                $(
                    if key == stringify!($field) {
                        return Some($crate::config::tests::Sample::of::<$ty>(&DECLARED.$field, seed));
                    }
                )*
                None
            }
        }
    };
}
pub(crate) use declare;

/// Compares docs/serve.md's settings tables with the declarations: each
/// problem (a setting missing, a row for no setting, a row that differs,
/// naming its default when that is what differs) on one line.
pub fn check_docs(doc: &str, declared: &[&Info]) -> Vec<String> {
    let rows: Vec<(String, &str)> = doc
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| flag |"))
        .filter_map(|l| {
            let key = l.split(" | ").nth(1)?.trim_matches('`').to_string();
            Some((key, l))
        })
        .collect();
    let mut problems = Vec::new();
    for info in declared {
        let want = info.docs_row();
        match rows
            .iter()
            .filter(|(k, _)| k == info.key)
            .collect::<Vec<_>>()[..]
        {
            [] => problems.push(format!(
                "setting `{}` is declared but has no row in docs/serve.md",
                info.key
            )),
            [(_, have)] if *have == want => {}
            [(_, have)] => {
                let cell = |row: &str| row.split(" | ").nth(3).map(str::to_string);
                if cell(have) != cell(&want) {
                    problems.push(format!(
                        "setting `{}`: docs/serve.md says default {}, the declaration {}",
                        info.key,
                        cell(have).unwrap_or_default(),
                        cell(&want).unwrap_or_default()
                    ));
                } else {
                    problems.push(format!(
                        "setting `{}`: docs/serve.md has\n  {have}\nthe declaration makes\n  {want}",
                        info.key
                    ));
                }
            }
            _ => problems.push(format!(
                "setting `{}` has several rows in docs/serve.md",
                info.key
            )),
        }
    }
    for (key, _) in &rows {
        if !declared.iter().any(|i| i.key == key) {
            problems.push(format!(
                "docs/serve.md lists `{key}`, which is not a declared setting"
            ));
        }
    }
    problems
}
