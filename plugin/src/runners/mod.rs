//! The runner seam: what runs the stage ladder of a cold CI run, and the promote step.
//!
//! A runner reports stage results; it never decides the verdict. The verdict is canon's, from
//! the stages and the gate (`canon_shared::gate`).

pub mod abra;
pub mod compose_facts;
pub mod docker;
pub mod exec;
pub mod ladder;
pub mod stack_names;

use std::collections::BTreeMap;
use std::path::PathBuf;

use canon_shared::gate::{StageResult, TestedRef};
use canon_shared::recipe::Recipe;
use canon_shared::state::CanonicalRecord;

pub mod command;

/// Everything a runner needs to know about one run.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The enrolled recipe.
    pub recipe: Recipe,
    /// What is tested: a tag or another ref.
    pub tested: TestedRef,
    /// The commit under test (full hex).
    pub commit: String,
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

    /// Runs the ladder and returns one result per stage. Teardown of everything the run created
    /// happens inside, also after a failure.
    fn run(&self, ctx: &RunContext) -> Result<Vec<StageResult>, RunnerError>;

    /// Runs after the gate allowed a promotion and before the canonical is written (for the
    /// built-in runners: deploy `warm-<recipe>`, wait healthy, undeploy keeping volumes). An error
    /// here means the canonical is not written.
    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError>;
}
