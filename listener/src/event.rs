//! Webhook payloads (already verified) parsed into one typed fact: a new tag, a deleted tag, or
//! something ignored with its reason.
//!
//! Parsing is lenient (unknown fields allowed, most fields optional) because payloads vary across
//! Gitea 1.1x-1.27, Forgejo 7-16 and GitHub. What counts as a new tag follows the forge facts:
//! - `push` with `ref` `refs/tags/*` and `after` not all zeros (40 or 64): Gitea may send no
//!   `create` at all (go-gitea/gitea#38438), so push alone must be enough;
//! - `create` with `ref_type` `tag` or `tags` (1.20-rc), `ref` short or full (Forgejo);
//! - `release` `published` (or `updated`, how a draft published later arrives) and not a draft.
//!
//! Payload SHAs are hints only: `after` and `create.sha` are the tag *object* for annotated tags,
//! and release payloads carry none. The worker resolves the commit at the forge.

use canon_shared::commit::CommitId;
use serde::Deserialize;

/// The repository a payload names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RepoRef {
    /// `owner/name`.
    #[serde(default)]
    pub full_name: String,
    /// HTTPS clone URL.
    #[serde(default)]
    pub clone_url: Option<String>,
    /// Web URL.
    #[serde(default)]
    pub html_url: Option<String>,
    /// SSH clone URL.
    #[serde(default)]
    pub ssh_url: Option<String>,
}

impl RepoRef {
    /// Returns every way the payload names the repository, for matching the enrollment.
    pub fn candidates(&self) -> Vec<&str> {
        let mut v = vec![self.full_name.as_str()];
        v.extend(self.clone_url.as_deref());
        v.extend(self.html_url.as_deref());
        v.extend(self.ssh_url.as_deref());
        v.retain(|s| !s.is_empty());
        v
    }
}

/// What a verified delivery means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fact {
    /// A tag appeared (or a release was published for it).
    NewTag {
        /// The repository.
        repo: RepoRef,
        /// The short tag name.
        tag: String,
        /// The ref's value as sent (`push.after`, `create.sha`): the commit, or the tag object
        /// for an annotated tag. `None` for releases and GitHub `create`.
        ref_sha: Option<String>,
        /// A commit named by the payload (`push.head_commit.id`), a hint only.
        commit_hint: Option<CommitId>,
    },
    /// A tag was deleted. Recorded, never acted on.
    TagDeleted {
        /// The repository.
        repo: RepoRef,
        /// The short tag name.
        tag: String,
    },
    /// Nothing canon acts on.
    Ignored {
        /// The repository, when the payload names one.
        repo: Option<RepoRef>,
        /// The tag, when the payload names one.
        tag: Option<String>,
        /// Why it is ignored.
        reason: String,
    },
}

/// Why a verified body could not be read as the event its header announces.
#[derive(Debug, thiserror::Error)]
#[error("malformed {event} payload: {message}")]
pub struct MalformedPayload {
    /// The event header's value.
    pub event: String,
    /// The parser's message (no payload content beyond a position).
    pub message: String,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    after: Option<String>,
    #[serde(default)]
    head_commit: Option<Commit>,
    #[serde(default)]
    deleted: Option<bool>,
    repository: RepoRef,
}

#[derive(Deserialize)]
struct Commit {
    #[serde(default)]
    id: Option<String>,
}

#[derive(Deserialize)]
struct CreateOrDelete {
    #[serde(rename = "ref")]
    git_ref: String,
    #[serde(default)]
    ref_type: String,
    #[serde(default)]
    sha: Option<String>,
    repository: RepoRef,
}

#[derive(Deserialize)]
struct ReleaseEvent {
    #[serde(default)]
    action: String,
    release: Release,
    repository: RepoRef,
}

#[derive(Deserialize)]
struct Release {
    tag_name: String,
    #[serde(default)]
    draft: bool,
}

/// Returns true for the null object ID: all `0`, 40 (SHA-1) or 64 (SHA-256) characters long.
pub fn is_zero_id(id: &str) -> bool {
    (id.len() == 40 || id.len() == 64) && id.bytes().all(|b| b == b'0')
}

