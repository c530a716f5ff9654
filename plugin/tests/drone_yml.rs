//! `.drone.yml` and `examples/recipe-mirror.drone.yml` stay in step with the plugin: every
//! setting a `canon-plugin` step passes is a known plugin setting (`KNOWN_SETTINGS`), every required
//! one is there, secrets only travel through `from_secret`, and the `canonical`, `weekly-sweep`
//! and recipe mirror pipelines have the triggers, host volumes and modes canon-listener, the Drone
//! cron job and pull requests rely on. The operator guide shows the mirror's pipeline as the
//! example file is, byte for byte.

use std::collections::BTreeMap;
use std::path::Path;

use canon_plugin::settings::{plugin_setting, plugin_settings, Required};
use canon_testkit::workspace;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

/// The recipe mirror's pipeline, which the operator guide shows.
const MIRROR_EXAMPLE: &str = "examples/recipe-mirror.drone.yml";

/// Returns the pipelines of canon's `.drone.yml`, by name.
fn pipelines() -> BTreeMap<String, Mapping> {
    pipelines_in(&workspace::root().join(".drone.yml"))
}

/// Returns the pipelines of the Drone file `path` (one YAML document each), by name.
fn pipelines_in(path: &Path) -> BTreeMap<String, Mapping> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc)
            .unwrap_or_else(|e| panic!("{} is valid YAML: {e}", path.display()));
        let map = value
            .as_mapping()
            .expect("each document is a mapping")
            .clone();
        assert_eq!(map.get("kind").and_then(Value::as_str), Some("pipeline"));
        assert_eq!(map.get("type").and_then(Value::as_str), Some("docker"));
        let name = map
            .get("name")
            .and_then(Value::as_str)
            .expect("every pipeline has a name")
            .to_string();
        assert!(
            out.insert(name.clone(), map).is_none(),
            "pipeline {name} twice"
        );
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_sequence)
        .map(|s| {
            s.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn plugin_steps(pipeline: &Mapping) -> Vec<&Mapping> {
    pipeline
        .get("steps")
        .and_then(Value::as_sequence)
        .expect("steps")
        .iter()
        .filter_map(Value::as_mapping)
        .filter(|s| {
            s.get("image")
                .and_then(Value::as_str)
                .is_some_and(|i| i == "canon-plugin" || i.starts_with("canon-plugin:"))
        })
        .collect()
}

/// Returns the mount paths of a step's volumes that are host paths in the pipeline.
fn host_mounts(pipeline: &Mapping, step: &Mapping) -> BTreeMap<String, String> {
    let hosts: BTreeMap<&str, &str> = pipeline
        .get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            Some((
                v.get("name")?.as_str()?,
                v.get("host")?.get("path")?.as_str()?,
            ))
        })
        .collect();
    step.get("volumes")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let name = v.get("name")?.as_str()?;
            let path = v.get("path")?.as_str()?;
            Some((path.to_string(), hosts.get(name)?.to_string()))
        })
        .collect()
}

/// Checks every `canon-plugin` step of the pipeline `name`: settings, not commands; every setting
/// known and passed as Drone passes it; secrets, and only secrets, from `from_secret`; every
/// setting its mode requires given, except those in `filled`, which the build's own variables
/// fill in when unset. Returns how many steps it checked.
fn check_plugin_steps(name: &str, pipeline: &Mapping, filled: &[&str]) -> usize {
    let events = strings(pipeline.get("trigger").and_then(|t| t.get("event")));
    let mut checked = 0;
    for step in plugin_steps(pipeline) {
        checked += 1;
        let step_name = step.get("name").and_then(Value::as_str).unwrap_or("?");
        assert!(
            step.get("commands").is_none() && step.get("entrypoint").is_none(),
            "{name}/{step_name}: a plugin step has settings, not commands"
        );
        let settings = step
            .get("settings")
            .and_then(Value::as_mapping)
            .unwrap_or_else(|| panic!("{name}/{step_name} has settings"));
        for (key, value) in settings {
            let key = key.as_str().expect("setting names are strings");
            let doc = plugin_setting(key).unwrap_or_else(|| {
                panic!("{name}/{step_name}: `{key}` is not a canon-plugin setting")
            });
            // Drone passes `key` as PLUGIN_<KEY> with nothing but upper-casing.
            assert_eq!(doc.env[0], format!("PLUGIN_{}", key.to_uppercase()));
            let from_secret = value.get("from_secret").is_some();
            assert_eq!(
                from_secret,
                doc.secret,
                "{name}/{step_name}: `{key}` {} a secret, so it {} come from `from_secret`",
                if doc.secret { "is" } else { "is not" },
                if doc.secret { "must" } else { "must not" },
            );
        }
        let mode = settings
            .get("mode")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                // Without `mode`, the plugin picks it from DRONE_BUILD_EVENT.
                if events == ["cron"] {
                    "sweep".into()
                } else {
                    "tag".into()
                }
            });
        for doc in plugin_settings() {
            let required = match doc.required {
                Required::Always => true,
                Required::TagMode => mode == "tag",
                Required::No => false,
            };
            if required && !filled.contains(&doc.name) {
                assert!(
                    settings.contains_key(doc.name),
                    "{name}/{step_name} ({mode} mode) lacks the required setting `{}`",
                    doc.name
                );
            }
        }
    }
    checked
}

