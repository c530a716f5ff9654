//! The built-in `docker` runner: a real cold deploy of a recipe on the machine's Docker engine,
//! the way Co-op Cloud deploys (a single-node swarm and `docker stack deploy`), through the one
//! stage ladder ([`crate::runners::ladder`]), with teardown always; and the promote step that
//! keeps the data-warm canonical `warm-<recipe>`.
//!
//! # Layout
//! - this file: the runner, its [`ladder`] steps and the [`Runner`] entry points;
//!   [`warm_volume_sizes`], the sizes of the warm canonical's volumes.
//! - [`app_service`]: what `abra app deploy` adds to the `app` service (recipe, chaos and
//!   version labels; the exposed app env).
//! - `compose_override`: canon's compose override: the run's labels on everything the stack
//!   declares, abra's additions to the `app` service, the warm canonical's secrets.
//! - `stack`: one stack: deploy (from its deploy plan, with the app env it was installed with);
//!   stop and teardown by the engine ([`crate::engine::stacks`]).
//! - `upgrade`: the upgrade on the installed env, and the secrets a new version needs.
//! - `probe`: when a stack is healthy (replicas, spec, version label, the stability window,
//!   HTTP health path), and why not (each failing task's state and error).
//! - `serving`: the serving check after each healthy deploy: every route the traefik labels
//!   declare answers a request with its host, from inside the recipe's `proxy` network.
//! - `backup`: the backup and restore stages as backupbot does them (hooks in the running
//!   containers, whole or narrowed volumes, snapshots proven by markers), and the enrollment's
//!   `data_check` commands in the app's container.
//! - `promote`: the warm canonical's move to a new tag, with `.prev` copies and a marker until
//!   the canonical names the tag; the settle that finishes or rolls back a crashed promote.
//! - `warm`: a warm run's copy-on-reattach of the warm canonical's volumes into the run's stack
//!   (the copying and which volumes a warm run would copy are every runner's,
//!   [`crate::runners::warm`]).
//!
//! # Objects and labels
//! A cold run deploys the stack `cold-<recipe>-<tag hash>-<build>`; everything it creates (the
//! services and their containers, volumes, networks, secrets, helper containers) carries
//! `canon.managed=true`, `canon.stack`, `canon.kind=cold`, `canon.recipe`, `canon.tag`,
//! `canon.build` and `canon.created` (unix seconds), so [`crate::engine::cleanup_stale`] can
//! remove what a killed run left behind. The warm canonical's objects say `canon.kind=warm` and
//! are never swept.
//!
//! Every docker command goes through the engine module ([`crate::engine`]): the command lines,
//! the labels, listing and inspecting, the helper containers that read and write volumes, the
//! cleanup. This folder holds the runner's own steps.

pub mod app_service;
mod backup;
mod compose_override;
mod poll;
mod probe;
mod promote;
mod serving;
mod stack;
mod upgrade;
mod warm;

use canon_shared::gate::{StageResult, StageStatus, TestedRef};
use canon_shared::recipe::Stage;
use canon_shared::state::CanonicalRecord;

use self::app_service::DeployedVersion;
use self::backup::Snapshot;
use self::serving::Serving;
use self::stack::{AppEnv, Stack};
use super::ladder::{self, Release, Steps, Target};
use super::warm::{RunOutput, WarmBase, WarmCopy};
use super::{RunContext, Runner, RunnerError};
use crate::engine::labels::StackKind;
use crate::engine::{self, ensure_swarm, EngineError, VolumeSize};
use crate::recipe::files::RecipeFiles;
use crate::recipe::names;
use crate::recipe::plan::DeployPlan;
use crate::recipe::timeout::DeployTimeout;

/// The runner's name (`CANON_RUNNER` of the custom stage).
const NAME: &str = "docker";

/// Returns the size of each volume of the warm canonical of `recipe` (`warm-<recipe>`).
pub fn warm_volume_sizes(recipe: &str) -> Result<Vec<VolumeSize>, EngineError> {
    engine::volume_sizes(&names::warm_stack_name(recipe))
}

/// The `docker` runner.
#[derive(Debug, Clone)]
pub struct DockerRunner {
    /// Apps get `DOMAIN=<stack>.<domain_suffix>`.
    pub domain_suffix: String,
}

impl Default for DockerRunner {
    fn default() -> Self {
        DockerRunner {
            domain_suffix: names::DEFAULT_DOMAIN_SUFFIX.to_string(),
        }
    }
}

