//! Value parsers: one function per kind of setting value (booleans, durations, lists, sizes,
//! counts, exit codes, commit ids, base URLs), each returning a sentence that names the setting when the
//! value is bad.
//!
//! Pure functions over one string, separate from validation so each can be tested on its own
//! and reused by every setting of its kind.

use std::collections::BTreeMap;
use std::time::Duration;

use url::Url;

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
pub(super) fn parse_env_items(
    name: &str,
    items: &[String],
) -> Result<BTreeMap<String, String>, String> {
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
pub fn parse_commit(value: &str) -> Option<String> {
    let v = value.trim();
    ((v.len() == 40 || v.len() == 64) && v.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| v.to_ascii_lowercase())
}

/// Parses a git repository location: a URL (http(s) without user info, `ssh://`, `file://`), an
/// scp-like `user@host:path`, or an absolute path.
pub fn parse_git_location(name: &str, value: &str) -> Result<String, String> {
    let v = value.trim();
    let shown = canon_shared::secret::without_userinfo(v);
    if v.contains("://") {
        let url =
            Url::parse(v).map_err(|e| format!("`{name}` is not a valid URL ({shown:?}): {e}"))?;
        if canon_shared::secret::url_carries_credentials(&url) {
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
    let shown = canon_shared::secret::without_userinfo(v);
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
}
