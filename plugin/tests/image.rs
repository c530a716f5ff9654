//! The canon-plugin image, built from the repository's Dockerfile on a local base (no registry:
//! `scripts/base-image.sh`, with this build's binary as `BINARIES=prebuilt`), run exactly the
//! way Drone's docker runner runs a plugin step: working directory `/drone/src` holding the
//! workspace, the host's Docker socket, `PLUGIN_*` settings, `DRONE_BUILD_EVENT=custom` and the
//! listener's build parameters. Against the fixture recipe (`fixtures/recipe`, image from
//! `scripts/build-fixture-image.sh`) tagged in a local upstream, the tag is tested on the host's
//! engine and promoted: `canonical.json` appears in the mounted state dir.
//!
//! Needs the Docker engine (swarm mode), root for debootstrap, and Debian's mirror the first
//! time the base is built; without an engine it fails with that message.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use canon_testkit::git::git;
use canon_testkit::process::{output_within, stdout_within};
use canon_testkit::workspace;

const RECIPE: &str = "canon-image-test";
const TAG: &str = "1.0.0+0.1.0";
const IMAGE: &str = "canon-plugin:image-test";

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

fn script(name: &str, limit: Duration) -> String {
    let mut c = Command::new("bash");
    c.arg(workspace::root().join("scripts").join(name))
        .current_dir(workspace::root());
    let out = stdout_within(&mut c, limit);
    out.lines().last().unwrap_or_default().trim().to_string()
}

/// Removes what the promote keeps (the warm canonical's volumes) and anything else labelled
/// with this test's recipe, also when the test fails.
struct EngineCleanup;

impl Drop for EngineCleanup {
    fn drop(&mut self) {
        let filter = format!("label=canon.recipe={RECIPE}");
        let _ = output_within(
            &mut docker(&["stack", "rm", &format!("warm-{RECIPE}")]),
            Duration::from_secs(60),
        );
        for kind in ["service", "container", "volume", "secret", "network"] {
            let mut list = match kind {
                "container" => docker(&["container", "ls", "-aq", "--filter", &filter]),
                other => docker(&[other, "ls", "-q", "--filter", &filter]),
            };
            let ids =
                String::from_utf8_lossy(&output_within(&mut list, Duration::from_secs(30)).stdout)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>();
            for id in ids {
                let mut rm = match kind {
                    "container" => docker(&["container", "rm", "-f", &id]),
                    other => docker(&[other, "rm", &id]),
                };
                let _ = output_within(&mut rm, Duration::from_secs(60));
            }
        }
        // Each build leaves the builder stage and the previous plugin image dangling (hundreds
        // of MB); a CI machine that runs this test again and again must not fill its disk.
        for label in [
            "label=canon.stage=builder",
            "label=org.opencontainers.image.title=canon-plugin",
        ] {
            let _ = output_within(
                &mut docker(&["image", "prune", "-f", "--filter", label]),
                Duration::from_secs(120),
            );
        }
    }
}

fn docker_engine_answers() {
    let out = Command::new("docker")
        .args(["info", "--format", "{{.Swarm.LocalNodeState}}"])
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let state = String::from_utf8_lossy(&o.stdout).trim().to_string();
            assert_eq!(
                state, "active",
                "the image test deploys a swarm stack: run `docker swarm init` first"
            );
        }
        Ok(o) => panic!(
            "the image test needs a Docker engine, and `docker info` failed: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => panic!("the image test needs the docker CLI and a Docker engine: {e}"),
    }
}

/// Builds canon-plugin from the Dockerfile on the local base, with this build's binary.
fn build_plugin_image(base: &str) {
    let ctx = tempfile::tempdir().expect("a temp build context");
    std::fs::create_dir(ctx.path().join("prebuilt")).expect("prebuilt/");
    std::fs::copy(
        env!("CARGO_BIN_EXE_canon-plugin"),
        ctx.path().join("prebuilt/canon-plugin"),
    )
    .expect("copy the canon-plugin binary");
    let dockerfile = workspace::root().join("Dockerfile");
    let mut c = docker(&[
        "build",
        "--quiet",
        "--target",
        "canon-plugin",
        "--build-arg",
        &format!("RUST_IMAGE={base}"),
        "--build-arg",
        &format!("RUNTIME_IMAGE={base}"),
        "--build-arg",
        "BINARIES=prebuilt",
        "--build-arg",
        "VERSION=image-test",
        "-t",
        IMAGE,
        "-f",
    ]);
    c.arg(&dockerfile).arg(ctx.path());
    stdout_within(&mut c, Duration::from_secs(300));

    let labels = stdout_within(
        &mut docker(&[
            "image",
            "inspect",
            "--format",
            "{{json .Config.Labels}} {{json .Config.Entrypoint}}",
            IMAGE,
        ]),
        Duration::from_secs(30),
    );
    assert!(
        labels.contains(r#""org.opencontainers.image.title":"canon-plugin""#),
        "{labels}"
    );
    assert!(
        labels.contains(r#""org.opencontainers.image.version":"image-test""#),
        "{labels}"
    );
    assert!(labels.ends_with(r#"["/bin/canon-plugin"]"#), "{labels}");
}

/// Makes the fixture recipe's upstream and mirror (bare repos) with the release tag; returns
/// the tag's commit.
fn fixture_recipe(root: &Path) -> String {
    let work = root.join("work");
    std::fs::create_dir_all(&work).expect("work tree");
    let src = workspace::root().join("fixtures/recipe");
    for entry in std::fs::read_dir(&src).expect("fixtures/recipe") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, work.join(path.file_name().expect("a name"))).expect("copy");
        }
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "fixture recipe"]);
    git(&work, &["tag", "-a", TAG, "-m", "release"]);
    for bare in ["upstream.git", "mirror.git"] {
        git(root, &["init", "-q", "--bare", "-b", "main", bare]);
        let url = root.join(bare);
        let url = url.to_str().expect("UTF-8 path");
        git(&work, &["push", "-q", url, "main", "--tags"]);
    }
    git(&work, &["rev-parse", &format!("{TAG}^{{commit}}")])
}

