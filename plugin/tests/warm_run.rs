//! Warm pull-request and branch runs on the real Docker engine: the canonical's data is copied
//! into the run's own volumes, the head is deployed over the copies, and the canonical's volumes
//! stay byte-identical, green or red; concurrent runs get their own copies; a killed run leaves
//! no hold and its copies go with the sweep's cleanup; without warm data a run is cold and says
//! why.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped. Each test uses its own recipe name.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use canon_plugin::engine::cleanup_stale_of;
use canon_plugin::runners::command::CommandRunner;
use canon_plugin::runners::docker::DockerRunner;
use canon_plugin::settings::ClaimedCommit;
use canon_plugin::tag_mode::{run_tag_mode, RunOutcome};
use canon_shared::gate::{StageStatus, TestedRef};
use canon_shared::recipe::{Recipe, RecipeName, Stage};
use canon_shared::state::holds::{Holder, WarmHolds, WarmState};
use canon_shared::state::{LockWait, StateDir};

use crate::support;
use support::engine::{empty, engine, Upstream, MARKER_CHECK};

const BASE: &str = "1.0.0+0.1.0";

/// Releases and promotes `BASE` (its app writes the data marker `1.0.0` at install); returns
/// its commit and the warm canonical's data volume.
fn promoted(up: &Upstream, recipe: &Recipe) -> (String, String) {
    let commit = up.release(BASE, "1.0.0", false);
    up.sync_mirror();
    let settings = up.run_settings(
        recipe,
        TestedRef::Tag(BASE.into()),
        "1",
        &[("EXPECT_MARKER", "1.0.0")],
    );
    let first = run_tag_mode(&settings, &DockerRunner::default()).expect("the tag run");
    assert!(first.promoted(), "{:#?}", first.report);
    (commit, format!("warm-{}_data", up.name))
}

/// Runs `branch` (at `head`) of the recipe, warm unless told otherwise, expecting the data
/// marker `marker`.
fn pr_run(
    up: &Upstream,
    recipe: &Recipe,
    branch: &str,
    head: &str,
    build: &str,
    marker: &str,
) -> RunOutcome {
    let mut settings = up.run_settings(
        recipe,
        TestedRef::Ref(branch.into()),
        build,
        &[("EXPECT_MARKER", marker)],
    );
    settings.claimed_commits = vec![ClaimedCommit {
        source: "commit",
        commit: head.parse().expect("a full commit id"),
    }];
    run_tag_mode(&settings, &DockerRunner::default()).expect("the ref run")
}

fn stage(outcome: &RunOutcome, name: Stage) -> (StageStatus, String) {
    let s = outcome
        .report
        .stages
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no stage {name}: {:#?}", outcome.report.stages));
    (s.status, s.reason.clone().unwrap_or_default())
}

/// The engine objects a recipe keeps between runs: the warm canonical's volume and secret.
fn only_the_warm_canonical(up: &Upstream) -> BTreeMap<&'static str, Vec<String>> {
    let warm = format!("warm-{}", up.name);
    let mut want = empty();
    want.insert("volumes", vec![format!("{warm}_data")]);
    want.insert("secrets", vec![format!("{warm}_app_key_v1")]);
    want
}

