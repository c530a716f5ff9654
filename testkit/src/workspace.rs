//! The workspace's own files as tests find them: the fixture recipe, the scripts, the
//! Dockerfile, the README. Every crate sits one folder below the root, and so does the kit.
//! Also the check that keeps each crate's one integration-test binary whole (every file of its
//! `tests/` folder is a module of `tests/main.rs`), and the release binaries a step before the
//! tests built: a test never runs cargo itself.

use std::path::{Path, PathBuf};

/// Returns the workspace root (the folder holding the workspace `Cargo.toml`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the kit lives in the workspace")
        .to_path_buf()
}

/// Returns the modules of the `tests/` folder `tests_dir` that `main_rs` (the text of its
/// `tests/main.rs`) does not declare, sorted. Each crate builds one integration-test binary from
/// `tests/main.rs` (`autotests = false`), so a test file it does not name would never be compiled
/// or run. A module is a `*.rs` file other than `main.rs`, or a folder holding a `mod.rs`; it is
/// declared by a line `mod NAME;` (or `pub mod NAME;`), also inside an inline module.
pub fn unlisted_test_modules(tests_dir: &Path, main_rs: &str) -> Vec<String> {
    let declared: std::collections::BTreeSet<&str> = main_rs
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("pub ").or(Some(l)))
        .filter_map(|l| l.strip_prefix("mod "))
        .filter_map(|l| l.strip_suffix(';'))
        .map(str::trim)
        .collect();
    let mut missing = Vec::new();
    for entry in std::fs::read_dir(tests_dir).expect("the tests folder") {
        let path = entry.expect("a tests folder entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 file name");
        let module = if path.is_dir() {
            path.join("mod.rs").is_file().then_some(name)
        } else {
            name.strip_suffix(".rs").filter(|m| *m != "main")
        };
        if let Some(module) = module {
            if !declared.contains(module) {
                missing.push(module.to_string());
            }
        }
    }
    missing.sort();
    missing
}

/// The variable naming the release `canon-plugin` binary that `scripts/test.sh` builds before the
/// tests (the name `scripts/build-images.sh` reads too).
pub const PLUGIN_BIN_ENV: &str = "CANON_PLUGIN_BIN";

/// The variable naming the release `canon-listener` binary that `scripts/test.sh` builds before
/// the tests (the name `scripts/build-images.sh` reads too).
pub const LISTENER_BIN_ENV: &str = "CANON_LISTENER_BIN";

/// Returns the prebuilt binary the variable `var` names. Tests never build the workspace
/// themselves: `scripts/test.sh` runs `cargo build --release --locked --bins -p canon-plugin
/// -p canon-listener` first and exports [`PLUGIN_BIN_ENV`] and [`LISTENER_BIN_ENV`]. Panics
/// (the test fails, it is never skipped) when the variable is unset or names no executable file.
pub fn prebuilt(var: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let how = "scripts/test.sh builds the binaries before the tests and sets CANON_PLUGIN_BIN \
               and CANON_LISTENER_BIN (the release builds for the image test); by hand: cargo \
               build --release --locked --bins -p canon-plugin -p canon-listener, then set both \
               to target/release/<name>";
    let path = match std::env::var_os(var) {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => panic!("{var} is not set: this test takes a prebuilt binary. {how}"),
    };
    let path = if path.is_relative() {
        root().join(path)
    } else {
        path
    };
    let executable = std::fs::metadata(&path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false);
    assert!(
        executable,
        "{var}={} is not an executable file. {how}",
        path.display()
    );
    path
}
