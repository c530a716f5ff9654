//! Canonical state on disk: the canonical record, the decision history and the per-recipe lock.
//!
//! Layout, one folder per recipe named after it:
//!
//! ```text
//! <state>/<recipe>/canonical.json   the current canonical (atomic replace)
//! <state>/<recipe>/history.jsonl    every promotion, refusal, pin and unpin (append-only)
//! <state>/<recipe>/.lock            held for a whole decision-and-write
//! <state>/<recipe>/warm/             host-local holds on the warm data ([`holds`])
//! ```
//!
//! A corrupt or unreadable `canonical.json` is an error, never "no canonical": treating it as
//! absent would let an older tag be promoted over the real canonical.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::bounded_read;
use crate::commit::CommitId;
use crate::recipe::RecipeName;
use crate::version::ReleaseVersion;

pub mod files;
pub mod format;
pub mod git;
pub mod holds;
mod store;

pub use store::{pin, unpin, Change, Committed, Decide, StateStore};

/// A pin: while present, nothing promotes the recipe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// Why the canonical is held.
    pub reason: String,
    /// Who pinned it.
    pub by: String,
    /// When, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// The contents of `canonical.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanonicalRecord {
    /// The recipe.
    pub recipe: RecipeName,
    /// The canonical release tag.
    pub version: ReleaseVersion,
    /// The commit the tag pointed to when it was tested (peeled).
    pub commit: CommitId,
    /// When it was promoted, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub promoted_at: OffsetDateTime,
    /// The build that promoted it (a link or a number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// Set while the recipe is pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pin>,
    /// The Docker node that holds the warm data (`warm-<recipe>_*` volumes), when a runner that
    /// keeps warm data promoted it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// When the decision was taken, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The recipe.
    pub recipe: RecipeName,
    /// `promote`, `refuse`, `not-needed`, `pin` or `unpin`.
    pub decision: String,
    /// The tag or ref the decision is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The commit that was tested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_commit: Option<CommitId>,
    /// Every reason (for a refusal, every failing check).
    #[serde(default)]
    pub reasons: Vec<String>,
    /// What started it: `tag`, `custom`, `cron`, `cli`, `sweep`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<String>,
    /// The build (link or number).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    /// The canonical before the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canonical_before: Option<String>,
}

/// Errors reading or writing the state directory. Each names the path.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state {path}: {action}: {source}")]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("state {path}: refused: {reason}")]
    Unsafe { path: PathBuf, reason: String },
    #[error("state {path}: the canonical record is corrupt ({message}); fix or remove it by hand, canon will not guess")]
    Corrupt { path: PathBuf, message: String },
    #[error("state {path}: the record is for recipe `{found}`, not `{expected}`")]
    WrongRecipe {
        path: PathBuf,
        found: RecipeName,
        expected: RecipeName,
    },
    #[error("recipe `{recipe}` is locked by another run (lock {path}); {hint}")]
    Locked {
        recipe: RecipeName,
        path: PathBuf,
        hint: &'static str,
    },
    #[error("recipe `{recipe}` has no canonical yet, so there is nothing to {action}")]
    NoCanonical {
        recipe: RecipeName,
        action: &'static str,
    },
    #[error("recipe `{recipe}` is already pinned ({reason}, by {by})")]
    AlreadyPinned {
        recipe: RecipeName,
        reason: String,
        by: String,
    },
    #[error("recipe `{recipe}` is not pinned")]
    NotPinned { recipe: RecipeName },
    #[error("state repository {url}: {message}")]
    Repository { url: String, message: String },
    #[error("state repository {url}: other hosts changed `{recipe}` first {attempts} times in a row; nothing was written, try again")]
    Contended {
        url: String,
        recipe: RecipeName,
        attempts: u32,
    },
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> StateError {
    let path = path.to_path_buf();
    move |source| StateError::Io {
        path,
        action,
        source,
    }
}

