//! Recipe names and the enrollment file.
//!
//! `RecipeName` is used to build paths under the state directory, so its validation is a security
//! boundary: nothing that could climb out of a folder (`/`, `..`, NUL) survives it. The enrollment
//! file lists the recipes canon keeps a canonical for; loading it refuses every way it could be
//! silently empty or ambiguous, because a sweep over nothing that reports success is the failure
//! this prevents.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A valid recipe name: `[a-z0-9][a-z0-9_-]{0,63}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct RecipeName(String);

/// Why a string is not a recipe name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid recipe name {shown}: {reason} (allowed: a lower-case letter or digit, then up to 63 of a-z, 0-9, `_` and `-`)")]
pub struct InvalidRecipeName {
    shown: String,
    reason: &'static str,
}

impl RecipeName {
    /// Validates `name` against `[a-z0-9][a-z0-9_-]{0,63}`.
    pub fn parse(name: &str) -> Result<Self, InvalidRecipeName> {
        let fail = |reason| InvalidRecipeName {
            // Debug formatting escapes control characters, so the message stays one safe line.
            shown: format!("{:?}", name.chars().take(80).collect::<String>()),
            reason,
        };
        let mut chars = name.chars();
        let Some(first) = chars.next() else {
            return Err(fail("it is empty"));
        };
        if name.len() > 64 {
            return Err(fail("it is longer than 64 characters"));
        }
        if !(first.is_ascii_lowercase() || first.is_ascii_digit()) {
            return Err(fail("it must start with a lower-case letter or a digit"));
        }
        if let Some(bad) = chars.find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '_' | '-')) {
            return Err(fail(match bad {
                '/' | '\\' => "it contains a path separator",
                '.' => "it contains a dot",
                '\0' => "it contains a NUL byte",
                c if c.is_ascii_uppercase() => "it contains an upper-case letter",
                c if c.is_whitespace() => "it contains whitespace",
                _ => "it contains a character outside a-z, 0-9, `_` and `-`",
            }));
        }
        Ok(Self(name.to_string()))
    }

    /// Returns the name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RecipeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RecipeName {
    type Err = InvalidRecipeName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for RecipeName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A stage of the cold CI ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Lint,
    Install,
    Upgrade,
    Backup,
    Restore,
    Custom,
}

impl Stage {
    /// Every stage, in ladder order.
    pub const ALL: [Stage; 6] = [
        Stage::Lint,
        Stage::Install,
        Stage::Upgrade,
        Stage::Backup,
        Stage::Restore,
        Stage::Custom,
    ];

    /// Returns the stage's name as used in results files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Lint => "lint",
            Stage::Install => "install",
            Stage::Upgrade => "upgrade",
            Stage::Backup => "backup",
            Stage::Restore => "restore",
            Stage::Custom => "custom",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown stage `{s}` (expected lint, install, upgrade, backup, restore or custom)"
                )
            })
    }
}

/// Where a recipe's git repository lives, as resolved from the enrollment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoLocation {
    /// What git fetches from or pushes to: a URL or an absolute local path.
    pub url: String,
    /// `owner/name` on a forge, when the location is a forge repository.
    pub full_name: Option<String>,
    /// The forge's base URL (e.g. `https://git.coopcloud.tech`), when known.
    pub forge: Option<String>,
}

impl RepoLocation {
    /// Returns the web URL of a forge repository (`<forge>/<owner>/<name>`), when known.
    pub fn web_url(&self) -> Option<String> {
        match (&self.forge, &self.full_name) {
            (Some(forge), Some(full)) => Some(format!("{}/{}", forge.trim_end_matches('/'), full)),
            _ => None,
        }
    }

    /// Returns true when `self` is the local filesystem (an absolute path or `file://`).
    pub fn is_local(&self) -> bool {
        self.url.starts_with('/') || self.url.starts_with("file://")
    }

    /// Returns true when a repository described by a webhook (its `full_name`, clone URL or web URL)
    /// is this location. Comparison ignores case, a trailing `/` and a trailing `.git`.
    pub fn matches(&self, candidate: &str) -> bool {
        let norm = |s: &str| {
            s.trim()
                .trim_end_matches('/')
                .trim_end_matches(".git")
                .to_ascii_lowercase()
        };
        let c = norm(candidate);
        if c.is_empty() {
            return false;
        }
        norm(&self.url) == c
            || self.full_name.as_deref().is_some_and(|f| norm(f) == c)
            || self.web_url().is_some_and(|w| norm(&w) == c)
    }
}

/// One enrolled recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Recipe {
    /// The recipe's name, also its folder under the state directory.
    pub name: RecipeName,
    /// The upstream repository (e.g. on git.coopcloud.tech).
    pub upstream: RepoLocation,
    /// The mirror repository that CI runs against.
    pub mirror: RepoLocation,
    /// The branch kept equal to upstream's (default `main`).
    pub branch: String,
    /// Stages that must pass for a promotion; `None` means the default (`install`, plus `upgrade`
    /// when a canonical exists).
    pub required_stages: Option<Vec<Stage>>,
    /// The recipe's own test command for the `custom` stage.
    pub test_command: Option<String>,
    /// How long a deploy may take to become healthy, in seconds.
    pub deploy_timeout_secs: Option<u64>,
    /// An HTTP path probed after deploy (e.g. `/health`).
    pub health_path: Option<String>,
    /// How the serving check asks for the app's page (`serving:`).
    pub serving: Serving,
    /// How long every service must stay converged (no restart, no new task) before a deploy
    /// counts as healthy, in seconds; `None` means the runner's default.
    pub stability_window_secs: Option<u64>,
    /// The Drone repository (`owner/name`) the recipe's builds start in, when the enrollment
    /// names one for it (or one for all); `None`: the listener's or the sweep's own setting.
    pub drone_repo: Option<String>,
    /// Values the recipe's `generate=false` secrets take in a run, by compose secret key: the
    /// file that holds each (`secrets: {<key>: <file>}`; a relative path is the enrollment
    /// file's folder's). Read at deploy time; the enrollment holds only the paths.
    pub secrets: BTreeMap<String, PathBuf>,
    /// The lint rules turned off for this recipe (`lint_skip`, rule ids), in file order. The
    /// lint stage checks the ids and lists what it skipped.
    pub lint_skip: Vec<String>,
    /// What the recipe may ask of the host beyond its containers (`host_access:`): host paths
    /// (e.g. `/var/run/docker.sock`) or kinds of the deploy policy (e.g. `host_network`). Every
    /// other host access in its compose files is refused.
    pub host_access: Vec<String>,
    /// The commands that prove a restore on the app's own data (`data_check:`), when the
    /// enrollment sets them; `None`: the restore is proven on the volumes' files only.
    pub data_check: Option<DataCheck>,
}

