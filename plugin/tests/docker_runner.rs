//! The `docker` runner on the machine's real Docker engine: the fixture recipe (`fixtures/recipe`,
//! image built locally from `testapp/`) released as tags in a local upstream, cold runs, promotes
//! to `warm-<recipe>`, and nothing left behind.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped. Each test uses its own recipe name, so they run in parallel without sharing a
//! stack, a volume or a secret.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use canon_plugin::engine::cleanup_stale_of;
use canon_plugin::runners::docker::{warm_volume_sizes, DockerRunner};
use canon_plugin::runners::Runner;
use canon_shared::gate::{StageResult, StageStatus, TestedRef};
use canon_shared::recipe::{RecipeName, Stage};
use canon_testkit::git::{git, peeled};

use crate::support;
use support::engine::{empty, engine, ok, status, PastLint, Upstream, MARKER_CHECK};

#[test]
fn first_tag_goes_green_and_is_promoted_then_the_warm_canonical_upgrades_in_place() {
    engine();
    let up = Upstream::new("cfxa");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", false);
    let recipe = up.recipe(60, Some(MARKER_CHECK));
    let mut ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    ctx.env.insert("EXPECT_MARKER".into(), "1.0.0".into());
    let runner = DockerRunner::default();
    assert_eq!(up.objects(), empty());

    let results = runner
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Passed),
        ],
        "{results:#?}"
    );
    assert_eq!(results[1].reason.as_deref(), Some("no canonical yet"));
    assert_eq!(up.objects(), empty(), "the cold run left objects behind");

    runner.promote(&ctx).expect("promote");
    // What tag mode does once the canonical names the tag: the known-good copies go.
    runner
        .settle_promote(&ctx, Some(&up.canonical("1.0.0+0.1.0", &c1)))
        .expect("settle");
    let warm = format!("warm-{}", up.name);
    let mut want = empty();
    want.insert("volumes", vec![format!("{warm}_data")]);
    want.insert("secrets", vec![format!("{warm}_app_key_v1")]);
    assert_eq!(
        up.objects(),
        want,
        "promote must leave only the warm volumes and secrets"
    );
    assert_eq!(
        up.volume_file(&format!("{warm}_data"), "installed"),
        "1.0.0"
    );
    let sizes = warm_volume_sizes(&up.name).unwrap();
    assert_eq!(sizes.len(), 1, "{sizes:?}");
    assert_eq!(sizes[0].name, format!("{warm}_data"));
    assert!(sizes[0].bytes.is_some(), "{sizes:?}");

    // The next tag's promote upgrades the warm data in place: the install marker survives.
    let c2 = up.release("1.1.0+0.1.0", "1.1.0", false);
    let ctx2 = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "2");
    runner.promote(&ctx2).expect("second promote");
    runner
        .settle_promote(&ctx2, Some(&up.canonical("1.1.0+0.1.0", &c2)))
        .expect("settle");
    assert_eq!(up.objects(), want);
    assert_eq!(
        up.volume_file(&format!("{warm}_data"), "installed"),
        "1.0.0"
    );

    // A tag that never becomes healthy cannot replace the warm canonical: its data is put back.
    let c3 = up.release("1.2.0+0.1.0", "1.2.0", true);
    let bad = up.recipe(8, None);
    let ctx3 = up.ctx(&bad, "1.2.0+0.1.0", &c3, "3");
    let err = runner.promote(&ctx3).unwrap_err().to_string();
    assert!(err.contains("timed out"), "{err}");
    assert_eq!(up.objects(), want);
    assert_eq!(
        up.volume_file(&format!("{warm}_data"), "installed"),
        "1.0.0"
    );
    up.drop_warm();
}

#[test]
fn second_tag_upgrades_from_the_canonical_and_the_install_marker_survives_upgrade_and_restore() {
    engine();
    let up = Upstream::new("cfxb");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", false);
    let c2 = up.release("1.1.0+0.1.0", "1.1.0", false);
    let recipe = up.recipe(60, Some(MARKER_CHECK));
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "7");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    // Installed at the canonical: the marker says 1.0.0 after upgrade, backup and restore.
    ctx.env.insert("EXPECT_MARKER".into(), "1.0.0".into());
    let before = up.objects();
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert!(
        results.iter().all(|r| r.status == StageStatus::Passed),
        "{results:#?}"
    );
    assert_eq!(results.len(), 5);
    assert_eq!(up.objects(), before, "the cold run left objects behind");
}

