//! canon-listener's command line as an operator meets it, through the built binary: `--help`
//! lists every variable with its default and the exit codes, and a `CANON_*` variable it does not
//! read is named as a likely typo.

use std::process::{Command, Output};

use canon_listener::config::VARIABLES;

/// Runs `canon-listener args` with only `envs` of the `CANON_*` variables set.
fn listener(args: &[&str], envs: &[(&str, &str)]) -> Output {
    listener_command(args, envs)
        .output()
        .expect("canon-listener runs")
}

/// Returns the command [`listener`] runs, not yet started.
fn listener_command(args: &[&str], envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_canon-listener"));
    c.args(args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CANON_") {
            c.env_remove(&k);
        }
    }
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

#[test]
fn help_lists_every_variable_its_default_and_the_exit_codes() {
    let out = listener(&["--help"], &[]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{help}");
    for v in VARIABLES {
        assert!(help.contains(v.name), "{} missing:\n{help}", v.name);
    }
    for want in [
        "[default: 127.0.0.1:8088]",
        "Exit codes:",
        "  2  bad settings",
        "Example:",
    ] {
        assert!(help.contains(want), "{want:?} missing:\n{help}");
    }
    for sub in ["serve", "register-hooks"] {
        let out = listener(&[sub, "--help"], &[]);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example:\n  CANON_ENROLLMENT="),
            "{sub}:\n{help}"
        );
    }
}

#[test]
fn an_unknown_canon_variable_is_named_as_a_likely_typo() {
    let out = listener(&[], &[("CANON_ENROLMENT", "/etc/canon/enrollment.yml")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("CANON_ENROLLMENT is not set"), "{err}");
    assert!(
        err.contains("warning: CANON_ENROLMENT is not a canon-listener variable (a typo?)"),
        "{err}"
    );
    assert!(
        !err.contains("/etc/canon/enrollment.yml"),
        "a value was printed:\n{err}"
    );
}

#[test]
fn check_prints_ok_for_good_settings_and_every_problem_of_bad_ones_at_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let enrollment = dir.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        "recipes:\n  - name: custom-html\n    upstream: /srv/u\n    mirror: /srv/m\n",
    )
    .unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let key = dir.path().join("ssh_key");
    std::fs::write(&key, "not really a key\n").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let base = [
        ("CANON_ENROLLMENT", enrollment.to_str().unwrap()),
        ("CANON_STATE_DIR", state.to_str().unwrap()),
        ("CANON_WEBHOOK_SECRETS", "a-webhook-secret-of-some-length"),
        ("CANON_DRONE_SERVER", "http://127.0.0.1:9"),
        ("CANON_DRONE_TOKEN", "drone-token-value"),
        ("CANON_DRONE_REPO", "ops/canon"),
        ("CANON_SSH_KEY", key.to_str().unwrap()),
    ];
    let out = listener(&["check"], &base);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "a check starts nothing: no journal"
    );
    // Its reader gone (`| head -0`), it ends as SIGPIPE would, never with a panic.
    {
        use std::os::unix::process::ExitStatusExt;
        let mut c = listener_command(&["check"], &base);
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = c
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
            .wait_with_output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&enrollment, "recipes: [}\n").unwrap();
    let mut bad: Vec<(&str, &str)> = base
        .iter()
        .copied()
        .filter(|(k, _)| *k != "CANON_DRONE_TOKEN")
        .collect();
    bad.push(("CANON_WORKERZ", "3"));
    let out = listener(&["check"], &bad);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    for want in [
        "CANON_DRONE_TOKEN",
        "`CANON_SSH_KEY`",
        "is open to other users (mode 0644)",
        "`CANON_ENROLLMENT`",
        "CANON_WORKERZ is not a canon-listener variable",
    ] {
        assert!(stderr.contains(want), "missing {want:?}: {stderr}");
    }
    assert!(
        !stderr.contains("a-webhook-secret-of-some-length"),
        "no secret shows: {stderr}"
    );
}
