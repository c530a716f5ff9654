//! Listing a repository on this filesystem without libgit2's local transport, and the table of
//! tag peels the cache keeps.
//!
//! A fleet-wide no-op sync lists every upstream and mirror; for local repositories that is the
//! whole cost, so it is kept to a few small file reads: refs come straight from `packed-refs` and
//! the loose ref files of a plain files-backend repository, and upstream's tags are peeled from
//! [`PEELS_FILE`] in the cache instead of the object database. Anything unusual is handed to
//! libgit2, so the answer is always the one libgit2 would give. Separate from [`super::refs`]
//! because this is a second reader of git's on-disk format, with its own tests against `git`.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use git2::{Oid, Repository};

use crate::commit::CommitId;

use super::{RemoteRefs, TagRef};

/// The file in a cache that remembers what upstream's tag targets peel to ([`Peels`]).
const PEELS_FILE: &str = "canon-peeled-tags";

/// What tag targets peel to: object id -> the first non-tag object it leads to (the commit, for a
/// release tag; itself for a lightweight tag).
///
/// Objects are named by their content, so an entry can never go stale: a tag object always peels
/// to the same commit. The sync keeps the table for upstream's current tags in the cache
/// ([`PEELS_FILE`]), so a no-op sync of a local upstream needs no object database at all: it reads
/// ref files and this table. `packed-refs` `^` lines teach it too. A target it does not know is
/// peeled through the repository's objects, as before, and learned.
#[derive(Debug, Default)]
pub(super) struct Peels {
    known: HashMap<String, CommitId>,
    /// True when an entry was found through an object database (worth saving).
    pub(super) learned: bool,
}

impl Peels {
    /// Reads the table kept in `cache_dir`; missing, unreadable or malformed lines are skipped
    /// (their targets are then peeled through the objects).
    pub(super) fn load(cache_dir: &Path) -> Self {
        let mut peels = Self::default();
        if let Ok(text) = std::fs::read_to_string(cache_dir.join(PEELS_FILE)) {
            for line in text.lines() {
                if let Some((target, peeled)) = line.split_once(' ') {
                    if let (true, Ok(peeled)) = (is_oid(target), CommitId::parse(peeled)) {
                        peels.known.insert(target.to_string(), peeled);
                    }
                }
            }
        }
        peels
    }

    fn get(&self, target: &str) -> Option<&CommitId> {
        self.known.get(target)
    }

    /// Records a peel read from `packed-refs` (already on disk, so not worth saving).
    fn note(&mut self, target: &str, peeled: CommitId) {
        self.known.insert(target.to_string(), peeled);
    }

    /// Records a peel found through an object database.
    fn learn(&mut self, target: &str, peeled: CommitId) {
        self.note(target, peeled);
        self.learned = true;
    }

