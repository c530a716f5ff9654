//! The runner seam: what runs the stage ladder of a cold CI run, and the promote step.
//!
//! A runner reports stage results; it never decides the verdict. The verdict is canon's, from
//! the stages and the gate (`canon_shared::gate`).
//!
//! # Layout
//! - this file: the interface only: [`RunContext`], [`RunnerError`] and the [`Runner`] trait.
//! - `build`: [`build()`] and [`from_settings`], which build the runner the settings' values
//!   name; the one place that knows all three runners.
//! - [`ladder`]: the one stage ladder (install, upgrade, backup, restore, custom): order, skip
//!   rules, stage bookkeeping, the custom stage and the teardown. A built-in runner fills in only
//!   its [`ladder::Steps`].
//! - [`command`]: the `command` runner: an external harness climbs the ladder and writes a
//!   results file; only the executor ([`crate::process::exec`]) and the warm copies ([`warm`])
//!   are shared.
//! - [`docker`]: the built-in `docker` runner (`docker stack deploy` on a single-node swarm), its
//!   steps and the promote of the warm canonical; every docker command goes through
//!   [`crate::engine`].
//! - [`abra`]: the built-in `abra` runner: the same steps through the abra CLI.
//! - [`warm`]: what a warm run starts from ([`warm::WarmBase`]) and what it copied
//!   ([`warm::WarmReport`]); [`warm::RunOutput`] is what every run returns. Also what every
//!   runner needs for a warm run, so none imports another: which volumes it would copy
//!   ([`warm::warm_volumes`]), the copying ([`warm::copy_volumes`]) and the copies a harness
//!   deploys over ([`warm::WarmCopies`]).
//!
//! What a recipe declares (env, compose files, deploy plan and timeout, stack names) is read
//! through [`crate::recipe`], which runs nothing.

pub mod abra;
mod build;
pub mod command;
pub mod docker;
pub mod ladder;
pub mod warm;

pub use build::{build, from_settings};

use std::collections::BTreeMap;
use std::path::PathBuf;

use canon_shared::commit::CommitId;
use canon_shared::gate::{StageResult, TestedRef};
use canon_shared::recipe::Recipe;
use canon_shared::state::CanonicalRecord;

use crate::engine::EngineError;
use crate::process::ProcessError;
use warm::{RunOutput, WarmBase};

/// Everything a runner needs to know about one run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The enrolled recipe.
    pub recipe: Recipe,
    /// What is tested: a tag or another ref.
    pub tested: TestedRef,
    /// The commit under test (full hex).
    pub commit: CommitId,
    /// A fresh checkout of the mirror at `commit`, private to this run.
    pub checkout: PathBuf,
    /// A scratch folder private to this run (results files, generated secrets, ABRA_DIR, ...).
    pub run_dir: PathBuf,
    /// The canonical before the run: the upgrade base, when there is one.
    pub canonical: Option<CanonicalRecord>,
    /// A fresh checkout of the mirror at the canonical's commit, when there is a canonical.
    pub base_checkout: Option<PathBuf>,
    /// The build number (Drone's `DRONE_BUILD_NUMBER`), or a local run id.
    pub build: String,
    /// True for a `--quick` run.
    pub quick: bool,
    /// A warm run's base: the canonical's warm data to copy instead of a fresh install.
    pub warm: Option<WarmBase>,
    /// Extra environment for child processes (`CANON_*` values the harness expects).
    pub env: BTreeMap<String, String>,
}

impl RunContext {
    /// Returns the tag or ref name under test.
    pub fn tested_name(&self) -> &str {
        match &self.tested {
            TestedRef::Tag(t) | TestedRef::Ref(t) => t,
        }
    }
}

/// Why a runner could not produce results. Any of these makes the run red.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("could not start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` exited with {status}")]
    Exit { command: String, status: String },
    #[error("results file {path}: {message}")]
    Results { path: PathBuf, message: String },
    #[error("timed out after {seconds}s: {what}")]
    Timeout { what: String, seconds: u64 },
    #[error("{0}")]
    Other(String),
    /// The runner failed after it had reported some stages: the report shows them, but the run
    /// is red whatever they say.
    #[error("{error}")]
    WithStages {
        stages: Vec<StageResult>,
        error: Box<RunnerError>,
    },
}