/// Returns the short tag name for a full or short ref (`refs/tags/x` or `x`).
pub fn short_tag(git_ref: &str) -> &str {
    git_ref.strip_prefix("refs/tags/").unwrap_or(git_ref)
}

fn hex_id(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_ascii_lowercase()).filter(|s| {
        (s.len() == 40 || s.len() == 64)
            && s.bytes().all(|b| b.is_ascii_hexdigit())
            && !is_zero_id(s)
    })
}

fn decode<'a, T: Deserialize<'a>>(event: &str, body: &'a [u8]) -> Result<T, MalformedPayload> {
    serde_json::from_slice(body).map_err(|e| MalformedPayload {
        event: event.to_string(),
        // serde_json's messages may quote input values; keep only the kind and the position.
        message: format!(
            "{} at line {} column {}",
            match e.classify() {
                serde_json::error::Category::Io => "read error",
                serde_json::error::Category::Syntax => "invalid JSON",
                serde_json::error::Category::Data => "unexpected shape",
                serde_json::error::Category::Eof => "truncated JSON",
            },
            e.line(),
            e.column()
        ),
    })
}

/// Parses a verified body announced as `event` (the `X-*-Event` header) into a [`Fact`].
pub fn parse(event: &str, body: &[u8]) -> Result<Fact, MalformedPayload> {
    match event {
        "push" => {
            let p: Push = decode(event, body)?;
            let Some(tag) = p.git_ref.strip_prefix("refs/tags/") else {
                return Ok(Fact::Ignored {
                    repo: Some(p.repository),
                    tag: None,
                    reason: "push to a branch, not a tag".into(),
                });
            };
            if tag.is_empty() {
                return Err(MalformedPayload {
                    event: event.into(),
                    message: "empty tag name".into(),
                });
            }
            let after = p.after.unwrap_or_default();
            if p.deleted == Some(true) || is_zero_id(after.trim()) {
                return Ok(Fact::TagDeleted {
                    repo: p.repository,
                    tag: tag.to_string(),
                });
            }
            Ok(Fact::NewTag {
                repo: p.repository,
                tag: tag.to_string(),
                ref_sha: hex_id(Some(after)),
                commit_hint: hex_id(p.head_commit.and_then(|c| c.id))
                    .and_then(|id| CommitId::parse(&id).ok()),
            })
        }
        "create" | "delete" => {
            let c: CreateOrDelete = decode(event, body)?;
            if !matches!(c.ref_type.as_str(), "tag" | "tags") {
                return Ok(Fact::Ignored {
                    repo: Some(c.repository),
                    tag: None,
                    reason: format!("{event} of a {}, not a tag", safe(&c.ref_type)),
                });
            }
            let tag = short_tag(&c.git_ref).to_string();
            if tag.is_empty() {
                return Err(MalformedPayload {
                    event: event.into(),
                    message: "empty tag name".into(),
                });
            }
            if event == "delete" {
                return Ok(Fact::TagDeleted {
                    repo: c.repository,
                    tag,
                });
            }
            Ok(Fact::NewTag {
                repo: c.repository,
                tag,
                ref_sha: hex_id(c.sha),
                commit_hint: None,
            })
        }
        "release" => {
            let r: ReleaseEvent = decode(event, body)?;
            let tag = r.release.tag_name;
            if r.release.draft {
                return Ok(Fact::Ignored {
                    repo: Some(r.repository),
                    tag: Some(tag),
                    reason: "draft release".into(),
                });
            }
            match r.action.as_str() {
                "published" | "released" | "updated" | "edited" => {}
                other => {
                    return Ok(Fact::Ignored {
                        repo: Some(r.repository),
                        tag: Some(tag),
                        reason: format!("release {}", safe(other)),
                    })
                }
            }
            if tag.is_empty() {
                return Err(MalformedPayload {
                    event: event.into(),
                    message: "empty tag name".into(),
                });
            }
            Ok(Fact::NewTag {
                repo: r.repository,
                tag,
                ref_sha: None,
                commit_hint: None,
            })
        }
        other => Ok(Fact::Ignored {
            repo: None,
            tag: None,
            reason: format!("event {} is not a tag event", safe(other)),
        }),
    }
}

