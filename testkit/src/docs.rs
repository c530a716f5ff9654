//! The workspace's Markdown as tests check it: every relative link of the README and of `docs/`
//! must name a file that exists and, with a `#fragment`, a heading of that file, by the rules
//! GitHub and Gitea use to make a heading's anchor. Separate from [`crate::workspace`] because
//! it parses Markdown (pulldown-cmark) rather than finding files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

/// The longest the README may be, in lines: a page a person reads, the rest lives in `docs/`.
pub const README_MAX_LINES: usize = 200;

/// Returns the README and every Markdown file under `docs/` of the workspace at `root`, sorted.
pub fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut dirs = vec![root.join("docs")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("a readable docs folder") {
            let path = entry.expect("a docs folder entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Returns the anchor GitHub gives a heading whose text is `text`: lower case, every character
/// that is not a letter, a digit, a space, `-` or `_` dropped, each space made `-`.
pub fn slug(text: &str) -> String {
    text.trim()
        .chars()
        .flat_map(char::to_lowercase)
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Returns the anchors of every heading of the Markdown `text`, in order; a repeated anchor gets
/// `-1`, `-2`, ... as on GitHub.
pub fn anchors(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut heading: Option<String> = None;
    for event in Parser::new_ext(text, Options::all()) {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let base = slug(&h);
                    let mut anchor = base.clone();
                    let mut n = 0;
                    while out.contains(&anchor) {
                        n += 1;
                        anchor = format!("{base}-{n}");
                    }
                    out.push(anchor);
                }
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            _ => {}
        }
    }
    out
}

/// Returns the destination of every link and image of the Markdown `text`, in order.
pub fn link_targets(text: &str) -> Vec<String> {
    Parser::new_ext(text, Options::all())
        .filter_map(|event| match event {
            Event::Start(Tag::Link { dest_url, .. })
            | Event::Start(Tag::Image { dest_url, .. }) => Some(dest_url.to_string()),
            _ => None,
        })
        .collect()
}

/// Returns the text of every fenced code block of the Markdown `text` whose info string starts
/// with `lang` (`yaml`, `sh`), in order.
pub fn code_blocks(text: &str, lang: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for event in Parser::new_ext(text, Options::all()) {
        match event {
            Event::Start(Tag::CodeBlock(CodeBlockKind::Fenced(info)))
                if info.split_whitespace().next() == Some(lang) =>
            {
                current = Some(String::new());
            }
            Event::Text(t) => {
                if let Some(c) = current.as_mut() {
                    c.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => out.extend(current.take()),
            _ => {}
        }
    }
    out
}

/// Returns every broken relative link of the Markdown files `files` (each a path under `root`),
/// as `file: target (why)`. A link with a scheme (`https:`, `mailto:`) is not checked; a path is
/// resolved from the linking file's folder and must exist; a `#fragment` on a Markdown file (or
/// alone, for the linking file) must be one of its [`anchors`].
pub fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut broken = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("a readable Markdown file");
        let shown = file
            .strip_prefix(root)
            .unwrap_or(file)
            .display()
            .to_string();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a file has a folder").join(path)
            };
            if !resolved.exists() {
                broken.push(format!("{shown}: {target} (no such file)"));
                continue;
            }
            let Some(fragment) = fragment else { continue };
            if resolved.extension().is_none_or(|e| e != "md") {
                continue;
            }
            let heads: BTreeSet<String> =
                anchors(&std::fs::read_to_string(&resolved).expect("a readable Markdown file"))
                    .into_iter()
                    .collect();
            if !heads.contains(fragment) {
                broken.push(format!("{shown}: {target} (no such heading)"));
            }
        }
    }
    broken
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heading_becomes_its_github_anchor() {
        for (text, want) in [
            ("Set-up on a fresh machine", "set-up-on-a-fresh-machine"),
            (
                "`canon-listener register-hooks`",
                "canon-listener-register-hooks",
            ),
            (
                "6. More than one runner host: a state repository",
                "6-more-than-one-runner-host-a-state-repository",
            ),
            ("Exit codes (tag mode)", "exit-codes-tag-mode"),
            ("state_dir & work_dir", "state_dir--work_dir"),
            ("Über Größe", "über-größe"),
        ] {
            assert_eq!(slug(text), want, "{text}");
        }
    }

    #[test]
    fn repeated_headings_are_numbered_and_code_counts_as_text() {
        let md = "# Top\n\n## `run` mode\n\ntext\n\n## Run mode\n\n## Run mode\n";
        assert_eq!(anchors(md), ["top", "run-mode", "run-mode-1", "run-mode-2"]);
    }

    #[test]
    fn code_blocks_are_found_by_language() {
        let md = "```yaml\na: 1\n```\n\n```sh\nls\n```\n\n```yaml title\nb: 2\n```\n";
        assert_eq!(code_blocks(md, "yaml"), ["a: 1\n", "b: 2\n"]);
        assert_eq!(code_blocks(md, "sh"), ["ls\n"]);
    }

    #[test]
    fn links_in_code_are_not_links() {
        let md = "[a](x.md) `[b](y.md)`\n\n```\n[c](z.md)\n```\n![i](img.svg)\n";
        assert_eq!(link_targets(md), ["x.md", "img.svg"]);
    }

    #[test]
    fn missing_files_and_headings_are_reported_and_good_links_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("docs")).unwrap();
        std::fs::write(root.join("docs/a.md"), "# A page\n\n## Its part\n").unwrap();
        std::fs::write(
            root.join("README.md"),
            "# R\n\n[ok](docs/a.md) [ok](docs/a.md#its-part) [ok](#r) [ok](https://x.org/#y)\n\
             [bad](docs/b.md) [bad](docs/a.md#nothing) [bad](#none)\n",
        )
        .unwrap();
        let files = markdown_files(root);
        assert_eq!(files.len(), 2);
        assert_eq!(
            broken_links(root, &files),
            [
                "README.md: docs/b.md (no such file)",
                "README.md: docs/a.md#nothing (no such heading)",
                "README.md: #none (no such heading)",
            ]
        );
    }
}
