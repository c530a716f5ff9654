//! The built-in `abra` runner: the steps of the one stage ladder ([`super::ladder`]) through the
//! abra CLI (Co-op Cloud's own tool), with a per-run `ABRA_DIR` so concurrent runs never share a
//! recipe checkout (`abra app new` moves the checkout to the release tag).
//!
//! Every abra command line is built by a pure function below. They were written for abra 0.10
//! (the `abra app ...` command set and flags of its 2024–2025 docs); abra is not installed where
//! canon is built, so the tests check the command lines and the order of the ladder with a
//! recording stand-in for `abra`. `docs/runners.md` lists the exact commands.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canon_shared::gate::{StageResult, TestedRef};
use canon_shared::mirror::{self, GitRemote};
use canon_shared::recipe::Stage;

use super::ladder::{self, Release, Steps, Target};
use super::warm::RunOutput;
use super::{RunContext, Runner, RunnerError};
use crate::process::exec::{self, Cmd};
use crate::recipe::files::RecipeFiles;
use crate::recipe::names::{
    abra_app_domain, cold_stack_name, warm_stack_name, DEFAULT_DOMAIN_SUFFIX,
};
use crate::recipe::plan::{self, DeployPlan};
use crate::recipe::secrets::Source;
use crate::recipe::timeout::DeployTimeout;

/// The abra version these command lines were written for.
pub const ABRA_VERSION: &str = "0.10";

/// The `abra` runner.
#[derive(Debug, Clone)]
pub struct AbraRunner {
    /// The abra executable (default `abra` on `PATH`).
    pub program: String,
    /// The abra server apps are deployed to (`default`: the local engine, `abra server add
    /// --local`).
    pub server: String,
    /// Apps get `<stack>.<domain_suffix>` as their domain, or the stack name alone where that
    /// would make abra's stack name longer than abra's own for the recipe
    /// ([`abra_app_domain`]).
    pub domain_suffix: String,
}

impl Default for AbraRunner {
    fn default() -> Self {
        AbraRunner {
            program: "abra".to_string(),
            server: "default".to_string(),
            domain_suffix: DEFAULT_DOMAIN_SUFFIX.to_string(),
        }
    }
}

/// The abra command lines of one app, as pure functions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AbraApp {
    /// The abra executable.
    pub program: String,
    /// The per-run `ABRA_DIR`.
    pub abra_dir: PathBuf,
    /// The recipe name.
    pub recipe: String,
    /// The app's domain (abra's app name).
    pub domain: String,
    /// The abra server.
    pub server: String,
}

impl AbraApp {
    fn cmd(&self, args: &[&str]) -> Cmd {
        let mut c = Cmd::new(&self.program, args.iter().copied());
        c.env = vec![("ABRA_DIR".to_string(), self.abra_dir.display().to_string())];
        c
    }

    /// `abra server add --local` (once per `ABRA_DIR`: the local engine as server `default`).
    pub fn server_add(&self) -> Cmd {
        self.cmd(&["server", "add", "--local", "--no-input"])
    }

    /// `abra app new <recipe> <version> --server <s> --domain <d> --secrets --no-input --offline`
    /// (creates the app's `.env` from `.env.sample` and generates the declared secrets).
    pub fn new_app(&self, version: &str) -> Cmd {
        self.cmd(&[
            "app",
            "new",
            &self.recipe,
            version,
            "--server",
            &self.server,
            "--domain",
            &self.domain,
            "--secrets",
            "--no-input",
            "--offline",
        ])
    }

    /// `abra app deploy <domain> <version> --no-input --offline` (`--force` to redeploy the
    /// running version; `--chaos` is never used: canon tests tagged releases).
    pub fn deploy(&self, version: &str, force: bool) -> Cmd {
        let mut args = vec![
            "app",
            "deploy",
            &self.domain,
            version,
            "--no-input",
            "--offline",
        ];
        if force {
            args.push("--force");
        }
        self.cmd(&args)
    }

    /// `abra app upgrade <domain> <version> --no-input --offline` (over the running base).
    pub fn upgrade(&self, version: &str) -> Cmd {
        self.cmd(&[
            "app",
            "upgrade",
            &self.domain,
            version,
            "--no-input",
            "--offline",
        ])
    }

    /// `abra app backup create <domain> --no-input` (backupbot snapshot of the labelled volumes).
    pub fn backup(&self) -> Cmd {
        self.cmd(&["app", "backup", "create", &self.domain, "--no-input"])
    }

