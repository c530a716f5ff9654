//! Value parsers: one function per kind of setting value (booleans, durations, lists, sizes,
//! counts, exit codes, commit ids), each returning a sentence that names the setting when the
//! value is bad.
//!
//! Pure functions over one string, separate from validation so each can be tested on its own
//! and reused by every setting of its kind.

use std::collections::BTreeMap;
use std::time::Duration;

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
}
