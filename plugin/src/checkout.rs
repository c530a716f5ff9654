//! Fresh per-run checkouts of a recipe's mirror (git2).
//!
//! Every run gets its own clone in its own folder, made from nothing: a shared recipe checkout
//! races between concurrent runs (abra's `app new` moves it to the tag under another run's feet),
//! and a reused tree can carry files from an earlier run. The checkout is detached at the exact
//! commit under test and checked out with `force`, so the tree is that commit and nothing else.
//!
//! The commit under test is decided before the checkout, from upstream (see `run`); the checkout
//! then proves the mirror agrees: a mirror whose tag points elsewhere is out of sync, and testing
//! it would test something other than the release.

use std::path::{Path, PathBuf};

use canon_shared::commit::CommitId;
use canon_shared::mirror::{self, GitRemote, MirrorError, Side};
use git2::{build::CheckoutBuilder, Oid, Repository};

/// Why a checkout could not be made. URLs are shown without credentials and messages have the
/// token removed.
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("checkout {path}: {action}: {message}")]
    Local {
        path: PathBuf,
        action: &'static str,
        message: String,
    },
    #[error("mirror {url}: fetch failed: {message}")]
    Fetch { url: String, message: String },
    #[error("mirror {url} has no tag {tag}; sync the mirror first (`canon-plugin mirror-sync`)")]
    MissingTag { url: String, tag: String },
    #[error("mirror {url} has no ref {reference}")]
    MissingRef { url: String, reference: String },
    #[error("mirror {url}: tag {tag} points at {mirror_commit}, but upstream's tag points at {upstream_commit}; the mirror is out of sync, so nothing is tested (run `canon-plugin mirror-sync`)")]
    MirrorDiffers {
        url: String,
        tag: String,
        mirror_commit: CommitId,
        upstream_commit: CommitId,
    },
    #[error("mirror {url} does not hold commit {commit}{hint}")]
    MissingCommit {
        url: String,
        commit: CommitId,
        hint: String,
    },
}

/// What to check out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// A tag, which must peel to `commit` in the mirror.
    Tag {
        /// The tag name.
        tag: String,
        /// The commit upstream's tag peels to.
        commit: CommitId,
    },
    /// A branch or ref; `commit` (when given) must be in what the ref brings, else the ref's head.
    Ref {
        /// `main` or `refs/...`.
        reference: String,
        /// A specific commit to test.
        commit: Option<CommitId>,
    },
    /// A commit reachable from the mirror's tags (the canonical, as the upgrade base).
    Commit {
        /// The commit.
        commit: CommitId,
        /// A tag that is expected to lead to it (fetched first, to keep the fetch small).
        tag: Option<String>,
    },
}

/// A checkout that was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    /// The folder.
    pub path: PathBuf,
    /// The commit checked out (full hex, lower case).
    pub commit: CommitId,
}

/// Returns the full ref name for a `--ref` value: `main` is `refs/heads/main`.
pub fn full_ref(reference: &str) -> String {
    if reference.starts_with("refs/") {
        reference.to_string()
    } else {
        format!("refs/heads/{reference}")
    }
}

