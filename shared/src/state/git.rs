//! The state in a git repository on the forge, shared by every runner host.
//!
//! Layout on the branch `main`: `<recipe>/canonical.json` and `<recipe>/history.jsonl`, the same
//! files a state dir holds. Every decision is one commit on top of the `main` this host last
//! fetched (reads fetch; a decision fetches only when it has nothing, or lost), and `main` moves
//! to it only from the `main` it was decided against (compare and swap): over HTTP and SSH by a
//! push without force, which the server's `receive-pack` checks under its ref lock; on a local
//! path or `file://` URL, where libgit2 would write the ref without such a check, by moving the
//! ref in that repository under git's ref lock from the expected commit only. A decision that
//! did not land is never forced:
//! the new `main` is fetched, the decision is taken again against it, and the push retried, at
//! most [`MAX_ATTEMPTS`] times with a random pause between. Nothing is ever overwritten, so the
//! canonical only moves forward and each decision is in the history once.
//!
//! Each host keeps a bare clone in its state dir (`state-repo.git`), written under a host-local
//! lock; the recipe locks of the state dir keep this host's own runs apart.

use std::fs::File;
use std::path::PathBuf;
use std::time::Duration;

use git2::{FileMode, Oid, Repository, Signature};
use rand::RngExt as _;

use super::store::{Change, Committed, Decide, StateStore};
use super::{CanonicalRecord, HistoryEntry, LockWait, RecipeLock, StateDir, StateError};
use crate::mirror::{self, GitRemote, Side};
use crate::recipe::RecipeName;

/// How many times one decision is taken before giving up on a contended recipe.
pub const MAX_ATTEMPTS: u32 = 12;
/// The branch the state lives on.
const BRANCH: &str = "main";
/// Where this host keeps the fetched `main`.
const FETCHED: &str = "refs/remotes/origin/main";
/// Where this host keeps a commit it is about to push.
const PENDING: &str = "refs/canon/pending";

/// A state repository and this host's clone of it.
#[derive(Debug)]
pub struct GitStore {
    remote: GitRemote,
    local: StateDir,
}

impl GitStore {
    /// A store over the repository at `remote`; `local` is this host's state dir, which keeps the
    /// clone and the recipe locks.
    pub fn new(remote: GitRemote, local: StateDir) -> Self {
        Self { remote, local }
    }

    fn url(&self) -> String {
        self.remote.display_url()
    }

    fn err(&self, message: impl Into<String>) -> StateError {
        StateError::Repository {
            url: self.url(),
            message: message.into(),
        }
    }

    fn clone_dir(&self) -> PathBuf {
        self.local.root().join("state-repo.git")
    }

    /// Takes the host-local lock on the clone; clears git lock files a killed process left.
    fn lock_clone(&self) -> Result<File, StateError> {
        let dir = self.clone_dir();
        std::fs::create_dir_all(self.local.root()).map_err(|e| {
            self.err(format!(
                "cannot create {}: {e}",
                self.local.root().display()
            ))
        })?;
        let path = self.local.root().join("state-repo.lock");
        let file = super::files::open_lock(&path, self.local.owners())?;
        file.lock()
            .map_err(|e| self.err(format!("cannot lock {}: {e}", path.display())))?;
        if dir.join("HEAD").exists() {
            mirror::clear_stale_git_locks(&dir);
        }
        Ok(file)
    }

    fn open(&self) -> Result<Repository, StateError> {
        let dir = self.clone_dir();
        let repo = if dir.join("HEAD").exists() {
            Repository::open_bare(&dir)
        } else {
            Repository::init_bare(&dir)
        };
        repo.map_err(|e| {
            self.err(format!(
                "cannot open the clone {}: {}",
                dir.display(),
                e.message()
            ))
        })
    }

    /// Fetches `main`; returns its commit, or none while the repository is empty.
    fn fetch(&self, repo: &Repository) -> Result<Option<Oid>, StateError> {
        let specs = [format!("+refs/heads/{BRANCH}:{FETCHED}")];
        match mirror::fetch_refspecs(repo, &self.remote, Side::Remote, &specs) {
            Ok(_) => {}
            // An empty repository has no `main` to fetch yet.
            Err(e) if e.to_string().contains("couldn't find remote ref") => {
                return Ok(None);
            }
            Err(e) => return Err(self.err(e.to_string())),
        }
        match repo.find_reference(FETCHED) {
            Ok(r) => Ok(r.target()),
            Err(_) => Ok(None),
        }
    }

