//! Tag mode: verify the tag against upstream, a fresh checkout of the mirror, the version-label
//! check, the cold run through a runner, then the gate and the promote under the recipe's lock.
//!
//! The core is [`run_tag_mode`], a library function over [`RunSettings`] and a [`Runner`], so the
//! sweep's inline mode and the tests call it in-process. It takes four steps, each returning what
//! it established; one function then assembles the report from those values, also when a step
//! stopped the run.
//!
//! Exit codes: 0 green (promoted, or nothing to promote, or a refused promotion, which the log
//! shows in a banner); 1 red, refused verification, or an error; 2 bad settings.
//!
//! # Layout
//! - this file: [`main`], [`run_tag_mode`] (the steps in order, then the report), [`RunError`].
//! - `setup`: the run from the settings: [`prepare`] finds the recipe and builds the runner;
//!   [`RunSettings`] is what one run is asked to do.
//! - `verify`: the tag's commit upstream, and every claimed commit against it.
//! - `prepare`: the run folder, the checkouts, the release check, warm or cold, and the one
//!   place a [`crate::runners::RunContext`] is built (with the harness's environment).
//! - `run`: the runner's ladder, and the verdict read off its stages.
//! - `promote`: the gate, the promote step and the decision written, under the recipe's lock.
//! - `assemble`: the report, from the steps' values.
//! - `rewarm`: [`rewarm()`], the canonical's tag deployed again as the warm canonical under the
//!   same hold as a promote's warm deploy (`canon-plugin canonical rewarm`).

mod assemble;
mod prepare;
mod promote;
mod rewarm;
mod run;
mod setup;
mod verify;

use std::path::PathBuf;
use std::time::Instant;

use canon_shared::commit::CommitId;
use canon_shared::gate::TestedRef;
use canon_shared::mirror::MirrorError;
use canon_shared::state::{self, CanonicalRecord, Change, HistoryEntry, StateError, StateStore};

use crate::checkout::CheckoutError;
use crate::exit::{report_error, EXIT_RED, EXIT_USAGE};
use crate::report::{GateReport, Report};
use crate::runners::Runner;
use crate::settings::Settings;

pub use rewarm::{rewarm, RewarmError};
pub use setup::{prepare, PrepareError, Prepared, RunSettings};

/// Runs tag mode with validated settings; returns the exit code.
pub fn main(settings: &Settings) -> u8 {
    let prepared = match prepare(settings) {
        Ok(p) => p,
        Err(e) => {
            report_error(&e);
            return EXIT_USAGE;
        }
    };
    match run_tag_mode(&prepared.run, prepared.runner.as_ref()) {
        Ok(outcome) => outcome.report.exit_code,
        Err(e) => {
            report_error(&e);
            EXIT_RED
        }
    }
}

/// A finished run: its report (which also carries the exit code).
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// The report, as written to the report file.
    pub report: Report,
}

impl RunOutcome {
    /// Returns true when the run's canonical was written.
    pub fn promoted(&self) -> bool {
        self.report.promoted
    }
}

/// Why a run stopped before a verdict. Each one exits 1; none leaves the canonical changed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{recipe}: tag {tag} claims commit {claimed} ({source_name}), but upstream's tag points at {actual}; a build that claims a tag at another commit is never tested")]
    CommitMismatch {
        recipe: String,
        tag: String,
        source_name: &'static str,
        claimed: CommitId,
        actual: CommitId,
    },
    #[error("{recipe}: upstream {url} has no tag {tag}")]
    TagNotUpstream {
        recipe: String,
        url: String,
        tag: String,
    },
    #[error("{recipe}: cannot list upstream refs")]
    Upstream {
        recipe: String,
        #[source]
        source: MirrorError,
    },
    #[error("{recipe}: cannot check out the mirror")]
    Checkout {
        recipe: String,
        #[source]
        source: CheckoutError,
    },
    #[error("{recipe}: cannot make the run folder under {path}: {source}")]
    WorkDir {
        recipe: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{recipe}: state")]
    State {
        recipe: String,
        #[source]
        source: StateError,
    },
}

