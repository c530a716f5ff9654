//! The command line and Drone's way in, in one place: one subcommand per mode, and with no
//! subcommand, Drone's plugin contract (settings from `PLUGIN_*`, the mode from the `mode`
//! setting or `DRONE_BUILD_EVENT`).
//!
//! Both tag mode and the sweep start here from validated [`Settings`]: this file is the only one
//! that reads the process environment for them and picks the mode. It reads it for `canonical`,
//! `state`, `mirror-sync` and `recipe plan` too ([`Variables`]), whose flags a variable can give.
//! Every flag a variable can give comes from the one settings table
//! ([`crate::settings::KNOWN_SETTINGS`]); `--help` of each subcommand shows its variables, its
//! defaults and one example.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;
use crate::exit::{report_error, EXIT_USAGE};
use crate::settings::{Environment, Mode, RawSettings, Settings, Variables};

/// canon-plugin: keeps the canonical of every enrolled Co-op Cloud recipe current.
#[derive(Debug, Parser)]
#[command(name = "canon-plugin", version = canon_shared::build_info::VERSION_LINE, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The modes.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Release-tag tools: sort, latest, check.
    #[command(subcommand)]
    Versions(cmd::versions::VersionsCommand),
    /// Show, pin or unpin a recipe's canonical, or write its badge.
    #[command(subcommand)]
    Canonical(cmd::canonical::CanonicalCommand),
    /// Move state between backends: export a state dir as a state repository's files.
    #[command(subcommand)]
    State(cmd::state::StateCommand),
    /// Make mirrors equal to upstream for the branch and all tags.
    #[command(
        after_help = "Example:\n  PLUGIN_MIRROR_TOKEN=… canon-plugin mirror-sync --config enrollment.yml --state-dir /var/lib/canon"
    )]
    MirrorSync(cmd::mirror_sync::Args),
    /// Recipe tools: the deploy plan of a checkout.
    #[command(subcommand)]
    Recipe(cmd::recipe::RecipeCommand),
    /// Cold CI of one recipe at one tag (or ref), then the promote gate. Exit 0 green (promoted,
    /// nothing to promote, or a refused promotion), 1 red, 2 bad settings.
    #[command(
        after_help = "Example:\n  canon-plugin run --config enrollment.yml --recipe custom-html --tag 1.2.0+3.4.5 --runner docker"
    )]
    Run(cmd::run::Args),
    /// For every enrolled recipe, get the latest upstream release tested and promoted. Exit 0
    /// (or `--idle-exit-code` when nothing needed doing), 1 when a recipe failed, 2 bad settings.
    #[command(
        after_help = "Example:\n  canon-plugin sweep --config enrollment.yml --inline --dry-run"
    )]
    Sweep(cmd::sweep::Args),
    /// Check a configuration offline (settings, enrollment, credential files, state dir) before
    /// deploying it: every problem at once with exit 2, or `ok` with exit 0. The sweep's settings
    /// unless `--mode` (or Drone's event) names another mode.
    #[command(after_help = "Example:
  PLUGIN_MIRROR_TOKEN_FILE=/run/secrets/mirror_token canon-plugin check --config /etc/canon/enrollment.yml --state-dir /var/lib/canon")]
    Check(cmd::check::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // A reader that stops early ends the command as SIGPIPE would, whatever it printed.
    canon_shared::console::finish(run_command())
}

/// Parses the command line and runs the command it names.
fn run_command() -> ExitCode {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Some(Command::Versions(cmd)) => cmd::versions::main(cmd),
        Some(Command::Canonical(cmd)) => cmd::canonical::main(cmd, &Variables::from_process()),
        Some(Command::MirrorSync(args)) => cmd::mirror_sync::main(args, &Variables::from_process()),
        Some(Command::State(cmd)) => cmd::state::main(cmd, &Variables::from_process()),
        Some(Command::Recipe(cmd)) => cmd::recipe::main(cmd, &Variables::from_process()),
        Some(Command::Run(args)) => {
            with_environment(|env| dispatch(env, Some(args.settings.into_raw()), Some(Mode::Tag)))
        }
        Some(Command::Sweep(args)) => {
            with_environment(|env| dispatch(env, Some(args.settings.into_raw()), Some(Mode::Sweep)))
        }
        Some(Command::Check(args)) => with_environment(|env| cmd::check::main(args, env)),
        None => with_environment(|env| dispatch(env, None, None)),
    }
}