/// How to take a recipe lock that another run holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockWait {
    /// Fail at once with [`StateError::Locked`].
    Fail,
    /// Wait up to this long, then fail.
    Wait(Duration),
}

impl LockWait {
    /// Returns when a taker waiting this way gives up; `None` for not waiting.
    pub fn deadline(self) -> Option<Instant> {
        match self {
            LockWait::Fail => None,
            LockWait::Wait(d) => Some(Instant::now() + d),
        }
    }
}

/// How often a taker waiting for a file lock tries again.
const LOCK_POLL: Duration = Duration::from_millis(50);

/// How a file lock is taken.
#[derive(Debug, Clone, Copy)]
enum FileLock {
    Shared,
    Exclusive,
}

/// Opens (creating, never truncating) the lock file at `path`, never through a link.
fn open_lock_file(path: &Path, owners: files::Owners) -> Result<File, StateError> {
    files::open_lock(path, owners)
}

/// Takes `how` on the lock file `file` (at `path`), trying again until `deadline` (once when
/// there is none); returns false when another still holds it at the deadline.
fn take_lock(
    file: &File,
    path: &Path,
    how: FileLock,
    deadline: Option<Instant>,
) -> Result<bool, StateError> {
    loop {
        let tried = match how {
            FileLock::Shared => file.try_lock_shared(),
            FileLock::Exclusive => file.try_lock(),
        };
        match tried {
            Ok(()) => return Ok(true),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => return Err(io_err(path, "lock")(e)),
        }
        let now = Instant::now();
        match deadline {
            Some(d) if now < d => std::thread::sleep(LOCK_POLL.min(d - now)),
            _ => return Ok(false),
        }
    }
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

/// An exclusive per-recipe lock; released on drop.
#[derive(Debug)]
pub struct RecipeLock {
    file: File,
    recipe: RecipeName,
}

impl RecipeLock {
    /// Returns the recipe the lock is for.
    pub fn recipe(&self) -> &RecipeName {
        &self.recipe
    }
}

impl Drop for RecipeLock {
    fn drop(&mut self) {
        // Closing the file releases the lock anyway; unlocking first is only tidier.
        let _ = self.file.unlock();
    }
}

impl StateDir {
    /// Opens (without creating) a state directory at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Returns the root path.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Returns who may own the files in the state dir ([`files::Owners`]).
    pub fn owners(&self) -> files::Owners {
        files::Owners::of(&self.root)
    }

    /// Returns `<state>/<recipe>`.
    pub fn recipe_dir(&self, recipe: &RecipeName) -> PathBuf {
        self.root.join(recipe.as_str())
    }

    /// Returns the path of `canonical.json` for `recipe`.
    pub fn canonical_path(&self, recipe: &RecipeName) -> PathBuf {
        self.recipe_dir(recipe).join("canonical.json")
    }

    /// Returns the path of `history.jsonl` for `recipe`.
    pub fn history_path(&self, recipe: &RecipeName) -> PathBuf {
        self.recipe_dir(recipe).join("history.jsonl")
    }

    fn ensure_recipe_dir(&self, recipe: &RecipeName) -> Result<PathBuf, StateError> {
        let dir = self.recipe_dir(recipe);
        create_dir_durable(&dir).map_err(io_err(&dir, "create the recipe folder"))?;
        files::check_dir(&dir, self.owners())?;
        Ok(dir)
    }

    /// Reads the canonical record; `Ok(None)` only when the file does not exist.
    pub fn read_canonical(
        &self,
        recipe: &RecipeName,
    ) -> Result<Option<CanonicalRecord>, StateError> {
        let path = self.canonical_path(recipe);
        let Some(bytes) = files::read(&path, self.owners(), bounded_read::RECORD_FILE)? else {
            return Ok(None);
        };
        parse_canonical(&path, &bytes, recipe).map(Some)
    }

    /// Writes the canonical record atomically: temp file, fsync, rename, fsync of the folder.
    ///
    /// Call it while holding the recipe's [`RecipeLock`].
    pub fn write_canonical(
        &self,
        _lock: &RecipeLock,
        record: &CanonicalRecord,
    ) -> Result<(), StateError> {
        let dir = self.ensure_recipe_dir(&record.recipe)?;
        let path = self.canonical_path(&record.recipe);
        let bytes = format::to_document(record).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_atomic_in(&dir, &path, &bytes, self.owners())
    }

    /// Appends one decision to `history.jsonl` and fsyncs it.
    pub fn append_history(&self, entry: &HistoryEntry) -> Result<(), StateError> {
        self.ensure_recipe_dir(&entry.recipe)?;
        append_line(
            &self.history_path(&entry.recipe),
            entry,
            format::to_line,
            self.owners(),
        )
    }

    /// Reads every history entry; a missing file is an empty history.
    pub fn read_history(&self, recipe: &RecipeName) -> Result<Vec<HistoryEntry>, StateError> {
        let path = self.history_path(recipe);
        let Some(bytes) = files::read(&path, self.owners(), bounded_read::HISTORY_FILE)? else {
            return Ok(Vec::new());
        };
        let text = String::from_utf8(bytes).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        parse_history(&path, &text)
    }

    /// Reads the newest history entries held in the last `max_bytes` of the file (a line cut
    /// by that boundary is left out), so a reader that only needs recent decisions reads a
    /// bounded amount however long the history grows. A missing file is an empty history.
    pub fn read_history_tail(
        &self,
        recipe: &RecipeName,
        max_bytes: u64,
    ) -> Result<Vec<HistoryEntry>, StateError> {
        use std::io::{Read, Seek, SeekFrom};
        let path = self.history_path(recipe);
        let Some(mut file) = files::open_read(&path, self.owners())? else {
            return Ok(Vec::new());
        };
        let len = file
            .metadata()
            .map_err(io_err(&path, "read the history"))?
            .len();
        let start = len.saturating_sub(max_bytes);
        file.seek(SeekFrom::Start(start))
            .map_err(io_err(&path, "read the history"))?;
        let mut bytes = Vec::new();
        file.take(max_bytes)
            .read_to_end(&mut bytes)
            .map_err(io_err(&path, "read the history"))?;
        let whole = if start == 0 {
            &bytes[..]
        } else {
            // The first line may be the end of an older one.
            match bytes.iter().position(|b| *b == b'\n') {
                Some(i) => &bytes[i + 1..],
                None => &[],
            }
        };
        let text = String::from_utf8_lossy(whole);
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                format::from_slice(l.as_bytes()).map_err(|e| StateError::Corrupt {
                    path: path.clone(),
                    message: format!("near the end: {e}"),
                })
            })
            .collect()
    }

    /// Takes the recipe's exclusive lock (a file lock, so it also excludes other processes).
    pub fn lock(&self, recipe: &RecipeName, wait: LockWait) -> Result<RecipeLock, StateError> {
        let dir = self.ensure_recipe_dir(recipe)?;
        let path = dir.join(".lock");
        let file = open_lock_file(&path, self.owners())?;
        if take_lock(&file, &path, FileLock::Exclusive, wait.deadline())? {
            return Ok(RecipeLock {
                file,
                recipe: recipe.clone(),
            });
        }
        Err(StateError::Locked {
            recipe: recipe.clone(),
            path,
            hint: match wait {
                LockWait::Wait(_) => "gave up waiting for it",
                LockWait::Fail => "not waiting (lock wait is off)",
            },
        })
    }
}

