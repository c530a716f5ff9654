//! The workspace's own files as tests find them: the fixture recipe, the scripts, the
//! Dockerfile, the README. Every crate sits one folder below the root, and so does the kit.

use std::path::{Path, PathBuf};

/// Returns the workspace root (the folder holding the workspace `Cargo.toml`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the kit lives in the workspace")
        .to_path_buf()
}