#[test]
fn a_pr_run_upgrades_the_head_over_a_copy_of_the_canonicals_data_which_stays_byte_identical() {
    engine();
    let up = Upstream::new("cwra");
    let recipe = up.recipe(90, Some(MARKER_CHECK));
    let (base_commit, warm_volume) = promoted(&up, &recipe);
    let before = up.volume_digest(&warm_volume);
    let name = RecipeName::parse(&up.name).unwrap();
    let canonical = StateDir::new(up.state()).read_canonical(&name).unwrap();

    // A fresh install of the head would write the marker `2.0.0-pr`: the custom stage reads
    // `1.0.0`, the marker the canonical's install wrote, so the head runs on the canonical's
    // data (and with its secret: the app is unhealthy without it).
    let head = up.branch("feature", "2.0.0-pr", false);
    up.sync_mirror();
    let green = pr_run(&up, &recipe, "feature", &head, "21", "1.0.0");
    let r = &green.report;
    assert_eq!(
        (r.green, r.exit_code, r.promoted),
        (true, 0, false),
        "{r:#?}"
    );
    let (status, reason) = stage(&green, Stage::Install);
    assert_eq!(status, StageStatus::Skipped);
    assert!(
        reason.starts_with(&format!(
            "reattached the warm canonical {BASE} (promoted 20"
        )),
        "{reason}"
    );
    assert_eq!(stage(&green, Stage::Upgrade).0, StageStatus::Passed);
    assert_eq!(stage(&green, Stage::Custom).0, StageStatus::Passed);
    let warm = r.warm.as_ref().expect("the report records the warm base");
    assert_eq!(
        (warm.canonical.as_str(), warm.commit.as_str()),
        (BASE, base_commit.as_str())
    );
    assert_eq!(warm.volumes.len(), 1, "{warm:?}");
    assert_eq!(warm.volumes[0].from, warm_volume);
    assert!(
        warm.volumes[0]
            .to
            .starts_with(&format!("cold-{}-", up.name))
            && warm.volumes[0].to.ends_with("_data")
            && warm.volumes[0].bytes > 0,
        "{warm:?}"
    );
    assert!(
        r.gate.reasons.iter().any(|g| g.contains("warm, not cold")),
        "{:?}",
        r.gate.reasons
    );
    assert!(
        r.summary().contains(&format!(
            "upgrade from canonical {BASE} with its data: passed"
        )),
        "{}",
        r.summary()
    );
    assert_eq!(
        StateDir::new(up.state()).read_canonical(&name).unwrap(),
        canonical,
        "a warm run never changes the canonical"
    );
    assert_eq!(up.volume_digest(&warm_volume), before, "green run");
    assert_eq!(up.objects(), only_the_warm_canonical(&up), "green run");

    // A head that never turns healthy: red, and the canonical's data is still untouched.
    let broken = up.branch("broken", "2.0.1-pr", true);
    up.sync_mirror();
    let short = up.recipe(20, Some(MARKER_CHECK));
    let red = pr_run(&up, &short, "broken", &broken, "22", "1.0.0");
    assert_eq!((red.report.green, red.report.exit_code), (false, 1));
    assert_eq!(stage(&red, Stage::Install).0, StageStatus::Skipped);
    assert_eq!(stage(&red, Stage::Upgrade).0, StageStatus::Failed);
    assert!(red.report.summary().contains(&format!(
        "upgrade from canonical {BASE} with its data: failed"
    )));
    assert_eq!(up.volume_digest(&warm_volume), before, "red run");
    assert_eq!(up.objects(), only_the_warm_canonical(&up), "red run");

    // The command runner: canon makes the copies, the harness gets their names and the base.
    let log = up.work.join("harness.env");
    let harness = format!(
        "env | grep -E '^CANON_(WARM|COLD|UPGRADE_BASE)' | sort > {log}\n\
         docker volume inspect \"$CANON_WARM_VOLUMES\" >/dev/null\n\
         printf '%s' '{{\"stages\":[{{\"name\":\"upgrade\",\"status\":\"passed\",\"seconds\":1}}]}}' > \"$CANON_RESULTS\"",
        log = log.display()
    );
    let runner = CommandRunner {
        command: harness,
        promote_command: None,
        timeout: Duration::from_secs(120),
    };
    let mut settings = up.run_settings(&recipe, TestedRef::Ref("feature".into()), "23", &[]);
    settings.recipe.test_command = None;
    let by_harness = run_tag_mode(&settings, &runner).expect("the command runner's run");
    assert_eq!(by_harness.report.exit_code, 0, "{:#?}", by_harness.report);
    let copies = &by_harness.report.warm.as_ref().expect("warm").volumes;
    let env = std::fs::read_to_string(&log).unwrap();
    assert!(env.contains("CANON_WARM=1\n"), "{env}");
    assert!(env.contains("CANON_COLD=0\n"), "{env}");
    assert!(
        env.contains(&format!("CANON_UPGRADE_BASE={BASE}\n")),
        "{env}"
    );
    assert!(
        env.contains(&format!("CANON_WARM_VOLUMES={}\n", copies[0].to)),
        "{env}"
    );
    assert_eq!(up.volume_digest(&warm_volume), before, "command runner");
    assert_eq!(
        up.objects(),
        only_the_warm_canonical(&up),
        "the copies are gone"
    );
    up.drop_warm();
}

#[test]
fn two_pr_runs_of_one_recipe_at_once_each_get_their_own_copies() {
    engine();
    let up = Upstream::new("cwrb");
    let recipe = up.recipe(90, Some(MARKER_CHECK));
    let (_, warm_volume) = promoted(&up, &recipe);
    let before = up.volume_digest(&warm_volume);
    let head = up.branch("feature", "2.0.0-pr", false);
    up.sync_mirror();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| pr_run(&up, &recipe, "feature", &head, "31", "1.0.0"));
        let b = s.spawn(|| pr_run(&up, &recipe, "feature", &head, "32", "1.0.0"));
        (a.join().unwrap(), b.join().unwrap())
    });
    for r in [&a.report, &b.report] {
        assert_eq!((r.green, r.exit_code), (true, 0), "{r:#?}");
    }
    let copy = |o: &RunOutcome| o.report.warm.as_ref().unwrap().volumes[0].to.clone();
    assert_ne!(copy(&a), copy(&b), "each run copies into its own volume");
    assert_eq!(up.volume_digest(&warm_volume), before);
    assert_eq!(up.objects(), only_the_warm_canonical(&up));
    up.drop_warm();
}

