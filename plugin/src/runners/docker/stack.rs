//! One stack (a cold run's or the warm canonical) on the engine: its names and labels, deploying
//! a recipe checkout as it, stopping it, and removing everything it created.
//!
//! Its health ([`super::probe`]), backup and restore ([`super::backup`]), the promote
//! ([`super::promote`]), the upgrade ([`super::upgrade`]) and a warm run's copies
//! ([`super::warm`]) are further `impl Stack` blocks, one concern a file; its volumes are read
//! and written through the engine's helper containers ([`Helpers`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use canon_shared::secret::Secret;

use super::app_service::{self, DeployedVersion, APP_SERVICE};
use super::compose_override::{self, AppAdditions};
use super::DockerRunner;
use crate::engine::client::{self, docker, run};
use crate::engine::cmd::{self, Kind};
use crate::engine::labels::{self, now_unix, RunLabels, StackKind};
use crate::engine::stacks;
use crate::engine::volumes::Helpers;
use crate::recipe::files::RecipeFiles;
use crate::recipe::plan::{self, DeployPlan};
use crate::recipe::timeout::DEFAULT_STABILITY_WINDOW;
use crate::runners::{RunContext, RunnerError};

/// The app env a deploy uses, as abra keeps an app's `.env`: the `.env.sample` the app was
/// created from (`abra app new` copies it once; an upgrade deploys the new version with it), plus
/// the lines an operator added by following a release's notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AppEnv {
    /// The `.env.sample` the app was created from.
    pub(super) env_sample: PathBuf,
    /// Lines added later (key and value).
    pub(super) added: BTreeMap<String, String>,
    /// The modifiers of the added lines (`length=64`).
    pub(super) added_modifiers: BTreeMap<String, BTreeMap<String, String>>,
}

impl AppEnv {
    /// Returns the app env of an app created from the recipe checkout `dir`.
    pub(super) fn of(dir: &Path) -> Self {
        AppEnv {
            env_sample: dir.join(".env.sample"),
            added: BTreeMap::new(),
            added_modifiers: BTreeMap::new(),
        }
    }
}

/// One stack (a cold run's or the warm canonical) and what it needs to deploy and clean up.
pub(super) struct Stack {
    /// The stack name.
    pub(super) name: String,
    /// The labels of everything it creates.
    pub(super) labels: RunLabels,
    /// Its scratch folder in the run folder (override file, snapshots).
    pub(super) work: PathBuf,
    /// Its helper containers, which read and write its volumes.
    pub(super) volumes: Helpers,
    /// The enrollment's `deploy_timeout` in seconds, which overrides the recipe's timeout label.
    pub(super) enrollment_timeout: Option<u64>,
    /// The enrollment's `host_access:`, what the deploy policy allows.
    pub(super) host_access: Vec<String>,
    /// The recipe's HTTP health path, when it names one.
    pub(super) health_path: Option<String>,
    /// How the serving check asks for the app's page (the enrollment's `serving:`).
    pub(super) serving: canon_shared::recipe::Serving,
    /// How long every service must stay converged before the stack counts as healthy.
    pub(super) stability_window: Duration,
    /// `<stack>.<domain suffix>`.
    pub(super) domain: String,
    /// The run's extra environment (deploy env and the custom stage).
    pub(super) extra_env: BTreeMap<String, String>,
    /// A warm run's source of secrets: the warm canonical's stack, whose secrets (which its
    /// data was made with) the run uses where they exist, instead of generating new ones.
    pub(super) secret_source: Option<String>,
    /// The values the enrollment supplies for the recipe's secrets, by key (their files).
    pub(super) supplied_secrets: BTreeMap<String, PathBuf>,
}