/// Opens where the canonical records are: the git state repository `repo` when one is set
/// (with `state_dir` as this host's clone, locks and caches), else the state dir itself.
pub fn open_store(state_dir: &Path, repo: Option<crate::mirror::GitRemote>) -> Box<dyn StateStore> {
    let local = StateDir::new(state_dir);
    match repo {
        Some(remote) => Box::new(git::GitStore::new(remote, local)),
        None => Box::new(local),
    }
}

/// Opens the store the settings name: the state repository at `repo_url` (reached with the
/// mirror credentials: the mirror token or the SSH key) when one is set, else the state dir.
pub fn open_store_at(
    state_dir: &Path,
    repo_url: Option<&str>,
    credentials: &crate::mirror::Credentials,
) -> Box<dyn StateStore> {
    open_store(state_dir, repo_url.map(|u| credentials.state_remote(u)))
}

/// Parses a canonical record read from `path` and checks it is `recipe`'s.
fn parse_canonical(
    path: &Path,
    bytes: &[u8],
    recipe: &RecipeName,
) -> Result<CanonicalRecord, StateError> {
    let record: CanonicalRecord =
        format::from_slice(bytes).map_err(|message| StateError::Corrupt {
            path: path.to_path_buf(),
            message,
        })?;
    if &record.recipe != recipe {
        return Err(StateError::WrongRecipe {
            path: path.to_path_buf(),
            found: record.recipe,
            expected: recipe.clone(),
        });
    }
    Ok(record)
}

