//! Faithful git mirror sync (git2, blocking).
//!
//! A mirror must equal its upstream for one branch (`main` by default) and for the complete set of
//! tags, while keeping every other ref it has: the pull-request head branches that CI tests live
//! there, and deleting them would close the PRs. So this module never uses `--mirror` semantics:
//! it fetches upstream into a per-recipe bare cache (reused, so only new objects move), then pushes
//! exactly the branch and the `refs/tags/*` that differ, deletes mirror tags upstream no longer has,
//! and lists the mirror again to prove the result.
//!
//! A sync where both ref listings already agree costs one listing per side and nothing else. For
//! repositories on the local filesystem a listing reads the ref files directly (`packed-refs` and
//! loose refs, no libgit2 repository open), and upstream's tags are peeled from a table the cache
//! keeps instead of the object database, so a fleet-wide no-op sync is a few small file reads per
//! repository.
//!
//! Tokens travel only inside libgit2's credential callback (as the basic-auth password); every URL
//! that reaches a report, a log or an error is [`GitRemote::display_url`], with user info removed,
//! and every git message is passed through [`Secret::redact`](crate::secret::Secret::redact).
//!
//! [`close_merged_prs`] closes mirror PRs whose head commit upstream has merged (section 3 of the
//! design: reachability from the synced upstream branch; squash and rebase merges stay open).
//!
//! # Where the steps live
//!
//! [`sync`] (here) runs one pass through the files of this folder:
//! 1. `refs` lists upstream and the mirror; `local_refs` reads a repository on this filesystem
//!    from its ref files, with upstream's tag peels from the cache's table.
//! 2. `plan` compares the two listings; when they agree and the cache holds upstream's head, the
//!    sync ends here.
//! 3. `fetch` fetches upstream into the locked cache and reads back what the mirror must become.
//! 4. `push` pushes the differing branch and tags (deleting extra tags), and verifies a fresh
//!    listing of the mirror against upstream.
//!
//! `clone` makes a working clone (every branch and tag, HEAD detached) for tools that want a
//! repository of their own, through the same fetch.
//!
//! `remote` hands every step its remote: the URL without user info, the credential and host key
//! callbacks ([`known_hosts`]) and git messages with the token removed. `merged_prs` closes PRs
//! after a sync.

mod clone;
pub mod credentials;
mod fetch;
pub mod known_hosts;
mod local_refs;
mod merged_prs;
mod owners;
mod plan;
mod push;
mod refs;
mod remote;
mod stale_locks;
mod timeouts;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;

use git2::Repository;
use serde::Serialize;

use crate::commit::CommitId;
use crate::forge::ForgeError;

pub use clone::{clone_detached, Cloned};
pub use credentials::Credentials;
pub use fetch::{cache_dir, fetch_refspecs};
pub use merged_prs::{close_merged_prs, merged_heads, CloseReport, ClosedPr, PrFailure};
pub use plan::MovedTag;
pub use refs::{ls_remote, RemoteRefs, TagRef};
pub use remote::{same_origin, GitRemote};
pub use timeouts::{set_network_timeouts, DEFAULT_CONNECT, DEFAULT_READ};

/// Pushes `refspecs` from `repo` to `remote` with the remote's credentials, without force unless
/// a refspec says `+`; fails when the push fails or the server refuses any ref
/// ([`MirrorError::Rejected`]). The state repository's commits go out through it.
pub fn push_refspecs(
    repo: &git2::Repository,
    remote: &GitRemote,
    refspecs: &[String],
) -> Result<(), MirrorError> {
    push::push(repo, remote, refspecs)
}

/// Removes the git lock files a killed write left in the repository at `path` (bare or not);
/// returns what it removed. Call only while holding the lock under which canon alone writes it.
pub fn clear_stale_git_locks(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    stale_locks::clear(&stale_locks::git_dir(path))
}

use fetch::{cache_has, cache_state, fetch, lock_cache, open_cache};
use local_refs::{peel_in, Peels};
use plan::{mirror_equals, plan, Plan, Wanted};
use push::{mismatches, push};
use refs::list;
use remote::local_path;

/// Which end of a sync a failure happened at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The upstream repository (read only).
    Upstream,
    /// The mirror repository (pushed to).
    Mirror,
    /// A remote listed on its own ([`ls_remote`]).
    Remote,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Upstream => "upstream",
            Side::Mirror => "mirror",
            Side::Remote => "remote",
        })
    }
}

