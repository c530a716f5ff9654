//! canon-shared's integration tests, one binary: every file of this folder is a module here, so
//! the crate's tests link once (`autotests = false` in Cargo.toml). A test below fails when a
//! file of this folder is not listed.

mod support;

mod enrollment_schema;
mod forge;
mod mirror;
mod mirror_ssh;
mod state_contract;
mod state_links;
mod warm_holds;

#[test]
fn every_test_file_is_a_module_of_main() {
    let tests = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let missing = canon_testkit::workspace::unlisted_test_modules(&tests, include_str!("main.rs"));
    assert!(
        missing.is_empty(),
        "add `mod NAME;` to tests/main.rs for: {missing:?}"
    );
}