/// The docker runner's steps of one cold run, for the [`ladder`]: what the last deploy deployed
/// and its plan, the app env the install created, the snapshots of the backup, whether the stack
/// is up, the deploy timeout each deploying stage used and the upgrade's note (for the report).
struct ColdSteps<'a> {
    stack: &'a Stack,
    files: Option<RecipeFiles>,
    plan: Option<DeployPlan>,
    app_env: Option<AppEnv>,
    chaos: Option<DeployedVersion>,
    snapshots: Vec<Snapshot>,
    running: bool,
    timeouts: Vec<(Stage, DeployTimeout)>,
    upgrade_note: Option<String>,
    plan_notes: Vec<(Stage, Vec<String>)>,
    /// What the serving check said after each deploying stage.
    servings: Vec<(Stage, Serving)>,
    /// The canonical's version, the upgrade's base (its release notes start after it).
    canonical: Option<String>,
}

impl ColdSteps<'_> {
    /// Returns how abra labels a deploy of `release`: a chaos deploy when it is the ref under
    /// test (not a release tag), else a release.
    fn deployed(&self, release: Release<'_>) -> DeployedVersion {
        match &self.chaos {
            Some(chaos) if chaos.version == release.version => chaos.clone(),
            _ => DeployedVersion::release(release.version),
        }
    }

    /// Deploys the checkout for `stage` and waits until it is healthy; keeps what it deployed
    /// and the deploy timeout it waited with. The install creates the app env from its own
    /// `.env.sample`; later stages deploy with that env, as abra's app keeps its `.env`.
    fn deploy_healthy(&mut self, stage: Stage, release: Release<'_>) -> Result<(), RunnerError> {
        let deployed = self.deployed(release);
        let installed = || RunnerError::Other("nothing was installed".into());
        let files = match stage {
            Stage::Install => {
                let app_env = AppEnv::of(release.checkout);
                let files = self.stack.deploy(release.checkout, &deployed, &app_env)?;
                self.app_env = Some(app_env);
                files
            }
            Stage::Upgrade => {
                let app_env = self.app_env.as_mut().ok_or_else(installed)?;
                let (files, note) = self.stack.upgrade(
                    release.checkout,
                    &deployed,
                    self.canonical.as_deref(),
                    app_env,
                )?;
                self.upgrade_note = note;
                files
            }
            _ => {
                let app_env = self.app_env.as_ref().ok_or_else(installed)?;
                self.stack.deploy(release.checkout, &deployed, app_env)?
            }
        };
        let timeout = self.stack.deploy_timeout(&files)?;
        self.timeouts.push((stage, timeout));
        let serving = self.stack.wait_healthy(&files, timeout)?;
        self.servings.push((stage, serving));
        let plan = self.stack.plan(&files)?;
        self.plan_notes.push((stage, plan.all_notes()));
        self.plan = Some(plan);
        self.files = Some(files);
        self.running = true;
        Ok(())
    }

    /// Adds to each deploying stage's result the deploy timeout it used and its source, its
    /// plan's notes (test values, ignored modifiers) and its serving check; a passed upgrade that followed release
    /// notes says so in its reason.
    fn annotate(&self, results: &mut [StageResult]) {
        for (stage, timeout) in &self.timeouts {
            if let Some(r) = results.iter_mut().find(|r| r.name == *stage) {
                r.notes.push(timeout.to_string());
            }
        }
        for (stage, notes) in &self.plan_notes {
            if let Some(r) = results.iter_mut().find(|r| r.name == *stage) {
                r.notes.extend(notes.iter().cloned());
            }
        }
        for (stage, serving) in &self.servings {
            if let Some(r) = results.iter_mut().find(|r| r.name == *stage) {
                match serving {
                    Serving::Checked(check, notes) => {
                        r.serving = Some(check.clone());
                        r.notes.extend(notes.iter().cloned());
                    }
                    Serving::Skipped(why) => r.notes.push(format!("serving check skipped: {why}")),
                }
            }
        }
        if let Some(note) = &self.upgrade_note {
            if let Some(r) = results
                .iter_mut()
                .find(|r| r.name == Stage::Upgrade && r.status == StageStatus::Passed)
            {
                r.reason = Some(note.clone());
            }
        }
    }

    /// Returns what the last deploy deployed and its plan.
    fn last_deploy(&self) -> Result<(&RecipeFiles, &DeployPlan), RunnerError> {
        self.files
            .as_ref()
            .zip(self.plan.as_ref())
            .ok_or_else(|| RunnerError::Other("nothing was deployed".into()))
    }
}

