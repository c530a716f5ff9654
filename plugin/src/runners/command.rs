//! The `command` runner: an external harness runs the stage ladder and writes a results file.
//!
//! The harness runs as `sh -c <command>` in the run's checkout, with the run's `CANON_*`
//! variables and `CANON_RESULTS`, the path where it must write
//! `{"stages": [{"name": "install", "status": "passed", "reason": null, "seconds": 41.2}, ...]}`
//! (JSON Schema: `plugin/schema/results.schema.json`). Its output streams to the step log, line by
//! line, prefixed with `| `.
//!
//! It has no stage ladder of its own (the harness climbs it); its children go through the one
//! executor, [`crate::process::exec`], like every runner's.
//!
//! A warm run (a pull request or branch run on a host with the warm canonical's volumes
//! `warm-<recipe>_*`, the docker runner's naming, found and copied by [`super::warm`]) gets `CANON_WARM=1`, the canonical as
//! `CANON_UPGRADE_BASE*`, and copies of those volumes made by canon, named in
//! `CANON_WARM_VOLUMES` (comma-separated): the harness deploys the head over them. The copies
//! are removed when the run ends; the canonical's own volumes are never handed to it.
//!
//! The harness reports stages; it never gives the verdict. A non-zero exit, a missing or invalid
//! results file, an unknown stage or status, or a stage listed twice makes the run red, whatever
//! the stages say.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use canon_shared::gate::StageResult;
use serde::Deserialize;

use super::warm::{warm_volumes, RunOutput, WarmCopies, WarmReport};
use super::{RunContext, Runner, RunnerError};
use crate::process::exec::{self, Cmd, OutputMode};
use crate::process::ProcessError;
use crate::recipe::names::{cold_stack_name, DEFAULT_DOMAIN_SUFFIX};
use crate::recipe::plan::{self, DeployPlan};

/// The file name of the results file inside the run folder.
pub const RESULTS_FILE: &str = "results.json";

/// The `command` runner.
#[derive(Debug, Clone)]
pub struct CommandRunner {
    /// The harness command (shell text).
    pub command: String,
    /// Run after the gate allowed a promotion; `None` means the promote step does nothing.
    pub promote_command: Option<String>,
    /// How long each command may run.
    pub timeout: Duration,
}

/// Checks the deploy policy of the checkout under test before the harness deploys anything: an
/// error naming each finding the enrollment's `host_access` does not allow. A checkout canon
/// cannot read as a plan is the harness's to judge: it runs, and the reason is logged.
fn check_policy(ctx: &RunContext) -> Result<(), RunnerError> {
    let recipe = ctx.recipe.name.as_str();
    let stack = cold_stack_name(recipe, ctx.tested_name(), &ctx.build);
    let domain = format!("{stack}.{DEFAULT_DOMAIN_SUFFIX}");
    let env = plan::app_env(&stack, &domain, &BTreeMap::new());
    match DeployPlan::load(&ctx.checkout, &stack, &env, ctx.recipe.deploy_timeout_secs) {
        Ok((_, plan)) => plan
            .permit(&ctx.recipe.host_access)
            .map(|_| ())
            .map_err(|e| RunnerError::Other(e.to_string())),
        Err(e) => {
            tracing::info!(recipe, error = %e, "the deploy policy was not checked: canon cannot read the checkout as a plan; the harness runs");
            Ok(())
        }
    }
}

/// The results file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResultsFile {
    stages: Vec<StageResult>,
}

/// Returns the child for `script`: `sh -c <script>` in `cwd` with `env` added (the environment
/// policy of [`exec::child_environment`] applies), its output streamed to the step log.
pub fn shell_command(script: &str, cwd: &Path, env: &BTreeMap<String, String>) -> Cmd {
    let mut cmd = Cmd::new("sh", ["-c", script]);
    // The operator's harness runs the recipe's code: it starts from an allow-list (no credential
    // of canon's, no `*_FILE` path), with the run's `CANON_*` and the `env` setting's variables.
    cmd.inherit = exec::Inherit::Harness;
    cmd.cwd = Some(cwd.to_path_buf());
    cmd.env = env.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    cmd.output = OutputMode::Stream;
    cmd
}

