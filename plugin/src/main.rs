//! The `canon-plugin` binary: parses the command line and hands over to [`canon_plugin::cli`].

use std::process::ExitCode;

fn main() -> ExitCode {
    // Before any thread starts: credentials leave the environment children inherit and
    // `/proc/<pid>/environ`; the settings read them from the copy kept in memory.
    canon_shared::process_env::protect();
    // SAFETY: umask only reads and sets this process's file creation mask; no thread runs yet.
    unsafe {
        let started_with = libc::umask(0o022);
        libc::umask(canon_shared::state::shared_umask(started_with as u32) as libc::mode_t);
    }
    canon_plugin::cli::main()
}