/// An enrollment's `data_check`: three shell commands run in the app service's running
/// container, with the recipe's env, around the backup and the restore. `seed` writes something
/// through the app before the backup, `change` removes or alters it after the backup, and
/// `verify` must exit 0 after the restore and the redeploy: the seeded state is back in the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of three commands: `seed`, `change` and `verify`"
)]
pub struct DataCheck {
    /// Runs before the backup.
    pub seed: String,
    /// Runs after the backup.
    pub change: String,
    /// Runs after the restore and the redeploy; must exit 0.
    pub verify: String,
}

impl DataCheck {
    /// Returns each step's name (`seed`, `change`, `verify`) and command, in the order they run.
    pub fn steps(&self) -> [(&'static str, &str); 3] {
        [
            ("seed", &self.seed),
            ("change", &self.change),
            ("verify", &self.verify),
        ]
    }

    /// Checks that every command has text: an empty one would prove nothing.
    fn checked(self) -> Result<Self, String> {
        for (step, command) in self.steps() {
            if command.trim().is_empty() {
                return Err(format!("data_check.{step} is empty: give it a command"));
            }
        }
        Ok(self)
    }
}

/// The statuses a serving check passes on when the enrollment names none.
pub const DEFAULT_SERVING_EXPECT: [u16; 3] = [200, 301, 302];

/// The enrollment's `serving:`: how the serving check after each deploy asks for the app's page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Serving {
    /// The path requested (`serving.path`); `None`: the route's path prefix, else `/`.
    pub path: Option<String>,
    /// The statuses that pass (`serving.expect`); `None`: [`DEFAULT_SERVING_EXPECT`].
    pub expect: Option<Vec<u16>>,
    /// True when the enrollment turns the check off (`serving.skip`).
    pub skip: bool,
}

impl Serving {
    /// Returns the statuses that pass.
    pub fn expected(&self) -> Vec<u16> {
        self.expect
            .clone()
            .unwrap_or_else(|| DEFAULT_SERVING_EXPECT.to_vec())
    }
}

/// Returns true when `repo` is a Drone repository name, `owner/name`, each part ASCII letters,
/// digits, `-`, `_` or `.` (and neither `.` nor `..`): the one rule for the enrollment and the
/// Drone client, so a name the client would refuse is refused when the enrollment is read.
pub fn is_drone_repo(repo: &str) -> bool {
    let parts: Vec<&str> = repo.split('/').collect();
    let part_ok = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    parts.len() == 2 && parts.iter().all(|p| part_ok(p))
}

/// Checks an enrollment's `drone_repo` ([`is_drone_repo`]).
fn drone_repo(value: &str) -> Result<String, String> {
    let v = value.trim();
    if is_drone_repo(v) {
        Ok(v.to_string())
    } else {
        Err(format!("drone_repo {v:?} is not `owner/name`"))
    }
}

/// The longest `stability_window` an enrollment may ask for, in seconds.
pub const MAX_STABILITY_WINDOW_SECS: u64 = 3600;

/// The enrollment: every recipe canon keeps a canonical for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrollment {
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The recipes, in file order, at least one, names unique.
    pub recipes: Vec<Recipe>,
    /// The forge base URLs the file names (top-level `forge:`): where each side's token is sent.
    pub forges: Forges,
}

/// The forge base URLs of an enrollment file, one per side.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forges {
    /// The upstream forge (`forge.upstream`).
    pub upstream: Option<String>,
    /// The mirrors' forge (`forge.mirror`).
    pub mirror: Option<String>,
}

