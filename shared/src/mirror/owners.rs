//! Repositories owned by another user. The listener and the plugin often run as different users
//! on one state dir (the plugin as root for the Docker socket, the listener as `canon`), so a
//! mirror cache one of them created is opened by the other. libgit2 refuses such a repository
//! ("not owned by current user", git's `safe.directory` rule) unless told otherwise; that rule
//! guards against hooks and filters planted in a shared folder, and libgit2 as canon uses it runs
//! neither. Who may write a state dir is decided by its group and mode instead (see
//! [`crate::state::shared_umask`]).

use std::sync::Once;

static ALLOWED: Once = Once::new();

/// Lets libgit2 open repositories owned by another user, for the rest of the process. Called
/// before each repository canon opens; a no-op after the first call.
pub(super) fn allow_other_owners() {
    ALLOWED.call_once(|| {
        // SAFETY: this writes one flag in libgit2's global settings, read when a repository is
        // opened; the write is unsynchronised with such reads, and either value is valid.
        if let Err(e) = unsafe { git2::opts::set_verify_owner_validation(false) } {
            tracing::warn!(error = %e.message(), "Cannot let libgit2 open repositories owned by another user.");
        }
    });
}
