//! Tag mode end to end: local upstream and mirror repos made with the git CLI, scripted harnesses
//! writing the results file, the gate and the state dir; plus the real binary (exit codes,
//! concurrent runs on one recipe) and the settings documentation kept in step with the code.

use crate::support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use canon_plugin::report::Decision;
use canon_plugin::settings::{plugin_settings, setting_doc, ClaimedCommit, Environment, Settings};

use canon_plugin::tag_mode::{self as run, RunError};
use canon_shared::gate::TestedRef;
use canon_shared::state::LockWait;
use canon_testkit::git::{git, hermetic};
use canon_testkit::process::printed;
use canon_testkit::workspace;
use support::{Fixture, GREEN_RESULTS, RECORD};

fn tag(t: &str) -> TestedRef {
    TestedRef::Tag(t.into())
}

fn history_decisions(f: &Fixture) -> Vec<String> {
    f.state_dir()
        .read_history(&f.name())
        .unwrap()
        .into_iter()
        .map(|h| h.decision)
        .collect()
}

fn canonical(f: &Fixture) -> Option<(String, String)> {
    f.state_dir()
        .read_canonical(&f.name())
        .unwrap()
        .map(|c| (c.version.to_string(), c.commit.to_string()))
}

/// Promotes `t` with a green harness; returns its commit.
fn promote(f: &Fixture, t: &str) -> String {
    let commit = f.peeled(t);
    let out = run::run_tag_mode(&f.settings(tag(t)), &f.runner(&f.green_harness(), None)).unwrap();
    assert!(out.promoted(), "{t} should promote: {:?}", out.report.gate);
    commit
}