impl From<ProcessError> for RunnerError {
    /// Keeps the executor's error as the runner's: the same variant where there is one (so the
    /// report says what it said before), else its text.
    fn from(e: ProcessError) -> Self {
        match e {
            ProcessError::Spawn { program, source } => RunnerError::Spawn { program, source },
            ProcessError::Exit { command, status } => RunnerError::Exit { command, status },
            ProcessError::Timeout { what, seconds } => RunnerError::Timeout { what, seconds },
            other @ (ProcessError::File { .. } | ProcessError::Wait { .. }) => {
                RunnerError::Other(other.to_string())
            }
        }
    }
}

impl From<EngineError> for RunnerError {
    /// Keeps a failed docker command's error as the runner's (as [`ProcessError`] does); any other
    /// engine error by its text.
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Process(e) => e.into(),
            EngineError::StopTimeout {
                stack,
                left,
                seconds,
            } => RunnerError::Timeout {
                what: format!("stack {stack} to stop ({left} containers/services/networks left)"),
                seconds,
            },
            other => RunnerError::Other(other.to_string()),
        }
    }
}

impl RunnerError {
    /// Returns the stages reported before the failure (empty for most errors).
    pub fn stages(&self) -> &[StageResult] {
        match self {
            RunnerError::WithStages { stages, .. } => stages,
            _ => &[],
        }
    }
}

/// A way to run the cold stage ladder and the promote step.
pub trait Runner {
    /// Returns the runner's name (`command`, `docker`, `abra`).
    fn name(&self) -> &'static str;

    /// Runs the ladder and returns one result per stage (and, for a warm run, what it copied).
    /// Teardown of everything the run created happens inside, also after a failure.
    fn run(&self, ctx: &RunContext) -> Result<RunOutput, RunnerError>;

    /// Returns the canonical's warm volumes on this host that a warm run of `recipe` would copy
    /// (sorted), or why a run of this runner cannot start from them (it then runs cold).
    fn warm_volumes(
        &self,
        recipe: &canon_shared::recipe::RecipeName,
    ) -> Result<Vec<String>, String> {
        let _ = recipe;
        Err(format!(
            "the {} runner keeps no warm data to start from",
            self.name()
        ))
    }

    /// Runs after the gate allowed a promotion and before the canonical is written (for the
    /// built-in runners: deploy `warm-<recipe>`, wait healthy, undeploy keeping volumes). An error
    /// here means the canonical is not written. A runner may keep a known-good copy of what it
    /// replaced until [`Runner::settle_promote`] is told the outcome.
    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError>;

    /// Finishes or rolls back a promote that kept a known-good copy, against `canonical`, the
    /// canonical as it stands now: when it names the version that promote was for, the copy is
    /// dropped; otherwise it is put back, so the warm data always matches the canonical. Does
    /// nothing when no promote is pending (the default, for runners that keep no copy).
    ///
    /// Tag mode calls it under the recipe's lock before every gate (a crashed promote is repaired
    /// by the next run), after a canonical write that failed, and after the canonical and its
    /// history line are written.
    fn settle_promote(
        &self,
        ctx: &RunContext,
        canonical: Option<&CanonicalRecord>,
    ) -> Result<(), RunnerError> {
        let _ = (ctx, canonical);
        Ok(())
    }

    /// Returns `Ok` when the promote step leaves warm data on this host that `canonical rewarm`
    /// can deploy again, or why this runner keeps none (the default).
    fn keeps_warm_data(&self) -> Result<(), String> {
        Err(format!("the {} runner keeps no warm data", self.name()))
    }

    /// Returns the Docker node a promote leaves the warm data on (recorded as the canonical's
    /// `host`), or none for a runner that keeps no warm data of its own.
    fn warm_host(&self) -> Option<String> {
        None
    }
}
