//! canon's two images, built by `scripts/build-images.sh` (FROM scratch, offline, from the release
//! binaries `scripts/test.sh` builds before the tests) under a tag of this test's own:
//!
//! - canon-plugin run exactly the way Drone's docker runner runs a plugin step: working
//!   directory `/drone/src` holding the workspace, the host's Docker socket, `PLUGIN_*` settings,
//!   `DRONE_BUILD_EVENT=custom` and the listener's build parameters. Against the fixture recipe
//!   (`fixtures/recipe`, image from `scripts/build-fixture-image.sh`) tagged in a local upstream,
//!   the tag is tested on the host's engine and promoted: `canonical.json` appears in the mounted
//!   state dir. The image holds no git CLI.
//! - canon-listener started as its image says: as the user canon (10001, not root), with no
//!   shell, it journals into its state volume and answers `/readyz`.
//! - Both sizes stay within what the operator guide promises: 100 MB and 30 MB.
//!
//! Needs the Docker engine (swarm mode), busybox-static and Debian's docker.io client on the host
//! (scripts/test.sh installs them), and the release binaries named by `CANON_PLUGIN_BIN` and
//! `CANON_LISTENER_BIN` (scripts/test.sh builds them first); without either it fails saying so.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use canon_testkit::git::git;
use canon_testkit::process::{output_within, stdout_within};
use canon_testkit::workspace;

const TAG: &str = "1.0.0+0.1.0";
/// The documented limits, in the units `docker image ls` shows (1 MB = 10^6 bytes).
const PLUGIN_MAX_BYTES: u64 = 100_000_000;
const LISTENER_MAX_BYTES: u64 = 30_000_000;

fn docker(args: &[&str]) -> Command {
    let mut c = Command::new("docker");
    c.args(args);
    c
}

fn script(name: &str, env: &[(&str, &str)], limit: Duration) -> String {
    let mut c = Command::new("bash");
    c.arg(workspace::root().join("scripts").join(name))
        .current_dir(workspace::root())
        .envs(env.iter().copied());
    stdout_within(&mut c, limit)
}

/// This run's own id (process id and clock): every image, container, stack and recipe name this
/// test gives the engine carries it, so runs from two checkouts on one engine never meet.
fn run_id() -> &'static str {
    static ID: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        format!("{:x}{:06x}", std::process::id(), nanos & 0xff_ffff)
    })
}

/// This run's image tag: other people's runs of this test build their own.
fn image_tag() -> String {
    format!("image-test-{}", run_id())
}

/// This run's recipe name, so its warm canonical (`warm-<recipe>`) and every object labelled
/// with it are this run's alone.
fn recipe() -> String {
    format!("cimg{}", run_id())
}

/// Removes this run's images and containers, what the promote keeps (the warm canonical's
/// volumes) and anything else labelled with this test's recipe, also when the test fails.
struct EngineCleanup {
    tag: String,
    recipe: String,
}