    /// Reads `<recipe>/<file>` at `commit`; none when the commit or the file is missing.
    fn read_file(
        &self,
        repo: &Repository,
        commit: Option<Oid>,
        recipe: &RecipeName,
        file: &str,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let Some(commit) = commit else {
            return Ok(None);
        };
        let tree = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map_err(|e| self.err(e.message().to_string()))?;
        let path = format!("{}/{file}", recipe.as_str());
        let entry = match tree.get_path(std::path::Path::new(&path)) {
            Ok(e) => e,
            Err(e) if e.code() == git2::ErrorCode::NotFound => return Ok(None),
            Err(e) => return Err(self.err(e.message().to_string())),
        };
        let blob = repo
            .find_blob(entry.id())
            .map_err(|e| self.err(format!("{path}: {}", e.message())))?;
        Ok(Some(blob.content().to_vec()))
    }

    fn canonical_at(
        &self,
        repo: &Repository,
        commit: Option<Oid>,
        recipe: &RecipeName,
    ) -> Result<Option<CanonicalRecord>, StateError> {
        let path = PathBuf::from(format!("{}: {recipe}/canonical.json", self.url()));
        match self.read_file(repo, commit, recipe, "canonical.json")? {
            None => Ok(None),
            Some(bytes) => super::parse_canonical(&path, &bytes, recipe).map(Some),
        }
    }

    /// Writes `change` of `recipe` as one commit on `parent`; returns the commit.
    fn write_commit(
        &self,
        repo: &Repository,
        parent: Option<Oid>,
        recipe: &RecipeName,
        change: &Change,
    ) -> Result<Oid, StateError> {
        let git = |e: git2::Error| self.err(e.message().to_string());
        let parent_commit = parent
            .map(|p| repo.find_commit(p))
            .transpose()
            .map_err(git)?;
        let root = parent_commit
            .as_ref()
            .map(|c| c.tree())
            .transpose()
            .map_err(git)?;
        let old_dir = root
            .as_ref()
            .and_then(|t| t.get_name(recipe.as_str()))
            .map(|e| repo.find_tree(e.id()))
            .transpose()
            .map_err(git)?;
        let mut dir = repo.treebuilder(old_dir.as_ref()).map_err(git)?;
        if let Some(record) = &change.canonical {
            let bytes = super::format::to_document(record)
                .map_err(|e| self.err(format!("cannot encode the record: {e}")))?;
            let blob = repo.blob(&bytes).map_err(git)?;
            dir.insert("canonical.json", blob, FileMode::Blob.into())
                .map_err(git)?;
        }
        if !change.history.is_empty() {
            let mut history = self
                .read_file(repo, parent, recipe, "history.jsonl")?
                .unwrap_or_default();
            for entry in &change.history {
                let line = super::format::to_line(entry)
                    .map_err(|e| self.err(format!("cannot encode the history: {e}")))?;
                history.extend_from_slice(&line);
                history.push(b'\n');
            }
            let blob = repo.blob(&history).map_err(git)?;
            dir.insert("history.jsonl", blob, FileMode::Blob.into())
                .map_err(git)?;
        }
        let dir_oid = dir.write().map_err(git)?;
        let mut top = repo.treebuilder(root.as_ref()).map_err(git)?;
        top.insert(recipe.as_str(), dir_oid, FileMode::Tree.into())
            .map_err(git)?;
        let tree = repo.find_tree(top.write().map_err(git)?).map_err(git)?;
        let sig = Signature::now("canon", "canon@localhost").map_err(git)?;
        let parents: Vec<&git2::Commit<'_>> = parent_commit.iter().collect();
        repo.commit(
            None,
            &sig,
            &sig,
            &commit_message(recipe, change),
            &tree,
            &parents,
        )
        .map_err(git)
    }
}

