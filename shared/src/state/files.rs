//! Opening files in a state dir so that the folder cannot be turned against its owner.
//!
//! A state dir is often shared: group-writable, used by the listener as one user and by the
//! plugin as root. Anyone in that group can plant a symbolic link (`history.jsonl` →
//! `/etc/shadow`) or a file of their own where canon expects one of its records. So every file
//! canon creates, appends to, locks or reads in a state dir is opened here:
//!
//! - never through a symbolic link (`O_NOFOLLOW`; a link already there is refused before the
//!   open, so the error says what it is);
//! - only when it is a regular file (a FIFO or a device is refused, never opened);
//! - only when it is owned by the user canon runs as, by root, or by the owner of the state dir
//!   (who could replace it anyway), and, when canon writes to it, has no other hard link.
//!
//! Each refusal is a [`StateError::Unsafe`] naming the path. The check is repeated on the open
//! file (`fstat`), so swapping the path between the check and the open gains nothing.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use super::StateError;

/// The owners a file in a folder may have: the user canon runs as, root and the folder's owner.
#[derive(Debug, Clone, Copy)]
pub struct Owners {
    me: u32,
    folder: Option<u32>,
}

impl Owners {
    /// Returns the owners trusted for files in `folder` (its owner is read through links: the
    /// operator may point the state dir itself anywhere).
    pub fn of(folder: &Path) -> Self {
        Self {
            // SAFETY: geteuid has no preconditions and cannot fail.
            me: unsafe { libc::geteuid() },
            folder: std::fs::metadata(folder).ok().map(|m| m.uid()),
        }
    }

    fn trusts(&self, uid: u32) -> bool {
        uid == self.me || uid == 0 || Some(uid) == self.folder
    }
}

fn unsafe_path(path: &Path, reason: String) -> StateError {
    StateError::Unsafe {
        path: path.to_path_buf(),
        reason,
    }
}

fn io_error(path: &Path, action: &'static str, source: io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// What canon does with a file: a file it writes to must have no other hard link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Write,
    Folder,
}

/// Checks what is at `path`, which canon is about to write to or replace, without following a
/// link: `Ok(false)` when nothing is, `Ok(true)` for a regular file canon may use, else the
/// refusal.
pub fn check_file(path: &Path, owners: Owners) -> Result<bool, StateError> {
    check_path(path, owners, Use::Write)
}

fn check_path(path: &Path, owners: Owners, to: Use) -> Result<bool, StateError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => check_meta(path, &meta, owners, to).map(|()| true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path, "inspect", e)),
    }
}

/// Checks that `path` is a real folder (not a link to one) owned by a trusted user.
pub fn check_dir(path: &Path, owners: Owners) -> Result<(), StateError> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| io_error(path, "inspect", e))?;
    check_meta(path, &meta, owners, Use::Folder)
}

fn check_meta(path: &Path, meta: &Metadata, owners: Owners, to: Use) -> Result<(), StateError> {
    let dir = to == Use::Folder;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(unsafe_path(
            path,
            "it is a symbolic link, and canon never follows one in the state dir".into(),
        ));
    }
    if dir && !kind.is_dir() {
        return Err(unsafe_path(path, "it is not a folder".into()));
    }
    if !dir && !kind.is_file() {
        return Err(unsafe_path(
            path,
            "it is not a regular file (a FIFO, a device or a folder)".into(),
        ));
    }
    if !owners.trusts(meta.uid()) {
        return Err(unsafe_path(
            path,
            format!(
                "it is owned by uid {}, not by canon's user (uid {}), root or the folder's owner",
                meta.uid(),
                owners.me
            ),
        ));
    }
    if to == Use::Write && meta.nlink() > 1 {
        return Err(unsafe_path(
            path,
            format!(
                "it has {} hard links; canon's records have one",
                meta.nlink()
            ),
        ));
    }
    Ok(())
}

/// Opens `path` with `options` after checking it, never through a link, and checks the open
/// file again. `Ok(None)` when it does not exist and `options` do not create it.
fn open_checked(
    path: &Path,
    options: &mut OpenOptions,
    owners: Owners,
    to: Use,
    action: &'static str,
) -> Result<Option<File>, StateError> {
    check_path(path, owners, to)?;
    // O_NONBLOCK: a FIFO swapped in after the check is not waited on (the fstat below refuses
    // it); it changes nothing for a regular file.
    let file = match options
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(unsafe_path(
                path,
                "it is a symbolic link, and canon never follows one in the state dir".into(),
            ))
        }
        Err(e) => return Err(io_error(path, action, e)),
    };
    let meta = file.metadata().map_err(|e| io_error(path, action, e))?;
    check_meta(path, &meta, owners, to)?;
    Ok(Some(file))
}

/// Opens `path` to read it; `Ok(None)` when it does not exist.
pub fn open_read(path: &Path, owners: Owners) -> Result<Option<File>, StateError> {
    open_checked(
        path,
        OpenOptions::new().read(true),
        owners,
        Use::Read,
        "open",
    )
}

/// Opens (creating) `path` to append to it.
pub fn open_append(path: &Path, owners: Owners) -> Result<File, StateError> {
    open_checked(
        path,
        OpenOptions::new().create(true).append(true),
        owners,
        Use::Write,
        "open for appending",
    )?
    .ok_or_else(|| io_error(path, "open for appending", io::ErrorKind::NotFound.into()))
}

/// Opens (creating, never truncating) the lock file at `path`.
pub fn open_lock(path: &Path, owners: Owners) -> Result<File, StateError> {
    open_checked(
        path,
        OpenOptions::new().create(true).truncate(false).write(true),
        owners,
        Use::Write,
        "open the lock file",
    )?
    .ok_or_else(|| io_error(path, "open the lock file", io::ErrorKind::NotFound.into()))
}

/// Reads the whole file at `path`, refusing one larger than `limit` bytes; `Ok(None)` when it
/// does not exist.
pub fn read(path: &Path, owners: Owners, limit: u64) -> Result<Option<Vec<u8>>, StateError> {
    let Some(file) = open_read(path, owners)? else {
        return Ok(None);
    };
    crate::bounded_read::read_from(file, limit)
        .map(Some)
        .map_err(|e| io_error(path, "read", e))
}