impl Stack {
    /// Returns the stack `name` of `kind` for this run, with its scratch folder created; deploys
    /// nothing.
    pub(super) fn new(
        runner: &DockerRunner,
        ctx: &RunContext,
        name: String,
        kind: StackKind,
    ) -> Result<Self, RunnerError> {
        let work = ctx.run_dir.join("docker").join(&name);
        std::fs::create_dir_all(&work)
            .map_err(|e| RunnerError::Other(format!("could not create {}: {e}", work.display())))?;
        let labels = RunLabels {
            stack: name.clone(),
            kind,
            recipe: ctx.recipe.name.as_str().to_string(),
            tag: ctx.tested_name().to_string(),
            build: ctx.build.clone(),
            created: now_unix(),
        };
        Ok(Stack {
            volumes: Helpers::new(&name, labels.map(Some("helper")), &work),
            labels,
            domain: format!("{name}.{}", runner.domain_suffix),
            name,
            work,
            enrollment_timeout: ctx.recipe.deploy_timeout_secs,
            host_access: ctx.recipe.host_access.clone(),
            health_path: ctx.recipe.health_path.clone(),
            serving: ctx.recipe.serving.clone(),
            stability_window: ctx
                .recipe
                .stability_window_secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_STABILITY_WINDOW),
            extra_env: ctx.env.clone(),
            secret_source: None,
            supplied_secrets: ctx.recipe.secrets.clone(),
        })
    }

    /// Returns canon's own values of the deploy env: the run's extra env, `STACK_NAME`, `DOMAIN`.
    pub(super) fn overrides(&self) -> BTreeMap<String, String> {
        plan::app_env(&self.name, &self.domain, &self.extra_env)
    }

    /// Returns the label filter of what `docker stack deploy` created for this stack.
    pub(super) fn stack_filter(&self) -> String {
        stacks::stack_filter(&self.name)
    }

    /// Reads the recipe checkout `dir` as this stack would deploy it, with its own app env.
    pub(super) fn load(&self, dir: &Path) -> Result<RecipeFiles, RunnerError> {
        self.load_app(dir, &AppEnv::of(dir))
    }

    /// Reads the recipe checkout `dir` as this stack would deploy it with the app env `app_env`.
    pub(super) fn load_app(
        &self,
        dir: &Path,
        app_env: &AppEnv,
    ) -> Result<RecipeFiles, RunnerError> {
        let mut overrides = self.overrides();
        overrides.extend(app_env.added.clone());
        let mut files =
            RecipeFiles::load_with_env(dir, &app_env.env_sample, &self.name, &overrides)
                .map_err(|e| RunnerError::Other(e.to_string()))?;
        files.env_modifiers.extend(app_env.added_modifiers.clone());
        for key in app_env.added.keys() {
            if !files.app_env_keys.contains(key) {
                files.app_env_keys.push(key.clone());
            }
        }
        Ok(files)
    }

    /// Returns the deploy plan of `files` for this stack (its secrets, with the values the
    /// enrollment supplies, timeout and backup).
    pub(super) fn plan(&self, files: &RecipeFiles) -> Result<DeployPlan, RunnerError> {
        DeployPlan::resolve(files, &self.name, self.enrollment_timeout)
            .and_then(|plan| plan.permit(&self.host_access))
            .map(|plan| plan.supply(&self.supplied_secrets))
            .map_err(|e| RunnerError::Other(e.to_string()))
    }

    /// Deploys the recipe checkout `dir` as this stack, as the release `deployed`, with the app
    /// env `app_env`: missing external secrets get generated values, missing external networks
    /// are created, the override with canon's labels and abra's `app` additions is added.
    pub(super) fn deploy(
        &self,
        dir: &Path,
        deployed: &DeployedVersion,
        app_env: &AppEnv,
    ) -> Result<RecipeFiles, RunnerError> {
        let files = self.load_app(dir, app_env)?;
        self.deploy_files(files, deployed)
    }

    /// Deploys `files` (read by [`Stack::load_app`]) as the release `deployed`.
    pub(super) fn deploy_files(
        &self,
        mut files: RecipeFiles,
        deployed: &DeployedVersion,
    ) -> Result<RecipeFiles, RunnerError> {
        let labels = self.labels.map(None);
        let existing = self.secret_names()?;
        // The plan checks every secret before any is created: a refused one fails the install
        // with nothing half made.
        let plan = self.plan(&files)?;
        let borrowed = self.borrowed_secrets(&plan, &existing);
        for s in &plan.secrets {
            if !existing.contains(&s.name) && !borrowed.contains_key(&s.spec.key) {
                let value = s
                    .spec
                    .value()
                    .map_err(|e| RunnerError::Other(e.to_string()))?;
                tracing::debug!(secret = %s.name, length = s.spec.length, source = s.spec.source.as_str(), "Creating the secret.");
                docker(&cmd::secret_create(&s.name, &labels, Secret::new(value)))?;
            }
        }
        for n in files.facts.networks.iter().filter(|n| n.external) {
            let found = run(&cmd::inspect(Kind::Network, std::slice::from_ref(&n.name)))?;
            if !found.success() {
                // Shared infrastructure (traefik's `proxy`): created once, never removed by a run.
                let shared = BTreeMap::from([
                    (labels::MANAGED_LABEL.to_string(), "true".to_string()),
                    (labels::KIND_LABEL.to_string(), "shared".to_string()),
                ]);
                docker(&cmd::network_create(&n.name, &shared))?;
            }
        }
        let app = self.app_additions(&mut files, deployed);
        let override_path = self.work.join("compose.canon.yml");
        std::fs::write(
            &override_path,
            compose_override::label_override(&files.facts, &labels, &app, &borrowed),
        )
        .map_err(|e| {
            RunnerError::Other(format!("could not write {}: {e}", override_path.display()))
        })?;
        // The files as canon resolved them: the docker CLI runs with canon's own allow-listed
        // environment, never the recipe's (no `PATH`, `DOCKER_*` or `LD_*` of a recipe reaches it).
        let mut all = self.write_resolved(&files)?;
        all.push(override_path);
        docker(&cmd::stack_deploy(&self.name, &all, &self.work))?;
        Ok(files)
    }

    /// Writes the compose files of `files` as canon resolved them
    /// ([`RecipeFiles::resolved`]) into this stack's scratch folder and returns their paths, in
    /// order.
    fn write_resolved(&self, files: &RecipeFiles) -> Result<Vec<PathBuf>, RunnerError> {
        let resolved = files
            .resolved()
            .map_err(|e| RunnerError::Other(e.to_string()))?;
        let folder = self.work.join("resolved");
        std::fs::create_dir_all(&folder).map_err(|e| {
            RunnerError::Other(format!("could not create {}: {e}", folder.display()))
        })?;
        let mut paths = Vec::new();
        for (i, (name, text)) in resolved.iter().enumerate() {
            let path = folder.join(format!("{i}-{name}"));
            std::fs::write(&path, text).map_err(|e| {
                RunnerError::Other(format!("could not write {}: {e}", path.display()))
            })?;
            paths.push(path);
        }
        Ok(paths)
    }

    /// Returns what abra adds to the `app` service for `deployed`, and makes the version label
    /// the files expect the one deployed (a release is labelled with its tag).
    fn app_additions(&self, files: &mut RecipeFiles, deployed: &DeployedVersion) -> AppAdditions {
        let recipe = self.labels.recipe.as_str();
        let compose_version = files.facts.version_of(APP_SERVICE);
        let Some(app) = files
            .facts
            .services
            .iter_mut()
            .find(|s| s.name == APP_SERVICE)
        else {
            return AppAdditions::default();
        };
        let deploy_labels =
            app_service::abra_labels(&self.name, recipe, deployed, compose_version.as_deref());
        let version_key = format!("coop-cloud.{}.version", self.name);
        if let Some(v) = deploy_labels.get(&version_key) {
            app.deploy_labels.insert(version_key, v.clone());
        }
        let environment = app_service::exposed_env(files, recipe, deployed);
        tracing::debug!(stack = %self.name, labels = ?deploy_labels, exposed = ?environment.keys().collect::<Vec<_>>(), "abra's app labels and exposed env");
        AppAdditions {
            deploy_labels,
            environment,
        }
    }

    /// Returns, by key, the secrets of `plan` a warm run takes from the warm canonical (its
    /// [`Stack::secret_source`]): those whose secret of the same key and version exists there.
    /// Empty for every other stack.
    pub(super) fn borrowed_secrets(
        &self,
        plan: &DeployPlan,
        existing: &BTreeSet<String>,
    ) -> BTreeMap<String, String> {
        let Some(source) = &self.secret_source else {
            return BTreeMap::new();
        };
        let ours = format!("{}_", self.name);
        plan.secrets
            .iter()
            .filter_map(|s| {
                let rest = s.name.strip_prefix(&ours)?;
                let theirs = format!("{source}_{rest}");
                existing
                    .contains(&theirs)
                    .then(|| (s.spec.key.clone(), theirs))
            })
            .collect()
    }

    /// Returns the secret names a deploy of `plan` finds: those on the engine, and for a warm
    /// run those it takes from the warm canonical (under the names `plan` gives them).
    pub(super) fn available_secrets(
        &self,
        plan: &DeployPlan,
    ) -> Result<BTreeSet<String>, RunnerError> {
        let mut existing = self.secret_names()?;
        let borrowed = self.borrowed_secrets(plan, &existing);
        existing.extend(
            plan.secrets
                .iter()
                .filter(|s| borrowed.contains_key(&s.spec.key))
                .map(|s| s.name.clone()),
        );
        Ok(existing)
    }

    /// Returns the names of every swarm secret on the engine.
    pub(super) fn secret_names(&self) -> Result<BTreeSet<String>, RunnerError> {
        Ok(client::secret_names()?)
    }

    /// Removes the stack's services and waits until its containers and networks are gone (volumes
    /// stay).
    pub(super) fn stop(&self) -> Result<(), RunnerError> {
        Ok(stacks::stop(&self.name)?)
    }

    /// Removes everything of this stack: services, containers (tasks and helpers), volumes,
    /// secrets, networks. Returns what could not be removed.
    pub(super) fn teardown(&self) -> Vec<String> {
        stacks::remove_all(&self.name)
    }
}