impl Steps for ColdSteps<'_> {
    fn runner(&self) -> &'static str {
        NAME
    }

    fn target(&self) -> Target {
        Target {
            stack: self.stack.name.clone(),
            domain: self.stack.domain.clone(),
        }
    }

    fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        self.deploy_healthy(Stage::Install, release)
    }

    fn reattach(
        &mut self,
        warm: &WarmBase,
        base: Release<'_>,
    ) -> Result<Vec<WarmCopy>, RunnerError> {
        let copies = self.stack.reattach(warm, base.checkout)?;
        // The head deploys over the copies with the env the canonical was installed with.
        self.app_env = Some(AppEnv::of(base.checkout));
        Ok(copies)
    }

    fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        self.deploy_healthy(Stage::Upgrade, release)
    }

    fn declares_backups(&self) -> bool {
        self.plan.as_ref().is_some_and(DeployPlan::declares_backups)
    }

    fn backup(&mut self) -> Result<(), RunnerError> {
        // As backupbot does: the stack keeps running, its hooks run in its containers.
        let (files, plan) = self.last_deploy()?;
        self.snapshots = self.stack.backup(files, &plan.backup)?;
        Ok(())
    }

    fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        let (files, plan) = self.last_deploy()?;
        self.stack.restore(files, &plan.backup, &self.snapshots)?;
        self.deploy_healthy(Stage::Restore, release)
    }

    fn data_check(&mut self, step: &str, command: &str) -> Result<(), RunnerError> {
        self.stack.run_data_check(step, command)
    }

    fn running(&self) -> bool {
        self.running
    }

    fn teardown(&mut self) -> Vec<String> {
        self.stack.teardown()
    }
}

impl Runner for DockerRunner {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, ctx: &RunContext) -> Result<RunOutput, RunnerError> {
        ensure_swarm()?;
        let name = names::cold_stack_name(ctx.recipe.name.as_str(), ctx.tested_name(), &ctx.build);
        let mut stack = Stack::new(self, ctx, name, StackKind::Cold)?;
        if ctx.warm.is_some() {
            // The warm data was made with the warm canonical's secrets: the run uses them.
            stack.secret_source = Some(names::warm_stack_name(ctx.recipe.name.as_str()));
            tracing::info!(recipe = %ctx.recipe.name, tested = %ctx.tested, stack = %stack.name, "warm run starts");
        } else {
            tracing::info!(recipe = %ctx.recipe.name, tested = %ctx.tested, stack = %stack.name, "cold run starts");
        }
        let chaos = match &ctx.tested {
            TestedRef::Ref(name) => Some(DeployedVersion::chaos(name, &ctx.commit)),
            TestedRef::Tag(_) => None,
        };
        let mut steps = ColdSteps {
            stack: &stack,
            files: None,
            plan: None,
            app_env: None,
            chaos,
            snapshots: Vec::new(),
            running: false,
            timeouts: Vec::new(),
            upgrade_note: None,
            plan_notes: Vec::new(),
            servings: Vec::new(),
            canonical: ctx.canonical.as_ref().map(|c| c.version.to_string()),
        };
        let mut output = ladder::run(ctx, &mut steps);
        steps.annotate(&mut output.stages);
        Ok(output)
    }

    fn warm_volumes(
        &self,
        recipe: &canon_shared::recipe::RecipeName,
    ) -> Result<Vec<String>, String> {
        super::warm::warm_volumes(recipe)
    }

    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        if !matches!(ctx.tested, TestedRef::Tag(_)) {
            return Err(RunnerError::Other(
                "only a tag can become the warm canonical".into(),
            ));
        }
        ensure_swarm()?;
        let name = names::warm_stack_name(ctx.recipe.name.as_str());
        let stack = Stack::new(self, ctx, name, StackKind::Warm)?;
        tracing::info!(recipe = %ctx.recipe.name, tested = %ctx.tested, stack = %stack.name, "promote: deploying the warm canonical");
        stack.promote(ctx)
    }

    fn settle_promote(
        &self,
        ctx: &RunContext,
        canonical: Option<&CanonicalRecord>,
    ) -> Result<(), RunnerError> {
        ensure_swarm()?;
        let name = names::warm_stack_name(ctx.recipe.name.as_str());
        Stack::new(self, ctx, name, StackKind::Warm)?.settle(ctx, canonical)
    }

    fn keeps_warm_data(&self) -> Result<(), String> {
        Ok(())
    }

    fn warm_host(&self) -> Option<String> {
        match engine::client::node_name() {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot tell which Docker node holds the warm data.");
                None
            }
        }
    }
}
