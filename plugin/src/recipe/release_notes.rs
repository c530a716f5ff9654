//! Release notes: `release/<version>` files, where recipe maintainers write what an operator must
//! do by hand before upgrading to that version (Co-op Cloud's upgrade checklist), and
//! `release/next` for the version being prepared on a branch.
//!
//! An upgrade that needs a secret the installed app lacks is what those notes exist for. canon
//! creates such a secret, as an operator following the notes would, only when a note an operator
//! upgrading from the canonical would read names it: the notes of every version after the
//! canonical up to the tested one (a tag), or of every version after the canonical and
//! `release/next` (a branch or PR head, whose version is not released yet). A note names a secret
//! when it holds its compose key or its version variable as a whole word; a file that is there but
//! says nothing of the secret is not enough.
//!
//! Reads the checkout's `release/` folder; decides nothing else.

use std::path::Path;

use canon_shared::version::ReleaseVersion;

/// The note a branch or PR head's next version is described in.
pub const NEXT: &str = "next";

/// What the upgrade goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upgrade<'a> {
    /// A release tag.
    Tag(&'a str),
    /// A branch or PR head: not released yet.
    Head,
}

/// One release note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// Its path in the checkout (`release/<name>`).
    pub path: String,
    /// Its text.
    pub text: String,
}

/// Returns the notes an operator upgrading from `canonical` (none: from nothing) to `to` reads,
/// from the checkout `dir`, in version order (`release/next` last). A missing `release/` folder
/// holds none; a note that is no readable text is an error naming it.
pub fn for_upgrade(
    dir: &Path,
    canonical: Option<&str>,
    to: Upgrade<'_>,
) -> Result<Vec<Note>, String> {
    let folder = dir.join("release");
    let entries = match std::fs::read_dir(&folder) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", folder.display())),
    };
    let after = canonical.and_then(|c| ReleaseVersion::parse(c).ok());
    let upto = match to {
        Upgrade::Tag(tag) => ReleaseVersion::parse(tag).ok(),
        Upgrade::Head => None,
    };
    let mut picked: Vec<(Option<ReleaseVersion>, String)> = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !entry.path().is_file() {
            continue;
        }
        if name == NEXT {
            if to == Upgrade::Head {
                picked.push((None, name));
            }
            continue;
        }
        let Ok(version) = ReleaseVersion::parse(&name) else {
            continue;
        };
        let newer = after.as_ref().is_none_or(|a| version > *a);
        let within = match (&to, &upto) {
            (Upgrade::Tag(_), Some(u)) => version <= *u,
            (Upgrade::Tag(tag), None) => name == *tag,
            (Upgrade::Head, _) => true,
        };
        if newer && within {
            picked.push((Some(version), name));
        }
    }
    // Versions in order, `next` (None) after them.
    picked.sort_by(|a, b| match (&a.0, &b.0) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    picked
        .into_iter()
        .map(|(_, name)| {
            let path = folder.join(&name);
            let text = canon_shared::bounded_read::read_to_string(
                &path,
                canon_shared::bounded_read::TEXT_FILE,
            )
            .map_err(|e| format!("cannot read the release note release/{name}: {e}"))?;
            Ok(Note {
                path: format!("release/{name}"),
                text,
            })
        })
        .collect()
}

/// Returns the first of `notes` that names the secret `key` or its version variable `var`.
pub fn naming<'a>(notes: &'a [Note], key: &str, var: &str) -> Option<&'a Note> {
    notes
        .iter()
        .find(|n| has_word(&n.text, key) || has_word(&n.text, var))
}

