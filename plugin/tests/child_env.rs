//! What a child of `canon-plugin run` sees, with a sentinel in every credential variable of both
//! binaries: the command runner's harness, the abra runner's `abra` (a stub on `PATH`) and
//! the docker runner's `docker` (`engine::child_env_docker`) each find no sentinel in their own
//! environment nor in canon's (`/proc/$PPID/environ`).

use crate::support::Fixture;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use canon_testkit::git::hermetic;

/// The text every sentinel value and sentinel file path holds.
pub(crate) const SENTINEL: &str = "SENTINEL-c4n0n";

/// Returns the credential variables a run is given: every credential of both binaries, as a
/// value or (for the settings that have a `*_FILE` form and would refuse both) as a file whose
/// path and contents hold the sentinel.
pub(crate) fn sentinels(dir: &Path) -> Vec<(String, String)> {
    let secrets = dir.join(format!("{SENTINEL}-secrets"));
    std::fs::create_dir_all(&secrets).unwrap();
    let file = |name: &str| {
        let path = secrets.join(name);
        std::fs::write(&path, format!("{SENTINEL}-{name}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let mut vars: Vec<(String, String)> = [
        "PLUGIN_UPSTREAM_TOKEN",
        "CANON_MIRROR_TOKEN",
        "PLUGIN_LISTENER_TOKEN",
        "CANON_WEBHOOK_SECRETS",
        "CANON_FORGE_TOKEN",
        "CANON_DRONE_TOKEN",
        "CANON_ADMIN_TOKEN",
        "CANON_DRONE_CONFIG_SECRET",
        "CANON_SSH_KEY",
        "DRONE_NETRC_USERNAME",
        "DRONE_NETRC_PASSWORD",
        "DRONE_NETRC_MACHINE",
    ]
    .iter()
    .map(|n| (n.to_string(), format!("{SENTINEL}-{n}")))
    .collect();
    for name in ["PLUGIN_DRONE_TOKEN_FILE", "PLUGIN_SSH_KEY_FILE"] {
        vars.push((name.to_string(), file(name)));
    }
    vars
}

/// A stub program for `PATH` that records its arguments, its own environment and its parent's
/// (`/proc/$PPID/environ`, or `DENIED` when the parent is not readable) in `log`, then runs
/// `then` (shell text; `exit 1` when empty).
pub(crate) fn stub(bin: &Path, name: &str, log: &Path, then: &str) {
    std::fs::create_dir_all(bin).unwrap();
    let path = bin.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n{{ echo \"== {name} $*\"; env; echo '-- parent'; tr '\\0' '\\n' < /proc/$PPID/environ || echo DENIED; }} >> '{}' 2>&1\n{}\n",
            log.display(),
            if then.is_empty() { "exit 1" } else { then }
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// Runs `canon-plugin run` of `tag` with `extra` arguments, the sentinels, and `bin` first on
/// `PATH` when given.
pub(crate) fn run(f: &Fixture, tag: &str, extra: &[&str], bin: Option<&Path>) -> Output {
    let path = std::env::var("PATH").unwrap_or_default();
    let path = match bin {
        Some(b) => format!("{}:{path}", b.display()),
        None => path,
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    cmd.args([
        "run",
        "--config",
        f.enrollment.to_str().unwrap(),
        "--state-dir",
        f.state.to_str().unwrap(),
        "--init-state",
        "--recipe",
        "app",
        "--tag",
        tag,
        "--work-dir",
        f.runs.to_str().unwrap(),
    ])
    .args(extra)
    .current_dir(f.dir.path())
    .env_clear()
    .env("PATH", path)
    .env("HOME", f.dir.path())
    .env("RUST_LOG", "warn")
    .envs(sentinels(f.dir.path()))
    .stdin(Stdio::null());
    hermetic(&mut cmd);
    cmd.output().unwrap()
}

/// Asserts `log` was written (the child ran) and holds no sentinel.
pub(crate) fn no_sentinel(log: &Path, out: &Output) {
    let seen = std::fs::read_to_string(log).unwrap_or_else(|e| {
        panic!(
            "{} was not written ({e}): the child never ran\n{}",
            log.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(seen.contains("-- parent"), "{seen}");
    for line in seen.lines() {
        assert!(!line.contains(SENTINEL), "a child saw a credential: {line}");
    }
}

#[test]
fn the_command_runners_harness_finds_no_credential_in_its_env_nor_in_canons() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let log = f.dir.path().join("harness-env.log");
    // The command text itself (not a script it starts), so `$PPID` is canon.
    let harness = format!(
        "{{ echo \"== harness $CANON_TAG\"; env; echo '-- parent'; tr '\\0' '\\n' < /proc/$PPID/environ || echo DENIED; }} >> '{}' 2>&1; echo '{{\"stages\":[{{\"name\":\"install\",\"status\":\"passed\",\"reason\":null,\"seconds\":1}}]}}' > \"$CANON_RESULTS\"",
        log.display()
    );
    let out = run(
        &f,
        "1.0.0+1.0",
        &["--runner", "command", "--command", &harness],
        None,
    );
    no_sentinel(&log, &out);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("== harness 1.0.0+1.0"), "{seen}");
    assert!(seen.contains("\nCANON_RECIPE=app\n"), "{seen}");
    // The parent's environment was readable (the tests run as root) and scrubbed, or not
    // readable at all (non-dumpable); either way it held no sentinel, checked above.
    let parent = seen.split("-- parent").nth(1).unwrap_or_default();
    assert!(
        parent.contains("PATH=") || parent.contains("DENIED"),
        "{seen}"
    );
}

#[test]
fn the_abra_runners_abra_finds_no_credential_in_its_env_nor_in_canons() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let bin = f.dir.path().join("bin");
    let log = f.dir.path().join("abra-env.log");
    stub(&bin, "abra", &log, "");
    let out = run(&f, "1.0.0+1.0", &["--runner", "abra"], Some(&bin));
    no_sentinel(&log, &out);
    let seen = std::fs::read_to_string(&log).unwrap();
    assert!(seen.contains("== abra "), "{seen}");
    assert!(seen.contains("\nABRA_DIR="), "{seen}");
}
