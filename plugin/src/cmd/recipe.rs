//! `canon-plugin recipe plan`: the deploy plan of a recipe checkout, resolved without deploying,
//! by the same code the docker runner deploys with ([`crate::recipe::plan`]).
//!
//! The checkout is a folder (`--dir DIR`) or a release tag checked out from the enrolled
//! recipe's mirror (`--config FILE --recipe NAME --tag TAG`), as tag mode checks it out. With
//! `--config`, the enrollment's `deploy_timeout` applies as it does in a run; with `--tag`, the
//! version label must name the tag, as tag mode's release check demands.
//!
//! The plan shows the lint stage's findings too ([`crate::recipe::lint`], `"lint"` in the JSON),
//! for the enrolled recipe's name and `lint_skip` with `--config`, else for the folder's name.
//!
//! Exit 0 with the plan on stdout (text, or one JSON object with `--json`); 1 with the reason on
//! stderr wherever an install would fail before anything is deployed, and when a lint error
//! would make the run red (the plan is printed, the errors follow on stderr); 2 on bad usage.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canon_shared::mirror::Credentials;
use canon_shared::recipe::{Enrollment, RecipeName};
use clap::Subcommand;

use crate::checkout::{self, Want};
use crate::cmd::mirror_sync::Tokens;
use crate::exit::{EXIT_RED, EXIT_USAGE};
use crate::recipe::lint::{self, LintReport};
use crate::recipe::names::DEFAULT_DOMAIN_SUFFIX;
use crate::recipe::plan::{self, DeployPlan};
use crate::recipe::version;
use crate::settings::{RecipePlan, SubcommandFlags, Variables};

/// `recipe` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Print the deploy plan of a recipe checkout (version, compose files, timeout, secrets,
    /// backup) without deploying; exit 1 with the reason when an install would fail to plan.
    #[command(after_help = "Example:\n  canon-plugin recipe plan --dir ./custom-html --json")]
    Plan(PlanArgs),
}

/// Arguments of `recipe plan`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["dir", "tag"])))]
pub struct PlanArgs {
    /// A recipe checkout.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The enrollment file (with --recipe): the recipe's mirror, and its deploy_timeout.
    #[arg(long, requires = "recipe")]
    pub config: Option<PathBuf>,
    /// The enrolled recipe (with --config).
    #[arg(long, requires = "config")]
    pub recipe: Option<RecipeName>,
    /// The release tag: checked out from the recipe's mirror (without --dir), and the version
    /// label must name it. Mirror token: env PLUGIN_MIRROR_TOKEN.
    #[arg(long)]
    pub tag: Option<String>,
    /// The stack name the plan is resolved for (secret and volume names, labels).
    #[arg(long, default_value = "plan", value_parser = parse_stack)]
    pub stack: String,
    /// The SSH key file (`--ssh-key-file`) for an SSH mirror and the mirror token, from
    /// [`crate::settings::KNOWN_SETTINGS`].
    #[command(flatten)]
    pub settings: SubcommandFlags<RecipePlan>,
    /// The old name of `--ssh-key-file`, read until the next release with a warning (`--ssh-key`
    /// is the key itself in `run` and `sweep`).
    #[arg(long = "ssh-key", value_name = "PATH", hide = true)]
    pub old_ssh_key: Option<PathBuf>,
    /// An OpenSSH known_hosts file for an SSH mirror (default: `~/.ssh/known_hosts`).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// Print the plan as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Accepts a stack name docker takes: lowercase letters, digits, `-` and `_`, starting with a
/// letter or digit, at most 50 characters.
fn parse_stack(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 50
        && text.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(text.to_string())
    } else {
        Err("a stack name is 1 to 50 lowercase letters, digits, `-` or `_`, starting with a letter or digit".into())
    }
}

/// Why there is no plan: bad usage (exit 2) or a plan that fails (exit 1).
enum Failure {
    Usage(String),
    Red(String),
}

/// Runs a `recipe` subcommand; its settings not given as flags come from `vars`.
pub fn main(cmd: RecipeCommand, vars: &Variables) -> ExitCode {
    let RecipeCommand::Plan(args) = cmd;
    let tokens = Tokens::from_values(&args.settings.read(vars), args.old_ssh_key.as_deref());
    match plan(&args, &tokens) {
        Ok((plan, lint)) => {
            let text = if args.json {
                let mut json = plan.to_json();
                json["lint"] = lint.to_json();
                json["lint_skipped"] = serde_json::json!(lint.skipped);
                format!("{json}\n")
            } else {
                format!("{plan}{}", lint_text(&lint))
            };
            let mut out = canon_shared::console::stdout();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) if lint.passed() => ExitCode::SUCCESS,
                Ok(()) => {
                    for f in lint.errors() {
                        eprintln!("error: lint: {f}");
                    }
                    ExitCode::from(EXIT_RED)
                }
                Err(e) => {
                    canon_shared::errln!("error: cannot write the plan: {e}");
                    ExitCode::from(EXIT_RED)
                }
            }
        }
        Err(Failure::Usage(why)) => {
            canon_shared::errln!("error: {why}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Red(why)) => {
            canon_shared::errln!("error: {why}");
            ExitCode::from(EXIT_RED)
        }
    }
}

