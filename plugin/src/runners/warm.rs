//! Warm runs: a pull request or branch run that starts from the canonical's data instead of a
//! fresh install.
//!
//! After a promote the canonical stays on its host undeployed, its volumes `warm-<recipe>_*`
//! kept. A warm run copies each of them into a volume of its own stack (copy-on-reattach: the
//! canonical's volumes are only ever read), deploys the head over the copies with the env the
//! canonical was installed with, then climbs the rest of the ladder. Its install stage is
//! skipped ("reattached the warm canonical ...") and it never promotes: it is not cold.
//!
//! Tag mode decides whether a run is warm ([`WarmBase`] in the run context) and says why not
//! when it is cold; the runner reports what it copied ([`WarmReport`]).

use std::sync::{Arc, Mutex};

use canon_shared::gate::StageResult;
use canon_shared::state::holds::Hold;
use canon_shared::state::CanonicalRecord;
use serde::{Deserialize, Serialize};

/// The warm data a warm run starts from, held shared (no promote replaces it) until the runner
/// has copied it.
#[derive(Debug, Clone)]
pub struct WarmBase {
    /// The canonical whose data it is (read under the hold).
    pub canonical: CanonicalRecord,
    /// The canonical's warm volumes (`warm-<recipe>_<key>`), sorted, listed under the hold.
    pub volumes: Vec<String>,
    /// The shared hold on the recipe's warm data, until [`WarmBase::release`] (or the end of
    /// the run, or of the process).
    pub hold: Arc<Mutex<Option<Hold>>>,
}

impl WarmBase {
    /// Releases the hold on the warm data: the runner calls it once its copies are made.
    pub fn release(&self) {
        let hold = self.hold.lock().map(|mut h| h.take());
        drop(hold);
    }

    /// Returns the install stage's reason in a warm run.
    pub fn reattached(&self) -> String {
        format!(
            "reattached the warm canonical {} (promoted {})",
            self.canonical.version,
            self.canonical.promoted_at.date()
        )
    }
}

/// One warm volume copied into the run's stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmCopy {
    /// The canonical's volume.
    pub from: String,
    /// The run's copy.
    pub to: String,
    /// The size of the data copied, as the engine counts it.
    pub bytes: u64,
}

/// What a warm run started from, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmReport {
    /// The canonical's version.
    pub canonical: String,
    /// The canonical's commit.
    pub commit: canon_shared::commit::CommitId,
    /// Every volume copied.
    pub volumes: Vec<WarmCopy>,
}

impl WarmReport {
    /// Returns the report of copies made from `base`.
    pub fn new(base: &WarmBase, volumes: Vec<WarmCopy>) -> Self {
        WarmReport {
            canonical: base.canonical.version.to_string(),
            commit: base.canonical.commit.clone(),
            volumes,
        }
    }
}

/// What one run of a runner produced: the stage results and, for a warm run, what it started
/// from.
#[derive(Debug, Clone, Default)]
pub struct RunOutput {
    /// One result per stage, in ladder order.
    pub stages: Vec<StageResult>,
    /// The warm data the run copied (warm runs only).
    pub warm: Option<WarmReport>,
}

impl From<Vec<StageResult>> for RunOutput {
    fn from(stages: Vec<StageResult>) -> Self {
        RunOutput { stages, warm: None }
    }
}
