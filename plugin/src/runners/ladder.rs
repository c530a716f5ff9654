//! The one stage ladder of the built-in runners: lint, install, upgrade, backup, restore, custom,
//! in that order, with the skip rules, the stage bookkeeping (timing, [`StageResult`], a log line
//! when a stage starts, passes, fails or is skipped, and with a failure the stage's
//! [`transcript`]), the custom stage and the teardown that always follows.
//!
//! A runner fills in only its [`Steps`] (how it deploys, upgrades, backs up, restores and tears
//! down); the ladder decides what runs, in which order, and what a failure means for the rest.
//! Another ladder shape (say, reattaching warm volumes instead of a fresh install) is another
//! [`Steps`], not another ladder.
//!
//! The rules:
//! - lint checks the checkout under test as `abra recipe lint` would ([`crate::recipe::lint`]),
//!   cold and warm runs alike, without the rules the enrollment's `lint_skip` turns off; an
//!   error-level finding fails it and every later stage is skipped, since nothing abra would
//!   refuse is worth deploying. Warnings and the skipped rules are its notes.
//! - install deploys the canonical's release when there is one to upgrade from (a canonical and
//!   a checkout of its commit), else the release under test; when it fails, every later stage is
//!   skipped. A warm run ([`RunContext::warm`]) reattaches a copy of the canonical's data instead:
//!   install is skipped with the reason "reattached the warm canonical ...", or fails when the
//!   copy does.
//! - upgrade deploys the release under test over the running one; it is skipped without a base,
//!   and when it fails, every later stage is skipped.
//! - backup and restore run only when the recipe declares backups; restore is skipped when the
//!   backup failed. With the enrollment's `data_check`, the backup stage runs its `seed` in the
//!   app's container before the backup and its `change` after it, and the restore stage runs its
//!   `verify` after the restore and the redeploy ([`Steps::data_check`]); a failing command fails
//!   its stage. A passed restore says what it proved ([`RestoreProof`]): the app's own data with
//!   a `data_check`, else the volumes' files only.
//! - custom runs the enrollment's `test_command` against the running stack; it is skipped when
//!   there is none, and when the stack is not running (the steps say so, e.g. after a failed
//!   backup or restore that left it stopped). It may take the deploy timeout, by the one rule of
//!   [`crate::recipe::plan::deploy_timeout`] (the enrollment, the recipe's label, the default).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use canon_shared::gate::{StageResult, StageStatus};
use canon_shared::recipe::Stage;

pub use super::warm::RestoreProof;
use super::warm::{RunOutput, WarmBase, WarmCopy, WarmReport};
use super::{RunContext, RunnerError};
use crate::process::exec::{self, Cmd};
use crate::process::transcript;
use crate::recipe::{lint, plan};

/// One release the ladder deploys: its version and a checkout of its commit.
#[derive(Debug, Clone, Copy)]
pub struct Release<'a> {
    /// The tag (or ref) name.
    pub version: &'a str,
    /// A checkout of the release's commit.
    pub checkout: &'a Path,
}

/// What the ladder's stages run against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The stack name (`STACK_NAME` of the custom stage, the teardown's log field).
    pub stack: String,
    /// The app's domain (`DOMAIN` of the custom stage).
    pub domain: String,
}

/// What one runner does at each rung; the ladder decides when each runs.
pub trait Steps {
    /// Returns the runner's name (`CANON_RUNNER` of the custom stage).
    fn runner(&self) -> &'static str;

    /// Returns the stack and domain the stages run against.
    fn target(&self) -> Target;

    /// Brings `release` up on fresh data and waits until it is healthy.
    fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError>;

    /// In place of an install: copies the warm canonical's data (`warm`) into the run's own
    /// volumes, to run with the app env `base` (the canonical's release) was installed with; the
    /// canonical's own volumes are only read. Returns what it copied. Nothing is deployed yet:
    /// [`Steps::upgrade`] deploys the release under test over the copies.
    fn reattach(
        &mut self,
        warm: &WarmBase,
        base: Release<'_>,
    ) -> Result<Vec<WarmCopy>, RunnerError> {
        let _ = (warm, base);
        Err(RunnerError::Other(format!(
            "the {} runner cannot reattach warm data",
            self.runner()
        )))
    }

    /// Deploys `release` over the running one, on the same data, and waits until it is healthy.
    fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError>;

    /// Returns true when the deployed recipe declares backups (backupbot labels).
    fn declares_backups(&self) -> bool;

    /// Takes a backup of the deployed stack's data and checks it holds what was there.
    fn backup(&mut self) -> Result<(), RunnerError>;

    /// Restores the backup [`Steps::backup`] took, checks it, and leaves `release` running.
    fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError>;

    /// Runs `command`, the step `step` (`seed`, `change` or `verify`) of the enrollment's
    /// `data_check`, in the app service's running container with the recipe's env (never canon's
    /// own); a failure names the step and shows the tail of the command's output. A runner that
    /// cannot reach the app's container fails the step, saying so.
    fn data_check(&mut self, step: &str, command: &str) -> Result<(), RunnerError> {
        let _ = command;
        Err(RunnerError::Other(format!(
            "data_check.{step} cannot run: the {} runner does not run commands in the app's container",
            self.runner()
        )))
    }

