//! Host-local holds on a recipe's warm data: the `warm-<recipe>_*` Docker volumes a promotion
//! leaves on the runner host as the base later runs start from.
//!
//! Pull-request runs copy the volumes under a shared hold ([`WarmHolds::attach`]); a promotion
//! replaces them under an exclusive one ([`WarmHolds::promote`]), waiting for copies in flight.
//! Both are OS file locks, which the kernel drops when their process dies, so a crashed run
//! never blocks the next promotion. Each hold also leaves a record naming its holder, locked by
//! its owner for as long as the hold lasts: [`WarmHolds::status`] reads who holds the data
//! without waiting on any lock a taker waits on, and removes the records of holders that are
//! gone (their lock is free).
//!
//! Layout, beside the recipe's records in the state dir:
//!
//! ```text
//! <state>/<recipe>/warm/.lock                          shared by attaches, exclusive for a promote
//! <state>/<recipe>/warm/.promote                       exclusive while a promote waits: attaches
//!                                                      pass it shared, so they queue behind the
//!                                                      promote instead of starving it
//! <state>/<recipe>/warm/holders/<pid>-<random>.json    one per hold, locked by its owner
//! ```
//!
//! The status is read live and never stored in the canonical record: a stored status would go
//! stale the moment its process died.

use std::fmt;
use std::fs::{self, File, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngExt as _;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{
    create_dir_durable, files, io_err, now, open_lock_file, take_lock, FileLock, LockWait,
    StateError,
};
use crate::recipe::RecipeName;

/// The prefix of a holder record being written; [`WarmHolds::status`] reads only finished ones.
const TMP_PREFIX: &str = ".hold.tmp.";
/// How old an unlocked, unfinished record must be before [`WarmHolds::status`] removes it: its
/// writer locks it right after creating it, so only one killed in between leaves it unlocked.
const TMP_STALE: Duration = Duration::from_secs(60);

/// Who takes a hold, shown by [`WarmHolds::status`] while the hold lasts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The build (a number or a link); empty outside a build.
    pub build: String,
    /// What the holder does with the data (`run refs/pull/4/head`, `promote 1.2.0+1`).
    pub what: String,
}

/// One live holder, as [`WarmHolds::status`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderInfo {
    /// The build (a number or a link); empty outside a build.
    pub build: String,
    /// What the holder does with the data.
    pub what: String,
    /// The holding process.
    pub pid: u32,
    /// When the hold was taken, RFC 3339 UTC.
    #[serde(with = "time::serde::rfc3339")]
    pub since: OffsetDateTime,
}

impl fmt::Display for HolderInfo {
    /// `build 12: run refs/pull/4/head`; the pid stands in for a missing build.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.build.is_empty() {
            write!(f, "pid {}", self.pid)?;
        } else {
            write!(f, "build {}", self.build)?;
        }
        if !self.what.is_empty() {
            write!(f, ": {}", self.what)?;
        }
        Ok(())
    }
}

/// Whether a recipe's warm data is in use on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmState {
    /// Nobody holds it.
    Idle,
    /// Runs hold it shared, to copy it.
    Attached,
    /// A promote holds it exclusively, to replace it.
    Promoting,
}

impl WarmState {
    /// Returns `idle`, `attached` or `promoting`.
    pub fn as_str(self) -> &'static str {
        match self {
            WarmState::Idle => "idle",
            WarmState::Attached => "attached",
            WarmState::Promoting => "promoting",
        }
    }
}

/// A recipe's warm data on this host: who holds it now.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct WarmStatus {
    /// Idle, attached or promoting.
    pub status: WarmState,
    /// The live holders, oldest first (none when idle).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holders: Vec<HolderInfo>,
}

impl WarmStatus {
    /// Returns the status of warm data nobody holds.
    pub fn idle() -> Self {
        Self {
            status: WarmState::Idle,
            holders: Vec::new(),
        }
    }

    /// Returns true when nobody holds the data.
    pub fn is_idle(&self) -> bool {
        self.status == WarmState::Idle
    }
}

impl fmt::Display for WarmStatus {
    /// `idle`, `attached (build 12: run refs/pull/4/head; build 13: ...)`, `promoting (build 7)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.status.as_str())?;
        if self.holders.is_empty() {
            return Ok(());
        }
        f.write_str(" (")?;
        for (i, h) in self.holders.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{h}")?;
        }
        f.write_str(")")
    }
}