#[test]
fn a_killed_pr_run_leaves_no_hold_behind_and_the_sweeps_cleanup_removes_its_copies() {
    engine();
    let up = Upstream::new("cwrc");
    let recipe = up.recipe(90, Some(MARKER_CHECK));
    let (_, warm_volume) = promoted(&up, &recipe);
    let before = up.volume_digest(&warm_volume);
    up.branch("feature", "2.0.0-pr", false);
    up.sync_mirror();
    let enrollment = up.work.join("enrollment.yml");
    std::fs::write(
        &enrollment,
        up.enrollment_yaml(Some(90), Some(MARKER_CHECK), 2),
    )
    .unwrap();
    let state = up.state();
    // The run stops right after its first copy, still holding the warm data; while it holds
    // it, the status names it; then it is killed with SIGKILL.
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_canon-plugin"))
        .args([
            "run", "--runner", "docker", "--ref", "feature", "--recipe", &up.name,
        ])
        .arg("--config")
        .arg(&enrollment)
        .arg("--state-dir")
        .arg(&state)
        .arg("--work-dir")
        .arg(up.work.join("runs"))
        .env("CANON_TEST_FAULT", "warm:copied@stop")
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = run.stderr.take().unwrap();
    let (seen, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let stopped = line.contains("test fault point warm:copied: stopped");
            let _ = seen.send(line);
            if stopped {
                break;
            }
        }
    });
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(240);
    while !log
        .iter()
        .any(|l: &String| l.contains("warm:copied: stopped"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => log.push(line),
            Err(_) => {
                let _ = run.kill();
                panic!("the run did not reach its copy:\n{}", log.join("\n"));
            }
        }
    }
    let name = RecipeName::parse(&up.name).unwrap();
    let holds = WarmHolds::new(&state, &name);
    let status = holds.status().unwrap();
    assert_eq!(status.status, WarmState::Attached, "{status}");
    assert_eq!(status.holders[0].pid, run.id(), "{status}");
    run.kill().unwrap();
    let died = run.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&died),
        Some(9)
    );
    let status = holds.status().unwrap();
    assert!(status.is_idle(), "a dead run is no holder: {status}");
    let started = Instant::now();
    let promote = holds
        .promote(
            &Holder {
                build: "t".into(),
                what: "test".into(),
            },
            LockWait::Fail,
        )
        .expect("no hold is left behind by a killed run");
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(promote);
    let copies: Vec<String> = up.objects()["volumes"]
        .iter()
        .filter(|v| v.starts_with("cold-"))
        .cloned()
        .collect();
    assert_eq!(copies.len(), 1, "the killed run's copy is left: {copies:?}");
    let cleaned = cleanup_stale_of(Some(&up.name), Duration::ZERO, false).unwrap();
    assert!(cleaned.failed.is_empty(), "{cleaned:?}");
    assert!(
        cleaned.removed.iter().any(|(_, n)| *n == copies[0]),
        "{cleaned:?}"
    );
    assert_eq!(up.objects(), only_the_warm_canonical(&up));
    assert_eq!(up.volume_digest(&warm_volume), before);
    up.drop_warm();
}

#[test]
fn a_pr_run_without_warm_data_on_this_host_runs_cold_and_says_why() {
    engine();
    let up = Upstream::new("cwrd");
    let recipe = up.recipe(90, Some(MARKER_CHECK));
    let base = up.release(BASE, "1.0.0", false);
    let head = up.branch("feature", "2.0.0-pr", false);
    up.sync_mirror();

    // No canonical: a fresh install of the head, which writes its own marker.
    let cold = pr_run(&up, &recipe, "feature", &head, "41", "2.0.0-pr");
    let r = &cold.report;
    assert_eq!((r.green, r.exit_code), (true, 0), "{r:#?}");
    assert!(r.warm.is_none());
    assert_eq!(
        r.cold_because.as_deref(),
        Some("the recipe has no canonical yet")
    );
    assert_eq!(stage(&cold, Stage::Install).0, StageStatus::Passed);
    assert!(r
        .summary()
        .contains("cold because: the recipe has no canonical yet"));

    // A canonical whose warm data is on another Docker node: cold, upgrading from a fresh
    // install of the canonical as a tag run does.
    let name = RecipeName::parse(&up.name).unwrap();
    let mut record = up.canonical(BASE, &base);
    record.host = Some("another-node".into());
    let dir = StateDir::new(up.state());
    let lock = dir.lock(&name, LockWait::Fail).unwrap();
    dir.write_canonical(&lock, &record).unwrap();
    drop(lock);
    let elsewhere = pr_run(&up, &recipe, "feature", &head, "42", "1.0.0");
    let r = &elsewhere.report;
    assert_eq!((r.green, r.exit_code), (true, 0), "{r:#?}");
    assert!(r.warm.is_none());
    let why = r.cold_because.as_deref().unwrap_or_default();
    assert!(
        why.contains("warm data is on host another-node, not on this host"),
        "{why}"
    );
    assert_eq!(stage(&elsewhere, Stage::Install).0, StageStatus::Passed);
    assert_eq!(stage(&elsewhere, Stage::Upgrade).0, StageStatus::Passed);
    assert_eq!(
        StateDir::new(up.state())
            .read_canonical(&name)
            .unwrap()
            .unwrap(),
        record
    );
    assert!(up.objects()["volumes"].is_empty(), "{:?}", up.objects());
}
