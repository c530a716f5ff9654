//! A compose file as canon deploys it: every value interpolated by canon with the recipe's env
//! (docker's rules, [`crate::recipe::interpolate`]), so `docker stack deploy` needs no recipe
//! variable in its own environment and the recipe's env never configures the docker CLI.
//!
//! What docker would have done with the variables of its environment is done here instead:
//! - every string value is interpolated (mapping keys stay as written, as docker keeps them);
//!   a value is cast where docker casts it (`deploy.replicas` to a number, `privileged` to a
//!   boolean, a YAML 1.1 octal file mode such as `0555` to its number), so the file means what
//!   it meant to docker's YAML 1.1 reader;
//! - an `environment:` entry with no value (`- KEY`, `KEY:`) takes the env's value, as docker
//!   takes it from its environment;
//! - a relative path (a bind mount's source, `env_file`, a secret's or config's `file:`) is made
//!   absolute against the folder of the first compose file, docker's working folder, so the
//!   resolved file can live outside the checkout;
//! - every `$` left in a value is written `$$`, so docker's own interpolation gives back the
//!   value canon resolved, whatever its environment holds.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_yaml::Value;

use super::ComposeError;
use crate::recipe::interpolate::{interpolate, InterpolationError};

/// The kind docker casts a changed value to.
#[derive(Clone, Copy)]
enum Cast {
    Int,
    Float,
    Bool,
}

/// Where docker's loader casts an interpolated value (docker/cli `interpolateTypeCastMapping`):
/// `*` is any mapping key, `[]` any list item.
const CASTS: &[(&[&str], Cast)] = &[
    (&["services", "*", "configs", "[]", "mode"], Cast::Int),
    (&["services", "*", "secrets", "[]", "mode"], Cast::Int),
    (&["services", "*", "healthcheck", "retries"], Cast::Int),
    (&["services", "*", "healthcheck", "disable"], Cast::Bool),
    (&["services", "*", "deploy", "replicas"], Cast::Int),
    (
        &["services", "*", "deploy", "update_config", "parallelism"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "update_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    (
        &["services", "*", "deploy", "rollback_config", "parallelism"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "rollback_config",
            "max_failure_ratio",
        ],
        Cast::Float,
    ),
    (
        &["services", "*", "deploy", "restart_policy", "max_attempts"],
        Cast::Int,
    ),
    (
        &[
            "services",
            "*",
            "deploy",
            "placement",
            "max_replicas_per_node",
        ],
        Cast::Int,
    ),
    (&["services", "*", "ports", "[]", "target"], Cast::Int),
    (&["services", "*", "ports", "[]", "published"], Cast::Int),
    (&["services", "*", "ulimits", "*"], Cast::Int),
    (&["services", "*", "ulimits", "*", "hard"], Cast::Int),
    (&["services", "*", "ulimits", "*", "soft"], Cast::Int),
    (&["services", "*", "privileged"], Cast::Bool),
    (&["services", "*", "read_only"], Cast::Bool),
    (&["services", "*", "stdin_open"], Cast::Bool),
    (&["services", "*", "tty"], Cast::Bool),
    (&["services", "*", "init"], Cast::Bool),
    (&["services", "*", "volumes", "[]", "read_only"], Cast::Bool),
    (
        &["services", "*", "volumes", "[]", "volume", "nocopy"],
        Cast::Bool,
    ),
    (&["networks", "*", "external"], Cast::Bool),
    (&["networks", "*", "internal"], Cast::Bool),
    (&["networks", "*", "attachable"], Cast::Bool),
    (&["volumes", "*", "external"], Cast::Bool),
    (&["secrets", "*", "external"], Cast::Bool),
    (&["configs", "*", "external"], Cast::Bool),
];

/// Returns how docker casts a value at `path`, if it does.
fn cast_at(path: &[String]) -> Option<Cast> {
    CASTS.iter().find_map(|(pattern, cast)| {
        (pattern.len() == path.len()
            && pattern
                .iter()
                .zip(path)
                .all(|(p, k)| *p == "*" && k != "[]" || *p == k.as_str()))
        .then_some(*cast)
    })
}

/// Returns `text` cast as docker would, or the text when it does not cast (docker then refuses
/// the file, as it would have).
fn cast(text: String, how: Cast) -> Value {
    let casted = match how {
        Cast::Int => {
            let t = text.trim();
            // YAML 1.1 octal (`0555`, a file mode), as docker's reader takes it.
            match t.strip_prefix("0o").or(t.strip_prefix('0')) {
                Some(octal) if !octal.is_empty() => i64::from_str_radix(octal, 8).ok(),
                _ => t.parse::<i64>().ok(),
            }
            .map(Value::from)
        }
        Cast::Float => text.trim().parse::<f64>().ok().map(Value::from),
        Cast::Bool => match text.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "true" | "on" => Some(Value::Bool(true)),
            "n" | "no" | "false" | "off" => Some(Value::Bool(false)),
            _ => None,
        },
    };
    casted.unwrap_or(Value::String(text))
}

