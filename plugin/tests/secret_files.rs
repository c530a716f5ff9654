//! The secret settings' file forms through the real binary: `--upstream-token-file PATH` is
//! accepted and the run goes on while the process's arguments (what `ps` shows) hold only the
//! path; a secret file that cannot be used is a settings problem (exit 2) that never shows content.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use canon_testkit::git::hermetic;
use canon_testkit::process::{printed, KillOnDrop};
use support::{Fixture, GREEN_RESULTS, RECORD};

const TOKEN: &str = "s3cr3t-upstream-t0ken";

fn plugin(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    hermetic(&mut cmd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Writes `content` to `path` readable by the owner only, as a secret file should be.
fn write_secret(path: &Path, content: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Waits up to 30s for `path` to exist.
fn wait_for(path: &Path) {
    let started = Instant::now();
    while !path.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_token_file_flag_is_accepted_and_ps_shows_only_its_path() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let workspace = f.dir.path().join("drone-src");
    // Relative to the workspace, like every path setting.
    write_secret(&workspace.join("secrets/upstream"), &format!("  {TOKEN}\n"));
    let gate = f.dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    // The harness holds the run while the test looks at the running plugin from outside.
    let harness = f.harness(
        "gated",
        &format!(
            "touch \"$GATE/started\"\ni=0\nwhile [ ! -e \"$GATE/go\" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done\nenv > \"$GATE/harness-env\"\n{RECORD}\n{GREEN_RESULTS}"
        ),
    );
    let env_setting = format!("GATE={},HARNESS_LOG={}", gate.display(), f.log.display());
    let report = f.dir.path().join("report.json");
    let child = plugin(
        &[
            "run",
            "--init",
            "--config",
            f.enrollment.to_str().unwrap(),
            "--state-dir",
            f.state.to_str().unwrap(),
            "--recipe",
            "app",
            "--tag",
            "1.0.0+1.0",
            "--command",
            &harness,
            "--env",
            &env_setting,
            "--work-dir",
            f.runs.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--upstream-token-file",
            "secrets/upstream",
        ],
        &[
            ("DRONE_WORKSPACE", workspace.display().to_string()),
            ("DRONE_BUILD_NUMBER", "7".into()),
        ],
    )
    .spawn()
    .map(KillOnDrop::new)
    .unwrap();

    wait_for(&gate.join("started"));
    let ps = Command::new("ps")
        .args(["-ww", "-o", "args=", "-p", &child.id().to_string()])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&ps.stdout).into_owned();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    let argv: Vec<_> = cmdline
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    std::fs::write(gate.join("go"), "").unwrap();
    let out = child.wait_with_output().unwrap();
    let t = printed(&out);

    assert!(
        listed.contains("--upstream-token-file secrets/upstream"),
        "ps shows: {listed:?}"
    );
    assert!(!listed.contains(TOKEN), "ps shows the token: {listed}");
    assert!(
        argv.windows(2)
            .any(|w| w[0] == "--upstream-token-file" && w[1] == "secrets/upstream"),
        "{argv:?}"
    );
    assert!(!argv.iter().any(|a| a.contains(TOKEN)), "{argv:?}");
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("PROMOTED app to 1.0.0+1.0"), "{t}");
    assert!(!t.contains(TOKEN), "the output shows the token: {t}");
    assert!(!std::fs::read_to_string(&report).unwrap().contains(TOKEN));
    let harness_env = std::fs::read_to_string(gate.join("harness-env")).unwrap();
    assert!(!harness_env.contains(TOKEN), "{harness_env}");
    assert_eq!(f.harness_runs().len(), 1);
}

#[test]
fn an_unusable_secret_file_is_a_settings_problem_that_never_shows_the_secret() {
    let workspace = tempfile::tempdir().unwrap();
    write_secret(&workspace.path().join("mirror-token"), TOKEN);
    let out = plugin(
        &[
            "run",
            "--init",
            "--config",
            "enrollment.yml",
            "--recipe",
            "app",
            "--tag",
            "1.0.0+1.0",
            "--upstream-token-file",
            "missing-token",
            "--mirror-token-file",
            "mirror-token",
        ],
        &[
            ("DRONE_WORKSPACE", workspace.path().display().to_string()),
            ("PLUGIN_MIRROR_TOKEN", "inline-mirror-secret".into()),
        ],
    )
    .output()
    .unwrap();
    let t = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for want in [
        format!(
            "`upstream_token_file`: cannot read {}: ",
            workspace.path().join("missing-token").display()
        ),
        "(os error 2)".into(),
        "`mirror_token` and `mirror_token_file` are both set".into(),
        "2 problem(s) with the settings".into(),
    ] {
        assert!(t.contains(&want), "missing {want:?}: {t}");
    }
    for secret in [TOKEN, "inline-mirror-secret"] {
        assert!(!t.contains(secret), "shows {secret}: {t}");
    }
}
