//! `canon-plugin recipe plan`: the deploy plan of a recipe checkout, resolved without deploying,
//! by the same code the docker runner deploys with ([`crate::recipe::plan`]).
//!
//! The checkout is a folder (`--dir DIR`) or a release tag checked out from the enrolled
//! recipe's mirror (`--config FILE --recipe NAME --tag TAG`), as tag mode checks it out. With
//! `--config`, the enrollment's `deploy_timeout` applies as it does in a run; with `--tag`, the
//! version label must name the tag, as tag mode's release check demands.
//!
//! Exit 0 with the plan on stdout (text, or one JSON object with `--json`); 1 with the reason on
//! stderr wherever an install would fail before anything is deployed; 2 on bad usage.

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
use crate::recipe::names::DEFAULT_DOMAIN_SUFFIX;
use crate::recipe::plan::{self, DeployPlan};
use crate::recipe::version;

/// `recipe` subcommands.
#[derive(Debug, Subcommand)]
pub enum RecipeCommand {
    /// Print the deploy plan of a recipe checkout (version, compose files, timeout, secrets,
    /// backup) without deploying; exit 1 with the reason when an install would fail to plan.
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
    /// label must name it. Mirror token: env CANON_MIRROR_TOKEN.
    #[arg(long)]
    pub tag: Option<String>,
    /// The stack name the plan is resolved for (secret and volume names, labels).
    #[arg(long, default_value = "plan", value_parser = parse_stack)]
    pub stack: String,
    /// An SSH private key for an SSH mirror.
    #[arg(long)]
    pub ssh_key: Option<PathBuf>,
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

/// Runs a `recipe` subcommand.
pub fn main(cmd: RecipeCommand) -> ExitCode {
    let RecipeCommand::Plan(args) = cmd;
    let tokens = Tokens::from_vars(std::env::vars());
    match plan(&args, &tokens) {
        Ok(plan) => {
            let text = if args.json {
                format!("{}\n", plan.to_json())
            } else {
                plan.to_string()
            };
            let mut out = std::io::stdout().lock();
            match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: cannot write the plan: {e}");
                    ExitCode::from(EXIT_RED)
                }
            }
        }
        Err(Failure::Usage(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Red(why)) => {
            eprintln!("error: {why}");
            ExitCode::from(EXIT_RED)
        }
    }
}

/// Returns the plan `args` ask for.
fn plan(args: &PlanArgs, tokens: &Tokens) -> Result<DeployPlan, Failure> {
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
                ssh_key: args.ssh_key.clone(),
                known_hosts: args.known_hosts.clone(),
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
    plan_dir(
        &dir,
        &args.stack,
        args.tag.as_deref(),
        recipe.as_ref().and_then(|r| r.deploy_timeout_secs),
        recipe
            .as_ref()
            .map(|r| r.host_access.as_slice())
            .unwrap_or(&[]),
    )
    .map_err(Failure::Red)
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
    if plan.version.is_none() {
        return Err(format!(
            "no service carries the label coop-cloud.{stack}.version (a release names its version there)"
        ));
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
