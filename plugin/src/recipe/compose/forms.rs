//! The values compose writes in more than one form, read into one: labels (a list or a map),
//! scalars read as text, a healthcheck and its test, a service's mounts (short or long form) and
//! its uses of secrets.
//!
//! Separate from reading a file ([`super::parse`]): these are the shapes, each with its own
//! rules; the parse decides where they are read and how their values are interpolated.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Labels in either compose form: `["k=v", ...]` or `{k: v}`. A list item without `=` is a label
/// with an empty value, as in compose. Numbers and booleans (in a list, or as a map's keys and
/// values) are read as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Labels(pub BTreeMap<String, String>);

impl Labels {
    /// Returns the value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<Scalar>),
            Map(BTreeMap<Scalar, Option<Scalar>>),
        }
        Ok(Labels(match Option::<Form>::deserialize(d)? {
            None => BTreeMap::new(),
            Some(Form::List(items)) => items
                .into_iter()
                .map(|Scalar(item)| match item.split_once('=') {
                    Some((k, v)) => (k.trim().to_string(), v.to_string()),
                    None => (item.trim().to_string(), String::new()),
                })
                .collect(),
            Some(Form::Map(map)) => map
                .into_iter()
                .map(|(k, v)| (k.0, v.map(|s| s.0).unwrap_or_default()))
                .collect(),
        }))
    }
}

/// A YAML scalar read as text (`true`, `3`, `1.5` and strings all become strings).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalar(pub String);

impl Scalar {
    /// Returns the text of a string, number or boolean value; `None` for anything else.
    pub fn text(value: &serde_yaml::Value) -> Option<String> {
        match value {
            serde_yaml::Value::String(s) => Some(s.clone()),
            serde_yaml::Value::Number(n) => Some(n.to_string()),
            serde_yaml::Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        Self::text(&value).map(Scalar).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "expected a string, number or boolean, found {value:?}"
            ))
        })
    }
}

/// `services.X.healthcheck`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct Healthcheck {
    /// The test: `["CMD", ...]`, `["CMD-SHELL", "..."]`, `["NONE"]`, or a shell string.
    #[serde(default)]
    pub test: Option<HealthTest>,
    /// Interval between checks (compose duration text, e.g. `30s`).
    #[serde(default)]
    pub interval: Option<String>,
    /// Timeout of one check.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Failures before unhealthy.
    #[serde(default)]
    pub retries: Option<u64>,
    /// Grace period after start.
    #[serde(default)]
    pub start_period: Option<String>,
    /// `disable: true` turns the image's healthcheck off.
    #[serde(default)]
    pub disable: bool,
}

impl Healthcheck {
    /// Returns true when the healthcheck is turned off (`disable: true` or test `NONE`).
    pub fn is_disabled(&self) -> bool {
        self.disable
            || matches!(&self.test, Some(HealthTest::List(l)) if l.first().map(String::as_str) == Some("NONE"))
    }
}

/// A healthcheck test in either form.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum HealthTest {
    /// `test: curl -f http://localhost/` (run with the container's shell).
    Shell(String),
    /// `test: ["CMD", "curl", "-f", "http://localhost/"]`.
    List(Vec<String>),
}

/// A service volume mount in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVolume {
    /// A named volume or a host path; `None` for an anonymous volume.
    pub source: Option<String>,
    /// The path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
    /// `volume`, `bind`, `tmpfs`, ... (short form: `bind` when the source looks like a path; long
    /// form without `type`: empty, no named volume).
    pub kind: String,
}

impl ServiceVolume {
    /// Returns the named volume this mount uses, if it is one.
    pub fn named_volume(&self) -> Option<&str> {
        (self.kind == "volume")
            .then_some(self.source.as_deref())
            .flatten()
    }

    /// Parses the short form `[source:]target[:mode]`. A source that looks like a path (`/`, `.`,
    /// `~`) is a bind mount, any other source a named volume, and no source an anonymous volume.
    pub fn parse_short(text: &str) -> Self {
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [target] => (None, target.to_string(), None),
            [source, target] => (Some(source.to_string()), target.to_string(), None),
            [source, target, mode, ..] => (
                Some(source.to_string()),
                target.to_string(),
                Some(mode.to_string()),
            ),
            [] => (None, String::new(), None),
        };
        let is_path = |s: &str| s.starts_with('/') || s.starts_with('.') || s.starts_with('~');
        ServiceVolume {
            kind: match &source {
                Some(src) if is_path(src) => "bind".into(),
                _ => "volume".into(),
            },
            read_only: mode.is_some_and(|m| m.split(',').any(|x| x == "ro")),
            source,
            target,
        }
    }
}

/// A service's use of a secret in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSecret {
    /// The top-level secret's key.
    pub source: String,
    /// The file name under `/run/secrets` (default: the source).
    pub target: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::recipe::compose::Compose;

    #[test]
    fn labels_read_numbers_and_booleans_as_text_in_both_forms() {
        let c = Compose::parse(
            Path::new("compose.yml"),
            "services:\n  a:\n    labels: [x=1, 7, true]\n  b:\n    labels: {1: 2, on: false}\n",
        )
        .unwrap();
        let a = c.service("a").unwrap();
        assert_eq!(a.label("x"), Some("1"));
        assert_eq!(a.label("7"), Some(""));
        assert_eq!(a.label("true"), Some(""));
        let b = c.service("b").unwrap();
        assert_eq!(b.label("1"), Some("2"));
        assert_eq!(b.label("on"), Some("false"));
    }
}