/// Returns `value` (at `path`) with every string interpolated from `env`.
fn interpolated(
    value: &Value,
    path: &mut Vec<String>,
    env: &BTreeMap<String, String>,
) -> Result<Value, InterpolationError> {
    Ok(match value {
        Value::String(s) => {
            let new = interpolate(s, env)?;
            // Docker casts only a changed value; an unchanged string here is one its YAML 1.1
            // reader takes as a number or boolean where this YAML 1.2 reader does not (`0555`
            // is octal, `yes` true), so it is cast too.
            match cast_at(path) {
                Some(how) => cast(new, how),
                None => Value::String(new),
            }
        }
        Value::Sequence(items) => {
            path.push("[]".into());
            let out = items
                .iter()
                .map(|i| interpolated(i, path, env))
                .collect::<Result<_, _>>();
            path.pop();
            Value::Sequence(out?)
        }
        Value::Mapping(m) => {
            let mut out = serde_yaml::Mapping::new();
            for (k, v) in m {
                path.push(super::Scalar::text(k).unwrap_or_default());
                let v = interpolated(v, path, env);
                path.pop();
                out.insert(k.clone(), v?);
            }
            Value::Mapping(out)
        }
        Value::Tagged(t) => Value::Tagged(Box::new(serde_yaml::value::TaggedValue {
            tag: t.tag.clone(),
            value: interpolated(&t.value, path, env)?,
        })),
        other => other.clone(),
    })
}

/// Returns `value` with every `$` of its strings written `$$` (keys as they are).
fn escaped(value: Value) -> Value {
    match value {
        Value::String(s) => Value::String(s.replace('$', "$$")),
        Value::Sequence(items) => Value::Sequence(items.into_iter().map(escaped).collect()),
        Value::Mapping(m) => Value::Mapping(m.into_iter().map(|(k, v)| (k, escaped(v))).collect()),
        Value::Tagged(mut t) => {
            t.value = escaped(t.value);
            Value::Tagged(t)
        }
        other => other,
    }
}

