//! `CommitId`: a git commit named by its full object id, validated once where it enters canon.
//!
//! Commits reach canon from git (libgit2), from forge APIs, from webhook payloads, from build
//! parameters and from the records on disk. Each of those edges parses the text into a
//! [`CommitId`], so everything past them (the gate, the state records, the journal, the mirror
//! reports) carries a value that is known to be a full id, never an abbreviation or a branch name.
//!
//! What is accepted is what canon has always accepted: 40 (SHA-1) or 64 (SHA-256) hex digits, in
//! either case. The text is kept exactly as given, so a record read and written again is the same
//! bytes; comparing two ids that differ only in case is left to the callers that did so before
//! (the gate).
//!
//! A field that was a possibly empty string before it was typed (a mirror tag whose peel is not
//! known) is an `Option<CommitId>` written with [`serialize_or_empty`], so its JSON is unchanged.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// A full git object id of a commit: 40 (SHA-1) or 64 (SHA-256) hex digits.
///
/// `Display` and serde give back exactly the text it was parsed from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommitId(String);

/// Why a string is not a full commit id. `Display` never quotes more than the first characters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCommitId {
    /// The text is empty.
    #[error("the commit id is empty")]
    Empty,
    /// Not 40 or 64 characters long (an abbreviated id, or something else).
    #[error(
        "the commit id {shown} has {len} characters; a full id has 40 (SHA-1) or 64 (SHA-256)"
    )]
    Length {
        /// The first characters, escaped.
        shown: String,
        /// Its length in bytes.
        len: usize,
    },
    /// A character other than `0-9`, `a-f`, `A-F`.
    #[error("the commit id {shown} is not hexadecimal")]
    NotHex {
        /// The first characters, escaped.
        shown: String,
    },
}

/// Returns the start of `text` as a quoted, escaped string, for an error message.
fn shown(text: &str) -> String {
    format!("{:?}", text.chars().take(16).collect::<String>())
}

impl CommitId {
    /// Validates `text` as a full commit id (40 or 64 hex digits, either case), kept as given.
    pub fn parse(text: &str) -> Result<Self, InvalidCommitId> {
        if text.is_empty() {
            return Err(InvalidCommitId::Empty);
        }
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidCommitId::NotHex { shown: shown(text) });
        }
        if !matches!(text.len(), 40 | 64) {
            return Err(InvalidCommitId::Length {
                shown: shown(text),
                len: text.len(),
            });
        }
        Ok(Self(text.to_string()))
    }

    /// Returns the id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the same id in lower case, the form git itself writes.
    pub fn lowercase(&self) -> CommitId {
        Self(self.0.to_ascii_lowercase())
    }

    /// Returns true when `other` names the same object, ignoring the case of the hex digits.
    pub fn same_object(&self, other: &CommitId) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl From<git2::Oid> for CommitId {
    /// An object id from libgit2 is always full lower-case hex.
    fn from(oid: git2::Oid) -> Self {
        Self(oid.to_string())
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for CommitId {
    type Err = InvalidCommitId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

// A commit id is read as text in many places (git calls, build parameters, messages); derefing
// to `str` lets those places take it as they took the `String` before.
impl Deref for CommitId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for CommitId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for CommitId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for CommitId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CommitId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for CommitId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<CommitId> for String {
    fn eq(&self, other: &CommitId) -> bool {
        *self == other.0
    }
}

impl PartialEq<CommitId> for &str {
    fn eq(&self, other: &CommitId) -> bool {
        *self == other.0
    }
}

impl serde::Serialize for CommitId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Serialises an optional id as its text, or as `""` when there is none: the form of fields that
/// were a possibly empty string before they were typed (`#[serde(serialize_with = ...)]`).
pub fn serialize_or_empty<S: serde::Serializer>(
    id: &Option<CommitId>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(id.as_ref().map_or("", CommitId::as_str))
}

impl<'de> serde::Deserialize<'de> for CommitId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA1: &str = "7c3a3b1e0f2d4c5b6a79881726354433221100ff";

    #[test]
    fn full_sha1_and_sha256_ids_parse_and_display_unchanged() {
        let sha256 = "ab".repeat(32);
        for text in [SHA1, sha256.as_str(), &"0".repeat(40)] {
            let id = CommitId::parse(text).expect("a full id");
            assert_eq!(id.to_string(), text);
            assert_eq!(id.as_str(), text);
        }
    }

    #[test]
    fn upper_case_is_accepted_and_kept_as_given() {
        let upper = SHA1.to_ascii_uppercase();
        let id = CommitId::parse(&upper).expect("upper-case hex is a full id");
        assert_eq!(id.as_str(), upper);
        let lower = CommitId::parse(SHA1).expect("a full id");
        assert_ne!(id, lower, "equality is exact, as it was on the text");
        assert!(id.same_object(&lower));
        assert_eq!(id.lowercase(), lower);
    }

    #[test]
    fn short_empty_and_non_hex_ids_are_refused() {
        type Check = fn(&InvalidCommitId) -> bool;
        let table: &[(&str, Check)] = &[
            ("", |e| matches!(e, InvalidCommitId::Empty)),
            ("7c3a3b1", |e| {
                matches!(e, InvalidCommitId::Length { len: 7, .. })
            }),
            (&SHA1[..39], |e| {
                matches!(e, InvalidCommitId::Length { len: 39, .. })
            }),
            ("ab", |e| matches!(e, InvalidCommitId::Length { .. })),
            ("g3a3b1e0f2d4c5b6a79881726354433221100ff0", |e| {
                matches!(e, InvalidCommitId::NotHex { .. })
            }),
            (" 7c3a3b1e0f2d4c5b6a79881726354433221100f", |e| {
                matches!(e, InvalidCommitId::NotHex { .. })
            }),
            ("refs/heads/main", |e| {
                matches!(e, InvalidCommitId::NotHex { .. })
            }),
        ];
        for (text, want) in table {
            let e = CommitId::parse(text).expect_err(text);
            assert!(want(&e), "{text:?}: {e:?}");
        }
        let long = format!("{SHA1}{SHA1}");
        assert!(matches!(
            CommitId::parse(&long),
            Err(InvalidCommitId::Length { len: 80, .. })
        ));
    }

    #[test]
    fn it_serialises_as_the_same_string() {
        let id = CommitId::parse(SHA1).expect("a full id");
        let json = serde_json::to_string(&id).expect("serialises");
        assert_eq!(json, format!("\"{SHA1}\""));
        let back: CommitId = serde_json::from_str(&json).expect("deserialises");
        assert_eq!(back, id);
        let err = serde_json::from_str::<CommitId>("\"x\"").expect_err("not a full id");
        assert!(err.to_string().contains("not hexadecimal"), "{err}");
    }

    #[test]
    fn a_missing_optional_id_serialises_as_an_empty_string() {
        #[derive(serde::Serialize)]
        struct Row {
            #[serde(serialize_with = "serialize_or_empty")]
            commit: Option<CommitId>,
        }
        let none = serde_json::to_string(&Row { commit: None }).expect("serialises");
        assert_eq!(none, r#"{"commit":""}"#);
        let some = Row {
            commit: Some(CommitId::parse(SHA1).expect("a full id")),
        };
        let json = serde_json::to_string(&some).expect("serialises");
        assert_eq!(json, format!(r#"{{"commit":"{SHA1}"}}"#));
    }

    #[test]
    fn a_libgit2_object_id_is_a_commit_id() {
        let oid = git2::Oid::from_str(SHA1).expect("an oid");
        assert_eq!(
            CommitId::from(oid),
            CommitId::parse(SHA1).expect("a full id")
        );
    }
}