/// The kind of a hold, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum HoldKind {
    Attach,
    Promote,
}

/// A holder record on disk.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    hold: HoldKind,
    #[serde(flatten)]
    holder: HolderInfo,
}

/// The holds on one recipe's warm data in one state dir.
#[derive(Debug, Clone)]
pub struct WarmHolds {
    dir: PathBuf,
    recipe: RecipeName,
    /// Who may own the files in the state dir.
    owners: files::Owners,
}

/// A hold on a recipe's warm data; dropping it removes its record and releases the lock.
#[derive(Debug)]
pub struct Hold {
    lock: File,
    record: File,
    record_path: PathBuf,
    recipe: RecipeName,
}

impl Hold {
    /// Returns the recipe whose warm data is held.
    pub fn recipe(&self) -> &RecipeName {
        &self.recipe
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // The record goes first, while the lock is still held, so no reader ever sees the data
        // free with this record still in it. Closing the files releases both locks anyway.
        let _ = fs::remove_file(&self.record_path);
        let _ = self.record.unlock();
        let _ = self.lock.unlock();
    }
}

impl WarmHolds {
    /// Returns the holds on `recipe`'s warm data in `state_dir` (nothing is created until a
    /// hold is taken).
    pub fn new(state_dir: &Path, recipe: &RecipeName) -> Self {
        Self {
            dir: state_dir.join(recipe.as_str()).join("warm"),
            recipe: recipe.clone(),
            owners: files::Owners::of(state_dir),
        }
    }

