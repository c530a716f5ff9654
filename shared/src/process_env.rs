//! canon's own process environment, and what of it a child may see.
//!
//! Both binaries call [`protect`] first thing in `main`, while the process has one thread: the
//! environment is read once into memory ([`variables`] serves it to the settings readers), every
//! credential variable ([`is_credential`]: a token, a secret, a key, or the path of a file that
//! holds one) is taken out of the live environment, so no child inherits it whatever starts it,
//! and its value is overwritten where the kernel placed it at `execve`, so
//! `/proc/<pid>/environ` (which shows that memory, not the live environment) no longer holds
//! it. Then the process marks itself non-dumpable, so a child without `CAP_SYS_PTRACE` cannot
//! read `/proc/$PPID/environ` or `/proc/$PPID/mem` at all.
//!
//! [`child_variable`] is the allow-list every child of canon starts from: the few variables a
//! tool needs (`PATH`, `HOME`, the locale, `DOCKER_*` for the docker CLI), never a credential.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::sync::OnceLock;

/// The environment as the process was started with it, credentials included; set by
/// [`protect`].
static STARTED_WITH: OnceLock<Vec<(OsString, OsString)>> = OnceLock::new();

/// Every variable of canon-plugin and canon-listener that holds a credential or the path of a
/// file holding one, plus Drone's clone credentials. [`is_credential`] also matches names of
/// the same shape that are not listed, so a new setting is withheld before it is listed here.
pub const CREDENTIAL_VARIABLES: &[&str] = &[
    // canon-plugin (current and earlier names).
    "PLUGIN_UPSTREAM_TOKEN",
    "PLUGIN_UPSTREAM_TOKEN_FILE",
    "CANON_UPSTREAM_TOKEN",
    "PLUGIN_MIRROR_TOKEN",
    "PLUGIN_MIRROR_TOKEN_FILE",
    "PLUGIN_SSH_KEY",
    "PLUGIN_SSH_KEY_FILE",
    "PLUGIN_DRONE_TOKEN",
    "PLUGIN_DRONE_TOKEN_FILE",
    "PLUGIN_LISTENER_TOKEN",
    "PLUGIN_LISTENER_TOKEN_FILE",
    // canon-listener.
    "CANON_WEBHOOK_SECRETS",
    "CANON_FORGE_TOKEN",
    "CANON_MIRROR_TOKEN",
    "CANON_SSH_KEY",
    "CANON_DRONE_TOKEN",
    "CANON_ADMIN_TOKEN",
    "CANON_DRONE_CONFIG_SECRET",
    // Drone's clone credentials, set in every step's environment.
    "DRONE_NETRC_USERNAME",
    "DRONE_NETRC_PASSWORD",
    "DRONE_NETRC_MACHINE",
];

/// The name endings of a credential of canon's own (`PLUGIN_*`, `CANON_*`).
const CREDENTIAL_ENDINGS: &[&str] = &[
    "_TOKEN",
    "_TOKEN_FILE",
    "_SECRET",
    "_SECRETS",
    "_SECRET_FILE",
    "_PASSWORD",
    "_PASSWORD_FILE",
    "_SSH_KEY",
    "_SSH_KEY_FILE",
];

/// Returns true when `name` holds a credential of canon's or the path of a file holding one.
pub fn is_credential(name: &str) -> bool {
    CREDENTIAL_VARIABLES.contains(&name)
        || name.starts_with("DRONE_NETRC_")
        || ((name.starts_with("PLUGIN_") || name.starts_with("CANON_"))
            && CREDENTIAL_ENDINGS.iter().any(|e| name.ends_with(e)))
}

/// The variables a child of canon may take from canon's own environment, besides every
/// `DOCKER_*` and `LC_*` (what the docker CLI reads): what a tool needs to run, never a setting of
/// canon's and never anything a recipe wrote.
pub const CHILD_VARIABLES: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TZ", "USER"];

/// Returns true when a child may inherit canon's variable `name` ([`CHILD_VARIABLES`],
/// `DOCKER_*`, `LC_*`), never a credential.
pub fn child_variable(name: &str) -> bool {
    (CHILD_VARIABLES.contains(&name) || name.starts_with("DOCKER_") || name.starts_with("LC_"))
        && !is_credential(name)
}

/// Returns the environment as the process was started with it (credentials included, for the
/// settings readers), or the live environment when [`protect`] was never called (tests).
/// Variables that are not UTF-8 are skipped.
pub fn variables() -> Vec<(String, String)> {
    let pairs: Vec<(OsString, OsString)> = match STARTED_WITH.get() {
        Some(v) => v.clone(),
        None => std::env::vars_os().collect(),
    };
    pairs
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect()
}