/// Checks that the step's state dir, enrollment file and Docker socket are host volumes of the
/// pipeline `name`, so they outlive the build and are the host's own.
fn check_host_mounts(name: &str, pipeline: &Mapping, step: &Mapping) {
    let settings = step.get("settings").expect("settings");
    let mounts = host_mounts(pipeline, step);
    let state_dir = settings["state_dir"].as_str().expect("state_dir");
    assert!(
        mounts.contains_key(state_dir),
        "{name}: the state dir {state_dir} is a host volume: {mounts:?}"
    );
    assert_eq!(
        mounts.get("/var/run/docker.sock").map(String::as_str),
        Some("/var/run/docker.sock"),
        "{name}: the Docker socket is the host's"
    );
    let config = settings["config"].as_str().expect("config");
    assert!(
        mounts.keys().any(|m| config.starts_with(&format!("{m}/"))),
        "{name}: the enrollment {config} is on a host volume: {mounts:?}"
    );
}

#[test]
fn every_plugin_setting_is_known_required_ones_are_given_and_secrets_come_from_secrets() {
    let checked: usize = pipelines()
        .iter()
        .map(|(name, pipeline)| check_plugin_steps(name, pipeline, &[]))
        .sum();
    assert_eq!(
        checked, 2,
        "the canonical and weekly-sweep steps were checked"
    );
}

#[test]
fn the_canonical_pipeline_takes_the_listeners_build_parameters() {
    let pipelines = pipelines();
    let p = &pipelines["canonical"];
    let trigger = p.get("trigger").expect("a trigger");
    assert_eq!(strings(trigger.get("event")), ["custom"]);
    let steps = plugin_steps(p);
    assert_eq!(steps.len(), 1);
    let settings = steps[0].get("settings").expect("settings");
    // The listener starts builds with exactly these parameters (shared/src/drone.rs).
    for (key, param) in [
        ("recipe", "CANON_RECIPE"),
        ("tag", "CANON_TAG"),
        ("commit", "CANON_COMMIT"),
    ] {
        assert_eq!(
            settings.get(key).and_then(Value::as_str),
            Some(format!("${{{param}}}").as_str()),
            "`{key}` comes from the build parameter {param}"
        );
    }
    assert!(settings.get("mode").is_none() || settings["mode"] == "tag");
    check_host_mounts("canonical", p, steps[0]);
}

#[test]
fn the_recipe_mirror_example_passes_the_same_checks_and_runs_for_pull_requests_and_pushes() {
    let pipelines = pipelines_in(&workspace::root().join(MIRROR_EXAMPLE));
    assert_eq!(pipelines.len(), 1, "one pipeline in {MIRROR_EXAMPLE}");
    let (name, p) = pipelines.iter().next().expect("one pipeline");
    // Drone sets DRONE_REPO on every build, and the recipe is the one whose mirror it is.
    assert_eq!(check_plugin_steps(name, p, &["recipe"]), 1);
    let events = strings(p.get("trigger").and_then(|t| t.get("event")));
    for want in ["pull_request", "push"] {
        assert!(
            events.iter().any(|e| e == want),
            "{name} runs on {want}: {events:?}"
        );
    }
    // Custom builds are the canonical pipeline's, cron builds the sweep's, tags are promoted there.
    for never in ["custom", "cron", "tag"] {
        assert!(
            !events.iter().any(|e| e == never),
            "{name} must not run on {never}: {events:?}"
        );
    }
    let steps = plugin_steps(p);
    let settings = steps[0].get("settings").expect("settings");
    // What is tested comes from each build; a fixed value would test it on every pull request.
    for key in ["mode", "recipe", "tag", "ref", "commit"] {
        assert!(
            settings.get(key).is_none(),
            "{name}: `{key}` comes from the build, not the pipeline"
        );
    }
    assert_eq!(
        settings.get("runner").and_then(Value::as_str),
        Some("docker")
    );
    check_host_mounts(name, p, steps[0]);
}

#[test]
fn the_operator_guide_shows_the_recipe_mirror_example_byte_for_byte() {
    let root = workspace::root();
    let example = std::fs::read_to_string(root.join(MIRROR_EXAMPLE)).expect("read the example");
    let guide =
        std::fs::read_to_string(root.join("docs/operator-guide.md")).expect("read the guide");
    let heading = "### Pull requests and branches run warm\n";
    let section = &guide[guide.find(heading).expect("the guide has the section")..];
    let fence = "```yaml\n";
    let block =
        &section[section.find(fence).expect("the section shows a YAML block") + fence.len()..];
    let block = &block[..block.find("\n```\n").expect("the block ends") + 1];
    assert!(
        block == example,
        "the guide's block differs from {MIRROR_EXAMPLE}; copy the file into the guide:\n{}",
        first_difference(block, &example)
    );
}

