//! What the plugin's tests share beyond the kit (`canon-testkit`, which brings hermetic git):
//! a recipe with an upstream and a mirror made with the git CLI in a temp dir, scripted
//! harnesses, and run settings.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;

use canon_plugin::runners::command::CommandRunner;
use canon_plugin::tag_mode::RunSettings;
use canon_shared::gate::TestedRef;
use canon_shared::mirror::GitRemote;
use canon_shared::recipe::{Enrollment, RecipeName};
use canon_shared::state::{LockWait, StateDir};
use canon_testkit::git::{git, peeled};

pub mod engine;

/// Returns a compose file whose app service carries `label` as its version.
pub fn compose(label: &str) -> String {
    format!(
        "services:\n  app:\n    image: nginx:1.27\n    deploy:\n      labels:\n        - \"traefik.enable=true\"\n        - \"coop-cloud.${{STACK_NAME}}.version={label}\"\n"
    )
}

/// One recipe: a work tree, its upstream (bare) and its mirror (bare), an enrollment file and a
/// state dir, all in one temp dir.
pub struct Fixture {
    /// The temp dir holding everything; removed on drop.
    pub dir: tempfile::TempDir,
    /// The work tree releases are made in.
    pub work: PathBuf,
    /// The recipe's upstream (bare).
    pub upstream: PathBuf,
    /// The recipe's mirror (bare).
    pub mirror: PathBuf,
    /// The state dir.
    pub state: PathBuf,
    /// The enrollment file naming the recipe.
    pub enrollment: PathBuf,
    /// Where runs make their per-run folders.
    pub runs: PathBuf,
    /// Every harness appends one line per run here: `<tag or ref> <commit> <base> <label line>`.
    pub log: PathBuf,
}