/// Why an enrollment file could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    #[error("enrollment file {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("enrollment file {path}: invalid YAML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("enrollment file {path}: it enrolls no recipes (a sweep over nothing would report success while testing nothing)")]
    Empty { path: PathBuf },
    #[error("enrollment file {path}: recipe #{index} ({name}): {message}")]
    Entry {
        path: PathBuf,
        index: usize,
        name: String,
        message: String,
    },
    #[error("enrollment file {path}: recipe `{name}` is enrolled twice (entries #{first} and #{second})")]
    Duplicate {
        path: PathBuf,
        name: String,
        first: usize,
        second: usize,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnrollment {
    #[serde(default, deserialize_with = "forges")]
    forge: RawForges,
    /// The Drone repository every recipe builds in unless it names its own.
    #[serde(default, deserialize_with = "drone_repo_text")]
    drone_repo: Option<String>,
    #[serde(default, deserialize_with = "recipe_list")]
    recipes: Option<Vec<serde_yaml::Value>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawForges {
    #[serde(default, deserialize_with = "forge_upstream")]
    upstream: Option<String>,
    #[serde(default, deserialize_with = "forge_mirror")]
    mirror: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecipe {
    #[serde(deserialize_with = "name_text")]
    name: String,
    #[serde(deserialize_with = "upstream_location")]
    upstream: String,
    #[serde(deserialize_with = "mirror_location")]
    mirror: String,
    #[serde(default, deserialize_with = "branch_name")]
    branch: Option<String>,
    #[serde(default, deserialize_with = "stage_list")]
    required_stages: Option<Vec<String>>,
    #[serde(default, deserialize_with = "shell_command")]
    test_command: Option<String>,
    #[serde(default, deserialize_with = "whole_seconds")]
    deploy_timeout: Option<u64>,
    #[serde(default, deserialize_with = "http_path")]
    health_path: Option<String>,
    #[serde(default)]
    serving: Option<RawServing>,
    #[serde(default, deserialize_with = "window_seconds")]
    stability_window: Option<u64>,
    #[serde(default, deserialize_with = "drone_repo_text")]
    drone_repo: Option<String>,
    #[serde(default, deserialize_with = "secret_map")]
    secrets: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "rule_list")]
    lint_skip: Vec<String>,
    #[serde(default, deserialize_with = "host_access_list")]
    host_access: Option<Vec<String>>,
    data_check: Option<DataCheck>,
}

/// How a type error shows the value it got.
#[derive(Clone, Copy)]
enum Got {
    /// A scalar as written (a string quoted), a list or map as JSON, cut at 60 characters.
    Value,
    /// Its kind only (`a list`, `a map`): a repository location may carry credentials.
    Kind,
}

/// Returns `value` as a type error shows it ([`Got`]).
fn shown_value(value: &serde_yaml::Value, got: Got) -> String {
    use serde_yaml::Value as V;
    match (value, got) {
        (V::Null, _) => "nothing".into(),
        (V::Sequence(_), Got::Kind) => "a list".into(),
        (V::Mapping(_), Got::Kind) => "a map".into(),
        (V::String(_), Got::Kind) => "a string".into(),
        (V::Tagged(_), _) => "a tagged value".into(),
        _ => {
            let text =
                serde_json::to_string(value).unwrap_or_else(|_| "something else".to_string());
            if text.chars().count() > 60 {
                format!("{}…", text.chars().take(60).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// Reads the value of `key` as `T`, or fails naming the key, the expected form and what it got:
/// `deploy_timeout: expected a whole number of seconds, got "5m"`.
fn typed<'de, D, T>(d: D, key: &str, form: &str, got: Got) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let value = serde_yaml::Value::deserialize(d)?;
    serde_yaml::from_value(value.clone()).map_err(|_| {
        serde::de::Error::custom(format!(
            "{key}: expected {form}, got {}",
            shown_value(&value, got)
        ))
    })
}

/// Declares one reader per typed key of the enrollment: its key, the form it expects, its type.
macro_rules! typed_keys {
    ($($(#[$doc:meta])* $fn:ident: $key:literal, $form:literal, $got:ident => $t:ty;)*) => {$(
        $(#[$doc])*
        fn $fn<'de, D: serde::Deserializer<'de>>(d: D) -> Result<$t, D::Error> {
            typed(d, $key, $form, Got::$got)
        }
    )*};
}

typed_keys! {
    /// Reads a recipe's `name`.
    name_text: "name", "a recipe name", Value => String;
    /// Reads a recipe's `upstream`.
    upstream_location: "upstream", "a repository URL, an absolute path or `owner/name`", Kind => String;
    /// Reads a recipe's `mirror`.
    mirror_location: "mirror", "a repository URL, an absolute path or `owner/name`", Kind => String;
    /// Reads a recipe's `branch`.
    branch_name: "branch", "a branch name", Value => Option<String>;
    /// Reads a recipe's `required_stages`.
    stage_list: "required_stages", "a list of stage names (lint, install, upgrade, backup, restore, custom)", Value => Option<Vec<String>>;
    /// Reads a recipe's `test_command`.
    shell_command: "test_command", "a shell command", Value => Option<String>;
    /// Reads a recipe's `deploy_timeout`.
    whole_seconds: "deploy_timeout", "a whole number of seconds", Value => Option<u64>;
    /// Reads a recipe's `health_path`.
    http_path: "health_path", "an HTTP path like `/health`", Value => Option<String>;
    /// Reads `drone_repo`, top-level or a recipe's.
    drone_repo_text: "drone_repo", "a Drone repository `owner/name`", Value => Option<String>;
    /// Reads a recipe's `secrets`.
    secret_map: "secrets", "a map of compose secret keys to files", Value => Option<BTreeMap<String, String>>;
    /// Reads a recipe's `lint_skip`.
    rule_list: "lint_skip", "a list of lint rule ids", Value => Vec<String>;
    /// Reads a recipe's `host_access`.
    host_access_list: "host_access", "a list of host paths or kinds", Value => Option<Vec<String>>;
    /// Reads the top-level `recipes`.
    recipe_list: "recipes", "a list of recipes", Kind => Option<Vec<serde_yaml::Value>>;
    /// Reads `forge.upstream`.
    forge_upstream: "forge.upstream", "an http(s) base URL", Kind => Option<String>;
    /// Reads `forge.mirror`.
    forge_mirror: "forge.mirror", "an http(s) base URL", Kind => Option<String>;
}

/// Reads the top-level `forge`: a map, whose own keys report their own faults (an unknown key
/// with its suggestion, a key of the wrong type).
fn forges<'de, D: serde::Deserializer<'de>>(d: D) -> Result<RawForges, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    match value {
        serde_yaml::Value::Null => Ok(RawForges::default()),
        serde_yaml::Value::Mapping(_) => {
            serde_yaml::from_value(value).map_err(serde::de::Error::custom)
        }
        other => Err(serde::de::Error::custom(format!(
            "forge: expected a map with `upstream` and `mirror` base URLs, got {}",
            shown_value(&other, Got::Kind)
        ))),
    }
}

/// Reads a recipe's `stability_window`: a whole number of seconds from 1 to
/// [`MAX_STABILITY_WINDOW_SECS`].
fn window_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let value = serde_yaml::Value::deserialize(d)?;
    if value.is_null() {
        return Ok(None);
    }
    match value.as_u64() {
        Some(w) if (1..=MAX_STABILITY_WINDOW_SECS).contains(&w) => Ok(Some(w)),
        _ => Err(serde::de::Error::custom(format!(
            "stability_window: expected a whole number of seconds from 1 to {MAX_STABILITY_WINDOW_SECS}, got {}",
            shown_value(&value, Got::Value)
        ))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServing {
    path: Option<String>,
    expect: Option<Vec<u16>>,
    #[serde(default)]
    skip: bool,
}

/// Checks an enrollment's `serving:`: a path that starts with `/` and holds no space or control
/// character (it is sent as the request line's path), statuses from 100 to 599, at least one.
fn serving(raw: Option<RawServing>) -> Result<Serving, String> {
    let Some(raw) = raw else {
        return Ok(Serving::default());
    };
    if let Some(p) = &raw.path {
        if !p.starts_with('/') || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "serving.path {p:?} must start with `/` and hold no space or control character"
            ));
        }
    }
    if let Some(expect) = &raw.expect {
        if expect.is_empty() || expect.iter().any(|s| !(100..=599).contains(s)) {
            return Err(format!(
                "serving.expect {expect:?} must list HTTP statuses (100 to 599), at least one"
            ));
        }
    }
    Ok(Serving {
        path: raw.path,
        expect: raw.expect,
        skip: raw.skip,
    })
}

/// Checks an enrollment's `host_access:`: each entry a host path or a kind, one line of
/// printable text.
fn host_access(raw: Vec<String>) -> Result<Vec<String>, String> {
    raw.into_iter()
        .map(|e| {
            let e = e.trim().to_string();
            if e.is_empty() || e.len() > 4096 || e.chars().any(char::is_control) {
                Err(format!(
                    "host_access: {:?} is not a host path or a kind",
                    e.chars().take(80).collect::<String>()
                ))
            } else {
                Ok(e)
            }
        })
        .collect()
}

/// Checks an enrollment's `secrets:` (a compose secret key and a file for each) and resolves
/// each relative file against `base`, the enrollment file's folder.
fn secret_files(
    raw: BTreeMap<String, String>,
    base: &Path,
) -> Result<BTreeMap<String, PathBuf>, String> {
    raw.into_iter()
        .map(|(key, file)| {
            let key_ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            if !key_ok {
                return Err(format!(
                    "secrets: {:?} is not a compose secret key (letters, digits, `_`, `-`, `.`)",
                    key.chars().take(80).collect::<String>()
                ));
            }
            let file = file.trim();
            if file.is_empty() || file.chars().any(char::is_control) {
                return Err(format!(
                    "secrets: `{key}` needs the path of the file that holds its value"
                ));
            }
            Ok((key, base.join(file)))
        })
        .collect()
}

/// The keys the enrollment parser accepts, level by level, read from its own definitions (so a
/// key added to the parser shows up here, and a document such as the enrollment's JSON Schema can
/// be checked against it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentKeys {
    /// Top-level keys.
    pub top: &'static [&'static str],
    /// Keys of the `forge:` mapping.
    pub forge: &'static [&'static str],
    /// Keys of one `recipes:` entry.
    pub recipe: &'static [&'static str],
}

/// Returns the keys the enrollment parser accepts ([`EnrollmentKeys`]).
pub fn enrollment_keys() -> EnrollmentKeys {
    EnrollmentKeys {
        top: struct_fields::<RawEnrollment>(),
        forge: struct_fields::<RawForges>(),
        recipe: struct_fields::<RawRecipe>(),
    }
}

/// Returns the field names a derived `Deserialize` struct declares, as serde hands them to
/// `deserialize_struct`: the one list `deny_unknown_fields` checks against.
fn struct_fields<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    /// A deserializer that records the fields it is asked for and then gives up.
    struct FieldProbe<'a>(&'a mut &'static [&'static str]);

    impl<'de> serde::Deserializer<'de> for FieldProbe<'_> {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: serde::de::Visitor<'de>>(
            self,
            _: V,
        ) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }

        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("fields recorded"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut fields: &'static [&'static str] = &[];
    // The probe always fails after recording: the error carries nothing to report.
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// The recipe entries alone, read again from the text when one is wrong: reading from the
/// text (not from a parsed value) gives the error the key's path and its line.
#[derive(Deserialize)]
struct LocatedRecipes {
    // Read only for the error that reading it gives.
    #[allow(dead_code)]
    #[serde(default)]
    recipes: Vec<RawRecipe>,
}