    /// Returns `<state>/<recipe>/warm`, where the locks and the holder records are.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn holders_dir(&self) -> PathBuf {
        self.dir.join("holders")
    }

    /// A shared hold for copying the warm data; waits (per `wait`) while a promote holds it or
    /// waits for it.
    pub fn attach(&self, holder: &Holder, wait: LockWait) -> Result<Hold, StateError> {
        let deadline = wait.deadline();
        self.ensure_dirs()?;
        let (queue, queue_path) = self.open_lock(".promote")?;
        let (lock, lock_path) = self.open_lock(".lock")?;
        // A promote that holds or waits for the data has the queue exclusively.
        if !take_lock(&queue, &queue_path, FileLock::Shared, deadline)? {
            return Err(self.locked(queue_path, attach_hint(wait)));
        }
        let held = take_lock(&lock, &lock_path, FileLock::Shared, deadline)?;
        drop(queue);
        if !held {
            return Err(self.locked(lock_path, attach_hint(wait)));
        }
        self.hold(lock, HoldKind::Attach, holder)
    }

    /// The exclusive hold of a promote; waits (per `wait`) for attached holds to go. While it
    /// waits, new attaches wait behind it.
    pub fn promote(&self, holder: &Holder, wait: LockWait) -> Result<Hold, StateError> {
        let deadline = wait.deadline();
        self.ensure_dirs()?;
        let (lock, lock_path) = self.open_lock(".lock")?;
        if take_lock(&lock, &lock_path, FileLock::Exclusive, None)? {
            return self.hold(lock, HoldKind::Promote, holder);
        }
        if deadline.is_none() {
            return Err(self.locked(lock_path, self.promote_hint(wait)));
        }
        // Queue first, so attaches that come while this waits do not keep the data held forever.
        let (queue, queue_path) = self.open_lock(".promote")?;
        if !take_lock(&queue, &queue_path, FileLock::Exclusive, deadline)? {
            return Err(self.locked(
                queue_path,
                "another promote holds or waits for the warm data; gave up waiting for it",
            ));
        }
        if !take_lock(&lock, &lock_path, FileLock::Exclusive, deadline)? {
            return Err(self.locked(lock_path, self.promote_hint(wait)));
        }
        // Holding the data keeps attaches out by itself; the queue has done its part.
        drop(queue);
        self.hold(lock, HoldKind::Promote, holder)
    }

    /// Returns who holds the warm data now: idle, attached (with the live holders) or promoting
    /// (with its holder). Records whose process is gone are removed, not shown. Takes no lock
    /// any taker waits on, and never waits.
    pub fn status(&self) -> Result<WarmStatus, StateError> {
        let dir = self.holders_dir();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(WarmStatus::idle()),
            Err(e) => return Err(io_err(&dir, "list the warm data's holders")(e)),
        };
        let (mut attached, mut promoting) = (Vec::new(), Vec::new());
        for entry in entries {
            let entry = entry.map_err(io_err(&dir, "list the warm data's holders"))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TMP_PREFIX) {
                remove_if_stale(&path, self.owners);
                continue;
            }
            if !name.ends_with(".json") {
                continue;
            }
            match read_live(&path, self.owners)? {
                Some(Record {
                    hold: HoldKind::Attach,
                    holder,
                }) => attached.push(holder),
                Some(Record {
                    hold: HoldKind::Promote,
                    holder,
                }) => promoting.push(holder),
                None => {}
            }
        }
        let (status, mut holders) = if !promoting.is_empty() {
            (WarmState::Promoting, promoting)
        } else if !attached.is_empty() {
            (WarmState::Attached, attached)
        } else {
            (WarmState::Idle, Vec::new())
        };
        holders.sort_by(|a, b| (a.since, a.pid, &a.build).cmp(&(b.since, b.pid, &b.build)));
        Ok(WarmStatus { status, holders })
    }

    /// Creates `<state>/<recipe>/warm/holders` (group-writable under the shared umask).
    fn ensure_dirs(&self) -> Result<(), StateError> {
        let dir = self.holders_dir();
        create_dir_durable(&dir).map_err(io_err(&dir, "create the warm data's folder"))?;
        if let Some(recipe_dir) = self.dir.parent() {
            files::check_dir(recipe_dir, self.owners)?;
        }
        files::check_dir(&self.dir, self.owners)?;
        files::check_dir(&dir, self.owners)
    }

    /// Opens (creating) the lock file `name`.
    fn open_lock(&self, name: &str) -> Result<(File, PathBuf), StateError> {
        let path = self.dir.join(name);
        let file = open_lock_file(&path, self.owners)?;
        Ok((file, path))
    }

    /// Writes the holder record of a hold on `lock`, locked by this process until the hold is
    /// dropped. The record is written under a temporary name and renamed when whole and locked,
    /// so a reader never takes a record being written for one whose owner is gone.
    fn hold(&self, lock: File, kind: HoldKind, holder: &Holder) -> Result<Hold, StateError> {
        let dir = self.holders_dir();
        let record = Record {
            hold: kind,
            holder: HolderInfo {
                build: holder.build.clone(),
                what: holder.what.clone(),
                pid: std::process::id(),
                since: now(),
            },
        };
        let path = dir.join(format!(
            "{}-{:016x}.json",
            record.holder.pid,
            rand::rng().random::<u64>()
        ));
        let mut bytes = serde_json::to_vec(&record).map_err(|e| StateError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        bytes.push(b'\n');
        // Created like any other file (0666 less the umask), so a reader running as another user
        // of the state dir's group can read it and remove it once its owner is gone.
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(&dir)
            .map_err(io_err(&dir, "create a holder record"))?;
        match tmp.as_file().try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(io_err(tmp.path(), "lock the new holder record")(
                    io::Error::from(io::ErrorKind::WouldBlock),
                ))
            }
            Err(TryLockError::Error(e)) => {
                return Err(io_err(tmp.path(), "lock the new holder record")(e))
            }
        }
        tmp.write_all(&bytes)
            .map_err(io_err(tmp.path(), "write the holder record"))?;
        let record_file = tmp
            .persist_noclobber(&path)
            .map_err(|e| io_err(&path, "rename the holder record into place")(e.error))?;
        Ok(Hold {
            lock,
            record: record_file,
            record_path: path,
            recipe: self.recipe.clone(),
        })
    }

    /// Returns the error for a hold not taken on `path`.
    fn locked(&self, path: PathBuf, hint: &'static str) -> StateError {
        StateError::Locked {
            recipe: self.recipe.clone(),
            path,
            hint,
        }
    }

    /// Returns why a promote could not take the data: another promote or runs copying it.
    fn promote_hint(&self, wait: LockWait) -> &'static str {
        let promoting = self
            .status()
            .is_ok_and(|s| s.status == WarmState::Promoting);
        match (promoting, wait) {
            (true, LockWait::Fail) => {
                "another promote holds the warm data; not waiting (lock wait is off)"
            }
            (true, LockWait::Wait(_)) => {
                "another promote holds the warm data; gave up waiting for it"
            }
            (false, LockWait::Fail) => {
                "runs still copy the warm data; not waiting (lock wait is off)"
            }
            (false, LockWait::Wait(_)) => "runs still copy the warm data; gave up waiting for them",
        }
    }
}

