//! Offline checks of a configuration before it is deployed, shared by `canon-plugin check` and
//! `canon-listener check`: the enrollment reads, a credential file is a regular file only its
//! owner (canon's user or root) may read, and the state dir is a folder canon can write. Each
//! check returns the problems it found as sentences naming the setting and the path, so a
//! command can print every problem of a configuration at once.
//!
//! Separate from the settings parsers, which stop at what a value means: these look at the files
//! the values name, as the binaries would meet them at run time.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::recipe::Enrollment;

/// Returns the problem of the enrollment file `path` (given by `setting`), if it does not read.
pub fn enrollment(setting: &str, path: &Path) -> Option<String> {
    Enrollment::load(path)
        .err()
        .map(|e| format!("`{setting}`: {}", crate::error_chain::one_line(&e)))
}

/// Returns the problems of the credential file `path` (given by `setting`): not a regular file,
/// readable or writable by others, or owned by a user other than this process's or root (who
/// could then replace the credential).
pub fn credential_file(setting: &str, path: &Path) -> Vec<String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => return vec![format!("`{setting}`: cannot read {shown}: {e}")],
    };
    if !meta.is_file() {
        return vec![format!("`{setting}`: {shown} is not a regular file")];
    }
    let mut problems = Vec::new();
    if meta.mode() & 0o007 != 0 {
        problems.push(format!(
            "`{setting}`: {shown} is open to other users (mode {:04o}); `chmod o= {shown}`",
            meta.mode() & 0o7777
        ));
    }
    // SAFETY: geteuid only reads this process's effective user id.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        problems.push(format!(
            "`{setting}`: {shown} belongs to uid {}, neither this user (uid {me}) nor root: that user could replace the credential",
            meta.uid()
        ));
    }
    problems
}

/// Returns the problem of the state dir `path` (given by `setting`): missing (unless `created`
/// says the first run makes it), not a folder, a symbolic link, or not writable by this user.
pub fn state_dir(setting: &str, path: &Path, created: bool) -> Option<String> {
    let shown = path.display();
    match std::fs::symlink_metadata(path) {
        Err(_) if created => None,
        Err(e) => Some(format!(
            "`{setting}`: {shown} cannot be used: {e} (the first run creates it with --init)"
        )),
        Ok(m) if m.file_type().is_symlink() => Some(format!(
            "`{setting}`: {shown} is a symbolic link; give the folder itself"
        )),
        Ok(m) if !m.is_dir() => Some(format!("`{setting}`: {shown} is not a folder")),
        Ok(_) => {
            let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
            // SAFETY: access only reads the path given, a NUL-terminated string owned here.
            let writable = unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } == 0;
            (!writable).then(|| format!("`{setting}`: {shown} is not writable by this user"))
        }
    }
}

/// Prints `problems` (each once, in order) on stderr after a heading and returns 2, or prints
/// `ok` on stdout and returns 0: the exit code of a `check` subcommand.
pub fn finish(what: &str, problems: &[String]) -> u8 {
    let mut seen = std::collections::BTreeSet::new();
    let once: Vec<&String> = problems
        .iter()
        .filter(|p| seen.insert(p.as_str()))
        .collect();
    if once.is_empty() {
        crate::outln!("ok");
        return 0;
    }
    crate::errln!(
        "error: {what} has {} problem{}:",
        once.len(),
        if once.len() == 1 { "" } else { "s" }
    );
    for p in once {
        crate::errln!("  - {p}");
    }
    2
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_credential_file_open_to_others_or_not_a_file_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            credential_file("mirror_token_file", &token),
            Vec::<String>::new()
        );
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
        let p = credential_file("mirror_token_file", &token);
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("is open to other users (mode 0644)"), "{p:?}");
        let p = credential_file("ssh_key_file", dir.path());
        assert!(p[0].ends_with("is not a regular file"), "{p:?}");
        let p = credential_file("ssh_key_file", &dir.path().join("missing"));
        assert!(p[0].starts_with("`ssh_key_file`: cannot read"), "{p:?}");
    }

    #[test]
    fn a_state_dir_must_be_a_writable_folder_unless_the_first_run_creates_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(state_dir("state_dir", dir.path(), false), None);
        let missing = dir.path().join("nope");
        assert!(state_dir("state_dir", &missing, false)
            .unwrap()
            .contains("the first run creates it with --init"));
        assert_eq!(state_dir("state_dir", &missing, true), None);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link).unwrap();
        assert!(state_dir("state_dir", &link, false)
            .unwrap()
            .contains("is a symbolic link"));
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(state_dir("state_dir", &file, false)
            .unwrap()
            .ends_with("is not a folder"));
    }

    #[test]
    fn the_enrollment_problem_names_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.yml");
        std::fs::write(
            &path,
            "recipes:\n  - name: a\n    upstream: /u\n    mirror: /m\n    deploy_timeout: 5m\n",
        )
        .unwrap();
        let p = enrollment("config", &path).unwrap();
        assert!(p.starts_with("`config`: "), "{p}");
        assert!(p.contains("deploy_timeout"), "{p}");
    }
}