impl Drop for EngineCleanup {
    fn drop(&mut self) {
        let filter = format!("label=canon.recipe={}", self.recipe);
        let _ = output_within(
            &mut docker(&["rm", "-f", "-v", &format!("canon-{}-listener", self.tag)]),
            Duration::from_secs(60),
        );
        let _ = output_within(
            &mut docker(&["stack", "rm", &format!("warm-{}", self.recipe)]),
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
        for image in ["canon-plugin", "canon-listener"] {
            let _ = output_within(
                &mut docker(&["image", "rm", &format!("{image}:{}", self.tag)]),
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

/// Builds both images with `scripts/build-images.sh` under `tag` from the release binaries built
/// before the tests (`scripts/test.sh`; this test never runs cargo); returns the script's output.
fn build_images(tag: &str) -> String {
    let plugin = workspace::prebuilt(workspace::PLUGIN_BIN_ENV);
    let listener = workspace::prebuilt(workspace::LISTENER_BIN_ENV);
    let out = script(
        "build-images.sh",
        &[
            ("CANON_IMAGE_TAG", tag),
            ("VERSION", "image-test"),
            (
                workspace::PLUGIN_BIN_ENV,
                plugin.to_str().expect("UTF-8 path"),
            ),
            (
                workspace::LISTENER_BIN_ENV,
                listener.to_str().expect("UTF-8 path"),
            ),
        ],
        Duration::from_secs(300),
    );
    for image in ["canon-plugin", "canon-listener"] {
        let labels = stdout_within(
            &mut docker(&[
                "image",
                "inspect",
                "--format",
                "{{json .Config.Labels}} {{json .Config.Entrypoint}}",
                &format!("{image}:{tag}"),
            ]),
            Duration::from_secs(30),
        );
        assert!(
            labels.contains(&format!(r#""org.opencontainers.image.title":"{image}""#)),
            "{labels}"
        );
        assert!(
            labels.contains(r#""org.opencontainers.image.version":"image-test""#),
            "{labels}"
        );
        assert!(
            labels.ends_with(&format!(r#"["/bin/{image}"]"#)),
            "{labels}"
        );
    }
    out
}

/// Returns the image's size in bytes, as `docker image ls` counts it.
fn image_bytes(image: &str) -> u64 {
    stdout_within(
        &mut docker(&["image", "inspect", "--format", "{{.Size}}", image]),
        Duration::from_secs(30),
    )
    .trim()
    .parse()
    .unwrap_or_else(|e| panic!("the size of {image}: {e}"))
}

/// Runs `program args` in `image` in place of its entrypoint; returns the output.
fn run_in(image: &str, extra: &[&str], program: &str, args: &[&str]) -> std::process::Output {
    let mut c = docker(&["run", "--rm"]);
    c.args(extra)
        .args(["--entrypoint", program, image])
        .args(args);
    output_within(&mut c, Duration::from_secs(120))
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
fn both_images_stay_small_and_the_plugin_tests_and_promotes_a_tag_the_way_drone_runs_it() {
    docker_engine_answers();
    let tag = image_tag();
    let recipe = recipe();
    let _cleanup = EngineCleanup {
        tag: tag.clone(),
        recipe: recipe.clone(),
    };
    let app_image = script("build-fixture-image.sh", &[], Duration::from_secs(420));
    let app_image = app_image.lines().last().unwrap_or_default().trim();
    assert!(app_image.starts_with("canon-testapp:"), "{app_image}");
    let built = build_images(&tag);
    let plugin_image = format!("canon-plugin:{tag}");
    let listener_image = format!("canon-listener:{tag}");

    let plugin_bytes = image_bytes(&plugin_image);
    let listener_bytes = image_bytes(&listener_image);
    assert!(
        plugin_bytes <= PLUGIN_MAX_BYTES,
        "canon-plugin is {plugin_bytes} bytes, more than {PLUGIN_MAX_BYTES}"
    );
    assert!(
        listener_bytes <= LISTENER_MAX_BYTES,
        "canon-listener is {listener_bytes} bytes, more than {LISTENER_MAX_BYTES}"
    );
    // The script reports the same sizes it built.
    assert!(
        built.contains(&format!("{plugin_image} {plugin_bytes} ")),
        "{built}"
    );
    assert!(
        built.contains(&format!("{listener_image} {listener_bytes} ")),
        "{built}"
    );
    eprintln!("{built}");

    // No git CLI in the plugin image; the shell the custom stage runs is there.
    let git_run = run_in(&plugin_image, &[], "git", &["--version"]);
    assert!(!git_run.status.success(), "git runs in canon-plugin");
    let sh_run = run_in(&plugin_image, &[], "sh", &["-c", "echo shell-ok"]);
    assert_eq!(String::from_utf8_lossy(&sh_run.stdout).trim(), "shell-ok");

    listener_runs_as_canon_without_a_shell(&listener_image, &plugin_image, &tag);

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
            "recipes:\n  - name: {recipe}\n    upstream: {up}\n    mirror: {mirror}\n    required_stages: [install]\n    deploy_timeout: 120\n",
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
        ("CANON_RECIPE", &recipe),
        ("CANON_TAG", TAG),
        ("CANON_COMMIT", &commit),
    ] {
        c.arg("-e").arg(format!("{k}={v}"));
    }
    c.arg(&plugin_image);
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

    let record = std::fs::read_to_string(state.join(&recipe).join("canonical.json"))
        .unwrap_or_else(|e| panic!("no canonical.json after a green run ({e}):\n{log}"));
    let record: serde_json::Value = serde_json::from_str(&record).expect("canonical.json is JSON");
    assert_eq!(record["version"], TAG, "{record}");
    assert_eq!(record["commit"], commit.as_str(), "{record}");
    let history =
        std::fs::read_to_string(state.join(&recipe).join("history.jsonl")).expect("history.jsonl");
    assert!(history.contains(TAG), "{history}");
    let report = std::fs::read_to_string(workspace.join("canon-report.json"))
        .unwrap_or_else(|e| panic!("no canon-report.json in the workspace ({e}):\n{log}"));
    assert!(report.contains("promote"), "{report}");
    eprintln!("plugin step took {:?}", started.elapsed());
}

/// Starts the listener image as it is (no `--user`), with an enrollment and the settings it
/// requires, and checks from outside (the plugin image's busybox, sharing its volume and network)
/// that it runs as uid 10001, writes its journal into its state volume, and answers `/readyz`.
fn listener_runs_as_canon_without_a_shell(listener: &str, plugin: &str, tag: &str) {
    let user = stdout_within(
        &mut docker(&["image", "inspect", "--format", "{{.Config.User}}", listener]),
        Duration::from_secs(30),
    );
    assert_eq!(user.trim(), "10001:10001", "canon-listener's user");
    let sh = run_in(listener, &[], "/bin/sh", &["-c", "true"]);
    assert!(!sh.status.success(), "canon-listener has a shell");

    let dir = tempfile::tempdir().expect("temp dir");
    let enrollment = dir.path().join("enrollment.yml");
    std::fs::write(
        &enrollment,
        "recipes:\n  - name: custom-html\n    upstream: https://git.coopcloud.tech/coop-cloud/custom-html.git\n    mirror: /srv/mirrors/custom-html.git\n",
    )
    .expect("enrollment");
    let name = format!("canon-{tag}-listener");
    let mut run = docker(&["run", "-d", "--name", &name]);
    run.arg("-v").arg(format!(
        "{}:/etc/canon/enrollment.yml:ro",
        enrollment.display()
    ));
    for (k, v) in [
        ("CANON_ENROLLMENT", "/etc/canon/enrollment.yml"),
        (
            "CANON_WEBHOOK_SECRETS",
            "image-test-webhook-secret-0123456789",
        ),
        ("CANON_DRONE_SERVER", "http://127.0.0.1:9"),
        ("CANON_DRONE_TOKEN", "image-test-drone-token"),
        ("CANON_DRONE_REPO", "canon/canon"),
    ] {
        run.arg("-e").arg(format!("{k}={v}"));
    }
    run.arg(listener);
    stdout_within(&mut run, Duration::from_secs(60));

    let busybox = |args: &[&str], with: &str| {
        let flag = format!("{with}{name}");
        let mut c = docker(&["run", "--rm", &flag, "--entrypoint", "/bin/busybox", plugin]);
        c.args(args);
        output_within(&mut c, Duration::from_secs(60))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let out = busybox(
            &["wget", "-q", "-O", "-", "http://127.0.0.1:8088/readyz"],
            "--network=container:",
        );
        if out.status.success() {
            break String::from_utf8_lossy(&out.stdout).to_string();
        }
        if Instant::now() > deadline {
            let logs = output_within(&mut docker(&["logs", &name]), Duration::from_secs(30));
            panic!(
                "canon-listener never answered /readyz: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                canon_testkit::process::printed(&logs)
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(!ready.is_empty(), "an empty /readyz answer");
    let owner = busybox(
        &["stat", "-c", "%u:%g", "/var/lib/canon/listener.sqlite3"],
        "--volumes-from=",
    );
    assert_eq!(
        String::from_utf8_lossy(&owner.stdout).trim(),
        "10001:10001",
        "the journal's owner: {}",
        String::from_utf8_lossy(&owner.stderr)
    );
}