/// Parses a history read from `path`, one JSON line per decision.
fn parse_history(path: &Path, text: &str) -> Result<Vec<HistoryEntry>, StateError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            format::from_slice(l.as_bytes()).map_err(|e| StateError::Corrupt {
                path: path.to_path_buf(),
                message: format!("line {}: {e}", i + 1),
            })
        })
        .collect()
}

/// One tag the sweep had to start with no earlier build or listener job: a missed webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissedWebhook {
    /// When the sweep noticed, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The recipe.
    pub recipe: RecipeName,
    /// The release tag.
    pub tag: String,
    /// The commit the tag points to.
    pub commit: CommitId,
}

impl StateDir {
    /// Returns `<state>/missed-webhooks.jsonl`, shared by the sweep (writes) and the listener
    /// (reports it as a metric).
    pub fn missed_webhooks_path(&self) -> PathBuf {
        self.root.join("missed-webhooks.jsonl")
    }

    /// Appends a missed webhook (one JSON line, fsynced).
    pub fn record_missed_webhook(&self, missed: &MissedWebhook) -> Result<(), StateError> {
        create_dir_durable(&self.root).map_err(io_err(&self.root, "create the state folder"))?;
        append_json_line(&self.missed_webhooks_path(), missed, self.owners())
    }

    /// Counts missed webhooks per recipe; a missing file counts none. Unreadable lines are
    /// skipped: this is a metric, not a record anything is decided on.
    pub fn missed_webhook_counts(&self) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        let Ok(Some(bytes)) = files::read(
            &self.missed_webhooks_path(),
            self.owners(),
            bounded_read::HISTORY_FILE,
        ) else {
            return counts;
        };
        let text = String::from_utf8_lossy(&bytes);
        for missed in text
            .lines()
            .filter_map(|l| serde_json::from_str::<MissedWebhook>(l).ok())
        {
            *counts.entry(missed.recipe.to_string()).or_insert(0) += 1;
        }
        counts
    }
}

/// Returns the current time in UTC, truncated to whole seconds (RFC 3339 without fractions).
pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    t.replace_nanosecond(0).unwrap_or(t)
}

/// Returns `t` as RFC 3339 text (`2026-01-02T03:04:05Z` for a time from [`now`]), the form
/// reports print their times in; a time RFC 3339 cannot hold (a year past 9999) prints in
/// `time`'s own form instead.
pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

/// Appends `value` as one JSON line to `path` (created when missing) and fsyncs it.
fn append_json_line(
    path: &Path,
    value: &impl Serialize,
    owners: files::Owners,
) -> Result<(), StateError> {
    append_line(path, value, |v| serde_json::to_vec(v), owners)
}