impl RunError {
    /// Returns true for a refused verification (the claim and upstream disagree, or the mirror
    /// does): recorded in the history as a refusal.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RunError::CommitMismatch { .. }
                | RunError::TagNotUpstream { .. }
                | RunError::Checkout {
                    source: CheckoutError::MirrorDiffers { .. } | CheckoutError::MissingTag { .. },
                    ..
                }
        )
    }
}

/// Why the steps stopped before a verdict.
#[derive(Debug)]
struct Stopped {
    /// What stopped them (boxed: the steps' results stay small).
    error: Box<RunError>,
    /// True when the decision a failed state write was to carry promoted (the report says so,
    /// as it always has).
    decided_promotion: bool,
}

impl From<RunError> for Stopped {
    fn from(error: RunError) -> Self {
        Self {
            error: Box::new(error),
            decided_promotion: false,
        }
    }
}

/// What the steps established, as far as the run got. Only [`Trail::walk`] fills it in, each
/// field with one step's return value; only `assemble` reads it.
#[derive(Debug, Default)]
struct Trail {
    /// The canonical before the run (`None` too when it could not be read).
    before: Option<CanonicalRecord>,
    /// What the verify step established.
    verified: Option<verify::Verified>,
    /// What the prepare step established.
    ready: Option<prepare::Ready>,
    /// What the run step established.
    ran: Option<run::Ran>,
}

impl Trail {
    /// Takes the steps in order, stopping at the first that fails; returns how far they got and
    /// the promote step's value or why they stopped.
    fn walk(
        settings: &RunSettings,
        runner: &dyn Runner,
        state: &dyn StateStore,
    ) -> (Trail, Result<promote::Promoted, Stopped>) {
        let mut trail = Trail::default();
        let end = trail.take_steps(settings, runner, state);
        (trail, end)
    }

    /// Fills in each field with its step's value as the steps go; the run folder lives until the
    /// promote step is done, then goes (or is kept when asked).
    fn take_steps(
        &mut self,
        settings: &RunSettings,
        runner: &dyn Runner,
        state: &dyn StateStore,
    ) -> Result<promote::Promoted, Stopped> {
        let Trail {
            before,
            verified,
            ready,
            ran,
        } = self;
        *before = state
            .read_canonical(&settings.recipe.name)
            .map_err(|source| RunError::State {
                recipe: settings.recipe.name.to_string(),
                source,
            })?;
        let verified = verified.insert(verify::verify(settings)?);
        let folder = prepare::run_folder(settings)?;
        let mut in_folder = || {
            let ready = ready.insert(prepare::prepare(
                settings,
                runner,
                state,
                before.as_ref(),
                verified,
                folder.path(),
            )?);
            let ran = ran.insert(run::run(runner, ready));
            promote::promote(settings, runner, state, ready, ran)
        };
        let end = in_folder();
        if settings.keep_work_dir {
            let kept = folder.keep();
            tracing::info!(path = %kept.display(), "Kept the run folder.");
        }
        end
    }
}

/// Runs one recipe at one tag (or ref) through `runner`, then the gate, then the promote. Always
/// writes the report (when `settings.report` is set), also when the run stops with an error.
pub fn run_tag_mode(settings: &RunSettings, runner: &dyn Runner) -> Result<RunOutcome, RunError> {
    let started = Instant::now();
    let started_at = state::rfc3339(state::now());
    let store = settings.store();
    let state = store.as_ref();
    let (trail, end) = Trail::walk(settings, runner, state);
    let seconds = started.elapsed().as_secs_f64();
    let report = assemble::report(settings, runner.name(), &trail, &end, started_at, seconds);
    if let Err(stopped) = &end {
        if stopped.error.is_verification() {
            let entry = history_entry(
                settings,
                report.commit.as_ref(),
                &report.gate,
                report.canonical_before.as_ref().map(|c| c.version.clone()),
            );
            if let Err(he) = record_only(state, settings, entry) {
                tracing::error!(recipe = %settings.recipe.name, error = %he, "Cannot record the refusal in the history.");
            }
        }
    }
    canon_shared::outln!("{}", report.summary());
    if let Some(path) = &settings.report {
        match report.write(path) {
            Ok(()) => tracing::info!(path = %path.display(), "Wrote the report."),
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "Cannot write the report.")
            }
        }
    }
    match end {
        Ok(_) => Ok(RunOutcome { report }),
        Err(stopped) => Err(*stopped.error),
    }
}