/// Returns the paths of `notes`, joined for a message; `none` when there are none.
pub fn shown(notes: &[Note]) -> String {
    if notes.is_empty() {
        "none".to_string()
    } else {
        notes
            .iter()
            .map(|n| n.path.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Returns true when `word` occurs in `text` with no letter, digit or `_` right before or after.
fn has_word(text: &str, word: &str) -> bool {
    if word.is_empty() {
        return false;
    }
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    text.match_indices(word).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + word.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkout(notes: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("release")).unwrap();
        for (name, text) in notes {
            std::fs::write(dir.path().join("release").join(name), text).unwrap();
        }
        dir
    }

    fn paths(notes: &[Note]) -> Vec<&str> {
        notes.iter().map(|n| n.path.as_str()).collect()
    }

    // bonfire's release notes: 1.0.0 and 2.0.0 have one, 2.0.1 has none.
    const BONFIRE: &[(&str, &str)] = &[
        ("1.0.0+1.0.5-social-amd64", "First release.\n"),
        (
            "2.0.0+1.0.5-social-amd64",
            "Generate the new secret before upgrading: abra app secret generate <domain> mail_key v1\n",
        ),
        ("2.1.0+1.0.7-social-amd64", "Set SECRET_ORCID_CLIENT_SECRET_VERSION=v1 for ORCID sign-in.\n"),
        ("next", "S3 uploads need s3_secret_key.\n"),
        ("README", "not a version\n"),
    ];

    #[test]
    fn a_tag_reads_the_notes_after_the_canonical_up_to_itself() {
        let dir = checkout(BONFIRE);
        let notes = for_upgrade(
            dir.path(),
            Some("1.0.0+1.0.5-social-amd64"),
            Upgrade::Tag("2.0.1+1.0.6-social-amd64"),
        )
        .unwrap();
        assert_eq!(paths(&notes), ["release/2.0.0+1.0.5-social-amd64"]);
        assert!(naming(&notes, "mail_key", "SECRET_MAIL_KEY_VERSION").is_some());
        let notes = for_upgrade(
            dir.path(),
            Some("1.0.0+1.0.5-social-amd64"),
            Upgrade::Tag("2.1.0+1.0.7-social-amd64"),
        )
        .unwrap();
        assert_eq!(
            paths(&notes),
            [
                "release/2.0.0+1.0.5-social-amd64",
                "release/2.1.0+1.0.7-social-amd64"
            ]
        );
        assert_eq!(
            naming(
                &notes,
                "orchid_client_secret",
                "SECRET_ORCID_CLIENT_SECRET_VERSION"
            )
            .map(|n| n.path.as_str()),
            Some("release/2.1.0+1.0.7-social-amd64"),
            "the variable names bonfire's misspelt key"
        );
    }

    #[test]
    fn a_head_reads_every_note_after_the_canonical_and_next() {
        let dir = checkout(BONFIRE);
        let notes =
            for_upgrade(dir.path(), Some("2.0.0+1.0.5-social-amd64"), Upgrade::Head).unwrap();
        assert_eq!(
            paths(&notes),
            ["release/2.1.0+1.0.7-social-amd64", "release/next"]
        );
        assert!(naming(&notes, "s3_secret_key", "SECRET_S3_SECRET_KEY_VERSION").is_some());
        let tag = for_upgrade(dir.path(), None, Upgrade::Tag("1.0.0+1.0.5-social-amd64")).unwrap();
        assert_eq!(
            paths(&tag),
            ["release/1.0.0+1.0.5-social-amd64"],
            "next is for heads only"
        );
    }

    #[test]
    fn a_note_that_does_not_name_the_secret_does_not_count() {
        let dir = checkout(&[(
            "1.1.0+1",
            "Nothing to do by hand.\nThe api_tokens table grew.\n",
        )]);
        let notes = for_upgrade(dir.path(), Some("1.0.0+1"), Upgrade::Tag("1.1.0+1")).unwrap();
        assert_eq!(notes.len(), 1);
        assert_eq!(
            naming(&notes, "api_token", "SECRET_API_TOKEN_VERSION"),
            None
        );
        assert_eq!(shown(&notes), "release/1.1.0+1");
        assert_eq!(shown(&[]), "none");
        assert!(has_word(
            "run `abra app secret generate d api_token v1`",
            "api_token"
        ));
        assert!(!has_word("xapi_token", "api_token"));
    }

    #[test]
    fn a_checkout_without_release_notes_has_none() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            for_upgrade(dir.path(), None, Upgrade::Head).unwrap(),
            Vec::<Note>::new()
        );
    }
}
