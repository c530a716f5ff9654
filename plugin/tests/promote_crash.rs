//! A promote killed at each of its steps, through the real binary on the real Docker engine:
//! the next run leaves the canonical and the warm data on the same version, old with old or new
//! with new, and no `.prev` copy or marker behind.
//!
//! The kill is the test-only fault hook (`CANON_TEST_FAULT=promote:<step>`, debug builds only):
//! the plugin aborts at that step, without any cleanup, as under `kill -9`. The fixture's
//! releases here keep their data in `/data/v<app version>`, so a volume shows which versions
//! have run on it: the new version's folder is the new warm data.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use canon_plugin::runners::docker::DockerRunner;
use canon_plugin::runners::{RunContext, Runner};
use canon_shared::gate::TestedRef;
use canon_shared::recipe::{Enrollment, RecipeName};
use canon_shared::state::{CanonicalRecord, LockWait, StateDir};
use canon_shared::version::ReleaseVersion;
use canon_testkit::git::{git, hermetic, peeled};
use canon_testkit::process::{output_within, printed, stdout_within};
use canon_testkit::workspace;

use crate::support;

const OLD: &str = "1.0.0+0.1.0";
const NEW: &str = "1.1.0+0.1.0";
/// The limit on one docker command of the test itself.
const DOCKER_LIMIT: Duration = Duration::from_secs(120);
/// The limit on one plugin run (a cold run and a promote of the fixture).
const RUN_LIMIT: Duration = Duration::from_secs(300);

fn docker(args: &[&str]) -> Output {
    output_within(Command::new("docker").args(args), DOCKER_LIMIT)
}

fn docker_ok(args: &[&str]) -> String {
    stdout_within(Command::new("docker").args(args), DOCKER_LIMIT)
}

/// Fails loudly when no engine answers; a swarm manager with the fixture image afterwards.
fn engine() {
    canon_testkit::docker::swarm_with_fixture_image();
}

/// The fixture recipe released at two tags in a local upstream, its mirror, an enrollment file
/// and a state dir; removes its warm canonical on drop.
struct Recipe {
    tmp: tempfile::TempDir,
    name: String,
    repo: PathBuf,
    mirror: PathBuf,
    enrollment: PathBuf,
    state: PathBuf,
}