/// Returns the error of a recipe entry named by its key and its line: `message` (what reading the
/// entry alone said) unless reading the text again finds the same fault with its place.
fn located_entry_error(text: &str, message: &str) -> String {
    let Err(e) = serde_yaml::from_str::<LocatedRecipes>(text) else {
        return suggest_key(message);
    };
    let full = e.to_string();
    // `recipes[1].deploy_timeout: expected … at line 7 column 21` → the key and the message.
    let without_place = match e.location() {
        Some(l) => full
            .strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
            .unwrap_or(&full)
            .to_string(),
        None => full.clone(),
    };
    let keyed = match without_place.strip_prefix("recipes[") {
        Some(rest) => match rest.find(']') {
            Some(end) => rest[end + 1..]
                .trim_start_matches('.')
                .trim_start_matches(": ")
                .to_string(),
            None => without_place.clone(),
        },
        None => without_place.clone(),
    };
    let keyed = suggest_key(&keyed);
    let Some(place) = e.location() else {
        return keyed;
    };
    // serde_yaml places some errors at the entry's first line: the key's own line is better.
    let key = unknown_key(&keyed).or_else(|| {
        keyed
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    });
    let line = key
        .and_then(|key| {
            text.lines()
                .enumerate()
                .skip(place.line().saturating_sub(1))
                .find(|(_, l)| {
                    l.trim_start()
                        .trim_start_matches("- ")
                        .starts_with(&format!("{key}:"))
                })
                .map(|(i, _)| i + 1)
        })
        .unwrap_or(place.line());
    format!("{keyed} (line {line})")
}

/// Returns the key a message from [`suggest_key`] calls unknown.
fn unknown_key(message: &str) -> Option<&str> {
    let rest = &message[message.find("unknown key `")? + "unknown key `".len()..];
    rest.split_once('`').map(|(key, _)| key)
}

