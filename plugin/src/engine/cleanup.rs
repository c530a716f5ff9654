//! What the sweep asks of the engine: removing what killed cold runs left behind (every object is
//! labelled, [`super::labels`]), and the sizes of a stack's volumes (the warm canonicals').

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::client::{docker, inspect_json, list_ids, run, STOP_TIMEOUT};
use super::cmd::{self, Kind};
use super::labels::{self, label_map, now_unix};
use super::EngineError;

/// What [`cleanup_stale`] removed (or, on a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    /// True when nothing was removed.
    pub dry_run: bool,
    /// `(kind, name)` of each stale object.
    pub removed: Vec<(String, String)>,
    /// How many labelled objects were kept: warm, shared, or younger than the limit.
    pub kept: usize,
    /// Objects that could not be removed, with the reason.
    pub failed: Vec<String>,
}

fn object_name_and_labels(kind: Kind, v: &Value) -> (String, BTreeMap<String, String>) {
    let (name, labels) = match kind {
        Kind::Container => (
            v["Name"]
                .as_str()
                .unwrap_or_default()
                .trim_start_matches('/'),
            &v["Config"]["Labels"],
        ),
        Kind::Service | Kind::Secret => (
            v["Spec"]["Name"].as_str().unwrap_or_default(),
            &v["Spec"]["Labels"],
        ),
        Kind::Volume | Kind::Network => (v["Name"].as_str().unwrap_or_default(), &v["Labels"]),
    };
    (name.to_string(), label_map(labels))
}

/// Returns true when an object with these labels is a cold run's leftover older than the
/// cutoff. Warm canonicals (`warm-*`, `canon.kind=warm|warm-prev`) and shared objects never are.
pub fn is_stale(labels: &BTreeMap<String, String>, now: u64, older_than: Duration) -> bool {
    let stack = labels
        .get(labels::STACK_NAME_LABEL)
        .map(String::as_str)
        .unwrap_or("");
    let kind = labels
        .get(labels::KIND_LABEL)
        .map(String::as_str)
        .unwrap_or("");
    if stack.is_empty() || stack.starts_with("warm-") || !matches!(kind, "cold" | "helper") {
        return false;
    }
    let Some(created) = labels
        .get(labels::CREATED_LABEL)
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return false;
    };
    now.saturating_sub(created) >= older_than.as_secs()
}

/// Removes cold-run stacks, containers, volumes, secrets and networks (all labelled
/// `canon.managed=true`) older than `older_than`, e.g. what a SIGKILLed run left. Never touches
/// the warm canonicals. With `dry_run`, only reports.
pub fn cleanup_stale(older_than: Duration, dry_run: bool) -> Result<CleanupReport, EngineError> {
    cleanup_stale_of(None, older_than, dry_run)
}

/// [`cleanup_stale`] limited to the objects of one recipe (`canon.recipe`) when `recipe` is
/// given: a killed run's leftovers can be removed at once without touching other runs.
pub fn cleanup_stale_of(
    recipe: Option<&str>,
    older_than: Duration,
    dry_run: bool,
) -> Result<CleanupReport, EngineError> {
    let now = now_unix();
    let mut report = CleanupReport {
        dry_run,
        ..CleanupReport::default()
    };
    let mut stale: Vec<(Kind, String, String)> = Vec::new();
    let mut stacks = BTreeSet::new();
    for kind in Kind::ALL {
        let ids = list_ids(kind, labels::MANAGED_LABEL)?;
        for obj in inspect_json(kind, &ids)? {
            let (name, labels) = object_name_and_labels(kind, &obj);
            let in_scope = recipe
                .is_none_or(|r| labels.get(labels::RECIPE_LABEL).map(String::as_str) == Some(r));
            if in_scope && is_stale(&labels, now, older_than) {
                let id = obj["ID"]
                    .as_str()
                    .or_else(|| obj["Id"].as_str())
                    .unwrap_or(&name)
                    .to_string();
                if kind == Kind::Service {
                    if let Some(s) = labels.get(labels::STACK_NAME_LABEL) {
                        stacks.insert(s.clone());
                    }
                }
                stale.push((kind, id, name));
            } else {
                report.kept += 1;
            }
        }
    }
    report.removed = stale
        .iter()
        .map(|(k, _, n)| (k.as_str().to_string(), n.clone()))
        .collect();
    if dry_run {
        return Ok(report);
    }
    for s in &stacks {
        if let Err(e) = docker(&cmd::stack_rm(s)) {
            report.failed.push(e.to_string());
        }
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    for kind in [Kind::Container, Kind::Volume, Kind::Secret, Kind::Network] {
        let ids: Vec<String> = stale
            .iter()
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, id, _)| id.clone())
            .collect();
        for id in ids {
            loop {
                match run(&cmd::remove(kind, std::slice::from_ref(&id))) {
                    Ok(o) if o.success() => break,
                    Ok(o) if o.stderr.contains("No such") || o.stderr.contains("not found") => {
                        break
                    }
                    Ok(o) if Instant::now() < deadline && o.stderr.contains("in use") => {
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Ok(o) => {
                        report
                            .failed
                            .push(format!("{} {id}: {}", kind.as_str(), o.stderr.trim()));
                        break;
                    }
                    Err(e) => {
                        report.failed.push(e.to_string());
                        break;
                    }
                }
            }
        }
    }
    Ok(report)
}