impl Recipe {
    fn new(prefix: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let suffix: String = tmp
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let name = format!("{prefix}{}", &suffix[suffix.len().saturating_sub(6)..]);
        let repo = tmp.path().join("upstream");
        std::fs::create_dir_all(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let mirror = tmp.path().join("mirror.git");
        let enrollment = tmp.path().join("enrollment.yml");
        std::fs::write(
            &enrollment,
            format!(
                "recipes:\n  - name: {name}\n    upstream: {}\n    mirror: {}\n    deploy_timeout: 90\n    health_path: /health\n    stability_window: 2\n",
                repo.display(),
                mirror.display()
            ),
        )
        .unwrap();
        let r = Recipe {
            state: tmp.path().join("state"),
            tmp,
            name,
            repo,
            mirror,
            enrollment,
        };
        r.release(OLD, "1.0.0");
        r.release(NEW, "1.1.0");
        git(
            r.tmp.path(),
            &[
                "clone",
                "-q",
                "--mirror",
                r.repo.to_str().unwrap(),
                r.mirror.to_str().unwrap(),
            ],
        );
        r
    }

    /// Commits the fixture at `tag` with its data under `/data/v<app_version>` (no backups, so
    /// the cold run is short) and tags it.
    fn release(&self, tag: &str, app_version: &str) {
        let src = workspace::root().join("fixtures/recipe");
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), self.repo.join(entry.file_name())).unwrap();
        }
        let compose = std::fs::read_to_string(self.repo.join("compose.yml")).unwrap();
        assert!(compose.contains("DATA_DIR=/data\n") && compose.contains("APP_VERSION=1.0.0"));
        let compose: String = compose
            .replace(".version=1.0.0+0.1.0", &format!(".version={tag}"))
            .replace("APP_VERSION=1.0.0", &format!("APP_VERSION={app_version}"))
            .replace(
                "DATA_DIR=/data\n",
                &format!("DATA_DIR=/data/v{app_version}\n"),
            )
            .lines()
            .filter(|l| !l.contains("backupbot"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(self.repo.join("compose.yml"), compose).unwrap();
        let message = format!("chore: publish {tag} release");
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-q", "-m", &message]);
        git(&self.repo, &["tag", "-a", tag, "-m", &message]);
    }

    fn recipe_name(&self) -> RecipeName {
        RecipeName::parse(&self.name).unwrap()
    }

    fn warm(&self) -> String {
        format!("warm-{}", self.name)
    }

    fn data(&self) -> String {
        format!("{}_data", self.warm())
    }

    /// The canonical at `OLD` with its warm data, the way a finished promote leaves them.
    fn promote_old(&self) {
        let enrollment = Enrollment::load(&self.enrollment).unwrap();
        let commit = peeled(&self.repo, OLD);
        let checkout = self.tmp.path().join("old-checkout");
        git(
            self.tmp.path(),
            &[
                "clone",
                "-q",
                self.repo.to_str().unwrap(),
                checkout.to_str().unwrap(),
            ],
        );
        git(&checkout, &["checkout", "-q", OLD]);
        let run_dir = self.tmp.path().join("old-run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let ctx = RunContext {
            recipe: enrollment.recipes[0].clone(),
            tested: TestedRef::Tag(OLD.into()),
            commit: commit.parse().expect("a full commit id"),
            checkout,
            run_dir,
            canonical: None,
            base_checkout: None,
            build: "0".into(),
            quick: false,
            warm: None,
            env: Default::default(),
        };
        let record = CanonicalRecord {
            recipe: self.recipe_name(),
            version: ReleaseVersion::parse(OLD).unwrap(),
            commit: commit.parse().expect("a full commit id"),
            promoted_at: time::OffsetDateTime::now_utc(),
            build: None,
            pinned: None,
            host: None,
        };
        let runner = DockerRunner::default();
        runner.promote(&ctx).expect("the first promote");
        let state = StateDir::new(&self.state);
        let lock = state
            .lock(&self.recipe_name(), LockWait::Wait(Duration::from_secs(10)))
            .unwrap();
        state.write_canonical(&lock, &record).unwrap();
        runner
            .settle_promote(&ctx, Some(&record))
            .expect("the first settle");
        assert_eq!(self.outcome(), (OLD.to_string(), OLD.to_string()));
        assert!(self.leftovers().is_empty(), "{:?}", self.leftovers());
    }

    /// Runs tag mode at `NEW` through the real binary and the docker runner.
    fn run(&self, build: &str, extra: &[&str], fault: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_canon-plugin"));
        cmd.args([
            "run",
            "--init",
            "--config",
            self.enrollment.to_str().unwrap(),
            "--state-dir",
            self.state.to_str().unwrap(),
            "--recipe",
            &self.name,
            "--tag",
            NEW,
            "--runner",
            "docker",
            "--lock-wait",
            "60s",
            "--work-dir",
            self.tmp.path().join("runs").to_str().unwrap(),
            "--report",
            self.tmp
                .path()
                .join(format!("report-{build}.json"))
                .to_str()
                .unwrap(),
        ])
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", self.tmp.path())
        .env("DRONE_BUILD_NUMBER", build);
        hermetic(&mut cmd);
        for key in ["DOCKER_HOST", "DOCKER_CONFIG"] {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        if let Some(step) = fault {
            cmd.env("CANON_TEST_FAULT", step);
        }
        output_within(&mut cmd, RUN_LIMIT)
    }

    /// Returns the canonical's version and the version of the warm data (the newest
    /// `/data/v<version>` folder on the data volume, as a release tag).
    fn outcome(&self) -> (String, String) {
        let canonical = StateDir::new(&self.state)
            .read_canonical(&self.recipe_name())
            .unwrap()
            .map(|c| c.version.to_string())
            .unwrap_or_default();
        let data = if self.volume_has(&self.data(), "v1.1.0/installed") {
            NEW
        } else if self.volume_has(&self.data(), "v1.0.0/installed") {
            OLD
        } else {
            "no data"
        };
        (canonical, data.to_string())
    }

    /// Returns true when `volume` holds `file`, read through a created, never started container.
    fn volume_has(&self, volume: &str, file: &str) -> bool {
        let helper = format!("{}-crash-reader", self.name);
        support::engine::volume_tar(&helper, volume, &format!("/v/{file}"))
            .status
            .success()
    }

    /// Returns the warm stack's `.prev` copies, its promote marker and its running services.
    fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = docker_ok(&["volume", "ls", "--format", "{{.Name}}"])
            .lines()
            .filter(|n| n.starts_with(&self.warm()) && *n != self.data())
            .map(str::to_string)
            .collect();
        left.extend(
            docker_ok(&["service", "ls", "--format", "{{.Name}}"])
                .lines()
                .filter(|n| n.starts_with(&self.warm()))
                .map(|n| format!("service {n}")),
        );
        left
    }

    fn history_decisions(&self) -> Vec<String> {
        StateDir::new(&self.state)
            .read_history(&self.recipe_name())
            .unwrap()
            .into_iter()
            .map(|h| h.decision)
            .collect()
    }
}