/// Why a sync (or a step of it) failed. URLs are shown without user info; git messages have the
/// token removed.
#[derive(Debug, thiserror::Error)]
pub enum MirrorError {
    #[error("{side} {url}: cannot list refs: {message}")]
    List {
        side: Side,
        url: String,
        message: String,
    },
    #[error("{side} {url}: authentication failed ({message}); check the token or SSH key")]
    Auth {
        side: Side,
        url: String,
        message: String,
    },
    #[error("upstream {url} has no branch `{branch}`")]
    MissingBranch { url: String, branch: String },
    #[error("invalid branch name {branch:?}")]
    InvalidBranch { branch: String },
    #[error("cache {path}: {message}")]
    Cache { path: PathBuf, message: String },
    #[error("cache {path}: cannot lock it: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upstream {url}: fetch into the cache failed: {message}")]
    Fetch { url: String, message: String },
    #[error("mirror {url}: push failed: {message}")]
    Push { url: String, message: String },
    #[error("mirror {url}: the push was rejected for {}", .refs.iter().map(|(r, m)| format!("{r} ({m})")).collect::<Vec<_>>().join(", "))]
    Rejected {
        url: String,
        refs: Vec<(String, String)>,
    },
    #[error("mirror {url}: after the push it still differs from upstream: {}", .mismatches.join("; "))]
    Verify {
        url: String,
        mismatches: Vec<String>,
    },
    #[error("clone into {path}: {message}")]
    Clone { path: PathBuf, message: String },
    #[error("cache {path} does not hold upstream commit {commit}; sync first")]
    NotCached { path: PathBuf, commit: CommitId },
    #[error("{message}")]
    Setup { message: String },
    #[error("forge: {0}")]
    Forge(#[from] ForgeError),
}

/// What to sync: one upstream/mirror pair, one branch, one cache.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// Where refs come from (only read).
    pub upstream: GitRemote,
    /// Where refs go (the branch and tags only).
    pub mirror: GitRemote,
    /// The branch kept equal (short name, e.g. `main`).
    pub branch: String,
    /// The per-recipe bare cache ([`cache_dir`]); created when missing.
    pub cache_dir: PathBuf,
}

/// An annotated tag and its peeled commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnotatedTag {
    /// The tag name.
    pub name: String,
    /// The tag object.
    pub tag_object: String,
    /// The commit it peels to.
    pub commit: CommitId,
}

/// The outcome of a faithful sync.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// The upstream URL (no user info).
    pub upstream: String,
    /// The mirror URL (no user info).
    pub mirror: String,
    /// The branch kept equal.
    pub branch: String,
    /// True when both listings already agreed: nothing was fetched or pushed.
    pub no_op: bool,
    /// Refs the mirror did not have (full names, e.g. `refs/tags/1.0.0+2.0`).
    pub created: Vec<String>,
    /// Refs the mirror had with another value.
    pub updated: Vec<String>,
    /// Mirror tags upstream no longer has, now deleted.
    pub deleted: Vec<String>,
    /// Synced refs that were already equal.
    pub unchanged: Vec<String>,
    /// Upstream tags that moved (same name, new target). Canonicals care.
    pub moved_tags: Vec<MovedTag>,
    /// Upstream's annotated tags with their peeled commits.
    pub annotated_tags: Vec<AnnotatedTag>,
    /// Objects received from upstream into the cache.
    pub objects_fetched: usize,
    /// Bytes received from upstream into the cache.
    pub bytes_fetched: usize,
    /// Wall time of the whole sync, in milliseconds.
    pub duration_ms: u64,
    /// Upstream's branch head commit.
    pub upstream_head: CommitId,
    /// Upstream's tags: name -> peeled commit.
    pub upstream_tags: BTreeMap<String, CommitId>,
}

impl SyncReport {
    /// Returns true when the mirror had to change.
    pub fn changed(&self) -> bool {
        !(self.created.is_empty() && self.updated.is_empty() && self.deleted.is_empty())
    }

    /// Returns a one-line summary: `created 1, updated 0, deleted 0, unchanged 31 (12 ms)`.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "created {}, updated {}, deleted {}, unchanged {}",
            self.created.len(),
            self.updated.len(),
            self.deleted.len(),
            self.unchanged.len()
        );
        if self.no_op {
            s.push_str(", no-op");
        } else {
            s.push_str(&format!(", {} objects fetched", self.objects_fetched));
        }
        if !self.moved_tags.is_empty() {
            let names: Vec<&str> = self.moved_tags.iter().map(|m| m.name.as_str()).collect();
            s.push_str(&format!(", moved tags: {}", names.join(" ")));
        }
        s.push_str(&format!(" ({} ms)", self.duration_ms));
        s
    }
}