/// The custom stage of the first-boot test: the app runs with the run's `FIRST_BOOT_SECONDS`,
/// its healthcheck's start period covers that first boot (swarm would kill it otherwise), and
/// the data marker says the canonical's version installed the data.
const FIRST_BOOT_CHECK: &str = r#"set -eu
spec=$(docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec}}' "${STACK_NAME}_app")
echo "app spec: $spec"
echo "$spec" | grep -F "\"FIRST_BOOT_SECONDS=${FIRST_BOOT_SECONDS}\""
echo "$spec" | grep -F "\"StartPeriod\":${FIRST_BOOT_SECONDS}000000000,"
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app" | head -n1)
got=$(docker exec "$c" /canon-testapp marker)
echo "marker: $got"
test "$got" = "$EXPECT_MARKER""#;

#[test]
fn a_first_boot_cost_makes_the_install_wait_that_long_and_the_run_stays_green() {
    // FIRST_BOOT_SECONDS reaches the deploy through the run's env, as `--env` gives it. The
    // install deploys the canonical on empty volumes: N seconds of 503 before it is healthy,
    // then the stability window, and swarm must not kill it meanwhile. The upgrade and the
    // restore deploy on data that has the marker.
    const N: u64 = 6;
    let window = 2.0;
    engine();
    let up = Upstream::new("cfxp");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", false);
    let c2 = up.release("1.1.0+0.1.0", "1.1.0", false);
    let recipe = up.recipe(60, Some(FIRST_BOOT_CHECK));
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "8");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    ctx.env.insert("FIRST_BOOT_SECONDS".into(), N.to_string());
    ctx.env.insert("EXPECT_MARKER".into(), "1.0.0".into());
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Passed),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Passed),
        ],
        "{results:#?}"
    );
    // A deploy that pays the first boot is healthy no sooner than N s after it starts, and then
    // stays up for the window.
    let first_boot = N as f64 + window;
    assert!(
        results[0].seconds >= first_boot,
        "the install paid no first boot: {results:#?}"
    );
    assert_eq!(up.objects(), empty(), "the run left objects behind");
}

#[test]
fn a_never_healthy_tag_goes_red_within_its_timeout_and_leaves_nothing_behind() {
    engine();
    let up = Upstream::new("cfxc");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", true);
    let recipe = up.recipe(10, Some("true"));
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "9");
    let before = up.objects();
    let started = Instant::now();
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    let took = started.elapsed();
    assert_eq!(results[0].name, Stage::Install);
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("timed out after 10s"), "{reason}");
    assert!(reason.contains("0/1 running"), "{reason}");
    assert!(
        results[1..]
            .iter()
            .all(|r| r.status == StageStatus::Skipped),
        "{results:#?}"
    );
    assert!(results[0].seconds < 20.0, "{results:#?}");
    assert!(took < Duration::from_secs(60), "the red run took {took:?}");
    assert_eq!(up.objects(), before, "the red run left objects behind");
    assert_eq!(before, empty());
}

#[test]
fn the_sweep_removes_an_old_killed_runs_leftovers_and_never_a_warm_canonical() {
    engine();
    let up = Upstream::new("cfxd");
    let old = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 7200)
        .to_string();
    let cold = format!("cold-{}-abcdef-1", up.name);
    let warm = format!("warm-{}", up.name);
    let labels = |stack: &str, kind: &str| {
        vec![
            "--label".to_string(),
            "canon.managed=true".to_string(),
            "--label".to_string(),
            format!("canon.stack={stack}"),
            "--label".to_string(),
            format!("canon.kind={kind}"),
            "--label".to_string(),
            format!("canon.recipe={}", up.name),
            "--label".to_string(),
            format!("canon.created={old}"),
        ]
    };
    let create = |what: &[&str], stack: &str, kind: &str, name: &str| {
        let mut args: Vec<String> = what.iter().map(|s| s.to_string()).collect();
        args.extend(labels(stack, kind));
        args.push(name.to_string());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ok("docker", &args);
    };
    create(
        &["volume", "create"],
        &cold,
        "cold",
        &format!("{cold}_data"),
    );
    create(
        &["network", "create", "--driver", "overlay"],
        &cold,
        "cold",
        &format!("{cold}_internal"),
    );
    let mut secret = Command::new("docker");
    secret
        .args(["secret", "create"])
        .args(labels(&cold, "cold"))
        .args([&format!("{cold}_key_v1"), "-"]);
    let mut child = secret.stdin(std::process::Stdio::piped()).spawn().unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"leftover").unwrap();
    }
    assert!(child.wait().unwrap().success());
    let helper = format!("{cold}-canon-helper-1");
    create(
        &["create", "--name", &helper, "--entrypoint", "/x"],
        &cold,
        "helper",
        "canon-testapp:0.1.0",
    );
    create(
        &["volume", "create"],
        &warm,
        "warm",
        &format!("{warm}_data"),
    );
    create(
        &["volume", "create"],
        &warm,
        "warm-prev",
        &format!("{warm}_data.prev"),
    );

    // Scoped to this test's recipe: other runs on the engine keep their objects.
    let dry = cleanup_stale_of(Some(&up.name), Duration::from_secs(3600), true).unwrap();
    let mine: Vec<&(String, String)> = dry
        .removed
        .iter()
        .filter(|(_, n)| n.contains(&up.name))
        .collect();
    assert_eq!(mine.len(), 4, "{dry:?}");
    assert!(
        dry.removed.iter().all(|(_, n)| !n.starts_with("warm-")),
        "{dry:?}"
    );
    assert!(up.objects()["volumes"].contains(&format!("{cold}_data")));

    let young = cleanup_stale_of(Some(&up.name), Duration::from_secs(3 * 3600), false).unwrap();
    assert!(
        young.removed.iter().all(|(_, n)| !n.contains(&up.name)),
        "{young:?}"
    );

    let report = cleanup_stale_of(Some(&up.name), Duration::from_secs(3600), false).unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let left = up.objects();
    assert_eq!(
        left["volumes"],
        vec![format!("{warm}_data"), format!("{warm}_data.prev")]
    );
    assert!(
        left["secrets"].is_empty() && left["networks"].is_empty(),
        "{left:?}"
    );
    let helpers = ok(
        "docker",
        &[
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=canon.stack={cold}"),
        ],
    );
    assert!(
        helpers.trim().is_empty(),
        "helper container left: {helpers}"
    );
    up.drop_warm();
}

