//! `canon-plugin canonical`: show, pin and unpin one recipe's canonical.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use canon_shared::recipe::RecipeName;
use canon_shared::state::{self, LockWait, StateDir};
use clap::{Args as ClapArgs, Subcommand};

/// Where and which recipe.
#[derive(Debug, ClapArgs)]
pub struct Target {
    /// The state directory.
    #[arg(long, env = "CANON_STATE_DIR", default_value = "./canon-state")]
    pub state_dir: PathBuf,
    /// The recipe.
    #[arg(long)]
    pub recipe: RecipeName,
}

/// `canonical` subcommands.
#[derive(Debug, Subcommand)]
pub enum CanonicalCommand {
    /// Print the canonical record as JSON (exit 1 when there is none).
    Show(Target),
    /// Hold the canonical: nothing promotes the recipe until it is unpinned.
    Pin {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the canonical and the history).
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
    /// Release a pin.
    Unpin {
        #[command(flatten)]
        target: Target,
        /// Why (recorded in the history).
        #[arg(long)]
        reason: String,
        /// Who (default: $USER).
        #[arg(long, env = "USER", default_value = "unknown")]
        by: String,
    },
}

/// Runs a `canonical` subcommand.
pub fn main(cmd: CanonicalCommand) -> ExitCode {
    let wait = LockWait::Wait(Duration::from_secs(30));
    let result = match &cmd {
        CanonicalCommand::Show(t) => StateDir::new(&t.state_dir).read_canonical(&t.recipe),
        CanonicalCommand::Pin { target, reason, by } => state::pin(
            &StateDir::new(&target.state_dir),
            &target.recipe,
            reason,
            by,
            wait,
        )
        .map(Some),
        CanonicalCommand::Unpin { target, reason, by } => state::unpin(
            &StateDir::new(&target.state_dir),
            &target.recipe,
            reason,
            by,
            wait,
        )
        .map(Some),
    };
    match result {
        Ok(Some(record)) => {
            match serde_json::to_string_pretty(&record) {
                Ok(json) => println!("{json}"),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
            ExitCode::SUCCESS
        }
        Ok(None) => {
            eprintln!("no canonical yet");
            ExitCode::FAILURE
        }
        Err(e) => {
            crate::exit::report_error(&e);
            ExitCode::FAILURE
        }
    }
}
