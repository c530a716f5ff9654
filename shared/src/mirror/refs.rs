//! What a ref listing is ([`RemoteRefs`], [`TagRef`]) and how a remote is listed.
//!
//! A remote on this filesystem is read from disk (`local_refs`); any other remote is asked over
//! its transport, which advertises tag peels itself (`^{}` lines). Both sides of a sync and
//! [`ls_remote`] go through [`list`], so they see a repository the same way.

use std::cell::Cell;
use std::collections::BTreeMap;

use git2::{Direction, Remote};
use serde::Serialize;

use crate::commit::CommitId;

use super::local_refs::{list_local, Peels};
use super::remote::{callbacks, git_error, local_path};
use super::{GitRemote, MirrorError, Side};

/// A tag as a remote advertises it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TagRef {
    /// The object the ref points to: the tag object for an annotated tag, else the commit.
    pub target: String,
    /// The commit the tag finally points to; `None` (serialised as `""`) for a mirror tag whose
    /// target was not peeled (the sync compares only targets there).
    #[serde(serialize_with = "crate::commit::serialize_or_empty")]
    pub peeled: Option<CommitId>,
}

impl TagRef {
    /// Returns true for an annotated tag (the ref points to a tag object).
    pub fn is_annotated(&self) -> bool {
        self.peeled.as_deref() != Some(self.target.as_str())
    }
}

/// A remote's branches and tags, from one ref listing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RemoteRefs {
    /// Branch short name -> commit.
    pub branches: BTreeMap<String, CommitId>,
    /// Tag name -> tag ref.
    pub tags: BTreeMap<String, TagRef>,
}

/// Lists a remote's branches and tags (one ref listing, no fetch).
pub fn ls_remote(remote: &GitRemote) -> Result<RemoteRefs, MirrorError> {
    list(remote, Side::Remote, &mut Peels::default())
}

/// Lists a remote's branches and tags (one ref listing). Local remotes are read from disk with
/// tag peels from `peels` ([`list_local`]); other remotes advertise their peels (`^{}` lines).
pub(super) fn list(
    remote: &GitRemote,
    side: Side,
    peels: &mut Peels,
) -> Result<RemoteRefs, MirrorError> {
    let r = remote.resolved();
    if let Some(path) = local_path(&r.url) {
        return list_local(&path, side != Side::Mirror, peels).map_err(|e| MirrorError::List {
            side,
            url: r.url.clone(),
            message: e.message().to_string(),
        });
    }
    let fail = |e: git2::Error, tried: &Cell<u32>| {
        git_error(&r, side, &e, tried, |url, message| MirrorError::List {
            side,
            url,
            message,
        })
    };
    super::timeouts::ensure_network_timeouts()?;
    super::owners::allow_other_owners();
    let tried = Cell::new(0);
    let mut git_remote = Remote::create_detached(r.url.as_str()).map_err(|e| fail(e, &tried))?;
    let conn = git_remote
        .connect_auth(Direction::Fetch, Some(callbacks(&r, &tried)), None)
        .map_err(|e| fail(e, &tried))?;
    let heads = conn.list().map_err(|e| fail(e, &tried))?;
    let mut refs = RemoteRefs::default();
    let mut targets: BTreeMap<String, CommitId> = BTreeMap::new();
    let mut peeled: BTreeMap<String, CommitId> = BTreeMap::new();
    for head in heads {
        let name = head.name();
        let oid = CommitId::from(head.oid());
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            refs.branches.insert(branch.to_string(), oid);
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            match tag.strip_suffix("^{}") {
                Some(tag) => peeled.insert(tag.to_string(), oid),
                None => targets.insert(tag.to_string(), oid),
            };
        }
    }
    for (name, target) in targets {
        let peeled = peeled.get(&name).cloned().unwrap_or_else(|| target.clone());
        refs.tags.insert(
            name,
            TagRef {
                target: target.to_string(),
                peeled: Some(peeled),
            },
        );
    }
    tracing::debug!(
        side = %side,
        url = %r.url,
        branches = refs.branches.len(),
        tags = refs.tags.len(),
        "Listed remote refs."
    );
    Ok(refs)
}