#[test]
fn tag_mode_through_the_docker_runner_promotes_the_first_tag_then_upgrades_to_the_second() {
    use canon_plugin::tag_mode::{run_tag_mode, RunSettings};
    use canon_shared::mirror::GitRemote;
    use canon_shared::state::{LockWait, StateDir};

    engine();
    let up = Upstream::new("cfxe");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", false);
    up.sync_mirror();
    let recipe = up.recipe(60, Some(MARKER_CHECK));
    let state = up.work.join("state");
    let settings = |tag: &str| RunSettings {
        upstream: GitRemote::local(recipe.upstream.url.clone()),
        mirror: GitRemote::local(recipe.mirror.url.clone()),
        recipe: recipe.clone(),
        tested: TestedRef::Tag(tag.to_string()),
        claimed_commits: vec![],
        quick: false,
        warm: true,
        state_dir: state.clone(),
        state_repo: None,
        work_dir: up.work.join("runs"),
        keep_work_dir: false,
        lock_wait: LockWait::Wait(Duration::from_secs(10)),
        env: BTreeMap::from([("EXPECT_MARKER".to_string(), "1.0.0".to_string())]),
        build: "11".into(),
        build_link: None,
        trigger: "test".into(),
        report: None,
    };
    let runner = DockerRunner::default();
    let name = RecipeName::parse(&up.name).unwrap();

    let first = run_tag_mode(&settings("1.0.0+0.1.0"), &runner).expect("first run");
    assert!(first.promoted(), "{:#?}", first.report);
    let canonical = StateDir::new(&state)
        .read_canonical(&name)
        .unwrap()
        .unwrap();
    assert_eq!(canonical.version.to_string(), "1.0.0+0.1.0");
    assert_eq!(canonical.commit, c1);

    let c2 = up.release("1.1.0+0.1.0", "1.1.0", false);
    up.sync_mirror();
    let second = run_tag_mode(&settings("1.1.0+0.1.0"), &runner).expect("second run");
    assert!(second.promoted(), "{:#?}", second.report);
    let upgrade = second
        .report
        .stages
        .iter()
        .find(|s| s.name == Stage::Upgrade)
        .unwrap();
    assert_eq!(
        upgrade.status,
        StageStatus::Passed,
        "{:#?}",
        second.report.stages
    );
    let canonical = StateDir::new(&state)
        .read_canonical(&name)
        .unwrap()
        .unwrap();
    assert_eq!(canonical.version.to_string(), "1.1.0+0.1.0");
    assert_eq!(canonical.commit, c2);
    let warm = format!("warm-{}", up.name);
    let mut want = empty();
    want.insert("volumes", vec![format!("{warm}_data")]);
    want.insert("secrets", vec![format!("{warm}_app_key_v1")]);
    assert_eq!(up.objects(), want);
    assert_eq!(
        up.volume_file(&format!("{warm}_data"), "installed"),
        "1.0.0"
    );
    up.drop_warm();
}