/// Returns what is tested as the log says it: `tag X` or `ref Y`.
fn tested_text(tested: &TestedRef) -> String {
    match tested {
        TestedRef::Tag(t) => format!("tag {t}"),
        TestedRef::Ref(r) => format!("ref {r}"),
    }
}

/// Returns the history line of a decision about this run.
fn history_entry(
    settings: &RunSettings,
    tested_commit: Option<&CommitId>,
    gate: &GateReport,
    canonical_before: Option<String>,
) -> HistoryEntry {
    HistoryEntry {
        at: state::now(),
        recipe: settings.recipe.name.clone(),
        decision: gate.decision.as_str().to_string(),
        version: Some(match &settings.tested {
            TestedRef::Tag(t) => t.clone(),
            TestedRef::Ref(r) => format!("ref {r}"),
        }),
        tested_commit: tested_commit.cloned(),
        reasons: gate.reasons.clone(),
        trigger: Some(settings.trigger.clone()),
        build: Some(settings.build_ref()),
        canonical_before,
    }
}

/// Records `entry` in the history alone, under the recipe's lock: a refusal taken before any
/// gate (a tag that did not verify).
fn record_only(
    state: &dyn StateStore,
    settings: &RunSettings,
    entry: HistoryEntry,
) -> Result<(), StateError> {
    let lock = state.lock(&settings.recipe.name, settings.lock_wait)?;
    state.commit(&lock, &mut |_| {
        Ok(Change {
            canonical: None,
            history: vec![entry.clone()],
        })
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::{Mode, RunnerKind};
    use std::path::Path;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        crate::settings::testing::parse(pairs).unwrap()
    }

    #[test]
    fn a_cron_build_selects_the_sweep_with_its_settings() {
        let s = settings(&[
            ("DRONE_BUILD_EVENT", "cron"),
            ("PLUGIN_CONFIG", "enrollment.yml"),
            ("PLUGIN_STATE_DIR", "/var/lib/canon"),
            ("PLUGIN_JOBS", "3"),
            ("PLUGIN_INLINE", "true"),
        ]);
        assert_eq!(s.mode, Mode::Sweep);
        assert_eq!(s.jobs, Some(3));
        assert!(s.inline);
        assert_eq!(s.state_dir, Path::new("/var/lib/canon"));
    }

    #[test]
    fn the_command_runner_is_built_from_the_settings() {
        let mut s = settings(&[
            ("PLUGIN_MODE", "tag"),
            ("PLUGIN_CONFIG", "e"),
            ("PLUGIN_RECIPE", "a"),
            ("PLUGIN_TAG", "1.0.0+1"),
            ("PLUGIN_COMMAND", "true"),
        ]);
        assert_eq!(crate::runners::from_settings(&s).unwrap().name(), "command");
        s.runner = RunnerKind::Docker;
        assert_eq!(crate::runners::from_settings(&s).unwrap().name(), "docker");
    }

    #[test]
    fn the_log_names_a_tag_and_a_ref_as_the_report_does() {
        assert_eq!(
            tested_text(&TestedRef::Tag("1.0.0+1".into())),
            "tag 1.0.0+1"
        );
        assert_eq!(tested_text(&TestedRef::Ref("main".into())), "ref main");
    }
}