/// What [`protect`] did, for the binaries to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Protected {
    /// The credential variables taken out of the live environment, by name.
    pub withheld: Vec<String>,
    /// How many of them were overwritten in the memory `/proc/<pid>/environ` shows.
    pub scrubbed: usize,
    /// True when the process is now non-dumpable.
    pub non_dumpable: bool,
}

/// Keeps the environment in memory for [`variables`], takes every credential variable out of
/// the live environment, overwrites its value in the memory `/proc/<pid>/environ` shows, and
/// marks the process non-dumpable. Call it once, first thing in `main`, before any other thread
/// is started: it changes the process environment.
pub fn protect() -> Protected {
    let started: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let _ = STARTED_WITH.set(started.clone());
    let originals = original_credentials();
    let mut withheld = Vec::new();
    for (name, _) in &started {
        if let Some(text) = name.to_str().filter(|n| is_credential(n)) {
            std::env::remove_var(name);
            withheld.push(text.to_string());
        }
    }
    let mut scrubbed = 0;
    for (value, len) in originals {
        // SAFETY: `value` points at `len` bytes of one `NAME=VALUE` string the kernel placed
        // between `env_start` and `env_end` at `execve` (checked by `original_credentials`).
        // The variable was just removed from the live environment, so no pointer of `environ`
        // refers to it any more and nothing reads it; the process has one thread.
        unsafe { std::ptr::write_bytes(value, 0, len) };
        scrubbed += 1;
    }
    // SAFETY: prctl with PR_SET_DUMPABLE only sets a flag of this process.
    let non_dumpable = unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) } == 0;
    Protected {
        withheld,
        scrubbed,
        non_dumpable,
    }
}

extern "C" {
    static environ: *const *mut libc::c_char;
}

/// Returns the value of each credential variable still in the memory the kernel placed the
/// environment in at `execve` (start and length); a string `environ` no longer points into that
/// memory for is not touched.
fn original_credentials() -> Vec<(*mut u8, usize)> {
    let Some((start, end)) = environment_area() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    // SAFETY: `environ` is the C library's null-terminated array of `NAME=VALUE` C strings; it
    // is only read here, while the process has one thread.
    unsafe {
        let mut entry = environ;
        if entry.is_null() {
            return found;
        }
        while !(*entry).is_null() {
            let text = *entry;
            let at = text as usize;
            if at >= start && at < end {
                let bytes = std::ffi::CStr::from_ptr(text).to_bytes();
                if let Some(eq) = bytes.iter().position(|b| *b == b'=') {
                    let name = OsStr::from_bytes(&bytes[..eq]);
                    let len = bytes.len() - eq - 1;
                    if at + bytes.len() <= end
                        && len > 0
                        && name.to_str().is_some_and(is_credential)
                    {
                        found.push(((text as *mut u8).add(eq + 1), len));
                    }
                }
            }
            entry = entry.add(1);
        }
    }
    found
}

/// Returns `env_start` and `env_end` of this process (`/proc/self/stat` fields 50 and 51): the
/// memory `/proc/self/environ` shows.
fn environment_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) is in parentheses and may hold spaces; fields 3.. follow.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let start = fields.get(50 - 3)?.parse().ok()?;
    let end = fields.get(51 - 3)?.parse().ok()?;
    (start < end).then_some((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_of_both_binaries_and_their_files_are_recognised() {
        for name in CREDENTIAL_VARIABLES {
            assert!(is_credential(name), "{name}");
            assert!(!child_variable(name), "{name}");
        }
        for name in [
            "PLUGIN_SOME_NEW_TOKEN",
            "PLUGIN_SOME_NEW_TOKEN_FILE",
            "CANON_OTHER_SECRET",
            "DRONE_NETRC_ANYTHING",
        ] {
            assert!(is_credential(name), "{name}");
        }
        for name in [
            "PLUGIN_TAG",
            "CANON_TAG",
            "PATH",
            "DOCKER_HOST",
            "DRONE_TAG",
        ] {
            assert!(!is_credential(name), "{name}");
        }
    }

    #[test]
    fn a_child_keeps_only_what_tools_need() {
        for name in [
            "PATH",
            "HOME",
            "DOCKER_HOST",
            "DOCKER_CONFIG",
            "LC_CTYPE",
            "LANG",
        ] {
            assert!(child_variable(name), "{name}");
        }
        for name in [
            "LD_PRELOAD",
            "LD_LIBRARY_PATH",
            "GIT_SSH_COMMAND",
            "SSL_CERT_FILE",
            "PLUGIN_MIRROR_TOKEN",
            "DRONE_NETRC_PASSWORD",
            "SSH_AUTH_SOCK",
            "COMPOSE_FILE",
        ] {
            assert!(!child_variable(name), "{name}");
        }
    }

    #[test]
    fn the_environment_area_of_this_process_is_found() {
        let (start, end) = environment_area().expect("/proc/self/stat has env_start and env_end");
        assert!(start < end);
    }
}