#[test]
fn the_abra_runner_runs_the_ladder_in_order_with_a_private_abra_dir() {
    use canon_plugin::runners::abra::AbraRunner;
    use std::os::unix::fs::PermissionsExt;

    let up = Upstream::new("cfxf");
    let c1 = up.release("1.0.0+0.1.0", "1.0.0", false);
    let c2 = up.release("1.1.0+0.1.0", "1.1.0", false);
    let log = up.work.join("abra.log");
    let fake = up.work.join("abra");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$ABRA_DIR|$*\" >> {}\ncase \"$*\" in *'app restore'*) echo 'no snapshot' >&2; exit 4;; esac\nexit 0\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let runner = AbraRunner {
        program: fake.display().to_string(),
        ..AbraRunner::default()
    };
    let mut recipe = up.recipe(30, Some("test \"$CANON_RUNNER\" = abra"));
    // The operator's value for a secret abra generates: abra's is removed and this one inserted
    // from a file, never from the command line.
    let supplied = up.work.join("app-key-value");
    std::fs::write(&supplied, "operator-value\n").unwrap();
    recipe.secrets.insert("app_key".into(), supplied);
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "5");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    let results = runner.run(&ctx).unwrap().past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Passed),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Failed),
            (Stage::Custom, StageStatus::Passed),
        ]
    );
    assert!(
        results[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("no snapshot"),
        "{results:#?}"
    );
    let lines = std::fs::read_to_string(&log).unwrap();
    let abra_dir = ctx.run_dir.join("abra");
    let stack = canon_plugin::recipe::names::cold_stack_name(&up.name, "1.1.0+0.1.0", "5");
    // abra names the stack after the domain: `<stack>.canon.localhost` would make it longer
    // than abra's own for `<recipe>.example.com`, so the domain is the stack name alone.
    let domain = canon_plugin::recipe::names::abra_app_domain(&up.name, &stack, "canon.localhost");
    assert_eq!(domain, stack);
    let value_file = abra_dir.join("secret-values").join("app_key");
    let want: Vec<String> = [
        "server add --local --no-input".to_string(),
        format!("app new {} 1.0.0+0.1.0 --server default --domain {domain} --secrets --no-input --offline", up.name),
        format!("app secret remove {domain} app_key --no-input"),
        format!("app secret insert {domain} app_key v1 {} --file --no-input", value_file.display()),
        format!("app deploy {domain} 1.0.0+0.1.0 --no-input --offline"),
        format!("app upgrade {domain} 1.1.0+0.1.0 --no-input --offline"),
        format!("app backup create {domain} --no-input"),
        format!("app restore {domain} --no-input"),
        format!("app undeploy {domain} --no-input"),
        format!("app volume remove {domain} --force --no-input"),
        format!("app secret remove {domain} --all --no-input"),
        format!("app remove {domain} --force --no-input"),
    ]
    .into_iter()
    .map(|l| format!("{}|{l}", abra_dir.display()))
    .collect();
    assert_eq!(lines.lines().collect::<Vec<_>>(), want);
    assert_eq!(
        std::fs::read_to_string(&value_file).unwrap(),
        "operator-value",
        "the supplied value, its trailing newline dropped as the docker runner drops it"
    );
    let recipe_dir = abra_dir.join("recipes").join(&up.name);
    assert!(
        recipe_dir.join("compose.yml").exists(),
        "the recipe is cloned into the private ABRA_DIR"
    );
    // A clone of the run's checkout: HEAD detached at the commit under test, both releases'
    // tags there for `abra app new` and `abra app upgrade`, a clean tree.
    assert_eq!(git(&recipe_dir, &["rev-parse", "HEAD"]), c2);
    assert_eq!(
        git(&recipe_dir, &["rev-parse", "--abbrev-ref", "HEAD"]),
        "HEAD"
    );
    assert_eq!(peeled(&recipe_dir, "1.1.0+0.1.0"), c2);
    assert_eq!(peeled(&recipe_dir, "1.0.0+0.1.0"), c1);
    assert_eq!(git(&recipe_dir, &["status", "--porcelain"]), "");
}

#[test]
fn the_abra_and_command_runners_refuse_a_host_mount_before_anything_deploys() {
    use canon_plugin::runners::abra::AbraRunner;
    use canon_plugin::runners::command::CommandRunner;
    use std::os::unix::fs::PermissionsExt;

    let up = Upstream::new("cfxh");
    let c1 = up.release_fixture("recipe", "1.0.0+0.1.0", |name, text| {
        if name == "compose.yml" {
            text.replace(
                "      - data:/data\n",
                "      - data:/data\n      - /etc:/host-etc:ro\n",
            )
        } else {
            text
        }
    });
    let log = up.work.join("calls.log");
    let fake = up.work.join("abra");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"abra $*\" >> {}\nexit 0\n", log.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut recipe = up.recipe(30, None);
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    let abra = AbraRunner {
        program: fake.display().to_string(),
        ..AbraRunner::default()
    };
    let results = abra.run(&ctx).unwrap().past_lint();
    assert_eq!(results[0].name, Stage::Install);
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.as_deref().unwrap();
    assert!(reason.contains("bind_mount /etc:/host-etc:ro"), "{reason}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!calls.contains("app new"), "nothing is created: {calls}");
    assert!(
        !calls.contains("app deploy"),
        "nothing is deployed: {calls}"
    );

    let harness = CommandRunner {
        command: format!("echo harness >> {}", log.display()),
        promote_command: None,
        timeout: std::time::Duration::from_secs(30),
    };
    let err = harness.run(&ctx).map(|_| ()).unwrap_err().to_string();
    assert!(err.contains("bind_mount /etc:/host-etc:ro"), "{err}");
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !calls.contains("harness"),
        "the harness never starts: {calls}"
    );

    // The enrollment allows it: both go ahead.
    recipe.host_access = vec!["/etc".into()];
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "2");
    // It writes no results file, so the run is red for that; what counts is that it ran.
    harness.run(&ctx).map(|_| ()).unwrap_err();
    let calls = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        calls.contains("harness"),
        "allowed, the harness runs: {calls}"
    );
}

