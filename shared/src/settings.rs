//! The settings machinery both binaries share: the problem list that reports every bad setting
//! at once ([`Problems`], [`SettingsError`]), the raw values read from `(name, value)` pairs
//! ([`RawValues`]), the kinds a settings table names ([`SettingType`]), and one parser per kind of
//! value (booleans, durations, lists, sizes, counts, exit codes, commit ids, URLs, secret files).
//!
//! Separate from each binary's settings because the rules are the same for both: an empty value
//! is unset, a bad value is a sentence naming the setting, never the secret it holds, and every
//! problem is collected before anything stops. Each binary keeps one declarative table of its own
//! settings (canon-plugin's `PLUGIN_*`, canon-listener's `CANON_*`) and the validated types; this
//! module never reads the process environment, only the pairs it is given.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use url::Url;

use crate::commit::CommitId;
use crate::secret::Secret;

/// How a [`SettingsError`] introduces its problems, as each binary has always printed them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Heading {
    /// `N problem(s) with the settings:` (canon-plugin).
    #[default]
    Counted,
    /// `invalid settings:` (canon-listener).
    Invalid,
}

/// Bad settings: every problem, one per line, each naming the setting. Exit code 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// Each problem as a sentence naming the setting.
    pub problems: Vec<String>,
    /// The line before the problems.
    pub heading: Heading,
}

impl SettingsError {
    /// Returns the error of `problems`, introduced as canon-plugin introduces them.
    pub fn new(problems: Vec<String>) -> Self {
        Self {
            problems,
            heading: Heading::Counted,
        }
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.heading {
            Heading::Counted => write!(f, "{} problem(s) with the settings:", self.problems.len())?,
            Heading::Invalid => write!(f, "invalid settings:")?,
        }
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// The problems found so far, each a sentence naming the setting; they become one
/// [`SettingsError`] at the end instead of stopping at the first.
#[derive(Debug, Default)]
pub struct Problems {
    /// The problems, in the order they print.
    found: Vec<String>,
    /// How the error introduces them.
    heading: Heading,
}

impl Problems {
    /// Returns an empty list whose error is introduced with `heading`.
    pub fn new(heading: Heading) -> Self {
        Self {
            found: Vec::new(),
            heading,
        }
    }

    /// Records one problem.
    pub fn push(&mut self, problem: impl Into<String>) {
        self.found.push(problem.into());
    }

    /// Returns the parsed value, or records why it did not parse and returns `None`.
    pub fn check<T>(&mut self, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|problem| self.push(problem)).ok()
    }

    /// Moves every problem of `other` to the end of this list.
    pub fn append(&mut self, other: Problems) {
        self.found.extend(other.found);
    }

    /// Returns every recorded problem as one error, or `Ok` when there is none.
    pub fn into_result(self) -> Result<(), SettingsError> {
        if self.found.is_empty() {
            Ok(())
        } else {
            Err(SettingsError {
                problems: self.found,
                heading: self.heading,
            })
        }
    }
}

/// What a setting holds, as the settings tables (and the plugin index) name types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingType {
    /// Free text.
    String,
    /// `true` or `false`.
    Boolean,
    /// A whole number.
    Number,
    /// A duration like `30m`, `90s`, `1h 30m`.
    Duration,
    /// A list: comma-joined, or JSON when the value starts with `[` or `{`.
    Array,
}

impl SettingType {
    /// Returns the type's name as the settings reference and the plugin card show it.
    pub fn as_str(self) -> &'static str {
        match self {
            SettingType::String => "string",
            SettingType::Boolean => "boolean",
            SettingType::Number => "number",
            SettingType::Duration => "duration",
            SettingType::Array => "array",
        }
    }
}

/// Raw setting values by setting name, exactly as they arrived. An empty (or all-blank) value is
/// unset, because Drone sets a `from_secret` whose secret is missing to `""`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RawValues(BTreeMap<&'static str, String>);