/// Returns `relative` joined to `base` with `.` and `..` taken out, as Go's `filepath.Join`
/// cleans it; an absolute path or one starting with `~` is returned as it is.
fn absolute(base: &Path, relative: &str) -> String {
    if relative.starts_with('/') || relative.starts_with('~') || relative.is_empty() {
        return relative.to_string();
    }
    let mut out = PathBuf::new();
    for part in base.join(relative).components() {
        match part {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out.display().to_string()
}

/// Makes the relative paths of one service absolute against `base`: bind mount sources (short
/// syntax: a source starting with `.`; long syntax: `type: bind`) and `env_file`.
fn service_paths(service: &mut serde_yaml::Mapping, base: &Path) {
    if let Some(Value::Sequence(volumes)) = service.get_mut("volumes") {
        for v in volumes {
            match v {
                Value::String(s) => {
                    if let Some((source, rest)) = s.split_once(':') {
                        if source.starts_with('.') {
                            *s = format!("{}:{rest}", absolute(base, source));
                        }
                    }
                }
                Value::Mapping(m) => {
                    let bind = m.get("type").and_then(Value::as_str) == Some("bind");
                    if let (true, Some(Value::String(source))) = (bind, m.get_mut("source")) {
                        *source = absolute(base, source);
                    }
                }
                _ => {}
            }
        }
    }
    match service.get_mut("env_file") {
        Some(Value::String(s)) => *s = absolute(base, s),
        Some(Value::Sequence(files)) => {
            for f in files {
                match f {
                    Value::String(s) => *s = absolute(base, s),
                    Value::Mapping(m) => {
                        if let Some(Value::String(s)) = m.get_mut("path") {
                            *s = absolute(base, s);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// Gives an `environment:` entry with no value the env's value, as docker would from its own
/// environment (an entry the env has no value for stays as it is).
fn service_environment(service: &mut serde_yaml::Mapping, env: &BTreeMap<String, String>) {
    match service.get_mut("environment") {
        Some(Value::Sequence(items)) => {
            for item in items {
                if let Value::String(s) = item {
                    if !s.contains('=') {
                        if let Some(v) = env.get(s.trim()) {
                            *s = format!("{}={v}", s.trim());
                        }
                    }
                }
            }
        }
        Some(Value::Mapping(m)) => {
            for (k, v) in m.iter_mut() {
                if v.is_null() {
                    if let Some(value) = k.as_str().and_then(|k| env.get(k)) {
                        *v = Value::String(value.clone());
                    }
                }
            }
        }
        _ => {}
    }
}

/// Returns the compose file `text` (read from `path`) resolved for deploying with the env `env`,
/// its relative paths made absolute against `base` (the folder of the stack's first compose
/// file): see the module docs.
pub fn resolve_file(
    path: &Path,
    text: &str,
    base: &Path,
    env: &BTreeMap<String, String>,
) -> Result<String, ComposeError> {
    let file_error = |message: String| ComposeError::File {
        path: path.to_path_buf(),
        message,
    };
    let doc: Value =
        serde_yaml::from_str(text).map_err(|e| file_error(format!("invalid YAML: {e}")))?;
    let doc = super::merge_keys::resolve(doc).map_err(|e| file_error(e.to_string()))?;
    let mut doc =
        interpolated(&doc, &mut Vec::new(), env).map_err(|error| ComposeError::Interpolation {
            path: path.to_path_buf(),
            error,
        })?;
    if let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) {
        for (_, service) in services.iter_mut() {
            if let Some(service) = service.as_mapping_mut() {
                service_environment(service, env);
                service_paths(service, base);
            }
        }
    }
    for section in ["secrets", "configs"] {
        if let Some(decls) = doc.get_mut(section).and_then(Value::as_mapping_mut) {
            for (_, decl) in decls.iter_mut() {
                if let Some(Value::String(file)) = decl.get_mut("file") {
                    *file = absolute(base, file);
                }
            }
        }
    }
    serde_yaml::to_string(&escaped(doc)).map_err(|e| file_error(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recipe::compose::tests::env;

    fn resolve(text: &str, env: &BTreeMap<String, String>) -> Value {
        let out = resolve_file(Path::new("compose.yml"), text, Path::new("/co"), env).unwrap();
        serde_yaml::from_str(&out).unwrap()
    }

    #[test]
    fn values_are_interpolated_and_a_left_dollar_is_escaped_for_docker() {
        let e = env(&[
            ("IMAGE", "nginx:1.27"),
            ("PASS", "a$b"),
            ("STACK_NAME", "s"),
            ("REPLICAS", "2"),
            ("RO", "yes"),
        ]);
        let doc = resolve(
            "version: '3.8'\nservices:\n  app:\n    image: ${IMAGE}\n    read_only: ${RO}\n    tty: on\n    configs: [{source: c, mode: 0555}]\n    environment:\n      LITERAL: \"x$$y\"\n      PASS: ${PASS}\n    deploy:\n      replicas: ${REPLICAS}\n      labels: ['coop-cloud.${STACK_NAME}.version=1.0.0+1']\nsecrets:\n  k: {external: true, name: \"${STACK_NAME}_k_v1\"}\n",
            &e,
        );
        let app = &doc["services"]["app"];
        assert_eq!(doc["version"], "3.8");
        assert_eq!(app["image"], "nginx:1.27");
        assert_eq!(app["environment"]["LITERAL"], "x$$y");
        assert_eq!(app["environment"]["PASS"], "a$$b");
        assert_eq!(app["deploy"]["replicas"], 2, "cast as docker casts it");
        assert_eq!(app["read_only"], true);
        assert_eq!(app["tty"], true, "YAML 1.1's `on`, as docker reads it");
        assert_eq!(doc["services"]["app"]["configs"][0]["mode"], 0o555);
        assert_eq!(app["deploy"]["labels"][0], "coop-cloud.s.version=1.0.0+1");
        assert_eq!(doc["secrets"]["k"]["name"], "s_k_v1");
    }

    #[test]
    fn a_bare_environment_entry_takes_the_env_value() {
        let e = env(&[("A", "1"), ("B", "2")]);
        let doc = resolve(
            "services:\n  app:\n    environment: [A, C, 'D=4']\n  db:\n    environment: {B: null, E: null}\n",
            &e,
        );
        assert_eq!(
            doc["services"]["app"]["environment"],
            serde_yaml::from_str::<Value>("[A=1, C, D=4]").unwrap()
        );
        assert_eq!(doc["services"]["db"]["environment"]["B"], "2");
        assert!(doc["services"]["db"]["environment"]["E"].is_null());
    }

    #[test]
    fn relative_paths_are_made_absolute_against_the_checkout() {
        let doc = resolve(
            "services:\n  app:\n    volumes: ['./conf:/conf:ro', 'data:/data', '/abs:/abs', {type: bind, source: sub/../x, target: /x}, {type: volume, source: v, target: /v}]\n    env_file: [.env.extra, /etc/abs.env]\nconfigs:\n  c: {file: ./c.tmpl}\nsecrets:\n  s: {file: s.txt}\n  e: {external: true}\n",
            &BTreeMap::new(),
        );
        let app = &doc["services"]["app"];
        assert_eq!(app["volumes"][0], "/co/conf:/conf:ro");
        assert_eq!(app["volumes"][1], "data:/data");
        assert_eq!(app["volumes"][2], "/abs:/abs");
        assert_eq!(app["volumes"][3]["source"], "/co/x");
        assert_eq!(app["volumes"][4]["source"], "v");
        assert_eq!(app["env_file"][0], "/co/.env.extra");
        assert_eq!(app["env_file"][1], "/etc/abs.env");
        assert_eq!(doc["configs"]["c"]["file"], "/co/c.tmpl");
        assert_eq!(doc["secrets"]["s"]["file"], "/co/s.txt");
    }

    #[test]
    fn a_required_variable_is_an_error_naming_the_file() {
        let err = resolve_file(
            Path::new("compose.yml"),
            "services: {app: {image: \"${IMAGE:?set the image}\"}}",
            Path::new("/co"),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("compose.yml") && err.contains("set the image"),
            "{err}"
        );
    }
}
