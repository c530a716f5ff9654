//! `canon-plugin canonical`: show, pin and unpin one recipe's canonical.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use canon_shared::mirror::Credentials;
use canon_shared::recipe::RecipeName;
use canon_shared::secret::Secret;
use canon_shared::state::{self, LockWait, StateDir, StateStore};
use clap::{Args as ClapArgs, Subcommand};

/// Where and which recipe.
#[derive(Debug, ClapArgs)]
pub struct Target {
    /// The state directory (with a state repository: this host's clone and locks).
    #[arg(long, env = "CANON_STATE_DIR", default_value = "./canon-state")]
    pub state_dir: PathBuf,
    /// A git state repository holding the canonical records instead of the state dir.
    #[arg(long, env = "CANON_STATE_REPO")]
    pub state_repo: Option<String>,
    /// A file holding the token for the state repository over HTTPS (the mirror token).
    #[arg(long, env = "PLUGIN_MIRROR_TOKEN_FILE")]
    pub mirror_token_file: Option<PathBuf>,
    /// A private key file for a state repository over SSH.
    #[arg(long, env = "PLUGIN_SSH_KEY_FILE")]
    pub ssh_key_file: Option<PathBuf>,
    /// The recipe.
    #[arg(long)]
    pub recipe: RecipeName,
}

impl Target {
    /// Opens the store the records are in.
    fn store(&self) -> Result<Box<dyn StateStore>, String> {
        let Some(url) = &self.state_repo else {
            return Ok(Box::new(StateDir::new(&self.state_dir)));
        };
        let token = match &self.mirror_token_file {
            Some(path) => Some(Secret::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read {}: {e}", path.display()))?
                    .trim(),
            )),
            None => None,
        };
        let credentials = Credentials {
            mirror_token: token,
            ssh_key: self.ssh_key_file.clone(),
            ..Credentials::default()
        };
        Ok(state::open_store(
            &self.state_dir,
            Some(credentials.mirror_remote(url)),
        ))
    }
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
    let target = match &cmd {
        CanonicalCommand::Show(t) => t,
        CanonicalCommand::Pin { target, .. } | CanonicalCommand::Unpin { target, .. } => target,
    };
    let store = match target.store() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(crate::exit::EXIT_USAGE);
        }
    };
    let result = match &cmd {
        CanonicalCommand::Show(t) => store.read_canonical(&t.recipe),
        CanonicalCommand::Pin { target, reason, by } => {
            state::pin(store.as_ref(), &target.recipe, reason, by, wait).map(Some)
        }
        CanonicalCommand::Unpin { target, reason, by } => {
            state::unpin(store.as_ref(), &target.recipe, reason, by, wait).map(Some)
        }
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