    /// `abra app restore <domain> --no-input` (the latest snapshot).
    pub fn restore(&self) -> Cmd {
        self.cmd(&["app", "restore", &self.domain, "--no-input"])
    }

    /// `abra app undeploy <domain> --no-input` (stops the stack, keeps volumes).
    pub fn undeploy(&self) -> Cmd {
        self.cmd(&["app", "undeploy", &self.domain, "--no-input"])
    }

    /// `abra app volume remove <domain> --force --no-input`.
    pub fn volume_remove(&self) -> Cmd {
        self.cmd(&[
            "app",
            "volume",
            "remove",
            &self.domain,
            "--force",
            "--no-input",
        ])
    }

    /// `abra app secret remove <domain> --all --no-input`.
    pub fn secret_remove(&self) -> Cmd {
        self.cmd(&[
            "app",
            "secret",
            "remove",
            &self.domain,
            "--all",
            "--no-input",
        ])
    }

    /// `abra app secret remove <domain> <key> --no-input`: one secret, before its value is
    /// replaced.
    pub fn secret_remove_one(&self, key: &str) -> Cmd {
        self.cmd(&["app", "secret", "remove", &self.domain, key, "--no-input"])
    }

    /// `abra app secret insert <domain> <key> <version> <file> --file --no-input`: the value is
    /// read from `file`, never put on the command line.
    pub fn secret_insert(&self, key: &str, version: &str, file: &Path) -> Cmd {
        let file = file.display().to_string();
        self.cmd(&[
            "app",
            "secret",
            "insert",
            &self.domain,
            key,
            version,
            &file,
            "--file",
            "--no-input",
        ])
    }

    /// Returns the deploy plan of the release checked out at `checkout` for this app, as abra
    /// will deploy it: the deploy policy applied with the enrollment's `host_access` (an error
    /// naming every finding it does not allow, before anything is deployed).
    pub fn plan(
        &self,
        checkout: &Path,
        enrollment_timeout: Option<u64>,
        host_access: &[String],
    ) -> Result<DeployPlan, RunnerError> {
        let stack = self.stack_name();
        let env = plan::app_env(&stack, &self.domain, &BTreeMap::new());
        DeployPlan::load(checkout, &stack, &env, enrollment_timeout)
            .and_then(|(_, plan)| plan.permit(host_access))
            .map_err(|e| RunnerError::Other(e.to_string()))
    }

