//! Pushing the planned refs from the cache to the mirror, and checking the result.
//!
//! A push can succeed as a whole and still refuse single refs (a protected branch, a server
//! hook), so refused refs are collected and fail the sync; and the sync does not take the push's
//! word for the result either: it lists the mirror again and compares it with upstream
//! ([`mismatches`]).

use std::cell::{Cell, RefCell};

use git2::{PushOptions, Repository};

use super::plan::Wanted;
use super::remote::{callbacks, git_error};
use super::{GitRemote, MirrorError, RemoteRefs, Side};

/// Pushes `refspecs` from the cache to the mirror; fails when any ref is rejected.
pub(super) fn push(
    repo: &Repository,
    mirror: &GitRemote,
    refspecs: &[String],
) -> Result<(), MirrorError> {
    super::timeouts::ensure_network_timeouts()?;
    super::owners::allow_other_owners();
    let r = mirror.resolved();
    let tried = Cell::new(0);
    let rejected: RefCell<Vec<(String, String)>> = RefCell::new(Vec::new());
    {
        let mut remote = repo
            .remote_anonymous(&r.url)
            .map_err(|e| MirrorError::Push {
                url: r.url.clone(),
                message: r.scrub(e.message()),
            })?;
        let mut cb = callbacks(&r, &tried);
        cb.push_update_reference(|refname, status| {
            if let Some(msg) = status {
                rejected
                    .borrow_mut()
                    .push((refname.to_string(), r.scrub(msg)));
            }
            Ok(())
        });
        cb.push_transfer_progress(|_, _, _| crate::fault::point("push:transfer"));
        let mut po = PushOptions::new();
        po.remote_callbacks(cb);
        remote.push(refspecs, Some(&mut po)).map_err(|e| {
            git_error(&r, Side::Mirror, &e, &tried, |url, message| {
                MirrorError::Push { url, message }
            })
        })?;
    }
    let rejected = rejected.into_inner();
    if rejected.is_empty() {
        Ok(())
    } else {
        Err(MirrorError::Rejected {
            url: r.url,
            refs: rejected,
        })
    }
}

/// Lists how the mirror differs from `wanted` after a push (empty when it is equal).
pub(super) fn mismatches(wanted: &Wanted, mirror: &RemoteRefs, branch: &str) -> Vec<String> {
    let mut out = Vec::new();
    if mirror.branches.get(branch) != Some(&wanted.head) {
        out.push(format!(
            "refs/heads/{branch} is {} (upstream {})",
            mirror
                .branches
                .get(branch)
                .map_or("missing", |s| s.as_str()),
            wanted.head
        ));
    }
    for (name, tag) in &wanted.tags {
        match mirror.tags.get(name) {
            Some(m) if m.target == tag.target => {}
            Some(m) => out.push(format!(
                "refs/tags/{name} is {} (upstream {})",
                m.target, tag.target
            )),
            None => out.push(format!("refs/tags/{name} is missing")),
        }
    }
    for name in mirror.tags.keys() {
        if !wanted.tags.contains_key(name) {
            out.push(format!("refs/tags/{name} should not exist"));
        }
    }
    out
}