impl Drop for Recipe {
    fn drop(&mut self) {
        let warm = self.warm();
        let _ = docker(&["stack", "rm", &warm]);
        // A volume stays in use until the stack's containers are gone.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let namespace = format!("label=com.docker.stack.namespace={warm}");
        while std::time::Instant::now() < deadline
            && !docker(&["ps", "-a", "-q", "--filter", &namespace])
                .stdout
                .is_empty()
        {
            std::thread::sleep(Duration::from_millis(250));
        }
        for kind in ["volume", "secret"] {
            let out = docker(&[kind, "ls", "-q", "--filter", &format!("name={warm}")]);
            for n in String::from_utf8_lossy(&out.stdout).lines() {
                let _ = docker(&[kind, "rm", n.trim()]);
            }
        }
    }
}

/// Kills a promote from `OLD` to `NEW` at `step`, checks what the kill left (`killed`: the
/// canonical and the warm data right after it), lets a `--quick` run of the same tag (which never
/// promotes) look at it, and returns what that left.
fn kill_at(prefix: &str, step: &str, killed: (&str, &str)) -> (Recipe, (String, String)) {
    engine();
    let r = Recipe::new(prefix);
    r.promote_old();

    let out = r.run("2", &[], Some(step));
    let t = printed(&out);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&out.status),
        Some(6),
        "the run must die at {step}:\n{t}"
    );
    assert!(t.contains(&format!("test fault point {step}")), "{t}");
    assert_eq!(
        r.outcome(),
        (killed.0.to_string(), killed.1.to_string()),
        "right after the kill at {step}"
    );

    let out = r.run("3", &["--quick"], None);
    let t = printed(&out);
    assert!(out.status.success(), "the quick run:\n{t}");
    let left = r.leftovers();
    assert!(left.is_empty(), "left after the next run: {left:?}\n{t}");
    let outcome = r.outcome();
    (r, outcome)
}

fn pair(a: &str, b: &str) -> (String, String) {
    (a.to_string(), b.to_string())
}

#[test]
fn a_promote_killed_after_the_copies_is_rolled_back_to_the_old_canonical_and_data() {
    let (_r, outcome) = kill_at("pca", "promote:copied", (OLD, OLD));
    assert_eq!(outcome, pair(OLD, OLD));
}

#[test]
fn a_promote_killed_after_the_healthy_deploy_is_rolled_back_to_the_old_canonical_and_data() {
    // Right after the kill the warm data is on the new version and the canonical on the old one:
    // the case that had nothing to restore.
    let (r, outcome) = kill_at("pcb", "promote:healthy", (OLD, NEW));
    assert_eq!(outcome, pair(OLD, OLD));
    assert!(r.history_decisions().iter().all(|d| d != "promote"));
}

#[test]
fn a_promote_killed_after_the_canonical_is_written_is_finished_on_the_new_version() {
    let (_r, outcome) = kill_at("pcc", "promote:canonical", (NEW, NEW));
    assert_eq!(outcome, pair(NEW, NEW));
}

#[test]
fn a_promote_killed_after_the_history_line_is_finished_on_the_new_version() {
    let (r, outcome) = kill_at("pcd", "promote:history", (NEW, NEW));
    assert_eq!(outcome, pair(NEW, NEW));
    assert_eq!(
        r.history_decisions()
            .iter()
            .filter(|d| *d == "promote")
            .count(),
        1
    );
}

#[test]
fn a_promote_killed_while_dropping_the_copies_is_finished_on_the_new_version() {
    let (_r, outcome) = kill_at("pce", "promote:dropped", (NEW, NEW));
    assert_eq!(outcome, pair(NEW, NEW));
}