impl RawValues {
    /// Reads `pairs` (variable, value): `setting_of` names the setting a variable carries, `None`
    /// for a variable that is not a setting (skipped). A later pair wins over an earlier one.
    pub fn from_pairs<I, K, V>(pairs: I, setting_of: impl Fn(&str) -> Option<&'static str>) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let mut values = RawValues::default();
        for (variable, value) in pairs {
            if let Some(name) = setting_of(variable.as_ref()) {
                values.set(name, value);
            }
        }
        values
    }

    /// Sets the setting `name` (a blank value unsets it).
    pub fn set(&mut self, name: &'static str, value: impl Into<String>) {
        let value = value.into();
        if value.trim().is_empty() {
            self.0.remove(name);
        } else {
            self.0.insert(name, value);
        }
    }

    /// Returns the value of `name`, `None` when it is unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// Returns `self` with every unset value taken from `fallback` (flags over variables).
    pub fn or(mut self, fallback: RawValues) -> RawValues {
        for (name, value) in fallback.0 {
            self.0.entry(name).or_insert(value);
        }
        self
    }
}

/// Returns the whole number `value` when it lies in `range`.
pub fn whole_number_in(value: &str, range: RangeInclusive<u64>) -> Option<u64> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
}

/// Returns the duration `value` (like `10s`, `15m`, `30days`) when it is longer than zero.
pub fn positive_duration(value: &str) -> Option<Duration> {
    humantime::parse_duration(value.trim())
        .ok()
        .filter(|d| !d.is_zero())
}

/// Why a value is not an `http(s)` URL without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpUrlProblem {
    /// It does not parse as a URL (the parser's reason).
    NotAUrl(String),
    /// It parses, but its scheme is not `http(s)` or it carries a user or password.
    NotHttpOrCarriesCredentials,
}

/// Returns `value` as an `http(s)` URL with no user or password, without a trailing `/`.
pub fn http_url_without_credentials(value: &str) -> Result<String, HttpUrlProblem> {
    match Url::parse(value) {
        Ok(u)
            if matches!(u.scheme(), "http" | "https")
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Ok(value.trim_end_matches('/').to_string())
        }
        Ok(_) => Err(HttpUrlProblem::NotHttpOrCarriesCredentials),
        Err(e) => Err(HttpUrlProblem::NotAUrl(e.to_string())),
    }
}

/// Returns the secrets of a comma-separated list (blank items skipped).
pub fn secret_list(value: &str) -> Vec<Secret> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Secret::new)
        .collect()
}

/// The largest secret file read: tokens and keys are far smaller, and a path to something endless
/// (`/dev/zero`) must not hang the run or fill its memory.
pub const MAX_SECRET_FILE_BYTES: usize = 64 * 1024;

/// How a secret file's content becomes the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretContent {
    /// A token: surrounding whitespace (the final newline an editor adds) is trimmed.
    Token,
    /// A private key: read as is.
    Key,
}

/// Returns the secret `name` from its value, or from the file its `{name}_file` setting names
/// (relative paths under `base`). Both given is a problem, and so is a file that cannot be used;
/// no problem ever shows the content.
pub fn secret_or_file(
    name: &str,
    value: Option<&str>,
    file: Option<&str>,
    content: SecretContent,
    base: &Path,
    problems: &mut Problems,
) -> Option<Secret> {
    match (value, file) {
        (None, None) => None,
        (Some(value), None) => Some(Secret::new(value)),
        (Some(_), Some(_)) => {
            problems.push(format!(
                "`{name}` and `{name}_file` are both set; give one (the file keeps the secret off command lines)"
            ));
            None
        }
        (None, Some(file)) => problems.check(read_secret_file(name, &base.join(file), content)),
    }
}