    /// Writes the values abra does not make itself into files under `ABRA_DIR/secret-values`
    /// (mode 0600) and returns the commands that insert them after `abra app new --secrets`: each
    /// value the enrollment `supplied` (a secret abra generated is removed first), and a random
    /// test value for each `generate=false` secret nothing supplies, as the docker runner does.
    /// With `replace_all` each one is removed first whatever abra did (the warm app keeps its
    /// secrets across promotes), a removal that may find nothing. Each command comes with
    /// whether it may fail.
    pub fn secret_values(
        &self,
        plan: &DeployPlan,
        supplied: &BTreeMap<String, PathBuf>,
        replace_all: bool,
    ) -> Result<Vec<(Cmd, bool)>, RunnerError> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.abra_dir.join("secret-values");
        let mut cmds = Vec::new();
        for secret in &plan.secrets {
            let generated = secret.spec.source == Source::Generated;
            let mut spec = secret.spec.clone();
            if let Some(path) = supplied.get(&spec.key) {
                spec.supply(path);
            } else if generated {
                continue;
            }
            let value = spec
                .value()
                .map_err(|e| RunnerError::Other(e.to_string()))?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                RunnerError::Other(format!("could not create {}: {e}", dir.display()))
            })?;
            let file = dir.join(&spec.key);
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&file)
                .map_err(|e| {
                    RunnerError::Other(format!("could not write {}: {e}", file.display()))
                })?;
            std::io::Write::write_all(&mut f, value.as_bytes()).map_err(|e| {
                RunnerError::Other(format!("could not write {}: {e}", file.display()))
            })?;
            if generated || replace_all {
                // A removal abra must do succeeds; one only in case the warm app kept the
                // secret may find nothing.
                cmds.push((self.secret_remove_one(&spec.key), !generated));
            }
            cmds.push((self.secret_insert(&spec.key, &spec.version, &file), false));
        }
        Ok(cmds)
    }

    /// `abra app remove <domain> --force --no-input` (the app's `.env`).
    pub fn remove(&self) -> Cmd {
        self.cmd(&["app", "remove", &self.domain, "--force", "--no-input"])
    }

    /// Returns the deploy timeout abra waits on this app: the one deploy-timeout rule
    /// ([`plan::deploy_timeout`]) over the enrollment's seconds and the `checkout`'s
    /// `coop-cloud.<stack>.timeout` label, for abra's stack name of the app. One abra command may
    /// run [`DeployTimeout::abra_deadline`]: the timeout plus a margin for abra to report.
    pub fn deploy_timeout(
        &self,
        checkout: &Path,
        enrollment_timeout: Option<u64>,
    ) -> Result<DeployTimeout, RunnerError> {
        let stack = self.stack_name();
        let timeout = plan::deploy_timeout(checkout, &stack, &self.domain, enrollment_timeout)
            .map_err(|e| RunnerError::Other(e.to_string()))?;
        tracing::debug!(
            stack = %stack,
            seconds = timeout.duration.as_secs(),
            source = %timeout.source,
            deadline = timeout.abra_deadline().as_secs(),
            "deploy timeout"
        );
        Ok(timeout)
    }

    /// Returns abra's own stack name of the app: its domain with `.` as `_`.
    pub fn stack_name(&self) -> String {
        self.domain.replace('.', "_")
    }

    /// Returns `<ABRA_DIR>/recipes/<recipe>`: where abra reads the recipe, its tags included.
    pub fn recipe_dir(&self) -> PathBuf {
        self.abra_dir.join("recipes").join(&self.recipe)
    }

    /// Clones `checkout` (this run's checkout, HEAD at the commit under test) into
    /// [`AbraApp::recipe_dir`] with git2, through canon-shared's mirror code like every other git
    /// transfer: a private copy per run, with every tag the checkout holds. No git CLI is needed.
    pub fn clone_recipe(&self, checkout: &Path) -> Result<(), RunnerError> {
        let dest = self.recipe_dir();
        let source = GitRemote::local(checkout.display().to_string());
        let cloned = mirror::clone_detached(&source, &dest).map_err(|e| {
            RunnerError::Other(format!(
                "could not clone the recipe into {}: {e}",
                dest.display()
            ))
        })?;
        tracing::debug!(
            checkout = %checkout.display(),
            dest = %dest.display(),
            commit = %cloned.commit,
            tags = cloned.tags,
            "Cloned the recipe into the run's ABRA_DIR."
        );
        Ok(())
    }
}

impl AbraRunner {
    fn app(&self, ctx: &RunContext, stack: &str, dir: &str) -> Result<AbraApp, RunnerError> {
        let abra_dir = ctx.run_dir.join(dir);
        std::fs::create_dir_all(abra_dir.join("recipes")).map_err(|e| {
            RunnerError::Other(format!("could not create {}: {e}", abra_dir.display()))
        })?;
        Ok(AbraApp {
            program: self.program.clone(),
            abra_dir,
            recipe: ctx.recipe.name.as_str().to_string(),
            domain: abra_app_domain(ctx.recipe.name.as_str(), stack, &self.domain_suffix),
            server: self.server.clone(),
        })
    }

    fn prepare(app: &AbraApp, checkout: &Path) -> Result<(), RunnerError> {
        app.clone_recipe(checkout)?;
        exec::run_ok(&app.server_add(), Duration::from_secs(60))?;
        Ok(())
    }

    fn teardown(app: &AbraApp) -> Vec<String> {
        let mut problems = Vec::new();
        for c in [
            app.undeploy(),
            app.volume_remove(),
            app.secret_remove(),
            app.remove(),
        ] {
            if let Err(e) = exec::run_ok(&c, Duration::from_secs(300)) {
                problems.push(e.to_string());
            }
        }
        problems
    }
}

/// The abra runner's steps of one cold run, for the [`ladder`].
struct AbraSteps<'a> {
    app: &'a AbraApp,
    /// The recipe's enrollment entry: its secrets, host access and deploy timeout.
    recipe: &'a canon_shared::recipe::Recipe,
    checkout: &'a Path,
    /// The deploy timeout each stage waited by, for its result's notes.
    timeouts: Vec<(Stage, DeployTimeout)>,
}