/// One volume and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeSize {
    /// The engine name (`<stack>_<key>`, e.g. `warm-<recipe>_<key>`).
    pub name: String,
    /// The size as docker reports it (`12.3MB`).
    pub size: String,
    /// The size in bytes, when it parses.
    pub bytes: Option<u64>,
}

/// Parses docker's human sizes (`0B`, `1.5kB`, `12MB`, decimal units) into bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let (num, unit) = text.split_at(split);
    let num: f64 = num.trim().parse().ok()?;
    let factor: f64 = match unit {
        "B" => 1.0,
        "kB" | "KB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((num * factor).round() as u64)
}

/// Returns the size of each volume of the stack `stack` (`<stack>_<key>`), leaving out the copies
/// a promote keeps (`.prev`).
pub fn volume_sizes(stack: &str) -> Result<Vec<VolumeSize>, EngineError> {
    let prefix = format!("{stack}_");
    let out = docker(&cmd::volume_sizes())?;
    let rows: Vec<Value> =
        serde_json::from_str(out.stdout.trim()).map_err(|source| EngineError::Json {
            command: "docker system df".to_string(),
            source,
        })?;
    let mut sizes: Vec<VolumeSize> = rows
        .iter()
        .filter_map(|r| {
            let name = r["Name"].as_str()?;
            let size = r["Size"].as_str().unwrap_or_default();
            (name.starts_with(&prefix) && !name.ends_with(".prev")).then(|| VolumeSize {
                name: name.to_string(),
                size: size.to_string(),
                bytes: parse_size(size),
            })
        })
        .collect();
    sizes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_old_cold_objects_are_stale_and_warm_ones_never() {
        let day = Duration::from_secs(86_400);
        let now = 10 * 86_400;
        let old = (now - 2 * 86_400).to_string();
        let young = (now - 60).to_string();
        let table = [
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", old.as_str()),
                ],
                true,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "helper"),
                    ("canon.created", old.as_str()),
                ],
                true,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", young.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "warm-a"),
                    ("canon.kind", "cold"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "warm-a"),
                    ("canon.kind", "helper"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "x"),
                    ("canon.kind", "warm"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![
                    ("canon.stack", "x"),
                    ("canon.kind", "warm-prev"),
                    ("canon.created", old.as_str()),
                ],
                false,
            ),
            (
                vec![("canon.kind", "shared"), ("canon.created", old.as_str())],
                false,
            ),
            (
                vec![("canon.stack", "cold-a-1-1"), ("canon.kind", "cold")],
                false,
            ),
            (
                vec![
                    ("canon.stack", "cold-a-1-1"),
                    ("canon.kind", "cold"),
                    ("canon.created", "soon"),
                ],
                false,
            ),
        ];
        for (pairs, want) in table {
            assert_eq!(is_stale(&labels(&pairs), now, day), want, "{pairs:?}");
        }
    }

    #[test]
    fn docker_sizes_parse_in_decimal_units() {
        assert_eq!(parse_size("0B"), Some(0));
        assert_eq!(parse_size("1.5kB"), Some(1500));
        assert_eq!(parse_size("12MB"), Some(12_000_000));
        assert_eq!(parse_size("2.1GB"), Some(2_100_000_000));
        assert_eq!(parse_size("N/A"), None);
        assert_eq!(parse_size("12XB"), None);
    }
}
