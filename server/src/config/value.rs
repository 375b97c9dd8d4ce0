//! How one setting's value is read from a flag, an environment variable
//! or the config file, and how docs and errors write it: one
//! implementation per type, so every setting of a type reads and shows
//! alike wherever it comes from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::RepoSpec;

/// A type a setting can hold.
pub trait Value: Clone + PartialEq + std::fmt::Debug + Send + Sync + Sized + 'static {
    /// What `--help` calls a value of this type, unless the setting names
    /// it (`BYTES`, `URL`).
    const VALUE_NAME: &'static str;
    /// A switch: `--flag` alone means true (`--flag=false` also works).
    const SWITCH: bool = false;

    /// The value written as text: a flag's argument or an environment
    /// variable. The error says what was expected.
    fn parse(text: &str) -> Result<Self, String>;

    /// The value as the config file writes it (a TOML string, number or
    /// boolean; durations are strings such as "5s").
    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(s) => Self::parse(s),
            other => Err(format!("expected a string, found {}", other.type_str())),
        }
    }

    /// How `--help`, docs/serve.md and errors write the value.
    fn show(&self) -> String;

    /// The value as the config file writes it: the inverse of
    /// [`Value::from_toml`] (tests write every setting into a file).
    #[cfg(test)]
    fn to_toml(&self) -> toml::Value {
        toml::Value::String(self.show())
    }

    /// A value for a property test, chosen by `seed` (within `range` when
    /// the setting has one).
    #[cfg(test)]
    fn sample(seed: u64, range: Option<(&Self, &Self)>) -> Self;

    /// The value one step above (`up`) or below this one, if the type has
    /// one (tests try each range bound's neighbours).
    #[cfg(test)]
    fn step(&self, _up: bool) -> Option<Self> {
        None
    }
}

fn whole_number<T: TryFrom<i64> + std::str::FromStr>(value: &toml::Value) -> Result<T, String> {
    match value {
        toml::Value::Integer(i) => {
            T::try_from(*i).map_err(|_| format!("{i} is not a count this setting can hold"))
        }
        other => Err(format!(
            "expected a whole number, found {}",
            other.type_str()
        )),
    }
}

macro_rules! count {
    ($($t:ty),*) => {$(
        impl Value for $t {
            const VALUE_NAME: &'static str = "N";
            fn parse(text: &str) -> Result<Self, String> {
                text.trim()
                    .parse()
                    .map_err(|_| format!("'{text}' is not a whole number of at least 0"))
            }
            fn from_toml(value: &toml::Value) -> Result<Self, String> {
                whole_number(value)
            }
            fn show(&self) -> String {
                self.to_string()
            }
            #[cfg(test)]
            fn to_toml(&self) -> toml::Value {
                toml::Value::Integer(i64::try_from(*self).expect("test values fit in i64"))
            }
            #[cfg(test)]
            fn sample(seed: u64, range: Option<(&Self, &Self)>) -> Self {
                let (lo, hi) = range.map_or((0, 1 << 20), |(lo, hi)| (*lo as u64, *hi as u64));
                (lo + seed % (hi - lo + 1)) as $t
            }
            #[cfg(test)]
            fn step(&self, up: bool) -> Option<Self> {
                if up { self.checked_add(1) } else { self.checked_sub(1) }
            }
        }
    )*};
}
count!(usize, u32);

impl Value for Duration {
    const VALUE_NAME: &'static str = "DURATION";
    fn parse(text: &str) -> Result<Self, String> {
        humantime::parse_duration(text.trim())
            .map_err(|e| format!("'{text}' is not a duration like \"5s\" or \"750ms\": {e}"))
    }
    fn show(&self) -> String {
        humantime::format_duration(*self).to_string()
    }
    #[cfg(test)]
    fn sample(seed: u64, range: Option<(&Self, &Self)>) -> Self {
        let (lo, hi) = range.map_or((0, 3_600_000), |(lo, hi)| {
            (lo.as_millis() as u64, hi.as_millis() as u64)
        });
        Duration::from_millis(lo + seed % (hi - lo + 1))
    }
    #[cfg(test)]
    fn step(&self, up: bool) -> Option<Self> {
        let ms = Duration::from_millis(1);
        if up {
            self.checked_add(ms)
        } else {
            self.checked_sub(ms)
        }
    }
}

impl Value for bool {
    const VALUE_NAME: &'static str = "BOOL";
    const SWITCH: bool = true;
    fn parse(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(format!("'{text}' is not true or false")),
        }
    }
    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::Boolean(b) => Ok(*b),
            other => Err(format!(
                "expected true or false, found {}",
                other.type_str()
            )),
        }
    }
    fn show(&self) -> String {
        if *self { "on" } else { "off" }.into()
    }
    #[cfg(test)]
    fn to_toml(&self) -> toml::Value {
        toml::Value::Boolean(*self)
    }
    #[cfg(test)]
    fn sample(seed: u64, _: Option<(&Self, &Self)>) -> Self {
        seed.is_multiple_of(2)
    }
}

impl Value for String {
    const VALUE_NAME: &'static str = "TEXT";
    fn parse(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn show(&self) -> String {
        self.clone()
    }
    #[cfg(test)]
    fn sample(seed: u64, _: Option<(&Self, &Self)>) -> Self {
        format!("value-{seed}")
    }
}

impl Value for PathBuf {
    const VALUE_NAME: &'static str = "PATH";
    fn parse(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    fn show(&self) -> String {
        self.display().to_string()
    }
    #[cfg(test)]
    fn sample(seed: u64, _: Option<(&Self, &Self)>) -> Self {
        PathBuf::from(format!("/srv/shelf/{seed}"))
    }
}

impl Value for SocketAddr {
    const VALUE_NAME: &'static str = "ADDR";
    fn parse(text: &str) -> Result<Self, String> {
        text.trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an address like 127.0.0.1:7700 or 0.0.0.0:7700"))
    }
    fn show(&self) -> String {
        self.to_string()
    }
    #[cfg(test)]
    fn sample(seed: u64, _: Option<(&Self, &Self)>) -> Self {
        SocketAddr::from(([127, 0, 0, 1], 1024 + (seed % 60_000) as u16))
    }
}

/// `[[serve.repository]]`: a list of tables, written in the file only.
impl Value for Vec<RepoSpec> {
    const VALUE_NAME: &'static str = "TABLES";
    fn parse(_: &str) -> Result<Self, String> {
        Err("is a list of tables ([[serve.repository]] with name, store and follow): write it in the config file".into())
    }
    fn from_toml(value: &toml::Value) -> Result<Self, String> {
        value
            .clone()
            .try_into()
            .map_err(|e| format!("expected tables with name, store and follow: {e}"))
    }
    fn show(&self) -> String {
        self.iter()
            .map(|r| format!("{} ({} following {})", r.name, r.store, r.follow))
            .collect::<Vec<_>>()
            .join(", ")
    }
    #[cfg(test)]
    fn to_toml(&self) -> toml::Value {
        toml::Value::Array(
            self.iter()
                .map(|r| {
                    let mut t = toml::Table::new();
                    t.insert("name".into(), r.name.clone().into());
                    t.insert("store".into(), r.store.clone().into());
                    t.insert("follow".into(), r.follow.clone().into());
                    toml::Value::Table(t)
                })
                .collect(),
        )
    }
    #[cfg(test)]
    fn sample(seed: u64, _: Option<(&Self, &Self)>) -> Self {
        vec![RepoSpec {
            name: format!("repo-{seed}"),
            store: format!("/srv/shelf/{seed}"),
            follow: "production".into(),
        }]
    }
}
