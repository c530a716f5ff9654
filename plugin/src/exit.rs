//! Exit codes and error printing: the leaf every mode and subcommand uses, so none of them
//! imports another to say how it ended.
//!
//! Drone shows a non-zero exit as a failed step; 78 is its "success, skip the remaining steps".

use std::error::Error;

/// Green: promoted, nothing to promote, or a refused promotion (the log shows a banner).
pub const EXIT_GREEN: u8 = 0;
/// Red: a red run, a refused verification, a failed sync or an error.
pub const EXIT_RED: u8 = 1;
/// Bad settings or usage.
pub const EXIT_USAGE: u8 = 2;
/// Drone's "success, skip the remaining steps": the sweep's default when nothing needed doing.
pub const EXIT_IDLE: u8 = 78;

/// Prints an error and each of its sources as "caused by:" lines on stderr.
pub fn report_error(err: &dyn Error) {
    canon_shared::error_chain::print("error", err);
}

/// Returns an error and its sources as one line: `error: source: source`.
pub fn error_chain(err: &dyn Error) -> String {
    canon_shared::error_chain::one_line(err)
}
