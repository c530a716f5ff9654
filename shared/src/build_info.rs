//! What canon was built from: its release version and its commit, as `--version` of both
//! binaries prints them (`canon-plugin 0.2.0 (commit 0123456789ab)`).
//!
//! The commit comes from `shared/build.rs` (`CANON_COMMIT` at build time, else the checkout's
//! HEAD, else `unknown`).

/// The release version of the workspace (`Cargo.toml`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit canon was built from, abbreviated to 12 hex digits, or `unknown`.
pub const COMMIT: &str = env!("CANON_BUILD_COMMIT");

/// The version line both binaries print after their name for `--version`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("CANON_BUILD_COMMIT"),
    ")"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_line_names_the_release_and_the_commit() {
        assert!(VERSION_LINE.starts_with(VERSION), "{VERSION_LINE}");
        assert!(VERSION_LINE.ends_with(&format!("(commit {COMMIT})")));
        assert!(
            COMMIT == "unknown"
                || (COMMIT.len() >= 7 && COMMIT.chars().all(|c| c.is_ascii_hexdigit())),
            "{COMMIT}"
        );
    }
}
