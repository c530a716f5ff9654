//! The command line's settings as an operator meets them, through the built binary: a flag of
//! the other mode is refused by name before anything runs, `run` and `sweep` each show only their
//! own flags, every subcommand's `--help` shows its variables, defaults and an example, and an
//! old variable name still works with a warning.

use std::path::Path;
use std::process::{Command, Output};

use canon_testkit::git::hermetic;

/// Runs `canon-plugin args` in `dir` with only `envs` of the canon variables set.
fn plugin(dir: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    hermetic(&mut c)
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "warn");
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy();
        if k.starts_with("PLUGIN_") || k.starts_with("CANON_") || k.starts_with("DRONE_") {
            c.env_remove(k.as_ref());
        }
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output().expect("canon-plugin runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn run_refuses_dry_run_naming_the_sweep_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let marker = dir.path().join("harness-ran");
    let command = format!("touch {}", marker.display());
    let out = plugin(
        dir.path(),
        &[
            "run",
            "--config",
            "enrollment.yml",
            "--recipe",
            "app",
            "--tag",
            "1.0.0+1",
            "--command",
            &command,
            "--state-dir",
            state.to_str().unwrap(),
            "--dry-run",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`dry_run` (PLUGIN_DRY_RUN or --dry-run) is a setting of the sweep (`canon-plugin sweep`); `run` is tag mode and would ignore it"),
        "{err}"
    );
    assert!(!marker.exists(), "the harness ran");
    assert!(!state.exists(), "the state dir was written");
    assert!(!dir.path().join("canon-report.json").exists());
}

#[test]
fn sweep_refuses_mode_tag_and_tag_mode_flags_naming_the_mode() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = plugin(
        dir.path(),
        &[
            "sweep",
            "--config",
            "enrollment.yml",
            "--state-dir",
            state.to_str().unwrap(),
            "--mode",
            "tag",
            "--tag",
            "1.0.0+1",
            "--cold",
        ],
        &[],
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    for want in [
        "3 problem(s)",
        "`mode` (PLUGIN_MODE or --mode) is tag, but `sweep` is the sweep: use `canon-plugin run`",
        "`tag` (PLUGIN_TAG or CANON_TAG or DRONE_TAG or --tag) is a setting of tag mode (`canon-plugin run`); `sweep` is the sweep and would ignore it",
        "--cold is a flag of tag mode (`canon-plugin run`)",
    ] {
        assert!(err.contains(want), "want {want:?} in:\n{err}");
    }
    assert!(!state.exists(), "the sweep ran");
    assert!(!dir.path().join("sweep-report.json").exists());
}

#[test]
fn a_drone_tag_build_given_dry_run_true_is_refused_and_false_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let base = [
        ("DRONE_BUILD_EVENT", "tag"),
        ("DRONE_TAG", "1.0.0+1"),
        ("PLUGIN_RECIPE", "app"),
        ("PLUGIN_COMMAND", "true"),
        ("PLUGIN_CONFIG", "missing-enrollment.yml"),
    ];
    let mut pairs = base.to_vec();
    pairs.push(("PLUGIN_DRY_RUN", "true"));
    let out = plugin(dir.path(), &[], &pairs);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`dry_run` (PLUGIN_DRY_RUN or --dry-run) is a setting of the sweep (`canon-plugin sweep`); this build runs tag mode and would ignore it"),
        "{err}"
    );
    // A sweep setting shared from the cron step's settings only warns; the settings pass and
    // the run goes on to read the enrollment file, which is missing here.
    let mut pairs = base.to_vec();
    pairs.push(("PLUGIN_DRY_RUN", "false"));
    pairs.push(("PLUGIN_JOBS", "4"));
    pairs.push(("PLUGIN_INIT_STATE", "true"));
    let out = plugin(dir.path(), &[], &pairs);
    let err = stderr(&out);
    assert!(!err.contains("problem(s) with the settings"), "{err}");
    assert!(
        err.contains("enrollment file missing-enrollment.yml"),
        "{err}"
    );
    assert!(
        err.contains("`jobs` (PLUGIN_JOBS or --jobs) is a setting of the sweep (`canon-plugin sweep`); this build runs tag mode: ignored"),
        "{err}"
    );
}