/// Makes the mirror's branch and complete tag set equal to upstream's, touching no other ref.
///
/// Steps: list both sides; if they agree (and the cache holds the upstream head) stop there.
/// Otherwise fetch upstream into the cache, force-push the differing branch and tags, delete
/// mirror tags upstream lacks, and list the mirror again to verify every synced ref.
pub fn sync(req: &SyncRequest) -> Result<SyncReport, MirrorError> {
    let started = Instant::now();
    if git2::Branch::name_is_valid(&req.branch).ok() != Some(true) {
        return Err(MirrorError::InvalidBranch {
            branch: req.branch.clone(),
        });
    }
    let upstream_url = req.upstream.display_url();
    let mirror_url = req.mirror.display_url();
    let mut peels = Peels::load(&req.cache_dir);
    let up = list(&req.upstream, Side::Upstream, &mut peels)?;
    let mirror_before = list(&req.mirror, Side::Mirror, &mut peels)?;
    let Some(up_head) = up.branches.get(&req.branch).cloned() else {
        return Err(MirrorError::MissingBranch {
            url: upstream_url,
            branch: req.branch.clone(),
        });
    };
    let listed = Wanted {
        head: up_head,
        tags: up.tags.clone(),
    };
    let report = |wanted: &Wanted, plan: Plan, no_op: bool, fetched: (usize, usize)| SyncReport {
        upstream: upstream_url.clone(),
        mirror: mirror_url.clone(),
        branch: req.branch.clone(),
        no_op,
        created: plan.created,
        updated: plan.updated,
        deleted: plan.deleted,
        unchanged: plan.unchanged,
        moved_tags: plan.moved_tags,
        annotated_tags: wanted
            .tags
            .iter()
            .filter(|(_, t)| t.is_annotated())
            .filter_map(|(n, t)| {
                Some(AnnotatedTag {
                    name: n.clone(),
                    tag_object: t.target.clone(),
                    commit: t.peeled.clone()?,
                })
            })
            .collect(),
        objects_fetched: fetched.0,
        bytes_fetched: fetched.1,
        duration_ms: started.elapsed().as_millis() as u64,
        upstream_head: wanted.head.clone(),
        upstream_tags: wanted
            .tags
            .iter()
            .filter_map(|(n, t)| Some((n.clone(), t.peeled.clone()?)))
            .collect(),
    };

    if mirror_equals(&listed, &mirror_before, &req.branch)
        && cache_has(&req.cache_dir, &req.branch, &listed.head)
    {
        if peels.learned {
            // Peeled through upstream's objects this time (a cache from before the table, or a
            // table lost): remember, so the next no-op sync reads ref files only.
            Peels::save(&req.cache_dir, &listed.tags);
        }
        let p = plan(&listed, &mirror_before, &req.branch);
        let rep = report(&listed, p, true, (0, 0));
        tracing::debug!(upstream = %rep.upstream, mirror = %rep.mirror, "Mirror already equals upstream.");
        return Ok(rep);
    }

    let _lock = lock_cache(&req.cache_dir)?;
    // Under the cache lock canon is the only writer of the cache and of a local mirror: a git
    // lock file in either is what a killed sync left behind.
    stale_locks::clear(&req.cache_dir);
    if let Some(path) = local_path(&mirror_url) {
        stale_locks::clear(&stale_locks::git_dir(&path));
    }
    let repo = open_cache(&req.cache_dir)?;
    let fetched = fetch(&repo, &req.upstream, &req.branch)?;
    let wanted = cache_state(&repo, &req.cache_dir, &req.branch, &up.tags)?;
    Peels::save(&req.cache_dir, &wanted.tags);
    let mut p = plan(&wanted, &mirror_before, &req.branch);
    for moved in &mut p.moved_tags {
        if moved.old_commit.is_none() {
            // The mirror listing was not peeled: the cache held the old object until now (it was
            // upstream's), else a local mirror still has it.
            let mirror_repo = local_path(&mirror_url).and_then(|p| Repository::open(p).ok());
            moved.old_commit = peel_in(&repo, &moved.old)
                .or_else(|e| {
                    mirror_repo
                        .as_ref()
                        .map_or(Err(e), |m| peel_in(m, &moved.old))
                })
                .ok();
        }
    }
    if !p.refspecs.is_empty() {
        tracing::debug!(
            mirror = %mirror_url,
            refs = p.refspecs.len(),
            "Pushing the branch and tags to the mirror."
        );
        push(&repo, &req.mirror, &p.refspecs)?;
        let after = list(&req.mirror, Side::Mirror, &mut peels)?;
        let diff = mismatches(&wanted, &after, &req.branch);
        if !diff.is_empty() {
            return Err(MirrorError::Verify {
                url: mirror_url,
                mismatches: diff,
            });
        }
    }
    let rep = report(&wanted, p, false, fetched);
    tracing::info!(
        upstream = %rep.upstream,
        mirror = %rep.mirror,
        created = rep.created.len(),
        updated = rep.updated.len(),
        deleted = rep.deleted.len(),
        objects = rep.objects_fetched,
        "Mirror synced."
    );
    Ok(rep)
}