#[test]
fn a_bonfire_shaped_recipe_installs_green_with_compose_file_built_by_expansion() {
    // The shape that went red at install in 0.0s with `checkout/$COMPOSE_FILE: No such file or
    // directory` while `.env.sample` lines were read without expansion.
    engine();
    let up = Upstream::new("cfxm");
    let c1 = up.release_fixture("recipe-multifile", "1.0.0+0.1.0", |_, text| text);
    let recipe = up.recipe_with(None, None);
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    assert_eq!(up.objects(), empty());
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Skipped),
        ],
        "{results:#?}"
    );
    // No enrollment deploy_timeout: the label `${TIMEOUT:-240}` decides, and the report says so.
    // The fixture joins no `proxy` network: traefik would not reach it, nothing is served.
    let want = vec![
        "deploy timeout 240s (source: label)".to_string(),
        "serving check skipped: the recipe declares no `proxy` network, where traefik reaches its services".to_string(),
    ];
    assert_eq!(results[0].notes, want);
    // A passed restore also says what it proved: without a data_check, the files only.
    let mut restore = vec![
        "restore proven at the file level only: the enrollment sets no data_check".to_string(),
    ];
    restore.extend(want);
    assert_eq!(results[3].notes, restore);
    assert_eq!(results[0].serving, None);
    assert_eq!(up.objects(), empty(), "the cold run left objects behind");
}

#[test]
fn a_missing_required_variable_makes_the_run_red_at_lint_with_the_recipes_message_and_deploys_nothing(
) {
    engine();
    let up = Upstream::new("cfxr");
    let c1 = up.release_fixture("recipe-multifile", "1.0.0+0.1.0", |name, text| {
        if name == "compose.yml" {
            text.replace(
                "        - \"traefik.enable=true\"",
                "        - \"traefik.enable=true\"\n        - \"canon.db=${DB_HOST:?DB_HOST must be set for this recipe}\"",
            )
        } else {
            text
        }
    });
    let recipe = up.recipe_with(Some(30), None);
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    // The lint stage reads the compose files as the install would, so the recipe's own message
    // stops the run before anything is deployed.
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .stages;
    assert_eq!(results[0].name, Stage::Lint);
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("DB_HOST must be set for this recipe"),
        "{reason}"
    );
    assert!(
        results[1..]
            .iter()
            .all(|r| r.status == StageStatus::Skipped),
        "{results:#?}"
    );
    assert_eq!(up.objects(), empty(), "the red run left objects behind");
}

/// The custom stage of the backup hook tests: the db's data marker (what its restore loaded
/// back) must say `db`, and each `path=content` argument pair in `$EXPECT_FILES` must hold.
const DB_CHECK: &str = r#"set -eu
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_db" | head -n1)
got=$(docker exec "$c" /canon-testapp marker)
echo "db marker: $got"
test "$got" = "db"
for pair in ${EXPECT_FILES:-}; do
  file=${pair%%=*}
  want=${pair#*=}
  got=$(docker exec "$c" cat "$file")
  echo "$file: $got"
  test "$got" = "$want"
done"#;

/// Runs the bonfire-shaped fixture with its db's backupbot labels replaced by `labels` (lines of
/// the `deploy.labels` block) and extra db volumes `extra_volumes` (`name:/target`); returns the
/// stage results, after checking the run left nothing behind.
fn run_db_backup(
    prefix: &str,
    labels: &str,
    extra_volumes: &[&str],
    expect_files: &str,
) -> Vec<StageResult> {
    engine();
    let up = Upstream::new(prefix);
    let bonfire_labels = r#"        backupbot.backup: ${ENABLE_BACKUPS:-true}
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.volumes.db-data.path: "backup.sql"
        backupbot.restore.post-hook: '/pg_backup.sh restore'
"#;
    let c1 = up.release_fixture("recipe-multifile", "1.0.0+0.1.0", |name, text| {
        if name != "compose.postgres.yml" {
            return text;
        }
        assert!(
            text.contains(bonfire_labels),
            "the fixture's labels changed"
        );
        let mut text = text.replace(bonfire_labels, labels);
        for v in extra_volumes {
            let key = v.split(':').next().unwrap();
            text = text
                .replace(
                    "      - db-data:/var/lib/postgresql/data\n",
                    &format!("      - db-data:/var/lib/postgresql/data\n      - {v}\n"),
                )
                .replace(
                    "volumes:\n  db-data:\n",
                    &format!("volumes:\n  db-data:\n  {key}:\n"),
                );
        }
        text
    });
    let recipe = up.recipe_with(Some(90), Some(DB_CHECK));
    let mut ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    ctx.env.insert("EXPECT_FILES".into(), expect_files.into());
    assert_eq!(up.objects(), empty());
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(up.objects(), empty(), "the cold run left objects behind");
    results
}

#[test]
fn bonfires_hooks_dump_before_the_backup_and_load_the_restored_dump_after_the_restore() {
    // Map form, as bonfire writes it. After the backup, a post-hook changes the data and removes
    // the dump: only the restored backup.sql, loaded by the restore post-hook, brings `db` back.
    let results = run_db_backup(
        "cfxh",
        r#"        backupbot.backup: ${ENABLE_BACKUPS:-true}
        backupbot.backup.pre-hook: "/pg_backup.sh backup"
        backupbot.backup.post-hook: "echo changed-after-backup > $$DATA_DIR/installed && rm $$DATA_DIR/backup.sql"
        backupbot.backup.volumes.db-data.path: "backup.sql"
        backupbot.restore.post-hook: '/pg_backup.sh restore'
"#,
        &[],
        "",
    );
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Passed),
        ],
        "{results:#?}"
    );
}