/// Reads the secret `name` from `path`. An empty file (or one of whitespace only) is a problem,
/// not an unset secret: a file that was named but came out empty is a broken mount or a
/// truncated copy, and running without the secret would fail later and less clearly.
pub fn read_secret_file(name: &str, path: &Path, content: SecretContent) -> Result<Secret, String> {
    let setting = format!("{name}_file");
    let cannot_read =
        |e: std::io::Error| format!("`{setting}`: cannot read {}: {e}", path.display());
    let mut bytes = Vec::new();
    // A regular file only: a FIFO or `/dev/stdin` would stall the start, a device never end.
    crate::bounded_read::open(path)
        .and_then(|f| {
            f.take(MAX_SECRET_FILE_BYTES as u64 + 1)
                .read_to_end(&mut bytes)
        })
        .map_err(cannot_read)?;
    if bytes.len() > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "`{setting}`: {} is larger than {} KiB; it must hold only the secret",
            path.display(),
            MAX_SECRET_FILE_BYTES / 1024
        ));
    }
    // The decoding error is not shown: it would point into the content.
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("`{setting}`: {} is not UTF-8 text", path.display()))?;
    if text.trim().is_empty() {
        return Err(format!(
            "`{setting}`: {} is empty; it must hold the secret (leave `{setting}` unset for none)",
            path.display()
        ));
    }
    Ok(Secret::new(match content {
        SecretContent::Token => text.trim().to_string(),
        SecretContent::Key => text,
    }))
}

/// Parses a boolean setting: `true` or `false` (any case).
pub fn parse_bool(name: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "`{name}` must be true or false, not {:?}",
            value.trim()
        )),
    }
}

/// Parses a duration setting like `30m`, `90s`, `1h 30m`.
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value.trim())
        .map_err(|e| format!("`{name}` must be a duration like 30m or 90s, not {value:?}: {e}"))
}

/// Parses a list setting: JSON when it starts with `[` or `{` (Drone turns lists with maps, and
/// maps, into JSON), otherwise comma-joined (Drone's encoding of a list of scalars). A JSON map
/// becomes `KEY=VALUE` items.
pub fn parse_list(name: &str, value: &str) -> Result<Vec<String>, String> {
    let v = value.trim();
    if v.starts_with('[') || v.starts_with('{') {
        let json: serde_json::Value = serde_json::from_str(v)
            .map_err(|e| format!("`{name}` starts like JSON but is not valid JSON: {e}"))?;
        let scalar = |x: &serde_json::Value| match x {
            serde_json::Value::String(s) => Ok(s.clone()),
            serde_json::Value::Number(n) => Ok(n.to_string()),
            serde_json::Value::Bool(b) => Ok(b.to_string()),
            other => Err(format!(
                "`{name}`: items must be strings, numbers or booleans, not {other}"
            )),
        };
        return match json {
            serde_json::Value::Array(items) => items.iter().map(scalar).collect(),
            serde_json::Value::Object(map) => map
                .iter()
                .map(|(k, x)| scalar(x).map(|x| format!("{k}={x}")))
                .collect(),
            _ => Err(format!("`{name}` must be a list")),
        };
    }
    Ok(v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect())
}