/// Rewrites serde's `unknown field `x`, expected one of `a`, `b`` as `unknown key `x`; did you
/// mean `a`?` with the nearest known key (or the known keys when none is near); other messages
/// are returned as they are.
fn suggest_key(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `").or_else(|| {
        message
            .find(": unknown field `")
            .map(|i| &message[i + ": unknown field `".len()..])
    }) else {
        return message.to_string();
    };
    let prefix = message
        .find("unknown field `")
        .map(|i| &message[..i])
        .unwrap_or("");
    let Some((unknown, known)) = rest.split_once('`') else {
        return message.to_string();
    };
    // The place serde_yaml appends, kept at the end.
    let place = known.find(" at line ").map(|i| &known[i..]).unwrap_or("");
    let names: Vec<&str> = known
        .trim_end_matches(place)
        .split('`')
        .skip(1)
        .step_by(2)
        .collect();
    let nearest = names
        .iter()
        .map(|n| (strsim::damerau_levenshtein(unknown, n), *n))
        .min()
        .filter(|(d, n)| *d <= (n.len() / 3).max(2));
    let hint = match nearest {
        Some((_, n)) => format!("did you mean `{n}`?"),
        None => format!(
            "known keys: {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!("{prefix}unknown key `{unknown}`; {hint}{place}")
}

impl Enrollment {
    /// Returns where each side's token may be sent: the base the file's `forge:` names for that
    /// side, else the one origin (`scheme://host[:port]`) that every HTTP(S) location of the
    /// side shares. `None` when the side's locations are on several hosts (its token then goes
    /// to none of them) or are all local paths, which need no token.
    pub fn token_bases(&self) -> Forges {
        let sole = |urls: Vec<&str>| -> Option<String> {
            let mut origins = urls
                .into_iter()
                .filter_map(|u| url::Url::parse(u).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(|u| u.origin().ascii_serialization());
            let first = origins.next()?;
            origins.all(|o| o == first).then_some(first)
        };
        Forges {
            upstream: self.forges.upstream.clone().or_else(|| {
                sole(
                    self.recipes
                        .iter()
                        .map(|r| r.upstream.url.as_str())
                        .collect(),
                )
            }),
            mirror: self
                .forges
                .mirror
                .clone()
                .or_else(|| sole(self.recipes.iter().map(|r| r.mirror.url.as_str()).collect())),
        }
    }

    /// Loads and validates an enrollment file.
    ///
    /// Fails, naming the file and the entry, on a missing file, invalid YAML, zero recipes, a
    /// duplicate or invalid name, an unknown key, or an unresolvable repository location.
    pub fn load(path: &Path) -> Result<Self, EnrollmentError> {
        let text = crate::bounded_read::read_to_string(path, crate::bounded_read::YAML_FILE)
            .map_err(|source| EnrollmentError::Read {
                path: path.to_path_buf(),
                source,
            })?;
        Self::parse(path, &text)
    }

    /// Parses enrollment YAML; `path` is only used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Self, EnrollmentError> {
        let syntax = |message: String| EnrollmentError::Syntax {
            path: path.to_path_buf(),
            message,
        };
        if text.trim().is_empty() {
            return Err(EnrollmentError::Empty {
                path: path.to_path_buf(),
            });
        }
        // A hostile nesting is refused before the parser, which takes minutes over one.
        crate::bounded_read::check_yaml_depth(text, crate::bounded_read::YAML_DEPTH)
            .map_err(syntax)?;
        let raw: RawEnrollment = serde_yaml::from_str(text).map_err(|e| {
            let full = e.to_string();
            let message = match e.location() {
                Some(l) => full
                    .strip_suffix(&format!(" at line {} column {}", l.line(), l.column()))
                    .unwrap_or(&full),
                None => &full,
            };
            let message = suggest_key(message);
            // serde_yaml gives no place for an unknown key on the first line: it is found here.
            let line = e.location().map(|l| l.line()).or_else(|| {
                let key = unknown_key(&message)?;
                text.lines()
                    .position(|l| l.starts_with(&format!("{key}:")))
                    .map(|i| i + 1)
            });
            match line {
                Some(n) => syntax(format!("{message} (line {n})")),
                None => syntax(message),
            }
        })?;
        let entries = raw.recipes.unwrap_or_default();
        if entries.is_empty() {
            return Err(EnrollmentError::Empty {
                path: path.to_path_buf(),
            });
        }
        let raw_forges = raw.forge;
        for (key, url) in [
            ("upstream", &raw_forges.upstream),
            ("mirror", &raw_forges.mirror),
        ] {
            if let Some(url) = url {
                let shown = crate::secret::shown_location(url);
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(syntax(format!(
                        "forge.{key}: {shown:?} is not an http(s) base URL"
                    )));
                }
                if crate::secret::git_location_carries_credentials(url) {
                    return Err(syntax(format!(
                        "forge.{key}: {shown:?}: credentials do not belong in the enrollment file; use the token settings"
                    )));
                }
            }
        }
        let default_drone_repo = match raw.drone_repo {
            Some(repo) => Some(drone_repo(&repo).map_err(syntax)?),
            None => None,
        };
        let mut recipes = Vec::with_capacity(entries.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, value) in entries.into_iter().enumerate() {
            let index = i + 1;
            let shown_name = value
                .get("name")
                .and_then(|n| n.as_str())
                .map(|n| format!("`{}`", n.escape_debug()))
                .unwrap_or_else(|| "unnamed".to_string());
            let entry = |message: String| EnrollmentError::Entry {
                path: path.to_path_buf(),
                index,
                name: shown_name.clone(),
                message,
            };
            let raw: RawRecipe = serde_yaml::from_value(value)
                .map_err(|e| entry(located_entry_error(text, &e.to_string())))?;
            let name = RecipeName::parse(&raw.name).map_err(|e| entry(e.to_string()))?;
            if let Some((_, first)) = seen.iter().find(|(n, _)| *n == raw.name) {
                return Err(EnrollmentError::Duplicate {
                    path: path.to_path_buf(),
                    name: raw.name,
                    first: *first,
                    second: index,
                });
            }
            seen.push((raw.name.clone(), index));
            let upstream = resolve_location(&raw.upstream, raw_forges.upstream.as_deref())
                .map_err(|m| entry(format!("upstream: {m}")))?;
            let mirror = resolve_location(&raw.mirror, raw_forges.mirror.as_deref())
                .map_err(|m| entry(format!("mirror: {m}")))?;
            if upstream.url == mirror.url {
                return Err(entry("upstream and mirror are the same repository".into()));
            }
            let branch = raw.branch.unwrap_or_else(|| "main".to_string());
            if branch.is_empty() || git2::Branch::name_is_valid(&branch).ok() != Some(true) {
                return Err(entry(format!(
                    "branch {branch:?} is not a valid branch name"
                )));
            }
            let required_stages = raw
                .required_stages
                .map(|list| {
                    list.iter()
                        .map(|s| s.parse::<Stage>())
                        .collect::<Result<Vec<_>, _>>()
                })
                .transpose()
                .map_err(|m| entry(format!("required_stages: {m}")))?;
            if let Some(p) = &raw.health_path {
                if !p.starts_with('/') {
                    return Err(entry(format!("health_path {p:?} must start with `/`")));
                }
            }
            if raw.deploy_timeout == Some(0) {
                return Err(entry("deploy_timeout must be at least 1 second".into()));
            }
            let stability_window = raw.stability_window;
            if let Some(w) = stability_window {
                if let Some(t) = raw.deploy_timeout.filter(|&t| w >= t) {
                    return Err(entry(format!(
                        "stability_window ({w} s) must be shorter than deploy_timeout ({t} s): \
                         no deploy could ever stay up that long in time"
                    )));
                }
            }
            recipes.push(Recipe {
                name,
                upstream,
                mirror,
                branch,
                required_stages,
                test_command: raw.test_command.filter(|c| !c.trim().is_empty()),
                deploy_timeout_secs: raw.deploy_timeout,
                health_path: raw.health_path,
                serving: serving(raw.serving).map_err(entry)?,
                stability_window_secs: stability_window,
                drone_repo: match raw.drone_repo.or_else(|| default_drone_repo.clone()) {
                    Some(repo) => Some(drone_repo(&repo).map_err(entry)?),
                    None => None,
                },
                secrets: secret_files(
                    raw.secrets.unwrap_or_default(),
                    path.parent().unwrap_or(Path::new("")),
                )
                .map_err(entry)?,
                lint_skip: raw
                    .lint_skip
                    .iter()
                    .map(|id| id.trim().to_string())
                    .collect(),
                host_access: host_access(raw.host_access.unwrap_or_default()).map_err(entry)?,
                data_check: raw
                    .data_check
                    .map(DataCheck::checked)
                    .transpose()
                    .map_err(entry)?,
            });
        }
        Ok(Self {
            path: path.to_path_buf(),
            recipes,
            forges: Forges {
                upstream: raw_forges.upstream,
                mirror: raw_forges.mirror,
            },
        })
    }

    /// Returns the enrolled recipe called `name`.
    pub fn get(&self, name: &RecipeName) -> Option<&Recipe> {
        self.recipes.iter().find(|r| &r.name == name)
    }

    /// Returns the recipe whose upstream is the repository a webhook names (by `full_name`, clone
    /// URL or web URL).
    pub fn by_upstream<'a>(
        &self,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Option<&Recipe> {
        let candidates: Vec<&str> = candidates.into_iter().collect();
        self.recipes
            .iter()
            .find(|r| candidates.iter().any(|c| r.upstream.matches(c)))
    }
}

