//! The workspace's documentation as a reader meets it: a README short enough to read, and no link
//! in it or in `docs/` that leads nowhere (a missing file, or a heading that was renamed).

use canon_testkit::docs::{broken_links, markdown_files, README_MAX_LINES};
use canon_testkit::workspace;

#[test]
fn the_readme_is_at_most_200_lines() {
    let readme = std::fs::read_to_string(workspace::root().join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines, more than {README_MAX_LINES}: move the detail to a page under docs/"
    );
}

#[test]
fn every_link_in_the_readme_and_docs_leads_somewhere() {
    let root = workspace::root();
    let files = markdown_files(&root);
    assert!(
        files.iter().any(|f| f.ends_with("docs/operator-guide.md")),
        "the docs were not found under {}",
        root.display()
    );
    let broken = broken_links(&root, &files);
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