    /// Returns true when the stack is up for the custom stage.
    fn running(&self) -> bool;

    /// Removes everything the run created; returns what could not be removed.
    fn teardown(&mut self) -> Vec<String>;
}

/// The results so far, and the one place a stage is timed, recorded and logged.
struct Rungs {
    results: Vec<StageResult>,
    /// What the restore proved, once it passed.
    restore_proof: Option<RestoreProof>,
}

impl Rungs {
    /// Runs one stage on `release` (when it deploys one), records it, and returns true when it
    /// passed. A failure is logged with the stage's [`transcript`].
    fn run(
        &mut self,
        name: Stage,
        release: Option<&str>,
        step: impl FnOnce() -> Result<(), RunnerError>,
    ) -> bool {
        match release {
            Some(version) => tracing::info!(release = version, "Stage {name} started."),
            None => tracing::info!("Stage {name} started."),
        }
        transcript::start();
        let started = Instant::now();
        let outcome = step();
        let seconds = started.elapsed().as_secs_f64();
        let passed = outcome.is_ok();
        self.results.push(match outcome {
            Ok(()) => {
                tracing::info!("Stage {name} passed in {seconds:.1} s.");
                StageResult {
                    name,
                    status: StageStatus::Passed,
                    reason: None,
                    seconds,
                    notes: Vec::new(),
                    serving: None,
                }
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!("Stage {name} failed after {seconds:.1} s: {reason}");
                if let Some(text) = failure_transcript(name, &transcript::take()) {
                    tracing::warn!("{text}");
                }
                StageResult {
                    name,
                    status: StageStatus::Failed,
                    reason: Some(reason),
                    seconds,
                    notes: Vec::new(),
                    serving: None,
                }
            }
        });
        passed
    }

    /// Reattaches the warm canonical's data in place of the install (see [`Steps::reattach`]):
    /// records install as skipped with the reattach as its reason, or as failed. Returns what
    /// was copied, or `None` when the copy failed.
    fn reattach<S: Steps + ?Sized>(
        &mut self,
        steps: &mut S,
        warm: &WarmBase,
        base: Release<'_>,
    ) -> Option<WarmReport> {
        let name = Stage::Install;
        tracing::info!(canonical = base.version, volumes = ?warm.volumes, "Stage {name}: reattaching the warm canonical's data instead.");
        transcript::start();
        let started = Instant::now();
        let outcome = steps.reattach(warm, base);
        let seconds = started.elapsed().as_secs_f64();
        match outcome {
            Ok(copies) => {
                let reason = warm.reattached();
                let bytes: u64 = copies.iter().map(|c| c.bytes).sum();
                tracing::info!("Stage {name} skipped: {reason}; copied {} volumes ({bytes} bytes) in {seconds:.1} s.", copies.len());
                self.results.push(StageResult {
                    name,
                    status: StageStatus::Skipped,
                    reason: Some(reason),
                    seconds,
                    notes: vec![format!(
                        "copied {} warm volumes, {bytes} bytes",
                        copies.len()
                    )],
                    serving: None,
                });
                Some(WarmReport::new(warm, copies))
            }
            Err(e) => {
                let reason = format!(
                    "could not reattach the warm canonical {}: {e}",
                    warm.canonical.version
                );
                tracing::warn!("Stage {name} failed after {seconds:.1} s: {reason}");
                if let Some(text) = failure_transcript(name, &transcript::take()) {
                    tracing::warn!("{text}");
                }
                self.results.push(StageResult {
                    name,
                    status: StageStatus::Failed,
                    reason: Some(reason),
                    seconds,
                    notes: Vec::new(),
                    serving: None,
                });
                None
            }
        }
    }

    /// Lints the checkout under test and records the lint stage; returns true when it passed.
    fn lint(&mut self, ctx: &RunContext) -> bool {
        let name = Stage::Lint;
        tracing::info!("Stage {name} started.");
        let started = Instant::now();
        let report = lint::lint(
            &ctx.checkout,
            ctx.recipe.name.as_str(),
            &ctx.recipe.lint_skip,
        );
        let seconds = started.elapsed().as_secs_f64();
        let mut notes: Vec<String> = report.warnings().map(|f| f.to_string()).collect();
        notes.extend(report.skipped_note());
        let errors: Vec<String> = report.errors().map(|f| f.to_string()).collect();
        let passed = errors.is_empty();
        if passed {
            tracing::info!("Stage {name} passed in {seconds:.1} s.");
        } else {
            tracing::warn!("Stage {name} failed: {}", errors.join("; "));
        }
        self.results.push(StageResult {
            name,
            status: if passed {
                StageStatus::Passed
            } else {
                StageStatus::Failed
            },
            reason: (!passed).then(|| errors.join("; ")),
            seconds,
            notes,
            serving: None,
        });
        passed
    }

    /// Records `names` as skipped for `reason`.
    fn skip(&mut self, names: &[Stage], reason: &str) {
        for &name in names {
            tracing::info!("Stage {name} skipped: {reason}.");
            self.results.push(StageResult {
                name,
                status: StageStatus::Skipped,
                reason: Some(reason.to_string()),
                seconds: 0.0,
                notes: Vec::new(),
                serving: None,
            });
        }
    }
}