/// Appends `value`, encoded as one line by `encode`, to `path` (created when missing) and
/// fsyncs it.
fn append_line<T: Serialize>(
    path: &Path,
    value: &T,
    encode: impl FnOnce(&T) -> serde_json::Result<Vec<u8>>,
    owners: files::Owners,
) -> Result<(), StateError> {
    let mut line = encode(value).map_err(|e| StateError::Corrupt {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    line.push(b'\n');
    let new = !files::check_file(path, owners)?;
    let mut file = files::open_append(path, owners)?;
    // One write call per line: O_APPEND keeps concurrent appenders from interleaving.
    file.write_all(&line).map_err(io_err(path, "append"))?;
    file.sync_data().map_err(io_err(path, "sync"))?;
    // A new file's name lives in its folder: sync that too, or a crash can lose the file whole.
    match (new, path.parent()) {
        (true, Some(dir)) => sync_dir(dir).map_err(io_err(dir, "sync the folder")),
        _ => Ok(()),
    }
}

/// Creates `dir` and any missing parents, syncing each new folder's parent so a crash cannot
/// lose a folder that a later write (a canonical, a history line) was acknowledged into.
pub fn create_dir_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.exists() {
        missing.push(cur.to_path_buf());
        match cur.parent() {
            Some(p) if !p.as_os_str().is_empty() => cur = p,
            _ => break,
        }
    }
    fs::create_dir_all(dir)?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir).and_then(|d| d.sync_all())
}

/// Returns the umask both binaries run with, from the one they were started with: the same, but
/// files and folders canon creates are writable by their group. The listener and the plugin may
/// run as different users on one state dir (the plugin as root for the Docker socket, the
/// listener as `canon`); made group-owned by a group both share, with the setgid bit
/// (`chgrp canon state && chmod 2775 state`), the folder gives everything created in it that
/// group, and this lets the other user write caches, locks and records there. What others may
/// do stays as the operator's umask says (`0027` stays closed to others: `0007`).
pub fn shared_umask(started_with: u32) -> u32 {
    started_with & !0o020
}

/// Writes `bytes` to `path` atomically: a temp file in `dir`, fsync, rename, fsync of `dir`.
/// The temp file's name is random (`.<name>.tmp.XXXXXX`), so writers on other hosts sharing the
/// folder, or other processes that reuse a pid, never write into each other's temp file.
///
/// What is at `path` already must be a file canon may replace ([`files::check_file`], with the
/// owners of `dir`): a link, a FIFO or another user's file there is refused, not replaced.
pub fn write_atomic(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_atomic_in(dir, path, bytes, files::Owners::of(dir))
}

