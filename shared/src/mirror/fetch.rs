//! The per-recipe bare cache of upstream, and fetching into a repository.
//!
//! The cache is where upstream's objects land before they are pushed to the mirror. It is reused
//! across syncs, so only new objects move, and it is locked while a sync changes it. The fetch
//! itself ([`fetch_refspecs`]) is also what other code uses to fetch chosen refs with a remote's
//! credentials, so it stays apart from the sync's decisions.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use git2::{AutotagOption, FetchOptions, FetchPrune, Oid, Repository};

use super::plan::Wanted;
use super::remote::{callbacks, git_error};
use super::{GitRemote, MirrorError, Side, TagRef};
use crate::commit::CommitId;
use crate::recipe::RecipeName;

/// Returns the per-recipe bare cache: `<state>/<recipe>/upstream.git`.
pub fn cache_dir(state_root: &Path, recipe: &RecipeName) -> PathBuf {
    state_root.join(recipe.as_str()).join("upstream.git")
}

/// Returns how a git2 failure on the cache at `path` becomes [`MirrorError::Cache`].
pub(super) fn cache_err(path: &Path) -> impl Fn(git2::Error) -> MirrorError + '_ {
    move |e| MirrorError::Cache {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    }
}

/// Returns true when the cache exists and holds `commit`.
pub(super) fn cache_has(path: &Path, branch: &str, commit: &CommitId) -> bool {
    // Fast path: the cache's loose branch ref (as a fetch writes it) already names the commit, and
    // a ref only points to objects that are present.
    if std::fs::read_to_string(path.join("refs/heads").join(branch))
        .is_ok_and(|s| s.trim() == commit.as_str())
    {
        return true;
    }
    let Ok(oid) = Oid::from_str(commit) else {
        return false;
    };
    super::owners::allow_other_owners();
    Repository::open_bare(path)
        .and_then(|repo| repo.odb().map(|odb| odb.exists(oid)))
        .unwrap_or(false)
}

/// Takes the cache's exclusive lock (`<cache>.lock`), waiting for another sync of the same recipe.
pub(super) fn lock_cache(path: &Path) -> Result<File, MirrorError> {
    let lock_path = path.with_extension("git.lock");
    let err = |source| MirrorError::Lock {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = lock_path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    // Never through a link someone else planted in a shared state dir.
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&lock_path)
        .map_err(err)?;
    file.lock().map_err(err)?;
    Ok(file)
}

/// Opens the cache at `path`, creating an empty bare repository there when there is none.
pub(super) fn open_cache(path: &Path) -> Result<Repository, MirrorError> {
    super::owners::allow_other_owners();
    if path.join("HEAD").exists() {
        Repository::open_bare(path).map_err(cache_err(path))
    } else {
        Repository::init_bare(path).map_err(cache_err(path))
    }
}

/// Fetches the branch and all tags of upstream into the cache, pruning tags upstream lacks.
/// Returns (objects, bytes) received.
pub(super) fn fetch(
    repo: &Repository,
    upstream: &GitRemote,
    branch: &str,
) -> Result<(usize, usize), MirrorError> {
    let specs = [
        format!("+refs/heads/{branch}:refs/heads/{branch}"),
        "+refs/tags/*:refs/tags/*".to_string(),
    ];
    fetch_with(repo, upstream, Side::Upstream, &specs, FetchPrune::On)
}

/// Fetches `refspecs` from `remote` into `repo`, authenticating with the remote's token (as the
/// basic-auth password) or SSH key, each offered once. No other tags are followed and
/// `FETCH_HEAD` is not written. Returns (objects, bytes) received.
///
/// Errors are [`MirrorError::Auth`] (naming `side`) or [`MirrorError::Fetch`]; both carry the URL
/// without user info and the git message with the token removed.
pub fn fetch_refspecs(
    repo: &Repository,
    remote: &GitRemote,
    side: Side,
    refspecs: &[String],
) -> Result<(usize, usize), MirrorError> {
    fetch_with(repo, remote, side, refspecs, FetchPrune::Unspecified)
}

/// Fetches everything a working clone holds from `remote` into `repo`: every branch as
/// `refs/remotes/origin/*`, every tag, and the remote's HEAD (also a detached one) as `head_ref`.
pub(super) fn fetch_all(
    repo: &Repository,
    remote: &GitRemote,
    head_ref: &str,
) -> Result<(usize, usize), MirrorError> {
    let specs = [
        "+refs/heads/*:refs/remotes/origin/*".to_string(),
        "+refs/tags/*:refs/tags/*".to_string(),
        format!("+HEAD:{head_ref}"),
    ];
    fetch_with(repo, remote, Side::Remote, &specs, FetchPrune::Unspecified)
}

