//! A working clone of a repository, made with git2 through the same fetch as every other git
//! transfer ([`fetch_refspecs`](super::fetch_refspecs)): the remote's token or SSH key travel only
//! inside the credential callback, and what is written to the clone's config is the URL without
//! user info. The runners use it where a tool (abra) wants a recipe repository of its own, so no
//! image needs the git CLI.

use std::path::{Path, PathBuf};

use git2::build::CheckoutBuilder;
use git2::Repository;

use super::fetch::fetch_all;
use super::{GitRemote, MirrorError};
use crate::commit::CommitId;

/// Where the remote's HEAD lands during the fetch; deleted before the clone is handed over.
const HEAD_REF: &str = "refs/canon/clone-head";

/// What a clone made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cloned {
    /// The clone's working tree.
    pub path: PathBuf,
    /// The commit checked out: the remote's HEAD.
    pub commit: CommitId,
    /// How many tags the clone holds.
    pub tags: usize,
}

/// Clones `remote` into `dest` (missing or empty), like `git clone` of a repository whose HEAD
/// is detached: every branch as `refs/remotes/origin/<name>`, every tag, a remote `origin`
/// whose URL is [`GitRemote::display_url`], and the working tree checked out at the remote's
/// HEAD commit with HEAD detached there.
///
/// Errors: [`MirrorError::Auth`] or [`MirrorError::Fetch`] from the transfer (URL without user
/// info, message without the token), [`MirrorError::Clone`] for anything local, also when the
/// remote has no HEAD commit.
pub fn clone_detached(remote: &GitRemote, dest: &Path) -> Result<Cloned, MirrorError> {
    let local = |action: &'static str| {
        let path = dest.to_path_buf();
        move |e: git2::Error| MirrorError::Clone {
            path,
            message: format!("{action}: {}", e.message()),
        }
    };
    if dest.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(MirrorError::Clone {
            path: dest.to_path_buf(),
            message: "the folder is not empty".into(),
        });
    }
    let repo = Repository::init(dest).map_err(local("init a repository"))?;
    repo.remote("origin", &remote.display_url())
        .map_err(local("add the remote origin"))?;
    fetch_all(&repo, remote, HEAD_REF)?;
    let mut head = repo
        .find_reference(HEAD_REF)
        .map_err(|_| MirrorError::Clone {
            path: dest.to_path_buf(),
            message: format!("{} has no HEAD commit", remote.display_url()),
        })?;
    let commit = head.peel_to_commit().map_err(local("read HEAD's commit"))?;
    let oid = commit.id();
    head.delete().map_err(local("drop the fetched HEAD ref"))?;
    repo.checkout_tree(commit.as_object(), Some(CheckoutBuilder::new().force()))
        .map_err(local("check out the tree"))?;
    repo.set_head_detached(oid)
        .map_err(local("detach HEAD at the commit"))?;
    let tags = repo.tag_names(None).map_err(local("list tags"))?.len();
    Ok(Cloned {
        path: dest.to_path_buf(),
        commit: oid.into(),
        tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_testkit::git::{git, GitHttpServer};

    /// A repository with two commits, a lightweight and an annotated tag, a second branch and
    /// HEAD detached at the first commit (the shape of canon's own checkouts).
    fn source(root: &Path) -> (PathBuf, String, String) {
        let src = root.join("source");
        std::fs::create_dir_all(&src).expect("source dir");
        git(&src, &["init", "-q", "-b", "main"]);
        std::fs::write(src.join("compose.yml"), "version: '3.8'\n").expect("file");
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-q", "-m", "one"]);
        let first = git(&src, &["rev-parse", "HEAD"]);
        git(&src, &["tag", "1.0.0+1.0"]);
        std::fs::write(src.join("compose.yml"), "version: '3.9'\n").expect("file");
        git(&src, &["commit", "-q", "-am", "two"]);
        let second = git(&src, &["rev-parse", "HEAD"]);
        git(&src, &["tag", "-a", "1.1.0+1.0", "-m", "release"]);
        git(&src, &["branch", "side", &first]);
        git(&src, &["checkout", "-q", "--detach", &first]);
        (src, first, second)
    }

    #[test]
    fn a_clone_holds_every_tag_and_branch_and_is_detached_at_the_remote_head() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (src, first, second) = source(dir.path());
        let dest = dir.path().join("abra/recipes/app");
        let remote = GitRemote::local(src.display().to_string());
        let cloned = clone_detached(&remote, &dest).expect("clone");
        assert_eq!(cloned.commit, first);
        assert_eq!(cloned.tags, 2);
        assert_eq!(git(&dest, &["rev-parse", "HEAD"]), first);
        assert_eq!(
            git(&dest, &["rev-parse", "--abbrev-ref", "HEAD"]),
            "HEAD",
            "detached"
        );
        assert_eq!(
            git(&dest, &["rev-parse", "1.1.0+1.0^{commit}"]),
            second,
            "the annotated tag peels to the second commit"
        );
        assert_eq!(git(&dest, &["rev-parse", "origin/side"]), first);
        assert_eq!(git(&dest, &["rev-parse", "origin/main"]), second);
        assert_eq!(git(&dest, &["status", "--porcelain"]), "", "a clean tree");
        assert_eq!(
            std::fs::read_to_string(dest.join("compose.yml")).expect("checked out"),
            "version: '3.8'\n"
        );
        assert_eq!(
            git(&dest, &["for-each-ref", "refs/canon"]),
            "",
            "no ref of the clone's own making is left"
        );
        assert_eq!(
            git(&dest, &["config", "remote.origin.url"]),
            src.display().to_string()
        );

        let again = clone_detached(&remote, &dest).expect_err("the folder is not empty");
        assert!(again.to_string().contains("not empty"), "{again}");
        let missing = GitRemote::local(dir.path().join("missing").display().to_string());
        let err = clone_detached(&missing, &dir.path().join("other")).expect_err("no repo");
        assert!(matches!(err, MirrorError::Fetch { .. }), "{err}");
    }

    #[test]
    fn a_clone_over_http_sends_the_token_and_never_writes_it_down() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (src, first, _) = source(dir.path());
        let bare = dir.path().join("served.git");
        git(
            dir.path(),
            &[
                "clone",
                "-q",
                "--bare",
                src.to_str().expect("UTF-8"),
                bare.to_str().expect("UTF-8"),
            ],
        );
        // Detach the served HEAD at the first commit, as canon's checkouts are.
        git(&bare, &["update-ref", "--no-deref", "HEAD", &first]);
        let server = GitHttpServer::start(dir.path(), None, "clone-token-123");
        let url = server.url("served.git");

        let refused = clone_detached(
            &GitRemote::with_token(&url, Some(crate::secret::Secret::new("wrong"))),
            &dir.path().join("refused"),
        )
        .expect_err("a wrong token is refused");
        assert!(matches!(refused, MirrorError::Auth { .. }), "{refused}");

        let dest = dir.path().join("clone");
        let remote =
            GitRemote::with_token(&url, Some(crate::secret::Secret::new("clone-token-123")));
        let cloned = clone_detached(&remote, &dest).expect("clone over HTTP");
        assert_eq!(cloned.commit, first);
        assert_eq!(cloned.tags, 2);
        let config = std::fs::read_to_string(dest.join(".git/config")).expect("config");
        assert!(config.contains(&url), "{config}");
        assert!(!config.contains("clone-token-123"), "{config}");
    }
}