#[test]
fn run_and_sweep_each_show_only_their_own_flags_with_variables_and_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let run = stdout(&plugin(dir.path(), &["run", "--help"], &[]));
    let sweep = stdout(&plugin(dir.path(), &["sweep", "--help"], &[]));
    for (help, own, other) in [
        (
            &run,
            ["--tag", "--ref", "--quick", "--cold"],
            ["--dry-run", "--jobs", "--inline", "--mode"],
        ),
        (
            &sweep,
            ["--dry-run", "--jobs", "--inline", "--idle-exit-code"],
            ["--tag ", "--quick", "--cold", "--mode"],
        ),
    ] {
        for flag in own {
            assert!(help.contains(flag), "{flag} missing:\n{help}");
        }
        for flag in other {
            assert!(!help.contains(flag), "{flag} shown:\n{help}");
        }
        for shared in ["--config", "--runner", "--timeout", "--state-dir"] {
            assert!(help.contains(shared), "{shared} missing:\n{help}");
        }
    }
    assert!(
        run.contains("[env: PLUGIN_TIMEOUT] [default: 60m]"),
        "{run}"
    );
    assert!(
        sweep.contains("[env: PLUGIN_RECIPE_DEADLINE] [default: 3h]"),
        "{sweep}"
    );
}

#[test]
fn every_subcommand_help_shows_its_variables_defaults_and_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let commands: &[&[&str]] = &[
        &["run"],
        &["sweep"],
        &["canonical", "show"],
        &["canonical", "pin"],
        &["canonical", "unpin"],
        &["canonical", "badge"],
        &["state", "export"],
        &["mirror-sync"],
        &["recipe", "plan"],
        &["versions", "sort"],
        &["versions", "latest"],
        &["versions", "check"],
    ];
    for command in commands {
        let args = [*command, &["--help"]].concat();
        let out = plugin(dir.path(), &args, &[]);
        let help = stdout(&out);
        assert!(out.status.success(), "{command:?}: {}", stderr(&out));
        assert!(
            help.contains("Example:\n  ") && help.contains("canon-plugin "),
            "{command:?} has no example:\n{help}"
        );
        let path = command.join(" ");
        for s in canon_plugin::settings::KNOWN_SETTINGS {
            for place in s.used_by {
                if place.commands().contains(&path.as_str())
                    && s.has_flag_in(*place)
                    && s.name != "mode"
                {
                    let shown = format!("[env: {}]", s.env.join(", "));
                    assert!(help.contains(s.flag), "{path}: {} missing:\n{help}", s.flag);
                    assert!(help.contains(&shown), "{path}: {shown} missing:\n{help}");
                    if !s.default.is_empty() && s.default != "[]" {
                        let default = format!("[default: {}]", s.default);
                        assert!(
                            help.contains(&default),
                            "{path}: {default} missing:\n{help}"
                        );
                    }
                }
            }
        }
    }
    let sync = stdout(&plugin(dir.path(), &["mirror-sync", "--help"], &[]));
    assert!(sync.contains("--ssh-key-file <PATH>"), "{sync}");
    assert!(!sync.contains("--ssh-key <"), "{sync}");
}

#[test]
fn an_old_state_dir_variable_still_works_and_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    // `canonical badge` refuses a state dir that does not exist, naming it: so the message
    // shows which state dir the variable gave.
    let nowhere = dir.path().join("old-name-state");
    let out = plugin(
        dir.path(),
        &["canonical", "badge", "--recipe", "app"],
        &[("CANON_STATE_DIR", nowhere.to_str().unwrap())],
    );
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains(
            "CANON_STATE_DIR is read until the next release only: set PLUGIN_STATE_DIR instead"
        ),
        "{err}"
    );
    assert!(err.contains(nowhere.to_str().unwrap()), "{err}");
    let out = plugin(
        dir.path(),
        &["canonical", "badge", "--recipe", "app"],
        &[("PLUGIN_STATE_DIR", nowhere.to_str().unwrap())],
    );
    let err = stderr(&out);
    assert!(err.contains(nowhere.to_str().unwrap()), "{err}");
    assert!(!err.contains("next release"), "{err}");
}