/// Returns the lint's lines of the text plan: each finding, then the rules turned off.
fn lint_text(lint: &LintReport) -> String {
    let mut text = String::new();
    if lint.findings.is_empty() {
        text.push_str("lint:           no findings\n");
    }
    for (i, f) in lint.findings.iter().enumerate() {
        let head = if i == 0 {
            "lint:           "
        } else {
            "                "
        };
        text.push_str(&format!("{head}{f}\n"));
    }
    if let Some(note) = lint.skipped_note() {
        text.push_str(&format!("                {note}\n"));
    }
    text
}

/// Returns the plan `args` ask for and the lint of its checkout.
fn plan(args: &PlanArgs, tokens: &Tokens) -> Result<(DeployPlan, LintReport), Failure> {
    let mut forges = canon_shared::recipe::Forges::default();
    let recipe = match (&args.config, &args.recipe) {
        (Some(path), Some(name)) => {
            let enrollment =
                Enrollment::load(path).map_err(|e| Failure::Usage(crate::exit::error_chain(&e)))?;
            let recipe = enrollment.get(name).cloned().ok_or_else(|| {
                Failure::Usage(format!(
                    "recipe `{name}` is not enrolled in {}",
                    path.display()
                ))
            })?;
            forges = enrollment.token_bases();
            Some(recipe)
        }
        _ => None,
    };
    let _temp;
    let dir: PathBuf = match (&args.dir, &args.tag, &recipe) {
        (Some(dir), _, _) => dir.clone(),
        (None, Some(tag), Some(recipe)) => {
            let temp = tempfile::Builder::new()
                .prefix("canon-plan-")
                .tempdir()
                .map_err(|e| Failure::Red(format!("cannot create a temporary folder: {e}")))?;
            let credentials = Credentials {
                upstream_token: None,
                mirror_token: tokens.mirror.clone(),
                ssh_key: tokens.ssh_key_file.clone(),
                known_hosts: args.known_hosts.clone(),
                mirror_base: forges.mirror.clone(),
                ..Credentials::default()
            };
            let want = Want::Ref {
                reference: format!("refs/tags/{tag}"),
                commit: None,
            };
            let dest = temp.path().join("checkout");
            checkout::fresh_checkout(&credentials.mirror(recipe), &want, &dest)
                .map_err(|e| Failure::Red(crate::exit::error_chain(&e)))?;
            _temp = temp;
            dest
        }
        (None, _, _) => {
            return Err(Failure::Usage(
                "give --dir DIR, or --config FILE --recipe NAME --tag TAG to check the tag out of the recipe's mirror".into(),
            ))
        }
    };
    let plan = plan_dir(
        &dir,
        &args.stack,
        args.tag.as_deref(),
        recipe.as_ref().and_then(|r| r.deploy_timeout_secs),
        recipe
            .as_ref()
            .map(|r| r.host_access.as_slice())
            .unwrap_or(&[]),
    )
    .map_err(Failure::Red)?;
    let name = match &recipe {
        Some(r) => r.name.as_str().to_string(),
        None => dir
            .canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().to_string()))
            .unwrap_or_else(|| "recipe".to_string()),
    };
    let skip = recipe.map(|r| r.lint_skip).unwrap_or_default();
    Ok((plan, lint::lint(&dir, &name, &skip)))
}

/// Returns the plan of the checkout `dir` for `stack`, with the release check against `tag`.
fn plan_dir(
    dir: &Path,
    stack: &str,
    tag: Option<&str>,
    enrollment_timeout: Option<u64>,
    host_access: &[String],
) -> Result<DeployPlan, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    if let Some(tag) = tag {
        version::check_release(dir, tag).map_err(|e| e.to_string())?;
    }
    let domain = format!("{stack}.{DEFAULT_DOMAIN_SUFFIX}");
    let env = plan::app_env(stack, &domain, &BTreeMap::new());
    let (_, plan) =
        DeployPlan::load(dir, stack, &env, enrollment_timeout).map_err(|e| e.to_string())?;
    let plan = plan.permit(host_access).map_err(|e| e.to_string())?;
    match plan.version.as_deref().map(str::trim) {
        None => {
            return Err(format!(
                "no service carries the label coop-cloud.{stack}.version (a release names its version there)"
            ))
        }
        Some("") => {
            return Err(format!(
                "the label coop-cloud.{stack}.version is empty (a release names its version there)"
            ))
        }
        Some(_) => {}
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_names_are_what_docker_takes() {
        for ok in ["plan", "cold-x_1", "9a"] {
            assert_eq!(parse_stack(ok).as_deref(), Ok(ok));
        }
        for bad in ["", "Plan", "-x", "a b", "a.b", &"x".repeat(51)] {
            assert!(parse_stack(bad).is_err(), "{bad}");
        }
    }
}