/// Returns what a failed stage prints after its reason: the last commands of the stage and
/// their output, one indented line each; `None` when the stage ran none.
fn failure_transcript(name: Stage, lines: &[String]) -> Option<String> {
    if lines.is_empty() {
        return None;
    }
    let mut text = format!("The last commands of stage {name} and their output:");
    for line in lines {
        text.push_str("\n    ");
        text.push_str(line);
    }
    Some(text)
}

/// Runs the ladder over `steps`, then their teardown (always: also after a failed stage, and on
/// a panic, while the process lives). Returns one result per stage, in ladder order, and what a
/// warm run copied. What the teardown could not remove is logged; the stage results stand and
/// the sweep removes the rest.
pub fn run<S: Steps + ?Sized>(ctx: &RunContext, steps: &mut S) -> RunOutput {
    let mut guard = TeardownGuard { steps, done: false };
    let results = climb(ctx, &mut *guard.steps);
    guard.finish();
    results
}

/// Tears the steps down when dropped, unless [`TeardownGuard::finish`] already did.
struct TeardownGuard<'a, S: Steps + ?Sized> {
    steps: &'a mut S,
    done: bool,
}

impl<S: Steps + ?Sized> TeardownGuard<'_, S> {
    fn finish(&mut self) {
        self.done = true;
        let stack = self.steps.target().stack;
        let problems = self.steps.teardown();
        if problems.is_empty() {
            tracing::info!(%stack, "teardown complete");
        } else {
            tracing::error!(%stack, ?problems, "teardown left objects behind");
        }
    }
}

impl<S: Steps + ?Sized> Drop for TeardownGuard<'_, S> {
    fn drop(&mut self) {
        // Also on a panic: a run never leaves its stack behind if the process lives.
        if !self.done {
            self.finish();
        }
    }
}

/// Climbs the ladder without the teardown.
fn climb<S: Steps + ?Sized>(ctx: &RunContext, steps: &mut S) -> RunOutput {
    let mut rungs = Rungs {
        results: Vec::with_capacity(6),
        restore_proof: None,
    };
    if !rungs.lint(ctx) {
        rungs.skip(
            &[
                Stage::Install,
                Stage::Upgrade,
                Stage::Backup,
                Stage::Restore,
                Stage::Custom,
            ],
            "lint failed",
        );
        return RunOutput {
            stages: rungs.results,
            warm: None,
            restore_proof: None,
        };
    }
    let tested = Release {
        version: ctx.tested_name(),
        checkout: &ctx.checkout,
    };
    let version;
    let base = match (&ctx.canonical, &ctx.base_checkout) {
        (Some(canonical), Some(checkout)) => {
            version = canonical.version.to_string();
            Some(Release {
                version: &version,
                checkout,
            })
        }
        _ => None,
    };
    let mut warm = None;
    let installed = match (&ctx.warm, base) {
        (Some(base_data), Some(base)) => {
            warm = rungs.reattach(steps, base_data, base);
            warm.is_some()
        }
        _ => rungs.run(Stage::Install, Some(base.unwrap_or(tested).version), || {
            steps.install(base.unwrap_or(tested))
        }),
    };
    let done = |rungs: Rungs, warm| RunOutput {
        stages: rungs.results,
        warm,
        restore_proof: rungs.restore_proof,
    };
    if !installed {
        let why = if ctx.warm.is_some() && base.is_some() {
            "the warm canonical could not be reattached"
        } else {
            "install failed"
        };
        rungs.skip(
            &[Stage::Upgrade, Stage::Backup, Stage::Restore, Stage::Custom],
            why,
        );
        return done(rungs, warm);
    }
    if base.is_some() {
        if !rungs.run(Stage::Upgrade, Some(tested.version), || {
            steps.upgrade(tested)
        }) {
            rungs.skip(
                &[Stage::Backup, Stage::Restore, Stage::Custom],
                "upgrade failed",
            );
            return done(rungs, warm);
        }
    } else if ctx.canonical.is_some() {
        rungs.skip(&[Stage::Upgrade], "no checkout of the canonical's commit");
    } else {
        rungs.skip(&[Stage::Upgrade], "no canonical yet");
    }
    let mut backup_or_restore_failed = false;
    if steps.declares_backups() {
        let data_check = ctx.recipe.data_check.as_ref();
        let backed_up = rungs.run(Stage::Backup, None, || {
            if let Some(check) = data_check {
                steps.data_check("seed", &check.seed)?;
            }
            steps.backup()?;
            match data_check {
                Some(check) => steps.data_check("change", &check.change),
                None => Ok(()),
            }
        });
        if backed_up {
            let restored = rungs.run(Stage::Restore, Some(tested.version), || {
                steps.restore(tested)?;
                match data_check {
                    Some(check) => steps.data_check("verify", &check.verify),
                    None => Ok(()),
                }
            });
            if restored {
                let proof = match data_check {
                    Some(_) => RestoreProof::AppData,
                    None => RestoreProof::Files,
                };
                if let Some(r) = rungs.results.last_mut() {
                    r.notes.push(proof.note().to_string());
                }
                rungs.restore_proof = Some(proof);
            }
            backup_or_restore_failed = !restored;
        } else {
            backup_or_restore_failed = true;
            rungs.skip(&[Stage::Restore], "backup failed");
        }
    } else {
        rungs.skip(
            &[Stage::Backup, Stage::Restore],
            "the recipe declares no backups (no backupbot.backup=true label)",
        );
    }
    if ctx.recipe.test_command.is_none() {
        rungs.skip(&[Stage::Custom], "the enrollment names no test_command");
    } else if !steps.running() {
        let why = if backup_or_restore_failed {
            "the stack is not running after a failed backup or restore"
        } else {
            "the stack is not running"
        };
        rungs.skip(&[Stage::Custom], why);
    } else {
        let target = steps.target();
        let c = custom_command(ctx, &target, steps.runner());
        let mut used = None;
        rungs.run(Stage::Custom, None, || {
            let timeout = plan::deploy_timeout(
                &ctx.checkout,
                &target.stack,
                &target.domain,
                ctx.recipe.deploy_timeout_secs,
            )
            .map_err(|e| RunnerError::Other(e.to_string()))?;
            used = Some(timeout);
            run_custom(&c, timeout.duration)
        });
        if let (Some(timeout), Some(r)) = (used, rungs.results.last_mut()) {
            r.notes.push(timeout.to_string());
        }
    }
    done(rungs, warm)
}

