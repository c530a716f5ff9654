//! The `canon-plugin` binary: parses the command line and hands over to [`canon_plugin::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    canon_plugin::cli::main()
}
