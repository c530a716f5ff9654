//! Placeholder module; its mode is built in its own change.

use std::process::ExitCode;

/// Arguments (none yet).
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Reports that this mode is not available in this build.
pub fn main(_args: Args) -> ExitCode {
    eprintln!("error: this mode is not available in this build");
    ExitCode::from(crate::cli::EXIT_USAGE)
}