/// Returns a decision's commit message: its first history line, or the new canonical.
fn commit_message(recipe: &RecipeName, change: &Change) -> String {
    let mut lines: Vec<String> = change.history.iter().map(history_line).collect();
    if lines.is_empty() {
        if let Some(record) = &change.canonical {
            lines.push(format!("{recipe}: canonical {}", record.version));
        }
    }
    let subject = lines
        .first()
        .cloned()
        .unwrap_or_else(|| format!("{recipe}: no change"));
    let body = lines.iter().skip(1).cloned().collect::<Vec<_>>().join("\n");
    if body.is_empty() {
        format!("{subject}\n")
    } else {
        format!("{subject}\n\n{body}\n")
    }
}

fn history_line(entry: &HistoryEntry) -> String {
    format!(
        "{}: {} {}",
        entry.recipe,
        entry.decision,
        entry.version.as_deref().unwrap_or("-")
    )
}

/// A random pause before attempt `attempt` (1-based) is taken again: up to 50 ms, doubling.
fn pause(attempt: u32) -> Duration {
    let ceiling = 50u64 << attempt.min(5);
    Duration::from_millis(rand::rng().random_range(10..=ceiling))
}

/// What became of a decision's commit.
enum Published {
    /// `main` is the commit now, moved from the `main` it was decided against.
    Landed,
    /// `main` had moved on: the decision is to be taken again.
    Lost,
}

impl GitStore {
    /// Moves the repository's `main` from `base` to `commit`, and only from `base`: compare and
    /// swap, whatever the transport.
    fn publish(
        &self,
        repo: &Repository,
        base: Option<Oid>,
        commit: Oid,
    ) -> Result<Published, StateError> {
        repo.reference(PENDING, commit, true, "decision")
            .map_err(|e| self.err(e.message().to_string()))?;
        if let Some(dir) = self.remote.local_dir() {
            return self.publish_local(repo, &dir, base, commit);
        }
        // Over smart HTTP and SSH, `git receive-pack` moves the ref under its lock only when it
        // still is the old commit the push names, and libgit2 pushes without force only a commit
        // that descends from the advertised one: a push over a `main` that moved is refused.
        let refspec = format!("{PENDING}:refs/heads/{BRANCH}");
        match mirror::push_refspecs(repo, &self.remote, &[refspec]) {
            Ok(()) => Ok(Published::Landed),
            Err(e) => {
                // Refused because `main` moved on (another host decided first), or failed: only
                // a `main` that moved is a lost race.
                let now = self.fetch(repo)?;
                if now == base {
                    return Err(self.err(format!("cannot push the decision: {e}")));
                }
                Ok(Published::Lost)
            }
        }
    }

    /// [`GitStore::publish`] for a repository on a local path or `file://` URL. libgit2 writes
    /// such a remote's refs itself, checking the old value first and writing it later, so two
    /// pushes at once can both "succeed" and one decision is lost. Instead the decision's new
    /// objects are copied into the repository (no ref names them yet), and `main` is then moved
    /// there with git's ref lock, from `base` only (`reference_matching`).
    fn publish_local(
        &self,
        repo: &Repository,
        dir: &std::path::Path,
        base: Option<Oid>,
        commit: Oid,
    ) -> Result<Published, StateError> {
        let target = Repository::open(dir)
            .map_err(|e| self.err(format!("cannot open the state repository: {}", e.message())))?;
        copy_objects(repo, &target, commit)
            .map_err(|e| self.err(format!("cannot write the decision: {}", e.message())))?;
        let main = format!("refs/heads/{BRANCH}");
        let message = "canon: decision";
        let moved = match base {
            Some(old) => target.reference_matching(&main, commit, true, old, message),
            None => target.reference(&main, commit, false, message),
        };
        match moved {
            Ok(_) => Ok(Published::Landed),
            Err(e)
                if matches!(
                    e.code(),
                    git2::ErrorCode::Modified
                        | git2::ErrorCode::Exists
                        | git2::ErrorCode::Locked
                        | git2::ErrorCode::NotFound
                ) =>
            {
                Ok(Published::Lost)
            }
            Err(e) => Err(self.err(format!(
                "cannot move {main} to the decision: {}",
                e.message()
            ))),
        }
    }
}

