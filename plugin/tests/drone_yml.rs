//! `.drone.yml` stays in step with the plugin: every setting a `canon-plugin` step passes is a
//! known setting ([`KNOWN_SETTINGS`]), every required one is there, secrets only travel through
//! `from_secret`, and the `canonical` and `weekly-sweep` pipelines have the triggers, host volumes
//! and modes canon-listener and the Drone cron job rely on.

use std::collections::BTreeMap;

use canon_plugin::settings::{setting_doc, Required, KNOWN_SETTINGS};
use canon_testkit::workspace;
use serde::Deserialize;
use serde_yaml::{Mapping, Value};

fn pipelines() -> BTreeMap<String, Mapping> {
    let path = workspace::root().join(".drone.yml");
    let text = std::fs::read_to_string(&path).expect("read .drone.yml");
    let mut out = BTreeMap::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let value = Value::deserialize(doc).expect(".drone.yml is valid YAML");
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

#[test]
fn every_plugin_setting_is_known_required_ones_are_given_and_secrets_come_from_secrets() {
    let pipelines = pipelines();
    let mut checked = 0;
    for (name, pipeline) in &pipelines {
        let events = strings(pipeline.get("trigger").and_then(|t| t.get("event")));
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
                let doc = setting_doc(key).unwrap_or_else(|| {
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
            for doc in KNOWN_SETTINGS {
                let required = match doc.required {
                    Required::Always => true,
                    Required::TagMode => mode == "tag",
                    Required::No => false,
                };
                if required {
                    assert!(
                        settings.contains_key(doc.name),
                        "{name}/{step_name} ({mode} mode) lacks the required setting `{}`",
                        doc.name
                    );
                }
            }
        }
    }
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
    let mounts = host_mounts(p, steps[0]);
    let state_dir = settings["state_dir"].as_str().expect("state_dir");
    assert!(
        mounts.contains_key(state_dir),
        "the state dir {state_dir} is a host volume: {mounts:?}"
    );
    assert_eq!(
        mounts.get("/var/run/docker.sock").map(String::as_str),
        Some("/var/run/docker.sock")
    );
    let config = settings["config"].as_str().expect("config");
    assert!(
        mounts.keys().any(|m| config.starts_with(&format!("{m}/"))),
        "the enrollment {config} is on a host volume: {mounts:?}"
    );
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
