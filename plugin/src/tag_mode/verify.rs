//! Step 1, verify: what exactly is tested. A tag is the commit it peels to upstream, and every
//! commit the build claims must be that one; a ref is what the mirror's ref brings.
//!
//! Separate because it is the trust boundary of a run: nothing is checked out or run before it
//! holds, and the gate asks upstream again through [`upstream_tag_commit`].

use canon_shared::commit::CommitId;
use canon_shared::gate::TestedRef;
use canon_shared::mirror;

use super::{RunError, RunSettings};
use crate::checkout::Want;

/// What the verify step established.
#[derive(Debug)]
pub(super) struct Verified {
    /// What the checkout must be: the tag at its upstream commit, or the ref.
    pub(super) want: Want,
    /// The tag's peeled commit upstream (`None` for a ref, known only from its checkout).
    pub(super) commit: Option<CommitId>,
}

/// Resolves the tag upstream and checks every claimed commit against it; for a ref, takes the
/// first claimed commit as the one to test.
pub(super) fn verify(settings: &RunSettings) -> Result<Verified, RunError> {
    let name = settings.recipe.name.to_string();
    match &settings.tested {
        TestedRef::Tag(tag) => {
            let commit = upstream_tag_commit(settings, tag)?;
            tracing::info!(recipe = %name, tag, %commit, "Resolved the tag upstream.");
            if let Some(claim) = settings
                .claimed_commits
                .iter()
                .find(|claim| !claim.commit.same_object(&commit))
            {
                return Err(RunError::CommitMismatch {
                    recipe: name,
                    tag: tag.clone(),
                    source_name: claim.source,
                    claimed: claim.commit.clone(),
                    actual: commit,
                });
            }
            Ok(Verified {
                want: Want::Tag {
                    tag: tag.clone(),
                    commit: commit.clone(),
                },
                commit: Some(commit),
            })
        }
        TestedRef::Ref(r) => Ok(Verified {
            want: Want::Ref {
                reference: r.clone(),
                commit: settings.claimed_commits.first().map(|c| c.commit.clone()),
            },
            commit: None,
        }),
    }
}

/// Returns the commit `tag` peels to upstream.
pub(super) fn upstream_tag_commit(settings: &RunSettings, tag: &str) -> Result<CommitId, RunError> {
    let name = settings.recipe.name.to_string();
    let refs = mirror::ls_remote(&settings.upstream).map_err(|source| RunError::Upstream {
        recipe: name.clone(),
        source,
    })?;
    // A remote listed on its own has every tag peeled; a tag without its commit could not be
    // tested any more than a missing one.
    let peeled = refs.tags.get(tag).and_then(|t| t.peeled.as_ref());
    let commit = peeled.ok_or_else(|| RunError::TagNotUpstream {
        recipe: name.clone(),
        url: settings.upstream.display_url(),
        tag: tag.to_string(),
    })?;
    Ok(commit.lowercase())
}