/// Copies `commit` and every object it reaches that `to` lacks from `from` into `to`, children
/// first, so that `to` never holds an object whose children it lacks. An object `to` has is not
/// descended into: what it reaches is there already.
fn copy_objects(from: &Repository, to: &Repository, commit: Oid) -> Result<(), git2::Error> {
    let (src, dst) = (from.odb()?, to.odb()?);
    let mut stack = vec![(commit, false)];
    while let Some((oid, children_done)) = stack.pop() {
        if dst.exists(oid) {
            continue;
        }
        let object = src.read(oid)?;
        if !children_done {
            stack.push((oid, true));
            match object.kind() {
                git2::ObjectType::Commit => {
                    let c = from.find_commit(oid)?;
                    stack.push((c.tree_id(), false));
                    stack.extend(c.parent_ids().map(|p| (p, false)));
                }
                git2::ObjectType::Tree => {
                    let t = from.find_tree(oid)?;
                    stack.extend(t.iter().map(|e| (e.id(), false)));
                }
                _ => {}
            }
            continue;
        }
        dst.write(object.kind(), object.data())?;
    }
    Ok(())
}

impl StateStore for GitStore {
    fn describe(&self) -> String {
        format!("state repository {}", self.url())
    }

    fn read_canonical(&self, recipe: &RecipeName) -> Result<Option<CanonicalRecord>, StateError> {
        let _clone = self.lock_clone()?;
        let repo = self.open()?;
        let head = self.fetch(&repo)?;
        self.canonical_at(&repo, head, recipe)
    }

    fn read_history(&self, recipe: &RecipeName) -> Result<Vec<HistoryEntry>, StateError> {
        let _clone = self.lock_clone()?;
        let repo = self.open()?;
        let head = self.fetch(&repo)?;
        let path = PathBuf::from(format!("{}: {recipe}/history.jsonl", self.url()));
        match self.read_file(&repo, head, recipe, "history.jsonl")? {
            None => Ok(Vec::new()),
            Some(bytes) => super::parse_history(&path, &String::from_utf8_lossy(&bytes)),
        }
    }

    fn lock(&self, recipe: &RecipeName, wait: LockWait) -> Result<RecipeLock, StateError> {
        self.local.lock(recipe, wait)
    }

    fn commit(&self, lock: &RecipeLock, decide: &mut Decide<'_>) -> Result<Committed, StateError> {
        let recipe = lock.recipe();
        for attempt in 1..=MAX_ATTEMPTS {
            let outcome = {
                let _clone = self.lock_clone()?;
                let repo = self.open()?;
                // Decide against the `main` this host last saw, fetching only when it has seen
                // none or lost a race: a push without force lands only on the `main` it was
                // decided against, so a stale one is refused, never written over.
                let known = repo.find_reference(FETCHED).ok().and_then(|r| r.target());
                let base = match known {
                    Some(oid) if attempt == 1 => Some(oid),
                    _ => self.fetch(&repo)?,
                };
                let before = self.canonical_at(&repo, base, recipe)?;
                let change = decide(before.as_ref())?;
                if change.canonical.is_none() && change.history.is_empty() {
                    return Ok(Committed {
                        before,
                        change,
                        attempts: attempt,
                    });
                }
                let commit = self.write_commit(&repo, base, recipe, &change)?;
                match self.publish(&repo, base, commit)? {
                    Published::Landed => {
                        let _ = repo.reference(FETCHED, commit, true, "pushed");
                        Ok(Committed {
                            before,
                            change,
                            attempts: attempt,
                        })
                    }
                    Published::Lost => {
                        tracing::info!(recipe = %recipe, attempt, "Another host changed the state first; deciding again.");
                        Err(())
                    }
                }
            };
            match outcome {
                Ok(committed) => return Ok(committed),
                Err(()) => std::thread::sleep(pause(attempt)),
            }
        }
        Err(StateError::Contended {
            url: self.url(),
            recipe: recipe.clone(),
            attempts: MAX_ATTEMPTS,
        })
    }
}
