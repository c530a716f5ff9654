//! The `docker` runner on the machine's real Docker engine: the fixture recipe (`fixtures/recipe`,
//! image built locally from `testapp/`) released as tags in a local upstream, cold runs, promotes
//! to `warm-<recipe>`, and nothing left behind.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped. Each test uses its own recipe name, so they run in parallel without sharing a
//! stack, a volume or a secret.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use canon_plugin::runners::docker::{cleanup_stale, warm_volume_sizes, DockerRunner};
use canon_plugin::runners::{RunContext, Runner};
use canon_shared::gate::{StageResult, StageStatus, TestedRef};
use canon_shared::recipe::{Enrollment, Recipe, RecipeName, Stage};
use canon_shared::state::CanonicalRecord;
use canon_shared::version::ReleaseVersion;
use canon_testkit::git::{git, peeled};
use canon_testkit::workspace;

fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails loudly when no engine answers; a swarm manager with the fixture image afterwards.
fn engine() {
    canon_testkit::docker::swarm_with_fixture_image();
}

/// A local upstream of the fixture recipe, with release tags.
struct Upstream {
    _tmp: tempfile::TempDir,
    repo: PathBuf,
    work: PathBuf,
    name: String,
}

impl Upstream {
    fn new(prefix: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("upstream");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let suffix = &tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase();
        let suffix: String = suffix
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = format!("{prefix}{}", &suffix[suffix.len().saturating_sub(6)..]);
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        Upstream {
            _tmp: tmp,
            repo,
            work,
            name,
        }
    }

