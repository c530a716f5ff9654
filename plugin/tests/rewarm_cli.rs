//! `canon-plugin canonical rewarm` with the command runner, whose promote command stands in for
//! the warm deploy: it is run again for the canonical's tag at its commit, under the warm data's
//! hold, and the canonical and its history stay as they were; a recipe not enrolled, a runner
//! that keeps no warm data, a canonical whose commit the mirror lacks and a canonical that moves
//! while it runs are each refused with their reason. The warm deploy itself on the real engine
//! is `engine::rewarm`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use canon_plugin::tag_mode::run_tag_mode;
use canon_shared::gate::TestedRef;
use canon_testkit::git::hermetic;

use crate::support::Fixture;

/// Returns `canon-plugin canonical rewarm --recipe <recipe>` over the fixture's state, with
/// `args` after it and a clean environment, run to its end.
fn rewarm(f: &Fixture, recipe: &str, args: &[&str]) -> Output {
    rewarm_command(f, recipe, args).output().unwrap()
}

/// Returns the command [`rewarm`] runs, not yet started.
fn rewarm_command(f: &Fixture, recipe: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
    cmd.args(["canonical", "rewarm", "--recipe", recipe])
        .arg("--state-dir")
        .arg(&f.state)
        .arg("--work-dir")
        .arg(&f.runs)
        .args(args)
        .current_dir(f.dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null());
    hermetic(&mut cmd);
    cmd
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes a promote command that logs `<CANON_PROMOTE> <CANON_TAG> <CANON_COMMIT>` to `log`,
/// then runs `then`.
fn promote_command(f: &Fixture, name: &str, log: &Path, then: &str) -> String {
    f.harness(
        name,
        &format!(
            "echo \"$CANON_PROMOTE $CANON_TAG $CANON_COMMIT\" >> {}\n{then}",
            log.display()
        ),
    )
}

/// Promotes `tag` through tag mode with the green harness and `promote`.
fn promote(f: &Fixture, tag: &str, promote: &str) {
    let runner = f.runner(&f.green_harness(), Some(promote));
    let outcome = run_tag_mode(&f.settings(TestedRef::Tag(tag.into())), &runner).unwrap();
    assert!(outcome.promoted(), "{:#?}", outcome.report);
}

#[test]
fn rewarm_runs_the_promote_step_again_for_the_canonicals_tag_and_changes_no_record() {
    let f = Fixture::new();
    let commit = f.release("1.0.0+1", true);
    let log = f.dir.path().join("promote.log");
    let step = promote_command(&f, "promote", &log, "");
    promote(&f, "1.0.0+1", &step);
    let before = f.state_dir().read_canonical(&f.name()).unwrap();
    let history = f.state_dir().read_history(&f.name()).unwrap();
    let config = f.enrollment.to_str().unwrap();

    let out = rewarm(
        &f,
        "app",
        &[
            "--config",
            config,
            "--runner",
            "command",
            "--promote-command",
            &step,
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!(
            "canon: deployed app 1.0.0+1 (commit {commit}) again as the warm canonical"
        )),
        "{}",
        text(&out)
    );
    let line = format!("1 1.0.0+1 {commit}");
    let lines: Vec<String> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(
        lines,
        [line.clone(), line.clone()],
        "the promote, then the rewarm"
    );
    assert_eq!(f.state_dir().read_canonical(&f.name()).unwrap(), before);

    // A reader that has gone (`| head -0`): the rewarm still finishes, then ends as SIGPIPE
    // would, never with a panic.
    {
        use std::os::unix::process::ExitStatusExt;
        let mut cmd = rewarm_command(
            &f,
            "app",
            &[
                "--config",
                config,
                "--runner",
                "command",
                "--promote-command",
                &step,
            ],
        );
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = cmd
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        let runs = std::fs::read_to_string(&log).unwrap().lines().count();
        assert_eq!(runs, 3, "the rewarm ran although its output was not read");
    }
    assert_eq!(f.state_dir().read_history(&f.name()).unwrap(), history);
    assert!(f.leftover_runs().is_empty(), "{:?}", f.leftover_runs());
}

#[test]
fn rewarm_refuses_what_it_cannot_do_with_the_reason_and_the_conventional_status() {
    let f = Fixture::new();
    let log = f.dir.path().join("promote.log");
    let step = promote_command(&f, "promote", &log, "");
    let config = f.enrollment.to_str().unwrap();
    let with_step = [
        "--config",
        config,
        "--runner",
        "command",
        "--promote-command",
        &step,
    ];
    std::fs::create_dir_all(&f.state).unwrap();

    // Before any promote: no canonical, exit 1 as `canonical show`.
    let out = rewarm(&f, "app", &with_step);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("app has no canonical yet"),
        "{}",
        text(&out)
    );

    f.release("1.0.0+1", true);
    promote(&f, "1.0.0+1", &step);
    let promoted = std::fs::read_to_string(&log).unwrap();
    for (args, status, want) in [
        (
            vec!["--config", config, "--runner", "command"],
            2,
            "the command runner keeps warm data only through its `promote_command`",
        ),
        (
            with_step[2..].to_vec(),
            2,
            "`canonical rewarm` needs --config",
        ),
        (
            vec![
                "--config",
                config,
                "--runner",
                "docker",
                "--lock-wait",
                "soon",
            ],
            2,
            "lock_wait",
        ),
    ] {
        let out = rewarm(&f, "app", &args);
        assert_eq!(out.status.code(), Some(status), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains(want),
            "{args:?}: want {want:?} in {}",
            text(&out)
        );
    }
    let out = rewarm(&f, "other", &with_step);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("recipe `other` is not enrolled in"),
        "{}",
        text(&out)
    );

    // The canonical moves while the promote step runs (as another host's promote would, in a
    // state repository): refused, exit 1.
    let canonical = f.state.join("app").join("canonical.json");
    let first = std::fs::read_to_string(&canonical).unwrap();
    f.release("1.1.0+1", true);
    promote(&f, "1.1.0+1", &step);
    let moved = f.dir.path().join("moved.json");
    std::fs::copy(&canonical, &moved).unwrap();
    std::fs::write(&canonical, &first).unwrap();
    let racing = promote_command(
        &f,
        "racing",
        &log,
        &format!("cp {} {}", moved.display(), canonical.display()),
    );
    let out = rewarm(
        &f,
        "app",
        &[
            "--config",
            config,
            "--runner",
            "command",
            "--promote-command",
            &racing,
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the canonical moved from 1.0.0+1 to 1.1.0+1"),
        "{}",
        text(&out)
    );

    // A canonical whose commit the mirror does not hold: nothing runs.
    let runs = std::fs::read_to_string(&log).unwrap().lines().count();
    let gone = first.replace(&f.peeled("1.0.0+1"), &"ab".repeat(20));
    assert_ne!(gone, first);
    std::fs::write(&canonical, gone).unwrap();
    let out = rewarm(&f, "app", &with_step);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "app: cannot check out the canonical 1.0.0+1's commit {}",
            "ab".repeat(20)
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read_to_string(&log).unwrap().lines().count(),
        runs,
        "no promote step ran"
    );
    assert!(!promoted.is_empty());
    assert!(f.leftover_runs().is_empty(), "{:?}", f.leftover_runs());
}