impl AbraSteps<'_> {
    /// Runs `c` for `stage` within the abra deadline of the release checked out at `checkout`
    /// (its deploy timeout plus a margin), and keeps the timeout for the stage's notes.
    fn abra(&mut self, stage: Stage, c: &Cmd, checkout: &Path) -> Result<(), RunnerError> {
        let timeout = self
            .app
            .deploy_timeout(checkout, self.recipe.deploy_timeout_secs)?;
        if !self.timeouts.iter().any(|(s, _)| *s == stage) {
            self.timeouts.push((stage, timeout));
        }
        exec::run_ok(c, timeout.abra_deadline())?;
        Ok(())
    }

    /// Adds to each stage's result the deploy timeout it waited by and its source.
    fn annotate(&self, results: &mut [StageResult]) {
        for (stage, timeout) in &self.timeouts {
            if let Some(r) = results.iter_mut().find(|r| r.name == *stage) {
                r.notes.push(timeout.to_string());
            }
        }
    }
}

impl Steps for AbraSteps<'_> {
    fn runner(&self) -> &'static str {
        "abra"
    }

    fn target(&self) -> Target {
        Target {
            stack: self.app.stack_name(),
            domain: self.app.domain.clone(),
        }
    }

    fn install(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        let (new_app, deploy) = (
            self.app.new_app(release.version),
            self.app.deploy(release.version, false),
        );
        let plan = self.app.plan(
            release.checkout,
            self.recipe.deploy_timeout_secs,
            &self.recipe.host_access,
        )?;
        self.abra(Stage::Install, &new_app, release.checkout)?;
        for (c, may_fail) in self.app.secret_values(&plan, &self.recipe.secrets, false)? {
            if may_fail {
                let _ = exec::run(&c, Duration::from_secs(60));
            } else {
                self.abra(Stage::Install, &c, release.checkout)?;
            }
        }
        self.abra(Stage::Install, &deploy, release.checkout)
    }

    fn upgrade(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        let c = self.app.upgrade(release.version);
        self.abra(Stage::Upgrade, &c, release.checkout)
    }

    fn declares_backups(&self) -> bool {
        RecipeFiles::load(self.checkout, "app", &BTreeMap::new())
            .map(|f| f.facts.declares_backups())
            .unwrap_or(false)
    }

    fn backup(&mut self) -> Result<(), RunnerError> {
        let (c, checkout) = (self.app.backup(), self.checkout);
        self.abra(Stage::Backup, &c, checkout)
    }

    fn restore(&mut self, release: Release<'_>) -> Result<(), RunnerError> {
        let c = self.app.restore();
        self.abra(Stage::Restore, &c, release.checkout)
    }

    fn running(&self) -> bool {
        // backupbot backs up and restores the running app: abra never stops it in between.
        true
    }

    fn teardown(&mut self) -> Vec<String> {
        AbraRunner::teardown(self.app)
    }
}

