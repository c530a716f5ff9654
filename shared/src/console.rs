//! The binaries' stdout and stderr: a reader that goes away (`canon-plugin sweep | head -1`)
//! never makes a command panic, as `println!` does on a closed pipe.
//!
//! Every line a command prints goes through [`stdout`] or [`stderr`] (or the [`outln!`] and
//! [`errln!`] macros). The first write that meets a closed pipe marks the output closed; later
//! lines are dropped, and the command finishes what it was doing: a run still tears its stacks
//! down and writes its history, a sync still completes. [`finish`] then ends the process as a Unix
//! tool killed by SIGPIPE ends (a shell sees status 141, `set -o pipefail` sees a failure, as with
//! `cat` or `grep`), so a script cannot mistake output nobody read for a result.
//!
//! Any other write error (a full disk under `> file`) is said once on stderr and turns a
//! successful exit into a failure.

use std::fmt;
use std::io::{self, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write met a closed pipe.
static PIPE_CLOSED: AtomicBool = AtomicBool::new(false);
/// Set once a write failed otherwise.
static WRITE_FAILED: AtomicBool = AtomicBool::new(false);

/// The status a shell reports for a process killed by SIGPIPE (128 + 13).
pub const SIGPIPE_STATUS: u8 = 141;

/// Which stream a [`Console`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

/// A writer on stdout or stderr that swallows a closed pipe (marking it for [`finish`]) and
/// records any other failure.
#[derive(Debug)]
pub struct Console {
    stream: Stream,
}

/// Returns a writer on stdout: a closed pipe is not an error to its caller.
pub fn stdout() -> Console {
    Console {
        stream: Stream::Out,
    }
}

/// Returns a writer on stderr: a closed pipe is not an error to its caller.
pub fn stderr() -> Console {
    Console {
        stream: Stream::Err,
    }
}

/// Returns whether a write met a closed pipe.
pub fn pipe_closed() -> bool {
    PIPE_CLOSED.load(Ordering::Relaxed)
}

impl Console {
    /// Writes `bytes` in full and flushes; a closed pipe drops them.
    fn put(&self, bytes: &[u8]) -> io::Result<()> {
        if pipe_closed() {
            return Ok(());
        }
        let result = match self.stream {
            Stream::Out => {
                let mut out = io::stdout().lock();
                out.write_all(bytes).and_then(|()| out.flush())
            }
            Stream::Err => io::stderr().lock().write_all(bytes),
        };
        match result {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                PIPE_CLOSED.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                WRITE_FAILED.store(true, Ordering::Relaxed);
                Err(e)
            }
            Ok(()) => Ok(()),
        }
    }

    /// Writes one line; a failure other than a closed pipe is said on stderr (when it is stdout
    /// that failed) and remembered for [`finish`].
    pub fn line(&self, args: fmt::Arguments<'_>) {
        let mut text = args.to_string();
        text.push('\n');
        if let Err(e) = self.put(text.as_bytes()) {
            if self.stream == Stream::Out {
                stderr().line(format_args!("error: cannot write to stdout: {e}"));
            }
        }
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf).map(|()| buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Prints a line on stdout through [`stdout`]: never panics.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::console::stdout().line(format_args!($($arg)*))
    };
}

/// Prints a line on stderr through [`stderr`]: never panics.
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::console::stderr().line(format_args!($($arg)*))
    };
}

/// Ends a command with `code`: as SIGPIPE would have ended it when a write met a closed pipe,
/// with 1 instead of 0 when a write failed otherwise, else with `code`.
pub fn finish(code: ExitCode) -> ExitCode {
    if pipe_closed() {
        die_of_sigpipe();
        return ExitCode::from(SIGPIPE_STATUS);
    }
    if code == ExitCode::SUCCESS && WRITE_FAILED.load(Ordering::Relaxed) {
        return ExitCode::FAILURE;
    }
    code
}

/// Ends the process by SIGPIPE with its default action, as the kernel would have ended a tool
/// that did not ignore it (Rust's runtime ignores it so that sockets and children get `EPIPE`).
fn die_of_sigpipe() {
    // SAFETY: `signal` and `raise` touch only this process's signal disposition; restoring the
    // default action for SIGPIPE right before raising it ends the process, which is the point.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sigpipe_status_is_what_a_shell_reports_for_the_signal() {
        assert_eq!(i32::from(SIGPIPE_STATUS), 128 + libc::SIGPIPE);
    }
}
