//! `canon-plugin check`: a configuration checked offline before it is deployed, as a Drone step
//! or a CI step of the operator's own config repository would run it: every setting as the
//! step's mode reads it (the sweep's unless `mode` or Drone's event says otherwise), the
//! enrollment file, each credential file (a regular file, closed to other users, owned by this
//! user or root) and the state dir (a folder this user can write, unless the first run creates
//! it). Prints every problem at once and exits 2, or prints `ok` and exits 0. Nothing is
//! written, and no network or Docker is needed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use canon_shared::preflight;

use crate::settings::{Environment, Mode, ModeFlags, Settings, SweepMode, KNOWN_SETTINGS};

/// `canon-plugin check`: every plugin setting as a flag (flags win over `PLUGIN_*`).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Boxed: the settings are large next to the other subcommands' arguments.
    #[command(flatten)]
    pub settings: Box<ModeFlags<SweepMode>>,
}

/// Checks the configuration `args` and `env` give and returns the exit code (0 ok, 2 problems).
pub fn main(args: Args, env: &Environment) -> ExitCode {
    let flags = args.settings.into_raw();
    let raw = flags.clone().or(env.plugin.clone());
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // Relative paths are read as the step reads them: from Drone's workspace when there is one.
    let base = env
        .drone
        .drone_workspace
        .as_deref()
        .filter(|w| !w.trim().is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| cwd.clone());
    // Without a mode or a Drone event, the sweep's settings are checked: the configuration an
    // operator keeps is the weekly sweep's and the pipelines'.
    let given_mode = raw.get("mode").is_some()
        || env
            .drone
            .drone_build_event
            .as_deref()
            .is_some_and(|e| !e.trim().is_empty());
    let forced = (!given_mode).then_some(Mode::Sweep);
    let mut problems = Vec::new();
    let settings = match Settings::parse(env, Some(flags), forced, &cwd) {
        Ok(s) => Some(s),
        Err(e) => {
            problems.extend(e.problems);
            None
        }
    };
    problems.extend(files(&raw, &base, settings.as_ref()));
    ExitCode::from(preflight::finish("the configuration", &problems))
}

/// Returns the problems of the files the settings name: the enrollment, each credential file,
/// the state dir (once the settings parsed: its path depends on them).
fn files(
    raw: &crate::settings::RawSettings,
    base: &Path,
    settings: Option<&Settings>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(config) = raw.text("config") {
        problems.extend(preflight::enrollment("config", &base.join(config)));
    }
    // Every secret setting has a `<name>_file` twin in the table, the path of its credential.
    for secret in KNOWN_SETTINGS.iter().filter(|s| s.secret) {
        let name = format!("{}_file", secret.name);
        if let Some(file) = raw.text(&name) {
            problems.extend(preflight::credential_file(&name, &base.join(file)));
        }
    }
    if let Some(s) = settings {
        if s.state_repo.is_none() {
            problems.extend(preflight::state_dir(
                "state_dir",
                &s.state_dir,
                s.init_state,
            ));
        }
    }
    problems
}