impl Runner for AbraRunner {
    fn name(&self) -> &'static str {
        "abra"
    }

    fn run(&self, ctx: &RunContext) -> Result<RunOutput, RunnerError> {
        let stack = cold_stack_name(ctx.recipe.name.as_str(), ctx.tested_name(), &ctx.build);
        let app = self.app(ctx, &stack, "abra")?;
        Self::prepare(&app, &ctx.checkout)?;
        let mut steps = AbraSteps {
            app: &app,
            recipe: &ctx.recipe,
            checkout: &ctx.checkout,
            timeouts: Vec::new(),
        };
        let mut output = ladder::run(ctx, &mut steps);
        steps.annotate(&mut output.stages);
        Ok(output)
    }

    fn warm_volumes(
        &self,
        recipe: &canon_shared::recipe::RecipeName,
    ) -> Result<Vec<String>, String> {
        // abra has no way to deploy an app over copies of another app's volumes: `abra app new`
        // names every volume after the app's domain, and a warm run must never touch the warm
        // canonical's own.
        Err(format!(
            "the abra runner runs cold: abra cannot deploy a new app over copies of warm-{recipe}'s volumes"
        ))
    }

    fn keeps_warm_data(&self) -> Result<(), String> {
        // The promote step keeps the app `warm-<recipe>` deployed by abra on this server.
        Ok(())
    }

    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        let TestedRef::Tag(tag) = &ctx.tested else {
            return Err(RunnerError::Other(
                "only a tag can become the warm canonical".into(),
            ));
        };
        let stack = warm_stack_name(ctx.recipe.name.as_str());
        let app = self.app(ctx, &stack, "abra-warm")?;
        Self::prepare(&app, &ctx.checkout)?;
        let timeout = app
            .deploy_timeout(&ctx.checkout, ctx.recipe.deploy_timeout_secs)?
            .abra_deadline();
        // The warm app's `.env` lives in this run's ABRA_DIR; `app new` recreates it and keeps
        // the existing secrets and volumes of the same domain on the server.
        let plan = app.plan(
            &ctx.checkout,
            ctx.recipe.deploy_timeout_secs,
            &ctx.recipe.host_access,
        )?;
        exec::run_ok(&app.new_app(tag), timeout)?;
        for (c, may_fail) in app.secret_values(&plan, &ctx.recipe.secrets, true)? {
            if may_fail {
                let _ = exec::run(&c, Duration::from_secs(60));
            } else {
                exec::run_ok(&c, timeout)?;
            }
        }
        exec::run_ok(&app.deploy(tag, true), timeout)?;
        exec::run_ok(&app.undeploy(), timeout)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_abra_runner_says_plainly_that_it_runs_cold() {
        let recipe = canon_shared::recipe::RecipeName::parse("gitea").unwrap();
        let why = AbraRunner::default().warm_volumes(&recipe).unwrap_err();
        assert_eq!(
            why,
            "the abra runner runs cold: abra cannot deploy a new app over copies of warm-gitea's volumes"
        );
    }

    #[test]
    fn abra_commands_wait_by_the_same_deploy_timeout_rule_as_the_docker_runner() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/recipe-multifile");
        let app = app();
        assert_eq!(app.stack_name(), "cold-gitea-abc123-7_canon_localhost");
        let label = app.deploy_timeout(&dir, None).unwrap();
        assert_eq!(label.duration, Duration::from_secs(240));
        assert_eq!(label.abra_deadline(), Duration::from_secs(300));
        assert_eq!(label.to_string(), "deploy timeout 240s (source: label)");
        let enrolled = app.deploy_timeout(&dir, Some(90)).unwrap();
        assert_eq!(enrolled.duration, Duration::from_secs(90));
        assert_eq!(enrolled.abra_deadline(), Duration::from_secs(150));
    }

    fn app() -> AbraApp {
        AbraApp {
            program: "abra".into(),
            abra_dir: PathBuf::from("/run/1/abra"),
            recipe: "gitea".into(),
            domain: "cold-gitea-abc123-7.canon.localhost".into(),
            server: "default".into(),
        }
    }

    #[test]
    fn every_abra_command_line_is_exact() {
        let a = app();
        let d = "cold-gitea-abc123-7.canon.localhost";
        let table: Vec<(Cmd, Vec<&str>)> = vec![
            (
                a.server_add(),
                vec!["server", "add", "--local", "--no-input"],
            ),
            (
                a.new_app("1.0.0+1.21"),
                vec![
                    "app",
                    "new",
                    "gitea",
                    "1.0.0+1.21",
                    "--server",
                    "default",
                    "--domain",
                    d,
                    "--secrets",
                    "--no-input",
                    "--offline",
                ],
            ),
            (
                a.deploy("1.0.0+1.21", false),
                vec!["app", "deploy", d, "1.0.0+1.21", "--no-input", "--offline"],
            ),
            (
                a.deploy("1.0.0+1.21", true),
                vec![
                    "app",
                    "deploy",
                    d,
                    "1.0.0+1.21",
                    "--no-input",
                    "--offline",
                    "--force",
                ],
            ),
            (
                a.upgrade("1.1.0+1.22"),
                vec!["app", "upgrade", d, "1.1.0+1.22", "--no-input", "--offline"],
            ),
            (a.backup(), vec!["app", "backup", "create", d, "--no-input"]),
            (a.restore(), vec!["app", "restore", d, "--no-input"]),
            (a.undeploy(), vec!["app", "undeploy", d, "--no-input"]),
            (
                a.volume_remove(),
                vec!["app", "volume", "remove", d, "--force", "--no-input"],
            ),
            (
                a.secret_remove(),
                vec!["app", "secret", "remove", d, "--all", "--no-input"],
            ),
            (
                a.remove(),
                vec!["app", "remove", d, "--force", "--no-input"],
            ),
        ];
        for (cmd, want) in table {
            assert_eq!(cmd.program, "abra");
            assert_eq!(cmd.argv(), want);
            assert_eq!(
                cmd.env,
                vec![("ABRA_DIR".to_string(), "/run/1/abra".to_string())]
            );
        }
        assert_eq!(a.recipe_dir(), Path::new("/run/1/abra/recipes/gitea"));
    }
}