/// Returns the first line where `a` and `b` differ, for a failure message.
fn first_difference(a: &str, b: &str) -> String {
    let mut lines = a
        .split_inclusive('\n')
        .zip(b.split_inclusive('\n'))
        .enumerate();
    match lines.find(|(_, (x, y))| x != y) {
        Some((i, (x, y))) => format!("line {}: guide {x:?}, file {y:?}", i + 1),
        None => format!(
            "one is longer: guide {} lines, file {} lines",
            a.lines().count(),
            b.lines().count()
        ),
    }
}

#[test]
fn the_weekly_sweep_runs_only_from_the_weekly_cron_job() {
    let pipelines = pipelines();
    let p = &pipelines["weekly-sweep"];
    let trigger = p.get("trigger").expect("a trigger");
    assert_eq!(strings(trigger.get("event")), ["cron"]);
    assert_eq!(strings(trigger.get("cron")), ["weekly"]);
    let steps = plugin_steps(p);
    assert_eq!(steps.len(), 1);
    let settings = steps[0].get("settings").expect("settings");
    assert_eq!(settings.get("mode").and_then(Value::as_str), Some("sweep"));
    // Cron builds carry no parameters: nothing may come from ${...} substitution.
    for (k, v) in settings.as_mapping().expect("a mapping") {
        if let Some(s) = v.as_str() {
            assert!(
                !s.contains("${"),
                "`{k:?}` depends on a build parameter: {s}"
            );
        }
    }
    let mounts = host_mounts(p, steps[0]);
    assert!(mounts.contains_key(settings["state_dir"].as_str().expect("state_dir")));
    assert!(mounts.contains_key("/var/run/docker.sock"));
}

#[test]
fn every_pipeline_has_a_trigger_so_custom_and_cron_builds_run_only_theirs() {
    // A pipeline without `trigger.event` matches every event (drone-yaml Condition.Match):
    // a cron build would then also run the CI, and a custom build the sweep.
    let pipelines = pipelines();
    assert_eq!(
        pipelines.keys().collect::<Vec<_>>(),
        ["canonical", "ci", "weekly-sweep"]
    );
    for (name, p) in &pipelines {
        let events = strings(p.get("trigger").and_then(|t| t.get("event")));
        assert!(!events.is_empty(), "{name} has trigger.event");
        if name == "ci" {
            assert!(!events.iter().any(|e| e == "custom" || e == "cron"));
            let steps: Vec<&str> = p["steps"]
                .as_sequence()
                .expect("steps")
                .iter()
                .filter_map(|s| s.get("name")?.as_str())
                .collect();
            for want in ["fmt", "clippy", "test", "images"] {
                assert!(steps.contains(&want), "ci has a {want} step: {steps:?}");
            }
        }
    }
}

/// Returns every file an operator copies an image name from: canon's pipelines, the examples,
/// the plugin card, the README and the docs.
fn image_sources() -> Vec<std::path::PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path
                .extension()
                .is_some_and(|e| e == "md" || e == "yml" || e == "yaml")
            {
                out.push(path);
            }
        }
    }
    let root = workspace::root();
    let mut out = vec![
        root.join(".drone.yml"),
        root.join("plugin/card.yaml"),
        root.join("README.md"),
    ];
    walk(&root.join("examples"), &mut out);
    walk(&root.join("docs"), &mut out);
    out
}

#[test]
fn every_pipeline_example_card_and_guide_names_the_release_image_tag() {
    let version = env!("CARGO_PKG_VERSION");
    let mut wrong = Vec::new();
    for path in image_sources() {
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path
            .strip_prefix(workspace::root())
            .unwrap()
            .display()
            .to_string();
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start().trim_start_matches("- ");
            if trimmed == "image: canon-plugin" || trimmed == "image: canon-listener" {
                wrong.push(format!("{name}:{}: no tag: {line}", n + 1));
            }
            for image in ["canon-plugin:", "canon-listener:"] {
                for (at, _) in line.match_indices(image) {
                    if line[..at].ends_with("//") {
                        continue; // a URL's host and port, not an image
                    }
                    let tag: String = line[at + image.len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && !matches!(c, '`' | ',' | ')' | '"'))
                        .collect();
                    let ok = tag.is_empty()
                        || tag == version
                        || tag == "$${DRONE_COMMIT_SHA}"
                        || (tag == "latest" && line.contains("docker tag "));
                    if !ok {
                        wrong.push(format!("{name}:{}: {image}{tag}", n + 1));
                    }
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "every image an operator copies names the release's tag ({version}):\n{}",
        wrong.join("\n")
    );
}
