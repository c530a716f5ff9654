//! One interface over where canonical records and their history live: a host's state dir
//! ([`StateDir`], the default and the embedded mode) or a git state repository on the forge
//! ([`super::git::GitStore`], shared by every runner host).
//!
//! Every decision goes through [`StateStore::commit`]: the store hands the decision the current
//! canonical, the decision returns what changes, and the store writes it. A store that can lose
//! a race (the git one: another host pushed first) reads the new state and asks the decision
//! again, so a decision is always taken against the state it is written over.

use std::fmt;

use super::{now, CanonicalRecord, HistoryEntry, LockWait, Pin, RecipeLock, StateDir, StateError};
use crate::recipe::RecipeName;

/// What one decision changes: the canonical record to write (none: it stays), and the history
/// lines to add. A store writes both or, when it fails, neither of what it could not write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Change {
    /// The new canonical record.
    pub canonical: Option<CanonicalRecord>,
    /// The decisions to record, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// A decision as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// The canonical the decision was taken against.
    pub before: Option<CanonicalRecord>,
    /// What was written.
    pub change: Change,
    /// How many times the decision was taken (more than once after lost races).
    pub attempts: u32,
}

/// The decision a store asks: given the current canonical, what changes.
pub type Decide<'a> = dyn FnMut(Option<&CanonicalRecord>) -> Result<Change, StateError> + 'a;

/// Where canonical records and their history are kept.
pub trait StateStore: fmt::Debug + Send + Sync {
    /// Returns where the state is, for messages ("state dir /var/lib/canon", "state repository
    /// https://...", without credentials).
    fn describe(&self) -> String;

    /// Reads a recipe's canonical; `Ok(None)` only when it has none.
    fn read_canonical(&self, recipe: &RecipeName) -> Result<Option<CanonicalRecord>, StateError>;

    /// Reads a recipe's whole history, oldest first.
    fn read_history(&self, recipe: &RecipeName) -> Result<Vec<HistoryEntry>, StateError>;

    /// Takes the recipe's host-local lock: runs on this host decide one at a time. (Across
    /// hosts, [`StateStore::commit`] is what keeps decisions apart.)
    fn lock(&self, recipe: &RecipeName, wait: LockWait) -> Result<RecipeLock, StateError>;

    /// Takes `decide` against the current canonical of the lock's recipe and writes its change,
    /// as one step: nothing else is written in between. Called with the lock held.
    fn commit(&self, lock: &RecipeLock, decide: &mut Decide<'_>) -> Result<Committed, StateError>;
}

impl StateStore for StateDir {
    fn describe(&self) -> String {
        format!("state dir {}", self.root().display())
    }

    fn read_canonical(&self, recipe: &RecipeName) -> Result<Option<CanonicalRecord>, StateError> {
        StateDir::read_canonical(self, recipe)
    }

    fn read_history(&self, recipe: &RecipeName) -> Result<Vec<HistoryEntry>, StateError> {
        StateDir::read_history(self, recipe)
    }

    fn lock(&self, recipe: &RecipeName, wait: LockWait) -> Result<RecipeLock, StateError> {
        StateDir::lock(self, recipe, wait)
    }

    fn commit(&self, lock: &RecipeLock, decide: &mut Decide<'_>) -> Result<Committed, StateError> {
        // The file lock keeps every other writer out, so one read is the state written over.
        let before = StateDir::read_canonical(self, lock.recipe())?;
        let change = decide(before.as_ref())?;
        if let Some(record) = &change.canonical {
            self.write_canonical(lock, record)?;
        }
        for entry in &change.history {
            self.append_history(entry)?;
        }
        Ok(Committed {
            before,
            change,
            attempts: 1,
        })
    }
}

/// Pins the recipe's canonical with a reason; while pinned nothing promotes it.
pub fn pin(
    store: &dyn StateStore,
    recipe: &RecipeName,
    reason: &str,
    by: &str,
    wait: LockWait,
) -> Result<CanonicalRecord, StateError> {
    change_pin(store, recipe, "pin", reason, by, wait, &|record| {
        if let Some(p) = &record.pinned {
            return Err(StateError::AlreadyPinned {
                recipe: recipe.clone(),
                reason: p.reason.clone(),
                by: p.by.clone(),
            });
        }
        let mut pinned = record.clone();
        pinned.pinned = Some(Pin {
            reason: reason.to_string(),
            by: by.to_string(),
            at: now(),
        });
        Ok(pinned)
    })
}

/// Removes the pin, recording who did it and why.
pub fn unpin(
    store: &dyn StateStore,
    recipe: &RecipeName,
    reason: &str,
    by: &str,
    wait: LockWait,
) -> Result<CanonicalRecord, StateError> {
    change_pin(store, recipe, "unpin", reason, by, wait, &|record| {
        if record.pinned.is_none() {
            return Err(StateError::NotPinned {
                recipe: recipe.clone(),
            });
        }
        let mut unpinned = record.clone();
        unpinned.pinned = None;
        Ok(unpinned)
    })
}

/// Under the recipe lock, commits `change` of the canonical (there must be one) with its
/// history line (`pin` or `unpin`).
fn change_pin(
    store: &dyn StateStore,
    recipe: &RecipeName,
    decision: &'static str,
    reason: &str,
    by: &str,
    wait: LockWait,
    change: &dyn Fn(&CanonicalRecord) -> Result<CanonicalRecord, StateError>,
) -> Result<CanonicalRecord, StateError> {
    // Refused before the lock is taken: taking it makes the recipe's folder and lock file, and a
    // refused command leaves nothing behind. The check under the lock below still decides.
    if store.read_canonical(recipe)?.is_none() {
        return Err(StateError::NoCanonical {
            recipe: recipe.clone(),
            action: decision,
        });
    }
    let lock = store.lock(recipe, wait)?;
    let committed = store.commit(&lock, &mut |current| {
        let current = current.ok_or_else(|| StateError::NoCanonical {
            recipe: recipe.clone(),
            action: decision,
        })?;
        let record = change(current)?;
        let entry = HistoryEntry {
            at: now(),
            recipe: recipe.clone(),
            decision: decision.into(),
            version: Some(record.version.to_string()),
            tested_commit: None,
            reasons: vec![reason.to_string()],
            trigger: Some(format!("{decision}ned by {by}")),
            build: None,
            canonical_before: Some(current.version.to_string()),
        };
        Ok(Change {
            canonical: Some(record),
            history: vec![entry],
        })
    })?;
    committed
        .change
        .canonical
        .ok_or_else(|| StateError::NoCanonical {
            recipe: recipe.clone(),
            action: decision,
        })
}