/// Reads and checks a results file: the shape, no stage twice.
pub fn read_results(path: &Path) -> Result<Vec<StageResult>, RunnerError> {
    let fail = |message: String| RunnerError::Results {
        path: path.to_path_buf(),
        message,
    };
    let bytes =
        match canon_shared::bounded_read::read(path, canon_shared::bounded_read::RECORD_FILE) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(fail(
                    "the harness did not write it (missing results make the run red)".into(),
                ))
            }
            Err(e) => return Err(fail(format!("cannot read it: {e}"))),
        };
    let file: ResultsFile = serde_json::from_slice(&bytes).map_err(|e| {
        fail(format!(
            "not a valid results file: {e} (stages are install, upgrade, backup, restore, custom; statuses passed, failed, skipped)"
        ))
    })?;
    let mut seen = Vec::new();
    for s in &file.stages {
        if seen.contains(&s.name) {
            return Err(fail(format!("stage {} is listed twice", s.name)));
        }
        if !(s.seconds.is_finite() && s.seconds >= 0.0) {
            return Err(fail(format!(
                "stage {} has an invalid duration {}",
                s.name, s.seconds
            )));
        }
        seen.push(s.name);
    }
    Ok(file.stages)
}

impl CommandRunner {
    /// Runs `script` to completion or until the timeout, streaming its output to the log.
    fn exec(
        &self,
        what: &str,
        script: &str,
        cwd: &Path,
        env: &BTreeMap<String, String>,
    ) -> Result<exec::Output, RunnerError> {
        exec::run(&shell_command(script, cwd, env), self.timeout).map_err(|e| match e {
            ProcessError::Timeout { seconds, .. } => RunnerError::Timeout {
                what: format!("{what} `{script}`"),
                seconds,
            },
            other => other.into(),
        })
    }
}

impl Runner for CommandRunner {
    fn name(&self) -> &'static str {
        "command"
    }

    fn run(&self, ctx: &RunContext) -> Result<RunOutput, RunnerError> {
        check_policy(ctx)?;
        // A warm run: canon copies the warm canonical's volumes; the harness deploys over the
        // copies (CANON_WARM_VOLUMES) and they go when the run ends.
        let copies = match &ctx.warm {
            Some(warm) => Some((warm, WarmCopies::make(ctx, warm)?)),
            None => None,
        };
        let mut env = ctx.env.clone();
        if let Some((_, made)) = &copies {
            let names: Vec<&str> = made.copies.iter().map(|c| c.to.as_str()).collect();
            env.insert("CANON_WARM_VOLUMES".into(), names.join(","));
        }
        let stages = self.run_harness(ctx, env)?;
        Ok(RunOutput {
            stages,
            warm: copies.map(|(warm, made)| WarmReport::new(warm, made.copies.clone())),
            // The harness climbs its own ladder: what its restore proved is its own word.
            restore_proof: None,
        })
    }

    fn warm_volumes(
        &self,
        recipe: &canon_shared::recipe::RecipeName,
    ) -> Result<Vec<String>, String> {
        // A harness that keeps its warm canonical as the docker runner does (`warm-<recipe>_*`
        // volumes on this engine) gets copies of them.
        warm_volumes(recipe)
    }

    fn keeps_warm_data(&self) -> Result<(), String> {
        match self.promote_command {
            Some(_) => Ok(()),
            None => Err(
                "the command runner keeps warm data only through its `promote_command`, and none is set"
                    .into(),
            ),
        }
    }

    fn promote(&self, ctx: &RunContext) -> Result<(), RunnerError> {
        let Some(script) = &self.promote_command else {
            return Ok(());
        };
        let mut env = ctx.env.clone();
        env.insert("CANON_PROMOTE".into(), "1".into());
        let out = self.exec("the promote command", script, &ctx.checkout, &env)?;
        if out.success() {
            Ok(())
        } else {
            Err(RunnerError::Exit {
                command: script.clone(),
                status: out.status.to_string(),
            })
        }
    }
}

