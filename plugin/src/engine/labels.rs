//! The labels on every object canon creates (services and their containers, volumes, networks,
//! secrets, helper containers), so a later sweep finds what a killed run left behind, and the
//! engine names of a stack's volumes.
//!
//! Separate from the command lines ([`super::cmd`]): these are the names the engine sees, shared
//! by the commands, the cleanup and the docker runner.

use std::collections::BTreeMap;

use serde_json::Value;

/// The label `docker stack deploy` puts on everything a stack owns.
pub const STACK_LABEL: &str = "com.docker.stack.namespace";
/// Marks every object canon creates.
pub const MANAGED_LABEL: &str = "canon.managed";
/// Which stack (cold run or warm canonical) an object belongs to.
pub const STACK_NAME_LABEL: &str = "canon.stack";
/// `cold`, `warm`, `warm-prev` or `helper`.
pub const KIND_LABEL: &str = "canon.kind";
/// The recipe.
pub const RECIPE_LABEL: &str = "canon.recipe";
/// The tag or ref under test.
pub const TAG_LABEL: &str = "canon.tag";
/// The build number.
pub const BUILD_LABEL: &str = "canon.build";
/// Creation time, unix seconds: the sweep's age test.
pub const CREATED_LABEL: &str = "canon.created";

/// What kind of stack an object belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StackKind {
    /// A cold run: removed at teardown, swept when left behind.
    Cold,
    /// The warm canonical `warm-<recipe>`: kept, never swept.
    Warm,
}

impl StackKind {
    /// Returns the label value.
    pub fn as_str(self) -> &'static str {
        match self {
            StackKind::Cold => "cold",
            StackKind::Warm => "warm",
        }
    }
}

/// The labels every object of one stack carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunLabels {
    /// The stack name.
    pub stack: String,
    /// Cold or warm.
    pub kind: StackKind,
    /// The recipe.
    pub recipe: String,
    /// The tag or ref.
    pub tag: String,
    /// The build number.
    pub build: String,
    /// Unix seconds at the start of the run.
    pub created: u64,
}

impl RunLabels {
    /// Returns the labels as a map, with `kind` overridden when given (e.g. `helper`).
    pub fn map(&self, kind: Option<&str>) -> BTreeMap<String, String> {
        BTreeMap::from([
            (MANAGED_LABEL.to_string(), "true".to_string()),
            (STACK_NAME_LABEL.to_string(), self.stack.clone()),
            (
                KIND_LABEL.to_string(),
                kind.unwrap_or(self.kind.as_str()).to_string(),
            ),
            (RECIPE_LABEL.to_string(), self.recipe.clone()),
            (TAG_LABEL.to_string(), self.tag.clone()),
            (BUILD_LABEL.to_string(), self.build.clone()),
            (CREATED_LABEL.to_string(), self.created.to_string()),
        ])
    }
}

/// Returns the engine name of a stack's volume (`<stack>_<key>`).
pub fn stack_volume(stack: &str, key: &str) -> String {
    format!("{stack}_{key}")
}

/// Returns the name of the copy kept of a warm volume while a promote is in flight.
pub fn prev_volume(volume: &str) -> String {
    format!("{volume}.prev")
}

/// Returns the name of the marker volume that says a promote of the warm stack `stack` is in
/// flight (`<stack>.promoting`): while it exists, the warm stack's volumes are not settled.
pub fn promoting_marker(stack: &str) -> String {
    format!("{stack}.promoting")
}

/// Returns an inspected object's labels (a JSON object of strings) as a map; empty when none.
pub fn label_map(labels: &Value) -> BTreeMap<String, String> {
    labels
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the time in unix seconds (the `canon.created` label).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Returns the labels of a cold run, build 7, the tests' example.
    pub(crate) fn labels() -> RunLabels {
        RunLabels {
            stack: "cold-app-abc123-7".into(),
            kind: StackKind::Cold,
            recipe: "app".into(),
            tag: "1.0.0+1.2".into(),
            build: "7".into(),
            created: 1_700_000_000,
        }
    }

    #[test]
    fn a_warm_volumes_copy_is_named_after_it() {
        assert_eq!(prev_volume("warm-gitea_data"), "warm-gitea_data.prev");
        assert_eq!(promoting_marker("warm-gitea"), "warm-gitea.promoting");
    }

    #[test]
    fn helper_labels_override_the_kind_only() {
        let m = labels().map(Some("helper"));
        assert_eq!(m[KIND_LABEL], "helper");
        assert_eq!(m[STACK_NAME_LABEL], "cold-app-abc123-7");
        assert_eq!(m[MANAGED_LABEL], "true");
    }
}