/// Returns `s` cut to 64 printable characters, for a reason that echoes payload text.
pub fn safe(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = r#""repository":{"full_name":"o/r","clone_url":"https://f/o/r.git","html_url":"https://f/o/r","extra":1}"#;
    const SHA: &str = "7c3a3b1e0f2d4c5b6a79881726354433221100ff";

    fn p(event: &str, json: &str) -> Fact {
        parse(event, json.as_bytes()).unwrap()
    }

    #[test]
    fn tag_pushes_creates_and_releases_are_new_tags() {
        let push = p(
            "push",
            &format!(
                r#"{{"ref":"refs/tags/1.0.0+1","after":"{SHA}","head_commit":{{"id":"{}"}},{REPO}}}"#,
                "a".repeat(40)
            ),
        );
        assert!(
            matches!(&push, Fact::NewTag { tag, ref_sha: Some(s), commit_hint: Some(c), .. } if tag == "1.0.0+1" && s == SHA && c == &"a".repeat(40))
        );
        for (rt, r) in [
            ("tag", "1.0.0+1"),
            ("tags", "1.0.0+1"),
            ("tag", "refs/tags/1.0.0+1"),
        ] {
            let f = p(
                "create",
                &format!(r#"{{"ref":"{r}","ref_type":"{rt}","sha":"{SHA}",{REPO}}}"#),
            );
            assert!(
                matches!(&f, Fact::NewTag { tag, .. } if tag == "1.0.0+1"),
                "{f:?}"
            );
        }
        let rel = p(
            "release",
            &format!(
                r#"{{"action":"published","release":{{"tag_name":"1.0.0+1","draft":false}},{REPO}}}"#
            ),
        );
        assert!(matches!(rel, Fact::NewTag { ref_sha: None, .. }));
    }

    #[test]
    fn deletions_are_recorded_as_such() {
        for zeros in ["0".repeat(40), "0".repeat(64)] {
            let f = p(
                "push",
                &format!(r#"{{"ref":"refs/tags/1.0.0+1","after":"{zeros}",{REPO}}}"#),
            );
            assert!(matches!(f, Fact::TagDeleted { .. }));
        }
        let f = p(
            "delete",
            &format!(r#"{{"ref":"1.0.0+1","ref_type":"tag",{REPO}}}"#),
        );
        assert!(matches!(f, Fact::TagDeleted { tag, .. } if tag == "1.0.0+1"));
    }

    #[test]
    fn other_events_are_ignored_with_a_reason() {
        let table = [
            (
                "push",
                format!(r#"{{"ref":"refs/heads/main","after":"{SHA}",{REPO}}}"#),
                "branch",
            ),
            (
                "create",
                format!(r#"{{"ref":"main","ref_type":"branch",{REPO}}}"#),
                "not a tag",
            ),
            (
                "release",
                format!(
                    r#"{{"action":"published","release":{{"tag_name":"1.0.0+1","draft":true}},{REPO}}}"#
                ),
                "draft",
            ),
            (
                "release",
                format!(r#"{{"action":"deleted","release":{{"tag_name":"1.0.0+1"}},{REPO}}}"#),
                "release deleted",
            ),
            ("issues", "{}".to_string(), "not a tag event"),
        ];
        for (event, json, want) in table {
            match p(event, &json) {
                Fact::Ignored { reason, .. } => assert!(reason.contains(want), "{reason}"),
                f => panic!("{event}: {f:?}"),
            }
        }
    }

    #[test]
    fn malformed_bodies_are_errors_without_content() {
        for (event, body) in [
            ("push", "{not json"),
            ("push", "[]"),
            ("create", r#"{"ref":"x"}"#),
            ("release", r#"{"secret-ish":1}"#),
        ] {
            let e = parse(event, body.as_bytes()).unwrap_err().to_string();
            assert!(e.starts_with(&format!("malformed {event} payload")), "{e}");
            assert!(!e.contains("secret-ish"), "{e}");
        }
    }
}