impl CommandRunner {
    /// Runs the harness with `env` and reads its results file.
    fn run_harness(
        &self,
        ctx: &RunContext,
        mut env: BTreeMap<String, String>,
    ) -> Result<Vec<StageResult>, RunnerError> {
        let results = ctx.run_dir.join(RESULTS_FILE);
        if let Err(e) = std::fs::remove_file(&results) {
            if e.kind() != std::io::ErrorKind::NotFound {
                return Err(RunnerError::Results {
                    path: results,
                    message: format!("cannot clear an old results file: {e}"),
                });
            }
        }
        env.insert("CANON_RESULTS".into(), path_text(&results));
        let out = self.exec("the harness", &self.command, &ctx.checkout, &env)?;
        let stages = read_results(&results);
        if !out.success() {
            let error = RunnerError::Exit {
                command: self.command.clone(),
                status: out.status.to_string(),
            };
            return Err(match stages {
                Ok(stages) => RunnerError::WithStages {
                    stages,
                    error: Box::new(error),
                },
                Err(_) => error,
            });
        }
        stages
    }
}

/// Returns a path as text for an environment variable.
fn path_text(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use canon_shared::gate::StageStatus;
    use canon_shared::recipe::Stage;

    #[test]
    fn the_shell_command_is_built_as_data() {
        let env = BTreeMap::from([("CANON_TAG".to_string(), "1.0.0+1".to_string())]);
        let shell = shell_command("./harness.sh --all", Path::new("/w/checkout"), &env);
        assert_eq!(shell.output, OutputMode::Stream);
        let cmd = exec::command(&shell);
        assert_eq!(cmd.get_program(), "sh");
        let args: Vec<_> = cmd.get_args().collect();
        assert_eq!(args, ["-c", "./harness.sh --all"]);
        assert_eq!(cmd.get_current_dir(), Some(Path::new("/w/checkout")));
        assert_eq!(shell.inherit, exec::Inherit::Harness);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&("CANON_TAG".as_ref(), Some("1.0.0+1".as_ref()))));
        for (name, _) in envs {
            let name = name.to_string_lossy();
            assert!(!canon_shared::process_env::is_credential(&name), "{name}");
        }
    }

    fn results(text: &str) -> Result<Vec<StageResult>, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        std::fs::write(&path, text).unwrap();
        read_results(&path).map_err(|e| e.to_string())
    }

    #[test]
    fn results_files_are_read_strictly() {
        let ok = results(
            r#"{"stages":[{"name":"install","status":"passed","reason":null,"seconds":41.2},{"name":"upgrade","status":"skipped","reason":"no canonical"}]}"#,
        )
        .unwrap();
        assert_eq!(ok[0].name, Stage::Install);
        assert_eq!(ok[1].status, StageStatus::Skipped);
        assert_eq!(ok[1].seconds, 0.0);
        for (text, want) in [
            (
                r#"{"stages":[{"name":"deploy","status":"passed"}]}"#,
                "unknown variant `deploy`",
            ),
            (
                r#"{"stages":[{"name":"install","status":"ok"}]}"#,
                "unknown variant `ok`",
            ),
            (r#"{"stage":[]}"#, "unknown field `stage`"),
            ("not json", "not a valid results file"),
            (
                r#"{"stages":[{"name":"install","status":"passed"},{"name":"install","status":"failed"}]}"#,
                "listed twice",
            ),
            (
                r#"{"stages":[{"name":"install","status":"passed","seconds":-1}]}"#,
                "invalid duration",
            ),
            (
                r#"{"stages":[{"name":"install","status":"passed","extra":1}]}"#,
                "unknown field `extra`",
            ),
        ] {
            let err = results(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
        }
        let err = read_results(Path::new("/nonexistent/results.json")).unwrap_err();
        assert!(err.to_string().contains("did not write it"), "{err}");
    }
}