    /// Writes the peels of `tags` to `cache_dir` (replacing the table, so it never outgrows
    /// upstream's tag set). Best effort: the table only saves work, so a failure is logged and
    /// the next sync peels through the objects again. Written to a temp file and renamed, so a
    /// concurrent reader sees the old or the new table, never half of one.
    pub(super) fn save(cache_dir: &Path, tags: &BTreeMap<String, TagRef>) {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut text = String::with_capacity(tags.len() * 82);
        for tag in tags.values() {
            if let Some(peeled) = &tag.peeled {
                text.push_str(&format!("{} {peeled}\n", tag.target));
            }
        }
        let path = cache_dir.join(PEELS_FILE);
        let tmp = cache_dir.join(format!(
            ".{PEELS_FILE}.{}.{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        // A new file only (O_EXCL): never written through a link planted under the temp name.
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            tracing::debug!(path = %path.display(), error = %e, "Could not save the tag peels.");
        }
    }
}

/// Returns true for a full hex object id (SHA-1 or SHA-256).
fn is_oid(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Returns the git directory of `path` when its refs can be read straight from files: a plain
/// bare repository or `.git` folder (no worktree `commondir`, no `reftable`). Anything else is
/// left to libgit2.
fn plain_git_dir(path: &Path) -> Option<PathBuf> {
    let is_git_dir = |d: &Path| {
        d.join("HEAD").is_file() && d.join("objects").is_dir() && d.join("refs").is_dir()
    };
    let dir = if is_git_dir(path) {
        path.to_path_buf()
    } else {
        let dot_git = path.join(".git");
        is_git_dir(&dot_git).then_some(dot_git)?
    };
    let special = dir.join("commondir").exists() || dir.join("reftable").exists();
    (!special).then_some(dir)
}

/// Reads the direct refs under `refs/heads/` and `refs/tags/` of a files-backend git directory,
/// as git resolves them: `packed-refs` first, then loose ref files, which win (a loose symbolic
/// ref hides a packed one of the same name, and symbolic refs are not listed, as with libgit2).
/// `packed-refs` peel lines are noted in `peels`.
///
/// Any surprise (a malformed ref file, a symlink, a name that is not UTF-8) is an error, and the
/// caller lists through libgit2 instead, so such a repository gets exactly libgit2's answer.
fn read_ref_files(
    git_dir: &Path,
    peels: &mut Peels,
) -> std::io::Result<BTreeMap<String, CommitId>> {
    let mut refs = BTreeMap::new();
    match std::fs::read_to_string(git_dir.join("packed-refs")) {
        Ok(text) => parse_packed_refs(&text, &mut refs, peels)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    for prefix in ["refs/heads", "refs/tags"] {
        read_loose_refs(&git_dir.join(prefix), prefix, &mut refs)?;
    }
    Ok(refs)
}

fn invalid(what: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what)
}

/// Parses `packed-refs`: `<oid> <name>` lines, each optionally followed by `^<peeled oid>`. When
/// the header has the `peeled` (or `fully-peeled`) trait, a tag without a `^` line is not an
/// annotated tag, so it peels to itself.
fn parse_packed_refs(
    text: &str,
    refs: &mut BTreeMap<String, CommitId>,
    peels: &mut Peels,
) -> std::io::Result<()> {
    let mut tags_peeled = false;
    // The last tag entry, until we know whether a `^` line follows it.
    let mut pending: Option<CommitId> = None;
    for line in text.lines() {
        if let Some(traits) = line.strip_prefix("# pack-refs with:") {
            tags_peeled = traits
                .split_whitespace()
                .any(|t| t == "peeled" || t == "fully-peeled");
            continue;
        }
        if let Some(peeled) = line.strip_prefix('^') {
            let Ok(peeled) = CommitId::parse(peeled) else {
                return Err(invalid(format!("packed-refs: bad peel line {line:?}")));
            };
            if let Some(target) = pending.take() {
                peels.note(&target, peeled);
            }
            continue;
        }
        if let Some(target) = pending.take() {
            if tags_peeled {
                peels.note(&target, target.clone());
            }
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let Some((oid, name)) = line
            .split_once(' ')
            .and_then(|(oid, name)| Some((CommitId::parse(oid).ok()?, name)))
        else {
            return Err(invalid(format!("packed-refs: bad line {line:?}")));
        };
        if name.starts_with("refs/tags/") {
            pending = Some(oid.clone());
        }
        if name.starts_with("refs/heads/") || name.starts_with("refs/tags/") {
            refs.insert(name.to_string(), oid);
        }
    }
    if let (Some(target), true) = (pending, tags_peeled) {
        peels.note(&target, target.clone());
    }
    Ok(())
}

/// Reads the loose ref files under `dir` (named `prefix/...`) into `refs`, recursively.
fn read_loose_refs(
    dir: &Path,
    prefix: &str,
    refs: &mut BTreeMap<String, CommitId>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(name) = file_name.to_str() else {
            return Err(invalid(format!("{prefix}: a ref name is not UTF-8")));
        };
        // Git never names a ref like this: lock files and dot files are not refs.
        if name.starts_with('.') || name.ends_with(".lock") {
            continue;
        }
        let full = format!("{prefix}/{name}");
        let kind = entry.file_type()?;
        if kind.is_dir() {
            read_loose_refs(&entry.path(), &full, refs)?;
            continue;
        }
        if !kind.is_file() {
            return Err(invalid(format!("{full} is not a regular file")));
        }
        let mut buf = [0; 256];
        let len = read_first_line(&entry.path(), &mut buf)?;
        let content = std::str::from_utf8(&buf[..len])
            .map_err(|_| invalid(format!("{full} is not a ref")))?
            .trim_end();
        if content.starts_with("ref:") {
            refs.remove(&full);
        } else if let Ok(oid) = CommitId::parse(content) {
            refs.insert(full, oid);
        } else {
            return Err(invalid(format!("{full} is not a ref")));
        }
    }
    Ok(())
}

/// Reads a ref file into `buf` up to its first newline (git writes one line, `<oid>\n` or
/// `ref: <name>\n`, so one `read` usually does it); returns the length read. A file that fills
/// `buf` is no ref, and its content then fails to parse.
fn read_first_line(path: &Path, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut file = File::open(path)?;
    let mut len = 0;
    while len < buf.len() && !buf[..len].contains(&b'\n') {
        match file.read(&mut buf[len..])? {
            0 => break,
            n => len += n,
        }
    }
    Ok(len)
}

/// Lists a repository's direct refs (full name -> object id) through libgit2.
fn read_refs_git2(path: &Path) -> Result<BTreeMap<String, CommitId>, git2::Error> {
    super::owners::allow_other_owners();
    let repo = Repository::open(path)?;
    let mut refs = BTreeMap::new();
    for reference in repo.references()? {
        let reference = reference?;
        if let (Ok(name), Some(oid)) = (reference.name(), reference.target()) {
            refs.insert(name.to_string(), CommitId::from(oid));
        }
    }
    Ok(refs)
}

/// Returns what `oid` peels to in `repo`: the first non-tag object, `oid` itself when it is no
/// tag. Reads only the object header unless it is a tag.
pub(super) fn peel_in(repo: &Repository, oid: &str) -> Result<CommitId, git2::Error> {
    let id = Oid::from_str(oid)?;
    match repo.odb()?.read_header(id)?.1 {
        git2::ObjectType::Tag => Ok(repo
            .find_object(id, None)?
            .peel(git2::ObjectType::Any)?
            .id()
            .into()),
        _ => Ok(id.into()),
    }
}

/// Lists a repository on the local filesystem: what libgit2's local transport advertises,
/// without its cost. Refs are read straight from the ref files when the repository is a plain
/// files-backend one ([`plain_git_dir`]), else through libgit2.
///
/// Tag peels come from `peels` (the cache's table and `packed-refs` peel lines). With `peel`, a
/// target `peels` does not know is peeled through the repository's objects and learned; without
/// it (the mirror side, where the sync only compares targets), such a tag gets an empty `peeled`.
pub(super) fn list_local(
    path: &Path,
    peel: bool,
    peels: &mut Peels,
) -> Result<RemoteRefs, git2::Error> {
    super::owners::allow_other_owners();
    let files = plain_git_dir(path).and_then(|dir| {
        read_ref_files(&dir, peels)
            .map_err(|e| {
                tracing::debug!(path = %path.display(), error = %e, "Reading refs through libgit2.");
            })
            .ok()
    });
    let all = match files {
        Some(refs) => refs,
        None => read_refs_git2(path)?,
    };
    if peel {
        let unknown: Vec<&CommitId> = all
            .iter()
            .filter(|(name, oid)| name.starts_with("refs/tags/") && peels.get(oid).is_none())
            .map(|(_, oid)| oid)
            .collect();
        if !unknown.is_empty() {
            let repo = Repository::open(path)?;
            for oid in unknown {
                let peeled = peel_in(&repo, oid)?;
                peels.learn(oid, peeled);
            }
        }
    }
    let mut refs = RemoteRefs::default();
    for (name, oid) in all {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            refs.branches.insert(branch.to_string(), oid);
        } else if let Some(tag) = name.strip_prefix("refs/tags/") {
            // Known for every tag when peeling; unknown (`None`) only on the mirror side.
            let peeled = peels.get(&oid).cloned();
            refs.tags.insert(
                tag.to_string(),
                TagRef {
                    target: oid.to_string(),
                    peeled,
                },
            );
        }
    }
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mirror::{sync, GitRemote, SyncRequest};
    use canon_testkit::git::git;

    /// Runs git hermetically in `dir`; returns stdout.
    /// What git itself advertises for a local repository (`git ls-remote`), as [`RemoteRefs`].
    fn ls_remote_by_git(path: &Path) -> RemoteRefs {
        let text = git(path, &["ls-remote", "--heads", "--tags", "."]);
        let mut refs = RemoteRefs::default();
        let mut peeled = BTreeMap::new();
        for line in text.lines() {
            let (oid, name) = line.split_once('\t').expect("oid<TAB>name");
            let id = CommitId::parse(oid).expect("git lists full ids");
            if let Some(b) = name.strip_prefix("refs/heads/") {
                refs.branches.insert(b.into(), id);
            } else if let Some(t) = name.strip_prefix("refs/tags/") {
                match t.strip_suffix("^{}") {
                    Some(t) => {
                        peeled.insert(t.to_string(), id);
                    }
                    None => {
                        refs.tags.insert(
                            t.into(),
                            TagRef {
                                target: oid.into(),
                                peeled: Some(id),
                            },
                        );
                    }
                };
            }
        }
        for (name, commit) in peeled {
            refs.tags
                .get_mut(&name)
                .expect("peeled tag is listed")
                .peeled = Some(commit);
        }
        refs
    }

    /// A bare repository with branches and lightweight, annotated and nested tags, some refs
    /// packed (with peel lines) and some loose, one loose ref shadowing its packed value, a
    /// symbolic ref and a stray lock file.
    fn mixed_repo(root: &Path) -> PathBuf {
        let work = root.join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        git(&work, &["init", "-q", "-b", "main"]);
        for i in 1..=3 {
            std::fs::write(work.join("f"), format!("{i}\n")).expect("write");
            git(&work, &["add", "f"]);
            git(&work, &["commit", "-q", "-m", &format!("c{i}")]);
            git(
                &work,
                &["tag", "-a", "-m", "r", &format!("{i}.0.0+1.{i}"), "HEAD"],
            );
        }
        git(&work, &["tag", "light", "HEAD~1"]);
        git(&work, &["tag", "-a", "-m", "nested", "nested", "1.0.0+1.1"]);
        git(&work, &["branch", "feature/x", "HEAD~2"]);
        let bare = root.join("bare.git");
        git(root, &["clone", "-q", "--bare", "work", "bare.git"]);
        git(
            &bare,
            &["fetch", "-q", "../work", "refs/tags/*:refs/tags/*"],
        );
        git(&bare, &["pack-refs", "--all"]);
        // Loose refs after packing: one shadows its packed value, one is new.
        git(&bare, &["update-ref", "refs/heads/feature/x", "main~1"]);
        git(&work, &["tag", "-a", "-m", "late", "late", "HEAD~2"]);
        git(
            &bare,
            &["fetch", "-q", "../work", "refs/tags/late:refs/tags/late"],
        );
        git(
            &bare,
            &["symbolic-ref", "refs/heads/sym", "refs/heads/main"],
        );
        std::fs::write(bare.join("refs/tags/broken.lock"), "junk").expect("lock file");
        bare
    }

    #[test]
    fn local_listing_equals_what_git_advertises() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = mixed_repo(dir.path());
        let mut expected = ls_remote_by_git(&bare);
        // git resolves symbolic refs in its listing; canon lists direct refs only, as libgit2's
        // reference walk does (a symbolic upstream branch is never the synced branch's value).
        assert_eq!(
            expected.branches.remove("sym"),
            expected.branches.get("main").cloned()
        );
        assert!(expected.tags["nested"].is_annotated() && !expected.tags["light"].is_annotated());

        let mut peels = Peels::default();
        let dir_path = plain_git_dir(&bare).expect("a plain bare repository");
        read_ref_files(&dir_path, &mut Peels::default()).expect("read from files");
        assert_eq!(list_local(&bare, true, &mut peels).expect("list"), expected);
        assert!(
            peels.learned,
            "the loose annotated tag was peeled through the objects"
        );

        // Packed tags were peeled by their `^` lines: only the loose one needed the objects.
        let mut from_files = Peels::default();
        read_ref_files(&dir_path, &mut from_files).expect("read from files");
        let late = &expected.tags["late"].target;
        assert!(from_files.get(late).is_none());
        assert_eq!(
            from_files.get(&expected.tags["nested"].target),
            expected.tags["nested"].peeled.as_ref()
        );
        assert_eq!(
            from_files
                .get(&expected.tags["light"].target)
                .map(|c| c.as_str()),
            Some(expected.tags["light"].target.as_str())
        );

        // Through libgit2 (what any other layout uses), the same answer.
        let mut via_git2 = Peels::default();
        let all = read_refs_git2(&bare).expect("libgit2 listing");
        assert_eq!(all.len(), expected.branches.len() + expected.tags.len());

        // Without peeling, unknown annotated targets are left empty and nothing is learned.
        let unpeeled = list_local(&bare, false, &mut via_git2).expect("list");
        assert_eq!(unpeeled.tags["late"].peeled, None);
        assert_eq!(unpeeled.branches, expected.branches);
        assert!(!via_git2.learned);
    }

