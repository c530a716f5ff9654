//! The sweep's upkeep around the runs: removing what killed runs left behind, the free-space
//! floor below which no run starts, and the sizes the report shows (mirror cache, warm volumes).

use std::path::{Path, PathBuf};

use canon_shared::recipe::Recipe;

use super::blocking;
use crate::settings::{RunnerKind, Settings};

/// Removes what killed cold runs left behind (docker runner); never touches `warm-*`.
/// Returns what it did, one line per object, and whether anything failed.
pub(super) async fn cleanup(settings: &Settings) -> (Vec<String>, bool) {
    let (older, dry) = (settings.cleanup_after, settings.dry_run);
    match blocking(move || crate::engine::cleanup_stale(older, dry).map_err(|e| e.to_string()))
        .await
    {
        Ok(r) => {
            let verb = if r.dry_run { "would remove" } else { "removed" };
            let mut lines: Vec<String> = r
                .removed
                .iter()
                .map(|(kind, name)| format!("{verb} {kind} {name}"))
                .collect();
            lines.extend(r.failed.iter().map(|f| format!("error: {f}")));
            if lines.is_empty() {
                lines.push(format!(
                    "nothing left behind by killed runs (older than {})",
                    humantime::format_duration(older)
                ));
            }
            (lines, !r.failed.is_empty())
        }
        Err(e) => (vec![format!("error: cleanup of killed runs: {e}")], true),
    }
}

/// Returns why a run must not start for lack of disk, or `None` when there is room.
pub(super) async fn disk_problem(settings: &Settings) -> Option<String> {
    let min = settings.min_free_bytes?;
    let mut paths = vec![settings.state_dir.clone()];
    if settings.runner == RunnerKind::Docker {
        if let Ok(root) = blocking(docker_root_dir).await {
            paths.push(root);
        }
    }
    for path in paths {
        let probe = existing_ancestor(&path);
        match fs_available(&probe) {
            Some(free) if free < min => {
                return Some(format!(
                    "low disk: {} has {} free, below the minimum {}",
                    path.display(),
                    human_bytes(free),
                    human_bytes(min)
                ))
            }
            _ => {}
        }
    }
    None
}

fn existing_ancestor(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    while !p.exists() {
        if !p.pop() {
            return PathBuf::from(".");
        }
    }
    p
}

fn fs_available(path: &Path) -> Option<u64> {
    let out = std::process::Command::new("df")
        .args(["-P", "-B1", "--"])
        .arg(path)
        .output()
        .ok()?;
    parse_df_available(&String::from_utf8_lossy(&out.stdout))
}

/// Parses the "Available" column of `df -P -B1` output.
pub fn parse_df_available(text: &str) -> Option<u64> {
    text.lines().nth(1)?.split_whitespace().nth(3)?.parse().ok()
}

fn docker_root_dir() -> Result<PathBuf, String> {
    let out = std::process::Command::new("docker")
        .args(["info", "--format", "{{.DockerRootDir}}"])
        .output()
        .map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !text.is_empty() {
        Ok(PathBuf::from(text))
    } else {
        Err("docker info failed".into())
    }
}

pub(super) async fn warm_bytes(recipe: &Recipe) -> Option<u64> {
    let stack = crate::recipe::names::warm_stack_name(recipe.name.as_str());
    blocking(move || crate::engine::volume_sizes(&stack).map_err(|e| e.to_string()))
        .await
        .ok()
        .map(|sizes| sizes.iter().filter_map(|s| s.bytes).sum())
}

pub(super) fn dir_size(path: &Path) -> Option<u64> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !meta.is_dir() {
        return Some(meta.len());
    }
    let mut total = 0;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        total += dir_size(&entry.path()).unwrap_or(0);
    }
    Some(total)
}

/// Formats a byte count with binary units (`1.5 GiB`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn df_available_column_is_read() {
        let text = "Filesystem 1-blocks Used Available Capacity Mounted on\n/dev/vda 270000 1000 269000 1% /\n";
        assert_eq!(parse_df_available(text), Some(269000));
        assert_eq!(parse_df_available("garbage"), None);
    }

    #[test]
    fn bytes_are_shown_with_binary_units() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
    }
}
