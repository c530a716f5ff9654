//! Closing mirror pull requests whose head commit upstream has merged (section 3 of the design).
//!
//! "Merged" means reachable from the synced upstream branch in the cache, so this runs after a
//! sync; squash and rebase merges have other commits and stay open. Separate from the sync
//! because it talks to the forge, not to git remotes.

use std::path::Path;

use git2::{Oid, Repository};
use serde::Serialize;

use super::fetch::cache_err;
use super::MirrorError;
use crate::commit::CommitId;
use crate::forge::{CloseOutcome, Forge};

/// A PR closed because upstream merged it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClosedPr {
    /// The PR number on the mirror.
    pub number: u64,
    /// The PR's head commit, reachable from the upstream branch.
    pub head: String,
    /// Whether the forge had already marked it merged or closed (nothing was changed).
    pub already_done: bool,
}

/// A PR that could not be closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PrFailure {
    /// The PR number on the mirror.
    pub number: u64,
    /// Why (token removed).
    pub error: String,
}

/// The outcome of [`close_merged_prs`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CloseReport {
    /// PRs whose head upstream has merged: closed now, or already closed/merged by the forge.
    pub closed: Vec<ClosedPr>,
    /// PRs left open (their head is not reachable from the upstream branch).
    pub left_open: Vec<u64>,
    /// PRs that should have been closed but the forge refused.
    pub failed: Vec<PrFailure>,
}

/// Returns the open PRs (number, head) whose head commit is reachable from `branch_head`.
///
/// The cache must hold `branch_head`; a PR head absent from the cache cannot be reachable from
/// it, since a fetch brings the full history of the head. Squash or rebase merges have other
/// commits and are not detected: such PRs stay open.
pub fn merged_heads(
    cache_dir: &Path,
    branch_head: &CommitId,
    heads: &[(u64, String)],
) -> Result<Vec<(u64, bool)>, MirrorError> {
    let not_cached = || MirrorError::NotCached {
        path: cache_dir.to_path_buf(),
        commit: branch_head.clone(),
    };
    super::owners::allow_other_owners();
    let repo = Repository::open_bare(cache_dir).map_err(|_| not_cached())?;
    let head = Oid::from_str(branch_head).map_err(|_| not_cached())?;
    let odb = repo.odb().map_err(cache_err(cache_dir))?;
    if !odb.exists(head) {
        return Err(not_cached());
    }
    let mut out = Vec::with_capacity(heads.len());
    for (number, pr_head) in heads {
        let merged = match Oid::from_str(pr_head) {
            Ok(oid) if oid == head => true,
            Ok(oid) if odb.exists(oid) => repo.graph_descendant_of(head, oid).unwrap_or(false),
            _ => false,
        };
        out.push((*number, merged));
    }
    Ok(out)
}

/// Closes every open mirror PR whose head commit is reachable from the upstream branch head
/// `branch_head` (after a sync), with a comment naming that upstream commit. Every other PR stays
/// open. Already merged (Gitea's 412) or already closed PRs are no-ops. A failure to close one PR
/// is recorded and the others are still handled; a failure to list PRs is an error.
pub async fn close_merged_prs(
    forge: &dyn Forge,
    mirror_repo: &str,
    cache_dir: &Path,
    branch_head: &CommitId,
) -> Result<CloseReport, MirrorError> {
    let prs = forge.list_open_prs(mirror_repo).await?;
    let heads: Vec<(u64, String)> = prs.iter().map(|p| (p.number, p.head_sha.clone())).collect();
    let decisions = merged_heads(cache_dir, branch_head, &heads)?;
    let mut report = CloseReport::default();
    for ((number, merged), (_, head)) in decisions.into_iter().zip(heads) {
        if !merged {
            report.left_open.push(number);
            continue;
        }
        let comment = format!(
            "Merged upstream: this pull request's head commit {head} is part of the upstream branch \
             at commit {branch_head}. Closed by canon after syncing the mirror."
        );
        match forge.close_pr(mirror_repo, number, &comment).await {
            Ok(outcome) => {
                tracing::info!(repo = mirror_repo, pr = number, head = %head, outcome = ?outcome, "Closed a PR merged upstream.");
                report.closed.push(ClosedPr {
                    number,
                    head,
                    already_done: outcome != CloseOutcome::Closed,
                });
            }
            Err(e) => {
                tracing::warn!(repo = mirror_repo, pr = number, error = %e, "Could not close a PR merged upstream.");
                report.failed.push(PrFailure {
                    number,
                    error: e.to_string(),
                });
            }
        }
    }
    Ok(report)
}
