//! The bottom layer: running child processes. Everything above it (the runners, the Docker
//! engine access) describes a child as data and hands it here; nothing here knows about settings,
//! recipes or runners, so it takes what it needs as values (the command, its deadline, the
//! variables a child must not inherit).
//!
//! # Layout
//! - this file: [`ProcessError`], why a child could not be run to the end.
//! - [`exec`]: the one child-process executor: deadline, process-group kill, both pipes drained,
//!   secret arguments masked in logs, and the one policy for a child's environment.
//! - [`transcript`]: the recent commands of a run and the tail of their output, printed with a
//!   failed stage so a red run is explained without DEBUG.

pub mod exec;
pub mod transcript;

use std::path::PathBuf;

/// Why a child process could not be run, or ended badly.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The program could not be started (not installed, not executable).
    #[error("could not start `{program}`: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// The child exited non-zero (only from [`exec::run_ok`] and [`exec::exit_error`]).
    #[error("`{command}` exited with {status}")]
    Exit {
        /// The command line as logged (secrets masked).
        command: String,
        /// The exit status and the tail of its standard error.
        status: String,
    },
    /// The child outlived its deadline and was killed with its process group.
    #[error("timed out after {seconds}s: {what}")]
    Timeout {
        /// The command line as logged (secrets masked).
        what: String,
        /// The deadline.
        seconds: u64,
    },
    /// A file the child reads or writes could not be opened.
    #[error("could not {action} {}: {source}", path.display())]
    File {
        /// `create` or `open`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("waiting for `{command}`: {source}")]
    Wait {
        /// The command line as logged (secrets masked).
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}