fn fetch_with(
    repo: &Repository,
    remote: &GitRemote,
    side: Side,
    refspecs: &[String],
    prune: FetchPrune,
) -> Result<(usize, usize), MirrorError> {
    super::timeouts::ensure_network_timeouts()?;
    super::owners::allow_other_owners();
    let r = remote.resolved();
    let tried = Cell::new(0);
    let fail = |e: git2::Error, tried: &Cell<u32>| {
        git_error(&r, side, &e, tried, |url, message| MirrorError::Fetch {
            url,
            message,
        })
    };
    let mut git_remote = repo.remote_anonymous(&r.url).map_err(|e| fail(e, &tried))?;
    let mut fo = FetchOptions::new();
    fo.remote_callbacks(callbacks(&r, &tried))
        .download_tags(AutotagOption::None)
        .prune(prune)
        .update_fetchhead(false);
    git_remote
        .fetch(refspecs, Some(&mut fo), None)
        .map_err(|e| fail(e, &tried))?;
    let stats = git_remote.stats();
    tracing::debug!(
        side = %side,
        url = %r.url,
        refspecs = ?refspecs,
        objects = stats.received_objects(),
        bytes = stats.received_bytes(),
        "Fetched refs."
    );
    Ok((stats.received_objects(), stats.received_bytes()))
}

/// Reads the branch head and tags of the cache, keeping only tags in `upstream_tags` (the listing
/// taken at the start, so a tag deleted upstream never returns through a stale cache).
pub(super) fn cache_state(
    repo: &Repository,
    path: &Path,
    branch: &str,
    upstream_tags: &BTreeMap<String, TagRef>,
) -> Result<Wanted, MirrorError> {
    let err = cache_err(path);
    let head = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .map_err(&err)?
        .into();
    let mut tags = BTreeMap::new();
    let mut stale = Vec::new();
    for reference in repo.references_glob("refs/tags/*").map_err(&err)? {
        let reference = reference.map_err(&err)?;
        let (Ok(full), Some(target)) = (reference.name(), reference.target()) else {
            continue;
        };
        let name = full.trim_start_matches("refs/tags/").to_string();
        if !upstream_tags.contains_key(&name) {
            stale.push(full.to_string());
            continue;
        }
        let peeled = reference.peel_to_commit().map_err(&err)?.id().into();
        tags.insert(
            name,
            TagRef {
                target: target.to_string(),
                peeled: Some(peeled),
            },
        );
    }
    for full in stale {
        if let Ok(mut r) = repo.find_reference(&full) {
            r.delete().map_err(&err)?;
        }
    }
    Ok(Wanted { head, tags })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_refspecs_brings_only_the_asked_refs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let source = Repository::init(dir.path().join("source")).expect("init source");
        let sig = git2::Signature::now("t", "t@example.org").expect("signature");
        let tree = {
            let mut index = source.index().expect("index");
            let oid = index.write_tree().expect("write tree");
            source.find_tree(oid).expect("tree")
        };
        let commit = source
            .commit(Some("HEAD"), &sig, &sig, "one", &tree, &[])
            .expect("commit");
        let object = source.find_object(commit, None).expect("object");
        source
            .tag_lightweight("1.0.0", &object, false)
            .expect("tag");
        source
            .tag_lightweight("2.0.0", &object, false)
            .expect("tag");

        let dest = Repository::init(dir.path().join("dest")).expect("init dest");
        let remote = GitRemote::local(dir.path().join("source").display().to_string());
        let spec = "+refs/tags/1.0.0:refs/tags/1.0.0".to_string();
        fetch_refspecs(&dest, &remote, Side::Mirror, &[spec]).expect("fetch");
        assert_eq!(
            dest.refname_to_id("refs/tags/1.0.0").expect("fetched tag"),
            commit
        );
        assert!(
            dest.refname_to_id("refs/tags/2.0.0").is_err(),
            "not asked for"
        );
        assert!(dest.find_reference("FETCH_HEAD").is_err(), "no FETCH_HEAD");

        let missing = GitRemote::local(dir.path().join("missing").display().to_string());
        let err = fetch_refspecs(
            &dest,
            &missing,
            Side::Mirror,
            &["+refs/tags/*:refs/tags/*".into()],
        )
        .expect_err("no such repository");
        assert!(matches!(err, MirrorError::Fetch { .. }), "{err}");
    }
}