/// Makes a fresh clone of `mirror` in `dest` (which must not exist or be empty) and checks out
/// what `want` names, detached.
pub fn fresh_checkout(
    mirror: &GitRemote,
    want: &Want,
    dest: &Path,
) -> Result<Checkout, CheckoutError> {
    let local = |action: &'static str| {
        let path = dest.to_path_buf();
        move |e: git2::Error| CheckoutError::Local {
            path,
            action,
            message: e.message().to_string(),
        }
    };
    let repo = Repository::init(dest).map_err(local("init a repository"))?;
    let url = mirror.display_url();
    let commit: CommitId = match want {
        Want::Tag { tag, commit } => {
            let local_ref = format!("refs/tags/{tag}");
            fetch(&repo, mirror, &[format!("+{local_ref}:{local_ref}")])?;
            let found: CommitId = repo
                .find_reference(&local_ref)
                .and_then(|r| r.peel_to_commit())
                .map_err(|_| CheckoutError::MissingTag {
                    url: url.clone(),
                    tag: tag.clone(),
                })?
                .id()
                .into();
            if !found.same_object(commit) {
                return Err(CheckoutError::MirrorDiffers {
                    url,
                    tag: tag.clone(),
                    mirror_commit: found,
                    upstream_commit: commit.clone(),
                });
            }
            found
        }
        Want::Ref { reference, commit } => {
            let full = full_ref(reference);
            fetch(&repo, mirror, &[format!("+{full}:refs/canon/tested")])?;
            let head = repo
                .find_reference("refs/canon/tested")
                .and_then(|r| r.peel_to_commit())
                .map_err(|_| CheckoutError::MissingRef {
                    url: url.clone(),
                    reference: full.clone(),
                })?
                .id()
                .into();
            match commit {
                None => head,
                // libgit2's id is the claimed one in lower case.
                Some(c) => find_commit(&repo, c)
                    .ok_or_else(|| CheckoutError::MissingCommit {
                        url: url.clone(),
                        commit: c.clone(),
                        hint: format!(" in {full} (head {head})"),
                    })?
                    .into(),
            }
        }
        Want::Commit { commit, tag } => {
            if let Some(tag) = tag {
                let local_ref = format!("refs/tags/{tag}");
                // The tag may be gone or moved; the full tag fetch below is the fallback.
                let _ = fetch(&repo, mirror, &[format!("+{local_ref}:{local_ref}")]);
            }
            if find_commit(&repo, commit).is_none() {
                fetch(&repo, mirror, &["+refs/tags/*:refs/tags/*".to_string()])?;
            }
            // libgit2's id is the wanted one in lower case.
            find_commit(&repo, commit)
                .ok_or_else(|| CheckoutError::MissingCommit {
                    url: url.clone(),
                    commit: commit.clone(),
                    hint: " (not reachable from any of its tags)".into(),
                })?
                .into()
        }
    };
    let oid = Oid::from_str(&commit).map_err(local("parse the commit"))?;
    let object = repo
        .find_object(oid, None)
        .map_err(local("find the commit"))?;
    repo.checkout_tree(&object, Some(CheckoutBuilder::new().force()))
        .map_err(local("check out the tree"))?;
    repo.set_head_detached(oid)
        .map_err(local("detach HEAD at the commit"))?;
    Ok(Checkout {
        path: dest.to_path_buf(),
        commit,
    })
}

fn find_commit(repo: &Repository, commit: &CommitId) -> Option<Oid> {
    let oid = Oid::from_str(commit).ok()?;
    repo.find_commit(oid).ok().map(|c| c.id())
}

/// Fetches `refspecs` from `remote` into `repo`, with the remote's token or SSH key (see
/// [`mirror::fetch_refspecs`], which keeps the token out of the URL and the messages).
fn fetch(repo: &Repository, remote: &GitRemote, refspecs: &[String]) -> Result<(), CheckoutError> {
    tracing::debug!(url = %remote.display_url(), refspecs = ?refspecs, "Fetching from the mirror.");
    match mirror::fetch_refspecs(repo, remote, Side::Mirror, refspecs) {
        Ok(_) => Ok(()),
        Err(MirrorError::Auth { url, message, .. } | MirrorError::Fetch { url, message }) => {
            Err(CheckoutError::Fetch { url, message })
        }
        // `fetch_refspecs` fails only with the two above; any other is still a fetch failure.
        Err(other) => Err(CheckoutError::Fetch {
            url: remote.display_url(),
            message: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_expand_like_drone_does() {
        assert_eq!(full_ref("main"), "refs/heads/main");
        assert_eq!(full_ref("refs/pull/4/head"), "refs/pull/4/head");
    }
}