#[test]
fn a_failing_backup_hook_fails_the_stage_naming_the_hook_and_the_tail_of_its_output() {
    let results = run_db_backup(
        "cfxk",
        r#"        backupbot.backup: "true"
        backupbot.backup.pre-hook: "echo dumping the database; echo 'pg_dump: connection refused' >&2; exit 3"
        backupbot.backup.volumes.db-data.path: "backup.sql"
"#,
        &[],
        "",
    );
    assert_eq!(results[2].name, Stage::Backup);
    assert_eq!(results[2].status, StageStatus::Failed, "{results:#?}");
    let reason = results[2].reason.clone().unwrap_or_default();
    for want in [
        "backupbot.backup.pre-hook of service `db`",
        "failed with exit code 3",
        "dumping the database | pg_dump: connection refused",
    ] {
        assert!(reason.contains(want), "{want:?} in {reason}");
    }
    assert_eq!(
        (results[3].status, results[3].reason.as_deref()),
        (StageStatus::Skipped, Some("backup failed"))
    );
    // The stack kept running through the backup, so the custom stage still checks it.
    assert_eq!(results[4].status, StageStatus::Passed, "{results:#?}");
}

#[test]
fn list_form_labels_leave_an_excluded_volume_out_and_restore_a_whole_volume() {
    // db-data is backed up whole (canon's marker proves it) and db-cache is left out: after the
    // post-hook changes both, the restore brings db-data's marker back and leaves db-cache as the
    // post-hook wrote it.
    let results = run_db_backup(
        "cfxl",
        r#"        - "backupbot.backup=${ENABLE_BACKUPS:-true}"
        - "backupbot.backup.volumes.db-cache=false"
        - "backupbot.backup.pre-hook=echo before-backup > /cache/state"
        - "backupbot.backup.post-hook=echo changed-after-backup > $$DATA_DIR/installed && echo after-backup > /cache/state"
"#,
        &["db-cache:/cache"],
        "/cache/state=after-backup",
    );
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Skipped),
            (Stage::Backup, StageStatus::Passed),
            (Stage::Restore, StageStatus::Passed),
            (Stage::Custom, StageStatus::Passed),
        ],
        "{results:#?}"
    );
}

