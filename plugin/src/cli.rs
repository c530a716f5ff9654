//! The command line: one subcommand per mode, and Drone's way in (no subcommand, settings from
//! `PLUGIN_*` and the mode from `DRONE_BUILD_EVENT`).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for bad settings or usage (Drone shows it as a failed step).
pub const EXIT_USAGE: u8 = 2;

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
    Versions(crate::versions_cmd::VersionsCommand),
    /// Show, pin or unpin a recipe's canonical.
    #[command(subcommand)]
    Canonical(crate::canonical_cmd::CanonicalCommand),
    /// Make mirrors equal to upstream for the branch and all tags.
    MirrorSync(crate::mirror_cmd::Args),
    /// Cold CI of one recipe at one tag (or ref), then the promote gate.
    Run(crate::run::Args),
    /// For every enrolled recipe, get the latest upstream release tested and promoted.
    Sweep(crate::sweep::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
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
        Some(Command::Versions(cmd)) => crate::versions_cmd::main(cmd),
        Some(Command::Canonical(cmd)) => crate::canonical_cmd::main(cmd),
        Some(Command::MirrorSync(args)) => crate::mirror_cmd::main(args),
        Some(Command::Run(args)) => crate::run::main(args),
        Some(Command::Sweep(args)) => crate::sweep::main(args),
        None => crate::run::drone_main(),
    }
}

/// Sends `tracing` events to stderr; `RUST_LOG` filters (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Prints an error and each of its sources as "caused by:" lines on stderr.
pub fn report_error(err: &dyn std::error::Error) {
    eprintln!("error: {err}");
    let mut source = err.source();
    while let Some(s) = source {
        eprintln!("  caused by: {s}");
        source = s.source();
    }
}