impl Fixture {
    /// Makes the recipe `app` with no release yet (one commit on `main`).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let work = root.join("work");
        let upstream = root.join("upstream.git");
        let mirror = root.join("mirror.git");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "-q", "-b", "main"]);
        std::fs::write(work.join("compose.yml"), compose("0.0.0+unreleased")).unwrap();
        std::fs::write(work.join(".env.sample"), "TYPE=app\n").unwrap();
        git(&work, &["add", "."]);
        git(&work, &["commit", "-q", "-m", "init"]);
        git(
            &root,
            &["init", "-q", "--bare", "-b", "main", "upstream.git"],
        );
        git(
            &work,
            &["remote", "add", "origin", upstream.to_str().unwrap()],
        );
        git(&work, &["push", "-q", "origin", "main"]);
        git(
            &root,
            &["clone", "-q", "--mirror", "upstream.git", "mirror.git"],
        );
        let enrollment = root.join("enrollment.yml");
        std::fs::write(
            &enrollment,
            format!(
                "recipes:\n  - name: app\n    upstream: {}\n    mirror: {}\n",
                upstream.display(),
                mirror.display()
            ),
        )
        .unwrap();
        Fixture {
            state: root.join("state"),
            runs: root.join("runs"),
            log: root.join("harness.log"),
            work,
            upstream,
            mirror,
            enrollment,
            dir,
        }
    }

    /// Publishes a release: a commit setting the version label to `label`, tagged `tag`
    /// (annotated or lightweight), pushed upstream; then the mirror is synced.
    pub fn release_labelled(&self, tag: &str, label: &str, annotated: bool) -> String {
        std::fs::write(self.work.join("compose.yml"), compose(label)).unwrap();
        git(
            &self.work,
            &[
                "commit",
                "-q",
                "-am",
                &format!("chore: publish {tag} release"),
            ],
        );
        if annotated {
            git(
                &self.work,
                &[
                    "tag",
                    "-a",
                    tag,
                    "-m",
                    &format!("chore: publish {tag} release"),
                ],
            );
        } else {
            git(&self.work, &["tag", tag]);
        }
        git(
            &self.work,
            &["push", "-q", "origin", "main", &format!("refs/tags/{tag}")],
        );
        self.sync_mirror();
        self.peeled(tag)
    }

    /// Publishes a proper release of `tag`; returns its peeled commit.
    pub fn release(&self, tag: &str, annotated: bool) -> String {
        self.release_labelled(tag, tag, annotated)
    }

    /// Makes the mirror equal to upstream (branches and tags).
    pub fn sync_mirror(&self) {
        git(
            &self.mirror,
            &[
                "fetch",
                "-q",
                "--prune",
                "origin",
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
            ],
        );
    }

    /// Returns the commit `rev` peels to upstream.
    pub fn peeled(&self, rev: &str) -> String {
        peeled(&self.upstream, rev)
    }

    /// Writes an executable harness script and returns the command that runs it.
    pub fn harness(&self, name: &str, body: &str) -> String {
        let path = self.dir.path().join(format!("harness-{name}.sh"));
        std::fs::write(&path, format!("#!/bin/sh\nset -eu\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    /// A harness that records what it saw and reports install passed, and upgrade passed when
    /// there is an upgrade base (skipped otherwise).
    pub fn green_harness(&self) -> String {
        self.harness("green", &format!("{RECORD}\n{GREEN_RESULTS}"))
    }

    /// Returns the lines the harnesses logged.
    pub fn harness_runs(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Returns run settings for tag mode on `tested`.
    pub fn settings(&self, tested: TestedRef) -> RunSettings {
        let enrollment = Enrollment::load(&self.enrollment).unwrap();
        let recipe = enrollment.recipes[0].clone();
        RunSettings {
            upstream: GitRemote::local(recipe.upstream.url.clone()),
            mirror: GitRemote::local(recipe.mirror.url.clone()),
            recipe,
            tested,
            claimed_commits: vec![],
            quick: false,
            warm: true,
            state_dir: self.state.clone(),
            state_repo: None,
            work_dir: self.runs.clone(),
            keep_work_dir: false,
            lock_wait: LockWait::Wait(Duration::from_secs(10)),
            env: BTreeMap::from([("HARNESS_LOG".to_string(), self.log.display().to_string())]),
            build: "1".into(),
            build_link: None,
            trigger: "test".into(),
            report: Some(self.dir.path().join("canon-report.json")),
        }
    }

    /// Returns a command runner for `command`.
    pub fn runner(&self, command: &str, promote: Option<&str>) -> CommandRunner {
        CommandRunner {
            command: command.to_string(),
            promote_command: promote.map(String::from),
            timeout: Duration::from_secs(30),
        }
    }

    /// Returns the state dir.
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(&self.state)
    }

    /// Returns the recipe name.
    pub fn name(&self) -> RecipeName {
        RecipeName::parse("app").unwrap()
    }

    /// Returns the folders left in the runs dir (per-run folders must be removed).
    pub fn leftover_runs(&self) -> Vec<PathBuf> {
        match std::fs::read_dir(&self.runs) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }
}

/// Shell lines that record what the harness saw.
pub const RECORD: &str = r#"label=$(grep -o 'version=[^"]*' compose.yml)
echo "harness running for $CANON_RECIPE at ${CANON_TAG:-${CANON_REF:-}}"
printf '%s %s %s %s %s\n' "${CANON_TAG:-${CANON_REF:-}}" "$CANON_COMMIT" "${CANON_UPGRADE_BASE:-none}" "$CANON_COLD" "$label" >> "$HARNESS_LOG""#;

/// Shell lines that write green results (upgrade skipped without a base).
pub const GREEN_RESULTS: &str = r#"if [ -n "${CANON_UPGRADE_BASE:-}" ]; then up='"passed","reason":null'; else up='"skipped","reason":"no canonical yet"'; fi
cat > "$CANON_RESULTS" <<EOF
{"stages":[{"name":"install","status":"passed","reason":null,"seconds":1.5},{"name":"upgrade","status":$up,"seconds":0.5},{"name":"backup","status":"skipped","reason":"no backups declared"}]}
EOF"#;