/// Returns every swarm config name that holds `needle`.
fn configs_named(needle: &str) -> Vec<String> {
    ok("docker", &["config", "ls", "--format", "{{.Name}}"])
        .lines()
        .filter(|n| n.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The custom stage of the expose-all-env test: the config template rendered the app env's
/// `GREETING` and `DOMAIN` (neither is in the service's `environment:`), the `app` service
/// carries abra's labels, and the `db` service got no exposed env.
const EXPOSED_ENV_CHECK: &str = r#"set -eu
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app" | head -n1)
got=$(docker exec "$c" /canon-testapp cat /etc/app/greeting.txt)
echo "rendered: $got"
test "$got" = "hello from the app env at ${DOMAIN}"
labels=$(docker service inspect --format '{{json .Spec.Labels}}' "${STACK_NAME}_app")
echo "labels: $labels"
echo "$labels" | grep -F "\"coop-cloud.${STACK_NAME}.recipe\":\"${CANON_RECIPE}\""
echo "$labels" | grep -F "\"coop-cloud.${STACK_NAME}.chaos\":\"false\""
echo "$labels" | grep -F "\"coop-cloud.${STACK_NAME}.version\":\"${CANON_TAG}\""
dbenv=$(docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK_NAME}_db")
echo "db env: $dbenv"
case "$dbenv" in *GREETING*) echo "the db service got the app env"; exit 1;; esac"#;

#[test]
fn a_config_template_sees_app_env_values_its_environment_does_not_list_and_the_app_carries_abras_labels(
) {
    // traefik's shape: `traefik.yml.tmpl` (template_driver: golang) reads `{{ env "..." }}` of
    // `.env` values its service's `environment:` never lists; abra's expose-all-env step puts
    // them there.
    engine();
    let up = Upstream::new("cfxv");
    let c1 = up.release_fixture_with(
        "recipe-multifile",
        "1.0.0+0.1.0",
        |name, text| match name {
            ".env.sample" => text + "GREETING=\"hello from the app env\"\n",
            "abra.sh" => text + "export GREETING_CONF_VERSION=v1\n",
            "compose.yml" => {
                assert!(text.contains("    secrets:\n      - app_key\n"));
                text.replace(
                    "    secrets:\n      - app_key\n",
                    "    secrets:\n      - app_key\n    configs:\n      - source: greeting\n        target: /etc/app/greeting.txt\n",
                ) + "\nconfigs:\n  greeting:\n    name: ${STACK_NAME}_greeting_${GREETING_CONF_VERSION}\n    file: greeting.txt.tmpl\n    template_driver: golang\n"
            }
            _ => text,
        },
        &[(
            "greeting.txt.tmpl",
            "{{ env \"GREETING\" }} at {{ env \"DOMAIN\" }}",
        )],
    );
    let recipe = up.recipe_with(Some(90), Some(EXPOSED_ENV_CHECK));
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(results[0].status, StageStatus::Passed, "{results:#?}");
    let custom = results.iter().find(|r| r.name == Stage::Custom).unwrap();
    assert_eq!(custom.status, StageStatus::Passed, "{results:#?}");
    assert_eq!(up.objects(), empty(), "the run left objects behind");
    assert!(
        configs_named(&up.name).is_empty(),
        "the run left configs behind"
    );
}

/// Releases the canonical (the bonfire-shaped fixture as it is) and a next tag that adds a
/// secret (`api_token`, `length=48`), a setting compose defaults (`NEW_SETTING`) and one only
/// `.env.sample` sets (`TAG_ONLY`); with release notes when `notes` is given. Returns the
/// commits.
fn release_a_tag_with_a_new_secret(up: &Upstream, notes: Option<&str>) -> (String, String) {
    let c1 = up.release_fixture("recipe-multifile", "1.0.0+0.1.0", |_, text| text);
    let extra: Vec<(&str, &str)> = notes
        .map(|n| vec![("release/1.1.0+0.1.0", n)])
        .unwrap_or_default();
    let c2 = up.release_fixture_with(
        "recipe-multifile",
        "1.1.0+0.1.0",
        |name, text| match name {
            ".env.sample" => {
                text + "NEW_SETTING=from-the-tag\nTAG_ONLY=from-the-tag\nSECRET_API_TOKEN_VERSION=v1 # length=48\n"
            }
            "compose.yml" => {
                assert!(text.ends_with("name: ${STACK_NAME}_app_key_${SECRET_APP_KEY_VERSION}\n"));
                text.replace(".version=1.0.0+0.1.0", ".version=1.1.0+0.1.0")
                    .replace(
                        "      - PUBLIC_URL=${OAUTH_ISSUER}\n",
                        "      - PUBLIC_URL=${OAUTH_ISSUER}\n      - NEW_SETTING=${NEW_SETTING:-compose-default}\n",
                    )
                    .replace(
                        "    secrets:\n      - app_key\n",
                        "    secrets:\n      - app_key\n      - api_token\n",
                    )
                    + "  api_token:\n    external: true\n    name: ${STACK_NAME}_api_token_${SECRET_API_TOKEN_VERSION}\n"
            }
            _ => text,
        },
        &extra,
    );
    (c1, c2)
}

/// The custom stage after an upgrade that followed release notes: the app runs with the
/// installed env (the compose default, never the tag's `.env.sample` values) and its new
/// secret has the 48 characters `length=48` asks for (only the count is printed).
const UPGRADED_ENV_CHECK: &str = r#"set -eu
env=$(docker service inspect --format '{{json .Spec.TaskTemplate.ContainerSpec.Env}}' "${STACK_NAME}_app")
echo "app env: $env"
echo "$env" | grep -F '"NEW_SETTING=compose-default"'
case "$env" in *from-the-tag*) echo "the tag's .env.sample reached the app"; exit 1;; esac
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app" | head -n1)
n=$(docker exec "$c" /canon-testapp cat /run/secrets/api_token | wc -c)
echo "api_token has $n characters"
test "$n" -eq 48"#;