/// Parses `KEY=VALUE` items into an environment map; keys must be shell-style names.
pub fn parse_env_items(name: &str, items: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for item in items {
        let Some((k, v)) = item.split_once('=') else {
            return Err(format!("`{name}`: {item:?} is not KEY=VALUE"));
        };
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!("`{name}`: {k:?} is not a valid variable name"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// Parses a size: bytes, or a number with `K`, `M`, `G` or `T` (powers of 1024; `KB`, `KiB`,
/// `GB`, `GiB` and lower case are read the same).
pub fn parse_size(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let num: f64 = num.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    let bytes = num * (1u64 << shift) as f64;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// Parses a count that must be above 0, like `jobs`.
pub fn parse_count(name: &str, value: &str) -> Result<usize, String> {
    let v = value.trim();
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "`{name}` must be a whole number above 0, not {v:?}"
        )),
    }
}

/// Parses a process exit code (0 to 255).
pub fn parse_exit_code(name: &str, value: &str) -> Result<u8, String> {
    let v = value.trim();
    v.parse::<u8>()
        .map_err(|_| format!("`{name}` must be a number from 0 to 255, not {v:?}"))
}

/// Returns the lower-cased commit when it is full hex (40 for SHA-1, 64 for SHA-256).
pub fn parse_commit(value: &str) -> Option<CommitId> {
    CommitId::parse(&value.trim().to_ascii_lowercase()).ok()
}

/// Parses a git repository location: a URL (http(s) without user info, `ssh://`, `file://`), an
/// scp-like `user@host:path`, or an absolute path.
pub fn parse_git_location(name: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    let shown = crate::secret::shown_location(v);
    if crate::secret::git_location_carries_credentials(v) {
        return Err(format!(
            "`{name}` must not carry credentials ({shown:?}); set `mirror_token` or `ssh_key`"
        ));
    }
    if v.contains("://") {
        let url =
            Url::parse(v).map_err(|e| format!("`{name}` is not a valid URL ({shown:?}): {e}"))?;
        if crate::secret::url_carries_credentials(&url) {
            return Err(format!(
                "`{name}` must not carry credentials ({shown:?}); set `mirror_token` or `ssh_key`"
            ));
        }
        if !matches!(url.scheme(), "http" | "https" | "ssh" | "file") {
            return Err(format!(
                "`{name}` must be an http(s), ssh or file URL, not {shown:?}"
            ));
        }
        return Ok(v.to_string());
    }
    if v.starts_with('/') || (v.contains(':') && v.contains('@')) {
        return Ok(v.to_string());
    }
    Err(format!(
        "`{name}` must be a git URL, `user@host:path` or an absolute path, not {shown:?}"
    ))
}

/// Parses the base URL of an HTTP API (like `listener_url`): `http` or `https` with a host, and
/// no user, password, query or fragment. The path gets a trailing `/`, so [`Url::join`] with a
/// relative path (`api/jobs`) stays under it instead of replacing its last segment.
///
/// A user or password is refused rather than kept: these settings are not secrets, so Drone would
/// show them with the step's settings. A refused value is shown with its user info masked.
pub fn parse_base_url(name: &str, value: &str) -> Result<Url, String> {
    let v = value.trim();
    let shown = crate::secret::without_userinfo(v);
    let mut url = Url::parse(v).map_err(|e| {
        format!("`{name}` must be an http(s) URL like http://127.0.0.1:8088, not {shown:?}: {e}")
    })?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{name}` must not carry a user or password, not {shown:?}: it is not a secret setting"
        ));
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{name}` must be an http(s) URL, not {shown:?}"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{name}` must be a base URL without a query or fragment, not {shown:?}"
        ));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_comma_joined_or_json() {
        assert_eq!(parse_list("x", "a, b,,c").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_list("x", r#"["a,b", 1]"#).unwrap(), ["a,b", "1"]);
        assert_eq!(parse_list("x", r#"{"K":"v"}"#).unwrap(), ["K=v"]);
        assert!(parse_list("x", "[oops")
            .unwrap_err()
            .contains("not valid JSON"));
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_duration("t", "1h 30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(parse_duration("t", "0s").unwrap(), Duration::ZERO);
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("1048576"), Some(1 << 20));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size("500 mb"), Some(500 << 20));
        assert_eq!(parse_size("ten"), None);
        assert_eq!(parse_size("5X"), None);
    }

    #[test]
    fn base_urls_are_http_or_https_and_end_with_a_slash() {
        for (value, want) in [
            ("http://127.0.0.1:8088", "http://127.0.0.1:8088/"),
            ("  http://localhost:8088/  ", "http://localhost:8088/"),
            (
                "https://canon.example.org/listener",
                "https://canon.example.org/listener/",
            ),
            (
                "https://canon.example.org/listener/",
                "https://canon.example.org/listener/",
            ),
            ("HTTPS://Canon.Example.org", "https://canon.example.org/"),
        ] {
            let url = parse_base_url("listener_url", value).unwrap();
            assert_eq!(url.as_str(), want, "{value:?}");
        }
        let base = parse_base_url("listener_url", "https://canon.example.org/listener").unwrap();
        assert_eq!(
            base.join("api/jobs").unwrap().as_str(),
            "https://canon.example.org/listener/api/jobs"
        );
    }

    #[test]
    fn bad_base_urls_name_the_setting_and_never_show_credentials() {
        for (value, want) in [
            ("listener", "must be an http(s) URL like"),
            ("http://", "must be an http(s) URL like"),
            ("canon.example.org:8088", "must be an http(s) URL, not"),
            ("ftp://canon.example.org/", "must be an http(s) URL, not"),
            ("file:///run/canon.sock", "must be an http(s) URL, not"),
            (
                "http://listener:8088/?recipe=x",
                "without a query or fragment",
            ),
            ("http://listener:8088/#jobs", "without a query or fragment"),
            (
                "http://canon:hunter2@listener:8088/",
                "must not carry a user or password",
            ),
            (
                "https://hunter2@listener/",
                "must not carry a user or password",
            ),
            (
                "http://canon:hunt@er2@listener/",
                "must not carry a user or password",
            ),
            (
                "ftp://canon:hunter2@listener/",
                "must not carry a user or password",
            ),
            (
                "http://canon:hunter2@listener:port/",
                "must be an http(s) URL like",
            ),
            ("canon:hunter2@listener", "must be an http(s) URL, not"),
        ] {
            let err = parse_base_url("listener_url", value).unwrap_err();
            assert!(err.starts_with("`listener_url` "), "{value:?}: {err}");
            assert!(err.contains(want), "{value:?}: {err}");
            for secret in ["hunter2", "er2", "canon:"] {
                assert!(!err.contains(secret), "{value:?} shows {secret:?}: {err}");
            }
        }
    }
    #[test]
    fn blank_values_are_unset_and_earlier_values_win_in_or() {
        let mut flags = RawValues::default();
        flags.set("a", "flag");
        flags.set("b", "  ");
        let env =
            RawValues::from_pairs([("X_A", "env"), ("X_B", "env"), ("Y", "no")], |v| match v {
                "X_A" => Some("a"),
                "X_B" => Some("b"),
                _ => None,
            });
        let raw = flags.or(env);
        assert_eq!(raw.get("a"), Some("flag"));
        assert_eq!(raw.get("b"), Some("env"));
        assert_eq!(raw.get("y"), None);
    }

    #[test]
    fn every_problem_is_listed_under_its_binarys_heading() {
        let mut p = Problems::new(Heading::Invalid);
        p.push("one");
        p.push("two");
        assert_eq!(
            p.into_result().unwrap_err().to_string(),
            "invalid settings:\n  - one\n  - two"
        );
        let mut p = Problems::default();
        assert_eq!(p.check(parse_count("jobs", "0")), None);
        assert!(p.check(parse_count("jobs", "3")).is_some());
        assert_eq!(
            p.into_result().unwrap_err().to_string(),
            "1 problem(s) with the settings:\n  - `jobs` must be a whole number above 0, not \"0\""
        );
        assert_eq!(Problems::default().into_result(), Ok(()));
    }

    #[test]
    fn numbers_durations_and_urls_for_variables() {
        assert_eq!(whole_number_in(" 8 ", 1..=1000), Some(8));
        assert_eq!(whole_number_in("0", 1..=1000), None);
        assert_eq!(positive_duration("0s"), None);
        assert_eq!(positive_duration("30"), None);
        assert_eq!(positive_duration("2s"), Some(Duration::from_secs(2)));
        assert_eq!(
            http_url_without_credentials("https://drone.example/").as_deref(),
            Ok("https://drone.example")
        );
        assert_eq!(
            http_url_without_credentials("https://u@drone.example"),
            Err(HttpUrlProblem::NotHttpOrCarriesCredentials)
        );
        assert!(matches!(
            http_url_without_credentials("nowhere"),
            Err(HttpUrlProblem::NotAUrl(_))
        ));
        assert_eq!(secret_list(" a , ,b").len(), 2);
    }
}