#[test]
fn green_tags_are_promoted_at_their_exact_peeled_commit_annotated_or_not() {
    let f = Fixture::new();
    let first = f.release("1.0.0+1.0", true);
    let tag_object = git(&f.upstream, &["rev-parse", "refs/tags/1.0.0+1.0"]);
    assert_ne!(tag_object, first, "an annotated tag is its own object");

    let out = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(out.promoted());
    assert_eq!(out.report.exit_code, 0);
    assert!(out.report.green);
    assert_eq!(out.report.gate.decision, Decision::Promote);
    assert_eq!(canonical(&f), Some(("1.0.0+1.0".into(), first.clone())));
    let runs = f.harness_runs();
    assert_eq!(
        runs,
        [format!("1.0.0+1.0 {first} none 1 version=1.0.0+1.0")]
    );

    // The report file: documented fields, the canonical before and after, no secrets to leak.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.dir.path().join("canon-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["recipe"], "app");
    assert_eq!(report["tag"], "1.0.0+1.0");
    assert_eq!(report["ref"], serde_json::Value::Null);
    assert_eq!(report["commit"], first.as_str());
    assert_eq!(report["green"], true);
    assert_eq!(report["gate"]["decision"], "promote");
    assert_eq!(report["canonical_before"], serde_json::Value::Null);
    assert_eq!(report["canonical_after"]["version"], "1.0.0+1.0");
    assert_eq!(report["stages"][0]["name"], "install");

    // A lightweight tag next, upgraded from the canonical.
    let second = f.release("1.1.0+1.0", false);
    let out = run::run_tag_mode(
        &f.settings(tag("1.1.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(out.promoted(), "{:?}", out.report.gate);
    assert_eq!(canonical(&f), Some(("1.1.0+1.0".into(), second.clone())));
    assert!(
        f.harness_runs()[1].starts_with(&format!("1.1.0+1.0 {second} 1.0.0+1.0 1 ")),
        "{:?}",
        f.harness_runs()
    );
    assert_eq!(history_decisions(&f), ["promote", "promote"]);
    assert!(f.leftover_runs().is_empty(), "per-run folders must go");
}

#[test]
fn a_green_ref_run_is_never_promoted() {
    let f = Fixture::new();
    let head = f.peeled("main");
    let out = run::run_tag_mode(
        &f.settings(TestedRef::Ref("main".into())),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(out.report.green);
    assert_eq!(out.report.exit_code, 0);
    assert!(!out.promoted());
    assert_eq!(out.report.gate.decision, Decision::Refuse);
    assert!(
        out.report
            .gate
            .reasons
            .iter()
            .any(|r| r.contains("ref main is not a tag")),
        "{:?}",
        out.report.gate.reasons
    );
    assert_eq!(out.report.commit.as_deref(), Some(head.as_str()));
    assert_eq!(
        f.harness_runs()[0],
        format!("main {head} none 1 version=0.0.0+unreleased")
    );
    assert_eq!(canonical(&f), None);
    assert_eq!(history_decisions(&f), ["refuse"]);
}

#[test]
fn red_stages_missing_results_and_failing_harnesses_leave_the_canonical_unchanged() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let first = promote(&f, "1.0.0+1.0");
    f.release("1.1.0+1.0", true);
    let cases = [
        (
            "red-stage",
            r#"cat > "$CANON_RESULTS" <<EOF
{"stages":[{"name":"install","status":"passed","seconds":1},{"name":"upgrade","status":"failed","reason":"migration 42 failed","seconds":2}]}
EOF"#,
            "stage upgrade failed: migration 42 failed",
        ),
        (
            "no-results",
            "echo 'forgot the results'",
            "did not write it",
        ),
        (
            "non-zero",
            &format!("{GREEN_RESULTS}\nexit 3"),
            "exited with exit status: 3",
        ),
        (
            "bad-status",
            r#"echo '{"stages":[{"name":"install","status":"ok"}]}' > "$CANON_RESULTS""#,
            "unknown variant `ok`",
        ),
    ];
    for (name, body, why) in cases {
        let h = f.harness(name, body);
        let out = run::run_tag_mode(&f.settings(tag("1.1.0+1.0")), &f.runner(&h, None)).unwrap();
        assert!(!out.report.green, "{name}");
        assert_eq!(out.report.exit_code, 1, "{name}");
        assert!(!out.promoted(), "{name}");
        assert_eq!(out.report.gate.decision, Decision::Refuse, "{name}");
        assert!(
            out.report.gate.reasons.iter().any(|r| r.contains(why)),
            "{name}: {:?}",
            out.report.gate.reasons
        );
        assert_eq!(
            canonical(&f),
            Some(("1.0.0+1.0".into(), first.clone())),
            "{name}"
        );
    }
    // The failing harness's stages are still in the report, but cannot make it green.
    let h = f.harness("non-zero-2", &format!("{GREEN_RESULTS}\nexit 1"));
    let out = run::run_tag_mode(&f.settings(tag("1.1.0+1.0")), &f.runner(&h, None)).unwrap();
    assert_eq!(out.report.stages.len(), 3);
    assert!(!out.report.green);
    assert_eq!(
        history_decisions(&f),
        ["promote", "refuse", "refuse", "refuse", "refuse", "refuse"]
    );
}

#[test]
fn a_quick_run_is_never_promoted() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let mut s = f.settings(tag("1.0.0+1.0"));
    s.quick = true;
    let out = run::run_tag_mode(&s, &f.runner(&f.green_harness(), None)).unwrap();
    assert!(out.report.green);
    assert_eq!(out.report.exit_code, 0);
    assert!(!out.promoted());
    assert!(out
        .report
        .gate
        .reasons
        .iter()
        .any(|r| r.contains("--quick")));
    assert!(
        f.harness_runs()[0].contains(" none 0 "),
        "CANON_COLD=0: {:?}",
        f.harness_runs()
    );
    assert_eq!(canonical(&f), None);
}

#[test]
fn a_commit_that_is_not_the_tags_is_refused_before_anything_runs() {
    let f = Fixture::new();
    let before_release = f.peeled("main");
    f.release("1.0.0+1.0", true);
    let mut s = f.settings(tag("1.0.0+1.0"));
    s.claimed_commits = vec![ClaimedCommit {
        source: "CANON_COMMIT",
        commit: before_release.parse().expect("a full commit id"),
    }];
    let err = run::run_tag_mode(&s, &f.runner(&f.green_harness(), None)).unwrap_err();
    assert!(matches!(err, RunError::CommitMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("claims commit {before_release} (CANON_COMMIT)")),
        "{text}"
    );
    assert!(f.harness_runs().is_empty(), "the harness must not run");
    assert_eq!(canonical(&f), None);
    assert_eq!(history_decisions(&f), ["refuse"]);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.dir.path().join("canon-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["exit_code"], 1);
    assert!(report["error"].as_str().unwrap().contains("never tested"));
}

#[test]
fn an_older_tag_than_the_canonical_is_refused_but_green_exits_zero() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    f.release("1.1.0+1.0", true);
    let newer = promote(&f, "1.1.0+1.0");
    let out = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(out.report.green);
    assert_eq!(out.report.exit_code, 0);
    assert!(!out.promoted());
    assert!(out
        .report
        .gate
        .reasons
        .iter()
        .any(|r| r.contains("older than the canonical 1.1.0+1.0")));
    assert!(out.report.summary().contains("GREEN BUT NOT PROMOTED"));
    assert_eq!(canonical(&f), Some(("1.1.0+1.0".into(), newer)));
}

#[test]
fn a_pinned_recipe_is_refused() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let first = promote(&f, "1.0.0+1.0");
    canon_shared::state::pin(
        &f.state_dir(),
        &f.name(),
        "manual migration",
        "ops",
        LockWait::Fail,
    )
    .unwrap();
    f.release("1.1.0+1.0", true);
    let out = run::run_tag_mode(
        &f.settings(tag("1.1.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(out.report.green);
    assert!(!out.promoted());
    assert!(out
        .report
        .gate
        .reasons
        .iter()
        .any(|r| r.contains("pinned by ops: manual migration")));
    assert_eq!(canonical(&f), Some(("1.0.0+1.0".into(), first)));
}

#[test]
fn a_version_label_that_is_not_the_tag_makes_the_run_red_without_running() {
    let f = Fixture::new();
    f.release_labelled("1.0.0+1.0", "0.9.0+1.0", true);
    let out = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap();
    assert!(!out.report.green);
    assert_eq!(out.report.exit_code, 1);
    assert!(
        out.report.problems[0].contains(
            "service `app` has coop-cloud.${STACK_NAME}.version=0.9.0+1.0 but the tag is 1.0.0+1.0"
        ),
        "{:?}",
        out.report.problems
    );
    assert!(f.harness_runs().is_empty());
    assert_eq!(canonical(&f), None);
}

#[test]
fn a_mirror_that_lags_or_disagrees_with_upstream_is_refused() {
    let f = Fixture::new();
    // Tagged upstream, not yet in the mirror.
    std::fs::write(f.work.join("compose.yml"), support::compose("1.0.0+1.0")).unwrap();
    git(&f.work, &["commit", "-q", "-am", "release"]);
    git(&f.work, &["tag", "-a", "1.0.0+1.0", "-m", "release"]);
    git(
        &f.work,
        &["push", "-q", "origin", "main", "refs/tags/1.0.0+1.0"],
    );
    let err = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap_err();
    assert!(err.is_verification(), "{err}");
    assert!(format!("{err:?}").contains("MissingTag"), "{err:?}");
    // Synced, then the tag moves upstream only.
    f.sync_mirror();
    git(&f.work, &["commit", "-q", "--allow-empty", "-m", "moved"]);
    git(&f.work, &["tag", "-f", "-a", "1.0.0+1.0", "-m", "moved"]);
    git(
        &f.work,
        &["push", "-q", "-f", "origin", "main", "refs/tags/1.0.0+1.0"],
    );
    let err = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), None),
    )
    .unwrap_err();
    let chain = format!("{:?}", err);
    assert!(chain.contains("MirrorDiffers"), "{chain}");
    assert!(f.harness_runs().is_empty());
    assert_eq!(canonical(&f), None);
}

#[test]
fn a_failing_promote_command_keeps_the_canonical() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let out = run::run_tag_mode(
        &f.settings(tag("1.0.0+1.0")),
        &f.runner(&f.green_harness(), Some("echo warm deploy failed; exit 4")),
    )
    .unwrap();
    assert!(out.report.green);
    assert!(!out.promoted());
    assert_eq!(out.report.exit_code, 1);
    assert!(out.report.gate.reasons[0].contains("the promote step failed"));
    assert_eq!(canonical(&f), None);
    assert_eq!(history_decisions(&f), ["refuse"]);
}

