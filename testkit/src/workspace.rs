//! The workspace's own files as tests find them: the fixture recipe, the scripts, the
//! Dockerfile, the README. Every crate sits one folder below the root, and so does the kit.
//! Also the check that keeps each crate's one integration-test binary whole: every file of its
//! `tests/` folder is a module of `tests/main.rs`.

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