    /// Commits the fixture at `tag` (label = tag, `APP_VERSION=app_version`) and tags it.
    fn release(&self, tag: &str, app_version: &str, never_healthy: bool) -> String {
        let src = workspace::root().join("fixtures/recipe");
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), self.repo.join(entry.file_name())).unwrap();
        }
        let compose = std::fs::read_to_string(self.repo.join("compose.yml")).unwrap();
        assert!(compose.contains(".version=1.0.0+0.1.0") && compose.contains("APP_VERSION=1.0.0"));
        let mut compose = compose
            .replace(".version=1.0.0+0.1.0", &format!(".version={tag}"))
            .replace("APP_VERSION=1.0.0", &format!("APP_VERSION={app_version}"));
        if never_healthy {
            compose = compose.replace("${NEVER_HEALTHY:-0}", "${NEVER_HEALTHY:-1}");
        }
        std::fs::write(self.repo.join("compose.yml"), compose).unwrap();
        let message = format!("chore: publish {tag} release");
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &["commit", "-q", "--allow-empty", "-m", &message],
        );
        git(&self.repo, &["tag", "-a", tag, "-m", &message]);
        peeled(&self.repo, tag)
    }

    /// A fresh clone checked out at `rev`.
    fn checkout(&self, rev: &str) -> PathBuf {
        let dir = self
            .work
            .join(format!("co-{}", rev.replace(['+', '/'], "_")));
        if !dir.exists() {
            git(
                &self.work,
                &[
                    "clone",
                    "-q",
                    self.repo.to_str().unwrap(),
                    dir.to_str().unwrap(),
                ],
            );
            git(&dir, &["checkout", "-q", rev]);
        }
        dir
    }

    /// Commits a copy of the fixture recipe `fixtures/<fixture>`, each file's text passed through
    /// `edit(file name, text)`, and tags it `tag`.
    fn release_fixture(
        &self,
        fixture: &str,
        tag: &str,
        edit: impl Fn(&str, String) -> String,
    ) -> String {
        let src = workspace::root().join("fixtures").join(fixture);
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(self.repo.join(&name), edit(&name, text)).unwrap();
        }
        let message = format!("chore: publish {tag} release");
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &["commit", "-q", "--allow-empty", "-m", &message],
        );
        git(&self.repo, &["tag", "-a", tag, "-m", &message]);
        peeled(&self.repo, tag)
    }

    fn recipe(&self, timeout: u64, test_command: Option<&str>) -> Recipe {
        self.recipe_with(Some(timeout), test_command)
    }

    /// The enrollment of this recipe; `timeout: None` sets no `deploy_timeout`.
    fn recipe_with(&self, timeout: Option<u64>, test_command: Option<&str>) -> Recipe {
        let mut yaml = format!(
            "recipes:\n  - name: {}\n    upstream: {}\n    mirror: {}/mirror.git\n    health_path: /health\n",
            self.name,
            self.repo.display(),
            self.work.display()
        );
        if let Some(t) = timeout {
            yaml.push_str(&format!("    deploy_timeout: {t}\n"));
        }
        if let Some(c) = test_command {
            yaml.push_str(&format!(
                "    test_command: {}\n",
                serde_json::to_string(c).unwrap()
            ));
        }
        let e = Enrollment::parse(Path::new("enrollment.yml"), &yaml).unwrap();
        e.recipes[0].clone()
    }

    fn ctx(&self, recipe: &Recipe, tag: &str, commit: &str, build: &str) -> RunContext {
        let run_dir = self.work.join(format!("run-{build}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        RunContext {
            recipe: recipe.clone(),
            tested: TestedRef::Tag(tag.to_string()),
            commit: commit.to_string(),
            checkout: self.checkout(tag),
            run_dir,
            canonical: None,
            base_checkout: None,
            build: build.to_string(),
            quick: false,
            env: BTreeMap::new(),
        }
    }

    fn canonical(&self, tag: &str, commit: &str) -> CanonicalRecord {
        CanonicalRecord {
            recipe: RecipeName::parse(&self.name).unwrap(),
            version: ReleaseVersion::parse(tag).unwrap(),
            commit: commit.to_string(),
            promoted_at: time::OffsetDateTime::now_utc(),
            build: None,
            pinned: None,
        }
    }

    /// Every engine object whose name holds this recipe's name, by kind.
    fn objects(&self) -> BTreeMap<&'static str, Vec<String>> {
        let mut all = BTreeMap::new();
        for (kind, args) in [
            ("containers", vec!["ps", "-a", "--format", "{{.Names}}"]),
            ("services", vec!["service", "ls", "--format", "{{.Name}}"]),
            ("volumes", vec!["volume", "ls", "--format", "{{.Name}}"]),
            ("secrets", vec!["secret", "ls", "--format", "{{.Name}}"]),
            ("networks", vec!["network", "ls", "--format", "{{.Name}}"]),
        ] {
            let mut names: Vec<String> = ok("docker", &args)
                .lines()
                .filter(|n| n.contains(&self.name))
                .map(str::to_string)
                .collect();
            names.sort();
            all.insert(kind, names);
        }
        let labelled = ok(
            "docker",
            &[
                "ps",
                "-a",
                "-q",
                "--filter",
                &format!("label=canon.recipe={}", self.name),
            ],
        );
        if !labelled.trim().is_empty() {
            all.entry("containers")
                .or_default()
                .push(format!("labelled container(s): {}", labelled.trim()));
        }
        all
    }

    /// Reads a file of a volume through a created, never started container.
    fn volume_file(&self, volume: &str, file: &str) -> String {
        let helper = format!("{}-test-reader", self.name);
        ok(
            "docker",
            &[
                "create",
                "--name",
                &helper,
                "-v",
                &format!("{volume}:/v"),
                "--entrypoint",
                "/x",
                "canon-testapp:0.1.0",
            ],
        );
        let out = sh("docker", &["cp", &format!("{helper}:/v/{file}"), "-"]);
        ok("docker", &["rm", "-f", &helper]);
        assert!(out.status.success(), "{volume}:{file} is missing");
        // A tar stream of one small text file: the content sits between NUL padding.
        String::from_utf8_lossy(&out.stdout[512..])
            .trim_end_matches('\0')
            .to_string()
    }

    /// Removes this recipe's warm canonical (the tests' own cleanup).
    fn drop_warm(&self) {
        let warm = format!("warm-{}", self.name);
        let _ = sh("docker", &["stack", "rm", &warm]);
        for (kind, filter) in [("volume", "name"), ("secret", "name")] {
            let names = ok(
                "docker",
                &[kind, "ls", "-q", "--filter", &format!("{filter}={warm}")],
            );
            for n in names.lines().filter(|n| !n.is_empty()) {
                let _ = sh("docker", &[kind, "rm", n]);
            }
        }
    }
}