/// Returns the custom stage's command: the enrollment's `test_command` as `sh -c` in the
/// checkout, with the run's env plus `DOMAIN`, `STACK_NAME` and the `CANON_*` values of the run.
pub fn custom_command(ctx: &RunContext, target: &Target, runner: &str) -> Cmd {
    let mut c = Cmd::new(
        "sh",
        ["-c", ctx.recipe.test_command.as_deref().unwrap_or("true")],
    );
    let mut env: BTreeMap<String, String> = ctx.env.clone();
    env.insert("DOMAIN".into(), target.domain.clone());
    env.insert("STACK_NAME".into(), target.stack.clone());
    env.insert("CANON_RECIPE".into(), ctx.recipe.name.as_str().into());
    env.insert("CANON_TAG".into(), ctx.tested_name().into());
    env.insert("CANON_COMMIT".into(), ctx.commit.to_string());
    env.insert("CANON_BUILD".into(), ctx.build.clone());
    env.insert("CANON_RUNNER".into(), runner.into());
    env.insert("CANON_RUN_DIR".into(), ctx.run_dir.display().to_string());
    c.env = env.into_iter().collect();
    c.cwd = Some(ctx.checkout.clone());
    c
}

/// Runs the custom stage's command; its output goes to the log.
fn run_custom(c: &Cmd, timeout: Duration) -> Result<(), RunnerError> {
    let out = exec::run(c, timeout)?;
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        tracing::info!(stage = "custom", "{line}");
    }
    if out.success() {
        Ok(())
    } else {
        Err(exec::exit_error(c, &out).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::gate::TestedRef;
    use canon_shared::recipe::{Recipe, RecipeName, RepoLocation};
    use canon_shared::state::CanonicalRecord;
    use std::path::PathBuf;

    /// Steps that record what the ladder asked for and fail where told.
    #[derive(Default)]
    struct Script {
        calls: Vec<String>,
        fail: Vec<&'static str>,
        backups: bool,
        stops_on_backup: bool,
        running: bool,
        /// A shell command a failing step runs through the executor (its error is the step's).
        shell: Option<&'static str>,
    }

    impl Script {
        fn step(&mut self, call: String, name: &'static str) -> Result<(), RunnerError> {
            self.calls.push(call);
            if let (Some(script), true) = (self.shell, self.fail.contains(&name)) {
                exec::run_ok(&Cmd::new("sh", ["-c", script]), Duration::from_secs(10))?;
            }
            if self.fail.contains(&name) {
                Err(RunnerError::Other(format!("{name} broke")))
            } else {
                Ok(())
            }
        }
    }

    impl Steps for Script {
        fn runner(&self) -> &'static str {
            "script"
        }
        fn target(&self) -> Target {
            Target {
                stack: "cold-app-1-1".into(),
                domain: "cold-app-1-1.test".into(),
            }
        }
        fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            self.running = true;
            self.step(format!("install {}", release.version), "install")
        }
        fn reattach(
            &mut self,
            warm: &WarmBase,
            base: Release<'_>,
        ) -> Result<Vec<WarmCopy>, RunnerError> {
            self.step(format!("reattach {}", base.version), "reattach")?;
            Ok(warm
                .volumes
                .iter()
                .map(|v| WarmCopy {
                    from: v.clone(),
                    to: v.replace("warm-app", "cold-app-1-1"),
                    bytes: 10,
                })
                .collect())
        }
        fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            self.running = true;
            self.step(format!("upgrade {}", release.version), "upgrade")
        }
        fn declares_backups(&self) -> bool {
            self.backups
        }
        fn backup(&mut self) -> Result<(), RunnerError> {
            if self.stops_on_backup {
                self.running = false;
            }
            self.step("backup".into(), "backup")
        }
        fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            let r = self.step(format!("restore {}", release.version), "restore");
            if self.stops_on_backup {
                self.running = r.is_ok();
            }
            r
        }
        fn data_check(&mut self, step: &str, command: &str) -> Result<(), RunnerError> {
            self.calls.push(format!("{step}: {command}"));
            if self.fail.contains(&step) {
                Err(RunnerError::Other(format!("data_check.{step} broke")))
            } else {
                Ok(())
            }
        }
        fn running(&self) -> bool {
            self.running
        }
        fn teardown(&mut self) -> Vec<String> {
            self.calls.push("teardown".into());
            Vec::new()
        }
    }

    fn ctx(canonical: bool, base_checkout: bool, test_command: Option<&str>) -> RunContext {
        let loc = |u: &str| RepoLocation {
            url: u.into(),
            full_name: None,
            forge: None,
        };
        let name = RecipeName::parse("app").unwrap();
        let dir = std::env::temp_dir();
        let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/recipe");
        RunContext {
            recipe: Recipe {
                name: name.clone(),
                upstream: loc("/u"),
                mirror: loc("/m"),
                branch: "main".into(),
                required_stages: None,
                test_command: test_command.map(String::from),
                deploy_timeout_secs: Some(10),
                health_path: None,
                stability_window_secs: None,
                host_access: Vec::new(),
                serving: Default::default(),
                secrets: Default::default(),
                drone_repo: None,
                lint_skip: Vec::new(),
                data_check: None,
            },
            tested: TestedRef::Tag("1.1.0+1".into()),
            commit: "c".repeat(40).parse().unwrap(),
            checkout,
            run_dir: dir,
            canonical: canonical.then(|| CanonicalRecord {
                recipe: name,
                version: "1.0.0+1".parse().unwrap(),
                commit: "b".repeat(40).parse().expect("a full id"),
                promoted_at: time::OffsetDateTime::UNIX_EPOCH,
                build: None,
                pinned: None,
                host: None,
            }),
            base_checkout: base_checkout.then(|| PathBuf::from("/base")),
            build: "1".into(),
            quick: false,
            warm: None,
            env: BTreeMap::new(),
        }
    }

    /// Runs the ladder and returns what followed its lint stage, which must have passed (the
    /// fixture recipe is linted): the tests below are about the deploying stages.
    fn run<S: Steps + ?Sized>(ctx: &RunContext, steps: &mut S) -> RunOutput {
        let mut out = super::run(ctx, steps);
        let lint = out.stages.remove(0);
        assert_eq!((lint.name, lint.status), (Stage::Lint, Passed), "{lint:?}");
        out
    }

    #[test]
    fn lint_comes_first_and_its_failure_skips_every_deploying_stage() {
        let recipe = tempfile::tempdir().unwrap();
        std::fs::write(
            recipe.path().join("compose.yml"),
            "services:\n  web: {image: \"nginx:1\"}\n",
        )
        .unwrap();
        let mut c = ctx(true, true, Some("true"));
        c.checkout = recipe.path().to_path_buf();
        let mut s = Script::default();
        let results = super::run(&c, &mut s).stages;
        assert_eq!(s.calls, ["teardown"], "nothing was deployed");
        assert_eq!(results[0].name, Stage::Lint);
        assert_eq!(results[0].status, Failed);
        let reason = results[0].reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("error [env-sample]") && reason.contains("error [app-service]"),
            "{reason}"
        );
        assert!(results[0]
            .notes
            .iter()
            .any(|n| n.starts_with("warning [healthcheck]")));
        assert_eq!(results.len(), 6);
        for r in &results[1..] {
            assert_eq!(
                (r.status, r.reason.as_deref()),
                (Skipped, Some("lint failed"))
            );
        }
        let mut w = warm_ctx();
        w.checkout = recipe.path().to_path_buf();
        let out = super::run(&w, &mut Script::default());
        assert_eq!(out.stages[0].status, Failed, "a warm run is linted too");
        assert!(out.warm.is_none(), "nothing was copied");
    }

    #[test]
    fn the_lint_stage_notes_the_rules_the_enrollment_turned_off() {
        let mut c = ctx(false, false, None);
        c.recipe.lint_skip = vec!["healthcheck".into()];
        let results = super::run(&c, &mut Script::default()).stages;
        assert_eq!(results[0].status, Passed);
        assert_eq!(
            results[0].notes,
            vec!["lint rules turned off by the enrollment: healthcheck".to_string()]
        );
    }

    fn table(results: &[StageResult]) -> Vec<(Stage, StageStatus, Option<&str>)> {
        results
            .iter()
            .map(|r| (r.name, r.status, r.reason.as_deref()))
            .collect()
    }

    use StageStatus::{Failed, Passed, Skipped};

    #[test]
    fn with_a_canonical_the_ladder_installs_it_then_upgrades_to_the_tag() {
        let mut s = Script {
            backups: true,
            ..Script::default()
        };
        let results = run(&ctx(true, true, Some("true")), &mut s).stages;
        assert_eq!(
            s.calls,
            [
                "install 1.0.0+1",
                "upgrade 1.1.0+1",
                "backup",
                "restore 1.1.0+1",
                "teardown"
            ]
        );
        assert_eq!(
            table(&results),
            [
                (Stage::Install, Passed, None),
                (Stage::Upgrade, Passed, None),
                (Stage::Backup, Passed, None),
                (Stage::Restore, Passed, None),
                (Stage::Custom, Passed, None),
            ]
        );
    }

    #[test]
    fn without_a_base_the_tag_is_installed_and_the_upgrade_says_why_it_was_skipped() {
        for (canonical, why) in [
            (false, "no canonical yet"),
            (true, "no checkout of the canonical's commit"),
        ] {
            let mut s = Script::default();
            let results = run(&ctx(canonical, false, None), &mut s).stages;
            assert_eq!(s.calls, ["install 1.1.0+1", "teardown"]);
            let no_backups = "the recipe declares no backups (no backupbot.backup=true label)";
            assert_eq!(
                table(&results),
                [
                    (Stage::Install, Passed, None),
                    (Stage::Upgrade, Skipped, Some(why)),
                    (Stage::Backup, Skipped, Some(no_backups)),
                    (Stage::Restore, Skipped, Some(no_backups)),
                    (
                        Stage::Custom,
                        Skipped,
                        Some("the enrollment names no test_command")
                    ),
                ]
            );
        }
    }

    #[test]
    fn a_failed_install_or_upgrade_skips_every_later_stage_and_still_tears_down() {
        for (fail, ran, at) in [
            ("install", vec!["install 1.0.0+1"], 1),
            ("upgrade", vec!["install 1.0.0+1", "upgrade 1.1.0+1"], 2),
        ] {
            let mut s = Script {
                fail: vec![fail],
                backups: true,
                ..Script::default()
            };
            let results = run(&ctx(true, true, Some("true")), &mut s).stages;
            let mut want = ran.clone();
            want.push("teardown");
            assert_eq!(s.calls, want);
            assert_eq!(results.len(), 5);
            assert_eq!(results[at - 1].status, Failed);
            assert_eq!(
                results[at - 1].reason.as_deref(),
                Some(format!("{fail} broke").as_str())
            );
            let why = format!("{fail} failed");
            for r in &results[at..] {
                assert_eq!(
                    (r.status, r.reason.as_deref()),
                    (Skipped, Some(why.as_str()))
                );
            }
        }
    }

    #[test]
    fn a_failed_backup_skips_the_restore() {
        let mut s = Script {
            fail: vec!["backup"],
            backups: true,
            ..Script::default()
        };
        let results = run(&ctx(false, false, Some("true")), &mut s).stages;
        assert_eq!(results[2].status, Failed);
        assert_eq!(
            (results[3].status, results[3].reason.as_deref()),
            (Skipped, Some("backup failed"))
        );
        assert_eq!(results[4].status, Passed, "the stack kept running");
    }

    fn data_checked() -> RunContext {
        let mut c = ctx(false, false, None);
        c.recipe.data_check = Some(canon_shared::recipe::DataCheck {
            seed: "add row".into(),
            change: "drop row".into(),
            verify: "row is back".into(),
        });
        c
    }

    #[test]
    fn a_data_check_seeds_before_the_backup_changes_after_it_and_verifies_after_the_restore() {
        let mut s = Script {
            backups: true,
            ..Script::default()
        };
        let out = run(&data_checked(), &mut s);
        assert_eq!(
            s.calls,
            [
                "install 1.1.0+1",
                "seed: add row",
                "backup",
                "change: drop row",
                "restore 1.1.0+1",
                "verify: row is back",
                "teardown"
            ]
        );
        assert_eq!(out.stages[3].status, Passed);
        assert_eq!(
            out.stages[3].notes,
            ["restore proven on the app's data: data_check.verify passed after the restore"]
        );
        assert_eq!(out.restore_proof, Some(RestoreProof::AppData));
    }

    #[test]
    fn without_a_data_check_a_passed_restore_says_it_was_proven_on_files_only() {
        let mut s = Script {
            backups: true,
            ..Script::default()
        };
        let out = run(&ctx(false, false, None), &mut s);
        assert_eq!(
            s.calls,
            ["install 1.1.0+1", "backup", "restore 1.1.0+1", "teardown"]
        );
        assert_eq!(out.stages[3].status, Passed);
        assert_eq!(
            out.stages[3].notes,
            ["restore proven at the file level only: the enrollment sets no data_check"]
        );
        assert_eq!(out.restore_proof, Some(RestoreProof::Files));
        let mut none = Script::default();
        assert_eq!(run(&data_checked(), &mut none).restore_proof, None);
        assert_eq!(
            none.calls,
            ["install 1.1.0+1", "teardown"],
            "no backups: no data_check step runs"
        );
    }

    #[test]
    fn a_failing_data_check_step_fails_its_stage_and_proves_nothing() {
        for (step, calls, failed, restore) in [
            (
                "seed",
                vec!["install 1.1.0+1", "seed: add row"],
                Stage::Backup,
                (Skipped, Some("backup failed")),
            ),
            (
                "change",
                vec![
                    "install 1.1.0+1",
                    "seed: add row",
                    "backup",
                    "change: drop row",
                ],
                Stage::Backup,
                (Skipped, Some("backup failed")),
            ),
            (
                "verify",
                vec![
                    "install 1.1.0+1",
                    "seed: add row",
                    "backup",
                    "change: drop row",
                    "restore 1.1.0+1",
                    "verify: row is back",
                ],
                Stage::Restore,
                (Failed, Some("data_check.verify broke")),
            ),
        ] {
            let mut s = Script {
                fail: vec![step],
                backups: true,
                ..Script::default()
            };
            let out = run(&data_checked(), &mut s);
            let mut want = calls.clone();
            want.push("teardown");
            assert_eq!(s.calls, want, "{step}");
            let r = out.stages.iter().find(|r| r.name == failed).unwrap();
            assert_eq!(r.status, Failed, "{step}");
            assert_eq!(
                r.reason.as_deref(),
                Some(format!("data_check.{step} broke").as_str())
            );
            assert_eq!(
                (out.stages[3].status, out.stages[3].reason.as_deref()),
                restore,
                "{step}"
            );
            assert!(out.stages[3].notes.is_empty(), "{step}");
            assert_eq!(out.restore_proof, None, "{step}");
        }
    }

    /// Steps that cannot run commands in the app's container: [`Script`]'s, with the default
    /// [`Steps::data_check`].
    struct NoAppExec(Script);

    impl Steps for NoAppExec {
        fn runner(&self) -> &'static str {
            "abra"
        }
        fn target(&self) -> Target {
            self.0.target()
        }
        fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            self.0.install(release)
        }
        fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            self.0.upgrade(release)
        }
        fn declares_backups(&self) -> bool {
            self.0.declares_backups()
        }
        fn backup(&mut self) -> Result<(), RunnerError> {
            self.0.backup()
        }
        fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
            self.0.restore(release)
        }
        fn running(&self) -> bool {
            self.0.running()
        }
        fn teardown(&mut self) -> Vec<String> {
            self.0.teardown()
        }
    }

    #[test]
    fn a_runner_that_cannot_reach_the_apps_container_fails_the_data_check_saying_so() {
        let mut s = NoAppExec(Script {
            backups: true,
            ..Script::default()
        });
        let out = run(&data_checked(), &mut s);
        assert_eq!(
            s.0.calls,
            ["install 1.1.0+1", "teardown"],
            "no backup was taken"
        );
        assert_eq!(
            (out.stages[2].status, out.stages[2].reason.as_deref()),
            (
                Failed,
                Some("data_check.seed cannot run: the abra runner does not run commands in the app's container")
            )
        );
        assert_eq!(out.restore_proof, None);
    }

    #[test]
    fn the_custom_stage_is_skipped_when_the_steps_left_the_stack_stopped() {
        let mut s = Script {
            fail: vec!["restore"],
            backups: true,
            stops_on_backup: true,
            ..Script::default()
        };
        let results = run(&ctx(false, false, Some("true")), &mut s).stages;
        assert_eq!(
            table(&results)[3..],
            [
                (Stage::Restore, Failed, Some("restore broke")),
                (
                    Stage::Custom,
                    Skipped,
                    Some("the stack is not running after a failed backup or restore")
                ),
            ]
        );
    }

    #[test]
    fn the_custom_stage_sees_the_target_and_the_run() {
        let c = custom_command(
            &ctx(false, false, Some("exit 0")),
            &Script::default().target(),
            "script",
        );
        assert_eq!((c.program.as_str(), c.argv()), ("sh", vec!["-c", "exit 0"]));
        assert_eq!(
            c.cwd.as_deref(),
            Some(ctx(false, false, None).checkout.as_path())
        );
        let env: BTreeMap<_, _> = c.env.iter().cloned().collect();
        assert_eq!(env["STACK_NAME"], "cold-app-1-1");
        assert_eq!(env["DOMAIN"], "cold-app-1-1.test");
        assert_eq!(env["CANON_TAG"], "1.1.0+1");
        assert_eq!(env["CANON_RUNNER"], "script");
    }

    fn warm_ctx() -> RunContext {
        let mut c = ctx(true, true, Some("true"));
        let canonical = c.canonical.clone().unwrap();
        c.warm = Some(WarmBase {
            canonical,
            volumes: vec!["warm-app_data".into(), "warm-app_db".into()],
            hold: Default::default(),
        });
        c
    }

    #[test]
    fn a_warm_run_reattaches_instead_of_installing_then_upgrades_the_head_over_the_copies() {
        let mut s = Script::default();
        let out = run(&warm_ctx(), &mut s);
        assert_eq!(
            s.calls,
            ["reattach 1.0.0+1", "upgrade 1.1.0+1", "teardown"],
            "no install, and the teardown still runs"
        );
        assert_eq!(
            table(&out.stages)[..2],
            [
                (
                    Stage::Install,
                    Skipped,
                    Some("reattached the warm canonical 1.0.0+1 (promoted 1970-01-01)")
                ),
                (Stage::Upgrade, Passed, None),
            ]
        );
        assert_eq!(
            out.stages[4].status, Passed,
            "the custom stage runs on the upgraded stack"
        );
        let warm = out.warm.expect("a warm run reports what it copied");
        assert_eq!(
            (warm.canonical.as_str(), warm.commit.len()),
            ("1.0.0+1", 40)
        );
        assert_eq!(warm.volumes[1].from, "warm-app_db");
        assert_eq!(warm.volumes[1].to, "cold-app-1-1_db");
    }

    #[test]
    fn a_failed_reattach_fails_install_and_skips_the_rest() {
        let mut s = Script {
            fail: vec!["reattach"],
            ..Default::default()
        };
        let out = run(&warm_ctx(), &mut s);
        assert_eq!(s.calls, ["reattach 1.0.0+1", "teardown"]);
        assert!(out.warm.is_none());
        assert_eq!(out.stages[0].status, Failed);
        let reason = out.stages[0].reason.as_deref().unwrap();
        assert!(
            reason.starts_with("could not reattach the warm canonical 1.0.0+1: reattach broke"),
            "{reason}"
        );
        for r in &out.stages[1..] {
            assert_eq!(r.status, Skipped);
            assert_eq!(
                r.reason.as_deref(),
                Some("the warm canonical could not be reattached")
            );
        }
    }

    #[test]
    fn a_failing_custom_command_fails_the_stage_with_its_stderr() {
        let mut s = Script::default();
        let results = run(&ctx(false, false, Some("echo broken >&2; exit 2")), &mut s).stages;
        assert_eq!(results[4].status, Failed);
        let reason = results[4].reason.as_deref().unwrap_or_default();
        assert!(reason.contains("exit code 2: broken"), "{reason}");
    }

    #[test]
    fn without_an_enrollment_timeout_the_custom_stage_waits_by_the_recipes_label() {
        let dir = tempfile::tempdir().unwrap();
        let compose = |timeout: &str| {
            format!("services:\n  app:\n    image: x:1\n    healthcheck: {{test: [\"CMD\", \"true\"]}}\n    deploy: {{labels: [\"traefik.enable=true\", \"coop-cloud.${{STACK_NAME}}.timeout={timeout}\"]}}\n")
        };
        std::fs::write(dir.path().join(".env.sample"), "TYPE=app\n").unwrap();
        std::fs::write(dir.path().join("compose.yml"), compose("soon")).unwrap();
        let mut c = ctx(false, false, Some("true"));
        c.recipe.deploy_timeout_secs = None;
        c.checkout = dir.path().to_path_buf();
        let results = run(&c, &mut Script::default()).stages;
        assert_eq!(results[4].status, Failed);
        let reason = results[4].reason.as_deref().unwrap_or_default();
        assert!(reason.contains(".timeout=\"soon\""), "{reason}");
        std::fs::write(dir.path().join("compose.yml"), compose("${TIMEOUT:-30}")).unwrap();
        let results = run(&c, &mut Script::default()).stages;
        assert_eq!(results[4].status, Passed, "{:?}", results[4].reason);
        assert_eq!(
            results[4].notes,
            vec!["deploy timeout 30s (source: label)".to_string()],
            "the custom stage says which timeout it waited by"
        );
    }

    /// Log lines written by the subscriber of one test.
    #[derive(Clone, Default)]
    struct Logs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` with INFO logs going to the returned text (no colours, as in a step log).
    fn logged<T>(f: impl FnOnce() -> T) -> (T, String) {
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let out = tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
        (out, text)
    }

    #[test]
    fn each_stage_says_when_it_starts_and_how_it_ended() {
        let mut s = Script::default();
        let (_, text) = logged(|| run(&ctx(true, true, None), &mut s).stages);
        for want in [
            "Stage install started. release=\"1.0.0+1\"",
            "Stage install passed in 0.0 s.",
            "Stage upgrade started. release=\"1.1.0+1\"",
            "Stage backup skipped: the recipe declares no backups",
            "Stage custom skipped: the enrollment names no test_command.",
        ] {
            assert!(text.contains(want), "missing {want}:\n{text}");
        }
    }

    #[test]
    fn a_failed_stage_prints_its_last_commands_and_their_output() {
        let mut s = Script {
            fail: vec!["install"],
            shell: Some(
                "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); done; echo broken >&2; exit 4",
            ),
            ..Script::default()
        };
        crate::process::transcript::record(vec!["+ a command of an earlier stage".to_string()]);
        let (results, text) = logged(|| run(&ctx(false, false, None), &mut s).stages);
        assert_eq!(results[0].status, Failed);
        assert!(text.contains("Stage install failed after"), "{text}");
        assert!(
            text.contains("The last commands of stage install and their output:"),
            "{text}"
        );
        let shown: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("    "))
            .map(str::trim)
            .collect();
        assert_eq!(shown.len(), 12, "{text}");
        assert!(shown[0].starts_with("+ sh -c 'i=0;"), "{text}");
        assert_eq!(shown[1], "| ... (22 earlier lines)");
        assert_eq!(shown[2], "| line 22");
        assert_eq!(shown[9], "| line 29");
        assert_eq!(shown[10..], ["| broken", "(exit code 4)"]);
        assert!(!text.contains("earlier stage"), "{text}");
        assert_eq!(
            text.matches("+ sh -c").count(),
            1,
            "at INFO a command shows only with the failure:\n{text}"
        );
    }
}