/// Sends `tracing` events to stderr; `RUST_LOG` filters (default `info`: stages, waits, the
/// gate; `debug` adds every child command and its output). Colours only when stderr is a
/// terminal: a Drone step log or a file gets plain text.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

fn with_environment(f: impl FnOnce(&Environment) -> ExitCode) -> ExitCode {
    match Environment::from_process() {
        Ok(env) => f(&env),
        Err(e) => {
            report_error(&e);
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Validates the settings (flags win over `PLUGIN_*`) and runs the mode they pick: `forced` for
/// a subcommand, else the `mode` setting or `DRONE_BUILD_EVENT`. Returns the exit code.
pub fn dispatch(env: &Environment, cli: Option<RawSettings>, forced: Option<Mode>) -> ExitCode {
    for name in &env.unknown {
        tracing::warn!(setting = %name, "Unknown setting ignored (a typo?); see docs/reference/plugin-settings.md.");
    }
    for (old, new) in &env.renamed {
        tracing::warn!(variable = %old, instead = %new, "{old} is read until the next release only: set {new} instead.");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = match Settings::parse(env, cli, forced, &cwd) {
        Ok(s) => s,
        Err(e) => {
            canon_shared::errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for warning in &settings.warnings {
        tracing::warn!("{warning}.");
    }
    // With a state repository the state dir is this host's clone, made when missing; without
    // one it holds the records, and only a first run (`init_state`) may create it.
    if settings.state_repo.is_none() && !settings.init_state {
        if let Err(e) = cmd::require_state_dir(&settings.state_dir) {
            canon_shared::errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    }
    ExitCode::from(match settings.mode {
        Mode::Sweep => crate::sweep::main(&settings),
        Mode::Tag => crate::tag_mode::main(&settings),
    })
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;
    use crate::settings::{setting_doc, KNOWN_SETTINGS};

    /// Returns every subcommand of `cmd` with its path (`canonical pin`).
    fn subcommands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let sub_path = format!("{path} {}", sub.get_name()).trim().to_string();
            out.push((sub_path.clone(), sub.clone()));
            subcommands(sub, &sub_path, out);
        }
    }

    #[test]
    fn a_flag_name_means_one_setting_in_every_subcommand_and_the_table_gives_each() {
        let mut all = Vec::new();
        subcommands(&Cli::command(), "", &mut all);
        for (path, cmd) in &all {
            for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
                let Some(long) = arg.get_long() else {
                    continue;
                };
                let flag = format!("--{long}");
                // A shown flag that a setting of the table has is that setting, read by it.
                if let Some(s) = KNOWN_SETTINGS.iter().find(|s| s.flag == flag) {
                    assert_eq!(arg.get_id().as_str(), s.name, "`{path} {flag}`");
                    let reads = s
                        .used_by
                        .iter()
                        .any(|u| u.commands().contains(&path.as_str()) && s.has_flag_in(*u));
                    // Arguments that name the same thing as the setting but that no variable
                    // gives in that subcommand (`canonical show --recipe`, `mirror-sync --jobs`).
                    let argument_only = [
                        "config",
                        "recipe",
                        "tag",
                        "jobs",
                        "known_hosts",
                        "mirror_forge",
                    ];
                    assert!(
                        reads || argument_only.contains(&s.name),
                        "`{path} {flag}` is not built from the table"
                    );
                }
            }
        }
        for s in KNOWN_SETTINGS {
            for place in s.used_by {
                for path in place.commands() {
                    let (_, cmd) = all
                        .iter()
                        .find(|(p, _)| p == path)
                        .unwrap_or_else(|| panic!("no subcommand `{path}`"));
                    let found = cmd.get_arguments().any(|a| a.get_id().as_str() == s.name);
                    assert_eq!(
                        found,
                        s.has_flag_in(*place),
                        "`{path}` and {}: a flag exactly where the table gives one",
                        s.flag
                    );
                }
            }
        }
        // `--ssh-key` is the key itself; the path is `--ssh-key-file` everywhere.
        assert!(setting_doc("ssh_key").is_some_and(|s| s.secret));
    }
}
