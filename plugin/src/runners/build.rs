//! Builds the runner a run uses from the values the settings hold: which runner, the harness and
//! promote commands, the timeout.
//!
//! Separate from the runner interface ([`super`]) so that file names no concrete runner: this is
//! the one place that knows all three.

use std::time::Duration;

use super::abra::AbraRunner;
use super::command::CommandRunner;
use super::docker::DockerRunner;
use super::Runner;
use crate::settings::{RunnerKind, Settings, SettingsError};

/// Returns the runner of `kind`: the `command` runner with the harness command `command`, the
/// promote command and the `timeout` of each command, or the built-in `docker` or `abra` runner
/// (which take none of them).
pub fn build(
    kind: RunnerKind,
    command: Option<String>,
    promote_command: Option<String>,
    timeout: Duration,
) -> Box<dyn Runner> {
    match kind {
        RunnerKind::Command => Box::new(CommandRunner {
            command: command.unwrap_or_default(),
            promote_command,
            timeout,
        }),
        RunnerKind::Docker => Box::new(DockerRunner::default()),
        RunnerKind::Abra => Box::new(AbraRunner::default()),
    }
}

/// Returns the runner the settings name ([`build`] with their `runner`, `command`,
/// `promote_command` and `timeout` values).
pub fn from_settings(settings: &Settings) -> Result<Box<dyn Runner>, SettingsError> {
    Ok(build(
        settings.runner,
        settings.command.clone(),
        settings.promote_command.clone(),
        settings.timeout,
    ))
}
