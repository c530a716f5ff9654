//! Subcommand glue: each file parses one subcommand's arguments and hands over to the domain code.
//! `run` and `sweep` carry the settings as flags; [`crate::cli`] validates them and picks the mode.
//!
//! - [`versions`]: `versions sort|latest|check`, release-tag tools for people and checks.
//! - [`canonical`]: `canonical show|pin|unpin|badge|rewarm`, the state of one recipe's canonical
//!   and its warm data.
//! - [`mirror_sync`]: `mirror-sync`, one repo pair or every enrolled recipe.
//! - [`recipe`]: `recipe plan`, the deploy plan of a recipe checkout, without deploying.
//! - [`state`]: `state export`, a state dir's records in the state repository layout.
//! - [`run`]: `run`, tag mode from the command line.
//! - [`sweep`]: `sweep`, the weekly sweep from the command line.
//! - [`check`]: `check`, a configuration checked offline before it is deployed.

use std::path::Path;

pub mod canonical;
pub mod check;
pub mod mirror_sync;
pub mod recipe;
pub mod run;
pub mod state;
pub mod sweep;
pub mod versions;

/// Returns an error naming `dir` when the state directory does not exist: every command but the
/// first promote (`--init`) refuses to start over an empty state a mistyped path would give.
pub fn require_state_dir(dir: &Path) -> Result<(), String> {
    if dir.is_dir() {
        return Ok(());
    }
    Err(format!(
        "state directory {} does not exist (a mistyped --state-dir or CANON_STATE_DIR?); the \
         first promote on a host creates it with --init (PLUGIN_INIT_STATE=true)",
        dir.display()
    ))
}
