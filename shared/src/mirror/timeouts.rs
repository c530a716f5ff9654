//! libgit2's network timeouts. libgit2 has no per-call deadline: its server connect and read
//! timeouts are process-wide options, and unset they are infinite, so a remote that accepts a
//! connection and never answers would hold its recipe (and a worker) forever. They are set once,
//! before the first network call, to [`DEFAULT_CONNECT`] and [`DEFAULT_READ`] unless a binary
//! chose others with [`set_network_timeouts`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::MirrorError;

/// How long connecting to a git server may take by default.
pub const DEFAULT_CONNECT: Duration = Duration::from_secs(30);
/// How long a git server may send nothing by default.
pub const DEFAULT_READ: Duration = Duration::from_secs(60);

static SET: AtomicBool = AtomicBool::new(false);

/// Sets libgit2's connect and read timeouts for every later network call of this process.
pub fn set_network_timeouts(connect: Duration, read: Duration) -> Result<(), MirrorError> {
    SET.store(true, Ordering::SeqCst);
    apply(connect, read)
}

/// Applies the defaults unless [`set_network_timeouts`] ran; called before each network call.
pub(super) fn ensure_network_timeouts() -> Result<(), MirrorError> {
    if SET.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    apply(DEFAULT_CONNECT, DEFAULT_READ)
}

fn apply(connect: Duration, read: Duration) -> Result<(), MirrorError> {
    let millis = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX).max(1);
    let failed = |e: git2::Error| MirrorError::Setup {
        message: format!("cannot set libgit2's network timeouts: {}", e.message()),
    };
    // SAFETY: these write two integers in libgit2's global settings, which its transports read
    // when they open a connection; the git2 functions are unsafe only because the write is not
    // synchronised with such reads, and a connection racing it gets either value, both valid.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(millis(connect)).map_err(failed)?;
        git2::opts::set_server_timeout_in_milliseconds(millis(read)).map_err(failed)?;
    }
    Ok(())
}
