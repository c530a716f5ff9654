//! The sync plan: what the mirror must become ([`Wanted`]) and the ref updates that get it there
//! ([`Plan`]).
//!
//! Pure functions over two ref listings, no git access, so the decision of what to create,
//! update, delete or leave alone is tested on its own. Only the branch and `refs/tags/*` are ever
//! planned: every other mirror ref (the pull-request heads) is out of its reach.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::commit::CommitId;

use super::{RemoteRefs, TagRef};

/// A tag whose target changed (same name, new object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MovedTag {
    /// The tag name.
    pub name: String,
    /// The object the mirror had (tag object or commit).
    pub old: String,
    /// The object upstream has now.
    pub new: String,
    /// The commit the mirror's tag peeled to; `None` (serialised as `""`) when the old tag object
    /// is unknown.
    #[serde(serialize_with = "crate::commit::serialize_or_empty")]
    pub old_commit: Option<CommitId>,
    /// The commit upstream's tag peels to (`""` if it was not peeled, which a sync never plans).
    #[serde(serialize_with = "crate::commit::serialize_or_empty")]
    pub new_commit: Option<CommitId>,
}

/// What the mirror must become: the branch head and every tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Wanted {
    pub(super) head: CommitId,
    pub(super) tags: BTreeMap<String, TagRef>,
}

/// Returns true when the mirror's branch and full tag set equal `wanted`.
pub(super) fn mirror_equals(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> bool {
    mirror.branches.get(branch) == Some(&wanted.head)
        && mirror.tags.len() == wanted.tags.len()
        && wanted
            .tags
            .iter()
            .all(|(n, t)| mirror.tags.get(n).map(|m| &m.target) == Some(&t.target))
}

/// The ref updates that make the mirror equal to `wanted`.
#[derive(Debug, Default)]
pub(super) struct Plan {
    pub(super) created: Vec<String>,
    pub(super) updated: Vec<String>,
    pub(super) deleted: Vec<String>,
    pub(super) unchanged: Vec<String>,
    pub(super) moved_tags: Vec<MovedTag>,
    /// Refspecs for the push.
    pub(super) refspecs: Vec<String>,
}

/// Returns the updates that make the mirror's `branch` and tag set equal to `wanted`.
pub(super) fn plan(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> Plan {
    let mut p = Plan::default();
    let bref = format!("refs/heads/{branch}");
    match mirror.branches.get(branch) {
        Some(h) if *h == wanted.head => p.unchanged.push(bref),
        old => {
            p.refspecs.push(format!("+{bref}:{bref}"));
            if old.is_some() {
                p.updated.push(bref);
            } else {
                p.created.push(bref);
            }
        }
    }
    for (name, tag) in &wanted.tags {
        let r = format!("refs/tags/{name}");
        match mirror.tags.get(name) {
            Some(m) if m.target == tag.target => p.unchanged.push(r),
            Some(m) => {
                p.moved_tags.push(MovedTag {
                    name: name.clone(),
                    old: m.target.clone(),
                    new: tag.target.clone(),
                    old_commit: m.peeled.clone(),
                    new_commit: tag.peeled.clone(),
                });
                p.refspecs.push(format!("+{r}:{r}"));
                p.updated.push(r);
            }
            None => {
                p.refspecs.push(format!("+{r}:{r}"));
                p.created.push(r);
            }
        }
    }
    for name in mirror.tags.keys() {
        if !wanted.tags.contains_key(name) {
            let r = format!("refs/tags/{name}");
            p.refspecs.push(format!(":{r}"));
            p.deleted.push(r);
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full id made of one repeated hex digit.
    fn id(digit: char) -> CommitId {
        CommitId::parse(&digit.to_string().repeat(40)).expect("a full id")
    }

    fn t(target: &str, peeled: char) -> TagRef {
        TagRef {
            target: target.into(),
            peeled: Some(id(peeled)),
        }
    }

    #[test]
    fn plan_pushes_only_differences_and_deletes_extra_tags() {
        let wanted = Wanted {
            head: id('a'),
            tags: [
                ("1.0".to_string(), t("x", '1')),
                ("2.0".to_string(), t("y", '2')),
            ]
            .into_iter()
            .collect(),
        };
        let mirror = RemoteRefs {
            branches: [("main".to_string(), id('a')), ("pr-1".to_string(), id('f'))]
                .into_iter()
                .collect(),
            tags: [
                ("1.0".to_string(), t("old", '0')),
                ("extra".to_string(), t("e", 'e')),
            ]
            .into_iter()
            .collect(),
        };
        let p = plan(&wanted, &mirror, "main");
        assert_eq!(p.unchanged, vec!["refs/heads/main"]);
        assert_eq!(p.updated, vec!["refs/tags/1.0"]);
        assert_eq!(p.created, vec!["refs/tags/2.0"]);
        assert_eq!(p.deleted, vec!["refs/tags/extra"]);
        assert_eq!(
            p.refspecs,
            vec![
                "+refs/tags/1.0:refs/tags/1.0",
                "+refs/tags/2.0:refs/tags/2.0",
                ":refs/tags/extra"
            ]
        );
        assert_eq!(p.moved_tags[0].old_commit, Some(id('0')));
        assert!(!mirror_equals(&wanted, &mirror, "main"));
    }
}