fn status(results: &[StageResult]) -> Vec<(Stage, StageStatus)> {
    results.iter().map(|r| (r.name, r.status)).collect()
}

fn empty() -> BTreeMap<&'static str, Vec<String>> {
    ["containers", "networks", "secrets", "services", "volumes"]
        .into_iter()
        .map(|k| (k, Vec::new()))
        .collect()
}

/// The custom stage: the data marker the app wrote at install must still be there, unchanged.
const MARKER_CHECK: &str = r#"set -eu
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app" | head -n1)
got=$(docker exec "$c" /canon-testapp marker)
echo "marker: $got"
test "$got" = "$EXPECT_MARKER""#;

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

    let results = runner.run(&ctx).expect("the run reports stages");
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
        .expect("the run reports stages");
    assert!(
        results.iter().all(|r| r.status == StageStatus::Passed),
        "{results:#?}"
    );
    assert_eq!(results.len(), 5);
    assert_eq!(up.objects(), before, "the cold run left objects behind");
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
        .expect("the run reports stages");
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

    let dry = cleanup_stale(Duration::from_secs(3600), true).unwrap();
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

    let young = cleanup_stale(Duration::from_secs(3 * 3600), false).unwrap();
    assert!(
        young.removed.iter().all(|(_, n)| !n.contains(&up.name)),
        "{young:?}"
    );

    let report = cleanup_stale(Duration::from_secs(3600), false).unwrap();
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
    let mirror = up.work.join("mirror.git");
    let sync_mirror = || {
        if mirror.exists() {
            git(
                &mirror,
                &["fetch", "-q", "--prune", "origin", "+refs/*:refs/*"],
            );
        } else {
            git(
                &up.work,
                &[
                    "clone",
                    "-q",
                    "--mirror",
                    up.repo.to_str().unwrap(),
                    mirror.to_str().unwrap(),
                ],
            );
        }
    };
    sync_mirror();
    let recipe = up.recipe(60, Some(MARKER_CHECK));
    let state = up.work.join("state");
    let settings = |tag: &str| RunSettings {
        upstream: GitRemote::local(recipe.upstream.url.clone()),
        mirror: GitRemote::local(recipe.mirror.url.clone()),
        recipe: recipe.clone(),
        tested: TestedRef::Tag(tag.to_string()),
        claimed_commits: vec![],
        quick: false,
        state_dir: state.clone(),
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
    sync_mirror();
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
    let recipe = up.recipe(30, Some("test \"$CANON_RUNNER\" = abra"));
    let mut ctx = up.ctx(&recipe, "1.1.0+0.1.0", &c2, "5");
    ctx.canonical = Some(up.canonical("1.0.0+0.1.0", &c1));
    ctx.base_checkout = Some(up.checkout("1.0.0+0.1.0"));
    let results = runner.run(&ctx).unwrap();
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
    let domain = format!(
        "{}.canon.localhost",
        canon_plugin::runners::stack_names::cold_stack_name(&up.name, "1.1.0+0.1.0", "5")
    );
    let want: Vec<String> = [
        "server add --local --no-input".to_string(),
        format!("app new {} 1.0.0+0.1.0 --server default --domain {domain} --secrets --no-input --offline", up.name),
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
        .expect("the run reports stages");
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
    assert_eq!(
        results[0].notes,
        vec!["deploy timeout 240s (source: label)".to_string()]
    );
    assert_eq!(
        results[3].notes,
        vec!["deploy timeout 240s (source: label)".to_string()]
    );
    assert_eq!(up.objects(), empty(), "the cold run left objects behind");
}

#[test]
fn a_missing_required_variable_makes_a_red_install_whose_reason_is_the_recipes_message() {
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
    let results = DockerRunner::default()
        .run(&ctx)
        .expect("the run reports stages");
    assert_eq!(results[0].name, Stage::Install);
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