/// Resolves an enrollment location: a URL (`scheme://...` or scp-like `user@host:path`), an
/// absolute path, or `owner/name` against the forge base URL.
fn resolve_location(value: &str, forge: Option<&str>) -> Result<RepoLocation, String> {
    let value = value.trim();
    if value.is_empty() {
        return Err("it is empty".into());
    }
    // Refused before anything quotes it: every message below may show the value.
    if crate::secret::git_location_carries_credentials(value) {
        return Err(format!(
            "{:?}: credentials do not belong in the enrollment file; use the token settings",
            crate::secret::shown_location(value)
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{value:?} contains whitespace or a control character"
        ));
    }
    if let Some(rest) = value.strip_prefix("file://") {
        if !rest.starts_with('/') {
            return Err(format!("{value:?}: a file:// URL needs an absolute path"));
        }
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name: None,
            forge: None,
        });
    }
    if value.contains("://") {
        let parsed = url::Url::parse(value).map_err(|e| {
            format!(
                "{:?} is not a valid URL: {e}",
                crate::secret::without_userinfo(value)
            )
        })?;
        if crate::secret::url_carries_credentials(&parsed) {
            return Err(
                "credentials do not belong in the enrollment file; use the token settings".into(),
            );
        }
        let full_name = forge_full_name(parsed.path());
        let forge = full_name.as_ref().map(|_| {
            let mut base = parsed.clone();
            base.set_path("");
            base.set_query(None);
            base.as_str().trim_end_matches('/').to_string()
        });
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name,
            forge,
        });
    }
    if value.starts_with('/') {
        return Ok(RepoLocation {
            url: value.to_string(),
            full_name: None,
            forge: None,
        });
    }
    if let Some((userhost, path)) = value.split_once(':') {
        if userhost.contains('@') && !path.is_empty() {
            return Ok(RepoLocation {
                url: value.to_string(),
                full_name: forge_full_name(path),
                forge: None,
            });
        }
    }
    let parts: Vec<&str> = value.split('/').collect();
    let valid_part = |p: &str| {
        !p.is_empty()
            && p != "."
            && p != ".."
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    if parts.len() == 2 && parts.iter().all(|p| valid_part(p)) {
        let Some(forge) = forge else {
            return Err(format!(
                "{value:?} is `owner/name` but the file sets no forge base URL for it (top-level `forge:`)"
            ));
        };
        let forge = forge.trim_end_matches('/');
        return Ok(RepoLocation {
            url: format!("{forge}/{value}.git"),
            full_name: Some(value.to_string()),
            forge: Some(forge.to_string()),
        });
    }
    Err(format!(
        "{value:?} is neither a git URL, an absolute path, nor `owner/name`"
    ))
}

