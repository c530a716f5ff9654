//! YAML merge keys (`<<: *a`, `<<: [*a, *b]`), resolved in every mapping of a compose file before
//! anything reads it, as docker's compose loader resolves them: the keys a mapping writes itself
//! win over merged ones, and of several merged mappings the first that has a key wins (YAML 1.1's
//! merge key type).
//!
//! Separate from the parse because it rewrites the whole document, whatever its shape.
//! serde_yaml's own `Value::apply_merge` is not used: it reorders a mapping's keys (services in
//! file order are a fact canon reads) and leaves a merge key inside a merged mapping (an anchor
//! that itself merges another, `x-web: &web {<<: *base}`) unresolved.

use serde_yaml::value::TaggedValue;
use serde_yaml::{Mapping, Value};

/// Why a merge key cannot be resolved: its value is no mapping and no list of mappings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a YAML merge key `<<` takes a mapping or a list of mappings, not {found}")]
pub struct MergeKeyError {
    /// What it found instead (`a string`, `a list holding a list`, ...).
    found: &'static str,
}

/// Returns `value` with every merge key resolved, at every depth.
pub fn resolve(value: Value) -> Result<Value, MergeKeyError> {
    Ok(match value {
        Value::Mapping(m) => Value::Mapping(resolve_mapping(m)?),
        Value::Sequence(items) => {
            Value::Sequence(items.into_iter().map(resolve).collect::<Result<_, _>>()?)
        }
        Value::Tagged(t) => {
            let TaggedValue { tag, value } = *t;
            Value::Tagged(Box::new(TaggedValue {
                tag,
                value: resolve(value)?,
            }))
        }
        other => other,
    })
}

/// Resolves one mapping: its values first (so a merged mapping's own merge keys are resolved
/// before it is merged), then its merge keys, in place of the `<<` entry.
fn resolve_mapping(m: Mapping) -> Result<Mapping, MergeKeyError> {
    let merge_key = Value::String("<<".into());
    let mut entries = Vec::with_capacity(m.len());
    for (k, v) in m {
        entries.push((k, resolve(v)?));
    }
    let own: Vec<&Value> = entries
        .iter()
        .filter(|(k, _)| *k != merge_key)
        .map(|(k, _)| k)
        .collect();
    let own_keys: Mapping = own.into_iter().map(|k| (k.clone(), Value::Null)).collect();
    let mut out = Mapping::with_capacity(entries.len());
    for (k, v) in entries {
        if k != merge_key {
            out.insert(k, v);
            continue;
        }
        for merged in merged_mappings(v)? {
            for (mk, mv) in merged {
                if !own_keys.contains_key(&mk) && !out.contains_key(&mk) {
                    out.insert(mk, mv);
                }
            }
        }
    }
    Ok(out)
}

/// Returns the mappings a merge key's value names, in order.
fn merged_mappings(v: Value) -> Result<Vec<Mapping>, MergeKeyError> {
    let kind = |v: &Value| match v {
        Value::Null => "an empty value",
        Value::Bool(_) | Value::Number(_) | Value::String(_) => "a scalar",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    };
    match v {
        Value::Mapping(m) => Ok(vec![m]),
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Mapping(m) => Ok(m),
                other => Err(MergeKeyError {
                    found: match kind(&other) {
                        "a list" => "a list holding a list",
                        "a tagged value" => "a list holding a tagged value",
                        "an empty value" => "a list holding an empty value",
                        _ => "a list holding a scalar",
                    },
                }),
            })
            .collect(),
        other => Err(MergeKeyError {
            found: kind(&other),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(text: &str) -> Value {
        resolve(serde_yaml::from_str(text).unwrap()).unwrap()
    }

    fn keys(v: &Value) -> Vec<String> {
        v.as_mapping()
            .unwrap()
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn one_merged_mapping_fills_in_what_the_mapping_does_not_write_itself() {
        let v = resolved(
            "x-env: &env {A: from-anchor, B: from-anchor}\nenv:\n  B: own\n  <<: *env\n  C: own\n",
        );
        let env = &v["env"];
        assert_eq!(env["A"], "from-anchor");
        assert_eq!(
            env["B"], "own",
            "an explicit key wins, wherever it is written"
        );
        assert_eq!(
            keys(env),
            vec!["B", "A", "C"],
            "merged keys stand where `<<` was"
        );
    }

    #[test]
    fn of_several_merged_mappings_the_first_that_has_a_key_wins() {
        let v = resolved("a: &a {K: a, X: a}\nb: &b {K: b, Y: b}\nm:\n  <<: [*a, *b]\n  Y: own\n");
        let m = &v["m"];
        assert_eq!(m["K"], "a");
        assert_eq!(m["X"], "a");
        assert_eq!(m["Y"], "own");
    }

    #[test]
    fn an_anchor_that_merges_another_is_resolved_before_it_is_merged() {
        let v = resolved(
            "x-base: &base {image: x, restart: always}\nx-web: &web\n  <<: *base\n  image: web\nservices:\n  app:\n    <<: *web\n",
        );
        let app = &v["services"]["app"];
        assert_eq!(app["image"], "web");
        assert_eq!(app["restart"], "always");
        assert!(app.get("<<").is_none(), "{app:?}");
    }

    #[test]
    fn merge_keys_are_resolved_at_every_depth_and_in_lists() {
        let v = resolved(
            "x: &l {backupbot.backup: \"true\"}\nservices:\n  - deploy:\n      labels:\n        <<: *l\n",
        );
        assert_eq!(
            v["services"][0]["deploy"]["labels"]["backupbot.backup"],
            "true"
        );
    }

    #[test]
    fn a_merge_key_of_another_shape_is_refused_saying_what_it_found() {
        for (text, found) in [
            ("m: {<<: text}", "a scalar"),
            ("m: {<<: [[1]]}", "a list holding a list"),
            ("m: {<<: [x]}", "a list holding a scalar"),
            ("m: {<<: }", "an empty value"),
        ] {
            let err = resolve(serde_yaml::from_str(text).unwrap()).unwrap_err();
            assert_eq!(err.found, found, "{text}");
            assert!(err.to_string().contains("merge key `<<`"), "{err}");
        }
    }
}