#[test]
fn the_plugin_image_tests_and_promotes_a_tag_the_way_drone_runs_it() {
    docker_engine_answers();
    let _cleanup = EngineCleanup;
    let base = script("base-image.sh", Duration::from_secs(420));
    assert!(base.starts_with("canon-base:bookworm-"), "base: {base}");
    let app_image = script("build-fixture-image.sh", Duration::from_secs(420));
    assert!(app_image.starts_with("canon-testapp:"), "{app_image}");
    build_plugin_image(&base);

    // Paths handed to the host engine must be the same inside the plugin container.
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().canonicalize().expect("canonical temp path");
    let commit = fixture_recipe(&root);
    let state = root.join("state");
    let workspace = root.join("workspace");
    std::fs::create_dir_all(&state).expect("state dir");
    std::fs::create_dir_all(&workspace).expect("workspace");
    let enrollment = root.join("enrollment.yml");
    std::fs::write(
        &enrollment,
        format!(
            "recipes:\n  - name: {RECIPE}\n    upstream: {up}\n    mirror: {mirror}\n    required_stages: [install]\n    deploy_timeout: 120\n",
            up = root.join("upstream.git").display(),
            mirror = root.join("mirror.git").display(),
        ),
    )
    .expect("enrollment");

    let root_s = root.to_str().expect("UTF-8 path");
    let started = Instant::now();
    let mut c = docker(&["run", "--rm", "-w", "/drone/src"]);
    c.arg("-v")
        .arg(format!("{}:/drone/src", workspace.display()))
        .args(["-v", "/var/run/docker.sock:/var/run/docker.sock"])
        .arg("-v")
        .arg(format!("{root_s}:{root_s}"));
    for (k, v) in [
        ("PLUGIN_CONFIG", enrollment.to_str().expect("UTF-8")),
        ("PLUGIN_STATE_DIR", state.to_str().expect("UTF-8")),
        ("PLUGIN_RUNNER", "docker"),
        ("PLUGIN_TIMEOUT", "5m"),
        // A from_secret whose secret is missing arrives empty.
        ("PLUGIN_UPSTREAM_TOKEN", ""),
        ("DRONE_BUILD_EVENT", "custom"),
        ("DRONE_BUILD_NUMBER", "4242"),
        ("DRONE_WORKSPACE", "/drone/src"),
        ("DRONE_REPO", "canon/canon"),
        ("CANON_RECIPE", RECIPE),
        ("CANON_TAG", TAG),
        ("CANON_COMMIT", &commit),
    ] {
        c.arg("-e").arg(format!("{k}={v}"));
    }
    c.arg(IMAGE);
    let out = output_within(&mut c, Duration::from_secs(420));
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the plugin step failed ({}):\n{log}",
        out.status
    );

    let record = std::fs::read_to_string(state.join(RECIPE).join("canonical.json"))
        .unwrap_or_else(|e| panic!("no canonical.json after a green run ({e}):\n{log}"));
    let record: serde_json::Value = serde_json::from_str(&record).expect("canonical.json is JSON");
    assert_eq!(record["version"], TAG, "{record}");
    assert_eq!(record["commit"], commit.as_str(), "{record}");
    let history =
        std::fs::read_to_string(state.join(RECIPE).join("history.jsonl")).expect("history.jsonl");
    assert!(history.contains(TAG), "{history}");
    let report = std::fs::read_to_string(workspace.join("canon-report.json"))
        .unwrap_or_else(|e| panic!("no canon-report.json in the workspace ({e}):\n{log}"));
    assert!(report.contains("promote"), "{report}");
    eprintln!("plugin step took {:?}", started.elapsed());
}
