//! What one tag-mode run is asked to do, made once from the settings: the enrolled recipe, the
//! ref under test, the remotes with their credentials, the runner.
//!
//! Separate from the steps because it is the only part that reads [`Settings`]; the steps, the
//! sweep's inline runs and the tests start from a [`RunSettings`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use canon_shared::gate::TestedRef;
use canon_shared::mirror::{Credentials, GitRemote};
use canon_shared::recipe::{Enrollment, Recipe};
use canon_shared::state::{self, LockWait, StateStore};

use crate::remotes::GitAccess;
use crate::runners::Runner;
use crate::settings::{ClaimedCommit, Settings, SettingsError};

/// A tag-mode run ready to go: its settings, its runner, and the git credentials that must
/// outlive the run.
pub struct Prepared {
    /// What to run.
    pub run: RunSettings,
    /// The runner.
    pub runner: Box<dyn Runner>,
    /// Keeps the SSH key file for the run's remotes.
    _access: GitAccess,
}

/// Why tag mode could not be prepared from valid settings: a settings problem (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Enrollment(#[from] canon_shared::recipe::EnrollmentError),
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("cannot write the SSH key to a private file: {0}")]
    SshKey(std::io::Error),
}

/// Loads the enrollment, finds the recipe and builds the runner.
pub fn prepare(settings: &Settings) -> Result<Prepared, PrepareError> {
    let enrollment = Enrollment::load(&settings.config)?;
    let problem = |p: String| PrepareError::Settings(SettingsError::new(vec![p]));
    let recipe = match (&settings.recipe, &settings.drone_repo) {
        (Some(name), _) => enrollment.get(name).cloned().ok_or_else(|| {
            problem(format!(
                "recipe `{name}` is not enrolled in {}",
                settings.config.display()
            ))
        })?,
        (None, Some(repo)) => enrollment
            .recipes
            .iter()
            .find(|r| r.mirror.matches(repo) || r.upstream.matches(repo))
            .cloned()
            .ok_or_else(|| {
                problem(format!(
                    "`recipe` is unset and no enrolled recipe's mirror or upstream is DRONE_REPO={repo}"
                ))
            })?,
        (None, None) => return Err(problem("`recipe` is required in tag mode".into())),
    };
    let tested = settings
        .tested
        .clone()
        .ok_or_else(|| problem("tag mode needs `tag` or `ref`".into()))?;
    let access = GitAccess::from_settings(settings)
        .map_err(PrepareError::SshKey)?
        .bind_to(&enrollment);
    let runner = crate::runners::from_settings(settings)?;
    Ok(Prepared {
        run: RunSettings::new(settings, recipe, tested, access.credentials()),
        runner,
        _access: access,
    })
}

/// Everything one tag-mode run needs, with no environment access. The sweep's inline mode builds
/// one per recipe.
#[derive(Debug, Clone)]
pub struct RunSettings {
    /// The enrolled recipe.
    pub recipe: Recipe,
    /// The tag (or ref) to test.
    pub tested: TestedRef,
    /// Commits the build claims; each must equal the tag's peeled commit upstream.
    pub claimed_commits: Vec<ClaimedCommit>,
    /// A quick run (never promotes).
    pub quick: bool,
    /// A ref run starts from the canonical's warm data when this host holds it.
    pub warm: bool,
    /// The state directory.
    pub state_dir: PathBuf,
    /// The git state repository that holds the canonical records instead of the state dir.
    pub state_repo: Option<GitRemote>,
    /// Where the per-run folder is made.
    pub work_dir: PathBuf,
    /// Keep the per-run folder afterwards.
    pub keep_work_dir: bool,
    /// How to take the recipe lock.
    pub lock_wait: LockWait,
    /// The upstream repository (tags are verified here).
    pub upstream: GitRemote,
    /// The mirror repository (checkouts come from here).
    pub mirror: GitRemote,
    /// Extra environment for the harness.
    pub env: BTreeMap<String, String>,
    /// The build number or a local id.
    pub build: String,
    /// A link to the build.
    pub build_link: Option<String>,
    /// What started the run (recorded in the history).
    pub trigger: String,
    /// Where to write the JSON report (`None`: no file).
    pub report: Option<PathBuf>,
}

impl RunSettings {
    /// Returns the run of `recipe` at `tested` that `settings` describe: the one constructor of
    /// tag mode and the sweep's inline runs (which then set their own claim, trigger and report).
    pub fn new(
        settings: &Settings,
        recipe: Recipe,
        tested: TestedRef,
        credentials: &Credentials,
    ) -> Self {
        Self {
            upstream: credentials.upstream(&recipe),
            mirror: credentials.mirror(&recipe),
            recipe,
            tested,
            claimed_commits: settings.claimed_commits.clone(),
            quick: settings.quick,
            warm: settings.warm,
            state_dir: settings.state_dir.clone(),
            state_repo: settings
                .state_repo
                .as_deref()
                .map(|url| credentials.state_remote(url)),
            work_dir: settings.work_dir.clone(),
            keep_work_dir: settings.keep_work_dir,
            lock_wait: settings.lock_wait,
            env: settings.env.clone(),
            build: settings.build.clone(),
            build_link: settings.build_link.clone(),
            trigger: settings.trigger.clone(),
            report: Some(settings.report_path("canon-report.json")),
        }
    }

    /// Returns where the run reads and writes the canonical: the state repository when one is
    /// set, else the state dir.
    pub fn store(&self) -> Box<dyn StateStore> {
        state::open_store(&self.state_dir, self.state_repo.clone())
    }

    /// Returns the build as the history and the canonical record name it: the link, else the
    /// number.
    pub(super) fn build_ref(&self) -> String {
        self.build_link
            .clone()
            .unwrap_or_else(|| self.build.clone())
    }
}
