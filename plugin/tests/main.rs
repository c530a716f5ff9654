//! canon-plugin's integration tests, one binary: every file of this folder is a module here, so
//! the crate's tests link once (`autotests = false` in Cargo.toml). A test below fails when a
//! file of this folder is not listed.
//!
//! The tests on the machine's real Docker engine are the modules of [`engine`]: nextest runs
//! them one at a time (the `engine` test group in `.config/nextest.toml` matches `engine::`).

mod support;

mod child_env;
mod cli;
mod cli_settings;
mod drone_yml;
mod hostile_files;
mod mirror_cli;
mod recipe_plan;
mod rewarm_cli;
mod secret_files;
mod shared_state;
mod state_repo;
mod sweep;
mod tag_mode;
mod version;

/// The tests that deploy on the real Docker engine, one at a time. The files stay beside the
/// others (`#[path = "."]`); only their test names gain `engine::`.
#[path = "."]
mod engine {
    mod child_env_docker;
    mod data_check;
    mod docker_runner;
    mod image;
    mod promote_crash;
    mod rewarm;
    mod serving;
    mod warm_run;
}

#[test]
fn every_test_file_is_a_module_of_main() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let missing = canon_testkit::workspace::unlisted_test_modules(&tests, include_str!("main.rs"));
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to tests/main.rs for: {missing:?}"
    );
}
