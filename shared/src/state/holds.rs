//! Holds on a recipe's warm data (provisional: shared and exclusive file locks only).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{LockWait, StateError};
use crate::recipe::RecipeName;

/// The holds on one recipe's warm data.
#[derive(Debug, Clone)]
pub struct WarmHolds {
    dir: PathBuf,
    recipe: RecipeName,
}

/// Who takes a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The build.
    pub build: String,
    /// What it does.
    pub what: String,
}

/// A hold; released on drop.
#[derive(Debug)]
pub struct Hold {
    _file: File,
}

/// idle, attached or promoting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WarmState {
    /// Nobody holds the warm data.
    Idle,
    /// Runs copy it.
    Attached,
    /// A promote replaces it.
    Promoting,
}

/// The status of a recipe's warm data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmStatus {
    /// The state.
    pub status: WarmState,
}

impl WarmHolds {
    /// Returns the holds of `recipe` in `state_dir`.
    pub fn new(state_dir: &Path, recipe: &RecipeName) -> Self {
        WarmHolds {
            dir: state_dir.join(recipe.as_str()).join("warm"),
            recipe: recipe.clone(),
        }
    }

    fn take(&self, shared: bool, wait: LockWait) -> Result<Hold, StateError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| StateError::Io {
            path: self.dir.clone(),
            action: "create the warm holds dir",
            source: e,
        })?;
        let path = self.dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StateError::Io {
                path: path.clone(),
                action: "open the warm lock",
                source: e,
            })?;
        let deadline = match wait {
            LockWait::Fail => None,
            LockWait::Wait(d) => Some(Instant::now() + d),
        };
        loop {
            let r = if shared {
                file.try_lock_shared()
            } else {
                file.try_lock()
            };
            match r {
                Ok(()) => return Ok(Hold { _file: file }),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(StateError::Io {
                        path,
                        action: "lock the warm data",
                        source: e,
                    })
                }
            }
            match deadline {
                Some(d) if Instant::now() < d => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    return Err(StateError::Locked {
                        recipe: self.recipe.clone(),
                        path,
                        hint: "the warm data is held",
                    })
                }
            }
        }
    }

    /// A shared hold.
    pub fn attach(&self, _holder: &Holder, wait: LockWait) -> Result<Hold, StateError> {
        self.take(true, wait)
    }

    /// The exclusive hold.
    pub fn promote(&self, _holder: &Holder, wait: LockWait) -> Result<Hold, StateError> {
        self.take(false, wait)
    }
}
