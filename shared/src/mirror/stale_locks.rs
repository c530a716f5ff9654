//! Lock files a killed git write leaves behind. git and libgit2 take a ref, `packed-refs` or
//! `config` lock by creating `<file>.lock` and remove it when they finish; a process killed in
//! between (kill -9 during a fetch into the cache, or during a push into a mirror on the local
//! disk) leaves it, and every later write of that ref fails with "failed to lock file" until a
//! person removes it.
//!
//! canon is the only writer of a recipe's cache and of a local-path mirror, and every canon write
//! to them happens under the recipe's cache lock ([`super::fetch`]). So once that lock is held,
//! any git lock file in them is a leftover: it is removed, with a warning.

use std::path::{Path, PathBuf};

/// Removes the git lock files under the git directory `git_dir` (its top level and `refs/`);
/// returns what it removed. Call only while holding the recipe's cache lock.
pub(super) fn clear(git_dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    remove_locks_in(git_dir, false, &mut removed);
    remove_locks_in(&git_dir.join("refs"), true, &mut removed);
    if !removed.is_empty() {
        tracing::warn!(
            git_dir = %git_dir.display(),
            removed = ?removed,
            "Removed git lock files a killed write left behind."
        );
    }
    removed
}

/// Removes the `*.lock` files in `dir`, and in its subfolders when `recursive`.
fn remove_locks_in(dir: &Path, recursive: bool, removed: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        match entry.file_type() {
            Ok(kind) if kind.is_dir() && recursive => remove_locks_in(&path, true, removed),
            Ok(kind)
                if kind.is_file()
                    && path.extension().is_some_and(|e| e == "lock")
                    && std::fs::remove_file(&path).is_ok() =>
            {
                removed.push(path)
            }
            _ => {}
        }
    }
}

/// Returns the git directory of the repository at `path`: `path` itself when bare, else
/// `path/.git`.
pub(super) fn git_dir(path: &Path) -> PathBuf {
    let dot_git = path.join(".git");
    if dot_git.is_dir() {
        dot_git
    } else {
        path.to_path_buf()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_locks_go_and_everything_else_stays() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path();
        for f in [
            "HEAD",
            "packed-refs",
            "packed-refs.lock",
            "config.lock",
            "refs/heads/main",
            "refs/heads/main.lock",
            "refs/tags/1.0.0+1",
            "refs/tags/1.0.0+1.lock",
            "refs/tags/nested/deeper/x.lock",
            "objects/pack/pack-1.keep",
            "objects/info/x.lock",
        ] {
            let p = g.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "x").unwrap();
        }
        let mut removed: Vec<String> = clear(g)
            .iter()
            .map(|p| p.strip_prefix(g).unwrap().display().to_string())
            .collect();
        removed.sort();
        assert_eq!(
            removed,
            [
                "config.lock",
                "packed-refs.lock",
                "refs/heads/main.lock",
                "refs/tags/1.0.0+1.lock",
                "refs/tags/nested/deeper/x.lock",
            ]
        );
        for kept in [
            "HEAD",
            "packed-refs",
            "refs/heads/main",
            "refs/tags/1.0.0+1",
        ] {
            assert!(g.join(kept).exists(), "{kept}");
        }
        assert!(
            g.join("objects/info/x.lock").exists(),
            "only the top level and refs/ are git's ref and config locks"
        );
        assert!(clear(g).is_empty());
    }
}