/// Returns why an attach could not take the data.
fn attach_hint(wait: LockWait) -> &'static str {
    match wait {
        LockWait::Fail => "a promote holds the warm data; not waiting (lock wait is off)",
        LockWait::Wait(_) => "a promote holds the warm data; gave up waiting for it",
    }
}

/// Reads the holder record at `path` when its owner still holds it; removes it (and returns
/// `None`) when the owner is gone, and returns `None` when it went meanwhile.
fn read_live(path: &Path, owners: files::Owners) -> Result<Option<Record>, StateError> {
    // None: its hold was dropped since the folder was listed.
    let Some(mut file) = files::open_read(path, owners)? else {
        return Ok(None);
    };
    match file.try_lock_shared() {
        Ok(()) => {
            // Nobody holds it: its owner died (the kernel dropped the lock) or just dropped the
            // hold. Removing it is the cleanup; a reader without the right to is still right to
            // leave it out.
            let _ = fs::remove_file(path);
            return Ok(None);
        }
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(io_err(path, "lock a holder record")(e)),
    }
    let bytes = crate::bounded_read::read_from(&mut file, crate::bounded_read::RECORD_FILE)
        .map_err(io_err(path, "read a holder record"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| StateError::Corrupt {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Removes a record left half-written by a process killed before it locked it.
fn remove_if_stale(path: &Path, owners: files::Owners) {
    let Ok(Some(file)) = files::open_read(path, owners) else {
        return;
    };
    let old = file
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > TMP_STALE);
    if old && file.try_lock_shared().is_ok() {
        let _ = fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(build: &str, what: &str, pid: u32) -> HolderInfo {
        HolderInfo {
            build: build.into(),
            what: what.into(),
            pid,
            since: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn the_status_reads_as_a_phrase() {
        // (status, holders, text)
        let cases: Vec<(WarmState, Vec<HolderInfo>, &str)> = vec![
            (WarmState::Idle, vec![], "idle"),
            (
                WarmState::Attached,
                vec![
                    info("12", "run refs/pull/4/head", 1),
                    info("13", "run refs/pull/5/head", 2),
                ],
                "attached (build 12: run refs/pull/4/head; build 13: run refs/pull/5/head)",
            ),
            (
                WarmState::Promoting,
                vec![info("7", "", 3)],
                "promoting (build 7)",
            ),
            (
                WarmState::Attached,
                vec![info("", "copy by hand", 42)],
                "attached (pid 42: copy by hand)",
            ),
        ];
        for (status, holders, want) in cases {
            assert_eq!(WarmStatus { status, holders }.to_string(), want);
        }
    }

    #[test]
    fn a_hold_is_shown_until_it_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let app = RecipeName::parse("app").unwrap();
        let holds = WarmHolds::new(dir.path(), &app);
        assert!(holds.status().unwrap().is_idle());
        assert!(!holds.dir().exists(), "reading the status creates nothing");
        let holder = Holder {
            build: "12".into(),
            what: "run refs/pull/4/head".into(),
        };
        let hold = holds.attach(&holder, LockWait::Fail).unwrap();
        assert_eq!(hold.recipe(), &app);
        let status = holds.status().unwrap();
        assert_eq!(status.status, WarmState::Attached);
        assert_eq!(status.holders.len(), 1);
        assert_eq!(status.holders[0].pid, std::process::id());
        assert_eq!(status.holders[0].what, "run refs/pull/4/head");
        drop(hold);
        assert!(holds.status().unwrap().is_idle());
        assert_eq!(
            fs::read_dir(holds.holders_dir()).unwrap().count(),
            0,
            "the record went with the hold"
        );
    }

    #[test]
    fn an_unlocked_record_is_a_gone_holder_and_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let app = RecipeName::parse("app").unwrap();
        let holds = WarmHolds::new(dir.path(), &app);
        holds.ensure_dirs().unwrap();
        let gone = holds.holders_dir().join("1-00.json");
        fs::write(
            &gone,
            r#"{"hold":"promote","build":"7","what":"","pid":1,"since":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert!(holds.status().unwrap().is_idle());
        assert!(!gone.exists());
    }
}
