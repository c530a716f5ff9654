//! The docker runner's engine tests' kit: a local upstream of the fixture recipe
//! (`fixtures/recipe`, image built locally from `testapp/`) with release tags, its mirror, run
//! contexts, and a view of every engine object of the recipe.
//!
//! These tests need a Docker engine. Without one they FAIL with a message saying so; they are
//! never skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use canon_plugin::runners::RunContext;
use canon_shared::gate::{StageResult, StageStatus, TestedRef};
use canon_shared::recipe::{Enrollment, Recipe, RecipeName, Stage};
use canon_shared::state::CanonicalRecord;
use canon_shared::version::ReleaseVersion;
use canon_testkit::git::{git, peeled};
use canon_testkit::workspace;

pub fn sh(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("could not run {program}: {e}"))
}

pub fn ok(program: &str, args: &[&str]) -> String {
    let out = sh(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Fails loudly when no engine answers; a swarm manager with the fixture image afterwards.
pub fn engine() {
    canon_testkit::docker::swarm_with_fixture_image();
}

/// A local upstream of the fixture recipe, with release tags.
pub struct Upstream {
    _tmp: tempfile::TempDir,
    /// The upstream work tree (releases are committed and tagged here).
    pub repo: PathBuf,
    /// Scratch space: the mirror, checkouts, run folders, state.
    pub work: PathBuf,
    /// The recipe's name (unique per test).
    pub name: String,
}

impl Upstream {
    pub fn new(prefix: &str) -> Self {
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
    pub fn release(&self, tag: &str, app_version: &str, never_healthy: bool) -> String {
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
    pub fn checkout(&self, rev: &str) -> PathBuf {
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
    pub fn release_fixture(
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

    /// Like [`Upstream::release_fixture`], and also writes `extra` files (path relative to the
    /// recipe, folders made as needed) before the commit.
    pub fn release_fixture_with(
        &self,
        fixture: &str,
        tag: &str,
        edit: impl Fn(&str, String) -> String,
        extra: &[(&str, &str)],
    ) -> String {
        for (path, text) in extra {
            let path = self.repo.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        self.release_fixture(fixture, tag, edit)
    }

    pub fn recipe(&self, timeout: u64, test_command: Option<&str>) -> Recipe {
        self.recipe_with(Some(timeout), test_command)
    }

    /// The enrollment of this recipe; `timeout: None` sets no `deploy_timeout`. A short
    /// stability window (2 s) keeps the suite fast; the crash-loop test sets a longer one.
    pub fn recipe_with(&self, timeout: Option<u64>, test_command: Option<&str>) -> Recipe {
        self.recipe_windowed(timeout, test_command, 2)
    }

    /// The enrollment of this recipe with a `stability_window` of `window` seconds.
    pub fn recipe_windowed(
        &self,
        timeout: Option<u64>,
        test_command: Option<&str>,
        window: u64,
    ) -> Recipe {
        let yaml = self.enrollment_yaml(timeout, test_command, window);
        let e = Enrollment::parse(Path::new("enrollment.yml"), &yaml).unwrap();
        e.recipes[0].clone()
    }

    /// The enrollment file's text for this recipe (see [`Upstream::recipe_windowed`]).
    pub fn enrollment_yaml(
        &self,
        timeout: Option<u64>,
        test_command: Option<&str>,
        window: u64,
    ) -> String {
        let mut yaml = format!(
            "recipes:\n  - name: {}\n    upstream: {}\n    mirror: {}/mirror.git\n    health_path: /health\n    stability_window: {window}\n",
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
        yaml
    }

    pub fn ctx(&self, recipe: &Recipe, tag: &str, commit: &str, build: &str) -> RunContext {
        let run_dir = self.work.join(format!("run-{build}"));
        std::fs::create_dir_all(&run_dir).unwrap();
        RunContext {
            recipe: recipe.clone(),
            tested: TestedRef::Tag(tag.to_string()),
            commit: commit.parse().expect("a full commit id"),
            checkout: self.checkout(tag),
            run_dir,
            canonical: None,
            base_checkout: None,
            build: build.to_string(),
            quick: false,
            warm: None,
            env: BTreeMap::new(),
        }
    }

    pub fn canonical(&self, tag: &str, commit: &str) -> CanonicalRecord {
        CanonicalRecord {
            recipe: RecipeName::parse(&self.name).unwrap(),
            version: ReleaseVersion::parse(tag).unwrap(),
            commit: commit.parse().expect("a full commit id"),
            promoted_at: time::OffsetDateTime::now_utc(),
            build: None,
            pinned: None,
            host: None,
        }
    }

    /// Every engine object whose name holds this recipe's name, by kind.
    pub fn objects(&self) -> BTreeMap<&'static str, Vec<String>> {
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

    /// Returns `path` of a volume (mounted at `/v`) as the tar stream `docker cp` prints.
    fn volume_tar(&self, volume: &str, path: &str) -> std::process::Output {
        volume_tar(&format!("{}-test-reader", self.name), volume, path)
    }

    /// Reads a file of a volume through a created, never started container.
    pub fn volume_file(&self, volume: &str, file: &str) -> String {
        let out = self.volume_tar(volume, &format!("/v/{file}"));
        assert!(out.status.success(), "{volume}:{file} is missing");
        // A tar stream of one small text file: the content sits between NUL padding.
        String::from_utf8_lossy(&out.stdout[512..])
            .trim_end_matches('\0')
            .to_string()
    }

    /// Removes this recipe's warm canonical (the tests' own cleanup).
    pub fn drop_warm(&self) {
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

/// Returns `path` of `volume` (mounted at `/v`) as the tar stream `docker cp -a` prints, read
/// through the container `helper`: created, never started, then removed.
pub fn volume_tar(helper: &str, volume: &str, path: &str) -> std::process::Output {
    let _ = sh("docker", &["rm", "-f", helper]);
    ok(
        "docker",
        &[
            "create",
            "--name",
            helper,
            "-v",
            &format!("{volume}:/v"),
            "--entrypoint",
            "/x",
            "canon-testapp:0.1.0",
        ],
    );
    let out = sh("docker", &["cp", "-a", &format!("{helper}:{path}"), "-"]);
    ok("docker", &["rm", "-f", helper]);
    out
}

/// The stages of a run after its lint stage, which must have passed: the fixture recipes pass
/// every error-level lint rule, and the engine tests are about the deploying stages.
pub trait PastLint {
    /// Returns the stages after the passed lint stage.
    fn past_lint(self) -> Vec<StageResult>;
}

impl PastLint for canon_plugin::runners::warm::RunOutput {
    fn past_lint(self) -> Vec<StageResult> {
        let mut stages = self.stages;
        let lint = stages.remove(0);
        assert_eq!(
            (lint.name, lint.status),
            (Stage::Lint, StageStatus::Passed),
            "{lint:#?}"
        );
        stages
    }
}

pub fn status(results: &[StageResult]) -> Vec<(Stage, StageStatus)> {
    results.iter().map(|r| (r.name, r.status)).collect()
}

pub fn empty() -> BTreeMap<&'static str, Vec<String>> {
    ["containers", "networks", "secrets", "services", "volumes"]
        .into_iter()
        .map(|k| (k, Vec::new()))
        .collect()
}

/// The custom stage: the data marker the app wrote at install must still be there, unchanged.
pub const MARKER_CHECK: &str = r#"set -eu
c=$(docker ps -q --filter "label=com.docker.swarm.service.name=${STACK_NAME}_app" | head -n1)
got=$(docker exec "$c" /canon-testapp marker)
echo "marker: $got"
test "$got" = "$EXPECT_MARKER""#;

impl Upstream {
    /// The recipe's mirror (bare), as its enrollment names it.
    pub fn mirror(&self) -> PathBuf {
        self.work.join("mirror.git")
    }

    /// Makes the mirror equal to the upstream (every ref), creating it the first time.
    pub fn sync_mirror(&self) {
        let mirror = self.mirror();
        if mirror.exists() {
            git(
                &mirror,
                &["fetch", "-q", "--prune", "origin", "+refs/*:refs/*"],
            );
        } else {
            git(
                &self.work,
                &[
                    "clone",
                    "-q",
                    "--mirror",
                    self.repo.to_str().unwrap(),
                    mirror.to_str().unwrap(),
                ],
            );
        }
    }
}

impl Upstream {
    /// Commits the fixture on the branch `branch` (made from `main` when new) with
    /// `APP_VERSION=app_version` (and an app that never turns healthy when told): a pull
    /// request's head. Returns its commit. `main` stays checked out afterwards.
    pub fn branch(&self, branch: &str, app_version: &str, never_healthy: bool) -> String {
        git(&self.repo, &["checkout", "-q", "-B", branch, "main"]);
        let compose = std::fs::read_to_string(self.repo.join("compose.yml")).unwrap();
        let at = compose.find("APP_VERSION=").unwrap();
        let end = at + compose[at..].find('\n').unwrap();
        let mut compose = format!(
            "{}APP_VERSION={app_version}{}",
            &compose[..at],
            &compose[end..]
        );
        if never_healthy {
            compose = compose.replace("${NEVER_HEALTHY:-0}", "${NEVER_HEALTHY:-1}");
        }
        std::fs::write(self.repo.join("compose.yml"), compose).unwrap();
        git(&self.repo, &["add", "-A"]);
        git(
            &self.repo,
            &["commit", "-q", "-m", &format!("feat: {branch}")],
        );
        let head = git(&self.repo, &["rev-parse", "HEAD"]).trim().to_string();
        git(&self.repo, &["checkout", "-q", "main"]);
        head
    }

    /// Returns the SHA-256 of a volume's content as a tar stream (names, modes, times and
    /// bytes), read through a created, never started container.
    pub fn volume_digest(&self, volume: &str) -> String {
        use sha2::Digest;
        let out = self.volume_tar(volume, "/v");
        assert!(out.status.success(), "cannot read volume {volume}");
        hex::encode(sha2::Sha256::digest(&out.stdout))
    }

    /// Tag-mode settings of this recipe's run of `tested` (build `build`), with the state dir
    /// and run folders in the work dir and `env` for the deploy and the custom stage.
    pub fn run_settings(
        &self,
        recipe: &Recipe,
        tested: TestedRef,
        build: &str,
        env: &[(&str, &str)],
    ) -> canon_plugin::tag_mode::RunSettings {
        use canon_shared::mirror::GitRemote;
        use canon_shared::state::LockWait;
        canon_plugin::tag_mode::RunSettings {
            upstream: GitRemote::local(recipe.upstream.url.clone()),
            mirror: GitRemote::local(recipe.mirror.url.clone()),
            recipe: recipe.clone(),
            tested,
            claimed_commits: vec![],
            quick: false,
            warm: true,
            state_dir: self.state(),
            state_repo: None,
            work_dir: self.work.join("runs"),
            keep_work_dir: false,
            lock_wait: LockWait::Wait(std::time::Duration::from_secs(60)),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            build: build.into(),
            build_link: None,
            trigger: "test".into(),
            report: None,
        }
    }

    /// The state dir of [`Upstream::run_settings`].
    pub fn state(&self) -> PathBuf {
        self.work.join("state")
    }
}
