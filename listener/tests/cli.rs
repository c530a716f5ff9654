//! canon-listener's command line as an operator meets it, through the built binary: `--help`
//! lists every variable with its default and the exit codes, and a `CANON_*` variable it does not
//! read is named as a likely typo.

use std::process::{Command, Output};

use canon_listener::config::VARIABLES;

/// Runs `canon-listener args` with only `envs` of the `CANON_*` variables set.
fn listener(args: &[&str], envs: &[(&str, &str)]) -> Output {
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
    c.output().expect("canon-listener runs")
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