#[test]
fn settings_from_a_drone_shaped_environment_run_tag_mode() {
    let f = Fixture::new();
    let commit = f.release("1.0.0+1.0", true);
    let workspace = f.dir.path().join("drone-src");
    std::fs::create_dir_all(&workspace).unwrap();
    let env_json = format!(r#"["HARNESS_LOG={}","EXTRA=a,b"]"#, f.log.display());
    let pairs = vec![
        ("DRONE_BUILD_EVENT", "custom".to_string()),
        ("DRONE_BUILD_NUMBER", "42".into()),
        (
            "DRONE_BUILD_LINK",
            "https://drone.example.org/canon/canon/42".into(),
        ),
        ("DRONE_WORKSPACE", workspace.display().to_string()),
        ("DRONE_COMMIT_SHA", "f".repeat(40)),
        ("DRONE_REPO", "canon/canon".into()),
        ("CANON_RECIPE", "app".into()),
        ("CANON_TAG", "1.0.0+1.0".into()),
        ("CANON_COMMIT", commit.clone()),
        ("PLUGIN_CONFIG", f.enrollment.display().to_string()),
        ("PLUGIN_STATE_DIR", f.state.display().to_string()),
        ("PLUGIN_COMMAND", f.green_harness()),
        ("PLUGIN_WORK_DIR", f.runs.display().to_string()),
        ("PLUGIN_ENV", env_json),
        ("PLUGIN_UPSTREAM_TOKEN", String::new()),
        ("PLUGIN_MIRROR_TOKEN", String::new()),
        ("PLUGIN_SSH_KEY", String::new()),
        ("PLUGIN_TAG", String::new()),
        ("PLUGIN_LOCK_WAIT", "5s".into()),
    ];
    let env = Environment::from_pairs(pairs).unwrap();
    assert!(env.unknown.is_empty(), "{:?}", env.unknown);
    let settings = Settings::parse(&env, None, None, Path::new("/nonexistent")).unwrap();
    assert!(settings.upstream_token.is_none() && settings.ssh_key.is_none());
    assert_eq!(settings.env["EXTRA"], "a,b");
    let prepared = run::prepare(&settings).unwrap();
    let out = run::run_tag_mode(&prepared.run, prepared.runner.as_ref()).unwrap();
    assert!(out.promoted(), "{:?}", out.report);
    let record = f.state_dir().read_canonical(&f.name()).unwrap().unwrap();
    assert_eq!(record.commit, commit);
    assert_eq!(
        record.build.as_deref(),
        Some("https://drone.example.org/canon/canon/42")
    );
    let history = f.state_dir().read_history(&f.name()).unwrap();
    assert_eq!(history[0].trigger.as_deref(), Some("custom"));
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(workspace.join("canon-report.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(report["build"], "42");
    assert_eq!(report["gate"]["decision"], "promote");
}

// ----- the real binary -----

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

#[test]
fn the_badge_command_draws_the_listener_s_badge_from_the_state_dir() {
    use canon_shared::badge::{self, RecipeStatus, Standing};
    let f = Fixture::new();
    let state = f.state.clone();
    let badge_of = |args: &[&str]| {
        let mut all = vec!["canonical", "badge"];
        if !args.contains(&"--recipe") {
            all.extend(["--recipe", "app"]);
        }
        all.extend_from_slice(args);
        let out = plugin(&all, &[("CANON_STATE_DIR", state.display().to_string())])
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // What the listener would draw from the same state dir, without a journal.
    let expected = || {
        let st = f.state_dir();
        let canonical = st.read_canonical(&f.name()).unwrap();
        let facts = badge::history_facts(&st.read_history(&f.name()).unwrap());
        let status = RecipeStatus::decide(canonical.as_ref(), &facts);
        (badge::render(&status), status.standing())
    };

    let (code, _, err) = badge_of(&[]);
    assert_eq!(
        code,
        Some(2),
        "no state dir yet is an error, not \"none yet\""
    );
    assert!(
        err.contains(&format!(
            "state directory {} does not exist",
            f.state.display()
        )),
        "{err}"
    );

    f.release("1.0.0+1.0", true);
    promote(&f, "1.0.0+1.0");
    let (code, svg, err) = badge_of(&[]);
    assert_eq!(code, Some(0), "{err}");
    let (want, standing) = expected();
    assert_eq!(standing, Standing::Current);
    assert_eq!(
        svg.trim_end(),
        want,
        "stdout is the shared renderer's badge"
    );
    assert!(
        svg.contains(">1.0.0+1.0</text>") && svg.contains("fill=\"#4c1\""),
        "{svg}"
    );

    // A newer tag whose run is red: orange, the value still the canonical.
    f.release("1.1.0+1.0", true);
    let red = f.harness("red", "exit 1");
    let out = run::run_tag_mode(&f.settings(tag("1.1.0+1.0")), &f.runner(&red, None)).unwrap();
    assert!(!out.promoted());
    let file = f.dir.path().join("badges").join("app.svg");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let (code, stdout, err) = badge_of(&["--out", file.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(stdout.is_empty(), "the file, not stdout: {stdout}");
    assert!(err.contains("1.1.0+1.0 failed"), "{err}");
    let svg = std::fs::read_to_string(&file).unwrap();
    let (want, standing) = expected();
    assert_eq!((svg.as_str(), standing), (want.as_str(), Standing::Failed));
    assert!(
        svg.contains(">1.0.0+1.0</text>") && svg.contains("fill=\"#fe7d37\""),
        "{svg}"
    );

    // Pinned by the CLI: grey.
    let out = plugin(
        &[
            "canonical",
            "pin",
            "--recipe",
            "app",
            "--reason",
            "review",
            "--by",
            "ops",
        ],
        &[("CANON_STATE_DIR", state.display().to_string())],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, svg, _) = badge_of(&[]);
    assert!(
        svg.contains("fill=\"#9f9f9f\"") && svg.contains(">1.0.0+1.0</text>"),
        "{svg}"
    );

    // Bad input: a name that is not one, a folder that does not exist; nothing half-written.
    let (code, _, err) = badge_of(&["--recipe", "Bad/Name"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid recipe name"), "{err}");
    let missing = f.dir.path().join("nowhere").join("app.svg");
    let (code, _, err) = badge_of(&["--out", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nowhere"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn canonical_show_says_who_holds_the_warm_data_on_this_host() {
    use canon_shared::recipe::RecipeName;
    use canon_shared::state::holds::{Holder, WarmHolds};
    let f = Fixture::new();
    let state = f.state.display().to_string();
    let show = |recipe: &str| {
        let out = plugin(
            &["canonical", "show", "--recipe", recipe],
            &[("CANON_STATE_DIR", state.clone())],
        )
        .output()
        .unwrap();
        let json = serde_json::from_slice::<serde_json::Value>(&out.stdout).ok();
        (out.status.code(), json, printed(&out))
    };
    f.release("1.0.0+1.0", true);
    promote(&f, "1.0.0+1.0");
    let (code, json, text) = show("app");
    assert_eq!(code, Some(0), "{text}");
    let json = json.unwrap();
    assert_eq!(
        (
            &json["version"],
            &json["warm_status"]["status"],
            json["warm_status"].get("holders")
        ),
        (&"1.0.0+1.0".into(), &"idle".into(), None),
        "{json:#}"
    );

    // A run of this process copies the warm data: the CLI shows it, then idle once it is done.
    let holds = WarmHolds::new(&f.state, &f.name());
    let hold = holds
        .attach(
            &Holder {
                build: "12".into(),
                what: "run refs/pull/4/head".into(),
            },
            LockWait::Fail,
        )
        .unwrap();
    let (code, json, text) = show("app");
    assert_eq!(code, Some(0), "{text}");
    let json = json.unwrap();
    assert_eq!(json["warm_status"]["status"], "attached", "{json:#}");
    assert!(
        json.get("status").is_none(),
        "one meaning of status: {json:#}"
    );
    assert_eq!(
        json["version"], "1.0.0+1.0",
        "the record is still there: {json:#}"
    );
    let holders = json["warm_status"]["holders"].as_array().unwrap();
    assert_eq!(holders.len(), 1, "{json:#}");
    assert_eq!(
        (
            &holders[0]["build"],
            &holders[0]["what"],
            &holders[0]["pid"]
        ),
        (
            &"12".into(),
            &"run refs/pull/4/head".into(),
            &std::process::id().into()
        ),
        "{json:#}"
    );
    drop(hold);
    let (_, json, text) = show("app");
    assert_eq!(json.unwrap()["warm_status"]["status"], "idle", "{text}");

    // A reader that stops before the output (`| grep -q`) ends it as SIGPIPE ends a Unix tool,
    // quietly.
    let mut child = plugin(
        &["canonical", "show", "--recipe", "app"],
        &[("PLUGIN_STATE_DIR", state.clone())],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{}",
        printed(&out)
    );
    assert!(out.stderr.is_empty(), "{}", printed(&out));

    // No canonical yet, but its first promote under way.
    let other = RecipeName::parse("other").unwrap();
    let _promoting = WarmHolds::new(&f.state, &other)
        .promote(
            &Holder {
                build: "7".into(),
                what: String::new(),
            },
            LockWait::Fail,
        )
        .unwrap();
    let (code, _, text) = show("other");
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("no canonical yet (warm data: promoting (build 7))"),
        "{text}"
    );
}

#[test]
fn the_binary_exits_2_listing_every_settings_problem() {
    let out = plugin(
        &[],
        &[
            ("DRONE_BUILD_EVENT", "custom".into()),
            ("CANON_TAG", "1.0.0+1".into()),
            ("PLUGIN_RUNNER", "kubernetes".into()),
            ("PLUGIN_QUICK", "maybe".into()),
            ("PLUGIN_TOKEN_TYPO", "x".into()),
        ],
    )
    .output()
    .unwrap();
    let t = printed(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    for want in [
        "`config`",
        "`recipe`",
        "`runner` must be",
        "`quick` must be",
        "PLUGIN_TOKEN_TYPO",
    ] {
        assert!(t.contains(want), "missing {want}: {t}");
    }
}

#[test]
fn the_default_log_is_plain_text_without_commands_and_debug_adds_them() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let harness = f.green_harness();
    let env_setting = format!("HARNESS_LOG={}", f.log.display());
    let report = f.dir.path().join("report.json");
    let run = |build: &str, rust_log: Option<&str>| {
        let mut env = vec![("DRONE_BUILD_NUMBER", build.to_string())];
        if let Some(level) = rust_log {
            env.push(("RUST_LOG", level.to_string()));
        }
        let out = plugin(
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
            ],
            &env,
        )
        .output()
        .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", printed(&out));
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !stderr.contains("\x1b[") && !String::from_utf8_lossy(&out.stdout).contains("\x1b["),
            "no colour codes when the output is not a terminal: {}",
            printed(&out)
        );
        stderr
    };
    let command_lines = |log: &str| -> Vec<String> {
        log.lines()
            .filter(|l| l.contains("+ sh -c") && l.contains("harness-green.sh"))
            .map(String::from)
            .collect()
    };

    let default = run("1", None);
    assert!(
        default.contains("INFO") && default.contains("Resolved the tag upstream."),
        "{default}"
    );
    assert!(!default.contains("DEBUG"), "{default}");
    assert_eq!(command_lines(&default), Vec::<String>::new(), "{default}");

    let debug = run("2", Some("debug"));
    let commands = command_lines(&debug);
    assert_eq!(commands.len(), 1, "the command is logged once: {debug}");
    assert!(commands[0].contains("DEBUG"), "{debug}");
    assert!(!commands[0].contains("command="), "{debug}");
}

fn concurrent_runs(lock_wait: &str) -> (Fixture, Vec<Output>) {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    let barrier = f.dir.path().join("barrier");
    std::fs::create_dir_all(&barrier).unwrap();
    // Both harnesses wait for each other, so both runs reach the gate together.
    // Upgrade passes even without a base, so the waiting run finds the same version and commit
    // already promoted: `not-needed`.
    let results = GREEN_RESULTS.replace(
        r#"up='"skipped","reason":"no canonical yet"'"#,
        r#"up='"passed","reason":null'"#,
    );
    assert_ne!(results, GREEN_RESULTS);
    let harness = f.harness(
        "barrier",
        &format!(
            "touch \"$BARRIER/$CANON_BUILD\"\ni=0\nwhile [ \"$(ls \"$BARRIER\" | wc -l)\" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n{RECORD}\n{results}"
        ),
    );
    let env_setting = format!(
        "BARRIER={},HARNESS_LOG={}",
        barrier.display(),
        f.log.display()
    );
    let children: Vec<_> = (1..=2)
        .map(|n| {
            let report = f.dir.path().join(format!("report-{n}.json"));
            plugin(
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
                    "--promote-command",
                    "sleep 3",
                    "--env",
                    &env_setting,
                    "--lock-wait",
                    lock_wait,
                    "--work-dir",
                    f.runs.to_str().unwrap(),
                    "--report",
                    report.to_str().unwrap(),
                ],
                &[("DRONE_BUILD_NUMBER", n.to_string())],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    (f, outputs)
}

#[test]
fn two_concurrent_runs_one_promotes_and_the_other_fails_clearly_without_waiting() {
    let (f, outputs) = concurrent_runs("0s");
    let codes: Vec<_> = outputs.iter().map(|o| o.status.code()).collect();
    let winner = outputs.iter().find(|o| o.status.code() == Some(0));
    let loser = outputs.iter().find(|o| o.status.code() == Some(1));
    let (winner, loser) = match (winner, loser) {
        (Some(w), Some(l)) => (w, l),
        _ => panic!(
            "want one 0 and one 1, got {codes:?}:\n{}\n---\n{}",
            printed(&outputs[0]),
            printed(&outputs[1])
        ),
    };
    assert!(
        printed(winner).contains("PROMOTED app to 1.0.0+1.0"),
        "{}",
        printed(winner)
    );
    assert!(
        printed(loser).contains("recipe `app` is locked by another run"),
        "{}",
        printed(loser)
    );
    assert_eq!(history_decisions(&f), ["promote"]);
    assert_eq!(f.harness_runs().len(), 2);
    assert_eq!(canonical(&f).unwrap().0, "1.0.0+1.0");
}

#[test]
fn two_concurrent_runs_one_promotes_and_the_other_waits_then_finds_nothing_to_do() {
    let (f, outputs) = concurrent_runs("30s");
    for o in &outputs {
        assert_eq!(o.status.code(), Some(0), "{}", printed(o));
    }
    let mut decisions = history_decisions(&f);
    decisions.sort();
    assert_eq!(decisions, ["not-needed", "promote"]);
    assert_eq!(canonical(&f).unwrap().0, "1.0.0+1.0");
}

// ----- documentation kept in step with the code -----

#[test]
fn the_settings_reference_table_is_the_known_settings() {
    let page = "docs/reference/plugin-settings.md";
    let text = std::fs::read_to_string(workspace::root().join(page)).unwrap();
    let table = canon_plugin::settings::settings_table_markdown();
    assert!(
        text.contains(&table),
        "{page} must contain the settings table exactly as rendered:\n{table}"
    );
}

#[test]
fn the_plugin_cards_example_mounts_everything_it_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("card.yaml");
    let card: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let example: serde_yaml::Value =
        serde_yaml::from_str(card["example"].as_str().expect("an example pipeline")).unwrap();
    let declared: Vec<&str> = example["volumes"]
        .as_sequence()
        .expect("the example declares its volumes")
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let steps = example["steps"].as_sequence().unwrap();
    assert!(!steps.is_empty());
    for step in steps {
        let mounts: Vec<(&str, &str)> = step["volumes"]
            .as_sequence()
            .map(|v| v.as_slice())
            .unwrap_or_default()
            .iter()
            .map(|m| (m["name"].as_str().unwrap(), m["path"].as_str().unwrap()))
            .collect();
        for (name, _) in &mounts {
            assert!(
                declared.contains(name),
                "volume {name} is mounted but not declared"
            );
        }
        let mounted = |p: &str| mounts.iter().any(|(_, m)| Path::new(p).starts_with(m));
        let settings = step["settings"].as_mapping().unwrap();
        for key in settings.keys() {
            let key = key.as_str().unwrap();
            assert!(setting_doc(key).is_some(), "unknown setting {key}");
        }
        for key in ["config", "state_dir"] {
            let p = settings[key].as_str().unwrap();
            assert!(mounted(p), "{key}: {p} is not on a mounted volume");
        }
        // The example uses a built-in runner: nothing it runs lives outside the image.
        assert_eq!(settings["runner"].as_str(), Some("docker"));
        assert!(
            mounted("/var/run/docker.sock"),
            "the docker runner needs the socket"
        );
    }
}

#[test]
fn the_plugin_card_lists_every_setting_with_its_type_and_secrecy() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("card.yaml");
    let card: serde_yaml::Value =
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for key in [
        "title",
        "author",
        "repo",
        "description",
        "example",
        "license",
    ] {
        assert!(card.get(key).is_some(), "card misses {key}");
    }
    let props = card["properties"].as_mapping().unwrap();
    assert_eq!(props.len(), plugin_settings().count());
    for s in plugin_settings() {
        let p = &card["properties"][s.name];
        assert!(p.is_mapping(), "card misses property {}", s.name);
        let want_type = match s.kind.as_str() {
            "duration" => "string",
            other => other,
        };
        assert_eq!(p["type"].as_str(), Some(want_type), "{}", s.name);
        assert_eq!(p["secret"].as_bool(), Some(s.secret), "{}", s.name);
        assert!(p.get("defaultValue").is_some() && p.get("description").is_some());
        assert!(p["required"].is_bool());
        let keys: Vec<_> = p
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str())
            .collect();
        for k in &keys {
            assert!(
                ["type", "defaultValue", "description", "secret", "required"].contains(k),
                "{}: {k} is not allowed by the index schema",
                s.name
            );
        }
    }
}

#[test]
fn the_results_schema_names_exactly_the_stages_and_statuses_canon_reads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/results.schema.json");
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let stage = &schema["$defs"]["stage"]["properties"];
    let names: Vec<_> = stage["name"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let want: Vec<_> = canon_shared::recipe::Stage::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .collect();
    assert_eq!(names, want);
    assert_eq!(
        stage["status"]["enum"],
        serde_json::json!(["passed", "failed", "skipped"])
    );
    assert_eq!(schema["additionalProperties"], false);
    assert_eq!(schema["$defs"]["stage"]["additionalProperties"], false);
}

#[test]
fn a_harness_that_outlives_its_timeout_is_killed_and_the_run_is_red() {
    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    // The background sleep holds the output pipes open: the whole process group must go.
    let h = f.harness("slow", "sleep 30 &\nsleep 30");
    let mut runner = f.runner(&h, None);
    runner.timeout = std::time::Duration::from_secs(1);
    let started = std::time::Instant::now();
    let out = run::run_tag_mode(&f.settings(tag("1.0.0+1.0")), &runner).unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert!(!out.report.green);
    assert_eq!(out.report.exit_code, 1);
    assert!(
        out.report.problems[0].contains("timed out after 1s"),
        "{:?}",
        out.report.problems
    );
    assert_eq!(canonical(&f), None);
}

#[test]
fn a_promote_waits_for_a_warm_run_copying_the_warm_data_then_proceeds() {
    use canon_shared::state::holds::{Holder, WarmHolds};
    use std::time::{Duration, Instant};

    let f = Fixture::new();
    f.release("1.0.0+1.0", true);
    promote(&f, "1.0.0+1.0");
    f.release("1.1.0+1.0", true);
    // A warm run copying the canonical's volumes holds the warm data shared for the copy.
    let holds = WarmHolds::new(&f.state, &f.name());
    let copying = Holder {
        build: "7".into(),
        what: "warm run of refs/pull/4/head".into(),
    };
    let hold = holds.attach(&copying, LockWait::Fail).unwrap();
    let held_for = Duration::from_secs(3);
    let started = Instant::now();
    let (out, canonical_while_held) = std::thread::scope(|s| {
        let run = s.spawn(|| {
            run::run_tag_mode(
                &f.settings(tag("1.1.0+1.0")),
                &f.runner(&f.green_harness(), None),
            )
            .unwrap()
        });
        std::thread::sleep(held_for);
        let seen = canonical(&f);
        drop(hold);
        (run.join().unwrap(), seen)
    });
    assert_eq!(
        canonical_while_held.map(|c| c.0).as_deref(),
        Some("1.0.0+1.0"),
        "the promote must wait while the warm data is being copied"
    );
    assert!(out.promoted(), "{:?}", out.report.gate);
    assert!(started.elapsed() >= held_for);
    assert_eq!(canonical(&f).unwrap().0, "1.1.0+1.0");

    // Held past `lock_wait`: the promote gives up, the run is red and the canonical stays.
    f.release("1.2.0+1.0", true);
    let _hold = holds.attach(&copying, LockWait::Fail).unwrap();
    let mut settings = f.settings(tag("1.2.0+1.0"));
    settings.lock_wait = LockWait::Wait(Duration::from_millis(300));
    let out = run::run_tag_mode(&settings, &f.runner(&f.green_harness(), None)).unwrap();
    assert!(!out.promoted());
    assert_eq!(out.report.exit_code, 1);
    assert!(
        out.report
            .gate
            .reasons
            .iter()
            .any(|r| r.contains("could not hold the warm data")),
        "{:?}",
        out.report.gate.reasons
    );
    assert_eq!(canonical(&f).unwrap().0, "1.1.0+1.0");
}