/// Returns `owner/name` when a URL path has exactly that shape (with an optional `.git`).
fn forge_full_name(path: &str) -> Option<String> {
    let trimmed = path.trim_matches('/').trim_end_matches(".git");
    let parts: Vec<&str> = trimmed.split('/').collect();
    (parts.len() == 2 && parts.iter().all(|p| !p.is_empty())).then(|| trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_recipe_names_are_accepted() {
        for n in ["a", "0", "custom-html", "my_app-2", &"x".repeat(64)] {
            assert_eq!(RecipeName::parse(n).unwrap().as_str(), n);
        }
    }

    #[test]
    fn names_that_could_escape_a_path_or_confuse_are_rejected() {
        let table = [
            ("", "empty"),
            ("a/b", "path separator"),
            ("..", "start with"),
            ("a..b", "dot"),
            ("Gitea", "start with"),
            ("giTea", "upper-case"),
            ("my app", "whitespace"),
            ("a\0b", "NUL"),
            ("a:b", "character outside"),
            ("-lead", "start with"),
            ("_lead", "start with"),
            ("caf\u{e9}", "character outside"),
        ];
        let long = "x".repeat(65);
        for (name, why) in table {
            let err = RecipeName::parse(name).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        assert!(RecipeName::parse(&long)
            .unwrap_err()
            .to_string()
            .contains("longer than 64"));
    }

    fn load(text: &str) -> Result<Enrollment, EnrollmentError> {
        Enrollment::parse(Path::new("/etc/canon/enrollment.yml"), text)
    }

    #[test]
    fn each_sides_token_is_bound_to_its_forge_or_the_one_host_its_recipes_share() {
        let named = load("forge: {upstream: 'https://git.coopcloud.tech', mirror: 'https://m.example'}\nrecipes:\n  - {name: a, upstream: coop-cloud/a, mirror: ops/a}\n").unwrap();
        assert_eq!(
            named.token_bases(),
            Forges {
                upstream: Some("https://git.coopcloud.tech".into()),
                mirror: Some("https://m.example".into()),
            }
        );
        let one_host = load("recipes:\n  - {name: a, upstream: 'https://up.example/o/a.git', mirror: 'https://m.example:8443/o/a.git'}\n  - {name: b, upstream: 'https://up.example/o/b.git', mirror: 'https://m.example:8443/o/b.git'}\n").unwrap();
        assert_eq!(
            one_host.token_bases(),
            Forges {
                upstream: Some("https://up.example".into()),
                mirror: Some("https://m.example:8443".into()),
            }
        );
        // Recipes on two hosts: the token is bound to neither, so neither gets it.
        let two_hosts = load("recipes:\n  - {name: a, upstream: 'https://up.example/o/a.git', mirror: /srv/m/a}\n  - {name: b, upstream: 'https://other.example/o/b.git', mirror: /srv/m/b}\n").unwrap();
        assert_eq!(two_hosts.token_bases(), Forges::default());
    }

    #[test]
    fn the_known_keys_are_the_parsers_fields() {
        let keys = enrollment_keys();
        assert_eq!(keys.top, ["forge", "drone_repo", "recipes"]);
        assert_eq!(keys.forge, ["upstream", "mirror"]);
        assert!(
            keys.recipe.contains(&"stability_window"),
            "{:?}",
            keys.recipe
        );
        for key in keys.recipe {
            let doc = format!("recipes: [{{name: a, upstream: /u, mirror: /m, {key}: 1}}]");
            if let Err(err) = Enrollment::parse(Path::new("e.yml"), &doc) {
                assert!(!err.to_string().contains("unknown field"), "{key}: {err}");
            }
        }
    }

    const GOOD: &str = "
forge:
  upstream: https://git.coopcloud.tech
  mirror: https://git.autonomic.zone/
recipes:
  - name: custom-html
    upstream: coop-cloud/custom-html
    mirror: recipe-maintainers/custom-html
  - name: local
    upstream: /srv/up/local.git
    mirror: file:///srv/mirror/local.git
    branch: trunk
    required_stages: [install, backup]
    test_command: ./tests/smoke.sh
    deploy_timeout: 120
    host_access: [/var/run/docker.sock, host_network]
    health_path: /health
    serving: {path: /login, expect: [200, 303]}
    stability_window: 15
";

    #[test]
    fn a_good_file_resolves_every_location() {
        let e = load(GOOD).unwrap();
        assert_eq!(e.recipes.len(), 2);
        let ch = &e.recipes[0];
        assert_eq!(
            ch.upstream.url,
            "https://git.coopcloud.tech/coop-cloud/custom-html.git"
        );
        assert_eq!(
            ch.mirror.url,
            "https://git.autonomic.zone/recipe-maintainers/custom-html.git"
        );
        assert_eq!(ch.branch, "main");
        assert_eq!(ch.required_stages, None);
        assert!(ch.upstream.matches("coop-cloud/custom-html"));
        assert!(ch
            .upstream
            .matches("https://git.coopcloud.tech/coop-cloud/custom-html"));
        assert!(ch
            .upstream
            .matches("https://git.coopcloud.tech/coop-cloud/custom-html.git"));
        assert!(!ch.upstream.matches("coop-cloud/custom"));
        let local = &e.recipes[1];
        assert_eq!(local.branch, "trunk");
        assert_eq!(local.host_access, ["/var/run/docker.sock", "host_network"]);
        assert!(ch.host_access.is_empty());
        assert_eq!(
            local.required_stages,
            Some(vec![Stage::Install, Stage::Backup])
        );
        assert!(local.upstream.is_local() && local.mirror.is_local());
        assert_eq!(local.deploy_timeout_secs, Some(120));
        assert_eq!(local.stability_window_secs, Some(15));
        assert_eq!(local.serving.path.as_deref(), Some("/login"));
        assert_eq!(local.serving.expected(), vec![200, 303]);
        assert_eq!(ch.serving, Serving::default());
        assert_eq!(ch.serving.expected(), DEFAULT_SERVING_EXPECT.to_vec());
        assert_eq!(ch.stability_window_secs, None);
        assert_eq!(
            e.by_upstream(["coop-cloud/custom-html"])
                .unwrap()
                .name
                .as_str(),
            "custom-html"
        );
        assert!(e.by_upstream(["someone/else"]).is_none());
    }

    #[test]
    fn empty_or_invalid_files_are_refused_naming_file_and_entry() {
        let table: &[(&str, &str)] = &[
            ("", "enrolls no recipes"),
            ("recipes: []", "enrolls no recipes"),
            ("recipes:", "enrolls no recipes"),
            ("other: 1", "unknown key `other`; known keys: `forge`, `drone_repo`, `recipes` (line 1)"),
            ("recipe: []", "unknown key `recipe`; did you mean `recipes`? (line 1)"),
            ("forge: {}\nrecipe: []", "unknown key `recipe`; did you mean `recipes`? (line 2)"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, colour: red}]", "recipe #1 (`a`): unknown key `colour`; known keys:"),
            ("recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    deploy_timout: 5\n", "recipe #1 (`a`): unknown key `deploy_timout`; did you mean `deploy_timeout`? (line 5)"),
            ("recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    deploy_timeout: 5m\n", "recipe #1 (`a`): deploy_timeout: expected a whole number of seconds, got \"5m\" (line 5)"),
            ("recipes: [{name: A, upstream: /u, mirror: /m}]", "recipe #1 (`A`): invalid recipe name"),
            ("recipes: [{name: ../x, upstream: /u, mirror: /m}]", "must start with"),
            ("recipes: [{name: a/../x, upstream: /u, mirror: /m}]", "path separator"),
            ("recipes: [{name: a, upstream: /u, mirror: /m}, {name: a, upstream: /v, mirror: /n}]", "enrolled twice (entries #1 and #2)"),
            ("recipes: [{name: a, upstream: o/n, mirror: /m}]", "upstream: \"o/n\" is `owner/name` but the file sets no forge"),
            ("recipes: [{name: a, upstream: /u, mirror: /u}]", "same repository"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, required_stages: [deploy]}]", "unknown stage `deploy`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, host_access: ['']}]", "host_access: \"\" is not a host path or a kind"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, host_access: /x}]", "recipe #1 (`a`): host_access: expected a list of host paths or kinds, got \"/x\""),
            ("recipes: [{name: a, upstream: /u, mirror: /m, serving: {path: x}}]", "serving.path \"x\" must start with `/`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, serving: {path: '/a b'}}]", "hold no space or control character"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, serving: {expect: []}}]", "serving.expect [] must list HTTP statuses"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, serving: {expect: [99]}}]", "serving.expect [99] must list"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, serving: {paths: /}}]", "serving: unknown key `paths`; did you mean `path`?"),
            ("recipes: [{name: a, upstream: 'https://x:pw@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: 'https://TOKEN@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: /u, mirror: 'http://user@h/o/n'}]", "credentials"),
            ("recipes: [{name: a, upstream: 'ssh://git:pw@h/o/n', mirror: /m}]", "credentials"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, branch: 'a..b'}]", "not a valid branch"),
            ("recipes: [{name: a, upstream: relative/path/x, mirror: /m}]", "neither a git URL"),
            ("recipes: [{upstream: /u, mirror: /m}]", "recipe #1 (unnamed): missing field `name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 0}]", "recipe #1 (`a`): stability_window: expected a whole number of seconds from 1 to 3600, got 0"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 7200}]", "stability_window: expected a whole number of seconds from 1 to 3600, got 7200"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: -1}]", "stability_window: expected a whole number of seconds from 1 to 3600, got -1"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: ten}]", "stability_window: expected a whole number of seconds from 1 to 3600, got \"ten\""),
            ("recipes: [{name: a, upstream: /u, mirror: /m, stability_window: 2.5}]", "stability_window: expected a whole number of seconds from 1 to 3600, got 2.5"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, deploy_timeout: 30, stability_window: 30}]", "must be shorter than deploy_timeout (30 s)"),
            ("recipes: {", "invalid YAML"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, drone_repo: 'ci/a b'}]", "drone_repo \"ci/a b\" is not `owner/name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, drone_repo: 'ci/..'}]", "drone_repo \"ci/..\" is not `owner/name`"),
            ("drone_repo: 'ci/h?st'\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "drone_repo \"ci/h?st\" is not `owner/name`"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: {'a b': /f}}]", "secrets: \"a b\" is not a compose secret key"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: {k: ''}}]", "secrets: `k` needs the path of the file"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, secrets: [k]}]", "recipe #1 (`a`): secrets: expected a map of compose secret keys to files, got [\"k\"]"),
            // Every typed key: its name, the form it expects and what it got, once, with the
            // line of the key.
            ("recipes: [{name: 5, upstream: /u, mirror: /m}]", "recipe #1 (unnamed): name: expected a recipe name, got 5"),
            ("recipes: [{name: a, upstream: ['https://s3cr3t@h/o/n'], mirror: /m}]", "recipe #1 (`a`): upstream: expected a repository URL, an absolute path or `owner/name`, got a list"),
            ("recipes: [{name: a, upstream: /u, mirror: {url: /m}}]", "recipe #1 (`a`): mirror: expected a repository URL, an absolute path or `owner/name`, got a map"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, branch: [main]}]", "recipe #1 (`a`): branch: expected a branch name, got [\"main\"]"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, required_stages: install}]", "recipe #1 (`a`): required_stages: expected a list of stage names (lint, install, upgrade, backup, restore, custom), got \"install\""),
            ("recipes: [{name: a, upstream: /u, mirror: /m, test_command: [make, test]}]", "recipe #1 (`a`): test_command: expected a shell command, got [\"make\",\"test\"]"),
            ("recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    health_path: 80\n", "recipe #1 (`a`): health_path: expected an HTTP path like `/health`, got 80 (line 5)"),
            ("recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    stability_window: 1m\n", "recipe #1 (`a`): stability_window: expected a whole number of seconds from 1 to 3600, got \"1m\" (line 5)"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, drone_repo: [ci/a]}]", "recipe #1 (`a`): drone_repo: expected a Drone repository `owner/name`, got [\"ci/a\"]"),
            ("recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    lint_skip: healthcheck\n", "recipe #1 (`a`): lint_skip: expected a list of lint rule ids, got \"healthcheck\" (line 5)"),
            ("recipes: [{name: a, upstream: /u, mirror: /m, host_access: {path: /x}}]", "recipe #1 (`a`): host_access: expected a list of host paths or kinds, got {\"path\":\"/x\"}"),
            ("recipes: 5", "recipes: expected a list of recipes, got 5 (line 1)"),
            ("recipes: {name: a}", "recipes: expected a list of recipes, got a map (line 1)"),
            ("drone_repo: [ci/a]\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "drone_repo: expected a Drone repository `owner/name`, got [\"ci/a\"] (line 1)"),
            ("forge: https://h\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "forge: expected a map with `upstream` and `mirror` base URLs, got a string (line 1)"),
            ("forge:\n  upstream: ['https://s3cr3t@h']\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "forge.upstream: expected an http(s) base URL, got a list"),
            ("forge:\n  mirror: 5\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "forge.mirror: expected an http(s) base URL, got 5"),
            ("forge:\n  upstrem: https://h\nrecipes: [{name: a, upstream: /u, mirror: /m}]", "unknown key `upstrem`; did you mean `upstream`?"),
        ];
        for (text, want) in table {
            let err = load(text).unwrap_err().to_string();
            assert!(err.contains("/etc/canon/enrollment.yml"), "{err}");
            assert!(err.contains(want), "{text}: {err}");
            // Each cause once, and a repository location's content never.
            assert!(err.matches("expected").count() <= 1, "{text}: {err}");
            assert!(!err.contains("s3cr3t"), "{text}: {err}");
        }
    }

    #[test]
    fn supplied_secret_files_resolve_against_the_enrollment_files_folder() {
        let e = load(
            "recipes: [{name: a, upstream: /u, mirror: /m, secrets: {orchid_client_secret: secrets/orcid, ovh_consumer_key: /run/ovh}}]",
        )
        .unwrap();
        let secrets = &e.recipes[0].secrets;
        assert_eq!(
            secrets["orchid_client_secret"],
            Path::new("/etc/canon/secrets/orcid")
        );
        assert_eq!(secrets["ovh_consumer_key"], Path::new("/run/ovh"));
        let none = load("recipes: [{name: a, upstream: /u, mirror: /m}]").unwrap();
        assert!(none.recipes[0].secrets.is_empty());
    }

    #[test]
    fn lint_skip_lists_rule_ids_per_recipe_and_defaults_to_none() {
        let e = load(
            "recipes:\n  - {name: a, upstream: /u, mirror: /m, lint_skip: [healthcheck, ' image-tag ']}\n  - {name: b, upstream: /v, mirror: /n}\n",
        )
        .unwrap();
        assert_eq!(e.recipes[0].lint_skip, vec!["healthcheck", "image-tag"]);
        assert!(e.recipes[1].lint_skip.is_empty());
        let err = load("recipes: [{name: a, upstream: /u, mirror: /m, lint_skip: {x: 1}}]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("recipe #1 (`a`)"), "{err}");
        assert_eq!("lint".parse::<Stage>(), Ok(Stage::Lint));
        assert_eq!(Stage::ALL[0], Stage::Lint);
    }

    #[test]
    fn a_data_check_names_three_commands_and_a_wrong_one_is_refused_naming_the_key() {
        let e = load(
            "recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    data_check:\n      seed: ./seed\n      change: ./change\n      verify: ./verify\n  - {name: b, upstream: /v, mirror: /n}\n",
        )
        .unwrap();
        let check = e.recipes[0].data_check.as_ref().expect("a data_check");
        assert_eq!(
            check.steps(),
            [
                ("seed", "./seed"),
                ("change", "./change"),
                ("verify", "./verify")
            ]
        );
        assert_eq!(e.recipes[1].data_check, None);
        let entry = "recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    data_check:";
        for (text, want) in [
            (
                format!("{entry} ./check.sh\n"),
                "recipe #1 (`a`): data_check: invalid type: string \"./check.sh\", expected a mapping of three commands: `seed`, `change` and `verify` (line 5)",
            ),
            (
                format!("{entry} {{seed: s, change: c}}\n"),
                "recipe #1 (`a`): data_check: missing field `verify` (line 5)",
            ),
            (
                format!("{entry} {{seed: s, change: c, verify: v, verfy: w}}\n"),
                "recipe #1 (`a`): data_check: unknown key `verfy`; did you mean `verify`?",
            ),
            (
                format!("{entry} {{seed: s, change: ' ', verify: v}}\n"),
                "recipe #1 (`a`): data_check.change is empty: give it a command",
            ),
            (
                format!("{entry} {{seed: s, change: c, verify: [v]}}\n"),
                "recipe #1 (`a`): data_check.verify: invalid type: sequence, expected a string",
            ),
        ] {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let err = Enrollment::load(Path::new("/nonexistent/enroll.yml")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/enroll.yml"));
        assert!(matches!(err, EnrollmentError::Read { .. }));
    }

    #[test]
    fn http_user_info_is_refused_without_echoing_it_and_an_ssh_login_user_is_kept() {
        for text in [
            "recipes: [{name: a, upstream: 'https://s3cr3t@h/o/n', mirror: /m}]",
            "recipes: [{name: a, upstream: 'https://s3cr3t@[bad/o/n', mirror: /m}]",
        ] {
            let err = load(text).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        let ok = load("recipes: [{name: a, upstream: 'ssh://git@h/o/n', mirror: /m}]").unwrap();
        assert_eq!(ok.recipes[0].upstream.url, "ssh://git@h/o/n");
    }
}
