//! The command line and Drone's way in, in one place: one subcommand per mode, and with no
//! subcommand, Drone's plugin contract (settings from `PLUGIN_*`, the mode from the `mode`
//! setting or `DRONE_BUILD_EVENT`).
//!
//! Both tag mode and the sweep start here from validated [`Settings`]: this file is the only one
//! that reads the process environment for them and picks the mode. It reads it for `canonical`,
//! `state` and `mirror-sync` too ([`Variables`]), whose flags a variable can give.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::cmd;
use crate::exit::{report_error, EXIT_USAGE};
use crate::settings::{Environment, Mode, RawSettings, Settings, Variables};

/// canon-plugin: keeps the canonical of every enrolled Co-op Cloud recipe current.
#[derive(Debug, Parser)]
#[command(name = "canon-plugin", version, about, long_about = None)]
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
    MirrorSync(cmd::mirror_sync::Args),
    /// Recipe tools: the deploy plan of a checkout.
    #[command(subcommand)]
    Recipe(cmd::recipe::RecipeCommand),
    /// Cold CI of one recipe at one tag (or ref), then the promote gate.
    Run(cmd::run::Args),
    /// For every enrolled recipe, get the latest upstream release tested and promoted.
    Sweep(cmd::sweep::Args),
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
        Some(Command::Recipe(cmd)) => cmd::recipe::main(cmd),
        Some(Command::Run(args)) => {
            with_environment(|env| dispatch(env, Some(*args.settings), Some(Mode::Tag)))
        }
        Some(Command::Sweep(args)) => {
            with_environment(|env| dispatch(env, Some(*args.settings), Some(Mode::Sweep)))
        }
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
        tracing::warn!(setting = %name, "Unknown setting ignored (a typo?); see the settings table in the README.");
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = match Settings::parse(env, cli, forced, &cwd) {
        Ok(s) => s,
        Err(e) => {
            canon_shared::errln!("error: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
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