/// [`write_atomic`] with the owners a file at `path` may have.
fn write_atomic_in(
    dir: &Path,
    path: &Path,
    bytes: &[u8],
    owners: files::Owners,
) -> Result<(), StateError> {
    files::check_file(path, owners)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Created like any other file (0666 less the umask), not private as temp files are by
    // default: the record is read by the other binary, which may run as another user.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.tmp."))
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(io_err(dir, "create a temp file"))?;
    tmp.write_all(bytes).map_err(io_err(tmp.path(), "write"))?;
    tmp.as_file()
        .sync_all()
        .map_err(io_err(tmp.path(), "sync"))?;
    // On failure the temp file is removed when `persist` hands it back and it is dropped.
    tmp.persist(path)
        .map_err(|e| io_err(path, "rename into place")(e.error))?;
    sync_dir(dir).map_err(io_err(dir, "sync the folder"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn name(s: &str) -> RecipeName {
        RecipeName::parse(s).unwrap()
    }

    #[test]
    fn an_atomic_write_makes_a_file_the_group_can_write_under_the_shared_umask() {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(shared_umask(0o022), 0o002);
        assert_eq!(shared_umask(0o027), 0o007);
        assert_eq!(shared_umask(0o077), 0o057);
        // SAFETY: sets this test process's file creation mask (each test is its own process).
        unsafe { libc::umask(shared_umask(0o022) as libc::mode_t) };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canonical.json");
        write_atomic(dir.path(), &path, b"{}").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o664, "{mode:o}");
    }

    fn record(recipe: &str, version: &str) -> CanonicalRecord {
        CanonicalRecord {
            recipe: name(recipe),
            version: ReleaseVersion::parse(version).unwrap(),
            commit: CommitId::parse(&"a".repeat(40)).expect("a full id"),
            promoted_at: now(),
            build: Some("42".into()),
            pinned: None,
            host: None,
        }
    }

    #[test]
    fn report_times_print_as_rfc3339_in_utc_without_fractions() {
        let t = OffsetDateTime::from_unix_timestamp(1_767_323_045).unwrap();
        assert_eq!(rfc3339(t), "2026-01-02T03:04:05Z");
        let text = rfc3339(now());
        assert!(text.ends_with('Z') && !text.contains('.'), "{text}");
    }

    #[test]
    fn no_file_means_no_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        assert_eq!(state.read_canonical(&name("app")).unwrap(), None);
    }

    #[test]
    fn canonical_round_trips_with_rfc3339_utc_and_no_temp_left() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let r = record("app", "1.2.3+4.5");
        let lock = state.lock(&r.recipe, LockWait::Fail).unwrap();
        state.write_canonical(&lock, &r).unwrap();
        assert_eq!(state.read_canonical(&r.recipe).unwrap(), Some(r.clone()));
        let text = fs::read_to_string(state.canonical_path(&r.recipe)).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(
            json["promoted_at"].as_str().unwrap().ends_with('Z'),
            "{text}"
        );
        assert_eq!(json["version"], "1.2.3+4.5");
        let leftovers: Vec<_> = fs::read_dir(state.recipe_dir(&r.recipe))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn corrupt_or_foreign_canonical_is_an_error_not_absent() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let app = name("app");
        fs::create_dir_all(state.recipe_dir(&app)).unwrap();
        let cases: &[(&str, &str)] = &[
            ("", "corrupt"),
            ("{\"recipe\":\"app\"", "corrupt"),
            ("{\"recipe\":\"app\",\"version\":\"v1.0\",\"commit\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"promoted_at\":\"2026-01-01T00:00:00Z\"}", "corrupt"),
            ("{\"recipe\":\"app\",\"version\":\"1.0.0+1\",\"commit\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"promoted_at\":\"yesterday\"}", "corrupt"),
            ("{\"recipe\":\"other\",\"version\":\"1.0.0+1\",\"commit\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"promoted_at\":\"2026-01-01T00:00:00Z\"}", "not `app`"),
        ];
        for (text, want) in cases {
            fs::write(state.canonical_path(&app), text).unwrap();
            let err = state.read_canonical(&app).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("canonical.json"), "{err}");
        }
    }

    #[test]
    fn unreadable_canonical_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let app = name("app");
        // A folder where the file should be cannot be read as a file.
        fs::create_dir_all(state.canonical_path(&app)).unwrap();
        assert!(matches!(
            state.read_canonical(&app),
            Err(StateError::Unsafe { .. })
        ));
    }

    #[test]
    fn history_appends_every_entry_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        for (i, decision) in ["refuse", "promote"].iter().enumerate() {
            state
                .append_history(&HistoryEntry {
                    at: now(),
                    recipe: name("app"),
                    decision: decision.to_string(),
                    version: Some(format!("1.0.{i}+1")),
                    tested_commit: Some(CommitId::parse(&"b".repeat(40)).expect("a full id")),
                    reasons: vec![format!("reason {i}")],
                    trigger: Some("tag".into()),
                    build: Some("7".into()),
                    canonical_before: None,
                })
                .unwrap();
        }
        let h = state.read_history(&name("app")).unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].decision, "refuse");
        assert_eq!(h[1].version.as_deref(), Some("1.0.1+1"));
    }

    #[test]
    fn the_history_tail_holds_the_newest_whole_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let app = name("app");
        assert!(state.read_history_tail(&app, 4096).unwrap().is_empty());
        for i in 0..40 {
            state
                .append_history(&HistoryEntry {
                    at: now(),
                    recipe: app.clone(),
                    decision: "promote".into(),
                    version: Some(format!("1.0.{i}+1")),
                    tested_commit: None,
                    reasons: Vec::new(),
                    trigger: None,
                    build: None,
                    canonical_before: None,
                })
                .unwrap();
        }
        let line = fs::read_to_string(state.history_path(&app))
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .len() as u64
            + 1;
        // Three whole lines and part of a fourth: the cut one is left out, not misread.
        let tail = state.read_history_tail(&app, 3 * line + line / 2).unwrap();
        let versions: Vec<_> = tail.iter().filter_map(|e| e.version.clone()).collect();
        assert_eq!(versions, ["1.0.37+1", "1.0.38+1", "1.0.39+1"]);
        assert_eq!(
            state.read_history_tail(&app, 1 << 20).unwrap(),
            state.read_history(&app).unwrap(),
            "a tail larger than the file is the whole history"
        );
    }

    #[test]
    fn a_second_taker_fails_fast_or_waits_for_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let app = name("app");
        let held = state.lock(&app, LockWait::Fail).unwrap();
        let err = state.lock(&app, LockWait::Fail).unwrap_err();
        assert!(err.to_string().contains("locked by another run"), "{err}");
        let err = state
            .lock(&app, LockWait::Wait(Duration::from_millis(120)))
            .unwrap_err();
        assert!(err.to_string().contains("gave up waiting"), "{err}");
        // Another recipe is independent.
        state.lock(&name("other"), LockWait::Fail).unwrap();
        let releaser = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            drop(held);
        });
        state
            .lock(&app, LockWait::Wait(Duration::from_secs(10)))
            .unwrap();
        releaser.join().unwrap();
    }

    #[test]
    fn concurrent_writers_are_serialised_by_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path());
        let inside = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (state, inside, barrier) = (state.clone(), inside.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let lock = state
                        .lock(&name("app"), LockWait::Wait(Duration::from_secs(30)))
                        .unwrap();
                    let n = inside.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    assert_eq!(n, 0, "two holders at once");
                    state
                        .write_canonical(&lock, &record("app", &format!("1.0.{i}+1")))
                        .unwrap();
                    std::thread::sleep(Duration::from_millis(5));
                    inside.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert!(state.read_canonical(&name("app")).unwrap().is_some());
    }

    #[test]
    fn missed_webhooks_are_counted_per_recipe() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(dir.path().join("fresh"));
        assert!(state.missed_webhook_counts().is_empty());
        for (recipe, tag) in [("app", "1.0.0+1"), ("app", "1.1.0+1"), ("web", "2.0.0+1")] {
            state
                .record_missed_webhook(&MissedWebhook {
                    at: now(),
                    recipe: name(recipe),
                    tag: tag.into(),
                    commit: CommitId::parse(&"c".repeat(40)).expect("a full id"),
                })
                .unwrap();
        }
        let counts = state.missed_webhook_counts();
        assert_eq!(counts.get("app"), Some(&2));
        assert_eq!(counts.get("web"), Some(&1));
    }

    #[test]
    fn concurrent_atomic_writers_never_share_a_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("canonical.json");
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|i| {
                let (dir, path, barrier) =
                    (dir.path().to_path_buf(), path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let body = format!("{{\"writer\":{i},\"pad\":\"{}\"}}", "x".repeat(4096));
                    barrier.wait();
                    for _ in 0..20 {
                        write_atomic(&dir, &path, body.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let text = fs::read_to_string(&path).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).expect("one writer's whole body");
        assert_eq!(json["pad"].as_str().unwrap().len(), 4096);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn durable_folders_are_created_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
        let file = dir.path().join("a/file");
        fs::write(&file, "x").unwrap();
        assert!(create_dir_durable(&file.join("under-a-file")).is_err());
    }
}