#[test]
fn an_upgrade_whose_new_secret_the_installed_env_lacks_is_red_naming_it_without_release_notes() {
    engine();
    let up = Upstream::new("cfxu");
    let (c1, c2) = release_a_tag_with_a_new_secret(&up, None);
    let recipe = up.recipe_with(Some(90), Some("true"));
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "3");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(
        status(&results),
        vec![
            (Stage::Install, StageStatus::Passed),
            (Stage::Upgrade, StageStatus::Failed),
            (Stage::Backup, StageStatus::Skipped),
            (Stage::Restore, StageStatus::Skipped),
            (Stage::Custom, StageStatus::Skipped),
        ],
        "{results:#?}"
    );
    let reason = results[1].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("`api_token` (the installed env has no SECRET_API_TOKEN_VERSION)"),
        "{reason}"
    );
    assert!(
        reason.contains(
            "no release note names `api_token` or SECRET_API_TOKEN_VERSION (notes looked at: none)"
        ),
        "{reason}"
    );
    assert!(
        !reason.contains("app_key"),
        "only the missing secret is named: {reason}"
    );
    assert_eq!(up.objects(), empty(), "the red run left objects behind");
}

#[test]
fn an_upgrade_with_release_notes_creates_the_new_secret_and_passes_saying_so_on_the_installed_env()
{
    engine();
    let up = Upstream::new("cfxn");
    let (c1, c2) = release_a_tag_with_a_new_secret(
        &up,
        Some("Before upgrading, generate the new secret: abra app secret generate <domain> api_token v1\n"),
    );
    let recipe = up.recipe_with(Some(90), Some(UPGRADED_ENV_CHECK));
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "4");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert!(
        results.iter().all(|r| r.status == StageStatus::Passed),
        "{results:#?}"
    );
    let reason = results[1].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("release notes release/1.1.0+0.1.0") && reason.ends_with(": api_token"),
        "{reason}"
    );
    assert_eq!(up.objects(), empty(), "the run left objects behind");
}

#[test]
fn a_service_that_crash_loops_without_a_healthcheck_is_red_naming_its_failed_tasks() {
    // Each task runs 3 s, then exits 1; swarm restarts it. Without a healthcheck every task
    // counts as running at once, so only a stability window longer than a task's life sees it.
    engine();
    let up = Upstream::new("cfxz");
    let c1 = up.release_fixture("recipe", "1.0.0+0.1.0", |name, text| {
        if name != "compose.yml" {
            return text;
        }
        // The healthcheck block runs up to the deploy block that follows it.
        let start = text
            .find("    healthcheck:\n")
            .expect("the fixture has a healthcheck");
        let end = start
            + text[start..]
                .find("    deploy:\n")
                .expect("a deploy block follows");
        let mut text = text;
        text.replace_range(start..end, "");
        text.replace(
            "      - DATA_DIR=/data\n",
            "      - DATA_DIR=/data\n      - CRASH_AFTER=3\n",
        )
    });
    let recipe = up.recipe_windowed(Some(25), None, 8);
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    let started = Instant::now();
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(results[0].name, Stage::Install);
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("timed out after 25s"), "{reason}");
    assert!(
        reason.contains("app.1 failed: task: non-zero exit (1)"),
        "the reason names the task's own state and error: {reason}"
    );
    assert!(started.elapsed() < Duration::from_secs(90));
    assert_eq!(up.objects(), empty(), "the red run left objects behind");
}

#[test]
fn a_missing_image_fails_the_install_at_once_naming_the_rejected_task() {
    engine();
    let up = Upstream::new("cfxi");
    let image = format!("canon-missing-{}:0.0.1", up.name);
    let c1 = up.release_fixture("recipe-multifile", "1.0.0+0.1.0", |name, text| {
        if name == "compose.postgres.yml" {
            assert!(text.contains("    image: canon-testapp-sh:0.1.0\n"));
            text.replace(
                "    image: canon-testapp-sh:0.1.0\n",
                &format!("    image: {image}\n"),
            )
        } else {
            text
        }
    });
    let recipe = up.recipe_with(Some(240), None);
    let ctx = up.ctx(&recipe, "1.0.0+0.1.0", &c1, "1");
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages")
        .past_lint();
    assert_eq!(results[0].status, StageStatus::Failed, "{results:#?}");
    let reason = results[0].reason.clone().unwrap_or_default();
    assert!(reason.contains("waiting will not fix it"), "{reason}");
    assert!(
        reason.contains(&format!("db.1 rejected: No such image: {image}")),
        "{reason}"
    );
    assert!(
        results[0].seconds < 60.0,
        "it did not wait out the 240 s timeout: {results:#?}"
    );
    assert_eq!(up.objects(), empty(), "the red run left objects behind");
}
