//! The enrollment's JSON Schema (`docs/reference/enrollment.schema.json`) against the parser:
//! every example enrollment of the repository (the files under `examples/` and the YAML blocks of
//! the README and `docs/` that enroll recipes) is valid by the schema and loads; the schema and
//! the parser know the same keys; and documents the parser refuses, the schema refuses too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use canon_shared::recipe::{enrollment_keys, Enrollment};
use canon_testkit::{docs, workspace};
use serde_json::Value;

fn schema() -> Value {
    let path = workspace::root().join("docs/reference/enrollment.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).expect("the enrollment schema is a valid JSON Schema")
}

/// Returns `(where, YAML text)` for every example enrollment: a YAML file under `examples/` or a
/// `yaml` block of the README or `docs/` whose top level has `recipes`.
fn examples() -> Vec<(String, String)> {
    let root = workspace::root();
    let enrolls = |text: &str| {
        serde_yaml::from_str::<serde_yaml::Value>(text)
            .ok()
            .is_some_and(|v| v.get("recipes").is_some())
    };
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root.join("examples")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "yml" || e == "yaml") {
                let text = std::fs::read_to_string(&path).unwrap();
                if enrolls(&text) {
                    out.push((shown(&root, &path), text));
                }
            }
        }
    }
    for file in docs::markdown_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (i, block) in docs::code_blocks(&text, "yaml").into_iter().enumerate() {
            if enrolls(&block) {
                out.push((
                    format!("{} (yaml block {})", shown(&root, &file), i + 1),
                    block,
                ));
            }
        }
    }
    out
}

fn shown(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

fn errors(validator: &jsonschema::Validator, yaml: &str) -> Vec<String> {
    let instance: Value = serde_yaml::from_str(yaml).unwrap();
    validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_example_enrollment_is_valid_by_the_schema_and_loads() {
    let validator = validator();
    let examples = examples();
    let found: Vec<&str> = examples.iter().map(|(w, _)| w.as_str()).collect();
    assert!(
        found.contains(&"examples/enrollment.yml")
            && found
                .iter()
                .any(|w| w.starts_with("docs/reference/enrollment.md")),
        "the example enrollments were not all found: {found:?}"
    );
    for (place, yaml) in &examples {
        let errs = errors(&validator, yaml);
        assert!(
            errs.is_empty(),
            "{place}: not valid by the schema: {errs:?}"
        );
        Enrollment::parse(Path::new(place), yaml).unwrap_or_else(|e| panic!("{place}: {e}"));
    }
}

fn property_names(schema: &Value, pointer: &str) -> BTreeSet<String> {
    schema
        .pointer(pointer)
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("the schema has no {pointer}"))
        .keys()
        .cloned()
        .collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[test]
fn the_schema_and_the_parser_know_the_same_keys() {
    let schema = schema();
    let keys = enrollment_keys();
    assert_eq!(
        property_names(&schema, "/properties"),
        set(keys.top),
        "top level"
    );
    assert_eq!(
        property_names(&schema, "/properties/forge/properties"),
        set(keys.forge),
        "forge"
    );
    assert_eq!(
        property_names(&schema, "/$defs/recipe/properties"),
        set(keys.recipe),
        "a recipe entry"
    );
    for pointer in ["", "/properties/forge", "/$defs/recipe"] {
        assert_eq!(
            schema.pointer(&format!("{pointer}/additionalProperties")),
            Some(&Value::Bool(false)),
            "{pointer}: the parser refuses unknown keys, so must the schema"
        );
    }
}

#[test]
fn what_the_parser_refuses_the_schema_refuses() {
    let validator = validator();
    let entry = "name: a, upstream: /u, mirror: /m";
    for doc in [
        "recipes: []".to_string(),
        "forge: {upstream: https://x.org}".to_string(),
        "colour: red\nrecipes: [{".to_string() + entry + "}]",
        format!("recipes: [{{{entry}, colour: red}}]"),
        "recipes: [{name: a, upstream: /u}]".to_string(),
        "recipes: [{name: A, upstream: /u, mirror: /m}]".to_string(),
        format!("recipes: [{{{entry}, required_stages: [deploy]}}]"),
        format!("recipes: [{{{entry}, deploy_timeout: 0}}]"),
        format!("recipes: [{{{entry}, deploy_timeout: 5m}}]"),
        format!("recipes: [{{{entry}, stability_window: 0}}]"),
        format!("recipes: [{{{entry}, stability_window: 3601}}]"),
        format!("recipes: [{{{entry}, health_path: health}}]"),
        format!("recipes: [{{{entry}, drone_repo: just-a-name}}]"),
        format!("recipes: [{{{entry}, data_check: ./check.sh}}]"),
        format!("recipes: [{{{entry}, data_check: {{seed: s, change: c}}}}]"),
        format!("recipes: [{{{entry}, data_check: {{seed: s, change: c, verify: v, other: o}}}}]"),
        format!("recipes: [{{{entry}, data_check: {{seed: s, change: '  ', verify: v}}}}]"),
        format!("forge: {{upstream: git.coopcloud.tech}}\nrecipes: [{{{entry}}}]"),
    ] {
        assert!(
            Enrollment::parse(Path::new("e.yml"), &doc).is_err(),
            "the parser took {doc}"
        );
        assert!(
            !errors(&validator, &doc).is_empty(),
            "the schema took what the parser refuses: {doc}"
        );
    }
}