    #[test]
    fn a_corrupt_ref_file_is_left_to_libgit2() {
        let dir = tempfile::tempdir().expect("temp dir");
        let bare = mixed_repo(dir.path());
        std::fs::write(bare.join("refs/tags/bad"), "not an object id\n").expect("write");
        let git_dir = plain_git_dir(&bare).expect("plain");
        assert!(read_ref_files(&git_dir, &mut Peels::default()).is_err());
        // libgit2 answers as it always did here: it passes over the corrupt ref.
        let listed = list_local(&bare, true, &mut Peels::default()).expect("listed by libgit2");
        let mut expected = ls_remote_by_git(&bare);
        expected.branches.remove("sym");
        // (git itself advertises it with a null id.)
        expected.tags.remove("bad");
        assert_eq!(listed, expected);
        assert!(!listed.tags.contains_key("bad"));
        assert!(plain_git_dir(&dir.path().join("missing")).is_none());
    }

    #[test]
    fn the_peel_table_round_trips_and_a_no_op_sync_restores_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let up = mixed_repo(dir.path());
        let mirror = dir.path().join("mirror.git");
        git(dir.path(), &["init", "-q", "--bare", "mirror.git"]);
        let req = SyncRequest {
            upstream: GitRemote::local(up.display().to_string()),
            mirror: GitRemote::local(mirror.display().to_string()),
            branch: "main".into(),
            cache_dir: dir.path().join("state/r/upstream.git"),
        };
        let first = sync(&req).expect("first sync");
        let table = req.cache_dir.join(PEELS_FILE);
        let saved = Peels::load(&req.cache_dir);
        for tag in ls_remote_by_git(&up).tags.values() {
            assert_eq!(saved.get(&tag.target), tag.peeled.as_ref(), "{tag:?}");
        }

        let no_op = sync(&req).expect("no-op sync");
        assert!(no_op.no_op);
        assert_eq!(no_op.annotated_tags, first.annotated_tags);
        assert_eq!(no_op.upstream_tags, first.upstream_tags);

        // Lost or damaged: peeled through the objects again, same report, table rewritten.
        std::fs::write(&table, "garbage\n").expect("damage the table");
        let again = sync(&req).expect("no-op sync");
        assert!(again.no_op);
        assert_eq!(again.annotated_tags, first.annotated_tags);
        assert_eq!(again.upstream_tags, first.upstream_tags);
        assert_eq!(Peels::load(&req.cache_dir).known, saved.known);
    }
}
